//! `read_json` on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlsrpt_core::read;

fuzz_target!(|data: &[u8]| {
    let limits = read::Limits {
        max_input_bytes: 1 << 20,
        max_decompressed_bytes: 4 << 20,
        ..read::Limits::default()
    };
    if let Ok(r) = read::read_json(data, &limits) {
        for d in &r.deviations {
            let _ = d.to_string();
        }
        let _ = r.report.raw_totals();
    }
});
