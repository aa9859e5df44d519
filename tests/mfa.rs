//! MFA on sign-in, TOTP enrollment, password recovery and password change, against moto through
//! the real AWS SDK (moto started with `MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP=true` by
//! deploy/local/moto.sh, so SOFTWARE_TOKEN_MFA and VerifySoftwareToken codes are checked
//! against moto's fixed secret; the codes here are computed, RFC 6238), both auth flows, with
//! and without a client secret. What moto cannot produce (EMAIL_OTP, SELECT_MFA_TYPE, a
//! missing ExpiresIn, InvalidPasswordException for a wrong password as a second emulator
//! answers, CodeMismatch / LimitExceeded / CodeDeliveryFailure / TooManyFailedAttempts /
//! EnableSoftwareTokenMFA) comes from a scripted Cognito on loopback, still through the SDK.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_cognitoidentityprovider::types::{
    SmsConfigurationType, SmsMfaConfigType, SmsMfaSettingsType, SoftwareTokenMfaConfigType,
    SoftwareTokenMfaSettingsType, UserPoolMfaType,
};
use bytes::Bytes;
use cognito_sidecar::config::AuthFlow;
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{json, Value};

const FLOWS: [AuthFlow; 2] = [AuthFlow::AdminUserPassword, AuthFlow::UserPassword];

/// The timing comparison runs alone: the other tests here hold it shared, so none of them
/// loads moto (single-threaded) or the sidecar while it measures.
static EXCLUSIVE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

async fn post(sc: &Sidecar, path: &str, body: Value) -> (u16, Value) {
    status_json(
        client()
            .post(sc.url(&format!("/api/user{path}")))
            .json(&body)
            .send()
            .await
            .expect("request"),
    )
    .await
}

async fn post_bearer(sc: &Sidecar, path: &str, token: &str, body: Value) -> (u16, Value) {
    status_json(
        client()
            .post(sc.url(&format!("/api/user{path}")))
            .bearer_auth(token)
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
    assert!(v["expires_in"].as_i64().is_some_and(|e| e > 0), "{v}");
    assert_eq!(v["challenge"], Value::Null, "{v}");
    assert_eq!(v["session"], Value::Null, "{v}");
}

fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(
        (got.0, got.1["code"].as_str()),
        (status, Some(code)),
        "{}",
        got.1
    );
    assert!(got.1["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(got.1.as_object().map(|o| o.len()), Some(2), "{}", got.1);
}

fn text(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} in {v}"))
        .to_string()
}

/// A six-digit code that is not the current one.
fn wrong_code(code: &str) -> String {
    let n: u32 = code.parse().expect("digits");
    format!("{:06}", (n + 500_000) % 1_000_000)
}

#[test]
fn totp_matches_the_rfc_6238_vectors() {
    // RFC 6238 appendix B, SHA1 key "12345678901234567890", last six of the eight digits.
    let key = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    for (t, want) in [
        (59, "287082"),
        (1_111_111_109, "081804"),
        (1_234_567_890, "005924"),
        (2_000_000_000, "279037"),
    ] {
        assert_eq!(totp_at(key, t), want, "{t}");
    }
    assert_eq!(
        base32("asdfasdfasdf").len(),
        7,
        "moto's secret, as Python decodes it"
    );
}

// === moto pools with MFA ===

async fn pool_mfa(pool: &Pool, mode: UserPoolMfaType, sms: bool) {
    let mut req = pool
        .admin
        .set_user_pool_mfa_config()
        .user_pool_id(&pool.pool_id)
        .software_token_mfa_configuration(
            SoftwareTokenMfaConfigType::builder().enabled(true).build(),
        )
        .mfa_configuration(mode);
    if sms {
        req = req.sms_mfa_configuration(
            SmsMfaConfigType::builder()
                .sms_authentication_message("Your code is {####}")
                .sms_configuration(
                    SmsConfigurationType::builder()
                        .sns_caller_arn("arn:aws:iam::123456789012:role/cognito-sms")
                        .build(),
                )
                .build(),
        );
    }
    req.send().await.expect("pool mfa config");
}

/// A confirmed user with TOTP enrolled (through moto directly) and preferred; returns the
/// TOTP secret.
async fn totp_user(pool: &Pool, sc: &Sidecar, email: &str) -> String {
    pool.confirmed_user(email, &[]).await;
    let (s, v) = login(sc, email, PASSWORD).await;
    assert_eq!(s, 200, "{v}");
    let access = text(&v, "access_token");
    let secret = pool
        .admin
        .associate_software_token()
        .access_token(&access)
        .send()
        .await
        .expect("associate")
        .secret_code()
        .expect("secret")
        .to_string();
    pool.admin
        .verify_software_token()
        .access_token(&access)
        .user_code(totp_now(&secret).await)
        .send()
        .await
        .expect("verify");
    pool.admin
        .admin_set_user_mfa_preference()
        .user_pool_id(&pool.pool_id)
        .username(email)
        .software_token_mfa_settings(
            SoftwareTokenMfaSettingsType::builder()
                .enabled(true)
                .preferred_mfa(true)
                .build(),
        )
        .send()
        .await
        .expect("mfa preference");
    secret
}

fn config(pool: &Pool, flow: AuthFlow) -> cognito_sidecar::config::Config {
    let mut c = pool.config("http://127.0.0.1:9");
    c.cognito.auth_flow = flow;
    c
}

#[tokio::test]
async fn totp_sign_in_answers_the_code_challenge_in_both_flows() {
    let _shared = EXCLUSIVE.read().await;
    // With a client secret: moto checks SECRET_HASH on the MFA answer.
    let pool = Pool::create(true, false).await;
    pool_mfa(&pool, UserPoolMfaType::Optional, false).await;
    for flow in FLOWS {
        let sc = Sidecar::start(config(&pool, flow)).await;
        let email = format!("totp-{flow:?}@example.com").to_lowercase();
        let secret = totp_user(&pool, &sc, &email).await;

        let (s, ch) = login(&sc, &email, PASSWORD).await;
        assert_eq!(s, 200, "{ch}");
        assert_eq!(ch["challenge"], "SOFTWARE_TOKEN_MFA", "{flow:?}: {ch}");
        assert_eq!(ch["access_token"], Value::Null);
        let session = text(&ch, "session");
        let answer = |code: String, session: &str| json!({"email": email, "session": session, "challenge": "SOFTWARE_TOKEN_MFA", "code": code});

        // A wrong code: 400 invalid_code (moto keeps the session for another try).
        let code = totp_now(&secret).await;
        let got = post(&sc, "/mfa", answer(wrong_code(&code), &session)).await;
        assert_error(&got, 400, "invalid_code");
        // A bogus session: 401 invalid_session.
        let got = post(&sc, "/mfa", answer(code.clone(), "bogus-session")).await;
        assert_error(&got, 401, "invalid_session");

        let code = totp_now(&secret).await;
        let (s, tokens) = post(&sc, "/mfa", answer(code.clone(), &session)).await;
        assert_eq!(s, 200, "{flow:?}: {tokens}");
        assert_tokens(&tokens);
        assert_eq!(tokens["username"], email);
        // The tokens pass the gate's checks (logout verifies them and signs out).
        let (s, ok) = post_bearer(&sc, "/logout", &text(&tokens, "access_token"), json!({})).await;
        assert_eq!((s, ok), (200, json!({"ok": true})));

        // The session is single use.
        let got = post(&sc, "/mfa", answer(code, &session)).await;
        assert_error(&got, 401, "invalid_session");
        sc.stop().await;
    }
}

#[tokio::test]
async fn sms_mfa_is_relayed_and_mfa_requests_are_checked() {
    let _shared = EXCLUSIVE.read().await;
    let pool = Pool::create(false, false).await;
    pool_mfa(&pool, UserPoolMfaType::Optional, true).await;
    let email = pool.confirmed_user("sms@example.com", &[]).await;
    pool.admin
        .admin_set_user_mfa_preference()
        .user_pool_id(&pool.pool_id)
        .username(&email)
        .sms_mfa_settings(
            SmsMfaSettingsType::builder()
                .enabled(true)
                .preferred_mfa(true)
                .build(),
        )
        .send()
        .await
        .expect("sms preference");
    for flow in FLOWS {
        let sc = Sidecar::start(config(&pool, flow)).await;
        let (s, ch) = login(&sc, &email, PASSWORD).await;
        assert_eq!(s, 200, "{ch}");
        assert_eq!(ch["challenge"], "SMS_MFA", "{flow:?}: {ch}");
        let session = text(&ch, "session");

        let bad: Vec<(Value, &str)> = vec![
            (
                json!({"email": email, "session": session, "challenge": "SMS_MFA"}),
                "missing_field",
            ),
            (
                json!({"email": email, "session": session, "code": "123456"}),
                "missing_field",
            ),
            (
                json!({"email": email, "challenge": "SMS_MFA", "code": "123456"}),
                "missing_field",
            ),
            (
                json!({"session": session, "challenge": "SMS_MFA", "code": "123456"}),
                "missing_field",
            ),
            (
                json!({"email": email, "session": session, "challenge": "CUSTOM_CHALLENGE", "code": "1"}),
                "invalid_field",
            ),
            (
                json!({"email": email, "session": session, "challenge": "SMS_MFA", "code": "12 34"}),
                "invalid_field",
            ),
            (
                json!({"email": email, "session": session, "challenge": "SELECT_MFA_TYPE", "answer": "PIGEON"}),
                "invalid_field",
            ),
            (
                json!({"email": email, "session": session, "challenge": "SMS_MFA", "code": 123456}),
                "invalid_field",
            ),
        ];
        for (body, code) in bad {
            let got = post(&sc, "/mfa", body.clone()).await;
            assert_error(&got, 400, code);
        }
        // moto sends no SMS and takes any code for SMS_MFA.
        let (s, tokens) = post(
            &sc,
            "/mfa",
            json!({"email": email, "session": session, "challenge": "SMS_MFA", "code": "424242"}),
        )
        .await;
        assert_eq!(s, 200, "{flow:?}: {tokens}");
        assert_tokens(&tokens);
        sc.stop().await;
    }
}

/// First sign-in in a pool with MFA required: NEW_PASSWORD_REQUIRED, then MFA_SETUP
/// (AssociateSoftwareToken, VerifySoftwareToken, RespondToAuthChallenge MFA_SETUP), then
/// tokens; the next sign-in asks for a TOTP code.
#[tokio::test]
async fn new_password_then_mfa_setup_then_a_code() {
    let _shared = EXCLUSIVE.read().await;
    let pool = Pool::create(true, false).await;
    pool_mfa(&pool, UserPoolMfaType::On, false).await;
    for flow in FLOWS {
        let mut c = config(&pool, flow);
        c.api.totp_issuer = "Acme App".into();
        let sc = Sidecar::start(c).await;
        let email = pool
            .new_user(&format!("chain-{flow:?}@example.com").to_lowercase())
            .await;

        let (s, ch) = login(&sc, &email, TEMP_PASSWORD).await;
        assert_eq!(
            (s, ch["challenge"].as_str()),
            (200, Some("NEW_PASSWORD_REQUIRED")),
            "{ch}"
        );
        let (s, ch) = post(
            &sc,
            "/new-password",
            json!({"email": email, "new_password": "Chain-Passw0rd!", "session": text(&ch, "session")}),
        )
        .await;
        assert_eq!(s, 200, "{ch}");
        assert_eq!(ch["challenge"], "MFA_SETUP", "{flow:?}: {ch}");
        assert_eq!(ch["access_token"], Value::Null);
        assert_eq!(
            ch["challenge_hints"]["mfas_can_setup"],
            json!(["SOFTWARE_TOKEN_MFA"]),
            "{ch}"
        );
        let session = text(&ch, "session");

        // A bogus session cannot start an enrollment.
        let got = post(
            &sc,
            "/mfa/setup",
            json!({"email": email, "session": "bogus"}),
        )
        .await;
        assert_error(&got, 401, "invalid_session");

        let resp = client()
            .post(sc.url("/api/user/mfa/setup"))
            .json(&json!({"email": email, "session": session}))
            .send()
            .await
            .expect("setup");
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let (s, setup) = status_json(resp).await;
        assert_eq!(s, 200, "{setup}");
        let secret = text(&setup, "secret_code");
        let uri = text(&setup, "otpauth_uri");
        assert!(
            uri.starts_with("otpauth://totp/Acme%20App:chain%2D")
                && uri.contains(&format!("secret={secret}&"))
                && uri.contains("issuer=Acme%20App"),
            "{uri}"
        );
        let session = text(&setup, "session");

        let verify = |code: String, session: &str| json!({"email": email, "session": session, "code": code, "device_name": "phone"});
        let code = totp_now(&secret).await;
        let got = post(&sc, "/mfa/verify", verify(wrong_code(&code), &session)).await;
        assert_error(&got, 400, "invalid_code");
        let got = post(&sc, "/mfa/verify", verify(code, "bogus")).await;
        assert_error(&got, 401, "invalid_session");
        let (s, tokens) = post(
            &sc,
            "/mfa/verify",
            verify(totp_now(&secret).await, &session),
        )
        .await;
        assert_eq!(s, 200, "{flow:?}: {tokens}");
        assert_tokens(&tokens);

        // The next sign-in asks for a code. (moto's AdminInitiateAuth looks only at the MFA
        // preference, which enrollment through a session does not set, so this part is
        // checked on the user_password flow.)
        if flow == AuthFlow::UserPassword {
            let (s, ch) = login(&sc, &email, "Chain-Passw0rd!").await;
            assert_eq!(
                (s, ch["challenge"].as_str()),
                (200, Some("SOFTWARE_TOKEN_MFA")),
                "{ch}"
            );
            let (s, tokens) = post(
                &sc,
                "/mfa",
                json!({"email": email, "session": text(&ch, "session"),
                       "challenge": "SOFTWARE_TOKEN_MFA", "code": totp_now(&secret).await}),
            )
            .await;
            assert_eq!(s, 200, "{tokens}");
            assert_tokens(&tokens);
        }
        sc.stop().await;
    }
}

/// The code moto would e-mail, read from its `x-moto-forgot-password-confirmation-code`
/// header by calling moto directly (the sidecar never relays it).
async fn moto_reset_code(pool: &Pool, username: &str) -> String {
    let resp = client()
        .post(moto_url())
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "x-amz-target",
            "AWSCognitoIdentityProviderService.ForgotPassword",
        )
        .body(json!({"ClientId": pool.client_id, "Username": username}).to_string())
        .send()
        .await
        .expect("moto");
    assert_eq!(resp.status(), 200);
    resp.headers()["x-moto-forgot-password-confirmation-code"]
        .to_str()
        .expect("ascii")
        .to_string()
}

#[tokio::test]
async fn forgot_password_then_confirm() {
    let _shared = EXCLUSIVE.read().await;
    for (secret, flow) in [
        (false, AuthFlow::AdminUserPassword),
        (true, AuthFlow::UserPassword),
    ] {
        let pool = Pool::create(secret, false).await;
        let email = pool.confirmed_user("forgetful@example.com", &[]).await;
        let sc = Sidecar::start(config(&pool, flow)).await;

        // Known and unknown users: the same answer, and no moto header or code relayed.
        let mut answers = Vec::new();
        for who in [email.as_str(), "nobody@example.com"] {
            let resp = client()
                .post(sc.url("/api/user/forgot-password"))
                .json(&json!({"email": who}))
                .send()
                .await
                .expect("forgot");
            assert!(
                resp.headers()
                    .keys()
                    .all(|k| !k.as_str().starts_with("x-moto")),
                "{:?}",
                resp.headers()
            );
            let (s, v) = status_json(resp).await;
            assert_eq!(s, 200, "{v}");
            assert!(!v.to_string().contains("moto-confirmation-code"), "{v}");
            answers.push(v);
        }
        assert_eq!(answers[0], answers[1]);
        assert_eq!(answers[0]["ok"], true);
        assert!(
            answers[0]["delivery"]["medium"].is_string(),
            "{}",
            answers[0]
        );
        assert_eq!(answers[0]["delivery"].get("destination"), None);

        let code = moto_reset_code(&pool, &email).await;
        let confirm =
            |code: &str, pw: &str| json!({"email": email, "code": code, "new_password": pw});
        // A stale code (moto: a wrong one of its own shape) is expired.
        let got = post(
            &sc,
            "/confirm-forgot-password",
            confirm("moto-confirmation-code:000000", "Reset-Passw0rd!"),
        )
        .await;
        assert_error(&got, 400, "expired_code");
        // An unknown user looks like a wrong code.
        let got = post(
            &sc,
            "/confirm-forgot-password",
            json!({"email": "nobody@example.com", "code": code, "new_password": "Reset-Passw0rd!"}),
        )
        .await;
        assert_error(&got, 400, "invalid_code");
        let got = post(
            &sc,
            "/confirm-forgot-password",
            json!({"email": email, "code": code}),
        )
        .await;
        assert_error(&got, 400, "missing_field");

        let (s, ok) = post(
            &sc,
            "/confirm-forgot-password",
            confirm(&code, "Reset-Passw0rd!"),
        )
        .await;
        assert_eq!((s, ok), (200, json!({"ok": true})));
        // Used up.
        let got = post(
            &sc,
            "/confirm-forgot-password",
            confirm(&code, "Other-Passw0rd!"),
        )
        .await;
        assert_error(&got, 400, "expired_code");
        // The new password signs in; the old one does not.
        assert_eq!(login(&sc, &email, PASSWORD).await.0, 401);
        let (s, v) = login(&sc, &email, "Reset-Passw0rd!").await;
        assert_eq!(s, 200, "{v}");
        assert_tokens(&v);
        sc.stop().await;
    }
}

#[tokio::test]
async fn forgot_password_takes_as_long_for_an_unknown_user() {
    let _alone = EXCLUSIVE.write().await;
    let pool = Pool::create(false, false).await;
    let email = pool.confirmed_user("timing@example.com", &[]).await;
    let sc = Sidecar::start(config(&pool, AuthFlow::AdminUserPassword)).await;
    let http = client();
    let ask = |who: String| {
        let req = http
            .post(sc.url("/api/user/forgot-password"))
            .json(&json!({ "email": who }));
        async move {
            let started = Instant::now();
            let resp = req.send().await.expect("forgot");
            let status = resp.status().as_u16();
            let body = resp.bytes().await.expect("body");
            (status, body, started.elapsed())
        }
    };
    // Warm up the connection pools on both sides.
    for _ in 0..3 {
        ask(email.clone()).await;
        ask("warm@example.com".into()).await;
    }
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    let tries = 50;
    for i in 0..tries {
        // Interleaved, in alternating order, so drift on the machine affects both alike.
        let ((ks, kb, kt), (us, ub, ut)) = if i % 2 == 0 {
            let k = ask(email.clone()).await;
            (k, ask(format!("nobody-{i}@example.com")).await)
        } else {
            let u = ask(format!("nobody-{i}@example.com")).await;
            (ask(email.clone()).await, u)
        };
        assert_eq!((ks, &kb), (us, &ub), "try {i}");
        assert_eq!(ks, 200);
        known.push(kt);
        unknown.push(ut);
    }
    // Medians: one stall of the emulator (hundreds of ms, seen once in a full CI run) moves a
    // mean by more than the bound, not a median; a systematic difference moves both.
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (k, u) = (median(&mut known), median(&mut unknown));
    let diff = k.abs_diff(u);
    eprintln!(
        "forgot-password median over {tries}: known {k:?}, unknown {u:?}, difference {diff:?}"
    );
    assert!(
        diff < Duration::from_millis(5),
        "known {k:?} vs unknown {u:?}"
    );
}

#[tokio::test]
async fn change_password_for_a_signed_in_user() {
    let _shared = EXCLUSIVE.read().await;
    let pool = Pool::create(false, false).await;
    let email = pool.confirmed_user("changer@example.com", &[]).await;
    for flow in FLOWS {
        let sc = Sidecar::start(config(&pool, flow)).await;
        let current = if flow == AuthFlow::AdminUserPassword {
            PASSWORD
        } else {
            "Changed-Passw0rd-1!"
        };
        let next = if flow == AuthFlow::AdminUserPassword {
            "Changed-Passw0rd-1!"
        } else {
            PASSWORD
        };
        let (s, v) = login(&sc, &email, current).await;
        assert_eq!(s, 200, "{v}");
        let access = text(&v, "access_token");
        let change = |old: &str, new: &str| json!({"old_password": old, "new_password": new});

        // No token, a forged token, an id token: refused before Cognito.
        let got = post(&sc, "/change-password", change(current, next)).await;
        assert_error(&got, 401, "token_missing");
        let got = post_bearer(
            &sc,
            "/change-password",
            &valid_token("x"),
            change(current, next),
        )
        .await;
        assert_eq!(got.0, 401, "{}", got.1);
        let got = post_bearer(
            &sc,
            "/change-password",
            &text(&v, "id_token"),
            change(current, next),
        )
        .await;
        assert_error(&got, 401, "wrong_token_use");
        // Wrong old password, weak new one, missing field.
        let got = post_bearer(
            &sc,
            "/change-password",
            &access,
            change("Wrong-Passw0rd!", next),
        )
        .await;
        assert_error(&got, 401, "invalid_credentials");
        let got = post_bearer(&sc, "/change-password", &access, change(current, "weak")).await;
        assert_error(&got, 400, "weak_password");
        let got = post_bearer(
            &sc,
            "/change-password",
            &access,
            json!({"old_password": current}),
        )
        .await;
        assert_error(&got, 400, "missing_field");

        let (s, ok) = post_bearer(&sc, "/change-password", &access, change(current, next)).await;
        assert_eq!((s, ok), (200, json!({"ok": true})));
        assert_eq!(login(&sc, &email, current).await.0, 401);
        assert_eq!(login(&sc, &email, next).await.0, 200);
        sc.stop().await;
    }
}

#[tokio::test]
async fn recovery_rate_limits_per_username_and_per_address() {
    let _shared = EXCLUSIVE.read().await;
    let pool = Pool::create(false, false).await;
    let email = pool.confirmed_user("limited@example.com", &[]).await;
    let mut c = config(&pool, AuthFlow::AdminUserPassword);
    c.rate_limit.recovery_username_per_hour = 1;
    c.rate_limit.recovery_username_burst = 2;
    c.rate_limit.recovery_address_per_hour = 1;
    c.rate_limit.recovery_address_burst = 8;
    c.server.trusted_proxies = vec!["127.0.0.0/8".parse().expect("net")];
    let sc = Sidecar::start(c).await;
    let from = |ip: &str, path: &str, body: Value| {
        client()
            .post(sc.url(&format!("/api/user{path}")))
            .header("x-forwarded-for", ip)
            .json(&body)
            .send()
    };

    // Per username: two, then 429 with Retry-After, for a known and an unknown user alike
    // (case folded), while the other recovery endpoint has its own budget.
    for who in [email.as_str(), "ghost@example.com"] {
        for _ in 0..2 {
            let (s, v) = status_json(
                from("198.51.100.1", "/forgot-password", json!({"email": who}))
                    .await
                    .expect("forgot"),
            )
            .await;
            assert_eq!(s, 200, "{v}");
        }
        let resp = from(
            "198.51.100.2",
            "/forgot-password",
            json!({"email": who.to_uppercase()}),
        )
        .await
        .expect("forgot");
        let retry: u64 = resp.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((1..=3600).contains(&retry), "{retry}");
        assert_error(&status_json(resp).await, 429, "rate_limited");
    }
    let confirm = json!({"email": email, "code": "123456", "new_password": "Reset-Passw0rd!"});
    let (s, v) = status_json(
        from("198.51.100.3", "/confirm-forgot-password", confirm.clone())
            .await
            .expect("confirm"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = status_json(
        from("198.51.100.3", "/confirm-forgot-password", confirm.clone())
            .await
            .expect("confirm"),
    )
    .await;
    assert_eq!(s, 200);
    let got = status_json(
        from("198.51.100.3", "/confirm-forgot-password", confirm)
            .await
            .expect("confirm"),
    )
    .await;
    assert_error(&got, 429, "rate_limited");

    // Per address: eight recovery requests (distinct users), then 429; another address is
    // not affected, and sign-in from the limited address is not either.
    for i in 0..8 {
        let (s, v) = status_json(
            from(
                "203.0.113.9",
                "/forgot-password",
                json!({"email": format!("a{i}@example.com")}),
            )
            .await
            .expect("forgot"),
        )
        .await;
        assert_eq!(s, 200, "{i}: {v}");
    }
    let got = status_json(
        from(
            "203.0.113.9",
            "/forgot-password",
            json!({"email": "a99@example.com"}),
        )
        .await
        .expect("forgot"),
    )
    .await;
    assert_error(&got, 429, "rate_limited");
    let (s, _) = status_json(
        from(
            "203.0.113.10",
            "/forgot-password",
            json!({"email": "a99@example.com"}),
        )
        .await
        .expect("forgot"),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = status_json(
        // (the confirmations above set this password)
        from(
            "203.0.113.9",
            "/login",
            json!({"email": email, "password": "Reset-Passw0rd!"}),
        )
        .await
        .expect("login"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
}

// === A scripted Cognito: what moto does not do ===

const FAKE_SECRET: &str = "fake-client-secret";

/// Answers each Cognito call by its target and parameters (see `script`); records the calls.
struct Scripted {
    url: String,
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn aws_json(v: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(v.to_string())))
        .expect("resp")
}

fn aws_err(kind: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(400)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-errortype", kind)
        .body(Full::new(Bytes::from(
            json!({"__type": kind, "message": "COGNITO-TEXT never relayed"}).to_string(),
        )))
        .expect("resp")
}

fn hash_ok(username: &str, given: Option<&str>) -> bool {
    given == Some(cognito_sidecar::idp::secret_hash(FAKE_SECRET, username, CLIENT_ID).as_str())
}

fn script(target: &str, b: &Value) -> Response<Full<Bytes>> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    match target {
        "InitiateAuth" | "AdminInitiateAuth" => {
            match s(&b["AuthParameters"]["USERNAME"]).as_str() {
                // A second emulator answers a wrong password so.
                "wrong@example.com" => aws_err("InvalidPasswordException"),
                "unknown@example.com" => aws_err("UserNotFoundException"),
                _ => aws_json(json!({
                    "ChallengeName": "SELECT_MFA_TYPE", "Session": "s-select",
                    "ChallengeParameters": {"MFAS_CAN_CHOOSE": "[\"EMAIL_OTP\",\"SOFTWARE_TOKEN_MFA\"]",
                                            "USER_ID_FOR_SRP": "sub-7"},
                })),
            }
        }
        "RespondToAuthChallenge" | "AdminRespondToAuthChallenge" => {
            // As Cognito in a pool that signs in by alias: the challenge answers name the
            // canonical username (USER_ID_FOR_SRP), and SECRET_HASH is computed over it.
            let r = &b["ChallengeResponses"];
            if s(&r["USERNAME"]) != "sub-7" || !hash_ok("sub-7", r["SECRET_HASH"].as_str()) {
                return aws_err("NotAuthorizedException");
            }
            match (
                s(&b["ChallengeName"]).as_str(),
                s(&r["ANSWER"]).as_str(),
                s(&r["EMAIL_OTP_CODE"]).as_str(),
            ) {
                ("SELECT_MFA_TYPE", "EMAIL_OTP", _) => aws_json(json!({
                    "ChallengeName": "EMAIL_OTP", "Session": "s-otp",
                    "ChallengeParameters": {"CODE_DELIVERY_DESTINATION": "f***@e***",
                                            "CODE_DELIVERY_DELIVERY_MEDIUM": "EMAIL"},
                })),
                ("EMAIL_OTP", _, "111111") => aws_json(json!({
                    // No ExpiresIn, as a second emulator answers.
                    "AuthenticationResult": {"AccessToken": valid_token("fake-user"),
                                             "IdToken": valid_token("fake-user"),
                                             "RefreshToken": "r", "TokenType": "Bearer"},
                    "ChallengeParameters": {},
                })),
                ("EMAIL_OTP", _, "222222") => aws_err("CodeMismatchException"),
                ("EMAIL_OTP", _, "333333") => aws_err("TooManyFailedAttemptsException"),
                ("EMAIL_OTP", _, "444444") => aws_err("ExpiredCodeException"),
                ("EMAIL_OTP", _, "555555") => aws_err("InvalidPasswordException"),
                _ => aws_err("NotAuthorizedException"),
            }
        }
        "AssociateSoftwareToken" => aws_err("NotAuthorizedException"),
        "VerifySoftwareToken" => aws_err("EnableSoftwareTokenMFAException"),
        "ForgotPassword" => {
            let user = s(&b["Username"]);
            if !hash_ok(&user, b["SecretHash"].as_str()) {
                return aws_err("NotAuthorizedException");
            }
            match user.as_str() {
                "fail@example.com" => aws_err("CodeDeliveryFailureException"),
                "limit@example.com" => aws_err("LimitExceededException"),
                "unknown@example.com" => aws_err("UserNotFoundException"),
                _ => aws_json(json!({"CodeDeliveryDetails": {
                    "Destination": "k***@e***", "DeliveryMedium": "EMAIL", "AttributeName": "email"}})),
            }
        }
        "ConfirmForgotPassword" => {
            if !hash_ok(&s(&b["Username"]), b["SecretHash"].as_str()) {
                return aws_err("NotAuthorizedException");
            }
            match (
                s(&b["ConfirmationCode"]).as_str(),
                s(&b["Password"]).as_str(),
            ) {
                ("bad", _) => aws_err("CodeMismatchException"),
                ("old", _) => aws_err("ExpiredCodeException"),
                ("many", _) => aws_err("LimitExceededException"),
                (_, "weak") => aws_err("InvalidPasswordException"),
                _ => aws_json(json!({})),
            }
        }
        "ChangePassword" => match (
            s(&b["PreviousPassword"]).as_str(),
            s(&b["ProposedPassword"]).as_str(),
        ) {
            ("wrong", _) => aws_err("NotAuthorizedException"),
            ("many", _) => aws_err("LimitExceededException"),
            (_, "weak") => aws_err("InvalidPasswordException"),
            _ => aws_json(json!({})),
        },
        _ => aws_err("UnknownOperationException"),
    }
}

impl Scripted {
    async fn start() -> Self {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c = Arc::clone(&calls);
        let (addr, stop) = serve_fn(Arc::new(move |req: Request<Incoming>| {
            let c = Arc::clone(&c);
            Box::pin(async move {
                let target = req
                    .headers()
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|t| t.rsplit('.').next())
                    .unwrap_or_default()
                    .to_string();
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let resp = script(&target, &body);
                c.lock().expect("lock").push((target, body));
                resp
            })
        }))
        .await;
        Scripted {
            url: format!("http://{addr}"),
            calls,
            _stop: stop,
        }
    }

    fn targets(&self) -> Vec<String> {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .map(|(t, _)| t.clone())
            .collect()
    }
}

#[tokio::test]
async fn a_second_emulator_and_every_failure_code() {
    let _shared = EXCLUSIVE.read().await;
    let jwks = JwksServer::start().await;
    let fake = Scripted::start().await;
    for flow in FLOWS {
        let mut c = gate_config(&jwks.url, "http://127.0.0.1:9", &fake.url);
        c.cognito.client_secret = Some(FAKE_SECRET.into());
        c.cognito.auth_flow = flow;
        c.cognito.max_attempts = 1;
        c.rate_limit.username_burst = 1000;
        c.rate_limit.address_burst = 1000;
        c.rate_limit.recovery_username_burst = 1000;
        c.rate_limit.recovery_address_burst = 1000;
        let sc = Sidecar::start(c).await;
        let (admin, respond) = match flow {
            AuthFlow::AdminUserPassword => ("AdminInitiateAuth", "AdminRespondToAuthChallenge"),
            AuthFlow::UserPassword => ("InitiateAuth", "RespondToAuthChallenge"),
        };

        // InvalidPasswordException on sign-in is a wrong password, the same answer as an
        // unknown user, never weak_password.
        let wrong = login(&sc, "wrong@example.com", "pw").await;
        let unknown = login(&sc, "unknown@example.com", "pw").await;
        assert_error(&wrong, 401, "invalid_credentials");
        assert_eq!(wrong, unknown);

        // SELECT_MFA_TYPE with its choices, then EMAIL_OTP with where the code went.
        let (s, ch) = login(&sc, "kim@example.com", "pw").await;
        assert_eq!(s, 200, "{ch}");
        assert_eq!(ch["challenge"], "SELECT_MFA_TYPE");
        assert_eq!(ch["username"], "sub-7");
        assert_eq!(
            ch["challenge_hints"]["mfas_can_choose"],
            json!(["EMAIL_OTP", "SOFTWARE_TOKEN_MFA"])
        );
        // The canonical username from login is what USERNAME and SECRET_HASH use.
        let (s, otp) = post(
            &sc,
            "/mfa",
            json!({"email": "kim@example.com", "username": "sub-7", "session": "s-select",
                   "challenge": "SELECT_MFA_TYPE", "answer": "EMAIL_OTP"}),
        )
        .await;
        assert_eq!(s, 200, "{otp}");
        assert_eq!(otp["challenge"], "EMAIL_OTP");
        assert_eq!(
            otp["challenge_hints"],
            json!({"code_delivery_destination": "f***@e***", "code_delivery_medium": "EMAIL",
                   "mfas_can_choose": null, "mfas_can_setup": null, "available_challenges": null})
        );
        let otp_answer = |code: &str| {
            json!({"email": "kim@example.com", "username": "sub-7", "session": "s-otp",
                   "challenge": "EMAIL_OTP", "code": code})
        };
        for (code, status, err) in [
            ("222222", 400, "invalid_code"),
            ("333333", 429, "too_many_failed_attempts"),
            ("444444", 400, "expired_code"),
            ("555555", 401, "invalid_credentials"),
        ] {
            let got = post(&sc, "/mfa", otp_answer(code)).await;
            assert_error(&got, status, err);
            assert!(!got.1.to_string().contains("COGNITO-TEXT"));
        }
        let (s, tokens) = post(&sc, "/mfa", otp_answer("111111")).await;
        assert_eq!(s, 200, "{tokens}");
        assert_eq!(
            tokens["expires_in"], 3600,
            "derived from exp - iat: {tokens}"
        );
        // Without the canonical username the SECRET_HASH is the email's: Cognito refuses.
        let got = post(
            &sc,
            "/mfa",
            json!({"email": "kim@example.com", "session": "s-otp", "challenge": "EMAIL_OTP", "code": "111111"}),
        )
        .await;
        assert_error(&got, 401, "invalid_session");

        // TOTP enrollment refusals.
        let got = post(
            &sc,
            "/mfa/setup",
            json!({"email": "kim@example.com", "session": "s"}),
        )
        .await;
        assert_error(&got, 401, "invalid_session");
        let got = post(
            &sc,
            "/mfa/verify",
            json!({"email": "kim@example.com", "session": "s", "code": "123456"}),
        )
        .await;
        assert_error(&got, 400, "invalid_code");

        // Recovery.
        let got = post(
            &sc,
            "/forgot-password",
            json!({"email": "fail@example.com"}),
        )
        .await;
        assert_error(&got, 502, "code_delivery_failed");
        let got = post(
            &sc,
            "/forgot-password",
            json!({"email": "limit@example.com"}),
        )
        .await;
        assert_error(&got, 429, "attempt_limit_exceeded");
        let (s, v) = post(
            &sc,
            "/forgot-password",
            json!({"email": "unknown@example.com"}),
        )
        .await;
        assert_eq!((s, v), (200, json!({"ok": true, "delivery": null})));
        let (s, v) = post(&sc, "/forgot-password", json!({"email": "kim@example.com"})).await;
        assert_eq!(
            (s, v),
            (
                200,
                json!({"ok": true, "delivery": {"medium": "EMAIL", "attribute": "email"}})
            )
        );
        let confirm = |code: &str, pw: &str| json!({"email": "kim@example.com", "code": code, "new_password": pw});
        for (code, pw, status, err) in [
            ("bad", "Strong-1!", 400, "invalid_code"),
            ("old", "Strong-1!", 400, "expired_code"),
            ("many", "Strong-1!", 429, "attempt_limit_exceeded"),
            ("123456", "weak", 400, "weak_password"),
        ] {
            let got = post(&sc, "/confirm-forgot-password", confirm(code, pw)).await;
            assert_error(&got, status, err);
        }
        let (s, v) = post(
            &sc,
            "/confirm-forgot-password",
            confirm("123456", "Strong-1!"),
        )
        .await;
        assert_eq!((s, v), (200, json!({"ok": true})));

        // Change password (the scripted pool's tokens verify with the test JWKS).
        let token = valid_token("changer");
        let change = |old: &str, new: &str| json!({"old_password": old, "new_password": new});
        for (old, new, status, err) in [
            ("wrong", "Strong-1!", 401, "invalid_credentials"),
            ("many", "Strong-1!", 429, "attempt_limit_exceeded"),
            ("right", "weak", 400, "weak_password"),
        ] {
            let got = post_bearer(&sc, "/change-password", &token, change(old, new)).await;
            assert_error(&got, status, err);
        }
        let (s, v) = post_bearer(
            &sc,
            "/change-password",
            &token,
            change("right", "Strong-1!"),
        )
        .await;
        assert_eq!((s, v), (200, json!({"ok": true})));

        let targets = fake.targets();
        for t in [
            admin,
            respond,
            "VerifySoftwareToken",
            "AssociateSoftwareToken",
            "ForgotPassword",
            "ConfirmForgotPassword",
            "ChangePassword",
        ] {
            assert!(
                targets.iter().any(|x| x == t),
                "{flow:?}: {t} never called: {targets:?}"
            );
        }
        fake.calls.lock().expect("lock").clear();
        sc.stop().await;
    }
}

/// Every MFA and recovery endpoint is routed under the prefix and answers only POST.
#[tokio::test]
async fn new_endpoints_are_post_only() {
    let _shared = EXCLUSIVE.read().await;
    let jwks = JwksServer::start().await;
    let c = gate_config(&jwks.url, "http://127.0.0.1:9", "http://127.0.0.1:9");
    let sc = Sidecar::start(c).await;
    let mut seen = HashMap::new();
    for p in [
        "mfa",
        "mfa/setup",
        "mfa/verify",
        "forgot-password",
        "confirm-forgot-password",
        "change-password",
    ] {
        let resp = client()
            .get(sc.url(&format!("/api/user/{p}")))
            .send()
            .await
            .expect("get");
        assert_eq!(resp.headers()["allow"], "POST", "{p}");
        let got = status_json(resp).await;
        assert_error(&got, 405, "method_not_allowed");
        seen.insert(p, got.0);
    }
    assert_eq!(seen.len(), 6);
}
