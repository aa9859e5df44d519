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

use crate::config::{Access, Config};

/// One of the auth API's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Login,
    NewPassword,
    Refresh,
    Logout,
    Mfa,
    MfaSetup,
    MfaVerify,
    ForgotPassword,
    ConfirmForgotPassword,
    ChangePassword,
}

impl Endpoint {
    /// The endpoint's path segment, for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Login => "login",
            Endpoint::NewPassword => "new-password",
            Endpoint::Refresh => "refresh",
            Endpoint::Logout => "logout",
            Endpoint::Mfa => "mfa",
            Endpoint::MfaSetup => "mfa/setup",
            Endpoint::MfaVerify => "mfa/verify",
            Endpoint::ForgotPassword => "forgot-password",
            Endpoint::ConfirmForgotPassword => "confirm-forgot-password",
            Endpoint::ChangePassword => "change-password",
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
    /// One of the browser-session pages (`session.enabled`).
    Page(crate::pages::Page),
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

/// The compiled routing table.
pub struct Router {
    live: String,
    ready: String,
    auth_prefix: String,
    /// `session.prefix` when browser sessions are on.
    pages_prefix: Option<String>,
    case_sensitive: bool,
    rules: Vec<CompiledRule>,
    /// `forward_auth.path` and whether it is a prefix (`envoy`), when forward-auth is on.
    check: Option<(String, bool)>,
    /// Whether the main listener serves the check (no `forward_auth.listen`).
    check_on_main: bool,
}

impl Router {
    /// Compiles the table from a validated configuration (`Config::validate` checked that rule
    /// paths are canonical ASCII and methods are tokens).
    pub fn new(cfg: &Config) -> Self {
        let case_sensitive = cfg.upstream.case_sensitive_paths;
        let rules = cfg
            .routes
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
            pages_prefix: cfg.session.enabled.then(|| cfg.session.prefix.clone()),
            case_sensitive,
            rules,
            check: cfg.forward_auth.enabled.then(|| {
                (
                    cfg.forward_auth.path.clone(),
                    cfg.forward_auth.convention == crate::config::Convention::Envoy,
                )
            }),
            check_on_main: cfg.forward_auth.listen.is_none(),
        }
    }

    /// Whether `path` is the forward-auth check: exactly its path, or, with the `envoy`
    /// convention, the path followed by the original one (`/_auth/check/admin`).
    pub fn is_check(&self, path: &str) -> bool {
        match &self.check {
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
        if self.check_on_main && self.is_check(path) {
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
        if let Some(prefix) = &self.pages_prefix {
            if let Some(page) = path
                .strip_prefix(prefix.as_str())
                .and_then(crate::pages::Page::from_path)
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

/// The `Allow` of a refused `CONNECT` on a route of the app: the methods the gate forwards
/// that RFC 9110 defines (the app may refuse some of them itself).
pub const APP_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// Methods are case-sensitive tokens (RFC 9110 §9.1) and every standard one is upper case;
/// servers that upper-case what they receive would run `delete` as `DELETE`.
pub fn is_canonical_method(m: &Method) -> bool {
    m.as_str().bytes().all(|b| !b.is_ascii_lowercase())
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

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request path is not in canonical form")]
pub struct BadPath;

/// A request target in origin form (`/path?query`), read by `read_target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// The path, raw (still percent-encoded), as the app will receive it.
    pub path: &'a str,
    /// The query after `?`, raw.
    pub query: Option<&'a str>,
    /// The path percent-decoded once (`canonical_path`), the form rules are matched on.
    pub decoded: Cow<'a, str>,
}

/// The one reader of request targets: every entry point that judges a target (the proxy
/// path, forward-auth's `X-Original-URI`, `X-Forwarded-Uri` and Envoy's path, the return path
/// of a sign-in) reads it here, so none of them can see another request than the app.
///
/// `raw` must be an origin-form target whose bytes are those hyper's parser (the `http`
/// crate's `PathAndQuery`) accepts in a request line, with no `#`: a fragment is never part of
/// a request target (RFC 9112 §3.2), and hyper drops it where an app server behind a front
/// proxy may keep it (`/public/x#/../admin/x`). The path must then be canonical
/// (`canonical_path`). A target that came through hyper already passed its byte rules; one
/// that came in a header is held to the same ones here.
pub fn read_target(raw: &[u8]) -> Result<Target<'_>, BadPath> {
    let raw = std::str::from_utf8(raw).map_err(|_| BadPath)?;
    let (path, query) = match raw.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw, None),
    };
    let path_ok = path
        .bytes()
        .all(|b| b >= 0x80 || PATH_BYTES[usize::from(b)]);
    let query_ok =
        query.is_none_or(|q| q.bytes().all(|b| b >= 0x80 || QUERY_BYTES[usize::from(b)]));
    if !path_ok || !query_ok {
        return Err(BadPath);
    }
    let decoded = canonical_path(path)?;
    Ok(Target {
        path,
        query,
        decoded,
    })
}

/// The ASCII bytes `http`'s `PathAndQuery` accepts in a path (`?` and `#` aside), and in a
/// query (`#` aside; `?` is allowed).
const PATH_BYTES: [bool; 128] = ascii_set(false);
const QUERY_BYTES: [bool; 128] = ascii_set(true);

const fn ascii_set(query: bool) -> [bool; 128] {
    let mut set = [false; 128];
    let mut i = 0;
    while i < 128 {
        let b = i as u8;
        set[i] = if query {
            matches!(b, 0x21 | 0x24..=0x3B | 0x3D | 0x3F..=0x7E)
        } else {
            // `"`, `{` and `}` included, as `http` accepts them raw.
            matches!(b, 0x21 | 0x22 | 0x24..=0x3B | 0x3D | 0x40..=0x5F | 0x61..=0x7E)
        };
        i += 1;
    }
    set
}

/// Checks that `raw` (a request path, no query) is already canonical and returns it
/// percent-decoded, the form rules are matched on. Refused:
///
/// * anything not starting with `/` (`*`, an empty path);
/// * `.` and `..` segments, and empty segments (`//`) except a final trailing slash;
/// * `\` and `;` (IIS and servlet containers read them as `/` and as path parameters);
/// * percent-encodings of characters that may appear raw: letters, digits, `-._~` (so `%2e`,
///   `%41dmin`), and of `/`, `\`, `;`, `%` (double encoding), and control characters;
/// * a malformed `%` escape, or bytes that do not decode to UTF-8;
/// * Unicode controls, and compatibility characters that spell path syntax
///   (`is_path_lookalike`): an app that applies NFKC or Windows' best-fit mapping would read
///   `/x/．．/admin` (fullwidth dots) as `/x/../admin`.
///
/// What is left encoded (`%20`, `%C3%A9`, `%3F`, `%40`, ...) decodes the same in every server,
/// and rule paths (ASCII letters, digits, `-._~/`) can never contain it.
pub fn canonical_path(raw: &str) -> Result<Cow<'_, str>, BadPath> {
    let b = raw.as_bytes();
    if b.first() != Some(&b'/') {
        return Err(BadPath);
    }
    let mut encoded = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let (Some(h), Some(l)) = (
                    b.get(i + 1).and_then(|c| hex(*c)),
                    b.get(i + 2).and_then(|c| hex(*c)),
                ) else {
                    return Err(BadPath);
                };
                let v = h << 4 | l;
                if v.is_ascii_alphanumeric()
                    || matches!(v, b'-' | b'.' | b'_' | b'~' | b'/' | b'\\' | b';' | b'%')
                    || v.is_ascii_control()
                {
                    return Err(BadPath);
                }
                encoded = true;
                i += 3;
                continue;
            }
            b'\\' | b';' => return Err(BadPath),
            c if c.is_ascii_control() => return Err(BadPath),
            _ => {}
        }
        i += 1;
    }
    let mut segments = raw[1..].split('/').peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        if seg == "." || seg == ".." || (seg.is_empty() && !last) {
            return Err(BadPath);
        }
    }
    let decoded = if encoded {
        percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| BadPath)?
    } else {
        Cow::Borrowed(raw)
    };
    // Unicode controls too: some servers read U+0085 (NEL) as a line break.
    if !decoded.is_ascii()
        && decoded
            .chars()
            .any(|c| !c.is_ascii() && (c.is_control() || is_path_lookalike(c)))
    {
        return Err(BadPath);
    }
    Ok(decoded)
}

/// Whether the non-ASCII `c` turns into path syntax (`.`, `/`, `\`, `;`, `%`) in an app that
/// normalizes what it decoded: its NFKC form holds one (the fullwidth and small forms, U+2024
/// ONE DOT LEADER, U+2025, U+2026, U+FE52, U+FF0F, U+FF3C, ...), or Windows' best-fit mapping
/// to a code page turns it into one (U+2215 DIVISION SLASH, U+2044 FRACTION SLASH, U+2216
/// SET MINUS, U+29F5, U+29F8, U+29F9; U+00A5 YEN SIGN and U+20A9 WON SIGN are `\` in the
/// Japanese and Korean code pages).
pub fn is_path_lookalike(c: char) -> bool {
    const SYNTAX: [char; 5] = ['.', '/', '\\', ';', '%'];
    const BEST_FIT: [char; 8] = [
        '\u{2215}', '\u{2044}', '\u{2216}', '\u{29F5}', '\u{29F8}', '\u{29F9}', '\u{00A5}',
        '\u{20A9}',
    ];
    if BEST_FIT.contains(&c) {
        return true;
    }
    // NFKD holds the same ASCII as NFKC (composition never makes ASCII punctuation).
    icu_normalizer::DecomposingNormalizerBorrowed::new_nfkd()
        .normalize_iter(std::iter::once(c))
        .any(|d| SYNTAX.contains(&d))
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RouteRule;

    #[test]
    fn canonical_path_table() {
        let ok: &[(&str, &str)] = &[
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("/a.b/c..d/.e/f.", "/a.b/c..d/.e/f."),
            ("/%E6%97%A5%E6%9C%AC", "/日本"),
            ("/users/alice%40example.com", "/users/alice@example.com"),
            ("/a%20b", "/a b"),
            ("/q%3Fx", "/q?x"),
            ("/%c3%a9", "/é"),
        ];
        for (raw, want) in ok {
            assert_eq!(canonical_path(raw).as_deref(), Ok(*want), "{raw}");
        }
        let refused = [
            "",
            "*",
            "admin",
            "//admin",
            "/a//b",
            "/public/../admin",
            "/app/../public/x",
            "/app/%2e%2e/public/x",
            "/app/..%2fpublic/x",
            "/app%2f..%2fpublic/x",
            "/app/..;/public/x",
            "/app\\..\\public/x",
            "/app/./../public/x",
            "/app/x/..%2F..%2Fpublic/x",
            "/admin/%2E%2E/public/x",
            "/a/.",
            "/a/..",
            "/.",
            "/./a",
            "/admin;jsessionid=1",
            "/a%3bb",
            "/a%5Cb",
            "/a%2Fb",
            "/%41dmin",
            "/%61dmin",
            "/a%7e",
            "/a%2d",
            "/a%5f",
            "/a%30",
            "/public/%252e%252e/admin",
            "/a%25",
            "/a%00b",
            "/a%0d%0ab",
            "/a%7f",
            "/%ff",
            "/%e6%97",
            "/%C2%85",
            "/a\u{85}",
            "/a%2",
            "/a%zz",
        ];
        for raw in refused {
            assert_eq!(canonical_path(raw), Err(BadPath), "{raw:?}");
        }
    }

    #[test]
    fn read_target_takes_the_bytes_hyper_takes_and_no_fragment() {
        for b in 0u8..=255 {
            for (target, in_query) in [
                (vec![b'/', b'a', b, b'b'], false),
                (vec![b'/', b'a', b'?', b'x', b, b'y'], true),
            ] {
                let http_ok = http::uri::PathAndQuery::try_from(target.as_slice()).is_ok();
                // What only the canonical-path rules refuse (in the path), and the fragment.
                let canonical_refuses = !in_query && matches!(b, b'\\' | b';' | b'%');
                let want = http_ok && b != b'#' && !canonical_refuses;
                assert_eq!(
                    read_target(&target).is_ok(),
                    want,
                    "byte {b:#04x} in {}",
                    if in_query { "query" } else { "path" }
                );
            }
        }
        let t = read_target(b"/a%20b/c?x=1&y=%2e").expect("target");
        assert_eq!(
            (t.path, t.query, t.decoded.as_ref()),
            ("/a%20b/c", Some("x=1&y=%2e"), "/a b/c")
        );
        for refused in [
            &b"/x#"[..],
            b"/x#/../admin",
            b"/x?a#b",
            b"x",
            b"",
            b"*",
            b"/a/../b",
            b"/\xff",
        ] {
            assert_eq!(
                read_target(refused),
                Err(BadPath),
                "{}",
                String::from_utf8_lossy(refused)
            );
        }
    }

    #[test]
    fn compatibility_forms_of_path_syntax_are_refused() {
        // Code points an app's NFKC or best-fit mapping turns into `.`, `/`, `\`, `;` or `%`.
        let lookalikes = [
            '\u{ff0e}', // FULLWIDTH FULL STOP
            '\u{2024}', // ONE DOT LEADER
            '\u{2025}', // TWO DOT LEADER
            '\u{2026}', // HORIZONTAL ELLIPSIS
            '\u{fe52}', // SMALL FULL STOP
            '\u{ff0f}', // FULLWIDTH SOLIDUS
            '\u{ff3c}', // FULLWIDTH REVERSE SOLIDUS
            '\u{fe68}', // SMALL REVERSE SOLIDUS
            '\u{ff1b}', // FULLWIDTH SEMICOLON
            '\u{fe54}', // SMALL SEMICOLON
            '\u{ff05}', // FULLWIDTH PERCENT SIGN
            '\u{fe6a}', // SMALL PERCENT SIGN
            '\u{2488}', // DIGIT ONE FULL STOP
            '\u{2215}', // DIVISION SLASH (best-fit)
            '\u{2044}', // FRACTION SLASH (best-fit)
            '\u{2216}', // SET MINUS (best-fit)
            '\u{29f5}', // REVERSE SOLIDUS OPERATOR (best-fit)
            '\u{a5}',   // YEN SIGN (best-fit, cp932)
            '\u{20a9}', // WON SIGN (best-fit, cp949)
        ];
        for c in lookalikes {
            assert!(is_path_lookalike(c), "{c:?}");
            let raw = format!("/x/{c}{c}/admin/y");
            assert_eq!(canonical_path(&raw), Err(BadPath), "raw {c:?}");
            let encoded: String =
                percent_encoding::utf8_percent_encode(&raw, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
                    .replace("%2F", "/");
            assert_eq!(canonical_path(&encoded), Err(BadPath), "{encoded}");
        }
        // Letters, CJK, accents and symbols that normalize to no path syntax stay accepted.
        for c in [
            '\u{e9}', '\u{65e5}', '\u{ff21}', '\u{2460}', '\u{b7}', '\u{3002}', '\u{ff61}',
            '\u{2014}',
        ] {
            assert!(!is_path_lookalike(c), "{c:?}");
            let raw = format!("/x/{c}");
            assert!(canonical_path(&raw).is_ok(), "{c:?}");
        }
        assert_eq!(
            canonical_path("/x/%ef%bc%8e%ef%bc%8e/admin/y"),
            Err(BadPath)
        );
    }

    fn rule(path: &str, methods: &[&str], access: Access, groups: &[&str]) -> RouteRule {
        RouteRule {
            path: path.into(),
            methods: methods.iter().map(|m| (*m).into()).collect(),
            access,
            groups: groups.iter().map(|g| (*g).into()).collect(),
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
        Router::new(&c)
    }

    #[test]
    fn routing_table() {
        let rt = router(false);
        let admins = Rule::Groups(vec!["admins".to_string()].into());
        let staff = Rule::Groups(vec!["staff".to_string()].into());
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
        let admins = Rule::Groups(vec!["admins".to_string()].into());
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
