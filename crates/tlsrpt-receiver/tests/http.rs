//! The HTTP(S) endpoint end to end: a real server on 127.0.0.1, a real client (reqwest), the
//! real SQLite store, and the JSON API to read back what was stored.

mod serverkit;

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use serverkit::*;
use tlsrpt_receiver::http::HttpConfig;

const GZIP: &str = "application/tlsrpt+gzip";
const JSON: &str = "application/tlsrpt+json";

async fn post(
    c: &reqwest::Client,
    url: &str,
    ctype: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value, reqwest::header::HeaderMap) {
    let mut r = c.post(url).body(body);
    if let Some(t) = ctype {
        r = r.header(CONTENT_TYPE, t);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.bytes().await.unwrap();
    let v = serde_json::from_slice(&text)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&text).into()));
    (status, v, headers)
}

/// Every sample report (../shared/testdata/reports) POSTed as JSON and as gzip: each is
/// stored (2xx) the first time, a duplicate with the same id the second, and listed by the
/// API. rpt03.json, broken on purpose, is a 400 naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rcv_06_every_sample_report_stored_as_json_and_gzip_and_listed() {
    let srv = start(unlimited()).await;
    let c = client();
    let mut ids = BTreeSet::new();
    let mut stored_first = 0;
    for path in report_files() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(&path).unwrap();
        let (json, gz) = if name.ends_with(".gz") {
            (gunzip(&bytes), bytes.clone())
        } else {
            (bytes.clone(), gzip(&bytes))
        };
        // First as it is on disk, then in the other form.
        let (first, second) = if name.ends_with(".gz") {
            ((GZIP, gz), (JSON, json))
        } else {
            ((JSON, json), (GZIP, gz))
        };
        let (s1, v1, _) = post(&c, &srv.url(), Some(first.0), first.1).await;
        if name == "rpt03.json" {
            assert_eq!(s1, StatusCode::BAD_REQUEST, "{name}: {v1}");
            let field = v1["field"].as_str().unwrap();
            assert!(field.starts_with("policies[0]"), "{name}: {v1}");
            assert!(!v1["error"].as_str().unwrap().is_empty());
            let (s2, v2, _) = post(&c, &srv.url(), Some(second.0), second.1).await;
            assert_eq!(s2, StatusCode::BAD_REQUEST, "{name} gzip: {v2}");
            assert_eq!(v2["field"], v1["field"]);
            continue;
        }
        assert!(
            s1 == StatusCode::CREATED || s1 == StatusCode::OK,
            "{name}: {s1} {v1}"
        );
        if s1 == StatusCode::CREATED {
            assert_eq!(v1["status"], "stored", "{name}");
            stored_first += 1;
        } else {
            // The same report under another file name (e.g. Google's .json and .json.gz).
            assert_eq!(v1["status"], "duplicate", "{name}");
        }
        let id = v1["id"].as_i64().unwrap();
        let (s2, v2, _) = post(&c, &srv.url(), Some(second.0), second.1).await;
        assert_eq!(s2, StatusCode::OK, "{name} second copy: {v2}");
        assert_eq!(v2["status"], "duplicate", "{name}");
        assert_eq!(v2["id"].as_i64(), Some(id), "{name}");
        ids.insert(id);
    }
    assert!(stored_first >= 10, "only {stored_first} stored");
    assert_eq!(ids.len(), stored_first);

    let resp = c
        .get(srv.api("/api/v1/reports?limit=1000"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let list: Vec<serde_json::Value> = resp.json().await.unwrap();
    let listed: BTreeSet<i64> = list.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(listed, ids);
    for e in &list {
        assert_eq!(e["received_via"], "https");
        assert_eq!(e["dkim"], "skipped");
        for k in [
            "organization_name",
            "report_id",
            "start",
            "end",
            "policy_domains",
            "successful_sessions",
            "failed_sessions",
            "deviations",
        ] {
            assert!(e.get(k).is_some(), "{k} missing in {e}");
        }
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_03_duplicate_answers_2xx_with_the_same_id() {
    let srv = start(unlimited()).await;
    let c = client();
    let body = report_json("Dup Org", "dup-1");
    let (s1, v1, _) = post(&c, &srv.url(), Some(JSON), body.clone()).await;
    assert_eq!(s1, StatusCode::CREATED, "{v1}");
    assert_eq!(v1["status"], "stored");
    let (s2, v2, _) = post(&c, &srv.url(), Some(GZIP), gzip(&body)).await;
    assert_eq!(s2, StatusCode::OK, "{v2}");
    assert_eq!(
        v2,
        serde_json::json!({"status": "duplicate", "id": v1["id"]})
    );
    // Two copies racing in at once are stored once.
    let other = report_json("Dup Org", "dup-2");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (c, url, b) = (c.clone(), srv.url(), other.clone());
        tasks.push(tokio::spawn(
            async move { post(&c, &url, Some(JSON), b).await },
        ));
    }
    let mut created = 0;
    let mut ids = BTreeSet::new();
    for t in tasks {
        let (s, v, _) = t.await.unwrap();
        assert!(s.is_success(), "{s} {v}");
        created += usize::from(s == StatusCode::CREATED);
        ids.insert(v["id"].as_i64().unwrap());
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1);
    srv.stop().await;
}

/// HTTP-02: the two RFC 8460 media types, the tolerated ones (stored with an HTTP-02
/// deviation), the body sniffed for gzip whatever the label says, and 415 for the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_02_media_types_and_gzip_sniffing() {
    let srv = start(unlimited()).await;
    let c = client();
    type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, bool, bool);
    let cases: Vec<Case> = vec![
        // (report-id, content-type, content-encoding, gzip body, deviation expected)
        ("m1", Some(JSON), None, false, false),
        ("m2", Some(GZIP), None, true, false),
        ("m3", Some("application/json"), None, false, true),
        ("m4", Some("application/gzip"), None, true, true),
        (
            "m5",
            Some("application/json; charset=utf-8"),
            Some("gzip"),
            true,
            true,
        ),
        // Mislabelled: gzip body sent as +json, JSON body sent as +gzip.
        ("m6", Some(JSON), None, true, true),
        ("m7", Some(GZIP), None, false, true),
        ("m8", Some("Application/TLSRPT+JSON"), None, false, false),
    ];
    for (rid, ct, ce, gz, deviation) in cases {
        let json = report_json("Media Org", rid);
        let body = if gz { gzip(&json) } else { json };
        let mut r = c.post(srv.url()).body(body);
        if let Some(ct) = ct {
            r = r.header(CONTENT_TYPE, ct);
        }
        if let Some(ce) = ce {
            r = r.header(CONTENT_ENCODING, ce);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{rid}: {v}");
        let id = v["id"].as_i64().unwrap();
        let d: serde_json::Value = c
            .get(srv.api(&format!("/api/v1/reports/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let http02 = d["deviations"]
            .as_array()
            .unwrap_or_else(|| panic!("{rid}: {d}"))
            .iter()
            .any(|x| x["rule"] == "HTTP-02");
        assert_eq!(http02, deviation, "{rid}: {d}");
    }
    let refused: Vec<(Option<&str>, Option<&str>)> = vec![
        (Some("text/plain"), None),
        (Some("multipart/form-data; boundary=x"), None),
        (Some("application/octet-stream"), None),
        (None, None),
        (Some(JSON), Some("br")),
        (Some(JSON), Some("gzip, gzip")),
    ];
    for (ct, ce) in refused {
        let mut r = c.post(srv.url()).body(report_json("Media Org", "refused"));
        if let Some(ct) = ct {
            r = r.header(CONTENT_TYPE, ct);
        }
        if let Some(ce) = ce {
            r = r.header(CONTENT_ENCODING, ce);
        }
        let resp = r.send().await.unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{ct:?} {ce:?}"
        );
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
        let v: serde_json::Value = resp.json().await.unwrap();
        assert!(
            v["error"].as_str().unwrap().contains("tlsrpt") || ce.is_some(),
            "{v}"
        );
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rcv_06_other_methods_405_other_paths_404() {
    let srv = start(unlimited()).await;
    let c = client();
    let r = c.get(srv.url()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.headers()["allow"].to_str().unwrap().contains("POST"));
    let r = c.put(srv.url()).body("{}").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = c
        .post(format!("http://{}/other", srv.rcv))
        .header(CONTENT_TYPE, JSON)
        .body(report_json("X", "y"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    srv.stop().await;
}

/// A 400 is short JSON naming the field and the problem (RCV-06).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rcv_06_bad_report_400_names_the_field() {
    let srv = start(unlimited()).await;
    let c = client();
    let mut v: serde_json::Value = serde_json::from_slice(&report_json("Bad Org", "b1")).unwrap();
    v["policies"][0]["summary"]["total-failure-session-count"] = serde_json::json!("many");
    let (s, body, h) = post(&c, &srv.url(), Some(JSON), serde_json::to_vec(&v).unwrap()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(h[CONTENT_TYPE], "application/json");
    assert_eq!(
        body["field"],
        "policies[0].summary.total-failure-session-count"
    );
    assert!(body["error"].as_str().unwrap().len() < 400, "{body}");
    srv.stop().await;
}

/// SEC-01: per-client rate limit, 429 with Retry-After; other clients (here: the API) and
/// later requests are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_01_rate_limit_429_with_retry_after() {
    let srv = start(HttpConfig {
        rate_per_minute: 3,
        ..HttpConfig::default()
    })
    .await;
    let c = client();
    for i in 0..3 {
        let (s, v, _) = post(
            &c,
            &srv.url(),
            Some(JSON),
            report_json("R", &format!("r{i}")),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, v, h) = post(&c, &srv.url(), Some(JSON), report_json("R", "r3")).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    let retry: u64 = h[RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "Retry-After {retry}");
    assert!(v["error"].as_str().unwrap().contains("too many"));
    // The 429 stored nothing.
    let list: Vec<serde_json::Value> = c
        .get(srv.api("/api/v1/reports"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 3);
    srv.stop().await;
}

/// SEC-01 behind a reverse proxy: with the proxy (here 127.0.0.1, the test's own address) in
/// `trusted_proxies`, each `X-Forwarded-For` client gets its own bucket, so one busy sender
/// does not block the others; without it the header is ignored and every request shares the
/// peer's bucket (anyone can send the header).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_01_trusted_proxy_forwarded_clients_are_limited_separately() {
    use tlsrpt_receiver::http::parse_trusted_proxy;
    async fn send(c: &reqwest::Client, url: &str, xff: &str, rid: &str) -> StatusCode {
        c.post(url)
            .header(CONTENT_TYPE, JSON)
            .header("x-forwarded-for", xff)
            .body(report_json("R", rid))
            .send()
            .await
            .unwrap()
            .status()
    }
    let c = client();
    for (trusted, ranges) in [
        (true, vec!["127.0.0.1"]),
        (true, vec!["127.0.0.0/8"]),
        (false, vec![]),
    ] {
        let srv = start(HttpConfig {
            rate_per_minute: 1,
            trusted_proxies: ranges
                .iter()
                .map(|r| parse_trusted_proxy(r).unwrap())
                .collect(),
            ..HttpConfig::default()
        })
        .await;
        let url = srv.url();
        assert_eq!(send(&c, &url, "192.0.2.1", "a1").await, StatusCode::CREATED);
        // The same forwarded client again: over its limit of 1 either way.
        assert_eq!(
            send(&c, &url, "192.0.2.1", "a2").await,
            StatusCode::TOO_MANY_REQUESTS
        );
        // Another forwarded client: its own bucket only when the proxy is trusted.
        let other = send(&c, &url, "198.51.100.2", "b1").await;
        if trusted {
            assert_eq!(other, StatusCode::CREATED, "{ranges:?}");
            // A spoofed chain: only the right-most entry (what the proxy saw) counts.
            assert_eq!(
                send(&c, &url, "203.0.113.9, 192.0.2.1", "c1").await,
                StatusCode::TOO_MANY_REQUESTS
            );
        } else {
            assert_eq!(
                other,
                StatusCode::TOO_MANY_REQUESTS,
                "shares 127.0.0.1's bucket"
            );
        }
        srv.stop().await;
    }
}

/// 503 (with Retry-After) when the store cannot take the report: here another process
/// holds an exclusive lock on the database, so the sender is told to retry; once the lock is
/// gone the same report is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rcv_06_store_unavailable_is_503_then_recovers() {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let store = tlsrpt_store::Store::open_with(
        &url,
        &tlsrpt_store::StoreOptions {
            busy_timeout: Duration::from_millis(200),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let srv = start_on(
        std::sync::Arc::new(store),
        unlimited(),
        Default::default(),
        None,
    )
    .await;
    let mut lock = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut lock)
        .await
        .unwrap();

    let c = client();
    let body = report_json("Locked Org", "l1");
    let (s, v, h) = post(&c, &srv.url(), Some(JSON), body.clone()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(h.contains_key(RETRY_AFTER));
    // Internal details (paths, SQL) stay in the log.
    assert!(!v["error"].as_str().unwrap().contains("sqlite"), "{v}");

    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    drop(lock);
    let (s, v, _) = post(&c, &srv.url(), Some(JSON), body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    srv.stop().await;
}

/// More requests than `max_concurrent_requests` wait for a slot rather than fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rcv_07_concurrency_limit_queues_requests() {
    let srv = start(HttpConfig {
        max_concurrent_requests: 1,
        rate_per_minute: 0,
        ..HttpConfig::default()
    })
    .await;
    let c = client();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (c, url) = (c.clone(), srv.url());
        tasks.push(tokio::spawn(async move {
            post(
                &c,
                &url,
                Some(GZIP),
                gzip(&report_json("Q", &format!("q{i}"))),
            )
            .await
        }));
    }
    for t in tasks {
        let (s, v, _) = t.await.unwrap();
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    srv.stop().await;
}

/// TLS with rustls when a certificate and key are configured (PEM files, as in the config).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rcv_06_https_with_rustls() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    tlsrpt_testkit::install_crypto();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["reports.example.test".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, leaf.pem()).unwrap();
    std::fs::write(&key_path, leaf_key.serialize_pem()).unwrap();

    let (store, _sdir, _) = temp_store().await;
    let srv = start_on(
        store,
        unlimited(),
        Default::default(),
        Some((cert_path, key_path)),
    )
    .await;
    let c = reqwest::Client::builder()
        .no_proxy()
        .tls_backend_rustls()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_cert.pem().as_bytes()).unwrap()])
        .resolve("reports.example.test", srv.rcv)
        .build()
        .unwrap();
    let url = format!("https://reports.example.test:{}/tlsrpt", srv.rcv.port());
    for i in 0..2 {
        let body = gzip(&report_json("TLS Org", &format!("tls-{i}")));
        let resp = c
            .post(&url)
            .header(CONTENT_TYPE, GZIP)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    // Plain HTTP to the TLS port gets no answer, and the server keeps serving TLS.
    let plain = client()
        .post(format!("http://{}/tlsrpt", srv.rcv))
        .header(CONTENT_TYPE, JSON)
        .body(report_json("TLS Org", "plain"))
        .timeout(Duration::from_secs(15))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    let resp = c
        .post(&url)
        .header(CONTENT_TYPE, JSON)
        .body(report_json("TLS Org", "tls-after"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    srv.stop().await;
}

/// Bad certificate or key files stop start-up with a message naming the file.
#[tokio::test]
async fn rcv_06_bad_tls_files_fail_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "not a certificate").unwrap();
    let err = tlsrpt_receiver::http::load_tls(&cert, &dir.path().join("missing.pem"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cert.pem"), "{err}");
}
