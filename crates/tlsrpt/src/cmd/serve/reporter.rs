//! The reporter role of `tlsrpt serve` (`[reporter] enabled = true`): builds each closed UTC
//! day's reports `delay` after midnight, spreads them over `window`, looks up `_smtp._tls` at
//! send time and delivers with retries (`tlsrpt_reporter::run::run_reporter`). It shares the
//! store and the stop signal with the other roles.

use std::sync::Arc;

use anyhow::Context;
use tlsrpt_net::resolver::Dns;
use tlsrpt_reporter::Deliverer;
use tlsrpt_reporter::run::{Reporter, run_reporter};
use tlsrpt_reporter::schedule::SystemClock;
use tlsrpt_store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;

/// Starts the reporter role when the config enables it; `None` otherwise. The task ends when
/// `stop` turns true.
pub(super) async fn start(
    config: &Config,
    store: Arc<Store>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    if !config.reporter.delivery.enabled {
        return Ok(None);
    }
    let mut opts = config.reporter.run_options()?;
    opts.retention_days = config.store.retention_days;
    let deliverer = Deliverer::new(&config.reporter.delivery_settings())
        .context("setting up report delivery ([reporter])")?;
    for (name, value) in deliverer.signer().dns_records() {
        tracing::info!(name, value, "publish this DKIM key record for report mail");
    }
    let dns = Dns::new(&config.reporter.delivery.nameservers)
        .context("setting up the resolver ([reporter] nameservers)")?;
    tracing::info!(
        delay = ?opts.build.delay,
        window = ?opts.build.window,
        send_all_success = opts.build.send_all_success,
        "reporter running"
    );
    let reporter = Reporter::new(store, deliverer, dns, opts);
    let shutdown = async move {
        let _ = stop.changed().await;
    };
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = run_reporter(reporter, Arc::new(SystemClock), shutdown).await {
            tracing::error!(error = %e, "reporter stopped");
        }
    })))
}
