//! Interoperability with the real libtlsrpt (the library Postfix links) and with the literal
//! datagrams captured from it.
//!
//! `libtlsrpt_sessions_become_the_expected_reports` compiles `tests/interop/send.c` against
//! the system's libtlsrpt (Debian's libtlsrpt0-dev; `scripts/install-libtlsrpt.sh` installs
//! it), runs it against `tlsrpt serve` and checks the previewed reports field by field. When
//! libtlsrpt is missing the test FAILS if the `CI` environment variable is set and prints a
//! SKIP line otherwise.
//!
//! `literal_datagrams_become_the_expected_reports` replays the byte strings of DATAGRAM.md §5
//! and ECOSYSTEM.md §2.1/§2.2 through the socket; it needs nothing installed.

#[path = "interop/common.rs"]
mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{Value, json};

/// Compiles send.c, or explains why it cannot (`Err`).
fn build_sender(dir: &Path) -> Result<PathBuf, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/send.c");
    let exe = dir.join("send");
    let out = Command::new("cc")
        .arg("-Wall")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .arg("-ltlsrpt")
        .output()
        .map_err(|e| format!("cannot run cc: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cc could not build {} against libtlsrpt:\n{}",
            src.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(exe)
}

/// The report (there is one per domain here) whose policies are about `domain`.
fn report_for<'a>(reports: &'a [Value], domain: &str) -> &'a Value {
    let found: Vec<&Value> = reports
        .iter()
        .filter(|r| {
            r["policies"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["policy"]["policy-domain"] == domain)
        })
        .collect();
    assert_eq!(found.len(), 1, "reports for {domain}: {reports:#?}");
    found[0]
}

/// The policy of `report` with the given type.
fn policy<'a>(report: &'a Value, policy_type: &str) -> &'a Value {
    let found: Vec<&Value> = report["policies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["policy"]["policy-type"] == policy_type)
        .collect();
    assert_eq!(found.len(), 1, "{policy_type} policies in {report:#}");
    found[0]
}

fn summary(p: &Value) -> (u64, u64) {
    (
        p["summary"]["total-successful-session-count"]
            .as_u64()
            .unwrap(),
        p["summary"]["total-failure-session-count"]
            .as_u64()
            .unwrap(),
    )
}

/// `failure-details` as a list of objects, sorted for comparison.
fn details(p: &Value) -> Vec<Value> {
    let mut v: Vec<Value> = p["failure-details"].as_array().cloned().unwrap_or_default();
    v.sort_by_key(|x| x.to_string());
    v
}

/// `v` sorted like [`details`] sorts.
fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|x| x.to_string());
    v
}

fn check_common(r: &Value, day: jiff::civil::Date) {
    assert_eq!(r["organization-name"], "E2E Test Org");
    assert_eq!(r["contact-info"], "tlsrpt@reporter.example");
    assert_eq!(
        r["date-range"]["start-datetime"],
        format!("{day}T00:00:00Z")
    );
    assert_eq!(r["date-range"]["end-datetime"], format!("{day}T23:59:59Z"));
    assert!(
        r["report-id"].as_str().is_some_and(|s| !s.is_empty()),
        "{r:#}"
    );
}

/// Runs the whole scenario within one UTC day (retrying once if it straddles midnight).
fn within_one_day(
    f: impl Fn() -> Option<(jiff::civil::Date, Vec<Value>)>,
) -> (jiff::civil::Date, Vec<Value>) {
    f().or_else(&f)
        .expect("two runs in a row crossed midnight UTC")
}

#[test]
fn libtlsrpt_sessions_become_the_expected_reports() {
    let env = Env::new("100ms");
    let exe = match build_sender(env.dir.path()) {
        Ok(exe) => exe,
        Err(why) => {
            let msg = format!(
                "libtlsrpt is not installed ({why}); run scripts/install-libtlsrpt.sh as root"
            );
            if std::env::var_os("CI").is_some() {
                panic!("{msg}");
            }
            eprintln!("SKIP libtlsrpt_sessions_become_the_expected_reports: {msg}");
            return;
        }
    };

    let (day, reports) = within_one_day(|| {
        let day = today_utc();
        let server = env.serve();
        let out = Command::new(&exe).arg(env.socket()).output().unwrap();
        assert!(
            out.status.success(),
            "send.c failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        server.stop();
        (today_utc() == day).then(|| (day, env.preview(day)))
    });
    // A retry after midnight adds a second day; only the last run's day is checked.
    assert_eq!(reports.len(), 4, "{reports:#?}");
    for r in &reports {
        check_common(r, day);
    }

    // sts.interop.example: 3 successes, 2 identical + 1 other failure.
    let r = report_for(&reports, "sts.interop.example");
    assert_eq!(r["policies"].as_array().unwrap().len(), 1);
    let p = policy(r, "sts");
    assert_eq!(
        p["policy"]["policy-string"],
        json!([
            "version: STSv1",
            "mode: enforce",
            "mx: *.mail.sts.interop.example",
            "max_age: 604800"
        ])
    );
    assert_eq!(
        p["policy"]["mx-host"],
        json!(["*.mail.sts.interop.example"])
    );
    assert_eq!(summary(p), (3, 3));
    assert_eq!(
        details(p),
        sorted(vec![
            json!({"result-type": "certificate-expired", "sending-mta-ip": "192.0.2.1",
                   "receiving-mx-hostname": "mx1.mail.sts.interop.example",
                   "receiving-mx-helo": "mx1.mail.sts.interop.example",
                   "receiving-ip": "198.51.100.7", "failed-session-count": 2}),
            json!({"result-type": "sts-policy-fetch-error", "sending-mta-ip": "2001:db8::1",
                   "additional-information":
                       "https://mta-sts.sts.interop.example/.well-known/mta-sts.txt",
                   "failed-session-count": 1}),
        ])
    );

    // tlsa.interop.example: EHLO reduced to the host name of its first line.
    let r = report_for(&reports, "tlsa.interop.example");
    let p = policy(r, "tlsa");
    assert_eq!(
        p["policy"]["policy-string"],
        json!(["3 1 1 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"])
    );
    assert_eq!(summary(p), (2, 1));
    assert_eq!(
        details(p),
        sorted(vec![
            json!({"result-type": "validation-failure", "sending-mta-ip": "192.0.2.1",
                    "receiving-mx-hostname": "mx.tlsa.interop.example",
                    "receiving-mx-helo": "mx.tlsa.interop.example",
                    "receiving-ip": "198.51.100.7",
                    "failure-reason-code": "self-signed_certificate",
                    "failed-session-count": 1})
        ])
    );

    // npf.interop.example: the NULL policy domain stands for the report's (RPT-10), so all
    // five sessions land in one policy.
    let r = report_for(&reports, "npf.interop.example");
    assert_eq!(r["policies"].as_array().unwrap().len(), 1);
    let p = policy(r, "no-policy-found");
    assert_eq!(summary(p), (4, 1));
    assert_eq!(
        details(p),
        sorted(vec![
            json!({"result-type": "starttls-not-supported", "sending-mta-ip": "2001:db8::1",
                    "receiving-mx-hostname": "mx.npf.interop.example",
                    "receiving-ip": "2001:db8::25", "failed-session-count": 1})
        ])
    );

    // multi.interop.example: one request, two policies, each counted under its own policy.
    let r = report_for(&reports, "multi.interop.example");
    let sts = policy(r, "sts");
    assert_eq!(summary(sts), (1, 0));
    assert_eq!(
        sts["policy"]["mx-host"],
        json!(["mx.multi.interop.example"])
    );
    let tlsa = policy(r, "tlsa");
    assert_eq!(summary(tlsa), (0, 1));
    assert_eq!(
        details(tlsa),
        sorted(vec![
            json!({"result-type": "dane-required", "sending-mta-ip": "192.0.2.2",
                    "receiving-mx-hostname": "mx.multi.interop.example",
                    "receiving-ip": "198.51.100.8", "failed-session-count": 1})
        ])
    );
}

/// DATAGRAM.md §5 (libtlsrpt 0.5.1), ECOSYSTEM.md §2.1 (Postfix 3.10 + libtlsrpt 0.5.0rc1,
/// no `dpv`) and §2.2 (libtlsrpt 0.5.1 direct), byte for byte.
const LITERAL_DATAGRAMS: [&[u8]; 6] = [
    br#"{"dpv": "1","d": "example.com","pr": "v=TLSRPTv1; rua=mailto:tlsrpt@example.com","policies":[{"policy-type":2,"policy-domain": "example.com","policy-string":["version: STSv1","mode: enforce","mx: mail.example.com","max_age: 604800"],"mx-host":["mail.example.com"],"t":0,"f":0}]}"#,
    br#"{"dpv": "1","d": "example.org","pr": "v=TLSRPTv1;rua=https://rpt.example.org/tlsrpt","policies":[{"policy-type":1,"policy-domain": "example.org","policy-string":["3 1 1 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"],"failure-details":[{"c":205,"s": "192.0.2.1","n": "mx.example.org","h": "250-mx.example.org\r\n250-PIPELINING\r\n250 STARTTLS","r": "198.51.100.7","f": "self-signed_certificate"}],"t":1,"f":1}]}"#,
    br#"{"dpv": "1","d": "example.net","pr": "v=TLSRPTv1; rua=mailto:a@example.net,mailto:b@example.net","policies":[{"policy-type":9,"failure-details":[{"c":201,"s": "2001:db8::1","n": "mx.example.net","r": "2001:db8::25"}],"t":1,"f":1}]}"#,
    br#"{"d": "example.test","pr": "v=TLSRPTv1; rua=mailto:tlsrpt@example.test","policies":[{"policy-type":9,"policy-domain": "example.test","t":0,"f":0}]}"#,
    br#"{"d": "example.test","pr": "v=TLSRPTv1; rua=mailto:tlsrpt@example.test","policies":[{"policy-type":9,"policy-domain": "example.test","failure-details":[{"c":205,"s": "127.0.0.1","n": "mx.example.test","h": "250-mx.example.test\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-STARTTLS\r\n250 HELP","r": "127.0.0.2","f": "self-signed_certificate"}],"t":1,"f":1}]}"#,
    br#"{"dpv": "1","d": "example.com","pr": "v=TLSRPTv1; rua=mailto:tlsrpt@example.com","policies":[{"policy-type":2,"policy-domain": "example.com","policy-string":["version: STSv1","mode: enforce"],"mx-host":["*.mail.example.com"],"failure-details":[{"c":204,"s": "192.0.2.1","n": "mx1.mail.example.com","h": "mx1.mail.example.com","r": "198.51.100.7"}],"t":1,"f":1}]}"#,
];

#[test]
fn literal_datagrams_become_the_expected_reports() {
    let env = Env::new("100ms");
    let (day, reports) = within_one_day(|| {
        let day = today_utc();
        let server = env.serve();
        let sock = UnixDatagram::unbound().unwrap();
        for d in LITERAL_DATAGRAMS {
            // The literal `\r\n` inside the JSON strings above is the JSON escape, exactly
            // as libtlsrpt writes it.
            assert_eq!(sock.send_to(d, env.socket()).unwrap(), d.len());
        }
        server.stop();
        (today_utc() == day).then(|| (day, env.preview(day)))
    });
    assert_eq!(reports.len(), 4, "{reports:#?}");
    for r in &reports {
        check_common(r, day);
    }

    // example.com: two different STS policies (different strings), one report.
    let r = report_for(&reports, "example.com");
    let ps = r["policies"].as_array().unwrap();
    assert_eq!(ps.len(), 2);
    let four_lines = ps
        .iter()
        .find(|p| p["policy"]["policy-string"].as_array().unwrap().len() == 4)
        .unwrap();
    assert_eq!(four_lines["policy"]["policy-type"], "sts");
    assert_eq!(four_lines["policy"]["mx-host"], json!(["mail.example.com"]));
    assert_eq!(summary(four_lines), (1, 0));
    let two_lines = ps
        .iter()
        .find(|p| p["policy"]["policy-string"].as_array().unwrap().len() == 2)
        .unwrap();
    assert_eq!(summary(two_lines), (0, 1));
    assert_eq!(
        details(two_lines),
        sorted(vec![
            json!({"result-type": "certificate-expired", "sending-mta-ip": "192.0.2.1",
                    "receiving-mx-hostname": "mx1.mail.example.com",
                    "receiving-mx-helo": "mx1.mail.example.com",
                    "receiving-ip": "198.51.100.7", "failed-session-count": 1})
        ])
    );

    let r = report_for(&reports, "example.org");
    let p = policy(r, "tlsa");
    assert_eq!(summary(p), (0, 1));
    assert_eq!(
        details(p),
        sorted(vec![
            json!({"result-type": "validation-failure", "sending-mta-ip": "192.0.2.1",
                    "receiving-mx-hostname": "mx.example.org",
                    "receiving-mx-helo": "mx.example.org",
                    "receiving-ip": "198.51.100.7",
                    "failure-reason-code": "self-signed_certificate",
                    "failed-session-count": 1})
        ])
    );

    // example.net: no policy-domain in the datagram → the report's domain (RPT-10).
    let r = report_for(&reports, "example.net");
    let p = policy(r, "no-policy-found");
    assert_eq!(summary(p), (0, 1));
    assert_eq!(
        details(p),
        sorted(vec![
            json!({"result-type": "starttls-not-supported", "sending-mta-ip": "2001:db8::1",
                    "receiving-mx-hostname": "mx.example.net",
                    "receiving-ip": "2001:db8::25", "failed-session-count": 1})
        ])
    );

    // example.test (Postfix, no dpv): success and failure under one policy.
    let r = report_for(&reports, "example.test");
    let p = policy(r, "no-policy-found");
    assert_eq!(summary(p), (1, 1));
    assert_eq!(
        details(p),
        sorted(vec![
            json!({"result-type": "validation-failure", "sending-mta-ip": "127.0.0.1",
                    "receiving-mx-hostname": "mx.example.test",
                    "receiving-mx-helo": "mx.example.test",
                    "receiving-ip": "127.0.0.2",
                    "failure-reason-code": "self-signed_certificate",
                    "failed-session-count": 1})
        ])
    );
}
