//! Decode + aggregate throughput over a realistic datagram mix: 1,000 recipient domains,
//! 10 % failures, sts / tlsa / no-policy-found policies, IPv4 and IPv6 addresses.
//!
//! Run with short settings on the shared machine:
//! `cargo bench -p tlsrpt-core --bench tally -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jiff::civil::date;
use tlsrpt_core::datagram::{DatagramBuf, FailureBuf, PolicyBuf, decode};
use tlsrpt_core::tally::Tally;
use tlsrpt_core::{PolicyType, ResultType};

/// `n` encoded datagrams with a deterministic pseudo-random mix.
pub fn mix(n: usize) -> Vec<Vec<u8>> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| {
            let r = next();
            let dom = format!("domain{}.example", r % 1000);
            let mut dg = DatagramBuf::new(&dom, format!("v=TLSRPTv1; rua=mailto:tlsrpt@{dom}"));
            let kind = (r >> 10) % 3;
            let mut p = match kind {
                0 => {
                    let mut p = PolicyBuf::new(&PolicyType::Sts, Some(&dom));
                    p.policy_strings = vec![
                        "version: STSv1".into(),
                        "mode: enforce".into(),
                        format!("mx: *.{dom}"),
                        "max_age: 604800".into(),
                    ];
                    p.mx_hosts = vec![format!("*.{dom}")];
                    p
                }
                1 => {
                    let mut p = PolicyBuf::new(&PolicyType::Tlsa, Some(&format!("mx.{dom}")));
                    p.policy_strings = vec![format!("3 1 1 {:064X}", r % 7)];
                    p
                }
                _ => PolicyBuf::new(&PolicyType::NoPolicyFound, Some(&dom)),
            };
            if (r >> 20).is_multiple_of(10) {
                let v6 = (r >> 30).is_multiple_of(2);
                let (s, rip) = if v6 {
                    (
                        format!("2001:db8::{:x}", r % 4),
                        format!("2001:db8:1::{:x}", (r >> 4) % 16),
                    )
                } else {
                    (
                        format!("192.0.2.{}", r % 4),
                        format!("198.51.100.{}", (r >> 4) % 16),
                    )
                };
                p.push_failure(FailureBuf {
                    sending_mta_ip: Some(s),
                    receiving_mx_hostname: Some(format!("mx.{dom}")),
                    receiving_mx_helo: Some(format!(
                        "250-mx.{dom}\r\n250-PIPELINING\r\n250 STARTTLS"
                    )),
                    receiving_ip: Some(rip),
                    failure_reason_code: Some("self-signed_certificate".into()),
                    ..FailureBuf::new(&ResultType::ValidationFailure)
                });
            }
            dg.policies.push(p);
            dg.encode()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let dgs = mix(10_000);
    let day = date(2026, 11, 28);
    let mut g = c.benchmark_group("datagram");
    g.throughput(Throughput::Elements(dgs.len() as u64));
    g.bench_function("decode", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for d in &dgs {
                let d = decode(black_box(d)).unwrap();
                n += d.policy_count();
            }
            n
        })
    });
    g.bench_function("decode+Tally::add_datagram", |b| {
        b.iter(|| {
            let mut t = Tally::new();
            for d in &dgs {
                t.add_datagram(day, &decode(black_box(d)).unwrap()).unwrap();
            }
            t
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
