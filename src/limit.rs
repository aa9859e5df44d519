//! Rate limits for the auth API, per client address and per username, so one client cannot
//! spend the account-wide Cognito password-auth quota (about 120 requests/s) for everyone.
//!
//! Each key has a GCRA bucket (a rate per minute and a burst) held in a bounded moka cache, so
//! a flood of distinct addresses or usernames costs bounded memory: the least recently used
//! keys are forgotten, which can only ever let a forgotten key start afresh.
//! With the fleet backend (`shared.backend = "redis"`) a limiter asks Redis first, so the
//! budget is the fleet's; when Redis does not answer in time it falls back to its local
//! buckets, so an outage never turns rate limiting off.
//!
//! Which address a request comes from is `forward::client_ip`'s call, beside the rules for
//! the forwarded headers the app receives.

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;

use crate::config::RateLimitConfig;
use crate::error::{ApiError, Budget};
use crate::fleet::Shared;
use crate::telemetry::metrics::SharedMetrics;

/// One limit: `per_minute` requests sustained, `burst` at once. `per_minute == 0` disables it.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    pub per_minute: u32,
    pub burst: u32,
}

/// A GCRA limiter keyed by `K`.
pub struct Limiter<K: Hash + Eq + Send + Sync + 'static> {
    /// Nanoseconds between two requests at the sustained rate.
    interval: u64,
    /// How far ahead of now the theoretical arrival time may run (the burst).
    tolerance: u64,
    epoch: Instant,
    buckets: Option<Cache<K, Arc<AtomicU64>>>,
    /// The fleet backend and this limiter's key kind (`address`, `username`).
    shared: Option<(Shared, &'static str)>,
}

/// A limiter key as the fleet backend names it.
pub trait SharedKey {
    /// A short id, safe as part of a Redis key (no personal data).
    fn shared_id(&self) -> String;
}

impl SharedKey for IpAddr {
    fn shared_id(&self) -> String {
        self.to_string()
    }
}

impl SharedKey for String {
    fn shared_id(&self) -> String {
        crate::fleet::username_id(self)
    }
}

impl<K: Hash + Eq + Send + Sync + Clone + 'static> Limiter<K> {
    /// A limiter tracking at most `max_keys` keys.
    pub fn new(q: Quota, max_keys: u64) -> Self {
        Self::with_period(q.per_minute, q.burst, 60, max_keys)
    }

    /// `per_hour` requests an hour sustained, `burst` at once (for limits below one a minute);
    /// `per_hour == 0` disables it.
    pub fn per_hour(per_hour: u32, burst: u32, max_keys: u64) -> Self {
        Self::with_period(per_hour, burst, 3600, max_keys)
    }

    fn with_period(count: u32, burst: u32, period_secs: u64, max_keys: u64) -> Self {
        let interval = if count == 0 {
            0
        } else {
            period_secs * 1_000_000_000 / u64::from(count)
        };
        Limiter {
            interval,
            tolerance: interval * u64::from(burst.max(1) - 1),
            epoch: Instant::now(),
            buckets: (count > 0).then(|| {
                Cache::builder()
                    .max_capacity(max_keys)
                    // An idle bucket is full again after `tolerance + interval`; forget it then.
                    .time_to_idle(Duration::from_nanos(interval * u64::from(burst.max(1)) + 1))
                    .build()
            }),
            shared: None,
        }
    }

    /// Counts in the fleet backend first (falling back to the local buckets).
    pub fn with_shared(mut self, shared: Shared, kind: &'static str) -> Self {
        self.shared = Some((shared, kind));
        self
    }

    /// Takes one token for `key`; on refusal, returns how long until one is available.
    pub async fn check(&self, key: &K) -> Result<(), Duration>
    where
        K: SharedKey,
    {
        if self.buckets.is_none() {
            return Ok(());
        }
        if let Some((shared, kind)) = &self.shared {
            let interval = Duration::from_nanos(self.interval);
            let tolerance = Duration::from_nanos(self.tolerance);
            if let Some(verdict) = shared
                .rate_limit(kind, &key.shared_id(), interval, tolerance)
                .await
            {
                return verdict;
            }
        }
        self.check_local(key)
    }

    /// `check` on this process's buckets only.
    pub fn check_local(&self, key: &K) -> Result<(), Duration> {
        self.check_at(key, self.epoch.elapsed().as_nanos() as u64)
    }

    fn check_at(&self, key: &K, now: u64) -> Result<(), Duration> {
        let Some(buckets) = &self.buckets else {
            return Ok(());
        };
        let tat = buckets.get_with_by_ref(key, || Arc::new(AtomicU64::new(0)));
        let mut current = tat.load(Ordering::Acquire);
        loop {
            let start = current.max(now);
            if start - now > self.tolerance {
                return Err(Duration::from_nanos(start - now - self.tolerance));
            }
            match tat.compare_exchange_weak(
                current,
                start + self.interval,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }
}

/// The recovery endpoints' own limits, for the JSON API and the pages alike (Cognito allows
/// only a few codes an hour per user: the sidecar answers 429 before Cognito does).
pub struct RecoveryLimits {
    by_username: Limiter<String>,
    by_address: Limiter<IpAddr>,
    metrics: SharedMetrics,
}

impl RecoveryLimits {
    /// From `rate_limit.recovery_*`, counted in the fleet backend when there is one.
    pub fn new(rl: &RateLimitConfig, shared: Option<&Shared>, metrics: SharedMetrics) -> Self {
        let mut by_username = Limiter::per_hour(
            rl.recovery_username_per_hour,
            rl.recovery_username_burst,
            rl.max_tracked,
        );
        let mut by_address = Limiter::per_hour(
            rl.recovery_address_per_hour,
            rl.recovery_address_burst,
            rl.max_tracked,
        );
        if let Some(s) = shared {
            by_username = by_username.with_shared(s.clone(), "recovery_username");
            by_address = by_address.with_shared(s.clone(), "recovery_address");
        }
        RecoveryLimits {
            by_username,
            by_address,
            metrics,
        }
    }

    /// One recovery request (`endpoint`: `forgot` or `confirm`) per client address and per
    /// username (each endpoint counts on its own per username), whether or not the user exists.
    pub async fn check(
        &self,
        endpoint: &str,
        username: &str,
        client: IpAddr,
    ) -> Result<(), ApiError> {
        let refused = |kind: &'static str, budget: Budget, wait: Duration| {
            self.metrics.rate_limited(kind);
            ApiError::rate_limited(budget, wait)
        };
        self.by_address
            .check(&client)
            .await
            .map_err(|w| refused("address", Budget::RecoveryAddress, w))?;
        let key = format!("{endpoint}:{}", username.trim().to_lowercase());
        self.by_username
            .check(&key)
            .await
            .map_err(|w| refused("username", Budget::RecoveryUsername, w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_burst_then_the_rate() {
        let l: Limiter<&str> = Limiter::new(
            Quota {
                per_minute: 60,
                burst: 3,
            },
            10,
        );
        let s = 1_000_000_000;
        assert!(l.check_at(&"a", 10 * s).is_ok());
        assert!(l.check_at(&"a", 10 * s).is_ok());
        assert!(l.check_at(&"a", 10 * s).is_ok());
        let wait = l.check_at(&"a", 10 * s).expect_err("burst spent");
        assert_eq!(wait, Duration::from_secs(1));
        assert!(l.check_at(&"b", 10 * s).is_ok(), "keys are independent");
        assert!(l.check_at(&"a", 11 * s).is_ok(), "one more after a second");
        assert!(l.check_at(&"a", 11 * s).is_err());
        assert!(l.check_at(&"a", 20 * s).is_ok(), "refilled");
        let off: Limiter<&str> = Limiter::new(
            Quota {
                per_minute: 0,
                burst: 0,
            },
            10,
        );
        for _ in 0..100 {
            assert!(off.check_at(&"a", 0).is_ok());
        }
    }

    #[test]
    fn per_hour_limits_spread_over_the_hour() {
        let l: Limiter<&str> = Limiter::per_hour(6, 2, 10);
        let s = 1_000_000_000;
        assert!(l.check_at(&"a", 100 * s).is_ok());
        assert!(l.check_at(&"a", 100 * s).is_ok());
        let wait = l.check_at(&"a", 100 * s).expect_err("burst spent");
        assert_eq!(wait, Duration::from_secs(600), "one every ten minutes");
        assert!(l.check_at(&"a", 699 * s).is_err());
        assert!(l.check_at(&"a", 700 * s).is_ok());
        let off: Limiter<&str> = Limiter::per_hour(0, 0, 10);
        assert!((0..100).all(|_| off.check_at(&"a", 0).is_ok()));
    }

    #[test]
    fn memory_is_bounded_under_a_flood_of_keys() {
        let l: Limiter<u32> = Limiter::new(
            Quota {
                per_minute: 1,
                burst: 1,
            },
            1000,
        );
        for k in 0..50_000u32 {
            let _ = l.check_local(&k);
        }
        let buckets = l.buckets.as_ref().expect("enabled");
        buckets.run_pending_tasks();
        assert!(buckets.entry_count() <= 1000, "{}", buckets.entry_count());
    }
}
