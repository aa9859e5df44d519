//! Resource limits and misbehaving peers: oversized or too many headers, slowloris, idle
//! keep-alive connections, the connection cap, clients that vanish mid-body, an app that
//! closes idle pooled connections, connections that never send a request (nothing, part of the
//! HTTP/2 preface), idle h2c connections, and WebSocket tunnels (their cap, idle timeout and
//! shutdown). Each is answered with the documented status or a closed connection, and the
//! open-connection count returns to zero.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn env_with(edit: impl FnOnce(&mut cognito_sidecar::Config)) -> (JwksServer, Echo, Sidecar) {
    let jwks = JwksServer::start().await;
    let echo = Echo::start().await;
    let mut c = gate_config(&jwks.url, &echo.url(), &closed_url().await);
    edit(&mut c);
    let sc = Sidecar::start(c).await;
    (jwks, echo, sc)
}

/// Reads until EOF or `limit`; returns what was read and whether EOF came in time.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Err(_) => return (String::from_utf8_lossy(&buf).into_owned(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&buf).into_owned(), true),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn wait_connections_zero(sc: &Sidecar) {
    wait_gauge(
        "open connections",
        || sc.app.metrics().open_connections(),
        0,
    )
    .await;
}

/// Waits (5 s at most) until `get` reads `want`.
async fn wait_gauge(what: &str, get: impl Fn() -> i64, want: i64) {
    for _ in 0..100 {
        if get() == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: {}, expected {want}", get());
}

#[tokio::test]
async fn oversized_heads_get_431() {
    let (_j, echo, sc) = env_with(|c| {
        c.server.max_header_bytes = 16 * 1024;
        c.server.max_headers = 20;
    })
    .await;
    let big = format!(
        "GET /x HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    let many: String = (0..40).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET /x HTTP/1.1\r\nHost: a\r\n{many}\r\n");
    for req in [big, many] {
        let mut s = TcpStream::connect(sc.addr).await.expect("connect");
        let _ = s.write_all(req.as_bytes()).await;
        let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");
        assert!(closed);
    }
    assert_eq!(echo.count(), 0);
    wait_connections_zero(&sc).await;
}

#[tokio::test]
async fn slowloris_and_idle_keep_alive_connections_are_closed() {
    let (_j, _e, sc) =
        env_with(|c| c.server.header_read_timeout = Duration::from_millis(800)).await;

    // One header byte every 200 ms never completes a head: closed at the deadline.
    let mut slow = TcpStream::connect(sc.addr).await.expect("connect");
    let started = tokio::time::Instant::now();
    let drip = b"GET /x HTTP/1.1\r\nHost: a\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed_by_server = false;
    for b in drip.iter() {
        if slow.write_all(&[*b]).await.is_err() {
            closed_by_server = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut probe = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), slow.read(&mut probe)).await
        {
            closed_by_server = true;
            break;
        }
    }
    assert!(closed_by_server, "a slowloris client kept its connection");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // Others are served meanwhile, and an idle keep-alive connection is closed too.
    let mut idle = TcpStream::connect(sc.addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    let mut head = [0u8; 12];
    idle.read_exact(&mut head).await.expect("answer");
    assert_eq!(&head, b"HTTP/1.1 200");
    let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(3)).await;
    assert!(
        closed,
        "an idle keep-alive connection stayed open past the timeout"
    );
    wait_connections_zero(&sc).await;
}

#[tokio::test]
async fn the_connection_cap_holds_new_clients_back_until_a_slot_frees() {
    let (_j, _e, sc) = env_with(|c| c.server.max_connections = 2).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(sc.addr).await.expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .expect("write");
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.expect("answer");
        held.push(s);
    }
    // The third connects (kernel backlog) but is not served while both slots are taken.
    let mut third = TcpStream::connect(sc.addr).await.expect("connect");
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut head = [0u8; 12];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), third.read_exact(&mut head))
            .await
            .is_err(),
        "served beyond max_connections"
    );
    drop(held.pop());
    tokio::time::timeout(Duration::from_secs(5), third.read_exact(&mut head))
        .await
        .expect("served once a slot freed")
        .expect("read");
    assert_eq!(&head, b"HTTP/1.1 200");
}

#[tokio::test]
async fn clients_that_vanish_mid_body_leave_nothing_behind() {
    let (_j, echo, sc) = env_with(|_| {}).await;
    let token = valid_token("vanish");
    for req in [
        "POST /api/user/login HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"email\":".to_string(),
        format!("POST /upload HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\nContent-Length: 100000\r\n\r\npartial"),
    ] {
        let mut s = TcpStream::connect(sc.addr).await.expect("connect");
        s.write_all(req.as_bytes()).await.expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(s);
    }
    wait_connections_zero(&sc).await;
    // Still serving, and the app never got a complete upload.
    let (s, _) = status_json(
        client()
            .get(sc.url("/after"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(s, 200);
    assert!(echo
        .seen
        .lock()
        .expect("lock")
        .iter()
        .all(|r| r.path != "/upload" || r.body_len < 100_000));
}

#[tokio::test]
async fn an_app_closing_idle_pooled_connections_costs_no_request() {
    // An app that answers one request per connection with keep-alive, then closes the
    // connection after 50 ms idle: the pool must notice and never hand out a dead one.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let app = listener.local_addr().expect("addr");
    let served = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&served);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok",
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                // dropping `s` closes the idle connection
            });
        }
    });
    let jwks = JwksServer::start().await;
    let c = gate_config(&jwks.url, &format!("http://{app}"), &closed_url().await);
    let sc = Sidecar::start(c).await;
    let token = valid_token("pool");
    for i in 0..15 {
        let r = client()
            .get(sc.url("/p"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200, "request {i}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served.load(Ordering::SeqCst), 15);
}

// === Connections that never complete a first request ===

#[tokio::test]
async fn connections_that_never_complete_a_request_head_are_closed() {
    let (_j, echo, sc) = env_with(|c| c.server.header_read_timeout = Duration::from_secs(1)).await;
    // Nothing; half the HTTP/2 preface; the whole preface and nothing more; one byte of an
    // HTTP/1 request line.
    let sends: [&[u8]; 4] = [
        b"",
        b"PRI * HTTP/2.0\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"G",
    ];
    let checks = sends.iter().map(|send| async move {
        let mut s = TcpStream::connect(sc.addr).await.expect("connect");
        s.write_all(send).await.expect("write");
        let (_, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
        (String::from_utf8_lossy(send).into_owned(), closed)
    });
    for (send, closed) in futures_util::future::join_all(checks).await {
        assert!(
            closed,
            "a connection that sent {send:?} was still open after 5 s"
        );
    }
    assert_eq!(echo.count(), 0);
    wait_connections_zero(&sc).await;
}

#[tokio::test]
async fn silent_connections_at_the_cap_do_not_lock_real_clients_out() {
    let (_j, _e, sc) = env_with(|c| {
        c.server.max_connections = 8;
        c.server.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(TcpStream::connect(sc.addr).await.expect("connect"));
    }
    for _ in 0..100 {
        if sc.app.metrics().open_connections() == 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sc.app.metrics().open_connections(), 8);
    // Queued behind the silent ones, then served once they are closed.
    let mut real = TcpStream::connect(sc.addr).await.expect("connect");
    real.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let (answer, closed) = read_until_closed(&mut real, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:.80}");
    assert!(closed);
    for s in &mut silent {
        let (_, closed) = read_until_closed(s, Duration::from_secs(5)).await;
        assert!(closed, "a silent connection is still open");
    }
    wait_connections_zero(&sc).await;
}

// === HTTP/2 idle connections ===

#[tokio::test]
async fn an_idle_h2c_connection_is_closed_after_the_idle_timeout() {
    let (_j, _e, sc) = env_with(|c| c.server.idle_timeout = Duration::from_secs(1)).await;
    let stream = TcpStream::connect(sc.addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let req = http::Request::get(format!("http://{}/healthz", sc.addr))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .expect("answered in time")
        .expect("answer");
    assert_eq!(resp.status(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body");
    assert!(!body.to_bytes().is_empty());
    // Now idle: the server says GOAWAY and closes; the client's connection future ends.
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the idle h2c connection was still open after 5 s")
        .expect("join")
        .expect("a clean close");
    wait_connections_zero(&sc).await;
}

// === WebSocket tunnels ===

/// A WebSocket echo upstream; counts handshakes.
struct WsEcho {
    addr: std::net::SocketAddr,
    handshakes: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl WsEcho {
    async fn start() -> Self {
        use futures_util::{SinkExt, StreamExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handshakes = Arc::new(AtomicU64::new(0));
        let h = Arc::clone(&handshakes);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let h = Arc::clone(&h);
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    h.fetch_add(1, Ordering::SeqCst);
                    while let Some(Ok(msg)) = ws.next().await {
                        if msg.is_close() || ws.send(msg).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        WsEcho {
            addr,
            handshakes,
            task,
        }
    }
}

impl Drop for WsEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn ws_env(edit: impl FnOnce(&mut cognito_sidecar::Config)) -> (JwksServer, WsEcho, Sidecar) {
    let jwks = JwksServer::start().await;
    let up = WsEcho::start().await;
    let mut c = gate_config(
        &jwks.url,
        &format!("http://{}", up.addr),
        &closed_url().await,
    );
    edit(&mut c);
    let sc = Sidecar::start(c).await;
    (jwks, up, sc)
}

async fn ws_connect(
    sc: &Sidecar,
) -> Result<(Ws, http::Response<Option<Vec<u8>>>), tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{}/socket", sc.addr)
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", valid_token("ws"))
            .parse()
            .expect("header"),
    );
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("handshake in time")
}

/// Sends `text` and expects it back.
async fn ws_echo(ws: &mut Ws, text: &str) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::text(text)).await.expect("send");
    let back = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("echo in time")
        .expect("a message")
        .expect("no error");
    assert_eq!(back.to_text().expect("text"), text);
}

/// Whether the tunnel under `ws` is closed (EOF, error or a close frame) within `limit`.
async fn ws_closed_within(ws: &mut Ws, limit: Duration) -> bool {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + limit;
    for _ in 0..100 {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) => return true,
            Ok(Some(Ok(m))) if m.is_close() => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
    false
}

async fn wait_tunnels_zero(app: &cognito_sidecar::App) {
    for _ in 0..100 {
        if app.tunnels().open() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} tunnels still open", app.tunnels().open());
}

#[tokio::test]
async fn tunnels_beyond_max_tunnels_get_503_and_never_reach_the_app() {
    let (_j, up, sc) = ws_env(|c| c.server.max_tunnels = 1).await;
    let (mut first, resp) = ws_connect(&sc).await.expect("first upgrade");
    assert_eq!(resp.status(), 101);
    ws_echo(&mut first, "one").await;
    match ws_connect(&sc).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 503);
            let body = resp.body().clone().unwrap_or_default();
            let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
            assert_eq!(v["code"], "too_many_tunnels");
        }
        Err(e) => panic!("expected an HTTP 503, got {e}"),
        Ok(_) => panic!("a second tunnel opened beyond max_tunnels = 1"),
    }
    assert_eq!(up.handshakes.load(Ordering::SeqCst), 1);
    ws_echo(&mut first, "still open").await;
    // Closing the first gives its slot back.
    drop(first);
    wait_tunnels_zero(&sc.app).await;
    let (mut again, _) = ws_connect(&sc)
        .await
        .expect("upgrade once the slot is free");
    ws_echo(&mut again, "again").await;
    assert_eq!(up.handshakes.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_idle_tunnel_is_closed_after_the_tunnel_idle_timeout() {
    let (_j, _up, sc) = ws_env(|c| c.server.tunnel_idle_timeout = Duration::from_secs(1)).await;
    let (mut ws, _) = ws_connect(&sc).await.expect("upgrade");
    ws_echo(&mut ws, "hello").await;
    assert!(
        ws_closed_within(&mut ws, Duration::from_secs(5)).await,
        "an idle tunnel was still open after 5 s with a 1 s idle timeout"
    );
    wait_tunnels_zero(&sc.app).await;
    assert_eq!(sc.app.metrics().open_tunnels(), 0);
}

#[tokio::test]
async fn open_tunnels_are_closed_at_shutdown_after_the_grace_period() {
    let (_j, _up, sc) = ws_env(|c| c.server.shutdown_grace = Duration::from_secs(2)).await;
    let app = sc.app.clone();
    let (mut ws, _) = ws_connect(&sc).await.expect("upgrade");
    ws_echo(&mut ws, "before").await;
    assert_eq!(app.tunnels().open(), 1);
    let stopping = tokio::spawn(sc.stop());
    // During the grace period the tunnel keeps working...
    ws_echo(&mut ws, "during the grace period").await;
    // ...and after it, it is closed and the server is done.
    assert!(
        ws_closed_within(&mut ws, Duration::from_secs(8)).await,
        "a tunnel was still open 8 s into a 2 s grace period"
    );
    tokio::time::timeout(Duration::from_secs(15), stopping)
        .await
        .expect("serve returned")
        .expect("join");
    wait_tunnels_zero(&app).await;
}

// === Parked keep-alive connections ===
// A keep-alive connection idle for 100 ms gives hyper's buffers back and waits as a bare
// socket; the client must not be able to tell, whatever it sends next.

/// Reads one response (head and a `Content-Length` body) from `s`; returns the head and body.
async fn read_response(s: &mut TcpStream) -> (String, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte))
            .await
            .expect("a response in time")
            .expect("read");
        assert_eq!(n, 1, "closed mid-head: {}", String::from_utf8_lossy(&buf));
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut body))
        .await
        .expect("body in time")
        .expect("body");
    (head, String::from_utf8_lossy(&body).into_owned())
}

/// Waits until `n` connections are parked.
async fn wait_parked(sc: &Sidecar, n: i64) {
    wait_gauge(
        "parked connections",
        || sc.app.metrics().parked_connections(),
        n,
    )
    .await;
}

/// A keep-alive connection that has served `GET /healthz` and is now parked.
async fn parked_connection(sc: &Sidecar) -> TcpStream {
    let mut s = TcpStream::connect(sc.addr).await.expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    let (head, _) = read_response(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    wait_parked(sc, 1).await;
    s
}

#[tokio::test]
async fn parked_keep_alive_connections_serve_what_comes_next_unchanged() {
    let (_j, echo, sc) = env_with(|_| {}).await;
    let token = valid_token("u-park");
    let get = |path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\n\r\n")
    };
    let mut s = TcpStream::connect(sc.addr).await.expect("connect");

    s.write_all(get("/one").as_bytes()).await.expect("write");
    let (head, _) = read_response(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    wait_parked(&sc, 1).await;

    // The next request on the same socket, after the park.
    s.write_all(get("/two").as_bytes()).await.expect("write");
    let (head, body) = read_response(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("\"/two\""), "{body}");
    wait_parked(&sc, 1).await;

    // Two pipelined requests in one write: both answered, in order.
    s.write_all(format!("{}{}", get("/three"), get("/four")).as_bytes())
        .await
        .expect("write");
    let (_, b3) = read_response(&mut s).await;
    let (_, b4) = read_response(&mut s).await;
    assert!(
        b3.contains("\"/three\"") && b4.contains("\"/four\""),
        "{b3} {b4}"
    );
    wait_parked(&sc, 1).await;

    // A request whose head arrives in pieces across the wake-up.
    let req = get("/five");
    let (a, b) = req.split_at(7);
    s.write_all(a.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(b.as_bytes()).await.expect("write");
    let (_, b5) = read_response(&mut s).await;
    assert!(b5.contains("\"/five\""), "{b5}");

    // A request with a body is not parked on (hyper keeps the connection), and still served.
    let post = format!(
        "POST /six HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\nContent-Length: 5\r\n\r\nhello"
    );
    s.write_all(post.as_bytes()).await.expect("write");
    let (head, b6) = read_response(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(b6.contains("\"body_len\":5"), "{b6}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sc.app.metrics().parked_connections(), 0);
    s.write_all(get("/seven").as_bytes()).await.expect("write");
    let (_, b7) = read_response(&mut s).await;
    assert!(b7.contains("\"/seven\""), "{b7}");

    let paths: Vec<String> = echo
        .seen
        .lock()
        .expect("lock")
        .iter()
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(
        paths,
        ["/one", "/two", "/three", "/four", "/five", "/six", "/seven"]
    );
    drop(s);
    wait_connections_zero(&sc).await;
    assert_eq!(sc.app.metrics().parked_connections(), 0);
}

#[tokio::test]
async fn a_parked_connection_is_closed_at_the_keep_alive_limit_and_at_shutdown() {
    let (_j, _e, sc) =
        env_with(|c| c.server.header_read_timeout = Duration::from_millis(800)).await;
    let mut s = TcpStream::connect(sc.addr).await.expect("connect");
    let started = tokio::time::Instant::now();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    let (head, _) = read_response(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    wait_parked(&sc, 1).await;
    let (rest, closed) = read_until_closed(&mut s, Duration::from_secs(3)).await;
    assert!(closed && rest.is_empty(), "{rest:?}");
    // Closed at the keep-alive limit, not at the park.
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    wait_connections_zero(&sc).await;
    assert_eq!(sc.app.metrics().parked_connections(), 0);

    // A parked connection does not hold the shutdown up.
    let mut s = parked_connection(&sc).await;
    let stopping = tokio::time::Instant::now();
    sc.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "{:?}",
        stopping.elapsed()
    );
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(2)).await;
    assert!(closed);
}

#[tokio::test]
async fn connections_that_asked_to_close_are_closed_not_parked() {
    let (_j, _e, sc) = env_with(|_| {}).await;
    for req in [
        "GET /healthz HTTP/1.0\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(sc.addr).await.expect("connect");
        s.write_all(req.as_bytes()).await.expect("write");
        let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(2)).await;
        assert!(answer.contains(" 200 "), "{answer}");
        assert!(closed, "{req:?} left open");
    }
    wait_connections_zero(&sc).await;
}

#[tokio::test]
async fn a_parked_connection_can_still_be_upgraded_with_bytes_sent_early() {
    use futures_util::StreamExt;
    let (_j, _up, sc) = ws_env(|_| {}).await;
    let mut s = parked_connection(&sc).await;

    // The upgrade on the parked socket, with a WebSocket frame sent right behind the request
    // (before the 101): it must reach the app through the tunnel.
    let token = valid_token("ws");
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let upgrade = format!(
        "GET /socket HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        sc.addr
    );
    // A masked text frame "early".
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | 5];
    frame.extend_from_slice(&mask);
    frame.extend(b"early".iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    let mut bytes = upgrade.into_bytes();
    bytes.extend_from_slice(&frame);
    s.write_all(&bytes).await.expect("write");
    let (head, _) = read_response(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        s,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    let back = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("echo in time")
        .expect("a message")
        .expect("no error");
    assert_eq!(back.to_text().expect("text"), "early");
    assert_eq!(sc.app.tunnels().open(), 1);
}

/// CPU time (user + system) of the calling thread so far, from /proc/thread-self/stat. A
/// `#[tokio::test]` runs the sidecar's tasks on this same thread.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
    let after_comm = stat.rsplit_once(')').expect("comm").1;
    let f: Vec<u64> = after_comm
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|v| v.parse().expect("ticks"))
        .collect();
    // Clock ticks: 100 a second on Linux.
    Duration::from_millis((f[0] + f[1]) * 10)
}

#[tokio::test]
async fn a_partial_head_after_a_park_waits_for_the_deadline_without_spinning() {
    let (_j, _e, sc) =
        env_with(|c| c.server.header_read_timeout = Duration::from_millis(1500)).await;
    let mut s = parked_connection(&sc).await;
    // A few bytes of the next head wake the connection up; then nothing more.
    let cpu = thread_cpu();
    let started = tokio::time::Instant::now();
    s.write_all(b"GET /heal").await.expect("write");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let used = thread_cpu().saturating_sub(cpu);
    assert!(
        used < Duration::from_millis(200),
        "{used:?} of CPU while waiting"
    );
    // Closed at the header-read deadline, not before.
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(4)).await;
    assert!(closed);
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    wait_connections_zero(&sc).await;
}
