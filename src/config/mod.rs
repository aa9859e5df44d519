//! Configuration: the typed tree, how it is loaded (defaults, then `proxy.toml`, then the
//! seed's `COGNITO_*`/`AWS_REGION` variables, then `SIDECAR_<SECTION>__<KEY>`), and the
//! start-up validation that turns it into values the rest of the crate can trust.
//!
//! This is the only module that reads the process environment. It performs no network I/O.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod defaults;
mod load;
pub mod reference;
mod routes;
mod sign_in;
mod traces;

pub use defaults::NEVER_FORWARD;
pub use load::SEED_ENV;
pub use routes::{Access, RouteRule, ScopeMatch};
pub use sign_in::{ManagedLoginConfig, SignInCode};
pub use traces::TracesConfig;

/// A configuration problem found at start-up: names the key and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct ConfigError {
    /// Dotted key, as written in `proxy.toml` (for example `cognito.user_pool_id`).
    pub key: String,
    /// What is wrong, in a few words.
    pub problem: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// The whole configuration. Every section has defaults; only the pool id and client id
/// have none.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub cognito: CognitoConfig,
    pub api: ApiConfig,
    pub verify: VerifyConfig,
    pub upstream: UpstreamConfig,
    pub identity: IdentityConfig,
    pub health: HealthConfig,
    pub log: LogConfig,
    pub admin: AdminConfig,
    pub rate_limit: RateLimitConfig,
    pub shared: SharedConfig,
    pub session: SessionConfig,
    pub forward_auth: ForwardAuthConfig,
    pub traces: TracesConfig,
    /// Authorization rules, first match wins; a path no rule matches needs a valid token.
    pub routes: Vec<RouteRule>,
}

/// The listener and its connection limits.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port the sidecar listens on.
    pub listen: SocketAddr,
    /// Time a client gets to send a request head (the first one counted from the connection's
    /// accept, whatever its protocol); also closes idle HTTP/1.1 keep-alive connections.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "reference::DurationText")]
    pub header_read_timeout: Duration,
    /// On SIGTERM/SIGINT, how long in-flight requests (and open tunnels) may finish before the
    /// sidecar closes them and exits (keep it below the ECS stopTimeout).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "reference::DurationText")]
    pub shutdown_grace: Duration,
    /// Open client connections at most.
    pub max_connections: usize,
    /// A connection with no request in flight for this long is closed (HTTP/2: GOAWAY). Idle
    /// HTTP/1.1 keep-alive connections are closed sooner, by header_read_timeout.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "reference::DurationText")]
    pub idle_timeout: Duration,
    /// Upgraded (WebSocket) connections open at most; more get 503 too_many_tunnels. 0 refuses
    /// every upgrade.
    pub max_tunnels: usize,
    /// An upgraded connection through which no byte moved either way for this long is closed.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "reference::DurationText")]
    pub tunnel_idle_timeout: Duration,
    /// Largest request head (request line and headers), in bytes (at least 8192); larger ones get
    /// 431.
    pub max_header_bytes: usize,
    /// Most request headers; more get 431.
    pub max_headers: usize,
    /// Networks (CIDR) of peers whose forwarded headers (those in `trusted_forwarded_headers`) are
    /// believed, e.g. the ALB's subnets ["10.0.0.0/16"]; everyone else's are replaced.
    #[schemars(with = "Vec<reference::Cidr>")]
    pub trusted_proxies: Vec<IpNet>,
    /// Which of `x-forwarded-for`, `-proto`, `-host`, `-port` a trusted proxy sets and the app may
    /// believe; the others are written by the sidecar (`-For`, `-Proto`, `-Host` from the request)
    /// or removed (`-Port`). An ALB never sets `-Host`. (It sets `-For`, `-Proto` and `-Port`.)
    pub trusted_forwarded_headers: Vec<String>,
}

/// Which Cognito API the login and new-password endpoints call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthFlow {
    /// `AdminInitiateAuth` with `ADMIN_USER_PASSWORD_AUTH` (the seed's `ADMIN_NO_SRP_AUTH`); needs IAM.
    AdminUserPassword,
    /// `InitiateAuth` with `USER_PASSWORD_AUTH`; needs no AWS credentials.
    UserPassword,
}

/// The user pool and app client.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CognitoConfig {
    /// Region of the user pool; by default the prefix of the pool id ("us-east-1_AbC" ->
    /// us-east-1).
    pub region: Option<String>,
    /// The user pool id (required; normally from the environment).
    pub user_pool_id: Option<String>,
    /// The app client id (required; normally from the environment).
    pub client_id: Option<String>,
    /// The app client's secret, only if it has one (SECRET_HASH is then sent on every call). Keep
    /// it out of this file.
    pub client_secret: Option<String>,
    /// Cognito API endpoint override, for emulators such as moto; unset in production.
    pub endpoint_url: Option<String>,
    /// `admin_user_password`: AdminInitiateAuth ADMIN_USER_PASSWORD_AUTH (needs IAM);
    /// `user_password`: InitiateAuth USER_PASSWORD_AUTH (needs no AWS credentials).
    pub auth_flow: AuthFlow,
    /// Deadline of one Cognito call, retries included.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "reference::DurationText")]
    pub timeout: Duration,
    /// Attempts per Cognito call, the first included.
    ///
    /// Attempts per call, the first included (the SDK retries throttling and 5xx).
    pub max_attempts: u32,
    /// The app client rotates refresh tokens: `/refresh` and the sessions refresh with
    /// GetTokensFromRefreshToken and keep the new refresh token (see
    /// [refresh](auth-api.md#post-apiuserrefresh)).
    pub refresh_token_rotation: bool,
    /// Send the user's context (address, host, endpoint, an allow-list of browser headers) with the
    /// admin flow's sign-in calls, for Cognito's threat protection (see
    /// [Security](security.md#the-users-context-for-threat-protection)).
    pub context_data: bool,
    /// With `cognito.auth_flow = "user_password"`: send the user's address as `UserContextData`
    /// (only with a client secret; the app client needs
    /// `EnablePropagateAdditionalUserContextData`).
    pub propagate_user_context: bool,
    /// The public host the context names (`ServerName`). Unset: the request's `Host`.
    pub server_name: Option<String>,
    /// Sign in with Cognito's `USER_AUTH` flow: a login with only an email gets the ways the pool
    /// offers (one-time codes by email or SMS, or the password); see [Choice-based
    /// sign-in](auth-api.md#choice-based-sign-in-passwordless-codes).
    pub choice_based_sign_in: bool,
}

impl std::fmt::Debug for CognitoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CognitoConfig")
            .field("region", &self.region)
            .field("user_pool_id", &self.user_pool_id)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("endpoint_url", &self.endpoint_url)
            .field("auth_flow", &self.auth_flow)
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .field("refresh_token_rotation", &self.refresh_token_rotation)
            .field("context_data", &self.context_data)
            .field("propagate_user_context", &self.propagate_user_context)
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// The auth API the sidecar serves itself.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Path prefix of the sidecar's own auth API (login, new-password, refresh, logout, mfa,
    /// forgot-password, ...).
    pub prefix: String,
    /// Largest request body the auth API accepts, in bytes.
    pub max_body_bytes: usize,
    /// The issuer an authenticator app shows for a TOTP enrolled through `mfa/setup` (the
    /// `otpauth://` label); 1 to 64 characters, no `:`.
    pub totp_issuer: String,
    /// Whose statuses login, new-password, refresh and logout answer failures with: `"none"` (the
    /// sidecar's) or `"seed"` (the Django endpoints': every client-side failure 400, a body that
    /// fails the seed's schema 422 with django-ninja's `detail`; see [Migrating from the Django
    /// endpoints](migrating.md#migrating-from-the-django-endpoints)).
    pub compatibility: Compatibility,
}

/// Whose statuses `login`, `new-password`, `refresh` and `logout` answer failures with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Compatibility {
    /// The sidecar's own: 401 for bad credentials and a missing bearer, 400 for validation.
    #[default]
    None,
    /// The Django seed's: every client-side failure 400, a body that fails the seed's schema
    /// 422 with django-ninja's `detail` (`crate::compat`).
    Seed,
}

/// Token verification.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyConfig {
    /// Expected `iss` of tokens; default `https://cognito-idp.<region>.amazonaws.com/<pool id>`.
    pub issuer: Option<String>,
    /// Where the signing keys are fetched; default `<issuer>/.well-known/jwks.json`. (moto:
    /// `http://127.0.0.1:5000/<pool id>/.well-known/jwks.json`)
    pub jwks_url: Option<String>,
    /// The only signature algorithm accepted (RS256, RS384 or RS512); the token header and the JWK
    /// must agree.
    pub algorithm: String,
    /// Accepted token_use values: "access", "id".
    pub token_use: Vec<String>,
    /// Accepted app clients (client_id of access tokens, aud of id tokens); empty =
    /// cognito.client_id.
    pub client_ids: Vec<String>,
    /// Clock skew allowed when checking the token's times.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "reference::DurationText")]
    pub leeway: Duration,
    /// Longest bearer token accepted, in bytes.
    pub max_token_bytes: usize,
    /// How often the JWKS is fetched again.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "reference::DurationText")]
    pub jwks_refresh_interval: Duration,
    /// Minimum time between two fetches caused by unknown kids. Start-up retries are not spaced by
    /// it: until the first keys arrive the fetch is retried every second (or every `jwks_cooldown`,
    /// if that is shorter). Those retries are at least 100 ms apart; protected requests fail until
    /// then.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "reference::DurationText")]
    pub jwks_cooldown: Duration,
    /// Deadline of one JWKS fetch.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "reference::DurationText")]
    pub jwks_timeout: Duration,
    /// Largest JWKS document accepted, in bytes.
    pub jwks_max_bytes: usize,
    /// Verified tokens remembered so they are not verified again; 0 turns the cache off.
    ///
    /// Each entry holds the token itself (about 1 KB for a Cognito access token) with its
    /// claims and identity headers.
    pub cache_max_entries: u64,
    /// How long a logout is remembered: at least the pool's longest token lifetime.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "reference::DurationText")]
    pub revocation_ttl: Duration,
    /// The name of the first pool (`cognito.user_pool_id`, the auth API's), for routes' `pools`
    /// rules and the metrics' `pool` label.
    pub pool_name: String,
    /// Regions of the first pool's multi-region replicas: one more trusted issuer each
    /// (`https://cognito-idp.<region>.amazonaws.com/<pool id>`), the same keys.
    pub replica_regions: Vec<String>,
    /// More trusted user pools, `[[verify.pools]]` tables of `name`, `user_pool_id`, `region`,
    /// `client_ids` (required), `issuer`, `jwks_url`, `replica_regions` (see
    /// [Callers](callers.md#callers)); in the environment
    /// `[{name="staff",user_pool_id="eu-west-1_AbC",client_ids=["…"]}]`.
    pub pools: Vec<TrustedPool>,
}

/// Another user pool whose tokens the gate accepts (the auth API serves only the first).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustedPool {
    /// Its name, for routes' `pools` rules and the metrics.
    pub name: String,
    /// Its pool id (`eu-west-1_AbC`).
    pub user_pool_id: String,
    /// Defaults to the prefix of the pool id.
    #[serde(default)]
    pub region: Option<String>,
    /// Its app clients whose tokens are accepted (`client_id` of access tokens, `aud` of id
    /// tokens; machines included).
    pub client_ids: Vec<String>,
    /// Defaults to `https://cognito-idp.<region>.amazonaws.com/<pool id>`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Defaults to `<issuer>/.well-known/jwks.json`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Regions of its multi-region replicas (one more issuer each, the same keys).
    #[serde(default)]
    pub replica_regions: Vec<String>,
}

/// The protected app.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// The protected app: http://host:port, optionally with a path prefix; no query.
    pub url: String,
    /// Deadline to connect to the app.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "reference::DurationText")]
    pub connect_timeout: Duration,
    /// Deadline for the app's response head, counted from the last request-body bytes it read (a
    /// slow upload is not cut); the response body then streams without a deadline.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "reference::DurationText")]
    pub response_timeout: Duration,
    /// Idle pooled connections are closed after this; keep it below the app's keep-alive timeout.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "reference::DurationText")]
    pub pool_idle_timeout: Duration,
    /// Idle pooled connections kept at most (past it, the one idle longest is closed).
    pub pool_max_idle: usize,
    /// true: send the client's Host to the app; false: send the upstream url's authority.
    pub preserve_host: bool,
    /// Pass the client's Authorization header on to the app when its token verified.
    pub forward_authorization: bool,
    /// On public routes, also pass an Authorization header that did not verify (or is not a bearer
    /// token); off, an app that decodes JWTs without verifying them never sees a forged one.
    pub forward_unverified_authorization: bool,
    /// Match route paths case-sensitively; only if the app routes case-sensitively too (Express,
    /// ASP.NET and IIS route /ADMIN like /admin).
    pub case_sensitive_paths: bool,
    /// Protocols a client may upgrade to, only on a GET without a body; any other upgrade request
    /// goes on as plain HTTP without its upgrade headers.
    pub upgrades: Vec<String>,
    /// Request headers the app never receives from a client, in any spelling (case folded, "_" and
    /// "." read as "-"). Setting it replaces the whole list.
    ///
    /// Request headers the app never receives from a client, matched like the identity
    /// namespace (case folded, `_` and `.` read as `-`): headers that re-route, re-method or
    /// re-address a request in some app server.
    pub never_forward: Vec<String>,
}

/// One identity header: its name and the claims it is filled from (first present wins).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderClaim {
    /// The header's name (`X-Auth-Sub`).
    pub name: String,
    /// The claims it is filled from; the first one the token has wins.
    pub claims: Vec<String>,
    /// Whose tokens produce the header: `user`, `client` (machines) or both. A header
    /// added to the configuration is a user's unless it says so.
    #[serde(default = "users_only")]
    pub principals: Vec<PrincipalKind>,
}

/// A kind of caller, as the identity map and route rules name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    User,
    Client,
}

fn users_only() -> Vec<PrincipalKind> {
    vec![PrincipalKind::User]
}

/// The identity headers added to proxied requests.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// Every inbound header whose name starts with one of these (case folded, "_" and "." read as
    /// "-") is removed from every request, public routes included, so clients cannot spoof
    /// identity.
    pub strip_prefixes: Vec<String>,
    /// The identity map: each header, the claims it is filled from (first present wins) and whose
    /// tokens produce it (see [Identity headers](gate.md#identity-headers)); setting it replaces
    /// the whole map.
    pub headers: Vec<HeaderClaim>,
    /// Optional header carrying all verified claims as base64url JSON.
    pub claims_header: Option<String>,
    /// The header naming the kind of caller on every verified request, `user` or `client` (a
    /// machine); `""` turns it off.
    pub principal_header: String,
}

/// The sidecar's own health endpoints.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Liveness endpoint (the sidecar itself is up).
    pub live_path: String,
    /// Readiness endpoint, for the load balancer / ECS health check.
    pub ready_path: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// "text" or "json" (one JSON object per line, for CloudWatch).
    pub format: LogFormat,
    /// A tracing filter: "info", "debug", "cognito_sidecar=debug,info", ...
    pub level: String,
    /// One access log line per request (request_id, method, path, status, latency_ms, sub).
    pub access: bool,
}

/// The admin listener (metrics); keep it off the ALB.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serve `GET /metrics` on a second listener; `false` turns it off.
    pub enabled: bool,
    /// Where the admin listener listens; keep it on loopback, off the ALB.
    pub listen: SocketAddr,
}

/// Rate limits on the auth API (0 turns a limit off).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Auth API requests per minute from one client address, sustained; 0 turns the limit off.
    pub address_per_minute: u32,
    /// Auth API requests one address may make at once.
    pub address_burst: u32,
    /// Login / new-password attempts per minute for one username (email), sustained; 0 turns the
    /// limit off.
    pub username_per_minute: u32,
    /// Attempts one username may get at once.
    pub username_burst: u32,
    /// forgot-password and confirm-forgot-password requests per hour for one username, sustained,
    /// each endpoint counted on its own (known and unknown users alike); 0 turns the limit off.
    pub recovery_username_per_hour: u32,
    /// Recovery requests one username may make at once.
    pub recovery_username_burst: u32,
    /// Recovery requests per hour from one client address, sustained (on top of `address_*`); 0
    /// turns the limit off.
    pub recovery_address_per_hour: u32,
    /// Recovery requests one address may make at once.
    pub recovery_address_burst: u32,
    /// Addresses and usernames tracked at most (each); the least recently used are forgotten.
    pub max_tracked: u64,
}

/// Browser sessions: the sidecar's own sign-in pages and a session cookie, for apps used
/// from a browser that never sends `Authorization`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Browser sessions: the sidecar's own sign-in pages and a session cookie (see [Browser
    /// sessions](browser-sessions.md#browser-sessions)). Bearer tokens work either way.
    pub enabled: bool,
    /// Path prefix of the sign-in, new-password and sign-out pages.
    pub prefix: String,
    /// A session ends after this long without a request.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "reference::DurationText")]
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in (also the cookie's `Max-Age`).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "reference::DurationText")]
    pub absolute_timeout: Duration,
    /// The access token is refreshed when it expires within this margin.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "reference::DurationText")]
    pub refresh_margin: Duration,
    /// Sessions kept in memory at most (least recently used first out).
    pub max_sessions: u64,
    /// Where the browser goes after signing out (a path on this host).
    pub after_sign_out: String,
    /// Origins (`https://host[:port]`) besides the request's own that may send state-changing
    /// requests and open WebSockets with the session cookie.
    pub allowed_origins: Vec<String>,
    /// Send the session's access token to the app as `Authorization: Bearer`.
    pub forward_access_token: bool,
    /// The pages' title.
    pub title: String,
    /// An image (`https://` or a path) shown above the form.
    pub logo_url: Option<String>,
    /// A directory whose `sign-in.html`, `new-password.html`, `mfa.html`, `sign-out.html`,
    /// `forgot-password.html`, `reset-password.html`, `mfa-setup.html`, `select-mfa.html` replace
    /// the built-in pages. Their placeholders: [Browser
    /// sessions](browser-sessions.md#browser-sessions).
    pub templates_dir: Option<String>,
    /// The password rules the new-password and reset forms show (text), e.g. "At least 12
    /// characters, with a number". Unset: read from the pool (`session.read_password_policy`).
    pub password_policy: Option<String>,
    /// Read the pool's password policy once with DescribeUserPool for the forms. Needs
    /// `cognito-idp:DescribeUserPool`, which the shipped task-role policy does not grant (least
    /// privilege): add it, or set `session.password_policy`; refused, the forms show no policy and
    /// the log says so once.
    pub read_password_policy: bool,
    /// With `cognito.choice_based_sign_in`: the one-time codes the sign-in page offers
    /// instead of a password (`EMAIL_OTP`, `SMS_OTP`). Unset: the pool's allowed first
    /// factors, read with the password policy (`read_password_policy`).
    pub sign_in_codes: Option<Vec<SignInCode>>,
    /// Load Cognito's device-fingerprint script on the sign-in steps' pages and send what it
    /// collects as `EncodedData` (see [Security](security.md#the-users-context-for-threat-protection)).
    /// The pages then allow that one script.
    pub device_fingerprint: bool,
    /// Sign-in with identity providers through the pool's managed login (off without a
    /// domain).
    pub managed_login: ManagedLoginConfig,
}

/// Which front proxy asks the forward-auth check, and so where the original request is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Convention {
    /// nginx `auth_request`: `X-Original-Method`, `X-Original-URI`, the original `Host`.
    Nginx,
    /// Traefik ForwardAuth: `X-Forwarded-Method`, `-Proto`, `-Host`, `-Uri`.
    Traefik,
    /// Envoy `ext_authz` (HTTP service): the original method, the original path after the
    /// check path (`path_prefix`), the original `Host`.
    Envoy,
}

/// Forward-auth: the gate's decision as an authorizer for a front proxy (nginx, Traefik,
/// Envoy) that is already in the data path; the check never proxies anything.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardAuthConfig {
    /// Serve the forward-auth check for a front proxy (see
    /// [Forward-auth](forward-auth.md#forward-auth-nginx-traefik-envoy)); needs
    /// `server.trusted_proxies`.
    pub enabled: bool,
    /// The check's path; with the `envoy` convention the prefix the original path follows
    /// (ext_authz `path_prefix`). Canonical, not overlapping the auth API, health paths or session
    /// pages.
    pub path: String,
    /// Where the original request is read: `nginx` (`X-Original-Method`, `X-Original-URI`, `Host`),
    /// `traefik` (`X-Forwarded-Method`, `-Uri`, `-Host`), `envoy` (the check's method, the path
    /// after `path`, `Host`).
    pub convention: Convention,
    /// A listener of its own for the check (keep it on loopback); when set the check is served only
    /// there.
    pub listen: Option<SocketAddr>,
}

/// Where logouts and auth API rate limits are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SharedBackend {
    /// In this process only (one sidecar).
    Memory,
    /// In Redis (ElastiCache), shared by every sidecar of the fleet.
    Redis,
}

/// State shared by a fleet of sidecars: logouts and auth API rate limits.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SharedConfig {
    /// Where logouts and auth API rate limits are kept: `memory` (this process) or `redis` (the
    /// fleet, through Redis / ElastiCache).
    pub backend: SharedBackend,
    /// `redis://host:port[/db]`, or `rediss://` for TLS (ElastiCache Serverless requires it). A
    /// password in it is redacted in every output.
    pub url: String,
    /// An ACL (RBAC) user, with `password`; never logged.
    pub username: Option<String>,
    /// The ACL user's password, or only a password (AUTH token); never logged. Set it from the
    /// environment.
    pub password: Option<String>,
    /// A PEM file of CA certificates trusted for `rediss://` instead of the public roots.
    pub tls_ca_file: Option<String>,
    /// Prefix of every key and channel, so several apps can share one cache.
    pub key_prefix: String,
    /// Deadline to connect to Redis.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "reference::DurationText")]
    pub connect_timeout: Duration,
    /// Deadline of one command; a rate-limit check falls back to the local limiter after it.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "reference::DurationText")]
    pub command_timeout: Duration,
    /// Logouts waiting for Redis at most; beyond it the oldest are dropped (error log, metric).
    pub queue_max: usize,
    /// `true`: `/readyz` answers 503 while Redis is unreachable or the list is catching up.
    pub require_for_ready: bool,
}

impl std::fmt::Debug for SharedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedConfig")
            .field("backend", &self.backend)
            .field("url", &redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls_ca_file", &self.tls_ca_file)
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("queue_max", &self.queue_max)
            .field("require_for_ready", &self.require_for_ready)
            .finish()
    }
}

/// `url` with any password in its userinfo replaced (`redis://user:secret@h` → `redis://user:<redacted>@h`).
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:<redacted>{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
mod tests {
    use super::*;
    use std::path::Path;

    fn base() -> Config {
        let mut c = Config::default();
        c.cognito.user_pool_id = Some("ap-northeast-1_AbC".into());
        c.cognito.client_id = Some("client".into());
        c
    }

    fn rule(path: &str) -> RouteRule {
        RouteRule {
            path: path.into(),
            methods: vec![],
            access: Access::Authenticated,
            groups: vec![],
            scopes: vec![],
            scopes_match: None,
            claims: Default::default(),
            pools: vec![],
        }
    }

    #[test]
    fn canonical_rule_paths_are_accepted() {
        for path in [
            "/",
            "/*",
            "/a",
            "/a/",
            "/a/*",
            "/a.b/c-d_e~f/*",
            "/v1/x.json",
        ] {
            let mut c = base();
            c.routes.push(rule(path));
            assert!(c.validate().is_ok(), "{path}");
        }
    }

    #[test]
    fn derives_region_issuer_and_jwks_url() {
        let d = base().validate().expect("valid");
        assert_eq!(d.region, "ap-northeast-1");
        assert_eq!(
            d.issuer,
            "https://cognito-idp.ap-northeast-1.amazonaws.com/ap-northeast-1_AbC"
        );
        assert_eq!(d.jwks_url, format!("{}/.well-known/jwks.json", d.issuer));
        assert_eq!(d.client_ids, vec!["client".to_string()]);
    }

    #[test]
    fn rejects_bad_values_naming_the_key() {
        type Edit = fn(&mut Config);
        let cases: &[(Edit, &str)] = &[
            (|c| c.cognito.user_pool_id = None, "cognito.user_pool_id"),
            (
                |c| c.cognito.client_id = Some(" ".into()),
                "cognito.client_id",
            ),
            (
                |c| {
                    c.cognito.user_pool_id = Some("nopool".into());
                },
                "cognito.region",
            ),
            (
                |c| c.cognito.endpoint_url = Some("not a url".into()),
                "cognito.endpoint_url",
            ),
            (|c| c.upstream.url = "ftp://x".into(), "upstream.url"),
            (
                |c| c.upstream.url = "https://app:443".into(),
                "upstream.url",
            ),
            (
                |c| c.verify.jwks_url = Some("/relative".into()),
                "verify.jwks_url",
            ),
            (|c| c.verify.algorithm = "HS256".into(), "verify.algorithm"),
            (
                |c| c.verify.token_use = vec!["refresh".into()],
                "verify.token_use",
            ),
            (|c| c.api.prefix = "api/".into(), "api.prefix"),
            (|c| c.api.totp_issuer = "My:App".into(), "api.totp_issuer"),
            (|c| c.log.level = "cognito_sidecar=lol=".into(), "log.level"),
            (|c| c.cognito.timeout = Duration::ZERO, "cognito.timeout"),
            (
                |c| c.server.idle_timeout = Duration::ZERO,
                "server.idle_timeout",
            ),
            (
                |c| c.server.tunnel_idle_timeout = Duration::ZERO,
                "server.tunnel_idle_timeout",
            ),
            (
                |c| {
                    c.routes.push(RouteRule {
                        path: "/x".into(),
                        methods: vec![],
                        access: Access::Public,
                        groups: vec!["admin".into()],
                        scopes: vec![],
                        scopes_match: None,
                        claims: Default::default(),
                        pools: vec![],
                    })
                },
                "routes[0].groups",
            ),
            (|c| c.routes.push(rule("admin/*")), "routes[0].path"),
            (|c| c.routes.push(rule("/a/../b")), "routes[0].path"),
            (|c| c.routes.push(rule("/a/%2e")), "routes[0].path"),
            (|c| c.routes.push(rule("/a;x")), "routes[0].path"),
            (|c| c.routes.push(rule("/a\\b")), "routes[0].path"),
            (|c| c.routes.push(rule("/a/*/b")), "routes[0].path"),
            (|c| c.routes.push(rule("/a*")), "routes[0].path"),
            (|c| c.routes.push(rule("//a")), "routes[0].path"),
            (|c| c.routes.push(rule("/日本")), "routes[0].path"),
            (
                |c| c.server.trusted_forwarded_headers = vec!["x-real-ip".into()],
                "server.trusted_forwarded_headers[0]",
            ),
            (
                |c| c.upstream.upgrades = vec!["h2c, websocket".into()],
                "upstream.upgrades[0]",
            ),
            (
                |c| c.upstream.never_forward = vec!["bad header".into()],
                "upstream.never_forward[0]",
            ),
            (
                |c| {
                    c.identity.headers.push(HeaderClaim {
                        name: "x_auth.SUB".into(),
                        claims: vec!["sub".into()],
                        principals: vec![crate::config::PrincipalKind::User],
                    })
                },
                "identity.headers[7].name",
            ),
        ];
        for (edit, key) in cases {
            let mut c = base();
            edit(&mut c);
            let err = c.validate().expect_err(key);
            assert_eq!(err.key, *key, "{err}");
        }
    }

    #[test]
    fn file_then_seed_env_then_sidecar_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "proxy.toml",
                r#"
                [cognito]
                user_pool_id = "us-east-1_file"
                client_id = "file-client"
                auth_flow = "user_password"
                [upstream]
                response_timeout = "3s"
                "#,
            )?;
            jail.set_env("COGNITO_APP_CLIENT_ID", "seed-client");
            jail.set_env("COGNITO_APP_CLIENT_SECRET", "s3cret");
            jail.set_env("AWS_REGION", "eu-west-1");
            jail.set_env("SIDECAR_SERVER__LISTEN", "127.0.0.1:9999");
            jail.set_env("SIDECAR_COGNITO__REGION", "us-west-2");
            let c = Config::load(Path::new("proxy.toml")).expect("loads");
            assert_eq!(c.cognito.user_pool_id.as_deref(), Some("us-east-1_file"));
            assert_eq!(c.cognito.client_id.as_deref(), Some("seed-client"));
            assert_eq!(c.cognito.client_secret.as_deref(), Some("s3cret"));
            assert_eq!(c.cognito.region.as_deref(), Some("us-west-2"));
            assert_eq!(c.cognito.auth_flow, AuthFlow::UserPassword);
            assert_eq!(c.upstream.response_timeout, Duration::from_secs(3));
            assert_eq!(c.server.listen, "127.0.0.1:9999".parse().expect("addr"));
            assert!(!c.redacted_json().contains("s3cret"));
            assert!(!format!("{c:?}").contains("s3cret"));
            Ok(())
        });
    }

    #[test]
    fn admin_listener_is_on_by_default_and_env_turns_it_off() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("proxy.toml", "[admin]\nlisten = \"127.0.0.1:9911\"\n")?;
            let c = Config::load(Path::new("proxy.toml")).expect("loads");
            assert!(c.admin.enabled);
            assert_eq!(c.admin.listen, "127.0.0.1:9911".parse().expect("addr"));
            jail.set_env("SIDECAR_ADMIN__ENABLED", "false");
            let c = Config::load(Path::new("proxy.toml")).expect("loads");
            assert!(!c.admin.enabled);
            Ok(())
        });
    }

    #[test]
    fn compatibility_from_the_file_or_the_environment() {
        assert_eq!(Config::default().api.compatibility, Compatibility::None);
        figment::Jail::expect_with(|jail| {
            jail.create_file("proxy.toml", "[api]\ncompatibility = \"seed\"\n")?;
            let c = Config::load(Path::new("proxy.toml")).expect("loads");
            assert_eq!(c.api.compatibility, Compatibility::Seed);
            let json: serde_json::Value =
                serde_json::from_str(&c.redacted_json()).expect("check-config prints JSON");
            assert_eq!(json["api"]["compatibility"], "seed");
            jail.set_env("SIDECAR_API__COMPATIBILITY", "none");
            let c = Config::load(Path::new("proxy.toml")).expect("loads");
            assert_eq!(c.api.compatibility, Compatibility::None);
            for bad in ["django", "Seed", ""] {
                jail.set_env("SIDECAR_API__COMPATIBILITY", bad);
                let err = Config::load(Path::new("proxy.toml")).expect_err(bad);
                assert_eq!(err.key, "api.compatibility", "{err}");
                assert!(
                    err.problem.starts_with(&format!(
                        "unknown value {bad:?}; expected \"none\" or \"seed\""
                    )),
                    "names the values: {err}"
                );
            }
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let cases = [
            (
                "[server]\nlisten = \"127.0.0.1:1\"\nlistne = 1\n",
                "server.listne",
            ),
            ("[cognito]\nauth_flow = \"srp\"\n", "cognito.auth_flow"),
            (
                "[upstream]\nconnect_timeout = \"soon\"\n",
                "upstream.connect_timeout",
            ),
            ("[nope]\nx = 1\n", "nope"),
        ];
        for (toml, key) in cases {
            figment::Jail::expect_with(|jail| {
                jail.create_file("proxy.toml", toml)?;
                let err = Config::load(Path::new("proxy.toml")).expect_err(key);
                assert_eq!(err.key, key, "{err}");
                Ok(())
            });
        }
    }
}
