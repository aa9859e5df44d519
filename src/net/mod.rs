//! The listener: accepts connections (bounded by `max_connections`), tells HTTP/1.1 from h2c
//! (prior knowledge) itself, serves them with hyper's builders, closes connections that send
//! no request in time or sit idle, and drains on shutdown within a grace period (ECS sends
//! SIGTERM, then waits `stopTimeout` before SIGKILL).
//!
//! Why not hyper-util's auto builder: its protocol detection reads the first bytes with no
//! timer (hyperium/hyper#3756), so a client that sends nothing, or half the HTTP/2 preface,
//! held a connection slot forever. Here the detection runs under `header_read_timeout`, and a
//! connection whose first request head is not complete by then is closed, whatever its
//! protocol.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, UPGRADE};
use http::{Request, StatusCode, Version};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::app::App;
use crate::config::ServerConfig;
use crate::http::upgrade::{ClientIo, ClientUpgrade, Prefixed};
use crate::telemetry::metrics::SharedMetrics;

/// What an HTTP/2 client with prior knowledge sends first (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// HTTP/2 keep-alive: a PING after this much silence from the client…
const H2_PING_INTERVAL: Duration = Duration::from_secs(20);
/// …that must be answered within this, or the connection is closed (a vanished peer).
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// An HTTP/1.1 keep-alive connection with no request for this long gives its buffers back
/// (hyper keeps an 8 KiB read and an 8 KiB write buffer per connection for its whole life):
/// it waits for its next request as a bare socket, and gets fresh buffers when one comes.
const PARK_AFTER: Duration = Duration::from_millis(100);

/// After the grace period, how long `serve` waits for the connections it closed to go.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Where the server is in its life; every connection task watches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Stop taking requests; finish those in flight.
    Draining,
    /// The grace period is over: close now.
    Closing,
}

/// The per-connection settings, built once.
struct Settings {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    metrics: SharedMetrics,
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, lets in-flight
/// requests (and open tunnels) finish and returns once they have, or once `shutdown_grace`
/// has passed, after closing what remains.
pub async fn serve(
    listener: TcpListener,
    app: App,
    cfg: &ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let mut h1 = http1::Builder::new();
    // The header-read timeout (slowloris) only runs with a timer; without one hyper panics.
    h1.timer(TokioTimer::new())
        // hyper starts this timer whenever it waits for a request head, so it also closes
        // keep-alive connections idle for longer.
        .header_read_timeout(cfg.header_read_timeout)
        .max_buf_size(cfg.max_header_bytes.max(8192))
        .max_headers(cfg.max_headers)
        // The head and a small body copied into one buffer and sent with one `send`, rather
        // than a `writev` of their parts. A large body is copied through that buffer too (up
        // to `max_buf_size` at a time); its capacity goes when the connection parks or ends.
        .writev(false)
        .keep_alive(true);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(cfg.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(H2_PING_TIMEOUT);
    let settings = Arc::new(Settings {
        http1: h1,
        http2: h2,
        header_read_timeout: cfg.header_read_timeout,
        idle_timeout: cfg.idle_timeout,
        metrics: Arc::clone(app.metrics()),
    });

    let (phase, _) = watch::channel(Phase::Serving);
    let open = Arc::new(watch::Sender::new(0usize));
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    tokio::pin!(shutdown);
    loop {
        // At the connection limit, stop accepting: the kernel backlog holds new clients.
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let slot = Slot::new(permit, Arc::clone(&open), Arc::clone(app.metrics()));
        let conn = connection(
            stream,
            peer,
            app.clone(),
            Arc::clone(&settings),
            phase.subscribe(),
        );
        tokio::spawn(async move {
            conn.await;
            drop(slot);
        });
    }
    drop(listener);
    let tunnels = app.tunnels();
    tracing::info!(
        open_connections = *open.borrow(),
        open_tunnels = tunnels.open(),
        "shutting down: draining in-flight requests"
    );
    phase.send_replace(Phase::Draining);
    let connections_closed = async {
        let _ = open.subscribe().wait_for(|n| *n == 0).await;
    };
    let drained = async { tokio::join!(connections_closed, tunnels.wait_closed()) };
    match tokio::time::timeout(cfg.shutdown_grace, drained).await {
        Ok(_) => tracing::info!("drained"),
        Err(_) => {
            tracing::warn!(
                open_connections = *open.borrow(),
                open_tunnels = tunnels.open(),
                "grace period over; closing the remaining connections"
            );
            phase.send_replace(Phase::Closing);
            tunnels.close_all();
            let closed = async {
                let _ = open.subscribe().wait_for(|n| *n == 0).await;
                tunnels.wait_closed().await;
            };
            let _ = tokio::time::timeout(CLOSE_WAIT, closed).await;
        }
    }
}

/// A connection slot: gives the permit back and counts the connection out when dropped.
struct Slot {
    _permit: OwnedSemaphorePermit,
    open: Arc<watch::Sender<usize>>,
    metrics: SharedMetrics,
}

impl Slot {
    fn new(
        permit: OwnedSemaphorePermit,
        open: Arc<watch::Sender<usize>>,
        metrics: SharedMetrics,
    ) -> Self {
        open.send_modify(|n| *n += 1);
        metrics.connections(1);
        Slot {
            _permit: permit,
            open,
            metrics,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.connections(-1);
        self.open.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The protocol a client speaks, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    /// h2c with prior knowledge (the client sent the preface).
    Http2,
}

/// Reads until the bytes part from the HTTP/2 preface (HTTP/1) or the whole preface is there
/// (HTTP/2). EOF is an error. What was read is handed back to be replayed.
async fn detect(mut stream: TcpStream) -> io::Result<(Protocol, Prefixed<TcpStream>)> {
    let mut buf = [0u8; PREFACE.len()];
    let mut n = 0;
    // At most 24 reads: each one brings at least a byte.
    loop {
        let got = stream.read(&mut buf[n..]).await?;
        if got == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        n += got;
        let protocol = if buf[..n] != PREFACE[..n] {
            Protocol::Http1
        } else if n == PREFACE.len() {
            Protocol::Http2
        } else {
            continue;
        };
        let prefix = Bytes::copy_from_slice(&buf[..n]);
        return Ok((protocol, Prefixed::new(prefix, stream)));
    }
}

/// Serves one connection until it ends, times out, or the server closes it.
async fn connection(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    app: App,
    settings: Arc<Settings>,
    mut phase: watch::Receiver<Phase>,
) {
    let first_deadline = Instant::now() + settings.header_read_timeout;
    let detected = tokio::select! {
        r = tokio::time::timeout_at(first_deadline, detect(stream)) => r,
        // Shutting down before the client said anything: nothing to finish.
        _ = phase.wait_for(|p| *p != Phase::Serving) => return,
    };
    let (protocol, io) = match detected {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "connection closed before a request");
            return;
        }
        Err(_) => {
            tracing::debug!("no request within header_read_timeout; connection closed");
            return;
        }
    };
    let state = Arc::new(ConnState::new());
    let tracker = Arc::clone(&state);
    let svc = service_fn(move |mut req: Request<Incoming>| {
        let in_flight = tracker.begin(&req);
        if req.headers().contains_key(UPGRADE) && req.version() == Version::HTTP_11 {
            let (tx, rx) = oneshot::channel();
            *tracker
                .upgrade
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(tx);
            req.extensions_mut().insert(ClientUpgrade::new(rx));
        }
        let app = app.clone();
        // Boxed: hyper keeps room for one service future per connection for as long as the
        // connection lives, idle or not; the whole request path is a large future, and an
        // idle keep-alive connection should cost a pointer for it, not its size.
        Box::pin(async move {
            let resp = app.handle_owned(req, peer).await;
            in_flight.answered(&resp);
            Ok::<_, Infallible>(resp.map(|body| InFlightBody {
                inner: body,
                _in_flight: in_flight,
            }))
        })
    });
    let idle = settings.idle_timeout;
    let result = match protocol {
        Protocol::Http1 => {
            // hyper's header-read timer already closes an HTTP/1.1 connection idle for
            // `header_read_timeout`: watch for idleness only if `idle_timeout` is shorter.
            let idle = (idle < settings.header_read_timeout).then_some(idle);
            serve_http1(io, svc, &settings, &state, first_deadline, idle, phase).await
        }
        Protocol::Http2 => {
            // Boxed so that HTTP/1.1 connections do not carry room for HTTP/2's state.
            let mut conn = Box::pin(settings.http2.serve_connection(TokioIo::new(io), svc));
            let round = Round {
                begun: 0,
                deadline: first_deadline,
            };
            let conn = conn.as_mut();
            Box::pin(drive(conn, &state, round, Some(idle), false, &mut phase)).await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Serves HTTP/1.1 on `io` in rounds: hyper serves requests until the connection has been
/// idle for `PARK_AFTER`; then the server takes the socket back (hyper's buffers and state are
/// freed) and waits for the next bytes, within the same keep-alive limit hyper applies
/// (`header_read_timeout`, or `idle` if shorter), and starts a new round with them. What the
/// client sees is one ordinary keep-alive connection. A connection is only parked after a
/// request without a body, that asked for no upgrade, on HTTP/1.1 without `Connection: close`
/// (so hyper has nothing half-read and meant to keep the connection), answered without
/// `Connection: close`; otherwise hyper ends it as it would (flushing and shutting down).
async fn serve_http1<S>(
    mut io: Prefixed<TcpStream>,
    svc: S,
    settings: &Settings,
    state: &ConnState,
    mut deadline: Instant,
    idle: Option<Duration>,
    mut phase: watch::Receiver<Phase>,
) -> hyper::Result<()>
where
    S: hyper::service::HttpService<Incoming> + Clone + Unpin,
    S::Future: Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: http_body::Body + 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let keep_alive = idle.map_or(settings.header_read_timeout, |i| {
        i.min(settings.header_read_timeout)
    });
    loop {
        let round = Round {
            begun: state.begun(),
            deadline,
        };
        let conn = settings
            .http1
            .serve_connection(TokioIo::new(io), svc.clone());
        // Boxed: freed while the connection is parked.
        let mut conn = Box::pin(Http1 {
            conn,
            state,
            park: false,
            finishing: false,
            kept: false,
        });
        drive(conn.as_mut(), state, round, idle, true, &mut phase).await?;
        let Some(parts) = conn.keep_io() else {
            return Ok(());
        };
        io = parts.io.into_inner();
        io.unshift(parts.read_buf);
        if state.upgraded.load(Ordering::Acquire) {
            let tx = state
                .upgrade
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(tx) = tx {
                // The proxy splices it to the app's side in its own task; if it gave up
                // (the app's side failed), dropping the socket closes it.
                let _ = tx.send(io);
            }
            return Ok(());
        }
        if !io.has_prefix() {
            let limit = state.idle_since() + keep_alive;
            let _parked = Parked::new(&settings.metrics);
            tokio::select! {
                r = io.get_ref().readable() => if let Err(e) = r {
                    tracing::debug!(error = %e, "parked connection failed");
                    return Ok(());
                },
                () = tokio::time::sleep_until(limit) => {
                    tracing::debug!("connection idle; closing");
                    return Ok(());
                }
                _ = phase.wait_for(|p| *p != Phase::Serving) => return Ok(()),
            }
        }
        if *phase.borrow() != Phase::Serving {
            return Ok(());
        }
        deadline = Instant::now() + settings.header_read_timeout;
    }
}

/// Counts a connection as parked while it lives.
struct Parked<'m>(&'m SharedMetrics);

impl<'m> Parked<'m> {
    fn new(metrics: &'m SharedMetrics) -> Self {
        metrics.parked(1);
        Parked(metrics)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.parked(-1);
    }
}

/// One round of hyper serving HTTP/1.1, polled without hyper shutting the socket down when it
/// ends, so that a parked (or upgraded) connection can be taken back. When it ends any other
/// way, it finishes as hyper's own connection does: flushed, then shut down.
struct Http1<'s, I, S>
where
    S: hyper::service::HttpService<Incoming>,
{
    conn: http1::Connection<I, S>,
    state: &'s ConnState,
    /// Parking was asked for (hyper was told to stop after the current exchange).
    park: bool,
    /// Ended without parking: polling hyper's own end (flush, shutdown).
    finishing: bool,
    /// Ended parked or upgraded: the socket is to be taken back.
    kept: bool,
}

impl<I, S> Http1<'_, I, S>
where
    S: hyper::service::HttpService<Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: http_body::Body + 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
{
    /// The socket and what hyper read past the last request, if this round ended in a park or
    /// an upgrade.
    fn keep_io(self: Pin<Box<Self>>) -> Option<http1::Parts<I, S>> {
        let this = Pin::into_inner(self);
        this.kept.then(|| this.conn.into_parts())
    }
}

impl<I, S> Future for Http1<'_, I, S>
where
    S: hyper::service::HttpService<Incoming> + Unpin,
    S::Future: Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: http_body::Body + 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
{
    type Output = hyper::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if !this.finishing {
            if let Err(e) = std::task::ready!(this.conn.poll_without_shutdown(cx)) {
                this.finishing = true;
                return Poll::Ready(Err(e));
            }
            if this.park || this.state.upgraded.load(Ordering::Acquire) {
                this.kept = true;
                return Poll::Ready(Ok(()));
            }
            this.finishing = true;
        }
        Pin::new(&mut this.conn).poll(cx)
    }
}

impl<I, S> Drain for Http1<'_, I, S>
where
    S: hyper::service::HttpService<Incoming> + Unpin,
    S::Future: Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: http_body::Body + 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
{
    fn drain(self: Pin<&mut Self>) {
        Pin::new(&mut self.get_mut().conn).graceful_shutdown();
    }

    fn park(self: Pin<&mut Self>) -> bool {
        let this = self.get_mut();
        this.park = true;
        Pin::new(&mut this.conn).graceful_shutdown();
        true
    }
}

/// A hyper connection that can be asked to finish what is in flight and stop.
trait Drain: Future<Output = hyper::Result<()>> {
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
struct Round {
    begun: u64,
    deadline: Instant,
}

/// Polls `conn` to its end, draining it when the server drains or when it has had no request
/// in flight for `idle` (if given), parking it (if `park`) after `PARK_AFTER` without one,
/// and dropping it (closing the socket) when no request began by `round.deadline` or when the
/// server closes.
async fn drive<C: Drain>(
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
struct ConnState {
    origin: Instant,
    /// Requests begun on this connection.
    begun: AtomicU64,
    in_flight: AtomicUsize,
    idle_since_ms: AtomicU64,
    /// The last request begun may leave the connection parked after it (see `serve_http1`).
    parkable: AtomicBool,
    /// A `101` was sent: the connection belongs to the tunnel now.
    upgraded: AtomicBool,
    /// Where the socket goes after a `101` (set for requests that ask for an upgrade).
    upgrade: Mutex<Option<oneshot::Sender<ClientIo>>>,
    /// Notified when the last request in flight ends.
    idle: Notify,
}

impl ConnState {
    fn new() -> Self {
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

    fn begin(self: &Arc<Self>, req: &Request<Incoming>) -> InFlight {
        let parkable = req.version() == Version::HTTP_11
            && req.body().is_end_stream()
            && !req.headers().contains_key(UPGRADE)
            && !asks_to_close(req.headers());
        self.parkable.store(parkable, Ordering::Relaxed);
        self.begun.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    fn begun(&self) -> u64 {
        self.begun.load(Ordering::Relaxed)
    }

    fn parkable(&self) -> bool {
        self.parkable.load(Ordering::Relaxed)
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    fn idle_since(&self) -> Instant {
        self.origin + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire))
    }
}

/// Whether `headers` carry `Connection: close`.
fn asks_to_close(headers: &http::HeaderMap) -> bool {
    headers.get_all(CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

/// One request in flight, from the service call until its response body is done or dropped.
struct InFlight(Arc<ConnState>);

impl InFlight {
    /// Notes what the answer means for the connection: a `101` hands it to a tunnel, and an
    /// answer that closes it is not parked.
    fn answered<B>(&self, resp: &http::Response<B>) {
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
struct InFlightBody<B> {
    inner: B,
    _in_flight: InFlight,
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

/// Serves `GET /metrics` (Prometheus text) for `app` on the admin listener until `shutdown`.
pub async fn serve_admin(listener: TcpListener, app: App, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let app = app.clone();
        let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let app = app.clone();
            async move {
                let resp = if req.uri().path() == "/metrics" && req.method() == http::Method::GET {
                    let mut r = http::Response::new(crate::http::body::full(app.render_metrics()));
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static(
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        ),
                    );
                    r
                } else {
                    crate::error::ApiError::new(
                        crate::error::ErrorCode::NotFound,
                        "only /metrics here",
                    )
                    .into_response()
                };
                Ok::<_, Infallible>(resp)
            }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = int.recv() => tracing::info!("SIGINT received"),
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Sends `bytes` (then half-closes if `eof`) over loopback and runs `detect` on the server
    /// side; returns its verdict and everything the server then reads back from the stream.
    async fn detect_on(bytes: &'static [u8], eof: bool) -> io::Result<(Protocol, Vec<u8>)> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.expect("connect");
            // Byte by byte, so `detect` sees every partial prefix.
            for b in bytes {
                c.write_all(&[*b]).await.expect("write");
                c.flush().await.expect("flush");
            }
            if eof {
                c.shutdown().await.expect("shutdown");
            }
            c
        });
        let (server, _) = listener.accept().await.expect("accept");
        let (protocol, mut replay) =
            tokio::time::timeout(Duration::from_secs(5), detect(server)).await??;
        let _client = client.await.expect("client");
        let mut all = vec![0u8; bytes.len()];
        tokio::time::timeout(Duration::from_secs(5), replay.read_exact(&mut all))
            .await
            .expect("replayed in time")?;
        Ok((protocol, all))
    }

    #[tokio::test]
    async fn detects_the_protocol_and_replays_what_it_read() {
        let h1 = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(
            detect_on(h1, false).await.expect("h1"),
            (Protocol::Http1, h1.to_vec())
        );
        // Parts from the preface only at its last byte: still HTTP/1.
        let near = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\rX";
        assert_eq!(
            detect_on(near, false).await.expect("near").0,
            Protocol::Http1
        );
        let h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
        let (protocol, replayed) = detect_on(h2, false).await.expect("h2");
        assert_eq!(protocol, Protocol::Http2);
        assert_eq!(replayed, h2.to_vec());
        // EOF before a decision is an error.
        assert!(detect_on(b"PRI * HTTP", true).await.is_err());
        assert!(detect_on(b"", true).await.is_err());
    }
}
