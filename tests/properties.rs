//! Property tests (proptest) over everything that parses attacker input: bearer extraction,
//! JWT verification (arbitrary strings, forged JSON, every mutation of a valid token), path
//! normalization and routing, claim values turned into headers, identity and hop-by-hop
//! stripping, and the auth API's JSON bodies over HTTP.
//!
//! Case counts are fixed per property (RSA operations are slowish in debug builds), failures
//! are not persisted to files, and proptest prints the shrunk input when a property fails.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cognito_sidecar::config::{Access, Config, HeaderClaim, IdentityConfig, RouteRule};
use cognito_sidecar::gate::identity::IdentityHeaders;
use cognito_sidecar::gate::verify::{
    bearer, bearer_value, Claims, JwksCache, JwksSettings, Verifier, VerifierSettings, VerifyError,
};
use cognito_sidecar::http::headers::{encode_value, fold_name, strip_hop_by_hop};
use cognito_sidecar::http::path::canonical_path;
use cognito_sidecar::request::outbound::{to_upstream, Decision};
use cognito_sidecar::request::router::Route;
use common::*;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::{HeaderMap, Method};
use jsonwebtoken::{Algorithm, EncodingKey};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{TestCaseResult, TestRunner};
use serde_json::{json, Map, Value};
use tokio::runtime::Runtime;

/// `cases` cases, nothing written to `proptest-regressions/`, shrinking bounded in time.
fn cases(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_time: 60_000,
        ..ProptestConfig::default()
    }
}

/// Runs `test` over `strategy` with `config`; a failure panics with the shrunk input.
fn check<S: Strategy>(
    config: ProptestConfig,
    strategy: S,
    test: impl Fn(S::Value) -> TestCaseResult,
) where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

// === Shared strategies ===

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Strings that stress percent-encoding and header rules: controls, `%`, `,`, non-ASCII.
fn tricky_string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\r\n".to_string()),
        Just("\0".to_string()),
        Just("%".to_string()),
        Just("%25".to_string()),
        Just("%0d%0a".to_string()),
        Just(",".to_string()),
        Just("\u{7f}".to_string()),
        Just("\u{85}".to_string()),
        Just("X-Auth-Sub: admin".to_string()),
        Just("山田".to_string()),
        Just("\u{1F600}".to_string()),
        "[ -~]{0,6}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|v| v.concat())
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), tricky_string()]
}

fn json_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        json_number(),
        any_text().prop_map(Value::String),
    ]
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "sub", "username", "cognito:username", "cognito:groups", "client_id", "aud",
            "scope", "email", "token_use", "custom:display_name", "iss", "exp", "iat", "nbf",
            "alg", "kid",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z:_]{1,10}",
        1 => any::<String>(),
    ]
}

/// Arbitrary JSON, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(json_key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(json_key(), json_value(), 0..10)
        .prop_map(|m| m.into_iter().collect())
}

// === 1. Bearer extraction ===

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// `Authorization` values: raw bytes, or a scheme, whitespace and a token-like tail.
fn authorization_value() -> impl Strategy<Value = Vec<u8>> {
    let scheme = prop::sample::select(vec![
        "Bearer", "bearer", "BEARER", "BeArEr", "Basic", "Bearer:", "Bearerx", "", " ",
    ]);
    let ws = "[ \t]{0,3}";
    let tail = prop_oneof![
        "[A-Za-z0-9_.-]{0,80}",
        "[A-Za-z0-9_.=+/ \t-]{0,80}",
        any::<String>(),
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        (ws, scheme, "[ \t]{0,3}", tail, "[ \t]{0,3}")
            .prop_map(|(a, s, b, t, c)| { format!("{a}{s}{b}{t}{c}").into_bytes() }),
    ]
}

fn check_bearer_ok(input: &[u8], max: usize, token: &str) -> TestCaseResult {
    prop_assert!(!token.is_empty());
    prop_assert!(token.len() <= max, "{} > {max}", token.len());
    prop_assert!(token.bytes().all(is_token_byte), "{token:?}");
    prop_assert!(
        input.windows(token.len()).any(|w| w == token.as_bytes()),
        "{token:?} is not in the input"
    );
    Ok(())
}

proptest! {
    #![proptest_config(cases(2048))]

    #[test]
    fn bearer_value_returns_only_a_clean_substring(
        input in authorization_value(),
        max in 0usize..120,
    ) {
        if let Ok(token) = bearer_value(&input, max) {
            check_bearer_ok(&input, max, token)?;
            // The scheme is Bearer, whatever its case.
            let text = std::str::from_utf8(&input).expect("Ok implies UTF-8");
            prop_assert!(text.trim_start_matches([' ', '\t']).get(..6)
                .is_some_and(|s| s.eq_ignore_ascii_case("bearer")));
        }
    }

    #[test]
    fn bearer_value_accepts_every_clean_token(
        scheme in prop::sample::select(vec!["Bearer", "bearer", "BEARER"]),
        sep in "[ \t]{1,3}",
        token in "[A-Za-z0-9_.-]{1,100}",
        trail in "[ \t]{0,3}",
    ) {
        let input = format!("{scheme}{sep}{token}{trail}");
        let got = bearer_value(input.as_bytes(), 64);
        if token.len() <= 64 {
            prop_assert_eq!(got, Ok(token.as_str()));
        } else {
            prop_assert_eq!(got, Err(VerifyError::TooLarge));
        }
    }

    #[test]
    fn bearer_checks_the_header_count_then_the_value(
        values in prop::collection::vec(authorization_value(), 0..4),
        max in 0usize..120,
    ) {
        let mut headers = HeaderMap::new();
        let mut sent = Vec::new();
        for v in values {
            if let Ok(hv) = HeaderValue::from_bytes(&v) {
                headers.append(AUTHORIZATION, hv);
                sent.push(v);
            }
        }
        let got = bearer(&headers, max);
        match sent.as_slice() {
            [] => prop_assert_eq!(got, Err(VerifyError::Missing)),
            [one] => {
                prop_assert_eq!(got, bearer_value(one, max));
                if let Ok(token) = got {
                    check_bearer_ok(one, max, token)?;
                }
            }
            _ => prop_assert_eq!(got, Err(VerifyError::Multiple)),
        }
    }
}

// === 2. JWT verification ===

/// A verifier over a loopback JWKS server that serves key1 as `k1` (leeway 0, access and id
/// tokens accepted).
struct VerifyEnv {
    verifier: Verifier,
    _jwks: JwksServer,
    rt: Runtime,
}

impl VerifyEnv {
    fn start() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (jwks, verifier) = rt.block_on(async {
            let jwks = JwksServer::start().await;
            let cache = JwksCache::new(
                JwksSettings {
                    url: jwks.url.clone(),
                    algorithm: "RS256",
                    max_bytes: 64 * 1024,
                    // Unknown kids refetch once at most.
                    cooldown: Duration::from_secs(3600),
                    refresh_interval: Duration::from_secs(3600),
                },
                reqwest::Client::new(),
            );
            cache.refresh().await.expect("JWKS loaded");
            let verifier = Verifier::new(
                VerifierSettings {
                    issuer: ISSUER.into(),
                    algorithm: Algorithm::RS256,
                    accept_access: true,
                    accept_id: true,
                    client_ids: vec![CLIENT_ID.into()],
                    leeway_secs: 0,
                },
                cache,
            );
            (jwks, verifier)
        });
        VerifyEnv {
            verifier,
            _jwks: jwks,
            rt,
        }
    }

    /// `verify` and `verify_ignoring_expiry`; the second accepts whatever the first does.
    fn verify(&self, token: &str) -> Result<(Result<Claims, VerifyError>, bool), TestCaseError> {
        let (full, lenient) = self.rt.block_on(async {
            let now = now();
            (
                self.verifier.verify(token, now).await,
                self.verifier.verify_ignoring_expiry(token, now).await,
            )
        });
        if full.is_ok() {
            prop_assert!(
                lenient.is_ok(),
                "verify accepted, verify_ignoring_expiry did not"
            );
        }
        Ok((full, lenient.is_ok()))
    }
}

fn id_claims(sub: &str) -> Value {
    let t = now();
    json!({
        "iss": ISSUER, "sub": sub, "aud": CLIENT_ID, "token_use": "id",
        "iat": t, "auth_time": t, "exp": t + 3600, "cognito:username": format!("user-{sub}"),
        "cognito:groups": ["admin", "a,b"], "email": "山田@example.com",
    })
}

#[test]
fn verify_refuses_arbitrary_strings() {
    let env = VerifyEnv::start();
    let segments = || "[A-Za-z0-9_-]{0,60}";
    let strategy = prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_.=+/-]{0,400}",
        (segments(), segments(), "[A-Za-z0-9_-]{0,400}")
            .prop_map(|(h, p, s)| format!("{h}.{p}.{s}")),
        prop::collection::vec(segments(), 0..6).prop_map(|v| v.join(".")),
    ];
    check(cases(1024), strategy, |token| {
        let (full, lenient) = env.verify(&token)?;
        prop_assert!(full.is_err() && !lenient, "accepted {token:?}");
        Ok(())
    });
}

/// How a forged token's third segment is made.
#[derive(Debug, Clone)]
enum Sig {
    Empty,
    Text(String),
    /// Random bytes of the signature's length, base64url.
    Bytes(Vec<u8>),
    /// Signed by a key not in the JWKS.
    OtherKey,
    /// Signed by key1, which the JWKS serves as `k1`.
    Key1,
}

#[derive(Clone)]
struct Forged {
    header: Vec<u8>,
    /// Built by us as a JSON object with unique keys (for the converse check).
    structured: bool,
    payload: Vec<u8>,
    sig: Sig,
}

impl std::fmt::Debug for Forged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forged")
            .field("header", &String::from_utf8_lossy(&self.header))
            .field("structured", &self.structured)
            .field("payload", &String::from_utf8_lossy(&self.payload))
            .field("sig", &self.sig)
            .finish()
    }
}

fn alg_value() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        6 => Just(Some(json!("RS256"))),
        1 => prop::sample::select(vec!["RS512", "RS384", "none", "None", "HS256", "rs256", "RS256 ", "ES256", ""])
            .prop_map(|a| Some(json!(a))),
        1 => json_value().prop_map(Some),
        1 => Just(None),
    ]
}

fn kid_value() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        6 => Just(Some(json!("k1"))),
        1 => prop::sample::select(vec!["k2", "K1", "", "k1 ", "../k1"]).prop_map(|k| Some(json!(k))),
        1 => json_value().prop_map(Some),
        1 => Just(None),
    ]
}

fn forged_header() -> impl Strategy<Value = (Vec<u8>, bool)> {
    let extras = prop::collection::btree_map(
        prop::sample::select(vec!["typ", "jku", "x5u", "jwk", "crit", "cty", "x"]),
        json_value(),
        0..3,
    );
    prop_oneof![
        6 => (alg_value(), kid_value(), extras).prop_map(|(alg, kid, extras)| {
            let mut m: BTreeMap<String, Value> =
                extras.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            if let Some(a) = alg {
                m.insert("alg".into(), a);
            }
            if let Some(k) = kid {
                m.insert("kid".into(), k);
            }
            (serde_json::to_vec(&m).expect("json"), true)
        }),
        1 => json_value().prop_map(|v| (serde_json::to_vec(&v).expect("json"), false)),
        1 => prop::sample::select(vec![
            r#"["RS256","k1"]"#,
            r#"{"alg":"none","alg":"RS256","kid":"k1"}"#,
            r#"{"alg":"RS256","kid":"k2","kid":"k1"}"#,
            r#" {"alg":"RS256","kid":"k1"} "#,
            r#"{"alg":"RS256","kid":"k1"}x"#,
            r#"{"alg":"RS\u0032\u0035\u0036","kid":"k\u0031"}"#,
            "\u{feff}{\"alg\":\"RS256\",\"kid\":\"k1\"}",
        ])
        .prop_map(|s| (s.as_bytes().to_vec(), false)),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| (b, false)),
    ]
}

/// A valid access or id token's claims with up to three fields removed or replaced.
fn forged_claims() -> impl Strategy<Value = Value> {
    let t = now();
    let edit_value = prop_oneof![
        json_value(),
        Just(json!(t - 3600)),
        Just(json!(t + 3600)),
        Just(json!((t + 3600) as f64 + 0.5)),
        Just(json!(-1)),
        Just(json!(format!("{t}"))),
        Just(json!(ISSUER.to_string() + "/")),
        Just(json!("access")),
        Just(json!("id")),
        Just(json!("refresh")),
        Just(json!(CLIENT_ID)),
        Just(json!([CLIENT_ID])),
        Just(json!("")),
    ];
    let edits = prop::collection::vec(
        (
            prop::sample::select(vec![
                "iss",
                "sub",
                "exp",
                "iat",
                "nbf",
                "token_use",
                "client_id",
                "aud",
                "username",
            ]),
            prop::option::weighted(0.8, edit_value),
        ),
        0..3,
    );
    (any::<bool>(), edits).prop_map(|(access, edits)| {
        let mut v = if access {
            access_claims("forged")
        } else {
            id_claims("forged")
        };
        let m = v.as_object_mut().expect("object");
        for (k, val) in edits {
            match val {
                Some(val) => m.insert(k.to_string(), val),
                None => m.remove(k),
            };
        }
        v
    })
}

fn forged() -> impl Strategy<Value = Forged> {
    let payload = prop_oneof![
        4 => forged_claims().prop_map(|v| serde_json::to_vec(&v).expect("json")),
        1 => json_value().prop_map(|v| serde_json::to_vec(&v).expect("json")),
        1 => prop::collection::vec(any::<u8>(), 0..40),
    ];
    let sig = prop_oneof![
        1 => Just(Sig::Empty),
        1 => "[A-Za-z0-9_-]{1,400}".prop_map(Sig::Text),
        1 => prop::collection::vec(any::<u8>(), 256).prop_map(Sig::Bytes),
        1 => Just(Sig::OtherKey),
        4 => Just(Sig::Key1),
    ];
    (forged_header(), payload, sig).prop_map(|((header, structured), payload, sig)| Forged {
        header,
        structured,
        payload,
        sig,
    })
}

fn numeric(m: &Map<String, Value>, k: &str) -> Option<u64> {
    let v = m.get(k)?;
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })
}

/// Cognito's rules as an independent oracle: which payloads a verifier with leeway 0,
/// access and id tokens accepted, must accept at `now`.
fn claims_acceptable(payload: &[u8], now: u64) -> bool {
    let Ok(m) = serde_json::from_slice::<Map<String, Value>>(payload) else {
        return false;
    };
    let s = |k: &str| m.get(k).and_then(Value::as_str);
    let client_ok = match s("token_use") {
        Some("access") => s("client_id") == Some(CLIENT_ID),
        Some("id") => s("aud") == Some(CLIENT_ID),
        _ => false,
    };
    let (Some(exp), Some(iat)) = (numeric(&m, "exp"), numeric(&m, "iat")) else {
        return false;
    };
    let nbf_ok = match m.get("nbf") {
        None => true,
        Some(v) => v.as_f64().is_some_and(|n| n <= now as f64),
    };
    s("iss") == Some(ISSUER)
        && client_ok
        && s("sub").is_some_and(|x| !x.is_empty())
        && now < exp
        && iat <= now
        && nbf_ok
}

/// The header the verifier may accept: a JSON object naming RS256 and `k1`.
fn header_acceptable(header: &[u8]) -> bool {
    serde_json::from_slice::<Map<String, Value>>(header).is_ok_and(|h| {
        h.get("alg").and_then(Value::as_str) == Some("RS256")
            && h.get("kid").and_then(Value::as_str) == Some("k1")
    })
}

#[test]
fn verify_accepts_only_key1_signatures_over_valid_claims() {
    let env = VerifyEnv::start();
    let key1 = encoding_key("key1");
    let other = encoding_key("other");
    let sign = |input: &str, key: &EncodingKey| {
        jsonwebtoken::crypto::sign(input.as_bytes(), key, Algorithm::RS256).expect("sign")
    };
    let accepted = AtomicUsize::new(0);
    check(cases(400), forged(), |f| {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&f.header),
            URL_SAFE_NO_PAD.encode(&f.payload)
        );
        let sig = match &f.sig {
            Sig::Empty => String::new(),
            Sig::Text(t) => t.clone(),
            Sig::Bytes(b) => URL_SAFE_NO_PAD.encode(b),
            Sig::OtherKey => sign(&input, &other),
            Sig::Key1 => sign(&input, &key1),
        };
        let token = format!("{input}.{sig}");
        let (full, lenient) = env.verify(&token)?;
        let signed = matches!(f.sig, Sig::Key1);
        if !signed {
            prop_assert!(
                full.is_err() && !lenient,
                "accepted an unsigned token {f:?}"
            );
            return Ok(());
        }
        let header_ok = header_acceptable(&f.header);
        let claims_ok = claims_acceptable(&f.payload, now());
        if let Ok(claims) = &full {
            accepted.fetch_add(1, Ordering::Relaxed);
            prop_assert!(
                header_ok,
                "accepted the header {:?}",
                String::from_utf8_lossy(&f.header)
            );
            prop_assert!(claims_ok, "accepted the claims {:?}", claims.map);
        }
        if lenient {
            prop_assert!(
                header_ok,
                "accepted (ignoring expiry) the header {:?}",
                String::from_utf8_lossy(&f.header)
            );
        }
        if f.structured && header_ok && claims_ok {
            prop_assert!(
                full.is_ok(),
                "refused a valid token: {:?} for {f:?}",
                full.err()
            );
        }
        Ok(())
    });
    // The generator must reach acceptance, or the property above proves little.
    assert!(
        accepted.load(Ordering::Relaxed) > 0,
        "no forged token was a valid one"
    );
}

/// Found by the property above: serde reads a JSON array into the header struct, so a
/// key1-signed `["RS256","k1"]` header used to verify. A JOSE header is a JSON object.
#[test]
fn verify_refuses_a_header_that_is_not_an_object() {
    let env = VerifyEnv::start();
    let key1 = encoding_key("key1");
    for header in [
        r#"["RS256","k1"]"#,
        r#"[ "RS256", "k1", "x" ]"#,
        r#" {"alg":"RS256","kid":"k1"}"#,
    ] {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(access_claims("s-arr").to_string())
        );
        let sig =
            jsonwebtoken::crypto::sign(input.as_bytes(), &key1, Algorithm::RS256).expect("sign");
        let (full, lenient) = env.verify(&format!("{input}.{sig}")).expect("verify");
        if header.trim_start().starts_with('{') {
            assert!(
                full.is_ok(),
                "an object header with leading space is fine: {full:?}"
            );
        } else {
            assert_eq!(full.err(), Some(VerifyError::Malformed), "{header}");
            assert!(!lenient, "{header}");
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the byte at an index with this character.
    Replace(Index, char),
    /// Flip one of the low seven bits of the byte at an index (stays ASCII).
    Flip(Index, u8),
    Truncate(Index),
    Append(String),
    Insert(Index, String),
    Delete(Index),
    Swap(Index, Index),
    /// Replace the last character of segment 0, 1 or 2 (non-canonical trailing bits).
    SegmentEnd(usize, u8),
    /// Replace a character of the signature with another base64url character.
    SigChar(Index, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let ch = prop_oneof![
        4 => prop::sample::select(B64URL.to_vec()).prop_map(char::from),
        1 => prop::sample::select(b".=+/ \t%".to_vec()).prop_map(char::from),
        1 => any::<char>(),
    ];
    let b64 = || prop::sample::select(B64URL.to_vec());
    prop_oneof![
        3 => (any::<Index>(), ch).prop_map(|(i, c)| Mutation::Replace(i, c)),
        2 => (any::<Index>(), 0u8..7).prop_map(|(i, b)| Mutation::Flip(i, b)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => prop_oneof!["[A-Za-z0-9_.=-]{1,8}", any::<String>()].prop_map(Mutation::Append),
        1 => (any::<Index>(), "[A-Za-z0-9_.=-]{1,4}").prop_map(|(i, s)| Mutation::Insert(i, s)),
        1 => any::<Index>().prop_map(Mutation::Delete),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(i, j)| Mutation::Swap(i, j)),
        3 => (0usize..3, b64()).prop_map(|(s, c)| Mutation::SegmentEnd(s, c)),
        3 => (any::<Index>(), b64()).prop_map(|(i, c)| Mutation::SigChar(i, c)),
    ]
}

/// Applies `m`; `None` when the result is not UTF-8 (the bearer check refuses those).
fn mutate(token: &str, m: &Mutation) -> Option<String> {
    let mut b = token.as_bytes().to_vec();
    let n = b.len();
    match m {
        Mutation::Replace(i, c) => {
            let i = i.index(n);
            let mut buf = [0u8; 4];
            b.splice(i..=i, c.encode_utf8(&mut buf).bytes());
        }
        Mutation::Flip(i, bit) => b[i.index(n)] ^= 1 << bit,
        Mutation::Truncate(i) => b.truncate(i.index(n)),
        Mutation::Append(s) => b.extend_from_slice(s.as_bytes()),
        Mutation::Insert(i, s) => {
            let i = i.index(n + 1);
            b.splice(i..i, s.bytes());
        }
        Mutation::Delete(i) => {
            b.remove(i.index(n));
        }
        Mutation::Swap(i, j) => b.swap(i.index(n), j.index(n)),
        Mutation::SegmentEnd(seg, c) => {
            let end = token
                .match_indices('.')
                .map(|(i, _)| i)
                .chain([n])
                .nth(*seg)
                .expect("three segments");
            b[end - 1] = *c;
        }
        Mutation::SigChar(i, c) => {
            let start = token.rfind('.').expect("three segments") + 1;
            b[start + i.index(n - start)] = *c;
        }
    }
    String::from_utf8(b).ok()
}

fn valid_tokens() -> Vec<String> {
    let mut odd = access_claims("s-ünïcödé");
    odd["custom:display_name"] = json!("山田\r\n太郎%");
    vec![
        valid_token("s-1"),
        mint("key1", "k1", &id_claims("s-2")),
        mint("key1", "k1", &odd),
    ]
}

#[test]
fn verify_refuses_every_mutation_of_a_valid_token() {
    let env = VerifyEnv::start();
    let tokens = valid_tokens();
    for t in &tokens {
        let (full, _) = env.verify(t).expect("verify");
        assert!(full.is_ok(), "fixture token refused: {full:?}");
    }
    check(cases(1000), (any::<Index>(), mutation()), |(which, m)| {
        let original = which.get(&tokens);
        let Some(mutated) = mutate(original, &m) else {
            return Ok(());
        };
        let (full, lenient) = env.verify(&mutated)?;
        if mutated == *original {
            prop_assert!(full.is_ok());
        } else {
            prop_assert!(
                full.is_err() && !lenient,
                "{m:?} gave a different token that verifies:\n{original}\n{mutated}"
            );
        }
        Ok(())
    });
}

/// Exhaustive over the trailing-bits corner: every base64url character in the last position
/// of each segment. Only the original character may verify.
#[test]
fn verify_refuses_noncanonical_segment_endings() {
    let env = VerifyEnv::start();
    let token = valid_token("s-end");
    for seg in 0..3 {
        for &c in B64URL {
            let mutated = mutate(&token, &Mutation::SegmentEnd(seg, c)).expect("ascii");
            let (full, lenient) = env.verify(&mutated).expect("verify");
            if mutated == token {
                assert!(full.is_ok(), "the original token must verify");
            } else {
                assert!(
                    full.is_err() && !lenient,
                    "segment {seg} ending in {:?} still verifies: {mutated}",
                    char::from(c)
                );
            }
        }
    }
}

// === 3. Path normalization and routing ===

fn path_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(vec![
            "/", "//", "\\", ".", "..", "...", "%2e", "%2E", "%2e%2e", "%2f", "%2F", "%5c", "%5C",
            "%25", "%252e", "%", "%2", "%zz", ";", ";x=1", "..;", "public", "publicity", "admin",
            "api", "user", "login", "healthz", "a", " ", "%20", "%00", "%0a", "%0d", "%09", "%7f",
            "%ff", "%c0%ae", "%C2%85", "\u{85}", "日本", "%e6%97%a5", "\t", "?", "#", "+",
        ])
        .prop_map(str::to_owned),
        1 => "[ -~]{1,3}",
        1 => any::<char>().prop_map(String::from),
    ]
}

fn raw_path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(path_piece(), 0..16).prop_map(|v| v.concat()),
        2 => prop::collection::vec(path_piece(), 0..16).prop_map(|v| format!("/{}", v.concat())),
        1 => any::<String>(),
    ]
}

fn routes() -> Vec<RouteRule> {
    vec![
        RouteRule {
            path: "/public/*".into(),
            methods: vec![],
            access: Access::Public,
            groups: vec![],
            scopes: vec![],
            scopes_match: None,
            claims: Default::default(),
            pools: vec![],
        },
        RouteRule {
            path: "/admin/*".into(),
            methods: vec!["GET".into(), "DELETE".into()],
            access: Access::Authenticated,
            groups: vec!["admins".into()],
            scopes: vec![],
            scopes_match: None,
            claims: Default::default(),
            pools: vec![],
        },
    ]
}

fn policy_config() -> Config {
    let mut c = Config {
        routes: routes(),
        ..Config::default()
    };
    c.upstream.url = "http://127.0.0.1:3000/base".into();
    c.cognito.user_pool_id = Some("us-east-1_props".into());
    c.cognito.client_id = Some("props-client".into());
    c
}

/// The most lenient reading of a path any app server might make: percent-decoded (once),
/// `\` as `/`, `;params` dropped, dot segments resolved, empty segments collapsed.
fn app_view(raw: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    let unified = decoded.replace('\\', "/");
    let trailing = unified.ends_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in unified.split('/') {
        match seg.split(';').next().unwrap_or("") {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut path: String = out.iter().map(|s| format!("/{s}")).collect();
    if path.is_empty() || trailing && path != "/" {
        path.push('/');
    }
    Some(path)
}

fn header_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "x-auth-sub",
        "X_Auth_Sub",
        "x.auth.groups",
        "X-Auth-Email",
        "x-original-url",
        "X_Original_URL",
        "x.rewrite.url",
        "x-http-method-override",
        "X_HTTP_Method_Override",
        "x-method-override",
        "x-forwarded-for",
        "X_Forwarded_For",
        "x.forwarded.host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "forwarded",
        "x-real-ip",
        "true-client-ip",
        "connection",
        "upgrade",
        "http2-settings",
        "te",
        "keep-alive",
        "host",
        "authorization",
        "x-request-id",
        "x-custom",
        "accept",
        "cookie",
    ])
    .prop_map(str::to_owned)
}

fn header_value() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "1",
        "upgrade",
        "Upgrade, HTTP2-Settings",
        "h2c",
        "websocket",
        "close, x-custom",
        "x-auth-sub",
        "/admin/x",
        "DELETE",
        "1.2.3.4",
        "https",
        "evil.example",
        "trailers",
        "Bearer abc.def.ghi",
        "app.example:8080",
    ])
    .prop_map(str::to_owned)
}

proptest! {
    #![proptest_config(cases(4096))]

    #[test]
    fn canonical_paths_mean_the_same_to_every_app(raw in raw_path()) {
        let Ok(decoded) = canonical_path(&raw) else {
            return Ok(());
        };
        prop_assert!(raw.starts_with('/'), "{raw:?}");
        for bad in ["//", "/./", "/../", "\\", ";"] {
            prop_assert!(!raw.contains(bad), "{raw:?} accepted with {bad:?}");
        }
        prop_assert!(!decoded.chars().any(|c| c.is_control()), "{raw:?}");
        // However leniently an app reads it, it reads the path the rules were matched on.
        let seen = app_view(&raw);
        prop_assert_eq!(seen.as_deref(), Some(decoded.as_ref()), "{:?}", raw);
    }

    #[test]
    fn the_app_receives_what_the_rule_authorized(
        raw in raw_path(),
        query in prop::option::of("[a-z=&%/.]{0,8}"),
        method in prop::sample::select(vec![
            "GET", "HEAD", "POST", "DELETE", "OPTIONS", "PROPFIND", "get", "Delete",
        ]),
        headers in prop::collection::vec((header_name(), header_value()), 0..12),
        verified in any::<bool>(),
    ) {
        let cfg = policy_config();
        let router = cfg.router();
        let derived = cfg.validate().expect("valid");
        let ids = Arc::new(derived.identity.clone());
        let policy = cfg.policy(&derived, Arc::clone(&ids));
        let target = match &query {
            Some(q) => format!("{raw}?{q}"),
            None => raw.clone(),
        };
        let mut builder = http::Request::builder().method(method).uri(target.as_str());
        for (k, v) in &headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let Ok(req) = builder.body(()) else {
            return Ok(());
        };
        let (parts, ()) = req.into_parts();
        let Ok(Route::Gate(rule)) = router.route(&parts.method, parts.uri.path()) else {
            return Ok(());
        };
        let sent_path = parts.uri.path().to_owned();
        let sent_query = parts.uri.query().map(str::to_owned);
        let identity = [
            (HeaderName::from_static("x-auth-sub"), HeaderValue::from_static("the-sub")),
            (HeaderName::from_static("x-auth-groups"), HeaderValue::from_static("admins")),
        ];
        let request_id = HeaderValue::from_static("rid-1");
        let decision = Decision {
            identity: verified.then_some(&identity[..]),
            peer: "203.0.113.7".parse().expect("ip"),
            request_id: &request_id,
            authorization: None,
            trace: None,
        };
        let Ok(out) = to_upstream(parts, &decision, &policy) else {
            return Ok(());
        };
        let up = &out.parts;
        // The path, byte for byte under the prefix, and the query unchanged.
        let path = up.uri.path().strip_prefix("/base").expect("prefix");
        prop_assert_eq!(path, sent_path.as_str());
        prop_assert_eq!(up.uri.query(), sent_query.as_deref());
        // The app's most lenient reading routes to the rule that authorized the request.
        let seen = app_view(path).expect("decodes");
        let again = router.rule_for(&up.method, &seen);
        prop_assert_eq!(again.as_ref(), Ok(&rule), "{:?} read as {:?}", path, seen);
        prop_assert_eq!(up.method.as_str(), method);
        // No client-sent header from the never-forward list or the identity namespace.
        for (name, value) in &up.headers {
            let folded = fold_name(name.as_str());
            if ids.is_identity(name.as_str()) {
                prop_assert!(verified, "{name} reached the app without a verified token");
                prop_assert!(
                    identity.iter().any(|(n, v)| n == name && v == value),
                    "{name}: {value:?} is not the gate's"
                );
            }
            if folded == "x-forwarded-for" {
                prop_assert_eq!(value, "203.0.113.7");
            }
            let ours = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"];
            let never = cfg.upstream.never_forward.contains(&folded)
                || (folded.starts_with("x-forwarded-") && !ours.contains(&folded.as_str()));
            prop_assert!(!never, "{name} reached the app");
            prop_assert_eq!(name.as_str(), folded.as_str(), "a non-canonical spelling reached the app");
            for hop in ["connection", "keep-alive", "http2-settings", "proxy-connection"] {
                prop_assert!(name.as_str() != hop || out.upgrade, "{name} reached the app");
            }
        }
        if !verified {
            prop_assert!(!up.headers.contains_key(AUTHORIZATION));
        }
        if out.upgrade {
            prop_assert_eq!(&up.method, &Method::GET);
            prop_assert_eq!(up.headers.get("upgrade").map(|v| v.as_bytes()), Some(&b"websocket"[..]));
        } else {
            prop_assert!(!up.headers.contains_key("upgrade"));
        }
    }
}

// === 4. Claim values as headers ===

fn visible(v: &HeaderValue) -> bool {
    v.as_bytes().iter().all(|b| (0x20..0x7f).contains(b))
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .expect("decodes to UTF-8")
        .into_owned()
}

/// JSON equality, numbers compared as f64 with a relative tolerance (serde_json's default
/// float parsing may be off by an ulp).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || {
                let (x, y) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn claims_identity() -> (IdentityConfig, IdentityHeaders) {
    let mut cfg = IdentityConfig {
        claims_header: Some("X-Auth-Claims".into()),
        ..IdentityConfig::default()
    };
    cfg.headers.push(HeaderClaim {
        name: "X-Auth-Name".into(),
        claims: vec!["custom:display_name".into(), "name".into()],
        principals: vec![cognito_sidecar::config::PrincipalKind::User],
    });
    let ids = IdentityHeaders::new(&cfg).expect("valid identity config");
    (cfg, ids)
}

proptest! {
    #![proptest_config(cases(2048))]

    #[test]
    fn encoded_values_are_visible_ascii_and_decode_back(s in any_text()) {
        let v = encode_value(&s);
        prop_assert!(visible(&v), "{v:?}");
        prop_assert_eq!(decode(v.to_str().expect("ascii")), s);
    }
}

proptest! {
    #![proptest_config(cases(1024))]

    #[test]
    fn identity_values_follow_the_claims(claims in json_object()) {
        let (cfg, ids) = claims_identity();
        let got = ids.values(&claims, cognito_sidecar::gate::verify::Principal::User);
        for (_, v) in &got {
            prop_assert!(visible(v), "{v:?}");
        }
        let find = |name: &str| {
            got.iter()
                .find(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_str().expect("ascii").to_string())
        };
        for h in &cfg.headers {
            // The first claim present decides (a null there gives no header);
            // `email` and `phone_number` count only when Cognito verified them.
            let verified = |k: &str| match k {
                "email" | "phone_number" => matches!(
                    claims.get(&format!("{k}_verified")),
                    Some(Value::Bool(true))
                ) || claims.get(&format!("{k}_verified")) == Some(&json!("true")),
                _ => true,
            };
            let claim = h.claims.iter().filter(|k| verified(k)).find_map(|k| claims.get(k));
            let value = find(&h.name);
            match claim {
                Some(Value::String(s)) => prop_assert_eq!(value.map(|v| decode(&v)), Some(s.clone())),
                Some(Value::Number(n)) => prop_assert_eq!(value.map(|v| decode(&v)), Some(n.to_string())),
                Some(Value::Bool(b)) => prop_assert_eq!(value, Some(b.to_string())),
                // An object, or an array holding an object, an array or null: compact JSON
                // with sorted keys, encoded.
                Some(v @ Value::Object(_)) => {
                    let back: Value = serde_json::from_str(&decode(&value.expect("objects give a header")))
                        .expect("JSON");
                    prop_assert!(json_eq(&back, v), "{back} vs {v}");
                }
                Some(v @ Value::Array(items))
                    if items.iter().any(|i| matches!(i, Value::Object(_) | Value::Array(_) | Value::Null)) =>
                {
                    let back: Value = serde_json::from_str(&decode(&value.expect("arrays give a header")))
                        .expect("JSON");
                    prop_assert!(json_eq(&back, v), "{back} vs {v}");
                }
                Some(Value::Array(items)) => {
                    let want: Vec<String> = items.iter().filter_map(|i| match i {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        Value::Bool(b) => Some(b.to_string()),
                        _ => None,
                    }).collect();
                    let value = value.expect("arrays always give a header");
                    let back: Vec<String> = if value.is_empty() && want.len() <= 1 {
                        // `[]` and `[""]` both give an empty value.
                        want.clone()
                    } else {
                        value.split(',').map(decode).collect()
                    };
                    prop_assert_eq!(back, want);
                }
                Some(Value::Null) | None => prop_assert_eq!(value, None),
            }
        }
        let all = find("x-auth-claims").expect("the claims header is always set");
        let back: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(all).expect("base64url"))
            .expect("JSON");
        prop_assert!(json_eq(&back, &Value::Object(claims.clone())), "{back} vs {claims:?}");
    }
}

// === 5. Identity and hop-by-hop stripping ===

/// `word` with each letter's case chosen at random.
fn random_case(word: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), word.len()).prop_map(move |up| {
        word.chars()
            .zip(up)
            .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

fn sep() -> impl Strategy<Value = char> {
    prop::sample::select(vec!['-', '_', '.'])
}

/// A spelling of a name in the identity namespace of `strip_identity()`.
fn identity_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (random_case("x"), sep(), random_case("auth"), sep(), "[A-Za-z0-9_.-]{0,16}")
            .prop_map(|(x, a, auth, b, rest)| format!("{x}{a}{auth}{b}{rest}")),
        1 => (random_case("x"), sep(), random_case("user"), sep(), random_case("sub"))
            .prop_map(|(x, a, u, b, s)| format!("{x}{a}{u}{b}{s}")),
        1 => (random_case("x"), sep(), random_case("claims"))
            .prop_map(|(x, a, c)| format!("{x}{a}{c}")),
    ]
}

fn folded(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '_' | '.' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

fn in_namespace(name: &str) -> bool {
    let f = folded(name);
    f.starts_with("x-auth-") || f == "x-user-sub" || f == "x-claims"
}

/// Names outside the namespace, near misses included.
fn other_name() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "[A-Za-z0-9_.-]{1,24}",
        2 => (random_case("x"), sep(), random_case("auth"), "[A-Za-z0-9]{0,6}")
            .prop_map(|(x, a, auth, rest)| format!("{x}{a}{auth}{rest}")),
        1 => (random_case("xauth"), sep(), "[a-z]{0,6}").prop_map(|(x, s, r)| format!("{x}{s}{r}")),
        1 => (random_case("x-user-sub"), "[a-z0-9]{1,4}").prop_map(|(x, r)| format!("{x}{r}")),
        1 => prop::sample::select(vec!["authorization", "x-authorization", "x-forwarded-for", "x-claim", "x-au"])
            .prop_map(str::to_owned),
    ]
    .prop_filter("outside the namespace", |n| !in_namespace(n))
}

fn strip_identity() -> IdentityHeaders {
    let mut cfg = IdentityConfig {
        claims_header: Some("X-Claims".into()),
        ..IdentityConfig::default()
    };
    cfg.headers.push(HeaderClaim {
        name: "X-User-Sub".into(),
        claims: vec!["sub".into()],
        principals: vec![cognito_sidecar::config::PrincipalKind::User],
    });
    IdentityHeaders::new(&cfg).expect("valid identity config")
}

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn hop_header() -> impl Strategy<Value = (String, String)> {
    let name = prop_oneof![
        2 => prop::sample::select(HOP_BY_HOP.to_vec()).prop_map(str::to_owned),
        2 => prop::sample::select(vec!["x-a", "x-b", "x-custom", "content-type", "host", "x-auth-sub"])
            .prop_map(str::to_owned),
        1 => "[a-z0-9_.-]{1,12}",
    ];
    let token = prop_oneof![
        3 => prop::sample::select(vec![
            "close", "keep-alive", "Upgrade", "upgrade", "TE", "te", "trailers", "Trailers",
            "X-A", "x-b", "x-custom", "Host", "Content-Type", "transfer-encoding", "deflate",
            "gzip", "bad name", "",
        ])
        .prop_map(str::to_owned),
        1 => "[ -~]{0,10}",
    ];
    let list = prop::collection::vec(token, 0..5).prop_map(|v| v.join(" , "));
    (name, prop_oneof![list, "[a-z]{0,8}"])
}

proptest! {
    #![proptest_config(cases(1024))]

    #[test]
    fn identity_strip_removes_every_spelling_and_nothing_else(
        ours in prop::collection::vec(identity_name(), 0..6),
        theirs in prop::collection::vec(other_name(), 0..6),
    ) {
        let ids = strip_identity();
        let mut h = HeaderMap::new();
        for n in ours.iter().chain(&theirs) {
            prop_assert!(ids.is_identity(n) == in_namespace(n), "is_identity({n:?})");
            prop_assert_eq!(fold_name(n), folded(n));
            prop_assert_eq!(fold_name(&fold_name(n)), fold_name(n));
            let name = HeaderName::from_bytes(n.as_bytes()).expect("header name");
            h.append(name, HeaderValue::from_str(n).expect("value"));
        }
        let before = h.clone();
        let removed = ids.strip(&mut h);
        let distinct_ours: std::collections::HashSet<String> =
            ours.iter().map(|n| n.to_ascii_lowercase()).collect();
        prop_assert_eq!(removed, distinct_ours.len());
        for n in &ours {
            prop_assert!(!h.contains_key(n.to_ascii_lowercase().as_str()), "{n:?} survived");
        }
        for n in &theirs {
            let k = n.to_ascii_lowercase();
            let kept: Vec<_> = h.get_all(k.as_str()).iter().collect();
            let sent: Vec<_> = before.get_all(k.as_str()).iter().collect();
            prop_assert_eq!(kept, sent, "{:?} changed", n);
        }
    }

    #[test]
    fn hop_by_hop_strip_leaves_only_end_to_end_headers(
        headers in prop::collection::vec(hop_header(), 0..10),
        keep_upgrade in any::<bool>(),
    ) {
        let mut h = HeaderMap::new();
        for (n, v) in &headers {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(v)) {
                h.append(n, v);
            }
        }
        let before = h.clone();
        let named: Vec<String> = before
            .get_all("connection")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .collect();
        let te_trailers = before
            .get_all("te")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("trailers"));
        strip_hop_by_hop(&mut h, keep_upgrade);
        for name in HOP_BY_HOP {
            let left: Vec<&str> = h.get_all(name).iter().map(|v| v.to_str().expect("ascii")).collect();
            match name {
                "te" if te_trailers => prop_assert_eq!(left, vec!["trailers"]),
                "connection" if keep_upgrade => prop_assert_eq!(left, vec!["upgrade"]),
                "upgrade" if keep_upgrade => {
                    let sent: Vec<&str> = before.get_all(name).iter().map(|v| v.to_str().expect("ascii")).collect();
                    prop_assert_eq!(left, sent);
                }
                _ => prop_assert!(left.is_empty(), "{name}: {left:?} left"),
            }
        }
        for name in before.keys() {
            let n = name.as_str();
            if HOP_BY_HOP.contains(&n) {
                continue;
            }
            let left: Vec<_> = h.get_all(name).iter().collect();
            if named.iter().any(|t| t == n) {
                prop_assert!(left.is_empty(), "{n} was named in Connection but survived");
            } else {
                let sent: Vec<_> = before.get_all(name).iter().collect();
                prop_assert_eq!(left, sent, "{} changed", n);
            }
        }
    }
}

// === 6. The auth API over HTTP ===

#[derive(Debug, Clone)]
struct AuthCall {
    endpoint: &'static str,
    method: Method,
    content_type: Option<HeaderValue>,
    authorization: Option<HeaderValue>,
    body: Vec<u8>,
}

fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => "[a-zA-Z0-9@._-]{1,20}".prop_map(Value::String),
        2 => any_text().prop_map(Value::String),
        1 => Just(json!("")),
        1 => json_value(),
        1 => Just(json!("x".repeat(8_000))),
    ]
}

/// JSON objects with the auth API's field names, each present with probability 0.8.
fn auth_fields() -> impl Strategy<Value = Vec<u8>> {
    let names = [
        "email",
        "password",
        "new_password",
        "session",
        "refresh_token",
        "username",
    ];
    prop::collection::vec(prop::option::weighted(0.8, field_value()), 6).prop_map(move |vals| {
        let m: Map<String, Value> = names
            .iter()
            .zip(vals)
            .filter_map(|(n, v)| v.map(|v| (n.to_string(), v)))
            .collect();
        serde_json::to_vec(&m).expect("json")
    })
}

fn auth_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => auth_fields(),
        1 => json_value().prop_map(|v| serde_json::to_vec(&v).expect("json")),
        1 => prop::collection::vec(any::<u8>(), 0..600),
        1 => Just(b"{\"email\": \"a@b.c\", \"password\": ".to_vec()),
        1 => Just(format!("{{\"email\": \"{}\"}}", "x".repeat(20_000)).into_bytes()),
        1 => Just(vec![b'['; 4096]),
    ]
}

fn auth_call() -> impl Strategy<Value = AuthCall> {
    (
        prop::sample::select(vec!["login", "new-password", "refresh"]),
        prop_oneof![
            8 => Just(Method::POST),
            1 => prop::sample::select(vec![Method::GET, Method::PUT, Method::DELETE]),
        ],
        prop_oneof![
            6 => Just(Some(HeaderValue::from_static("application/json"))),
            1 => prop::sample::select(vec![
                "application/json; charset=utf-8", "APPLICATION/JSON", "application/problem+json",
                "text/plain", "application/x-www-form-urlencoded", "json", "+json",
            ])
            .prop_map(|s| Some(HeaderValue::from_static(s))),
            1 => "[ -~]{0,20}".prop_filter_map("a header value", |s| HeaderValue::from_str(&s).ok().map(Some)),
            1 => Just(None),
        ],
        prop_oneof![
            3 => Just(None),
            1 => authorization_value().prop_filter_map("a header value", |v| HeaderValue::from_bytes(&v).ok().map(Some)),
        ],
        auth_body(),
    )
        .prop_map(
            |(endpoint, method, content_type, authorization, body)| AuthCall {
                endpoint,
                method,
                content_type,
                authorization,
                body,
            },
        )
}

#[test]
fn auth_api_answers_every_body_with_a_json_error_or_success() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (jwks, sc) = rt.block_on(async {
        let jwks = JwksServer::start().await;
        let mut c = gate_config(&jwks.url, &closed_url().await, &closed_url().await);
        // Cognito is unreachable: fail each call at once, no retries.
        c.cognito.max_attempts = 1;
        // Rate limits off, so 429s cannot mask what the endpoints do.
        c.rate_limit.address_per_minute = 0;
        c.rate_limit.username_per_minute = 0;
        (jwks, Sidecar::start(c).await)
    });
    let http = client();
    check(cases(200), auth_call(), |call| {
        let url = sc.url(&format!("/api/user/{}", call.endpoint));
        let (status, body) = rt.block_on(async {
            let mut req = http
                .request(call.method.clone(), url)
                .body(call.body.clone());
            if let Some(ct) = &call.content_type {
                req = req.header("content-type", ct.clone());
            }
            if let Some(a) = &call.authorization {
                req = req.header("authorization", a.clone());
            }
            let resp = req
                .send()
                .await
                .map_err(|e| TestCaseError::fail(format!("no answer ({e}) for {call:?}")))?;
            let status = resp.status().as_u16();
            let body = resp
                .bytes()
                .await
                .map_err(|e| TestCaseError::fail(format!("body cut ({e}) for {call:?}")))?;
            Ok::<_, TestCaseError>((status, body))
        })?;
        prop_assert!(
            (200..300).contains(&status)
                || (400..500).contains(&status)
                || status == 502
                || status == 503,
            "status {status} for {call:?}"
        );
        if !(200..300).contains(&status) {
            let v: Value = serde_json::from_slice(&body).map_err(|e| {
                TestCaseError::fail(format!("{status} with a non-JSON body ({e}) for {call:?}"))
            })?;
            prop_assert!(
                v["message"].is_string() && v["code"].is_string(),
                "{status} {v} for {call:?}"
            );
        }
        Ok(())
    });
    // Still serving after all that.
    let live = rt.block_on(async {
        http.get(sc.url("/healthz"))
            .send()
            .await
            .expect("healthz")
            .status()
            .as_u16()
    });
    assert_eq!(live, 200);
    rt.block_on(sc.stop());
    drop(jwks);
}
