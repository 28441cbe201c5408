//! `tlsrpt serve`: run the daemon roles the config file enables.
//!
//! Today that is the collector (DESIGN.md §Layers 3): it binds the libtlsrpt datagram socket,
//! counts sessions in memory and flushes them to the store about every `flush_interval`
//! (DATAGRAM.md §6). Alongside it, an hourly task prunes counters older than
//! `[store] retention_days` and, with `[receiver]`, received reports older than
//! `[receiver] retention_days` (REQUIREMENTS SEC-08). SIGTERM or SIGINT stops everything
//! gracefully: the collector flushes what it holds, removes its socket file, and the store is
//! closed (WAL checkpoint).
//!
//! `[receiver]` adds the HTTP(S) endpoint reports are POSTed to and `[web]` the JSON API over
//! received reports (module `receiver`); on SIGTERM they finish the requests in flight. With
//! no config file, the receiver (127.0.0.1:8460) and the web listener (127.0.0.1:8461) run
//! too.
//!
//! Logs go to stderr through `tracing` (`RUST_LOG` sets the level; default `info`): one line
//! at start with the socket and the store, errors as they happen, each flush at `debug`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tlsrpt_core::tally::Tally;
use tlsrpt_store::Store;
use tokio::sync::watch;

use crate::config::{CollectorConfig, Config};

/// The reporter role (`[reporter] enabled = true`).
mod receiver;
mod reporter;

/// Examples shown by `--help`.
pub const EXAMPLES: &str = "\
Examples:
  # No config file: collector on ./tlsrpt.sock, receiver on 127.0.0.1:8460/tlsrpt,
  # JSON API on 127.0.0.1:8461, store ./tlsrpt.db
  tlsrpt serve

  # The roles and paths of a config file, with per-flush debug logs
  RUST_LOG=debug tlsrpt serve --config /etc/tlsrpt/tlsrpt.toml

  # Then point Postfix at it (main.cf) and watch today's reports grow:
  #   smtp_tlsrpt_enable = yes
  #   smtp_tlsrpt_socket_name = run/tlsrpt/tlsrpt.sock
  tlsrpt report preview --day today --config /etc/tlsrpt/tlsrpt.toml";

/// The store as the collector's sink, logging each flush at `debug` (the collector itself
/// logs only errors and recoveries).
struct LoggedStore(Arc<Store>);

impl tlsrpt_collector::CounterSink for LoggedStore {
    async fn add_counters(&self, delta: &Tally) -> Result<(), String> {
        let started = std::time::Instant::now();
        let result = self.0.add_counters(delta).await.map_err(|e| e.to_string());
        if result.is_ok() {
            tracing::debug!(
                sessions = delta.sessions(),
                keys = delta.key_count(),
                ms = started.elapsed().as_millis() as u64,
                "flushed counters to the store"
            );
        }
        result
    }
}

/// How often old counters are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The config file. Without one, the collector runs on ./tlsrpt.sock, the receiver on
    /// 127.0.0.1:8460 and the JSON API on 127.0.0.1:8461, with the store ./tlsrpt.db.
    #[arg(long, value_name = "FILE", env = "TLSRPT_CONFIG")]
    config: Option<PathBuf>,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    limit_malloc_arenas();
    init_logging();
    let config = Config::load(args.config.as_deref())?;
    if config.collector.is_none()
        && config.receiver.is_none()
        && config.web.is_none()
        && !config.reporter.delivery.enabled
    {
        bail!(
            "nothing to serve: {} enables no role (add a [collector], [receiver] or [web] section)",
            config
                .source
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "the configuration".into())
        );
    }
    // The web listener's token rule is checked before anything is created.
    if let Some(w) = &config.web {
        receiver::web_settings(w)?;
    }
    let collector = config.collector.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(config, collector))?;
    Ok(ExitCode::SUCCESS)
}

/// Logs to stderr; `RUST_LOG` overrides the default `info` level. sqlx's per-statement
/// logs stay at `warn` unless `RUST_LOG` names sqlx, so `debug` shows our flushes, not SQL.
fn init_logging() {
    use std::io::IsTerminal;
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    let spec = if spec.contains("sqlx") {
        spec
    } else {
        format!("{spec},sqlx=warn")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Resolves when SIGTERM or SIGINT arrives.
async fn shutdown_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

fn today_utc() -> jiff::civil::Date {
    jiff::tz::TimeZone::UTC
        .to_datetime(jiff::Timestamp::now())
        .date()
}

async fn serve(config: Config, c: Option<CollectorConfig>) -> anyhow::Result<()> {
    let store = Arc::new(
        Store::open(&config.store.url)
            .await
            .context("opening the store")?,
    );
    let (stop_tx, stop_rx) = watch::channel(false);

    // Signals first, so a SIGTERM during start-up is not lost.
    let mut signals = tokio::spawn(shutdown_signal());

    // The reporter role, when enabled (set up before the socket is bound, so a bad
    // [reporter] section leaves nothing behind).
    let reporter_task = reporter::start(&config, store.clone(), stop_rx.clone()).await?;

    // The receiver endpoint and the web listener (JSON API), when enabled.
    let listeners = receiver::start(&config, store.clone(), stop_rx.clone()).await?;

    let (mut run, stats) = match &c {
        Some(c) => {
            let (run, stats) = start_collector(c, store.clone(), stop_rx.clone())?;
            (run, Some(stats))
        }
        None => {
            let mut stop = stop_rx.clone();
            let idle: tokio::task::JoinHandle<anyhow::Result<()>> = tokio::spawn(async move {
                let _ = stop.changed().await;
                Ok(())
            });
            (idle, None)
        }
    };
    tracing::info!(store = %store.describe(), "serving");

    // Hourly prune (also once at start) of days older than retention_days, and of received
    // reports older than [receiver] retention_days when the receiver role is on.
    let prune_store = store.clone();
    let retention = config.store.retention_days;
    let received_retention = config.receiver.as_ref().map(|r| r.retention_days);
    let mut prune_stop = stop_rx.clone();
    let pruner = tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = prune_stop.changed() => return,
            }
            match prune_store.prune(today_utc(), retention).await {
                Ok(0) => tracing::debug!("prune: nothing older than {retention} days"),
                Ok(n) => {
                    tracing::info!(rows = n, retention_days = retention, "pruned old counters")
                }
                Err(e) => tracing::error!(error = %e, "prune failed"),
            }
            if let Some(days) = received_retention {
                prune_received(&prune_store, days).await;
            }
        }
    });

    let result = tokio::select! {
        sig = &mut signals => {
            match sig {
                Ok(Ok(name)) => tracing::info!(signal = name, "shutting down: final flush"),
                Ok(Err(e)) => tracing::error!(error = %e, "signal handling failed; shutting down"),
                Err(e) => tracing::error!(error = %e, "signal task failed; shutting down"),
            }
            let _ = stop_tx.send(true);
            (&mut run).await
        }
        r = &mut run => {
            let _ = stop_tx.send(true);
            r
        }
    };
    signals.abort();
    let _ = pruner.await;
    if let Some(t) = reporter_task {
        let _ = t.await;
    }

    for t in listeners {
        let _ = t.await;
    }

    // The collector removes its socket file; make sure no stale one is left either way.
    if let Some(c) = &c
        && std::fs::symlink_metadata(&c.socket).is_ok()
    {
        let _ = std::fs::remove_file(&c.socket);
    }
    match Arc::try_unwrap(store) {
        Ok(s) => s.close().await,
        Err(_) => tracing::warn!("store still in use at shutdown; not closed explicitly"),
    }
    match result {
        Ok(Ok(())) => {
            if let Some(stats) = stats {
                let decoded = stats.decoded.load(std::sync::atomic::Ordering::Relaxed);
                let received = stats.received.load(std::sync::atomic::Ordering::Relaxed);
                tracing::info!(received, decoded, "stopped");
            } else {
                tracing::info!("stopped");
            }
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Err(e) => Err(anyhow::anyhow!("collector task failed: {e}")),
    }
}

/// Deletes received reports older than `[receiver] retention_days` (0: keep forever), with
/// one log line: `info` when reports were deleted, `debug` otherwise. Why: received reports
/// name third-party IP addresses and hosts, so they are kept no longer than the operator's
/// retention rule (REQUIREMENTS SEC-08). A failure is logged and retried at the next run.
async fn prune_received(store: &Store, retention_days: u32) {
    let Some(cutoff) = tlsrpt_store::received_cutoff(jiff::Timestamp::now(), retention_days) else {
        tracing::debug!(retention_days, "prune: received reports are kept forever");
        return;
    };
    let cutoff_text = tlsrpt_core::write::format_datetime(cutoff);
    match store.prune_received(cutoff).await {
        Ok(0) => tracing::debug!(
            retention_days,
            cutoff = %cutoff_text,
            "prune: no received report older than the retention"
        ),
        Ok(n) => tracing::info!(
            reports = n,
            retention_days,
            cutoff = %cutoff_text,
            "pruned received reports older than the retention"
        ),
        Err(e) => tracing::error!(error = %e, retention_days, "pruning received reports failed"),
    }
}

/// Binds the collector socket and runs the collector until `stop` turns true.
#[allow(clippy::type_complexity)]
fn start_collector(
    c: &CollectorConfig,
    store: Arc<Store>,
    stop_rx: watch::Receiver<bool>,
) -> anyhow::Result<(
    tokio::task::JoinHandle<anyhow::Result<()>>,
    std::sync::Arc<tlsrpt_collector::Stats>,
)> {
    let cc = tlsrpt_collector::CollectorConfig {
        socket: c.socket.clone(),
        socket_mode: c.socket_mode,
        socket_group: c.socket_group.clone(),
        flush_interval: c.flush_interval,
        dump_dir: c.dump_dir.clone(),
        ..tlsrpt_collector::CollectorConfig::default()
    };
    if let Some(dir) = &c.dump_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the dump folder {}", dir.display()))?;
    }
    let collector = tlsrpt_collector::bind(cc)
        .with_context(|| format!("binding the collector socket {}", c.socket.display()))?;
    tracing::info!(
        socket = %c.socket.display(),
        store = %store.describe(),
        flush_interval = ?c.flush_interval,
        "collector listening"
    );

    let mut collector_stop = stop_rx;
    let shutdown = async move {
        let _ = collector_stop.changed().await;
    };
    let stats = collector.stats();
    let sink = Arc::new(LoggedStore(store));
    let run = tokio::spawn(async move {
        collector
            .run(sink, shutdown)
            .await
            .map_err(|e| anyhow::Error::new(e).context("collector failed"))
    });
    Ok((run, stats))
}

/// Caps glibc's malloc at two arenas before any thread starts. By default every thread that
/// allocates (tokio workers, the receive thread, the writer, sqlx's SQLite worker) may get its
/// own arena, and each keeps freed memory: with 100,000 distinct counter keys in flight that
/// was the difference between 72 MB and 55 MB of resident memory for the daemon (issue 3's
/// bound is 64 MiB). The daemon's threads mostly hand buffers to one another, so two arenas
/// cost no measurable contention. `MALLOC_ARENA_MAX` in the environment still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator tuning; called before any thread is spawned.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
