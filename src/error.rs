//! Every failure the sidecar answers with, classified by who is at fault, and the one place
//! where failures become HTTP responses (`ApiError::into_response`).
//!
//! Leaf modules own small error enums (`VerifyError`, `IdpError`, `ProxyError`); the `From`
//! impls here decide status, stable `code` and client-facing message. Messages never carry
//! Cognito/SDK text, tokens, passwords or other secret material.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};

use crate::gate::verify::VerifyError;
use crate::http::body::{full, Body};
use crate::idp::{IdpError, Step};
use crate::upstream::ProxyError;

/// An error answer: status, stable snake_case code and a message safe to show a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: Cow<'static, str>,
    challenge: Option<&'static str>,
    allow: Option<&'static str>,
    retry_after: Option<u64>,
    location: Option<Box<HeaderValue>>,
    /// django-ninja's validation errors, beside `message` and `code` (`api.compatibility`).
    detail: Option<Box<serde_json::Value>>,
}

impl ApiError {
    /// A plain error answer.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            challenge: None,
            allow: None,
            retry_after: None,
            location: None,
            detail: None,
        }
    }

    /// 400: the request body or a field is wrong.
    pub fn bad_request(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 400 naming a missing or empty field.
    pub fn missing_field(field: &str) -> Self {
        Self::bad_request(
            "missing_field",
            format!("field `{field}` is required and must not be empty"),
        )
    }

    /// 401 from the gate (RFC 6750 `invalid_token`).
    pub fn invalid_token(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, code, message);
        e.challenge = Some("Bearer error=\"invalid_token\"");
        e
    }

    /// 401 when no token was sent at all (RFC 6750 §3.1: no error code then).
    pub fn token_missing() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "token_missing",
            "an `Authorization: Bearer <access token>` header is required",
        );
        e.challenge = Some("Bearer");
        e
    }

    /// 403: valid token, but not in a group the route requires (RFC 6750 `insufficient_scope`).
    pub fn insufficient_scope() -> Self {
        let mut e = Self::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "the user is not in a group this route requires",
        );
        e.challenge = Some("Bearer error=\"insufficient_scope\"");
        e
    }

    /// 405 with the `Allow` header.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("use {allow}"),
        );
        e.allow = Some(allow);
        e
    }

    /// 429 with `Retry-After` (seconds).
    pub fn too_many_requests(code: &'static str, message: &'static str, retry_after: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, code, message);
        e.retry_after = Some(retry_after.max(1));
        e
    }

    /// 500: a bug or a state that should not happen; details go to the log, not the client.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error",
        )
    }

    /// Whether the fault is the client's (logged at debug) or ours/a neighbour's (logged at warn).
    pub fn is_client_fault(&self) -> bool {
        !self.status.is_server_error()
    }

    /// 302 to the sign-in page: a browser navigation without a session (`Location` set; the
    /// JSON body is there for anything that does not follow redirects).
    pub fn sign_in_required(location: HeaderValue) -> Self {
        let mut e = Self::new(
            StatusCode::FOUND,
            "sign_in_required",
            "sign in first (Location has the sign-in page)",
        );
        e.location = Some(Box::new(location));
        e
    }

    /// The same answer with another status (forward-auth shapes refusals for nginx).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The same answer with a `detail` member beside `message` and `code`.
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(Box::new(detail));
        self
    }

    /// 403: a cookie-authenticated request the CSRF rules refuse.
    pub fn csrf_rejected() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "csrf_rejected",
            "a cross-site request cannot use the session cookie",
        )
    }

    /// The one conversion to HTTP: JSON `{"message", "code"}` (and `detail` when set) plus the
    /// headers the status needs.
    pub fn into_response(self) -> Response<Body> {
        let mut body = serde_json::json!({ "message": self.message, "code": self.code });
        if let Some(detail) = self.detail {
            body["detail"] = *detail;
        }
        let mut resp = Response::new(full(Bytes::from(body.to_string())));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(c) = self.challenge {
            h.insert(WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        if let Some(a) = self.allow {
            h.insert(ALLOW, HeaderValue::from_static(a));
        }
        if let Some(s) = self.retry_after {
            h.insert(RETRY_AFTER, HeaderValue::from(s));
        }
        if let Some(l) = self.location {
            h.insert(http::header::LOCATION, *l);
            h.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            );
        }
        resp
    }
}

impl From<VerifyError> for ApiError {
    fn from(e: VerifyError) -> Self {
        use VerifyError as V;
        match e {
            V::Missing => ApiError::token_missing(),
            V::NotReady => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "keys_unavailable",
                "the signing keys of the user pool are not loaded yet; retry shortly",
            ),
            other => ApiError::invalid_token(other.code(), other.to_string()),
        }
    }
}

impl From<IdpError> for ApiError {
    /// The meaning of an error whatever the step; `ApiError::from_idp` decides first for the
    /// errors whose meaning depends on it.
    fn from(e: IdpError) -> Self {
        match e {
            IdpError::Throttled => ApiError::too_many_requests(
                "idp_throttled",
                "the identity provider is throttling requests; retry later",
                1,
            ),
            IdpError::LimitExceeded => ApiError::too_many_requests(
                "attempt_limit_exceeded",
                "the identity provider's attempt limit for this user is reached; retry later",
                60,
            ),
            IdpError::TooManyFailedAttempts => ApiError::too_many_requests(
                "too_many_failed_attempts",
                "too many failed attempts; retry later",
                60,
            ),
            IdpError::Unavailable => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "idp_unavailable",
                "the identity provider could not be reached in time",
            ),
            IdpError::InvalidPassword => ApiError::bad_request(
                "weak_password",
                "the new password does not meet the password policy",
            ),
            IdpError::CodeMismatch | IdpError::EnableSoftwareTokenMfa => {
                ApiError::bad_request("invalid_code", "the code is wrong")
            }
            IdpError::ExpiredCode => ApiError::bad_request(
                "expired_code",
                "the code has expired or was already used; request a new one",
            ),
            IdpError::CodeDeliveryFailure => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "code_delivery_failed",
                "the identity provider could not send the code",
            ),
            IdpError::PasswordResetRequired => ApiError::new(
                StatusCode::FORBIDDEN,
                "password_reset_required",
                "the password must be reset before signing in",
            ),
            IdpError::UserNotConfirmed => ApiError::new(
                StatusCode::FORBIDDEN,
                "user_not_confirmed",
                "the user has not been confirmed",
            ),
            IdpError::InvalidParameter => ApiError::bad_request(
                "invalid_request",
                "the identity provider rejected the request's parameters",
            ),
            IdpError::NotAuthorized | IdpError::UserNotFound => {
                ApiError::new(StatusCode::UNAUTHORIZED, "not_authorized", "not authorized")
            }
            IdpError::ResourceNotFound | IdpError::Unexpected(_) | IdpError::BadResponse => {
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "idp_error",
                    "the identity provider answered unexpectedly",
                )
            }
        }
    }
}

impl ApiError {
    /// A Cognito error, classified by the step that raised it as well as by its name: sign-in
    /// and MFA steps never answer `weak_password` (some emulators and pool configurations
    /// send InvalidPasswordException for a wrong password) and never tell an unknown user
    /// from a wrong secret; a refused session is `invalid_session`; and so on. ForgotPassword's
    /// refusals that would reveal whether a user exists never get here (`auth.rs` answers
    /// them 200).
    pub fn from_idp(step: Step, e: IdpError) -> Self {
        use IdpError as E;
        use Step as S;
        match (step, e) {
            (
                S::Login | S::MfaAnswer | S::MfaAssociate | S::MfaVerify,
                E::InvalidPassword,
            )
            | (S::Login, E::NotAuthorized | E::UserNotFound)
            | (S::ChangePassword, E::NotAuthorized) => ApiError::invalid_credentials(),
            (
                S::NewPassword | S::MfaAnswer | S::MfaAssociate | S::MfaVerify,
                E::NotAuthorized | E::UserNotFound | E::ResourceNotFound,
            )
            | (S::NewPassword, E::CodeMismatch | E::ExpiredCode) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_session",
                "the session is invalid, expired or already used; sign in again",
            ),
            (S::Refresh, E::NotAuthorized | E::UserNotFound | E::InvalidPassword) => {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_refresh_token",
                    "the refresh token is invalid, expired or revoked (or the username does not match it)",
                )
            }
            (S::Logout, E::NotAuthorized | E::UserNotFound | E::InvalidPassword)
            | (S::ChangePassword, E::UserNotFound) => {
                ApiError::invalid_token("token_invalid", "the identity provider refused the token")
            }
            // An unknown user looks like a wrong code (moto answers ResourceNotFound for it).
            (
                S::ConfirmForgotPassword,
                E::UserNotFound | E::ResourceNotFound | E::NotAuthorized,
            ) => ApiError::from(E::CodeMismatch),
            (_, e) => ApiError::from(e),
        }
    }

    /// 401: wrong email or password, or an unknown user (the same answer on purpose).
    pub fn invalid_credentials() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "incorrect email or password",
        )
    }
}

impl From<ProxyError> for ApiError {
    fn from(e: ProxyError) -> Self {
        match e {
            ProxyError::Timeout => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "the application did not answer in time",
            ),
            ProxyError::TooManyTunnels => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_tunnels",
                "too many upgraded connections are open; retry later",
            ),
            ProxyError::ClientBody => ApiError::bad_request(
                "invalid_body",
                "the request body is malformed or ended early",
            ),
            ProxyError::Unavailable => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                "the application could not be reached",
            ),
        }
    }
}

/// Shared by the unit tables here and in `auth.rs`.
#[cfg(test)]
pub(crate) mod tests_support {
    use crate::idp::IdpError;

    /// One of each `IdpError`, in a fixed order (a new variant must be added here: the match
    /// below fails to compile until it is).
    pub fn all_idp_errors() -> Vec<IdpError> {
        let all = vec![
            IdpError::NotAuthorized,
            IdpError::UserNotFound,
            IdpError::ResourceNotFound,
            IdpError::CodeMismatch,
            IdpError::ExpiredCode,
            IdpError::EnableSoftwareTokenMfa,
            IdpError::InvalidPassword,
            IdpError::PasswordResetRequired,
            IdpError::UserNotConfirmed,
            IdpError::InvalidParameter,
            IdpError::LimitExceeded,
            IdpError::TooManyFailedAttempts,
            IdpError::CodeDeliveryFailure,
            IdpError::Throttled,
            IdpError::Unavailable,
            IdpError::BadResponse,
            IdpError::Unexpected("AccessDeniedException".into()),
        ];
        for e in &all {
            match e {
                IdpError::NotAuthorized
                | IdpError::UserNotFound
                | IdpError::ResourceNotFound
                | IdpError::CodeMismatch
                | IdpError::ExpiredCode
                | IdpError::EnableSoftwareTokenMfa
                | IdpError::InvalidPassword
                | IdpError::PasswordResetRequired
                | IdpError::UserNotConfirmed
                | IdpError::InvalidParameter
                | IdpError::LimitExceeded
                | IdpError::TooManyFailedAttempts
                | IdpError::CodeDeliveryFailure
                | IdpError::Throttled
                | IdpError::Unavailable
                | IdpError::BadResponse
                | IdpError::Unexpected(_) => {}
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// Every step × every Cognito error, written out: the columns follow
    /// `tests_support::all_idp_errors()` (NotAuthorized, UserNotFound, ResourceNotFound,
    /// CodeMismatch, ExpiredCode, EnableSoftwareTokenMFA, InvalidPassword,
    /// PasswordResetRequired, UserNotConfirmed, InvalidParameter, LimitExceeded,
    /// TooManyFailedAttempts, CodeDeliveryFailure, Throttled, Unavailable, BadResponse,
    /// Unexpected). ForgotPassword's row is what `from_idp` says; `auth.rs` answers its
    /// user-revealing refusals 200 before (tested there).
    #[test]
    fn step_by_error_matrix() {
        const CRED: &str = "invalid_credentials";
        const SESS: &str = "invalid_session";
        const CODE: &str = "invalid_code";
        const EXP: &str = "expired_code";
        const WEAK: &str = "weak_password";
        const TOK: &str = "token_invalid";
        const NA: &str = "not_authorized";
        const IDP: &str = "idp_error";
        // The columns from PasswordResetRequired on are the same in every row but where noted.
        const TAIL: [&str; 10] = [
            "password_reset_required",
            "user_not_confirmed",
            "invalid_request",
            "attempt_limit_exceeded",
            "too_many_failed_attempts",
            "code_delivery_failed",
            "idp_throttled",
            "idp_unavailable",
            IDP,
            IDP,
        ];
        let head: [(Step, [&str; 7]); 10] = [
            (Step::Login, [CRED, CRED, IDP, CODE, EXP, CODE, CRED]),
            (
                Step::NewPassword,
                [SESS, SESS, SESS, SESS, SESS, CODE, WEAK],
            ),
            (Step::MfaAnswer, [SESS, SESS, SESS, CODE, EXP, CODE, CRED]),
            (
                Step::MfaAssociate,
                [SESS, SESS, SESS, CODE, EXP, CODE, CRED],
            ),
            (Step::MfaVerify, [SESS, SESS, SESS, CODE, EXP, CODE, CRED]),
            (
                Step::Refresh,
                [
                    "invalid_refresh_token",
                    "invalid_refresh_token",
                    IDP,
                    CODE,
                    EXP,
                    CODE,
                    "invalid_refresh_token",
                ],
            ),
            (Step::Logout, [TOK, TOK, IDP, CODE, EXP, CODE, TOK]),
            (Step::ForgotPassword, [NA, NA, IDP, CODE, EXP, CODE, WEAK]),
            (
                Step::ConfirmForgotPassword,
                [CODE, CODE, CODE, CODE, EXP, CODE, WEAK],
            ),
            (
                Step::ChangePassword,
                [CRED, TOK, IDP, CODE, EXP, CODE, WEAK],
            ),
        ];
        assert_eq!(head.map(|(s, _)| s), Step::ALL, "every step, in order");
        let errors = tests_support::all_idp_errors();
        let status_of = |code: &str| match code {
            CRED | SESS | TOK | NA | "invalid_refresh_token" => 401,
            CODE | EXP | WEAK | "invalid_request" => 400,
            "password_reset_required" | "user_not_confirmed" => 403,
            "attempt_limit_exceeded" | "too_many_failed_attempts" | "idp_throttled" => 429,
            "code_delivery_failed" | IDP => 502,
            "idp_unavailable" => 503,
            other => panic!("no status for {other}"),
        };
        for (step, first) in head {
            let row: Vec<&str> = first.iter().chain(TAIL.iter()).copied().collect();
            assert_eq!(row.len(), errors.len());
            for (e, want) in errors.iter().zip(row) {
                let got = ApiError::from_idp(step, e.clone());
                assert_eq!(
                    (got.code, got.status.as_u16()),
                    (want, status_of(want)),
                    "{step:?} × {e:?}"
                );
                // A sign-in or MFA step never says weak_password, and never tells an unknown
                // user from a wrong secret.
                if matches!(
                    step,
                    Step::Login | Step::MfaAnswer | Step::MfaAssociate | Step::MfaVerify
                ) {
                    assert_ne!(got.code, WEAK, "{step:?} × {e:?}");
                }
            }
            let unknown = ApiError::from_idp(step, IdpError::UserNotFound);
            let refused = ApiError::from_idp(step, IdpError::NotAuthorized);
            if step != Step::ChangePassword {
                assert_eq!(unknown, refused, "{step:?}: unknown user == refused");
            }
        }
        // Retry-After on every 429.
        for e in [
            IdpError::LimitExceeded,
            IdpError::TooManyFailedAttempts,
            IdpError::Throttled,
        ] {
            let resp = ApiError::from(e).into_response();
            assert!(resp.headers().contains_key(RETRY_AFTER));
        }
    }

    #[tokio::test]
    async fn renders_json_and_headers() {
        let cases = [
            (
                ApiError::token_missing(),
                401,
                "token_missing",
                Some("Bearer"),
                None,
            ),
            (
                ApiError::from(VerifyError::Expired),
                401,
                "token_expired",
                Some("Bearer error=\"invalid_token\""),
                None,
            ),
            (
                ApiError::insufficient_scope(),
                403,
                "insufficient_scope",
                Some("Bearer error=\"insufficient_scope\""),
                None,
            ),
            (
                ApiError::method_not_allowed("POST"),
                405,
                "method_not_allowed",
                None,
                Some("POST"),
            ),
            (
                ApiError::from(IdpError::Throttled),
                429,
                "idp_throttled",
                None,
                None,
            ),
            (
                ApiError::from(IdpError::Unavailable),
                503,
                "idp_unavailable",
                None,
                None,
            ),
            (
                ApiError::from(IdpError::BadResponse),
                502,
                "idp_error",
                None,
                None,
            ),
            (
                ApiError::from(ProxyError::Timeout),
                504,
                "upstream_timeout",
                None,
                None,
            ),
            (
                ApiError::from(ProxyError::TooManyTunnels),
                503,
                "too_many_tunnels",
                None,
                None,
            ),
            (
                ApiError::from(VerifyError::NotReady),
                503,
                "keys_unavailable",
                None,
                None,
            ),
        ];
        for (err, status, code, challenge, allow) in cases {
            let resp = err.into_response();
            assert_eq!(resp.status().as_u16(), status, "{code}");
            assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
            assert_eq!(
                resp.headers()
                    .get(WWW_AUTHENTICATE)
                    .map(|v| v.to_str().expect("ascii")),
                challenge
            );
            assert_eq!(
                resp.headers()
                    .get(ALLOW)
                    .map(|v| v.to_str().expect("ascii")),
                allow
            );
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
            assert_eq!(v["code"], code);
            assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    }
}
