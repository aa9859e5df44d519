//! Test harness: the sidecar in-process on 127.0.0.1:0, a JWKS server and an echo upstream
//! on loopback that count what they see, token minting with the fixture keys, and user pools
//! in moto (started by `deploy/test.sh`, or here if `MOTO_URL` is unset).
#![allow(dead_code)]

pub mod browser;
pub mod cfn;
pub mod oidc;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cognitoidentityprovider::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_cognitoidentityprovider::types::{
    AttributeType, ExplicitAuthFlowsType, MessageActionType, UsernameAttributeType,
};
use bytes::Bytes;
use cognito_sidecar::clock::{Clock, ClockHand};
use cognito_sidecar::config::{Config, HeaderClaim};
use cognito_sidecar::{net as server, App};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TestPool";
pub const CLIENT_ID: &str = "test-client";

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

// === Tokens ===

/// A fixture key (`key1`, `key2`, `other`).
pub fn encoding_key(name: &str) -> EncodingKey {
    let pem = std::fs::read(fixture(&format!("{name}.pem"))).expect("pem");
    EncodingKey::from_rsa_pem(&pem).expect("rsa pem")
}

/// The JWK of a fixture key with `kid`.
pub fn jwk(name: &str, kid: &str) -> Value {
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(fixture(&format!("{name}.jwk.json"))).expect("jwk"))
            .expect("json");
    v["kid"] = json!(kid);
    v
}

/// Claims of a valid access token for `sub`, issued now, valid for an hour.
pub fn access_claims(sub: &str) -> Value {
    let t = now();
    json!({
        "iss": ISSUER, "sub": sub, "client_id": CLIENT_ID, "token_use": "access",
        "iat": t, "auth_time": t, "exp": t + 3600, "jti": format!("jti-{sub}-{t}"),
        "origin_jti": format!("origin-{sub}"), "username": format!("user-{sub}"),
        "scope": "aws.cognito.signin.user.admin",
    })
}

/// Signs `claims` with fixture key `key` under `kid` (RS256).
pub fn mint(key: &str, kid: &str, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(kid.to_string());
    jsonwebtoken::encode(&h, claims, &encoding_key(key)).expect("sign")
}

/// A valid token for `sub` signed by key1/k1.
pub fn valid_token(sub: &str) -> String {
    mint("key1", "k1", &access_claims(sub))
}

pub fn b64(v: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

// === Loopback servers ===

type Handler = Arc<dyn Fn(Request<Incoming>) -> HandlerFuture + Send + Sync>;
type HandlerFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Response<Full<Bytes>>> + Send>>;

/// Serves `handler` on 127.0.0.1:0 with upgrades; stops when the returned sender drops.
pub async fn serve_fn(handler: Handler) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, mut rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                _ = &mut rx => return,
            };
            let handler = Arc::clone(&handler);
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let fut = handler(req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, tx)
}

/// How the JWKS server answers.
#[derive(Clone, Debug, PartialEq)]
pub enum JwksMode {
    Ok,
    Status(u16),
    Garbage,
    Huge,
    Slow(Duration),
}

/// A JWKS endpoint whose key set and behaviour tests change, counting requests.
pub struct JwksServer {
    pub url: String,
    pub hits: Arc<AtomicU64>,
    keys: Arc<Mutex<Vec<Value>>>,
    mode: Arc<Mutex<JwksMode>>,
    _stop: oneshot::Sender<()>,
}

impl JwksServer {
    /// Serves key1 as `k1`.
    pub async fn start() -> Self {
        Self::with_keys(vec![jwk("key1", "k1")]).await
    }

    pub async fn with_keys(keys: Vec<Value>) -> Self {
        let hits = Arc::new(AtomicU64::new(0));
        let keys = Arc::new(Mutex::new(keys));
        let mode = Arc::new(Mutex::new(JwksMode::Ok));
        let (h, k, m) = (Arc::clone(&hits), Arc::clone(&keys), Arc::clone(&mode));
        let handler: Handler = Arc::new(move |_req| {
            h.fetch_add(1, Ordering::SeqCst);
            let keys = k.lock().expect("lock").clone();
            let mode = m.lock().expect("lock").clone();
            Box::pin(async move {
                let body = match mode {
                    JwksMode::Ok => json!({ "keys": keys }).to_string(),
                    JwksMode::Status(s) => {
                        return Response::builder()
                            .status(s)
                            .body(Full::new(Bytes::from_static(b"nope")))
                            .expect("resp")
                    }
                    JwksMode::Garbage => "<html>not json</html>".to_string(),
                    JwksMode::Huge => {
                        let mut big = keys.clone();
                        for i in 0..2000 {
                            let mut k = jwk("key2", &format!("pad{i}"));
                            k["x5c"] = json!(["A".repeat(64)]);
                            big.push(k);
                        }
                        json!({ "keys": big }).to_string()
                    }
                    JwksMode::Slow(d) => {
                        tokio::time::sleep(d).await;
                        json!({ "keys": keys }).to_string()
                    }
                };
                Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .expect("resp")
            })
        });
        let (addr, stop) = serve_fn(handler).await;
        JwksServer {
            url: format!("http://{addr}/.well-known/jwks.json"),
            hits,
            keys,
            mode,
            _stop: stop,
        }
    }

    pub fn set_keys(&self, keys: Vec<Value>) {
        *self.keys.lock().expect("lock") = keys;
    }

    pub fn set_mode(&self, mode: JwksMode) {
        *self.mode.lock().expect("lock") = mode;
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

/// What the echo upstream saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An upstream that answers 200 with a JSON echo of what it received, and records it.
pub struct Echo {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    _stop: oneshot::Sender<()>,
}

impl Echo {
    pub async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let handler: Handler = Arc::new(move |req: Request<Incoming>| {
            let s = Arc::clone(&s);
            Box::pin(async move {
                let method = req.method().to_string();
                let path = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default();
                let headers: Vec<(String, String)> = req
                    .headers()
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect();
                let body = req.into_body().collect().await.map(|c| c.to_bytes());
                let body_len = body.map(|b| b.len()).unwrap_or(0);
                let echo = json!({
                    "method": method, "path": path, "body_len": body_len,
                    "headers": headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
                });
                s.lock().expect("lock").push(Seen {
                    method,
                    path,
                    headers,
                    body_len,
                });
                Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "application/json")
                    .header("x-upstream", "echo")
                    .body(Full::new(Bytes::from(echo.to_string())))
                    .expect("resp")
            })
        });
        let (addr, stop) = serve_fn(handler).await;
        Echo {
            addr,
            seen,
            _stop: stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn count(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("a request reached the upstream")
    }
}

// === The sidecar ===

/// A config for the gate tests: our issuer, key server and upstream; Cognito at `cognito`.
pub fn gate_config(jwks_url: &str, upstream: &str, cognito: &str) -> Config {
    let mut c = Config::default();
    c.cognito.user_pool_id = Some("us-east-1_TestPool".into());
    c.cognito.client_id = Some(CLIENT_ID.into());
    c.cognito.endpoint_url = Some(cognito.into());
    c.cognito.timeout = Duration::from_secs(2);
    c.verify.jwks_url = Some(jwks_url.into());
    c.verify.jwks_timeout = Duration::from_secs(1);
    c.upstream.url = upstream.into();
    c.upstream.response_timeout = Duration::from_secs(2);
    c.server.shutdown_grace = Duration::from_secs(2);
    c.identity.headers.push(HeaderClaim {
        name: "X-Auth-Name".into(),
        claims: vec!["custom:display_name".into()],
        principals: vec![cognito_sidecar::config::PrincipalKind::User],
    });
    c
}

/// Static test credentials and us-east-1; no credential chain, so no IMDS lookups.
pub fn sdk_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "tests",
        )))
        .build()
}

/// The sidecar, in-process on 127.0.0.1:0.
pub struct Sidecar {
    pub addr: SocketAddr,
    pub app: App,
    /// Moves the sidecar's clock forward: token and session expiry without sleeping.
    pub clock: ClockHand,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Sidecar {
    /// Builds and serves; waits (bounded) for the keys unless `wait_ready` is false.
    pub async fn start_with(config: Config, wait_ready: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::start_on(config, listener, wait_ready).await
    }

    /// As `start_with`, on a listener bound beforehand (when the configuration must name the
    /// sidecar's own address, as a callback URL does).
    pub async fn start_on(config: Config, listener: TcpListener, wait_ready: bool) -> Self {
        // As the binary does: validate once, then build on what validation derived.
        let derived = config.validate().expect("config validates");
        let (clock, hand) = Clock::adjustable();
        let app =
            App::build_validated(&config, &derived, &sdk_config(), clock).expect("app builds");
        app.start_background();
        let addr = listener.local_addr().expect("addr");
        let (stop, rx) = oneshot::channel::<()>();
        let served = app.clone();
        let task = tokio::spawn(async move {
            server::serve(listener, served, &config.server, async {
                let _ = rx.await;
            })
            .await;
        });
        if wait_ready {
            for _ in 0..200 {
                if app.is_ready() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(app.is_ready(), "sidecar did not load its keys");
        }
        Sidecar {
            addr,
            app,
            clock: hand,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn start(config: Config) -> Self {
        Self::start_with(config, true).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Signals shutdown and waits for the drain.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

/// A redis-server of this test's own on a free loopback port (killed when dropped).
pub fn redis_server() -> (Reaped, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("redis-server (deploy/test.sh installs it)");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (Reaped(child), format!("redis://127.0.0.1:{port}"))
}

/// A child process that is killed and reaped when dropped, so a failing assertion never leaves
/// a sidecar running.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Status and JSON body (Null if not JSON) of a response.
/// Every log line of the process, captured: `Capture::install` makes it the global
/// subscriber at debug level for every crate (once per test binary: one test per file).
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    pub fn install() -> Capture {
        Self::install_as("debug", false)
    }

    /// As `install`, but the lines are the sidecar's JSON objects (`log.format = "json"`,
    /// `telemetry::logging::JsonLines`) and the filter is `level` (`log.level`).
    pub fn install_json(level: &str) -> Capture {
        Self::install_as(level, true)
    }

    fn install_as(filter: &str, json: bool) -> Capture {
        let capture = Capture::default();
        let writer = capture.clone();
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(move || writer.clone())
            .with_ansi(false);
        if json {
            builder
                .event_format(cognito_sidecar::telemetry::logging::JsonLines)
                .init();
        } else {
            builder.init();
        }
        capture
    }

    /// What was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

/// POSTs `body` as JSON to `path`: the status and the JSON answer.
pub async fn post_json(sc: &Sidecar, path: &str, body: Value) -> (u16, Value) {
    status_json(
        client()
            .post(sc.url(path))
            .json(&body)
            .send()
            .await
            .expect("post"),
    )
    .await
}

pub async fn status_json(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = resp.bytes().await.expect("body");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Writes `head` byte for byte to `addr` and reads until the server closes (send
/// `Connection: close`); returns the status and the raw body text.
pub async fn send_raw(addr: SocketAddr, head: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(head.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// A loopback address nothing listens on.
pub async fn closed_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    format!("http://{addr}")
}

// === TOTP (RFC 6238: HMAC-SHA1, 30 s, 6 digits), as Cognito and moto compute it ===

pub fn base32(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').chars() {
        let v = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u32 - 'A' as u32,
            c @ '2'..='7' => c as u32 - '2' as u32 + 26,
            other => panic!("not base32: {other:?}"),
        };
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

pub fn totp_at(secret: &str, unix: u64) -> String {
    let mut mac =
        <hmac::Hmac<sha1::Sha1> as hmac::Mac>::new_from_slice(&base32(secret)).expect("key");
    hmac::Mac::update(&mut mac, &(unix / 30).to_be_bytes());
    let h = hmac::Mac::finalize(mac).into_bytes();
    let off = usize::from(h[19] & 0x0f);
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    format!("{:06}", bin % 1_000_000)
}

/// The current code, valid for a few more seconds at least (moto accepts the current 30 s
/// step only, so a code computed at the end of one is not taken).
pub async fn totp_now(secret: &str) -> String {
    let into_step = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
        % 30.0;
    if into_step > 25.0 {
        tokio::time::sleep(Duration::from_secs_f64(30.2 - into_step)).await;
    }
    totp_at(secret, now())
}

// === moto ===

/// moto's URL: `MOTO_URL` (deploy/test.sh starts it), else a moto_server started here from
/// `.venv/bin`, which dies with this test process.
pub fn moto_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(u) = std::env::var("MOTO_URL") {
            return u;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
        // The shell watches its parent (this test binary) and stops moto when it is gone.
        let script = format!(
            "{} -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
             while kill -0 $PPID 2>/dev/null; do sleep 1; done; kill $m",
            bin.display()
        );
        // Not waited for: the shell outlives no one (see above), and the OnceLock keeps it.
        // As deploy/local/moto.sh: TOTP codes checked against moto's fixed secret.
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP", "true")
            .spawn()
            .expect("start moto (run deploy/venv.sh first, or use deploy/test.sh)");
        std::mem::forget(child);
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..150 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        url
    })
    .clone()
}

/// A user pool in moto with an app client and users.
pub struct Pool {
    pub pool_id: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub admin: aws_sdk_cognitoidentityprovider::Client,
}

pub const PASSWORD: &str = "Correct-Horse-9!";
pub const TEMP_PASSWORD: &str = "Temp-Passw0rd-1!";

impl Pool {
    /// A pool in us-east-1 (moto serves unsigned calls from there only).
    pub async fn create(with_secret: bool, email_sign_in: bool) -> Pool {
        let conf = aws_sdk_cognitoidentityprovider::config::Builder::from(&sdk_config())
            .endpoint_url(moto_url())
            .build();
        let admin = aws_sdk_cognitoidentityprovider::Client::from_conf(conf);
        let mut req = admin
            .create_user_pool()
            .pool_name(format!("pool-{}", uuid_like()));
        if email_sign_in {
            req = req.username_attributes(UsernameAttributeType::Email);
        }
        let pool = req.send().await.expect("create pool");
        let pool_id = pool
            .user_pool()
            .and_then(|p| p.id())
            .expect("pool id")
            .to_string();
        let client = admin
            .create_user_pool_client()
            .user_pool_id(&pool_id)
            .client_name("app")
            .generate_secret(with_secret)
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowAdminUserPasswordAuth)
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
            .send()
            .await
            .expect("create client");
        let c = client.user_pool_client().expect("client");
        Pool {
            client_id: c.client_id().expect("id").to_string(),
            client_secret: c.client_secret().map(str::to_string),
            pool_id,
            admin,
        }
    }

    /// A confirmed user with `PASSWORD`; returns the login name.
    pub async fn confirmed_user(&self, email: &str, groups: &[&str]) -> String {
        self.admin
            .admin_create_user()
            .user_pool_id(&self.pool_id)
            .username(email)
            .temporary_password(TEMP_PASSWORD)
            .message_action(MessageActionType::Suppress)
            .user_attributes(
                AttributeType::builder()
                    .name("email")
                    .value(email)
                    .build()
                    .expect("attr"),
            )
            .send()
            .await
            .expect("create user");
        self.admin
            .admin_set_user_password()
            .user_pool_id(&self.pool_id)
            .username(email)
            .password(PASSWORD)
            .permanent(true)
            .send()
            .await
            .expect("set password");
        for g in groups {
            let _ = self
                .admin
                .create_group()
                .user_pool_id(&self.pool_id)
                .group_name(*g)
                .send()
                .await;
            self.admin
                .admin_add_user_to_group()
                .user_pool_id(&self.pool_id)
                .username(email)
                .group_name(*g)
                .send()
                .await
                .expect("add to group");
        }
        email.to_string()
    }

    /// A FORCE_CHANGE_PASSWORD user with `TEMP_PASSWORD`.
    pub async fn new_user(&self, email: &str) -> String {
        self.admin
            .admin_create_user()
            .user_pool_id(&self.pool_id)
            .username(email)
            .temporary_password(TEMP_PASSWORD)
            .message_action(MessageActionType::Suppress)
            .user_attributes(
                AttributeType::builder()
                    .name("email")
                    .value(email)
                    .build()
                    .expect("attr"),
            )
            .send()
            .await
            .expect("create user");
        email.to_string()
    }

    /// A sidecar config for this pool, with moto's JWKS.
    pub fn config(&self, upstream: &str) -> Config {
        let mut c = Config::default();
        c.cognito.user_pool_id = Some(self.pool_id.clone());
        c.cognito.client_id = Some(self.client_id.clone());
        c.cognito.client_secret = self.client_secret.clone();
        c.cognito.endpoint_url = Some(moto_url());
        c.verify.jwks_url = Some(format!(
            "{}/{}/.well-known/jwks.json",
            moto_url(),
            self.pool_id
        ));
        c.upstream.url = upstream.into();
        c.server.shutdown_grace = Duration::from_secs(2);
        // Functional tests log in often; the limiter has tests of its own.
        c.rate_limit.username_burst = 1000;
        c.rate_limit.address_burst = 1000;
        c.rate_limit.recovery_username_burst = 1000;
        c.rate_limit.recovery_address_burst = 1000;
        c
    }
}

/// A unique-enough name part without another dependency.
pub fn uuid_like() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        now(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Logs in through the sidecar; returns the JSON answer.
pub async fn login(sc: &Sidecar, email: &str, password: &str) -> (u16, Value) {
    status_json(
        client()
            .post(sc.url("/api/user/login"))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("login"),
    )
    .await
}

pub fn header_map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
