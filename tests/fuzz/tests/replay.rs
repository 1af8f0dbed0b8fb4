//! Replays every fuzz target over its committed corpus
//! (`corpus/<target>/`) and over every input that ever crashed it
//! (`artifacts/<target>/`, kept forever), so `cargo test` catches a
//! regression without a fuzzer. A target whose corpus is missing or empty
//! fails: the test must never pass by testing nothing.

use std::path::{Path, PathBuf};
use std::time::Instant;

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            // Notes beside the inputs (README.md) are not inputs.
            p.extension().is_none_or(|ext| ext != "md")
        })
        .collect();
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = files(&root.join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "tests/fuzz/corpus/{target}/ is missing or empty: seed it (see tests/fuzz/README.md)"
    );
    let artifacts = files(&root.join("artifacts").join(target));
    let mut count = 0;
    for path in corpus.iter().chain(&artifacts) {
        let data = std::fs::read(path).expect("a readable input");
        let result = std::panic::catch_unwind(|| run(&data));
        assert!(
            result.is_ok(),
            "{target}: {} fails (replay it with `tests/fuzz/run.sh --replay {target} {}`)",
            path.display(),
            path.display()
        );
        count += 1;
    }
    count
}

#[test]
fn every_target_passes_its_corpus_and_past_crashes() {
    let started = Instant::now();
    let mut total = 0;
    for (target, run) in berth_fuzz::TARGETS {
        let n = replay(target, *run);
        println!("{target}: {n} inputs");
        total += n;
    }
    println!("{total} inputs in {:?}", started.elapsed());
}

#[test]
fn every_target_has_a_fuzz_target_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (target, _) in berth_fuzz::TARGETS {
        let file = root
            .join("libfuzzer/fuzz_targets")
            .join(format!("{target}.rs"));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains(&format!("berth_fuzz::{target}(data)")),
            "{} calls berth_fuzz::{target}",
            file.display()
        );
    }
}
