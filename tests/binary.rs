//! The real binary: configuration errors exit 64 with one line naming the key; `check-config`
//! redacts the secret; with `proxy.toml` it serves, and SIGTERM lets an in-flight request
//! finish before it exits 0; `healthcheck` reports readiness.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::Response;
use http_body_util::Full;

const BIN: &str = env!("CARGO_BIN_EXE_cognito-sidecar");

fn sidecar() -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test");
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[test]
fn bad_configuration_exits_64_naming_the_key() {
    type Case = (
        Vec<(&'static str, &'static str)>,
        Vec<&'static str>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            vec![],
            vec!["--config", "proxy.toml"],
            "cognito.user_pool_id: missing",
        ),
        (
            vec![("COGNITO_USER_POOL_ID", "us-east-1_x")],
            vec!["--config", "proxy.toml"],
            "cognito.client_id: missing",
        ),
        (
            vec![
                ("COGNITO_USER_POOL_ID", "us-east-1_x"),
                ("COGNITO_APP_CLIENT_ID", "c"),
                ("SIDECAR_UPSTREAM__URL", "not a url"),
            ],
            vec!["--config", "proxy.toml"],
            "upstream.url",
        ),
        (
            vec![
                ("COGNITO_USER_POOL_ID", "us-east-1_x"),
                ("COGNITO_APP_CLIENT_ID", "c"),
                ("SIDECAR_COGNITO__AUTH_FLOW", "srp"),
            ],
            vec!["--config", "proxy.toml"],
            "cognito.auth_flow",
        ),
        (
            vec![
                ("COGNITO_USER_POOL_ID", "us-east-1_x"),
                ("COGNITO_APP_CLIENT_ID", "c"),
                ("SIDECAR_API__COMPATIBILITY", "django"),
            ],
            vec!["--config", "proxy.toml"],
            "api.compatibility: unknown value \"django\"; expected \"none\" or \"seed\"",
        ),
        (
            vec![
                ("COGNITO_USER_POOL_ID", "us-east-1_x"),
                ("COGNITO_APP_CLIENT_ID", "c"),
                ("SIDECAR_UPSTREAM__CONNECT_TIMEOUT", "soonish"),
            ],
            vec!["--config", "proxy.toml"],
            "upstream.connect_timeout",
        ),
        (
            vec![
                ("COGNITO_USER_POOL_ID", "us-east-1_x"),
                ("COGNITO_APP_CLIENT_ID", "c"),
            ],
            vec!["--config", "does-not-exist.toml"],
            "not found",
        ),
    ];
    for (env, args, want) in cases {
        let out = sidecar()
            .envs(env.clone())
            .args(&args)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{env:?}: {stderr}");
        assert!(stderr.contains(want), "{env:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn check_config_prints_the_effective_config_redacted() {
    let out = sidecar()
        .args(["check-config", "--config", "proxy.toml"])
        .env("COGNITO_USER_POOL_ID", "ap-northeast-1_Abc")
        .env("COGNITO_APP_CLIENT_ID", "client-1")
        .env("COGNITO_APP_CLIENT_SECRET", "very-secret-value")
        .env("SIDECAR_UPSTREAM__URL", "http://127.0.0.1:3999")
        .env("SIDECAR_API__COMPATIBILITY", "seed")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("very-secret-value"));
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(v["cognito"]["client_secret"], "<redacted>");
    assert_eq!(v["cognito"]["user_pool_id"], "ap-northeast-1_Abc");
    assert_eq!(v["upstream"]["url"], "http://127.0.0.1:3999");
    assert_eq!(v["api"]["compatibility"], "seed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_with_proxy_toml_and_drains_on_sigterm() {
    let jwks = JwksServer::start().await;
    // An upstream that takes a second: the request is in flight when SIGTERM arrives.
    let (upstream, _stop) = serve_fn(Arc::new(|_req| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            Response::new(Full::new(Bytes::from_static(b"slow but complete")))
        })
    }))
    .await;
    let port = free_port();
    let admin_port = free_port();
    let log_path = std::env::temp_dir().join(format!("sidecar-binary-{}.log", uuid_like()));
    let log_file = std::fs::File::create(&log_path).expect("log file");
    let mut child = Reaped(
        sidecar()
            .args(["--config", "proxy.toml"])
            .env("AWS_REGION", "us-east-1")
            .env("COGNITO_USER_POOL_ID", "us-east-1_TestPool")
            .env("COGNITO_APP_CLIENT_ID", CLIENT_ID)
            .env("SIDECAR_COGNITO__ENDPOINT_URL", closed_url().await)
            .env("SIDECAR_VERIFY__JWKS_URL", &jwks.url)
            .env("SIDECAR_UPSTREAM__URL", format!("http://{upstream}"))
            .env("SIDECAR_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("SIDECAR_SERVER__SHUTDOWN_GRACE", "5s")
            .env("SIDECAR_ADMIN__LISTEN", format!("127.0.0.1:{admin_port}"))
            .env("SIDECAR_LOG__FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawn"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = client();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "binary became ready");

    // The healthcheck subcommand agrees.
    let hc = sidecar()
        .args(["healthcheck", "--config", "proxy.toml"])
        .env("COGNITO_USER_POOL_ID", "us-east-1_TestPool")
        .env("COGNITO_APP_CLIENT_ID", CLIENT_ID)
        .env("SIDECAR_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .status()
        .expect("healthcheck");
    assert!(hc.success());

    // Metrics on the admin listener move with traffic.
    let token = valid_token("u-bin");
    assert_eq!(
        http.get(format!("{base}/x"))
            .send()
            .await
            .expect("401")
            .status(),
        401
    );
    let scrape = http
        .get(format!("http://127.0.0.1:{admin_port}/metrics"))
        .send()
        .await
        .expect("scrape");
    // prometheus-client writes OpenMetrics text, and the answer says so.
    assert_eq!(
        scrape
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let metrics = scrape.text().await.expect("text");
    assert!(metrics.ends_with("\n# EOF\n"), "{metrics}");
    for line in [
        "sidecar_gate_requests_total{outcome=\"token_missing\"} 1",
        "sidecar_jwks_keys 1",
        "# TYPE sidecar_open_connections gauge",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    assert!(
        !metrics.contains("sidecar_jwks_fetches_total 0"),
        "{metrics}"
    );
    let in_flight = tokio::spawn({
        let http = http.clone();
        let url = format!("{base}/slow");
        async move { http.get(url).bearer_auth(token).send().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());

    let resp = in_flight
        .await
        .expect("task")
        .expect("in-flight request completed");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.expect("body"), "slow but complete");

    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "did not exit within the grace period"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
    // JSON logs: one object per line, the access line with the operator's fields.
    let logs = std::fs::read_to_string(&log_path).expect("logs");
    let _ = std::fs::remove_file(&log_path);
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let access = lines
        .iter()
        .find(|l| l["path"] == "/slow")
        .unwrap_or_else(|| panic!("no access line for /slow in\n{logs}"));
    assert_eq!(access["level"], "info");
    assert_eq!(access["method"], "GET");
    assert_eq!(access["status"], 200);
    assert_eq!(access["sub"], "u-bin");
    assert!(
        access["latency_ms"].as_f64().is_some_and(|l| l >= 900.0),
        "{access}"
    );
    assert!(
        access["request_id"].as_str().is_some_and(|r| r.len() >= 16),
        "{access}"
    );
    assert!(access.get("msg").is_some());
    assert!(lines
        .iter()
        .any(|l| l["msg"].as_str().is_some_and(|m| m.contains("SIGTERM"))));
    assert!(
        !logs.contains(&valid_token("u-bin")[..40]),
        "a token reached the log"
    );
    // New connections are refused once it has stopped.
    assert!(http.get(format!("{base}/healthz")).send().await.is_err());

    // After exit, the healthcheck fails.
    let hc = sidecar()
        .args(["healthcheck", "--config", "proxy.toml"])
        .env("COGNITO_USER_POOL_ID", "us-east-1_TestPool")
        .env("COGNITO_APP_CLIENT_ID", CLIENT_ID)
        .env("SIDECAR_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .stderr(Stdio::null())
        .status()
        .expect("healthcheck");
    assert_eq!(hc.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_enabled_false_turns_the_admin_listener_off() {
    let jwks = JwksServer::start().await;
    let port = free_port();
    let admin_port = free_port();
    let log_path = std::env::temp_dir().join(format!("sidecar-binary-{}.log", uuid_like()));
    let log_file = std::fs::File::create(&log_path).expect("log file");
    let _child = Reaped(
        sidecar()
            .args(["--config", "proxy.toml"])
            .env("COGNITO_USER_POOL_ID", "us-east-1_TestPool")
            .env("COGNITO_APP_CLIENT_ID", CLIENT_ID)
            .env("SIDECAR_COGNITO__ENDPOINT_URL", closed_url().await)
            .env("SIDECAR_VERIFY__JWKS_URL", &jwks.url)
            .env("SIDECAR_UPSTREAM__URL", closed_url().await)
            .env("SIDECAR_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            // The address it would listen on: the same setting serves /metrics in the test above.
            .env("SIDECAR_ADMIN__LISTEN", format!("127.0.0.1:{admin_port}"))
            .env("SIDECAR_ADMIN__ENABLED", "false")
            .env("SIDECAR_LOG__FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawn"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = client();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Ready means start-up is over: the admin listener would have been bound before.
    assert!(ready, "binary became ready");
    let err = std::net::TcpStream::connect(("127.0.0.1", admin_port))
        .expect_err("nothing listens on the admin port");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    // Log lines are written by a background thread: give it a moment.
    let mut logs = String::new();
    for _ in 0..100 {
        logs = std::fs::read_to_string(&log_path).expect("logs");
        if logs.contains("cognito-sidecar listening") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = std::fs::remove_file(&log_path);
    assert!(logs.contains("admin listener off"), "{logs}");
    assert!(!logs.contains("metrics on /metrics"), "{logs}");
}
