//! `tlsrpt validate` over the real reports in shared/testdata: human and --json output, exit
//! codes, stdin.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn testdata(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/reports")
        .join(rel)
        .to_string_lossy()
        .into_owned()
}

fn tlsrpt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tlsrpt"))
        .arg("validate")
        .args(args)
        .output()
        .expect("run tlsrpt")
}

fn tlsrpt_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tlsrpt"))
        .arg("validate")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tlsrpt");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn json(o: &Output) -> Vec<Value> {
    match serde_json::from_slice(&o.stdout) {
        Ok(Value::Array(a)) => a,
        other => panic!("not a JSON array: {other:?}\n{}", stdout(o)),
    }
}

/// Every file in the testdata folders: json, json.gz and eml.
fn all_files() -> Vec<String> {
    let root = PathBuf::from(testdata(""));
    let mut files = Vec::new();
    for sub in std::fs::read_dir(&root).unwrap() {
        let sub = sub.unwrap().path();
        if sub.is_dir() {
            for f in std::fs::read_dir(&sub).unwrap() {
                files.push(f.unwrap().path().to_string_lossy().into_owned());
            }
        }
    }
    files.sort();
    files
}

#[test]
fn human_output_for_a_clean_report() {
    let o = tlsrpt(&[&testdata("cry-inc/google.json")]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let s = stdout(&o);
    for want in [
        "Google Inc. <smtp-tls-reporting@google.com>",
        "2025-05-22T00:00:00Z_foo-bar.io",
        "2025-05-22T00:00:00Z .. 2025-05-22T23:59:59Z",
        "sts foo-bar.io: 1 successful, 0 failed",
        "deviations:   none",
        "result:       OK",
    ] {
        assert!(s.contains(want), "missing {want:?} in\n{s}");
    }
}

#[test]
fn human_output_lists_failure_details_and_deviations() {
    let o = tlsrpt(&[&testdata("cry-inc/rfc-example.json")]);
    assert_eq!(o.status.code(), Some(0));
    let s = stdout(&o);
    assert!(
        s.contains(
            "starttls-not-supported x200, mx mx2.mail.company-y.example, receiving-ip 203.0.113.56"
        ),
        "{s}"
    );
    assert!(
        s.contains("reason X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"),
        "{s}"
    );
    assert!(
        s.contains("JSON-22: policies[0].failure-details[0].sending-mta-ip"),
        "{s}"
    );
}

#[test]
fn rpt03_is_unusable_and_names_the_missing_fields() {
    let o = tlsrpt(&[&testdata("mail-auth/rpt03.json")]);
    assert_eq!(o.status.code(), Some(1));
    let s = stdout(&o);
    assert!(
        s.contains("policies[0].summary.total-failure-session-count: missing"),
        "{s}"
    );
    assert!(
        s.contains("policies[1].policy.policy-domain: missing"),
        "{s}"
    );
}

#[test]
fn strict_fails_on_deviations() {
    let f = testdata("cry-inc/no-contact.json");
    let o = tlsrpt(&[&f]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("JSON-13: contact-info"));
    let o = tlsrpt(&["--strict", &f]);
    assert_eq!(o.status.code(), Some(1));
    // A clean report passes --strict.
    let o = tlsrpt(&["--strict", &testdata("cry-inc/google.json")]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn json_over_all_testdata() {
    let files = all_files();
    let args: Vec<&str> = std::iter::once("--json")
        .chain(files.iter().map(String::as_str))
        .collect();
    let o = tlsrpt(&args);
    assert_eq!(o.status.code(), Some(1), "rpt03 makes the run fail");
    let arr = json(&o);
    assert_eq!(arr.len(), files.len());
    for (v, f) in arr.iter().zip(&files) {
        let obj = v.as_object().unwrap();
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        let mut want = vec!["deviations", "error", "file", "ok", "report"];
        want.sort();
        let mut keys_sorted = keys.clone();
        keys_sorted.sort();
        assert_eq!(keys_sorted, want);
        assert_eq!(v["file"], f.as_str());
        if f.ends_with("rpt03.json") {
            assert_eq!(v["ok"], false);
            assert!(v["report"].is_null());
            let e = v["error"].as_str().unwrap();
            assert!(
                e.contains("total-failure-session-count") && e.contains("policy-domain"),
                "{e}"
            );
        } else {
            assert_eq!(v["ok"], true, "{f}: {}", v["error"]);
            assert!(v["error"].is_null());
            assert!(v["report"]["policies"].is_array(), "{f}");
            assert!(v["report"]["report-id"].is_string(), "{f}");
        }
    }
}

#[test]
fn json_report_is_normalised_and_deviations_structured() {
    let o = tlsrpt(&["--json", &testdata("cry-inc/microsoft.json")]);
    assert_eq!(o.status.code(), Some(0));
    let arr = json(&o);
    let v = &arr[0];
    assert_eq!(v["deviations"][0]["rule"], "DANE-11");
    assert_eq!(
        v["deviations"][0]["path"],
        "policies[1].policy.policy-string"
    );
    assert!(v["deviations"][0]["message"].is_string());
    assert_eq!(
        v["report"]["policies"][1]["policy"]["policy-string"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // RFC 8460 member order is kept in the embedded report.
    let s = stdout(&o);
    assert!(s.find("\"organization-name\"").unwrap() < s.find("\"policies\"").unwrap());
}

#[test]
fn stdin_gzip_and_plain() {
    let gz = std::fs::read(testdata(
        "mailweave/google.com!example.com!1747094400!1747180799!001.json.gz",
    ))
    .unwrap();
    let o = tlsrpt_stdin(&["--json", "-"], &gz);
    assert_eq!(o.status.code(), Some(0));
    let arr = json(&o);
    assert_eq!(arr[0]["file"], "-");
    assert_eq!(
        arr[0]["report"]["policies"][0]["summary"]["total-successful-session-count"],
        48
    );
    let plain = std::fs::read(testdata("cry-inc/no-policy.json")).unwrap();
    let o = tlsrpt_stdin(&["-"], &plain);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("no-policy-found foo-bar.io"));
    let o = tlsrpt_stdin(&["-"], b"not a report at all");
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn email_message_is_read() {
    let o = tlsrpt(&["--json", &testdata("mail-auth/rpt01.eml")]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let arr = json(&o);
    assert_eq!(
        arr[0]["report"]["report-id"],
        "5065427c-23d3-47ca-b6e0-946ea0e8c4be"
    );
    let o = tlsrpt(&[&testdata("mail-auth/rpt02.eml")]);
    assert!(
        stdout(&o).contains("source:       e-mail message"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn missing_file_is_that_files_error_not_a_crash() {
    let good = testdata("cry-inc/google.json");
    let o = tlsrpt(&["--json", "/nonexistent/report.json", &good]);
    assert_eq!(o.status.code(), Some(1));
    let arr = json(&o);
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[0]["ok"], false);
    assert!(
        arr[0]["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/report.json")
    );
    assert_eq!(arr[1]["ok"], true);
}

#[test]
fn no_file_is_a_usage_error() {
    let o = tlsrpt(&[]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn help_has_examples() {
    let o = tlsrpt(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let s = stdout(&o);
    assert!(
        s.contains("Examples:") && s.contains("tlsrpt validate --strict"),
        "{s}"
    );
}
