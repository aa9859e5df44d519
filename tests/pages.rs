//! The pages' second half at the HTTP level, against moto through the real SDK: a forgotten
//! password (same answer whatever the email, the password twice, the pool's policy, the
//! recovery limits, then signed in) and authenticator-app enrollment (MFA_SETUP: QR code and
//! key on the page, a wrong first code refused, the right one signs in). The real-browser
//! scenarios are in tests/browser/.

mod common;

use aws_sdk_cognitoidentityprovider::types::{SoftwareTokenMfaConfigType, UserPoolMfaType};
use common::browser::*;
use common::*;

const FORGOT: &str = "/_auth/forgot-password";
const RESET: &str = "/_auth/reset-password";

/// GET a page; its CSRF cookie (equal to the form's field) and its HTML.
async fn page(sc: &Sidecar, path: &str) -> (String, String) {
    let resp = browser().get(sc.url(path)).send().await.expect("page");
    assert_eq!(resp.status(), 200, "{path}");
    let csrf = set_cookie_value(resp.headers(), "__Host-sidecar-csrf").expect("csrf cookie");
    let html = resp.text().await.expect("html");
    assert_eq!(field(&html, "csrf").as_deref(), Some(csrf.as_str()));
    (csrf, html)
}

/// The page without what differs between two answers by design (the CSRF token, the email).
fn normalized(html: &str, csrf: &str, email: &str) -> String {
    html.replace(csrf, "CSRF").replace(email, "EMAIL")
}

#[tokio::test]
async fn a_forgotten_password_is_reset_on_the_pages_and_signs_in() {
    let e = env_with(|_| {}).await;
    // The sign-in page links to the recovery, carrying the return path.
    let (_, html) = sign_in_page(&e.sc, "/after/reset").await;
    assert!(
        html.contains(
            r#"href="/_auth/forgot-password?return=%2Fafter%2Freset">Forgot your password?</a>"#
        ),
        "{html}"
    );
    let (csrf, html) = page(&e.sc, &format!("{FORGOT}?return=%2Fafter%2Freset")).await;
    assert_eq!(field(&html, "return").as_deref(), Some("/after/reset"));
    let jar = format!("__Host-sidecar-csrf={csrf}");
    let ask = |email: String| {
        let (jar, csrf) = (jar.clone(), csrf.clone());
        let sc = &e.sc;
        async move {
            post_form(
                sc,
                FORGOT,
                &jar,
                &[
                    ("csrf", &csrf),
                    ("email", &email),
                    ("return", "/after/reset"),
                ],
            )
            .await
        }
    };
    // A known and an unknown email get the same page (moto's code header is not relayed).
    let known = ask(e.user.clone()).await;
    assert_eq!(known.status(), 200);
    assert!(known
        .headers()
        .keys()
        .all(|k| !k.as_str().starts_with("x-moto")));
    let known = known.text().await.expect("html");
    let stranger = format!("nobody-{}@example.com", uuid_like());
    let unknown = ask(stranger.clone()).await;
    assert_eq!(unknown.status(), 200);
    let unknown = unknown.text().await.expect("html");
    assert!(known.contains("a code is on its way"), "{known}");
    assert_eq!(
        normalized(&known, &csrf, &e.user),
        normalized(&unknown, &csrf, &stranger)
    );
    // The pool's policy, read with DescribeUserPool, is on the form.
    assert!(
        known.contains(r#"<p class="hint" id="policy">At least "#),
        "{known}"
    );

    let reset = |code: &'static str, new: &'static str, again: &'static str| {
        let (jar, csrf, user) = (jar.clone(), csrf.clone(), e.user.clone());
        let sc = &e.sc;
        async move {
            post_form(
                sc,
                RESET,
                &jar,
                &[
                    ("csrf", &csrf),
                    ("email", &user),
                    ("code", code),
                    ("new_password", new),
                    ("confirm_password", again),
                    ("return", "/after/reset"),
                ],
            )
            .await
        }
    };
    // Two different passwords: the form again, announced, nothing sent to Cognito.
    let resp = reset("123456", "Brand-New-Passw0rd!", "Brand-New-Passw0rd?").await;
    assert_eq!(resp.status(), 400);
    let html = resp.text().await.expect("html");
    assert!(html.contains("The two passwords do not match."), "{html}");
    assert!(html.contains(r#"role="alert""#) && html.contains(r#"name="code""#));
    // A wrong code (moto checks the codes it marks as its own): the form again, announced.
    let resp = reset(
        "moto-confirmation-code:wrong",
        "Brand-New-Passw0rd!",
        "Brand-New-Passw0rd!",
    )
    .await;
    assert_eq!(resp.status(), 400);
    let html = resp.text().await.expect("html");
    assert!(
        html.contains(r#"role="alert""#) && html.contains(r#"name="code""#),
        "{html}"
    );
    // The code and a good password: signed in, back where the user was going.
    let resp = reset("123456", "Brand-New-Passw0rd!", "Brand-New-Passw0rd!").await;
    assert_eq!(resp.status(), 303, "{:?}", resp.text().await);
    assert_eq!(resp.headers()["location"], "/after/reset");
    let id = set_cookie_value(resp.headers(), "__Host-sidecar-session").expect("session");
    let resp = get_with(
        &e.sc,
        "/after/reset",
        &format!("__Host-sidecar-session={id}"),
        nav_headers(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let seen = e.echo.last();
    assert_eq!(seen.path, "/after/reset");
    assert_eq!(seen.header("x-auth-groups"), Some("staff"));
    assert!(seen.header("x-auth-sub").is_some_and(|s| !s.is_empty()));
    // The old password no longer works; the new one does.
    let (s, _) = login(&e.sc, &e.user, PASSWORD).await;
    assert_eq!(s, 401);
    let (s, v) = login(&e.sc, &e.user, "Brand-New-Passw0rd!").await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn recovery_on_the_pages_spends_the_recovery_budget() {
    let e = env_with(|c| {
        c.rate_limit.recovery_username_per_hour = 1;
        c.rate_limit.recovery_username_burst = 1;
    })
    .await;
    let (csrf, _) = page(&e.sc, FORGOT).await;
    let jar = format!("__Host-sidecar-csrf={csrf}");
    let fields = [("csrf", csrf.as_str()), ("email", e.user.as_str())];
    let first = post_form(&e.sc, FORGOT, &jar, &fields).await;
    assert_eq!(first.status(), 200);
    let second = post_form(&e.sc, FORGOT, &jar, &fields).await;
    assert_eq!(second.status(), 429);
    let html = second.text().await.expect("html");
    assert!(
        html.contains(r#"role="alert""#) && html.contains("retry later"),
        "{html}"
    );
    // The JSON API counts on the same budget.
    let (s, _) = status_json(
        client()
            .post(e.sc.url("/api/user/forgot-password"))
            .json(&serde_json::json!({ "email": e.user }))
            .send()
            .await
            .expect("forgot"),
    )
    .await;
    assert_eq!(s, 429);
    // A form without its CSRF cookie is refused before anything is counted or sent.
    let resp = post_form(&e.sc, FORGOT, "", &fields).await;
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn the_password_policy_shown_is_the_configured_one_or_none() {
    let e = env_with(|c| c.session.password_policy = Some("Use <20> characters.".into())).await;
    let newbie = e
        .pool
        .new_user(&format!("policy-{}@example.com", uuid_like()))
        .await;
    let (csrf, _) = sign_in_page(&e.sc, "/").await;
    let jar = format!("__Host-sidecar-csrf={csrf}");
    let fields = [
        ("csrf", csrf.as_str()),
        ("email", newbie.as_str()),
        ("password", TEMP_PASSWORD),
    ];
    let resp = post_form(&e.sc, SIGN_IN, &jar, &fields).await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.expect("html");
    assert!(html.contains("Choose a new password"), "{html}");
    assert!(
        html.contains(r#"<p class="hint" id="policy">Use &lt;20&gt; characters.</p>"#),
        "{html}"
    );
    assert!(html.contains(r#"name="confirm_password""#));

    let e = env_with(|c| c.session.read_password_policy = false).await;
    let (csrf, _) = page(&e.sc, FORGOT).await;
    let jar = format!("__Host-sidecar-csrf={csrf}");
    let resp = post_form(
        &e.sc,
        FORGOT,
        &jar,
        &[("csrf", csrf.as_str()), ("email", e.user.as_str())],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.expect("html");
    assert!(html.contains(r#"name="new_password""#) && !html.contains(r#"id="policy""#));
}

#[tokio::test]
async fn mfa_setup_shows_a_qr_code_and_the_first_code_signs_in() {
    let e = env_with(|_| {}).await;
    e.pool
        .admin
        .set_user_pool_mfa_config()
        .user_pool_id(&e.pool.pool_id)
        .software_token_mfa_configuration(
            SoftwareTokenMfaConfigType::builder().enabled(true).build(),
        )
        .mfa_configuration(UserPoolMfaType::On)
        .send()
        .await
        .expect("pool mfa");
    let newbie = e
        .pool
        .new_user(&format!("enrol-{}@example.com", uuid_like()))
        .await;
    let (csrf, _) = sign_in_page(&e.sc, "/enrolled").await;
    let jar = format!("__Host-sidecar-csrf={csrf}");
    let resp = post_form(
        &e.sc,
        SIGN_IN,
        &jar,
        &[
            ("csrf", &csrf),
            ("email", &newbie),
            ("password", TEMP_PASSWORD),
            ("return", "/enrolled"),
        ],
    )
    .await;
    let html = resp.text().await.expect("html");
    let session = field(&html, "session").expect("new-password session");
    let resp = post_form(
        &e.sc,
        "/_auth/new-password",
        &jar,
        &[
            ("csrf", &csrf),
            ("email", &newbie),
            ("session", &session),
            ("new_password", PASSWORD),
            ("confirm_password", PASSWORD),
            ("return", "/enrolled"),
        ],
    )
    .await;
    // MFA_SETUP: the key as text and as a QR code, inline (the pages allow no script).
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.expect("html");
    assert!(html.contains("Set up your authenticator app"), "{html}");
    let secret = field(&html, "secret").expect("secret field");
    assert!(html.contains(&format!(r#"<code id="secret">{secret}</code>"#)));
    assert!(html.contains(r#"<svg role="img" aria-label="QR code of the key below""#));
    let setup_session = field(&html, "session").expect("setup session");
    let username = field(&html, "username").expect("username");
    let answer = |code: String| {
        let (jar, csrf, s, u, n, secret) = (
            jar.clone(),
            csrf.clone(),
            setup_session.clone(),
            username.clone(),
            newbie.clone(),
            secret.clone(),
        );
        let sc = &e.sc;
        async move {
            post_form(
                sc,
                "/_auth/mfa-setup",
                &jar,
                &[
                    ("csrf", &csrf),
                    ("email", &n),
                    ("username", &u),
                    ("session", &s),
                    ("secret", &secret),
                    ("code", &code),
                    ("return", "/enrolled"),
                ],
            )
            .await
        }
    };
    // A wrong first code: the same page, the same key, announced.
    let resp = answer("000000".into()).await;
    assert_eq!(resp.status(), 400);
    let html = resp.text().await.expect("html");
    assert!(html.contains(r#"role="alert""#), "{html}");
    assert_eq!(field(&html, "secret").as_deref(), Some(secret.as_str()));
    // The code the app would show for the key on the page signs in.
    let resp = answer(totp_now(&secret).await).await;
    assert_eq!(resp.status(), 303, "{:?}", resp.text().await);
    assert_eq!(resp.headers()["location"], "/enrolled");
    assert!(set_cookie_value(resp.headers(), "__Host-sidecar-session").is_some());
}
