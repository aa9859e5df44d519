//! The front proxy's side of forward-auth (`cognito-sidecar forward-auth-config
//! nginx|traefik|envoy`), rendered from the sidecar's own configuration so the two can never
//! disagree: the identity map the proxy copies from the check's answer, the headers it clears
//! (`upstream.never_forward` and the forwarded headers the sidecar itself rewrites), the
//! sidecar's cookies, the upgrades it lets through (`upstream.upgrades`), the check's address
//! and path, the sidecar's own pages and login API, and the app.
//!
//! Pure: text in, text out. The files in `deploy/forward-auth/` are this module's output for
//! `deploy/forward-auth/sidecar.toml` (a test compares them byte for byte).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::Uri;

use crate::browser::session::COOKIES;
use crate::config::{Config, Convention};
use crate::http::headers::fold_name;

mod envoy;
mod nginx;
mod traefik;

use envoy::envoy;
use nginx::nginx;
use traefik::traefik;

/// How many of the sidecar's cookies the nginx config removes from one request's `Cookie`
/// (nginx's `map` rewrites one match per map, so the removal is a chain of this many maps).
/// A browser sends at most three (`__Host-` cookies exist once per host); a request with more is
/// refused (400) rather than passed with one left in.
pub const NGINX_COOKIE_STEPS: usize = 4;

/// Why a front proxy's config cannot be rendered from this configuration.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct RenderError {
    /// The configuration key at fault, as in `proxy.toml`.
    pub key: String,
    pub problem: String,
}

fn err(key: impl Into<String>, problem: impl Into<String>) -> RenderError {
    RenderError {
        key: key.into(),
        problem: problem.into(),
    }
}

/// Everything a front proxy's config is made of, read once from a `Config`.
#[derive(Debug, Clone)]
struct Plan {
    convention: Convention,
    /// Where the front proxy itself listens.
    listen: SocketAddr,
    /// The sidecar's main listener (pages, login API), as the front proxy dials it.
    sidecar: SocketAddr,
    /// The check's listener (`forward_auth.listen`, else the main one).
    check: SocketAddr,
    check_path: String,
    /// The app: host and port of `upstream.url`.
    app_host: String,
    app_port: u16,
    /// Path prefixes (ending in `/`) the sidecar serves itself: its pages, its login API.
    own_prefixes: Vec<String>,
    /// Identity headers, as configured (the principal header, the map, then the claims header).
    identity: Vec<String>,
    /// `identity.strip_prefixes`, folded.
    strip_prefixes: Vec<String>,
    /// Header names (folded, sorted, unique) the app never receives from a client.
    cleared: Vec<String>,
    /// `upstream.upgrades`, lower case.
    upgrades: Vec<String>,
    /// The sidecar's cookies, when browser sessions are on.
    cookies: Vec<&'static str>,
    /// The `[forward_auth]`/`[server]` lines of `proxy.toml` this config goes with.
    sidecar_toml: Vec<String>,
}

/// The front proxy's configuration for `proxy` (nginx: a whole `nginx.conf`; Traefik: a
/// dynamic configuration file; Envoy: a static bootstrap), listening on `listen`.
pub fn render(proxy: Convention, cfg: &Config, listen: SocketAddr) -> Result<String, RenderError> {
    let plan = plan(proxy, cfg, listen)?;
    Ok(match proxy {
        Convention::Nginx => nginx(&plan),
        Convention::Traefik => traefik(&plan),
        Convention::Envoy => envoy(&plan),
    })
}

fn name(c: Convention) -> &'static str {
    match c {
        Convention::Nginx => "nginx",
        Convention::Traefik => "traefik",
        Convention::Envoy => "envoy",
    }
}

/// A listener address as a peer dials it: an unspecified address becomes loopback.
fn dialable(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), a.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), a.port())
        }
        _ => a,
    }
}

fn plan(proxy: Convention, cfg: &Config, listen: SocketAddr) -> Result<Plan, RenderError> {
    let fa = &cfg.forward_auth;
    if !fa.enabled {
        return Err(err(
            "forward_auth.enabled",
            "is false: the front proxy would ask a check the sidecar does not serve",
        ));
    }
    if fa.convention != proxy {
        return Err(err(
            "forward_auth.convention",
            format!(
                "is {:?}, so the sidecar would not read {}'s headers: set forward_auth.convention = {:?} \
                 (or SIDECAR_FORWARD_AUTH__CONVENTION={})",
                name(fa.convention),
                name(proxy),
                name(proxy),
                name(proxy)
            ),
        ));
    }
    let uri: Uri = cfg
        .upstream
        .url
        .parse()
        .map_err(|_| err("upstream.url", "is not a URL"))?;
    if !matches!(uri.path(), "" | "/") {
        return Err(err(
            "upstream.url",
            "has a path: the front proxy sends the app the path the check judged, unprefixed \
             (use a URL without a path)",
        ));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| err("upstream.url", "has no host"))?;
    let app_host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let app_port = authority.port_u16().unwrap_or(80);

    let mut identity = Vec::new();
    let mut keys = Vec::new();
    if !cfg.identity.principal_header.is_empty() {
        identity.push(cfg.identity.principal_header.clone());
        keys.push("identity.principal_header".into());
    }
    for (i, h) in cfg.identity.headers.iter().enumerate() {
        identity.push(h.name.clone());
        keys.push(format!("identity.headers[{i}].name"));
    }
    if let Some(c) = &cfg.identity.claims_header {
        identity.push(c.clone());
        keys.push("identity.claims_header".into());
    }
    for (n, key) in identity.iter().zip(&keys) {
        // nginx names a header's variable by it with `-` read as `_`; a `_` or `.` in the
        // name would make two headers one variable, or none.
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(err(
                key.as_str(),
                format!("{n:?}: a front proxy's identity header must be letters, digits and -"),
            ));
        }
    }
    let mut cleared: Vec<String> = cfg
        .upstream
        .never_forward
        .iter()
        .map(|h| fold_name(h))
        .chain(
            crate::http::headers::FORWARDED_FAMILY
                .iter()
                .map(|h| h.to_string()),
        )
        .collect();
    // What the front proxy sets itself (`Host`, `Cookie` without the sidecar's, the upgrade
    // pair, the identity) is never in the list: it would clear what it just set.
    let own: Vec<String> = identity.iter().map(|h| fold_name(h)).collect();
    cleared.retain(|h| {
        !matches!(h.as_str(), "host" | "cookie" | "upgrade" | "connection") && !own.contains(h)
    });
    cleared.sort();
    cleared.dedup();
    for (i, h) in cleared.iter().enumerate() {
        if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(err(
                format!("upstream.never_forward[{i}]"),
                format!("{h:?}: must be letters, digits and - (after folding _ and .)"),
            ));
        }
    }
    for (i, u) in cfg.upstream.upgrades.iter().enumerate() {
        if !u
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'/' | b'_'))
        {
            return Err(err(
                format!("upstream.upgrades[{i}]"),
                format!("{u:?}: a front proxy's upgrade must be letters, digits, - . _ /"),
            ));
        }
    }
    let mut own_prefixes = Vec::new();
    if cfg.session.enabled {
        own_prefixes.push(format!("{}/", cfg.session.prefix));
    }
    own_prefixes.push(format!("{}/", cfg.api.prefix));
    let sidecar = dialable(cfg.server.listen);
    let check = fa.listen.map_or(sidecar, dialable);

    let mut sidecar_toml = vec![
        "[server]".to_string(),
        format!("listen = \"{}\"", cfg.server.listen),
        format!(
            "trusted_proxies = [{}]",
            cfg.server
                .trusted_proxies
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "[forward_auth]".to_string(),
        "enabled = true".to_string(),
        format!("convention = \"{}\"", name(proxy)),
        format!("path = \"{}\"", fa.path),
    ];
    if let Some(l) = fa.listen {
        sidecar_toml.push(format!("listen = \"{l}\""));
    }
    if cfg.session.enabled {
        sidecar_toml.push("[session]".into());
        sidecar_toml.push("enabled = true".into());
    }
    Ok(Plan {
        convention: proxy,
        listen,
        sidecar,
        check,
        check_path: fa.path.clone(),
        app_host,
        app_port,
        own_prefixes,
        identity,
        strip_prefixes: cfg
            .identity
            .strip_prefixes
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| fold_name(p))
            .collect(),
        cleared,
        upgrades: cfg
            .upstream
            .upgrades
            .iter()
            .map(|u| u.to_ascii_lowercase())
            .collect(),
        cookies: if cfg.session.enabled {
            COOKIES.to_vec()
        } else {
            Vec::new()
        },
        sidecar_toml,
    })
}

/// Text built line by line.
struct Out(String);

impl Out {
    fn line(&mut self, s: impl AsRef<str>) {
        self.0.push_str(s.as_ref());
        self.0.push('\n');
    }
}

/// `s` with every regex metacharacter escaped (PCRE, Go's RE2 and Rust's regex agree).
fn re_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A folded header name as a pattern every spelling of it matches (`-`, `_`, `.` alike).
fn spelling_re(folded: &str) -> String {
    folded
        .split('-')
        .map(re_escape)
        .collect::<Vec<_>>()
        .join("[-_.]")
}

/// The nginx variable of a header name (`X-Auth-Sub` → `x_auth_sub`).
fn var(header: &str) -> String {
    header.to_ascii_lowercase().replace('-', "_")
}

fn header_comment(o: &mut Out, p: &Plan, what: &str) {
    o.line(format!("# {what}, with cognito-sidecar as its authorizer."));
    o.line("# Documentation: docs/src/forward-auth.md, \"Forward-auth (nginx, Traefik, Envoy)\".");
    o.line("#");
    o.line(format!(
        "# Generated by `cognito-sidecar forward-auth-config {} --config proxy.toml` from the",
        name(p.convention)
    ));
    o.line(
        "# sidecar's own configuration: the identity map, the headers the app never receives, the",
    );
    o.line("# sidecar's cookies, the upgrades it passes, its addresses and the app's.");
    o.line("# Generate it again after changing those rather than editing it by hand.");
    o.line("#");
    o.line("# The sidecar's side (proxy.toml):");
    for l in &p.sidecar_toml {
        o.line(format!("#   {l}"));
    }
    o.line("#");
}

// === nginx ===

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests;
