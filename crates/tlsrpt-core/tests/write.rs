//! The strict writer, checked against the RFC 8460 rules themselves (member names, order,
//! types, formats), and by round trip through the lenient reader.

use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::Value;
use tlsrpt_core::read::{Limits, read_report};
use tlsrpt_core::report::{DateRange, FailureDetail, Policy, PolicyResult, Report, Summary};
use tlsrpt_core::types::{KNOWN_RESULT_TYPES, PolicyType, ResultType};
use tlsrpt_core::write::{to_gzip, to_json, to_json_pretty, to_value};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn sample() -> Report {
    let mut fd = FailureDetail::new(ResultType::ValidationFailure);
    fd.sending_mta_ip = Some("2001:db8:abcd:0012::1".into());
    fd.receiving_ip = Some("x.x.x.x".into());
    fd.receiving_mx_hostname = Some("mx1.recipient.example".into());
    fd.failed_session_count = 2;
    fd.failure_reason_code = Some(String::new());
    fd.additional_information = None;
    Report {
        organization_name: Some("Sender Example Mail Ltd".into()),
        date_range: DateRange {
            start: ts("2025-03-14T00:00:00Z"),
            end: ts("2025-03-14T23:59:59.750Z"),
        },
        contact_info: None,
        report_id: "r1@sender.example".into(),
        policies: vec![
            PolicyResult {
                policy: Policy {
                    policy_type: PolicyType::Sts,
                    policy_string: vec!["version: STSv1".into(), "mode: enforce".into()],
                    policy_domain: Some("recipient.example".into()),
                    mx_host: vec!["mx1.recipient.example".into()],
                },
                summary: Summary {
                    total_successful_session_count: 10,
                    total_failure_session_count: 2,
                },
                failure_details: vec![fd],
            },
            PolicyResult {
                policy: Policy {
                    policy_type: PolicyType::Tlsa,
                    policy_string: vec![],
                    policy_domain: Some("mx1.recipient.example".into()),
                    mx_host: vec!["stray.example".into()],
                },
                summary: Summary {
                    total_successful_session_count: u64::MAX,
                    total_failure_session_count: 0,
                },
                failure_details: vec![],
            },
            PolicyResult {
                policy: Policy {
                    policy_type: PolicyType::NoPolicyFound,
                    policy_string: vec![],
                    policy_domain: None,
                    mx_host: vec![],
                },
                summary: Summary::default(),
                failure_details: vec![],
            },
        ],
    }
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

/// The member names of each object in the compact text, in order (serde_json's Value does
/// not keep order, so this walks the text with a tiny streaming pass).
fn top_level_key_order(json: &str) -> Vec<String> {
    let v: Vec<(String, Value)> = {
        let m: serde_json::Map<String, Value> = serde_json::from_str(json).unwrap();
        m.into_iter().collect()
    };
    let mut with_pos: Vec<(usize, String)> = v
        .into_iter()
        .map(|(k, _)| (json.find(&format!("\"{k}\":")).unwrap(), k))
        .collect();
    with_pos.sort();
    with_pos.into_iter().map(|(_, k)| k).collect()
}

#[test]
fn json_02_policies_always_an_array() {
    let mut r = sample();
    r.policies.truncate(1);
    let v = to_value(&r);
    assert!(v["policies"].is_array());
    assert_eq!(v["policies"].as_array().unwrap().len(), 1);
    r.policies.clear();
    assert_eq!(to_value(&r)["policies"], Value::Array(vec![]));
}

#[test]
fn json_18_mx_host_array_and_sts_only() {
    let v = to_value(&sample());
    assert_eq!(
        v["policies"][0]["policy"]["mx-host"],
        serde_json::json!(["mx1.recipient.example"])
    );
    assert!(
        v["policies"][1]["policy"].get("mx-host").is_none(),
        "tlsa must not carry mx-host"
    );
    let mut r = sample();
    r.policies[0].policy.mx_host.clear();
    assert!(
        to_value(&r)["policies"][0]["policy"]
            .get("mx-host")
            .is_none()
    );
}

#[test]
fn json_29_unknown_values_omitted_never_empty_or_null() {
    let json = to_json(&sample());
    assert!(!json.contains("null"), "{json}");
    assert!(!json.contains("\"\""), "{json}");
    let v = to_value(&sample());
    let fd = &v["policies"][0]["failure-details"][0];
    assert!(
        fd.get("receiving-ip").is_none(),
        "x.x.x.x must be omitted: {fd}"
    );
    assert!(fd.get("failure-reason-code").is_none());
    assert!(fd.get("additional-information").is_none());
    assert!(v.get("contact-info").is_none());
    assert!(v["policies"][2]["policy"].get("policy-domain").is_none());
}

#[test]
fn json_22_ipv6_written_in_rfc5952_form() {
    let v = to_value(&sample());
    assert_eq!(
        v["policies"][0]["failure-details"][0]["sending-mta-ip"],
        "2001:db8:abcd:12::1"
    );
}

#[test]
fn json_11_times_are_utc_z_whole_seconds() {
    let v = to_value(&sample());
    assert_eq!(v["date-range"]["start-datetime"], "2025-03-14T00:00:00Z");
    assert_eq!(v["date-range"]["end-datetime"], "2025-03-14T23:59:59Z");
}

#[test]
fn json_16_policy_string_empty_rules() {
    let v = to_value(&sample());
    assert_eq!(
        v["policies"][1]["policy"]["policy-string"],
        serde_json::json!([])
    );
    assert!(v["policies"][2]["policy"].get("policy-string").is_none());
}

#[test]
fn json_32_counts_are_numbers_clamped_to_2_pow_53_minus_1() {
    let v = to_value(&sample());
    let n = &v["policies"][1]["summary"]["total-successful-session-count"];
    assert!(n.is_u64());
    assert_eq!(n.as_u64(), Some((1 << 53) - 1));
    assert_eq!(
        v["policies"][0]["failure-details"][0]["failed-session-count"],
        2
    );
}

#[test]
fn json_19_json_20_json_26_counts_are_json_integers() {
    let json = to_json(&sample());
    // Bare JSON numbers, never strings or fractions.
    assert!(
        json.contains("\"total-successful-session-count\":10,"),
        "{json}"
    );
    assert!(
        json.contains("\"total-failure-session-count\":2}"),
        "{json}"
    );
    assert!(json.contains("\"failed-session-count\":2"), "{json}");
    let v = to_value(&sample());
    let summary = &v["policies"][0]["summary"];
    assert_eq!(summary["total-successful-session-count"].as_u64(), Some(10));
    assert_eq!(summary["total-failure-session-count"].as_u64(), Some(2));
    assert_eq!(
        v["policies"][0]["failure-details"][0]["failed-session-count"].as_u64(),
        Some(2)
    );
}

#[test]
fn json_27_key_is_additional_information() {
    let mut r = sample();
    r.policies[0].failure_details[0].additional_information = Some("https://x.example/1".into());
    let json = to_json(&r);
    assert!(json.contains("\"additional-information\":\"https://x.example/1\""));
    assert!(!json.contains("additional-info-uri"));
}

#[test]
fn rfc_8460_member_order() {
    let json = to_json(&sample());
    assert_eq!(
        top_level_key_order(&json),
        ["organization-name", "date-range", "report-id", "policies"]
    );
    // Policy members in §4.4 order.
    let p = json.find("\"policy-type\"").unwrap();
    let s = json.find("\"policy-string\"").unwrap();
    let d = json.find("\"policy-domain\"").unwrap();
    let m = json.find("\"mx-host\"").unwrap();
    assert!(p < s && s < d && d < m);
    let rt = json.find("\"result-type\"").unwrap();
    let ip = json.find("\"sending-mta-ip\"").unwrap();
    let c = json.find("\"failed-session-count\"").unwrap();
    assert!(rt < ip && ip < c);
    // Compact: no whitespace outside strings.
    assert!(!json.contains("\": ") && !json.contains(", \"") && !json.contains('\n'));
}

#[test]
fn pretty_and_gzip_carry_the_same_json() {
    let r = sample();
    let a: Value = serde_json::from_str(&to_json(&r)).unwrap();
    let b: Value = serde_json::from_str(&to_json_pretty(&r)).unwrap();
    assert_eq!(a, b);
    assert_eq!(a, to_value(&r));
    let z = to_gzip(&r);
    assert_eq!(&z[..2], &[0x1f, 0x8b]);
    let back = tlsrpt_core::read::gunzip(&z, &Limits::default()).unwrap();
    assert_eq!(back, to_json(&r).as_bytes());
    assert_eq!(z, to_gzip(&r), "deterministic");
}

#[test]
fn writer_output_reads_without_deviation() {
    let mut r = sample();
    // The writer drops the stray mx-host and unusable IP, so only the no-policy-found policy's
    // missing domain and the missing contact-info remain as deviations.
    r.contact_info = Some("tlsrpt@sender.example".into());
    let back = read_report(to_json(&r).as_bytes(), &Limits::default()).unwrap();
    let rules: Vec<&str> = back.deviations.iter().map(|d| d.rule).collect();
    assert_eq!(rules, ["JSON-17"], "{:?}", back.deviations);
    let fd = &back.report.policies[0].failure_details[0];
    assert_eq!(fd.sending_mta_ip.as_deref(), Some("2001:db8:abcd:12::1"));
    assert_eq!(fd.receiving_ip, None);
}

// ---- round trip over generated reports -----------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    // Non-empty, any Unicode incl. quotes, backslashes and controls; no trailing CR/LF (the
    // reader strips those from policy lines by rule STS-10).
    "[^\r\n]{0,12}[a-zA-Z0-9\"\\\\ é\u{1F600}\t]"
}

fn host() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,10}(\\.[a-z0-9]{1,10}){1,3}"
}

fn ip() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| std::net::Ipv4Addr::from(b).to_string()),
        any::<[u16; 8]>().prop_map(|b| std::net::Ipv6Addr::from(b).to_string()),
    ]
}

fn result_type() -> impl Strategy<Value = ResultType> {
    prop_oneof![
        (0..KNOWN_RESULT_TYPES.len()).prop_map(|i| KNOWN_RESULT_TYPES[i].clone()),
        "[a-z-]{1,20}".prop_map(|s| ResultType::parse(&s)),
    ]
}

fn count() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..1000, 0u64..=(1 << 53) - 1]
}

fn failure_detail() -> impl Strategy<Value = FailureDetail> {
    (
        result_type(),
        proptest::option::of(ip()),
        proptest::option::of(host()),
        proptest::option::of(host()),
        proptest::option::of(ip()),
        count(),
        proptest::option::of("https://[a-z]{1,8}\\.example/[a-z0-9?=#]{0,10}"),
        proptest::option::of(text()),
    )
        .prop_map(|(rt, s, h, helo, r, n, a, c)| FailureDetail {
            result_type: rt,
            sending_mta_ip: s,
            receiving_mx_hostname: h,
            receiving_mx_helo: helo,
            receiving_ip: r,
            failed_session_count: n,
            additional_information: a,
            failure_reason_code: c,
        })
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        0..4u8,
        proptest::collection::vec(text(), 0..5),
        host(),
        proptest::collection::vec(host(), 0..3),
    )
        .prop_map(|(t, lines, domain, mx)| {
            let policy_type = match t {
                0 => PolicyType::Sts,
                1 => PolicyType::Tlsa,
                2 => PolicyType::NoPolicyFound,
                _ => PolicyType::Unknown("future-type".into()),
            };
            let mut lines = lines;
            if policy_type == PolicyType::Tlsa && lines.len() == 1 && lines[0].starts_with('[') {
                lines[0].insert(0, ' '); // not a DANE-11 double encoding
            }
            let is_sts = policy_type == PolicyType::Sts;
            let policy_domain = if policy_type == PolicyType::NoPolicyFound && domain.len() % 2 == 0
            {
                None
            } else {
                Some(domain)
            };
            Policy {
                policy_type,
                policy_string: lines,
                policy_domain,
                mx_host: if is_sts { mx } else { vec![] },
            }
        })
}

fn report() -> impl Strategy<Value = Report> {
    (
        proptest::option::of(text()),
        0i64..250_000_000_000,
        0i64..1_000_000,
        proptest::option::of("[a-z]{1,8}@[a-z]{1,8}\\.example"),
        text(),
        proptest::collection::vec(
            (
                policy(),
                count(),
                count(),
                proptest::collection::vec(failure_detail(), 0..4),
            ),
            0..4,
        ),
    )
        .prop_map(|(org, start, len, contact, id, pols)| Report {
            organization_name: org,
            date_range: DateRange {
                start: Timestamp::from_second(start).unwrap(),
                end: Timestamp::from_second(start + len).unwrap(),
            },
            contact_info: contact,
            report_id: id,
            policies: pols
                .into_iter()
                .map(|(policy, ok, failed, fds)| PolicyResult {
                    policy,
                    summary: Summary {
                        total_successful_session_count: ok,
                        total_failure_session_count: failed,
                    },
                    failure_details: fds,
                })
                .collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip_read_of_write_is_identity(r in report()) {
        let json = to_json(&r);
        let back = read_report(json.as_bytes(), &Limits::default())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{json}")))?;
        prop_assert_eq!(&back.report, &r);
        let gz = read_report(&to_gzip(&r), &Limits::default()).unwrap();
        prop_assert_eq!(&gz.report, &r);
        // Whatever deviations remain are about the data, never about the JSON shape.
        for d in &back.deviations {
            prop_assert!(
                matches!(d.rule, "JSON-10" | "JSON-11" | "JSON-12" | "JSON-13" | "JSON-15"
                    | "JSON-16" | "JSON-17" | "JSON-21" | "JSON-27" | "JSON-30"),
                "unexpected deviation {}", d
            );
        }
    }

    #[test]
    fn output_is_strict(r in report()) {
        let v = to_value(&r);
        prop_assert!(v["policies"].is_array());
        for p in v["policies"].as_array().unwrap() {
            let pol = &p["policy"];
            if let Some(mx) = pol.get("mx-host") {
                prop_assert!(mx.is_array());
                prop_assert_eq!(&pol["policy-type"], "sts");
            }
            for k in keys(&p["summary"]) {
                prop_assert!(p["summary"][k].as_u64().unwrap() < (1 << 53));
            }
        }
        let json = to_json(&r);
        prop_assert!(!json.contains(":null"));
        prop_assert!(!json.contains(":\"\""));
        let start = v["date-range"]["start-datetime"].as_str().unwrap();
        prop_assert_eq!(start.len(), 20);
        prop_assert!(start.ends_with('Z'));
    }
}

/// RPT-19 / SEC-07: the optional detail fields can be left out; details that become the same
/// are merged with their counts added, so totals and JSON-31's one-entry-per-failure hold.
#[test]
fn rpt_19_sec_07_omitted_detail_fields_are_absent_and_details_merged() {
    let mut r = sample();
    let mut second = r.policies[0].failure_details[0].clone();
    second.sending_mta_ip = Some("192.0.2.7".into());
    second.failure_reason_code = Some("X509_V_ERR_CERT_HAS_EXPIRED".into());
    second.receiving_mx_helo = Some("mx1".into());
    second.failed_session_count = 3;
    let mut other = second.clone();
    other.result_type = ResultType::CertificateExpired;
    other.failed_session_count = 4;
    r.policies[0].failure_details.extend([second, other]);
    let kept = r.clone();

    // Nothing omitted: unchanged.
    let mut same = r.clone();
    same.omit_detail_fields(tlsrpt_core::OmittedFields::default());
    assert_eq!(same, kept);

    let mut omit = tlsrpt_core::OmittedFields::default();
    for name in tlsrpt_core::OmittedFields::NAMES {
        assert!(omit.omit(name));
    }
    assert!(!omit.omit("receiving-ip"), "only the RPT-19 fields");
    r.omit_detail_fields(omit);
    let details = &r.policies[0].failure_details;
    assert_eq!(details.len(), 2, "{details:?}");
    assert_eq!(details[0].result_type, ResultType::ValidationFailure);
    assert_eq!(details[0].failed_session_count, 2 + 3);
    assert_eq!(details[1].failed_session_count, 4);
    let json = to_json(&r);
    for name in tlsrpt_core::OmittedFields::NAMES {
        assert!(!json.contains(name), "{name} in {json}");
    }
    assert!(
        json.contains("receiving-mx-hostname"),
        "other fields stay: {json}"
    );
    // The same totals as before.
    let sum = |r: &Report| -> u64 {
        r.policies[0]
            .failure_details
            .iter()
            .map(|d| d.failed_session_count)
            .sum()
    };
    assert_eq!(sum(&r), sum(&kept));
}
