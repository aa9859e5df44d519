//! Browser sessions (`session.enabled`): a browser that never sends `Authorization` signs in
//! on the sidecar's own pages (`pages.rs`) and then carries one cookie, `__Host-sidecar-session`,
//! holding an opaque random id (256 bits). The tokens stay on the server side: in memory, or
//! in Redis with the fleet backend (`shared.backend = "redis"`), so any task serves any
//! session and a sign-out ends it everywhere (its tokens are revoked fleet-wide too).
//!
//! For each request with the cookie and no `Authorization`, `Sessions::authenticate` finds the
//! session, refreshes its access token when it expires within `session.refresh_margin` (one
//! refresh at a time per session on a task), and verifies the token through the gate exactly
//! like a bearer token (revocations included). A session ends at `idle_timeout` without a
//! request, at `absolute_timeout` after sign-in, when a refresh fails, and at sign-out.
//!
//! The pure rules are here too, with their tables: which requests are navigations, which
//! return paths are safe, which cross-site requests a cookie may authenticate (CSRF), cookie
//! parsing and building.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::{HeaderValue, ACCEPT, COOKIE, HOST, ORIGIN, REFERER};
use http::{HeaderMap, Method};
use moka::sync::Cache;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
pub use subtle_eq::ct_eq;

use crate::browser::oauth::Domain;
use crate::config::SessionConfig;
use crate::fleet::Shared;
use crate::gate::verify::VerifyError;
use crate::gate::{Gate, Identity};
use crate::idp::{Cognito, Tokens};
use crate::telemetry::metrics::SharedMetrics;

/// The session cookie (`__Host-`: Secure, Path=/, no Domain; set only over a secure context).
pub const SESSION_COOKIE: &str = "__Host-sidecar-session";
/// The pre-session cookie the sign-in and sign-out forms' CSRF token is bound to.
pub const CSRF_COOKIE: &str = "__Host-sidecar-csrf";
/// Binds a federated sign-in's callback to the browser that started it (`federated.rs`).
pub const FLOW_COOKIE: &str = "__Host-sidecar-oauth";
/// Every cookie of the sidecar's: never sent to the app, never set by it.
pub const COOKIES: [&str; 3] = [SESSION_COOKIE, CSRF_COOKIE, FLOW_COOKIE];

/// What the server keeps for one session. Never logged (`Debug` is redacted).
#[derive(Clone, Serialize, Deserialize)]
pub struct SessionData {
    access: String,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    refresh: Option<String>,
    /// Cognito's canonical username (the access token's `username`), for SECRET_HASH.
    #[serde(default)]
    username: Option<String>,
    /// Epoch seconds of the sign-in.
    created: u64,
    /// Signed in through the pool's managed login: refreshed at its token endpoint, and
    /// signed out there too.
    #[serde(default)]
    federated: bool,
}

impl std::fmt::Debug for SessionData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionData { <redacted> }")
    }
}

/// One session on this task: its data behind an async lock (the refresh single-flight).
struct Slot {
    data: tokio::sync::Mutex<SessionData>,
}

/// The outcome of looking at a request's session cookie.
pub enum SessionAuth {
    /// No session cookie.
    None,
    /// A cookie for no (more) valid session: the answer should clear it.
    Ended,
    /// A valid session: its identity and current access token.
    Valid {
        identity: Arc<Identity>,
        access_token: String,
    },
}

/// Why a sign-in could not make a session.
#[derive(Debug, thiserror::Error)]
#[error("the tokens have no access token")]
pub struct NoAccessToken;

/// The session store and its rules; cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: SessionConfig,
    idp: Arc<Cognito>,
    gate: Gate,
    shared: Option<Shared>,
    metrics: SharedMetrics,
    /// The pool's domain, for federated sessions' refreshes.
    domain: Option<Arc<Domain>>,
    /// The store itself (memory), or a short-lived cache in front of Redis.
    local: Cache<[u8; 32], Arc<Slot>>,
}

/// With Redis, how long one task may hold a session's refresh (longer than a Cognito call),
/// and how long another waits for its result before refreshing itself.
const REFRESH_LOCK: Duration = Duration::from_secs(10);
const REFRESH_WAIT: Duration = Duration::from_secs(3);

/// How long a task trusts its copy of a Redis-kept session before reading it again (a
/// sign-out elsewhere is enforced sooner: it revokes the tokens fleet-wide).
const REDIS_LOCAL_TTL: Duration = Duration::from_secs(10);

impl Sessions {
    /// The store: in memory, or in Redis through `shared` when the fleet backend is on.
    pub fn new(
        cfg: &SessionConfig,
        idp: Arc<Cognito>,
        gate: Gate,
        shared: Option<Shared>,
        metrics: SharedMetrics,
        domain: Option<Arc<Domain>>,
    ) -> Self {
        let local = match shared {
            None => Cache::builder()
                .max_capacity(cfg.max_sessions)
                .time_to_idle(cfg.idle_timeout)
                .time_to_live(cfg.absolute_timeout)
                .build(),
            Some(_) => Cache::builder()
                .max_capacity(cfg.max_sessions)
                .time_to_live(REDIS_LOCAL_TTL.min(cfg.idle_timeout))
                .build(),
        };
        Sessions {
            inner: Arc::new(Inner {
                cfg: cfg.clone(),
                idp,
                gate,
                shared,
                metrics,
                domain,
                local,
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.cfg
    }

    /// Sessions held on this task (all of them with the memory store).
    pub fn count(&self) -> u64 {
        self.inner.local.run_pending_tasks();
        self.inner.local.entry_count()
    }

    /// Looks at the session cookie of a request (see the module docs).
    pub async fn authenticate(&self, headers: &HeaderMap) -> SessionAuth {
        let Some(id) = cookie(headers, SESSION_COOKIE).and_then(|v| parse_id(&v)) else {
            return if cookie(headers, SESSION_COOKIE).is_some() {
                SessionAuth::Ended
            } else {
                SessionAuth::None
            };
        };
        let key = key_of(&id);
        let Some(slot) = self.slot(&key).await else {
            return SessionAuth::Ended;
        };
        let inner = &self.inner;
        let mut data = slot.data.lock().await;
        let now = inner.gate.clock().now_secs();
        if now
            >= data
                .created
                .saturating_add(inner.cfg.absolute_timeout.as_secs())
        {
            drop(data);
            self.remove(&key).await;
            return SessionAuth::Ended;
        }
        let margin = inner.cfg.refresh_margin.as_secs();
        let fresh = match inner.gate.check(&data.access).await {
            Ok(id) if id.claims.exp > now.saturating_add(margin) => Some(id),
            Ok(_) | Err(VerifyError::Expired) => None,
            // Revoked (a sign-out or logout anywhere), or no longer valid for another reason.
            Err(_) => {
                drop(data);
                self.remove(&key).await;
                return SessionAuth::Ended;
            }
        };
        let identity = match fresh {
            Some(id) => id,
            None => match self.refresh(&key, &mut data).await {
                Some(id) => id,
                None => {
                    drop(data);
                    self.remove(&key).await;
                    return SessionAuth::Ended;
                }
            },
        };
        SessionAuth::Valid {
            identity,
            access_token: data.access.clone(),
        }
    }

    /// Refreshes the session's tokens (the caller holds its lock, so one refresh at a time on
    /// this task). With Redis, one task of the fleet at a time too: a refresh lock, and a task
    /// that finds it taken waits for the other's new tokens in the store. An app client that
    /// rotates refresh tokens invalidates the old one (after its grace period), so two tasks
    /// refreshing one session at once could end it.
    async fn refresh(&self, key: &[u8; 32], data: &mut SessionData) -> Option<Arc<Identity>> {
        let Some(shared) = self.inner.shared.clone() else {
            return self.refresh_now(key, data).await;
        };
        let id = hex(key);
        match shared.refresh_lock(&id, REFRESH_LOCK).await {
            Ok(true) => {
                let out = self.refresh_now(key, data).await;
                let _ = shared.refresh_unlock(&id).await;
                out
            }
            Ok(false) => match self.adopt(&shared, key, data).await {
                Some(identity) => Some(identity),
                // The other task is stuck or gone (its lock expires by itself).
                None => self.refresh_now(key, data).await,
            },
            // Redis unreachable: this task refreshes alone.
            Err(()) => self.refresh_now(key, data).await,
        }
    }

    /// Waits (bounded) for another task's refresh of this session to reach the store, and
    /// takes its tokens.
    async fn adopt(
        &self,
        shared: &Shared,
        key: &[u8; 32],
        data: &mut SessionData,
    ) -> Option<Arc<Identity>> {
        let inner = &self.inner;
        let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let Some(stored) = self.stored(shared, key).await else {
                continue;
            };
            if stored.access != data.access {
                let identity = inner.gate.check(&stored.access).await.ok()?;
                *data = stored;
                inner.metrics.session_refresh("adopted");
                return Some(identity);
            }
        }
        None
    }

    /// One refresh at Cognito (or the pool's domain, for a federated session).
    async fn refresh_now(&self, key: &[u8; 32], data: &mut SessionData) -> Option<Arc<Identity>> {
        let inner = &self.inner;
        let refresh = data.refresh.clone()?;
        let answer = match (&inner.domain, data.federated) {
            (Some(domain), true) => domain.refresh(&refresh).await.map_err(|_| ()),
            (None, true) => Err(()),
            (_, false) => inner
                .idp
                .refresh(&refresh, data.username.as_deref())
                .await
                .map_err(|_| ()),
        };
        match answer {
            Ok(Tokens {
                access_token: Some(access),
                id_token,
                refresh_token,
                ..
            }) => {
                let id = inner.gate.check(&access).await.ok()?;
                data.access = access;
                if id_token.is_some() {
                    data.id_token = id_token;
                }
                // A client that rotates refresh tokens answers a new one.
                if refresh_token.is_some() {
                    data.refresh = refresh_token;
                }
                inner.metrics.session_refresh("ok");
                self.store(key, data).await;
                Some(id)
            }
            Ok(_) | Err(_) => {
                inner.metrics.session_refresh("failed");
                tracing::info!("session refresh failed; the session ends");
                None
            }
        }
    }

    /// Creates a session from a sign-in's tokens (`federated`: from the pool's managed
    /// login); returns the cookie value (the id).
    pub async fn create(&self, tokens: Tokens, federated: bool) -> Result<String, NoAccessToken> {
        let access = tokens.access_token.ok_or(NoAccessToken)?;
        let username = unverified_claim(&access, "username");
        let data = SessionData {
            access,
            id_token: tokens.id_token,
            refresh: tokens.refresh_token,
            username,
            created: self.inner.gate.clock().now_secs(),
            federated,
        };
        let id = random_id();
        let key = key_of(&id);
        self.store(&key, &data).await;
        self.inner.local.insert(
            key,
            Arc::new(Slot {
                data: tokio::sync::Mutex::new(data),
            }),
        );
        Ok(URL_SAFE_NO_PAD.encode(id))
    }

    /// Ends the session of a request (sign-out): returns its data so the caller can sign the
    /// user out of Cognito and revoke the tokens.
    pub async fn end(&self, headers: &HeaderMap) -> Option<SessionData> {
        let id = cookie(headers, SESSION_COOKIE).and_then(|v| parse_id(&v))?;
        let key = key_of(&id);
        let slot = self.slot(&key).await;
        self.remove(&key).await;
        match slot {
            Some(s) => Some(s.data.lock().await.clone()),
            None => None,
        }
    }

    /// The access token of ended session data (for GlobalSignOut).
    pub fn access_token(data: &SessionData) -> &str {
        &data.access
    }

    /// The refresh token of ended session data (for revocation).
    pub fn refresh_token(data: &SessionData) -> Option<&str> {
        data.refresh.as_deref()
    }

    /// Whether ended session data came from the pool's managed login.
    pub fn is_federated(data: &SessionData) -> bool {
        data.federated
    }

    async fn slot(&self, key: &[u8; 32]) -> Option<Arc<Slot>> {
        let inner = &self.inner;
        if let Some(s) = inner.local.get(key) {
            return Some(s);
        }
        let data = self.stored(inner.shared.as_ref()?, key).await?;
        let slot = Arc::new(Slot {
            data: tokio::sync::Mutex::new(data),
        });
        inner.local.insert(*key, Arc::clone(&slot));
        Some(slot)
    }

    /// The session as the shared store holds it (its idle timer reset).
    async fn stored(&self, shared: &Shared, key: &[u8; 32]) -> Option<SessionData> {
        let json = shared
            .session_get(&hex(key), self.inner.cfg.idle_timeout)
            .await
            .ok()??;
        serde_json::from_str(&json).ok()
    }

    async fn store(&self, key: &[u8; 32], data: &SessionData) {
        let inner = &self.inner;
        if let Some(shared) = &inner.shared {
            let left = data
                .created
                .saturating_add(inner.cfg.absolute_timeout.as_secs())
                .saturating_sub(inner.gate.clock().now_secs());
            let ttl = inner.cfg.idle_timeout.min(Duration::from_secs(left.max(1)));
            if let Ok(json) = serde_json::to_string(data) {
                if shared.session_put(&hex(key), &json, ttl).await.is_err() {
                    tracing::warn!(
                        "could not store a session in the shared store; it lives on this task only"
                    );
                }
            }
        }
    }

    async fn remove(&self, key: &[u8; 32]) {
        let inner = &self.inner;
        inner.local.invalidate(key);
        if let Some(shared) = &inner.shared {
            let _ = shared.session_delete(&hex(key)).await;
        }
    }
}

/// 32 random bytes from the system's CSPRNG.
pub fn random_id() -> [u8; 32] {
    let mut id = [0u8; 32];
    if aws_lc_rs::rand::fill(&mut id).is_err() {
        // The CSPRNG cannot fail on a supported system; never hand out a predictable id.
        std::process::abort();
    }
    id
}

/// A random token for the CSRF cookie and form field.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_id())
}

/// The store key of a session id: its SHA-256, so neither the store nor a log holds the id.
fn key_of(id: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(id).into()
}

/// Lower-case hex, for store keys.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A cookie value is the id in base64url (43 characters); anything else is no id.
fn parse_id(v: &str) -> Option<[u8; 32]> {
    if v.len() != 43 {
        return None;
    }
    URL_SAFE_NO_PAD.decode(v).ok()?.try_into().ok()
}

fn unverified_claim(token: &str, claim: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get(claim)?.as_str().map(str::to_owned)
}

/// The value of cookie `name` in the request's `Cookie` headers (the first one).
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

/// `Set-Cookie` for the session (`max_age` seconds; 0 clears it).
pub fn session_cookie(value: &str, max_age: u64) -> HeaderValue {
    set_cookie(SESSION_COOKIE, value, max_age, "Lax")
}

/// `Set-Cookie` for the federated sign-in's browser binding (`SameSite=Lax`: the callback
/// is a top-level navigation from the pool's domain).
pub fn flow_cookie(value: &str, max_age: u64) -> HeaderValue {
    set_cookie(FLOW_COOKIE, value, max_age, "Lax")
}

/// `Set-Cookie` for the CSRF pre-session cookie.
pub fn csrf_cookie(value: &str) -> HeaderValue {
    set_cookie(CSRF_COOKIE, value, 3600, "Strict")
}

fn set_cookie(name: &str, value: &str, max_age: u64, same_site: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite={same_site}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether a form's CSRF field matches the pre-session cookie (constant time).
pub fn csrf_matches(headers: &HeaderMap, field: Option<&str>) -> bool {
    match (cookie(headers, CSRF_COOKIE), field) {
        (Some(c), Some(f)) if !c.is_empty() => ct_eq(c.as_bytes(), f.as_bytes()),
        _ => false,
    }
}

/// A top-level navigation: `GET`/`HEAD` with `Sec-Fetch-Mode: navigate`, or (browsers that
/// do not send Fetch Metadata) `Accept: text/html`. A fetch or XHR that asks for HTML is not
/// one when the browser says so (`Sec-Fetch-Mode: cors`).
pub fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    match headers.get("sec-fetch-mode").map(HeaderValue::as_bytes) {
        Some(mode) => mode == b"navigate",
        None => headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("text/html")),
    }
}

/// The path to return to after sign-in: a same-origin relative path (`/x?y`), else `/`.
/// Anything that a browser could read as another origin (`//evil`, `/\evil`, `https:…`,
/// `javascript:`), encoded variants (`/%2F%2Fevil`, `/%5Cevil`), controls, and paths the
/// gate would refuse anyway (not canonical) become `/`.
pub fn safe_return(raw: &str) -> String {
    let fallback = || "/".to_string();
    if raw.len() > 2048 || !raw.starts_with('/') {
        return fallback();
    }
    let decoded = match percent_encoding::percent_decode_str(raw).decode_utf8() {
        Ok(d) => d,
        Err(_) => return fallback(),
    };
    let bad_start = |s: &str| s.starts_with("//") || s.starts_with("/\\");
    if bad_start(raw)
        || bad_start(&decoded)
        || decoded.contains('\\')
        || decoded.chars().any(char::is_control)
    {
        return fallback();
    }
    // The gate's own reader of request targets: a fragment, a byte hyper refuses in a
    // request line, or a path that is not canonical.
    if crate::http::path::read_target(raw.as_bytes()).is_err() {
        return fallback();
    }
    raw.to_string()
}

/// CSRF for a cookie-authenticated request to the app: safe methods pass; others only when
/// the browser says the request is same-origin (`Sec-Fetch-Site: same-origin` or `none`),
/// or, without Fetch Metadata, when `Origin` (else `Referer`) is this host or an allowed
/// origin. `same-site` is refused: another port or subdomain is another origin.
pub fn csrf_allows(method: &Method, headers: &HeaderMap, allowed: &[String]) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    origin_allowed(headers, allowed)
}

/// A WebSocket opened with the session cookie: its `Origin` must be this host or allowed
/// (cross-site WebSocket hijacking: browsers send cookies with cross-site handshakes).
pub fn websocket_origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    headers.contains_key(ORIGIN) && origin_allowed(headers, allowed)
}

fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let origin = headers
        .get(ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| *o != "null")
        .map(str::to_owned)
        .or_else(|| {
            let r: http::Uri = headers.get(REFERER)?.to_str().ok()?.parse().ok()?;
            Some(format!("{}://{}", r.scheme_str()?, r.authority()?))
        });
    let Some(origin) = origin else {
        return false;
    };
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(&origin)) {
        return true;
    }
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

/// Constant-time equality, so a CSRF token cannot be guessed byte by byte from timing.
mod subtle_eq {
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Header pairs of a request in a table.
    type Pairs<'a> = &'a [(&'a str, &'a str)];

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        m
    }

    #[test]
    fn navigation_table() {
        let cases: &[(Method, Pairs<'_>, bool)] = &[
            (Method::GET, &[("sec-fetch-mode", "navigate")], true),
            (Method::HEAD, &[("sec-fetch-mode", "navigate")], true),
            (
                Method::GET,
                &[("accept", "text/html,application/xhtml+xml")],
                true,
            ),
            (
                Method::GET,
                &[("accept", "text/html"), ("sec-fetch-mode", "cors")],
                false,
            ),
            (Method::GET, &[("accept", "application/json")], false),
            (Method::GET, &[], false),
            (Method::POST, &[("sec-fetch-mode", "navigate")], false),
            (Method::POST, &[("accept", "text/html")], false),
        ];
        for (m, headers, want) in cases {
            assert_eq!(is_navigation(m, &h(headers)), *want, "{m} {headers:?}");
        }
    }

    #[test]
    fn return_path_table() {
        let cases = [
            ("/", "/"),
            ("/orders?x=1&y=2", "/orders?x=1&y=2"),
            ("/a%20b", "/a%20b"),
            ("//evil.example", "/"),
            ("//evil.example/x", "/"),
            ("/\\evil.example", "/"),
            ("/%2F%2Fevil.example", "/"),
            ("/%2f/evil.example", "/"),
            ("/%5Cevil.example", "/"),
            ("/%5cevil.example", "/"),
            ("https://evil.example", "/"),
            ("javascript:alert(1)", "/"),
            ("%2F%2Fevil.example", "/"),
            ("evil.example", "/"),
            ("", "/"),
            ("/a\u{0}b", "/"),
            ("/a%0d%0aSet-Cookie:x", "/"),
            ("/a/../b", "/"),
            ("/x#frag", "/"),
            ("/\t/evil.example", "/"),
        ];
        for (raw, want) in cases {
            assert_eq!(safe_return(raw), want, "{raw:?}");
        }
        let long = format!("/{}", "a".repeat(3000));
        assert_eq!(safe_return(&long), "/");
    }

    #[test]
    fn csrf_matrix() {
        let allowed = vec!["https://admin.example".to_string()];
        let post = Method::POST;
        let cases: &[(&Method, Pairs<'_>, bool)] = &[
            (&Method::GET, &[("sec-fetch-site", "cross-site")], true),
            (&Method::HEAD, &[], true),
            (&Method::OPTIONS, &[], true),
            (&post, &[("sec-fetch-site", "same-origin")], true),
            (&post, &[("sec-fetch-site", "none")], true),
            (&post, &[("sec-fetch-site", "same-site")], false),
            (&post, &[("sec-fetch-site", "cross-site")], false),
            // Fetch Metadata wins over a matching Origin.
            (
                &post,
                &[
                    ("sec-fetch-site", "cross-site"),
                    ("host", "app.example"),
                    ("origin", "https://app.example"),
                ],
                false,
            ),
            // Without it: Origin, then Referer, against Host or the allowed list.
            (
                &post,
                &[("host", "app.example"), ("origin", "https://app.example")],
                true,
            ),
            (
                &post,
                &[
                    ("host", "app.example:8443"),
                    ("origin", "https://app.example:8443"),
                ],
                true,
            ),
            (
                &post,
                &[("host", "app.example"), ("origin", "https://evil.example")],
                false,
            ),
            (
                &post,
                &[
                    ("host", "app.example"),
                    ("origin", "https://app.example:444"),
                ],
                false,
            ),
            (&post, &[("host", "app.example"), ("origin", "null")], false),
            (
                &post,
                &[("host", "app.example"), ("origin", "https://admin.example")],
                true,
            ),
            (
                &post,
                &[
                    ("host", "app.example"),
                    ("referer", "https://app.example/a?b"),
                ],
                true,
            ),
            (
                &post,
                &[
                    ("host", "app.example"),
                    ("referer", "https://evil.example/app.example"),
                ],
                false,
            ),
            (&post, &[("host", "app.example")], false),
            (&Method::DELETE, &[("sec-fetch-site", "same-origin")], true),
            (&Method::PUT, &[("sec-fetch-site", "cross-site")], false),
        ];
        for (m, headers, want) in cases {
            assert_eq!(
                csrf_allows(m, &h(headers), &allowed),
                *want,
                "{m} {headers:?}"
            );
        }
        assert!(websocket_origin_allowed(
            &h(&[("host", "app.example"), ("origin", "http://app.example")]),
            &allowed
        ));
        assert!(!websocket_origin_allowed(
            &h(&[("host", "app.example"), ("origin", "https://evil.example")]),
            &allowed
        ));
        assert!(!websocket_origin_allowed(
            &h(&[("host", "app.example")]),
            &allowed
        ));
    }

    #[test]
    fn cookies_are_parsed_and_built_strictly() {
        let m = h(&[
            ("cookie", "a=1; __Host-sidecar-session=abc ; b=2"),
            ("cookie", "__Host-sidecar-csrf=tok"),
        ]);
        assert_eq!(cookie(&m, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&m, CSRF_COOKIE).as_deref(), Some("tok"));
        assert_eq!(cookie(&m, "missing"), None);
        assert!(csrf_matches(&m, Some("tok")));
        assert!(!csrf_matches(&m, Some("tok2")));
        assert!(!csrf_matches(&m, None));
        assert!(!csrf_matches(&h(&[]), Some("")));
        let c = session_cookie("v", 3600);
        assert_eq!(
            c,
            "__Host-sidecar-session=v; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax"
        );
        assert_eq!(
            csrf_cookie("t"),
            "__Host-sidecar-csrf=t; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Strict"
        );
        let id = random_id();
        assert_ne!(id, random_id());
        let encoded = URL_SAFE_NO_PAD.encode(id);
        assert_eq!(encoded.len(), 43);
        assert_eq!(parse_id(&encoded), Some(id));
        assert_eq!(parse_id("short"), None);
        assert_eq!(parse_id(&"!".repeat(43)), None);
        assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd") && !ct_eq(b"ab", b"abc"));
    }
}
