//! Every failure the sidecar answers with, classified by who is at fault, and the one place
//! where failures become HTTP responses (`ApiError::into_response`).
//!
//! `ErrorCode` is the list of the codes clients see: each is spelled once, in the table
//! below, with its status, its default message and whose fault it is. Leaf modules own small
//! error enums (`VerifyError`, `IdpError`, `ProxyError`); the `From` impls here map them to
//! codes. Messages never carry Cognito/SDK text, tokens, passwords or other secret material.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};

use crate::gate::verify::VerifyError;
use crate::http::body::{full, Body};
use crate::idp::{IdpError, Step};
use crate::upstream::ProxyError;

/// Whose fault a failure is: the client's (logged at debug) or ours or a neighbour's (Cognito,
/// the app; logged at warn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Client,
    Ours,
}

/// The table of codes: one row per code, `Variant = "code", STATUS, fault, "default message"`.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal, $status:ident, $fault:ident, $message:literal;)*) => {
        /// A code the sidecar answers with (`{"code": ...}`; `src/openapi.json`'s `ErrorCode`,
        /// the Errors table of docs/src/auth-api.md).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the table's order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The snake_case code clients see (and metrics label refusals with).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The status answered with, unless reshaped (`ApiError::with_status`).
            pub const fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)*
                }
            }

            /// The client-safe message answered with when the site gives no more specific one.
            pub const fn message(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $message,)*
                }
            }

            /// Whose fault the failure is.
            pub const fn fault(self) -> Fault {
                match self {
                    $(ErrorCode::$variant => Fault::$fault,)*
                }
            }
        }
    };
}

error_codes! {
    // The request: body, fields, target, headers.
    InvalidJson = "invalid_json", BAD_REQUEST, Client, "the body must be a JSON object";
    /// The message names the field (`ApiError::missing_field`).
    MissingField = "missing_field", BAD_REQUEST, Client, "a required field is absent or empty";
    InvalidField = "invalid_field", BAD_REQUEST, Client, "a field has the wrong type or value";
    UnsupportedChallenge = "unsupported_challenge", BAD_REQUEST, Client,
        "the sign-in requires a challenge this API does not support";
    BodyIncomplete = "body_incomplete", BAD_REQUEST, Client, "the request body could not be read";
    InvalidPath = "invalid_path", BAD_REQUEST, Client,
        "the request path is not in canonical form (dot segments, //, \\, ; or an encoded / \\ . ; % or letter)";
    InvalidHeader = "invalid_header", BAD_REQUEST, Client,
        "a header name is another spelling of Content-Length, Transfer-Encoding, Host, Connection, Upgrade, Expect or TE";
    InvalidBody = "invalid_body", BAD_REQUEST, Client, "the request body is malformed or ended early";
    InvalidMethod = "invalid_method", BAD_REQUEST, Client, "the request method must be an upper-case token";
    InvalidHost = "invalid_host", BAD_REQUEST, Client, "the request's Host is not a valid authority";
    UntrustedProxy = "untrusted_proxy", BAD_REQUEST, Client,
        "the forward-auth check answers only the front proxies in server.trusted_proxies";
    OriginalRequestInvalid = "original_request_invalid", BAD_REQUEST, Client,
        "the front proxy did not pass the original method and URI, once each (see docs/src/forward-auth.md)";
    NotFound = "not_found", NOT_FOUND, Client, "not found";
    /// With `Allow` (`ApiError::method_not_allowed`).
    MethodNotAllowed = "method_not_allowed", METHOD_NOT_ALLOWED, Client, "the method is not allowed here";
    PayloadTooLarge = "payload_too_large", PAYLOAD_TOO_LARGE, Client, "the body is too large";
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, Client,
        "send the body as Content-Type: application/json";
    /// With `Retry-After` (`ApiError::rate_limited`, whose message names the budget).
    RateLimited = "rate_limited", TOO_MANY_REQUESTS, Client, "too many requests; retry later";

    // Cognito's answers (`ApiError::from_idp`).
    WeakPassword = "weak_password", BAD_REQUEST, Client, "the new password does not meet the password policy";
    InvalidCode = "invalid_code", BAD_REQUEST, Client, "the code is wrong";
    ExpiredCode = "expired_code", BAD_REQUEST, Client,
        "the code has expired or was already used; request a new one";
    InvalidRequest = "invalid_request", BAD_REQUEST, Client,
        "the identity provider rejected the request's parameters";
    InvalidCredentials = "invalid_credentials", UNAUTHORIZED, Client, "incorrect email or password";
    InvalidSession = "invalid_session", UNAUTHORIZED, Client,
        "the session is invalid, expired or already used; sign in again";
    InvalidRefreshToken = "invalid_refresh_token", UNAUTHORIZED, Client,
        "the refresh token is invalid, expired or revoked (or the username does not match it)";
    TokenInvalid = "token_invalid", UNAUTHORIZED, Client, "the identity provider refused the token";
    NotAuthorized = "not_authorized", UNAUTHORIZED, Client, "not authorized";
    PasswordResetRequired = "password_reset_required", FORBIDDEN, Client,
        "the password must be reset before signing in";
    UserNotConfirmed = "user_not_confirmed", FORBIDDEN, Client, "the user has not been confirmed";
    IdpThrottled = "idp_throttled", TOO_MANY_REQUESTS, Client,
        "the identity provider is throttling requests; retry later";
    AttemptLimitExceeded = "attempt_limit_exceeded", TOO_MANY_REQUESTS, Client,
        "the identity provider's attempt limit for this user is reached; retry later";
    TooManyFailedAttempts = "too_many_failed_attempts", TOO_MANY_REQUESTS, Client,
        "too many failed attempts; retry later";
    IdpError = "idp_error", BAD_GATEWAY, Ours, "the identity provider answered unexpectedly";
    CodeDeliveryFailed = "code_delivery_failed", BAD_GATEWAY, Ours,
        "the identity provider could not send the code";
    IdpUnavailable = "idp_unavailable", SERVICE_UNAVAILABLE, Ours,
        "the identity provider could not be reached in time";
    RevocationNotEnabled = "revocation_not_enabled", NOT_IMPLEMENTED, Ours,
        "token revocation is not enabled for this app client (EnableTokenRevocation)";

    // The gate (`VerifyError`, in the order it checks).
    TokenMissing = "token_missing", UNAUTHORIZED, Client,
        "an `Authorization: Bearer <access token>` header is required";
    InvalidScheme = "invalid_scheme", UNAUTHORIZED, Client, "the Authorization scheme must be Bearer";
    MultipleAuthorization = "multiple_authorization", UNAUTHORIZED, Client, "more than one Authorization header";
    TokenTooLarge = "token_too_large", UNAUTHORIZED, Client, "the token is larger than allowed";
    TokenMalformed = "token_malformed", UNAUTHORIZED, Client, "the token is not a well-formed JWT";
    AlgNotAllowed = "alg_not_allowed", UNAUTHORIZED, Client, "the token's algorithm is not accepted";
    KidMissing = "kid_missing", UNAUTHORIZED, Client, "the token has no key id";
    KidUnknown = "kid_unknown", UNAUTHORIZED, Client, "the token's key id is not one of the user pool's keys";
    BadSignature = "bad_signature", UNAUTHORIZED, Client, "the token's signature does not verify";
    WrongIssuer = "wrong_issuer", UNAUTHORIZED, Client, "the token was issued by another issuer";
    WrongTokenUse = "wrong_token_use", UNAUTHORIZED, Client, "the token's use is not accepted here";
    WrongClient = "wrong_client", UNAUTHORIZED, Client, "the token was issued to another app client";
    ClaimMissing = "claim_missing", UNAUTHORIZED, Client, "the token lacks a required claim";
    TokenExpired = "token_expired", UNAUTHORIZED, Client, "the token has expired";
    TokenNotYetValid = "token_not_yet_valid", UNAUTHORIZED, Client, "the token is not valid yet";
    TokenIssuedInFuture = "token_issued_in_future", UNAUTHORIZED, Client, "the token was issued in the future";
    TokenRevoked = "token_revoked", UNAUTHORIZED, Client, "the token was revoked by a logout";
    KeysUnavailable = "keys_unavailable", SERVICE_UNAVAILABLE, Ours,
        "the signing keys of the user pool are not loaded yet; retry shortly";
    NotReady = "not_ready", SERVICE_UNAVAILABLE, Ours, "the signing keys of the user pool are not loaded yet";

    // After the gate: who may pass.
    /// With `Location` (`ApiError::sign_in_required`).
    SignInRequired = "sign_in_required", FOUND, Client, "sign in first (Location has the sign-in page)";
    CsrfRejected = "csrf_rejected", FORBIDDEN, Client, "a cross-site request cannot use the session cookie";
    InsufficientScope = "insufficient_scope", FORBIDDEN, Client, "the user is not in a group this route requires";
    ClaimNotAllowed = "claim_not_allowed", FORBIDDEN, Client, "a claim of the token has none of the values this route accepts";
    WrongPool = "wrong_pool", FORBIDDEN, Client, "the token was issued by a user pool this route does not accept";

    // The app.
    UpstreamUnavailable = "upstream_unavailable", BAD_GATEWAY, Ours, "the application could not be reached";
    TooManyTunnels = "too_many_tunnels", SERVICE_UNAVAILABLE, Ours,
        "too many upgraded connections are open; retry later";
    UpstreamTimeout = "upstream_timeout", GATEWAY_TIMEOUT, Ours, "the application did not answer in time";

    InternalError = "internal_error", INTERNAL_SERVER_ERROR, Ours, "internal error";
}

impl ErrorCode {
    /// The `WWW-Authenticate` challenge answered with (RFC 6750): `Bearer` alone when no token
    /// was sent (§3.1: no error code then), `invalid_token` for every refusal of a token,
    /// `insufficient_scope` for a token without the route's group.
    pub const fn challenge(self) -> Option<&'static str> {
        use ErrorCode as C;
        match self {
            C::TokenMissing => Some("Bearer"),
            C::InsufficientScope | C::ClaimNotAllowed | C::WrongPool => {
                Some("Bearer error=\"insufficient_scope\"")
            }
            C::InvalidScheme
            | C::MultipleAuthorization
            | C::TokenTooLarge
            | C::TokenMalformed
            | C::AlgNotAllowed
            | C::KidMissing
            | C::KidUnknown
            | C::BadSignature
            | C::WrongIssuer
            | C::WrongTokenUse
            | C::WrongClient
            | C::ClaimMissing
            | C::TokenExpired
            | C::TokenNotYetValid
            | C::TokenIssuedInFuture
            | C::TokenRevoked
            | C::TokenInvalid => Some("Bearer error=\"invalid_token\""),
            _ => None,
        }
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of the sidecar's budgets refused a request (`rate_limited`'s message says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Auth API and sign-in page requests per client address.
    Address,
    /// Password attempts per username.
    Username,
    /// Recovery requests per client address.
    RecoveryAddress,
    /// Recovery requests per username.
    RecoveryUsername,
}

impl Budget {
    fn message(self) -> &'static str {
        match self {
            Budget::Address => "too many requests from this address; retry later",
            Budget::Username => "too many attempts for this user; retry later",
            Budget::RecoveryAddress => "too many recovery requests from this address; retry later",
            Budget::RecoveryUsername => "too many recovery requests for this user; retry later",
        }
    }
}

/// An error answer: status, stable code and a message safe to show a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
    challenge: Option<&'static str>,
    allow: Option<&'static str>,
    retry_after: Option<u64>,
    location: Option<Box<HeaderValue>>,
    /// A `WWW-Authenticate` naming the scopes a route needs (instead of `challenge`).
    scope_challenge: Option<Box<HeaderValue>>,
    /// django-ninja's validation errors, beside `message` and `code` (`api.compatibility`).
    detail: Option<Box<serde_json::Value>>,
}

/// The code's answer: its status, default message and challenge.
impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        ApiError::new(code, code.message())
    }
}

impl ApiError {
    /// The code's answer with a more specific message (naming a field, a limit, a challenge).
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            status: code.status(),
            code,
            message: message.into(),
            challenge: code.challenge(),
            allow: None,
            retry_after: None,
            location: None,
            scope_challenge: None,
            detail: None,
        }
    }

    /// 400 naming a missing or empty field.
    pub fn missing_field(field: &str) -> Self {
        Self::new(
            ErrorCode::MissingField,
            format!("field `{field}` is required and must not be empty"),
        )
    }

    /// 400 naming a field that is not a string.
    pub fn not_a_string(field: &str) -> Self {
        Self::new(
            ErrorCode::InvalidField,
            format!("field `{field}` must be a string"),
        )
    }

    /// 401 when no token was sent at all (`WWW-Authenticate: Bearer`).
    pub fn token_missing() -> Self {
        ErrorCode::TokenMissing.into()
    }

    /// 403: valid token, but not in a group the route requires (RFC 6750 `insufficient_scope`).
    pub fn insufficient_scope() -> Self {
        ErrorCode::InsufficientScope.into()
    }

    /// 405 with the `Allow` header.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        let mut e = Self::new(ErrorCode::MethodNotAllowed, format!("use {allow}"));
        e.allow = Some(allow);
        e
    }

    /// 429 `rate_limited` with `Retry-After`: `wait` is when the budget has room again.
    pub fn rate_limited(budget: Budget, wait: Duration) -> Self {
        Self::new(ErrorCode::RateLimited, budget.message())
            .with_retry_after(wait.as_secs_f64().ceil() as u64)
    }

    /// The same answer with `Retry-After` (seconds, at least 1).
    fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// 500: a bug or a state that should not happen; details go to the log, not the client.
    pub fn internal() -> Self {
        ErrorCode::InternalError.into()
    }

    /// Whether the fault is the client's (logged at debug) or ours/a neighbour's (logged at warn).
    pub fn is_client_fault(&self) -> bool {
        self.code.fault() == Fault::Client
    }

    /// 302 to the sign-in page: a browser navigation without a session (`Location` set; the
    /// JSON body is there for anything that does not follow redirects).
    pub fn sign_in_required(location: HeaderValue) -> Self {
        let mut e = Self::from(ErrorCode::SignInRequired);
        e.location = Some(Box::new(location));
        e
    }

    /// The same answer with another status (forward-auth shapes refusals for nginx; the seed's
    /// statuses). The fault stays the code's.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The same answer with a `detail` member beside `message` and `code`.
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(Box::new(detail));
        self
    }

    /// 403: a verified caller a route's requirements refuse. A missing scope names the
    /// route's scopes in `WWW-Authenticate` (RFC 6750 §3).
    pub fn unmet(unmet: crate::gate::authorize::Unmet) -> Self {
        use crate::gate::authorize::Unmet;
        match unmet {
            Unmet::Pool => ErrorCode::WrongPool.into(),
            Unmet::Group => ErrorCode::InsufficientScope.into(),
            Unmet::Scope(scopes) => {
                let mut e = ApiError::new(
                    ErrorCode::InsufficientScope,
                    "the token lacks a scope this route requires",
                );
                e.scope_challenge = HeaderValue::from_str(&format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{scopes}\""
                ))
                .ok()
                .map(Box::new);
                e
            }
            Unmet::Claim(_) => ErrorCode::ClaimNotAllowed.into(),
        }
    }

    /// 403: a cookie-authenticated request the CSRF rules refuse.
    pub fn csrf_rejected() -> Self {
        ErrorCode::CsrfRejected.into()
    }

    /// The one conversion to HTTP: JSON `{"message", "code"}` (and `detail` when set) plus the
    /// headers the status needs.
    pub fn into_response(self) -> Response<Body> {
        let mut body = serde_json::json!({ "message": self.message, "code": self.code.as_str() });
        if let Some(detail) = self.detail {
            body["detail"] = *detail;
        }
        let mut resp = Response::new(full(Bytes::from(body.to_string())));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(c) = self.scope_challenge {
            h.insert(WWW_AUTHENTICATE, *c);
        } else if let Some(c) = self.challenge {
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

impl From<VerifyError> for ErrorCode {
    fn from(e: VerifyError) -> Self {
        use ErrorCode as C;
        use VerifyError as V;
        match e {
            V::Missing => C::TokenMissing,
            V::Scheme => C::InvalidScheme,
            V::Multiple => C::MultipleAuthorization,
            V::TooLarge => C::TokenTooLarge,
            V::Malformed => C::TokenMalformed,
            V::Algorithm => C::AlgNotAllowed,
            V::KidMissing => C::KidMissing,
            V::KidUnknown => C::KidUnknown,
            V::Signature => C::BadSignature,
            V::Issuer => C::WrongIssuer,
            V::TokenUse => C::WrongTokenUse,
            V::Client => C::WrongClient,
            V::Expired => C::TokenExpired,
            V::NotYetValid => C::TokenNotYetValid,
            V::IssuedInFuture => C::TokenIssuedInFuture,
            V::ClaimMissing => C::ClaimMissing,
            V::Revoked => C::TokenRevoked,
            V::NotReady => C::KeysUnavailable,
        }
    }
}

impl From<VerifyError> for ApiError {
    fn from(e: VerifyError) -> Self {
        ErrorCode::from(e).into()
    }
}

impl From<IdpError> for ErrorCode {
    /// The meaning of an error whatever the step; `ApiError::from_idp` decides first for the
    /// errors whose meaning depends on it.
    fn from(e: IdpError) -> Self {
        use ErrorCode as C;
        match e {
            IdpError::Throttled => C::IdpThrottled,
            IdpError::LimitExceeded => C::AttemptLimitExceeded,
            IdpError::TooManyFailedAttempts => C::TooManyFailedAttempts,
            IdpError::Unavailable => C::IdpUnavailable,
            IdpError::InvalidPassword => C::WeakPassword,
            IdpError::CodeMismatch | IdpError::EnableSoftwareTokenMfa => C::InvalidCode,
            IdpError::ExpiredCode => C::ExpiredCode,
            IdpError::CodeDeliveryFailure => C::CodeDeliveryFailed,
            IdpError::PasswordResetRequired => C::PasswordResetRequired,
            IdpError::UserNotConfirmed => C::UserNotConfirmed,
            IdpError::InvalidParameter => C::InvalidRequest,
            IdpError::NotAuthorized | IdpError::UserNotFound => C::NotAuthorized,
            IdpError::ResourceNotFound
            | IdpError::UnsupportedOperation
            | IdpError::Unexpected(_)
            | IdpError::BadResponse => C::IdpError,
        }
    }
}

impl From<IdpError> for ApiError {
    /// The code's answer; Cognito's 429s carry `Retry-After` (Cognito does not say how long:
    /// a second for its request rate, a minute for a per-user limit).
    fn from(e: IdpError) -> Self {
        let code = ErrorCode::from(e);
        let e = ApiError::from(code);
        match code {
            ErrorCode::IdpThrottled => e.with_retry_after(1),
            ErrorCode::AttemptLimitExceeded | ErrorCode::TooManyFailedAttempts => {
                e.with_retry_after(60)
            }
            _ => e,
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
            (S::Login | S::MfaAnswer | S::MfaAssociate | S::MfaVerify, E::InvalidPassword)
            | (S::Login, E::NotAuthorized | E::UserNotFound)
            | (S::ChangePassword, E::NotAuthorized) => ApiError::invalid_credentials(),
            (
                S::NewPassword | S::MfaAnswer | S::MfaAssociate | S::MfaVerify,
                E::NotAuthorized | E::UserNotFound | E::ResourceNotFound,
            )
            | (S::NewPassword, E::CodeMismatch | E::ExpiredCode) => {
                ErrorCode::InvalidSession.into()
            }
            (S::Refresh | S::Revoke, E::NotAuthorized | E::UserNotFound | E::InvalidPassword) => {
                ErrorCode::InvalidRefreshToken.into()
            }
            (S::Revoke, E::UnsupportedOperation) => ErrorCode::RevocationNotEnabled.into(),
            (S::Logout, E::NotAuthorized | E::UserNotFound | E::InvalidPassword)
            | (S::ChangePassword, E::UserNotFound) => ErrorCode::TokenInvalid.into(),
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
        ErrorCode::InvalidCredentials.into()
    }
}

impl From<ProxyError> for ErrorCode {
    fn from(e: ProxyError) -> Self {
        match e {
            ProxyError::Timeout => ErrorCode::UpstreamTimeout,
            ProxyError::TooManyTunnels => ErrorCode::TooManyTunnels,
            ProxyError::ClientBody => ErrorCode::InvalidBody,
            ProxyError::Unavailable => ErrorCode::UpstreamUnavailable,
        }
    }
}

impl From<ProxyError> for ApiError {
    fn from(e: ProxyError) -> Self {
        ErrorCode::from(e).into()
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
            IdpError::UnsupportedOperation,
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
                | IdpError::UnsupportedOperation
                | IdpError::Unexpected(_) => {}
            }
        }
        all
    }
}

#[cfg(test)]
mod tests;
