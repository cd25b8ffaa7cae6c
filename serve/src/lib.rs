//! `serve`: the champions and the insight tables over HTTP, for the game
//! master. Predictions are the numbers `predict` gives for the same rows (one
//! implementation of encoding and models, in the `model` crate); the service
//! follows the champion links on disk, so a promotion or a rollback reaches
//! it without a restart (`live`).
//!
//! Routes: `POST /v1/predict/{quality|csat|performance}`, `GET /v1/models`,
//! `GET /v1/insights[/<name>]`, `GET /healthz`, `GET /readyz`, `GET /metrics`.

mod api;
mod insights;
mod live;
mod metrics;
mod rows;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use contract::Layout;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

use crate::api::App;
use crate::live::Live;

/// The variable holding the bearer token clients must send.
pub use contract::secrets::SERVE_TOKEN as TOKEN_VAR;

/// Serves the champion models and the insight tables over HTTP.
#[derive(Debug, Parser)]
#[command(name = "serve", version, about, long_about = None)]
pub struct Args {
    /// Root of the data layout.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Address to listen on. Anything but loopback needs SERVE_TOKEN set.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Largest request body, in bytes (413 beyond), at least 1.
    #[arg(long, default_value_t = 4 * 1024 * 1024, value_parser = contract::at_least_one::<usize>)]
    pub max_body_bytes: usize,
    /// Most rows in one prediction request (413 beyond), at least 1.
    #[arg(long, default_value_t = 10_000, value_parser = contract::at_least_one::<usize>)]
    pub max_rows: usize,
    /// Longest a request may take, body included, in seconds (408 beyond).
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// How often to look for a new champion on disk, in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub reload_every: f64,
    /// Worker threads answering requests (default: one per core).
    #[arg(long, value_parser = contract::at_least_one::<usize>)]
    pub threads: Option<usize>,
}

fn seconds(name: &str, value: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("--{name} must be a positive number of seconds, not {value}"))
}

/// The token from the environment; blank counts as unset.
fn token() -> Option<String> {
    std::env::var(TOKEN_VAR)
        .ok()
        .filter(|t| !t.trim().is_empty())
}

pub fn run(args: &Args) -> Result<()> {
    let token = token();
    if !args.bind.ip().is_loopback() && token.is_none() {
        bail!(
            "refusing to listen on {} without {TOKEN_VAR}: set {TOKEN_VAR} so clients must send \
             `Authorization: Bearer <token>`, or bind to 127.0.0.1",
            args.bind
        );
    }
    let timeout = seconds("timeout", args.timeout)?;
    let reload = seconds("reload-every", args.reload_every)?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

    if !args.data.is_dir() {
        // Not an error: serve may start before the first `make pipeline`.
        eprintln!(
            "serve: {} does not exist yet (a typo in --data?); each model is served once train makes it",
            args.data.display()
        );
    }
    let live = Arc::new(Live::new(Layout::new(&args.data)));
    for line in live.refresh() {
        eprintln!("{line}");
    }
    for dataset in contract::Dataset::ALL {
        if live.current(dataset).is_none()
            && let Some(why) = live.note(dataset).missing
        {
            eprintln!("serve: {dataset}: not served yet: {why}");
        }
    }
    live::watch(live.clone(), reload);
    let app = Arc::new(App {
        live,
        metrics: metrics::Metrics::new(),
        token,
        max_body: args.max_body_bytes,
        max_rows: args.max_rows,
        timeout,
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("serve-worker")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(listen(app, args.bind, timeout))
}

async fn listen(app: Arc<App>, bind: SocketAddr, timeout: Duration) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let local = listener.local_addr()?;
    eprintln!(
        "serve: listening on http://{local} ({}); token {}",
        app.live.summary(),
        if app.token.is_some() {
            "required"
        } else {
            "not required"
        }
    );
    let router = api::router(app);
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(shutdown_signal());
    let signal = loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, go on.
                        eprintln!("serve: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(timeout)
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router.clone()));
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            name = &mut stop => break name,
        }
    };
    eprintln!("serve: {signal}: finishing the requests in flight");
    tokio::select! {
        () = graceful.shutdown() => eprintln!("serve: stopped"),
        () = tokio::time::sleep(timeout) => eprintln!("serve: stopped; connections still open after {timeout:?} were closed"),
    }
    Ok(())
}

/// Resolves with the signal's name on SIGTERM or Ctrl-C.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "interrupted",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "interrupted"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "interrupted"
    }
}
