//! What a retention policy keeps, as pure functions over a repository's
//! artifacts.
//!
//! Harbor's semantics, kept simple: a rule applies to a repository when
//! its repository selectors select it; a repository no rule applies to is
//! left alone. In a repository, each applicable rule's tag selectors pick
//! its candidates (untagged artifacts only when a selector says
//! `untagged`), and its template keeps some of them. An artifact is kept
//! when any rule keeps it (the policy's `or` algorithm); every other
//! top-level artifact of the repository, untagged ones included, is
//! deleted, except those an immutability rule protects.

use serde::{Deserialize, Serialize};

use crate::selector::{LabelSelector, Selector};

const DAY: i64 = 86_400;

/// Harbor's rule templates and their one parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Template {
    /// Keep the K most recently pushed.
    LatestPushedK(u64),
    /// Keep the N most recently pulled (never pulled counts as oldest).
    LatestPulledN(u64),
    /// Keep what was pushed in the last N days.
    NDaysSinceLastPush(u64),
    /// Keep what was pulled in the last N days.
    NDaysSinceLastPull(u64),
    /// Keep everything selected.
    Always,
}

impl Template {
    /// Harbor's template id.
    pub fn id(self) -> &'static str {
        match self {
            Template::LatestPushedK(_) => "latestPushedK",
            Template::LatestPulledN(_) => "latestPulledN",
            Template::NDaysSinceLastPush(_) => "nDaysSinceLastPush",
            Template::NDaysSinceLastPull(_) => "nDaysSinceLastPull",
            Template::Always => "always",
        }
    }

    /// The parameter's value (none for `always`).
    pub fn param(self) -> Option<u64> {
        match self {
            Template::LatestPushedK(n)
            | Template::LatestPulledN(n)
            | Template::NDaysSinceLastPush(n)
            | Template::NDaysSinceLastPull(n) => Some(n),
            Template::Always => None,
        }
    }

    /// From Harbor's template id and the parameter found under that id.
    pub fn from_id(id: &str, param: Option<u64>) -> Result<Template, String> {
        let need = || {
            param.ok_or_else(|| {
                format!("template `{id}` needs its parameter: \"params\": {{\"{id}\": <number>}}")
            })
        };
        Ok(match id {
            "latestPushedK" => Template::LatestPushedK(need()?),
            "latestPulledN" => Template::LatestPulledN(need()?),
            "nDaysSinceLastPush" => Template::NDaysSinceLastPush(need()?),
            "nDaysSinceLastPull" => Template::NDaysSinceLastPull(need()?),
            "always" => Template::Always,
            other => {
                return Err(format!(
                    "template `{other}` is not supported; use latestPushedK, latestPulledN, \
                     nDaysSinceLastPush, nDaysSinceLastPull or always"
                ))
            }
        })
    }
}

/// One rule, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub priority: i64,
    pub disabled: bool,
    pub template: Template,
    pub tag_selectors: Vec<Selector>,
    /// Older stored policies have none.
    #[serde(default)]
    pub label_selectors: Vec<LabelSelector>,
    pub repository_selectors: Vec<Selector>,
}

impl Rule {
    /// Whether the rule applies to a repository (its name in the project).
    pub fn applies_to(&self, repo: &str) -> bool {
        !self.disabled && self.repository_selectors.iter().all(|s| s.selects(repo))
    }
}

/// A top-level artifact of a repository, as retention sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub digest: String,
    pub tags: Vec<String>,
    /// The names of the labels it carries.
    pub labels: Vec<String>,
    /// Its push, or the latest push of one of its tags (Unix seconds).
    pub pushed_at: i64,
    pub pulled_at: Option<i64>,
    /// Breaks ties of equal times: later pushes have larger values.
    pub order: i64,
}

/// Which candidates the rules keep, by index; `None` when no rule applies
/// to the repository (leave it alone).
pub fn retained(
    rules: &[Rule],
    repo: &str,
    candidates: &[Candidate],
    now: i64,
) -> Option<Vec<bool>> {
    let applying: Vec<&Rule> = rules.iter().filter(|r| r.applies_to(repo)).collect();
    if applying.is_empty() {
        return None;
    }
    let mut keep = vec![false; candidates.len()];
    for rule in applying {
        let mut selected: Vec<usize> = (0..candidates.len())
            .filter(|&i| {
                let c = &candidates[i];
                rule.tag_selectors
                    .iter()
                    .all(|s| s.selects_tags(c.tags.iter().map(String::as_str)))
                    && rule.label_selectors.iter().all(|s| s.selects(&c.labels))
            })
            .collect();
        let newest_first = |key: fn(&Candidate) -> Option<i64>, selected: &mut Vec<usize>| {
            selected.sort_by(|&a, &b| {
                let (a, b) = (&candidates[a], &candidates[b]);
                key(b).cmp(&key(a)).then(b.order.cmp(&a.order))
            });
        };
        let kept: Vec<usize> = match rule.template {
            Template::Always => selected,
            Template::LatestPushedK(k) => {
                newest_first(|c| Some(c.pushed_at), &mut selected);
                selected.into_iter().take(k as usize).collect()
            }
            Template::LatestPulledN(n) => {
                // Never pulled sorts last: kept only when fewer than N
                // were pulled, as in Harbor.
                newest_first(|c| c.pulled_at, &mut selected);
                selected.into_iter().take(n as usize).collect()
            }
            Template::NDaysSinceLastPush(n) => {
                let since = now.saturating_sub((n as i64).saturating_mul(DAY));
                selected
                    .into_iter()
                    .filter(|&i| candidates[i].pushed_at >= since)
                    .collect()
            }
            Template::NDaysSinceLastPull(n) => {
                let since = now.saturating_sub((n as i64).saturating_mul(DAY));
                selected
                    .into_iter()
                    .filter(|&i| candidates[i].pulled_at.is_some_and(|p| p >= since))
                    .collect()
            }
        };
        for i in kept {
            keep[i] = true;
        }
    }
    Some(keep)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::selector::Decoration;

    fn rule(template: Template, tags: &str, untagged: bool, repos: &str) -> Rule {
        Rule {
            priority: 0,
            disabled: false,
            template,
            tag_selectors: vec![
                Selector::new("doublestar", Decoration::Matches, tags, untagged).unwrap(),
            ],
            label_selectors: Vec::new(),
            repository_selectors: vec![Selector::new(
                "doublestar",
                Decoration::RepoMatches,
                repos,
                false,
            )
            .unwrap()],
        }
    }

    fn candidate(tag: &str, pushed_at: i64, pulled_at: Option<i64>, order: i64) -> Candidate {
        Candidate {
            digest: format!("sha256:{order}"),
            tags: if tag.is_empty() {
                vec![]
            } else {
                vec![tag.to_owned()]
            },
            labels: Vec::new(),
            pushed_at,
            pulled_at,
            order,
        }
    }

    fn five() -> Vec<Candidate> {
        // Pushed in one second: the order breaks the tie.
        (1..=5)
            .map(|i| candidate(&format!("v{i}"), 100, None, i))
            .collect()
    }

    #[test]
    fn latest_pushed_keeps_the_newest() {
        let keep = retained(
            &[rule(Template::LatestPushedK(2), "**", false, "**")],
            "app",
            &five(),
            200,
        );
        assert_eq!(keep.unwrap(), [false, false, false, true, true]);
    }

    #[test]
    fn untagged_artifacts_go_unless_selected() {
        let mut c = five();
        c.push(candidate("", 500, None, 6));
        let keep = retained(
            &[rule(Template::LatestPushedK(2), "**", false, "**")],
            "app",
            &c,
            600,
        );
        assert_eq!(keep.unwrap(), [false, false, false, true, true, false]);
        let keep = retained(
            &[rule(Template::LatestPushedK(2), "**", true, "**")],
            "app",
            &c,
            600,
        );
        assert_eq!(keep.unwrap(), [false, false, false, false, true, true]);
    }

    #[test]
    fn rules_are_or_ed_and_scoped() {
        let rules = [
            rule(Template::LatestPushedK(1), "**", false, "**"),
            rule(Template::Always, "v1", false, "**"),
        ];
        let keep = retained(&rules, "app", &five(), 200).unwrap();
        assert_eq!(keep, [true, false, false, false, true]);
        let scoped = [rule(Template::Always, "**", false, "other")];
        assert_eq!(retained(&scoped, "app", &five(), 200), None);
        let mut disabled = rule(Template::Always, "**", false, "**");
        disabled.disabled = true;
        assert_eq!(retained(&[disabled], "app", &five(), 200), None);
    }

    #[test]
    fn label_selectors_narrow_what_a_rule_keeps() {
        // Keep everything labelled `release` (and not `broken`), among
        // tags matching v*.
        let mut keep_release = rule(Template::Always, "v*", false, "**");
        keep_release.label_selectors = vec![
            LabelSelector::new("withLabels", "release").unwrap(),
            LabelSelector::new("withoutLabels", " broken ,").unwrap(),
        ];
        let mut c = five();
        c[0].labels = vec!["release".into()];
        c[1].labels = vec!["release".into(), "broken".into()];
        c[2].labels = vec!["other".into()];
        c[3].labels = vec!["release".into(), "x".into()];
        let keep = retained(&[keep_release], "app", &c, 0).unwrap();
        assert_eq!(keep, [true, false, false, true, false]);
        // With every name required; without none of them.
        let both = LabelSelector::new("withLabels", "release,x").unwrap();
        assert!(both.selects(&c[3].labels) && !both.selects(&c[0].labels));
        let neither = LabelSelector::new("withoutLabels", "x,broken").unwrap();
        assert!(neither.selects(&c[0].labels) && !neither.selects(&c[1].labels));
        assert_eq!(both.pattern(), "release,x");
        for (decoration, pattern) in [("matches", "a"), ("withLabels", " , "), ("withLabels", "")] {
            assert!(
                LabelSelector::new(decoration, pattern).is_err(),
                "{decoration} {pattern}"
            );
        }
        // A stored rule from before label selectors still reads.
        let mut old = serde_json::to_value(rule(Template::Always, "**", false, "**")).unwrap();
        old.as_object_mut().unwrap().remove("label_selectors");
        let old: Rule = serde_json::from_value(old).unwrap();
        assert!(old.label_selectors.is_empty());
    }

    #[test]
    fn pulls_and_days() {
        let c = vec![
            candidate("a", 10 * DAY, Some(20 * DAY), 1),
            candidate("b", 18 * DAY, None, 2),
            candidate("c", 5 * DAY, Some(29 * DAY), 3),
        ];
        let now = 30 * DAY;
        let keep = |t| retained(&[rule(t, "**", false, "**")], "app", &c, now).unwrap();
        assert_eq!(keep(Template::LatestPulledN(1)), [false, false, true]);
        assert_eq!(keep(Template::LatestPulledN(2)), [true, false, true]);
        assert_eq!(keep(Template::LatestPulledN(5)), [true, true, true]);
        assert_eq!(keep(Template::NDaysSinceLastPush(15)), [false, true, false]);
        assert_eq!(keep(Template::NDaysSinceLastPush(20)), [true, true, false]);
        assert_eq!(keep(Template::NDaysSinceLastPull(5)), [false, false, true]);
        assert_eq!(keep(Template::Always), [true, true, true]);
    }

    #[test]
    fn templates_round_trip() {
        for t in [
            Template::LatestPushedK(3),
            Template::LatestPulledN(2),
            Template::NDaysSinceLastPush(7),
            Template::NDaysSinceLastPull(9),
            Template::Always,
        ] {
            assert_eq!(Template::from_id(t.id(), t.param()).unwrap(), t);
        }
        assert!(Template::from_id("latestPushedK", None).is_err());
        assert!(Template::from_id("nope", Some(1)).is_err());
    }
}
