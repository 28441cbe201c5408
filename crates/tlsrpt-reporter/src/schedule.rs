//! When things happen: the day's close, each report's random send time, retries and the
//! 24-hour limit (RFC 8460 §4.1, §5.5; REQUIREMENTS RPT-02, RPT-03, DLV-03, DLV-04, DLV-07).
//!
//! Pure functions of their inputs (and an injectable [`Clock`]) so that the timing rules are
//! testable without waiting.
//!
//! Decisions where the RFC is silent:
//! * A day is built `delay` (default 30 min) after it closes at 24:00 UTC, so that sessions
//!   still being flushed by the collector get in (RPT-21: later ones go into no report).
//! * Each report (one per policy domain and record) gets one random send time, uniform in
//!   `[close + delay, close + delay + window)` (default window 4 h, as the RFC's example draws
//!   1–14400 s, RPT-03). Its destinations are looked up at that time (DNS-19) and all
//!   attempted then: spreading per report is what spreads the load over receivers.
//! * Temporary DNS failures are retried with the delivery back-off until 24 h after the send
//!   time (DNS-18, DLV-03); deliveries are retried until 24 h after their first attempt, the
//!   last attempt landing exactly on the limit.

use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// Default time waited after a UTC day closes before building its reports.
pub const DEFAULT_DELAY: Duration = Duration::from_secs(30 * 60);
/// Default window over which send times are spread (RFC 8460 §4.1 example: ≤ 14400 s).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(4 * 3600);
/// How long deliveries (and temporary DNS failures) are retried (RFC 8460 §5.5, DLV-03).
pub const RETRY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The time source. Injectable so tests can step through days without waiting.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<Timestamp>);

impl ManualClock {
    /// A clock standing at `t`.
    pub fn new(t: Timestamp) -> Self {
        ManualClock(std::sync::Mutex::new(t))
    }

    /// Moves the clock to `t`.
    pub fn set(&self, t: Timestamp) {
        if let Ok(mut g) = self.0.lock() {
            *g = t;
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        if let Ok(mut g) = self.0.lock() {
            *g = add(*g, d);
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.0
            .lock()
            .map(|g| *g)
            .unwrap_or_else(|e| *e.into_inner())
    }
}

/// `t + d`, saturating at the end of time.
pub fn add(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|sd| t.checked_add(sd).ok())
        .unwrap_or(Timestamp::MAX)
}

/// The UTC day `t` falls in (RFC 8460 §4.1, RPT-02).
pub fn utc_day(t: Timestamp) -> Date {
    TimeZone::UTC.to_datetime(t).date()
}

/// When `day` closes: the next day's 00:00:00Z.
pub fn day_close(day: Date) -> Timestamp {
    day.tomorrow()
        .ok()
        .and_then(|d| d.to_zoned_datetime(TimeZone::UTC).ok())
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::MAX)
}

/// When `day`'s reports are built: its close plus `delay`.
pub fn build_time(day: Date, delay: Duration) -> Timestamp {
    add(day_close(day), delay)
}

/// The send time of one report of `day`, with `unit` in `[0, 1)` choosing the place in the
/// window (RPT-03). Never before the build time.
pub fn send_time(day: Date, delay: Duration, window: Duration, unit: f64) -> Timestamp {
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let offset = Duration::from_secs_f64(window.as_secs_f64() * unit);
    add(build_time(day, delay), offset.min(window))
}

/// A random send time for one report of `day` (RPT-03).
pub fn random_send_time(day: Date, delay: Duration, window: Duration) -> Timestamp {
    send_time(day, delay, window, rand::random::<f64>())
}

/// The closed days whose reports are due to be built at `now`, oldest first: the last
/// `lookback` days whose build time has passed (the counters of older days may be pruned,
/// RPT-21 keeps two).
pub fn days_to_build(now: Timestamp, delay: Duration, lookback: u32) -> Vec<Date> {
    let today = utc_day(now);
    let mut out = Vec::new();
    let mut day = today;
    for _ in 0..=lookback {
        if build_time(day, delay) <= now {
            out.push(day);
        }
        match day.yesterday() {
            Ok(d) => day = d,
            Err(_) => break,
        }
    }
    out.truncate(lookback as usize);
    out.reverse();
    out
}

/// When to try a delivery next after a temporary failure at `now`, or `None` when the 24 h
/// since the first attempt are over (DLV-03, DLV-07). `delay` is the back-off for this
/// attempt (DLV-04); the last try is placed on the limit itself rather than skipped.
pub fn next_retry(first_attempt: Timestamp, now: Timestamp, delay: Duration) -> Option<Timestamp> {
    let limit = add(first_attempt, RETRY_WINDOW);
    if now >= limit {
        return None;
    }
    Some(add(now, delay).min(limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn rpt_02_day_closes_at_utc_midnight() {
        let d = jiff::civil::date(2026, 11, 28);
        assert_eq!(day_close(d), t("2026-11-29T00:00:00Z"));
        assert_eq!(utc_day(t("2026-11-28T23:59:59Z")), d);
        assert_eq!(utc_day(t("2026-11-29T00:00:00Z")), d.tomorrow().unwrap());
    }

    #[test]
    fn rpt_03_send_times_fall_in_the_window_after_the_delay() {
        let d = jiff::civil::date(2026, 11, 28);
        let start = t("2026-11-29T00:30:00Z");
        let end = t("2026-11-29T04:30:00Z");
        assert_eq!(send_time(d, DEFAULT_DELAY, DEFAULT_WINDOW, 0.0), start);
        assert_eq!(send_time(d, DEFAULT_DELAY, DEFAULT_WINDOW, 1.0), end);
        assert_eq!(send_time(d, DEFAULT_DELAY, DEFAULT_WINDOW, f64::NAN), start);
        let times: Vec<Timestamp> = (0..200)
            .map(|_| random_send_time(d, DEFAULT_DELAY, DEFAULT_WINDOW))
            .collect();
        assert!(times.iter().all(|x| *x >= start && *x <= end));
        // Spread, not all at one instant (never exactly midnight).
        let distinct: std::collections::BTreeSet<_> = times.iter().collect();
        assert!(distinct.len() > 100, "{}", distinct.len());
        assert!(times.iter().all(|x| *x != t("2026-11-29T00:00:00Z")));
    }

    #[test]
    fn days_are_built_after_close_plus_delay() {
        let delay = DEFAULT_DELAY;
        assert_eq!(
            days_to_build(t("2026-11-29T00:29:59Z"), delay, 2),
            vec![jiff::civil::date(2026, 11, 27)]
        );
        assert_eq!(
            days_to_build(t("2026-11-29T00:30:00Z"), delay, 2),
            vec![
                jiff::civil::date(2026, 11, 27),
                jiff::civil::date(2026, 11, 28)
            ]
        );
        assert_eq!(
            days_to_build(t("2026-11-29T12:00:00Z"), delay, 1),
            vec![jiff::civil::date(2026, 11, 28)]
        );
    }

    #[test]
    fn dlv_03_retries_stop_24_hours_after_the_first_attempt() {
        let first = t("2026-11-29T01:00:00Z");
        let h = Duration::from_secs(3600);
        assert_eq!(
            next_retry(first, t("2026-11-29T02:00:00Z"), h),
            Some(t("2026-11-29T03:00:00Z"))
        );
        // The last retry lands on the limit.
        assert_eq!(
            next_retry(first, t("2026-11-30T00:30:00Z"), 2 * h),
            Some(t("2026-11-30T01:00:00Z"))
        );
        assert_eq!(next_retry(first, t("2026-11-30T01:00:00Z"), h), None);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(t("2026-11-29T00:00:00Z"));
        assert_eq!(c.now(), t("2026-11-29T00:00:00Z"));
        c.advance(Duration::from_secs(90));
        assert_eq!(c.now(), t("2026-11-29T00:01:30Z"));
    }
}
