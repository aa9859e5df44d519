//! What the app receives. `to_upstream` is the one function that turns the client's request
//! and the gate's decision into the request sent to the app, and nothing else edits it: the
//! app acts on exactly what the gate authorized, in canonical form, and anything the gate
//! cannot vouch for is removed or refused. Pure: no I/O, no clock.
//!
//! In this order:
//!
//! 1. **Method**: an upper-case token, unchanged (`delete`, `Get` are refused).
//! 2. **Path**: already canonical (`crate::http::path::canonical_path`) or refused; forwarded byte for
//!    byte after the upstream's path prefix, with the query unchanged.
//! 3. **Host**: the request-target's authority (absolute form, HTTP/2 `:authority`), else
//!    the one `Host` header (several are refused); the upstream's authority instead unless
//!    `upstream.preserve_host`.
//! 4. **Upgrade**: kept only for an HTTP/1.1 `GET` without a body whose one `Upgrade`
//!    protocol is in `upstream.upgrades` (default `websocket`); otherwise the request goes
//!    on as plain HTTP without its upgrade headers (`h2c` is never forwarded).
//! 5. **Hop-by-hop** headers (RFC 9110 §7.6.1, every name listed in `Connection`,
//!    `HTTP2-Settings`).
//! 6. **Never forwarded**: `upstream.never_forward` (re-routing, re-method, re-addressing
//!    headers), in every spelling (case, `_`, `.`).
//! 7. **Forwarded headers**: every spelling of `X-Forwarded-For/-Proto/-Host/-Port` and
//!    `Forwarded` is removed; from a trusted proxy the canonical values listed in
//!    `server.trusted_forwarded_headers` are kept, the rest written by the sidecar (none
//!    that the identity namespace covers).
//! 8. **Identity**: every header in the identity namespace is removed, then the verified
//!    token's headers are added. (6, 7 and 8 remove in one pass over the names.)
//! 9. **Authorization**: kept when its token verified (`upstream.forward_authorization`),
//!    else removed unless `upstream.forward_unverified_authorization`; for a browser session,
//!    the session's access token only with `session.forward_access_token`.
//! 10. **Cookies**: the sidecar's own (`__Host-sidecar-session`, `-csrf`, `-oauth`) are
//!     removed from `Cookie`, the others pass; several `Cookie` headers (HTTP/2) become one.
//! 11. **Request id**: the sanitized `X-Request-Id`; the version is HTTP/1.1.
//! 12. **Trace context** (`traces.enabled`): `traceparent`/`tracestate` are the sidecar's
//!     (its upstream span as the parent); the client's are removed. Off: left as they came.

use std::net::IpAddr;
use std::sync::Arc;

use http::header::{
    HeaderName, HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, COOKIE, HOST, SET_COOKIE,
    TRANSFER_ENCODING, UPGRADE,
};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, Method, Uri, Version};
use ipnet::IpNet;

use crate::config::{ServerConfig, UpstreamConfig};
use crate::error::{ApiError, ErrorCode};
use crate::gate::identity::IdentityHeaders;
use crate::http::headers::{
    self, FoldedNames, FORWARDED_FAMILY, TRACEPARENT, TRACESTATE, X_FORWARDED_FOR,
    X_FORWARDED_HOST, X_FORWARDED_PORT, X_FORWARDED_PROTO, X_REQUEST_ID,
};
use crate::telemetry::trace::TraceHeaders;

/// Where the app is and what it may receive, compiled once from the configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The upstream URL's path, without a trailing `/` ("" for none).
    prefix: String,
    host: HeaderValue,
    preserve_host: bool,
    forward_authorization: bool,
    forward_unverified_authorization: bool,
    /// Lower case.
    upgrades: Vec<String>,
    /// `upstream.never_forward`, `Forwarded` and the forwarded family (`FORWARDED_FAMILY`),
    /// in every spelling: removed from every request.
    removed: FoldedNames,
    /// Which of the forwarded family the sidecar writes (`FORWARDED_FAMILY` order): not one
    /// the identity namespace covers (`identity.strip_prefixes = ["x-"]`), as the namespace
    /// is the sidecar's token headers' alone.
    write_forwarded: [bool; 4],
    trusted_proxies: Vec<IpNet>,
    /// For, Proto, Host, Port: kept from a trusted proxy.
    trust: [bool; 4],
    identity: Arc<IdentityHeaders>,
    /// The sidecar's cookies, never forwarded (browser sessions on).
    strip_cookies: Vec<&'static str>,
}

/// What the router and the gate decided about one request.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    /// The identity headers of the verified token, if a token verified.
    pub identity: Option<&'a [(HeaderName, HeaderValue)]>,
    /// The TCP peer.
    pub peer: IpAddr,
    /// The request id (already sanitized, see `request_id`).
    pub request_id: &'a HeaderValue,
    /// An `Authorization` the sidecar adds (a browser session's access token).
    pub authorization: Option<&'a HeaderValue>,
    /// The trace context the app receives (`traces.enabled`).
    pub trace: Option<&'a TraceHeaders>,
}

/// The request head to send to the app.
#[derive(Debug)]
pub struct Outbound {
    pub parts: Parts,
    /// Whether the request is a protocol upgrade the proxy splices after a 101.
    pub upgrade: bool,
}

/// The `Host` the app is sent (unless `preserve_host`): the authority of `upstream.url`.
pub fn upstream_host(upstream: &Uri) -> Result<HeaderValue, &'static str> {
    let authority = upstream
        .authority()
        .ok_or("the upstream URL has no authority")?;
    HeaderValue::from_str(authority.as_str())
        .map_err(|_| "the upstream authority is not a header value")
}

impl Policy {
    /// Compiles the policy. `upstream` is the validated `upstream.url` and `host` its
    /// authority (`upstream_host`); `sessions`: browser sessions are on, so their cookies are
    /// never forwarded.
    pub fn new(
        u: &UpstreamConfig,
        server: &ServerConfig,
        sessions: bool,
        (upstream, host): (&Uri, HeaderValue),
        identity: Arc<IdentityHeaders>,
    ) -> Self {
        let trusted = |name: &str| {
            server
                .trusted_forwarded_headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name))
        };
        Policy {
            prefix: upstream.path().trim_end_matches('/').to_string(),
            host,
            preserve_host: u.preserve_host,
            forward_authorization: u.forward_authorization,
            forward_unverified_authorization: u.forward_unverified_authorization,
            upgrades: u.upgrades.iter().map(|p| p.to_ascii_lowercase()).collect(),
            removed: FoldedNames::new(
                u.never_forward
                    .iter()
                    .map(String::as_str)
                    .chain(["forwarded"])
                    .chain(FORWARDED_FAMILY),
                [],
            ),
            write_forwarded: FORWARDED_FAMILY.map(|f| !identity.is_identity(f)),
            trusted_proxies: server.trusted_proxies.clone(),
            trust: FORWARDED_FAMILY.map(trusted),
            identity,
            strip_cookies: if sessions {
                crate::browser::session::COOKIES.to_vec()
            } else {
                Vec::new()
            },
        }
    }

    /// Whether `peer` is a trusted proxy.
    pub fn is_trusted(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&peer))
    }

    /// The client's address for rate limits (see `client_ip`).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if self.trust[0] {
            client_ip(peer, headers, &self.trusted_proxies)
        } else {
            peer
        }
    }
}

/// Builds the request the app receives (see the module docs for the rules and their order).
pub fn to_upstream(mut parts: Parts, d: &Decision<'_>, p: &Policy) -> Result<Outbound, ApiError> {
    // 1. Method.
    if !crate::http::path::is_canonical_method(&parts.method) {
        return Err(ErrorCode::InvalidMethod.into());
    }
    // 2. Path.
    let path = parts.uri.path();
    crate::http::path::canonical_path(path).map_err(|_| ApiError::from(ErrorCode::InvalidPath))?;
    let pq = match (
        p.prefix.is_empty(),
        parts.uri.path_and_query(),
        parts.uri.query(),
    ) {
        // The client's own path and query (shared bytes): nothing to copy or parse again.
        (true, Some(pq), _) => Ok(pq.clone()),
        (true, None, _) => {
            PathAndQuery::from_maybe_shared(bytes::Bytes::copy_from_slice(path.as_bytes()))
        }
        (false, _, None) => format!("{}{path}", p.prefix).parse(),
        (false, _, Some(q)) => format!("{}{path}?{q}", p.prefix).parse(),
    }
    .map_err(|_| ApiError::from(ErrorCode::InvalidPath))?;
    // Origin-form, as it goes on the wire: the upstream is the pool's one address.
    let uri = Uri::from(pq);

    // 3. Host.
    let h = &mut parts.headers;
    let mut hosts = h.get_all(HOST).iter();
    let (first, more) = (hosts.next(), hosts.next().is_some());
    if more {
        return Err(ApiError::new(
            ErrorCode::InvalidHost,
            "the request has more than one Host header",
        ));
    }
    let client_host = match parts.uri.authority() {
        Some(a) => Some(
            HeaderValue::from_str(a.as_str())
                .map_err(|_| ApiError::from(ErrorCode::InvalidHost))?,
        ),
        None => first.cloned(),
    };
    if let Some(v) = &client_host {
        if !valid_host(v) {
            return Err(ErrorCode::InvalidHost.into());
        }
    }

    // 4. Upgrade.
    let upgrade = is_allowed_upgrade(&parts.method, parts.version, h, &p.upgrades);

    // 5. Hop-by-hop.
    headers::strip_hop_by_hop(h, upgrade);

    // 6, 7 (removal) and 8 (removal). One pass over the names: the never-forward names,
    // every spelling of the forwarded family and `Forwarded`, and the identity namespace;
    // trusted canonical values are read first.
    let trusted = p.is_trusted(d.peer);
    let kept: [Option<String>; 4] = std::array::from_fn(|i| {
        (trusted && p.trust[i])
            .then(|| joined(h, FORWARDED_FAMILY[i]))
            .flatten()
    });
    let mut stripped = 0usize;
    let doomed: Vec<HeaderName> = h
        .keys()
        .filter(|k| {
            let n = k.as_str().as_bytes();
            let identity = p.identity.is_identity(k.as_str());
            stripped += usize::from(identity);
            identity || p.removed.matches(n)
        })
        .cloned()
        .collect();
    for name in &doomed {
        h.remove(name);
    }
    if stripped > 0 {
        tracing::debug!(stripped, "removed client-sent identity headers");
    }

    // 7 (writing), but none the identity namespace covers (`write_forwarded`).
    let [prev_for, proto, fwd_host, port] = kept;
    let [write_for, write_proto, write_host, write_port] = p.write_forwarded;
    if write_for {
        let mut xff = String::with_capacity(prev_for.as_ref().map_or(0, |p| p.len() + 2) + 39);
        if let Some(prev) = prev_for {
            xff.push_str(&prev);
            xff.push_str(", ");
        }
        push_ip(&mut xff, d.peer);
        if let Ok(v) = HeaderValue::from_str(&xff) {
            h.insert(X_FORWARDED_FOR.clone(), v);
        }
    }
    if write_proto {
        let proto = match proto.as_deref().map(str::trim) {
            Some(p) if p.eq_ignore_ascii_case("https") => "https",
            _ => "http",
        };
        h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    }
    if let Some(v) = fwd_host
        .and_then(|v| HeaderValue::from_str(&v).ok())
        .or_else(|| client_host.clone())
        .filter(|_| write_host)
    {
        h.insert(X_FORWARDED_HOST.clone(), v);
    }
    if let Some(v) = port
        .filter(|v| !v.is_empty() && v.len() <= 5 && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| HeaderValue::from_str(&v).ok())
        .filter(|_| write_port)
    {
        h.insert(X_FORWARDED_PORT.clone(), v);
    }

    // 8. Identity (the client's were removed above).
    if let Some(identity) = d.identity {
        for (name, value) in identity {
            h.insert(name.clone(), value.clone());
        }
    }

    // 9. Authorization.
    let keep_authorization = if d.identity.is_some() {
        p.forward_authorization
    } else {
        p.forward_unverified_authorization
    };
    if !keep_authorization {
        h.remove(AUTHORIZATION);
    }
    if let Some(v) = d.authorization {
        h.insert(AUTHORIZATION, v.clone());
    }

    // 10. Cookies.
    if h.contains_key(COOKIE) {
        let kept: Vec<&str> = h
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .map(str::trim)
            .filter(|pair| {
                let name = pair.split_once('=').map_or(*pair, |(n, _)| n).trim();
                !pair.is_empty() && !p.strip_cookies.contains(&name)
            })
            .collect();
        let joined = kept.join("; ");
        h.remove(COOKIE);
        if let Ok(v) = HeaderValue::from_str(&joined) {
            if !joined.is_empty() {
                h.insert(COOKIE, v);
            }
        }
    }

    // 11. Host, request id, version, URI.
    let host = match (&client_host, p.preserve_host) {
        (Some(v), true) => v.clone(),
        _ => p.host.clone(),
    };
    h.insert(HOST, host);
    h.insert(X_REQUEST_ID.clone(), d.request_id.clone());

    // 12. Trace context.
    if let Some(t) = d.trace {
        h.remove(&TRACESTATE);
        h.insert(TRACEPARENT.clone(), t.traceparent.clone());
        if let Some(state) = &t.tracestate {
            h.insert(TRACESTATE.clone(), state.clone());
        }
    }
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    Ok(Outbound { parts, upgrade })
}

/// What `from_upstream` removed from one answer of the app.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// `Set-Cookie` lines for one of the sidecar's own cookies.
    pub session_cookies: usize,
    /// Headers in the identity namespace.
    pub identity: usize,
    /// Aliases of framing headers (`Transfer_Encoding`, `content.length`).
    pub framing: usize,
}

impl Removed {
    /// Whether anything was removed.
    pub fn any(&self) -> bool {
        self.session_cookies + self.identity + self.framing > 0
    }
}

/// Cleans the head of the app's answer before the client gets it (hop-by-hop headers were
/// removed by `proxy`): the app, or anything that can add a header to its answer, must not
/// set the browser's session (session fixation through `Set-Cookie:
/// __Host-sidecar-session=…`), speak in the identity namespace the sidecar owns, or frame the
/// answer for a downstream reader with an alias hyper does not read. Pure.
pub fn from_upstream(headers: &mut HeaderMap, p: &Policy) -> Removed {
    let mut removed = Removed::default();
    if headers.contains_key(SET_COOKIE) {
        let before = headers.get_all(SET_COOKIE).iter().count();
        let kept: Vec<HeaderValue> = headers
            .get_all(SET_COOKIE)
            .iter()
            .filter(|v| !sets_sidecar_cookie(v))
            .cloned()
            .collect();
        if kept.len() < before {
            removed.session_cookies = before - kept.len();
            headers.remove(SET_COOKIE);
            for v in kept {
                headers.append(SET_COOKIE, v);
            }
        }
    }
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| p.identity.is_identity(k.as_str()) || headers::is_framing_alias(k))
        .cloned()
        .collect();
    for name in doomed {
        if headers::is_framing_alias(&name) {
            removed.framing += 1;
        } else {
            removed.identity += 1;
        }
        headers.remove(&name);
    }
    removed
}

/// Whether a `Set-Cookie` is for one of the sidecar's cookies (`session::COOKIES`), bare or with `__Host-` or `__Secure-` (browsers match the
/// prefixes case-insensitively): those are the sidecar's to write, whether browser sessions
/// are on or not.
fn sets_sidecar_cookie(v: &HeaderValue) -> bool {
    let v = v.as_bytes();
    let name = v.split(|b| *b == b'=').next().unwrap_or(v).trim_ascii();
    let bare = strip_prefix_ci(name, b"__Host-")
        .or_else(|| strip_prefix_ci(name, b"__Secure-"))
        .unwrap_or(name);
    crate::browser::session::COOKIES
        .iter()
        .map(|c| c.strip_prefix("__Host-").unwrap_or(c))
        .any(|c| bare.eq_ignore_ascii_case(c.as_bytes()))
}

/// `n` without `prefix` at its start, ASCII case-insensitively.
fn strip_prefix_ci<'a>(n: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    n.get(..prefix.len())
        .filter(|head| head.eq_ignore_ascii_case(prefix))
        .map(|_| &n[prefix.len()..])
}

/// Appends `ip` as `Display` writes it; an IPv4 address (the common peer) without the
/// formatting machinery.
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut b = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(b.format(octet));
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

/// Whether the request is a protocol upgrade the app may see: HTTP/1.1, `GET`, no body,
/// `Connection: upgrade`, and exactly one `Upgrade` protocol, in `allowed`.
fn is_allowed_upgrade(m: &Method, v: Version, h: &HeaderMap, allowed: &[String]) -> bool {
    if v != Version::HTTP_11 || m != Method::GET {
        return false;
    }
    let has_body = h.contains_key(TRANSFER_ENCODING)
        || h.get_all(CONTENT_LENGTH)
            .iter()
            .any(|v| v.as_bytes() != b"0");
    if has_body {
        return false;
    }
    let connection_upgrade = h
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let mut values = h.get_all(UPGRADE).iter();
    match (connection_upgrade, values.next(), values.next()) {
        (true, Some(v), None) => v.to_str().is_ok_and(|v| {
            let v = v.trim();
            !v.contains(',') && allowed.iter().any(|a| a.eq_ignore_ascii_case(v))
        }),
        _ => false,
    }
}

/// All values of the canonically spelled header `name`, joined with `, `.
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let parts: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The request's client address: the peer, unless the peer is a trusted proxy (an ALB), in
/// which case `X-Forwarded-For` is read right to left, skipping trusted hops; the first
/// untrusted address is the client's. Garbage in the chain stops the walk.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => client = ip,
            Ok(ip) => return ip,
            // Garbage in the chain: nothing left of it can be believed.
            Err(_) => return client,
        }
    }
    client
}

/// The client's `X-Request-Id` if it is 1 to 128 visible ASCII characters, else a new UUID.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    match headers.get(&X_REQUEST_ID) {
        Some(v)
            if !v.is_empty()
                && v.len() <= 128
                && v.as_bytes().iter().all(|b| b.is_ascii_graphic()) =>
        {
            v.clone()
        }
        _ => {
            // Hyphenated lower case written into a stack buffer: no `fmt`, one copy.
            let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
            let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
            HeaderValue::from_str(id).unwrap_or_else(|_| HeaderValue::from_static("-"))
        }
    }
}

/// A `Host` value must be an authority (`host[:port]`) and not `user@host`.
pub fn valid_host(v: &HeaderValue) -> bool {
    Authority::try_from(v.as_bytes()).is_ok_and(|a| !a.as_str().contains('@'))
}

#[cfg(test)]
mod tests;
