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
