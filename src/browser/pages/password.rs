//! The new-password step (Cognito's NEW_PASSWORD_REQUIRED) and the pool's password policy
//! as the password forms show it (this step's and the reset's in `recovery`).

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::browser::session;
use crate::browser::templates::{error_parts, escape, html_response, render};
use crate::error::{ApiError, ErrorCode};
use crate::http::body::Body;
use crate::idp::{Step, UserContext};

use super::Pages;

impl Pages {
    pub(super) async fn new_password(
        &self,
        req: Request<Incoming>,
        ctx: &UserContext,
    ) -> Result<Response<Body>, ApiError> {
        let (parts, body) = req.into_parts();
        let form = self.form(&parts.headers, body).await?;
        let ctx = &self.with_encoded_data(ctx, &form);
        let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
        let ret = session::safe_return(get("return"));
        let (email, cognito_session) = (get("email").trim(), get("session"));
        if !session::csrf_matches(&parts.headers, form.get("csrf").map(String::as_str)) {
            self.inner.metrics.csrf_refused("form");
            return Ok(self.sign_in_page(
                &parts.headers,
                StatusCode::FORBIDDEN,
                Some("This form has expired. Please sign in again."),
                email,
                &ret,
            ));
        }
        if let Err(e) = self.limit(email).await {
            return Ok(self.sign_in_page(&parts.headers, e.status, Some(&e.message), email, &ret));
        }
        let new = get("new_password");
        let policy = self.policy_html().await;
        let refused = if new.is_empty() {
            Some("Enter a new password.")
        } else if new != get("confirm_password") {
            Some("The two passwords do not match.")
        } else {
            None
        };
        if let Some(msg) = refused {
            return Ok(self.new_password_page(
                &parts.headers,
                StatusCode::BAD_REQUEST,
                Some(msg),
                &NewPasswordForm {
                    email,
                    session: cognito_session,
                    policy: &policy,
                    ret: &ret,
                },
            ));
        }
        match self
            .inner
            .idp
            .new_password(email, new, cognito_session, ctx)
            .await
        {
            Ok(outcome) => self.outcome(&parts.headers, outcome, email, &ret).await,
            Err(e) => {
                // The JSON API's classification: a weak password is answered on this page,
                // anything else (an expired challenge session above all) on the sign-in page.
                let e = ApiError::from_idp(Step::NewPassword, e);
                if e.code == ErrorCode::WeakPassword {
                    Ok(self.new_password_page(
                        &parts.headers,
                        e.status,
                        Some(&e.message),
                        &NewPasswordForm {
                            email,
                            session: cognito_session,
                            policy: &policy,
                            ret: &ret,
                        },
                    ))
                } else {
                    Ok(self.sign_in_page(&parts.headers, e.status, Some(&e.message), email, &ret))
                }
            }
        }
    }

    /// The pool's password policy as a hint paragraph, or nothing: `session.password_policy`
    /// when configured, else the pool's (`pool_policies`, read once).
    pub(super) async fn policy_html(&self) -> String {
        let text = match &self.inner.sessions.config().password_policy {
            Some(t) => t.clone(),
            None => self
                .pool_policies()
                .await
                .and_then(|p| p.password.as_ref())
                .map(|p| p.describe())
                .unwrap_or_default(),
        };
        if text.is_empty() {
            String::new()
        } else {
            format!(r#"<p class="hint" id="policy">{}</p>"#, escape(&text))
        }
    }

    pub(super) fn new_password_page(
        &self,
        headers: &http::HeaderMap,
        status: StatusCode,
        error: Option<&str>,
        f: &NewPasswordForm<'_>,
    ) -> Response<Body> {
        let (csrf, new) = self.csrf(headers);
        let (title, logo) = self.common();
        let (error_html, invalid) = error_parts(error);
        let html = render(
            &self.inner.templates.new_password,
            &[
                ("title", &title),
                ("prefix", self.prefix()),
                ("csrf", &csrf),
                ("return", f.ret),
                ("email", f.email),
                ("session", f.session),
            ],
            &[
                ("error", &error_html),
                ("logo", &logo),
                ("invalid", invalid),
                ("policy", f.policy),
                ("fingerprint", &self.fingerprint_html()),
            ],
        );
        html_response(status, html, new.then_some(csrf))
    }
}

/// What the new-password page carries.
pub(super) struct NewPasswordForm<'a> {
    pub(super) email: &'a str,
    pub(super) session: &'a str,
    /// The policy hint (HTML built by `policy_html`).
    pub(super) policy: &'a str,
    pub(super) ret: &'a str,
}
