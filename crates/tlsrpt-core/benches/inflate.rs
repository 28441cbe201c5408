//! Raw DEFLATE decoding of small reports: `tlsrpt_core::inflate::inflate` next to a reused
//! `flate2::Decompress` (zlib-rs), which is what `read::gunzip` used before. The inputs are the
//! JSON reports under `shared/testdata/reports`, compressed with flate2 at level 9 (gzip
//! reports are a few hundred bytes that inflate to 1-2 KiB); both decoders get an output
//! vector reserved to the exact size, as gzip's ISIZE allows.
//!
//! Run: `cargo bench -p tlsrpt-core --bench inflate -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flate2::{Compression, Decompress, FlushDecompress};
use tlsrpt_core::inflate::inflate;

/// (raw deflate stream, decompressed size) for every test report.
fn inputs() -> Vec<(Vec<u8>, usize)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/reports");
    let mut files = Vec::new();
    for sub in std::fs::read_dir(&dir).expect("testdata folder next to the repository") {
        let sub = sub.expect("entry").path();
        if sub.is_dir() {
            for f in std::fs::read_dir(sub).expect("folder") {
                let f = f.expect("entry").path();
                if f.extension().is_some_and(|e| e == "json") {
                    files.push(f);
                }
            }
        }
    }
    files.sort();
    files
        .iter()
        .map(|f| {
            let json = std::fs::read(f).expect("report");
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), Compression::new(9));
            e.write_all(&json).expect("deflate");
            (e.finish().expect("deflate"), json.len())
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let inputs = inputs();
    let cap = 10 << 20;
    let total: usize = inputs.iter().map(|(_, n)| n).sum();
    let mut group = c.benchmark_group(format!("inflate_{}_reports", inputs.len()));
    group.throughput(Throughput::Bytes(total as u64));
    group.bench_function("tlsrpt_inflate", |b| {
        b.iter(|| {
            for (stream, size) in &inputs {
                let mut out = Vec::with_capacity(*size);
                let used = inflate(black_box(stream), &mut out, cap).expect("valid stream");
                black_box((used, out));
            }
        })
    });
    let mut decompress = Decompress::new(false);
    group.bench_function("flate2_zlib_rs_reused", |b| {
        b.iter(|| {
            for (stream, size) in &inputs {
                let mut out = Vec::with_capacity(*size);
                decompress.reset(false);
                decompress
                    .decompress_vec(black_box(stream), &mut out, FlushDecompress::Finish)
                    .expect("valid stream");
                black_box((decompress.total_in(), out));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
