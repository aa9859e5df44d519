//! Federated sign-in (`session.managed_login`): the OAuth 2.0 authorization code flow with
//! PKCE through the pool's domain, for users who sign in with an identity provider (Okta,
//! Entra ID, Google, Apple, ...) rather than a password in the pool.
//!
//! `start` makes a flow: a random `state`, `nonce` and PKCE verifier, kept server-side under
//! the state's hash (in memory, or in Redis with the fleet backend) with the return path, the
//! time it expires (`flow_timeout`) and the hash of the browser's binding cookie
//! (`__Host-sidecar-oauth`, `SameSite=Lax`). The browser is sent to `/oauth2/authorize`.
//!
//! `callback` checks the state before anything else: its record is *taken* (single use: of
//! two callbacks with one state, on any tasks, one finds it), it must not have expired and it
//! must have been started by this browser. Only then are `error=` and the code looked at; the
//! code is exchanged with the verifier, the ID token is verified (signature, `iss`, `aud`,
//! `exp`, `token_use`) with its `nonce`, the access token exactly as the gate checks requests,
//! and both must name the same user. The caller makes the session.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode};
use moka::sync::Cache;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::browser::oauth::{Authorize, Domain, DomainError};
use crate::browser::session::{self, ct_eq, hex};
use crate::fleet::Shared;
use crate::gate::Gate;
use crate::idp::Tokens;
use crate::telemetry::metrics::SharedMetrics;

/// What the server keeps for one started sign-in.
#[derive(Serialize, Deserialize)]
struct Flow {
    /// SHA-256 (hex) of the binding cookie of the browser that started it.
    binding: String,
    verifier: String,
    nonce: String,
    ret: String,
    /// Epoch seconds after which the callback is refused.
    expires: u64,
}

/// Federated sign-in's flows; cheap to clone.
#[derive(Clone)]
pub struct Federation {
    inner: Arc<Inner>,
}

struct Inner {
    domain: Arc<Domain>,
    gate: Gate,
    shared: Option<Shared>,
    metrics: SharedMetrics,
    /// Flows kept on this task (all of them without Redis; with it, only those Redis could
    /// not take).
    local: Cache<String, Arc<Flow>>,
}

/// A started sign-in: where to send the browser and the binding cookie to set.
pub struct Started {
    pub location: String,
    pub cookie: HeaderValue,
}

/// How a callback ended.
pub enum Callback {
    /// Verified tokens, and the path to return to.
    SignedIn { tokens: Tokens, ret: String },
    /// Refused: the sign-in page says `message` (generic: no detail of the provider's or the
    /// domain's answer is shown); `ret` is the flow's return path once the state was valid.
    Refused {
        status: StatusCode,
        message: &'static str,
        ret: String,
    },
}

const EXPIRED: &str = "This sign-in has expired or was already used. Please sign in again.";
const NOT_COMPLETED: &str =
    "Sign-in with your identity provider did not complete. Please try again.";
const UNAVAILABLE: &str = "Sign-in is unavailable right now. Please try again in a moment.";

impl Federation {
    pub fn new(
        domain: Arc<Domain>,
        gate: Gate,
        shared: Option<Shared>,
        metrics: SharedMetrics,
    ) -> Self {
        let ttl = domain.settings().flow_timeout;
        Federation {
            inner: Arc::new(Inner {
                domain,
                gate,
                shared,
                metrics,
                local: Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(ttl)
                    .build(),
            }),
        }
    }

    pub fn domain(&self) -> &Domain {
        &self.inner.domain
    }

    /// Whether `name` is one of the configured identity providers.
    pub fn offers(&self, name: &str) -> bool {
        self.domain()
            .settings()
            .identity_providers
            .iter()
            .any(|p| p == name)
    }

    /// Starts a sign-in with `provider` (`None`: the managed login page), returning to `ret`
    /// (already a safe return path).
    pub async fn start(&self, headers: &HeaderMap, provider: Option<&str>, ret: &str) -> Started {
        let inner = &self.inner;
        let timeout = inner.domain.settings().flow_timeout;
        let binding = match session::cookie(headers, session::FLOW_COOKIE) {
            Some(b) if b.len() == 43 => b,
            _ => session::random_token(),
        };
        let (state, nonce, verifier) = (
            session::random_token(),
            session::random_token(),
            session::random_token(),
        );
        let location = inner.domain.authorize_url(&Authorize {
            state: &state,
            nonce: &nonce,
            verifier: &verifier,
            identity_provider: provider,
        });
        let flow = Flow {
            binding: hex(&Sha256::digest(binding.as_bytes())),
            verifier,
            nonce,
            ret: ret.to_string(),
            expires: inner
                .gate
                .clock()
                .now_secs()
                .saturating_add(timeout.as_secs()),
        };
        self.keep(&key_of(&state), flow, timeout).await;
        inner.metrics.federated_sign_in("started");
        Started {
            location,
            cookie: session::flow_cookie(&binding, timeout.as_secs().max(1)),
        }
    }

    /// Checks a callback and exchanges its code (see the module docs).
    pub async fn callback(&self, headers: &HeaderMap, query: Option<&str>) -> Callback {
        let inner = &self.inner;
        let param = |name: &str| {
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let refused = |outcome: &'static str, status, message, ret: &str| {
            inner.metrics.federated_sign_in(outcome);
            Callback::Refused {
                status,
                message,
                ret: ret.to_string(),
            }
        };
        // The state first: nothing of the callback is read before it is known good.
        let flow = match param("state") {
            Some(state) if !state.is_empty() && state.len() <= 128 => {
                self.take(&key_of(&state)).await
            }
            _ => None,
        };
        let Some(flow) = flow else {
            return refused("state_invalid", StatusCode::BAD_REQUEST, EXPIRED, "/");
        };
        let binding = session::cookie(headers, session::FLOW_COOKIE)
            .map(|b| hex(&Sha256::digest(b.as_bytes())));
        if !binding.is_some_and(|b| ct_eq(b.as_bytes(), flow.binding.as_bytes())) {
            tracing::info!("federated sign-in callback from another browser refused");
            return refused("state_invalid", StatusCode::BAD_REQUEST, EXPIRED, "/");
        }
        if inner.gate.clock().now_secs() >= flow.expires {
            return refused("state_expired", StatusCode::BAD_REQUEST, EXPIRED, &flow.ret);
        }
        if let Some(error) = param("error") {
            // The provider's or the domain's refusal (a cancel, a user not allowed, ...).
            let error = crate::browser::oauth::error_code(&error);
            tracing::info!(error = %error, "federated sign-in ended with an error");
            return refused(
                "provider_error",
                StatusCode::BAD_REQUEST,
                NOT_COMPLETED,
                &flow.ret,
            );
        }
        let Some(code) = param("code").filter(|c| !c.is_empty() && c.len() <= 2048) else {
            return refused(
                "provider_error",
                StatusCode::BAD_REQUEST,
                NOT_COMPLETED,
                &flow.ret,
            );
        };
        let tokens = match inner.domain.exchange(&code, &flow.verifier).await {
            Ok(t) => t,
            Err(DomainError::Refused(e)) => {
                tracing::info!(error = %e, "the token endpoint refused the code");
                return refused(
                    "code_refused",
                    StatusCode::BAD_REQUEST,
                    NOT_COMPLETED,
                    &flow.ret,
                );
            }
            Err(DomainError::Unavailable) => {
                tracing::warn!("the token endpoint did not answer usably");
                return refused(
                    "domain_unavailable",
                    StatusCode::BAD_GATEWAY,
                    UNAVAILABLE,
                    &flow.ret,
                );
            }
        };
        match self.verify(&tokens, &flow.nonce).await {
            Ok(()) => {
                inner.metrics.federated_sign_in("ok");
                Callback::SignedIn {
                    tokens,
                    ret: flow.ret.clone(),
                }
            }
            Err(why) => {
                tracing::warn!(reason = why, "federated sign-in's tokens refused");
                refused(
                    "tokens_invalid",
                    StatusCode::BAD_GATEWAY,
                    NOT_COMPLETED,
                    &flow.ret,
                )
            }
        }
    }

    /// The ID token (for our client, with our nonce) and the access token (as the gate checks
    /// requests), of one user.
    async fn verify(&self, tokens: &Tokens, nonce: &str) -> Result<(), &'static str> {
        let inner = &self.inner;
        let id_token = tokens.id_token.as_deref().ok_or("no id token")?;
        let access = tokens.access_token.as_deref().ok_or("no access token")?;
        let id = inner
            .gate
            .verify_id(id_token, inner.domain.client_id())
            .await
            .map_err(|_| "id token")?;
        match id.map.get("nonce").and_then(Value::as_str) {
            Some(n) if ct_eq(n.as_bytes(), nonce.as_bytes()) => {}
            _ => return Err("nonce"),
        }
        let access = inner.gate.check(access).await.map_err(|_| "access token")?;
        if access.claims.sub != id.sub {
            return Err("the tokens name different users");
        }
        Ok(())
    }

    async fn keep(&self, key: &str, flow: Flow, ttl: Duration) {
        let inner = &self.inner;
        if let Some(shared) = &inner.shared {
            match serde_json::to_string(&flow) {
                Ok(json) if shared.flow_put(key, &json, ttl).await.is_ok() => return,
                _ => tracing::warn!(
                    "could not keep a sign-in in the shared store; its callback must reach this task"
                ),
            }
        }
        inner.local.insert(key.to_string(), Arc::new(flow));
    }

    async fn take(&self, key: &str) -> Option<Arc<Flow>> {
        let inner = &self.inner;
        if let Some(f) = inner.local.remove(key) {
            return Some(f);
        }
        let json = inner.shared.as_ref()?.flow_take(key).await.ok()??;
        serde_json::from_str(&json).ok().map(Arc::new)
    }
}

/// The store key of a state: its SHA-256, so neither the store nor a log holds the state.
fn key_of(state: &str) -> String {
    hex(&Sha256::digest(state.as_bytes()))
}
