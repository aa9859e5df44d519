use super::nginx::cookie_patterns;
use super::traefik::traefik_identity_regex;
use super::*;

fn sample() -> Config {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/forward-auth/sidecar.toml"
    );
    Config::load(std::path::Path::new(path)).expect("the sample loads")
}

fn listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8080))
}

fn with(proxy: Convention) -> Config {
    let mut c = sample();
    c.forward_auth.convention = proxy;
    c
}

#[test]
fn shipped_files_are_the_sample_rendered() {
    for (proxy, shipped) in [
        (
            Convention::Nginx,
            include_str!("../../../deploy/forward-auth/nginx.conf"),
        ),
        (
            Convention::Traefik,
            include_str!("../../../deploy/forward-auth/traefik.yml"),
        ),
        (
            Convention::Envoy,
            include_str!("../../../deploy/forward-auth/envoy.yaml"),
        ),
    ] {
        let text = render(proxy, &with(proxy), listen()).expect("renders");
        assert!(
            text == shipped,
            "deploy/forward-auth's {} file is stale: regenerate it (see sidecar.toml)",
            name(proxy)
        );
    }
}

#[test]
fn every_never_forwarded_header_is_cleared_by_each_proxy() {
    let issue = [
        "x-forwarded-path",
        "x-envoy-original-path",
        "x-real-ip",
        "forwarded",
        "true-client-ip",
        "x-original-host",
        "x-host",
        "client-ip",
        "x-forwarded-port",
        "x-forwarded-scheme",
        "x-forwarded-ssl",
        "x-forwarded-server",
    ];
    let mut c = with(Convention::Nginx);
    c.upstream.never_forward.push("X_Custom.Route".into());
    let nginx = render(Convention::Nginx, &c, listen()).expect("nginx");
    for h in issue
        .iter()
        .copied()
        .chain(crate::config::NEVER_FORWARD.iter().copied())
        .chain(["x-custom-route"])
    {
        assert!(
            nginx.contains(&format!("proxy_set_header {h} \"\";")),
            "nginx: {h}"
        );
    }
    // What nginx sets itself is never also cleared.
    for h in ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"] {
        assert!(
            !nginx.contains(&format!("proxy_set_header {h} \"\"")),
            "{h}"
        );
    }
    c.forward_auth.convention = Convention::Traefik;
    let traefik = render(Convention::Traefik, &c, listen()).expect("traefik");
    c.forward_auth.convention = Convention::Envoy;
    let envoy = render(Convention::Envoy, &c, listen()).expect("envoy");
    for h in issue.iter().copied().chain(["x-custom-route"]) {
        assert!(
            traefik.contains(&format!("          {h}: \"\"\n")),
            "traefik: {h}"
        );
        assert!(envoy.contains(&format!("      - {h}\n")), "envoy: {h}");
    }
}

#[test]
fn refusals_name_the_key() {
    type Edit = fn(&mut Config);
    let cases: &[(Convention, Edit, &str)] = &[
        (
            Convention::Nginx,
            |c| c.forward_auth.enabled = false,
            "forward_auth.enabled",
        ),
        (Convention::Traefik, |_| {}, "forward_auth.convention"),
        (
            Convention::Nginx,
            |c| c.upstream.url = "http://127.0.0.1:3000/app".into(),
            "upstream.url",
        ),
        (
            Convention::Nginx,
            |c| c.identity.headers[1].name = "X_Auth_User".into(),
            "identity.headers[1].name",
        ),
        (
            Convention::Nginx,
            |c| c.identity.claims_header = Some("X.Claims".into()),
            "identity.claims_header",
        ),
        (
            Convention::Nginx,
            |c| c.upstream.upgrades = vec!["web socket".into()],
            "upstream.upgrades[0]",
        ),
    ];
    for (proxy, edit, key) in cases {
        let mut c = sample();
        edit(&mut c);
        let e = render(*proxy, &c, listen()).expect_err(key);
        assert_eq!(e.key, *key, "{e}");
    }
}

#[test]
fn addresses_identity_and_prefixes_follow_the_configuration() {
    let mut c = with(Convention::Nginx);
    c.server.listen = "0.0.0.0:8081".parse().expect("addr");
    c.forward_auth.listen = None;
    c.forward_auth.path = "/authz".into();
    c.upstream.url = "http://app.internal:8000".into();
    c.api.prefix = "/auth-api".into();
    c.session.enabled = false;
    c.identity.headers.push(crate::config::HeaderClaim {
        name: "X-User-Id".into(),
        claims: vec!["sub".into()],
        principals: vec![crate::config::PrincipalKind::User],
    });
    let nginx =
        render(Convention::Nginx, &c, "127.0.0.1:80".parse().expect("addr")).expect("nginx");
    for want in [
        "        listen 127.0.0.1:80;",
        "        server app.internal:8000;",
        // The check on the main listener, dialled on loopback.
        "    upstream sidecar_check {\n        server 127.0.0.1:8081;",
        "        location = /authz {",
        "        location /auth-api/ {",
        "            auth_request_set $auth_x_user_id $upstream_http_x_user_id;",
        "            proxy_set_header X-User-Id $auth_x_user_id;",
    ] {
        assert!(nginx.contains(want), "{want}\n{nginx}");
    }
    // Sessions off: no pages to route, no cookies to remove.
    assert!(!nginx.contains("location /_auth/"));
    assert!(!nginx.contains("$sidecar_cookie_left"));
    assert!(!nginx.contains("proxy_set_header Cookie"));

    c.forward_auth.convention = Convention::Traefik;
    let traefik = render(Convention::Traefik, &c, listen()).expect("traefik");
    assert!(
        traefik
            .contains("authResponseHeadersRegex: \"(?i)^(?:x[-_.]auth[-_.]|x[-_.]user[-_.]id$)\""),
        "{traefik}"
    );
    assert!(traefik.contains("address: \"http://127.0.0.1:8081/authz\""));
    c.forward_auth.convention = Convention::Envoy;
    let envoy = render(Convention::Envoy, &c, listen()).expect("envoy");
    assert!(envoy.contains("- exact: x-user-id\n"), "{envoy}");
    assert!(envoy.contains("type: STRICT_DNS"), "{envoy}");
    assert!(envoy.contains("path_prefix: /authz\n"), "{envoy}");
}

#[test]
fn traefik_regex_matches_every_spelling_of_the_identity_and_nothing_else() {
    let mut c = with(Convention::Traefik);
    c.identity.headers.push(crate::config::HeaderClaim {
        name: "X-User-Id".into(),
        claims: vec!["sub".into()],
        principals: vec![crate::config::PrincipalKind::User],
    });
    let plan = plan(Convention::Traefik, &c, listen()).expect("plan");
    let re = regex::Regex::new(&traefik_identity_regex(&plan)).expect("regex");
    for n in [
        "X-Auth-Sub",
        "x_auth.groups",
        "X.AUTH-anything",
        "x-user-id",
        "X_User.Id",
    ] {
        assert!(re.is_match(n), "{n}");
    }
    for n in ["X-Authority", "X-User-Idx", "Authorization", "x-user"] {
        assert!(!re.is_match(n), "{n}");
    }
}

/// nginx's cookie chain, run with the same regexes (PCRE and Rust's regex agree on them),
/// gives what the sidecar's own gate gives (`forward::to_upstream`, step 10).
#[test]
fn the_cookie_chain_removes_what_the_sidecar_removes() {
    let names: Vec<String> = COOKIES.iter().map(|c| re_escape(c)).collect();
    let [first, later, left] = cookie_patterns(&names.join("|"));
    let first = regex::Regex::new(&first).expect("first");
    let later = regex::Regex::new(&later).expect("later");
    let left = regex::Regex::new(&left).expect("left");
    let nginx = |cookie: &str| -> Option<String> {
        let mut v = cookie.to_string();
        for _ in 0..NGINX_COOKIE_STEPS {
            v = if let Some(m) = first.captures(&v) {
                m["rest"].to_string()
            } else if let Some(m) = later.captures(&v) {
                format!("{}{}", &m["head"], &m["tail"])
            } else {
                v
            };
        }
        (!left.is_match(&v)).then_some(v)
    };
    let sidecar = |cookie: &str| -> String {
        cookie
            .split(';')
            .map(str::trim)
            .filter(|p| {
                let n = p.split_once('=').map_or(*p, |(n, _)| n).trim();
                !p.is_empty() && !COOKIES.contains(&n)
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let s = "__Host-sidecar-session=A";
    let c = "__Host-sidecar-csrf=B";
    for cookie in [
        s.to_string(),
        format!("{s}; {c}"),
        format!("a=1; {s}"),
        format!("{s}; a=1"),
        format!("a=1; {s}; b=2; {c}; d=4"),
        format!("{s}; __Host-sidecar-oauth=F; {c}; e=5"),
        format!("{s};{s};{c};{s}"),
        format!("a=1;{s} ;b=2"),
        format!(" {s} ; a=1"),
        "__Host-sidecar-session".to_string(),
        "a=1; __Host-sidecar-csrf".to_string(),
        "__Host-sidecar-sessions=1; a__Host-sidecar-csrf=2".to_string(),
        "a=1; b=2".to_string(),
    ] {
        // The same pairs as the sidecar keeps, none of its own (nginx keeps the client's
        // separators: `a=1;b=2` stays so, the sidecar writes `a=1; b=2`).
        let got = nginx(&cookie).unwrap_or_else(|| panic!("{cookie:?}: one left"));
        assert_eq!(sidecar(&got), sidecar(&cookie), "{cookie:?} gave {got:?}");
    }
    let five = [s; NGINX_COOKIE_STEPS + 1].join("; ");
    assert_eq!(nginx(&five), None, "more than the chain removes is caught");
}
