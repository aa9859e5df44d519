//! The Cognito user pool, seen through the few calls the auth API needs.
//!
//! Owns the SDK client (built once), SECRET_HASH, and the classification of SDK errors into
//! `IdpError` by exception name; what an error *means* depends on the step that raised it
//! (`Step`, mapped in `ApiError::from_idp`). Speaks our types (`Tokens`, `AuthOutcome`),
//! never SDK types. It must not log or return any token, password, code, TOTP secret,
//! session or SECRET_HASH, nor Cognito's message text (moto's message for a wrong admin
//! password is the username, for one).

use std::net::IpAddr;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{Region, SdkConfig};
use aws_sdk_cognitoidentityprovider::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cognitoidentityprovider::types::{
    AuthFlowType, AuthenticationResultType, ChallengeNameType, ContextDataType, HttpHeader,
    UserContextDataType, VerifySoftwareTokenResponseType,
};
use aws_sdk_cognitoidentityprovider::Client;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::AuthFlow;
use crate::telemetry::metrics::SharedMetrics;
use crate::telemetry::trace;

mod context;
mod error;
mod model;

pub use context::UserContext;
use error::classify;
pub use error::{IdpError, Step};
use model::enum_token;
pub use model::{
    otpauth_uri, AuthOutcome, ChallengeHints, Delivery, PasswordPolicy, PoolPolicies,
    SoftwareToken, Tokens,
};

/// The Cognito operations each auth flow calls, in one place: the IAM policy in `deploy/`
/// is checked against this list by a test.
pub fn operations(flow: AuthFlow) -> &'static [&'static str] {
    match flow {
        AuthFlow::AdminUserPassword => &[
            "AdminInitiateAuth",
            "AdminRespondToAuthChallenge",
            "InitiateAuth",
            "GlobalSignOut",
            "AssociateSoftwareToken",
            "VerifySoftwareToken",
            "ForgotPassword",
            "ConfirmForgotPassword",
            "ChangePassword",
        ],
        AuthFlow::UserPassword => &[
            "InitiateAuth",
            "RespondToAuthChallenge",
            "GlobalSignOut",
            "AssociateSoftwareToken",
            "VerifySoftwareToken",
            "ForgotPassword",
            "ConfirmForgotPassword",
            "ChangePassword",
        ],
    }
}

/// The operations of `operations(flow)` that are signed with AWS credentials, so the task
/// role needs them; the others are authorized by the client id (and SECRET_HASH), a challenge
/// session or the user's access token: the MFA set-up calls (AssociateSoftwareToken,
/// VerifySoftwareToken), ForgotPassword, ConfirmForgotPassword and ChangePassword have no
/// admin variant in use here and need no IAM permission in either flow.
pub fn iam_actions(flow: AuthFlow) -> &'static [&'static str] {
    match flow {
        AuthFlow::AdminUserPassword => &["AdminInitiateAuth", "AdminRespondToAuthChallenge"],
        AuthFlow::UserPassword => &[],
    }
}
/// Settings for `Cognito::new`.
#[derive(Clone)]
pub struct CognitoSettings {
    pub region: String,
    pub user_pool_id: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub endpoint_url: Option<String>,
    pub flow: AuthFlow,
    pub timeout: Duration,
    pub max_attempts: u32,
    /// Refresh with GetTokensFromRefreshToken (`cognito.refresh_token_rotation`).
    pub refresh_rotation: bool,
    /// ContextData on the admin flow's calls (`cognito.context_data`).
    pub context_data: bool,
    /// UserContextData on the public flow's calls (`cognito.propagate_user_context`).
    pub user_context_data: bool,
    /// `cognito.server_name`.
    pub server_name: Option<String>,
    /// Choice-based sign-in (`cognito.choice_based_sign_in`): AuthFlow USER_AUTH.
    pub user_auth: bool,
}

/// `outcome` over any of the four SDK outputs (they share accessor names, not a trait).
macro_rules! outcome_of {
    ($out:expr) => {
        outcome(
            $out.authentication_result(),
            $out.challenge_name(),
            $out.session(),
            $out.challenge_parameters(),
        )
    };
}

// After `outcome_of`, which it uses (a macro is in scope from its definition on).
mod choice;

/// The user pool client, built once and shared.
#[derive(Clone)]
pub struct Cognito {
    client: Client,
    pool_id: String,
    client_id: String,
    secret: Option<String>,
    flow: AuthFlow,
    refresh_rotation: bool,
    context_data: bool,
    user_context_data: bool,
    server_name: Option<String>,
    user_auth: bool,
    metrics: SharedMetrics,
}

impl Cognito {
    /// Builds the SDK client on top of `sdk` (credentials chain, HTTP client), with our
    /// region, endpoint override, deadline and retry budget.
    pub fn new(sdk: &SdkConfig, s: CognitoSettings, metrics: SharedMetrics) -> Self {
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(s.timeout)
            .connect_timeout(s.timeout.min(Duration::from_secs(3)))
            .build();
        let mut b = aws_sdk_cognitoidentityprovider::config::Builder::from(sdk)
            .region(Region::new(s.region))
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(s.max_attempts));
        if let Some(url) = s.endpoint_url {
            b = b.endpoint_url(url);
        }
        Cognito {
            client: Client::from_conf(b.build()),
            pool_id: s.user_pool_id,
            client_id: s.client_id,
            secret: s.client_secret,
            flow: s.flow,
            refresh_rotation: s.refresh_rotation,
            context_data: s.context_data,
            user_context_data: s.user_context_data,
            server_name: s.server_name,
            user_auth: s.user_auth,
            metrics,
        }
    }

    /// Whether a refresh needs the username, for SECRET_HASH (GetTokensFromRefreshToken
    /// takes the raw secret and no username).
    pub fn refresh_needs_username(&self) -> bool {
        self.secret.is_some() && !self.refresh_rotation
    }

    fn secret_hash(&self, username: &str) -> Option<String> {
        self.secret
            .as_deref()
            .map(|secret| secret_hash(secret, username, &self.client_id))
    }

    /// The context of a request from `client` to `path`, with `cognito.server_name`.
    pub fn context(&self, headers: &http::HeaderMap, client: IpAddr, path: &str) -> UserContext {
        UserContext::of(headers, client, self.server_name.as_deref(), path)
    }

    /// ContextData for an admin call (`None` when off; every part is always present, so the
    /// build cannot fail, but a failure would only leave the context out).
    fn context_data(&self, c: &UserContext) -> Option<ContextDataType> {
        if !self.context_data {
            return None;
        }
        let headers = c
            .headers
            .iter()
            .map(|(k, v)| HttpHeader::builder().header_name(k).header_value(v).build())
            .collect();
        ContextDataType::builder()
            .ip_address(&c.ip)
            .server_name(&c.server_name)
            .server_path(&c.server_path)
            .set_http_headers(Some(headers))
            .set_encoded_data(c.encoded_data.clone())
            .build()
            .ok()
    }

    /// UserContextData for a public-flow call: the address when propagated, the device
    /// fingerprint when collected (`None` when neither).
    fn user_context_data(&self, c: &UserContext) -> Option<UserContextDataType> {
        let ip = self.user_context_data.then(|| c.ip.clone());
        (ip.is_some() || c.encoded_data.is_some()).then(|| {
            UserContextDataType::builder()
                .set_ip_address(ip)
                .set_encoded_data(c.encoded_data.clone())
                .build()
        })
    }

    /// Whether sign-in is choice-based (`USER_AUTH`): a login may come without a password.
    pub fn choice_based(&self) -> bool {
        self.user_auth
    }

    /// Password sign-in with the configured flow.
    #[tracing::instrument(skip_all, fields(op))]
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        ctx: &UserContext,
    ) -> Result<AuthOutcome, IdpError> {
        if self.user_auth {
            return self.start_choice(username, Some(password), None, ctx).await;
        }
        let hash = self.secret_hash(username);
        match self.flow {
            AuthFlow::AdminUserPassword => {
                tracing::Span::current().record("op", "AdminInitiateAuth");
                let out = self
                    .client
                    .admin_initiate_auth()
                    .user_pool_id(&self.pool_id)
                    .client_id(&self.client_id)
                    .auth_flow(AuthFlowType::AdminUserPasswordAuth)
                    .auth_parameters("USERNAME", username)
                    .auth_parameters("PASSWORD", password)
                    .set_secret_hash(hash)
                    .set_context_data(self.context_data(ctx))
                    .send()
                    .timed(&self.metrics, "AdminInitiateAuth")
                    .await?;
                Ok(outcome_of!(out))
            }
            AuthFlow::UserPassword => {
                tracing::Span::current().record("op", "InitiateAuth");
                let out = self
                    .client
                    .initiate_auth()
                    .client_id(&self.client_id)
                    .auth_flow(AuthFlowType::UserPasswordAuth)
                    .auth_parameters("USERNAME", username)
                    .auth_parameters("PASSWORD", password)
                    .set_secret_hash(hash)
                    .set_user_context_data(self.user_context_data(ctx))
                    .send()
                    .timed(&self.metrics, "InitiateAuth")
                    .await?;
                Ok(outcome_of!(out))
            }
        }
    }

    /// Answers NEW_PASSWORD_REQUIRED.
    pub async fn new_password(
        &self,
        username: &str,
        new_password: &str,
        session: &str,
        ctx: &UserContext,
    ) -> Result<AuthOutcome, IdpError> {
        self.respond(
            ChallengeNameType::NewPasswordRequired,
            username,
            session,
            &[("NEW_PASSWORD", new_password)],
            ctx,
        )
        .await
    }

    /// Answers a challenge with the configured flow: `USERNAME`, `SECRET_HASH` (with a client
    /// secret) and `responses` (NEW_PASSWORD, SOFTWARE_TOKEN_MFA_CODE, ANSWER, ...).
    #[tracing::instrument(skip_all, fields(op, challenge = %challenge.as_str()))]
    pub async fn respond(
        &self,
        challenge: ChallengeNameType,
        username: &str,
        session: &str,
        responses: &[(&str, &str)],
        ctx: &UserContext,
    ) -> Result<AuthOutcome, IdpError> {
        let hash = self.secret_hash(username);
        match self.flow {
            AuthFlow::AdminUserPassword => {
                tracing::Span::current().record("op", "AdminRespondToAuthChallenge");
                let mut req = self
                    .client
                    .admin_respond_to_auth_challenge()
                    .user_pool_id(&self.pool_id)
                    .client_id(&self.client_id)
                    .challenge_name(challenge)
                    .session(session)
                    .challenge_responses("USERNAME", username);
                for (k, v) in responses {
                    req = req.challenge_responses(*k, *v);
                }
                let out = req
                    .set_challenge_secret_hash(hash)
                    .set_context_data(self.context_data(ctx))
                    .send()
                    .timed(&self.metrics, "AdminRespondToAuthChallenge")
                    .await?;
                Ok(outcome_of!(out))
            }
            AuthFlow::UserPassword => {
                tracing::Span::current().record("op", "RespondToAuthChallenge");
                let mut req = self
                    .client
                    .respond_to_auth_challenge()
                    .client_id(&self.client_id)
                    .challenge_name(challenge)
                    .session(session)
                    .challenge_responses("USERNAME", username);
                for (k, v) in responses {
                    req = req.challenge_responses(*k, *v);
                }
                let out = req
                    .set_challenge_secret_hash(hash)
                    .set_user_context_data(self.user_context_data(ctx))
                    .send()
                    .timed(&self.metrics, "RespondToAuthChallenge")
                    .await?;
                Ok(outcome_of!(out))
            }
        }
    }

    /// AssociateSoftwareToken with an MFA_SETUP session: the TOTP secret, and the session
    /// VerifySoftwareToken takes.
    #[tracing::instrument(skip_all, fields(op = "AssociateSoftwareToken"))]
    pub async fn associate_software_token(&self, session: &str) -> Result<SoftwareToken, IdpError> {
        let out = self
            .client
            .associate_software_token()
            .session(session)
            .send()
            .timed(&self.metrics, "AssociateSoftwareToken")
            .await?;
        let secret_code = out
            .secret_code()
            .filter(|s| !s.is_empty())
            .ok_or(IdpError::BadResponse)?
            .to_owned();
        Ok(SoftwareToken {
            secret_code,
            session: out.session().map(str::to_owned),
        })
    }

    /// VerifySoftwareToken with a session: the first code from the authenticator app. Returns
    /// the session that completes MFA_SETUP.
    #[tracing::instrument(skip_all, fields(op = "VerifySoftwareToken"))]
    pub async fn verify_software_token(
        &self,
        session: &str,
        code: &str,
        device_name: Option<&str>,
    ) -> Result<Option<String>, IdpError> {
        let out = self
            .client
            .verify_software_token()
            .session(session)
            .user_code(code)
            .set_friendly_device_name(device_name.map(str::to_owned))
            .send()
            .timed(&self.metrics, "VerifySoftwareToken")
            .await?;
        match out.status() {
            Some(VerifySoftwareTokenResponseType::Success) => Ok(out.session().map(str::to_owned)),
            // Cognito answered, but did not accept the code.
            _ => Err(IdpError::CodeMismatch),
        }
    }

    /// ForgotPassword: Cognito sends the user a code. Returns where it went, when it says.
    #[tracing::instrument(skip_all, fields(op = "ForgotPassword"))]
    pub async fn forgot_password(&self, username: &str) -> Result<Option<Delivery>, IdpError> {
        let out = self
            .client
            .forgot_password()
            .client_id(&self.client_id)
            .username(username)
            .set_secret_hash(self.secret_hash(username))
            .send()
            .timed(&self.metrics, "ForgotPassword")
            .await?;
        Ok(out.code_delivery_details().and_then(|d| {
            let medium = enum_token(d.delivery_medium()?.as_str());
            (!medium.is_empty()).then(|| Delivery {
                medium,
                attribute: d.attribute_name().map(enum_token).filter(|a| !a.is_empty()),
            })
        }))
    }

    /// ConfirmForgotPassword: the code from ForgotPassword and the new password.
    #[tracing::instrument(skip_all, fields(op = "ConfirmForgotPassword"))]
    pub async fn confirm_forgot_password(
        &self,
        username: &str,
        code: &str,
        new_password: &str,
    ) -> Result<(), IdpError> {
        self.client
            .confirm_forgot_password()
            .client_id(&self.client_id)
            .username(username)
            .confirmation_code(code)
            .password(new_password)
            .set_secret_hash(self.secret_hash(username))
            .send()
            .timed(&self.metrics, "ConfirmForgotPassword")
            .await
            .map(|_| ())
    }

    /// ChangePassword for the user of `access_token`.
    #[tracing::instrument(skip_all, fields(op = "ChangePassword"))]
    pub async fn change_password(
        &self,
        access_token: &str,
        old_password: &str,
        new_password: &str,
    ) -> Result<(), IdpError> {
        self.client
            .change_password()
            .access_token(access_token)
            .previous_password(old_password)
            .proposed_password(new_password)
            .send()
            .timed(&self.metrics, "ChangePassword")
            .await
            .map(|_| ())
    }

    /// REFRESH_TOKEN_AUTH through `InitiateAuth` for both flows: it needs no IAM, and moto
    /// answers a bad refresh token through `AdminInitiateAuth` with an HTML 500.
    #[tracing::instrument(skip_all, fields(op = "InitiateAuth"))]
    pub async fn refresh(
        &self,
        refresh_token: &str,
        username: Option<&str>,
    ) -> Result<Tokens, IdpError> {
        if self.refresh_rotation {
            return self.refresh_rotating(refresh_token).await;
        }
        let hash = username.and_then(|u| self.secret_hash(u));
        let out = self
            .client
            .initiate_auth()
            .client_id(&self.client_id)
            .auth_flow(AuthFlowType::RefreshTokenAuth)
            .auth_parameters("REFRESH_TOKEN", refresh_token)
            .set_secret_hash(hash)
            .send()
            .timed(&self.metrics, "InitiateAuth")
            .await?;
        match outcome_of!(out) {
            AuthOutcome::Tokens(t) => Ok(t),
            AuthOutcome::Challenge { name, .. } => {
                tracing::warn!(challenge = %enum_token(&name), "refresh answered with a challenge");
                Err(IdpError::BadResponse)
            }
        }
    }

    /// GetTokensFromRefreshToken, for app clients that rotate refresh tokens: the answer
    /// carries a new refresh token, and the old one stops working after the client's
    /// `RetryGracePeriodSeconds`. The raw client secret goes with it (no SECRET_HASH).
    #[tracing::instrument(skip_all, fields(op = "GetTokensFromRefreshToken"))]
    async fn refresh_rotating(&self, refresh_token: &str) -> Result<Tokens, IdpError> {
        let out = self
            .client
            .get_tokens_from_refresh_token()
            .client_id(&self.client_id)
            .refresh_token(refresh_token)
            .set_client_secret(self.secret.clone())
            .send()
            .timed(&self.metrics, "GetTokensFromRefreshToken")
            .await?;
        match outcome(out.authentication_result(), None, None, None) {
            AuthOutcome::Tokens(t) if t.access_token.is_some() => Ok(t),
            _ => {
                tracing::warn!("GetTokensFromRefreshToken answered without tokens");
                Err(IdpError::BadResponse)
            }
        }
    }

    /// RevokeToken: revokes one refresh token and the access tokens issued from it (app
    /// clients with token revocation, the default since 2021). The raw client secret goes
    /// with it; a public operation (no IAM permission).
    #[tracing::instrument(skip_all, fields(op = "RevokeToken"))]
    pub async fn revoke_token(&self, refresh_token: &str) -> Result<(), IdpError> {
        self.client
            .revoke_token()
            .token(refresh_token)
            .client_id(&self.client_id)
            .set_client_secret(self.secret.clone())
            .send()
            .timed(&self.metrics, "RevokeToken")
            .await
            .map(|_| ())
    }

    /// GlobalSignOut: revokes the user's refresh tokens (issued access tokens stay valid as
    /// JWTs; the gate's revocation list covers them).
    #[tracing::instrument(skip_all, fields(op = "GlobalSignOut"))]
    pub async fn global_sign_out(&self, access_token: &str) -> Result<(), IdpError> {
        self.client
            .global_sign_out()
            .access_token(access_token)
            .send()
            .timed(&self.metrics, "GlobalSignOut")
            .await
            .map(|_| ())
    }

    /// The pool's policies the pages show (DescribeUserPool; needs
    /// `cognito-idp:DescribeUserPool`): the password policy, and the first sign-in factors
    /// choice-based sign-in allows.
    #[tracing::instrument(skip_all, fields(op = "DescribeUserPool"))]
    pub async fn pool_policies(&self) -> Result<PoolPolicies, IdpError> {
        let out = self
            .client
            .describe_user_pool()
            .user_pool_id(&self.pool_id)
            .send()
            .timed(&self.metrics, "DescribeUserPool")
            .await?;
        let policies = out.user_pool().and_then(|p| p.policies());
        Ok(PoolPolicies {
            password: policies
                .and_then(|p| p.password_policy())
                .map(|p| PasswordPolicy {
                    min_length: p.minimum_length().and_then(|n| u32::try_from(n).ok()),
                    uppercase: p.require_uppercase(),
                    lowercase: p.require_lowercase(),
                    numbers: p.require_numbers(),
                    symbols: p.require_symbols(),
                }),
            first_factors: policies
                .and_then(|p| p.sign_in_policy())
                .map(|s| {
                    s.allowed_first_auth_factors()
                        .iter()
                        .map(|f| enum_token(f.as_str()))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// The app client's id and secret (the managed-login token endpoint's HTTP Basic auth).
    pub fn client_credentials(&self) -> (&str, Option<&str>) {
        (&self.client_id, self.secret.as_deref())
    }
}

/// Times a Cognito call, records it, and classifies its error.
trait Timed<T, E, R> {
    async fn timed(self, metrics: &SharedMetrics, op: &'static str) -> Result<T, IdpError>;
}

impl<F, T, E, R> Timed<T, E, R> for F
where
    F: std::future::Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    async fn timed(self, metrics: &SharedMetrics, op: &'static str) -> Result<T, IdpError> {
        let started = tokio::time::Instant::now();
        let result = trace::in_span(
            op,
            trace::Kind::Client,
            || {
                vec![
                    trace::Attribute::new("rpc.system", "aws-api"),
                    trace::Attribute::new("rpc.service", "CognitoIdentityProvider"),
                    trace::Attribute::new("rpc.method", op),
                ]
            },
            async { self.await.map_err(|e| classify(op, e)) },
            |r| r.as_ref().err().map(IdpError::class),
        )
        .await;
        metrics.cognito(
            op,
            started.elapsed(),
            result.as_ref().err().map(IdpError::class),
        );
        result
    }
}

/// Adds `SECRET_HASH` to a builder's parameter map when there is one.
trait SetSecretHash: Sized {
    fn set_secret_hash(self, hash: Option<String>) -> Self;
}

macro_rules! auth_params_secret_hash {
    ($($builder:ty),*) => {$(
        impl SetSecretHash for $builder {
            fn set_secret_hash(self, hash: Option<String>) -> Self {
                match hash {
                    Some(h) => self.auth_parameters("SECRET_HASH", h),
                    None => self,
                }
            }
        }
    )*};
}

auth_params_secret_hash!(
    aws_sdk_cognitoidentityprovider::operation::admin_initiate_auth::builders::AdminInitiateAuthFluentBuilder,
    aws_sdk_cognitoidentityprovider::operation::initiate_auth::builders::InitiateAuthFluentBuilder
);

trait SetChallengeSecretHash: Sized {
    fn set_challenge_secret_hash(self, hash: Option<String>) -> Self;
}

macro_rules! challenge_secret_hash {
    ($($builder:ty),*) => {$(
        impl SetChallengeSecretHash for $builder {
            fn set_challenge_secret_hash(self, hash: Option<String>) -> Self {
                match hash {
                    Some(h) => self.challenge_responses("SECRET_HASH", h),
                    None => self,
                }
            }
        }
    )*};
}

challenge_secret_hash!(
    aws_sdk_cognitoidentityprovider::operation::admin_respond_to_auth_challenge::builders::AdminRespondToAuthChallengeFluentBuilder,
    aws_sdk_cognitoidentityprovider::operation::respond_to_auth_challenge::builders::RespondToAuthChallengeFluentBuilder
);

/// SECRET_HASH = Base64(HMAC-SHA256(client_secret, username + client_id)).
pub fn secret_hash(secret: &str, username: &str, client_id: &str) -> String {
    // HMAC takes keys of any length, so this cannot fail; an empty key is still a key.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(username.as_bytes());
    mac.update(client_id.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

pub(super) fn outcome(
    result: Option<&AuthenticationResultType>,
    challenge: Option<&ChallengeNameType>,
    session: Option<&str>,
    params: Option<&std::collections::HashMap<String, String>>,
) -> AuthOutcome {
    match (result, challenge) {
        (Some(r), _) => AuthOutcome::Tokens(Tokens {
            access_token: r.access_token().map(str::to_owned),
            id_token: r.id_token().map(str::to_owned),
            refresh_token: r.refresh_token().map(str::to_owned),
            expires_in: Some(r.expires_in()).filter(|e| *e > 0),
            token_type: r.token_type().map(str::to_owned),
        }),
        (None, c) => AuthOutcome::Challenge {
            name: c.map(|c| c.as_str().to_owned()).unwrap_or_default(),
            session: session.map(str::to_owned),
            username: params.and_then(|p| p.get("USER_ID_FOR_SRP").cloned()),
            hints: ChallengeHints::from_params(params),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_hash_matches_reference() {
        // Reference values from Python: base64(hmac.new(secret, username + client_id, sha256)).
        let cases = [
            (
                "secret",
                "alice",
                "client",
                "RTsve+FQ659UKyESgvLg9GYmZEL+QjzQsW/OjL77/b0=",
            ),
            ("", "", "", "thNnmggU2ex3L5XXeMNfxf8Wl8STcVZTxscSFEKSxa0="),
        ];
        for (secret, user, client, want) in cases {
            assert_eq!(secret_hash(secret, user, client), want, "{user}");
        }
    }

    #[test]
    fn exception_names_table() {
        let cases = [
            ("NotAuthorizedException", IdpError::NotAuthorized),
            ("UserNotFoundException", IdpError::UserNotFound),
            ("ResourceNotFoundException", IdpError::ResourceNotFound),
            ("CodeMismatchException", IdpError::CodeMismatch),
            ("ExpiredCodeException", IdpError::ExpiredCode),
            (
                "EnableSoftwareTokenMFAException",
                IdpError::EnableSoftwareTokenMfa,
            ),
            ("InvalidPasswordException", IdpError::InvalidPassword),
            (
                "PasswordResetRequiredException",
                IdpError::PasswordResetRequired,
            ),
            ("UserNotConfirmedException", IdpError::UserNotConfirmed),
            ("InvalidParameterException", IdpError::InvalidParameter),
            ("LimitExceededException", IdpError::LimitExceeded),
            (
                "TooManyFailedAttemptsException",
                IdpError::TooManyFailedAttempts,
            ),
            (
                "CodeDeliveryFailureException",
                IdpError::CodeDeliveryFailure,
            ),
            ("TooManyRequestsException", IdpError::Throttled),
            ("ThrottlingException", IdpError::Throttled),
            ("InternalErrorException", IdpError::Unavailable),
            ("ServiceUnavailableException", IdpError::Unavailable),
            (
                "AccessDeniedException",
                IdpError::Unexpected("AccessDeniedException".into()),
            ),
        ];
        for (name, want) in cases {
            assert_eq!(IdpError::from_code(Some(name)), want, "{name}");
        }
        assert_eq!(IdpError::from_code(None), IdpError::BadResponse);
    }

    #[test]
    fn challenge_hints_keep_only_what_a_client_needs() {
        let params: std::collections::HashMap<String, String> = [
            ("CODE_DELIVERY_DESTINATION", "+*******1234"),
            ("CODE_DELIVERY_DELIVERY_MEDIUM", "SMS"),
            ("MFAS_CAN_CHOOSE", "[\"SMS_MFA\",\"SOFTWARE_TOKEN_MFA\"]"),
            // moto writes Python's list repr.
            ("MFAS_CAN_SETUP", "['SOFTWARE_TOKEN_MFA']"),
            ("USER_ID_FOR_SRP", "sub-1"),
            ("SECRET_BLOCK", "never-relayed"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let h = ChallengeHints::from_params(Some(&params));
        assert_eq!(h.code_delivery_destination.as_deref(), Some("+*******1234"));
        assert_eq!(h.code_delivery_medium.as_deref(), Some("SMS"));
        assert_eq!(
            h.mfas_can_choose,
            Some(vec![
                "SMS_MFA".to_string(),
                "SOFTWARE_TOKEN_MFA".to_string()
            ])
        );
        assert_eq!(
            h.mfas_can_setup,
            Some(vec!["SOFTWARE_TOKEN_MFA".to_string()])
        );
        let text = serde_json::to_string(&h).expect("json");
        assert!(
            !text.contains("never-relayed") && !text.contains("sub-1"),
            "{text}"
        );
        assert!(ChallengeHints::from_params(None).is_empty());
        assert!(ChallengeHints::from_params(Some(&Default::default())).is_empty());
    }

    #[test]
    fn iam_actions_are_a_subset_of_operations() {
        for flow in [AuthFlow::AdminUserPassword, AuthFlow::UserPassword] {
            for a in iam_actions(flow) {
                assert!(operations(flow).contains(a), "{a}");
            }
        }
        assert!(iam_actions(AuthFlow::UserPassword).is_empty());
    }
}
