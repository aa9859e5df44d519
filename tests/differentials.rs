//! Parser differentials, tried as an attacker would: every request here is sent byte for byte
//! to the real server, and the echo upstream records the method, raw path and headers the app
//! received. Each case asserts what the app saw (or that it saw nothing), not only a status.
//!
//! Rules as in the issue that found these: `/public/*` is public, `/admin/*` with
//! `methods = ["GET", "DELETE"]` needs group `admins`; everything else needs a token.

mod common;

use std::io::Write as _;

use cognito_sidecar::config::{Access, Config, RouteRule};
use common::*;
use serde_json::{json, Value};

struct Env {
    sc: Sidecar,
    echo: Echo,
    _jwks: JwksServer,
}

async fn env_with(tweak: impl FnOnce(&mut Config)) -> Env {
    let jwks = JwksServer::start().await;
    let echo = Echo::start().await;
    let mut cfg = gate_config(&jwks.url, &echo.url(), &closed_url().await);
    cfg.routes = vec![
        RouteRule {
            path: "/public/*".into(),
            methods: vec![],
            access: Access::Public,
            groups: vec![],
            scopes: vec![],
            scopes_match: None,
            claims: Default::default(),
            pools: vec![],
        },
        RouteRule {
            path: "/admin/*".into(),
            methods: vec!["GET".into(), "DELETE".into()],
            access: Access::Authenticated,
            groups: vec!["admins".into()],
            scopes: vec![],
            scopes_match: None,
            claims: Default::default(),
            pools: vec![],
        },
    ];
    tweak(&mut cfg);
    Env {
        sc: Sidecar::start(cfg).await,
        echo,
        _jwks: jwks,
    }
}

async fn env() -> Env {
    env_with(|_| {}).await
}

fn token_in(sub: &str, groups: &[&str]) -> String {
    let mut claims = access_claims(sub);
    claims["cognito:groups"] = json!(groups);
    mint("key1", "k1", &claims)
}

/// Sends `head` byte for byte; returns the status and the JSON body of the answer.
async fn send(sc: &Sidecar, head: &str) -> (u16, Value) {
    let (status, body) = send_raw(sc.addr, head).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// A request head with `Host` and `Connection: close` added after `extra` header lines.
fn req(method: &str, target: &str, extra: &[&str]) -> String {
    let mut h = format!("{method} {target} HTTP/1.1\r\nHost: app.test\r\n");
    for line in extra {
        h.push_str(line);
        h.push_str("\r\n");
    }
    h.push_str("Connection: close\r\n\r\n");
    h
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

// === 1. Dot segments and encodings: protected → public ===

/// Each trick, without a token and with a staff token, is `400 invalid_path`, and the app has
/// seen nothing.
async fn refused_as_invalid_paths(e: &Env, tricks: &[&str], reached: &str) {
    let staff = bearer(&token_in("u-staff", &["staff"]));
    for trick in tricks {
        for auth in [None, Some(staff.as_str())] {
            let extra: Vec<&str> = auth.into_iter().collect();
            let (status, body) = send(&e.sc, &req("GET", trick, &extra)).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (400, Some("invalid_path")),
                "{trick} with {auth:?}"
            );
        }
    }
    assert_eq!(e.echo.count(), 0, "{reached}");
}

#[tokio::test]
async fn non_canonical_paths_are_refused_before_any_rule() {
    let e = env().await;
    let tricks = [
        "/app/../public/x",
        "/app/%2e%2e/public/x",
        "/app/..%2fpublic/x",
        "/app%2f..%2fpublic/x",
        "/app/..;/public/x",
        "/app\\..\\public/x",
        "/app/./../public/x",
        "/app/x/..%2F..%2Fpublic/x",
        "/admin/%2E%2E/public/x",
        // The same tricks from a group rule down to the default rule.
        "/admin/x/../../other",
        "/admin/%2e%2e/other",
        "//admin/x",
        "/admin;x=1/x",
        "/%61dmin/x",
        "/public/%252e%252e/admin/x",
        "/public/x%00",
    ];
    refused_as_invalid_paths(&e, &tricks, "a path trick reached the app").await;

    // A canonical path reaches the app byte for byte; the query passes unchanged.
    let (status, _) = send(
        &e.sc,
        &req("GET", "/public/a%20b?next=/../admin&x=%2e", &[]),
    )
    .await;
    assert_eq!(status, 200);
    let seen = e.echo.last();
    assert_eq!(seen.path, "/public/a%20b?next=/../admin&x=%2e");
    assert_eq!(seen.method, "GET");
}

// === 2. Smuggled protocol upgrades ===

#[tokio::test]
async fn only_websocket_upgrades_are_ever_forwarded() {
    let e = env().await;
    let token = bearer(&valid_token("u-h2c"));
    let cases: Vec<(&str, &str, Vec<&str>)> = vec![
        (
            "GET",
            "/public/x",
            vec![
                "Connection: Upgrade, HTTP2-Settings",
                "Upgrade: h2c",
                "HTTP2-Settings: AAMAAABkAAQAAP__",
            ],
        ),
        (
            "GET",
            "/public/x",
            vec!["Connection: Upgrade", "Upgrade: h2c"],
        ),
        (
            "GET",
            "/x",
            vec![
                token.as_str(),
                "Connection: Upgrade, HTTP2-Settings",
                "Upgrade: h2c",
                "HTTP2-Settings: AAMAAABkAAQAAP__",
            ],
        ),
        (
            "GET",
            "/public/x",
            vec!["Connection: Upgrade", "Upgrade: websocket, h2c"],
        ),
        (
            "POST",
            "/public/x",
            vec![
                "Connection: Upgrade",
                "Upgrade: websocket",
                "Content-Length: 0",
            ],
        ),
        (
            "GET",
            "/public/x",
            vec![
                "Connection: Upgrade",
                "Upgrade: websocket",
                "Content-Length: 2",
            ],
        ),
        ("GET", "/public/x", vec!["Upgrade: websocket"]),
    ];
    for (method, path, extra) in &cases {
        let mut head = req(method, path, extra);
        if extra.iter().any(|h| h.ends_with("Content-Length: 2")) {
            head.push_str("{}");
        }
        let before = e.echo.count();
        let (status, _) = send(&e.sc, &head).await;
        assert_eq!(status, 200, "{method} {path} {extra:?}");
        assert_eq!(e.echo.count(), before + 1);
        let seen = e.echo.last();
        for name in ["upgrade", "http2-settings"] {
            assert_eq!(seen.header(name), None, "{name} reached the app: {extra:?}");
        }
        assert!(
            !seen
                .header("connection")
                .is_some_and(|v| v.to_ascii_lowercase().contains("upgrade")),
            "Connection: upgrade reached the app: {extra:?}"
        );
    }
}

// === 3. Re-routing and re-method headers ===

#[tokio::test]
async fn rerouting_and_remethod_headers_never_reach_the_app() {
    let e = env().await;
    let spoofed = [
        "X-Original-URL: /admin/x",
        "X-Rewrite-URL: /admin/x",
        "X_Original_URL: /admin/x",
        "x.rewrite.url: /admin/x",
        "X-Original-Url: /admin/x",
        "X-Forwarded-Prefix: /admin",
        "X-Forwarded-Path: /admin/x",
        "X-Forwarded-Port: 443",
        "X-Forwarded-Server: admin.internal",
        "X_Forwarded_For: 10.0.0.1",
        "x.forwarded.for: 10.0.0.2",
        "X_Forwarded_Proto: https",
        "X_Forwarded_Host: admin.internal",
        "X-Real-IP: 10.0.0.3",
        "True-Client-IP: 10.0.0.4",
        "Client-IP: 10.0.0.5",
        "Forwarded: for=10.0.0.6;proto=https;host=admin.internal",
        "X-HTTP-Method-Override: DELETE",
        "X_HTTP_Method_Override: DELETE",
        "X-HTTP-Method: DELETE",
        "X-Method-Override: DELETE",
    ];
    let (status, _) = send(&e.sc, &req("GET", "/public/x", &spoofed)).await;
    assert_eq!(status, 200);
    let seen = e.echo.last();
    let folded = |n: &str| n.replace(['_', '.'], "-").to_ascii_lowercase();
    for line in spoofed {
        let name = folded(line.split(':').next().expect("name"));
        if ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"].contains(&name.as_str()) {
            continue; // written by the sidecar, checked below
        }
        assert!(
            !seen.headers.iter().any(|(k, _)| folded(k) == name),
            "{line} reached the app: {:?}",
            seen.headers
        );
    }
    // Every spelling of the forwarded family is gone; the sidecar's own values are there.
    for (name, want) in [
        ("x-forwarded-for", "127.0.0.1"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", "app.test"),
    ] {
        let all: Vec<&str> = seen
            .headers
            .iter()
            .filter(|(k, _)| folded(k) == name)
            .map(|(k, v)| {
                assert_eq!(k, name, "non-canonical spelling {k} reached the app");
                v.as_str()
            })
            .collect();
        assert_eq!(all, vec![want], "{name}");
    }

    // A method override on a rule that makes DELETE need `admins`: the POST is authorized as
    // a POST (the default rule) and the app receives a POST without the override.
    let staff = bearer(&token_in("u-staff", &["staff"]));
    let (status, _) = send(
        &e.sc,
        &req(
            "POST",
            "/admin/x",
            &[
                staff.as_str(),
                "X-HTTP-Method-Override: DELETE",
                "X-Method-Override: DELETE",
                "X_HTTP_Method: DELETE",
                "Content-Length: 0",
            ],
        ),
    )
    .await;
    assert_eq!(status, 200);
    let seen = e.echo.last();
    assert_eq!(seen.method, "POST");
    assert!(
        !seen
            .headers
            .iter()
            .any(|(k, _)| folded(k).contains("method")),
        "{:?}",
        seen.headers
    );
    let (status, body) = send(&e.sc, &req("DELETE", "/admin/x", &[staff.as_str()])).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("insufficient_scope"))
    );
}

// === 4. Method and case variants ===

#[tokio::test]
async fn method_and_case_variants_do_not_dodge_a_group_rule() {
    let e = env().await;
    let staff = bearer(&token_in("u-staff", &["staff"]));
    let cases = [
        ("HEAD", "/admin/x", 403, "insufficient_scope"),
        ("delete", "/admin/x", 400, "invalid_method"),
        ("Get", "/admin/x", 400, "invalid_method"),
        ("dElEtE", "/admin/x", 400, "invalid_method"),
        ("get", "/public/x", 400, "invalid_method"),
        ("GET", "/ADMIN/x", 403, "insufficient_scope"),
        ("GET", "/Admin/x", 403, "insufficient_scope"),
        ("DELETE", "/aDmIn", 403, "insufficient_scope"),
        ("GET", "/admin/", 403, "insufficient_scope"),
        ("GET", "/admin.json", 403, "insufficient_scope"),
        ("GET", "/admin%20/x", 403, "insufficient_scope"),
        ("GET", "/admin./x", 403, "insufficient_scope"),
    ];
    for (method, path, want, code) in cases {
        let (status, body) = send(&e.sc, &req(method, path, &[staff.as_str()])).await;
        // A HEAD answer has no body to carry the code.
        let code = (method != "HEAD").then_some(code);
        assert_eq!(
            (status, body["code"].as_str()),
            (want, code),
            "{method} {path}"
        );
    }
    assert_eq!(e.echo.count(), 0, "a variant reached the app");

    // An admin gets through, and the app receives the method and path as sent.
    let admin = bearer(&token_in("u-admin", &["admins"]));
    for (method, path) in [
        ("GET", "/ADMIN/x"),
        ("HEAD", "/admin/x"),
        ("DELETE", "/Admin/y"),
    ] {
        let (status, _) = send(&e.sc, &req(method, path, &[admin.as_str()])).await;
        assert_eq!(status, 200, "{method} {path}");
        let seen = e.echo.last();
        assert_eq!((seen.method.as_str(), seen.path.as_str()), (method, path));
        assert_eq!(seen.header("x-auth-groups"), Some("admins"));
    }
}

#[tokio::test]
async fn case_sensitive_matching_is_opt_in() {
    let e = env_with(|c| c.upstream.case_sensitive_paths = true).await;
    let staff = bearer(&token_in("u-staff", &["staff"]));
    let (status, _) = send(&e.sc, &req("GET", "/admin/x", &[staff.as_str()])).await;
    assert_eq!(status, 403);
    // Only an app that routes case-sensitively should run with this: /ADMIN is another path.
    let (status, _) = send(&e.sc, &req("GET", "/ADMIN/x", &[staff.as_str()])).await;
    assert_eq!(status, 200);
    assert_eq!(e.echo.last().path, "/ADMIN/x");
}

#[test]
fn rule_paths_are_validated_at_start_up() {
    for (path, problem) in [
        ("admin/*", "must start with /"),
        ("/admin/../x", "segments"),
        ("/a%2e/x", "letters, digits"),
        ("/a;b", "letters, digits"),
        ("/a\\\\b", "letters, digits"),
        ("/a/*/b", "letters, digits"),
        ("/a*", "letters, digits"),
        ("//a", "segments"),
    ] {
        let dir = std::env::temp_dir().join(format!("cs-rules-{}", uuid_like()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("proxy.toml");
        let mut f = std::fs::File::create(&file).expect("file");
        write!(
            f,
            "[cognito]\nuser_pool_id = \"us-east-1_x\"\nclient_id = \"c\"\n\n[[routes]]\npath = \"{path}\"\naccess = \"public\"\n"
        )
        .expect("write");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cognito-sidecar"))
            .args(["check-config", "--config"])
            .arg(&file)
            .env_clear()
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{path}: {stderr}");
        assert!(
            stderr.contains("routes[0].path") && stderr.contains(problem),
            "{path}: {stderr}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

// === 6. Authorization on public routes, forwarded headers, Host, request ids ===

#[tokio::test]
async fn public_routes_forward_only_a_verified_authorization() {
    let e = env().await;
    let forged = format!(
        "{}.{}.c2ln",
        b64(&json!({"alg": "none"})),
        b64(&json!({"sub": "admin", "cognito:groups": ["admins"]}))
    );
    for auth in [
        format!("Authorization: Bearer {forged}"),
        "Authorization: Basic YWRtaW46YWRtaW4=".to_string(),
        format!(
            "Authorization: Bearer {}",
            mint("other", "k1", &access_claims("u-x"))
        ),
    ] {
        let (status, _) = send(&e.sc, &req("GET", "/public/x", &[auth.as_str()])).await;
        assert_eq!(status, 200, "{auth}");
        let seen = e.echo.last();
        assert_eq!(seen.header("authorization"), None, "{auth}");
        assert!(
            !seen.headers.iter().any(|(k, _)| k.starts_with("x-auth-")),
            "{:?}",
            seen.headers
        );
    }
    // A token that verifies: optional auth, identity headers added and the token passed on.
    let good = valid_token("u-pub");
    let (status, _) = send(&e.sc, &req("GET", "/public/x", &[bearer(&good).as_str()])).await;
    assert_eq!(status, 200);
    let seen = e.echo.last();
    assert_eq!(seen.header("x-auth-sub"), Some("u-pub"));
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {good}").as_str())
    );

    let keep = env_with(|c| c.upstream.forward_unverified_authorization = true).await;
    let (status, _) = send(
        &keep.sc,
        &req(
            "GET",
            "/public/x",
            &["Authorization: Basic YWRtaW46YWRtaW4="],
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        keep.echo.last().header("authorization"),
        Some("Basic YWRtaW46YWRtaW4=")
    );
}

#[tokio::test]
async fn forwarded_headers_from_a_trusted_proxy_are_kept_only_where_it_sets_them() {
    let spoof = [
        "X-Forwarded-For: 198.51.100.7",
        "X-Forwarded-Proto: https",
        "X-Forwarded-Host: evil.example",
        "X-Forwarded-Port: 443",
    ];
    // Untrusted peer: the sidecar writes For/Proto/Host itself and drops Port.
    let e = env().await;
    send(&e.sc, &req("GET", "/public/x", &spoof)).await;
    let seen = e.echo.last();
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-host"), Some("app.test"));
    assert_eq!(seen.header("x-forwarded-port"), None);

    // Trusted (an ALB): its For and Proto are believed; it never sets Host, so the client's
    // X-Forwarded-Host is replaced by the request's Host.
    let e =
        env_with(|c| c.server.trusted_proxies = vec!["127.0.0.0/8".parse().expect("net")]).await;
    send(&e.sc, &req("GET", "/public/x", &spoof)).await;
    let seen = e.echo.last();
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("198.51.100.7, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("x-forwarded-host"), Some("app.test"));
    assert_eq!(seen.header("x-forwarded-port"), None);

    // A front proxy that does set them, listed as trusted for them.
    let e = env_with(|c| {
        c.server.trusted_proxies = vec!["127.0.0.0/8".parse().expect("net")];
        c.server.trusted_forwarded_headers = vec![
            "x-forwarded-for".into(),
            "x-forwarded-proto".into(),
            "x-forwarded-host".into(),
            "x-forwarded-port".into(),
        ];
    })
    .await;
    send(&e.sc, &req("GET", "/public/x", &spoof)).await;
    let seen = e.echo.last();
    assert_eq!(seen.header("x-forwarded-host"), Some("evil.example"));
    assert_eq!(seen.header("x-forwarded-port"), Some("443"));
}

#[tokio::test]
async fn host_and_request_id_are_the_ones_the_gate_saw() {
    let e = env().await;
    // Several Host headers: the app might pick another one than a front proxy did.
    let head =
        "GET /public/x HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n";
    let (status, body) = send(&e.sc, head).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_host")));
    assert_eq!(e.echo.count(), 0);

    // Absolute form: the request-target's authority wins over Host (RFC 9112 §3.2.2).
    let head = "GET http://real.test/public/x?q=1 HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n";
    let (status, _) = send(&e.sc, head).await;
    assert_eq!(status, 200);
    let seen = e.echo.last();
    assert_eq!(seen.path, "/public/x?q=1");
    assert_eq!(seen.header("host"), Some("real.test"));
    assert_eq!(seen.header("x-forwarded-host"), Some("real.test"));

    // X-Request-Id: kept when 1-128 visible ASCII characters, else replaced by a UUID.
    let (_, _) = send(&e.sc, &req("GET", "/public/x", &["X-Request-Id: abc-123"])).await;
    assert_eq!(e.echo.last().header("x-request-id"), Some("abc-123"));
    let long = format!("X-Request-Id: {}", "a".repeat(129));
    for bad in ["X-Request-Id: has spaces", long.as_str()] {
        send(&e.sc, &req("GET", "/public/x", &[bad])).await;
        let id = e
            .echo
            .last()
            .header("x-request-id")
            .expect("id")
            .to_string();
        assert_eq!(id.len(), 36, "{bad} -> {id}");
        assert_eq!(id.matches('-').count(), 4, "{bad} -> {id}");
    }
}

// === 7. Third round: fragments, framing aliases, compatibility characters, CONNECT ===

#[tokio::test]
async fn a_fragment_never_reaches_the_app() {
    // hyper drops everything from `#` in a request line, and so does the gate: the app gets
    // the path the rule was matched on, not the bytes after `#`.
    let e = env().await;
    let (status, _) = send(&e.sc, &req("GET", "/public/x#/../../admin/x", &[])).await;
    assert_eq!(status, 200);
    assert_eq!(e.echo.last().path, "/public/x");
    let (status, body) = send(&e.sc, &req("GET", "/admin/x#/../../public/x", &[])).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_missing"))
    );
    assert_eq!(e.echo.count(), 1);
}

#[tokio::test]
async fn framing_headers_spelled_otherwise_are_refused() {
    let e = env().await;
    let staff = bearer(&token_in("u-staff", &["staff"]));
    // The request: Content-Length frames it for hyper, `Transfer_Encoding` would for
    // a server that folds `_` to `-`, and the body holds a second request.
    let smuggled = "0\r\n\r\nGET /admin/x HTTP/1.1\r\nHost: app.test\r\n\r\n";
    let cases = [
        format!(
            "Transfer_Encoding: chunked\r\nContent-Length: {}",
            smuggled.len()
        ),
        format!(
            "transfer.encoding: chunked\r\nContent-Length: {}",
            smuggled.len()
        ),
        format!(
            "TRANSFER_ENCODING: chunked\r\nContent-Length: {}",
            smuggled.len()
        ),
        format!("Content_Length: 5\r\nContent-Length: {}", smuggled.len()),
        format!("content.length: 0\r\nContent-Length: {}", smuggled.len()),
    ];
    for extra in &cases {
        for auth in [None, Some(staff.as_str())] {
            let mut lines = vec![extra.as_str()];
            lines.extend(auth);
            let mut head = req("POST", "/public/upload", &lines);
            head.push_str(smuggled);
            let (status, body) = send(&e.sc, &head).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (400, Some("invalid_header")),
                "{extra:?} with {auth:?}"
            );
        }
    }
    // The sidecar's own endpoints refuse them too.
    let mut head = req(
        "POST",
        "/api/user/login",
        &["Transfer_Encoding: chunked", "Content-Length: 2"],
    );
    head.push_str("{}");
    let (status, body) = send(&e.sc, &head).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_header"))
    );
    assert_eq!(
        e.echo.count(),
        0,
        "an aliased framing header reached the app"
    );

    // The real names, and names that only contain them, are fine.
    let mut head = req(
        "POST",
        "/public/upload",
        &[
            "Content-Length: 5",
            "X-Content_Length: 9",
            "Content_Length_Hint: 9",
        ],
    );
    head.push_str("hello");
    let (status, _) = send(&e.sc, &head).await;
    assert_eq!(status, 200);
    let seen = e.echo.last();
    assert_eq!((seen.path.as_str(), seen.body_len), ("/public/upload", 5));
    assert_eq!(seen.header("x-content_length"), Some("9"));
}

#[tokio::test]
async fn compatibility_characters_do_not_spell_dot_segments() {
    let e = env().await;
    let tricks = [
        // FULLWIDTH FULL STOP x2, percent-encoded (the request) and raw.
        "/x/%ef%bc%8e%ef%bc%8e/admin/y",
        "/x/\u{ff0e}\u{ff0e}/admin/y",
        "/public/%ef%bc%8e%ef%bc%8e/admin/y",
        // ONE DOT LEADER x2, TWO DOT LEADER, SMALL FULL STOP x2.
        "/x/%e2%80%a4%e2%80%a4/admin/y",
        "/x/%e2%80%a5/admin/y",
        "/x/%ef%b9%92%ef%b9%92/admin/y",
        // FULLWIDTH SOLIDUS and REVERSE SOLIDUS, DIVISION SLASH (best-fit).
        "/public/x%ef%bc%8f..%ef%bc%8fadmin",
        "/public/x%ef%bc%bc..%ef%bc%bcadmin",
        "/public/x%e2%88%95..%e2%88%95admin",
        // FULLWIDTH SEMICOLON and PERCENT SIGN.
        "/admin%ef%bc%9bx=1/y",
        "/public/%ef%bc%852e%ef%bc%852e/admin",
    ];
    refused_as_invalid_paths(&e, &tricks, "a compatibility form reached the app").await;
    // Other non-ASCII paths pass as they came.
    let (status, _) = send(
        &e.sc,
        &req("GET", "/public/%E6%97%A5%E6%9C%AC/caf%C3%A9", &[]),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(e.echo.last().path, "/public/%E6%97%A5%E6%9C%AC/caf%C3%A9");
}

#[tokio::test]
async fn connect_never_reaches_the_app() {
    let e = env().await;
    let staff = bearer(&token_in("u-staff", &["staff"]));
    for target in ["/public/x", "/admin/x", "/orders"] {
        for auth in [None, Some(staff.as_str())] {
            let extra: Vec<&str> = auth.into_iter().collect();
            let head = req("CONNECT", target, &extra);
            let (status, head_text, body) = send_full(&e.sc, &head).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (405, Some("method_not_allowed")),
                "CONNECT {target} with {auth:?}"
            );
            assert!(
                head_text
                    .to_ascii_lowercase()
                    .contains("\r\nallow: get, head, post, put, patch, delete, options\r\n"),
                "{head_text}"
            );
        }
    }
    // The authority form is no path at all.
    let (status, _) = send(&e.sc, &req("CONNECT", "app.test:443", &[&staff])).await;
    assert!(matches!(status, 400 | 405), "{status}");
    assert_eq!(e.echo.count(), 0, "CONNECT reached the app");
}

/// Like `send`, with the raw head of the answer.
async fn send_full(sc: &Sidecar, head: &str) -> (u16, String, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(sc.addr)
        .await
        .expect("connect");
    s.write_all(head.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (h, b) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let status = h
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (
        status,
        h.to_string(),
        serde_json::from_str(b).unwrap_or(Value::Null),
    )
}
