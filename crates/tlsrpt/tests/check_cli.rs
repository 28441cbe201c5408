//! `tlsrpt check --txt ...`: human and JSON output, exit codes 0/1/2, run on the built binary.

use std::process::{Command, Output};

fn check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tlsrpt"))
        .arg("check")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn json(args: &[&str]) -> (serde_json::Value, i32) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = check(&all);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(&o)));
    (v, o.status.code().unwrap())
}

#[test]
fn dns_04_valid_record_exits_0_and_lists_rua() {
    let o = check(&["--txt", "v=TLSRPTv1; rua=mailto:tlsrpt@recipient.example"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.contains("OK"), "{out}");
    assert!(out.contains("mailto:tlsrpt@recipient.example"), "{out}");
    assert!(out.contains("tlsrpt@recipient.example"), "{out}");
}

#[test]
fn dns_03_presentation_form_joined() {
    let (v, code) = json(&[
        "--txt",
        r#""v=spf1 -all""#,
        "--txt",
        r#""v=TLSRPTv1; rua=mailto:a@exa" "mple.net""#,
    ]);
    assert_eq!(code, 0);
    assert_eq!(v["valid"], true);
    assert_eq!(v["record"], "v=TLSRPTv1; rua=mailto:a@example.net");
    assert_eq!(v["rua"], serde_json::json!(["mailto:a@example.net"]));
    assert_eq!(v["errors"], serde_json::json!([]));
    assert_eq!(v["warnings"], serde_json::json!([]));
}

#[test]
fn json_has_exactly_the_five_keys() {
    for rr in [
        "v=TLSRPTv1; rua=mailto:a@x.example",
        "v=spf1 -all",
        "v=TLSRPTv1; rua=http://x.example/",
        "v=TLSRPTv1; rua=mailto:a@x.example!10m",
    ] {
        let (v, _) = json(&["--txt", rr]);
        let obj = v.as_object().unwrap();
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            ["errors", "record", "rua", "valid", "warnings"],
            "{rr}"
        );
        assert!(v["valid"].is_boolean());
        assert!(v["record"].is_string() || v["record"].is_null());
        for k in ["rua", "errors", "warnings"] {
            assert!(
                v[k].as_array().unwrap().iter().all(|x| x.is_string()),
                "{rr}: {k}"
            );
        }
    }
}

#[test]
fn dns_04_two_records_exit_1() {
    let args = [
        "--txt",
        "v=TLSRPTv1; rua=mailto:a@x.example",
        "--txt",
        "v=TLSRPTv1; rua=mailto:b@x.example",
    ];
    let o = check(&args);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("FAIL"), "{out}");
    assert!(out.contains("exactly one"), "{out}");
    let (v, code) = json(&args);
    assert_eq!(code, 1);
    assert_eq!(v["valid"], false);
    assert_eq!(v["record"], serde_json::Value::Null);
    assert!(v["errors"][0].as_str().unwrap().contains("DNS-04"));
}

#[test]
fn dns_04_no_tlsrpt_record_exit_1() {
    let (v, code) = json(&["--txt", "v=spf1 -all"]);
    assert_eq!(code, 1);
    assert_eq!(v["valid"], false);
    assert_eq!(v["record"], serde_json::Value::Null);
    assert_eq!(v["rua"], serde_json::json!([]));
}

#[test]
fn dns_06_wrong_case_version_explained() {
    let o = check(&["--txt", "V=TLSRPTv1; rua=mailto:a@x.example"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("case-sensitive"), "{out}");
}

#[test]
fn dns_09_invalid_record_points_at_byte_with_fix() {
    let o = check(&["--txt", "v=TLSRPTv1; rua=mailto:a@x.example!10m"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("at byte 34"), "{out}");
    assert!(out.contains("DNS-09"), "{out}");
    assert!(out.contains("fix: "), "{out}");
    // The caret sits under the `!`.
    let lines: Vec<&str> = out.lines().collect();
    let rec = lines
        .iter()
        .position(|l| l.trim_start().starts_with("record:"))
        .unwrap();
    let bang = lines[rec].find('!').unwrap();
    assert_eq!(lines[rec + 1].find('^'), Some(bang), "{out}");

    let (v, code) = json(&["--txt", "v=TLSRPTv1; rua=mailto:a@x.example!10m"]);
    assert_eq!(code, 1);
    assert_eq!(v["record"], "v=TLSRPTv1; rua=mailto:a@x.example!10m");
    assert!(
        v["errors"][0].as_str().unwrap().contains("at byte 34"),
        "{v}"
    );
}

#[test]
fn dns_10_only_http_is_nothing_to_send_exit_1() {
    let (v, code) = json(&["--txt", "v=TLSRPTv1; rua=http://r.example/x"]);
    assert_eq!(code, 1);
    assert_eq!(v["valid"], false);
    assert_eq!(v["record"], "v=TLSRPTv1; rua=http://r.example/x");
    assert_eq!(v["rua"], serde_json::json!([]));
    assert!(v["errors"][0].as_str().unwrap().contains("DNS-10"));
    assert!(
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("http"))
    );
}

#[test]
fn dns_05_tolerated_with_warning_and_suggestion() {
    let o = check(&["--txt", "v=TLSRPTv1 ; rua=mailto:a@x.example"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.contains("DNS-05"), "{out}");
    assert!(
        out.contains(r#"suggested record: "v=TLSRPTv1; rua=mailto:a@x.example""#),
        "{out}"
    );
    let (v, _) = json(&["--txt", "v=TLSRPTv1 ; rua=mailto:a@x.example"]);
    assert!(v["warnings"][0].as_str().unwrap().contains("DNS-05"));
}

#[test]
fn dns_22_json_rua_lists_only_the_five_used() {
    let rr = "v=TLSRPTv1; rua=mailto:a@x.example,mailto:b@x.example,mailto:c@x.example,\
              mailto:d@x.example,mailto:e@x.example,mailto:f@x.example";
    let (v, code) = json(&["--txt", rr]);
    assert_eq!(code, 0);
    assert_eq!(v["rua"].as_array().unwrap().len(), 5);
    assert_eq!(v["rua"][4], "mailto:e@x.example");
}

#[test]
fn missing_txt_is_usage_error_exit_2() {
    let o = check(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    let o = check(&["--json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty(), "nothing on stdout for usage errors");
}

#[test]
fn broken_quotes_are_usage_error_exit_2() {
    let o = check(&["--json", "--txt", r#""v=TLSRPTv1; rua=mailto:a@x.example"#]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unterminated"), "{err}");
}

#[test]
fn help_shows_examples() {
    let o = check(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.contains("Examples:"), "{out}");
    assert!(out.contains("tlsrpt check --txt"), "{out}");
}

// ---- `tlsrpt check <domain>`: live checks against loopback test servers ----

mod live {
    use std::process::Output;

    use tlsrpt_testkit::axum::Router;
    use tlsrpt_testkit::axum::routing::get;
    use tlsrpt_testkit::dns::DnsServer;
    use tlsrpt_testkit::https::HttpsServer;

    struct Env {
        dns: DnsServer,
        https: HttpsServer,
        ca: tempfile::NamedTempFile,
    }

    async fn env(policy: &'static str) -> Env {
        tlsrpt_testkit::install_crypto();
        let dns = DnsServer::builder()
            .zone("live.example")
            .zone("bad.example")
            .txt(
                "_smtp._tls.live.example",
                &["v=TLSRPTv1; rua=mailto:tls@live.example"],
            )
            .txt("_mta-sts.live.example", &["v=STSv1; id=1"])
            .a("mta-sts.live.example", [127, 0, 0, 1].into())
            .mx("live.example", 10, "mx1.live.example")
            .txt(
                "_smtp._tls.bad.example",
                &["v=TLSRPTv1; rua=mailto:a@x.example!10m"],
            )
            .start()
            .await
            .unwrap();
        let app = Router::new().route(
            "/.well-known/mta-sts.txt",
            get(move || async move { policy }),
        );
        let https = HttpsServer::start(app, &["mta-sts.live.example"])
            .await
            .unwrap();
        let ca = https.ca().write_pem().unwrap();
        Env { dns, https, ca }
    }

    async fn run(e: &Env, domain: &str, extra: &[&str]) -> Output {
        let mut args: Vec<String> = vec![
            "check".into(),
            domain.into(),
            "--nameserver".into(),
            e.dns.addr().to_string(),
            "--allow-private-targets".into(),
            "--extra-ca".into(),
            e.ca.path().display().to_string(),
            "--mta-sts-port".into(),
            e.https.port().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_tlsrpt"))
                .args(&args)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    }

    const GOOD: &str = "version: STSv1\nmode: testing\nmx: mx1.live.example\nmax_age: 86400\n";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn domain_check_ok_exit_0_one_line_per_check() {
        let e = env(GOOD).await;
        let o = run(&e, "live.example", &[]).await;
        let out = String::from_utf8(o.stdout).unwrap();
        assert_eq!(o.status.code(), Some(0), "{out}");
        assert!(out.contains("OK    tlsrpt-record"), "{out}");
        assert!(out.contains("mta-sts-policy: mode testing"), "{out}");
        assert!(out.contains("OK    mx-coverage:mx1.live.example"), "{out}");
        assert!(out.contains("tlsa:mx1.live.example"), "{out}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sts_04_domain_check_uncovered_mx_exit_1_json() {
        let e = env("version: STSv1\nmode: enforce\nmx: other.example\nmax_age: 86400\n").await;
        let o = run(&e, "live.example", &["--json"]).await;
        assert_eq!(o.status.code(), Some(1));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["domain"], "live.example");
        assert_eq!(v["tlsrpt_valid"], true);
        let items = v["items"].as_array().unwrap();
        let cov = items
            .iter()
            .find(|i| i["check"] == "mx-coverage:mx1.live.example")
            .unwrap();
        assert_eq!(cov["verdict"], "fail");
        assert!(
            cov["fix"]
                .as_str()
                .unwrap()
                .contains("mx: mx1.live.example")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dns_09_domain_with_invalid_record_exit_1_with_fix() {
        let e = env(GOOD).await;
        let o = run(&e, "bad.example", &[]).await;
        let out = String::from_utf8(o.stdout).unwrap();
        assert_eq!(o.status.code(), Some(1), "{out}");
        assert!(out.contains("FAIL  tlsrpt-record"), "{out}");
        assert!(out.contains("DNS-09"), "{out}");
        assert!(out.contains("fix: "), "{out}");
    }
}

#[test]
fn domain_and_txt_are_mutually_exclusive_exit_2() {
    let o = check(&["example.com", "--txt", "v=TLSRPTv1; rua=mailto:a@x.example"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    let o = check(&[
        "--txt",
        "v=TLSRPTv1; rua=mailto:a@x.example",
        "--nameserver",
        "127.0.0.1:53",
    ]);
    assert_eq!(o.status.code(), Some(2), "--nameserver needs a domain");
}
