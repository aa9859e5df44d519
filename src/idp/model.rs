//! What Cognito answers, in our types: tokens (never printed), the outcome of an
//! authentication step, challenge hints, code delivery, a TOTP secret (never printed).

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
        /// The non-secret challenge parameters a client needs to go on.
        hints: ChallengeHints,
    },
}

/// The challenge parameters the auth API passes on (every other one is dropped): where a
/// code was sent (masked by Cognito) and which MFA types can be chosen or set up.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChallengeHints {
    /// `CODE_DELIVERY_DESTINATION`, e.g. `+*******1234` or `a***@e***`.
    pub code_delivery_destination: Option<String>,
    /// `CODE_DELIVERY_DELIVERY_MEDIUM`: `SMS` or `EMAIL`.
    pub code_delivery_medium: Option<String>,
    /// `MFAS_CAN_CHOOSE` (SELECT_MFA_TYPE), e.g. `["SMS_MFA", "SOFTWARE_TOKEN_MFA"]`.
    pub mfas_can_choose: Option<Vec<String>>,
    /// `MFAS_CAN_SETUP` (MFA_SETUP), e.g. `["SOFTWARE_TOKEN_MFA"]`.
    pub mfas_can_setup: Option<Vec<String>>,
    /// `AvailableChallenges` of choice-based sign-in (SELECT_CHALLENGE), e.g.
    /// `["EMAIL_OTP", "PASSWORD"]`.
    pub available_challenges: Option<Vec<String>>,
}

impl ChallengeHints {
    /// Whether Cognito gave none of them.
    pub fn is_empty(&self) -> bool {
        *self == ChallengeHints::default()
    }

    /// Picks the hints out of Cognito's challenge parameters.
    pub fn from_params(params: Option<&std::collections::HashMap<String, String>>) -> Self {
        let Some(p) = params else {
            return ChallengeHints::default();
        };
        let text = |k: &str| {
            p.get(k)
                .map(|v| v.chars().take(128).collect::<String>())
                .filter(|v| !v.is_empty())
        };
        ChallengeHints {
            code_delivery_destination: text("CODE_DELIVERY_DESTINATION"),
            code_delivery_medium: p
                .get("CODE_DELIVERY_DELIVERY_MEDIUM")
                .map(|v| enum_token(v))
                .filter(|v| !v.is_empty()),
            mfas_can_choose: p.get("MFAS_CAN_CHOOSE").map(|v| mfa_list(v)),
            mfas_can_setup: p.get("MFAS_CAN_SETUP").map(|v| mfa_list(v)),
            available_challenges: None,
        }
    }
}

/// An enum-like value (`SMS`, `SOFTWARE_TOKEN_MFA`): ASCII letters, digits and `_` only.
pub(super) fn enum_token(v: &str) -> String {
    v.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

/// A list of MFA types as Cognito writes it, a JSON array in a string (`["SMS_MFA"]`; moto
/// writes Python's `['SMS_MFA']`), or a comma-separated list.
pub(super) fn mfa_list(v: &str) -> Vec<String> {
    v.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(enum_token)
        .filter(|t| !t.is_empty())
        .take(8)
        .collect()
}

/// Where a password-reset code was sent. The masked destination is left out on purpose: for
/// an unknown user Cognito (or an emulator) invents one that does not look like a real one,
/// and the answer must not tell the two apart.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    /// `EMAIL` or `SMS`.
    pub medium: String,
    /// The attribute the code went to: `email` or `phone_number`.
    pub attribute: Option<String>,
}

/// A TOTP enrollment in progress: the secret for the authenticator app and the session for
/// `verify_software_token`.
pub struct SoftwareToken {
    pub secret_code: String,
    pub session: Option<String>,
}

impl std::fmt::Debug for SoftwareToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SoftwareToken { <redacted> }")
    }
}

/// What DescribeUserPool tells the pages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolPolicies {
    pub password: Option<PasswordPolicy>,
    /// `SignInPolicy.AllowedFirstAuthFactors`: PASSWORD, EMAIL_OTP, SMS_OTP, WEB_AUTHN.
    pub first_factors: Vec<String>,
}

/// A pool's password policy, as DescribeUserPool tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub min_length: Option<u32>,
    pub uppercase: bool,
    pub lowercase: bool,
    pub numbers: bool,
    pub symbols: bool,
}

impl PasswordPolicy {
    /// One sentence for a form: "At least 8 characters, with an uppercase letter, a number
    /// and a symbol."
    pub fn describe(&self) -> String {
        let mut with = Vec::new();
        if self.uppercase {
            with.push("an uppercase letter");
        }
        if self.lowercase {
            with.push("a lowercase letter");
        }
        if self.numbers {
            with.push("a number");
        }
        if self.symbols {
            with.push("a symbol");
        }
        let with = match with.as_slice() {
            [] => String::new(),
            [one] => format!("with {one}"),
            [rest @ .., last] => format!("with {} and {last}", rest.join(", ")),
        };
        match (self.min_length, with.is_empty()) {
            (Some(n), true) => format!("At least {n} characters."),
            (Some(n), false) => format!("At least {n} characters, {with}."),
            (None, true) => String::new(),
            (None, false) => {
                let mut w = with;
                w.replace_range(..1, "W");
                format!("{w}.")
            }
        }
    }
}

/// The `otpauth://` URI of a TOTP secret (Key Uri Format): label `issuer:account`, SHA1, six
/// digits, thirty seconds, as Cognito's TOTP MFA works.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &str) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits=6&period=30",
        enc(issuer),
        enc(account),
        enc(secret),
        enc(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_policies_read_as_one_sentence() {
        let p = |min_length, uppercase, lowercase, numbers, symbols| PasswordPolicy {
            min_length,
            uppercase,
            lowercase,
            numbers,
            symbols,
        };
        for (policy, want) in [
            (
                p(Some(8), true, true, true, true),
                "At least 8 characters, with an uppercase letter, a lowercase letter, a number and a symbol.",
            ),
            (p(Some(12), false, false, true, false), "At least 12 characters, with a number."),
            (p(Some(6), false, false, false, false), "At least 6 characters."),
            (
                p(None, true, false, false, true),
                "With an uppercase letter and a symbol.",
            ),
            (p(None, false, false, false, false), ""),
        ] {
            assert_eq!(policy.describe(), want, "{policy:?}");
        }
    }
}
