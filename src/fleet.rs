//! A fleet, not a process: logouts and auth API rate limits shared by every sidecar through
//! Redis (ElastiCache for Redis OSS or Valkey), with `shared.backend = "redis"`.
//!
//! **Logouts.** A logout is applied to the local `RevocationList` at once, then queued; a
//! writer task stores it and announces it in one atomic round trip: `ZADD` into the sorted
//! set `{prefix}:revocations` (member: the JSON record, score: the epoch second it expires),
//! `ZREMRANGEBYSCORE` of what expired, and `PUBLISH` of the record on the channel of the same
//! name. Every sidecar subscribes and applies what it receives. Pub/Sub drops messages while a
//! subscriber is disconnected, so the sorted set is the durable copy: a sidecar that starts or
//! reconnects subscribes first, then reads every live record (`ZRANGEBYSCORE now +inf`, in
//! pages) before it reports itself synced. Both keys carry the hash tag `{prefix}`, so they
//! live in one slot of a cluster (ElastiCache Serverless is cluster-mode only) and no SCAN is
//! ever needed. The request path never touches Redis: the gate checks the local list.
//!
//! **Rate limits.** One GCRA check per auth API request is a Lua script over one key
//! (`prefix:rl:<kind>:<id>`, usernames hashed), run atomically by Redis with Redis's clock, so
//! the budget is the fleet's, not each task's.
//!
//! **Redis down or slow** never takes the gate down: proxying goes on with the local list;
//! logouts are queued (bounded, oldest dropped with an error log and a metric) and retried
//! until Redis takes them; rate limits fall back to the local limiter after
//! `shared.command_timeout`. Records from Redis are checked (`Revocation::decode`): anything
//! malformed, oversized or not ours is logged and ignored.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Client, RedisError};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio::time::{sleep, timeout, Instant};

use crate::config::SharedConfig;
use crate::gate::revocation::{Revocation, RevocationList};
use crate::telemetry::metrics::SharedMetrics;
use crate::telemetry::trace;

/// Where the fleet state is, as `/readyz` and the metrics see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Redis is unreachable (or the connection broke); the local list is all there is.
    Down = 0,
    /// Connecting, or reading the live logouts (at start and after every reconnect).
    CatchingUp = 1,
    /// Subscribed, and every live logout is in the local list.
    Synced = 2,
}

/// Why the shared backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("shared.url: {0}")]
    Url(String),
    #[error("shared.tls_ca_file: {0}")]
    Ca(String),
}

/// Records read per page during catch-up.
const PAGE: isize = 10_000;

/// The GCRA step, atomically in Redis with Redis's clock: ARGV[1] is the emission interval
/// and ARGV[2] the burst tolerance, in microseconds. Returns 0 (allowed) or the wait in
/// microseconds.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
if tat - now > tolerance then
  return tat - now - tolerance
end
local new = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new), 'PX', math.floor((new - now) / 1000) + 1)
return 0
";

/// The fleet backend; cheap to clone.
#[derive(Clone)]
pub struct Shared {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    /// `{prefix}:revocations`: the sorted set and the channel.
    revocations_key: String,
    /// `prefix:rl:`
    rate_prefix: String,
    /// `prefix:` (sessions are `prefix:session:<hash>`)
    session_prefix: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    queue_max: usize,
    require_for_ready: bool,
    state: AtomicU8,
    /// Set once a connection could be made; `ConnectionManager` reconnects by itself.
    manager: Mutex<Option<ConnectionManager>>,
    queue: Mutex<VecDeque<Revocation>>,
    queued: Notify,
    list: RevocationList,
    metrics: SharedMetrics,
    gcra: redis::Script,
}

/// The Redis client of `shared` (no I/O but reading `tls_ca_file`): start-up validation
/// builds it once, so a bad URL or CA file is a configuration error.
pub fn client(cfg: &SharedConfig) -> Result<Client, SharedError> {
    // rustls needs one process-wide crypto provider when several are compiled in; this is
    // the one the rest of the binary uses (an error means one is installed already).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut info: redis::ConnectionInfo = cfg
        .url
        .as_str()
        .parse()
        .map_err(|_| SharedError::Url("not a valid redis:// or rediss:// URL".into()))?;
    let mut settings = info.redis_settings().clone();
    if let Some(u) = &cfg.username {
        settings = settings.set_username(u);
    }
    if let Some(p) = &cfg.password {
        settings = settings.set_password(p);
    }
    info = info.set_redis_settings(settings);
    match &cfg.tls_ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| SharedError::Ca(e.kind().to_string()))?;
            Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
        }
        None => Client::open(info),
    }
    .map_err(|e| SharedError::Url(format!("{:?}", e.kind())))
}

impl Shared {
    /// The backend over `client` (from `client`); `start` runs the background tasks.
    pub fn new(
        cfg: &SharedConfig,
        client: Client,
        list: RevocationList,
        metrics: SharedMetrics,
    ) -> Self {
        let prefix = &cfg.key_prefix;
        Shared {
            inner: Arc::new(Inner {
                client,
                revocations_key: format!("{{{prefix}}}:revocations"),
                rate_prefix: format!("{prefix}:rl:"),
                session_prefix: format!("{prefix}:"),
                connect_timeout: cfg.connect_timeout,
                command_timeout: cfg.command_timeout,
                queue_max: cfg.queue_max,
                require_for_ready: cfg.require_for_ready,
                state: AtomicU8::new(State::CatchingUp as u8),
                manager: Mutex::new(None),
                queue: Mutex::new(VecDeque::new()),
                queued: Notify::new(),
                list,
                metrics,
                gcra: redis::Script::new(GCRA),
            }),
        }
    }

    /// Starts the connection, subscriber (catch-up, then messages) and writer tasks.
    pub fn start(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let (a, b, c) = (self.clone(), self.clone(), self.clone());
        vec![
            tokio::spawn(async move { a.connect_loop().await }),
            tokio::spawn(async move { b.subscribe_loop().await }),
            tokio::spawn(async move { c.write_loop().await }),
        ]
    }

    /// The current state.
    pub fn state(&self) -> State {
        match self.inner.state.load(Ordering::Acquire) {
            0 => State::Down,
            1 => State::CatchingUp,
            _ => State::Synced,
        }
    }

    fn set_state(&self, s: State) {
        let old = self.inner.state.swap(s as u8, Ordering::AcqRel);
        self.inner.metrics.shared_state(s as i64);
        if old != s as u8 {
            match s {
                State::Down => {
                    tracing::warn!("shared store unreachable; using the local logout list")
                }
                State::CatchingUp => tracing::info!("shared store connected; catching up"),
                State::Synced => tracing::info!("shared store synced"),
            }
        }
    }

    /// Whether `/readyz` may say ready as far as the fleet state goes: synced, or (unless
    /// `require_for_ready`) Redis unreachable. While catching up after a successful connect
    /// the answer is no, so a new task takes traffic only once it knows every live logout.
    pub fn is_ready(&self) -> bool {
        match self.state() {
            State::Synced => true,
            State::Down => !self.inner.require_for_ready,
            State::CatchingUp => false,
        }
    }

    /// Logouts waiting for Redis.
    pub fn queue_len(&self) -> usize {
        self.inner.queue.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// Queues a logout (already applied locally) for the fleet.
    pub fn publish(&self, r: Revocation) {
        let inner = &self.inner;
        let (len, dropped) = match inner.queue.lock() {
            Ok(mut q) => {
                let mut dropped = 0;
                while q.len() >= inner.queue_max {
                    q.pop_front();
                    dropped += 1;
                }
                q.push_back(r);
                (q.len(), dropped)
            }
            Err(_) => return,
        };
        if dropped > 0 {
            tracing::error!(
                dropped,
                queue_max = inner.queue_max,
                "shared store unreachable for too long: oldest queued logouts dropped (they stay revoked on this task)"
            );
            inner.metrics.shared_queue_dropped(dropped);
        }
        inner.metrics.shared_queue(len as i64);
        inner.queued.notify_one();
    }

    /// One fleet-wide GCRA check: `None` when Redis cannot answer in time (the caller falls
    /// back to its local limiter), else the verdict.
    pub async fn rate_limit(
        &self,
        kind: &'static str,
        id: &str,
        interval: Duration,
        tolerance: Duration,
    ) -> Option<Result<(), Duration>> {
        let inner = &self.inner;
        let mut conn = inner.manager.lock().ok()?.clone()?;
        let key = format!("{}{kind}:{id}", inner.rate_prefix);
        let mut invocation = inner.gcra.key(key);
        invocation
            .arg(u64::try_from(interval.as_micros()).unwrap_or(u64::MAX))
            .arg(u64::try_from(tolerance.as_micros()).unwrap_or(u64::MAX));
        let call = invocation.invoke_async::<i64>(&mut conn);
        let answered = trace::in_span(
            "redis",
            trace::Kind::Client,
            || span_attributes("EVALSHA"),
            timeout(inner.command_timeout, call),
            outcome,
        )
        .await;
        match answered {
            Ok(Ok(0)) => Some(Ok(())),
            Ok(Ok(wait)) => Some(Err(Duration::from_micros(wait.unsigned_abs()))),
            Ok(Err(e)) => {
                tracing::debug!(error_kind = ?e.kind(), "shared rate limit failed; local limiter used");
                inner.metrics.shared_fallback();
                None
            }
            Err(_) => {
                tracing::debug!("shared rate limit timed out; local limiter used");
                inner.metrics.shared_fallback();
                None
            }
        }
    }

    /// A session kept in the store (`prefix:session:<hash of the id>`), its idle timer reset.
    pub async fn session_get(&self, key: &str, idle: Duration) -> Result<Option<String>, ()> {
        let cmd = redis::cmd("GETEX")
            .arg(self.key("session", key))
            .arg("EX")
            .arg(idle.as_secs().max(1))
            .to_owned();
        self.query(cmd).await
    }

    /// Stores a session for `ttl`.
    pub async fn session_put(&self, key: &str, json: &str, ttl: Duration) -> Result<(), ()> {
        self.set_ex(self.key("session", key), json, ttl).await
    }

    /// Deletes a session.
    pub async fn session_delete(&self, key: &str) -> Result<(), ()> {
        self.query(redis::cmd("DEL").arg(self.key("session", key)).to_owned())
            .await
    }

    /// Keeps a federated sign-in's record until its callback (`prefix:oauth-flow:<hash of
    /// the state>`).
    pub async fn flow_put(&self, key: &str, json: &str, ttl: Duration) -> Result<(), ()> {
        self.set_ex(self.key("oauth-flow", key), json, ttl).await
    }

    /// Takes a federated sign-in's record: GETDEL, so of two callbacks with the same state
    /// (on any tasks of the fleet) at most one gets it.
    pub async fn flow_take(&self, key: &str) -> Result<Option<String>, ()> {
        self.query(
            redis::cmd("GETDEL")
                .arg(self.key("oauth-flow", key))
                .to_owned(),
        )
        .await
    }

    /// Takes a session's refresh lock (`prefix:refresh-lock:<hash of the id>`, `SET NX` for
    /// `ttl`): `true` when this task got it, `false` when another task holds it.
    pub async fn refresh_lock(&self, key: &str, ttl: Duration) -> Result<bool, ()> {
        let cmd = redis::cmd("SET")
            .arg(self.key("refresh-lock", key))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
            .to_owned();
        self.query::<Option<String>>(cmd)
            .await
            .map(|ok| ok.is_some())
    }

    /// Releases a session's refresh lock.
    pub async fn refresh_unlock(&self, key: &str) -> Result<(), ()> {
        self.query(
            redis::cmd("DEL")
                .arg(self.key("refresh-lock", key))
                .to_owned(),
        )
        .await
    }

    fn key(&self, kind: &str, key: &str) -> String {
        format!("{}{kind}:{key}", self.inner.session_prefix)
    }

    async fn set_ex(&self, key: String, value: &str, ttl: Duration) -> Result<(), ()> {
        let cmd = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .to_owned();
        self.query(cmd).await
    }

    /// One command on the command connection, bounded by `shared.command_timeout`; `Err` when
    /// there is no connection yet, it failed or it timed out.
    async fn query<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, ()> {
        let inner = &self.inner;
        let mut conn = inner
            .manager
            .lock()
            .ok()
            .and_then(|m| m.clone())
            .ok_or(())?;
        let name = match cmd.args_iter().next() {
            Some(redis::Arg::Simple(b)) => std::str::from_utf8(b).unwrap_or("?"),
            _ => "?",
        };
        let answered = trace::in_span(
            "redis",
            trace::Kind::Client,
            || span_attributes(&name.to_ascii_uppercase()),
            timeout(inner.command_timeout, cmd.query_async::<T>(&mut conn)),
            outcome,
        )
        .await;
        match answered {
            Ok(Ok(v)) => Ok(v),
            _ => Err(()),
        }
    }

    /// Makes the command connection once; `ConnectionManager` reconnects by itself after.
    async fn connect_loop(&self) {
        let inner = &self.inner;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(inner.connect_timeout))
            .set_response_timeout(Some(inner.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let mut backoff = Duration::from_millis(100);
        loop {
            let made = timeout(
                inner.connect_timeout,
                ConnectionManager::new_with_config(inner.client.clone(), config.clone()),
            )
            .await;
            match made {
                Ok(Ok(m)) => {
                    if let Ok(mut slot) = inner.manager.lock() {
                        *slot = Some(m);
                    }
                    return;
                }
                Ok(Err(e)) => {
                    tracing::debug!(error_kind = ?e.kind(), "shared store connect failed")
                }
                Err(_) => tracing::debug!("shared store connect timed out"),
            }
            sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// Subscribes, catches up, applies messages; on any failure starts over.
    async fn subscribe_loop(&self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let started = Instant::now();
            let result = self.sync_once().await;
            self.set_state(State::Down);
            match result {
                Ok(()) => {}
                Err(e) => tracing::debug!(error = %e, "shared store subscription ended"),
            }
            if started.elapsed() > Duration::from_secs(5) {
                backoff = Duration::from_millis(100);
            }
            sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    async fn sync_once(&self) -> Result<(), SyncError> {
        let inner = &self.inner;
        let limit = inner.connect_timeout;
        let mut pubsub = timeout(limit, inner.client.get_async_pubsub())
            .await
            .map_err(|_| SyncError::Timeout)??;
        self.set_state(State::CatchingUp);
        timeout(limit, pubsub.subscribe(&inner.revocations_key))
            .await
            .map_err(|_| SyncError::Timeout)??;
        let mut conn = timeout(limit, inner.client.get_multiplexed_async_connection())
            .await
            .map_err(|_| SyncError::Timeout)??;

        // Catch-up: everything live, after the subscription so nothing falls in between.
        let started = Instant::now();
        let now = inner.list.clock().now_secs();
        let _: () = timeout(
            limit,
            conn.zrembyscore(&inner.revocations_key, "-inf", format!("({now}")),
        )
        .await
        .map_err(|_| SyncError::Timeout)??;
        let mut offset: isize = 0;
        let mut applied = 0u64;
        loop {
            let page: Vec<Vec<u8>> = timeout(
                limit.max(Duration::from_secs(5)),
                conn.zrangebyscore_limit(&inner.revocations_key, now, "+inf", offset, PAGE),
            )
            .await
            .map_err(|_| SyncError::Timeout)??;
            for raw in &page {
                if self.apply(raw, false) {
                    applied += 1;
                }
            }
            if page.len() < PAGE as usize {
                break;
            }
            offset += PAGE;
        }
        let took = started.elapsed();
        inner.metrics.shared_catchup(applied, took);
        tracing::info!(
            revocations = applied,
            took_ms = took.as_millis() as u64,
            "shared logout list loaded"
        );
        self.set_state(State::Synced);

        // Then live messages; a ping every few seconds notices a connection that died
        // silently (a message stream alone would wait forever).
        let mut stream = pubsub.into_on_message();
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.tick().await;
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(msg) => {
                        self.apply(msg.get_payload_bytes(), true);
                    }
                    None => return Err(SyncError::Closed),
                },
                _ = tick.tick() => {
                    let pong: Result<Result<String, RedisError>, _> =
                        timeout(limit, redis::cmd("PING").query_async(&mut conn)).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        return Err(SyncError::Timeout);
                    }
                }
            }
        }
    }

    /// Applies one record from Redis; returns whether it was applied.
    fn apply(&self, raw: &[u8], live: bool) -> bool {
        let inner = &self.inner;
        match Revocation::decode(raw, inner.list.clock().now_secs()) {
            Ok(r) => {
                if live {
                    inner.metrics.shared_received();
                    let lag = inner.list.clock().now_millis().saturating_sub(r.ts);
                    inner.metrics.shared_lag(Duration::from_millis(lag));
                }
                inner.list.apply(&r)
            }
            Err(e) => {
                inner.metrics.shared_ignored();
                tracing::warn!(
                    problem = %e,
                    bytes = raw.len(),
                    "ignored a record in the shared store that is not a valid revocation"
                );
                false
            }
        }
    }

    /// Stores and announces queued logouts, oldest first, until Redis takes each.
    async fn write_loop(&self) {
        let inner = &self.inner;
        let mut backoff = Duration::from_millis(100);
        loop {
            let next = inner.queue.lock().ok().and_then(|q| q.front().cloned());
            let Some(r) = next else {
                inner.queued.notified().await;
                continue;
            };
            let conn = inner.manager.lock().ok().and_then(|m| m.clone());
            let written = match conn {
                Some(mut conn) => self.write(&mut conn, &r).await,
                None => Err(SyncError::Timeout),
            };
            match written {
                Ok(()) => {
                    inner.metrics.shared_published();
                    let len = match inner.queue.lock() {
                        Ok(mut q) => {
                            if q.front() == Some(&r) {
                                q.pop_front();
                            }
                            q.len()
                        }
                        Err(_) => 0,
                    };
                    inner.metrics.shared_queue(len as i64);
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    inner.metrics.shared_publish_failed();
                    tracing::debug!(error = %e, "shared store write failed; will retry");
                    sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    async fn write<C: redis::aio::ConnectionLike>(
        &self,
        conn: &mut C,
        r: &Revocation,
    ) -> Result<(), SyncError> {
        let inner = &self.inner;
        let member = r.encode();
        let key = &inner.revocations_key;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .zadd(key, &member, r.expires(inner.list.ttl()))
            .ignore()
            .zrembyscore(key, "-inf", format!("({}", inner.list.clock().now_secs()))
            .ignore()
            .publish(key, &member)
            .ignore();
        timeout(inner.command_timeout, pipe.query_async::<()>(conn))
            .await
            .map_err(|_| SyncError::Timeout)??;
        Ok(())
    }
}

/// The key id for a username: a hash, so no email address is ever a Redis key name.
pub fn username_id(username: &str) -> String {
    let digest = Sha256::digest(username.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("timed out")]
    Timeout,
    #[error("connection closed")]
    Closed,
    #[error("redis: {0}")]
    Redis(String),
}

impl From<RedisError> for SyncError {
    fn from(e: RedisError) -> Self {
        // The kind and code only: a message could quote a command's arguments.
        SyncError::Redis(format!("{:?} {}", e.kind(), e.code().unwrap_or("")))
    }
}

/// A Redis command's span attributes: the command's name, never its keys or values.
fn span_attributes(command: &str) -> Vec<trace::Attribute> {
    vec![
        trace::Attribute::new("db.system.name", "redis"),
        trace::Attribute::new("db.operation.name", command.to_string()),
    ]
}

/// A Redis round trip's outcome class for its span.
fn outcome<T>(
    r: &Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
) -> Option<&'static str> {
    match r {
        Ok(Ok(_)) => None,
        Ok(Err(_)) => Some("error"),
        Err(_) => Some("timeout"),
    }
}
