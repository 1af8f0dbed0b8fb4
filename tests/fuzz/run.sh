#!/usr/bin/env bash
# Long fuzzing runs of berth's parsers, outside CI, on the stable toolchain.
#
#   tests/fuzz/run.sh [--time SECONDS] [--jobs N] [TARGET...]   fuzz (all targets if none named)
#   tests/fuzz/run.sh --cmin [TARGET...]                          minimise the corpora
#   tests/fuzz/run.sh --replay TARGET FILE...                     run a target on inputs (a crash's)
#   tests/fuzz/run.sh --build                                     build the fuzz targets only
#
# Each target runs --time seconds (default 600), --jobs at a time (default
# 2), everything under `nice -n 19`. New corpus entries go to
# tests/fuzz/corpus/<target>/, crashes, hangs and OOMs to
# tests/fuzz/artifacts/<target>/ (commit those: tests/replay.rs replays
# them forever). Logs: $FUZZ_LOGS (default /var/tmp/fuzz-logs).
#
# Environment: CARGO_TARGET_DIR (default /var/tmp/fuzz-target),
# SANITIZER (address, the default, or none), FUZZ_ARGS (more libFuzzer
# flags), STOP_ON_CRASH=1 (stop a target at its first finding instead of
# fork mode, which saves each finding and goes on).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
fuzz_dir="$here/libfuzzer"
targets_all=(oci_names v2_route manifest ranges token_request jwt harbor_q selector cron config)

# cargo-fuzz passes nightly-only rustc flags (-Zsanitizer, sancov passes):
# RUSTC_BOOTSTRAP lets the stable compiler take them, and the stable
# toolchain ships the ASan runtime (librustc-stable_rt.asan.a).
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/fuzz-target}"
sanitizer="${SANITIZER:-address}"
logs="${FUZZ_LOGS:-/var/tmp/fuzz-logs}"
mkdir -p "$logs"

mode=run
time=600
jobs=2
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --time) time="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --cmin) mode=cmin; shift ;;
        --replay) mode=replay; shift ;;
        --build) mode=build; shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) targets+=("$1"); shift ;;
    esac
done

fuzz() {
    (cd "$fuzz_dir" && nice -n 19 cargo fuzz "$@" --fuzz-dir "$fuzz_dir" --sanitizer "$sanitizer" \
        --target-dir "$CARGO_TARGET_DIR")
}

case "$mode" in
build)
    cd "$fuzz_dir" && nice -n 19 cargo fuzz build --fuzz-dir "$fuzz_dir" --sanitizer "$sanitizer" \
        --target-dir "$CARGO_TARGET_DIR"
    exit 0
    ;;
replay)
    target="${targets[0]:?--replay TARGET FILE...}"
    files=()
    for f in "${targets[@]:1}"; do files+=("$(realpath "$f")"); done
    cd "$fuzz_dir" && exec nice -n 19 cargo fuzz run --fuzz-dir "$fuzz_dir" --sanitizer "$sanitizer" \
        --target-dir "$CARGO_TARGET_DIR" "$target" "${files[@]}"
    ;;
esac

[ ${#targets[@]} -gt 0 ] || targets=("${targets_all[@]}")

if [ "$mode" = cmin ]; then
    # `cargo fuzz cmin` is libFuzzer's -merge=1 into a fresh directory; done
    # here with the built binary, keeping the hand-written seed-* files, and
    # by edges only (-use_counters=0): the committed corpora keep every
    # covered edge in a few hundred small files, not every hit count.
    if [ "${FUZZ_NO_BUILD:-}" != 1 ]; then
        (cd "$fuzz_dir" && nice -n 19 cargo fuzz build --fuzz-dir "$fuzz_dir" --sanitizer "$sanitizer" \
            --target-dir "$CARGO_TARGET_DIR")
    fi
    for t in "${targets[@]}"; do
        dir="$here/corpus/$t"
        before=$(find "$dir" -type f | wc -l)
        merged="$(mktemp -d "$logs/cmin-$t.XXXXXX")"
        nice -n 19 "$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/$t" -merge=1 -use_counters=0 \
            -rss_limit_mb=2048 -timeout=10 "$merged" "$dir" >"$logs/cmin-$t.log" 2>&1
        cp "$dir"/seed-* "$merged"/ 2>/dev/null || true
        find "$dir" -type f -delete
        cp "$merged"/* "$dir"/
        rm -rf "$merged"
        after=$(find "$dir" -type f | wc -l)
        echo "$t: $before -> $after files, $(du -sh "$dir" | cut -f1)"
    done
    exit 0
fi

# One build for every target; the runs use a copy of the binaries, so that
# editing and rebuilding while they run changes nothing under them.
# FUZZ_NO_BUILD=1 runs the binaries last built as they are.
if [ "${FUZZ_NO_BUILD:-}" != 1 ]; then
    (cd "$fuzz_dir" && nice -n 19 cargo fuzz build --fuzz-dir "$fuzz_dir" --sanitizer "$sanitizer" \
        --target-dir "$CARGO_TARGET_DIR")
fi
snap="$(mktemp -d "$logs/bin.XXXXXX")"
for t in "${targets[@]}"; do
    cp "$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/$t" "$snap/"
done

# Fork mode: a crash, hang or OOM is saved and fuzzing goes on, so one run
# reports every distinct finding. STOP_ON_CRASH=1: plain libFuzzer mode.
marker="$(mktemp)"
mode_args=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
[ "${STOP_ON_CRASH:-}" = 1 ] && mode_args=()

run_one() {
    local t="$1"
    mkdir -p "$here/corpus/$t" "$here/artifacts/$t"
    local log="$logs/$t.log"
    local start rc dict=()
    # A dictionary of the format's words and boundary numbers, if any.
    [ -f "$here/dict/$t.dict" ] && dict=(-dict="$here/dict/$t.dict")
    start=$(date +%s)
    set +e
    (cd "$here" && nice -n 19 "$snap/$t" "${mode_args[@]}" \
        -artifact_prefix="$here/artifacts/$t/" -max_total_time="$time" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" ${FUZZ_ARGS:-} "$here/corpus/$t") >"$log" 2>&1
    rc=$?
    set -e
    local execs
    execs=$( (grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" || true) | grep -o '[0-9]*$' | tail -1 || true)
    if [ -z "$execs" ]; then
        # Fork mode prints no final stats: its last status line has the total.
        execs=$( (grep -o '^#[0-9]*' "$log" || true) | tail -1 | tr -d '#')
    fi
    local found
    found=$(find "$here/artifacts/$t" -type f -newer "$marker" | wc -l)
    echo "$t: rc=$rc $(($(date +%s) - start))s execs=${execs:-?} new_artifacts=$found log=$log"
}

running=0
for t in "${targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    run_one "$t" &
    running=$((running + 1))
done
wait
echo "new findings, if any:"
find "$here/artifacts" -type f -newer "$marker" -print 2>/dev/null || true
rm -f "$marker"
