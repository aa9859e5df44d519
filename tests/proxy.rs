//! Forwarding through the gate, end to end on loopback: hop-by-hop headers both ways,
//! `X-Forwarded-*` and the `Host` policy, streaming without buffering (memory and latency),
//! server-sent events, WebSocket upgrades, upstream failures (502/504, a body cut short) and
//! h2c clients in front of an HTTP/1.1 upstream.

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{
    Request as WsRequest, Response as WsResponse,
};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// The bound on every test: nothing here should take more than a few seconds.
const LIMIT: Duration = Duration::from_secs(60);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test exceeded its time bound")
}

const MIB: usize = 1024 * 1024;

// === Helpers local to this file ===

/// A response body that may stream (`serve_fn` in common only answers with `Full`).
type Out = UnsyncBoxBody<Bytes, std::io::Error>;
type StreamHandler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Out>> + Send>> + Send + Sync,
>;

/// Like `common::serve_fn`, with a streaming response body.
async fn serve_streaming(handler: StreamHandler) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, mut rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                _ = &mut rx => return,
            };
            let handler = Arc::clone(&handler);
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let fut = handler(req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, tx)
}

fn full_body(b: impl Into<Bytes>) -> Out {
    Full::new(b.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// A body fed through a channel: each `send` becomes one data frame, dropping `tx` ends it.
fn channel_body() -> (mpsc::Sender<Bytes>, Out) {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::io::Error>(Frame::data(b)), rx))
    });
    (tx, StreamBody::new(stream).boxed_unsync())
}

/// One raw HTTP/1.1 exchange, so the test controls every byte the sidecar receives.
/// Returns status, headers (lower-cased names, in order) and the Content-Length body.
async fn raw_exchange(addr: SocketAddr, request: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut tmp).await.expect("read head");
        assert!(n > 0, "connection closed before the response head");
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .expect("a Content-Length response");
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut tmp).await.expect("read body");
        assert!(n > 0, "connection closed mid-body");
        body.extend_from_slice(&tmp[..n]);
    }
    (status, headers, body)
}

fn get_all<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn seen_all<'a>(seen: &'a Seen, name: &str) -> Vec<&'a str> {
    get_all(&seen.headers, name)
}

/// A sidecar in front of `upstream`, with a key server it owns.
async fn sidecar_for(
    upstream: &str,
    tweak: impl FnOnce(&mut cognito_sidecar::config::Config),
) -> (Sidecar, JwksServer) {
    let jwks = JwksServer::start().await;
    let mut cfg = gate_config(&jwks.url, upstream, &closed_url().await);
    tweak(&mut cfg);
    (Sidecar::start(cfg).await, jwks)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Samples VmRSS every 2 ms on a thread until stopped; returns the highest value seen.
struct RssPeak {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl RssPeak {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut peak = rss_kib();
            while !s.load(Ordering::SeqCst) {
                peak = peak.max(rss_kib());
                std::thread::sleep(Duration::from_millis(2));
            }
            peak.max(rss_kib())
        });
        RssPeak {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .expect("thread")
            .join()
            .expect("sampler thread")
    }
}

fn long_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(50))
        .build()
        .expect("client")
}

// === 1. Hop-by-hop headers ===

#[tokio::test]
async fn hop_by_hop_headers_are_removed_from_the_request() {
    bounded(async {
        let echo = Echo::start().await;
        let (sc, _jwks) = sidecar_for(&echo.url(), |_| {}).await;
        let token = valid_token("hop-user");
        let req = format!(
            "GET /hop HTTP/1.1\r\n\
             Host: app.test\r\n\
             Authorization: Bearer {token}\r\n\
             Connection: keep-alive, X-Custom, X-Auth-Sub\r\n\
             X-Custom: custom-value\r\n\
             X-Auth-Sub: forged\r\n\
             Keep-Alive: timeout=5\r\n\
             Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\
             TE: trailers\r\n\
             X-End-To-End: kept\r\n\
             \r\n"
        );
        let (status, _, body) = raw_exchange(sc.addr, &req).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(echo.count(), 1);
        let seen = echo.last();
        for gone in [
            "x-custom",
            "keep-alive",
            "proxy-authorization",
            "connection",
        ] {
            assert!(
                seen_all(&seen, gone).is_empty(),
                "{gone} reached the upstream: {:?}",
                seen.headers
            );
        }
        // Named in Connection, but ours is added after the strip: the real identity, once.
        assert_eq!(seen_all(&seen, "x-auth-sub"), vec!["hop-user"]);
        // An ordinary end-to-end header passes, and TE only ever as `trailers`.
        assert_eq!(seen.header("x-end-to-end"), Some("kept"));
        for te in seen_all(&seen, "te") {
            assert_eq!(te, "trailers");
        }
    })
    .await;
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_from_the_response() {
    bounded(async {
        let (addr, _stop) = serve_fn(Arc::new(|_req| {
            Box::pin(async {
                Response::builder()
                    .header("connection", "close, X-Secret-Hop")
                    .header("x-secret-hop", "do-not-forward")
                    .header("keep-alive", "timeout=5, max=100")
                    .header("proxy-authenticate", "Basic realm=x")
                    .header("x-end-to-end", "kept")
                    .body(Full::new(Bytes::from_static(b"upstream body")))
                    .expect("resp")
            })
        }))
        .await;
        let (sc, _jwks) = sidecar_for(&format!("http://{addr}"), |_| {}).await;
        let token = valid_token("resp-user");
        let req =
            format!("GET /r HTTP/1.1\r\nHost: app.test\r\nAuthorization: Bearer {token}\r\n\r\n");
        // Twice on fresh connections: the upstream closes each time (`Connection: close`).
        for _ in 0..2 {
            let (status, headers, body) = raw_exchange(sc.addr, &req).await;
            assert_eq!(status, 200);
            assert_eq!(body, b"upstream body");
            assert_eq!(get_all(&headers, "x-end-to-end"), vec!["kept"]);
            for gone in ["x-secret-hop", "keep-alive", "proxy-authenticate"] {
                assert!(
                    get_all(&headers, gone).is_empty(),
                    "{gone} reached the client: {headers:?}"
                );
            }
            for c in get_all(&headers, "connection") {
                assert!(
                    !c.to_ascii_lowercase().contains("x-secret-hop"),
                    "upstream Connection leaked: {c}"
                );
            }
        }
    })
    .await;
}

// === 2. X-Forwarded-*, Host, Authorization ===

fn forwarded_request(token: &str) -> String {
    format!(
        "GET /fwd HTTP/1.1\r\n\
         Host: app.example:8443\r\n\
         Authorization: Bearer {token}\r\n\
         X-Forwarded-For: 6.6.6.6, 7.7.7.7\r\n\
         X-Forwarded-Proto: https\r\n\
         X-Forwarded-Host: evil.example\r\n\
         \r\n"
    )
}

#[tokio::test]
async fn forwarded_headers_are_replaced_and_host_is_preserved() {
    bounded(async {
        let echo = Echo::start().await;
        let (sc, _jwks) = sidecar_for(&echo.url(), |_| {}).await;
        let token = valid_token("fwd-user");
        let (status, _, _) = raw_exchange(sc.addr, &forwarded_request(&token)).await;
        assert_eq!(status, 200);
        let seen = echo.last();
        // 127.0.0.1 is not a trusted proxy: its chain is replaced, not extended.
        assert_eq!(seen_all(&seen, "x-forwarded-for"), vec!["127.0.0.1"]);
        assert_eq!(seen_all(&seen, "x-forwarded-proto"), vec!["http"]);
        assert_eq!(
            seen_all(&seen, "x-forwarded-host"),
            vec!["app.example:8443"]
        );
        assert_eq!(seen_all(&seen, "host"), vec!["app.example:8443"]);
        let auth = format!("Bearer {token}");
        assert_eq!(seen.header("authorization"), Some(auth.as_str()));
    })
    .await;
}

#[tokio::test]
async fn host_is_rewritten_to_the_upstream_when_not_preserved() {
    bounded(async {
        let echo = Echo::start().await;
        let (sc, _jwks) = sidecar_for(&echo.url(), |c| c.upstream.preserve_host = false).await;
        let (status, _, _) = raw_exchange(sc.addr, &forwarded_request(&valid_token("h"))).await;
        assert_eq!(status, 200);
        let seen = echo.last();
        let upstream_authority = echo.addr.to_string();
        assert_eq!(seen_all(&seen, "host"), vec![upstream_authority.as_str()]);
        // The Host the client used is still told, in X-Forwarded-Host.
        assert_eq!(
            seen_all(&seen, "x-forwarded-host"),
            vec!["app.example:8443"]
        );
        assert_eq!(seen_all(&seen, "x-forwarded-for"), vec!["127.0.0.1"]);
    })
    .await;
}

#[tokio::test]
async fn authorization_is_withheld_when_configured() {
    bounded(async {
        let echo = Echo::start().await;
        let (sc, _jwks) =
            sidecar_for(&echo.url(), |c| c.upstream.forward_authorization = false).await;
        let (status, _, _) = raw_exchange(sc.addr, &forwarded_request(&valid_token("na"))).await;
        assert_eq!(status, 200);
        let seen = echo.last();
        assert_eq!(seen.header("authorization"), None, "{:?}", seen.headers);
        // The identity still reaches the app, through the identity headers.
        assert_eq!(seen.header("x-auth-sub"), Some("na"));
    })
    .await;
}

// === 3. Streaming ===

/// An upstream that counts a request body frame by frame (never holding it) on any POST,
/// and streams `n` MiB of response on `GET /download/<n>`.
async fn streaming_upstream(received: Arc<AtomicU64>) -> (SocketAddr, oneshot::Sender<()>) {
    serve_streaming(Arc::new(move |req: Request<Incoming>| {
        let received = Arc::clone(&received);
        Box::pin(async move {
            if req.method() == http::Method::POST {
                let mut body = req.into_body();
                let mut n = 0u64;
                while let Some(frame) = body.frame().await {
                    match frame {
                        Ok(f) => n += f.data_ref().map_or(0, |d| d.len() as u64),
                        Err(_) => break,
                    }
                }
                received.store(n, Ordering::SeqCst);
                return Response::new(full_body(format!("{{\"body_len\":{n}}}")));
            }
            let mib: usize = req
                .uri()
                .path()
                .rsplit('/')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            let chunk = Bytes::from(vec![b'r'; MIB]);
            let chunks = futures_util::stream::iter(
                (0..mib).map(move |_| Ok::<_, std::io::Error>(Frame::data(chunk.clone()))),
            );
            Response::builder()
                .header("content-length", (mib * MIB).to_string())
                .body(StreamBody::new(chunks).boxed_unsync())
                .expect("resp")
        })
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_bodies_stream_both_ways_without_buffering() {
    bounded(async {
        const SIZE_MIB: usize = 64;
        let received = Arc::new(AtomicU64::new(0));
        let (addr, _stop) = streaming_upstream(Arc::clone(&received)).await;
        let (sc, _jwks) = sidecar_for(&format!("http://{addr}"), |_| {}).await;
        let token = valid_token("big");
        let http = long_client();

        // Warm up the pools and allocator on a small body, then take the baseline.
        let warm = http
            .post(sc.url("/upload"))
            .bearer_auth(&token)
            .body(vec![0u8; 1024])
            .send()
            .await
            .expect("warm-up");
        assert_eq!(warm.status(), 200);
        let _ = warm.bytes().await;
        let baseline = rss_kib();

        // Upload: 64 MiB produced lazily by the client, counted by the upstream.
        let peak = RssPeak::start();
        let chunk = Bytes::from(vec![b'u'; MIB]);
        let stream = futures_util::stream::iter(
            (0..SIZE_MIB).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
        );
        let resp = http
            .post(sc.url("/upload"))
            .bearer_auth(&token)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .expect("upload");
        let (status, v) = status_json(resp).await;
        let up_peak = peak.finish();
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["body_len"], (SIZE_MIB * MIB) as u64);
        assert_eq!(received.load(Ordering::SeqCst), (SIZE_MIB * MIB) as u64);

        // Download: 64 MiB streamed by the upstream, counted chunk by chunk by the client.
        let peak = RssPeak::start();
        let mut resp = http
            .get(sc.url(&format!("/download/{SIZE_MIB}")))
            .bearer_auth(&token)
            .send()
            .await
            .expect("download");
        assert_eq!(resp.status(), 200);
        let mut got = 0usize;
        while let Some(c) = resp.chunk().await.expect("chunk") {
            assert!(c.iter().all(|b| *b == b'r'));
            got += c.len();
        }
        let down_peak = peak.finish();
        assert_eq!(got, SIZE_MIB * MIB);

        let grew_up = up_peak.saturating_sub(baseline) / 1024;
        let grew_down = down_peak.saturating_sub(baseline) / 1024;
        eprintln!(
            "RSS baseline {baseline} kB; growth upload {grew_up} MiB, download {grew_down} MiB"
        );
        assert!(grew_up < 32, "upload grew RSS by {grew_up} MiB");
        assert!(grew_down < 32, "download grew RSS by {grew_down} MiB");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_chunk_arrives_before_the_upstream_finishes() {
    bounded(async {
        let (addr, _stop) = serve_streaming(Arc::new(|_req| {
            Box::pin(async {
                let (tx, body) = channel_body();
                tokio::spawn(async move {
                    let _ = tx.send(Bytes::from_static(b"first;")).await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let _ = tx.send(Bytes::from_static(b"rest")).await;
                });
                Response::new(body)
            })
        }))
        .await;
        let (sc, _jwks) = sidecar_for(&format!("http://{addr}"), |_| {}).await;
        let start = Instant::now();
        let mut resp = client()
            .get(sc.url("/slow-tail"))
            .bearer_auth(valid_token("lat"))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
        let first = resp.chunk().await.expect("chunk").expect("a first chunk");
        let first_at = start.elapsed();
        assert_eq!(&first[..], b"first;");
        assert!(
            first_at < Duration::from_millis(500),
            "first chunk took {first_at:?}"
        );
        let mut rest = Vec::new();
        while let Some(c) = resp.chunk().await.expect("chunk") {
            rest.extend_from_slice(&c);
        }
        assert_eq!(rest, b"rest");
        assert!(
            start.elapsed() >= Duration::from_millis(900),
            "the upstream's pause was not observed: {:?}",
            start.elapsed()
        );
    })
    .await;
}

// === 4. Server-sent events ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_are_relayed_as_they_are_sent() {
    bounded(async {
        let sent_last = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&sent_last);
        let (addr, _stop) = serve_streaming(Arc::new(move |_req| {
            let flag = Arc::clone(&flag);
            Box::pin(async move {
                let (tx, body) = channel_body();
                tokio::spawn(async move {
                    for (i, name) in ["one", "two", "three"].iter().enumerate() {
                        if i > 0 {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        if i == 2 {
                            flag.store(true, Ordering::SeqCst);
                        }
                        let ev = format!("id: {i}\nevent: tick\ndata: {name}\n\n");
                        if tx.send(Bytes::from(ev)).await.is_err() {
                            return;
                        }
                    }
                });
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .header("cache-control", "no-cache")
                    .body(body)
                    .expect("resp")
            })
        }))
        .await;
        let (sc, _jwks) = sidecar_for(&format!("http://{addr}"), |_| {}).await;
        let mut resp = client()
            .get(sc.url("/events"))
            .bearer_auth(valid_token("sse"))
            .header("accept", "text/event-stream")
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut text = String::new();
        while !text.contains("\n\n") {
            let c = resp
                .chunk()
                .await
                .expect("chunk")
                .expect("stream ended early");
            text.push_str(&String::from_utf8_lossy(&c));
        }
        assert!(
            text.starts_with("id: 0\nevent: tick\ndata: one\n\n"),
            "{text}"
        );
        assert!(
            !sent_last.load(Ordering::SeqCst),
            "the first event arrived only after the last was sent"
        );
        while let Some(c) = resp.chunk().await.expect("chunk") {
            text.push_str(&String::from_utf8_lossy(&c));
        }
        assert_eq!(text.matches("event: tick\n").count(), 3, "{text}");
        assert!(text.ends_with("data: three\n\n"), "{text}");
    })
    .await;
}

// === 5. WebSocket ===

/// A WebSocket echo server on a raw listener; counts handshakes and records the `x-auth-sub`
/// each one carried.
struct WsEcho {
    addr: SocketAddr,
    handshakes: Arc<AtomicUsize>,
    subs: Arc<Mutex<Vec<Option<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl WsEcho {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handshakes = Arc::new(AtomicUsize::new(0));
        let subs = Arc::new(Mutex::new(Vec::new()));
        let (h, s) = (Arc::clone(&handshakes), Arc::clone(&subs));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (h, s) = (Arc::clone(&h), Arc::clone(&s));
                tokio::spawn(async move {
                    // The signature is tungstenite's `Callback`, large error and all.
                    #[allow(clippy::result_large_err)]
                    let cb = |req: &WsRequest, resp: WsResponse| {
                        h.fetch_add(1, Ordering::SeqCst);
                        let sub = req
                            .headers()
                            .get("x-auth-sub")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        s.lock().expect("lock").push(sub);
                        Ok(resp)
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, cb).await else {
                        return;
                    };
                    while let Some(Ok(msg)) = ws.next().await {
                        if msg.is_text() || msg.is_binary() {
                            if ws.send(msg).await.is_err() {
                                return;
                            }
                        } else if msg.is_close() {
                            return;
                        }
                    }
                });
            }
        });
        WsEcho {
            addr,
            handshakes,
            subs,
            task,
        }
    }
}

impl Drop for WsEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn websocket_upgrades_are_gated_and_spliced() {
    bounded(async {
        let up = WsEcho::start().await;
        let (sc, _jwks) = sidecar_for(&format!("http://{}", up.addr), |_| {}).await;
        let url = format!("ws://{}/socket", sc.addr);

        // Without a token: refused before the upstream sees anything.
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Err(WsError::Http(resp)) => {
                assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
                let body = resp.body().clone().unwrap_or_default();
                let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
                assert_eq!(v["code"], "token_missing");
            }
            Err(e) => panic!("expected an HTTP 401, got {e}"),
            Ok(_) => panic!("the upgrade went through without a token"),
        }
        // A forged token is refused too.
        let mut req = url.as_str().into_client_request().expect("request");
        req.headers_mut().insert(
            "authorization",
            "Bearer not.a.token".parse().expect("header"),
        );
        match tokio_tungstenite::connect_async(req).await {
            Err(WsError::Http(resp)) => assert_eq!(resp.status(), StatusCode::UNAUTHORIZED),
            Err(e) => panic!("expected an HTTP 401, got {e}"),
            Ok(_) => panic!("the upgrade went through with a forged token"),
        }
        assert_eq!(up.handshakes.load(Ordering::SeqCst), 0);

        // With a token: 101 through the sidecar, then messages both ways.
        let mut req = url.as_str().into_client_request().expect("request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {}", valid_token("ws-user"))
                .parse()
                .expect("header"),
        );
        let (mut ws, resp) = tokio_tungstenite::connect_async(req)
            .await
            .expect("upgrade through the sidecar");
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        for text in ["hello", "second message"] {
            ws.send(Message::text(text)).await.expect("send");
            let back = ws.next().await.expect("an echo").expect("a message");
            assert_eq!(back.to_text().expect("text"), text);
        }
        let big = vec![7u8; 256 * 1024];
        ws.send(Message::binary(big.clone())).await.expect("send");
        let back = ws.next().await.expect("an echo").expect("a message");
        assert_eq!(back.into_data().as_ref(), big.as_slice());
        ws.close(None).await.expect("close");

        // Firefox sends `Connection: keep-alive, Upgrade`: still an upgrade (RFC 6455 §4.2.1
        // sample key and accept value).
        let mut raw = TcpStream::connect(sc.addr).await.expect("connect");
        let handshake = format!(
            "GET /socket HTTP/1.1\r\n\
             Host: app.test\r\n\
             Authorization: Bearer {}\r\n\
             Connection: keep-alive, Upgrade\r\n\
             Upgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             \r\n",
            valid_token("firefox")
        );
        raw.write_all(handshake.as_bytes()).await.expect("write");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = raw.read(&mut byte).await.expect("read");
            assert!(n > 0, "closed during the handshake: {head:?}");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101 "), "{head}");
        assert!(
            head.contains("\r\nsec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nupgrade: websocket\r\n"), "{head}");
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            raw,
            tokio_tungstenite::tungstenite::protocol::Role::Client,
            None,
        )
        .await;
        ws.send(Message::text("from firefox")).await.expect("send");
        let back = ws.next().await.expect("an echo").expect("a message");
        assert_eq!(back.to_text().expect("text"), "from firefox");

        assert_eq!(up.handshakes.load(Ordering::SeqCst), 2);
        assert_eq!(
            up.subs.lock().expect("lock").as_slice(),
            &[Some("ws-user".to_string()), Some("firefox".to_string())]
        );
    })
    .await;
}

// === 6. Upstream down or slow ===

#[tokio::test]
async fn a_closed_upstream_is_a_502_and_the_sidecar_stays_up() {
    bounded(async {
        let (sc, _jwks) = sidecar_for(&closed_url().await, |_| {}).await;
        let token = valid_token("down");
        for _ in 0..2 {
            let start = Instant::now();
            let resp = client()
                .get(sc.url("/app"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("answer");
            let (status, v) = status_json(resp).await;
            assert_eq!(status, 502, "{v}");
            assert_eq!(v["code"], "upstream_unavailable");
            assert!(start.elapsed() < Duration::from_secs(2));
        }
        let resp = client()
            .get(sc.url("/healthz"))
            .send()
            .await
            .expect("health");
        assert_eq!(resp.status(), 200);
    })
    .await;
}

#[tokio::test]
async fn a_silent_upstream_is_a_504_and_the_next_request_is_served() {
    bounded(async {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = Arc::clone(&hits);
        let (addr, _stop) = serve_fn(Arc::new(move |req: Request<Incoming>| {
            h.fetch_add(1, Ordering::SeqCst);
            let slow = req.uri().path() == "/slow";
            Box::pin(async move {
                if slow {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Response::new(Full::new(Bytes::from_static(b"fast")))
            })
        }))
        .await;
        let (sc, _jwks) = sidecar_for(&format!("http://{addr}"), |c| {
            c.upstream.response_timeout = Duration::from_millis(300);
        })
        .await;
        let token = valid_token("slow");

        let start = Instant::now();
        let resp = client()
            .get(sc.url("/slow"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("answer");
        let (status, v) = status_json(resp).await;
        let took = start.elapsed();
        assert_eq!(status, 504, "{v}");
        assert_eq!(v["code"], "upstream_timeout");
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(2),
            "504 after {took:?}"
        );

        let resp = client()
            .get(sc.url("/fast"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.bytes().await.expect("body").as_ref(), b"fast");
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    })
    .await;
}

/// The response deadline is for the app's answer, not for the client's upload: a body that
/// takes longer than `response_timeout` to arrive, while the app keeps reading it, passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_longer_than_the_response_timeout_is_not_cut() {
    bounded(async {
        let received = Arc::new(AtomicU64::new(0));
        let (addr, _stop) = streaming_upstream(Arc::clone(&received)).await;
        let (sc, _jwks) = sidecar_for(&format!("http://{addr}"), |c| {
            c.upstream.response_timeout = Duration::from_millis(400);
        })
        .await;
        // Seven chunks 150 ms apart: 900 ms of upload, never 400 ms without progress.
        let chunks = futures_util::stream::unfold(0u8, |i| async move {
            if i == 7 {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            Some((Ok::<_, std::io::Error>(Bytes::from(vec![i; 1000])), i + 1))
        });
        let start = Instant::now();
        let resp = client()
            .post(sc.url("/upload"))
            .bearer_auth(valid_token("slow-upload"))
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await
            .expect("answer");
        let (status, v) = status_json(resp).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["body_len"], 7000);
        assert_eq!(received.load(Ordering::SeqCst), 7000);
        assert!(start.elapsed() >= Duration::from_millis(800));
    })
    .await;
}

/// An app that stops reading the body and never answers still gets a 504.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_stops_reading_the_body_is_a_504() {
    bounded(async {
        let (addr, _stop) = serve_fn(Arc::new(|req: Request<Incoming>| {
            Box::pin(async move {
                let _held = req;
                tokio::time::sleep(Duration::from_secs(30)).await;
                Response::new(Full::new(Bytes::new()))
            })
        }))
        .await;
        let (sc, _jwks) = sidecar_for(&format!("http://{addr}"), |c| {
            c.upstream.response_timeout = Duration::from_millis(300);
        })
        .await;
        // Far more than the socket buffers hold, produced only as fast as it is taken.
        let chunk = Bytes::from(vec![b's'; 64 * 1024]);
        let chunks = futures_util::stream::iter(
            (0..4096).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
        );
        let start = Instant::now();
        let resp = client()
            .post(sc.url("/upload"))
            .bearer_auth(valid_token("stalled"))
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await;
        let took = start.elapsed();
        match resp {
            Ok(resp) => {
                let (status, v) = status_json(resp).await;
                assert_eq!(status, 504, "{v}");
                assert_eq!(v["code"], "upstream_timeout");
            }
            // The sidecar may close the connection while the client is still writing.
            Err(e) => assert!(!e.is_timeout(), "no answer: {e}"),
        }
        assert!(took < Duration::from_secs(5), "answered after {took:?}");
    })
    .await;
}

// === 7. Upstream cut mid-body ===

#[tokio::test]
async fn a_response_cut_by_the_upstream_is_cut_for_the_client() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let upstream = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut tmp = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\
                              Content-Length: 1000\r\n\r\n0123456789",
                        )
                        .await;
                    let _ = s.flush().await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    // Dropped: closed after 10 of 1000 bytes.
                });
            }
        });
        let (sc, _jwks) = sidecar_for(&format!("http://{addr}"), |_| {}).await;
        let resp = client()
            .get(sc.url("/cut"))
            .bearer_auth(valid_token("cut"))
            .send()
            .await;
        match resp {
            // The head may already be on its way; then the body must fail, not complete.
            Ok(resp) => {
                let status = resp.status();
                let len = resp.content_length();
                match resp.bytes().await {
                    Err(_) => {
                        assert_eq!(status, 200);
                        assert_eq!(len, Some(1000));
                    }
                    Ok(b) => {
                        assert_ne!(status, 200, "a complete 200 body: {} bytes", b.len());
                        assert_ne!(b.len(), 1000);
                    }
                }
            }
            Err(e) => assert!(!e.is_timeout(), "the client hung: {e}"),
        }
        // The sidecar still answers.
        let resp = client()
            .get(sc.url("/healthz"))
            .send()
            .await
            .expect("health");
        assert_eq!(resp.status(), 200);
        upstream.abort();
    })
    .await;
}

// === 8. h2c ===

#[tokio::test]
async fn h2c_clients_reach_an_http1_upstream_with_a_host() {
    bounded(async {
        let echo = Echo::start().await;
        let (sc, _jwks) = sidecar_for(&echo.url(), |_| {}).await;
        let h2 = reqwest::Client::builder()
            .http2_prior_knowledge()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let token = valid_token("h2-user");

        // The gate applies to HTTP/2 as well.
        let resp = h2.get(sc.url("/h2")).send().await.expect("answer");
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert_eq!(resp.status(), 401);
        assert_eq!(echo.count(), 0);

        let resp = h2
            .post(sc.url("/h2?q=1"))
            .bearer_auth(&token)
            .body(vec![1u8; 100_000])
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let (status, v) = status_json(resp).await;
        assert_eq!(status, 200, "{v}");
        let seen = echo.last();
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.path, "/h2?q=1");
        assert_eq!(seen.body_len, 100_000);
        let authority = sc.addr.to_string();
        assert_eq!(seen_all(&seen, "host"), vec![authority.as_str()]);
        assert_eq!(seen.header("x-forwarded-host"), Some(authority.as_str()));
        assert_eq!(seen.header("x-auth-sub"), Some("h2-user"));
    })
    .await;
}

#[tokio::test]
async fn h2c_clients_get_the_upstream_host_when_not_preserved() {
    bounded(async {
        let echo = Echo::start().await;
        let (sc, _jwks) = sidecar_for(&echo.url(), |c| c.upstream.preserve_host = false).await;
        let h2 = reqwest::Client::builder()
            .http2_prior_knowledge()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let resp = h2
            .get(sc.url("/h2"))
            .bearer_auth(valid_token("h2"))
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), 200);
        let seen = echo.last();
        let upstream_authority = echo.addr.to_string();
        assert_eq!(seen_all(&seen, "host"), vec![upstream_authority.as_str()]);
        let authority = sc.addr.to_string();
        assert_eq!(seen.header("x-forwarded-host"), Some(authority.as_str()));
    })
    .await;
}
