//! Session accounting over real reports (REQUIREMENTS JSON-30, RPT-15).

use jiff::Timestamp;
use serde_json::Value;
use tlsrpt_core::accounting::{policy_domain_totals, session_groups, session_totals};
use tlsrpt_core::{DateRange, Policy, PolicyResult, PolicyType, Report, Summary};

const MICROSOFT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/testdata/reports/cry-inc/microsoft.json"
);

/// Builds the report from the real file with plain serde_json, so this test does not depend
/// on the lenient reader.
fn load(path: &str) -> Report {
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    let ts = |s: &Value| s.as_str().unwrap().parse::<Timestamp>().unwrap();
    Report {
        organization_name: v["organization-name"].as_str().map(str::to_owned),
        date_range: DateRange {
            start: ts(&v["date-range"]["start-datetime"]),
            end: ts(&v["date-range"]["end-datetime"]),
        },
        contact_info: v["contact-info"].as_str().map(str::to_owned),
        report_id: v["report-id"].as_str().unwrap().to_owned(),
        policies: v["policies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| PolicyResult {
                policy: Policy {
                    policy_type: PolicyType::parse(p["policy"]["policy-type"].as_str().unwrap()),
                    policy_string: strs(&p["policy"]["policy-string"]),
                    policy_domain: p["policy"]["policy-domain"].as_str().map(str::to_owned),
                    mx_host: strs(&p["policy"]["mx-host"]),
                },
                summary: Summary {
                    total_successful_session_count: p["summary"]["total-successful-session-count"]
                        .as_u64()
                        .unwrap(),
                    total_failure_session_count: p["summary"]["total-failure-session-count"]
                        .as_u64()
                        .unwrap(),
                },
                failure_details: Vec::new(),
            })
            .collect(),
    }
}

fn entry(pt: PolicyType, domain: &str, mx: &[&str], ok: u64, failed: u64) -> PolicyResult {
    PolicyResult {
        policy: Policy {
            policy_type: pt,
            policy_string: Vec::new(),
            policy_domain: Some(domain.to_owned()),
            mx_host: mx.iter().map(|s| s.to_string()).collect(),
        },
        summary: Summary {
            total_successful_session_count: ok,
            total_failure_session_count: failed,
        },
        failure_details: Vec::new(),
    }
}

fn report(policies: Vec<PolicyResult>) -> Report {
    Report {
        organization_name: Some("t".into()),
        date_range: DateRange {
            start: Timestamp::UNIX_EPOCH,
            end: Timestamp::UNIX_EPOCH,
        },
        contact_info: None,
        report_id: "x".into(),
        policies,
    }
}

fn sum(ok: u64, failed: u64) -> Summary {
    Summary {
        total_successful_session_count: ok,
        total_failure_session_count: failed,
    }
}

#[test]
fn json_30_microsoft_sts_and_tlsa_are_the_same_sessions() {
    let r = load(MICROSOFT);
    assert_eq!(r.policies.len(), 2);
    // On the wire: 2 + 2 successes.
    assert_eq!(r.raw_totals(), sum(4, 0));
    // Counted once: 2 sessions.
    assert_eq!(session_totals(&r), sum(2, 0));
    assert_eq!(r.session_totals(), sum(2, 0));
    assert_eq!(session_groups(&r), vec![vec![0, 1]]);
    let per = policy_domain_totals(&r);
    assert_eq!(per.len(), 1);
    assert_eq!(per["random.net"], sum(2, 0));
}

#[test]
fn json_30_rpt_15_tlsa_on_mx_host_joins_via_mx_pattern() {
    // mox convention: tlsa policy-domain = the MX host, matched by the STS mx pattern.
    let r = report(vec![
        entry(PolicyType::Sts, "example.com", &["*.example.com"], 10, 2),
        entry(PolicyType::Tlsa, "MX1.example.com.", &[], 6, 1),
        entry(PolicyType::Tlsa, "mx2.example.com", &[], 4, 2),
    ]);
    // Anchor 10/2, tlsa sum 10/3 → max per column.
    assert_eq!(session_totals(&r), sum(10, 3));
    assert_eq!(r.raw_totals(), sum(20, 5));
}

#[test]
fn json_30_unrelated_entries_add_up() {
    let r = report(vec![
        entry(PolicyType::Sts, "example.com", &["mx.example.com"], 3, 0),
        // Two labels below the wildcard's base: RFC 8461 §4.1 says no match.
        entry(PolicyType::Tlsa, "a.b.example.org", &[], 5, 0),
        entry(PolicyType::NoPolicyFound, "example.net", &[], 1, 1),
    ]);
    assert_eq!(session_totals(&r), sum(9, 1));
    assert_eq!(session_groups(&r).len(), 3);
}

#[test]
fn json_30_successive_sts_policies_add_within_a_group() {
    // A policy change during the day: two sts entries, disjoint sessions, one tlsa view.
    let r = report(vec![
        entry(PolicyType::Sts, "example.com", &[], 5, 0),
        entry(PolicyType::Sts, "example.com", &["*.example.com"], 5, 1),
        entry(PolicyType::Tlsa, "example.com", &[], 10, 1),
    ]);
    assert_eq!(session_totals(&r), sum(10, 1));
    assert_eq!(session_groups(&r), vec![vec![0, 1, 2]]);
}

#[test]
fn sts_policy_string_mx_lines_are_patterns() {
    let mut sts = entry(PolicyType::Sts, "example.com", &[], 2, 0);
    sts.policy.policy_string = vec!["version: STSv1".into(), "mx: *.mail.example.com".into()];
    let r = report(vec![
        sts,
        entry(PolicyType::Tlsa, "mx.mail.example.com", &[], 2, 0),
    ]);
    assert_eq!(session_totals(&r), sum(2, 0));
}
