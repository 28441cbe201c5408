//! The outbox tables: one report-id per key, claims, leases, attempts, suppression list.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::{Date, date};
use tlsrpt_store::Store;
use tlsrpt_store::outbox::{
    AttemptOutcome, DestinationStart, DiscoveryEnd, NewReport, dns_destination,
};

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn report(id: &str, day: Date, domain: &str, send_at: Timestamp) -> NewReport {
    NewReport {
        report_id: id.into(),
        day,
        policy_domain: domain.into(),
        record: format!("v=TLSRPTv1; rua=mailto:tlsrpt@{domain}"),
        filename: format!("example.org!{domain}!1!2!{id}.json.gz"),
        gzip: vec![0x1f, 0x8b, 1, 2, 3],
        send_at,
        deadline: send_at
            .checked_add(jiff::SignedDuration::from_hours(24))
            .unwrap(),
    }
}

async fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let s = Store::open(&url).await.unwrap();
    (dir, s)
}

const LEASE: Duration = Duration::from_secs(600);

/// Stores a report due at `now`, discovers `dests` for it; returns its id.
async fn queued(s: &Store, id: &str, domain: &str, dests: &[&str], now: Timestamp) -> String {
    let day = date(2026, 11, 28);
    s.outbox_insert_reports(&[report(id, day, domain, now)], now)
        .await
        .unwrap();
    let claims = s
        .outbox_claim_discovery(now, LEASE, 10, Some(&[id.to_string()]))
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    let d: Vec<(String, DestinationStart)> = dests
        .iter()
        .map(|u| (u.to_string(), DestinationStart::Queued))
        .collect();
    assert!(
        s.outbox_discovered(&claims[0], &d, "test", now)
            .await
            .unwrap()
    );
    id.to_string()
}

#[tokio::test]
async fn rpt_04_rebuilding_a_day_keeps_the_first_report_id() {
    let (_d, s) = open().await;
    let day = date(2026, 11, 28);
    let now = t("2026-11-29T00:30:00Z");
    let first = s
        .outbox_insert_reports(
            &[
                report("A1", day, "a.example", now),
                report("B1", day, "b.example", now),
            ],
            now,
        )
        .await
        .unwrap();
    assert!(first.iter().all(|r| r.created));
    let again = s
        .outbox_insert_reports(
            &[
                report("A2", day, "a.example", now),
                report("C2", day, "c.example", now),
            ],
            now,
        )
        .await
        .unwrap();
    assert_eq!(again[0].report_id, "A1");
    assert!(!again[0].created);
    assert_eq!(again[1].report_id, "C2");
    assert!(again[1].created);
    let all = s.outbox_list(Some(day), None).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|r| r.report_id.as_str()).collect();
    assert_eq!(ids, vec!["A1", "B1", "C2"]);
    // Another day is another report.
    let other = s
        .outbox_insert_reports(&[report("A3", date(2026, 11, 29), "a.example", now)], now)
        .await
        .unwrap();
    assert!(other[0].created);
}

#[tokio::test]
async fn discovery_waits_for_the_send_time_and_records_none() {
    let (_d, s) = open().await;
    let day = date(2026, 11, 28);
    let at = t("2026-11-29T02:00:00Z");
    s.outbox_insert_reports(&[report("R", day, "a.example", at)], at)
        .await
        .unwrap();
    let early = s
        .outbox_claim_discovery(t("2026-11-29T01:59:59Z"), LEASE, 10, None)
        .await
        .unwrap();
    assert!(early.is_empty());
    let c = s.outbox_claim_discovery(at, LEASE, 10, None).await.unwrap();
    assert_eq!(c.len(), 1);
    // Claimed: a second claimer gets nothing until the lease expires.
    assert!(
        s.outbox_claim_discovery(at, LEASE, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.outbox_discovery_end(&c[0], DiscoveryEnd::None, "NXDOMAIN", at)
            .await
            .unwrap()
    );
    let l = s.outbox_list(None, None).await.unwrap();
    assert_eq!(l[0].status, "none");
    assert_eq!(l[0].lookups.len(), 1);
    assert_eq!(l[0].lookups[0].outcome, "none");
    assert_eq!(l[0].last_error.as_deref(), Some("NXDOMAIN"));
    assert_eq!(s.outbox_next_due().await.unwrap(), None);
    let _ = dns_destination("a.example");
}

#[tokio::test]
async fn dns_18_temporary_lookup_failure_is_retried_later() {
    let (_d, s) = open().await;
    let at = t("2026-11-29T02:00:00Z");
    s.outbox_insert_reports(&[report("R", date(2026, 11, 28), "a.example", at)], at)
        .await
        .unwrap();
    let c = s.outbox_claim_discovery(at, LEASE, 10, None).await.unwrap();
    let later = t("2026-11-29T02:05:00Z");
    assert!(
        s.outbox_discovery_retry(&c[0], "SERVFAIL", later, at)
            .await
            .unwrap()
    );
    assert!(
        s.outbox_claim_discovery(at, LEASE, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.outbox_next_due().await.unwrap(), Some(later));
    let c2 = s
        .outbox_claim_discovery(later, LEASE, 10, None)
        .await
        .unwrap();
    assert_eq!(c2.len(), 1);
    assert_eq!(c2[0].lookups, 2);
    // The first claim's token no longer works.
    assert!(
        !s.outbox_discovery_end(&c[0], DiscoveryEnd::None, "x", later)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn dns_20_dlv_05_delivered_once_one_destination_accepted() {
    let (_d, s) = open().await;
    let now = t("2026-11-29T02:00:00Z");
    queued(
        &s,
        "R",
        "a.example",
        &["https://a.example/r", "mailto:r@a.example"],
        now,
    )
    .await;
    let claims = s.outbox_claim_due(now, LEASE, 10, None).await.unwrap();
    assert_eq!(claims.len(), 2);
    let https = claims
        .iter()
        .find(|c| c.destination.starts_with("https"))
        .unwrap();
    let mail = claims
        .iter()
        .find(|c| c.destination.starts_with("mailto"))
        .unwrap();
    assert_eq!(https.gzip, vec![0x1f, 0x8b, 1, 2, 3]);
    assert_eq!(https.attempts, 0);
    assert_eq!(https.first_attempt_at, None);
    s.outbox_record_attempt(mail, &AttemptOutcome::Failed("550 no".into()), now)
        .await
        .unwrap();
    assert_eq!(
        s.outbox_list(None, None).await.unwrap()[0].status,
        "sending"
    );
    s.outbox_record_attempt(https, &AttemptOutcome::Delivered("HTTP 200".into()), now)
        .await
        .unwrap();
    let l = s.outbox_list(None, None).await.unwrap();
    assert_eq!(l[0].status, "delivered");
    let st: Vec<(&str, &str)> = l[0]
        .destinations
        .iter()
        .map(|d| (d.destination.as_str(), d.status.as_str()))
        .collect();
    assert_eq!(
        st,
        vec![
            ("https://a.example/r", "delivered"),
            ("mailto:r@a.example", "failed")
        ]
    );
    // Nothing is ever claimed again, however late.
    assert!(
        s.outbox_claim_due(t("2027-01-01T00:00:00Z"), LEASE, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn dlv_03_retry_is_claimed_again_when_due_and_keeps_the_first_attempt() {
    let (_d, s) = open().await;
    let now = t("2026-11-29T02:00:00Z");
    queued(&s, "R", "a.example", &["https://a.example/r"], now).await;
    let c = s.outbox_claim_due(now, LEASE, 10, None).await.unwrap();
    let next = t("2026-11-29T02:01:00Z");
    s.outbox_record_attempt(
        &c[0],
        &AttemptOutcome::Retry {
            detail: "HTTP 500".into(),
            next_attempt_at: next,
        },
        now,
    )
    .await
    .unwrap();
    assert!(
        s.outbox_claim_due(now, LEASE, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    let c2 = s.outbox_claim_due(next, LEASE, 10, None).await.unwrap();
    assert_eq!(c2.len(), 1);
    assert_eq!(c2[0].attempts, 1);
    assert_eq!(c2[0].first_attempt_at, Some(now));
    s.outbox_record_attempt(&c2[0], &AttemptOutcome::Delivered("HTTP 200".into()), next)
        .await
        .unwrap();
    let l = s.outbox_list(None, None).await.unwrap();
    let d = &l[0].destinations[0];
    assert_eq!(d.status, "delivered");
    assert_eq!(d.attempts, 2);
    let outcomes: Vec<&str> = d.history.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, vec!["temporary", "delivered"]);
    assert_eq!(d.history[0].detail, "HTTP 500");
}

#[tokio::test]
async fn expired_lease_is_reclaimed_and_noted() {
    let (_d, s) = open().await;
    let now = t("2026-11-29T02:00:00Z");
    queued(&s, "R", "a.example", &["https://a.example/r"], now).await;
    let dead = s.outbox_claim_due(now, LEASE, 10, None).await.unwrap();
    assert_eq!(dead.len(), 1);
    // Within the lease: not claimable.
    let mid = t("2026-11-29T02:09:59Z");
    assert!(
        s.outbox_claim_due(mid, LEASE, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    let after = t("2026-11-29T02:10:00Z");
    let again = s.outbox_claim_due(after, LEASE, 10, None).await.unwrap();
    assert_eq!(again.len(), 1);
    // The dead claim can no longer requeue or fail the row...
    assert!(
        !s.outbox_record_attempt(&dead[0], &AttemptOutcome::Failed("late".into()), after)
            .await
            .unwrap()
    );
    let l = s.outbox_list(None, None).await.unwrap();
    assert_eq!(l[0].destinations[0].status, "claimed");
    assert_eq!(l[0].destinations[0].history[0].outcome, "abandoned");
    // ...and the live one completes it.
    assert!(
        s.outbox_record_attempt(&again[0], &AttemptOutcome::Delivered("ok".into()), after)
            .await
            .unwrap()
    );
    assert_eq!(
        s.outbox_list(None, None).await.unwrap()[0].destinations[0].status,
        "delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_racing_claim_each_delivery_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let a = Arc::new(Store::open(&url).await.unwrap());
    let b = Arc::new(Store::open(&url).await.unwrap());
    let now = t("2026-11-29T02:00:00Z");
    let day = date(2026, 11, 28);
    let reports: Vec<NewReport> = (0..40)
        .map(|i| report(&format!("R{i}"), day, &format!("d{i}.example"), now))
        .collect();
    a.outbox_insert_reports(&reports, now).await.unwrap();
    for store in [&a, &b] {
        loop {
            let c = store
                .outbox_claim_discovery(now, LEASE, 7, None)
                .await
                .unwrap();
            if c.is_empty() {
                break;
            }
            for c in c {
                let d = vec![
                    (
                        format!("https://{}/a", c.policy_domain),
                        DestinationStart::Queued,
                    ),
                    (
                        format!("mailto:r@{}", c.policy_domain),
                        DestinationStart::Queued,
                    ),
                ];
                store.outbox_discovered(&c, &d, "t", now).await.unwrap();
            }
        }
    }
    let claim_all = |s: Arc<Store>| async move {
        let mut got = Vec::new();
        loop {
            let c = s.outbox_claim_due(now, LEASE, 3, None).await.unwrap();
            if c.is_empty() {
                return got;
            }
            for c in c {
                got.push((c.report_id.clone(), c.destination.clone()));
                s.outbox_record_attempt(&c, &AttemptOutcome::Delivered("ok".into()), now)
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
        }
    };
    let (x, y) = tokio::join!(
        tokio::spawn(claim_all(a.clone())),
        tokio::spawn(claim_all(b.clone()))
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    let mut all: Vec<_> = x.iter().chain(y.iter()).cloned().collect();
    let n = all.len();
    let set: HashSet<_> = all.drain(..).collect();
    assert_eq!(n, 80, "every delivery claimed once in all");
    assert_eq!(set.len(), 80, "no delivery claimed twice");
    // Which claimer wins how many is up to the scheduler; only the sum is deterministic.
    eprintln!("claimer a: {}, claimer b: {}", x.len(), y.len());
}

#[tokio::test]
async fn dlv_07_suppression_list_expires() {
    let (_d, s) = open().await;
    let now = t("2026-11-29T02:00:00Z");
    let until = t("2026-12-13T02:00:00Z");
    s.suppress_address("mailto:r@a.example", "550 no such user", now, until)
        .await
        .unwrap();
    let hit = s
        .suppressed("mailto:r@a.example", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hit.reason, "550 no such user");
    assert_eq!(hit.expires_at, until);
    assert!(
        s.suppressed("mailto:x@a.example", now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.suppressed("mailto:r@a.example", until)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(s.suppression_list(now).await.unwrap().len(), 1);
    assert!(s.unsuppress_address("mailto:r@a.example").await.unwrap());
    assert!(s.suppression_list(now).await.unwrap().is_empty());
}

#[tokio::test]
async fn suppressed_destinations_are_never_claimed() {
    let (_d, s) = open().await;
    let now = t("2026-11-29T02:00:00Z");
    s.outbox_insert_reports(&[report("R", date(2026, 11, 28), "a.example", now)], now)
        .await
        .unwrap();
    let c = s
        .outbox_claim_discovery(now, LEASE, 10, None)
        .await
        .unwrap();
    let d = vec![(
        "mailto:r@a.example".to_string(),
        DestinationStart::Suppressed("on the list".into()),
    )];
    s.outbox_discovered(&c[0], &d, "t", now).await.unwrap();
    assert!(
        s.outbox_claim_due(now, LEASE, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    let l = s.outbox_list(None, None).await.unwrap();
    assert_eq!(l[0].status, "failed");
    assert_eq!(l[0].destinations[0].status, "suppressed");
    assert_eq!(
        l[0].destinations[0].last_error.as_deref(),
        Some("on the list")
    );
}

#[tokio::test]
async fn outbox_prune_removes_old_days_and_expired_suppressions() {
    let (_d, s) = open().await;
    let now = t("2026-11-29T02:00:00Z");
    queued(&s, "OLD", "a.example", &["https://a.example/r"], now).await;
    s.outbox_insert_reports(&[report("NEW", date(2026, 11, 29), "a.example", now)], now)
        .await
        .unwrap();
    s.suppress_address("mailto:x@a.example", "550", now, t("2026-11-29T03:00:00Z"))
        .await
        .unwrap();
    s.suppress_address("mailto:y@a.example", "550", now, t("2026-12-29T03:00:00Z"))
        .await
        .unwrap();
    let n = s
        .outbox_prune(date(2026, 11, 29), t("2026-11-29T04:00:00Z"))
        .await
        .unwrap();
    assert_eq!(n, 1);
    let l = s.outbox_list(None, None).await.unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].report_id, "NEW");
    let sup = s.suppression_list(now).await.unwrap();
    assert_eq!(sup.len(), 1);
    assert_eq!(sup[0].address, "mailto:y@a.example");
}
