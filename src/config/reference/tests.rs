use super::*;

fn row(key: &str) -> Row {
    rows()
        .into_iter()
        .find(|r| r.key == key)
        .unwrap_or_else(|| panic!("no row {key}"))
}

#[test]
fn a_key_has_its_type_default_env_and_meaning() {
    let r = row("verify.jwks_timeout");
    assert_eq!(r.kind, "duration");
    assert_eq!(r.default, "`\"5s\"`");
    assert_eq!(r.env, vec!["SIDECAR_VERIFY__JWKS_TIMEOUT"]);
    assert!(
        r.description.starts_with("Deadline of one JWKS fetch"),
        "{r:?}"
    );
    let r = row("cognito.region");
    assert_eq!(r.env, vec!["SIDECAR_COGNITO__REGION", "AWS_REGION"]);
    assert_eq!(r.default, "(unset)");
    assert_eq!(
        row("cognito.client_secret").env[1],
        "COGNITO_APP_CLIENT_SECRET"
    );
    assert_eq!(
        row("cognito.auth_flow").kind,
        "`\"admin_user_password\"` or `\"user_password\"`"
    );
    assert_eq!(row("server.trusted_proxies").kind, "array of cidr");
    assert_eq!(
        row("session.managed_login.domain").env,
        vec!["SIDECAR_SESSION__MANAGED_LOGIN__DOMAIN"]
    );
}

#[test]
fn lists_of_tables_list_their_keys() {
    let r = row("routes");
    assert_eq!(r.kind, "array of tables");
    assert_eq!(r.default, "`[]`");
    assert_eq!(r.env, vec!["SIDECAR_ROUTES"]);
    let path = row("routes[].path");
    assert_eq!(path.default, "required");
    assert!(path.env.is_empty());
    assert_eq!(row("routes[].access").default, "`\"authenticated\"`");
    assert_eq!(row("routes[].methods").default, "`[]`");
    row("verify.pools[].client_ids");
    row("identity.headers[].principals");
    assert!(row("identity.headers")
        .default
        .ends_with("tables (`check-config` prints them)"));
}

/// Every value `Config::default()` serializes is a row: the schema and serde agree on the keys.
#[test]
fn every_serialized_key_is_a_row() {
    fn leaves(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    leaves(&format!("{prefix}{k}."), v, out);
                }
            }
            _ => out.push(prefix.trim_end_matches('.').to_owned()),
        }
    }
    let mut keys = Vec::new();
    leaves(
        "",
        &serde_json::to_value(Config::default()).expect("json"),
        &mut keys,
    );
    let rows: Vec<String> = rows().into_iter().map(|r| r.key).collect();
    assert!(keys.len() > 100, "{}", keys.len());
    let missing: Vec<&String> = keys.iter().filter(|k| !rows.contains(k)).collect();
    assert!(missing.is_empty(), "keys with no row: {missing:?}");
}

#[test]
fn every_key_has_a_meaning() {
    let missing: Vec<String> = rows()
        .into_iter()
        .filter(|r| r.description.len() < 10)
        .map(|r| r.key)
        .collect();
    assert!(
        missing.is_empty(),
        "give these fields a doc comment (its first paragraph is their meaning in the reference): {missing:?}"
    );
}

#[test]
fn cells_escape_pipes_and_html() {
    assert_eq!(cell("a | b <x> `<y> | z`"), "a \\| b &lt;x> `<y> \\| z`");
    let page = format!("intro\n{START_MARKER}\nold\n{END_MARKER}\nafter\n");
    assert_eq!(
        splice(&page, "new\n").as_deref(),
        Some(format!("intro\n{START_MARKER}\nnew\n{END_MARKER}\nafter\n").as_str())
    );
    assert_eq!(splice("no markers", "x"), None);
}
