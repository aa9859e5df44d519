//! What the client gets back from the app, and whose fault a broken request is: the sidecar
//! cleans the app's answer of what only the sidecar may say (its session cookie, the identity
//! namespace, aliased framing headers), re-frames an answer with both Content-Length and
//! Transfer-Encoding (RFC 9112 §6.3), and blames a body the client broke on the client.
//!
//! Every request is sent byte for byte; the app is either hyper (`serve_fn`) or, where hyper
//! would not write the answer under test, a raw TCP server that writes canned bytes.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One answer, read whole from a `Connection: close` exchange: status, raw head, body bytes.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    /// Every value of header `name` (lower-case), in order.
    fn all(&self, name: &str) -> Vec<String> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Writes `bytes` to `addr`, then (if `half_close`) shuts the write half, and reads until the
/// server closes. `None` if the server closed without an answer.
async fn exchange(addr: SocketAddr, bytes: &[u8], half_close: bool) -> Option<Answer> {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    if half_close {
        s.shutdown().await.expect("shutdown");
    }
    let mut buf = Vec::new();
    // A reset after the answer is fine: what was read is kept.
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("answer in time");
    if buf.is_empty() {
        return None;
    }
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let mut body = buf[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("\r\ntransfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Some(Answer { status, head, body })
}

/// The data of a chunked body (sizes only, no extensions: what hyper writes).
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            panic!("a chunk size line in {raw:?}");
        };
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..eol]).expect("ascii"), 16)
            .expect("hex size");
        raw = &raw[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

fn head(method: &str, target: &str, extra: &[&str]) -> String {
    let mut h = format!("{method} {target} HTTP/1.1\r\nHost: app.test\r\n");
    for line in extra {
        h.push_str(line);
        h.push_str("\r\n");
    }
    h.push_str("Connection: close\r\n\r\n");
    h
}

fn metric(sc: &Sidecar, name: &str) -> f64 {
    sc.app
        .render_metrics()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// An app that writes `answer` byte for byte to every request (after reading its head), and
/// keeps the raw heads it read.
struct RawApp {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl RawApp {
    async fn start(answer: &'static [u8]) -> RawApp {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&heads);
        tokio::spawn(async move {
            // Bounded: a test sends a few requests.
            for _ in 0..64 {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    seen.lock()
                        .expect("lock")
                        .push(String::from_utf8_lossy(&buf).into_owned());
                    let _ = s.write_all(answer).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        RawApp { addr, heads }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn count(&self) -> usize {
        self.heads.lock().expect("lock").len()
    }
}

async fn sidecar(upstream: &str, jwks: &JwksServer) -> Sidecar {
    let mut cfg = gate_config(&jwks.url, upstream, &closed_url().await);
    cfg.routes = vec![cognito_sidecar::config::RouteRule {
        path: "/public/*".into(),
        methods: vec![],
        access: cognito_sidecar::config::Access::Public,
        groups: vec![],
        scopes: vec![],
        scopes_match: None,
        claims: Default::default(),
        pools: vec![],
    }];
    Sidecar::start(cfg).await
}

// === The app's answer is cleaned ===

#[tokio::test]
async fn the_app_cannot_set_the_session_cookie_or_speak_for_the_gate() {
    let jwks = JwksServer::start().await;
    let handler: Arc<dyn Fn(Request<Incoming>) -> _ + Send + Sync> =
        Arc::new(|_req: Request<Incoming>| {
            Box::pin(async {
                Response::builder()
                    .header("set-cookie", "__Host-sidecar-session=fixed; Path=/; Secure")
                    .header("set-cookie", "app=1; Path=/")
                    .header("set-cookie", "__secure-SIDECAR-SESSION=x; Secure")
                    .header("set-cookie", "sidecar-csrf=y")
                    .header("set-cookie", " __Host-sidecar-csrf =z; Path=/; Secure")
                    .header("set-cookie", "sidecar-session-extra=kept")
                    .header("x-auth-sub", "admin")
                    .header("x-auth-groups", "admins")
                    .header("x_auth_username", "root")
                    .header("x.auth.anything", "1")
                    .header("x-auth-name", "configured")
                    .header("x-app", "kept")
                    .body(Full::new(Bytes::from_static(b"ok")))
                    .expect("response")
            })
                as std::pin::Pin<
                    Box<dyn std::future::Future<Output = Response<Full<Bytes>>> + Send>,
                >
        });
    let (app, _stop) = serve_fn(handler).await;
    let sc = sidecar(&format!("http://{app}"), &jwks).await;
    for target in ["/public/x", "/orders"] {
        let token = format!("Authorization: Bearer {}", valid_token("u-1"));
        let a = exchange(sc.addr, head("GET", target, &[&token]).as_bytes(), false)
            .await
            .expect("an answer");
        assert_eq!((a.status, a.body.as_slice()), (200, &b"ok"[..]), "{target}");
        assert_eq!(
            a.all("set-cookie"),
            vec!["app=1; Path=/", "sidecar-session-extra=kept"],
            "{target}"
        );
        let lower = a.head.to_ascii_lowercase();
        for gone in ["x-auth-", "x_auth_", "x.auth."] {
            assert!(!lower.contains(gone), "{target}: {}", a.head);
        }
        assert_eq!(a.all("x-app"), vec!["kept"]);
    }
    assert_eq!(
        metric(
            &sc,
            "sidecar_upstream_response_headers_removed_total{kind=\"session_cookie\"}"
        ),
        8.0
    );
    assert_eq!(
        metric(
            &sc,
            "sidecar_upstream_response_headers_removed_total{kind=\"identity\"}"
        ),
        10.0
    );
}

#[tokio::test]
async fn an_answer_with_content_length_and_chunked_is_sent_whole() {
    // RFC 9112 §6.3: Transfer-Encoding wins; the sidecar drops the Content-Length.
    let jwks = JwksServer::start().await;
    let app = RawApp::start(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .await;
    let sc = sidecar(&app.url(), &jwks).await;
    let a = exchange(sc.addr, head("GET", "/public/x", &[]).as_bytes(), false)
        .await
        .expect("an answer");
    assert_eq!(a.status, 200);
    assert_eq!(a.all("content-length"), Vec::<String>::new(), "{}", a.head);
    assert_eq!(String::from_utf8_lossy(&a.body), "hello world");
    assert_eq!(app.count(), 1);
}

#[tokio::test]
async fn aliased_framing_headers_in_an_answer_are_dropped() {
    let jwks = JwksServer::start().await;
    let app = RawApp::start(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer_Encoding: chunked\r\ncontent.length: 99\r\nX-App: kept\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    let sc = sidecar(&app.url(), &jwks).await;
    let a = exchange(sc.addr, head("GET", "/public/x", &[]).as_bytes(), false)
        .await
        .expect("an answer");
    assert_eq!((a.status, a.body.as_slice()), (200, &b"hello"[..]));
    let lower = a.head.to_ascii_lowercase();
    assert!(!lower.contains("transfer_encoding"), "{}", a.head);
    assert!(!lower.contains("content.length"), "{}", a.head);
    assert_eq!(a.all("x-app"), vec!["kept"]);
    assert_eq!(
        metric(
            &sc,
            "sidecar_upstream_response_headers_removed_total{kind=\"framing\"}"
        ),
        2.0
    );
}

// === A client's broken body is the client's fault ===

#[tokio::test]
async fn a_broken_request_body_is_blamed_on_the_client() {
    let jwks = JwksServer::start().await;
    let echo = Echo::start().await;
    let sc = sidecar(&echo.url(), &jwks).await;
    let chunked = ["Transfer-Encoding: chunked"];
    let cases: [(&str, Vec<u8>, bool); 4] = [
        (
            "bad size line",
            [
                head("POST", "/public/up", &chunked).as_bytes(),
                b"zz\r\nhello\r\n0\r\n\r\n",
            ]
            .concat(),
            false,
        ),
        (
            "missing CRLF after the data",
            [
                head("POST", "/public/up", &chunked).as_bytes(),
                b"5\r\nhelloXY0\r\n\r\n",
            ]
            .concat(),
            false,
        ),
        (
            "truncated chunk",
            [head("POST", "/public/up", &chunked).as_bytes(), b"a\r\nhel"].concat(),
            true,
        ),
        (
            "body shorter than its Content-Length",
            [
                head("POST", "/public/up", &["Content-Length: 100"]).as_bytes(),
                b"hello",
            ]
            .concat(),
            true,
        ),
    ];
    for (what, bytes, half_close) in &cases {
        // The answer comes before the connection closes (hyper cannot read another request
        // after a broken body).
        let a = exchange(sc.addr, bytes, *half_close)
            .await
            .unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(
            (a.status, a.json()["code"].as_str()),
            (400, Some("invalid_body")),
            "{what}: {}",
            a.head
        );
        assert_eq!(a.all("connection"), vec!["close"], "{what}");
    }
    assert_eq!(
        metric(&sc, "sidecar_gate_requests_total{outcome=\"invalid_body\"}"),
        cases.len() as f64
    );
    assert_eq!(metric(&sc, "sidecar_upstream_errors_total"), 0.0);
    // A well-formed chunked body still reaches the app whole.
    let ok = [
        head("POST", "/public/up", &chunked).as_bytes(),
        b"5\r\nhello\r\n0\r\n\r\n",
    ]
    .concat();
    let a = exchange(sc.addr, &ok, false).await.expect("an answer");
    assert_eq!(a.status, 200);
    assert_eq!(echo.last().body_len, 5);
}
