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
mod tests;
