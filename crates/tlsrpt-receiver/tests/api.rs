//! The JSON API (`GET /api/v1/reports`, `/{id}`, `/{id}/raw`) over a real listener: filters,
//! the exact list element, details, original bytes, bearer-token auth and error answers.

mod serverkit;

use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use serverkit::*;
use tlsrpt_receiver::api::WebConfig;

fn report(org: &str, rid: &str, day: &str, domains: &[&str]) -> Vec<u8> {
    let policies: Vec<serde_json::Value> = domains
        .iter()
        .map(|d| {
            serde_json::json!({
                "policy": {"policy-type": "sts", "policy-string": ["version: STSv1", "mode: enforce", "mx: mx.x", "max_age: 1"],
                           "policy-domain": d, "mx-host": ["mx.x"]},
                "summary": {"total-successful-session-count": 5, "total-failure-session-count": 1},
                "failure-details": [{"result-type": "validation-failure", "sending-mta-ip": "192.0.2.1",
                                     "receiving-ip": "192.0.2.2", "failed-session-count": 1}]
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "organization-name": org,
        "date-range": {"start-datetime": format!("{day}T00:00:00Z"), "end-datetime": format!("{day}T23:59:59Z")},
        "contact-info": "mailto:tlsrpt@sender.example",
        "report-id": rid,
        "policies": policies,
    }))
    .unwrap()
}

async fn post_gz(c: &reqwest::Client, url: &str, body: &[u8]) -> i64 {
    let resp = c
        .post(url)
        .header(CONTENT_TYPE, "application/tlsrpt+gzip")
        .body(gzip(body))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    resp.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap()
}

async fn get_json(c: &reqwest::Client, url: &str) -> (StatusCode, serde_json::Value) {
    let resp = c.get(url).send().await.unwrap();
    let s = resp.status();
    assert_eq!(resp.headers()[CONTENT_TYPE], "application/json", "{url}");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff", "{url}");
    (s, resp.json().await.unwrap())
}

fn ids(v: &serde_json::Value) -> Vec<i64> {
    let mut ids: Vec<i64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_list_filters_detail_and_raw() {
    let srv = start(unlimited()).await;
    let c = client();
    let a = post_gz(
        &c,
        &srv.url(),
        &report("Alpha Mail", "a1", "2026-11-01", &["example.com"]),
    )
    .await;
    let b = post_gz(
        &c,
        &srv.url(),
        &report(
            "Beta Inc.",
            "b1",
            "2026-11-05",
            &["example.com", "example.net"],
        ),
    )
    .await;
    let d = post_gz(
        &c,
        &srv.url(),
        &report("Alpha Mail", "a2", "2026-11-10", &["example.org"]),
    )
    .await;

    // A mailed report kept as rejected (RFC 8460 §3): listed only when asked for.
    let rej = {
        let reading = tlsrpt_core::read::read_report(
            &report("Forger", "f1", "2026-11-05", &["example.com"]),
            &Default::default(),
        )
        .unwrap();
        let r = tlsrpt_store::ReceivedReport {
            report: reading.report,
            deviations: reading.deviations,
            raw: b"From: forger@evil.example\r\n\r\nbody".to_vec(),
            via: tlsrpt_store::ReceivedVia::Mail,
            dkim: tlsrpt_store::DkimStatus::None,
            dkim_domain: None,
            dkim_selector: None,
            submitter: Some("evil.example".into()),
            status: tlsrpt_store::ReceivedStatus::Rejected,
            reject_reason: Some("no DKIM signature".into()),
            received_at: jiff::Timestamp::now(),
        };
        match srv.store.insert_received(&r).await.unwrap() {
            tlsrpt_store::InsertOutcome::Stored(id) => id,
            o => panic!("{o:?}"),
        }
    };

    let list = |q: &str| srv.api(&format!("/api/v1/reports{q}"));
    let (s, all) = get_json(&c, &list("")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&all), vec![a, b, d]);
    // The exact element of the contract.
    let e = all
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == b)
        .unwrap();
    let mut keys: Vec<&str> = e.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "deviations",
            "dkim",
            "end",
            "failed_sessions",
            "id",
            "organization_name",
            "policy_domains",
            "received_via",
            "report_id",
            "start",
            "successful_sessions"
        ]
    );
    assert_eq!(e["organization_name"], "Beta Inc.");
    assert_eq!(e["report_id"], "b1");
    assert_eq!(
        e["policy_domains"],
        serde_json::json!(["example.com", "example.net"])
    );
    assert_eq!(e["successful_sessions"], 10);
    assert_eq!(e["failed_sessions"], 2);
    assert_eq!(e["dkim"], "skipped");
    assert_eq!(e["received_via"], "https");
    assert!(
        e["start"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-05T00:00:00")
    );

    assert_eq!(
        ids(&get_json(&c, &list("?policy_domain=example.com")).await.1),
        vec![a, b]
    );
    assert_eq!(
        ids(&get_json(&c, &list("?policy_domain=EXAMPLE.NET")).await.1),
        vec![b]
    );
    assert_eq!(
        ids(&get_json(&c, &list("?organization=alpha%20mail")).await.1),
        vec![a, d]
    );
    assert_eq!(
        ids(&get_json(&c, &list("?from=2026-11-04&to=2026-11-06"))
            .await
            .1),
        vec![b]
    );
    assert_eq!(
        ids(&get_json(&c, &list("?from=2026-11-06")).await.1),
        vec![d]
    );
    assert_eq!(ids(&get_json(&c, &list("?to=2026-11-01")).await.1), vec![a]);
    assert_eq!(
        ids(&get_json(&c, &list("?status=rejected")).await.1),
        vec![rej]
    );
    let mut every = vec![a, b, rej, d];
    every.sort();
    assert_eq!(ids(&get_json(&c, &list("?status=all")).await.1), every);
    let (_, page) = get_json(&c, &list("?limit=2")).await;
    assert_eq!(page.as_array().unwrap().len(), 2);
    let (_, rest) = get_json(&c, &list("?limit=2&offset=2")).await;
    assert_eq!(rest.as_array().unwrap().len(), 1);

    // Detail: the report, its deviations, failure details, metadata.
    let (s, det) = get_json(&c, &srv.api(&format!("/api/v1/reports/{b}"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(det["summary"]["id"], b);
    assert_eq!(det["status"], "stored");
    assert_eq!(det["report"]["report-id"], "b1");
    assert_eq!(det["report"]["policies"].as_array().unwrap().len(), 2);
    assert_eq!(det["failure_details"].as_array().unwrap().len(), 2);
    assert_eq!(
        det["failure_details"][0]["result_type"],
        "validation-failure"
    );
    assert!(det["deviations"].is_array());
    let (_, det) = get_json(&c, &srv.api(&format!("/api/v1/reports/{rej}"))).await;
    assert_eq!(det["status"], "rejected");
    assert_eq!(det["reject_reason"], "no DKIM signature");

    // Raw: the original bytes with their media type.
    let raw = c
        .get(srv.api(&format!("/api/v1/reports/{a}/raw")))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::OK);
    assert_eq!(raw.headers()[CONTENT_TYPE], "application/tlsrpt+gzip");
    let bytes = raw.bytes().await.unwrap();
    assert_eq!(
        gunzip(&bytes),
        report("Alpha Mail", "a1", "2026-11-01", &["example.com"])
    );
    let raw = c
        .get(srv.api(&format!("/api/v1/reports/{rej}/raw")))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers()[CONTENT_TYPE], "message/rfc822");
    assert_eq!(
        raw.bytes().await.unwrap().as_ref(),
        b"From: forger@evil.example\r\n\r\nbody"
    );

    // Errors: JSON, never an HTML page.
    for (url, status) in [
        (srv.api("/api/v1/reports/999999"), StatusCode::NOT_FOUND),
        (srv.api("/api/v1/reports/999999/raw"), StatusCode::NOT_FOUND),
        (srv.api("/api/v1/reports/abc"), StatusCode::BAD_REQUEST),
        (
            srv.api("/api/v1/reports?from=yesterday"),
            StatusCode::BAD_REQUEST,
        ),
        (
            srv.api("/api/v1/reports?status=deleted"),
            StatusCode::BAD_REQUEST,
        ),
        (
            srv.api("/api/v1/reports?policy-domain=x"),
            StatusCode::BAD_REQUEST,
        ),
        (srv.api("/api/v1/reports?limit=-1"), StatusCode::BAD_REQUEST),
        (srv.api("/api/v1/nothing"), StatusCode::NOT_FOUND),
    ] {
        let (s, v) = get_json(&c, &url).await;
        assert_eq!(s, status, "{url}: {v}");
        assert!(v["error"].is_string(), "{url}: {v}");
    }
    srv.stop().await;
}

/// Bearer-token auth: required when a token is configured, constant answer for a missing
/// or wrong one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_token_required_when_configured() {
    let (store, _dir, _) = temp_store().await;
    let token = "s3cret-token-0123456789";
    let srv = start_on(
        Arc::clone(&store),
        unlimited(),
        WebConfig {
            token: Some(token.into()),
        },
        None,
    )
    .await;
    let c = client();
    let url = srv.api("/api/v1/reports");
    for auth in [
        None,
        Some("Bearer wrong-token-0123456789".to_owned()),
        Some(format!("Basic {token}")),
        Some(format!("Bearer {token}x")),
    ] {
        let mut r = c.get(&url);
        if let Some(a) = &auth {
            r = r.header(AUTHORIZATION, a);
        }
        let resp = r.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(
            resp.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }
    // Unknown routes do not tell an unauthenticated client what exists.
    let resp = c.get(srv.api("/api/v1/nothing")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = c
        .get(&url)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = c
        .get(&url)
        .header(AUTHORIZATION, format!("bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    srv.stop().await;
}

#[test]
fn api_refuses_non_loopback_without_token() {
    use tlsrpt_receiver::api::check_listen;
    let err = check_listen("0.0.0.0:8461".parse().unwrap(), &WebConfig::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("token_file"), "{err}");
    assert!(check_listen("192.0.2.1:8461".parse().unwrap(), &WebConfig::default()).is_err());
    assert!(check_listen("127.0.0.1:8461".parse().unwrap(), &WebConfig::default()).is_ok());
    assert!(check_listen("[::1]:8461".parse().unwrap(), &WebConfig::default()).is_ok());
}
