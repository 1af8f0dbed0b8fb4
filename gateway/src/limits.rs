//! Limits against abuse checked before a request is routed: the size of
//! its head (`server.max_header_size`), and how fast one client may call
//! the token service and the API (`server.rate_limit`, `server.rate_burst`).
//!
//! Rates are a token bucket per client (its address behind trusted
//! proxies, an IPv6 client by its /64: `berth_auth::login::client_key`),
//! held by each instance: behind a load balancer each instance gives a
//! client its own allowance.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pingora::http::RequestHeader;

use crate::error::GatewayError;

/// Clients idle this long are forgotten (their bucket is full again by
/// then at any rate berth accepts).
const IDLE: Duration = Duration::from_secs(120);
/// Buckets kept at most; beyond, the least recently seen go first.
const CLIENTS: u64 = 200_000;

/// The request-head limit and the per-client rate.
pub struct Limits {
    max_header_size: usize,
    rate: Option<Rate>,
}

struct Rate {
    per_second: f64,
    burst: f64,
    buckets: moka::sync::Cache<IpAddr, Arc<Mutex<Bucket>>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Limits {
    pub fn new(config: &berth_conf::Limits) -> Limits {
        Limits {
            max_header_size: config.max_header_size,
            rate: (config.rate_limit > 0).then(|| Rate {
                per_second: f64::from(config.rate_limit),
                burst: f64::from(config.rate_burst.max(1)),
                buckets: moka::sync::Cache::builder()
                    .max_capacity(CLIENTS)
                    .time_to_idle(IDLE)
                    .build(),
            }),
        }
    }

    /// Refuses a request head larger than `server.max_header_size`: the
    /// request line and every header, as sent.
    pub fn check_head(&self, head: &RequestHeader) -> Result<(), GatewayError> {
        let size = head.method.as_str().len()
            + head.raw_path().len()
            + 12
            + head
                .headers
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len() + 4)
                .sum::<usize>();
        if size > self.max_header_size {
            return Err(GatewayError::HeadersTooLarge {
                limit: self.max_header_size,
            });
        }
        Ok(())
    }

    /// Takes one request from `client`'s allowance, or says when to retry.
    pub fn take(&self, client: IpAddr) -> Result<(), GatewayError> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        let key = berth_auth::login::client_key(client);
        let bucket = rate.buckets.get_with(key, || {
            Arc::new(Mutex::new(Bucket {
                tokens: rate.burst,
                at: Instant::now(),
            }))
        });
        let mut b = bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(b.at).as_secs_f64() * rate.per_second;
        b.tokens = (b.tokens + refill).min(rate.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - b.tokens) / rate.per_second).ceil().max(1.0);
        Err(GatewayError::TooManyRequests {
            message: format!(
                "too many requests from your address: at most {} per second (server.rate_limit); \
                 retry in {wait} s",
                rate.per_second
            ),
            retry_after_secs: wait as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: u32, burst: u32) -> Limits {
        Limits::new(&berth_conf::Limits {
            max_manifest_size: 4 << 20,
            max_header_size: 8192,
            rate_limit: rate,
            rate_burst: burst,
        })
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_and_others_are_not_held() {
        let l = limits(1, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            l.take(a).unwrap();
        }
        match l.take(a) {
            Err(GatewayError::TooManyRequests {
                retry_after_secs, ..
            }) => assert_eq!(retry_after_secs, 1),
            other => panic!("{other:?}"),
        }
        l.take("192.0.2.2".parse().unwrap()).unwrap();
        // One IPv6 host is one client whatever address of its /64 it uses.
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        let l = limits(1, 1);
        l.take(v6("2001:db8::1")).unwrap();
        assert!(l.take(v6("2001:db8::2")).is_err());
        assert!(l.take(v6("2001:db8:0:1::1")).is_ok());
    }

    #[test]
    fn no_rate_no_limit() {
        let l = limits(0, 0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..10_000 {
            l.take(a).unwrap();
        }
    }

    #[test]
    fn heads_over_the_limit_are_refused() {
        let l = limits(0, 0);
        let mut head = RequestHeader::build("GET", b"/v2/", None).unwrap();
        head.insert_header("x-small", "a").unwrap();
        l.check_head(&head).unwrap();
        head.insert_header("x-big", "a".repeat(9000)).unwrap();
        assert!(matches!(
            l.check_head(&head),
            Err(GatewayError::HeadersTooLarge { limit: 8192 })
        ));
    }
}
