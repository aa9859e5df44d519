//! The binary: parse the command line, load and validate the configuration (exit 64 with one
//! line on error), set up logging, build the app, serve until SIGTERM/SIGINT, drain, exit 0.

// As in lib.rs: the connection future's layout, computed here from scratch, goes past rustc's
// default query depth.
#![recursion_limit = "256"]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use cognito_sidecar::app::settings::Derived;
use cognito_sidecar::clock::Clock;
use cognito_sidecar::config::{Config, Convention};
use cognito_sidecar::telemetry::logging;
use cognito_sidecar::{net as server, App};

/// mimalloc: per-request allocations (header maps, bodies, futures) are many and small; malloc
/// and free were ~5% of the instructions per request under glibc (callgrind). Its effect was
/// measured together with the other hot-path changes, not alone (docs/src/performance.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// sysexits.h EX_USAGE: the configuration is wrong.
const EX_USAGE: u8 = 64;

#[derive(Parser)]
#[command(
    version,
    about = "Authentication sidecar for apps behind AWS Cognito user pools"
)]
struct Cli {
    /// Configuration file (TOML); environment variables override it.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default).
    Run,
    /// Validate the configuration and print it, secrets redacted.
    CheckConfig,
    /// Exit 0 if the local sidecar is ready (GET <ready_path> on the listener), 1 otherwise.
    Healthcheck,
    /// Print the front proxy's forward-auth configuration for this configuration (nginx:
    /// nginx.conf; traefik: dynamic configuration; envoy: static bootstrap).
    ForwardAuthConfig {
        /// The front proxy; forward_auth.convention must name the same one.
        #[arg(value_enum)]
        proxy: FrontProxy,
        /// Where the front proxy itself listens.
        #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
    },
    /// Print the configuration reference (every key, its type, default, environment variable
    /// and meaning) as a markdown table; needs no configuration.
    ConfigReference {
        /// Put the table between the markers of this page instead (the book's
        /// docs/src/configuration.md).
        #[arg(long, value_name = "PAGE")]
        write: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum FrontProxy {
    Nginx,
    Traefik,
    Envoy,
}

impl From<FrontProxy> for Convention {
    fn from(p: FrontProxy) -> Self {
        match p {
            FrontProxy::Nginx => Convention::Nginx,
            FrontProxy::Traefik => Convention::Traefik,
            FrontProxy::Envoy => Convention::Envoy,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::ConfigReference { write }) = &cli.command {
        return config_reference(write.as_deref());
    }
    let path = match &cli.config {
        Some(p) if !p.exists() => {
            eprintln!("cognito-sidecar: config: file {} not found", p.display());
            return ExitCode::from(EX_USAGE);
        }
        Some(p) => p.clone(),
        None => PathBuf::from("proxy.toml"),
    };
    let (config, derived) = match Config::load(&path).and_then(|c| c.validate().map(|d| (c, d))) {
        Ok(both) => both,
        Err(e) => {
            eprintln!("cognito-sidecar: invalid configuration: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => {
            println!("{}", config.redacted_json());
            ExitCode::SUCCESS
        }
        Command::Healthcheck => healthcheck(&config),
        Command::ForwardAuthConfig { proxy, listen } => {
            match cognito_sidecar::app::front_config::render(proxy.into(), &config, listen) {
                Ok(text) => match std::io::stdout().lock().write_all(text.as_bytes()) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("cognito-sidecar: cannot write to stdout: {e}");
                        ExitCode::FAILURE
                    }
                },
                Err(e) => {
                    eprintln!("cognito-sidecar: cannot write the front proxy's configuration: {e}");
                    ExitCode::from(EX_USAGE)
                }
            }
        }
        Command::Run => run(config, derived),
        Command::ConfigReference { write } => config_reference(write.as_deref()),
    }
}

/// `config-reference`: the table on stdout, or spliced into `page` between its markers.
fn config_reference(page: Option<&std::path::Path>) -> ExitCode {
    use cognito_sidecar::config::reference;
    let table = reference::markdown();
    let Some(page) = page else {
        print!("{table}");
        return ExitCode::SUCCESS;
    };
    let written = std::fs::read_to_string(page)
        .map_err(|e| e.to_string())
        .and_then(|text| {
            reference::splice(&text, &table).ok_or_else(|| {
                format!(
                    "no {} ... {} lines in it",
                    reference::START_MARKER,
                    reference::END_MARKER
                )
            })
        })
        .and_then(|text| std::fs::write(page, text).map_err(|e| e.to_string()));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cognito-sidecar: config-reference: {}: {e}", page.display());
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config, derived: Derived) -> ExitCode {
    let _flush_logs_on_exit = logging::init(&config.log);
    // On one CPU (ECS tasks often get one vCPU; `taskset` in benchmarks) a current-thread
    // runtime does the same work without the work-stealing scheduler's synchronization.
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let runtime = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cognito-sidecar: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // The region validation derived (configured, or the pool id's prefix): no fallback.
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(derived.region.clone()))
            .load()
            .await;
        let app = match App::build_validated(&config, &derived, &sdk, Clock::system()) {
            Ok(app) => app,
            Err(e) => {
                eprintln!("cognito-sidecar: invalid configuration: {e}");
                return ExitCode::from(EX_USAGE);
            }
        };
        let listener = match tokio::net::TcpListener::bind(config.server.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "cognito-sidecar: cannot listen on {}: {e}",
                    config.server.listen
                );
                return ExitCode::FAILURE;
            }
        };
        let _refresher = app.start_background();
        let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        if config.admin.enabled {
            let addr = config.admin.listen;
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => {
                    tracing::info!(listen = %addr, "metrics on /metrics");
                    tokio::spawn(server::serve_admin(l, app.clone(), async {
                        let _ = admin_stopped.await;
                    }));
                }
                Err(e) => {
                    eprintln!("cognito-sidecar: cannot listen on {addr} (admin.listen): {e}");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            tracing::info!("admin listener off (admin.enabled = false): no /metrics");
        }
        // forward_auth.listen: the check alone, on a listener of its own (same limits and
        // drain as the main one), stopped when the main listener has drained.
        let (stop_check, check_stopped) = tokio::sync::watch::channel(false);
        let mut check_task = None;
        if let (true, Some(addr)) = (config.forward_auth.enabled, config.forward_auth.listen) {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => {
                    tracing::info!(listen = %addr, path = %config.forward_auth.path, "forward-auth check");
                    let checker = app.check_listener();
                    let server_cfg = config.server.clone();
                    let mut stopped = check_stopped;
                    check_task = Some(tokio::spawn(async move {
                        server::serve(l, checker, &server_cfg, async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        })
                        .await;
                    }));
                }
                Err(e) => {
                    eprintln!("cognito-sidecar: cannot listen on {addr} (forward_auth.listen): {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        tracing::info!(
            listen = %config.server.listen,
            upstream = %config.upstream.url,
            auth_flow = ?config.cognito.auth_flow,
            "cognito-sidecar listening"
        );
        let exiting = app.clone();
        server::serve(listener, app, &config.server, server::shutdown_signal()).await;
        let _ = stop_check.send(true);
        if let Some(t) = check_task {
            let _ = t.await;
        }
        // The last spans (the exporter's thread waits on its HTTP client: not on a worker).
        let _ = tokio::task::spawn_blocking(move || exiting.shutdown_traces()).await;
        let _ = stop_admin.send(());
        ExitCode::SUCCESS
    })
}

/// A dependency-free readiness probe for images without a shell or curl.
fn healthcheck(config: &Config) -> ExitCode {
    let mut addr = config.server.listen;
    if addr.ip().is_unspecified() {
        addr = SocketAddr::new(
            if addr.is_ipv4() {
                [127, 0, 0, 1].into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            },
            addr.port(),
        );
    }
    let probe = || -> std::io::Result<bool> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.set_write_timeout(Some(Duration::from_secs(2)))?;
        write!(
            s,
            "GET {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
            config.health.ready_path
        )?;
        let mut head = [0u8; 16];
        let n = s.read(&mut head)?;
        Ok(head[..n].starts_with(b"HTTP/1.1 200"))
    };
    match probe() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("cognito-sidecar: not ready");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("cognito-sidecar: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}
