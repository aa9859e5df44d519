//! The admin listener: `GET /metrics` (Prometheus text), nothing else.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::app::App;

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
                    let mut r = http::Response::new(crate::http::body::full(app.render_metrics()));
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static(
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        ),
                    );
                    r
                } else {
                    crate::error::ApiError::new(
                        crate::error::ErrorCode::NotFound,
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
