//! Forwarding to the protected app: HTTP/1.1 through the single-upstream connection pool
//! (`pool`); streaming both ways; HTTP/1.1 upgrades spliced end to end after a 101.
//!
//! Knows nothing about tokens, and does not edit the request: `forward::to_upstream` built it
//! (URI, `Host`, every header). This module sends it and strips hop-by-hop headers from the
//! response.

pub mod pool;
pub mod tunnel;

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING, UPGRADE};
use http::{Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::config::UpstreamConfig;
use crate::http::body::{streamed, Body};
use crate::http::headers;
use crate::http::upgrade::ClientUpgrade;
use crate::upstream::pool::Pool;
use crate::upstream::tunnel::{TunnelPermit, Tunnels};

/// Why a request could not be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("the upstream did not answer in time")]
    Timeout,
    #[error("the upstream could not be reached")]
    Unavailable,
    #[error("every tunnel slot is taken")]
    TooManyTunnels,
    /// The client's request body broke on its way (a malformed chunk, a truncated body, a
    /// connection closed mid-upload): the client's fault, not the app's.
    #[error("the client's request body is malformed or ended early")]
    ClientBody,
}

impl ProxyError {
    /// The failure's class, for a trace span's `error.type`.
    pub fn class(&self) -> &'static str {
        match self {
            ProxyError::Timeout => "timeout",
            ProxyError::Unavailable => "unavailable",
            ProxyError::TooManyTunnels => "too_many_tunnels",
            ProxyError::ClientBody => "client_body",
        }
    }
}

/// The protected app.
#[derive(Clone)]
pub struct Upstream {
    pool: Pool<Tracked>,
    response_timeout: Duration,
    tunnels: Option<Tunnels>,
}

impl Upstream {
    /// An empty connection pool to `cfg.url`; connections are made on demand. (The default
    /// idle timeout, 4 s, stays below common app keep-alives, such as Node's 5 s.)
    pub fn new(cfg: &UpstreamConfig) -> Self {
        Upstream {
            pool: Pool::new(cfg),
            response_timeout: cfg.response_timeout,
            tunnels: None,
        }
    }

    /// Upgrades take a slot of `tunnels` before they are forwarded, and are spliced under its
    /// idle timeout and shutdown signal. Without it, every upgrade is refused.
    pub fn with_tunnels(mut self, tunnels: Tunnels) -> Self {
        self.tunnels = Some(tunnels);
        self
    }

    /// Sends the request (built by `forward::to_upstream`) and returns the response head with
    /// its body streaming. An upgrade request (`upgrade == true`) takes a tunnel slot first
    /// (none free: `TooManyTunnels`) and, if it gets a 101, is spliced to the client's
    /// connection in a spawned task holding the slot.
    pub async fn forward(
        &self,
        mut req: Request<Incoming>,
        upgrade: bool,
    ) -> Result<Response<Body>, ProxyError> {
        let client_upgrade = if upgrade {
            let slot = self.tunnels.as_ref().and_then(Tunnels::try_acquire);
            let slot: TunnelPermit = slot.ok_or(ProxyError::TooManyTunnels)?;
            // The server hands the client's socket over once the 101 is written.
            let Some(client) = ClientUpgrade::take(&mut req) else {
                tracing::warn!("upgrade request without a connection to hand over");
                return Err(ProxyError::Unavailable);
            };
            Some((slot, client))
        } else {
            None
        };

        // The deadline counts from the last request-body frame the upstream took, so an
        // upload longer than `response_timeout` is not cut while the app keeps reading it,
        // and an app that stops reading (or never answers) still times out.
        let progress = Arc::new(Progress::new());
        let req = req.map(|inner| Tracked {
            inner,
            progress: Arc::clone(&progress),
        });
        let sent = self.pool.send(req);
        tokio::pin!(sent);
        let mut resp = loop {
            let deadline = progress.last() + self.response_timeout;
            match tokio::time::timeout_at(deadline, &mut sent).await {
                Ok(Ok(r)) => break r,
                Ok(Err(_)) if progress.client_failed() => {
                    tracing::debug!("the client's request body failed");
                    return Err(ProxyError::ClientBody);
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, connect = e.is_connect(), "upstream request failed");
                    return Err(ProxyError::Unavailable);
                }
                // The body moved on while we waited: wait again from its last frame.
                Err(_) if progress.last() + self.response_timeout > deadline => continue,
                Err(_) => return Err(ProxyError::Timeout),
            }
        };

        // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length, and an intermediary must
        // remove the Content-Length before forwarding (hyper read the body by its chunks; the
        // length would cut it, or frame what follows on the client's connection).
        if resp.headers().contains_key(TRANSFER_ENCODING) {
            resp.headers_mut().remove(CONTENT_LENGTH);
        }
        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        match (switching, client_upgrade) {
            (true, Some((slot, client_upgrade))) => {
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                tokio::spawn(async move {
                    let upstream = match upstream_upgrade.await {
                        Ok(u) => u,
                        Err(e) => return tracing::debug!(error = %e, "upgrade failed"),
                    };
                    let Ok(client) = client_upgrade.await else {
                        return tracing::debug!("the client's connection ended before the upgrade");
                    };
                    let ended = slot.splice(client, TokioIo::new(upstream)).await;
                    tracing::debug!(?ended, "tunnel ended");
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
/// started), as milliseconds since `origin`, and whether the client's body failed (`ClientBody`).
struct Progress {
    origin: tokio::time::Instant,
    last_ms: AtomicU64,
    client_failed: AtomicBool,
}

impl Progress {
    fn new() -> Self {
        Progress {
            origin: tokio::time::Instant::now(),
            last_ms: AtomicU64::new(0),
            client_failed: AtomicBool::new(false),
        }
    }

    fn client_failed(&self) -> bool {
        self.client_failed.load(Ordering::Relaxed)
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
        match &polled {
            Poll::Ready(Some(Ok(_))) => self.progress.touch(),
            Poll::Ready(Some(Err(_))) => self.progress.client_failed.store(true, Ordering::Relaxed),
            _ => {}
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
