//! Pure header rules for the proxy path: hop-by-hop removal (RFC 9110 §7.6.1), the identity
//! namespace (strip everything a client sent in it, then add what the token says) and claim
//! value encoding. `forward::to_upstream` applies them, with the rest of what the app receives.
//!
//! No I/O here, and no knowledge of tokens beyond a JSON claims map.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::{HeaderName, HeaderValue, CONNECTION, TE, UPGRADE};
use http::HeaderMap;
use percent_encoding::{AsciiSet, CONTROLS};
use serde_json::{Map, Value};

use crate::config::IdentityConfig;

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

fn folded_starts_with(name: &[u8], folded_prefix: &[u8]) -> bool {
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
const VALUE_ESCAPES: &AsciiSet = &CONTROLS.add(b'%');
/// Inside a joined array, `,` is the separator, so elements escape it too.
const ELEMENT_ESCAPES: &AsciiSet = &VALUE_ESCAPES.add(b',');

/// Encodes one claim value for a header (see `VALUE_ESCAPES`).
pub fn encode_value(value: &str) -> HeaderValue {
    encode_with(value, VALUE_ESCAPES)
}

fn encode_with(value: &str, set: &'static AsciiSet) -> HeaderValue {
    let encoded: std::borrow::Cow<'_, str> =
        percent_encoding::utf8_percent_encode(value, set).into();
    // Only visible ASCII, space and `%XX` remain, which is always a valid header value.
    HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The identity header rules, compiled once from `IdentityConfig`.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    mappings: Vec<(HeaderName, Vec<String>)>,
    claims_header: Option<HeaderName>,
    strip_prefixes: Vec<Vec<u8>>,
    strip_names: Vec<Vec<u8>>,
}

impl IdentityHeaders {
    /// Compiles the rules; names were checked by `Config::validate`.
    pub fn new(cfg: &IdentityConfig) -> Result<Self, http::header::InvalidHeaderName> {
        let mut mappings = Vec::with_capacity(cfg.headers.len());
        let mut strip_names = Vec::new();
        for h in &cfg.headers {
            let name = HeaderName::try_from(h.name.as_str())?;
            strip_names.push(fold_name(name.as_str()).into_bytes());
            mappings.push((name, h.claims.clone()));
        }
        let claims_header = match &cfg.claims_header {
            Some(n) => {
                let name = HeaderName::try_from(n.as_str())?;
                strip_names.push(fold_name(name.as_str()).into_bytes());
                Some(name)
            }
            None => None,
        };
        Ok(IdentityHeaders {
            mappings,
            claims_header,
            strip_prefixes: cfg
                .strip_prefixes
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| fold_name(p).into_bytes())
                .collect(),
            strip_names,
        })
    }

    /// Every header name a verified token may produce (the map, then the claims header).
    pub fn names(&self) -> impl Iterator<Item = &HeaderName> {
        self.mappings
            .iter()
            .map(|(n, _)| n)
            .chain(self.claims_header.as_ref())
    }

    /// Whether `name` is in the identity namespace (any spelling).
    pub fn is_identity(&self, name: &str) -> bool {
        let n = name.as_bytes();
        self.strip_prefixes.iter().any(|p| folded_starts_with(n, p))
            || self.strip_names.iter().any(|s| folded_eq(n, s))
    }

    /// Removes every inbound header in the identity namespace; returns how many names went.
    pub fn strip(&self, headers: &mut HeaderMap) -> usize {
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|k| self.is_identity(k.as_str()))
            .cloned()
            .collect();
        for name in &doomed {
            headers.remove(name);
        }
        doomed.len()
    }

    /// The headers a verified token's claims produce, in configuration order.
    pub fn values(&self, claims: &Map<String, Value>) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::with_capacity(self.mappings.len() + 1);
        for (name, keys) in &self.mappings {
            if let Some(v) = keys
                .iter()
                .filter(|k| is_vouched_for(claims, k))
                .find_map(|k| claims.get(k.as_str()))
                .and_then(claim_value)
            {
                out.push((name.clone(), v));
            }
        }
        if let Some(name) = &self.claims_header {
            let json = serde_json::to_vec(claims).unwrap_or_default();
            if let Ok(v) = HeaderValue::from_str(&URL_SAFE_NO_PAD.encode(json)) {
                out.push((name.clone(), v));
            }
        }
        out
    }
}

/// Whether Cognito vouches for claim `key`. A user can change their own `email` and
/// `phone_number` (access tokens carry `aws.cognito.signin.user.admin`), so those identify
/// someone only when `email_verified` / `phone_number_verified` is true (a JSON boolean, or
/// the string `"true"` as Cognito writes it in id tokens).
fn is_vouched_for(claims: &Map<String, Value>, key: &str) -> bool {
    let flag = match key {
        "email" => "email_verified",
        "phone_number" => "phone_number_verified",
        _ => return true,
    };
    matches!(claims.get(flag), Some(Value::Bool(true)))
        || matches!(claims.get(flag), Some(Value::String(s)) if s == "true")
}

/// One claim as a header value: strings encoded, arrays joined with `,`, numbers and
/// booleans as JSON; null and objects give no header.
fn claim_value(v: &Value) -> Option<HeaderValue> {
    match v {
        Value::String(s) => Some(encode_value(s)),
        Value::Number(n) => Some(encode_value(&n.to_string())),
        Value::Bool(b) => Some(HeaderValue::from_static(if *b { "true" } else { "false" })),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|i| match i {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    Value::Bool(b) => Some(b.to_string()),
                    _ => None,
                })
                .map(|s| percent_encoding::utf8_percent_encode(&s, ELEMENT_ESCAPES).to_string())
                .collect();
            HeaderValue::from_str(&parts.join(",")).ok()
        }
        Value::Null | Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = map(&[
            ("connection", "close, X-Auth-Sub, x-custom"),
            ("keep-alive", "timeout=5"),
            ("x-custom", "1"),
            ("x-auth-sub", "forged"),
            ("te", "trailers, deflate"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("x-keep", "yes"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-keep", "te"]);
        assert_eq!(h["te"], "trailers");
    }

    #[test]
    fn close_and_keep_alive_named_in_connection_go_too() {
        for connection in [
            "close",
            "Close, keep-alive",
            " KEEP-ALIVE ,close",
            "keep-alive",
        ] {
            let mut h = map(&[
                ("connection", connection),
                ("close", "1"),
                ("keep-alive", "timeout=5"),
                ("x-keep", "yes"),
            ]);
            strip_hop_by_hop(&mut h, false);
            let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
            names.sort_unstable();
            let expected = if connection.to_ascii_lowercase().contains("close") {
                vec!["x-keep"]
            } else {
                // `Close` is no hop-by-hop header unless `Connection` names it.
                vec!["close", "x-keep"]
            };
            assert_eq!(names, expected, "Connection: {connection}");
        }
    }

    #[test]
    fn framing_aliases_are_found_in_every_spelling() {
        // `Host`, `Connection`, `Upgrade`, `Expect` and `TE` have no `-` to spell otherwise,
        // and hyper lower-cases every name: they have no alias today, and are listed for the
        // day one of the readers folds more.
        let aliases = [
            "transfer_encoding",
            "Transfer.Encoding",
            "TRANSFER_ENCODING",
            "content_length",
            "Content.Length",
            "CONTENT_LENGTH",
        ];
        for name in aliases {
            let h = map(&[("x-ok", "1"), (name, "chunked")]);
            let found = framing_alias(&h).map(HeaderName::as_str);
            assert_eq!(found, Some(name.to_ascii_lowercase().as_str()), "{name}");
        }
        // Only folded aliases: the real names, and names that merely contain them, pass.
        let fine = map(&[
            ("transfer-encoding", "chunked"),
            ("content-length", "1"),
            ("host", "a"),
            ("te", "trailers"),
            ("x_content_length", "1"),
            ("content_length_x", "1"),
            ("x.host", "a"),
            ("t_", "a"),
        ]);
        assert_eq!(framing_alias(&fine), None);
    }

    #[test]
    fn upgrade_kept_only_when_asked() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }

    #[test]
    fn identity_namespace_matches_every_spelling() {
        let ids = IdentityHeaders::new(&IdentityConfig::default()).expect("valid");
        for spoof in [
            "x-auth-sub",
            "X-AUTH-SUB",
            "x_auth_sub",
            "x.auth.sub",
            "X_Auth-Groups",
            "x-auth-anything-else",
            "x.auth_",
        ] {
            assert!(ids.is_identity(spoof), "{spoof}");
        }
        for fine in [
            "x-authorization",
            "authorization",
            "x-au",
            "x-forwarded-for",
            "xauth-sub",
        ] {
            assert!(!ids.is_identity(fine), "{fine}");
        }
        let mut h = map(&[
            ("x_auth_sub", "a"),
            ("x.auth.sub", "b"),
            ("X-Auth-Sub", "c"),
            ("x-other", "keep"),
        ]);
        assert_eq!(ids.strip(&mut h), 3);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn configured_names_outside_the_prefix_are_stripped_too() {
        let cfg = IdentityConfig {
            strip_prefixes: vec![],
            headers: vec![crate::config::HeaderClaim {
                name: "X-User-Sub".into(),
                claims: vec!["sub".into()],
            }],
            claims_header: Some("X-Claims".into()),
        };
        let ids = IdentityHeaders::new(&cfg).expect("valid");
        assert!(ids.is_identity("x_user.sub"));
        assert!(ids.is_identity("X_CLAIMS"));
        assert!(!ids.is_identity("x-user-subway"));
    }

    #[test]
    fn claim_values_are_encoded_safely() {
        let cases: &[(Value, Option<&str>)] = &[
            (json!("plain-ascii value"), Some("plain-ascii value")),
            (
                json!("山田 太郎"),
                Some("%E5%B1%B1%E7%94%B0 %E5%A4%AA%E9%83%8E"),
            ),
            (
                json!("evil\r\nX-Auth-Sub: admin"),
                Some("evil%0D%0AX-Auth-Sub: admin"),
            ),
            (json!("nul\0"), Some("nul%00")),
            (json!("100%"), Some("100%25")),
            (
                json!(["admin", "a,b", "日本"]),
                Some("admin,a%2Cb,%E6%97%A5%E6%9C%AC"),
            ),
            (json!(42), Some("42")),
            (json!(true), Some("true")),
            (json!(null), None),
            (json!({"a": 1}), None),
        ];
        for (v, want) in cases {
            let got = claim_value(v);
            assert_eq!(
                got.as_ref().map(|h| h.to_str().expect("ascii")),
                *want,
                "{v}"
            );
        }
    }

    #[test]
    fn email_and_phone_only_when_verified() {
        let ids = IdentityHeaders::new(&IdentityConfig {
            headers: vec![
                crate::config::HeaderClaim {
                    name: "X-Auth-Email".into(),
                    claims: vec!["email".into()],
                },
                crate::config::HeaderClaim {
                    name: "X-Auth-Phone".into(),
                    claims: vec!["phone_number".into()],
                },
            ],
            ..IdentityConfig::default()
        })
        .expect("valid");
        let cases = [
            (json!({}), false),
            (
                json!({"email_verified": true, "phone_number_verified": true}),
                true,
            ),
            (
                json!({"email_verified": "true", "phone_number_verified": "true"}),
                true,
            ),
            (
                json!({"email_verified": false, "phone_number_verified": "false"}),
                false,
            ),
            (
                json!({"email_verified": "TRUE", "phone_number_verified": 1}),
                false,
            ),
            (json!({"email_verified": null}), false),
        ];
        for (flags, shown) in cases {
            let mut m = json!({"sub": "s", "email": "a@example.com", "phone_number": "+15550100"});
            if let (Value::Object(m), Value::Object(f)) = (&mut m, &flags) {
                m.extend(f.clone());
            }
            let Value::Object(m) = m else { unreachable!() };
            let names: Vec<String> = ids
                .values(&m)
                .into_iter()
                .map(|(k, _)| k.to_string())
                .collect();
            let want: Vec<String> = if shown {
                vec!["x-auth-email".into(), "x-auth-phone".into()]
            } else {
                vec![]
            };
            assert_eq!(names, want, "{flags}");
        }
    }

    #[test]
    fn values_follow_the_map_and_fallbacks() {
        let ids = IdentityHeaders::new(&IdentityConfig {
            claims_header: Some("x-auth-claims".into()),
            ..IdentityConfig::default()
        })
        .expect("valid");
        let claims = json!({
            "sub": "s-1", "cognito:username": "alice", "cognito:groups": ["a", "b"],
            "aud": "client-1", "token_use": "id"
        });
        let Value::Object(m) = claims else {
            unreachable!()
        };
        let got: Vec<(String, String)> = ids
            .values(&m)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_str().expect("ascii").to_string()))
            .collect();
        let names: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "x-auth-sub",
                "x-auth-username",
                "x-auth-groups",
                "x-auth-client-id",
                "x-auth-token-use",
                "x-auth-claims"
            ]
        );
        assert_eq!(got[1].1, "alice");
        assert_eq!(got[2].1, "a,b");
        let decoded = URL_SAFE_NO_PAD.decode(&got[5].1).expect("b64");
        let back: Value = serde_json::from_slice(&decoded).expect("json");
        assert_eq!(back["sub"], "s-1");
    }
}
