//! The auth API against moto through the real AWS SDK: login, first-login new password,
//! refresh (without and with a client secret, by body username and by bearer token),
//! logout, and each error class with its exact status and code.

mod common;

use common::*;
use serde_json::{json, Value};

async fn post(sc: &Sidecar, path: &str, body: Value) -> (u16, Value) {
    status_json(
        client()
            .post(sc.url(path))
            .json(&body)
            .send()
            .await
            .expect("request"),
    )
    .await
}

fn assert_tokens(v: &Value) {
    for k in ["access_token", "id_token"] {
        assert!(
            v[k].as_str().is_some_and(|t| t.split('.').count() == 3),
            "{k} in {v}"
        );
    }
    assert_eq!(v["token_type"], "Bearer");
    assert!(v["expires_in"].as_i64().is_some_and(|e| e > 0));
    assert_eq!(v["challenge"], Value::Null);
    assert_eq!(v["session"], Value::Null);
}

#[tokio::test]
async fn login_returns_the_seed_fields_and_the_username() {
    let pool = Pool::create(false, false).await;
    let user = pool.confirmed_user("alice@example.com", &[]).await;
    let echo = Echo::start().await;
    let sc = Sidecar::start(pool.config(&echo.url())).await;

    let (status, v) = login(&sc, &user, PASSWORD).await;
    assert_eq!(status, 200, "{v}");
    assert_tokens(&v);
    assert!(v["refresh_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(v["username"], user);
    let keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    for k in [
        "access_token",
        "id_token",
        "refresh_token",
        "expires_in",
        "token_type",
        "challenge",
        "session",
        "username",
    ] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }

    // The token it returned passes the gate, with moto's real JWKS.
    let token = v["access_token"].as_str().expect("token");
    let resp = client()
        .get(sc.url("/app"))
        .bearer_auth(token)
        .send()
        .await
        .expect("proxied");
    assert_eq!(resp.status(), 200);
    assert_eq!(echo.last().header("x-auth-username"), Some(user.as_str()));
}

#[tokio::test]
async fn user_password_flow_logs_in_without_iam() {
    let pool = Pool::create(false, false).await;
    let user = pool.confirmed_user("flow@example.com", &[]).await;
    let mut c = pool.config(&closed_url().await);
    c.cognito.auth_flow = cognito_sidecar::config::AuthFlow::UserPassword;
    let sc = Sidecar::start(c).await;
    let (status, v) = login(&sc, &user, PASSWORD).await;
    assert_eq!(status, 200, "{v}");
    assert_tokens(&v);
}

#[tokio::test]
async fn unknown_user_and_wrong_password_get_the_same_answer() {
    let pool = Pool::create(false, false).await;
    let user = pool.confirmed_user("bob@example.com", &[]).await;
    let sc = Sidecar::start(pool.config(&closed_url().await)).await;
    let wrong = login(&sc, &user, "Wrong-Passw0rd!").await;
    let unknown = login(&sc, "nobody@example.com", PASSWORD).await;
    assert_eq!(wrong.0, 401);
    assert_eq!(wrong, unknown);
    assert_eq!(wrong.1["code"], "invalid_credentials");
    assert!(!wrong.1.to_string().contains("bob"), "{}", wrong.1);
}

#[tokio::test]
async fn first_login_new_password_flow() {
    let pool = Pool::create(false, false).await;
    let user = pool.new_user("carol@example.com").await;
    let sc = Sidecar::start(pool.config(&closed_url().await)).await;

    let (status, v) = login(&sc, &user, TEMP_PASSWORD).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["challenge"], "NEW_PASSWORD_REQUIRED");
    assert_eq!(v["access_token"], Value::Null);
    let session = v["session"].as_str().expect("session").to_string();

    // A weak password: 400 weak_password.
    let (status, weak) = post(
        &sc,
        "/api/user/new-password",
        json!({"email": user, "new_password": "short", "session": session}),
    )
    .await;
    assert_eq!(
        (status, weak["code"].as_str()),
        (400, Some("weak_password")),
        "{weak}"
    );

    // A bogus session: 401 invalid_session.
    let (status, bad) = post(
        &sc,
        "/api/user/new-password",
        json!({"email": user, "new_password": "New-Passw0rd-2!", "session": "bogus"}),
    )
    .await;
    assert_eq!(
        (status, bad["code"].as_str()),
        (401, Some("invalid_session")),
        "{bad}"
    );

    // moto's sessions are single use, so a fresh one for the real answer.
    let (_, v) = login(&sc, &user, TEMP_PASSWORD).await;
    let session = v["session"].as_str().expect("session").to_string();
    let (status, tokens) = post(
        &sc,
        "/api/user/new-password",
        json!({"email": user, "new_password": "New-Passw0rd-2!", "session": session}),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert_tokens(&tokens);

    // The session is used up now.
    let (status, used) = post(
        &sc,
        "/api/user/new-password",
        json!({"email": user, "new_password": "New-Passw0rd-3!", "session": session}),
    )
    .await;
    assert_eq!(
        (status, used["code"].as_str()),
        (401, Some("invalid_session")),
        "{used}"
    );

    // And the new password logs in.
    let (status, v) = login(&sc, &user, "New-Passw0rd-2!").await;
    assert_eq!(status, 200, "{v}");
    assert_tokens(&v);
}

#[tokio::test]
async fn refresh_without_secret_then_logout_revokes_it() {
    let pool = Pool::create(false, false).await;
    let user = pool.confirmed_user("dave@example.com", &[]).await;
    let echo = Echo::start().await;
    let sc = Sidecar::start(pool.config(&echo.url())).await;
    let (_, v) = login(&sc, &user, PASSWORD).await;
    let refresh = v["refresh_token"].as_str().expect("refresh").to_string();
    let access = v["access_token"].as_str().expect("access").to_string();

    let (status, r) = post(
        &sc,
        "/api/user/refresh",
        json!({ "refresh_token": refresh }),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_tokens(&r);
    assert_eq!(r["username"], user);

    // Logout needs the bearer token.
    let resp = client()
        .post(sc.url("/api/user/logout"))
        .send()
        .await
        .expect("logout");
    let (status, e) = status_json(resp).await;
    assert_eq!((status, e["code"].as_str()), (401, Some("token_missing")));
    let resp = client()
        .post(sc.url("/api/user/logout"))
        .bearer_auth("not.a.jwt")
        .send()
        .await
        .expect("logout");
    let (status, e) = status_json(resp).await;
    assert_eq!(status, 401, "{e}");

    let resp = client()
        .post(sc.url("/api/user/logout"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("logout");
    let (status, ok) = status_json(resp).await;
    assert_eq!((status, ok), (200, json!({ "ok": true })));

    // The refresh token is revoked in Cognito ...
    let (status, e) = post(
        &sc,
        "/api/user/refresh",
        json!({ "refresh_token": refresh }),
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (401, Some("invalid_refresh_token")),
        "{e}"
    );
    // ... and the access token at the gate, while a fresh login works.
    let before = echo.count();
    let resp = client()
        .get(sc.url("/app"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("gate");
    let (status, e) = status_json(resp).await;
    assert_eq!((status, e["code"].as_str()), (401, Some("token_revoked")));
    assert_eq!(echo.count(), before);
    let (_, fresh) = login(&sc, &user, PASSWORD).await;
    let resp = client()
        .get(sc.url("/app"))
        .bearer_auth(fresh["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("gate");
    assert_eq!(resp.status(), 200);
}

/// With `verify.token_use = ["id"]` the gate refuses access tokens, but logout still takes
/// one (GlobalSignOut needs it) and refuses an id token.
#[tokio::test]
async fn logout_takes_an_access_token_when_the_gate_accepts_only_id_tokens() {
    let pool = Pool::create(false, false).await;
    let user = pool.confirmed_user("idonly@example.com", &[]).await;
    let echo = Echo::start().await;
    let mut c = pool.config(&echo.url());
    c.verify.token_use = vec!["id".into()];
    let sc = Sidecar::start(c).await;
    let (status, v) = login(&sc, &user, PASSWORD).await;
    assert_eq!(status, 200, "{v}");
    let access = v["access_token"].as_str().expect("access").to_string();
    let id = v["id_token"].as_str().expect("id").to_string();
    let refresh = v["refresh_token"].as_str().expect("refresh").to_string();
    let get = |token: &str| client().get(sc.url("/app")).bearer_auth(token).send();

    // The configuration is in force: the gate takes the id token, not the access token.
    assert_eq!(get(&id).await.expect("gate").status(), 200);
    let (status, e) = status_json(get(&access).await.expect("gate")).await;
    assert_eq!((status, e["code"].as_str()), (401, Some("wrong_token_use")));

    // Logout refuses the id token (GlobalSignOut could not use it) ...
    let logout = |token: &str| {
        client()
            .post(sc.url("/api/user/logout"))
            .bearer_auth(token)
            .send()
    };
    let (status, e) = status_json(logout(&id).await.expect("logout")).await;
    assert_eq!((status, e["code"].as_str()), (401, Some("wrong_token_use")));
    // ... and takes the access token.
    let (status, ok) = status_json(logout(&access).await.expect("logout")).await;
    assert_eq!((status, ok), (200, json!({ "ok": true })));

    // The refresh token is revoked in Cognito, and the session's id token at the gate.
    let (status, e) = post(
        &sc,
        "/api/user/refresh",
        json!({ "refresh_token": refresh }),
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (401, Some("invalid_refresh_token")),
        "{e}"
    );
    let (status, e) = status_json(get(&id).await.expect("gate")).await;
    assert_eq!((status, e["code"].as_str()), (401, Some("token_revoked")));
}

#[tokio::test]
async fn refresh_with_secret_needs_the_username() {
    let pool = Pool::create(true, false).await;
    assert!(pool.client_secret.is_some());
    let user = pool.confirmed_user("erin@example.com", &[]).await;
    let sc = Sidecar::start(pool.config(&closed_url().await)).await;
    let (status, v) = login(&sc, &user, PASSWORD).await;
    assert_eq!(status, 200, "{v}");
    let refresh = v["refresh_token"].as_str().expect("refresh").to_string();
    let access = v["access_token"].as_str().expect("access").to_string();
    let username = v["username"].as_str().expect("username").to_string();

    // No username and no bearer token: 400 naming the field.
    let (status, e) = post(
        &sc,
        "/api/user/refresh",
        json!({ "refresh_token": refresh }),
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("missing_field")),
        "{e}"
    );
    assert!(e["message"].as_str().expect("message").contains("username"));

    // By body field.
    let (status, r) = post(
        &sc,
        "/api/user/refresh",
        json!({ "refresh_token": refresh, "username": username }),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_tokens(&r);

    // By the access token in Authorization.
    let resp = client()
        .post(sc.url("/api/user/refresh"))
        .bearer_auth(&access)
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .expect("refresh");
    let (status, r) = status_json(resp).await;
    assert_eq!(status, 200, "{r}");
    assert_tokens(&r);

    // A wrong username makes the SECRET_HASH wrong: 401.
    let (status, e) = post(
        &sc,
        "/api/user/refresh",
        json!({ "refresh_token": refresh, "username": "mallory" }),
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (401, Some("invalid_refresh_token")),
        "{e}"
    );

    // A bearer token that does not verify is refused, not trusted for its username.
    let forged = valid_token("forged");
    let resp = client()
        .post(sc.url("/api/user/refresh"))
        .bearer_auth(forged)
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .expect("refresh");
    let (status, e) = status_json(resp).await;
    assert_eq!(status, 401, "{e}");
}

/// The username for a refresh with a client secret comes from the access or the id token,
/// whatever `verify.token_use` lets through the gate.
#[tokio::test]
async fn refresh_with_secret_takes_either_token_for_the_username() {
    let pool = Pool::create(true, false).await;
    let user = pool.confirmed_user("frank@example.com", &[]).await;
    for uses in [vec!["id".to_string()], vec!["access".to_string()]] {
        let mut c = pool.config(&closed_url().await);
        c.verify.token_use = uses.clone();
        let sc = Sidecar::start(c).await;
        let (status, v) = login(&sc, &user, PASSWORD).await;
        assert_eq!(status, 200, "{v}");
        let refresh = v["refresh_token"].as_str().expect("refresh").to_string();
        for kind in ["access_token", "id_token"] {
            let token = v[kind].as_str().expect("token").to_string();
            let resp = client()
                .post(sc.url("/api/user/refresh"))
                .bearer_auth(&token)
                .json(&json!({ "refresh_token": refresh }))
                .send()
                .await
                .expect("refresh");
            let (status, r) = status_json(resp).await;
            assert_eq!(status, 200, "{uses:?} {kind}: {r}");
            assert_tokens(&r);
        }
    }
}

#[tokio::test]
async fn email_sign_in_pool_with_secret() {
    let pool = Pool::create(true, true).await;
    let email = pool.confirmed_user("frank@example.com", &[]).await;
    let sc = Sidecar::start(pool.config(&closed_url().await)).await;
    let (status, v) = login(&sc, &email, PASSWORD).await;
    assert_eq!(status, 200, "{v}");
    // In an email pool the canonical username is the sub, not the email.
    let username = v["username"].as_str().expect("username");
    assert_ne!(username, email);
    // moto hashes the login name for refresh (real Cognito wants the canonical username;
    // README explains): the email works here.
    let (status, r) = post(
        &sc,
        "/api/user/refresh",
        json!({ "refresh_token": v["refresh_token"], "username": email }),
    )
    .await;
    assert_eq!(status, 200, "{r}");
}

#[tokio::test]
async fn request_errors_have_exact_status_and_code() {
    let pool = Pool::create(false, false).await;
    let sc = Sidecar::start(pool.config(&closed_url().await)).await;
    let http = client();
    let url = sc.url("/api/user/login");

    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            http.post(&url)
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "invalid_json",
        ),
        (
            http.post(&url)
                .header("content-type", "application/json")
                .body("[1,2]"),
            400,
            "invalid_json",
        ),
        (
            http.post(&url).json(&json!({"password": "x"})),
            400,
            "missing_field",
        ),
        (
            http.post(&url).json(&json!({"email": "", "password": "x"})),
            400,
            "missing_field",
        ),
        (
            http.post(&url).json(&json!({"email": 5, "password": "x"})),
            400,
            "invalid_field",
        ),
        (
            http.post(&url)
                .header("content-type", "text/plain")
                .body("{}"),
            415,
            "unsupported_media_type",
        ),
        (http.post(&url).body("{}"), 415, "unsupported_media_type"),
        (
            http.post(&url)
                .header("content-type", "application/json")
                .body(format!("{{\"email\": \"{}\"}}", "a".repeat(20_000))),
            413,
            "payload_too_large",
        ),
        (http.get(&url), 405, "method_not_allowed"),
        (
            http.put(sc.url("/api/user/refresh")),
            405,
            "method_not_allowed",
        ),
        (
            http.post(sc.url("/api/user/new-password"))
                .json(&json!({"email": "a", "new_password": "b"})),
            400,
            "missing_field",
        ),
        (
            http.post(sc.url("/api/user/refresh")).json(&json!({})),
            400,
            "missing_field",
        ),
        (
            http.post(sc.url("/api/user/refresh"))
                .json(&json!({"refresh_token": "garbage"})),
            401,
            "invalid_refresh_token",
        ),
    ];
    for (i, (req, status, code)) in cases.into_iter().enumerate() {
        let resp = req.send().await.expect("request");
        let allow = resp.headers().get("allow").cloned();
        let ct = resp.headers().get("content-type").cloned();
        let (got, v) = status_json(resp).await;
        assert_eq!(
            (got, v["code"].as_str()),
            (status, Some(code)),
            "case {i}: {v}"
        );
        assert_eq!(
            ct.as_ref().map(|c| c.to_str().expect("ascii")),
            Some("application/json")
        );
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "case {i}"
        );
        if status == 405 {
            assert_eq!(
                allow.as_ref().map(|a| a.to_str().expect("ascii")),
                Some("POST")
            );
        }
    }
}

#[tokio::test]
async fn rate_limits_per_username_and_per_address() {
    let pool = Pool::create(false, false).await;
    let user = pool.confirmed_user("rl@example.com", &[]).await;
    let mut c = pool.config(&closed_url().await);
    c.rate_limit.username_per_minute = 1;
    c.rate_limit.username_burst = 2;
    c.rate_limit.address_per_minute = 1;
    c.rate_limit.address_burst = 6;
    c.server.trusted_proxies = vec!["127.0.0.0/8".parse().expect("net")];
    let sc = Sidecar::start(c).await;

    // Per username: two attempts, then 429 with Retry-After, even with the right password.
    assert_eq!(login(&sc, &user, "Wrong-1!").await.0, 401);
    assert_eq!(login(&sc, &user, "Wrong-2!").await.0, 401);
    let resp = client()
        .post(sc.url("/api/user/login"))
        .json(&json!({"email": user.to_uppercase(), "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    let retry = resp.headers().get("retry-after").cloned();
    let (status, v) = status_json(resp).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (429, Some("rate_limited")),
        "{v}"
    );
    let secs: u64 = retry
        .expect("Retry-After")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&secs), "{secs}");
    // Another user is not affected.
    assert_eq!(login(&sc, "other@example.com", "x").await.0, 401);

    // Per address: behind a trusted proxy the X-Forwarded-For client counts, each with its
    // own budget (distinct usernames, so only the address limit applies).
    let from = |ip: &str| {
        client()
            .post(sc.url("/api/user/login"))
            .header("x-forwarded-for", ip)
            .json(&json!({"email": format!("{}@example.com", uuid_like()), "password": "x"}))
    };
    for _ in 0..6 {
        let (s, _) = status_json(from("198.51.100.7").send().await.expect("login")).await;
        assert_eq!(s, 401);
    }
    let (s, v) = status_json(from("198.51.100.7").send().await.expect("login")).await;
    assert_eq!((s, v["code"].as_str()), (429, Some("rate_limited")), "{v}");
    let (s, _) = status_json(from("198.51.100.8").send().await.expect("login")).await;
    assert_eq!(s, 401, "another client address has its own budget");
}
