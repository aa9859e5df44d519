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
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::app::App;
use crate::config::ServerConfig;
use crate::metrics::SharedMetrics;

/// What an HTTP/2 client with prior knowledge sends first (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// HTTP/2 keep-alive: a PING after this much silence from the client…
const H2_PING_INTERVAL: Duration = Duration::from_secs(20);
/// …that must be answered within this, or the connection is closed (a vanished peer).
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

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
        return Ok((protocol, Prefixed::new(buf[..n].to_vec(), stream)));
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
    let svc = service_fn(move |req| {
        let in_flight = tracker.begin();
        // Boxed: hyper keeps room for one service future per connection for as long as the
        // connection lives, idle or not; the whole request path is a large future, and an
        // idle keep-alive connection should cost a pointer for it, not its size.
        let handled = Box::pin(app.clone().handle_owned(req, peer));
        async move {
            let resp = handled.await;
            Ok::<_, Infallible>(resp.map(|body| InFlightBody {
                inner: body,
                _in_flight: in_flight,
            }))
        }
    });
    let io = TokioIo::new(io);
    let idle = settings.idle_timeout;
    let result = match protocol {
        Protocol::Http1 => {
            // hyper's header-read timer already closes an HTTP/1.1 connection idle for
            // `header_read_timeout`: watch for idleness only if `idle_timeout` is shorter.
            let idle = (idle < settings.header_read_timeout).then_some(idle);
            let conn = settings.http1.serve_connection(io, svc).with_upgrades();
            drive(conn, &state, first_deadline, idle, phase).await
        }
        Protocol::Http2 => {
            // Boxed so that HTTP/1.1 connections do not carry room for HTTP/2's state.
            let conn = settings.http2.serve_connection(io, svc);
            Box::pin(drive(conn, &state, first_deadline, Some(idle), phase)).await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// A hyper connection that can be asked to finish what is in flight and stop.
trait Drain: Future<Output = hyper::Result<()>> {
    fn drain(self: Pin<&mut Self>);
}

impl<I, S> Drain for http1::UpgradeableConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: http_body::Body + 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
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

/// Polls `conn` to its end, draining it when the server drains or when it has had no request
/// in flight for `idle` (if given), and dropping it (closing the socket) when no first request
/// started by `first_deadline` or when the server closes.
async fn drive<C: Drain>(
    conn: C,
    state: &ConnState,
    first_deadline: Instant,
    idle: Option<Duration>,
    mut phase: watch::Receiver<Phase>,
) -> hyper::Result<()> {
    tokio::pin!(conn);
    let mut draining = false;
    if *phase.borrow_and_update() != Phase::Serving {
        conn.as_mut().drain();
        draining = true;
    }
    loop {
        let wake = match idle {
            _ if !state.started() => Some(first_deadline),
            None => None,
            // Re-checked when the last request ends (`state.idle` is notified).
            Some(idle) if state.in_flight() > 0 => Some(Instant::now() + idle),
            Some(idle) => Some(state.idle_since() + idle),
        };
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
            () = state.idle.notified(), if idle.is_some() => {}
            () = tokio::time::sleep_until(wake.unwrap_or(first_deadline)), if !draining && wake.is_some() => {
                if !state.started() {
                    tracing::debug!("no request within header_read_timeout; connection closed");
                    return Ok(());
                }
                let Some(idle) = idle else { continue };
                if state.in_flight() == 0 && state.idle_since() + idle <= Instant::now() {
                    tracing::debug!("connection idle; closing");
                    conn.as_mut().drain();
                    draining = true;
                }
            }
        }
    }
}

/// Requests in flight on one connection, and since when it has had none.
struct ConnState {
    origin: Instant,
    started: AtomicBool,
    in_flight: AtomicUsize,
    idle_since_ms: AtomicU64,
    /// Notified when the last request in flight ends.
    idle: Notify,
}

impl ConnState {
    fn new() -> Self {
        ConnState {
            origin: Instant::now(),
            started: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            idle: Notify::new(),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.started.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    fn started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    fn idle_since(&self) -> Instant {
        self.origin + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire))
    }
}

/// One request in flight, from the service call until its response body is done or dropped.
struct InFlight(Arc<ConnState>);

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

/// A stream whose first bytes were already read: they are replayed before the rest.
/// (hyper-util's `Rewind` does this but is private.)
struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    fn new(prefix: Vec<u8>, inner: S) -> Self {
        Prefixed {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.prefix.len() && buf.remaining() > 0 {
            let n = buf.remaining().min(this.prefix.len() - this.pos);
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

crate::write_through!(Prefixed, inner);

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
                    let mut r = http::Response::new(crate::body::full(app.render_metrics()));
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static(
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        ),
                    );
                    r
                } else {
                    crate::error::ApiError::new(
                        http::StatusCode::NOT_FOUND,
                        "not_found",
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
