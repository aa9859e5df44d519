//! What went wrong talking to Cognito (`IdpError`, by exception name), the step a call
//! served (`Step`), and the classification of SDK errors (never Cognito's message text).

use aws_sdk_cognitoidentityprovider::error::{ProvideErrorMetadata, SdkError};

/// What went wrong talking to Cognito: the exception, by name. Its meaning for the client
/// depends on the step that raised it (`Step`; `ApiError::from_idp`). Never carries
/// Cognito's message text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdpError {
    #[error("not authorized")]
    NotAuthorized,
    #[error("user not found")]
    UserNotFound,
    /// ResourceNotFoundException: an unknown client, or (moto) a bogus or used session, or
    /// (moto's ConfirmForgotPassword) an unknown user.
    #[error("resource not found")]
    ResourceNotFound,
    #[error("code mismatch")]
    CodeMismatch,
    #[error("code expired")]
    ExpiredCode,
    /// EnableSoftwareTokenMFAException: VerifySoftwareToken refused the code.
    #[error("software token not verified")]
    EnableSoftwareTokenMfa,
    #[error("password refused by the policy (or, on some emulators, wrong)")]
    InvalidPassword,
    #[error("password reset required")]
    PasswordResetRequired,
    #[error("user not confirmed")]
    UserNotConfirmed,
    #[error("invalid parameter")]
    InvalidParameter,
    /// LimitExceededException: a per-user attempt limit (codes, recovery, password changes).
    #[error("attempt limit exceeded")]
    LimitExceeded,
    #[error("too many failed attempts")]
    TooManyFailedAttempts,
    #[error("the code could not be delivered")]
    CodeDeliveryFailure,
    /// TooManyRequestsException, ThrottlingException: the account's request rate.
    #[error("throttled")]
    Throttled,
    #[error("unreachable or timed out")]
    Unavailable,
    #[error("unparseable response")]
    BadResponse,
    /// UnsupportedOperationException: the operation is not enabled for this app client
    /// (GetTokensFromRefreshToken without rotation, RevokeToken without revocation).
    #[error("operation not enabled for this app client")]
    UnsupportedOperation,
    #[error("unexpected error {0}")]
    Unexpected(String),
}

impl IdpError {
    /// The ForgotPassword refusals that only a known (or only an unknown) user gets: answered
    /// like a success, so the answer does not tell whether the user exists.
    pub fn hides_user(&self) -> bool {
        matches!(
            self,
            IdpError::UserNotFound
                | IdpError::NotAuthorized
                | IdpError::UserNotConfirmed
                | IdpError::InvalidParameter
                | IdpError::InvalidPassword
        )
    }

    /// A short label for metrics and logs.
    pub fn class(&self) -> &'static str {
        match self {
            IdpError::NotAuthorized => "not_authorized",
            IdpError::UserNotFound => "user_not_found",
            IdpError::ResourceNotFound => "resource_not_found",
            IdpError::CodeMismatch => "code_mismatch",
            IdpError::ExpiredCode => "expired_code",
            IdpError::EnableSoftwareTokenMfa => "enable_software_token_mfa",
            IdpError::InvalidPassword => "invalid_password",
            IdpError::PasswordResetRequired => "password_reset_required",
            IdpError::UserNotConfirmed => "user_not_confirmed",
            IdpError::InvalidParameter => "invalid_parameter",
            IdpError::LimitExceeded => "limit_exceeded",
            IdpError::TooManyFailedAttempts => "too_many_failed_attempts",
            IdpError::CodeDeliveryFailure => "code_delivery_failure",
            IdpError::Throttled => "throttled",
            IdpError::Unavailable => "unavailable",
            IdpError::BadResponse => "bad_response",
            IdpError::UnsupportedOperation => "unsupported_operation",
            IdpError::Unexpected(_) => "unexpected",
        }
    }

    /// The error a Cognito exception name stands for (`None`: no name at all).
    pub fn from_code(code: Option<&str>) -> IdpError {
        match code {
            // A rotated refresh token used again after the grace period: not valid any more.
            Some("NotAuthorizedException" | "RefreshTokenReuseException") => {
                IdpError::NotAuthorized
            }
            Some("UnsupportedOperationException") => IdpError::UnsupportedOperation,
            // RevokeToken with something that is not a refresh token of this client.
            Some("UnsupportedTokenTypeException") => IdpError::NotAuthorized,
            Some("UserNotFoundException") => IdpError::UserNotFound,
            Some("ResourceNotFoundException") => IdpError::ResourceNotFound,
            Some("CodeMismatchException") => IdpError::CodeMismatch,
            Some("ExpiredCodeException") => IdpError::ExpiredCode,
            Some("EnableSoftwareTokenMFAException") => IdpError::EnableSoftwareTokenMfa,
            Some("InvalidPasswordException") => IdpError::InvalidPassword,
            Some("PasswordResetRequiredException") => IdpError::PasswordResetRequired,
            Some("UserNotConfirmedException") => IdpError::UserNotConfirmed,
            Some("InvalidParameterException") => IdpError::InvalidParameter,
            Some("LimitExceededException") => IdpError::LimitExceeded,
            Some("TooManyFailedAttemptsException") => IdpError::TooManyFailedAttempts,
            Some("CodeDeliveryFailureException") => IdpError::CodeDeliveryFailure,
            Some("TooManyRequestsException" | "ThrottlingException") => IdpError::Throttled,
            Some("InternalErrorException" | "ServiceUnavailableException") => IdpError::Unavailable,
            Some(other) => IdpError::Unexpected(other.to_owned()),
            None => IdpError::BadResponse,
        }
    }
}

/// The step of the auth API a Cognito call served: the same exception means different things
/// in different steps (an `InvalidPasswordException` is a weak new password when one is set,
/// but a wrong password on sign-in), so errors are classified by step (`ApiError::from_idp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// (Admin)InitiateAuth with a password.
    Login,
    /// (Admin)RespondToAuthChallenge NEW_PASSWORD_REQUIRED.
    NewPassword,
    /// (Admin)RespondToAuthChallenge with an MFA code or choice, or completing MFA_SETUP.
    MfaAnswer,
    /// AssociateSoftwareToken with an MFA_SETUP session.
    MfaAssociate,
    /// VerifySoftwareToken with a session.
    MfaVerify,
    /// InitiateAuth REFRESH_TOKEN_AUTH.
    Refresh,
    /// GlobalSignOut.
    Logout,
    /// RevokeToken.
    Revoke,
    /// ForgotPassword.
    ForgotPassword,
    /// ConfirmForgotPassword.
    ConfirmForgotPassword,
    /// ChangePassword.
    ChangePassword,
}

impl Step {
    /// Every step, for tables.
    pub const ALL: [Step; 11] = [
        Step::Login,
        Step::NewPassword,
        Step::MfaAnswer,
        Step::MfaAssociate,
        Step::MfaVerify,
        Step::Refresh,
        Step::Logout,
        Step::Revoke,
        Step::ForgotPassword,
        Step::ConfirmForgotPassword,
        Step::ChangePassword,
    ];
}

/// Classifies an SDK error by meaning and logs it once with the operation and the error
/// class (never Cognito's message, which may hold the username or worse).
pub(super) fn classify<E, R>(op: &'static str, err: SdkError<E, R>) -> IdpError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let e = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => IdpError::Unavailable,
        SdkError::ResponseError(_) => IdpError::BadResponse,
        SdkError::ServiceError(se) => IdpError::from_code(se.err().code()),
        _ => IdpError::Unexpected("sdk".to_owned()),
    };
    match &e {
        IdpError::Unavailable | IdpError::BadResponse | IdpError::Unexpected(_) => {
            tracing::warn!(op, error_class = ?e, "cognito call failed");
        }
        IdpError::Throttled | IdpError::LimitExceeded | IdpError::CodeDeliveryFailure => {
            tracing::warn!(
                op,
                error_class = e.class(),
                "cognito refused: limit or delivery"
            )
        }
        _ => tracing::debug!(op, error_class = ?e, "cognito refused"),
    }
    e
}
