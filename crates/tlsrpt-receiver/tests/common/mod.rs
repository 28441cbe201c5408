//! Shared test helpers: an in-process DNS server publishing DKIM keys, report messages built
//! and signed in the test, and a pipeline on a fresh SQLite store.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use tlsrpt_core::read::Limits;
use tlsrpt_receiver::dkim::{DkimConfig, DkimPolicy, DkimVerifier};
use tlsrpt_receiver::pipeline::{Intake, Pipeline, PipelineOptions, Via};
use tlsrpt_store::Store;
use tlsrpt_testkit::dns::DnsServer;

/// A 2048-bit RSA key made with `openssl genpkey` for these tests only (ring cannot generate
/// RSA keys); its SubjectPublicKeyInfo is the `.pub.b64` beside it.
pub const RSA_PEM: &str = include_str!("../fixtures/dkim-test-rsa.pem");
/// Base64 SubjectPublicKeyInfo of [`RSA_PEM`], as DKIM's `p=` wants it.
pub const RSA_PUB_B64: &str = include_str!("../fixtures/dkim-test-rsa.pub.b64");

/// Domains whose keys the DNS server publishes.
pub const DOMAINS: &[&str] = &[
    "google.com",
    "microsoft.com",
    "mimecast.org",
    "ppatk.go.id",
    "company-x.example",
    "example.com",
    "example.net",
    "sender.example.com",
    "evil.example",
    "sender.example",
];

/// Selectors: `rsa` (no s=), `ed` (Ed25519, s=tlsrpt), `emailonly` (RSA, s=email: RCV-03),
/// `star` (RSA, s=*).
pub struct Keys {
    pub ed_pkcs8: Vec<u8>,
    pub ed_pub_b64: String,
}

impl Keys {
    pub fn new() -> Keys {
        let ed_pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
        let key = Ed25519Key::from_pkcs8_der(&ed_pkcs8).unwrap();
        let ed_pub_b64 = base64::engine::general_purpose::STANDARD.encode(key.public_key());
        Keys {
            ed_pkcs8,
            ed_pub_b64,
        }
    }
}

/// Splits a TXT value into ≤255-byte character-strings.
fn chunks(s: &str) -> Vec<String> {
    s.as_bytes()
        .chunks(250)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect()
}

/// Starts a DNS server publishing every selector for every domain in [`DOMAINS`], plus a
/// SERVFAIL for `broken._domainkey.example.com`.
pub async fn dns(keys: &Keys) -> DnsServer {
    let mut b = DnsServer::builder();
    let rsa_pub = RSA_PUB_B64.trim();
    for d in DOMAINS {
        b = b.zone(d);
        for (sel, rec) in [
            ("rsa", format!("v=DKIM1; k=rsa; p={rsa_pub}")),
            ("emailonly", format!("v=DKIM1; k=rsa; s=email; p={rsa_pub}")),
            ("star", format!("v=DKIM1; k=rsa; s=*; p={rsa_pub}")),
            (
                "ed",
                format!("v=DKIM1; k=ed25519; s=tlsrpt; p={}", keys.ed_pub_b64),
            ),
        ] {
            let parts = chunks(&rec);
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            b = b.txt(&format!("{sel}._domainkey.{d}"), &refs);
        }
    }
    b = b.servfail("broken._domainkey.example.com");
    b.start().await.unwrap()
}

/// How to sign.
#[derive(Clone, Copy, Debug)]
pub enum Alg {
    Rsa,
    Ed25519,
}

/// Signs `message` as `d=domain s=selector`, optionally with `l=` (body length).
pub fn sign(
    message: &[u8],
    keys: &Keys,
    alg: Alg,
    domain: &str,
    selector: &str,
    body_length: bool,
) -> Vec<u8> {
    let headers = [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "TLS-Report-Domain",
        "TLS-Report-Submitter",
        "Content-Type",
    ];
    let sig = match alg {
        Alg::Rsa => {
            #[allow(deprecated)]
            let key = RsaKey::<Sha256>::from_pkcs8_pem(RSA_PEM).unwrap();
            DkimSigner::from_key(key)
                .domain(domain)
                .selector(selector)
                .headers(headers)
                .body_length(body_length)
                .sign(message)
                .unwrap()
                .to_header()
        }
        Alg::Ed25519 => {
            let key = Ed25519Key::from_pkcs8_der(&keys.ed_pkcs8).unwrap();
            DkimSigner::from_key(key)
                .domain(domain)
                .selector(selector)
                .headers(headers)
                .body_length(body_length)
                .sign(message)
                .unwrap()
                .to_header()
        }
    };
    let mut out = sig.into_bytes();
    out.extend_from_slice(message);
    out
}

/// Gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// An RFC 8460 §5.3 report message around `report` (gzip or JSON bytes), with the given
/// `TLS-Report-Submitter` (omitted when `None`) and From domain.
pub fn wrap(report: &[u8], submitter: Option<&str>, from_domain: &str) -> Vec<u8> {
    let gz = if tlsrpt_core::read::is_gzip(report) {
        report.to_vec()
    } else {
        gzip(report)
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(&gz);
    let mut body_b64 = String::new();
    for line in b64.as_bytes().chunks(76) {
        body_b64.push_str(std::str::from_utf8(line).unwrap());
        body_b64.push_str("\r\n");
    }
    let mut m = String::new();
    m.push_str(&format!("From: tlsrpt-noreply@{from_domain}\r\n"));
    m.push_str("To: tlsrpt@example.net\r\n");
    m.push_str("Subject: Report Domain: example.net Submitter: x Report-ID: <1@x>\r\n");
    m.push_str("Date: Fri, 09 May 2025 16:54:30 +0000\r\n");
    m.push_str(&format!("Message-ID: <{}@{from_domain}>\r\n", rand_id()));
    m.push_str("TLS-Report-Domain: example.net\r\n");
    if let Some(s) = submitter {
        m.push_str(&format!("TLS-Report-Submitter: {s}\r\n"));
    }
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str("Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"BOUNDARY\"\r\n");
    m.push_str("\r\n");
    m.push_str("--BOUNDARY\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nA TLS report.\r\n");
    m.push_str("--BOUNDARY\r\nContent-Type: application/tlsrpt+gzip\r\n");
    m.push_str("Content-Transfer-Encoding: base64\r\n");
    m.push_str("Content-Disposition: attachment; filename=\"report.json.gz\"\r\n\r\n");
    m.push_str(&body_b64);
    m.push_str("--BOUNDARY--\r\n");
    m.into_bytes()
}

fn rand_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh store in a temporary folder (kept alive by the returned guard).
pub async fn store() -> (Arc<Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    (Arc::new(Store::open(&url).await.unwrap()), dir)
}

/// A DKIM verifier querying `dns` (the system's resolver when `None`) under `policy`.
pub fn verifier(dns: Option<&DnsServer>, policy: DkimPolicy) -> DkimVerifier {
    DkimVerifier::new(&DkimConfig {
        policy,
        nameservers: dns.map(|d| vec![d.addr()]).unwrap_or_default(),
        trusted_authserv_id: None,
        timeout: Some(std::time::Duration::from_secs(2)),
    })
    .unwrap()
}

/// A pipeline on a fresh store, verifying against `dns` under `policy`.
pub async fn pipeline(
    dns: Option<&DnsServer>,
    policy: DkimPolicy,
) -> (Pipeline, tempfile::TempDir) {
    pipeline_with(dns, policy, PipelineOptions::default()).await
}

/// [`pipeline`] with intake `options` (sender limits, our domains).
pub async fn pipeline_with(
    dns: Option<&DnsServer>,
    policy: DkimPolicy,
    options: PipelineOptions,
) -> (Pipeline, tempfile::TempDir) {
    let (store, dir) = store().await;
    let p = Pipeline::with_options(store, Limits::default(), verifier(dns, policy), options);
    (p, dir)
}

/// How many reports `store` holds, stored and rejected alike.
pub async fn received_count(store: &Store) -> usize {
    store
        .list_received(&tlsrpt_store::ReceivedQuery {
            status: tlsrpt_store::StatusFilter::All,
            ..Default::default()
        })
        .await
        .unwrap()
        .len()
}

/// An HTTPS intake of `bytes` with Content-Type `ct`, from the loopback address.
pub fn https<'a>(bytes: &'a [u8], ct: &'a str) -> Intake<'a> {
    Intake {
        bytes,
        via: Via::Https,
        content_type: Some(ct),
        content_encoding: None,
        peer: Some([127, 0, 0, 1].into()),
    }
}

/// A mail intake of `bytes` (a whole message).
pub fn mail(bytes: &[u8]) -> Intake<'_> {
    Intake {
        bytes,
        via: Via::Mail,
        content_type: None,
        content_encoding: None,
        peer: None,
    }
}

/// Every file under the shared testdata reports folder, with the given extension(s).
pub fn testdata(exts: &[&str]) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/reports");
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if exts
                .iter()
                .any(|x| p.file_name().unwrap().to_str().unwrap().ends_with(x))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no testdata found");
    out
}
