//! Forwarding to the protected app: one pooled HTTP/1.1 client, built once; the URI rewrite
//! and `Host` policy; streaming both ways; HTTP/1.1 upgrades spliced end to end after a 101.
//!
//! Knows nothing about tokens. The caller has already decided the request may pass and set
//! its headers; this module only strips hop-by-hop headers from the response.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, HOST, UPGRADE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::body::{streamed, Body};
use crate::config::UpstreamConfig;
use crate::headers;
use crate::tunnel::{TunnelPermit, Tunnels};

/// Why a request could not be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("the upstream did not answer in time")]
    Timeout,
    #[error("the upstream could not be reached")]
    Unavailable,
    #[error("the upstream URI could not be built")]
    BadUri,
    #[error("every tunnel slot is taken")]
    TooManyTunnels,
}

/// The protected app.
#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpConnector, Tracked>,
    scheme: Scheme,
    authority: Authority,
    host: HeaderValue,
    prefix: String,
    response_timeout: Duration,
    preserve_host: bool,
    tunnels: Option<Tunnels>,
}

impl Upstream {
    /// Builds the pooled client. `uri` was validated as `http(s)://authority[/prefix]`.
    pub fn new(uri: &Uri, cfg: &UpstreamConfig) -> Result<Self, ProxyError> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(cfg.connect_timeout));
        http.set_nodelay(true);
        // The pool's idle timeout stays below common app keep-alives (Node: 5 s) and the
        // timer makes the reaper run (hyper-util only expires idle connections with one).
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(cfg.pool_idle_timeout)
            .pool_max_idle_per_host(cfg.pool_max_idle)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(http);
        let authority = uri.authority().cloned().ok_or(ProxyError::BadUri)?;
        Ok(Upstream {
            client,
            scheme: uri.scheme().cloned().unwrap_or(Scheme::HTTP),
            host: HeaderValue::from_str(authority.as_str()).map_err(|_| ProxyError::BadUri)?,
            authority,
            prefix: uri.path().trim_end_matches('/').to_string(),
            response_timeout: cfg.response_timeout,
            preserve_host: cfg.preserve_host,
            tunnels: None,
        })
    }

    /// Upgrades take a slot of `tunnels` before they are forwarded, and are spliced under its
    /// idle timeout and shutdown signal. Without it, every upgrade is refused.
    pub fn with_tunnels(mut self, tunnels: Tunnels) -> Self {
        self.tunnels = Some(tunnels);
        self
    }

    fn target(&self, original: &Uri) -> Result<Uri, ProxyError> {
        let pq = original
            .path_and_query()
            .map(PathAndQuery::as_str)
            .unwrap_or("/");
        let pq: PathAndQuery = if self.prefix.is_empty() {
            PathAndQuery::from_maybe_shared(bytes::Bytes::copy_from_slice(pq.as_bytes()))
        } else {
            format!("{}{}", self.prefix, pq).parse()
        }
        .map_err(|_| ProxyError::BadUri)?;
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|_| ProxyError::BadUri)
    }

    /// Sends the request upstream and returns the response head with its body streaming.
    /// An upgrade request (`upgrade == true`, headers already kept by the caller) takes a
    /// tunnel slot first (none free: `TooManyTunnels`) and, if it gets a 101, is spliced to the
    /// client's connection in a spawned task holding the slot.
    pub async fn forward(
        &self,
        mut req: Request<Incoming>,
        upgrade: bool,
    ) -> Result<Response<Body>, ProxyError> {
        let client_upgrade = if upgrade {
            let slot = self.tunnels.as_ref().and_then(Tunnels::try_acquire);
            let slot: TunnelPermit = slot.ok_or(ProxyError::TooManyTunnels)?;
            Some((slot, hyper::upgrade::on(&mut req)))
        } else {
            None
        };
        let uri = self.target(req.uri())?;
        // HTTP/2 clients send `:authority` and no Host: give the app the host they asked for.
        if !self.preserve_host {
            req.headers_mut().insert(HOST, self.host.clone());
        } else if !req.headers().contains_key(HOST) {
            let host = req
                .uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                .unwrap_or_else(|| self.host.clone());
            req.headers_mut().insert(HOST, host);
        }
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;

        // The deadline counts from the last request-body frame the upstream took, so an
        // upload longer than `response_timeout` is not cut while the app keeps reading it,
        // and an app that stops reading (or never answers) still times out.
        let progress = Arc::new(Progress::new());
        let req = req.map(|inner| Tracked {
            inner,
            progress: Arc::clone(&progress),
        });
        let sent = self.client.request(req);
        tokio::pin!(sent);
        let mut resp = loop {
            let deadline = progress.last() + self.response_timeout;
            match tokio::time::timeout_at(deadline, &mut sent).await {
                Ok(Ok(r)) => break r,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, connect = e.is_connect(), "upstream request failed");
                    return Err(ProxyError::Unavailable);
                }
                // The body moved on while we waited: wait again from its last frame.
                Err(_) if progress.last() + self.response_timeout > deadline => continue,
                Err(_) => return Err(ProxyError::Timeout),
            }
        };

        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        match (switching, client_upgrade) {
            (true, Some((slot, client_upgrade))) => {
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                tokio::spawn(async move {
                    match tokio::try_join!(client_upgrade, upstream_upgrade) {
                        Ok((client, upstream)) => {
                            let ended = slot
                                .splice(TokioIo::new(client), TokioIo::new(upstream))
                                .await;
                            tracing::debug!(?ended, "tunnel ended");
                        }
                        Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                    }
                });
                headers::strip_hop_by_hop(resp.headers_mut(), true);
                if !resp.headers().contains_key(UPGRADE) {
                    resp.headers_mut().remove(CONNECTION);
                }
            }
            (true, None) => {
                // A 101 nobody asked for cannot be relayed.
                tracing::warn!("upstream answered 101 to a request without Upgrade");
                return Err(ProxyError::Unavailable);
            }
            (false, _) => headers::strip_hop_by_hop(resp.headers_mut(), false),
        }
        Ok(resp.map(streamed))
    }
}

/// When the upstream connection last took a frame of the request body (or when the request
/// started), as milliseconds since `origin`.
struct Progress {
    origin: tokio::time::Instant,
    last_ms: AtomicU64,
}

impl Progress {
    fn new() -> Self {
        Progress {
            origin: tokio::time::Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> tokio::time::Instant {
        self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// The client's request body on its way upstream, unchanged, noting each frame's progress.
struct Tracked {
    inner: Incoming,
    progress: Arc<Progress>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            self.progress.touch();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether an HTTP/1.1 request asks for a protocol upgrade (WebSocket and friends).
pub fn is_upgrade_request<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(UPGRADE)
        && req
            .headers()
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}
