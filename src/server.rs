//! The listener: accepts connections (bounded by `max_connections`), serves HTTP/1.1 and h2c
//! with upgrades through hyper-util's auto builder, and drains on shutdown within a grace
//! period (ECS sends SIGTERM, then waits `stopTimeout` before SIGKILL).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::app::App;
use crate::config::ServerConfig;

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, lets in-flight
/// requests finish and returns once they have, or once `shutdown_grace` has passed.
pub async fn serve(
    listener: TcpListener,
    app: App,
    cfg: &ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The header-read timeout (slowloris) only runs with a timer; without one hyper panics.
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper starts this timer whenever it waits for a request head, so it also closes
        // keep-alive connections idle for longer.
        .header_read_timeout(cfg.header_read_timeout)
        .max_buf_size(cfg.max_header_bytes.max(8192))
        .max_headers(cfg.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(cfg.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);

    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    tokio::pin!(shutdown);
    loop {
        // At the connection limit, stop accepting: the kernel backlog holds new clients.
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let metrics = Arc::clone(app.metrics());
        metrics.connections(1);
        let svc = service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.handle(req, peer).await) }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            metrics.connections(-1);
            drop(permit);
        });
    }
    drop(listener);
    let open = graceful.count();
    tracing::info!(
        open_connections = open,
        "shutting down: draining in-flight requests"
    );
    match tokio::time::timeout(cfg.shutdown_grace, graceful.shutdown()).await {
        Ok(()) => tracing::info!("drained"),
        Err(_) => tracing::warn!("grace period over; closing the remaining connections"),
    }
}

/// Serves `GET /metrics` (Prometheus text) for `app` on the admin listener until `shutdown`.
pub async fn serve_admin(listener: TcpListener, app: App, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let app = app.clone();
        let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let app = app.clone();
            async move {
                let resp = if req.uri().path() == "/metrics" && req.method() == http::Method::GET {
                    let mut r = http::Response::new(crate::body::full(app.render_metrics()));
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static(
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        ),
                    );
                    r
                } else {
                    crate::error::ApiError::new(
                        http::StatusCode::NOT_FOUND,
                        "not_found",
                        "only /metrics here",
                    )
                    .into_response()
                };
                Ok::<_, Infallible>(resp)
            }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = int.recv() => tracing::info!("SIGINT received"),
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
