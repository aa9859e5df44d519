//! cognito-sidecar: an authentication sidecar for apps behind AWS Cognito user pools.
//!
//! Data flows one way: `server` → `app` → `router` → `auth` (the login API, via `idp`) or
//! `gate` (via `verify`) → `forward` (what the app receives, with `headers`) → `proxy`.
//! Errors become HTTP only in `error`. `forward_auth` reads the original request a front
//! proxy asks about, which then takes the gate's own path (`App::decide`).

pub mod app;
pub mod auth;
pub mod body;
pub mod config;
pub mod error;
pub mod forward;
pub mod forward_auth;
pub mod gate;
pub mod headers;
pub mod idp;
pub mod limit;
pub mod logging;
pub mod metrics;
pub mod pages;
pub mod proxy;
pub mod revocation;
pub mod router;
pub mod server;
pub mod session;
pub mod shared;
pub mod tunnel;
pub mod verify;

pub use app::App;
pub use config::Config;
