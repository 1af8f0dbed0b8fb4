//! Scrapes `/metrics` and parses it with the Prometheus project's own
//! Python parser (`prometheus_client.parser`), so the exposition is checked
//! by a real consumer of the text format, not by our reading of it.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

/// Reads the exposition from stdin; prints every sample as JSON.
const PARSER: &str = r#"
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        value = s.value if math.isfinite(s.value) else str(s.value)
        out.append({"family": family.name, "type": family.type, "name": s.name,
                    "labels": s.labels, "value": value})
print(json.dumps(out))
"#;

/// One sample of a scrape.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The family as the parser names it (counters lose `_total`).
    pub family: String,
    /// `counter`, `gauge`, `histogram`, ...
    pub kind: String,
    /// The sample's own name (`..._total`, `..._bucket`, `..._count`).
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every sample of a scrape.
pub struct Scrape(pub Vec<Sample>);

impl Scrape {
    /// Parses `text` with `prometheus_client`; panics with the parser's
    /// complaint if the exposition is not valid.
    pub fn parse(text: &str) -> Scrape {
        let mut child = Command::new("python3")
            .args(["-c", PARSER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run python3 (the tests need python3 with prometheus_client)");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write the scrape to the parser");
        let out = child.wait_with_output().expect("python3 parser");
        assert!(
            out.status.success(),
            "prometheus_client rejected the exposition: {}\n--- exposition ---\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: Value = serde_json::from_slice(&out.stdout).expect("parser output is JSON");
        let samples = json
            .as_array()
            .expect("a list of samples")
            .iter()
            .map(|s| Sample {
                family: s["family"].as_str().unwrap_or_default().to_owned(),
                kind: s["type"].as_str().unwrap_or_default().to_owned(),
                name: s["name"].as_str().unwrap_or_default().to_owned(),
                labels: s["labels"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                            .collect()
                    })
                    .unwrap_or_default(),
                value: s["value"].as_f64().unwrap_or(f64::NAN),
            })
            .collect();
        Scrape(samples)
    }

    /// Samples named `name` whose labels include every pair of `labels`.
    pub fn find<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0
            .iter()
            .filter(move |s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
    }

    /// The sum of the samples [`Scrape::find`] selects; 0 when none.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).map(|s| s.value).sum()
    }

    /// The one sample selected, its value; panics when there is none.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self.find(name, labels).collect();
        assert_eq!(found.len(), 1, "{name}{labels:?}: found {found:?}");
        found[0].value
    }

    /// The type of a sample's family.
    pub fn kind_of(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|s| s.name == name || s.family == name)
            .map(|s| s.kind.as_str())
    }
}

/// `GET <url>` (with Basic credentials if given), asserting 200 and the
/// 0.0.4 text format.
pub fn scrape(url: &str, credentials: Option<(&str, &str)>) -> Scrape {
    let mut req = reqwest::blocking::Client::new().get(url);
    if let Some((user, password)) = credentials {
        req = req.basic_auth(user, Some(password));
    }
    let resp = req.send().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.status(), 200, "GET {url}");
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "Content-Type of {url}: {content_type}"
    );
    Scrape::parse(&resp.text().expect("metrics body"))
}
