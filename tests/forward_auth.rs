//! Forward-auth: the gate's decision for a front proxy already in the data path.
//!
//! A real nginx (`/usr/sbin/nginx`, installed by deploy/system-packages.sh) runs
//! deploy/forward-auth/nginx.conf, as shipped, with `auth_request` in front of an echo app and
//! the sidecar (in-process, its check on a listener of its own) as the authorizer; every
//! request is sent byte for byte and the test asserts what the app received. The Traefik and
//! Envoy conventions are tested at the HTTP level against the check itself.
//!
//! Rules: `/public/*` public, `/admin/*` with `methods = ["GET", "DELETE"]` needs group
//! `admins`; everything else needs a token.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use cognito_sidecar::config::{Access, Config, Convention, RouteRule};
use cognito_sidecar::server;
use common::*;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

fn rules() -> Vec<RouteRule> {
    vec![
        RouteRule {
            path: "/public/*".into(),
            methods: vec![],
            access: Access::Public,
            groups: vec![],
        },
        RouteRule {
            path: "/admin/*".into(),
            methods: vec!["GET".into(), "DELETE".into()],
            access: Access::Authenticated,
            groups: vec!["admins".into()],
        },
    ]
}

fn token_in(sub: &str, groups: &[&str]) -> String {
    let mut claims = access_claims(sub);
    claims["cognito:groups"] = json!(groups);
    mint("key1", "k1", &claims)
}

struct Env {
    sc: Sidecar,
    echo: Echo,
    /// The check's own listener, when `forward_auth.listen` is set.
    check: Option<SocketAddr>,
    _check_stop: Option<oneshot::Sender<()>>,
    _jwks: JwksServer,
}

/// The sidecar with forward-auth on (`convention`), trusting loopback as its front proxy;
/// `own_listener` puts the check on a listener of its own.
async fn env_with(
    convention: Convention,
    own_listener: bool,
    tweak: impl FnOnce(&mut Config),
) -> Env {
    let jwks = JwksServer::start().await;
    let echo = Echo::start().await;
    let mut cfg = gate_config(&jwks.url, &echo.url(), &closed_url().await);
    // The shipped nginx.conf copies the default identity map only.
    cfg.identity.headers.retain(|h| h.name != "X-Auth-Name");
    cfg.routes = rules();
    cfg.server.trusted_proxies = vec!["127.0.0.1/32".parse().expect("net")];
    cfg.forward_auth.enabled = true;
    cfg.forward_auth.convention = convention;
    cfg.session.enabled = true;
    let check_listener = if own_listener {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        cfg.forward_auth.listen = Some(l.local_addr().expect("addr"));
        Some(l)
    } else {
        None
    };
    tweak(&mut cfg);
    let server_cfg = cfg.server.clone();
    let sc = Sidecar::start(cfg).await;
    let (check, stop) = match check_listener {
        Some(l) => {
            let addr = l.local_addr().expect("addr");
            let (tx, rx) = oneshot::channel::<()>();
            let checker = sc.app.check_listener();
            tokio::spawn(async move {
                server::serve(l, checker, &server_cfg, async {
                    let _ = rx.await;
                })
                .await;
            });
            (Some(addr), Some(tx))
        }
        None => (None, None),
    };
    Env {
        sc,
        echo,
        check,
        _check_stop: stop,
        _jwks: jwks,
    }
}

/// One answer, read whole: status, headers (lower-case names) and body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn code(&self) -> Option<String> {
        self.json()["code"].as_str().map(str::to_owned)
    }
}

/// Sends `head` byte for byte (it must ask for `Connection: close`).
async fn send(addr: SocketAddr, head: &str) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(head.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// A request head with `Host: app.test` and `Connection: close` around `extra` lines.
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

const NAVIGATE: [&str; 2] = ["Sec-Fetch-Mode: navigate", "Accept: text/html"];

// === nginx, for real ===

/// nginx running deploy/forward-auth/nginx.conf with its addresses replaced; stopped on drop
/// (SIGTERM to the master, which stops its workers; SIGKILL would orphan them).
struct Nginx {
    addr: SocketAddr,
    child: std::process::Child,
    _dir: Scratch,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scratch directory, removed on drop (after nginx, which is dropped first).
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Nginx {
    async fn start(e: &Env) -> Nginx {
        let bin = "/usr/sbin/nginx";
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: run `bash deploy/system-packages.sh` (installs Debian's nginx)"
        );
        let shipped = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/forward-auth/nginx.conf"
        ))
        .expect("the shipped nginx.conf");
        let port = free_port();
        let check = e.check.expect("the check has its own listener");
        let conf = shipped
            .replace("127.0.0.1:8080;", &format!("127.0.0.1:{port};"))
            .replace("127.0.0.1:3000;", &format!("{};", e.echo.addr))
            .replace("127.0.0.1:8081;", &format!("{};", e.sc.addr))
            .replace("127.0.0.1:9090;", &format!("{check};"));
        for original in ["8080;", "3000;", "8081;", "9090;"] {
            assert!(
                !conf.contains(&format!("127.0.0.1:{original}")),
                "an address of the shipped config was not replaced: {original}"
            );
        }
        let dir = Scratch(std::env::temp_dir().join(format!("cs-nginx-{}", uuid_like())));
        std::fs::create_dir_all(&dir.0).expect("scratch dir");
        // Workers may run as another user (nginx started as root): let them in.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
        }
        std::fs::create_dir_all(dir.0.join("tmp")).expect("tmp");
        let conf_path = dir.0.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write conf");
        let prefix = format!("{}/", dir.0.display());
        let test = std::process::Command::new(bin)
            .args(["-t", "-q", "-e", "stderr", "-p", &prefix, "-c"])
            .arg(&conf_path)
            .output()
            .expect("nginx -t");
        assert!(
            test.status.success(),
            "nginx -t refused the shipped config: {}",
            String::from_utf8_lossy(&test.stderr)
        );
        let child = std::process::Command::new(bin)
            .args(["-e", "stderr", "-p", &prefix, "-c"])
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.0.join("error.log")).expect("log"))
            .spawn()
            .expect("nginx starts");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        // Stopped on drop from here on, whatever fails next.
        let nginx = Nginx {
            addr,
            child,
            _dir: dir,
        };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return nginx;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "nginx does not listen on {addr}: {}",
            std::fs::read_to_string(nginx._dir.0.join("error.log")).unwrap_or_default()
        );
    }
}

#[tokio::test]
async fn nginx_auth_request_in_front_of_the_app() {
    let e = env_with(Convention::Nginx, true, |_| {}).await;
    let nginx = Nginx::start(&e).await;
    let staff = bearer(&token_in("u-staff", &["staff"]));
    let admin = bearer(&token_in("u-admin", &["admins"]));

    // A valid token: the app sees the identity nginx copied from the check's answer, and a
    // client-sent X-Auth-Sub in any spelling never reaches it.
    let a = send(
        nginx.addr,
        &req(
            "GET",
            "/orders/7?x=1",
            &[
                &staff,
                "X-Auth-Sub: forged",
                "X-Auth-Groups: admins",
                "X_Auth_Sub: forged",
            ],
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let seen = e.echo.last();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("GET", "/orders/7?x=1")
    );
    assert_eq!(seen.header("x-auth-sub"), Some("u-staff"));
    assert_eq!(seen.header("x-auth-username"), Some("user-u-staff"));
    assert_eq!(seen.header("x-auth-groups"), Some("staff"));
    assert_eq!(seen.header("x-auth-client-id"), Some(CLIENT_ID));
    assert!(
        !seen
            .headers
            .iter()
            .any(|(k, v)| v == "forged" || k.contains('_')),
        "a forged identity header reached the app: {:?}",
        seen.headers
    );

    // A public route without a token: no identity at all, forged or not.
    let a = send(
        nginx.addr,
        &req("GET", "/public/x", &["X-Auth-Sub: forged"]),
    )
    .await;
    assert_eq!(a.status, 200);
    let seen = e.echo.last();
    assert_eq!(seen.path, "/public/x");
    assert_eq!(seen.header("x-auth-sub"), None, "{:?}", seen.headers);

    let before = e.echo.count();
    // No token: 401 with the challenge and the code, JSON.
    let a = send(nginx.addr, &req("GET", "/orders/7", &[])).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(a.code().as_deref(), Some("token_missing"), "{}", a.body);
    assert_eq!(a.header("www-authenticate"), Some("Bearer"));
    // A broken token: 401 with its code.
    let a = send(
        nginx.addr,
        &req("GET", "/orders/7", &["Authorization: Bearer a.b.c"]),
    )
    .await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (401, Some("token_malformed"))
    );
    // The wrong group: 403.
    let a = send(nginx.addr, &req("GET", "/admin/x", &[&staff])).await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (403, Some("insufficient_scope"))
    );
    assert_eq!(e.echo.count(), before, "a refused request reached the app");

    // Part 6 through nginx: nginx routes by its normalized $uri, the check judges the raw
    // $request_uri; a trick either never leaves nginx (its own 400) or is refused (403).
    let tricks = [
        "/admin/%2e%2e/public/x",
        "/public/%2e%2e/admin/x",
        "/public/..%2fadmin/x",
        "/public/x/../../admin/x",
        "/app/..;/public/x",
        "/app/%2e%2e/public/x",
        "//admin/x",
        "/public//../admin/x",
        "/%61dmin/x",
        "/public/%252e%252e/admin/x",
        "/public/x%00",
        "/public\\..\\admin/x",
    ];
    for trick in tricks {
        for auth in [None, Some(staff.as_str())] {
            let extra: Vec<&str> = auth.into_iter().collect();
            let a = send(nginx.addr, &req("GET", trick, &extra)).await;
            let refused_by_check = a.status == 403 && a.code().as_deref() == Some("invalid_path");
            assert!(
                refused_by_check || a.status == 400,
                "{trick} with {auth:?}: {} {}",
                a.status,
                a.body
            );
        }
    }
    // Method and case variants of the group rule.
    for (method, path) in [
        ("HEAD", "/admin/x"),
        ("DELETE", "/Admin/x"),
        ("GET", "/ADMIN/x"),
        ("GET", "/admin.json"),
        ("GET", "/admin/"),
    ] {
        let a = send(nginx.addr, &req(method, path, &[&staff])).await;
        assert_eq!(a.status, 403, "{method} {path}: {}", a.body);
    }
    // A lower-case method never reaches the check (nginx refuses it itself).
    let a = send(nginx.addr, &req("delete", "/admin/x", &[&staff])).await;
    assert_eq!(a.status, 400);
    assert_eq!(e.echo.count(), before, "a trick reached the app");

    // The admin passes, with the method and path as sent.
    for (method, path) in [("DELETE", "/Admin/y"), ("GET", "/admin/x?z=%2e")] {
        let a = send(nginx.addr, &req(method, path, &[&admin])).await;
        assert_eq!(a.status, 200, "{method} {path}");
        let seen = e.echo.last();
        assert_eq!((seen.method.as_str(), seen.path.as_str()), (method, path));
        assert_eq!(seen.header("x-auth-groups"), Some("admins"));
    }

    // A browser navigation without a session goes to the sidecar's sign-in page, which is
    // served through nginx.
    let before = e.echo.count();
    let a = send(nginx.addr, &req("GET", "/orders/7?tab=2", &NAVIGATE)).await;
    assert_eq!(a.status, 302, "{}", a.body);
    let location = a.header("location").expect("Location").to_string();
    assert_eq!(location, "/_auth/sign-in?return=%2Forders%2F7%3Ftab%3D2");
    let page = send(nginx.addr, &req("GET", &location, &NAVIGATE)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<form"), "{}", page.body);
    assert!(
        a.header("set-cookie").is_none(),
        "the redirect sets no cookie"
    );
    // An XHR without a session still gets the JSON 401.
    let a = send(
        nginx.addr,
        &req("GET", "/orders/7", &["Accept: application/json"]),
    )
    .await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (401, Some("token_missing"))
    );
    assert_eq!(e.echo.count(), before);

    // The sidecar's cookies never reach the app; the others do.
    let a = send(
        nginx.addr,
        &req(
            "GET",
            "/public/c",
            &["Cookie: a=1; __Host-sidecar-session=AAAA; __Host-sidecar-csrf=BBBB; b=2"],
        ),
    )
    .await;
    assert_eq!(a.status, 200);
    let cookie = e
        .echo
        .last()
        .header("cookie")
        .unwrap_or_default()
        .to_string();
    assert!(
        cookie.contains("a=1") && cookie.contains("b=2"),
        "{cookie:?}"
    );
    assert!(!cookie.contains("sidecar"), "{cookie:?}");

    // The check is not reachable from outside nginx (`internal`), nor on the sidecar's main
    // listener (it has its own): there it is an ordinary gated path.
    let a = send(
        nginx.addr,
        &req(
            "GET",
            "/_auth/check",
            &[&admin, "X-Original-URI: /admin/x", "X-Original-Method: GET"],
        ),
    )
    .await;
    assert_eq!(a.status, 404);
    let a = send(
        e.sc.addr,
        &req(
            "GET",
            "/_auth/check",
            &["X-Original-URI: /public/x", "X-Original-Method: GET"],
        ),
    )
    .await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (401, Some("token_missing"))
    );
}

// === The check over HTTP: nginx convention ===

#[tokio::test]
async fn nginx_convention_answers_only_401_and_403_for_refusals() {
    let e = env_with(Convention::Nginx, false, |_| {}).await;
    let admin = bearer(&token_in("u-admin", &["admins"]));
    let check = |uri: &str, method: &str, auth: Option<&str>| {
        let mut extra = vec![
            format!("X-Original-URI: {uri}"),
            format!("X-Original-Method: {method}"),
        ];
        extra.extend(auth.map(str::to_owned));
        extra
    };
    let ask = |extra: Vec<String>| {
        let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
        req("GET", "/_auth/check", &refs)
    };
    // Allowed: 200, every identity header of the map, no body, nothing proxied.
    let a = send(e.sc.addr, &ask(check("/admin/x", "GET", Some(&admin)))).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-auth-sub"), Some("u-admin"));
    assert_eq!(a.header("x-auth-groups"), Some("admins"));
    assert_eq!(
        a.header("x-auth-email"),
        Some(""),
        "absent claims are empty headers"
    );
    assert_eq!(a.header("x-sidecar-code"), Some("ok"));
    assert_eq!(a.body, "");
    // Refused paths and methods: 403 with the gate's code (nginx makes a 400 a 500).
    for (uri, method, code) in [
        ("/app/../public/x", "GET", "invalid_path"),
        ("/public/%2e%2e/admin/x", "GET", "invalid_path"),
        ("http://other/public/x", "GET", "invalid_path"),
        ("/admin/x", "get", "invalid_method"),
        ("/admin/x", "Delete", "invalid_method"),
    ] {
        let a = send(e.sc.addr, &ask(check(uri, method, Some(&admin)))).await;
        assert_eq!(
            (a.status, a.code().as_deref()),
            (403, Some(code)),
            "{method} {uri}"
        );
        assert_eq!(a.header("x-sidecar-code"), Some(code));
    }
    // HEAD is GET for the rules; case-insensitive matching.
    let staff = bearer(&token_in("u-staff", &["staff"]));
    for (uri, method) in [
        ("/admin/x", "HEAD"),
        ("/ADMIN/x", "GET"),
        ("/admin.json", "GET"),
    ] {
        let a = send(e.sc.addr, &ask(check(uri, method, Some(&staff)))).await;
        assert_eq!(
            (a.status, a.code().as_deref()),
            (403, Some("insufficient_scope")),
            "{method} {uri}"
        );
    }
    // A navigation without a session: 401 with the sign-in Location nginx can use.
    let mut nav = check("/orders?x=1", "GET", None);
    nav.extend(NAVIGATE.iter().map(|s| (*s).to_string()));
    let a = send(e.sc.addr, &ask(nav)).await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (401, Some("sign_in_required"))
    );
    assert_eq!(
        a.header("location"),
        Some("/_auth/sign-in?return=%2Forders%3Fx%3D1")
    );
    assert_eq!(a.header("www-authenticate"), Some("Bearer"));
    // A front proxy that did not pass the original request: 400, never a guess.
    for extra in [
        vec!["X-Original-Method: GET".to_string()],
        vec!["X-Original-URI: /public/x".to_string()],
        vec![],
    ] {
        let a = send(e.sc.addr, &ask(extra.clone())).await;
        assert_eq!(
            (a.status, a.code().as_deref()),
            (400, Some("original_request_invalid")),
            "{extra:?}"
        );
    }
    assert_eq!(e.echo.count(), 0, "the check proxied something");

    // Two checks with one token cost one verification: the second is a cache hit.
    let fresh = bearer(&token_in("u-cache", &["admins"]));
    let metric = |name: &str| {
        let text = e.sc.app.render_metrics();
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let hits = metric("sidecar_token_cache_total{outcome=\"hit\"}");
    let misses = metric("sidecar_token_cache_total{outcome=\"miss\"}");
    for _ in 0..2 {
        let a = send(e.sc.addr, &ask(check("/admin/x", "GET", Some(&fresh)))).await;
        assert_eq!(a.status, 200);
    }
    assert_eq!(
        metric("sidecar_token_cache_total{outcome=\"miss\"}") - misses,
        1.0
    );
    assert_eq!(
        metric("sidecar_token_cache_total{outcome=\"hit\"}") - hits,
        1.0
    );
    assert!(metric("sidecar_forward_auth_checks_total{outcome=\"allowed\"}") >= 3.0);
}

// === Traefik ===

fn traefik(method: &str, uri: &str, host: &str, extra: &[&str]) -> String {
    let mut lines = vec![
        format!("X-Forwarded-Method: {method}"),
        "X-Forwarded-Proto: https".to_string(),
        format!("X-Forwarded-Host: {host}"),
        format!("X-Forwarded-Uri: {uri}"),
        "X-Forwarded-For: 203.0.113.9".to_string(),
    ];
    lines.extend(extra.iter().map(|s| (*s).to_string()));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    // Traefik sends GET to its `address` (here http://sidecar/_auth/check).
    format!(
        "GET /_auth/check HTTP/1.1\r\nHost: sidecar.internal:8080\r\n{}\r\nConnection: close\r\n\r\n",
        refs.join("\r\n")
    )
}

#[tokio::test]
async fn traefik_forward_auth_convention() {
    let e = env_with(Convention::Traefik, false, |_| {}).await;
    let admin = bearer(&token_in("u-admin", &["admins"]));
    let staff = bearer(&token_in("u-staff", &["staff"]));

    let a = send(
        e.sc.addr,
        &traefik("DELETE", "/admin/x?y=1", "app.test", &[&admin]),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-auth-sub"), Some("u-admin"));
    // POST is not in the admin rule's methods: the default rule, any valid token.
    let a = send(
        e.sc.addr,
        &traefik("POST", "/admin/x", "app.test", &[&staff]),
    )
    .await;
    assert_eq!(a.status, 200);
    let a = send(
        e.sc.addr,
        &traefik("GET", "/admin/x", "app.test", &[&staff]),
    )
    .await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (403, Some("insufficient_scope"))
    );
    let a = send(e.sc.addr, &traefik("GET", "/orders", "app.test", &[])).await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (401, Some("token_missing"))
    );
    assert_eq!(a.header("www-authenticate"), Some("Bearer"));
    // Traefik relays the answer itself: the gate's own statuses, a 302 for a navigation.
    let a = send(
        e.sc.addr,
        &traefik("GET", "/public/%2e%2e/admin/x", "app.test", &[&admin]),
    )
    .await;
    assert_eq!((a.status, a.code().as_deref()), (400, Some("invalid_path")));
    let a = send(
        e.sc.addr,
        &traefik("get", "/admin/x", "app.test", &[&admin]),
    )
    .await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (400, Some("invalid_method"))
    );
    let a = send(e.sc.addr, &traefik("GET", "/orders", "app.test", &NAVIGATE)).await;
    assert_eq!(
        (a.status, a.header("location")),
        (302, Some("/_auth/sign-in?return=%2Forders"))
    );
    let a = send(e.sc.addr, &traefik("GET", "/x", "bad host", &[&admin])).await;
    assert_eq!((a.status, a.code().as_deref()), (400, Some("invalid_host")));
    // Traefik's headers are required; nginx's are not Traefik's.
    let a = send(
        e.sc.addr,
        &req(
            "GET",
            "/_auth/check",
            &["X-Original-URI: /public/x", "X-Original-Method: GET"],
        ),
    )
    .await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (400, Some("original_request_invalid"))
    );
    assert_eq!(e.echo.count(), 0, "the check proxied something");
}

#[tokio::test]
async fn the_check_clears_a_cookie_for_no_session() {
    // A session cookie for no session: 401 like any request without credentials, and the
    // answer clears the cookie (Traefik and Envoy relay it to the browser).
    let e = env_with(Convention::Traefik, false, |_| {}).await;
    let cookie = format!("Cookie: __Host-sidecar-session={}", "A".repeat(43));
    let a = send(
        e.sc.addr,
        &traefik("POST", "/orders", "app.test", &[&cookie]),
    )
    .await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (401, Some("token_missing"))
    );
    assert!(
        a.header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0")),
        "{:?}",
        a.headers
    );
}

// === Envoy ===

#[tokio::test]
async fn envoy_ext_authz_convention() {
    let e = env_with(Convention::Envoy, false, |_| {}).await;
    let admin = bearer(&token_in("u-admin", &["admins"]));
    let staff = bearer(&token_in("u-staff", &["staff"]));
    // Envoy sends the original method, the check path followed by the original path and
    // query, and the original Host.
    let a = send(
        e.sc.addr,
        &req("DELETE", "/_auth/check/admin/x?y=1", &[&admin]),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-auth-sub"), Some("u-admin"));
    let a = send(e.sc.addr, &req("HEAD", "/_auth/check/admin/x", &[&staff])).await;
    assert_eq!(a.status, 403);
    let a = send(e.sc.addr, &req("GET", "/_auth/check/Admin/x", &[&staff])).await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (403, Some("insufficient_scope"))
    );
    let a = send(
        e.sc.addr,
        &req("GET", "/_auth/check/public/x", &["X-Auth-Sub: forged"]),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("x-auth-sub"),
        Some(""),
        "a public answer clears the identity"
    );
    let a = send(e.sc.addr, &req("GET", "/_auth/check/", &[])).await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (401, Some("token_missing"))
    );
    for trick in [
        "/_auth/check/public/../admin/x",
        "/_auth/check/public/%2e%2e/admin/x",
        "/_auth/check//admin/x",
        "/_auth/check/app/..;/public/x",
        "/_auth/check",
    ] {
        let a = send(e.sc.addr, &req("GET", trick, &[&admin])).await;
        assert_eq!(
            (a.status, a.code().as_deref()),
            (400, Some("invalid_path")),
            "{trick}"
        );
    }
    let a = send(e.sc.addr, &req("delete", "/_auth/check/admin/x", &[&admin])).await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (400, Some("invalid_method"))
    );
    // /_auth/checkout is not the check: an ordinary gated path, proxied with a token.
    let a = send(e.sc.addr, &req("GET", "/_auth/checkout", &[&admin])).await;
    assert_eq!(a.status, 200);
    assert_eq!(e.echo.last().path, "/_auth/checkout");
    assert_eq!(e.echo.count(), 1, "the check proxied something");
}

// === Trust, listeners, configuration ===

#[tokio::test]
async fn forwarded_request_headers_from_an_untrusted_peer_are_refused() {
    for convention in [Convention::Nginx, Convention::Traefik, Convention::Envoy] {
        let e = env_with(convention, false, |c| {
            c.server.trusted_proxies = vec!["10.0.0.0/8".parse().expect("net")];
        })
        .await;
        let admin = bearer(&token_in("u-admin", &["admins"]));
        let head = match convention {
            Convention::Nginx => req(
                "GET",
                "/_auth/check",
                &[&admin, "X-Original-URI: /admin/x", "X-Original-Method: GET"],
            ),
            Convention::Traefik => traefik("GET", "/admin/x", "app.test", &[&admin]),
            Convention::Envoy => req("GET", "/_auth/check/admin/x", &[&admin]),
        };
        let a = send(e.sc.addr, &head).await;
        assert_eq!(
            (a.status, a.code().as_deref()),
            (400, Some("untrusted_proxy")),
            "{convention:?}"
        );
        assert_eq!(a.header("x-auth-sub"), None);
        assert_eq!(e.echo.count(), 0);
    }
}

#[tokio::test]
async fn the_check_listener_serves_the_check_and_nothing_else() {
    let e = env_with(Convention::Envoy, true, |_| {}).await;
    let check = e.check.expect("own listener");
    let admin = bearer(&token_in("u-admin", &["admins"]));
    let a = send(check, &req("GET", "/_auth/check/admin/x", &[&admin])).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-auth-sub"), Some("u-admin"));
    for path in ["/admin/x", "/healthz", "/api/user/login", "/_auth/sign-in"] {
        let a = send(check, &req("GET", path, &[&admin])).await;
        assert_eq!(
            (a.status, a.code().as_deref()),
            (404, Some("not_found")),
            "{path}"
        );
    }
    // On the main listener the check path is an ordinary gated path.
    let a = send(e.sc.addr, &req("GET", "/_auth/check/admin/x", &[&admin])).await;
    assert_eq!(a.status, 200);
    assert_eq!(e.echo.last().path, "/_auth/check/admin/x");
    assert_eq!(e.echo.count(), 1);
}

#[test]
fn forward_auth_settings_are_validated_at_start_up() {
    let base = || {
        let mut c = Config::default();
        c.cognito.user_pool_id = Some("us-east-1_TestPool".into());
        c.cognito.client_id = Some(CLIENT_ID.into());
        c.forward_auth.enabled = true;
        c.server.trusted_proxies = vec!["127.0.0.1/32".parse().expect("net")];
        c
    };
    assert!(base().validate().is_ok());
    type Tweak = fn(&mut Config);
    let cases: Vec<(Tweak, &str)> = vec![
        (
            |c| c.server.trusted_proxies.clear(),
            "server.trusted_proxies",
        ),
        (
            |c| c.forward_auth.path = "_auth/check".into(),
            "forward_auth.path",
        ),
        (
            |c| c.forward_auth.path = "/_auth/check/".into(),
            "forward_auth.path",
        ),
        (
            |c| c.forward_auth.path = "/_auth/../check".into(),
            "forward_auth.path",
        ),
        (
            |c| c.forward_auth.path = "/_auth/ch%65ck".into(),
            "forward_auth.path",
        ),
        (
            |c| c.forward_auth.path = "/check/*".into(),
            "forward_auth.path",
        ),
        (|c| c.forward_auth.path = "/".into(), "forward_auth.path"),
        (
            |c| c.forward_auth.path = "/api/user/check".into(),
            "forward_auth.path",
        ),
        (
            |c| c.forward_auth.path = "/healthz".into(),
            "forward_auth.path",
        ),
        (
            |c| {
                c.session.enabled = true;
                c.forward_auth.path = "/_auth/sign-in".into();
            },
            "forward_auth.path",
        ),
        (
            |c| c.forward_auth.listen = Some("127.0.0.1:9901".parse().expect("addr")),
            "forward_auth.listen",
        ),
        (
            |c| c.forward_auth.listen = Some(c.server.listen),
            "forward_auth.listen",
        ),
    ];
    for (tweak, key) in cases {
        let mut c = base();
        tweak(&mut c);
        let err = c.validate().expect_err(key);
        assert_eq!(err.key, key, "{err}");
    }
    // Off, nothing is checked.
    let mut c = base();
    c.forward_auth.enabled = false;
    c.server.trusted_proxies.clear();
    assert!(c.validate().is_ok());
}

#[test]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
fn an_unknown_convention_is_a_configuration_error() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "proxy.toml",
            "[cognito]\nuser_pool_id = \"us-east-1_X\"\nclient_id = \"c\"\n\
             [forward_auth]\nenabled = true\nconvention = \"haproxy\"\n",
        )?;
        let err = Config::load(std::path::Path::new("proxy.toml")).expect_err("unknown convention");
        assert!(err.key.starts_with("forward_auth"), "{err}");
        jail.set_env("SIDECAR_FORWARD_AUTH__CONVENTION", "traefik");
        jail.create_file(
            "proxy.toml",
            "[cognito]\nuser_pool_id = \"us-east-1_X\"\nclient_id = \"c\"\n",
        )?;
        let c = Config::load(std::path::Path::new("proxy.toml")).expect("loads");
        assert_eq!(c.forward_auth.convention, Convention::Traefik);
        Ok(())
    });
}

// === The shipped Traefik and Envoy configs say what the sidecar expects ===

fn shipped(name: &str) -> serde_json::Value {
    let path = format!("{}/deploy/forward-auth/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("shipped config");
    serde_norway::from_str(&text).expect("YAML")
}

#[test]
fn shipped_traefik_config_judges_what_traefik_routes() {
    let t = shipped("traefik.yml");
    let fa = &t["http"]["middlewares"]["cognito-sidecar"]["forwardAuth"];
    assert_eq!(fa["address"], json!("http://127.0.0.1:9090/_auth/check"));
    assert_eq!(fa["trustForwardHeader"], json!(false));
    // Go's regexp and Rust's regex agree on this syntax: every spelling of the identity
    // namespace, nothing else.
    let re = regex::Regex::new(fa["authResponseHeadersRegex"].as_str().expect("regex"))
        .expect("valid regex");
    for name in ["X-Auth-Sub", "X_Auth_Sub", "x.auth.groups", "X-AUTH-EMAIL"] {
        assert!(re.is_match(name), "{name}");
    }
    for name in ["Authorization", "X-Authority", "X-Request-Id"] {
        assert!(!re.is_match(name), "{name}");
    }
    assert_eq!(
        t["http"]["routers"]["app"]["middlewares"],
        json!(["cognito-sidecar"])
    );
}

#[test]
fn shipped_envoy_config_judges_what_envoy_routes() {
    let e = shipped("envoy.yaml");
    let hcm =
        &e["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(hcm["normalize_path"], json!(false));
    assert_eq!(hcm["merge_slashes"], json!(false));
    assert_eq!(
        hcm["path_with_escaped_slashes_action"],
        json!("KEEP_UNCHANGED")
    );
    assert_eq!(
        hcm["common_http_protocol_options"]["headers_with_underscores_action"],
        json!("DROP_HEADER")
    );
    let authz = &hcm["http_filters"][0]["typed_config"];
    assert_eq!(authz["failure_mode_allow"], json!(false));
    let svc = &authz["http_service"];
    assert_eq!(svc["path_prefix"], json!("/_auth/check"));
    assert_eq!(
        svc["authorization_response"]["allowed_upstream_headers"]["patterns"],
        json!([{ "prefix": "x-auth-" }])
    );
    let sent: Vec<&str> = svc["authorization_request"]["allowed_headers"]["patterns"]
        .as_array()
        .expect("patterns")
        .iter()
        .filter_map(|p| p["exact"].as_str())
        .collect();
    for needed in [
        "cookie",
        "accept",
        "sec-fetch-mode",
        "sec-fetch-site",
        "origin",
    ] {
        assert!(sent.contains(&needed), "{needed} is not sent to the check");
    }
    // The check is off only on the sidecar's own routes.
    let routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .expect("routes");
    for r in routes {
        let prefix = r["match"]["prefix"].as_str().expect("prefix");
        let off =
            r["typed_per_filter_config"]["envoy.filters.http.ext_authz"]["disabled"] == json!(true);
        assert_eq!(
            off,
            prefix == "/_auth/" || prefix == "/api/user/",
            "{prefix}"
        );
    }
}

// === One reader of request targets ===

/// Targets whose path the app may read otherwise than a parser that stops at `#` or knows no
/// compatibility forms: the check refuses each, whatever the credentials.
const TARGET_TRICKS: [&str; 5] = [
    "/public/x#/../../admin/x",
    "/public/x?a=1#/../../admin/x",
    "/public/x#",
    "/public/%ef%bc%8e%ef%bc%8e/admin/x",
    "/public/\u{ff0e}\u{ff0e}/admin/x",
];

#[tokio::test]
async fn nginx_never_passes_a_fragment_or_a_compatibility_dot_segment() {
    let e = env_with(Convention::Nginx, true, |_| {}).await;
    let nginx = Nginx::start(&e).await;
    let staff = bearer(&token_in("u-staff", &["staff"]));
    for target in TARGET_TRICKS {
        for auth in [None, Some(staff.as_str())] {
            let extra: Vec<&str> = auth.into_iter().collect();
            let a = send(nginx.addr, &req("GET", target, &extra)).await;
            assert_eq!(
                (a.status, a.code().as_deref()),
                (403, Some("invalid_path")),
                "{target} with {auth:?}: {}",
                a.body
            );
        }
    }
    assert_eq!(e.echo.count(), 0, "a trick reached the app through nginx");
    // The part before the fragment alone is fine.
    let a = send(nginx.addr, &req("GET", "/public/x", &[])).await;
    assert_eq!(a.status, 200);
    assert_eq!(e.echo.last().path, "/public/x");
}

#[tokio::test]
async fn traefik_and_envoy_read_the_targets_as_the_proxy_path_does() {
    let staff = bearer(&token_in("u-staff", &["staff"]));
    let e = env_with(Convention::Traefik, false, |_| {}).await;
    for target in TARGET_TRICKS {
        let a = send(e.sc.addr, &traefik("GET", target, "app.test", &[&staff])).await;
        assert_eq!(
            (a.status, a.code().as_deref()),
            (400, Some("invalid_path")),
            "{target}"
        );
    }
    // Envoy's target is the check's request line: hyper drops a fragment there before anyone
    // reads it, as on the proxy path (and Envoy refuses or strips one before ext_authz); what
    // is left is judged.
    let e = env_with(Convention::Envoy, false, |_| {}).await;
    for target in TARGET_TRICKS {
        let a = send(
            e.sc.addr,
            &req("GET", &format!("/_auth/check{target}"), &[&staff]),
        )
        .await;
        let want = if target.contains('#') {
            (200, None)
        } else {
            (400, Some("invalid_path"))
        };
        assert_eq!((a.status, a.code().as_deref()), want, "{target}");
    }
    let a = send(
        e.sc.addr,
        &req("GET", "/_auth/check/admin/x#/../../public/x", &[&staff]),
    )
    .await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (403, Some("insufficient_scope")),
        "the part before the fragment is what is judged"
    );
    assert_eq!(e.echo.count(), 0, "the check proxied something");
}
