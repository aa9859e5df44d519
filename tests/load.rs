//! Correctness under load, bounded in count and time: 2,000 requests over 200 concurrent
//! connections mixing valid tokens (each with its own identity), every kind of invalid token,
//! spoofed identity headers and public routes. Zero invalid requests may reach the app, zero
//! valid ones may be refused, and the app must see exactly each token's identity. Then the
//! real binary under load gets SIGTERM: every answered request is a 200 and it exits 0.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cognito_sidecar::config::{Access, RouteRule};
use common::*;
use http::Response;
use http_body_util::Full;
use serde_json::json;

const REQUESTS: usize = 2_000;
const CONNECTIONS: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Valid,
    Invalid,
    Public,
}

/// Request `i`: its kind, path, bearer token, and the `sub` the app must see (valid only).
fn request(
    i: usize,
    tokens: &[String],
    bad: &[String],
) -> (Kind, String, Option<String>, Option<String>) {
    match i % 4 {
        0 | 1 => {
            let n = i % tokens.len();
            (
                Kind::Valid,
                format!("/api/items/{i}"),
                Some(tokens[n].clone()),
                Some(format!("user-{n}")),
            )
        }
        2 => (
            Kind::Invalid,
            format!("/api/items/{i}"),
            Some(bad[i % bad.len()].clone()),
            None,
        ),
        _ => (Kind::Public, format!("/public/{i}"), None, None),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_load_is_gated_exactly() {
    let jwks = JwksServer::start().await;
    let echo = Echo::start().await;
    let mut c = gate_config(&jwks.url, &echo.url(), &closed_url().await);
    c.routes.push(RouteRule {
        path: "/public/*".into(),
        methods: vec![],
        access: Access::Public,
        groups: vec![],
        scopes: vec![],
        scopes_match: None,
        claims: Default::default(),
        pools: vec![],
    });
    let sc = Sidecar::start(c).await;

    let tokens: Vec<String> = (0..50).map(|n| valid_token(&n.to_string())).collect();
    // valid_token(n) has sub "n" and username "user-n"
    let t = now();
    let base = access_claims("intruder");
    let bad: Vec<String> = vec![
        mint("other", "k1", &base),
        mint("key1", "k1", &{
            let mut b = base.clone();
            b["exp"] = json!(t - 3600);
            b
        }),
        mint("key1", "k1", &{
            let mut b = base.clone();
            b["iss"] = json!("https://evil.example");
            b
        }),
        mint("key1", "k1", &{
            let mut b = base.clone();
            b["client_id"] = json!("other");
            b
        }),
        mint("key1", "k1", &{
            let mut b = base.clone();
            b["token_use"] = json!("id");
            b
        }),
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "kid": "k1"})),
            b64(&base)
        ),
        "garbage".into(),
        {
            let good = valid_token("intruder");
            let mut p: Vec<String> = good.split('.').map(str::to_string).collect();
            p[1] = b64(&{
                let mut b = base.clone();
                b["sub"] = json!("0");
                b
            });
            p.join(".")
        },
    ];

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let tokens = Arc::new(tokens);
    let bad = Arc::new(bad);
    let mut workers = Vec::new();
    for w in 0..CONNECTIONS {
        let (http, url, tokens, bad) = (
            http.clone(),
            sc.url(""),
            Arc::clone(&tokens),
            Arc::clone(&bad),
        );
        workers.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for i in (w..REQUESTS).step_by(CONNECTIONS) {
                let (kind, path, token, _) = request(i, &tokens, &bad);
                let mut req = http
                    .get(format!("{url}{path}"))
                    .header("x-test-id", i.to_string())
                    // Spoofs on every request, in several spellings.
                    .header("x-auth-sub", "admin")
                    .header("x_auth_sub", "admin")
                    .header("x.auth.groups", "admin");
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let status = req.send().await.map(|r| r.status().as_u16()).unwrap_or(0);
                results.push((i, kind, status));
            }
            results
        }));
    }
    let mut statuses: HashMap<usize, (Kind, u16)> = HashMap::new();
    let all = tokio::time::timeout(
        Duration::from_secs(120),
        futures_util::future::join_all(workers),
    )
    .await
    .expect("load finished in time");
    for r in all {
        for (i, kind, status) in r.expect("worker") {
            statuses.insert(i, (kind, status));
        }
    }
    assert_eq!(statuses.len(), REQUESTS);
    let refused_valid = statuses
        .values()
        .filter(|(k, s)| *k != Kind::Invalid && *s != 200)
        .count();
    let accepted_invalid = statuses
        .values()
        .filter(|(k, s)| *k == Kind::Invalid && *s != 401)
        .count();
    assert_eq!(refused_valid, 0, "valid or public requests refused");
    assert_eq!(accepted_invalid, 0, "invalid requests not answered 401");

    // What the app saw: exactly the valid and public requests, each with its own identity.
    let seen = echo.seen.lock().expect("lock").clone();
    let mut reached: HashMap<usize, Seen> = HashMap::new();
    for s in seen {
        let id: usize = s
            .header("x-test-id")
            .expect("test id")
            .parse()
            .expect("number");
        assert!(
            reached.insert(id, s).is_none(),
            "request {id} reached the app twice"
        );
    }
    let mut valid = 0;
    for i in 0..REQUESTS {
        let (kind, _, _, want_user) = request(i, &tokens, &bad);
        match (kind, reached.get(&i)) {
            (Kind::Invalid, Some(_)) => panic!("invalid request {i} reached the app"),
            (Kind::Invalid, None) => {}
            (_, None) => panic!("request {i} ({kind:?}) never reached the app"),
            (Kind::Valid, Some(s)) => {
                valid += 1;
                assert_eq!(
                    s.header("x-auth-username"),
                    want_user.as_deref(),
                    "request {i}"
                );
                let sub = want_user
                    .as_deref()
                    .and_then(|u| u.strip_prefix("user-"))
                    .expect("sub");
                assert_eq!(s.header("x-auth-sub"), Some(sub), "request {i}");
                assert!(s.header("x_auth_sub").is_none() && s.header("x.auth.groups").is_none());
            }
            (Kind::Public, Some(s)) => {
                assert!(
                    s.headers
                        .iter()
                        .all(|(k, _)| !k.replace(['_', '.'], "-").starts_with("x-auth-")),
                    "public request {i} carried identity headers: {:?}",
                    s.headers
                );
            }
        }
    }
    assert_eq!(valid, REQUESTS / 2);
    assert_eq!(reached.len(), REQUESTS / 2 + REQUESTS / 4);
    // Connections are all accounted for once the clients go away.
    drop(http);
    let mut open = i64::MAX;
    for _ in 0..100 {
        open = sc.app.metrics().open_connections();
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(open, 0, "connections left open after the load");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_and_exits_zero() {
    let jwks = JwksServer::start().await;
    let (upstream, _stop) = serve_fn(Arc::new(|_req| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Response::new(Full::new(Bytes::from_static(b"done")))
        })
    }))
    .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = Reaped(
        Command::new(env!("CARGO_BIN_EXE_cognito-sidecar"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["--config", "proxy.toml"])
            .env_clear()
            .env("COGNITO_USER_POOL_ID", "us-east-1_TestPool")
            .env("COGNITO_APP_CLIENT_ID", CLIENT_ID)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("SIDECAR_COGNITO__ENDPOINT_URL", closed_url().await)
            .env("SIDECAR_VERIFY__JWKS_URL", &jwks.url)
            .env("SIDECAR_UPSTREAM__URL", format!("http://{upstream}"))
            .env("SIDECAR_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("SIDECAR_ADMIN__LISTEN", format!("127.0.0.1:{admin}"))
            .env("SIDECAR_SERVER__SHUTDOWN_GRACE", "5s")
            .env("SIDECAR_LOG__ACCESS", "false")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = client();
    let mut ready = false;
    for _ in 0..100 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .map(|r| r.status() == 200)
            .unwrap_or(false)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready);

    let token = valid_token("drain");
    let mut workers = Vec::new();
    for _ in 0..50 {
        let (http, url, token) = (http.clone(), format!("{base}/work"), token.clone());
        workers.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for _ in 0..20 {
                match http.get(&url).bearer_auth(&token).send().await {
                    Ok(r) => answers.push(Ok(r.status().as_u16())),
                    Err(e) => answers.push(Err(e.is_connect() || e.is_request())),
                }
            }
            answers
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let signalled = std::time::Instant::now();

    let all = tokio::time::timeout(
        Duration::from_secs(30),
        futures_util::future::join_all(workers),
    )
    .await
    .expect("clients finished");
    let mut ok = 0;
    for answers in all {
        for a in answers.expect("worker") {
            match a {
                Ok(200) => ok += 1,
                Ok(other) => panic!("an accepted request was answered {other}"),
                Err(refused) => {
                    assert!(refused, "a request failed other than by not being accepted")
                }
            }
        }
    }
    assert!(ok > 50, "only {ok} requests completed before the signal");
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "no exit within the grace period"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
    assert!(
        signalled.elapsed() < Duration::from_secs(6),
        "exit took {:?}",
        signalled.elapsed()
    );
}
