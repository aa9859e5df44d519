//! The floor for `deploy/bench.sh`: a bare hyper 1 pass-through proxy with the sidecar's
//! runtime, allocator, server and client settings, and nothing else (no auth, no header
//! rewriting, no log). `BARE=1 deploy/bench.sh` runs it in the shared harness (which sets
//! `BENCH_EXTRA_LISTEN` and `BENCH_UPSTREAM`); the sidecar's distance to it is its own work.
//!
//! Run as a bench target so it builds with the release profile; without those variables (as
//! under `cargo test --all-targets`) it exits at once.

use std::convert::Infallible;

use http::uri::{Authority, Scheme};
use http::{Request, Uri};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let (Ok(listen), Ok(upstream)) = (
        std::env::var("BENCH_EXTRA_LISTEN"),
        std::env::var("BENCH_UPSTREAM"),
    ) else {
        println!("bare_proxy: set BENCH_EXTRA_LISTEN and BENCH_UPSTREAM (deploy/bench.sh does)");
        return;
    };
    let upstream: Uri = upstream.parse().expect("BENCH_UPSTREAM is a URL");
    let authority: Authority = upstream.authority().expect("host:port").clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen).await.expect("bind");
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(http);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (client, authority) = (client.clone(), authority.clone());
            let svc = service_fn(move |req: Request<Incoming>| {
                let (client, authority) = (client.clone(), authority.clone());
                async move {
                    let (mut parts, body) = req.into_parts();
                    let mut uri = parts.uri.into_parts();
                    uri.scheme = Some(Scheme::HTTP);
                    uri.authority = Some(authority);
                    parts.uri = Uri::from_parts(uri).expect("uri");
                    let resp = match client.request(Request::from_parts(parts, body)).await {
                        Ok(r) => r.map(http_body_util::Either::Left),
                        Err(_) => http::Response::builder()
                            .status(502)
                            .body(http_body_util::Either::Right(http_body_util::Empty::new()))
                            .expect("response"),
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .writev(false)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}
