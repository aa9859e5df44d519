use super::*;
use crate::http::headers::tests::map;
use serde_json::json;

#[test]
fn identity_namespace_matches_every_spelling() {
    let ids = IdentityHeaders::new(&IdentityConfig::default()).expect("valid");
    for spoof in [
        "x-auth-sub",
        "X-AUTH-SUB",
        "x_auth_sub",
        "x.auth.sub",
        "X_Auth-Groups",
        "x-auth-anything-else",
        "x.auth_",
    ] {
        assert!(ids.is_identity(spoof), "{spoof}");
    }
    for fine in [
        "x-authorization",
        "authorization",
        "x-au",
        "x-forwarded-for",
        "xauth-sub",
    ] {
        assert!(!ids.is_identity(fine), "{fine}");
    }
    let mut h = map(&[
        ("x_auth_sub", "a"),
        ("x.auth.sub", "b"),
        ("X-Auth-Sub", "c"),
        ("x-other", "keep"),
    ]);
    assert_eq!(ids.strip(&mut h), 3);
    assert_eq!(h.len(), 1);
}

#[test]
fn configured_names_outside_the_prefix_are_stripped_too() {
    let cfg = IdentityConfig {
        strip_prefixes: vec![],
        headers: vec![crate::config::HeaderClaim {
            name: "X-User-Sub".into(),
            claims: vec!["sub".into()],
            principals: vec![crate::config::PrincipalKind::User],
        }],
        claims_header: Some("X-Claims".into()),
        principal_header: "X-Auth-Principal".into(),
    };
    let ids = IdentityHeaders::new(&cfg).expect("valid");
    assert!(ids.is_identity("x_user.sub"));
    assert!(ids.is_identity("X_CLAIMS"));
    assert!(!ids.is_identity("x-user-subway"));
}

#[test]
fn claim_values_are_encoded_safely() {
    let cases: &[(Value, Option<&str>)] = &[
        (json!("plain-ascii value"), Some("plain-ascii value")),
        (
            json!("山田 太郎"),
            Some("%E5%B1%B1%E7%94%B0 %E5%A4%AA%E9%83%8E"),
        ),
        (
            json!("evil\r\nX-Auth-Sub: admin"),
            Some("evil%0D%0AX-Auth-Sub: admin"),
        ),
        (json!("nul\0"), Some("nul%00")),
        (json!("100%"), Some("100%25")),
        (
            json!(["admin", "a,b", "日本"]),
            Some("admin,a%2Cb,%E6%97%A5%E6%9C%AC"),
        ),
        (json!(42), Some("42")),
        (json!(true), Some("true")),
        (json!(null), None),
        // Objects, and arrays holding objects or arrays: compact JSON, keys sorted.
        (
            json!({"b": [1, "x"], "a": {"d": true, "c": null}}),
            Some(r#"{"a":{"c":null,"d":true},"b":[1,"x"]}"#),
        ),
        (
            json!([{"t": "acme\r\n"}, ["x"]]),
            Some(r#"[{"t":"acme\r\n"},["x"]]"#),
        ),
        (json!({"k": "日本"}), Some(r#"{"k":"%E6%97%A5%E6%9C%AC"}"#)),
    ];
    for (v, want) in cases {
        let got = claim_value(v);
        assert_eq!(
            got.as_ref().map(|h| h.to_str().expect("ascii")),
            *want,
            "{v}"
        );
    }
}

#[test]
fn email_and_phone_only_when_verified() {
    let ids = IdentityHeaders::new(&IdentityConfig {
        headers: vec![
            crate::config::HeaderClaim {
                name: "X-Auth-Email".into(),
                claims: vec!["email".into()],
                principals: vec![crate::config::PrincipalKind::User],
            },
            crate::config::HeaderClaim {
                name: "X-Auth-Phone".into(),
                claims: vec!["phone_number".into()],
                principals: vec![crate::config::PrincipalKind::User],
            },
        ],
        ..IdentityConfig::default()
    })
    .expect("valid");
    let cases = [
        (json!({}), false),
        (
            json!({"email_verified": true, "phone_number_verified": true}),
            true,
        ),
        (
            json!({"email_verified": "true", "phone_number_verified": "true"}),
            true,
        ),
        (
            json!({"email_verified": false, "phone_number_verified": "false"}),
            false,
        ),
        (
            json!({"email_verified": "TRUE", "phone_number_verified": 1}),
            false,
        ),
        (json!({"email_verified": null}), false),
    ];
    for (flags, shown) in cases {
        let mut m = json!({"sub": "s", "email": "a@example.com", "phone_number": "+15550100"});
        if let (Value::Object(m), Value::Object(f)) = (&mut m, &flags) {
            m.extend(f.clone());
        }
        let Value::Object(m) = m else { unreachable!() };
        let names: Vec<String> = ids
            .values(&m, Principal::User)
            .into_iter()
            .map(|(k, _)| k.to_string())
            .collect();
        let want: Vec<String> = if shown {
            vec![
                "x-auth-principal".into(),
                "x-auth-email".into(),
                "x-auth-phone".into(),
            ]
        } else {
            vec!["x-auth-principal".into()]
        };
        assert_eq!(names, want, "{flags}");
    }
}

#[test]
fn values_follow_the_map_and_fallbacks() {
    let ids = IdentityHeaders::new(&IdentityConfig {
        claims_header: Some("x-auth-claims".into()),
        ..IdentityConfig::default()
    })
    .expect("valid");
    let claims = json!({
        "sub": "s-1", "cognito:username": "alice", "cognito:groups": ["a", "b"],
        "aud": "client-1", "token_use": "id"
    });
    let Value::Object(m) = claims else {
        unreachable!()
    };
    let got: Vec<(String, String)> = ids
        .values(&m, Principal::User)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_str().expect("ascii").to_string()))
        .collect();
    let names: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "x-auth-principal",
            "x-auth-sub",
            "x-auth-username",
            "x-auth-groups",
            "x-auth-client-id",
            "x-auth-token-use",
            "x-auth-claims"
        ]
    );
    assert_eq!(got[0].1, "user");
    assert_eq!(got[2].1, "alice");
    assert_eq!(got[3].1, "a,b");
    let decoded = URL_SAFE_NO_PAD.decode(&got[6].1).expect("b64");
    let back: Value = serde_json::from_slice(&decoded).expect("json");
    assert_eq!(back["sub"], "s-1");
}

#[test]
fn a_machine_gets_only_the_headers_marked_for_clients() {
    let ids = IdentityHeaders::new(&IdentityConfig::default()).expect("valid");
    let m = json!({
        "sub": "c-1", "client_id": "c-1", "token_use": "access", "scope": "orders/read",
        "username": "minted", "cognito:groups": ["admins"], "email": "m@example.com",
        "email_verified": true,
    });
    let Value::Object(m) = m else { unreachable!() };
    let got = |p| -> Vec<(String, String)> {
        ids.values(&m, p)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_str().expect("ascii").to_string()))
            .collect()
    };
    let pairs = |l: &[(&str, &str)]| -> Vec<(String, String)> {
        l.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    };
    assert_eq!(
        got(Principal::Client),
        pairs(&[
            ("x-auth-principal", "client"),
            ("x-auth-sub", "c-1"),
            ("x-auth-client-id", "c-1"),
            ("x-auth-scope", "orders/read"),
            ("x-auth-token-use", "access"),
        ])
    );
    assert_eq!(
        got(Principal::User).len(),
        8,
        "a user's token fills every header"
    );
}
