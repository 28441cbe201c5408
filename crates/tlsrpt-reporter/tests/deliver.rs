//! Delivery over real loopback components: the testkit SMTP sink, HTTPS server and DNS server.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{FROM, SUBMITTER, Shape, dns_for, key, sample, verify};
use tlsrpt_core::read::Limits;
use tlsrpt_net::http::HttpConfig;
use tlsrpt_reporter::deliver::{DeliverySettings, SmtpSettings, StartTls};
use tlsrpt_reporter::dkim::Signer;
use tlsrpt_reporter::{Deliverer, DeliveryError, Destination, ReportToSend};
use tlsrpt_testkit::axum::{self, Router, http::HeaderMap, http::StatusCode, routing::post};
use tlsrpt_testkit::https::{HttpsServer, TestCa};
use tlsrpt_testkit::smtp::SmtpSink;

const TO: &str = "tlsrpt@recipient.example";

fn report() -> ReportToSend {
    sample(Shape::StsWithFailures, "recipient.example")
}

fn mail_settings(relay: std::net::SocketAddr, starttls: StartTls) -> DeliverySettings {
    let mut s = DeliverySettings::new(FROM);
    s.dkim = vec![key("rsa2048.pkcs8.pem", "rsa"), key("ed25519.pem", "ed")];
    let mut smtp = SmtpSettings::new(relay.to_string());
    smtp.starttls = starttls;
    smtp.timeout = Duration::from_secs(10);
    s.smtp = Some(smtp);
    s
}

fn mailto() -> Destination {
    Destination::Mailto(TO.into())
}

// ---------------------------------------------------------------- SMTP

#[tokio::test]
async fn mail_01_mail_11_plain_relay_receives_a_signed_report() {
    let sink = SmtpSink::builder().start().await.unwrap();
    let d = Deliverer::new(&mail_settings(sink.addr(), StartTls::Off)).unwrap();
    let detail = d.deliver(&report(), &mailto()).await.unwrap();
    assert!(detail.starts_with("250"), "{detail}");
    let got = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.mail_from, FROM, "envelope sender = from");
    assert_eq!(m.rcpt_to, vec![TO.to_string()]);
    assert!(!m.tls);
    // Our own receiver reads it without deviation.
    let r = tlsrpt_core::message::extract_report(&m.data, &Limits::default()).unwrap();
    assert!(
        r.reading.deviations.is_empty(),
        "{:?}",
        r.reading.deviations
    );
    assert_eq!(r.reading.report, report().report);
    // The signatures on what arrived verify against DNS (MAIL-11).
    let signer =
        Signer::load(&[key("rsa2048.pkcs8.pem", "rsa"), key("ed25519.pem", "ed")]).unwrap();
    let dns = dns_for(&signer, |b| b).await;
    let results = verify(&m.data, dns.addr()).await;
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|(p, _)| *p), "{results:?}");
}

async fn starttls_sink(ca: &Arc<TestCa>, require: bool) -> SmtpSink {
    let mut b = SmtpSink::builder().starttls(ca.clone(), &["127.0.0.1"]);
    if require {
        b = b.require_tls();
    }
    b.start().await.unwrap()
}

#[tokio::test]
async fn mail_14_starttls_required_and_opportunistic() {
    tlsrpt_testkit::install_crypto();
    let ca = Arc::new(TestCa::new().unwrap());
    let ca_file = ca.write_pem().unwrap();
    for mode in [StartTls::Required, StartTls::Opportunistic] {
        let sink = starttls_sink(&ca, true).await;
        let mut s = mail_settings(sink.addr(), mode);
        s.smtp.as_mut().unwrap().extra_ca = Some(ca_file.path().to_path_buf());
        let d = Deliverer::new(&s).unwrap();
        d.deliver(&report(), &mailto())
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        let got = sink.wait_for(1, Duration::from_secs(5)).await;
        assert!(got[0].tls, "{mode:?}: under STARTTLS");
        assert!(got[0].accepted());
    }
}

#[tokio::test]
async fn starttls_required_but_not_offered_is_temporary() {
    let sink = SmtpSink::builder().start().await.unwrap();
    let d = Deliverer::new(&mail_settings(sink.addr(), StartTls::Required)).unwrap();
    let e = d.deliver(&report(), &mailto()).await.unwrap_err();
    assert!(matches!(e, DeliveryError::Temporary(_)), "{e}");
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn starttls_with_untrusted_certificate_is_temporary() {
    tlsrpt_testkit::install_crypto();
    let ca = Arc::new(TestCa::new().unwrap());
    let sink = starttls_sink(&ca, false).await;
    // No extra_ca: the test CA is not trusted.
    let d = Deliverer::new(&mail_settings(sink.addr(), StartTls::Required)).unwrap();
    let e = d.deliver(&report(), &mailto()).await.unwrap_err();
    assert!(matches!(e, DeliveryError::Temporary(_)), "{e}");
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn auth_with_password_file() {
    tlsrpt_testkit::install_crypto();
    let ca = Arc::new(TestCa::new().unwrap());
    let ca_file = ca.write_pem().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret pass\n").unwrap();
    let sink = SmtpSink::builder()
        .starttls(ca.clone(), &["127.0.0.1"])
        .require_tls()
        .auth("reporter", "s3cret pass")
        .start()
        .await
        .unwrap();
    let mut s = mail_settings(sink.addr(), StartTls::Required);
    let smtp = s.smtp.as_mut().unwrap();
    smtp.extra_ca = Some(ca_file.path().to_path_buf());
    smtp.username = Some("reporter".into());
    smtp.password_file = Some(pw.clone());
    Deliverer::new(&s)
        .unwrap()
        .deliver(&report(), &mailto())
        .await
        .unwrap();
    let got = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got[0].auth_user.as_deref(), Some("reporter"));

    // A wrong password: the relay says 535, a problem on our side: temporary, never a
    // verdict on the destination.
    std::fs::write(&pw, "wrong\n").unwrap();
    let e = Deliverer::new(&s)
        .unwrap()
        .deliver(&report(), &mailto())
        .await
        .unwrap_err();
    assert!(matches!(e, DeliveryError::Temporary(_)), "{e}");
    assert!(e.is_config(), "{e}");
    assert!(!e.to_string().contains("wrong"), "no password in {e}");

    // Password file errors name the file, not its content.
    std::fs::write(&pw, "").unwrap();
    let err = Deliverer::new(&s).unwrap_err().to_string();
    assert!(
        err.contains("password_file") && err.contains("empty"),
        "{err}"
    );
    smtp_without_password(&s);
}

fn smtp_without_password(s: &DeliverySettings) {
    let mut s = s.clone();
    s.smtp.as_mut().unwrap().password_file = None;
    // Needs a runtime: we are inside one.
    let err = Deliverer::new(&s).unwrap_err().to_string();
    assert!(err.contains("go together"), "{err}");
}

#[tokio::test]
async fn dlv_07_relay_4xx_then_2xx_is_temporary_then_delivered() {
    let sink = SmtpSink::builder()
        .data_replies(["451 4.3.0 try again later"])
        .start()
        .await
        .unwrap();
    let d = Deliverer::new(&mail_settings(sink.addr(), StartTls::Off)).unwrap();
    let e = d.deliver(&report(), &mailto()).await.unwrap_err();
    assert!(matches!(e, DeliveryError::Temporary(_)), "{e}");
    assert!(e.to_string().contains("451"), "{e}");
    let ok = d.deliver(&report(), &mailto()).await.unwrap();
    assert!(ok.starts_with("250"), "{ok}");
    let got = sink.received();
    assert_eq!(got.len(), 2);
    assert!(!got[0].accepted() && got[1].accepted());
    // The retry carries the same Message-ID (duplicates detectable by the receiver).
    let id = |m: &[u8]| {
        mail_parser::MessageParser::default()
            .parse(m)
            .unwrap()
            .message_id()
            .unwrap()
            .to_string()
    };
    assert_eq!(id(&got[0].data), id(&got[1].data));
}

#[tokio::test]
async fn dlv_07_relay_5xx_is_permanent() {
    let sink = SmtpSink::builder()
        .data_replies(["554 5.7.1 rejected"])
        .rcpt_replies(["250 ok", "550 5.1.1 no such user"])
        .start()
        .await
        .unwrap();
    let d = Deliverer::new(&mail_settings(sink.addr(), StartTls::Off)).unwrap();
    for what in ["DATA", "RCPT"] {
        let e = d.deliver(&report(), &mailto()).await.unwrap_err();
        assert!(matches!(e, DeliveryError::Permanent(_)), "{what}: {e}");
    }
}

#[tokio::test]
async fn relay_refusing_connections_is_temporary() {
    // Bind and drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let d = Deliverer::new(&mail_settings(port, StartTls::Off)).unwrap();
    let e = d.deliver(&report(), &mailto()).await.unwrap_err();
    assert!(matches!(e, DeliveryError::Temporary(_)), "{e}");
}

#[tokio::test]
async fn mail_without_relay_or_key_is_a_config_error() {
    let d = Deliverer::new(&DeliverySettings::new(FROM)).unwrap();
    let e = d.deliver(&report(), &mailto()).await.unwrap_err();
    assert!(e.to_string().contains("config: no smtp_relay"), "{e}");
    assert!(e.is_config());
    let mut anon = report();
    anon.report.contact_info = None;
    let sink0 = SmtpSink::builder().start().await.unwrap();
    let e = Deliverer::new(&mail_settings(sink0.addr(), StartTls::Off))
        .unwrap()
        .deliver(&anon, &mailto())
        .await
        .unwrap_err();
    assert!(
        e.is_config() && e.to_string().contains("contact-info"),
        "{e}"
    );
    let e = Deliverer::new(&mail_settings(sink0.addr(), StartTls::Off))
        .unwrap()
        .deliver(&report(), &Destination::Mailto("a b@x".into()))
        .await
        .unwrap_err();
    assert!(e.is_permanent() && !e.is_config(), "{e}");
    assert!(sink0.received().is_empty());
    let sink = SmtpSink::builder().start().await.unwrap();
    let mut s = mail_settings(sink.addr(), StartTls::Off);
    s.dkim.clear();
    let e = Deliverer::new(&s)
        .unwrap()
        .deliver(&report(), &mailto())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("DKIM") && e.is_config(), "{e}");
    assert!(sink.received().is_empty(), "never sends unsigned mail");
    assert!(Deliverer::new(&DeliverySettings::new("not an address")).is_err());
}

#[test]
fn deliverer_outside_a_runtime_is_an_error_not_a_panic() {
    let e = Deliverer::new(&DeliverySettings::new(FROM)).unwrap_err();
    assert!(e.to_string().contains("tokio runtime"), "{e}");
}

// ---------------------------------------------------------------- HTTPS

#[derive(Default)]
struct Seen {
    hits: usize,
    content_type: Option<String>,
    content_encoding: Option<String>,
    body: Vec<u8>,
}

struct Web {
    server: HttpsServer,
    dns: tlsrpt_testkit::dns::DnsServer,
    seen: Arc<Mutex<Seen>>,
    _ca_file: tempfile::NamedTempFile,
    ca_path: std::path::PathBuf,
}

async fn web() -> Web {
    tlsrpt_testkit::install_crypto();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let status = |code: u16| {
        let seen = seen.clone();
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let mut s = seen.lock().unwrap();
                s.hits += 1;
                s.content_type = headers
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_string());
                s.content_encoding = headers
                    .get("content-encoding")
                    .map(|v| v.to_str().unwrap().to_string());
                s.body = body.to_vec();
                StatusCode::from_u16(code).unwrap()
            }
        })
    };
    let redirect = |code: u16, to: &'static str| {
        post(move || async move {
            (
                StatusCode::from_u16(code).unwrap(),
                [("location", to)],
                "moved",
            )
        })
    };
    let router = Router::new()
        .route("/200", status(200))
        .route("/201", status(201))
        .route("/204", status(204))
        .route("/404", status(404))
        .route("/408", status(408))
        .route("/429", status(429))
        .route("/500", status(500))
        .route("/301", redirect(301, "/200"))
        .route("/307", redirect(307, "/201"))
        .route("/loop", redirect(307, "/loop"))
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                StatusCode::OK
            }),
        );
    let server = HttpsServer::start(router, &["reports.example"])
        .await
        .unwrap();
    let signer = Signer::load(&[]).unwrap();
    let dns = dns_for(&signer, |b| {
        b.zone("reports.example")
            .a("reports.example", [127, 0, 0, 1].into())
            .zone("meta.example")
            .a("meta.example", [169, 254, 169, 254].into())
            .zone("private.example")
            .a("private.example", [10, 0, 0, 1].into())
    })
    .await;
    let ca_file = server.ca().write_pem().unwrap();
    let ca_path = ca_file.path().to_path_buf();
    Web {
        server,
        dns,
        seen,
        _ca_file: ca_file,
        ca_path,
    }
}

impl Web {
    fn url(&self, path: &str) -> Destination {
        Destination::Https(self.server.url("reports.example", path))
    }

    fn deliverer(&self, allow_private: bool, extra_ca: bool, timeout: Duration) -> Deliverer {
        let mut s = DeliverySettings::new(FROM);
        s.nameservers = vec![self.dns.addr()];
        s.http = HttpConfig {
            allow_private_targets: allow_private,
            extra_ca: extra_ca.then(|| self.ca_path.clone()),
            timeout,
            connect_timeout: Duration::from_secs(2),
            ..HttpConfig::default()
        };
        Deliverer::new(&s).unwrap()
    }

    fn hits(&self) -> usize {
        self.seen.lock().unwrap().hits
    }
}

#[tokio::test]
async fn http_01_dlv_02_http_02_http_03_post_gzip_and_any_2xx_is_delivered() {
    let w = web().await;
    let d = w.deliverer(true, true, Duration::from_secs(10));
    let r = report();
    for (path, want) in [
        ("/200", "HTTP 200"),
        ("/201", "HTTP 201"),
        ("/204", "HTTP 204"),
    ] {
        let got = d.deliver(&r, &w.url(path)).await.unwrap();
        assert_eq!(got, want);
    }
    let s = w.seen.lock().unwrap();
    // HTTP-01: the test routes take POST only (any other method is a 405, not a hit).
    assert_eq!(s.hits, 3);
    // HTTP-02: the raw gzip bytes with Content-Type application/tlsrpt+gzip, no
    // Content-Encoding.
    assert_eq!(s.content_type.as_deref(), Some("application/tlsrpt+gzip"));
    assert_eq!(s.content_encoding, None);
    assert_eq!(s.body, r.gzip);
    let back = tlsrpt_core::read::read_report(&s.body, &Limits::default()).unwrap();
    assert_eq!(back.report, r.report);
}

#[tokio::test]
async fn dlv_07_http_status_classes_over_the_wire() {
    let w = web().await;
    let d = w.deliverer(true, true, Duration::from_secs(10));
    let r = report();
    for path in ["/500", "/408", "/429"] {
        let e = d.deliver(&r, &w.url(path)).await.unwrap_err();
        assert!(matches!(e, DeliveryError::Temporary(_)), "{path}: {e}");
    }
    let e = d.deliver(&r, &w.url("/404")).await.unwrap_err();
    assert!(matches!(e, DeliveryError::Permanent(_)), "{e}");
}

#[tokio::test]
async fn http_05_redirects() {
    let w = web().await;
    let d = w.deliverer(true, true, Duration::from_secs(10));
    let r = report();
    // 301 is not followed (it would turn the POST into a GET): permanent, /200 never hit.
    let e = d.deliver(&r, &w.url("/301")).await.unwrap_err();
    assert!(matches!(e, DeliveryError::Permanent(_)), "{e}");
    assert!(e.to_string().contains("301"), "{e}");
    assert_eq!(w.hits(), 0);
    // 307 keeps the method and body: followed to /201.
    assert_eq!(d.deliver(&r, &w.url("/307")).await.unwrap(), "HTTP 201");
    assert_eq!(w.seen.lock().unwrap().body, r.gzip);
    // A redirect loop stops after 3 hops: permanent.
    let e = d.deliver(&r, &w.url("/loop")).await.unwrap_err();
    assert!(matches!(e, DeliveryError::Permanent(_)), "{e}");
    assert!(e.to_string().contains("redirect"), "{e}");
}

#[tokio::test]
async fn http_05_timeout_is_temporary() {
    let w = web().await;
    let d = w.deliverer(true, true, Duration::from_secs(1));
    let t0 = std::time::Instant::now();
    let e = d.deliver(&report(), &w.url("/slow")).await.unwrap_err();
    assert!(matches!(e, DeliveryError::Temporary(_)), "{e}");
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn refused_connection_is_temporary() {
    let w = web().await;
    let d = w.deliverer(true, true, Duration::from_secs(5));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = Destination::Https(format!("https://reports.example:{port}/200"));
    let e = d.deliver(&report(), &url).await.unwrap_err();
    assert!(matches!(e, DeliveryError::Temporary(_)), "{e}");
}

#[tokio::test]
async fn bad_certificate_is_temporary() {
    let w = web().await;
    // The test CA is not trusted without extra_ca.
    let d = w.deliverer(true, false, Duration::from_secs(5));
    let e = d.deliver(&report(), &w.url("/200")).await.unwrap_err();
    assert!(matches!(e, DeliveryError::Temporary(_)), "{e}");
    assert!(e.to_string().contains("TLS"), "{e}");
    assert_eq!(w.hits(), 0);
}

#[tokio::test]
async fn ssrf_private_targets_are_refused_by_default() {
    let w = web().await;
    let d = w.deliverer(false, true, Duration::from_secs(5));
    let port = w.server.port();
    for url in [
        format!("https://127.0.0.1:{port}/200"),
        "https://10.0.0.1/200".to_string(),
        format!("https://[::1]:{port}/200"),
        "https://meta.example/200".to_string(),
        "https://private.example/200".to_string(),
        // The real server, by a name resolving to 127.0.0.1.
        w.server.url("reports.example", "/200"),
    ] {
        let e = d
            .deliver(&report(), &Destination::Https(url.clone()))
            .await
            .unwrap_err();
        assert!(matches!(e, DeliveryError::Permanent(_)), "{url}: {e}");
        assert!(e.to_string().contains("refusing"), "{url}: {e}");
    }
    assert_eq!(w.hits(), 0, "the server was never contacted");
    assert!(
        d.deliver(
            &report(),
            &Destination::Https("http://reports.example/".into())
        )
        .await
        .unwrap_err()
        .is_permanent()
    );
}

#[tokio::test]
async fn dlv_01_mailto_and_https_side_by_side() {
    // DLV-01: a report goes by HTTPS POST to an `https:` rua and by mail to a `mailto:` rua;
    // one deliverer serves both kinds; the submitter domain is the contact-info domain.
    let w = web().await;
    let sink = SmtpSink::builder().start().await.unwrap();
    let mut s = mail_settings(sink.addr(), StartTls::Off);
    s.nameservers = vec![w.dns.addr()];
    s.http.allow_private_targets = true;
    s.http.extra_ca = Some(w.ca_path.clone());
    let d = Deliverer::new(&s).unwrap();
    let r = report();
    d.deliver(&r, &w.url("/200")).await.unwrap();
    d.deliver(&r, &mailto()).await.unwrap();
    let got = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got[0].rcpt_to, vec![TO.to_string()]);
    let m = tlsrpt_core::message::extract_report(&got[0].data, &Limits::default()).unwrap();
    assert_eq!(m.report_submitter.as_deref(), Some(SUBMITTER));
    assert_eq!(w.hits(), 1);
}
