//! `tlsrpt ingest`: one message from a pipe or file (sysexits), and a Maildir (moves, flags,
//! the rejected log, `--watch`). Messages are signed in the test with keys served by an
//! in-process DNS server that the binary queries (`[receiver] nameservers`).

#[path = "../../tlsrpt-receiver/tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{Alg, Keys, sign, wrap};

const BIN: &str = env!("CARGO_BIN_EXE_tlsrpt");

fn config(dir: &Path, dns: &tlsrpt_testkit::dns::DnsServer, dkim: &str) -> std::path::PathBuf {
    let p = dir.join("tlsrpt.toml");
    std::fs::write(
        &p,
        format!(
            "[store]\nurl = \"sqlite://./t.db\"\n[receiver]\ndkim = \"{dkim}\"\nnameservers = [\"{}\"]\n",
            dns.addr()
        ),
    )
    .unwrap();
    p
}

/// `[receiver] domains` (RCV-10) reaches `tlsrpt ingest`: a signed report for a domain that is
/// not ours is kept as rejected (exit 0, no bounce), one for ours is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rcv_10_ingest_keeps_reports_for_other_domains_as_rejected() {
    let keys = Keys::new();
    let dns = common::dns(&keys).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &dns, "require");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}domains = [\"example.org\"]\n")).unwrap();
    let c = cfg.to_str().unwrap().to_owned();
    let m = signed_report(&keys, "rcv10-1");
    let o = tokio::task::spawn_blocking(move || run(&["ingest", "--config", &c], &m))
        .await
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("kept as rejected"), "{}", stderr(&o));
    assert!(stderr(&o).contains("RCV-10"), "{}", stderr(&o));

    std::fs::write(&cfg, format!("{text}domains = [\"example.net\"]\n")).unwrap();
    let c = cfg.to_str().unwrap().to_owned();
    let m = signed_report(&keys, "rcv10-2");
    let o = tokio::task::spawn_blocking(move || run(&["ingest", "--config", &c], &m))
        .await
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("stored as report"), "{}", stderr(&o));
}

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut c = Command::new(BIN)
        .args(args)
        .env_remove("TLSRPT_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin).unwrap();
    c.wait_with_output().unwrap()
}

fn signed_report(keys: &Keys, id: &str) -> Vec<u8> {
    let json = format!(
        r#"{{"organization-name":"Example","date-range":{{"start-datetime":"2025-01-01T00:00:00Z","end-datetime":"2025-01-01T23:59:59Z"}},"contact-info":"tls@example.com","report-id":"{id}","policies":[{{"policy":{{"policy-type":"no-policy-found","policy-domain":"example.net"}},"summary":{{"total-successful-session-count":3,"total-failure-session-count":0}}}}]}}"#
    );
    sign(
        &wrap(json.as_bytes(), Some("example.com"), "example.com"),
        keys,
        Alg::Ed25519,
        "example.com",
        "ed",
        false,
    )
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipe_mode_exit_codes() {
    let keys = Keys::new();
    let dns = common::dns(&keys).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &dns, "require");
    let cfg = cfg.to_str().unwrap();
    let msg = signed_report(&keys, "pipe-1");
    let m = msg.clone();
    let c = cfg.to_owned();
    let o = tokio::task::spawn_blocking(move || run(&["ingest", "--config", &c], &m))
        .await
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("stored as report"), "{}", stderr(&o));

    // The same report again (from a file this time): a duplicate, still 0.
    let f = dir.path().join("m.eml");
    std::fs::write(&f, &msg).unwrap();
    let (c, fs) = (cfg.to_owned(), f.to_str().unwrap().to_owned());
    let o = tokio::task::spawn_blocking(move || run(&["ingest", "--config", &c, &fs], b""))
        .await
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("duplicate"), "{}", stderr(&o));

    // Unsigned: kept as rejected, exit 0 (no bounce to a possibly forged sender).
    let eml = std::fs::read(common::testdata(&["rpt01.eml"]).into_iter().next().unwrap()).unwrap();
    let c = cfg.to_owned();
    let o = tokio::task::spawn_blocking(move || run(&["ingest", "--config", &c, "-"], &eml))
        .await
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("kept as rejected"), "{}", stderr(&o));

    // Not a report: 65 with the reason.
    let c = cfg.to_owned();
    let o = tokio::task::spawn_blocking(move || {
        run(
            &["ingest", "--config", &c],
            b"Subject: hello\r\n\r\njust text\r\n",
        )
    })
    .await
    .unwrap();
    assert_eq!(code(&o), 65, "{}", stderr(&o));
    assert!(stderr(&o).contains("rejected: bad data"), "{}", stderr(&o));

    // Store unavailable: 75, so the MTA keeps the message queued.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[store]\nurl = \"sqlite:///nonexistent-dir/sub/t.db\"\n[receiver]\ndkim = \"off\"\n",
    )
    .unwrap();
    let b = bad.to_str().unwrap().to_owned();
    let m = msg.clone();
    let o = tokio::task::spawn_blocking(move || run(&["ingest", "--config", &b], &m))
        .await
        .unwrap();
    assert_eq!(code(&o), 75, "{}", stderr(&o));
}

fn maildir(root: &Path) {
    for d in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maildir_moves_processed_and_keeps_rejected_with_reason() {
    let keys = Keys::new();
    let dns = common::dns(&keys).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &dns, "require");
    let md = dir.path().join("Maildir");
    maildir(&md);
    for i in 0..5 {
        std::fs::write(
            md.join("new").join(format!("100{i}.good.host")),
            signed_report(&keys, &format!("md-{i}")),
        )
        .unwrap();
    }
    // A second copy of md-0, an unsigned report, and a message without a report.
    std::fs::write(md.join("new/2000.dup.host"), signed_report(&keys, "md-0")).unwrap();
    std::fs::copy(
        common::testdata(&["rpt02.eml"]).into_iter().next().unwrap(),
        md.join("new/3000.unsigned.host"),
    )
    .unwrap();
    std::fs::write(
        md.join("new/4000.junk.host"),
        "Subject: hi\r\n\r\nhello\r\n",
    )
    .unwrap();
    // Dot files are not messages.
    std::fs::write(md.join("new/.hidden"), "x").unwrap();

    let (c, m) = (
        cfg.to_str().unwrap().to_owned(),
        md.to_str().unwrap().to_owned(),
    );
    let o =
        tokio::task::spawn_blocking(move || run(&["ingest", "--config", &c, "--maildir", &m], b""))
            .await
            .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "5 stored, 1 duplicate, 1 kept as rejected, 1 rejected as bad data, 0 deferred"
        ),
        "{}",
        stderr(&o)
    );
    assert_eq!(names(&md.join("new")), [".hidden"]);
    let cur = names(&md.join("cur"));
    assert!(cur.contains(&"1000.good.host:2,S".to_owned()), "{cur:?}");
    assert!(cur.contains(&"2000.dup.host:2,S".to_owned()), "{cur:?}");
    assert!(
        cur.contains(&"3000.unsigned.host:2,FS".to_owned()),
        "{cur:?}"
    );
    assert!(cur.contains(&"4000.junk.host:2,FS".to_owned()), "{cur:?}");
    let log = std::fs::read_to_string(md.join("tlsrpt-rejected.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("cur/3000.unsigned.host:2,FS\t") && l.contains("DKIM")),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("cur/4000.junk.host:2,FS\tbad data")),
        "{log}"
    );

    // Nothing left to do: a second run changes nothing.
    let (c, m) = (
        cfg.to_str().unwrap().to_owned(),
        md.to_str().unwrap().to_owned(),
    );
    let o =
        tokio::task::spawn_blocking(move || run(&["ingest", "--config", &c, "--maildir", &m], b""))
            .await
            .unwrap();
    assert_eq!(code(&o), 0);
    assert!(
        stderr(&o).contains("0 stored, 0 duplicate"),
        "{}",
        stderr(&o)
    );

    // Not a Maildir.
    let o = run(
        &[
            "ingest",
            "--config",
            cfg.to_str().unwrap(),
            "--maildir",
            "/nonexistent",
        ],
        b"",
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("not a Maildir"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maildir_store_failure_leaves_messages_in_new_and_exits_75() {
    let keys = Keys::new();
    let dns = common::dns(&keys).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &dns, "require");
    let md = dir.path().join("Maildir");
    maildir(&md);
    // SERVFAIL for the key: DKIM cannot decide, the message waits for the next run.
    let json = r#"{"organization-name":"Example","date-range":{"start-datetime":"2025-01-01T00:00:00Z","end-datetime":"2025-01-01T23:59:59Z"},"contact-info":"tls@example.com","report-id":"sf","policies":[{"policy":{"policy-type":"no-policy-found","policy-domain":"example.net"},"summary":{"total-successful-session-count":3,"total-failure-session-count":0}}]}"#;
    let msg = sign(
        &wrap(json.as_bytes(), Some("example.com"), "example.com"),
        &keys,
        Alg::Rsa,
        "example.com",
        "broken",
        false,
    );
    std::fs::write(md.join("new/1.host"), msg).unwrap();
    let (c, m) = (
        cfg.to_str().unwrap().to_owned(),
        md.to_str().unwrap().to_owned(),
    );
    let o =
        tokio::task::spawn_blocking(move || run(&["ingest", "--config", &c, "--maildir", &m], b""))
            .await
            .unwrap();
    assert_eq!(code(&o), 75, "{}", stderr(&o));
    assert_eq!(names(&md.join("new")), ["1.host"]);
    assert!(names(&md.join("cur")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maildir_watch_picks_up_new_mail_until_sigterm() {
    let keys = Keys::new();
    let dns = common::dns(&keys).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &dns, "require");
    let md = dir.path().join("Maildir");
    maildir(&md);
    let child = Command::new(BIN)
        .args([
            "ingest",
            "--config",
            cfg.to_str().unwrap(),
            "--maildir",
            md.to_str().unwrap(),
            "--watch",
            "--interval",
            "100ms",
        ])
        .env_remove("TLSRPT_CONFIG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Deliver the way an MDA does: write in tmp/, rename into new/.
    std::fs::write(md.join("tmp/5.host"), signed_report(&keys, "watch-1")).unwrap();
    std::fs::rename(md.join("tmp/5.host"), md.join("new/5.host")).unwrap();
    let mut seen = false;
    for _ in 0..100 {
        if md.join("cur/5.host:2,S").exists() {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // SAFETY-free: signal the child by its own pid.
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let o = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(seen, "not processed: {}", stderr(&o));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("SIGTERM"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_receiver_config_is_a_temporary_failure_naming_the_key() {
    let keys = Keys::new();
    let dns = common::dns(&keys).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &dns, "maybe");
    let c = cfg.to_str().unwrap().to_owned();
    let msg = signed_report(&keys, "cfg-1");
    let o = tokio::task::spawn_blocking(move || run(&["ingest", "--config", &c], &msg))
        .await
        .unwrap();
    assert_eq!(code(&o), 75, "{}", stderr(&o));
    assert!(stderr(&o).contains("dkim = \"maybe\""), "{}", stderr(&o));
}

/// Throughput of `tlsrpt ingest --maildir` over 10,000 signed messages (Ed25519, key served
/// by the in-process DNS server). Run with
/// `cargo test --release -p tlsrpt --test ingest_cli -- --ignored --nocapture maildir_throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly in release mode"]
async fn maildir_throughput_10k() {
    const N: usize = 10_000;
    let keys = Keys::new();
    let dns = common::dns(&keys).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &dns, "require");
    let md = dir.path().join("Maildir");
    maildir(&md);
    for i in 0..N {
        std::fs::write(
            md.join("new").join(format!("{i:06}.bench.host")),
            signed_report(&keys, &format!("bench-{i}")),
        )
        .unwrap();
    }
    let (c, m) = (
        cfg.to_str().unwrap().to_owned(),
        md.to_str().unwrap().to_owned(),
    );
    let start = std::time::Instant::now();
    let o =
        tokio::task::spawn_blocking(move || run(&["ingest", "--config", &c, "--maildir", &m], b""))
            .await
            .unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("{N} stored")),
        "{}",
        stderr(&o)
    );
    println!(
        "maildir ingest: {N} messages in {secs:.2} s = {:.0} reports/s",
        N as f64 / secs
    );
}
