//! The second sign-in step on the pages: a code (authenticator app, SMS or email), the choice
//! between them (SELECT_MFA_TYPE), and authenticator-app enrollment (MFA_SETUP) with the
//! secret shown as a QR code rendered here as inline SVG (no script, no image request).

use aws_sdk_cognitoidentityprovider::types::ChallengeNameType;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::browser::session;
use crate::error::{ApiError, ErrorCode};
use crate::http::body::Body;
use crate::idp::{otpauth_uri, Step, UserContext};

use super::super::templates::{error_parts, escape, html_response, render};
use super::Pages;

/// What the MFA pages carry from one step to the next.
pub(super) struct MfaForm<'a> {
    pub email: &'a str,
    /// Cognito's canonical username for the challenge (the email when it gave none).
    pub username: &'a str,
    pub challenge: &'a str,
    pub session: &'a str,
    pub hint: &'a str,
    pub ret: &'a str,
}

impl<'a> MfaForm<'a> {
    /// The form of a choice page (no hint).
    pub fn choice(
        email: &'a str,
        username: &'a str,
        challenge: &'a str,
        session: &'a str,
        ret: &'a str,
    ) -> Self {
        MfaForm {
            email,
            username,
            challenge,
            session,
            hint: "",
            ret,
        }
    }
}

/// The challenge response field of a code challenge the pages answer.
pub(super) fn code_field(challenge: &str) -> Option<&'static str> {
    match challenge {
        "SOFTWARE_TOKEN_MFA" => Some("SOFTWARE_TOKEN_MFA_CODE"),
        "SMS_MFA" => Some("SMS_MFA_CODE"),
        "EMAIL_OTP" => Some("EMAIL_OTP_CODE"),
        // Choice-based sign-in's code by text message.
        "SMS_OTP" => Some("SMS_OTP_CODE"),
        _ => None,
    }
}

/// The label of an MFA type SELECT_MFA_TYPE offers; `None` for one the pages cannot answer.
pub(super) fn choice_label(mfa: &str) -> Option<&'static str> {
    match mfa {
        "SOFTWARE_TOKEN_MFA" => Some("Authenticator app"),
        "SMS_MFA" => Some("Text message (SMS)"),
        "EMAIL_OTP" => Some("Email"),
        _ => None,
    }
}

/// The radio buttons of a choice (SELECT_MFA_TYPE's MFA types with `choice_label`,
/// SELECT_CHALLENGE's ways), the first one chosen; the ones without a label are left out.
pub(super) fn choices_html(items: &[String], label: fn(&str) -> Option<&'static str>) -> String {
    let mut out = String::new();
    for (i, m) in items
        .iter()
        .filter_map(|m| Some((m, label(m)?)))
        .enumerate()
    {
        let (value, label) = m;
        let checked = if i == 0 { " checked" } else { "" };
        out.push_str(&format!(
            r#"<label><input type="radio" name="answer" value="{}"{checked}> {label}</label>"#,
            escape(value)
        ));
    }
    out
}

/// The QR code of an `otpauth://` URI as an inline SVG (empty when it cannot be encoded).
pub(super) fn qr_svg(uri: &str) -> String {
    use qrcode::render::svg;
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<svg::Color<'_>>()
                .min_dimensions(192, 192)
                .quiet_zone(true)
                .build();
            // Inline in HTML: no XML declaration; named for screen readers.
            let svg = match svg.find("<svg") {
                Some(i) => &svg[i..],
                None => return String::new(),
            };
            svg.replacen(
                "<svg",
                r#"<svg role="img" aria-label="QR code of the key below""#,
                1,
            )
        }
        Err(_) => String::new(),
    }
}

/// What the MFA_SETUP page carries.
pub(super) struct SetupForm<'a> {
    pub email: &'a str,
    pub username: &'a str,
    pub session: &'a str,
    pub secret: &'a str,
    pub ret: &'a str,
}

impl Pages {
    /// The code of an MFA challenge, or the choice of SELECT_MFA_TYPE: RespondToAuthChallenge
    /// (admin or not, as configured).
    pub(super) async fn mfa(
        &self,
        req: Request<Incoming>,
        ctx: &UserContext,
    ) -> Result<Response<Body>, ApiError> {
        let (parts, body) = req.into_parts();
        let form = self.form(&parts.headers, body).await?;
        let ctx = &self.with_encoded_data(ctx, &form);
        let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
        let ret = session::safe_return(get("return"));
        let (email, username, challenge) = (get("email").trim(), get("username"), get("challenge"));
        let again = |status, error: &str| {
            let hint = "Enter the code again.";
            self.mfa_page(
                &parts.headers,
                status,
                Some(error),
                &MfaForm {
                    email,
                    username,
                    challenge,
                    session: get("session"),
                    hint,
                    ret: &ret,
                },
            )
        };
        if !session::csrf_matches(&parts.headers, form.get("csrf").map(String::as_str)) {
            return Ok(self.expired(&parts.headers, email, &ret));
        }
        let who = if username.is_empty() { email } else { username };
        if challenge == "SELECT_CHALLENGE" {
            let f = MfaForm::choice(email, username, challenge, get("session"), &ret);
            return self
                .answer_select_challenge(&parts.headers, &f, get("answer"), ctx)
                .await;
        }
        if challenge == "SELECT_MFA_TYPE" {
            let answer = get("answer");
            if choice_label(answer).is_none() {
                return Ok(self.sign_in_page(
                    &parts.headers,
                    StatusCode::BAD_REQUEST,
                    Some("Please sign in again."),
                    email,
                    &ret,
                ));
            }
            if let Err(e) = self.limit(email).await {
                return Ok(self.sign_in_page(
                    &parts.headers,
                    e.status,
                    Some(&e.message),
                    email,
                    &ret,
                ));
            }
            let result = self
                .inner
                .idp
                .respond(
                    ChallengeNameType::SelectMfaType,
                    who,
                    get("session"),
                    &[("ANSWER", answer)],
                    ctx,
                )
                .await;
            return match result {
                Ok(outcome) => self.outcome(&parts.headers, outcome, email, &ret).await,
                Err(e) => Ok(self.refused(&parts.headers, Step::MfaAnswer, e, email, &ret)),
            };
        }
        let Some(field) = code_field(challenge) else {
            return Ok(self.sign_in_page(
                &parts.headers,
                StatusCode::BAD_REQUEST,
                Some("Please sign in again."),
                email,
                &ret,
            ));
        };
        if let Err(e) = self.limit(email).await {
            return Ok(again(e.status, &e.message));
        }
        let code = get("code").trim();
        if code.is_empty() {
            return Ok(again(StatusCode::BAD_REQUEST, "Enter the code."));
        }
        let name = ChallengeNameType::from(challenge);
        match self
            .inner
            .idp
            .respond(name, who, get("session"), &[(field, code)], ctx)
            .await
        {
            Ok(outcome) => self.outcome(&parts.headers, outcome, email, &ret).await,
            Err(e) => {
                let e = ApiError::from_idp(Step::MfaAnswer, e);
                self.inner.metrics.session_sign_in(e.code.as_str());
                if retry_here(e.code) {
                    Ok(again(e.status, &e.message))
                } else {
                    Ok(self.sign_in_page(&parts.headers, e.status, Some(&e.message), email, &ret))
                }
            }
        }
    }

    /// The first authenticator code of an enrollment: VerifySoftwareToken, then MFA_SETUP is
    /// answered with the session it returns.
    pub(super) async fn mfa_setup(
        &self,
        req: Request<Incoming>,
        ctx: &UserContext,
    ) -> Result<Response<Body>, ApiError> {
        let (parts, body) = req.into_parts();
        let form = self.form(&parts.headers, body).await?;
        let ctx = &self.with_encoded_data(ctx, &form);
        let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
        let ret = session::safe_return(get("return"));
        let (email, username, cognito_session) =
            (get("email").trim(), get("username"), get("session"));
        if !session::csrf_matches(&parts.headers, form.get("csrf").map(String::as_str)) {
            return Ok(self.expired(&parts.headers, email, &ret));
        }
        let f = SetupForm {
            email,
            username,
            session: cognito_session,
            secret: get("secret"),
            ret: &ret,
        };
        if let Err(e) = self.limit(email).await {
            return Ok(self.mfa_setup_page(&parts.headers, e.status, Some(&e.message), &f));
        }
        let code = get("code").trim();
        if code.is_empty() {
            return Ok(self.mfa_setup_page(
                &parts.headers,
                StatusCode::BAD_REQUEST,
                Some("Enter the code from the app."),
                &f,
            ));
        }
        let next = match self
            .inner
            .idp
            .verify_software_token(cognito_session, code, None)
            .await
        {
            Ok(next) => next,
            Err(e) => {
                let e = ApiError::from_idp(Step::MfaVerify, e);
                self.inner.metrics.session_sign_in(e.code.as_str());
                return Ok(if retry_here(e.code) {
                    self.mfa_setup_page(&parts.headers, e.status, Some(&e.message), &f)
                } else {
                    self.sign_in_page(&parts.headers, e.status, Some(&e.message), email, &ret)
                });
            }
        };
        let who = if username.is_empty() { email } else { username };
        let next = next.as_deref().unwrap_or(cognito_session);
        match self
            .inner
            .idp
            .respond(ChallengeNameType::MfaSetup, who, next, &[], ctx)
            .await
        {
            Ok(outcome) => self.outcome(&parts.headers, outcome, email, &ret).await,
            Err(e) => Ok(self.refused(&parts.headers, Step::MfaAnswer, e, email, &ret)),
        }
    }

    /// MFA_SETUP: a new authenticator secret (AssociateSoftwareToken) and its page.
    pub(super) async fn start_mfa_setup(
        &self,
        headers: &http::HeaderMap,
        email: &str,
        username: &str,
        cognito_session: &str,
        ret: &str,
    ) -> Response<Body> {
        match self
            .inner
            .idp
            .associate_software_token(cognito_session)
            .await
        {
            Ok(token) => self.mfa_setup_page(
                headers,
                StatusCode::OK,
                None,
                &SetupForm {
                    email,
                    username,
                    session: token.session.as_deref().unwrap_or(cognito_session),
                    secret: &token.secret_code,
                    ret,
                },
            ),
            Err(e) => self.refused(headers, Step::MfaAssociate, e, email, ret),
        }
    }

    pub(super) fn mfa_page(
        &self,
        headers: &http::HeaderMap,
        status: StatusCode,
        error: Option<&str>,
        f: &MfaForm<'_>,
    ) -> Response<Body> {
        let (csrf, new) = self.csrf(headers);
        let (title, logo) = self.common();
        let (error_html, invalid) = error_parts(error);
        let html = render(
            &self.inner.templates.mfa,
            &[
                ("title", &title),
                ("prefix", self.prefix()),
                ("csrf", &csrf),
                ("return", f.ret),
                ("email", f.email),
                ("username", f.username),
                ("challenge", f.challenge),
                ("session", f.session),
                ("hint", f.hint),
            ],
            &[
                ("error", &error_html),
                ("logo", &logo),
                ("invalid", invalid),
                ("fingerprint", &self.fingerprint_html()),
            ],
        );
        html_response(status, html, new.then_some(csrf))
    }

    /// The choice page of SELECT_MFA_TYPE and SELECT_CHALLENGE (`f.challenge`), with its
    /// radio buttons (`choices_html`).
    pub(super) fn select_mfa_page(
        &self,
        headers: &http::HeaderMap,
        f: &MfaForm<'_>,
        choices: &str,
    ) -> Response<Body> {
        let (csrf, new) = self.csrf(headers);
        let (title, logo) = self.common();
        let html = render(
            &self.inner.templates.select_mfa,
            &[
                ("title", &title),
                ("prefix", self.prefix()),
                ("csrf", &csrf),
                ("return", f.ret),
                ("email", f.email),
                ("username", f.username),
                ("challenge", f.challenge),
                ("session", f.session),
            ],
            &[
                ("error", ""),
                ("logo", &logo),
                ("choices", choices),
                ("fingerprint", &self.fingerprint_html()),
            ],
        );
        html_response(StatusCode::OK, html, new.then_some(csrf))
    }

    fn mfa_setup_page(
        &self,
        headers: &http::HeaderMap,
        status: StatusCode,
        error: Option<&str>,
        f: &SetupForm<'_>,
    ) -> Response<Body> {
        let (csrf, new) = self.csrf(headers);
        let (title, logo) = self.common();
        let (error_html, invalid) = error_parts(error);
        let qr = qr_svg(&otpauth_uri(&self.inner.totp_issuer, f.email, f.secret));
        let html = render(
            &self.inner.templates.mfa_setup,
            &[
                ("title", &title),
                ("prefix", self.prefix()),
                ("csrf", &csrf),
                ("return", f.ret),
                ("email", f.email),
                ("username", f.username),
                ("session", f.session),
                ("secret", f.secret),
            ],
            &[
                ("error", &error_html),
                ("logo", &logo),
                ("invalid", invalid),
                ("qr", &qr),
                ("fingerprint", &self.fingerprint_html()),
            ],
        );
        html_response(status, html, new.then_some(csrf))
    }
}

/// The refusals a code page answers itself (the user can try again there); any other goes
/// back to the sign-in page.
fn retry_here(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::InvalidCode | ErrorCode::ExpiredCode | ErrorCode::RateLimited
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_fields_and_choices() {
        assert_eq!(
            code_field("SOFTWARE_TOKEN_MFA"),
            Some("SOFTWARE_TOKEN_MFA_CODE")
        );
        assert_eq!(code_field("SMS_MFA"), Some("SMS_MFA_CODE"));
        assert_eq!(code_field("EMAIL_OTP"), Some("EMAIL_OTP_CODE"));
        assert_eq!(code_field("CUSTOM_CHALLENGE"), None);
        assert_eq!(code_field("SELECT_MFA_TYPE"), None);
        let html = choices_html(
            &[
                "SMS_MFA".into(),
                "WEB_AUTHN".into(),
                "SOFTWARE_TOKEN_MFA".into(),
            ],
            choice_label,
        );
        assert_eq!(
            html,
            r#"<label><input type="radio" name="answer" value="SMS_MFA" checked> Text message (SMS)</label><label><input type="radio" name="answer" value="SOFTWARE_TOKEN_MFA"> Authenticator app</label>"#
        );
        assert_eq!(choices_html(&[], choice_label), "");
        assert_eq!(code_field("SMS_OTP"), Some("SMS_OTP_CODE"));
    }

    #[test]
    fn qr_code_is_inline_svg() {
        let svg = qr_svg(&otpauth_uri("Example", "a@example.com", "JBSWY3DPEHPK3PXP"));
        assert!(
            svg.starts_with(r#"<svg role="img" aria-label="#),
            "{}",
            &svg[..80]
        );
        assert!(svg.trim_end().ends_with("</svg>"));
        // Nothing CSP would block: no style attribute, no script, no external reference.
        for bad in ["style=", "<script", "href", "<?xml"] {
            assert!(!svg.contains(bad), "{bad}");
        }
    }
}
