//! End to end: `tlsrpt serve` with `[receiver]` and `[web]` as a separate process: a report
//! POSTed to the endpoint is stored and listed by the JSON API; a second copy is a duplicate;
//! SIGTERM stops it cleanly; a non-loopback web listener without a token refuses to start.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tlsrpt");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 exchange with `Connection: close`; (status, body).
fn http(addr: SocketAddr, method: &str, path: &str, ctype: &str, body: &[u8]) -> (u16, String) {
    http_with(addr, method, path, ctype, "", body)
}

/// [`http`] with extra header lines (`"Name: value\r\n"` each).
fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    ctype: &str,
    extra: &str,
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {ctype}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn wait_listening(addr: SocketAddr, child: &mut Child) {
    let start = Instant::now();
    while TcpStream::connect(addr).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("serve exited with {status}: {err}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{addr} never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn report(rid: &str) -> Vec<u8> {
    format!(
        r#"{{"organization-name":"E2E <Org>","date-range":{{"start-datetime":"2026-11-27T00:00:00Z","end-datetime":"2026-11-27T23:59:59Z"}},"contact-info":"tlsrpt@e2e.example","report-id":"{rid}","policies":[{{"policy":{{"policy-type":"no-policy-found","policy-domain":"example.com"}},"summary":{{"total-successful-session-count":4,"total-failure-session-count":0}}}}]}}"#
    )
    .into_bytes()
}

#[test]
fn rcv_06_serve_runs_receiver_and_api() {
    let dir = tempfile::tempdir().unwrap();
    let (rp, wp) = (free_port(), free_port());
    let cfg = dir.path().join("tlsrpt.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\nurl = \"sqlite://./r.db\"\n\n[receiver]\nlisten = \"127.0.0.1:{rp}\"\npath = \"/reports\"\n\n[web]\nlisten = \"127.0.0.1:{wp}\"\n"
        ),
    )
    .unwrap();
    let rcv: SocketAddr = format!("127.0.0.1:{rp}").parse().unwrap();
    let web: SocketAddr = format!("127.0.0.1:{wp}").parse().unwrap();
    let child = start_serve(&cfg, rcv, web);

    let (s, b) = http(
        rcv,
        "POST",
        "/reports",
        "application/tlsrpt+json",
        &report("e2e-1"),
    );
    assert_eq!(s, 201, "{b}");
    let (s, b) = http(
        rcv,
        "POST",
        "/reports",
        "application/tlsrpt+json",
        &report("e2e-1"),
    );
    assert_eq!(s, 200, "{b}");
    assert!(b.contains("\"duplicate\""), "{b}");
    let (s, b) = http(rcv, "POST", "/reports", "text/plain", &report("e2e-2"));
    assert_eq!(s, 415, "{b}");
    let (s, b) = http(web, "GET", "/api/v1/reports", "application/json", b"");
    assert_eq!(s, 200, "{b}");
    let list: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{b}");
    assert_eq!(list[0]["organization_name"], "E2E <Org>");
    assert!(!b.contains('<'), "{b}");
    stop_serve(child);
}

/// SIGTERM through the `kill` command (no unsafe code in the test).
fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn serve_refuses_public_web_listener_without_token() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tlsrpt.toml");
    std::fs::write(
        &cfg,
        format!("[web]\nlisten = \"0.0.0.0:{}\"\n", free_port()),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("token_file"), "{err}");

    // With a token file it starts (and stops on SIGTERM).
    std::fs::write(dir.path().join("token"), "0123456789abcdef0123\n").unwrap();
    let port = free_port();
    std::fs::write(
        &cfg,
        format!("[web]\nlisten = \"0.0.0.0:{port}\"\ntoken_file = \"token\"\n"),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let web: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(web, &mut child);
    let (s, _) = http(web, "GET", "/api/v1/reports", "application/json", b"");
    assert_eq!(s, 401);
    sigterm(&child);
    let _ = child.wait();
}

/// A report whose date range is the UTC day `day` (`YYYY-MM-DD`).
fn report_on(rid: &str, day: &str) -> Vec<u8> {
    format!(
        r#"{{"organization-name":"Retention","date-range":{{"start-datetime":"{day}T00:00:00Z","end-datetime":"{day}T23:59:59Z"}},"contact-info":"tlsrpt@e2e.example","report-id":"{rid}","policies":[{{"policy":{{"policy-type":"sts","policy-domain":"example.com"}},"summary":{{"total-successful-session-count":1,"total-failure-session-count":1}},"failure-details":[{{"result-type":"certificate-expired","sending-mta-ip":"192.0.2.55","failed-session-count":1}}]}}]}}"#
    )
    .into_bytes()
}

/// `serve --config cfg`, waiting until both listeners accept.
fn start_serve(cfg: &std::path::Path, rcv: SocketAddr, web: SocketAddr) -> Child {
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(cfg)
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(rcv, &mut child);
    wait_listening(web, &mut child);
    child
}

/// SIGTERM, wait (bounded) for a clean exit; its stderr (the log).
fn stop_serve(mut child: Child) -> String {
    sigterm(&child);
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "serve did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status}: {err}");
    err
}

fn listed(web: SocketAddr) -> Vec<String> {
    let (s, b) = http(
        web,
        "GET",
        "/api/v1/reports?status=all",
        "application/json",
        b"",
    );
    assert_eq!(s, 200, "{b}");
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    let mut ids: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["report_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// REQUIREMENTS SEC-08 through `serve`: with `[receiver] retention_days = 0` nothing is
/// pruned; restarted with 30 days, the prune at start deletes the report that ended years
/// ago, keeps yesterday's, and logs one line with the count.
#[test]
fn sec_08_serve_prunes_received_reports_older_than_retention() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tlsrpt.toml");
    let yesterday = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24))
        .strftime("%Y-%m-%d")
        .to_string();
    let run = |days: u32| {
        let (rp, wp) = (free_port(), free_port());
        std::fs::write(
            &cfg,
            format!(
                "[store]\nurl = \"sqlite://./r.db\"\n\n[receiver]\nlisten = \"127.0.0.1:{rp}\"\nretention_days = {days}\n\n[web]\nlisten = \"127.0.0.1:{wp}\"\n"
            ),
        )
        .unwrap();
        let rcv: SocketAddr = format!("127.0.0.1:{rp}").parse().unwrap();
        let web: SocketAddr = format!("127.0.0.1:{wp}").parse().unwrap();
        (start_serve(&cfg, rcv, web), rcv, web)
    };

    // Keep forever: both reports are stored and stay.
    let (child, rcv, web) = run(0);
    for (rid, day) in [("old", "2020-01-01"), ("recent", yesterday.as_str())] {
        let (s, b) = http(
            rcv,
            "POST",
            "/tlsrpt",
            "application/tlsrpt+json",
            &report_on(rid, day),
        );
        assert_eq!(s, 201, "{b}");
    }
    assert_eq!(listed(web), ["old", "recent"]);
    let log = stop_serve(child);
    assert!(!log.contains("pruned received reports"), "{log}");

    // 30 days: the prune at start removes the old report only.
    let (child, _, web) = run(30);
    let start = Instant::now();
    while listed(web).len() != 1 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never pruned: {:?}",
            listed(web)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(listed(web), ["recent"]);
    let log = stop_serve(child);
    let line = log
        .lines()
        .find(|l| l.contains("pruned received reports"))
        .unwrap_or_else(|| panic!("no prune line in {log}"));
    assert!(
        line.contains("INFO") && line.contains("reports=1") && line.contains("retention_days=30"),
        "{line}"
    );
}

/// REQUIREMENTS SEC-01 through `serve`: `[receiver] trusted_proxies` reaches the endpoint,
/// so clients forwarded by a trusted proxy (here 127.0.0.1) are rate-limited one by one.
#[test]
fn sec_01_serve_takes_trusted_proxies_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let (rp, wp) = (free_port(), free_port());
    let cfg = dir.path().join("tlsrpt.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\nurl = \"sqlite://./r.db\"\n\n[receiver]\nlisten = \"127.0.0.1:{rp}\"\nrequests_per_minute = 1\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\n\n[web]\nlisten = \"127.0.0.1:{wp}\"\n"
        ),
    )
    .unwrap();
    let rcv: SocketAddr = format!("127.0.0.1:{rp}").parse().unwrap();
    let web: SocketAddr = format!("127.0.0.1:{wp}").parse().unwrap();
    let child = start_serve(&cfg, rcv, web);
    let post = |xff: &str, rid: &str| {
        http_with(
            rcv,
            "POST",
            "/tlsrpt",
            "application/tlsrpt+json",
            &format!("X-Forwarded-For: {xff}\r\n"),
            &report(rid),
        )
        .0
    };
    assert_eq!(post("192.0.2.1", "p1"), 201);
    assert_eq!(post("192.0.2.1", "p2"), 429);
    assert_eq!(post("198.51.100.2", "p3"), 201);
    stop_serve(child);

    // A malformed entry stops serve before anything listens, naming the key and the entry.
    std::fs::write(
        &cfg,
        format!("[receiver]\nlisten = \"127.0.0.1:{rp}\"\ntrusted_proxies = [\"10.0.0.1/8\"]\n"),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("trusted_proxies") && err.contains("10.0.0.1/8"),
        "{err}"
    );
}
