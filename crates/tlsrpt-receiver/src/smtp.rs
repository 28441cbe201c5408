//! An SMTP/LMTP listener for report mail (`[receiver.smtp]`, RFC 8460 §5.3).
//!
//! Why our own loop: no maintained SMTP server crate exists (ECOSYSTEM.md §1); the protocol
//! parsing is smtp-proto's sans-IO `RequestReceiver` / `DataReceiver` (the code Stalwart runs),
//! and this module owns the I/O, the limits, STARTTLS and the replies.
//!
//! What it does:
//! - accepts `RCPT TO` only for the configured report addresses (550 otherwise), so it cannot
//!   be used as a relay (REQUIREMENTS SEC-02);
//! - advertises `SIZE` and enforces it on `MAIL FROM SIZE=` and on the data itself (552);
//! - caps command lines (smtp-proto's 4096 bytes, 500 otherwise), recipients per message,
//!   bad commands per session, concurrent connections (421 when full) and the time to wait
//!   for the client (RFC 5321 §4.5.3.2 suggests 5 minutes; the default here is shorter);
//! - optional STARTTLS (RFC 3207) with rustls; pipelined bytes after STARTTLS are discarded
//!   and the session restarts, as RFC 3207 §4.2 requires;
//! - after the data every message goes to [`Pipeline::ingest`] with [`Via::Mail`]:
//!   Stored / Duplicate / Quarantined → 250, `BadData` → 554 with the reason, `TooLarge` →
//!   552, `Unavailable` → 451 (the sending MTA retries; REQUIREMENTS RCV-04).
//!
//! In LMTP mode (RFC 2033) the greeting expects `LHLO` and the answer after the data is one
//! reply per accepted recipient. The report is ingested once: every recipient shares the
//! outcome (the store de-duplicates anyway).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use smtp_proto::request::receiver::{DataReceiver, RequestReceiver};
use smtp_proto::{EhloResponse, Error as ProtoError, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::pipeline::{Accepted, Intake, Pipeline, Rejected, Via};

/// SMTP (RFC 5321) or LMTP (RFC 2033).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SmtpMode {
    /// Plain SMTP: `EHLO`/`HELO`, one reply after the data.
    #[default]
    Smtp,
    /// LMTP: `LHLO`, one reply per recipient after the data.
    Lmtp,
}

impl std::str::FromStr for SmtpMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "smtp" => Ok(SmtpMode::Smtp),
            "lmtp" => Ok(SmtpMode::Lmtp),
            other => Err(format!("mode = {other:?}: expected \"smtp\" or \"lmtp\"")),
        }
    }
}

/// Default cap on one message (`SIZE`): 10 MiB. Reports are small (kilobytes); a sender with
/// a large report still fits, and a hostile one cannot fill memory.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
/// Default time to wait for the client's next bytes: 60 s.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Default number of sessions at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// Default number of recipients per message.
pub const DEFAULT_MAX_RECIPIENTS: usize = 20;
/// Bad commands before the session is closed (421).
pub const MAX_ERRORS: usize = 10;

/// How the listener behaves (from `[receiver.smtp]`).
#[derive(Clone)]
pub struct SmtpConfig {
    /// SMTP or LMTP.
    pub mode: SmtpMode,
    /// The name in the greeting and the EHLO reply.
    pub hostname: String,
    /// The report addresses (the `mailto:` rua targets) mail is accepted for; compared
    /// case-insensitively. Everything else gets 550 (no relaying, REQUIREMENTS SEC-02).
    pub addresses: Vec<String>,
    /// The largest message accepted (advertised with `SIZE`).
    pub max_message_bytes: usize,
    /// How long to wait for the client's next bytes.
    pub command_timeout: Duration,
    /// Sessions at once; more get 421 and are closed.
    pub max_connections: usize,
    /// Recipients per message.
    pub max_recipients: usize,
    /// STARTTLS, when set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("mode", &self.mode)
            .field("hostname", &self.hostname)
            .field("addresses", &self.addresses)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("command_timeout", &self.command_timeout)
            .field("max_connections", &self.max_connections)
            .field("max_recipients", &self.max_recipients)
            .field("starttls", &self.tls.is_some())
            .finish()
    }
}

impl SmtpConfig {
    /// A configuration with the defaults, accepting mail for `addresses`.
    pub fn new(addresses: Vec<String>) -> Self {
        SmtpConfig {
            mode: SmtpMode::Smtp,
            hostname: "localhost".to_string(),
            addresses,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_recipients: DEFAULT_MAX_RECIPIENTS,
            tls: None,
        }
    }

    /// Whether `address` (from `RCPT TO`) is one of ours.
    fn accepts(&self, address: &str) -> bool {
        self.addresses
            .iter()
            .any(|a| a.trim().eq_ignore_ascii_case(address.trim()))
    }
}

/// Errors of the listener itself (not of one session).
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// `accept` failed in a way that will not go away.
    #[error("smtp listener: accept: {0}")]
    Accept(#[source] std::io::Error),
}

/// Serves SMTP or LMTP on `listener` until `shutdown` resolves. Sessions in flight are left
/// to finish on their own (each is bounded by the command timeout).
pub async fn serve_smtp<F>(
    listener: TcpListener,
    cfg: SmtpConfig,
    pipeline: Pipeline,
    shutdown: F,
) -> Result<(), SmtpError>
where
    F: std::future::Future<Output = ()> + Send,
{
    let cfg = Arc::new(cfg);
    let slots = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return Ok(()),
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) if is_transient(&e) => {
                tracing::warn!(error = %e, "smtp accept failed; continuing");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => return Err(SmtpError::Accept(e)),
        };
        let cfg = Arc::clone(&cfg);
        let pipeline = pipeline.clone();
        match Arc::clone(&slots).try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(async move {
                    let _permit = permit;
                    connection(stream, peer, &cfg, &pipeline).await;
                });
            }
            Err(_) => {
                tokio::spawn(async move {
                    let mut stream = stream;
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        stream.write_all(b"421 4.7.0 Too many connections, try again later\r\n"),
                    )
                    .await;
                    tracing::info!(%peer, "smtp connection refused: too many connections");
                });
            }
        }
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock | TimedOut
    ) || e.raw_os_error() == Some(24) // EMFILE: out of descriptors, wait for some to close
        || e.raw_os_error() == Some(23)
}

/// One TCP connection: a plain session, then (after STARTTLS) a TLS one.
async fn connection(stream: TcpStream, peer: SocketAddr, cfg: &SmtpConfig, pipeline: &Pipeline) {
    let mut stream = stream;
    let greeting = format!(
        "220 {} ESMTP tlsrpt {}\r\n",
        cfg.hostname,
        match cfg.mode {
            SmtpMode::Smtp => "SMTP",
            SmtpMode::Lmtp => "LMTP",
        }
    );
    if write(&mut stream, greeting.as_bytes(), cfg).await.is_err() {
        return;
    }
    match session(&mut stream, peer, cfg, pipeline, false).await {
        End::Closed => {}
        End::StartTls => {
            let Some(tls) = cfg.tls.clone() else { return };
            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
            let handshake =
                tokio::time::timeout(cfg.command_timeout, acceptor.accept(stream)).await;
            let mut tls_stream = match handshake {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "smtp STARTTLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, "smtp STARTTLS handshake timed out");
                    return;
                }
            };
            // RFC 3207 §4.2: the client starts over with EHLO; no greeting is sent.
            let _ = session(&mut tls_stream, peer, cfg, pipeline, true).await;
        }
    }
}

enum End {
    Closed,
    StartTls,
}

/// The envelope of the message being received.
#[derive(Default)]
struct Envelope {
    helo: bool,
    from: Option<String>,
    rcpts: Vec<String>,
}

async fn write<S: AsyncWrite + Unpin>(s: &mut S, bytes: &[u8], cfg: &SmtpConfig) -> Result<(), ()> {
    match tokio::time::timeout(cfg.command_timeout, s.write_all(bytes)).await {
        Ok(Ok(())) => match tokio::time::timeout(cfg.command_timeout, s.flush()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        },
        _ => Err(()),
    }
}

/// A command taken out of smtp-proto's borrowed [`Request`] so the buffer can be reused.
enum Cmd {
    Hello { lhlo: bool, ehlo: bool },
    Mail { from: String, size: usize },
    Rcpt { to: String },
    Data,
    Bdat,
    Rset,
    Noop,
    Quit,
    StartTls,
    Vrfy,
    Other(&'static str),
}

fn cmd(r: Request<Cow<'_, str>>) -> Cmd {
    match r {
        Request::Ehlo { .. } => Cmd::Hello {
            lhlo: false,
            ehlo: true,
        },
        Request::Helo { .. } => Cmd::Hello {
            lhlo: false,
            ehlo: false,
        },
        Request::Lhlo { .. } => Cmd::Hello {
            lhlo: true,
            ehlo: true,
        },
        Request::Mail { from } => Cmd::Mail {
            from: from.address.into_owned(),
            size: from.size,
        },
        Request::Rcpt { to } => Cmd::Rcpt {
            to: to.address.into_owned(),
        },
        Request::Data => Cmd::Data,
        Request::Bdat { .. } => Cmd::Bdat,
        Request::Rset => Cmd::Rset,
        Request::Noop { .. } => Cmd::Noop,
        Request::Quit => Cmd::Quit,
        Request::StartTls => Cmd::StartTls,
        Request::Vrfy { .. } | Request::Expn { .. } => Cmd::Vrfy,
        other => Cmd::Other(other.name()),
    }
}

/// One SMTP/LMTP session on `s` until QUIT, EOF, timeout, too many errors or STARTTLS.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    peer: SocketAddr,
    cfg: &SmtpConfig,
    pipeline: &Pipeline,
    tls: bool,
) -> End {
    let mut receiver = RequestReceiver::default();
    let mut env = Envelope::default();
    let mut errors = 0usize;
    let mut buf = vec![0u8; 8192];
    // Bytes read but not yet parsed (pipelining, RFC 2920).
    let mut pending: Vec<u8> = Vec::new();
    let mut skip_line = false;
    loop {
        if errors >= MAX_ERRORS {
            let _ = write(s, b"421 4.7.0 Too many errors, closing\r\n", cfg).await;
            return End::Closed;
        }
        // After an overlong line, the rest of it up to its LF is dropped, so one long line
        // gets one 500 rather than one per 4 KiB.
        if skip_line {
            match pending.iter().position(|&b| b == b'\n') {
                Some(pos) => {
                    pending.drain(..=pos);
                    skip_line = false;
                }
                None => pending.clear(),
            }
        }
        // Parse one command from what is pending; read more when needed.
        let parsed = if skip_line {
            None
        } else {
            let mut iter = pending.iter();
            let r = receiver.ingest(&mut iter);
            let consumed = pending.len() - iter.as_slice().len();
            let out = match r {
                Ok(req) => Some(Ok(cmd(req))),
                Err(ProtoError::NeedsMoreData { .. }) => None,
                Err(e) => Some(Err(e)),
            };
            pending.drain(..consumed);
            out
        };
        let command = match parsed {
            None => {
                match tokio::time::timeout(cfg.command_timeout, s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return End::Closed,
                    Ok(Ok(n)) => pending.extend_from_slice(buf.get(..n).unwrap_or(&[])),
                    Err(_) => {
                        let _ = write(s, b"421 4.4.2 Timeout, closing\r\n", cfg).await;
                        tracing::info!(%peer, "smtp session timed out");
                        return End::Closed;
                    }
                }
                continue;
            }
            Some(Err(e)) => {
                errors += 1;
                skip_line = matches!(e, ProtoError::ResponseTooLong);
                let reply: &[u8] = match e {
                    ProtoError::ResponseTooLong => b"500 5.5.2 Line too long\r\n",
                    ProtoError::UnknownCommand => b"500 5.5.1 Unknown command\r\n",
                    ProtoError::InvalidSenderAddress => b"501 5.1.7 Bad sender address\r\n",
                    ProtoError::InvalidRecipientAddress => b"501 5.1.3 Bad recipient address\r\n",
                    ProtoError::UnsupportedParameter { .. } => {
                        b"555 5.5.4 Unsupported parameter\r\n"
                    }
                    _ => b"501 5.5.2 Syntax error\r\n",
                };
                if write(s, reply, cfg).await.is_err() {
                    return End::Closed;
                }
                continue;
            }
            Some(Ok(c)) => c,
        };
        let reply: String = match command {
            Cmd::Hello { lhlo, ehlo } => {
                if lhlo != (cfg.mode == SmtpMode::Lmtp) {
                    errors += 1;
                    "500 5.5.1 Wrong greeting for this service\r\n".to_string()
                } else {
                    env = Envelope {
                        helo: true,
                        ..Envelope::default()
                    };
                    if ehlo {
                        let mut r = EhloResponse::new(cfg.hostname.as_str());
                        r.capabilities = smtp_proto::EXT_SIZE
                            | smtp_proto::EXT_PIPELINING
                            | smtp_proto::EXT_ENHANCED_STATUS_CODES
                            | smtp_proto::EXT_8BIT_MIME;
                        if cfg.tls.is_some() && !tls {
                            r.capabilities |= smtp_proto::EXT_START_TLS;
                        }
                        r.size = cfg.max_message_bytes;
                        let mut out = Vec::new();
                        let _ = r.write(&mut out);
                        // smtp-proto's first line carries a joke ("you had me at EHLO"):
                        // replace it with a plain greeting.
                        let text = String::from_utf8_lossy(&out);
                        let rest = text.split_once("\r\n").map(|(_, r)| r).unwrap_or("");
                        format!("250-{} Hello\r\n{rest}", cfg.hostname)
                    } else {
                        format!("250 {}\r\n", cfg.hostname)
                    }
                }
            }
            Cmd::StartTls => {
                if tls || cfg.tls.is_none() {
                    errors += 1;
                    "502 5.5.1 STARTTLS not available\r\n".to_string()
                } else {
                    if write(s, b"220 2.0.0 Ready to start TLS\r\n", cfg)
                        .await
                        .is_err()
                    {
                        return End::Closed;
                    }
                    // RFC 3207 §4.2: anything the client pipelined after STARTTLS is dropped.
                    return End::StartTls;
                }
            }
            Cmd::Mail { from, size } => {
                if !env.helo {
                    errors += 1;
                    "503 5.5.1 Say hello first\r\n".to_string()
                } else if env.from.is_some() {
                    errors += 1;
                    "503 5.5.1 Nested MAIL command\r\n".to_string()
                } else if size > cfg.max_message_bytes {
                    // RFC 1870 §6.
                    format!(
                        "552 5.3.4 Message size exceeds the limit of {} bytes\r\n",
                        cfg.max_message_bytes
                    )
                } else {
                    env.from = Some(from);
                    "250 2.1.0 OK\r\n".to_string()
                }
            }
            Cmd::Rcpt { to } => {
                if env.from.is_none() {
                    errors += 1;
                    "503 5.5.1 Need MAIL first\r\n".to_string()
                } else if !cfg.accepts(&to) {
                    // REQUIREMENTS SEC-02: only the report addresses; never a relay.
                    tracing::info!(%peer, rcpt = %to, "smtp recipient refused: not a report address");
                    "550 5.1.1 No such report address here\r\n".to_string()
                } else if env.rcpts.len() >= cfg.max_recipients {
                    "452 4.5.3 Too many recipients\r\n".to_string()
                } else {
                    env.rcpts.push(to);
                    "250 2.1.5 OK\r\n".to_string()
                }
            }
            Cmd::Data => {
                if env.from.is_none() || env.rcpts.is_empty() {
                    errors += 1;
                    "503 5.5.1 Need MAIL and RCPT first\r\n".to_string()
                } else {
                    if write(s, b"354 Send the report; end with <CRLF>.<CRLF>\r\n", cfg)
                        .await
                        .is_err()
                    {
                        return End::Closed;
                    }
                    // The whole data phase is bounded too (10 × command_timeout), so a
                    // client trickling a byte at a time cannot hold a slot forever.
                    let whole = cfg.command_timeout.saturating_mul(10);
                    let data = match tokio::time::timeout(
                        whole,
                        read_data(s, &mut pending, &mut buf, cfg),
                    )
                    .await
                    .unwrap_or(Err(DataEnd::Timeout))
                    {
                        Ok(d) => d,
                        Err(DataEnd::Closed) => return End::Closed,
                        Err(DataEnd::Timeout) => {
                            let _ = write(s, b"421 4.4.2 Timeout, closing\r\n", cfg).await;
                            return End::Closed;
                        }
                    };
                    let rcpts = std::mem::take(&mut env.rcpts);
                    env.from = None;
                    let one = match data {
                        None => format!(
                            "552 5.3.4 Message size exceeds the limit of {} bytes\r\n",
                            cfg.max_message_bytes
                        ),
                        Some(msg) => deliver(&msg, peer, pipeline).await,
                    };
                    match cfg.mode {
                        SmtpMode::Smtp => one,
                        // RFC 2033 §4.2: one reply per accepted recipient, in order.
                        SmtpMode::Lmtp => rcpts.iter().map(|_| one.as_str()).collect(),
                    }
                }
            }
            Cmd::Bdat => {
                errors += 1;
                "502 5.5.1 CHUNKING not offered\r\n".to_string()
            }
            Cmd::Rset => {
                env.from = None;
                env.rcpts.clear();
                "250 2.0.0 OK\r\n".to_string()
            }
            Cmd::Noop => "250 2.0.0 OK\r\n".to_string(),
            Cmd::Vrfy => "252 2.5.2 Cannot verify\r\n".to_string(),
            Cmd::Quit => {
                let _ = write(s, b"221 2.0.0 Bye\r\n", cfg).await;
                return End::Closed;
            }
            Cmd::Other(name) => {
                errors += 1;
                format!("502 5.5.1 {name} not implemented\r\n")
            }
        };
        if write(s, reply.as_bytes(), cfg).await.is_err() {
            return End::Closed;
        }
    }
}

enum DataEnd {
    Closed,
    Timeout,
}

/// Reads the data after `354` up to `<CRLF>.<CRLF>`, starting with what is already pending.
/// `Ok(None)` when it was larger than the limit (the rest is read and discarded so the
/// session can go on, RFC 1870 §6). Memory stays below the limit plus one read.
async fn read_data<S: AsyncRead + Unpin>(
    s: &mut S,
    pending: &mut Vec<u8>,
    buf: &mut [u8],
    cfg: &SmtpConfig,
) -> Result<Option<Vec<u8>>, DataEnd> {
    let mut receiver = DataReceiver::new();
    let mut out = Vec::new();
    // smtp-proto's DataReceiver starts as if in the middle of a line, so an empty message
    // (`.` right after 354) would not end; feeding a CRLF first puts it at a line start.
    // The CRLF is removed below.
    receiver.ingest(&mut b"\r\n".iter(), &mut out);
    let mut too_big = false;
    let mut chunk = std::mem::take(pending);
    loop {
        let mut iter = chunk.iter();
        let done = receiver.ingest(&mut iter, &mut out);
        if out.len() > cfg.max_message_bytes + 2 {
            too_big = true;
            out.clear();
        }
        if done {
            // Whatever follows the final dot is the next (pipelined) command.
            *pending = iter.as_slice().to_vec();
            if too_big {
                return Ok(None);
            }
            let msg = out.get(2..).map(<[u8]>::to_vec).unwrap_or_default();
            return Ok(Some(msg));
        }
        match tokio::time::timeout(cfg.command_timeout, s.read(buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Err(DataEnd::Closed),
            Ok(Ok(n)) => chunk = buf.get(..n).map(<[u8]>::to_vec).unwrap_or_default(),
            Err(_) => return Err(DataEnd::Timeout),
        }
    }
}

/// Hands one message to the pipeline and words the reply (REQUIREMENTS RCV-04).
async fn deliver(msg: &[u8], peer: SocketAddr, pipeline: &Pipeline) -> String {
    let intake = Intake {
        bytes: msg,
        via: Via::Mail,
        content_type: None,
        content_encoding: None,
        peer: Some(peer.ip()),
    };
    match pipeline.ingest(intake).await {
        Ok(Accepted::Stored { id }) => format!("250 2.0.0 Stored as report {id}\r\n"),
        Ok(Accepted::Duplicate { id }) => format!("250 2.0.0 Already stored as report {id}\r\n"),
        Ok(Accepted::Quarantined { id, reason }) => {
            // Kept as rejected with the reason (RFC 8460 §3); the sender need not retry.
            tracing::info!(%peer, id, %reason, "smtp report kept as rejected");
            format!("250 2.0.0 Kept as report {id} (not verified)\r\n")
        }
        Err(Rejected::TooLarge { limit, max }) => {
            format!("552 5.3.4 Report too large: {limit} = {max} bytes\r\n")
        }
        Err(Rejected::Unavailable(why)) => {
            tracing::warn!(%peer, reason = %why, "smtp report deferred");
            "451 4.3.0 Temporarily unable to store the report, try again later\r\n".to_string()
        }
        Err(e @ Rejected::RateLimited(_)) => {
            // SEC-01: a temporary refusal, so the sending MTA queues the report and retries.
            tracing::info!(%peer, reason = %e, "smtp report deferred: sender over its limit");
            format!("451 4.7.1 {}\r\n", one_line(&e.to_string()))
        }
        Err(e @ (Rejected::BadData { .. } | Rejected::UnsupportedMediaType(_))) => {
            tracing::info!(%peer, reason = %e, "smtp report rejected");
            format!("554 5.6.0 {}\r\n", one_line(&e.to_string()))
        }
    }
}

/// A reason fit for one reply line: printable ASCII, at most 400 characters.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(400)
        .collect()
}
