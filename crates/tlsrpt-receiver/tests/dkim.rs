//! DKIM through the whole pipeline, against keys served by an in-process DNS server and
//! messages signed in the test (RFC 8460 §3, REQUIREMENTS RCV-01..03, SEC-09).

mod common;

use common::{Alg, Keys, dns, mail, pipeline, received_count, sign, wrap};
use tlsrpt_receiver::dkim::DkimPolicy;
use tlsrpt_receiver::pipeline::{Accepted, Rejected};
use tlsrpt_store::{ReceivedQuery, StatusFilter};

fn google_json() -> Vec<u8> {
    std::fs::read(
        common::testdata(&["google.json"])
            .into_iter()
            .find(|p| p.ends_with("cry-inc/google.json"))
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn rcv_01_every_testdata_json_signed_is_stored() {
    let keys = Keys::new();
    let dns = dns(&keys).await;
    let (p, _dir) = pipeline(Some(&dns), DkimPolicy::Require).await;
    let mut seen = std::collections::HashMap::new();
    let mut stored = 0;
    for (i, path) in common::testdata(&[".json", ".json.gz"]).iter().enumerate() {
        let bytes = std::fs::read(path).unwrap();
        let expected = tlsrpt_core::read::read_report(&bytes, &Default::default());
        let r = expected.as_ref().ok().map(|r| r.report.clone());
        let contact = r.as_ref().and_then(|r| r.contact_info.clone());
        let domain = contact
            .as_deref()
            .and_then(tlsrpt_receiver::dkim::contact_domain)
            .unwrap_or_else(|| "sender.example".to_owned());
        let signer = tlsrpt_receiver::dkim::organizational_domain(&domain);
        let alg = if i % 2 == 0 { Alg::Rsa } else { Alg::Ed25519 };
        let sel = if i % 2 == 0 { "rsa" } else { "ed" };
        let msg = sign(
            &wrap(&bytes, Some(&domain), &domain),
            &keys,
            alg,
            &signer,
            sel,
            false,
        );
        let got = p.ingest(mail(&msg)).await;
        match (&expected, got) {
            (Ok(reading), Ok(Accepted::Stored { id })) => {
                let key = (
                    reading.report.organization_name.clone(),
                    reading.report.report_id.clone(),
                    reading.report.date_range,
                );
                assert!(seen.insert(key, id).is_none(), "{path:?} stored twice");
                let d = p.store().get_received(id).await.unwrap().unwrap();
                assert_eq!(d.summary.dkim, "pass", "{path:?}");
                assert_eq!(d.status, "stored");
                assert_eq!(d.dkim_domain.as_deref(), Some(signer.as_str()));
                assert_eq!(d.dkim_selector.as_deref(), Some(sel));
                // RCV-03: the key's missing s=tlsrpt is recorded, never required.
                let noted = d
                    .deviations
                    .iter()
                    .any(|x| x.rule == "RCV-03" && x.message.contains("no s= tag"));
                assert_eq!(noted, sel == "rsa", "{path:?}: {:?}", d.deviations);
                stored += 1;
            }
            (Ok(reading), Ok(Accepted::Duplicate { id })) => {
                // The .json and .json.gz of one report are the same report.
                let key = (
                    reading.report.organization_name.clone(),
                    reading.report.report_id.clone(),
                    reading.report.date_range,
                );
                assert_eq!(seen.get(&key), Some(&id), "{path:?}");
            }
            (Err(_), Err(Rejected::BadData { .. })) => {}
            (e, g) => panic!("{path:?}: reader said {e:?}, pipeline said {g:?}"),
        }
    }
    assert!(stored >= 10, "only {stored} stored");
}

#[tokio::test]
async fn rcv_01_sec_09_unsigned_eml_is_kept_as_rejected_under_require() {
    let keys = Keys::new();
    let dns = dns(&keys).await;
    let (p, _dir) = pipeline(Some(&dns), DkimPolicy::Require).await;
    for path in common::testdata(&[".eml"]) {
        let bytes = std::fs::read(&path).unwrap();
        let got = p.ingest(mail(&bytes)).await.unwrap();
        let Accepted::Quarantined { id, reason } = got else {
            panic!("{path:?}: {got:?}")
        };
        assert!(reason.contains("no DKIM-Signature"), "{reason}");
        let d = p.store().get_received(id).await.unwrap().unwrap();
        assert_eq!(d.status, "rejected");
        assert_eq!(d.summary.dkim, "none");
        assert_eq!(d.reject_reason.as_deref(), Some(reason.as_str()));
        // Never silently dropped: the original message is kept, byte for byte.
        assert_eq!(
            p.store().get_received_raw(id).await.unwrap().unwrap(),
            bytes
        );
    }
    // Listed only when asked for.
    let listed = p
        .store()
        .list_received(&ReceivedQuery::default())
        .await
        .unwrap();
    assert!(listed.is_empty(), "{listed:?}");
    let rejected = p
        .store()
        .list_received(&ReceivedQuery {
            status: StatusFilter::Rejected,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rejected.len(), 2);
}

#[tokio::test]
async fn sec_09_unsigned_mail_is_never_marked_verified_under_prefer_or_off() {
    let keys = Keys::new();
    let dns = dns(&keys).await;
    let (p, _dir) = pipeline(Some(&dns), DkimPolicy::Prefer).await;
    let (off, _dir2) = pipeline(None, DkimPolicy::Off).await;
    for path in common::testdata(&[".eml"]) {
        let bytes = std::fs::read(&path).unwrap();
        let Accepted::Stored { id } = p.ingest(mail(&bytes)).await.unwrap() else {
            panic!("{path:?}")
        };
        let d = p.store().get_received(id).await.unwrap().unwrap();
        assert_eq!(
            (d.status.as_str(), d.summary.dkim.as_str()),
            ("stored", "none")
        );
        assert!(d.reject_reason.unwrap().starts_with("unverified"));

        let Accepted::Stored { id } = off.ingest(mail(&bytes)).await.unwrap() else {
            panic!("{path:?}")
        };
        let d = off.store().get_received(id).await.unwrap().unwrap();
        assert_eq!(d.summary.dkim, "skipped");
    }
}

#[tokio::test]
async fn rcv_01_tampered_body_fails() {
    let keys = Keys::new();
    let dns = dns(&keys).await;
    let (p, _dir) = pipeline(Some(&dns), DkimPolicy::Require).await;
    let msg = sign(
        &wrap(&google_json(), Some("google.com"), "google.com"),
        &keys,
        Alg::Rsa,
        "google.com",
        "rsa",
        false,
    );
    // Swap the text part's content: the body hash no longer matches.
    let text = String::from_utf8(msg).unwrap();
    let tampered = text.replace("A TLS report.", "A TLS rep0rt.");
    let got = p.ingest(mail(tampered.as_bytes())).await.unwrap();
    let Accepted::Quarantined { id, reason } = got else {
        panic!("{got:?}")
    };
    assert!(reason.contains("body hash"), "{reason}");
    let d = p.store().get_received(id).await.unwrap().unwrap();
    assert_eq!(d.summary.dkim, "fail");
    // The untampered copy is still accepted afterwards: the forgery did not take its key.
    let good = sign(
        &wrap(&google_json(), Some("google.com"), "google.com"),
        &keys,
        Alg::Ed25519,
        "google.com",
        "ed",
        false,
    );
    assert!(matches!(
        p.ingest(mail(&good)).await.unwrap(),
        Accepted::Stored { .. }
    ));
}

#[tokio::test]
async fn rcv_01_wrong_signing_domain_fails() {
    let keys = Keys::new();
    let dns = dns(&keys).await;
    let (p, _dir) = pipeline(Some(&dns), DkimPolicy::Require).await;
    // A valid signature, but by evil.example for a report claiming to be Google's.
    let msg = sign(
        &wrap(&google_json(), Some("google.com"), "google.com"),
        &keys,
        Alg::Rsa,
        "evil.example",
        "rsa",
        false,
    );
    let Accepted::Quarantined { reason, .. } = p.ingest(mail(&msg)).await.unwrap() else {
        panic!()
    };
    assert!(reason.contains("not aligned"), "{reason}");
    // Submitter and contact-info must both be covered: a signature by the submitter's domain
    // does not vouch for a contact-info of another organisation.
    let msg = sign(
        &wrap(&google_json(), Some("evil.example"), "evil.example"),
        &keys,
        Alg::Rsa,
        "evil.example",
        "rsa",
        false,
    );
    let Accepted::Quarantined { reason, .. } = p.ingest(mail(&msg)).await.unwrap() else {
        panic!()
    };
    assert!(reason.contains("not aligned"), "{reason}");
}

#[tokio::test]
async fn rcv_01_subdomain_of_the_organisation_aligns() {
    let keys = Keys::new();
    let dns = dns(&keys).await;
    let (p, _dir) = pipeline(Some(&dns), DkimPolicy::Require).await;
    // Submitter mail.google.com, contact-info @google.com, signed by google.com.
    let msg = sign(
        &wrap(&google_json(), Some("mail.google.com"), "google.com"),
        &keys,
        Alg::Rsa,
        "google.com",
        "rsa",
        false,
    );
    assert!(matches!(
        p.ingest(mail(&msg)).await.unwrap(),
        Accepted::Stored { .. }
    ));
}

#[tokio::test]
async fn rcv_02_body_length_signature_does_not_count() {
    let keys = Keys::new();
    let dns = dns(&keys).await;
    let (p, _dir) = pipeline(Some(&dns), DkimPolicy::Require).await;
    let msg = sign(
        &wrap(&google_json(), Some("google.com"), "google.com"),
        &keys,
        Alg::Rsa,
        "google.com",
        "rsa",
        true,
    );
    assert!(
        String::from_utf8_lossy(&msg).contains("l="),
        "signer did not add l="
    );
    let Accepted::Quarantined { reason, .. } = p.ingest(mail(&msg)).await.unwrap() else {
        panic!()
    };
    assert!(reason.contains("'l='"), "{reason}");
}

#[tokio::test]
async fn rcv_03_key_excluding_tlsrpt_service_does_not_count_but_star_and_absent_do() {
    let keys = Keys::new();
    let dns = dns(&keys).await;
    let (p, _dir) = pipeline(Some(&dns), DkimPolicy::Require).await;
    let wrapped = wrap(&google_json(), Some("google.com"), "google.com");
    let msg = sign(&wrapped, &keys, Alg::Rsa, "google.com", "emailonly", false);
    let Accepted::Quarantined { reason, .. } = p.ingest(mail(&msg)).await.unwrap() else {
        panic!()
    };
    assert!(reason.contains("s=email"), "{reason}");
    let msg = sign(&wrapped, &keys, Alg::Rsa, "google.com", "star", false);
    let Accepted::Stored { id } = p.ingest(mail(&msg)).await.unwrap() else {
        panic!()
    };
    assert_eq!(
        p.store()
            .get_received(id)
            .await
            .unwrap()
            .unwrap()
            .dkim_selector
            .as_deref(),
        Some("star")
    );
}

#[tokio::test]
async fn unknown_selector_is_a_permanent_failure_and_bad_data_wins() {
    let keys = Keys::new();
    let dns = dns(&keys).await;
    let (p, _dir) = pipeline(Some(&dns), DkimPolicy::Require).await;
    let msg = sign(
        &wrap(&common::gzip(b"{}"), Some("example.com"), "example.com"),
        &keys,
        Alg::Rsa,
        "example.com",
        "broken",
        false,
    );
    // `{}` is not a usable report: bad data wins before DNS is asked.
    assert!(matches!(
        p.ingest(mail(&msg)).await,
        Err(Rejected::BadData { .. })
    ));
    let json = std::fs::read(
        common::testdata(&["rfc-example.json"])
            .into_iter()
            .next()
            .unwrap(),
    )
    .unwrap();
    let reading = tlsrpt_core::read::read_report(&json, &Default::default()).unwrap();
    let contact = reading.report.contact_info.unwrap();
    let domain = tlsrpt_receiver::dkim::contact_domain(&contact).unwrap();
    let msg = sign(
        &wrap(&json, Some(&domain), &domain),
        &keys,
        Alg::Rsa,
        &domain,
        "broken-selector-unknown",
        false,
    );
    // An unknown selector is NXDOMAIN: a permanent failure, kept as rejected.
    assert!(matches!(
        p.ingest(mail(&msg)).await.unwrap(),
        Accepted::Quarantined { .. }
    ));
}

#[tokio::test]
async fn servfail_on_the_key_is_unavailable() {
    let keys = Keys::new();
    let dns = dns(&keys).await;
    let (p, _dir) = pipeline(Some(&dns), DkimPolicy::Require).await;
    let json = br#"{"organization-name":"Example","date-range":{"start-datetime":"2025-01-01T00:00:00Z","end-datetime":"2025-01-01T23:59:59Z"},"contact-info":"tls@example.com","report-id":"servfail-1","policies":[{"policy":{"policy-type":"no-policy-found","policy-domain":"example.net"},"summary":{"total-successful-session-count":1,"total-failure-session-count":0}}]}"#;
    let msg = sign(
        &wrap(json, Some("example.com"), "example.com"),
        &keys,
        Alg::Rsa,
        "example.com",
        "broken",
        false,
    );
    let got = p.ingest(mail(&msg)).await;
    let Err(e @ Rejected::Unavailable(_)) = got else {
        panic!("{got:?}")
    };
    assert_eq!(e.sysexit(), 75);
    assert_eq!(
        received_count(p.store()).await,
        0,
        "nothing stored on a temporary failure"
    );
}

#[tokio::test]
async fn trusted_authentication_results_counts_only_for_the_configured_host() {
    let keys = Keys::new();
    let dns = dns(&keys).await;
    let (store, _dir) = common::store().await;
    let v = tlsrpt_receiver::dkim::DkimVerifier::new(&tlsrpt_receiver::dkim::DkimConfig {
        policy: DkimPolicy::Require,
        nameservers: vec![dns.addr()],
        trusted_authserv_id: Some("mx.example.net".into()),
        timeout: None,
    })
    .unwrap();
    let p = tlsrpt_receiver::pipeline::Pipeline::new(store, Default::default(), v);
    let base = wrap(&google_json(), Some("google.com"), "google.com");
    let mut other =
        b"Authentication-Results: mx.evil.example; dkim=pass header.d=google.com\r\n".to_vec();
    other.extend_from_slice(&base);
    assert!(matches!(
        p.ingest(mail(&other)).await.unwrap(),
        Accepted::Quarantined { .. }
    ));
    let mut ours =
        b"Authentication-Results: mx.example.net (gateway);\r\n dkim=pass (good) header.d=google.com header.s=x\r\n"
            .to_vec();
    ours.extend_from_slice(&base);
    let Accepted::Stored { id } = p.ingest(mail(&ours)).await.unwrap() else {
        panic!()
    };
    let d = p.store().get_received(id).await.unwrap().unwrap();
    assert_eq!(d.summary.dkim, "pass");
    assert_eq!(d.dkim_domain.as_deref(), Some("google.com"));
}

#[tokio::test]
async fn rcv_01_unaligned_signatures_do_not_hide_a_good_one() {
    let keys = Keys::new();
    let dns = dns(&keys).await;
    let (p, _dir) = pipeline(Some(&dns), DkimPolicy::Require).await;
    let mut msg = sign(
        &wrap(&google_json(), Some("google.com"), "google.com"),
        &keys,
        Alg::Ed25519,
        "google.com",
        "ed",
        false,
    );
    for _ in 0..20 {
        msg = sign(&msg, &keys, Alg::Ed25519, "evil.example", "ed", false);
    }
    let Accepted::Stored { id } = p.ingest(mail(&msg)).await.unwrap() else {
        panic!()
    };
    let d = p.store().get_received(id).await.unwrap().unwrap();
    assert_eq!(d.dkim_domain.as_deref(), Some("google.com"));
    // s=tlsrpt on the Ed25519 key: nothing to note.
    assert!(!d.deviations.iter().any(|x| x.rule == "RCV-03"));
}

#[tokio::test]
async fn rcv_01_many_aligned_bad_signatures_are_capped() {
    let keys = Keys::new();
    let dns = dns(&keys).await;
    let (p, _dir) = pipeline(Some(&dns), DkimPolicy::Require).await;
    let mut msg = wrap(&google_json(), Some("google.com"), "google.com");
    for i in 0..10 {
        msg = sign(
            &msg,
            &keys,
            Alg::Rsa,
            "google.com",
            &format!("nokey{i}"),
            false,
        );
    }
    let Accepted::Quarantined { reason, .. } = p.ingest(mail(&msg)).await.unwrap() else {
        panic!()
    };
    assert!(
        reason.contains("6 more aligned signatures not tried"),
        "{reason}"
    );
}
