//! The start-up checks of `[session]`, beside `settings`: the pages' paths, timeouts,
//! origins and logo; and `session.managed_login` (federated sign-in): the pool's domain and the two URLs the app client lists (callback and sign-out) are
//! absolute, `https` (plain `http` only on loopback, for a local stand-in), without a query;
//! the callback is this sidecar's `{session.prefix}/callback`.

use http::Uri;

use super::settings::{check_rule_path, positive};

use crate::browser::oauth;
use crate::config::{ConfigError, SessionConfig};

const KEY: &str = "session.managed_login";

/// The checks of `[session]` with browser sessions on (`api_prefix`: the auth API's, which
/// the pages must not overlap).
pub fn session(
    se: &SessionConfig,
    api_prefix: &str,
    choice_based: bool,
) -> Result<(), ConfigError> {
    if !se.enabled {
        return Ok(());
    }
    check_rule_path(&se.prefix)
        .map_err(|p| ConfigError::new("session.prefix", p))
        .and_then(|()| {
            if se.prefix == "/" || se.prefix.ends_with('/') || se.prefix.ends_with("/*") {
                Err(ConfigError::new(
                    "session.prefix",
                    "must not end with / (for example /_auth)",
                ))
            } else {
                Ok(())
            }
        })?;
    positive(se.idle_timeout, "session.idle_timeout")?;
    positive(se.absolute_timeout, "session.absolute_timeout")?;
    if se.max_sessions == 0 {
        return Err(ConfigError::new(
            "session.max_sessions",
            "must be at least 1",
        ));
    }
    if !se.after_sign_out.starts_with('/') || se.after_sign_out.starts_with("//") {
        return Err(ConfigError::new(
            "session.after_sign_out",
            "must be a path on this host (starting with one /)",
        ));
    }
    for (i, o) in se.allowed_origins.iter().enumerate() {
        let uri: Uri = o.parse().map_err(|_| {
            ConfigError::new(format!("session.allowed_origins[{i}]"), "not an origin")
        })?;
        let bare = uri.path() == "/" && !o.ends_with('/') || uri.path().is_empty();
        if !matches!(uri.scheme_str(), Some("http" | "https"))
            || uri.authority().is_none()
            || !bare
            || uri.query().is_some()
        {
            return Err(ConfigError::new(
                format!("session.allowed_origins[{i}]"),
                "must be scheme://host[:port], without a path",
            ));
        }
    }
    if let Some(l) = &se.logo_url {
        if !(l.starts_with("https://") || l.starts_with('/') && !l.starts_with("//")) {
            return Err(ConfigError::new(
                "session.logo_url",
                "must be an https:// URL or a path on this host",
            ));
        }
    }
    if se.prefix == api_prefix || se.prefix.starts_with(&format!("{}/", api_prefix)) {
        return Err(ConfigError::new(
            "session.prefix",
            "must not overlap api.prefix",
        ));
    }
    if se.sign_in_codes.as_ref().is_some_and(|c| !c.is_empty()) && !choice_based {
        return Err(ConfigError::new(
            "session.sign_in_codes",
            "needs cognito.choice_based_sign_in (one-time codes are a USER_AUTH sign-in)",
        ));
    }
    Ok(())
}

/// The validated settings, or `None` when federated sign-in is off (no domain, or no
/// browser sessions).
pub fn managed_login(se: &SessionConfig) -> Result<Option<oauth::Settings>, ConfigError> {
    let m = &se.managed_login;
    let key = |k: &str| format!("{KEY}.{k}");
    let Some(domain) = m.domain.as_deref() else {
        return Ok(None);
    };
    if !se.enabled {
        return Err(ConfigError::new(
            key("domain"),
            "needs browser sessions (session.enabled = true)",
        ));
    }
    let d = url(domain, &key("domain"))?;
    if !matches!(d.path(), "" | "/") {
        return Err(ConfigError::new(
            key("domain"),
            "must be the domain alone, without a path (https://<prefix>.auth.<region>.amazoncognito.com)",
        ));
    }
    let domain = domain.trim_end_matches('/').to_string();
    let callback = m.callback_url.as_deref().ok_or_else(|| {
        ConfigError::new(
            key("callback_url"),
            format!(
                "required with a domain: this sidecar's {}/callback as browsers reach it",
                se.prefix
            ),
        )
    })?;
    let c = url(callback, &key("callback_url"))?;
    if c.path() != format!("{}/callback", se.prefix) {
        return Err(ConfigError::new(
            key("callback_url"),
            format!("its path must be {}/callback", se.prefix),
        ));
    }
    let origin = format!(
        "{}://{}",
        c.scheme_str().unwrap_or("https"),
        c.authority().map(|a| a.as_str()).unwrap_or_default()
    );
    let sign_out = m
        .sign_out_url
        .clone()
        .unwrap_or_else(|| format!("{origin}{}", se.after_sign_out));
    url(&sign_out, &key("sign_out_url"))?;
    let name_ok = |n: &str| {
        (1..=32).contains(&n.len())
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    for (i, p) in m.identity_providers.iter().enumerate() {
        if !name_ok(p) || m.identity_providers[..i].contains(p) {
            return Err(ConfigError::new(
                format!("{KEY}.identity_providers[{i}]"),
                "must be a provider's name in the pool (1 to 32 letters, digits, - _ or .), once",
            ));
        }
    }
    if m.identity_providers.is_empty() && !m.other_ways {
        return Err(ConfigError::new(
            key("identity_providers"),
            "list at least one provider, or set other_ways = true",
        ));
    }
    if m.auto_redirect && (m.identity_providers.len() != 1 || m.other_ways) {
        return Err(ConfigError::new(
            key("auto_redirect"),
            "needs exactly one identity provider and other_ways = false",
        ));
    }
    // RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E.
    let scope_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
    };
    if !m.scopes.iter().any(|s| s == "openid") || !m.scopes.iter().all(|s| scope_ok(s)) {
        return Err(ConfigError::new(
            key("scopes"),
            "must include openid, each a scope token (no spaces or quotes)",
        ));
    }
    for (d, k) in [(m.flow_timeout, "flow_timeout"), (m.timeout, "timeout")] {
        if d.is_zero() {
            return Err(ConfigError::new(key(k), "must be greater than zero"));
        }
    }
    Ok(Some(oauth::Settings {
        domain,
        callback_url: callback.to_string(),
        sign_out_url: sign_out,
        identity_providers: m.identity_providers.clone(),
        other_ways: m.other_ways,
        auto_redirect: m.auto_redirect,
        scopes: m.scopes.join(" "),
        flow_timeout: m.flow_timeout,
        timeout: m.timeout,
    }))
}

/// An absolute `https` URL (or `http` on a loopback host) without a query or fragment.
fn url(s: &str, key: &str) -> Result<Uri, ConfigError> {
    let uri: Uri = s
        .parse()
        .map_err(|_| ConfigError::new(key, format!("{s:?} is not a URL")))?;
    let host = uri.host().unwrap_or_default();
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if loopback => {}
        _ => {
            return Err(ConfigError::new(
                key,
                format!("{s:?} must be an https:// URL (http:// only on loopback)"),
            ))
        }
    }
    if host.is_empty() || uri.query().is_some() || s.contains('#') {
        return Err(ConfigError::new(
            key,
            format!("{s:?} must be an absolute URL without a query"),
        ));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> SessionConfig {
        let mut se = SessionConfig {
            enabled: true,
            ..SessionConfig::default()
        };
        se.managed_login.domain = Some("https://example.auth.us-east-1.amazoncognito.com".into());
        se.managed_login.callback_url = Some("https://app.example.com/_auth/callback".into());
        se.managed_login.identity_providers = vec!["Okta".into()];
        se
    }

    #[test]
    fn sign_in_codes_need_choice_based_sign_in() {
        let mut se = base();
        se.sign_in_codes = Some(vec![crate::config::SignInCode::EmailOtp]);
        let e = session(&se, "/api/user", false).expect_err("without USER_AUTH");
        assert_eq!(e.key, "session.sign_in_codes");
        assert!(session(&se, "/api/user", true).is_ok());
        // None offered: nothing to refuse.
        se.sign_in_codes = Some(vec![]);
        assert!(session(&se, "/api/user", false).is_ok());
    }

    #[test]
    fn off_without_a_domain() {
        assert!(managed_login(&SessionConfig::default())
            .expect("valid")
            .is_none());
    }

    #[test]
    fn derives_the_sign_out_url_from_the_callback_origin() {
        let s = managed_login(&base()).expect("valid").expect("on");
        assert_eq!(s.domain, "https://example.auth.us-east-1.amazoncognito.com");
        assert_eq!(s.sign_out_url, "https://app.example.com/_auth/sign-in");
        assert_eq!(s.scopes, "openid email profile");
        let mut se = base();
        se.managed_login.domain = Some("http://127.0.0.1:9000/".into());
        let s = managed_login(&se).expect("loopback http").expect("on");
        assert_eq!(s.domain, "http://127.0.0.1:9000");
    }

    #[test]
    fn refusals_name_the_key() {
        type Tweak = fn(&mut SessionConfig);
        let table: &[(Tweak, &str)] = &[
            (|s| s.enabled = false, "domain"),
            (
                |s| s.managed_login.domain = Some("http://auth.example.com".into()),
                "domain",
            ),
            (
                |s| s.managed_login.domain = Some("https://auth.example.com/x".into()),
                "domain",
            ),
            (
                |s| s.managed_login.domain = Some("auth.example.com".into()),
                "domain",
            ),
            (|s| s.managed_login.callback_url = None, "callback_url"),
            (
                |s| s.managed_login.callback_url = Some("https://app.example.com/cb".into()),
                "callback_url",
            ),
            (
                |s| {
                    s.managed_login.callback_url =
                        Some("https://app.example.com/_auth/callback?x=1".into())
                },
                "callback_url",
            ),
            (
                |s| s.managed_login.sign_out_url = Some("javascript:alert(1)".into()),
                "sign_out_url",
            ),
            (
                |s| s.managed_login.identity_providers = vec!["Okta\"><script>".into()],
                "identity_providers[0]",
            ),
            (
                |s| s.managed_login.identity_providers = vec!["Okta".into(), "Okta".into()],
                "identity_providers[1]",
            ),
            (
                |s| s.managed_login.identity_providers = vec![],
                "identity_providers",
            ),
            (
                |s| {
                    s.managed_login.auto_redirect = true;
                    s.managed_login.other_ways = true;
                },
                "auto_redirect",
            ),
            (|s| s.managed_login.scopes = vec!["email".into()], "scopes"),
            (
                |s| s.managed_login.scopes = vec!["openid".into(), "a b".into()],
                "scopes",
            ),
            (
                |s| s.managed_login.flow_timeout = std::time::Duration::ZERO,
                "flow_timeout",
            ),
        ];
        for (tweak, key) in table {
            let mut se = base();
            tweak(&mut se);
            let e = managed_login(&se).expect_err(key);
            assert_eq!(e.key, format!("{KEY}.{key}"), "{}", e.problem);
        }
    }
}
