//! The gate in front of the app: a token goes in, an `Identity` (claims plus the identity
//! headers they produce) comes out, or a `VerifyError`.
//!
//! Owns the verified-token cache (keyed by a SHA-256 of the whole token, never kept past the
//! token's `exp`) and the logout revocation list, which is checked on every request, cached
//! tokens included.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use moka::sync::Cache;
use sha2::{Digest, Sha256};

use crate::headers::IdentityHeaders;
use crate::metrics::SharedMetrics;
use crate::verify::{now_secs, Claims, Verifier, VerifyError};

/// What the gate knows about a verified token.
#[derive(Debug)]
pub struct Identity {
    pub claims: Claims,
    /// The identity headers to add upstream, computed once per token.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Verification with a cache and revocations.
#[derive(Clone)]
pub struct Gate {
    verifier: Verifier,
    identity: Arc<IdentityHeaders>,
    cache: Option<Cache<[u8; 32], Arc<Identity>>>,
    revocations: Revocations,
    metrics: SharedMetrics,
}

struct UntilExp;

impl moka::Expiry<[u8; 32], Arc<Identity>> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Arc<Identity>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        // A backstop only: `check` compares `exp` itself, since moka's clock is not ours.
        Some(Duration::from_secs(
            value.claims.exp.saturating_sub(now_secs()),
        ))
    }
}

impl Gate {
    /// `cache_entries == 0` turns the verified-token cache off.
    pub fn new(
        verifier: Verifier,
        identity: IdentityHeaders,
        cache_entries: u64,
        revocation_ttl: Duration,
        metrics: SharedMetrics,
    ) -> Self {
        let cache = (cache_entries > 0).then(|| {
            Cache::builder()
                .max_capacity(cache_entries)
                .expire_after(UntilExp)
                .build()
        });
        Gate {
            verifier,
            identity: Arc::new(identity),
            cache,
            revocations: Revocations::new(revocation_ttl),
            metrics,
        }
    }

    /// The verifier (for the refresh endpoint's expired-token path).
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The identity header rules (for stripping on every request).
    pub fn identity_headers(&self) -> &IdentityHeaders {
        &self.identity
    }

    /// The identity header rules, shared (for `forward::Policy`).
    pub fn identity_headers_arc(&self) -> Arc<IdentityHeaders> {
        Arc::clone(&self.identity)
    }

    /// True once the pool's keys are loaded.
    pub fn is_ready(&self) -> bool {
        self.verifier.jwks().is_ready()
    }

    /// Verifies `token` (from the cache when it verified before) and checks revocations.
    pub async fn check(&self, token: &str) -> Result<Arc<Identity>, VerifyError> {
        let now = now_secs();
        let leeway = self.verifier.leeway_secs();
        let key: Option<[u8; 32]> = self
            .cache
            .as_ref()
            .map(|_| Sha256::digest(token.as_bytes()).into());
        if let (Some(cache), Some(key)) = (&self.cache, &key) {
            let hit = cache.get(key);
            self.metrics.token_cache(hit.is_some());
            if let Some(id) = hit {
                if now >= id.claims.exp.saturating_add(leeway) {
                    cache.invalidate(key);
                    return Err(VerifyError::Expired);
                }
                self.revocations.check(&id.claims)?;
                return Ok(id);
            }
        }
        let claims = self.verifier.verify(token, now).await?;
        self.revocations.check(&claims)?;
        let headers = self.identity.values(&claims.map);
        let id = Arc::new(Identity { claims, headers });
        if let (Some(cache), Some(key)) = (&self.cache, key) {
            cache.insert(key, Arc::clone(&id));
        }
        Ok(id)
    }

    /// For logout: verifies `token` as an access token, whatever `verify.token_use` says
    /// (GlobalSignOut needs one), and checks revocations. Not cached: logouts are rare, and
    /// the cache holds tokens verified under the gate's own token uses.
    pub async fn check_access(&self, token: &str) -> Result<Claims, VerifyError> {
        let claims = self.verifier.verify_access(token, now_secs()).await?;
        self.revocations.check(&claims)?;
        Ok(claims)
    }

    /// Records a logout: the user's tokens issued before now are refused from here on.
    pub fn revoke(&self, claims: &Claims) {
        self.revocations.revoke(claims, now_secs());
    }
}

/// Logouts remembered in-process: `sub` → (time of logout, `origin_jti`s logged out).
///
/// GlobalSignOut does not invalidate issued access tokens (they verify until `exp`), so the
/// gate refuses a token of a logged-out user whose `iat` is before the logout second, or
/// whose `origin_jti` is the session that logged out. A token issued in the very second of
/// the logout by another session is accepted: `iat` has one-second resolution and a fresh
/// login right after a logout must work.
#[derive(Clone)]
struct Revocations {
    by_sub: Cache<String, Arc<Revoked>>,
    any: Arc<AtomicBool>,
}

#[derive(Debug)]
struct Revoked {
    at: u64,
    origin_jtis: Vec<String>,
}

impl Revocations {
    fn new(ttl: Duration) -> Self {
        Revocations {
            by_sub: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(ttl)
                .build(),
            any: Arc::new(AtomicBool::new(false)),
        }
    }

    fn revoke(&self, claims: &Claims, now: u64) {
        let mut origin_jtis = self
            .by_sub
            .get(&claims.sub)
            .map(|r| r.origin_jtis.clone())
            .unwrap_or_default();
        if let Some(j) = &claims.origin_jti {
            origin_jtis.push(j.clone());
        }
        self.by_sub.insert(
            claims.sub.clone(),
            Arc::new(Revoked {
                at: now,
                origin_jtis,
            }),
        );
        self.any.store(true, Ordering::Release);
    }

    fn check(&self, claims: &Claims) -> Result<(), VerifyError> {
        if !self.any.load(Ordering::Acquire) {
            return Ok(());
        }
        match self.by_sub.get(&claims.sub) {
            Some(r)
                if claims.iat < r.at
                    || claims
                        .origin_jti
                        .as_ref()
                        .is_some_and(|j| r.origin_jtis.contains(j)) =>
            {
                Err(VerifyError::Revoked)
            }
            _ => Ok(()),
        }
    }
}
