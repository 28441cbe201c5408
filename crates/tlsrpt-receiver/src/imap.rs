//! IMAP polling for report mail (`[receiver.imap]`, RFC 8460 §5.3).
//!
//! For sites whose report address is an ordinary mailbox: every `interval` the poller logs
//! in, selects the folder, and hands each unseen message to [`Pipeline::ingest`] with
//! [`Via::Mail`]. Why these choices (ECOSYSTEM.md §1, async-imap):
//! - **UID commands only**, and a message is marked processed (`\Seen`, moved, or deleted,
//!   `processed = "seen" | "move:Folder" | "delete"`) only *after* the pipeline returned
//!   Stored / Duplicate / Quarantined, so a crash between fetch and store loses nothing and
//!   a restart does not reprocess (the `\Seen` flag or the move is the record).
//! - **`BODY.PEEK[]`**, so fetching does not set `\Seen` by itself.
//! - A message the pipeline refuses as bad data (or too large) is **kept**: moved to
//!   `rejected_folder` when configured, else flagged `\Seen \Flagged`, and the reason is
//!   logged. Never deleted, never silently dropped.
//! - `Unavailable` (store down, DNS for DKIM) leaves the message unseen: the next poll
//!   retries it (REQUIREMENTS RCV-04).
//! - The size is asked first (`RFC822.SIZE`), so a huge message is never downloaded.
//! - The password is read from a file at each poll (rotation without restart) and is never
//!   logged; TLS is `implicit` (port 993), `starttls` (RFC 2595) or `none` (tests on
//!   loopback only).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_imap::Client;
use futures_util::TryStreamExt as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::pipeline::{Accepted, Intake, Pipeline, Rejected, Via};

/// How the connection is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImapTls {
    /// TLS from the first byte (port 993).
    #[default]
    Implicit,
    /// Plain connect, then `STARTTLS` (RFC 2595); refused if the server cannot.
    StartTls,
    /// No TLS: the password crosses the wire in clear. For tests on loopback only.
    None,
}

impl std::str::FromStr for ImapTls {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "implicit" | "tls" => Ok(ImapTls::Implicit),
            "starttls" => Ok(ImapTls::StartTls),
            "none" => Ok(ImapTls::None),
            other => Err(format!(
                "tls = {other:?}: expected \"implicit\", \"starttls\" or \"none\""
            )),
        }
    }
}

/// What happens to a message once its report is stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Processed {
    /// Set `\Seen` (the default: the mailbox keeps everything).
    #[default]
    Seen,
    /// Move it to this folder (UID MOVE, RFC 6851; copy + delete where MOVE is missing).
    Move(String),
    /// Delete and expunge it.
    Delete,
}

impl std::str::FromStr for Processed {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "seen" => Ok(Processed::Seen),
            "delete" => Ok(Processed::Delete),
            _ => match s.strip_prefix("move:") {
                Some(f) if !f.trim().is_empty() => Ok(Processed::Move(f.trim().to_string())),
                _ => Err(format!(
                    "processed = {s:?}: expected \"seen\", \"move:Folder\" or \"delete\""
                )),
            },
        }
    }
}

/// Default poll interval: 5 minutes (reports arrive once a day per sender).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
/// Default per-operation timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default largest message fetched: 10 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
/// Default messages handled per poll, so one poll's time stays bounded.
pub const DEFAULT_BATCH: usize = 500;

/// The poller's settings (from `[receiver.imap]`).
#[derive(Clone)]
pub struct ImapConfig {
    /// Server name (also the TLS name).
    pub host: String,
    /// Port (993 for implicit TLS, 143 otherwise).
    pub port: u16,
    /// TLS mode.
    pub tls: ImapTls,
    /// Login name.
    pub user: String,
    /// File holding the password (trailing newline ignored). Never logged.
    pub password_file: PathBuf,
    /// The folder to read.
    pub folder: String,
    /// What to do with a processed message.
    pub processed: Processed,
    /// Where refused messages go; `None` flags them `\Seen \Flagged` in place.
    pub rejected_folder: Option<String>,
    /// Poll interval for [`run`].
    pub interval: Duration,
    /// Timeout for connecting and for each IMAP command.
    pub timeout: Duration,
    /// Larger messages are not downloaded; they are treated as refused (too large).
    pub max_message_bytes: usize,
    /// Messages handled per poll.
    pub batch: usize,
    /// Extra trust anchors (PEM) besides the system's, e.g. a private CA.
    pub ca_file: Option<PathBuf>,
    /// A TLS client configuration to use instead of the system roots (tests).
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for ImapConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("folder", &self.folder)
            .field("processed", &self.processed)
            .field("rejected_folder", &self.rejected_folder)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl ImapConfig {
    /// Settings with the defaults for `host`, `user` and `password_file`: implicit TLS on
    /// 993, folder `INBOX`, processed = seen.
    pub fn new(host: &str, user: &str, password_file: PathBuf) -> Self {
        ImapConfig {
            host: host.to_string(),
            port: 993,
            tls: ImapTls::Implicit,
            user: user.to_string(),
            password_file,
            folder: "INBOX".to_string(),
            processed: Processed::Seen,
            rejected_folder: None,
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            batch: DEFAULT_BATCH,
            ca_file: None,
            tls_config: None,
        }
    }
}

/// What one poll did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollStats {
    /// Unseen messages found (before the batch cap).
    pub found: usize,
    /// Newly stored.
    pub stored: usize,
    /// Already stored (marked processed too).
    pub duplicate: usize,
    /// Kept as rejected by the DKIM policy (marked processed).
    pub quarantined: usize,
    /// Refused (bad data, too large): moved to the rejected folder or flagged.
    pub rejected: usize,
    /// Left unseen for the next poll (temporary failure).
    pub deferred: usize,
}

/// Why a poll failed as a whole; the next poll tries again.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// The password file could not be read.
    #[error("imap: password_file {path}: {source}")]
    Password {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TCP connect failed.
    #[error("imap: connect to {addr}: {source}")]
    Connect {
        /// host:port.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TLS setup or handshake failed.
    #[error("imap: TLS: {0}")]
    Tls(String),
    /// The server refused the login (the password is not in the message).
    #[error("imap: login as {user} refused: {reason}")]
    Login {
        /// The login name.
        user: String,
        /// The server's answer.
        reason: String,
    },
    /// An IMAP command failed.
    #[error("imap: {command}: {source}")]
    Command {
        /// Which command.
        command: &'static str,
        /// Why.
        #[source]
        source: async_imap::error::Error,
    },
    /// An operation took longer than the timeout.
    #[error("imap: {0} timed out")]
    Timeout(&'static str),
}

/// Anything the client can run over: plain TCP or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Io for T {}
type Stream = Box<dyn Io>;

async fn timed<T, E>(
    cfg: &ImapConfig,
    what: &'static str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, ImapError>
where
    E: Into<async_imap::error::Error>,
{
    match tokio::time::timeout(cfg.timeout, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ImapError::Command {
            command: what,
            source: e.into(),
        }),
        Err(_) => Err(ImapError::Timeout(what)),
    }
}

fn read_password(cfg: &ImapConfig) -> Result<String, ImapError> {
    let s = std::fs::read_to_string(&cfg.password_file).map_err(|source| ImapError::Password {
        path: cfg.password_file.clone(),
        source,
    })?;
    Ok(s.trim_end_matches(['\r', '\n']).to_string())
}

fn client_tls(cfg: &ImapConfig) -> Result<Arc<rustls::ClientConfig>, ImapError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    if let Some(c) = &cfg.tls_config {
        return Ok(Arc::clone(c));
    }
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for c in native.certs {
        let _ = roots.add(c);
    }
    if let Some(path) = &cfg.ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| ImapError::Tls(format!("ca_file {}: {e}", path.display())))?;
        for c in certs {
            let c = c.map_err(|e| ImapError::Tls(format!("ca_file {}: {e}", path.display())))?;
            roots
                .add(c)
                .map_err(|e| ImapError::Tls(format!("ca_file {}: {e}", path.display())))?;
        }
    }
    if roots.is_empty() {
        return Err(ImapError::Tls(
            "no trust anchors: no system certificates and no ca_file".to_string(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let c = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ImapError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(c))
}

async fn tls_wrap(cfg: &ImapConfig, tcp: TcpStream) -> Result<Stream, ImapError> {
    let connector = tokio_rustls::TlsConnector::from(client_tls(cfg)?);
    let name = rustls::pki_types::ServerName::try_from(cfg.host.clone())
        .map_err(|e| ImapError::Tls(format!("host {:?}: {e}", cfg.host)))?;
    match tokio::time::timeout(cfg.timeout, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => Ok(Box::new(s)),
        Ok(Err(e)) => Err(ImapError::Tls(e.to_string())),
        Err(_) => Err(ImapError::Timeout("TLS handshake")),
    }
}

async fn greeting<T>(cfg: &ImapConfig, client: &mut Client<T>) -> Result<(), ImapError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug,
{
    match tokio::time::timeout(cfg.timeout, client.read_response()).await {
        Ok(Ok(Some(_))) => Ok(()),
        Ok(Ok(None)) => Err(ImapError::Command {
            command: "greeting",
            source: async_imap::error::Error::ConnectionLost,
        }),
        Ok(Err(e)) => Err(ImapError::Command {
            command: "greeting",
            source: e.into(),
        }),
        Err(_) => Err(ImapError::Timeout("greeting")),
    }
}

/// Connects, protects and logs in.
async fn login(cfg: &ImapConfig) -> Result<async_imap::Session<Stream>, ImapError> {
    let password = read_password(cfg)?;
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let tcp = match tokio::time::timeout(cfg.timeout, TcpStream::connect(&addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => return Err(ImapError::Connect { addr, source }),
        Err(_) => return Err(ImapError::Timeout("connect")),
    };
    let client = match cfg.tls {
        ImapTls::None => {
            let mut c = Client::new(Box::new(tcp) as Stream);
            greeting(cfg, &mut c).await?;
            c
        }
        ImapTls::Implicit => {
            let mut c = Client::new(tls_wrap(cfg, tcp).await?);
            greeting(cfg, &mut c).await?;
            c
        }
        ImapTls::StartTls => {
            let mut c = Client::new(tcp);
            greeting(cfg, &mut c).await?;
            timed(
                cfg,
                "STARTTLS",
                c.run_command_and_check_ok("STARTTLS", None),
            )
            .await?;
            // Nothing the server sent before the handshake is kept (RFC 2595 §3.1).
            Client::new(tls_wrap(cfg, c.into_inner()).await?)
        }
    };
    match tokio::time::timeout(cfg.timeout, client.login(&cfg.user, &password)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err((e, _))) => Err(ImapError::Login {
            user: cfg.user.clone(),
            reason: e.to_string(),
        }),
        Err(_) => Err(ImapError::Timeout("LOGIN")),
    }
}

/// One poll: log in, read the folder's unseen messages (up to `batch`), ingest each, mark
/// the processed ones, log out.
pub async fn poll_once(cfg: &ImapConfig, pipeline: &Pipeline) -> Result<PollStats, ImapError> {
    let mut session = login(cfg).await?;
    let result = poll_session(cfg, pipeline, &mut session).await;
    let _ = tokio::time::timeout(cfg.timeout, session.logout()).await;
    result
}

async fn poll_session(
    cfg: &ImapConfig,
    pipeline: &Pipeline,
    session: &mut async_imap::Session<Stream>,
) -> Result<PollStats, ImapError> {
    let mut stats = PollStats::default();
    timed(cfg, "SELECT", session.select(&cfg.folder)).await?;
    let uids = timed(cfg, "UID SEARCH", session.uid_search("UNSEEN")).await?;
    stats.found = uids.len();
    let mut uids: Vec<u32> = uids.into_iter().collect();
    uids.sort_unstable();
    uids.truncate(cfg.batch.max(1));
    for uid in uids {
        // The size first, so an oversized message is never downloaded.
        let meta = fetch_all(cfg, session, uid, "(UID RFC822.SIZE)").await?;
        let size = meta.first().and_then(|f| f.size).unwrap_or(0) as usize;
        let outcome = if size > cfg.max_message_bytes {
            Err(Rejected::TooLarge {
                limit: "max_message_bytes",
                max: cfg.max_message_bytes,
            })
        } else {
            let full = fetch_all(cfg, session, uid, "(UID BODY.PEEK[])").await?;
            let Some(bytes) = full.first().and_then(|f| f.body()) else {
                // Gone meanwhile (another client expunged it): nothing to do.
                continue;
            };
            pipeline
                .ingest(Intake {
                    bytes,
                    via: Via::Mail,
                    content_type: None,
                    content_encoding: None,
                    peer: None,
                })
                .await
        };
        match outcome {
            Ok(a) => {
                match &a {
                    Accepted::Stored { .. } => stats.stored += 1,
                    Accepted::Duplicate { .. } => stats.duplicate += 1,
                    Accepted::Quarantined { id, reason } => {
                        tracing::info!(uid, id, %reason, "imap report kept as rejected");
                        stats.quarantined += 1;
                    }
                }
                mark(cfg, session, uid, &cfg.processed).await?;
            }
            Err(Rejected::Unavailable(why)) => {
                tracing::warn!(uid, reason = %why, "imap report deferred; retried next poll");
                stats.deferred += 1;
            }
            Err(e @ Rejected::RateLimited(_)) => {
                // SEC-01: left unseen in the mailbox and taken at a later poll.
                tracing::info!(uid, reason = %e, "imap report deferred: sender over its limit");
                stats.deferred += 1;
            }
            Err(e) => {
                tracing::warn!(uid, folder = %cfg.folder, reason = %e, "imap message refused; kept");
                stats.rejected += 1;
                match &cfg.rejected_folder {
                    Some(f) => mark(cfg, session, uid, &Processed::Move(f.clone())).await?,
                    None => {
                        let set = uid.to_string();
                        let s = timed(
                            cfg,
                            "UID STORE",
                            session.uid_store(&set, "+FLAGS.SILENT (\\Seen \\Flagged)"),
                        )
                        .await?;
                        drain(cfg, s).await?;
                    }
                }
            }
        }
    }
    Ok(stats)
}

async fn fetch_all(
    cfg: &ImapConfig,
    session: &mut async_imap::Session<Stream>,
    uid: u32,
    query: &str,
) -> Result<Vec<async_imap::types::Fetch>, ImapError> {
    let set = uid.to_string();
    let stream = timed(cfg, "UID FETCH", session.uid_fetch(&set, query)).await?;
    let all = timed(cfg, "UID FETCH", stream.try_collect::<Vec<_>>()).await?;
    // A server may send unsolicited FETCH responses for other messages: keep ours.
    Ok(all.into_iter().filter(|f| f.uid == Some(uid)).collect())
}

async fn drain<S>(cfg: &ImapConfig, s: S) -> Result<(), ImapError>
where
    S: futures_util::Stream<Item = Result<async_imap::types::Fetch, async_imap::error::Error>>,
{
    timed(cfg, "UID STORE", s.try_collect::<Vec<_>>()).await?;
    Ok(())
}

/// Marks one message as processed.
async fn mark(
    cfg: &ImapConfig,
    session: &mut async_imap::Session<Stream>,
    uid: u32,
    how: &Processed,
) -> Result<(), ImapError> {
    let set = uid.to_string();
    match how {
        Processed::Seen => {
            let s = timed(
                cfg,
                "UID STORE",
                session.uid_store(&set, "+FLAGS.SILENT (\\Seen)"),
            )
            .await?;
            drain(cfg, s).await
        }
        Processed::Move(folder) => {
            if timed(cfg, "UID MOVE", session.uid_mv(&set, folder))
                .await
                .is_ok()
            {
                return Ok(());
            }
            // No MOVE (RFC 6851): copy, then delete the original.
            timed(cfg, "UID COPY", session.uid_copy(&set, folder)).await?;
            delete(cfg, session, &set).await
        }
        Processed::Delete => delete(cfg, session, &set).await,
    }
}

async fn delete(
    cfg: &ImapConfig,
    session: &mut async_imap::Session<Stream>,
    set: &str,
) -> Result<(), ImapError> {
    let s = timed(
        cfg,
        "UID STORE",
        session.uid_store(set, "+FLAGS.SILENT (\\Seen \\Deleted)"),
    )
    .await?;
    drain(cfg, s).await?;
    let s = timed(cfg, "UID EXPUNGE", session.uid_expunge(set)).await?;
    timed(cfg, "UID EXPUNGE", s.try_collect::<Vec<_>>()).await?;
    Ok(())
}

/// Polls every `cfg.interval` until `shutdown` resolves. A failed poll is logged (without
/// the password) and retried at the next interval.
pub async fn run<F>(cfg: ImapConfig, pipeline: Pipeline, shutdown: F)
where
    F: std::future::Future<Output = ()> + Send,
{
    let mut shutdown = std::pin::pin!(shutdown);
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        match poll_once(&cfg, &pipeline).await {
            Ok(s) if s.found > 0 => tracing::info!(
                found = s.found,
                stored = s.stored,
                duplicate = s.duplicate,
                quarantined = s.quarantined,
                rejected = s.rejected,
                deferred = s.deferred,
                "imap poll"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "imap poll failed"),
        }
    }
}
