//! Whole-process memory of a collector holding 100,000 distinct counter keys.
//!
//! Worst case on purpose: the store is down for the whole run, so every key stays pending in
//! memory (the writer's merged tally) while the receive loop keeps aggregating. Prints VmRSS
//! and VmHWM (peak) from /proc/self/status.
//!
//! `cargo run -p tlsrpt-collector --example memory --release [-- --healthy | --tally-only]`
//!
//! `--healthy` lets the stand-in store accept (and discard) every write; `--tally-only`
//! measures a plain `Tally` holding the same keys, for comparison.

use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicBool, Ordering};

use tlsrpt_collector::{CollectorConfig, CounterSink, bind};

/// A store stand-in that fails while told to and otherwise discards the counts, so the
/// measurement is of the collector alone.
#[derive(Default)]
struct DiscardSink {
    failing: AtomicBool,
}

impl CounterSink for DiscardSink {
    async fn add_counters(&self, _delta: &tlsrpt_core::tally::Tally) -> Result<(), String> {
        if self.failing.load(Ordering::Relaxed) {
            Err("store down".into())
        } else {
            Ok(())
        }
    }
}
use tlsrpt_core::datagram::{DatagramBuf, FailureBuf, PolicyBuf};
use tlsrpt_core::{PolicyType, ResultType};

fn status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn datagram(i: u32) -> Vec<u8> {
    let dom = format!("domain{}.example", i % 1000);
    let mut dg = DatagramBuf::new(&dom, format!("v=TLSRPTv1; rua=mailto:tlsrpt@{dom}"));
    let mut p = PolicyBuf::new(&PolicyType::Sts, Some(&dom));
    p.policy_strings = vec!["version: STSv1".into(), "mode: enforce".into()];
    p.mx_hosts = vec![format!("*.{dom}")];
    p.push_failure(FailureBuf {
        sending_mta_ip: Some(format!(
            "10.{}.{}.{}",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        )),
        receiving_mx_hostname: Some(format!("mx.{dom}")),
        receiving_mx_helo: Some(format!("250-mx.{dom}\r\n250-PIPELINING\r\n250 STARTTLS")),
        receiving_ip: Some("198.51.100.7".into()),
        failure_reason_code: Some("self-signed_certificate".into()),
        ..FailureBuf::new(&ResultType::ValidationFailure)
    });
    dg.policies.push(p);
    dg.encode()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = CollectorConfig {
        socket: dir.path().join("tlsrpt.sock"),
        ..CollectorConfig::default()
    };
    let path = cfg.socket.clone();
    let c = bind(cfg).expect("bind");
    let stats = c.stats();
    let sink = Arc::new(DiscardSink::default());
    let healthy = std::env::args().any(|a| a == "--healthy");
    sink.failing.store(!healthy, Ordering::Relaxed);
    eprintln!("start: VmRSS {}", status("VmRSS"));
    if std::env::args().any(|a| a == "--tally-only") {
        let mut t = tlsrpt_core::tally::Tally::new();
        let day = jiff::civil::date(2026, 11, 28);
        for i in 0..100_000 {
            let b = datagram(i);
            t.add_datagram(day, &tlsrpt_core::datagram::decode(&b).expect("decode"))
                .expect("add");
        }
        eprintln!(
            "tally only, {} keys: VmRSS {}",
            t.key_count(),
            status("VmRSS")
        );
        return;
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(c.run(Arc::clone(&sink), async move {
        let _ = rx.await;
    }));
    let n = 100_000u32;
    tokio::task::spawn_blocking(move || {
        let s = UnixDatagram::unbound().expect("socket");
        for i in 0..n {
            s.send_to(&datagram(i), &path).expect("send");
        }
    })
    .await
    .expect("sender");
    while stats.decoded.load(std::sync::atomic::Ordering::Relaxed) < u64::from(n) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let the writer absorb the last deltas (it retries against the failing store).
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!(
        "after {n} distinct failure keys ({}): VmRSS {}  VmHWM {}  (flush errors {})",
        if healthy {
            "store healthy"
        } else {
            "store down, all pending"
        },
        status("VmRSS"),
        status("VmHWM"),
        stats
            .flush_errors
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    sink.failing.store(false, Ordering::Relaxed);
    let _ = tx.send(());
    let _ = run.await;
}
