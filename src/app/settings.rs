//! The start-up checks: `Config::validate` reads the whole configuration once, refuses the
//! first problem it finds (one line naming the key) and derives what the rest of the crate
//! needs. It lives here, above the modules whose rules it applies (the canonical-path reader,
//! header folding, the session pages), so `config` itself imports none of them.

use std::collections::BTreeSet;
use std::time::Duration;

use std::sync::Arc;

use http::{HeaderValue, Uri};
use jsonwebtoken::Algorithm;

use super::session_settings::{managed_login, session};
use crate::browser::oauth;
use crate::browser::templates::Templates;
use crate::config::*;
use crate::fleet::{self, SharedError};
use crate::gate::identity::IdentityHeaders;
use crate::gate::verify::PoolSettings;
use crate::request::outbound::{self, Policy};
use crate::request::router::{Places, Router};

/// Values derived from the configuration once, at start-up: every string the parts are
/// built from is parsed here, so building them cannot fail on configuration.
#[derive(Debug, Clone)]
pub struct Derived {
    pub region: String,
    pub user_pool_id: String,
    pub client_id: String,
    pub issuer: String,
    pub jwks_url: String,
    pub client_ids: Vec<String>,
    /// The first pool's replica issuers (`verify.replica_regions`).
    pub replica_issuers: Vec<String>,
    /// The other trusted pools (`verify.pools`), each with its JWKS URL.
    pub pools: Vec<(PoolSettings, String)>,
    pub algorithm: Algorithm,
    /// `verify.token_use` lists `access`.
    pub accept_access: bool,
    /// `verify.token_use` lists `id`.
    pub accept_id: bool,
    pub identity: IdentityHeaders,
    pub upstream: Uri,
    /// The authority of `upstream.url`, the `Host` the app is sent.
    pub upstream_host: HeaderValue,
    /// The Redis client, with `shared.backend = "redis"`.
    pub redis: Option<redis::Client>,
    /// The page templates, with browser sessions on.
    pub templates: Option<Templates>,
    /// Federated sign-in, with browser sessions on and `session.managed_login.domain` set.
    pub managed_login: Option<oauth::Settings>,
}

impl Config {
    /// The routing table of this configuration (validated).
    pub fn router(&self) -> Router {
        let fa = &self.forward_auth;
        Router::new(
            &self.routes,
            self.upstream.case_sensitive_paths,
            Places {
                live: self.health.live_path.clone(),
                ready: self.health.ready_path.clone(),
                auth_prefix: self.api.prefix.clone(),
                pages_prefix: self.session.enabled.then(|| self.session.prefix.clone()),
                check: fa
                    .enabled
                    .then(|| (fa.path.clone(), fa.convention == Convention::Envoy)),
                check_on_main: fa.listen.is_none(),
            },
        )
    }

    /// What the app receives from this configuration (validated, with what it derived).
    pub fn policy(&self, d: &Derived, identity: Arc<IdentityHeaders>) -> Policy {
        Policy::new(
            &self.upstream,
            &self.server,
            self.session.enabled,
            (&d.upstream, d.upstream_host.clone()),
            identity,
        )
    }
}

impl Config {
    /// Checks everything that can be checked at start-up (the only reads: the page templates
    /// and the Redis CA file) and derives the values the rest of the crate needs. The first
    /// problem found is returned.
    pub fn validate(&self) -> Result<Derived, ConfigError> {
        let c = &self.cognito;
        let user_pool_id = non_empty(&c.user_pool_id, "cognito.user_pool_id")?;
        let client_id = non_empty(&c.client_id, "cognito.client_id")?;
        let region = match c.region.as_deref().filter(|r| !r.is_empty()) {
            Some(r) => r.to_string(),
            None => match user_pool_id.split_once('_') {
                Some((r, _)) if !r.is_empty() => r.to_string(),
                _ => {
                    return Err(ConfigError::new(
                        "cognito.region",
                        "missing, and the pool id has no region prefix",
                    ))
                }
            },
        };
        if let Some(url) = &c.endpoint_url {
            http_url(url, "cognito.endpoint_url")?;
        }
        positive(c.timeout, "cognito.timeout")?;
        if c.max_attempts == 0 {
            return Err(ConfigError::new(
                "cognito.max_attempts",
                "must be at least 1",
            ));
        }

        let t = &self.traces;
        if let Some(url) = &t.otlp_endpoint {
            if !t.enabled {
                return Err(ConfigError::new(
                    "traces.otlp_endpoint",
                    "set, but traces.enabled is false",
                ));
            }
            http_url(url, "traces.otlp_endpoint")?;
        }
        if !(0.0..=1.0).contains(&t.sample_ratio) {
            return Err(ConfigError::new(
                "traces.sample_ratio",
                "must be between 0 and 1",
            ));
        }
        positive(t.export_interval, "traces.export_interval")?;
        positive(t.export_timeout, "traces.export_timeout")?;

        let prefix = &self.api.prefix;
        if !prefix.starts_with('/') || prefix.ends_with('/') || prefix.contains("//") {
            return Err(ConfigError::new(
                "api.prefix",
                "must start with / and not end with / (for example /api/user)",
            ));
        }
        let issuer = &self.api.totp_issuer;
        if issuer.trim().is_empty() || issuer.len() > 64 || issuer.contains(':') {
            return Err(ConfigError::new(
                "api.totp_issuer",
                "must be 1 to 64 characters without `:` (for example MyApp)",
            ));
        }

        let v = &self.verify;
        let issuer = v.issuer.clone().unwrap_or_else(|| {
            format!("https://cognito-idp.{region}.amazonaws.com/{user_pool_id}")
        });
        http_url(&issuer, "verify.issuer")?;
        let jwks_url = v
            .jwks_url
            .clone()
            .unwrap_or_else(|| format!("{issuer}/.well-known/jwks.json"));
        http_url(&jwks_url, "verify.jwks_url")?;
        if !matches!(v.algorithm.as_str(), "RS256" | "RS384" | "RS512") {
            return Err(ConfigError::new(
                "verify.algorithm",
                format!(
                    "unsupported algorithm {:?}; use RS256, RS384 or RS512",
                    v.algorithm
                ),
            ));
        }
        if v.token_use.is_empty() {
            return Err(ConfigError::new(
                "verify.token_use",
                "must list access and/or id",
            ));
        }
        for u in &v.token_use {
            if u != "access" && u != "id" {
                return Err(ConfigError::new(
                    "verify.token_use",
                    format!("unknown token use {u:?}; use access or id"),
                ));
            }
        }
        let client_ids = if v.client_ids.is_empty() {
            vec![client_id.clone()]
        } else {
            v.client_ids.clone()
        };
        positive(v.jwks_refresh_interval, "verify.jwks_refresh_interval")?;
        positive(v.jwks_timeout, "verify.jwks_timeout")?;
        if v.max_token_bytes < 64 {
            return Err(ConfigError::new(
                "verify.max_token_bytes",
                "must be at least 64",
            ));
        }

        let cognito_issuer =
            |region: &str, pool: &str| format!("https://cognito-idp.{region}.amazonaws.com/{pool}");
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !name_ok(&v.pool_name) {
            return Err(ConfigError::new(
                "verify.pool_name",
                "must be 1 to 64 letters, digits, - or _",
            ));
        }
        let mut names = BTreeSet::from([v.pool_name.clone()]);
        let mut issuers = BTreeSet::from([issuer.clone()]);
        let mut replica_issuers = Vec::new();
        for (i, r) in v.replica_regions.iter().enumerate() {
            let iss = cognito_issuer(r, &user_pool_id);
            if r.is_empty() || !issuers.insert(iss.clone()) {
                return Err(ConfigError::new(
                    format!("verify.replica_regions[{i}]"),
                    "empty, or an issuer trusted twice",
                ));
            }
            replica_issuers.push(iss);
        }
        let mut pools = Vec::new();
        for (i, p) in v.pools.iter().enumerate() {
            let key = |k: &str| format!("verify.pools[{i}].{k}");
            if !name_ok(&p.name) || !names.insert(p.name.clone()) {
                return Err(ConfigError::new(
                    key("name"),
                    "must be 1 to 64 letters, digits, - or _, and differ from every other pool's",
                ));
            }
            let region = match p.region.as_deref().filter(|r| !r.is_empty()) {
                Some(r) => r.to_string(),
                None => match p.user_pool_id.split_once('_') {
                    Some((r, id)) if !r.is_empty() && !id.is_empty() => r.to_string(),
                    _ => {
                        return Err(ConfigError::new(
                            key("user_pool_id"),
                            "must be <region>_<id> (or set region)",
                        ))
                    }
                },
            };
            if p.client_ids.is_empty() || p.client_ids.iter().any(String::is_empty) {
                return Err(ConfigError::new(
                    key("client_ids"),
                    "must list the pool's app clients whose tokens are accepted",
                ));
            }
            let iss = p
                .issuer
                .clone()
                .unwrap_or_else(|| cognito_issuer(&region, &p.user_pool_id));
            http_url(&iss, &key("issuer"))?;
            let jwks = p
                .jwks_url
                .clone()
                .unwrap_or_else(|| format!("{iss}/.well-known/jwks.json"));
            http_url(&jwks, &key("jwks_url"))?;
            let mut all = vec![iss];
            all.extend(
                p.replica_regions
                    .iter()
                    .map(|r| cognito_issuer(r, &p.user_pool_id)),
            );
            for iss in &all {
                if !issuers.insert(iss.clone()) {
                    return Err(ConfigError::new(
                        key("issuer"),
                        format!("{iss:?} is already trusted (by another pool or replica)"),
                    ));
                }
            }
            pools.push((
                PoolSettings {
                    name: p.name.clone(),
                    issuers: all,
                    client_ids: p.client_ids.clone(),
                },
                jwks,
            ));
        }
        let algorithm = match v.algorithm.as_str() {
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            _ => Algorithm::RS256,
        };
        let accept_access = v.token_use.iter().any(|u| u == "access");
        let accept_id = v.token_use.iter().any(|u| u == "id");

        let upstream = http_url(&self.upstream.url, "upstream.url")?;
        let upstream_host =
            outbound::upstream_host(&upstream).map_err(|p| ConfigError::new("upstream.url", p))?;
        if upstream.scheme_str() != Some("http") {
            return Err(ConfigError::new(
                "upstream.url",
                "must be http:// (the app runs beside the sidecar; TLS ends at the load balancer)",
            ));
        }
        if upstream.query().is_some() {
            return Err(ConfigError::new("upstream.url", "must not have a query"));
        }
        positive(self.upstream.connect_timeout, "upstream.connect_timeout")?;
        positive(self.upstream.response_timeout, "upstream.response_timeout")?;
        positive(
            self.server.header_read_timeout,
            "server.header_read_timeout",
        )?;
        positive(self.server.idle_timeout, "server.idle_timeout")?;
        positive(
            self.server.tunnel_idle_timeout,
            "server.tunnel_idle_timeout",
        )?;
        if self.server.max_header_bytes < 8192 {
            return Err(ConfigError::new(
                "server.max_header_bytes",
                "must be at least 8192",
            ));
        }
        if self.server.max_headers == 0 {
            return Err(ConfigError::new("server.max_headers", "must be at least 1"));
        }
        if self.server.max_connections == 0 {
            return Err(ConfigError::new(
                "server.max_connections",
                "must be at least 1",
            ));
        }

        let mut seen = BTreeSet::new();
        for (i, h) in self.identity.headers.iter().enumerate() {
            let key = format!("identity.headers[{i}].name");
            let name = http::HeaderName::try_from(h.name.as_str()).map_err(|_| {
                ConfigError::new(&key, format!("{:?} is not a header name", h.name))
            })?;
            if !seen.insert(crate::http::headers::fold_name(name.as_str())) {
                return Err(ConfigError::new(key, "duplicate header"));
            }
            if h.claims.is_empty() {
                return Err(ConfigError::new(
                    format!("identity.headers[{i}].claims"),
                    "must name at least one claim",
                ));
            }
        }
        if let Some(name) = &self.identity.claims_header {
            http::HeaderName::try_from(name.as_str()).map_err(|_| {
                ConfigError::new(
                    "identity.claims_header",
                    format!("{name:?} is not a header name"),
                )
            })?;
        }
        for (i, h) in self.identity.headers.iter().enumerate() {
            if h.principals.is_empty() {
                return Err(ConfigError::new(
                    format!("identity.headers[{i}].principals"),
                    "must list user and/or client",
                ));
            }
        }
        let ph = &self.identity.principal_header;
        if !ph.is_empty() {
            let name = http::HeaderName::try_from(ph.as_str()).map_err(|_| {
                ConfigError::new(
                    "identity.principal_header",
                    format!("{ph:?} is not a header name"),
                )
            })?;
            if !seen.insert(crate::http::headers::fold_name(name.as_str())) {
                return Err(ConfigError::new(
                    "identity.principal_header",
                    "is also in identity.headers",
                ));
            }
        }
        let identity = IdentityHeaders::new(&self.identity)
            .map_err(|_| ConfigError::new("identity.headers", "invalid header name"))?;
        for (i, r) in self.routes.iter().enumerate() {
            check_rule_path(&r.path)
                .map_err(|p| ConfigError::new(format!("routes[{i}].path"), p))?;
            for m in &r.methods {
                http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| {
                    ConfigError::new(
                        format!("routes[{i}].methods"),
                        format!("{m:?} is not a method"),
                    )
                })?;
            }
            if r.access == Access::Public && !r.groups.is_empty() {
                return Err(ConfigError::new(
                    format!("routes[{i}].groups"),
                    "a public route cannot require groups",
                ));
            }
            if r.access == Access::Public && (!r.scopes.is_empty() || !r.claims.is_empty()) {
                return Err(ConfigError::new(
                    format!("routes[{i}].scopes"),
                    "a public route cannot require scopes or claims",
                ));
            }
            // RFC 6749 §3.3 scope-token: visible ASCII but `"` and `\`.
            for sc in &r.scopes {
                if sc.is_empty()
                    || !sc
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
                {
                    return Err(ConfigError::new(
                        format!("routes[{i}].scopes"),
                        format!("{sc:?} is not a scope token"),
                    ));
                }
            }
            match (r.scopes.is_empty(), r.scopes_match) {
                (false, None) => {
                    return Err(ConfigError::new(
                        format!("routes[{i}].scopes_match"),
                        "required with scopes: \"any\" (one of them) or \"all\"",
                    ))
                }
                (true, Some(_)) => {
                    return Err(ConfigError::new(
                        format!("routes[{i}].scopes_match"),
                        "set without scopes",
                    ))
                }
                _ => {}
            }
            for p in &r.pools {
                if *p != self.verify.pool_name && !self.verify.pools.iter().any(|t| t.name == *p) {
                    return Err(ConfigError::new(
                        format!("routes[{i}].pools"),
                        format!("{p:?} is not verify.pool_name or a [[verify.pools]] name"),
                    ));
                }
            }
            if r.access == Access::Public && !r.pools.is_empty() {
                return Err(ConfigError::new(
                    format!("routes[{i}].pools"),
                    "a public route cannot require pools",
                ));
            }
            for (claim, values) in &r.claims {
                if claim.is_empty() || values.is_empty() {
                    return Err(ConfigError::new(
                        format!("routes[{i}].claims"),
                        format!("{claim:?} must name a claim and list at least one value"),
                    ));
                }
            }
        }
        for (i, h) in self.server.trusted_forwarded_headers.iter().enumerate() {
            if !crate::http::headers::FORWARDED_FAMILY.contains(&h.to_ascii_lowercase().as_str()) {
                return Err(ConfigError::new(
                    format!("server.trusted_forwarded_headers[{i}]"),
                    format!("{h:?} is not one of x-forwarded-for, -proto, -host, -port"),
                ));
            }
        }
        let sh = &self.shared;
        if sh.backend == SharedBackend::Redis {
            match sh.url.split_once("://") {
                Some(("redis" | "rediss", rest)) if !rest.is_empty() => {}
                _ => {
                    return Err(ConfigError::new(
                        "shared.url",
                        format!(
                            "{:?} is not a redis:// or rediss:// URL",
                            redact_url(&sh.url)
                        ),
                    ))
                }
            }
            if sh.key_prefix.is_empty()
                || !sh
                    .key_prefix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
            {
                return Err(ConfigError::new(
                    "shared.key_prefix",
                    "must be letters, digits, - _ . : (no braces: the sidecar adds its hash tag)",
                ));
            }
            positive(sh.connect_timeout, "shared.connect_timeout")?;
            positive(sh.command_timeout, "shared.command_timeout")?;
            if sh.queue_max == 0 {
                return Err(ConfigError::new("shared.queue_max", "must be at least 1"));
            }
        }
        let redis = match sh.backend {
            SharedBackend::Memory => None,
            SharedBackend::Redis => Some(fleet::client(sh).map_err(|e| match e {
                SharedError::Url(p) => ConfigError::new("shared.url", p),
                SharedError::Ca(p) => ConfigError::new("shared.tls_ca_file", p),
            })?),
        };
        let se = &self.session;
        session(se, &self.api.prefix, self.cognito.choice_based_sign_in)?;
        let managed_login = managed_login(se)?;
        let templates = if se.enabled {
            Some(
                Templates::load(se.templates_dir.as_deref())
                    .map_err(|p| ConfigError::new("session.templates_dir", p))?,
            )
        } else {
            None
        };
        let fa = &self.forward_auth;
        if fa.enabled {
            check_rule_path(&fa.path)
                .map_err(|p| ConfigError::new("forward_auth.path", p))
                .and_then(|()| {
                    if fa.path == "/" || fa.path.ends_with('/') || fa.path.contains('*') {
                        Err(ConfigError::new(
                            "forward_auth.path",
                            "must be a path not ending with / or /* (for example /_auth/check)",
                        ))
                    } else {
                        Ok(())
                    }
                })?;
            let under =
                |prefix: &str| fa.path == prefix || fa.path.starts_with(&format!("{prefix}/"));
            if under(&self.api.prefix)
                || fa.path == self.health.live_path
                || fa.path == self.health.ready_path
            {
                return Err(ConfigError::new(
                    "forward_auth.path",
                    "must not overlap api.prefix or the health paths",
                ));
            }
            if self.session.enabled {
                let page = fa
                    .path
                    .strip_prefix(self.session.prefix.as_str())
                    .and_then(crate::browser::pages::Page::from_path);
                if page.is_some() || fa.path == self.session.prefix {
                    return Err(ConfigError::new(
                        "forward_auth.path",
                        "must not be one of the session pages",
                    ));
                }
            }
            if self.server.trusted_proxies.is_empty() {
                return Err(ConfigError::new(
                    "server.trusted_proxies",
                    "forward_auth needs the front proxy's addresses here (for example \"127.0.0.1/32\"): \
                     the check believes the original request only from them",
                ));
            }
            if let Some(l) = fa.listen {
                if l == self.server.listen || (self.admin.enabled && l == self.admin.listen) {
                    return Err(ConfigError::new(
                        "forward_auth.listen",
                        "must differ from server.listen and admin.listen",
                    ));
                }
            }
        }
        for (i, u) in self.upstream.upgrades.iter().enumerate() {
            if u.is_empty() || !u.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
                return Err(ConfigError::new(
                    format!("upstream.upgrades[{i}]"),
                    format!("{u:?} is not a protocol token"),
                ));
            }
        }
        for (i, h) in self.upstream.never_forward.iter().enumerate() {
            http::HeaderName::try_from(h.as_str()).map_err(|_| {
                ConfigError::new(
                    format!("upstream.never_forward[{i}]"),
                    format!("{h:?} is not a header name"),
                )
            })?;
        }
        for (key, p) in [
            ("health.live_path", &self.health.live_path),
            ("health.ready_path", &self.health.ready_path),
        ] {
            if !p.starts_with('/') {
                return Err(ConfigError::new(key, "must start with /"));
            }
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| ConfigError::new("log.level", e.to_string()))?;

        Ok(Derived {
            region,
            user_pool_id,
            client_id,
            issuer,
            jwks_url,
            client_ids,
            replica_issuers,
            pools,
            algorithm,
            accept_access,
            accept_id,
            identity,
            upstream,
            upstream_host,
            redis,
            templates,
            managed_login,
        })
    }
}

/// A rule path must be canonical ASCII, so no request path the router accepts can match it
/// through an encoding: `/`, then letters, digits, `-._~` and `/`, no `.`/`..` segments, no
/// `//`, and `*` only as a final `/*`.
pub(super) fn check_rule_path(path: &str) -> Result<(), &'static str> {
    let body = path
        .strip_suffix("/*")
        .map_or(path, |p| if p.is_empty() { "/" } else { p });
    if !body.starts_with('/') {
        return Err("must start with /");
    }
    if !body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/'))
    {
        return Err("may hold only letters, digits, - . _ ~ and /, with * only as a final /*");
    }
    if crate::http::path::canonical_path(body).is_err() {
        return Err("must not contain . or .. segments or //");
    }
    Ok(())
}

fn non_empty(v: &Option<String>, key: &str) -> Result<String, ConfigError> {
    match v.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(ConfigError::new(key, "missing (required)")),
    }
}

pub(super) fn positive(d: Duration, key: &str) -> Result<(), ConfigError> {
    if d.is_zero() {
        Err(ConfigError::new(key, "must be greater than zero"))
    } else {
        Ok(())
    }
}

fn http_url(s: &str, key: &str) -> Result<Uri, ConfigError> {
    let uri: Uri = s
        .parse()
        .map_err(|_| ConfigError::new(key, format!("{s:?} is not a URL")))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) => Ok(uri),
        _ => Err(ConfigError::new(
            key,
            format!("{s:?} is not an http:// or https:// URL"),
        )),
    }
}
