//! No secret of a federated sign-in reaches a log line: the flow (start, the provider's
//! sign-in, the callback, a refused replay, a refresh, a request with the session, sign-out)
//! runs with debug logging of every crate captured, then the capture is searched for the
//! state, nonce, code, binding cookie, session id, the provider password and the access
//! token. One test per file, so the global subscriber sees nothing else.

mod common;

use std::time::Duration;

use common::browser::{browser, post_form, set_cookie_value};
use common::oidc::*;
use common::Capture;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_federated_sign_in_secret_in_any_log_line() {
    let capture = Capture::install();
    let f = fed_env(Some(SECRET), |c| {
        c.log.level = "debug".into();
        c.session.forward_access_token = true;
    })
    .await;
    let mut secrets: Vec<(&str, String)> = vec![
        ("provider password", FED_PASSWORD.into()),
        ("client secret", SECRET.into()),
    ];

    let mut jar = Jar::default();
    let back = through_provider(
        &f,
        &mut jar,
        "/_auth/federate?provider=Okta&return=/logs",
        "alice@example.com",
    )
    .await;
    let q: std::collections::HashMap<String, String> = back
        .parse::<reqwest::Url>()
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect();
    secrets.push(("code", q["code"].clone()));
    secrets.push(("state", q["state"].clone()));
    secrets.push((
        "binding cookie",
        jar.get(&f.sc.url("/"), "__Host-sidecar-oauth")
            .expect("flow cookie"),
    ));
    let events = f.provider.events_named("authorize").await;
    assert_eq!(events.len(), 1);
    let (status, _, session) = callback(&mut jar, &back).await;
    assert_eq!(status, 303);
    let session = session.expect("session");
    secrets.push(("session id", session.clone()));
    // A replay is refused (and logged as such, without the state).
    let (status, _, _) = callback(&mut jar, &back).await;
    assert_eq!(status, 400);

    let cookie = format!("__Host-sidecar-session={session}");
    let app = |path: &str| {
        browser()
            .get(f.sc.url(path))
            .header("cookie", cookie.clone())
            .send()
    };
    assert_eq!(app("/logs").await.expect("app").status(), 200);
    let forwarded = || {
        f.echo
            .last()
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .expect("forwarded access token")
            .to_string()
    };
    let access = forwarded();
    secrets.push(("access token", access.clone()));
    // A refresh at the token endpoint.
    f.sc.clock.advance(Duration::from_secs(250));
    assert_eq!(app("/logs").await.expect("app").status(), 200);
    let refreshed = forwarded();
    assert_ne!(refreshed, access, "the session was refreshed");
    secrets.push(("refreshed access token", refreshed));

    // Sign-out (revocation at the domain, then Cognito's /logout).
    let page = app("/_auth/sign-out").await.expect("sign-out page");
    let csrf = set_cookie_value(page.headers(), "__Host-sidecar-csrf").expect("csrf");
    secrets.push(("csrf token", csrf.clone()));
    let resp = post_form(
        &f.sc,
        "/_auth/sign-out",
        &format!("{cookie}; __Host-sidecar-csrf={csrf}"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(f.provider.events_named("revoke").await.len(), 1);

    let logs = capture.text();
    // The access lines name the pages (their paths, never the query with the code and state).
    for path in ["/_auth/federate", "/_auth/callback"] {
        assert!(logs.contains(path), "{path} requests were logged");
    }
    for (what, value) in &secrets {
        assert!(value.len() >= 8, "{what} too short to search for");
        assert!(!logs.contains(value.as_str()), "the {what} was logged");
    }
    for token in secrets.iter().filter(|(w, _)| w.contains("token")) {
        if let Some(sig) = token.1.rsplit('.').next() {
            assert!(!logs.contains(sig), "a {} signature was logged", token.0);
        }
    }
}
