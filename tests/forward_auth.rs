//! Forward-auth: the gate's decision for a front proxy already in the data path.
//!
//! A real nginx (`/usr/sbin/nginx`, installed by deploy/system-packages.sh) runs what
//! `cognito-sidecar forward-auth-config nginx` prints for the test's sidecar (the real binary;
//! deploy/forward-auth/nginx.conf is the same command's output for its sample configuration,
//! checked below), with `auth_request` in front of an echo app and the sidecar (in-process,
//! its check on a listener of its own) as the authorizer; every request is sent byte for byte
//! and the test asserts what the app received. The Traefik and Envoy conventions are tested at
//! the HTTP level against the check itself.
//!
//! Rules: `/public/*` public, `/admin/*` with `methods = ["GET", "DELETE"]` needs group
//! `admins`; everything else needs a token.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use cognito_sidecar::config::{Access, Config, Convention, RouteRule};
use cognito_sidecar::net as server;
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

/// nginx running the config `forward-auth-config nginx` prints; stopped on drop
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

const BIN: &str = env!("CARGO_BIN_EXE_cognito-sidecar");

/// Runs `cognito-sidecar <args>` with `config` as its proxy.toml (the test's environment's
/// SIDECAR_* and COGNITO_* variables removed, `env` added): exit code, stdout, stderr.
fn subcommand(config: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = Scratch(std::env::temp_dir().join(format!("cs-facfg-{}", uuid_like())));
    std::fs::create_dir_all(&dir.0).expect("scratch dir");
    let path = dir.0.join("proxy.toml");
    std::fs::write(&path, config).expect("write toml");
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args).arg("--config").arg(&path);
    for (k, _) in std::env::vars() {
        if k.starts_with("SIDECAR_") || k.starts_with("COGNITO_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The proxy.toml of an `env_with(Nginx, true, ..)` sidecar, with `app` as its upstream.
fn nginx_sidecar_toml(e: &Env, app: SocketAddr) -> String {
    format!(
        "[cognito]\nuser_pool_id = \"us-east-1_TestPool\"\nclient_id = \"{CLIENT_ID}\"\n\
         [server]\nlisten = \"{}\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n\
         [upstream]\nurl = \"http://{app}\"\n\
         [session]\nenabled = true\n\
         [forward_auth]\nenabled = true\nconvention = \"nginx\"\nlisten = \"{}\"\n",
        e.sc.addr,
        e.check.expect("the check has its own listener"),
    )
}

impl Nginx {
    /// nginx in front of the echo app.
    async fn start(e: &Env) -> Nginx {
        Nginx::start_for(e, e.echo.addr).await
    }

    /// nginx running exactly what `cognito-sidecar forward-auth-config nginx` prints for the
    /// test's sidecar (its listeners), with `app` as the app.
    async fn start_for(e: &Env, app: SocketAddr) -> Nginx {
        // A free port can be taken by another test between `free_port` and nginx's bind: then
        // nginx exits, or something else answers there; try another port (bounded).
        for _ in 0..5 {
            if let Some(nginx) = Nginx::try_start_for(e, app).await {
                return nginx;
            }
        }
        panic!("nginx did not come up on a port of its own in 5 tries");
    }

    /// One try of `start_for`: `None` if nginx exited or another server holds its port.
    async fn try_start_for(e: &Env, app: SocketAddr) -> Option<Nginx> {
        let bin = "/usr/sbin/nginx";
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: run `bash deploy/system-packages.sh` (installs Debian's nginx)"
        );
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let (code, conf, stderr) = subcommand(
            &nginx_sidecar_toml(e, app),
            &["forward-auth-config", "nginx", "--listen", &listen],
            &[],
        );
        assert_eq!(code, 0, "forward-auth-config nginx: {stderr}");
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
            "nginx -t refused the generated config: {}",
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
        let mut nginx = Nginx {
            addr,
            child,
            _dir: dir,
        };
        for _ in 0..200 {
            if matches!(nginx.child.try_wait(), Ok(Some(_))) {
                return None;
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                // The internal check location answers 404, from nginx itself.
                let probe = send(
                    addr,
                    "GET /_auth/check HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n",
                )
                .await;
                let is_nginx = probe
                    .header("server")
                    .is_some_and(|v| v.starts_with("nginx"));
                return is_nginx.then_some(nginx);
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
        json!(["cognito-sidecar-clear", "cognito-sidecar"])
    );
    // Every header the sidecar never forwards is removed (an empty value), but the forwarded
    // headers Traefik writes itself.
    let clear =
        &t["http"]["middlewares"]["cognito-sidecar-clear"]["headers"]["customRequestHeaders"];
    for h in cognito_sidecar::config::NEVER_FORWARD {
        assert_eq!(clear[*h], json!(""), "{h}");
    }
    for h in ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"] {
        assert!(clear.get(h).is_none(), "{h}");
    }
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
    // Exactly the identity map, as the check answers it (the principal header first).
    let identity = Config::default().identity;
    let want: Vec<Value> = std::iter::once(&identity.principal_header)
        .chain(identity.headers.iter().map(|h| &h.name))
        .map(|n| json!({ "exact": n.to_ascii_lowercase() }))
        .collect();
    assert_eq!(
        svc["authorization_response"]["allowed_upstream_headers"]["patterns"],
        json!(want)
    );
    let removed = hcm["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .and_then(|r| r.last())
        .map(|r| r["request_headers_to_remove"].clone())
        .unwrap_or(Value::Null);
    for h in cognito_sidecar::config::NEVER_FORWARD
        .iter()
        .chain(&["x-forwarded-host"])
    {
        assert!(
            removed.as_array().is_some_and(|a| a.contains(&json!(h))),
            "{h} reaches the app through Envoy"
        );
    }
    assert_eq!(
        hcm["upgrade_configs"],
        json!([{ "upgrade_type": "websocket" }])
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

// === The front proxy's config, generated (`forward-auth-config`) ===

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/forward-auth/sidecar.toml"
);

#[test]
fn shipped_front_proxy_configs_are_what_the_subcommand_prints() {
    let sample = std::fs::read_to_string(SAMPLE).expect("the sample sidecar.toml");
    for (proxy, file) in [
        ("nginx", "nginx.conf"),
        ("traefik", "traefik.yml"),
        ("envoy", "envoy.yaml"),
    ] {
        let (code, printed, stderr) = subcommand(
            &sample,
            &["forward-auth-config", proxy],
            &[("SIDECAR_FORWARD_AUTH__CONVENTION", proxy)],
        );
        assert_eq!(code, 0, "{proxy}: {stderr}");
        let path = format!("{}/deploy/forward-auth/{file}", env!("CARGO_MANIFEST_DIR"));
        let shipped = std::fs::read_to_string(&path).expect("shipped config");
        assert!(
            printed == shipped,
            "deploy/forward-auth/{file} is not what `forward-auth-config {proxy}` prints for \
             deploy/forward-auth/sidecar.toml; regenerate it (see sidecar.toml's header)"
        );
    }
}

#[test]
fn forward_auth_config_refuses_what_it_cannot_write() {
    let sample = std::fs::read_to_string(SAMPLE).expect("the sample sidecar.toml");
    // An unknown proxy: clap's usage error, naming the choices.
    let (code, out, err) = subcommand(&sample, &["forward-auth-config", "haproxy"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty());
    assert!(err.contains("invalid value 'haproxy'"), "{err}");
    assert!(err.contains("nginx") && err.contains("envoy"), "{err}");
    // A proxy the sidecar's convention does not read: exit 64, one line naming the key.
    for (args, env, key) in [
        (
            vec!["forward-auth-config", "traefik"],
            vec![],
            "forward_auth.convention",
        ),
        (
            vec!["forward-auth-config", "nginx"],
            vec![("SIDECAR_FORWARD_AUTH__ENABLED", "false")],
            "forward_auth.enabled",
        ),
        (
            vec!["forward-auth-config", "nginx"],
            vec![("SIDECAR_UPSTREAM__URL", "http://127.0.0.1:3000/base")],
            "upstream.url",
        ),
    ] {
        let (code, out, err) = subcommand(&sample, &args, &env);
        assert_eq!(code, 64, "{args:?} {env:?}: {err}");
        assert!(out.is_empty(), "{out}");
        assert!(err.contains(key), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

/// A client request carrying every header of `upstream.never_forward` (and of the forwarded
/// family), in the canonical spelling and with `_` and `.`: the app receives exactly the
/// headers below, nothing the client chose among them.
#[tokio::test]
async fn nginx_clears_every_header_the_sidecar_never_forwards() {
    let e = env_with(Convention::Nginx, true, |_| {}).await;
    let nginx = Nginx::start(&e).await;
    let staff = bearer(&token_in("u-staff", &["staff"]));
    let mut extra: Vec<String> = vec![staff.clone()];
    let names: Vec<String> = cognito_sidecar::config::NEVER_FORWARD
        .iter()
        .map(|h| (*h).to_string())
        .chain(
            ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]
                .iter()
                .map(|h| (*h).to_string()),
        )
        .collect();
    for h in &names {
        extra.push(format!("{h}: evil"));
        extra.push(format!("{}: evil", h.to_ascii_uppercase()));
        extra.push(format!("{}: evil", h.replace('-', "_")));
        extra.push(format!("{}: evil", h.replace('-', ".")));
    }
    extra.push("X-App-Custom: kept".into());
    let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
    for path in ["/orders/1", "/public/x"] {
        let a = send(nginx.addr, &req("GET", path, &refs)).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        let seen = e.echo.last();
        assert_eq!(seen.path, path);
        let mut got: Vec<(String, String)> = seen.headers.clone();
        got.sort();
        // A verified token gives the identity on a public route too, as the sidecar's gate does.
        let mut want: Vec<(String, String)> = vec![
            ("host".into(), "app.test".into()),
            ("x-app-custom".into(), "kept".into()),
            ("x-forwarded-for".into(), "127.0.0.1".into()),
            ("x-forwarded-host".into(), "app.test".into()),
            ("x-forwarded-proto".into(), "http".into()),
            (
                "authorization".into(),
                staff["Authorization: ".len()..].into(),
            ),
        ];
        want.extend([
            ("x-auth-principal".into(), "user".into()),
            ("x-auth-sub".into(), "u-staff".into()),
            ("x-auth-username".into(), "user-u-staff".into()),
            ("x-auth-groups".into(), "staff".into()),
            ("x-auth-client-id".into(), CLIENT_ID.into()),
            ("x-auth-token-use".into(), "access".into()),
            (
                "x-auth-scope".into(),
                "aws.cognito.signin.user.admin".into(),
            ),
        ]);
        want.sort();
        assert_eq!(got, want, "{path}: what the app received");
    }

    // Any upgrade but WebSocket (h2c: it would let the client talk to the app past the check)
    // goes on as plain HTTP: the app sees neither Upgrade nor Connection.
    let a = send(
        nginx.addr,
        &req(
            "GET",
            "/orders",
            &[
                &staff,
                "Upgrade: h2c",
                "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
                "Connection: Upgrade, HTTP2-Settings",
            ],
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let seen = e.echo.last();
    assert_eq!(seen.path, "/orders");
    assert_eq!(seen.header("upgrade"), None, "{:?}", seen.headers);
    assert_eq!(seen.header("connection"), None, "{:?}", seen.headers);
}

/// The sidecar's cookies, however many and in however many Cookie headers, never reach the
/// app; the others do, as the sidecar's own gate passes them (`; `-joined).
#[tokio::test]
async fn nginx_removes_every_sidecar_cookie() {
    let e = env_with(Convention::Nginx, true, |_| {}).await;
    let nginx = Nginx::start(&e).await;
    let s = "__Host-sidecar-session=AAAA";
    let c = "__Host-sidecar-csrf=BBBB";
    let cases: Vec<(Vec<String>, Option<&str>)> = vec![
        (vec![format!("a=1; {s}; {c}; b=2")], Some("a=1; b=2")),
        (vec![format!("{s}; a=1; {s}; b=2; {s}")], Some("a=1; b=2")),
        (vec![format!("{s}; {c}; {s}")], None),
        (vec![format!("{s};a=1;{c}")], Some("a=1")),
        (
            vec![format!("a=1; {s}"), format!("{c}; b=2"), s.to_string()],
            Some("a=1; b=2"),
        ),
        (
            vec![s.to_string(), s.to_string(), "a=1".to_string()],
            Some("a=1"),
        ),
        // A name that only starts like the sidecar's is someone else's cookie.
        (
            vec!["__Host-sidecar-sessionx=1; x__Host-sidecar-csrf=2".to_string()],
            Some("__Host-sidecar-sessionx=1; x__Host-sidecar-csrf=2"),
        ),
        // Blanks around the name: the sidecar reads it as its cookie, so does nginx.
        (
            vec![format!("a=1;  __Host-sidecar-session = X")],
            Some("a=1"),
        ),
    ];
    for (cookies, want) in &cases {
        let lines: Vec<String> = cookies.iter().map(|v| format!("Cookie: {v}")).collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let a = send(nginx.addr, &req("GET", "/public/c", &refs)).await;
        assert_eq!(a.status, 200, "{cookies:?}: {}", a.body);
        let seen = e.echo.last();
        let got: Vec<&str> = seen
            .headers
            .iter()
            .filter(|(k, _)| k == "cookie")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(got, want.iter().copied().collect::<Vec<_>>(), "{cookies:?}");
    }
    // More than the chain removes: refused, the app sees nothing.
    let before = e.echo.count();
    let many = [s; cognito_sidecar::app::front_config::NGINX_COOKIE_STEPS + 1].join("; ");
    let line = format!("Cookie: a=1; {many}");
    let a = send(nginx.addr, &req("GET", "/public/c", &[&line])).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(
        e.echo.count(),
        before,
        "a request with a sidecar cookie left reached the app"
    );
}

/// Each handshake's request headers, in order.
type Handshakes = std::sync::Arc<std::sync::Mutex<Vec<Vec<(String, String)>>>>;

/// An app that accepts WebSocket upgrades and echoes messages; records each handshake's
/// headers.
struct WsApp {
    addr: SocketAddr,
    handshakes: Handshakes,
    task: tokio::task::JoinHandle<()>,
}

impl WsApp {
    async fn start() -> WsApp {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handshakes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let h = std::sync::Arc::clone(&handshakes);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let h = std::sync::Arc::clone(&h);
                tokio::spawn(async move {
                    #[allow(clippy::result_large_err)] // tungstenite's callback signature
                    let record =
                        |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(k, v)| {
                                    (
                                        k.as_str().to_string(),
                                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                    )
                                })
                                .collect();
                            h.lock().expect("lock").push(headers);
                            Ok(resp)
                        };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, record).await
                    else {
                        return;
                    };
                    // Bounded: at most 100 messages per connection, each within 10 s.
                    for _ in 0..100 {
                        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                            Ok(Some(Ok(msg))) if !msg.is_close() => {
                                if ws.send(msg).await.is_err() {
                                    return;
                                }
                            }
                            _ => return,
                        }
                    }
                });
            }
        });
        WsApp {
            addr,
            handshakes,
            task,
        }
    }

    fn count(&self) -> usize {
        self.handshakes.lock().expect("lock").len()
    }
}

impl Drop for WsApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn websocket_through_nginx_with_a_token_and_refused_without() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::{Error, Message};
    let e = env_with(Convention::Nginx, true, |_| {}).await;
    let app = WsApp::start().await;
    let nginx = Nginx::start_for(&e, app.addr).await;
    let connect = |auth: Option<String>| {
        let mut r = format!("ws://{}/socket?room=1", nginx.addr)
            .into_client_request()
            .expect("request");
        if let Some(a) = auth {
            r.headers_mut()
                .insert("authorization", a.parse().expect("header"));
        }
        r.headers_mut()
            .insert("x-auth-sub", "forged".parse().expect("header"));
        tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(r))
    };

    // Without a token: the check's 401, and the app never saw a handshake.
    match connect(None).await.expect("answer in time") {
        Err(Error::Http(resp)) => {
            assert_eq!(resp.status(), 401);
            let body = resp.body().clone().unwrap_or_default();
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            assert_eq!(v["code"], json!("token_missing"), "{v}");
        }
        Err(other) => panic!("not an HTTP refusal: {other}"),
        Ok(_) => panic!("a WebSocket opened without a token"),
    }
    assert_eq!(app.count(), 0, "the app saw a handshake without a token");

    // With one: 101, the app saw the upgrade with the identity, and a message round-trips.
    let token = format!("Bearer {}", token_in("u-ws", &["staff"]));
    let (mut ws, resp) = connect(Some(token))
        .await
        .expect("answer in time")
        .expect("the WebSocket opens");
    assert_eq!(resp.status(), 101);
    for text in ["hello", "again"] {
        ws.send(Message::text(text)).await.expect("send");
        let back = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("echo in time")
            .expect("a message")
            .expect("no error");
        assert_eq!(back.to_text().expect("text"), text);
    }
    let _ = ws.close(None).await;
    assert_eq!(app.count(), 1);
    let seen = app.handshakes.lock().expect("lock")[0].clone();
    let get = |name: &str| {
        seen.iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(get("x-auth-sub"), vec!["u-ws"], "{seen:?}");
    assert_eq!(get("upgrade"), vec!["websocket"], "{seen:?}");
    assert_eq!(get("connection"), vec!["upgrade"], "{seen:?}");
}
