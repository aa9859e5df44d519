use super::*;
use http::header::LOCATION;

fn h(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.append(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    m
}

type Case<'a> = (
    Convention,
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    Result<(&'a str, &'a str, Option<&'a str>), &'a str>,
);

#[test]
fn original_request_table() {
    use Convention::{Envoy, Nginx, Traefik};
    let cases: &[Case<'_>] = &[
        (
            Nginx,
            "GET",
            "/_auth/check",
            &[
                ("x-original-method", "DELETE"),
                ("x-original-uri", "/admin/x?a=%2e%2e"),
                ("host", "app.test"),
            ],
            Ok(("DELETE", "/admin/x?a=%2e%2e", Some("app.test"))),
        ),
        // The method is kept as sent: its rule runs afterwards, as for the gate. The target
        // is read here, by the gate's reader.
        (
            Nginx,
            "GET",
            "/_auth/check",
            &[
                ("x-original-method", "delete"),
                ("x-original-uri", "/public/x"),
            ],
            Ok(("delete", "/public/x", None)),
        ),
        (
            Nginx,
            "GET",
            "/_auth/check",
            &[
                ("x-original-method", "GET"),
                ("x-original-uri", "/app/../public/x"),
            ],
            Err("invalid_path"),
        ),
        (
            Nginx,
            "GET",
            "/_auth/check",
            &[("x-original-uri", "/x")],
            Err("original_request_invalid"),
        ),
        (
            Nginx,
            "GET",
            "/_auth/check",
            &[("x-original-method", "GET")],
            Err("original_request_invalid"),
        ),
        (
            Nginx,
            "GET",
            "/_auth/check",
            &[
                ("x-original-method", "GET"),
                ("x-original-uri", "/x"),
                ("x-original-uri", "/public/x"),
            ],
            Err("original_request_invalid"),
        ),
        (
            Nginx,
            "GET",
            "/_auth/check",
            &[("x-original-method", "GET"), ("x-original-uri", "")],
            Err("original_request_invalid"),
        ),
        (
            Nginx,
            "GET",
            "/_auth/check",
            &[
                ("x-original-method", "GET"),
                ("x-original-uri", "http://evil/public/x"),
            ],
            Err("invalid_path"),
        ),
        (
            Nginx,
            "GET",
            "/_auth/check",
            &[("x-original-method", "G T"), ("x-original-uri", "/x")],
            Err("invalid_method"),
        ),
        (
            Nginx,
            "GET",
            "/_auth/check",
            &[
                ("x-original-method", "GET"),
                ("x-original-uri", "/x"),
                ("host", "a.test"),
                ("host", "b.test"),
            ],
            Err("original_request_invalid"),
        ),
        (
            Traefik,
            "GET",
            "/_auth/check",
            &[
                ("x-forwarded-method", "POST"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "app.test"),
                ("x-forwarded-uri", "/reports?x=1"),
                ("host", "sidecar:8080"),
            ],
            Ok(("POST", "/reports?x=1", Some("app.test"))),
        ),
        (
            Traefik,
            "GET",
            "/_auth/check",
            &[("x-forwarded-method", "GET"), ("host", "app.test")],
            Err("original_request_invalid"),
        ),
        (
            Traefik,
            "GET",
            "/_auth/check",
            &[("x-original-method", "GET"), ("x-original-uri", "/x")],
            Err("original_request_invalid"),
        ),
        (
            Envoy,
            "PATCH",
            "/_auth/check/admin/x?q=1",
            &[("host", "app.test")],
            Ok(("PATCH", "/admin/x?q=1", Some("app.test"))),
        ),
        (Envoy, "GET", "/_auth/check/", &[], Ok(("GET", "/", None))),
        (Envoy, "GET", "/_auth/check", &[], Err("invalid_path")),
        (Envoy, "GET", "/_auth/check?x=1", &[], Err("invalid_path")),
    ];
    for (conv, method, target, headers, want) in cases {
        let uri: Uri = target.parse().expect("uri");
        let m = Method::from_bytes(method.as_bytes()).expect("method");
        let got = original(*conv, "/_auth/check", &m, &uri, &h(headers));
        let got = got
            .as_ref()
            .map(|o| {
                (
                    o.method.as_str(),
                    o.target.as_str(),
                    o.host.as_ref().and_then(|v| v.to_str().ok()),
                )
            })
            .map_err(|e| e.code.as_str());
        assert_eq!(got, *want, "{conv:?} {method} {target} {headers:?}");
    }
}

/// One table of targets for every convention: what each reads of the original request.
/// nginx and Traefik carry the target in a header, raw, so the sidecar's reader sees a
/// fragment and refuses it; Envoy's is the check's own request line, whose fragment
/// hyper drops before anyone reads it (as on the proxy path) and Envoy never forwards.
#[test]
fn every_convention_reads_a_target_the_same_way() {
    use Convention::{Envoy, Nginx, Traefik};
    // (target, what a header convention reads: the target or the refusal)
    let table: &[(&str, Result<&str, &str>)] = &[
        ("/public/x", Ok("/public/x")),
        ("/public/x?a=1&b=%2e", Ok("/public/x?a=1&b=%2e")),
        ("/%E6%97%A5", Ok("/%E6%97%A5")),
        ("/\u{65e5}\u{672c}", Ok("/\u{65e5}\u{672c}")),
        ("/public/x#/../../admin/x", Err("invalid_path")),
        ("/public/x?q=1#/../admin", Err("invalid_path")),
        ("/public/x#", Err("invalid_path")),
        ("/public/%23/x", Ok("/public/%23/x")),
        ("/public/../admin/x", Err("invalid_path")),
        ("/public/%2e%2e/admin/x", Err("invalid_path")),
        ("/public/%ef%bc%8e%ef%bc%8e/admin/x", Err("invalid_path")),
        ("/public/\u{ff0e}\u{ff0e}/admin/x", Err("invalid_path")),
        ("/public/x\u{ff0f}..\u{ff0f}admin", Err("invalid_path")),
        ("/public\\..\\admin/x", Err("invalid_path")),
        ("/public/x;/admin", Err("invalid_path")),
        ("//admin/x", Err("invalid_path")),
        ("*", Err("invalid_path")),
        ("http://evil/public/x", Err("invalid_path")),
    ];
    for (target, want) in table {
        let want_header = want.map(str::to_owned);
        for conv in [Nginx, Traefik] {
            let name = if conv == Nginx {
                "x-original-uri"
            } else {
                "x-forwarded-uri"
            };
            let method = if conv == Nginx {
                "x-original-method"
            } else {
                "x-forwarded-method"
            };
            let mut headers = h(&[(method, "GET")]);
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_bytes(target.as_bytes()).expect("value"),
            );
            let uri: Uri = "/_auth/check".parse().expect("uri");
            let got = original(conv, "/_auth/check", &Method::GET, &uri, &headers)
                .map(|o| o.target)
                .map_err(|e| e.code.as_str());
            assert_eq!(got, want_header.clone(), "{conv:?} {target}");
        }
        // Envoy: the target is in the check's request line, parsed by hyper's URI rules.
        let Ok(uri) = format!("/_auth/check{target}").parse::<Uri>() else {
            assert!(want.is_err(), "Envoy cannot even send {target}");
            continue;
        };
        let got = original(Envoy, "/_auth/check", &Method::GET, &uri, &HeaderMap::new())
            .map(|o| o.target)
            .map_err(|e| e.code.as_str());
        let before_fragment = target.split('#').next().unwrap_or_default();
        let want_envoy = match want {
            Err(_) if target.contains('#') => Ok(before_fragment.to_owned()),
            _ => want_header.clone(),
        };
        assert_eq!(got, want_envoy, "Envoy {target}");
    }
}

#[test]
fn nginx_gets_only_401_and_403_for_refusals() {
    let refused = for_auth_request(ErrorCode::InvalidPath.into());
    assert_eq!(
        (refused.status, refused.code.as_str()),
        (StatusCode::FORBIDDEN, "invalid_path")
    );
    let sign_in = for_auth_request(ApiError::sign_in_required(HeaderValue::from_static(
        "/_auth/sign-in?return=%2F",
    )));
    assert_eq!(
        (sign_in.status, sign_in.code.as_str()),
        (StatusCode::UNAUTHORIZED, "sign_in_required")
    );
    let mut resp = sign_in.into_response();
    mark(&mut resp, "sign_in_required");
    assert_eq!(
        resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()),
        Some("/_auth/sign-in?return=%2F")
    );
    assert_eq!(
        resp.headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let scope = for_auth_request(ApiError::insufficient_scope());
    assert_eq!(scope.status, StatusCode::FORBIDDEN);
    let missing = for_auth_request(ApiError::token_missing());
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    let down = for_auth_request(ErrorCode::KeysUnavailable.into());
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
}
