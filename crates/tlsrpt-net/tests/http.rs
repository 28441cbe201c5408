//! The HTTPS client against the loopback test servers: SSRF guard, redirects, certificates.
//! Every real fetch here is to 127.0.0.1 and therefore needs `allow_private_targets`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tlsrpt_net::http::{
    HttpClient, HttpConfig, HttpError, Redirects, check_url, forbidden_reason, is_forbidden,
};
use tlsrpt_net::resolver::{Dns, DnsConfig};
use tlsrpt_testkit::axum::Router;
use tlsrpt_testkit::axum::extract::Path;
use tlsrpt_testkit::axum::http::{StatusCode, header};
use tlsrpt_testkit::axum::response::IntoResponse;
use tlsrpt_testkit::axum::routing::{get, post};
use tlsrpt_testkit::dns::DnsServer;
use tlsrpt_testkit::https::{HttpsServer, TestCa};

const HOST: &str = "reports.recipient.example";

async fn dns_server() -> DnsServer {
    DnsServer::builder()
        .zone("recipient.example")
        .a(HOST, [127, 0, 0, 1].into())
        .a("other.recipient.example", [127, 0, 0, 1].into())
        .a("metadata.recipient.example", [169, 254, 169, 254].into())
        .a("mixed.recipient.example", [10, 1, 2, 3].into())
        .start()
        .await
        .unwrap()
}

fn dns(srv: &DnsServer) -> Dns {
    Dns::with_config(&DnsConfig {
        nameservers: vec![srv.addr()],
        timeout: Duration::from_millis(500),
        attempts: 1,
        ..DnsConfig::default()
    })
    .unwrap()
}

fn client(srv: &DnsServer, allow: bool, ca: Option<&std::path::Path>, r: Redirects) -> HttpClient {
    let cfg = HttpConfig {
        allow_private_targets: allow,
        extra_ca: ca.map(|p| p.to_path_buf()),
        redirects: r,
        timeout: Duration::from_secs(5),
        ..HttpConfig::default()
    };
    HttpClient::new(&cfg, dns(srv)).unwrap()
}

fn app(port_holder: Arc<std::sync::OnceLock<u16>>) -> Router {
    let p1 = port_holder.clone();
    let p2 = port_holder.clone();
    let p3 = port_holder.clone();
    let p4 = port_holder.clone();
    Router::new()
        .route("/ok", post(|| async { (StatusCode::CREATED, "stored") }))
        .route(
            "/get",
            get(|| async { ([(header::CONTENT_TYPE, "text/plain")], "hello") }),
        )
        .route(
            "/moved",
            post(|| async { (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "/ok")]) }),
        )
        .route(
            "/perm",
            post(move || async move {
                let loc = format!("https://{HOST}:{}/ok", p1.get().copied().unwrap_or(0));
                (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, loc)]).into_response()
            }),
        )
        .route(
            "/loop",
            post(move || async move {
                let loc = format!("https://{HOST}:{}/loop", p2.get().copied().unwrap_or(0));
                (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, loc)]).into_response()
            }),
        )
        .route(
            "/to-http",
            post(move || async move {
                let loc = format!("http://{HOST}:{}/ok", p3.get().copied().unwrap_or(0));
                (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, loc)]).into_response()
            }),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route("/big", get(|| async { vec![b'x'; 100_000] }))
        .route(
            "/hop/{n}",
            post(move |Path(n): Path<u32>| async move {
                let port = p4.get().copied().unwrap_or(0);
                let loc = if n <= 1 {
                    format!("https://{HOST}:{port}/ok")
                } else {
                    format!("https://other.recipient.example:{port}/hop/{}", n - 1)
                };
                (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, loc)]).into_response()
            }),
        )
}

async fn https() -> HttpsServer {
    tlsrpt_testkit::install_crypto();
    let port = Arc::new(std::sync::OnceLock::new());
    let srv = HttpsServer::start(app(port.clone()), &[HOST, "other.recipient.example"])
        .await
        .unwrap();
    port.set(srv.port()).unwrap();
    srv
}

#[test]
fn is_forbidden_table() {
    let forbidden = [
        "127.0.0.1",
        "127.255.0.1",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "100.64.0.1",
        "100.127.255.254",
        "169.254.169.254",
        "0.0.0.0",
        "224.0.0.1",
        "239.255.255.250",
        "255.255.255.255",
        "240.0.0.1",
        "192.0.2.1",
        "198.51.100.1",
        "203.0.113.9",
        "198.18.0.1",
        "192.0.0.8",
        "::",
        "::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "fe80::1",
        "febf::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "2001:db8::1",
        "64:ff9b::a00:1",
        "64:ff9b::7f00:1",
        "64:ff9b:1::1",
        "2002:7f00:1::1",
        "2001::1",
        "fec0::1",
        "100::1",
        "3fff::1",
    ];
    for ip in forbidden {
        let ip: IpAddr = ip.parse().unwrap();
        assert!(is_forbidden(ip), "{ip} should be forbidden");
    }
    let public = [
        "8.8.8.8",
        "1.1.1.1",
        "100.63.255.255",
        "100.128.0.1",
        "172.15.255.255",
        "172.32.0.1",
        "192.169.0.1",
        "169.253.1.1",
        "223.255.255.255",
        "2606:4700::1111",
        "2a00:1450:4001::200e",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ];
    for ip in public {
        let ip: IpAddr = ip.parse().unwrap();
        assert!(
            !is_forbidden(ip),
            "{ip} should be allowed: {:?}",
            forbidden_reason(ip)
        );
    }
}

#[test]
fn ssrf_ip_literals_refused_by_default_allowed_with_opt_in() {
    for url in [
        "https://127.0.0.1/x",
        "https://10.0.0.1/x",
        "https://[::1]/x",
        "https://[::ffff:7f00:1]/x",
        "https://169.254.169.254/latest/meta-data",
        "https://2130706433/x", // 127.0.0.1 as one number: url normalises it
    ] {
        let e = check_url(url, false).unwrap_err();
        assert!(matches!(e, HttpError::ForbiddenTarget { .. }), "{url}: {e}");
        assert!(e.to_string().contains("allow_private_targets"), "{e}");
        check_url(url, true).unwrap();
    }
    check_url("https://93.184.215.14/x", false).unwrap();
    assert!(matches!(
        check_url("http://example.com/x", true).unwrap_err(),
        HttpError::NotHttps { .. }
    ));
}

#[tokio::test]
async fn ssrf_requests_to_literals_refused_before_connecting() {
    let d = dns_server().await;
    let c = client(&d, false, None, Redirects::PreserveMethod);
    for url in [
        "https://127.0.0.1:9/x",
        "https://10.0.0.1/x",
        "https://[::1]:9/x",
    ] {
        let e = c
            .post(url, "application/tlsrpt+gzip", vec![1], 1024)
            .await
            .unwrap_err();
        assert!(matches!(e, HttpError::ForbiddenTarget { .. }), "{url}: {e}");
    }
}

#[tokio::test]
async fn ssrf_name_resolving_to_metadata_address_refused() {
    let d = dns_server().await;
    let c = client(&d, false, None, Redirects::PreserveMethod);
    let e = c
        .get("https://metadata.recipient.example/latest", 1024)
        .await
        .unwrap_err();
    match &e {
        HttpError::ForbiddenTarget { host, detail } => {
            assert_eq!(host, "metadata.recipient.example");
            assert!(detail.contains("169.254.169.254"), "{detail}");
            assert!(detail.contains("link-local"), "{detail}");
        }
        other => panic!("{other}"),
    }
    let e = c
        .get("https://mixed.recipient.example/", 1024)
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::ForbiddenTarget { .. }), "{e}");
}

#[tokio::test]
async fn ssrf_loopback_name_refused_by_default_fetched_with_opt_in() {
    let d = dns_server().await;
    let s = https().await;
    let ca = s.ca().write_pem().unwrap();
    let url = s.url(HOST, "/get");
    let e = client(&d, false, Some(ca.path()), Redirects::None)
        .get(&url, 1024)
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::ForbiddenTarget { .. }), "{e}");
    let r = client(&d, true, Some(ca.path()), Redirects::None)
        .get(&url, 1024)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello");
    assert_eq!(r.content_type.as_deref(), Some("text/plain"));
    assert_eq!(r.remote_addr.unwrap().ip(), IpAddr::from([127, 0, 0, 1]));
}

#[tokio::test]
async fn http_04_untrusted_certificate_refused_unless_extra_ca() {
    let d = dns_server().await;
    let s = https().await;
    let url = s.url(HOST, "/ok");
    let e = client(&d, true, None, Redirects::PreserveMethod)
        .post(&url, "application/tlsrpt+json", b"{}".to_vec(), 1024)
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::Tls(_)), "{e}");
    // A different CA does not help either.
    let other = TestCa::new().unwrap().write_pem().unwrap();
    let e = client(&d, true, Some(other.path()), Redirects::PreserveMethod)
        .post(&url, "application/tlsrpt+json", b"{}".to_vec(), 1024)
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::Tls(_)), "{e}");
    let ca = s.ca().write_pem().unwrap();
    let r = client(&d, true, Some(ca.path()), Redirects::PreserveMethod)
        .post(&url, "application/tlsrpt+json", b"{}".to_vec(), 1024)
        .await
        .unwrap();
    assert_eq!(r.status, 201);
}

#[tokio::test]
async fn http_04_accept_invalid_certs_opt_in_posts_anyway() {
    let d = dns_server().await;
    let s = https().await;
    let cfg = HttpConfig {
        allow_private_targets: true,
        accept_invalid_certs: true,
        timeout: Duration::from_secs(5),
        ..HttpConfig::default()
    };
    let r = HttpClient::new(&cfg, dns(&d))
        .unwrap()
        .post(
            &s.url(HOST, "/ok"),
            "application/tlsrpt+json",
            b"{}".to_vec(),
            1024,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201);
}

#[tokio::test]
async fn http_04_certificate_for_another_name_refused() {
    let d = dns_server().await;
    let s = https().await;
    let ca = s.ca().write_pem().unwrap();
    // 127.0.0.1 is not among the certificate's names.
    let url = format!("https://127.0.0.1:{}/ok", s.port());
    let e = client(&d, true, Some(ca.path()), Redirects::PreserveMethod)
        .post(&url, "application/tlsrpt+json", b"{}".to_vec(), 1024)
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::Tls(_)), "{e}");
}

#[tokio::test]
async fn bad_extra_ca_file_is_a_clear_error() {
    let d = dns_server().await;
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), "not a pem").unwrap();
    let cfg = HttpConfig {
        extra_ca: Some(f.path().to_path_buf()),
        ..HttpConfig::default()
    };
    let e = HttpClient::new(&cfg, dns(&d)).unwrap_err();
    assert!(matches!(e, HttpError::ExtraCa { .. }), "{e}");
}

#[tokio::test]
async fn http_05_301_not_followed() {
    let d = dns_server().await;
    let s = https().await;
    let ca = s.ca().write_pem().unwrap();
    let r = client(&d, true, Some(ca.path()), Redirects::PreserveMethod)
        .post(
            &s.url(HOST, "/moved"),
            "application/tlsrpt+gzip",
            vec![0x1f, 0x8b],
            1024,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 301);
    assert_eq!(r.location.as_deref(), Some("/ok"));
}

#[tokio::test]
async fn http_05_308_followed_with_post() {
    let d = dns_server().await;
    let s = https().await;
    let ca = s.ca().write_pem().unwrap();
    let r = client(&d, true, Some(ca.path()), Redirects::PreserveMethod)
        .post(
            &s.url(HOST, "/perm"),
            "application/tlsrpt+gzip",
            vec![0x1f, 0x8b],
            1024,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "the POST reached /ok");
    assert!(r.final_url.ends_with("/ok"), "{}", r.final_url);
    // With redirects off (the MTA-STS fetch), the 308 itself comes back.
    let r = client(&d, true, Some(ca.path()), Redirects::None)
        .post(
            &s.url(HOST, "/perm"),
            "application/tlsrpt+gzip",
            vec![],
            1024,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 308);
}

#[tokio::test]
async fn http_05_three_307_hops_followed_four_refused() {
    let d = dns_server().await;
    let s = https().await;
    let ca = s.ca().write_pem().unwrap();
    let c = client(&d, true, Some(ca.path()), Redirects::PreserveMethod);
    // /hop/3 -> /hop/2 -> /hop/1 -> /ok: three redirects.
    let r = c
        .post(
            &s.url(HOST, "/hop/3"),
            "application/tlsrpt+gzip",
            vec![1, 2],
            1024,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    let e = c
        .post(
            &s.url(HOST, "/hop/4"),
            "application/tlsrpt+gzip",
            vec![1, 2],
            1024,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::Redirect(_)), "{e}");
}

#[tokio::test]
async fn http_05_redirect_loop_stopped() {
    let d = dns_server().await;
    let s = https().await;
    let ca = s.ca().write_pem().unwrap();
    let e = client(&d, true, Some(ca.path()), Redirects::PreserveMethod)
        .post(
            &s.url(HOST, "/loop"),
            "application/tlsrpt+gzip",
            vec![],
            1024,
        )
        .await
        .unwrap_err();
    match e {
        HttpError::Redirect(m) => assert!(m.contains("more than 3"), "{m}"),
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn http_05_redirect_to_http_refused() {
    let d = dns_server().await;
    let s = https().await;
    let ca = s.ca().write_pem().unwrap();
    let e = client(&d, true, Some(ca.path()), Redirects::PreserveMethod)
        .post(
            &s.url(HOST, "/to-http"),
            "application/tlsrpt+gzip",
            vec![],
            1024,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::Redirect(_)), "{e}");
}

#[tokio::test]
async fn ssrf_redirect_hop_to_private_literal_refused() {
    // The first URL is allowed (a public-looking name in the test DNS that resolves to
    // loopback needs the opt-in, so we use the opt-in client for the server and check the
    // hop rule directly through a guarded client: its first request is refused by the
    // resolver, its redirect hops by the same check as this).
    let e = check_url("https://10.0.0.1/ok", false).unwrap_err();
    assert!(matches!(e, HttpError::ForbiddenTarget { .. }), "{e}");
    let e = check_url("https://[fd00::1]/ok", false).unwrap_err();
    assert!(matches!(e, HttpError::ForbiddenTarget { .. }), "{e}");
}

#[tokio::test]
async fn http_05_timeout_and_body_limit() {
    let d = dns_server().await;
    let s = https().await;
    let ca = s.ca().write_pem().unwrap();
    let cfg = HttpConfig {
        allow_private_targets: true,
        extra_ca: Some(ca.path().to_path_buf()),
        timeout: Duration::from_millis(500),
        ..HttpConfig::default()
    };
    let c = HttpClient::new(&cfg, dns(&d)).unwrap();
    let e = c
        .post(
            &s.url(HOST, "/slow"),
            "application/tlsrpt+gzip",
            vec![],
            1024,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::Timeout(_)), "{e}");
    let e = c.get(&s.url(HOST, "/big"), 1000).await.unwrap_err();
    assert!(matches!(e, HttpError::TooLarge { limit: 1000 }), "{e}");
}
