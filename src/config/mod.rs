//! Configuration: the typed tree, how it is loaded (defaults, then `proxy.toml`, then the
//! seed's `COGNITO_*`/`AWS_REGION` variables, then `SIDECAR_<SECTION>__<KEY>`), and the
//! start-up validation that turns it into values the rest of the crate can trust.
//!
//! This is the only module that reads the process environment. It performs no network I/O.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

mod defaults;

pub use defaults::NEVER_FORWARD;

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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
    /// Authorization rules, first match wins; a path no rule matches needs a valid token.
    pub routes: Vec<RouteRule>,
}

/// The listener and its connection limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    pub max_connections: usize,
    /// A connection with no request in flight for this long is closed (HTTP/2: GOAWAY). An
    /// idle HTTP/1.1 keep-alive connection is closed sooner, by `header_read_timeout`.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Upgraded (WebSocket) tunnels open at most; more get 503 `too_many_tunnels`. 0 refuses
    /// every upgrade.
    pub max_tunnels: usize,
    /// A tunnel through which no byte moved either way for this long is closed.
    #[serde(with = "humantime_serde")]
    pub tunnel_idle_timeout: Duration,
    /// Largest request head (request line and headers) in bytes; larger ones get 431.
    pub max_header_bytes: usize,
    /// Most request headers; more get 431.
    pub max_headers: usize,
    /// Peers whose forwarded headers (those in `trusted_forwarded_headers`) are believed, for
    /// example the ALB's subnets. Everyone else's are replaced.
    pub trusted_proxies: Vec<IpNet>,
    /// Which forwarded headers a trusted proxy sets and the app may believe: any of
    /// `x-forwarded-for`, `x-forwarded-proto`, `x-forwarded-host`, `x-forwarded-port`. The
    /// others are written by the sidecar (`-For`, `-Proto`, `-Host`) or removed (`-Port`).
    /// An ALB sets `-For`, `-Proto` and `-Port`, never `-Host`.
    pub trusted_forwarded_headers: Vec<String>,
}

/// Which Cognito API the login and new-password endpoints call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthFlow {
    /// `AdminInitiateAuth` with `ADMIN_USER_PASSWORD_AUTH` (the seed's `ADMIN_NO_SRP_AUTH`); needs IAM.
    AdminUserPassword,
    /// `InitiateAuth` with `USER_PASSWORD_AUTH`; needs no AWS credentials.
    UserPassword,
}

/// The user pool and app client.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CognitoConfig {
    /// Defaults to the region prefix of the pool id (`ap-northeast-1_XXXX`).
    pub region: Option<String>,
    pub user_pool_id: Option<String>,
    pub client_id: Option<String>,
    /// Set when the app client has a secret; SECRET_HASH is then sent on every call.
    pub client_secret: Option<String>,
    /// Override for emulators (moto); unset in production.
    pub endpoint_url: Option<String>,
    pub auth_flow: AuthFlow,
    /// Per-call deadline, retries included.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts per call, the first included (the SDK retries throttling and 5xx).
    pub max_attempts: u32,
    /// The app client rotates refresh tokens: refresh with GetTokensFromRefreshToken.
    pub refresh_token_rotation: bool,
    /// Send the user's context with the admin flow's calls (Cognito's threat protection).
    pub context_data: bool,
    /// Send the user's address with the public flow's calls (`UserContextData`).
    pub propagate_user_context: bool,
    /// The public host Cognito is told the user reached. Unset: the request's `Host`.
    pub server_name: Option<String>,
    /// Choice-based sign-in (`USER_AUTH`): a login may come without a password.
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub prefix: String,
    pub max_body_bytes: usize,
    /// The issuer an authenticator app shows for a TOTP enrolled through `mfa/setup`.
    pub totp_issuer: String,
    /// Whose statuses the seed's four endpoints answer failures with.
    pub compatibility: Compatibility,
}

/// Whose statuses `login`, `new-password`, `refresh` and `logout` answer failures with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyConfig {
    /// Defaults to `https://cognito-idp.<region>.amazonaws.com/<pool id>`.
    pub issuer: Option<String>,
    /// Defaults to `<issuer>/.well-known/jwks.json`.
    pub jwks_url: Option<String>,
    /// The only signature algorithm accepted (RS256, RS384 or RS512); the token header must agree.
    pub algorithm: String,
    /// Accepted `token_use` values: `access`, `id`.
    pub token_use: Vec<String>,
    /// Accepted app clients (`client_id` of access tokens, `aud` of id tokens); defaults to
    /// `cognito.client_id`.
    pub client_ids: Vec<String>,
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    pub max_token_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub jwks_refresh_interval: Duration,
    /// Minimum time between two fetches caused by unknown `kid`s. Start-up retries are not
    /// spaced by it: until the first keys arrive the fetch is retried every second (or every
    /// cooldown, if shorter, at least 100 ms): protected requests fail until then.
    #[serde(with = "humantime_serde")]
    pub jwks_cooldown: Duration,
    #[serde(with = "humantime_serde")]
    pub jwks_timeout: Duration,
    pub jwks_max_bytes: usize,
    /// Verified tokens kept so they are not verified again; 0 turns the cache off.
    pub cache_max_entries: u64,
    /// How long a logout is remembered: at least the longest token lifetime of the pool.
    #[serde(with = "humantime_serde")]
    pub revocation_ttl: Duration,
    /// The name of the first pool (`cognito.user_pool_id`, the one the auth API serves), for
    /// routes' `pools` rules and the metrics.
    pub pool_name: String,
    /// Regions of the first pool's multi-region replicas: each issues tokens under its own
    /// `iss` (`https://cognito-idp.<region>.amazonaws.com/<pool id>`), signed with the pool's keys.
    pub replica_regions: Vec<String>,
    /// More user pools whose tokens the gate accepts (`[[verify.pools]]`).
    pub pools: Vec<TrustedPool>,
}

/// Another user pool whose tokens the gate accepts (the auth API serves only the first).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedPool {
    /// Its name, for routes' `pools` rules and the metrics.
    pub name: String,
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// `http://host:port` with an optional path prefix.
    pub url: String,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time to the response head, counted from the last request-body bytes the app read (a
    /// slow upload is not cut); the response body then streams without a deadline.
    #[serde(with = "humantime_serde")]
    pub response_timeout: Duration,
    /// Below the app's keep-alive, so the pool never reuses a connection the app closed.
    #[serde(with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    pub pool_max_idle: usize,
    /// Keep the client's `Host` (true) or send the upstream's authority (false).
    pub preserve_host: bool,
    /// Pass the client's `Authorization` header to the app when its token verified.
    pub forward_authorization: bool,
    /// On public routes, also pass an `Authorization` header that did not verify (or is not a
    /// bearer token). Off: an app that decodes JWTs without verifying them never sees a
    /// forged one.
    pub forward_unverified_authorization: bool,
    /// Match route paths case-sensitively. Only if the app is case-sensitive too: Express,
    /// ASP.NET and IIS route `/ADMIN` like `/admin`.
    pub case_sensitive_paths: bool,
    /// Protocols a client may upgrade to (`Upgrade:`), only on a `GET` without a body; any
    /// other upgrade request is forwarded as plain HTTP with its upgrade headers removed.
    pub upgrades: Vec<String>,
    /// Request headers the app never receives from a client, matched like the identity
    /// namespace (case folded, `_` and `.` read as `-`): headers that re-route, re-method or
    /// re-address a request in some app server.
    pub never_forward: Vec<String>,
}

/// One identity header: its name and the claims it is filled from (first present wins).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderClaim {
    pub name: String,
    pub claims: Vec<String>,
    /// Whose tokens produce the header: `user`, `client` (machines) or both. A header
    /// added to the configuration is a user's unless it says so.
    #[serde(default = "users_only")]
    pub principals: Vec<PrincipalKind>,
}

/// A kind of caller, as the identity map and route rules name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    User,
    Client,
}

fn users_only() -> Vec<PrincipalKind> {
    vec![PrincipalKind::User]
}

/// How a route's `scopes` are matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeMatch {
    /// One of the scopes is enough.
    Any,
    /// Every scope is needed.
    All,
}

/// The identity headers added to proxied requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// Every inbound header whose name starts with one of these (case folded, `_` and `.`
    /// read as `-`) is removed from every request, public routes included.
    pub strip_prefixes: Vec<String>,
    pub headers: Vec<HeaderClaim>,
    /// Optional header carrying all verified claims as base64url JSON.
    pub claims_header: Option<String>,
    /// The header naming the kind of caller, `user` or `client` (always set on a verified
    /// request; `""` turns it off).
    pub principal_header: String,
}

/// The sidecar's own health endpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    pub live_path: String,
    pub ready_path: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter: `info`, `debug`, `cognito_sidecar=debug,info`, ...
    pub level: String,
    /// One line per request (method, path, status, latency, sub, request id).
    pub access: bool,
}

/// The admin listener (metrics); keep it off the ALB.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// false turns the admin listener off (`SIDECAR_ADMIN__ENABLED=false`).
    pub enabled: bool,
    /// Where `/metrics` is served when enabled.
    pub listen: SocketAddr,
}

/// Rate limits on the auth API (0 turns a limit off).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Sustained auth API requests per minute from one client address.
    pub address_per_minute: u32,
    /// Requests one address may make at once.
    pub address_burst: u32,
    /// Sustained login / new-password attempts per minute for one username (email).
    pub username_per_minute: u32,
    /// Attempts one username may get at once.
    pub username_burst: u32,
    /// Sustained forgot-password and confirm-forgot-password requests per hour for one
    /// username (each endpoint counted on its own).
    pub recovery_username_per_hour: u32,
    /// Recovery requests one username may make at once.
    pub recovery_username_burst: u32,
    /// Sustained recovery requests per hour from one client address.
    pub recovery_address_per_hour: u32,
    /// Recovery requests one address may make at once.
    pub recovery_address_burst: u32,
    /// Addresses and usernames tracked at most (least recently used are forgotten).
    pub max_tracked: u64,
}

/// Browser sessions: the sidecar's own sign-in pages and a session cookie, for apps used
/// from a browser that never sends `Authorization`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Off by default; bearer tokens work either way.
    pub enabled: bool,
    /// Path prefix of the sign-in, new-password and sign-out pages.
    pub prefix: String,
    /// A session ends after this long without a request.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in, whatever happens.
    #[serde(with = "humantime_serde")]
    pub absolute_timeout: Duration,
    /// The access token is refreshed when it expires within this margin.
    #[serde(with = "humantime_serde")]
    pub refresh_margin: Duration,
    /// Sessions kept at most in memory (the least recently used go first).
    pub max_sessions: u64,
    /// Where the browser goes after signing out.
    pub after_sign_out: String,
    /// Origins (`https://host[:port]`) besides the request's own that may send
    /// state-changing requests and open WebSockets with the session cookie.
    pub allowed_origins: Vec<String>,
    /// Send the session's access token to the app as `Authorization: Bearer`.
    pub forward_access_token: bool,
    /// The pages' title.
    pub title: String,
    /// An image URL shown above the form (`https:`, or a path on this host).
    pub logo_url: Option<String>,
    /// A directory whose `sign-in.html`, `new-password.html`, `mfa.html`, `sign-out.html`,
    /// `forgot-password.html`, `reset-password.html`, `mfa-setup.html` and `select-mfa.html`
    /// replace the built-in pages (their placeholders: docs/src/browser-sessions.md).
    pub templates_dir: Option<String>,
    /// The password rules the password forms show, e.g. "At least 12 characters, with a
    /// number". When unset, read once from the pool (`read_password_policy`).
    pub password_policy: Option<String>,
    /// Read the pool's password policy with DescribeUserPool for the password forms (the task
    /// role needs `cognito-idp:DescribeUserPool`; refused, the forms show none).
    pub read_password_policy: bool,
    /// Sign-in with identity providers through the pool's managed login (off without a
    /// domain).
    pub managed_login: ManagedLoginConfig,
}

/// Federated sign-in: the OAuth 2.0 authorization code flow with PKCE through the pool's
/// domain (Cognito's managed login, or the classic Hosted UI), with the app client
/// `cognito.client_id` (and its secret, if it has one).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManagedLoginConfig {
    /// The pool's domain, `https://<prefix>.auth.<region>.amazoncognito.com` or a custom
    /// domain, without a path. Unset: no federated sign-in.
    pub domain: Option<String>,
    /// The app client's callback URL: `{session.prefix}/callback` on this sidecar as the
    /// browser reaches it (`https://app.example.com/_auth/callback`).
    pub callback_url: Option<String>,
    /// The sign-out URL Cognito's `/logout` returns to (one of the app client's sign-out
    /// URLs). Default: `session.after_sign_out` on the callback URL's origin.
    pub sign_out_url: Option<String>,
    /// The identity providers offered as buttons, by their name in the pool (`Okta`,
    /// `Google`, `SignInWithApple`, ...).
    pub identity_providers: Vec<String>,
    /// Also offer "Use another way to sign in", which opens the managed login page itself.
    pub other_ways: bool,
    /// With one identity provider and no password sign-in wanted: the sign-in page sends the
    /// browser straight to it.
    pub auto_redirect: bool,
    /// The scopes asked for (`openid` is required).
    pub scopes: Vec<String>,
    /// How long a started sign-in may take before its callback is refused.
    #[serde(with = "humantime_serde")]
    pub flow_timeout: Duration,
    /// Time limit of each call to the domain's token and revocation endpoints.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

/// Which front proxy asks the forward-auth check, and so where the original request is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardAuthConfig {
    /// Off by default.
    pub enabled: bool,
    /// The check's path; with the `envoy` convention a prefix the original path follows.
    pub path: String,
    /// The front proxy's conventions: `nginx`, `traefik` or `envoy`.
    pub convention: Convention,
    /// A listener of its own for the check; when set, the check is served only there.
    pub listen: Option<SocketAddr>,
}

/// Where logouts and auth API rate limits are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharedBackend {
    /// In this process only (one sidecar).
    Memory,
    /// In Redis (ElastiCache), shared by every sidecar of the fleet.
    Redis,
}

/// State shared by a fleet of sidecars: logouts and auth API rate limits.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharedConfig {
    pub backend: SharedBackend,
    /// `redis://host:port[/db]` or `rediss://` (TLS; ElastiCache Serverless requires it).
    pub url: String,
    /// An ACL user (ElastiCache RBAC), with `password`.
    pub username: Option<String>,
    /// The user's password or the AUTH token; from the environment, never logged.
    pub password: Option<String>,
    /// A PEM file of CA certificates to trust for `rediss://` instead of the public roots.
    pub tls_ca_file: Option<String>,
    /// Prefix of every key and channel, so several apps can share one cache.
    pub key_prefix: String,
    /// Deadline to connect to Redis.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Deadline of one command (a rate-limit check falls back to the local limiter after it).
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// Logouts waiting for Redis at most; the oldest are dropped beyond it.
    pub queue_max: usize,
    /// `/readyz` answers 503 while Redis is unreachable or the logout list is catching up.
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

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// No token needed (identity headers are still stripped).
    Public,
    /// A valid token; with `groups`, also membership in one of them.
    Authenticated,
}

/// One authorization rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// `/exact/path`, or `/prefix/*` for the prefix itself and everything under it.
    pub path: String,
    /// Methods the rule applies to; empty means all.
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default = "default_access")]
    pub access: Access,
    /// With `access = "authenticated"`: the token's `cognito:groups` must hold one of these.
    #[serde(default)]
    pub groups: Vec<String>,
    /// With `access = "authenticated"`: scopes the token's `scope` must hold, matched as
    /// `scopes_match` says (required with `scopes`).
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub scopes_match: Option<ScopeMatch>,
    /// With `access = "authenticated"`: claim → accepted values; each claim must equal one
    /// of its values (an array claim: hold one of them).
    #[serde(default)]
    pub claims: std::collections::BTreeMap<String, Vec<serde_json::Value>>,
    /// With `access = "authenticated"`: the token must come from one of these pools (by
    /// name: `verify.pool_name` or a `[[verify.pools]]` name).
    #[serde(default)]
    pub pools: Vec<String>,
}

fn default_access() -> Access {
    Access::Authenticated
}

impl Config {
    /// Loads defaults, then the TOML file (if it exists), then the environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = Self::figment(path)
            .extract()
            .map_err(|e| figment_error(&e))?;
        // The seed treats an empty `COGNITO_APP_CLIENT_SECRET` as "no secret".
        if config.cognito.client_secret.as_deref() == Some("") {
            config.cognito.client_secret = None;
        }
        Ok(config)
    }

    /// The provider stack, exposed so tests can use `figment::Jail`.
    pub fn figment(path: &Path) -> Figment {
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(path))
            .merge(seed_env())
            .merge(Env::prefixed("SIDECAR_").split("__"))
    }

    /// The effective configuration as JSON, with the client secret redacted.
    pub fn redacted_json(&self) -> String {
        let mut copy = self.clone();
        if copy.cognito.client_secret.is_some() {
            copy.cognito.client_secret = Some("<redacted>".into());
        }
        if copy.shared.password.is_some() {
            copy.shared.password = Some("<redacted>".into());
        }
        copy.shared.url = redact_url(&copy.shared.url);
        serde_json::to_string_pretty(&copy).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

/// The seed's variable names, so an existing ECS task definition keeps working.
fn seed_env() -> Env {
    Env::raw()
        .only(&[
            "AWS_REGION",
            "COGNITO_USER_POOL_ID",
            "COGNITO_APP_CLIENT_ID",
            "COGNITO_APP_CLIENT_SECRET",
        ])
        .map(|k| match k.as_str().to_ascii_uppercase().as_str() {
            "AWS_REGION" => "cognito.region".into(),
            "COGNITO_USER_POOL_ID" => "cognito.user_pool_id".into(),
            "COGNITO_APP_CLIENT_ID" => "cognito.client_id".into(),
            _ => "cognito.client_secret".into(),
        })
}

fn figment_error(e: &figment::Error) -> ConfigError {
    let key = if e.path.is_empty() {
        "config".to_string()
    } else {
        e.path.join(".")
    };
    let problem = match &e.kind {
        figment::error::Kind::UnknownField(field, _) => {
            let key = if e.path.last() == Some(field) || e.path.is_empty() && key == *field {
                key
            } else if e.path.is_empty() {
                field.clone()
            } else {
                format!("{key}.{field}")
            };
            return ConfigError::new(key, "unknown key");
        }
        figment::error::Kind::UnknownVariant(found, expected) => {
            let expected: Vec<String> = expected.iter().map(|v| format!("{v:?}")).collect();
            format!(
                "unknown value {found:?}; expected {}",
                expected.join(" or ")
            )
        }
        other => other.to_string(),
    };
    let source = e
        .metadata
        .as_ref()
        .map(|m| format!(" (from {})", m.name))
        .unwrap_or_default();
    ConfigError::new(key, format!("{problem}{source}"))
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
mod tests {
    use super::*;

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
