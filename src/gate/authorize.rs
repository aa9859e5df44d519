//! Authorization: what a route requires of a caller whose token verified — its pool, groups, scopes
//! (`any` or `all`, as the rule says) and claim values. Evaluated on every request, after
//! the verified-token cache: the cache says "this token verified", never "this token may do
//! this". The route table (`request::router`) holds one `Requirements` per rule.
//!
//! Claim values match by JSON equality (numbers by value: `1` matches `1.0`); a claim that is
//! an array matches when it is one of the accepted values or holds one of them. A machine
//! (client-credentials token) has no groups, so a groups rule never admits one.

use serde_json::Value;

use crate::config::{RouteRule, ScopeMatch};
use crate::gate::verify::Claims;

/// What a protected route requires beyond a verified token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Requirements {
    /// One of these `cognito:groups` (empty: no group needed).
    pub groups: Vec<String>,
    /// These scopes (empty: none needed), every one of them when `all_scopes`.
    pub scopes: Vec<String>,
    pub all_scopes: bool,
    /// Claim → accepted values; every listed claim must match.
    pub claims: Vec<(String, Vec<Value>)>,
    /// One of these pools issued the token (empty: any trusted pool).
    pub pools: Vec<String>,
}

/// The first requirement a caller does not meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmet {
    /// The token's pool is not one the route accepts.
    Pool,
    Group,
    /// The route's scopes, space-separated (for `WWW-Authenticate: ... scope="…"`).
    Scope(String),
    /// The claim that has none of the accepted values.
    Claim(String),
}

impl Requirements {
    /// The requirements of a validated rule.
    pub fn of(rule: &RouteRule) -> Self {
        Requirements {
            groups: rule.groups.clone(),
            scopes: rule.scopes.clone(),
            all_scopes: rule.scopes_match == Some(ScopeMatch::All),
            claims: rule
                .claims
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            pools: rule.pools.clone(),
        }
    }

    /// Whether a verified token is all the route needs.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
            && self.scopes.is_empty()
            && self.claims.is_empty()
            && self.pools.is_empty()
    }

    /// Checks a verified caller against every requirement.
    pub fn check(&self, claims: &Claims) -> Result<(), Unmet> {
        if !self.pools.is_empty() && !self.pools.iter().any(|p| **p == *claims.pool) {
            return Err(Unmet::Pool);
        }
        if !self.groups.is_empty() && !claims.groups.iter().any(|g| self.groups.contains(g)) {
            return Err(Unmet::Group);
        }
        if !self.scopes.is_empty() {
            let has = |s: &String| claims.scopes.contains(s);
            let ok = if self.all_scopes {
                self.scopes.iter().all(has)
            } else {
                self.scopes.iter().any(has)
            };
            if !ok {
                return Err(Unmet::Scope(self.scopes.join(" ")));
            }
        }
        for (name, accepted) in &self.claims {
            if !claim_matches(claims.map.get(name), accepted) {
                return Err(Unmet::Claim(name.clone()));
            }
        }
        Ok(())
    }
}

/// Whether a claim's value is one of `accepted` (an array claim: is one, or holds one).
pub fn claim_matches(value: Option<&Value>, accepted: &[Value]) -> bool {
    let Some(v) = value else {
        return false;
    };
    let one = |v: &Value| accepted.iter().any(|a| same(v, a));
    match v {
        Value::Array(items) => one(v) || items.iter().any(one),
        _ => one(v),
    }
}

/// JSON equality, numbers by value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::verify::{Principal, TokenUse};
    use serde_json::json;

    fn caller(groups: &[&str], scopes: &[&str], map: Value) -> Claims {
        Claims {
            map: map.as_object().cloned().unwrap_or_default(),
            sub: "s".into(),
            exp: 0,
            iat: 0,
            token_use: TokenUse::Access,
            username: None,
            origin_jti: None,
            groups: groups.iter().map(|g| (*g).into()).collect(),
            principal: Principal::User,
            scopes: scopes.iter().map(|s| (*s).into()).collect(),
            pool: "customers".into(),
        }
    }

    #[test]
    fn pools_name_who_may_pass() {
        let r = |pools: &[&str]| Requirements {
            pools: pools.iter().map(|p| (*p).into()).collect(),
            ..Requirements::default()
        };
        let c = caller(&[], &[], json!({}));
        assert_eq!(r(&["customers"]).check(&c), Ok(()));
        assert_eq!(r(&["staff", "customers"]).check(&c), Ok(()));
        assert_eq!(r(&["staff"]).check(&c), Err(Unmet::Pool));
        assert_eq!(r(&["Customers"]).check(&c), Err(Unmet::Pool));
        assert!(!r(&["staff"]).is_empty());
    }

    fn scopes(list: &[&str], all: bool) -> Requirements {
        Requirements {
            scopes: list.iter().map(|s| (*s).into()).collect(),
            all_scopes: all,
            ..Requirements::default()
        }
    }

    #[test]
    fn scopes_match_as_the_rule_says() {
        let rw = ["orders/read", "orders/write"];
        let cases: &[(&[&str], bool, Result<(), Unmet>)] = &[
            (&["orders/read"], false, Ok(())),
            (&["orders/write"], false, Ok(())),
            (&["orders/read"], true, Err(Unmet::Scope(rw.join(" ")))),
            (&["orders/read", "orders/write"], true, Ok(())),
            (&["orders/write", "x", "orders/read"], true, Ok(())),
            (&[], false, Err(Unmet::Scope(rw.join(" ")))),
            (
                &["orders/readx", "Orders/read"],
                false,
                Err(Unmet::Scope(rw.join(" "))),
            ),
        ];
        for (held, all, want) in cases {
            let got = scopes(&rw, *all).check(&caller(&[], held, json!({})));
            assert_eq!(&got, want, "{held:?} all={all}");
        }
        assert!(scopes(&[], true).is_empty());
    }

    #[test]
    fn groups_need_one_of_them() {
        let r = Requirements {
            groups: vec!["admins".into(), "staff".into()],
            ..Requirements::default()
        };
        assert_eq!(r.check(&caller(&["staff"], &[], json!({}))), Ok(()));
        assert_eq!(
            r.check(&caller(&["users"], &[], json!({}))),
            Err(Unmet::Group)
        );
        assert_eq!(r.check(&caller(&[], &[], json!({}))), Err(Unmet::Group));
    }

    #[test]
    fn claim_values_of_every_json_type() {
        let cases: &[(Value, Value, bool)] = &[
            // (claim value, accepted values, matches)
            (json!("acme"), json!(["acme", "globex"]), true),
            (json!("Acme"), json!(["acme"]), false),
            (json!(7), json!([7]), true),
            (json!(7), json!([7.0]), true),
            (json!(7), json!(["7"]), false),
            (json!(true), json!([true]), true),
            (json!(true), json!(["true"]), false),
            (json!(false), json!([true]), false),
            (json!(null), json!([null]), true),
            (json!(["reader", "writer"]), json!(["writer"]), true),
            (json!(["reader"]), json!(["writer"]), false),
            (json!(["a", "b"]), json!([["a", "b"]]), true),
            (json!([]), json!(["a"]), false),
            (json!({"t": "acme"}), json!([{"t": "acme"}]), true),
            (json!({"t": "acme"}), json!([{"t": "other"}]), false),
            (json!([1, 2]), json!([2]), true),
        ];
        for (value, accepted, want) in cases {
            let accepted = accepted.as_array().cloned().unwrap_or_default();
            assert_eq!(
                claim_matches(Some(value), &accepted),
                *want,
                "{value} in {accepted:?}"
            );
        }
        assert!(!claim_matches(None, &[json!("acme")]), "an absent claim");
        let r = Requirements {
            claims: vec![
                ("custom:tenant".into(), vec![json!("acme")]),
                ("roles".into(), vec![json!("admin")]),
            ],
            ..Requirements::default()
        };
        let both = json!({"custom:tenant": "acme", "roles": ["admin", "x"]});
        assert_eq!(r.check(&caller(&[], &[], both)), Ok(()));
        let one = json!({"custom:tenant": "acme", "roles": ["x"]});
        assert_eq!(
            r.check(&caller(&[], &[], one)),
            Err(Unmet::Claim("roles".into()))
        );
    }
}
