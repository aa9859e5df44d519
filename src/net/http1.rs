//! HTTP/1.1 in rounds: hyper serves requests until the connection has been idle for
//! `PARK_AFTER`, then the socket is taken back (hyper's buffers freed) until the next bytes.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::PoisonError;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1 as h1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::http::upgrade::Prefixed;
use crate::telemetry::metrics::SharedMetrics;

use super::conn::{drive, ConnState, Drain, Round};
use super::{Phase, Settings};

/// Serves HTTP/1.1 on `io` in rounds: hyper serves requests until the connection has been
/// idle for `PARK_AFTER`; then the server takes the socket back (hyper's buffers and state are
/// freed) and waits for the next bytes, within the same keep-alive limit hyper applies
/// (`header_read_timeout`, or `idle` if shorter), and starts a new round with them. What the
/// client sees is one ordinary keep-alive connection. A connection is only parked after a
/// request without a body, that asked for no upgrade, on HTTP/1.1 without `Connection: close`
/// (so hyper has nothing half-read and meant to keep the connection), answered without
/// `Connection: close`; otherwise hyper ends it as it would (flushing and shutting down).
pub(super) async fn serve_http1<S>(
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
pub(super) struct Parked<'m>(&'m SharedMetrics);

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
pub(super) struct Http1<'s, I, S>
where
    S: hyper::service::HttpService<Incoming>,
{
    conn: h1::Connection<I, S>,
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
    fn keep_io(self: Pin<Box<Self>>) -> Option<h1::Parts<I, S>> {
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
