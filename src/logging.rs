//! Log output: human-readable text, or one JSON object per line with stable field names
//! (`ts`, `level`, `msg`, `target`, then the event's fields such as `request_id`, `method`,
//! `path`, `status`, `latency_ms`, `sub`) for CloudWatch and friends.
//!
//! Nothing here decides what is logged; callers never pass tokens, passwords, sessions or
//! SECRET_HASH as fields.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber (once, from `main`). Lines are written to stderr by a
/// background thread, so a request never waits on a write syscall for its access line; keep
/// the returned guard until exit, it flushes what is queued. The queue is not lossy: if
/// stderr cannot keep up, logging waits rather than dropping lines.
pub fn init(cfg: &LogConfig) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        // Buffered: the worker flushes after draining its queue, so lines go out in batches.
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    match cfg.format {
        LogFormat::Json => builder.event_format(JsonLines).init(),
        LogFormat::Text => builder.init(),
    }
    guard
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

/// Appends `s` as a JSON string: quotes, backslashes and control characters escaped.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0..=0x1f | 0x7f => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
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
        for s in cases {
            let mut out = String::new();
            push_json_str(&mut out, s);
            let back: String = serde_json::from_str(&out).expect("valid JSON");
            assert_eq!(back, s, "{out}");
            assert!(!out.bytes().any(|b| b < 0x20), "{out:?}");
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
