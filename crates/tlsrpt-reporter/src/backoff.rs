//! The delay between delivery attempts (RFC 8460 §5.5: retry for up to 24 h; REQUIREMENTS
//! DLV-04: exponential back-off).
//!
//! Decision (the RFC gives no numbers): the first retry waits [`FIRST_DELAY`] (1 min), each
//! further retry doubles it, capped at [`MAX_DELAY`] (2 h). So a destination that stays down
//! sees attempts at about 0, 1, 3, 7, 15, 31, 63, 127 min, 4 h 7 min, then every 2 h until the
//! caller's 24 h window (counted from the first attempt) closes: about 18 attempts. Each delay
//! is spread by ±[`JITTER_PERCENT`] % so that many reports failing together (a relay outage)
//! do not retry in lockstep. The jittered delay never exceeds [`MAX_DELAY`] and is never
//! below [`FIRST_DELAY`] minus the jitter.

use std::time::Duration;

/// The delay after the first failed attempt.
pub const FIRST_DELAY: Duration = Duration::from_secs(60);

/// No delay is longer than this (also after jitter).
pub const MAX_DELAY: Duration = Duration::from_secs(2 * 3600);

/// How far (in percent of the base delay) the jitter moves a delay either way.
pub const JITTER_PERCENT: u64 = 20;

/// The base delay (no jitter) after `attempt` failed attempts (`attempt` counts from 1;
/// 0 is treated like 1): 1 min · 2^(attempt-1), capped at [`MAX_DELAY`].
pub fn base_delay(attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(31);
    let secs = FIRST_DELAY
        .as_secs()
        .saturating_mul(1u64 << exp)
        .min(MAX_DELAY.as_secs());
    Duration::from_secs(secs)
}

/// The delay after `attempt` failed attempts, with the jitter chosen by `unit` (a number in
/// `[0, 1]`; values outside are clamped): `unit = 0` gives the shortest delay (base − 20 %),
/// `1` the longest (base + 20 %, never above [`MAX_DELAY`]). Pure, so the bounds are testable.
pub fn delay_with_jitter(attempt: u32, unit: f64) -> Duration {
    let base = base_delay(attempt).as_secs_f64();
    let unit = if unit.is_nan() {
        0.5
    } else {
        unit.clamp(0.0, 1.0)
    };
    let spread = base * (JITTER_PERCENT as f64) / 100.0;
    let secs = (base - spread + 2.0 * spread * unit).min(MAX_DELAY.as_secs_f64());
    Duration::from_secs_f64(secs.max(0.0))
}

/// The delay to wait after `attempt` failed attempts (counting from 1), with random jitter.
/// The caller stops retrying 24 h after the first attempt (RFC 8460 §5.5, DLV-03).
pub fn next_attempt_delay(attempt: u32) -> Duration {
    delay_with_jitter(attempt, rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlv_04_base_delay_doubles_then_caps() {
        let mins: Vec<u64> = (1..=10).map(|a| base_delay(a).as_secs() / 60).collect();
        assert_eq!(mins, vec![1, 2, 4, 8, 16, 32, 64, 120, 120, 120]);
        assert_eq!(base_delay(0), FIRST_DELAY);
        assert_eq!(base_delay(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn dlv_04_jitter_stays_within_bounds() {
        for attempt in 1..=40 {
            let base = base_delay(attempt).as_secs_f64();
            let lo = delay_with_jitter(attempt, 0.0).as_secs_f64();
            let hi = delay_with_jitter(attempt, 1.0).as_secs_f64();
            assert!(
                (lo - base * 0.8).abs() < 1e-6,
                "attempt {attempt}: {lo} vs {base}"
            );
            assert!(hi <= MAX_DELAY.as_secs_f64() + 1e-9);
            assert!(hi >= base.min(MAX_DELAY.as_secs_f64()) - 1e-9);
            for _ in 0..20 {
                let d = next_attempt_delay(attempt).as_secs_f64();
                assert!(d >= lo - 1e-9 && d <= hi + 1e-9, "attempt {attempt}: {d}");
            }
        }
        // Out-of-range and NaN jitter values are clamped, not propagated.
        assert_eq!(delay_with_jitter(3, -5.0), delay_with_jitter(3, 0.0));
        assert_eq!(delay_with_jitter(3, 7.0), delay_with_jitter(3, 1.0));
        assert!(delay_with_jitter(3, f64::NAN) > Duration::ZERO);
    }

    #[test]
    fn dlv_04_retries_fit_the_24h_window_many_times() {
        // About 18 attempts within 24 h with the shortest jitter, at least 17 with the longest.
        let count = |unit: f64| {
            let mut t = Duration::ZERO;
            let mut n = 1u32;
            while t + delay_with_jitter(n, unit) <= Duration::from_secs(24 * 3600) {
                t += delay_with_jitter(n, unit);
                n += 1;
            }
            n
        };
        assert!(count(1.0) >= 15, "{}", count(1.0));
        assert!(count(0.0) <= 25, "{}", count(0.0));
    }
}
