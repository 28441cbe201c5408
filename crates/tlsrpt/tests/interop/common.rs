//! Helpers shared by the end-to-end tests: a `tlsrpt serve` child process on a temporary
//! config, `tlsrpt simulate`, `tlsrpt report preview`, and per-domain totals of reports.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_tlsrpt");

/// What `tlsrpt serve` logs once its collector socket is bound.
pub const READY: &str = "collector listening";

/// The current UTC day.
pub fn today_utc() -> jiff::civil::Date {
    jiff::tz::TimeZone::UTC
        .to_datetime(jiff::Timestamp::now())
        .date()
}

/// A temporary folder holding `tlsrpt.toml`, the socket, the database and the server's log.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    /// Writes a config with a collector (the given flush interval) and a reporter identity.
    pub fn new(flush_interval: &str) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("tlsrpt-e2e")
            .tempdir()
            .unwrap();
        let config = format!(
            "[store]\nurl = \"sqlite://./tlsrpt.db\"\nretention_days = 3\n\
             [collector]\nsocket = \"./tlsrpt.sock\"\nsocket_mode = \"0660\"\n\
             flush_interval = \"{flush_interval}\"\ndump_dir = \"./invalid\"\n\
             [reporter]\norganization_name = \"E2E Test Org\"\n\
             contact_info = \"tlsrpt@reporter.example\"\n"
        );
        std::fs::write(dir.path().join("tlsrpt.toml"), config).unwrap();
        Env { dir }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("tlsrpt.toml")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("tlsrpt.sock")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.path().join("serve.log")
    }

    /// Starts `tlsrpt serve` and waits until its socket exists.
    pub fn serve(&self) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        // A stale socket may exist (after kill -9): wait for the NEW server's start line.
        let starts_before = self.log_text().matches(READY).count();
        let started = Instant::now();
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(self.config())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut server = Server {
            child,
            log: self.log(),
        };
        loop {
            if self.socket().exists() && self.log_text().matches(READY).count() > starts_before {
                break;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!(
                    "tlsrpt serve exited early with {status}:\n{}",
                    self.log_text()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "tlsrpt serve did not create {} in 20 s:\n{}",
                self.socket().display(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// `tlsrpt report preview --day DAY --json` → the array of reports.
    pub fn preview(&self, day: jiff::civil::Date) -> Vec<Value> {
        let out = Command::new(BIN)
            .args(["report", "preview", "--json", "--day"])
            .arg(day.to_string())
            .arg("--config")
            .arg(self.config())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "preview failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        match serde_json::from_slice(&out.stdout) {
            Ok(Value::Array(a)) => a,
            other => panic!(
                "preview --json is not a JSON array: {other:?}\n{}",
                String::from_utf8_lossy(&out.stdout)
            ),
        }
    }

    /// Previews of every day from `first` to today (a run may cross midnight UTC).
    pub fn preview_since(&self, first: jiff::civil::Date) -> Vec<Value> {
        let mut all = Vec::new();
        let mut day = first;
        while day <= today_utc() {
            all.extend(self.preview(day));
            day = day.tomorrow().unwrap();
        }
        all
    }
}

/// A running `tlsrpt serve`.
pub struct Server {
    pub child: Child,
    log: PathBuf,
}

impl Server {
    /// SIGTERM and wait (bounded) for a clean exit.
    pub fn stop(mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0);
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "tlsrpt serve exited with {status} after SIGTERM:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
                return;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                panic!(
                    "tlsrpt serve did not exit within 20 s of SIGTERM:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to flush.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `tlsrpt simulate --json` and returns its JSON object.
pub fn simulate(socket: &Path, args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .arg("simulate")
        .arg("--socket")
        .arg(socket)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "simulate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Per-domain (successful, failed) as simulate reports them.
pub fn simulate_totals(v: &Value) -> BTreeMap<String, (u64, u64)> {
    v["domains"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(d, t)| {
            (
                d.clone(),
                (
                    t["successful"].as_u64().unwrap(),
                    t["failed"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// Per policy-domain (successful, failed) summed over every report and policy.
pub fn report_totals(reports: &[Value]) -> BTreeMap<String, (u64, u64)> {
    let mut m: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for r in reports {
        for p in r["policies"].as_array().unwrap() {
            let d = p["policy"]["policy-domain"].as_str().unwrap().to_owned();
            let s = &p["summary"];
            let e = m.entry(d).or_default();
            e.0 += s["total-successful-session-count"].as_u64().unwrap();
            e.1 += s["total-failure-session-count"].as_u64().unwrap();
        }
    }
    m
}

/// Adds `b` into `a`.
pub fn add_totals(a: &mut BTreeMap<String, (u64, u64)>, b: &BTreeMap<String, (u64, u64)>) {
    for (d, (s, f)) in b {
        let e = a.entry(d.clone()).or_default();
        e.0 += s;
        e.1 += f;
    }
}

/// Sessions in a totals map.
pub fn sum(m: &BTreeMap<String, (u64, u64)>) -> u64 {
    m.values().map(|(s, f)| s + f).sum()
}
