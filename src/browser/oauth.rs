//! The pool's domain (Cognito's managed login) as an OAuth 2.0 client sees it: the URLs the
//! browser is sent to (`/oauth2/authorize`, `/logout`) and the calls the sidecar makes
//! itself (`/oauth2/token` for the code and for refreshes, `/oauth2/revoke`). The client
//! authenticates with HTTP Basic when the app client has a secret (Cognito's
//! `client_secret_basic`); PKCE is S256, the only method Cognito supports.
//!
//! Nothing here logs a code, a verifier or a token; errors carry only the OAuth `error` code
//! the domain answered (a fixed vocabulary, filtered to `[a-z_]`).

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::idp::Tokens;
use crate::telemetry::trace;

/// The validated `session.managed_login` settings (built by `Config::validate`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `https://host[:port]`, no trailing slash.
    pub domain: String,
    pub callback_url: String,
    pub sign_out_url: String,
    pub identity_providers: Vec<String>,
    pub other_ways: bool,
    pub auto_redirect: bool,
    /// Space-separated.
    pub scopes: String,
    pub flow_timeout: Duration,
    pub timeout: Duration,
}

/// What a call to the domain ended with, when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The domain refused the request with an OAuth error code (`invalid_grant`, ...).
    #[error("the domain refused the request: {0}")]
    Refused(String),
    /// No usable answer: unreachable, timed out, a 5xx or a body that is not the protocol's.
    #[error("the domain did not answer usably")]
    Unavailable,
}

/// The domain's endpoints for one app client.
pub struct Domain {
    s: Settings,
    client_id: String,
    secret: Option<String>,
    http: reqwest::Client,
}

/// The parameters of one authorization request.
pub struct Authorize<'a> {
    pub state: &'a str,
    pub nonce: &'a str,
    pub verifier: &'a str,
    /// `None`: the managed login page itself, with every way the client allows.
    pub identity_provider: Option<&'a str>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    id_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
    token_type: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: Option<String>,
}

impl Domain {
    /// `http` should not follow redirects (the token endpoint never redirects).
    pub fn new(s: Settings, client_id: &str, secret: Option<&str>, http: reqwest::Client) -> Self {
        Domain {
            s,
            client_id: client_id.to_string(),
            secret: secret.map(str::to_string),
            http,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.s
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The authorization URL the browser is sent to.
    pub fn authorize_url(&self, a: &Authorize<'_>) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.s.callback_url)
            .append_pair("scope", &self.s.scopes)
            .append_pair("state", a.state)
            .append_pair("nonce", a.nonce)
            .append_pair("code_challenge", &challenge(a.verifier))
            .append_pair("code_challenge_method", "S256");
        if let Some(idp) = a.identity_provider {
            q.append_pair("identity_provider", idp);
        }
        format!("{}/oauth2/authorize?{}", self.s.domain, q.finish())
    }

    /// Cognito's sign-out URL: it ends the managed-login session and returns the browser to
    /// `sign_out_url`.
    pub fn logout_url(&self) -> String {
        let q = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.client_id)
            .append_pair("logout_uri", &self.s.sign_out_url)
            .finish();
        format!("{}/logout?{q}", self.s.domain)
    }

    /// The authorization code for tokens (with the PKCE verifier).
    pub async fn exchange(&self, code: &str, verifier: &str) -> Result<Tokens, DomainError> {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("client_id", &self.client_id)
            .append_pair("code", code)
            .append_pair("redirect_uri", &self.s.callback_url)
            .append_pair("code_verifier", verifier)
            .finish();
        self.tokens(body).await
    }

    /// A refresh token for new access and ID tokens (Cognito returns no new refresh token
    /// unless the client rotates them; then the new one replaces the old).
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, DomainError> {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("client_id", &self.client_id)
            .append_pair("refresh_token", refresh_token)
            .finish();
        self.tokens(body).await
    }

    /// Revokes a refresh token and the access tokens issued from it (`/oauth2/revoke`).
    pub async fn revoke(&self, refresh_token: &str) -> Result<(), DomainError> {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", refresh_token)
            .append_pair("client_id", &self.client_id)
            .finish();
        let resp = self.post("/oauth2/revoke", body).await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(refusal(resp).await)
        }
    }

    async fn tokens(&self, body: String) -> Result<Tokens, DomainError> {
        let resp = self.post("/oauth2/token", body).await?;
        if !resp.status().is_success() {
            return Err(refusal(resp).await);
        }
        let t: TokenAnswer = resp.json().await.map_err(|_| DomainError::Unavailable)?;
        Ok(Tokens {
            access_token: t.access_token,
            id_token: t.id_token,
            refresh_token: t.refresh_token,
            expires_in: t.expires_in.and_then(|e| i32::try_from(e).ok()),
            token_type: t.token_type,
        })
    }

    async fn post(&self, path: &str, body: String) -> Result<reqwest::Response, DomainError> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.s.domain))
            .timeout(self.s.timeout)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(body);
        if let Some(secret) = &self.secret {
            let basic = STANDARD.encode(format!("{}:{secret}", self.client_id));
            req = req.header(AUTHORIZATION, format!("Basic {basic}"));
        }
        let sent = trace::in_span(
            path.to_string(),
            trace::Kind::Client,
            || {
                vec![trace::Attribute::new(
                    "server.address",
                    self.s.domain.clone(),
                )]
            },
            req.send(),
            |r| match r {
                Ok(resp) if resp.status().is_success() => None,
                Ok(_) => Some("refused"),
                Err(_) => Some("unavailable"),
            },
        )
        .await;
        sent.map_err(|_| DomainError::Unavailable)
    }
}

/// A 4xx with the protocol's `{"error": ...}` is a refusal; anything else is unavailability.
async fn refusal(resp: reqwest::Response) -> DomainError {
    if !resp.status().is_client_error() {
        return DomainError::Unavailable;
    }
    match resp.json::<ErrorAnswer>().await {
        Ok(ErrorAnswer { error: Some(e) }) => DomainError::Refused(error_code(&e)),
        _ => DomainError::Unavailable,
    }
}

/// An OAuth error code as it may be logged: `[a-z_]`, at most 40 characters.
pub fn error_code(raw: &str) -> String {
    let code: String = raw
        .chars()
        .filter(|c| c.is_ascii_lowercase() || *c == '_')
        .take(40)
        .collect();
    if code.is_empty() {
        "unknown".into()
    } else {
        code
    }
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2).
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(secret: Option<&str>) -> Domain {
        Domain::new(
            Settings {
                domain: "https://example.auth.us-east-1.amazoncognito.com".into(),
                callback_url: "https://app.example.com/_auth/callback".into(),
                sign_out_url: "https://app.example.com/_auth/sign-in".into(),
                identity_providers: vec!["Okta".into()],
                other_ways: false,
                auto_redirect: false,
                scopes: "openid email".into(),
                flow_timeout: Duration::from_secs(300),
                timeout: Duration::from_secs(5),
            },
            "client1",
            secret,
            reqwest::Client::new(),
        )
    }

    #[test]
    fn pkce_challenge_is_unpadded_base64url_of_sha256() {
        // Computed apart: python3 -c 'import hashlib, base64;
        // print(base64.urlsafe_b64encode(hashlib.sha256(b"dBjf...").digest()).rstrip(b"="))'
        assert_eq!(
            challenge("dBjftJeZ4CVP-mJ92K9iV0bkGA0DmbZbvbzVcTUv-i8"),
            "d-k7qZJcRZTkgC8SwhUiLxXiPhsVVfBvdacinNvDehA"
        );
    }

    #[test]
    fn authorize_url_has_every_parameter_encoded() {
        let d = domain(None);
        let url = d.authorize_url(&Authorize {
            state: "st",
            nonce: "no",
            verifier: "dBjftJeZ4CVP-mJ92K9iV0bkGA0DmbZbvbzVcTUv-i8",
            identity_provider: Some("Okta"),
        });
        assert_eq!(
            url,
            "https://example.auth.us-east-1.amazoncognito.com/oauth2/authorize?\
             response_type=code&client_id=client1\
             &redirect_uri=https%3A%2F%2Fapp.example.com%2F_auth%2Fcallback\
             &scope=openid+email&state=st&nonce=no\
             &code_challenge=d-k7qZJcRZTkgC8SwhUiLxXiPhsVVfBvdacinNvDehA\
             &code_challenge_method=S256&identity_provider=Okta"
        );
        let other = d.authorize_url(&Authorize {
            state: "st",
            nonce: "no",
            verifier: "v",
            identity_provider: None,
        });
        assert!(!other.contains("identity_provider"));
    }

    #[test]
    fn logout_url_names_the_client_and_the_sign_out_url() {
        assert_eq!(
            domain(None).logout_url(),
            "https://example.auth.us-east-1.amazoncognito.com/logout?client_id=client1\
             &logout_uri=https%3A%2F%2Fapp.example.com%2F_auth%2Fsign-in"
        );
    }

    #[test]
    fn error_codes_are_filtered_for_the_log() {
        for (raw, logged) in [
            ("invalid_grant", "invalid_grant"),
            (
                "invalid_grant\nforged log line",
                "invalid_grantforgedlogline",
            ),
            ("", "unknown"),
            ("ÄÖ", "unknown"),
            (&"a".repeat(100), &"a".repeat(40)),
        ] {
            assert_eq!(error_code(raw), logged, "{raw:?}");
        }
    }
}
