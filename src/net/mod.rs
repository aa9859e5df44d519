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
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::UPGRADE;
use http::{Request, Version};
use hyper::body::Incoming;
use hyper::server::conn::{http1 as h1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::app::App;
use crate::config::ServerConfig;
use crate::http::upgrade::{ClientUpgrade, Prefixed};
use crate::telemetry::metrics::SharedMetrics;

mod admin;
mod conn;
mod http1;
mod signal;

pub use admin::serve_admin;
use conn::{drive, ConnState, InFlightBody, Round};
use http1::serve_http1;
pub use signal::shutdown_signal;
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
    http1: h1::Builder,
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
    let mut h1 = h1::Builder::new();
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
