//! Federated sign-in through the pool's managed login (`session.managed_login`), against a
//! real OpenID provider on loopback (`tests/oidc/`: oidc-provider with Cognito's routes,
//! PKCE S256 required, Cognito-shaped tokens) playing the pool's domain, whose issuer and
//! JWKS the gate trusts as the first pool's.

mod common;

use std::time::Duration;

use cognito_sidecar::config::Config;
use common::browser::{browser, metric, nav_headers, post_form, set_cookie_value, url_encode};
use common::oidc::*;
use common::*;
use tokio::net::TcpListener;

const EXPIRED: &str = "This sign-in has expired or was already used. Please sign in again.";
const NOT_COMPLETED: &str =
    "Sign-in with your identity provider did not complete. Please try again.";

fn metrics(sc: &Sidecar) -> String {
    sc.app.render_metrics()
}

#[tokio::test]
async fn provider_sign_in_returns_to_the_path_with_the_identity() {
    let f = fed_env(None, |_| {}).await;
    // The sign-in page offers the providers and the managed login page.
    let page = browser()
        .get(f.sc.url("/_auth/sign-in?return=/app/x"))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(page.contains(
        r#"href="/_auth/federate?provider=Okta&amp;return=%2Fapp%2Fx">Continue with Okta</a>"#
    ));
    assert!(page.contains(r#"Continue with Google</a>"#));
    assert!(
        page.contains(r#"href="/_auth/federate?return=%2Fapp%2Fx">Use another way to sign in</a>"#)
    );

    let mut jar = Jar::default();
    let start = format!(
        "/_auth/federate?provider=Okta&return={}",
        url_encode("/app/x?y=1")
    );
    let resp = get(&mut jar, &f.sc.url(&start)).await;
    assert_eq!(resp.status(), 303);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_string())
        .find(|c| c.starts_with("__Host-sidecar-oauth="))
        .expect("flow cookie");
    assert!(
        cookie.ends_with("; Path=/; Max-Age=300; Secure; HttpOnly; SameSite=Lax"),
        "{cookie}"
    );
    let authorize: reqwest::Url = location(&resp).parse().expect("url");
    let q: std::collections::HashMap<String, String> =
        authorize.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT);
    assert_eq!(q["redirect_uri"], f.callback);
    assert_eq!(q["scope"], "openid email profile");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["identity_provider"], "Okta");
    assert_eq!(q["code_challenge"].len(), 43);
    assert_eq!(q["state"].len(), 43);
    assert_eq!(q["nonce"].len(), 43);
    assert_ne!(q["state"], q["nonce"]);

    let back = through_provider(&f, &mut jar, &start, "alice@example.com").await;
    let (status, to, session) = callback(&mut jar, &back).await;
    assert_eq!((status, to.as_str()), (303, "/app/x?y=1"));
    let session = session.expect("session cookie");

    // The app sees the federated user, as for a password sign-in.
    let resp = browser()
        .get(f.sc.url("/app/x?y=1"))
        .header(
            "cookie",
            format!(
                "{}; __Host-sidecar-session={session}; theme=dark",
                jar.header(&f.callback)
            ),
        )
        .headers(nav_headers())
        .send()
        .await
        .expect("app");
    assert_eq!(resp.status(), 200);
    let seen = f.echo.last();
    // None of the sidecar's cookies (the flow's binding one included) reaches the app.
    assert_eq!(seen.header("cookie"), Some("theme=dark"));
    assert_eq!(seen.path, "/app/x?y=1");
    assert_eq!(
        seen.header("x-auth-username"),
        Some("Okta_alice@example.com")
    );
    assert_eq!(seen.header("x-auth-groups"), Some("staff"));
    assert_eq!(seen.header("x-auth-client-id"), Some(CLIENT));
    assert!(seen.header("x-auth-sub").is_some_and(|s| s.len() == 36));

    // What the provider was sent: a PKCE S256 challenge with a nonce, then the verifier
    // (a public client: no client authentication).
    let authz = f.provider.events_named("authorize").await;
    assert_eq!(authz.len(), 1);
    assert_eq!(authz[0]["code_challenge_method"], "S256");
    assert_eq!(authz[0]["has_nonce"], true);
    assert_eq!(authz[0]["identity_provider"], "Okta");
    let token = f.provider.events_named("token").await;
    assert_eq!(token.len(), 1);
    assert_eq!(token[0]["grant_type"], "authorization_code");
    assert_eq!(token[0]["has_code_verifier"], true);
    assert_eq!(token[0]["client_auth"], "none");

    let m = metrics(&f.sc);
    assert_eq!(
        metric(
            &m,
            r#"sidecar_session_federated_sign_ins_total{outcome="ok"} "#
        ),
        1.0
    );
    assert_eq!(
        metric(&m, r#"sidecar_session_sign_ins_total{outcome="ok"} "#),
        1.0
    );
}

#[tokio::test]
async fn a_client_secret_goes_by_basic_auth_and_sign_out_continues_to_cognito_logout() {
    let f = fed_env(Some(SECRET), |_| {}).await;
    let mut jar = Jar::default();
    let back = through_provider(
        &f,
        &mut jar,
        "/_auth/federate?provider=Google&return=/home",
        "bob@example.com",
    )
    .await;
    let (status, to, session) = callback(&mut jar, &back).await;
    assert_eq!((status, to.as_str()), (303, "/home"));
    let session = session.expect("session");
    let token = f.provider.events_named("token").await;
    assert_eq!(token[0]["client_auth"], "basic");

    // Sign-out: the session ends, its refresh token is revoked at the domain, and the
    // browser goes on to Cognito's /logout, which comes back to the sign-out URL.
    let page = browser()
        .get(f.sc.url("/_auth/sign-out"))
        .header("cookie", format!("__Host-sidecar-session={session}"))
        .send()
        .await
        .expect("sign-out page");
    let csrf = set_cookie_value(page.headers(), "__Host-sidecar-csrf").expect("csrf");
    // Its form may end on the domain's /logout (CSP form-action covers the redirect).
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp");
    assert!(
        csp.contains(&format!("form-action 'self' {};", f.provider.url)),
        "{csp}"
    );
    let resp = post_form(
        &f.sc,
        "/_auth/sign-out",
        &format!("__Host-sidecar-session={session}; __Host-sidecar-csrf={csrf}"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        set_cookie_value(resp.headers(), "__Host-sidecar-session").as_deref(),
        Some("")
    );
    let logout = location(&resp);
    assert_eq!(
        logout,
        format!(
            "{}/logout?client_id={CLIENT}&logout_uri={}",
            f.provider.url,
            url_encode(&f.sign_out)
        )
    );
    let resp = get(&mut jar, &logout).await;
    assert_eq!(resp.status(), 302);
    assert_eq!(location(&resp), f.sign_out);
    let logouts = f.provider.events_named("logout").await;
    assert_eq!(logouts.len(), 1);
    assert_eq!(logouts[0]["ok"], true);
    let revokes = f.provider.events_named("revoke").await;
    assert_eq!(revokes.len(), 1, "{revokes:?}");
    assert_eq!(revokes[0]["has_token"], true);
    assert_eq!(revokes[0]["client_auth"], "basic");
    assert_eq!(revokes[0]["status"], 200);

    // The old cookie is no session any more.
    let resp = browser()
        .get(f.sc.url("/home"))
        .header("cookie", format!("__Host-sidecar-session={session}"))
        .headers(nav_headers())
        .send()
        .await
        .expect("app");
    assert_eq!(resp.status(), 302);
    assert!(location(&resp).starts_with("/_auth/sign-in"));
}

#[tokio::test]
async fn the_state_is_checked_first_used_once_and_bound_to_the_browser() {
    let f = fed_env(None, |_| {}).await;

    // A state the sidecar never made: refused before the code is looked at.
    let mut jar = Jar::default();
    let _ = get(&mut jar, &f.sc.url("/_auth/federate?provider=Okta")).await;
    let (status, page, session) = callback(
        &mut jar,
        &format!("{}?code=forged&state=forged-state", f.callback),
    )
    .await;
    assert_eq!(status, 400);
    assert!(page.contains(EXPIRED), "{page}");
    assert!(session.is_none());

    // A callback taken to another browser (which has its own flow cookie) is refused, and
    // the state is spent: the browser that started it cannot use it either.
    let mut a = Jar::default();
    let back = through_provider(
        &f,
        &mut a,
        "/_auth/federate?provider=Okta",
        "alice@example.com",
    )
    .await;
    let mut b = Jar::default();
    let _ = get(&mut b, &f.sc.url("/_auth/federate?provider=Okta")).await;
    assert_ne!(
        a.get(&f.sc.url("/"), "__Host-sidecar-oauth"),
        b.get(&f.sc.url("/"), "__Host-sidecar-oauth")
    );
    let (status, page, session) = callback(&mut b, &back).await;
    assert_eq!(status, 400);
    assert!(page.contains(EXPIRED));
    assert!(session.is_none());
    let (status, _, session) = callback(&mut a, &back).await;
    assert_eq!(status, 400);
    assert!(session.is_none());
    // Neither code was ever sent to the token endpoint.
    assert!(f.provider.events_named("token").await.is_empty());

    // The right browser, once: signed in; the same callback again is refused.
    let back = through_provider(
        &f,
        &mut a,
        &format!(
            "/_auth/federate?provider=Okta&return={}",
            url_encode("//evil.example/x")
        ),
        "alice@example.com",
    )
    .await;
    let (status, to, session) = callback(&mut a, &back).await;
    // The return path follows the pages' rules: another origin becomes `/`.
    assert_eq!((status, to.as_str()), (303, "/"));
    assert!(session.is_some());
    let (status, page, session) = callback(&mut a, &back).await;
    assert_eq!(status, 400);
    assert!(page.contains(EXPIRED));
    assert!(session.is_none());

    // A flow older than session.managed_login.flow_timeout (5 minutes) is refused.
    let back = through_provider(
        &f,
        &mut a,
        "/_auth/federate?provider=Okta",
        "alice@example.com",
    )
    .await;
    f.sc.clock.advance(Duration::from_secs(301));
    let (status, page, session) = callback(&mut a, &back).await;
    assert_eq!(status, 400);
    assert!(page.contains(EXPIRED));
    assert!(session.is_none());

    let m = metrics(&f.sc);
    assert_eq!(
        metric(
            &m,
            r#"sidecar_session_federated_sign_ins_total{outcome="state_invalid"} "#
        ),
        4.0
    );
    assert_eq!(
        metric(
            &m,
            r#"sidecar_session_federated_sign_ins_total{outcome="state_expired"} "#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            r#"sidecar_session_federated_sign_ins_total{outcome="ok"} "#
        ),
        1.0
    );
}

#[tokio::test]
async fn a_refused_sign_in_shows_the_sign_in_page_with_a_generic_message() {
    let f = fed_env(None, |_| {}).await;
    // Cancelled at the provider: Cognito returns error=access_denied.
    let mut jar = Jar::default();
    let resp = get(
        &mut jar,
        &f.sc.url("/_auth/federate?provider=Okta&return=/after"),
    )
    .await;
    let mut next = location(&resp);
    let mut back = None;
    for _ in 0..10 {
        let resp = get(&mut jar, &next).await;
        let here: reqwest::Url = next.parse().expect("url");
        if resp.status().is_redirection() {
            next = here.join(&location(&resp)).expect("join").to_string();
            if next.starts_with(&f.callback) {
                back = Some(next.clone());
                break;
            }
            continue;
        }
        // The provider's sign-in page: cancel.
        let cancel = format!("{}/cancel", here.as_str().split('?').next().expect("path"));
        let post = browser()
            .post(cancel.as_str())
            .header("cookie", jar.header(&cancel))
            .send()
            .await
            .expect("cancel");
        jar.store(&cancel, post.headers());
        next = here.join(&location(&post)).expect("join").to_string();
    }
    let back = back.expect("back at the callback");
    assert!(back.contains("error=access_denied"), "{back}");
    let (status, page, session) = callback(&mut jar, &back).await;
    assert_eq!(status, 400);
    assert!(page.contains(NOT_COMPLETED), "{page}");
    assert!(
        !page.contains("cancelled"),
        "the provider's description is not shown"
    );
    // The page keeps the return path for the next attempt.
    assert!(page.contains(r#"name="return" value="/after""#));
    assert!(session.is_none());

    // A provider that is not configured is not started.
    let resp = browser()
        .get(f.sc.url("/_auth/federate?provider=Evil"))
        .send()
        .await
        .expect("federate");
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("location").is_none());
    assert_eq!(f.provider.events_named("authorize").await.len(), 1);
    // Starting a flow is a GET; nothing else is allowed.
    let resp = browser()
        .post(f.sc.url("/_auth/federate?provider=Okta"))
        .send()
        .await
        .expect("post");
    let (status, body) = status_json(resp).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
}

#[tokio::test]
async fn a_federated_session_refreshes_at_the_token_endpoint() {
    let f = fed_env(None, |_| {}).await;
    let mut jar = Jar::default();
    let back = through_provider(
        &f,
        &mut jar,
        "/_auth/federate?provider=Okta",
        "carol@example.com",
    )
    .await;
    let (_, _, session) = callback(&mut jar, &back).await;
    let cookie = format!("__Host-sidecar-session={}", session.expect("session"));
    // 250 s later the 300-second access token is within the 60-second refresh margin.
    f.sc.clock.advance(Duration::from_secs(250));
    let resp = browser()
        .get(f.sc.url("/data"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("app");
    assert_eq!(resp.status(), 200);
    assert_eq!(f.echo.last().header("x-auth-groups"), Some("admin,staff"));
    let grants: Vec<_> = f
        .provider
        .events_named("token")
        .await
        .into_iter()
        .map(|e| e["grant_type"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(grants, ["authorization_code", "refresh_token"]);
    let m = metrics(&f.sc);
    assert_eq!(
        metric(&m, r#"sidecar_session_refreshes_total{outcome="ok"} "#),
        1.0
    );
}

#[tokio::test]
async fn one_provider_with_auto_redirect_skips_the_sign_in_page() {
    let f = fed_env(None, |c| {
        let m = &mut c.session.managed_login;
        m.identity_providers = vec!["Okta".into()];
        m.other_ways = false;
        m.auto_redirect = true;
    })
    .await;
    // A navigation without a session goes to the sign-in page, which goes to the provider.
    let resp = browser()
        .get(f.sc.url("/reports?q=1"))
        .headers(nav_headers())
        .send()
        .await
        .expect("app");
    assert_eq!(resp.status(), 302);
    let sign_in = location(&resp);
    assert!(sign_in.starts_with("/_auth/sign-in?return="), "{sign_in}");
    let mut jar = Jar::default();
    let back = through_provider(&f, &mut jar, &sign_in, "alice@example.com").await;
    let authz = f.provider.events_named("authorize").await;
    assert_eq!(authz[0]["identity_provider"], "Okta");
    let (status, to, _) = callback(&mut jar, &back).await;
    assert_eq!((status, to.as_str()), (303, "/reports?q=1"));
}

#[tokio::test]
async fn without_managed_login_the_federation_pages_do_not_exist() {
    let e = common::browser::env_with(|_| {}).await;
    for path in [
        "/_auth/federate?provider=Okta",
        "/_auth/callback?code=c&state=s",
    ] {
        let resp = browser().get(e.sc.url(path)).send().await.expect("get");
        let (status, body) = status_json(resp).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
    }
    let page = browser()
        .get(e.sc.url("/_auth/sign-in"))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(!page.contains("provider"), "no provider buttons");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_the_callback_may_reach_any_task_once() {
    let (_redis, url) = redis_server();
    let b_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let f = fed_env(None, |c| {
        c.shared.backend = cognito_sidecar::config::SharedBackend::Redis;
        c.shared.url = url.clone();
    })
    .await;
    let mut config = Config::default();
    config.cognito.user_pool_id = Some(FED_POOL.into());
    config.cognito.client_id = Some(CLIENT.into());
    config.cognito.endpoint_url = Some(closed_url().await);
    config.verify.issuer = Some(f.provider.issuer.clone());
    config.verify.jwks_url = Some(format!("{}/.well-known/jwks.json", f.provider.issuer));
    config.upstream.url = f.echo.url();
    config.server.shutdown_grace = Duration::from_secs(2);
    config.session.enabled = true;
    config.session.managed_login.domain = Some(f.provider.url.clone());
    config.session.managed_login.callback_url = Some(f.callback.clone());
    config.session.managed_login.identity_providers = vec!["Okta".into()];
    config.shared.backend = cognito_sidecar::config::SharedBackend::Redis;
    config.shared.url = url.clone();
    let b = Sidecar::start_on(config, b_listener, true).await;
    // Both tasks must be connected to Redis before the flow starts.
    for _ in 0..200 {
        if f.sc.app.render_metrics().contains("sidecar_shared_state 2")
            && b.app.render_metrics().contains("sidecar_shared_state 2")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Started on A, called back on B (the load balancer's choice): B finds the flow in Redis.
    let mut jar = Jar::default();
    let back = through_provider(
        &f,
        &mut jar,
        "/_auth/federate?provider=Okta&return=/fleet",
        "alice@example.com",
    )
    .await;
    let on_b = back.replacen(&f.sc.addr.to_string(), &b.addr.to_string(), 1);
    assert_ne!(on_b, back);
    let resp = browser()
        .get(&on_b)
        .header("cookie", jar.header(&back))
        .send()
        .await
        .expect("callback on B");
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/fleet");
    let session = set_cookie_value(resp.headers(), "__Host-sidecar-session").expect("session");
    // The same callback on A: the record is gone from Redis (GETDEL).
    let (status, page, none) = callback(&mut jar, &back).await;
    assert_eq!(status, 400);
    assert!(page.contains(EXPIRED));
    assert!(none.is_none());
    // The session made on B serves on A.
    let resp = browser()
        .get(f.sc.url("/fleet"))
        .header("cookie", format!("__Host-sidecar-session={session}"))
        .send()
        .await
        .expect("app on A");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        f.echo.last().header("x-auth-username"),
        Some("Okta_alice@example.com")
    );
}
