//! The report message: structure, headers, and our own receiver parsing it back.

mod common;

use common::{CONTACT, FROM, SHAPES, SUBMITTER, Shape, sample};
use mail_parser::{MessageParser, MimeHeaders};
use tlsrpt_core::naming::{parse_filename, parse_subject};
use tlsrpt_core::read::Limits;
use tlsrpt_reporter::mail::{build_message, submitter_domain, summary_text};

const TO: &str = "tlsrpt@recipient.example";

fn now() -> jiff::Timestamp {
    "2026-11-29T01:02:03Z".parse().unwrap()
}

fn header<'a>(raw: &'a str, name: &str) -> Vec<&'a str> {
    // Unfolded header values at the top level (before the first empty line).
    let head = raw.split("\r\n\r\n").next().unwrap();
    head.split("\r\n")
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .collect()
}

#[test]
fn mail_02_mail_03_multipart_report_with_text_and_gzip_parts() {
    let r = sample(Shape::StsWithFailures, "recipient.example");
    let bytes = build_message(&r, FROM, TO, now()).unwrap();
    let msg = MessageParser::default().parse(&bytes).unwrap();
    let ct = msg.content_type().unwrap();
    assert_eq!(ct.ctype(), "multipart");
    assert_eq!(ct.subtype(), Some("report"));
    assert_eq!(ct.attribute("report-type"), Some("tlsrpt"));
    let parts: Vec<_> = msg.parts.iter().skip(1).collect();
    assert_eq!(parts.len(), 2, "text part and report part");
    let text = parts[0];
    let tct = text.content_type().unwrap();
    assert_eq!((tct.ctype(), tct.subtype()), ("text", Some("plain")));
    let body = text.text_contents().unwrap();
    assert!(body.contains("recipient.example"), "{body}");
    assert!(body.contains("5326 successful, 303 failed"), "{body}");
    assert!(body.contains("certificate-expired: 200 sessions"), "{body}");
    assert!(body.contains("Sender Example Inc."), "{body}");

    let rep = parts[1];
    let rct = rep.content_type().unwrap();
    assert_eq!(
        (rct.ctype(), rct.subtype()),
        ("application", Some("tlsrpt+gzip"))
    );
    // REQUIREMENTS MAIL-03: name= on the Content-Type, attachment with filename=, base64.
    assert_eq!(rct.attribute("name"), Some(r.filename.as_str()));
    let cd = rep.content_disposition().unwrap();
    assert_eq!(cd.ctype(), "attachment");
    assert_eq!(cd.attribute("filename"), Some(r.filename.as_str()));
    assert_eq!(
        rep.content_transfer_encoding()
            .map(|s| s.to_ascii_lowercase()),
        Some("base64".into())
    );
    assert_eq!(
        rep.contents(),
        r.gzip.as_slice(),
        "attachment decodes to our gzip"
    );
    // No line over 998 octets (RFC 5322 §2.1.1).
    let raw = String::from_utf8(bytes.clone()).unwrap();
    assert!(raw.split("\r\n").all(|l| l.len() <= 998));
}

#[test]
fn mail_04_mail_05_report_headers() {
    let r = sample(Shape::Tlsa, "Recipient.Example");
    let bytes = build_message(&r, FROM, TO, now()).unwrap();
    let raw = String::from_utf8(bytes).unwrap();
    assert_eq!(header(&raw, "TLS-Report-Domain"), vec!["recipient.example"]);
    assert_eq!(header(&raw, "TLS-Report-Submitter"), vec![SUBMITTER]);
    // MAIL-05: the submitter equals the domain of contact-info.
    assert_eq!(CONTACT.rsplit_once('@').unwrap().1, SUBMITTER);
    assert_eq!(submitter_domain(&r.report).unwrap(), SUBMITTER);
}

#[test]
fn mail_05_missing_contact_info_is_refused() {
    let mut r = sample(Shape::Tlsa, "recipient.example");
    r.report.contact_info = None;
    let e = build_message(&r, FROM, TO, now()).unwrap_err();
    assert!(e.to_string().contains("contact-info"), "{e}");
    r.report.contact_info = Some("no-at-sign".into());
    assert!(build_message(&r, FROM, TO, now()).is_err());
}

#[test]
fn mail_07_subject_follows_the_abnf() {
    let r = sample(Shape::NoPolicyFound, "recipient.example");
    let bytes = build_message(&r, FROM, TO, now()).unwrap();
    let msg = MessageParser::default().parse(&bytes).unwrap();
    let subject = msg.subject().unwrap();
    assert_eq!(
        subject,
        format!(
            "Report Domain: recipient.example Submitter: {SUBMITTER} Report-ID: <{}>",
            r.report.report_id
        )
    );
    let parsed = parse_subject(subject).unwrap();
    assert!(parsed.deviations.is_empty(), "{:?}", parsed.deviations);
}

#[test]
fn mail_08_attachment_name_parses_back() {
    let r = sample(Shape::Tlsa, "recipient.example");
    let f = parse_filename(&r.filename).unwrap();
    assert!(f.deviations.is_empty(), "{:?}", f.deviations);
    assert!(r.filename.ends_with(".json.gz"));
    assert!(r.filename.starts_with("sender.example!recipient.example!"));
}

/// `TLS-Required: No` (RFC 8689) is also what keeps our own MTA from reporting on the session
/// that delivers the report: Postfix skips its TLSRPT lookup for such messages since
/// 20250803 (DATAGRAM.md), so that session never reaches the collector (RPT-11, MAIL-15).
#[test]
fn mail_14_mail_15_rpt_11_mail_16_other_headers() {
    let r = sample(Shape::Tlsa, "recipient.example");
    let bytes = build_message(&r, FROM, TO, now()).unwrap();
    let raw = String::from_utf8(bytes.clone()).unwrap();
    assert_eq!(header(&raw, "TLS-Required"), vec!["No"]);
    assert_eq!(header(&raw, "Auto-Submitted"), vec!["auto-generated"]);
    assert_eq!(header(&raw, "MIME-Version"), vec!["1.0"]);
    assert_eq!(header(&raw, "Message-ID").len(), 1);
    assert_eq!(header(&raw, "Date").len(), 1);
    let msg = MessageParser::default().parse(&bytes).unwrap();
    // A valid RFC 5322 date that parses back to the time given.
    let d = msg.date().unwrap();
    assert_eq!(d.to_timestamp(), now().as_second(), "{}", d.to_rfc822());
    assert_eq!(msg.from().unwrap().first().unwrap().address(), Some(FROM));
    assert_eq!(msg.to().unwrap().first().unwrap().address(), Some(TO));
    let id = msg.message_id().unwrap();
    assert!(tlsrpt_core::naming::is_msg_id(id), "{id}");
    assert!(id.ends_with(&format!("@{SUBMITTER}")), "{id}");
}

#[test]
fn our_receiver_reads_every_shape_back_without_deviation() {
    for shape in SHAPES {
        let r = sample(shape, "recipient.example");
        let bytes = build_message(&r, FROM, TO, now()).unwrap();
        let got = tlsrpt_core::message::extract_report(&bytes, &Limits::default())
            .unwrap_or_else(|e| panic!("{shape:?}: {e}"));
        assert!(
            got.reading.deviations.is_empty(),
            "{shape:?}: {:#?}",
            got.reading.deviations
        );
        assert_eq!(got.reading.report, r.report, "{shape:?}");
        assert_eq!(got.report_domain.as_deref(), Some("recipient.example"));
        assert_eq!(got.report_submitter.as_deref(), Some(SUBMITTER));
        assert_eq!(got.filename.as_deref(), Some(r.filename.as_str()));
        assert_eq!(got.media_type, "application/tlsrpt+gzip");
    }
}

#[test]
fn bad_addresses_are_refused_not_injected() {
    let r = sample(Shape::Tlsa, "recipient.example");
    for bad in ["a@x\r\nBcc: evil@y", "a b@x", "<a@x>", ""] {
        assert!(build_message(&r, FROM, bad, now()).is_err(), "{bad:?}");
        assert!(build_message(&r, bad, TO, now()).is_err(), "{bad:?}");
    }
}

#[test]
fn summary_lists_top_three_failure_types_and_the_rest() {
    let r = sample(Shape::ManyDetails, "recipient.example");
    let s = summary_text(&r.report, "recipient.example");
    let lines: Vec<&str> = s.lines().filter(|l| l.starts_with("  ")).collect();
    assert_eq!(lines.len(), 4, "{s}");
    assert!(lines[3].contains("8 more failure types"), "{s}");
}

#[test]
fn mail_08_mail_10_report_to_send_names_and_gzips() {
    let base = sample(Shape::Tlsa, "recipient.example");
    let r = tlsrpt_reporter::ReportToSend::new(base.report.clone(), "Recipient.Example.").unwrap();
    assert_eq!(r.policy_domain, "recipient.example");
    let f = parse_filename(&r.filename).unwrap();
    assert!(f.deviations.is_empty(), "{:?}", f.deviations);
    assert_eq!(f.filename.sender, SUBMITTER);
    assert_eq!(f.filename.policy_domain, "recipient.example");
    assert_eq!(f.filename.end - f.filename.begin, 86_399);
    let id = f.filename.unique_id.clone().unwrap();
    assert_eq!(id.len(), 16);
    assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
    // Same report, same name; another report-id, another name.
    let again =
        tlsrpt_reporter::ReportToSend::new(base.report.clone(), "recipient.example").unwrap();
    assert_eq!(again.filename, r.filename);
    let mut other = base.report.clone();
    other.report_id = "20261128T000000Z.recipient.example.zzz@sender.example".into();
    let other = tlsrpt_reporter::ReportToSend::new(other, "recipient.example").unwrap();
    assert_ne!(other.filename, r.filename);
    let back = tlsrpt_core::read::read_report(&r.gzip, &Limits::default()).unwrap();
    assert_eq!(back.report, base.report);
    let mut anon = base.report;
    anon.contact_info = None;
    assert!(tlsrpt_reporter::ReportToSend::new(anon, "recipient.example").is_err());
}
