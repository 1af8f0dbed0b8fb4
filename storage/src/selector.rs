//! Harbor's selectors for tag immutability and retention rules: a
//! doublestar pattern that a repository name or a tag matches (or must not
//! match), and retention's label selectors. Pure functions, no I/O.
//!
//! Patterns are doublestar globs, as in Harbor: `*` matches any run of
//! characters except `/`, `**` any run including `/` (`**/x` also matches
//! `x`), `?` one character except `/`, `[abc]`, `[a-z]` and `[!a]` one
//! character of a class, `{a,b}` either alternative, `\` escapes the next
//! character. Repository patterns apply to the name inside the project
//! (`app/api` in `team/app/api`), as in Harbor.

use serde::{Deserialize, Serialize};

/// How a selector's pattern decides (Harbor's `decoration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decoration {
    #[serde(rename = "matches")]
    Matches,
    #[serde(rename = "excludes")]
    Excludes,
    #[serde(rename = "repoMatches")]
    RepoMatches,
    #[serde(rename = "repoExcludes")]
    RepoExcludes,
}

impl Decoration {
    fn excludes(self) -> bool {
        matches!(self, Decoration::Excludes | Decoration::RepoExcludes)
    }
}

/// One selector, validated: its kind is `doublestar` and its pattern
/// parses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    pub decoration: Decoration,
    pub pattern: String,
    /// Tag selectors of retention rules: whether untagged artifacts are
    /// selected too (Harbor's `extras: {"untagged": true}`).
    #[serde(default)]
    pub untagged: bool,
}

/// Why a selector was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError(pub String);

impl Selector {
    /// Checks a selector from the API: `kind` must be `doublestar`, braces
    /// and classes must close.
    pub fn new(
        kind: &str,
        decoration: Decoration,
        pattern: &str,
        untagged: bool,
    ) -> Result<Selector, SelectorError> {
        if kind != "doublestar" {
            return Err(SelectorError(format!(
                "selector kind `{kind}` is not supported; use `doublestar`"
            )));
        }
        if pattern.is_empty() {
            return Err(SelectorError(
                "a selector needs a pattern, such as `**`".into(),
            ));
        }
        check_pattern(pattern)?;
        Ok(Selector {
            decoration,
            pattern: pattern.to_owned(),
            untagged,
        })
    }

    /// Whether `name` is selected.
    pub fn selects(&self, name: &str) -> bool {
        doublestar(&self.pattern, name) != self.decoration.excludes()
    }

    /// Whether an artifact with these tags is selected: a tagged one when
    /// any tag matches (`matches`) or none does (`excludes`); an untagged
    /// one only when the selector says `untagged`.
    pub fn selects_tags<'a>(&self, tags: impl IntoIterator<Item = &'a str>) -> bool {
        let mut any = false;
        let mut matched = false;
        for tag in tags {
            any = true;
            matched |= doublestar(&self.pattern, tag);
        }
        if !any {
            return self.untagged;
        }
        matched != self.decoration.excludes()
    }

    /// `matching `v1*`` / `not matching `v1*``, for messages.
    pub fn describe(&self) -> String {
        if self.decoration.excludes() {
            format!("not matching `{}`", self.pattern)
        } else {
            format!("matching `{}`", self.pattern)
        }
    }
}

/// A retention rule's label selector (Harbor's kind `label`): artifacts
/// that carry every one of the labels (`withLabels`), or none of them
/// (`withoutLabels`), by label name. Harbor writes the names as one
/// comma-separated pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSelector {
    pub with: bool,
    pub labels: Vec<String>,
}

/// At most this many names in one label selector (an artifact carries at
/// most 32 labels anyway).
const MAX_SELECTOR_LABELS: usize = 32;

impl LabelSelector {
    /// From Harbor's decoration and pattern (`"release,approved"`).
    pub fn new(decoration: &str, pattern: &str) -> Result<LabelSelector, SelectorError> {
        let with = match decoration {
            "withLabels" => true,
            "withoutLabels" => false,
            other => {
                return Err(SelectorError(format!(
                    "label selector decoration `{other}` is not supported; use `withLabels` or `withoutLabels`"
                )))
            }
        };
        let mut labels: Vec<String> = pattern
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        labels.sort();
        labels.dedup();
        if labels.is_empty() || labels.len() > MAX_SELECTOR_LABELS {
            return Err(SelectorError(format!(
                "a label selector names 1 to {MAX_SELECTOR_LABELS} labels, separated by commas, such as `release,approved`"
            )));
        }
        Ok(LabelSelector { with, labels })
    }

    /// Whether an artifact carrying `carried` (label names) is selected.
    pub fn selects(&self, carried: &[String]) -> bool {
        let has = |l: &String| carried.contains(l);
        if self.with {
            self.labels.iter().all(has)
        } else {
            !self.labels.iter().any(has)
        }
    }

    /// Harbor's decoration.
    pub fn decoration(&self) -> &'static str {
        if self.with {
            "withLabels"
        } else {
            "withoutLabels"
        }
    }

    /// Harbor's pattern: the names, comma-separated.
    pub fn pattern(&self) -> String {
        self.labels.join(",")
    }

    /// `labelled `a`, `b`` / `without label `a``, for messages.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self.labels.iter().map(|l| format!("`{l}`")).collect();
        if self.with {
            format!("labelled {}", names.join(" and "))
        } else {
            format!("without label {}", names.join(" or "))
        }
    }
}

fn check_pattern(pattern: &str) -> Result<(), SelectorError> {
    let mut depth = 0i32;
    let mut class = false;
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '[' if !class => class = true,
            ']' if class => class = false,
            '{' if !class => depth += 1,
            '}' if !class => {
                depth -= 1;
                if depth < 0 {
                    return Err(SelectorError(format!(
                        "pattern `{pattern}` closes a `}}` it never opened"
                    )));
                }
            }
            _ => {}
        }
    }
    if depth != 0 || class {
        return Err(SelectorError(format!(
            "pattern `{pattern}` leaves a `{{` or `[` open"
        )));
    }
    Ok(())
}

/// Whether `name` matches the doublestar `pattern`.
pub fn doublestar(pattern: &str, name: &str) -> bool {
    // Repository names and tags are at most 255 characters; anything
    // longer (from a hostile remote listing) matches nothing rather than
    // cost time and memory in proportion to its length.
    if name.len() > MAX_MATCHED {
        return false;
    }
    let name: Vec<char> = name.chars().collect();
    expand_braces(pattern).iter().any(|p| {
        let p: Vec<char> = p.chars().collect();
        glob(&p, &name)
    })
}

/// The longest name a selector matches.
const MAX_MATCHED: usize = 255;

/// `a{b,c{d,e}}` -> `ab`, `acd`, `ace`. At most 256 alternatives.
fn expand_braces(pattern: &str) -> Vec<String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut open = None;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '{' => {
                open = Some(i);
                break;
            }
            _ => {}
        }
        i += 1;
    }
    let Some(open) = open else {
        return vec![pattern.to_owned()];
    };
    let mut depth = 0;
    let mut parts = Vec::new();
    let mut start = open + 1;
    let mut close = None;
    let mut j = open;
    while j < chars.len() {
        match chars[j] {
            '\\' => j += 1,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    parts.push((start, j));
                    close = Some(j);
                    break;
                }
            }
            ',' if depth == 1 => {
                parts.push((start, j));
                start = j + 1;
            }
            _ => {}
        }
        j += 1;
    }
    let Some(close) = close else {
        return vec![pattern.to_owned()];
    };
    let prefix: String = chars[..open].iter().collect();
    let suffix: String = chars[close + 1..].iter().collect();
    let mut out = Vec::new();
    for (a, b) in parts {
        let alt: String = chars[a..b].iter().collect();
        for expanded in expand_braces(&format!("{prefix}{alt}{suffix}")) {
            if out.len() >= 256 {
                return out;
            }
            out.push(expanded);
        }
    }
    out
}

/// Whether all of `s` matches pattern `p`. Each (pattern suffix, name
/// suffix) pair is decided once: without that, runs of `*` backtrack
/// exponentially (`**a**a**a…b` against `aaaa…`), and a rule is matched
/// on the push path.
fn glob(p: &[char], s: &[char]) -> bool {
    let mut memo = Memo {
        width: s.len() + 1,
        seen: vec![None; (p.len() + 1) * (s.len() + 1)],
    };
    glob_in(p, s, &mut memo)
}

struct Memo {
    width: usize,
    seen: Vec<Option<bool>>,
}

fn glob_in(p: &[char], s: &[char], memo: &mut Memo) -> bool {
    let key = p.len() * memo.width + s.len();
    if let Some(known) = memo.seen[key] {
        return known;
    }
    let result = glob_step(p, s, memo);
    memo.seen[key] = Some(result);
    result
}

fn glob_step(p: &[char], s: &[char], memo: &mut Memo) -> bool {
    let Some(&c) = p.first() else {
        return s.is_empty();
    };
    match c {
        '*' if p.get(1) == Some(&'*') => {
            let rest = &p[2..];
            if rest.first() == Some(&'/') && glob_in(&rest[1..], s, memo) {
                return true;
            }
            (0..=s.len()).any(|i| glob_in(rest, &s[i..], memo))
        }
        '*' => {
            let rest = &p[1..];
            for i in 0..=s.len() {
                if glob_in(rest, &s[i..], memo) {
                    return true;
                }
                if s.get(i) == Some(&'/') {
                    break;
                }
            }
            false
        }
        '?' => s.first().is_some_and(|&x| x != '/') && glob_in(&p[1..], &s[1..], memo),
        '[' => {
            let Some(&x) = s.first() else {
                return false;
            };
            let Some(end) = p.iter().skip(1).position(|&e| e == ']').map(|e| e + 1) else {
                return false;
            };
            let mut class = &p[1..end];
            let negated = matches!(class.first(), Some('!' | '^'));
            if negated {
                class = &class[1..];
            }
            let mut found = false;
            let mut k = 0;
            while k < class.len() {
                if k + 2 < class.len() && class[k + 1] == '-' {
                    found |= class[k] <= x && x <= class[k + 2];
                    k += 3;
                } else {
                    found |= class[k] == x;
                    k += 1;
                }
            }
            found != negated && x != '/' && glob_in(&p[end + 1..], &s[1..], memo)
        }
        '\\' if p.len() > 1 => s.first() == Some(&p[1]) && glob_in(&p[2..], &s[1..], memo),
        c => s.first() == Some(&c) && glob_in(&p[1..], &s[1..], memo),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_exponential_backtracking() {
        let pattern = format!("{}b", "**a".repeat(12));
        let name = "a".repeat(200);
        // Backtracking without memory would not finish this.
        assert!(!doublestar(&pattern, &name));
        assert!(doublestar(&pattern, &format!("{name}b")));
    }

    #[test]
    fn doublestar_patterns() {
        let cases: &[(&str, &str, bool)] = &[
            ("**", "app", true),
            ("**", "app/api/v2", true),
            ("**", "", true),
            ("*", "app", true),
            ("*", "app/api", false),
            ("app/*", "app/api", true),
            ("app/**", "app/api/x", true),
            ("**/api", "api", true),
            ("**/api", "a/b/api", true),
            ("v1*", "v1.0", true),
            ("v1*", "v1", true),
            ("v1*", "v2.0", false),
            ("v1.?", "v1.3", true),
            ("v1.?", "v1.10", false),
            ("{v1,v2}*", "v2.5", true),
            ("{v1,v2}*", "v3", false),
            ("release-{a,b{c,d}}", "release-bd", true),
            ("release-{a,b{c,d}}", "release-b", false),
            ("v[0-9]", "v7", true),
            ("v[!0-9]", "v7", false),
            ("v[!0-9]", "vx", true),
            ("latest", "latest", true),
            ("latest", "latest2", false),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(doublestar(pattern, name), *expected, "{pattern} {name}");
        }
    }

    #[test]
    fn decorations() {
        let sel = |d, p: &str, untagged| Selector::new("doublestar", d, p, untagged).unwrap();
        let m = sel(Decoration::Matches, "v1*", false);
        assert!(m.selects("v1.0"));
        assert!(!m.selects("v2"));
        assert!(m.selects_tags(["latest", "v1.0"]));
        assert!(!m.selects_tags(["latest"]));
        assert!(!m.selects_tags([]));
        let x = sel(Decoration::Excludes, "v1*", false);
        assert!(!x.selects("v1.0"));
        assert!(x.selects_tags(["latest"]));
        assert!(!x.selects_tags(["latest", "v1.0"]));
        let u = sel(Decoration::Matches, "**", true);
        assert!(u.selects_tags([]));
        let r = sel(Decoration::RepoExcludes, "tmp/**", false);
        assert!(r.selects("app"));
        assert!(!r.selects("tmp/x"));
    }

    #[test]
    fn refuses_bad_selectors() {
        assert!(Selector::new("regex", Decoration::Matches, "**", false).is_err());
        assert!(Selector::new("doublestar", Decoration::Matches, "", false).is_err());
        assert!(Selector::new("doublestar", Decoration::Matches, "{a,b", false).is_err());
        assert!(Selector::new("doublestar", Decoration::Matches, "a}", false).is_err());
        assert!(Selector::new("doublestar", Decoration::Matches, "[ab", false).is_err());
    }
}
