//! Resource limits and misbehaving peers: oversized or too many headers, slowloris, idle
//! keep-alive connections, the connection cap, clients that vanish mid-body, and an app that
//! closes idle pooled connections. Each is answered with the documented status or a closed
//! connection, and the open-connection count returns to zero.

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
    for _ in 0..100 {
        if sc.app.metrics().open_connections() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{} connections still open",
        sc.app.metrics().open_connections()
    );
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
