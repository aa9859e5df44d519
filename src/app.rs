//! The composition root: builds the long-lived clients once (Cognito SDK, reqwest for the
//! JWKS, the pooled upstream client) and holds `handle`, the one branch every request takes:
//! route → health | auth API | gate → `forward::to_upstream` → proxy. Every failure becomes
//! HTTP through `ApiError::into_response`, and each request is logged once here.

use std::net::SocketAddr;
use std::sync::Arc;

use aws_config::SdkConfig;
use http::header::{HeaderValue, AUTHORIZATION, HOST};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::auth::{json, AuthApi};
use crate::body::Body;
use crate::config::{Config, ConfigError, Convention, SharedBackend};
use crate::error::ApiError;
use crate::forward::{self, Decision, Policy, X_REQUEST_ID};
use crate::gate::{Gate, Identity};
use crate::headers::IdentityHeaders;
use crate::idp::{Cognito, CognitoSettings};
use crate::limit::{Limiter, Quota};
use crate::metrics::{JwksStats, Metrics, SharedMetrics};
use crate::pages::{Pages, Templates};
use crate::proxy::{self, Upstream};
use crate::router::{self, Refused, Route, Router, Rule};
use crate::session::{self, SessionAuth, Sessions};
use crate::shared::{Shared, SharedError};
use crate::tunnel::Tunnels;
use crate::verify::{self, JwksCache, JwksSettings, Verifier, VerifierSettings};

/// The whole sidecar behind the listener; cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
    /// This handle serves `forward_auth.listen`: the check, and nothing else.
    check_listener: bool,
}

/// What the gate decided about a request it lets through.
struct Admitted {
    /// The verified token's or session's identity; `None` on a public route without one.
    identity: Option<Arc<Identity>>,
    /// An `Authorization` for the app (a session's access token, `session.forward_access_token`).
    session_token: Option<HeaderValue>,
}

struct Inner {
    router: Router,
    auth: AuthApi,
    gate: Gate,
    upstream: Upstream,
    policy: Policy,
    tunnels: Tunnels,
    shared: Option<Shared>,
    sessions: Option<Sessions>,
    pages: Option<Pages>,
    max_token_bytes: usize,
    access_log: bool,
    metrics: SharedMetrics,
    by_address: Limiter<std::net::IpAddr>,
    openapi: bytes::Bytes,
    forward_auth: crate::config::ForwardAuthConfig,
    /// When `removed_from_answer` last warned.
    answer_warned: std::sync::Mutex<Option<tokio::time::Instant>>,
}

/// How often `removed_from_answer` may warn.
const ANSWER_WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Why the app could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("could not build the HTTP client: {0}")]
    Client(String),
}

impl App {
    /// Validates `config` and builds every client. `sdk` carries the AWS credentials chain
    /// (the default chain in `main`, static test credentials in tests).
    pub fn build(config: &Config, sdk: &SdkConfig) -> Result<App, BuildError> {
        let d = config.validate()?;
        let metrics: SharedMetrics = Arc::new(Metrics::new());
        let c = &config.cognito;
        let idp = Arc::new(Cognito::new(
            sdk,
            CognitoSettings {
                region: d.region.clone(),
                user_pool_id: d.user_pool_id.clone(),
                client_id: d.client_id.clone(),
                client_secret: c.client_secret.clone(),
                endpoint_url: c.endpoint_url.clone(),
                flow: c.auth_flow,
                timeout: c.timeout,
                max_attempts: c.max_attempts,
            },
            Arc::clone(&metrics),
        ));

        let v = &config.verify;
        let http = reqwest::Client::builder()
            .timeout(v.jwks_timeout)
            .connect_timeout(v.jwks_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cognito-sidecar/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BuildError::Client(e.to_string()))?;
        let algorithm = verify::parse_alg(&v.algorithm);
        let jwks = JwksCache::new(
            JwksSettings {
                url: d.jwks_url.clone(),
                algorithm: verify::alg_name(algorithm),
                max_bytes: v.jwks_max_bytes,
                cooldown: v.jwks_cooldown,
                refresh_interval: v.jwks_refresh_interval,
            },
            http,
        );
        let verifier = Verifier::new(
            VerifierSettings {
                issuer: d.issuer.clone(),
                algorithm,
                accept_access: v.token_use.iter().any(|u| u == "access"),
                accept_id: v.token_use.iter().any(|u| u == "id"),
                client_ids: d.client_ids.clone(),
                leeway_secs: v.leeway.as_secs(),
            },
            jwks,
        );
        let identity = IdentityHeaders::new(&config.identity).map_err(|_| ConfigError {
            key: "identity.headers".into(),
            problem: "invalid header name".into(),
        })?;
        let gate = Gate::new(
            verifier,
            identity,
            v.cache_max_entries,
            v.revocation_ttl,
            Arc::clone(&metrics),
        );
        let shared = match config.shared.backend {
            SharedBackend::Memory => None,
            SharedBackend::Redis => Some(
                Shared::new(
                    &config.shared,
                    gate.revocations().clone(),
                    Arc::clone(&metrics),
                )
                .map_err(|e| match e {
                    SharedError::Url(p) => ConfigError {
                        key: "shared.url".into(),
                        problem: p,
                    },
                    SharedError::Ca(p) => ConfigError {
                        key: "shared.tls_ca_file".into(),
                        problem: p,
                    },
                })?,
            ),
        };
        let rl = &config.rate_limit;
        let mut by_username = Limiter::new(
            Quota {
                per_minute: rl.username_per_minute,
                burst: rl.username_burst,
            },
            rl.max_tracked,
        );
        let mut by_address = Limiter::new(
            Quota {
                per_minute: rl.address_per_minute,
                burst: rl.address_burst,
            },
            rl.max_tracked,
        );
        if let Some(s) = &shared {
            by_username = by_username.with_shared(s.clone(), "username");
            by_address = by_address.with_shared(s.clone(), "address");
        }
        let by_username = Arc::new(by_username);
        let (sessions, pages) = if config.session.enabled {
            let templates =
                Templates::load(config.session.templates_dir.as_deref()).map_err(|problem| {
                    ConfigError {
                        key: "session.templates_dir".into(),
                        problem,
                    }
                })?;
            let sessions = Sessions::new(
                &config.session,
                Arc::clone(&idp),
                gate.clone(),
                shared.clone(),
                Arc::clone(&metrics),
            );
            let pages = Pages::new(
                sessions.clone(),
                Arc::clone(&idp),
                gate.clone(),
                shared.clone(),
                Arc::clone(&by_username),
                Arc::clone(&metrics),
                templates,
                config.api.max_body_bytes,
            );
            (Some(sessions), Some(pages))
        } else {
            (None, None)
        };
        let upstream = Upstream::new(&config.upstream);
        let policy =
            Policy::new(config, &d.upstream, gate.identity_headers_arc()).map_err(|problem| {
                ConfigError {
                    key: "upstream.url".into(),
                    problem: problem.into(),
                }
            })?;
        let tunnels = Tunnels::new(&config.server, Arc::clone(&metrics));
        let upstream = upstream.with_tunnels(tunnels.clone());
        Ok(App {
            inner: Arc::new(Inner {
                router: Router::new(config),
                auth: AuthApi::new(
                    idp,
                    gate.clone(),
                    &config.api,
                    v.max_token_bytes,
                    by_username,
                    crate::auth::RecoveryLimits::new(rl, shared.as_ref()),
                    shared.clone(),
                    Arc::clone(&metrics),
                ),
                shared,
                sessions,
                pages,
                gate,
                upstream,
                policy,
                tunnels,
                max_token_bytes: v.max_token_bytes,
                access_log: config.log.access,
                metrics,
                by_address,
                openapi: openapi_document(config),
                forward_auth: config.forward_auth.clone(),
                answer_warned: std::sync::Mutex::new(None),
            }),
            check_listener: false,
        })
    }

    /// Starts the background JWKS loader/refresher (fetches immediately).
    /// Starts the background work: the JWKS loader/refresher (fetches immediately) and, with
    /// the fleet backend, its connection, subscriber and writer.
    pub fn start_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = vec![self.inner.gate.verifier().jwks().spawn_refresher()];
        if let Some(shared) = &self.inner.shared {
            tasks.extend(shared.start());
        }
        tasks
    }

    /// True once the pool's signing keys are loaded and, with the fleet backend, the logout
    /// list is caught up (or Redis is unreachable and `shared.require_for_ready` is off).
    pub fn is_ready(&self) -> bool {
        self.inner.gate.is_ready() && self.inner.shared.as_ref().is_none_or(Shared::is_ready)
    }

    /// The fleet backend, when `shared.backend = "redis"`.
    pub fn shared(&self) -> Option<&Shared> {
        self.inner.shared.as_ref()
    }

    /// The metrics (the server counts connections into them).
    pub fn metrics(&self) -> &SharedMetrics {
        &self.inner.metrics
    }

    /// The upgraded-connection tunnels (the server closes them at shutdown).
    pub fn tunnels(&self) -> &Tunnels {
        &self.inner.tunnels
    }

    /// The Prometheus text exposition, JWKS state included.
    pub fn render_metrics(&self) -> String {
        if let Some(s) = &self.inner.sessions {
            self.inner.metrics.sessions_active(s.count());
        }
        let jwks = self.jwks();
        self.inner.metrics.render(&JwksStats {
            fetches: jwks.fetch_count(),
            failures: jwks.failure_count(),
            keys: jwks.key_count(),
            age: jwks.key_age(),
        })
    }

    /// A handle for `forward_auth.listen`: it serves the forward-auth check and answers
    /// `404 not_found` to everything else.
    pub fn check_listener(&self) -> App {
        App {
            inner: Arc::clone(&self.inner),
            check_listener: true,
        }
    }

    /// The JWKS cache (fetch counters for tests and metrics).
    pub fn jwks(&self) -> &JwksCache {
        self.inner.gate.verifier().jwks()
    }

    /// `handle` on an owned `App`, for a future that borrows nothing (to be boxed).
    pub async fn handle_owned(self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        self.handle(req, peer).await
    }

    /// Serves one request from `peer`. Never fails: errors become JSON answers.
    pub async fn handle(&self, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let inner = &*self.inner;
        let start = tokio::time::Instant::now();
        let request_id = forward::request_id(req.headers());
        req.headers_mut()
            .insert(X_REQUEST_ID.clone(), request_id.clone());
        let method = req.method().clone();
        // The URI's parts are shared bytes: a clone for the access line copies no path.
        let uri = req.uri().clone();
        let path = uri.path();
        let mut sub: Option<String> = None;
        let mut set_cookie: Option<HeaderValue> = None;
        let alias = crate::headers::framing_alias(req.headers()).is_some();
        let route = if alias {
            Err(Refused::FramingAlias)
        } else if self.check_listener {
            if inner.router.is_check(path) {
                Ok(Route::Check)
            } else {
                Ok(Route::NotHere)
            }
        } else {
            inner.router.route(&method, path)
        };
        let result = match route {
            Err(Refused::Path) => Err(ApiError::bad_request(
                "invalid_path",
                "the request path is not in canonical form (dot segments, //, \\, ; or an encoded / \\ . ; % or letter)",
            )),
            Err(Refused::Method) => Err(ApiError::bad_request(
                "invalid_method",
                "the request method must be an upper-case token",
            )),
            Err(Refused::FramingAlias) => Err(ApiError::bad_request(
                "invalid_header",
                "a header name is another spelling of Content-Length, Transfer-Encoding, Host, Connection, Upgrade, Expect or TE",
            )),
            Ok(Route::NotHere) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "this listener serves only the forward-auth check",
            )),
            Ok(Route::Check) => {
                let result = self
                    .check(&req, peer, &mut sub, &mut set_cookie)
                    .await;
                inner
                    .metrics
                    .check(result.as_ref().map_or_else(|e| e.code, |_| "allowed"));
                let code = match &result {
                    Ok(_) => "ok",
                    Err(e) => e.code,
                };
                let mut resp = match result {
                    Ok(r) => r,
                    Err(e) => e.into_response(),
                };
                crate::forward_auth::mark(&mut resp, code);
                Ok(resp)
            }
            Ok(Route::Live) => Ok(json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))),
            Ok(Route::WrongMethod(allow)) => Err(ApiError::method_not_allowed(allow)),
            Ok(Route::OpenApi) => {
                let mut r = Response::new(crate::body::full(inner.openapi.clone()));
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Ok(r)
            }
            Ok(Route::Ready) if self.is_ready() => Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "status": "ready" }),
            )),
            Ok(Route::Ready) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the signing keys of the user pool are not loaded yet",
            )),
            Ok(Route::Auth(ep)) => {
                let client = inner.policy.client_ip(peer.ip(), req.headers());
                let result = match inner.by_address.check(&client).await {
                    Err(wait) => {
                        inner.metrics.rate_limited("address");
                        Err(ApiError::too_many_requests(
                            "rate_limited",
                            "too many requests from this address; retry later",
                            wait.as_secs_f64().ceil() as u64,
                        ))
                    }
                    Ok(()) => inner.auth.handle(ep, req, client).await.map(|(resp, s)| {
                        sub = s;
                        resp
                    }),
                };
                inner
                    .metrics
                    .auth(ep.name(), result.as_ref().err().map_or("ok", |e| e.code));
                result
            }
            Ok(Route::Page(page)) => match &inner.pages {
                Some(pages) => {
                    let client = inner.policy.client_ip(peer.ip(), req.headers());
                    if req.method() == http::Method::POST {
                        match inner.by_address.check(&client).await {
                            Err(wait) => {
                                inner.metrics.rate_limited("address");
                                Err(ApiError::too_many_requests(
                                    "rate_limited",
                                    "too many requests from this address; retry later",
                                    wait.as_secs_f64().ceil() as u64,
                                ))
                            }
                            Ok(()) => pages.serve(page, req, client).await,
                        }
                    } else {
                        pages.serve(page, req, client).await
                    }
                }
                None => Err(ApiError::internal()),
            },
            Ok(Route::Gate(rule)) => {
                let public = rule == Rule::Public;
                let result = self
                    .pass(rule, req, peer, &request_id, &mut sub, &mut set_cookie)
                    .await;
                match &result {
                    Ok(_) => inner.metrics.forwarded(public),
                    Err(e) => inner.metrics.refused(e.code),
                }
                result
            }
        };
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => {
                if e.is_client_fault() {
                    tracing::debug!(code = e.code, "refused");
                } else {
                    tracing::warn!(code = e.code, "failed");
                }
                e.into_response()
            }
        };
        if inner.access_log {
            crate::logging::access(&crate::logging::Access {
                request_id: request_id.to_str().unwrap_or("-"),
                method: method.as_str(),
                path,
                status: resp.status().as_u16(),
                latency: start.elapsed(),
                sub: sub.as_deref().unwrap_or("-"),
            });
        }
        if let Some(c) = set_cookie {
            resp.headers_mut().append(http::header::SET_COOKIE, c);
        }
        resp.headers_mut().insert(X_REQUEST_ID.clone(), request_id);
        resp
    }

    /// The gate: decide (`decide`), then build what the app receives
    /// (`forward::to_upstream`) and forward. `set_cookie` carries a cookie change for the
    /// answer (an ended session's cookie is cleared).
    async fn pass(
        &self,
        rule: Rule,
        req: Request<Incoming>,
        peer: SocketAddr,
        request_id: &HeaderValue,
        sub: &mut Option<String>,
        set_cookie: &mut Option<HeaderValue>,
    ) -> Result<Response<Body>, ApiError> {
        let inner = &self.inner;
        let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let Admitted {
            identity,
            session_token,
        } = self
            .decide(&rule, req.method(), req.headers(), target, sub, set_cookie)
            .await?;
        let (parts, body) = req.into_parts();
        let decision = Decision {
            identity: identity.as_deref().map(|id| id.headers.as_slice()),
            peer: peer.ip(),
            request_id,
            authorization: session_token.as_ref(),
        };
        let out = forward::to_upstream(parts, &decision, &inner.policy)?;
        let started = tokio::time::Instant::now();
        match inner
            .upstream
            .forward(Request::from_parts(out.parts, body), out.upgrade)
            .await
        {
            Ok(mut resp) => {
                inner.metrics.upstream(started.elapsed());
                let removed = forward::from_upstream(resp.headers_mut(), &inner.policy);
                if removed.any() {
                    self.removed_from_answer(removed);
                }
                Ok(resp)
            }
            Err(e) => {
                match e {
                    // Our limit, or the client's broken body: not the app's failure (counted
                    // by the gate metrics).
                    proxy::ProxyError::TooManyTunnels | proxy::ProxyError::ClientBody => {}
                    proxy::ProxyError::Timeout => inner.metrics.upstream_error("timeout"),
                    _ => inner.metrics.upstream_error("unavailable"),
                }
                Err(e.into())
            }
        }
    }
}

impl App {
    /// Counts what `forward::from_upstream` removed, and warns at most once a minute: an app
    /// that sets the sidecar's cookie or identity headers is misconfigured or compromised, and
    /// one log line per answer would let it flood the log.
    fn removed_from_answer(&self, removed: forward::Removed) {
        let m = &self.inner.metrics;
        m.response_removed("session_cookie", removed.session_cookies);
        m.response_removed("identity", removed.identity);
        m.response_removed("framing", removed.framing);
        let now = tokio::time::Instant::now();
        let mut last = self
            .inner
            .answer_warned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_none_or(|at| now.duration_since(at) >= ANSWER_WARN_EVERY) {
            *last = Some(now);
            drop(last);
            tracing::warn!(
                session_cookies = removed.session_cookies,
                identity_headers = removed.identity,
                framing_aliases = removed.framing,
                "removed headers the app may not send from its answer (sidecar_upstream_response_headers_removed_total counts every one; this line at most once a minute)"
            );
        }
    }

    /// The gate's decision, the one both the proxy path (`pass`) and the forward-auth check
    /// (`check`) take: authenticate (optional on public routes) by bearer token or, with
    /// browser sessions on and no `Authorization`, by the session cookie (CSRF and WebSocket
    /// origin rules included); then authorize by `rule`. `target` is the request's path and
    /// query (the return path of a sign-in redirect).
    async fn decide(
        &self,
        rule: &Rule,
        method: &Method,
        headers: &HeaderMap,
        target: &str,
        sub: &mut Option<String>,
        set_cookie: &mut Option<HeaderValue>,
    ) -> Result<Admitted, ApiError> {
        let inner = &self.inner;
        let bearer_sent = headers.contains_key(AUTHORIZATION);
        let mut session_token: Option<HeaderValue> = None;
        let identity: Option<Arc<Identity>> = match (&inner.sessions, bearer_sent) {
            (Some(sessions), false) => match sessions.authenticate(headers).await {
                SessionAuth::Valid {
                    identity,
                    access_token,
                } => {
                    let cfg = sessions.config();
                    let upgrade = headers.contains_key(http::header::UPGRADE);
                    let refused = if upgrade
                        && !session::websocket_origin_allowed(headers, &cfg.allowed_origins)
                    {
                        Some("websocket")
                    } else if !session::csrf_allows(method, headers, &cfg.allowed_origins) {
                        Some("request")
                    } else {
                        None
                    };
                    match refused {
                        // A public route goes on without the identity the cookie would give.
                        Some(_) if *rule == Rule::Public => None,
                        Some(kind) => {
                            inner.metrics.csrf_refused(kind);
                            return Err(ApiError::csrf_rejected());
                        }
                        None => {
                            if cfg.forward_access_token {
                                session_token =
                                    HeaderValue::from_str(&format!("Bearer {access_token}")).ok();
                            }
                            Some(identity)
                        }
                    }
                }
                SessionAuth::Ended => {
                    *set_cookie = Some(session::session_cookie("", 0));
                    None
                }
                SessionAuth::None => None,
            },
            // Optional on public routes: a token that verifies adds identity headers (and is
            // forwarded); anything else is removed before the app sees it.
            (_, true) if *rule == Rule::Public => {
                match verify::bearer(headers, inner.max_token_bytes) {
                    Ok(token) => inner.gate.check(token).await.ok(),
                    Err(_) => None,
                }
            }
            (_, true) => {
                let token = verify::bearer(headers, inner.max_token_bytes)?;
                Some(inner.gate.check(token).await?)
            }
            (None, false) => None,
        };
        if let Some(id) = &identity {
            *sub = Some(id.claims.sub.clone());
        }
        match (rule, &identity) {
            (Rule::Public, _) => {}
            (_, None) => return Err(self.unauthenticated(method, headers, target)),
            (Rule::Groups(required), Some(id)) => {
                if !id.claims.groups.iter().any(|g| required.contains(g)) {
                    return Err(ApiError::insufficient_scope());
                }
            }
            (Rule::Authenticated, Some(_)) => {}
        }
        Ok(Admitted {
            identity,
            session_token,
        })
    }

    /// The forward-auth check: the original request a trusted front proxy asks about
    /// (`forward_auth::original`), through the gate's own rules (canonical method and path,
    /// `Router::rule_for`, `decide`). 200 with every identity header of the map (empty when
    /// the token has no such claim, so a proxy that copies them overwrites a client's), or
    /// the gate's refusal, shaped for nginx with that convention. Never proxies.
    async fn check(
        &self,
        req: &Request<Incoming>,
        peer: SocketAddr,
        sub: &mut Option<String>,
        set_cookie: &mut Option<HeaderValue>,
    ) -> Result<Response<Body>, ApiError> {
        let inner = &self.inner;
        let fa = &inner.forward_auth;
        if !inner.policy.is_trusted(peer.ip()) {
            return Err(ApiError::bad_request(
                "untrusted_proxy",
                "the forward-auth check answers only the front proxies in server.trusted_proxies",
            ));
        }
        let original = crate::forward_auth::original(
            fa.convention,
            &fa.path,
            req.method(),
            req.uri(),
            req.headers(),
        );
        let decided = match original {
            Ok(o) => self.check_original(o, req.headers(), sub, set_cookie).await,
            // A misconfigured front proxy: 400 whatever the convention (nginx makes it a 500).
            Err(e) if e.code == "original_request_invalid" => return Err(e),
            // A path or method the gate refuses.
            Err(e) => Err(e),
        };
        let identity = match decided {
            Ok(identity) => identity,
            Err(e) if fa.convention == Convention::Nginx => {
                return Err(crate::forward_auth::for_auth_request(e))
            }
            Err(e) => return Err(e),
        };
        let mut resp = Response::new(crate::body::full(bytes::Bytes::new()));
        let h = resp.headers_mut();
        for name in inner.gate.identity_headers().names() {
            h.insert(name.clone(), HeaderValue::from_static(""));
        }
        if let Some(id) = identity {
            for (name, value) in &id.headers {
                h.insert(name.clone(), value.clone());
            }
        }
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        Ok(resp)
    }

    /// The gate's rules for the original request of a check; its identity if it passes.
    async fn check_original(
        &self,
        original: crate::forward_auth::Original,
        check_headers: &HeaderMap,
        sub: &mut Option<String>,
        set_cookie: &mut Option<HeaderValue>,
    ) -> Result<Option<Arc<Identity>>, ApiError> {
        let inner = &self.inner;
        if !router::is_canonical_method(&original.method) {
            return Err(forward::invalid_method());
        }
        // As on the proxy path: no route of the app allows CONNECT.
        if original.method == Method::CONNECT {
            return Err(ApiError::method_not_allowed(router::APP_METHODS));
        }
        let rule = inner
            .router
            .rule_for(&original.method, original.path())
            .map_err(|_| forward::invalid_path())?;
        // The original request's headers: the ones the front proxy passed on, with its Host.
        let mut headers = check_headers.clone();
        headers.remove(HOST);
        if let Some(host) = original.host {
            if !forward::valid_host(&host) {
                return Err(forward::invalid_host());
            }
            headers.insert(HOST, host);
        }
        let admitted = self
            .decide(
                &rule,
                &original.method,
                &headers,
                original.target.as_str(),
                sub,
                set_cookie,
            )
            .await?;
        Ok(admitted.identity)
    }

    /// No token and no session: a browser navigation is sent to sign in (when sessions are
    /// on), anything else gets `401 token_missing`.
    fn unauthenticated(&self, method: &Method, headers: &HeaderMap, target: &str) -> ApiError {
        match &self.inner.sessions {
            Some(sessions) if session::is_navigation(method, headers) => {
                let back = session::safe_return(target);
                let encoded: String = form_urlencoded::byte_serialize(back.as_bytes()).collect();
                let location = format!("{}/sign-in?return={encoded}", sessions.config().prefix);
                match HeaderValue::from_str(&location) {
                    Ok(l) => ApiError::sign_in_required(l),
                    Err(_) => ApiError::token_missing(),
                }
            }
            _ => ApiError::token_missing(),
        }
    }
}

/// The OpenAPI document of the auth API (`src/openapi.json`, written for the default paths
/// and statuses), with the configured prefix and health paths and the statuses of
/// `api.compatibility`.
fn openapi_document(config: &Config) -> bytes::Bytes {
    let mut doc: serde_json::Value =
        serde_json::from_str(include_str!("openapi.json")).unwrap_or_default();
    if config.api.compatibility == crate::config::Compatibility::Seed {
        crate::compat::openapi(&mut doc);
    }
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        let old = std::mem::take(paths);
        for (path, item) in old {
            let path = if let Some(rest) = path.strip_prefix("/api/user") {
                format!("{}{rest}", config.api.prefix)
            } else if path == "/healthz" {
                config.health.live_path.clone()
            } else if path == "/readyz" {
                config.health.ready_path.clone()
            } else {
                path
            };
            paths.insert(path, item);
        }
    }
    bytes::Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
}
