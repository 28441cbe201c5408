//! Counters of the collector, shared lock-free with the metrics endpoint.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use tlsrpt_core::datagram::Reason;

/// What the collector has done since start. All fields are monotonic counters except
/// `last_flush_unix_ms`, `pending_sessions` and `recv_buffer_bytes`. Read with
/// `Ordering::Relaxed`; the values are for monitoring, not for synchronisation.
#[derive(Debug, Default)]
pub struct Stats {
    /// Datagrams read from the socket (good and bad).
    pub received: AtomicU64,
    /// Datagrams decoded and counted.
    pub decoded: AtomicU64,
    /// Bad datagrams by [`Reason`] (index = `reason as usize`, see [`Reason::ALL`]).
    pub invalid: [AtomicU64; Reason::ALL.len()],
    /// Policy outcomes counted (one per policy per good datagram).
    pub sessions: AtomicU64,
    /// Deltas handed to the writer.
    pub deltas: AtomicU64,
    /// Successful writes to the store.
    pub flushes: AtomicU64,
    /// Policy outcomes written to the store.
    pub flushed_sessions: AtomicU64,
    /// Failed writes to the store (each one is retried).
    pub flush_errors: AtomicU64,
    /// Unix time in milliseconds of the last successful write; 0 = never.
    pub last_flush_unix_ms: AtomicI64,
    /// Policy outcomes counted but not yet stored.
    pub pending_sessions: AtomicU64,
    /// Socket read errors other than timeouts (the loop goes on).
    pub recv_errors: AtomicU64,
    /// Bad datagrams written to the dump directory.
    pub dumped: AtomicU64,
    /// Bad datagrams not dumped (cap reached or write error).
    pub dump_skipped: AtomicU64,
    /// Keys that could not be decoded back when building a delta (should stay 0).
    pub conversion_errors: AtomicU64,
    /// Effective SO_RCVBUF in bytes.
    pub recv_buffer_bytes: AtomicU64,
}

impl Stats {
    /// Bad datagrams counted for one reason.
    pub fn invalid(&self, reason: Reason) -> u64 {
        self.invalid
            .get(reason as usize)
            .map_or(0, |c| c.load(Relaxed))
    }

    /// Bad datagrams over all reasons.
    pub fn invalid_total(&self) -> u64 {
        self.invalid.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// `(label, count)` for every reason, in [`Reason::ALL`] order (zeros included, so every
    /// metrics label set exists from the start).
    pub fn invalid_by_reason(&self) -> Vec<(&'static str, u64)> {
        Reason::ALL
            .iter()
            .map(|&r| (r.as_str(), self.invalid(r)))
            .collect()
    }

    pub(crate) fn count_invalid(&self, reason: Reason) {
        if let Some(c) = self.invalid.get(reason as usize) {
            c.fetch_add(1, Relaxed);
        }
    }
}
