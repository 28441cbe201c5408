//! The small-input DEFLATE decoder against zlib (flate2's zlib-rs backend): the same output
//! and the same stream length on everything zlib produces, the same verdict on damaged and
//! hand-built streams, and bounded behaviour on hostile ones.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use flate2::{Compression, Decompress, FlushDecompress, Status};
use proptest::prelude::*;
use tlsrpt_core::inflate::{InflateError, inflate, inflate_reuse};

const CAP: usize = 16 << 20;

/// Raw DEFLATE of `data` at `level`.
fn deflate(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// zlib's verdict: the output and the input bytes the stream used, or `None` if it rejects
/// the stream or needs more input.
fn reference(stream: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut d = Decompress::new(false);
    let mut out = Vec::with_capacity(stream.len() * 4 + 1024);
    loop {
        let (before_in, before_out) = (d.total_in(), d.total_out());
        let rest = &stream[d.total_in() as usize..];
        match d.decompress_vec(rest, &mut out, FlushDecompress::Finish) {
            Ok(Status::StreamEnd) => return Some((out, d.total_in() as usize)),
            Ok(_) if out.len() == out.capacity() => out.reserve(out.capacity()),
            Ok(_) if (d.total_in(), d.total_out()) == (before_in, before_out) => return None,
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// Ours, with the output in a fresh vector.
fn ours(stream: &[u8]) -> Result<(Vec<u8>, usize), InflateError> {
    let mut out = Vec::new();
    let used = inflate(stream, &mut out, CAP)?;
    Ok((out, used))
}

/// Both decoders agree on `stream`: same output and length, or both reject it.
fn assert_same_verdict(stream: &[u8]) {
    match (ours(stream), reference(stream)) {
        (Ok((a, used)), Some((b, total_in))) => {
            assert!(a == b, "outputs differ ({} vs {} bytes)", a.len(), b.len());
            assert_eq!(
                used, total_in,
                "consumed length differs from zlib's total_in"
            );
        }
        (Err(_), None) => {}
        (a, b) => panic!(
            "verdicts differ: ours {:?}, zlib {:?}",
            a.map(|(o, n)| (o.len(), n)),
            b.map(|(o, n)| (o.len(), n))
        ),
    }
}

/// `data` compressed at `level` decodes to `data`, and both decoders agree on the length.
fn assert_round_trip(data: &[u8], level: u32) {
    let stream = deflate(data, level);
    let (out, used) = ours(&stream).unwrap_or_else(|e| panic!("level {level}: {e}"));
    assert!(out == data, "level {level}: output differs");
    assert_eq!(used, stream.len(), "level {level}: consumed length");
    let (_, total_in) = reference(&stream).unwrap();
    assert_eq!(used, total_in);
}

/// JSON-ish text: report-like fragments, names and numbers, as repetitive as real reports.
fn json_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("{\"organization-name\":\"".to_string()),
        Just("\"policies\":[{\"policy\":{\"policy-type\":\"sts\",".to_string()),
        Just("\"policy-string\":[\"version: STSv1\",\"mode: enforce\",".to_string()),
        Just("\"mx-host\":[\"mx1.example.com\"]},".to_string()),
        Just("\"summary\":{\"total-successful-session-count\":".to_string()),
        Just("\"failure-details\":[{\"result-type\":\"certificate-expired\",".to_string()),
        Just("\"sending-mta-ip\":\"".to_string()),
        Just("}]}]}\n".to_string()),
        Just("    ".to_string()),
        "[a-z0-9.-]{1,20}",
        any::<u32>().prop_map(|n| n.to_string()),
        (0u8..=255, 0u8..=255).prop_map(|(a, b)| format!("192.0.{a}.{b}")),
    ];
    prop::collection::vec(piece, 0..300).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn inflate_matches_flate2_on_random_bytes(
        data in prop::collection::vec(any::<u8>(), 0..3000),
        level in 0u32..=9,
    ) {
        assert_round_trip(&data, level);
    }

    #[test]
    fn inflate_matches_flate2_on_random_json_text(text in json_text(), level in 0u32..=9) {
        assert_round_trip(text.as_bytes(), level);
    }

    #[test]
    fn inflate_matches_flate2_on_skewed_bytes(
        data in prop::collection::vec(prop_oneof![9 => 0u8..4, 1 => any::<u8>()], 0..5000),
        level in 0u32..=9,
    ) {
        assert_round_trip(&data, level);
    }

    #[test]
    fn inflate_never_panics_on_random_garbage(data in prop::collection::vec(any::<u8>(), 0..600)) {
        assert_same_verdict(&data);
    }

    #[test]
    fn inflate_agrees_with_flate2_on_damaged_streams(
        text in json_text(),
        level in 1u32..=9,
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
    ) {
        let mut stream = deflate(text.as_bytes(), level);
        for (at, x) in flips {
            let i = at.index(stream.len());
            stream[i] ^= x;
        }
        assert_same_verdict(&stream);
    }

    #[test]
    fn inflate_agrees_with_flate2_on_garbage_after_a_dynamic_header(
        text in json_text(),
        tail in prop::collection::vec(any::<u8>(), 0..400),
        keep in 3usize..80,
    ) {
        // A real header followed by random codes: exercises the decode loop, not just the
        // header checks.
        let mut stream = deflate(text.as_bytes(), 9);
        stream.truncate(keep.min(stream.len()));
        stream.extend_from_slice(&tail);
        assert_same_verdict(&stream);
    }
}

/// Text in the shape of the test reports, `n` bytes long.
fn long_text(n: usize) -> Vec<u8> {
    let mut s = Vec::with_capacity(n + 200);
    let mut i = 0u64;
    while s.len() < n {
        i = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        write!(
            s,
            "{{\"result-type\":\"validation-failure\",\"sending-mta-ip\":\"198.51.{}.{}\",\"failed-session-count\":{}}},",
            (i >> 40) % 256,
            (i >> 48) % 256,
            i >> 54
        )
        .unwrap();
    }
    s.truncate(n);
    s
}

#[test]
fn inflate_handles_multi_block_stored_streams() {
    let data: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    assert_round_trip(&data, 0);
    assert_round_trip(&data[..65_535], 0);
    assert_round_trip(&data[..65_536], 0);
    assert_round_trip(&[], 0);
}

#[test]
fn inflate_handles_multi_block_level1_and_level9_text() {
    let text = long_text(600_000);
    for level in [1, 6, 9] {
        assert_round_trip(&text, level);
    }
}

#[test]
fn inflate_decodes_long_matches_and_short_distances() {
    let mut data = vec![b'a'; 70_000];
    data.extend((0..50_000).map(|i| b"xyz"[i % 3]));
    data.extend((0..50_000).map(|i| b"0123456789abc"[i % 13]));
    for level in 0..=9 {
        assert_round_trip(&data, level);
    }
}

fn report_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/reports");
    let mut files = Vec::new();
    for sub in std::fs::read_dir(&dir).expect("testdata folder next to the repository") {
        let sub = sub.unwrap().path();
        if !sub.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(sub).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "json") {
                files.push(f);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 10, "testdata incomplete: {files:?}");
    files
}

#[test]
fn inflate_round_trips_every_test_report_as_gzip() {
    for path in report_files() {
        let json = std::fs::read(&path).unwrap();
        for level in 0..=9 {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), Compression::new(level));
            e.write_all(&json).unwrap();
            let gz = e.finish().unwrap();
            // flate2 writes a bare 10-byte header (no name, no extra field).
            assert_eq!(gz[3], 0, "{path:?}");
            let body = &gz[10..];
            let isize = u32::from_le_bytes(gz[gz.len() - 4..].try_into().unwrap()) as usize;
            let mut out = Vec::with_capacity(isize);
            let used = inflate(body, &mut out, CAP).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            assert!(out == json, "{path:?} level {level}");
            assert_eq!(
                used + 8,
                body.len(),
                "{path:?} level {level}: trailer position"
            );
            let mut crc = flate2::Crc::new();
            crc.update(&out);
            assert_eq!(crc.sum().to_le_bytes(), gz[gz.len() - 8..gz.len() - 4]);
            // Reading only as much as the size hint said must not have reallocated.
            assert_eq!(out.capacity(), isize, "{path:?} level {level}");
        }
    }
}

#[test]
fn inflate_reports_truncation_at_every_byte_position() {
    let json = std::fs::read(&report_files()[0]).unwrap();
    for level in [0, 1, 9] {
        let stream = deflate(&json, level);
        for cut in 0..stream.len() {
            assert_eq!(
                ours(&stream[..cut]).map(|(o, n)| (o.len(), n)),
                Err(InflateError::Truncated),
                "level {level}, cut at {cut} of {}",
                stream.len()
            );
        }
    }
    // Fixed-Huffman blocks too (tiny inputs get them).
    let stream = deflate(b"hello hello hello", 9);
    assert_eq!(stream[0] & 6, 2, "expected a fixed-Huffman block");
    for cut in 0..stream.len() {
        assert_eq!(ours(&stream[..cut]).err(), Some(InflateError::Truncated));
    }
}

#[test]
fn inflate_reports_the_stream_length_when_data_follows() {
    let json = std::fs::read(&report_files()[1]).unwrap();
    for level in 0..=9 {
        let mut stream = deflate(&json, level);
        let len = stream.len();
        stream.extend_from_slice(b"trailer bytes that are not deflate");
        let (out, used) = ours(&stream).unwrap();
        assert!(out == json);
        assert_eq!(used, len);
    }
}

#[test]
fn inflate_appends_to_existing_output_without_referring_to_it() {
    let stream = deflate(b"abcabcabcabcabc", 9);
    let mut out = b"prefix".to_vec();
    inflate(&stream, &mut out, CAP).unwrap();
    assert_eq!(out, b"prefixabcabcabcabcabc");
    // A distance of 1 at the very start must not reach into "prefix".
    let mut w = BitWriter::default();
    w.bits(1, 1);
    w.bits(1, 2); // fixed Huffman
    fixed_length(&mut w, 3);
    w.bits(0, 5); // distance code 0: distance 1
    fixed_literal(&mut w, 256);
    let mut out = b"prefix".to_vec();
    assert_eq!(
        inflate(&w.finish(), &mut out, CAP),
        Err(InflateError::Invalid("distance too far back"))
    );
}

#[test]
fn inflate_honours_the_cap_exactly() {
    let data = long_text(10_000);
    let stream = deflate(&data, 6);
    let mut out = Vec::new();
    assert_eq!(inflate(&stream, &mut out, 10_000), Ok(stream.len()));
    assert_eq!(out, data);
    let mut out = Vec::new();
    assert_eq!(
        inflate(&stream, &mut out, 9_999),
        Err(InflateError::TooLarge { max: 9_999 })
    );
    assert!(out.len() <= 9_999);
    // The same through stored blocks, and with a wrong size hint either way.
    let stream = deflate(&data, 0);
    for hint in [0, 10, 10_000, 1 << 20] {
        let mut out = Vec::with_capacity(hint);
        assert_eq!(
            inflate(&stream, &mut out, 9_999),
            Err(InflateError::TooLarge { max: 9_999 })
        );
        let mut out = Vec::with_capacity(hint);
        assert_eq!(inflate(&stream, &mut out, 10_000), Ok(stream.len()));
        assert_eq!(out, data);
    }
}

// --- Hand-built streams -----------------------------------------------------------------------

/// Writes bits least significant first (RFC 1951 §3.1.1).
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    fn bits(&mut self, value: u32, n: u32) {
        self.acc |= u64::from(value) << self.n;
        self.n += n;
        while self.n >= 8 {
            self.bytes.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code: its bits go most significant first.
    fn code(&mut self, code: u32, len: u32) {
        for i in (0..len).rev() {
            self.bits((code >> i) & 1, 1);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.bytes.push(self.acc as u8);
        }
        self.bytes
    }
}

/// Canonical codes for `lens` (RFC 1951 §3.2.2).
fn canonical(lens: &[u8]) -> Vec<(u32, u32)> {
    let mut count = [0u32; 16];
    for &l in lens {
        count[usize::from(l)] += 1;
    }
    count[0] = 0;
    let mut next = [0u32; 16];
    let mut code = 0;
    for bits in 1..16 {
        code = (code + count[bits - 1]) << 1;
        next[bits] = code;
    }
    lens.iter()
        .map(|&l| {
            let c = next[usize::from(l)];
            next[usize::from(l)] += 1;
            (c, u32::from(l))
        })
        .collect()
}

fn fixed_literal(w: &mut BitWriter, sym: u32) {
    match sym {
        0..=143 => w.code(0x30 + sym, 8),
        144..=255 => w.code(0x190 + sym - 144, 9),
        256..=279 => w.code(sym - 256, 7),
        _ => w.code(0xc0 + sym - 280, 8),
    }
}

/// A length 3..=10 in the fixed code (symbols 257..=264, no extra bits).
fn fixed_length(w: &mut BitWriter, len: u32) {
    fixed_literal(w, 254 + len);
}

/// Writes a dynamic block header with these code lengths. The code-length code gives the
/// symbols 0-15 four bits each (complete), so every length is written literally.
fn dynamic_header(w: &mut BitWriter, last: bool, lit_lens: &[u8], dist_lens: &[u8]) {
    w.bits(u32::from(last), 1);
    w.bits(2, 2);
    w.bits(lit_lens.len() as u32 - 257, 5);
    w.bits(dist_lens.len() as u32 - 1, 5);
    w.bits(19 - 4, 4);
    for sym in [
        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
    ] {
        w.bits(if sym < 16 { 4 } else { 0 }, 3);
    }
    for &l in lit_lens.iter().chain(dist_lens) {
        w.code(u32::from(l), 4);
    }
}

/// The literal/length lengths of a code with just literal 0, end-of-block and length 258.
fn bomb_lit_lens() -> Vec<u8> {
    let mut lens = vec![0u8; 286];
    lens[285] = 1; // code 0
    lens[0] = 2; // code 10
    lens[256] = 2; // code 11
    lens
}

/// A stream of a zero byte then `matches` copies of 258 bytes at distance 1: two bits per
/// match, the best ratio DEFLATE allows. The distance code has one one-bit code, which zlib
/// accepts (RFC 1951 §3.2.7).
fn bomb(matches: usize) -> Vec<u8> {
    let mut w = BitWriter::default();
    dynamic_header(&mut w, true, &bomb_lit_lens(), &[1]);
    w.code(0b10, 2);
    // The header and the literal fill whole bytes, so each zero byte holds four matches.
    assert_eq!(w.n, 0);
    let len = w.bytes.len();
    w.bytes.resize(len + matches / 4, 0);
    for _ in 0..matches % 4 {
        w.bits(0, 2);
    }
    w.code(0b11, 2);
    w.finish()
}

#[test]
fn inflate_matches_flate2_on_a_hand_built_single_distance_code_stream() {
    for matches in [0, 1, 5, 64, 1000] {
        let stream = bomb(matches);
        assert_same_verdict(&stream);
        let (out, _) = ours(&stream).unwrap();
        assert!(out.iter().all(|&b| b == 0));
    }
}

#[test]
fn inflate_stops_a_bomb_at_the_cap_quickly() {
    // About 1 MiB of input that would inflate to over 1 GiB.
    let stream = bomb(4 << 20);
    assert!(stream.len() < (1 << 20) + 200);
    let cap = 10 << 20;
    let mut out = Vec::new();
    let t = Instant::now();
    assert_eq!(
        inflate(&stream, &mut out, cap),
        Err(InflateError::TooLarge { max: cap })
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert!(out.len() <= cap);
    assert!(out.capacity() <= cap + 4096, "allocated {}", out.capacity());
    // With the whole cap reserved up front, nothing more is allocated.
    let mut out = Vec::with_capacity(cap);
    assert_eq!(
        inflate(&stream, &mut out, cap),
        Err(InflateError::TooLarge { max: cap })
    );
    assert_eq!(out.capacity(), cap);
}

#[test]
fn inflate_rejects_a_distance_beyond_the_output() {
    let mut w = BitWriter::default();
    w.bits(1, 1);
    w.bits(1, 2);
    fixed_literal(&mut w, u32::from(b'a'));
    fixed_literal(&mut w, u32::from(b'b'));
    fixed_length(&mut w, 3);
    w.code(3, 5); // distance code 3: distance 4, but only 2 bytes exist
    fixed_literal(&mut w, 256);
    let stream = w.finish();
    assert_eq!(
        ours(&stream).err(),
        Some(InflateError::Invalid("distance too far back"))
    );
    assert_same_verdict(&stream);
}

#[test]
fn inflate_rejects_fixed_code_symbols_that_do_not_exist() {
    // Literal/length 286 and distance 30 have fixed codes but no meaning (RFC 1951 §3.2.6).
    let mut w = BitWriter::default();
    w.bits(1, 1);
    w.bits(1, 2);
    fixed_literal(&mut w, 286);
    let stream = w.finish();
    assert!(matches!(ours(&stream), Err(InflateError::Invalid(_))));
    assert_same_verdict(&stream);

    let mut w = BitWriter::default();
    w.bits(1, 1);
    w.bits(1, 2);
    fixed_literal(&mut w, u32::from(b'a'));
    fixed_length(&mut w, 3);
    w.code(30, 5);
    fixed_literal(&mut w, 256);
    let stream = w.finish();
    assert!(matches!(ours(&stream), Err(InflateError::Invalid(_))));
    assert_same_verdict(&stream);
}

#[test]
fn inflate_rejects_block_type_3() {
    for first in [0b111, 0b110] {
        let stream = [first, 0, 0, 0, 0];
        assert_eq!(
            ours(&stream).err(),
            Some(InflateError::Invalid("invalid block type 3"))
        );
        assert_same_verdict(&stream);
    }
}

#[test]
fn inflate_rejects_a_stored_block_with_bad_nlen() {
    let good = [1, 3, 0, !3, !0, b'a', b'b', b'c'];
    assert_eq!(ours(&good), Ok((b"abc".to_vec(), 8)));
    assert_same_verdict(&good);
    let bad = [1, 3, 0, !4, !0, b'a', b'b', b'c'];
    assert_eq!(
        ours(&bad).err(),
        Some(InflateError::Invalid(
            "stored block length does not match its complement"
        ))
    );
    assert_same_verdict(&bad);
    // Stored data running past the input is truncation.
    assert_eq!(ours(&good[..7]).err(), Some(InflateError::Truncated));
}

/// A dynamic block with these lengths, then end-of-block (when it has a code).
fn block_with(lit_lens: &[u8], dist_lens: &[u8]) -> Vec<u8> {
    let mut w = BitWriter::default();
    dynamic_header(&mut w, true, lit_lens, dist_lens);
    if lit_lens[256] != 0 {
        let (c, l) = canonical(lit_lens)[256];
        w.code(c, l);
    }
    w.bits(0, 16);
    w.finish()
}

#[test]
fn inflate_handles_code_length_sets_like_zlib() {
    let complete = {
        let mut l = vec![0u8; 257];
        l[b'a' as usize] = 1;
        l[256] = 1;
        l
    };
    let over = {
        let mut l = complete.clone();
        l[b'b' as usize] = 1;
        l
    };
    let incomplete = {
        let mut l = vec![0u8; 257];
        l[b'a' as usize] = 2;
        l[256] = 2;
        l
    };
    let single_eob = {
        let mut l = vec![0u8; 257];
        l[256] = 1;
        l
    };
    let no_eob = {
        let mut l = vec![0u8; 257];
        l[b'a' as usize] = 1;
        l[b'b' as usize] = 1;
        l
    };
    let cases: [(&[u8], &[u8], bool); 10] = [
        (&complete, &[1, 1], true),
        (&complete, &[1], true),     // one distance code of one bit: allowed
        (&complete, &[0], true),     // no distance codes: allowed (literals only)
        (&complete, &[2, 2], false), // incomplete distance code with two codes
        (&complete, &[2], false),    // one distance code, but of two bits
        (&complete, &[1, 1, 1], false), // over-subscribed distance code
        (&over, &[1], false),        // over-subscribed literal/length code
        (&incomplete, &[1], false),  // incomplete literal/length code
        (&single_eob, &[1], true),   // only end-of-block, one bit: zlib allows it
        (&no_eob, &[1], false),      // no end-of-block code
    ];
    for (i, (lit, dist, ok)) in cases.into_iter().enumerate() {
        let stream = block_with(lit, dist);
        let got = ours(&stream);
        assert_eq!(got.is_ok(), ok, "case {i}: {got:?}");
        if let Err(e) = got {
            assert!(matches!(e, InflateError::Invalid(_)), "case {i}: {e:?}");
        }
        assert_same_verdict(&stream);
    }
}

#[test]
fn inflate_rejects_bad_code_length_codes() {
    // Over-subscribed code-length code: three symbols of one bit.
    let mut w = BitWriter::default();
    w.bits(1, 1);
    w.bits(2, 2);
    w.bits(0, 5);
    w.bits(0, 5);
    w.bits(15, 4);
    for sym in [
        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
    ] {
        w.bits(if [0, 1, 2].contains(&sym) { 1 } else { 0 }, 3);
    }
    w.bits(0, 32);
    let stream = w.finish();
    assert!(matches!(ours(&stream), Err(InflateError::Invalid(_))));
    assert_same_verdict(&stream);

    // Incomplete code-length code (one symbol of one bit): zlib rejects it.
    let mut w = BitWriter::default();
    w.bits(1, 1);
    w.bits(2, 2);
    w.bits(0, 5);
    w.bits(0, 5);
    w.bits(0, 4);
    w.bits(0, 3);
    w.bits(0, 3);
    w.bits(0, 3);
    w.bits(1, 3); // symbol 0: one bit
    w.bits(0, 32);
    let stream = w.finish();
    assert!(matches!(ours(&stream), Err(InflateError::Invalid(_))));
    assert_same_verdict(&stream);

    // A repeat (16) with no previous length, and too many codes (HLIT = 30).
    for (hlit, first) in [(0u32, 16u32), (30, 0)] {
        let mut w = BitWriter::default();
        w.bits(1, 1);
        w.bits(2, 2);
        w.bits(hlit, 5);
        w.bits(0, 5);
        w.bits(15, 4);
        for sym in [
            16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
        ] {
            w.bits(if sym == 16 || sym == 0 { 1 } else { 0 }, 3);
        }
        // Code-length code: 0 → "0", 16 → "1".
        w.code(u32::from(first == 16), 1);
        w.bits(0, 32);
        let stream = w.finish();
        assert!(
            matches!(ours(&stream), Err(InflateError::Invalid(_))),
            "{hlit} {first}"
        );
        assert_same_verdict(&stream);
    }
}

#[test]
fn inflate_rejects_a_repeat_past_the_last_code_length() {
    // 257 + 1 lengths, but an 18 (11-138 zeros) runs past them.
    let mut w = BitWriter::default();
    w.bits(1, 1);
    w.bits(2, 2);
    w.bits(0, 5);
    w.bits(0, 5);
    w.bits(15, 4);
    for sym in [
        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
    ] {
        w.bits(if sym == 18 || sym == 1 { 1 } else { 0 }, 3);
    }
    // Code-length code: 1 → "0", 18 → "1".
    for _ in 0..2 {
        w.code(1, 1);
        w.bits(127, 7); // 138 zeros
    }
    w.bits(0, 32);
    let stream = w.finish();
    assert!(matches!(ours(&stream), Err(InflateError::Invalid(_))));
    assert_same_verdict(&stream);
}

static LONG_CODES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Code lengths of a random complete prefix code with `n` codes of at most 15 bits: start
/// from one empty codeword and split random leaves (RFC 1951 §3.2.2 codes are exactly these).
fn random_complete_lengths(n: usize, picks: &[u16]) -> Vec<u8> {
    let mut leaves = vec![0u8];
    let mut k = 0;
    while leaves.len() < n {
        // Odd picks deepen the newest leaf, so long codes (and sub-tables) are common.
        let pick = usize::from(picks[k % picks.len()]);
        let i = if pick % 2 == 1 {
            leaves.len() - 1
        } else {
            pick / 2 % leaves.len()
        };
        k += 1;
        // A leaf already 15 bits long cannot split: take the shortest one instead.
        let i = if leaves[i] < 15 {
            i
        } else {
            match (0..leaves.len()).min_by_key(|&j| leaves[j]) {
                Some(j) if leaves[j] < 15 => j,
                _ => break,
            }
        };
        let l = leaves[i] + 1;
        leaves[i] = l;
        leaves.push(l);
    }
    leaves
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Long codes (up to 15 bits) need sub-tables, which zlib's own output rarely exercises
    /// on small inputs.
    #[test]
    fn inflate_matches_flate2_on_random_complete_codes(
        nlit in 2usize..=60,
        ndist in 1usize..=30,
        picks in prop::collection::vec(any::<u16>(), 1..200),
        order in prop::collection::vec(any::<u16>(), 1..64),
        body in prop::collection::vec(any::<u16>(), 0..300),
    ) {
        // Literal/length code: `nlit` symbols among 0..=285, one of them end-of-block.
        let lit_code = random_complete_lengths(nlit, &picks);
        let mut syms: Vec<usize> = vec![256];
        let mut k = 0;
        while syms.len() < lit_code.len() {
            let s = usize::from(order[k % order.len()]).wrapping_mul(7919).wrapping_add(k * 31) % 256;
            k += 1;
            if !syms.contains(&s) {
                syms.push(s);
            }
        }
        let mut lit_lens = vec![0u8; 257];
        for (&s, &l) in syms.iter().zip(&lit_code) {
            lit_lens[s] = l;
        }
        let dist_code = random_complete_lengths(ndist.min(30), &picks[1..].iter().chain(&picks[..1]).copied().collect::<Vec<_>>());
        let mut dist_lens = dist_code.clone();
        dist_lens.resize(dist_lens.len().max(1), 0);
        if dist_lens.len() == 1 && dist_lens[0] == 0 {
            dist_lens[0] = 1;
        }

        let codes = canonical(&lit_lens);
        let mut w = BitWriter::default();
        dynamic_header(&mut w, true, &lit_lens, &dist_lens);
        // Literals only (no distances needed), then end-of-block.
        let literals: Vec<usize> = syms.iter().copied().filter(|&s| s < 256).collect();
        if !literals.is_empty() {
            for &b in &body {
                let s = literals[usize::from(b) % literals.len()];
                let (c, l) = codes[s];
                w.code(c, l);
            }
        }
        let (c, l) = codes[256];
        w.code(c, l);
        let stream = w.finish();
        if lit_code.iter().any(|&l| l > 10) {
            LONG_CODES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let (out, _) = ours(&stream).unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(out.len(), if literals.is_empty() { 0 } else { body.len() });
        assert_same_verdict(&stream);
    }
}

#[test]
fn random_complete_codes_include_long_codes() {
    inflate_matches_flate2_on_random_complete_codes();
    let long = LONG_CODES.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        long >= 30,
        "only {long} cases had codes longer than the root table"
    );
}

/// A fixed-code stream: the literal `a`, then matches of these lengths at distance 1 (each
/// 3..=10, no extra bits), end of block.
fn fixed_run(lens: &[u32]) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.bits(1, 1);
    w.bits(1, 2);
    fixed_literal(&mut w, u32::from(b'a'));
    for &len in lens {
        fixed_length(&mut w, len);
        w.code(0, 5); // distance code 0: distance 1
    }
    fixed_literal(&mut w, 256);
    w.finish()
}

#[test]
fn inflate_copies_matches_that_end_exactly_at_the_cap() {
    // The fast loop copies matches in wide chunks and leaves those near the end of the
    // buffer to the careful path; whatever the size hint, a match ending exactly at the cap
    // must be written in full, and one byte less of cap must be refused.
    for lens in [&[10][..], &[3], &[10, 10, 10, 3], &[4; 40]] {
        let stream = fixed_run(lens);
        let total = 1 + lens.iter().sum::<u32>() as usize;
        let want = vec![b'a'; total];
        for hint in [0, 1, total - 1, total, total + 1, total + 40] {
            let mut out = Vec::with_capacity(hint);
            assert_eq!(
                inflate(&stream, &mut out, total),
                Ok(stream.len()),
                "{lens:?} {hint}"
            );
            assert_eq!(out, want);
            let mut out = Vec::with_capacity(hint);
            assert_eq!(
                inflate(&stream, &mut out, total - 1),
                Err(InflateError::TooLarge { max: total - 1 }),
                "{lens:?} {hint}"
            );
            assert!(out.len() < total);
        }
    }
}

#[test]
fn inflate_handles_text_ending_in_a_match_at_every_cap_near_the_end() {
    // Long-distance matches (the 16-byte chunk copies) ending at the very end of the output,
    // with an exact size hint (no slack after the output) and caps around the exact size.
    let mut data = long_text(3_000);
    let tail = data[100..160].to_vec();
    data.extend_from_slice(&tail);
    for level in [1, 6, 9] {
        let stream = deflate(&data, level);
        assert_eq!(reference(&stream), Some((data.clone(), stream.len())));
        for cap in data.len() - 20..=data.len() + 1 {
            for hint in [data.len(), cap] {
                let mut out = Vec::with_capacity(hint);
                let got = inflate(&stream, &mut out, cap);
                if cap >= data.len() {
                    assert_eq!(got, Ok(stream.len()), "level {level} cap {cap} hint {hint}");
                    assert_eq!(out, data);
                } else {
                    assert_eq!(got, Err(InflateError::TooLarge { max: cap }));
                    assert!(out.len() <= cap);
                    assert_eq!(out[..], data[..out.len()]);
                }
            }
        }
    }
}

#[test]
fn inflate_rejects_a_distance_beyond_the_output_even_with_no_room_left() {
    // The fast loop sends both far-back distances and matches near the end of the buffer
    // to the careful path; there the distance must still be judged before the room.
    let mut w = BitWriter::default();
    w.bits(1, 1);
    w.bits(1, 2);
    fixed_literal(&mut w, u32::from(b'a'));
    fixed_literal(&mut w, u32::from(b'b'));
    fixed_length(&mut w, 3);
    w.code(3, 5); // distance 4, but only 2 bytes exist
    fixed_literal(&mut w, 256);
    let stream = w.finish();
    for (hint, cap) in [(0, 2), (2, 2), (2, 5), (5, 5), (100, 100)] {
        let mut out = Vec::with_capacity(hint);
        assert_eq!(
            inflate(&stream, &mut out, cap),
            Err(InflateError::Invalid("distance too far back")),
            "hint {hint} cap {cap}"
        );
        assert!(out.len() <= 2);
    }
}

#[test]
fn inflate_copies_short_period_matches_anywhere_in_the_buffer() {
    // Periods 1-7 take the out-of-line short copy in the fast loop and the byte copy near
    // the end of the buffer; check both against zlib with exact, short and no size hints.
    for period in 1..=7usize {
        let mut data = Vec::new();
        for round in 0..40usize {
            data.extend_from_slice(format!("{{\"n\":{round},").as_bytes());
            let pat: Vec<u8> = (0..period)
                .map(|k| b'a' + ((k + round) % 26) as u8)
                .collect();
            for k in 0..(3 + round % 30) {
                data.push(pat[k % period]);
            }
        }
        let n = data.len();
        let hints = [0, 7, n - 9, n - 1, n, n + 3];
        assert_inflates_at_every_level(&data, &hints, &format!("period {period}"));
    }
}

/// `data` deflated at levels 1, 6 and 9 is what zlib gives back, and inflates to exactly
/// `data`, using the whole stream, with each of the capacity `hints` reserved.
fn assert_inflates_at_every_level(data: &[u8], hints: &[usize], what: &str) {
    for level in [1, 6, 9] {
        let stream = deflate(data, level);
        assert_eq!(reference(&stream), Some((data.to_vec(), stream.len())));
        for &hint in hints {
            let mut out = Vec::with_capacity(hint);
            assert_eq!(
                inflate(&stream, &mut out, CAP),
                Ok(stream.len()),
                "{what} level {level} hint {hint}"
            );
            assert_eq!(out, data, "{what} level {level} hint {hint}");
        }
    }
}

#[test]
fn inflate_copies_long_period_matches_anywhere_in_the_buffer() {
    // Periods 8-15 take 8-byte moves and 16 and up 16-byte moves (a first move from the part
    // already written, then more for matches longer than 16), and near the end of the buffer
    // the byte copy; check all against zlib with exact, short and no size hints.
    for period in (8..=40usize).step_by(3) {
        let mut data = Vec::new();
        for round in 0..60usize {
            data.extend_from_slice(format!("{{\"k\":{round},").as_bytes());
            let pat: Vec<u8> = (0..period)
                .map(|k| b'A' + ((k * 7 + round) % 26) as u8)
                .collect();
            for k in 0..(period + 3 + round % 50) {
                data.push(pat[k % period]);
            }
        }
        let n = data.len();
        let hints = [0, n - 17, n - 1, n, n + 9];
        assert_inflates_at_every_level(&data, &hints, &format!("period {period}"));
    }
}

/// One buffer reused across streams of very different sizes, with wrong and right size hints:
/// each output is exactly zlib's (what an earlier stream left beyond it is not part of it),
/// the stream lengths match, and a buffer an earlier stream made long cannot let a later one
/// pass its cap.
#[test]
fn inflate_reuse_gives_each_stream_its_own_output_in_one_buffer() {
    let mut scratch = Vec::new();
    let texts: Vec<Vec<u8>> = [50_000usize, 700, 0, 20_000, 3, 1_500]
        .iter()
        .map(|&n| long_text(n))
        .collect();
    for round in 0..2 {
        for (i, data) in texts.iter().enumerate() {
            let stream = deflate(data, 6);
            let hint = match (round + i) % 3 {
                0 => data.len(),
                1 => 0,
                _ => data.len() * 50,
            };
            let (used, n) = inflate_reuse(&stream, &mut scratch, hint, CAP).unwrap();
            assert_eq!(&scratch[..n], &data[..], "round {round}, text {i}");
            assert_eq!(used, stream.len());
            assert!(scratch.len() >= n);
        }
    }
    // The buffer is now at least 50,000 bytes long; a 20,000-byte stream under a 1,000-byte
    // cap is still refused, and so is a truncated one.
    assert!(scratch.len() >= 50_000);
    let stream = deflate(&texts[3], 6);
    assert_eq!(
        inflate_reuse(&stream, &mut scratch, 20_000, 1_000),
        Err(InflateError::TooLarge { max: 1_000 })
    );
    assert_eq!(
        inflate_reuse(&stream[..stream.len() / 2], &mut scratch, 20_000, CAP),
        Err(InflateError::Truncated)
    );
    let (_, n) = inflate_reuse(&deflate(&texts[1], 9), &mut scratch, 700, CAP).unwrap();
    assert_eq!(&scratch[..n], &texts[1][..]);
}

// --- Code-length sequences (RFC 1951 §3.2.7) -------------------------------------------------

/// Order in which the code-length code's lengths are sent (RFC 1951 §3.2.7).
const PRE_ORDER: [u32; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// One final dynamic block with 258 literal/length and 4 distance codes whose lengths are
/// sent as `lengths` (code-length symbols with their extra bits), under a code-length code
/// giving 1, 2 and 16 two bits and 17 and 18 three; then `data` as (code, length).
fn lengths_block(lengths: &[(u32, u32)], data: &[(u32, u32)]) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.bits(1, 1);
    w.bits(2, 2);
    w.bits(258 - 257, 5);
    w.bits(4 - 1, 5);
    w.bits(18 - 4, 4); // up to symbol 1, the 18th in PRE_ORDER
    for &sym in &PRE_ORDER[..18] {
        let len = match sym {
            1 | 2 | 16 => 2,
            17 | 18 => 3,
            _ => 0,
        };
        w.bits(len, 3);
    }
    for &(sym, extra) in lengths {
        // Canonical: 1, 2, 16 → 00, 01, 10; 17, 18 → 110, 111.
        let (code, len, extra_bits) = match sym {
            1 => (0b00, 2, 0),
            2 => (0b01, 2, 0),
            16 => (0b10, 2, 2),
            17 => (0b110, 3, 3),
            _ => (0b111, 3, 7),
        };
        w.code(code, len);
        w.bits(extra, extra_bits);
    }
    for &(code, len) in data {
        w.code(code, len);
    }
    w.finish()
}

/// Zeros for symbols 0-96 sent as 17, 16 (repeating a zero) and 18, so each kind of repeat is
/// read.
const ZEROS_TO_97: [(u32, u32); 3] = [(17, 10 - 3), (16, 6 - 3), (18, 81 - 11)];

#[test]
fn code_length_repeats_cross_into_the_distance_code() {
    // 'a' (97) has 1 bit, 256 and 257 two; the four distance codes two bits each, the last
    // three of them sent by the 16 that repeats 257's length.
    let mut lengths = ZEROS_TO_97.to_vec();
    lengths.extend([(1, 0), (18, 138 - 11), (18, 20 - 11), (2, 0), (16, 5 - 3)]);
    // "aaa", then length 3 (257) at distance 1 (distance code 0), then end of block.
    let data = [(0, 1), (0, 1), (0, 1), (0b11, 2), (0b00, 2), (0b10, 2)];
    let stream = lengths_block(&lengths, &data);
    assert_eq!(ours(&stream), Ok((b"aaaaaa".to_vec(), stream.len())));
    assert_eq!(reference(&stream), Some((b"aaaaaa".to_vec(), stream.len())));
}

#[test]
fn a_zero_run_over_symbol_256_leaves_no_end_of_block_code() {
    // 'a' and 257 one bit each (a complete code), 256 inside a run of zeros.
    let mut lengths = ZEROS_TO_97.to_vec();
    lengths.extend([
        (1, 0),
        (18, 138 - 11),
        (18, 21 - 11),
        (1, 0),
        (2, 0),
        (16, 3 - 3),
    ]);
    let stream = lengths_block(&lengths, &[]);
    assert_eq!(
        ours(&stream),
        Err(InflateError::Invalid(
            "invalid code lengths (no end-of-block code)"
        ))
    );
    assert_eq!(reference(&stream), None);
}

#[test]
fn a_first_code_length_repeat_has_nothing_to_repeat() {
    let stream = lengths_block(&[(16, 0)], &[]);
    assert_eq!(
        ours(&stream),
        Err(InflateError::Invalid(
            "code length repeat with no previous length"
        ))
    );
    assert_eq!(reference(&stream), None);
}
