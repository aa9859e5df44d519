//! Log output: human-readable text, or one JSON object per line with stable field names
//! (`ts`, `level`, `msg`, `target`, then the event's fields such as `request_id`, `method`,
//! `path`, `status`, `latency_ms`, `sub`) for CloudWatch and friends.
//!
//! Nothing here decides what is logged; callers never pass tokens, passwords, sessions or
//! SECRET_HASH as fields.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LogConfig, LogFormat};

/// The process's log sink, set by `init` when access lines may skip tracing (JSON, enabled).
static ACCESS_SINK: OnceLock<Arc<Sink>> = OnceLock::new();

/// Installs the global subscriber (once, from `main`). Lines go to stderr from a background
/// thread in batches (see `Sink`), so a request never waits on a write syscall, nor wakes a
/// thread, for its access line; keep the returned guard until exit, it writes what is queued.
/// Not lossy: if stderr cannot keep up, logging waits rather than dropping lines.
pub fn init(cfg: &LogConfig) -> LogGuard {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let sink = Arc::new(Sink::new());
    let writer = {
        let sink = Arc::clone(&sink);
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || sink.run(&mut std::io::stderr()))
            .ok()
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(SinkWriter(Arc::clone(&sink)));
    match cfg.format {
        LogFormat::Json => {
            builder.event_format(JsonLines).init();
            // The filter is fixed from here on: decide once whether access lines are wanted.
            if tracing::enabled!(target: "access", tracing::Level::INFO) {
                let _ = ACCESS_SINK.set(Arc::clone(&sink));
            }
        }
        LogFormat::Text => builder.init(),
    }
    LogGuard { sink, writer }
}

/// Writes what is queued and stops the writer thread when dropped (at exit).
pub struct LogGuard {
    sink: Arc<Sink>,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// How long exiting waits for the queued lines to be written (stderr may be a pipe nobody
/// reads any more; exiting must not hang on it).
const EXIT_WAIT: Duration = Duration::from_secs(2);

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.sink.close();
        if self.writer.take().is_some() {
            self.sink.wait_done(EXIT_WAIT);
        }
    }
}

/// Log lines on their way to stderr. Callers append to one buffer under a mutex; a writer
/// thread takes the whole buffer and writes it with one syscall, `FLUSH_EVERY` after its first
/// line (sooner once `FLUSH_AT` bytes wait). So at load a line costs an append, not a write
/// and a thread wake-up each (what tracing-appender's channel did: about one `write` per two
/// lines, a futex wake and the writer's `sched_yield`s on the proxy's own core).
struct Sink {
    pending: Mutex<Pending>,
    /// The writer waits on this for a batch to start, or to fill.
    ready: Condvar,
    /// Callers wait on this while `MAX_PENDING` bytes are queued (stderr not keeping up).
    room: Condvar,
}

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    closed: bool,
    /// The writer has written everything and stopped.
    done: bool,
    /// The wall-clock second `stamp` was rendered for, and its text up to the seconds.
    stamp_secs: u64,
    stamp: String,
}

/// How long a line may wait to be written: lines within it go out together.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// A batch this large is written at once.
const FLUSH_AT: usize = 64 * 1024;
/// Callers wait (rather than drop lines) while this much is queued.
const MAX_PENDING: usize = 4 * 1024 * 1024;

fn lock(m: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sink {
    fn new() -> Self {
        Sink {
            pending: Mutex::new(Pending::default()),
            ready: Condvar::new(),
            room: Condvar::new(),
        }
    }

    /// Appends with `write`, which gets the buffer and a clock for the line.
    fn push(&self, write: impl FnOnce(&mut Pending)) {
        let mut p = lock(&self.pending);
        while p.buf.len() >= MAX_PENDING && !p.closed {
            p = self.room.wait(p).unwrap_or_else(PoisonError::into_inner);
        }
        let before = p.buf.len();
        write(&mut p);
        if before == 0 || (before < FLUSH_AT && p.buf.len() >= FLUSH_AT) {
            self.ready.notify_one();
        }
    }

    fn close(&self) {
        lock(&self.pending).closed = true;
        self.ready.notify_one();
        self.room.notify_all();
    }

    /// Waits, at most `limit`, for the writer to have written everything after `close`.
    fn wait_done(&self, limit: Duration) {
        let p = lock(&self.pending);
        drop(self.room.wait_timeout_while(p, limit, |p| !p.done));
    }

    /// The writer thread: until closed and drained, waits for a line, lets the batch grow for
    /// `FLUSH_EVERY` (or to `FLUSH_AT`), then writes it.
    fn run(&self, out: &mut impl std::io::Write) {
        let mut batch: Vec<u8> = Vec::with_capacity(FLUSH_AT);
        loop {
            let closed = {
                let p = lock(&self.pending);
                let p = self
                    .ready
                    .wait_while(p, |p| p.buf.is_empty() && !p.closed)
                    .unwrap_or_else(PoisonError::into_inner);
                let (mut p, _) = self
                    .ready
                    .wait_timeout_while(p, FLUSH_EVERY, |p| p.buf.len() < FLUSH_AT && !p.closed)
                    .unwrap_or_else(PoisonError::into_inner);
                std::mem::swap(&mut p.buf, &mut batch);
                p.closed && p.buf.is_empty() && batch.is_empty()
            };
            if closed {
                let _ = out.flush();
                lock(&self.pending).done = true;
                self.room.notify_all();
                return;
            }
            self.room.notify_all();
            if !batch.is_empty() {
                let _ = out.write_all(&batch);
                let _ = out.flush();
            }
            batch.clear();
            if batch.capacity() > 4 * FLUSH_AT {
                batch = Vec::with_capacity(FLUSH_AT);
            }
        }
    }
}

impl Pending {
    /// Appends the current time as RFC 3339 UTC with milliseconds, in JSON quotes. The text up
    /// to the seconds is rendered once per second.
    fn push_ts(&mut self, now: SystemTime) {
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        if secs != self.stamp_secs || self.stamp.is_empty() {
            self.stamp.clear();
            let whole = UNIX_EPOCH + Duration::from_secs(secs);
            let _ = write!(self.stamp, "{}", humantime::format_rfc3339_seconds(whole));
            // "…:SSZ": keep everything but the zone, the milliseconds go before it.
            self.stamp.pop();
            self.stamp_secs = secs;
        }
        self.buf.push(b'"');
        self.buf.extend_from_slice(self.stamp.as_bytes());
        push_thousandths(&mut self.buf, since.subsec_millis());
        self.buf.extend_from_slice(b"Z\"");
    }
}

/// tracing-subscriber's writer for the sink: each event arrives as one `write_all`.
struct SinkWriter(Arc<Sink>);

impl std::io::Write for &SinkWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.push(|p| p.buf.extend_from_slice(bytes));
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for SinkWriter {
    type Writer = &'a SinkWriter;
    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

/// One access line's fields.
pub struct Access<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub latency: Duration,
    pub sub: &'a str,
    /// The request's trace (`traces.enabled`).
    pub trace_id: Option<&'a str>,
    /// The load balancer's `X-Amzn-Trace-Id`, when the request had one.
    pub amzn_trace_id: Option<&'a str>,
}

/// Logs one access line: with the JSON format, written straight into the sink (the same
/// object the JSON formatter writes for the tracing event, without tracing's dispatch, field
/// visitor and copies); otherwise (text format, or no sink installed, as in tests) as a
/// tracing event with target `access`.
pub fn access(line: &Access<'_>) {
    match ACCESS_SINK.get() {
        Some(sink) => sink.push(|p| line.write_json(p, SystemTime::now())),
        None => tracing::info!(
            target: "access",
            request_id = line.request_id,
            method = line.method,
            path = line.path,
            status = line.status,
            latency_ms = line.latency.as_secs_f64() * 1000.0,
            sub = line.sub,
            trace_id = line.trace_id,
            amzn_trace_id = line.amzn_trace_id,
        ),
    }
}

impl Access<'_> {
    fn write_json(&self, p: &mut Pending, now: SystemTime) {
        p.buf.extend_from_slice(b"{\"ts\":");
        p.push_ts(now);
        let buf = &mut p.buf;
        buf.extend_from_slice(
            b",\"level\":\"info\",\"msg\":\"\",\"target\":\"access\",\"request_id\":",
        );
        push_json_bytes(buf, self.request_id);
        buf.extend_from_slice(b",\"method\":");
        push_json_bytes(buf, self.method);
        buf.extend_from_slice(b",\"path\":");
        push_json_bytes(buf, self.path);
        buf.extend_from_slice(b",\"status\":");
        buf.extend_from_slice(itoa::Buffer::new().format(self.status).as_bytes());
        // Milliseconds with microsecond resolution, as a JSON number.
        let us = self.latency.as_micros();
        buf.extend_from_slice(b",\"latency_ms\":");
        buf.extend_from_slice(itoa::Buffer::new().format(us / 1000).as_bytes());
        push_thousandths(buf, (us % 1000) as u32);
        buf.extend_from_slice(b",\"sub\":");
        push_json_bytes(buf, self.sub);
        if let Some(t) = self.trace_id {
            buf.extend_from_slice(b",\"trace_id\":");
            push_json_bytes(buf, t);
        }
        if let Some(t) = self.amzn_trace_id {
            buf.extend_from_slice(b",\"amzn_trace_id\":");
            push_json_bytes(buf, t);
        }
        buf.extend_from_slice(b"}\n");
    }
}

/// One JSON object per event: `ts`, `level`, `msg`, `target`, then the event's fields in the
/// order they were recorded. Written straight into one buffer (no map, no per-field
/// allocation): the access line is written for every request.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        let mut line = String::with_capacity(192 + fields.rest.len());
        line.push_str("{\"ts\":\"");
        let _ = write!(
            line,
            "{}",
            humantime::format_rfc3339_millis(std::time::SystemTime::now())
        );
        line.push_str("\",\"level\":\"");
        line.push_str(level_name(meta.level()));
        line.push_str("\",\"msg\":");
        push_json_str(&mut line, fields.message.as_deref().unwrap_or(""));
        line.push_str(",\"target\":");
        push_json_str(&mut line, meta.target());
        line.push_str(&fields.rest);
        line.push_str("}\n");
        writer.write_str(&line)
    }
}

fn level_name(level: &tracing::Level) -> &'static str {
    match *level {
        tracing::Level::ERROR => "error",
        tracing::Level::WARN => "warn",
        tracing::Level::INFO => "info",
        tracing::Level::DEBUG => "debug",
        tracing::Level::TRACE => "trace",
    }
}

/// Appends `.ddd` for `n` thousandths (`n < 1000`): a timestamp's milliseconds, a latency's
/// microseconds.
fn push_thousandths(out: &mut Vec<u8>, n: u32) {
    let digit = |d: u32| b'0' + (d % 10) as u8;
    out.extend_from_slice(&[b'.', digit(n / 100), digit(n / 10), digit(n)]);
}

/// Appends `s` as a JSON string: quotes, backslashes and control characters escaped.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    json_escape(s, |part| out.push_str(part));
    out.push('"');
}

/// `push_json_str` for a byte buffer.
fn push_json_bytes(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    json_escape(s, |part| out.extend_from_slice(part.as_bytes()));
    out.push(b'"');
}

/// Hands `s` to `emit` in pieces, with `"`, `\` and control characters replaced by their JSON
/// escapes; everything else (any UTF-8) passes unchanged.
fn json_escape(s: &str, mut emit: impl FnMut(&str)) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Most strings (paths, ids, addresses) need no escape: one branch-free pass over the bytes
    // (a `fold`, which the compiler vectorizes, not a short-circuiting `any`), then one copy.
    if !s.bytes().fold(false, |any, b| any | needs_escape(b)) {
        emit(s);
        return;
    }
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let mut unicode = [b'\\', b'u', b'0', b'0', 0, 0];
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f | 0x7f => {
                unicode[4] = HEX[usize::from(b >> 4)];
                unicode[5] = HEX[usize::from(b & 0xf)];
                std::str::from_utf8(&unicode).unwrap_or("")
            }
            _ => continue,
        };
        emit(&s[start..i]);
        emit(esc);
        start = i + 1;
    }
    emit(&s[start..]);
}

/// Whether JSON needs `b` escaped: `"`, `\\`, the C0 controls and DEL.
fn needs_escape(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20 || b == 0x7f
}

/// The event's fields: `message` apart, the others already rendered as `,"name":value`.
#[derive(Default)]
struct JsonFields {
    message: Option<String>,
    rest: String,
}

impl JsonFields {
    fn key(&mut self, field: &Field) {
        self.rest.push(',');
        push_json_str(&mut self.rest, field.name());
        self.rest.push(':');
    }
}

impl Visit for JsonFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_string());
            return;
        }
        self.key(field);
        push_json_str(&mut self.rest, value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.rest, "{value}");
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let _ = write!(self.rest, "{value}");
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            let _ = write!(self.rest, "{value}");
        } else {
            self.rest.push_str("null");
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.rest.push_str(if value { "true" } else { "false" });
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(text);
            return;
        }
        self.key(field);
        push_json_str(&mut self.rest, &text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped_and_parse_back() {
        let cases = [
            "plain",
            "",
            "quote \" and backslash \\",
            "line\nbreak\r\ttab",
            "nul \u{0} bell \u{7} del \u{7f}",
            "日本語 é",
            "</script>",
        ];
        // Long strings too, with the one byte to escape first, in the middle or last (the
        // pre-check reads the whole string before the first copy).
        let long = "/api/orders/0123456789abcdef/items?page=2&sort=created_at".repeat(3);
        let mut long_cases = vec![long.clone()];
        for at in [0, long.len() / 2, long.len()] {
            for esc in ['"', '\\', '\n', '\u{1f}', '\u{7f}'] {
                let mut s = long.clone();
                s.insert(at, esc);
                long_cases.push(s);
            }
        }
        for s in cases
            .iter()
            .copied()
            .chain(long_cases.iter().map(String::as_str))
        {
            let mut out = String::new();
            push_json_str(&mut out, s);
            let back: String = serde_json::from_str(&out).expect("valid JSON");
            assert_eq!(back, s, "{out}");
            assert!(!out.bytes().any(|b| b < 0x20 || b == 0x7f), "{out:?}");
            let mut bytes = Vec::new();
            push_json_bytes(&mut bytes, s);
            assert_eq!(bytes, out.as_bytes());
        }
        // Every ASCII byte: escaped exactly when `needs_escape` says so.
        for b in 0u8..0x80 {
            let s = char::from(b).to_string();
            let mut out = String::new();
            push_json_str(&mut out, &s);
            assert_eq!(
                out != format!("\"{s}\""),
                needs_escape(b),
                "byte {b:#x}: {out}"
            );
        }
    }

    #[test]
    fn fields_render_in_order_with_their_types() {
        let mut f = JsonFields::default();
        // Field values through the Visit methods, as tracing calls them.
        let fields = tracing::field::FieldSet::new(
            &["message", "status", "latency_ms", "path", "ok", "delta"],
            tracing::callsite::Identifier(&CALLSITE),
        );
        let get = |n: &str| fields.field(n).expect("field");
        f.record_str(&get("message"), "done");
        f.record_u64(&get("status"), 200);
        f.record_f64(&get("latency_ms"), 1.5);
        f.record_str(&get("path"), "/a\"b");
        f.record_bool(&get("ok"), true);
        f.record_i64(&get("delta"), -3);
        assert_eq!(f.message.as_deref(), Some("done"));
        let obj: serde_json::Value =
            serde_json::from_str(&format!("{{\"x\":0{}}}", f.rest)).expect("json");
        assert_eq!(obj["status"], 200);
        assert_eq!(obj["latency_ms"], 1.5);
        assert_eq!(obj["path"], "/a\"b");
        assert_eq!(obj["ok"], true);
        assert_eq!(obj["delta"], -3);
        assert_eq!(
            f.rest,
            ",\"status\":200,\"latency_ms\":1.5,\"path\":\"/a\\\"b\",\"ok\":true,\"delta\":-3"
        );
    }

    #[test]
    fn access_lines_are_json_with_the_formatters_fields() {
        let mut p = Pending::default();
        let at = UNIX_EPOCH + Duration::from_millis(1_764_622_731_042);
        let line = Access {
            request_id: "r-1",
            method: "GET",
            path: "/a\"b\u{1}",
            status: 404,
            latency: Duration::from_micros(12_345),
            sub: "-",
            trace_id: None,
            amzn_trace_id: None,
        };
        line.write_json(&mut p, at);
        // Same second: the cached stamp; the next second: a new one.
        line.write_json(&mut p, at + Duration::from_millis(500));
        line.write_json(&mut p, at + Duration::from_millis(1_000));
        let text = String::from_utf8(p.buf).expect("utf-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        let v = &lines[0];
        assert_eq!(v["ts"], "2025-12-01T20:58:51.042Z");
        assert_eq!(lines[1]["ts"], "2025-12-01T20:58:51.542Z");
        assert_eq!(lines[2]["ts"], "2025-12-01T20:58:52.042Z");
        assert_eq!(v["level"], "info");
        assert_eq!(v["msg"], "");
        assert_eq!(v["target"], "access");
        assert_eq!(v["request_id"], "r-1");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/a\"b\u{1}");
        assert_eq!(v["status"], 404);
        assert_eq!(v["latency_ms"].as_f64(), Some(12.345));
        assert_eq!(v["sub"], "-");
        // The formatter's field order: ts, level, msg, target, then the event's fields.
        let first = text.lines().next().expect("line");
        let at = |k: &str| first.find(&format!("\"{k}\":")).expect(k);
        let order = [
            "ts",
            "level",
            "msg",
            "target",
            "request_id",
            "method",
            "path",
            "status",
            "latency_ms",
            "sub",
        ];
        assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{first}");
        assert_eq!(v.as_object().expect("object").len(), order.len());
    }

    #[test]
    fn trace_ids_follow_sub_when_there_are_some() {
        let mut p = Pending::default();
        let line = Access {
            request_id: "r",
            method: "GET",
            path: "/",
            status: 200,
            latency: Duration::from_micros(1),
            sub: "s",
            trace_id: Some("0af7651916cd43dd8448eb211c80319c"),
            amzn_trace_id: Some("Root=1-67891233-abcdef012345678912345678;x=\"y\""),
        };
        line.write_json(&mut p, UNIX_EPOCH);
        let text = String::from_utf8(p.buf).expect("utf-8");
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).expect("JSON");
        assert_eq!(v["trace_id"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(
            v["amzn_trace_id"],
            "Root=1-67891233-abcdef012345678912345678;x=\"y\""
        );
        let at = |k: &str| text.find(&format!("\"{k}\":")).expect(k);
        assert!(
            at("sub") < at("trace_id") && at("trace_id") < at("amzn_trace_id"),
            "{text}"
        );
    }

    #[test]
    fn latency_keeps_microseconds_and_large_values() {
        for (us, want) in [
            (0, "0.000"),
            (7, "0.007"),
            (999, "0.999"),
            (1_000, "1.000"),
            (61_234_567, "61234.567"),
        ] {
            let mut p = Pending::default();
            let line = Access {
                request_id: "r",
                method: "GET",
                path: "/",
                status: 200,
                latency: Duration::from_micros(us),
                sub: "s",
                trace_id: None,
                amzn_trace_id: None,
            };
            line.write_json(&mut p, UNIX_EPOCH);
            let text = String::from_utf8(p.buf).expect("utf-8");
            assert!(text.contains(&format!("\"latency_ms\":{want},")), "{text}");
        }
    }

    /// Records each `write` it gets.
    #[derive(Clone, Default)]
    struct Writes(Arc<Mutex<Vec<Vec<u8>>>>);
    impl std::io::Write for Writes {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_sink_writes_every_line_in_order_in_batches() {
        let sink = Arc::new(Sink::new());
        let out = Writes::default();
        let writer = {
            let (sink, mut out) = (Arc::clone(&sink), out.clone());
            std::thread::spawn(move || sink.run(&mut out))
        };
        let n = 2_000;
        for i in 0..n {
            sink.push(|p| p.buf.extend_from_slice(format!("line {i}\n").as_bytes()));
        }
        // Lines pushed within one flush interval go out together: far fewer writes than lines.
        std::thread::sleep(FLUSH_EVERY * 3);
        let writes = out.0.lock().expect("lock").len();
        assert!((1..50).contains(&writes), "{writes} writes for {n} lines");
        sink.push(|p| p.buf.extend_from_slice(b"last\n"));
        sink.close();
        sink.wait_done(Duration::from_secs(5));
        assert!(lock(&sink.pending).done, "the writer finished");
        writer.join().expect("writer");
        let all: Vec<u8> = out.0.lock().expect("lock").concat();
        let text = String::from_utf8(all).expect("utf-8");
        let want: String = (0..n).map(|i| format!("line {i}\n")).collect::<String>() + "last\n";
        assert_eq!(text, want);
    }

    struct Cs;
    static CALLSITE: Cs = Cs;
    static META: tracing::Metadata<'static> = tracing::metadata! {
        name: "test",
        target: "test",
        level: tracing::Level::INFO,
        fields: &[],
        callsite: &CALLSITE,
        kind: tracing::metadata::Kind::EVENT,
    };
    impl tracing::Callsite for Cs {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &tracing::Metadata<'_> {
            &META
        }
    }
}
