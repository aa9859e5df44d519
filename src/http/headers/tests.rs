use super::*;

/// A header map from `(name, value)` pairs, in order (shared by the header tables).
pub(crate) fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

#[test]
fn hop_by_hop_and_connection_named_headers_go() {
    let mut h = map(&[
        ("connection", "close, X-Auth-Sub, x-custom"),
        ("keep-alive", "timeout=5"),
        ("x-custom", "1"),
        ("x-auth-sub", "forged"),
        ("te", "trailers, deflate"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
        ("proxy-authorization", "Basic x"),
        ("x-keep", "yes"),
    ]);
    strip_hop_by_hop(&mut h, false);
    let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, vec!["x-keep", "te"]);
    assert_eq!(h["te"], "trailers");
}

#[test]
fn close_and_keep_alive_named_in_connection_go_too() {
    for connection in [
        "close",
        "Close, keep-alive",
        " KEEP-ALIVE ,close",
        "keep-alive",
    ] {
        let mut h = map(&[
            ("connection", connection),
            ("close", "1"),
            ("keep-alive", "timeout=5"),
            ("x-keep", "yes"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        let expected = if connection.to_ascii_lowercase().contains("close") {
            vec!["x-keep"]
        } else {
            // `Close` is no hop-by-hop header unless `Connection` names it.
            vec!["close", "x-keep"]
        };
        assert_eq!(names, expected, "Connection: {connection}");
    }
}

#[test]
fn framing_aliases_are_found_in_every_spelling() {
    // `Host`, `Connection`, `Upgrade`, `Expect` and `TE` have no `-` to spell otherwise,
    // and hyper lower-cases every name: they have no alias today, and are listed for the
    // day one of the readers folds more.
    let aliases = [
        "transfer_encoding",
        "Transfer.Encoding",
        "TRANSFER_ENCODING",
        "content_length",
        "Content.Length",
        "CONTENT_LENGTH",
    ];
    for name in aliases {
        let h = map(&[("x-ok", "1"), (name, "chunked")]);
        let found = framing_alias(&h).map(HeaderName::as_str);
        assert_eq!(found, Some(name.to_ascii_lowercase().as_str()), "{name}");
    }
    // Only folded aliases: the real names, and names that merely contain them, pass.
    let fine = map(&[
        ("transfer-encoding", "chunked"),
        ("content-length", "1"),
        ("host", "a"),
        ("te", "trailers"),
        ("x_content_length", "1"),
        ("content_length_x", "1"),
        ("x.host", "a"),
        ("t_", "a"),
    ]);
    assert_eq!(framing_alias(&fine), None);
}

#[test]
fn upgrade_kept_only_when_asked() {
    let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
    strip_hop_by_hop(&mut h, true);
    assert_eq!(h["upgrade"], "websocket");
    assert_eq!(h["connection"], "upgrade");
}

#[test]
fn amzn_trace_id_is_kept_only_when_it_is_visible_ascii_of_sane_length() {
    let long = format!("Root=1-{}", "a".repeat(250));
    for (value, want) in [
        (Some("Root=1-67891233-abcdef012345678912345678"), true),
        (Some("Root=1-6789;Self=1-abc;Parent=x;Sampled=1"), true),
        (Some("has space"), false),
        (Some(""), false),
        (Some(long.as_str()), false),
        (None, false),
    ] {
        let mut h = HeaderMap::new();
        if let Some(v) = value {
            h.insert(&X_AMZN_TRACE_ID, HeaderValue::from_str(v).expect("value"));
        }
        let got = amzn_trace_id(&h);
        assert_eq!(got.is_some(), want, "{value:?}");
        if want {
            assert_eq!(got.expect("kept").to_str().ok(), value);
        }
    }
}

#[test]
fn folded_names_match_every_spelling_and_nothing_else() {
    let set = FoldedNames::new(["x-real-ip", "Forwarded", "x_http.method"], ["X-Auth-"]);
    let cases = [
        ("x-real-ip", true),
        ("X_Real.IP", true),
        ("forwarded", true),
        ("FORWARDED", true),
        ("x-http-method", true),
        ("X.HTTP_Method", true),
        ("x-auth-sub", true),
        ("x_auth.anything", true),
        ("X-AUTH-", true),
        ("x-auth", false),
        ("x-real-ips", false),
        ("x-real-i", false),
        ("forwarded-for", false),
        ("-real-ip", false),
        ("_auth-sub", false),
        ("host", false),
        ("authorization", false),
        ("", false),
    ];
    for (name, hit) in cases {
        assert_eq!(set.matches(name.as_bytes()), hit, "{name:?}");
    }
    // An empty prefix is every name; no entries, none.
    let all = FoldedNames::new([], [""]);
    assert!(all.matches(b"host") && all.matches(b""));
    let none = FoldedNames::new([], []);
    assert!(!none.matches(b"host") && !none.matches(b""));
    // A name starting with `_` or `.` folds to one starting with `-`.
    let dash = FoldedNames::new(["-x"], []);
    assert!(dash.matches(b"_x") && dash.matches(b".X") && !dash.matches(b"x"));
}
