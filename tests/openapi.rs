//! The OpenAPI document cannot drift from the code: it is served with the configured paths,
//! its `LoginOut` is the struct the endpoints serialize, and every error code the code can
//! answer with (`error::ErrorCode::ALL`) is in its `ErrorCode` enum and in the book's Errors
//! table (docs/src/auth-api.md), with its status. (The schemathesis
//! run in deploy/test.sh checks live answers against it.)

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::Value;

fn spec() -> Value {
    serde_json::from_str(include_str!("../src/openapi.json")).expect("spec is JSON")
}

fn src(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).expect("source")
}

/// The book's Errors table (docs/src/auth-api.md, "## Errors" to the next heading of that
/// level or the page's end): each code with the status in its row's first column (rows whose
/// first column is `—` list codes already in another row).
fn book_error_rows() -> Vec<(u16, String)> {
    let page = src("docs/src/auth-api.md");
    let start = page
        .find("\n## Errors\n")
        .expect("docs/src/auth-api.md has ## Errors");
    let end = page[start + 1..]
        .find("\n## ")
        .or_else(|| page[start + 1..].find("\n# "))
        .map_or(page.len(), |e| start + 1 + e);
    let code = regex::Regex::new(r"`([a-z]+(?:_[a-z]+)+)`").expect("regex");
    let mut rows = Vec::new();
    for line in page[start..end].lines() {
        let cols: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        let (Some(status), Some(codes)) = (cols.first(), cols.get(2)) else {
            continue;
        };
        let Ok(status) = status.parse::<u16>() else {
            continue;
        };
        for c in code.captures_iter(codes) {
            rows.push((status, c[1].to_string()));
        }
    }
    rows
}

#[test]
fn every_error_code_is_in_the_spec_and_the_book() {
    use cognito_sidecar::error::ErrorCode;
    let spec = spec();
    let documented: BTreeSet<String> = spec["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("enum")
        .iter()
        .map(|v| v.as_str().expect("string").to_string())
        .collect();
    let answered: BTreeSet<String> = ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .collect();
    assert_eq!(answered.len(), ErrorCode::ALL.len(), "each code once");
    let missing: Vec<&String> = answered.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "codes missing from src/openapi.json: {missing:?}"
    );
    let stale: Vec<&String> = documented.difference(&answered).collect();
    assert!(
        stale.is_empty(),
        "codes in src/openapi.json the code never answers: {stale:?}"
    );
    // The book's Errors table: every code, in a row of its status; no code it does not answer.
    let rows = book_error_rows();
    for c in ErrorCode::ALL {
        let statuses: Vec<u16> = rows
            .iter()
            .filter(|(_, code)| code == c.as_str())
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(
            statuses,
            vec![c.status().as_u16()],
            "{}: the Errors table of docs/src/auth-api.md has it once, with its status",
            c.as_str()
        );
    }
    let in_book: BTreeSet<String> = rows.into_iter().map(|(_, c)| c).collect();
    let stale: Vec<&String> = in_book.difference(&answered).collect();
    assert!(
        stale.is_empty(),
        "codes in docs/src/auth-api.md's Errors table the code never answers: {stale:?}"
    );
}

#[test]
fn login_out_schema_is_the_struct() {
    let spec = spec();
    let schema = &spec["components"]["schemas"]["LoginOut"];
    let props: BTreeSet<String> = schema["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .cloned()
        .collect();
    let Value::Object(out) =
        serde_json::to_value(cognito_sidecar::auth_api::LoginOut::default()).expect("json")
    else {
        panic!("LoginOut is an object")
    };
    let fields: BTreeSet<String> = out.keys().cloned().collect();
    assert_eq!(props, fields);
    let required: BTreeSet<String> = schema["required"]
        .as_array()
        .expect("required")
        .iter()
        .map(|v| v.as_str().expect("string").to_string())
        .collect();
    assert_eq!(
        required, fields,
        "every field is always present (null when absent)"
    );
}

/// The property names of a schema, and whether all are required.
fn schema_fields(spec: &Value, name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let schema = &spec["components"]["schemas"][name];
    let props = schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{name} has properties"))
        .keys()
        .cloned()
        .collect();
    let required = schema["required"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} lists required"))
        .iter()
        .map(|v| v.as_str().expect("string").to_string())
        .collect();
    (props, required)
}

fn struct_fields<T: serde::Serialize>(value: &T) -> BTreeSet<String> {
    let Value::Object(out) = serde_json::to_value(value).expect("json") else {
        panic!("an object")
    };
    out.keys().cloned().collect()
}

#[test]
fn mfa_and_recovery_schemas_are_the_structs() {
    use cognito_sidecar::auth_api::{ForgotOut, MfaSetupOut, CHALLENGES};
    use cognito_sidecar::idp::{ChallengeHints, Delivery};
    let spec = spec();
    let cases: Vec<(&str, BTreeSet<String>)> = vec![
        ("ChallengeHints", struct_fields(&ChallengeHints::default())),
        (
            "MfaSetupOut",
            struct_fields(&MfaSetupOut {
                secret_code: String::new(),
                otpauth_uri: String::new(),
                session: String::new(),
            }),
        ),
        (
            "ForgotPasswordOut",
            struct_fields(&ForgotOut {
                ok: true,
                delivery: None,
            }),
        ),
        (
            "Delivery",
            struct_fields(&Delivery {
                medium: String::new(),
                attribute: None,
            }),
        ),
    ];
    for (name, fields) in cases {
        let (props, required) = schema_fields(&spec, name);
        assert_eq!(props, fields, "{name}");
        assert_eq!(required, fields, "{name}: every field is always present");
    }
    // The challenge enum is what the code relays.
    let documented: Vec<Value> = spec["components"]["schemas"]["LoginOut"]["properties"]
        ["challenge"]["enum"]
        .as_array()
        .expect("enum")
        .clone();
    let mut want: Vec<Value> = CHALLENGES.iter().map(|c| Value::from(*c)).collect();
    want.push(Value::Null);
    assert_eq!(documented, want);
}

#[tokio::test]
async fn served_with_the_configured_paths() {
    let jwks = JwksServer::start().await;
    let mut c = gate_config(&jwks.url, &closed_url().await, &closed_url().await);
    c.api.prefix = "/auth/v2".into();
    c.health.ready_path = "/__ready".into();
    let sc = Sidecar::start(c).await;
    let resp = client()
        .get(sc.url("/auth/v2/openapi.json"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let doc: Value = resp.json().await.expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths: BTreeSet<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    let auth = [
        "/auth/v2/login",
        "/auth/v2/new-password",
        "/auth/v2/refresh",
        "/auth/v2/logout",
        "/auth/v2/revoke",
        "/auth/v2/mfa",
        "/auth/v2/mfa/setup",
        "/auth/v2/mfa/verify",
        "/auth/v2/forgot-password",
        "/auth/v2/confirm-forgot-password",
        "/auth/v2/change-password",
    ];
    let want: BTreeSet<&str> = auth.into_iter().chain(["/healthz", "/__ready"]).collect();
    assert_eq!(paths, want);
    // Each documented auth path is routed to the auth API (a GET is 405 with Allow: POST).
    for p in auth {
        let r = client().get(sc.url(p)).send().await.expect("get");
        assert_eq!(r.status(), 405, "{p}");
        assert_eq!(r.headers()["allow"], "POST");
    }
    let r = client()
        .post(sc.url("/healthz"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
}

/// The document shows the statuses of `api.compatibility`: in seed mode the seed's four
/// operations answer no 401, 403, 413 or 415 (folded into 400) and, with a body, 422 in
/// django-ninja's shape; the newer operations keep the default statuses.
#[tokio::test]
async fn served_with_the_statuses_of_the_mode() {
    use cognito_sidecar::config::Compatibility;
    let jwks = JwksServer::start().await;
    let default = spec();
    for mode in [Compatibility::None, Compatibility::Seed] {
        let mut c = gate_config(&jwks.url, &closed_url().await, &closed_url().await);
        c.api.compatibility = mode;
        let sc = Sidecar::start(c).await;
        let doc: Value = client()
            .get(sc.url("/api/user/openapi.json"))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let Some(op) = item.get("post") else { continue };
            let statuses: BTreeSet<&str> = op["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .map(String::as_str)
                .collect();
            let seed_op = [
                "/api/user/login",
                "/api/user/new-password",
                "/api/user/refresh",
                "/api/user/logout",
            ]
            .contains(&path.as_str());
            if mode == Compatibility::Seed && seed_op {
                for s in ["401", "403", "413", "415"] {
                    assert!(!statuses.contains(s), "{path}: {s}");
                }
                assert_eq!(
                    statuses.contains("422"),
                    path != "/api/user/logout",
                    "{path}"
                );
                if statuses.contains("422") {
                    assert_eq!(
                        op["responses"]["422"]["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/SeedValidationError"
                    );
                }
            } else {
                assert_eq!(op, &default["paths"][path]["post"], "{mode:?} {path}");
                assert!(!statuses.contains("422"), "{path}");
            }
        }
        let login = &doc["paths"]["/api/user/login"]["post"]["responses"];
        assert_eq!(
            login.get("401").is_some(),
            mode == Compatibility::None,
            "{mode:?}"
        );
        sc.stop().await;
    }
    // The 422 schema is django-ninja's detail (pydantic v2 texts) beside message and code.
    let schema = &default["components"]["schemas"]["SeedValidationError"];
    assert_eq!(
        schema["required"],
        serde_json::json!(["message", "code", "detail"])
    );
    let item = &schema["properties"]["detail"]["items"];
    assert_eq!(item["required"], serde_json::json!(["type", "loc", "msg"]));
    assert_eq!(
        item["properties"]["msg"]["enum"],
        serde_json::json!(["Field required", "Input should be a valid string"])
    );
}
