//! One connection's life: the drive loop (drain, park, idle and round deadlines) and the
//! requests in flight on it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, UPGRADE};
use http::{Request, StatusCode, Version};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{oneshot, watch, Notify};
use tokio::time::Instant;

use crate::http::upgrade::ClientIo;

use super::{Phase, PARK_AFTER};

/// A hyper connection that can be asked to finish what is in flight and stop.
pub(super) trait Drain: Future<Output = hyper::Result<()>> {
    fn drain(self: Pin<&mut Self>);

    /// Like `drain`, to take the socket back for the next request; `false` if this kind of
    /// connection cannot be parked.
    fn park(self: Pin<&mut Self>) -> bool {
        false
    }
}

impl<I, S> Drain for http2::Connection<I, S, TokioExecutor>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: http_body::Body + 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    TokioExecutor: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Where a round of serving starts: how many requests the connection had begun, and by when
/// the round's first request must have begun.
#[derive(Clone, Copy)]
pub(super) struct Round {
    pub(super) begun: u64,
    pub(super) deadline: Instant,
}

/// Polls `conn` to its end, draining it when the server drains or when it has had no request
/// in flight for `idle` (if given), parking it (if `park`) after `PARK_AFTER` without one,
/// and dropping it (closing the socket) when no request began by `round.deadline` or when the
/// server closes.
pub(super) async fn drive<C: Drain>(
    mut conn: Pin<&mut C>,
    state: &ConnState,
    round: Round,
    idle: Option<Duration>,
    park: bool,
    phase: &mut watch::Receiver<Phase>,
) -> hyper::Result<()> {
    let mut draining = false;
    if *phase.borrow_and_update() != Phase::Serving {
        conn.as_mut().drain();
        draining = true;
    }
    // One timer for the round, moved only when its deadline changes (not per request).
    let timer = tokio::time::sleep_until(round.deadline);
    tokio::pin!(timer);
    let mut armed = Some(round.deadline);
    let mut park_at: Option<Instant> = None;
    loop {
        let started = state.begun() > round.begun;
        let wake = match idle {
            _ if !started => Some(round.deadline),
            None => None,
            // Re-checked when the last request ends (`state.idle` is notified).
            Some(idle) if state.in_flight() > 0 => Some(Instant::now() + idle),
            Some(idle) => Some(state.idle_since() + idle),
        };
        let next = match (wake, park_at) {
            _ if draining => None,
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if next != armed {
            if let Some(at) = next {
                timer.as_mut().reset(at);
            }
            armed = next;
        }
        tokio::select! {
            r = conn.as_mut() => return r,
            changed = phase.changed() => {
                let now = if changed.is_ok() { *phase.borrow_and_update() } else { Phase::Closing };
                match now {
                    Phase::Closing => return Ok(()),
                    Phase::Draining if !draining => {
                        conn.as_mut().drain();
                        draining = true;
                    }
                    _ => {}
                }
            }
            () = state.idle.notified(), if idle.is_some() || park => {
                // Only after a request of this round: a round's first bytes may be a partial
                // head, which is the header-read deadline's business, not parking's.
                let begun = state.begun() > round.begun;
                if park && begun && park_at.is_none() && state.in_flight() == 0 {
                    park_at = Some(state.idle_since() + PARK_AFTER);
                }
            }
            () = &mut timer, if armed.is_some() => {
                armed = None;
                let now = Instant::now();
                if !started {
                    if now >= round.deadline {
                        tracing::debug!("no request within header_read_timeout; connection closed");
                        return Ok(());
                    }
                    // Nothing to park before this round's first request (and a deadline left in
                    // the past would fire again at once).
                    park_at = None;
                    continue;
                }
                if let Some(at) = park_at.filter(|at| *at <= now) {
                    park_at = None;
                    if state.in_flight() == 0 && state.parkable() {
                        let quiet_since = state.idle_since() + PARK_AFTER;
                        if quiet_since <= now {
                            draining = conn.as_mut().park();
                            continue;
                        }
                        // A request ended since: wait from its end.
                        park_at = Some(quiet_since.max(at));
                    }
                }
                if let Some(idle) = idle {
                    if state.in_flight() == 0 && state.idle_since() + idle <= now {
                        tracing::debug!("connection idle; closing");
                        conn.as_mut().drain();
                        draining = true;
                    }
                }
            }
        }
    }
}

/// Requests in flight on one connection, and since when it has had none.
pub(super) struct ConnState {
    pub(super) origin: Instant,
    /// Requests begun on this connection.
    pub(super) begun: AtomicU64,
    pub(super) in_flight: AtomicUsize,
    pub(super) idle_since_ms: AtomicU64,
    /// The last request begun may leave the connection parked after it (see `serve_http1`).
    pub(super) parkable: AtomicBool,
    /// A `101` was sent: the connection belongs to the tunnel now.
    pub(super) upgraded: AtomicBool,
    /// Where the socket goes after a `101` (set for requests that ask for an upgrade).
    pub(super) upgrade: Mutex<Option<oneshot::Sender<ClientIo>>>,
    /// Notified when the last request in flight ends.
    pub(super) idle: Notify,
}

impl ConnState {
    pub(super) fn new() -> Self {
        ConnState {
            origin: Instant::now(),
            begun: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            parkable: AtomicBool::new(false),
            upgraded: AtomicBool::new(false),
            upgrade: Mutex::new(None),
            idle: Notify::new(),
        }
    }

    pub(super) fn begin(self: &Arc<Self>, req: &Request<Incoming>) -> InFlight {
        let parkable = req.version() == Version::HTTP_11
            && req.body().is_end_stream()
            && !req.headers().contains_key(UPGRADE)
            && !asks_to_close(req.headers());
        self.parkable.store(parkable, Ordering::Relaxed);
        self.begun.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    pub(super) fn begun(&self) -> u64 {
        self.begun.load(Ordering::Relaxed)
    }

    pub(super) fn parkable(&self) -> bool {
        self.parkable.load(Ordering::Relaxed)
    }

    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    pub(super) fn idle_since(&self) -> Instant {
        self.origin + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire))
    }
}

/// Whether `headers` carry `Connection: close`.
pub(super) fn asks_to_close(headers: &http::HeaderMap) -> bool {
    headers.get_all(CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

/// One request in flight, from the service call until its response body is done or dropped.
pub(super) struct InFlight(pub(super) Arc<ConnState>);

impl InFlight {
    /// Notes what the answer means for the connection: a `101` hands it to a tunnel, and an
    /// answer that closes it is not parked.
    pub(super) fn answered<B>(&self, resp: &http::Response<B>) {
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            self.0.upgraded.store(true, Ordering::Release);
            self.0.parkable.store(false, Ordering::Relaxed);
        } else if asks_to_close(resp.headers()) {
            self.0.parkable.store(false, Ordering::Relaxed);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let s = &self.0;
        let ms = u64::try_from(s.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        s.idle_since_ms.store(ms, Ordering::Release);
        if s.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            s.idle.notify_one();
        }
    }
}

/// A response body that keeps its request counted in flight until it is done.
pub(super) struct InFlightBody<B> {
    pub(super) inner: B,
    pub(super) _in_flight: InFlight,
}

impl<B: http_body::Body<Data = Bytes> + Unpin> http_body::Body for InFlightBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
