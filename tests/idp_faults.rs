//! A broken Cognito: a fake AWS JSON 1.1 endpoint on loopback answers `POST /api/user/login`
//! with throttling, 5xx, HTML, silence, unknown errors and a custom challenge (or nothing
//! listens at all). Each case asserts the exact status and code the client gets, and that the
//! answer carries neither the password, nor Cognito's message text, nor HTML.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(30);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test exceeded its time bound")
}

/// In every message the fake writes; must never reach the client.
const DETAIL: &str = "COGNITO-INTERNAL-DETAIL";
const EMAIL: &str = "victim@example.com";
const PASSWORD: &str = "Pa55-VERY-secret-word!";

/// How the fake Cognito answers every call.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// 400 `TooManyRequestsException`.
    Throttle,
    /// 500 with an HTML page (a load balancer in the way, say).
    Html500,
    /// 500 `InternalErrorException`.
    InternalError,
    /// 400 with an error type the sidecar does not know.
    AccessDenied,
    /// Answers only after `Duration`.
    Slow(Duration),
    /// 200 with a CUSTOM_CHALLENGE (a Lambda-driven flow the API does not relay).
    CustomChallenge,
    /// 200 whose body is not JSON.
    Garbage200,
}

/// What the fake received.
#[derive(Clone, Debug)]
struct Call {
    target: String,
    body: String,
}

struct FakeCognito {
    url: String,
    hits: Arc<AtomicUsize>,
    calls: Arc<Mutex<Vec<Call>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn aws_error(status: u16, kind: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-errortype", kind)
        .header("x-amzn-requestid", "req-1")
        .body(Full::new(Bytes::from(
            json!({ "__type": kind, "message": format!("{DETAIL}: {EMAIL} {PASSWORD}") })
                .to_string(),
        )))
        .expect("resp")
}

impl FakeCognito {
    async fn start(fault: Fault) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let (h, c) = (Arc::clone(&hits), Arc::clone(&calls));
        let (addr, stop) = serve_fn(Arc::new(move |req: Request<Incoming>| {
            h.fetch_add(1, Ordering::SeqCst);
            let c = Arc::clone(&c);
            Box::pin(async move {
                let target = req
                    .headers()
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                    .unwrap_or_default();
                c.lock().expect("lock").push(Call { target, body });
                match fault {
                    Fault::Throttle => aws_error(400, "TooManyRequestsException"),
                    Fault::InternalError => aws_error(500, "InternalErrorException"),
                    Fault::AccessDenied => aws_error(400, "AccessDeniedException"),
                    Fault::Html500 => Response::builder()
                        .status(500)
                        .header("content-type", "text/html")
                        .body(Full::new(Bytes::from(format!(
                            "<html><body><h1>500 Internal Server Error</h1>{DETAIL}</body></html>"
                        ))))
                        .expect("resp"),
                    Fault::Slow(d) => {
                        tokio::time::sleep(d).await;
                        aws_error(400, "NotAuthorizedException")
                    }
                    Fault::CustomChallenge => Response::builder()
                        .header("content-type", "application/x-amz-json-1.1")
                        .body(Full::new(Bytes::from(
                            json!({
                                "ChallengeName": "CUSTOM_CHALLENGE",
                                "Session": "sess-secret",
                                "ChallengeParameters": {
                                    "CODE_DELIVERY_DESTINATION": format!("+*****{DETAIL}"),
                                    "question": format!("{DETAIL}"),
                                },
                            })
                            .to_string(),
                        )))
                        .expect("resp"),
                    Fault::Garbage200 => Response::builder()
                        .header("content-type", "application/x-amz-json-1.1")
                        .body(Full::new(Bytes::from(format!(
                            "<html>{DETAIL} {{\"AuthenticationResult\": "
                        ))))
                        .expect("resp"),
                }
            })
        }))
        .await;
        FakeCognito {
            url: format!("http://{addr}"),
            hits,
            calls,
            _stop: stop,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// What the client got.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    text: String,
    json: Value,
    took: Duration,
}

/// Starts a sidecar whose Cognito is at `cognito`, logs in once, returns the answer.
async fn login_via(cognito: &str, max_attempts: u32, timeout: Duration) -> Answer {
    let jwks = JwksServer::start().await;
    let echo = Echo::start().await;
    let mut cfg = gate_config(&jwks.url, &echo.url(), cognito);
    cfg.cognito.max_attempts = max_attempts;
    cfg.cognito.timeout = timeout;
    let sc = Sidecar::start(cfg).await;
    let start = Instant::now();
    let resp = client()
        .post(sc.url("/api/user/login"))
        .json(&json!({ "email": EMAIL, "password": PASSWORD }))
        .send()
        .await
        .expect("an answer");
    let took = start.elapsed();
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert_eq!(echo.count(), 0, "a login reached the upstream");
    Answer {
        status,
        retry_after,
        text,
        json,
        took,
    }
}

impl Answer {
    /// Status and code exactly; no secrets, Cognito text or HTML in the body.
    fn expect(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.json["code"], code, "{}", self.text);
        assert!(
            self.json["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.text
        );
        let lower = self.text.to_ascii_lowercase();
        for leak in [PASSWORD, DETAIL, "<html", EMAIL, "sess-secret", "req-1"] {
            assert!(
                !lower.contains(&leak.to_ascii_lowercase()),
                "{leak:?} leaked in {}",
                self.text
            );
        }
        // Nor after a sanitizer dropped its punctuation ("sess-secret" → "sesssecret").
        for leak in [PASSWORD, DETAIL, EMAIL, "sess-secret"] {
            assert!(
                !squash(&self.text).contains(&squash(leak)),
                "{leak:?} leaked in {}",
                self.text
            );
        }
    }
}

/// Lower-case ASCII letters and digits only.
fn squash(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The fake saw one AdminInitiateAuth per attempt, carrying the password (so the leak checks
/// above are about something the sidecar really had).
fn assert_calls(fake: &FakeCognito, attempts: usize) {
    assert_eq!(fake.hits(), attempts);
    let calls = fake.calls.lock().expect("lock");
    assert_eq!(calls.len(), attempts);
    for c in calls.iter() {
        assert_eq!(
            c.target,
            "AWSCognitoIdentityProviderService.AdminInitiateAuth"
        );
        assert!(c.body.contains(PASSWORD), "{}", c.body);
    }
}

const FAST: Duration = Duration::from_millis(500);

#[tokio::test]
async fn throttling_is_a_429_with_retry_after() {
    bounded(async {
        let fake = FakeCognito::start(Fault::Throttle).await;
        let a = login_via(&fake.url, 1, FAST).await;
        a.expect(429, "idp_throttled");
        let secs: u64 = a
            .retry_after
            .as_deref()
            .expect("a Retry-After header")
            .parse()
            .expect("Retry-After in seconds");
        assert!(secs >= 1);
        assert_calls(&fake, 1);
    })
    .await;
}

#[tokio::test]
async fn throttling_is_retried_within_max_attempts_then_a_429() {
    bounded(async {
        let fake = FakeCognito::start(Fault::Throttle).await;
        // The standard retry backs off up to about a second before the second attempt.
        let a = login_via(&fake.url, 2, Duration::from_secs(10)).await;
        a.expect(429, "idp_throttled");
        assert!(a.retry_after.is_some());
        assert_calls(&fake, 2);
    })
    .await;
}

#[tokio::test]
async fn an_html_500_is_a_502_idp_error() {
    bounded(async {
        let fake = FakeCognito::start(Fault::Html500).await;
        let a = login_via(&fake.url, 1, FAST).await;
        a.expect(502, "idp_error");
        assert_eq!(a.retry_after, None);
        assert_calls(&fake, 1);
    })
    .await;
}

#[tokio::test]
async fn a_200_that_is_not_json_is_a_502_idp_error() {
    bounded(async {
        let fake = FakeCognito::start(Fault::Garbage200).await;
        let a = login_via(&fake.url, 1, FAST).await;
        a.expect(502, "idp_error");
        assert_calls(&fake, 1);
    })
    .await;
}

#[tokio::test]
async fn internal_error_exception_is_a_503() {
    bounded(async {
        let fake = FakeCognito::start(Fault::InternalError).await;
        let a = login_via(&fake.url, 1, FAST).await;
        a.expect(503, "idp_unavailable");
        assert_calls(&fake, 1);
    })
    .await;
}

#[tokio::test]
async fn an_unknown_error_type_is_a_502_idp_error() {
    bounded(async {
        let fake = FakeCognito::start(Fault::AccessDenied).await;
        let a = login_via(&fake.url, 1, FAST).await;
        a.expect(502, "idp_error");
        // The error type is Cognito's, not the client's business either.
        assert!(!a.text.contains("AccessDenied"), "{}", a.text);
        assert_calls(&fake, 1);
    })
    .await;
}

#[tokio::test]
async fn a_slow_cognito_is_a_503_at_the_deadline() {
    bounded(async {
        let fake = FakeCognito::start(Fault::Slow(Duration::from_secs(5))).await;
        let a = login_via(&fake.url, 1, FAST).await;
        a.expect(503, "idp_unavailable");
        assert!(
            a.took >= Duration::from_millis(400) && a.took < Duration::from_secs(3),
            "answered after {:?}",
            a.took
        );
        assert_calls(&fake, 1);
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_cognito_is_a_503() {
    bounded(async {
        let a = login_via(&closed_url().await, 1, FAST).await;
        a.expect(503, "idp_unavailable");
        assert!(
            a.took < Duration::from_secs(3),
            "answered after {:?}",
            a.took
        );
    })
    .await;
}

#[tokio::test]
async fn an_unsupported_challenge_is_named_without_its_session() {
    bounded(async {
        let fake = FakeCognito::start(Fault::CustomChallenge).await;
        let a = login_via(&fake.url, 1, FAST).await;
        a.expect(400, "unsupported_challenge");
        let message = a.json["message"].as_str().expect("message");
        assert!(message.contains("CUSTOM_CHALLENGE"), "{message}");
        assert_eq!(
            a.json.as_object().map(|o| o.len()),
            Some(2),
            "only message and code: {}",
            a.text
        );
        assert_calls(&fake, 1);
    })
    .await;
}
