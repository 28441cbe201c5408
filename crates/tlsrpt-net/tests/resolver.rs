//! Destination discovery and lookups against the in-process DNS server on 127.0.0.1.

use std::time::Duration;

use tlsrpt_core::record::{NoTlsrpt, Outcome};
use tlsrpt_net::resolver::{Anchors, Discovery, Dns, DnsConfig, DnssecStatus, Lookup};
use tlsrpt_testkit::dns::DnsServer;

async fn server() -> DnsServer {
    DnsServer::builder()
        .zone("recipient.example")
        .zone("provider.example")
        .txt(
            "_smtp._tls.recipient.example",
            &["v=TLSRPTv1; rua=mailto:tls@exa", "mple.net"],
        )
        .txt("_smtp._tls.recipient.example", &["v=spf1 -all"])
        .txt(
            "_smtp._tls.two.recipient.example",
            &["v=TLSRPTv1; rua=mailto:a@x.example"],
        )
        .txt(
            "_smtp._tls.two.recipient.example",
            &["v=TLSRPTv1; rua=mailto:b@x.example"],
        )
        .txt(
            "_smtp._tls.bad.recipient.example",
            &["v=TLSRPTv1; rua=mailto:a@x.example!10m"],
        )
        .a("nodata.recipient.example", [192, 0, 2, 1].into())
        .cname(
            "_smtp._tls.delegated.recipient.example",
            "_smtp._tls.provider.example",
        )
        .txt(
            "_smtp._tls.provider.example",
            &["v=TLSRPTv1; rua=https://reports.provider.example/v1"],
        )
        .servfail("_smtp._tls.broken.recipient.example")
        .txt(
            "_smtp._tls.xn--bcher-kva.recipient.example",
            &["v=TLSRPTv1; rua=mailto:tls@xn--bcher-kva.example"],
        )
        .timeout("_smtp._tls.slow.recipient.example")
        .mx("recipient.example", 20, "mx2.recipient.example")
        .mx("recipient.example", 10, "MX1.recipient.example")
        .tlsa(
            "_25._tcp.mx1.recipient.example",
            3,
            1,
            1,
            &[0xea, 0x1a, 0x96],
        )
        .a("host.recipient.example", [192, 0, 2, 7].into())
        .aaaa("host.recipient.example", "2001:db8::7".parse().unwrap())
        .start()
        .await
        .unwrap()
}

fn dns(srv: &DnsServer) -> Dns {
    Dns::with_config(&DnsConfig {
        nameservers: vec![srv.addr()],
        timeout: Duration::from_millis(300),
        attempts: 1,
        trust_anchors: None,
    })
    .unwrap()
}

#[tokio::test]
async fn dns_03_found_record_strings_joined_other_rr_ignored() {
    let srv = server().await;
    let d = dns(&srv).discover("recipient.example").await;
    let rec = d.record().expect("a record");
    let rua: Vec<&str> = rec.usable_rua().map(|u| u.as_str()).collect();
    assert_eq!(rua, ["mailto:tls@example.net"]);
    assert!(!d.is_temporary() && !d.is_none());
    match d {
        Discovery::Answer { rrset, .. } => assert_eq!(rrset.len(), 2),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn dns_18_nxdomain_means_no_report() {
    let srv = server().await;
    let d = dns(&srv).discover("nothere.recipient.example").await;
    assert_eq!(d, Discovery::NoRecord(Lookup::NxDomain));
    assert!(d.is_none() && !d.is_temporary());
}

#[tokio::test]
async fn dns_18_nodata_means_no_report() {
    let srv = server().await;
    // The name exists (it has an A record) but no TXT.
    let d = dns(&srv).txt("nodata.recipient.example").await;
    assert_eq!(d, Lookup::NoData);
}

#[tokio::test]
async fn dns_18_servfail_is_temporary() {
    let srv = server().await;
    let d = dns(&srv).discover("broken.recipient.example").await;
    assert!(d.is_temporary(), "{d:?}");
    assert!(!d.is_none());
    assert!(d.record().is_none());
}

#[tokio::test]
async fn dns_18_timeout_is_temporary() {
    let srv = server().await;
    let d = dns(&srv).discover("slow.recipient.example").await;
    assert!(d.is_temporary(), "{d:?}");
}

#[tokio::test]
async fn dns_04_two_records_discovered_give_none() {
    let srv = server().await;
    let d = dns(&srv).discover("two.recipient.example").await;
    assert!(d.is_none());
    match d {
        Discovery::Answer { selection, .. } => assert_eq!(
            selection.outcome,
            Outcome::NoTlsrpt(NoTlsrpt::Several { count: 2 })
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn dns_16_invalid_record_gives_none() {
    let srv = server().await;
    let d = dns(&srv).discover("bad.recipient.example").await;
    assert!(d.is_none() && !d.is_temporary());
    assert!(d.record().is_none());
}

#[tokio::test]
async fn dns_17_cname_followed() {
    let srv = server().await;
    let d = dns(&srv).discover("delegated.recipient.example").await;
    let rec = d.record().unwrap_or_else(|| panic!("{d:?}"));
    assert_eq!(
        rec.usable_rua().next().unwrap().as_str(),
        "https://reports.provider.example/v1"
    );
}

#[tokio::test]
async fn mx_sorted_by_preference_lower_case() {
    let srv = server().await;
    let Lookup::Found(mx) = dns(&srv).mx("recipient.example").await else {
        panic!()
    };
    let hosts: Vec<(u16, &str)> = mx.iter().map(|m| (m.preference, m.host.as_str())).collect();
    assert_eq!(
        hosts,
        [(10, "mx1.recipient.example"), (20, "mx2.recipient.example")]
    );
    assert_eq!(
        dns(&srv).mx("nothere.recipient.example").await,
        Lookup::NxDomain
    );
}

#[tokio::test]
async fn tlsa_found_with_status_and_absent() {
    let srv = server().await;
    let d = dns(&srv);
    let Lookup::Found(set) = d.tlsa("mx1.recipient.example", 25).await else {
        panic!()
    };
    assert_eq!(set.records.len(), 1);
    assert_eq!(set.records[0].to_policy_string(), "3 1 1 EA1A96");
    // The test zone is unsigned: never reported as secure.
    assert_ne!(set.dnssec, DnssecStatus::Secure);
    assert!(matches!(
        d.tlsa("mx2.recipient.example", 25).await,
        Lookup::NxDomain | Lookup::NoData
    ));
}

#[tokio::test]
async fn ips_v4_and_v6() {
    let srv = server().await;
    let Lookup::Found(ips) = dns(&srv).ips("host.recipient.example").await else {
        panic!()
    };
    assert_eq!(ips.len(), 2);
    assert!(ips.contains(&"192.0.2.7".parse().unwrap()));
    assert!(ips.contains(&"2001:db8::7".parse().unwrap()));
}

#[tokio::test]
async fn dane_01_tlsa_in_signed_zone_is_secure_with_the_zone_anchor() {
    let srv = DnsServer::builder()
        .signed_zone("signed.example")
        .zone("plain.example")
        .tlsa("_25._tcp.mx.signed.example", 3, 1, 1, &[0x01, 0x02])
        .tlsa("_25._tcp.mx.plain.example", 3, 1, 1, &[0x01, 0x02])
        .start()
        .await
        .unwrap();
    let d = Dns::with_config(&DnsConfig {
        nameservers: vec![srv.addr()],
        timeout: Duration::from_millis(500),
        attempts: 1,
        trust_anchors: Some(Anchors(srv.trust_anchors())),
    })
    .unwrap();
    let Lookup::Found(set) = d.tlsa("mx.signed.example", 25).await else {
        panic!()
    };
    assert_eq!(set.dnssec, DnssecStatus::Secure);
    assert_eq!(set.records[0].to_policy_string(), "3 1 1 0102");
    let Lookup::Found(set) = d.tlsa("mx.plain.example", 25).await else {
        panic!()
    };
    assert_ne!(set.dnssec, DnssecStatus::Secure);
    // Without the anchor the signed zone cannot be validated either.
    let Lookup::Found(set) = dns(&srv).tlsa("mx.signed.example", 25).await else {
        panic!()
    };
    assert_ne!(set.dnssec, DnssecStatus::Secure);
}

#[tokio::test]
async fn dns_02_no_walking_up_to_the_parent() {
    let srv = server().await;
    // recipient.example has a record; its subdomain does not inherit it.
    let d = dns(&srv).discover("sub.recipient.example").await;
    assert_eq!(d, Discovery::NoRecord(Lookup::NxDomain));
}

#[tokio::test]
async fn dns_01_record_is_at_smtp_tls_under_the_a_label_policy_domain() {
    let srv = server().await;
    let d = dns(&srv);
    let rua = |found: &Discovery| -> Vec<String> {
        found
            .record()
            .unwrap_or_else(|| panic!("{found:?}"))
            .usable_rua()
            .map(|u| u.as_str().to_owned())
            .collect()
    };
    // `_smtp._tls.<policy domain>`; a trailing dot names the same domain.
    for name in ["recipient.example", "recipient.example."] {
        assert_eq!(
            rua(&d.discover(name).await),
            ["mailto:tls@example.net"],
            "{name}"
        );
    }
    // The record lives under `_smtp._tls`, not at the policy domain itself.
    assert_eq!(d.txt("recipient.example").await, Lookup::NoData);
    // An IDN policy domain is normalised to its A-label form (as the collector stores it)
    // and looked up that way.
    let pd = tlsrpt_core::domain::normalize("B\u{fc}cher.Recipient.Example.").unwrap();
    assert_eq!(pd, "xn--bcher-kva.recipient.example");
    assert_eq!(
        rua(&d.discover(&pd).await),
        ["mailto:tls@xn--bcher-kva.example"]
    );
}

#[tokio::test]
async fn dane_10_tlsa_rr_becomes_the_rfc_policy_string() {
    // The RFC 8460 §4.5 example: `3 1 1 ( ea1a9621... )` in the zone file becomes one
    // string, decimal fields, the data as one unbroken upper-case hex string, no owner, TTL,
    // class or type.
    let data: Vec<u8> = (0..32)
        .map(|i| {
            u8::from_str_radix(
                &"ea1a962106816db744dc30650bf24aa315ec613601eece43f9f7deae9168d377"
                    [2 * i..2 * i + 2],
                16,
            )
            .unwrap()
        })
        .collect();
    let srv = DnsServer::builder()
        .zone("recipient.example")
        .tlsa("_25._tcp.mx1.recipient.example", 3, 1, 1, &data)
        .tlsa("_25._tcp.mx1.recipient.example", 2, 0, 2, &[0x0a, 0xff])
        .start()
        .await
        .unwrap();
    let Lookup::Found(set) = dns(&srv).tlsa("mx1.recipient.example", 25).await else {
        panic!()
    };
    let mut got: Vec<String> = set.records.iter().map(|t| t.to_policy_string()).collect();
    got.sort();
    assert_eq!(
        got,
        [
            "2 0 2 0AFF",
            "3 1 1 EA1A962106816DB744DC30650BF24AA315EC613601EECE43F9F7DEAE9168D377",
        ]
    );
}
