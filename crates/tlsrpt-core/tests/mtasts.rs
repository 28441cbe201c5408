//! RFC 8461 pieces: `_mta-sts` TXT selection (STS-01), policy parsing (STS-02), MX matching
//! (STS-04).

use tlsrpt_core::mtasts::{
    MAX_MAX_AGE, MAX_POLICY_LEN, Mode, NoStsRecord, PolicyError, StsRecordError, mx_matches,
    parse_policy, parse_record, policy_url, select_record,
};

fn rr(strings: &[&str]) -> Vec<Vec<u8>> {
    strings.iter().map(|s| s.as_bytes().to_vec()).collect()
}

const GOOD: &str = "version: STSv1\nmode: enforce\nmx: mx1.recipient.example\n\
                    mx: *.backup.recipient.example\nmax_age: 1209600\n";

#[test]
fn sts_01_one_record_among_others_selected_and_strings_joined() {
    let set = vec![
        rr(&["v=spf1 -all"]),
        rr(&["v=STSv1; id=2026", "1129T000000;"]),
    ];
    let sel = select_record(&set);
    let (text, rec) = sel.outcome.unwrap();
    assert_eq!(text, "v=STSv1; id=20261129T000000;");
    assert_eq!(rec.id, "20261129T000000");
    assert!(sel.warnings.is_empty());
}

#[test]
fn sts_01_two_records_mean_no_policy() {
    let set = vec![rr(&["v=STSv1; id=a"]), rr(&["v=STSv1; id=b"])];
    assert_eq!(
        select_record(&set).outcome.unwrap_err(),
        NoStsRecord::Several { count: 2 }
    );
}

#[test]
fn sts_01_no_record_and_wrong_case_version_ignored() {
    let set = vec![rr(&["V=STSv1; id=a"]), rr(&["v=stsv1; id=b"])];
    assert_eq!(
        select_record(&set).outcome.unwrap_err(),
        NoStsRecord::NoRecord
    );
    let empty: Vec<Vec<Vec<u8>>> = vec![];
    assert_eq!(
        select_record(&empty).outcome.unwrap_err(),
        NoStsRecord::NoRecord
    );
}

#[test]
fn sts_01_invalid_record_means_no_policy() {
    let set = vec![rr(&["v=STSv1; id=has-hyphen"])];
    match select_record(&set).outcome.unwrap_err() {
        NoStsRecord::Invalid { error, text } => {
            assert_eq!(text, "v=STSv1; id=has-hyphen");
            assert_eq!(error, StsRecordError::BadId { offset: 12 });
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse_record("v=STSv1;").unwrap_err(),
        StsRecordError::MissingId
    );
    assert_eq!(
        parse_record("v=STSv1").unwrap_err(),
        StsRecordError::MissingId
    );
    assert!(matches!(
        parse_record("v=STSv1; id=abc; ext").unwrap_err(),
        StsRecordError::BadField { offset: 17, .. }
    ));
    assert!(matches!(
        parse_record("v=STSv1; id=123456789012345678901234567890123").unwrap_err(),
        StsRecordError::BadId { .. }
    ));
    assert!(matches!(
        parse_record("v=STSv1; id=a\u{e9}").unwrap_err(),
        StsRecordError::BadByte { offset: 13, .. }
    ));
}

#[test]
fn sts_01_extensions_ignored_first_id_wins_wsp_before_semicolon_warned() {
    let rec = parse_record("v=STSv1; foo=bar; id=abc123 ;id=zzz;").unwrap();
    assert_eq!(rec.id, "abc123");
    assert_eq!(rec.extensions, vec![("foo".to_string(), "bar".to_string())]);
    let set = vec![rr(&["v=STSv1 ; id=x1"])];
    let sel = select_record(&set);
    assert_eq!(sel.outcome.unwrap().1.id, "x1");
    assert_eq!(sel.warnings.len(), 1);
    assert_eq!(sel.warnings[0].rule, "STS-01");
}

#[test]
fn sts_02_valid_policy_parsed_with_lines_kept() {
    let p = parse_policy(GOOD.as_bytes()).unwrap();
    assert_eq!(p.policy.mode, Mode::Enforce);
    assert_eq!(p.policy.max_age, 1_209_600);
    let mx: Vec<&str> = p.policy.mx.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(mx, ["mx1.recipient.example", "*.backup.recipient.example"]);
    // STS-10: the lines as served, without terminators.
    assert_eq!(
        p.lines,
        [
            "version: STSv1",
            "mode: enforce",
            "mx: mx1.recipient.example",
            "mx: *.backup.recipient.example",
            "max_age: 1209600"
        ]
    );
    assert!(p.warnings.is_empty());
}

#[test]
fn sts_02_crlf_lf_mixed_and_unterminated_last_line() {
    let crlf = GOOD.replace('\n', "\r\n");
    let a = parse_policy(crlf.as_bytes()).unwrap();
    let b = parse_policy(GOOD.trim_end().as_bytes()).unwrap();
    let mixed = "version: STSv1\r\nmode: testing\nmx: a.example\r\nmax_age: 0";
    let c = parse_policy(mixed.as_bytes()).unwrap();
    assert_eq!(a.policy, parse_policy(GOOD.as_bytes()).unwrap().policy);
    assert_eq!(a.lines, b.lines);
    assert_eq!(c.policy.mode, Mode::Testing);
    assert_eq!(c.policy.max_age, 0);
    assert_eq!(c.lines[0], "version: STSv1");
}

#[test]
fn sts_02_first_occurrence_wins_except_mx() {
    let text = "version: STSv1\nmode: testing\nmode: enforce\nmx: a.example\nmx: b.example\n\
                max_age: 10\nmax_age: 20\n";
    let p = parse_policy(text.as_bytes()).unwrap();
    assert_eq!(p.policy.mode, Mode::Testing);
    assert_eq!(p.policy.max_age, 10);
    assert_eq!(p.policy.mx.len(), 2);
    let paths: Vec<&str> = p.warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(paths, ["line 3", "line 7"]);
}

#[test]
fn sts_02_extension_keys_ignored_and_whitespace_optional() {
    let text = "version:STSv1\nmode:\t none  \nmax_age: 5\nx-note: hello world\n";
    let p = parse_policy(text.as_bytes()).unwrap();
    assert_eq!(p.policy.mode, Mode::None);
    assert!(p.policy.mx.is_empty(), "mode none needs no mx");
    assert_eq!(
        p.policy.extensions,
        vec![("x-note".to_string(), "hello world".to_string())]
    );
}

#[test]
fn sts_02_bad_version_names_the_line() {
    let text = GOOD.replace("STSv1", "STSv2");
    let e = parse_policy(text.as_bytes()).unwrap_err();
    assert!(matches!(e, PolicyError::BadLine { line: 1, .. }), "{e}");
    assert!(e.to_string().contains("STSv1"), "{e}");
    let text = GOOD.replace("STSv1", "stsv1");
    assert!(parse_policy(text.as_bytes()).is_err());
}

#[test]
fn sts_02_bad_mode_and_missing_keys() {
    let e = parse_policy(GOOD.replace("enforce", "Enforce").as_bytes()).unwrap_err();
    assert!(matches!(e, PolicyError::BadLine { line: 2, .. }), "{e}");
    let e = parse_policy(b"version: STSv1\nmx: a.example\nmax_age: 1\n").unwrap_err();
    assert_eq!(e, PolicyError::Missing { key: "mode" });
    let e = parse_policy(b"mode: testing\nmx: a.example\nmax_age: 1\n").unwrap_err();
    assert_eq!(e, PolicyError::Missing { key: "version" });
    let e = parse_policy(b"version: STSv1\nmode: testing\nmx: a.example\n").unwrap_err();
    assert_eq!(e, PolicyError::Missing { key: "max_age" });
    let e = parse_policy(b"version: STSv1\nmode: enforce\nmax_age: 1\n").unwrap_err();
    assert_eq!(e, PolicyError::Missing { key: "mx" });
}

#[test]
fn sts_02_max_age_range() {
    let at = |v: &str| {
        parse_policy(
            format!("version: STSv1\nmode: testing\nmx: a.example\nmax_age: {v}\n").as_bytes(),
        )
    };
    assert_eq!(at("0").unwrap().policy.max_age, 0);
    assert_eq!(
        at(&MAX_MAX_AGE.to_string()).unwrap().policy.max_age,
        MAX_MAX_AGE
    );
    for bad in ["31557601", "12345678901", "-1", "1d", "1.5"] {
        let e = at(bad).unwrap_err();
        assert!(
            matches!(e, PolicyError::BadLine { line: 4, .. }),
            "{bad}: {e}"
        );
    }
}

#[test]
fn sts_02_invalid_lines_and_limits() {
    let e = parse_policy(b"version: STSv1\nthis is not a field\n").unwrap_err();
    assert!(matches!(e, PolicyError::BadLine { line: 2, .. }), "{e}");
    let e = parse_policy(b"version: STSv1\nmode : testing\n").unwrap_err();
    assert!(matches!(e, PolicyError::BadLine { line: 2, .. }), "{e}");
    let e = parse_policy(b"version: STSv1\nmode: testing\rmx: a\n").unwrap_err();
    assert!(matches!(e, PolicyError::BadLine { line: 2, .. }), "{e}");
    let e = parse_policy(&[0xff, 0xfe]).unwrap_err();
    assert_eq!(e, PolicyError::NotUtf8 { offset: 0 });
    let big = vec![b'a'; MAX_POLICY_LEN + 1];
    assert!(matches!(
        parse_policy(&big).unwrap_err(),
        PolicyError::TooLong { .. }
    ));
    let e =
        parse_policy(b"version: STSv1\nmode: testing\nmx: a..example\nmax_age: 1\n").unwrap_err();
    assert!(matches!(e, PolicyError::BadLine { line: 3, .. }), "{e}");
    let e =
        parse_policy(b"version: STSv1\nmode: testing\nmx: a.*.example\nmax_age: 1\n").unwrap_err();
    assert!(matches!(e, PolicyError::BadLine { line: 3, .. }), "{e}");
}

#[test]
fn sts_02_blank_line_and_upper_case_mx_warned() {
    let p =
        parse_policy(b"version: STSv1\n\nmode: testing\nmx: MX.Example.\nmax_age: 1\n").unwrap();
    assert_eq!(p.lines.len(), 5);
    assert_eq!(p.lines[1], "");
    assert_eq!(p.policy.mx[0].text, "MX.Example.");
    assert_eq!(p.policy.mx[0].pattern, "mx.example");
    assert_eq!(p.warnings.len(), 2);
    assert!(p.policy.covers("mx.example"));
}

#[test]
fn sts_04_wildcard_matches_exactly_one_label() {
    assert!(mx_matches("*.example.com", "mail.example.com"));
    assert!(mx_matches("*.example.com", "MAIL.Example.COM."));
    assert!(!mx_matches("*.example.com", "example.com"));
    assert!(!mx_matches("*.example.com", "a.b.example.com"));
    assert!(!mx_matches("*.example.com", ".example.com"));
    assert!(!mx_matches("*.example.com", "mailexample.com"));
    assert!(mx_matches("mx1.example.com", "mx1.example.com."));
    assert!(!mx_matches("mx1.example.com", "mx2.example.com"));
    assert!(!mx_matches("mx1.example.com", "a.mx1.example.com"));
}

#[test]
fn sts_04_policy_covers_uses_all_patterns() {
    let p = parse_policy(GOOD.as_bytes()).unwrap().policy;
    assert!(p.covers("mx1.recipient.example"));
    assert!(p.covers("x.backup.recipient.example"));
    assert!(!p.covers("mx2.recipient.example"));
    assert!(!p.covers("backup.recipient.example"));
}

#[test]
fn policy_url_is_well_known() {
    assert_eq!(
        policy_url("example.com."),
        "https://mta-sts.example.com/.well-known/mta-sts.txt"
    );
}
