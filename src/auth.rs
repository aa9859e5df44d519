//! The auth API the sidecar serves itself, a drop-in for the seed's Django endpoints:
//! `POST <prefix>/login`, `/new-password`, `/refresh`, `/logout`, same JSON field names.
//!
//! Parses and limits the JSON body, calls Cognito through `idp`, shapes the answer. Maps the
//! Cognito errors whose meaning depends on the endpoint (a `NotAuthorized` is bad credentials
//! on login but a revoked refresh token on refresh); everything else goes through
//! `ApiError::from`. Unknown users and wrong passwords get the same answer.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::body::{full, Body};
use crate::error::ApiError;
use crate::gate::Gate;
use crate::idp::{AuthOutcome, Cognito, IdpError, Tokens};
use crate::limit::Limiter;
use crate::metrics::SharedMetrics;
use crate::router::Endpoint;
use crate::shared::Shared;
use crate::verify::{self, now_secs};

/// The seed's `LoginOut`, plus `username` (the canonical Cognito username a client needs to
/// refresh when the app client has a secret). Absent values are `null`, as django-ninja sent.
#[derive(Debug, Default, Serialize)]
pub struct LoginOut {
    pub access_token: Option<String>,
    pub id_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: Option<i32>,
    pub token_type: Option<String>,
    pub challenge: Option<&'static str>,
    pub session: Option<String>,
    pub username: Option<String>,
}

/// The auth endpoints and what they need.
#[derive(Clone)]
pub struct AuthApi {
    idp: Arc<Cognito>,
    gate: Gate,
    max_body: usize,
    max_token_bytes: usize,
    by_username: Arc<Limiter<String>>,
    /// The fleet backend: logouts are published to it.
    shared: Option<Shared>,
    metrics: SharedMetrics,
}

/// A successful answer and the `sub` of the user, when known, for the access log.
pub type Answer = (Response<Body>, Option<String>);

impl AuthApi {
    /// The endpoints over a Cognito client and the gate (for logout and refresh).
    pub fn new(
        idp: Arc<Cognito>,
        gate: Gate,
        max_body: usize,
        max_token_bytes: usize,
        by_username: Arc<Limiter<String>>,
        shared: Option<Shared>,
        metrics: SharedMetrics,
    ) -> Self {
        AuthApi {
            idp,
            gate,
            max_body,
            max_token_bytes,
            by_username,
            shared,
            metrics,
        }
    }

    /// Password attempts per username are limited, whoever sends them (credential stuffing
    /// from many addresses against one account still spends that account's budget only).
    async fn limit_username(&self, username: &str) -> Result<(), ApiError> {
        self.by_username
            .check(&username.trim().to_lowercase())
            .await
            .map_err(|wait| {
                self.metrics.rate_limited("username");
                ApiError::too_many_requests(
                    "rate_limited",
                    "too many attempts for this user; retry later",
                    wait.as_secs_f64().ceil() as u64,
                )
            })
    }

    /// Serves one auth request.
    pub async fn handle(&self, ep: Endpoint, req: Request<Incoming>) -> Result<Answer, ApiError> {
        if req.method() != Method::POST {
            return Err(ApiError::method_not_allowed("POST"));
        }
        match ep {
            Endpoint::Logout => self.logout(req).await,
            Endpoint::Login => {
                let body = self.json_body(req).await?;
                self.login(&body).await
            }
            Endpoint::NewPassword => {
                let body = self.json_body(req).await?;
                self.new_password(&body).await
            }
            Endpoint::Refresh => {
                let (parts, body) = req.into_parts();
                let body = self
                    .json_body(Request::from_parts(parts.clone(), body))
                    .await?;
                self.refresh(&body, &parts.headers).await
            }
        }
    }

    async fn login(&self, body: &Map<String, Value>) -> Result<Answer, ApiError> {
        let email = field(body, "email")?;
        let password = field(body, "password")?;
        self.limit_username(email).await?;
        match self.idp.login(email, password).await {
            Ok(outcome) => answer(outcome),
            Err(IdpError::NotAuthorized | IdpError::UserNotFound) => Err(invalid_credentials()),
            Err(e) => Err(e.into()),
        }
    }

    async fn new_password(&self, body: &Map<String, Value>) -> Result<Answer, ApiError> {
        let email = field(body, "email")?;
        let new_password = field(body, "new_password")?;
        let session = field(body, "session")?;
        self.limit_username(email).await?;
        match self.idp.new_password(email, new_password, session).await {
            Ok(outcome) => answer(outcome),
            Err(IdpError::NotAuthorized | IdpError::SessionInvalid | IdpError::UserNotFound) => {
                Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_session",
                    "the session is invalid, expired or already used; sign in again",
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn refresh(
        &self,
        body: &Map<String, Value>,
        headers: &http::HeaderMap,
    ) -> Result<Answer, ApiError> {
        let refresh_token = field(body, "refresh_token")?;
        let mut username = optional_field(body, "username")?.map(str::to_owned);
        if self.idp.has_secret() && username.is_none() {
            // The access token (expired is fine) names the user, if its signature verifies.
            let token = match verify::bearer(headers, self.max_token_bytes) {
                Ok(t) => t,
                Err(verify::VerifyError::Missing) => {
                    return Err(ApiError::bad_request(
                        "missing_field",
                        "field `username` is required when the app client has a secret \
                         (or send the access token as `Authorization: Bearer`)",
                    ))
                }
                Err(e) => return Err(e.into()),
            };
            let claims = self
                .gate
                .verifier()
                .verify_ignoring_expiry(token, now_secs())
                .await?;
            username = Some(claims.username.ok_or_else(|| {
                ApiError::invalid_token("claim_missing", "the access token has no username")
            })?);
        }
        match self.idp.refresh(refresh_token, username.as_deref()).await {
            Ok(tokens) => answer(AuthOutcome::Tokens(tokens)),
            Err(IdpError::NotAuthorized | IdpError::UserNotFound) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_refresh_token",
                "the refresh token is invalid, expired or revoked (or the username does not match it)",
            )),
            Err(e) => Err(e.into()),
        }
    }

    async fn logout(&self, req: Request<Incoming>) -> Result<Answer, ApiError> {
        let token = verify::bearer(req.headers(), self.max_token_bytes)?;
        // Always as an access token: GlobalSignOut takes nothing else, even when the gate
        // accepts only id tokens (`verify.token_use = ["id"]`).
        let claims = self.gate.check_access(token).await?;
        match self.idp.global_sign_out(token).await {
            Ok(()) => {}
            Err(IdpError::NotAuthorized | IdpError::UserNotFound) => {
                return Err(ApiError::invalid_token(
                    "token_invalid",
                    "the identity provider refused the token",
                ))
            }
            Err(e) => return Err(e.into()),
        }
        let revocation = self.gate.revoke(&claims);
        if let Some(shared) = &self.shared {
            shared.publish(revocation);
        }
        Ok((
            json(StatusCode::OK, &serde_json::json!({ "ok": true })),
            Some(claims.sub),
        ))
    }

    /// Reads a JSON object body: content type checked, size limited, parsed.
    async fn json_body(&self, req: Request<Incoming>) -> Result<Map<String, Value>, ApiError> {
        let ct = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !(mime.eq_ignore_ascii_case("application/json")
            || (mime.len() > 5 && mime[mime.len() - 5..].eq_ignore_ascii_case("+json")))
        {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as Content-Type: application/json",
            ));
        }
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than {} bytes", self.max_body),
            )
        };
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|l| l > self.max_body as u64) {
            return Err(too_large());
        }
        let bytes: Bytes = match Limited::new(req.into_body(), self.max_body).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
            Err(_) => {
                return Err(ApiError::bad_request(
                    "body_incomplete",
                    "the request body could not be read",
                ))
            }
        };
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(ApiError::bad_request(
                "invalid_json",
                "the body must be a JSON object",
            )),
            Err(_) => Err(ApiError::bad_request(
                "invalid_json",
                "the body is not valid JSON",
            )),
        }
    }
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "incorrect email or password",
    )
}

/// A required, non-empty string field.
fn field<'a>(body: &'a Map<String, Value>, name: &str) -> Result<&'a str, ApiError> {
    optional_field(body, name)?.ok_or_else(|| ApiError::missing_field(name))
}

/// An optional string field: absent, null or empty is `None`; another type is an error.
fn optional_field<'a>(
    body: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::bad_request(
            "invalid_field",
            format!("field `{name}` must be a string"),
        )),
    }
}

fn answer(outcome: AuthOutcome) -> Result<Answer, ApiError> {
    match outcome {
        AuthOutcome::Tokens(t) => {
            let claims = t.access_token.as_deref().and_then(unverified_claims);
            let claim = |k: &str| {
                claims
                    .as_ref()
                    .and_then(|c| c.get(k))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            let sub = claim("sub");
            let username = claim("username");
            let Tokens {
                access_token,
                id_token,
                refresh_token,
                expires_in,
                token_type,
            } = t;
            let out = LoginOut {
                access_token,
                id_token,
                refresh_token,
                expires_in,
                token_type,
                username,
                ..LoginOut::default()
            };
            Ok((json(StatusCode::OK, &out), sub))
        }
        AuthOutcome::Challenge {
            name,
            session,
            username,
        } if name == "NEW_PASSWORD_REQUIRED" => {
            let out = LoginOut {
                challenge: Some("NEW_PASSWORD_REQUIRED"),
                session,
                username,
                ..LoginOut::default()
            };
            Ok((json(StatusCode::OK, &out), None))
        }
        AuthOutcome::Challenge { name, .. } => {
            // The name is Cognito's enum value (SMS_MFA, CUSTOM_CHALLENGE, ...), not user data.
            let name: String = name
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            Err(ApiError::bad_request(
                "unsupported_challenge",
                format!(
                    "the sign-in requires the {name} challenge, which this API does not support"
                ),
            ))
        }
    }
}

/// The claims of a token Cognito just returned to us over TLS; used only to report the
/// username and `sub`, never to authorize anything.
fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut resp = Response::new(full(bytes));
            *resp.status_mut() = status;
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp
        }
        Err(_) => ApiError::internal().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_table() {
        let Value::Object(body) = json!({"a": "x", "b": "", "c": null, "d": 5, "e": ["x"]}) else {
            unreachable!()
        };
        assert_eq!(field(&body, "a").ok(), Some("x"));
        for missing in ["b", "c", "zz"] {
            let e = field(&body, missing).expect_err(missing);
            assert_eq!((e.status.as_u16(), e.code), (400, "missing_field"));
            assert!(e.message.contains(missing));
        }
        for wrong in ["d", "e"] {
            let e = field(&body, wrong).expect_err(wrong);
            assert_eq!((e.status.as_u16(), e.code), (400, "invalid_field"));
        }
    }

    #[test]
    fn other_challenges_are_named_not_crashed() {
        let e = answer(AuthOutcome::Challenge {
            name: "SMS_MFA".into(),
            session: Some("secret-session".into()),
            username: None,
        })
        .expect_err("unsupported");
        assert_eq!(e.code, "unsupported_challenge");
        assert!(e.message.contains("SMS_MFA"));
        assert!(!e.message.contains("secret-session"));
    }
}
