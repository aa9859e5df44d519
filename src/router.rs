//! Where a request goes: the sidecar's own endpoints (health, auth API) or the gate, and which
//! access rule applies. Pure: no I/O.
//!
//! Rules are matched on a normalized path (percent-decoded once, `\` read as `/`, `;params`
//! dropped, dot segments resolved, duplicate slashes collapsed) so that `/public/../admin`,
//! `/public/%2e%2e/admin`, `/public/..;/admin` or `//admin` cannot borrow a public rule. The
//! upstream still receives the original path. Paths that stay ambiguous after one decoding
//! (a `%` left over, NUL, invalid UTF-8) are refused.

use std::sync::Arc;

use http::Method;

use crate::config::{Access, Config};

/// One of the auth API's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Login,
    NewPassword,
    Refresh,
    Logout,
}

impl Endpoint {
    /// The endpoint's path segment, for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Login => "login",
            Endpoint::NewPassword => "new-password",
            Endpoint::Refresh => "refresh",
            Endpoint::Logout => "logout",
        }
    }
}

/// Who may pass the gate for a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Public,
    Authenticated,
    /// Authenticated and in one of these `cognito:groups`.
    Groups(Arc<[String]>),
}

/// The outcome of routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Live,
    Ready,
    /// The auth API's OpenAPI document, `<prefix>/openapi.json`.
    OpenApi,
    /// A sidecar-owned path with a method it does not serve (the `Allow` value).
    WrongMethod(&'static str),
    Auth(Endpoint),
    Gate(Rule),
}

/// A path that cannot be matched safely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request path is not acceptable")]
pub struct BadPath;

struct CompiledRule {
    pattern: String,
    prefix: bool,
    methods: Vec<Method>,
    rule: Rule,
}

/// The compiled routing table.
pub struct Router {
    live: String,
    ready: String,
    auth_prefix: String,
    rules: Vec<CompiledRule>,
}

impl Router {
    /// Compiles the table from a validated configuration.
    pub fn new(cfg: &Config) -> Self {
        let rules = cfg
            .routes
            .iter()
            .map(|r| {
                let (pattern, prefix) = match r.path.strip_suffix("/*") {
                    Some(p) => (p.to_string(), true),
                    None => (r.path.clone(), false),
                };
                CompiledRule {
                    pattern,
                    prefix,
                    methods: r
                        .methods
                        .iter()
                        .filter_map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
                        .collect(),
                    rule: match (r.access, r.groups.is_empty()) {
                        (Access::Public, _) => Rule::Public,
                        (Access::Authenticated, true) => Rule::Authenticated,
                        (Access::Authenticated, false) => Rule::Groups(r.groups.clone().into()),
                    },
                }
            })
            .collect();
        Router {
            live: cfg.health.live_path.clone(),
            ready: cfg.health.ready_path.clone(),
            auth_prefix: cfg.api.prefix.clone(),
            rules,
        }
    }

    /// Routes a request by method and raw path (without query).
    pub fn route(&self, method: &Method, path: &str) -> Result<Route, BadPath> {
        let readable = method == Method::GET || method == Method::HEAD;
        let own = |route: Route| {
            Ok(if readable {
                route
            } else {
                Route::WrongMethod("GET, HEAD")
            })
        };
        if path == self.live {
            return own(Route::Live);
        }
        if path == self.ready {
            return own(Route::Ready);
        }
        if let Some(rest) = path.strip_prefix(self.auth_prefix.as_str()) {
            if rest == "/openapi.json" {
                return own(Route::OpenApi);
            }
            let ep = match rest {
                "/login" => Some(Endpoint::Login),
                "/new-password" => Some(Endpoint::NewPassword),
                "/refresh" => Some(Endpoint::Refresh),
                "/logout" => Some(Endpoint::Logout),
                _ => None,
            };
            if let Some(ep) = ep {
                return Ok(Route::Auth(ep));
            }
        }
        let normalized = normalize_path(path)?;
        let rule = self
            .rules
            .iter()
            .find(|r| {
                (r.methods.is_empty() || r.methods.contains(method))
                    && pattern_matches(&r.pattern, r.prefix, &normalized)
            })
            .map(|r| r.rule.clone())
            .unwrap_or(Rule::Authenticated);
        Ok(Route::Gate(rule))
    }
}

fn pattern_matches(pattern: &str, prefix: bool, path: &str) -> bool {
    if !prefix {
        return path == pattern;
    }
    match path.strip_prefix(pattern) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || pattern.ends_with('/'),
        None => false,
    }
}

/// Normalizes a request path for rule matching (see the module docs).
pub fn normalize_path(raw: &str) -> Result<String, BadPath> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| BadPath)?;
    if decoded.contains('%') || decoded.bytes().any(|b| b.is_ascii_control()) {
        return Err(BadPath);
    }
    let mut out: Vec<&str> = Vec::new();
    let unified = decoded.replace('\\', "/");
    let trailing = unified.ends_with('/') || unified.ends_with("/.") || unified.ends_with("/..");
    for seg in unified.split('/') {
        // `/admin;jsessionid=x` and `/..;/` are read by servlet containers as `/admin`, `/../`.
        let seg = seg.split(';').next().unwrap_or("");
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut path = String::with_capacity(unified.len() + 1);
    for s in &out {
        path.push('/');
        path.push_str(s);
    }
    if path.is_empty() || trailing {
        path.push('/');
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RouteRule;

    #[test]
    fn normalization_table() {
        let cases: &[(&str, Result<&str, BadPath>)] = &[
            ("/", Ok("/")),
            ("", Ok("/")),
            ("/a/b", Ok("/a/b")),
            ("/a/b/", Ok("/a/b/")),
            ("//admin", Ok("/admin")),
            ("/public/../admin", Ok("/admin")),
            ("/public/%2e%2e/admin", Ok("/admin")),
            ("/public/%2E%2E/admin", Ok("/admin")),
            ("/public/..%2fadmin", Ok("/admin")),
            ("/public/..;/admin", Ok("/admin")),
            ("/public\\..\\admin", Ok("/admin")),
            ("/admin;jsessionid=1", Ok("/admin")),
            ("/a/./b/.", Ok("/a/b/")),
            ("/../../etc", Ok("/etc")),
            ("/a/..", Ok("/")),
            ("/%E6%97%A5%E6%9C%AC", Ok("/日本")),
            ("/public/%252e%252e/admin", Err(BadPath)),
            ("/a%00b", Err(BadPath)),
            ("/%ff", Err(BadPath)),
            ("/a%0d%0ab", Err(BadPath)),
        ];
        for (raw, want) in cases {
            assert_eq!(
                normalize_path(raw).as_deref().map_err(|e| *e),
                *want,
                "{raw}"
            );
        }
    }

    fn router() -> Router {
        let mut c = Config::default();
        let r = |path: &str, methods: &[&str], access, groups: &[&str]| RouteRule {
            path: path.into(),
            methods: methods.iter().map(|m| (*m).into()).collect(),
            access,
            groups: groups.iter().map(|g| (*g).into()).collect(),
        };
        c.routes = vec![
            r("/public/*", &[], Access::Public, &[]),
            r("/login", &["get"], Access::Public, &[]),
            r("/admin/*", &[], Access::Authenticated, &["admin", "ops"]),
        ];
        Router::new(&c)
    }

    #[test]
    fn routing_table() {
        let rt = router();
        let groups = Rule::Groups(vec!["admin".to_string(), "ops".to_string()].into());
        let cases: Vec<(Method, &str, Result<Route, BadPath>)> = vec![
            (Method::GET, "/healthz", Ok(Route::Live)),
            (Method::HEAD, "/healthz", Ok(Route::Live)),
            (
                Method::POST,
                "/healthz",
                Ok(Route::WrongMethod("GET, HEAD")),
            ),
            (Method::GET, "/api/user/openapi.json", Ok(Route::OpenApi)),
            (Method::GET, "/readyz", Ok(Route::Ready)),
            (
                Method::POST,
                "/api/user/login",
                Ok(Route::Auth(Endpoint::Login)),
            ),
            (
                Method::GET,
                "/api/user/login",
                Ok(Route::Auth(Endpoint::Login)),
            ),
            (
                Method::POST,
                "/api/user/new-password",
                Ok(Route::Auth(Endpoint::NewPassword)),
            ),
            (
                Method::POST,
                "/api/user/refresh",
                Ok(Route::Auth(Endpoint::Refresh)),
            ),
            (
                Method::POST,
                "/api/user/logout",
                Ok(Route::Auth(Endpoint::Logout)),
            ),
            (
                Method::POST,
                "/api/user/other",
                Ok(Route::Gate(Rule::Authenticated)),
            ),
            (Method::GET, "/public", Ok(Route::Gate(Rule::Public))),
            (Method::GET, "/public/app.js", Ok(Route::Gate(Rule::Public))),
            (
                Method::GET,
                "/publicity",
                Ok(Route::Gate(Rule::Authenticated)),
            ),
            (
                Method::GET,
                "/public/../admin/x",
                Ok(Route::Gate(groups.clone())),
            ),
            (
                Method::GET,
                "/public/%2e%2e/admin/",
                Ok(Route::Gate(groups.clone())),
            ),
            (Method::GET, "//admin/", Ok(Route::Gate(groups.clone()))),
            (
                Method::GET,
                "/public/..;/admin/a",
                Ok(Route::Gate(groups.clone())),
            ),
            (Method::GET, "/login", Ok(Route::Gate(Rule::Public))),
            (Method::POST, "/login", Ok(Route::Gate(Rule::Authenticated))),
            (
                Method::GET,
                "/anything",
                Ok(Route::Gate(Rule::Authenticated)),
            ),
            (Method::GET, "/public/%252e%252e/admin", Err(BadPath)),
        ];
        for (m, p, want) in cases {
            assert_eq!(rt.route(&m, p), want, "{m} {p}");
        }
    }
}
