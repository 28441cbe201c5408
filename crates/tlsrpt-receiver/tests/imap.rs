//! IMAP polling (`tlsrpt_receiver::imap`) against a private Dovecot on 127.0.0.1.
//!
//! Each test starts its own `dovecot -F -c CONF` (ECOSYSTEM.md §2.4): passwd-file auth,
//! `maildir:~/Maildir` owned by `nobody` (mail uid ≥ first_valid_uid; root is refused), and
//! base/state/log in a temporary folder. Without Dovecot (or without root, which Dovecot needs
//! to switch users) the tests print SKIP, unless `CI` is set: then they fail and name
//! `scripts/install-dovecot.sh`.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use tlsrpt_receiver::dkim::DkimPolicy;
use tlsrpt_receiver::imap::{ImapConfig, ImapTls, PollStats, Processed, poll_once};
use tlsrpt_store::ReceivedQuery;
use tokio::net::TcpStream;

const USER: &str = "reports";
const PASSWORD: &str = "s3cret-imap-pw";
const NOBODY: u32 = 65534;

struct Dovecot {
    child: Child,
    conf: PathBuf,
    port: u16,
    imaps_port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("doveadm")
            .arg("-c")
            .arg(&self.conf)
            .arg("stop")
            .output();
        std::thread::sleep(Duration::from_millis(100));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(bin: &str) -> Option<PathBuf> {
    for d in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(d).join(bin);
        if p.exists() {
            return Some(p);
        }
    }
    None
}

/// Starts Dovecot, or returns `None` after printing SKIP (panics under `CI`).
async fn dovecot() -> Option<Dovecot> {
    dovecot_with(None).await
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Dovecot, with TLS (STARTTLS on the imap port, implicit on `imaps_port`) when `ca` is
/// given: a leaf for `localhost` issued by that CA.
async fn dovecot_with(ca: Option<&tlsrpt_testkit::https::TestCa>) -> Option<Dovecot> {
    let why = if find("dovecot").is_none() || find("doveadm").is_none() {
        Some("dovecot is not installed")
    } else if unsafe_is_not_root() {
        Some("dovecot needs root to switch to the mail user")
    } else {
        None
    };
    if let Some(why) = why {
        if std::env::var_os("CI").is_some() {
            panic!("{why}: run scripts/install-dovecot.sh (as root) first");
        }
        eprintln!("SKIP: {why} (scripts/install-dovecot.sh installs it)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    std::fs::set_permissions(t, std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = t.join("home");
    std::fs::create_dir(&home).unwrap();
    chown(&home, NOBODY);
    let passwd = t.join("passwd");
    std::fs::write(
        &passwd,
        format!(
            "{USER}:{{PLAIN}}{PASSWORD}:{NOBODY}:{NOBODY}::{}::\n",
            home.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o644)).unwrap();
    let port = free_port();
    let imaps_port = if ca.is_some() { free_port() } else { 0 };
    let ssl = match ca {
        None => "ssl = no".to_string(),
        Some(ca) => {
            let (chain, key) = ca.leaf(&["localhost"]).unwrap();
            std::fs::write(t.join("cert.pem"), pem("CERTIFICATE", &chain[0])).unwrap();
            std::fs::write(t.join("key.pem"), pem("PRIVATE KEY", key.secret_der())).unwrap();
            format!(
                "ssl = yes\nssl_cert = <{t}/cert.pem\nssl_key = <{t}/key.pem\n",
                t = t.display()
            )
        }
    };
    let conf = t.join("dovecot.conf");
    std::fs::write(
        &conf,
        format!(
            r#"protocols = imap
listen = 127.0.0.1
base_dir = {t}/run
state_dir = {t}/state
log_path = {t}/dovecot.log
info_log_path = {t}/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1000
first_valid_gid = 1000
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {t}/passwd
}}
userdb {{
  driver = passwd-file
  args = {t}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Processed {{
    auto = create
  }}
  mailbox Rejected {{
    auto = create
  }}
}}
"#,
            t = t.display()
        ),
    )
    .unwrap();
    let child = Command::new(find("dovecot").unwrap())
        .arg("-F")
        .arg("-c")
        .arg(&conf)
        .spawn()
        .unwrap();
    let d = Dovecot {
        child,
        conf,
        port,
        imaps_port,
        dir,
    };
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Some(d);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(d.dir.path().join("dovecot.log")).unwrap_or_default();
    panic!("dovecot did not start on port {port}; log:\n{log}");
}

fn unsafe_is_not_root() -> bool {
    // No libc call needed: root owns /proc/self/... only when we are root.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) != 0)
        .unwrap_or(true)
}

fn chown(p: &Path, uid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(uid)).unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Dovecot {
    fn config(&self, processed: Processed, rejected: Option<&str>) -> ImapConfig {
        let pw = self.dir.path().join("imap-password");
        std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
        let mut c = ImapConfig::new("127.0.0.1", USER, pw);
        c.port = self.port;
        c.tls = ImapTls::None;
        c.processed = processed;
        c.rejected_folder = rejected.map(str::to_string);
        c.timeout = Duration::from_secs(10);
        c
    }

    async fn session(&self) -> async_imap::Session<TcpStream> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let mut client = async_imap::Client::new(tcp);
        client.read_response().await.unwrap().unwrap();
        client.login(USER, PASSWORD).await.map_err(|e| e.0).unwrap()
    }

    async fn append(&self, messages: &[Vec<u8>]) {
        let mut s = self.session().await;
        for m in messages {
            s.append("INBOX", None, None, m).await.unwrap();
        }
        s.logout().await.unwrap();
    }

    /// UIDs matching `query` in `folder`.
    async fn search(&self, folder: &str, query: &str) -> usize {
        let mut s = self.session().await;
        s.select(folder).await.unwrap();
        let n = s.uid_search(query).await.unwrap().len();
        s.logout().await.unwrap();
        n
    }
}

fn report(n: usize) -> Vec<u8> {
    let json = format!(
        r#"{{"organization-name":"Example Sender","date-range":{{"start-datetime":"2025-01-0{n}T00:00:00Z","end-datetime":"2025-01-0{n}T23:59:59Z"}},"contact-info":"tls@example.com","report-id":"imap-{n}","policies":[{{"policy":{{"policy-type":"no-policy-found","policy-domain":"example.net"}},"summary":{{"total-successful-session-count":{n},"total-failure-session-count":0}}}}]}}"#
    );
    common::wrap(json.as_bytes(), Some("example.com"), "example.com")
}

fn not_a_report() -> Vec<u8> {
    b"From: someone@example.org\r\nTo: tlsrpt@example.net\r\nSubject: hi\r\n\r\nJust text.\r\n"
        .to_vec()
}

#[tokio::test]
async fn rcv_04_imap_poll_stores_moves_and_keeps_rejected() {
    let Some(dc) = dovecot().await else { return };
    let (pipeline, _d) = common::pipeline(None, DkimPolicy::Off).await;
    dc.append(&[report(1), not_a_report(), report(2), report(1)])
        .await;
    let cfg = dc.config(Processed::Move("Processed".into()), Some("Rejected"));
    let stats = poll_once(&cfg, &pipeline).await.unwrap();
    assert_eq!(
        stats,
        PollStats {
            found: 4,
            stored: 2,
            duplicate: 1,
            quarantined: 0,
            rejected: 1,
            deferred: 0,
        }
    );
    let stored = pipeline
        .store()
        .list_received(&ReceivedQuery::default())
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(dc.search("INBOX", "ALL").await, 0);
    assert_eq!(dc.search("Processed", "ALL").await, 3);
    assert_eq!(
        dc.search("Rejected", "ALL").await,
        1,
        "refused mail is kept"
    );
    // A second poll (as after a restart) finds nothing to redo.
    let again = poll_once(&cfg, &pipeline).await.unwrap();
    assert_eq!(again, PollStats::default());
}

#[tokio::test]
async fn imap_processed_seen_flags_and_fetch_does_not_mark_early() {
    let Some(dc) = dovecot().await else { return };
    let (pipeline, _d) = common::pipeline(None, DkimPolicy::Off).await;
    dc.append(&[report(3), not_a_report()]).await;
    let cfg = dc.config(Processed::Seen, None);
    let stats = poll_once(&cfg, &pipeline).await.unwrap();
    assert_eq!((stats.stored, stats.rejected), (1, 1));
    assert_eq!(
        dc.search("INBOX", "ALL").await,
        2,
        "nothing moved or deleted"
    );
    assert_eq!(dc.search("INBOX", "UNSEEN").await, 0);
    assert_eq!(
        dc.search("INBOX", "FLAGGED").await,
        1,
        "the refused one is flagged"
    );
    assert_eq!(poll_once(&cfg, &pipeline).await.unwrap().found, 0);
}

#[tokio::test]
async fn rcv_04_imap_temporary_failure_leaves_mail_unseen_for_retry() {
    let Some(dc) = dovecot().await else { return };
    let keys = common::Keys::new();
    let dns = common::dns(&keys).await;
    let (pipeline, _d) = common::pipeline(Some(&dns), DkimPolicy::Require).await;
    // Signed with a selector whose key lookup SERVFAILs: the pipeline says Unavailable.
    let msg = common::sign(
        &report(4),
        &keys,
        common::Alg::Rsa,
        "example.com",
        "broken",
        false,
    );
    dc.append(&[msg]).await;
    let cfg = dc.config(Processed::Delete, Some("Rejected"));
    let stats = poll_once(&cfg, &pipeline).await.unwrap();
    assert_eq!((stats.found, stats.deferred), (1, 1));
    assert_eq!(
        dc.search("INBOX", "UNSEEN").await,
        1,
        "left for the next poll"
    );
    assert_eq!(dc.search("Rejected", "ALL").await, 0);
    assert_eq!(common::received_count(pipeline.store()).await, 0);
    // Retried on the next poll, still deferred (the key is still unavailable).
    assert_eq!(poll_once(&cfg, &pipeline).await.unwrap().deferred, 1);
}

#[tokio::test]
async fn imap_delete_expunges_processed_mail() {
    let Some(dc) = dovecot().await else { return };
    let (pipeline, _d) = common::pipeline(None, DkimPolicy::Off).await;
    dc.append(&[report(5)]).await;
    let cfg = dc.config(Processed::Delete, None);
    assert_eq!(poll_once(&cfg, &pipeline).await.unwrap().stored, 1);
    assert_eq!(dc.search("INBOX", "ALL").await, 0);
}

#[tokio::test]
async fn imap_wrong_password_is_a_login_error_without_the_password() {
    let Some(dc) = dovecot().await else { return };
    let (pipeline, _d) = common::pipeline(None, DkimPolicy::Off).await;
    let mut cfg = dc.config(Processed::Seen, None);
    let pw = dc.dir.path().join("wrong");
    std::fs::write(&pw, "not-the-password-xyz").unwrap();
    cfg.password_file = pw;
    let err = poll_once(&cfg, &pipeline).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("login as reports"), "{text}");
    assert!(!text.contains("not-the-password-xyz"), "{text}");
    assert!(!format!("{cfg:?}").contains("not-the-password"));
    // A missing password file names the file.
    cfg.password_file = dc.dir.path().join("missing");
    let err = poll_once(&cfg, &pipeline).await.unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[tokio::test]
async fn imap_oversized_message_is_not_downloaded_and_kept() {
    let Some(dc) = dovecot().await else { return };
    let (pipeline, _d) = common::pipeline(None, DkimPolicy::Off).await;
    dc.append(&[report(6)]).await;
    let mut cfg = dc.config(Processed::Seen, Some("Rejected"));
    cfg.max_message_bytes = 100;
    let stats = poll_once(&cfg, &pipeline).await.unwrap();
    assert_eq!((stats.rejected, stats.stored), (1, 0));
    assert_eq!(dc.search("Rejected", "ALL").await, 1);
    let s = pipeline
        .store()
        .list_received(&ReceivedQuery::default())
        .await;
    assert!(s.unwrap().is_empty());
}

fn trusting(ca: &tlsrpt_testkit::https::TestCa) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

#[tokio::test]
async fn imap_starttls_and_implicit_tls_poll() {
    let ca = tlsrpt_testkit::https::TestCa::new().unwrap();
    let Some(dc) = dovecot_with(Some(&ca)).await else {
        return;
    };
    let (pipeline, _d) = common::pipeline(None, DkimPolicy::Off).await;
    dc.append(&[report(7)]).await;
    let mut cfg = dc.config(Processed::Seen, None);
    cfg.host = "localhost".into();
    cfg.tls = ImapTls::StartTls;
    cfg.tls_config = Some(trusting(&ca));
    assert_eq!(poll_once(&cfg, &pipeline).await.unwrap().stored, 1);

    dc.append(&[report(8)]).await;
    cfg.tls = ImapTls::Implicit;
    cfg.port = dc.imaps_port;
    assert_eq!(poll_once(&cfg, &pipeline).await.unwrap().stored, 1);

    // A certificate from another CA is refused: nothing is read.
    dc.append(&[report(9)]).await;
    let other = tlsrpt_testkit::https::TestCa::new().unwrap();
    cfg.tls_config = Some(trusting(&other));
    let err = poll_once(&cfg, &pipeline).await.unwrap_err();
    assert!(
        matches!(err, tlsrpt_receiver::imap::ImapError::Tls(_)),
        "{err}"
    );
    assert_eq!(dc.search("INBOX", "UNSEEN").await, 1);
}
