//! Forward-auth (`forward_auth.enabled`): the gate's decision for a front proxy that is
//! already in the data path (nginx `auth_request`, Traefik ForwardAuth, Envoy `ext_authz`).
//! The check never proxies anything: it answers 200 with the identity headers when the
//! original request would pass the gate, else the gate's refusal.
//!
//! This module is the pure part: where each front proxy puts the original request
//! (`original`), and how an answer is shaped for nginx, which relays only 401 and 403
//! (`for_auth_request`). `App::check` runs the original request through the same functions
//! the gate uses (`crate::http::path::is_canonical_method`, `Router::rule_for`, `App::decide`), so a
//! front proxy and the sidecar can never disagree about what was authorized.
//!
//! | convention | method | path and query | host |
//! |---|---|---|---|
//! | `nginx` | `X-Original-Method` | `X-Original-URI` (`$request_uri`) | `Host` |
//! | `traefik` | `X-Forwarded-Method` | `X-Forwarded-Uri` | `X-Forwarded-Host` |
//! | `envoy` | the check request's | the check request's after `forward_auth.path` | `Host` |
//!
//! A missing or repeated method or URI header is `400 original_request_invalid`: the front
//! proxy is misconfigured, and guessing (the check's own path, `GET`) could authorize a
//! request nobody asked about.

use http::header::{HeaderName, HeaderValue, HOST, WWW_AUTHENTICATE};
use http::{HeaderMap, Method, StatusCode, Uri};

use crate::config::Convention;
use crate::error::{ApiError, ErrorCode};

pub static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
pub static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
pub static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
pub static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
/// On every check answer: the `code` of the JSON body (or `ok`), for proxies that cannot
/// read the body of an authorization answer (nginx `auth_request_set`).
pub static X_SIDECAR_CODE: HeaderName = HeaderName::from_static("x-sidecar-code");

/// The request a front proxy asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    pub method: Method,
    /// Path and query, exactly as the front proxy received them (`crate::http::path::read_target`
    /// accepted them).
    pub target: String,
    /// The original `Host`, if the front proxy passed one.
    pub host: Option<HeaderValue>,
}

/// Reads the original request from the check request (`method`, `uri`, `headers`) by the
/// front proxy's convention. `check_path` is `forward_auth.path`.
pub fn original(
    convention: Convention,
    check_path: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Original, ApiError> {
    let (method, target, host) = match convention {
        Convention::Nginx => (
            parse_method(required(headers, &X_ORIGINAL_METHOD)?)?,
            required_bytes(headers, &X_ORIGINAL_URI)?,
            single(headers, &HOST)?.cloned(),
        ),
        Convention::Traefik => (
            parse_method(required(headers, &X_FORWARDED_METHOD)?)?,
            required_bytes(headers, &X_FORWARDED_URI)?,
            single(headers, &crate::http::headers::X_FORWARDED_HOST)?.cloned(),
        ),
        Convention::Envoy => {
            let rest = uri.path().strip_prefix(check_path).unwrap_or_default();
            let target = match uri.query() {
                Some(q) => format!("{rest}?{q}").into_bytes(),
                None => rest.as_bytes().to_vec(),
            };
            (method.clone(), target, single(headers, &HOST)?.cloned())
        }
    };
    // The proxy path's reader: origin form, hyper's bytes, no fragment, a canonical path.
    crate::http::path::read_target(&target).map_err(|_| ApiError::from(ErrorCode::InvalidPath))?;
    let target = String::from_utf8(target).map_err(|_| ApiError::from(ErrorCode::InvalidPath))?;
    Ok(Original {
        method,
        target,
        host,
    })
}

impl Original {
    /// The target's path (before any `?`).
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }
}

/// Shapes a refusal of the original request for nginx's `auth_request`, which relays only
/// 401 and 403 (anything else becomes 500): a 400 (a path or method the gate refuses) or a
/// 405 (`CONNECT`) is answered 403 with the same code, and the browser's way to sign in (302
/// `sign_in_required`) is a 401 whose `Location` nginx's `error_page 401` can use.
pub fn for_auth_request(e: ApiError) -> ApiError {
    match e.status {
        StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED => {
            ApiError::new(e.code, e.message).with_status(StatusCode::FORBIDDEN)
        }
        StatusCode::FOUND => e.with_status(StatusCode::UNAUTHORIZED),
        _ => e,
    }
}

/// Adds what every check answer carries: the code, and for a 401 without a challenge (a
/// sign-in redirect turned 401) `WWW-Authenticate: Bearer`.
pub fn mark(resp: &mut http::Response<crate::http::body::Body>, code: &'static str) {
    let h = resp.headers_mut();
    h.insert(X_SIDECAR_CODE.clone(), HeaderValue::from_static(code));
    if resp.status() == StatusCode::UNAUTHORIZED {
        let h = resp.headers_mut();
        if !h.contains_key(WWW_AUTHENTICATE) {
            h.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
    }
}

fn single<'a>(h: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a HeaderValue>, ApiError> {
    let mut all = h.get_all(name).iter();
    let first = all.next();
    if all.next().is_some() {
        return Err(invalid_original());
    }
    Ok(first)
}

fn required<'a>(h: &'a HeaderMap, name: &HeaderName) -> Result<&'a str, ApiError> {
    single(h, name)?
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or_else(invalid_original)
}

/// The one value of a header that carries a request target, as bytes: nginx passes a raw
/// UTF-8 path as it came (the reader decides whether it is acceptable, as for the proxy path).
fn required_bytes(h: &HeaderMap, name: &HeaderName) -> Result<Vec<u8>, ApiError> {
    single(h, name)?
        .map(|v| v.as_bytes().to_vec())
        .filter(|v| !v.is_empty())
        .ok_or_else(invalid_original)
}

fn parse_method(v: &str) -> Result<Method, ApiError> {
    Method::from_bytes(v.as_bytes()).map_err(|_| ApiError::from(ErrorCode::InvalidMethod))
}

fn invalid_original() -> ApiError {
    ErrorCode::OriginalRequestInvalid.into()
}

#[cfg(test)]
mod tests;
