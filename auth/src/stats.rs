//! Counters the gateway samples when `/metrics` is scraped. Plain atomics:
//! recording is one relaxed add, and this crate stays free of any metrics
//! library.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::AuthError;

/// Hits and misses of a cache.
#[derive(Debug, Default)]
pub struct CacheStats {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl CacheStats {
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    pub(crate) fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }
}

/// Upper bounds (seconds) of the LDAP latency buckets: a healthy directory
/// answers a login in milliseconds; `ldap.timeout` defaults to 5s.
pub const LDAP_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// How an LDAP request (a login or a health ping) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LdapResult {
    /// The directory accepted the bind(s).
    Success,
    /// The directory answered no: unknown user, wrong password, disabled.
    Rejected,
    /// No connection or no answer within `ldap.timeout`.
    Unavailable,
    /// An answer berth cannot use: a configuration problem.
    Error,
}

impl LdapResult {
    pub const ALL: [LdapResult; 4] = [
        LdapResult::Success,
        LdapResult::Rejected,
        LdapResult::Unavailable,
        LdapResult::Error,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            LdapResult::Success => "success",
            LdapResult::Rejected => "rejected",
            LdapResult::Unavailable => "unavailable",
            LdapResult::Error => "error",
        }
    }

    fn of<T>(result: &Result<T, AuthError>) -> LdapResult {
        match result {
            Ok(_) => LdapResult::Success,
            Err(AuthError::InvalidCredentials | AuthError::UserDisabled(_)) => LdapResult::Rejected,
            Err(AuthError::DirectoryUnavailable(_)) => LdapResult::Unavailable,
            Err(_) => LdapResult::Error,
        }
    }
}

/// Requests made to the directory, by result, and their latency as a
/// histogram (per-bucket counts, not cumulative).
#[derive(Debug, Default)]
pub struct LdapStats {
    results: [AtomicU64; 4],
    buckets: [AtomicU64; LDAP_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

/// A snapshot of [`LdapStats`].
#[derive(Debug, Clone, PartialEq)]
pub struct LdapSnapshot {
    /// Requests per result, in the order of [`LdapResult::ALL`].
    pub results: [u64; 4],
    /// Cumulative counts per bound of [`LDAP_BUCKETS`], as Prometheus
    /// histograms report them.
    pub cumulative: [u64; LDAP_BUCKETS.len()],
    pub count: u64,
    pub sum_seconds: f64,
}

impl LdapStats {
    pub(crate) fn record<T>(&self, result: &Result<T, AuthError>, took: Duration) {
        let index = LdapResult::ALL
            .iter()
            .position(|r| *r == LdapResult::of(result))
            .unwrap_or(LdapResult::ALL.len() - 1);
        self.results[index].fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let bucket = LDAP_BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(LDAP_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> LdapSnapshot {
        let results = std::array::from_fn(|i| self.results[i].load(Ordering::Relaxed));
        let mut cumulative = [0; LDAP_BUCKETS.len()];
        let mut running = 0;
        for (i, slot) in cumulative.iter_mut().enumerate() {
            running += self.buckets[i].load(Ordering::Relaxed);
            *slot = running;
        }
        // Read after the buckets, so count >= every cumulative bucket.
        let count = running + self.buckets[LDAP_BUCKETS.len()].load(Ordering::Relaxed);
        LdapSnapshot {
            results,
            cumulative,
            count,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldap_results_and_buckets_are_counted() {
        let stats = LdapStats::default();
        stats.record(&Ok(()), Duration::from_millis(3));
        stats.record::<()>(
            &Err(AuthError::InvalidCredentials),
            Duration::from_millis(40),
        );
        stats.record::<()>(
            &Err(AuthError::DirectoryUnavailable("down".into())),
            Duration::from_secs(7),
        );
        let s = stats.snapshot();
        assert_eq!(s.results, [1, 1, 1, 0]);
        assert_eq!(s.count, 3);
        // <= 5ms: one; <= 50ms: two; above 5s: only in the count.
        assert_eq!(s.cumulative[0], 1);
        assert_eq!(s.cumulative[3], 2);
        assert_eq!(s.cumulative[LDAP_BUCKETS.len() - 1], 2);
        assert!((s.sum_seconds - 7.043).abs() < 1e-6, "{}", s.sum_seconds);
    }

    #[test]
    fn cache_stats_count() {
        let stats = CacheStats::default();
        stats.hit();
        stats.hit();
        stats.miss();
        assert_eq!((stats.hits(), stats.misses()), (2, 1));
    }
}
