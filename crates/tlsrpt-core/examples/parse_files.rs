//! Parse-and-validate throughput over files already in memory, for `scripts/bench-parse.sh`,
//! which runs parsedmarc over the same files in the same run.
//!
//! Usage: `parse_files SECONDS|rROUNDS FILE...` — each file is read once, then parsed round-robin for
//! about SECONDS per kind (json, gzip, message). Prints one JSON object per kind on stdout:
//! `{"kind":"json","files":N,"parses":N,"seconds":S,"per_second":R,"failures":F}`.

use std::time::{Duration, Instant};

use tlsrpt_core::message::{extract_report, looks_like_message};
use tlsrpt_core::read::{Limits, is_gzip, read_report};

fn kind(bytes: &[u8]) -> &'static str {
    if is_gzip(bytes) {
        "gzip"
    } else if looks_like_message(bytes) {
        "message"
    } else {
        "json"
    }
}

fn parse(bytes: &[u8], limits: &Limits) -> bool {
    if looks_like_message(bytes) && !is_gzip(bytes) {
        extract_report(bytes, limits).is_ok()
    } else {
        read_report(bytes, limits).is_ok()
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    // `rN` instead of SECONDS: exactly N rounds, for instruction counts under callgrind.
    let first = args.next().unwrap_or_default();
    let rounds: Option<u64> = first.strip_prefix('r').and_then(|n| n.parse().ok());
    let seconds: f64 = first.parse().unwrap_or(2.0);
    let mut files: Vec<Vec<u8>> = Vec::new();
    for path in args {
        match std::fs::read(&path) {
            Ok(b) => files.push(b),
            Err(e) => eprintln!("parse_files: {path}: {e}"),
        }
    }
    let limits = Limits::default();
    for k in ["json", "gzip", "message"] {
        let set: Vec<&[u8]> = files
            .iter()
            .map(Vec::as_slice)
            .filter(|b| kind(b) == k)
            .collect();
        if set.is_empty() {
            continue;
        }
        let failures = set.iter().filter(|b| !parse(b, &limits)).count();
        let budget = Duration::from_secs_f64(seconds);
        let start = Instant::now();
        let mut parses: u64 = 0;
        while rounds.map_or(start.elapsed() < budget, |r| parses < r * set.len() as u64) {
            for b in &set {
                std::hint::black_box(parse(std::hint::black_box(b), &limits));
            }
            parses += set.len() as u64;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{{\"kind\":\"{k}\",\"files\":{},\"parses\":{parses},\"seconds\":{secs:.3},\"per_second\":{:.0},\"failures\":{failures}}}",
            set.len(),
            parses as f64 / secs
        );
    }
}
