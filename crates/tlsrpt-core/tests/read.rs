//! The lenient reader, rule by rule: each tolerated quirk keeps the data and gives a deviation;
//! each unusable report gives an error naming every problem; every limit holds.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tlsrpt_core::read::{Limits, ReadError, Reading, gunzip, read_json, read_report};
use tlsrpt_core::types::{PolicyType, ResultType};

/// A valid report in the RFC 8460 §4.4 shape (REQUIREMENTS §13.2, trimmed).
fn base() -> Value {
    json!({
        "organization-name": "Sender Example Mail Ltd",
        "date-range": {
            "start-datetime": "2025-03-14T00:00:00Z",
            "end-datetime": "2025-03-14T23:59:59Z"
        },
        "contact-info": "tlsrpt-admin@sender.example",
        "report-id": "20250314T000000Z.recipient.example.4f2a91@sender.example",
        "policies": [{
            "policy": {
                "policy-type": "sts",
                "policy-string": ["version: STSv1", "mode: enforce", "mx: mx1.recipient.example", "max_age: 1209600"],
                "policy-domain": "recipient.example",
                "mx-host": ["mx1.recipient.example"]
            },
            "summary": {"total-successful-session-count": 1482, "total-failure-session-count": 4},
            "failure-details": [{
                "result-type": "certificate-expired",
                "sending-mta-ip": "192.0.2.25",
                "receiving-mx-hostname": "mx1.recipient.example",
                "receiving-ip": "203.0.113.80",
                "failed-session-count": 4
            }]
        }]
    })
}

fn read_v(v: &Value) -> Result<Reading, ReadError> {
    read_json(v.to_string().as_bytes(), &Limits::default())
}

fn ok_v(v: &Value) -> Reading {
    read_v(v).unwrap_or_else(|e| panic!("{e}\n{v}"))
}

fn rules(r: &Reading) -> Vec<(&str, &'static str)> {
    r.deviations
        .iter()
        .map(|d| (d.path.as_str(), d.rule))
        .collect()
}

fn problems(e: &ReadError) -> Vec<&str> {
    match e {
        ReadError::Invalid(p) => p.iter().map(|p| p.path.as_str()).collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn valid_report_has_no_deviation() {
    let r = ok_v(&base());
    assert!(r.deviations.is_empty(), "{:?}", r.deviations);
    assert_eq!(
        r.report.organization_name.as_deref(),
        Some("Sender Example Mail Ltd")
    );
    assert_eq!(r.report.date_range.start.as_second(), 1_741_910_400);
    assert_eq!(r.report.date_range.end.as_second(), 1_741_996_799);
    let p = &r.report.policies[0];
    assert_eq!(p.policy.policy_type, PolicyType::Sts);
    assert_eq!(p.policy.policy_string.len(), 4);
    assert_eq!(p.summary.total_successful_session_count, 1482);
    assert_eq!(
        p.failure_details[0].result_type,
        ResultType::CertificateExpired
    );
    assert_eq!(
        p.failure_details[0].receiving_ip.as_deref(),
        Some("203.0.113.80")
    );
}

#[test]
fn json_18_mx_host_string_accepted() {
    let mut v = base();
    v["policies"][0]["policy"]["mx-host"] = json!("*.mail.company-y.example");
    let r = ok_v(&v);
    assert_eq!(rules(&r), [("policies[0].policy.mx-host", "JSON-18")]);
    assert_eq!(
        r.report.policies[0].policy.mx_host,
        ["*.mail.company-y.example"]
    );
}

#[test]
fn json_18_mx_host_on_tlsa_kept_and_flagged() {
    let mut v = base();
    v["policies"][0]["policy"]["policy-type"] = json!("tlsa");
    v["policies"][0]["policy"]["policy-string"] = json!(["3 1 1 AB"]);
    let r = ok_v(&v);
    assert_eq!(rules(&r), [("policies[0].policy.mx-host", "JSON-18")]);
    assert_eq!(
        r.report.policies[0].policy.mx_host,
        ["mx1.recipient.example"]
    );
}

#[test]
fn json_18_mx_prefix_kept_and_flagged() {
    let mut v = base();
    v["policies"][0]["policy"]["mx-host"] =
        json!(["mx1.recipient.example", "mx: mx2.recipient.example"]);
    let r = ok_v(&v);
    assert_eq!(rules(&r), [("policies[0].policy.mx-host[1]", "JSON-18")]);
    assert_eq!(
        r.report.policies[0].policy.mx_host[1],
        "mx: mx2.recipient.example"
    );
}

#[test]
fn dane_11_double_encoded_policy_string_unwrapped() {
    let mut v = base();
    v["policies"][0]["policy"]["policy-type"] = json!("tlsa");
    v["policies"][0]["policy"]
        .as_object_mut()
        .unwrap()
        .remove("mx-host");
    v["policies"][0]["policy"]["policy-string"] = json!(["[\"3 1 1 AA\",\"2 1 1 BB\"]"]);
    let r = ok_v(&v);
    assert_eq!(rules(&r), [("policies[0].policy.policy-string", "DANE-11")]);
    assert_eq!(
        r.report.policies[0].policy.policy_string,
        ["3 1 1 AA", "2 1 1 BB"]
    );
}

#[test]
fn dane_11_only_for_tlsa_and_only_when_it_parses() {
    let mut v = base();
    v["policies"][0]["policy"]["policy-type"] = json!("tlsa");
    v["policies"][0]["policy"]
        .as_object_mut()
        .unwrap()
        .remove("mx-host");
    v["policies"][0]["policy"]["policy-string"] = json!(["[not json"]);
    let r = ok_v(&v);
    assert!(rules(&r).is_empty());
    assert_eq!(r.report.policies[0].policy.policy_string, ["[not json"]);
    // An sts policy line that happens to look like an array is left alone.
    let mut v = base();
    v["policies"][0]["policy"]["policy-string"] = json!(["[\"a\"]"]);
    assert_eq!(
        ok_v(&v).report.policies[0].policy.policy_string,
        ["[\"a\"]"]
    );
}

#[test]
fn json_12_missing_offset_read_as_utc() {
    let mut v = base();
    v["date-range"]["start-datetime"] = json!("2025-03-14T00:00:00");
    let r = ok_v(&v);
    assert_eq!(rules(&r), [("date-range.start-datetime", "JSON-12")]);
    assert_eq!(r.report.date_range.start.as_second(), 1_741_910_400);
}

#[test]
fn json_12_next_day_midnight_end_kept_and_flagged() {
    let mut v = base();
    v["date-range"]["end-datetime"] = json!("2025-03-15T00:00:00Z");
    let r = ok_v(&v);
    assert_eq!(rules(&r), [("date-range.end-datetime", "JSON-12")]);
    assert_eq!(r.report.date_range.end.as_second(), 1_741_996_800);
}

#[test]
fn json_11_rfc3339_variants_accepted_without_deviation() {
    let mut v = base();
    v["date-range"]["start-datetime"] = json!("2025-03-14t01:00:00.000+01:00");
    v["date-range"]["end-datetime"] = json!("2025-03-14t23:59:59z");
    let r = ok_v(&v);
    assert!(r.deviations.is_empty(), "{:?}", r.deviations);
    assert_eq!(r.report.date_range.start.as_second(), 1_741_910_400);
}

#[test]
fn json_11_unparsable_date_is_an_error() {
    let mut v = base();
    v["date-range"]["start-datetime"] = json!("14 March 2025");
    let e = read_v(&v).unwrap_err();
    assert_eq!(problems(&e), ["date-range.start-datetime"]);
}

#[test]
fn json_11_partial_day_flagged() {
    let mut v = base();
    v["date-range"]["start-datetime"] = json!("2025-03-14T06:00:00Z");
    let r = ok_v(&v);
    assert_eq!(rules(&r), [("date-range", "JSON-11")]);
}

#[test]
fn json_13_contact_info_null_accepted() {
    let mut v = base();
    v["contact-info"] = Value::Null;
    let r = ok_v(&v);
    assert_eq!(rules(&r), [("contact-info", "JSON-13")]);
    assert_eq!(r.report.contact_info, None);
}

#[test]
fn json_17_sys4_no_policy_found_without_domain_accepted() {
    let mut v = base();
    v["policies"] = json!([{
        "policy": {"policy-type": "no-policy-found"},
        "summary": {"total-successful-session-count": 3, "total-failure-session-count": 0},
        "failure-details": []
    }]);
    let r = ok_v(&v);
    assert_eq!(rules(&r), [("policies[0].policy.policy-domain", "JSON-17")]);
    assert_eq!(r.report.policies[0].policy.policy_domain, None);
    assert!(r.report.policies[0].failure_details.is_empty());
}

#[test]
fn json_17_missing_domain_on_sts_is_an_error() {
    let mut v = base();
    v["policies"][0]["policy"]
        .as_object_mut()
        .unwrap()
        .remove("policy-domain");
    let e = read_v(&v).unwrap_err();
    assert_eq!(problems(&e), ["policies[0].policy.policy-domain"]);
}

#[test]
fn json_15_unknown_policy_type_kept_verbatim() {
    let mut v = base();
    v["policies"][0]["policy"]["policy-type"] = json!("dane-ng");
    v["policies"][0]["policy"]
        .as_object_mut()
        .unwrap()
        .remove("mx-host");
    let r = ok_v(&v);
    assert_eq!(rules(&r), [("policies[0].policy.policy-type", "JSON-15")]);
    assert_eq!(
        r.report.policies[0].policy.policy_type,
        PolicyType::Unknown("dane-ng".into())
    );
}

#[test]
fn json_21_unknown_result_type_kept_verbatim() {
    let mut v = base();
    v["policies"][0]["failure-details"][0]["result-type"] = json!("mta-sts-mx-mismatch");
    let r = ok_v(&v);
    assert_eq!(
        rules(&r),
        [("policies[0].failure-details[0].result-type", "JSON-21")]
    );
    assert_eq!(
        r.report.policies[0].failure_details[0].result_type,
        ResultType::Unknown("mta-sts-mx-mismatch".into())
    );
}

#[test]
fn json_27_additional_info_uri_read_as_alias() {
    let mut v = base();
    v["policies"][0]["failure-details"][0]["additional-info-uri"] = json!("https://x.example/a");
    let r = ok_v(&v);
    assert_eq!(
        rules(&r),
        [(
            "policies[0].failure-details[0].additional-info-uri",
            "JSON-27"
        )]
    );
    assert_eq!(
        r.report.policies[0].failure_details[0]
            .additional_information
            .as_deref(),
        Some("https://x.example/a")
    );
}

#[test]
fn json_27_real_key_wins_over_alias() {
    let mut v = base();
    v["policies"][0]["failure-details"][0]["additional-information"] = json!("https://a.example/");
    v["policies"][0]["failure-details"][0]["additional-info-uri"] = json!("https://b.example/");
    let r = ok_v(&v);
    assert_eq!(
        rules(&r),
        [(
            "policies[0].failure-details[0].additional-info-uri",
            "JSON-27"
        )]
    );
    assert!(r.deviations[0].message.contains("https://b.example/"));
    assert_eq!(
        r.report.policies[0].failure_details[0]
            .additional_information
            .as_deref(),
        Some("https://a.example/")
    );
}

#[test]
fn sts_10_trailing_cr_stripped() {
    let mut v = base();
    v["policies"][0]["policy"]["policy-string"] = json!(["version: STSv1\r", "mode: enforce\r"]);
    let r = ok_v(&v);
    assert_eq!(
        rules(&r),
        [
            ("policies[0].policy.policy-string[0]", "STS-10"),
            ("policies[0].policy.policy-string[1]", "STS-10")
        ]
    );
    assert_eq!(
        r.report.policies[0].policy.policy_string,
        ["version: STSv1", "mode: enforce"]
    );
}

#[test]
fn json_16_missing_policy_string_for_sts_flagged() {
    let mut v = base();
    v["policies"][0]["policy"]
        .as_object_mut()
        .unwrap()
        .remove("policy-string");
    let r = ok_v(&v);
    assert_eq!(rules(&r), [("policies[0].policy.policy-string", "JSON-16")]);
}

#[test]
fn json_30_failure_sum_mismatch_is_a_note_not_an_error() {
    let mut v = base();
    v["policies"][0]["summary"]["total-failure-session-count"] = json!(2);
    let r = ok_v(&v);
    assert_eq!(rules(&r), [("policies[0].failure-details", "JSON-30")]);
    assert_eq!(r.report.policies[0].summary.total_failure_session_count, 2);
    assert_eq!(
        r.report.policies[0].failure_details[0].failed_session_count,
        4
    );
}

#[test]
fn json_29_empty_and_null_read_as_absent() {
    let mut v = base();
    let fd = &mut v["policies"][0]["failure-details"][0];
    fd["sending-mta-ip"] = json!("");
    fd["receiving-ip"] = Value::Null;
    fd["failure-reason-code"] = json!("");
    fd["additional-information"] = json!("");
    let r = ok_v(&v);
    let mut got = rules(&r);
    got.sort();
    assert_eq!(
        got,
        [
            (
                "policies[0].failure-details[0].additional-information",
                "JSON-29"
            ),
            (
                "policies[0].failure-details[0].failure-reason-code",
                "JSON-29"
            ),
            ("policies[0].failure-details[0].receiving-ip", "JSON-29"),
            ("policies[0].failure-details[0].sending-mta-ip", "JSON-29"),
        ]
    );
    let fd = &r.report.policies[0].failure_details[0];
    assert_eq!(fd.sending_mta_ip, None);
    assert_eq!(fd.receiving_ip, None);
    assert_eq!(fd.failure_reason_code, None);
    assert_eq!(fd.additional_information, None);
}

#[test]
fn json_32_numeric_string_count_accepted() {
    let mut v = base();
    v["policies"][0]["summary"]["total-successful-session-count"] = json!("7");
    let r = ok_v(&v);
    assert_eq!(
        rules(&r),
        [(
            "policies[0].summary.total-successful-session-count",
            "JSON-32"
        )]
    );
    assert_eq!(
        r.report.policies[0].summary.total_successful_session_count,
        7
    );
}

#[test]
fn json_32_bad_counts_rejected() {
    for bad in [
        json!(-1),
        json!(1.5),
        json!(9007199254740992u64),
        json!("-7"),
        json!("7 "),
        json!(true),
    ] {
        let mut v = base();
        v["policies"][0]["failure-details"][0]["failed-session-count"] = bad.clone();
        let e = read_v(&v).unwrap_err();
        assert_eq!(
            problems(&e),
            ["policies[0].failure-details[0].failed-session-count"],
            "{bad}"
        );
    }
    // The largest I-JSON integer is fine.
    let mut v = base();
    v["policies"][0]["summary"]["total-successful-session-count"] = json!(9007199254740991u64);
    assert_eq!(
        ok_v(&v).report.policies[0]
            .summary
            .total_successful_session_count,
        (1 << 53) - 1
    );
}

#[test]
fn json_32_integral_float_accepted_with_deviation() {
    let text = base().to_string().replace("1482", "1482.0");
    let r = read_json(text.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(
        rules(&r),
        [(
            "policies[0].summary.total-successful-session-count",
            "JSON-32"
        )]
    );
    assert_eq!(
        r.report.policies[0].summary.total_successful_session_count,
        1482
    );
}

#[test]
fn json_22_invalid_ip_kept_verbatim() {
    let mut v = base();
    v["policies"][0]["failure-details"][0]["sending-mta-ip"] = json!("x.x.x.x");
    let r = ok_v(&v);
    assert_eq!(
        rules(&r),
        [("policies[0].failure-details[0].sending-mta-ip", "JSON-22")]
    );
    assert_eq!(
        r.report.policies[0].failure_details[0]
            .sending_mta_ip
            .as_deref(),
        Some("x.x.x.x")
    );
}

#[test]
fn json_25_non_canonical_receiving_ip_kept() {
    let mut v = base();
    v["policies"][0]["failure-details"][0]["receiving-ip"] = json!("2001:DB8:0::1");
    let r = ok_v(&v);
    assert_eq!(
        rules(&r),
        [("policies[0].failure-details[0].receiving-ip", "JSON-25")]
    );
    assert_eq!(
        r.report.policies[0].failure_details[0]
            .receiving_ip
            .as_deref(),
        Some("2001:DB8:0::1")
    );
}

#[test]
fn json_01_duplicate_key_rejected() {
    let text = r#"{"report-id":"a","report-id":"b"}"#;
    let e = read_json(text.as_bytes(), &Limits::default()).unwrap_err();
    assert!(
        matches!(&e, ReadError::DuplicateKey { key, .. } if key == "report-id"),
        "{e:?}"
    );
    assert!(e.to_string().contains("report-id"));
    // Also in a big object (hash-set path).
    let mut big = String::from("{");
    for i in 0..40 {
        big.push_str(&format!("\"k{i}\":1,"));
    }
    big.push_str("\"k7\":2}");
    let e = read_json(big.as_bytes(), &Limits::default()).unwrap_err();
    assert!(
        matches!(&e, ReadError::DuplicateKey { key, .. } if key == "k7"),
        "{e:?}"
    );
}

#[test]
fn json_01_bom_skipped_with_deviation() {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(base().to_string().as_bytes());
    let r = read_json(&bytes, &Limits::default()).unwrap();
    assert_eq!(rules(&r), [("$", "JSON-01")]);
}

#[test]
fn json_02_policies_not_an_array_rejected() {
    let mut v = base();
    let one = v["policies"][0].clone();
    v["policies"] = one;
    let e = read_v(&v).unwrap_err();
    assert_eq!(problems(&e), ["policies"]);
    assert!(e.to_string().contains("JSON-02"));
}

#[test]
fn rcv_11_unknown_members_ignored_and_noted() {
    let mut v = base();
    v["x-extension"] = json!({"a": [1, 2]});
    v["policies"][0]["policy"]["mx-host-pattern"] = json!("*.x");
    let r = ok_v(&v);
    let mut got = rules(&r);
    got.sort();
    assert_eq!(
        got,
        [
            ("policies[0].policy.mx-host-pattern", "RCV-11"),
            ("x-extension", "RCV-11")
        ]
    );
}

#[test]
fn all_missing_fields_named_in_one_error() {
    let mut v = base();
    let o = v.as_object_mut().unwrap();
    o.remove("report-id");
    o.remove("date-range");
    let fd = &mut v["policies"][0]["failure-details"][0];
    fd.as_object_mut().unwrap().remove("result-type");
    fd.as_object_mut().unwrap().remove("failed-session-count");
    v["policies"][0]["summary"]
        .as_object_mut()
        .unwrap()
        .remove("total-successful-session-count");
    let e = read_v(&v).unwrap_err();
    assert_eq!(
        problems(&e),
        [
            "date-range",
            "report-id",
            "policies[0].summary.total-successful-session-count",
            "policies[0].failure-details[0].result-type",
            "policies[0].failure-details[0].failed-session-count",
        ]
    );
    let msg = e.to_string();
    for p in [
        "date-range",
        "report-id",
        "result-type",
        "failed-session-count",
    ] {
        assert!(msg.contains(p), "{msg}");
    }
}

#[test]
fn missing_policy_and_summary_are_errors() {
    let mut v = base();
    v["policies"] = json!([{}]);
    let e = read_v(&v).unwrap_err();
    assert_eq!(problems(&e), ["policies[0].policy", "policies[0].summary"]);
    let mut v = base();
    v["policies"][0]["policy"]
        .as_object_mut()
        .unwrap()
        .remove("policy-type");
    assert_eq!(
        problems(&read_v(&v).unwrap_err()),
        ["policies[0].policy.policy-type"]
    );
    let mut v = base();
    v["date-range"]
        .as_object_mut()
        .unwrap()
        .remove("end-datetime");
    assert_eq!(
        problems(&read_v(&v).unwrap_err()),
        ["date-range.end-datetime"]
    );
}

#[test]
fn not_json_not_object_empty() {
    let l = Limits::default();
    assert!(matches!(read_json(b"", &l), Err(ReadError::Empty)));
    assert!(matches!(read_json(b"  \n", &l), Err(ReadError::Empty)));
    assert!(matches!(
        read_json(b"[1,2]", &l),
        Err(ReadError::NotAnObject { found: "an array" })
    ));
    let e = read_json(b"{\n  \"a\": ]\n}", &l).unwrap_err();
    let ReadError::Syntax { at, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(at.line, 2);
    assert!(e.to_string().contains("line 2"), "{e}");
    // Truncated JSON.
    let text = base().to_string();
    let e = read_json(&text.as_bytes()[..text.len() / 2], &l).unwrap_err();
    assert!(matches!(e, ReadError::Syntax { .. }), "{e:?}");
    // Trailing garbage after the object.
    let e = read_json(format!("{text} x").as_bytes(), &l).unwrap_err();
    assert!(matches!(e, ReadError::Syntax { .. }), "{e:?}");
}

#[test]
fn invalid_utf8_names_byte_offset() {
    let mut bytes = br#"{"report-id":""#.to_vec();
    let at = bytes.len();
    bytes.extend_from_slice(b"\xff\xfe\"}");
    let e = read_json(&bytes, &Limits::default()).unwrap_err();
    assert_eq!(e, ReadError::Utf8 { offset: at });
    assert!(e.to_string().contains(&format!("byte {at}")));
}

#[test]
fn limit_input_size() {
    let l = Limits {
        max_input_bytes: 100,
        ..Limits::default()
    };
    let text = base().to_string();
    let e = read_json(text.as_bytes(), &l).unwrap_err();
    assert!(matches!(e, ReadError::InputTooLarge { max: 100, .. }));
    assert!(e.to_string().contains("max_input_bytes"));
    let e = read_report(
        &gz(text.as_bytes()),
        &Limits {
            max_input_bytes: 10,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, ReadError::InputTooLarge { .. }), "{e:?}");
}

#[test]
fn limit_depth_10000_nested_is_a_clean_error() {
    for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
        let text = format!("{}1{}", open.repeat(10_000), close.repeat(10_000));
        let e = read_json(text.as_bytes(), &Limits::default()).unwrap_err();
        assert!(
            matches!(
                e,
                ReadError::Limit {
                    limit: "max_depth",
                    max: 16,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("max_depth"));
    }
    // Depth 16 itself is fine (as far as nesting goes).
    let text = format!("{{\"x\":{}1{}}}", "[".repeat(15), "]".repeat(15));
    let e = read_json(text.as_bytes(), &Limits::default()).unwrap_err();
    assert!(matches!(e, ReadError::Invalid(_)), "{e:?}");
}

#[test]
fn limit_array_len_string_len_policies_failure_details() {
    let text = format!("{{\"x\":[{}1]}}", "1,".repeat(100));
    let l = Limits {
        max_array_len: 50,
        ..Limits::default()
    };
    let e = read_json(text.as_bytes(), &l).unwrap_err();
    assert!(
        matches!(
            e,
            ReadError::Limit {
                limit: "max_array_len",
                ..
            }
        ),
        "{e:?}"
    );

    let mut v = base();
    v["organization-name"] = json!("o".repeat(70_000));
    let e = read_v(&v).unwrap_err();
    assert!(
        matches!(
            e,
            ReadError::Limit {
                limit: "max_string_len",
                ..
            }
        ),
        "{e:?}"
    );

    let mut v = base();
    let p = v["policies"][0].clone();
    v["policies"] = json!([p.clone(), p.clone(), p]);
    let l = Limits {
        max_policies: 2,
        ..Limits::default()
    };
    let e = read_json(v.to_string().as_bytes(), &l).unwrap_err();
    assert!(
        matches!(
            &e,
            ReadError::TooMany {
                limit: "max_policies",
                len: 3,
                ..
            }
        ),
        "{e:?}"
    );

    let mut v = base();
    let fd = v["policies"][0]["failure-details"][0].clone();
    v["policies"][0]["failure-details"] = json!([fd.clone(), fd]);
    let l = Limits {
        max_failure_details: 1,
        ..Limits::default()
    };
    let e = read_json(v.to_string().as_bytes(), &l).unwrap_err();
    assert!(
        matches!(
            &e,
            ReadError::TooMany {
                limit: "max_failure_details",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("policies[0].failure-details"));
}

#[test]
fn gzip_read_like_plain() {
    let text = base().to_string();
    let a = read_report(text.as_bytes(), &Limits::default()).unwrap();
    let b = read_report(&gz(text.as_bytes()), &Limits::default()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn gzip_truncated_and_trailing_data_rejected() {
    let z = gz(base().to_string().as_bytes());
    let e = gunzip(&z[..z.len() - 10], &Limits::default()).unwrap_err();
    assert!(matches!(e, ReadError::Gzip(_)), "{e:?}");
    let e = gunzip(&z[..z.len() / 2], &Limits::default()).unwrap_err();
    assert!(matches!(e, ReadError::Gzip(_)), "{e:?}");
    let mut more = z.clone();
    more.extend_from_slice(b"garbage");
    let e = gunzip(&more, &Limits::default()).unwrap_err();
    assert_eq!(
        e,
        ReadError::GzipTrailingData {
            offset: z.len(),
            count: 7
        }
    );
    // A second member counts as trailing data too.
    let mut two = z.clone();
    two.extend_from_slice(&z);
    assert!(matches!(
        gunzip(&two, &Limits::default()),
        Err(ReadError::GzipTrailingData { .. })
    ));
}

#[test]
fn gzip_corrupt_crc_rejected() {
    let mut z = gz(base().to_string().as_bytes());
    let n = z.len();
    z[n - 8] ^= 0xff; // CRC32
    assert!(matches!(
        gunzip(&z, &Limits::default()),
        Err(ReadError::Gzip(_))
    ));
}

#[test]
fn gzip_given_to_read_json_is_named() {
    let e = read_json(&gz(base().to_string().as_bytes()), &Limits::default()).unwrap_err();
    assert_eq!(e, ReadError::UnexpectedGzip);
}

#[test]
fn limit_total_values_bounds_memory() {
    // Many small arrays, none over the per-array limit, still hit the document budget.
    let inner = format!("[{}0]", "0,".repeat(40));
    let text = format!("{{\"x\":[{}{inner}]}}", format!("{inner},").repeat(40));
    let l = Limits {
        max_array_len: 1000,
        ..Limits::default()
    };
    let e = read_json(text.as_bytes(), &l).unwrap_err();
    assert!(
        matches!(
            e,
            ReadError::Limit {
                limit: "max_array_len",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn plain_json_given_to_gunzip_is_not_gzip() {
    let e = gunzip(base().to_string().as_bytes(), &Limits::default()).unwrap_err();
    assert_eq!(e, ReadError::NotGzip);
}

#[test]
fn gzip_of_non_json_is_a_syntax_error() {
    let e = read_report(&gz(b"hello"), &Limits::default()).unwrap_err();
    assert!(matches!(e, ReadError::Syntax { .. }), "{e:?}");
}

/// A gzip stream that would inflate to 1 GiB of zeros: built from deflate blocks that repeat
/// (each sync-flushed MiB of zeros after the first compresses to the same bytes), without
/// a trailer, since the reader must stop long before it.
fn bomb() -> Vec<u8> {
    let mut c = flate2::Compress::new(flate2::Compression::best(), false);
    let zeros = vec![0u8; 1 << 20];
    let block = |c: &mut flate2::Compress| {
        let mut out = Vec::with_capacity(1 << 16);
        let before = c.total_in();
        c.compress_vec(&zeros, &mut out, flate2::FlushCompress::Sync)
            .unwrap();
        assert_eq!(c.total_in() - before, zeros.len() as u64);
        out
    };
    let first = block(&mut c);
    let second = block(&mut c);
    let third = block(&mut c);
    assert_eq!(second, third, "deflate blocks of zeros repeat");
    let mut z = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    z.extend_from_slice(&first);
    for _ in 1..1024 {
        z.extend_from_slice(&second);
    }
    z
}

#[test]
fn gzip_bomb_fails_fast_with_bounded_output() {
    let z = bomb();
    assert!(z.len() < 2 << 20, "{}", z.len());
    let l = Limits {
        max_decompressed_bytes: 4 << 20,
        ..Limits::default()
    };
    let t = Instant::now();
    let e = read_report(&z, &l).unwrap_err();
    assert_eq!(e, ReadError::DecompressedTooLarge { max: 4 << 20 });
    assert!(e.to_string().contains("max_decompressed_bytes"));
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // And with the default 20 MiB cap.
    let e = read_report(&z, &Limits::default()).unwrap_err();
    assert_eq!(e, ReadError::DecompressedTooLarge { max: 20 << 20 });
}

// ---- never panic ---------------------------------------------------------------------------

fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        Just(json!("2025-03-14T00:00:00")),
        Just(json!("[\"3 1 1 AA\"]")),
        Just(json!("7")),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(("[a-z-]{1,8}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Replaces some value inside `v` (chosen by `pick`) with `new`.
fn replace_at(v: &mut Value, pick: usize, new: Value) -> bool {
    let len = match v {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => return false,
    };
    if len == 0 {
        return false;
    }
    let pick = pick % (len * 2);
    let i = pick / 2;
    let child: &mut Value = match v {
        Value::Object(m) => m.values_mut().nth(i).unwrap(),
        Value::Array(a) => &mut a[i],
        _ => return false,
    };
    if pick.is_multiple_of(2)
        || !replace_at(child, pick.wrapping_mul(31).wrapping_add(7), new.clone())
    {
        *child = new;
    }
    true
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let _ = read_report(&bytes, &Limits::default());
        let mut gz_magic = vec![0x1f, 0x8b];
        gz_magic.extend_from_slice(&bytes);
        let _ = read_report(&gz_magic, &Limits::default());
    }

    #[test]
    fn mutated_reports_never_panic(pick in 0usize..10_000, new in any_json()) {
        let mut v = base();
        replace_at(&mut v, pick, new);
        match read_v(&v) {
            Ok(r) => proptest::prop_assert!(!r.report.report_id.is_empty()),
            Err(ReadError::Invalid(p)) => proptest::prop_assert!(!p.is_empty()),
            Err(_) => {}
        }
    }
}

#[test]
fn messages_stay_short_whatever_the_input() {
    // 5000 broken policies: the error lists a bounded number of problems.
    let mut v = base();
    v["policies"] = Value::Array(vec![json!({}); 5000]);
    let e = read_v(&v).unwrap_err();
    let ReadError::Invalid(p) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(p.len(), tlsrpt_core::read::MAX_PROBLEMS + 1);
    assert!(
        p.last().unwrap().message.contains("9000 more problems"),
        "{:?}",
        p.last()
    );
    let msg = e.to_string();
    assert!(msg.len() < 5_000, "{} bytes", msg.len());
    assert!(msg.contains("and 981 more"), "{msg}");
    // Echoed values are cut and escaped.
    let mut v = base();
    v["policies"][0]["failure-details"][0]["sending-mta-ip"] =
        json!(format!("x\n{}", "y".repeat(10_000)));
    v[&"k".repeat(10_000)] = json!(1);
    let r = ok_v(&v);
    for d in &r.deviations {
        assert!(d.to_string().len() < 400, "{d}");
        assert!(!d.message.contains('\n'));
    }
    // Deviations are capped too.
    let mut v = base();
    for i in 0..3000 {
        v[format!("x-{i}")] = json!(i);
    }
    let r = ok_v(&v);
    assert_eq!(r.deviations.len(), tlsrpt_core::read::MAX_DEVIATIONS + 1);
    assert!(r.deviations.last().unwrap().message.contains("2000 more"));
}

#[test]
fn json_32_minus_zero_and_huge_integers() {
    let text = base().to_string().replace("1482", "-0");
    let r = read_json(text.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(
        r.report.policies[0].summary.total_successful_session_count,
        0
    );
    let text = base()
        .to_string()
        .replace("1482", "99999999999999999999999");
    let e = read_json(text.as_bytes(), &Limits::default()).unwrap_err();
    assert_eq!(
        problems(&e),
        ["policies[0].summary.total-successful-session-count"]
    );
    assert!(e.to_string().contains("2^53-1"), "{e}");
}

#[test]
fn json_01_lone_surrogate_and_control_characters_rejected() {
    for bad in [r#"{"report-id":"\ud800"}"#, "{\"report-id\":\"a\u{1}b\"}"] {
        let e = read_json(bad.as_bytes(), &Limits::default()).unwrap_err();
        assert!(matches!(e, ReadError::Syntax { .. }), "{bad}: {e:?}");
    }
}

/// The forms the reader checks in place (IP addresses, `mx:` keys, URIs, CR/LF line ends,
/// indexes in paths) give exactly the deviations and messages of the general code.
#[test]
fn in_place_checks_keep_their_messages() {
    let mut v = base();
    let detail = |ip: &str, info: &str| {
        json!({
            "result-type": "certificate-expired",
            "sending-mta-ip": ip,
            "failed-session-count": 1,
            "additional-information": info
        })
    };
    let mut details = Vec::new();
    for ip in [
        "2001:db8::1",
        "::ffff:192.0.2.1",
        "::",
        "1:2:3:4:5:6:7:8",
        "1:0:0:4:5:0:0:0",
        "192.0.2.025",
        "2001:0db8::0001",
        "FE80::1",
        "::ffff:c000:201",
        "255.255.255.255",
        "1::2::3",
    ] {
        details.push(detail(ip, "https://x.example/a"));
    }
    details.push(detail("192.0.2.1", "https://x.example/a b"));
    details.push(detail("192.0.2.1", "https://x.example/\u{a0}"));
    details.push(detail("192.0.2.1", "https://x.example/\u{e9}"));
    v["policies"][0]["failure-details"] = json!(details);
    v["policies"][0]["summary"]["total-failure-session-count"] = json!(details.len());
    v["policies"][0]["policy"]["mx-host"] =
        json!([" MX: mx1.recipient.example", "Mx:x", "mx", "m\u{e9}:x"]);
    v["policies"][0]["policy"]["policy-string"] =
        json!(["version: STSv1\r\n", "\n", "mode: enforce"]);
    let r = ok_v(&v);
    let got: Vec<String> = r
        .deviations
        .iter()
        .map(|d| format!("{} {} {}", d.path, d.rule, d.message))
        .collect();
    let fd = "policies[0].failure-details";
    let want = [
        "policies[0].policy.policy-string[0] STS-10 line ends in a CR/LF line terminator (RFC 8461 erratum 6253); stripped".to_string(),
        "policies[0].policy.policy-string[1] STS-10 line ends in a CR/LF line terminator (RFC 8461 erratum 6253); stripped".to_string(),
        "policies[0].policy.mx-host[0] JSON-18 \" MX: mx1.recipient.example\" is a policy line with its \"mx:\" key, not an mx pattern; kept as written".to_string(),
        "policies[0].policy.mx-host[1] JSON-18 \"Mx:x\" is a policy line with its \"mx:\" key, not an mx pattern; kept as written".to_string(),
        "policies[0].policy.mx-host[3] JSON-18 contains U-labels; RFC 8460 §4.4 requires A-labels; kept as written".to_string(),
        format!("{fd}[4].sending-mta-ip JSON-22 \"1:0:0:4:5:0:0:0\" is not in canonical form (RFC 5952 / dotted quad); kept as written, written out as \"1:0:0:4:5::\""),
        format!("{fd}[5].sending-mta-ip JSON-22 \"192.0.2.025\" is not an IP address; kept verbatim, never used as one"),
        format!("{fd}[6].sending-mta-ip JSON-22 \"2001:0db8::0001\" is not in canonical form (RFC 5952 / dotted quad); kept as written, written out as \"2001:db8::1\""),
        format!("{fd}[7].sending-mta-ip JSON-22 \"FE80::1\" is not in canonical form (RFC 5952 / dotted quad); kept as written, written out as \"fe80::1\""),
        format!("{fd}[8].sending-mta-ip JSON-22 \"::ffff:c000:201\" is not in canonical form (RFC 5952 / dotted quad); kept as written, written out as \"::ffff:192.0.2.1\""),
        format!("{fd}[10].sending-mta-ip JSON-22 \"1::2::3\" is not an IP address; kept verbatim, never used as one"),
        format!("{fd}[11].additional-information JSON-27 not a URI (no scheme, or contains whitespace); kept as written"),
        format!("{fd}[12].additional-information JSON-27 not a URI (no scheme, or contains whitespace); kept as written"),
    ];
    assert_eq!(got, want);
    assert_eq!(
        r.report.policies[0].policy.policy_string[0],
        "version: STSv1"
    );
    assert_eq!(r.report.policies[0].policy.policy_string[1], "");
}
