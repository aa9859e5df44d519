//! The pages' side of federated sign-in (`browser::federated` owns the flow): the provider
//! buttons on the sign-in page, `{prefix}/federate` (start, then off to the pool's domain),
//! `{prefix}/callback` (back from it: a session, or the sign-in page with a generic message),
//! and the sign-out that continues to Cognito's `/logout`.

use http::header::{LOCATION, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::browser::federated::{Callback, Federation};
use crate::browser::session::{self, SessionData, Sessions};
use crate::error::{ApiError, ErrorCode};
use crate::http::body::Body;

use super::{query_param, recovery, redirect, Pages};
use crate::browser::templates::escape;

impl Pages {
    fn federation(&self) -> Result<&Federation, ApiError> {
        self.inner
            .federation
            .as_ref()
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "not found"))
    }

    /// The one provider the sign-in page sends every browser to (`auto_redirect`).
    pub(super) fn auto_redirect(&self) -> Option<&str> {
        let f = self.inner.federation.as_ref()?;
        let s = f.domain().settings();
        match s.identity_providers.as_slice() {
            [only] if s.auto_redirect && !s.other_ways => Some(only),
            _ => None,
        }
    }

    /// `GET {prefix}/federate?provider=<name>&return=<path>`: starts a sign-in with one of
    /// the configured providers (no `provider`: the managed login page, when `other_ways`).
    pub(super) async fn federate(
        &self,
        req: &Request<Incoming>,
    ) -> Result<Response<Body>, ApiError> {
        let f = self.federation()?;
        let ret =
            session::safe_return(&query_param(req.uri().query(), "return").unwrap_or_default());
        let provider = query_param(req.uri().query(), "provider").filter(|p| !p.is_empty());
        let allowed = match provider.as_deref() {
            Some(p) => f.offers(p),
            None => f.domain().settings().other_ways,
        };
        if !allowed {
            return Ok(self.sign_in_page(
                req.headers(),
                StatusCode::BAD_REQUEST,
                Some("That way of signing in is not offered here."),
                "",
                &ret,
            ));
        }
        Ok(self
            .start_flow(req.headers(), provider.as_deref(), &ret)
            .await)
    }

    /// A started flow's answer: off to the pool's domain, with the binding cookie.
    pub(super) async fn start_flow(
        &self,
        headers: &HeaderMap,
        provider: Option<&str>,
        ret: &str,
    ) -> Response<Body> {
        let Some(f) = self.inner.federation.as_ref() else {
            return redirect(&format!("{}/sign-in", self.prefix()));
        };
        let started = f.start(headers, provider, ret).await;
        let mut resp = external_redirect(&started.location);
        resp.headers_mut().append(SET_COOKIE, started.cookie);
        resp
    }

    /// `GET {prefix}/callback?code=...&state=...` (or `error=...`).
    pub(super) async fn callback(
        &self,
        req: &Request<Incoming>,
    ) -> Result<Response<Body>, ApiError> {
        let f = self.federation()?;
        match f.callback(req.headers(), req.uri().query()).await {
            Callback::SignedIn { tokens, ret } => {
                self.signed_in(req.headers(), tokens, true, &ret).await
            }
            Callback::Refused {
                status,
                message,
                ret,
            } => Ok(self.sign_in_page(req.headers(), status, Some(message), "", &ret)),
        }
    }

    /// The provider buttons of the sign-in page (raw HTML; names are validated at start-up
    /// and escaped anyway).
    pub(super) fn providers_html(&self, ret: &str) -> String {
        let Some(f) = self.inner.federation.as_ref() else {
            return String::new();
        };
        let s = f.domain().settings();
        let ret = escape(&recovery::query_value(ret));
        let prefix = escape(self.prefix());
        let mut html = String::from(r#"<div class="providers">"#);
        for p in &s.identity_providers {
            html.push_str(&format!(
                r#"<a class="provider" href="{prefix}/federate?provider={}&amp;return={ret}">Continue with {}</a>"#,
                escape(&recovery::query_value(p)),
                escape(p)
            ));
        }
        if s.other_ways {
            html.push_str(&format!(
                r#"<a class="provider" href="{prefix}/federate?return={ret}">Use another way to sign in</a>"#
            ));
        }
        html.push_str("</div>");
        html.push_str(r#"<p class="hint">Or sign in with your email and password:</p>"#);
        html
    }

    /// Sign-out of a federated session: its refresh token (and the access tokens issued from
    /// it) revoked at the domain, then on to Cognito's `/logout`, which ends the managed-login
    /// session and returns to `sign_out_url`. `None` for a password session.
    pub(super) async fn federated_sign_out(&self, data: &SessionData) -> Option<Response<Body>> {
        let f = self.inner.federation.as_ref()?;
        if !Sessions::is_federated(data) {
            return None;
        }
        if let Some(refresh) = Sessions::refresh_token(data) {
            if let Err(e) = f.domain().revoke(refresh).await {
                tracing::info!(error = %e, "revoking a federated session's refresh token failed");
            }
        }
        Some(external_redirect(&f.domain().logout_url()))
    }
}

/// `303 See Other` to the pool's domain (a URL validated at start-up).
fn external_redirect(to: &str) -> Response<Body> {
    let mut resp = redirect("/");
    match HeaderValue::from_str(to) {
        Ok(v) => {
            resp.headers_mut().insert(LOCATION, v);
        }
        Err(_) => *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR,
    }
    resp
}
