//! The user pool's signing keys: fetched with one shared reqwest client, cached, refreshed in
//! the background, and refetched on an unknown `kid` at most once at a time and at most once
//! per cooldown, so a flood of forged kids cannot hammer Cognito.
//!
//! A failed fetch keeps the last good keys. Only RSA signing keys whose `alg` (if any) is the
//! configured one are kept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use aws_lc_rs::rsa::RsaParameters;
use aws_lc_rs::signature::{
    ParsedPublicKey, RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256,
    RSA_PKCS1_2048_8192_SHA384, RSA_PKCS1_2048_8192_SHA512,
};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::Deserialize;
use tokio::time::Instant;

use super::VerifyError;
use crate::telemetry::trace;

/// Why a JWKS fetch failed (logged, never shown to clients).
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("request failed: {0}")]
    Request(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    #[error("response is not a JWKS")]
    Malformed,
    #[error("no usable signing key")]
    NoUsableKey,
}

impl JwksError {
    /// The failure's class, for a trace span's `error.type`.
    pub fn class(&self) -> &'static str {
        match self {
            JwksError::Request(_) => "request",
            JwksError::Status(_) => "status",
            JwksError::TooLarge(_) => "too_large",
            JwksError::Malformed => "malformed",
            JwksError::NoUsableKey => "no_usable_key",
        }
    }
}

/// Settings for `JwksCache::new`.
#[derive(Debug, Clone)]
pub struct JwksSettings {
    pub url: String,
    /// The configured JOSE algorithm name; keys announcing another are skipped.
    pub algorithm: &'static str,
    pub max_bytes: usize,
    pub cooldown: Duration,
    pub refresh_interval: Duration,
}

/// A verification key, parsed once when the JWKS loads (its Montgomery context included), so
/// a verify is only the RSA operation.
pub type Key = ParsedPublicKey;

type KeySet = HashMap<String, Arc<Key>>;

/// The shared key cache; cheap to clone.
#[derive(Clone)]
pub struct JwksCache {
    inner: Arc<Inner>,
}

struct Inner {
    s: JwksSettings,
    client: reqwest::Client,
    keys: RwLock<Arc<KeySet>>,
    /// Serializes fetches; holds the time of the last fetch started for a kid miss.
    fetch: tokio::sync::Mutex<Option<Instant>>,
    /// Bumped after every fetch attempt, so waiters can tell a fetch happened meanwhile.
    generation: AtomicU64,
    fetches: AtomicU64,
    failures: AtomicU64,
    loaded_at: RwLock<Option<Instant>>,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl JwksCache {
    /// An empty cache; call `spawn_refresher` (or `refresh`) to load keys.
    pub fn new(s: JwksSettings, client: reqwest::Client) -> Self {
        JwksCache {
            inner: Arc::new(Inner {
                s,
                client,
                keys: RwLock::new(Arc::new(KeySet::new())),
                fetch: tokio::sync::Mutex::new(None),
                generation: AtomicU64::new(0),
                fetches: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                loaded_at: RwLock::new(None),
            }),
        }
    }

    /// True once keys have been loaded.
    pub fn is_ready(&self) -> bool {
        !self.snapshot().is_empty()
    }

    /// Number of keys loaded.
    pub fn key_count(&self) -> usize {
        self.snapshot().len()
    }

    /// Number of fetch attempts so far (for metrics and tests).
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// Number of failed fetches so far.
    pub fn failure_count(&self) -> u64 {
        self.inner.failures.load(Ordering::Relaxed)
    }

    /// Seconds since the current keys were loaded.
    pub fn key_age(&self) -> Option<Duration> {
        self.inner
            .loaded_at
            .read()
            .ok()
            .and_then(|g| g.map(|t| t.elapsed()))
    }

    fn snapshot(&self) -> Arc<KeySet> {
        match self.inner.keys.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// The key for `kid`; an unknown kid causes at most one refetch (see module docs).
    pub async fn key(&self, kid: &str) -> Result<Arc<Key>, VerifyError> {
        let keys = self.snapshot();
        if let Some(k) = keys.get(kid) {
            return Ok(Arc::clone(k));
        }
        if keys.is_empty() {
            // Not ready: the background task retries; the client did nothing wrong.
            return Err(VerifyError::NotReady);
        }
        self.refetch_for_miss().await;
        self.snapshot()
            .get(kid)
            .cloned()
            .ok_or(VerifyError::KidUnknown)
    }

    async fn refetch_for_miss(&self) {
        let seen = self.inner.generation.load(Ordering::Acquire);
        let mut last = self.inner.fetch.lock().await;
        if self.inner.generation.load(Ordering::Acquire) != seen {
            return; // another request fetched while we waited: use its result
        }
        if last.is_some_and(|t| t.elapsed() < self.inner.s.cooldown) {
            return;
        }
        *last = Some(Instant::now());
        tracing::debug!("unknown kid: refetching the JWKS");
        let _ = self.fetch_locked().await;
    }

    /// Fetches now (serialized with other fetches) and installs the keys on success.
    pub async fn refresh(&self) -> Result<usize, JwksError> {
        let _guard = self.inner.fetch.lock().await;
        self.fetch_locked().await
    }

    #[tracing::instrument(skip_all, fields(url = %self.inner.s.url))]
    async fn fetch_locked(&self) -> Result<usize, JwksError> {
        self.inner.fetches.fetch_add(1, Ordering::Relaxed);
        let result = trace::in_span(
            "jwks.fetch",
            trace::Kind::Client,
            || vec![trace::Attribute::new("url.full", self.inner.s.url.clone())],
            self.fetch_keys(),
            |r| r.as_ref().err().map(JwksError::class),
        )
        .await;
        self.inner.generation.fetch_add(1, Ordering::Release);
        match result {
            Ok(keys) => {
                let n = keys.len();
                match self.inner.keys.write() {
                    Ok(mut g) => *g = Arc::new(keys),
                    Err(p) => *p.into_inner() = Arc::new(keys),
                }
                if let Ok(mut t) = self.inner.loaded_at.write() {
                    *t = Some(Instant::now());
                }
                tracing::debug!(keys = n, "JWKS loaded");
                Ok(n)
            }
            Err(e) => {
                self.inner.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "JWKS fetch failed; keeping the last good keys");
                Err(e)
            }
        }
    }

    async fn fetch_keys(&self) -> Result<KeySet, JwksError> {
        let s = &self.inner.s;
        let mut resp = self
            .inner
            .client
            .get(&s.url)
            .send()
            .await
            .map_err(|e| JwksError::Request(error_class(&e)))?;
        if !resp.status().is_success() {
            return Err(JwksError::Status(resp.status().as_u16()));
        }
        if resp
            .content_length()
            .is_some_and(|l| l > s.max_bytes as u64)
        {
            return Err(JwksError::TooLarge(s.max_bytes));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| JwksError::Request(error_class(&e)))?
        {
            if body.len() + chunk.len() > s.max_bytes {
                return Err(JwksError::TooLarge(s.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body, s.algorithm)
    }

    /// Starts the background task: fetch now, retry every second (or every `cooldown`, if
    /// shorter, at least 100 ms) until keys arrive, then refresh every `refresh_interval`
    /// (after a failed refresh, retry within 30 s). It ends when the last clone of the cache
    /// is dropped.
    ///
    /// The start-up retries are deliberately not spaced by `cooldown`: that limit is against
    /// clients forcing fetches with forged kids, while until the first keys arrive every
    /// protected request fails, and one fetch a second from one task is no load on Cognito.
    /// `trace`: the context the fetches run in (with traces on, each is a root span).
    pub fn spawn_refresher(
        &self,
        trace: Option<opentelemetry::Context>,
    ) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let retry =
            Duration::from_secs(1).min(self.inner.s.cooldown.max(Duration::from_millis(100)));
        let interval = self.inner.s.refresh_interval;
        tokio::spawn(crate::telemetry::trace::within(trace, async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let cache = JwksCache { inner };
                let ok = cache.refresh().await.is_ok();
                let wait = if cache.is_ready() && ok {
                    interval
                } else if cache.is_ready() {
                    interval.min(Duration::from_secs(30))
                } else {
                    retry
                };
                drop(cache);
                tokio::time::sleep(wait).await;
            }
        }))
    }
}

/// A short class for a reqwest error, without URLs' query strings or bodies.
fn error_class(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else if e.is_body() || e.is_decode() {
        "body".into()
    } else {
        "request".into()
    }
}

/// JWK members are base64url; some publishers pad them.
const JWK_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn modulus_bits(n: &[u8]) -> usize {
    match n.iter().position(|b| *b != 0) {
        Some(i) => (n.len() - i) * 8 - n[i].leading_zeros() as usize,
        None => 0,
    }
}

/// PKCS#1 v1.5 parameters for a JOSE RSA algorithm name (validated by `Config::validate`).
fn rsa_params(algorithm: &str) -> &'static RsaParameters {
    match algorithm {
        "RS384" => &RSA_PKCS1_2048_8192_SHA384,
        "RS512" => &RSA_PKCS1_2048_8192_SHA512,
        _ => &RSA_PKCS1_2048_8192_SHA256,
    }
}

/// Parses a JWKS document, keeping the RSA signing keys usable with `algorithm`.
pub fn parse_jwks(body: &[u8], algorithm: &str) -> Result<KeySet, JwksError> {
    let params = rsa_params(algorithm);
    let set: JwkSet = serde_json::from_slice(body).map_err(|_| JwksError::Malformed)?;
    let mut keys = KeySet::new();
    for k in set.keys {
        let usable = k.kty.as_deref() == Some("RSA")
            && k.use_.as_deref().is_none_or(|u| u == "sig")
            && k.alg.as_deref().is_none_or(|a| a == algorithm);
        let (Some(kid), Some(n), Some(e), true) = (k.kid, k.n, k.e, usable) else {
            continue;
        };
        let parsed = match (JWK_B64.decode(&n), JWK_B64.decode(&e)) {
            // Moduli under 2048 bits are refused here rather than at each verify.
            (Ok(n), Ok(e)) if modulus_bits(&n) >= 2048 => RsaPublicKeyComponents {
                n: &n[..],
                e: &e[..],
            }
            .to_parsed_public_key(params)
            .ok(),
            _ => None,
        };
        match parsed {
            Some(key) => {
                keys.insert(kid, Arc::new(key));
            }
            None => tracing::debug!("skipping a JWK with bad RSA components"),
        }
    }
    if keys.is_empty() {
        return Err(JwksError::NoUsableKey);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_keeps_only_usable_rsa_signing_keys() {
        let k: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/key1.jwk.json"))
                .expect("jwk");
        let (n, e) = (k["n"].as_str().expect("n"), k["e"].as_str().expect("e"));
        let doc = format!(
            r#"{{"keys": [
            {{"kty": "RSA", "kid": "a", "alg": "RS256", "use": "sig", "n": "{n}", "e": "{e}"}},
            {{"kty": "RSA", "kid": "b", "n": "{n}=", "e": "{e}"}},
            {{"kty": "RSA", "kid": "c", "alg": "RS512", "n": "{n}", "e": "{e}"}},
            {{"kty": "RSA", "kid": "d", "use": "enc", "n": "{n}", "e": "{e}"}},
            {{"kty": "EC", "kid": "e", "crv": "P-256", "x": "AA", "y": "AA"}},
            {{"kty": "RSA", "alg": "RS256", "n": "{n}", "e": "{e}"}},
            {{"kty": "RSA", "kid": "f", "alg": "RS256"}},
            {{"kty": "RSA", "kid": "g", "alg": "RS256", "n": "sXch", "e": "AQAB"}},
            {{"kty": "RSA", "kid": "h", "alg": "RS256", "n": "!!", "e": "AQAB"}}
        ]}}"#
        );
        let keys = parse_jwks(doc.as_bytes(), "RS256").expect("usable keys");
        let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
        kids.sort();
        assert_eq!(kids, vec!["a", "b"]);
        assert!(matches!(
            parse_jwks(b"{\"keys\": []}", "RS256"),
            Err(JwksError::NoUsableKey)
        ));
        assert!(matches!(
            parse_jwks(b"<html>", "RS256"),
            Err(JwksError::Malformed)
        ));
        assert!(matches!(
            parse_jwks(b"{\"keys\": {}}", "RS256"),
            Err(JwksError::Malformed)
        ));
    }
}
