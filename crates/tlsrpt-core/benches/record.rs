//! How fast `_smtp._tls` records parse and RRsets select. A reporter looks up one record per
//! policy domain per day, so this matters mostly for `check` in bulk and for fuzzing budgets.
//!
//! Run: `cargo bench -p tlsrpt-core --bench record -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tlsrpt_core::record::{parse_record, select};

const TYPICAL: &str = "v=TLSRPTv1; rua=mailto:tlsrpt@recipient.example";

const FIVE_URIS: &str = "v=TLSRPTv1; rua=mailto:tls-reports@recipient.example,\
    https://reports.recipient.example/v1/tlsrpt,mailto:tls%21ops@provider.example?subject=tlsrpt,\
    https://tlsrpt.provider.example/submit/recipient.example , mailto:backup@recipient.example; \
    note=hello_world; x-provider.id=abc-123";

fn benches(c: &mut Criterion) {
    c.bench_function("parse_record/typical", |b| {
        b.iter(|| parse_record(black_box(TYPICAL)))
    });
    c.bench_function("parse_record/5_uris_2_extensions", |b| {
        b.iter(|| parse_record(black_box(FIVE_URIS)))
    });
    // What a busy domain publishes: SPF, a verification token, and a TLSRPT record split
    // over two character-strings the way long TXT data is.
    let rrset: Vec<Vec<Vec<u8>>> = vec![
        vec![b"v=spf1 include:_spf.provider.example -all".to_vec()],
        vec![b"google-site-verification=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG".to_vec()],
        vec![
            b"v=TLSRPTv1; rua=mailto:tls-reports@recipient.example,".to_vec(),
            b"https://reports.recipient.example/v1/tlsrpt".to_vec(),
        ],
        vec![b"MS=ms12345678".to_vec()],
    ];
    c.bench_function("select/4_rrs", |b| b.iter(|| select(black_box(&rrset))));
}

criterion_group!(record, benches);
criterion_main!(record);
