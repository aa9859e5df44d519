use super::*;

fn check(ep: Endpoint, body: &str) -> Result<(), ApiError> {
    let parsed = serde_json::from_str::<Value>(body).ok();
    check_body(
        schema(ep).expect("a seed schema"),
        body.as_bytes(),
        parsed.as_ref(),
    )
}

/// The 422 answer as a client reads it: status, code, and each detail's (type, loc, msg).
async fn read(e: ApiError) -> (u16, String, Vec<(String, Vec<String>, String)>) {
    use http_body_util::BodyExt;
    let resp = e.into_response();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let v: Value = serde_json::from_slice(&bytes).expect("json");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    let detail = v["detail"]
        .as_array()
        .expect("detail")
        .iter()
        .map(|d| {
            assert_eq!(d.as_object().expect("object").len(), 3, "{d}");
            let loc = d["loc"].as_array().expect("loc");
            (
                d["type"].as_str().expect("type").to_owned(),
                loc.iter()
                    .map(|l| l.as_str().expect("str").to_owned())
                    .collect(),
                d["msg"].as_str().expect("msg").to_owned(),
            )
        })
        .collect();
    (status, v["code"].as_str().expect("code").to_owned(), detail)
}

const MISSING: &str = "Field required";
const NOT_STR: &str = "Input should be a valid string";

#[tokio::test]
async fn bodies_ninja_rejects_with_422() {
    let d = |t: &str, path: &[&str], msg: &str| {
        let mut loc = vec!["body".to_owned(), "payload".to_owned()];
        loc.extend(path.iter().map(|p| (*p).to_owned()));
        (t.to_owned(), loc, msg.to_owned())
    };
    let m = |f: &str| d("missing", &[f], MISSING);
    let s = |f: &str| d("string_type", &[f], NOT_STR);
    use Endpoint::{Login, NewPassword, Refresh};
    let cases = [
        (Login, "", "invalid_json", vec![d("missing", &[], MISSING)]),
        (
            Login,
            "{}",
            "missing_field",
            vec![m("email"), m("password")],
        ),
        (
            Login,
            r#"{"email":"a"}"#,
            "missing_field",
            vec![m("password")],
        ),
        (
            Login,
            r#"{"email":5,"password":"p"}"#,
            "invalid_field",
            vec![s("email")],
        ),
        (
            Login,
            r#"{"email":null,"password":"p"}"#,
            "invalid_field",
            vec![s("email")],
        ),
        (
            Login,
            r#"{"email":true,"password":["p"]}"#,
            "invalid_field",
            vec![s("email"), s("password")],
        ),
        (
            Login,
            r#"{"email":{},"password":1.5}"#,
            "invalid_field",
            vec![s("email"), s("password")],
        ),
        // A field after a missing one: the code is the first error's.
        (
            Login,
            r#"{"password":5}"#,
            "missing_field",
            vec![m("email"), s("password")],
        ),
        (
            Login,
            "[1,2]",
            "invalid_json",
            vec![m("email"), m("password")],
        ),
        (
            Login,
            r#""email""#,
            "invalid_json",
            vec![m("email"), m("password")],
        ),
        (
            Login,
            "null",
            "invalid_json",
            vec![m("email"), m("password")],
        ),
        (Login, "7", "invalid_json", vec![m("email"), m("password")]),
        (
            NewPassword,
            r#"{"email":"a","session":3}"#,
            "missing_field",
            vec![m("new_password"), s("session")],
        ),
        (Refresh, "{}", "missing_field", vec![m("refresh_token")]),
        (
            Refresh,
            r#"{"refresh_token":"r","username":5}"#,
            "invalid_field",
            vec![s("username")],
        ),
        (Refresh, "[]", "invalid_json", vec![m("refresh_token")]),
    ];
    for (ep, body, code, want) in cases {
        let e = check(ep, body).expect_err(body);
        assert_eq!(read(e).await, (422, code.to_owned(), want), "{ep:?} {body}");
    }
}

#[test]
fn bodies_that_pass_the_schema_or_are_not_json() {
    use Endpoint::{Login, NewPassword, Refresh};
    for (ep, body) in [
        (Login, r#"{"email":"a","password":"p"}"#),
        // An empty string is a valid `str`; the seed failed later, in Cognito (400).
        (Login, r#"{"email":"","password":""}"#),
        (Login, r#"{"email":"a","password":"p","extra":5}"#),
        (
            NewPassword,
            r#"{"email":"a","new_password":"n","session":"s"}"#,
        ),
        (Refresh, r#"{"refresh_token":"r"}"#),
        (Refresh, r#"{"refresh_token":"r","username":null}"#),
        // Not JSON: ninja's 400 "Cannot parse request body", the sidecar's invalid_json.
        (Login, "{not json"),
        (Login, "   "),
    ] {
        assert_eq!(check(ep, body), Ok(()), "{ep:?} {body}");
    }
    assert_eq!(schema(Endpoint::Logout), None);
    assert_eq!(schema(Endpoint::Mfa), None);
}

#[test]
fn seed_statuses() {
    use crate::error::Budget;
    use crate::gate::verify::VerifyError;
    use crate::idp::IdpError;
    use std::time::Duration;
    let cases = [
        (ApiError::invalid_credentials(), 400),
        (ApiError::token_missing(), 400),
        (ApiError::from(VerifyError::Expired), 400),
        (ApiError::from(IdpError::PasswordResetRequired), 400),
        (ApiError::from(IdpError::UserNotConfirmed), 400),
        (ApiError::missing_field("email"), 400),
        (ApiError::new(ErrorCode::PayloadTooLarge, "x"), 400),
        (ErrorCode::UnsupportedMediaType.into(), 400),
        (ApiError::method_not_allowed("POST"), 405),
        (
            ApiError::missing_field("email").with_status(StatusCode::UNPROCESSABLE_ENTITY),
            422,
        ),
        (
            ApiError::rate_limited(Budget::Address, Duration::from_secs(3)),
            429,
        ),
        (ApiError::from(IdpError::Throttled), 429),
        (ApiError::from(IdpError::BadResponse), 502),
        (ApiError::from(IdpError::Unavailable), 503),
        (ApiError::from(VerifyError::NotReady), 503),
        (ApiError::internal(), 500),
    ];
    for (e, want) in cases {
        let code = e.code;
        let got = seed_status(e.clone());
        assert_eq!(got.status.as_u16(), want, "{code}");
        assert_eq!(
            (got.code, &got.message),
            (e.code, &e.message),
            "only the status changes"
        );
    }
    // The headers stay: Retry-After on the 429, Allow on the 405.
    let r = seed_status(ApiError::rate_limited(
        Budget::Address,
        Duration::from_secs(3),
    ))
    .into_response();
    assert_eq!(r.headers()[http::header::RETRY_AFTER], "3");
    let r = seed_status(ApiError::method_not_allowed("POST")).into_response();
    assert_eq!(r.headers()[http::header::ALLOW], "POST");
}

#[test]
fn only_the_four_seed_endpoints() {
    let seed: Vec<&str> = Endpoint::ALL
        .into_iter()
        .filter(|e| is_seed_endpoint(*e))
        .map(Endpoint::name)
        .collect();
    assert_eq!(seed, ["login", "new-password", "refresh", "logout"]);
}

#[test]
fn openapi_folds_the_client_failures_into_400_and_adds_422() {
    let default: Value =
        serde_json::from_str(include_str!("../../openapi.json")).expect("the spec is JSON");
    let mut doc = default.clone();
    openapi(&mut doc);
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let statuses: Vec<&str> = op["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .map(String::as_str)
                .collect();
            let before = &default["paths"][path][method];
            let id = op["operationId"].as_str().expect("id");
            if !OPERATIONS.contains(&id) {
                assert_eq!(op, before, "{id} unchanged");
                continue;
            }
            for s in FOLDED {
                assert!(!statuses.contains(&s), "{id}: {s}");
            }
            assert_eq!(statuses.contains(&"422"), id != "logout", "{id}");
            for s in ["400", "405", "429", "502", "503"] {
                assert!(statuses.contains(&s), "{id}: {s}");
            }
            let bad = op["responses"]["400"]["description"].as_str().expect("400");
            assert!(bad.contains("(default mode: 401)"), "{id}: {bad}");
        }
    }
    assert_eq!(
        doc["paths"]["/api/user/logout"]["post"]["responses"]["400"]["headers"]["WWW-Authenticate"],
        default["paths"]["/api/user/logout"]["post"]["responses"]["401"]["headers"]
            ["WWW-Authenticate"]
    );
    assert!(doc["components"]["schemas"]["SeedValidationError"].is_object());
}
