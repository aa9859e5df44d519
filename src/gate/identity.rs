//! The identity headers: what a verified token's claims say, as header values
//! (`IdentityHeaders::values`), and the namespace no client may send in (`is_identity`,
//! `strip`: every spelling of it). No knowledge of tokens beyond a JSON claims map.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use percent_encoding::AsciiSet;
use serde_json::{Map, Value};

use crate::config::IdentityConfig;
use crate::http::headers::{encode_value, fold_name, folded_eq, folded_starts_with, VALUE_ESCAPES};

/// Inside a joined array, `,` is the separator, so elements escape it too.
const ELEMENT_ESCAPES: &AsciiSet = &VALUE_ESCAPES.add(b',');

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
mod tests;
