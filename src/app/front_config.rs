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

use crate::browser::session::{CSRF_COOKIE, SESSION_COOKIE};
use crate::config::{Config, Convention};
use crate::http::headers::fold_name;

/// How many of the sidecar's cookies the nginx config removes from one request's `Cookie`
/// (nginx's `map` rewrites one match per map, so the removal is a chain of this many maps).
/// A browser sends at most two (`__Host-` cookies exist once per host); a request with more is
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
    /// Identity headers, as configured (the map, then the claims header).
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
            vec![SESSION_COOKIE, CSRF_COOKIE]
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
    o.line("# README: \"Forward-auth (nginx, Traefik, Envoy)\".");
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

fn nginx(p: &Plan) -> String {
    let mut o = Out(String::new());
    header_comment(&mut o, p, "nginx in front of the app (auth_request)");
    o.line(format!(
        "#   client ─▶ nginx {} ── auth_request {} ──▶ sidecar check {}",
        p.listen, p.check_path, p.check
    ));
    o.line(format!(
        "#                 ├─ {} ─▶ sidecar {}",
        p.own_prefixes.join(", "),
        p.sidecar
    ));
    o.line(format!(
        "#                 └─ everything else, if the check said 200 ─▶ app {}",
        host_port(&p.app_host, p.app_port)
    ));
    o.line("#");
    o.line("# tests/forward_auth.rs runs what this command prints for its own addresses in a real");
    o.line("# nginx in front of an echo app. Start: nginx -p <dir> -c <this file> (relative paths");
    o.line("# below are under <dir>).");
    o.line("");
    o.line("worker_processes 1;");
    o.line("pid nginx.pid;");
    o.line("error_log stderr warn;");
    o.line("");
    o.line("events {");
    o.line("    worker_connections 1024;");
    o.line("}");
    o.line("");
    o.line("http {");
    o.line("    access_log off;");
    o.line("    client_body_temp_path tmp/body;");
    o.line("    proxy_temp_path tmp/proxy;");
    o.line("    fastcgi_temp_path tmp/fastcgi;");
    o.line("    uwsgi_temp_path tmp/uwsgi;");
    o.line("    scgi_temp_path tmp/scgi;");
    o.line("");
    o.line(
        "    # nginx's defaults, stated because the app relies on them: a client header whose name",
    );
    o.line(
        "    # holds `_` or `.` (X_Auth_Sub, x.auth.sub, X_Real_IP: names some app servers read as",
    );
    o.line(
        "    # X-Auth-Sub, X-Real-IP) is dropped, never passed on; so only the spellings with `-`",
    );
    o.line("    # need clearing below.");
    o.line("    underscores_in_headers off;");
    o.line("    ignore_invalid_headers on;");
    o.line("");
    o.line("    upstream app {");
    o.line(format!(
        "        server {};",
        host_port(&p.app_host, p.app_port)
    ));
    o.line("        keepalive 32;");
    o.line("    }");
    o.line("    # The sidecar's main listener: sign-in pages and the login API.");
    o.line("    upstream sidecar {");
    o.line(format!("        server {};", p.sidecar));
    o.line("        keepalive 8;");
    o.line("    }");
    o.line(
        "    # The sidecar's check listener (forward_auth.listen), reachable only from this task.",
    );
    o.line("    upstream sidecar_check {");
    o.line(format!("        server {};", p.check));
    o.line("        keepalive 32;");
    o.line("    }");
    o.line("");
    nginx_upgrade_maps(&mut o, p);
    let app_cookie = nginx_cookie_maps(&mut o, p);
    o.line("    server {");
    o.line(format!("        listen {};", p.listen));
    o.line(
        "        # Redirects as the sidecar wrote them (a path on this host), not made absolute.",
    );
    o.line("        absolute_redirect off;");
    o.line("");
    o.line("        # The check. `internal`: a client asking for it gets 404, only auth_request reaches");
    o.line("        # it. What the sidecar reads: X-Original-Method, X-Original-URI (the raw");
    o.line(
        "        # $request_uri, never nginx's normalized $uri: the sidecar refuses what is not",
    );
    o.line("        # canonical, as its gate does), Host, Upgrade (a WebSocket opened with the session");
    o.line(
        "        # cookie must come from an allowed Origin; Connection stays empty, the check is a",
    );
    o.line(
        "        # plain request), and the client's own headers (Authorization, Cookie, Accept,",
    );
    o.line("        # Sec-Fetch-*, Origin, Referer), which a subrequest carries.");
    o.line(format!("        location = {} {{", p.check_path));
    o.line("            internal;");
    o.line("            proxy_pass http://sidecar_check;");
    o.line("            proxy_http_version 1.1;");
    o.line("            proxy_pass_request_body off;");
    o.line("            proxy_set_header Content-Length \"\";");
    o.line("            proxy_set_header Connection \"\";");
    o.line("            proxy_set_header Upgrade $http_upgrade;");
    o.line("            proxy_set_header Host $http_host;");
    o.line("            proxy_set_header X-Original-Method $request_method;");
    o.line("            proxy_set_header X-Original-URI $request_uri;");
    o.line("        }");
    o.line("");
    o.line("        # The sidecar's own pages (sign-in, new-password, sign-out) and login API: no check.");
    o.line("        # X-Forwarded-For is replaced, never passed on: the sidecar trusts this nginx, so a");
    o.line("        # client's own header would choose the address its login rate limits count.");
    for prefix in &p.own_prefixes {
        o.line(format!("        location {prefix} {{"));
        o.line("            proxy_pass http://sidecar;");
        o.line("            proxy_http_version 1.1;");
        o.line("            proxy_set_header Connection \"\";");
        o.line("            proxy_set_header Host $http_host;");
        o.line("            proxy_set_header X-Forwarded-For $remote_addr;");
        o.line("            proxy_set_header X-Forwarded-Proto $scheme;");
        o.line("        }");
    }
    o.line("");
    o.line("        location / {");
    if !p.cookies.is_empty() {
        o.line(format!(
            "            # More than {NGINX_COOKIE_STEPS} of the sidecar's cookies in one request (a browser sends at"
        ));
        o.line("            # most 2): refused, never passed with one left in.");
        o.line("            if ($sidecar_cookie_left) {");
        o.line("                return 400;");
        o.line("            }");
    }
    o.line(format!("            auth_request {};", p.check_path));
    o.line("            # The sidecar's answer: every header of its identity map (empty when the token has");
    o.line("            # no such claim), the sign-in page for a browser, and the refusal's code.");
    for h in &p.identity {
        o.line(format!(
            "            auth_request_set $auth_{v} $upstream_http_{v};",
            v = var(h)
        ));
    }
    o.line("            auth_request_set $auth_location $upstream_http_location;");
    o.line("            auth_request_set $auth_code $upstream_http_x_sidecar_code;");
    o.line("            error_page 401 = @unauthorized;");
    o.line("            error_page 403 = @forbidden;");
    o.line("");
    o.line("            proxy_pass http://app;");
    o.line("            proxy_http_version 1.1;");
    o.line("            # An upgrade the sidecar would pass (upstream.upgrades) goes on with its Upgrade and");
    o.line("            # Connection: upgrade; anything else is plain HTTP to a kept-alive connection.");
    o.line("            proxy_set_header Upgrade $app_upgrade;");
    o.line("            proxy_set_header Connection $app_connection;");
    o.line("            proxy_set_header Host $http_host;");
    if let Some(c) = &app_cookie {
        o.line(format!("            proxy_set_header Cookie {c};"));
    }
    o.line("            # Set, or cleared when empty: a client-sent identity header of the map never passes.");
    for h in &p.identity {
        o.line(format!(
            "            proxy_set_header {h} $auth_{};",
            var(h)
        ));
    }
    o.line(
        "            # What the sidecar itself writes: the client's address, the scheme, the host.",
    );
    o.line("            proxy_set_header X-Forwarded-For $remote_addr;");
    o.line("            proxy_set_header X-Forwarded-Proto $scheme;");
    o.line("            proxy_set_header X-Forwarded-Host $http_host;");
    o.line("            # upstream.never_forward: headers some app servers re-route, re-method or re-address");
    o.line(
        "            # a request by (the sidecar's gate removes them; here nginx must): cleared.",
    );
    for h in &p.cleared {
        if matches!(
            h.as_str(),
            "x-forwarded-for" | "x-forwarded-proto" | "x-forwarded-host"
        ) {
            continue;
        }
        o.line(format!("            proxy_set_header {h} \"\";"));
    }
    o.line("        }");
    o.line("");
    o.line("        # A browser navigation without a session: the sidecar's Location (its sign-in page,");
    o.line("        # returning to this path). Anything else: the sidecar's 401, as JSON.");
    o.line("        location @unauthorized {");
    o.line("            default_type application/json;");
    o.line("            if ($auth_location) {");
    o.line("                return 302 $auth_location;");
    o.line("            }");
    o.line("            return 401 '{\"message\":\"authentication required\",\"code\":\"$auth_code\"}';");
    o.line("        }");
    o.line("        location @forbidden {");
    o.line("            default_type application/json;");
    o.line("            return 403 '{\"message\":\"not allowed\",\"code\":\"$auth_code\"}';");
    o.line("        }");
    o.line("    }");
    o.line("}");
    o.0
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `$app_upgrade` (the client's `Upgrade`, or empty) and `$app_connection` (`upgrade`, or
/// empty), by the sidecar's rule: a `GET` over HTTP/1.1 without a body, `Connection`
/// naming `upgrade`, one protocol of `upstream.upgrades`.
fn nginx_upgrade_maps(o: &mut Out, p: &Plan) {
    o.line("    # WebSocket (upstream.upgrades), by the sidecar's own rule: a GET over HTTP/1.1 without");
    o.line("    # a body, Connection naming upgrade, Upgrade one allowed protocol. Anything else (h2c,");
    o.line("    # which would let a client talk to the app past the check) goes on as plain HTTP.");
    o.line("    map \"$request_method|$server_protocol|$http_content_length$http_transfer_encoding|$http_connection|$http_upgrade\" $app_upgrade {");
    o.line("        default \"\";");
    if !p.upgrades.is_empty() {
        let alts = p
            .upgrades
            .iter()
            .map(|u| re_escape(u))
            .collect::<Vec<_>>()
            .join("|");
        o.line(format!(
            "        \"~*^GET\\|HTTP/1\\.1\\|0?\\|(?:[^|]*,)?\\s*upgrade\\s*(?:,[^|]*)?\\|\\s*(?:{alts})\\s*$\" $http_upgrade;"
        ));
    }
    o.line("    }");
    o.line("    # Empty, not `close`, for a plain request: the app's connections stay kept alive.");
    o.line("    map $app_upgrade $app_connection {");
    o.line("        default upgrade;");
    o.line("        \"\" \"\";");
    o.line("    }");
    o.line("");
}

/// The chain of maps that removes every one of the sidecar's cookies from `Cookie`; returns
/// the variable of the result (`None` with browser sessions off: nothing to remove).
fn nginx_cookie_maps(o: &mut Out, p: &Plan) -> Option<String> {
    if p.cookies.is_empty() {
        return None;
    }
    let names = p
        .cookies
        .iter()
        .map(|c| re_escape(c))
        .collect::<Vec<_>>()
        .join("|");
    let [first, later, left] = cookie_patterns(&names);
    o.line(
        "    # The sidecar's cookies never reach the app (its own gate removes them too). A `map`",
    );
    o.line("    # rewrites one match, so each map removes one of them (named as the sidecar reads");
    o.line(
        "    # a pair: between `;`s, blanks around the name ignored), and the next map the next:",
    );
    o.line(format!(
        "    # {NGINX_COOKIE_STEPS} in all. Several Cookie headers arrive joined by \"; \" in $http_cookie."
    ));
    let mut from = "$http_cookie".to_string();
    for step in 1..=NGINX_COOKIE_STEPS {
        let to = format!("$app_cookie_{step}");
        o.line(format!("    map {from} {to} {{"));
        o.line(format!("        default {from};"));
        o.line(format!("        \"~{first}\" \"$rest\";"));
        o.line(format!("        \"~{later}\" \"$head$tail\";"));
        o.line("    }");
        from = to;
    }
    o.line("    # One still there: more than the chain removes.");
    o.line(format!("    map {from} $sidecar_cookie_left {{"));
    o.line("        default \"\";");
    o.line(format!("        \"~{left}\" 1;"));
    o.line("    }");
    o.line("");
    Some(from)
}

/// The nginx `map` regexes for the sidecar's cookies (`names`: an alternation): the first
/// pair (`rest` after it), a later pair (`head` before it, `tail` after), and any pair left.
/// A pair is named as the sidecar reads it: between `;`s, blanks around the name ignored.
fn cookie_patterns(names: &str) -> [String; 3] {
    let pair = format!("\\s*(?:{names})\\s*(?:=[^;]*)?");
    [
        format!("^{pair}(?:;\\s*|$)(?<rest>.*)$"),
        format!("^(?<head>.*?)\\s*;{pair}(?<tail>(?:;.*)?)$"),
        format!("(?:^|;){pair}(?:;|$)"),
    ]
}

// === Traefik ===

/// Traefik's `authResponseHeadersRegex`: every spelling of the identity namespace
/// (`identity.strip_prefixes`) and of each identity header outside it.
fn traefik_identity_regex(p: &Plan) -> String {
    let mut alts: Vec<String> = p
        .strip_prefixes
        .iter()
        .map(|prefix| spelling_re(prefix))
        .collect();
    for h in &p.identity {
        let folded = fold_name(h);
        if !p
            .strip_prefixes
            .iter()
            .any(|s| folded.starts_with(s.as_str()))
        {
            alts.push(format!("{}$", spelling_re(&folded)));
        }
    }
    match alts.as_slice() {
        [one] => format!("(?i)^{one}"),
        _ => format!("(?i)^(?:{})", alts.join("|")),
    }
}

fn traefik(p: &Plan) -> String {
    let mut o = Out(String::new());
    header_comment(
        &mut o,
        p,
        "Traefik (v2.x / v3.x) in front of the app (ForwardAuth)",
    );
    o.line(
        "# This is Traefik's *dynamic* configuration (file provider); the static one only needs an",
    );
    o.line("# entry point and this file, for example:");
    o.line("#");
    o.line(format!(
        "#   entryPoints: {{ web: {{ address: \"{}\" }} }}",
        p.listen
    ));
    o.line("#   providers: { file: { filename: /etc/traefik/dynamic.yml } }");
    o.line("#");
    o.line("# What Traefik sends the check (a GET to `address`): X-Forwarded-Method, -Proto, -Host, -Uri");
    o.line("# (the original request's, raw), -For, and every header of the original request");
    o.line("# (Authorization, Cookie, Accept, Sec-Fetch-*, Origin, Referer). What it does with the answer:");
    o.line("# 2xx → the request goes on, with the headers `authResponseHeadersRegex` matches copied from");
    o.line("# the answer after removing the client's own; anything else → the sidecar's answer goes to the");
    o.line("# client as is (401 with WWW-Authenticate, 403, 400 for a path or method the gate refuses, 302");
    o.line("# to the sign-in page for a browser without a session).");
    o.line("");
    o.line("http:");
    o.line("  middlewares:");
    o.line("    cognito-sidecar:");
    o.line("      forwardAuth:");
    o.line(format!(
        "        address: \"http://{}{}\"",
        p.check, p.check_path
    ));
    o.line("        # Never true: with it, a client's own X-Forwarded-Uri / -Method would be the");
    o.line("        # \"original request\" the sidecar judges, not the one Traefik routes.");
    o.line("        trustForwardHeader: false");
    o.line("        # The sidecar answers every header of its identity map (empty when the token has no such");
    o.line(
        "        # claim). The regex also removes the client's own spellings of them (X_Auth_Sub,",
    );
    o.line("        # x.auth.sub, which some app servers read as X-Auth-Sub) before copying.");
    o.line(format!(
        "        authResponseHeadersRegex: \"{}\"",
        traefik_identity_regex(p).replace('\\', "\\\\")
    ));
    o.line("    # upstream.never_forward: headers some app servers re-route, re-method or re-address a");
    o.line("    # request by (the sidecar's gate removes them; here Traefik must). An empty value removes");
    o.line("    # the header. Traefik writes X-Forwarded-For, -Proto and -Host itself. It passes names");
    o.line("    # with `_` or `.` (X_Real_IP): the app must not read those spellings.");
    o.line("    cognito-sidecar-clear:");
    o.line("      headers:");
    o.line("        customRequestHeaders:");
    for h in &p.cleared {
        if matches!(
            h.as_str(),
            "x-forwarded-for" | "x-forwarded-proto" | "x-forwarded-host"
        ) {
            continue;
        }
        o.line(format!("          {h}: \"\""));
    }
    o.line("");
    o.line("  routers:");
    o.line(
        "    # The sidecar's own pages (sign-in, new-password, sign-out) and login API: no check.",
    );
    o.line("    sidecar-pages:");
    o.line("      entryPoints: [web]");
    o.line(format!(
        "      rule: \"{}\"",
        p.own_prefixes
            .iter()
            .map(|x| format!("PathPrefix(`{x}`)"))
            .collect::<Vec<_>>()
            .join(" || ")
    ));
    o.line("      priority: 100");
    o.line("      service: sidecar");
    o.line("    app:");
    o.line("      entryPoints: [web]");
    o.line("      rule: \"PathPrefix(`/`)\"");
    o.line("      priority: 1");
    o.line("      middlewares: [cognito-sidecar-clear, cognito-sidecar]");
    o.line("      service: app");
    o.line("");
    o.line("  services:");
    o.line("    app:");
    o.line("      loadBalancer:");
    o.line("        servers:");
    o.line(format!(
        "          - url: \"http://{}\"",
        host_port(&p.app_host, p.app_port)
    ));
    o.line("    sidecar:");
    o.line("      loadBalancer:");
    o.line("        servers:");
    o.line(format!("          - url: \"http://{}\"", p.sidecar));
    o.0
}

// === Envoy ===

fn envoy_cluster(o: &mut Out, name: &str, host: &str, port: u16) {
    let kind = if host.parse::<IpAddr>().is_ok() {
        "STATIC"
    } else {
        "STRICT_DNS"
    };
    o.line(format!("    - name: {name}"));
    o.line(format!("      type: {kind}"));
    o.line("      connect_timeout: 1s");
    o.line("      load_assignment:");
    o.line(format!("        cluster_name: {name}"));
    o.line("        endpoints:");
    o.line("          - lb_endpoints:");
    o.line(format!(
        "              - endpoint: {{ address: {{ socket_address: {{ address: \"{host}\", port_value: {port} }} }} }}"
    ));
}

fn envoy(p: &Plan) -> String {
    let mut o = Out(String::new());
    header_comment(
        &mut o,
        p,
        "Envoy (v3 API) in front of the app (ext_authz HTTP service)",
    );
    o.line(
        "# A static bootstrap: envoy -c envoy.yaml. With App Mesh or ECS Service Connect the same",
    );
    o.line("# ext_authz filter goes in the listener they generate.");
    o.line("#");
    o.line("# What Envoy sends the check: the original method, path_prefix + the original path and query,");
    o.line("# the original Host, Authorization, and the headers in allowed_headers. The answer: 200 → the");
    o.line("# request goes on with the identity headers of the answer (every header of the sidecar's map,");
    o.line("# empty when the token has no such claim, so they overwrite the client's own); anything else →");
    o.line("# the sidecar's status and body go to the client, with the headers in allowed_client_headers.");
    o.line("");
    o.line("static_resources:");
    o.line("  listeners:");
    o.line("    - name: ingress");
    o.line("      address:");
    o.line(format!(
        "        socket_address: {{ address: \"{}\", port_value: {} }}",
        p.listen.ip(),
        p.listen.port()
    ));
    o.line("      filter_chains:");
    o.line("        - filters:");
    o.line("            - name: envoy.filters.network.http_connection_manager");
    o.line("              typed_config:");
    o.line("                \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager");
    o.line("                stat_prefix: ingress");
    o.line("                # Envoy appends the client's address to X-Forwarded-For; the sidecar (trusting");
    o.line(
        "                # Envoy) reads it from the right, so a client cannot choose its address.",
    );
    o.line("                use_remote_address: true");
    o.line("                # The sidecar judges the path the app will receive: Envoy must not rewrite it");
    o.line(
        "                # (the sidecar refuses a path that is not canonical, as its gate does).",
    );
    o.line("                normalize_path: false");
    o.line("                merge_slashes: false");
    o.line("                path_with_escaped_slashes_action: KEEP_UNCHANGED");
    o.line(
        "                # WebSocket only (upstream.upgrades): any other Upgrade is not honoured.",
    );
    o.line("                upgrade_configs:");
    for u in &p.upgrades {
        o.line(format!("                  - upgrade_type: {u}"));
    }
    if p.upgrades.is_empty() {
        o.line("                  []");
    }
    o.line("                common_http_protocol_options:");
    o.line("                  # A client's X_Auth_Sub (read as X-Auth-Sub by some app servers) never passes.");
    o.line("                  headers_with_underscores_action: DROP_HEADER");
    o.line("                route_config:");
    o.line("                  virtual_hosts:");
    o.line("                    - name: app");
    o.line("                      domains: [\"*\"]");
    o.line("                      routes:");
    o.line("                        # The sidecar's own pages and login API: no check.");
    for prefix in &p.own_prefixes {
        o.line(format!(
            "                        - match: {{ prefix: \"{prefix}\" }}"
        ));
        o.line("                          route: { cluster: sidecar }");
        o.line("                          typed_per_filter_config:");
        o.line("                            envoy.filters.http.ext_authz:");
        o.line("                              \"@type\": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute");
        o.line("                              disabled: true");
    }
    o.line("                        - match: { prefix: \"/\" }");
    o.line("                          route: { cluster: app }");
    o.line("                          # upstream.never_forward and X-Forwarded-Host: headers some app servers");
    o.line(
        "                          # re-route, re-method or re-address a request by. Envoy writes",
    );
    o.line(
        "                          # X-Forwarded-For and -Proto itself. It passes names with `.`",
    );
    o.line("                          # (x.real.ip): the app must not read those spellings.");
    o.line("                          request_headers_to_remove:");
    for h in &p.cleared {
        if matches!(h.as_str(), "x-forwarded-for" | "x-forwarded-proto") {
            continue;
        }
        o.line(format!("                            - {h}"));
    }
    o.line("                http_filters:");
    o.line("                  - name: envoy.filters.http.ext_authz");
    o.line("                    typed_config:");
    o.line("                      \"@type\": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz");
    o.line("                      transport_api_version: V3");
    o.line(
        "                      # The sidecar unreachable: refuse, never let the request through.",
    );
    o.line("                      failure_mode_allow: false");
    o.line("                      http_service:");
    o.line("                        server_uri:");
    o.line(format!(
        "                          uri: \"http://{}\"",
        p.check
    ));
    o.line("                          cluster: sidecar_check");
    o.line("                          timeout: 2s");
    o.line(format!(
        "                        path_prefix: {}",
        p.check_path
    ));
    o.line("                        authorization_request:");
    o.line("                          # Besides Host, :method, :path, Content-Length and Authorization,");
    o.line("                          # which Envoy always sends: what browser sessions need.");
    o.line("                          allowed_headers:");
    o.line("                            patterns:");
    for h in [
        "cookie",
        "accept",
        "sec-fetch-mode",
        "sec-fetch-site",
        "origin",
        "referer",
        "upgrade",
        "x-request-id",
    ] {
        o.line(format!("                              - exact: {h}"));
    }
    o.line("                        authorization_response:");
    o.line(
        "                          # Every header of the identity map, as the check answers it.",
    );
    o.line("                          allowed_upstream_headers:");
    o.line("                            patterns:");
    for h in &p.identity {
        o.line(format!(
            "                              - exact: {}",
            h.to_ascii_lowercase()
        ));
    }
    o.line("                          allowed_client_headers:");
    o.line("                            patterns:");
    for h in [
        "www-authenticate",
        "location",
        "set-cookie",
        "content-type",
        "cache-control",
    ] {
        o.line(format!("                              - exact: {h}"));
    }
    o.line("                  - name: envoy.filters.http.router");
    o.line("                    typed_config:");
    o.line("                      \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router");
    o.line("");
    o.line("  clusters:");
    envoy_cluster(
        &mut o,
        "sidecar_check",
        &p.check.ip().to_string(),
        p.check.port(),
    );
    envoy_cluster(
        &mut o,
        "sidecar",
        &p.sidecar.ip().to_string(),
        p.sidecar.port(),
    );
    envoy_cluster(&mut o, "app", &p.app_host, p.app_port);
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Config {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/forward-auth/sidecar.toml"
        );
        Config::load(std::path::Path::new(path)).expect("the sample loads")
    }

    fn listen() -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 8080))
    }

    fn with(proxy: Convention) -> Config {
        let mut c = sample();
        c.forward_auth.convention = proxy;
        c
    }

    #[test]
    fn shipped_files_are_the_sample_rendered() {
        for (proxy, shipped) in [
            (
                Convention::Nginx,
                include_str!("../../deploy/forward-auth/nginx.conf"),
            ),
            (
                Convention::Traefik,
                include_str!("../../deploy/forward-auth/traefik.yml"),
            ),
            (
                Convention::Envoy,
                include_str!("../../deploy/forward-auth/envoy.yaml"),
            ),
        ] {
            let text = render(proxy, &with(proxy), listen()).expect("renders");
            assert!(
                text == shipped,
                "deploy/forward-auth's {} file is stale: regenerate it (see sidecar.toml)",
                name(proxy)
            );
        }
    }

    #[test]
    fn every_never_forwarded_header_is_cleared_by_each_proxy() {
        let issue = [
            "x-forwarded-path",
            "x-envoy-original-path",
            "x-real-ip",
            "forwarded",
            "true-client-ip",
            "x-original-host",
            "x-host",
            "client-ip",
            "x-forwarded-port",
            "x-forwarded-scheme",
            "x-forwarded-ssl",
            "x-forwarded-server",
        ];
        let mut c = with(Convention::Nginx);
        c.upstream.never_forward.push("X_Custom.Route".into());
        let nginx = render(Convention::Nginx, &c, listen()).expect("nginx");
        for h in issue
            .iter()
            .copied()
            .chain(crate::config::NEVER_FORWARD.iter().copied())
            .chain(["x-custom-route"])
        {
            assert!(
                nginx.contains(&format!("proxy_set_header {h} \"\";")),
                "nginx: {h}"
            );
        }
        // What nginx sets itself is never also cleared.
        for h in ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"] {
            assert!(
                !nginx.contains(&format!("proxy_set_header {h} \"\"")),
                "{h}"
            );
        }
        c.forward_auth.convention = Convention::Traefik;
        let traefik = render(Convention::Traefik, &c, listen()).expect("traefik");
        c.forward_auth.convention = Convention::Envoy;
        let envoy = render(Convention::Envoy, &c, listen()).expect("envoy");
        for h in issue.iter().copied().chain(["x-custom-route"]) {
            assert!(
                traefik.contains(&format!("          {h}: \"\"\n")),
                "traefik: {h}"
            );
            assert!(envoy.contains(&format!("      - {h}\n")), "envoy: {h}");
        }
    }

    #[test]
    fn refusals_name_the_key() {
        type Edit = fn(&mut Config);
        let cases: &[(Convention, Edit, &str)] = &[
            (
                Convention::Nginx,
                |c| c.forward_auth.enabled = false,
                "forward_auth.enabled",
            ),
            (Convention::Traefik, |_| {}, "forward_auth.convention"),
            (
                Convention::Nginx,
                |c| c.upstream.url = "http://127.0.0.1:3000/app".into(),
                "upstream.url",
            ),
            (
                Convention::Nginx,
                |c| c.identity.headers[1].name = "X_Auth_User".into(),
                "identity.headers[1].name",
            ),
            (
                Convention::Nginx,
                |c| c.identity.claims_header = Some("X.Claims".into()),
                "identity.claims_header",
            ),
            (
                Convention::Nginx,
                |c| c.upstream.upgrades = vec!["web socket".into()],
                "upstream.upgrades[0]",
            ),
        ];
        for (proxy, edit, key) in cases {
            let mut c = sample();
            edit(&mut c);
            let e = render(*proxy, &c, listen()).expect_err(key);
            assert_eq!(e.key, *key, "{e}");
        }
    }

    #[test]
    fn addresses_identity_and_prefixes_follow_the_configuration() {
        let mut c = with(Convention::Nginx);
        c.server.listen = "0.0.0.0:8081".parse().expect("addr");
        c.forward_auth.listen = None;
        c.forward_auth.path = "/authz".into();
        c.upstream.url = "http://app.internal:8000".into();
        c.api.prefix = "/auth-api".into();
        c.session.enabled = false;
        c.identity.headers.push(crate::config::HeaderClaim {
            name: "X-User-Id".into(),
            claims: vec!["sub".into()],
        });
        let nginx =
            render(Convention::Nginx, &c, "127.0.0.1:80".parse().expect("addr")).expect("nginx");
        for want in [
            "        listen 127.0.0.1:80;",
            "        server app.internal:8000;",
            // The check on the main listener, dialled on loopback.
            "    upstream sidecar_check {\n        server 127.0.0.1:8081;",
            "        location = /authz {",
            "        location /auth-api/ {",
            "            auth_request_set $auth_x_user_id $upstream_http_x_user_id;",
            "            proxy_set_header X-User-Id $auth_x_user_id;",
        ] {
            assert!(nginx.contains(want), "{want}\n{nginx}");
        }
        // Sessions off: no pages to route, no cookies to remove.
        assert!(!nginx.contains("location /_auth/"));
        assert!(!nginx.contains("$sidecar_cookie_left"));
        assert!(!nginx.contains("proxy_set_header Cookie"));

        c.forward_auth.convention = Convention::Traefik;
        let traefik = render(Convention::Traefik, &c, listen()).expect("traefik");
        assert!(
            traefik.contains(
                "authResponseHeadersRegex: \"(?i)^(?:x[-_.]auth[-_.]|x[-_.]user[-_.]id$)\""
            ),
            "{traefik}"
        );
        assert!(traefik.contains("address: \"http://127.0.0.1:8081/authz\""));
        c.forward_auth.convention = Convention::Envoy;
        let envoy = render(Convention::Envoy, &c, listen()).expect("envoy");
        assert!(envoy.contains("- exact: x-user-id\n"), "{envoy}");
        assert!(envoy.contains("type: STRICT_DNS"), "{envoy}");
        assert!(envoy.contains("path_prefix: /authz\n"), "{envoy}");
    }

    #[test]
    fn traefik_regex_matches_every_spelling_of_the_identity_and_nothing_else() {
        let mut c = with(Convention::Traefik);
        c.identity.headers.push(crate::config::HeaderClaim {
            name: "X-User-Id".into(),
            claims: vec!["sub".into()],
        });
        let plan = plan(Convention::Traefik, &c, listen()).expect("plan");
        let re = regex::Regex::new(&traefik_identity_regex(&plan)).expect("regex");
        for n in [
            "X-Auth-Sub",
            "x_auth.groups",
            "X.AUTH-anything",
            "x-user-id",
            "X_User.Id",
        ] {
            assert!(re.is_match(n), "{n}");
        }
        for n in ["X-Authority", "X-User-Idx", "Authorization", "x-user"] {
            assert!(!re.is_match(n), "{n}");
        }
    }

    /// nginx's cookie chain, run with the same regexes (PCRE and Rust's regex agree on them),
    /// gives what the sidecar's own gate gives (`forward::to_upstream`, step 10).
    #[test]
    fn the_cookie_chain_removes_what_the_sidecar_removes() {
        let [first, later, left] = cookie_patterns(&format!(
            "{}|{}",
            re_escape(SESSION_COOKIE),
            re_escape(CSRF_COOKIE)
        ));
        let first = regex::Regex::new(&first).expect("first");
        let later = regex::Regex::new(&later).expect("later");
        let left = regex::Regex::new(&left).expect("left");
        let nginx = |cookie: &str| -> Option<String> {
            let mut v = cookie.to_string();
            for _ in 0..NGINX_COOKIE_STEPS {
                v = if let Some(m) = first.captures(&v) {
                    m["rest"].to_string()
                } else if let Some(m) = later.captures(&v) {
                    format!("{}{}", &m["head"], &m["tail"])
                } else {
                    v
                };
            }
            (!left.is_match(&v)).then_some(v)
        };
        let sidecar = |cookie: &str| -> String {
            cookie
                .split(';')
                .map(str::trim)
                .filter(|p| {
                    let n = p.split_once('=').map_or(*p, |(n, _)| n).trim();
                    !p.is_empty() && n != SESSION_COOKIE && n != CSRF_COOKIE
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        let s = "__Host-sidecar-session=A";
        let c = "__Host-sidecar-csrf=B";
        for cookie in [
            s.to_string(),
            format!("{s}; {c}"),
            format!("a=1; {s}"),
            format!("{s}; a=1"),
            format!("a=1; {s}; b=2; {c}; d=4"),
            format!("{s};{s};{c};{s}"),
            format!("a=1;{s} ;b=2"),
            format!(" {s} ; a=1"),
            "__Host-sidecar-session".to_string(),
            "a=1; __Host-sidecar-csrf".to_string(),
            "__Host-sidecar-sessions=1; a__Host-sidecar-csrf=2".to_string(),
            "a=1; b=2".to_string(),
        ] {
            // The same pairs as the sidecar keeps, none of its own (nginx keeps the client's
            // separators: `a=1;b=2` stays so, the sidecar writes `a=1; b=2`).
            let got = nginx(&cookie).unwrap_or_else(|| panic!("{cookie:?}: one left"));
            assert_eq!(sidecar(&got), sidecar(&cookie), "{cookie:?} gave {got:?}");
        }
        let five = [s; NGINX_COOKIE_STEPS + 1].join("; ");
        assert_eq!(nginx(&five), None, "more than the chain removes is caught");
    }
}
