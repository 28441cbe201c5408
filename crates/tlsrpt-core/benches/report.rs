//! How fast reports read and write, next to the floor: plain
//! `serde_json::from_slice::<serde_json::Value>` on the same bytes (for gzip: gunzip + that).
//! The target is the lenient reader within 2x of the floor; it does more (limits, duplicate
//! keys, paths, deviations, building the model) but parses only once.
//!
//! Run: `cargo bench -p tlsrpt-core --bench report -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tlsrpt_core::read::{Limits, gunzip, read_report};
use tlsrpt_core::report::{DateRange, FailureDetail, Policy, PolicyResult, Report, Summary};
use tlsrpt_core::types::{KNOWN_RESULT_TYPES, PolicyType};
use tlsrpt_core::write::{to_gzip, to_json};

/// A typical daily report: the RFC 8460 Appendix B example, compact (~1 KiB).
const TYPICAL: &str = r#"{"organization-name":"Company-X","date-range":{"start-datetime":"2016-04-01T00:00:00Z","end-datetime":"2016-04-01T23:59:59Z"},"contact-info":"sts-reporting@company-x.example","report-id":"5065427c-23d3-47ca-b6e0-946ea0e8c4be","policies":[{"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: testing","mx: *.mail.company-y.example","max_age: 86400"],"policy-domain":"company-y.example","mx-host":["*.mail.company-y.example"]},"summary":{"total-successful-session-count":5326,"total-failure-session-count":303},"failure-details":[{"result-type":"certificate-expired","sending-mta-ip":"2001:db8:abcd:12::1","receiving-mx-hostname":"mx1.mail.company-y.example","failed-session-count":100},{"result-type":"starttls-not-supported","sending-mta-ip":"2001:db8:abcd:13::1","receiving-mx-hostname":"mx2.mail.company-y.example","receiving-ip":"203.0.113.56","failed-session-count":200,"additional-information":"https://reports.company-x.example/report_info?id=5065427c-23d3#StarttlsNotSupported"},{"result-type":"validation-failure","sending-mta-ip":"198.51.100.62","receiving-ip":"203.0.113.58","receiving-mx-hostname":"mx-backup.mail.company-y.example","failed-session-count":3,"failure-reason-code":"X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"}]}]}"#;

/// A big provider's report: ~1 MiB, 100 policies with 30 failure details each.
fn big() -> Report {
    let start = "2025-03-14T00:00:00Z".parse().unwrap();
    let end = "2025-03-14T23:59:59Z".parse().unwrap();
    let policies = (0..100)
        .map(|p| PolicyResult {
            policy: Policy {
                policy_type: PolicyType::Sts,
                policy_string: vec![
                    "version: STSv1".into(),
                    "mode: enforce".into(),
                    format!("mx: mx1.domain{p}.example"),
                    format!("mx: *.backup.domain{p}.example"),
                    "max_age: 1209600".into(),
                ],
                policy_domain: Some(format!("domain{p}.example")),
                mx_host: vec![
                    format!("mx1.domain{p}.example"),
                    format!("*.backup.domain{p}.example"),
                ],
            },
            summary: Summary {
                total_successful_session_count: 100_000 + p,
                total_failure_session_count: 30 * 7,
            },
            failure_details: (0..30)
                .map(|i| {
                    let mut d = FailureDetail::new(KNOWN_RESULT_TYPES[i % 11].clone());
                    d.sending_mta_ip = Some(format!("2001:db8:{p:x}::{i:x}"));
                    d.receiving_mx_hostname = Some(format!("mx{i}.backup.domain{p}.example"));
                    d.receiving_mx_helo = Some(format!("mx{i}.backup.domain{p}.example"));
                    d.receiving_ip = Some(format!("203.0.{}.{}", p % 250, i));
                    d.failed_session_count = 7;
                    d.failure_reason_code = Some(format!("tls-remote-alert-{i}-protocol-version"));
                    d
                })
                .collect(),
        })
        .collect();
    Report {
        organization_name: Some("Sender Example Mail Ltd".into()),
        date_range: DateRange { start, end },
        contact_info: Some("tlsrpt@sender.example".into()),
        report_id: "20250314T000000Z.big@sender.example".into(),
        policies,
    }
}

fn benches(c: &mut Criterion) {
    let limits = Limits::default();
    let big = big();
    let big_json = to_json(&big);
    let big_gz = to_gzip(&big);
    let typical_gz = {
        let r = read_report(TYPICAL.as_bytes(), &limits).unwrap().report;
        to_gzip(&r)
    };
    let inputs: [(&str, &[u8], bool); 4] = [
        ("typical_1k", TYPICAL.as_bytes(), false),
        ("big_1m", big_json.as_bytes(), false),
        ("typical_1k_gz", &typical_gz, true),
        ("big_1m_gz", &big_gz, true),
    ];
    let mut g = c.benchmark_group("read");
    for (name, bytes, gz) in inputs {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::new("tlsrpt", name), bytes, |b, bytes| {
            b.iter(|| read_report(black_box(bytes), &limits).unwrap())
        });
        g.bench_with_input(
            BenchmarkId::new("serde_json_value", name),
            bytes,
            |b, bytes| {
                b.iter(|| {
                    if gz {
                        let json = gunzip(black_box(bytes), &limits).unwrap();
                        serde_json::from_slice::<serde_json::Value>(&json).unwrap()
                    } else {
                        serde_json::from_slice::<serde_json::Value>(black_box(bytes)).unwrap()
                    }
                })
            },
        );
    }
    g.finish();

    let mut g = c.benchmark_group("write");
    g.throughput(Throughput::Bytes(big_json.len() as u64));
    g.bench_function("to_json/big_1m", |b| b.iter(|| to_json(black_box(&big))));
    g.bench_function("to_gzip/big_1m", |b| b.iter(|| to_gzip(black_box(&big))));
    g.finish();
}

criterion_group!(report, benches);
criterion_main!(report);
