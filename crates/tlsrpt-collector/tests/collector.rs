//! The collector against a real Unix datagram socket in a temporary directory.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::civil::{Date, date};
use tlsrpt_collector::{
    Clock, Collector, CollectorConfig, CollectorError, CounterSink, MemorySink, Stats, bind,
};
use tlsrpt_core::datagram::{DatagramBuf, FailureBuf, PolicyBuf, Reason, decode};
use tlsrpt_core::tally::Tally;
use tlsrpt_core::{PolicyType, ResultType};
use tokio::sync::oneshot;

struct FakeClock(Mutex<Timestamp>);

impl FakeClock {
    fn at(s: &str) -> Arc<FakeClock> {
        Arc::new(FakeClock(Mutex::new(s.parse().unwrap())))
    }
    fn set(&self, s: &str) {
        *self.0.lock().unwrap() = s.parse().unwrap();
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

const DAY: Date = date(2026, 11, 28);

fn config(dir: &Path) -> CollectorConfig {
    CollectorConfig {
        socket: dir.join("tlsrpt.sock"),
        socket_mode: None,
        socket_group: None,
        flush_interval: Duration::from_millis(50),
        dump_dir: None,
        dump_max_bytes: 1 << 20,
        max_datagram_bytes: 64 * 1024,
        recv_buffer_bytes: 1 << 20,
    }
}

fn good(i: usize) -> Vec<u8> {
    let domain = format!("d{}.example", i % 7);
    let mut dg = DatagramBuf::new(&domain, format!("v=TLSRPTv1; rua=mailto:r@{domain}"));
    let mut p = PolicyBuf::new(&PolicyType::Sts, Some(&domain));
    p.mx_hosts.push(format!("*.{domain}"));
    if i.is_multiple_of(3) {
        p.push_failure(FailureBuf {
            sending_mta_ip: Some(format!("192.0.2.{}", i % 5)),
            receiving_mx_helo: Some(format!("250-mx.{domain}\r\n250 STARTTLS")),
            failure_reason_code: Some("self-signed_certificate".into()),
            ..FailureBuf::new(&ResultType::ValidationFailure)
        });
    }
    dg.policies.push(p);
    if i.is_multiple_of(4) {
        dg.policies.push(PolicyBuf::new(
            &PolicyType::Tlsa,
            Some(&format!("mx.{domain}")),
        ));
    }
    dg.encode()
}

fn expected(day: Date, dgs: &[Vec<u8>]) -> Tally {
    let mut t = Tally::new();
    for d in dgs {
        t.add_datagram(day, &decode(d).unwrap()).unwrap();
    }
    t
}

fn send(path: &Path, bytes: &[u8]) {
    let s = UnixDatagram::unbound().unwrap();
    s.send_to(bytes, path).unwrap();
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Starts the collector; returns the stats, the shutdown trigger and the join handle.
fn start<S: CounterSink>(
    c: Collector,
    sink: Arc<S>,
) -> (
    Arc<Stats>,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), CollectorError>>,
) {
    let stats = c.stats();
    let (tx, rx) = oneshot::channel::<()>();
    let h = tokio::spawn(c.run(sink, async move {
        let _ = rx.await;
    }));
    (stats, tx, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_and_bad_interleaved_all_counted() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump");
    std::fs::create_dir(&dump).unwrap();
    let mut cfg = config(dir.path());
    cfg.dump_dir = Some(dump.clone());
    cfg.max_datagram_bytes = 4096;
    let c = bind(cfg.clone())
        .unwrap()
        .with_clock(FakeClock::at("2026-11-28T12:00:00Z"));
    let sink = Arc::new(MemorySink::new());
    let (stats, stop, h) = start(c, Arc::clone(&sink));

    let bad: Vec<(Vec<u8>, Reason)> = vec![
        (b"{\"d\": \"\xff\xfe\"}".to_vec(), Reason::InvalidUtf8),
        (b"{not json".to_vec(), Reason::InvalidJson),
        (br#"{"dpv": "9","d": "x.org","pr": "v=TLSRPTv1;","policies":[{"policy-type":2,"t":0,"f":0}]}"#.to_vec(), Reason::UnknownDpv),
        (br#"{"d": "x.org","pr": "v=TLSRPTv1;","policies":[{"policy-type":5,"t":0,"f":0}]}"#.to_vec(), Reason::UnknownPolicyType),
        (br#"{"d": "x.org","pr": "v=TLSRPTv1;","policies":[{"policy-type":2,"t":3,"f":1}]}"#.to_vec(), Reason::TMismatch),
        (br#"{"d": "x..org","pr": "v=TLSRPTv1;","policies":[{"policy-type":2,"t":0,"f":0}]}"#.to_vec(), Reason::InvalidDomain),
        (vec![b' '; 5000], Reason::Truncated),
    ];
    let mut goods = Vec::new();
    for i in 0..200 {
        let g = good(i);
        send(&cfg.socket, &g);
        goods.push(g);
        if i.is_multiple_of(20) {
            let (b, _) = &bad[(i / 20) % bad.len()];
            send(&cfg.socket, b);
        }
    }
    for (b, _) in &bad {
        send(&cfg.socket, b);
    }
    wait_for("all datagrams", || {
        stats.received.load(std::sync::atomic::Ordering::Relaxed) == 217
    })
    .await;
    stop.send(()).unwrap();
    h.await.unwrap().unwrap();

    assert_eq!(sink.tally(), expected(DAY, &goods));
    assert_eq!(
        stats.decoded.load(std::sync::atomic::Ordering::Relaxed),
        200
    );
    assert_eq!(stats.invalid_total(), 17);
    // 10 interleaved (i = 0, 20, …, 180 → bad[0..=6], bad[0..=2]) plus one of each.
    for (k, (_, reason)) in bad.iter().enumerate() {
        let interleaved = (0..10).filter(|j| j % bad.len() == k).count() as u64;
        assert_eq!(stats.invalid(*reason), interleaved + 1, "{reason}");
    }
    let dumped: Vec<_> = std::fs::read_dir(&dump).unwrap().collect();
    assert_eq!(dumped.len(), 17);
    assert_eq!(stats.dumped.load(std::sync::atomic::Ordering::Relaxed), 17);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_directory_size_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump");
    std::fs::create_dir(&dump).unwrap();
    let mut cfg = config(dir.path());
    cfg.dump_dir = Some(dump.clone());
    cfg.dump_max_bytes = 25;
    let c = bind(cfg.clone()).unwrap();
    let sink = Arc::new(MemorySink::new());
    let (stats, stop, h) = start(c, sink);
    for _ in 0..5 {
        send(&cfg.socket, b"0123456789"); // 10 bytes of invalid JSON each
    }
    wait_for("5 datagrams", || stats.invalid_total() == 5).await;
    stop.send(()).unwrap();
    h.await.unwrap().unwrap();
    let total: u64 = std::fs::read_dir(&dump)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(total, 20);
    assert_eq!(
        stats
            .dump_skipped
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_socket_is_replaced_but_other_files_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let first = bind(cfg.clone()).unwrap();
    drop(first); // leaves the socket file behind, like a crash
    assert!(cfg.socket.exists());
    let second = bind(cfg.clone()).unwrap();
    // The new socket receives.
    let sink = Arc::new(MemorySink::new());
    let (stats, stop, h) = start(second, Arc::clone(&sink));
    send(&cfg.socket, &good(1));
    wait_for("one datagram", || {
        stats.decoded.load(std::sync::atomic::Ordering::Relaxed) == 1
    })
    .await;
    stop.send(()).unwrap();
    h.await.unwrap().unwrap();

    let file = dir.path().join("regular");
    std::fs::write(&file, b"keep me").unwrap();
    let mut c = config(dir.path());
    c.socket = file.clone();
    let e = bind(c).unwrap_err();
    assert!(
        matches!(
            e,
            CollectorError::NotASocket {
                kind: "a regular file",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");

    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let mut c = config(dir.path());
    c.socket = sub.clone();
    let e = bind(c).unwrap_err();
    assert!(
        matches!(
            e,
            CollectorError::NotASocket {
                kind: "a directory",
                ..
            }
        ),
        "{e}"
    );
    assert!(sub.is_dir());

    // Nothing else is created: a missing parent directory is an error.
    let mut c = config(dir.path());
    c.socket = dir.path().join("missing/tlsrpt.sock");
    assert!(matches!(bind(c).unwrap_err(), CollectorError::Io { .. }));
    assert!(!dir.path().join("missing").exists());

    let mut c = config(dir.path());
    c.socket = PathBuf::from(format!("/tmp/{}", "x".repeat(120)));
    assert!(matches!(
        bind(c).unwrap_err(),
        CollectorError::SocketPathTooLong { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mode_and_group_are_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.socket_mode = Some(0o620);
    let gid = std::fs::metadata(dir.path()).unwrap().gid();
    cfg.socket_group = Some(gid.to_string());
    let _c = bind(cfg.clone()).unwrap();
    let meta = std::fs::metadata(&cfg.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o620);
    assert_eq!(meta.gid(), gid);

    // Group names are looked up with getgrnam_r; every system has "root" as gid 0.
    assert_eq!(tlsrpt_collector::socket::lookup_group("root").unwrap(), 0);
    let mut bad = config(dir.path());
    bad.socket = dir.path().join("other.sock");
    bad.socket_group = Some("no-such-group-tlsrpt".into());
    let e = bind(bad.clone()).unwrap_err();
    assert!(matches!(e, CollectorError::UnknownGroup(_)), "{e}");
    assert!(
        !bad.socket.exists(),
        "nothing is bound when the group is unknown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpt_02_utc_day_rollover_with_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.flush_interval = Duration::from_secs(3600); // only rollover and shutdown flush
    let clock = FakeClock::at("2026-11-28T23:59:59.9Z");
    let c = bind(cfg.clone()).unwrap().with_clock(clock.clone());
    let sink = Arc::new(MemorySink::new());
    let (stats, stop, h) = start(c, Arc::clone(&sink));
    let load = |s: &Stats| s.decoded.load(std::sync::atomic::Ordering::Relaxed);
    send(&cfg.socket, &good(1));
    send(&cfg.socket, &good(2));
    wait_for("2 datagrams", || load(&stats) == 2).await;
    clock.set("2026-11-29T00:00:00Z");
    send(&cfg.socket, &good(1));
    wait_for("3 datagrams", || load(&stats) == 3).await;
    // The rollover flushed day N without waiting for the (hour-long) interval.
    wait_for("rollover flush", || sink.calls() >= 1).await;
    stop.send(()).unwrap();
    h.await.unwrap().unwrap();

    let mut want = expected(DAY, &[good(1), good(2)]);
    want.merge(&expected(date(2026, 11, 29), &[good(1)]));
    assert_eq!(sink.tally(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_failure_then_recovery_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let c = bind(cfg.clone())
        .unwrap()
        .with_clock(FakeClock::at("2026-11-28T08:00:00Z"));
    let sink = Arc::new(MemorySink::new());
    sink.set_failing(true);
    let (stats, stop, h) = start(c, Arc::clone(&sink));
    let mut goods = Vec::new();
    for i in 0..30 {
        goods.push(good(i));
        send(&cfg.socket, goods.last().unwrap());
    }
    let errs = |s: &Stats| s.flush_errors.load(std::sync::atomic::Ordering::Relaxed);
    wait_for("a failed flush", || errs(&stats) >= 1).await;
    // Receiving goes on while the store is down.
    for i in 30..60 {
        goods.push(good(i));
        send(&cfg.socket, goods.last().unwrap());
    }
    wait_for("60 decoded", || {
        stats.decoded.load(std::sync::atomic::Ordering::Relaxed) == 60
    })
    .await;
    wait_for("a second failed flush", || errs(&stats) >= 2).await;
    sink.set_failing(false);
    wait_for("recovery", || {
        stats.flushes.load(std::sync::atomic::Ordering::Relaxed) >= 1
    })
    .await;
    stop.send(()).unwrap();
    h.await.unwrap().unwrap();
    assert_eq!(sink.tally(), expected(DAY, &goods));
    assert_eq!(
        stats
            .pending_sessions
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.flush_interval = Duration::from_secs(3600);
    let c = bind(cfg.clone())
        .unwrap()
        .with_clock(FakeClock::at("2026-11-28T08:00:00Z"));
    let sink = Arc::new(MemorySink::new());
    let (stats, stop, h) = start(c, Arc::clone(&sink));
    let goods: Vec<_> = (0..50).map(good).collect();
    for g in &goods {
        send(&cfg.socket, g);
    }
    // Shut down without waiting: datagrams still queued in the socket are drained first.
    stop.send(()).unwrap();
    h.await.unwrap().unwrap();
    assert_eq!(
        stats.received.load(std::sync::atomic::Ordering::Relaxed),
        50
    );
    assert_eq!(sink.tally(), expected(DAY, &goods));
    assert_eq!(sink.calls(), 1, "one final flush");
    assert!(
        !cfg.socket.exists(),
        "our socket file is removed at the end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_a_dead_store_reports_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.flush_interval = Duration::from_secs(3600);
    let c = bind(cfg.clone()).unwrap();
    let sink = Arc::new(MemorySink::new());
    sink.set_failing(true);
    let (stats, stop, h) = start(c, Arc::clone(&sink));
    send(&cfg.socket, &good(4)); // sts + tlsa: 2 outcomes
    wait_for("decoded", || {
        stats.decoded.load(std::sync::atomic::Ordering::Relaxed) == 1
    })
    .await;
    stop.send(()).unwrap();
    let e = h.await.unwrap().unwrap_err();
    assert!(
        matches!(e, CollectorError::FinalFlush { sessions: 2, .. }),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_sqlite_store_receives_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let url = format!("sqlite://{}", dir.path().join("tlsrpt.db").display());
    let store = Arc::new(tlsrpt_store::Store::open(&url).await.unwrap());
    let c = bind(cfg.clone())
        .unwrap()
        .with_clock(FakeClock::at("2026-11-28T08:00:00Z"));
    let (stats, stop, h) = start(c, Arc::clone(&store));
    let goods: Vec<_> = (0..40).map(good).collect();
    for g in &goods[..20] {
        send(&cfg.socket, g);
    }
    wait_for("a flush", || {
        stats.flushes.load(std::sync::atomic::Ordering::Relaxed) >= 1
    })
    .await;
    for g in &goods[20..] {
        send(&cfg.socket, g);
    }
    stop.send(()).unwrap();
    h.await.unwrap().unwrap();
    let stored = store.load_tally(DAY, None).await.unwrap();
    assert_eq!(stored, expected(DAY, &goods));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_bound_by_someone_else_meanwhile_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let c = bind(cfg.clone()).unwrap();
    let sink = Arc::new(MemorySink::new());
    let (_stats, stop, h) = start(c, sink);
    // Another instance replaces the socket (stale-socket removal + bind).
    let other = bind(cfg.clone()).unwrap();
    stop.send(()).unwrap();
    h.await.unwrap().unwrap();
    assert!(
        cfg.socket.exists(),
        "the other instance's socket must survive"
    );
    drop(other);
}

/// A sink that blocks until the test opens the gate.
struct GateSink {
    inner: MemorySink,
    gate: tokio::sync::Semaphore,
}

impl CounterSink for GateSink {
    async fn add_counters(&self, delta: &Tally) -> Result<(), String> {
        let permit = self.gate.acquire().await.map_err(|e| e.to_string())?;
        permit.forget();
        self.inner.add_counters(delta).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiving_never_waits_on_a_stuck_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.flush_interval = Duration::from_millis(10);
    let c = bind(cfg.clone())
        .unwrap()
        .with_clock(FakeClock::at("2026-11-28T08:00:00Z"));
    let sink = Arc::new(GateSink {
        inner: MemorySink::new(),
        gate: tokio::sync::Semaphore::new(0),
    });
    let (stats, stop, h) = start(c, Arc::clone(&sink));
    // The store is stuck on its first write. Blocking sends of far more datagrams than the
    // kernel queue holds (max_dgram_qlen is 10) only finish if the receive loop keeps reading.
    let path = cfg.socket.clone();
    let goods: Vec<_> = (0..5000).map(good).collect();
    let to_send = goods.clone();
    tokio::task::spawn_blocking(move || {
        for g in &to_send {
            send(&path, g);
        }
    })
    .await
    .unwrap();
    wait_for("5000 decoded", || {
        stats.decoded.load(std::sync::atomic::Ordering::Relaxed) == 5000
    })
    .await;
    assert_eq!(stats.flushes.load(std::sync::atomic::Ordering::Relaxed), 0);
    sink.gate.add_permits(1_000);
    stop.send(()).unwrap();
    h.await.unwrap().unwrap();
    assert_eq!(sink.inner.tally(), expected(DAY, &goods));
}
