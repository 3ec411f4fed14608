//! Per-tenant rate limit: a token bucket per tenant, in this replica.
//!
//! Each replica enforces the configured rate on its own, so a tenant spread
//! over N replicas by the load balancer may send up to N × the rate; size
//! the setting for one replica.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Token buckets keyed by tenant.
#[derive(Debug)]
pub struct TenantLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// One tenant's bucket.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// Until when the tenant was told to wait by its last refusal: calls
    /// before then are refused unread ([`TenantLimiter::refusing`]).
    refused_until: Option<Instant>,
}

impl TenantLimiter {
    /// `rate` signals per second sustained, `burst` at once; a rate of 0
    /// turns the limit off.
    pub fn new(rate: u64, burst: u64) -> Self {
        Self {
            rate: rate as f64,
            burst: burst.max(1) as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `n` tokens for `tenant`, or says how long until they exist.
    /// Nothing is taken on refusal.
    pub fn try_take(&self, tenant: &str, n: usize) -> Result<(), Duration> {
        self.try_take_at(tenant, n, Instant::now())
    }

    /// [`TenantLimiter::try_take`] at `now`.
    fn try_take_at(&self, tenant: &str, n: usize, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let n = n as f64;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let b = buckets.entry(tenant.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
            refused_until: None,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.rate).min(self.burst);
        b.at = now;
        if b.tokens >= n {
            b.tokens -= n;
            b.refused_until = None;
            Ok(())
        } else {
            let missing = n.min(self.burst) - b.tokens;
            let wait = Duration::from_secs_f64(missing / self.rate).max(Duration::from_millis(1));
            b.refused_until = Some(now + wait);
            Err(wait)
        }
    }

    /// How much longer `tenant` was told to wait by its last refusal, if it
    /// calls again before then: such a call is refused before its request
    /// is even read, so a tenant that ignores the wait costs the replica
    /// next to nothing.
    pub fn refusing(&self, tenant: &str) -> Option<Duration> {
        self.refusing_at(tenant, Instant::now())
    }

    /// [`TenantLimiter::refusing`] at `now`.
    fn refusing_at(&self, tenant: &str, now: Instant) -> Option<Duration> {
        if self.rate <= 0.0 {
            return None;
        }
        let buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let until = buckets.get(tenant)?.refused_until?;
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_with_a_wait() {
        let l = TenantLimiter::new(1_000, 2_000);
        assert!(l.try_take("acme", 2_000).is_ok());
        let wait = l.try_take("acme", 500).expect_err("bucket is empty");
        assert!(
            wait > Duration::from_millis(100) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        // Another tenant has its own bucket.
        assert!(l.try_take("globex", 2_000).is_ok());
    }

    #[test]
    fn a_refused_tenant_is_refused_unread_until_its_wait_ends() {
        let l = TenantLimiter::new(1_000, 2_000);
        let t0 = Instant::now();
        assert_eq!(l.refusing_at("acme", t0), None);
        assert!(l.try_take_at("acme", 2_000, t0).is_ok());
        assert_eq!(l.refusing_at("acme", t0), None, "taking is not refusing");
        let wait = l
            .try_take_at("acme", 1_000, t0)
            .expect_err("bucket is empty");
        assert_eq!(wait, Duration::from_secs(1), "1,000 signals at 1,000/s");
        let half = t0 + wait / 2;
        assert_eq!(l.refusing_at("acme", half), Some(wait / 2), "told to wait");
        assert_eq!(l.refusing_at("globex", half), None, "another tenant is not");
        assert_eq!(l.refusing_at("acme", t0 + wait), None, "the wait is over");
        // Once over, the tokens are there: taken, and not refusing.
        assert!(l.try_take_at("acme", 1_000, t0 + wait).is_ok());
        assert_eq!(l.refusing_at("acme", t0 + wait), None);
        assert_eq!(TenantLimiter::new(0, 0).refusing("acme"), None);
    }

    #[test]
    fn zero_rate_means_no_limit() {
        let l = TenantLimiter::new(0, 0);
        for _ in 0..10 {
            assert!(l.try_take("acme", 1_000_000).is_ok());
        }
    }
}
