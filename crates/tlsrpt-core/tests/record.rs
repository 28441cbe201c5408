//! Tests for `tlsrpt_core::record`: every row of REQUIREMENTS §13.1 plus offsets, limits,
//! hostile input and round trips.

use proptest::prelude::*;
use tlsrpt_core::record::{
    MAX_CHARACTER_STRING, MAX_RECORD_LEN, MAX_USABLE_RUA, NoTlsrpt, Outcome, RecordError,
    ReportingUri, Selection, TlsrptRecord, begins_with_version, parse_record, parse_record_bytes,
    select, split_presentation, to_presentation,
};

/// An RRset from RRs given as lists of character-strings.
fn rrset(rrs: &[&[&str]]) -> Vec<Vec<Vec<u8>>> {
    rrs.iter()
        .map(|rr| rr.iter().map(|s| s.as_bytes().to_vec()).collect())
        .collect()
}

/// Selects from RRs of one character-string each.
fn select_strs(rrs: &[&str]) -> Selection {
    let v: Vec<Vec<Vec<u8>>> = rrs.iter().map(|s| vec![s.as_bytes().to_vec()]).collect();
    select(&v)
}

/// The rua URIs of a Found outcome; panics (test failure) otherwise.
fn found_rua(sel: &Selection) -> Vec<String> {
    match &sel.outcome {
        Outcome::Found { parsed, .. } => parsed
            .record
            .rua
            .iter()
            .map(|u| u.as_str().to_string())
            .collect(),
        other => panic!("expected a record, got {other:?}"),
    }
}

fn no_tlsrpt(sel: &Selection) -> &NoTlsrpt {
    match &sel.outcome {
        Outcome::NoTlsrpt(n) => n,
        other => panic!("expected no TLSRPT, got {other:?}"),
    }
}

fn invalid_error(sel: &Selection) -> &RecordError {
    match no_tlsrpt(sel) {
        NoTlsrpt::Invalid { error, .. } => error,
        other => panic!("expected an invalid record, got {other:?}"),
    }
}

fn err(text: &str) -> RecordError {
    match parse_record(text) {
        Err(e) => e,
        Ok(p) => panic!("expected {text:?} to be invalid, got {p:?}"),
    }
}

fn has_warning(sel: &Selection, rule: &str) -> bool {
    sel.warnings.iter().any(|w| w.rule == rule)
}

// ---- §13.1 valid RRsets ---------------------------------------------------------------

#[test]
fn dns_04_minimal_record_gives_one_mailto() {
    let sel = select_strs(&["v=TLSRPTv1; rua=mailto:tlsrpt@recipient.example"]);
    assert_eq!(found_rua(&sel), ["mailto:tlsrpt@recipient.example"]);
    let rec = sel.record().unwrap();
    assert_eq!(
        rec.rua[0],
        ReportingUri::Mailto {
            address: "tlsrpt@recipient.example".into(),
            uri: "mailto:tlsrpt@recipient.example".into()
        }
    );
    assert!(sel.warnings.is_empty(), "{:?}", sel.warnings);
}

#[test]
fn dns_08_comma_list_without_wsp_gives_two_destinations() {
    let sel = select_strs(&[
        "v=TLSRPTv1;rua=mailto:tls@recipient.example,https://reports.recipient.example/tlsrpt",
    ]);
    assert_eq!(
        found_rua(&sel),
        [
            "mailto:tls@recipient.example",
            "https://reports.recipient.example/tlsrpt"
        ]
    );
    let rec = sel.record().unwrap();
    assert!(matches!(rec.rua[1], ReportingUri::Https { .. }));
}

#[test]
fn dns_13_wsp_around_comma_and_trailing_semicolon_allowed() {
    let sel =
        select_strs(&["v=TLSRPTv1; rua=mailto:tls@recipient.example , https://r.example/x ;"]);
    assert_eq!(
        found_rua(&sel),
        ["mailto:tls@recipient.example", "https://r.example/x"]
    );
    // Allowed, but the interop note (sys4 does not trim) is passed on.
    assert!(has_warning(&sel, "DNS-13"));
}

#[test]
fn dns_04_spf_record_dropped_tlsrpt_used() {
    let sel = select_strs(&[
        "v=spf1 -all",
        "v=TLSRPTv1; rua=mailto:tls@recipient.example",
    ]);
    assert_eq!(found_rua(&sel), ["mailto:tls@recipient.example"]);
    match &sel.outcome {
        Outcome::Found { text, .. } => {
            assert_eq!(text, "v=TLSRPTv1; rua=mailto:tls@recipient.example")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn dns_03_strings_joined_without_space() {
    let rrs = rrset(&[&["v=TLSRPTv1; rua=mailto:tls@recip", "ient.example"]]);
    let sel = select(&rrs);
    assert_eq!(found_rua(&sel), ["mailto:tls@recipient.example"]);
}

#[test]
fn dns_03_split_inside_version_token_still_selected() {
    let rrs = rrset(&[&["v=TLS", "RPTv1;", " rua=mailto:a@exa", "mple.net"]]);
    let sel = select(&rrs);
    assert_eq!(found_rua(&sel), ["mailto:a@example.net"]);
}

#[test]
fn dns_15_unknown_extension_ignored() {
    let sel = select_strs(&["v=TLSRPTv1; rua=mailto:tls@recipient.example; note=hello_world"]);
    assert_eq!(found_rua(&sel), ["mailto:tls@recipient.example"]);
    let rec = sel.record().unwrap();
    assert_eq!(rec.extensions.len(), 1);
    assert_eq!(rec.extensions[0].name, "note");
    assert_eq!(rec.extensions[0].value, "hello_world");
    assert!(sel.warnings.is_empty(), "{:?}", sel.warnings);
}

#[test]
fn dns_13_fields_in_any_order() {
    let sel = select_strs(&["v=TLSRPTv1; ext=1; rua=mailto:tls@recipient.example"]);
    assert_eq!(found_rua(&sel), ["mailto:tls@recipient.example"]);
    // Valid, but sys4's parser needs rua second: warn.
    assert!(has_warning(&sel, "DNS-13"));
}

#[test]
fn dns_12_repeated_rua_union_in_order() {
    let sel = select_strs(&[
        "v=TLSRPTv1; rua=mailto:a@recipient.example; rua=mailto:b@recipient.example",
    ]);
    assert_eq!(
        found_rua(&sel),
        ["mailto:a@recipient.example", "mailto:b@recipient.example"]
    );
    assert!(has_warning(&sel, "DNS-12"));
}

#[test]
fn dns_09_encoded_bang_decoded_in_local_part() {
    let sel = select_strs(&["v=TLSRPTv1; rua=mailto:tls%21ops@recipient.example"]);
    match &sel.record().unwrap().rua[0] {
        ReportingUri::Mailto { address, uri } => {
            assert_eq!(address, "tls!ops@recipient.example");
            assert_eq!(uri, "mailto:tls%21ops@recipient.example");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn dns_17_cname_target_record_selected() {
    // The resolver follows `_smtp._tls.recipient.example CNAME _smtp._tls.provider.example`
    // and hands over the provider's TXT RRset; selection treats it like any other.
    let sel = select_strs(&["v=TLSRPTv1; rua=https://tlsrpt.provider.example/v1/recipient"]);
    assert_eq!(
        found_rua(&sel),
        ["https://tlsrpt.provider.example/v1/recipient"]
    );
}

#[test]
fn dns_05_wsp_before_semicolon_accepted_with_warning() {
    let sel = select_strs(&["v=TLSRPTv1 ; rua=mailto:tls@recipient.example"]);
    assert_eq!(found_rua(&sel), ["mailto:tls@recipient.example"]);
    assert!(has_warning(&sel, "DNS-05"));
    // Tab counts as WSP too.
    let sel = select_strs(&["v=TLSRPTv1\t;rua=mailto:tls@recipient.example"]);
    assert_eq!(found_rua(&sel), ["mailto:tls@recipient.example"]);
    // Never emitted.
    let canon = sel.record().unwrap().to_canonical_string().unwrap();
    assert!(canon.starts_with("v=TLSRPTv1; rua="), "{canon}");
}

// ---- §13.1 invalid RRsets ---------------------------------------------------------------

#[test]
fn dns_04_empty_rrset_is_none() {
    let sel = select::<Vec<Vec<u8>>, Vec<u8>>(&[]);
    assert_eq!(no_tlsrpt(&sel), &NoTlsrpt::NoRecord);
}

#[test]
fn dns_07_version_alone_is_dropped_and_has_no_rua() {
    let sel = select_strs(&["v=TLSRPTv1"]);
    assert_eq!(no_tlsrpt(&sel), &NoTlsrpt::NoRecord);
    assert!(has_warning(&sel, "DNS-04"), "near miss explained");
    assert!(matches!(
        err("v=TLSRPTv1"),
        RecordError::NoRua { offset: 10 }
    ));
}

#[test]
fn dns_07_version_with_semicolon_has_no_rua() {
    let sel = select_strs(&["v=TLSRPTv1;"]);
    let e = invalid_error(&sel);
    assert!(matches!(e, RecordError::NoRua { offset: 11 }), "{e:?}");
    assert_eq!(e.rule(), "DNS-07");
}

#[test]
fn dns_07_extension_without_rua_invalid() {
    assert!(matches!(
        err("v=TLSRPTv1; ext=1"),
        RecordError::NoRua { .. }
    ));
}

#[test]
fn dns_08_empty_rua_invalid() {
    let sel = select_strs(&["v=TLSRPTv1; rua="]);
    assert_eq!(invalid_error(&sel), &RecordError::EmptyUri { offset: 16 });
}

#[test]
fn dns_08_rua_of_empty_uris_invalid() {
    let sel = select_strs(&["v=TLSRPTv1; rua=,,"]);
    assert_eq!(invalid_error(&sel), &RecordError::EmptyUri { offset: 16 });
    // A trailing comma leaves an empty URI too.
    assert_eq!(
        err("v=TLSRPTv1; rua=mailto:a@b.example,"),
        RecordError::EmptyUri { offset: 35 }
    );
}

#[test]
fn dns_08_uri_without_scheme_invalid() {
    let sel = select_strs(&["v=TLSRPTv1; rua=tls@recipient.example"]);
    let e = invalid_error(&sel);
    assert_eq!(e, &RecordError::NoScheme { offset: 16 });
    assert!(e.hint().unwrap().contains("mailto:"));
}

#[test]
fn dns_06_uppercase_v_dropped() {
    let sel = select_strs(&["V=TLSRPTv1; rua=mailto:tls@recipient.example"]);
    assert_eq!(no_tlsrpt(&sel), &NoTlsrpt::NoRecord);
    assert!(has_warning(&sel, "DNS-04"));
    assert!(matches!(
        err("V=TLSRPTv1; rua=mailto:tls@recipient.example"),
        RecordError::VersionCase { offset: 0, .. }
    ));
}

#[test]
fn dns_06_lowercase_version_dropped() {
    let sel = select_strs(&["v=tlsrptv1; rua=mailto:tls@recipient.example"]);
    assert_eq!(no_tlsrpt(&sel), &NoTlsrpt::NoRecord);
    let e = err("v=tlsrptv1; rua=mailto:tls@recipient.example");
    assert!(matches!(e, RecordError::VersionCase { .. }), "{e:?}");
    assert_eq!(e.rule(), "DNS-06");
}

#[test]
fn dns_08_uppercase_rua_invalid() {
    let sel = select_strs(&["v=TLSRPTv1; RUA=mailto:tls@recipient.example"]);
    let e = invalid_error(&sel);
    assert_eq!(
        e,
        &RecordError::RuaCase {
            offset: 12,
            found: "RUA".into()
        }
    );
}

#[test]
fn dns_13_wsp_around_equals_invalid() {
    let sel = select_strs(&["v=TLSRPTv1; rua = mailto:tls@recipient.example"]);
    let e = invalid_error(&sel);
    assert_eq!(e, &RecordError::WspAroundEquals { offset: 15 });
    assert_eq!(
        e.to_string(),
        "at byte 15: WSP is not allowed around \"=\" (RFC 8460 §3 ABNF) (DNS-13)"
    );
    assert_eq!(
        err("v=TLSRPTv1; rua= mailto:tls@recipient.example"),
        RecordError::WspAroundEquals { offset: 16 }
    );
    assert_eq!(
        err("v =TLSRPTv1; rua=mailto:tls@recipient.example"),
        RecordError::WspAroundEquals { offset: 1 }
    );
}

#[test]
fn dns_06_version_not_first_dropped() {
    let sel = select_strs(&["rua=mailto:tls@recipient.example; v=TLSRPTv1"]);
    assert_eq!(no_tlsrpt(&sel), &NoTlsrpt::NoRecord);
    assert!(
        sel.warnings
            .iter()
            .any(|w| w.message.contains("must come first"))
    );
    assert_eq!(
        err("rua=mailto:tls@recipient.example; v=TLSRPTv1"),
        RecordError::MissingVersion { offset: 0 }
    );
}

#[test]
fn dns_06_version_2_dropped() {
    let sel = select_strs(&["v=TLSRPTv2; rua=mailto:tls@recipient.example"]);
    assert_eq!(no_tlsrpt(&sel), &NoTlsrpt::NoRecord);
    assert!(matches!(
        err("v=TLSRPTv2; rua=mailto:tls@recipient.example"),
        RecordError::NotVersion1 { .. }
    ));
}

#[test]
fn dns_04_version_10_dropped() {
    let sel = select_strs(&["v=TLSRPTv10; rua=mailto:tls@recipient.example"]);
    assert_eq!(no_tlsrpt(&sel), &NoTlsrpt::NoRecord);
    assert!(!begins_with_version(&[b"v=TLSRPTv10;".to_vec()]));
    assert_eq!(
        err("v=TLSRPTv10; rua=mailto:tls@recipient.example"),
        RecordError::NotVersion1 {
            offset: 0,
            found: "v=TLSRPTv10".into()
        }
    );
}

#[test]
fn dns_09_literal_bang_size_suffix_invalid() {
    let sel = select_strs(&["v=TLSRPTv1; rua=mailto:tls@recipient.example!10m"]);
    let e = invalid_error(&sel);
    assert_eq!(e, &RecordError::UnencodedBang { offset: 44 });
    assert_eq!(e.rule(), "DNS-09");
}

#[test]
fn dns_13_empty_field_invalid() {
    let sel = select_strs(&["v=TLSRPTv1; rua=mailto:a@x.example;; "]);
    assert_eq!(invalid_error(&sel), &RecordError::EmptyField { offset: 35 });
    assert_eq!(
        err("v=TLSRPTv1; rua=mailto:a@x.example; ;"),
        RecordError::EmptyField { offset: 36 }
    );
}

#[test]
fn dns_14_space_in_extension_value_invalid() {
    let sel = select_strs(&["v=TLSRPTv1; rua=mailto:a@x.example; note=hello world"]);
    assert_eq!(
        invalid_error(&sel),
        &RecordError::WspInExtensionValue {
            offset: 46,
            name: "note".into()
        }
    );
}

#[test]
fn dns_14_empty_extension_value_invalid() {
    let sel = select_strs(&["v=TLSRPTv1; rua=mailto:a@x.example; x="]);
    assert_eq!(
        invalid_error(&sel),
        &RecordError::EmptyExtensionValue {
            offset: 38,
            name: "x".into()
        }
    );
}

#[test]
fn dns_14_extension_name_over_32_chars_invalid() {
    let sel =
        select_strs(&["v=TLSRPTv1; rua=mailto:a@x.example; a234567890123456789012345678901234=1"]);
    assert_eq!(
        invalid_error(&sel),
        &RecordError::ExtensionNameTooLong {
            offset: 36,
            len: 34
        }
    );
    // Exactly 32 is fine, 33 is not.
    let n32 = "a".repeat(32);
    assert!(parse_record(&format!("v=TLSRPTv1; rua=mailto:a@x.example; {n32}=1")).is_ok());
    assert!(matches!(
        err(&format!("v=TLSRPTv1; rua=mailto:a@x.example; {n32}b=1")),
        RecordError::ExtensionNameTooLong { len: 33, .. }
    ));
}

#[test]
fn dns_04_two_records_give_none() {
    let sel = select_strs(&[
        "v=TLSRPTv1; rua=mailto:a@x.example",
        "v=TLSRPTv1; rua=mailto:b@x.example",
    ]);
    assert_eq!(no_tlsrpt(&sel), &NoTlsrpt::Several { count: 2 });
    assert!(sel.record().is_none());
}

#[test]
fn dns_10_only_http_uri_nothing_to_send() {
    let sel = select_strs(&["v=TLSRPTv1; rua=http://r.example/x"]);
    match &sel.outcome {
        Outcome::NothingToSend { parsed, .. } => {
            assert_eq!(
                parsed.record.rua,
                [ReportingUri::Unsupported {
                    scheme: "http".into(),
                    uri: "http://r.example/x".into()
                }]
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(sel.record().is_none());
    assert!(has_warning(&sel, "DNS-10"));
}

// ---- more DNS rules ---------------------------------------------------------------------

#[test]
fn dns_10_unsupported_uri_kept_beside_usable_one() {
    let sel = select_strs(&["v=TLSRPTv1; rua=ftp://r.example/x,mailto:a@x.example"]);
    let rec = sel.record().unwrap();
    assert_eq!(rec.rua.len(), 2);
    let usable: Vec<_> = rec.usable_rua().map(|u| u.as_str()).collect();
    assert_eq!(usable, ["mailto:a@x.example"]);
    assert!(has_warning(&sel, "DNS-10"));
}

#[test]
fn dns_10_https_without_host_invalid() {
    assert_eq!(
        err("v=TLSRPTv1; rua=https:/path"),
        RecordError::BadHttps { offset: 16 }
    );
    assert_eq!(
        err("v=TLSRPTv1; rua=https://"),
        RecordError::BadHttps { offset: 16 }
    );
}

#[test]
fn dns_11_scheme_case_insensitive_stored_lowercase() {
    let p = parse_record("v=TLSRPTv1; rua=MAILTO:a@x.example,HTTPS://r.example/X").unwrap();
    assert_eq!(
        p.record.rua,
        [
            ReportingUri::Mailto {
                address: "a@x.example".into(),
                uri: "mailto:a@x.example".into()
            },
            ReportingUri::Https {
                uri: "https://r.example/X".into()
            }
        ]
    );
}

#[test]
fn dns_11_mailto_hfields_ignored() {
    let p = parse_record("v=TLSRPTv1; rua=mailto:a@x.example?subject=hi").unwrap();
    match &p.record.rua[0] {
        ReportingUri::Mailto { address, uri } => {
            assert_eq!(address, "a@x.example");
            assert_eq!(uri, "mailto:a@x.example?subject=hi");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn dns_11_encoded_comma_in_mailto_rejected() {
    let e = err("v=TLSRPTv1; rua=mailto:a@x.example%2Cb@x.example");
    assert!(
        matches!(e, RecordError::BadMailto { offset: 16, .. }),
        "{e:?}"
    );
    assert_eq!(e.rule(), "DNS-11");
}

#[test]
fn dns_11_mailto_without_address_rejected() {
    assert!(matches!(
        err("v=TLSRPTv1; rua=mailto:"),
        RecordError::BadMailto { .. }
    ));
    assert!(matches!(
        err("v=TLSRPTv1; rua=mailto:postmaster"),
        RecordError::BadMailto { .. }
    ));
    // Percent-decoded to bytes that are not UTF-8.
    assert!(matches!(
        err("v=TLSRPTv1; rua=mailto:%FF@x.example"),
        RecordError::BadMailto { .. }
    ));
}

#[test]
fn dns_11_mailto_utf8_local_part_decoded() {
    let p = parse_record("v=TLSRPTv1; rua=mailto:j%C3%B6rg@x.example").unwrap();
    match &p.record.rua[0] {
        ReportingUri::Mailto { address, .. } => assert_eq!(address, "jörg@x.example"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn dns_08_bad_percent_escape_and_bad_characters() {
    assert_eq!(
        err("v=TLSRPTv1; rua=https://r.example/%zz"),
        RecordError::BadPercentEncoding { offset: 34 }
    );
    assert_eq!(
        err("v=TLSRPTv1; rua=https://r.example/a\"b"),
        RecordError::InvalidUriChar {
            offset: 35,
            found: '"'
        }
    );
    assert_eq!(
        err("v=TLSRPTv1; rua=1mailto:a@x.example"),
        RecordError::NoScheme { offset: 16 }
    );
}

#[test]
fn dns_08_uris_separated_by_space_invalid() {
    assert_eq!(
        err("v=TLSRPTv1; rua=mailto:a@x.example mailto:b@x.example"),
        RecordError::MissingComma { offset: 34 }
    );
}

#[test]
fn dns_13_trailing_whitespace_without_semicolon_invalid() {
    assert_eq!(
        err("v=TLSRPTv1; rua=mailto:a@x.example "),
        RecordError::TrailingWhitespace { offset: 34 }
    );
    // With the `;` it is a valid trailing delimiter.
    assert!(parse_record("v=TLSRPTv1; rua=mailto:a@x.example ; ").is_ok());
}

#[test]
fn dns_13_missing_delimiter_after_version() {
    assert_eq!(
        err("v=TLSRPTv1 rua=mailto:a@x.example"),
        RecordError::ExpectedDelimiter {
            offset: 11,
            found: 'r'
        }
    );
}

#[test]
fn dns_13_comma_after_version_is_not_a_delimiter() {
    assert_eq!(
        err("v=TLSRPTv1,rua=mailto:a@x.example"),
        RecordError::ExpectedDelimiter {
            offset: 10,
            found: ','
        }
    );
    // Garbage after the version token is not echoed whole into the message.
    let e = err(&format!("v=TLSRPTv1x{}", "y".repeat(1000)));
    assert!(e.to_string().len() < 200, "{e}");
}

#[test]
fn dns_14_bad_extension_names_and_values() {
    assert_eq!(
        err("v=TLSRPTv1; rua=mailto:a@x.example; _x=1"),
        RecordError::BadFieldName {
            offset: 36,
            found: '_'
        }
    );
    assert_eq!(
        err("v=TLSRPTv1; rua=mailto:a@x.example; x=a=b"),
        RecordError::EqualsInExtensionValue { offset: 39 }
    );
    assert!(matches!(
        err("v=TLSRPTv1; rua=mailto:a@x.example; novalue"),
        RecordError::MissingEquals { offset: 43, .. }
    ));
    // Names may hold `_`, `-`, `.` after the first character; values any printable but `;=`.
    let p = parse_record(
        "v=TLSRPTv1; rua=mailto:a@x.example; 9a_b-c.d=!\"#$%&'()*+,-./:<>?@[\\]^_`{|}~",
    )
    .unwrap();
    assert_eq!(p.record.extensions[0].name, "9a_b-c.d");
}

#[test]
fn dns_16_selected_invalid_record_means_none() {
    let sel = select_strs(&["v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@x.example!10m"]);
    match no_tlsrpt(&sel) {
        NoTlsrpt::Invalid { text, error } => {
            assert_eq!(text, "v=TLSRPTv1; rua=mailto:a@x.example!10m");
            assert_eq!(error.offset(), 34);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(no_tlsrpt(&sel).rule(), "DNS-16");
}

#[test]
fn dns_22_only_first_five_usable_uris_acted_on() {
    let uris: Vec<String> = (0..7).map(|i| format!("mailto:r{i}@x.example")).collect();
    let text = format!("v=TLSRPTv1; rua=http://skip.example/,{}", uris.join(","));
    let sel = select_strs(&[&text]);
    let rec = sel.record().unwrap();
    assert_eq!(rec.rua.len(), 8, "everything kept in the record");
    let used: Vec<&str> = rec.usable_rua().map(|u| u.as_str()).collect();
    assert_eq!(used.len(), MAX_USABLE_RUA);
    assert_eq!(
        used,
        uris[..MAX_USABLE_RUA]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    assert!(has_warning(&sel, "DNS-22"));
}

#[test]
fn dns_22_record_too_long_rejected() {
    let long = format!(
        "v=TLSRPTv1; rua=mailto:a@x.example; x={}",
        "y".repeat(MAX_RECORD_LEN)
    );
    let e = err(&long);
    assert_eq!(
        e,
        RecordError::TooLong {
            offset: MAX_RECORD_LEN,
            len: long.len()
        }
    );
    assert_eq!(e.rule(), "DNS-22");
}

#[test]
fn dns_22_character_string_over_255_octets_rejected() {
    let first = "v=TLSRPTv1; rua=mailto:a@x.example;";
    let second = format!(" x={}", "y".repeat(MAX_CHARACTER_STRING));
    let rrs = rrset(&[&[first, &second]]);
    let e = invalid_error(&select(&rrs)).clone();
    assert_eq!(
        e,
        RecordError::CharacterStringTooLong {
            offset: first.len(),
            index: 2,
            len: MAX_CHARACTER_STRING + 3
        }
    );
}

// ---- hostile input ----------------------------------------------------------------------

#[test]
fn non_utf8_byte_rejected_with_offset() {
    let mut text = b"v=TLSRPTv1; rua=mailto:a@x.example".to_vec();
    text.insert(23, 0xff);
    assert_eq!(
        parse_record_bytes(&text),
        Err(RecordError::NonAscii {
            offset: 23,
            byte: 0xff
        })
    );
    let sel = select(&[vec![text.clone()]]);
    assert_eq!(
        invalid_error(&sel),
        &RecordError::NonAscii {
            offset: 23,
            byte: 0xff
        }
    );
    assert!(
        err("v=TLSRPTv1; rua=mailto:a@x.example\n")
            .to_string()
            .starts_with("at byte 34: control character 0x0A")
    );
}

#[test]
fn non_utf8_in_dropped_rr_is_ignored() {
    let rrs = vec![
        vec![vec![0xff, 0xfe, 0x00, b'v']],
        vec![b"v=TLSRPTv1; rua=mailto:a@x.example".to_vec()],
    ];
    assert_eq!(found_rua(&select(&rrs)), ["mailto:a@x.example"]);
}

#[test]
fn garbage_64k_does_not_panic() {
    // Deterministic pseudo-random bytes (xorshift), with and without the version prefix.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let garbage: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    assert!(parse_record_bytes(&garbage).is_err());
    let mut prefixed = b"v=TLSRPTv1;".to_vec();
    prefixed.extend_from_slice(&garbage);
    assert!(matches!(
        parse_record_bytes(&prefixed),
        Err(RecordError::TooLong { .. })
    ));
    let chunks: Vec<Vec<u8>> = prefixed.chunks(255).map(<[u8]>::to_vec).collect();
    let sel = select(&[chunks.clone(), chunks]);
    assert_eq!(no_tlsrpt(&sel), &NoTlsrpt::Several { count: 2 });
    let lossy = String::from_utf8_lossy(&garbage);
    let _ = split_presentation(&lossy);
    let _ = split_presentation(&format!("\"{lossy}"));
    // Within the length cap, ASCII garbage after the prefix gives some error, not a panic.
    let ascii: Vec<u8> = garbage.iter().map(|b| b & 0x7f).take(4000).collect();
    let mut p = b"v=TLSRPTv1;".to_vec();
    p.extend_from_slice(&ascii);
    assert!(parse_record_bytes(&p).is_err());
}

#[test]
fn every_error_names_offset_and_rule() {
    for text in [
        "v=TLSRPTv1; rua=",
        "V=TLSRPTv1; rua=mailto:a@b.c",
        "v=TLSRPTv1; rua=mailto:a@b.c!1",
        "v=TLSRPTv1; rua=mailto:a@b.c; x=",
        "",
    ] {
        let e = err(text);
        let s = e.to_string();
        assert!(s.starts_with(&format!("at byte {}: ", e.offset())), "{s}");
        assert!(s.ends_with(&format!("({})", e.rule())), "{s}");
        assert!(e.offset() <= text.len());
    }
}

// ---- formatting -------------------------------------------------------------------------

#[test]
fn dns_13_canonical_form_puts_rua_first_without_spaces() {
    let p = parse_record(
        "v=TLSRPTv1 ; ext=1; rua=MAILTO:a@x.example , https://r.example/x; rua=mailto:b@x.example;",
    )
    .unwrap();
    let canon = p.record.to_canonical_string().unwrap();
    assert_eq!(
        canon,
        "v=TLSRPTv1; rua=mailto:a@x.example,https://r.example/x,mailto:b@x.example; ext=1"
    );
    let again = parse_record(&canon).unwrap();
    assert_eq!(again.record, p.record);
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
}

#[test]
fn dns_09_formatter_encodes_comma_bang_semicolon() {
    let rec = TlsrptRecord {
        rua: vec![ReportingUri::Https {
            uri: "https://r.example/a,b!c;d e".into(),
        }],
        extensions: vec![],
    };
    let canon = rec.to_canonical_string().unwrap();
    assert_eq!(canon, "v=TLSRPTv1; rua=https://r.example/a%2Cb%21c%3Bd%20e");
}

#[test]
fn dns_07_formatter_refuses_empty_rua() {
    let rec = TlsrptRecord::default();
    assert!(matches!(
        rec.to_canonical_string(),
        Err(RecordError::EmptyUri { .. })
    ));
}

#[test]
fn dns_14_formatter_refuses_bad_extension() {
    let rec = TlsrptRecord {
        rua: vec![ReportingUri::parse("mailto:a@x.example").unwrap()],
        extensions: vec![tlsrpt_core::record::Extension {
            name: "note".into(),
            value: "hello world".into(),
        }],
    };
    assert!(matches!(
        rec.to_canonical_string(),
        Err(RecordError::WspInExtensionValue { .. })
    ));
}

// ---- presentation form ------------------------------------------------------------------

#[test]
fn dns_03_presentation_split_as_dig_prints() {
    let strings = split_presentation(r#""v=TLSRPTv1; rua=mailto:a@exa" "mple.net""#).unwrap();
    assert_eq!(
        strings,
        [
            b"v=TLSRPTv1; rua=mailto:a@exa".to_vec(),
            b"mple.net".to_vec()
        ]
    );
    assert_eq!(found_rua(&select(&[strings])), ["mailto:a@example.net"]);
}

#[test]
fn presentation_escapes_decoded() {
    let s = split_presentation(r#""a\"b\\c\059d\255""#).unwrap();
    assert_eq!(s, [b"a\"b\\c;d\xff".to_vec()]);
}

#[test]
fn presentation_unquoted_is_one_string_as_is() {
    let s = split_presentation("v=TLSRPTv1; rua=mailto:a@b.example \"x\"").unwrap();
    assert_eq!(s, [b"v=TLSRPTv1; rua=mailto:a@b.example \"x\"".to_vec()]);
}

#[test]
fn presentation_errors_have_offsets() {
    assert_eq!(
        split_presentation(r#""abc"#),
        Err(RecordError::Presentation {
            offset: 0,
            problem: "unterminated quoted string"
        })
    );
    assert!(matches!(
        split_presentation(r#""a\256""#),
        Err(RecordError::Presentation { offset: 2, .. })
    ));
    assert!(matches!(
        split_presentation(r#""a" b"#),
        Err(RecordError::Presentation { offset: 4, .. })
    ));
    assert!(matches!(
        split_presentation(r#""a""b""#),
        Err(RecordError::Presentation { offset: 3, .. })
    ));
}

#[test]
fn to_presentation_splits_long_text_at_255() {
    let text = "x".repeat(300);
    let p = to_presentation(text.as_bytes());
    let strings = split_presentation(&p).unwrap();
    assert_eq!(strings.len(), 2);
    assert_eq!(strings[0].len(), 255);
    assert_eq!(strings.concat(), text.as_bytes());
}

// ---- properties -------------------------------------------------------------------------

fn addr_char() -> impl Strategy<Value = char> {
    prop_oneof![
        proptest::char::range('a', 'z'),
        proptest::char::range('0', '9'),
        Just('!'),
        Just(';'),
        Just('%'),
        Just('+'),
        Just('.'),
        Just(' '),
        Just('é'),
    ]
}

fn reporting_uri() -> impl Strategy<Value = ReportingUri> {
    let mailto = (
        proptest::collection::vec(addr_char(), 1..10),
        "[a-z]{1,8}\\.[a-z]{2,4}",
    )
        .prop_map(|(local, domain)| {
            let local: String = local.into_iter().collect();
            let mut uri = String::from("mailto:");
            for b in local.bytes() {
                if b.is_ascii_alphanumeric() || b == b'.' || b == b'+' {
                    uri.push(char::from(b));
                } else {
                    uri.push_str(&format!("%{b:02X}"));
                }
            }
            uri.push('@');
            uri.push_str(&domain);
            ReportingUri::parse(&uri).unwrap()
        });
    let https = ("[a-z]{1,8}\\.[a-z]{2,4}", "[a-zA-Z0-9/_.~-]{0,12}")
        .prop_map(|(host, path)| ReportingUri::parse(&format!("https://{host}/{path}")).unwrap());
    let other = ("(http|ftp|urn|x-y)", "[a-z0-9./]{1,12}")
        .prop_map(|(scheme, rest)| ReportingUri::parse(&format!("{scheme}:{rest}")).unwrap());
    prop_oneof![3 => mailto, 3 => https, 1 => other]
}

fn record() -> impl Strategy<Value = TlsrptRecord> {
    let ext = ("[a-zA-Z0-9][a-zA-Z0-9_.-]{0,31}", "[!-:<>-~]{1,12}")
        .prop_filter_map("rua is not an extension name", |(name, value)| {
            (name != "rua").then_some(tlsrpt_core::record::Extension { name, value })
        });
    (
        proptest::collection::vec(reporting_uri(), 1..8),
        proptest::collection::vec(ext, 0..4),
    )
        .prop_map(|(rua, extensions)| TlsrptRecord { rua, extensions })
}

proptest! {
    #[test]
    fn format_then_parse_gives_same_value(rec in record()) {
        let text = rec.to_canonical_string().unwrap();
        let parsed = parse_record(&text).unwrap();
        prop_assert_eq!(&parsed.record, &rec);
        prop_assert!(parsed.warnings.iter().all(|w| !matches!(w.rule, "DNS-05" | "DNS-12" | "DNS-13")));
        // And through the RRset path with DNS-sized strings.
        let rr = split_presentation(&to_presentation(text.as_bytes())).unwrap();
        prop_assert!(rr.iter().all(|s| s.len() <= MAX_CHARACTER_STRING));
        let sel = select(&[rr]);
        let got = match &sel.outcome {
            Outcome::Found { parsed, .. } | Outcome::NothingToSend { parsed, .. } => &parsed.record,
            Outcome::NoTlsrpt(n) => return Err(TestCaseError::fail(format!("{n}"))),
        };
        prop_assert_eq!(got, &rec);
    }

    #[test]
    fn canonical_form_is_a_fixed_point(uris in proptest::collection::vec("[ -~]{1,20}", 1..4)) {
        // Arbitrary printable URIs (with `,` `!` `;` SP ...): when the formatter accepts them,
        // what it writes parses, has no literal `!`, and formats to itself again.
        let rua = uris.into_iter().map(|u| ReportingUri::Https { uri: format!("https://h.example/{u}") }).collect();
        let rec = TlsrptRecord { rua, extensions: vec![] };
        let text = rec.to_canonical_string().unwrap();
        prop_assert!(!text.contains('!'));
        let parsed = parse_record(&text).unwrap();
        prop_assert_eq!(parsed.record.to_canonical_string().unwrap(), text);
    }

    #[test]
    fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let r = parse_record_bytes(&bytes);
        if let Err(e) = r {
            prop_assert!(e.offset() <= bytes.len().max(MAX_RECORD_LEN));
        }
    }

    #[test]
    fn parser_never_panics_after_valid_prefix(tail in "[ -~\t]{0,200}") {
        let text = format!("v=TLSRPTv1; rua=mailto:a@x.example{tail}");
        if let Err(e) = parse_record(&text) {
            prop_assert!(e.offset() <= text.len());
        }
    }

    #[test]
    fn select_never_panics(rrs in proptest::collection::vec(proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..4), 0..5)) {
        let _ = select(&rrs);
    }

    #[test]
    fn presentation_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        let p = to_presentation(&bytes);
        let strings = split_presentation(&p).unwrap();
        prop_assert_eq!(strings.concat(), bytes);
    }

    #[test]
    fn split_presentation_never_panics(s in "\\PC{0,200}") {
        let _ = split_presentation(&s);
        let _ = split_presentation(&format!("\"{s}"));
    }
}
