//! The gate in front of the app: a token goes in, an `Identity` (claims plus the identity
//! headers they produce) comes out, or a `VerifyError`.
//!
//! Owns the verified-token cache (keyed by the whole token, never kept past the token's
//! `exp`) and the logout revocation list, which is checked on every request, cached tokens
//! included.

pub mod authorize;
pub mod identity;
pub mod revocation;
pub mod verify;

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use equivalent::Equivalent;
use http::header::{HeaderName, HeaderValue};
use moka::sync::Cache;

use crate::clock::Clock;
use crate::gate::identity::IdentityHeaders;
use crate::gate::revocation::{Revocation, RevocationList};
use crate::gate::verify::{Claims, Verifier, VerifyError};
use crate::telemetry::metrics::SharedMetrics;

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
    cache: Option<Cache<TokenKey, Arc<Identity>>>,
    revocations: RevocationList,
    metrics: SharedMetrics,
    clock: Clock,
}

/// The verified-token cache's key: the whole token, so a hit is a token equal to one that
/// verified, byte for byte. Hashed (by moka's keyed SipHash) from its last `HASHED_TAIL`
/// bytes only, which are signature bytes: hashing the whole token cost as much as the
/// SHA-256 this replaced. A digest as the key would trust the digest; comparing only the
/// signature would let `other-header.other-payload.<a cached signature>` through with the
/// cached identity while the app, given that `Authorization`, may read the other payload.
/// Only verified tokens are inserted, so a client cannot fill a bucket with tails of its
/// choosing; one that sends many tokens with a cached token's tail costs itself a full
/// comparison each before its own (failing) verification.
#[derive(Clone, PartialEq, Eq)]
struct TokenKey(Arc<str>);

/// How many trailing bytes of a token are hashed (192 bits of an RSA signature's base64url).
const HASHED_TAIL: usize = 32;

fn tail(token: &str) -> &[u8] {
    let b = token.as_bytes();
    &b[b.len().saturating_sub(HASHED_TAIL)..]
}

impl Hash for TokenKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Lookup(&self.0).hash(state);
    }
}

/// A request's token, looked up without copying it into a `TokenKey`.
struct Lookup<'a>(&'a str);

impl Hash for Lookup<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(tail(self.0));
    }
}

impl Equivalent<TokenKey> for Lookup<'_> {
    fn equivalent(&self, key: &TokenKey) -> bool {
        self.0 == &*key.0
    }
}

struct UntilExp(Clock);

impl moka::Expiry<TokenKey, Arc<Identity>> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &TokenKey,
        value: &Arc<Identity>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        // A backstop only: `check` compares `exp` itself, since moka's clock is not ours.
        Some(Duration::from_secs(
            value.claims.exp.saturating_sub(self.0.now_secs()),
        ))
    }
}

impl Gate {
    /// `cache_entries == 0` turns the verified-token cache off. Every expiry is read on
    /// `clock`.
    pub fn new(
        verifier: Verifier,
        identity: IdentityHeaders,
        cache_entries: u64,
        revocation_ttl: Duration,
        metrics: SharedMetrics,
        clock: Clock,
    ) -> Self {
        let cache = (cache_entries > 0).then(|| {
            Cache::builder()
                .max_capacity(cache_entries)
                .expire_after(UntilExp(clock.clone()))
                .build()
        });
        Gate {
            verifier,
            identity: Arc::new(identity),
            cache,
            revocations: RevocationList::new(revocation_ttl, clock.clone()),
            metrics,
            clock,
        }
    }

    /// The clock of every expiry decision (sessions read their lifetimes on it too).
    pub fn clock(&self) -> &Clock {
        &self.clock
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

    /// True once every pool's keys are loaded.
    pub fn is_ready(&self) -> bool {
        self.verifier.is_ready()
    }

    /// Verifies `token` (from the cache when it verified before) and checks revocations.
    pub async fn check(&self, token: &str) -> Result<Arc<Identity>, VerifyError> {
        let now = self.clock.now_secs();
        let leeway = self.verifier.leeway_secs();
        if let Some(cache) = &self.cache {
            let hit = cache.get(&Lookup(token));
            self.metrics.token_cache(hit.is_some());
            if let Some(id) = hit {
                if now >= id.claims.exp.saturating_add(leeway) {
                    cache.invalidate(&Lookup(token));
                    return Err(VerifyError::Expired);
                }
                self.revocations.check(&id.claims)?;
                return Ok(id);
            }
        }
        let claims = self.verifier.verify(token, now).await?;
        self.revocations.check(&claims)?;
        let headers = self.identity.values(&claims.map, claims.principal);
        let id = Arc::new(Identity { claims, headers });
        if let Some(cache) = &self.cache {
            cache.insert(TokenKey(Arc::from(token)), Arc::clone(&id));
        }
        Ok(id)
    }

    /// For logout: verifies `token` as an access token, whatever `verify.token_use` says
    /// (GlobalSignOut needs one), and checks revocations. Not cached: logouts are rare, and
    /// the cache holds tokens verified under the gate's own token uses.
    pub async fn check_access(&self, token: &str) -> Result<Claims, VerifyError> {
        let claims = self
            .verifier
            .verify_access(token, self.clock.now_secs())
            .await?;
        self.revocations.check(&claims)?;
        Ok(claims)
    }

    /// Signature, issuer and client, expiry ignored (`Verifier::verify_ignoring_expiry`):
    /// only to learn whose token it is for a refresh or a sign-out, never to let a request
    /// through.
    pub async fn verify_ignoring_expiry(&self, token: &str) -> Result<Claims, VerifyError> {
        self.verifier
            .verify_ignoring_expiry(token, self.clock.now_secs())
            .await
    }

    /// A federated sign-in's ID token, fully verified for `client_id`
    /// (`Verifier::verify_id`).
    pub async fn verify_id(&self, token: &str, client_id: &str) -> Result<Claims, VerifyError> {
        self.verifier
            .verify_id(token, self.clock.now_secs(), client_id)
            .await
    }

    /// Records a logout: the user's tokens issued before now are refused from here on.
    /// Returns the record, for the other sidecars of a fleet.
    pub fn revoke(&self, claims: &Claims) -> Revocation {
        let r = Revocation::logout(claims, &self.clock);
        self.revocations.apply(&r);
        r
    }

    /// Records one session's sign-out (`Revocation::session`): its tokens are refused from
    /// here on, the user's other sessions not. `None` without an `origin_jti`.
    pub fn revoke_session(&self, claims: &Claims) -> Option<Revocation> {
        let r = Revocation::session(claims, &self.clock)?;
        self.revocations.apply(&r);
        Some(r)
    }

    /// The logout list (the shared backend applies other sidecars' logouts to it).
    pub fn revocations(&self) -> &RevocationList {
        &self.revocations
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn the_cache_key_hashes_the_tail_and_compares_the_whole_token() {
        let s = std::collections::hash_map::RandomState::new();
        let sig = "S".repeat(40);
        let token = format!("aaa.bbb.{sig}");
        let key = TokenKey(Arc::from(token.as_str()));
        // (token, same hash as the key, a hit)
        let cases = [
            (token.clone(), true, true),
            (format!("aaa.evil.{sig}"), true, false),
            (format!("x{token}"), true, false),
            (format!("aaa.bbb.{sig}T"), false, false),
            ("short".to_owned(), false, false),
        ];
        for (t, same_hash, hit) in cases {
            let lookup = Lookup(&t);
            assert_eq!(s.hash_one(&lookup) == s.hash_one(&key), same_hash, "{t}");
            assert_eq!(lookup.equivalent(&key), hit, "{t}");
        }
        let short = TokenKey(Arc::from("short"));
        assert_eq!(s.hash_one(Lookup("short")), s.hash_one(&short));
        assert!(Lookup("short").equivalent(&short));
    }
}
