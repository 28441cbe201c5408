//! Every real report under shared/testdata/reports (json and json.gz; the .eml files belong to
//! the message module): read leniently with the data kept and each quirk named as a deviation.
//! rpt03.json is broken on purpose and must fail, naming every missing field.

use std::path::PathBuf;

use tlsrpt_core::read::{Limits, ReadError, Reading, read_report};
use tlsrpt_core::types::{PolicyType, ResultType};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/reports")
}

fn read(rel: &str) -> Result<Reading, ReadError> {
    let bytes = std::fs::read(dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    read_report(&bytes, &Limits::default())
}

fn ok(rel: &str) -> Reading {
    read(rel).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The (path, rule) pairs of a reading's deviations, sorted.
fn rules(r: &Reading) -> Vec<(String, &'static str)> {
    let mut v: Vec<_> = r
        .deviations
        .iter()
        .map(|d| (d.path.clone(), d.rule))
        .collect();
    v.sort();
    v
}

fn expect(list: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
    let mut v: Vec<_> = list.iter().map(|(p, r)| (p.to_string(), *r)).collect();
    v.sort();
    v
}

/// All report files (not .eml, not README) under the testdata folder.
fn all_report_files() -> Vec<String> {
    let mut files = Vec::new();
    for sub in std::fs::read_dir(dir()).expect("testdata folder next to the repository") {
        let sub = sub.unwrap().path();
        if !sub.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&sub).unwrap() {
            let f = f.unwrap().path();
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            if name.ends_with(".json") || name.ends_with(".json.gz") {
                let folder = sub.file_name().unwrap().to_string_lossy().to_string();
                files.push(format!("{folder}/{name}"));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_file_but_rpt03_is_read() {
    let files = all_report_files();
    assert!(files.len() >= 14, "testdata incomplete: {files:?}");
    for f in files {
        let r = read(&f);
        if f == "mail-auth/rpt03.json" {
            assert!(r.is_err(), "{f} must fail");
        } else {
            let r = r.unwrap_or_else(|e| panic!("{f}: {e}"));
            assert!(!r.report.policies.is_empty(), "{f}");
        }
    }
}

#[test]
fn rpt03_fails_naming_every_missing_field() {
    let err = read("mail-auth/rpt03.json").unwrap_err();
    let ReadError::Invalid(problems) = &err else {
        panic!("expected Invalid, got {err:?}");
    };
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "policies[0].summary.total-failure-session-count",
            "policies[1].policy.policy-domain",
            "policies[1].summary.total-failure-session-count",
        ]
    );
    let msg = err.to_string();
    assert!(msg.contains("total-failure-session-count"), "{msg}");
    assert!(msg.contains("policy-domain"), "{msg}");
    assert!(msg.contains("invalid-policy-type"), "{msg}");
}

#[test]
fn dane_11_microsoft_tlsa_unwrapped() {
    let r = ok("cry-inc/microsoft.json");
    assert_eq!(
        rules(&r),
        expect(&[("policies[1].policy.policy-string", "DANE-11")])
    );
    let tlsa = &r.report.policies[1].policy;
    assert_eq!(tlsa.policy_type, PolicyType::Tlsa);
    assert_eq!(tlsa.policy_string.len(), 2);
    assert!(tlsa.policy_string[0].starts_with("3 1 1 6007EEE5"));
    assert!(tlsa.policy_string[1].starts_with("3 1 1 837C773D"));
    assert_eq!(r.report.report_id, "133925885310113267+random.net");
}

#[test]
fn json_13_json_12_no_contact_quirks_reported() {
    let r = ok("cry-inc/no-contact.json");
    assert_eq!(
        rules(&r),
        expect(&[
            ("contact-info", "JSON-13"),
            ("date-range.end-datetime", "JSON-12"),
            ("policies[0].policy.mx-host[0]", "JSON-18"),
        ])
    );
    assert_eq!(r.report.contact_info, None);
    // Kept as written, not "fixed".
    assert_eq!(r.report.date_range.end.to_string(), "2026-01-12T00:00:00Z");
    assert_eq!(r.report.policies[0].policy.mx_host, ["mx: mx.server.com"]);
}

#[test]
fn json_16_sts_without_policy_string_flagged() {
    let r = ok("cry-inc/no_ip_and_mx.json");
    assert_eq!(
        rules(&r),
        expect(&[("policies[0].policy.policy-string", "JSON-16")])
    );
    let fd = &r.report.policies[0].failure_details[0];
    assert_eq!(fd.result_type, ResultType::StsPolicyFetchError);
    assert_eq!(fd.failed_session_count, 3);
    assert_eq!(fd.sending_mta_ip, None);
    assert_eq!(fd.receiving_mx_hostname, None);
}

#[test]
fn json_22_rfc_example_non_canonical_ipv6_kept() {
    for f in ["cry-inc/rfc-example.json", "mail-auth/rpt01.json"] {
        let r = ok(f);
        let mut want = vec![
            ("policies[0].failure-details[0].sending-mta-ip", "JSON-22"),
            ("policies[0].failure-details[1].sending-mta-ip", "JSON-22"),
        ];
        if f.starts_with("mail-auth") {
            // The RFC's Appendix B additional-information has spaces in it.
            want.push((
                "policies[0].failure-details[1].additional-information",
                "JSON-27",
            ));
        }
        assert_eq!(rules(&r), expect(&want), "{f}");
        let p = &r.report.policies[0];
        assert_eq!(p.summary.total_successful_session_count, 5326);
        assert_eq!(p.summary.total_failure_session_count, 303);
        assert_eq!(p.failure_details.len(), 3);
        assert_eq!(
            p.failure_details[0].sending_mta_ip.as_deref(),
            Some("2001:db8:abcd:0012::1")
        );
        assert_eq!(
            p.failure_details[2].failure_reason_code.as_deref(),
            Some("X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED")
        );
        assert_eq!(p.policy.mx_host, ["*.mail.company-y.example"]);
    }
}

#[test]
fn json_11_seven_day_range_flagged() {
    let r = ok("mail-auth/rpt02.json");
    assert_eq!(rules(&r), expect(&[("date-range", "JSON-11")]));
    assert_eq!(
        r.report.policies[0].failure_details[0]
            .receiving_ip
            .as_deref(),
        Some("234.234.234.234")
    );
}

#[test]
fn clean_reports_have_no_deviation() {
    for f in [
        "cry-inc/google.json",
        "cry-inc/no-policy.json",
        "mailweave/google.com!example.com!1747094400!1747180799!001.json",
        "mailweave/google.com!example.com!1747094400!1747180799!001.json.gz",
        "mailweave/microsoft.com!example.com!1739750400!1739836799!133843802167204397.json",
        "mailweave/mimecast.org!example.com!1742860800!1742947199!c7115a9ad9266efcddcb560fc5963028de5d922f5d1bf878e8ec82a8d6a5cf2c.json",
        "mailweave/ppatk.go.id!example.com!1740960000!1741046399.json",
    ] {
        let r = ok(f);
        assert_eq!(rules(&r), expect(&[]), "{f}");
    }
}

#[test]
fn gzipped_google_equals_plain() {
    let plain = ok("mailweave/google.com!example.com!1747094400!1747180799!001.json");
    let gz = ok("mailweave/google.com!example.com!1747094400!1747180799!001.json.gz");
    assert_eq!(plain, gz);
    assert_eq!(
        plain.report.policies[0]
            .summary
            .total_successful_session_count,
        48
    );
    assert_eq!(plain.report.policies[0].policy.mx_host.len(), 3);
}

#[test]
fn no_policy_found_kept() {
    let r = ok("cry-inc/no-policy.json");
    let p = &r.report.policies[0].policy;
    assert_eq!(p.policy_type, PolicyType::NoPolicyFound);
    assert_eq!(p.policy_domain.as_deref(), Some("foo-bar.io"));
    assert!(p.policy_string.is_empty());
}

#[test]
fn microsoft_mailweave_without_sending_ip() {
    let r = ok("mailweave/microsoft.com!example.com!1739750400!1739836799!133843802167204397.json");
    let fd = &r.report.policies[0].failure_details[0];
    assert_eq!(fd.result_type, ResultType::CertificateHostMismatch);
    assert_eq!(fd.failed_session_count, 21);
    assert_eq!(fd.sending_mta_ip, None);
    assert_eq!(fd.receiving_ip.as_deref(), Some("192.0.2.4"));
}

#[test]
fn written_testdata_reads_back_equal_modulo_normalisation() {
    // The strict writer's output of every real report is itself read without any deviation
    // other than the ones the writer cannot fix (kept data such as the mx: prefix or a
    // multi-day range).
    for f in all_report_files() {
        let Ok(r) = read(&f) else { continue };
        let json = tlsrpt_core::write::to_json(&r.report);
        let again = read_report(json.as_bytes(), &Limits::default())
            .unwrap_or_else(|e| panic!("{f}: {e}\n{json}"));
        for d in &again.deviations {
            assert!(
                matches!(
                    d.rule,
                    "JSON-11" | "JSON-12" | "JSON-13" | "JSON-16" | "JSON-18" | "JSON-27"
                ),
                "{f}: writer output has deviation {d}"
            );
        }
        assert_eq!(again.report.report_id, r.report.report_id);
        assert_eq!(again.report.policies.len(), r.report.policies.len());
    }
}
