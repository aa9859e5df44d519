//! The authorization rules: `[[routes]]`, who may use each path.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a route's `scopes` are matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScopeMatch {
    /// One of the scopes is enough.
    Any,
    /// Every scope is needed.
    All,
}

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// No token needed (identity headers are still stripped).
    Public,
    /// A valid token; with `groups`, also membership in one of them.
    Authenticated,
}

/// One authorization rule.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// `/exact/path`, or `/prefix/*` for the prefix itself and everything under it.
    pub path: String,
    /// Methods the rule applies to; empty means all.
    #[serde(default)]
    pub methods: Vec<String>,
    /// `"public"`: no token needed (identity headers are still stripped); `"authenticated"` (the
    /// default): a valid token, and the rule's `groups`, `scopes`, `claims` and `pools`.
    #[serde(default = "default_access")]
    pub access: Access,
    /// With `access = "authenticated"`: the token's `cognito:groups` must hold one of these.
    #[serde(default)]
    pub groups: Vec<String>,
    /// With `access = "authenticated"`: scopes the token's `scope` must hold, matched as
    /// `scopes_match` says (required with `scopes`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// With `scopes`, required: `"any"` (one of them is enough) or `"all"` (every one is needed).
    #[serde(default)]
    pub scopes_match: Option<ScopeMatch>,
    /// With `access = "authenticated"`: claim → accepted values; each claim must equal one
    /// of its values (an array claim: hold one of them).
    #[serde(default)]
    pub claims: std::collections::BTreeMap<String, Vec<serde_json::Value>>,
    /// With `access = "authenticated"`: the token must come from one of these pools (by
    /// name: `verify.pool_name` or a `[[verify.pools]]` name).
    #[serde(default)]
    pub pools: Vec<String>,
}

fn default_access() -> Access {
    Access::Authenticated
}
