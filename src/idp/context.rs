//! The end user's context for Cognito's threat protection (adaptive authentication,
//! compromised-credential checks): behind the sidecar every admin-flow sign-in would come
//! from the task's own address, so the calls made for a user carry where the user is.
//!
//! `ContextData` (the Admin* calls) gets the client's address (the one the rate limits
//! count: the peer, or the trusted `X-Forwarded-For` hop), the public host and the endpoint,
//! and a fixed allow-list of request headers that describe the browser. Never `Cookie`,
//! `Authorization`, `Referer` (it can carry codes and tokens in its query), forwarding headers
//! or the sidecar's own. The public flow's `UserContextData` carries the address (with
//! `cognito.propagate_user_context`). Both carry the device fingerprint's `EncodedData` when the
//! pages collected it.

use std::net::IpAddr;

use http::header::HOST;
use http::HeaderMap;

/// Request headers Cognito is shown, by name (lower case), in this order.
pub const CONTEXT_HEADERS: [&str; 8] = [
    "user-agent",
    "accept",
    "accept-language",
    "accept-encoding",
    "sec-ch-ua",
    "sec-ch-ua-mobile",
    "sec-ch-ua-platform",
    "dnt",
];

/// Longest header value passed on (bytes); longer ones are cut at a character boundary.
const MAX_VALUE: usize = 256;

/// What one call made for an end user tells Cognito about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserContext {
    pub ip: String,
    /// The public host the user reached (`cognito.server_name`, else the request's `Host`).
    pub server_name: String,
    /// The endpoint or page, e.g. `/api/user/login`.
    pub server_path: String,
    pub headers: Vec<(String, String)>,
    /// What Cognito's device-fingerprint script collected (`EncodedData`; the pages' forms
    /// with `session.device_fingerprint`).
    pub encoded_data: Option<String>,
}

impl UserContext {
    /// The context of a request from `client` to `path`.
    pub fn of(headers: &HeaderMap, client: IpAddr, server_name: Option<&str>, path: &str) -> Self {
        let host = server_name
            .map(str::to_string)
            .or_else(|| {
                headers
                    .get(HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown".into());
        let picked = CONTEXT_HEADERS
            .iter()
            .filter_map(|name| {
                let v = headers.get(*name)?.to_str().ok()?.trim();
                (!v.is_empty()).then(|| ((*name).to_string(), cut(v).to_string()))
            })
            .collect();
        UserContext {
            ip: client.to_string(),
            server_name: cut(&host).to_string(),
            server_path: cut(path).to_string(),
            headers: picked,
            encoded_data: None,
        }
    }
}

fn cut(v: &str) -> &str {
    if v.len() <= MAX_VALUE {
        return v;
    }
    let mut end = MAX_VALUE;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    &v[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn only_the_allow_list_reaches_cognito() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("host", "app.example.com"),
            ("user-agent", "Mozilla/5.0 (X11)"),
            ("accept-language", "en-GB,en;q=0.9"),
            ("cookie", "__Host-sidecar-session=secret"),
            ("authorization", "Bearer eyJ.secret.sig"),
            (
                "referer",
                "https://app.example.com/_auth/callback?code=secret",
            ),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-auth-sub", "forged"),
            ("sec-ch-ua-mobile", "?0"),
            ("dnt", "   "),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        let c = UserContext::of(
            &h,
            "203.0.113.9".parse().expect("ip"),
            None,
            "/api/user/login",
        );
        assert_eq!(c.ip, "203.0.113.9");
        assert_eq!(c.server_name, "app.example.com");
        assert_eq!(c.server_path, "/api/user/login");
        assert_eq!(
            c.headers,
            [
                ("user-agent".to_string(), "Mozilla/5.0 (X11)".to_string()),
                ("accept-language".to_string(), "en-GB,en;q=0.9".to_string()),
                ("sec-ch-ua-mobile".to_string(), "?0".to_string()),
            ]
        );
        let configured =
            UserContext::of(&h, "::1".parse().expect("ip"), Some("public.example"), "/p");
        assert_eq!(
            (configured.server_name.as_str(), configured.ip.as_str()),
            ("public.example", "::1")
        );
        let none = UserContext::of(
            &HeaderMap::new(),
            "127.0.0.1".parse().expect("ip"),
            None,
            "/p",
        );
        assert_eq!(none.server_name, "unknown");
        assert!(none.headers.is_empty());
        let mut h = HeaderMap::new();
        h.insert(
            "user-agent",
            HeaderValue::from_str(&"a".repeat(300)).expect("value"),
        );
        // Not visible ASCII: left out rather than passed on garbled.
        h.insert(
            "accept",
            HeaderValue::from_bytes(b"caf\xc3\xa9").expect("value"),
        );
        let c = UserContext::of(&h, "127.0.0.1".parse().expect("ip"), None, "/p");
        assert_eq!(
            c.headers,
            [("user-agent".to_string(), "a".repeat(MAX_VALUE))]
        );
    }
}
