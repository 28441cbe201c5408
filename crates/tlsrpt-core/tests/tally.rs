//! The aggregation algebra: datagrams → counters → reports.

use jiff::civil::{Date, date};
use proptest::prelude::*;
use tlsrpt_core::DateRange;
use tlsrpt_core::datagram::{DatagramBuf, FailureBuf, PolicyBuf, decode};
use tlsrpt_core::tally::{ReportKey, Tally};
use tlsrpt_core::{PolicyType, Report, ResultType, write};

const DAY: Date = date(2026, 11, 28);

fn sts(domain: &str, failure: Option<(&str, u64)>) -> Vec<u8> {
    let mut dg = DatagramBuf::new(domain, "v=TLSRPTv1; rua=mailto:r@example.net");
    let mut p = PolicyBuf::new(&PolicyType::Sts, Some(domain));
    p.policy_strings = vec!["version: STSv1".into(), "mode: enforce".into()];
    p.mx_hosts = vec![format!("*.{}", domain.to_lowercase().trim_end_matches('.'))];
    if let Some((ip, code)) = failure {
        p.push_failure(FailureBuf {
            code,
            sending_mta_ip: Some(ip.into()),
            receiving_mx_hostname: Some(format!("mx.{domain}")),
            ..FailureBuf::default()
        });
    }
    dg.policies.push(p);
    dg.encode()
}

fn add(t: &mut Tally, day: Date, bytes: &[u8]) {
    t.add_datagram(day, &decode(bytes).unwrap()).unwrap();
}

fn reports(t: &Tally) -> Vec<(ReportKey, Report)> {
    t.reports("Example Org", "tlsrpt@example.net", |k| {
        format!("{}_{}", k.day, k.domain)
    })
}

#[test]
fn rpt_06_rpt_07_success_and_failure_counts() {
    let mut t = Tally::new();
    add(&mut t, DAY, &sts("example.com", None));
    add(&mut t, DAY, &sts("Example.COM.", None));
    add(&mut t, DAY, &sts("example.com", Some(("192.0.2.1", 203))));
    let r = reports(&t);
    assert_eq!(r.len(), 1, "normalised domains share one report (RPT-04)");
    let (key, report) = &r[0];
    assert_eq!(key.domain, "example.com");
    assert_eq!(report.policies.len(), 1);
    let p = &report.policies[0];
    assert_eq!(p.summary.total_successful_session_count, 2);
    assert_eq!(p.summary.total_failure_session_count, 1);
    assert_eq!(p.failure_details.len(), 1);
    assert_eq!(p.failure_details[0].failed_session_count, 1);
    assert_eq!(
        p.failure_details[0].result_type,
        ResultType::CertificateNotTrusted
    );
    assert_eq!(report.report_id, "2026-11-28_example.com");
    assert_eq!(report.organization_name.as_deref(), Some("Example Org"));
    assert_eq!(report.contact_info.as_deref(), Some("tlsrpt@example.net"));
}

#[test]
fn rpt_08_failure_details_group_on_the_full_key() {
    let mut t = Tally::new();
    for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.1"] {
        add(&mut t, DAY, &sts("example.com", Some((ip, 205))));
    }
    add(&mut t, DAY, &sts("example.com", Some(("192.0.2.1", 204))));
    let r = reports(&t);
    let fds = &r[0].1.policies[0].failure_details;
    let got: Vec<_> = fds
        .iter()
        .map(|f| {
            (
                f.result_type.clone(),
                f.sending_mta_ip.clone().unwrap(),
                f.failed_session_count,
            )
        })
        .collect();
    // Per-IP details are never collapsed (DATAGRAM.md §6); equal keys add up.
    assert_eq!(got.len(), 3);
    assert!(got.contains(&(ResultType::ValidationFailure, "192.0.2.1".into(), 2)));
    assert!(got.contains(&(ResultType::ValidationFailure, "192.0.2.2".into(), 1)));
    assert!(got.contains(&(ResultType::CertificateExpired, "192.0.2.1".into(), 1)));
    assert_eq!(r[0].1.policies[0].summary.total_failure_session_count, 4);
}

#[test]
fn json_12_date_range_is_the_utc_day() {
    let r = DateRange::utc_day(DAY);
    assert_eq!(r.start.to_string(), "2026-11-28T00:00:00Z");
    assert_eq!(r.end.to_string(), "2026-11-28T23:59:59Z");
    let mut t = Tally::new();
    add(&mut t, DAY, &sts("example.com", None));
    add(&mut t, DAY.tomorrow().unwrap(), &sts("example.com", None));
    let r = reports(&t);
    assert_eq!(r.len(), 2, "one report per day (RPT-04)");
    assert_eq!(r[1].1.date_range.start.to_string(), "2026-11-29T00:00:00Z");
}

#[test]
fn record_change_gives_a_separate_report() {
    let mut t = Tally::new();
    add(&mut t, DAY, &sts("example.com", None));
    let other = String::from_utf8(sts("example.com", None))
        .unwrap()
        .replace("mailto:r@", "mailto:s@");
    assert_ne!(other.as_bytes(), sts("example.com", None));
    add(&mut t, DAY, other.as_bytes());
    assert_eq!(reports(&t).len(), 2);
}

#[test]
fn invalid_domain_counts_nothing() {
    let mut t = Tally::new();
    let bytes = sts("bad..domain", None);
    let e = t.add_datagram(DAY, &decode(&bytes).unwrap()).unwrap_err();
    assert_eq!(e.reason(), "invalid-domain");
    assert!(t.is_empty());
}

#[test]
fn merge_owned_equals_merge() {
    let mut a = Tally::new();
    let mut b = Tally::new();
    add(&mut a, DAY, &sts("example.com", Some(("192.0.2.1", 205))));
    add(&mut b, DAY, &sts("example.com", Some(("192.0.2.1", 205))));
    add(&mut b, DAY, &sts("example.org", None));
    let mut m1 = a.clone();
    m1.merge(&b);
    let mut m2 = a;
    m2.merge_owned(b);
    assert_eq!(m1, m2);
    assert_eq!(m1.sessions(), 3);
    assert_eq!(m1.key_count(), 3);
}

/// A datagram from a small pool, so that keys repeat and merging has something to add.
fn arb_datagram() -> impl Strategy<Value = (u8, Vec<u8>)> {
    (
        0u8..3,
        0usize..4,
        prop::sample::select(vec![1u64, 2, 9]),
        prop::option::of((0usize..3, prop::sample::select(vec![201u64, 205, 304, 999]))),
        any::<bool>(),
    )
        .prop_map(|(day, dom, ptype, failure, two_policies)| {
            let domain = ["a.example", "B.example.", "c.example", "bücher.example"][dom];
            let mut dg = DatagramBuf::new(domain, "v=TLSRPTv1; rua=mailto:r@example.net");
            let mut p = PolicyBuf {
                policy_type: ptype,
                policy_domain: Some(domain.to_owned()),
                ..PolicyBuf::default()
            };
            if let Some((ip, code)) = failure {
                p.push_failure(FailureBuf {
                    code,
                    sending_mta_ip: Some(["192.0.2.1", "192.0.2.2", "2001:db8::1"][ip].into()),
                    receiving_mx_helo: Some("250-mx.example\r\n250 STARTTLS".into()),
                    ..FailureBuf::default()
                });
            }
            dg.policies.push(p);
            if two_policies {
                let mut t = PolicyBuf::new(&PolicyType::Tlsa, Some("mx.example"));
                t.policy_strings.push("3 1 1 AB".into());
                dg.policies.push(t);
            }
            (day, dg.encode())
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// RFC 8460 §4 / DESIGN: counters add commutatively, so partial tallies from many
    /// collectors (or flushes) merge in any order and partition into identical reports.
    #[test]
    fn merge_in_any_order_and_partition_gives_identical_reports(
        dgs in prop::collection::vec(arb_datagram(), 1..60),
        parts in prop::collection::vec(0usize..5, 60),
        order in Just(()).prop_perturb(|_, mut rng| {
            let mut v: Vec<usize> = (0..5).collect();
            for i in (1..v.len()).rev() {
                let j = (rng.next_u32() as usize) % (i + 1);
                v.swap(i, j);
            }
            v
        }),
    ) {
        let day = |d: u8| DAY.checked_add(jiff::Span::new().days(i64::from(d))).unwrap();
        let mut whole = Tally::new();
        let mut partial = vec![Tally::new(); 5];
        let mut sessions = 0u64;
        for (i, (d, bytes)) in dgs.iter().enumerate() {
            let dg = decode(bytes).unwrap();
            sessions += dg.policy_count() as u64;
            whole.add_datagram(day(*d), &dg).unwrap();
            partial[parts[i]].add_datagram(day(*d), &dg).unwrap();
        }
        let mut merged = Tally::new();
        for &i in &order {
            // Alternate the two merge flavours: both must give the same sums.
            if i % 2 == 0 {
                merged.merge(&partial[i]);
            } else {
                merged.merge_owned(partial[i].clone());
            }
        }
        prop_assert_eq!(merged.sessions(), sessions);
        let a = reports(&whole);
        let b = reports(&merged);
        prop_assert_eq!(&a, &b);
        let ja: Vec<String> = a.iter().map(|(_, r)| write::to_json(r)).collect();
        let jb: Vec<String> = b.iter().map(|(_, r)| write::to_json(r)).collect();
        prop_assert_eq!(ja, jb);
        // And the report totals add up to what was put in.
        let total: u64 = a.iter().map(|(_, r)| {
            let t = r.raw_totals();
            t.total_successful_session_count + t.total_failure_session_count
        }).sum();
        prop_assert_eq!(total, sessions);
    }
}

#[test]
fn term_04_one_delivery_two_mx_attempts_is_one_failure_and_one_success() {
    // MX1 fails TLS, MX2 succeeds: two sessions, two datagrams (DATAGRAM.md, TERM-04).
    let mut t = Tally::new();
    add(&mut t, DAY, &sts("example.com", Some(("192.0.2.1", 202))));
    add(&mut t, DAY, &sts("example.com", None));
    let r = reports(&t);
    let s = r[0].1.policies[0].summary;
    assert_eq!(
        (
            s.total_successful_session_count,
            s.total_failure_session_count
        ),
        (1, 1)
    );
}

#[test]
fn rpt_05_distinct_policies_are_separate_entries_equal_ones_merge() {
    let mut dg = DatagramBuf::new("example.com", "v=TLSRPTv1; rua=mailto:r@example.net");
    dg.policies
        .push(PolicyBuf::new(&PolicyType::Sts, Some("example.com")));
    let mut tlsa = PolicyBuf::new(&PolicyType::Tlsa, Some("mx.example.com"));
    tlsa.policy_strings.push("3 1 1 AA".into());
    dg.policies.push(tlsa.clone());
    let mut t = Tally::new();
    add(&mut t, DAY, &dg.encode());
    add(&mut t, DAY, &dg.encode());
    // A different TLSA RRset is a different applied policy.
    tlsa.policy_strings[0] = "3 1 1 BB".into();
    dg.policies[1] = tlsa;
    add(&mut t, DAY, &dg.encode());
    let r = reports(&t);
    let entries: Vec<_> = r[0]
        .1
        .policies
        .iter()
        .map(|p| {
            (
                p.policy.policy_type.clone(),
                p.policy.policy_string.clone(),
                p.summary.total_successful_session_count,
            )
        })
        .collect();
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert!(entries.contains(&(PolicyType::Sts, vec![], 3)));
    assert!(entries.contains(&(PolicyType::Tlsa, vec!["3 1 1 AA".into()], 2)));
    assert!(entries.contains(&(PolicyType::Tlsa, vec!["3 1 1 BB".into()], 1)));
}

#[test]
fn json_17_domains_are_reported_in_a_labels() {
    let mut t = Tally::new();
    add(&mut t, DAY, &sts("Bücher.Example.", None));
    let r = reports(&t);
    assert_eq!(r[0].0.domain, "xn--bcher-kva.example");
    assert_eq!(
        r[0].1.policies[0].policy.policy_domain.as_deref(),
        Some("xn--bcher-kva.example")
    );
}

/// The one report a tally with one report key gives, as the JSON the writer emits.
fn only_report_json(t: &Tally) -> serde_json::Value {
    let r = reports(t);
    assert_eq!(r.len(), 1, "{r:?}");
    write::to_value(&r[0].1)
}

#[test]
fn json_10_organization_name_is_the_configured_string() {
    let mut t = Tally::new();
    add(&mut t, DAY, &sts("example.com", None));
    for name in ["Google Inc.", "mail.sys4.example"] {
        let r = t.reports(name, "tlsrpt@example.net", |k| k.domain.clone());
        let v = write::to_value(&r[0].1);
        assert_eq!(v["organization-name"], serde_json::json!(name));
    }
}

#[test]
fn json_23_json_28_mx_hostname_from_dns_and_reason_code_kept() {
    // Postfix sends the MX name it looked up (`n`) and the EHLO reply (`h`) separately; the
    // report's receiving-mx-hostname is the DNS name, never the EHLO name, and the reason
    // code is carried as sent.
    let mut dg = DatagramBuf::new("example.com", "v=TLSRPTv1; rua=mailto:r@example.net");
    let mut p = PolicyBuf::new(&PolicyType::Sts, Some("example.com"));
    p.push_failure(FailureBuf {
        code: 203,
        sending_mta_ip: Some("192.0.2.1".into()),
        receiving_mx_hostname: Some("mx1.example.com".into()),
        receiving_mx_helo: Some("250-relay7.hoster.example\r\n250 STARTTLS".into()),
        receiving_ip: Some("198.51.100.7".into()),
        failure_reason_code: Some("X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION".into()),
        ..FailureBuf::default()
    });
    dg.policies.push(p);
    let mut t = Tally::new();
    add(&mut t, DAY, &dg.encode());
    // The same host spelled as DNS may hand it to the MTA (upper case, trailing dot) is the
    // same receiving-mx-hostname (the JSON-23 recommendation: lower case, no trailing dot).
    dg.policies[0].failure_details[0].receiving_mx_hostname = Some("MX1.Example.COM.".into());
    add(&mut t, DAY, &dg.encode());
    let v = only_report_json(&t);
    let details = v["policies"][0]["failure-details"].as_array().cloned();
    assert_eq!(details.map(|d| d.len()), Some(1), "{v}");
    let fd = &v["policies"][0]["failure-details"][0];
    assert_eq!(fd["failed-session-count"], 2);
    assert_eq!(fd["result-type"], "certificate-not-trusted");
    assert_eq!(fd["receiving-mx-hostname"], "mx1.example.com");
    assert_eq!(fd["receiving-mx-helo"], "relay7.hoster.example");
    assert_eq!(
        fd["failure-reason-code"],
        "X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION"
    );
}

#[test]
fn json_31_one_session_with_two_failure_types_gives_two_entries() {
    // One session hit two errors: one failed session, two failure-details entries, each with
    // its own context (JSON-30: the entries' counts may exceed the failure total).
    let mut dg = DatagramBuf::new("example.com", "v=TLSRPTv1; rua=mailto:r@example.net");
    let mut p = PolicyBuf::new(&PolicyType::Sts, Some("example.com"));
    p.push_failure(FailureBuf {
        code: 202,
        receiving_mx_hostname: Some("mx1.example.com".into()),
        ..FailureBuf::default()
    });
    p.push_failure(FailureBuf {
        code: 204,
        receiving_mx_hostname: Some("mx1.example.com".into()),
        additional_information: Some("https://reports.example.net/chain/1".into()),
        ..FailureBuf::default()
    });
    dg.policies.push(p);
    let mut t = Tally::new();
    add(&mut t, DAY, &dg.encode());
    let v = only_report_json(&t);
    let p = &v["policies"][0];
    assert_eq!(p["summary"]["total-failure-session-count"], 1);
    let fds = p["failure-details"].as_array().unwrap();
    assert_eq!(fds.len(), 2, "{fds:?}");
    let mismatch = fds
        .iter()
        .find(|f| f["result-type"] == "certificate-host-mismatch")
        .unwrap();
    let expired = fds
        .iter()
        .find(|f| f["result-type"] == "certificate-expired")
        .unwrap();
    assert_eq!(mismatch["failed-session-count"], 1);
    assert_eq!(expired["failed-session-count"], 1);
    assert!(mismatch.get("additional-information").is_none());
    assert_eq!(
        expired["additional-information"],
        "https://reports.example.net/chain/1"
    );
}

#[test]
fn rpt_17_sts_policy_string_as_declared_errors_and_all() {
    // The policy text as the receiving site declared it, line by line in file order, errors
    // included (`mode: enforced`, an unknown key, a repeated mx): nothing is sorted, fixed,
    // merged or dropped, and each mx line stays its own element.
    let lines = [
        "version: STSv1",
        "mode: enforced",
        "mx: mx2.example.com",
        "mx: *.example.com",
        "max_age: 604800",
        "colour: blue",
        "mx: mx2.example.com",
    ];
    let mut dg = DatagramBuf::new("example.com", "v=TLSRPTv1; rua=mailto:r@example.net");
    let mut p = PolicyBuf::new(&PolicyType::Sts, Some("example.com"));
    p.policy_strings = lines.iter().map(|s| s.to_string()).collect();
    p.mx_hosts = vec!["mx2.example.com".into(), "*.example.com".into()];
    dg.policies.push(p);
    let mut t = Tally::new();
    add(&mut t, DAY, &dg.encode());
    let v = only_report_json(&t);
    let policy = &v["policies"][0]["policy"];
    assert_eq!(policy["policy-type"], "sts");
    assert_eq!(policy["policy-string"], serde_json::json!(lines));
    assert!(
        policy["policy-string"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.is_string())
    );
}

#[test]
fn rpt_18_tlsa_policy_string_one_element_per_rr() {
    // One "<usage> <selector> <mtype> <hex>" element per TLSA RR, exactly as the MTA built
    // it: no owner, TTL, class or type, no parentheses, no nesting. Sorted (the RPT-18
    // recommendation), so the same RRset returned in another order is the same policy.
    let rrs = [
        "3 1 1 EA1A962106816DB744DC30650BF24AA315EC613601EECE43F9F7DEAE9168D377",
        "2 0 1 0C72AC70B745AC19998811B131D662C9AC69DBDBE7CB23E5B514B56664C5D3D6",
    ];
    let mut t = Tally::new();
    for order in [[0, 1], [1, 0]] {
        let mut dg = DatagramBuf::new("example.com", "v=TLSRPTv1; rua=mailto:r@example.net");
        let mut p = PolicyBuf::new(&PolicyType::Tlsa, Some("mx1.example.com"));
        p.policy_strings = order.iter().map(|&i| rrs[i].to_string()).collect();
        dg.policies.push(p);
        add(&mut t, DAY, &dg.encode());
    }
    let v = only_report_json(&t);
    assert_eq!(v["policies"].as_array().map(Vec::len), Some(1), "{v}");
    let policy = &v["policies"][0]["policy"];
    assert_eq!(policy["policy-type"], "tlsa");
    assert_eq!(policy["policy-domain"], "mx1.example.com");
    assert_eq!(policy["policy-string"], serde_json::json!([rrs[1], rrs[0]]));
    assert!(policy.get("mx-host").is_none(), "mx-host is for sts only");
    assert_eq!(
        v["policies"][0]["summary"]["total-successful-session-count"],
        2
    );
}
