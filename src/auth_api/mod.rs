//! The auth API the sidecar serves itself, a drop-in for the seed's Django endpoints:
//! `POST <prefix>/login`, `/new-password`, `/refresh`, `/logout`, same JSON field names; and
//! what real user pools need next: MFA on sign-in (`/mfa`, `/mfa/setup`, `/mfa/verify`),
//! password recovery (`/forgot-password`, `/confirm-forgot-password`) and `/change-password`.
//!
//! Parses and limits the JSON body, calls Cognito through `idp`, shapes the answer. Cognito
//! errors are classified by the step that raised them (`ApiError::from_idp`: a
//! `NotAuthorized` is bad credentials on login but a revoked refresh token on refresh).
//! Unknown users and wrong passwords get the same answer, and so do unknown and known users
//! asking for a password reset.

mod body;
pub mod compat;
mod sign_out;

use std::net::IpAddr;
use std::sync::Arc;

use aws_sdk_cognitoidentityprovider::types::ChallengeNameType;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{ApiError, Budget, ErrorCode};
use crate::fleet::Shared;
use crate::gate::verify;
use crate::gate::Gate;
use crate::http::body::{full, Body};
use crate::idp::{AuthOutcome, ChallengeHints, Cognito, Delivery, Step, Tokens, UserContext};
use crate::limit::{Limiter, RecoveryLimits};
use crate::telemetry::metrics::SharedMetrics;
use body::{code_field, field, optional_field};

/// One of the auth API's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Login,
    NewPassword,
    Refresh,
    Logout,
    Revoke,
    Mfa,
    MfaSetup,
    MfaVerify,
    ForgotPassword,
    ConfirmForgotPassword,
    ChangePassword,
}

impl Endpoint {
    /// Every endpoint, in the order of the API.
    pub const ALL: [Endpoint; 11] = [
        Endpoint::Login,
        Endpoint::NewPassword,
        Endpoint::Refresh,
        Endpoint::Logout,
        Endpoint::Revoke,
        Endpoint::Mfa,
        Endpoint::MfaSetup,
        Endpoint::MfaVerify,
        Endpoint::ForgotPassword,
        Endpoint::ConfirmForgotPassword,
        Endpoint::ChangePassword,
    ];
}

impl Endpoint {
    /// The endpoint's path segment, for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Login => "login",
            Endpoint::NewPassword => "new-password",
            Endpoint::Refresh => "refresh",
            Endpoint::Logout => "logout",
            Endpoint::Revoke => "revoke",
            Endpoint::Mfa => "mfa",
            Endpoint::MfaSetup => "mfa/setup",
            Endpoint::MfaVerify => "mfa/verify",
            Endpoint::ForgotPassword => "forgot-password",
            Endpoint::ConfirmForgotPassword => "confirm-forgot-password",
            Endpoint::ChangePassword => "change-password",
        }
    }
}

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
    /// With a challenge: where Cognito sent a code and which MFA types can be chosen or set
    /// up, when it says (`null` otherwise).
    pub challenge_hints: Option<ChallengeHints>,
}

/// The challenges `login`, `new-password`, `mfa` and `mfa/verify` relay; any other is
/// answered `400 unsupported_challenge`.
pub const CHALLENGES: [&str; 8] = [
    "NEW_PASSWORD_REQUIRED",
    "SOFTWARE_TOKEN_MFA",
    "SMS_MFA",
    "EMAIL_OTP",
    "SELECT_MFA_TYPE",
    "MFA_SETUP",
    // Choice-based sign-in (`cognito.choice_based_sign_in`).
    "SELECT_CHALLENGE",
    "SMS_OTP",
];

/// The answer of `mfa/setup`: the TOTP secret, the same as an `otpauth://` URI for an
/// authenticator app (a QR code of it), and the session `mfa/verify` takes.
#[derive(Debug, Serialize)]
pub struct MfaSetupOut {
    pub secret_code: String,
    pub otpauth_uri: String,
    pub session: String,
}

/// The answer of `forgot-password`, the same whether or not the user exists.
#[derive(Debug, Serialize)]
pub struct ForgotOut {
    pub ok: bool,
    pub delivery: Option<Delivery>,
}

/// The auth endpoints and what they need.
#[derive(Clone)]
pub struct AuthApi {
    idp: Arc<Cognito>,
    gate: Gate,
    max_body: usize,
    max_token_bytes: usize,
    by_username: Arc<Limiter<String>>,
    recovery: Arc<RecoveryLimits>,
    totp_issuer: Arc<str>,
    /// The fleet backend: logouts are published to it.
    shared: Option<Shared>,
    metrics: SharedMetrics,
    /// `api.compatibility = "seed"`: the seed's endpoints answer with its statuses.
    seed: bool,
}

/// A successful answer and the `sub` of the user, when known, for the access log.
pub type Answer = (Response<Body>, Option<String>);

impl AuthApi {
    /// The endpoints over a Cognito client and the gate (for logout and refresh).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        idp: Arc<Cognito>,
        gate: Gate,
        api: &crate::config::ApiConfig,
        max_token_bytes: usize,
        by_username: Arc<Limiter<String>>,
        recovery: Arc<RecoveryLimits>,
        shared: Option<Shared>,
        metrics: SharedMetrics,
    ) -> Self {
        AuthApi {
            idp,
            gate,
            max_body: api.max_body_bytes,
            max_token_bytes,
            by_username,
            recovery,
            totp_issuer: Arc::from(api.totp_issuer.as_str()),
            shared,
            metrics,
            seed: api.compatibility == crate::config::Compatibility::Seed,
        }
    }

    async fn limit_recovery(
        &self,
        endpoint: &str,
        username: &str,
        client: IpAddr,
    ) -> Result<(), ApiError> {
        self.recovery.check(endpoint, username, client).await
    }

    /// Password attempts per username are limited, whoever sends them (credential stuffing
    /// from many addresses against one account still spends that account's budget only).
    async fn limit_username(&self, username: &str) -> Result<(), ApiError> {
        self.by_username
            .check(&username.trim().to_lowercase())
            .await
            .map_err(|wait| {
                self.metrics.rate_limited("username");
                ApiError::rate_limited(Budget::Username, wait)
            })
    }

    /// Serves one auth request from `client` (the address the rate limits count); in seed
    /// mode the seed's endpoints fail with the seed's statuses (`compat::seed_status`).
    pub async fn handle(
        &self,
        ep: Endpoint,
        req: Request<Incoming>,
        client: IpAddr,
    ) -> Result<Answer, ApiError> {
        let result = self.serve(ep, req, client).await;
        if self.seed && compat::is_seed_endpoint(ep) {
            result.map_err(compat::seed_status)
        } else {
            result
        }
    }

    async fn serve(
        &self,
        ep: Endpoint,
        req: Request<Incoming>,
        client: IpAddr,
    ) -> Result<Answer, ApiError> {
        if req.method() != Method::POST {
            return Err(ApiError::method_not_allowed("POST"));
        }
        // Where the user is, for Cognito's threat protection (the sign-in steps' calls).
        let ctx = self.idp.context(req.headers(), client, req.uri().path());
        match ep {
            Endpoint::Logout => self.logout(req).await,
            Endpoint::Revoke => {
                let (parts, body) = req.into_parts();
                let body = self
                    .json_body(Request::from_parts(parts.clone(), body), ep)
                    .await?;
                self.revoke(&body, &parts.headers).await
            }
            Endpoint::Login => {
                let body = self.json_body(req, ep).await?;
                self.login(&body, &ctx).await
            }
            Endpoint::NewPassword => {
                let body = self.json_body(req, ep).await?;
                self.new_password(&body, &ctx).await
            }
            Endpoint::Refresh => {
                let (parts, body) = req.into_parts();
                let body = self
                    .json_body(Request::from_parts(parts.clone(), body), ep)
                    .await?;
                self.refresh(&body, &parts.headers).await
            }
            Endpoint::Mfa => {
                let body = self.json_body(req, ep).await?;
                self.mfa(&body, &ctx).await
            }
            Endpoint::MfaSetup => {
                let body = self.json_body(req, ep).await?;
                self.mfa_setup(&body).await
            }
            Endpoint::MfaVerify => {
                let body = self.json_body(req, ep).await?;
                self.mfa_verify(&body, &ctx).await
            }
            Endpoint::ForgotPassword => {
                let body = self.json_body(req, ep).await?;
                self.forgot_password(&body, client).await
            }
            Endpoint::ConfirmForgotPassword => {
                let body = self.json_body(req, ep).await?;
                self.confirm_forgot_password(&body, client).await
            }
            Endpoint::ChangePassword => {
                // The token first: without a valid one, the body is not even read.
                let token = verify::bearer(req.headers(), self.max_token_bytes)?.to_owned();
                let claims = self.gate.check_access(&token).await?;
                let body = self.json_body(req, ep).await?;
                self.change_password(&body, &token, claims).await
            }
        }
    }

    async fn login(
        &self,
        body: &Map<String, Value>,
        ctx: &UserContext,
    ) -> Result<Answer, ApiError> {
        let email = field(body, "email")?;
        // Checked in every mode (the document lists it), used with choice-based sign-in.
        let preferred = optional_field(body, "preferred_challenge")?;
        if preferred.is_some_and(|p| !matches!(p, "EMAIL_OTP" | "SMS_OTP" | "PASSWORD")) {
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                "field `preferred_challenge` must be EMAIL_OTP, SMS_OTP or PASSWORD",
            ));
        }
        if self.idp.choice_based() {
            // Choice-based sign-in: a password, or none (the challenges the pool offers).
            let password = optional_field(body, "password")?.filter(|p| !p.is_empty());
            self.limit_username(email).await?;
            return match self.idp.start_choice(email, password, preferred, ctx).await {
                Ok(outcome) => answer(outcome),
                Err(e) => Err(ApiError::from_idp(Step::Login, e)),
            };
        }
        let password = field(body, "password")?;
        self.limit_username(email).await?;
        match self.idp.login(email, password, ctx).await {
            Ok(outcome) => answer(outcome),
            Err(e) => Err(ApiError::from_idp(Step::Login, e)),
        }
    }

    async fn new_password(
        &self,
        body: &Map<String, Value>,
        ctx: &UserContext,
    ) -> Result<Answer, ApiError> {
        let email = field(body, "email")?;
        let new_password = field(body, "new_password")?;
        let session = field(body, "session")?;
        self.limit_username(email).await?;
        match self
            .idp
            .new_password(email, new_password, session, ctx)
            .await
        {
            Ok(outcome) => answer(outcome),
            Err(e) => Err(ApiError::from_idp(Step::NewPassword, e)),
        }
    }

    async fn refresh(
        &self,
        body: &Map<String, Value>,
        headers: &http::HeaderMap,
    ) -> Result<Answer, ApiError> {
        let refresh_token = field(body, "refresh_token")?;
        let mut username = optional_field(body, "username")?.map(str::to_owned);
        if self.idp.refresh_needs_username() && username.is_none() {
            // The access token (expired is fine) names the user, if its signature verifies.
            let token = match verify::bearer(headers, self.max_token_bytes) {
                Ok(t) => t,
                Err(verify::VerifyError::Missing) => {
                    return Err(ApiError::new(
                        ErrorCode::MissingField,
                        "field `username` is required when the app client has a secret \
                         (or send the access token as `Authorization: Bearer`)",
                    ))
                }
                Err(e) => return Err(e.into()),
            };
            let claims = self.gate.verify_ignoring_expiry(token).await?;
            username = Some(claims.username.ok_or_else(|| {
                ApiError::new(ErrorCode::ClaimMissing, "the access token has no username")
            })?);
        }
        match self.idp.refresh(refresh_token, username.as_deref()).await {
            Ok(tokens) => answer(AuthOutcome::Tokens(tokens)),
            Err(e) => Err(ApiError::from_idp(Step::Refresh, e)),
        }
    }

    /// Answers an MFA challenge: a code (SOFTWARE_TOKEN_MFA, SMS_MFA, EMAIL_OTP) or a choice
    /// (SELECT_MFA_TYPE). Tokens, or the next challenge.
    async fn mfa(&self, body: &Map<String, Value>, ctx: &UserContext) -> Result<Answer, ApiError> {
        let email = field(body, "email")?;
        let session = field(body, "session")?;
        let challenge = field(body, "challenge")?;
        let username = optional_field(body, "username")?.unwrap_or(email);
        let mut more: Option<(&str, &str)> = None;
        let (name, key, value) = match challenge {
            "SOFTWARE_TOKEN_MFA" => (
                ChallengeNameType::SoftwareTokenMfa,
                "SOFTWARE_TOKEN_MFA_CODE",
                code_field(body, "code")?,
            ),
            "SMS_OTP" => (
                ChallengeNameType::SmsOtp,
                "SMS_OTP_CODE",
                code_field(body, "code")?,
            ),
            // Choice-based sign-in: the chosen way, with the password when that is it.
            "SELECT_CHALLENGE" => {
                let answer = field(body, "answer")?;
                match answer {
                    "EMAIL_OTP" | "SMS_OTP" => {}
                    "PASSWORD" => more = Some(("PASSWORD", field(body, "password")?)),
                    _ => {
                        return Err(ApiError::new(
                            ErrorCode::InvalidField,
                            "field `answer` must be EMAIL_OTP, SMS_OTP or PASSWORD",
                        ))
                    }
                }
                (ChallengeNameType::SelectChallenge, "ANSWER", answer)
            }
            "SMS_MFA" => (
                ChallengeNameType::SmsMfa,
                "SMS_MFA_CODE",
                code_field(body, "code")?,
            ),
            "EMAIL_OTP" => (
                ChallengeNameType::EmailOtp,
                "EMAIL_OTP_CODE",
                code_field(body, "code")?,
            ),
            "SELECT_MFA_TYPE" => {
                let answer = field(body, "answer")?;
                if !matches!(answer, "SOFTWARE_TOKEN_MFA" | "SMS_MFA" | "EMAIL_OTP") {
                    return Err(ApiError::new(
                        ErrorCode::InvalidField,
                        "field `answer` must be SOFTWARE_TOKEN_MFA, SMS_MFA or EMAIL_OTP",
                    ));
                }
                (ChallengeNameType::SelectMfaType, "ANSWER", answer)
            }
            _ => {
                return Err(ApiError::new(
                    ErrorCode::InvalidField,
                    "field `challenge` must be SOFTWARE_TOKEN_MFA, SMS_MFA, EMAIL_OTP, SELECT_MFA_TYPE, \
                     SMS_OTP or SELECT_CHALLENGE",
                ))
            }
        };
        self.limit_username(email).await?;
        let mut responses = vec![(key, value)];
        responses.extend(more);
        match self
            .idp
            .respond(name, username, session, &responses, ctx)
            .await
        {
            Ok(outcome) => answer(outcome),
            Err(e) => Err(ApiError::from_idp(Step::MfaAnswer, e)),
        }
    }

    /// Starts TOTP enrollment from an MFA_SETUP session (AssociateSoftwareToken).
    async fn mfa_setup(&self, body: &Map<String, Value>) -> Result<Answer, ApiError> {
        let email = field(body, "email")?;
        let session = field(body, "session")?;
        self.limit_username(email).await?;
        let token = self
            .idp
            .associate_software_token(session)
            .await
            .map_err(|e| ApiError::from_idp(Step::MfaAssociate, e))?;
        let out = MfaSetupOut {
            otpauth_uri: crate::idp::otpauth_uri(&self.totp_issuer, email, &token.secret_code),
            session: token.session.unwrap_or_else(|| session.to_owned()),
            secret_code: token.secret_code,
        };
        let mut resp = json(StatusCode::OK, &out);
        resp.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok((resp, None))
    }

    /// Completes TOTP enrollment: VerifySoftwareToken with the first code, then MFA_SETUP is
    /// answered with the session it returns. Tokens, or the next challenge.
    async fn mfa_verify(
        &self,
        body: &Map<String, Value>,
        ctx: &UserContext,
    ) -> Result<Answer, ApiError> {
        let email = field(body, "email")?;
        let session = field(body, "session")?;
        let code = code_field(body, "code")?;
        let username = optional_field(body, "username")?.unwrap_or(email);
        let device = optional_field(body, "device_name")?;
        if device.is_some_and(|d| d.chars().count() > 64) {
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                "field `device_name` must be at most 64 characters",
            ));
        }
        self.limit_username(email).await?;
        let next = self
            .idp
            .verify_software_token(session, code, device)
            .await
            .map_err(|e| ApiError::from_idp(Step::MfaVerify, e))?;
        let next = next.as_deref().unwrap_or(session);
        match self
            .idp
            .respond(ChallengeNameType::MfaSetup, username, next, &[], ctx)
            .await
        {
            Ok(outcome) => answer(outcome),
            Err(e) => Err(ApiError::from_idp(Step::MfaAnswer, e)),
        }
    }

    /// ForgotPassword. The answer is the same for an unknown user: the refusals that would
    /// tell (no such user, no verified address, not confirmed, ...) are answered 200 too.
    async fn forgot_password(
        &self,
        body: &Map<String, Value>,
        client: IpAddr,
    ) -> Result<Answer, ApiError> {
        let email = field(body, "email")?;
        self.limit_recovery("forgot", email, client).await?;
        let delivery = match self.idp.forgot_password(email).await {
            Ok(d) => d,
            Err(e) if e.hides_user() => None,
            Err(e) => return Err(ApiError::from_idp(Step::ForgotPassword, e)),
        };
        let out = ForgotOut { ok: true, delivery };
        Ok((json(StatusCode::OK, &out), None))
    }

    /// ConfirmForgotPassword: the code and the new password.
    async fn confirm_forgot_password(
        &self,
        body: &Map<String, Value>,
        client: IpAddr,
    ) -> Result<Answer, ApiError> {
        let email = field(body, "email")?;
        let code = code_field(body, "code")?;
        let new_password = field(body, "new_password")?;
        self.limit_recovery("confirm", email, client).await?;
        self.idp
            .confirm_forgot_password(email, code, new_password)
            .await
            .map_err(|e| ApiError::from_idp(Step::ConfirmForgotPassword, e))?;
        Ok((
            json(StatusCode::OK, &serde_json::json!({ "ok": true })),
            None,
        ))
    }

    /// ChangePassword for the user of a verified access token; wrong old passwords count
    /// against that user's sign-in budget.
    async fn change_password(
        &self,
        body: &Map<String, Value>,
        token: &str,
        claims: crate::gate::verify::Claims,
    ) -> Result<Answer, ApiError> {
        let old_password = field(body, "old_password")?;
        let new_password = field(body, "new_password")?;
        self.limit_username(claims.username.as_deref().unwrap_or(&claims.sub))
            .await?;
        self.idp
            .change_password(token, old_password, new_password)
            .await
            .map_err(|e| ApiError::from_idp(Step::ChangePassword, e))?;
        Ok((
            json(StatusCode::OK, &serde_json::json!({ "ok": true })),
            Some(claims.sub),
        ))
    }

    /// The request's JSON object body (`body::json_object`).
    async fn json_body(
        &self,
        req: Request<Incoming>,
        ep: Endpoint,
    ) -> Result<Map<String, Value>, ApiError> {
        body::json_object(req, ep, self.max_body, self.seed).await
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
            // Some emulators omit ExpiresIn: the token's own lifetime says the same.
            let lifetime = claims.as_ref().and_then(|c| {
                let n = |k: &str| c.get(k).and_then(Value::as_i64);
                i32::try_from(n("exp")? - n("iat")?).ok().filter(|l| *l > 0)
            });
            let Tokens {
                access_token,
                id_token,
                refresh_token,
                expires_in,
                token_type,
            } = t;
            let out = LoginOut {
                expires_in: expires_in.or(lifetime),
                access_token,
                id_token,
                refresh_token,
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
            hints,
        } => match CHALLENGES.iter().find(|c| **c == name) {
            Some(challenge) => {
                let out = LoginOut {
                    challenge: Some(challenge),
                    session,
                    username,
                    challenge_hints: (!hints.is_empty()).then_some(hints),
                    ..LoginOut::default()
                };
                Ok((json(StatusCode::OK, &out), None))
            }
            None => {
                // The name is Cognito's enum value (CUSTOM_CHALLENGE, ...), not user data.
                let name: String = name
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .take(64)
                    .collect();
                Err(ApiError::new(
                    ErrorCode::UnsupportedChallenge,
                    format!(
                        "the sign-in requires the {name} challenge, which this API does not support"
                    ),
                ))
            }
        },
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
    use crate::idp::otpauth_uri;
    use http_body_util::BodyExt;
    use serde_json::json;

    #[test]
    fn fields_table() {
        let Value::Object(body) = json!({"a": "x", "b": "", "c": null, "d": 5, "e": ["x"]}) else {
            unreachable!()
        };
        assert_eq!(field(&body, "a").ok(), Some("x"));
        for missing in ["b", "c", "zz"] {
            let e = field(&body, missing).expect_err(missing);
            assert_eq!((e.status.as_u16(), e.code.as_str()), (400, "missing_field"));
            assert!(e.message.contains(missing));
        }
        for wrong in ["d", "e"] {
            let e = field(&body, wrong).expect_err(wrong);
            assert_eq!((e.status.as_u16(), e.code.as_str()), (400, "invalid_field"));
        }
    }

    #[test]
    fn other_challenges_are_named_not_crashed() {
        let e = answer(AuthOutcome::Challenge {
            name: "CUSTOM_CHALLENGE".into(),
            session: Some("secret-session".into()),
            username: None,
            hints: ChallengeHints::default(),
        })
        .expect_err("unsupported");
        assert_eq!(e.code, "unsupported_challenge");
        assert!(e.message.contains("CUSTOM_CHALLENGE"));
        assert!(!e.message.contains("secret-session"));
    }

    async fn body_of(resp: Response<Body>) -> Value {
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn every_mfa_challenge_is_relayed_with_its_hints() {
        for name in CHALLENGES {
            let hints = ChallengeHints {
                code_delivery_destination: Some("+*******1234".into()),
                code_delivery_medium: Some("SMS".into()),
                mfas_can_choose: Some(vec!["SMS_MFA".into(), "SOFTWARE_TOKEN_MFA".into()]),
                mfas_can_setup: None,
                available_challenges: None,
            };
            let (resp, sub) = answer(AuthOutcome::Challenge {
                name: name.into(),
                session: Some("sess".into()),
                username: Some("u-1".into()),
                hints,
            })
            .expect(name);
            assert_eq!(sub, None);
            let v = body_of(resp).await;
            assert_eq!(v["challenge"], name);
            assert_eq!(v["session"], "sess");
            assert_eq!(v["username"], "u-1");
            assert_eq!(v["access_token"], Value::Null);
            assert_eq!(v["challenge_hints"]["code_delivery_medium"], "SMS");
            assert_eq!(
                v["challenge_hints"]["mfas_can_choose"],
                json!(["SMS_MFA", "SOFTWARE_TOKEN_MFA"])
            );
            assert_eq!(v["challenge_hints"]["mfas_can_setup"], Value::Null);
        }
        // No hints: `challenge_hints` is null, not an object of nulls.
        let (resp, _) = answer(AuthOutcome::Challenge {
            name: "NEW_PASSWORD_REQUIRED".into(),
            session: Some("s".into()),
            username: None,
            hints: ChallengeHints::default(),
        })
        .expect("relayed");
        assert_eq!(body_of(resp).await["challenge_hints"], Value::Null);
    }

    #[tokio::test]
    async fn expires_in_is_derived_from_the_token_when_cognito_omits_it() {
        let token = |claims: Value| format!("h.{}.s", URL_SAFE_NO_PAD.encode(claims.to_string()));
        let cases = [
            (None, json!({"iat": 1000, "exp": 4600}), json!(3600)),
            (Some(300), json!({"iat": 1000, "exp": 4600}), json!(300)),
            (None, json!({"iat": 1000}), Value::Null),
            (None, json!({"iat": 5000, "exp": 4600}), Value::Null),
        ];
        for (given, claims, want) in cases {
            let (resp, _) = answer(AuthOutcome::Tokens(Tokens {
                access_token: Some(token(claims.clone())),
                expires_in: given,
                ..Tokens::default()
            }))
            .expect("tokens");
            assert_eq!(
                body_of(resp).await["expires_in"],
                want,
                "{given:?} {claims}"
            );
        }
    }

    #[test]
    fn otpauth_uri_escapes_the_label_and_carries_the_secret() {
        let uri = otpauth_uri("My App", "a+b@example.com", "JBSWY3DPEHPK3PXP");
        assert_eq!(
            uri,
            "otpauth://totp/My%20App:a%2Bb%40example%2Ecom?secret=JBSWY3DPEHPK3PXP\
             &issuer=My%20App&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn forgot_password_hides_exactly_the_refusals_that_tell_users_apart() {
        let all = crate::error::tests_support::all_idp_errors();
        let hidden: Vec<&str> = all
            .iter()
            .filter(|e| e.hides_user())
            .map(|e| e.class())
            .collect();
        assert_eq!(
            hidden,
            [
                "not_authorized",
                "user_not_found",
                "invalid_password",
                "user_not_confirmed",
                "invalid_parameter"
            ]
        );
    }

    #[test]
    fn code_fields_table() {
        let Value::Object(body) = json!({
            "ok": "123456", "moto": "moto-confirmation-code:123456", "space": "12 34",
            "long": "1".repeat(65), "nl": "1\n2", "num": 123456,
        }) else {
            unreachable!()
        };
        assert_eq!(code_field(&body, "ok").ok(), Some("123456"));
        assert!(code_field(&body, "moto").is_ok());
        for bad in ["space", "long", "nl", "num"] {
            let e = code_field(&body, bad).expect_err(bad);
            assert_eq!(
                (e.status.as_u16(), e.code.as_str()),
                (400, "invalid_field"),
                "{bad}"
            );
        }
        assert_eq!(
            code_field(&body, "absent").expect_err("absent").code,
            "missing_field"
        );
    }
}
