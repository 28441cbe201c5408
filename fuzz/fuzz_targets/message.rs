//! `extract_report` on arbitrary bytes: must return Ok or Err, never panic or run away.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlsrpt_core::{message, read};

fuzz_target!(|data: &[u8]| {
    let limits = read::Limits {
        max_input_bytes: 1 << 20,
        max_decompressed_bytes: 4 << 20,
        ..read::Limits::default()
    };
    let _ = message::looks_like_message(data);
    if let Ok(r) = message::extract_report(data, &limits) {
        // Deviations must be printable without panicking.
        for d in &r.reading.deviations {
            let _ = d.to_string();
        }
    }
    // The §5.1/§5.3 parsers see the same junk as text.
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = tlsrpt_core::naming::parse_filename(s);
        let _ = tlsrpt_core::naming::parse_subject(s);
    }
});
