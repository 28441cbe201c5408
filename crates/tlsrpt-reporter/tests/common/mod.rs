//! Shared test helpers: sample reports of several shapes, DKIM verification against the
//! testkit DNS server.
#![allow(dead_code)]

use std::path::PathBuf;

use jiff::civil::date;
use tlsrpt_core::DateRange;
use tlsrpt_core::naming::{ReportFilename, report_id};
use tlsrpt_core::report::{FailureDetail, Policy, PolicyResult, Report, Summary};
use tlsrpt_core::types::{PolicyType, ResultType};
use tlsrpt_reporter::ReportToSend;
use tlsrpt_reporter::dkim::{DkimKeyConfig, Signer};

pub const SUBMITTER: &str = "sender.example";
pub const CONTACT: &str = "tlsrpt@sender.example";
pub const FROM: &str = "tlsrpt-noreply@sender.example";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    StsWithFailures,
    Tlsa,
    NoPolicyFound,
    ManyDetails,
}

pub const SHAPES: [Shape; 4] = [
    Shape::StsWithFailures,
    Shape::Tlsa,
    Shape::NoPolicyFound,
    Shape::ManyDetails,
];

fn detail(rt: ResultType, n: u64, ip: &str, mx: &str, code: Option<&str>) -> FailureDetail {
    FailureDetail {
        result_type: rt,
        sending_mta_ip: Some(ip.to_string()),
        receiving_mx_hostname: Some(mx.to_string()),
        receiving_mx_helo: Some(mx.to_string()),
        receiving_ip: Some("192.0.2.25".to_string()),
        failed_session_count: n,
        additional_information: None,
        failure_reason_code: code.map(str::to_string),
    }
}

/// A report for `policy_domain` of the given shape, made with the core's naming.
pub fn sample(shape: Shape, policy_domain: &str) -> ReportToSend {
    let day = date(2026, 11, 28);
    let range = DateRange::utc_day(day);
    let policies = match shape {
        Shape::StsWithFailures => vec![PolicyResult {
            policy: Policy {
                policy_type: PolicyType::Sts,
                policy_string: vec![
                    "version: STSv1".into(),
                    "mode: enforce".into(),
                    format!("mx: mx1.{policy_domain}"),
                    "max_age: 86400".into(),
                ],
                policy_domain: Some(policy_domain.into()),
                mx_host: vec![format!("mx1.{policy_domain}")],
            },
            summary: Summary {
                total_successful_session_count: 5326,
                total_failure_session_count: 303,
            },
            failure_details: vec![
                detail(
                    ResultType::CertificateExpired,
                    200,
                    "203.0.113.7",
                    "mx1.x",
                    None,
                ),
                detail(
                    ResultType::ValidationFailure,
                    100,
                    "198.51.100.62",
                    "mx1.x",
                    Some("X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"),
                ),
                detail(
                    ResultType::StarttlsNotSupported,
                    3,
                    "2001:db8::7",
                    "mx1.x",
                    None,
                ),
            ],
        }],
        Shape::Tlsa => vec![PolicyResult {
            policy: Policy {
                policy_type: PolicyType::Tlsa,
                policy_string: vec![
                    "3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
                ],
                policy_domain: Some(policy_domain.into()),
                mx_host: vec![],
            },
            summary: Summary {
                total_successful_session_count: 10,
                total_failure_session_count: 2,
            },
            failure_details: vec![detail(
                ResultType::TlsaInvalid,
                2,
                "203.0.113.9",
                "mx.y",
                None,
            )],
        }],
        Shape::NoPolicyFound => vec![PolicyResult {
            policy: Policy {
                policy_type: PolicyType::NoPolicyFound,
                policy_string: vec![],
                policy_domain: Some(policy_domain.into()),
                mx_host: vec![],
            },
            summary: Summary {
                total_successful_session_count: 42,
                total_failure_session_count: 0,
            },
            failure_details: vec![],
        }],
        Shape::ManyDetails => {
            let details: Vec<FailureDetail> = (0..400u64)
                .map(|i| {
                    let rt = tlsrpt_core::types::KNOWN_RESULT_TYPES[(i % 11) as usize].clone();
                    detail(
                        rt,
                        i + 1,
                        &format!("203.0.113.{}", i % 250),
                        &format!("mx{}.{policy_domain}", i % 7),
                        None,
                    )
                })
                .collect();
            let failures: u64 = details.iter().map(|d| d.failed_session_count).sum();
            vec![PolicyResult {
                policy: Policy {
                    policy_type: PolicyType::Sts,
                    policy_string: vec!["version: STSv1".into(), "mode: testing".into()],
                    policy_domain: Some(policy_domain.into()),
                    mx_host: vec![format!("*.{policy_domain}")],
                },
                summary: Summary {
                    total_successful_session_count: 123_456,
                    total_failure_session_count: failures,
                },
                failure_details: details,
            }]
        }
    };
    let report = Report {
        organization_name: Some("Sender Example Inc.".into()),
        date_range: range,
        contact_info: Some(CONTACT.into()),
        report_id: report_id(day, policy_domain, SUBMITTER, "a1b2c3").unwrap(),
        policies,
    };
    let gzip = tlsrpt_core::write::to_gzip(&report);
    let filename = ReportFilename::new(SUBMITTER, policy_domain, range, Some("a1b2c3"), true)
        .unwrap()
        .to_string();
    ReportToSend {
        report,
        policy_domain: policy_domain.into(),
        gzip,
        filename,
    }
}

pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

pub fn key(file: &str, selector: &str) -> DkimKeyConfig {
    DkimKeyConfig {
        domain: SUBMITTER.into(),
        selector: selector.into(),
        key: data(file),
    }
}

/// Splits a TXT value into 255-octet character-strings.
pub fn chunks(s: &str) -> Vec<String> {
    s.as_bytes()
        .chunks(255)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect()
}

/// A DNS server publishing every key of `signer` (plus whatever `extra` adds).
pub async fn dns_for(
    signer: &Signer,
    extra: impl FnOnce(tlsrpt_testkit::dns::DnsBuilder) -> tlsrpt_testkit::dns::DnsBuilder,
) -> tlsrpt_testkit::dns::DnsServer {
    let mut b = tlsrpt_testkit::dns::DnsServer::builder().zone(SUBMITTER);
    for (name, txt) in signer.dns_records() {
        let parts = chunks(&txt);
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        b = b.txt(&name, &refs);
    }
    extra(b).start().await.unwrap()
}

/// DKIM results (`true` = pass) of every signature in `message`, checked by mail-auth
/// against the DNS server at `ns`.
pub async fn verify(message: &[u8], ns: std::net::SocketAddr) -> Vec<(bool, String)> {
    use mail_auth::hickory_resolver::config::{
        ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
    };
    use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};
    let mut udp = ConnectionConfig::udp();
    udp.port = ns.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = ns.port();
    let cfg = ResolverConfig::from_name_servers(vec![NameServerConfig::new(
        ns.ip(),
        true,
        vec![udp, tcp],
    )]);
    let auth = MessageAuthenticator::new(cfg, ResolverOpts::default()).unwrap();
    let msg = AuthenticatedMessage::parse(message).expect("parsable message");
    let out = auth.verify_dkim(&msg).await;
    out.iter()
        .map(|o| {
            let pass = matches!(o.result(), DkimResult::Pass);
            (pass, format!("{:?}", o.result()))
        })
        .collect()
}
