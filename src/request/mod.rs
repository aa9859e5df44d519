//! The per-request phases: route → authenticate → authorize → build what the app receives
//! → forward → log, for the proxy path and for the forward-auth check (another entry into the
//! same phases). `Service` holds what they need, built once by `app::App::build`.

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{HeaderValue, AUTHORIZATION, HOST};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::auth_api::{json, AuthApi};
use crate::browser::pages::Pages;
use crate::browser::session::{self, SessionAuth, Sessions};
use crate::config::Convention;
use crate::error::{ApiError, Budget, ErrorCode};
use crate::fleet::Shared;
use crate::gate::{verify, Gate, Identity};
use crate::http::body::Body;
use crate::http::headers::X_REQUEST_ID;
use crate::limit::Limiter;
use crate::telemetry::metrics::SharedMetrics;
use crate::telemetry::trace::{self, Traces};
use crate::upstream::tunnel::Tunnels;
use crate::upstream::{self, Upstream};

pub mod forward_auth;
pub mod outbound;
pub mod router;

use outbound::{Decision, Policy};
use router::{Refused, Route, Router, Rule};

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// `server.listen`: the auth API, the pages, health and the gate in front of the app.
    Main,
    /// `forward_auth.listen`: the forward-auth check and nothing else (`404 not_found`).
    Check,
}

/// One request's state across the phases: who sent it, its id, and what the answer and the
/// access line need from the phases (the caller's `sub`, a cookie change).
struct RequestCtx {
    peer: SocketAddr,
    request_id: HeaderValue,
    /// The request's trace (`traces.enabled`).
    trace: Option<opentelemetry::Context>,
    /// The verified token's or session's identity, for the access line's `sub` (shared with
    /// the cache entry: nothing is copied per request).
    identity: Option<Arc<Identity>>,
    /// The auth API's signed-in user, for the access line.
    sub: Option<String>,
    /// A cookie change for the answer (an ended session's cookie is cleared).
    set_cookie: Option<HeaderValue>,
}

/// What the gate decided about a request it lets through.
struct Admitted {
    /// The verified token's or session's identity; `None` on a public route without one.
    identity: Option<Arc<Identity>>,
    /// An `Authorization` for the app (a session's access token, `session.forward_access_token`).
    session_token: Option<HeaderValue>,
}

/// Everything a request may need, built once by `App::build`.
pub(crate) struct Service {
    pub(crate) router: Router,
    pub(crate) auth: AuthApi,
    pub(crate) gate: Gate,
    pub(crate) upstream: Upstream,
    pub(crate) policy: Policy,
    pub(crate) tunnels: Tunnels,
    pub(crate) shared: Option<Shared>,
    pub(crate) sessions: Option<Sessions>,
    pub(crate) pages: Option<Pages>,
    pub(crate) max_token_bytes: usize,
    pub(crate) access_log: bool,
    pub(crate) metrics: SharedMetrics,
    pub(crate) by_address: Limiter<std::net::IpAddr>,
    pub(crate) openapi: bytes::Bytes,
    pub(crate) forward_auth: crate::config::ForwardAuthConfig,
    /// `traces.enabled`: the tracer; `None` leaves trace headers alone.
    pub(crate) traces: Option<Arc<Traces>>,
    /// When `removed_from_answer` last warned.
    pub(crate) answer_warned: std::sync::Mutex<Option<tokio::time::Instant>>,
}

/// How often `removed_from_answer` may warn.
const ANSWER_WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl Service {
    /// True once the pool's signing keys are loaded and, with the fleet backend, the logout
    /// list is caught up (or Redis is unreachable and `shared.require_for_ready` is off).
    pub(crate) fn is_ready(&self) -> bool {
        self.gate.is_ready() && self.shared.as_ref().is_none_or(Shared::is_ready)
    }

    /// Serves one request that came in on `listener` from `peer`. Never fails: errors
    /// become JSON answers, and the request is logged once here. With traces on, the request
    /// runs in its span's context (the parent of every span below it).
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        listener: Listener,
    ) -> Response<Body> {
        let Some(traces) = &self.traces else {
            return self.serve(req, peer, listener, None).await;
        };
        let trusted = self.policy.is_trusted(peer.ip());
        let cx = traces.request(
            req.headers(),
            trusted,
            req.method().as_str(),
            req.uri().path(),
        );
        use opentelemetry::context::FutureExt as _;
        // Boxed: the traced future is the untraced one plus its context, not twice its size.
        let resp = Box::pin(self.serve(req, peer, listener, Some(cx.clone())))
            .with_context(cx.clone())
            .await;
        let id = resp
            .headers()
            .get(&X_REQUEST_ID)
            .and_then(|v| v.to_str().ok());
        trace::end_request(&cx, resp.status().as_u16(), id.unwrap_or("-"));
        resp
    }

    async fn serve(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        listener: Listener,
        trace: Option<opentelemetry::Context>,
    ) -> Response<Body> {
        let inner = self;
        let start = tokio::time::Instant::now();
        let request_id = outbound::request_id(req.headers());
        req.headers_mut()
            .insert(X_REQUEST_ID.clone(), request_id.clone());
        let method = req.method().clone();
        // The URI's parts are shared bytes: a clone for the access line copies no path.
        let uri = req.uri().clone();
        let path = uri.path();
        let amzn_trace_id = inner
            .access_log
            .then(|| crate::http::headers::amzn_trace_id(req.headers()))
            .flatten();
        let mut ctx = RequestCtx {
            peer,
            request_id,
            trace,
            identity: None,
            sub: None,
            set_cookie: None,
        };
        let alias = crate::http::headers::framing_alias(req.headers()).is_some();
        let route = match listener {
            _ if alias => Err(Refused::FramingAlias),
            Listener::Check if inner.router.is_check(path) => Ok(Route::Check),
            Listener::Check => Ok(Route::NotHere),
            Listener::Main => inner.router.route(&method, path),
        };
        let result = match route {
            Err(Refused::Path) => Err(ErrorCode::InvalidPath.into()),
            Err(Refused::Method) => Err(ErrorCode::InvalidMethod.into()),
            Err(Refused::FramingAlias) => Err(ErrorCode::InvalidHeader.into()),
            Ok(Route::NotHere) => Err(ApiError::new(
                ErrorCode::NotFound,
                "this listener serves only the forward-auth check",
            )),
            Ok(Route::Check) => {
                let result = self.check(&req, &mut ctx).await;
                inner.metrics.check(
                    result
                        .as_ref()
                        .map_or_else(|e| e.code.as_str(), |_| "allowed"),
                );
                let code = match &result {
                    Ok(_) => "ok",
                    Err(e) => e.code.as_str(),
                };
                let mut resp = match result {
                    Ok(r) => r,
                    Err(e) => e.into_response(),
                };
                forward_auth::mark(&mut resp, code);
                Ok(resp)
            }
            Ok(Route::Live) => Ok(json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))),
            Ok(Route::WrongMethod(allow)) => Err(ApiError::method_not_allowed(allow)),
            Ok(Route::OpenApi) => {
                let mut r = Response::new(crate::http::body::full(inner.openapi.clone()));
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
            Ok(Route::Ready) => Err(ErrorCode::NotReady.into()),
            Ok(Route::Auth(ep)) => {
                let client = inner.policy.client_ip(peer.ip(), req.headers());
                let result = match self.address_budget(client).await {
                    Err(e) => Err(e),
                    Ok(()) => inner.auth.handle(ep, req, client).await.map(|(resp, s)| {
                        ctx.sub = s;
                        resp
                    }),
                };
                inner.metrics.auth(
                    ep.name(),
                    result.as_ref().err().map_or("ok", |e| e.code.as_str()),
                );
                result
            }
            Ok(Route::Page(page)) => match &inner.pages {
                Some(pages) => {
                    let client = inner.policy.client_ip(peer.ip(), req.headers());
                    // A form post may sign in: the same address budget as the auth API.
                    if req.method() == http::Method::POST {
                        match self.address_budget(client).await {
                            Err(e) => Err(e),
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
                let result = self.pass(rule, req, &mut ctx).await;
                match &result {
                    Ok(_) => inner.metrics.forwarded(public),
                    Err(e) => inner.metrics.refused(e.code.as_str()),
                }
                result
            }
        };
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => {
                if e.is_client_fault() {
                    tracing::debug!(code = e.code.as_str(), "refused");
                } else {
                    tracing::warn!(code = e.code.as_str(), "failed");
                }
                e.into_response()
            }
        };
        if inner.access_log {
            crate::telemetry::logging::access(&crate::telemetry::logging::Access {
                request_id: ctx.request_id.to_str().unwrap_or("-"),
                method: method.as_str(),
                path,
                status: resp.status().as_u16(),
                latency: start.elapsed(),
                sub: match (&ctx.identity, &ctx.sub) {
                    (Some(id), _) => &id.claims.sub,
                    (None, Some(sub)) => sub,
                    (None, None) => "-",
                },
                trace_id: ctx.trace.as_ref().map(trace::trace_id).as_deref(),
                amzn_trace_id: amzn_trace_id.as_ref().and_then(|v| v.to_str().ok()),
            });
        }
        if let Some(c) = ctx.set_cookie {
            resp.headers_mut().append(http::header::SET_COOKIE, c);
        }
        resp.headers_mut()
            .insert(X_REQUEST_ID.clone(), ctx.request_id);
        resp
    }

    /// The address budget of a request that may sign in (the auth API, a form post).
    async fn address_budget(&self, client: std::net::IpAddr) -> Result<(), ApiError> {
        self.by_address.check(&client).await.map_err(|wait| {
            self.metrics.rate_limited("address");
            ApiError::rate_limited(Budget::Address, wait)
        })
    }

    /// The gate: decide (`decide`), then build what the app receives
    /// (`outbound::to_upstream`) and forward.
    async fn pass(
        &self,
        rule: Rule,
        req: Request<Incoming>,
        ctx: &mut RequestCtx,
    ) -> Result<Response<Body>, ApiError> {
        let inner = self;
        let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        // Not a parent: running `decide` in the span's context would wrap the hot path's
        // future (what it calls out to is under the request span instead).
        let verify = trace::Span::start("verify", trace::Kind::Internal, Vec::new);
        let decided = self
            .decide(&rule, req.method(), req.headers(), target, ctx)
            .await;
        verify.end(decided.as_ref().err().map(|e| e.code.as_str()));
        let Admitted {
            identity,
            session_token,
        } = decided?;
        let (parts, body) = req.into_parts();
        let app_span = trace::Span::start("upstream", trace::Kind::Client, Vec::new);
        let trace_headers = app_span.headers();
        let decision = Decision {
            identity: identity.as_deref().map(|id| id.headers.as_slice()),
            peer: ctx.peer.ip(),
            request_id: &ctx.request_id,
            authorization: session_token.as_ref(),
            trace: trace_headers.as_ref(),
        };
        let out = outbound::to_upstream(parts, &decision, &inner.policy)?;
        let started = tokio::time::Instant::now();
        let forwarded = inner
            .upstream
            .forward(Request::from_parts(out.parts, body), out.upgrade)
            .await;
        app_span.set(|| {
            trace::Attribute::new(
                "http.response.status_code",
                forwarded
                    .as_ref()
                    .map_or(0, |r| i64::from(r.status().as_u16())),
            )
        });
        app_span.end(forwarded.as_ref().err().map(upstream::ProxyError::class));
        match forwarded {
            Ok(mut resp) => {
                inner.metrics.upstream(started.elapsed());
                let removed = outbound::from_upstream(resp.headers_mut(), &inner.policy);
                if removed.any() {
                    self.removed_from_answer(removed);
                }
                Ok(resp)
            }
            Err(e) => {
                match e {
                    // Our limit, or the client's broken body: not the app's failure (counted
                    // by the gate metrics).
                    upstream::ProxyError::TooManyTunnels | upstream::ProxyError::ClientBody => {}
                    upstream::ProxyError::Timeout => inner.metrics.upstream_error("timeout"),
                    _ => inner.metrics.upstream_error("unavailable"),
                }
                Err(e.into())
            }
        }
    }
}

impl Service {
    /// Counts what `outbound::from_upstream` removed, and warns at most once a minute: an app
    /// that sets the sidecar's cookie or identity headers is misconfigured or compromised, and
    /// one log line per answer would let it flood the log.
    fn removed_from_answer(&self, removed: outbound::Removed) {
        let m = &self.metrics;
        m.response_removed("session_cookie", removed.session_cookies);
        m.response_removed("identity", removed.identity);
        m.response_removed("framing", removed.framing);
        let now = tokio::time::Instant::now();
        let mut last = self
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
    /// query (the return path of a sign-in redirect). Sets `ctx.identity` for the access line and
    /// `ctx.set_cookie` when a session ended.
    async fn decide(
        &self,
        rule: &Rule,
        method: &Method,
        headers: &HeaderMap,
        target: &str,
        ctx: &mut RequestCtx,
    ) -> Result<Admitted, ApiError> {
        let inner = self;
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
                    ctx.set_cookie = Some(session::session_cookie("", 0));
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
        ctx.identity.clone_from(&identity);
        match (rule, &identity) {
            (Rule::Public, _) => {}
            (_, None) => return Err(self.unauthenticated(method, headers, target)),
            (Rule::Require(required), Some(id)) => {
                required.check(&id.claims).map_err(ApiError::unmet)?;
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
        ctx: &mut RequestCtx,
    ) -> Result<Response<Body>, ApiError> {
        let inner = self;
        let fa = &inner.forward_auth;
        if !inner.policy.is_trusted(ctx.peer.ip()) {
            return Err(ErrorCode::UntrustedProxy.into());
        }
        let original = forward_auth::original(
            fa.convention,
            &fa.path,
            req.method(),
            req.uri(),
            req.headers(),
        );
        let decided = match original {
            Ok(o) => self.check_original(o, req.headers(), ctx).await,
            // A misconfigured front proxy: 400 whatever the convention (nginx makes it a 500).
            Err(e) if e.code == ErrorCode::OriginalRequestInvalid => return Err(e),
            // A path or method the gate refuses.
            Err(e) => Err(e),
        };
        let identity = match decided {
            Ok(identity) => identity,
            Err(e) if fa.convention == Convention::Nginx => {
                return Err(forward_auth::for_auth_request(e))
            }
            Err(e) => return Err(e),
        };
        let mut resp = Response::new(crate::http::body::full(bytes::Bytes::new()));
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
        original: forward_auth::Original,
        check_headers: &HeaderMap,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Arc<Identity>>, ApiError> {
        let inner = self;
        if !crate::http::path::is_canonical_method(&original.method) {
            return Err(ErrorCode::InvalidMethod.into());
        }
        // As on the proxy path: no route of the app allows CONNECT.
        if original.method == Method::CONNECT {
            return Err(ApiError::method_not_allowed(crate::http::path::APP_METHODS));
        }
        let rule = inner
            .router
            .rule_for(&original.method, original.path())
            .map_err(|_| ApiError::from(ErrorCode::InvalidPath))?;
        // The original request's headers: the ones the front proxy passed on, with its Host.
        let mut headers = check_headers.clone();
        headers.remove(HOST);
        if let Some(host) = original.host {
            if !outbound::valid_host(&host) {
                return Err(ErrorCode::InvalidHost.into());
            }
            headers.insert(HOST, host);
        }
        let admitted = self
            .decide(
                &rule,
                &original.method,
                &headers,
                original.target.as_str(),
                ctx,
            )
            .await?;
        Ok(admitted.identity)
    }

    /// No token and no session: a browser navigation is sent to sign in (when sessions are
    /// on), anything else gets `401 token_missing`.
    fn unauthenticated(&self, method: &Method, headers: &HeaderMap, target: &str) -> ApiError {
        match &self.sessions {
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
