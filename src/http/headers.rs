//! Pure header rules: hop-by-hop removal (RFC 9110 §7.6.1), aliases of framing headers, the
//! folding that matches a header name in every spelling (case, `_`, `.`), header value
//! encoding, and the names of the headers the sidecar writes itself (`X-Forwarded-*`,
//! `X-Request-Id`, `traceparent`). Imports nothing of the crate.

use http::header::{HeaderName, HeaderValue, CONNECTION, TE, UPGRADE};
use http::HeaderMap;
use percent_encoding::{AsciiSet, CONTROLS};

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
pub static X_AMZN_TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");

/// The load balancer's `X-Amzn-Trace-Id` for the access line: the first one, if it is 1 to
/// 256 visible ASCII characters (`Root=1-…;Self=…`), else none. A clone of the parsed value
/// (shared bytes, no copy): the ALB sends it on every request.
pub fn amzn_trace_id(headers: &HeaderMap) -> Option<HeaderValue> {
    headers
        .get(&X_AMZN_TRACE_ID)
        .filter(|v| {
            !v.is_empty() && v.len() <= 256 && v.as_bytes().iter().all(u8::is_ascii_graphic)
        })
        .cloned()
}

/// The forwarded headers the sidecar owns; `server.trusted_forwarded_headers` picks from these.
pub const FORWARDED_FAMILY: [&str; 4] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
];

/// Hop-by-hop headers of RFC 9110 §7.6.1 plus the legacy ones proxies must not forward
/// (`keep-alive`, `proxy-connection`). `Connection` itself and every header it names are
/// removed too, by `strip_hop_by_hop`.
static HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    // RFC 9113 §3.2.1 (h2c upgrade): connection-specific, never forwarded.
    HeaderName::from_static("http2-settings"),
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
];

/// RFC 9110 §7.6.1: "a proxy or gateway MUST parse a received Connection header field before
/// a message is forwarded and, for each connection-option in this field, remove any header
/// field(s) from the message with the same name as the connection-option, and then remove
/// the Connection header field itself". `Upgrade` is kept only for an upgrade the proxy
/// forwards on purpose (`keep_upgrade`), in which case `Connection: upgrade` is set again.
/// `TE: trailers` survives, as it is end-to-end meaningful to gRPC-style peers.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most requests carry none of these: one pass over the names (enum compares for the
    // standard ones) instead of a hashed removal per hop-by-hop name.
    let present = headers
        .keys()
        .any(|k| *k == UPGRADE || HOP_BY_HOP.contains(k));
    if !present {
        if keep_upgrade {
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        }
        return;
    }
    // The names `Connection` lists. The usual ones, `keep-alive` (among the hop-by-hop names
    // removed below) and `close`, are not collected: most messages list only those, and then
    // nothing is allocated.
    let mut close_named = false;
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| {
            let close = t.eq_ignore_ascii_case("close");
            close_named |= close;
            !close && !t.eq_ignore_ascii_case("keep-alive")
        })
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    if close_named {
        headers.remove("close");
    }
    let te_trailers = headers
        .get_all(TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"));
    for name in named {
        if keep_upgrade && name == UPGRADE {
            continue;
        }
        headers.remove(&name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if !keep_upgrade {
        headers.remove(UPGRADE);
    } else {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if te_trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
}

/// The headers that frame or route a message (or its connection): a name that folds to one
/// of these (`Transfer_Encoding`, `content.length`) without being it is an alias some server
/// or proxy on the way may read as the real one, and so frame the body, or pick the host,
/// differently from hyper.
const FRAMING: [&[u8]; 7] = [
    b"content-length",
    b"transfer-encoding",
    b"host",
    b"connection",
    b"upgrade",
    b"expect",
    b"te",
];

/// The first header whose name is an alias of a framing header (see `FRAMING`). hyper
/// lower-cases names, so only `_` and `.` can make one; most requests have neither and cost
/// one scan of their names.
pub fn framing_alias(headers: &HeaderMap) -> Option<&HeaderName> {
    headers.keys().find(|k| is_framing_alias(k))
}

/// Whether `name` folds to a framing header without being it.
pub fn is_framing_alias(name: &HeaderName) -> bool {
    let n = name.as_str().as_bytes();
    n.iter().any(|b| matches!(b, b'_' | b'.')) && FRAMING.iter().any(|f| folded_eq(n, f))
}

/// A set of header names and name prefixes, each matched in every spelling (`fold_name`): the
/// names a request may not carry to the app. Most names checked are none of them and already
/// differ at the first byte, so a bitmap of the entries' first bytes answers those with one
/// lookup; the others are compared with each entry (none allocates).
#[derive(Debug, Clone, Default)]
pub struct FoldedNames {
    /// Bit `b` set: some entry starts with byte `b` (every bit, with an empty prefix).
    first: [u64; 4],
    /// Folded.
    names: Vec<Vec<u8>>,
    /// Folded.
    prefixes: Vec<Vec<u8>>,
}

impl FoldedNames {
    /// The set of `names` (exact, any spelling) and of every name starting with one of
    /// `prefixes` (any spelling).
    pub fn new<'a>(
        names: impl IntoIterator<Item = &'a str>,
        prefixes: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut set = FoldedNames::default();
        for n in names {
            let n = fold_name(n).into_bytes();
            if let Some(&b) = n.first() {
                set.first[usize::from(b >> 6)] |= 1 << (b & 63);
            }
            set.names.push(n);
        }
        for p in prefixes {
            let p = fold_name(p).into_bytes();
            match p.first() {
                Some(&b) => set.first[usize::from(b >> 6)] |= 1 << (b & 63),
                None => set.first = [u64::MAX; 4],
            }
            set.prefixes.push(p);
        }
        set
    }

    /// Whether `name`, in any spelling, is one of the names or starts with one of the prefixes.
    pub fn matches(&self, name: &[u8]) -> bool {
        if let Some(&b) = name.first() {
            let b = fold_byte(b);
            if self.first[usize::from(b >> 6)] & (1 << (b & 63)) == 0 {
                return false;
            }
        }
        self.prefixes.iter().any(|p| folded_starts_with(name, p))
            || self.names.iter().any(|n| folded_eq(name, n))
    }
}

/// Folds a header name the way spoofing attempts are matched: ASCII lower case, `_` and `.`
/// read as `-` (servers such as Django/WSGI and some proxies treat them alike).
pub fn fold_name(name: &str) -> String {
    name.bytes().map(fold_byte).map(char::from).collect()
}

fn fold_byte(b: u8) -> u8 {
    match b {
        b'_' | b'.' => b'-',
        b => b.to_ascii_lowercase(),
    }
}

pub fn folded_starts_with(name: &[u8], folded_prefix: &[u8]) -> bool {
    name.len() >= folded_prefix.len()
        && name
            .iter()
            .zip(folded_prefix)
            .all(|(a, b)| fold_byte(*a) == *b)
}

/// Whether header `name` folds (`fold_name`) to `folded`, without allocating.
pub fn folded_eq(name: &[u8], folded: &[u8]) -> bool {
    name.len() == folded.len() && folded_starts_with(name, folded)
}

/// Claim values are percent-encoded as UTF-8 where they hold anything but visible ASCII and
/// space, and `%` itself is encoded so the upstream can always percent-decode. CR, LF and
/// NUL are controls, so they can never reach a header raw.
pub const VALUE_ESCAPES: &AsciiSet = &CONTROLS.add(b'%');

/// Encodes one claim value for a header (see `VALUE_ESCAPES`).
pub fn encode_value(value: &str) -> HeaderValue {
    encode_with(value, VALUE_ESCAPES)
}

pub fn encode_with(value: &str, set: &'static AsciiSet) -> HeaderValue {
    let encoded: std::borrow::Cow<'_, str> =
        percent_encoding::utf8_percent_encode(value, set).into();
    // Only visible ASCII, space and `%XX` remain, which is always a valid header value.
    HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
pub(crate) mod tests;
