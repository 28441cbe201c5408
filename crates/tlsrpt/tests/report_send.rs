//! `tlsrpt report send` / `report list` as a child process against loopback servers: the
//! testkit DNS server (`_smtp._tls` records), HTTPS server (test CA) and SMTP sink.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::civil::{Date, date};
use tlsrpt_core::report::Policy;
use tlsrpt_core::tally::{PolicyCounters, ReportKey, Tally};
use tlsrpt_core::types::PolicyType;
use tlsrpt_store::Store;
use tlsrpt_store::outbox::OutboxReport;
use tlsrpt_testkit::axum::Router;
use tlsrpt_testkit::axum::extract::{Path as UrlPath, State};
use tlsrpt_testkit::axum::http::StatusCode;
use tlsrpt_testkit::axum::routing::post;
use tlsrpt_testkit::dns::DnsServer;
use tlsrpt_testkit::https::HttpsServer;
use tlsrpt_testkit::smtp::SmtpSink;

const DAY: Date = date(2026, 11, 28);

/// Per path: POSTs received, and delays (seconds) to wait before answering each one.
#[derive(Default)]
struct Recv {
    count: HashMap<String, usize>,
    delays: HashMap<String, VecDeque<u64>>,
}

type Shared = Arc<Mutex<Recv>>;

async fn take(State(s): State<Shared>, UrlPath(p): UrlPath<String>) -> StatusCode {
    let delay = {
        let mut r = s.lock().unwrap();
        *r.count.entry(p.clone()).or_default() += 1;
        r.delays
            .get_mut(&p)
            .and_then(|q| q.pop_front())
            .unwrap_or(0)
    };
    tokio::time::sleep(Duration::from_secs(delay)).await;
    StatusCode::OK
}

struct Env {
    dir: tempfile::TempDir,
    _ca: tempfile::NamedTempFile,
    _dns: DnsServer,
    _https: HttpsServer,
    smtp: SmtpSink,
    recv: Shared,
    config: PathBuf,
    url: String,
}

impl Env {
    fn count(&self, p: &str) -> usize {
        self.recv.lock().unwrap().count.get(p).copied().unwrap_or(0)
    }

    async fn run(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_tlsrpt"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .await
            .unwrap()
    }

    async fn outbox(&self) -> Vec<OutboxReport> {
        let s = Store::open(&self.url).await.unwrap();
        let l = s.outbox_list(None, None).await.unwrap();
        s.close().await;
        l
    }
}

fn key_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tlsrpt-reporter/tests/data/ed25519.pem")
}

async fn env(delays: &[(&str, &[u64])], domains: &[&str]) -> Env {
    tlsrpt_testkit::install_crypto();
    let recv: Shared = Arc::default();
    for (p, d) in delays {
        recv.lock()
            .unwrap()
            .delays
            .insert(p.to_string(), d.iter().copied().collect());
    }
    let app = Router::new()
        .route("/{p}", post(take))
        .with_state(recv.clone());
    let https = HttpsServer::start(app, &["reports.example"]).await.unwrap();
    let ca = https.ca().write_pem().unwrap();
    let u = |p: &str| https.url("reports.example", p);
    let dns = DnsServer::builder()
        .zone("example")
        .a("reports.example", [127, 0, 0, 1].into())
        .txt(
            "_smtp._tls.https.example",
            &[&format!("v=TLSRPTv1; rua={}", u("/ok"))],
        )
        .txt(
            "_smtp._tls.two.example",
            &[&format!("v=TLSRPTv1; rua={},{}", u("/fast"), u("/slow"))],
        )
        .txt(
            "_smtp._tls.mail.example",
            &["v=TLSRPTv1; rua=mailto:tlsrpt@mail.example"],
        )
        .start()
        .await
        .unwrap();
    let smtp = SmtpSink::builder().start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let config = dir.path().join("tlsrpt.toml");
    std::fs::write(
        &config,
        format!(
            r#"[store]
url = "{url}"
[reporter]
organization_name = "Sender Inc."
contact_info = "tlsrpt@sender.example"
from = "tlsrpt-noreply@sender.example"
dkim = [{{ domain = "sender.example", selector = "tlsrpt", key = "{key}" }}]
smtp_relay = "{smtp}"
smtp_starttls = "off"
nameservers = ["{dns}"]
allow_private_targets = true
extra_ca = "{ca}"
claim_lease = "2s"
"#,
            key = key_file().display(),
            smtp = smtp.addr(),
            dns = dns.addr(),
            ca = ca.path().display(),
        ),
    )
    .unwrap();
    let store = Store::open(&url).await.unwrap();
    let mut t = Tally::new();
    for d in domains {
        t.add_counters(
            &ReportKey {
                day: DAY,
                domain: d.to_string(),
                record: "v=TLSRPTv1; rua=mailto:old@example".into(),
            },
            &Policy {
                policy_type: PolicyType::NoPolicyFound,
                policy_string: vec![],
                policy_domain: Some(d.to_string()),
                mx_host: vec![],
            },
            &PolicyCounters {
                successful: 3,
                failed: 1,
                failures: BTreeMap::new(),
            },
        );
    }
    store.add_counters(&t).await.unwrap();
    store.close().await;
    Env {
        dir,
        _ca: ca,
        _dns: dns,
        _https: https,
        smtp,
        recv,
        config,
        url,
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_19_report_send_now_delivers_two_and_records_none() {
    let e = env(&[], &["https.example", "mail.example", "none.example"]).await;
    let out = e
        .run(&["report", "send", "--day", "2026-11-28", "--now"])
        .await;
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{so}\n{se}");
    assert_eq!(e.count("ok"), 1);
    assert_eq!(e.smtp.accepted().len(), 1);
    let lines: Vec<&str> = so.lines().collect();
    assert_eq!(lines.len(), 3, "{so}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("delivered")
                && l.contains("https.example https://reports.example")),
        "{so}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("delivered") && l.contains("mailto:tlsrpt@mail.example")),
        "{so}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("none") && l.contains("none.example") && l.contains("NXDOMAIN")),
        "{so}"
    );

    // `report list --json`: the shape scripts rely on.
    let out = e.run(&["report", "list", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 3);
    let by: HashMap<&str, &serde_json::Value> = arr
        .iter()
        .map(|r| (r["policy_domain"].as_str().unwrap(), r))
        .collect();
    let h = by["https.example"];
    for k in [
        "report_id",
        "day",
        "policy_domain",
        "record",
        "filename",
        "gzip_bytes",
        "status",
        "created_at",
        "send_at",
        "last_error",
        "lookups",
        "destinations",
    ] {
        assert!(h.get(k).is_some(), "missing {k}: {h}");
    }
    assert_eq!(h["status"], "delivered");
    assert_eq!(h["day"], "2026-11-28");
    let d = &h["destinations"][0];
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["history"][0]["outcome"], "delivered");
    assert!(d["history"][0]["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(by["none.example"]["status"], "none");
    assert_eq!(
        by["none.example"]["destinations"].as_array().unwrap().len(),
        0
    );
    assert_eq!(by["none.example"]["lookups"][0]["outcome"], "none");
    assert!(
        h["filename"]
            .as_str()
            .unwrap()
            .starts_with("sender.example!https.example!")
    );

    // Sending the day again: same report-ids (RPT-04), nothing sent twice.
    let ids: Vec<String> = arr
        .iter()
        .map(|r| r["report_id"].as_str().unwrap().to_owned())
        .collect();
    let out = e
        .run(&["report", "send", "--day", "2026-11-28", "--now"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut again: Vec<String> = e.outbox().await.into_iter().map(|r| r.report_id).collect();
    let mut ids = ids;
    ids.sort();
    again.sort();
    assert_eq!(ids, again);
    assert_eq!(e.count("ok"), 1);
    assert_eq!(e.smtp.accepted().len(), 1);

    // Human list names each report and destination.
    let out = e.run(&["report", "list", "--day", "2026-11-28"]).await;
    let so = text(&out.stdout);
    assert!(so.contains("https.example delivered"), "{so}");
    assert!(
        so.contains("-> mailto:tlsrpt@mail.example delivered attempts=1"),
        "{so}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlv_05_kill_9_during_delivery_never_resends_to_an_accepting_destination() {
    // `/slow` answers its first POST after 60 s; the sender is killed while it waits.
    let e = env(&[("slow", &[60])], &["two.example"]).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tlsrpt"))
        .args(["report", "send", "--day", "2026-11-28", "--now", "--config"])
        .arg(&e.config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until /fast's success is recorded and /slow's request is in flight.
    let mut ready = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if e.count("slow") == 1
            && e.outbox().await.first().is_some_and(|r| {
                r.destinations
                    .iter()
                    .any(|d| d.destination.ends_with("/fast") && d.status == "delivered")
            })
        {
            ready = true;
            break;
        }
    }
    assert!(ready, "the child did not get going");
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    let r = &e.outbox().await[0];
    assert_eq!(r.status, "delivered", "DLV-05: one destination accepted");
    let slow = r
        .destinations
        .iter()
        .find(|d| d.destination.ends_with("/slow"))
        .unwrap();
    assert_eq!(
        slow.status, "claimed",
        "the killed process's claim is left behind"
    );

    // Restart at once: /fast is never sent again; /slow is still leased to the dead process.
    let out = e
        .run(&["report", "send", "--day", "2026-11-28", "--now"])
        .await;
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));
    assert_eq!(e.count("fast"), 1);
    assert_eq!(e.count("slow"), 1);

    // After the lease: /slow is retried (its outcome was never recorded: the documented
    // at-least-once window), /fast still not.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let out = e
        .run(&["report", "send", "--day", "2026-11-28", "--now"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        e.count("fast"),
        1,
        "no duplicate to the destination that accepted"
    );
    assert_eq!(e.count("slow"), 2);
    let r = &e.outbox().await[0];
    let slow = r
        .destinations
        .iter()
        .find(|d| d.destination.ends_with("/slow"))
        .unwrap();
    let outcomes: Vec<&str> = slow.history.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, vec!["abandoned", "delivered"]);
    drop(e.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpt_03_serve_with_a_reporter_section_sends_yesterday_by_itself() {
    let e = env(&[], &[]).await;
    // Yesterday's counters (the real yesterday: `serve` uses the system clock).
    let today = jiff::tz::TimeZone::UTC
        .to_datetime(jiff::Timestamp::now())
        .date();
    let yesterday = today.yesterday().unwrap();
    let store = Store::open(&e.url).await.unwrap();
    let mut t = Tally::new();
    t.add_counters(
        &ReportKey {
            day: yesterday,
            domain: "https.example".into(),
            record: "v=TLSRPTv1; rua=mailto:old@example".into(),
        },
        &Policy {
            policy_type: PolicyType::NoPolicyFound,
            policy_string: vec![],
            policy_domain: Some("https.example".into()),
            mx_host: vec![],
        },
        &PolicyCounters {
            successful: 7,
            failed: 0,
            failures: BTreeMap::new(),
        },
    );
    store.add_counters(&t).await.unwrap();
    store.close().await;
    // Enable the role; a window of 1 s after 00:00 puts every send time in the past.
    let mut cfg = std::fs::read_to_string(&e.config).unwrap();
    cfg.push_str("enabled = true\ndelay = \"0s\"\nwindow = \"1s\"\n");
    cfg.push_str(&format!(
        "[collector]\nsocket = \"{}\"\n",
        e.dir.path().join("c.sock").display()
    ));
    std::fs::write(&e.config, cfg).unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tlsrpt"))
        .args(["serve", "--config"])
        .arg(&e.config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut sent = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if e.count("ok") == 1 {
            sent = true;
            break;
        }
    }
    // SIGTERM: a graceful stop.
    let pid = child.id().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let se = text(&out.stderr);
    assert!(sent, "serve did not send yesterday's report: {se}");
    assert!(out.status.success(), "{se}");
    let l = e.outbox().await;
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].day, yesterday);
    assert_eq!(l[0].status, "delivered");
    assert_eq!(e.count("ok"), 1);
}
