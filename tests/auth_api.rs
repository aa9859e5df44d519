//! The auth API against moto through the real AWS SDK: login, first-login new password,
//! refresh (without and with a client secret, by body username and by bearer token),
//! logout, and each error class with its exact status and code.

mod common;

use cognito_sidecar::config::Compatibility;
use common::*;
use serde_json::{json, Value};

async fn post(sc: &Sidecar, path: &str, body: Value) -> (u16, Value) {
    post_json(sc, path, body).await
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
    // docs/src/iam.md explains): the email works here.
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

// === api.compatibility = "seed": the Django endpoints' statuses ===

/// A sidecar for `pool` in the mode (`user_password` flow: moto tells an unconfirmed user only
/// there).
async fn sidecar_in(pool: &Pool, mode: Compatibility) -> Sidecar {
    let mut c = pool.config(&closed_url().await);
    c.cognito.auth_flow = cognito_sidecar::config::AuthFlow::UserPassword;
    c.api.compatibility = mode;
    Sidecar::start(c).await
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    status_json(req.send().await.expect("request")).await
}

/// Every failure of the seed's four endpoints, and a few of the newer endpoints', as one
/// sidecar answers them: (case, status, body). `user` is confirmed with `PASSWORD`,
/// `unconfirmed` signed up but not confirmed, `fresh` must choose a new password.
async fn failures(
    sc: &Sidecar,
    user: &str,
    unconfirmed: &str,
    fresh: &str,
) -> Vec<(&'static str, u16, Value)> {
    let http = client();
    let login_url = sc.url("/api/user/login");
    let raw = |path: &str, ct: &str, body: String| {
        http.post(sc.url(path))
            .header("content-type", ct)
            .body(body)
    };
    let post = |path: &str, body: Value| http.post(sc.url(path)).json(&body);
    let mut out = Vec::new();
    let mut add = |name: &'static str, (status, body): (u16, Value)| out.push((name, status, body));

    add(
        "login: wrong password",
        login(sc, user, "Wrong-Passw0rd!").await,
    );
    add(
        "login: unknown user",
        login(sc, "nobody@example.com", PASSWORD).await,
    );
    add(
        "login: unconfirmed user",
        login(sc, unconfirmed, PASSWORD).await,
    );
    add("login: {}", send(post("/api/user/login", json!({}))).await);
    add(
        "login: no password",
        send(post("/api/user/login", json!({ "email": user }))).await,
    );
    add(
        "login: email a number",
        send(post(
            "/api/user/login",
            json!({"email": 5, "password": "x"}),
        ))
        .await,
    );
    add(
        "login: email null",
        send(post(
            "/api/user/login",
            json!({"email": null, "password": "x"}),
        ))
        .await,
    );
    add(
        "login: email empty",
        send(post(
            "/api/user/login",
            json!({"email": "", "password": "x"}),
        ))
        .await,
    );
    add(
        "login: an array",
        send(raw("/api/user/login", "application/json", "[1,2]".into())).await,
    );
    add(
        "login: no body",
        send(raw("/api/user/login", "application/json", String::new())).await,
    );
    add(
        "login: not JSON",
        send(raw(
            "/api/user/login",
            "application/json",
            "{not json".into(),
        ))
        .await,
    );
    add(
        "login: text/plain",
        send(raw("/api/user/login", "text/plain", "{}".into())).await,
    );
    add(
        "login: too large",
        send(raw(
            "/api/user/login",
            "application/json",
            format!("{{\"email\": \"{}\"}}", "a".repeat(20_000)),
        ))
        .await,
    );
    add("login: GET", send(http.get(&login_url)).await);

    add(
        "new-password: bogus session",
        send(post(
            "/api/user/new-password",
            json!({"email": fresh, "new_password": "New-Passw0rd-2!", "session": "bogus"}),
        ))
        .await,
    );
    add(
        "new-password: no session",
        send(post(
            "/api/user/new-password",
            json!({"email": fresh, "new_password": "New-Passw0rd-2!"}),
        ))
        .await,
    );
    let (status, challenge) = login(sc, fresh, TEMP_PASSWORD).await;
    assert_eq!(
        (status, challenge["challenge"].as_str()),
        (200, Some("NEW_PASSWORD_REQUIRED")),
        "{challenge}"
    );
    add(
        "new-password: weak password",
        send(post(
            "/api/user/new-password",
            json!({"email": fresh, "new_password": "short", "session": challenge["session"]}),
        ))
        .await,
    );

    add(
        "refresh: refused token",
        send(post(
            "/api/user/refresh",
            json!({"refresh_token": "garbage"}),
        ))
        .await,
    );
    add(
        "refresh: {}",
        send(post("/api/user/refresh", json!({}))).await,
    );
    add(
        "refresh: token a number",
        send(post("/api/user/refresh", json!({"refresh_token": 5}))).await,
    );
    add(
        "refresh: username a number",
        send(post(
            "/api/user/refresh",
            json!({"refresh_token": "x", "username": 5}),
        ))
        .await,
    );

    let logout = || http.post(sc.url("/api/user/logout"));
    add("logout: no token", send(logout()).await);
    add(
        "logout: Basic",
        send(logout().header("authorization", "Basic dXNlcjpwYXNz")).await,
    );
    add(
        "logout: not a JWT",
        send(logout().bearer_auth("not.a.jwt")).await,
    );
    let (status, tokens) = login(sc, user, PASSWORD).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().expect("access");
    let id = tokens["id_token"].as_str().expect("id");
    add("logout: id token", send(logout().bearer_auth(id)).await);
    let (status, ok) = send(logout().bearer_auth(access)).await;
    assert_eq!((status, ok), (200, json!({ "ok": true })));
    add(
        "logout: signed out",
        send(logout().bearer_auth(access)).await,
    );

    // Newer endpoints: no Django original.
    add(
        "mfa: no code",
        send(post(
            "/api/user/mfa",
            json!({"email": user, "session": "s", "challenge": "SMS_MFA"}),
        ))
        .await,
    );
    add(
        "mfa: bogus session",
        send(post(
            "/api/user/mfa",
            json!({"email": user, "session": "s", "challenge": "SMS_MFA", "code": "123456"}),
        ))
        .await,
    );
    add(
        "forgot-password: email a number",
        send(post("/api/user/forgot-password", json!({"email": 5}))).await,
    );
    add(
        "change-password: no token",
        send(post(
            "/api/user/change-password",
            json!({"old_password": "a", "new_password": "b"}),
        ))
        .await,
    );
    out
}

/// (case, default status and code, seed status and code, seed's `detail[].loc` after
/// `["body", "payload"]` with each detail's type).
type Expected = (
    &'static str,
    (u16, &'static str),
    (u16, &'static str),
    &'static [(&'static [&'static str], &'static str)],
);

const EXPECTED: &[Expected] = &[
    (
        "login: wrong password",
        (401, "invalid_credentials"),
        (400, "invalid_credentials"),
        &[],
    ),
    (
        "login: unknown user",
        (401, "invalid_credentials"),
        (400, "invalid_credentials"),
        &[],
    ),
    (
        "login: unconfirmed user",
        (403, "user_not_confirmed"),
        (400, "user_not_confirmed"),
        &[],
    ),
    (
        "login: {}",
        (400, "missing_field"),
        (422, "missing_field"),
        &[(&["email"], "missing"), (&["password"], "missing")],
    ),
    (
        "login: no password",
        (400, "missing_field"),
        (422, "missing_field"),
        &[(&["password"], "missing")],
    ),
    (
        "login: email a number",
        (400, "invalid_field"),
        (422, "invalid_field"),
        &[(&["email"], "string_type")],
    ),
    (
        "login: email null",
        (400, "missing_field"),
        (422, "invalid_field"),
        &[(&["email"], "string_type")],
    ),
    // A valid `str` to ninja: the seed failed in Cognito, 400.
    (
        "login: email empty",
        (400, "missing_field"),
        (400, "missing_field"),
        &[],
    ),
    (
        "login: an array",
        (400, "invalid_json"),
        (422, "invalid_json"),
        &[(&["email"], "missing"), (&["password"], "missing")],
    ),
    (
        "login: no body",
        (400, "invalid_json"),
        (422, "invalid_json"),
        &[(&[], "missing")],
    ),
    // ninja: 400 {"detail": "Cannot parse request body"}.
    (
        "login: not JSON",
        (400, "invalid_json"),
        (400, "invalid_json"),
        &[],
    ),
    (
        "login: text/plain",
        (415, "unsupported_media_type"),
        (400, "unsupported_media_type"),
        &[],
    ),
    (
        "login: too large",
        (413, "payload_too_large"),
        (400, "payload_too_large"),
        &[],
    ),
    (
        "login: GET",
        (405, "method_not_allowed"),
        (405, "method_not_allowed"),
        &[],
    ),
    (
        "new-password: bogus session",
        (401, "invalid_session"),
        (400, "invalid_session"),
        &[],
    ),
    (
        "new-password: no session",
        (400, "missing_field"),
        (422, "missing_field"),
        &[(&["session"], "missing")],
    ),
    (
        "new-password: weak password",
        (400, "weak_password"),
        (400, "weak_password"),
        &[],
    ),
    (
        "refresh: refused token",
        (401, "invalid_refresh_token"),
        (400, "invalid_refresh_token"),
        &[],
    ),
    (
        "refresh: {}",
        (400, "missing_field"),
        (422, "missing_field"),
        &[(&["refresh_token"], "missing")],
    ),
    (
        "refresh: token a number",
        (400, "invalid_field"),
        (422, "invalid_field"),
        &[(&["refresh_token"], "string_type")],
    ),
    (
        "refresh: username a number",
        (400, "invalid_field"),
        (422, "invalid_field"),
        &[(&["username"], "string_type")],
    ),
    (
        "logout: no token",
        (401, "token_missing"),
        (400, "token_missing"),
        &[],
    ),
    (
        "logout: Basic",
        (401, "invalid_scheme"),
        (400, "invalid_scheme"),
        &[],
    ),
    (
        "logout: not a JWT",
        (401, "token_malformed"),
        (400, "token_malformed"),
        &[],
    ),
    (
        "logout: id token",
        (401, "wrong_token_use"),
        (400, "wrong_token_use"),
        &[],
    ),
    (
        "logout: signed out",
        (401, "token_revoked"),
        (400, "token_revoked"),
        &[],
    ),
    (
        "mfa: no code",
        (400, "missing_field"),
        (400, "missing_field"),
        &[],
    ),
    (
        "mfa: bogus session",
        (401, "invalid_session"),
        (401, "invalid_session"),
        &[],
    ),
    (
        "forgot-password: email a number",
        (400, "invalid_field"),
        (400, "invalid_field"),
        &[],
    ),
    (
        "change-password: no token",
        (401, "token_missing"),
        (401, "token_missing"),
        &[],
    ),
];

/// What a client written against the seed reads: a 400's `message`; a 422's `detail[]` of
/// `{type, loc, msg}` with ninja's pydantic v2 texts. Never the seed's own texts, which told
/// unknown users apart and passed Cognito's words on.
fn assert_seed_client_reads(case: &str, status: u16, body: &Value) {
    let message = body["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{case}: {body}");
    for seed_text in ["User not found", "failed:", "error:", "Exception"] {
        assert!(!message.contains(seed_text), "{case}: {message}");
    }
    if status == 422 {
        for d in body["detail"].as_array().expect("detail") {
            let msg = match d["type"].as_str() {
                Some("missing") => "Field required",
                Some("string_type") => "Input should be a valid string",
                other => panic!("{case}: type {other:?}"),
            };
            assert_eq!(d["msg"], msg, "{case}");
            assert_eq!(d["loc"][0], "body", "{case}");
            assert_eq!(d["loc"][1], "payload", "{case}");
        }
    }
}

#[tokio::test]
async fn every_failure_of_the_seed_endpoints_in_both_modes() {
    let pool = Pool::create(false, false).await;
    let user = pool.confirmed_user("compat@example.com", &[]).await;
    let unconfirmed = "unconfirmed@example.com";
    pool.admin
        .sign_up()
        .client_id(&pool.client_id)
        .username(unconfirmed)
        .password(PASSWORD)
        .send()
        .await
        .expect("sign up");
    let fresh = pool.new_user("fresh@example.com").await;
    for (mode, seed) in [(Compatibility::None, false), (Compatibility::Seed, true)] {
        let sc = sidecar_in(&pool, mode).await;
        let got = failures(&sc, &user, unconfirmed, &fresh).await;
        let names: Vec<&str> = got.iter().map(|(n, _, _)| *n).collect();
        let want: Vec<&str> = EXPECTED.iter().map(|(n, ..)| *n).collect();
        assert_eq!(names, want, "every case has an expectation");
        for ((case, status, body), (_, default, seed_answer, detail)) in got.iter().zip(EXPECTED) {
            let (want_status, want_code) = if seed { *seed_answer } else { *default };
            assert_eq!(
                (*status, body["code"].as_str()),
                (want_status, Some(want_code)),
                "{mode:?} {case}: {body}"
            );
            let locs: Vec<(Vec<&str>, &str)> = body["detail"]
                .as_array()
                .map(|d| {
                    d.iter()
                        .map(|d| {
                            let loc = d["loc"].as_array().expect("loc");
                            (
                                loc.iter()
                                    .skip(2)
                                    .map(|l| l.as_str().expect("str"))
                                    .collect(),
                                d["type"].as_str().expect("type"),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let want_locs: Vec<(Vec<&str>, &str)> = if seed {
                detail.iter().map(|(l, t)| (l.to_vec(), *t)).collect()
            } else {
                Vec::new()
            };
            assert_eq!(locs, want_locs, "{mode:?} {case}: {body}");
            assert_eq!(
                body.get("detail").is_some(),
                *status == 422,
                "{mode:?} {case}"
            );
            if seed {
                assert_seed_client_reads(case, *status, body);
            }
        }
        // No mode tells an unknown user from a wrong password.
        assert_eq!(got[0].1, got[1].1);
        assert_eq!(got[0].2, got[1].2);
        sc.stop().await;
    }
}

/// What the seed had no equivalent for keeps its status in seed mode: the sidecar's limits
/// (429 with Retry-After), Cognito unreachable (503) or answering unexpectedly (502).
#[tokio::test]
async fn seed_mode_keeps_limits_and_cognito_faults() {
    let pool = Pool::create(false, false).await;
    let user = pool.confirmed_user("limited@example.com", &[]).await;
    let other = pool.confirmed_user("other@example.com", &[]).await;
    for mode in [Compatibility::None, Compatibility::Seed] {
        let refused = if mode == Compatibility::Seed {
            400
        } else {
            401
        };
        let mut c = pool.config(&closed_url().await);
        c.api.compatibility = mode;
        c.rate_limit.username_per_minute = 1;
        c.rate_limit.username_burst = 1;
        let sc = Sidecar::start(c).await;
        assert_eq!(login(&sc, &user, "Wrong-1!").await.0, refused, "{mode:?}");
        let resp = client()
            .post(sc.url("/api/user/login"))
            .json(&json!({"email": user, "password": PASSWORD}))
            .send()
            .await
            .expect("login");
        let retry = resp.headers().get("retry-after").cloned();
        let (status, v) = status_json(resp).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (429, Some("rate_limited")),
            "{mode:?}: {v}"
        );
        assert!(retry.is_some(), "{mode:?}: Retry-After");
        let (status, tokens) = login(&sc, &other, PASSWORD).await;
        assert_eq!(status, 200, "{tokens}");
        let access = tokens["access_token"].as_str().expect("access");
        let refresh = tokens["refresh_token"].as_str().expect("refresh");

        // Nothing listens where Cognito should be (the keys still come from moto).
        let mut c = pool.config(&closed_url().await);
        c.api.compatibility = mode;
        c.cognito.endpoint_url = Some(closed_url().await);
        let down = Sidecar::start(c).await;
        let logout = client()
            .post(down.url("/api/user/logout"))
            .bearer_auth(access);
        let calls = [
            post(
                &down,
                "/api/user/login",
                json!({"email": other, "password": PASSWORD}),
            )
            .await,
            post(
                &down,
                "/api/user/new-password",
                json!({"email": other, "new_password": "New-Passw0rd-2!", "session": "s"}),
            )
            .await,
            post(
                &down,
                "/api/user/refresh",
                json!({ "refresh_token": refresh }),
            )
            .await,
            send(logout).await,
        ];
        for (status, v) in calls {
            assert_eq!(
                (status, v["code"].as_str()),
                (503, Some("idp_unavailable")),
                "{mode:?}: {v}"
            );
        }

        // Cognito answers, but not as it should: it does not know the app client.
        let mut c = pool.config(&closed_url().await);
        c.api.compatibility = mode;
        c.cognito.client_id = Some("no-such-client".into());
        let odd = Sidecar::start(c).await;
        let calls = [
            post(
                &odd,
                "/api/user/login",
                json!({"email": other, "password": PASSWORD}),
            )
            .await,
            post(
                &odd,
                "/api/user/refresh",
                json!({ "refresh_token": refresh }),
            )
            .await,
        ];
        for (status, v) in calls {
            assert_eq!(
                (status, v["code"].as_str()),
                (502, Some("idp_error")),
                "{mode:?}: {v}"
            );
        }
        for s in [sc, down, odd] {
            s.stop().await;
        }
    }
}
