//! No session secret reaches a log line: the browser-session flows (sign-in page and form,
//! new password, requests with the cookie, a refresh, sign-out) run with debug logging of
//! every crate captured, then the capture is searched for every session id, cookie value,
//! CSRF token, password, challenge session and token the test saw. One test per file, so the
//! global subscriber sees nothing else.

mod common;

use std::time::Duration;

use common::*;

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn field(html: &str, name: &str) -> Option<String> {
    let needle = format!(r#"name="{name}" value=""#);
    let start = html.find(&needle)? + needle.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_string())
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

async fn post(sc: &Sidecar, path: &str, cookie: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    browser()
        .post(sc.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .header("sec-fetch-site", "same-origin")
        .body(body.join("&"))
        .send()
        .await
        .expect("post")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_session_secret_in_any_log_line() {
    let capture = Capture::install();
    let mut secrets: Vec<(String, String)> = Vec::new();

    let pool = Pool::create(true, false).await;
    let user = pool.confirmed_user("session-logs@example.com", &[]).await;
    let newbie = pool.new_user("session-logs-new@example.com").await;
    secrets.push(("password".into(), PASSWORD.into()));
    secrets.push(("temporary password".into(), TEMP_PASSWORD.into()));
    let echo = Echo::start().await;
    let mut c = pool.config(&echo.url());
    c.log.level = "debug".into();
    c.session.enabled = true;
    c.session.forward_access_token = true;
    // moto's tokens live an hour: this margin makes the second request refresh.
    c.session.refresh_margin = Duration::from_secs(3597);
    let sc = Sidecar::start(c).await;

    // The sign-in page and form.
    let page = browser()
        .get(sc.url("/_auth/sign-in"))
        .send()
        .await
        .expect("page");
    let csrf = set_cookie(&page, "__Host-sidecar-csrf").expect("csrf");
    secrets.push(("csrf token".into(), csrf.clone()));
    let jar = format!("__Host-sidecar-csrf={csrf}");
    let wrong = "Wrong-Session-Passw0rd!";
    secrets.push(("wrong password".into(), wrong.into()));
    let r = post(
        &sc,
        "/_auth/sign-in",
        &jar,
        &[("csrf", &csrf), ("email", &user), ("password", wrong)],
    )
    .await;
    assert_eq!(r.status(), 401);
    let r = post(
        &sc,
        "/_auth/sign-in",
        &jar,
        &[("csrf", &csrf), ("email", &user), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(r.status(), 303);
    let id = set_cookie(&r, "__Host-sidecar-session").expect("session");
    secrets.push(("session id".into(), id.clone()));
    let cookie = format!("__Host-sidecar-session={id}; __Host-sidecar-csrf={csrf}");

    // Requests with the cookie; the app receives the access token (forward_access_token).
    let r = browser()
        .get(sc.url("/x"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let first = echo
        .last()
        .header("authorization")
        .expect("bearer")
        .to_string();
    let access = first.trim_start_matches("Bearer ").to_string();
    secrets.push(("access token".into(), access.clone()));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let r = browser()
        .get(sc.url("/x"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let refreshed = echo
        .last()
        .header("authorization")
        .expect("bearer")
        .to_string();
    assert_ne!(
        refreshed, first,
        "the second request used a refreshed token"
    );
    secrets.push((
        "refreshed access token".into(),
        refreshed.trim_start_matches("Bearer ").to_string(),
    ));

    // The new-password flow (the challenge session is a secret too).
    let r = post(
        &sc,
        "/_auth/sign-in",
        &jar,
        &[
            ("csrf", &csrf),
            ("email", &newbie),
            ("password", TEMP_PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("html");
    let session = field(&html, "session").expect("challenge session");
    secrets.push(("challenge session".into(), session.clone()));
    let chosen = "Chosen-Session-Passw0rd!";
    secrets.push(("new password".into(), chosen.into()));
    let r = post(
        &sc,
        "/_auth/new-password",
        &jar,
        &[
            ("csrf", &csrf),
            ("email", &newbie),
            ("session", &session),
            ("new_password", chosen),
            ("confirm_password", chosen),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    let id2 = set_cookie(&r, "__Host-sidecar-session").expect("session");
    secrets.push(("second session id".into(), id2));

    // A forgotten password on the pages: the code and the new password are secrets too.
    let r = post(
        &sc,
        "/_auth/forgot-password",
        &jar,
        &[("csrf", &csrf), ("email", &newbie)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let (code, reset) = ("reset-code-31337", "Reset-Session-Passw0rd!");
    secrets.push(("recovery code".into(), code.into()));
    secrets.push(("reset password".into(), reset.into()));
    let r = post(
        &sc,
        "/_auth/reset-password",
        &jar,
        &[
            ("csrf", &csrf),
            ("email", &newbie),
            ("code", code),
            ("new_password", reset),
            ("confirm_password", reset),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    let id3 = set_cookie(&r, "__Host-sidecar-session").expect("session");
    secrets.push(("third session id".into(), id3));

    // Sign out, then the old cookie.
    let r = post(&sc, "/_auth/sign-out", &cookie, &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), 303);
    let r = browser()
        .get(sc.url("/x"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);

    sc.stop().await;
    let logs = capture.text();
    assert!(
        logs.lines().count() > 20,
        "the capture saw too little:\n{logs}"
    );
    assert!(logs.contains("/_auth/sign-in"), "page requests were logged");
    for (what, value) in &secrets {
        assert!(value.len() >= 8, "{what} too short to search for");
        if let Some(at) = logs.find(value.as_str()) {
            let line = logs[..at].rsplit('\n').next().unwrap_or("");
            panic!("{what} appears in a log line starting: {line:.200}");
        }
    }
    let sig = access.rsplit('.').next().expect("signature");
    assert!(!logs.contains(sig), "an access token signature was logged");
}
