//! The composition root: turns a validated configuration (`settings`) into the long-lived
//! parts (the Cognito SDK client, the JWKS cache and verifier, the gate, the fleet backend,
//! the limiters, sessions and pages, the pooled upstream client) once, and hands them to
//! `request::Service`, which every request goes through. Also renders the front proxies'
//! configurations (`front_config`). The only module that reads the whole `Config`.

pub mod front_config;
mod session_settings;
pub mod settings;

use std::net::SocketAddr;
use std::sync::Arc;

use aws_config::SdkConfig;
use http::{Request, Response};
use hyper::body::Incoming;

use crate::auth_api::AuthApi;
use crate::browser::federated::Federation;
use crate::browser::oauth::Domain;
use crate::browser::pages::Pages;
use crate::browser::session::Sessions;
use crate::clock::Clock;
use crate::config::{Config, ConfigError};
use crate::fleet::Shared;
use crate::gate::verify::{self, JwksCache, JwksSettings, Verifier, VerifierSettings};
use crate::gate::Gate;
use crate::http::body::Body;
use crate::idp::{Cognito, CognitoSettings};
use crate::limit::{Limiter, Quota, RecoveryLimits};
use crate::request::{Listener, Service};
use crate::telemetry::metrics::{JwksStats, Metrics, SharedMetrics};
use crate::telemetry::trace::Traces;
use crate::upstream::tunnel::Tunnels;
use crate::upstream::Upstream;
use settings::Derived;

/// The whole sidecar behind the listener; cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Service>,
    /// The listener this handle serves (`check_listener` makes the forward-auth one).
    listener: Listener,
}

/// Why the app could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("could not build the HTTP client: {0}")]
    Client(String),
    #[error("could not build the trace exporter: {0}")]
    Traces(String),
}

impl App {
    /// Validates `config` and builds every client. `sdk` carries the AWS credentials chain
    /// (the default chain in `main`, static test credentials in tests).
    pub fn build(config: &Config, sdk: &SdkConfig) -> Result<App, BuildError> {
        let d = config.validate()?;
        Self::build_validated(config, &d, sdk, Clock::system())
    }

    /// `build` for a configuration `Config::validate` already accepted, with what it
    /// derived (the binary validates once, before it picks the SDK's region), reading every
    /// expiry on `clock` (tests move an adjustable one instead of sleeping).
    pub fn build_validated(
        config: &Config,
        d: &Derived,
        sdk: &SdkConfig,
        clock: Clock,
    ) -> Result<App, BuildError> {
        let metrics: SharedMetrics = Arc::new(Metrics::new());
        let traces = Traces::new(&config.traces)
            .map_err(BuildError::Traces)?
            .map(Arc::new);
        let c = &config.cognito;
        let idp = Arc::new(Cognito::new(
            sdk,
            CognitoSettings {
                region: d.region.clone(),
                user_pool_id: d.user_pool_id.clone(),
                client_id: d.client_id.clone(),
                client_secret: c.client_secret.clone(),
                endpoint_url: c.endpoint_url.clone(),
                flow: c.auth_flow,
                timeout: c.timeout,
                max_attempts: c.max_attempts,
                refresh_rotation: c.refresh_token_rotation,
                context_data: c.context_data,
                // Cognito reads UserContextData only from clients with a secret.
                user_context_data: c.propagate_user_context && c.client_secret.is_some(),
                server_name: c.server_name.clone(),
                user_auth: c.choice_based_sign_in,
            },
            Arc::clone(&metrics),
        ));

        let v = &config.verify;
        let http = reqwest::Client::builder()
            .timeout(v.jwks_timeout)
            .connect_timeout(v.jwks_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cognito-sidecar/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BuildError::Client(e.to_string()))?;
        let algorithm = d.algorithm;
        // One key cache per pool, each with its own cooldown and counters.
        let jwks = |url: &str| {
            JwksCache::new(
                JwksSettings {
                    url: url.to_string(),
                    algorithm: verify::alg_name(algorithm),
                    max_bytes: v.jwks_max_bytes,
                    cooldown: v.jwks_cooldown,
                    refresh_interval: v.jwks_refresh_interval,
                },
                http.clone(),
            )
        };
        let mut verifier = Verifier::new(
            VerifierSettings {
                issuer: d.issuer.clone(),
                algorithm,
                accept_access: d.accept_access,
                accept_id: d.accept_id,
                client_ids: d.client_ids.clone(),
                leeway_secs: v.leeway.as_secs(),
            },
            jwks(&d.jwks_url),
        )
        .first_pool(&v.pool_name, &d.replica_issuers);
        for (pool, url) in &d.pools {
            verifier = verifier.with_pool(pool.clone(), jwks(url));
        }
        let gate = Gate::new(
            verifier,
            d.identity.clone(),
            v.cache_max_entries,
            v.revocation_ttl,
            Arc::clone(&metrics),
            clock,
        );
        let shared = d.redis.clone().map(|client| {
            Shared::new(
                &config.shared,
                client,
                gate.revocations().clone(),
                Arc::clone(&metrics),
            )
        });
        let rl = &config.rate_limit;
        let mut by_username = Limiter::new(
            Quota {
                per_minute: rl.username_per_minute,
                burst: rl.username_burst,
            },
            rl.max_tracked,
        );
        let mut by_address = Limiter::new(
            Quota {
                per_minute: rl.address_per_minute,
                burst: rl.address_burst,
            },
            rl.max_tracked,
        );
        if let Some(s) = &shared {
            by_username = by_username.with_shared(s.clone(), "username");
            by_address = by_address.with_shared(s.clone(), "address");
        }
        let by_username = Arc::new(by_username);
        let recovery = Arc::new(RecoveryLimits::new(
            rl,
            shared.as_ref(),
            Arc::clone(&metrics),
        ));
        let (sessions, pages) = if let Some(templates) = d.templates.clone() {
            // Federated sign-in: the pool's domain with the auth API's app client.
            let domain = d.managed_login.clone().map(|s| {
                let (client_id, secret) = idp.client_credentials();
                Arc::new(Domain::new(s, client_id, secret, http.clone()))
            });
            let federation = domain.as_ref().map(|d| {
                Federation::new(
                    Arc::clone(d),
                    gate.clone(),
                    shared.clone(),
                    Arc::clone(&metrics),
                )
            });
            let sessions = Sessions::new(
                &config.session,
                Arc::clone(&idp),
                gate.clone(),
                shared.clone(),
                Arc::clone(&metrics),
                domain,
            );
            let pages = Pages::new(
                sessions.clone(),
                Arc::clone(&idp),
                gate.clone(),
                shared.clone(),
                Arc::clone(&by_username),
                Arc::clone(&recovery),
                Arc::clone(&metrics),
                templates,
                config.api.max_body_bytes,
                &config.api.totp_issuer,
                federation,
                config.session.device_fingerprint.then(|| {
                    crate::browser::pages::Fingerprint::new(
                        &d.region,
                        &d.user_pool_id,
                        &d.client_id,
                    )
                }),
            );
            (Some(sessions), Some(pages))
        } else {
            (None, None)
        };
        let upstream = Upstream::new(&config.upstream);
        let policy = config.policy(d, gate.identity_headers_arc());
        let tunnels = Tunnels::new(&config.server, Arc::clone(&metrics));
        let upstream = upstream.with_tunnels(tunnels.clone());
        Ok(App {
            inner: Arc::new(Service {
                router: config.router(),
                auth: AuthApi::new(
                    idp,
                    gate.clone(),
                    &config.api,
                    v.max_token_bytes,
                    by_username,
                    Arc::clone(&recovery),
                    shared.clone(),
                    Arc::clone(&metrics),
                ),
                shared,
                sessions,
                pages,
                gate,
                upstream,
                policy,
                tunnels,
                max_token_bytes: v.max_token_bytes,
                access_log: config.log.access,
                metrics,
                by_address,
                openapi: openapi_document(config),
                forward_auth: config.forward_auth.clone(),
                traces,
                answer_warned: std::sync::Mutex::new(None),
            }),
            listener: Listener::Main,
        })
    }

    /// Starts the background JWKS loader/refresher (fetches immediately).
    /// Starts the background work: the JWKS loader/refresher (fetches immediately) and, with
    /// the fleet backend, its connection, subscriber and writer.
    pub fn start_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks: Vec<_> = self
            .inner
            .gate
            .verifier()
            .pools()
            .map(|(_, jwks)| {
                // With traces on, each fetch is a root span.
                let cx = self.inner.traces.as_ref().map(|t| t.background());
                jwks.spawn_refresher(cx)
            })
            .collect();
        if let Some(shared) = &self.inner.shared {
            tasks.extend(shared.start());
        }
        tasks
    }

    /// True once the pool's signing keys are loaded and, with the fleet backend, the logout
    /// list is caught up (or Redis is unreachable and `shared.require_for_ready` is off).
    pub fn is_ready(&self) -> bool {
        self.inner.is_ready()
    }

    /// Sends the finished spans now (`traces.otlp_endpoint`); a no-op with traces off.
    pub fn flush_traces(&self) {
        if let Some(t) = &self.inner.traces {
            t.flush();
        }
    }

    /// Sends the finished spans and stops the exporter (at exit).
    pub fn shutdown_traces(&self) {
        if let Some(t) = &self.inner.traces {
            t.shutdown();
        }
    }

    /// The fleet backend, when `shared.backend = "redis"`.
    pub fn shared(&self) -> Option<&Shared> {
        self.inner.shared.as_ref()
    }

    /// The metrics (the server counts connections into them).
    pub fn metrics(&self) -> &SharedMetrics {
        &self.inner.metrics
    }

    /// The upgraded-connection tunnels (the server closes them at shutdown).
    pub fn tunnels(&self) -> &Tunnels {
        &self.inner.tunnels
    }

    /// The Prometheus text exposition, JWKS state included.
    pub fn render_metrics(&self) -> String {
        if let Some(s) = &self.inner.sessions {
            self.inner.metrics.sessions_active(s.count());
        }
        let stats = |jwks: &JwksCache| JwksStats {
            fetches: jwks.fetch_count(),
            failures: jwks.failure_count(),
            keys: jwks.key_count(),
            age: jwks.key_age(),
        };
        let pools: Vec<(&str, JwksStats)> = self
            .inner
            .gate
            .verifier()
            .pools()
            .map(|(name, jwks)| (name, stats(jwks)))
            .collect();
        self.inner.metrics.render(&stats(self.jwks()), &pools)
    }

    /// A handle for `forward_auth.listen`: it serves the forward-auth check and answers
    /// `404 not_found` to everything else.
    pub fn check_listener(&self) -> App {
        App {
            inner: Arc::clone(&self.inner),
            listener: Listener::Check,
        }
    }

    /// The JWKS cache (fetch counters for tests and metrics).
    pub fn jwks(&self) -> &JwksCache {
        self.inner.gate.verifier().jwks()
    }

    /// `handle` on an owned `App`, for a future that borrows nothing (to be boxed).
    pub async fn handle_owned(self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        self.handle(req, peer).await
    }

    /// Serves one request from `peer`. Never fails: errors become JSON answers.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        self.inner.handle(req, peer, self.listener).await
    }
}

/// The OpenAPI document of the auth API (`src/openapi.json`, written for the default paths
/// and statuses), with the configured prefix and health paths and the statuses of
/// `api.compatibility`.
fn openapi_document(config: &Config) -> bytes::Bytes {
    let mut doc: serde_json::Value =
        serde_json::from_str(include_str!("../openapi.json")).unwrap_or_default();
    if config.api.compatibility == crate::config::Compatibility::Seed {
        crate::auth_api::compat::openapi(&mut doc);
    }
    // Choice-based sign-in: a login may come without a password.
    if config.cognito.choice_based_sign_in {
        if let Some(required) = doc
            .pointer_mut("/components/schemas/LoginIn/required")
            .and_then(|r| r.as_array_mut())
        {
            required.retain(|f| f != "password");
        }
    }
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        let old = std::mem::take(paths);
        for (path, item) in old {
            let path = if let Some(rest) = path.strip_prefix("/api/user") {
                format!("{}{rest}", config.api.prefix)
            } else if path == "/healthz" {
                config.health.live_path.clone()
            } else if path == "/readyz" {
                config.health.ready_path.clone()
            } else {
                path
            };
            paths.insert(path, item);
        }
    }
    bytes::Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
}
