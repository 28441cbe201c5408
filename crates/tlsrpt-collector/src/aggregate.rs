//! The in-memory aggregate of the receive loop: counters keyed by raw datagram bytes.
//!
//! The receive thread must keep up with bursts (the kernel queues only
//! `net.unix.max_dgram_qlen` = 10 datagrams by default and libtlsrpt drops on `EAGAIN`,
//! DATAGRAM.md §1), so this structure never builds owned report values on the hot path:
//!
//! * A **policy key** is the raw JSON text of `d`, `pr` and the policy's identifying fields
//!   (type, policy-domain, policy-string, mx-host), laid out as a one-policy datagram. Building
//!   it is a few `memcpy`s into a reused scratch buffer; looking it up hashes those bytes.
//! * A **failure key** is the policy's slot number followed by the raw failure object
//!   (`{"c":205,...}`): the whole object is the key, as in the reference collector
//!   (DATAGRAM.md §6), so per-IP details never collapse (REQUIREMENTS RPT-08).
//! * `d` is validated (normalised) once per distinct raw spelling and cached.
//!
//! A key seen before costs no allocation. At a flush the maps are moved out as a [`RawDelta`]
//! (O(1)), and [`RawDelta::into_tally`] decodes each key once into a [`Tally`] off the hot path.
//! Two raw spellings of one value (e.g. `"a"` and `"\u0061"`) are two keys here and meet in
//! the tally, where counters add.
//!
//! Memory (measured, `benches/collector.rs` and `examples/memory.rs`): a key costs its raw
//! text plus map overhead, ≈ 220 bytes requested per key for Postfix-like datagrams with a
//! failure detail, ≈ 380 bytes of RSS all overheads included. The same key as a [`Tally`]
//! entry costs ≈ 510 bytes of RSS, which is why pending counts stay in this raw form and are
//! converted chunk by chunk only when written ([`RawDelta::into_chunks`]). With 100,000
//! distinct keys pending (store down) the whole collector process measured 41 MB RSS; with a
//! healthy store 12 MB (peak 22 MB).

use std::collections::HashMap;

use foldhash::fast::RandomState;
use jiff::civil::Date;
use tlsrpt_core::datagram::{self, Datagram, DatagramError};
use tlsrpt_core::domain;
use tlsrpt_core::tally::{ReportKey, Tally};

/// Most distinct raw `d` spellings kept in the validation cache before it is reset (bounds
/// memory against a sender that invents domains).
const MAX_DOMAIN_CACHE: usize = 100_000;

/// Counters of one policy key.
#[derive(Clone, Copy, Debug, Default)]
struct PolicySlot {
    index: u32,
    successful: u64,
    failed: u64,
}

/// What one flush interval collected, still keyed by raw bytes.
#[derive(Debug, Default)]
pub struct RawDelta {
    /// UTC day of receipt of every datagram in this delta.
    pub day: Option<Date>,
    policies: HashMap<Box<[u8]>, PolicySlot, RandomState>,
    failures: HashMap<Box<[u8]>, u64, RandomState>,
    sessions: u64,
}

impl RawDelta {
    /// True when nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Policy outcomes counted (one per policy per datagram).
    pub fn sessions(&self) -> u64 {
        self.sessions
    }

    /// Distinct keys held (policy keys + failure keys).
    pub fn key_count(&self) -> usize {
        self.policies.len() + self.failures.len()
    }

    /// Decodes every key once and builds the tally (see [`RawDelta::to_tally`]).
    pub fn into_tally(self) -> (Tally, usize) {
        self.to_tally()
    }

    /// Decodes every key once and builds the tally, leaving `self` intact (so a failed store
    /// write can keep the compact raw form). Keys were built from validated datagrams, so
    /// decoding cannot fail; a key that somehow does is skipped and counted in the result's
    /// second element rather than panicking.
    pub fn to_tally(&self) -> (Tally, usize) {
        let mut tally = Tally::new();
        let Some(day) = self.day else {
            return (tally, 0);
        };
        let mut skipped = 0;
        // Slot index → (report key, policy), to attach failures.
        let mut by_index: Vec<Option<(ReportKey, tlsrpt_core::Policy)>> =
            vec![None; self.policies.len()];
        for (key, slot) in &self.policies {
            let Some((rk, policy)) = decode_policy_key(day, key) else {
                skipped += 1;
                continue;
            };
            let counters = tally
                .reports
                .entry(rk.clone())
                .or_default()
                .entry(policy.clone())
                .or_default();
            counters.successful = counters.successful.saturating_add(slot.successful);
            counters.failed = counters.failed.saturating_add(slot.failed);
            if let Some(e) = by_index.get_mut(slot.index as usize) {
                *e = Some((rk, policy));
            }
        }
        for (key, &n) in &self.failures {
            let (idx, raw) = match key.split_first_chunk::<4>() {
                Some((idx, raw)) => (u32::from_le_bytes(*idx) as usize, raw),
                None => {
                    skipped += 1;
                    continue;
                }
            };
            let Some(Some((rk, policy))) = by_index.get(idx) else {
                skipped += 1;
                continue;
            };
            let Some(fk) = std::str::from_utf8(raw)
                .ok()
                .and_then(|raw| datagram::decode_failure(raw).ok())
                .map(|f| f.to_failure_key())
            else {
                skipped += 1;
                continue;
            };
            if let Some(c) = tally.reports.get_mut(rk).and_then(|ps| ps.get_mut(policy)) {
                let e = c.failures.entry(fk).or_insert(0);
                *e = e.saturating_add(n);
            }
        }
        (tally, skipped)
    }

    /// Adds `other`'s counters (same day expected; the caller keys pending deltas by day).
    /// Keys move over without copying; failure keys are re-pointed at this delta's slots.
    pub fn merge(&mut self, other: RawDelta) {
        if self.day.is_none() {
            self.day = other.day;
        }
        self.sessions = self.sessions.saturating_add(other.sessions);
        // other's slot index → ours.
        let mut remap = vec![u32::MAX; other.policies.len()];
        for (key, slot) in other.policies {
            let next = self.policies.len() as u32;
            let mine = self.policies.entry(key).or_insert(PolicySlot {
                index: next,
                ..PolicySlot::default()
            });
            mine.successful = mine.successful.saturating_add(slot.successful);
            mine.failed = mine.failed.saturating_add(slot.failed);
            if let Some(r) = remap.get_mut(slot.index as usize) {
                *r = mine.index;
            }
        }
        for (mut key, n) in other.failures {
            let Some((idx, _)) = key.split_first_chunk_mut::<4>() else {
                continue;
            };
            let Some(&new) = remap.get(u32::from_le_bytes(*idx) as usize) else {
                continue;
            };
            *idx = new.to_le_bytes();
            let c = self.failures.entry(key).or_insert(0);
            *c = c.saturating_add(n);
        }
    }

    /// Splits into deltas of at most about `max_keys` keys each, so that each can be turned
    /// into a (much larger) [`Tally`] and stored on its own: a store outage then costs the
    /// compact raw form in memory, and a write never materialises more than one chunk.
    /// A policy whose failures span two chunks appears in both (its counters only in the
    /// first); counters add, so the chunks sum to the original.
    pub fn into_chunks(self, max_keys: usize) -> Vec<RawDelta> {
        let max_keys = max_keys.max(2);
        let day = self.day;
        let mut slots: Vec<Option<(Box<[u8]>, PolicySlot)>> = vec![None; self.policies.len()];
        for (key, slot) in self.policies {
            if let Some(e) = slots.get_mut(slot.index as usize) {
                *e = Some((key, slot));
            }
        }
        let mut failures: Vec<(Box<[u8]>, u64)> = self.failures.into_iter().collect();
        failures
            .sort_unstable_by_key(|(k, _)| k.first_chunk::<4>().map(|i| u32::from_le_bytes(*i)));
        let mut chunks = Vec::new();
        let mut cur = RawDelta {
            day,
            ..RawDelta::default()
        };
        let mut fi = failures.into_iter().peekable();
        for (idx, slot) in slots.into_iter().enumerate() {
            let Some((key, slot)) = slot else { continue };
            let idx = idx as u32;
            if cur.key_count() + 1 >= max_keys {
                chunks.push(std::mem::replace(
                    &mut cur,
                    RawDelta {
                        day,
                        ..RawDelta::default()
                    },
                ));
            }
            let mut local = cur.policies.len() as u32;
            cur.sessions = cur
                .sessions
                .saturating_add(slot.successful.saturating_add(slot.failed));
            cur.policies.insert(
                key.clone(),
                PolicySlot {
                    index: local,
                    ..slot
                },
            );
            while let Some((fkey, _)) = fi.peek() {
                match fkey
                    .first_chunk::<4>()
                    .map(|i| u32::from_le_bytes(*i))
                    .cmp(&Some(idx))
                {
                    // A failure whose policy slot is missing (cannot happen): dropped.
                    std::cmp::Ordering::Less => {
                        fi.next();
                        continue;
                    }
                    std::cmp::Ordering::Greater => break,
                    std::cmp::Ordering::Equal => {}
                }
                let Some((mut fkey, n)) = fi.next() else {
                    break;
                };
                if cur.key_count() >= max_keys {
                    chunks.push(std::mem::replace(
                        &mut cur,
                        RawDelta {
                            day,
                            ..RawDelta::default()
                        },
                    ));
                    local = 0;
                    cur.policies.insert(
                        key.clone(),
                        PolicySlot {
                            index: 0,
                            successful: 0,
                            failed: 0,
                        },
                    );
                }
                if let Some((i, _)) = fkey.split_first_chunk_mut::<4>() {
                    *i = local.to_le_bytes();
                }
                cur.failures.insert(fkey, n);
            }
        }
        if !cur.is_empty() {
            chunks.push(cur);
        }
        chunks
    }
}

fn decode_policy_key(day: Date, key: &[u8]) -> Option<(ReportKey, tlsrpt_core::Policy)> {
    let d = datagram::decode(key).ok()?;
    let domain = d.normalized_domain().ok()?;
    let policy = d.policies().next()?.to_policy(&domain);
    Some((
        ReportKey {
            day,
            domain,
            record: d.record.to_string_value(),
        },
        policy,
    ))
}

/// The receive loop's aggregate for the current flush interval.
#[derive(Debug)]
pub struct Aggregator {
    delta: RawDelta,
    /// Raw `d` → whether it normalises. Survives flushes.
    domains: HashMap<Box<str>, bool, RandomState>,
    scratch: Vec<u8>,
}

impl Default for Aggregator {
    fn default() -> Self {
        Aggregator::new()
    }
}

impl Aggregator {
    /// An empty aggregate.
    pub fn new() -> Self {
        Aggregator {
            delta: RawDelta::default(),
            domains: HashMap::default(),
            scratch: Vec::with_capacity(1024),
        }
    }

    /// The day of the datagrams held, if any.
    pub fn day(&self) -> Option<Date> {
        self.delta.day
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.delta.is_empty()
    }

    /// Distinct keys currently held.
    pub fn key_count(&self) -> usize {
        self.delta.key_count()
    }

    /// Takes what was collected, leaving an empty aggregate with room for as many keys.
    pub fn take(&mut self) -> RawDelta {
        let policies =
            HashMap::with_capacity_and_hasher(self.delta.policies.len(), RandomState::default());
        let failures =
            HashMap::with_capacity_and_hasher(self.delta.failures.len(), RandomState::default());
        std::mem::replace(
            &mut self.delta,
            RawDelta {
                day: None,
                policies,
                failures,
                sessions: 0,
            },
        )
    }

    /// Counts one decoded datagram received on `day`. The caller flushes first when the day
    /// changes (`day` must equal [`Aggregator::day`] when that is set; otherwise the datagram
    /// is counted on the held day, which is never wrong by more than one flush interval).
    ///
    /// Fails only when `d` is not a valid domain; then nothing is counted.
    pub fn add(&mut self, day: Date, d: &Datagram<'_>) -> Result<(), DatagramError> {
        self.check_domain(d)?;
        if self.delta.day.is_none() {
            self.delta.day = Some(day);
        }
        for p in d.policies() {
            let s = &mut self.scratch;
            s.clear();
            s.extend_from_slice(b"{\"d\": \"");
            s.extend_from_slice(d.domain.raw().as_bytes());
            s.extend_from_slice(b"\",\"pr\": \"");
            s.extend_from_slice(d.record.raw().as_bytes());
            s.extend_from_slice(b"\",\"policies\":[{\"policy-type\":");
            s.extend_from_slice(
                tlsrpt_core::ascii::decimal(p.policy_type_code, &mut [0; 20]).as_bytes(),
            );
            if let Some(pd) = p.policy_domain {
                s.extend_from_slice(b",\"policy-domain\": \"");
                s.extend_from_slice(pd.raw().as_bytes());
                s.push(b'"');
            }
            if !p.policy_strings.raw().is_empty() {
                s.extend_from_slice(b",\"policy-string\":");
                s.extend_from_slice(p.policy_strings.raw().as_bytes());
            }
            if !p.mx_hosts.raw().is_empty() {
                s.extend_from_slice(b",\"mx-host\":");
                s.extend_from_slice(p.mx_hosts.raw().as_bytes());
            }
            s.extend_from_slice(b",\"t\":0,\"f\":0}]}");
            let next_index = self.delta.policies.len() as u32;
            let slot = match self.delta.policies.get_mut(s.as_slice()) {
                Some(slot) => slot,
                None => self
                    .delta
                    .policies
                    .entry(s.as_slice().into())
                    .or_insert(PolicySlot {
                        index: next_index,
                        ..PolicySlot::default()
                    }),
            };
            if p.failed {
                slot.failed = slot.failed.saturating_add(1);
            } else {
                slot.successful = slot.successful.saturating_add(1);
            }
            let index = slot.index;
            self.delta.sessions = self.delta.sessions.saturating_add(1);
            for f in p.failure_details.iter() {
                s.clear();
                s.extend_from_slice(&index.to_le_bytes());
                s.extend_from_slice(f.raw().as_bytes());
                match self.delta.failures.get_mut(s.as_slice()) {
                    Some(n) => *n = n.saturating_add(1),
                    None => {
                        self.delta.failures.insert(s.as_slice().into(), 1);
                    }
                }
            }
        }
        Ok(())
    }

    fn check_domain(&mut self, d: &Datagram<'_>) -> Result<(), DatagramError> {
        let raw = d.domain.raw();
        let ok = match self.domains.get(raw) {
            Some(&ok) => ok,
            None => {
                let ok = domain::normalize(&d.domain.to_cow()).is_ok();
                if self.domains.len() >= MAX_DOMAIN_CACHE {
                    self.domains.clear();
                }
                self.domains.insert(raw.into(), ok);
                ok
            }
        };
        if ok {
            Ok(())
        } else {
            // Recompute for the precise error; rare path.
            d.normalized_domain().map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use tlsrpt_core::datagram::decode;

    const DANE: &str = r#"{"dpv": "1","d": "Example.org.","pr": "v=TLSRPTv1;rua=https://rpt.example.org/tlsrpt","policies":[{"policy-type":1,"policy-domain": "example.org","policy-string":["3 1 1 0123"],"failure-details":[{"c":205,"s": "192.0.2.1","n": "mx.example.org","h": "250-mx.example.org\r\n250 STARTTLS","r": "198.51.100.7","f": "self-signed_certificate"}],"t":1,"f":1}]}"#;
    const OK: &str = r#"{"d": "example.org","pr": "v=TLSRPTv1;rua=https://rpt.example.org/tlsrpt","policies":[{"policy-type":1,"policy-domain": "example.org","policy-string":["3 1 1 0123"],"t":0,"f":0}]}"#;

    #[test]
    fn aggregate_equals_tally_add_datagram() {
        let day = date(2026, 11, 28);
        let mut a = Aggregator::new();
        let mut expected = Tally::new();
        for text in [DANE, OK, DANE, OK, OK] {
            let d = decode(text.as_bytes()).unwrap();
            a.add(day, &d).unwrap();
            expected.add_datagram(day, &d).unwrap();
        }
        assert_eq!(
            a.key_count(),
            3,
            "Example.org. and example.org are two raw keys"
        );
        let delta = a.take();
        assert!(a.is_empty());
        assert_eq!(delta.sessions(), 5);
        let (tally, skipped) = delta.into_tally();
        assert_eq!(skipped, 0);
        assert_eq!(tally, expected);
    }

    /// Datagrams with several policies and per-IP failures, so chunks split policies.
    fn varied(i: u64) -> String {
        format!(
            r#"{{"d": "d{}.example","pr": "v=TLSRPTv1;","policies":[{{"policy-type":2,"policy-domain": "d{}.example","failure-details":[{{"c":205,"s": "192.0.2.{}"}}],"t":1,"f":1}},{{"policy-type":1,"t":0,"f":0}}]}}"#,
            i % 3,
            i % 3,
            i % 17
        )
    }

    #[test]
    fn merged_deltas_and_chunks_sum_to_the_same_tally() {
        let day = date(2026, 11, 28);
        let mut expected = Tally::new();
        let mut pending = RawDelta::default();
        let mut a = Aggregator::new();
        for i in 0..120u64 {
            let text = varied(i);
            let d = decode(text.as_bytes()).unwrap();
            a.add(day, &d).unwrap();
            expected.add_datagram(day, &d).unwrap();
            if i % 25 == 24 {
                pending.merge(a.take());
            }
        }
        pending.merge(a.take());
        assert_eq!(pending.sessions(), 240);
        let (whole, skipped) = pending.to_tally();
        assert_eq!(skipped, 0);
        assert_eq!(whole, expected);
        let keys = pending.key_count();
        for max in [2, 3, 5, 8, 1000] {
            let mut again = RawDelta::default();
            let chunks = std::mem::take(&mut pending).into_chunks(max);
            let mut sum = Tally::new();
            let mut sessions = 0;
            for c in &chunks {
                assert!(
                    c.key_count() <= max.max(2),
                    "chunk of {} keys > {max}",
                    c.key_count()
                );
                let (t, skipped) = c.to_tally();
                assert_eq!(skipped, 0);
                sum.merge(&t);
                sessions += c.sessions();
            }
            assert_eq!(sessions, 240, "max {max}");
            assert_eq!(sum, expected, "max {max}");
            for c in chunks {
                again.merge(c);
            }
            // Re-merged chunks are the same pending set (a policy split over chunks is
            // stored once again).
            assert_eq!(again.key_count(), keys);
            pending = again;
        }
    }
}
