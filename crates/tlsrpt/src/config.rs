//! The TOML configuration file (reference: docs/config.md).
//!
//! One file configures every role of `tlsrpt serve` and the `report` commands. Unknown keys
//! are errors (`deny_unknown_fields`), so a typo never silently falls back to a default.
//! Relative paths (the socket, the dump folder, a `sqlite://` store) resolve against the
//! folder holding the config file, so a config works the same from any working directory
//! (DESIGN.md, CLI conventions). Without a config file, every path is relative to the current
//! directory and the defaults below apply.
//!
//! Parsing is two steps: serde reads the file into `Raw*` structs that mirror the TOML
//! exactly; [`Config::from_toml`] then validates and resolves them into [`Config`], whose
//! values are ready to use (durations parsed, modes decoded, paths absolute where the file
//! gave a base). Errors name the file, the key and the problem.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

mod reporter;
pub use reporter::ReporterDelivery;

/// Default store: a SQLite file next to the config file (or in the current directory).
pub const DEFAULT_STORE_URL: &str = "sqlite://./tlsrpt.db";
/// Default retention of collected counters, in days.
pub const DEFAULT_RETENTION_DAYS: u32 = 14;
/// Default collector socket.
pub const DEFAULT_SOCKET: &str = "./tlsrpt.sock";
/// Default flush interval of the collector's in-memory counters to the store.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Retention below this could delete a day before its report was sent or retried
/// (REQUIREMENTS RPT-21: keep raw data at least 48 h).
pub const MIN_RETENTION_DAYS: u32 = tlsrpt_store::MIN_KEEP_DAYS;
/// Largest accepted flush interval: longer intervals risk more counters in a crash.
pub const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(3600);
/// Config files are small; refuse anything larger before parsing.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The resolved configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file this came from (`None`: built-in defaults).
    pub source: Option<PathBuf>,
    /// `[store]`
    pub store: StoreConfig,
    /// `[collector]`; `None` when the file has no such section (role disabled).
    pub collector: Option<CollectorConfig>,
    /// `[reporter]`
    pub reporter: ReporterConfig,
    /// `[receiver]`; `None` when the file has no such section (role disabled).
    pub receiver: Option<ReceiverConfig>,
    /// `[web]`; `None` when the file has no such section (role disabled).
    pub web: Option<WebConfig>,
}

/// Default `[web] listen`: loopback, where the API needs no token.
pub const DEFAULT_WEB_LISTEN: &str = "127.0.0.1:8461";

/// `[web]`: the web listener (the JSON API, `tlsrpt_receiver::api`).
#[derive(Clone, Debug, PartialEq)]
pub struct WebConfig {
    /// `listen`: address of the web listener.
    pub listen: std::net::SocketAddr,
    /// `token_file`: file whose first line is the API's bearer token; required when `listen`
    /// is not a loopback address (checked when `serve` starts, so the file may be created
    /// after the config is written).
    pub token_file: Option<PathBuf>,
}

/// Default `[receiver] listen`: loopback, behind a TLS-terminating proxy or with `tls_cert`.
pub const DEFAULT_RECEIVER_LISTEN: &str = "127.0.0.1:8460";
/// Default `[receiver] path` of the HTTPS endpoint (the rua's path).
pub const DEFAULT_RECEIVER_PATH: &str = "/tlsrpt";
/// Default `[receiver] maildir_interval`: how often `tlsrpt ingest --maildir --watch` looks.
pub const DEFAULT_MAILDIR_INTERVAL: Duration = Duration::from_secs(10);
/// Default `[receiver] retention_days`: received reports name third-party IP addresses, so
/// they are not kept forever (REQUIREMENTS SEC-08). 400 days is a year plus a month's margin,
/// so this month can still be compared with the same month last year; 0 keeps them forever.
pub const DEFAULT_RECEIVER_RETENTION_DAYS: u32 = 400;

/// `[receiver]`: the receiving side (the HTTPS endpoint of `tlsrpt serve` and `tlsrpt
/// ingest`). Limits left unset keep the receiver's built-in defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceiverConfig {
    /// `listen`: address of the HTTPS endpoint.
    pub listen: String,
    /// `path`: the POST path.
    pub path: String,
    /// `dkim`: `require` (default), `prefer` or `off` (RFC 8460 §3).
    pub dkim: tlsrpt_receiver::dkim::DkimPolicy,
    /// `nameservers`: DNS servers for DKIM key lookups (`ip:port`); empty: the system's.
    pub nameservers: Vec<std::net::SocketAddr>,
    /// `trusted_authserv_id`: trust `dkim=pass` in Authentication-Results added by this host.
    pub trusted_authserv_id: Option<String>,
    /// `tls_cert`: PEM certificate chain; with `tls_key`, the endpoint speaks TLS itself.
    pub tls_cert: Option<PathBuf>,
    /// `tls_key`: PEM private key.
    pub tls_key: Option<PathBuf>,
    /// `max_body_bytes`: largest request body / message as received.
    pub max_body_bytes: Option<usize>,
    /// `max_decompressed_bytes`: largest gunzipped report.
    pub max_decompressed_bytes: Option<usize>,
    /// `request_timeout`: whole-request time limit.
    pub request_timeout: Option<Duration>,
    /// `max_concurrent_requests`.
    pub max_concurrent_requests: Option<usize>,
    /// `requests_per_minute`: per client IP.
    pub requests_per_minute: Option<u32>,
    /// `maildir_interval`: polling interval of `tlsrpt ingest --maildir --watch`.
    pub maildir_interval: Duration,
    /// `retention_days`: received reports whose date range ended (or which arrived) more
    /// than this many days ago are deleted by `serve`'s hourly prune; 0 keeps them forever
    /// (REQUIREMENTS SEC-08).
    pub retention_days: u32,
    /// `trusted_proxies`: reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For`
    /// names the client for the per-client rate limit (REQUIREMENTS SEC-01); empty: the
    /// header is ignored.
    pub trusted_proxies: Vec<tlsrpt_receiver::http::IpNet>,
    /// `reports_per_minute_per_submitter`, `reports_per_minute_per_dkim_domain`,
    /// `new_sender_reports_per_minute`, `top_senders`: the sender limits of `serve`'s
    /// intakes (REQUIREMENTS SEC-01, `tlsrpt_receiver::senders`); a rate of 0 is off.
    pub sender_limits: tlsrpt_receiver::senders::SenderLimits,
    /// `domains`: our domains (and our MX hosts' domains), lower-case A-labels; a report
    /// covering none of them is kept as rejected (REQUIREMENTS RCV-10). Empty: no check.
    pub domains: Vec<String>,
    /// `[receiver.smtp]`: the SMTP/LMTP listener for report mail; `None` when absent.
    pub smtp: Option<ReceiverSmtpConfig>,
    /// `[receiver.imap]`: IMAP polling of a report mailbox; `None` when absent.
    pub imap: Option<ReceiverImapConfig>,
}

/// Default `[receiver.smtp] listen`: loopback, for an MTA that hands report mail over
/// (LMTP or SMTP); a public port 25 is a deliberate choice.
pub const DEFAULT_RECEIVER_SMTP_LISTEN: &str = "127.0.0.1:2525";

/// `[receiver.smtp]`: the SMTP/LMTP listener (`tlsrpt_receiver::smtp`).
#[derive(Clone, Debug, PartialEq)]
pub struct ReceiverSmtpConfig {
    /// `listen`: address to bind.
    pub listen: String,
    /// `mode`: `smtp` (default) or `lmtp`.
    pub mode: tlsrpt_receiver::smtp::SmtpMode,
    /// `hostname`: the name in the greeting; default `localhost`.
    pub hostname: String,
    /// `addresses`: the report addresses accepted in `RCPT TO` (required, not empty).
    pub addresses: Vec<String>,
    /// `max_message_bytes`: `SIZE`; default 10 MiB.
    pub max_message_bytes: usize,
    /// `command_timeout`: wait for the client; default 60 s.
    pub command_timeout: Duration,
    /// `max_connections`: sessions at once; default 64.
    pub max_connections: usize,
    /// `tls_cert`: PEM chain for STARTTLS (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// `tls_key`: PEM key for STARTTLS.
    pub tls_key: Option<PathBuf>,
}

/// `[receiver.imap]`: IMAP polling (`tlsrpt_receiver::imap`).
#[derive(Clone, Debug, PartialEq)]
pub struct ReceiverImapConfig {
    /// `host`.
    pub host: String,
    /// `port`; default 993 with `tls = "implicit"`, 143 otherwise.
    pub port: u16,
    /// `tls`: `implicit` (default), `starttls` or `none` (loopback tests only).
    pub tls: tlsrpt_receiver::imap::ImapTls,
    /// `user`.
    pub user: String,
    /// `password_file` (required; the password never appears in the config).
    pub password_file: PathBuf,
    /// `folder`; default `INBOX`.
    pub folder: String,
    /// `processed`: `seen` (default), `move:Folder` or `delete`.
    pub processed: tlsrpt_receiver::imap::Processed,
    /// `rejected_folder`: where refused mail is moved; unset: flagged in place.
    pub rejected_folder: Option<String>,
    /// `interval`: poll interval; default 5 minutes.
    pub interval: Duration,
    /// `max_message_bytes`: larger mail is not downloaded; default 10 MiB.
    pub max_message_bytes: usize,
    /// `ca_file`: extra trust anchors (PEM).
    pub ca_file: Option<PathBuf>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawReceiverSmtp {
    listen: Option<String>,
    mode: Option<String>,
    hostname: Option<String>,
    #[serde(default)]
    addresses: Vec<String>,
    max_message_bytes: Option<usize>,
    command_timeout: Option<String>,
    max_connections: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawReceiverImap {
    host: Option<String>,
    port: Option<u16>,
    tls: Option<String>,
    user: Option<String>,
    password_file: Option<PathBuf>,
    folder: Option<String>,
    processed: Option<String>,
    rejected_folder: Option<String>,
    interval: Option<String>,
    max_message_bytes: Option<usize>,
    ca_file: Option<PathBuf>,
}

/// Validates `[receiver.smtp]`.
fn receiver_smtp(r: RawReceiverSmtp, base: &Path) -> anyhow::Result<ReceiverSmtpConfig> {
    let addresses: Vec<String> = r
        .addresses
        .iter()
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect();
    if addresses.is_empty() {
        bail!("[receiver.smtp] addresses: list the report addresses to accept mail for");
    }
    if let Some(a) = addresses.iter().find(|a| !a.contains('@')) {
        bail!("[receiver.smtp] addresses: {a:?} is not an address like \"tlsrpt@example.com\"");
    }
    if r.tls_cert.is_some() != r.tls_key.is_some() {
        bail!("[receiver.smtp] tls_cert and tls_key must be given together");
    }
    let d = tlsrpt_receiver::smtp::SmtpConfig::new(Vec::new());
    let positive = |key: &str, v: Option<usize>, def: usize| -> anyhow::Result<usize> {
        match v {
            Some(0) => bail!("[receiver.smtp] {key}: must be more than 0"),
            v => Ok(v.unwrap_or(def)),
        }
    };
    Ok(ReceiverSmtpConfig {
        listen: r
            .listen
            .unwrap_or_else(|| DEFAULT_RECEIVER_SMTP_LISTEN.to_owned()),
        mode: match r.mode.as_deref() {
            None => Default::default(),
            Some(m) => m
                .parse()
                .map_err(|e: String| anyhow::anyhow!("[receiver.smtp] {e}"))?,
        },
        hostname: r.hostname.unwrap_or(d.hostname),
        addresses,
        max_message_bytes: positive(
            "max_message_bytes",
            r.max_message_bytes,
            d.max_message_bytes,
        )?,
        command_timeout: r
            .command_timeout
            .as_deref()
            .map(parse_interval)
            .transpose()
            .context("[receiver.smtp] command_timeout")?
            .unwrap_or(d.command_timeout),
        max_connections: positive("max_connections", r.max_connections, d.max_connections)?,
        tls_cert: r.tls_cert.map(|p| join(base, &p)),
        tls_key: r.tls_key.map(|p| join(base, &p)),
    })
}

/// Validates `[receiver.imap]`.
fn receiver_imap(r: RawReceiverImap, base: &Path) -> anyhow::Result<ReceiverImapConfig> {
    use tlsrpt_receiver::imap::{self, ImapTls};
    let host = match r.host {
        Some(h) if !h.trim().is_empty() => h.trim().to_owned(),
        _ => bail!("[receiver.imap] host: required"),
    };
    let user = match r.user {
        Some(u) if !u.is_empty() => u,
        _ => bail!("[receiver.imap] user: required"),
    };
    let Some(password_file) = r.password_file else {
        bail!("[receiver.imap] password_file: required (a file holding the password)");
    };
    let tls: ImapTls = match r.tls.as_deref() {
        None => ImapTls::default(),
        Some(t) => t
            .parse()
            .map_err(|e: String| anyhow::anyhow!("[receiver.imap] {e}"))?,
    };
    // The password would cross the network in clear: only on loopback (tests, a local
    // Dovecot).
    if tls == ImapTls::None && !matches!(host.as_str(), "127.0.0.1" | "::1" | "localhost") {
        bail!("[receiver.imap] tls = \"none\" is only allowed with a loopback host, not {host:?}");
    }
    let processed = match r.processed.as_deref() {
        None => imap::Processed::default(),
        Some(p) => p
            .parse()
            .map_err(|e: String| anyhow::anyhow!("[receiver.imap] {e}"))?,
    };
    if r.max_message_bytes == Some(0) {
        bail!("[receiver.imap] max_message_bytes: must be more than 0");
    }
    Ok(ReceiverImapConfig {
        host,
        port: match r.port {
            Some(0) => bail!("[receiver.imap] port: must be more than 0"),
            Some(p) => p,
            None if tls == ImapTls::Implicit => 993,
            None => 143,
        },
        tls,
        user,
        password_file: join(base, &password_file),
        folder: r.folder.unwrap_or_else(|| "INBOX".to_owned()),
        processed,
        rejected_folder: r.rejected_folder.filter(|f| !f.trim().is_empty()),
        interval: r
            .interval
            .as_deref()
            .map(parse_interval)
            .transpose()
            .context("[receiver.imap] interval")?
            .unwrap_or(imap::DEFAULT_INTERVAL),
        max_message_bytes: r
            .max_message_bytes
            .unwrap_or(imap::DEFAULT_MAX_MESSAGE_BYTES),
        ca_file: r.ca_file.map(|p| join(base, &p)),
    })
}

/// `[store]`
#[derive(Clone, Debug, PartialEq)]
pub struct StoreConfig {
    /// Database URL, with a relative `sqlite://` path already resolved.
    pub url: String,
    /// Full days of counters kept before today; at least [`MIN_RETENTION_DAYS`].
    pub retention_days: u32,
}

/// `[collector]`
#[derive(Clone, Debug, PartialEq)]
pub struct CollectorConfig {
    /// The Unix datagram socket the MTA's libtlsrpt sends to (DATAGRAM.md §1).
    pub socket: PathBuf,
    /// Permission bits set on the socket after bind, e.g. 0o660.
    pub socket_mode: Option<u32>,
    /// Group given to the socket after bind, e.g. `postfix`.
    pub socket_group: Option<String>,
    /// How often in-memory counters are flushed to the store.
    pub flush_interval: Duration,
    /// Where datagrams that fail to decode are written for inspection (`None`: not kept).
    pub dump_dir: Option<PathBuf>,
}

/// `[reporter]`
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReporterConfig {
    /// `organization-name` of the reports we send (RFC 8460 §4.4).
    pub organization_name: Option<String>,
    /// `contact-info` of the reports we send (RFC 8460 §4.4).
    pub contact_info: Option<String>,
    /// The delivery keys (see `config/reporter.rs`).
    pub delivery: ReporterDelivery,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    store: RawStore,
    collector: Option<RawCollector>,
    #[serde(default)]
    reporter: RawReporter,
    receiver: Option<RawReceiver>,
    web: Option<RawWeb>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    listen: Option<String>,
    token_file: Option<PathBuf>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawReceiver {
    listen: Option<String>,
    path: Option<String>,
    dkim: Option<String>,
    #[serde(default)]
    nameservers: Vec<String>,
    trusted_authserv_id: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_body_bytes: Option<usize>,
    max_decompressed_bytes: Option<usize>,
    request_timeout: Option<String>,
    max_concurrent_requests: Option<usize>,
    requests_per_minute: Option<u32>,
    maildir_interval: Option<String>,
    retention_days: Option<u32>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    reports_per_minute_per_submitter: Option<u32>,
    reports_per_minute_per_dkim_domain: Option<u32>,
    new_sender_reports_per_minute: Option<u32>,
    top_senders: Option<usize>,
    #[serde(default)]
    domains: Vec<String>,
    smtp: Option<RawReceiverSmtp>,
    imap: Option<RawReceiverImap>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: Option<String>,
    retention_days: Option<u32>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawCollector {
    socket: Option<PathBuf>,
    socket_mode: Option<String>,
    socket_group: Option<String>,
    flush_interval: Option<String>,
    dump_dir: Option<PathBuf>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawReporter {
    organization_name: Option<String>,
    contact_info: Option<String>,
    // Delivery keys, resolved in config/reporter.rs.
    enabled: Option<bool>,
    from: Option<String>,
    dkim: Option<Vec<reporter::RawDkim>>,
    smtp_relay: Option<String>,
    smtp_starttls: Option<tlsrpt_reporter::deliver::StartTls>,
    smtp_username: Option<String>,
    smtp_password_file: Option<PathBuf>,
    nameservers: Option<Vec<std::net::SocketAddr>>,
    allow_private_targets: Option<bool>,
    extra_ca: Option<PathBuf>,
    delay: Option<String>,
    window: Option<String>,
    send_all_success: Option<bool>,
    use_collected_record: Option<bool>,
    rules: Option<Vec<tlsrpt_reporter::policy::DestinationRule>>,
    claim_lease: Option<String>,
    omit_fields: Option<Vec<String>>,
    accept_invalid_certs: Option<bool>,
}

impl Config {
    /// Loads `path`, or the built-in defaults when `path` is `None` (collector enabled, store
    /// and socket in the current directory).
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let Some(path) = path else {
            return Ok(Config::defaults());
        };
        let shown = path.display();
        let meta = std::fs::metadata(path).with_context(|| format!("config file {shown}"))?;
        if meta.len() > MAX_CONFIG_BYTES {
            bail!(
                "config file {shown}: {} bytes, more than the {MAX_CONFIG_BYTES}-byte limit",
                meta.len()
            );
        }
        let text = std::fs::read_to_string(path).with_context(|| format!("config file {shown}"))?;
        // Relative paths resolve against the file's folder, made absolute so that a later
        // chdir (or a socket path handed to a child) does not change their meaning.
        let dir = path.parent().unwrap_or(Path::new("."));
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let base = std::path::absolute(dir).with_context(|| format!("config file {shown}"))?;
        let mut cfg =
            Config::from_toml(&text, &base).with_context(|| format!("config file {shown}"))?;
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// The configuration used without a file: every role's defaults, relative to the
    /// current directory.
    pub fn defaults() -> Config {
        Config {
            source: None,
            store: StoreConfig {
                url: DEFAULT_STORE_URL.to_owned(),
                retention_days: DEFAULT_RETENTION_DAYS,
            },
            collector: Some(CollectorConfig {
                socket: PathBuf::from(DEFAULT_SOCKET),
                socket_mode: None,
                socket_group: None,
                flush_interval: DEFAULT_FLUSH_INTERVAL,
                dump_dir: None,
            }),
            reporter: ReporterConfig::default(),
            // DESIGN.md: with no config file, serve runs the collector, the receiver and the
            // web listener on local defaults (loopback only). Neither can fail on defaults.
            receiver: receiver(RawReceiver::default(), Path::new(".")).ok(),
            web: web(RawWeb::default(), Path::new(".")).ok(),
        }
    }

    /// Parses and validates TOML text; relative paths are joined to `base`.
    pub fn from_toml(text: &str, base: &Path) -> anyhow::Result<Config> {
        // toml's message names the key and the line (e.g. "unknown field `sockt`").
        let raw: RawConfig = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;

        let url = raw
            .store
            .url
            .unwrap_or_else(|| DEFAULT_STORE_URL.to_owned());
        let url = resolve_store_url(&url, base);
        let retention_days = raw.store.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS);
        if retention_days < MIN_RETENTION_DAYS {
            bail!(
                "[store] retention_days = {retention_days}: must be at least {MIN_RETENTION_DAYS} \
                 (a day must be kept 48 h for its report to be sent and retried)"
            );
        }

        let collector = match raw.collector {
            None => None,
            Some(c) => Some(CollectorConfig {
                socket: join(
                    base,
                    &c.socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
                ),
                socket_mode: c
                    .socket_mode
                    .as_deref()
                    .map(parse_mode)
                    .transpose()
                    .context("[collector] socket_mode")?,
                socket_group: match c.socket_group {
                    Some(g) if g.trim().is_empty() => {
                        bail!("[collector] socket_group: must not be empty")
                    }
                    g => g,
                },
                flush_interval: c
                    .flush_interval
                    .as_deref()
                    .map(parse_interval)
                    .transpose()
                    .context("[collector] flush_interval")?
                    .unwrap_or(DEFAULT_FLUSH_INTERVAL),
                dump_dir: c.dump_dir.map(|d| join(base, &d)),
            }),
        };
        if let Some(c) = &collector {
            // DATAGRAM.md §1: sun_path holds at most 107 bytes on Linux.
            let len = c.socket.as_os_str().len();
            if len > 107 {
                bail!(
                    "[collector] socket: {} is {len} bytes long; a Unix socket path must be at \
                     most 107 bytes",
                    c.socket.display()
                );
            }
        }

        let nonempty = |key: &str, v: Option<String>| -> anyhow::Result<Option<String>> {
            match v {
                Some(s) if s.trim().is_empty() => bail!("[reporter] {key}: must not be empty"),
                v => Ok(v),
            }
        };
        let delivery = reporter::resolve(&raw.reporter, base)?;
        let reporter = ReporterConfig {
            organization_name: nonempty("organization_name", raw.reporter.organization_name)?,
            contact_info: nonempty("contact_info", raw.reporter.contact_info)?,
            delivery,
        };

        Ok(Config {
            source: None,
            store: StoreConfig {
                url,
                retention_days,
            },
            collector,
            reporter,
            receiver: raw.receiver.map(|r| receiver(r, base)).transpose()?,
            web: raw.web.map(|w| web(w, base)).transpose()?,
        })
    }
}

/// Validates `[web]`; a relative `token_file` is joined to `base`.
fn web(w: RawWeb, base: &Path) -> anyhow::Result<WebConfig> {
    let listen = w.listen.as_deref().unwrap_or(DEFAULT_WEB_LISTEN);
    let listen = listen.parse().with_context(|| {
        format!("[web] listen = {listen:?}: not an address like \"127.0.0.1:8461\"")
    })?;
    Ok(WebConfig {
        listen,
        token_file: w.token_file.map(|p| join(base, &p)),
    })
}

/// Validates `[receiver]`; relative TLS file paths are joined to `base`.
fn receiver(r: RawReceiver, base: &Path) -> anyhow::Result<ReceiverConfig> {
    let path = r.path.unwrap_or_else(|| DEFAULT_RECEIVER_PATH.to_owned());
    if !path.starts_with('/') {
        bail!("[receiver] path = {path:?}: must start with '/'");
    }
    let dkim = match r.dkim.as_deref() {
        None => tlsrpt_receiver::dkim::DkimPolicy::default(),
        Some(d) => d
            .parse()
            .map_err(|e: String| anyhow::anyhow!("[receiver] {e}"))?,
    };
    let nameservers = r
        .nameservers
        .iter()
        .map(|n| {
            n.parse::<std::net::SocketAddr>()
                .or_else(|_| n.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
                .with_context(|| {
                    format!("[receiver] nameservers: {n:?} is not an address like \"127.0.0.1:53\"")
                })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if r.tls_cert.is_some() != r.tls_key.is_some() {
        bail!("[receiver] tls_cert and tls_key must be given together");
    }
    let positive = |key: &str, v: Option<usize>| -> anyhow::Result<Option<usize>> {
        match v {
            Some(0) => bail!("[receiver] {key}: must be more than 0"),
            v => Ok(v),
        }
    };
    if r.requests_per_minute == Some(0) {
        bail!("[receiver] requests_per_minute: must be more than 0");
    }
    // Refused at load, not at the first request: a typo here would silently leave every
    // client behind the proxy in one rate-limit bucket (SEC-01).
    let trusted_proxies = r
        .trusted_proxies
        .iter()
        .map(|p| {
            tlsrpt_receiver::http::parse_trusted_proxy(p)
                .map_err(|e| anyhow::anyhow!("[receiver] trusted_proxies: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let domains = r
        .domains
        .iter()
        .map(|d| {
            tlsrpt_core::domain::normalize(d)
                .map_err(|e| anyhow::anyhow!("[receiver] domains: {d:?}: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(ReceiverConfig {
        domains,
        listen: r
            .listen
            .unwrap_or_else(|| DEFAULT_RECEIVER_LISTEN.to_owned()),
        path,
        dkim,
        nameservers,
        trusted_authserv_id: match r.trusted_authserv_id {
            Some(t) if t.trim().is_empty() => {
                bail!("[receiver] trusted_authserv_id: must not be empty")
            }
            t => t,
        },
        tls_cert: r.tls_cert.map(|p| join(base, &p)),
        tls_key: r.tls_key.map(|p| join(base, &p)),
        max_body_bytes: positive("max_body_bytes", r.max_body_bytes)?,
        max_decompressed_bytes: positive("max_decompressed_bytes", r.max_decompressed_bytes)?,
        request_timeout: r
            .request_timeout
            .as_deref()
            .map(parse_interval)
            .transpose()
            .context("[receiver] request_timeout")?,
        max_concurrent_requests: positive("max_concurrent_requests", r.max_concurrent_requests)?,
        requests_per_minute: r.requests_per_minute,
        smtp: r.smtp.map(|s| receiver_smtp(s, base)).transpose()?,
        imap: r.imap.map(|i| receiver_imap(i, base)).transpose()?,
        maildir_interval: r
            .maildir_interval
            .as_deref()
            .map(parse_interval)
            .transpose()
            .context("[receiver] maildir_interval")?
            .unwrap_or(DEFAULT_MAILDIR_INTERVAL),
        retention_days: r.retention_days.unwrap_or(DEFAULT_RECEIVER_RETENTION_DAYS),
        trusted_proxies,
        sender_limits: {
            let d = tlsrpt_receiver::senders::SenderLimits::default();
            tlsrpt_receiver::senders::SenderLimits {
                per_submitter_per_minute: r
                    .reports_per_minute_per_submitter
                    .unwrap_or(d.per_submitter_per_minute),
                per_dkim_domain_per_minute: r
                    .reports_per_minute_per_dkim_domain
                    .unwrap_or(d.per_dkim_domain_per_minute),
                new_senders_per_minute: r
                    .new_sender_reports_per_minute
                    .unwrap_or(d.new_senders_per_minute),
                top_senders: r.top_senders.unwrap_or(d.top_senders),
            }
        },
    })
}

/// `base/p` without `.` components (`./tlsrpt.sock` → `BASE/tlsrpt.sock`); absolute `p` wins.
fn join(base: &Path, p: &Path) -> PathBuf {
    base.join(p)
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// `"0660"` → `0o660`. Octal digits only, at most `0o7777`.
fn parse_mode(s: &str) -> anyhow::Result<u32> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        bail!("{s:?} is not an octal file mode like \"0660\"");
    }
    u32::from_str_radix(digits, 8).with_context(|| format!("{s:?} is not an octal file mode"))
}

/// `"1s"`, `"500ms"`, `"2 seconds"`, `"PT1S"` → a positive duration up to an hour.
fn parse_interval(s: &str) -> anyhow::Result<Duration> {
    let sd: jiff::SignedDuration = s
        .parse()
        .with_context(|| format!("{s:?} is not a duration like \"1s\" or \"500ms\""))?;
    let d = Duration::try_from(sd).with_context(|| format!("{s:?} is negative"))?;
    if d.is_zero() || d > MAX_FLUSH_INTERVAL {
        bail!("{s:?} must be more than 0 and at most 1 hour");
    }
    Ok(d)
}

/// Resolves a relative `sqlite:` path against `base`; other URLs are returned unchanged.
fn resolve_store_url(url: &str, base: &Path) -> String {
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return url.to_owned();
    };
    if rest.starts_with(":memory:") || rest.is_empty() {
        return url.to_owned();
    }
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let p = Path::new(path);
    if p.is_absolute() {
        return url.to_owned();
    }
    let joined = join(base, p);
    match query {
        Some(q) => format!("sqlite://{}?{q}", joined.display()),
        None => format!("sqlite://{}", joined.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
[store]
url = "sqlite://./data/tlsrpt.db"
retention_days = 30
[collector]
socket = "./tlsrpt.sock"
socket_mode = "0660"
socket_group = "postfix"
flush_interval = "500ms"
dump_dir = "./invalid-datagrams"
[reporter]
organization_name = "Example Inc."
contact_info = "tlsrpt@example.org"
"#;

    #[test]
    fn full_file_parses_and_resolves_relative_paths() {
        let base = Path::new("/etc/tlsrpt");
        let c = Config::from_toml(FULL, base).unwrap();
        assert_eq!(c.store.url, "sqlite:///etc/tlsrpt/data/tlsrpt.db");
        assert_eq!(c.store.retention_days, 30);
        let col = c.collector.unwrap();
        assert_eq!(col.socket, Path::new("/etc/tlsrpt/tlsrpt.sock"));
        assert_eq!(col.socket_mode, Some(0o660));
        assert_eq!(col.socket_group.as_deref(), Some("postfix"));
        assert_eq!(col.flush_interval, Duration::from_millis(500));
        assert_eq!(
            col.dump_dir.as_deref(),
            Some(Path::new("/etc/tlsrpt/invalid-datagrams"))
        );
        assert_eq!(
            c.reporter.organization_name.as_deref(),
            Some("Example Inc.")
        );
        assert_eq!(
            c.reporter.contact_info.as_deref(),
            Some("tlsrpt@example.org")
        );
    }

    #[test]
    fn absolute_paths_stay_absolute() {
        let t = r#"
[store]
url = "sqlite:///var/lib/tlsrpt/tlsrpt.db?mode=rwc"
[collector]
socket = "/var/spool/postfix/run/tlsrpt/tlsrpt.sock"
"#;
        let c = Config::from_toml(t, Path::new("/etc/tlsrpt")).unwrap();
        assert_eq!(c.store.url, "sqlite:///var/lib/tlsrpt/tlsrpt.db?mode=rwc");
        assert_eq!(
            c.collector.unwrap().socket,
            Path::new("/var/spool/postfix/run/tlsrpt/tlsrpt.sock")
        );
        let c =
            Config::from_toml("[store]\nurl = \"sqlite:x.db?mode=rwc\"", Path::new("/b")).unwrap();
        assert_eq!(c.store.url, "sqlite:///b/x.db?mode=rwc");
        let c = Config::from_toml("[store]\nurl = \"postgres://h/db\"", Path::new("/b")).unwrap();
        assert_eq!(c.store.url, "postgres://h/db");
    }

    #[test]
    fn empty_file_gives_defaults_without_collector() {
        let c = Config::from_toml("", Path::new("/srv")).unwrap();
        assert_eq!(c.store.url, "sqlite:///srv/tlsrpt.db");
        assert_eq!(c.store.retention_days, DEFAULT_RETENTION_DAYS);
        assert!(c.collector.is_none(), "a role is enabled by its section");
        assert_eq!(c.reporter, ReporterConfig::default());

        // An empty [collector] section enables the role with its defaults.
        let c = Config::from_toml("[collector]\n", Path::new("/srv")).unwrap();
        let col = c.collector.unwrap();
        assert_eq!(col.socket, Path::new("/srv/tlsrpt.sock"));
        assert_eq!(col.flush_interval, DEFAULT_FLUSH_INTERVAL);
        assert_eq!(col.socket_mode, None);
        assert_eq!(col.dump_dir, None);
    }

    #[test]
    fn no_file_means_collector_and_store_in_cwd() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.store.url, DEFAULT_STORE_URL);
        assert_eq!(c.collector.unwrap().socket, PathBuf::from(DEFAULT_SOCKET));
    }

    #[test]
    fn typos_are_rejected_with_the_key_named() {
        for (text, needle) in [
            ("[collector]\nsockt = \"x\"\n", "sockt"),
            ("[store]\nretention = 3\n", "retention"),
            ("[reportr]\n", "reportr"),
            (
                "[reporter]\norganisation_name = \"x\"\n",
                "organisation_name",
            ),
        ] {
            let e = format!("{:#}", Config::from_toml(text, Path::new("/")).unwrap_err());
            assert!(e.contains(needle), "{text:?} gave {e}");
        }
    }

    #[test]
    fn bad_values_name_key_and_problem() {
        for (text, needles) in [
            (
                "[collector]\nsocket_mode = \"0999\"\n",
                &["socket_mode", "octal"][..],
            ),
            (
                "[collector]\nsocket_mode = \"rw-rw----\"\n",
                &["socket_mode", "octal"][..],
            ),
            (
                "[collector]\nflush_interval = \"soon\"\n",
                &["flush_interval", "duration"][..],
            ),
            (
                "[collector]\nflush_interval = \"0s\"\n",
                &["flush_interval", "more than 0"][..],
            ),
            (
                "[store]\nretention_days = \"14\"\n",
                &["retention_days"][..],
            ),
            (
                "[reporter]\ncontact_info = \"\"\n",
                &["contact_info", "empty"][..],
            ),
        ] {
            let e = format!("{:#}", Config::from_toml(text, Path::new("/")).unwrap_err());
            for n in needles {
                assert!(e.contains(n), "{text:?} gave {e}");
            }
        }
        let long = format!("[collector]\nsocket = \"/{}\"\n", "s".repeat(120));
        let e = format!(
            "{:#}",
            Config::from_toml(&long, Path::new("/")).unwrap_err()
        );
        assert!(e.contains("107"), "{e}");
    }

    /// REQUIREMENTS RPT-21: raw data is kept at least 48 h, so fewer than 2 days is refused.
    #[test]
    fn rpt_21_retention_below_two_days_is_refused() {
        for n in [0, 1] {
            let text = format!("[store]\nretention_days = {n}\n");
            let e = format!(
                "{:#}",
                Config::from_toml(&text, Path::new("/")).unwrap_err()
            );
            assert!(
                e.contains("retention_days") && e.contains("at least 2"),
                "{e}"
            );
        }
        let c = Config::from_toml("[store]\nretention_days = 2\n", Path::new("/")).unwrap();
        assert_eq!(c.store.retention_days, 2);
    }

    #[test]
    fn load_names_the_file_and_resolves_against_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tlsrpt.toml");
        std::fs::write(&p, "[collector]\nsocket = \"s.sock\"\n").unwrap();
        let c = Config::load(Some(&p)).unwrap();
        assert_eq!(c.collector.unwrap().socket, dir.path().join("s.sock"));
        assert_eq!(c.source.as_deref(), Some(p.as_path()));

        std::fs::write(&p, "[collector]\nbogus = 1\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&p)).unwrap_err());
        assert!(e.contains(&p.display().to_string()), "{e}");
        assert!(e.contains("bogus"), "{e}");

        let missing = dir.path().join("nope.toml");
        let e = format!("{:#}", Config::load(Some(&missing)).unwrap_err());
        assert!(e.contains("nope.toml"), "{e}");
    }

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../../../examples/tlsrpt.toml");
        Config::from_toml(text, Path::new("/etc/tlsrpt")).unwrap();
        // With every commented-out section and `key = value` line switched on, it still
        // loads: the example never shows a key or a value the loader refuses.
        let on: Vec<&str> = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(r)
                    if r.starts_with('[')
                        || r.split_once(" = ").is_some_and(|(k, _)| {
                            k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                        }) =>
                {
                    r
                }
                _ => l,
            })
            .collect();
        let c = Config::from_toml(&on.join("\n"), Path::new("/etc/tlsrpt")).unwrap();
        let r = c.receiver.unwrap();
        assert_eq!(r.domains, ["example.org"]);
        assert_eq!(r.sender_limits.top_senders, 100);
        assert!(c.reporter.run_options().unwrap().build.omit.sending_mta_ip);
    }

    /// REQUIREMENTS SEC-08: received reports are pruned after `retention_days` (default
    /// 400), 0 keeps them forever, and the key is there with or without a config file.
    #[test]
    fn sec_08_receiver_retention_days() {
        let r = |t: &str| {
            Config::from_toml(t, Path::new("/"))
                .unwrap()
                .receiver
                .unwrap()
        };
        assert_eq!(
            r("[receiver]\n").retention_days,
            DEFAULT_RECEIVER_RETENTION_DAYS
        );
        assert_eq!(DEFAULT_RECEIVER_RETENTION_DAYS, 400);
        assert_eq!(r("[receiver]\nretention_days = 90\n").retention_days, 90);
        assert_eq!(r("[receiver]\nretention_days = 0\n").retention_days, 0);
        assert_eq!(
            Config::defaults().receiver.unwrap().retention_days,
            DEFAULT_RECEIVER_RETENTION_DAYS
        );
        // [store] retention_days is the counters' and stays separate.
        let c = Config::from_toml(
            "[store]\nretention_days = 3\n[receiver]\nretention_days = 7\n",
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(c.store.retention_days, 3);
        assert_eq!(c.receiver.unwrap().retention_days, 7);
        for bad in ["-1", "\"400\"", "1.5"] {
            let e = format!(
                "{:#}",
                Config::from_toml(
                    &format!("[receiver]\nretention_days = {bad}\n"),
                    Path::new("/")
                )
                .unwrap_err()
            );
            assert!(e.contains("retention_days"), "{bad}: {e}");
        }
    }

    /// REQUIREMENTS SEC-01: `trusted_proxies` takes addresses and CIDR ranges; a bad entry
    /// stops the load with the key and the entry named.
    #[test]
    fn sec_01_receiver_sender_limits() {
        use tlsrpt_receiver::senders::SenderLimits;
        let r = Config::from_toml(
            "[receiver]\nreports_per_minute_per_submitter = 10\n\
             reports_per_minute_per_dkim_domain = 0\nnew_sender_reports_per_minute = 5\n\
             top_senders = 3\n",
            Path::new("/"),
        )
        .unwrap()
        .receiver
        .unwrap();
        assert_eq!(
            r.sender_limits,
            SenderLimits {
                per_submitter_per_minute: 10,
                per_dkim_domain_per_minute: 0,
                new_senders_per_minute: 5,
                top_senders: 3,
            }
        );
        let d = Config::defaults().receiver.unwrap();
        assert_eq!(d.sender_limits, SenderLimits::default());
        let e = format!(
            "{:#}",
            Config::from_toml("[receiver]\ntop_senders = -1\n", Path::new("/")).unwrap_err()
        );
        assert!(e.contains("top_senders"), "{e}");
    }

    #[test]
    fn rcv_10_receiver_domains() {
        let r = Config::from_toml(
            "[receiver]\ndomains = [\"Example.NET.\", \"bücher.example\"]\n",
            Path::new("/"),
        )
        .unwrap()
        .receiver
        .unwrap();
        assert_eq!(r.domains, ["example.net", "xn--bcher-kva.example"]);
        assert!(Config::defaults().receiver.unwrap().domains.is_empty());
        let e = format!(
            "{:#}",
            Config::from_toml("[receiver]\ndomains = [\"a..b\"]\n", Path::new("/")).unwrap_err()
        );
        assert!(e.contains("domains") && e.contains("a..b"), "{e}");
    }

    #[test]
    fn sec_01_receiver_trusted_proxies() {
        let r = Config::from_toml(
            "[receiver]\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\", \"::1\", \"fd00::/8\"]\n",
            Path::new("/"),
        )
        .unwrap()
        .receiver
        .unwrap();
        let shown: Vec<String> = r.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(shown, ["127.0.0.1/32", "10.0.0.0/8", "::1/128", "fd00::/8"]);
        let d = Config::from_toml("[receiver]\n", Path::new("/"))
            .unwrap()
            .receiver
            .unwrap();
        assert!(d.trusted_proxies.is_empty(), "default: no proxy trusted");
        assert!(
            Config::defaults()
                .receiver
                .unwrap()
                .trusted_proxies
                .is_empty()
        );

        for bad in [
            "proxy.example",
            "10.0.0.0/33",
            "10.0.0.1/8",
            "",
            "1.2.3.4:80",
        ] {
            let e = format!(
                "{:#}",
                Config::from_toml(
                    &format!("[receiver]\ntrusted_proxies = [\"127.0.0.1\", {bad:?}]\n"),
                    Path::new("/")
                )
                .unwrap_err()
            );
            assert!(
                e.contains("trusted_proxies") && e.contains(&format!("{bad:?}")),
                "{bad}: {e}"
            );
        }
        let e = format!(
            "{:#}",
            Config::from_toml(
                "[receiver]\ntrusted_proxies = \"127.0.0.1\"\n",
                Path::new("/")
            )
            .unwrap_err()
        );
        assert!(e.contains("trusted_proxies"), "{e}");
    }

    #[test]
    fn receiver_smtp_and_imap_sections() {
        let t = r#"
[receiver]
[receiver.smtp]
listen = "127.0.0.1:2424"
mode = "lmtp"
addresses = ["tlsrpt@example.net"]
max_message_bytes = 1048576
command_timeout = "30s"
tls_cert = "cert.pem"
tls_key = "key.pem"
[receiver.imap]
host = "imap.example.net"
user = "reports"
password_file = "imap.pw"
processed = "move:Done"
rejected_folder = "Rejected"
interval = "2m"
"#;
        let r = Config::from_toml(t, Path::new("/etc/tlsrpt"))
            .unwrap()
            .receiver
            .unwrap();
        let s = r.smtp.unwrap();
        assert_eq!(s.mode, tlsrpt_receiver::smtp::SmtpMode::Lmtp);
        assert_eq!(s.addresses, ["tlsrpt@example.net"]);
        assert_eq!(s.max_message_bytes, 1_048_576);
        assert_eq!(s.command_timeout, Duration::from_secs(30));
        assert_eq!(s.tls_key.as_deref(), Some(Path::new("/etc/tlsrpt/key.pem")));
        let i = r.imap.unwrap();
        assert_eq!(i.port, 993);
        assert_eq!(i.tls, tlsrpt_receiver::imap::ImapTls::Implicit);
        assert_eq!(
            i.processed,
            tlsrpt_receiver::imap::Processed::Move("Done".into())
        );
        assert_eq!(i.password_file, Path::new("/etc/tlsrpt/imap.pw"));
        assert_eq!(i.interval, Duration::from_secs(120));
        assert_eq!(i.folder, "INBOX");

        for (bad, key) in [
            ("[receiver.smtp]\n", "addresses"),
            ("[receiver.smtp]\naddresses = [\"nobody\"]\n", "addresses"),
            (
                "[receiver.smtp]\naddresses = [\"a@b\"]\nmode = \"x\"\n",
                "mode",
            ),
            (
                "[receiver.imap]\nuser = \"u\"\npassword_file = \"p\"\n",
                "host",
            ),
            (
                "[receiver.imap]\nhost = \"h\"\nuser = \"u\"\npassword_file = \"p\"\ntls = \"none\"\n",
                "loopback",
            ),
            (
                "[receiver.imap]\nhost = \"h\"\nuser = \"u\"\npassword_file = \"p\"\nprocessed = \"move:\"\n",
                "processed",
            ),
        ] {
            let e = format!(
                "{:#}",
                Config::from_toml(&format!("[receiver]\n{bad}"), Path::new("/")).unwrap_err()
            );
            assert!(e.contains(key), "{bad}: {e}");
        }
    }
}
