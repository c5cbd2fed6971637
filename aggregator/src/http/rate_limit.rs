//! Request rate limits: a token bucket per credential (GCRA, from the
//! `governor` crate) and a lockout of client IPs that fail authentication
//! too often. Both answer a JSON 429 with `Retry-After`.
//!
//! Owns the buckets: which [`Bucket`] a request is charged to, whether it
//! is empty, and which client addresses are locked out after failing
//! authentication too often. The middleware that applies them is
//! [`super::guard`]; the limits themselves are `[rate_limit]` settings.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimitSettings;

/// Keyed buckets are pruned of idle keys once a limiter holds this many.
const PRUNE_ABOVE: usize = 100_000;

/// Whose bucket a request is charged to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// The edge secret.
    Edge,
    /// An operator credential (None: the bootstrap token).
    Operator(Option<String>),
    /// A brand or affiliate API key.
    Key(String),
    /// A brand's postbacks.
    Postback(String),
}

/// The limiters of one process.
pub struct RateLimits {
    edge: Option<DefaultKeyedRateLimiter<()>>,
    operator: Option<DefaultKeyedRateLimiter<Option<String>>>,
    key: Option<DefaultKeyedRateLimiter<String>>,
    postback: Option<DefaultKeyedRateLimiter<String>>,
    failed_auth: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Client IPs locked out, and until when.
    locked: Mutex<HashMap<IpAddr, Instant>>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("locked_ips", &self.locked_ips().len())
            .finish_non_exhaustive()
    }
}

fn limiter<K: std::hash::Hash + Eq + Clone>(
    per_sec: u32,
    burst: u32,
) -> Option<DefaultKeyedRateLimiter<K>> {
    let per_sec = NonZeroU32::new(per_sec)?;
    let burst = NonZeroU32::new(burst).unwrap_or(per_sec);
    Some(RateLimiter::keyed(
        Quota::per_second(per_sec).allow_burst(burst),
    ))
}

impl RateLimits {
    /// The limiters `settings` describe.
    pub fn new(settings: &RateLimitSettings) -> Self {
        let s = settings;
        Self {
            edge: limiter(s.edge_per_sec, s.edge_burst),
            operator: limiter(s.operator_per_sec, s.operator_burst),
            key: limiter(s.key_per_sec, s.key_burst),
            postback: limiter(s.postback_per_sec, s.postback_burst),
            failed_auth: limiter(s.failed_auth_per_sec, s.failed_auth_burst),
            locked: Mutex::default(),
            clock: DefaultClock::default(),
        }
    }

    fn locked_ips(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Instant>> {
        self.locked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long `ip` is still locked out, if it is.
    pub fn locked_for(&self, ip: IpAddr) -> Option<Duration> {
        let mut locked = self.locked_ips();
        let until = *locked.get(&ip)?;
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            locked.remove(&ip);
            None
        } else {
            Some(left)
        }
    }

    /// Counts a failed authentication from `ip`; locks it out once its
    /// bucket is empty.
    pub fn failed(&self, ip: IpAddr) {
        let Some(l) = &self.failed_auth else { return };
        if let Err(not_until) = l.check_key(&ip) {
            let wait = not_until.wait_time_from(self.clock.now());
            let mut locked = self.locked_ips();
            locked.insert(ip, Instant::now() + wait);
            if locked.len() > PRUNE_ABOVE {
                let now = Instant::now();
                locked.retain(|_, until| *until > now);
            }
        }
        if l.len() > PRUNE_ABOVE {
            l.retain_recent();
        }
    }

    /// Charges one request to `bucket`; how long to wait if it is empty.
    pub fn charge(&self, bucket: &Bucket) -> Option<Duration> {
        fn take<K: std::hash::Hash + Eq + Clone>(
            l: &Option<DefaultKeyedRateLimiter<K>>,
            key: &K,
            clock: &DefaultClock,
        ) -> Option<Duration> {
            let l = l.as_ref()?;
            let out = l
                .check_key(key)
                .err()
                .map(|n| n.wait_time_from(clock.now()));
            if l.len() > PRUNE_ABOVE {
                l.retain_recent();
            }
            out
        }
        match bucket {
            Bucket::Edge => take(&self.edge, &(), &self.clock),
            Bucket::Operator(id) => take(&self.operator, id, &self.clock),
            Bucket::Key(id) => take(&self.key, id, &self.clock),
            Bucket::Postback(brand) => take(&self.postback, brand, &self.clock),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(per_sec: u32, burst: u32) -> RateLimitSettings {
        RateLimitSettings {
            edge_per_sec: per_sec,
            edge_burst: burst,
            operator_per_sec: per_sec,
            operator_burst: burst,
            key_per_sec: per_sec,
            key_burst: burst,
            postback_per_sec: per_sec,
            postback_burst: burst,
            failed_auth_per_sec: per_sec,
            failed_auth_burst: burst,
        }
    }

    #[test]
    fn a_credential_gets_its_burst_then_waits_and_others_are_unaffected() {
        let limits = RateLimits::new(&settings(1, 3));
        let a = Bucket::Key("a".into());
        for _ in 0..3 {
            assert_eq!(limits.charge(&a), None);
        }
        let wait = limits.charge(&a).expect("the fourth request waits");
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert_eq!(limits.charge(&Bucket::Key("b".into())), None);
        assert_eq!(limits.charge(&Bucket::Edge), None);
    }

    #[test]
    fn an_address_that_keeps_failing_authentication_is_locked_out() {
        let limits = RateLimits::new(&settings(1, 2));
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let other: IpAddr = "203.0.113.10".parse().unwrap();
        limits.failed(ip);
        limits.failed(ip);
        assert_eq!(limits.locked_for(ip), None, "within the burst");
        limits.failed(ip);
        assert!(limits.locked_for(ip).is_some());
        assert_eq!(limits.locked_for(other), None);
    }

    #[test]
    fn a_limit_of_zero_is_off() {
        let limits = RateLimits::new(&settings(0, 0));
        for _ in 0..1000 {
            assert_eq!(limits.charge(&Bucket::Edge), None);
            limits.failed(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        }
        assert_eq!(
            limits.locked_for(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
            None
        );
    }
}
