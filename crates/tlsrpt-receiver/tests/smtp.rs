//! The SMTP/LMTP listener (`tlsrpt_receiver::smtp`) against a real TCP client on 127.0.0.1:
//! the dialogue is written out by hand so every reply code is checked.

mod common;

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tlsrpt_receiver::dkim::DkimPolicy;
use tlsrpt_receiver::pipeline::Pipeline;
use tlsrpt_receiver::smtp::{SmtpConfig, SmtpMode, serve_smtp};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const REPORT_ADDR: &str = "tlsrpt@example.net";

struct Server {
    addr: std::net::SocketAddr,
    pipeline: Pipeline,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start(tune: impl FnOnce(&mut SmtpConfig)) -> Server {
    let (pipeline, dir) = common::pipeline(None, DkimPolicy::Off).await;
    start_with(pipeline, dir, tune).await
}

async fn start_with(
    pipeline: Pipeline,
    dir: tempfile::TempDir,
    tune: impl FnOnce(&mut SmtpConfig),
) -> Server {
    let mut cfg = SmtpConfig::new(vec![REPORT_ADDR.to_string(), "Reports@Example.NET".into()]);
    cfg.hostname = "mx.example.net".into();
    cfg.command_timeout = Duration::from_secs(5);
    tune(&mut cfg);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let p = pipeline.clone();
    tokio::spawn(async move {
        serve_smtp(listener, cfg, p, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Server {
        addr,
        pipeline,
        _stop: tx,
        _dir: dir,
    }
}

/// A hand-written SMTP client over any stream.
struct Client<S> {
    s: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// Reads one (possibly multi-line) reply: (code, full text).
    async fn reply(&mut self) -> (u16, String) {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(10), self.s.read_line(&mut line))
                .await
                .expect("reply timed out")
                .unwrap();
            assert!(n > 0, "connection closed; so far: {all:?}");
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                let code = line.get(..3).unwrap().parse().unwrap();
                return (code, all);
            }
        }
    }

    async fn send(&mut self, line: &str) {
        self.s.get_mut().write_all(line.as_bytes()).await.unwrap();
        self.s.get_mut().write_all(b"\r\n").await.unwrap();
    }

    async fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send(line).await;
        self.reply().await
    }

    /// Sends `msg` as the data (dot-stuffed) and returns the reply after the final dot.
    async fn data(&mut self, msg: &[u8]) -> (u16, String) {
        let (c, t) = self.cmd("DATA").await;
        assert_eq!(c, 354, "{t}");
        self.s.get_mut().write_all(&stuff(msg)).await.unwrap();
        self.s.get_mut().write_all(b".\r\n").await.unwrap();
        self.reply().await
    }
}

async fn connect(addr: std::net::SocketAddr) -> Client<TcpStream> {
    let s = TcpStream::connect(addr).await.unwrap();
    let mut c = Client {
        s: BufReader::new(s),
    };
    let (code, text) = c.reply().await;
    assert_eq!(code, 220, "{text}");
    c
}

fn stuff(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at_line_start = true;
    for &b in msg {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn report_message() -> Vec<u8> {
    let files = common::testdata(&[".json"]);
    let report = std::fs::read(&files[0]).unwrap();
    common::wrap(&report, None, "google.com")
}

fn stored_id(text: &str) -> i64 {
    text.split_whitespace()
        .last()
        .and_then(|w| w.trim().parse().ok())
        .unwrap_or_else(|| panic!("no id in {text:?}"))
}

#[tokio::test]
async fn rcv_04_report_sent_via_smtp_is_stored() {
    let srv = start(|_| {}).await;
    let mut c = connect(srv.addr).await;
    let (code, ehlo) = c.cmd("EHLO sender.example").await;
    assert_eq!(code, 250);
    assert!(ehlo.starts_with("250-mx.example.net "), "{ehlo}");
    assert!(ehlo.contains("SIZE 10485760"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "no TLS configured: {ehlo}");
    assert_eq!(c.cmd("MAIL FROM:<noreply@google.com>").await.0, 250);
    assert_eq!(c.cmd("RCPT TO:<TLSRPT@example.net>").await.0, 250);
    let (code, text) = c.data(&report_message()).await;
    assert_eq!(code, 250, "{text}");
    let id = stored_id(&text);
    let detail = srv.pipeline.store().get_received(id).await.unwrap();
    assert!(detail.is_some(), "report {id} not in the store");
    let raw = srv.pipeline.store().get_received_raw(id).await.unwrap();
    assert!(raw.is_some_and(|r| r.starts_with(b"From: tlsrpt-noreply@google.com")));
    // The same message again in the same session: a duplicate, still 250.
    assert_eq!(c.cmd("MAIL FROM:<noreply@google.com>").await.0, 250);
    assert_eq!(c.cmd("RCPT TO:<tlsrpt@example.net>").await.0, 250);
    let (code, text) = c.data(&report_message()).await;
    assert_eq!(code, 250, "{text}");
    assert!(text.contains("Already stored"), "{text}");
    assert_eq!(stored_id(&text), id);
    assert_eq!(c.cmd("QUIT").await.0, 221);
}

#[tokio::test]
async fn sec_02_only_report_addresses_accepted_no_relay() {
    let srv = start(|_| {}).await;
    let mut c = connect(srv.addr).await;
    assert_eq!(c.cmd("EHLO sender.example").await.0, 250);
    assert_eq!(c.cmd("MAIL FROM:<a@sender.example>").await.0, 250);
    let (code, text) = c.cmd("RCPT TO:<someone@elsewhere.example>").await;
    assert_eq!(code, 550, "{text}");
    assert_eq!(c.cmd("RCPT TO:<postmaster@example.net>").await.0, 550);
    // No accepted recipient: DATA is refused.
    assert_eq!(c.cmd("DATA").await.0, 503);
    // The second configured address is matched case-insensitively.
    assert_eq!(c.cmd("RCPT TO:<reports@example.net>").await.0, 250);
    assert_eq!(c.cmd("RSET").await.0, 250);
    // RCPT before MAIL.
    assert_eq!(c.cmd("RCPT TO:<tlsrpt@example.net>").await.0, 503);
}

#[tokio::test]
async fn rcv_07_size_advertised_and_enforced() {
    let srv = start(|c| c.max_message_bytes = 4096).await;
    let mut c = connect(srv.addr).await;
    let (_, ehlo) = c.cmd("EHLO sender.example").await;
    assert!(ehlo.contains("SIZE 4096"), "{ehlo}");
    // Declared too large up front (RFC 1870).
    let (code, text) = c.cmd("MAIL FROM:<a@sender.example> SIZE=5000").await;
    assert_eq!(code, 552, "{text}");
    // Undeclared, but the data is larger: 552 after the dot, and the session goes on.
    assert_eq!(c.cmd("MAIL FROM:<a@sender.example>").await.0, 250);
    assert_eq!(c.cmd("RCPT TO:<tlsrpt@example.net>").await.0, 250);
    let big = "x".repeat(70);
    let mut msg = String::from("Subject: big\r\n\r\n");
    for _ in 0..200 {
        msg.push_str(&big);
        msg.push_str("\r\n");
    }
    let (code, text) = c.data(msg.as_bytes()).await;
    assert_eq!(code, 552, "{text}");
    assert_eq!(c.cmd("NOOP").await.0, 250);
}

#[tokio::test]
async fn rcv_07_max_connections_refused_with_421() {
    let srv = start(|c| c.max_connections = 1).await;
    let _first = connect(srv.addr).await;
    let s = TcpStream::connect(srv.addr).await.unwrap();
    let mut second = Client {
        s: BufReader::new(s),
    };
    let (code, text) = second.reply().await;
    assert_eq!(code, 421, "{text}");
}

#[tokio::test]
async fn bad_data_gets_554_with_the_reason() {
    let srv = start(|_| {}).await;
    let mut c = connect(srv.addr).await;
    assert_eq!(c.cmd("EHLO sender.example").await.0, 250);
    assert_eq!(c.cmd("MAIL FROM:<a@sender.example>").await.0, 250);
    assert_eq!(c.cmd("RCPT TO:<tlsrpt@example.net>").await.0, 250);
    let (code, text) = c
        .data(b"From: a@sender.example\r\nSubject: hello\r\n\r\nNot a report.\r\n")
        .await;
    assert_eq!(code, 554, "{text}");
    assert!(text.len() > 12, "a reason is given: {text}");
    // Empty data (a lone dot) ends too and is refused, not hung.
    assert_eq!(c.cmd("MAIL FROM:<a@sender.example>").await.0, 250);
    assert_eq!(c.cmd("RCPT TO:<tlsrpt@example.net>").await.0, 250);
    assert_eq!(c.cmd("DATA").await.0, 354);
    c.s.get_mut().write_all(b".\r\n").await.unwrap();
    assert_eq!(c.reply().await.0, 554);
}

#[tokio::test]
async fn sec_02_garbage_commands_do_not_crash_the_server() {
    let srv = start(|_| {}).await;
    let mut c = connect(srv.addr).await;
    let (code, _) = c.cmd("HELLO THERE").await;
    assert!((500..=502).contains(&code), "{code}");
    let (code, _) = c.cmd("MAIL FROM:<a@sender.example>").await;
    assert_eq!(code, 503, "MAIL before EHLO");
    let (code, _) = c.cmd(&"A".repeat(10_000)).await;
    assert_eq!(code, 500, "overlong line");
    c.s.get_mut()
        .write_all(b"\x00\xff\xfe binary\r\n")
        .await
        .unwrap();
    assert!(c.reply().await.0 >= 500);
    let (code, text) = c.cmd("BDAT 10 LAST").await;
    assert_eq!(code, 502, "{text}");
    // Too many errors: 421 and the connection closes.
    let mut last = 0;
    for _ in 0..10 {
        // The server may close before reading this; a failed write is fine.
        let _ = c.s.get_mut().write_all(b"FOO\r\n").await;
        last = c.reply().await.0;
        if last == 421 {
            break;
        }
    }
    assert_eq!(last, 421);
    // The server still serves new sessions and stores reports.
    let mut c = connect(srv.addr).await;
    assert_eq!(c.cmd("EHLO sender.example").await.0, 250);
    assert_eq!(c.cmd("MAIL FROM:<a@google.com>").await.0, 250);
    assert_eq!(c.cmd("RCPT TO:<tlsrpt@example.net>").await.0, 250);
    assert_eq!(c.data(&report_message()).await.0, 250);
}

#[tokio::test]
async fn pipelined_commands_get_replies_in_order() {
    let srv = start(|_| {}).await;
    let mut c = connect(srv.addr).await;
    assert_eq!(c.cmd("EHLO sender.example").await.0, 250);
    c.s.get_mut()
        .write_all(b"MAIL FROM:<a@google.com>\r\nRCPT TO:<x@y.example>\r\nRCPT TO:<tlsrpt@example.net>\r\nNOOP\r\n")
        .await
        .unwrap();
    let codes = [
        c.reply().await.0,
        c.reply().await.0,
        c.reply().await.0,
        c.reply().await.0,
    ];
    assert_eq!(codes, [250, 550, 250, 250]);
}

#[tokio::test]
async fn lmtp_gives_one_reply_per_recipient() {
    let srv = start(|c| c.mode = SmtpMode::Lmtp).await;
    let mut c = connect(srv.addr).await;
    // LMTP wants LHLO (RFC 2033 §4.1).
    assert_eq!(c.cmd("EHLO sender.example").await.0, 500);
    assert_eq!(c.cmd("LHLO sender.example").await.0, 250);
    assert_eq!(c.cmd("MAIL FROM:<a@google.com>").await.0, 250);
    assert_eq!(c.cmd("RCPT TO:<tlsrpt@example.net>").await.0, 250);
    assert_eq!(c.cmd("RCPT TO:<nobody@example.net>").await.0, 550);
    assert_eq!(c.cmd("RCPT TO:<reports@example.net>").await.0, 250);
    let (code, text) = c.data(&report_message()).await;
    assert_eq!(code, 250, "{text}");
    // A second reply for the second accepted recipient, and none for the refused one.
    let (code2, text2) = c.reply().await;
    assert_eq!(code2, 250, "{text2}");
    assert_eq!(c.cmd("NOOP").await.0, 250);
}

fn client_tls(ca_pem: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

#[tokio::test]
async fn starttls_then_report_is_stored() {
    let ca = tlsrpt_testkit::https::TestCa::new().unwrap();
    let server_tls = ca.server_config(&["mx.example.net"]).unwrap();
    let srv = start(|c| c.tls = Some(server_tls)).await;
    let mut c = connect(srv.addr).await;
    let (_, ehlo) = c.cmd("EHLO sender.example").await;
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    assert_eq!(c.cmd("STARTTLS").await.0, 220);
    let tcp = c.s.into_inner();
    let tls = client_tls(ca.pem())
        .connect(ServerName::try_from("mx.example.net").unwrap(), tcp)
        .await
        .unwrap();
    let mut c = Client {
        s: BufReader::new(tls),
    };
    // The session starts over: EHLO again, and no STARTTLS offered inside TLS.
    let (code, ehlo) = c.cmd("EHLO sender.example").await;
    assert_eq!(code, 250);
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert_eq!(c.cmd("STARTTLS").await.0, 502);
    assert_eq!(c.cmd("MAIL FROM:<a@google.com>").await.0, 250);
    assert_eq!(c.cmd("RCPT TO:<tlsrpt@example.net>").await.0, 250);
    let (code, text) = c.data(&report_message()).await;
    assert_eq!(code, 250, "{text}");
    let id = stored_id(&text);
    assert!(
        srv.pipeline
            .store()
            .get_received(id)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn rcv_07_idle_client_is_timed_out() {
    let srv = start(|c| c.command_timeout = Duration::from_millis(300)).await;
    let mut c = connect(srv.addr).await;
    let (code, text) = c.reply().await;
    assert_eq!(code, 421, "{text}");
}

#[tokio::test]
async fn rcv_04_temporary_failure_is_451_so_the_sender_retries() {
    let keys = common::Keys::new();
    let dns = common::dns(&keys).await;
    let (pipeline, dir) = common::pipeline(Some(&dns), DkimPolicy::Require).await;
    let srv = start_with(pipeline, dir, |_| {}).await;
    let json = br#"{"organization-name":"Example","date-range":{"start-datetime":"2025-01-01T00:00:00Z","end-datetime":"2025-01-01T23:59:59Z"},"contact-info":"tls@example.com","report-id":"smtp-451","policies":[{"policy":{"policy-type":"no-policy-found","policy-domain":"example.net"},"summary":{"total-successful-session-count":1,"total-failure-session-count":0}}]}"#;
    // Signed with a selector whose key lookup SERVFAILs.
    let msg = common::sign(
        &common::wrap(json, Some("example.com"), "example.com"),
        &keys,
        common::Alg::Rsa,
        "example.com",
        "broken",
        false,
    );
    let mut c = connect(srv.addr).await;
    assert_eq!(c.cmd("EHLO sender.example").await.0, 250);
    assert_eq!(c.cmd("MAIL FROM:<a@example.com>").await.0, 250);
    assert_eq!(c.cmd("RCPT TO:<tlsrpt@example.net>").await.0, 250);
    let (code, text) = c.data(&msg).await;
    assert_eq!(code, 451, "{text}");
    // Unsigned under `require`: kept as rejected, 250 (the sender must not retry).
    assert_eq!(c.cmd("MAIL FROM:<a@example.com>").await.0, 250);
    assert_eq!(c.cmd("RCPT TO:<tlsrpt@example.net>").await.0, 250);
    let (code, text) = c
        .data(&common::wrap(json, Some("example.com"), "example.com"))
        .await;
    assert_eq!(code, 250, "{text}");
    assert!(text.contains("not verified"), "{text}");
}

#[tokio::test]
async fn sec_01_sender_over_its_limit_gets_451_and_the_mta_retries() {
    let options = tlsrpt_receiver::pipeline::PipelineOptions {
        sender_limits: tlsrpt_receiver::senders::SenderLimits {
            per_submitter_per_minute: 1,
            new_senders_per_minute: 0,
            ..Default::default()
        },
        ..Default::default()
    };
    let (pipeline, dir) = common::pipeline_with(None, DkimPolicy::Off, options).await;
    let srv = start_with(pipeline, dir, |_| {}).await;
    let mut c = connect(srv.addr).await;
    assert_eq!(c.cmd("EHLO sender.example").await.0, 250);
    let files = common::testdata(&[".json"]);
    let report = std::fs::read(&files[0]).unwrap();
    let mut replies = Vec::new();
    for submitter in ["google.com", "google.com"] {
        assert_eq!(c.cmd("MAIL FROM:<noreply@google.com>").await.0, 250);
        assert_eq!(c.cmd("RCPT TO:<tlsrpt@example.net>").await.0, 250);
        replies.push(
            c.data(&common::wrap(&report, Some(submitter), "google.com"))
                .await,
        );
    }
    assert_eq!(replies[0].0, 250, "{}", replies[0].1);
    // The second is over the per-submitter limit: a temporary failure naming the sender
    // (the first already took google.com's allowance, duplicate or not).
    let (code, text) = &replies[1];
    assert_eq!(*code, 451, "{text}");
    assert!(
        text.starts_with("451 4.7.1 ") && text.contains("google.com"),
        "{text}"
    );
    assert_eq!(c.cmd("NOOP").await.0, 250);
}
