//! # tlsrpt-collector
//!
//! Receives the libtlsrpt datagrams an MTA sends once per SMTP TLS session
//! (`shared/spec/DATAGRAM.md`), counts them in memory, and adds the counts to the store about
//! once a second — a drop-in replacement for the reference collector.
//!
//! ## Shape
//!
//! * [`bind`] binds the Unix datagram socket ([`socket`]: stale-socket removal, mode, group,
//!   a large `SO_RCVBUF`).
//! * [`Collector::run`] starts a dedicated OS thread that takes up to 32 datagrams per
//!   blocking `recvmmsg` call into reused buffers (one wake-up and one syscall empty the
//!   kernel queue; busy-polling instead was measured slower on a loaded 2-core machine),
//!   decodes ([`tlsrpt_core::datagram`]) and aggregates ([`aggregate`]) without allocating
//!   for keys already seen. It **never waits on storage**: every `flush_interval` it moves
//!   the accumulated delta to a writer task over a channel. libtlsrpt sends with
//!   `MSG_DONTWAIT` and the kernel queues only a few datagrams, so any stall here would drop
//!   sessions at the sender.
//! * The writer task merges deltas into a pending set, still in the compact raw form, and
//!   writes it to the [`CounterSink`] (the store) as [`tlsrpt_core::tally::Tally`] chunks of
//!   at most 1,024 keys, each one all-or-nothing sink call. On failure it keeps what was not
//!   stored, merges newer deltas into it, logs (rate-limited) and retries with back-off
//!   (doubling from `flush_interval` up to 30 s); no count is lost or doubled.
//! * On shutdown the thread drains what the socket still holds, hands over the last delta,
//!   and the writer makes a final flush.
//!
//! The day of a datagram is the collector's UTC day of receipt (DATAGRAM.md §6, REQUIREMENTS
//! RPT-02), read from an injectable [`Clock`]. When the day changes the held delta is flushed
//! first, so a delta never mixes days.
//!
//! Bad datagrams are counted by reason ([`Stats`]), logged at most once per reason per
//! [`LOG_EVERY`] with the number suppressed, and optionally saved to a dump directory within a
//! size cap. They never stop the loop or disturb the good datagrams around them.

pub mod aggregate;
mod dump;
pub mod sink;
pub mod socket;
pub mod stats;

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use tlsrpt_core::datagram::{self, DatagramError, Reason};
use tokio::sync::mpsc;

pub use aggregate::{Aggregator, RawDelta};
pub use sink::{CounterSink, MemorySink};
pub use stats::Stats;

/// Bad datagrams of one reason are logged at most once per this interval; the next line says
/// how many were suppressed in between.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// How long one blocking receive waits before the thread checks for a flush or a shutdown.
const RECV_TIMEOUT: Duration = Duration::from_millis(50);

/// Longest wait between two retries of a failing store write.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// A delta is handed to the writer early once it holds this many distinct keys, which bounds
/// the receive side's memory during a burst of new keys (≈ 250 bytes per key).
const MAX_KEYS_PER_DELTA: usize = 16 * 1024;

/// Longest time spent draining the socket at shutdown (senders may keep sending).
const MAX_DRAIN: Duration = Duration::from_secs(2);

/// Final-flush attempts at shutdown before the remaining counts are given up (and reported).
const FINAL_FLUSH_ATTEMPTS: u32 = 3;

/// Collector settings (the `[collector]` section of the config file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectorConfig {
    /// Socket path, absolute, at most 107 bytes (DATAGRAM.md §1).
    pub socket: PathBuf,
    /// `chmod` of the socket, e.g. `0o660` (Postfix's `smtp` must be able to write to it).
    pub socket_mode: Option<u32>,
    /// Group of the socket (name or number), e.g. `postfix`.
    pub socket_group: Option<String>,
    /// How often the in-memory counts go to the store.
    pub flush_interval: Duration,
    /// Where bad datagrams are saved (must exist); `None` = not saved.
    pub dump_dir: Option<PathBuf>,
    /// Total size cap of the dump directory.
    pub dump_max_bytes: u64,
    /// Longest datagram accepted; longer ones are counted as `truncated`.
    pub max_datagram_bytes: usize,
    /// Requested `SO_RCVBUF`.
    pub recv_buffer_bytes: usize,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            socket: PathBuf::from("/run/tlsrpt/tlsrpt.sock"),
            socket_mode: Some(0o660),
            socket_group: None,
            flush_interval: Duration::from_secs(1),
            dump_dir: None,
            dump_max_bytes: 64 * 1024 * 1024,
            max_datagram_bytes: datagram::MAX_DATAGRAM_BYTES,
            recv_buffer_bytes: 8 * 1024 * 1024,
        }
    }
}

/// What can go wrong when binding or running the collector.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// The socket path does not fit in `sun_path`.
    #[error("socket path {path:?} is {len} bytes; at most {max} fit in a Unix socket address", max = socket::MAX_SOCKET_PATH)]
    SocketPathTooLong {
        /// The path.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// Something that is not a socket is in the way; we never remove it.
    #[error(
        "socket path {path:?} exists and is {kind}; refusing to remove it (only a stale socket is replaced)"
    )]
    NotASocket {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// `socket_group` names no group.
    #[error("unknown group {0:?} for the collector socket")]
    UnknownGroup(String),
    /// An I/O error, with what we were doing.
    #[error("{context} {path:?}: {source}")]
    Io {
        /// What we were doing.
        context: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The configuration is unusable.
    #[error("invalid collector configuration: {0}")]
    Config(String),
    /// The receive thread could not be started or died.
    #[error("collector receive thread: {0}")]
    Thread(String),
    /// At shutdown the store kept failing; these counts were not stored.
    #[error("final flush failed, {sessions} session outcomes not stored: {message}")]
    FinalFlush {
        /// Policy outcomes lost.
        sessions: u64,
        /// The last store error.
        message: String,
    },
}

/// The source of "now", injectable so tests can cross midnight.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
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

/// A bound collector, ready to [`run`](Collector::run).
pub struct Collector {
    socket: socket2::Socket,
    config: CollectorConfig,
    stats: Arc<Stats>,
    clock: Arc<dyn Clock>,
    dumper: Option<dump::Dumper>,
    /// (device, inode) of the socket file we bound, so that at the end we remove our own
    /// socket and never one another process bound at the same path since.
    bound_file: Option<(u64, u64)>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Binds the socket and prepares the dump directory. Nothing is received until
/// [`Collector::run`].
pub fn bind(config: CollectorConfig) -> Result<Collector, CollectorError> {
    if config.flush_interval.is_zero() {
        return Err(CollectorError::Config("flush_interval must be > 0".into()));
    }
    if config.max_datagram_bytes == 0 || config.max_datagram_bytes > 16 * 1024 * 1024 {
        return Err(CollectorError::Config(
            "max_datagram_bytes must be between 1 and 16 MiB".into(),
        ));
    }
    let dumper = match &config.dump_dir {
        Some(dir) => Some(dump::Dumper::open(dir, config.dump_max_bytes)?),
        None => None,
    };
    let (socket, effective) = socket::bind(
        &config.socket,
        config.socket_mode,
        config.socket_group.as_deref(),
        config.recv_buffer_bytes,
    )?;
    let stats = Arc::new(Stats::default());
    stats.recv_buffer_bytes.store(effective as u64, Relaxed);
    let bound_file = std::fs::symlink_metadata(&config.socket)
        .ok()
        .map(|m| (m.dev(), m.ino()));
    Ok(Collector {
        socket,
        config,
        stats,
        clock: Arc::new(SystemClock),
        dumper,
        bound_file,
    })
}

impl Collector {
    /// The counters, shareable with a metrics endpoint.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Uses `clock` instead of the system clock for the day of receipt (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.config.socket
    }

    /// Receives until `shutdown` completes, then drains the socket (for at most 2 s), makes a
    /// final flush, removes the socket file (only if it is still the one bound here) and
    /// returns. Dropping this future also stops the receive thread.
    ///
    /// Returns an error only when the final flush could not store everything (the counts
    /// lost are in the error) or the receive thread could not run.
    pub async fn run<S: CounterSink>(
        self,
        sink: Arc<S>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), CollectorError> {
        let (tx, rx) = mpsc::unbounded_channel::<RawDelta>();
        let stop = Arc::new(AtomicBool::new(false));
        let receiver = Receiver {
            socket: self.socket,
            // Zeroed allocation: pages no datagram reached are never touched, so the
            // batch costs memory only for what arrives (Postfix datagrams are < 4 KiB).
            bufs: vec![0u8; self.config.max_datagram_bytes * socket::BATCH],
            lens: [(0, false); socket::BATCH],
            max: self.config.max_datagram_bytes,
            flush_interval: self.config.flush_interval,
            stats: Arc::clone(&self.stats),
            clock: self.clock,
            dumper: self.dumper,
            tx,
            stop: Arc::clone(&stop),
            agg: Aggregator::new(),
            limiter: LogLimiter::default(),
            day_cache: None,
        };
        // If this future is dropped before it finishes, the thread still stops (and drains).
        let _guard = StopOnDrop(Arc::clone(&stop));
        let handle = std::thread::Builder::new()
            .name("tlsrpt-collector-recv".into())
            .spawn(move || receiver.run())
            .map_err(|e| CollectorError::Thread(e.to_string()))?;
        let writer = writer_loop(
            rx,
            sink,
            Arc::clone(&self.stats),
            self.config.flush_interval,
        );
        tokio::pin!(writer);
        tokio::pin!(shutdown);
        let mut stopping = false;
        let result = loop {
            tokio::select! {
                res = &mut writer => break res,
                () = &mut shutdown, if !stopping => {
                    tracing::info!("collector shutting down: draining the socket");
                    stop.store(true, Relaxed);
                    stopping = true;
                }
            }
        };
        // The writer only ends once the receive thread dropped its sender, so this join is
        // immediate; do it off the runtime anyway.
        stop.store(true, Relaxed);
        let joined = tokio::task::spawn_blocking(move || handle.join()).await;
        remove_own_socket(&self.config.socket, self.bound_file);
        if !matches!(joined, Ok(Ok(()))) {
            return Err(CollectorError::Thread("receive thread panicked".into()));
        }
        result
    }
}

/// Removes the socket file at `path` if it is still the one we bound: senders then get
/// `ENOENT` instead of queueing into a socket nobody reads, and the next start has no stale
/// file to replace.
fn remove_own_socket(path: &Path, bound: Option<(u64, u64)>) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.file_type().is_socket()
        && Some((meta.dev(), meta.ino())) == bound
        && let Err(e) = std::fs::remove_file(path)
    {
        tracing::warn!(path = %path.display(), error = %e, "could not remove the collector socket");
    }
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Relaxed);
    }
}

/// Per-reason log rate limiting.
#[derive(Default)]
struct LogLimiter {
    last: [Option<Instant>; Reason::ALL.len()],
    suppressed: [u64; Reason::ALL.len()],
}

impl LogLimiter {
    /// `Some(suppressed since the last line)` when a line may be logged now.
    fn allow(&mut self, reason: Reason, now: Instant) -> Option<u64> {
        let i = reason as usize;
        let (Some(last), Some(supp)) = (self.last.get_mut(i), self.suppressed.get_mut(i)) else {
            return None;
        };
        match last {
            Some(t) if now.duration_since(*t) < LOG_EVERY => {
                *supp += 1;
                None
            }
            _ => {
                *last = Some(now);
                Some(std::mem::take(supp))
            }
        }
    }
}

/// The receive thread's state.
struct Receiver {
    socket: socket2::Socket,
    /// [`socket::BATCH`] receive slots of `max` bytes each.
    bufs: Vec<u8>,
    /// (length, truncated) of each slot filled by the last batch.
    lens: [(usize, bool); socket::BATCH],
    max: usize,
    flush_interval: Duration,
    stats: Arc<Stats>,
    clock: Arc<dyn Clock>,
    dumper: Option<dump::Dumper>,
    tx: mpsc::UnboundedSender<RawDelta>,
    stop: Arc<AtomicBool>,
    agg: Aggregator,
    limiter: LogLimiter,
    /// (unix day number, date) of the last datagram, to skip calendar math per datagram.
    day_cache: Option<(i64, Date)>,
}

impl Receiver {
    fn run(mut self) {
        if let Err(e) = self.socket.set_read_timeout(Some(RECV_TIMEOUT)) {
            tracing::error!(error = %e, "cannot set the socket read timeout; shutdown may wait for the next datagram");
        }
        let mut next_flush = Instant::now() + self.flush_interval;
        let mut recv_err_limiter = LogLimiter::default();
        let mut drain_until: Option<Instant> = None;
        loop {
            let stopping = self.stop.load(Relaxed);
            if stopping {
                let until = *drain_until.get_or_insert_with(|| Instant::now() + MAX_DRAIN);
                if Instant::now() >= until {
                    tracing::warn!(
                        "collector still receiving after {MAX_DRAIN:?} of draining; stopping anyway"
                    );
                    break;
                }
            }
            match socket::recv_batch(
                self.socket.as_fd(),
                &mut self.bufs,
                self.max,
                &mut self.lens,
                stopping,
            ) {
                Ok(got) => {
                    for i in 0..got.min(socket::BATCH) {
                        let (n, truncated) = self.lens.get(i).copied().unwrap_or((0, true));
                        self.handle(i, n, truncated);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    if stopping {
                        // Drained: nothing more is queued.
                        break;
                    }
                }
                Err(e) => {
                    self.stats.recv_errors.fetch_add(1, Relaxed);
                    if let Some(supp) = recv_err_limiter.allow(Reason::InvalidJson, Instant::now())
                    {
                        tracing::error!(error = %e, suppressed = supp, "collector socket read failed; retrying");
                    }
                    if stopping {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            let now = Instant::now();
            if now >= next_flush {
                self.flush();
                next_flush = now + self.flush_interval;
            }
        }
        self.flush();
        tracing::info!("collector receive thread stopped");
    }

    fn today(&mut self) -> Date {
        let now = self.clock.now();
        let day_no = now.as_second().div_euclid(86_400);
        match self.day_cache {
            Some((n, d)) if n == day_no => d,
            _ => {
                let d = TimeZone::UTC.to_datetime(now).date();
                self.day_cache = Some((day_no, d));
                d
            }
        }
    }

    /// The bytes of receive slot `slot` (first `n`).
    fn slot_bytes(bufs: &[u8], max: usize, slot: usize, n: usize) -> &[u8] {
        let start = slot.saturating_mul(max);
        bufs.get(start..start.saturating_add(n.min(max)))
            .unwrap_or(&[])
    }

    fn handle(&mut self, slot: usize, n: usize, truncated: bool) {
        self.stats.received.fetch_add(1, Relaxed);
        let day = self.today();
        if self.agg.day().is_some_and(|held| held != day) {
            // UTC day rollover: the held counts belong to the previous day.
            self.flush();
        }
        let bytes = Self::slot_bytes(&self.bufs, self.max, slot, n);
        let result = if truncated {
            Err(DatagramError::Truncated { buffer: self.max })
        } else {
            datagram::decode_with_limit(bytes, self.max).and_then(|d| {
                let sessions = d.policy_count() as u64;
                self.agg.add(day, &d).map(|()| sessions)
            })
        };
        match result {
            Ok(sessions) => {
                self.stats.decoded.fetch_add(1, Relaxed);
                self.stats.sessions.fetch_add(sessions, Relaxed);
                self.stats.pending_sessions.fetch_add(sessions, Relaxed);
                if self.agg.key_count() >= MAX_KEYS_PER_DELTA {
                    self.flush();
                }
            }
            Err(e) => self.bad(&e, slot, n),
        }
    }

    fn bad(&mut self, e: &DatagramError, slot: usize, n: usize) {
        let reason = e.kind();
        self.stats.count_invalid(reason);
        if let Some(suppressed) = self.limiter.allow(reason, Instant::now()) {
            tracing::warn!(
                reason = reason.as_str(),
                error = %e,
                bytes = n,
                suppressed,
                "bad datagram ignored"
            );
        }
        if let Some(d) = &mut self.dumper {
            let bytes = Self::slot_bytes(&self.bufs, self.max, slot, n);
            match d.dump(reason, bytes) {
                Ok(true) => {
                    self.stats.dumped.fetch_add(1, Relaxed);
                }
                Ok(false) => {
                    self.stats.dump_skipped.fetch_add(1, Relaxed);
                }
                Err(err) => {
                    self.stats.dump_skipped.fetch_add(1, Relaxed);
                    tracing::warn!(error = %err, "could not save bad datagram to the dump directory");
                }
            }
        }
    }

    fn flush(&mut self) {
        if self.agg.is_empty() {
            return;
        }
        let delta = self.agg.take();
        self.stats.deltas.fetch_add(1, Relaxed);
        if self.tx.send(delta).is_err() {
            // Only possible if the writer task is gone (runtime shutting down).
            tracing::error!("collector writer task is gone; counts dropped");
        }
    }
}

/// Receives deltas and merges them into the pending set (still in the compact raw form),
/// then writes the pending set to the sink in chunks, retrying with back-off on failure. Ends
/// when the receive thread has dropped its sender and the final flush was attempted.
async fn writer_loop<S: CounterSink>(
    mut rx: mpsc::UnboundedReceiver<RawDelta>,
    sink: Arc<S>,
    stats: Arc<Stats>,
    flush_interval: Duration,
) -> Result<(), CollectorError> {
    let mut pending: BTreeMap<Date, RawDelta> = BTreeMap::new();
    let mut retry_delay = flush_interval;
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut last_error_log: Option<Instant> = None;
    let mut errors_since_log = 0u64;
    let mut last_error = String::new();
    loop {
        let sleep_until = retry_at;
        let received = tokio::select! {
            msg = rx.recv() => Some(msg),
            () = async {
                match sleep_until {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => None,
        };
        let closed = matches!(received, Some(None));
        if let Some(Some(delta)) = received {
            absorb(&mut pending, delta);
            // Take everything already queued, so a slow store gets one write per round.
            while let Ok(more) = rx.try_recv() {
                absorb(&mut pending, more);
            }
            if retry_at.is_some_and(|t| tokio::time::Instant::now() < t) {
                // Still backing off: keep merging, write when the back-off ends.
                continue;
            }
        }
        if closed {
            break;
        }
        if pending.is_empty() {
            retry_at = None;
            continue;
        }
        let written_keys: usize = pending.values().map(RawDelta::key_count).sum();
        let result = write_pending(&mut pending, sink.as_ref(), &stats).await;
        if written_keys >= TRIM_AFTER_KEYS {
            release_free_memory();
        }
        match result {
            Ok(()) => {
                if errors_since_log > 0 || retry_at.is_some() {
                    tracing::info!(failed_attempts = errors_since_log, "store writes recovered");
                }
                retry_at = None;
                retry_delay = flush_interval;
                errors_since_log = 0;
            }
            Err(e) => {
                stats.flush_errors.fetch_add(1, Relaxed);
                errors_since_log += 1;
                let now = Instant::now();
                if last_error_log.is_none_or(|t| now.duration_since(t) >= LOG_EVERY) {
                    tracing::error!(
                        error = %e,
                        pending_sessions = pending_sessions(&pending),
                        failed_attempts = errors_since_log,
                        retry_in_ms = retry_delay.as_millis() as u64,
                        "could not store collector counters; keeping them in memory and retrying"
                    );
                    last_error_log = Some(now);
                }
                last_error = e;
                retry_at = Some(tokio::time::Instant::now() + retry_delay);
                retry_delay = (retry_delay * 2).min(MAX_RETRY_DELAY);
            }
        }
    }
    // Final flush: the receive thread has drained the socket and sent its last delta.
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=FINAL_FLUSH_ATTEMPTS {
        if pending.is_empty() {
            return Ok(());
        }
        match write_pending(&mut pending, sink.as_ref(), &stats).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                stats.flush_errors.fetch_add(1, Relaxed);
                tracing::error!(error = %e, attempt, "final flush of collector counters failed");
                last_error = e;
                if attempt < FINAL_FLUSH_ATTEMPTS {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
    }
    Err(CollectorError::FinalFlush {
        sessions: pending_sessions(&pending),
        message: last_error,
    })
}

/// Most keys converted to a [`Tally`] and written in one sink call. A tally costs about
/// 2.2 KB per key (each one-policy inner map is a full B-tree node) against about 380 bytes
/// for the raw form, so writing in small chunks keeps a large pending set (100,000 new
/// domains, or a backlog after a store outage) from multiplying the daemon's memory at the
/// moment it is written: 16,384-key chunks cost ~36 MB each and drove RSS to 210 MB. Each
/// chunk is one all-or-nothing sink call; a failed chunk and the ones after it go back to the
/// pending set, so nothing is lost or counted twice.
const WRITE_CHUNK_KEYS: usize = 1024;

async fn write_pending<S: CounterSink>(
    pending: &mut BTreeMap<Date, RawDelta>,
    sink: &S,
    stats: &Stats,
) -> Result<(), String> {
    let mut queue: VecDeque<RawDelta> = VecDeque::new();
    for (_, delta) in std::mem::take(pending) {
        queue.extend(delta.into_chunks(WRITE_CHUNK_KEYS));
    }
    while let Some(chunk) = queue.pop_front() {
        let (tally, skipped) = chunk.to_tally();
        if skipped > 0 {
            stats.conversion_errors.fetch_add(skipped as u64, Relaxed);
            tracing::error!(skipped, "collector keys could not be decoded back (bug)");
        }
        let result = sink.add_counters(&tally).await;
        drop(tally);
        match result {
            Ok(()) => stored(stats, chunk.sessions()),
            Err(e) => {
                absorb(pending, chunk);
                for rest in queue {
                    absorb(pending, rest);
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

/// A write round of at least this many keys is followed by [`release_free_memory`].
const TRIM_AFTER_KEYS: usize = 4 * 1024;

/// Hands freed heap memory back to the kernel after a large write round. The receive thread
/// allocates a delta and the writer frees it (and the tallies built from it) on other
/// threads, so glibc keeps the freed pages in its arenas: without this the daemon's RSS
/// stays nearer its peak after a burst of new keys (measured 106 MB instead of 87 MB after
/// 100,000 new domains). Cheap next to a store write (one walk of the free lists).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only inspects and releases free heap memory; it takes an integer
    // and touches no Rust-owned data.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn absorb(pending: &mut BTreeMap<Date, RawDelta>, delta: RawDelta) {
    if let Some(day) = delta.day {
        pending.entry(day).or_default().merge(delta);
    }
}

fn pending_sessions(pending: &BTreeMap<Date, RawDelta>) -> u64 {
    pending.values().map(RawDelta::sessions).sum()
}

fn stored(stats: &Stats, sessions: u64) {
    stats.flushes.fetch_add(1, Relaxed);
    stats.flushed_sessions.fetch_add(sessions, Relaxed);
    let _ = stats
        .pending_sessions
        .fetch_update(Relaxed, Relaxed, |p| Some(p.saturating_sub(sessions)));
    stats
        .last_flush_unix_ms
        .store(Timestamp::now().as_millisecond(), Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_limiter_allows_one_line_per_reason_per_interval() {
        let mut l = LogLimiter::default();
        let t0 = Instant::now();
        assert_eq!(l.allow(Reason::InvalidJson, t0), Some(0));
        assert_eq!(
            l.allow(Reason::InvalidJson, t0 + Duration::from_secs(1)),
            None
        );
        assert_eq!(
            l.allow(Reason::InvalidJson, t0 + Duration::from_secs(9)),
            None
        );
        // Another reason has its own budget.
        assert_eq!(
            l.allow(Reason::TMismatch, t0 + Duration::from_secs(9)),
            Some(0)
        );
        // After the interval: one line, saying how many were suppressed.
        assert_eq!(l.allow(Reason::InvalidJson, t0 + LOG_EVERY), Some(2));
        assert_eq!(l.allow(Reason::InvalidJson, t0 + LOG_EVERY), None);
    }
}
