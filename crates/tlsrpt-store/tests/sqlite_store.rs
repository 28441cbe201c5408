//! The SQLite store against a real temporary database file.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jiff::civil::{Date, date};
use tlsrpt_core::tally::{PolicyCounters, ReportKey, Tally};
use tlsrpt_core::{FailureDetail, Policy, PolicyType, ResultType};
use tlsrpt_store::{Store, StoreError, StoreOptions};

fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("t.db").display())
}

fn sts(domain: &str) -> Policy {
    Policy {
        policy_type: PolicyType::Sts,
        policy_string: vec!["version: STSv1".into(), "mode: enforce".into()],
        policy_domain: Some(domain.into()),
        mx_host: vec!["*.mail.example.com".into()],
    }
}

fn failure(ip: &str) -> FailureDetail {
    let mut f = FailureDetail::new(ResultType::CertificateExpired);
    f.sending_mta_ip = Some(ip.into());
    f.receiving_mx_hostname = Some("mx1.mail.example.com".into());
    f.receiving_mx_helo = Some("250-mx1\r\n250 STARTTLS".into());
    f
}

/// A tally with two days, two domains, two policies and two distinct failure details.
fn sample(day: Date) -> Tally {
    let mut t = Tally::default();
    let key = |d: &str| ReportKey {
        day,
        domain: d.into(),
        record: "v=TLSRPTv1; rua=mailto:tlsrpt@example.com".into(),
    };
    let mut a = BTreeMap::new();
    a.insert(
        sts("example.com"),
        PolicyCounters {
            successful: 10,
            failed: 3,
            failures: [(failure("192.0.2.1"), 2), (failure("2001:db8::1"), 1)]
                .into_iter()
                .collect(),
        },
    );
    a.insert(
        Policy {
            policy_type: PolicyType::NoPolicyFound,
            policy_string: vec![],
            policy_domain: None,
            mx_host: vec![],
        },
        PolicyCounters {
            successful: 5,
            failed: 0,
            failures: BTreeMap::new(),
        },
    );
    t.reports.insert(key("example.com"), a);
    let mut b = BTreeMap::new();
    b.insert(
        sts("example.org"),
        PolicyCounters {
            successful: 1,
            failed: 0,
            failures: BTreeMap::new(),
        },
    );
    t.reports.insert(key("example.org"), b);
    t
}

fn doubled(t: &Tally) -> Tally {
    let mut d = t.clone();
    for ps in d.reports.values_mut() {
        for c in ps.values_mut() {
            c.successful *= 2;
            c.failed *= 2;
            for n in c.failures.values_mut() {
                *n *= 2;
            }
        }
    }
    d
}

#[tokio::test]
async fn rpt_05_adding_twice_doubles_every_counter() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&url(&dir)).await.unwrap();
    let day = date(2026, 11, 28);
    let t = sample(day);
    store.add_counters(&t).await.unwrap();
    assert_eq!(store.load_tally(day, None).await.unwrap(), t);
    store.add_counters(&t).await.unwrap();
    assert_eq!(store.load_tally(day, None).await.unwrap(), doubled(&t));
    store.close().await;
}

#[tokio::test]
async fn loads_by_day_and_by_domain() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&url(&dir)).await.unwrap();
    let d1 = date(2026, 11, 28);
    let d2 = date(2026, 11, 29);
    store.add_counters(&sample(d1)).await.unwrap();
    store.add_counters(&sample(d2)).await.unwrap();
    store.add_counters(&sample(d2)).await.unwrap();

    assert_eq!(store.load_tally(d1, None).await.unwrap(), sample(d1));
    assert_eq!(
        store.load_tally(d2, None).await.unwrap(),
        doubled(&sample(d2))
    );
    assert!(
        store
            .load_tally(date(2026, 11, 27), None)
            .await
            .unwrap()
            .reports
            .is_empty()
    );

    // Domain filter, normalised like the collector does (case, trailing dot).
    let only = store.load_tally(d1, Some("Example.ORG.")).await.unwrap();
    assert_eq!(only.reports.len(), 1);
    let (k, ps) = only.reports.iter().next().unwrap();
    assert_eq!(k.domain, "example.org");
    assert_eq!(ps.values().next().unwrap().successful, 1);
}

async fn days_left(s: &Store, today: Date) -> usize {
    let mut n = 0;
    for back in 0..5i64 {
        let d = today.checked_sub(jiff::Span::new().days(back)).unwrap();
        if !s.load_tally(d, None).await.unwrap().reports.is_empty() {
            n += 1;
        }
    }
    n
}

/// REQUIREMENTS RPT-21: raw data survives at least 48 h after its day, whatever is configured.
#[tokio::test]
async fn rpt_21_prune_keeps_n_days_and_never_fewer_than_two() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&url(&dir)).await.unwrap();
    let today = date(2026, 11, 29);
    for back in 0..5i64 {
        let d = today.checked_sub(jiff::Span::new().days(back)).unwrap();
        store.add_counters(&sample(d)).await.unwrap();
    }
    assert_eq!(days_left(&store, today).await, 5);
    // keep 3: today and 3 days before survive, today-4 goes. Each sample day has 3 policy
    // rows + 2 failure rows.
    assert_eq!(store.prune(today, 3).await.unwrap(), 5);
    assert_eq!(days_left(&store, today).await, 4);
    // keep_days = 0 or 1 is raised to 2: today, yesterday and the day before survive.
    assert_eq!(store.prune(today, 0).await.unwrap(), 5);
    assert_eq!(days_left(&store, today).await, 3);
    assert_eq!(store.prune(today, 1).await.unwrap(), 0);
    assert_eq!(
        store.load_tally(today, None).await.unwrap(),
        sample(today),
        "today's data untouched"
    );
}

#[tokio::test]
async fn rpt_05_concurrent_adds_from_two_tasks_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::open(&url(&dir)).await.unwrap());
    let day = date(2026, 11, 28);
    let mut handles = Vec::new();
    for _ in 0..2 {
        let s = store.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..25 {
                s.add_counters(&sample(day)).await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let got = store.load_tally(day, None).await.unwrap();
    let c = &got.reports.values().next().unwrap()[&sts("example.com")];
    assert_eq!(c.successful, 10 * 50);
    assert_eq!(c.failed, 3 * 50);
    assert_eq!(c.failures[&failure("192.0.2.1")], 2 * 50);
}

#[tokio::test]
async fn locked_database_fails_in_bounded_time_then_recovers() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let u = url(&dir);
    let opts = StoreOptions {
        busy_timeout: Duration::from_millis(300),
        ..StoreOptions::default()
    };
    let store = Store::open_with(&u, &opts).await.unwrap();
    let day = date(2026, 11, 28);

    // Another connection (as another process would) holds the write lock.
    let mut other = sqlx::SqliteConnection::connect(&u).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();

    let started = Instant::now();
    let err = store.add_counters(&sample(day)).await.unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.is_transient());
    assert!(waited >= Duration::from_millis(250), "waited {waited:?}");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");

    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    store.add_counters(&sample(day)).await.unwrap();
    // The failed attempt stored nothing (one transaction), the retry stored everything once.
    assert_eq!(store.load_tally(day, None).await.unwrap(), sample(day));
}

#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let day = date(2026, 11, 28);
    {
        let store = Store::open(&url(&dir)).await.unwrap();
        store.add_counters(&sample(day)).await.unwrap();
        store.close().await;
    }
    // Reopen: migrations are idempotent, counters continue.
    let store = Store::open(&url(&dir)).await.unwrap();
    assert_eq!(store.load_tally(day, None).await.unwrap(), sample(day));
    store.add_counters(&sample(day)).await.unwrap();
    assert_eq!(
        store.load_tally(day, None).await.unwrap(),
        doubled(&sample(day))
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    std::fs::write(&path, vec![b'x'; 8192]).unwrap();
    let err = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn many_keys_in_one_flush() {
    // More rows than one INSERT batch, to exercise the chunking.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&url(&dir)).await.unwrap();
    let day = date(2026, 11, 28);
    let mut t = Tally::default();
    for i in 0..1000 {
        let mut ps = BTreeMap::new();
        ps.insert(
            sts(&format!("d{i}.example")),
            PolicyCounters {
                successful: i,
                failed: 1,
                failures: [(failure(&format!("192.0.2.{}", i % 250)), 1)]
                    .into_iter()
                    .collect(),
            },
        );
        t.reports.insert(
            ReportKey {
                day,
                domain: format!("d{i}.example"),
                record: "v=TLSRPTv1; rua=mailto:r@example".into(),
            },
            ps,
        );
    }
    store.add_counters(&t).await.unwrap();
    assert_eq!(store.load_tally(day, None).await.unwrap(), t);
}

#[tokio::test]
async fn open_without_create_refuses_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        create_if_missing: false,
        ..StoreOptions::default()
    };
    let err = Store::open_with(&url(&dir), &opts).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(!dir.path().join("t.db").exists(), "nothing created");
}

/// Memory of one large flush (run by hand: `cargo test -p tlsrpt-store --release -- --ignored
/// --nocapture rss`). Prints VmRSS/VmHWM before and after adding 100,000 keys.
#[tokio::test]
#[ignore]
async fn rss_of_a_100k_key_flush() {
    fn status(key: &str) -> String {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_default()
            .to_owned()
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&url(&dir)).await.unwrap();
    let day = date(2026, 11, 28);
    eprintln!("before: {} {}", status("VmRSS"), status("VmHWM"));
    let mut t = Tally::default();
    for i in 0..100_000u64 {
        let mut ps = BTreeMap::new();
        let mut failures = BTreeMap::new();
        if i % 10 == 0 {
            failures.insert(failure("192.0.2.1"), 1);
        }
        ps.insert(
            sts(&format!("d{i}.sim.example")),
            PolicyCounters {
                successful: 2,
                failed: u64::from(i % 10 == 0),
                failures,
            },
        );
        t.reports.insert(
            ReportKey {
                day,
                domain: format!("d{i}.sim.example"),
                record: format!("v=TLSRPTv1; rua=mailto:tlsrpt@d{i}.sim.example"),
            },
            ps,
        );
    }
    eprintln!("tally built: {} {}", status("VmRSS"), status("VmHWM"));
    let started = std::time::Instant::now();
    store.add_counters(&t).await.unwrap();
    eprintln!(
        "after add_counters ({:?}): {} {}",
        started.elapsed(),
        status("VmRSS"),
        status("VmHWM")
    );
    drop(t);
    eprintln!("tally dropped: {} {}", status("VmRSS"), status("VmHWM"));
}
