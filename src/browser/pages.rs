//! The sidecar's own pages for browser sessions, under `session.prefix` (default `/_auth`):
//! sign-in, new password (Cognito's NEW_PASSWORD_REQUIRED) and sign-out, over the same Cognito
//! calls as the JSON API, with its error messages (no user enumeration).
//!
//! Plain HTML forms that work without JavaScript: labelled fields, the first one focused,
//! errors announced (`role="alert"`, `aria-describedby`). Every page is sent with a strict
//! `Content-Security-Policy` (no script at all), `X-Frame-Options: DENY` and
//! `Cache-Control: no-store`. Each form carries a CSRF token bound to the pre-session cookie
//! `__Host-sidecar-csrf`. Operators may replace the three templates (`session.templates_dir`);
//! every placeholder is HTML-escaped except `{{error}}` and `{{logo}}`, which the sidecar builds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::browser::session::{self, Sessions};
use crate::error::{ApiError, Budget, ErrorCode};
use crate::fleet::Shared;
use crate::gate::Gate;
use crate::http::body::{full, Body};
use crate::idp::{AuthOutcome, Cognito, Step};
use crate::limit::Limiter;
use crate::telemetry::metrics::SharedMetrics;

use super::templates::{
    error_parts, escape, html_response, render, secure_headers, style, Templates,
};

/// A page of the sidecar's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    SignIn,
    NewPassword,
    /// The code of an MFA challenge (authenticator app, SMS or email).
    Mfa,
    SignOut,
    Style,
}

impl Page {
    /// The page for `rest`, the path after `session.prefix`.
    pub fn from_path(rest: &str) -> Option<Page> {
        match rest {
            "/sign-in" => Some(Page::SignIn),
            "/new-password" => Some(Page::NewPassword),
            "/mfa" => Some(Page::Mfa),
            "/sign-out" => Some(Page::SignOut),
            "/style.css" => Some(Page::Style),
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
    metrics: SharedMetrics,
    templates: Templates,
    max_body: usize,
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
        metrics: SharedMetrics,
        templates: Templates,
        max_body: usize,
    ) -> Self {
        Pages {
            inner: Arc::new(Inner {
                sessions,
                idp,
                gate,
                shared,
                by_username,
                metrics,
                templates,
                max_body,
            }),
        }
    }

    /// Serves one page request. `Err` only for what the JSON error path answers (wrong
    /// method, oversized or unreadable bodies).
    pub async fn serve(
        &self,
        page: Page,
        req: Request<Incoming>,
        _peer: IpAddr,
    ) -> Result<Response<Body>, ApiError> {
        let method = req.method().clone();
        match (page, &method) {
            (Page::Style, &Method::GET | &Method::HEAD) => Ok(style()),
            (Page::SignIn, &Method::GET | &Method::HEAD) => {
                let ret = query_param(req.uri().query(), "return").unwrap_or_default();
                Ok(self.sign_in_page(req.headers(), StatusCode::OK, None, "", &ret))
            }
            (Page::SignIn, &Method::POST) => self.sign_in(req).await,
            (Page::NewPassword, &Method::POST) => self.new_password(req).await,
            (Page::Mfa, &Method::POST) => self.mfa(req).await,
            (Page::Mfa, &Method::GET | &Method::HEAD) => {
                Ok(redirect(&format!("{}/sign-in", self.prefix())))
            }
            (Page::NewPassword, &Method::GET | &Method::HEAD) => {
                Ok(redirect(&format!("{}/sign-in", self.prefix())))
            }
            (Page::SignOut, &Method::GET | &Method::HEAD) => {
                Ok(self.sign_out_page(req.headers(), None))
            }
            (Page::SignOut, &Method::POST) => self.sign_out(req).await,
            (Page::Style, _) => Err(ApiError::method_not_allowed("GET, HEAD")),
            _ => Err(ApiError::method_not_allowed("GET, HEAD, POST")),
        }
    }

    fn prefix(&self) -> &str {
        &self.inner.sessions.config().prefix
    }

    async fn sign_in(&self, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let (parts, body) = req.into_parts();
        let form = self.form(&parts.headers, body).await?;
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
        match self.inner.idp.login(email, get("password")).await {
            Ok(outcome) => self.outcome(&parts.headers, outcome, email, &ret).await,
            Err(e) => {
                let e = ApiError::from_idp(Step::Login, e);
                self.inner.metrics.session_sign_in(e.code.as_str());
                Ok(self.sign_in_page(&parts.headers, e.status, Some(&e.message), email, &ret))
            }
        }
    }

    async fn new_password(&self, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let (parts, body) = req.into_parts();
        let form = self.form(&parts.headers, body).await?;
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
        if new.is_empty() {
            return Ok(self.new_password_page(
                &parts.headers,
                StatusCode::BAD_REQUEST,
                Some("Enter a new password."),
                email,
                cognito_session,
                &ret,
            ));
        }
        match self
            .inner
            .idp
            .new_password(email, new, cognito_session)
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
                        email,
                        cognito_session,
                        &ret,
                    ))
                } else {
                    Ok(self.sign_in_page(&parts.headers, e.status, Some(&e.message), email, &ret))
                }
            }
        }
    }

    /// Tokens → a new session (the old one, if any, ends: the id is rotated at sign-in);
    /// NEW_PASSWORD_REQUIRED → its page; another challenge → an explanation.
    async fn outcome(
        &self,
        headers: &http::HeaderMap,
        outcome: AuthOutcome,
        email: &str,
        ret: &str,
    ) -> Result<Response<Body>, ApiError> {
        let inner = &self.inner;
        match outcome {
            AuthOutcome::Tokens(tokens) => {
                let _ = inner.sessions.end(headers).await;
                let id = inner.sessions.create(tokens).await.map_err(|_| {
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
            AuthOutcome::Challenge {
                name,
                session: Some(s),
                ..
            } if name == "NEW_PASSWORD_REQUIRED" => {
                Ok(self.new_password_page(headers, StatusCode::OK, None, email, &s, ret))
            }
            AuthOutcome::Challenge {
                name,
                session: Some(s),
                username,
                hints,
            } if code_field(&name).is_some() => {
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
                    &MfaForm {
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

    /// The code of an MFA challenge: RespondToAuthChallenge (admin or not, as configured).
    async fn mfa(&self, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let (parts, body) = req.into_parts();
        let form = self.form(&parts.headers, body).await?;
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
            self.inner.metrics.csrf_refused("form");
            return Ok(self.sign_in_page(
                &parts.headers,
                StatusCode::FORBIDDEN,
                Some("This form has expired. Please sign in again."),
                email,
                &ret,
            ));
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
        let who = if username.is_empty() { email } else { username };
        let name = aws_sdk_cognitoidentityprovider::types::ChallengeNameType::from(challenge);
        match self
            .inner
            .idp
            .respond(name, who, get("session"), &[(field, code)])
            .await
        {
            Ok(outcome) => self.outcome(&parts.headers, outcome, email, &ret).await,
            Err(e) => {
                let e = ApiError::from_idp(Step::MfaAnswer, e);
                self.inner.metrics.session_sign_in(e.code.as_str());
                if matches!(
                    e.code,
                    ErrorCode::InvalidCode | ErrorCode::ExpiredCode | ErrorCode::RateLimited
                ) {
                    Ok(again(e.status, &e.message))
                } else {
                    Ok(self.sign_in_page(&parts.headers, e.status, Some(&e.message), email, &ret))
                }
            }
        }
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
        if let Some(data) = inner.sessions.end(&parts.headers).await {
            let token = Sessions::access_token(&data);
            // Refuse the session's tokens at every gate, as /api/user/logout does; its
            // signature and issuer are checked first (it may have expired meanwhile).
            if let Ok(claims) = inner.gate.verify_ignoring_expiry(token).await {
                let revocation = inner.gate.revoke(&claims);
                if let Some(shared) = &inner.shared {
                    shared.publish(revocation);
                }
            }
            if let Err(e) = inner.idp.global_sign_out(token).await {
                tracing::info!(error_class = e.class(), "GlobalSignOut at sign-out failed");
            }
            inner.metrics.session_sign_out();
        }
        let mut resp = redirect(&inner.sessions.config().after_sign_out);
        resp.headers_mut()
            .append(SET_COOKIE, session::session_cookie("", 0));
        Ok(resp)
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
            ],
        );
        html_response(status, html, new.then_some(csrf))
    }

    fn new_password_page(
        &self,
        headers: &http::HeaderMap,
        status: StatusCode,
        error: Option<&str>,
        email: &str,
        cognito_session: &str,
        ret: &str,
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
                ("return", ret),
                ("email", email),
                ("session", cognito_session),
            ],
            &[
                ("error", &error_html),
                ("logo", &logo),
                ("invalid", invalid),
            ],
        );
        html_response(status, html, new.then_some(csrf))
    }

    fn mfa_page(
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
        html_response(status, html, new.then_some(csrf))
    }
}

/// What the MFA page carries from one step to the next.
struct MfaForm<'a> {
    email: &'a str,
    /// Cognito's canonical username for the challenge (the email when it gave none).
    username: &'a str,
    challenge: &'a str,
    session: &'a str,
    hint: &'a str,
    ret: &'a str,
}

/// The challenge response field of a code challenge the pages answer.
fn code_field(challenge: &str) -> Option<&'static str> {
    match challenge {
        "SOFTWARE_TOKEN_MFA" => Some("SOFTWARE_TOKEN_MFA_CODE"),
        "SMS_MFA" => Some("SMS_MFA_CODE"),
        "EMAIL_OTP" => Some("EMAIL_OTP_CODE"),
        _ => None,
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
        assert_eq!(
            code_field("SOFTWARE_TOKEN_MFA"),
            Some("SOFTWARE_TOKEN_MFA_CODE")
        );
        assert_eq!(code_field("SMS_MFA"), Some("SMS_MFA_CODE"));
        assert_eq!(code_field("EMAIL_OTP"), Some("EMAIL_OTP_CODE"));
        assert_eq!(code_field("CUSTOM_CHALLENGE"), None);
        assert_eq!(Page::from_path("/style.css"), Some(Page::Style));
        assert_eq!(Page::from_path("/other"), None);
        assert_eq!(Page::from_path(""), None);
    }
}
