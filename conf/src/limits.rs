//! `[server]` limits against abuse: the largest manifest and request
//! header, and the request rate each client may keep up on the token
//! service and the API.

use crate::build::parse_size;
use crate::error::ConfError;
use crate::settings::Settings;

/// As distribution's.
pub const DEFAULT_MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;
/// Pingora reads at most this much of a request's head and drops the
/// connection beyond it, so no larger limit can be answered.
pub const MAX_HEADER_SIZE_CEILING: usize = 1024 * 1024 - 1;
pub const DEFAULT_MAX_HEADER_SIZE: usize = 64 * 1024;
pub const DEFAULT_RATE_LIMIT: u32 = 100;

/// The limits, as [`crate::ServerConfig`] holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes; a larger manifest is refused (413 SIZE_INVALID).
    pub max_manifest_size: usize,
    /// Bytes of the request line and headers; more gets 431.
    pub max_header_size: usize,
    /// Requests per second one client may keep up on `/service/token` and
    /// `/api/v2.0`; 0: no limit.
    pub rate_limit: u32,
    /// Requests one client may make at once above the rate.
    pub rate_burst: u32,
}

fn size(
    s: &Settings,
    key: &str,
    default: usize,
    range: (usize, usize),
) -> Result<usize, ConfError> {
    let Some(text) = s.non_empty(key)? else {
        return Ok(default);
    };
    parse_size(text)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| (range.0..=range.1).contains(n))
        .ok_or_else(|| {
            s.invalid(
                key,
                format!(
                    "`{text}` is not a size between {} and {} bytes; use bytes with a unit if you \
                     like, such as \"4MiB\"",
                    range.0, range.1
                ),
            )
        })
}

fn count(s: &Settings, key: &str, default: u32) -> Result<u32, ConfError> {
    match s.integer(key) {
        None => Ok(default),
        Some(n) => u32::try_from(n).map_err(|_| {
            s.invalid(
                key,
                format!("must be between 0 and {}, found {n}", u32::MAX),
            )
        }),
    }
}

pub(crate) fn limits(s: &Settings) -> Result<Limits, ConfError> {
    let rate_limit = count(s, "server.rate_limit", DEFAULT_RATE_LIMIT)?;
    let rate_burst = count(s, "server.rate_burst", rate_limit.saturating_mul(2))?;
    if rate_limit > 0 && rate_burst < 1 {
        return Err(s.invalid(
            "server.rate_burst",
            "must be at least 1 while server.rate_limit is on".to_owned(),
        ));
    }
    Ok(Limits {
        max_manifest_size: size(
            s,
            "server.max_manifest_size",
            DEFAULT_MAX_MANIFEST_SIZE,
            (1024, 1024 * 1024 * 1024),
        )?,
        max_header_size: size(
            s,
            "server.max_header_size",
            DEFAULT_MAX_HEADER_SIZE,
            (4096, MAX_HEADER_SIZE_CEILING),
        )?,
        rate_limit,
        rate_burst,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Limits, String> {
        let env: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        crate::load(None, &env)
            .map(|c| c.server.limits)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_overrides() {
        let d = load(&[]).expect("defaults");
        assert_eq!(d.max_manifest_size, 4 << 20);
        assert_eq!(d.max_header_size, 64 << 10);
        assert_eq!((d.rate_limit, d.rate_burst), (100, 200));
        let l = load(&[
            ("BERTH_SERVER__MAX_MANIFEST_SIZE", "8MiB"),
            ("BERTH_SERVER__MAX_HEADER_SIZE", "16KiB"),
            ("BERTH_SERVER__RATE_LIMIT", "5"),
        ])
        .expect("valid");
        assert_eq!(l.max_manifest_size, 8 << 20);
        assert_eq!(l.max_header_size, 16 << 10);
        assert_eq!((l.rate_limit, l.rate_burst), (5, 10));
        let off = load(&[("BERTH_SERVER__RATE_LIMIT", "0")]).expect("off");
        assert_eq!(off.rate_limit, 0);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (key, value) in [
            ("BERTH_SERVER__MAX_MANIFEST_SIZE", "huge"),
            ("BERTH_SERVER__MAX_MANIFEST_SIZE", "10"),
            ("BERTH_SERVER__MAX_HEADER_SIZE", "2MiB"),
            ("BERTH_SERVER__RATE_LIMIT", "-1"),
            ("BERTH_SERVER__RATE_BURST", "0"),
        ] {
            let e = load(&[(key, value)]).expect_err(value);
            assert!(e.contains(key), "{key}={value}: {e}");
        }
    }
}
