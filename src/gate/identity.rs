//! The identity headers: what a verified token's claims say, as header values
//! (`IdentityHeaders::values`), and the namespace no client may send in (`is_identity`,
//! `strip`: every spelling of it). No knowledge of tokens beyond a JSON claims map.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use percent_encoding::AsciiSet;
use serde_json::{Map, Value};

use crate::config::{IdentityConfig, PrincipalKind};
use crate::gate::verify::Principal;
use crate::http::headers::{encode_value, FoldedNames, VALUE_ESCAPES};

/// Inside a joined array, `,` is the separator, so elements escape it too.
const ELEMENT_ESCAPES: &AsciiSet = &VALUE_ESCAPES.add(b',');

/// The identity header rules, compiled once from `IdentityConfig`.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    /// Name, claims, and whether users and machines (in that order) produce it.
    mappings: Vec<(HeaderName, Vec<String>, (bool, bool))>,
    claims_header: Option<HeaderName>,
    principal_header: Option<HeaderName>,
    /// `identity.strip_prefixes` and every identity header's own name.
    namespace: FoldedNames,
}

impl IdentityHeaders {
    /// Compiles the rules; names were checked by `Config::validate`.
    pub fn new(cfg: &IdentityConfig) -> Result<Self, http::header::InvalidHeaderName> {
        let mut mappings = Vec::with_capacity(cfg.headers.len());
        let mut own_names = Vec::new();
        for h in &cfg.headers {
            let name = HeaderName::try_from(h.name.as_str())?;
            own_names.push(name.clone());
            let whose = (
                h.principals.contains(&PrincipalKind::User),
                h.principals.contains(&PrincipalKind::Client),
            );
            mappings.push((name, h.claims.clone(), whose));
        }
        let principal_header = match cfg.principal_header.as_str() {
            "" => None,
            n => {
                let name = HeaderName::try_from(n)?;
                own_names.push(name.clone());
                Some(name)
            }
        };
        let claims_header = match &cfg.claims_header {
            Some(n) => {
                let name = HeaderName::try_from(n.as_str())?;
                own_names.push(name.clone());
                Some(name)
            }
            None => None,
        };
        Ok(IdentityHeaders {
            mappings,
            claims_header,
            principal_header,
            namespace: FoldedNames::new(
                own_names.iter().map(HeaderName::as_str),
                cfg.strip_prefixes
                    .iter()
                    .map(String::as_str)
                    .filter(|p| !p.is_empty()),
            ),
        })
    }

    /// Every header name a verified token may produce (the principal header, the map, then
    /// the claims header).
    pub fn names(&self) -> impl Iterator<Item = &HeaderName> {
        self.principal_header
            .iter()
            .chain(self.mappings.iter().map(|(n, _, _)| n))
            .chain(self.claims_header.as_ref())
    }

    /// Whether `name` is in the identity namespace (any spelling).
    pub fn is_identity(&self, name: &str) -> bool {
        self.namespace.matches(name.as_bytes())
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

    /// The headers a verified token's claims produce for `principal`: the principal header,
    /// then the map in configuration order (only the headers that kind of caller produces),
    /// then the claims header.
    pub fn values(
        &self,
        claims: &Map<String, Value>,
        principal: Principal,
    ) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::with_capacity(self.mappings.len() + 2);
        if let Some(name) = &self.principal_header {
            out.push((name.clone(), HeaderValue::from_static(principal.as_str())));
        }
        for (name, keys, (users, clients)) in &self.mappings {
            let produces = match principal {
                Principal::User => *users,
                Principal::Client => *clients,
            };
            if !produces {
                continue;
            }
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

/// One claim as a header value: strings encoded, numbers and booleans as JSON, an array of
/// strings, numbers and booleans joined with `,` (elements escaping `,`); an object, or an
/// array holding an object, an array or null, as compact JSON with keys sorted; null gives no
/// header. Every form goes through `encode_value`, so no CR, LF or invisible byte is sent.
fn claim_value(v: &Value) -> Option<HeaderValue> {
    let nested = |i: &Value| matches!(i, Value::Object(_) | Value::Array(_) | Value::Null);
    match v {
        Value::Object(_) => Some(encode_value(&sorted_json(v))),
        Value::Array(items) if items.iter().any(nested) => Some(encode_value(&sorted_json(v))),
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
        Value::Null => None,
    }
}

/// Compact JSON with every object's keys sorted (`serde_json::Map` is a `BTreeMap` in this
/// build; the rebuild keeps the order sorted even if `preserve_order` is ever turned on).
fn sorted_json(v: &Value) -> String {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), sort(&m[k]))).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&sort(v)).unwrap_or_default()
}

#[cfg(test)]
mod tests;
