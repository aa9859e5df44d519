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
        pools: vec![],
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

/// Asks the forward-auth check (nginx's convention) about `GET uri` with `token`.
async fn ask_check(sc: &Sidecar, token: &str, uri: &str) -> reqwest::Response {
    client()
        .get(sc.url("/_auth/check"))
        .header("authorization", format!("Bearer {token}"))
        .header("x-original-uri", uri)
        .header("x-original-method", "GET")
        .send()
        .await
        .expect("check")
}

#[tokio::test]
async fn the_check_applies_the_same_rules() {
    let e = env().await;
    let check = |token: String, uri: &'static str| {
        let sc = &e.sc;
        async move {
            let resp = ask_check(sc, &token, uri).await;
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

const STAFF_POOL: &str = "eu-west-1_Staff";
const STAFF_CLIENT: &str = "staff-client";

fn staff_issuer(region: &str) -> String {
    format!("https://cognito-idp.{region}.amazonaws.com/{STAFF_POOL}")
}

/// A token of the staff pool (its own keys: key2 under kid k2), from `region`'s issuer.
fn staff_token(region: &str, key: &str) -> String {
    let t = now();
    mint(
        key,
        "k2",
        &json!({
            "iss": staff_issuer(region), "sub": "s-1", "client_id": STAFF_CLIENT,
            "token_use": "access", "iat": t, "exp": t + 3600, "username": "ops-1",
            "scope": "aws.cognito.signin.user.admin",
        }),
    )
}

struct Pools {
    customers: JwksServer,
    staff: JwksServer,
    echo: Echo,
    sc: Sidecar,
}

async fn two_pools() -> Pools {
    let customers = JwksServer::start().await;
    let staff = JwksServer::start().await;
    staff.set_keys(vec![jwk("key2", "k2")]);
    let echo = Echo::start().await;
    let mut c: Config = gate_config(&customers.url, &echo.url(), &closed_url().await);
    c.verify.pool_name = "customers".into();
    c.verify.pools = vec![cognito_sidecar::config::TrustedPool {
        name: "staff".into(),
        user_pool_id: STAFF_POOL.into(),
        region: None,
        client_ids: vec![STAFF_CLIENT.into()],
        issuer: None,
        jwks_url: Some(staff.url.clone()),
        replica_regions: vec!["eu-central-1".into()],
    }];
    c.routes = vec![route("/staff/*", |r| r.pools = vec!["staff".into()])];
    c.server.trusted_proxies = vec!["127.0.0.1/32".parse().expect("net")];
    c.forward_auth.enabled = true;
    let sc = Sidecar::start(c).await;
    Pools {
        customers,
        staff,
        echo,
        sc,
    }
}

async fn status_code(sc: &Sidecar, path: &str, token: &str) -> (u16, Option<String>) {
    let resp = client()
        .get(sc.url(path))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("request");
    let (s, v) = status_json(resp).await;
    (s, v["code"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn each_pool_and_replica_is_trusted_with_its_own_keys_and_clients() {
    let e = two_pools().await;
    assert!(
        e.sc.app.is_ready(),
        "ready once both pools' keys are loaded"
    );
    let ok = (200, None);
    // The staff pool, from its region and from its replica, anywhere and on /staff.
    for region in ["eu-west-1", "eu-central-1"] {
        let t = staff_token(region, "key2");
        assert_eq!(status_code(&e.sc, "/x", &t).await, ok, "{region}");
        assert_eq!(status_code(&e.sc, "/staff/y", &t).await, ok, "{region}");
    }
    assert_eq!(e.echo.last().header("x-auth-username"), Some("ops-1"));
    // A customer is a valid caller, but not on /staff.
    let customer = valid_token("c-1");
    assert_eq!(status_code(&e.sc, "/x", &customer).await, ok);
    let resp = client()
        .get(e.sc.url("/staff/y"))
        .header("authorization", format!("Bearer {customer}"))
        .send()
        .await
        .expect("request");
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer error=\"insufficient_scope\""
    );
    let (s, v) = status_json(resp).await;
    assert_eq!((s, v["code"].as_str()), (403, Some("wrong_pool")));
    // Each pool's own keys and app clients: the staff issuer with the customers' key (under
    // the staff kid), a staff token naming the customers' client, the reverse.
    assert_eq!(
        status_code(&e.sc, "/x", &staff_token("eu-west-1", "key1")).await,
        (401, Some("bad_signature".into()))
    );
    let t = now();
    let crossed = |iss: String, client: &str, key: &str, kid: &str| {
        mint(
            key,
            kid,
            &json!({
                "iss": iss, "sub": "x", "client_id": client, "token_use": "access",
                "iat": t, "exp": t + 3600,
            }),
        )
    };
    assert_eq!(
        status_code(
            &e.sc,
            "/x",
            &crossed(staff_issuer("eu-west-1"), CLIENT_ID, "key2", "k2")
        )
        .await,
        (401, Some("wrong_client".into()))
    );
    assert_eq!(
        status_code(
            &e.sc,
            "/x",
            &crossed(ISSUER.into(), STAFF_CLIENT, "key1", "k1")
        )
        .await,
        (401, Some("wrong_client".into()))
    );

    // An issuer no pool has is refused before any key is fetched.
    let hits = (e.customers.hits(), e.staff.hits());
    for iss in [
        staff_issuer("us-west-2"),
        "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other".to_string(),
        format!("{ISSUER}/"),
    ] {
        let t = crossed(iss.clone(), STAFF_CLIENT, "key2", "k-unknown");
        assert_eq!(
            status_code(&e.sc, "/x", &t).await,
            (401, Some("wrong_issuer".into())),
            "{iss}"
        );
    }
    assert_eq!((e.customers.hits(), e.staff.hits()), hits, "no JWKS fetch");

    // The forward-auth check trusts the same pools and applies the same pool rule.
    let check = |token: String, uri: &'static str| {
        let sc = &e.sc;
        async move { ask_check(sc, &token, uri).await.status().as_u16() }
    };
    assert_eq!(
        check(staff_token("eu-central-1", "key2"), "/staff/y").await,
        200
    );
    assert_eq!(check(valid_token("c-2"), "/staff/y").await, 403);

    // Each pool has its own key cache and metrics label.
    let m = e.sc.app.render_metrics();
    for line in [
        "sidecar_pool_jwks_keys{pool=\"customers\"} 1",
        "sidecar_pool_jwks_keys{pool=\"staff\"} 1",
        "sidecar_pool_jwks_fetch_failures_total{pool=\"staff\"} 0",
    ] {
        assert!(m.contains(line), "{line} in\n{m}");
    }
}
