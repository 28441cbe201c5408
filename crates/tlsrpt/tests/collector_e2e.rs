//! End to end: `tlsrpt serve` (collector) ← `tlsrpt simulate` datagrams → store →
//! `tlsrpt report preview --json`, as separate processes, exactly as an operator runs them.
//!
//! Day handling: the collector buckets by the UTC day of receipt (RFC 8460 §4.1, DATAGRAM.md
//! §6), so every check sums the previews of all days from the start of the test to its end
//! and passes even when run across midnight UTC.

#[path = "interop/common.rs"]
mod common;

use std::time::Duration;

use common::*;

/// RFC 8460 §4.2: every session sent is counted exactly once, per domain, successful and
/// failed separately.
#[test]
fn rpt_04_simulated_sessions_are_counted_exactly() {
    let env = Env::new("200ms");
    let first_day = today_utc();
    let server = env.serve();
    let sim = simulate(
        &env.socket(),
        &[
            "--count",
            "20000",
            "--domains",
            "50",
            "--fail-pct",
            "10",
            "--seed",
            "42",
        ],
    );
    assert_eq!(sim["dropped"], 0, "blocking mode never drops: {sim}");
    assert_eq!(sim["sent"], 20000, "{sim}");
    server.stop();
    assert!(
        !env.socket().exists(),
        "the socket file is removed on shutdown"
    );

    let reports = env.preview_since(first_day);
    let expected = simulate_totals(&sim);
    let got = report_totals(&reports);
    assert_eq!(got, expected);
    assert_eq!(sum(&got), 20000);
    // One report per (day, domain, record): 50 domains, one record each.
    let days = if today_utc() == first_day { 1 } else { 2 };
    assert!(
        reports.len() >= 50 && reports.len() <= 50 * days,
        "{}",
        reports.len()
    );
    for r in &reports {
        assert_eq!(r["organization-name"], "E2E Test Org");
        assert_eq!(r["contact-info"], "tlsrpt@reporter.example");
    }
}

/// A second run adds to the first (counters only add, REQUIREMENTS RPT-04), and a restart
/// keeps what was stored.
#[test]
fn rpt_05_counts_continue_across_a_clean_restart() {
    let env = Env::new("100ms");
    let first_day = today_utc();
    let server = env.serve();
    let a = simulate(
        &env.socket(),
        &["--count", "3000", "--domains", "7", "--seed", "1"],
    );
    server.stop();
    let server = env.serve();
    let b = simulate(
        &env.socket(),
        &["--count", "2000", "--domains", "7", "--seed", "2"],
    );
    server.stop();

    let mut expected = simulate_totals(&a);
    add_totals(&mut expected, &simulate_totals(&b));
    assert_eq!(report_totals(&env.preview_since(first_day)), expected);
}

/// `kill -9` under load, then restart: the database opens intact, counting continues, and
/// what is lost is bounded by what arrived in about one flush interval.
#[test]
fn kill_9_under_load_loses_at_most_about_one_flush_interval() {
    const FLUSH_MS: f64 = 200.0;
    let env = Env::new("200ms");
    let first_day = today_utc();
    let server = env.serve();

    // Load in the background; blocking sends, so simulate's rate is the collector's rate.
    let socket = env.socket();
    let load = std::thread::spawn(move || {
        simulate(
            &socket,
            &["--count", "3000000", "--domains", "200", "--seed", "9"],
        )
    });
    std::thread::sleep(Duration::from_millis(1500));
    server.kill9();
    let first = load.join().unwrap();
    let sent1 = first["sent"].as_u64().unwrap();
    assert!(sent1 > 0 && sent1 < 3_000_000, "{first}");

    // Restart on the same socket path (stale socket file left by kill -9) and database.
    let server = env.serve();
    let second = simulate(
        &env.socket(),
        &["--count", "5000", "--domains", "20", "--seed", "10"],
    );
    assert_eq!(second["sent"], 5000);
    server.stop();

    let stored = report_totals(&env.preview_since(first_day));
    let second_totals = simulate_totals(&second);
    let first_totals = simulate_totals(&first);
    // Counting continued after the restart: every domain of the second run has at least
    // what the second run sent, and never more than both runs sent.
    let mut both = first_totals.clone();
    add_totals(&mut both, &second_totals);
    for (d, (s, f)) in &stored {
        let (bs, bf) = both.get(d).copied().unwrap_or_default();
        assert!(*s <= bs && *f <= bf, "{d}: stored {s}/{f} > sent {bs}/{bf}");
    }
    for (d, (s, f)) in &second_totals {
        let (gs, gf) = stored.get(d).copied().unwrap_or_default();
        assert!(
            gs >= *s && gf >= *f,
            "{d}: stored {gs}/{gf} < second run {s}/{f}"
        );
    }

    let stored_total = sum(&stored);
    let lost = sent1 + 5000 - stored_total;
    let rate = first["rate"].as_f64().unwrap();
    // One flush interval of datagrams, plus a small allowance for the kernel queue and the
    // flush in flight when the process died.
    let bound = (rate * FLUSH_MS / 1000.0 * 1.5) as u64 + 256;
    eprintln!(
        "kill -9: sent {sent1} at {rate:.0}/s before the kill, lost {lost} \
         ({:.0} ms of load; bound {bound})",
        lost as f64 / rate * 1000.0
    );
    assert!(lost <= bound, "lost {lost} datagrams, more than {bound}");
}

/// Config mistakes stop `serve` at once, naming the file, the key and the problem.
#[test]
fn serve_refuses_bad_or_roleless_configs() {
    let dir = tempfile::tempdir().unwrap();
    let run = |text: &str| {
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, text).unwrap();
        let out = std::process::Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&p)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = run("[collector]\nsockt = \"./x.sock\"\n");
    assert!(e.contains("bad.toml") && e.contains("sockt"), "{e}");
    let e = run("[collector]\nflush_interval = \"-1s\"\n");
    assert!(e.contains("flush_interval"), "{e}");
    let e = run("[store]\nretention_days = 7\n");
    assert!(e.contains("no role") || e.contains("[collector]"), "{e}");
    assert!(!dir.path().join("tlsrpt.db").exists(), "nothing created");
}
