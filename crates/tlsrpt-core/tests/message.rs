//! Finding the report in an RFC 5322 message (REQUIREMENTS RCV-04, RCV-05, DLV-06, MAIL-02..08).

use std::io::Write as _;
use std::path::PathBuf;

use base64::Engine as _;
use tlsrpt_core::message::{
    MAX_DELIMITER_LINES, MAX_MIME_PARTS, MessageError, extract_report, looks_like_message,
};
use tlsrpt_core::read::{Limits, read_report};

fn testdata(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/reports")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A strict RFC 8460 report for one day.
fn report_json(policy_domain: &str, contact: &str, id: &str) -> String {
    format!(
        r#"{{"organization-name":"Sender Org","date-range":{{"start-datetime":"2025-03-14T00:00:00Z","end-datetime":"2025-03-14T23:59:59Z"}},"contact-info":"{contact}","report-id":"{id}","policies":[{{"policy":{{"policy-type":"sts","policy-string":["version: STSv1","mode: enforce","mx: mx.{policy_domain}","max_age: 86400"],"policy-domain":"{policy_domain}","mx-host":["mx.{policy_domain}"]}},"summary":{{"total-successful-session-count":5,"total-failure-session-count":0}}}}]}}"#
    )
}

const DAY_BEGIN: i64 = 1_741_910_400; // 2025-03-14T00:00:00Z

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn b64_lines(data: &[u8]) -> String {
    let s = base64::engine::general_purpose::STANDARD.encode(data);
    s.as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n")
}

struct Msg {
    headers: Vec<String>,
    top_type: String,
    parts: Vec<String>,
}

impl Msg {
    /// A message the way RFC 8460 §5.3 wants it, with a gzip report part.
    fn standard(json: &str) -> Msg {
        let mut m = Msg {
            headers: vec![
                "From: tlsrpt@sender.example".into(),
                "To: tlsrpt@recipient.example".into(),
                "Date: Fri, 14 Mar 2025 01:00:00 +0000".into(),
                "Message-ID: <1@sender.example>".into(),
                "Subject: Report Domain: recipient.example Submitter: sender.example Report-ID: <r1@sender.example>".into(),
                "TLS-Report-Domain: recipient.example".into(),
                "TLS-Report-Submitter: sender.example".into(),
                "MIME-Version: 1.0".into(),
            ],
            top_type: "multipart/report; report-type=\"tlsrpt\"; boundary=\"BOUND\"".into(),
            parts: vec![],
        };
        m.parts.push(
            "Content-Type: text/plain; charset=us-ascii\r\n\r\nThis is a TLS report.\r\n".into(),
        );
        m.parts.push(gzip_part(
            "application/tlsrpt+gzip",
            Some(&format!(
                "sender.example!recipient.example!{DAY_BEGIN}!{}!r1.json.gz",
                DAY_BEGIN + 86_399
            )),
            json,
        ));
        m
    }

    fn build(&self) -> Vec<u8> {
        let mut out = String::new();
        for h in &self.headers {
            out.push_str(h);
            out.push_str("\r\n");
        }
        out.push_str(&format!("Content-Type: {}\r\n\r\n", self.top_type));
        out.push_str("This is a multipart message in MIME format.\r\n");
        for p in &self.parts {
            out.push_str("\r\n--BOUND\r\n");
            out.push_str(p);
        }
        out.push_str("\r\n--BOUND--\r\n");
        out.into_bytes()
    }

    fn without_header(mut self, prefix: &str) -> Msg {
        self.headers.retain(|h| !h.starts_with(prefix));
        self
    }

    fn with_header(mut self, prefix: &str, line: &str) -> Msg {
        self.headers.retain(|h| !h.starts_with(prefix));
        self.headers.push(line.into());
        self
    }
}

fn gzip_part(media_type: &str, filename: Option<&str>, json: &str) -> String {
    let disp = filename
        .map(|f| format!("Content-Disposition: attachment; filename=\"{f}\"\r\n"))
        .unwrap_or_default();
    format!(
        "Content-Type: {media_type}\r\nContent-Transfer-Encoding: base64\r\n{disp}\r\n{}\r\n",
        b64_lines(&gz(json.as_bytes()))
    )
}

fn rules(r: &tlsrpt_core::message::MessageReport) -> Vec<&'static str> {
    r.reading.deviations.iter().map(|d| d.rule).collect()
}

fn has(r: &tlsrpt_core::message::MessageReport, rule: &str, needle: &str) -> bool {
    r.reading
        .deviations
        .iter()
        .any(|d| d.rule == rule && d.message.contains(needle))
}

fn json_default() -> String {
    report_json(
        "recipient.example",
        "tlsrpt@sender.example",
        "r1@sender.example",
    )
}

// ---------- the standard shape ----------

#[test]
fn mail_02_standard_message_reads_with_no_deviations() {
    let json = json_default();
    let r = extract_report(&Msg::standard(&json).build(), &Limits::default()).unwrap();
    assert_eq!(r.media_type, "application/tlsrpt+gzip");
    assert!(
        r.reading.deviations.is_empty(),
        "{:#?}",
        r.reading.deviations
    );
    let direct = read_report(json.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(r.reading.report, direct.report);
    assert_eq!(r.report_domain.as_deref(), Some("recipient.example"));
    assert_eq!(r.report_submitter.as_deref(), Some("sender.example"));
    assert!(
        r.subject
            .as_deref()
            .unwrap()
            .contains("Report-ID: <r1@sender.example>")
    );
    assert!(r.filename.as_deref().unwrap().ends_with("!r1.json.gz"));
}

#[test]
fn rcv_04_rpt01_eml_read_with_header_and_filename_deviations() {
    let r = extract_report(&testdata("mail-auth/rpt01.eml"), &Limits::default()).unwrap();
    let direct = read_report(&testdata("mail-auth/rpt01.json"), &Limits::default()).unwrap();
    assert_eq!(r.reading.report, direct.report);
    assert_eq!(r.media_type, "application/tlsrpt+gzip");
    assert_eq!(r.report_domain.as_deref(), Some("example.net"));
    assert_eq!(
        r.report_submitter.as_deref(),
        Some("mail.sender.example.com")
    );
    assert_eq!(
        r.filename.as_deref(),
        Some("mail.sender.example!example.com!1013662812!1013749130.json.gz")
    );
    // The headers say example.net, the body company-y.example: noted, body kept.
    assert!(
        has(&r, "RCV-05", "example.net"),
        "{:#?}",
        r.reading.deviations
    );
    assert!(
        has(&r, "MAIL-05", "company-x.example"),
        "{:#?}",
        r.reading.deviations
    );
    assert!(
        has(&r, "DLV-06", "filename timestamps"),
        "{:#?}",
        r.reading.deviations
    );
    assert!(
        has(&r, "DLV-06", "example.com"),
        "{:#?}",
        r.reading.deviations
    );
    assert_eq!(
        r.reading.report.policies[0].policy.policy_domain.as_deref(),
        Some("company-y.example")
    );
}

#[test]
fn rcv_04_rpt02_eml_application_tlsrpt_8bit_accepted_with_deviation() {
    let r = extract_report(&testdata("mail-auth/rpt02.eml"), &Limits::default()).unwrap();
    let direct = read_report(&testdata("mail-auth/rpt02.json"), &Limits::default()).unwrap();
    assert_eq!(r.reading.report, direct.report);
    assert_eq!(r.media_type, "application/tlsrpt");
    assert!(
        has(&r, "MAIL-02", "application/tlsrpt"),
        "{:#?}",
        r.reading.deviations
    );
}

// ---------- tolerated shapes (RCV-04) ----------

#[test]
fn rcv_04_microsoft_unquoted_report_type_is_not_a_deviation() {
    let json = report_json(
        "contoso.com",
        "tlsrpt-noreply@microsoft.com",
        "133925885310113267+contoso.com",
    );
    let mut m = Msg::standard(&json)
        .with_header("TLS-Report-Domain", "TLS-Report-Domain: contoso.com")
        .with_header("TLS-Report-Submitter", "TLS-Report-Submitter: microsoft.com")
        .with_header(
            "Subject",
            "Subject: Report Domain: contoso.com Submitter: microsoft.com Report-ID: 133925885310113267+contoso.com",
        );
    m.top_type = "multipart/report; report-type=tlsrpt; boundary=BOUND".into();
    m.parts[1] = gzip_part(
        "application/tlsrpt+gzip",
        Some(&format!(
            "microsoft.com!contoso.com!{DAY_BEGIN}!{}!133715927483468703.json.gz",
            DAY_BEGIN + 86_399
        )),
        &json,
    );
    let r = extract_report(&m.build(), &Limits::default()).unwrap();
    assert!(
        !rules(&r).contains(&"MAIL-02"),
        "{:#?}",
        r.reading.deviations
    );
    // Only the Subject's missing angle brackets and non-msg-id shape are noted.
    assert!(
        rules(&r).iter().all(|&x| x == "MAIL-07"),
        "{:#?}",
        r.reading.deviations
    );
    assert!(has(&r, "MAIL-07", "angle brackets"));
}

#[test]
fn rcv_04_octet_stream_json_gz_identified_by_filename() {
    let json = json_default();
    let mut m = Msg::standard(&json);
    m.parts[1] = gzip_part(
        "application/octet-stream",
        Some(&format!(
            "sender.example!recipient.example!{DAY_BEGIN}!{}.json.gz",
            DAY_BEGIN + 86_399
        )),
        &json,
    );
    let r = extract_report(&m.build(), &Limits::default()).unwrap();
    assert_eq!(r.media_type, "application/octet-stream");
    assert!(has(&r, "RCV-04", "filename"), "{:#?}", r.reading.deviations);
    assert_eq!(r.reading.report.report_id, "r1@sender.example");
}

#[test]
fn rcv_04_application_gzip_without_name_identified_by_magic() {
    let json = json_default();
    let mut m = Msg::standard(&json);
    m.parts[1] = gzip_part("application/gzip", None, &json);
    let r = extract_report(&m.build(), &Limits::default()).unwrap();
    assert!(
        has(&r, "RCV-04", "gzip magic"),
        "{:#?}",
        r.reading.deviations
    );
    assert!(has(&r, "MAIL-03", "no filename"));
}

#[test]
fn rcv_04_octet_stream_without_name_or_magic_is_not_a_report() {
    let mut m = Msg::standard(&json_default());
    m.parts[1] = "Content-Type: application/octet-stream\r\n\r\nhello\r\n".into();
    match extract_report(&m.build(), &Limits::default()) {
        Err(MessageError::NoReport { seen }) => {
            assert!(seen.contains("application/octet-stream"), "{seen}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rcv_04_json_part_still_base64_after_transfer_decoding() {
    let json = json_default();
    let once = b64_lines(json.as_bytes());
    let twice = b64_lines(once.as_bytes());
    let mut m = Msg::standard(&json);
    m.parts[1] = format!(
        "Content-Type: application/tlsrpt+json\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"sender.example!recipient.example!{DAY_BEGIN}!{}.json\"\r\n\r\n{twice}\r\n",
        DAY_BEGIN + 86_399
    );
    let r = extract_report(&m.build(), &Limits::default()).unwrap();
    assert!(
        has(&r, "RCV-04", "still base64"),
        "{:#?}",
        r.reading.deviations
    );
    assert_eq!(r.reading.report.report_id, "r1@sender.example");
}

#[test]
fn mail_02_plain_json_part_7bit_accepted_without_deviation() {
    let json = json_default();
    let mut m = Msg::standard(&json);
    m.parts[1] = format!(
        "Content-Type: application/tlsrpt+json\r\nContent-Disposition: attachment; filename=\"sender.example!recipient.example!{DAY_BEGIN}!{}.json\"\r\n\r\n{json}\r\n",
        DAY_BEGIN + 86_399
    );
    let r = extract_report(&m.build(), &Limits::default()).unwrap();
    assert!(
        r.reading.deviations.is_empty(),
        "{:#?}",
        r.reading.deviations
    );
    assert_eq!(r.media_type, "application/tlsrpt+json");
}

#[test]
fn mail_02_json_label_on_gzip_content_is_a_deviation() {
    let json = json_default();
    let mut m = Msg::standard(&json);
    m.parts[1] = gzip_part(
        "application/tlsrpt+json",
        Some(&format!(
            "sender.example!recipient.example!{DAY_BEGIN}!{}.json.gz",
            DAY_BEGIN + 86_399
        )),
        &json,
    );
    let r = extract_report(&m.build(), &Limits::default()).unwrap();
    assert!(
        has(&r, "MAIL-02", "holds gzip"),
        "{:#?}",
        r.reading.deviations
    );
}

#[test]
fn rcv_04_whole_body_report_without_multipart() {
    let json = json_default();
    let msg = format!(
        "From: a@sender.example\r\nSubject: Report Domain: recipient.example Submitter: sender.example Report-ID: <r1@sender.example>\r\nTLS-Report-Domain: recipient.example\r\nTLS-Report-Submitter: sender.example\r\nContent-Type: application/tlsrpt+json\r\n\r\n{json}\r\n"
    );
    let r = extract_report(msg.as_bytes(), &Limits::default()).unwrap();
    assert!(
        has(&r, "MAIL-02", "whole body"),
        "{:#?}",
        r.reading.deviations
    );
    assert_eq!(r.reading.report.report_id, "r1@sender.example");

    // Also with no Content-Type at all (text/plain by default) and a gzip body in base64.
    let msg = format!(
        "From: a@sender.example\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        b64_lines(&gz(json.as_bytes()))
    );
    let r = extract_report(msg.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(r.media_type, "text/plain");
    assert_eq!(r.reading.report.report_id, "r1@sender.example");
    assert!(has(&r, "MAIL-04", "TLS-Report-Domain"));
}

#[test]
fn mail_02_missing_report_type_is_a_deviation() {
    let mut m = Msg::standard(&json_default());
    m.top_type = "multipart/report; boundary=BOUND".into();
    let r = extract_report(&m.build(), &Limits::default()).unwrap();
    assert!(
        has(&r, "MAIL-02", "no report-type"),
        "{:#?}",
        r.reading.deviations
    );
    let mut m = Msg::standard(&json_default());
    m.top_type = "multipart/mixed; boundary=BOUND".into();
    let r = extract_report(&m.build(), &Limits::default()).unwrap();
    assert!(
        has(&r, "MAIL-02", "multipart/mixed"),
        "{:#?}",
        r.reading.deviations
    );
}

// ---------- header / Subject / filename against the body ----------

#[test]
fn dlv_06_header_subject_filename_disagreeing_with_body_are_noted_body_kept() {
    let json = json_default();
    let mut m = Msg::standard(&json)
        .with_header("TLS-Report-Domain", "TLS-Report-Domain: other.example")
        .with_header("TLS-Report-Submitter", "TLS-Report-Submitter: liar.example")
        .with_header(
            "Subject",
            "Subject: Report Domain: third.example Submitter: fourth.example Report-ID: <other@x.example>",
        );
    m.parts[1] = gzip_part(
        "application/tlsrpt+gzip",
        Some("fifth.example!sixth.example!1000!2000.json.gz"),
        &json,
    );
    let r = extract_report(&m.build(), &Limits::default()).unwrap();
    let report = &r.reading.report;
    assert_eq!(
        report.policies[0].policy.policy_domain.as_deref(),
        Some("recipient.example")
    );
    assert_eq!(report.report_id, "r1@sender.example");
    assert!(
        has(&r, "RCV-05", "other.example"),
        "{:#?}",
        r.reading.deviations
    );
    assert!(has(&r, "MAIL-05", "liar.example"));
    assert!(has(&r, "DLV-06", "Subject Report Domain \"third.example\""));
    assert!(has(&r, "DLV-06", "Subject Submitter \"fourth.example\""));
    assert!(has(&r, "DLV-06", "Subject Report-ID"));
    assert!(has(
        &r,
        "DLV-06",
        "filename policy-domain \"sixth.example\""
    ));
    assert!(has(&r, "DLV-06", "filename sender \"fifth.example\""));
    assert!(has(&r, "DLV-06", "filename timestamps 1000..2000"));
    // Header values are reported as sent.
    assert_eq!(r.report_domain.as_deref(), Some("other.example"));
}

#[test]
fn mail_07_sys4_subject_report_id_with_submitter_appended_matches() {
    let json = report_json(
        "recipient.example",
        "tlsrpt@sender.example",
        "2025-03-14T00:00:00Z_idx1_recipient.example",
    );
    let m = Msg::standard(&json).with_header(
        "Subject",
        "Subject: Report Domain: recipient.example Submitter: sender.example\r\n Report-ID: <2025-03-14T00:00:00Z_idx1_recipient.example@sender.example>",
    );
    let r = extract_report(&m.build(), &Limits::default()).unwrap();
    assert!(
        !rules(&r).contains(&"DLV-06"),
        "{:#?}",
        r.reading.deviations
    );
}

#[test]
fn mail_04_missing_tls_report_headers_are_deviations() {
    let m = Msg::standard(&json_default())
        .without_header("TLS-Report-Domain")
        .without_header("TLS-Report-Submitter");
    let r = extract_report(&m.build(), &Limits::default()).unwrap();
    assert_eq!(r.report_domain, None);
    assert_eq!(r.report_submitter, None);
    let mail04: Vec<_> = r
        .reading
        .deviations
        .iter()
        .filter(|d| d.rule == "MAIL-04")
        .collect();
    assert_eq!(mail04.len(), 2, "{:#?}", r.reading.deviations);
}

#[test]
fn mail_04_folded_header_is_unfolded() {
    let m = Msg::standard(&json_default()).with_header(
        "TLS-Report-Domain",
        "TLS-Report-Domain:\r\n   recipient.example  ",
    );
    let r = extract_report(&m.build(), &Limits::default()).unwrap();
    assert_eq!(r.report_domain.as_deref(), Some("recipient.example"));
    assert!(
        r.reading.deviations.is_empty(),
        "{:#?}",
        r.reading.deviations
    );
}

#[test]
fn mail_07_unparseable_subject_is_a_deviation_not_an_error() {
    let m = Msg::standard(&json_default()).with_header("Subject", "Subject: TLS report for you");
    let r = extract_report(&m.build(), &Limits::default()).unwrap();
    assert!(
        has(&r, "MAIL-07", "not in the RFC 8460 §5.3 form"),
        "{:#?}",
        r.reading.deviations
    );
}

#[test]
fn rcv_05_hostile_filename_is_a_hint_never_a_path() {
    let json = json_default();
    let mut m = Msg::standard(&json);
    m.parts[1] = gzip_part(
        "application/tlsrpt+gzip",
        Some("../../../etc/passwd"),
        &json,
    );
    let r = extract_report(&m.build(), &Limits::default()).unwrap();
    // Reported as sent (for display), flagged, and the report still read.
    assert_eq!(r.filename.as_deref(), Some("../../../etc/passwd"));
    assert!(
        rules(&r).contains(&"RCV-05") || rules(&r).contains(&"MAIL-08"),
        "{:#?}",
        r.reading.deviations
    );
    assert_eq!(r.reading.report.report_id, "r1@sender.example");
}

// ---------- refusals ----------

#[test]
fn rcv_07_five_hundred_attachments_refused_with_reason() {
    let json = json_default();
    let mut m = Msg::standard(&json);
    for i in 0..500 {
        m.parts.push(format!("Content-Type: text/plain\r\nContent-Disposition: attachment; filename=\"f{i}.txt\"\r\n\r\nx\r\n"));
    }
    // Refused before MIME parsing: 502 delimiter lines.
    match extract_report(&m.build(), &Limits::default()) {
        Err(e @ MessageError::TooManyDelimiters { .. }) => {
            assert!(e.to_string().contains("over the limit of 256"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    // 100 attachments pass the delimiter count and are refused by the part count.
    m.parts.truncate(100);
    match extract_report(&m.build(), &Limits::default()) {
        Err(e @ MessageError::TooManyParts { found, limit }) => {
            assert_eq!(found, 101);
            assert_eq!(limit, MAX_MIME_PARTS);
            assert!(e.to_string().contains("101 MIME parts"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rcv_07_boundary_flood_refused_before_parsing() {
    // 10 MB of 7-byte parts: over a million parts if handed to the MIME parser.
    let mut m = String::from(
        "From: a@b.example\r\nContent-Type: multipart/report; report-type=tlsrpt; boundary=B\r\n\r\n",
    );
    while m.len() < 10_000_000 {
        m.push_str("--B\r\n\r\n");
    }
    let start = std::time::Instant::now();
    match extract_report(m.as_bytes(), &Limits::default()) {
        Err(MessageError::TooManyDelimiters { found, limit }) => {
            assert_eq!(limit, MAX_DELIMITER_LINES);
            assert!(found > limit);
        }
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    // Just under the limit is parsed (and then refused for its part count, with a reason).
    let mut m =
        String::from("From: a@b.example\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n");
    for _ in 0..MAX_DELIMITER_LINES {
        m.push_str("--B\r\n\r\n");
    }
    assert!(matches!(
        extract_report(m.as_bytes(), &Limits::default()),
        Err(MessageError::TooManyParts { .. })
    ));
}

#[test]
fn rcv_07_oversized_message_refused_before_parsing() {
    let bytes = Msg::standard(&json_default()).build();
    let limits = Limits {
        max_input_bytes: bytes.len() - 1,
        ..Limits::default()
    };
    assert!(matches!(
        extract_report(&bytes, &limits),
        Err(MessageError::TooLarge { .. })
    ));
}

#[test]
fn rcv_04_two_report_parts_refused() {
    let json = json_default();
    let mut m = Msg::standard(&json);
    m.parts
        .push(gzip_part("application/tlsrpt+gzip", None, &json));
    match extract_report(&m.build(), &Limits::default()) {
        Err(MessageError::SeveralReports { count, media_types }) => {
            assert_eq!(count, 2);
            assert!(media_types.contains("application/tlsrpt+gzip"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rcv_04_registered_type_wins_over_generic_attachment() {
    let json = json_default();
    let mut m = Msg::standard(&json);
    m.parts.push(gzip_part(
        "application/octet-stream",
        Some("other.json.gz"),
        "{}",
    ));
    let r = extract_report(&m.build(), &Limits::default()).unwrap();
    assert_eq!(r.media_type, "application/tlsrpt+gzip");
    assert_eq!(r.reading.report.report_id, "r1@sender.example");
}

#[test]
fn rcv_04_not_a_message_at_all() {
    for input in [
        &testdata("mail-auth/rpt01.json")[..],
        &testdata("mailweave/google.com!example.com!1747094400!1747180799!001.json.gz")[..],
        b"",
        b"   \r\n",
        b": no name\r\n\r\nbody",
    ] {
        assert!(!looks_like_message(input));
        assert!(
            matches!(
                extract_report(input, &Limits::default()),
                Err(MessageError::NotAMessage(_))
            ),
            "{:?}",
            String::from_utf8_lossy(&input[..input.len().min(20)])
        );
    }
}

#[test]
fn rcv_04_looks_like_message_accepts_headers_and_mbox_line() {
    assert!(looks_like_message(&testdata("mail-auth/rpt01.eml")));
    assert!(looks_like_message(
        b"From MAILER-DAEMON Fri Mar 14 00:00:00 2025\nReturn-Path: <a@b>\n"
    ));
    assert!(looks_like_message(
        b"Subject : obsolete space before colon\r\n"
    ));
    assert!(!looks_like_message(b"{\"report-id\": 1}"));
}

#[test]
fn rcv_04_truncated_base64_gzip_is_an_error_not_a_panic() {
    let json = json_default();
    let good = gzip_part("application/tlsrpt+gzip", Some("x.json.gz"), &json);
    // Cut the base64 in the middle of the gzip stream.
    let cut = &good[..good.len() * 2 / 3];
    let mut m = Msg::standard(&json);
    m.parts[1] = cut.to_owned();
    let err = extract_report(&m.build(), &Limits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            MessageError::Report { .. } | MessageError::Encoding { .. }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("application/tlsrpt+gzip"), "{err}");
}

#[test]
fn rcv_04_no_report_part_lists_what_was_seen() {
    let mut m = Msg::standard(&json_default());
    m.parts.truncate(1);
    match extract_report(&m.build(), &Limits::default()) {
        Err(MessageError::NoReport { seen }) => assert_eq!(seen, "text/plain"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rcv_04_report_read_errors_name_the_part() {
    let mut m = Msg::standard(&json_default());
    m.parts[1] = "Content-Type: application/tlsrpt+json\r\n\r\n{\"policies\": [\r\n".into();
    let err = extract_report(&m.build(), &Limits::default()).unwrap_err();
    assert!(matches!(err, MessageError::Report { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("report part (application/tlsrpt+json)"),
        "{err}"
    );
}

/// mail-parser 0.11 panics on this message (a message/rfc822 part whose multipart parent it
/// loses, found by cargo fuzz); the panic must become this message's error, not a crash.
/// The panic is a `debug_assert!` in mail-parser, so only debug builds (as CI tests) panic; a
/// release build parses on and finds no report part. Either way: an error.
#[test]
fn mime_parser_panic_is_an_error_not_a_crash() {
    let bytes = include_bytes!("corpus/message/mail-parser-panics-on-lost-multipart-parent.eml");
    let e = tlsrpt_core::message::extract_report(bytes, &tlsrpt_core::read::Limits::default())
        .unwrap_err();
    let text = e.to_string();
    if cfg!(debug_assertions) {
        assert!(text.contains("MIME structure is malformed"), "{e}");
    } else {
        assert!(
            text.contains("MIME structure is malformed") || text.contains("no TLSRPT report"),
            "{e}"
        );
    }
}
