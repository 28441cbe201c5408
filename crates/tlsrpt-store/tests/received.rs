//! The received-reports family of the store: de-duplication, filters, details, raw bytes
//! (REQUIREMENTS RCV-09, RCV-11).

use jiff::Timestamp;
use tlsrpt_core::read::{Limits, read_report};
use tlsrpt_store::{
    DkimStatus, InsertOutcome, ReceivedQuery, ReceivedReport, ReceivedStatus, ReceivedVia,
    StatusFilter, Store,
};

fn json(id: &str, org: &str, day: &str, domain: &str) -> String {
    format!(
        r#"{{"organization-name":"{org}","date-range":{{"start-datetime":"{day}T00:00:00Z","end-datetime":"{day}T23:59:59Z"}},"contact-info":"tls@{org}","report-id":"{id}","policies":[{{"policy":{{"policy-type":"sts","policy-domain":"{domain}","mx-host":["mx1.{domain}","mx2.{domain}"]}},"summary":{{"total-successful-session-count":5,"total-failure-session-count":1}},"failure-details":[{{"result-type":"starttls-not-supported","receiving-ip":"2001:db8::1","failed-session-count":1}}]}},{{"policy":{{"policy-type":"tlsa","policy-domain":"{domain}"}},"summary":{{"total-successful-session-count":5,"total-failure-session-count":0}}}}]}}"#
    )
}

fn received(text: &str, status: ReceivedStatus) -> ReceivedReport {
    let r = read_report(text.as_bytes(), &Limits::default()).unwrap();
    ReceivedReport {
        report: r.report,
        deviations: r.deviations,
        raw: text.as_bytes().to_vec(),
        via: ReceivedVia::Mail,
        dkim: if status == ReceivedStatus::Stored {
            DkimStatus::Pass
        } else {
            DkimStatus::Fail
        },
        dkim_domain: Some("example.org".into()),
        dkim_selector: Some("s1".into()),
        submitter: Some("example.org".into()),
        status,
        reject_reason: (status == ReceivedStatus::Rejected).then(|| "forged".to_owned()),
        received_at: Timestamp::now(),
    }
}

async fn store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    (Store::open(&url).await.unwrap(), dir)
}

#[tokio::test]
async fn rcv_09_one_row_per_report_and_status() {
    let (s, _d) = store().await;
    let t = json("r1", "a.example", "2025-01-02", "example.net");
    let forged = received(&t, ReceivedStatus::Rejected);
    let InsertOutcome::Stored(bad) = s.insert_received(&forged).await.unwrap() else {
        panic!()
    };
    assert_eq!(
        s.insert_received(&forged).await.unwrap(),
        InsertOutcome::Duplicate(bad)
    );
    // The forgery does not take the genuine report's place.
    let InsertOutcome::Stored(good) = s
        .insert_received(&received(&t, ReceivedStatus::Stored))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_ne!(good, bad);
    assert_eq!(
        s.insert_received(&received(&t, ReceivedStatus::Stored))
            .await
            .unwrap(),
        InsertOutcome::Duplicate(good)
    );
}

#[tokio::test]
async fn list_filters_by_domain_organisation_days_and_status() {
    let (s, _d) = store().await;
    for (id, org, day, dom) in [
        ("1", "a.example", "2025-01-01", "one.example"),
        ("2", "a.example", "2025-01-02", "two.example"),
        ("3", "b.example", "2025-01-03", "One.Example."),
    ] {
        s.insert_received(&received(&json(id, org, day, dom), ReceivedStatus::Stored))
            .await
            .unwrap();
    }
    s.insert_received(&received(
        &json("4", "a.example", "2025-01-02", "one.example"),
        ReceivedStatus::Rejected,
    ))
    .await
    .unwrap();

    let ids = |v: Vec<tlsrpt_store::ReceivedSummary>| {
        v.into_iter().map(|x| x.report_id).collect::<Vec<_>>()
    };
    let all = s.list_received(&ReceivedQuery::default()).await.unwrap();
    assert_eq!(ids(all.clone()), ["3", "2", "1"]);
    assert_eq!(all[0].policy_domains, ["one.example"]);
    // Session totals: sts and tlsa for the same domain count once (JSON-30).
    assert_eq!(all[0].successful_sessions, 5);
    assert_eq!(all[0].failed_sessions, 1);
    let q = |f: fn(&mut ReceivedQuery)| {
        let mut q = ReceivedQuery::default();
        f(&mut q);
        q
    };
    assert_eq!(
        ids(s
            .list_received(&q(|q| q.policy_domain = Some("ONE.example.".into())))
            .await
            .unwrap()),
        ["3", "1"]
    );
    assert_eq!(
        ids(s
            .list_received(&q(|q| q.organization = Some("A.EXAMPLE".into())))
            .await
            .unwrap()),
        ["2", "1"]
    );
    assert_eq!(
        ids(s
            .list_received(&q(|q| {
                q.from = Some(jiff::civil::date(2025, 1, 2));
                q.to = Some(jiff::civil::date(2025, 1, 2));
            }))
            .await
            .unwrap()),
        ["2"]
    );
    assert_eq!(
        ids(s
            .list_received(&q(|q| q.status = StatusFilter::Rejected))
            .await
            .unwrap()),
        ["4"]
    );
    assert_eq!(
        s.list_received(&q(|q| q.status = StatusFilter::All))
            .await
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        ids(s
            .list_received(&q(|q| {
                q.limit = Some(1);
                q.offset = 1;
            }))
            .await
            .unwrap()),
        ["2"]
    );
}

#[tokio::test]
async fn rcv_11_detail_and_raw_bytes_round_trip() {
    let (s, _d) = store().await;
    let t = json("d1", "a.example", "2025-01-01", "example.net");
    let mut r = received(&t, ReceivedStatus::Rejected);
    r.deviations.push(tlsrpt_core::deviation::Deviation::new(
        "$.x",
        "RCV-11",
        "unknown member",
    ));
    let InsertOutcome::Stored(id) = s.insert_received(&r).await.unwrap() else {
        panic!()
    };
    let d = s.get_received(id).await.unwrap().unwrap();
    assert_eq!(d.status, "rejected");
    assert_eq!(d.reject_reason.as_deref(), Some("forged"));
    assert_eq!(d.summary.dkim, "fail");
    assert_eq!(d.summary.received_via, "mail");
    assert_eq!(d.dkim_selector.as_deref(), Some("s1"));
    assert_eq!(d.report["report-id"], "d1");
    assert_eq!(d.deviations.last().unwrap().rule, "RCV-11");
    assert_eq!(d.failure_details.len(), 1);
    assert_eq!(
        d.failure_details[0].receiving_ip.as_deref(),
        Some("2001:db8::1")
    );
    assert_eq!(
        d.failure_details[0].policy_domain.as_deref(),
        Some("example.net")
    );
    assert_eq!(d.raw_size, t.len() as u64);
    assert_eq!(s.get_received_raw(id).await.unwrap().unwrap(), t.as_bytes());
    assert!(s.get_received(id + 100).await.unwrap().is_none());
    assert!(s.get_received_raw(id + 100).await.unwrap().is_none());

    // Gzip input is kept as received.
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(json("g1", "a.example", "2025-01-01", "example.net").as_bytes())
            .unwrap();
        e.finish().unwrap()
    };
    let mut r = received(
        &json("g1", "a.example", "2025-01-01", "example.net"),
        ReceivedStatus::Stored,
    );
    r.raw = gz.clone();
    let InsertOutcome::Stored(id) = s.insert_received(&r).await.unwrap() else {
        panic!()
    };
    assert_eq!(s.get_received_raw(id).await.unwrap().unwrap(), gz);
}

/// Inserts every report of `reports` from its own task at once (on a multi-thread runtime,
/// so the group-commit writer sees many of them queued together), answers in input order.
async fn insert_all(
    s: &std::sync::Arc<Store>,
    reports: Vec<ReceivedReport>,
) -> Vec<Result<InsertOutcome, tlsrpt_store::StoreError>> {
    let tasks: Vec<_> = reports
        .into_iter()
        .map(|r| {
            let s = s.clone();
            tokio::spawn(async move { s.insert_received(&r).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn all_ids(q: StatusFilter) -> ReceivedQuery {
    ReceivedQuery {
        status: q,
        limit: Some(1000),
        ..ReceivedQuery::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rcv_09_copies_arriving_together_are_stored_once() {
    let (s, _d) = store().await;
    let s = std::sync::Arc::new(s);
    // 40 copies of one report interleaved with 40 distinct ones, all in flight at once.
    let dup = json("same", "a.example", "2025-01-02", "example.net");
    let mut reports = Vec::new();
    for i in 0..40 {
        reports.push(received(&dup, ReceivedStatus::Stored));
        reports.push(received(
            &json(&format!("d{i}"), "a.example", "2025-01-02", "example.net"),
            ReceivedStatus::Stored,
        ));
    }
    let answers = insert_all(&s, reports).await;
    let mut dup_stored = Vec::new();
    let mut dup_ids = std::collections::BTreeSet::new();
    let mut distinct = std::collections::BTreeSet::new();
    for (i, a) in answers.into_iter().enumerate() {
        match (i % 2, a.unwrap()) {
            (0, InsertOutcome::Stored(id)) => {
                dup_stored.push(id);
                dup_ids.insert(id);
            }
            (0, InsertOutcome::Duplicate(id)) => {
                dup_ids.insert(id);
            }
            (_, InsertOutcome::Stored(id)) => {
                assert!(distinct.insert(id), "id {id} answered twice");
            }
            (_, InsertOutcome::Duplicate(id)) => panic!("distinct report answered duplicate {id}"),
        }
    }
    assert_eq!(dup_stored.len(), 1, "exactly one copy is stored");
    assert_eq!(dup_ids.len(), 1, "every copy names the stored row");
    assert_eq!(distinct.len(), 40);
    assert!(!distinct.contains(&dup_stored[0]));
    let listed = s.list_received(&all_ids(StatusFilter::All)).await.unwrap();
    assert_eq!(listed.len(), 41);
    // The normalised rows of the stored copy were written once, not once per copy.
    let d = s.get_received(dup_stored[0]).await.unwrap().unwrap();
    assert_eq!(d.failure_details.len(), 1);
    assert_eq!(d.summary.policy_domains, ["example.net"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rcv_09_concurrent_batches_agree_on_one_row_per_key() {
    let (s, _d) = store().await;
    let s = std::sync::Arc::new(s);
    // Four waves over the same 30 keys (half stored, half rejected status), racing each other:
    // many batches, each key in several of them.
    let waves: Vec<_> = (0..4)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut reports = Vec::new();
                for k in 0..30 {
                    // Each wave sends the keys in a different order.
                    let k = (k * 7 + w * 11) % 30;
                    let status = if k % 2 == 0 {
                        ReceivedStatus::Stored
                    } else {
                        ReceivedStatus::Rejected
                    };
                    reports.push((
                        k,
                        received(
                            &json(&format!("k{k}"), "b.example", "2025-02-01", "example.com"),
                            status,
                        ),
                    ));
                }
                let keys: Vec<_> = reports.iter().map(|(k, _)| *k).collect();
                let answers = insert_all(&s, reports.into_iter().map(|(_, r)| r).collect()).await;
                keys.into_iter().zip(answers).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut by_key: std::collections::BTreeMap<usize, (usize, std::collections::BTreeSet<i64>)> =
        Default::default();
    for w in waves {
        for (k, a) in w.await.unwrap() {
            let e = by_key.entry(k).or_default();
            match a.unwrap() {
                InsertOutcome::Stored(id) => {
                    e.0 += 1;
                    e.1.insert(id);
                }
                InsertOutcome::Duplicate(id) => {
                    e.1.insert(id);
                }
            }
        }
    }
    assert_eq!(by_key.len(), 30);
    for (k, (stored, ids)) in &by_key {
        assert_eq!(*stored, 1, "key {k} stored {stored} times");
        assert_eq!(ids.len(), 1, "key {k} answered with ids {ids:?}");
    }
    assert_eq!(
        s.list_received(&all_ids(StatusFilter::Stored))
            .await
            .unwrap()
            .len(),
        15
    );
    assert_eq!(
        s.list_received(&all_ids(StatusFilter::Rejected))
            .await
            .unwrap()
            .len(),
        15
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rcv_09_a_row_the_database_refuses_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let s = std::sync::Arc::new(Store::open(&url).await.unwrap());
    // A row the database itself refuses (as a CHECK or size limit would), by report-id.
    {
        use sqlx::ConnectOptions;
        let mut c = url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .unwrap()
            .connect()
            .await
            .unwrap();
        sqlx::query(
            "CREATE TRIGGER poison BEFORE INSERT ON received_reports \
             WHEN NEW.report_id LIKE 'poison%' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END",
        )
        .execute(&mut c)
        .await
        .unwrap();
    }
    let mut reports = Vec::new();
    for i in 0..60 {
        let id = if i % 10 == 3 {
            format!("poison{i}")
        } else {
            format!("ok{i}")
        };
        reports.push(received(
            &json(&id, "c.example", "2025-03-01", "example.org"),
            ReceivedStatus::Stored,
        ));
    }
    let answers = insert_all(&s, reports).await;
    let mut stored = 0;
    for (i, a) in answers.iter().enumerate() {
        if i % 10 == 3 {
            let e = a.as_ref().unwrap_err();
            assert!(e.to_string().contains("poisoned row"), "{e}");
            assert!(e.is_transient(), "a refused row answers 503 / exit 75: {e}");
        } else {
            assert!(
                matches!(a, Ok(InsertOutcome::Stored(_))),
                "report {i}: {a:?}"
            );
            stored += 1;
        }
    }
    assert_eq!(stored, 54);
    let listed = s.list_received(&all_ids(StatusFilter::All)).await.unwrap();
    assert_eq!(listed.len(), 54);
    assert!(listed.iter().all(|r| r.report_id.starts_with("ok")));
}
