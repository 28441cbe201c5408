//! Sender limits end to end (REQUIREMENTS SEC-01, RCV-07): per submitter and per shared
//! new-sender allowance over the real HTTP endpoint and SQLite store, and per DKIM domain for
//! mail signed in the test with a key served by an in-process DNS server.

mod common;
mod serverkit;

use std::sync::Arc;

use common::{https, mail, received_count};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use tlsrpt_core::read::Limits;
use tlsrpt_receiver::dkim::{DkimPolicy, DkimVerifier};
use tlsrpt_receiver::http::{self, HttpConfig};
use tlsrpt_receiver::pipeline::{Accepted, Pipeline, PipelineOptions, Rejected};
use tlsrpt_receiver::senders::SenderLimits;
use tlsrpt_store::Store;

/// A report from `contact` (its contact-info) with this report-id.
fn report(contact: &str, org: &str, report_id: &str) -> Vec<u8> {
    let mut v: serde_json::Value =
        serde_json::from_slice(&serverkit::report_json(org, report_id)).unwrap();
    v["contact-info"] = contact.into();
    serde_json::to_vec(&v).unwrap()
}

fn no_dkim() -> DkimVerifier {
    common::verifier(None, DkimPolicy::Off)
}

/// A pipeline on `store` with `limits` and DKIM off, as the endpoint uses it.
fn limited(store: &Arc<Store>, limits: SenderLimits) -> Arc<Pipeline> {
    Arc::new(Pipeline::with_options(
        store.clone(),
        Limits::default(),
        no_dkim(),
        PipelineOptions {
            sender_limits: limits,
            ..PipelineOptions::default()
        },
    ))
}

/// The endpoint on 127.0.0.1 with `pipeline` and no per-address limit; returns its URL.
async fn serve(pipeline: Arc<Pipeline>) -> (String, tokio::sync::oneshot::Sender<()>) {
    let cfg = HttpConfig {
        rate_per_minute: 0,
        ..HttpConfig::default()
    };
    let url = format!("http://{{}}{}", cfg.path);
    let router = http::router(pipeline, cfg);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = url.replace("{}", &l.local_addr().unwrap().to_string());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        http::serve(l, router, None, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (url, stop)
}

async fn post(c: &reqwest::Client, url: &str, body: Vec<u8>) -> reqwest::Response {
    c.post(url)
        .header(CONTENT_TYPE, "application/tlsrpt+json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_01_per_submitter_limit_answers_429_with_retry_after_and_stores_nothing() {
    let (store, _dir, _) = serverkit::temp_store().await;
    let p = limited(
        &store,
        SenderLimits {
            per_submitter_per_minute: 3,
            new_senders_per_minute: 0,
            ..SenderLimits::default()
        },
    );
    let (url, _stop) = serve(p).await;
    let c = serverkit::client();
    // Three reports from one submitter (two host names of one organisation) are stored.
    for (i, contact) in [
        "tlsrpt@a.sender.example",
        "tlsrpt@b.sender.example",
        "x@sender.example",
    ]
    .iter()
    .enumerate()
    {
        let r = post(&c, &url, report(contact, "Sender", &format!("r{i}"))).await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    // The fourth is refused for now, with a reason naming the sender and when to retry.
    let r = post(&c, &url, report("tlsrpt@sender.example", "Sender", "r3")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()[RETRY_AFTER], "20");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["limit"], "submitter", "{v}");
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.contains("sender.example") && msg.contains("retry"),
        "{msg}"
    );
    // Another submitter is served.
    let r = post(&c, &url, report("tlsrpt@other.example", "Other", "o1")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(received_count(&store).await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_01_top_senders_keep_their_reserve_while_new_senders_flood() {
    let (store, _dir, _) = serverkit::temp_store().await;
    // History: Google sent three reports, Microsoft one (stored without limits).
    let history = Pipeline::new(store.clone(), Limits::default(), no_dkim());
    for (contact, id) in [
        ("smtp-tls-reporting@google.com", "g1"),
        ("smtp-tls-reporting@google.com", "g2"),
        ("smtp-tls-reporting@google.com", "g3"),
        ("tlsrpt@microsoft.com", "m1"),
    ] {
        let body = report(contact, "Big", id);
        let got = history
            .ingest(https(&body, "application/tlsrpt+json"))
            .await
            .unwrap();
        assert!(matches!(got, Accepted::Stored { .. }));
    }
    let p = limited(
        &store,
        SenderLimits {
            per_submitter_per_minute: 100,
            new_senders_per_minute: 2,
            top_senders: 1,
            ..SenderLimits::default()
        },
    );
    assert_eq!(p.refresh_top_senders().await.unwrap(), 1);
    assert!(p.senders().is_top_sender("google.com"));
    assert!(
        !p.senders().is_top_sender("microsoft.com"),
        "only the top 1"
    );
    let (url, _stop) = serve(p).await;
    let c = serverkit::client();
    // Invented submitters share two reports a minute between them.
    let mut codes = Vec::new();
    for i in 0..10 {
        let contact = format!("x@flood{i}.example");
        let r = post(&c, &url, report(&contact, "Flood", &format!("f{i}"))).await;
        codes.push(r.status().as_u16());
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!(v["limit"], "new-senders", "{v}");
        }
    }
    assert_eq!(codes, [201, 201, 429, 429, 429, 429, 429, 429, 429, 429]);
    // Microsoft is not a top sender here, so it waits with the flood; Google does not.
    let r = post(&c, &url, report("tlsrpt@microsoft.com", "Big", "m2")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    for i in 4..10 {
        let body = report("smtp-tls-reporting@google.com", "Big", &format!("g{i}"));
        assert_eq!(post(&c, &url, body).await.status(), StatusCode::CREATED);
    }
    assert_eq!(received_count(&store).await, 4 + 2 + 6);
}

#[tokio::test]
async fn sec_01_forged_mail_is_limited_apart_and_a_passing_dkim_domain_has_its_own_limit() {
    let keys = common::Keys::new();
    let dns = common::dns(&keys).await;
    let options = PipelineOptions {
        sender_limits: SenderLimits {
            per_submitter_per_minute: 2,
            per_dkim_domain_per_minute: 2,
            new_senders_per_minute: 0,
            top_senders: 0,
        },
        ..PipelineOptions::default()
    };
    let (p, _dir) = common::pipeline_with(Some(&dns), DkimPolicy::Prefer, options).await;
    let signed = |id: &str| {
        common::sign(
            &common::wrap(
                &report("tlsrpt@sender.example", "Sender", id),
                Some("sender.example"),
                "sender.example",
            ),
            &keys,
            common::Alg::Rsa,
            "sender.example",
            "rsa",
            false,
        )
    };
    // Forged copies (a signed header changed after signing) fail DKIM: under `prefer` they
    // are stored as unverified, counted as "unverified:sender.example", and limited there.
    let forged = |id: &str| {
        let m = signed(id);
        let text = String::from_utf8(m).unwrap();
        assert!(text.contains("Subject: Report Domain"));
        text.replacen("Subject: Report Domain", "Subject: Report domain", 1)
            .into_bytes()
    };
    for id in ["f1", "f2"] {
        let got = p.ingest(mail(&forged(id))).await.unwrap();
        assert!(matches!(got, Accepted::Stored { .. }), "{got:?}");
    }
    let got = p.ingest(mail(&forged("f3"))).await;
    let Err(Rejected::RateLimited(l)) = &got else {
        panic!("expected a rate limit, got {got:?}");
    };
    assert_eq!(
        (l.limit.as_str(), l.key.as_str()),
        ("submitter", "unverified:sender.example")
    );
    // The real signer's allowance is untouched by the forgeries.
    for id in ["s1", "s2"] {
        let m = signed(id);
        let got = p.ingest(mail(&m)).await.unwrap();
        assert!(matches!(got, Accepted::Stored { .. }), "{got:?}");
    }
    // The third passing signature by sender.example is over its limit: retry later.
    let m = signed("s3");
    let got = p.ingest(mail(&m)).await;
    let Err(e @ Rejected::RateLimited(_)) = got else {
        panic!("expected a rate limit, got {got:?}");
    };
    assert_eq!(e.sysexit(), 75);
    let Rejected::RateLimited(l) = &e else {
        unreachable!()
    };
    assert_eq!(
        (l.limit.as_str(), l.key.as_str()),
        ("dkim-domain", "sender.example")
    );
    assert!(e.to_string().contains("DKIM domain sender.example"), "{e}");
}

/// `Pipeline::new` (what `tlsrpt ingest` uses for a maildir backlog or an MTA pipe) has no
/// sender limits: more reports from one sender than the default allowances (600 per
/// submitter, 300 for new senders) are all stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_01_ingest_pipeline_has_no_sender_limits() {
    let (store, _dir, _) = serverkit::temp_store().await;
    let p = Pipeline::new(store.clone(), Limits::default(), no_dkim());
    for i in 0..650 {
        let body = report("tlsrpt@sender.example", "Sender", &format!("bulk-{i}"));
        let got = p.ingest(https(&body, "application/tlsrpt+json")).await;
        assert!(matches!(got, Ok(Accepted::Stored { .. })), "{i}: {got:?}");
    }
}
