//! Flood defences for the HTTP endpoint (REQUIREMENTS RCV-07, SEC-01): a per-client token
//! bucket with a bounded memory footprint. The same limiter, keyed on a sender instead of an
//! address, limits reports per submitter and per DKIM domain ([`crate::senders`]).
//!
//! RFC 8460 §7 warns that anyone can POST to a published `rua` endpoint, so an attacker can
//! flood it to hide real reports. Real senders send about one report per policy domain per
//! day, so a small per-client rate (default 60 per minute, a burst of the same size) never
//! throttles a legitimate sender while keeping one source from filling the store.
//!
//! The limiter keys on the client address; IPv6 clients are keyed on their /64 because one
//! host usually owns a whole /64 and could otherwise rotate through 2^64 addresses. The map
//! of clients is capped ([`RateLimiter::new`]'s `max_clients`): when it is full, buckets that
//! have refilled (indistinguishable from a fresh client) are dropped first; if every entry is
//! still active, the new client shares one overflow bucket, so memory stays bounded and a
//! flood from many addresses throttles itself rather than the server.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the limiter decided for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Over the limit: answer 429 with `Retry-After` set to this many whole seconds (≥ 1).
    Deny {
        /// Seconds until one request's worth of tokens is back.
        retry_after_secs: u64,
    },
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(capacity: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: capacity,
            last: now,
        }
    }

    /// Refills for the time since the last visit, then tries to take one token.
    fn take(&mut self, capacity: f64, per_sec: f64, now: Instant) -> Decision {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Decision::Allow
        } else {
            let wait = (1.0 - self.tokens) / per_sec;
            Decision::Deny {
                retry_after_secs: (wait.ceil() as u64).max(1),
            }
        }
    }

    fn is_full(&self, capacity: f64, per_sec: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * per_sec >= capacity
    }
}

/// A token-bucket rate limiter per key (by default a client address), with a bounded number
/// of tracked keys.
#[derive(Debug)]
pub struct RateLimiter<K = IpAddr> {
    capacity: f64,
    per_sec: f64,
    max_clients: usize,
    state: Mutex<State<K>>,
}

#[derive(Debug)]
struct State<K> {
    buckets: HashMap<K, Bucket>,
    overflow: Option<Bucket>,
    last_purge: Option<Instant>,
}

/// A full map is swept for idle buckets at most this often, so a flood of new addresses
/// cannot make every request pay for a scan of the whole map.
const PURGE_EVERY: Duration = Duration::from_secs(1);

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `per_minute` requests per minute per client, with bursts up to `per_minute`; at most
    /// `max_clients` clients tracked at once (each costs about 64 bytes plus the key).
    /// `per_minute = 0` disables limiting (every check allows), for benchmarks and for
    /// deployments that rate-limit in a reverse proxy.
    pub fn new(per_minute: u32, max_clients: usize) -> RateLimiter<K> {
        let capacity = f64::from(per_minute);
        RateLimiter {
            capacity,
            per_sec: capacity / 60.0,
            max_clients: max_clients.max(1),
            state: Mutex::new(State {
                buckets: HashMap::new(),
                overflow: None,
                last_purge: None,
            }),
        }
    }

    /// True when this limiter never denies.
    pub fn is_disabled(&self) -> bool {
        self.capacity <= 0.0
    }

    /// Counts one request under `key` at `now`. `key` may be a borrowed form of the key type
    /// (`&str` for `String` keys), so a client already tracked costs no allocation.
    pub fn check_key<Q>(&self, key: &Q, now: Instant) -> Decision
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if self.is_disabled() {
            return Decision::Allow;
        }
        // A poisoned lock only means another request panicked mid-update; the map is still
        // usable (worst case one bucket is a little off).
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (cap, rate) = (self.capacity, self.per_sec);
        if let Some(b) = st.buckets.get_mut(key) {
            return b.take(cap, rate, now);
        }
        let purge_due = st
            .last_purge
            .is_none_or(|t| now.saturating_duration_since(t) >= PURGE_EVERY);
        if st.buckets.len() >= self.max_clients && purge_due {
            st.buckets.retain(|_, b| !b.is_full(cap, rate, now));
            st.last_purge = Some(now);
        }
        if st.buckets.len() >= self.max_clients {
            let b = st.overflow.get_or_insert_with(|| Bucket::full(cap, now));
            return b.take(cap, rate, now);
        }
        let mut b = Bucket::full(cap, now);
        let d = b.take(cap, rate, now);
        // Only a client seen for the first time costs an owned key.
        st.buckets.insert(key.to_owned(), b);
        d
    }

    /// How many clients are tracked now (for tests and metrics).
    pub fn tracked_clients(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .buckets
            .len()
    }
}

impl RateLimiter<IpAddr> {
    /// Counts one request from `ip` at `now`, keyed by [`client_key`].
    pub fn check(&self, ip: IpAddr, now: Instant) -> Decision {
        self.check_key(&client_key(ip), now)
    }
}

/// The rate-limit key of a client address: IPv4 as is (IPv4-mapped IPv6 too), IPv6 cut to
/// its /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// Default requests per minute per client (see the module docs).
pub const DEFAULT_RATE_PER_MINUTE: u32 = 60;
/// Default number of clients tracked by the rate limiter (about 6 MiB at most).
pub const DEFAULT_MAX_RATE_CLIENTS: usize = 100_000;
/// Default body size limit: 10 MiB compressed, the size commonly seen and what receivers
/// should accept (REQUIREMENTS DLV-02).
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Default limit on one request, from the first header byte to the answer. Real reports
/// are small; 30 s allows a 10 MiB upload at ~3 Mbit/s while a slow-loris sender is cut off.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time allowed to send the request headers (slow-loris defence).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default requests processed at once; more wait for a slot (within the request timeout).
/// Each can hold up to 10 MiB body + 20 MiB decompressed, so 64 bounds the worst case to
/// about 2 GiB; typical reports are a few KiB.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 64;
/// Default number of open connections; further ones wait in the kernel's accept queue.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sec_01_burst_then_deny_with_retry_after() {
        let rl = RateLimiter::<IpAddr>::new(60, 10);
        let t0 = Instant::now();
        for i in 0..60 {
            assert_eq!(
                rl.check(ip("192.0.2.1"), t0),
                Decision::Allow,
                "request {i}"
            );
        }
        assert_eq!(
            rl.check(ip("192.0.2.1"), t0),
            Decision::Deny {
                retry_after_secs: 1
            }
        );
        // Another client is not affected.
        assert_eq!(rl.check(ip("192.0.2.2"), t0), Decision::Allow);
        // One second later one token is back.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(rl.check(ip("192.0.2.1"), t1), Decision::Allow);
        assert!(matches!(
            rl.check(ip("192.0.2.1"), t1),
            Decision::Deny { .. }
        ));
    }

    #[test]
    fn sec_01_slow_rate_gives_longer_retry_after() {
        let rl = RateLimiter::<IpAddr>::new(2, 10);
        let t0 = Instant::now();
        assert_eq!(rl.check(ip("192.0.2.1"), t0), Decision::Allow);
        assert_eq!(rl.check(ip("192.0.2.1"), t0), Decision::Allow);
        assert_eq!(
            rl.check(ip("192.0.2.1"), t0),
            Decision::Deny {
                retry_after_secs: 30
            }
        );
    }

    #[test]
    fn sec_01_ipv6_keyed_on_slash_64() {
        let rl = RateLimiter::<IpAddr>::new(1, 10);
        let t0 = Instant::now();
        assert_eq!(rl.check(ip("2001:db8:1:2::1"), t0), Decision::Allow);
        assert!(matches!(
            rl.check(ip("2001:db8:1:2:ffff::9"), t0),
            Decision::Deny { .. }
        ));
        assert_eq!(rl.check(ip("2001:db8:1:3::1"), t0), Decision::Allow);
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn sec_01_client_map_stays_bounded() {
        let rl = RateLimiter::<IpAddr>::new(1, 100);
        let t0 = Instant::now();
        for i in 0..10_000u32 {
            let a = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            let _ = rl.check(IpAddr::V4(a), t0);
        }
        assert!(rl.tracked_clients() <= 100);
        // All active and the map full: newcomers share the overflow bucket, which is spent.
        assert!(matches!(
            rl.check(ip("198.51.100.1"), t0),
            Decision::Deny { .. }
        ));
        // A minute later every bucket is full again and is dropped to make room.
        let t1 = t0 + Duration::from_secs(61);
        assert_eq!(rl.check(ip("198.51.100.1"), t1), Decision::Allow);
        assert_eq!(rl.tracked_clients(), 1);
    }

    #[test]
    fn zero_disables() {
        let rl = RateLimiter::<IpAddr>::new(0, 1);
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert_eq!(rl.check(ip("192.0.2.1"), t0), Decision::Allow);
        }
    }
}
