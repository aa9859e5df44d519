//! The gate: every verification rule broken one at a time with tokens minted from the test
//! keys; the JWKS cache (refetch on unknown kid, cooldown, rotation, outages); identity
//! headers (spoofing in every spelling, non-ASCII claims); routes (public, groups, path
//! tricks); health endpoints.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

struct Env {
    jwks: JwksServer,
    echo: Echo,
    sc: Sidecar,
}

async fn env_with(edit: impl FnOnce(&mut cognito_sidecar::Config)) -> Env {
    let jwks = JwksServer::start().await;
    let echo = Echo::start().await;
    let mut c = gate_config(&jwks.url, &echo.url(), &closed_url().await);
    edit(&mut c);
    let sc = Sidecar::start(c).await;
    Env { jwks, echo, sc }
}

async fn env() -> Env {
    env_with(|_| {}).await
}

async fn get(
    sc: &Sidecar,
    path: &str,
    token: Option<&str>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = client().get(sc.url(path));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = req.send().await.expect("request");
    let headers = resp.headers().clone();
    let (s, v) = status_json(resp).await;
    (s, v, headers)
}

/// Sends raw bytes (for paths and headers a client library would normalize) and returns the
/// status code.
async fn raw(sc: &Sidecar, request: String) -> u16 {
    send_raw(sc.addr, &request).await.0
}

fn raw_get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: app.test\r\n{extra}Connection: close\r\n\r\n")
}

fn with(mut claims: Value, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    edit(claims.as_object_mut().expect("object"));
    claims
}

#[tokio::test]
async fn a_valid_token_passes_with_identity_headers() {
    let e = env().await;
    let (status, _, _) = get(&e.sc, "/orders?x=1", Some(&valid_token("u-1"))).await;
    assert_eq!(status, 200);
    let seen = e.echo.last();
    assert_eq!(seen.path, "/orders?x=1");
    assert_eq!(seen.header("x-auth-sub"), Some("u-1"));
    assert_eq!(seen.header("x-auth-username"), Some("user-u-1"));
    assert_eq!(seen.header("x-auth-client-id"), Some(CLIENT_ID));
    assert_eq!(
        seen.header("x-auth-scope"),
        Some("aws.cognito.signin.user.admin")
    );
    assert_eq!(seen.header("x-auth-token-use"), Some("access"));
    assert_eq!(seen.header("x-auth-groups"), None);
    assert!(seen
        .header("authorization")
        .is_some_and(|a| a.starts_with("Bearer ")));
}

#[tokio::test]
async fn each_broken_rule_is_refused_with_its_code() {
    let e = env().await;
    let t = now();
    let base = access_claims("u-2");
    let hs256_with_public_key = {
        let pem = std::fs::read(fixture("key1.pub.pem")).expect("pem");
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some("k1".into());
        jsonwebtoken::encode(&h, &base, &jsonwebtoken::EncodingKey::from_secret(&pem))
            .expect("hs256")
    };
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": "k1"})),
        b64(&base)
    );
    let alg_none_sig = format!(
        "{}.{}.c2ln",
        b64(&json!({"alg": "none", "kid": "k1"})),
        b64(&base)
    );
    let rs512 = {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS512);
        h.kid = Some("k1".into());
        jsonwebtoken::encode(&h, &base, &encoding_key("key1")).expect("rs512")
    };
    let no_kid = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &base,
        &encoding_key("key1"),
    )
    .expect("sign");
    // An attacker's own key, announced through jku / an embedded jwk: both must be ignored.
    let jku = {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        h.kid = Some("attacker".into());
        h.jku = Some(format!("{}?attacker", e.jwks.url));
        jsonwebtoken::encode(&h, &base, &encoding_key("other")).expect("sign")
    };
    let embedded_jwk = {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        h.kid = Some("k1".into());
        h.jwk = Some(serde_json::from_value(jwk("other", "k1")).expect("jwk"));
        jsonwebtoken::encode(&h, &base, &encoding_key("other")).expect("sign")
    };
    let tampered = {
        let good = valid_token("u-2");
        let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
        parts[1] = b64(&with(base.clone(), |m| {
            m.insert("sub".into(), json!("admin"));
        }));
        parts.join(".")
    };

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            mint(
                "key1",
                "k1",
                &with(base.clone(), |m| {
                    m.insert("exp".into(), json!(t - 70));
                }),
            ),
            "token_expired",
        ),
        (
            "not yet valid",
            mint(
                "key1",
                "k1",
                &with(base.clone(), |m| {
                    m.insert("nbf".into(), json!(t + 600));
                }),
            ),
            "token_not_yet_valid",
        ),
        (
            "issued in the future",
            mint(
                "key1",
                "k1",
                &with(base.clone(), |m| {
                    m.insert("iat".into(), json!(t + 600));
                }),
            ),
            "token_issued_in_future",
        ),
        (
            "other issuer",
            mint(
                "key1",
                "k1",
                &with(base.clone(), |m| {
                    m.insert(
                        "iss".into(),
                        json!("https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other"),
                    );
                }),
            ),
            "wrong_issuer",
        ),
        (
            "issuer with trailing slash",
            mint(
                "key1",
                "k1",
                &with(base.clone(), |m| {
                    m.insert("iss".into(), json!(format!("{ISSUER}/")));
                }),
            ),
            "wrong_issuer",
        ),
        (
            "no issuer",
            mint(
                "key1",
                "k1",
                &with(base.clone(), |m| {
                    m.remove("iss");
                }),
            ),
            "wrong_issuer",
        ),
        (
            "id token",
            mint(
                "key1",
                "k1",
                &with(base.clone(), |m| {
                    m.insert("token_use".into(), json!("id"));
                }),
            ),
            "wrong_token_use",
        ),
        (
            "no token_use",
            mint(
                "key1",
                "k1",
                &with(base.clone(), |m| {
                    m.remove("token_use");
                }),
            ),
            "wrong_token_use",
        ),
        (
            "other client",
            mint(
                "key1",
                "k1",
                &with(base.clone(), |m| {
                    m.insert("client_id".into(), json!("other-client"));
                }),
            ),
            "wrong_client",
        ),
        (
            "no exp",
            mint(
                "key1",
                "k1",
                &with(base.clone(), |m| {
                    m.remove("exp");
                }),
            ),
            "claim_missing",
        ),
        (
            "no sub",
            mint(
                "key1",
                "k1",
                &with(base.clone(), |m| {
                    m.remove("sub");
                }),
            ),
            "claim_missing",
        ),
        (
            "string exp",
            mint(
                "key1",
                "k1",
                &with(base.clone(), |m| {
                    m.insert("exp".into(), json!("9999999999"));
                }),
            ),
            "claim_missing",
        ),
        ("unknown kid", mint("key1", "nope", &base), "kid_unknown"),
        ("no kid", no_kid, "kid_missing"),
        (
            "other key, known kid",
            mint("other", "k1", &base),
            "bad_signature",
        ),
        ("tampered payload", tampered, "bad_signature"),
        ("alg none", alg_none, "alg_not_allowed"),
        ("alg none with signature", alg_none_sig, "alg_not_allowed"),
        (
            "HS256 with the public key as secret",
            hs256_with_public_key,
            "alg_not_allowed",
        ),
        ("RS512 header", rs512, "alg_not_allowed"),
        ("jku header", jku, "kid_unknown"),
        ("embedded jwk", embedded_jwk, "bad_signature"),
        ("two segments", "abc.def".into(), "token_malformed"),
        ("garbage header", "!!!.def.ghi".into(), "token_malformed"),
        (
            "json garbage header",
            format!("{}.e30.c2ln", b64(&json!("str"))),
            "token_malformed",
        ),
    ];
    let before = e.echo.count();
    for (name, token, code) in cases {
        let (status, body, headers) = get(&e.sc, "/secret", Some(&token)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some(code)),
            "{name}: {body}"
        );
        assert_eq!(
            headers
                .get("www-authenticate")
                .map(|v| v.to_str().expect("ascii")),
            Some("Bearer error=\"invalid_token\""),
            "{name}"
        );
        assert!(
            !body.to_string().contains(&token[..token.len().min(20)]),
            "{name} echoed the token"
        );
    }
    assert_eq!(
        e.echo.count(),
        before,
        "a refused request reached the upstream"
    );
}

#[tokio::test]
async fn extraction_failures_are_refused_before_any_crypto() {
    let e = env().await;
    let token = valid_token("u-3");
    let cases: Vec<(String, u16, &str)> = vec![
        (String::new(), 401, "token_missing"),
        (
            "Authorization: Basic dXNlcjpwYXNz\r\n".into(),
            401,
            "invalid_scheme",
        ),
        ("Authorization: Bearer\r\n".into(), 401, "token_missing"),
        (
            format!("Authorization: Bearer {token}\r\nAuthorization: Bearer {token}\r\n"),
            401,
            "multiple_authorization",
        ),
        (
            format!("Authorization: Bearer {}\r\n", "a".repeat(9000)),
            401,
            "token_too_large",
        ),
        (format!("Authorization: bEaReR {token}\r\n"), 200, ""),
    ];
    let hits = e.jwks.hits();
    for (header, status, _code) in cases {
        assert_eq!(
            raw(&e.sc, raw_get("/x", &header)).await,
            status,
            "{header:.60}"
        );
    }
    // Codes, through a client.
    let (s, v, h) = get(&e.sc, "/x", None).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("token_missing")));
    assert_eq!(h["www-authenticate"], "Bearer");
    assert_eq!(
        e.jwks.hits(),
        hits,
        "no key fetch for requests without a usable token"
    );
}

#[tokio::test]
async fn id_tokens_when_configured_check_aud() {
    let e = env_with(|c| c.verify.token_use = vec!["id".into()]).await;
    let t = now();
    let id = json!({
        "iss": ISSUER, "sub": "u-4", "aud": CLIENT_ID, "token_use": "id", "iat": t, "exp": t + 600,
        "cognito:username": "alice", "email": "alice@example.com", "cognito:groups": ["a", "b"],
        "email_verified": true,
    });
    let (s, _, _) = get(&e.sc, "/x", Some(&mint("key1", "k1", &id))).await;
    assert_eq!(s, 200);
    let seen = e.echo.last();
    assert_eq!(seen.header("x-auth-username"), Some("alice"));
    assert_eq!(seen.header("x-auth-email"), Some("alice@example.com"));
    assert_eq!(seen.header("x-auth-groups"), Some("a,b"));
    assert_eq!(seen.header("x-auth-client-id"), Some(CLIENT_ID));
    // An email the user set themselves (not verified) identifies no one.
    for unverified in [json!(false), json!("false"), Value::Null] {
        let token = mint(
            "key1",
            "k1",
            &with(id.clone(), |m| {
                m.insert("email_verified".into(), unverified.clone());
            }),
        );
        assert_eq!(get(&e.sc, "/x", Some(&token)).await.0, 200);
        let seen = e.echo.last();
        assert_eq!(seen.header("x-auth-email"), None, "{unverified}");
        assert_eq!(seen.header("x-auth-username"), Some("alice"));
    }
    let wrong_aud = with(id.clone(), |m| {
        m.insert("aud".into(), json!("other"));
    });
    let (s, v, _) = get(&e.sc, "/x", Some(&mint("key1", "k1", &wrong_aud))).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("wrong_client")));
    // Access tokens are not accepted by this configuration.
    let (s, v, _) = get(&e.sc, "/x", Some(&valid_token("u-4"))).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("wrong_token_use")));
}

#[tokio::test]
async fn unknown_kid_refetches_once_and_rotation_needs_no_restart() {
    let e = env().await;
    let start = e.jwks.hits();
    // A new key appears at the JWKS: the first token with its kid triggers one refetch.
    e.jwks.set_keys(vec![jwk("key1", "k1"), jwk("key2", "k2")]);
    let rotated = mint("key2", "k2", &access_claims("u-5"));
    let (s, v, _) = get(&e.sc, "/x", Some(&rotated)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(e.jwks.hits(), start + 1);
    // Known kids never fetch.
    for _ in 0..5 {
        assert_eq!(get(&e.sc, "/x", Some(&valid_token("u-5"))).await.0, 200);
    }
    assert_eq!(e.jwks.hits(), start + 1);
}

#[tokio::test]
async fn a_flood_of_forged_kids_fetches_at_most_once_per_cooldown() {
    let e = env().await;
    let start = e.jwks.hits();
    let http = client();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let url = e.sc.url("/x");
        let http = http.clone();
        let token = mint("key1", &format!("forged-{i}"), &access_claims("u-6"));
        tasks.push(tokio::spawn(async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), 401);
    }
    let fetched = e.jwks.hits() - start;
    assert!(fetched <= 1, "{fetched} fetches for 100 forged kids");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_share_one_fetch() {
    let e = env_with(|c| c.verify.jwks_cooldown = Duration::from_millis(1)).await;
    e.jwks.set_mode(JwksMode::Slow(Duration::from_millis(300)));
    e.jwks.set_keys(vec![jwk("key1", "k1"), jwk("key2", "k2")]);
    let start = e.jwks.hits();
    let token = mint("key2", "k2", &access_claims("u-7"));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (http, url, token) = (client(), e.sc.url("/x"), token.clone());
        tasks.push(tokio::spawn(async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), 200);
    }
    assert_eq!(
        e.jwks.hits() - start,
        1,
        "concurrent requests waited for the same fetch"
    );
}

#[tokio::test]
async fn failed_refreshes_keep_the_last_good_keys() {
    let e = env().await;
    for mode in [JwksMode::Status(500), JwksMode::Garbage, JwksMode::Huge] {
        e.jwks.set_mode(mode.clone());
        assert!(e.sc.app.jwks().refresh().await.is_err(), "{mode:?}");
        let (s, _, _) = get(&e.sc, "/x", Some(&valid_token("u-8"))).await;
        assert_eq!(s, 200, "{mode:?}");
    }
    // A JWKS holding only keys of another type is no usable JWKS either.
    e.jwks.set_mode(JwksMode::Ok);
    e.jwks.set_keys(vec![
        json!({"kty": "EC", "kid": "k1", "crv": "P-256", "x": "AA", "y": "AA"}),
    ]);
    assert!(e.sc.app.jwks().refresh().await.is_err());
    assert_eq!(get(&e.sc, "/x", Some(&valid_token("u-8"))).await.0, 200);
    let (s, _, _) = get(&e.sc, "/readyz", None).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn slow_jwks_times_out_and_keeps_keys() {
    let e = env().await;
    e.jwks.set_mode(JwksMode::Slow(Duration::from_secs(3)));
    let started = tokio::time::Instant::now();
    assert!(e.sc.app.jwks().refresh().await.is_err());
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "jwks_timeout (1 s) not applied"
    );
    assert_eq!(get(&e.sc, "/x", Some(&valid_token("u-9"))).await.0, 200);
}

#[tokio::test]
async fn not_ready_until_keys_arrive_then_ready() {
    let jwks = JwksServer::start().await;
    jwks.set_mode(JwksMode::Status(503));
    let echo = Echo::start().await;
    let c = gate_config(&jwks.url, &echo.url(), &closed_url().await);
    let sc = Sidecar::start_with(c, false).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (s, v, _) = get(&sc, "/readyz", None).await;
    assert_eq!((s, v["code"].as_str()), (503, Some("not_ready")));
    let (s, v, _) = get(&sc, "/x", Some(&valid_token("u-10"))).await;
    assert_eq!((s, v["code"].as_str()), (503, Some("keys_unavailable")));
    assert_eq!(
        get(&sc, "/healthz", None).await.0,
        200,
        "alive while not ready"
    );
    assert_eq!(echo.count(), 0);

    jwks.set_mode(JwksMode::Ok);
    let mut ready = false;
    for _ in 0..50 {
        if get(&sc, "/readyz", None).await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "ready once the JWKS answers");
    assert_eq!(get(&sc, "/x", Some(&valid_token("u-10"))).await.0, 200);
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_app() {
    let e = env_with(|c| {
        c.routes.push(cognito_sidecar::config::RouteRule {
            path: "/public/*".into(),
            methods: vec![],
            access: cognito_sidecar::config::Access::Public,
            groups: vec![],
            scopes: vec![],
            scopes_match: None,
            claims: Default::default(),
            pools: vec![],
        })
    })
    .await;
    let spoofs = "X-Auth-Sub: admin\r\nx_auth_sub: admin\r\nx.auth.sub: admin\r\nX-AUTH-GROUPS: admin\r\n\
                  X_Auth_Groups: admin\r\nx-auth-username: root\r\nX-Auth-Anything: 1\r\nx-auth-name: evil\r\n";
    let token = valid_token("u-11");
    for (path, auth) in [
        ("/private", format!("Authorization: Bearer {token}\r\n")),
        ("/public/page", String::new()),
    ] {
        assert_eq!(
            raw(&e.sc, raw_get(path, &format!("{auth}{spoofs}"))).await,
            200,
            "{path}"
        );
        let seen = e.echo.last();
        let identity: Vec<&(String, String)> = seen
            .headers
            .iter()
            .filter(|(k, _)| {
                let folded = k.replace(['_', '.'], "-");
                folded.starts_with("x-auth-")
            })
            .collect();
        if path == "/private" {
            let mut names: Vec<&str> = identity.iter().map(|(k, _)| k.as_str()).collect();
            names.sort();
            assert_eq!(
                names,
                vec![
                    "x-auth-client-id",
                    "x-auth-principal",
                    "x-auth-scope",
                    "x-auth-sub",
                    "x-auth-token-use",
                    "x-auth-username"
                ]
            );
            assert_eq!(seen.header("x-auth-principal"), Some("user"));
            assert_eq!(seen.header("x-auth-sub"), Some("u-11"));
            assert_eq!(seen.header("x-auth-username"), Some("user-u-11"));
        } else {
            assert!(identity.is_empty(), "public route kept {identity:?}");
        }
    }
}

#[tokio::test]
async fn groups_routes_and_path_tricks() {
    use cognito_sidecar::config::{Access, RouteRule};
    let e = env_with(|c| {
        c.routes = vec![
            RouteRule {
                path: "/public/*".into(),
                methods: vec![],
                access: Access::Public,
                groups: vec![],
                scopes: vec![],
                scopes_match: None,
                claims: Default::default(),
                pools: vec![],
            },
            RouteRule {
                path: "/admin/*".into(),
                methods: vec![],
                access: Access::Authenticated,
                groups: vec!["admin".into()],
                scopes: vec![],
                scopes_match: None,
                claims: Default::default(),
                pools: vec![],
            },
        ]
    })
    .await;
    let plain = valid_token("u-12");
    let admin = mint(
        "key1",
        "k1",
        &with(access_claims("u-13"), |m| {
            m.insert("cognito:groups".into(), json!(["staff", "admin"]));
        }),
    );

    let (s, v, h) = get(&e.sc, "/admin/users", Some(&plain)).await;
    assert_eq!((s, v["code"].as_str()), (403, Some("insufficient_scope")));
    assert_eq!(h["www-authenticate"], "Bearer error=\"insufficient_scope\"");
    let (s, _, _) = get(&e.sc, "/admin/users", Some(&admin)).await;
    assert_eq!(s, 200);
    assert_eq!(e.echo.last().header("x-auth-groups"), Some("staff,admin"));

    // Public pages need no token; tricks that leave /public/ need one (and the group).
    assert_eq!(raw(&e.sc, raw_get("/public/app.js", "")).await, 200);
    let before = e.echo.count();
    for trick in [
        "/public/../admin/users",
        "/public/%2e%2e/admin/users",
        "/public/%2E%2E%2Fadmin/users",
        "/public/..;/admin/users",
        "//admin/users",
        "/public/..\\admin/users",
        "/public/%252e%252e/admin/users",
    ] {
        let s = raw(&e.sc, raw_get(trick, "")).await;
        assert!(s == 401 || s == 400, "{trick} -> {s}");
        let with_plain = raw(
            &e.sc,
            raw_get(trick, &format!("Authorization: Bearer {plain}\r\n")),
        )
        .await;
        assert!(
            with_plain == 403 || with_plain == 400,
            "{trick} with a non-admin token -> {with_plain}"
        );
    }
    assert_eq!(e.echo.count(), before, "a path trick reached the app");
    // Non-canonical paths are refused, never rewritten; canonical ones reach the app byte for
    // byte, query included.
    assert_eq!(raw(&e.sc, raw_get("/public/a/../b", "")).await, 400);
    assert_eq!(e.echo.count(), before);
    assert_eq!(
        raw(&e.sc, raw_get("/public/a%20b/%C3%A9?x=%2e%2e&y=/../", "")).await,
        200
    );
    assert_eq!(e.echo.last().path, "/public/a%20b/%C3%A9?x=%2e%2e&y=/../");
}

#[tokio::test]
async fn non_ascii_and_hostile_claims_are_encoded() {
    let e = env().await;
    let token = mint(
        "key1",
        "k1",
        &with(access_claims("u-14"), |m| {
            m.insert("custom:display_name".into(), json!("山田 太郎"));
            m.insert("username".into(), json!("evil\r\nX-Auth-Sub: admin"));
        }),
    );
    assert_eq!(get(&e.sc, "/x", Some(&token)).await.0, 200);
    let seen = e.echo.last();
    assert_eq!(
        seen.header("x-auth-name"),
        Some("%E5%B1%B1%E7%94%B0 %E5%A4%AA%E9%83%8E")
    );
    assert_eq!(
        seen.header("x-auth-username"),
        Some("evil%0D%0AX-Auth-Sub: admin")
    );
    assert_eq!(seen.header("x-auth-sub"), Some("u-14"));
    let decoded = percent_encoding::percent_decode_str(seen.header("x-auth-name").expect("name"))
        .decode_utf8()
        .expect("utf8");
    assert_eq!(decoded, "山田 太郎");
}

#[tokio::test]
async fn cached_tokens_still_expire_and_the_cache_can_be_off() {
    // With the cache, a token whose key was rotated away keeps working until it expires ...
    let e = env_with(|c| c.verify.leeway = Duration::ZERO).await;
    let long = valid_token("u-15");
    let short = mint(
        "key1",
        "k1",
        &with(access_claims("u-15"), |m| {
            m.insert("exp".into(), json!(now() + 2));
        }),
    );
    assert_eq!(get(&e.sc, "/x", Some(&long)).await.0, 200);
    assert_eq!(get(&e.sc, "/x", Some(&short)).await.0, 200);
    // ... but never past its exp (the sidecar's clock moves; nothing sleeps).
    e.sc.clock.advance(Duration::from_secs(3));
    let (s, v, _) = get(&e.sc, "/x", Some(&short)).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("token_expired")));
    e.jwks.set_keys(vec![jwk("key2", "k2")]);
    e.sc.app.jwks().refresh().await.expect("refresh");
    assert_eq!(
        get(&e.sc, "/x", Some(&long)).await.0,
        200,
        "served from the cache"
    );

    // Without the cache every request is verified against the current keys.
    let e = env_with(|c| c.verify.cache_max_entries = 0).await;
    let token = valid_token("u-16");
    assert_eq!(get(&e.sc, "/x", Some(&token)).await.0, 200);
    e.jwks.set_keys(vec![jwk("key2", "k2")]);
    e.sc.app.jwks().refresh().await.expect("refresh");
    let (s, v, _) = get(&e.sc, "/x", Some(&token)).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("kid_unknown")));

    // Uncached, a token is judged on the sidecar's clock too: an hour later it has expired.
    let e = env_with(|c| c.verify.cache_max_entries = 0).await;
    let token = valid_token("u-16b");
    assert_eq!(get(&e.sc, "/x", Some(&token)).await.0, 200);
    e.sc.clock.advance(Duration::from_secs(2 * 3600));
    let (s, v, _) = get(&e.sc, "/x", Some(&token)).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("token_expired")));
}

#[tokio::test]
async fn a_cached_tokens_signature_on_another_token_is_not_a_hit() {
    // The cache hashes only a token's tail (signature bytes) but a hit is the whole token:
    // a cached token's signature under another payload, or another header, is verified as
    // the new token it is (and fails), and the app never sees it.
    let e = env().await;
    let token = valid_token("u-15c");
    assert_eq!(get(&e.sc, "/x", Some(&token)).await.0, 200);
    assert_eq!(get(&e.sc, "/x", Some(&token)).await.0, 200);
    let (header, rest) = token.split_once('.').expect("header");
    let (_, sig) = rest.split_once('.').expect("payload");
    let payload = b64(&with(access_claims("admin"), |m| {
        m.insert("username".into(), json!("admin"));
    }));
    let other_header = b64(&json!({"alg": "RS256", "kid": "k1", "typ": "JWT"}));
    assert_ne!(format!("{other_header}."), format!("{header}."));
    for forged in [
        format!("{header}.{payload}.{sig}"),
        format!("{other_header}.{}", rest),
    ] {
        let (s, v, _) = get(&e.sc, "/x", Some(&forged)).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (401, Some("bad_signature")),
            "{forged}"
        );
    }
    assert_eq!(
        e.echo.count(),
        2,
        "only the real token's two requests reached the app"
    );
    let text = e.sc.app.render_metrics();
    for line in [
        "sidecar_token_cache_total{outcome=\"miss\"} 3",
        "sidecar_token_cache_total{outcome=\"hit\"} 1",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
}

#[tokio::test]
async fn health_endpoints_are_the_sidecars_and_configurable() {
    let e = env_with(|c| {
        c.health.live_path = "/__sidecar/live".into();
        c.health.ready_path = "/__sidecar/ready".into();
    })
    .await;
    let (s, v, _) = get(&e.sc, "/__sidecar/live", None).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ok")));
    let (s, v, _) = get(&e.sc, "/__sidecar/ready", None).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ready")));
    // The app's own /healthz is now just a protected path.
    assert_eq!(get(&e.sc, "/healthz", None).await.0, 401);
    assert_eq!(e.echo.count(), 0);
}

#[tokio::test]
async fn metrics_count_outcomes_and_cache_hits() {
    let e = env().await;
    let token = valid_token("u-17");
    for _ in 0..3 {
        assert_eq!(get(&e.sc, "/x", Some(&token)).await.0, 200);
    }
    assert_eq!(get(&e.sc, "/x", None).await.0, 401);
    let text = e.sc.app.render_metrics();
    for line in [
        "sidecar_gate_requests_total{outcome=\"proxied\"} 3",
        "sidecar_gate_requests_total{outcome=\"token_missing\"} 1",
        "sidecar_token_cache_total{outcome=\"miss\"} 1",
        "sidecar_token_cache_total{outcome=\"hit\"} 2",
        "sidecar_upstream_response_duration_seconds_count 3",
        "sidecar_jwks_keys 1",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
}

#[tokio::test]
async fn request_ids_are_kept_or_made_and_passed_both_ways() {
    let e = env().await;
    let token = valid_token("u-18");
    let resp = client()
        .get(e.sc.url("/x"))
        .bearer_auth(&token)
        .header("x-request-id", "req-from-client-1")
        .send()
        .await
        .expect("get");
    assert_eq!(resp.headers()["x-request-id"], "req-from-client-1");
    assert_eq!(
        e.echo.last().header("x-request-id"),
        Some("req-from-client-1")
    );
    // A missing or unusable id is replaced by a fresh one, the same upstream and back.
    for sent in [None, Some("has space"), Some("")] {
        let mut req = client().get(e.sc.url("/x")).bearer_auth(&token);
        if let Some(id) = sent {
            req = req.header("x-request-id", id);
        }
        let resp = req.send().await.expect("get");
        let id = resp.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_string();
        let made = uuid::Uuid::parse_str(&id).expect("a UUID");
        assert_eq!(made.get_version_num(), 4, "{id}");
        assert_eq!(id, made.hyphenated().to_string(), "hyphenated, lower case");
        assert_eq!(e.echo.last().header("x-request-id"), Some(id.as_str()));
    }
    // Refusals carry one too.
    let resp = client().get(e.sc.url("/x")).send().await.expect("get");
    assert!(resp.headers().contains_key("x-request-id"));
}
