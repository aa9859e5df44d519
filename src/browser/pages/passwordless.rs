//! Choice-based sign-in on the pages (`cognito.choice_based_sign_in`): "Email me a code" /
//! "Text me a code" beside the password, SELECT_CHALLENGE when the pool offers the user other
//! ways, and Cognito's device-fingerprint script (`session.device_fingerprint`), whose
//! `EncodedData` the sign-in steps send with the user's context.
//!
//! The codes offered are `session.sign_in_codes`, or the pool's allowed first factors read
//! with the password policy (one DescribeUserPool). Which ways a given user has is Cognito's
//! answer, never the page's guess: an email alone gets the same page whether or not the
//! account exists, as Cognito's own answer is (with its user-existence protection).

use aws_sdk_cognitoidentityprovider::types::ChallengeNameType;
use http::header::HeaderValue;
use http::{Response, StatusCode};

use crate::config::SignInCode;
use crate::error::ApiError;
use crate::http::body::{full, Body};
use crate::idp::{IdpError, PoolPolicies, Step, UserContext};

use super::super::templates::escape;
use super::mfa::{choices_html, MfaForm};
use super::{Form, Pages};

/// The longest `EncodedData` passed on (bytes); Cognito's script writes a few KiB.
const MAX_ENCODED_DATA: usize = 16 * 1024;

/// Cognito's device-fingerprint script as the pages load it.
#[derive(Debug, Clone)]
pub struct Fingerprint {
    /// `https://amazon-cognito-assets.<region>.amazoncognito.com/amazon-cognito-advanced-security-data.min.js`
    script: String,
    /// The script's origin, the one the pages' CSP allows besides `'self'`.
    origin: String,
    pool_id: String,
    client_id: String,
}

impl Fingerprint {
    /// The script of the pool's region. `region` is validated at start-up; anything but
    /// `[a-z0-9-]` is dropped all the same, since it lands in a URL and a CSP.
    pub fn new(region: &str, pool_id: &str, client_id: &str) -> Self {
        let region: String = region
            .chars()
            .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
            .collect();
        let origin = format!("https://amazon-cognito-assets.{region}.amazoncognito.com");
        Fingerprint {
            script: format!("{origin}/amazon-cognito-advanced-security-data.min.js"),
            origin,
            pool_id: pool_id.to_string(),
            client_id: client_id.to_string(),
        }
    }
}

/// What the sidecar's own script does: on a form's submission, ask Cognito's script for the
/// encoded data of the user (the form's `username`, else its `email`) into the form's
/// `encoded_data` field. Without Cognito's script (blocked, offline) the form goes as it is.
const FINGERPRINT_JS: &str = r#""use strict";
(function () {
  var me = document.currentScript;
  var pool = me.getAttribute("data-pool"), client = me.getAttribute("data-client");
  document.addEventListener("submit", function (e) {
    var f = e.target, out = f.querySelector('input[name="encoded_data"]');
    if (!out || typeof AmazonCognitoAdvancedSecurityData === "undefined") { return; }
    var u = f.querySelector('input[name="username"]'), m = f.querySelector('input[name="email"]');
    var who = (u && u.value) || (m && m.value) || "";
    try { out.value = AmazonCognitoAdvancedSecurityData.getData(who, pool, client) || ""; } catch (_) {}
  }, true);
})();
"#;

/// The label of a way SELECT_CHALLENGE offers that the pages answer.
fn way_label(challenge: &str) -> Option<&'static str> {
    match SignInCode::from_challenge(challenge)? {
        SignInCode::EmailOtp => Some("Email me a code"),
        SignInCode::SmsOtp => Some("Text me a code"),
    }
}

/// The buttons beside "Sign in": each submits the form without its password (and skips the
/// browser's check that the password is filled in).
fn codes_html(codes: &[SignInCode]) -> String {
    if codes.is_empty() {
        return String::new();
    }
    let mut out = String::from(r#"<p class="or">or</p>"#);
    for c in codes {
        if let Some(label) = way_label(c.challenge()) {
            out.push_str(&format!(
                r#"<button type="submit" class="secondary" name="way" value="{}" formnovalidate>{label}</button>"#,
                c.challenge()
            ));
        }
    }
    out
}

impl Pages {
    /// The pool's policies, read once with DescribeUserPool (`session.read_password_policy`;
    /// the task role needs `cognito-idp:DescribeUserPool`). A refusal is remembered (the
    /// pages show no policy and offer no codes, said once in the log); a throttled or
    /// unreachable Cognito is asked again. `None` when the read is off or did not answer.
    pub(super) async fn pool_policies(&self) -> Option<&PoolPolicies> {
        let inner = &self.inner;
        if !inner.sessions.config().read_password_policy {
            return None;
        }
        inner
            .pool
            .get_or_try_init(|| async {
                match inner.idp.pool_policies().await {
                    Ok(p) => Ok(p),
                    Err(e @ (IdpError::Throttled | IdpError::Unavailable)) => Err(e),
                    Err(e) => {
                        tracing::info!(
                            error_class = e.class(),
                            "DescribeUserPool refused: the pages show no password policy and \
                             offer no sign-in codes (allow cognito-idp:DescribeUserPool, or set \
                             session.password_policy and session.sign_in_codes)"
                        );
                        Ok(PoolPolicies::default())
                    }
                }
            })
            .await
            .ok()
    }

    /// Whether the sign-in page's codes come from the pool (and so need its policies read).
    pub(super) fn codes_from_pool(&self) -> bool {
        self.inner.idp.choice_based() && self.inner.sessions.config().sign_in_codes.is_none()
    }

    /// The codes the sign-in page offers: none without choice-based sign-in; else the
    /// configured ones, or the pool's allowed first factors once read.
    pub(super) fn sign_in_codes(&self) -> Vec<SignInCode> {
        if !self.inner.idp.choice_based() {
            return Vec::new();
        }
        if let Some(c) = &self.inner.sessions.config().sign_in_codes {
            return c.clone();
        }
        let Some(pool) = self.inner.pool.get() else {
            return Vec::new();
        };
        [SignInCode::EmailOtp, SignInCode::SmsOtp]
            .into_iter()
            .filter(|c| pool.first_factors.iter().any(|f| f == c.challenge()))
            .collect()
    }

    /// The sign-in page's code buttons (raw HTML).
    pub(super) fn codes_html(&self) -> String {
        codes_html(&self.sign_in_codes())
    }

    /// "Email me a code" (or text): choice-based sign-in with the code as the preferred
    /// challenge. Cognito answers with the code's challenge, or SELECT_CHALLENGE when this
    /// user has other ways.
    pub(super) async fn sign_in_by_code(
        &self,
        headers: &http::HeaderMap,
        email: &str,
        way: &str,
        ret: &str,
        ctx: &UserContext,
    ) -> Result<Response<Body>, ApiError> {
        let offered = SignInCode::from_challenge(way).filter(|c| self.sign_in_codes().contains(c));
        let Some(code) = offered else {
            return Ok(self.sign_in_page(
                headers,
                StatusCode::BAD_REQUEST,
                Some("Please sign in again."),
                email,
                ret,
            ));
        };
        if email.is_empty() {
            return Ok(self.sign_in_page(
                headers,
                StatusCode::BAD_REQUEST,
                Some("Enter your email."),
                email,
                ret,
            ));
        }
        if let Err(e) = self.limit(email).await {
            return Ok(self.sign_in_page(headers, e.status, Some(&e.message), email, ret));
        }
        match self
            .inner
            .idp
            .start_choice(email, None, Some(code.challenge()), ctx)
            .await
        {
            Ok(outcome) => self.outcome(headers, outcome, email, ret).await,
            Err(e) => Ok(self.refused(headers, Step::Login, e, email, ret)),
        }
    }

    /// SELECT_CHALLENGE: the codes Cognito offers this user, to choose from; with none the
    /// pages answer (only a password, or a passkey), back to the password.
    pub(super) fn select_challenge(
        &self,
        headers: &http::HeaderMap,
        f: &MfaForm<'_>,
        available: &[String],
    ) -> Response<Body> {
        if available.iter().any(|c| way_label(c).is_some()) {
            let labels = choices_html(available, way_label);
            return self.select_mfa_page(headers, f, &labels);
        }
        self.sign_in_page(
            headers,
            StatusCode::BAD_REQUEST,
            Some("Sign in with your password."),
            f.email,
            f.ret,
        )
    }

    /// The answer to SELECT_CHALLENGE: the code chosen (RespondToAuthChallenge, ANSWER).
    pub(super) async fn answer_select_challenge(
        &self,
        headers: &http::HeaderMap,
        f: &MfaForm<'_>,
        answer: &str,
        ctx: &UserContext,
    ) -> Result<Response<Body>, ApiError> {
        if SignInCode::from_challenge(answer).is_none() {
            return Ok(self.sign_in_page(
                headers,
                StatusCode::BAD_REQUEST,
                Some("Please sign in again."),
                f.email,
                f.ret,
            ));
        }
        if let Err(e) = self.limit(f.email).await {
            return Ok(self.sign_in_page(headers, e.status, Some(&e.message), f.email, f.ret));
        }
        let who = if f.username.is_empty() {
            f.email
        } else {
            f.username
        };
        match self
            .inner
            .idp
            .respond(
                ChallengeNameType::SelectChallenge,
                who,
                f.session,
                &[("ANSWER", answer)],
                ctx,
            )
            .await
        {
            Ok(outcome) => self.outcome(headers, outcome, f.email, f.ret).await,
            Err(e) => Ok(self.refused(headers, Step::MfaAnswer, e, f.email, f.ret)),
        }
    }

    /// The hidden field and the two scripts a sign-in step's form carries with
    /// `session.device_fingerprint` (raw HTML; empty without it).
    pub(super) fn fingerprint_html(&self) -> String {
        let Some(fp) = &self.inner.fingerprint else {
            return String::new();
        };
        format!(
            r#"<input type="hidden" name="encoded_data" value=""><script src="{}" defer></script><script src="{}/fingerprint.js" data-pool="{}" data-client="{}" defer></script>"#,
            escape(&fp.script),
            escape(self.prefix()),
            escape(&fp.pool_id),
            escape(&fp.client_id)
        )
    }

    /// The user's context with the form's `EncodedData` (only with
    /// `session.device_fingerprint`; empty or oversized values are left out).
    pub(super) fn with_encoded_data(&self, ctx: &UserContext, form: &Form) -> UserContext {
        let mut ctx = ctx.clone();
        if self.inner.fingerprint.is_some() {
            ctx.encoded_data = form
                .get("encoded_data")
                .map(|v| v.trim())
                .filter(|v| !v.is_empty() && v.len() <= MAX_ENCODED_DATA)
                .map(str::to_string);
        }
        ctx
    }

    /// A page's CSP with the fingerprint script's origin allowed (the pages have no script
    /// otherwise). Applied to every HTML page the pages serve.
    pub(super) fn allow_fingerprint_script(&self, resp: &mut Response<Body>) {
        let Some(fp) = &self.inner.fingerprint else {
            return;
        };
        let h = resp.headers_mut();
        let Some(csp) = h
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
        else {
            return;
        };
        let with = format!("{csp}; script-src 'self' {}", fp.origin);
        if let Ok(v) = HeaderValue::from_str(&with) {
            h.insert("content-security-policy", v);
        }
    }

    /// `GET {prefix}/fingerprint.js` (404 without `session.device_fingerprint`).
    pub(super) fn fingerprint_js(&self) -> Result<Response<Body>, ApiError> {
        if self.inner.fingerprint.is_none() {
            return Err(ApiError::new(
                crate::error::ErrorCode::NotFound,
                "no such page",
            ));
        }
        let mut resp = Response::new(full(FINGERPRINT_JS));
        let h = resp.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        );
        h.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        );
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_buttons() {
        assert_eq!(codes_html(&[]), "");
        assert_eq!(
            codes_html(&[SignInCode::EmailOtp, SignInCode::SmsOtp]),
            r#"<p class="or">or</p><button type="submit" class="secondary" name="way" value="EMAIL_OTP" formnovalidate>Email me a code</button><button type="submit" class="secondary" name="way" value="SMS_OTP" formnovalidate>Text me a code</button>"#
        );
        assert_eq!(way_label("EMAIL_OTP"), Some("Email me a code"));
        assert_eq!(way_label("SMS_OTP"), Some("Text me a code"));
        for other in ["PASSWORD", "WEB_AUTHN", "SMS_MFA", ""] {
            assert_eq!(way_label(other), None, "{other}");
        }
    }

    #[test]
    fn fingerprint_script_of_the_region() {
        let fp = Fingerprint::new("eu-west-1", "eu-west-1_AbC", "client");
        assert_eq!(
            fp.script,
            "https://amazon-cognito-assets.eu-west-1.amazoncognito.com/amazon-cognito-advanced-security-data.min.js"
        );
        assert_eq!(
            fp.origin,
            "https://amazon-cognito-assets.eu-west-1.amazoncognito.com"
        );
        // Nothing that could end the URL or the CSP directive.
        let odd = Fingerprint::new("us-east-1; script-src *'", "p", "c");
        assert_eq!(
            odd.origin,
            "https://amazon-cognito-assets.us-east-1script-src.amazoncognito.com"
        );
    }
}
