//! No secret reaches a log line: every flow runs with debug logging of every crate captured
//! (the sidecar's, the AWS SDK's, reqwest's, h2's), then the capture is searched for every
//! password, token, refresh token, client secret, SECRET_HASH and challenge session the test
//! used. This file holds one test so the global subscriber sees nothing else.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::{json, Value};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn post(sc: &Sidecar, path: &str, bearer: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = client().post(sc.url(path)).json(&body);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    status_json(req.send().await.expect("request")).await
}

fn text(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} in {v}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_any_log_line() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let mut secrets: Vec<(String, String)> = Vec::new();
    let mut keep = |what: &str, v: &str| secrets.push((what.to_string(), v.to_string()));

    // A pool whose client has a secret, so SECRET_HASH is computed and sent.
    let pool = Pool::create(true, false).await;
    let secret = pool.client_secret.clone().expect("secret");
    keep("client secret", &secret);
    let user = pool.confirmed_user("logs@example.com", &[]).await;
    let newbie = pool.new_user("logs-new@example.com").await;
    keep("password", PASSWORD);
    keep("temporary password", TEMP_PASSWORD);
    for u in [&user, &newbie] {
        keep(
            "SECRET_HASH",
            &cognito_sidecar::idp::secret_hash(&secret, u, &pool.client_id),
        );
    }
    let echo = Echo::start().await;
    let mut c = pool.config(&echo.url());
    c.log.level = "debug".into();
    let sc = Sidecar::start(c).await;

    // Login (and a wrong password).
    let (s, tokens) = login(&sc, &user, PASSWORD).await;
    assert_eq!(s, 200, "{tokens}");
    let access = text(&tokens, "access_token");
    let refresh = text(&tokens, "refresh_token");
    keep("access token", &access);
    keep("id token", &text(&tokens, "id_token"));
    keep("refresh token", &refresh);
    let wrong = "Wrong-Passw0rd-Logged?";
    keep("wrong password", wrong);
    assert_eq!(login(&sc, &user, wrong).await.0, 401);

    // First login: challenge session, weak and good new passwords.
    let (_, ch) = login(&sc, &newbie, TEMP_PASSWORD).await;
    let session = text(&ch, "session");
    keep("session", &session);
    let weak = "weak";
    let good = "New-Passw0rd-For-Logs!";
    keep("new password", good);
    let (s, _) = post(
        &sc,
        "/api/user/new-password",
        None,
        json!({"email": newbie, "new_password": weak, "session": session}),
    )
    .await;
    assert_eq!(s, 400);
    let (_, ch) = login(&sc, &newbie, TEMP_PASSWORD).await;
    let session2 = text(&ch, "session");
    keep("session", &session2);
    let (s, t2) = post(
        &sc,
        "/api/user/new-password",
        None,
        json!({"email": newbie, "new_password": good, "session": session2}),
    )
    .await;
    assert_eq!(s, 200, "{t2}");
    keep("access token", &text(&t2, "access_token"));
    keep("refresh token", &text(&t2, "refresh_token"));

    // Refresh by username, by bearer token, and with a bad refresh token.
    let (s, r) = post(
        &sc,
        "/api/user/refresh",
        None,
        json!({"refresh_token": refresh, "username": user}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    keep("refreshed access token", &text(&r, "access_token"));
    let (s, _) = post(
        &sc,
        "/api/user/refresh",
        Some(&access),
        json!({"refresh_token": refresh}),
    )
    .await;
    assert_eq!(s, 200);
    let bogus = "bogus-refresh-token-value-123";
    keep("bad refresh token", bogus);
    assert_eq!(
        post(
            &sc,
            "/api/user/refresh",
            None,
            json!({"refresh_token": bogus, "username": user})
        )
        .await
        .0,
        401
    );

    // The gate: valid (HTTP/1.1 and h2c), forged, and expired tokens.
    assert_eq!(
        client()
            .get(sc.url("/app"))
            .bearer_auth(&access)
            .send()
            .await
            .expect("get")
            .status(),
        200
    );
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("h2c client");
    assert_eq!(
        h2.get(sc.url("/app"))
            .bearer_auth(&access)
            .send()
            .await
            .expect("h2c")
            .status(),
        200
    );
    let forged = valid_token("forged-user");
    keep("forged token", &forged);
    assert_eq!(
        client()
            .get(sc.url("/app"))
            .bearer_auth(&forged)
            .send()
            .await
            .expect("get")
            .status(),
        401
    );

    // Logout, then the revoked token.
    let (s, _) = post(&sc, "/api/user/logout", Some(&access), json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(
        client()
            .get(sc.url("/app"))
            .bearer_auth(&access)
            .send()
            .await
            .expect("get")
            .status(),
        401
    );

    sc.stop().await;
    let logs = String::from_utf8_lossy(&capture.0.lock().expect("lock")).into_owned();
    assert!(
        logs.lines().count() > 20,
        "the capture saw too little:\n{logs}"
    );
    assert!(logs.contains("access"), "access log lines were captured");
    for (what, value) in &secrets {
        assert!(value.len() >= 4, "{what} too short to search for");
        if let Some(at) = logs.find(value.as_str()) {
            let line = logs[..at].rsplit('\n').next().unwrap_or("");
            panic!("{what} appears in a log line starting: {line:.200}");
        }
    }
    // Token fragments too: the signature part alone must not leak either.
    let sig = access.rsplit('.').next().expect("signature");
    assert!(!logs.contains(sig), "an access token signature was logged");
}
