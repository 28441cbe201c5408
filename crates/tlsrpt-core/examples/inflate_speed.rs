//! Quick timing of `tlsrpt_core::inflate::inflate` against a reused `flate2::Decompress`
//! (zlib-rs) on small gzip members.
//!
//! Usage: `inflate_speed [ours|flate2|both] [ROUNDS] [FILE.gz...]` — with no files, the reports
//! under `shared/testdata/reports` are compressed with flate2 at level 9. Gzip files must have
//! no optional header fields (10-byte header, 8-byte trailer). Prints ns per report.

use std::io::Write;
use std::time::Instant;

use flate2::{Compression, Decompress, FlushDecompress, Status};
use tlsrpt_core::inflate::inflate;

fn inputs(files: &[String]) -> Vec<(Vec<u8>, usize)> {
    if !files.is_empty() {
        return files
            .iter()
            .map(|f| {
                let gz = std::fs::read(f).expect("read");
                let body = gz[10..gz.len() - 8].to_vec();
                let t = &gz[gz.len() - 4..];
                (body, u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as usize)
            })
            .collect();
    }
    let root = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/reports"
    );
    let mut out = Vec::new();
    for dir in std::fs::read_dir(root).expect("reports dir") {
        let dir = dir.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(dir).expect("dir") {
            let p = f.expect("entry").path();
            if p.extension().is_some_and(|e| e == "json") {
                let json = std::fs::read(&p).expect("read");
                let mut e = flate2::write::DeflateEncoder::new(Vec::new(), Compression::new(9));
                e.write_all(&json).expect("deflate");
                out.push((e.finish().expect("deflate"), json.len()));
            }
        }
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map_or("both", String::as_str).to_string();
    let rounds: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(20_000);
    let inputs = inputs(args.get(2..).unwrap_or(&[]));
    let cap = 10 << 20;
    let mut dec = Decompress::new(false);
    let mut check = 0usize;
    for (body, size) in &inputs {
        let mut a = Vec::with_capacity(*size);
        inflate(body, &mut a, cap).expect("ours");
        let mut b = Vec::with_capacity(*size);
        dec.reset(false);
        assert_eq!(
            dec.decompress_vec(body, &mut b, FlushDecompress::Finish)
                .unwrap(),
            Status::StreamEnd
        );
        assert_eq!(a, b);
    }
    // Alternate short batches and keep each side's fastest: the machine may be busy.
    let batch = 500;
    let n = (batch * inputs.len()) as f64;
    let (mut best_ours, mut best_flate2) = (f64::MAX, f64::MAX);
    for _ in 0..rounds.div_ceil(batch) {
        if which == "ours" || which == "both" {
            let t = Instant::now();
            for _ in 0..batch {
                for (body, size) in &inputs {
                    let mut out = Vec::with_capacity(*size);
                    check +=
                        inflate(std::hint::black_box(body), &mut out, cap).unwrap_or(0) + out.len();
                }
            }
            best_ours = best_ours.min(t.elapsed().as_nanos() as f64 / n);
        }
        if which == "flate2" || which == "both" {
            let t = Instant::now();
            for _ in 0..batch {
                for (body, size) in &inputs {
                    let mut out = Vec::with_capacity(*size);
                    dec.reset(false);
                    let _ = dec.decompress_vec(
                        std::hint::black_box(body),
                        &mut out,
                        FlushDecompress::Finish,
                    );
                    check += dec.total_in() as usize + out.len();
                }
            }
            best_flate2 = best_flate2.min(t.elapsed().as_nanos() as f64 / n);
        }
    }
    if best_ours < f64::MAX {
        println!("ours   {best_ours:7.1} ns/report (fastest batch of {batch} rounds)");
    }
    if best_flate2 < f64::MAX {
        println!("flate2 {best_flate2:7.1} ns/report (fastest batch of {batch} rounds)");
    }
    std::hint::black_box(check);
}
