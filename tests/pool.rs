//! The connection pool to the app, seen from the app's side of loopback: sequential requests
//! share one connection, at most `upstream.pool_max_idle` idle connections are kept, an idle
//! one is closed after `upstream.pool_idle_timeout`, connections the app closes cost no
//! request, and an app that cannot be reached (refused, or no answer to the connect) is a 502.

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

const LIMIT: Duration = Duration::from_secs(60);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test exceeded its time bound")
}

/// An HTTP/1.1 app on loopback that counts the connections it accepted and those still open
/// (one is closed when the sidecar closes it); `GET /hold` waits for a permit of `gate`.
struct App {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    arrived: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
}

impl App {
    async fn start() -> App {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = App {
            addr,
            accepted: Arc::new(AtomicUsize::new(0)),
            open: Arc::new(AtomicUsize::new(0)),
            arrived: Arc::new(AtomicUsize::new(0)),
            gate: Arc::new(Semaphore::new(0)),
        };
        let (accepted, open) = (Arc::clone(&app.accepted), Arc::clone(&app.open));
        let (arrived, gate) = (Arc::clone(&app.arrived), Arc::clone(&app.gate));
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                open.fetch_add(1, Ordering::SeqCst);
                let (open, arrived, gate) =
                    (Arc::clone(&open), Arc::clone(&arrived), Arc::clone(&gate));
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (arrived, gate) = (Arc::clone(&arrived), Arc::clone(&gate));
                        async move {
                            arrived.fetch_add(1, Ordering::SeqCst);
                            if req.uri().path() == "/hold" {
                                if let Ok(p) = gate.acquire().await {
                                    p.forget();
                                }
                            }
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        app
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Waits (up to `limit`) until `open` connections are left; returns how long it took.
    async fn wait_open(&self, open: usize, limit: Duration) -> Duration {
        let start = Instant::now();
        while self.open() != open {
            assert!(
                start.elapsed() < limit,
                "{} connections open after {limit:?}, wanted {open}",
                self.open()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        start.elapsed()
    }
}

async fn sidecar_for(
    upstream: &str,
    tweak: impl FnOnce(&mut cognito_sidecar::Config),
) -> (Sidecar, JwksServer) {
    let jwks = JwksServer::start().await;
    let mut cfg = gate_config(&jwks.url, upstream, &closed_url().await);
    tweak(&mut cfg);
    (Sidecar::start(cfg).await, jwks)
}

async fn get(sc: &Sidecar, path: &str) -> (u16, String) {
    let resp = client()
        .get(sc.url(path))
        .bearer_auth(valid_token("pool"))
        .send()
        .await
        .expect("answer");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

#[tokio::test]
async fn sequential_requests_share_one_upstream_connection() {
    bounded(async {
        let app = App::start().await;
        let (sc, _jwks) = sidecar_for(&app.url(), |_| {}).await;
        for i in 0..5 {
            assert_eq!(get(&sc, "/x").await, (200, "ok".into()), "request {i}");
        }
        assert_eq!(app.accepted(), 1);
        assert_eq!(app.open(), 1);
    })
    .await;
}

#[tokio::test]
async fn at_most_pool_max_idle_connections_stay_open() {
    bounded(async {
        let app = App::start().await;
        let (sc, _jwks) = sidecar_for(&app.url(), |c| c.upstream.pool_max_idle = 2).await;
        let sc = Arc::new(sc);
        // Five requests the app holds at once: five connections.
        let held: Vec<_> = (0..5)
            .map(|_| {
                let sc = Arc::clone(&sc);
                tokio::spawn(async move { get(&sc, "/hold").await })
            })
            .collect();
        while app.arrived.load(Ordering::SeqCst) < 5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(app.accepted(), 5);
        app.gate.add_permits(5);
        for h in held {
            assert_eq!(h.await.expect("task"), (200, "ok".into()));
        }
        // Two stay idle, the other three are closed.
        app.wait_open(2, Duration::from_secs(5)).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(app.open(), 2);
        // The two idle ones serve what comes next.
        for _ in 0..3 {
            assert_eq!(get(&sc, "/x").await, (200, "ok".into()));
        }
        assert_eq!(app.accepted(), 5);
    })
    .await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_pool_idle_timeout() {
    bounded(async {
        let app = App::start().await;
        let (sc, _jwks) = sidecar_for(&app.url(), |c| {
            c.upstream.pool_idle_timeout = Duration::from_secs(1);
        })
        .await;
        assert_eq!(get(&sc, "/x").await, (200, "ok".into()));
        assert_eq!(app.open(), 1);
        // The app sees the sidecar close it (EOF) about a second later, with no other request.
        let took = app.wait_open(0, Duration::from_secs(3)).await;
        assert!(took >= Duration::from_millis(800), "closed after {took:?}");
        // The next request connects again.
        assert_eq!(get(&sc, "/x").await, (200, "ok".into()));
        assert_eq!(app.accepted(), 2);
    })
    .await;
}

#[tokio::test]
async fn connections_the_app_closes_cost_no_request() {
    bounded(async {
        // Keep-alive answers, then the app closes each connection 20 ms later: every pooled
        // connection is stale by the next request.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                });
            }
        });
        let (sc, _jwks) = sidecar_for(&format!("http://{addr}"), |_| {}).await;
        for i in 0..10 {
            assert_eq!(get(&sc, "/x").await, (200, "ok".into()), "request {i}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 10);
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_app_is_a_502() {
    bounded(async {
        // Refused at once.
        let (sc, _jwks) = sidecar_for(&closed_url().await, |_| {}).await;
        let resp = client()
            .get(sc.url("/x"))
            .bearer_auth(valid_token("pool"))
            .send()
            .await
            .expect("answer");
        let (status, v) = status_json(resp).await;
        assert_eq!(status, 502, "{v}");
        assert_eq!(v["code"], "upstream_unavailable");

        // No answer to the connect (TEST-NET-1 is never routed): the connect timeout, well
        // within the response timeout, is a 502 too, not a 504.
        let (sc, _jwks) = sidecar_for("http://192.0.2.1:9", |c| {
            c.upstream.connect_timeout = Duration::from_millis(300);
            c.upstream.response_timeout = Duration::from_secs(5);
        })
        .await;
        let start = Instant::now();
        let resp = client()
            .get(sc.url("/x"))
            .bearer_auth(valid_token("pool"))
            .send()
            .await
            .expect("answer");
        let (status, v) = status_json(resp).await;
        assert_eq!(status, 502, "{v}");
        assert_eq!(v["code"], "upstream_unavailable");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    })
    .await;
}
