//! cognito-sidecar: an authentication sidecar for apps behind AWS Cognito user pools.
//!
//! Data flows one way: `server` → `app` → `router` → `auth` (the login API, via `idp`) or
//! `gate` (via `verify`) → `forward` (what the app receives, with `headers`) → `proxy`.
//! Errors become HTTP only in `error`. `forward_auth` reads the original request a front
//! proxy asks about, which then takes the gate's own path (`App::decide`).

/// `AsyncWrite` for a wrapper `$ty<S>` that only watches or replays reads: every write goes
/// straight to its field `$field`.
macro_rules! write_through {
    ($ty:ident, $field:ident) => {
        impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $ty<S> {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().$field).poll_write(cx, buf)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().$field).poll_flush(cx)
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().$field).poll_shutdown(cx)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().$field).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.$field.is_write_vectored()
            }
        }
    };
}
pub(crate) use write_through;

pub mod app;
pub mod auth;
pub mod body;
pub mod compat;
pub mod config;
pub mod error;
pub mod forward;
pub mod forward_auth;
pub mod front_config;
pub mod gate;
pub mod headers;
pub mod idp;
pub mod limit;
pub mod logging;
pub mod metrics;
pub mod pages;
pub mod pool;
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
