//! Where a request goes: the sidecar's own endpoints (health, auth API) or the gate, and which
//! access rule applies. Pure: no I/O.
//!
//! The app must act on exactly the request the rules were matched on, so the router never
//! resolves anything the app might resolve differently: a path that is not already canonical
//! is refused (`canonical_path`), never rewritten. Accepted paths are percent-decoded once for
//! matching; what remains encoded is only what cannot appear raw in a path (spaces, non-ASCII,
//! `?`, `#`, ...), which every app server decodes the same way. Methods must be upper-case
//! tokens (`delete`, `Get` are refused: Django, Werkzeug and uWSGI upper-case them, so a rule
//! keyed on `DELETE` would be dodged). A rule that lists `GET` also covers `HEAD` (Django and
//! Rails run the GET handler for HEAD). Rules match case-insensitively unless
//! `upstream.case_sensitive_paths` says the app is case-sensitive (Express, ASP.NET and IIS
//! route `/ADMIN` to `/admin`).

use std::borrow::Cow;
use std::sync::Arc;

use http::Method;

use crate::auth_api::Endpoint;
use crate::config::{Access, RouteRule};
use crate::gate::authorize::Requirements;
use crate::http::path::{canonical_path, is_canonical_method, APP_METHODS};

/// Who may pass the gate for a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Public,
    Authenticated,
    /// Authenticated, and meeting these (groups, scopes, claim values).
    Require(Arc<Requirements>),
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
    /// One of the browser-session pages (`session.enabled`).
    Page(crate::browser::pages::Page),
    /// The forward-auth check (`forward_auth.enabled`, on the main listener).
    Check,
    /// Anything but the check on `forward_auth.listen`.
    NotHere,
    Gate(Rule),
}

/// Why a request cannot be routed safely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The path is not in canonical form (see `canonical_path`).
    #[error("the request path is not in canonical form")]
    Path,
    /// The method is not an upper-case token.
    #[error("the request method is not an upper-case token")]
    Method,
    /// A header name is an alias of a framing header (`headers::framing_alias`).
    #[error("a header name is an alias of a framing header")]
    FramingAlias,
}

struct CompiledRule {
    /// ASCII, lower-cased unless matching is case-sensitive.
    pattern: String,
    prefix: bool,
    methods: Vec<Method>,
    rule: Rule,
}

/// Where the sidecar's own endpoints are, as the validated configuration places them.
#[derive(Debug, Clone, Default)]
pub struct Places {
    pub live: String,
    pub ready: String,
    /// `api.prefix`.
    pub auth_prefix: String,
    /// `session.prefix` when browser sessions are on.
    pub pages_prefix: Option<String>,
    /// `forward_auth.path` and whether it is a prefix (`envoy`), when forward-auth is on.
    pub check: Option<(String, bool)>,
    /// Whether the main listener serves the check (no `forward_auth.listen`).
    pub check_on_main: bool,
}

/// The compiled routing table.
pub struct Router {
    case_sensitive: bool,
    rules: Vec<CompiledRule>,
    places: Places,
}

impl Router {
    /// Compiles the table: the app's `routes` (`app::settings` checked that rule paths are
    /// canonical ASCII and methods are tokens) and the places of the sidecar's own endpoints.
    pub fn new(routes: &[RouteRule], case_sensitive: bool, places: Places) -> Self {
        let rules = routes
            .iter()
            .map(|r| {
                let (pattern, prefix) = match r.path.strip_suffix("/*") {
                    Some(p) => (p.to_string(), true),
                    None => (r.path.clone(), false),
                };
                let pattern = if case_sensitive {
                    pattern
                } else {
                    pattern.to_ascii_lowercase()
                };
                let mut methods: Vec<Method> = r
                    .methods
                    .iter()
                    .filter_map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
                    .collect();
                if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
                    methods.push(Method::HEAD);
                }
                CompiledRule {
                    pattern,
                    prefix,
                    methods,
                    rule: match r.access {
                        Access::Public => Rule::Public,
                        Access::Authenticated => {
                            let req = Requirements::of(r);
                            if req.is_empty() {
                                Rule::Authenticated
                            } else {
                                Rule::Require(Arc::new(req))
                            }
                        }
                    },
                }
            })
            .collect();
        Router {
            case_sensitive,
            rules,
            places,
        }
    }

    /// Whether `path` is the forward-auth check: exactly its path, or, with the `envoy`
    /// convention, the path followed by the original one (`/_auth/check/admin`).
    pub fn is_check(&self, path: &str) -> bool {
        match &self.places.check {
            Some((p, prefix)) => path
                .strip_prefix(p.as_str())
                .is_some_and(|rest| rest.is_empty() || (*prefix && rest.starts_with('/'))),
            None => false,
        }
    }

    /// Routes a request by method and raw path (without query).
    pub fn route(&self, method: &Method, path: &str) -> Result<Route, Refused> {
        // Before the method check: the check's own method is the original request's with
        // some front proxies, and the check answers for it (see `forward_auth`).
        if self.places.check_on_main && self.is_check(path) {
            return Ok(Route::Check);
        }
        if !is_canonical_method(method) {
            return Err(Refused::Method);
        }
        let readable = method == Method::GET || method == Method::HEAD;
        let own = |route: Route| {
            Ok(if readable {
                route
            } else {
                Route::WrongMethod("GET, HEAD")
            })
        };
        if path == self.places.live {
            return own(Route::Live);
        }
        if path == self.places.ready {
            return own(Route::Ready);
        }
        if let Some(rest) = path.strip_prefix(self.places.auth_prefix.as_str()) {
            if rest == "/openapi.json" {
                return own(Route::OpenApi);
            }
            let ep = match rest {
                "/login" => Some(Endpoint::Login),
                "/new-password" => Some(Endpoint::NewPassword),
                "/refresh" => Some(Endpoint::Refresh),
                "/logout" => Some(Endpoint::Logout),
                "/revoke" => Some(Endpoint::Revoke),
                "/mfa" => Some(Endpoint::Mfa),
                "/mfa/setup" => Some(Endpoint::MfaSetup),
                "/mfa/verify" => Some(Endpoint::MfaVerify),
                "/forgot-password" => Some(Endpoint::ForgotPassword),
                "/confirm-forgot-password" => Some(Endpoint::ConfirmForgotPassword),
                "/change-password" => Some(Endpoint::ChangePassword),
                _ => None,
            };
            if let Some(ep) = ep {
                return Ok(Route::Auth(ep));
            }
        }
        if let Some(prefix) = &self.places.pages_prefix {
            if let Some(page) = path
                .strip_prefix(prefix.as_str())
                .and_then(crate::browser::pages::Page::from_path)
            {
                return Ok(Route::Page(page));
            }
        }
        let rule = self.rule_for(method, path)?;
        // CONNECT asks the sidecar to open a tunnel to wherever the target names; no route
        // allows it, so it never reaches the app (hyper would hand it over as an upgrade).
        if method == Method::CONNECT {
            return Ok(Route::WrongMethod(APP_METHODS));
        }
        Ok(Route::Gate(rule))
    }

    /// The access rule for a path the gate handles: the first rule whose methods and path
    /// match, else `Authenticated`.
    pub fn rule_for(&self, method: &Method, path: &str) -> Result<Rule, Refused> {
        let decoded = canonical_path(path).map_err(|_| Refused::Path)?;
        let folded = match (self.case_sensitive, decoded.is_ascii()) {
            (true, _) | (false, true) => decoded,
            // Unicode letters that upper- or lower-case into ASCII (the Kelvin sign, the long
            // s, the dotless i) are folded as case-insensitive servers fold them.
            (false, false) => Cow::Owned(
                decoded
                    .chars()
                    .flat_map(char::to_uppercase)
                    .flat_map(char::to_lowercase)
                    .collect(),
            ),
        };
        let ci = !self.case_sensitive;
        Ok(self
            .rules
            .iter()
            .find(|r| {
                (r.methods.is_empty() || r.methods.contains(method))
                    && pattern_matches(r, &folded, ci)
            })
            .map(|r| r.rule.clone())
            .unwrap_or(Rule::Authenticated))
    }
}

/// Whether `path` (decoded, folded like the pattern) is covered by a rule.
///
/// Exact rules match the path itself; `/x/*` matches `/x` and everything under it. Rules that
/// need a token also cover what app servers route to the same handler: the path with or
/// without one trailing slash (Express's non-strict routing, Django's `APPEND_SLASH`), and
/// with a suffix that starts with `.` or a space on the matched segment (`/admin.json`:
/// Rails' `(.:format)` and Spring's suffix patterns; `/admin.` and `/admin%20`: IIS trims
/// trailing dots and spaces). Public rules match only exactly, so they never widen.
fn pattern_matches(r: &CompiledRule, path: &str, ci: bool) -> bool {
    let loose = r.rule != Rule::Public;
    let suffix = |rest: &str| rest.starts_with(['.', ' ']);
    if r.prefix {
        // `pattern` is "" for `/*`, which covers everything.
        return strip_prefix(path, &r.pattern, ci).is_some_and(|rest| {
            rest.is_empty() || rest.starts_with('/') || (loose && suffix(rest))
        });
    }
    if strip_prefix(path, &r.pattern, ci).is_some_and(str::is_empty) {
        return true;
    }
    let base = r.pattern.trim_end_matches('/');
    if !loose || base.is_empty() {
        return false;
    }
    strip_prefix(path, base, ci)
        .is_some_and(|rest| rest == "/" || (suffix(rest) && !rest.contains('/')))
}

/// `path` without the ASCII `pattern` at its start (ASCII case-insensitively if `ci`).
fn strip_prefix<'a>(path: &'a str, pattern: &str, ci: bool) -> Option<&'a str> {
    let head = path.as_bytes().get(..pattern.len())?;
    let same = if ci {
        head.eq_ignore_ascii_case(pattern.as_bytes())
    } else {
        head == pattern.as_bytes()
    };
    // After an ASCII byte the next index is a char boundary, so `get` cannot fail on a match.
    same.then(|| path.get(pattern.len()..)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::config::RouteRule;

    fn rule(path: &str, methods: &[&str], access: Access, groups: &[&str]) -> RouteRule {
        RouteRule {
            path: path.into(),
            methods: methods.iter().map(|m| (*m).into()).collect(),
            access,
            groups: groups.iter().map(|g| (*g).into()).collect(),
            scopes: vec![],
            scopes_match: None,
            claims: Default::default(),
            pools: vec![],
        }
    }

    fn router(case_sensitive: bool) -> Router {
        let mut c = Config::default();
        c.upstream.case_sensitive_paths = case_sensitive;
        c.routes = vec![
            rule("/public/*", &[], Access::Public, &[]),
            rule("/login", &["get"], Access::Public, &[]),
            rule(
                "/admin/*",
                &["GET", "DELETE"],
                Access::Authenticated,
                &["admins"],
            ),
            rule("/reports", &[], Access::Authenticated, &["staff"]),
            rule("/docs/", &[], Access::Public, &[]),
        ];
        c.router()
    }

    #[test]
    fn routing_table() {
        let rt = router(false);
        let admins = Rule::Require(Arc::new(Requirements {
            groups: vec!["admins".to_string()],
            ..Requirements::default()
        }));
        let staff = Rule::Require(Arc::new(Requirements {
            groups: vec!["staff".to_string()],
            ..Requirements::default()
        }));
        let m = |s: &str| Method::from_bytes(s.as_bytes()).expect("method");
        let cases: Vec<(&str, &str, Result<Route, Refused>)> = vec![
            ("GET", "/healthz", Ok(Route::Live)),
            ("HEAD", "/healthz", Ok(Route::Live)),
            ("POST", "/healthz", Ok(Route::WrongMethod("GET, HEAD"))),
            ("GET", "/api/user/openapi.json", Ok(Route::OpenApi)),
            ("GET", "/readyz", Ok(Route::Ready)),
            ("POST", "/api/user/login", Ok(Route::Auth(Endpoint::Login))),
            ("GET", "/api/user/login", Ok(Route::Auth(Endpoint::Login))),
            (
                "POST",
                "/api/user/new-password",
                Ok(Route::Auth(Endpoint::NewPassword)),
            ),
            (
                "POST",
                "/api/user/refresh",
                Ok(Route::Auth(Endpoint::Refresh)),
            ),
            (
                "POST",
                "/api/user/logout",
                Ok(Route::Auth(Endpoint::Logout)),
            ),
            (
                "POST",
                "/api/user/revoke",
                Ok(Route::Auth(Endpoint::Revoke)),
            ),
            (
                "POST",
                "/api/user/other",
                Ok(Route::Gate(Rule::Authenticated)),
            ),
            ("GET", "/public", Ok(Route::Gate(Rule::Public))),
            ("GET", "/public/", Ok(Route::Gate(Rule::Public))),
            ("GET", "/public/app.js", Ok(Route::Gate(Rule::Public))),
            ("GET", "/PUBLIC/app.js", Ok(Route::Gate(Rule::Public))),
            ("GET", "/publicity", Ok(Route::Gate(Rule::Authenticated))),
            ("GET", "/public.x", Ok(Route::Gate(Rule::Authenticated))),
            ("GET", "/login", Ok(Route::Gate(Rule::Public))),
            ("HEAD", "/login", Ok(Route::Gate(Rule::Public))),
            ("GET", "/login/", Ok(Route::Gate(Rule::Authenticated))),
            ("POST", "/login", Ok(Route::Gate(Rule::Authenticated))),
            ("GET", "/docs/", Ok(Route::Gate(Rule::Public))),
            ("GET", "/docs", Ok(Route::Gate(Rule::Authenticated))),
            // The group rule covers HEAD with GET, every case, and the app's aliases.
            ("GET", "/admin/x", Ok(Route::Gate(admins.clone()))),
            ("HEAD", "/admin/x", Ok(Route::Gate(admins.clone()))),
            ("DELETE", "/admin/x", Ok(Route::Gate(admins.clone()))),
            ("POST", "/admin/x", Ok(Route::Gate(Rule::Authenticated))),
            ("GET", "/ADMIN/x", Ok(Route::Gate(admins.clone()))),
            ("GET", "/Admin/x", Ok(Route::Gate(admins.clone()))),
            ("GET", "/admin", Ok(Route::Gate(admins.clone()))),
            ("GET", "/admin.json", Ok(Route::Gate(admins.clone()))),
            ("GET", "/admin%20/x", Ok(Route::Gate(admins.clone()))),
            (
                "GET",
                "/administrator",
                Ok(Route::Gate(Rule::Authenticated)),
            ),
            ("GET", "/reports", Ok(Route::Gate(staff.clone()))),
            ("GET", "/reports/", Ok(Route::Gate(staff.clone()))),
            ("GET", "/reports.csv", Ok(Route::Gate(staff.clone()))),
            ("GET", "/Reports.", Ok(Route::Gate(staff.clone()))),
            ("GET", "/reports/x", Ok(Route::Gate(Rule::Authenticated))),
            // Unicode letters that case-fold into ASCII fold like IIS/.NET fold them.
            ("GET", "/adm%C4%B1n/x", Ok(Route::Gate(admins.clone()))),
            ("GET", "/reportſ", Ok(Route::Gate(staff.clone()))),
            // Refused before any rule is consulted.
            ("GET", "/app/../public/x", Err(Refused::Path)),
            ("GET", "/public/%2e%2e/admin", Err(Refused::Path)),
            ("GET", "//admin/", Err(Refused::Path)),
            ("GET", "/public/..;/admin/a", Err(Refused::Path)),
            ("GET", "/api/user/login/../../admin", Err(Refused::Path)),
            ("delete", "/admin/x", Err(Refused::Method)),
            ("Get", "/admin/x", Err(Refused::Method)),
            ("post", "/api/user/login", Err(Refused::Method)),
            ("PROPFIND", "/x", Ok(Route::Gate(Rule::Authenticated))),
        ];
        for (method, p, want) in cases {
            assert_eq!(rt.route(&m(method), p), want, "{method} {p}");
        }
    }

    #[test]
    fn case_sensitive_matching_when_the_app_is() {
        let rt = router(true);
        let admins = Rule::Require(Arc::new(Requirements {
            groups: vec!["admins".to_string()],
            ..Requirements::default()
        }));
        assert_eq!(rt.route(&Method::GET, "/admin/x"), Ok(Route::Gate(admins)));
        assert_eq!(
            rt.route(&Method::GET, "/ADMIN/x"),
            Ok(Route::Gate(Rule::Authenticated))
        );
        assert_eq!(
            rt.route(&Method::GET, "/Public/x"),
            Ok(Route::Gate(Rule::Authenticated))
        );
    }
}
