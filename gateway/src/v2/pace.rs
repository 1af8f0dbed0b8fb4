//! The pace a request body must keep: `server.body_timeout` to get going,
//! then `server.body_min_rate` on average (the model of Apache's
//! mod_reqtimeout). A body that falls behind is cut off, so a client that
//! trickles bytes cannot hold a connection, a session lock and buffered
//! chunks for as long as it likes; Pingora's own limit is only per read.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyPace {
    /// Allowed before the rate counts.
    pub timeout: Duration,
    /// Bytes per second, on average, after `timeout`.
    pub min_rate: u64,
}

impl BodyPace {
    /// When a body that started at `started` and has delivered `received`
    /// bytes so far must have delivered more: each byte buys `1/min_rate`
    /// seconds beyond the initial allowance.
    pub fn deadline(&self, started: Instant, received: u64) -> Instant {
        let earned = Duration::from_secs_f64(received as f64 / self.min_rate.max(1) as f64);
        // Far enough in the future for any real body, without overflow.
        let earned = earned.min(Duration::from_secs(365 * 24 * 3600));
        started + self.timeout + earned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_byte_extends_the_deadline_by_its_share_of_the_rate() {
        let pace = BodyPace {
            timeout: Duration::from_secs(20),
            min_rate: 1000,
        };
        let t0 = Instant::now();
        assert_eq!(pace.deadline(t0, 0), t0 + Duration::from_secs(20));
        assert_eq!(pace.deadline(t0, 5000), t0 + Duration::from_secs(25));
        // A huge body does not overflow the clock.
        assert!(pace.deadline(t0, u64::MAX) > t0 + Duration::from_secs(3600));
    }
}
