//! The report message (RFC 8460 §5.3; REQUIREMENTS MAIL-02..MAIL-16).
//!
//! Shape (what Google and mox send, and what our own receiver and parsedmarc parse):
//!
//! ```text
//! From: <from>                        To: <rua address>
//! Subject: Report Domain: <policy domain> Submitter: <submitter> Report-ID: <<report-id>>
//! Date, Message-ID, MIME-Version: 1.0
//! TLS-Report-Domain: <policy domain>  TLS-Report-Submitter: <contact-info domain>
//! Auto-Submitted: auto-generated      TLS-Required: No
//! Content-Type: multipart/report; report-type="tlsrpt"
//!   text/plain: a short human summary
//!   application/tlsrpt+gzip; name="<§5.1 filename>", base64,
//!     Content-Disposition: attachment; filename="<§5.1 filename>"
//! ```
//!
//! Decisions where the RFC is silent:
//! * **Message-ID** is derived from the report-id and the recipient, so the same report sent
//!   again to the same address (a retry after a lost reply) carries the same Message-ID and the
//!   receiver can drop the duplicate; different recipients get different IDs.
//! * **Submitter** (`TLS-Report-Submitter`, the Subject's `Submitter:` and the filename's
//!   sender) is always the domain of the report's `contact-info` (MAIL-05), in A-labels; a
//!   report without a usable contact-info is not mailed ([`MailError::ContactInfo`]).
//! * **Date** is the time the message is built (each attempt), RFC 5322 format in UTC.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::Timestamp;
use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};
use tlsrpt_core::naming::{ReportSubject, is_msg_id};
use tlsrpt_core::report::Report;

use crate::deliver::ReportToSend;

/// The media type of the gzipped report part (RFC 8460 §5.3, §6.4; REQUIREMENTS MAIL-02).
pub const GZIP_MEDIA_TYPE: &str = "application/tlsrpt+gzip";

/// How many failure types the human summary lists per policy.
pub const SUMMARY_TOP_FAILURES: usize = 3;

/// How many policies the human summary lists before "... and N more".
pub const SUMMARY_MAX_POLICIES: usize = 20;

/// Why a message could not be built. The field at fault is named.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// `contact-info` is missing or has no domain: no `TLS-Report-Submitter` (MAIL-05).
    #[error("contact-info {0:?}: no domain for TLS-Report-Submitter (RFC 8460 §5.3)")]
    ContactInfo(Option<String>),
    /// The Subject could not be built (bad domain or report-id).
    #[error("Subject: {0}")]
    Subject(String),
    /// An address (From or To) is not a plain addr-spec.
    #[error("{field}: {value:?} is not an addr-spec (local@domain, no spaces or brackets)")]
    Address {
        /// `From` or `To`.
        field: &'static str,
        /// The value, shortened.
        value: String,
    },
    /// The §5.1 filename is empty or would break the header.
    #[error("filename {0:?}: empty or contains characters that cannot go into a header")]
    Filename(String),
    /// Writing the message failed (only on I/O to a Vec, i.e. never in practice).
    #[error("cannot write the message: {0}")]
    Write(String),
}

/// The domain part of `contact-info`, lower case, without a trailing dot: the value of
/// `TLS-Report-Submitter` (RFC 8460 §5.3, REQUIREMENTS MAIL-05).
pub fn submitter_domain(report: &Report) -> Result<String, MailError> {
    report
        .contact_info
        .as_deref()
        .filter(|c| c.contains('@')) // an addr-spec, as we write it (JSON-13)
        .and_then(tlsrpt_core::naming::contact_domain)
        .ok_or_else(|| MailError::ContactInfo(report.contact_info.clone()))
}

/// A Message-ID (without angle brackets) for `report_id` sent to `to`: stable across retries
/// to the same recipient, different between recipients. Shaped `id-left "@" id-right`.
pub fn message_id(report_id: &str, to: &str, submitter: &str) -> String {
    let hash = fnv1a64(format!("{report_id}\n{}", to.to_ascii_lowercase()).as_bytes());
    let candidate = match report_id.rsplit_once('@') {
        Some((left, right)) => format!("{left}.{hash:016x}@{right}"),
        None => String::new(),
    };
    if is_msg_id(&candidate) {
        return candidate;
    }
    // Not msg-id shaped (a report-id from elsewhere): keep its safe characters only.
    let safe: String = report_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(64)
        .collect();
    let safe = safe.trim_matches('.');
    let left = if safe.is_empty() || safe.contains("..") {
        format!("tlsrpt.{hash:016x}")
    } else {
        format!("tlsrpt.{safe}.{hash:016x}")
    };
    format!("{left}@{submitter}")
}

/// FNV-1a, 64 bit: a stable, dependency-free hash for the Message-ID (not for security).
pub(crate) fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// True for a plain addr-spec we can put into From/To and the SMTP envelope: one `@`, a
/// non-empty local part and domain, no whitespace, controls, brackets, commas or quotes.
pub fn is_plain_address(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && s.len() <= 320
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>(),;:\"[]\\".contains(c))
        && !domain.contains('@')
}

/// The human-readable part (RFC 8460 §5.3: "a human-readable part", MAIL-02): organisation,
/// period, and per policy the session counts and the most frequent failure types.
pub fn summary_text(report: &Report, policy_domain: &str) -> String {
    let mut s = String::new();
    let org = report.organization_name.as_deref().unwrap_or("(unnamed)");
    let contact = report.contact_info.as_deref().unwrap_or("(none)");
    let _ = writeln!(
        s,
        "This is an SMTP TLS report (RFC 8460) for {policy_domain}.\r"
    );
    let _ = writeln!(s, "\r");
    let _ = writeln!(s, "Organization: {org}\r");
    let _ = writeln!(s, "Contact:      {contact}\r");
    let _ = writeln!(
        s,
        "Period:       {} to {} (UTC)\r",
        tlsrpt_core::write::format_datetime(report.date_range.start),
        tlsrpt_core::write::format_datetime(report.date_range.end)
    );
    let _ = writeln!(s, "Report-ID:    {}\r", report.report_id);
    let _ = writeln!(s, "\r");
    if report.policies.is_empty() {
        let _ = writeln!(s, "No policies in this report.\r");
    }
    for p in report.policies.iter().take(SUMMARY_MAX_POLICIES) {
        let domain = p.policy.policy_domain.as_deref().unwrap_or(policy_domain);
        let _ = writeln!(
            s,
            "Policy {} for {domain}: {} successful, {} failed sessions.\r",
            p.policy.policy_type,
            p.summary.total_successful_session_count,
            p.summary.total_failure_session_count
        );
        let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
        for d in &p.failure_details {
            let e = by_type.entry(d.result_type.as_str()).or_default();
            *e = e.saturating_add(d.failed_session_count);
        }
        let mut top: Vec<(&str, u64)> = by_type.into_iter().collect();
        // Most sessions first; ties by name so the text is deterministic.
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let more = top.len().saturating_sub(SUMMARY_TOP_FAILURES);
        for (ty, n) in top.into_iter().take(SUMMARY_TOP_FAILURES) {
            let _ = writeln!(s, "  {ty}: {n} sessions\r");
        }
        if more > 0 {
            let _ = writeln!(s, "  ... and {more} more failure types\r");
        }
    }
    if report.policies.len() > SUMMARY_MAX_POLICIES {
        let _ = writeln!(
            s,
            "... and {} more policies.\r",
            report.policies.len() - SUMMARY_MAX_POLICIES
        );
    }
    let _ = writeln!(s, "\r");
    let _ = writeln!(
        s,
        "The machine-readable report is attached as application/tlsrpt+gzip.\r"
    );
    s
}

/// Builds the complete, unsigned report message for `to` (RFC 8460 §5.3). `date` becomes
/// the Date header. Sign the result with [`crate::dkim::Signer::sign`] before sending.
pub fn build_message(
    r: &ReportToSend,
    from: &str,
    to: &str,
    date: Timestamp,
) -> Result<Vec<u8>, MailError> {
    for (field, value) in [("From", from), ("To", to)] {
        if !is_plain_address(value) {
            return Err(MailError::Address {
                field,
                value: value.chars().take(64).collect(),
            });
        }
    }
    if r.filename.is_empty()
        || r.filename.len() > 900
        || r.filename
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\' || !c.is_ascii())
    {
        return Err(MailError::Filename(r.filename.chars().take(64).collect()));
    }
    let submitter = submitter_domain(&r.report)?;
    // REQUIREMENTS MAIL-07: Subject per the §5.3 ABNF (A-labels, msg-id shaped Report-ID).
    let subject = ReportSubject::new(&r.policy_domain, &submitter, &r.report.report_id)
        .map_err(|e| MailError::Subject(e.to_string()))?;
    let msg_id = message_id(&r.report.report_id, to, &submitter);

    let text = MimePart::new(
        ContentType::new("text/plain").attribute("charset", "utf-8"),
        BodyPart::Text(summary_text(&r.report, &subject.policy_domain).into()),
    );
    // REQUIREMENTS MAIL-03: base64 (mail-builder encodes binary parts so), attachment with
    // filename=, and name= on the Content-Type like Google and mox.
    let report_part = MimePart::new(
        ContentType::new(GZIP_MEDIA_TYPE).attribute("name", r.filename.as_str()),
        BodyPart::Binary(r.gzip.as_slice().into()),
    )
    .attachment(r.filename.as_str());
    // REQUIREMENTS MAIL-02: multipart/report; report-type="tlsrpt" (RFC 6522).
    let body = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "tlsrpt"),
        BodyPart::Multipart(vec![text, report_part]),
    );

    let builder = MessageBuilder::new()
        .from(from)
        .to(to)
        // Raw: folded at spaces (FWS in the §5.3 ABNF), never RFC 2047-encoded, so tools
        // that read the raw Subject see the ABNF text.
        .header("Subject", Raw::new(subject.to_string()))
        .date(mail_builder::headers::date::Date::new(date.as_second()))
        .message_id(msg_id)
        .header("MIME-Version", Raw::new("1.0"))
        // REQUIREMENTS MAIL-04, MAIL-05.
        .header("TLS-Report-Domain", Raw::new(subject.policy_domain.clone()))
        .header("TLS-Report-Submitter", Raw::new(submitter))
        // REQUIREMENTS MAIL-16: no auto-replies.
        .header("Auto-Submitted", Raw::new("auto-generated"))
        // REQUIREMENTS MAIL-14 (RFC 8689): relays must not require TLS for this message.
        .header("TLS-Required", Raw::new("No"))
        .body(body);
    builder
        .write_to_vec()
        .map_err(|e| MailError::Write(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_stable_per_recipient() {
        let id = "20250314T000000Z.recipient.example.4f2a91@sender.example";
        let a = message_id(id, "a@x.example", "sender.example");
        assert_eq!(a, message_id(id, "A@X.example", "sender.example"));
        assert_ne!(a, message_id(id, "b@x.example", "sender.example"));
        assert!(is_msg_id(&a), "{a}");
        assert!(a.ends_with("@sender.example"));
        let odd = message_id("2025-06-01T00:00:00Z_example.org", "a@x", "s.example");
        assert!(is_msg_id(&odd), "{odd}");
        assert!(odd.ends_with("@s.example"));
        assert!(is_msg_id(&message_id("::", "a@x", "s.example")));
    }

    #[test]
    fn plain_addresses() {
        assert!(is_plain_address("tlsrpt@example.org"));
        for bad in [
            "",
            "x",
            "@x",
            "x@",
            "a b@x",
            "a@x\r\nBcc: y@z",
            "<a@x>",
            "a@x,b@y",
        ] {
            assert!(!is_plain_address(bad), "{bad:?}");
        }
    }
}
