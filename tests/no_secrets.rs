//! No secret reaches a log line: every flow runs with debug logging of every crate captured
//! (the sidecar's, the AWS SDK's, reqwest's, h2's), then the capture is searched for every
//! password, token, refresh token, client secret, SECRET_HASH and challenge session the test
//! used, and, for MFA and recovery, every TOTP secret and otpauth URI, MFA and reset code
//! (right and wrong) and new password. This file holds one test so the global subscriber sees
//! nothing else.

mod common;

use aws_sdk_cognitoidentityprovider::types::{SoftwareTokenMfaConfigType, UserPoolMfaType};
use common::*;
use serde_json::{json, Value};

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
    let capture = Capture::install();
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

    // Forgotten password: moto's code (read from moto directly), a wrong code, the new password.
    let (s, f) = post(
        &sc,
        "/api/user/forgot-password",
        None,
        json!({"email": user}),
    )
    .await;
    assert_eq!(s, 200, "{f}");
    let moto = client()
        .post(moto_url())
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "x-amz-target",
            "AWSCognitoIdentityProviderService.ForgotPassword",
        )
        .body(json!({"ClientId": pool.client_id, "Username": user}).to_string())
        .send()
        .await
        .expect("moto");
    let reset_code = moto.headers()["x-moto-forgot-password-confirmation-code"]
        .to_str()
        .expect("ascii")
        .to_string();
    keep("reset code", &reset_code);
    let wrong_reset = "moto-confirmation-code:999999";
    keep("wrong reset code", wrong_reset);
    let reset_password = "Reset-Passw0rd-For-Logs!";
    keep("reset password", reset_password);
    let confirm = |code: &str| json!({"email": user, "code": code, "new_password": reset_password});
    let (s, _) = post(
        &sc,
        "/api/user/confirm-forgot-password",
        None,
        confirm(wrong_reset),
    )
    .await;
    assert_eq!(s, 400);
    let (s, c) = post(
        &sc,
        "/api/user/confirm-forgot-password",
        None,
        confirm(&reset_code),
    )
    .await;
    assert_eq!(s, 200, "{c}");

    // Changed password: a wrong old one, then the right one.
    let (s, t3) = login(&sc, &user, reset_password).await;
    assert_eq!(s, 200, "{t3}");
    let access3 = text(&t3, "access_token");
    keep("access token", &access3);
    let changed = "Changed-Passw0rd-For-Logs!";
    let wrong_old = "Wrong-Old-Passw0rd-Logged?";
    keep("changed password", changed);
    keep("wrong old password", wrong_old);
    let change = |old: &str| json!({"old_password": old, "new_password": changed});
    let (s, _) = post(
        &sc,
        "/api/user/change-password",
        Some(&access3),
        change(wrong_old),
    )
    .await;
    assert_eq!(s, 401);
    let (s, c) = post(
        &sc,
        "/api/user/change-password",
        Some(&access3),
        change(reset_password),
    )
    .await;
    assert_eq!(s, 200, "{c}");
    sc.stop().await;

    // MFA, in a pool that requires it: new password, TOTP enrollment (secret, otpauth URI,
    // wrong and right codes), then a sign-in answered with a TOTP code.
    let mfa_pool = Pool::create(true, false).await;
    mfa_pool
        .admin
        .set_user_pool_mfa_config()
        .user_pool_id(&mfa_pool.pool_id)
        .software_token_mfa_configuration(
            SoftwareTokenMfaConfigType::builder().enabled(true).build(),
        )
        .mfa_configuration(UserPoolMfaType::On)
        .send()
        .await
        .expect("mfa config");
    let mfa_secret = mfa_pool.client_secret.clone().expect("secret");
    keep("client secret", &mfa_secret);
    let mfa_user = mfa_pool.new_user("logs-mfa@example.com").await;
    keep(
        "SECRET_HASH",
        &cognito_sidecar::idp::secret_hash(&mfa_secret, &mfa_user, &mfa_pool.client_id),
    );
    let mut c = mfa_pool.config(&echo.url());
    c.log.level = "debug".into();
    c.cognito.auth_flow = cognito_sidecar::config::AuthFlow::UserPassword;
    let sc = Sidecar::start(c).await;
    let (_, ch) = login(&sc, &mfa_user, TEMP_PASSWORD).await;
    keep("session", &text(&ch, "session"));
    let mfa_password = "Mfa-New-Passw0rd-For-Logs!";
    keep("new password", mfa_password);
    let (s, ch) = post(
        &sc,
        "/api/user/new-password",
        None,
        json!({"email": mfa_user, "new_password": mfa_password, "session": text(&ch, "session")}),
    )
    .await;
    assert_eq!(
        (s, ch["challenge"].as_str()),
        (200, Some("MFA_SETUP")),
        "{ch}"
    );
    keep("session", &text(&ch, "session"));
    let (s, setup) = post(
        &sc,
        "/api/user/mfa/setup",
        None,
        json!({"email": mfa_user, "session": text(&ch, "session")}),
    )
    .await;
    assert_eq!(s, 200, "{setup}");
    let totp_secret = text(&setup, "secret_code");
    keep("TOTP secret", &totp_secret);
    keep("otpauth URI", &text(&setup, "otpauth_uri"));
    keep("session", &text(&setup, "session"));
    // A six-digit code is short: searched as it would be written in a log line (quoted, as
    // a field value, or escaped in JSON), not as bare digits that a timestamp may contain.
    let mut keep_code = |what: &str, code: &str| {
        for form in [
            format!("\"{code}\""),
            format!("={code}"),
            format!("{code}\\\""),
        ] {
            secrets.push((what.to_string(), form));
        }
    };
    let code = totp_now(&totp_secret).await;
    let wrong_totp = format!(
        "{:06}",
        (code.parse::<u32>().expect("digits") + 500_000) % 1_000_000
    );
    keep_code("wrong TOTP code", &wrong_totp);
    let verify =
        |code: &str| json!({"email": mfa_user, "session": text(&setup, "session"), "code": code});
    let (s, _) = post(&sc, "/api/user/mfa/verify", None, verify(&wrong_totp)).await;
    assert_eq!(s, 400);
    let code = totp_now(&totp_secret).await;
    keep_code("TOTP code", &code);
    let (s, t4) = post(&sc, "/api/user/mfa/verify", None, verify(&code)).await;
    assert_eq!(s, 200, "{t4}");
    let (_, ch) = login(&sc, &mfa_user, mfa_password).await;
    assert_eq!(ch["challenge"], "SOFTWARE_TOKEN_MFA", "{ch}");
    let code = totp_now(&totp_secret).await;
    keep_code("TOTP code", &code);
    let (s, t5) = post(
        &sc,
        "/api/user/mfa",
        None,
        json!({"email": mfa_user, "session": text(&ch, "session"), "challenge": "SOFTWARE_TOKEN_MFA", "code": code}),
    )
    .await;
    assert_eq!(s, 200, "{t5}");
    sc.stop().await;
    for t in [&t4, &t5] {
        for k in ["access_token", "id_token", "refresh_token"] {
            secrets.push((format!("MFA {k}"), text(t, k)));
        }
    }

    let logs = capture.text();
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
