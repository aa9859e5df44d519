//! A forgotten password on the pages: the email (ForgotPassword), then the code and the new
//! password twice (ConfirmForgotPassword), then signed in with it. The same rules as the JSON
//! API's `forgot-password`: one answer whatever the email (the refusals that would tell a known
//! user from an unknown one are answered like a success, and the masked destination is never
//! shown), the recovery limits per address and per user, and codes never logged.

use std::net::IpAddr;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::browser::session;
use crate::error::ApiError;
use crate::http::body::Body;
use crate::idp::{Step, UserContext};

use super::super::templates::{error_parts, html_response, render};
use super::Pages;

impl Pages {
    /// Asks for a code: the reset page follows whether or not the account exists.
    pub(super) async fn forgot_password(
        &self,
        req: Request<Incoming>,
        client: IpAddr,
    ) -> Result<Response<Body>, ApiError> {
        let (parts, body) = req.into_parts();
        let form = self.form(&parts.headers, body).await?;
        let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
        let ret = session::safe_return(get("return"));
        let email = get("email").trim();
        let again = |status, error: &str| {
            self.forgot_page(&parts.headers, status, Some(error), email, &ret)
        };
        if !session::csrf_matches(&parts.headers, form.get("csrf").map(String::as_str)) {
            self.inner.metrics.csrf_refused("form");
            return Ok(again(
                StatusCode::FORBIDDEN,
                "This form has expired. Please try again.",
            ));
        }
        if email.is_empty() {
            return Ok(again(StatusCode::BAD_REQUEST, "Enter your email."));
        }
        if let Err(e) = self.inner.recovery.check("forgot", email, client).await {
            return Ok(again(e.status, &e.message));
        }
        match self.inner.idp.forgot_password(email).await {
            Ok(_) => {}
            Err(e) if e.hides_user() => {}
            Err(e) => {
                let e = ApiError::from_idp(Step::ForgotPassword, e);
                return Ok(again(e.status, &e.message));
            }
        }
        let policy = self.policy_html().await;
        Ok(self.reset_page(&parts.headers, StatusCode::OK, None, email, &policy, &ret))
    }

    /// The code and the new password (twice): ConfirmForgotPassword, then a sign-in with it.
    pub(super) async fn reset_password(
        &self,
        req: Request<Incoming>,
        client: IpAddr,
        ctx: &UserContext,
    ) -> Result<Response<Body>, ApiError> {
        let (parts, body) = req.into_parts();
        let form = self.form(&parts.headers, body).await?;
        let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
        let ret = session::safe_return(get("return"));
        let email = get("email").trim();
        let policy = self.policy_html().await;
        let again = |status, error: &str| {
            self.reset_page(&parts.headers, status, Some(error), email, &policy, &ret)
        };
        if !session::csrf_matches(&parts.headers, form.get("csrf").map(String::as_str)) {
            self.inner.metrics.csrf_refused("form");
            return Ok(self.forgot_page(
                &parts.headers,
                StatusCode::FORBIDDEN,
                Some("This form has expired. Please ask for a new code."),
                email,
                &ret,
            ));
        }
        let (code, new) = (get("code").trim(), get("new_password"));
        if email.is_empty() || code.is_empty() || new.is_empty() {
            return Ok(again(
                StatusCode::BAD_REQUEST,
                "Enter the code and a new password.",
            ));
        }
        if new != get("confirm_password") {
            return Ok(again(
                StatusCode::BAD_REQUEST,
                "The two passwords do not match.",
            ));
        }
        if let Err(e) = self.inner.recovery.check("confirm", email, client).await {
            return Ok(again(e.status, &e.message));
        }
        if let Err(e) = self
            .inner
            .idp
            .confirm_forgot_password(email, code, new)
            .await
        {
            let e = ApiError::from_idp(Step::ConfirmForgotPassword, e);
            return Ok(again(e.status, &e.message));
        }
        // The password is changed: sign in with it (MFA, if the account has it, follows).
        let changed = "Your password is changed. Sign in with it.";
        if self.limit(email).await.is_err() {
            return Ok(self.sign_in_page(
                &parts.headers,
                StatusCode::OK,
                Some(changed),
                email,
                &ret,
            ));
        }
        match self.inner.idp.login(email, new, ctx).await {
            Ok(outcome) => self.outcome(&parts.headers, outcome, email, &ret).await,
            Err(e) => {
                let e = ApiError::from_idp(Step::Login, e);
                self.inner.metrics.session_sign_in(e.code.as_str());
                Ok(self.sign_in_page(&parts.headers, StatusCode::OK, Some(changed), email, &ret))
            }
        }
    }

    pub(super) fn forgot_page(
        &self,
        headers: &http::HeaderMap,
        status: StatusCode,
        error: Option<&str>,
        email: &str,
        ret: &str,
    ) -> Response<Body> {
        let (csrf, new) = self.csrf(headers);
        let (title, logo) = self.common();
        let ret = session::safe_return(ret);
        let (error_html, invalid) = error_parts(error);
        let html = render(
            &self.inner.templates.forgot_password,
            &[
                ("title", &title),
                ("prefix", self.prefix()),
                ("csrf", &csrf),
                ("return", &ret),
                ("return_query", &query_value(&ret)),
                ("email", email),
            ],
            &[
                ("error", &error_html),
                ("logo", &logo),
                ("invalid", invalid),
            ],
        );
        html_response(status, html, new.then_some(csrf))
    }

    fn reset_page(
        &self,
        headers: &http::HeaderMap,
        status: StatusCode,
        error: Option<&str>,
        email: &str,
        policy: &str,
        ret: &str,
    ) -> Response<Body> {
        let (csrf, new) = self.csrf(headers);
        let (title, logo) = self.common();
        let (error_html, invalid) = error_parts(error);
        let html = render(
            &self.inner.templates.reset_password,
            &[
                ("title", &title),
                ("prefix", self.prefix()),
                ("csrf", &csrf),
                ("return", ret),
                ("return_query", &query_value(ret)),
                ("email", email),
            ],
            &[
                ("error", &error_html),
                ("logo", &logo),
                ("invalid", invalid),
                ("policy", policy),
            ],
        );
        html_response(status, html, new.then_some(csrf))
    }
}

/// A value for a URL's query string (then HTML-escaped by the template).
pub(super) fn query_value(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}
