//! Traces (`traces.*`, docs/src/operations.md#traces): W3C Trace Context continued from a
//! trusted proxy or started here, the app's `traceparent`, `X-Amzn-Trace-Id` and `trace_id`
//! in the access line, and the spans a loopback OTLP/HTTP receiver gets, decoded with the
//! `opentelemetry-proto` definitions: their names, their parent/child links, and that no
//! attribute carries a token, a password or a query string.
//!
//! Against moto (the login's Cognito call) and a redis-server of the test's own (the fleet's
//! commands), with the sidecar in this process.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cognito_sidecar::config::SharedBackend;
use common::*;
use http::Response;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use serde_json::Value;

/// One span as the receiver decoded it.
#[derive(Debug, Clone)]
struct Got {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    kind: i32,
    attributes: BTreeMap<String, String>,
    error: bool,
    service: String,
}

/// A loopback OTLP/HTTP receiver: every `POST /v1/traces` body decoded as an
/// `ExportTraceServiceRequest`; anything else is recorded as a failure.
struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<Got>>>,
    bad: Arc<Mutex<Vec<String>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

impl Receiver {
    async fn start() -> Receiver {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let bad = Arc::new(Mutex::new(Vec::new()));
        let (s, b) = (Arc::clone(&spans), Arc::clone(&bad));
        let (addr, stop) = serve_fn(Arc::new(move |req| {
            let (s, b) = (Arc::clone(&s), Arc::clone(&b));
            Box::pin(async move {
                let head = format!(
                    "{} {} {:?}",
                    req.method(),
                    req.uri().path(),
                    req.headers().get("content-type")
                );
                let body = req.into_body().collect().await.map(|c| c.to_bytes());
                let decoded = match (&body, head.as_str()) {
                    (Ok(body), "POST /v1/traces Some(\"application/x-protobuf\")") => {
                        ExportTraceServiceRequest::decode(body.clone()).map_err(|e| e.to_string())
                    }
                    _ => Err(head),
                };
                match decoded {
                    Ok(req) => {
                        let mut got = s.lock().expect("lock");
                        for rs in req.resource_spans {
                            let service = rs
                                .resource
                                .iter()
                                .flat_map(|r| &r.attributes)
                                .find(|kv| kv.key == "service.name")
                                .map(|kv| text(&kv.value))
                                .unwrap_or_default();
                            for span in rs.scope_spans.into_iter().flat_map(|ss| ss.spans) {
                                got.push(Got {
                                    name: span.name,
                                    trace_id: hex(&span.trace_id),
                                    span_id: hex(&span.span_id),
                                    parent: hex(&span.parent_span_id),
                                    kind: span.kind,
                                    attributes: span
                                        .attributes
                                        .iter()
                                        .map(|kv| (kv.key.clone(), text(&kv.value)))
                                        .collect(),
                                    // STATUS_CODE_ERROR
                                    error: span.status.is_some_and(|st| st.code == 2),
                                    service: service.clone(),
                                });
                            }
                        }
                    }
                    Err(e) => b.lock().expect("lock").push(e),
                }
                Response::new(Full::new(Bytes::new()))
            })
        }))
        .await;
        Receiver {
            url: format!("http://{addr}/v1/traces"),
            spans,
            bad,
            _stop: stop,
        }
    }

    /// The spans received once the sidecar flushed (bounded wait for `want` of them).
    async fn spans(&self, sc: &Sidecar, want: impl Fn(&[Got]) -> bool) -> Vec<Got> {
        for _ in 0..50 {
            let app = sc.app.clone();
            tokio::task::spawn_blocking(move || app.flush_traces())
                .await
                .expect("flush");
            let got = self.spans.lock().expect("lock").clone();
            if want(&got) {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.spans.lock().expect("lock").clone()
    }
}

fn traced(cfg: &mut cognito_sidecar::Config, receiver: &Receiver) {
    cfg.traces.enabled = true;
    cfg.traces.otlp_endpoint = Some(receiver.url.clone());
    cfg.traces.sample_ratio = 1.0;
    cfg.traces.service_name = "orders-sidecar".into();
    cfg.traces.export_interval = Duration::from_millis(100);
}

const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

/// The trace's spans by name (each expected once).
fn one<'a>(spans: &'a [Got], name: &str, trace: &str) -> &'a Got {
    let found: Vec<&Got> = spans
        .iter()
        .filter(|s| s.name == name && s.trace_id == trace)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {name} span in trace {trace}: {spans:#?}"
    );
    found[0]
}

/// A login (Cognito and Redis under it) and a proxied request that continues the trusted
/// proxy's trace: the spans reach the receiver with the right links, the app's
/// `traceparent` names the sidecar's upstream span, the access line carries both trace ids,
/// and no attribute holds a secret.
#[tokio::test]
async fn spans_reach_the_receiver_linked_and_the_app_continues_the_sidecar_span() {
    let log = Capture::install_json("info");
    let receiver = Receiver::start().await;
    let pool = Pool::create(false, false).await;
    let user = pool.confirmed_user("trace@example.com", &[]).await;
    let echo = Echo::start().await;
    let (_redis, redis_url) = redis_server();
    let mut cfg = pool.config(&echo.url());
    traced(&mut cfg, &receiver);
    cfg.server.trusted_proxies = vec!["127.0.0.1/32".parse().expect("cidr")];
    cfg.shared.backend = SharedBackend::Redis;
    cfg.shared.url = redis_url;
    let sc = Sidecar::start(cfg).await;

    // 1. A login from a client with no trace context: a new trace.
    let (status, v) = login(&sc, &user, PASSWORD).await;
    assert_eq!(status, 200, "{v}");
    let token = v["access_token"]
        .as_str()
        .expect("access token")
        .to_string();
    let refresh = v["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_string();

    // 2. A request through the gate from the trusted proxy, with its trace context.
    let resp = client()
        .get(sc.url("/orders/7?card=4111-secret"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01"))
        .header("tracestate", "alb=t61rcWkgMzE")
        .header(
            "x-amzn-trace-id",
            "Root=1-67891233-abcdef012345678912345678",
        )
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let seen = echo.last();
    assert_eq!(seen.path, "/orders/7?card=4111-secret");

    let spans = receiver
        .spans(&sc, |s| {
            s.iter().any(|x| x.name == "upstream") && s.iter().any(|x| x.name == "redis")
        })
        .await;
    assert!(
        receiver.bad.lock().expect("lock").is_empty(),
        "{:?}",
        receiver.bad
    );

    // The proxied request: request (server, child of the proxy's span) → verify, upstream.
    let request = spans
        .iter()
        .find(|s| s.name == "request" && s.trace_id == PARENT_TRACE)
        .expect("the proxied request's span continues the proxy's trace");
    assert_eq!(
        request.parent, PARENT_SPAN,
        "its parent is the proxy's span"
    );
    assert_eq!(request.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(request.attributes["http.request.method"], "GET");
    assert_eq!(request.attributes["url.path"], "/orders/7");
    assert_eq!(request.attributes["http.response.status_code"], "200");
    assert_eq!(request.service, "orders-sidecar");
    let verify = one(&spans, "verify", PARENT_TRACE);
    let upstream = one(&spans, "upstream", PARENT_TRACE);
    assert_eq!(verify.parent, request.span_id);
    assert_eq!(upstream.parent, request.span_id);
    assert_eq!(upstream.kind, 3, "SPAN_KIND_CLIENT");
    assert_eq!(upstream.attributes["http.response.status_code"], "200");
    assert!(!verify.error && !upstream.error && !request.error);

    // The app continues the sidecar's upstream span, with the proxy's tracestate.
    assert_eq!(
        seen.header("traceparent"),
        Some(format!("00-{PARENT_TRACE}-{}-01", upstream.span_id).as_str()),
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.header("tracestate"), Some("alb=t61rcWkgMzE"));
    assert_eq!(
        seen.header("x-amzn-trace-id"),
        Some("Root=1-67891233-abcdef012345678912345678"),
        "X-Amzn-Trace-Id passes through"
    );

    // The login: a trace of its own, with the Cognito call and the fleet's Redis commands
    // (its shared rate limits) under its request span.
    let login_request = spans
        .iter()
        .find(|s| s.name == "request" && s.attributes["url.path"] == "/api/user/login")
        .expect("the login's request span");
    assert!(
        login_request.parent.is_empty(),
        "a client's login starts a trace"
    );
    let cognito: Vec<&Got> = spans
        .iter()
        .filter(|s| {
            s.attributes.get("rpc.service").map(String::as_str) == Some("CognitoIdentityProvider")
        })
        .collect();
    assert!(!cognito.is_empty(), "a Cognito call span: {spans:#?}");
    for c in &cognito {
        assert_eq!(c.trace_id, login_request.trace_id);
        assert_eq!(c.parent, login_request.span_id, "{c:?}");
        assert_eq!(c.attributes["rpc.method"], c.name);
        assert_eq!(c.kind, 3);
    }
    let redis: Vec<&Got> = spans
        .iter()
        .filter(|s| s.name == "redis" && s.trace_id == login_request.trace_id)
        .collect();
    assert!(!redis.is_empty(), "the login's Redis commands: {spans:#?}");
    assert!(redis.iter().all(|r| r.parent == login_request.span_id
        && r.attributes["db.system.name"] == "redis"
        && !r.attributes["db.operation.name"].is_empty()));

    // The first JWKS fetch: a root span of the background refresher.
    let jwks = spans
        .iter()
        .find(|s| s.name == "jwks.fetch")
        .expect("a JWKS fetch span");
    assert!(jwks.parent.is_empty() && !jwks.error, "{jwks:?}");

    // No attribute carries a secret or a query string.
    for s in &spans {
        for (k, v) in &s.attributes {
            for secret in [
                token.as_str(),
                refresh.as_str(),
                PASSWORD,
                "4111-secret",
                "trace@example.com",
            ] {
                assert!(!v.contains(secret), "{}.{k} = {v}", s.name);
            }
        }
    }

    // The access line: the trace id the app's traceparent carries, and the ALB's.
    let lines: Vec<Value> = log
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &Value| l["target"] == "access" && l["path"] == "/orders/7")
        .collect();
    assert_eq!(lines.len(), 1, "{}", log.text());
    assert_eq!(lines[0]["trace_id"], PARENT_TRACE);
    assert_eq!(
        lines[0]["amzn_trace_id"],
        "Root=1-67891233-abcdef012345678912345678"
    );
    sc.stop().await;
}

/// A client that is not a trusted proxy cannot join a trace: its `traceparent` is replaced
/// by the sidecar's own (a new trace id), its `tracestate` is dropped; with sampling at 0
/// the app is still told the trace (flag 00) and nothing is exported.
#[tokio::test]
async fn an_untrusted_clients_trace_context_is_replaced() {
    let receiver = Receiver::start().await;
    let jwks = JwksServer::start().await;
    let echo = Echo::start().await;
    let mut cfg = gate_config(&jwks.url, &echo.url(), &closed_url().await);
    traced(&mut cfg, &receiver);
    cfg.traces.sample_ratio = 0.0;
    let sc = Sidecar::start(cfg).await;
    let incoming = format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01");
    let resp = client()
        .get(sc.url("/a"))
        .bearer_auth(valid_token("u-1"))
        .header("traceparent", &incoming)
        .header("tracestate", "evil=1")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let seen = echo.last();
    let sent = seen
        .header("traceparent")
        .expect("the app gets a traceparent");
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!(parts[0], "00");
    assert_ne!(parts[1], PARENT_TRACE, "not the client's trace");
    assert!(parts[1].len() == 32 && parts[1].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(parts[2], PARENT_SPAN);
    assert_eq!(
        parts[3], "00",
        "not sampled: the client's flag is not followed"
    );
    assert_eq!(seen.header("tracestate"), None);
    assert_eq!(
        seen.headers
            .iter()
            .filter(|(k, _)| k == "traceparent")
            .count(),
        1
    );
    let spans = receiver.spans(&sc, |_| false).await;
    assert!(
        spans.iter().all(|s| s.name == "jwks.fetch"),
        "nothing of an unsampled request is exported: {spans:#?}"
    );
    sc.stop().await;
}

/// Off (the default): the sidecar neither reads nor writes trace headers.
#[tokio::test]
async fn off_the_trace_headers_pass_as_they_came() {
    let jwks = JwksServer::start().await;
    let echo = Echo::start().await;
    let sc = Sidecar::start(gate_config(&jwks.url, &echo.url(), &closed_url().await)).await;
    let incoming = format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01");
    let resp = client()
        .get(sc.url("/a"))
        .bearer_auth(valid_token("u-1"))
        .header("traceparent", &incoming)
        .header("tracestate", "k=v")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let seen = echo.last();
    assert_eq!(seen.header("traceparent"), Some(incoming.as_str()));
    assert_eq!(seen.header("tracestate"), Some("k=v"));
    sc.stop().await;
}

/// Start-up refuses a half-made traces section.
#[test]
fn a_bad_traces_section_is_refused_at_start_up() {
    type Edit = fn(&mut cognito_sidecar::Config);
    let cases: &[(&str, Edit, &str)] = &[
        (
            "endpoint without enabled",
            |c| c.traces.otlp_endpoint = Some("http://127.0.0.1:4318/v1/traces".into()),
            "traces.otlp_endpoint",
        ),
        (
            "not a URL",
            |c| {
                c.traces.enabled = true;
                c.traces.otlp_endpoint = Some("collector:4318".into())
            },
            "traces.otlp_endpoint",
        ),
        (
            "ratio above 1",
            |c| {
                c.traces.enabled = true;
                c.traces.sample_ratio = 1.5
            },
            "traces.sample_ratio",
        ),
        (
            "ratio not a number",
            |c| {
                c.traces.enabled = true;
                c.traces.sample_ratio = f64::NAN
            },
            "traces.sample_ratio",
        ),
        (
            "no export interval",
            |c| {
                c.traces.enabled = true;
                c.traces.export_interval = Duration::ZERO
            },
            "traces.export_interval",
        ),
    ];
    for (what, edit, key) in cases {
        let mut c = gate_config(
            "http://127.0.0.1:9/jwks",
            "http://127.0.0.1:9",
            "http://127.0.0.1:9",
        );
        edit(&mut c);
        let e = c.validate().expect_err(what);
        assert_eq!(e.key, *key, "{what}: {e}");
    }
    let mut ok = gate_config(
        "http://127.0.0.1:9/jwks",
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
    );
    ok.traces.enabled = true;
    assert!(
        ok.validate().is_ok(),
        "enabled without an endpoint: context only"
    );
}
