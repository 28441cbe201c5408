//! Where flushed counters go.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use tlsrpt_core::tally::Tally;

/// The storage the writer task hands each delta to. It must *add* the delta's counters in one
/// transaction (all or nothing), so a failed call can be retried with the same delta without
/// double counting.
pub trait CounterSink: Send + Sync + 'static {
    /// Adds every counter of `delta`. An error means nothing was stored.
    fn add_counters(&self, delta: &Tally) -> impl Future<Output = Result<(), String>> + Send;
}

impl CounterSink for tlsrpt_store::Store {
    async fn add_counters(&self, delta: &Tally) -> Result<(), String> {
        tlsrpt_store::Store::add_counters(self, delta)
            .await
            .map_err(|e| e.to_string())
    }
}

/// An in-memory sink: adds deltas into one tally. For tests and `--dry-run` style use; it can
/// be told to fail, to exercise the writer's retry path.
#[derive(Debug, Default)]
pub struct MemorySink {
    tally: Mutex<Tally>,
    failing: AtomicBool,
    calls: AtomicU64,
}

impl MemorySink {
    /// An empty sink that accepts writes.
    pub fn new() -> Self {
        MemorySink::default()
    }

    /// Makes every following write fail (`true`) or succeed (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Relaxed);
    }

    /// Everything stored so far.
    pub fn tally(&self) -> Tally {
        self.tally.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Number of write attempts, failed ones included.
    pub fn calls(&self) -> u64 {
        self.calls.load(Relaxed)
    }
}

impl CounterSink for MemorySink {
    async fn add_counters(&self, delta: &Tally) -> Result<(), String> {
        self.calls.fetch_add(1, Relaxed);
        if self.failing.load(Relaxed) {
            return Err("memory sink told to fail".into());
        }
        let mut t = self
            .tally
            .lock()
            .map_err(|_| "memory sink lock poisoned".to_owned())?;
        t.merge(delta);
        Ok(())
    }
}
