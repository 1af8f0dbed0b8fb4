//! Values other crates keep, read when `/metrics` is scraped: the token
//! and login cache counters and LDAP requests (atomics in the auth crate),
//! the database pool, and bytes stored per project (one query, remembered
//! for `USAGE_TTL` so frequent scrapes stay cheap).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_auth::stats::{LdapResult, LDAP_BUCKETS};
use berth_auth::{LoginService, TokenService};
use berth_storage::Registry;
use prometheus::core::Desc;
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};

use crate::error::cause_chain;

/// How long the bytes-per-project query result is reused.
pub const USAGE_TTL: Duration = Duration::from_secs(30);

/// Bytes per project, by name, and when they were read.
struct Usage {
    read_at: Instant,
    bytes: Vec<(String, i64)>,
}

struct Family {
    desc: Desc,
    kind: MetricType,
}

pub struct Sampled {
    tokens: Arc<TokenService>,
    login: Arc<LoginService>,
    registry: Arc<Registry>,
    families: Vec<Family>,
    /// `None` before the first scrape.
    usage: Mutex<Option<Usage>>,
}

const TOKEN_HITS: &str = "berth_token_cache_hits_total";
const TOKEN_MISSES: &str = "berth_token_cache_misses_total";
const LOGIN_HITS: &str = "berth_login_cache_hits_total";
const LOGIN_MISSES: &str = "berth_login_cache_misses_total";
const LDAP_REQUESTS: &str = "berth_ldap_requests_total";
const LDAP_DURATION: &str = "berth_ldap_request_duration_seconds";
const POOL: &str = "berth_db_pool_connections";
const STORAGE: &str = "berth_storage_bytes";

impl Sampled {
    pub fn new(
        tokens: Arc<TokenService>,
        login: Arc<LoginService>,
        registry: Arc<Registry>,
    ) -> Result<Sampled, prometheus::Error> {
        let family = |name: &str, help: &str, labels: &[&str], kind| {
            Ok::<_, prometheus::Error>(Family {
                desc: Desc::new(
                    name.to_owned(),
                    help.to_owned(),
                    labels.iter().map(|l| (*l).to_owned()).collect(),
                    HashMap::new(),
                )?,
                kind,
            })
        };
        let families = vec![
            family(
                TOKEN_HITS,
                "Bearer tokens found already verified in the token cache.",
                &[],
                MetricType::COUNTER,
            )?,
            family(
                TOKEN_MISSES,
                "Bearer tokens not in the token cache (signature checked).",
                &[],
                MetricType::COUNTER,
            )?,
            family(
                LOGIN_HITS,
                "Password logins answered from the login cache.",
                &[],
                MetricType::COUNTER,
            )?,
            family(
                LOGIN_MISSES,
                "Password logins not in the login cache (checked against the database or LDAP).",
                &[],
                MetricType::COUNTER,
            )?,
            family(
                LDAP_REQUESTS,
                "Requests to the LDAP directory (logins and health pings), by result: success, \
                 rejected (wrong credentials), unavailable (no answer), error (misconfigured).",
                &["result"],
                MetricType::COUNTER,
            )?,
            family(
                LDAP_DURATION,
                "Time an LDAP login or health ping took, connection included.",
                &[],
                MetricType::HISTOGRAM,
            )?,
            family(
                POOL,
                "Open database connections, idle or in use.",
                &["state"],
                MetricType::GAUGE,
            )?,
            family(
                STORAGE,
                "Bytes of the distinct blobs each project's repositories hold (a blob shared \
                 within a project counts once); refreshed at most every 30s.",
                &["project"],
                MetricType::GAUGE,
            )?,
        ];
        Ok(Sampled {
            tokens,
            login,
            registry,
            families,
            usage: Mutex::new(None),
        })
    }

    /// Re-reads bytes per project when the last reading is older than
    /// `USAGE_TTL`. A failed query keeps the last values (and is logged).
    pub async fn refresh(&self) {
        let fresh = self
            .usage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|u| u.read_at.elapsed() < USAGE_TTL);
        if fresh {
            return;
        }
        match self.registry.meta().project_storage_bytes().await {
            Ok(rows) => {
                *self.usage.lock().unwrap_or_else(|p| p.into_inner()) = Some(Usage {
                    read_at: Instant::now(),
                    bytes: rows,
                })
            }
            Err(e) => {
                tracing::warn!(error = %cause_chain(&e), "metrics: cannot read bytes per project")
            }
        }
    }

    pub fn desc(&self) -> Vec<&Desc> {
        self.families.iter().map(|f| &f.desc).collect()
    }

    pub fn collect(&self) -> Vec<MetricFamily> {
        let tokens = self.tokens.cache_stats();
        let logins = self.login.cache_stats();
        let ldap = self.login.directory().map(|d| d.stats().snapshot());
        let pool = self.registry.meta().pool_connections();
        let usage: Vec<(String, i64)> = self
            .usage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|u| u.bytes.clone())
            .unwrap_or_default();
        self.families
            .iter()
            .map(|family| {
                let name = family.desc.fq_name.as_str();
                let metrics = match name {
                    TOKEN_HITS => vec![counter(&[], tokens.hits())],
                    TOKEN_MISSES => vec![counter(&[], tokens.misses())],
                    LOGIN_HITS => vec![counter(&[], logins.hits())],
                    LOGIN_MISSES => vec![counter(&[], logins.misses())],
                    LDAP_REQUESTS => LdapResult::ALL
                        .iter()
                        .enumerate()
                        .map(|(i, result)| {
                            let n = ldap.as_ref().map_or(0, |s| s.results[i]);
                            counter(&[("result", result.as_str())], n)
                        })
                        .collect(),
                    LDAP_DURATION => {
                        let (cumulative, count, sum) = match &ldap {
                            Some(s) => (s.cumulative, s.count, s.sum_seconds),
                            None => ([0; LDAP_BUCKETS.len()], 0, 0.0),
                        };
                        vec![histogram(&cumulative, count, sum)]
                    }
                    POOL => vec![
                        gauge(&[("state", "idle")], f64::from(pool.idle)),
                        gauge(&[("state", "in_use")], f64::from(pool.in_use)),
                    ],
                    STORAGE => usage
                        .iter()
                        .map(|(project, bytes)| gauge(&[("project", project)], *bytes as f64))
                        .collect(),
                    _ => Vec::new(),
                };
                let mut mf = MetricFamily::default();
                mf.set_name(name.to_owned());
                mf.set_help(family.desc.help.clone());
                mf.set_field_type(family.kind);
                mf.set_metric(metrics);
                mf
            })
            .collect()
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs
        .iter()
        .map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name((*name).to_owned());
            pair.set_value((*value).to_owned());
            pair
        })
        .collect()
}

fn counter(pairs: &[(&str, &str)], value: u64) -> Metric {
    let mut c = Counter::default();
    c.set_value(value as f64);
    let mut m = Metric::from_label(labels(pairs));
    m.set_counter(c);
    m
}

fn gauge(pairs: &[(&str, &str)], value: f64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(value);
    let mut m = Metric::from_label(labels(pairs));
    m.set_gauge(g);
    m
}

fn histogram(cumulative: &[u64], count: u64, sum: f64) -> Metric {
    let buckets = LDAP_BUCKETS
        .iter()
        .zip(cumulative)
        .map(|(bound, n)| {
            let mut b = Bucket::default();
            b.set_upper_bound(*bound);
            b.set_cumulative_count(*n);
            b
        })
        .collect();
    let mut h = Histogram::default();
    h.set_bucket(buckets);
    h.set_sample_count(count);
    h.set_sample_sum(sum);
    let mut m = Metric::default();
    m.set_histogram(h);
    m
}
