//! The one reader of request targets and methods: what every entry point (the proxy path,
//! the forward-auth check for each convention, the sessions' return paths) and the settings'
//! validation call to decide whether a target or a method is one the app reads the same way.
//! Pure; imports nothing of the crate.

use std::borrow::Cow;

use http::Method;

/// The `Allow` of a refused `CONNECT` on a route of the app: the methods the gate forwards
/// that RFC 9110 defines (the app may refuse some of them itself).
pub const APP_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// Methods are case-sensitive tokens (RFC 9110 §9.1) and every standard one is upper case;
/// servers that upper-case what they receive would run `delete` as `DELETE`.
pub fn is_canonical_method(m: &Method) -> bool {
    m.as_str().bytes().all(|b| !b.is_ascii_lowercase())
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
mod tests;
