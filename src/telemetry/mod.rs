//! Metrics (Prometheus), logs (the JSON access line, batched by a writer thread) and traces
//! (W3C Trace Context, OTLP export). Imports only `config` and `http`.

pub mod logging;
pub mod metrics;
pub mod trace;
