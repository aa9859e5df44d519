//! Traces (`traces.enabled`): W3C Trace Context in and out, and spans exported over OTLP/HTTP
//! with the OpenTelemetry SDK.
//!
//! - **In**: a request's `traceparent`/`tracestate` are read only from a trusted proxy
//!   (`server.trusted_proxies`); from anyone else they are ignored and a new trace starts, so
//!   a client cannot join (or force the sampling of) a trace.
//! - **The request span** (`request`, kind server) is the parent of the others: `verify`
//!   (the gate's decision), `upstream` (kind client: its id is the parent the app receives
//!   in `traceparent`), each Cognito call (named by its operation), the JWKS fetch and Redis
//!   commands. A child finds its parent (and the tracer) in the OpenTelemetry `Context` the
//!   request future runs in, so the code between them passes nothing.
//! - **Out**: with `traces.otlp_endpoint`, finished spans go in batches from the SDK's own
//!   thread (a blocking HTTP client there, never a request's task). Sampling: a trusted
//!   parent's flag, else `traces.sample_ratio` by trace id; an unsampled request still gets a
//!   trace id and sends the app a `traceparent` (flag `00`).
//!
//! Attributes name methods, paths (never the query), statuses, operations and outcome
//! classes: never a token, a cookie, a username, a key or a query string.
//!
//! Off (the default), none of this runs on a request: `request::Service` holds no `Traces`,
//! the request future is not wrapped, and a child span costs one thread-local read.

use std::borrow::Cow;
use std::future::Future;

use http::{HeaderMap, HeaderValue};
use opentelemetry::context::FutureExt as _;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;

use crate::config::TracesConfig;

pub use opentelemetry::trace::SpanKind as Kind;
pub use opentelemetry::KeyValue as Attribute;

/// The tracer and the exporter behind it, built once (`App::build`).
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
}

/// Carried in a request's `Context` so that child spans find the tracer.
#[derive(Clone)]
struct Handle(SdkTracer);

/// The trace headers the app receives.
#[derive(Debug, Clone)]
pub struct TraceHeaders {
    pub traceparent: HeaderValue,
    pub tracestate: Option<HeaderValue>,
}

impl Traces {
    /// `None` when `traces.enabled` is off. Fails only if the exporter cannot be built.
    pub fn new(cfg: &TracesConfig) -> Result<Option<Traces>, String> {
        if !cfg.enabled {
            return Ok(None);
        }
        let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(cfg.sample_ratio)));
        let resource = Resource::builder_empty()
            .with_service_name(cfg.service_name.clone())
            .build();
        let mut builder = SdkTracerProvider::builder()
            .with_sampler(sampler)
            .with_resource(resource);
        if let Some(url) = &cfg.otlp_endpoint {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(url.clone())
                .with_timeout(cfg.export_timeout)
                .build()
                .map_err(|e| e.to_string())?;
            let batches = BatchConfigBuilder::default()
                .with_scheduled_delay(cfg.export_interval)
                .build();
            builder = builder.with_span_processor(
                BatchSpanProcessor::builder(exporter)
                    .with_batch_config(batches)
                    .build(),
            );
        }
        let provider = builder.build();
        let tracer = provider.tracer("cognito-sidecar");
        Ok(Some(Traces {
            provider,
            tracer,
            propagator: TraceContextPropagator::new(),
        }))
    }

    /// Starts a request's span: the child of the proxy's `traceparent` when `trusted`, else
    /// of nothing. The returned context carries it (and the tracer, for the children).
    pub fn request(&self, headers: &HeaderMap, trusted: bool, method: &str, path: &str) -> Context {
        let parent = if trusted {
            self.propagator.extract(&HeaderExtractor(headers))
        } else {
            Context::new()
        };
        let span = self
            .tracer
            .span_builder("request")
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", method.to_string()),
                KeyValue::new("url.path", path.to_string()),
            ])
            .start_with_context(&self.tracer, &parent);
        parent
            .with_span(span)
            .with_value(Handle(self.tracer.clone()))
    }

    /// A context in which background work (the JWKS refresher) starts root spans.
    pub fn background(&self) -> Context {
        Context::new().with_value(Handle(self.tracer.clone()))
    }

    /// Sends what is finished and waits for it (tests; shutdown does it too).
    pub fn flush(&self) {
        let _ = self.provider.force_flush();
    }

    /// Sends what is finished and stops the exporter (at exit).
    pub fn shutdown(&self) {
        let _ = self.provider.shutdown();
    }
}

/// Ends a request's span with the answer's status (5xx is an error of the server span).
pub fn end_request(cx: &Context, status: u16, request_id: &str) {
    let span = cx.span();
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status),
    ));
    span.set_attribute(KeyValue::new("sidecar.request_id", request_id.to_string()));
    if status >= 500 {
        span.set_status(Status::error(""));
    }
    span.end();
}

/// The trace id of a context's span, as 32 lower-case hex digits (the access line's
/// `trace_id`).
pub fn trace_id(cx: &Context) -> String {
    cx.span().span_context().trace_id().to_string()
}

/// A child span of the current context's span (`Span::start`), ended by `end` or on drop.
pub struct Span(Option<Context>);

impl Span {
    /// Starts `name` under the current context's span; a no-op when the current context has
    /// no tracer (traces off, or work outside a traced request).
    pub fn start(
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Span {
        Span(Context::map_current(|cx| {
            let Handle(tracer) = cx.get::<Handle>()?;
            let span = tracer
                .span_builder(name)
                .with_kind(kind)
                .with_attributes(attributes())
                .start_with_context(tracer, cx);
            Some(cx.with_span(span))
        }))
    }

    /// The span's context, to run its work in (its children's parent).
    pub fn context(&self) -> Option<&Context> {
        self.0.as_ref()
    }

    /// `traceparent` (and `tracestate`) naming this span as the parent.
    pub fn headers(&self) -> Option<TraceHeaders> {
        let cx = self.0.as_ref()?;
        let mut h = HeaderMap::new();
        TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(&mut h));
        Some(TraceHeaders {
            traceparent: h.remove("traceparent")?,
            // The propagator writes an empty one when there is none.
            tracestate: h.remove("tracestate").filter(|v| !v.is_empty()),
        })
    }

    /// Sets an attribute (no-op when off).
    pub fn set(&self, attribute: impl FnOnce() -> KeyValue) {
        if let Some(cx) = &self.0 {
            cx.span().set_attribute(attribute());
        }
    }

    /// Ends the span, as failed with `error` (an outcome class such as `timeout`) if given.
    pub fn end(self, error: Option<&str>) {
        if let Some(cx) = self.0 {
            let span = cx.span();
            if let Some(e) = error {
                span.set_attribute(KeyValue::new("error.type", e.to_string()));
                span.set_status(Status::error(e.to_string()));
            }
            span.end();
        }
    }
}

/// Runs `work` in a child span of the current one (see `Span::start`); `error` classifies
/// its output (`None`: it succeeded). For calls that leave the process (Cognito, Redis, the
/// JWKS): `work` is boxed, so that wrapping it does not double the caller's future (an
/// argument and its awaited move would each take its size).
pub async fn in_span<F: Future>(
    name: impl Into<Cow<'static, str>>,
    kind: SpanKind,
    attributes: impl FnOnce() -> Vec<KeyValue>,
    work: F,
    error: impl FnOnce(&F::Output) -> Option<&'static str>,
) -> F::Output {
    let work = Box::pin(work);
    let span = Span::start(name, kind, attributes);
    let out = match span.context() {
        Some(cx) => work.with_context(cx.clone()).await,
        None => work.await,
    };
    span.end(error(&out));
    out
}

/// Runs `work` in `cx` when there is one (a background task's context).
pub async fn within<F: Future>(cx: Option<Context>, work: F) -> F::Output {
    match cx {
        Some(cx) => work.with_context(cx).await,
        None => work.await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // The header tables' one builder.
    use crate::http::headers::tests::map as headers;

    fn traces(ratio: f64) -> Traces {
        let cfg = TracesConfig {
            enabled: true,
            sample_ratio: ratio,
            ..TracesConfig::default()
        };
        Traces::new(&cfg).expect("ok").expect("ok")
    }

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn off_builds_nothing() {
        assert!(Traces::new(&TracesConfig::default()).expect("ok").is_none());
    }

    /// (trusted, incoming headers) → (the same trace id as the parent, sampled flag).
    #[test]
    fn a_parent_is_followed_only_from_a_trusted_proxy() {
        let t = traces(0.0);
        type Case<'a> = (bool, &'a [(&'a str, &'a str)], bool, &'a str);
        let cases: &[Case] = &[
            (true, &[("traceparent", PARENT)], true, "01"),
            (
                true,
                &[("traceparent", &PARENT.replace("-01", "-00"))],
                true,
                "00",
            ),
            // A client's parent is not joined, and ratio 0 samples nothing new.
            (false, &[("traceparent", PARENT)], false, "00"),
            // Malformed: a new trace.
            (
                true,
                &[(
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
                )],
                false,
                "00",
            ),
            (
                true,
                &[(
                    "traceparent",
                    "00-00000000000000000000000000000000-b7ad6b7169203331-01",
                )],
                false,
                "00",
            ),
            (
                true,
                &[(
                    "traceparent",
                    "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
                )],
                false,
                "00",
            ),
            (true, &[], false, "00"),
        ];
        for (trusted, incoming, joined, flags) in cases {
            let cx = t.request(&headers(incoming), *trusted, "GET", "/a");
            let sent = {
                let _g = cx.clone().attach();
                Span::start("upstream", SpanKind::Client, Vec::new)
                    .headers()
                    .expect("ok")
            };
            let tp = sent.traceparent.to_str().expect("ok").to_string();
            let parts: Vec<&str> = tp.split('-').collect();
            assert_eq!(parts.len(), 4, "{tp}");
            assert_eq!(parts[0], "00");
            assert_eq!(
                parts[1] == "0af7651916cd43dd8448eb211c80319c",
                *joined,
                "{incoming:?} trusted={trusted}: {tp}"
            );
            assert_eq!(parts[1], trace_id(&cx));
            assert_ne!(
                parts[2], "b7ad6b7169203331",
                "the app's parent is the sidecar's span"
            );
            assert_eq!(parts[3], *flags, "{incoming:?} trusted={trusted}");
        }
    }

    #[test]
    fn tracestate_comes_with_a_trusted_parent_only() {
        let t = traces(1.0);
        let incoming = headers(&[("traceparent", PARENT), ("tracestate", "vendor=abc")]);
        for (trusted, want) in [(true, Some("vendor=abc")), (false, None)] {
            let cx = t.request(&incoming, trusted, "GET", "/");
            let _g = cx.attach();
            let sent = Span::start("upstream", SpanKind::Client, Vec::new)
                .headers()
                .expect("ok");
            assert_eq!(
                sent.tracestate.as_ref().map(|v| v.to_str().expect("ok")),
                want
            );
        }
    }

    #[test]
    fn without_a_traced_context_a_span_is_a_no_op() {
        let s = Span::start("verify", SpanKind::Internal, || {
            unreachable!("not evaluated")
        });
        assert!(s.context().is_none());
        assert!(s.headers().is_none());
        s.end(Some("x"));
    }
}
