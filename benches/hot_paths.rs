//! Micro-benchmarks of what every proxied request pays, one function at a time:
//!
//! * `verify/*`   — token verification: cold (`Verifier::verify`: base64 + JSON + RSA-2048
//!   RS256 signature check + claims), through the gate with the cache off, and cached
//!   (`Gate::check` hit: SHA-256 of the token + moka lookup), plus the pieces (bearer
//!   extraction, the SHA-256 cache key).
//! * `headers/*`  — identity header mapping (`IdentityHeaders::values`), hop-by-hop and
//!   identity-namespace stripping on a realistic browser request head, and the whole header
//!   rewrite `App::pass` does before forwarding.
//! * `router/*`   — `router::canonical_path` on plain and hostile paths.
//! * `request_id` — the UUID v4 `App::handle` generates when the client sent no X-Request-Id.
//!
//! Keys and JWKS: `tests/fixtures/key1.pem` signs Cognito-shaped access tokens (the same claim
//! set as /work/shared/bench's tokens, ~1 KB each); `key1.jwk.json` is served as kid `k1` by a
//! tiny HTTP server on 127.0.0.1:0 and loaded with `JwksCache::refresh`, exactly as the
//! sidecar loads it.
//!
//!   cargo bench --bench hot_paths                 # all (~1.5 min on 2 cores, after the build)
//!   cargo bench --bench hot_paths -- verify/      # a filter
//!   cargo test --benches                          # each bench once, as a smoke test
//!
//! Every bench is short (1 s warm-up, 2 s measurement, 20 samples): the numbers are for
//! comparing the pieces with each other and before/after a change, on the same machine.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cognito_sidecar::clock::Clock;
use cognito_sidecar::config::{Config, HeaderClaim, IdentityConfig};
use cognito_sidecar::gate::identity::IdentityHeaders;
use cognito_sidecar::gate::verify::{
    self, JwksCache, JwksSettings, Principal, Verifier, VerifierSettings,
};
use cognito_sidecar::gate::Gate;
use cognito_sidecar::http::headers;
use cognito_sidecar::http::path::canonical_path;
use cognito_sidecar::request::outbound::{to_upstream, Decision, Policy};
use cognito_sidecar::telemetry::metrics::{Metrics, SharedMetrics};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_BenchPool1";
const CLIENT_ID: &str = "3bench0client0id0abcdefghij";
const KID: &str = "k1";
/// Distinct tokens rotated in the cached benches, as the load harness does.
const N_TOKENS: usize = 1000;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A Cognito access token's claims (same shape and size as the load harness's tokens).
fn claims(i: usize) -> Value {
    let now = Clock::system().now_secs();
    json!({
        "sub": format!("b{i:07}-0000-4000-8000-{i:012}"),
        "iss": ISSUER,
        "client_id": CLIENT_ID,
        "origin_jti": format!("8ef04450-9a0f-4cce-bdc6-{i:012}"),
        "event_id": format!("80572280-bdb6-4514-9e8c-{i:012}"),
        "token_use": "access",
        "scope": "aws.cognito.signin.user.admin",
        "auth_time": now,
        "iat": now,
        "exp": now + 24 * 3600,
        "jti": format!("ba3a876a-7988-4f72-b924-{i:012}"),
        "username": format!("bench-user-{i:05}"),
        "version": 2,
    })
}

fn mint_tokens(n: usize) -> Vec<String> {
    let pem = std::fs::read(fixture("key1.pem")).expect("tests/fixtures/key1.pem");
    let key = EncodingKey::from_rsa_pem(&pem).expect("RSA private key");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KID.to_string());
    (0..n)
        .map(|i| jsonwebtoken::encode(&header, &claims(i), &key).expect("sign"))
        .collect()
}

/// Serves the fixture JWKS (kid `k1`) on 127.0.0.1:0 from a task on `rt`; returns its URL.
/// The server only runs while `rt` is driven (inside `block_on`), which is when it is asked.
fn serve_jwks(rt: &Runtime) -> String {
    let mut jwk: Value =
        serde_json::from_slice(&std::fs::read(fixture("key1.jwk.json")).expect("key1.jwk.json"))
            .expect("JWK JSON");
    jwk["kid"] = json!(KID);
    let body = json!({ "keys": [jwk] }).to_string();
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let listener = rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    rt.spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                // Read the request head, then answer and close.
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("http://{addr}/.well-known/jwks.json")
}

/// A verifier whose JWKS cache was loaded over HTTP from the loopback JWKS server.
fn loaded_verifier(rt: &Runtime) -> Verifier {
    let url = serve_jwks(rt);
    let jwks = JwksCache::new(
        JwksSettings {
            url,
            algorithm: "RS256",
            max_bytes: 64 * 1024,
            cooldown: Duration::from_secs(10),
            refresh_interval: Duration::from_secs(15 * 60),
        },
        reqwest::Client::new(),
    );
    let n = rt.block_on(jwks.refresh()).expect("JWKS loaded");
    assert_eq!(n, 1, "one key in the fixture JWKS");
    Verifier::new(
        VerifierSettings {
            issuer: ISSUER.into(),
            algorithm: Algorithm::RS256,
            accept_access: true,
            accept_id: false,
            client_ids: vec![CLIENT_ID.into()],
            leeway_secs: 5,
        },
        jwks,
    )
}

/// The identity map deploy/bench.sh configures for the load harness.
fn bench_identity() -> IdentityHeaders {
    IdentityHeaders::new(&IdentityConfig {
        strip_prefixes: vec!["x-user-".into()],
        headers: vec![
            HeaderClaim {
                name: "X-User-Sub".into(),
                claims: vec!["sub".into()],
                principals: vec![cognito_sidecar::config::PrincipalKind::User],
            },
            HeaderClaim {
                name: "X-User-Name".into(),
                claims: vec!["username".into()],
                principals: vec![cognito_sidecar::config::PrincipalKind::User],
            },
        ],
        claims_header: None,
        principal_header: "X-Auth-Principal".into(),
    })
    .expect("valid identity config")
}

/// The default map (seven X-Auth-* headers).
fn default_identity() -> IdentityHeaders {
    IdentityHeaders::new(&IdentityConfig::default()).expect("valid identity config")
}

fn gate(verifier: &Verifier, cache_entries: u64) -> Gate {
    let metrics: SharedMetrics = Arc::new(Metrics::new());
    Gate::new(
        verifier.clone(),
        bench_identity(),
        cache_entries,
        Duration::from_secs(24 * 3600),
        metrics,
        Clock::system(),
    )
}

/// A browser-like request head as hyper hands it to `App::handle` (plus the X-Request-Id the
/// app inserts), with a spoofed identity header and a `Connection`-named header to strip.
fn request_head(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut add = |k: &'static str, v: &str| {
        h.append(
            HeaderName::from_static(k),
            HeaderValue::from_str(v).expect("header value"),
        );
    };
    add("host", "app.example.com");
    add(
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
         Chrome/131.0.0.0 Safari/537.36",
    );
    add("accept", "application/json, text/plain, */*");
    add("accept-encoding", "gzip, deflate, br, zstd");
    add("accept-language", "en-US,en;q=0.9,ja;q=0.8");
    add("authorization", &format!("Bearer {token}"));
    add(
        "cookie",
        "_ga=GA1.1.123456789.1700000000; _ga_XYZ=GS1.1.1700000000.1.1.1700000100.0.0.0; \
         csrftoken=Zx8sQbY2mF7Lw0pNq4vT9cRk3hJd6uGa; theme=dark",
    );
    add("referer", "https://app.example.com/orders?page=2");
    add("sec-fetch-dest", "empty");
    add("sec-fetch-mode", "cors");
    add("sec-fetch-site", "same-origin");
    add("connection", "keep-alive, x-trace-hop");
    add("keep-alive", "timeout=5");
    add("x-trace-hop", "1");
    add("x-user-sub", "spoofed");
    add("x-request-id", "0b3c6f1e-2a44-4d8e-9f57-8d2b1e6c4a90");
    h
}

fn bench_verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let verifier = loaded_verifier(&rt);
    let tokens = mint_tokens(N_TOKENS);
    let token = tokens[0].as_str();
    let now = Clock::system().now_secs();
    // Fail loudly here rather than benchmark an error path.
    rt.block_on(verifier.verify(token, now))
        .expect("the fixture token verifies");

    let mut g = c.benchmark_group("verify");

    g.bench_function("cold/Verifier::verify", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(verifier.verify(black_box(token), now).await) });
    });

    let uncached = gate(&verifier, 0);
    g.bench_function("cold/Gate::check cache_off", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(uncached.check(black_box(token)).await) });
    });

    // Cached: the first check verifies and inserts, every later one is a hit.
    let cached = gate(&verifier, 100_000);
    rt.block_on(cached.check(token)).expect("first check");
    rt.block_on(cached.check(token))
        .expect("second check (hit)");
    g.bench_function("cached/Gate::check same_token", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(cached.check(black_box(token)).await) });
    });

    for t in &tokens {
        rt.block_on(cached.check(t)).expect("warm the cache");
    }
    let mut i = 0usize;
    g.bench_function("cached/Gate::check 1000_tokens_rotated", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 1) % tokens.len();
            let t = tokens[i].as_str();
            let cached = &cached;
            async move { black_box(cached.check(t).await) }
        });
    });

    g.bench_function("piece/sha256_of_token", |b| {
        b.iter(|| {
            let key: [u8; 32] = Sha256::digest(black_box(token).as_bytes()).into();
            black_box(key)
        });
    });

    let head = request_head(token);
    g.bench_function("piece/bearer_extraction", |b| {
        b.iter(|| verify::bearer(black_box(&head), 8192).map(str::len));
    });
    g.finish();
}

fn bench_headers(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let verifier = loaded_verifier(&rt);
    let token = mint_tokens(1).remove(0);
    let verified = rt
        .block_on(verifier.verify(&token, Clock::system().now_secs()))
        .expect("verifies");
    let map = verified.map;
    let bench_ids = bench_identity();
    let default_ids = default_identity();

    let mut g = c.benchmark_group("headers");
    g.bench_function("IdentityHeaders::values bench_map(2)", |b| {
        b.iter(|| black_box(bench_ids.values(black_box(&map), Principal::User)));
    });
    g.bench_function("IdentityHeaders::values default_map(7)", |b| {
        b.iter(|| black_box(default_ids.values(black_box(&map), Principal::User)));
    });

    let head = request_head(&token);
    g.bench_function("strip_hop_by_hop", |b| {
        b.iter_batched(
            || head.clone(),
            |mut h| {
                headers::strip_hop_by_hop(&mut h, false);
                h
            },
            BatchSize::SmallInput,
        );
    });
    g.bench_function("strip_hop_by_hop+IdentityHeaders::strip", |b| {
        b.iter_batched(
            || head.clone(),
            |mut h| {
                headers::strip_hop_by_hop(&mut h, false);
                black_box(bench_ids.strip(&mut h));
                h
            },
            BatchSize::SmallInput,
        );
    });

    // Everything the app receives, built by `forward::to_upstream` as `App::pass` calls it.
    let ids = bench_ids.values(&map, Principal::User);
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let upstream: http::Uri = "http://127.0.0.1:3000".parse().expect("uri");
    let defaults = Config::default();
    let policy = Policy::new(
        &defaults.upstream,
        &defaults.server,
        false,
        (&upstream, HeaderValue::from_static("127.0.0.1:3000")),
        Arc::new(bench_ids.clone()),
    );
    let rid = HeaderValue::from_static("0f8e2b8c-5d3a-4c1e-9a7b-2c6d1e0f9a8b");
    let target: http::Uri = "/api/v1/customers/4711/orders?page=2".parse().expect("uri");
    g.bench_function("forward::to_upstream", |b| {
        b.iter_batched(
            || {
                let mut r = http::Request::new(());
                *r.uri_mut() = target.clone();
                *r.headers_mut() = head.clone();
                r.into_parts().0
            },
            |parts| {
                let d = Decision {
                    identity: Some(&ids),
                    peer,
                    request_id: &rid,
                    authorization: None,
                    trace: None,
                };
                black_box(to_upstream(parts, &d, &policy).is_ok())
            },
            BatchSize::SmallInput,
        );
    });
    g.bench_function("HeaderMap::clone (reference)", |b| {
        b.iter(|| black_box(head.clone()));
    });
    g.finish();
}

fn bench_router(c: &mut Criterion) {
    let mut g = c.benchmark_group("router");
    for (label, path) in [
        ("root", "/"),
        ("api_path", "/api/v1/customers/4711/orders/2024-0001/items"),
        ("hostile", "/public/%2e%2e/admin;jsessionid=1//x/./y/../z"),
    ] {
        g.bench_function(format!("canonical_path {label}"), |b| {
            b.iter(|| black_box(canonical_path(black_box(path)).is_ok()));
        });
    }
    g.finish();
}

fn bench_request_id(c: &mut Criterion) {
    c.bench_function("request_id/uuid_v4_header_value", |b| {
        b.iter(|| black_box(HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())));
    });
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = hot_paths;
    config = config();
    targets = bench_verify, bench_headers, bench_router, bench_request_id
}
criterion_main!(hot_paths);
