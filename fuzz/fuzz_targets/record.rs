//! The `_smtp._tls` TXT record: parse one record, select over an RRset built from the input,
//! and the presentation-form round trip.
//!
//! The RRset is cut from the input: byte 0x00 separates RRs, 0x01 separates the
//! character-strings of one RR.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlsrpt_core::record;

fuzz_target!(|data: &[u8]| {
    // One record text.
    if let Ok(parsed) = record::parse_record_bytes(data) {
        for w in &parsed.warnings {
            let _ = w.to_string();
        }
        // The formatter re-parses what it writes; what it writes must read back the same.
        if let Ok(text) = parsed.record.to_canonical_string() {
            let again = record::parse_record(&text).expect("canonical form must parse");
            assert_eq!(
                again.record, parsed.record,
                "canonical form changed the record: {text}"
            );
        }
    }
    if let Err(e) = record::parse_record_bytes(data) {
        let _ = (e.to_string(), e.offset(), e.rule(), e.hint());
    }

    // An RRset.
    let rrset: Vec<Vec<&[u8]>> = data
        .split(|&b| b == 0)
        .map(|rr| rr.split(|&b| b == 1).collect())
        .collect();
    let sel = record::select(&rrset);
    for w in &sel.warnings {
        let _ = w.to_string();
    }
    if let record::Outcome::NoTlsrpt(n) = &sel.outcome {
        let _ = (n.to_string(), n.rule());
    }

    // Presentation form: text -> zone-file form -> character-strings gives the text back.
    let pres = record::to_presentation(data);
    let back = record::split_presentation(&pres);
    if pres.len() <= record::MAX_PRESENTATION_LEN {
        let back = back.expect("to_presentation output must split");
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
});
