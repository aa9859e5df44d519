//! Logouts: the in-memory list the gate checks on every request, and the record a logout
//! becomes, which is also the format shared with other sidecars through Redis.
//!
//! Cognito's `GlobalSignOut` does not invalidate access tokens already issued (they verify
//! until `exp`), so a logout is remembered here: a token of that user (`sub`) issued before
//! the logout second (`iat < at`), or of a logged-out session (`origin_jti`), is refused. A
//! token issued in the very second of the logout by another session passes: `iat` has
//! one-second resolution and a fresh login right after a logout must work. A per-session
//! logout (Cognito's `RevokeToken`) is a record with `origin_jti` and no `at`.
//!
//! Entries expire `ttl` after their logout, so memory is bounded by the logouts of one TTL.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::gate::verify::{Claims, VerifyError};

/// Longest `sub` or `origin_jti` accepted in a record (Cognito's are UUIDs).
const MAX_ID: usize = 256;
/// Longest encoded record accepted from Redis.
pub const MAX_RECORD: usize = 1024;

/// One logout, as remembered and as shared: JSON `{"v":1,"sub":..,"at":..,"jti":..,"ts":..}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// Format version, 1.
    pub v: u8,
    /// The user.
    pub sub: String,
    /// Tokens of `sub` issued before this second (epoch seconds) are refused (GlobalSignOut).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<u64>,
    /// Tokens of this session are refused (the logged-out token's `origin_jti`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// When the logout happened, epoch milliseconds (for the propagation lag; unique-ifies).
    pub ts: u64,
}

/// Why a record from elsewhere was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadRecord {
    #[error("record larger than {MAX_RECORD} bytes")]
    TooLarge,
    #[error("record is not a revocation")]
    Malformed,
    #[error("record has an unknown version")]
    Version,
    #[error("record has an empty or oversized sub or jti")]
    BadId,
    #[error("record revokes nothing")]
    Empty,
    #[error("record is dated in the future")]
    Future,
}

impl Revocation {
    /// The record of a logout by the holder of `claims`, now: every token of the user
    /// issued before now, and the token's session.
    pub fn logout(claims: &Claims, clock: &Clock) -> Self {
        let ts = clock.now_millis();
        Revocation {
            v: 1,
            sub: claims.sub.clone(),
            at: Some(ts / 1000),
            jti: claims.origin_jti.clone(),
            ts,
        }
    }

    /// The record of one session's sign-out: the tokens of its sign-in (`origin_jti`), the
    /// user's other sessions untouched. `None` when the token has no `origin_jti` (an app
    /// client without token revocation).
    pub fn session(claims: &Claims, clock: &Clock) -> Option<Self> {
        Some(Revocation {
            v: 1,
            sub: claims.sub.clone(),
            at: None,
            jti: Some(claims.origin_jti.clone()?),
            ts: clock.now_millis(),
        })
    }

    /// The JSON form (the member of the shared sorted set and the pub/sub message).
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses and checks a record from Redis; anything odd is refused, never half-applied.
    /// `now` bounds `at` (a record dated more than a minute ahead is refused: it would revoke
    /// tokens not issued yet).
    pub fn decode(bytes: &[u8], now: u64) -> Result<Self, BadRecord> {
        if bytes.len() > MAX_RECORD {
            return Err(BadRecord::TooLarge);
        }
        let r: Revocation = serde_json::from_slice(bytes).map_err(|_| BadRecord::Malformed)?;
        if r.v != 1 {
            return Err(BadRecord::Version);
        }
        let id_ok =
            |s: &str| !s.is_empty() && s.len() <= MAX_ID && !s.chars().any(char::is_control);
        if !id_ok(&r.sub) || r.jti.as_deref().is_some_and(|j| !id_ok(j)) {
            return Err(BadRecord::BadId);
        }
        if r.at.is_none() && r.jti.is_none() {
            return Err(BadRecord::Empty);
        }
        if r.at.is_some_and(|at| at > now + 60) {
            return Err(BadRecord::Future);
        }
        Ok(r)
    }

    /// Epoch seconds after which the record no longer matters.
    pub fn expires(&self, ttl: Duration) -> u64 {
        let at = self.at.unwrap_or(self.ts / 1000);
        at.saturating_add(ttl.as_secs())
    }
}

/// What is revoked for one user: the latest GlobalSignOut second and the logged-out sessions.
#[derive(Debug, Default)]
struct Revoked {
    at: Option<u64>,
    jtis: Vec<String>,
    /// Epoch seconds when the newest part expires.
    expires: u64,
}

/// The logout list: `sub` → what is revoked. Cheap to clone (shared).
#[derive(Clone)]
pub struct RevocationList {
    by_sub: Cache<String, Arc<Revoked>>,
    any: Arc<AtomicBool>,
    ttl: Duration,
    clock: Clock,
}

/// Each entry lives until its newest logout is `ttl` old.
struct UntilExpiry(Clock);

impl moka::Expiry<String, Arc<Revoked>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Revoked>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(
            value.expires.saturating_sub(self.0.now_secs()),
        ))
    }

    fn expire_after_update(
        &self,
        key: &String,
        value: &Arc<Revoked>,
        updated_at: std::time::Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, value, updated_at)
    }
}

/// Users tracked at most (one entry per logged-out user per TTL).
const MAX_USERS: u64 = 1_000_000;

impl RevocationList {
    /// An empty list whose entries are kept `ttl` after their logout, by `clock`.
    pub fn new(ttl: Duration, clock: Clock) -> Self {
        RevocationList {
            by_sub: Cache::builder()
                .max_capacity(MAX_USERS)
                .expire_after(UntilExpiry(clock.clone()))
                .build(),
            any: Arc::new(AtomicBool::new(false)),
            ttl,
            clock,
        }
    }

    /// The clock its entries expire by (the fleet dates and ages records with it).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// How long entries are kept.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Adds a logout (merged with what is known of the user: the latest `at`, every session).
    /// Returns false if the record had already expired.
    pub fn apply(&self, r: &Revocation) -> bool {
        let expires = r.expires(self.ttl);
        if expires <= self.clock.now_secs() {
            return false;
        }
        // `and_compute_with` runs atomically per key, so concurrent logouts of one user
        // (a local one and one from Redis) both land.
        self.by_sub.entry(r.sub.clone()).and_compute_with(|old| {
            let old = old.map(|e| e.into_value());
            let mut merged = Revoked {
                at: old.as_ref().and_then(|o| o.at),
                jtis: old.as_ref().map(|o| o.jtis.clone()).unwrap_or_default(),
                expires: old.as_ref().map_or(0, |o| o.expires),
            };
            merged.at = merged.at.max(r.at);
            if let Some(j) = &r.jti {
                if !merged.jtis.contains(j) {
                    merged.jtis.push(j.clone());
                }
            }
            merged.expires = merged.expires.max(expires);
            moka::ops::compute::Op::Put(Arc::new(merged))
        });
        self.any.store(true, Ordering::Release);
        true
    }

    /// Refuses a token of a logged-out user issued before the logout, or of a logged-out
    /// session.
    pub fn check(&self, claims: &Claims) -> Result<(), VerifyError> {
        if !self.any.load(Ordering::Acquire) {
            return Ok(());
        }
        match self.by_sub.get(&claims.sub) {
            Some(r)
                if r.at.is_some_and(|at| claims.iat < at)
                    || claims
                        .origin_jti
                        .as_ref()
                        .is_some_and(|j| r.jtis.contains(j)) =>
            {
                Err(VerifyError::Revoked)
            }
            _ => Ok(()),
        }
    }

    /// Users with a live logout (approximate: moka evicts lazily).
    pub fn len(&self) -> u64 {
        self.by_sub.entry_count()
    }

    /// Whether nothing was ever revoked here.
    pub fn is_empty(&self) -> bool {
        !self.any.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, iat: u64, jti: Option<&str>) -> Claims {
        Claims {
            map: serde_json::Map::new(),
            sub: sub.into(),
            exp: iat + 3600,
            iat,
            token_use: crate::gate::verify::TokenUse::Access,
            username: None,
            origin_jti: jti.map(str::to_owned),
            groups: vec![],
            principal: crate::gate::verify::Principal::User,
            scopes: vec![],
            pool: "default".into(),
        }
    }

    #[test]
    fn records_round_trip_and_hostile_ones_are_refused() {
        let now = 1_800_000_000;
        let r = Revocation {
            v: 1,
            sub: "u-1".into(),
            at: Some(now),
            jti: Some("j-1".into()),
            ts: now * 1000,
        };
        assert_eq!(Revocation::decode(r.encode().as_bytes(), now), Ok(r));
        let long = "x".repeat(300);
        let huge = format!(
            "{{\"v\":1,\"sub\":\"{}\",\"at\":1,\"ts\":1}}",
            "y".repeat(2000)
        );
        let cases: Vec<(String, BadRecord)> = vec![
            ("not json".into(), BadRecord::Malformed),
            ("{}".into(), BadRecord::Malformed),
            ("[1,2]".into(), BadRecord::Malformed),
            (
                r#"{"v":1,"sub":"u","at":"1","ts":1}"#.into(),
                BadRecord::Malformed,
            ),
            (
                r#"{"v":1,"sub":"u","at":1,"ts":1,"extra":1}"#.into(),
                BadRecord::Malformed,
            ),
            (
                r#"{"v":1,"sub":"u","at":-1,"ts":1}"#.into(),
                BadRecord::Malformed,
            ),
            (
                r#"{"v":2,"sub":"u","at":1,"ts":1}"#.into(),
                BadRecord::Version,
            ),
            (r#"{"v":1,"sub":"","at":1,"ts":1}"#.into(), BadRecord::BadId),
            (
                format!(r#"{{"v":1,"sub":"{long}","at":1,"ts":1}}"#),
                BadRecord::BadId,
            ),
            (
                r#"{"v":1,"sub":"u\n","at":1,"ts":1}"#.into(),
                BadRecord::BadId,
            ),
            (
                r#"{"v":1,"sub":"u","jti":"","ts":1}"#.into(),
                BadRecord::BadId,
            ),
            (r#"{"v":1,"sub":"u","ts":1}"#.into(), BadRecord::Empty),
            (
                format!(r#"{{"v":1,"sub":"u","at":{},"ts":1}}"#, now + 3600),
                BadRecord::Future,
            ),
            (huge, BadRecord::TooLarge),
        ];
        for (text, want) in cases {
            assert_eq!(
                Revocation::decode(text.as_bytes(), now),
                Err(want),
                "{text}"
            );
        }
    }

    #[test]
    fn the_list_refuses_older_tokens_and_logged_out_sessions() {
        let clock = Clock::system();
        let list = RevocationList::new(Duration::from_secs(3600), clock.clone());
        let now = clock.now_secs();
        assert!(list.check(&claims("u", now - 10, Some("s1"))).is_ok());
        let r = Revocation::logout(&claims("u", now - 10, Some("s1")), &clock);
        assert!(r.at.is_some_and(|at| at.abs_diff(now) <= 1));
        let now = r.at.unwrap_or(now);
        assert!(list.apply(&r));
        // Older token of the user, and the logged-out session even if newer.
        assert!(list.check(&claims("u", now - 1, Some("s2"))).is_err());
        assert!(list.check(&claims("u", now + 5, Some("s1"))).is_err());
        // Same second, other session: a fresh login right after a logout works.
        assert!(list.check(&claims("u", now, Some("s3"))).is_ok());
        assert!(list.check(&claims("other", now - 10, Some("s1"))).is_ok());
        // An older record arriving later does not move `at` back, and merges its session.
        let late = Revocation {
            v: 1,
            sub: "u".into(),
            at: Some(now - 100),
            jti: Some("s0".into()),
            ts: 0,
        };
        assert!(list.apply(&late));
        assert!(list.check(&claims("u", now - 1, None)).is_err());
        assert!(list.check(&claims("u", now + 1, Some("s0"))).is_err());
        // A per-session record revokes only that session.
        let session = Revocation {
            v: 1,
            sub: "w".into(),
            at: None,
            jti: Some("sw".into()),
            ts: now * 1000,
        };
        assert!(list.apply(&session));
        assert!(list.check(&claims("w", now - 50, Some("sw"))).is_err());
        assert!(list.check(&claims("w", now - 50, Some("sx"))).is_ok());
        // An expired record is not applied.
        let old = Revocation {
            v: 1,
            sub: "z".into(),
            at: Some(now - 7200),
            jti: None,
            ts: 0,
        };
        assert!(!list.apply(&old));
        assert!(list.check(&claims("z", now - 8000, None)).is_ok());
    }
}
