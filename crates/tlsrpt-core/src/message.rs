//! Finding the report in an RFC 5322 message (RFC 8460 §5.3, REQUIREMENTS RCV-04, RCV-05).
//!
//! Email is where real senders stray most: unquoted `report-type` (Microsoft), attachments
//! labelled `application/octet-stream` or `application/tlsrpt`, a JSON part that is still
//! base64 after transfer decoding, a report with no multipart around it. All of these are
//! accepted with a [`Deviation`] so the report is kept and the sender's quirk is visible
//! (REQUIREMENTS RCV-11, §14). What the headers, the Subject and the filename say is compared
//! with the JSON body and any disagreement is noted; the body always wins (DLV-06, RCV-05).
//!
//! DKIM is not checked here (it needs DNS); see REQUIREMENTS RCV-01.
//!
//! Decision (the RFC is silent): a message with more than one report part of the best kind
//! found is refused with [`MessageError::SeveralReports`] rather than read as its first part,
//! since either choice would lose data and only the refusal says so. Ties are broken by kind:
//! one `application/tlsrpt+gzip`/`+json` part wins over generic attachments.

use std::borrow::Cow;

use base64::Engine as _;
use mail_parser::{Encoding, Message, MessageParser, MessagePart, MimeHeaders, PartType};

use crate::deviation::Deviation;
use crate::naming::{self, a_label_domain, short};
use crate::read::{self, ReadError, Reading};
use crate::report::Report;

/// Most MIME parts examined in one message. A report message has three (the multipart, the
/// human-readable part, the report); forwarded or wrapped ones a few more. Beyond this the
/// message is refused rather than scanned (REQUIREMENTS RCV-07).
pub const MAX_MIME_PARTS: usize = 64;

/// Most lines starting with `--` (possible MIME boundary delimiters) accepted before parsing.
/// The MIME parser allocates for every part it finds, so a 10 MB message of 7-byte parts would
/// cost it over a million part records before [`MAX_MIME_PARTS`] could be checked; counting
/// delimiter-like lines first bounds that work. Text bodies rarely have more than a few such
/// lines (signature separators, ASCII art), so four per allowed part is generous.
pub const MAX_DELIMITER_LINES: usize = 4 * MAX_MIME_PARTS;

/// Most bytes of the start of the input looked at by [`looks_like_message`].
const SNIFF_LEN: usize = 1000;

/// Why no report could be taken from a message. Each variant says what was found.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The message is bigger than `Limits::max_input_bytes`; it was not parsed.
    #[error("message is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The input does not start with a header field, or the MIME parser found no headers.
    #[error("not an RFC 5322 message: {0}")]
    NotAMessage(&'static str),
    /// More MIME parts than [`MAX_MIME_PARTS`].
    #[error("message has {found} MIME parts, over the limit of {limit}")]
    TooManyParts {
        /// Parts in the message.
        found: usize,
        /// The limit.
        limit: usize,
    },
    /// More lines start with `--` than [`MAX_DELIMITER_LINES`]; refused before MIME parsing.
    #[error(
        "message has {found} lines starting with \"--\" (possible MIME boundaries), over the limit of {limit}; not parsed"
    )]
    TooManyDelimiters {
        /// Lines counted (counting stops just past the limit).
        found: usize,
        /// The limit.
        limit: usize,
    },
    /// No part is a TLSRPT report, by media type, filename or content.
    #[error("no TLSRPT report part found (parts seen: {seen})")]
    NoReport {
        /// Media types of the parts looked at, comma-separated.
        seen: String,
    },
    /// More than one part qualifies equally as the report.
    #[error("{count} parts qualify as the report ({media_types}); expected exactly one")]
    SeveralReports {
        /// How many.
        count: usize,
        /// Their media types, comma-separated.
        media_types: String,
    },
    /// The report part's transfer encoding or inner base64 could not be decoded.
    #[error("report part ({media_type}): {problem}")]
    Encoding {
        /// Media type of the part.
        media_type: String,
        /// What went wrong.
        problem: String,
    },
    /// The report part was found but the report in it could not be read.
    #[error("report part ({media_type}): {source}")]
    Report {
        /// Media type of the part.
        media_type: String,
        /// The reader's error.
        #[source]
        source: ReadError,
    },
}

/// A report taken from a message, with what the message said about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageReport {
    /// The report as read from the body. Its deviations are the body's followed by the
    /// message's (MIME structure, headers, Subject, filename).
    pub reading: Reading,
    /// `TLS-Report-Domain`, unfolded and trimmed; `None` if absent (REQUIREMENTS MAIL-04).
    pub report_domain: Option<String>,
    /// `TLS-Report-Submitter`, unfolded and trimmed; `None` if absent (REQUIREMENTS MAIL-04).
    pub report_submitter: Option<String>,
    /// The Subject as decoded (RFC 2047) by the MIME parser.
    pub subject: Option<String>,
    /// The report part's filename as sent. Untrusted: never a path (REQUIREMENTS RCV-05).
    pub filename: Option<String>,
    /// Media type of the part the report came from, lower case, e.g. `application/tlsrpt+gzip`.
    pub media_type: String,
}

/// True if `bytes` starts like an RFC 5322 message: an optional mbox `From ` line, then a
/// header field name (letters, digits, `-`, `_`) followed by `:`. Tells a message apart from
/// JSON (`{`) and gzip (`1f 8b`) without parsing.
pub fn looks_like_message(bytes: &[u8]) -> bool {
    let head = bytes.get(..bytes.len().min(SNIFF_LEN)).unwrap_or(bytes);
    let head = match head.strip_prefix(b"From ") {
        Some(rest) => match rest.iter().position(|&b| b == b'\n') {
            Some(i) => rest.get(i + 1..).unwrap_or(&[]),
            None => return false,
        },
        None => head,
    };
    // RFC 5322 allows any printable ASCII but `:` in a field name; real ones are letters,
    // digits and hyphens. Requiring that keeps `{"report-id": ...` from looking like a header.
    let name_len = head
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        .count();
    if name_len == 0 {
        return false;
    }
    // RFC 5322 §4.5.1 (obsolete syntax) allows WSP before the colon.
    head.get(name_len..)
        .unwrap_or(&[])
        .iter()
        .find(|&&b| b != b' ' && b != b'\t')
        == Some(&b':')
}

/// How strongly a part claims to be the report; lower is stronger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Tier {
    /// `application/tlsrpt+gzip` or `application/tlsrpt+json` (RFC 8460 §5.3).
    Registered,
    /// `application/tlsrpt` (mail-auth's rpt02.eml), or the whole body of a non-multipart
    /// message.
    Near,
    /// A generic type identified by filename, gzip magic or a JSON media type.
    Generic,
}

struct Candidate<'p, 'x> {
    index: usize,
    part: &'p MessagePart<'x>,
    tier: Tier,
    media_type: String,
}

/// Takes the TLSRPT report out of an RFC 5322 message (REQUIREMENTS RCV-04) and cross-checks
/// the message's claims against it (MAIL-04, MAIL-05, MAIL-07, MAIL-08, DLV-06).
///
/// The size is checked before parsing (`limits.max_input_bytes`), as is the number of
/// boundary-like lines ([`MAX_DELIMITER_LINES`]), and at most [`MAX_MIME_PARTS`] parts are
/// examined. The report part is read with
/// [`read::read_report`] under the same `limits`.
pub fn extract_report(bytes: &[u8], limits: &read::Limits) -> Result<MessageReport, MessageError> {
    if bytes.len() > limits.max_input_bytes {
        return Err(MessageError::TooLarge {
            size: bytes.len(),
            limit: limits.max_input_bytes,
        });
    }
    if !looks_like_message(bytes) {
        return Err(MessageError::NotAMessage(
            "input does not start with a header field",
        ));
    }
    let delimiters = count_delimiter_lines(bytes, MAX_DELIMITER_LINES + 1);
    if delimiters > MAX_DELIMITER_LINES {
        return Err(MessageError::TooManyDelimiters {
            found: delimiters,
            limit: MAX_DELIMITER_LINES,
        });
    }
    let message = MessageParser::default()
        .parse(bytes)
        .ok_or(MessageError::NotAMessage("no header fields found"))?;
    if message.parts.len() > MAX_MIME_PARTS {
        return Err(MessageError::TooManyParts {
            found: message.parts.len(),
            limit: MAX_MIME_PARTS,
        });
    }
    let mut devs = Vec::new();
    let candidate = find_report_part(&message, &mut devs)?;
    let media_type = candidate.media_type.clone();
    let payload = decode_payload(bytes, &candidate, limits, &mut devs)?;
    let mut reading =
        read::read_report(&payload, limits).map_err(|source| MessageError::Report {
            media_type: media_type.clone(),
            source,
        })?;

    let report_domain = header_text(&message, "TLS-Report-Domain");
    let report_submitter = header_text(&message, "TLS-Report-Submitter");
    let subject = message.subject().map(str::to_owned);
    let filename = candidate.part.attachment_name().map(str::to_owned);
    check_headers(
        &reading.report,
        report_domain.as_deref(),
        report_submitter.as_deref(),
        &mut devs,
    );
    check_subject(
        &reading.report,
        subject.as_deref(),
        report_submitter.as_deref(),
        &mut devs,
    );
    check_filename(&reading.report, filename.as_deref(), &mut devs);

    reading.deviations.extend(devs);
    Ok(MessageReport {
        reading,
        report_domain,
        report_submitter,
        subject,
        filename,
        media_type,
    })
}

/// Lines starting with `--`, counting up to `stop`.
fn count_delimiter_lines(bytes: &[u8], stop: usize) -> usize {
    let mut n = usize::from(bytes.starts_with(b"--"));
    // memchr finds the line ends with SIMD; a byte-window compare cost ~9 % of extracting a
    // typical report message.
    for i in memchr::memchr_iter(b'\n', bytes) {
        if n >= stop {
            break;
        }
        if bytes.get(i + 1..i + 3) == Some(b"--") {
            n += 1;
        }
    }
    n
}

/// Lower-case `type/subtype` of a part; `text/plain` when absent (RFC 2045 §5.2).
fn media_type_of(part: &MessagePart<'_>) -> String {
    match part.content_type() {
        Some(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        },
        None => "text/plain".to_owned(),
    }
}

fn has_report_extension(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".json") || lower.ends_with(".json.gz") || lower.ends_with(".gz")
}

fn find_report_part<'p, 'x>(
    message: &'p Message<'x>,
    devs: &mut Vec<Deviation>,
) -> Result<Candidate<'p, 'x>, MessageError> {
    let root = message.root_part();
    let root_type = media_type_of(root);
    let is_multipart = matches!(root.body, PartType::Multipart(_));

    if !is_multipart {
        // REQUIREMENTS RCV-04 (REC leniency): the whole body is the report.
        let tier =
            if root_type == "application/tlsrpt+gzip" || root_type == "application/tlsrpt+json" {
                Tier::Registered
            } else {
                Tier::Near
            };
        devs.push(Deviation::new(
            "mime:Content-Type",
            "MAIL-02",
            format!(
                "message is not multipart/report; its whole body ({root_type}) was read as the report"
            ),
        ));
        return Ok(Candidate {
            index: 0,
            part: root,
            tier,
            media_type: root_type,
        });
    }

    // RFC 8460 §5.3 / RFC 6522: multipart/report; report-type="tlsrpt" (quoted or not: the MIME
    // parser removes the quotes, so Microsoft's unquoted form is simply accepted).
    let report_type = root
        .content_type()
        .and_then(|ct| ct.attribute("report-type"))
        .map(str::to_ascii_lowercase);
    match (root_type.as_str(), report_type.as_deref()) {
        ("multipart/report", Some("tlsrpt")) => {}
        ("multipart/report", Some(other)) => devs.push(Deviation::new(
            "mime:Content-Type",
            "MAIL-02",
            format!(
                "multipart/report has report-type={:?}, not \"tlsrpt\"",
                short(other)
            ),
        )),
        ("multipart/report", None) => devs.push(Deviation::new(
            "mime:Content-Type",
            "MAIL-02",
            "multipart/report has no report-type parameter",
        )),
        (other, _) => devs.push(Deviation::new(
            "mime:Content-Type",
            "MAIL-02",
            format!("top-level type is {other}, not multipart/report"),
        )),
    }

    let mut candidates: Vec<Candidate<'p, 'x>> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (index, part) in message.parts.iter().enumerate().skip(1) {
        if matches!(part.body, PartType::Multipart(_) | PartType::Message(_)) {
            continue;
        }
        let media_type = media_type_of(part);
        let tier = match media_type.as_str() {
            "application/tlsrpt+gzip" | "application/tlsrpt+json" => Some(Tier::Registered),
            "application/tlsrpt" => Some(Tier::Near),
            "application/octet-stream"
            | "application/gzip"
            | "application/x-gzip"
            | "application/json" => {
                let named = part.attachment_name().is_some_and(has_report_extension);
                let magic = part.contents().starts_with(&[0x1f, 0x8b]);
                (named || magic || media_type == "application/json").then_some(Tier::Generic)
            }
            _ => part
                .attachment_name()
                .is_some_and(has_report_extension)
                .then_some(Tier::Generic),
        };
        if seen.len() < 8 {
            seen.push(media_type.clone());
        }
        if let Some(tier) = tier {
            candidates.push(Candidate {
                index,
                part,
                tier,
                media_type,
            });
        }
    }
    let Some(best) = candidates.iter().map(|c| c.tier).min() else {
        return Err(MessageError::NoReport {
            seen: seen.join(", "),
        });
    };
    candidates.retain(|c| c.tier == best);
    if candidates.len() > 1 {
        return Err(MessageError::SeveralReports {
            count: candidates.len(),
            media_types: candidates
                .iter()
                .take(8)
                .map(|c| c.media_type.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let chosen = candidates.pop().ok_or_else(|| MessageError::NoReport {
        seen: seen.join(", "),
    })?;
    match chosen.tier {
        Tier::Registered => {}
        Tier::Near => devs.push(Deviation::new(
            format!("mime:part[{}]", chosen.index),
            "MAIL-02",
            "report part is application/tlsrpt, not application/tlsrpt+gzip or +json",
        )),
        Tier::Generic => devs.push(Deviation::new(
            format!("mime:part[{}]", chosen.index),
            "RCV-04",
            format!(
                "report part has generic type {}; identified by {}",
                chosen.media_type,
                if chosen
                    .part
                    .attachment_name()
                    .is_some_and(has_report_extension)
                {
                    "its filename"
                } else if chosen.part.contents().starts_with(&[0x1f, 0x8b]) {
                    "the gzip magic"
                } else {
                    "its JSON media type"
                }
            ),
        )),
    }
    Ok(chosen)
}

/// The report bytes (gzip or JSON) of the chosen part, undoing a second layer of base64.
fn decode_payload<'p>(
    raw: &[u8],
    candidate: &Candidate<'p, '_>,
    limits: &read::Limits,
    devs: &mut Vec<Deviation>,
) -> Result<Cow<'p, [u8]>, MessageError> {
    let part = candidate.part;
    let path = format!("mime:part[{}]", candidate.index);
    if part.is_encoding_problem {
        return Err(MessageError::Encoding {
            media_type: candidate.media_type.clone(),
            problem: "the Content-Transfer-Encoding could not be decoded".to_owned(),
        });
    }
    // The MIME parser turns text/* parts (and a message with no Content-Type) into UTF-8
    // lossily, which destroys gzip. For base64 text parts decode the raw body ourselves.
    let redecoded: Option<Vec<u8>> = if matches!(part.body, PartType::Text(_) | PartType::Html(_))
        && part.encoding == Encoding::Base64
    {
        let start = usize::try_from(part.offset_body).unwrap_or(usize::MAX);
        let end = usize::try_from(part.offset_end).unwrap_or(usize::MAX);
        raw.get(start..end)
            .and_then(|body| decode_base64_lenient(body).ok())
    } else {
        None
    };
    let contents: &'p [u8] = part.contents();
    let contents: Cow<'p, [u8]> = match redecoded {
        Some(v) => Cow::Owned(v),
        None => Cow::Borrowed(contents),
    };
    let trimmed = trim_ascii_start(&contents);
    let is_gzip = contents.starts_with(&[0x1f, 0x8b]);
    let is_json = trimmed.starts_with(b"{");
    let payload: Cow<'p, [u8]> = if is_gzip || is_json {
        contents
    } else if !trimmed.is_empty()
        && trimmed
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=\r\n\t ".contains(b))
    {
        // REQUIREMENTS RCV-04 (REC leniency): content still base64 after transfer decoding.
        let decoded = decode_base64_lenient(trimmed).map_err(|e| MessageError::Encoding {
            media_type: candidate.media_type.clone(),
            problem: format!("content looks like base64 but does not decode: {e}"),
        })?;
        devs.push(Deviation::new(
            path.clone(),
            "RCV-04",
            "report content was still base64 after transfer decoding; decoded again",
        ));
        Cow::Owned(decoded)
    } else {
        contents
    };
    if payload.len() > limits.max_input_bytes {
        return Err(MessageError::TooLarge {
            size: payload.len(),
            limit: limits.max_input_bytes,
        });
    }
    let gz = payload.starts_with(&[0x1f, 0x8b]);
    match (candidate.media_type.as_str(), gz) {
        ("application/tlsrpt+json", true) => devs.push(Deviation::new(
            path,
            "MAIL-02",
            "part is labelled application/tlsrpt+json but holds gzip; decompressed",
        )),
        ("application/tlsrpt+gzip", false) => devs.push(Deviation::new(
            path,
            "MAIL-02",
            "part is labelled application/tlsrpt+gzip but is not gzip; read as JSON",
        )),
        _ => {}
    }
    Ok(payload)
}

/// Base64 with whitespace anywhere and padding optional, as mail software writes it.
fn decode_base64_lenient(data: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    let compact: Vec<u8> = data
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(&compact)
}

fn trim_ascii_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    b.get(n..).unwrap_or(&[])
}

/// A header's raw value, unfolded (RFC 5322 §2.2.3) and trimmed; `None` if absent or empty.
fn header_text(message: &Message<'_>, name: &str) -> Option<String> {
    let raw = message.header_raw(name)?;
    let unfolded = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    (!unfolded.is_empty()).then_some(unfolded)
}

/// A domain for comparison: A-labels, lower case, no trailing dot; the lower-cased text if it
/// is not a valid domain (so a comparison still happens and can fail).
fn norm_domain(s: &str) -> String {
    a_label_domain("domain", s.trim())
        .map(|(d, _)| d)
        .unwrap_or_else(|_| s.trim().trim_end_matches('.').to_ascii_lowercase())
}

/// Policy domains of the body, normalised.
fn body_policy_domains(report: &Report) -> Vec<String> {
    let mut out: Vec<String> = report
        .policies
        .iter()
        .filter_map(|p| p.policy.policy_domain.as_deref())
        .map(norm_domain)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Domain part of `contact-info`, if it is an addr-spec.
fn contact_domain(report: &Report) -> Option<String> {
    report
        .contact_info
        .as_deref()
        .and_then(crate::naming::contact_domain)
}

fn check_headers(
    report: &Report,
    domain: Option<&str>,
    submitter: Option<&str>,
    devs: &mut Vec<Deviation>,
) {
    let policy_domains = body_policy_domains(report);
    match domain {
        None => devs.push(Deviation::new(
            "header:TLS-Report-Domain",
            "MAIL-04",
            "TLS-Report-Domain header is missing",
        )),
        Some(d) => {
            // REQUIREMENTS RCV-05: the JSON is authoritative. Only noted when the body names
            // policy domains at all (some senders omit them, §13.3).
            if !policy_domains.is_empty() && !policy_domains.contains(&norm_domain(d)) {
                devs.push(Deviation::new(
                    "header:TLS-Report-Domain",
                    "RCV-05",
                    format!(
                        "TLS-Report-Domain {:?} is not a policy-domain of the report ({}); the report's values are kept",
                        short(d),
                        policy_domains.join(", ")
                    ),
                ));
            }
        }
    }
    match submitter {
        None => devs.push(Deviation::new(
            "header:TLS-Report-Submitter",
            "MAIL-04",
            "TLS-Report-Submitter header is missing",
        )),
        Some(s) => {
            // REQUIREMENTS MAIL-05: must equal the domain part of contact-info.
            if let Some(cd) = contact_domain(report)
                && cd != norm_domain(s)
            {
                devs.push(Deviation::new(
                    "header:TLS-Report-Submitter",
                    "MAIL-05",
                    format!(
                        "TLS-Report-Submitter {:?} differs from the contact-info domain {cd:?}",
                        short(s)
                    ),
                ));
            }
        }
    }
}

fn check_subject(
    report: &Report,
    subject: Option<&str>,
    submitter_header: Option<&str>,
    devs: &mut Vec<Deviation>,
) {
    const PATH: &str = "header:Subject";
    let Some(subject) = subject else {
        devs.push(Deviation::new(PATH, "MAIL-07", "Subject is missing"));
        return;
    };
    let parsed = match naming::parse_subject(subject) {
        Ok(p) => p,
        Err(e) => {
            devs.push(Deviation::new(
                PATH,
                "MAIL-07",
                format!("Subject is not in the RFC 8460 §5.3 form: {e}"),
            ));
            return;
        }
    };
    devs.extend(parsed.deviations);
    let s = parsed.subject;
    // REQUIREMENTS DLV-06: the JSON wins; disagreements are noted only.
    let policy_domains = body_policy_domains(report);
    if !policy_domains.is_empty() && !policy_domains.contains(&s.policy_domain) {
        devs.push(Deviation::new(
            PATH,
            "DLV-06",
            format!(
                "Subject Report Domain {:?} is not a policy-domain of the report ({})",
                s.policy_domain,
                policy_domains.join(", ")
            ),
        ));
    }
    let expected_submitter = contact_domain(report).or_else(|| submitter_header.map(norm_domain));
    if let Some(exp) = expected_submitter
        && exp != s.submitter
    {
        devs.push(Deviation::new(
            PATH,
            "DLV-06",
            format!(
                "Subject Submitter {:?} differs from the submitter {exp:?}",
                s.submitter
            ),
        ));
    }
    // The Subject's Report-ID is the JSON report-id, possibly with `@<submitter>` appended
    // (sys4, REQUIREMENTS MAIL-07).
    let id = s.report_id.as_str();
    let matches_body = id == report.report_id
        || id
            .strip_prefix(report.report_id.as_str())
            .is_some_and(|rest| rest.starts_with('@'));
    if !matches_body {
        devs.push(Deviation::new(
            PATH,
            "DLV-06",
            format!(
                "Subject Report-ID {:?} differs from the report-id {:?}",
                short(id),
                short(&report.report_id)
            ),
        ));
    }
}

fn check_filename(report: &Report, filename: Option<&str>, devs: &mut Vec<Deviation>) {
    const PATH: &str = "filename";
    let Some(name) = filename else {
        devs.push(Deviation::new(
            PATH,
            "MAIL-03",
            "report part has no filename",
        ));
        return;
    };
    let parsed = match naming::parse_filename(name) {
        Ok(p) => p,
        Err(e) => {
            devs.push(Deviation::new(
                PATH,
                "MAIL-08",
                format!("filename is not in the RFC 8460 §5.1 form: {e}"),
            ));
            return;
        }
    };
    devs.extend(parsed.deviations);
    let f = parsed.filename;
    // REQUIREMENTS DLV-06 / RCV-05: the filename is a hint; disagreements are noted only.
    let policy_domains = body_policy_domains(report);
    if !policy_domains.is_empty() && !policy_domains.contains(&f.policy_domain) {
        devs.push(Deviation::new(
            PATH,
            "DLV-06",
            format!(
                "filename policy-domain {:?} is not a policy-domain of the report ({})",
                f.policy_domain,
                policy_domains.join(", ")
            ),
        ));
    }
    if let Some(cd) = contact_domain(report)
        && cd != f.sender
    {
        devs.push(Deviation::new(
            PATH,
            "DLV-06",
            format!(
                "filename sender {:?} differs from the contact-info domain {cd:?}",
                f.sender
            ),
        ));
    }
    let (start, end) = (
        report.date_range.start.as_second(),
        report.date_range.end.as_second(),
    );
    // An end one second before the body's (`23:59:59` against next-day `00:00:00Z`, JSON-12)
    // names the same day and is not a disagreement.
    if f.begin != start || (f.end != end && f.end.checked_add(1) != Some(end)) {
        devs.push(Deviation::new(
            PATH,
            "DLV-06",
            format!(
                "filename timestamps {}..{} differ from the date-range {}..{} ({} to {})",
                f.begin, f.end, start, end, report.date_range.start, report.date_range.end
            ),
        ));
    }
}
