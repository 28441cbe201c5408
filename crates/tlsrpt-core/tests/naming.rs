//! RFC 8460 §5.1 filenames, §5.3 Subjects and report-ids (REQUIREMENTS MAIL-07..10, JSON-14,
//! RPT-16).

use jiff::Timestamp;
use jiff::civil::date;
use tlsrpt_core::DateRange;
use tlsrpt_core::naming::{
    NamingError, ReportFilename, ReportSubject, is_msg_id, parse_filename, parse_subject, report_id,
};

fn rules(devs: &[tlsrpt_core::Deviation]) -> Vec<&'static str> {
    devs.iter().map(|d| d.rule).collect()
}

// ---------- §5.1 filename ----------

#[test]
fn mail_08_filename_built_per_abnf() {
    let f = ReportFilename::for_day(
        "sender.example",
        "recipient.example",
        date(2025, 3, 14),
        Some("4f2a91"),
        true,
    )
    .unwrap();
    assert_eq!(
        f.to_string(),
        "sender.example!recipient.example!1741910400!1741996799!4f2a91.json.gz"
    );
    let plain = ReportFilename::for_day(
        "sender.example",
        "recipient.example",
        date(2025, 3, 14),
        None,
        false,
    )
    .unwrap();
    assert_eq!(
        plain.to_string(),
        "sender.example!recipient.example!1741910400!1741996799.json"
    );
}

#[test]
fn mail_09_end_is_begin_plus_86399_for_a_day() {
    for d in [date(2020, 2, 29), date(2024, 12, 31), date(1970, 1, 1)] {
        let f = ReportFilename::for_day("a.example", "b.example", d, None, true).unwrap();
        assert_eq!(f.end - f.begin, 86_399);
        let range = tlsrpt_core::DateRange::utc_day(d);
        assert_eq!(f.begin, range.start.as_second());
        assert_eq!(range.end.to_string(), format!("{d}T23:59:59Z"));
        assert!(f.to_string().ends_with(".json.gz"));
    }
}

#[test]
fn mail_09_filename_from_date_range_keeps_a_seven_day_range() {
    let range = DateRange {
        start: "2020-01-01T00:00:00Z".parse::<Timestamp>().unwrap(),
        end: "2020-01-07T23:59:59Z".parse::<Timestamp>().unwrap(),
    };
    let f = ReportFilename::new("google.com", "example.com", range, Some("001"), false).unwrap();
    assert_eq!(f.begin, 1_577_836_800);
    assert_eq!(f.end, 1_577_836_800 + 7 * 86_400 - 1);
    assert_eq!(f.date_range(), Some(range));
}

#[test]
fn mail_10_unique_id_must_be_alphanumeric_when_building() {
    for bad in ["4f-2a", "a.b", "a_b", "", "é1"] {
        let err =
            ReportFilename::for_day("a.example", "b.example", date(2025, 1, 1), Some(bad), true)
                .unwrap_err();
        assert!(
            matches!(
                err,
                NamingError::NotAlphanumeric {
                    part: "unique-id",
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn rpt_16_filename_domains_are_a_labels() {
    let f = ReportFilename::for_day(
        "bücher.example",
        "MÜNCHEN.example.",
        date(2025, 1, 1),
        None,
        true,
    )
    .unwrap();
    assert_eq!(f.sender, "xn--bcher-kva.example");
    assert_eq!(f.policy_domain, "xn--mnchen-3ya.example");
    assert!(f.to_string().is_ascii());
}

#[test]
fn mail_08_building_rejects_bad_domain_naming_the_part() {
    let err = ReportFilename::for_day("a.example", "bad!domain", date(2025, 1, 1), None, true)
        .unwrap_err();
    assert!(
        matches!(
            err,
            NamingError::Domain {
                part: "policy-domain",
                ..
            }
        ),
        "{err}"
    );
    let err =
        ReportFilename::for_day("../etc", "b.example", date(2025, 1, 1), None, true).unwrap_err();
    assert!(
        matches!(err, NamingError::Domain { part: "sender", .. }),
        "{err}"
    );
}

#[test]
fn mail_08_parse_real_filenames() {
    let g = parse_filename("google.com!example.com!1747094400!1747180799!001.json.gz").unwrap();
    assert!(g.deviations.is_empty(), "{:?}", g.deviations);
    assert_eq!(g.filename.sender, "google.com");
    assert_eq!(g.filename.policy_domain, "example.com");
    assert_eq!(g.filename.begin, 1_747_094_400);
    assert_eq!(g.filename.end, 1_747_180_799);
    assert_eq!(g.filename.unique_id.as_deref(), Some("001"));
    assert!(g.filename.gzip);

    let p = parse_filename("ppatk.go.id!example.com!1740960000!1741046399.json").unwrap();
    assert!(p.deviations.is_empty());
    assert_eq!(p.filename.unique_id, None);
    assert!(!p.filename.gzip);
}

#[test]
fn mail_08_parse_every_testdata_filename() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/reports/mailweave");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let parsed = parse_filename(&name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(parsed.filename.sender.contains('.'));
        // A round trip through Display gives the name back (they are all well-formed).
        assert_eq!(parsed.filename.to_string(), name);
        n += 1;
    }
    assert!(n >= 5);
}

#[test]
fn mail_08_build_then_parse_round_trips() {
    let f = ReportFilename::for_day(
        "sender.example",
        "recipient.example",
        date(2025, 3, 14),
        Some("X9"),
        false,
    )
    .unwrap();
    assert_eq!(parse_filename(&f.to_string()).unwrap().filename, f);
}

#[test]
fn mail_08_parse_errors_name_the_part() {
    let cases: [(&str, &str); 7] = [
        ("a.example!b.example!1!2.txt", "extension"),
        ("a.example!b.example!1.json", "filename"),
        ("a!b!c!d!e!f.json", "filename"),
        ("a.example!b.example!12x!2.json", "begin-timestamp"),
        (
            "a.example!b.example!1!99999999999999999999.json",
            "end-timestamp",
        ),
        ("a_b.example!b.example!1!2.json", "sender"),
        ("a.example!!1!2.json", "policy-domain"),
    ];
    for (name, part) in cases {
        let err = parse_filename(name).unwrap_err();
        let got = match &err {
            NamingError::Domain { part, .. } | NamingError::Malformed { part, .. } => *part,
            NamingError::NotAlphanumeric { part, .. } => *part,
        };
        assert_eq!(got, part, "{name}: {err}");
        assert!(err.to_string().starts_with(part), "{err}");
    }
}

#[test]
fn mail_10_parse_tolerates_non_alphanumeric_unique_id_with_deviation() {
    let p = parse_filename("a.example!b.example!1!2!abc-def_1.json").unwrap();
    assert_eq!(p.filename.unique_id.as_deref(), Some("abc-def_1"));
    assert_eq!(rules(&p.deviations), ["MAIL-10"]);
}

#[test]
fn mail_09_parse_tolerates_bare_gz_and_upper_case_extension() {
    let p = parse_filename("a.example!b.example!1!2.gz").unwrap();
    assert!(p.filename.gzip);
    assert_eq!(rules(&p.deviations), ["MAIL-09"]);
    let p = parse_filename("a.example!b.example!1!2.JSON.GZ").unwrap();
    assert!(p.filename.gzip);
    assert_eq!(rules(&p.deviations), ["MAIL-09"]);
}

#[test]
fn rcv_05_filename_path_components_are_dropped_never_used() {
    let p = parse_filename("../../etc/a.example!b.example!1!2.json").unwrap();
    assert_eq!(p.filename.sender, "a.example");
    assert_eq!(rules(&p.deviations), ["RCV-05"]);
    // Traversal inside a field is not a domain: refused, not followed.
    assert!(parse_filename("..!b.example!1!2.json").is_err());
}

#[test]
fn rpt_16_parse_converts_u_labels_with_deviation() {
    let p = parse_filename("bücher.example!b.example!1!2.json").unwrap();
    assert_eq!(p.filename.sender, "xn--bcher-kva.example");
    assert_eq!(rules(&p.deviations), ["RPT-16"]);
}

#[test]
fn mail_08_parse_end_before_begin_is_a_deviation() {
    let p = parse_filename("a.example!b.example!200!100.json").unwrap();
    assert_eq!(rules(&p.deviations), ["MAIL-08"]);
}

#[test]
fn mail_08_overlong_filename_refused() {
    let name = format!("{}.json", "a".repeat(5000));
    assert!(matches!(
        parse_filename(&name),
        Err(NamingError::Malformed {
            part: "filename",
            ..
        })
    ));
}

// ---------- §5.3 Subject ----------

#[test]
fn mail_07_subject_built_per_abnf() {
    let id = "20250314T000000Z.recipient.example.4f2a91@sender.example";
    let s = ReportSubject::new("recipient.example", "sender.example", id).unwrap();
    assert_eq!(
        s.to_string(),
        "Report Domain: recipient.example Submitter: sender.example Report-ID: <20250314T000000Z.recipient.example.4f2a91@sender.example>"
    );
    let back = parse_subject(&s.to_string()).unwrap();
    assert!(back.deviations.is_empty(), "{:?}", back.deviations);
    assert_eq!(back.subject, s);
}

#[test]
fn mail_07_subject_refuses_non_msg_id_report_id_when_building() {
    let err = ReportSubject::new("a.example", "b.example", "2025-06-01T00:00:00Z_example.org")
        .unwrap_err();
    assert!(
        matches!(
            err,
            NamingError::Malformed {
                part: "Report-ID",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn mail_07_parse_folded_subject_from_rfc_example() {
    let raw = "Report Domain: example.net\r\n    Submitter: mail.sender.example.com\r\n    Report-ID: <735ff.e317+bf22029@example.net>";
    let p = parse_subject(raw).unwrap();
    assert!(p.deviations.is_empty(), "{:?}", p.deviations);
    assert_eq!(p.subject.policy_domain, "example.net");
    assert_eq!(p.subject.submitter, "mail.sender.example.com");
    assert_eq!(p.subject.report_id, "735ff.e317+bf22029@example.net");
}

#[test]
fn mail_07_parse_microsoft_subject_without_angle_brackets() {
    let raw = "Report Domain: contoso.com Submitter: microsoft.com Report-ID: 133925885310113267+contoso.com";
    let p = parse_subject(raw).unwrap();
    assert_eq!(p.subject.report_id, "133925885310113267+contoso.com");
    assert_eq!(p.subject.submitter, "microsoft.com");
    // One for the brackets, one for the non-msg-id shape.
    assert_eq!(rules(&p.deviations), ["MAIL-07", "MAIL-07"]);
    assert!(p.deviations[0].message.contains("angle brackets"));
}

#[test]
fn mail_07_parse_tolerates_prefix_case_and_glued_values() {
    let raw =
        "[SPAM] report domain:a.example SUBMITTER: b.example Report-ID: <x@b.example> (comment)";
    let p = parse_subject(raw).unwrap();
    assert_eq!(p.subject.policy_domain, "a.example");
    assert_eq!(p.subject.submitter, "b.example");
    assert_eq!(p.subject.report_id, "x@b.example");
    let msgs: Vec<&str> = p.deviations.iter().map(|d| d.message.as_str()).collect();
    assert!(msgs.iter().any(|m| m.contains("text before")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("no whitespace")), "{msgs:?}");
    assert!(
        msgs.iter().any(|m| m.contains("\"SUBMITTER:\"")),
        "{msgs:?}"
    );
    assert!(
        !msgs.iter().any(|m| m.contains("trailing")),
        "comment is CFWS: {msgs:?}"
    );
}

#[test]
fn mail_07_parse_errors_name_the_part() {
    let cases = [
        ("Hello world", "Subject"),
        ("Report Domain: a.example", "Submitter"),
        ("Report Domain: a.example Submitter: b.example", "Report-ID"),
        (
            "Report Domain: a.example Sender: b.example Report-ID: <x@y>",
            "Submitter",
        ),
        (
            "Report Domain: not_a_domain Submitter: b.example Report-ID: <x@y>",
            "Domain",
        ),
        (
            "Report Domain: a.example Submitter: b.example Report-ID:",
            "Report-ID",
        ),
    ];
    for (raw, part) in cases {
        let err = parse_subject(raw).unwrap_err();
        let got = match &err {
            NamingError::Domain { part, .. } | NamingError::Malformed { part, .. } => *part,
            NamingError::NotAlphanumeric { part, .. } => *part,
        };
        assert_eq!(got, part, "{raw}: {err}");
    }
}

// ---------- report-id ----------

#[test]
fn json_14_report_id_is_msg_id_shaped_and_matches_example() {
    let id = report_id(
        date(2025, 3, 14),
        "recipient.example",
        "sender.example",
        "4f2a91",
    )
    .unwrap();
    assert_eq!(
        id,
        "20250314T000000Z.recipient.example.4f2a91@sender.example"
    );
    assert!(is_msg_id(&id));
    // The same value can go into the Subject (MAIL-07).
    ReportSubject::new("recipient.example", "sender.example", &id).unwrap();
}

#[test]
fn json_14_report_id_differs_by_each_input_and_is_pure() {
    let base = report_id(date(2025, 3, 14), "r.example", "s.example", "a1").unwrap();
    assert_eq!(
        base,
        report_id(date(2025, 3, 14), "r.example", "s.example", "a1").unwrap()
    );
    let others = [
        report_id(date(2025, 3, 15), "r.example", "s.example", "a1").unwrap(),
        report_id(date(2025, 3, 14), "q.example", "s.example", "a1").unwrap(),
        report_id(date(2025, 3, 14), "r.example", "t.example", "a1").unwrap(),
        report_id(date(2025, 3, 14), "r.example", "s.example", "a2").unwrap(),
    ];
    for o in others {
        assert_ne!(o, base);
        assert!(is_msg_id(&o));
    }
}

#[test]
fn json_14_report_id_uses_a_labels_and_rejects_bad_token() {
    let id = report_id(date(2025, 3, 14), "bücher.example", "sender.example", "z").unwrap();
    assert_eq!(
        id,
        "20250314T000000Z.xn--bcher-kva.example.z@sender.example"
    );
    assert!(matches!(
        report_id(date(2025, 3, 14), "r.example", "s.example", "a-b"),
        Err(NamingError::NotAlphanumeric { .. })
    ));
    assert!(matches!(
        report_id(date(2025, 3, 14), "r.example", "s.example", ""),
        Err(NamingError::NotAlphanumeric { .. })
    ));
}

#[test]
fn json_14_real_report_ids_are_not_msg_ids() {
    // Receivers must never require msg-id syntax: these real ids fail it.
    for id in [
        "2025-06-01T00:00:00Z_example.org",
        "133944884956529435+",
        "2025-09-20T00:00:00Z_idx1_example.com",
    ] {
        assert!(!is_msg_id(id), "{id}");
    }
    assert!(is_msg_id("735ff.e317+bf22029@example.net"));
    assert!(is_msg_id("a@[192.0.2.1]"));
    assert!(!is_msg_id("a..b@c"));
    assert!(!is_msg_id("@c"));
}
