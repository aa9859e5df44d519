use super::*;

#[test]
fn canonical_path_table() {
    let ok: &[(&str, &str)] = &[
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a/b/", "/a/b/"),
        ("/a.b/c..d/.e/f.", "/a.b/c..d/.e/f."),
        ("/%E6%97%A5%E6%9C%AC", "/日本"),
        ("/users/alice%40example.com", "/users/alice@example.com"),
        ("/a%20b", "/a b"),
        ("/q%3Fx", "/q?x"),
        ("/%c3%a9", "/é"),
    ];
    for (raw, want) in ok {
        assert_eq!(canonical_path(raw).as_deref(), Ok(*want), "{raw}");
    }
    let refused = [
        "",
        "*",
        "admin",
        "//admin",
        "/a//b",
        "/public/../admin",
        "/app/../public/x",
        "/app/%2e%2e/public/x",
        "/app/..%2fpublic/x",
        "/app%2f..%2fpublic/x",
        "/app/..;/public/x",
        "/app\\..\\public/x",
        "/app/./../public/x",
        "/app/x/..%2F..%2Fpublic/x",
        "/admin/%2E%2E/public/x",
        "/a/.",
        "/a/..",
        "/.",
        "/./a",
        "/admin;jsessionid=1",
        "/a%3bb",
        "/a%5Cb",
        "/a%2Fb",
        "/%41dmin",
        "/%61dmin",
        "/a%7e",
        "/a%2d",
        "/a%5f",
        "/a%30",
        "/public/%252e%252e/admin",
        "/a%25",
        "/a%00b",
        "/a%0d%0ab",
        "/a%7f",
        "/%ff",
        "/%e6%97",
        "/%C2%85",
        "/a\u{85}",
        "/a%2",
        "/a%zz",
    ];
    for raw in refused {
        assert_eq!(canonical_path(raw), Err(BadPath), "{raw:?}");
    }
}

#[test]
fn read_target_takes_the_bytes_hyper_takes_and_no_fragment() {
    for b in 0u8..=255 {
        for (target, in_query) in [
            (vec![b'/', b'a', b, b'b'], false),
            (vec![b'/', b'a', b'?', b'x', b, b'y'], true),
        ] {
            let http_ok = http::uri::PathAndQuery::try_from(target.as_slice()).is_ok();
            // What only the canonical-path rules refuse (in the path), and the fragment.
            let canonical_refuses = !in_query && matches!(b, b'\\' | b';' | b'%');
            let want = http_ok && b != b'#' && !canonical_refuses;
            assert_eq!(
                read_target(&target).is_ok(),
                want,
                "byte {b:#04x} in {}",
                if in_query { "query" } else { "path" }
            );
        }
    }
    let t = read_target(b"/a%20b/c?x=1&y=%2e").expect("target");
    assert_eq!(
        (t.path, t.query, t.decoded.as_ref()),
        ("/a%20b/c", Some("x=1&y=%2e"), "/a b/c")
    );
    for refused in [
        &b"/x#"[..],
        b"/x#/../admin",
        b"/x?a#b",
        b"x",
        b"",
        b"*",
        b"/a/../b",
        b"/\xff",
    ] {
        assert_eq!(
            read_target(refused),
            Err(BadPath),
            "{}",
            String::from_utf8_lossy(refused)
        );
    }
}

#[test]
fn compatibility_forms_of_path_syntax_are_refused() {
    // Code points an app's NFKC or best-fit mapping turns into `.`, `/`, `\`, `;` or `%`.
    let lookalikes = [
        '\u{ff0e}', // FULLWIDTH FULL STOP
        '\u{2024}', // ONE DOT LEADER
        '\u{2025}', // TWO DOT LEADER
        '\u{2026}', // HORIZONTAL ELLIPSIS
        '\u{fe52}', // SMALL FULL STOP
        '\u{ff0f}', // FULLWIDTH SOLIDUS
        '\u{ff3c}', // FULLWIDTH REVERSE SOLIDUS
        '\u{fe68}', // SMALL REVERSE SOLIDUS
        '\u{ff1b}', // FULLWIDTH SEMICOLON
        '\u{fe54}', // SMALL SEMICOLON
        '\u{ff05}', // FULLWIDTH PERCENT SIGN
        '\u{fe6a}', // SMALL PERCENT SIGN
        '\u{2488}', // DIGIT ONE FULL STOP
        '\u{2215}', // DIVISION SLASH (best-fit)
        '\u{2044}', // FRACTION SLASH (best-fit)
        '\u{2216}', // SET MINUS (best-fit)
        '\u{29f5}', // REVERSE SOLIDUS OPERATOR (best-fit)
        '\u{a5}',   // YEN SIGN (best-fit, cp932)
        '\u{20a9}', // WON SIGN (best-fit, cp949)
    ];
    for c in lookalikes {
        assert!(is_path_lookalike(c), "{c:?}");
        let raw = format!("/x/{c}{c}/admin/y");
        assert_eq!(canonical_path(&raw), Err(BadPath), "raw {c:?}");
        let encoded: String =
            percent_encoding::utf8_percent_encode(&raw, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
                .replace("%2F", "/");
        assert_eq!(canonical_path(&encoded), Err(BadPath), "{encoded}");
    }
    // Letters, CJK, accents and symbols that normalize to no path syntax stay accepted.
    for c in [
        '\u{e9}', '\u{65e5}', '\u{ff21}', '\u{2460}', '\u{b7}', '\u{3002}', '\u{ff61}', '\u{2014}',
    ] {
        assert!(!is_path_lookalike(c), "{c:?}");
        let raw = format!("/x/{c}");
        assert!(canonical_path(&raw).is_ok(), "{c:?}");
    }
    assert_eq!(
        canonical_path("/x/%ef%bc%8e%ef%bc%8e/admin/y"),
        Err(BadPath)
    );
}
