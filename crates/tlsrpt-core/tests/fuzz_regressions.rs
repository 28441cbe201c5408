//! Replays every file in `tests/corpus/<target>/` through the same entry point as the fuzz
//! target of that name (`fuzz/fuzz_targets/<target>.rs`) and asserts no panic and a bounded
//! outcome: bounded time, output within the limits, error messages of bounded length.
//!
//! The corpus holds small nasty inputs: hand-made ones (gzip bombs, deep nesting, hostile
//! filenames, 100-part messages) and anything the fuzzers found. See docs/FUZZING.md.

use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tlsrpt_core::{message, naming, read, record};

/// The limits the fuzz targets use: smaller than the defaults so a bomb costs little.
fn limits() -> read::Limits {
    read::Limits {
        max_input_bytes: 1 << 20,
        max_decompressed_bytes: 4 << 20,
        ..read::Limits::default()
    }
}

/// Longest error or deviation text we accept: messages must not echo the input.
const MAX_TEXT: usize = 10_000;

/// Per-input time budget in a debug build (the slowest entry, the 8 MiB gzip bomb, takes
/// well under a second).
const BUDGET: Duration = Duration::from_secs(20);

/// Open findings in other modules, by `<target>/<file>`, with the owner-facing description.
/// A listed file that still fails is printed, not failed, so the suite stays green while the
/// fix is routed; a listed file that passes fails the test, so the entry is removed once fixed.
const KNOWN: &[(&str, &str)] = &[
    // None open. Format: ("report_json/file.json", "module: what is wrong, suggested fix"),
    // e.g. report_json/many_policies.json was listed until read.rs capped its error text.
];

fn bounded_text(what: &str, s: &str) {
    assert!(s.len() <= MAX_TEXT, "{what}: {} bytes of text", s.len());
}

fn message_entry(data: &[u8]) {
    let l = limits();
    let _ = message::looks_like_message(data);
    match message::extract_report(data, &l) {
        Ok(r) => {
            assert!(!r.media_type.is_empty());
            assert!(r.reading.deviations.len() <= 10_000);
            for d in &r.reading.deviations {
                bounded_text("deviation", &d.to_string());
            }
        }
        Err(e) => bounded_text("error", &e.to_string()),
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Err(e) = naming::parse_filename(s) {
            bounded_text("filename error", &e.to_string());
        }
        if let Err(e) = naming::parse_subject(s) {
            bounded_text("subject error", &e.to_string());
        }
    }
}

fn report_json_entry(data: &[u8]) {
    match read::read_json(data, &limits()) {
        Ok(r) => {
            for d in &r.deviations {
                bounded_text("deviation", &d.to_string());
            }
            let _ = r.report.raw_totals();
        }
        Err(e) => bounded_text("error", &e.to_string()),
    }
}

fn report_gzip_entry(data: &[u8]) {
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
    match read::gunzip(&stream, &l) {
        Ok(json) => {
            assert!(
                json.len() <= l.max_decompressed_bytes,
                "gunzip exceeded its cap"
            );
            let _ = read::read_json(&json, &l);
        }
        Err(e) => bounded_text("gunzip error", &e.to_string()),
    }
    if let Err(e) = read::read_report(&stream, &l) {
        bounded_text("error", &e.to_string());
    }
}

fn record_entry(data: &[u8]) {
    if let Ok(parsed) = record::parse_record_bytes(data)
        && let Ok(text) = parsed.record.to_canonical_string()
    {
        let again = record::parse_record(&text).expect("canonical form must parse");
        assert_eq!(
            again.record, parsed.record,
            "canonical form changed the record: {text}"
        );
    }
    if let Err(e) = record::parse_record_bytes(data) {
        bounded_text("error", &e.to_string());
        let _ = (e.offset(), e.rule(), e.hint());
    }
    let rrset: Vec<Vec<&[u8]>> = data
        .split(|&b| b == 0)
        .map(|rr| rr.split(|&b| b == 1).collect())
        .collect();
    let sel = record::select(&rrset);
    for w in &sel.warnings {
        bounded_text("warning", &w.to_string());
    }
    let pres = record::to_presentation(data);
    if pres.len() <= record::MAX_PRESENTATION_LEN {
        let back = record::split_presentation(&pres).expect("to_presentation output must split");
        assert_eq!(
            back.concat(),
            data,
            "presentation round trip changed the bytes"
        );
    }
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(strings) = record::split_presentation(s)
    {
        let _ = record::select(&[strings]);
    }
}

/// Runs every file of `tests/corpus/<target>/` through `entry`, collecting failures so one run
/// names every bad file.
fn replay(target: &str, entry: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    let mut failures = Vec::new();
    for f in &files {
        let data = std::fs::read(f).unwrap();
        let start = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| entry(&data)));
        let took = start.elapsed();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let problem = match outcome {
            Err(p) => Some(format!(
                "panicked: {}",
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
            Ok(()) if took > BUDGET => Some(format!("took {took:?}")),
            Ok(()) => None,
        };
        if std::env::var_os("TLSRPT_CORPUS_TIMES").is_some() {
            eprintln!("{target}/{name}: {took:?}");
        }
        let key = format!("{target}/{name}");
        let known = KNOWN.iter().find(|(k, _)| *k == key);
        match (problem, known) {
            (Some(p), None) => failures.push(format!("{name}: {p}")),
            (Some(p), Some((_, why))) => eprintln!("KNOWN {key}: {p}\n  {why}"),
            (None, Some(_)) => failures.push(format!("{name}: passes now; remove it from KNOWN")),
            (None, None) => {}
        }
    }
    assert!(failures.is_empty(), "{target}:\n{}", failures.join("\n"));
}

#[test]
fn rcv_07_message_corpus_bounded() {
    replay("message", message_entry);
}

#[test]
fn rcv_07_report_json_corpus_bounded() {
    replay("report_json", report_json_entry);
}

#[test]
fn rcv_07_report_gzip_corpus_bounded() {
    replay("report_gzip", report_gzip_entry);
}

#[test]
fn dns_22_record_corpus_bounded() {
    replay("record", record_entry);
}
