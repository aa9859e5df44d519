//! Metrics (Prometheus) and logs (the JSON access line, batched by a writer thread). Imports
//! only `config` and `http`.

pub mod logging;
pub mod metrics;
