//! Browser sessions at the HTTP level, against moto through the real SDK and an echo app:
//! the pages and their headers, the cookie's attributes, sign-in (and new password), what the
//! app receives, CSRF for forms and for cookie-authenticated requests, WebSocket origins,
//! refresh (one at a time), sign-out, rotation, return paths, lifetimes and templates.
//! The real-browser scenarios are in tests/browser/.

mod common;

use std::time::Duration;

use common::browser::*;
use common::*;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;

#[tokio::test]
async fn navigations_go_to_sign_in_and_everything_else_gets_401() {
    let e = env_with(|_| {}).await;
    let resp = browser()
        .get(e.sc.url("/orders/7?tab=a%20b"))
        .headers(nav_headers())
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 302);
    assert_eq!(
        resp.headers()["location"],
        "/_auth/sign-in?return=%2Forders%2F7%3Ftab%3Da%2520b"
    );
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["code"], "sign_in_required");
    // Accept: text/html alone (no Fetch Metadata) is a navigation too; a fetch is not.
    for (headers, want) in [
        (vec![("accept", "text/html,*/*")], 302),
        (
            vec![("accept", "text/html"), ("sec-fetch-mode", "cors")],
            401,
        ),
        (vec![("accept", "application/json")], 401),
    ] {
        let mut req = browser().get(e.sc.url("/orders"));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        assert_eq!(req.send().await.expect("get").status(), want);
    }
    let resp = browser()
        .post(e.sc.url("/orders"))
        .header("accept", "text/html")
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 401);
    assert_eq!(e.echo.count(), 0);
}

#[tokio::test]
async fn the_pages_are_locked_down() {
    let e = env_with(|_| {}).await;
    let resp = browser().get(e.sc.url(SIGN_IN)).send().await.expect("page");
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["cache-control"], "no-store");
    let csp = h["content-security-policy"].to_str().expect("csp");
    for d in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(d), "{csp}");
    }
    assert!(
        !csp.contains("script-src"),
        "no script is allowed at all: {csp}"
    );
    let csrf_cookie = set_cookies(&h)
        .into_iter()
        .find(|c| c.starts_with("__Host-sidecar-csrf="))
        .expect("csrf cookie");
    for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(csrf_cookie.contains(attr), "{csrf_cookie}");
    }
    assert!(!csrf_cookie.contains("Domain"), "{csrf_cookie}");
    let html = resp.text().await.expect("html");
    for needle in [
        r#"<label for="email">"#,
        r#"name="email""#,
        r#"name="password""#,
        "autofocus",
        r#"action="/_auth/sign-in""#,
    ] {
        assert!(html.contains(needle), "{needle}");
    }
    // The stylesheet is served (the CSP allows only 'self').
    let css = browser()
        .get(e.sc.url("/_auth/style.css"))
        .send()
        .await
        .expect("css");
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    // Pages other than these, and other methods, are not pages.
    let resp = browser()
        .delete(e.sc.url(SIGN_IN))
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn sign_in_gives_a_host_only_cookie_and_the_app_sees_the_identity() {
    let e = env_with(|_| {}).await;
    let (csrf, _) = sign_in_page(&e.sc, "/orders?x=1").await;
    let jar = format!("__Host-sidecar-csrf={csrf}");
    let base = [("email", e.user.as_str()), ("return", "/orders?x=1")];
    // A form without the matching CSRF token is refused before Cognito is asked.
    let resp = post_form(
        &e.sc,
        SIGN_IN,
        &jar,
        &[base[0], base[1], ("password", PASSWORD), ("csrf", "forged")],
    )
    .await;
    assert_eq!(resp.status(), 403);
    // A wrong password: the API's message, announced, nothing set.
    let resp = post_form(
        &e.sc,
        SIGN_IN,
        &jar,
        &[
            base[0],
            base[1],
            ("password", "Wrong-Passw0rd!"),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert!(set_cookie_value(resp.headers(), "__Host-sidecar-session").is_none());
    let html = resp.text().await.expect("html");
    assert!(html.contains(r#"role="alert""#) && html.contains("Incorrect email or password"));
    assert!(html.contains(r#"aria-describedby="error""#));
    // The right one.
    let resp = post_form(
        &e.sc,
        SIGN_IN,
        &jar,
        &[base[0], base[1], ("password", PASSWORD), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/orders?x=1");
    let cookie = set_cookies(resp.headers())
        .into_iter()
        .find(|c| c.starts_with("__Host-sidecar-session="))
        .expect("session cookie");
    for attr in [
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
        "Max-Age=43200",
    ] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    let id = set_cookie_value(resp.headers(), "__Host-sidecar-session").expect("id");
    assert_eq!(id.len(), 43, "256 bits, base64url");

    // The app sees the identity, other cookies, and nothing of the sidecar's.
    let resp = get_with(
        &e.sc,
        "/orders?x=1",
        &format!("theme=dark; __Host-sidecar-session={id}; __Host-sidecar-csrf={csrf}; lang=en"),
        nav_headers(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let seen = e.echo.last();
    assert_eq!(seen.path, "/orders?x=1");
    assert!(seen.header("x-auth-sub").is_some_and(|s| !s.is_empty()));
    assert_eq!(seen.header("x-auth-groups"), Some("staff"));
    assert_eq!(seen.header("cookie"), Some("theme=dark; lang=en"));
    assert_eq!(seen.header("authorization"), None);
    // A forged identity header is still stripped for a session.
    let mut forged = nav_headers();
    forged.insert("x-auth-groups", HeaderValue::from_static("admins"));
    get_with(&e.sc, "/x", &format!("__Host-sidecar-session={id}"), forged).await;
    assert_eq!(e.echo.last().header("x-auth-groups"), Some("staff"));
    // The only-cookie Cookie header disappears entirely.
    assert_eq!(e.echo.last().header("cookie"), None);
    // A bearer token still works beside sessions, and wins over the cookie.
    let (s, v) = login(&e.sc, &e.user, PASSWORD).await;
    assert_eq!(s, 200, "{v}");
    let resp = browser()
        .get(e.sc.url("/x"))
        .bearer_auth(v["access_token"].as_str().expect("token"))
        .header("cookie", "__Host-sidecar-session=not-a-valid-id")
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn the_access_token_reaches_the_app_only_when_configured() {
    let e = env_with(|c| c.session.forward_access_token = true).await;
    let id = sign_in(&e.sc, &e.user, PASSWORD, "/").await;
    get_with(
        &e.sc,
        "/x",
        &format!("__Host-sidecar-session={id}"),
        nav_headers(),
    )
    .await;
    let auth = e.echo.last().header("authorization").map(str::to_owned);
    assert!(auth.is_some_and(|a| a.starts_with("Bearer ey")));
}

#[tokio::test]
async fn cookie_requests_follow_the_csrf_rules() {
    let e = env_with(|c| c.session.allowed_origins = vec!["https://admin.example".into()]).await;
    let id = sign_in(&e.sc, &e.user, PASSWORD, "/").await;
    let cookie = format!("__Host-sidecar-session={id}");
    let host = e.sc.addr.to_string();
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, u16);
    let cases: Vec<Case<'_>> = vec![
        ("POST", vec![("sec-fetch-site", "cross-site".into())], 403),
        ("POST", vec![("sec-fetch-site", "same-site".into())], 403),
        ("DELETE", vec![("sec-fetch-site", "cross-site".into())], 403),
        ("POST", vec![("origin", "https://evil.example".into())], 403),
        ("POST", vec![], 403),
        ("POST", vec![("sec-fetch-site", "same-origin".into())], 200),
        ("PUT", vec![("origin", format!("http://{host}"))], 200),
        (
            "POST",
            vec![("origin", "https://admin.example".into())],
            200,
        ),
        (
            "POST",
            vec![("referer", format!("http://{host}/page"))],
            200,
        ),
        ("GET", vec![("sec-fetch-site", "cross-site".into())], 200),
    ];
    for (method, headers, want) in cases {
        let before = e.echo.count();
        let mut req = browser()
            .request(method.parse().expect("method"), e.sc.url("/items"))
            .header("cookie", &cookie);
        for (k, v) in &headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status(), want, "{method} {headers:?}");
        if want == 403 {
            let v: Value = resp.json().await.expect("json");
            assert_eq!(v["code"], "csrf_rejected");
            assert_eq!(e.echo.count(), before, "a refused request reached the app");
        }
    }
    // Bearer requests are not affected.
    let (_, v) = login(&e.sc, &e.user, PASSWORD).await;
    let resp = browser()
        .post(e.sc.url("/items"))
        .bearer_auth(v["access_token"].as_str().expect("token"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 200);
    // A WebSocket handshake with the cookie needs an allowed Origin.
    let ws = |origin: Option<&str>| {
        let mut req = browser()
            .get(e.sc.url("/ws"))
            .header("cookie", &cookie)
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    for origin in [Some("https://evil.example"), None] {
        let resp = ws(origin).await.expect("ws");
        assert_eq!(resp.status(), 403, "{origin:?}");
    }
    let m = e.sc.app.render_metrics();
    assert!(
        metric(&m, "sidecar_csrf_refused_total{kind=\"websocket\"} ") >= 2.0,
        "{m}"
    );
    assert!(
        metric(&m, "sidecar_csrf_refused_total{kind=\"request\"} ") >= 5.0,
        "{m}"
    );
}

#[tokio::test]
async fn a_temporary_password_goes_through_the_new_password_page() {
    let e = env_with(|_| {}).await;
    let newbie = e
        .pool
        .new_user(&format!("newbie-{}@example.com", uuid_like()))
        .await;
    let (csrf, _) = sign_in_page(&e.sc, "/welcome").await;
    let jar = format!("__Host-sidecar-csrf={csrf}");
    let resp = post_form(
        &e.sc,
        SIGN_IN,
        &jar,
        &[
            ("csrf", &csrf),
            ("email", &newbie),
            ("password", TEMP_PASSWORD),
            ("return", "/welcome"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.expect("html");
    assert!(html.contains("Choose a new password"));
    let session = field(&html, "session").expect("challenge session");
    assert_eq!(field(&html, "email").as_deref(), Some(newbie.as_str()));
    assert_eq!(field(&html, "return").as_deref(), Some("/welcome"));
    let submit = |pw: &'static str| {
        let (jar, csrf, session, newbie) =
            (jar.clone(), csrf.clone(), session.clone(), newbie.clone());
        let sc = &e.sc;
        async move {
            post_form(
                sc,
                "/_auth/new-password",
                &jar,
                &[
                    ("csrf", &csrf),
                    ("email", &newbie),
                    ("session", &session),
                    ("new_password", pw),
                    ("confirm_password", pw),
                    ("return", "/welcome"),
                ],
            )
            .await
        }
    };
    // A weak password: the page again, with the API's message.
    let resp = submit("weak").await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.expect("html").contains(r#"role="alert""#));
    let resp = submit("New-Passw0rd-Chosen!").await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/welcome");
    let id = set_cookie_value(resp.headers(), "__Host-sidecar-session").expect("cookie");
    let resp = get_with(
        &e.sc,
        "/welcome",
        &format!("__Host-sidecar-session={id}"),
        nav_headers(),
    )
    .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn sign_out_ends_the_session_and_revokes_its_tokens() {
    let e = env_with(|c| c.session.after_sign_out = "/bye".into()).await;
    let id = sign_in(&e.sc, &e.user, PASSWORD, "/").await;
    let cookie = format!("__Host-sidecar-session={id}");
    assert_eq!(
        get_with(&e.sc, "/x", &cookie, nav_headers()).await.status(),
        200
    );
    let access = e.echo.last().header("x-auth-sub").map(str::to_owned);
    assert!(access.is_some());
    // The sign-out page's form, then the POST.
    let resp = get_with(&e.sc, "/_auth/sign-out", &cookie, HeaderMap::new()).await;
    let csrf = set_cookie_value(resp.headers(), "__Host-sidecar-csrf").expect("csrf");
    let html = resp.text().await.expect("html");
    assert_eq!(field(&html, "csrf").as_deref(), Some(csrf.as_str()));
    // Without the token: refused, still signed in.
    let resp = post_form(&e.sc, "/_auth/sign-out", &cookie, &[("csrf", &csrf)]).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(
        get_with(&e.sc, "/x", &cookie, nav_headers()).await.status(),
        200
    );
    let resp = post_form(
        &e.sc,
        "/_auth/sign-out",
        &format!("{cookie}; __Host-sidecar-csrf={csrf}"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/bye");
    let cleared = set_cookies(resp.headers())
        .into_iter()
        .find(|c| c.starts_with("__Host-sidecar-session=;"))
        .expect("cleared cookie");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    // The old cookie no longer works, and the answer clears it.
    let resp = get_with(&e.sc, "/x", &cookie, nav_headers()).await;
    assert_eq!(resp.status(), 302);
    assert!(set_cookies(resp.headers())
        .iter()
        .any(|c| c.starts_with("__Host-sidecar-session=;")));
    let resp = get_with(&e.sc, "/x", &cookie, HeaderMap::new()).await;
    assert_eq!(resp.status(), 401);
    let m = e.sc.app.render_metrics();
    assert_eq!(metric(&m, "sidecar_session_sign_outs_total "), 1.0, "{m}");
}

#[tokio::test]
async fn the_session_id_rotates_at_every_sign_in() {
    let e = env_with(|_| {}).await;
    let first = sign_in(&e.sc, &e.user, PASSWORD, "/").await;
    // Sign in again carrying the first cookie (a fixation attempt would plant it).
    let (csrf, _) = sign_in_page(&e.sc, "/").await;
    let resp = post_form(
        &e.sc,
        SIGN_IN,
        &format!("__Host-sidecar-session={first}; __Host-sidecar-csrf={csrf}"),
        &[
            ("csrf", &csrf),
            ("email", &e.user),
            ("password", PASSWORD),
            ("return", "/"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 303);
    let second = set_cookie_value(resp.headers(), "__Host-sidecar-session").expect("cookie");
    assert_ne!(first, second);
    let old = get_with(
        &e.sc,
        "/x",
        &format!("__Host-sidecar-session={first}"),
        HeaderMap::new(),
    )
    .await;
    assert_eq!(old.status(), 401);
    let new = get_with(
        &e.sc,
        "/x",
        &format!("__Host-sidecar-session={second}"),
        HeaderMap::new(),
    )
    .await;
    assert_eq!(new.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_refreshed_once_however_many_requests_ask() {
    // moto's tokens live an hour: with this margin, one that is 3 s old needs a refresh.
    let e = env_with(|c| c.session.refresh_margin = Duration::from_secs(3597)).await;
    let id = sign_in(&e.sc, &e.user, PASSWORD, "/").await;
    let cookie = format!("__Host-sidecar-session={id}");
    assert_eq!(
        get_with(&e.sc, "/x", &cookie, HeaderMap::new())
            .await
            .status(),
        200
    );
    let before = metric(
        &e.sc.app.render_metrics(),
        "sidecar_session_refreshes_total{outcome=\"ok\"} ",
    );
    assert_eq!(before, 0.0);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut all = Vec::new();
    for _ in 0..10 {
        let c = cookie.clone();
        let url = e.sc.url("/x");
        all.push(tokio::spawn(async move {
            browser()
                .get(url)
                .header("cookie", c)
                .send()
                .await
                .expect("get")
                .status()
                .as_u16()
        }));
    }
    for h in all {
        assert_eq!(h.await.expect("join"), 200);
    }
    let after = metric(
        &e.sc.app.render_metrics(),
        "sidecar_session_refreshes_total{outcome=\"ok\"} ",
    );
    assert_eq!(after, 1.0, "one refresh for ten concurrent requests");
}

#[tokio::test]
async fn return_paths_never_leave_the_site() {
    let e = env_with(|_| {}).await;
    for evil in [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "/%2F%2Fevil.example",
        "javascript:alert(1)",
    ] {
        let (_, html) = sign_in_page(&e.sc, evil).await;
        assert_eq!(field(&html, "return").as_deref(), Some("/"), "{evil}");
    }
    // Even when posted directly.
    let (csrf, _) = sign_in_page(&e.sc, "/").await;
    let resp = post_form(
        &e.sc,
        SIGN_IN,
        &format!("__Host-sidecar-csrf={csrf}"),
        &[
            ("csrf", &csrf),
            ("email", &e.user),
            ("password", PASSWORD),
            ("return", "//evil.example"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/");
}

#[tokio::test]
async fn sessions_end_at_their_absolute_lifetime() {
    let e = env_with(|c| c.session.absolute_timeout = Duration::from_secs(2)).await;
    let id = sign_in(&e.sc, &e.user, PASSWORD, "/").await;
    let cookie = format!("__Host-sidecar-session={id}");
    assert_eq!(
        get_with(&e.sc, "/x", &cookie, HeaderMap::new())
            .await
            .status(),
        200
    );
    e.sc.clock.advance(Duration::from_secs(3));
    assert_eq!(
        get_with(&e.sc, "/x", &cookie, HeaderMap::new())
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn sessions_end_after_their_idle_timeout() {
    let e = env_with(|c| c.session.idle_timeout = Duration::from_secs(2)).await;
    let id = sign_in(&e.sc, &e.user, PASSWORD, "/").await;
    let cookie = format!("__Host-sidecar-session={id}");
    // Requests within the idle timeout keep it alive ...
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(
            get_with(&e.sc, "/x", &cookie, HeaderMap::new())
                .await
                .status(),
            200
        );
    }
    // ... a pause longer than it ends it.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(
        get_with(&e.sc, "/x", &cookie, HeaderMap::new())
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn operators_can_replace_the_templates_title_and_logo() {
    let dir = std::env::temp_dir().join(format!("cs-templates-{}", uuid_like()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("sign-in.html"),
        "<html><title>{{title}}</title>{{logo}}<main class=custom>{{error}}\
         <form method=post action=\"{{prefix}}/sign-in\">\
         <input type=hidden name=\"csrf\" value=\"{{csrf}}\">\
         <input type=hidden name=\"return\" value=\"{{return}}\"></form></main></html>",
    )
    .expect("template");
    let d = dir.to_string_lossy().into_owned();
    let e = env_with(move |c| {
        c.session.templates_dir = Some(d);
        c.session.title = "Acme <Portal>".into();
        c.session.logo_url = Some("https://cdn.example/logo.png".into());
    })
    .await;
    let (_, html) = sign_in_page(&e.sc, "/a?b=\"><script>").await;
    assert!(html.contains("<main class=custom>"));
    assert!(
        html.contains("<title>Acme &lt;Portal&gt;</title>"),
        "{html}"
    );
    assert!(html.contains(r#"<img class="logo" src="https://cdn.example/logo.png" alt="">"#));
    assert!(!html.contains("<script>"), "{html}");
    // The built-in sign-out page is used where no file replaces it.
    let resp = browser()
        .get(e.sc.url("/_auth/sign-out"))
        .send()
        .await
        .expect("page");
    assert!(resp.text().await.expect("html").contains("Sign out"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_any_task_serves_a_session_and_a_sign_out_ends_it_everywhere() {
    let (_redis, url) = redis_server();
    let pool = Pool::create(false, false).await;
    let user = pool
        .confirmed_user(&format!("fleet-browser-{}@example.com", uuid_like()), &[])
        .await;
    let echo = Echo::start().await;
    let config = || {
        let mut c = pool.config(&echo.url());
        c.session.enabled = true;
        c.shared.backend = cognito_sidecar::config::SharedBackend::Redis;
        c.shared.url = url.clone();
        c
    };
    let a = Sidecar::start(config()).await;
    let b = Sidecar::start(config()).await;
    let id = sign_in(&a, &user, PASSWORD, "/").await;
    let cookie = format!("__Host-sidecar-session={id}");
    // B never saw the sign-in: it reads the session from Redis.
    assert_eq!(
        get_with(&b, "/x", &cookie, HeaderMap::new()).await.status(),
        200
    );
    assert_eq!(
        get_with(&a, "/x", &cookie, HeaderMap::new()).await.status(),
        200
    );
    // Sign out on B; A (which holds a local copy) refuses the cookie at once.
    let resp = get_with(&b, "/_auth/sign-out", &cookie, HeaderMap::new()).await;
    let csrf = set_cookie_value(resp.headers(), "__Host-sidecar-csrf").expect("csrf");
    let resp = post_form(
        &b,
        "/_auth/sign-out",
        &format!("{cookie}; __Host-sidecar-csrf={csrf}"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(resp.status(), 303);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let status = get_with(&a, "/x", &cookie, HeaderMap::new()).await.status();
        if status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "A still serves the signed-out session"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        get_with(&b, "/x", &cookie, HeaderMap::new()).await.status(),
        401
    );
    // The session is gone from Redis too: a third task started now refuses it.
    let c = Sidecar::start(config()).await;
    assert_eq!(
        get_with(&c, "/x", &cookie, HeaderMap::new()).await.status(),
        401
    );
}

#[tokio::test]
async fn an_authenticator_code_completes_the_sign_in() {
    use aws_sdk_cognitoidentityprovider::types::{
        SoftwareTokenMfaConfigType, SoftwareTokenMfaSettingsType, UserPoolMfaType,
    };
    let e = env_with(|_| {}).await;
    e.pool
        .admin
        .set_user_pool_mfa_config()
        .user_pool_id(&e.pool.pool_id)
        .software_token_mfa_configuration(
            SoftwareTokenMfaConfigType::builder().enabled(true).build(),
        )
        .mfa_configuration(UserPoolMfaType::Optional)
        .send()
        .await
        .expect("pool mfa");
    // Enroll TOTP for the user (through moto directly) and prefer it.
    let (s, v) = login(&e.sc, &e.user, PASSWORD).await;
    assert_eq!(s, 200, "{v}");
    let access = v["access_token"].as_str().expect("token").to_string();
    let secret = e
        .pool
        .admin
        .associate_software_token()
        .access_token(&access)
        .send()
        .await
        .expect("associate")
        .secret_code()
        .expect("secret")
        .to_string();
    e.pool
        .admin
        .verify_software_token()
        .access_token(&access)
        .user_code(totp_now(&secret).await)
        .send()
        .await
        .expect("verify");
    e.pool
        .admin
        .admin_set_user_mfa_preference()
        .user_pool_id(&e.pool.pool_id)
        .username(&e.user)
        .software_token_mfa_settings(
            SoftwareTokenMfaSettingsType::builder()
                .enabled(true)
                .preferred_mfa(true)
                .build(),
        )
        .send()
        .await
        .expect("preference");

    // The password page leads to the code page.
    let (csrf, _) = sign_in_page(&e.sc, "/after").await;
    let jar = format!("__Host-sidecar-csrf={csrf}");
    let resp = post_form(
        &e.sc,
        SIGN_IN,
        &jar,
        &[
            ("csrf", &csrf),
            ("email", &e.user),
            ("password", PASSWORD),
            ("return", "/after"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(set_cookie_value(resp.headers(), "__Host-sidecar-session").is_none());
    let html = resp.text().await.expect("html");
    assert!(html.contains("authenticator app"), "{html}");
    assert_eq!(
        field(&html, "challenge").as_deref(),
        Some("SOFTWARE_TOKEN_MFA")
    );
    let session = field(&html, "session").expect("session");
    let username = field(&html, "username").expect("username");
    let answer = |code: String| {
        let (jar, csrf, session, username, user) = (
            jar.clone(),
            csrf.clone(),
            session.clone(),
            username.clone(),
            e.user.clone(),
        );
        let sc = &e.sc;
        async move {
            post_form(
                sc,
                "/_auth/mfa",
                &jar,
                &[
                    ("csrf", &csrf),
                    ("email", &user),
                    ("username", &username),
                    ("challenge", "SOFTWARE_TOKEN_MFA"),
                    ("session", &session),
                    ("code", &code),
                    ("return", "/after"),
                ],
            )
            .await
        }
    };
    // A wrong code: the code page again, announced (moto checks codes: deploy/local/moto.sh).
    let resp = answer("000000".into()).await;
    assert_eq!(resp.status(), 400);
    let html = resp.text().await.expect("html");
    assert!(
        html.contains(r#"role="alert""#) && html.contains(r#"name="code""#),
        "{html}"
    );
    let resp = answer(totp_now(&secret).await).await;
    assert_eq!(resp.status(), 303, "{:?}", resp.text().await);
    assert_eq!(resp.headers()["location"], "/after");
    let id = set_cookie_value(resp.headers(), "__Host-sidecar-session").expect("cookie");
    let resp = get_with(
        &e.sc,
        "/after",
        &format!("__Host-sidecar-session={id}"),
        nav_headers(),
    )
    .await;
    assert_eq!(resp.status(), 200);
}
