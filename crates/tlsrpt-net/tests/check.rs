//! `check_domain` end to end: test DNS serves `_smtp._tls`, `_mta-sts`, MX, TLSA and
//! `mta-sts.<domain>` → 127.0.0.1; the test HTTPS server serves the policies (one certificate
//! for every `mta-sts.<domain>` name, the answer chosen by the Host header).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tlsrpt_core::mtasts::Mode;
use tlsrpt_net::check::{CheckOptions, DomainCheck, Verdict, check_domain};
use tlsrpt_net::resolver::Anchors;
use tlsrpt_testkit::axum::Router;
use tlsrpt_testkit::axum::http::{HeaderMap, StatusCode, Uri, header};
use tlsrpt_testkit::axum::response::{IntoResponse, Response};
use tlsrpt_testkit::axum::routing::get;
use tlsrpt_testkit::dns::{DnsBuilder, DnsServer};
use tlsrpt_testkit::https::HttpsServer;

const GOOD_POLICY: &str =
    "version: STSv1\nmode: enforce\nmx: mx1.DOM\nmx: *.backup.DOM\nmax_age: 604800\n";

/// (status, content-type, body, location) per domain.
struct Site {
    status: u16,
    ct: &'static str,
    body: String,
    location: Option<&'static str>,
}

fn site(status: u16, ct: &'static str, body: &str) -> Site {
    Site {
        status,
        ct,
        body: body.to_string(),
        location: None,
    }
}

struct Env {
    dns: DnsServer,
    https: HttpsServer,
    ca: tempfile::NamedTempFile,
}

const DOMAINS: &[&str] = &[
    "good.example",
    "testing.example",
    "none.example",
    "ctype.example",
    "badversion.example",
    "maxage.example",
    "uncovered.example",
    "redirect.example",
    "notfound.example",
    "nosts.example",
    "notlsrpt.example",
    "dane.example",
];

fn sites() -> HashMap<String, Site> {
    let p = |d: &str| GOOD_POLICY.replace("DOM", d);
    let mut m = HashMap::new();
    m.insert(
        "good.example".into(),
        site(200, "text/plain; charset=utf-8", &p("good.example")),
    );
    m.insert(
        "testing.example".into(),
        site(
            200,
            "text/plain",
            &p("testing.example").replace("enforce", "testing"),
        ),
    );
    m.insert(
        "none.example".into(),
        site(
            200,
            "text/plain",
            "version: STSv1\nmode: none\nmax_age: 86400\n",
        ),
    );
    m.insert(
        "ctype.example".into(),
        site(200, "text/html", &p("ctype.example")),
    );
    m.insert(
        "badversion.example".into(),
        site(
            200,
            "text/plain",
            &p("badversion.example").replace("STSv1", "STSv2"),
        ),
    );
    m.insert(
        "maxage.example".into(),
        site(
            200,
            "text/plain",
            &p("maxage.example").replace("604800", "31557601"),
        ),
    );
    m.insert(
        "uncovered.example".into(),
        site(
            200,
            "text/plain",
            "version: STSv1\nmode: enforce\nmx: mx9.uncovered.example\nmax_age: 86400\n",
        ),
    );
    m.insert(
        "redirect.example".into(),
        Site {
            status: 301,
            ct: "text/plain",
            body: String::new(),
            location: Some("https://elsewhere.example/.well-known/mta-sts.txt"),
        },
    );
    m.insert("notfound.example".into(), site(404, "text/plain", "no"));
    m.insert(
        "dane.example".into(),
        site(200, "text/plain", &p("dane.example")),
    );
    m
}

async fn env() -> Env {
    tlsrpt_testkit::install_crypto();
    let mut b: DnsBuilder = DnsServer::builder().signed_zone("dane.example");
    for d in DOMAINS {
        if *d != "dane.example" {
            b = b.zone(d);
        }
        b = b
            .a(&format!("mta-sts.{d}"), [127, 0, 0, 1].into())
            .mx(d, 10, &format!("mx1.{d}"))
            .mx(d, 20, &format!("mx2.backup.{d}"));
        if *d != "notlsrpt.example" {
            b = b.txt(
                &format!("_smtp._tls.{d}"),
                &[&format!("v=TLSRPTv1; rua=mailto:tlsrpt@{d}")],
            );
        }
        if *d != "nosts.example" {
            b = b.txt(&format!("_mta-sts.{d}"), &["v=STSv1; id=20261129"]);
        }
    }
    let b = b
        .tlsa("_25._tcp.mx1.good.example", 3, 1, 1, &[0xab; 32])
        .tlsa("_25._tcp.mx1.dane.example", 3, 1, 1, &[0xcd; 32]);
    let dns = b.start().await.unwrap();

    let sites = Arc::new(sites());
    let app = Router::new().route(
        "/.well-known/mta-sts.txt",
        get(move |uri: Uri, headers: HeaderMap| {
            let sites = sites.clone();
            async move {
                // HTTP/2 carries the host in the URI (:authority), HTTP/1.1 in Host.
                let host = uri
                    .host()
                    .map(str::to_string)
                    .or_else(|| {
                        headers
                            .get(header::HOST)
                            .and_then(|h| h.to_str().ok())
                            .map(str::to_string)
                    })
                    .unwrap_or_default()
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches("mta-sts.")
                    .to_string();
                let Some(s) = sites.get(&host) else {
                    return StatusCode::NOT_FOUND.into_response();
                };
                let mut r: Response = s.body.clone().into_response();
                *r.status_mut() = StatusCode::from_u16(s.status).unwrap();
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, s.ct.parse().unwrap());
                if let Some(l) = s.location {
                    r.headers_mut().insert(header::LOCATION, l.parse().unwrap());
                }
                r
            }
        }),
    );
    let names: Vec<String> = DOMAINS.iter().map(|d| format!("mta-sts.{d}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let https = HttpsServer::start(app, &names).await.unwrap();
    let ca = https.ca().write_pem().unwrap();
    Env { dns, https, ca }
}

fn opts(e: &Env) -> CheckOptions {
    CheckOptions {
        nameservers: vec![e.dns.addr()],
        allow_private_targets: true,
        extra_ca: Some(e.ca.path().to_path_buf()),
        dns_timeout: Duration::from_millis(500),
        http_timeout: Duration::from_secs(5),
        policy_port: e.https.port(),
        trust_anchors: Some(Anchors(e.dns.trust_anchors())),
    }
}

fn get_item<'a>(r: &'a DomainCheck, check: &str) -> &'a tlsrpt_net::check::Item {
    r.items
        .iter()
        .find(|i| i.check == check)
        .unwrap_or_else(|| panic!("no item {check}: {:#?}", r.items))
}

#[tokio::test]
async fn sts_02_good_domain_passes_with_tlsa_reported() {
    let e = env().await;
    let r = check_domain("Good.Example.", &opts(&e)).await.unwrap();
    assert!(r.passed(), "{:#?}", r.items);
    assert_eq!(r.domain, "good.example");
    assert_eq!(r.rua, ["mailto:tlsrpt@good.example"]);
    assert_eq!(r.mta_sts_mode, Some(Mode::Enforce));
    assert_eq!(r.mta_sts_policy.as_ref().unwrap().len(), 5);
    assert_eq!(get_item(&r, "mta-sts-policy").verdict, Verdict::Ok);
    assert_eq!(
        get_item(&r, "mx-coverage:mx1.good.example").verdict,
        Verdict::Ok
    );
    assert_eq!(
        get_item(&r, "mx-coverage:mx2.backup.good.example").verdict,
        Verdict::Ok
    );
    // TLSA present (zone unsigned: reported, flagged) and absent.
    let t = get_item(&r, "tlsa:mx1.good.example");
    assert!(t.detail.contains("1 TLSA record"), "{}", t.detail);
    assert!(t.detail.contains("3 1 1 ABAB"), "{}", t.detail);
    assert_eq!(
        t.verdict,
        Verdict::Warn,
        "an unsigned TLSA RRset does not count"
    );
    let t = get_item(&r, "tlsa:mx2.backup.good.example");
    assert_eq!(t.verdict, Verdict::Ok);
    assert!(t.detail.contains("no TLSA"), "{}", t.detail);
    // JSON shape.
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["items"][0]["verdict"], "ok");
    assert_eq!(v["mta_sts_mode"], "enforce");
}

#[tokio::test]
async fn sts_02_modes_testing_ok_none_warn() {
    let e = env().await;
    let r = check_domain("testing.example", &opts(&e)).await.unwrap();
    assert!(r.passed(), "{:#?}", r.items);
    assert_eq!(r.mta_sts_mode, Some(Mode::Testing));
    let r = check_domain("none.example", &opts(&e)).await.unwrap();
    assert_eq!(r.mta_sts_mode, Some(Mode::None));
    assert_eq!(get_item(&r, "mta-sts-policy").verdict, Verdict::Warn);
    assert!(r.passed(), "a warning does not fail");
    assert!(
        !r.items.iter().any(|i| i.check.starts_with("mx-coverage")),
        "mode none has no patterns to cover"
    );
}

#[tokio::test]
async fn sts_02_wrong_content_type_warns() {
    let e = env().await;
    let r = check_domain("ctype.example", &opts(&e)).await.unwrap();
    let i = get_item(&r, "mta-sts-content-type");
    assert_eq!(i.verdict, Verdict::Warn);
    assert!(i.detail.contains("text/html"), "{}", i.detail);
    assert_eq!(i.rule, Some("STS-02"));
    assert!(r.passed());
}

#[tokio::test]
async fn sts_02_bad_version_fails_naming_the_line() {
    let e = env().await;
    let r = check_domain("badversion.example", &opts(&e)).await.unwrap();
    let i = get_item(&r, "mta-sts-policy");
    assert_eq!(i.verdict, Verdict::Fail);
    assert!(i.detail.contains("line 1"), "{}", i.detail);
    assert!(i.fix.is_some());
    assert!(!r.passed());
}

#[tokio::test]
async fn sts_02_max_age_out_of_range_fails() {
    let e = env().await;
    let r = check_domain("maxage.example", &opts(&e)).await.unwrap();
    let i = get_item(&r, "mta-sts-policy");
    assert_eq!(i.verdict, Verdict::Fail);
    assert!(i.detail.contains("max_age"), "{}", i.detail);
}

#[tokio::test]
async fn sts_04_mx_not_covered_fails() {
    let e = env().await;
    let r = check_domain("uncovered.example", &opts(&e)).await.unwrap();
    let i = get_item(&r, "mx-coverage:mx1.uncovered.example");
    assert_eq!(i.verdict, Verdict::Fail);
    assert!(
        i.fix
            .as_deref()
            .unwrap()
            .contains("mx: mx1.uncovered.example")
    );
    assert!(!r.passed());
    assert!(r.tlsrpt_valid);
}

#[tokio::test]
async fn sts_03_redirect_not_followed() {
    let e = env().await;
    let r = check_domain("redirect.example", &opts(&e)).await.unwrap();
    let i = get_item(&r, "mta-sts-policy");
    assert_eq!(i.verdict, Verdict::Fail);
    assert!(i.detail.contains("301"), "{}", i.detail);
    assert_eq!(i.rule, Some("STS-03"));
    let r = check_domain("notfound.example", &opts(&e)).await.unwrap();
    let i = get_item(&r, "mta-sts-policy");
    assert!(i.detail.contains("404"), "{}", i.detail);
}

#[tokio::test]
async fn sts_03_untrusted_certificate_fails() {
    let e = env().await;
    let mut o = opts(&e);
    o.extra_ca = None;
    let r = check_domain("good.example", &o).await.unwrap();
    let i = get_item(&r, "mta-sts-policy");
    assert_eq!(i.verdict, Verdict::Fail);
    assert!(i.detail.contains("TLS"), "{}", i.detail);
}

#[tokio::test]
async fn ssrf_policy_host_on_loopback_refused_without_opt_in() {
    let e = env().await;
    let mut o = opts(&e);
    o.allow_private_targets = false;
    let r = check_domain("good.example", &o).await.unwrap();
    let i = get_item(&r, "mta-sts-policy");
    assert_eq!(i.verdict, Verdict::Fail);
    assert!(i.detail.contains("127.0.0.1"), "{}", i.detail);
}

#[tokio::test]
async fn sts_01_no_mta_sts_is_a_warning_only() {
    let e = env().await;
    let r = check_domain("nosts.example", &opts(&e)).await.unwrap();
    assert_eq!(get_item(&r, "mta-sts-record").verdict, Verdict::Warn);
    assert!(r.items.iter().all(|i| i.check != "mta-sts-policy"));
    assert!(r.passed());
}

#[tokio::test]
async fn dns_18_no_tlsrpt_record_fails() {
    let e = env().await;
    let r = check_domain("notlsrpt.example", &opts(&e)).await.unwrap();
    assert!(!r.tlsrpt_valid);
    assert_eq!(get_item(&r, "tlsrpt-record").verdict, Verdict::Fail);
    assert!(!r.passed());
}

#[tokio::test]
async fn dane_01_signed_tlsa_is_ok_unsigned_is_warned() {
    let e = env().await;
    let r = check_domain("dane.example", &opts(&e)).await.unwrap();
    let t = get_item(&r, "tlsa:mx1.dane.example");
    assert_eq!(t.verdict, Verdict::Ok, "{}", t.detail);
    assert!(t.detail.contains("DNSSEC secure"), "{}", t.detail);
    assert!(r.passed(), "{:#?}", r.items);
}

#[tokio::test]
async fn sts_05_no_policy_from_the_parent_domain() {
    let e = env().await;
    // good.example has an MTA-STS record and policy; sub.good.example has neither.
    let r = check_domain("sub.good.example", &opts(&e)).await.unwrap();
    assert_eq!(get_item(&r, "mta-sts-record").verdict, Verdict::Warn);
    assert!(r.items.iter().all(|i| i.check != "mta-sts-policy"));
    assert_eq!(r.mta_sts_mode, None);
    assert!(
        !r.tlsrpt_valid,
        "no _smtp._tls at the subdomain either (DNS-02)"
    );
}
