//! Callers other than a signed-in user, and rules on what a token holds: machine-to-machine
//! tokens (Cognito's `client_credentials` grant, minted here with the test keys: moto issues
//! none), scope rules (`any` / `all`) with RFC 6750's challenge, and rules on claim values;
//! on the proxy path (what the app receives) and through the forward-auth check.

mod common;

use cognito_sidecar::config::{Access, Config, RouteRule, ScopeMatch};
use common::*;
use serde_json::{json, Value};

struct Env {
    _jwks: JwksServer,
    echo: Echo,
    sc: Sidecar,
}

fn route(path: &str, edit: impl FnOnce(&mut RouteRule)) -> RouteRule {
    let mut r = RouteRule {
        path: path.into(),
        methods: vec![],
        access: Access::Authenticated,
        groups: vec![],
        scopes: vec![],
        scopes_match: None,
        claims: Default::default(),
    };
    edit(&mut r);
    r
}

async fn env() -> Env {
    let jwks = JwksServer::start().await;
    let echo = Echo::start().await;
    let mut c: Config = gate_config(&jwks.url, &echo.url(), &closed_url().await);
    c.routes = vec![
        route("/orders/*", |r| {
            r.scopes = vec!["orders/read".into(), "orders/write".into()];
            r.scopes_match = Some(ScopeMatch::Any);
        }),
        route("/ledger/*", |r| {
            r.scopes = vec!["orders/read".into(), "orders/write".into()];
            r.scopes_match = Some(ScopeMatch::All);
        }),
        route("/acme/*", |r| {
            r.claims.insert("custom:tenant".into(), vec![json!("acme")]);
            r.claims
                .insert("custom:level".into(), vec![json!(3), json!(4)]);
        }),
    ];
    c.server.trusted_proxies = vec!["127.0.0.1/32".parse().expect("net")];
    c.forward_auth.enabled = true;
    let sc = Sidecar::start(c).await;
    Env {
        _jwks: jwks,
        echo,
        sc,
    }
}

/// An access token of the client-credentials grant: `sub` is the client id, no username,
/// no groups; here with a `username` and groups a pre-token trigger might mint.
fn machine_token(scope: &str) -> String {
    let t = now();
    mint(
        "key1",
        "k1",
        &json!({
            "iss": ISSUER, "sub": CLIENT_ID, "client_id": CLIENT_ID, "token_use": "access",
            "iat": t, "exp": t + 3600, "jti": format!("jti-m-{t}"), "scope": scope,
            "version": 2, "username": "minted-admin", "cognito:groups": ["admins"],
            "custom:display_name": "Mallory",
        }),
    )
}

fn user_token(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut c = access_claims("u-callers");
    edit(c.as_object_mut().expect("object"));
    mint("key1", "k1", &c)
}

async fn get(e: &Env, path: &str, token: &str) -> (u16, Value, reqwest::header::HeaderMap) {
    let resp = client()
        .get(e.sc.url(path))
        .header("authorization", format!("Bearer {token}"))
        .header("x-auth-principal", "user")
        .header("x-auth-username", "spoofed")
        .send()
        .await
        .expect("request");
    let headers = resp.headers().clone();
    let (s, v) = status_json(resp).await;
    (s, v, headers)
}

fn identity_seen(seen: &Seen) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = seen
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-auth-"))
        .cloned()
        .collect();
    v.sort();
    v
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_machine_is_told_apart_from_a_user() {
    let e = env().await;
    let (s, _, _) = get(&e, "/orders/1", &machine_token("orders/read other/x")).await;
    assert_eq!(s, 200);
    // No username, groups or user-only mapping from a machine, whatever claims it carries;
    // the spoofed headers are gone.
    assert_eq!(
        identity_seen(&e.echo.last()),
        pairs(&[
            ("x-auth-principal", "client"),
            ("x-auth-sub", CLIENT_ID),
            ("x-auth-client-id", CLIENT_ID),
            ("x-auth-scope", "orders/read other/x"),
            ("x-auth-token-use", "access"),
        ])
    );

    let user = user_token(|m| {
        m.insert("scope".into(), json!("orders/write"));
        m.insert("custom:display_name".into(), json!("Ada"));
    });
    let (s, _, _) = get(&e, "/orders/1", &user).await;
    assert_eq!(s, 200);
    assert_eq!(
        identity_seen(&e.echo.last()),
        pairs(&[
            ("x-auth-principal", "user"),
            ("x-auth-sub", "u-callers"),
            ("x-auth-username", "user-u-callers"),
            ("x-auth-client-id", CLIENT_ID),
            ("x-auth-scope", "orders/write"),
            ("x-auth-token-use", "access"),
            ("x-auth-name", "Ada"),
        ])
    );

    // A machine of an app client the pool does not allow is refused like any token.
    let t = now();
    let other = mint(
        "key1",
        "k1",
        &json!({
            "iss": ISSUER, "sub": "other-client", "client_id": "other-client",
            "token_use": "access", "iat": t, "exp": t + 3600, "scope": "orders/read",
        }),
    );
    let (s, v, _) = get(&e, "/orders/1", &other).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("wrong_client")));
}

#[tokio::test]
async fn scopes_are_matched_as_each_rule_says() {
    let e = env().await;
    let before = e.echo.count();
    for (path, scope, want) in [
        ("/orders/1", "orders/read", 200),
        ("/orders/1", "orders/write", 200),
        ("/orders/1", "orders/readx", 403),
        ("/orders/1", "", 403),
        ("/ledger/1", "orders/read", 403),
        ("/ledger/1", "orders/write orders/read", 200),
    ] {
        let (s, v, h) = get(&e, path, &machine_token(scope)).await;
        assert_eq!(s, want, "{path} with {scope:?}");
        if want == 403 {
            assert_eq!(v["code"], "insufficient_scope");
            assert_eq!(
                h["www-authenticate"],
                "Bearer error=\"insufficient_scope\", scope=\"orders/read orders/write\""
            );
        }
    }
    assert_eq!(
        e.echo.count(),
        before + 3,
        "only the admitted requests reached the app"
    );

    // The verified-token cache never carries a verdict: the same token, asked again for a
    // route it may not use, is refused every time.
    let token = machine_token("orders/read");
    for _ in 0..3 {
        assert_eq!(get(&e, "/orders/1", &token).await.0, 200);
        assert_eq!(get(&e, "/ledger/1", &token).await.0, 403);
    }
}

#[tokio::test]
async fn claim_rules_accept_listed_values_only() {
    let e = env().await;
    let with = |tenant: Value, level: Value| {
        user_token(|m| {
            m.insert("custom:tenant".into(), tenant);
            m.insert("custom:level".into(), level);
        })
    };
    for (tenant, level, want) in [
        (json!("acme"), json!(3), 200),
        (json!("acme"), json!(4.0), 200),
        (json!("acme"), json!("3"), 403),
        (json!("globex"), json!(3), 403),
        (json!(["globex", "acme"]), json!(4), 200),
        (json!({"name": "acme"}), json!(3), 403),
    ] {
        let (s, v, h) = get(&e, "/acme/x", &with(tenant.clone(), level.clone())).await;
        assert_eq!(s, want, "{tenant} {level}");
        if want == 403 {
            assert_eq!(v["code"], "claim_not_allowed");
            assert_eq!(h["www-authenticate"], "Bearer error=\"insufficient_scope\"");
        }
    }
    // A token without the claim at all.
    let (s, _, _) = get(&e, "/acme/x", &user_token(|_| {})).await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn the_check_applies_the_same_rules() {
    let e = env().await;
    let check = |token: String, uri: &'static str| {
        let url = e.sc.url("/_auth/check");
        async move {
            let resp = client()
                .get(url)
                .header("authorization", format!("Bearer {token}"))
                .header("x-original-uri", uri)
                .header("x-original-method", "GET")
                .send()
                .await
                .expect("check");
            let status = resp.status().as_u16();
            let principal = resp
                .headers()
                .get("x-auth-principal")
                .map(|v| v.to_str().unwrap_or("").to_string());
            let username = resp
                .headers()
                .get("x-auth-username")
                .map(|v| v.to_str().unwrap_or("").to_string());
            (status, principal, username)
        }
    };
    let (s, p, u) = check(machine_token("orders/read"), "/orders/1").await;
    assert_eq!(
        (s, p.as_deref(), u.as_deref()),
        (200, Some("client"), Some(""))
    );
    // nginx's convention: a refusal by the rules is 403 for auth_request.
    let (s, _, _) = check(machine_token("orders/read"), "/ledger/1").await;
    assert_eq!(s, 403);
    let (s, p, _) = check(
        user_token(|m| {
            m.insert("custom:tenant".into(), json!("acme"));
            m.insert("custom:level".into(), json!(3));
        }),
        "/acme/x",
    )
    .await;
    assert_eq!((s, p.as_deref()), (200, Some("user")));
    assert_eq!(e.echo.count(), 0, "the check never proxies");
}
