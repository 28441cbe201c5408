//! DKIM: our signatures verify with mail-auth against DNS serving our public keys.

mod common;

use common::{FROM, SUBMITTER, Shape, data, dns_for, key, sample, verify};
use tlsrpt_reporter::dkim::{DkimError, DkimKeyConfig, SIGNED_HEADERS, Signer};
use tlsrpt_reporter::mail::build_message;

const TO: &str = "tlsrpt@recipient.example";

fn message() -> Vec<u8> {
    let r = sample(Shape::StsWithFailures, "recipient.example");
    build_message(&r, FROM, TO, jiff::Timestamp::now()).unwrap()
}

fn dkim_headers(signed: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(signed);
    let head = text.split("\r\n\r\n").next().unwrap().to_string();
    // Unfold, then pick the DKIM-Signature fields.
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded
        .split("\r\n")
        .filter(|l| l.to_ascii_lowercase().starts_with("dkim-signature:"))
        .map(str::to_string)
        .collect()
}

fn tags(h: &str) -> Vec<(String, String)> {
    h.split_once(':')
        .unwrap()
        .1
        .split(';')
        .filter_map(|t| {
            let (k, v) = t.split_once('=')?;
            Some((
                k.trim().to_string(),
                v.split_whitespace().collect::<String>(),
            ))
        })
        .collect()
}

async fn sign_and_verify(files: &[(&str, &str)]) {
    let keys: Vec<DkimKeyConfig> = files.iter().map(|(f, s)| key(f, s)).collect();
    let signer = Signer::load(&keys).unwrap();
    let dns = dns_for(&signer, |b| b).await;
    let signed = signer.sign(&message()).unwrap();
    let results = verify(&signed, dns.addr()).await;
    assert_eq!(results.len(), files.len(), "{results:?}");
    assert!(results.iter().all(|(pass, _)| *pass), "{results:?}");
}

#[tokio::test]
async fn mail_11_rsa_pkcs8_signature_verifies() {
    sign_and_verify(&[("rsa2048.pkcs8.pem", "rsa8")]).await;
}

#[tokio::test]
async fn mail_11_rsa_pkcs1_signature_verifies() {
    sign_and_verify(&[("rsa2048.pkcs1.pem", "rsa1")]).await;
}

#[tokio::test]
async fn mail_11_ed25519_signature_verifies() {
    sign_and_verify(&[("ed25519.pem", "ed")]).await;
}

#[tokio::test]
async fn mail_11_dual_rsa_and_ed25519_signatures_verify() {
    sign_and_verify(&[("rsa2048.pkcs8.pem", "rsa"), ("ed25519.pem", "ed")]).await;
}

#[tokio::test]
async fn mail_11_tampered_messages_fail() {
    let signer =
        Signer::load(&[key("rsa2048.pkcs8.pem", "rsa"), key("ed25519.pem", "ed")]).unwrap();
    let dns = dns_for(&signer, |b| b).await;
    let signed = signer.sign(&message()).unwrap();
    let text = String::from_utf8(signed.clone()).unwrap();

    // A signed header changed.
    let t1 = text.replace(
        "TLS-Report-Domain: recipient.example",
        "TLS-Report-Domain: attacker.example",
    );
    assert_ne!(t1, text);
    // The body changed: one base64 character of the report flipped.
    let at = text.find("H4sI").unwrap() + 10;
    let mut t2 = text.clone().into_bytes();
    t2[at] = if t2[at] == b'A' { b'B' } else { b'A' };
    // Data appended to the body (what l= would have allowed).
    let t3 = format!("{text}appended\r\n");
    for (what, m) in [
        ("header", t1.into_bytes()),
        ("body", t2),
        ("appended", t3.into_bytes()),
    ] {
        let results = verify(&m, dns.addr()).await;
        assert_eq!(results.len(), 2, "{what}: {results:?}");
        assert!(
            results.iter().all(|(pass, _)| !*pass),
            "{what}: {results:?}"
        );
    }
    // The untampered message still passes (so the failures above are the tampering).
    assert!(verify(&signed, dns.addr()).await.iter().all(|(p, _)| *p));
}

#[tokio::test]
async fn mail_11_wrong_public_key_fails() {
    let signer = Signer::load(&[key("rsa2048.pkcs8.pem", "rsa")]).unwrap();
    // Publish the Ed25519 key under the RSA selector.
    let other = Signer::load(&[key("ed25519.pem", "rsa")]).unwrap();
    let dns = dns_for(&other, |b| b).await;
    let signed = signer.sign(&message()).unwrap();
    let results = verify(&signed, dns.addr()).await;
    assert!(results.iter().all(|(p, _)| !*p), "{results:?}");
}

#[test]
fn mail_06_mail_12_signature_tags() {
    let signer =
        Signer::load(&[key("rsa2048.pkcs8.pem", "rsa"), key("ed25519.pem", "ed")]).unwrap();
    let signed = signer.sign(&message()).unwrap();
    let headers = dkim_headers(&signed);
    assert_eq!(headers.len(), 2);
    for h in &headers {
        let t = tags(h);
        let get = |k: &str| t.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        // MAIL-12: never l=.
        assert!(get("l").is_none(), "{h}");
        assert_eq!(get("d").as_deref(), Some(SUBMITTER), "{h}");
        assert_eq!(get("c").as_deref(), Some("relaxed/relaxed"), "{h}");
        let signed_headers: Vec<String> = get("h")
            .unwrap()
            .split(':')
            .map(|s| s.to_ascii_lowercase())
            .collect();
        // MAIL-06 (+ MAIL-11): these are covered.
        for must in [
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "tls-report-domain",
            "tls-report-submitter",
        ] {
            assert!(
                signed_headers.iter().any(|h| h == must),
                "{must} not in {h}"
            );
        }
    }
    let algs: Vec<String> = headers
        .iter()
        .map(|h| tags(h).into_iter().find(|(k, _)| k == "a").unwrap().1)
        .collect();
    assert_eq!(algs, vec!["rsa-sha256", "ed25519-sha256"]);
    assert!(SIGNED_HEADERS.contains(&"TLS-Report-Submitter"));
}

#[test]
fn mail_13_published_record_has_service_type_tlsrpt() {
    let signer = Signer::load(&[key("rsa2048.pkcs1.pem", "s1"), key("ed25519.pem", "s2")]).unwrap();
    let recs = signer.dns_records();
    assert_eq!(recs[0].0, "s1._domainkey.sender.example");
    // SubjectPublicKeyInfo, as `openssl rsa -pubout` prints it.
    assert!(
        recs[0].1.starts_with(
            "v=DKIM1; k=rsa; s=tlsrpt; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"
        ),
        "{}",
        recs[0].1
    );
    let spki = std::fs::read_to_string(data("rsa2048.spki.b64")).unwrap();
    let pkcs8 = Signer::load(&[key("rsa2048.pkcs8.pem", "s1")]).unwrap();
    assert_eq!(
        pkcs8.dns_records()[0].1,
        recs[0].1,
        "PKCS#1 and PKCS#8 forms: same key"
    );
    assert_eq!(
        recs[0].1,
        format!("v=DKIM1; k=rsa; s=tlsrpt; p={}", spki.trim())
    );
    assert!(
        recs[1].1.starts_with("v=DKIM1; k=ed25519; s=tlsrpt; p="),
        "{}",
        recs[1].1
    );
    assert!(signer.check_alignment(SUBMITTER).is_empty());
    assert!(signer.check_alignment("mail.sender.example").is_empty());
    assert_eq!(
        signer.check_alignment("other.example"),
        vec![SUBMITTER.to_string(), SUBMITTER.to_string()]
    );
}

#[test]
fn key_file_errors_name_the_file_never_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let secret_line = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("missing.pem", vec![], "cannot read"),
        (
            "garbage.pem",
            format!("-----BEGIN PRIVATE KEY-----\n{secret_line}\n-----END PRIVATE KEY-----\n")
                .into_bytes(),
            "rejected",
        ),
        ("empty.pem", b"hello\n".to_vec(), "no PEM block"),
        (
            "cert.pem",
            format!("-----BEGIN CERTIFICATE-----\n{secret_line}\n-----END CERTIFICATE-----\n")
                .into_bytes(),
            "CERTIFICATE found",
        ),
        (
            "enc.pem",
            format!(
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\n{secret_line}\n-----END ENCRYPTED PRIVATE KEY-----\n"
            )
            .into_bytes(),
            "encrypted",
        ),
    ];
    for (name, content, expect) in cases {
        let path = dir.path().join(name);
        if name != "missing.pem" {
            std::fs::write(&path, &content).unwrap();
        }
        let cfg = DkimKeyConfig {
            domain: SUBMITTER.into(),
            selector: "s".into(),
            key: path.clone(),
        };
        let e = Signer::load(&[cfg]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(expect), "{name}: {msg}");
        assert!(msg.contains(name), "{name}: {msg}");
        assert!(!msg.contains("MIIE"), "{name}: key material in {msg}");
        assert!(
            !format!("{e:?}").contains("MIIE"),
            "{name}: key material in {e:?}"
        );
    }
    // EC keys cannot be used for DKIM.
    let e = Signer::load(&[key("p256.sec1.pem", "s")]).unwrap_err();
    assert!(matches!(e, DkimError::Pem { .. }), "{e}");
    assert!(e.to_string().contains("EC PRIVATE KEY"), "{e}");
    // A real key's Debug output shows names only.
    let s = Signer::load(&[key("rsa2048.pkcs8.pem", "s")]).unwrap();
    let dbg = format!("{s:?}");
    assert_eq!(dbg, "[\"s._domainkey.sender.example (rsa)\"]");
    let pem = std::fs::read_to_string(data("rsa2048.pkcs8.pem")).unwrap();
    assert!(!dbg.contains(&pem[30..60]));
}

#[test]
fn bad_names_and_oversized_files_are_refused() {
    let mut cfg = key("ed25519.pem", "bad selector");
    assert!(matches!(
        Signer::load(&[cfg.clone()]).unwrap_err(),
        DkimError::Name {
            field: "selector",
            ..
        }
    ));
    cfg.selector = "ok".into();
    cfg.domain = "".into();
    assert!(matches!(
        Signer::load(&[cfg]).unwrap_err(),
        DkimError::Name {
            field: "domain",
            ..
        }
    ));
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.pem");
    std::fs::write(&big, vec![b'A'; 70_000]).unwrap();
    let e = Signer::load(&[DkimKeyConfig {
        domain: SUBMITTER.into(),
        selector: "s".into(),
        key: big,
    }])
    .unwrap_err();
    assert!(matches!(e, DkimError::TooLarge { .. }), "{e}");
    assert!(
        Signer::load(&[])
            .unwrap()
            .sign(b"From: a@b\r\n\r\nx")
            .is_err()
    );
}

#[tokio::test]
async fn mail_11_ed25519_pkcs8_v2_with_public_key_also_loads() {
    use base64::Engine as _;
    // ring writes PKCS#8 v2 (public key embedded); OpenSSL writes v1: both must load.
    let der = mail_auth::common::crypto::Ed25519Key::generate_pkcs8().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.pem");
    std::fs::write(
        &path,
        format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n"),
    )
    .unwrap();
    let signer = Signer::load(&[DkimKeyConfig {
        domain: SUBMITTER.into(),
        selector: "v2".into(),
        key: path,
    }])
    .unwrap();
    let dns = dns_for(&signer, |b| b).await;
    let signed = signer.sign(&message()).unwrap();
    let results = verify(&signed, dns.addr()).await;
    assert_eq!(results.len(), 1);
    assert!(results[0].0, "{results:?}");
}
