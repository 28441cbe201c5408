//! The receiver role (`[receiver]`: the HTTP(S) endpoint reports are POSTed to, RFC 8460
//! §5.4) and the web listener (`[web]`: the JSON API over received reports) of `tlsrpt
//! serve`. Both share the store and the stop signal with the other roles.
//!
//! Start-up checks come first, so a mistake stops `serve` before anything listens: the
//! receiver's path and limits, the TLS files, and the web listener's token rule (a
//! non-loopback `[web] listen` needs `token_file`, `tlsrpt_receiver::api::check_listen`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tlsrpt_core::read::Limits;
use tlsrpt_receiver::api::{self, WebConfig as ApiConfig};
use tlsrpt_receiver::dkim::{DkimConfig, DkimVerifier};
use tlsrpt_receiver::http::{self, HttpConfig};
use tlsrpt_receiver::pipeline::Pipeline;
use tlsrpt_store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, ReceiverConfig, WebConfig};

/// The endpoint's settings from `[receiver]`; unset limits keep the receiver's defaults.
fn http_config(r: &ReceiverConfig) -> anyhow::Result<HttpConfig> {
    let d = HttpConfig::default();
    let cfg = HttpConfig {
        path: r.path.clone(),
        max_body_bytes: r.max_body_bytes.unwrap_or(d.max_body_bytes),
        request_timeout: r.request_timeout.unwrap_or(d.request_timeout),
        max_concurrent_requests: r
            .max_concurrent_requests
            .unwrap_or(d.max_concurrent_requests),
        rate_per_minute: r.requests_per_minute.unwrap_or(d.rate_per_minute),
        trusted_proxies: r.trusted_proxies.clone(),
        ..d
    };
    cfg.validate().context("[receiver]")?;
    Ok(cfg)
}

/// How often the top senders (REQUIREMENTS SEC-01) are re-read from the store.
const TOP_SENDERS_EVERY: Duration = Duration::from_secs(3600);

/// Loads the top senders from the store at start and hourly until `stop`, so the senders we
/// usually hear from keep their reserve when unfamiliar ones flood (`tlsrpt_receiver::senders`).
/// A failure is logged and retried at the next turn; until then the previous list stays.
fn refresh_top_senders(pipeline: Arc<Pipeline>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TOP_SENDERS_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            match pipeline.refresh_top_senders().await {
                Ok(n) => tracing::debug!(top_senders = n, "top senders reloaded"),
                Err(e) => tracing::warn!(error = %e, "reloading the top senders failed"),
            }
        }
    })
}

/// The API's settings from `[web]`: the token read from `token_file`, and the rule that a
/// non-loopback listener needs one.
pub(super) fn web_settings(w: &WebConfig) -> anyhow::Result<ApiConfig> {
    let token = match &w.token_file {
        Some(p) => Some(api::read_token_file(p)?),
        None => None,
    };
    let cfg = ApiConfig { token };
    api::check_listen(w.listen, &cfg)?;
    Ok(cfg)
}

/// Starts the receiver endpoint and the web listener when their sections are present; each
/// task ends when `stop` turns true, after requests in flight finish.
pub(super) async fn start(
    config: &Config,
    store: Arc<Store>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let mut tasks = Vec::new();
    let web = match &config.web {
        Some(w) => Some((w, web_settings(w)?)),
        None => None,
    };
    if let Some(r) = &config.receiver {
        let cfg = http_config(r)?;
        let mut limits = Limits::default();
        if let Some(n) = r.max_body_bytes {
            limits.max_input_bytes = n;
        }
        if let Some(n) = r.max_decompressed_bytes {
            limits.max_decompressed_bytes = n;
        }
        let dkim = DkimVerifier::new(&DkimConfig {
            policy: r.dkim,
            nameservers: r.nameservers.clone(),
            trusted_authserv_id: r.trusted_authserv_id.clone(),
            timeout: None,
        })
        .context("[receiver] DKIM verifier")?;
        let tls = match (&r.tls_cert, &r.tls_key) {
            (Some(c), Some(k)) => {
                // Fail at start, not at the first connection.
                http::load_tls(c, k).context("[receiver] tls_cert / tls_key")?;
                Some((c.clone(), k.clone()))
            }
            _ => None,
        };
        let pipeline = Arc::new(Pipeline::with_options(
            store.clone(),
            limits,
            dkim,
            tlsrpt_receiver::pipeline::PipelineOptions {
                sender_limits: r.sender_limits,
                our_domains: r.domains.clone(),
            },
        ));
        tasks.push(refresh_top_senders(pipeline.clone(), stop.clone()));
        let listener = tokio::net::TcpListener::bind(&r.listen)
            .await
            .with_context(|| format!("[receiver] listen = {:?}: cannot bind", r.listen))?;
        tracing::info!(
            listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| r.listen.clone()),
            path = %cfg.path,
            tls = tls.is_some(),
            dkim = ?r.dkim,
            sender_limits = ?r.sender_limits,
            trusted_proxies = ?r.trusted_proxies.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            "receiver listening"
        );
        // [receiver.smtp] and [receiver.imap] feed the same pipeline.
        tasks.extend(mail_intake(r, &pipeline, &stop).await?);
        let router = http::router(pipeline, cfg);
        tasks.push(spawn_server(
            "receiver",
            listener,
            router,
            tls,
            stop.clone(),
        ));
    }
    if let Some((w, api_cfg)) = web {
        let listener = tokio::net::TcpListener::bind(w.listen)
            .await
            .with_context(|| format!("[web] listen = {}: cannot bind", w.listen))?;
        tracing::info!(
            listen = %w.listen,
            token = api_cfg.token.is_some(),
            "web listener (JSON API /api/v1/reports) listening"
        );
        let router = api::api_router(store, api_cfg);
        tasks.push(spawn_server("web", listener, router, None, stop));
    }
    Ok(tasks)
}

/// Starts the SMTP/LMTP listener (`[receiver.smtp]`) and the IMAP poller
/// (`[receiver.imap]`) when configured. Bind and TLS errors stop `serve` at start.
async fn mail_intake(
    r: &ReceiverConfig,
    pipeline: &Pipeline,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    use tlsrpt_receiver::{imap, smtp};
    let mut tasks = Vec::new();
    if let Some(s) = &r.smtp {
        let tls = match (&s.tls_cert, &s.tls_key) {
            (Some(c), Some(k)) => {
                let cfg = http::load_tls(c, k).context("[receiver.smtp] tls_cert / tls_key")?;
                let mut cfg = (*cfg).clone();
                cfg.alpn_protocols.clear();
                Some(Arc::new(cfg))
            }
            _ => None,
        };
        let cfg = smtp::SmtpConfig {
            mode: s.mode,
            hostname: s.hostname.clone(),
            addresses: s.addresses.clone(),
            max_message_bytes: s.max_message_bytes,
            command_timeout: s.command_timeout,
            max_connections: s.max_connections,
            tls,
            ..smtp::SmtpConfig::new(Vec::new())
        };
        let listener = tokio::net::TcpListener::bind(&s.listen)
            .await
            .with_context(|| format!("[receiver.smtp] listen = {:?}: cannot bind", s.listen))?;
        tracing::info!(
            listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| s.listen.clone()),
            mode = ?s.mode,
            starttls = cfg.tls.is_some(),
            addresses = ?s.addresses,
            "receiver mail listener"
        );
        let pipeline = pipeline.clone();
        let mut stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = smtp::serve_smtp(listener, cfg, pipeline, shutdown).await {
                tracing::error!(role = "receiver.smtp", error = %e, "listener stopped");
            }
        }));
    }
    if let Some(i) = &r.imap {
        let cfg = imap::ImapConfig {
            port: i.port,
            tls: i.tls,
            folder: i.folder.clone(),
            processed: i.processed.clone(),
            rejected_folder: i.rejected_folder.clone(),
            interval: i.interval,
            max_message_bytes: i.max_message_bytes,
            ca_file: i.ca_file.clone(),
            ..imap::ImapConfig::new(&i.host, &i.user, i.password_file.clone())
        };
        tracing::info!(host = %i.host, port = i.port, folder = %i.folder, "receiver IMAP polling");
        let pipeline = pipeline.clone();
        let mut stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            imap::run(cfg, pipeline, shutdown).await;
        }));
    }
    Ok(tasks)
}

fn spawn_server(
    role: &'static str,
    listener: tokio::net::TcpListener,
    router: http::Router,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let opts = http::ServeOptions {
        grace: Duration::from_secs(10),
        ..http::ServeOptions::default()
    };
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = http::serve_with(listener, router, tls, opts, shutdown).await {
            tracing::error!(role, error = %e, "listener stopped");
        }
    })
}
