//! ASCII number formatting for the hot paths (the collector's per-datagram key, the datagram
//! encoder, the reader's JSON paths), where `to_string()` and the formatter machinery cost
//! more than the rest of the work. One implementation, so they cannot disagree.

/// The decimal digits of `v`, written into `buf` (20 bytes hold `u64::MAX`).
pub fn decimal(v: u64, buf: &mut [u8; 20]) -> &str {
    let mut v = v;
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // Only ASCII digits were written, so this is always valid UTF-8.
    std::str::from_utf8(&buf[at..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimal_matches_to_string() {
        let mut buf = [0u8; 20];
        for v in [0u64, 7, 10, 99, 100, 12345, u64::MAX - 1, u64::MAX] {
            assert_eq!(super::decimal(v, &mut buf), v.to_string());
        }
    }
}
