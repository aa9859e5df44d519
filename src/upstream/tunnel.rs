//! Upgraded connections (WebSocket and other HTTP/1.1 upgrades) spliced to the app after a
//! 101: how many may be open (`server.max_tunnels`), when an idle one is closed
//! (`server.tunnel_idle_timeout`), and the signal that closes the rest at shutdown.
//!
//! Once upgraded, a connection leaves hyper (and the server's connection count): the tunnel
//! slot taken here before the upgrade request is forwarded is what bounds them.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::ServerConfig;
use crate::telemetry::metrics::SharedMetrics;

/// The tunnel slots and the shutdown signal; built once, cheap to clone.
#[derive(Clone)]
pub struct Tunnels {
    inner: Arc<Inner>,
}

struct Inner {
    slots: Arc<Semaphore>,
    idle_timeout: Duration,
    /// Slots taken now (tunnels open or being set up).
    open: watch::Sender<usize>,
    /// Set once, when the server gives up waiting for tunnels at shutdown.
    close: watch::Sender<bool>,
    metrics: SharedMetrics,
}

/// A tunnel slot, held from before the upgrade request is forwarded until the tunnel ends.
pub struct TunnelPermit {
    inner: Arc<Inner>,
    close: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
}

/// Why a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// One side closed (or failed) and the other was closed in turn.
    Closed,
    /// No byte moved either way for the idle timeout.
    Idle,
    /// The server closed it at shutdown, after the grace period.
    Shutdown,
}

impl Tunnels {
    /// `server.max_tunnels` slots (0: every upgrade is refused) and
    /// `server.tunnel_idle_timeout`.
    pub fn new(cfg: &ServerConfig, metrics: SharedMetrics) -> Self {
        Tunnels {
            inner: Arc::new(Inner {
                slots: Arc::new(Semaphore::new(cfg.max_tunnels)),
                idle_timeout: cfg.tunnel_idle_timeout,
                open: watch::Sender::new(0),
                close: watch::Sender::new(false),
                metrics,
            }),
        }
    }

    /// A slot, or `None` when all are taken.
    pub fn try_acquire(&self) -> Option<TunnelPermit> {
        let slot = Arc::clone(&self.inner.slots).try_acquire_owned().ok()?;
        self.inner.open.send_modify(|n| *n += 1);
        self.inner.metrics.tunnels(1);
        Some(TunnelPermit {
            inner: Arc::clone(&self.inner),
            close: self.inner.close.subscribe(),
            _slot: slot,
        })
    }

    /// Slots taken now.
    pub fn open(&self) -> usize {
        *self.inner.open.borrow()
    }

    /// Resolves once no slot is taken.
    pub async fn wait_closed(&self) {
        let mut open = self.inner.open.subscribe();
        let _ = open.wait_for(|n| *n == 0).await;
    }

    /// Ends every tunnel, now and from now on (called at shutdown, after the grace period).
    pub fn close_all(&self) {
        self.inner.close.send_replace(true);
    }
}

impl Drop for TunnelPermit {
    fn drop(&mut self) {
        self.inner.open.send_modify(|n| *n = n.saturating_sub(1));
        self.inner.metrics.tunnels(-1);
    }
}

impl TunnelPermit {
    /// Copies bytes both ways until one side closes, neither direction moves a byte for the
    /// idle timeout, or the server closes all tunnels; then drops both streams (closing them)
    /// and gives the slot back.
    pub async fn splice<A, B>(mut self, client: A, upstream: B) -> Ended
    where
        A: AsyncRead + AsyncWrite + Unpin,
        B: AsyncRead + AsyncWrite + Unpin,
    {
        let activity = Arc::new(Activity::new());
        let mut client = Watched {
            inner: client,
            activity: Arc::clone(&activity),
        };
        let mut upstream = Watched {
            inner: upstream,
            activity: Arc::clone(&activity),
        };
        let idle = self.inner.idle_timeout;
        let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
        tokio::pin!(copy);
        loop {
            let deadline = activity.last() + idle;
            tokio::select! {
                r = &mut copy => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "tunnel ended with an error");
                    }
                    return Ended::Closed;
                }
                () = tokio::time::sleep_until(deadline) => {
                    // Bytes moved while we slept: wait again from the last of them.
                    if activity.last() + idle > deadline {
                        continue;
                    }
                    tracing::debug!("tunnel idle; closed");
                    return Ended::Idle;
                }
                _ = self.close.wait_for(|closed| *closed) => {
                    tracing::debug!("tunnel closed at shutdown");
                    return Ended::Shutdown;
                }
            }
        }
    }
}

/// When a byte last moved through a tunnel, as milliseconds since `origin`.
struct Activity {
    origin: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// One end of a tunnel, noting every read that brought bytes.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.touch();
        }
        polled
    }
}

crate::http::upgrade::write_through!(Watched, inner);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::Metrics;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn tunnels(max: usize, idle: Duration) -> Tunnels {
        let cfg = ServerConfig {
            max_tunnels: max,
            tunnel_idle_timeout: idle,
            ..ServerConfig::default()
        };
        Tunnels::new(&cfg, Arc::new(Metrics::new()))
    }

    #[tokio::test]
    async fn slots_are_counted_and_given_back() {
        let t = tunnels(1, Duration::from_secs(60));
        let p = t.try_acquire().expect("a slot");
        assert!(t.try_acquire().is_none());
        assert_eq!(t.open(), 1);
        drop(p);
        assert_eq!(t.open(), 0);
        tokio::time::timeout(Duration::from_secs(1), t.wait_closed())
            .await
            .expect("closed");
        assert!(t.try_acquire().is_some());
        assert!(tunnels(0, Duration::from_secs(60)).try_acquire().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_tunnel_ends_and_a_busy_one_does_not() {
        let t = tunnels(2, Duration::from_secs(10));
        let (client, mut client_peer) = tokio::io::duplex(1024);
        let (upstream, mut upstream_peer) = tokio::io::duplex(1024);
        let p = t.try_acquire().expect("slot");
        let task = tokio::spawn(p.splice(client, upstream));
        // Traffic every 6 s keeps it open past the 10 s timeout.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            client_peer.write_all(b"x").await.expect("write");
            let mut b = [0u8; 1];
            upstream_peer.read_exact(&mut b).await.expect("read");
        }
        assert!(!task.is_finished());
        let ended = tokio::time::timeout(Duration::from_secs(11), task)
            .await
            .expect("ended")
            .expect("join");
        assert_eq!(ended, Ended::Idle);
        assert_eq!(t.open(), 0);
    }

    #[tokio::test]
    async fn close_all_ends_open_and_later_tunnels() {
        let t = tunnels(2, Duration::from_secs(60));
        let (a, _a) = tokio::io::duplex(64);
        let (b, _b) = tokio::io::duplex(64);
        let task = tokio::spawn(t.try_acquire().expect("slot").splice(a, b));
        t.close_all();
        let ended = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("ended")
            .expect("join");
        assert_eq!(ended, Ended::Shutdown);
        let (a, _a) = tokio::io::duplex(64);
        let (b, _b) = tokio::io::duplex(64);
        let later = t.try_acquire().expect("slot").splice(a, b);
        let ended = tokio::time::timeout(Duration::from_secs(5), later)
            .await
            .expect("ended");
        assert_eq!(ended, Ended::Shutdown);
    }
}
