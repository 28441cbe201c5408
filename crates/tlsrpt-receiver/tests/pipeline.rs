//! The intake pipeline over HTTPS bodies, the hostile corpus, de-duplication and storage
//! (REQUIREMENTS RCV-06..11, SEC-02). DKIM has its own file (tests/dkim.rs).

mod common;

use std::sync::Arc;

use common::{gzip, https, pipeline, received_count};
use tlsrpt_receiver::dkim::DkimPolicy;
use tlsrpt_receiver::pipeline::{Accepted, Intake, Pipeline, Rejected, Via};
use tlsrpt_store::ReceivedQuery;

/// A small valid report; `extra` is spliced into the first failure detail.
fn report(id: &str, org: &str, detail: &str) -> String {
    format!(
        r#"{{"organization-name":{org},"date-range":{{"start-datetime":"2025-03-01T00:00:00Z","end-datetime":"2025-03-01T23:59:59Z"}},"contact-info":"tls@example.com","report-id":"{id}","policies":[{{"policy":{{"policy-type":"sts","policy-string":["version: STSv1","mode: enforce","mx: mx.example.net","max_age: 86400"],"policy-domain":"example.net","mx-host":["mx.example.net"]}},"summary":{{"total-successful-session-count":10,"total-failure-session-count":2}},"failure-details":[{{"result-type":"certificate-expired","sending-mta-ip":"192.0.2.1","receiving-mx-hostname":"mx.example.net","failed-session-count":2{detail}}}]}}]}}"#,
        org = serde_json::to_string(org).unwrap()
    )
}

#[tokio::test]
async fn https_intake_takes_every_testdata_report_as_json_and_gzip() {
    let (p, _dir) = pipeline(None, DkimPolicy::Require).await;
    for path in common::testdata(&[".json", ".json.gz"]) {
        let bytes = std::fs::read(&path).unwrap();
        let expected = tlsrpt_core::read::read_report(&bytes, &Default::default());
        let (as_json, as_gzip) = if tlsrpt_core::read::is_gzip(&bytes) {
            let json = tlsrpt_core::read::gunzip(&bytes, &Default::default()).unwrap();
            (json, bytes.clone())
        } else {
            (bytes.clone(), gzip(&bytes))
        };
        let a = p.ingest(https(&as_gzip, "application/tlsrpt+gzip")).await;
        let b = p
            .ingest(https(&as_json, "application/tlsrpt+json; charset=utf-8"))
            .await;
        match (expected, a, b) {
            (Ok(reading), Ok(first), Ok(Accepted::Duplicate { id })) => {
                // The first copy is stored (or a duplicate of the other file of this report);
                // the second is always a duplicate of it.
                let first_id = match first {
                    Accepted::Stored { id } | Accepted::Duplicate { id } => id,
                    other => panic!("{path:?}: {other:?}"),
                };
                assert_eq!(first_id, id);
                let d = p.store().get_received(id).await.unwrap().unwrap();
                assert_eq!(d.summary.received_via, "https");
                assert_eq!(d.summary.dkim, "skipped");
                let totals = reading.report.session_totals();
                assert_eq!(
                    d.summary.successful_sessions,
                    totals.total_successful_session_count
                );
                assert_eq!(
                    d.summary.failed_sessions,
                    totals.total_failure_session_count
                );
            }
            (Err(_), Err(Rejected::BadData { .. }), Err(Rejected::BadData { .. })) => {}
            (e, a, b) => panic!("{path:?}: reader {e:?}, gzip {a:?}, json {b:?}"),
        }
    }
}

#[tokio::test]
async fn json_30_sessions_under_sts_and_tlsa_are_counted_once() {
    let (p, _dir) = pipeline(None, DkimPolicy::Require).await;
    let path = common::testdata(&["microsoft.json"])
        .into_iter()
        .find(|p| p.ends_with("cry-inc/microsoft.json"))
        .unwrap();
    let bytes = std::fs::read(path).unwrap();
    let raw = tlsrpt_core::read::read_report(&bytes, &Default::default())
        .unwrap()
        .report
        .raw_totals();
    let Accepted::Stored { id } = p
        .ingest(https(&bytes, "application/tlsrpt+json"))
        .await
        .unwrap()
    else {
        panic!()
    };
    let s = p.store().get_received(id).await.unwrap().unwrap().summary;
    // Microsoft reports each session under sts and tlsa: the raw sum counts them twice.
    assert_eq!(
        s.successful_sessions * 2,
        raw.total_successful_session_count
    );
}

#[tokio::test]
async fn http_02_media_types_and_encodings() {
    let (p, _dir) = pipeline(None, DkimPolicy::Require).await;
    let json = report("mt-1", "Example", "");
    // application/json: accepted with a deviation naming the header.
    let Accepted::Stored { id } = p
        .ingest(https(json.as_bytes(), "application/json"))
        .await
        .unwrap()
    else {
        panic!()
    };
    let d = p.store().get_received(id).await.unwrap().unwrap();
    assert!(
        d.deviations
            .iter()
            .any(|x| x.path == "http:Content-Type" && x.rule == "HTTP-02"),
        "{:?}",
        d.deviations
    );
    // Content-Encoding: gzip on a JSON type.
    let json2 = report("mt-2", "Example", "");
    let gz = gzip(json2.as_bytes());
    let got = p
        .ingest(Intake {
            content_encoding: Some("gzip"),
            ..https(&gz, "application/tlsrpt+json")
        })
        .await
        .unwrap();
    let Accepted::Stored { id } = got else {
        panic!("{got:?}")
    };
    let d = p.store().get_received(id).await.unwrap().unwrap();
    assert!(
        d.deviations
            .iter()
            .any(|x| x.path == "http:Content-Encoding")
    );
    // The raw bytes are the body as received.
    assert_eq!(p.store().get_received_raw(id).await.unwrap().unwrap(), gz);
    // A label that disagrees with the bytes is noted, the bytes win.
    let json3 = report("mt-3", "Example", "");
    let Accepted::Stored { id } = p
        .ingest(https(json3.as_bytes(), "application/tlsrpt+gzip"))
        .await
        .unwrap()
    else {
        panic!()
    };
    let d = p.store().get_received(id).await.unwrap().unwrap();
    assert!(d.deviations.iter().any(|x| x.message.contains("not gzip")));
    // Anything else is 415.
    for ct in [Some("text/plain"), Some("multipart/form-data"), None] {
        let got = p
            .ingest(Intake {
                content_type: ct,
                ..https(json.as_bytes(), "")
            })
            .await;
        assert!(
            matches!(got, Err(Rejected::UnsupportedMediaType(_))),
            "{ct:?}: {got:?}"
        );
    }
    let got = p
        .ingest(Intake {
            content_encoding: Some("br"),
            ..https(json.as_bytes(), "application/tlsrpt+json")
        })
        .await;
    assert!(matches!(got, Err(Rejected::UnsupportedMediaType(_))));
}

#[tokio::test]
async fn rcv_09_duplicates_are_stored_once_even_concurrently() {
    let (p, _dir) = pipeline(None, DkimPolicy::Require).await;
    let json = report("dup-1", "Example", "");
    let gz = gzip(json.as_bytes());
    let mut tasks = Vec::new();
    for i in 0..16 {
        let p = p.clone();
        let body = if i % 2 == 0 {
            gz.clone()
        } else {
            json.clone().into_bytes()
        };
        tasks.push(tokio::spawn(async move {
            let ct = if i % 2 == 0 {
                "application/tlsrpt+gzip"
            } else {
                "application/tlsrpt+json"
            };
            p.ingest(https(&body, ct)).await.unwrap()
        }));
    }
    let mut stored = Vec::new();
    let mut dups = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Accepted::Stored { id } => stored.push(id),
            Accepted::Duplicate { id } => dups.push(id),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(stored.len(), 1, "stored {stored:?}");
    assert!(dups.iter().all(|d| *d == stored[0]));
    assert_eq!(received_count(p.store()).await, 1);
    // A different report-id, or a different date-range, is a different report.
    let other = json.replace("dup-1", "dup-2");
    assert!(matches!(
        p.ingest(https(other.as_bytes(), "application/tlsrpt+json"))
            .await
            .unwrap(),
        Accepted::Stored { .. }
    ));
    let shifted = json.replace("2025-03-01T00:00:00Z", "2025-03-01T00:00:01Z");
    assert!(matches!(
        p.ingest(https(shifted.as_bytes(), "application/tlsrpt+json"))
            .await
            .unwrap(),
        Accepted::Stored { .. }
    ));
}

#[tokio::test]
async fn rcv_09_same_report_by_mail_and_https_at_once_is_stored_once() {
    let keys = common::Keys::new();
    let dns = common::dns(&keys).await;
    let (p, _dir) = pipeline(Some(&dns), DkimPolicy::Require).await;
    let json = report("both-1", "Example", "");
    let msg = common::sign(
        &common::wrap(json.as_bytes(), Some("example.com"), "example.com"),
        &keys,
        common::Alg::Ed25519,
        "example.com",
        "ed",
        false,
    );
    let (p1, p2) = (p.clone(), p.clone());
    let j = json.clone();
    let a = tokio::spawn(async move {
        p1.ingest(Intake {
            bytes: &msg,
            via: Via::Mail,
            content_type: None,
            content_encoding: None,
            peer: None,
        })
        .await
        .unwrap()
    });
    let b = tokio::spawn(async move {
        p2.ingest(https(j.as_bytes(), "application/tlsrpt+json"))
            .await
            .unwrap()
    });
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let ids: Vec<i64> = [&a, &b]
        .iter()
        .map(|x| match x {
            Accepted::Stored { id } | Accepted::Duplicate { id } => *id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(
        [&a, &b]
            .iter()
            .filter(|x| matches!(x, Accepted::Stored { .. }))
            .count(),
        1
    );
    assert_eq!(received_count(p.store()).await, 1);
}

#[tokio::test]
async fn rcv_07_hostile_inputs_are_rejected_with_reasons_and_nothing_is_stored() {
    let (p, _dir) = pipeline(None, DkimPolicy::Require).await;

    // Gzip bomb: 1 GiB of zeros in about 1 MiB. Bounded by max_decompressed_bytes.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![b' '; 1 << 20];
    for _ in 0..1024 {
        std::io::Write::write_all(&mut enc, &zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 2 << 20, "{}", bomb.len());
    let got = p.ingest(https(&bomb, "application/tlsrpt+gzip")).await;
    assert!(
        matches!(
            got,
            Err(Rejected::TooLarge {
                limit: "max_decompressed_bytes",
                ..
            })
        ),
        "{got:?}"
    );

    // Truncated gzip.
    let gz = gzip(report("t-1", "Example", "").as_bytes());
    let got = p
        .ingest(https(&gz[..gz.len() / 2], "application/tlsrpt+gzip"))
        .await;
    assert!(matches!(got, Err(Rejected::BadData { .. })), "{got:?}");

    // Over the input limit (the default 10 MiB; 50 MiB would be refused the same way).
    let big = vec![b' '; 11 << 20];
    let got = p.ingest(https(&big, "application/tlsrpt+json")).await;
    assert!(
        matches!(
            got,
            Err(Rejected::TooLarge {
                limit: "max_input_bytes",
                ..
            })
        ),
        "{got:?}"
    );

    // Invalid UTF-8.
    let mut bad = report("u-1", "Example", "").into_bytes();
    bad[20] = 0xff;
    let got = p.ingest(https(&bad, "application/tlsrpt+json")).await;
    assert!(matches!(got, Err(Rejected::BadData { .. })), "{got:?}");

    // JSON nested 10,000 deep.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let got = p
        .ingest(https(deep.as_bytes(), "application/tlsrpt+json"))
        .await;
    let Err(Rejected::BadData { message, .. }) = got else {
        panic!("{got:?}")
    };
    assert!(
        message.contains("max_depth") || message.contains("object"),
        "{message}"
    );
    let deep = format!(
        r#"{{"report-id":"x","a":{}1{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let got = p
        .ingest(https(deep.as_bytes(), "application/tlsrpt+json"))
        .await;
    let Err(Rejected::BadData { message, .. }) = got else {
        panic!("{got:?}")
    };
    assert!(message.contains("max_depth"), "{message}");

    // Negative and 2^70 counts: 400 naming the field.
    for (n, field) in [
        ("-5", "total-successful-session-count"),
        ("1180591620717411303424", "total-successful-session-count"),
    ] {
        let j = report("neg", "Example", "").replace(
            r#""total-successful-session-count":10"#,
            &format!(r#""total-successful-session-count":{n}"#),
        );
        let got = p
            .ingest(https(j.as_bytes(), "application/tlsrpt+json"))
            .await;
        let Err(Rejected::BadData { path, .. }) = got else {
            panic!("{n}: {got:?}")
        };
        assert!(path.ends_with(field), "{n}: {path}");
    }
    let j = report("neg2", "Example", "").replace(
        r#""failed-session-count":2"#,
        r#""failed-session-count":-1"#,
    );
    let Err(Rejected::BadData { path, .. }) = p
        .ingest(https(j.as_bytes(), "application/tlsrpt+json"))
        .await
    else {
        panic!()
    };
    assert_eq!(path, "policies[0].failure-details[0].failed-session-count");

    // A message with 500 attachments.
    let mut m = String::from(
        "From: a@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n",
    );
    for i in 0..500 {
        m.push_str(&format!(
            "--B\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"{i}.bin\"\r\n\r\nxx\r\n"
        ));
    }
    m.push_str("--B--\r\n");
    let got = p
        .ingest(Intake {
            bytes: m.as_bytes(),
            via: Via::Mail,
            content_type: None,
            content_encoding: None,
            peer: None,
        })
        .await;
    let Err(e @ Rejected::BadData { .. }) = got else {
        panic!("{got:?}")
    };
    assert_eq!(e.sysexit(), 65);

    // Not a message at all, by mail.
    let got = p
        .ingest(Intake {
            bytes: b"{\"report-id\":1}",
            via: Via::Mail,
            content_type: None,
            content_encoding: None,
            peer: None,
        })
        .await;
    assert!(matches!(got, Err(Rejected::BadData { .. })), "{got:?}");

    assert_eq!(
        received_count(p.store()).await,
        0,
        "a hostile input was stored"
    );

    // And the pipeline still takes a good report afterwards.
    let good = report("after-hostile", "Example", "");
    assert!(matches!(
        p.ingest(https(good.as_bytes(), "application/tlsrpt+json"))
            .await
            .unwrap(),
        Accepted::Stored { .. }
    ));
}

#[tokio::test]
async fn rcv_11_odd_content_is_stored_verbatim_with_deviations() {
    let (p, _dir) = pipeline(None, DkimPolicy::Require).await;
    let org = "<script>alert(1)</script> & Co";
    let j = report(
        "odd-1",
        org,
        r#","receiving-ip":"x.x.x.x","failure-reason-code":"<b>bold</b>""#,
    )
    .replace(r#""sending-mta-ip":"192.0.2.1","#, "");
    let Accepted::Stored { id } = p
        .ingest(https(j.as_bytes(), "application/tlsrpt+json"))
        .await
        .unwrap()
    else {
        panic!()
    };
    let d = p.store().get_received(id).await.unwrap().unwrap();
    assert_eq!(d.summary.organization_name.as_deref(), Some(org));
    let f = &d.failure_details[0];
    assert_eq!(f.receiving_ip.as_deref(), Some("x.x.x.x"));
    assert_eq!(f.failure_reason_code.as_deref(), Some("<b>bold</b>"));
    assert!(
        d.deviations.iter().any(|x| x.path.contains("receiving-ip")),
        "{:?}",
        d.deviations
    );
    assert_eq!(d.summary.deviations as usize, d.deviations.len());
    // The raw bytes are kept exactly.
    assert_eq!(
        p.store().get_received_raw(id).await.unwrap().unwrap(),
        j.as_bytes()
    );
    // And the API list element has exactly the agreed members.
    let list = p
        .store()
        .list_received(&ReceivedQuery::default())
        .await
        .unwrap();
    let v = serde_json::to_value(&list[0]).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "deviations",
            "dkim",
            "end",
            "failed_sessions",
            "id",
            "organization_name",
            "policy_domains",
            "received_via",
            "report_id",
            "start",
            "successful_sessions"
        ]
    );
    assert_eq!(v["policy_domains"], serde_json::json!(["example.net"]));
    assert_eq!(v["start"], "2025-03-01T00:00:00Z");
}

#[tokio::test]
async fn rejected_maps_to_sysexits() {
    assert_eq!(Rejected::Unavailable("x".into()).sysexit(), 75);
    assert_eq!(
        Rejected::BadData {
            path: "$".into(),
            message: "x".into()
        }
        .sysexit(),
        65
    );
    assert_eq!(
        Rejected::TooLarge {
            limit: "max_input_bytes",
            max: 1
        }
        .sysexit(),
        65
    );
}

#[tokio::test]
async fn locked_store_is_unavailable_so_the_sender_retries() {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let options = tlsrpt_store::StoreOptions {
        busy_timeout: std::time::Duration::from_millis(200),
        ..Default::default()
    };
    let store = Arc::new(
        tlsrpt_store::Store::open_with(&url, &options)
            .await
            .unwrap(),
    );
    let v = tlsrpt_receiver::dkim::DkimVerifier::new(&tlsrpt_receiver::dkim::DkimConfig {
        policy: DkimPolicy::Off,
        ..Default::default()
    })
    .unwrap();
    let p = Pipeline::new(store, Default::default(), v);
    // Another process holds the write lock.
    let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let j = report("locked", "Example", "");
    let got = p
        .ingest(https(j.as_bytes(), "application/tlsrpt+json"))
        .await;
    let Err(e @ Rejected::Unavailable(_)) = got else {
        panic!("{got:?}")
    };
    assert_eq!(e.sysexit(), 75);
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    // Once the lock is gone the same report goes in.
    assert!(matches!(
        p.ingest(https(j.as_bytes(), "application/tlsrpt+json"))
            .await
            .unwrap(),
        Accepted::Stored { .. }
    ));
}

/// A pipeline whose own domains are example.net and example.org.
async fn ours_pipeline() -> (Pipeline, tempfile::TempDir) {
    let options = tlsrpt_receiver::pipeline::PipelineOptions {
        our_domains: vec![
            "example.net".into(),
            "Example.ORG.".into(),
            "bücher.example".into(),
        ],
        ..Default::default()
    };
    common::pipeline_with(None, DkimPolicy::Off, options).await
}

/// `report` with its policy domain replaced by each of `domains` (one policy each).
fn report_for(id: &str, domains: &[&str]) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_str(&report(id, "Org", "")).unwrap();
    let one = v["policies"][0].clone();
    v["policies"] = domains
        .iter()
        .map(|d| {
            let mut p = one.clone();
            p["policy"]["policy-domain"] = (*d).into();
            p
        })
        .collect();
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test]
async fn rcv_10_http_07_reports_for_other_domains_are_kept_as_rejected() {
    let (p, _dir) = ours_pipeline().await;
    let json = "application/tlsrpt+json";
    // Ours, an MX host under ours (DANE names it as the policy domain, RPT-15), any case.
    for (id, d) in [
        ("a", "example.net"),
        ("b", "mx1.Example.ORG"),
        ("c", "example.net."),
        // U-labels (a JSON-17 deviation) and A-labels name the same domain, either way round.
        ("c2", "xn--bcher-kva.example"),
        ("c3", "mx.BÜCHER.example"),
    ] {
        let got = p.ingest(https(&report_for(id, &[d]), json)).await.unwrap();
        assert!(matches!(got, Accepted::Stored { .. }), "{d}: {got:?}");
    }
    // Not ours: kept as rejected with the reason, never silently dropped.
    for (id, d) in [
        ("d", "victim.example"),
        ("e", "notexample.net"),
        ("f", "net"),
    ] {
        let got = p.ingest(https(&report_for(id, &[d]), json)).await.unwrap();
        let Accepted::Quarantined { id: row, reason } = got else {
            panic!("{d}: {got:?}");
        };
        assert!(reason.contains("RCV-10") && reason.contains(d), "{reason}");
        let detail = p.store().get_received(row).await.unwrap().unwrap();
        assert_eq!(detail.status, "rejected");
    }
    // A report covering ours and another domain is kept, the foreign policy flagged.
    let got = p
        .ingest(https(
            &report_for("g", &["example.net", "other.example"]),
            json,
        ))
        .await
        .unwrap();
    let Accepted::Stored { id } = got else {
        panic!("{got:?}")
    };
    let detail = p.store().get_received(id).await.unwrap().unwrap();
    let flagged: Vec<_> = detail
        .deviations
        .iter()
        .filter(|d| d.rule == "RCV-10")
        .collect();
    assert_eq!(flagged.len(), 1, "{:?}", detail.deviations);
    assert_eq!(flagged[0].path, "policies[1].policy.policy-domain");
    assert!(flagged[0].message.contains("other.example"));
    // Without configured domains (the default) nothing is checked.
    let (plain, _d2) = pipeline(None, DkimPolicy::Off).await;
    let got = plain
        .ingest(https(&report_for("h", &["victim.example"]), json))
        .await
        .unwrap();
    assert!(matches!(got, Accepted::Stored { .. }), "{got:?}");
}
