//! The Cognito user pool, seen through the few calls the auth API needs.
//!
//! Owns the SDK client (built once), SECRET_HASH, and the classification of SDK errors into
//! `IdpError`. Speaks our types (`Tokens`, `AuthOutcome`), never SDK types. It must not log
//! or return any token, password, session or SECRET_HASH, nor Cognito's message text (moto's
//! message for a wrong admin password is the username, for one).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{Region, SdkConfig};
use aws_sdk_cognitoidentityprovider::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cognitoidentityprovider::types::{
    AuthFlowType, AuthenticationResultType, ChallengeNameType,
};
use aws_sdk_cognitoidentityprovider::Client;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::AuthFlow;
use crate::metrics::SharedMetrics;

/// The Cognito operations each auth flow calls, in one place: the IAM policy in `deploy/`
/// is checked against this list by a test.
pub fn operations(flow: AuthFlow) -> &'static [&'static str] {
    match flow {
        AuthFlow::AdminUserPassword => &[
            "AdminInitiateAuth",
            "AdminRespondToAuthChallenge",
            "InitiateAuth",
            "GlobalSignOut",
        ],
        AuthFlow::UserPassword => &["InitiateAuth", "RespondToAuthChallenge", "GlobalSignOut"],
    }
}

/// The operations of `operations(flow)` that are signed with AWS credentials, so the task
/// role needs them; the others are authorized by the client id or the user's token.
pub fn iam_actions(flow: AuthFlow) -> &'static [&'static str] {
    match flow {
        AuthFlow::AdminUserPassword => &["AdminInitiateAuth", "AdminRespondToAuthChallenge"],
        AuthFlow::UserPassword => &[],
    }
}

/// What went wrong talking to Cognito, by meaning. Never carries Cognito's message text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdpError {
    #[error("not authorized")]
    NotAuthorized,
    #[error("user not found")]
    UserNotFound,
    #[error("challenge session invalid or used")]
    SessionInvalid,
    #[error("password does not meet the policy")]
    InvalidPassword,
    #[error("password reset required")]
    PasswordResetRequired,
    #[error("user not confirmed")]
    UserNotConfirmed,
    #[error("invalid parameter")]
    InvalidParameter,
    #[error("throttled")]
    Throttled,
    #[error("unreachable or timed out")]
    Unavailable,
    #[error("unparseable response")]
    BadResponse,
    #[error("unexpected error {0}")]
    Unexpected(String),
}

impl IdpError {
    /// A short label for metrics and logs.
    pub fn class(&self) -> &'static str {
        match self {
            IdpError::NotAuthorized => "not_authorized",
            IdpError::UserNotFound => "user_not_found",
            IdpError::SessionInvalid => "session_invalid",
            IdpError::InvalidPassword => "invalid_password",
            IdpError::PasswordResetRequired => "password_reset_required",
            IdpError::UserNotConfirmed => "user_not_confirmed",
            IdpError::InvalidParameter => "invalid_parameter",
            IdpError::Throttled => "throttled",
            IdpError::Unavailable => "unavailable",
            IdpError::BadResponse => "bad_response",
            IdpError::Unexpected(_) => "unexpected",
        }
    }
}

/// The tokens of a successful authentication, as Cognito returned them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    pub access_token: Option<String>,
    pub id_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: Option<i32>,
    pub token_type: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens { <redacted> }")
    }
}

/// The answer to a password authentication: tokens, or a challenge to answer next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    Tokens(Tokens),
    Challenge {
        name: String,
        session: Option<String>,
        /// Cognito's canonical username (`USER_ID_FOR_SRP`), when it says.
        username: Option<String>,
    },
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

/// The user pool client, built once and shared.
#[derive(Clone)]
pub struct Cognito {
    client: Client,
    pool_id: String,
    client_id: String,
    secret: Option<String>,
    flow: AuthFlow,
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
            metrics,
        }
    }

    /// Whether calls need a username for SECRET_HASH.
    pub fn has_secret(&self) -> bool {
        self.secret.is_some()
    }

    fn secret_hash(&self, username: &str) -> Option<String> {
        self.secret
            .as_deref()
            .map(|secret| secret_hash(secret, username, &self.client_id))
    }

    /// Password sign-in with the configured flow.
    #[tracing::instrument(skip_all, fields(op))]
    pub async fn login(&self, username: &str, password: &str) -> Result<AuthOutcome, IdpError> {
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
                    .send()
                    .timed(&self.metrics, "InitiateAuth")
                    .await?;
                Ok(outcome_of!(out))
            }
        }
    }

    /// Answers NEW_PASSWORD_REQUIRED.
    #[tracing::instrument(skip_all, fields(op))]
    pub async fn new_password(
        &self,
        username: &str,
        new_password: &str,
        session: &str,
    ) -> Result<AuthOutcome, IdpError> {
        let hash = self.secret_hash(username);
        let challenge = ChallengeNameType::NewPasswordRequired;
        match self.flow {
            AuthFlow::AdminUserPassword => {
                tracing::Span::current().record("op", "AdminRespondToAuthChallenge");
                let out = self
                    .client
                    .admin_respond_to_auth_challenge()
                    .user_pool_id(&self.pool_id)
                    .client_id(&self.client_id)
                    .challenge_name(challenge)
                    .session(session)
                    .challenge_responses("USERNAME", username)
                    .challenge_responses("NEW_PASSWORD", new_password)
                    .set_challenge_secret_hash(hash)
                    .send()
                    .timed(&self.metrics, "AdminRespondToAuthChallenge")
                    .await?;
                Ok(outcome_of!(out))
            }
            AuthFlow::UserPassword => {
                tracing::Span::current().record("op", "RespondToAuthChallenge");
                let out = self
                    .client
                    .respond_to_auth_challenge()
                    .client_id(&self.client_id)
                    .challenge_name(challenge)
                    .session(session)
                    .challenge_responses("USERNAME", username)
                    .challenge_responses("NEW_PASSWORD", new_password)
                    .set_challenge_secret_hash(hash)
                    .send()
                    .timed(&self.metrics, "RespondToAuthChallenge")
                    .await?;
                Ok(outcome_of!(out))
            }
        }
    }

    /// REFRESH_TOKEN_AUTH through `InitiateAuth` for both flows: it needs no IAM, and moto
    /// answers a bad refresh token through `AdminInitiateAuth` with an HTML 500.
    #[tracing::instrument(skip_all, fields(op = "InitiateAuth"))]
    pub async fn refresh(
        &self,
        refresh_token: &str,
        username: Option<&str>,
    ) -> Result<Tokens, IdpError> {
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
                tracing::warn!(challenge = %name, "refresh answered with a challenge");
                Err(IdpError::BadResponse)
            }
        }
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
        let result = self.await.map_err(|e| classify(op, e));
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

fn outcome(
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
        },
    }
}

/// Classifies an SDK error by meaning and logs it once with the operation and the error
/// class (never Cognito's message, which may hold the username or worse).
fn classify<E, R>(op: &'static str, err: SdkError<E, R>) -> IdpError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let e = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => IdpError::Unavailable,
        SdkError::ResponseError(_) => IdpError::BadResponse,
        SdkError::ServiceError(se) => match se.err().code() {
            Some("NotAuthorizedException") => IdpError::NotAuthorized,
            Some("UserNotFoundException") => IdpError::UserNotFound,
            Some(
                "ResourceNotFoundException" | "CodeMismatchException" | "ExpiredCodeException",
            ) => IdpError::SessionInvalid,
            Some("InvalidPasswordException") => IdpError::InvalidPassword,
            Some("PasswordResetRequiredException") => IdpError::PasswordResetRequired,
            Some("UserNotConfirmedException") => IdpError::UserNotConfirmed,
            Some("InvalidParameterException") => IdpError::InvalidParameter,
            Some(
                "TooManyRequestsException"
                | "LimitExceededException"
                | "TooManyFailedAttemptsException"
                | "ThrottlingException",
            ) => IdpError::Throttled,
            Some("InternalErrorException" | "ServiceUnavailableException") => IdpError::Unavailable,
            Some(other) => IdpError::Unexpected(other.to_owned()),
            None => IdpError::BadResponse,
        },
        _ => IdpError::Unexpected("sdk".to_owned()),
    };
    match &e {
        IdpError::Unavailable | IdpError::BadResponse | IdpError::Unexpected(_) => {
            tracing::warn!(op, error_class = ?e, "cognito call failed");
        }
        IdpError::Throttled => tracing::warn!(op, error_class = ?e, "cognito throttled"),
        _ => tracing::debug!(op, error_class = ?e, "cognito refused"),
    }
    e
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
    fn iam_actions_are_a_subset_of_operations() {
        for flow in [AuthFlow::AdminUserPassword, AuthFlow::UserPassword] {
            for a in iam_actions(flow) {
                assert!(operations(flow).contains(a), "{a}");
            }
        }
        assert!(iam_actions(AuthFlow::UserPassword).is_empty());
    }
}
