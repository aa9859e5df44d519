//! The sidecar's own pages for browser sessions, under `session.prefix` (default `/_auth`):
//! sign-in, new password (Cognito's NEW_PASSWORD_REQUIRED), the second step (`mfa`: codes,
//! SELECT_MFA_TYPE, MFA_SETUP), a forgotten password (`recovery`) and sign-out, over the same
//! Cognito calls as the JSON API, with its error messages (no user enumeration).
//!
//! Plain HTML forms that work without JavaScript: labelled fields, the first one focused,
//! errors announced (`role="alert"`, `aria-describedby`). Every page is sent with a strict
//! `Content-Security-Policy` (no script at all), `X-Frame-Options: DENY` and
//! `Cache-Control: no-store`. Each form carries a CSRF token bound to the pre-session cookie
//! `__Host-sidecar-csrf`. Operators may replace the templates (`session.templates_dir`);
//! every placeholder is HTML-escaped except `{{error}}` and `{{logo}}`, which the sidecar builds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

mod federated;
mod mfa;
mod password;
mod passwordless;
mod recovery;

use password::NewPasswordForm;
pub use passwordless::Fingerprint;

use crate::browser::federated::Federation;
use crate::browser::session::{self, Sessions};
use crate::error::{ApiError, Budget, ErrorCode};
use crate::fleet::Shared;
use crate::gate::Gate;
use crate::http::body::{full, Body};
use crate::idp::{AuthOutcome, Cognito, IdpError, Step, UserContext};
use crate::limit::{Limiter, RecoveryLimits};
use crate::telemetry::metrics::SharedMetrics;

use super::templates::{
    csp_with_form_target, error_parts, escape, html_response, render, secure_headers, style,
    Templates,
};

/// A page of the sidecar's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    SignIn,
    NewPassword,
    /// The code of an MFA challenge (authenticator app, SMS or email), or the choice of one.
    Mfa,
    /// The first code of an authenticator app being set up (MFA_SETUP).
    MfaSetup,
    /// "Forgot your password?": the email to send a code to.
    ForgotPassword,
    /// The code and the new password.
    ResetPassword,
    /// Starts a federated sign-in (`session.managed_login`).
    Federate,
    /// The pool's domain returns here (the app client's callback URL).
    Callback,
    SignOut,
    Style,
    /// The script that fills in Cognito's `EncodedData` (`session.device_fingerprint`).
    Fingerprint,
}

impl Page {
    /// The page for `rest`, the path after `session.prefix`.
    pub fn from_path(rest: &str) -> Option<Page> {
        match rest {
            "/sign-in" => Some(Page::SignIn),
            "/new-password" => Some(Page::NewPassword),
            "/mfa" => Some(Page::Mfa),
            "/mfa-setup" => Some(Page::MfaSetup),
            "/forgot-password" => Some(Page::ForgotPassword),
            "/reset-password" => Some(Page::ResetPassword),
            "/federate" => Some(Page::Federate),
            "/callback" => Some(Page::Callback),
            "/sign-out" => Some(Page::SignOut),
            "/style.css" => Some(Page::Style),
            "/fingerprint.js" => Some(Page::Fingerprint),
            _ => None,
        }
    }
}

/// The pages and what they need; built once.
#[derive(Clone)]
pub struct Pages {
    inner: Arc<Inner>,
}

struct Inner {
    sessions: Sessions,
    idp: Arc<Cognito>,
    gate: Gate,
    shared: Option<Shared>,
    by_username: Arc<Limiter<String>>,
    recovery: Arc<RecoveryLimits>,
    metrics: SharedMetrics,
    templates: Templates,
    max_body: usize,
    /// The authenticator apps' issuer label (`api.totp_issuer`).
    totp_issuer: String,
    /// The pool's policies (password, first factors), read once (`pool_policies`).
    pool: tokio::sync::OnceCell<crate::idp::PoolPolicies>,
    /// Cognito's device-fingerprint script, with `session.device_fingerprint`.
    fingerprint: Option<Fingerprint>,
    /// Federated sign-in, with `session.managed_login`.
    federation: Option<Federation>,
}

/// Form fields, first value of each.
type Form = HashMap<String, String>;

impl Pages {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        sessions: Sessions,
        idp: Arc<Cognito>,
        gate: Gate,
        shared: Option<Shared>,
        by_username: Arc<Limiter<String>>,
        recovery: Arc<RecoveryLimits>,
        metrics: SharedMetrics,
        templates: Templates,
        max_body: usize,
        totp_issuer: &str,
        federation: Option<Federation>,
        fingerprint: Option<Fingerprint>,
    ) -> Self {
        Pages {
            inner: Arc::new(Inner {
                sessions,
                idp,
                gate,
                shared,
                by_username,
                recovery,
                metrics,
                templates,
                max_body,
                totp_issuer: totp_issuer.to_string(),
                pool: tokio::sync::OnceCell::new(),
                federation,
                fingerprint,
            }),
        }
    }

    /// Serves one page request. `Err` only for what the JSON error path answers (wrong
    /// method, oversized or unreadable bodies).
    pub async fn serve(
        &self,
        page: Page,
        req: Request<Incoming>,
        client: IpAddr,
    ) -> Result<Response<Body>, ApiError> {
        // Where the user is, for Cognito's threat protection (the sign-in steps' calls).
        let ctx = self
            .inner
            .idp
            .context(req.headers(), client, req.uri().path());
        let method = req.method().clone();
        let mut result = match (page, &method) {
            (Page::Style, &Method::GET | &Method::HEAD) => Ok(style()),
            (Page::Fingerprint, &Method::GET | &Method::HEAD) => self.fingerprint_js(),
            (Page::SignIn, &Method::GET | &Method::HEAD) => {
                // The codes offered may come from the pool: read its policies first.
                if self.codes_from_pool() {
                    let _ = self.pool_policies().await;
                }
                let ret = query_param(req.uri().query(), "return").unwrap_or_default();
                if let Some(only) = self.auto_redirect() {
                    let ret = session::safe_return(&ret);
                    return Ok(self.start_flow(req.headers(), Some(only), &ret).await);
                }
                Ok(self.sign_in_page(req.headers(), StatusCode::OK, None, "", &ret))
            }
            (Page::Federate, &Method::GET | &Method::HEAD) => self.federate(&req).await,
            (Page::Callback, &Method::GET | &Method::HEAD) => self.callback(&req).await,
            (Page::Federate | Page::Callback, _) => Err(ApiError::method_not_allowed("GET, HEAD")),
            (Page::SignIn, &Method::POST) => self.sign_in(req, &ctx).await,
            (Page::NewPassword, &Method::POST) => self.new_password(req, &ctx).await,
            (Page::Mfa, &Method::POST) => self.mfa(req, &ctx).await,
            (Page::MfaSetup, &Method::POST) => self.mfa_setup(req, &ctx).await,
            (Page::ForgotPassword, &Method::GET | &Method::HEAD) => {
                let ret = query_param(req.uri().query(), "return").unwrap_or_default();
                Ok(self.forgot_page(req.headers(), StatusCode::OK, None, "", &ret))
            }
            (Page::ForgotPassword, &Method::POST) => self.forgot_password(req, client).await,
            (Page::ResetPassword, &Method::POST) => self.reset_password(req, client, &ctx).await,
            // The steps after the first form are reached by posting it.
            (Page::Mfa | Page::MfaSetup | Page::NewPassword, &Method::GET | &Method::HEAD) => {
                Ok(redirect(&format!("{}/sign-in", self.prefix())))
            }
            (Page::ResetPassword, &Method::GET | &Method::HEAD) => {
                Ok(redirect(&format!("{}/forgot-password", self.prefix())))
            }
            (Page::SignOut, &Method::GET | &Method::HEAD) => {
                Ok(self.sign_out_page(req.headers(), None))
            }
            (Page::SignOut, &Method::POST) => self.sign_out(req).await,
            (Page::Style | Page::Fingerprint, _) => Err(ApiError::method_not_allowed("GET, HEAD")),
            _ => Err(ApiError::method_not_allowed("GET, HEAD, POST")),
        };
        if let Ok(resp) = &mut result {
            self.allow_fingerprint_script(resp);
        }
        result
    }

    fn prefix(&self) -> &str {
        &self.inner.sessions.config().prefix
    }

    async fn sign_in(
        &self,
        req: Request<Incoming>,
        ctx: &UserContext,
    ) -> Result<Response<Body>, ApiError> {
        let (parts, body) = req.into_parts();
        let form = self.form(&parts.headers, body).await?;
        let ctx = &self.with_encoded_data(ctx, &form);
        let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
        let ret = session::safe_return(get("return"));
        let email = get("email").trim();
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
        let way = get("way");
        if !way.is_empty() {
            return self
                .sign_in_by_code(&parts.headers, email, way, &ret, ctx)
                .await;
        }
        if email.is_empty() || get("password").is_empty() {
            return Ok(self.sign_in_page(
                &parts.headers,
                StatusCode::BAD_REQUEST,
                Some("Enter your email and password."),
                email,
                &ret,
            ));
        }
        if let Err(e) = self.limit(email).await {
            return Ok(self.sign_in_page(&parts.headers, e.status, Some(&e.message), email, &ret));
        }
        match self.inner.idp.login(email, get("password"), ctx).await {
            Ok(outcome) => self.outcome(&parts.headers, outcome, email, &ret).await,
            Err(e) => {
                let e = ApiError::from_idp(Step::Login, e);
                self.inner.metrics.session_sign_in(e.code.as_str());
                Ok(self.sign_in_page(&parts.headers, e.status, Some(&e.message), email, &ret))
            }
        }
    }

    /// Tokens → a new session (the old one, if any, ends: the id is rotated at sign-in);
    /// NEW_PASSWORD_REQUIRED, a code, SELECT_MFA_TYPE or MFA_SETUP → its page; another
    /// challenge → an explanation.
    async fn outcome(
        &self,
        headers: &http::HeaderMap,
        outcome: AuthOutcome,
        email: &str,
        ret: &str,
    ) -> Result<Response<Body>, ApiError> {
        let inner = &self.inner;
        match outcome {
            AuthOutcome::Tokens(tokens) => self.signed_in(headers, tokens, false, ret).await,
            AuthOutcome::Challenge {
                name,
                session: Some(s),
                ..
            } if name == "NEW_PASSWORD_REQUIRED" => {
                let policy = self.policy_html().await;
                Ok(self.new_password_page(
                    headers,
                    StatusCode::OK,
                    None,
                    &NewPasswordForm {
                        email,
                        session: &s,
                        policy: &policy,
                        ret,
                    },
                ))
            }
            AuthOutcome::Challenge {
                name,
                session: Some(s),
                username,
                ..
            } if name == "MFA_SETUP" => {
                let username = username.unwrap_or_else(|| email.to_string());
                Ok(self
                    .start_mfa_setup(headers, email, &username, &s, ret)
                    .await)
            }
            AuthOutcome::Challenge {
                name,
                session: Some(s),
                username,
                hints,
            } if name == "SELECT_MFA_TYPE"
                && hints
                    .mfas_can_choose
                    .as_ref()
                    .is_some_and(|m| m.iter().any(|m| mfa::choice_label(m).is_some())) =>
            {
                let username = username.unwrap_or_else(|| email.to_string());
                let mfas = hints.mfas_can_choose.unwrap_or_default();
                Ok(self.select_mfa_page(
                    headers,
                    &mfa::MfaForm::choice(email, &username, &name, &s, ret),
                    &mfa::choices_html(&mfas, mfa::choice_label),
                ))
            }
            AuthOutcome::Challenge {
                name,
                session: Some(s),
                username,
                hints,
            } if name == "SELECT_CHALLENGE" => {
                let username = username.unwrap_or_else(|| email.to_string());
                Ok(self.select_challenge(
                    headers,
                    &mfa::MfaForm::choice(email, &username, &name, &s, ret),
                    &hints.available_challenges.unwrap_or_default(),
                ))
            }
            AuthOutcome::Challenge {
                name,
                session: Some(s),
                username,
                hints,
            } if mfa::code_field(&name).is_some() => {
                let hint = match (name.as_str(), hints.code_delivery_destination.as_deref()) {
                    ("SOFTWARE_TOKEN_MFA", _) => {
                        "Enter the 6-digit code from your authenticator app.".to_string()
                    }
                    (_, Some(to)) => format!("Enter the code sent to {to}."),
                    _ => "Enter the code you were sent.".to_string(),
                };
                let username = username.unwrap_or_else(|| email.to_string());
                Ok(self.mfa_page(
                    headers,
                    StatusCode::OK,
                    None,
                    &mfa::MfaForm {
                        email,
                        username: &username,
                        challenge: &name,
                        session: &s,
                        hint: &hint,
                        ret,
                    },
                ))
            }
            AuthOutcome::Challenge { name, .. } => {
                inner
                    .metrics
                    .session_sign_in(ErrorCode::UnsupportedChallenge.as_str());
                let name: String = name
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .take(64)
                    .collect();
                Ok(self.sign_in_page(
                    headers,
                    StatusCode::BAD_REQUEST,
                    Some(&format!(
                        "This account needs the {name} sign-in step, which this page does not support."
                    )),
                    email,
                    ret,
                ))
            }
        }
    }

    /// A new session from a sign-in's tokens (the old one, if any, ends: the id is rotated
    /// at sign-in), back to `ret`.
    async fn signed_in(
        &self,
        headers: &http::HeaderMap,
        tokens: crate::idp::Tokens,
        federated: bool,
        ret: &str,
    ) -> Result<Response<Body>, ApiError> {
        let inner = &self.inner;
        let _ = inner.sessions.end(headers).await;
        let id = inner
            .sessions
            .create(tokens, federated)
            .await
            .map_err(|_| {
                tracing::warn!("sign-in answered without an access token");
                ApiError::internal()
            })?;
        inner.metrics.session_sign_in("ok");
        let mut resp = redirect(ret);
        let max_age = inner.sessions.config().absolute_timeout.as_secs();
        resp.headers_mut()
            .append(SET_COOKIE, session::session_cookie(&id, max_age));
        Ok(resp)
    }

    async fn sign_out(&self, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let inner = &self.inner;
        let (parts, body) = req.into_parts();
        let form = self.form(&parts.headers, body).await?;
        if !session::csrf_matches(&parts.headers, form.get("csrf").map(String::as_str)) {
            inner.metrics.csrf_refused("form");
            return Ok(self.sign_out_page(
                &parts.headers,
                Some("This form has expired. Please try again."),
            ));
        }
        let mut resp = redirect(&inner.sessions.config().after_sign_out);
        if let Some(data) = inner.sessions.end(&parts.headers).await {
            let token = Sessions::access_token(&data);
            // Its signature and issuer are checked first (it may have expired meanwhile).
            let claims = inner.gate.verify_ignoring_expiry(token).await.ok();
            let one_session = match self.federated_sign_out(&data).await {
                Some(continued) => {
                    resp = continued;
                    true
                }
                None => self.end_at_cognito(&data).await,
            };
            // Refuse the session's tokens at every gate: this session's when only it ended,
            // every token of the user issued before now after GlobalSignOut (as
            // /api/user/logout does).
            if let Some(claims) = &claims {
                let revocation = one_session
                    .then(|| inner.gate.revoke_session(claims))
                    .flatten()
                    .unwrap_or_else(|| inner.gate.revoke(claims));
                if let Some(shared) = &inner.shared {
                    shared.publish(revocation);
                }
            }
            inner.metrics.session_sign_out();
        }
        resp.headers_mut()
            .append(SET_COOKIE, session::session_cookie("", 0));
        Ok(resp)
    }

    /// Ends a password session at Cognito: RevokeToken for its own refresh token (this
    /// browser only; `true`), or, when that is refused (an app client without token
    /// revocation, or an emulator without the operation), GlobalSignOut (every session of
    /// the user; `false`).
    async fn end_at_cognito(&self, data: &session::SessionData) -> bool {
        let idp = &self.inner.idp;
        if let Some(refresh) = Sessions::refresh_token(data) {
            match idp.revoke_token(refresh).await {
                Ok(()) => return true,
                Err(e) => tracing::info!(
                    error_class = e.class(),
                    "RevokeToken at sign-out refused; GlobalSignOut instead (every session of the user ends)"
                ),
            }
        }
        if let Err(e) = idp.global_sign_out(Sessions::access_token(data)).await {
            tracing::info!(error_class = e.class(), "GlobalSignOut at sign-out failed");
        }
        false
    }

    async fn limit(&self, email: &str) -> Result<(), ApiError> {
        self.inner
            .by_username
            .check(&email.to_lowercase())
            .await
            .map_err(|wait| {
                self.inner.metrics.rate_limited("username");
                ApiError::rate_limited(Budget::Username, wait)
            })
    }

    /// The sign-in page for a form whose CSRF token did not match.
    fn expired(&self, headers: &http::HeaderMap, email: &str, ret: &str) -> Response<Body> {
        self.inner.metrics.csrf_refused("form");
        self.sign_in_page(
            headers,
            StatusCode::FORBIDDEN,
            Some("This form has expired. Please sign in again."),
            email,
            ret,
        )
    }

    /// The sign-in page with the JSON API's answer to a refused step.
    fn refused(
        &self,
        headers: &http::HeaderMap,
        step: Step,
        e: IdpError,
        email: &str,
        ret: &str,
    ) -> Response<Body> {
        let e = ApiError::from_idp(step, e);
        self.inner.metrics.session_sign_in(e.code.as_str());
        self.sign_in_page(headers, e.status, Some(&e.message), email, ret)
    }

    async fn form(&self, headers: &http::HeaderMap, body: Incoming) -> Result<Form, ApiError> {
        let ct = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.split(';').next().is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        }) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the form as application/x-www-form-urlencoded",
            ));
        }
        let bytes: Bytes = Limited::new(body, self.inner.max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    ApiError::new(ErrorCode::PayloadTooLarge, "the form is too large")
                } else {
                    ApiError::new(
                        ErrorCode::BodyIncomplete,
                        "the form was not received completely",
                    )
                }
            })?
            .to_bytes();
        let mut form = Form::new();
        for (k, v) in form_urlencoded::parse(&bytes) {
            form.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
        Ok(form)
    }

    /// The CSRF token for a form: the pre-session cookie's, or a new one to set.
    fn csrf(&self, headers: &http::HeaderMap) -> (String, bool) {
        match session::cookie(headers, session::CSRF_COOKIE) {
            Some(t) if t.len() == 43 => (t, false),
            _ => (session::random_token(), true),
        }
    }

    fn common(&self) -> (String, String) {
        let cfg = self.inner.sessions.config();
        let logo = match &cfg.logo_url {
            Some(url) => format!(r#"<img class="logo" src="{}" alt="">"#, escape(url)),
            None => String::new(),
        };
        (cfg.title.clone(), logo)
    }

    fn sign_in_page(
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
        let forgot = format!(
            r#"<p class="links"><a href="{}/forgot-password?return={}">Forgot your password?</a></p>"#,
            escape(self.prefix()),
            escape(&recovery::query_value(&ret))
        );
        let html = render(
            &self.inner.templates.sign_in,
            &[
                ("title", &title),
                ("prefix", self.prefix()),
                ("csrf", &csrf),
                ("return", &ret),
                ("email", email),
            ],
            &[
                ("error", &error_html),
                ("logo", &logo),
                ("invalid", invalid),
                ("forgot", &forgot),
                ("providers", &self.providers_html(&ret)),
                ("codes", &self.codes_html()),
                ("fingerprint", &self.fingerprint_html()),
            ],
        );
        html_response(status, html, new.then_some(csrf))
    }

    fn sign_out_page(&self, headers: &http::HeaderMap, error: Option<&str>) -> Response<Body> {
        let (csrf, new) = self.csrf(headers);
        let (title, logo) = self.common();
        let (error_html, _) = error_parts(error);
        let status = if error.is_some() {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::OK
        };
        let html = render(
            &self.inner.templates.sign_out,
            &[
                ("title", &title),
                ("prefix", self.prefix()),
                ("csrf", &csrf),
            ],
            &[("error", &error_html), ("logo", &logo)],
        );
        let mut resp = html_response(status, html, new.then_some(csrf));
        // A federated session's sign-out continues to the pool's domain.
        if let Some(f) = &self.inner.federation {
            resp.headers_mut().insert(
                "content-security-policy",
                csp_with_form_target(&f.domain().settings().domain),
            );
        }
        resp
    }
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `303 See Other` to a path on this host (the browser follows with a GET).
pub fn redirect(to: &str) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::SEE_OTHER;
    let h = resp.headers_mut();
    h.insert(
        LOCATION,
        HeaderValue::from_str(to).unwrap_or_else(|_| HeaderValue::from_static("/")),
    );
    secure_headers(h);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_paths() {
        assert_eq!(Page::from_path("/sign-in"), Some(Page::SignIn));
        assert_eq!(Page::from_path("/sign-out"), Some(Page::SignOut));
        assert_eq!(Page::from_path("/new-password"), Some(Page::NewPassword));
        assert_eq!(Page::from_path("/mfa"), Some(Page::Mfa));
        assert_eq!(Page::from_path("/mfa-setup"), Some(Page::MfaSetup));
        assert_eq!(
            Page::from_path("/forgot-password"),
            Some(Page::ForgotPassword)
        );
        assert_eq!(
            Page::from_path("/reset-password"),
            Some(Page::ResetPassword)
        );
        assert_eq!(Page::from_path("/style.css"), Some(Page::Style));
        assert_eq!(Page::from_path("/federate"), Some(Page::Federate));
        assert_eq!(Page::from_path("/callback"), Some(Page::Callback));
        assert_eq!(Page::from_path("/other"), None);
        assert_eq!(Page::from_path(""), None);
    }
}
