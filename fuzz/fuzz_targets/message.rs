//! `extract_report` on arbitrary bytes: must return Ok or Err, never panic or run away.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlsrpt_core::{message, read};

/// libfuzzer-sys aborts on every panic, before `extract_report`'s `catch_unwind` around
/// mail-parser can turn a panic inside that crate (a known one: "Invalid part ID") into the
/// message's error. Panics located in mail-parser are let through to that `catch_unwind`;
/// every other panic still aborts and is reported.
fn let_mail_parser_panics_unwind() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_mail_parser = info
                .location()
                .is_some_and(|l| l.file().contains("/mail-parser-"));
            if !in_mail_parser {
                fuzzer_hook(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    let_mail_parser_panics_unwind();
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
