use super::*;

use crate::config::Config;
use http::Request;

/// `(name, value)` pairs, sorted, of what the app receives.
type Head = Vec<(String, String)>;

fn policy(tweak: impl FnOnce(&mut Config)) -> Policy {
    let mut c = Config::default();
    tweak(&mut c);
    let up: Uri = c.upstream.url.parse().expect("uri");
    let host = upstream_host(&up).expect("host");
    let ids = IdentityHeaders::new(&c.identity).expect("identity");
    Policy::new(
        &c.upstream,
        &c.server,
        c.session.enabled,
        (&up, host),
        Arc::new(ids),
    )
}

struct In<'a> {
    method: &'a str,
    target: &'a str,
    headers: &'a [(&'a str, &'a str)],
    peer: &'a str,
    verified: bool,
}

fn get<'a>(target: &'a str, headers: &'a [(&'a str, &'a str)]) -> In<'a> {
    In {
        method: "GET",
        target,
        headers,
        peer: "203.0.113.7",
        verified: false,
    }
}

/// Method, URI, sorted headers and upgrade flag of the request the app receives, or the
/// refusal's code.
type Out = Result<(String, String, Head, bool), &'static str>;

/// Runs `to_upstream`.
fn run(i: &In<'_>, p: &Policy) -> Out {
    let mut b = Request::builder().method(i.method).uri(i.target);
    for (k, v) in i.headers {
        b = b.header(*k, *v);
    }
    let (parts, ()) = b.body(()).expect("request").into_parts();
    let identity = [
        (
            HeaderName::from_static("x-auth-sub"),
            HeaderValue::from_static("sub-1"),
        ),
        (
            HeaderName::from_static("x-auth-groups"),
            HeaderValue::from_static("admins"),
        ),
    ];
    let rid = HeaderValue::from_static("rid-1");
    let d = Decision {
        identity: i.verified.then_some(&identity[..]),
        peer: i.peer.parse().expect("ip"),
        request_id: &rid,
        authorization: None,
        trace: None,
    };
    let out = to_upstream(parts, &d, p).map_err(|e| e.code.as_str())?;
    let mut head: Head = out
        .parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().expect("ascii").to_string()))
        .collect();
    head.sort();
    Ok((
        out.parts.method.to_string(),
        out.parts.uri.to_string(),
        head,
        out.upgrade,
    ))
}

#[test]
fn the_apps_answer_loses_what_only_the_sidecar_may_say() {
    let p = policy(|_| {});
    let cookies = [
        ("__Host-sidecar-session=x; Path=/; Secure", false),
        ("__host-sidecar-session=x", false),
        ("__Secure-sidecar-session=x", false),
        ("sidecar-session=x", false),
        ("Sidecar-Session=x", false),
        ("  __Host-sidecar-csrf  =x", false),
        ("__Host-sidecar-oauth=x; Path=/", false),
        ("__secure-SIDECAR-OAUTH=x", false),
        ("sidecar-csrf", false),
        ("__Host-sidecar-sessions=x", true),
        ("my-sidecar-session=x", true),
        ("__Host-app=sidecar-session", true),
        ("app=1; Path=/", true),
    ];
    let mut h = HeaderMap::new();
    for (c, _) in cookies {
        h.append(SET_COOKIE, HeaderValue::from_static(c));
    }
    for (k, v) in [
        ("x-auth-sub", "admin"),
        ("x_auth_groups", "admins"),
        ("content_length", "9"),
        ("transfer.encoding", "chunked"),
        ("x-app", "kept"),
        ("content-length", "2"),
    ] {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_static(v),
        );
    }
    let removed = from_upstream(&mut h, &p);
    assert_eq!(
        removed,
        Removed {
            session_cookies: 9,
            identity: 2,
            framing: 2
        }
    );
    let kept: Vec<&str> = cookies
        .iter()
        .filter(|(_, k)| *k)
        .map(|(c, _)| *c)
        .collect();
    let left: Vec<&str> = h
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(left, kept);
    let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, vec!["content-length", "set-cookie", "x-app"]);
    // Nothing to remove: nothing changes.
    let mut clean = HeaderMap::new();
    clean.append(SET_COOKIE, HeaderValue::from_static("a=1"));
    clean.append(SET_COOKIE, HeaderValue::from_static("b=2"));
    assert!(!from_upstream(&mut clean, &p).any());
    assert_eq!(clean.get_all(SET_COOKIE).iter().count(), 2);
}

#[test]
fn push_ip_writes_what_display_writes() {
    for ip in [
        "0.0.0.0",
        "127.0.0.1",
        "10.20.30.40",
        "255.255.255.255",
        "::1",
        "::ffff:10.0.0.1",
        "2001:db8::8a2e:370:7334",
    ] {
        let ip: IpAddr = ip.parse().expect("ip");
        let mut out = String::from("x, ");
        push_ip(&mut out, ip);
        assert_eq!(out, format!("x, {ip}"));
    }
}

fn head(pairs: &[(&str, &str)]) -> Head {
    let mut h: Head = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    h.sort();
    h
}

/// The headers the sidecar always writes for an untrusted peer asking for `app.test`.
fn ours(extra: &[(&str, &str)]) -> Head {
    let mut all = vec![
        ("host", "app.test"),
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", "app.test"),
        ("x-request-id", "rid-1"),
    ];
    all.extend_from_slice(extra);
    head(&all)
}

const HOST: (&str, &str) = ("host", "app.test");

#[test]
fn to_upstream_table() {
    let p = policy(|c| c.server.trusted_proxies = vec!["10.0.0.0/8".parse().expect("net")]);
    let ok = |method: &str, uri: &str, h: Head, upgrade: bool| {
        Ok((method.to_string(), uri.to_string(), h, upgrade))
    };
    let cases: Vec<(&str, In<'_>, Out)> = vec![
        (
            "plain request: path and query byte for byte, ours added",
            get("/a%20b/c?x=%2e%2e&y=/../", &[HOST, ("accept", "*/*")]),
            ok(
                "GET",
                "/a%20b/c?x=%2e%2e&y=/../",
                ours(&[("accept", "*/*")]),
                false,
            ),
        ),
        (
            "spoofed identity and request id: removed, replaced",
            get(
                "/a",
                &[
                    HOST,
                    ("x-auth-sub", "admin"),
                    ("x_auth_groups", "admins"),
                    ("x.auth.email", "a@b"),
                    ("x-request-id", "spoof"),
                ],
            ),
            ok("GET", "/a", ours(&[]), false),
        ),
        (
            "verified: identity headers and the Authorization are the app's",
            In {
                verified: true,
                ..get(
                    "/a",
                    &[HOST, ("authorization", "Bearer t"), ("x-auth-sub", "x")],
                )
            },
            ok(
                "GET",
                "/a",
                ours(&[
                    ("authorization", "Bearer t"),
                    ("x-auth-sub", "sub-1"),
                    ("x-auth-groups", "admins"),
                ]),
                false,
            ),
        ),
        (
            "unverified Authorization never reaches the app",
            get("/a", &[HOST, ("authorization", "Bearer forged")]),
            ok("GET", "/a", ours(&[]), false),
        ),
        (
            "Connection names hop-by-hop headers; identity added after",
            In {
                verified: true,
                ..get(
                    "/a",
                    &[
                        HOST,
                        ("connection", "x-auth-sub, x-custom, keep-alive"),
                        ("keep-alive", "timeout=5"),
                        ("x-custom", "1"),
                        ("te", "trailers, gzip"),
                        ("proxy-authorization", "Basic x"),
                    ],
                )
            },
            ok(
                "GET",
                "/a",
                ours(&[
                    ("te", "trailers"),
                    ("x-auth-sub", "sub-1"),
                    ("x-auth-groups", "admins"),
                ]),
                false,
            ),
        ),
        (
            "h2c upgrade: served as plain HTTP",
            get(
                "/a",
                &[
                    HOST,
                    ("connection", "Upgrade, HTTP2-Settings"),
                    ("upgrade", "h2c"),
                    ("http2-settings", "AAMAAABkAAQAAP__"),
                ],
            ),
            ok("GET", "/a", ours(&[]), false),
        ),
        (
            "WebSocket on a bodiless GET: kept",
            get(
                "/ws",
                &[
                    HOST,
                    ("connection", "keep-alive, Upgrade"),
                    ("upgrade", "websocket"),
                    ("sec-websocket-key", "k"),
                    ("sec-websocket-version", "13"),
                ],
            ),
            ok(
                "GET",
                "/ws",
                ours(&[
                    ("connection", "upgrade"),
                    ("upgrade", "websocket"),
                    ("sec-websocket-key", "k"),
                    ("sec-websocket-version", "13"),
                ]),
                true,
            ),
        ),
        (
            "WebSocket on a POST: plain",
            In {
                method: "POST",
                ..get(
                    "/ws",
                    &[HOST, ("connection", "upgrade"), ("upgrade", "websocket")],
                )
            },
            ok("POST", "/ws", ours(&[]), false),
        ),
        (
            "WebSocket with a body: plain",
            get(
                "/ws",
                &[
                    HOST,
                    ("connection", "upgrade"),
                    ("upgrade", "websocket"),
                    ("content-length", "3"),
                ],
            ),
            ok("GET", "/ws", ours(&[("content-length", "3")]), false),
        ),
        (
            "two protocols in one Upgrade: plain",
            get(
                "/ws",
                &[
                    HOST,
                    ("connection", "upgrade"),
                    ("upgrade", "websocket, h2c"),
                ],
            ),
            ok("GET", "/ws", ours(&[]), false),
        ),
        (
            "re-routing, re-method and re-addressing headers: gone in every spelling",
            get(
                "/a",
                &[
                    HOST,
                    ("x-original-url", "/admin"),
                    ("x_original_url", "/admin"),
                    ("x.rewrite.url", "/admin"),
                    ("x-http-method-override", "DELETE"),
                    ("X_HTTP_Method", "DELETE"),
                    ("x-forwarded-prefix", "/admin"),
                    ("x-real-ip", "1.1.1.1"),
                    ("forwarded", "for=1.1.1.1"),
                    ("x_forwarded_for", "1.1.1.1"),
                    ("x.forwarded.host", "evil"),
                    ("x-forwarded-for", "1.1.1.1"),
                    ("x-forwarded-proto", "https"),
                    ("x-forwarded-host", "evil"),
                    ("x-forwarded-port", "443"),
                    ("front-end-https", "on"),
                ],
            ),
            ok("GET", "/a", ours(&[]), false),
        ),
        (
            "from a trusted proxy: For chained, Proto kept; Host and Port not trusted",
            In {
                peer: "10.0.0.5",
                ..get(
                    "/a",
                    &[
                        HOST,
                        ("x-forwarded-for", "1.1.1.1"),
                        ("x-forwarded-proto", "https"),
                        ("x-forwarded-host", "evil"),
                        ("x-forwarded-port", "443"),
                        ("x_forwarded_for", "6.6.6.6"),
                    ],
                )
            },
            Ok((
                "GET".into(),
                "/a".into(),
                head(&[
                    HOST,
                    ("x-forwarded-for", "1.1.1.1, 10.0.0.5"),
                    ("x-forwarded-proto", "https"),
                    ("x-forwarded-host", "app.test"),
                    ("x-request-id", "rid-1"),
                ]),
                false,
            )),
        ),
        (
            "a trusted proxy's Proto is http or https, nothing else",
            In {
                peer: "10.0.0.5",
                ..get("/a", &[HOST, ("x-forwarded-proto", "javascript")])
            },
            Ok((
                "GET".into(),
                "/a".into(),
                head(&[
                    HOST,
                    ("x-forwarded-for", "10.0.0.5"),
                    ("x-forwarded-proto", "http"),
                    ("x-forwarded-host", "app.test"),
                    ("x-request-id", "rid-1"),
                ]),
                false,
            )),
        ),
        (
            "absolute form: the request-target's authority is the Host",
            get("http://real.test/a?q", &[("host", "other.test")]),
            Ok((
                "GET".into(),
                "/a?q".into(),
                head(&[
                    ("host", "real.test"),
                    ("x-forwarded-for", "203.0.113.7"),
                    ("x-forwarded-proto", "http"),
                    ("x-forwarded-host", "real.test"),
                    ("x-request-id", "rid-1"),
                ]),
                false,
            )),
        ),
        (
            "HEAD stays HEAD; extension methods pass",
            In {
                method: "PROPFIND",
                ..get("/a", &[HOST])
            },
            ok("PROPFIND", "/a", ours(&[]), false),
        ),
        (
            "lower-case method",
            In {
                method: "delete",
                ..get("/a", &[HOST])
            },
            Err("invalid_method"),
        ),
        (
            "mixed-case method",
            In {
                method: "Get",
                ..get("/a", &[HOST])
            },
            Err("invalid_method"),
        ),
        ("dot segment", get("/a/../b", &[HOST]), Err("invalid_path")),
        (
            "encoded dot",
            get("/a/%2e%2e/b", &[HOST]),
            Err("invalid_path"),
        ),
        ("encoded slash", get("/a%2fb", &[HOST]), Err("invalid_path")),
        ("double slash", get("//a", &[HOST]), Err("invalid_path")),
        (
            "path parameter",
            get("/a;x=1", &[HOST]),
            Err("invalid_path"),
        ),
        (
            "OPTIONS *",
            In {
                method: "OPTIONS",
                ..get("*", &[HOST])
            },
            Err("invalid_path"),
        ),
        (
            "two Host headers",
            get("/a", &[HOST, ("host", "b.test")]),
            Err("invalid_host"),
        ),
        (
            "userinfo in Host",
            get("/a", &[("host", "u@app.test")]),
            Err("invalid_host"),
        ),
    ];
    for (what, input, want) in cases {
        let got = run(&input, &p);
        assert_eq!(
            got.as_ref().map_err(|e| *e),
            want.as_ref().map_err(|e| *e),
            "{what}"
        );
    }
}

#[test]
fn policy_settings_change_what_the_app_receives() {
    // The upstream's path prefix, and its authority as Host.
    let p = policy(|c| {
        c.upstream.url = "http://127.0.0.1:3000/base/".into();
        c.upstream.preserve_host = false;
    });
    let (_, uri, h, _) = run(&get("/a?b", &[HOST]), &p).expect("ok");
    assert_eq!(uri, "/base/a?b");
    assert!(h.contains(&("host".into(), "127.0.0.1:3000".into())));
    assert!(h.contains(&("x-forwarded-host".into(), "app.test".into())));

    // Unverified Authorization kept when asked; verified one dropped when asked.
    let p = policy(|c| c.upstream.forward_unverified_authorization = true);
    let (_, _, h, _) = run(&get("/a", &[HOST, ("authorization", "Basic x")]), &p).expect("ok");
    assert!(h.contains(&("authorization".into(), "Basic x".into())));
    let p = policy(|c| c.upstream.forward_authorization = false);
    let verified = In {
        verified: true,
        ..get("/a", &[HOST, ("authorization", "Bearer t")])
    };
    let (_, _, h, _) = run(&verified, &p).expect("ok");
    assert!(!h.iter().any(|(k, _)| k == "authorization"));

    // Every forwarded header trusted, from a trusted peer only.
    let p = policy(|c| {
        c.server.trusted_proxies = vec!["10.0.0.0/8".parse().expect("net")];
        c.server.trusted_forwarded_headers =
            FORWARDED_FAMILY.iter().map(|h| (*h).to_string()).collect();
    });
    let spoof = [
        HOST,
        ("x-forwarded-host", "front.test"),
        ("x-forwarded-port", "8443"),
    ];
    let trusted = In {
        peer: "10.1.2.3",
        ..get("/a", &spoof)
    };
    let (_, _, h, _) = run(&trusted, &p).expect("ok");
    assert!(h.contains(&("x-forwarded-host".into(), "front.test".into())));
    assert!(h.contains(&("x-forwarded-port".into(), "8443".into())));
    let (_, _, h, _) = run(&get("/a", &spoof), &p).expect("ok");
    assert!(h.contains(&("x-forwarded-host".into(), "app.test".into())));
    assert!(!h.iter().any(|(k, _)| k == "x-forwarded-port"));

    // More upgrades allowed; more headers never forwarded.
    let p = policy(|c| {
        c.upstream.upgrades = vec!["websocket".into(), "custom-proto".into()];
        c.upstream.never_forward = vec!["x-tenant".into()];
    });
    let up = get(
        "/a",
        &[
            HOST,
            ("connection", "upgrade"),
            ("upgrade", "Custom-Proto"),
            ("X_Tenant", "t"),
        ],
    );
    let (_, _, h, upgrade) = run(&up, &p).expect("ok");
    assert!(upgrade);
    assert!(!h.iter().any(|(k, _)| k.contains("tenant")));
}

#[test]
fn client_address_table() {
    let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
    let h = |v: &str| {
        let mut m = HeaderMap::new();
        m.insert(&X_FORWARDED_FOR, HeaderValue::from_str(v).expect("value"));
        m
    };
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    let cases = [
        // untrusted peer: its XFF is ignored
        ("203.0.113.9", "1.1.1.1", "203.0.113.9"),
        // trusted ALB: the right-most untrusted hop
        ("10.0.1.5", "1.1.1.1", "1.1.1.1"),
        ("10.0.1.5", "6.6.6.6, 1.1.1.1", "1.1.1.1"),
        ("10.0.1.5", "6.6.6.6, 1.1.1.1, 10.0.2.2", "1.1.1.1"),
        // all trusted: the left-most
        ("10.0.1.5", "10.9.9.9", "10.9.9.9"),
        // garbage stops the walk
        ("10.0.1.5", "1.1.1.1, junk", "10.0.1.5"),
    ];
    for (peer, xff, want) in cases {
        assert_eq!(
            client_ip(ip(peer), &h(xff), &trusted),
            ip(want),
            "{peer} {xff}"
        );
    }
    assert_eq!(
        client_ip(ip("10.0.1.5"), &HeaderMap::new(), &trusted),
        ip("10.0.1.5")
    );
}

#[test]
fn an_identity_namespace_covering_forwarded_headers_leaves_them_unwritten() {
    // `strip_prefixes = ["x-"]` makes the whole `X-` space the token headers' own: the
    // client's spoofs go, and the sidecar writes no X-Forwarded-* there either (as before
    // the removals became one pass); the verified token's headers and the request id stay.
    let p = policy(|c| c.identity.strip_prefixes = vec!["x-".into()]);
    let req = In {
        verified: true,
        ..get(
            "/a",
            &[
                HOST,
                ("x-forwarded-for", "198.51.100.1"),
                ("X_Auth_Sub", "forged"),
                ("x-custom", "1"),
                ("accept", "*/*"),
            ],
        )
    };
    let (_, _, h, _) = run(&req, &p).expect("ok");
    let names: Vec<&str> = h.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "accept",
            "host",
            "x-auth-groups",
            "x-auth-sub",
            "x-request-id"
        ],
        "{h:?}"
    );
    assert!(h.contains(&("x-auth-sub".into(), "sub-1".into())));
    // The default namespace (`x-auth-`) leaves them to the sidecar.
    let (_, _, h, _) = run(&req, &policy(|_| {})).expect("ok");
    assert!(
        h.contains(&("x-forwarded-for".into(), "203.0.113.7".into())),
        "{h:?}"
    );
    assert!(h.contains(&("x-forwarded-proto".into(), "http".into())));
    assert!(h.contains(&("x-custom".into(), "1".into())));
}
