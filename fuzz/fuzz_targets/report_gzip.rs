//! gunzip + read. The first byte picks the mode: even feeds the rest to `gunzip`/`read_report`
//! as a (possibly broken) gzip stream; odd gzip-compresses the rest first, so mutations of the
//! JSON inside a valid stream are explored too.
#![no_main]

use std::io::Write as _;

use libfuzzer_sys::fuzz_target;
use tlsrpt_core::read;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let limits = read::Limits {
        max_input_bytes: 1 << 20,
        max_decompressed_bytes: 4 << 20,
        ..read::Limits::default()
    };
    let stream = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        if e.write_all(rest).is_err() {
            return;
        }
        match e.finish() {
            Ok(v) => v,
            Err(_) => return,
        }
    };
    if let Ok(json) = read::gunzip(&stream, &limits) {
        assert!(
            json.len() <= limits.max_decompressed_bytes,
            "gunzip exceeded its cap"
        );
        let _ = read::read_json(&json, &limits);
    }
    let _ = read::read_report(&stream, &limits);
});
