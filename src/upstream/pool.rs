//! The connection pool to the one upstream app: HTTP/1.1 connections made on demand, the idle
//! ones kept on a stack (LIFO: the connection used last, the warmest, is reused first, and the
//! ones at the bottom age out), at most `upstream.pool_max_idle` of them, each closed after
//! `upstream.pool_idle_timeout` idle.
//!
//! There is one destination, so there is no key to look up: a checkout pops the stack under a
//! plain mutex. A connection is idle again only when hyper says it is ready for another
//! request, that is when its response body reached its end (or was dropped and hyper drained
//! it) and the request body was sent. Its handle is handed back as soon as the response head
//! arrives (`release`) and waits in the connection's `Slot`; whoever sees the connection ready
//! first pushes it onto the stack: the hand-back itself, or the task driving the connection,
//! which looks right after each of hyper's polls (readiness only changes inside them). No task
//! is spawned per request. An upgraded connection (101) is never handed back.
//!
//! A request that hyper hands back unsent because a reused connection turned out closed (the
//! app closed it as it was taken) is sent again, once, on a new connection, as hyper-util's
//! client does (`retry_canceled_requests`).

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use http::header::HOST;
use http::uri::{Parts, Scheme};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::config::UpstreamConfig;

/// How long past the oldest idle connection's deadline the reaper may wake, so that
/// connections that went idle close together get closed in one pass.
const REAP_BATCH: Duration = Duration::from_millis(25);

/// Why a request got no response head.
#[derive(Debug)]
pub enum SendError {
    /// Resolving the upstream host or connecting to it failed or timed out.
    Connect(io::Error),
    /// The HTTP/1.1 exchange failed (the connection closed, a malformed response head, ...).
    Http(hyper::Error),
}

impl SendError {
    /// Whether no connection could be made.
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "connect: {e}"),
            SendError::Http(e) => write!(f, "{e}"),
        }
    }
}

impl StdError for SendError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            SendError::Connect(e) => Some(e),
            SendError::Http(e) => Some(e),
        }
    }
}

/// The pool of HTTP/1.1 connections to `upstream.url`, sending request bodies of type `B`.
pub struct Pool<B> {
    inner: Arc<Inner<B>>,
}

impl<B> Clone for Pool<B> {
    fn clone(&self) -> Self {
        Pool {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<B> {
    /// Host (IPv6 without brackets) and port of `upstream.url`; `None` if it has no host
    /// (the configuration is checked before, so only in theory).
    target: Option<(Box<str>, u16)>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    builder: http1::Builder,
    idle: Mutex<Idle<B>>,
}

struct Idle<B> {
    /// Oldest at the front, most recently idle at the back (pushes come in time order, so the
    /// deque stays sorted by `since`).
    stack: VecDeque<Entry<B>>,
    /// Whether a reaper task is running.
    reaping: bool,
}

struct Entry<B> {
    conn: Conn<B>,
    since: Instant,
}

/// One connection: its request handle and the slot the handle waits in between its response
/// head and the connection being ready again.
struct Conn<B> {
    tx: SendRequest<B>,
    slot: Arc<Slot<B>>,
}

struct Slot<B> {
    parked: Mutex<Option<SendRequest<B>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<B> Pool<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    /// An empty pool for `cfg.url`; connections are made on demand.
    pub fn new(cfg: &UpstreamConfig) -> Self {
        let target = cfg.url.parse::<Uri>().ok().and_then(|u| {
            let host = u.host()?.trim_start_matches('[').trim_end_matches(']');
            let port = u.port_u16().unwrap_or(80);
            Some((Box::from(host), port))
        });
        Pool {
            inner: Arc::new(Inner {
                target,
                connect_timeout: cfg.connect_timeout,
                idle_timeout: cfg.pool_idle_timeout,
                max_idle: cfg.pool_max_idle,
                // Vectored writes (hyper's default here): a request body goes out from the
                // client's buffers without a copy, so an upload leaves no large buffer behind
                // on a pooled connection (the server side flattens; see `server.rs`).
                builder: http1::Builder::new(),
                idle: Mutex::new(Idle {
                    stack: VecDeque::new(),
                    reaping: false,
                }),
            }),
        }
    }

    /// Sends `req` (origin-form, as `forward::to_upstream` builds it, or absolute-form) on
    /// an idle connection or a new one, in origin-form (authority-form for `CONNECT`), and
    /// returns the response head with its body streaming. The connection goes back to the
    /// pool once hyper has it ready for another request.
    pub async fn send(&self, mut req: Request<B>) -> Result<Response<Incoming>, SendError> {
        to_wire_form(&mut req);
        let inner = &self.inner;
        let (mut conn, reused) = match inner.checkout() {
            Some(conn) => (conn, true),
            None => (inner.connect().await?, false),
        };
        let resp = match conn.tx.try_send_request(req).await {
            Ok(resp) => resp,
            Err(mut e) => match e.take_message() {
                // Unsent on a connection that looked ready: it was closing as we took it.
                Some(req) if reused => {
                    tracing::debug!(
                        error = %e.error(),
                        "pooled upstream connection closed before the request was sent, retrying on a new one"
                    );
                    conn = inner.connect().await?;
                    conn.tx
                        .try_send_request(req)
                        .await
                        .map_err(|e| SendError::Http(e.into_error()))?
                }
                _ => return Err(SendError::Http(e.into_error())),
            },
        };
        // After a 101 the connection belongs to the upgrade: never handed back.
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            inner.release(conn);
        }
        Ok(resp)
    }

    /// Idle connections right now.
    pub fn idle(&self) -> usize {
        lock(&self.inner.idle).stack.len()
    }
}

/// Origin-form (`/path?query`) for the wire, authority-form for `CONNECT`, as hyper-util's
/// client sends a request to a server (not a proxy); a missing `Host` is added from the
/// authority, as it does.
fn to_wire_form<B>(req: &mut Request<B>) {
    let uri = req.uri();
    if uri.scheme().is_none() && uri.authority().is_none() {
        return;
    }
    let connect = req.method() == Method::CONNECT;
    let parts = std::mem::take(req.uri_mut()).into_parts();
    if let Some(a) = &parts.authority {
        if !req.headers().contains_key(HOST) {
            let default_port = if parts.scheme.as_ref() == Some(&Scheme::HTTPS) {
                443
            } else {
                80
            };
            let host = match a.port_u16() {
                Some(p) if p != default_port => HeaderValue::from_str(&format!("{}:{p}", a.host())),
                _ => HeaderValue::from_str(a.host()),
            };
            if let Ok(v) = host {
                req.headers_mut().insert(HOST, v);
            }
        }
    }
    let mut wire = Parts::default();
    if connect {
        wire.authority = parts.authority;
    } else {
        wire.path_and_query = parts.path_and_query;
    }
    *req.uri_mut() = Uri::from_parts(wire).unwrap_or_default();
}

impl<B> Inner<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    /// The most recently idle connection that is ready; closed and expired ones are dropped.
    fn checkout(&self) -> Option<Conn<B>> {
        let now = Instant::now();
        let mut dead = Vec::new();
        let found = {
            let mut idle = lock(&self.idle);
            loop {
                match idle.stack.pop_back() {
                    None => break None,
                    Some(e) if now.saturating_duration_since(e.since) >= self.idle_timeout => {
                        // Expired, and everything below it is older.
                        dead.push(e);
                        dead.extend(idle.stack.drain(..));
                        break None;
                    }
                    Some(e) if e.conn.tx.is_ready() => break Some(e.conn),
                    Some(e) => dead.push(e),
                }
            }
        };
        // Dropping a handle closes its connection: outside the lock.
        drop(dead);
        found
    }

    /// A new connection, its driver task spawned. Boxed: connecting is rare, and the request
    /// future that awaits it stays small.
    fn connect(
        self: &Arc<Self>,
    ) -> Pin<Box<dyn Future<Output = Result<Conn<B>, SendError>> + Send + '_>> {
        Box::pin(async move {
            let stream = self.tcp().await.map_err(SendError::Connect)?;
            self.handshake(TokioIo::new(stream)).await
        })
    }

    /// Resolves the upstream host (an IP address is taken as it is) and connects to its
    /// addresses in turn, each under its share of `connect_timeout`, as hyper-util's
    /// `HttpConnector` does.
    async fn tcp(&self) -> io::Result<TcpStream> {
        let Some((host, port)) = &self.target else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the upstream URL has no host",
            ));
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((&**host, *port)).await?.collect();
        let n = u32::try_from(addrs.len()).unwrap_or(u32::MAX).max(1);
        let each = self.connect_timeout / n;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the upstream host has no address");
        for addr in addrs {
            match tokio::time::timeout(each, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    stream.set_nodelay(true)?;
                    return Ok(stream);
                }
                Ok(Err(e)) => last = e,
                Err(_) => last = io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
            }
        }
        Err(last)
    }

    /// The HTTP/1.1 handshake on `io`; spawns the task that drives the connection (with
    /// upgrades) and hands its handle back to the pool whenever it is ready again.
    async fn handshake<T>(self: &Arc<Self>, io: T) -> Result<Conn<B>, SendError>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (tx, conn) = self.builder.handshake(io).await.map_err(SendError::Http)?;
        let slot = Arc::new(Slot {
            parked: Mutex::new(None),
        });
        tokio::spawn(drive(
            conn.with_upgrades(),
            Arc::clone(&slot),
            Arc::downgrade(self),
        ));
        Ok(Conn { tx, slot })
    }

    /// Back from a request whose response head came: onto the stack if ready now, else into
    /// its slot for the driver to push once hyper has it ready (dropped if closed).
    fn release(self: &Arc<Self>, conn: Conn<B>) {
        let Conn { tx, slot } = conn;
        {
            let mut parked = lock(&slot.parked);
            // Checked under the slot's lock: the driver sets readiness in its poll, then
            // takes this lock, so one of the two sees the handle ready.
            if !tx.is_ready() {
                if !tx.is_closed() {
                    *parked = Some(tx);
                }
                return;
            }
        }
        self.put(Conn { tx, slot });
    }

    /// Pushes a ready connection onto the stack; at `max_idle` the oldest is closed. Starts the
    /// reaper if none runs.
    fn put(self: &Arc<Self>, conn: Conn<B>) {
        if self.max_idle == 0 || self.idle_timeout.is_zero() {
            return;
        }
        let since = Instant::now();
        let (evicted, start_reaper) = {
            let mut idle = lock(&self.idle);
            let evicted = if idle.stack.len() >= self.max_idle {
                idle.stack.pop_front()
            } else {
                None
            };
            idle.stack.push_back(Entry { conn, since });
            let start = !idle.reaping;
            idle.reaping = true;
            (evicted, start)
        };
        drop(evicted);
        if start_reaper {
            tokio::spawn(reap(Arc::downgrade(self), self.idle_timeout));
        }
    }
}

impl<B> Slot<B> {
    /// The parked handle, if its connection is ready now.
    fn take_ready(&self) -> Option<SendRequest<B>> {
        let mut parked = lock(&self.parked);
        if parked.as_ref().is_some_and(SendRequest::is_ready) {
            parked.take()
        } else {
            None
        }
    }
}

/// Drives one connection until it closes or is upgraded. After every poll that leaves it
/// pending (hyper marks the connection ready for the next request inside its poll), a parked
/// handle that is ready goes back to the pool.
async fn drive<F, B>(conn: F, slot: Arc<Slot<B>>, pool: Weak<Inner<B>>)
where
    F: Future<Output = hyper::Result<()>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let mut conn = std::pin::pin!(conn);
    let ended = std::future::poll_fn(|cx| {
        let polled = conn.as_mut().poll(cx);
        if polled.is_pending() {
            if let Some(tx) = slot.take_ready() {
                if let Some(pool) = pool.upgrade() {
                    pool.put(Conn {
                        tx,
                        slot: Arc::clone(&slot),
                    });
                }
            }
        }
        polled
    })
    .await;
    // Closed or upgraded: a handle still parked is of no use.
    drop(lock(&slot.parked).take());
    if let Err(e) = ended {
        tracing::debug!(error = %e, "upstream connection ended with an error");
    }
}

/// Closes idle connections once they have been idle for `timeout`: sleeps until the oldest
/// one's deadline, closes every expired (or closed) one from the bottom of the stack, and ends
/// when the stack is empty or the pool is gone (the next `put` starts another).
async fn reap<B>(pool: Weak<Inner<B>>, timeout: Duration) {
    let mut wait = timeout;
    loop {
        tokio::time::sleep(wait).await;
        let Some(inner) = pool.upgrade() else {
            return;
        };
        let now = Instant::now();
        let mut expired = Vec::new();
        let next = {
            let mut idle = lock(&inner.idle);
            while let Some(e) = idle.stack.front() {
                if now.saturating_duration_since(e.since) < timeout && !e.conn.tx.is_closed() {
                    break;
                }
                expired.extend(idle.stack.pop_front());
            }
            match idle.stack.front() {
                Some(e) => Some((e.since + timeout).saturating_duration_since(now)),
                None => {
                    idle.reaping = false;
                    None
                }
            }
        };
        drop(inner);
        drop(expired);
        match next {
            Some(d) => wait = d + REAP_BATCH,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A loopback app answering `GET /big` with 4 MiB and anything else with `ok`, counting
    /// the connections it accepted.
    async fn app() -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = service_fn(|req: Request<Incoming>| async move {
                        let body = if req.uri().path() == "/big" {
                            Bytes::from(vec![b'x'; 4 << 20])
                        } else {
                            Bytes::from_static(b"ok")
                        };
                        Ok::<_, Infallible>(Response::new(Full::new(body)))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        (addr, accepted)
    }

    fn pool(addr: SocketAddr) -> Pool<Full<Bytes>> {
        let cfg = UpstreamConfig {
            url: format!("http://{addr}"),
            ..UpstreamConfig::default()
        };
        Pool::new(&cfg)
    }

    fn get(addr: SocketAddr, path: &str) -> Request<Full<Bytes>> {
        Request::get(format!("http://{addr}{path}"))
            .header(HOST, "app.test")
            .body(Full::default())
            .expect("request")
    }

    async fn wait_idle(p: &Pool<Full<Bytes>>, n: usize) {
        for _ in 0..200 {
            if p.idle() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("{} idle connections, wanted {n}", p.idle());
    }

    #[tokio::test]
    async fn sequential_requests_reuse_one_connection() {
        let (addr, accepted) = app().await;
        let p = pool(addr);
        for _ in 0..3 {
            let resp = p.send(get(addr, "/")).await.expect("response");
            assert_eq!(resp.status(), 200);
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(&body[..], b"ok");
            wait_idle(&p, 1).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_is_back_once_its_body_is_read_on_any_thread() {
        let (addr, accepted) = app().await;
        let p = pool(addr);
        for _ in 0..50 {
            let resp = p.send(get(addr, "/")).await.expect("response");
            let _ = resp.into_body().collect().await.expect("body");
            wait_idle(&p, 1).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_is_not_idle_while_its_body_is_unread() {
        let (addr, accepted) = app().await;
        let p = pool(addr);
        let resp = p.send(get(addr, "/big")).await.expect("response");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(p.idle(), 0, "handed out again mid-body");
        // A second request meanwhile takes a connection of its own.
        let other = p.send(get(addr, "/")).await.expect("response");
        let _ = other.into_body().collect().await.expect("body");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(body.len(), 4 << 20);
        wait_idle(&p, 2).await;
    }

    #[tokio::test]
    async fn a_body_dropped_early_does_not_return_its_connection_unready() {
        let (addr, accepted) = app().await;
        let p = pool(addr);
        let mut resp = p.send(get(addr, "/big")).await.expect("response");
        let _ = resp.body_mut().frame().await;
        drop(resp);
        // hyper cannot drain 4 MiB: it closes the connection, which never becomes idle.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(p.idle(), 0);
        let resp = p.send(get(addr, "/")).await.expect("response");
        assert_eq!(resp.status(), 200);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_reused_connection_closed_before_sending_is_retried_on_a_new_one() {
        let (addr, accepted) = app().await;
        let p = pool(addr);
        // A connection that looks ready in the pool, whose app end then goes away before
        // its driver notices (it cannot run between the close and the checkout here).
        let (client, server) = tokio::io::duplex(4096);
        let mut conn = p
            .inner
            .handshake(TokioIo::new(client))
            .await
            .expect("handshake");
        conn.tx.ready().await.expect("ready");
        p.inner.put(conn);
        assert_eq!(p.idle(), 1);
        drop(server);
        // Still ready as far as the pool can tell: the checkout takes it.
        assert!(lock(&p.inner.idle)
            .stack
            .back()
            .is_some_and(|e| e.conn.tx.is_ready()));
        let resp = p.send(get(addr, "/")).await.expect("retried");
        assert_eq!(resp.status(), 200);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_fresh_connection_failing_is_not_retried() {
        // An app that reads the request and closes without answering.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.shutdown().await;
            }
        });
        let p = pool(addr);
        let e = p.send(get(addr, "/")).await.expect_err("no answer");
        assert!(!e.is_connect(), "{e}");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn connect_failures_are_connect_errors() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        drop(l);
        let e = pool(addr)
            .send(get(addr, "/"))
            .await
            .expect_err("nothing listens");
        assert!(e.is_connect(), "{e}");
    }

    #[tokio::test]
    async fn at_most_max_idle_connections_are_kept() {
        let (addr, accepted) = app().await;
        let cfg = UpstreamConfig {
            url: format!("http://{addr}"),
            pool_max_idle: 2,
            ..UpstreamConfig::default()
        };
        let p: Pool<Full<Bytes>> = Pool::new(&cfg);
        // Four responses held at once, their bodies unread: four connections.
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(p.send(get(addr, "/big")).await.expect("response"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
        for resp in held {
            let _ = resp.into_body().collect().await.expect("body");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(p.idle(), 2);
    }

    #[tokio::test]
    async fn idle_connections_are_closed_after_the_idle_timeout() {
        let (addr, _) = app().await;
        let cfg = UpstreamConfig {
            url: format!("http://{addr}"),
            pool_idle_timeout: Duration::from_millis(300),
            ..UpstreamConfig::default()
        };
        let p: Pool<Full<Bytes>> = Pool::new(&cfg);
        let resp = p.send(get(addr, "/")).await.expect("response");
        let _ = resp.into_body().collect().await.expect("body");
        wait_idle(&p, 1).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(p.idle(), 1);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(p.idle(), 0);
        // The reaper ended with the stack empty; the next idle connection starts another.
        let resp = p.send(get(addr, "/")).await.expect("response");
        let _ = resp.into_body().collect().await.expect("body");
        wait_idle(&p, 1).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(p.idle(), 0);
    }

    #[test]
    fn requests_go_out_in_origin_form_with_a_host() {
        let form = |method: Method, uri: &str, host: Option<&str>| {
            let mut b = Request::builder().method(method).uri(uri);
            if let Some(h) = host {
                b = b.header(HOST, h);
            }
            let mut req = b.body(()).expect("request");
            to_wire_form(&mut req);
            let host = req
                .headers()
                .get(HOST)
                .map(|v| v.to_str().expect("ascii").to_string());
            (req.uri().to_string(), host)
        };
        let h = |s: &str| Some(s.to_string());
        assert_eq!(
            form(
                Method::GET,
                "http://127.0.0.1:3000/a/b?x=1&y",
                Some("app.test")
            ),
            ("/a/b?x=1&y".to_string(), h("app.test"))
        );
        assert_eq!(
            form(Method::GET, "http://127.0.0.1:3000", None),
            ("/".to_string(), h("127.0.0.1:3000"))
        );
        assert_eq!(
            form(Method::POST, "http://app:80/p", None),
            ("/p".to_string(), h("app"))
        );
        assert_eq!(
            form(Method::GET, "/already?q", Some("a")),
            ("/already?q".to_string(), h("a"))
        );
        assert_eq!(
            form(Method::CONNECT, "http://127.0.0.1:3000/x", Some("a")),
            ("127.0.0.1:3000".to_string(), h("a"))
        );
    }
}
