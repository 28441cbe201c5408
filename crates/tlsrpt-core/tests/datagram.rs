//! The libtlsrpt datagram codec against the literal datagrams captured from libtlsrpt and
//! Postfix (shared/spec/DATAGRAM.md §5, shared/ECOSYSTEM.md §2.1–2.2).

use tlsrpt_core::datagram::{
    self, DatagramBuf, DatagramError, FailureBuf, MAX_DATAGRAM_BYTES, PolicyBuf, Reason, decode,
};
use tlsrpt_core::{PolicyType, ResultType};

/// DATAGRAM.md §5, STS success (278 bytes).
const STS_SUCCESS: &str = r#"{"dpv": "1","d": "example.com","pr": "v=TLSRPTv1; rua=mailto:tlsrpt@example.com","policies":[{"policy-type":2,"policy-domain": "example.com","policy-string":["version: STSv1","mode: enforce","mx: mail.example.com","max_age: 604800"],"mx-host":["mail.example.com"],"t":0,"f":0}]}"#;
/// DATAGRAM.md §5, DANE failure with a Postfix EHLO response (430 bytes).
const DANE_FAILURE: &str = r#"{"dpv": "1","d": "example.org","pr": "v=TLSRPTv1;rua=https://rpt.example.org/tlsrpt","policies":[{"policy-type":1,"policy-domain": "example.org","policy-string":["3 1 1 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"],"failure-details":[{"c":205,"s": "192.0.2.1","n": "mx.example.org","h": "250-mx.example.org\r\n250-PIPELINING\r\n250 STARTTLS","r": "198.51.100.7","f": "self-signed_certificate"}],"t":1,"f":1}]}"#;
/// DATAGRAM.md §5, no-policy-found with NULL policy domain (231 bytes).
const NO_POLICY_NULL_DOMAIN: &str = r#"{"dpv": "1","d": "example.net","pr": "v=TLSRPTv1; rua=mailto:a@example.net,mailto:b@example.net","policies":[{"policy-type":9,"failure-details":[{"c":201,"s": "2001:db8::1","n": "mx.example.net","r": "2001:db8::25"}],"t":1,"f":1}]}"#;
/// ECOSYSTEM.md §2.1, Postfix 3.10 (trixie libtlsrpt 0.5.0rc1, no dpv), success.
const POSTFIX_SUCCESS: &str = r#"{"d": "example.test","pr": "v=TLSRPTv1; rua=mailto:tlsrpt@example.test","policies":[{"policy-type":9,"policy-domain": "example.test","t":0,"f":0}]}"#;
/// ECOSYSTEM.md §2.1, Postfix 3.10, self-signed certificate at level `secure`.
const POSTFIX_FAILURE: &str = r#"{"d": "example.test","pr": "v=TLSRPTv1; rua=mailto:tlsrpt@example.test","policies":[{"policy-type":9,"policy-domain": "example.test","failure-details":[{"c":205,"s": "127.0.0.1","n": "mx.example.test","h": "250-mx.example.test\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-STARTTLS\r\n250 HELP","r": "127.0.0.2","f": "self-signed_certificate"}],"t":1,"f":1}]}"#;
/// ECOSYSTEM.md §2.2, libtlsrpt 0.5.1 called directly.
const LIBTLSRPT_STS_FAILURE: &str = r#"{"dpv": "1","d": "example.com","pr": "v=TLSRPTv1; rua=mailto:tlsrpt@example.com","policies":[{"policy-type":2,"policy-domain": "example.com","policy-string":["version: STSv1","mode: enforce"],"mx-host":["*.mail.example.com"],"failure-details":[{"c":204,"s": "192.0.2.1","n": "mx1.mail.example.com","h": "mx1.mail.example.com","r": "198.51.100.7"}],"t":1,"f":1}]}"#;

const ALL: [&str; 6] = [
    STS_SUCCESS,
    DANE_FAILURE,
    NO_POLICY_NULL_DOMAIN,
    POSTFIX_SUCCESS,
    POSTFIX_FAILURE,
    LIBTLSRPT_STS_FAILURE,
];

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

#[test]
fn literal_sizes_match_the_spec() {
    // The spec states these sizes; a copy error in the constants would fail here.
    assert_eq!(STS_SUCCESS.len(), 278);
    assert_eq!(DANE_FAILURE.len(), 430);
    assert_eq!(NO_POLICY_NULL_DOMAIN.len(), 231);
}

#[test]
fn decoded_literals_reencode_byte_for_byte() {
    for lit in ALL {
        let d = decode(lit.as_bytes()).unwrap();
        let owned = d.to_owned_datagram();
        assert_eq!(String::from_utf8(owned.encode()).unwrap(), lit);
    }
}

#[test]
fn built_datagrams_encode_like_libtlsrpt() {
    // Built by hand, the way simulate does, then compared with the captured bytes.
    let mut dg = DatagramBuf::new(
        "example.org",
        "v=TLSRPTv1;rua=https://rpt.example.org/tlsrpt",
    );
    let mut p = PolicyBuf::new(&PolicyType::Tlsa, Some("example.org"));
    p.policy_strings
        .push("3 1 1 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF".into());
    p.push_failure(FailureBuf {
        sending_mta_ip: s("192.0.2.1"),
        receiving_mx_hostname: s("mx.example.org"),
        receiving_mx_helo: s("250-mx.example.org\r\n250-PIPELINING\r\n250 STARTTLS"),
        receiving_ip: s("198.51.100.7"),
        failure_reason_code: s("self-signed_certificate"),
        ..FailureBuf::new(&ResultType::ValidationFailure)
    });
    dg.policies.push(p);
    assert_eq!(String::from_utf8(dg.encode()).unwrap(), DANE_FAILURE);

    let mut dg = DatagramBuf::new(
        "example.net",
        "v=TLSRPTv1; rua=mailto:a@example.net,mailto:b@example.net",
    );
    let mut p = PolicyBuf::new(&PolicyType::NoPolicyFound, None);
    p.push_failure(FailureBuf {
        sending_mta_ip: s("2001:db8::1"),
        receiving_mx_hostname: s("mx.example.net"),
        receiving_ip: s("2001:db8::25"),
        ..FailureBuf::new(&ResultType::StarttlsNotSupported)
    });
    dg.policies.push(p);
    assert_eq!(
        String::from_utf8(dg.encode()).unwrap(),
        NO_POLICY_NULL_DOMAIN
    );

    let mut dg = DatagramBuf::new("example.test", "v=TLSRPTv1; rua=mailto:tlsrpt@example.test");
    dg.dpv = None;
    dg.policies.push(PolicyBuf::new(
        &PolicyType::NoPolicyFound,
        Some("example.test"),
    ));
    assert_eq!(String::from_utf8(dg.encode()).unwrap(), POSTFIX_SUCCESS);
}

#[test]
fn sts_success_fields() {
    let d = decode(STS_SUCCESS.as_bytes()).unwrap();
    assert_eq!(d.dpv.unwrap(), "1");
    assert_eq!(d.domain, "example.com");
    assert_eq!(d.record, "v=TLSRPTv1; rua=mailto:tlsrpt@example.com");
    assert_eq!(d.policy_count(), 1);
    let p = d.policies().next().unwrap();
    assert_eq!(p.policy_type, PolicyType::Sts);
    assert_eq!(p.policy_domain.unwrap(), "example.com");
    let strings: Vec<String> = p
        .policy_strings
        .iter()
        .map(|s| s.to_string_value())
        .collect();
    assert_eq!(
        strings,
        [
            "version: STSv1",
            "mode: enforce",
            "mx: mail.example.com",
            "max_age: 604800"
        ]
    );
    assert_eq!(p.mx_hosts.iter().next().unwrap(), "mail.example.com");
    assert!(p.failure_details.is_empty());
    assert!(!p.failed);
    assert_eq!(p.t, 0);
}

#[test]
fn dane_failure_fields_and_report_mapping() {
    let d = decode(DANE_FAILURE.as_bytes()).unwrap();
    let p = d.policies().next().unwrap();
    assert_eq!(p.policy_type, PolicyType::Tlsa);
    assert!(p.failed);
    let f = p.failure_details.iter().next().unwrap();
    assert_eq!(f.code, 205);
    assert_eq!(f.sending_mta_ip.unwrap(), "192.0.2.1");
    assert_eq!(f.receiving_mx_hostname.unwrap(), "mx.example.org");
    assert_eq!(
        f.receiving_mx_helo.unwrap(),
        "250-mx.example.org\r\n250-PIPELINING\r\n250 STARTTLS"
    );
    assert_eq!(f.receiving_ip.unwrap(), "198.51.100.7");
    assert!(f.additional_information.is_none());
    assert_eq!(f.failure_reason_code.unwrap(), "self-signed_certificate");
    // The raw failure object is the grouping key (DATAGRAM.md §6).
    assert!(f.raw().starts_with("{\"c\":205,") && f.raw().ends_with("}"));

    let key = f.to_failure_key();
    assert_eq!(key.result_type, ResultType::ValidationFailure);
    assert_eq!(key.receiving_mx_helo.as_deref(), Some("mx.example.org"));
    assert_eq!(
        key.failure_reason_code.as_deref(),
        Some("self-signed_certificate")
    );
    assert_eq!(key.failed_session_count, 0);
}

#[test]
fn json_24_postfix_multiline_ehlo_keeps_first_line_host() {
    let d = decode(POSTFIX_FAILURE.as_bytes()).unwrap();
    let p = d.policies().next().unwrap();
    let key = p.failure_details.iter().next().unwrap().to_failure_key();
    assert_eq!(key.receiving_mx_helo.as_deref(), Some("mx.example.test"));
    // libtlsrpt called directly passes a plain host name: kept as is.
    let d = decode(LIBTLSRPT_STS_FAILURE.as_bytes()).unwrap();
    let p = d.policies().next().unwrap();
    let key = p.failure_details.iter().next().unwrap().to_failure_key();
    assert_eq!(
        key.receiving_mx_helo.as_deref(),
        Some("mx1.mail.example.com")
    );
    assert_eq!(key.result_type, ResultType::CertificateExpired);
}

#[test]
fn missing_dpv_is_version_1() {
    let d = decode(POSTFIX_SUCCESS.as_bytes()).unwrap();
    assert!(d.dpv.is_none());
    assert_eq!(
        d.policies().next().unwrap().policy_type,
        PolicyType::NoPolicyFound
    );
}

#[test]
fn rpt_10_missing_policy_domain_uses_report_domain() {
    let d = decode(NO_POLICY_NULL_DOMAIN.as_bytes()).unwrap();
    let p = d.policies().next().unwrap();
    assert!(p.policy_domain.is_none());
    let policy = p.to_policy("example.net");
    assert_eq!(policy.policy_domain.as_deref(), Some("example.net"));
    assert_eq!(policy.policy_type, PolicyType::NoPolicyFound);
    let f = p.failure_details.iter().next().unwrap().to_failure_key();
    assert_eq!(f.result_type, ResultType::StarttlsNotSupported);
    assert_eq!(f.sending_mta_ip.as_deref(), Some("2001:db8::1"));
    assert!(f.receiving_mx_helo.is_none());
}

/// The MTA-STS events of RFC 8461 §6 arrive as libtlsrpt codes 301–303 and must keep their
/// result types (REQUIREMENTS RPT-12, STS-12), like every other code.
#[test]
fn rpt_12_sts_12_every_result_code_maps() {
    for (code, rt) in [
        (201, ResultType::StarttlsNotSupported),
        (202, ResultType::CertificateHostMismatch),
        (203, ResultType::CertificateNotTrusted),
        (204, ResultType::CertificateExpired),
        (205, ResultType::ValidationFailure),
        (301, ResultType::StsPolicyFetchError),
        (302, ResultType::StsPolicyInvalid),
        (303, ResultType::StsWebpkiInvalid),
        (304, ResultType::TlsaInvalid),
        (305, ResultType::DnssecInvalid),
        (306, ResultType::DaneRequired),
    ] {
        let text = format!(
            r#"{{"d": "x.org","pr": "v=TLSRPTv1;","policies":[{{"policy-type":2,"failure-details":[{{"c":{code}}}],"t":1,"f":1}}]}}"#
        );
        let d = decode(text.as_bytes()).unwrap();
        let f = d
            .policies()
            .next()
            .unwrap()
            .failure_details
            .iter()
            .next()
            .unwrap();
        assert_eq!(f.result_type(), rt);
        let key = f.to_failure_key();
        assert_eq!(key.result_type, rt);
        assert_eq!(key.failure_reason_code, None);
    }
}

#[test]
fn rt_01_rpt_09_unknown_failure_codes_become_validation_failure_with_code() {
    let text = r#"{"d": "x.org","pr": "v=TLSRPTv1;","policies":[{"policy-type":2,"failure-details":[{"c":999},{"c":901,"f": "boom"}],"t":2,"f":1}]}"#;
    let d = decode(text.as_bytes()).unwrap();
    let p = d.policies().next().unwrap();
    let keys: Vec<_> = p
        .failure_details
        .iter()
        .map(|f| f.to_failure_key())
        .collect();
    assert_eq!(keys[0].result_type, ResultType::ValidationFailure);
    assert_eq!(
        keys[0].failure_reason_code.as_deref(),
        Some("tlsrpt-code-999")
    );
    assert_eq!(
        keys[1].failure_reason_code.as_deref(),
        Some("tlsrpt-code-901:boom")
    );
}

fn err(text: &str) -> DatagramError {
    decode(text.as_bytes()).unwrap_err()
}

#[test]
fn bad_datagrams_give_distinct_reasons() {
    let cases: [(&[u8], &str); 16] = [
        (b"{\"d\": \"\xff\"}", "invalid-utf8"),
        (b"not json", "invalid-json"),
        (b"", "invalid-json"),
        (br#"{"d": "x.org""#, "invalid-json"),
        (br#"{"d": "x.org"} trailing"#, "invalid-json"),
        (br#"{"dpv": "2","d": "x.org","pr": "v=TLSRPTv1;","policies":[{"policy-type":2,"t":0,"f":0}]}"#, "unknown-dpv"),
        (br#"{"d": "x.org","pr": "v=TLSRPTv1;","policies":[{"policy-type":7,"t":0,"f":0}]}"#, "unknown-policy-type"),
        (br#"{"d": "x.org","pr": "v=TLSRPTv1;","policies":[{"policy-type":2,"t":2,"f":1,"failure-details":[{"c":201}]}]}"#, "t-mismatch"),
        (br#"{"d": "x.org","pr": "v=TLSRPTv1;","policies":[{"policy-type":2,"t":1,"f":1}]}"#, "t-mismatch"),
        (br#"{"pr": "v=TLSRPTv1;","policies":[{"policy-type":2,"t":0,"f":0}]}"#, "missing-field"),
        (br#"{"d": "x.org","pr": "v=TLSRPTv1;","policies":[{"policy-type":2,"t":0}]}"#, "missing-field"),
        (br#"{"d": "x.org","pr": "v=TLSRPTv1;","policies":[{"policy-type":"2","t":0,"f":0}]}"#, "wrong-type"),
        (br#"{"d": "x.org","pr": "v=TLSRPTv1;","policies":[{"policy-type":2,"t":0,"f":2}]}"#, "bad-final-result"),
        (br#"{"d": "x.org","d": "y.org","pr": "v=TLSRPTv1;","policies":[{"policy-type":2,"t":0,"f":0}]}"#, "duplicate-key"),
        (br#"{"d": "x.org","pr": "v=TLSRPTv1;","policies":[]}"#, "no-policies"),
        (br#"{"d": "x.org","pr": "v=TLSRPTv1;","policies":[{"policy-type":2,"t":-1,"f":0}]}"#, "wrong-type"),
    ];
    for (bytes, reason) in cases {
        let e = decode(bytes).unwrap_err();
        assert_eq!(
            e.reason(),
            reason,
            "{:?}: {e}",
            String::from_utf8_lossy(bytes)
        );
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn errors_name_the_place() {
    let e = err(
        r#"{"d": "x.org","pr": "v=TLSRPTv1;","policies":[{"policy-type":2,"t":0,"f":0},{"policy-type":3,"t":0,"f":0}]}"#,
    );
    assert_eq!(e, DatagramError::UnknownPolicyType { policy: 1, code: 3 });
    let e = err(r#"{"d": 5}"#);
    assert_eq!(
        e,
        DatagramError::WrongType {
            field: "d",
            offset: 6,
            expected: "a string"
        }
    );
    let e = err("{\"d\": \"a\u{1}\"}");
    assert!(
        matches!(e, DatagramError::InvalidJson { offset: 8, .. }),
        "{e:?}"
    );
    let e = err(r#"{"d": "\ud800"}"#);
    assert_eq!(e.reason(), "invalid-json");
}

#[test]
fn size_limit() {
    let mut big = br#"{"d": "x.org","pr": ""#.to_vec();
    big.resize(MAX_DATAGRAM_BYTES + 1, b'a');
    let e = decode(&big).unwrap_err();
    assert_eq!(e.kind(), Reason::Oversized);
    // The largest datagram a Linux sender can get through (212,171 bytes, DATAGRAM.md §1).
    let pad = "a".repeat(212_171 - STS_SUCCESS.len());
    let text = STS_SUCCESS.replace("max_age: 604800", &format!("max_age: 604800{pad}"));
    assert!(text.len() >= 212_171);
    assert!(decode(text.as_bytes()).is_ok());
    assert_eq!(
        datagram::decode_with_limit(STS_SUCCESS.as_bytes(), 100)
            .unwrap_err()
            .reason(),
        "oversized"
    );
}

#[test]
fn whitespace_order_unknown_keys_and_escapes_are_accepted() {
    let text = r#" { "policies" : [ { "f" : 1 , "t" : 1 , "future" : {"x":[1,2.5e3,null,true,false,"s"]},
        "failure-details" : [ { "f" : "r\u00e9ason\n" , "c" : 202 } ] , "policy-type" : 1 } ] ,
        "pr" : "v=TLSRPTv1; rua=mailto:a\\b@x.org" , "d" : "X.Org." , "extra": "ignored" } "#;
    let d = decode(text.as_bytes()).unwrap();
    assert_eq!(d.record, "v=TLSRPTv1; rua=mailto:a\\b@x.org");
    assert_eq!(d.normalized_domain().unwrap(), "x.org");
    let p = d.policies().next().unwrap();
    let f = p.failure_details.iter().next().unwrap();
    assert_eq!(f.failure_reason_code.unwrap(), "réason\n");
    assert_eq!(f.result_type(), ResultType::CertificateHostMismatch);
}

#[test]
fn escapes_survive_a_round_trip() {
    let mut dg = DatagramBuf::new(
        "example.com",
        "v=TLSRPTv1; rua=mailto:\"q\"\\@x\u{7f}\u{1}ü",
    );
    let mut p = PolicyBuf::new(&PolicyType::Sts, Some("example.com"));
    p.policy_strings.push("tab\there\r\n".into());
    dg.policies.push(p);
    let bytes = dg.encode();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.contains(r#"mailto:\"q\"\\@x\u007f\u0001ü"#), "{text}");
    assert!(text.contains(r#""tab\there\r\n""#));
    assert_eq!(decode(&bytes).unwrap().to_owned_datagram(), dg);
}

#[test]
fn multiple_policies_in_order() {
    let mut dg = DatagramBuf::new("example.com", "v=TLSRPTv1; rua=mailto:r@example.com");
    let mut sts = PolicyBuf::new(&PolicyType::Sts, Some("example.com"));
    sts.mx_hosts.push("*.example.com".into());
    let mut tlsa = PolicyBuf::new(&PolicyType::Tlsa, Some("mx.example.com"));
    tlsa.push_failure(FailureBuf::new(&ResultType::TlsaInvalid));
    dg.policies.push(sts);
    dg.policies.push(tlsa);
    let bytes = dg.encode();
    let d = decode(&bytes).unwrap();
    assert_eq!(d.policy_count(), 2);
    let types: Vec<_> = d.policies().map(|p| (p.policy_type, p.failed)).collect();
    assert_eq!(types, [(PolicyType::Sts, false), (PolicyType::Tlsa, true)]);
    assert_eq!(d.to_owned_datagram(), dg);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        // Any Unicode, with control characters, quotes and backslashes made likely.
        prop::collection::vec(
            prop_oneof![
                any::<char>(),
                prop::sample::select(vec!['"', '\\', '\n', '\r', '\t', '\u{1}', '\u{7f}', '/']),
            ],
            0..12,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    fn opt() -> impl Strategy<Value = Option<String>> {
        prop::option::of(text())
    }

    fn failure() -> impl Strategy<Value = FailureBuf> {
        (0u64..1000, opt(), opt(), opt(), opt(), opt(), opt()).prop_map(
            |(code, s, n, h, r, a, f)| FailureBuf {
                code,
                sending_mta_ip: s,
                receiving_mx_hostname: n,
                receiving_mx_helo: h,
                receiving_ip: r,
                additional_information: a,
                failure_reason_code: f,
            },
        )
    }

    fn policy() -> impl Strategy<Value = PolicyBuf> {
        (
            prop::sample::select(vec![1u64, 2, 9]),
            opt(),
            prop::collection::vec(text(), 0..3),
            prop::collection::vec(text(), 0..3),
            prop::collection::vec(failure(), 0..3),
            any::<bool>(),
        )
            .prop_map(|(pt, pd, ps, mx, fails, failed)| PolicyBuf {
                policy_type: pt,
                policy_domain: pd,
                policy_strings: ps,
                mx_hosts: mx,
                t: fails.len() as u64,
                failure_details: fails,
                final_result: u64::from(failed),
            })
    }

    fn datagram() -> impl Strategy<Value = DatagramBuf> {
        (
            prop::option::of(Just("1".to_owned())),
            text(),
            text(),
            prop::collection::vec(policy(), 1..4),
        )
            .prop_map(|(dpv, d, pr, policies)| DatagramBuf {
                dpv,
                domain: d,
                record: pr,
                policies,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever libtlsrpt can encode, we decode back to the same values, and the bytes
        /// are valid JSON to a general parser too.
        #[test]
        fn encode_then_decode_round_trips(dg in datagram()) {
            let bytes = dg.encode();
            prop_assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_ok());
            let decoded = decode(&bytes).unwrap();
            prop_assert_eq!(decoded.to_owned_datagram(), dg);
        }

        /// Arbitrary bytes never panic the decoder.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode(&bytes);
        }

        /// Cutting or corrupting a valid datagram gives an error or a datagram, never a panic,
        /// and every policy the decoder accepted can be walked and mapped.
        #[test]
        fn mutated_datagrams_never_panic(
            dg in datagram(),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = dg.encode();
            let i = flip.index(bytes.len());
            bytes[i] = byte;
            let n = cut.index(bytes.len() + 1);
            for b in [&bytes[..], &bytes[..n]] {
                if let Ok(d) = decode(b) {
                    for p in d.policies() {
                        let _ = p.to_policy("example.com");
                        for f in p.failure_details.iter() {
                            let _ = f.to_failure_key();
                        }
                    }
                    prop_assert!(d.policies().count() == d.policy_count());
                }
            }
        }
    }
}
