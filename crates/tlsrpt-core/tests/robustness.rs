//! Property tests: random bytes and mutated real inputs (bit flips, truncations, splices) fed
//! to the four fuzzed entry points (message, report JSON, report gzip, TXT record). Report
//! content is untrusted (REQUIREMENTS RCV-08) and every parser must answer with a value or an
//! error, never a panic, within its limits (RCV-07, DNS-22). The case count is bounded so the
//! normal test suite runs this in seconds; the long runs are the fuzzers (docs/FUZZING.md).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use tlsrpt_core::{message, naming, read, record};

fn limits() -> read::Limits {
    read::Limits {
        max_input_bytes: 1 << 20,
        max_decompressed_bytes: 4 << 20,
        ..read::Limits::default()
    }
}

fn testdata_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/reports")
}

/// Files under `dir` (one level of sub-folders) whose name ends with one of `exts`, at most
/// 32 KiB each so mutations stay cheap.
fn files(dir: &Path, exts: &[&str]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if exts.iter().any(|x| p.to_string_lossy().ends_with(x)) {
                let data = std::fs::read(&p).unwrap();
                if data.len() <= 32 * 1024 {
                    out.push(data);
                }
            }
        }
    }
    out.sort();
    out
}

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(target)
}

fn message_seeds() -> Vec<Vec<u8>> {
    let mut s = files(&testdata_dir(), &[".eml"]);
    s.extend(files(&corpus("message"), &[".eml"]));
    s
}

fn json_seeds() -> Vec<Vec<u8>> {
    files(&testdata_dir(), &[".json"])
}

fn gzip_seeds() -> Vec<Vec<u8>> {
    // The report_gzip entry's first byte picks the mode: 0 = raw gzip, 1 = compress first.
    let mut s: Vec<Vec<u8>> = files(&testdata_dir(), &[".gz"])
        .into_iter()
        .map(|g| [&[0u8][..], &g].concat())
        .collect();
    s.extend(json_seeds().into_iter().map(|j| [&[1u8][..], &j].concat()));
    s
}

fn record_seeds() -> Vec<Vec<u8>> {
    let mut s: Vec<Vec<u8>> = [
        "v=TLSRPTv1; rua=mailto:tlsrpt@example.com",
        "v=TLSRPTv1;rua=https://reporting.example.com/v1/tlsrpt",
        "v=TLSRPTv1; rua=mailto:a@example.com,https://r.example/x; ext=1",
        "v=TLSRPTv1 ; rua=mailto:a%21b@example.com",
        "v=spf1 -all\0v=TLSRPTv1; rua=mailto:a@ex\u{1}ample.com",
        "\"v=TLSRPTv1; rua=mailto:a@exa\" \"mple.net\"",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    s.extend(files(&corpus("record"), &[".txt"]));
    s
}

/// A seed mutated by bit flips, a truncation and/or a splice with another seed.
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    assert!(!seeds.is_empty(), "no seeds");
    let n = seeds.len();
    (
        0..n,
        0..n,
        vec((any::<Index>(), 0u8..8), 0..16),
        any::<Index>(),
        any::<Index>(),
        any::<Index>(),
        0u8..4,
    )
        .prop_map(move |(a, b, flips, cut, at, from, mode)| {
            let mut data = seeds[a].clone();
            if data.is_empty() {
                return data;
            }
            if mode == 0 || mode == 3 {
                for (i, bit) in &flips {
                    let i = i.index(data.len());
                    data[i] ^= 1 << bit;
                }
            }
            if mode == 1 || mode == 3 {
                data.truncate(cut.index(data.len() + 1));
            }
            if mode == 2 || mode == 3 {
                let other = &seeds[b];
                let at = at.index(data.len() + 1);
                let from = from.index(other.len() + 1);
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            data
        })
}

fn message_entry(data: &[u8]) {
    let _ = message::looks_like_message(data);
    if let Ok(r) = message::extract_report(data, &limits()) {
        assert!(!r.media_type.is_empty());
        for d in &r.reading.deviations {
            let _ = d.to_string();
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = naming::parse_filename(s);
        let _ = naming::parse_subject(s);
    }
}

fn json_entry(data: &[u8]) {
    if let Ok(r) = read::read_json(data, &limits()) {
        let _ = r.report.raw_totals();
    }
}

fn gzip_entry(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let l = limits();
    let stream = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(rest).unwrap();
        e.finish().unwrap()
    };
    if let Ok(json) = read::gunzip(&stream, &l) {
        assert!(json.len() <= l.max_decompressed_bytes);
        let _ = read::read_json(&json, &l);
    }
    let _ = read::read_report(&stream, &l);
}

fn record_entry(data: &[u8]) {
    if let Ok(parsed) = record::parse_record_bytes(data)
        && let Ok(text) = parsed.record.to_canonical_string()
    {
        let again = record::parse_record(&text).unwrap();
        assert_eq!(again.record, parsed.record, "{text}");
    }
    let rrset: Vec<Vec<&[u8]>> = data
        .split(|&b| b == 0)
        .map(|rr| rr.split(|&b| b == 1).collect())
        .collect();
    let _ = record::select(&rrset);
    let pres = record::to_presentation(data);
    if pres.len() <= record::MAX_PRESENTATION_LEN {
        let back = record::split_presentation(&pres).unwrap();
        assert_eq!(back.concat(), data);
    }
}

/// Random bytes behind a header line half the time, so the MIME parser gets past the sniff.
fn message_random() -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), vec(any::<u8>(), 0..2048)).prop_map(|(prefix, body)| {
        if prefix {
            [
                &b"Content-Type: multipart/report; boundary=B\r\n\r\n--B\r\n"[..],
                &body,
            ]
            .concat()
        } else {
            body
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn rcv_08_message_survives_random_bytes(data in message_random()) {
        message_entry(&data);
    }

    #[test]
    fn rcv_08_message_survives_mutated_messages(data in mutated(message_seeds())) {
        message_entry(&data);
    }

    #[test]
    fn rcv_08_report_json_survives_random_bytes(data in vec(any::<u8>(), 0..2048)) {
        json_entry(&data);
    }

    #[test]
    fn rcv_08_report_json_survives_mutated_reports(data in mutated(json_seeds())) {
        json_entry(&data);
    }

    #[test]
    fn rcv_07_report_gzip_survives_random_bytes(data in vec(any::<u8>(), 0..2048)) {
        gzip_entry(&data);
    }

    #[test]
    fn rcv_07_report_gzip_survives_mutated_streams(data in mutated(gzip_seeds())) {
        gzip_entry(&data);
    }

    #[test]
    fn dns_22_record_survives_random_bytes(data in vec(any::<u8>(), 0..600)) {
        record_entry(&data);
    }

    #[test]
    fn dns_22_record_survives_mutated_records(data in mutated(record_seeds())) {
        record_entry(&data);
    }

    #[test]
    fn mail_08_filename_and_subject_parsers_survive_random_text(s in ".{0,300}") {
        let _ = naming::parse_filename(&s);
        let _ = naming::parse_subject(&s);
    }
}
