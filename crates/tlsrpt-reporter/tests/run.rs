//! The outbox, scheduler and delivery loop end to end on loopback: the testkit DNS server
//! publishes `_smtp._tls` records, the testkit HTTPS server (test CA) takes POSTs with
//! scripted statuses, the testkit SMTP sink takes mail; the real `Deliverer` sends.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::{Date, date};
use tlsrpt_core::report::Policy;
use tlsrpt_core::tally::{PolicyCounters, ReportKey, Tally};
use tlsrpt_core::types::PolicyType;
use tlsrpt_net::http::HttpConfig;
use tlsrpt_net::resolver::Dns;
use tlsrpt_reporter::Deliverer;
use tlsrpt_reporter::deliver::{DeliverySettings, SmtpSettings, StartTls};
use tlsrpt_reporter::dkim::DkimKeyConfig;
use tlsrpt_reporter::outbox::BuildOptions;
use tlsrpt_reporter::run::{Event, Reporter, RunOptions, run_reporter};
use tlsrpt_reporter::schedule::{self, Clock, ManualClock};
use tlsrpt_store::Store;
use tlsrpt_store::outbox::{AttemptOutcome, OutboxReport};
use tlsrpt_testkit::axum::Router;
use tlsrpt_testkit::axum::body::Bytes;
use tlsrpt_testkit::axum::extract::{Path, State};
use tlsrpt_testkit::axum::http::{HeaderMap, StatusCode};
use tlsrpt_testkit::axum::routing::post;
use tlsrpt_testkit::dns::DnsServer;
use tlsrpt_testkit::https::HttpsServer;
use tlsrpt_testkit::smtp::SmtpSink;

const DAY: Date = date(2026, 11, 28);
const CONTACT: &str = "tlsrpt@sender.example";

/// Per path: scripted statuses (then 200), and every POST received (content type, body).
#[derive(Default)]
struct Receiver {
    script: HashMap<String, VecDeque<u16>>,
    posts: HashMap<String, Vec<(String, Vec<u8>)>>,
}

type Shared = Arc<Mutex<Receiver>>;

async fn take(
    State(s): State<Shared>,
    Path(p): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut r = s.lock().unwrap();
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    r.posts
        .entry(p.clone())
        .or_default()
        .push((ct, body.to_vec()));
    let code = r
        .script
        .get_mut(&p)
        .and_then(|q| q.pop_front())
        .unwrap_or(200);
    StatusCode::from_u16(code).unwrap()
}

struct Env {
    _dir: tempfile::TempDir,
    _ca: tempfile::NamedTempFile,
    _dns: DnsServer,
    https: HttpsServer,
    smtp: SmtpSink,
    recv: Shared,
    store: Arc<Store>,
    reporter: Reporter<Deliverer>,
    dns_addr: std::net::SocketAddr,
    deliverer_settings: DeliverySettings,
}

impl Env {
    fn posts(&self, path: &str) -> Vec<(String, Vec<u8>)> {
        self.recv
            .lock()
            .unwrap()
            .posts
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    async fn list(&self) -> Vec<OutboxReport> {
        self.store.outbox_list(None, None).await.unwrap()
    }

    async fn report(&self, domain: &str) -> OutboxReport {
        self.list()
            .await
            .into_iter()
            .find(|r| r.policy_domain == domain)
            .unwrap_or_else(|| panic!("no report for {domain}"))
    }

    /// Another reporter over the same store (a second process, or a restart).
    fn reporter_with(&self, opts: RunOptions) -> Reporter<Deliverer> {
        Reporter::new(
            self.store.clone(),
            Deliverer::new(&self.deliverer_settings).unwrap(),
            Dns::new(&[self.dns_addr]).unwrap(),
            opts,
        )
    }
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// https.example → /ok, flaky.example → /flaky (500 then 200), gone.example → /gone (404),
/// down.example → /down (always 503), mail.example → mailto, bounce.example → mailto (550),
/// none.example → no record, broken.example → SERVFAIL, invalid.example → an invalid record,
/// httponly.example → a record whose only rua is `http:`, two.example → two TLSRPT records.
async fn env(script: &[(&str, &[u16])], rcpt_replies: &[&str]) -> Env {
    tlsrpt_testkit::install_crypto();
    let recv: Shared = Arc::default();
    for (p, codes) in script {
        recv.lock()
            .unwrap()
            .script
            .insert(p.to_string(), codes.iter().copied().collect());
    }
    let app = Router::new()
        .route("/{p}", post(take))
        .with_state(recv.clone());
    let https = HttpsServer::start(app, &["reports.example"]).await.unwrap();
    let ca = https.ca().write_pem().unwrap();
    let rua = |p: &str| format!("v=TLSRPTv1; rua={}", https.url("reports.example", p));
    let dns = DnsServer::builder()
        .zone("example")
        .a("reports.example", [127, 0, 0, 1].into())
        .txt("_smtp._tls.https.example", &[&rua("/ok")])
        .txt("_smtp._tls.flaky.example", &[&rua("/flaky")])
        .txt("_smtp._tls.gone.example", &[&rua("/gone")])
        .txt("_smtp._tls.down.example", &[&rua("/down")])
        .txt(
            "_smtp._tls.mail.example",
            &["v=TLSRPTv1; rua=mailto:tlsrpt@mail.example"],
        )
        .txt(
            "_smtp._tls.bounce.example",
            &["v=TLSRPTv1; rua=mailto:nobody@bounce.example"],
        )
        .servfail("_smtp._tls.broken.example")
        .txt(
            "_smtp._tls.invalid.example",
            &["v=TLSRPTv1; rua=mailto:tlsrpt@invalid.example!10m"],
        )
        .txt(
            "_smtp._tls.httponly.example",
            &["v=TLSRPTv1; rua=http://reports.example/ok"],
        )
        .txt(
            "_smtp._tls.two.example",
            &["v=TLSRPTv1; rua=mailto:a@two.example"],
        )
        .txt(
            "_smtp._tls.two.example",
            &["v=TLSRPTv1; rua=mailto:b@two.example"],
        )
        .start()
        .await
        .unwrap();
    let smtp = SmtpSink::builder()
        .rcpt_replies(rcpt_replies.iter().copied())
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Arc::new(Store::open(&url).await.unwrap());

    let mut settings = DeliverySettings::new("tlsrpt-noreply@sender.example");
    settings.dkim = vec![DkimKeyConfig {
        domain: "sender.example".into(),
        selector: "tlsrpt".into(),
        key: data_dir().join("ed25519.pem"),
    }];
    let mut s = SmtpSettings::new(smtp.addr().to_string());
    s.starttls = StartTls::Off;
    s.timeout = Duration::from_secs(10);
    settings.smtp = Some(s);
    settings.http = HttpConfig {
        allow_private_targets: true,
        extra_ca: Some(ca.path().to_path_buf()),
        timeout: Duration::from_secs(10),
        ..HttpConfig::default()
    };
    settings.nameservers = vec![dns.addr()];
    let deliverer = Deliverer::new(&settings).unwrap();
    let opts = RunOptions::new(BuildOptions::new("Sender Inc.", CONTACT));
    let reporter = Reporter::new(
        store.clone(),
        deliverer,
        Dns::new(&[dns.addr()]).unwrap(),
        opts,
    );
    Env {
        _dir: dir,
        _ca: ca,
        dns_addr: dns.addr(),
        _dns: dns,
        https,
        smtp,
        recv,
        store,
        reporter,
        deliverer_settings: settings,
    }
}

/// Counters for `domains` on DAY: 10 successful sessions each, and `failed` failed ones.
async fn fill(store: &Store, domains: &[&str], failed: u64) {
    let mut t = Tally::new();
    for d in domains {
        let key = ReportKey {
            day: DAY,
            domain: d.to_string(),
            record: format!("v=TLSRPTv1; rua=mailto:collected@{d}"),
        };
        let policy = Policy {
            policy_type: PolicyType::NoPolicyFound,
            policy_string: vec![],
            policy_domain: Some(d.to_string()),
            mx_host: vec![],
        };
        t.add_counters(
            &key,
            &policy,
            &PolicyCounters {
                successful: 10,
                failed,
                failures: BTreeMap::new(),
            },
        );
    }
    store.add_counters(&t).await.unwrap();
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// After the day closed.
fn now() -> Timestamp {
    ts("2026-11-29T01:00:00Z")
}

fn ids(b: &tlsrpt_reporter::outbox::Built) -> Vec<String> {
    b.reports.iter().map(|r| r.report_id.clone()).collect()
}

#[tokio::test]
async fn dns_19_send_now_delivers_https_and_mail_and_records_none() {
    let e = env(&[], &[]).await;
    fill(
        &e.store,
        &["https.example", "mail.example", "none.example"],
        1,
    )
    .await;
    let built = e.reporter.build(DAY, None, false, now()).await.unwrap();
    assert_eq!(built.reports.len(), 3);
    let events = e.reporter.step(now(), Some(&ids(&built))).await.unwrap();

    let posts = e.posts("ok");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].0, "application/tlsrpt+gzip");
    let got = tlsrpt_core::read::read_report(&posts[0].1, &Default::default()).unwrap();
    let https = e.report("https.example").await;
    assert_eq!(got.report.report_id, https.report_id);
    assert_eq!(https.status, "delivered");
    assert_eq!(https.destinations[0].status, "delivered");

    let mail = e.smtp.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(mail.len(), 1);
    let m = e.report("mail.example").await;
    assert_eq!(m.status, "delivered");
    assert_eq!(m.destinations[0].destination, "mailto:tlsrpt@mail.example");
    let raw = String::from_utf8_lossy(&mail[0].data).to_string();
    assert!(raw.contains(&m.report_id), "Subject carries the report-id");

    // REQUIREMENTS DNS-18 / RPT-01: no record, no report, recorded.
    let n = e.report("none.example").await;
    assert_eq!(n.status, "none");
    assert!(n.destinations.is_empty());
    assert_eq!(n.lookups.len(), 1);
    assert!(
        n.last_error.as_deref().unwrap().contains("NXDOMAIN"),
        "{n:?}"
    );

    let delivered = events
        .iter()
        .filter(|ev| {
            matches!(
                ev,
                Event::Attempt {
                    outcome: AttemptOutcome::Delivered(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(delivered, 2);
    assert!(events.iter().any(
        |ev| matches!(ev, Event::NoRecord { policy_domain, .. } if policy_domain == "none.example")
    ));
}

#[tokio::test]
async fn rpt_01_only_a_valid_record_with_a_usable_rua_gets_the_report() {
    // Every domain had sessions, and the MTA saw a record for each (`fill` stores a mailto:
    // record as collected), but at send time only https.example publishes a valid record
    // with a usable rua: no record, an invalid one, one with only an `http:` rua, or two
    // records give no report (DNS-04...DNS-10, DNS-18).
    let e = env(&[], &[]).await;
    let nothing = [
        "none.example",
        "invalid.example",
        "httponly.example",
        "two.example",
    ];
    let mut all = vec!["https.example"];
    all.extend(nothing);
    fill(&e.store, &all, 1).await;
    let built = e.reporter.build(DAY, None, false, now()).await.unwrap();
    assert_eq!(built.reports.len(), all.len());
    e.reporter.step(now(), Some(&ids(&built))).await.unwrap();

    assert_eq!(e.report("https.example").await.status, "delivered");
    assert_eq!(e.posts("ok").len(), 1, "one POST, for https.example only");
    for d in nothing {
        let r = e.report(d).await;
        assert_eq!(r.status, "none", "{d}: {r:?}");
        assert!(r.destinations.is_empty(), "{d}: {r:?}");
    }
    assert!(
        e.smtp.received().is_empty(),
        "the collected mailto: records are not used by default"
    );
}

#[tokio::test]
async fn rpt_04_rebuilding_the_day_gives_the_same_report_id_and_no_resend() {
    let e = env(&[], &[]).await;
    fill(&e.store, &["https.example"], 0).await;
    let first = e.reporter.build(DAY, None, false, now()).await.unwrap();
    e.reporter.step(now(), Some(&ids(&first))).await.unwrap();
    assert_eq!(e.posts("ok").len(), 1);
    // More sessions arrive late; the day is built again (RPT-21: they go into no report).
    fill(&e.store, &["https.example"], 5).await;
    let again = e.reporter.build(DAY, None, false, now()).await.unwrap();
    assert_eq!(ids(&first), ids(&again));
    assert!(!again.reports[0].created);
    e.reporter
        .step(ts("2026-11-30T00:00:00Z"), Some(&ids(&again)))
        .await
        .unwrap();
    assert_eq!(e.posts("ok").len(), 1, "never sent twice");
    assert_eq!(e.list().await.len(), 1);
}

#[tokio::test]
async fn dlv_04_500_then_200_is_delivered_on_the_second_attempt() {
    let e = env(&[("flaky", &[500])], &[]).await;
    fill(&e.store, &["flaky.example"], 1).await;
    let b = e.reporter.build(DAY, None, false, now()).await.unwrap();
    let ev = e.reporter.step(now(), None).await.unwrap();
    let next = ev
        .iter()
        .find_map(|ev| match ev {
            Event::Attempt {
                outcome:
                    AttemptOutcome::Retry {
                        next_attempt_at, ..
                    },
                ..
            } => Some(*next_attempt_at),
            _ => None,
        })
        .expect("a retry");
    // Exponential back-off: first retry after about a minute (±20 %), not at once.
    let wait = next.duration_since(now()).as_secs();
    assert!((40..=80).contains(&wait), "{wait}");
    assert_eq!(e.report("flaky.example").await.status, "sending");
    // Not due yet: nothing happens.
    assert!(e.reporter.step(now(), None).await.unwrap().is_empty());
    e.reporter.step(next, None).await.unwrap();
    assert_eq!(e.posts("flaky").len(), 2);
    let r = e.report("flaky.example").await;
    assert_eq!(r.report_id, b.reports[0].report_id);
    assert_eq!(r.status, "delivered");
    let d = &r.destinations[0];
    assert_eq!(d.attempts, 2);
    let outcomes: Vec<&str> = d.history.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, vec!["temporary", "delivered"]);
    assert!(d.history[0].detail.contains("500"), "{:?}", d.history[0]);
    assert_eq!(d.first_attempt_at, Some(now()));
}

#[tokio::test]
async fn dlv_07_permanent_404_fails_at_once() {
    let e = env(&[("gone", &[404, 404, 404])], &[]).await;
    fill(&e.store, &["gone.example"], 1).await;
    e.reporter.build(DAY, None, false, now()).await.unwrap();
    e.reporter.step(now(), None).await.unwrap();
    e.reporter
        .step(ts("2026-11-29T12:00:00Z"), None)
        .await
        .unwrap();
    assert_eq!(
        e.posts("gone").len(),
        1,
        "no retry after a permanent failure"
    );
    let r = e.report("gone.example").await;
    assert_eq!(r.status, "failed");
    assert_eq!(r.destinations[0].status, "failed");
    assert!(
        r.destinations[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("404")
    );
    // https endpoints are not put on the suppression list (see run.rs).
    assert!(e.store.suppression_list(now()).await.unwrap().is_empty());
}

#[tokio::test]
async fn dlv_07_mail_bounce_fails_and_suppresses_the_address() {
    let e = env(&[], &["550 5.1.1 no such user"]).await;
    fill(&e.store, &["bounce.example"], 1).await;
    e.reporter.build(DAY, None, false, now()).await.unwrap();
    let ev = e.reporter.step(now(), None).await.unwrap();
    let r = e.report("bounce.example").await;
    assert_eq!(r.status, "failed", "{r:?}");
    let until = ev
        .iter()
        .find_map(|ev| match ev {
            Event::Attempt {
                suppressed_until, ..
            } => *suppressed_until,
            _ => None,
        })
        .expect("suppressed");
    assert!(until > now());
    let list = e.store.suppression_list(now()).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].address, "mailto:nobody@bounce.example");

    // The next day's report is not sent to the suppressed address.
    let next_day = DAY.tomorrow().unwrap();
    let mut t = Tally::new();
    t.add_counters(
        &ReportKey {
            day: next_day,
            domain: "bounce.example".into(),
            record: "v=TLSRPTv1; rua=mailto:nobody@bounce.example".into(),
        },
        &Policy {
            policy_type: PolicyType::NoPolicyFound,
            policy_string: vec![],
            policy_domain: Some("bounce.example".into()),
            mx_host: vec![],
        },
        &PolicyCounters {
            successful: 1,
            failed: 0,
            failures: BTreeMap::new(),
        },
    );
    e.store.add_counters(&t).await.unwrap();
    let later = ts("2026-11-30T01:00:00Z");
    e.reporter
        .build(next_day, None, false, later)
        .await
        .unwrap();
    e.reporter.step(later, None).await.unwrap();
    assert!(e.smtp.accepted().is_empty());
    let l = e.store.outbox_list(Some(next_day), None).await.unwrap();
    assert_eq!(l[0].destinations[0].status, "suppressed");
    assert_eq!(l[0].destinations[0].attempts, 0, "never attempted");
    assert!(l[0].destinations[0].history.is_empty());
}

#[tokio::test]
async fn dns_18_servfail_is_retried_later_then_gives_up() {
    let e = env(&[], &[]).await;
    fill(&e.store, &["broken.example"], 1).await;
    e.reporter.build(DAY, None, false, now()).await.unwrap();
    let ev = e.reporter.step(now(), None).await.unwrap();
    let next = ev
        .iter()
        .find_map(|ev| match ev {
            Event::DnsRetry { next_at, .. } => Some(*next_at),
            _ => None,
        })
        .expect("a DNS retry");
    assert!(next > now());
    let r = e.report("broken.example").await;
    assert_eq!(r.status, "discovering");
    assert_eq!(r.lookups[0].outcome, "temporary");
    // Still failing after the 24 h window: the report fails (no data to a guessed place).
    let ev = e
        .reporter
        .step(ts("2026-11-30T02:00:00Z"), None)
        .await
        .unwrap();
    assert!(matches!(ev.as_slice(), [Event::DnsGaveUp { .. }]), "{ev:?}");
    assert_eq!(e.report("broken.example").await.status, "failed");
}

#[tokio::test]
async fn dns_19_collected_record_is_used_when_configured() {
    let e = env(&[], &[]).await;
    fill(&e.store, &["none.example"], 1).await;
    let mut opts = RunOptions::new(BuildOptions::new("Sender Inc.", CONTACT));
    opts.use_collected_record = true;
    let r2 = e.reporter_with(opts);
    r2.build(DAY, None, false, now()).await.unwrap();
    r2.step(now(), None).await.unwrap();
    let r = e.report("none.example").await;
    assert_eq!(r.destinations.len(), 1);
    assert_eq!(
        r.destinations[0].destination,
        "mailto:collected@none.example"
    );
    assert_eq!(r.status, "delivered");
}

#[tokio::test]
async fn dlv_03_retries_stop_24_hours_after_the_first_attempt() {
    let e = env(&[("down", &[503; 50])], &[]).await;
    fill(&e.store, &["down.example"], 1).await;
    e.reporter.build(DAY, None, false, now()).await.unwrap();
    e.reporter.step(now(), None).await.unwrap();
    e.reporter
        .step(ts("2026-11-29T12:00:00Z"), None)
        .await
        .unwrap();
    assert_eq!(e.report("down.example").await.status, "sending");
    e.reporter
        .step(ts("2026-11-30T01:00:00Z"), None)
        .await
        .unwrap();
    let r = e.report("down.example").await;
    assert_eq!(r.status, "failed");
    assert_eq!(e.posts("down").len(), 3);
    let last = r.destinations[0].history.last().unwrap();
    assert_eq!(last.outcome, "failed");
    assert!(last.detail.contains("24 h"), "{last:?}");
}

#[tokio::test]
async fn rpt_20_all_success_reports_are_sent_by_default_and_can_be_skipped() {
    let e = env(&[], &[]).await;
    fill(&e.store, &["https.example"], 0).await;
    let mut o = BuildOptions::new("Sender Inc.", CONTACT);
    o.send_all_success = false;
    let b = tlsrpt_reporter::outbox::build_day(&e.store, DAY, None, &o, now())
        .await
        .unwrap();
    assert!(b.reports.is_empty());
    assert_eq!(b.skipped_all_success, 1);
    let b = e.reporter.build(DAY, None, false, now()).await.unwrap();
    assert_eq!(b.reports.len(), 1);
}

#[tokio::test]
async fn rpt_03_serve_loop_builds_the_closed_day_and_sends_in_the_window() {
    let e = env(&[], &[]).await;
    fill(&e.store, &["https.example", "mail.example"], 1).await;
    let clock = Arc::new(ManualClock::new(ts("2026-11-29T00:10:00Z")));
    let mut opts = RunOptions::new(BuildOptions::new("Sender Inc.", CONTACT));
    opts.poll = Duration::from_millis(50);
    opts.build.window = Duration::from_secs(3600);
    let r = e.reporter_with(opts);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_reporter(
        r,
        clock.clone() as Arc<dyn Clock>,
        async move {
            let _ = rx.await;
        },
    ));
    // Before close + delay: nothing is built.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(e.list().await.is_empty());
    // After the delay: built, each report at a random time within the window.
    clock.set(ts("2026-11-29T00:30:00Z"));
    let mut built = Vec::new();
    for _ in 0..100 {
        built = e.list().await;
        if built.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(built.len(), 2);
    for b in &built {
        assert!(b.next_at >= ts("2026-11-29T00:30:00Z"));
        assert!(b.next_at <= ts("2026-11-29T01:30:00Z"));
        assert_eq!(b.status, "discovering");
    }
    // After the window: everything went out.
    clock.set(ts("2026-11-29T01:30:01Z"));
    for _ in 0..200 {
        let l = e.list().await;
        if l.iter().all(|r| r.status == "delivered") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(e.list().await.iter().all(|r| r.status == "delivered"));
    assert_eq!(e.posts("ok").len(), 1);
    assert_eq!(e.smtp.accepted().len(), 1);
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let _ = schedule::DEFAULT_DELAY;
    let _ = &e.https;
}

/// Counters for `domains` on DAY whose collected record (`pr`) is `record`.
async fn fill_with_record(store: &Store, domains: &[String], record: &str) {
    let mut t = Tally::new();
    for d in domains {
        t.add_counters(
            &ReportKey {
                day: DAY,
                domain: d.clone(),
                record: record.to_string(),
            },
            &Policy {
                policy_type: PolicyType::NoPolicyFound,
                policy_string: vec![],
                policy_domain: Some(d.clone()),
                mx_host: vec![],
            },
            &PolicyCounters {
                successful: 1,
                failed: 1,
                failures: BTreeMap::new(),
            },
        );
    }
    store.add_counters(&t).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlv_05_two_reporters_racing_send_each_report_once() {
    let e = env(&[], &[]).await;
    let domains: Vec<String> = (0..24).map(|i| format!("d{i}.example")).collect();
    let record = format!(
        "v=TLSRPTv1; rua={}",
        e.https.url("reports.example", "/race")
    );
    fill_with_record(&e.store, &domains, &record).await;
    let mut opts = RunOptions::new(BuildOptions::new("Sender Inc.", CONTACT));
    opts.use_collected_record = true;
    opts.parallel = 3;
    let a = e.reporter_with(opts.clone());
    let b = e.reporter_with(opts);
    a.build(DAY, None, false, now()).await.unwrap();
    let (ra, rb) = tokio::join!(
        tokio::spawn({
            let a = a.clone();
            async move { a.step(now(), None).await.unwrap() }
        }),
        tokio::spawn({
            let b = b.clone();
            async move { b.step(now(), None).await.unwrap() }
        }),
    );
    let attempts = |ev: &[Event]| {
        ev.iter()
            .filter(|e| matches!(e, Event::Attempt { .. }))
            .count()
    };
    let (na, nb) = (attempts(&ra.unwrap()), attempts(&rb.unwrap()));
    assert_eq!(na + nb, 24, "{na} + {nb}");
    assert_eq!(e.posts("race").len(), 24, "each report POSTed exactly once");
    let ids: std::collections::HashSet<String> = e
        .posts("race")
        .iter()
        .map(|(_, body)| {
            tlsrpt_core::read::read_report(body, &Default::default())
                .unwrap()
                .report
                .report_id
        })
        .collect();
    assert_eq!(ids.len(), 24);
    assert!(e.list().await.iter().all(|r| r.status == "delivered"));
}

#[tokio::test]
async fn destination_rules_suppress_and_rewrite() {
    let e = env(&[], &[]).await;
    fill(&e.store, &["https.example", "mail.example"], 1).await;
    let mut opts = RunOptions::new(BuildOptions::new("Sender Inc.", CONTACT));
    opts.rules = tlsrpt_reporter::policy::DestinationPolicy::new(&[
        tlsrpt_reporter::policy::DestinationRule {
            domain: "mail.example".into(),
            action: tlsrpt_reporter::policy::RuleAction::Suppress,
            to: None,
        },
        tlsrpt_reporter::policy::DestinationRule {
            domain: "https.example".into(),
            action: tlsrpt_reporter::policy::RuleAction::Rewrite,
            to: Some(e.https.url("reports.example", "/rewritten")),
        },
    ])
    .unwrap();
    let r = e.reporter_with(opts);
    r.build(DAY, None, false, now()).await.unwrap();
    r.step(now(), None).await.unwrap();
    assert_eq!(e.posts("ok").len(), 0);
    assert_eq!(e.posts("rewritten").len(), 1);
    assert!(e.smtp.received().is_empty());
    let m = e.report("mail.example").await;
    assert_eq!(m.status, "failed");
    assert_eq!(m.destinations[0].status, "suppressed");
    assert!(
        m.destinations[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("rule for mail.example")
    );
    assert_eq!(e.report("https.example").await.status, "delivered");
}

/// RPT-19 / SEC-07: `omit` leaves the chosen detail fields out of the report that is built,
/// stored and POSTed; details that then coincide are merged, counts added.
#[tokio::test]
async fn rpt_19_sec_07_omitted_fields_never_leave_the_sender() {
    let e = env(&[], &[]).await;
    let mut t = Tally::new();
    let key = ReportKey {
        day: DAY,
        domain: "https.example".into(),
        record: "v=TLSRPTv1; rua=mailto:collected@https.example".into(),
    };
    let policy = Policy {
        policy_type: PolicyType::NoPolicyFound,
        policy_string: vec![],
        policy_domain: Some("https.example".into()),
        mx_host: vec![],
    };
    let mut failures = BTreeMap::new();
    for (ip, n) in [("192.0.2.1", 2u64), ("192.0.2.2", 3)] {
        let mut d = tlsrpt_core::FailureDetail::new(tlsrpt_core::ResultType::StarttlsNotSupported);
        d.sending_mta_ip = Some(ip.into());
        d.receiving_mx_hostname = Some("mx.https.example".into());
        d.receiving_mx_helo = Some("mx".into());
        d.failure_reason_code = Some("no STARTTLS in EHLO".into());
        failures.insert(d, n);
    }
    t.add_counters(
        &key,
        &policy,
        &PolicyCounters {
            successful: 10,
            failed: 5,
            failures,
        },
    );
    e.store.add_counters(&t).await.unwrap();
    let mut o = RunOptions::new(BuildOptions::new("Sender Inc.", CONTACT));
    for name in tlsrpt_core::OmittedFields::NAMES {
        assert!(o.build.omit.omit(name));
    }
    let r = e.reporter_with(o);
    let built = r.build(DAY, None, false, now()).await.unwrap();
    r.step(now(), Some(&ids(&built))).await.unwrap();
    let posts = e.posts("ok");
    assert_eq!(posts.len(), 1);
    let got = tlsrpt_core::read::read_report(&posts[0].1, &Default::default()).unwrap();
    let details = &got.report.policies[0].failure_details;
    assert_eq!(details.len(), 1, "{details:?}");
    assert_eq!(details[0].failed_session_count, 5);
    assert_eq!(details[0].sending_mta_ip, None);
    assert_eq!(details[0].receiving_mx_helo, None);
    assert_eq!(details[0].failure_reason_code, None);
    assert_eq!(
        details[0].receiving_mx_hostname.as_deref(),
        Some("mx.https.example")
    );
}
