//! An SMTP sink on 127.0.0.1: accepts mail (or refuses it as scripted) and keeps what it got.
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use tlsrpt_testkit::smtp::SmtpSink;
//! let sink = SmtpSink::builder()
//!     .data_replies(["451 4.3.0 try again later"]) // first transaction refused, then 250
//!     .start()
//!     .await?;
//! let relay = sink.addr(); // give this to the client as its relay
//! let got = sink.wait_for(1, std::time::Duration::from_secs(5)).await;
//! # let _ = (relay, got); Ok(()) }
//! ```
//!
//! Supported: EHLO/HELO, STARTTLS (with a [`crate::https::TestCa`] certificate), AUTH PLAIN
//! and LOGIN, MAIL, RCPT, DATA (dot-unstuffed), RSET, NOOP, QUIT. Lines are capped at 4 KiB and
//! messages at 50 MiB. Replies to RCPT and to the end of DATA can be scripted per transaction.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::task::JoinHandle;

use crate::https::TestCa;

const MAX_LINE: u64 = 4096;
const MAX_MESSAGE: usize = 50 * 1024 * 1024;

/// One transaction the sink saw to the end of DATA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The reverse-path of MAIL FROM, without angle brackets.
    pub mail_from: String,
    /// The forward-paths of accepted RCPT TOs, without angle brackets.
    pub rcpt_to: Vec<String>,
    /// The message as received (CRLF line ends, dot-unstuffed, without the final `.`).
    pub data: Vec<u8>,
    /// Whether the session was under STARTTLS.
    pub tls: bool,
    /// The authenticated user, if any.
    pub auth_user: Option<String>,
    /// The reply the sink gave after DATA (e.g. `250 2.0.0 queued as 1`).
    pub reply: String,
}

impl Received {
    /// True if the sink accepted this transaction (2xx after DATA).
    pub fn accepted(&self) -> bool {
        self.reply.starts_with('2')
    }
}

#[derive(Default)]
struct Script {
    data: VecDeque<String>,
    rcpt: VecDeque<String>,
}

struct Shared {
    received: Mutex<Vec<Received>>,
    script: Mutex<Script>,
    notify: tokio::sync::Notify,
}

/// Sets up an [`SmtpSink`].
#[derive(Default)]
pub struct SmtpSinkBuilder {
    tls: Option<(Arc<TestCa>, Vec<String>)>,
    require_tls: bool,
    auth: Option<(String, String)>,
    data_replies: Vec<String>,
    rcpt_replies: Vec<String>,
}

impl std::fmt::Debug for SmtpSinkBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSinkBuilder")
            .field("tls", &self.tls.is_some())
            .field("require_tls", &self.require_tls)
            .finish_non_exhaustive()
    }
}

impl SmtpSinkBuilder {
    /// Offer STARTTLS with a certificate for `names` signed by `ca`.
    pub fn starttls(mut self, ca: Arc<TestCa>, names: &[&str]) -> Self {
        self.tls = Some((ca, names.iter().map(|s| s.to_string()).collect()));
        self
    }

    /// Refuse MAIL until STARTTLS was done (530).
    pub fn require_tls(mut self) -> Self {
        self.require_tls = true;
        self
    }

    /// Offer AUTH PLAIN/LOGIN and require it before MAIL with these credentials.
    pub fn auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some((user.into(), password.into()));
        self
    }

    /// Replies to the end of DATA, one per transaction in order; afterwards `250`.
    pub fn data_replies<I, S>(mut self, replies: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.data_replies = replies.into_iter().map(Into::into).collect();
        self
    }

    /// Replies to RCPT TO, one per RCPT command in order; afterwards `250`.
    pub fn rcpt_replies<I, S>(mut self, replies: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rcpt_replies = replies.into_iter().map(Into::into).collect();
        self
    }

    /// Binds 127.0.0.1:0 and starts serving.
    pub async fn start(self) -> anyhow::Result<SmtpSink> {
        let acceptor = match &self.tls {
            Some((ca, names)) => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                let mut cfg = (*ca.server_config(&names)?).clone();
                cfg.alpn_protocols.clear();
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
            }
            None => None,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            script: Mutex::new(Script {
                data: self.data_replies.into(),
                rcpt: self.rcpt_replies.into(),
            }),
            notify: tokio::sync::Notify::new(),
        });
        let cfg = Arc::new(SessionCfg {
            acceptor,
            require_tls: self.require_tls,
            auth: self.auth,
        });
        let sh = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let sh = sh.clone();
                let cfg = cfg.clone();
                tokio::spawn(async move {
                    let _ = session(Box::new(tcp), sh, cfg).await;
                });
            }
        });
        Ok(SmtpSink { addr, shared, task })
    }
}

struct SessionCfg {
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    require_tls: bool,
    auth: Option<(String, String)>,
}

/// A running sink. Stops when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("addr", &self.addr)
            .finish()
    }
}

impl SmtpSink {
    /// A builder (no TLS, no AUTH, every transaction accepted).
    pub fn builder() -> SmtpSinkBuilder {
        SmtpSinkBuilder::default()
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every transaction that reached the end of DATA, accepted or not, in order.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// The accepted transactions only.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(Received::accepted)
            .collect()
    }

    /// Waits until at least `n` transactions reached the end of DATA (or `timeout` passes)
    /// and returns them.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.received();
            }
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn read_line<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> anyhow::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = (&mut *r).take(MAX_LINE).read_until(b'\n', &mut buf).await?;
    if n == 0 {
        return Ok(None);
    }
    if !buf.ends_with(b"\n") {
        anyhow::bail!("line too long or connection closed mid-line");
    }
    let s = String::from_utf8_lossy(&buf);
    Ok(Some(s.trim_end_matches(['\r', '\n']).to_string()))
}

fn path_arg(arg: &str) -> String {
    let a = arg.trim();
    let end = a.find('>').map(|i| i + 1).unwrap_or(a.len());
    a[..end]
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

async fn session(stream: Box<dyn Io>, sh: Arc<Shared>, cfg: Arc<SessionCfg>) -> anyhow::Result<()> {
    let mut r = BufReader::new(stream);
    let mut tls = false;
    let mut authed: Option<String> = None;
    let mut from: Option<String> = None;
    let mut rcpts: Vec<String> = Vec::new();
    r.get_mut()
        .write_all(b"220 sink.test ESMTP tlsrpt-testkit\r\n")
        .await?;
    r.get_mut().flush().await?;
    while let Some(line) = read_line(&mut r).await? {
        let upper = line.to_ascii_uppercase();
        let (verb, _) = upper.split_once(' ').unwrap_or((upper.as_str(), ""));
        let reply: String = match verb {
            "EHLO" => {
                let mut s = String::from("250-sink.test\r\n250-8BITMIME\r\n250-SIZE 52428800\r\n");
                if cfg.acceptor.is_some() && !tls {
                    s.push_str("250-STARTTLS\r\n");
                }
                if cfg.auth.is_some() {
                    s.push_str("250-AUTH PLAIN LOGIN\r\n");
                }
                s.push_str("250 ENHANCEDSTATUSCODES");
                from = None;
                rcpts.clear();
                s
            }
            "HELO" => "250 sink.test".into(),
            "STARTTLS" if cfg.acceptor.is_some() && !tls => {
                r.get_mut().write_all(b"220 2.0.0 go ahead\r\n").await?;
                r.get_mut().flush().await?;
                let Some(acc) = cfg.acceptor.clone() else {
                    return Ok(());
                };
                let inner = r.into_inner();
                let t = acc.accept(inner).await?;
                r = BufReader::new(Box::new(t) as Box<dyn Io>);
                tls = true;
                from = None;
                rcpts.clear();
                continue;
            }
            "AUTH" => {
                let words: Vec<&str> = line.split_whitespace().collect();
                let mech = words.get(1).map(|m| m.to_ascii_uppercase());
                let b64 = base64::engine::general_purpose::STANDARD;
                let creds = match mech.as_deref() {
                    Some("PLAIN") => {
                        let initial = match words.get(2) {
                            Some(v) => v.to_string(),
                            None => {
                                r.get_mut().write_all(b"334 \r\n").await?;
                                r.get_mut().flush().await?;
                                read_line(&mut r).await?.unwrap_or_default()
                            }
                        };
                        b64.decode(initial.trim()).ok().and_then(|raw| {
                            let parts: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
                            match parts.as_slice() {
                                [_, u, p] => Some((
                                    String::from_utf8_lossy(u).to_string(),
                                    String::from_utf8_lossy(p).to_string(),
                                )),
                                _ => None,
                            }
                        })
                    }
                    Some("LOGIN") => {
                        r.get_mut().write_all(b"334 VXNlcm5hbWU6\r\n").await?;
                        r.get_mut().flush().await?;
                        let u = read_line(&mut r).await?.unwrap_or_default();
                        r.get_mut().write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
                        r.get_mut().flush().await?;
                        let p = read_line(&mut r).await?.unwrap_or_default();
                        match (b64.decode(u.trim()), b64.decode(p.trim())) {
                            (Ok(u), Ok(p)) => Some((
                                String::from_utf8_lossy(&u).to_string(),
                                String::from_utf8_lossy(&p).to_string(),
                            )),
                            _ => None,
                        }
                    }
                    _ => None,
                };
                match (&cfg.auth, creds) {
                    (Some((u, p)), Some((cu, cp))) if *u == cu && *p == cp => {
                        authed = Some(cu);
                        "235 2.7.0 authenticated".into()
                    }
                    (None, _) => "503 5.5.1 AUTH not offered".into(),
                    _ => "535 5.7.8 authentication failed".into(),
                }
            }
            "MAIL" => {
                if cfg.require_tls && !tls {
                    "530 5.7.0 must issue STARTTLS first".into()
                } else if cfg.auth.is_some() && authed.is_none() {
                    "530 5.7.0 authentication required".into()
                } else {
                    let arg = line.get(5..).unwrap_or("");
                    let arg = arg.split_once(':').map(|(_, a)| a).unwrap_or(arg);
                    from = Some(path_arg(arg));
                    rcpts.clear();
                    "250 2.1.0 ok".into()
                }
            }
            "RCPT" => {
                if from.is_none() {
                    "503 5.5.1 MAIL first".into()
                } else {
                    let scripted = sh.script.lock().ok().and_then(|mut s| s.rcpt.pop_front());
                    let reply = scripted.unwrap_or_else(|| "250 2.1.5 ok".into());
                    if reply.starts_with('2') {
                        let arg = line.get(5..).unwrap_or("");
                        let arg = arg.split_once(':').map(|(_, a)| a).unwrap_or(arg);
                        rcpts.push(path_arg(arg));
                    }
                    reply
                }
            }
            "DATA" => {
                if from.is_none() || rcpts.is_empty() {
                    "503 5.5.1 need MAIL and RCPT first".into()
                } else {
                    r.get_mut()
                        .write_all(b"354 end with <CRLF>.<CRLF>\r\n")
                        .await?;
                    r.get_mut().flush().await?;
                    let mut data = Vec::new();
                    loop {
                        let mut buf = Vec::new();
                        let n = (&mut r).take(1 << 20).read_until(b'\n', &mut buf).await?;
                        if n == 0 {
                            return Ok(());
                        }
                        if buf == b".\r\n" || buf == b".\n" {
                            break;
                        }
                        let body = buf.strip_prefix(b".").unwrap_or(&buf);
                        if data.len() + body.len() > MAX_MESSAGE {
                            anyhow::bail!("message too large");
                        }
                        data.extend_from_slice(body);
                    }
                    let scripted = sh.script.lock().ok().and_then(|mut s| s.data.pop_front());
                    let n = sh.received.lock().map(|v| v.len() + 1).unwrap_or(0);
                    let reply = scripted.unwrap_or_else(|| format!("250 2.0.0 queued as {n}"));
                    let rec = Received {
                        mail_from: from.take().unwrap_or_default(),
                        rcpt_to: std::mem::take(&mut rcpts),
                        data,
                        tls,
                        auth_user: authed.clone(),
                        reply: reply.clone(),
                    };
                    if let Ok(mut v) = sh.received.lock() {
                        v.push(rec);
                    }
                    sh.notify.notify_waiters();
                    reply
                }
            }
            "RSET" => {
                from = None;
                rcpts.clear();
                "250 2.0.0 ok".into()
            }
            "NOOP" => "250 2.0.0 ok".into(),
            "QUIT" => {
                r.get_mut().write_all(b"221 2.0.0 bye\r\n").await?;
                r.get_mut().flush().await?;
                return Ok(());
            }
            _ => "500 5.5.2 unrecognised command".into(),
        };
        r.get_mut().write_all(reply.as_bytes()).await?;
        r.get_mut().write_all(b"\r\n").await?;
        r.get_mut().flush().await?;
    }
    Ok(())
}
