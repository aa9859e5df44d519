//! The auth API's request bodies: a JSON object of at most `api.max_body_bytes` (in seed mode
//! first checked against the seed's schema, `compat::check_body`), and its string fields.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::Request;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Map, Value};

use super::{compat, Endpoint};
use crate::error::{ApiError, ErrorCode};

/// Reads a JSON object body of at most `max_body` bytes: content type checked, size limited, parsed; when `seed`,
/// checked against the seed's schema of `ep` (`compat::check_body`).
pub(super) async fn json_object(
    req: Request<Incoming>,
    ep: Endpoint,
    max_body: usize,
    seed: bool,
) -> Result<Map<String, Value>, ApiError> {
    let ct = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !(mime.eq_ignore_ascii_case("application/json")
        || (mime.len() > 5 && mime[mime.len() - 5..].eq_ignore_ascii_case("+json")))
    {
        return Err(ErrorCode::UnsupportedMediaType.into());
    }
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the body is larger than {} bytes", max_body),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|l| l > max_body as u64) {
        return Err(too_large());
    }
    let bytes: Bytes = match Limited::new(req.into_body(), max_body).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(_) => return Err(ErrorCode::BodyIncomplete.into()),
    };
    let parsed = serde_json::from_slice::<Value>(&bytes);
    if let Some(fields) = compat::schema(ep).filter(|_| seed) {
        compat::check_body(fields, &bytes, parsed.as_ref().ok())?;
    }
    match parsed {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ErrorCode::InvalidJson.into()),
        Err(_) => Err(ApiError::new(
            ErrorCode::InvalidJson,
            "the body is not valid JSON",
        )),
    }
}

/// A code field (MFA, TOTP, confirmation): required, at most 64 visible ASCII characters.
pub(super) fn code_field<'a>(
    body: &'a Map<String, Value>,
    name: &str,
) -> Result<&'a str, ApiError> {
    let code = field(body, name)?;
    if code.len() > 64 || !code.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            format!("field `{name}` must be a code of at most 64 visible ASCII characters"),
        ));
    }
    Ok(code)
}

/// A required, non-empty string field.
pub(super) fn field<'a>(body: &'a Map<String, Value>, name: &str) -> Result<&'a str, ApiError> {
    optional_field(body, name)?.ok_or_else(|| ApiError::missing_field(name))
}

/// An optional string field: absent, null or empty is `None`; another type is an error.
pub(super) fn optional_field<'a>(
    body: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::not_a_string(name)),
    }
}
