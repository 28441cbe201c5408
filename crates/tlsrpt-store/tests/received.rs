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

/// `report` rows per table for one report id (the report row, its original bytes, its
/// policies, MX hosts and failure details), read directly from the database file.
async fn rows_of(db: &sqlx::SqlitePool, id: i64) -> [i64; 5] {
    let mut out = [0; 5];
    for (i, sql) in [
        "SELECT count(*) FROM received_reports WHERE id = ?",
        "SELECT count(*) FROM received_raw WHERE report = ?",
        "SELECT count(*) FROM received_policies WHERE report = ?",
        "SELECT count(*) FROM received_mx_hosts WHERE report = ?",
        "SELECT count(*) FROM received_failures WHERE report = ?",
    ]
    .into_iter()
    .enumerate()
    {
        out[i] = sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(db)
            .await
            .unwrap();
    }
    out
}

/// REQUIREMENTS SEC-08: reports hold third-party IP addresses, so `prune_received` deletes
/// every report (stored or rejected) that ended, or arrived, before the cut-off, with all of
/// its rows and original bytes, and leaves the newer ones exactly as they were.
#[tokio::test]
async fn sec_08_received_reports_older_than_retention_are_deleted() {
    let (s, dir) = store().await;
    let now: Timestamp = "2026-11-29T00:00:00Z".parse().unwrap();
    // 400 days: the cut-off is 2025-10-25T00:00:00Z.
    let cutoff = tlsrpt_store::received_cutoff(now, 400).unwrap();
    assert_eq!(cutoff, "2025-10-25T00:00:00Z".parse::<Timestamp>().unwrap());
    let recent: Timestamp = "2026-11-28T08:00:00Z".parse().unwrap();

    // (report-id, last day of its date range, status, received at, expected to go)
    let cases = [
        ("old", "2024-01-01", ReceivedStatus::Stored, recent, true),
        (
            "old-rejected",
            "2024-01-01",
            ReceivedStatus::Rejected,
            recent,
            true,
        ),
        // Ends at 2025-10-24T23:59:59Z, one second before the cut-off.
        (
            "edge-old",
            "2025-10-24",
            ReceivedStatus::Stored,
            recent,
            true,
        ),
        // Ends at 2025-10-25T23:59:59Z, after the cut-off.
        (
            "edge-new",
            "2025-10-25",
            ReceivedStatus::Stored,
            recent,
            false,
        ),
        ("new", "2026-11-27", ReceivedStatus::Stored, recent, false),
        (
            "new-rejected",
            "2026-11-27",
            ReceivedStatus::Rejected,
            recent,
            false,
        ),
        // A date range in the future (wrong or forged) expires by its receipt time.
        (
            "future",
            "2030-01-01",
            ReceivedStatus::Rejected,
            "2024-06-01T00:00:00Z".parse().unwrap(),
            true,
        ),
    ];
    let mut ids = Vec::new();
    for (rid, day, status, at, _) in &cases {
        let mut r = received(&json(rid, "a.example", day, "example.net"), *status);
        r.received_at = *at;
        r.deviations.push(tlsrpt_core::deviation::Deviation::new(
            "$.x", "RCV-11", "kept",
        ));
        let InsertOutcome::Stored(id) = s.insert_received(&r).await.unwrap() else {
            panic!("{rid}")
        };
        ids.push(id);
    }
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("r.db").display()))
        .await
        .unwrap();
    for id in &ids {
        // One report row, its raw bytes, two policies, two MX hosts, one failure detail.
        assert_eq!(rows_of(&db, *id).await, [1, 1, 2, 2, 1]);
    }
    let kept_before: Vec<_> = ids
        .iter()
        .zip(&cases)
        .filter(|(_, c)| !c.4)
        .map(|(id, _)| *id)
        .collect();
    let mut details_before = Vec::new();
    for id in &kept_before {
        details_before.push((
            s.get_received(*id).await.unwrap().unwrap(),
            s.get_received_raw(*id).await.unwrap().unwrap(),
        ));
    }

    let deleted = s.prune_received(cutoff).await.unwrap();
    assert_eq!(deleted, 4, "reports counted, not their child rows");

    for (id, (rid, _, _, _, gone)) in ids.iter().zip(&cases) {
        if *gone {
            assert_eq!(rows_of(&db, *id).await, [0; 5], "{rid}");
            assert!(s.get_received(*id).await.unwrap().is_none(), "{rid}");
            assert!(s.get_received_raw(*id).await.unwrap().is_none(), "{rid}");
        } else {
            assert_eq!(rows_of(&db, *id).await, [1, 1, 2, 2, 1], "{rid}");
        }
    }
    // Nothing is left behind anywhere (no orphaned child rows).
    for table in [
        "received_raw",
        "received_policies",
        "received_mx_hosts",
        "received_failures",
    ] {
        let orphans: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE report NOT IN (SELECT id FROM received_reports)"
        )))
        .fetch_one(&db)
        .await
        .unwrap();
        assert_eq!(orphans, 0, "{table}");
    }
    // The newer reports are intact: same detail (deviations, failure details) and bytes.
    for (id, (detail, raw)) in kept_before.iter().zip(&details_before) {
        assert_eq!(&s.get_received(*id).await.unwrap().unwrap(), detail);
        assert_eq!(&s.get_received_raw(*id).await.unwrap().unwrap(), raw);
    }

    // What the API lists: only the newer reports, whatever the filter.
    let listed = |v: Vec<tlsrpt_store::ReceivedSummary>| {
        let mut v: Vec<_> = v.into_iter().map(|x| x.report_id).collect();
        v.sort();
        v
    };
    assert_eq!(
        listed(s.list_received(&all_ids(StatusFilter::All)).await.unwrap()),
        ["edge-new", "new", "new-rejected"]
    );
    assert_eq!(
        listed(
            s.list_received(&all_ids(StatusFilter::Rejected))
                .await
                .unwrap()
        ),
        ["new-rejected"]
    );
    let old_days = ReceivedQuery {
        policy_domain: Some("example.net".into()),
        to: Some(jiff::civil::date(2025, 10, 24)),
        ..all_ids(StatusFilter::All)
    };
    assert!(s.list_received(&old_days).await.unwrap().is_empty());

    // A second run finds nothing more.
    assert_eq!(s.prune_received(cutoff).await.unwrap(), 0);
}

/// REQUIREMENTS SEC-08 with RCV-09: de-duplication still works for the reports kept, and a
/// copy of a pruned report that arrives again is stored again (docs/DECISIONS.md), under a
/// new id, until the next prune removes it.
#[tokio::test]
async fn sec_08_duplicates_after_pruning() {
    let (s, _d) = store().await;
    let now: Timestamp = "2026-11-29T00:00:00Z".parse().unwrap();
    let cutoff = tlsrpt_store::received_cutoff(now, 30).unwrap();
    let old = received(
        &json("o", "a.example", "2025-01-01", "example.net"),
        ReceivedStatus::Stored,
    );
    let new = received(
        &json("n", "a.example", "2026-11-28", "example.net"),
        ReceivedStatus::Stored,
    );
    let InsertOutcome::Stored(old_id) = s.insert_received(&old).await.unwrap() else {
        panic!()
    };
    let InsertOutcome::Stored(new_id) = s.insert_received(&new).await.unwrap() else {
        panic!()
    };
    assert_eq!(s.prune_received(cutoff).await.unwrap(), 1);
    assert_eq!(
        s.insert_received(&new).await.unwrap(),
        InsertOutcome::Duplicate(new_id)
    );
    let again = s.insert_received(&old).await.unwrap();
    assert!(
        matches!(again, InsertOutcome::Stored(id) if id != old_id),
        "{again:?}"
    );
    assert_eq!(s.prune_received(cutoff).await.unwrap(), 1);
}
