//! Building a day for 100,000 policy domains: `load_tally` from SQLite, `Tally::reports`,
//! `to_gzip` each, and storing the 100,000 outbox rows (issue 4 target: ≤ 5 s).
//!
//! The counters (an `sts` policy with 2 failure details, per domain) are written once; each
//! measured iteration builds into a fresh copy of that database file, so every iteration
//! really inserts 100,000 reports (a rebuild of an already built day would only look them
//! up). A one-shot phase breakdown is printed first.
//!
//! Run: `cargo bench -p tlsrpt-reporter --bench build_day -- --warm-up-time 1 --measurement-time 3`

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::civil::{Date, date};
use tlsrpt_core::report::{FailureDetail, Policy};
use tlsrpt_core::tally::{PolicyCounters, ReportKey, Tally};
use tlsrpt_core::types::{PolicyType, ResultType};
use tlsrpt_reporter::outbox::{BuildOptions, build_day};
use tlsrpt_store::Store;
use tlsrpt_store::outbox::NewReport;

const DOMAINS: usize = 100_000;
const DAY: Date = date(2026, 11, 28);

fn tally() -> Tally {
    let mut t = Tally::new();
    for i in 0..DOMAINS {
        let domain = format!("d{i}.example");
        let key = ReportKey {
            day: DAY,
            domain: domain.clone(),
            record: format!("v=TLSRPTv1; rua=mailto:tlsrpt@{domain}"),
        };
        let policy = Policy {
            policy_type: PolicyType::Sts,
            policy_string: vec![
                "version: STSv1".into(),
                "mode: enforce".into(),
                format!("mx: mx.{domain}"),
                "max_age: 604800".into(),
            ],
            policy_domain: Some(domain.clone()),
            mx_host: vec![format!("mx.{domain}")],
        };
        let mut failures = BTreeMap::new();
        for (n, rt) in [
            (1u64, ResultType::CertificateExpired),
            (2, ResultType::StarttlsNotSupported),
        ] {
            let mut f = FailureDetail::new(rt);
            f.sending_mta_ip = Some("192.0.2.1".into());
            f.receiving_mx_hostname = Some(format!("mx.{domain}"));
            f.receiving_ip = Some("198.51.100.7".into());
            failures.insert(f, n);
        }
        t.add_counters(
            &key,
            &policy,
            &PolicyCounters {
                successful: 1000 + i as u64,
                failed: 3,
                failures,
            },
        );
    }
    t
}

fn url(p: &Path) -> String {
    format!("sqlite://{}", p.display())
}

/// Copies the filled database (with its WAL checkpointed by `close`) to a fresh file.
fn fresh_copy(template: &Path, dir: &Path, n: usize) -> PathBuf {
    let p = dir.join(format!("copy{n}.db"));
    std::fs::copy(template, &p).expect("copy the template database");
    p
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let template = dir.path().join("template.db");
    rt.block_on(async {
        let s = Store::open(&url(&template)).await.expect("open");
        s.add_counters(&tally()).await.expect("fill");
        s.close().await;
    });
    let opts = BuildOptions::new("Sender Inc.", "tlsrpt@sender.example");
    let now: jiff::Timestamp = "2026-11-29T00:30:00Z".parse().expect("ts");

    // One-shot breakdown of the phases.
    rt.block_on(async {
        let s = Store::open(&url(&fresh_copy(&template, dir.path(), 0)))
            .await
            .expect("open");
        let t0 = Instant::now();
        let tally = s.load_tally(DAY, None).await.expect("load");
        let t1 = Instant::now();
        let reports = tally.reports("Sender Inc.", "tlsrpt@sender.example", |k| {
            format!("x.{}@sender.example", k.domain)
        });
        let t2 = Instant::now();
        let gz: Vec<Vec<u8>> = reports
            .iter()
            .map(|(_, r)| tlsrpt_core::write::to_gzip(r))
            .collect();
        let t3 = Instant::now();
        let bytes: usize = gz.iter().map(Vec::len).sum();
        let rows: Vec<NewReport> = reports
            .iter()
            .zip(gz)
            .map(|((k, r), gzip)| NewReport {
                report_id: r.report_id.clone(),
                day: DAY,
                policy_domain: k.domain.clone(),
                record: k.record.clone(),
                filename: format!("sender.example!{}!1!2.json.gz", k.domain),
                gzip,
                send_at: now,
                deadline: now,
            })
            .collect();
        let t4 = Instant::now();
        s.outbox_insert_reports(&rows, now).await.expect("insert");
        let t5 = Instant::now();
        eprintln!(
            "phases for {DOMAINS} domains (one thread): load_tally {:?}, reports {:?}, \
             to_gzip {:?} ({} bytes gzip, {} avg), storing the outbox rows {:?}",
            t1 - t0,
            t2 - t1,
            t3 - t2,
            bytes,
            bytes / DOMAINS,
            t5 - t4,
        );
        s.close().await;
        let s = Store::open(&url(&fresh_copy(&template, dir.path(), 999_999)))
            .await
            .expect("open");
        let t6 = Instant::now();
        let b = build_day(&s, DAY, None, &opts, now).await.expect("build");
        eprintln!(
            "build_day (all phases, gzip in parallel, {} outbox rows): {:?}",
            b.reports.len(),
            t6.elapsed()
        );
        s.close().await;
    });

    let mut g = c.benchmark_group("reporter");
    g.sample_size(10);
    g.bench_function("build_day/100k_domains", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let path = fresh_copy(&template, dir.path(), 1 + i as usize);
                total += rt.block_on(async {
                    let s = Store::open(&url(&path)).await.expect("open");
                    let start = Instant::now();
                    let b = build_day(&s, DAY, None, &opts, now).await.expect("build");
                    let took = start.elapsed();
                    assert_eq!(b.reports.len(), DOMAINS);
                    s.close().await;
                    took
                });
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(path.with_extension("db-wal"));
                let _ = std::fs::remove_file(path.with_extension("db-shm"));
            }
            total
        })
    });
    g.finish();
}

criterion_group!(build, bench);
criterion_main!(build);
