//! The sign-in pages' ways besides a password: identity providers through the pool's
//! managed login, and choice-based sign-in's one-time codes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Federated sign-in: the OAuth 2.0 authorization code flow with PKCE through the pool's
/// domain (Cognito's managed login, or the classic Hosted UI), with the app client
/// `cognito.client_id` (and its secret, if it has one).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManagedLoginConfig {
    /// The pool's domain, `https://<prefix>.auth.<region>.amazoncognito.com` or a custom
    /// domain, without a path. Unset: no federated sign-in.
    pub domain: Option<String>,
    /// The app client's callback URL: `{session.prefix}/callback` on this sidecar as the
    /// browser reaches it (`https://app.example.com/_auth/callback`).
    pub callback_url: Option<String>,
    /// The sign-out URL Cognito's `/logout` returns to (one of the app client's sign-out
    /// URLs). Default: `session.after_sign_out` on the callback URL's origin.
    pub sign_out_url: Option<String>,
    /// The identity providers offered as buttons, by their name in the pool (`Okta`,
    /// `Google`, `SignInWithApple`, ...).
    pub identity_providers: Vec<String>,
    /// Also offer "Use another way to sign in", which opens the managed login page itself.
    pub other_ways: bool,
    /// With one identity provider and no password sign-in wanted: the sign-in page sends the
    /// browser straight to it.
    pub auto_redirect: bool,
    /// The scopes asked for (`openid` is required).
    pub scopes: Vec<String>,
    /// How long a started sign-in may take before its callback is refused.
    #[serde(with = "humantime_serde")]
    pub flow_timeout: Duration,
    /// Time limit of each call to the domain's token and revocation endpoints.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

/// A one-time code the sign-in page can offer instead of a password (choice-based sign-in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SignInCode {
    /// "Email me a code".
    EmailOtp,
    /// "Text me a code".
    SmsOtp,
}

impl SignInCode {
    /// Cognito's name of the challenge (`PREFERRED_CHALLENGE`, `SELECT_CHALLENGE`'s answer).
    pub fn challenge(self) -> &'static str {
        match self {
            SignInCode::EmailOtp => "EMAIL_OTP",
            SignInCode::SmsOtp => "SMS_OTP",
        }
    }

    /// The code named by Cognito's challenge name.
    pub fn from_challenge(name: &str) -> Option<SignInCode> {
        match name {
            "EMAIL_OTP" => Some(SignInCode::EmailOtp),
            "SMS_OTP" => Some(SignInCode::SmsOtp),
            _ => None,
        }
    }
}
