//! A fleet of sidecars sharing logouts and rate limits through a real `redis-server`
//! (Debian's package; `deploy/test.sh` installs it when missing): three real binaries over one
//! moto pool, Redis killed and restarted under them, hostile records in the store, and TLS.
//!
//! The tests in this file run one at a time (`SERIAL`): each starts its own redis-server and
//! several sidecar processes, and the propagation figures should not measure the others.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use redis::AsyncCommands;
use serde_json::{json, Value};

/// One test at a time (tokio's mutex works across the tests' runtimes, and a failed test
/// does not poison it).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const BIN: &str = env!("CARGO_BIN_EXE_cognito-sidecar");
const KEY: &str = "{cognito-sidecar}:revocations";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cs-fleet-{name}-{}", uuid_like()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

// === redis-server ===

/// A redis-server child on a loopback port, without persistence; killed when dropped.
struct RedisServer {
    port: u16,
    dir: PathBuf,
    tls: bool,
    child: Option<Reaped>,
}

impl RedisServer {
    fn start() -> Self {
        let mut r = RedisServer {
            port: free_port(),
            dir: scratch("redis"),
            tls: false,
            child: None,
        };
        r.spawn();
        r
    }

    /// TLS only, with a certificate for 127.0.0.1 signed by a throwaway CA (`ca.crt`).
    fn start_tls() -> Self {
        let dir = scratch("redis-tls");
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("openssl");
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=fleet-test-ca",
            "-days",
            "1",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .expect("ext");
        run(&[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.crt",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ]);
        let mut r = RedisServer {
            port: free_port(),
            dir,
            tls: true,
            child: None,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        let port = self.port.to_string();
        if self.tls {
            cmd.args(["--port", "0", "--tls-port", &port])
                .args(["--tls-cert-file", "srv.crt", "--tls-key-file", "srv.key"])
                .args(["--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no"]);
        } else {
            cmd.args(["--port", &port]);
        }
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .expect("redis-server (deploy/test.sh installs it: apt-get install -y redis-server)");
        self.child = Some(Reaped(child));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        self.child = None;
    }

    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A client of our own (with the CA for TLS).
    async fn client(&self) -> redis::aio::MultiplexedConnection {
        let client = if self.tls {
            redis::Client::build_with_tls(
                self.url().as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(std::fs::read(self.ca()).expect("ca")),
                },
            )
        } else {
            redis::Client::open(self.url().as_str())
        }
        .expect("client");
        client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to redis")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// === Sidecar processes ===

/// The real binary, configured by environment for `pool`, `redis` and `upstream`.
struct Proc {
    url: String,
    _child: Reaped,
}

impl Proc {
    async fn start(
        pool: &Pool,
        redis: &RedisServer,
        upstream: &str,
        extra: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let dir = scratch("sidecar");
        let config = dir.join("proxy.toml");
        std::fs::write(&config, "").expect("config");
        let moto = moto_url();
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("COGNITO_USER_POOL_ID", &pool.pool_id)
            .env("COGNITO_APP_CLIENT_ID", &pool.client_id)
            .env("SIDECAR_COGNITO__ENDPOINT_URL", &moto)
            .env(
                "SIDECAR_VERIFY__JWKS_URL",
                format!("{moto}/{}/.well-known/jwks.json", pool.pool_id),
            )
            .env("SIDECAR_UPSTREAM__URL", upstream)
            .env("SIDECAR_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("SIDECAR_SERVER__SHUTDOWN_GRACE", "1s")
            .env("SIDECAR_ADMIN__ENABLED", "false")
            .env("SIDECAR_LOG__ACCESS", "false")
            .env("SIDECAR_SHARED__BACKEND", "redis")
            .env("SIDECAR_SHARED__URL", redis.url())
            .env("SIDECAR_RATE_LIMIT__ADDRESS_BURST", "100000")
            .env("SIDECAR_RATE_LIMIT__USERNAME_BURST", "100000")
            .envs(extra.iter().copied())
            .args(["--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = Reaped(cmd.spawn().expect("start the sidecar"));
        let url = format!("http://127.0.0.1:{port}");
        let p = Proc { url, _child: child };
        p.wait_ready().await;
        p
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = client().get(format!("{}/readyz", self.url)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "{} never became ready", self.url);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn login(&self, email: &str, password: &str) -> (u16, Value) {
        status_json(
            client()
                .post(format!("{}/api/user/login", self.url))
                .json(&json!({ "email": email, "password": password }))
                .send()
                .await
                .expect("login"),
        )
        .await
    }

    async fn logout(&self, token: &str) -> u16 {
        client()
            .post(format!("{}/api/user/logout", self.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("logout")
            .status()
            .as_u16()
    }

    /// Status and error code of a gated request with `token`.
    async fn get(&self, token: &str) -> (u16, Option<String>) {
        let (status, v) = status_json(
            client()
                .get(format!("{}/app", self.url))
                .bearer_auth(token)
                .send()
                .await
                .expect("gate"),
        )
        .await;
        (status, v["code"].as_str().map(str::to_owned))
    }

    /// Waits (bounded) until `token` is refused as revoked; returns how long that took.
    async fn until_revoked(&self, token: &str, bound: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < bound {
            if self.get(token).await == (401, Some("token_revoked".into())) {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        None
    }
}

async fn access_token(p: &Proc, email: &str) -> String {
    let (status, v) = p.login(email, PASSWORD).await;
    assert_eq!(status, 200, "{v}");
    v["access_token"]
        .as_str()
        .expect("access token")
        .to_string()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

// === The tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_sidecar_is_refused_by_every_other() {
    let _serial = SERIAL.lock().await;
    let redis = RedisServer::start();
    let pool = Pool::create(false, false).await;
    let user = pool.confirmed_user("fleet@example.com", &[]).await;
    let echo = Echo::start().await;
    let mut fleet = Vec::new();
    for _ in 0..3 {
        fleet.push(Proc::start(&pool, &redis, &echo.url(), &[]).await);
    }

    let mut lags = Vec::new();
    let mut revoked = Vec::new();
    for i in 0..100 {
        let origin = &fleet[i % 3];
        let token = access_token(origin, &user).await;
        // Every sidecar has verified (and cached) the token before the logout.
        for p in &fleet {
            assert_eq!(p.get(&token).await.0, 200, "round {i}");
        }
        assert_eq!(origin.logout(&token).await, 200, "round {i}");
        let others: Vec<&Proc> = fleet
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i % 3)
            .map(|(_, p)| p)
            .collect();
        let (b, c) = tokio::join!(
            others[0].until_revoked(&token, Duration::from_secs(5)),
            others[1].until_revoked(&token, Duration::from_secs(5)),
        );
        let (b, c) = (
            b.unwrap_or_else(|| panic!("round {i}: not revoked on a second sidecar in 5 s")),
            c.unwrap_or_else(|| panic!("round {i}: not revoked on a third sidecar in 5 s")),
        );
        lags.push(b.max(c));
        revoked.push(token);
    }
    lags.sort();
    let (p50, p99, max) = (percentile(&lags, 0.5), percentile(&lags, 0.99), lags[99]);
    eprintln!(
        "propagation over 100 logouts (slowest of the two other sidecars): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        p50.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0,
        max.as_secs_f64() * 1000.0
    );
    assert!(p99 < Duration::from_millis(250), "p99 {p99:?}");

    // The store holds them; a sidecar started now refuses them from its first request.
    let mut conn = redis.client().await;
    let stored: usize = conn.zcard(KEY).await.expect("zcard");
    assert_eq!(stored, 100);
    let late = Proc::start(&pool, &redis, &echo.url(), &[]).await;
    for token in &revoked {
        assert_eq!(
            late.get(token).await,
            (401, Some("token_revoked".into())),
            "a late sidecar let a revoked token through"
        );
    }
    // A fresh login still works everywhere.
    let token = access_token(&late, &user).await;
    for p in fleet.iter().chain([&late]) {
        assert_eq!(p.get(&token).await.0, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_never_stops_the_gate_and_logouts_catch_up() {
    let _serial = SERIAL.lock().await;
    let mut redis = RedisServer::start();
    let pool = Pool::create(false, false).await;
    let user = pool.confirmed_user("outage@example.com", &[]).await;
    let echo = Echo::start().await;
    let mut fleet = Vec::new();
    for _ in 0..3 {
        fleet.push(Proc::start(&pool, &redis, &echo.url(), &[]).await);
    }
    let valid = access_token(&fleet[0], &user).await;
    // Another user's token is logged out during the outage (a GlobalSignOut revokes every
    // token of its user issued before it, so it must not be `valid`'s user).
    let other = pool.confirmed_user("outage2@example.com", &[]).await;
    let doomed = access_token(&fleet[1], &other).await;

    redis.kill();
    let mut failures = 0;
    for i in 0..60 {
        let p = &fleet[i % 3];
        if p.get(&valid).await.0 != 200 {
            failures += 1;
        }
        let ready = client()
            .get(format!("{}/readyz", p.url))
            .send()
            .await
            .expect("readyz")
            .status();
        assert_eq!(ready, 200, "a Redis outage took a sidecar out of service");
    }
    assert_eq!(failures, 0, "requests failed during the Redis outage");
    // A logout during the outage answers 200 (GlobalSignOut succeeded; the record waits).
    assert_eq!(fleet[0].logout(&doomed).await, 200);
    assert_eq!(
        fleet[0].get(&doomed).await,
        (401, Some("token_revoked".into()))
    );

    redis.restart();
    for p in &fleet[1..] {
        let took = p.until_revoked(&doomed, Duration::from_secs(5)).await;
        assert!(
            took.is_some(),
            "not revoked within 5 s of Redis coming back"
        );
    }
    for p in &fleet {
        assert_eq!(p.get(&valid).await.0, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_username_budget_is_the_fleets() {
    let _serial = SERIAL.lock().await;
    let redis = RedisServer::start();
    let pool = Pool::create(false, false).await;
    let user = pool.confirmed_user("guess@example.com", &[]).await;
    let echo = Echo::start().await;
    let limits = [
        ("SIDECAR_RATE_LIMIT__USERNAME_PER_MINUTE", "1"),
        ("SIDECAR_RATE_LIMIT__USERNAME_BURST", "4"),
    ];
    let mut fleet = Vec::new();
    for _ in 0..3 {
        fleet.push(Proc::start(&pool, &redis, &echo.url(), &limits).await);
    }
    let mut answers = Vec::new();
    for i in 0..9 {
        let (status, v) = fleet[i % 3].login(&user, "Wrong-Passw0rd!").await;
        answers.push((status, v["code"].as_str().unwrap_or_default().to_string()));
    }
    let refused = answers
        .iter()
        .filter(|(s, c)| *s == 429 && c == "rate_limited")
        .count();
    let tried = answers
        .iter()
        .filter(|(s, c)| *s == 401 && c == "invalid_credentials")
        .count();
    assert_eq!((tried, refused), (4, 5), "{answers:?}");
    // The right password is refused too now: the budget is spent fleet-wide.
    assert_eq!(fleet[2].login(&user, PASSWORD).await.0, 429);
    // No email address in any key name.
    let mut conn = redis.client().await;
    let keys: Vec<String> = conn.keys("*").await.expect("keys");
    assert!(
        keys.iter()
            .any(|k| k.starts_with("cognito-sidecar:rl:username:")),
        "{keys:?}"
    );
    assert!(!keys.iter().any(|k| k.contains('@')), "{keys:?}");
}

/// A sidecar in this process on the fleet backend at `redis` (tokens minted with the fixture
/// keys; Cognito unreachable).
async fn in_process(
    redis: &RedisServer,
    jwks: &JwksServer,
    tweak: impl FnOnce(&mut cognito_sidecar::config::Config),
) -> (Sidecar, Echo) {
    let echo = Echo::start().await;
    let mut cfg = gate_config(&jwks.url, &echo.url(), &closed_url().await);
    cfg.shared.backend = cognito_sidecar::config::SharedBackend::Redis;
    cfg.shared.url = redis.url();
    if redis.tls {
        cfg.shared.tls_ca_file = Some(redis.ca().to_string_lossy().into_owned());
    }
    tweak(&mut cfg);
    (Sidecar::start(cfg).await, echo)
}

fn record(sub: &str, at: u64, jti: Option<&str>) -> String {
    let mut r = json!({ "v": 1, "sub": sub, "at": at, "ts": at * 1000 });
    if let Some(j) = jti {
        r["jti"] = json!(j);
    }
    r.to_string()
}

async fn gate_status(sc: &Sidecar, token: &str) -> (u16, Option<String>) {
    let (s, v) = status_json(
        client()
            .get(sc.url("/x"))
            .bearer_auth(token)
            .send()
            .await
            .expect("gate"),
    )
    .await;
    (s, v["code"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_records_are_ignored_never_trusted() {
    let _serial = SERIAL.lock().await;
    let redis = RedisServer::start();
    let jwks = JwksServer::start().await;
    let mut conn = redis.client().await;
    let t = now();
    let future = t + 3600;
    let huge = format!(r#"{{"v":1,"sub":"{}","at":{t},"ts":1}}"#, "x".repeat(5000));
    for junk in [
        "not json".to_string(),
        huge,
        r#"{"v":1,"sub":"","at":1,"ts":1}"#.to_string(),
        r#"{"v":9,"sub":"u-victim","at":1,"ts":1}"#.to_string(),
        record("u-everyone", t + 86_400 * 365, None),
        "\u{0}\u{1}binary".to_string(),
    ] {
        let _: () = conn.zadd(KEY, junk, future).await.expect("zadd");
    }
    // One real record among the junk.
    let _: () = conn
        .zadd(KEY, record("u-out", t, None), future)
        .await
        .expect("zadd");

    let (sc, _echo) = in_process(&redis, &jwks, |_| {}).await;
    let old = |sub: &str| {
        let mut c = access_claims(sub);
        c["iat"] = json!(t - 10);
        mint("key1", "k1", &c)
    };
    assert_eq!(
        gate_status(&sc, &old("u-out")).await,
        (401, Some("token_revoked".into()))
    );
    for sub in ["u-victim", "u-everyone", "u-fine"] {
        assert_eq!(gate_status(&sc, &old(sub)).await.0, 200, "{sub}");
    }

    // Junk on the channel, and a message on a channel that is not ours: ignored.
    for junk in ["garbage", r#"{"v":1}"#, r#"{"v":1,"sub":"u-fine","ts":1}"#] {
        let _: () = conn.publish(KEY, junk).await.expect("publish");
    }
    let _: () = conn
        .publish("someone-else", record("u-fine", t, None))
        .await
        .expect("publish");
    // A real message after them still lands, so they were read (and dropped) first.
    let _: () = conn
        .publish(KEY, record("u-late", t, None))
        .await
        .expect("publish");
    let deadline = Instant::now() + Duration::from_secs(5);
    while gate_status(&sc, &old("u-late")).await.0 != 401 {
        assert!(
            Instant::now() < deadline,
            "a valid message after junk did not land"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(gate_status(&sc, &old("u-fine")).await.0, 200);
    assert!(sc.app.is_ready());
    let metrics = sc.app.render_metrics();
    let ignored: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sidecar_shared_ignored_total "))
        .and_then(|v| v.parse().ok())
        .expect("ignored counter");
    assert!(ignored >= 8.0, "{ignored}\n{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_logouts_load_and_limits_are_shared() {
    let _serial = SERIAL.lock().await;
    let redis = RedisServer::start_tls();
    let jwks = JwksServer::start().await;
    let t = now();
    let mut conn = redis.client().await;
    let _: () = conn
        .zadd(KEY, record("u-tls", t, None), t + 3600)
        .await
        .expect("zadd over TLS");
    let limit = |c: &mut cognito_sidecar::config::Config| {
        c.rate_limit.address_per_minute = 1;
        c.rate_limit.address_burst = 2;
    };
    let (a, _ea) = in_process(&redis, &jwks, limit).await;
    let (b, _eb) = in_process(&redis, &jwks, limit).await;
    for sc in [&a, &b] {
        assert_eq!(
            sc.app.shared().map(|s| s.state()),
            Some(cognito_sidecar::fleet::State::Synced)
        );
        let mut c = access_claims("u-tls");
        c["iat"] = json!(t - 10);
        assert_eq!(
            gate_status(sc, &mint("key1", "k1", &c)).await,
            (401, Some("token_revoked".into()))
        );
    }
    // Two auth requests from this address on A spend the fleet's burst; B refuses the third.
    let login = |sc: &Sidecar| {
        client()
            .post(sc.url("/api/user/login"))
            .json(&json!({"email": "x@example.com", "password": "p"}))
            .send()
    };
    for _ in 0..2 {
        let status = login(&a).await.expect("login").status().as_u16();
        assert_ne!(status, 429);
    }
    let (status, v) = status_json(login(&b).await.expect("login")).await;
    assert_eq!((status, v["code"].as_str()), (429, Some("rate_limited")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_can_require_the_store() {
    let _serial = SERIAL.lock().await;
    let mut redis = RedisServer::start();
    let jwks = JwksServer::start().await;
    let (strict, _e1) = in_process(&redis, &jwks, |c| c.shared.require_for_ready = true).await;
    let (lenient, _e2) = in_process(&redis, &jwks, |_| {}).await;
    assert!(strict.app.is_ready() && lenient.app.is_ready());
    redis.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    while strict.app.is_ready() {
        assert!(Instant::now() < deadline, "still ready without its store");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(lenient.app.is_ready());
    let ready = |sc: &Sidecar| client().get(sc.url("/readyz")).send();
    assert_eq!(ready(&strict).await.expect("readyz").status(), 503);
    assert_eq!(ready(&lenient).await.expect("readyz").status(), 200);
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !strict.app.is_ready() {
        assert!(
            Instant::now() < deadline,
            "not ready again after the store came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_reads_every_live_revocation_in_pages() {
    let _serial = SERIAL.lock().await;
    let redis = RedisServer::start();
    let jwks = JwksServer::start().await;
    let mut conn = redis.client().await;
    let t = now();
    // 100,000 live records, in pipelines of 10,000, and 1,000 expired ones.
    for chunk in 0..10 {
        let mut pipe = redis::pipe();
        for i in 0..10_000 {
            let n = chunk * 10_000 + i;
            pipe.zadd(KEY, record(&format!("u-{n}"), t, None), t + 3600)
                .ignore();
        }
        let _: () = pipe.query_async(&mut conn).await.expect("zadd");
    }
    let mut pipe = redis::pipe();
    for i in 0..1_000 {
        pipe.zadd(KEY, record(&format!("gone-{i}"), t - 7200, None), t - 10)
            .ignore();
    }
    let _: () = pipe.query_async(&mut conn).await.expect("zadd");

    let echo = Echo::start().await;
    let mut cfg = gate_config(&jwks.url, &echo.url(), &closed_url().await);
    cfg.shared.backend = cognito_sidecar::config::SharedBackend::Redis;
    cfg.shared.url = redis.url();
    let started = Instant::now();
    let sc = Sidecar::start_with(cfg, false).await;
    while !sc.app.is_ready() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not ready after a minute of catch-up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ready_after = started.elapsed();
    let metrics = sc.app.render_metrics();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(value("sidecar_shared_catchup_revocations "), 100_000.0);
    eprintln!(
        "catch-up of 100,000 live revocations: {:.0} ms (ready after {:.0} ms)",
        value("sidecar_shared_catchup_seconds ") * 1000.0,
        ready_after.as_secs_f64() * 1000.0
    );
    let old = |sub: &str| {
        let mut c = access_claims(sub);
        c["iat"] = json!(t - 10);
        mint("key1", "k1", &c)
    };
    for sub in ["u-0", "u-9999", "u-10000", "u-99999"] {
        assert_eq!(
            gate_status(&sc, &old(sub)).await,
            (401, Some("token_revoked".into())),
            "{sub}"
        );
    }
    assert_eq!(gate_status(&sc, &old("gone-1")).await.0, 200);
    let left: usize = conn.zcard(KEY).await.expect("zcard");
    assert_eq!(left, 100_000, "expired records are pruned");
}
