//! Refresh-token rotation (`cognito.refresh_token_rotation`): `/refresh` and the sessions'
//! transparent refresh go through GetTokensFromRefreshToken, return (or store) the new refresh
//! token, and with Redis one task of a fleet refreshes a session at a time. Token revocation:
//! a browser's sign-out revokes its own refresh token (RevokeToken) and refuses its own
//! session's tokens at the gate, the user's other sessions untouched; without revocation on
//! the app client it falls back to GlobalSignOut; `/api/user/revoke`. Threat protection: the
//! sign-in calls carry the user's ContextData. Choice-based sign-in in the JSON API and on the
//! pages ("Email me a code"), and the device fingerprint's EncodedData.
//!
//! moto 5.2.5 has neither GetTokensFromRefreshToken nor RevokeToken: a fake speaking Cognito's
//! JSON protocol on loopback answers them (and AdminInitiateAuth, GlobalSignOut), asserting the
//! exact request the SDK sent. Its tokens are minted with the fixture keys and served by a
//! loopback JWKS.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cognito_sidecar::config::{Config, SharedBackend};
use common::browser::{
    browser, field, metric, post_form, set_cookie_value, sign_in, sign_in_page, SIGN_IN,
};
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{json, Value};

const SECRET: &str = "rotation-client-secret";
const USER: &str = "rotating@example.com";
const SUB: &str = "7d6c5b4a-1111-2222-3333-444455556666";

/// A call the fake received: its `X-Amz-Target` operation and JSON body.
#[derive(Clone, Debug)]
struct Call {
    op: String,
    body: Value,
}

struct Fake {
    url: String,
    calls: Arc<Mutex<Vec<Call>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn answer(status: u16, body: Value, error: Option<&str>) -> Response<Full<Bytes>> {
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1");
    if let Some(kind) = error {
        b = b.header("x-amzn-errortype", kind);
    }
    b.body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

/// The `n`-th tokens of the session. The tests move the sidecar's clock 3,550 s per refresh
/// (into the 60-second margin), so the `n`-th access token expires 3,600 s after the clock
/// the sidecar reads when it gets it.
/// `sign_in`: which sign-in of the test they come from (its `origin_jti`, its refresh token).
fn tokens(n: u64, sign_in: u64) -> Value {
    let mut claims = access_claims(SUB);
    claims["exp"] = json!(now() + 3550 * (n - 1) + 3600);
    claims["jti"] = json!(format!("jti-{n}-{sign_in}"));
    claims["origin_jti"] = json!(format!("origin-{sign_in}"));
    claims["username"] = json!(SUB);
    let mut id = claims.clone();
    id["token_use"] = json!("id");
    id["aud"] = json!(CLIENT_ID);
    id["cognito:username"] = json!(SUB);
    json!({
        "AccessToken": mint("key1", "k1", &claims),
        "IdToken": mint("key1", "k1", &id),
        "RefreshToken": refresh_token(n, sign_in),
        "ExpiresIn": 3600,
        "TokenType": "Bearer",
    })
}

/// The EMAIL_OTP challenge of choice-based sign-in.
fn email_otp() -> Value {
    json!({
        "ChallengeName": "EMAIL_OTP",
        "Session": "s-otp",
        "ChallengeParameters": {
            "CODE_DELIVERY_DESTINATION": "r***@e***",
            "CODE_DELIVERY_DELIVERY_MEDIUM": "EMAIL",
        },
    })
}

/// The first sign-in's tokens are `rt-1`, `rt-2`, ...; another sign-in's `rt-1-s2`, ...
fn refresh_token(n: u64, sign_in: u64) -> String {
    if sign_in == 1 {
        format!("rt-{n}")
    } else {
        format!("rt-{n}-s{sign_in}")
    }
}

impl Fake {
    /// `delay`: how long GetTokensFromRefreshToken takes (to make two tasks overlap).
    async fn start(delay: Duration) -> Fake {
        Self::with(delay, true).await
    }

    /// `revocation`: whether the app client has token revocation (RevokeToken works).
    async fn with(delay: Duration, revocation: bool) -> Fake {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c = Arc::clone(&calls);
        let sign_ins = Arc::new(AtomicU64::new(0));
        let (addr, stop) = serve_fn(Arc::new(move |req: Request<Incoming>| {
            let c = Arc::clone(&c);
            let sign_ins = Arc::clone(&sign_ins);
            Box::pin(async move {
                let op = req
                    .headers()
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|t| t.strip_prefix("AWSCognitoIdentityProviderService."))
                    .unwrap_or_default()
                    .to_string();
                let bytes = req.into_body().collect().await.expect("body").to_bytes();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                c.lock().expect("lock").push(Call {
                    op: op.clone(),
                    body: body.clone(),
                });
                match op.as_str() {
                    // Choice-based sign-in without a password: the ways the pool offers.
                    "AdminInitiateAuth"
                        if body["AuthFlow"] == "USER_AUTH"
                            && body["AuthParameters"].get("PASSWORD").is_none() =>
                    {
                        if body["AuthParameters"]["PREFERRED_CHALLENGE"] == "EMAIL_OTP" {
                            answer(200, email_otp(), None)
                        } else {
                            answer(
                                200,
                                json!({
                                    "ChallengeName": "SELECT_CHALLENGE",
                                    "Session": "s-select",
                                    "ChallengeParameters": {},
                                    "AvailableChallenges": ["EMAIL_OTP", "PASSWORD"],
                                }),
                                None,
                            )
                        }
                    }
                    "AdminInitiateAuth" => {
                        let k = sign_ins.fetch_add(1, Ordering::SeqCst) + 1;
                        answer(200, json!({ "AuthenticationResult": tokens(1, k) }), None)
                    }
                    "AdminRespondToAuthChallenge" => {
                        let r = &body["ChallengeResponses"];
                        match (body["ChallengeName"].as_str(), r["ANSWER"].as_str()) {
                            (Some("SELECT_CHALLENGE"), Some("EMAIL_OTP")) => answer(200, email_otp(), None),
                            (Some("SELECT_CHALLENGE"), Some("PASSWORD")) if r["PASSWORD"] == "Any-Passw0rd!" => {
                                answer(200, json!({ "AuthenticationResult": tokens(1, 9) }), None)
                            }
                            (Some("EMAIL_OTP"), _) if r["EMAIL_OTP_CODE"] == "123456" => {
                                answer(200, json!({ "AuthenticationResult": tokens(1, 8) }), None)
                            }
                            _ => answer(
                                400,
                                json!({"__type": "CodeMismatchException", "message": "SECRET-DETAIL"}),
                                Some("CodeMismatchException"),
                            ),
                        }
                    }
                    "RevokeToken" if revocation => answer(200, json!({}), None),
                    "RevokeToken" => answer(
                        400,
                        json!({"__type": "UnsupportedOperationException", "message": "Token revocation is not enabled"}),
                        Some("UnsupportedOperationException"),
                    ),
                    "GlobalSignOut" => answer(200, json!({}), None),
                    // The pool's policies: a password, or a code by email, to start with.
                    "DescribeUserPool" => answer(
                        200,
                        json!({ "UserPool": { "Id": "us-east-1_fake", "Policies": {
                            "PasswordPolicy": { "MinimumLength": 12, "RequireNumbers": true },
                            "SignInPolicy": { "AllowedFirstAuthFactors": ["PASSWORD", "EMAIL_OTP"] },
                        } } }),
                        None,
                    ),
                    "GetTokensFromRefreshToken" => {
                        tokio::time::sleep(delay).await;
                        let rt = body["RefreshToken"].as_str().unwrap_or_default();
                        match rt {
                            "rt-reused" => answer(
                                400,
                                json!({"__type": "RefreshTokenReuseException", "message": "SECRET-DETAIL rt-reused"}),
                                Some("RefreshTokenReuseException"),
                            ),
                            "rt-unsupported" => answer(
                                400,
                                json!({"__type": "UnsupportedOperationException", "message": "SECRET-DETAIL"}),
                                Some("UnsupportedOperationException"),
                            ),
                            _ => {
                                let n: u64 = rt
                                    .strip_prefix("rt-")
                                    .and_then(|n| n.parse().ok())
                                    .unwrap_or(0);
                                answer(200, json!({ "AuthenticationResult": tokens(n + 1, 1) }), None)
                            }
                        }
                    }
                    _ => answer(
                        400,
                        json!({"__type": "InvalidParameterException", "message": "not faked"}),
                        Some("InvalidParameterException"),
                    ),
                }
            })
        }))
        .await;
        Fake {
            url: format!("http://{addr}"),
            calls,
            _stop: stop,
        }
    }

    fn refreshes(&self) -> Vec<Value> {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .filter(|c| c.op == "GetTokensFromRefreshToken")
            .map(|c| c.body.clone())
            .collect()
    }

    fn bodies(&self, op: &str) -> Vec<Value> {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .filter(|c| c.op == op)
            .map(|c| c.body.clone())
            .collect()
    }

    fn ops(&self) -> Vec<String> {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .map(|c| c.op.clone())
            .collect()
    }
}

/// The loopback JWKS, the echo app and the fake (`revocation`: RevokeToken works).
async fn parts(revocation: bool) -> (JwksServer, Echo, Fake) {
    (
        JwksServer::start().await,
        Echo::start().await,
        Fake::with(Duration::ZERO, revocation).await,
    )
}

fn config(jwks: &JwksServer, echo: &Echo, fake: &Fake) -> Config {
    let mut c = gate_config(&jwks.url, &echo.url(), &fake.url);
    c.cognito.client_secret = Some(SECRET.into());
    c.cognito.refresh_token_rotation = true;
    c.cognito.max_attempts = 1;
    c.session.enabled = true;
    c.rate_limit.username_burst = 1000;
    c
}

#[tokio::test]
async fn refresh_goes_through_get_tokens_from_refresh_token_and_answers_the_new_token() {
    let (jwks, echo, fake) = parts(true).await;
    let sc = Sidecar::start(config(&jwks, &echo, &fake)).await;
    // No username although the client has a secret: the raw secret goes instead of SECRET_HASH.
    let resp = client()
        .post(sc.url("/api/user/refresh"))
        .json(&json!({ "refresh_token": "rt-1" }))
        .send()
        .await
        .expect("refresh");
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["refresh_token"], "rt-2",
        "the new refresh token, in the seed's field"
    );
    assert!(body["access_token"]
        .as_str()
        .is_some_and(|t| t.split('.').count() == 3));
    assert_eq!(fake.ops(), ["GetTokensFromRefreshToken"]);
    assert_eq!(
        fake.refreshes(),
        [json!({ "ClientId": CLIENT_ID, "RefreshToken": "rt-1", "ClientSecret": SECRET })],
        "exactly what the SDK sent"
    );

    // A rotated token used again, and a client without rotation: clear errors, no detail.
    for (rt, want_status, want_code) in [
        ("rt-reused", 401, "invalid_refresh_token"),
        ("rt-unsupported", 502, "idp_error"),
    ] {
        let resp = client()
            .post(sc.url("/api/user/refresh"))
            .json(&json!({ "refresh_token": rt }))
            .send()
            .await
            .expect("refresh");
        let (status, body) = status_json(resp).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (want_status, Some(want_code)),
            "{rt}"
        );
        assert!(!body.to_string().contains("SECRET-DETAIL"), "{body}");
        assert!(!body.to_string().contains(rt), "{body}");
    }
}

#[tokio::test]
async fn a_session_keeps_the_rotated_refresh_token() {
    let (jwks, echo, fake) = parts(true).await;
    let sc = Sidecar::start(config(&jwks, &echo, &fake)).await;
    let id = sign_in(&sc, USER, "Any-Passw0rd!", "/").await;
    let cookie = format!("__Host-sidecar-session={id}");
    let get = || {
        browser()
            .get(sc.url("/x"))
            .header("cookie", cookie.clone())
            .send()
    };
    // Each jump puts the current access token within the refresh margin.
    for n in 1..=2 {
        sc.clock.advance(Duration::from_secs(3550));
        let resp = get().await.expect("app");
        assert_eq!(resp.status(), 200, "refresh {n}");
    }
    let used: Vec<_> = fake
        .refreshes()
        .iter()
        .map(|b| b["RefreshToken"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        used,
        ["rt-1", "rt-2"],
        "the second refresh used the token the first returned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_one_task_refreshes_a_session_and_the_other_adopts_its_tokens() {
    let (_redis, url) = redis_server();
    let (jwks, echo) = (JwksServer::start().await, Echo::start().await);
    // Slow enough that both tasks are inside the refresh at once.
    let fake = Fake::start(Duration::from_millis(600)).await;
    let fleet = || {
        let mut c = config(&jwks, &echo, &fake);
        c.shared.backend = SharedBackend::Redis;
        c.shared.url = url.clone();
        c
    };
    let (a, b) = (Sidecar::start(fleet()).await, Sidecar::start(fleet()).await);
    for _ in 0..200 {
        if [&a, &b]
            .iter()
            .all(|s| s.app.render_metrics().contains("sidecar_shared_state 2"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let id = sign_in(&a, USER, "Any-Passw0rd!", "/").await;
    let cookie = format!("__Host-sidecar-session={id}");
    // B reads the session once, so both tasks hold it before the refresh is due.
    let get = |s: &Sidecar| {
        browser()
            .get(s.url("/x"))
            .header("cookie", cookie.clone())
            .send()
    };
    assert_eq!(get(&b).await.expect("b").status(), 200);
    a.clock.advance(Duration::from_secs(3550));
    b.clock.advance(Duration::from_secs(3550));
    let (ra, rb) = tokio::join!(get(&a), get(&b));
    assert_eq!(ra.expect("a").status(), 200);
    assert_eq!(rb.expect("b").status(), 200);
    assert_eq!(fake.refreshes().len(), 1, "one refresh for the fleet");
    let adopted: f64 = [&a, &b]
        .iter()
        .map(|s| {
            metric(
                &s.app.render_metrics(),
                r#"sidecar_session_refreshes_total{outcome="adopted"} "#,
            )
        })
        .sum();
    assert_eq!(
        adopted, 1.0,
        "the other task took the new tokens from Redis"
    );
    // Both now send the same, new access token's identity; a later refresh starts from rt-2.
    a.clock.advance(Duration::from_secs(3550));
    b.clock.advance(Duration::from_secs(3550));
    assert_eq!(get(&b).await.expect("b").status(), 200);
    let used: Vec<_> = fake
        .refreshes()
        .iter()
        .map(|b| b["RefreshToken"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(used, ["rt-1", "rt-2"]);
}

/// Two sessions of one user, each with the access token the app received for it.
async fn two_sessions(sc: &Sidecar, echo: &Echo) -> [(String, String); 2] {
    let mut out = Vec::new();
    for _ in 0..2 {
        let id = sign_in(sc, USER, "Any-Passw0rd!", "/").await;
        let cookie = format!("__Host-sidecar-session={id}");
        let resp = browser()
            .get(sc.url("/x"))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("app");
        assert_eq!(resp.status(), 200);
        let token = echo
            .last()
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .expect("forwarded access token")
            .to_string();
        out.push((cookie, token));
    }
    out.try_into().expect("two")
}

async fn sign_out(sc: &Sidecar, cookie: &str) {
    let page = browser()
        .get(sc.url("/_auth/sign-out"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("page");
    let csrf =
        common::browser::set_cookie_value(page.headers(), "__Host-sidecar-csrf").expect("csrf");
    let resp = common::browser::post_form(
        sc,
        "/_auth/sign-out",
        &format!("{cookie}; __Host-sidecar-csrf={csrf}"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(resp.status(), 303);
}

async fn bearer_status(sc: &Sidecar, token: &str) -> (u16, Value) {
    let resp = client()
        .get(sc.url("/x"))
        .bearer_auth(token)
        .send()
        .await
        .expect("app");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_browser_sign_out_revokes_its_own_session_only() {
    let (jwks, echo, fake) = parts(true).await;
    let mut c = config(&jwks, &echo, &fake);
    c.session.forward_access_token = true;
    let sc = Sidecar::start(c).await;
    let [(first, first_token), (second, second_token)] = two_sessions(&sc, &echo).await;
    // Later than the sign-ins' second, so a user-wide logout would refuse both.
    sc.clock.advance(Duration::from_secs(2));
    sign_out(&sc, &first).await;
    assert_eq!(
        fake.bodies("RevokeToken"),
        [json!({ "Token": "rt-1", "ClientId": CLIENT_ID, "ClientSecret": SECRET })],
        "exactly what the SDK sent"
    );
    assert!(
        fake.bodies("GlobalSignOut").is_empty(),
        "no sign-out of every device"
    );
    // The signed-out session's access token is refused at the gate; the other session, and
    // its token, go on.
    let (status, body) = bearer_status(&sc, &first_token).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_revoked"))
    );
    assert_eq!(bearer_status(&sc, &second_token).await.0, 200);
    let resp = browser()
        .get(sc.url("/x"))
        .header("cookie", &second)
        .send()
        .await
        .expect("app");
    assert_eq!(resp.status(), 200, "the user's other session");
    let resp = browser()
        .get(sc.url("/x"))
        .header("cookie", &first)
        .send()
        .await
        .expect("app");
    assert_eq!(resp.status(), 401, "the signed-out session");
}

#[tokio::test]
async fn without_token_revocation_a_sign_out_falls_back_to_global_sign_out() {
    let (jwks, echo, fake) = parts(false).await;
    let mut c = config(&jwks, &echo, &fake);
    c.session.forward_access_token = true;
    let sc = Sidecar::start(c).await;
    let [(first, _), (_, second_token)] = two_sessions(&sc, &echo).await;
    sc.clock.advance(Duration::from_secs(2));
    sign_out(&sc, &first).await;
    assert_eq!(fake.bodies("RevokeToken").len(), 1);
    assert_eq!(fake.bodies("GlobalSignOut").len(), 1, "the fall-back");
    // GlobalSignOut ends every session of the user: the gate refuses them all.
    let (status, body) = bearer_status(&sc, &second_token).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_revoked"))
    );
}

async fn revoke(sc: &Sidecar, refresh: &str, bearer: Option<&str>) -> (u16, Value) {
    let mut req = client()
        .post(sc.url("/api/user/revoke"))
        .json(&json!({ "refresh_token": refresh }));
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    status_json(req.send().await.expect("revoke")).await
}

#[tokio::test]
async fn api_revoke_signs_out_one_session() {
    let (jwks, echo, fake) = parts(true).await;
    let sc = Sidecar::start(config(&jwks, &echo, &fake)).await;
    let (_, first) = login(&sc, USER, "Any-Passw0rd!").await;
    let (_, second) = login(&sc, USER, "Any-Passw0rd!").await;
    let token = |v: &Value, k: &str| v[k].as_str().expect(k).to_string();
    sc.clock.advance(Duration::from_secs(2));

    // With the session's access token: Cognito's side and the gates'.
    let (status, body) = revoke(
        &sc,
        &token(&first, "refresh_token"),
        Some(&token(&first, "access_token")),
    )
    .await;
    assert_eq!((status, &body), (200, &json!({ "ok": true })));
    assert_eq!(
        fake.bodies("RevokeToken"),
        [json!({ "Token": "rt-1", "ClientId": CLIENT_ID, "ClientSecret": SECRET })]
    );
    let (status, body) = bearer_status(&sc, &token(&first, "access_token")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_revoked"))
    );
    assert_eq!(
        bearer_status(&sc, &token(&second, "access_token")).await.0,
        200,
        "the other session"
    );
    assert!(fake.bodies("GlobalSignOut").is_empty());

    // Without it: Cognito's side only (the access token verifies until it expires).
    let (status, _) = revoke(&sc, &token(&second, "refresh_token"), None).await;
    assert_eq!(status, 200);
    assert_eq!(fake.bodies("RevokeToken")[1]["Token"], "rt-1-s2");
    assert_eq!(
        bearer_status(&sc, &token(&second, "access_token")).await.0,
        200
    );

    // A bearer token that does not verify is refused before Cognito is called.
    let (status, body) = revoke(&sc, "rt-x", Some("not.a.token")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(fake.bodies("RevokeToken").len(), 2);
    let resp = client()
        .post(sc.url("/api/user/revoke"))
        .json(&json!({}))
        .send()
        .await
        .expect("revoke");
    let (status, body) = status_json(resp).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("missing_field"))
    );
}

#[tokio::test]
async fn api_revoke_on_a_client_without_revocation_is_a_clear_error() {
    let (jwks, echo, fake) = parts(false).await;
    let sc = Sidecar::start(config(&jwks, &echo, &fake)).await;
    let (status, body) = revoke(&sc, "rt-1", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (501, Some("revocation_not_enabled")),
        "{body}"
    );
    assert!(
        !body.to_string().contains("Token revocation is not enabled"),
        "Cognito's own text"
    );
}

/// The ContextData of the fake's `n`-th call of `op`.
fn context_of(fake: &Fake, op: &str, n: usize) -> Value {
    fake.bodies(op)[n]["ContextData"].clone()
}

#[tokio::test]
async fn sign_in_calls_carry_the_users_context_for_threat_protection() {
    let (jwks, echo, fake) = parts(true).await;
    let mut c = config(&jwks, &echo, &fake);
    // A front proxy on loopback: its X-Forwarded-For hop is the user's address, the same the
    // rate limits count.
    c.server.trusted_proxies = vec!["127.0.0.1/32".parse().expect("cidr")];
    c.cognito.server_name = Some("app.example.com".into());
    let sc = Sidecar::start(c).await;
    let resp = client()
        .post(sc.url("/api/user/login"))
        .header("user-agent", "Mozilla/5.0 (test)")
        .header("accept-language", "de-CH")
        .header("x-forwarded-for", "203.0.113.7")
        .header("cookie", "session=secret-cookie")
        .header("authorization", "Bearer not-for-cognito")
        .json(&json!({ "email": USER, "password": "Any-Passw0rd!" }))
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), 200);
    let ctx = context_of(&fake, "AdminInitiateAuth", 0);
    assert_eq!(ctx["IpAddress"], "203.0.113.7");
    assert_eq!(ctx["ServerName"], "app.example.com");
    assert_eq!(ctx["ServerPath"], "/api/user/login");
    let headers: Vec<(String, String)> = ctx["HttpHeaders"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|h| {
            (
                h["headerName"].as_str().expect("name").into(),
                h["headerValue"].as_str().expect("value").into(),
            )
        })
        .collect();
    assert!(
        headers.contains(&("user-agent".into(), "Mozilla/5.0 (test)".into())),
        "{headers:?}"
    );
    assert!(
        headers.contains(&("accept-language".into(), "de-CH".into())),
        "{headers:?}"
    );
    for (name, _) in &headers {
        assert!(
            !["cookie", "authorization", "x-forwarded-for", "host"].contains(&name.as_str()),
            "{name} must not reach Cognito"
        );
    }
    assert!(
        !ctx.to_string().contains("secret-cookie") && !ctx.to_string().contains("not-for-cognito")
    );

    // The pages' sign-in too, with the page's path; the request's Host without server_name.
    let mut c = config(&jwks, &echo, &fake);
    c.cognito.max_attempts = 1;
    let pages = Sidecar::start(c).await;
    let _ = sign_in(&pages, USER, "Any-Passw0rd!", "/").await;
    let ctx = context_of(&fake, "AdminInitiateAuth", 1);
    assert_eq!(ctx["ServerPath"], "/_auth/sign-in");
    assert_eq!(ctx["ServerName"], pages.addr.to_string());
    assert_eq!(ctx["IpAddress"], "127.0.0.1");

    // Off: no ContextData at all.
    let mut c = config(&jwks, &echo, &fake);
    c.cognito.context_data = false;
    let off = Sidecar::start(c).await;
    let (status, _) = login(&off, USER, "Any-Passw0rd!").await;
    assert_eq!(status, 200);
    assert!(fake.bodies("AdminInitiateAuth")[2]
        .get("ContextData")
        .is_none());
}

#[tokio::test]
async fn choice_based_sign_in_offers_the_pools_ways_and_answers_them() {
    let (jwks, echo, fake) = parts(true).await;
    let mut c = config(&jwks, &echo, &fake);
    c.cognito.choice_based_sign_in = true;
    let sc = Sidecar::start(c).await;

    // An email alone: SELECT_CHALLENGE with the ways the pool offers this user.
    let (status, body) = post_json(&sc, "/api/user/login", json!({ "email": USER })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["challenge"], "SELECT_CHALLENGE");
    assert_eq!(body["session"], "s-select");
    assert_eq!(
        body["challenge_hints"]["available_challenges"],
        json!(["EMAIL_OTP", "PASSWORD"])
    );
    let sent = &fake.bodies("AdminInitiateAuth")[0];
    assert_eq!(sent["AuthFlow"], "USER_AUTH");
    let params: Vec<&str> = sent["AuthParameters"]
        .as_object()
        .expect("params")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        params,
        ["SECRET_HASH", "USERNAME"],
        "no password, no preference"
    );
    assert_eq!(sent["AuthParameters"]["USERNAME"], USER);

    // Choosing a code by email, then the code (through /mfa).
    let mfa = |extra: Value| {
        let mut b = json!({ "email": USER });
        for (k, v) in extra.as_object().expect("object") {
            b[k] = v.clone();
        }
        b
    };
    let (status, body) = post_json(&sc, "/api/user/mfa", mfa(json!({ "session": "s-select", "challenge": "SELECT_CHALLENGE", "answer": "EMAIL_OTP" }))).await;
    assert_eq!(
        (status, body["challenge"].as_str()),
        (200, Some("EMAIL_OTP")),
        "{body}"
    );
    assert_eq!(
        body["challenge_hints"]["code_delivery_destination"],
        "r***@e***"
    );
    let sent = &fake.bodies("AdminRespondToAuthChallenge")[0];
    assert_eq!(sent["ChallengeName"], "SELECT_CHALLENGE");
    assert_eq!(sent["ChallengeResponses"]["ANSWER"], "EMAIL_OTP");
    assert_eq!(sent["ChallengeResponses"]["USERNAME"], USER);
    let (status, body) = post_json(
        &sc,
        "/api/user/mfa",
        mfa(json!({ "session": "s-otp", "challenge": "EMAIL_OTP", "code": "654321" })),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_code")),
        "{body}"
    );
    let (status, body) = post_json(
        &sc,
        "/api/user/mfa",
        mfa(json!({ "session": "s-otp", "challenge": "EMAIL_OTP", "code": "123456" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"]
        .as_str()
        .is_some_and(|t| t.split('.').count() == 3));

    // Choosing the password instead.
    let (status, body) = post_json(&sc, "/api/user/mfa", mfa(json!({ "session": "s-select", "challenge": "SELECT_CHALLENGE", "answer": "PASSWORD", "password": "Any-Passw0rd!" }))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string());
    let sent = fake
        .bodies("AdminRespondToAuthChallenge")
        .pop()
        .expect("call");
    assert_eq!(sent["ChallengeResponses"]["PASSWORD"], "Any-Passw0rd!");
    let (status, body) = post_json(
        &sc,
        "/api/user/mfa",
        mfa(
            json!({ "session": "s-select", "challenge": "SELECT_CHALLENGE", "answer": "PASSWORD" }),
        ),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("missing_field"))
    );

    // A preferred way the pool offers goes straight to it; a password is the preferred way.
    let (status, body) = post_json(
        &sc,
        "/api/user/login",
        json!({ "email": USER, "preferred_challenge": "EMAIL_OTP" }),
    )
    .await;
    assert_eq!(
        (status, body["challenge"].as_str()),
        (200, Some("EMAIL_OTP")),
        "{body}"
    );
    let (status, body) = post_json(
        &sc,
        "/api/user/login",
        json!({ "email": USER, "password": "Any-Passw0rd!" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string());
    let sent = fake.bodies("AdminInitiateAuth").pop().expect("call");
    assert_eq!(sent["AuthFlow"], "USER_AUTH");
    assert_eq!(sent["AuthParameters"]["PREFERRED_CHALLENGE"], "PASSWORD");
    let (status, body) = post_json(
        &sc,
        "/api/user/login",
        json!({ "email": USER, "preferred_challenge": "WEB_AUTHN" }),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_field"))
    );

    // The document this sidecar serves says the password may be left out.
    let doc: Value = client()
        .get(sc.url("/api/user/openapi.json"))
        .send()
        .await
        .expect("doc")
        .json()
        .await
        .expect("json");
    assert_eq!(
        doc["components"]["schemas"]["LoginIn"]["required"],
        json!(["email"])
    );
}

#[tokio::test]
async fn without_choice_based_sign_in_a_login_needs_its_password() {
    let (jwks, echo, fake) = parts(true).await;
    let sc = Sidecar::start(config(&jwks, &echo, &fake)).await;
    let (status, body) = post_json(&sc, "/api/user/login", json!({ "email": USER })).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("missing_field"))
    );
    assert!(fake.ops().is_empty(), "nothing reached Cognito");
    // `preferred_challenge` is checked in this mode too, though only used with choices.
    for bad in [json!({}), json!(3), json!("WEB_AUTHN")] {
        let (status, body) = post_json(
            &sc,
            "/api/user/login",
            json!({ "email": USER, "password": "Any-Passw0rd!", "preferred_challenge": bad }),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_field")),
            "{bad}"
        );
    }
    assert!(fake.ops().is_empty(), "refused before Cognito");
    let doc: Value = client()
        .get(sc.url("/api/user/openapi.json"))
        .send()
        .await
        .expect("doc")
        .json()
        .await
        .expect("json");
    assert_eq!(
        doc["components"]["schemas"]["LoginIn"]["required"],
        json!(["email", "password"])
    );
}

/// A sign-in form post of `USER` with the page's CSRF token and `fields`.
async fn sign_in_post(
    sc: &Sidecar,
    cookie: &str,
    csrf: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut pairs = vec![("csrf", csrf), ("email", USER)];
    pairs.extend_from_slice(fields);
    post_form(sc, SIGN_IN, cookie, &pairs).await
}

/// The fields of a step's form (`/_auth/mfa`) posted from `page`: its challenge and session,
/// and the answer (`code` or `answer`).
fn step(
    csrf: &str,
    page: &str,
    (challenge, session): (&str, &str),
    (key, value): (&'static str, &str),
    ret: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("csrf", csrf.to_string()),
        ("email", USER.to_string()),
        ("username", field(page, "username").unwrap_or_default()),
        ("challenge", challenge.to_string()),
        ("session", session.to_string()),
        (key, value.to_string()),
        ("return", ret.to_string()),
    ]
}

/// `post_form` with owned values.
async fn post_owned(
    sc: &Sidecar,
    path: &str,
    cookie: &str,
    pairs: &[(&str, String)],
) -> reqwest::Response {
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    post_form(sc, path, cookie, &pairs).await
}

/// The sign-in page with choice-based sign-in: its CSRF cookie header, token and HTML.
async fn code_sign_in_page(sc: &Sidecar) -> (String, String, String) {
    let (csrf, html) = sign_in_page(sc, "/docs").await;
    (format!("__Host-sidecar-csrf={csrf}"), csrf, html)
}

#[tokio::test]
async fn the_sign_in_page_offers_a_code_by_email_and_signs_in_with_it() {
    let (jwks, echo, fake) = parts(true).await;
    let mut c = config(&jwks, &echo, &fake);
    c.cognito.choice_based_sign_in = true;
    let sc = Sidecar::start(c).await;

    // The pool allows PASSWORD and EMAIL_OTP first: one button, read once.
    let (cookie, csrf, html) = code_sign_in_page(&sc).await;
    assert!(
        html.contains(r#"<button type="submit" class="secondary" name="way" value="EMAIL_OTP" formnovalidate>Email me a code</button>"#),
        "{html}"
    );
    assert!(!html.contains("Text me a code"), "the pool has no SMS_OTP");
    let _ = code_sign_in_page(&sc).await;
    assert_eq!(fake.bodies("DescribeUserPool").len(), 1, "read once");

    // "Email me a code": USER_AUTH with the code as the preferred challenge, no password.
    let resp = sign_in_post(
        &sc,
        &cookie,
        &csrf,
        &[("way", "EMAIL_OTP"), ("password", ""), ("return", "/docs")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.expect("html");
    assert!(html.contains("Enter the code sent to r***@e***."), "{html}");
    assert_eq!(field(&html, "challenge").as_deref(), Some("EMAIL_OTP"));
    assert_eq!(field(&html, "session").as_deref(), Some("s-otp"));
    let sent = fake.bodies("AdminInitiateAuth").pop().expect("call");
    assert_eq!(sent["AuthFlow"], "USER_AUTH");
    let params: Vec<&str> = sent["AuthParameters"]
        .as_object()
        .expect("params")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(params, ["PREFERRED_CHALLENGE", "SECRET_HASH", "USERNAME"]);
    assert_eq!(sent["AuthParameters"]["PREFERRED_CHALLENGE"], "EMAIL_OTP");

    // A wrong code: the code page again; the right one: signed in, back to /docs.
    let code = |c: &str| step(&csrf, &html, ("EMAIL_OTP", "s-otp"), ("code", c), "/docs");
    let pairs = code("000000");
    let resp = post_owned(&sc, "/_auth/mfa", &cookie, &pairs).await;
    assert_eq!(resp.status(), 400);
    assert!(resp
        .text()
        .await
        .expect("html")
        .contains("Enter the code again."));
    let pairs = code("123456");
    let resp = post_owned(&sc, "/_auth/mfa", &cookie, &pairs).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/docs");
    let session = set_cookie_value(resp.headers(), "__Host-sidecar-session").expect("session");
    let sent = fake
        .bodies("AdminRespondToAuthChallenge")
        .pop()
        .expect("call");
    assert_eq!(sent["ChallengeName"], "EMAIL_OTP");
    assert_eq!(sent["ChallengeResponses"]["EMAIL_OTP_CODE"], "123456");
    let resp = browser()
        .get(sc.url("/docs"))
        .header("cookie", format!("__Host-sidecar-session={session}"))
        .send()
        .await
        .expect("app");
    assert_eq!(resp.status(), 200);
    assert_eq!(echo.last().header("x-auth-sub"), Some(SUB));

    // A way the page does not offer, or cannot answer, is refused before Cognito hears of it.
    let calls = fake.bodies("AdminInitiateAuth").len();
    for way in ["SMS_OTP", "WEB_AUTHN", "PASSWORD"] {
        let resp = sign_in_post(&sc, &cookie, &csrf, &[("way", way), ("return", "/docs")]).await;
        assert_eq!(resp.status(), 400, "{way}");
        assert!(resp
            .text()
            .await
            .expect("html")
            .contains("Please sign in again."));
    }
    assert_eq!(fake.bodies("AdminInitiateAuth").len(), calls);

    // Without choice-based sign-in: no button, and a `way` is not a sign-in.
    let plain = Sidecar::start(config(&jwks, &echo, &fake)).await;
    let (cookie, csrf, html) = code_sign_in_page(&plain).await;
    assert!(!html.contains(r#"name="way""#), "{html}");
    let resp = sign_in_post(
        &plain,
        &cookie,
        &csrf,
        &[("way", "EMAIL_OTP"), ("return", "/")],
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(fake.bodies("AdminInitiateAuth").len(), calls);
}

#[tokio::test]
async fn a_code_this_user_does_not_have_offers_the_ways_cognito_lists() {
    let (jwks, echo, fake) = parts(true).await;
    let mut c = config(&jwks, &echo, &fake);
    c.cognito.choice_based_sign_in = true;
    // Configured: the pool is not read.
    c.session.sign_in_codes = Some(vec![cognito_sidecar::config::SignInCode::SmsOtp]);
    let sc = Sidecar::start(c).await;
    let (cookie, csrf, html) = code_sign_in_page(&sc).await;
    assert!(html.contains(">Text me a code</button>"), "{html}");
    assert!(!html.contains("Email me a code"));
    assert!(fake.bodies("DescribeUserPool").is_empty());

    // The fake has no SMS for this user: SELECT_CHALLENGE with EMAIL_OTP and PASSWORD. The
    // page offers the code it can answer.
    let resp = sign_in_post(&sc, &cookie, &csrf, &[("way", "SMS_OTP"), ("return", "/")]).await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.expect("html");
    assert_eq!(
        field(&html, "challenge").as_deref(),
        Some("SELECT_CHALLENGE")
    );
    assert_eq!(field(&html, "session").as_deref(), Some("s-select"));
    assert!(
        html.contains(r#"<input type="radio" name="answer" value="EMAIL_OTP" checked> Email me a code</label>"#),
        "{html}"
    );
    assert!(!html.contains(r#"value="PASSWORD""#));
    let sent = fake.bodies("AdminInitiateAuth").pop().expect("call");
    assert_eq!(sent["AuthParameters"]["PREFERRED_CHALLENGE"], "SMS_OTP");

    // Choosing the email code: SELECT_CHALLENGE answered, then the code page.
    let choose = |a: &str| {
        step(
            &csrf,
            &html,
            ("SELECT_CHALLENGE", "s-select"),
            ("answer", a),
            "/",
        )
    };
    let pairs = choose("EMAIL_OTP");
    let resp = post_owned(&sc, "/_auth/mfa", &cookie, &pairs).await;
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.expect("html");
    assert_eq!(field(&page, "challenge").as_deref(), Some("EMAIL_OTP"));
    let sent = fake
        .bodies("AdminRespondToAuthChallenge")
        .pop()
        .expect("call");
    assert_eq!(sent["ChallengeName"], "SELECT_CHALLENGE");
    assert_eq!(sent["ChallengeResponses"]["ANSWER"], "EMAIL_OTP");

    // An answer the page did not offer is refused here.
    let calls = fake.bodies("AdminRespondToAuthChallenge").len();
    let pairs = choose("PASSWORD");
    let resp = post_owned(&sc, "/_auth/mfa", &cookie, &pairs).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(fake.bodies("AdminRespondToAuthChallenge").len(), calls);
}

#[tokio::test]
async fn the_device_fingerprint_reaches_cognito_as_encoded_data() {
    let (jwks, echo, fake) = parts(true).await;
    let mut c = config(&jwks, &echo, &fake);
    c.session.device_fingerprint = true;
    let sc = Sidecar::start(c).await;
    let resp = browser().get(sc.url(SIGN_IN)).send().await.expect("page");
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(
        csp.ends_with(
            "; script-src 'self' https://amazon-cognito-assets.us-east-1.amazoncognito.com"
        ),
        "{csp}"
    );
    assert!(csp.starts_with("default-src 'none';"), "{csp}");
    let csrf = set_cookie_value(resp.headers(), "__Host-sidecar-csrf").expect("csrf");
    let html = resp.text().await.expect("html");
    assert!(
        html.contains(r#"<input type="hidden" name="encoded_data" value="">"#),
        "{html}"
    );
    assert!(html.contains(r#"<script src="https://amazon-cognito-assets.us-east-1.amazoncognito.com/amazon-cognito-advanced-security-data.min.js" defer></script>"#));
    assert!(html.contains(&format!(
        r#"<script src="/_auth/fingerprint.js" data-pool="us-east-1_TestPool" data-client="{CLIENT_ID}" defer></script>"#
    )), "{html}");
    let js = browser()
        .get(sc.url("/_auth/fingerprint.js"))
        .send()
        .await
        .expect("script");
    assert_eq!(js.status(), 200);
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(js
        .text()
        .await
        .expect("js")
        .contains("AmazonCognitoAdvancedSecurityData.getData(who, pool, client)"));

    let cookie = format!("__Host-sidecar-csrf={csrf}");
    let resp = sign_in_post(
        &sc,
        &cookie,
        &csrf,
        &[
            ("password", "Any-Passw0rd!"),
            ("encoded_data", "ENC-device-1"),
            ("return", "/"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 303);
    let sent = fake.bodies("AdminInitiateAuth").pop().expect("call");
    assert_eq!(sent["ContextData"]["EncodedData"], "ENC-device-1");
    assert_eq!(sent["ContextData"]["ServerPath"], "/_auth/sign-in");

    // Off (the default): no script on the page, none allowed, and a posted value is not sent.
    let plain = Sidecar::start(config(&jwks, &echo, &fake)).await;
    let resp = browser()
        .get(plain.url(SIGN_IN))
        .send()
        .await
        .expect("page");
    assert!(!resp.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .contains("script-src"));
    let csrf = set_cookie_value(resp.headers(), "__Host-sidecar-csrf").expect("csrf");
    assert!(!resp.text().await.expect("html").contains("<script"));
    assert_eq!(
        browser()
            .get(plain.url("/_auth/fingerprint.js"))
            .send()
            .await
            .expect("script")
            .status(),
        404
    );
    let resp = sign_in_post(
        &plain,
        &format!("__Host-sidecar-csrf={csrf}"),
        &csrf,
        &[
            ("password", "Any-Passw0rd!"),
            ("encoded_data", "ENC-device-2"),
            ("return", "/"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 303);
    let sent = fake.bodies("AdminInitiateAuth").pop().expect("call");
    assert!(sent["ContextData"].get("EncodedData").is_none(), "{sent}");
}
