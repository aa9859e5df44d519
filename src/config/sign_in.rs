//! The sign-in pages' ways besides a password: identity providers through the pool's
//! managed login, and choice-based sign-in's one-time codes.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::reference;

/// Federated sign-in: the OAuth 2.0 authorization code flow with PKCE through the pool's
/// domain (Cognito's managed login, or the classic Hosted UI), with the app client
/// `cognito.client_id` (and its secret, if it has one).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ManagedLoginConfig {
    /// The pool's domain for [sign-in with identity
    /// providers](browser-sessions.md#sign-in-with-identity-providers):
    /// `https://<prefix>.auth.<region>.amazoncognito.com` or a custom domain, no path (plain
    /// `http://` only on loopback). Unset: off. Needs `session.enabled`.
    pub domain: Option<String>,
    /// Required with a domain: the app client's callback URL, this sidecar's
    /// `<session.prefix>/callback` as browsers reach it (`https://app.example.com/_auth/callback`).
    pub callback_url: Option<String>,
    /// Where Cognito's `/logout` returns the browser (one of the app client's sign-out URLs).
    /// Unset: `session.after_sign_out` on the callback URL's origin.
    pub sign_out_url: Option<String>,
    /// The providers offered as buttons, by their name in the pool (`Okta`, `Google`,
    /// `SignInWithApple`, ...).
    pub identity_providers: Vec<String>,
    /// Also offer "Use another way to sign in" (the managed login page itself).
    pub other_ways: bool,
    /// With exactly one provider and `other_ways = false`: the sign-in page sends the browser
    /// straight to it.
    pub auto_redirect: bool,
    /// The scopes asked for; must include `openid` and be allowed for the app client.
    pub scopes: Vec<String>,
    /// A started sign-in's callback is refused after this long.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "reference::DurationText")]
    pub flow_timeout: Duration,
    /// Time limit of each call to the domain's token and revocation endpoints.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "reference::DurationText")]
    pub timeout: Duration,
}

/// A one-time code the sign-in page can offer instead of a password (choice-based sign-in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
