//! Traces: W3C Trace Context and the optional OTLP/HTTP export of spans.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::reference;

/// [Traces](operations.md#traces): W3C Trace Context (`traceparent`, `tracestate`) continued
/// from a trusted proxy or started here and handed to the app, and spans exported over
/// OTLP/HTTP. Off by default: then the sidecar neither reads nor writes trace headers.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TracesConfig {
    /// Trace every request: continue the `traceparent` of a `server.trusted_proxies` peer (a
    /// client's own is replaced), send the app a `traceparent` whose parent is the sidecar's
    /// span, and put `trace_id` in the access line.
    pub enabled: bool,
    /// The OTLP/HTTP (protobuf) traces URL spans are sent to, such as
    /// `http://127.0.0.1:4318/v1/traces` (the ADOT or OpenTelemetry Collector beside the task).
    /// Unset: trace context only, no export.
    pub otlp_endpoint: Option<String>,
    /// The share of new traces that are sampled (0 to 1, by trace id); a trusted parent's
    /// sampled flag is followed instead.
    pub sample_ratio: f64,
    /// The `service.name` resource attribute of the exported spans.
    pub service_name: String,
    /// How long finished spans wait to be sent in one batch (at most 512 per export).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "reference::DurationText")]
    pub export_interval: Duration,
    /// How long one export may take before it is given up (the spans are dropped).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "reference::DurationText")]
    pub export_timeout: Duration,
}

impl Default for TracesConfig {
    fn default() -> Self {
        TracesConfig {
            enabled: false,
            otlp_endpoint: None,
            sample_ratio: 0.05,
            service_name: "cognito-sidecar".into(),
            export_interval: Duration::from_secs(5),
            export_timeout: Duration::from_secs(10),
        }
    }
}
