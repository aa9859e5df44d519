//! Prometheus metrics, served in text format on the admin listener (never through the ALB).
//!
//! Counters the hot path touches are resolved once at start-up, so a request costs an atomic
//! increment, not a label lookup. JWKS state is read from the key cache at scrape time.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthResult {
    endpoint: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Operation {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationError {
    operation: &'static str,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~8 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

/// All metrics of one sidecar.
pub struct Metrics {
    registry: Registry,
    gate: Family<Outcome, Counter>,
    proxied: Counter,
    public: Counter,
    auth: Family<AuthResult, Counter>,
    cache_hits: Counter,
    cache_misses: Counter,
    cognito_latency: Histograms<Operation>,
    cognito_errors: Family<OperationError, Counter>,
    upstream_latency: Histogram,
    upstream_errors: Family<Kind, Counter>,
    open_connections: Gauge,
    parked_connections: Gauge,
    open_tunnels: Gauge,
    rate_limited: Family<Kind, Counter>,
    shared: SharedStats,
    sessions_active: Gauge,
    sign_ins: Family<Outcome, Counter>,
    federated_sign_ins: Family<Outcome, Counter>,
    sign_outs: Counter,
    session_refreshes: Family<Outcome, Counter>,
    csrf_refused: Family<Kind, Counter>,
    checks: Family<Outcome, Counter>,
    response_removed: Family<Kind, Counter>,
}

/// The fleet backend's metrics (`shared.backend = "redis"`).
struct SharedStats {
    state: Gauge,
    published: Counter,
    publish_failures: Counter,
    received: Counter,
    ignored: Counter,
    queue: Gauge,
    queue_dropped: Counter,
    catchup_entries: Gauge,
    catchup_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    lag: Histogram,
    fallbacks: Counter,
}

impl SharedStats {
    fn register(registry: &mut Registry) -> Self {
        let s = SharedStats {
            state: Gauge::default(),
            published: Counter::default(),
            publish_failures: Counter::default(),
            received: Counter::default(),
            ignored: Counter::default(),
            queue: Gauge::default(),
            queue_dropped: Counter::default(),
            catchup_entries: Gauge::default(),
            catchup_seconds: Gauge::default(),
            // 1 ms .. ~16 s
            lag: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            fallbacks: Counter::default(),
        };
        registry.register(
            "shared_state",
            "Fleet store: 0 unreachable (local list only), 1 connecting or catching up, 2 synced",
            s.state.clone(),
        );
        registry.register(
            "shared_published",
            "Logouts written to the fleet store and announced",
            s.published.clone(),
        );
        registry.register(
            "shared_publish_failures",
            "Attempts to write a logout to the fleet store that failed (retried)",
            s.publish_failures.clone(),
        );
        registry.register(
            "shared_received",
            "Logouts received from other sidecars (pub/sub)",
            s.received.clone(),
        );
        registry.register(
            "shared_ignored",
            "Records in the fleet store that were not valid revocations (ignored)",
            s.ignored.clone(),
        );
        registry.register(
            "shared_queue_length",
            "Logouts waiting for the fleet store",
            s.queue.clone(),
        );
        registry.register(
            "shared_queue_dropped",
            "Queued logouts dropped (oldest first) because the queue was full",
            s.queue_dropped.clone(),
        );
        registry.register(
            "shared_catchup_revocations",
            "Live logouts read at the last catch-up",
            s.catchup_entries.clone(),
        );
        registry.register(
            "shared_catchup_seconds",
            "Duration of the last catch-up",
            s.catchup_seconds.clone(),
        );
        registry.register(
            "shared_propagation_seconds",
            "Time from a logout on another sidecar to its arrival here",
            s.lag.clone(),
        );
        registry.register(
            "shared_rate_limit_fallbacks",
            "Rate-limit checks answered by the local limiter because the fleet store did not",
            s.fallbacks.clone(),
        );
        s
    }
}

/// Shared handle.
pub type SharedMetrics = Arc<Metrics>;

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every family.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sidecar");
        let gate = Family::<Outcome, Counter>::default();
        registry.register(
            "gate_requests",
            "Requests through the gate by outcome: proxied, public, or the refusal code",
            gate.clone(),
        );
        let auth = Family::<AuthResult, Counter>::default();
        registry.register(
            "auth_requests",
            "Auth API requests by endpoint and result (ok or the error code)",
            auth.clone(),
        );
        let cache = Family::<Outcome, Counter>::default();
        registry.register(
            "token_cache",
            "Verified-token cache lookups by outcome (hit, miss)",
            cache.clone(),
        );
        let cognito_latency: Histograms<Operation> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "cognito_request_duration_seconds",
            "Cognito call latency by operation",
            cognito_latency.clone(),
        );
        let cognito_errors = Family::<OperationError, Counter>::default();
        registry.register(
            "cognito_errors",
            "Failed Cognito calls by operation and error class",
            cognito_errors.clone(),
        );
        let upstream_latency = latency_histogram();
        registry.register(
            "upstream_response_duration_seconds",
            "Time to the upstream app's response head",
            upstream_latency.clone(),
        );
        let upstream_errors = Family::<Kind, Counter>::default();
        registry.register(
            "upstream_errors",
            "Requests the upstream app failed, by kind (timeout, unavailable)",
            upstream_errors.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections currently open",
            open_connections.clone(),
        );
        let parked_connections = Gauge::default();
        registry.register(
            "parked_connections",
            "Idle HTTP/1.1 keep-alive connections waiting for their next request without buffers",
            parked_connections.clone(),
        );
        let open_tunnels = Gauge::default();
        registry.register(
            "open_tunnels",
            "Upgraded (WebSocket) tunnels open, or being set up, now",
            open_tunnels.clone(),
        );
        let rate_limited = Family::<Kind, Counter>::default();
        registry.register(
            "rate_limited",
            "Auth API requests refused by the rate limiter, by key kind (address, username)",
            rate_limited.clone(),
        );
        let shared = SharedStats::register(&mut registry);
        let sessions_active = Gauge::default();
        registry.register(
            "sessions_active",
            "Browser sessions held on this task (all of them with the memory store)",
            sessions_active.clone(),
        );
        let sign_ins = Family::<Outcome, Counter>::default();
        registry.register(
            "session_sign_ins",
            "Sign-ins on the sidecar's pages by outcome (ok or the error code)",
            sign_ins.clone(),
        );
        let federated_sign_ins = Family::<Outcome, Counter>::default();
        registry.register(
            "session_federated_sign_ins",
            "Federated sign-in steps by outcome (started, ok, or why a callback was refused)",
            federated_sign_ins.clone(),
        );
        let sign_outs = Counter::default();
        registry.register(
            "session_sign_outs",
            "Sessions ended by signing out",
            sign_outs.clone(),
        );
        let session_refreshes = Family::<Outcome, Counter>::default();
        registry.register(
            "session_refreshes",
            "Session token refreshes by outcome (ok, failed)",
            session_refreshes.clone(),
        );
        let csrf_refused = Family::<Kind, Counter>::default();
        registry.register(
            "csrf_refused",
            "Requests refused by the CSRF rules, by kind (form, request, websocket)",
            csrf_refused.clone(),
        );
        let checks = Family::<Outcome, Counter>::default();
        registry.register(
            "forward_auth_checks",
            "Forward-auth checks by outcome: allowed, or the refusal code",
            checks.clone(),
        );
        let response_removed = Family::<Kind, Counter>::default();
        registry.register(
            "upstream_response_headers_removed",
            "Headers removed from the app's answers, by kind (session_cookie, identity, framing)",
            response_removed.clone(),
        );
        // The label values known in advance start at 0: prometheus-client leaves a family with
        // no series out of the exposition, so without them a fresh task would not declare these
        // families at all, and a dashboard's rate() would read "no data" rather than 0.
        let zero = |family: &Family<Outcome, Counter>, outcomes: &[&'static str]| {
            for &outcome in outcomes {
                let _ = family.get_or_create(&Outcome { outcome });
            }
        };
        zero(&sign_ins, &["ok"]);
        zero(&federated_sign_ins, &["started", "ok"]);
        zero(&session_refreshes, &["ok", "failed"]);
        zero(&checks, &["allowed"]);
        for (family, kinds) in [
            (&csrf_refused, &["form", "request", "websocket"][..]),
            (
                &response_removed,
                &["session_cookie", "identity", "framing"],
            ),
            (&rate_limited, &["address", "username"]),
        ] {
            for &kind in kinds {
                let _ = family.get_or_create(&Kind { kind });
            }
        }
        let proxied = gate.get_or_create(&Outcome { outcome: "proxied" }).clone();
        let public = gate.get_or_create(&Outcome { outcome: "public" }).clone();
        let cache_hits = cache.get_or_create(&Outcome { outcome: "hit" }).clone();
        let cache_misses = cache.get_or_create(&Outcome { outcome: "miss" }).clone();
        Metrics {
            proxied,
            public,
            cache_hits,
            cache_misses,
            registry,
            gate,
            auth,
            cognito_latency,
            cognito_errors,
            upstream_latency,
            upstream_errors,
            open_connections,
            parked_connections,
            open_tunnels,
            rate_limited,
            shared,
            sessions_active,
            sign_ins,
            federated_sign_ins,
            sign_outs,
            session_refreshes,
            csrf_refused,
            checks,
            response_removed,
        }
    }

    /// Browser sessions held now.
    pub fn sessions_active(&self, n: u64) {
        self.sessions_active
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// A sign-in on the pages ended (`ok` or an error code).
    pub fn session_sign_in(&self, outcome: &'static str) {
        self.sign_ins.get_or_create(&Outcome { outcome }).inc();
    }

    /// A federated sign-in step (`started`, `ok`, or why a callback was refused).
    pub fn federated_sign_in(&self, outcome: &'static str) {
        self.federated_sign_ins
            .get_or_create(&Outcome { outcome })
            .inc();
    }

    /// A session ended by signing out.
    pub fn session_sign_out(&self) {
        self.sign_outs.inc();
    }

    /// A session's tokens were refreshed (`ok`) or could not be (`failed`).
    pub fn session_refresh(&self, outcome: &'static str) {
        self.session_refreshes
            .get_or_create(&Outcome { outcome })
            .inc();
    }

    /// A request the CSRF rules refused.
    pub fn csrf_refused(&self, kind: &'static str) {
        self.csrf_refused.get_or_create(&Kind { kind }).inc();
    }

    /// The fleet store's state (`shared::State` as a number).
    pub fn shared_state(&self, state: i64) {
        self.shared.state.set(state);
    }

    /// A logout was written to the fleet store.
    pub fn shared_published(&self) {
        self.shared.published.inc();
    }

    /// Writing a logout to the fleet store failed.
    pub fn shared_publish_failed(&self) {
        self.shared.publish_failures.inc();
    }

    /// A logout arrived from another sidecar.
    pub fn shared_received(&self) {
        self.shared.received.inc();
    }

    /// A record in the fleet store was not a valid revocation.
    pub fn shared_ignored(&self) {
        self.shared.ignored.inc();
    }

    /// Logouts waiting for the fleet store.
    pub fn shared_queue(&self, len: i64) {
        self.shared.queue.set(len);
    }

    /// Queued logouts dropped.
    pub fn shared_queue_dropped(&self, n: u64) {
        self.shared.queue_dropped.inc_by(n);
    }

    /// A catch-up finished.
    pub fn shared_catchup(&self, entries: u64, took: Duration) {
        self.shared
            .catchup_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
        self.shared.catchup_seconds.set(took.as_secs_f64());
    }

    /// How long a logout took to arrive.
    pub fn shared_lag(&self, lag: Duration) {
        self.shared.lag.observe(lag.as_secs_f64());
    }

    /// A rate-limit check fell back to the local limiter.
    pub fn shared_fallback(&self) {
        self.shared.fallbacks.inc();
    }

    /// A request passed the gate and was forwarded (`public`: without a token).
    pub fn forwarded(&self, public: bool) {
        if public { &self.public } else { &self.proxied }.inc();
    }

    /// A request the gate refused, by code.
    pub fn refused(&self, code: &'static str) {
        self.gate.get_or_create(&Outcome { outcome: code }).inc();
    }

    /// A forward-auth check's answer (`allowed` or the refusal code).
    pub fn check(&self, outcome: &'static str) {
        self.checks.get_or_create(&Outcome { outcome }).inc();
    }

    /// Headers removed from an answer of the app (`forward::from_upstream`), by kind.
    pub fn response_removed(&self, kind: &'static str, n: usize) {
        if n > 0 {
            self.response_removed
                .get_or_create(&Kind { kind })
                .inc_by(n as u64);
        }
    }

    /// An auth API answer.
    pub fn auth(&self, endpoint: &'static str, result: &'static str) {
        self.auth
            .get_or_create(&AuthResult { endpoint, result })
            .inc();
    }

    /// A verified-token cache lookup.
    pub fn token_cache(&self, hit: bool) {
        if hit {
            &self.cache_hits
        } else {
            &self.cache_misses
        }
        .inc();
    }

    /// A Cognito call finished.
    pub fn cognito(&self, operation: &'static str, took: Duration, error: Option<&'static str>) {
        self.cognito_latency
            .get_or_create(&Operation { operation })
            .observe(took.as_secs_f64());
        if let Some(class) = error {
            self.cognito_errors
                .get_or_create(&OperationError { operation, class })
                .inc();
        }
    }

    /// The upstream answered (its head) after `took`.
    pub fn upstream(&self, took: Duration) {
        self.upstream_latency.observe(took.as_secs_f64());
    }

    /// The upstream failed.
    pub fn upstream_error(&self, kind: &'static str) {
        self.upstream_errors.get_or_create(&Kind { kind }).inc();
    }

    /// A client connection opened (`+1`) or closed (`-1`).
    pub fn connections(&self, delta: i64) {
        self.open_connections.inc_by(delta);
    }

    /// Client connections open now.
    pub fn open_connections(&self) -> i64 {
        self.open_connections.get()
    }

    /// An idle connection was parked (`+1`), or left that state (`-1`).
    pub fn parked(&self, delta: i64) {
        self.parked_connections.inc_by(delta);
    }

    /// Idle connections parked now.
    pub fn parked_connections(&self) -> i64 {
        self.parked_connections.get()
    }

    /// A tunnel slot was taken (`+1`) or given back (`-1`).
    pub fn tunnels(&self, delta: i64) {
        self.open_tunnels.inc_by(delta);
    }

    /// Tunnels open (or being set up) now.
    pub fn open_tunnels(&self) -> i64 {
        self.open_tunnels.get()
    }

    /// The rate limiter refused a request.
    pub fn rate_limited(&self, kind: &'static str) {
        self.rate_limited.get_or_create(&Kind { kind }).inc();
    }

    /// The text exposition, with the JWKS state appended.
    pub fn render(&self, jwks: &JwksStats, pools: &[(&str, JwksStats)]) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode_registry(&mut out, &self.registry).is_err() {
            out.clear();
        }
        let _ = write!(
            out,
            "# HELP sidecar_jwks_fetches JWKS fetch attempts.\n\
             # TYPE sidecar_jwks_fetches counter\n\
             sidecar_jwks_fetches_total {}\n\
             # HELP sidecar_jwks_fetch_failures JWKS fetches that failed (last good keys kept).\n\
             # TYPE sidecar_jwks_fetch_failures counter\n\
             sidecar_jwks_fetch_failures_total {}\n\
             # HELP sidecar_jwks_keys Signing keys loaded.\n\
             # TYPE sidecar_jwks_keys gauge\n\
             sidecar_jwks_keys {}\n\
             # HELP sidecar_jwks_key_age_seconds Seconds since the keys were last loaded (-1: never).\n\
             # TYPE sidecar_jwks_key_age_seconds gauge\n\
             sidecar_jwks_key_age_seconds {}\n",
            jwks.fetches,
            jwks.failures,
            jwks.keys,
            jwks.age.map(|a| a.as_secs_f64()).unwrap_or(-1.0),
        );
        // Every trusted pool's keys and fetches, labelled (the unlabelled series above are the
        // first pool's, as they were before several pools).
        for (family, help, kind, value) in [
            (
                "sidecar_pool_jwks_keys",
                "Signing keys loaded, per trusted pool.",
                "gauge",
                (|s: &JwksStats| s.keys as u64) as fn(&JwksStats) -> u64,
            ),
            (
                "sidecar_pool_jwks_fetches",
                "JWKS fetch attempts, per trusted pool.",
                "counter",
                |s: &JwksStats| s.fetches,
            ),
            (
                "sidecar_pool_jwks_fetch_failures",
                "JWKS fetches that failed, per trusted pool.",
                "counter",
                |s: &JwksStats| s.failures,
            ),
        ] {
            let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
            let suffix = if kind == "counter" { "_total" } else { "" };
            for (name, s) in pools {
                let _ = writeln!(out, "{family}{suffix}{{pool=\"{name}\"}} {}", value(s));
            }
        }
        out.push_str("# EOF\n");
        out
    }
}

/// JWKS state at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct JwksStats {
    pub fetches: u64,
    pub failures: u64,
    pub keys: usize,
    pub age: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_moved() {
        let m = Metrics::new();
        m.forwarded(false);
        m.forwarded(false);
        m.refused("token_expired");
        m.auth("login", "ok");
        m.token_cache(true);
        m.cognito("InitiateAuth", Duration::from_millis(12), Some("throttled"));
        m.connections(3);
        m.connections(-1);
        m.tunnels(1);
        let stats = || JwksStats {
            fetches: 2,
            failures: 1,
            keys: 1,
            age: None,
        };
        let text = m.render(&stats(), &[("default", stats()), ("staff", stats())]);
        for line in [
            "sidecar_pool_jwks_keys{pool=\"staff\"} 1",
            "sidecar_pool_jwks_fetches_total{pool=\"default\"} 2",
            "sidecar_pool_jwks_fetch_failures_total{pool=\"staff\"} 1",
            "sidecar_gate_requests_total{outcome=\"proxied\"} 2",
            "sidecar_gate_requests_total{outcome=\"token_expired\"} 1",
            "sidecar_auth_requests_total{endpoint=\"login\",result=\"ok\"} 1",
            "sidecar_token_cache_total{outcome=\"hit\"} 1",
            "sidecar_cognito_errors_total{operation=\"InitiateAuth\",class=\"throttled\"} 1",
            "sidecar_cognito_request_duration_seconds_count{operation=\"InitiateAuth\"} 1",
            "sidecar_open_connections 2",
            "sidecar_open_tunnels 1",
            "sidecar_jwks_fetches_total 2",
            "sidecar_jwks_key_age_seconds -1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn a_fresh_task_declares_every_family() {
        let m = Metrics::new();
        let text = m.render(&JwksStats::default(), &[]);
        for line in [
            "# TYPE sidecar_session_sign_ins counter",
            "# TYPE sidecar_session_federated_sign_ins counter",
            "# TYPE sidecar_session_refreshes counter",
            "# TYPE sidecar_csrf_refused counter",
            "# TYPE sidecar_forward_auth_checks counter",
            "# TYPE sidecar_upstream_response_headers_removed counter",
            "# TYPE sidecar_rate_limited counter",
            "sidecar_rate_limited_total{kind=\"username\"} 0",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
