//! `api.compatibility = "seed"`: the Django seed's statuses on its four endpoints (`login`,
//! `new-password`, `refresh`, `logout`), for clients written against them.
//!
//! The seed's views answered every failure `400 {"message"}`, and django-ninja (pydantic v2)
//! answered a body that fails the view's schema `422 {"detail": [{"type", "loc", "msg"}]}`
//! before the view ran. In seed mode the sidecar answers the same statuses, with its own
//! messages and codes (`{"message", "code"}`, plus `detail` on a 422): never the seed's
//! texts, which told unknown users from wrong passwords and passed Cognito's words on.
//! Limits (429) and faults that are not the client's (5xx) keep their statuses: a client
//! must wait or retry, not tell its user the password is wrong. The newer endpoints have no
//! Django original and keep the default statuses.

use http::StatusCode;
use serde_json::{json, Map, Value};

use crate::auth_api::Endpoint;
use crate::error::{ApiError, ErrorCode};

/// A field of a seed request schema: its name and whether it is required (`str`; else
/// `Optional[str] = None`).
pub type Field = (&'static str, bool);

/// The seed's request schemas (`LoginIn`, `NewPasswordIn`, `RefreshIn` in `user/api.py`), in
/// declaration order (pydantic reports errors in that order); `logout` reads no body.
pub fn schema(ep: Endpoint) -> Option<&'static [Field]> {
    match ep {
        Endpoint::Login => Some(&[("email", true), ("password", true)]),
        Endpoint::NewPassword => {
            Some(&[("email", true), ("new_password", true), ("session", true)])
        }
        Endpoint::Refresh => Some(&[("refresh_token", true), ("username", false)]),
        _ => None,
    }
}

/// The seed's endpoints, whose statuses seed mode changes.
pub fn is_seed_endpoint(ep: Endpoint) -> bool {
    matches!(
        ep,
        Endpoint::Login | Endpoint::NewPassword | Endpoint::Refresh | Endpoint::Logout
    )
}

/// The operation ids of the seed's endpoints in `src/openapi.json`.
const OPERATIONS: [&str; 4] = ["login", "new_password", "refresh", "logout"];

/// The statuses the default mode answers client failures of the seed's endpoints with that
/// the seed answered 400.
const FOLDED: [&str; 4] = ["401", "403", "413", "415"];

/// A failure of a seed endpoint, with the seed's status: every client-side failure 400, but
/// a wrong method (405, as Django answered), a schema failure (already 422) and a limit (429,
/// with `Retry-After`: the seed had no limits of its own). Server-side faults stay 5xx.
pub fn seed_status(e: ApiError) -> ApiError {
    match e.status.as_u16() {
        405 | 422 | 429 => e,
        400..=499 => e.with_status(StatusCode::BAD_REQUEST),
        _ => e,
    }
}

/// What django-ninja answers a body of a seed endpoint with before the view runs, given the
/// body's bytes and its JSON, if it is JSON: 422 with `detail` when it fails the schema.
///
/// * No body: ninja validates no payload at all, `["body", "payload"]` `missing`.
/// * A body that is not JSON passes here: ninja answers it `400 {"detail": "Cannot parse
///   request body"}`, and the sidecar `400 invalid_json`.
/// * JSON that is not an object (array, string, number, `null`): ninja's `Schema` reads
///   fields as attributes of it, finds none, and reports every required field `missing`.
/// * An object: a required field absent is `missing`; a field present but not a string
///   (number, boolean, array, object, and `null` for a required field) is `string_type`
///   (pydantic v2 does not turn numbers into strings). Unknown fields are ignored, and an
///   empty string passes (the seed then failed in Cognito, 400: so does the sidecar).
///
/// `code` and `message` are the first error's: `missing_field`, `invalid_field`, or
/// `invalid_json` when the body is not an object.
pub fn check_body(fields: &[Field], bytes: &[u8], parsed: Option<&Value>) -> Result<(), ApiError> {
    if bytes.is_empty() {
        return Err(unprocessable(
            ApiError::new(
                ErrorCode::InvalidJson,
                "the body is empty; send a JSON object",
            ),
            vec![missing(&[])],
        ));
    }
    let Some(value) = parsed else {
        return Ok(());
    };
    let object = value.as_object();
    let mut detail = Vec::new();
    let mut first: Option<ApiError> = None;
    for &(name, required) in fields {
        let found = object.and_then(|o| o.get(name));
        let (item, error) = match found {
            None if required => (missing(&[name]), ApiError::missing_field(name)),
            None | Some(Value::String(_)) => continue,
            Some(Value::Null) if !required => continue,
            Some(_) => (string_type(name), ApiError::not_a_string(name)),
        };
        detail.push(item);
        first.get_or_insert(error);
    }
    match first {
        None => Ok(()),
        Some(_) if object.is_none() => Err(unprocessable(ErrorCode::InvalidJson.into(), detail)),
        Some(e) => Err(unprocessable(e, detail)),
    }
}

fn unprocessable(e: ApiError, detail: Vec<Value>) -> ApiError {
    e.with_status(StatusCode::UNPROCESSABLE_ENTITY)
        .with_detail(Value::Array(detail))
}

/// `["body", "payload", ...path]`: ninja's location of a body field (`payload` is the name of
/// the views' body parameter).
fn loc(path: &[&str]) -> Value {
    let mut loc = vec![Value::from("body"), Value::from("payload")];
    loc.extend(path.iter().map(|p| Value::from(*p)));
    Value::Array(loc)
}

fn missing(path: &[&str]) -> Value {
    json!({ "type": "missing", "loc": loc(path), "msg": "Field required" })
}

fn string_type(name: &str) -> Value {
    json!({ "type": "string_type", "loc": loc(&[name]), "msg": "Input should be a valid string" })
}

/// The OpenAPI document as seed mode answers: on the seed's operations the default mode's
/// 401, 403, 413 and 415 are folded into 400 (their descriptions and headers with it), and
/// the operations with a body answer 422 `SeedValidationError`.
pub fn openapi(doc: &mut Value) {
    if let Some(info) = doc.get_mut("info").and_then(Value::as_object_mut) {
        let described = info
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        info.insert(
            "description".into(),
            Value::from(format!(
                "{described} Served with api.compatibility = \"seed\": login, new-password, \
                 refresh and logout answer every client-side failure 400, and a body that fails \
                 the seed's schema 422 with django-ninja's detail; limits stay 429, Cognito's \
                 faults 502/503."
            )),
        );
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(op) = item.get_mut("post").and_then(Value::as_object_mut) else {
            continue;
        };
        let id = op
            .get("operationId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !OPERATIONS.contains(&id) {
            continue;
        }
        let has_body = op.contains_key("requestBody");
        let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
            continue;
        };
        let mut folded = Vec::new();
        let mut headers = Map::new();
        for status in FOLDED {
            if let Some(r) = responses.remove(status) {
                let what = r
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                folded.push(format!("{what} (default mode: {status})"));
                if let Some(h) = r.get("headers").and_then(Value::as_object) {
                    headers.extend(h.clone());
                }
            }
        }
        if let Some(bad) = responses.get_mut("400").and_then(Value::as_object_mut) {
            let what = bad
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let description = format!("{what}; {}", folded.join("; "));
            bad.insert("description".into(), Value::from(description));
            if !headers.is_empty() {
                bad.insert("headers".into(), Value::Object(headers));
            }
        }
        if has_body {
            responses.insert(
                "422".into(),
                json!({
                    "description": "The body fails the seed's schema, as django-ninja answered \
                        it: a required field absent or not a string, a body that is not a JSON \
                        object, no body (missing_field, invalid_field, invalid_json; detail[].loc \
                        is [\"body\", \"payload\", field])",
                    "content": { "application/json": { "schema": {
                        "$ref": "#/components/schemas/SeedValidationError"
                    } } }
                }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
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
            serde_json::from_str(include_str!("../openapi.json")).expect("the spec is JSON");
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
            doc["paths"]["/api/user/logout"]["post"]["responses"]["400"]["headers"]
                ["WWW-Authenticate"],
            default["paths"]["/api/user/logout"]["post"]["responses"]["401"]["headers"]
                ["WWW-Authenticate"]
        );
        assert!(doc["components"]["schemas"]["SeedValidationError"].is_object());
    }
}
