//! cognito-sidecar: an authentication sidecar for apps behind AWS Cognito user pools.
//!
//! The folders are floors; imports only point down (`tests/architecture.rs` checks it):
//!
//! | floor | module | owns |
//! |---|---|---|
//! | 9 | `net` | the listeners: accept loop, protocol detection, HTTP/1.1 rounds and parking, admin listener, signals |
//! | 8 | `app` | the composition root: every client built once, background tasks; the front proxies' configs |
//! | 7 | `request` | the per-request phases (route, authenticate, authorize, build what the app receives, forward, log) for the proxy path and the forward-auth check |
//! | 6 | `auth_api`, `browser` | the JSON login API; browser sessions and their pages |
//! | 5 | `limit` | address and username budgets |
//! | 4 | `fleet`, `error` | the shared state on Redis; `ErrorCode` (every code, spelled once) and `ApiError`, the one mapping of every leaf error to HTTP |
//! | 3 | `gate`, `upstream`, `idp` | token verification and identity headers; sending to the app; Cognito |
//! | 2 | `telemetry` | metrics and logs |
//! | 1 | `config` | the configuration tree and its loader |
//! | 0 | `http`, `clock` | bodies, header rules, the one reader of request targets, the upgraded socket; the wall clock of every expiry |

// The request future nests the gate, the auth API, the pages, Cognito's SDK, reqwest and
// Redis; computing its layout from scratch goes past rustc's default query depth (128:
// a clean `cargo clippy` fails with "queries overflow the depth limit" on
// `App::handle_owned`, while an incremental build that has the layouts cached passes).
#![recursion_limit = "256"]

pub mod app;
pub mod auth_api;
pub mod browser;
pub mod clock;
pub mod config;
pub mod error;
pub mod fleet;
pub mod gate;
pub mod http;
pub mod idp;
pub mod limit;
pub mod net;
pub mod request;
pub mod telemetry;
pub mod upstream;

pub use app::App;
pub use config::Config;
