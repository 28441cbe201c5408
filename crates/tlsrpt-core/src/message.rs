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
    /// `application/tlsrpt` (mail-auth's rpt02.eml).
    Near,
    /// A generic type identified by filename, gzip magic or a JSON media type.
    Generic,
}

struct Candidate<'p, 'x> {
    index: usize,
    part: &'p MessagePart<'x>,
    media_type: String,
}

/// Takes the TLSRPT report out of an RFC 5322 message (REQUIREMENTS RCV-04) and cross-checks
/// the message's claims against it (MAIL-04, MAIL-05, MAIL-07, MAIL-08, DLV-06).
///
/// The size is checked before parsing (`limits.max_input_bytes`), as is the number of
/// boundary-like lines ([`MAX_DELIMITER_LINES`]), and at most [`MAX_MIME_PARTS`] parts are
/// examined. The report part is read with
/// [`read::read_report`] under the same `limits`.
///
/// Messages in the plain RFC 8460 §5.3 shape (one flat multipart, simple headers, a strictly
/// valid base64 or 7bit report part) are taken apart by a small strict parser, which costs a
/// fraction of a full MIME parse; anything else goes through the full MIME parser. Both give
/// the same result for every input the strict parser accepts (see [`extract_report_slow`]).
pub fn extract_report(bytes: &[u8], limits: &read::Limits) -> Result<MessageReport, MessageError> {
    precheck(bytes, limits)?;
    if let Some(result) = fast::parse(bytes).and_then(|message| extract_fast(&message, limits)) {
        return result;
    }
    extract_slow(bytes, limits)
}

/// [`extract_report`] always through the full MIME parser. Public only so that tests can
/// compare the two paths; not part of the API.
#[doc(hidden)]
pub fn extract_report_slow(
    bytes: &[u8],
    limits: &read::Limits,
) -> Result<MessageReport, MessageError> {
    precheck(bytes, limits)?;
    extract_slow(bytes, limits)
}

/// [`extract_report`] through the strict parser only: `None` when it declines the message
/// (the full parser would then be used). Public only so that tests can compare the two paths;
/// not part of the API.
#[doc(hidden)]
pub fn extract_report_fast(
    bytes: &[u8],
    limits: &read::Limits,
) -> Option<Result<MessageReport, MessageError>> {
    if let Err(e) = precheck(bytes, limits) {
        return Some(Err(e));
    }
    fast::parse(bytes).and_then(|message| extract_fast(&message, limits))
}

/// The checks made before any parsing, in this order, by both paths.
fn precheck(bytes: &[u8], limits: &read::Limits) -> Result<(), MessageError> {
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
    Ok(())
}

/// The full MIME parser's path.
fn extract_slow(bytes: &[u8], limits: &read::Limits) -> Result<MessageReport, MessageError> {
    // mail-parser panics on some malformed nestings (found by cargo fuzz: a message/rfc822
    // part whose multipart parent it loses track of). A hostile message must never take down
    // the daemon or the `ingest` run around it, so a panic here is this message's error.
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        MessageParser::default().parse(bytes)
    }))
    .map_err(|_| {
        MessageError::NotAMessage("the MIME structure is malformed (the MIME parser gave up)")
    })?;
    let message = parsed.ok_or(MessageError::NotAMessage("no header fields found"))?;
    if message.parts.len() > MAX_MIME_PARTS {
        return Err(MessageError::TooManyParts {
            found: message.parts.len(),
            limit: MAX_MIME_PARTS,
        });
    }
    let mut devs = Vec::new();
    let candidate = find_report_part(&message, &mut devs)?;
    let contents = part_contents(bytes, &candidate)?;
    let facts = MessageFacts {
        report_domain: header_text(message.header_raw("TLS-Report-Domain")),
        report_submitter: header_text(message.header_raw("TLS-Report-Submitter")),
        subject: message.subject().map(str::to_owned),
        filename: candidate.part.attachment_name().map(str::to_owned),
    };
    finish(
        candidate.index,
        candidate.media_type,
        contents,
        facts,
        devs,
        limits,
    )
}

/// The strict parser's path: the same steps as [`extract_slow`] on [`fast::Message`]. `None`
/// when the report would be a text part, whose contents the full parser converts to UTF-8
/// (and [`part_contents`] may decode again); those are left to it.
fn extract_fast(
    message: &fast::Message<'_>,
    limits: &read::Limits,
) -> Option<Result<MessageReport, MessageError>> {
    let mut devs = Vec::new();
    check_root_multipart(
        &message.root_type,
        message.report_type.as_deref(),
        &mut devs,
    );
    let (index, media_type) = match choose_part(
        message.parts.iter().enumerate().map(|(i, p)| (i + 1, p)),
        &mut devs,
    ) {
        Ok(chosen) => chosen,
        Err(e) => return Some(Err(e)),
    };
    let part = message.parts.get(index.checked_sub(1)?)?;
    let contents = Cow::Borrowed(part.contents.as_deref()?);
    let facts = MessageFacts {
        report_domain: header_text(message.report_domain),
        report_submitter: header_text(message.report_submitter),
        subject: message.subject.clone(),
        filename: part.name.as_deref().map(str::to_owned),
    };
    Some(finish(index, media_type, contents, facts, devs, limits))
}

/// What the message says about its report, besides the report part itself.
struct MessageFacts {
    report_domain: Option<String>,
    report_submitter: Option<String>,
    subject: Option<String>,
    filename: Option<String>,
}

/// Reads the report from the chosen part's `contents` and cross-checks it with the message.
fn finish(
    index: usize,
    media_type: String,
    contents: Cow<'_, [u8]>,
    facts: MessageFacts,
    mut devs: Vec<Deviation>,
    limits: &read::Limits,
) -> Result<MessageReport, MessageError> {
    let payload = decode_payload(index, &media_type, contents, limits, &mut devs)?;
    let mut reading =
        read::read_report(&payload, limits).map_err(|source| MessageError::Report {
            media_type: media_type.clone(),
            source,
        })?;
    let MessageFacts {
        report_domain,
        report_submitter,
        subject,
        filename,
    } = facts;
    // The body's policy domains and contact domain are used by all three checks; each costs
    // IDNA work, so they are computed once.
    let body = BodyFacts {
        report: &reading.report,
        policy_domains: body_policy_domains(&reading.report),
        contact_domain: contact_domain(&reading.report),
    };
    check_headers(
        &body,
        report_domain.as_deref(),
        report_submitter.as_deref(),
        &mut devs,
    );
    check_subject(
        &body,
        subject.as_deref(),
        report_submitter.as_deref(),
        &mut devs,
    );
    check_filename(&body, filename.as_deref(), &mut devs);

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
        Some(ct) => {
            // One allocation, lower-cased in place: this runs for every part of every message.
            let ctype = ct.ctype();
            let sub = ct.subtype();
            let mut s = String::with_capacity(ctype.len() + sub.map_or(0, |s| s.len() + 1));
            s.push_str(ctype);
            if let Some(sub) = sub {
                s.push('/');
                s.push_str(sub);
            }
            s.make_ascii_lowercase();
            s
        }
        None => "text/plain".to_owned(),
    }
}

fn has_report_extension(name: &str) -> bool {
    // Compared in place rather than on a lower-cased copy.
    let ends_with = |suffix: &str| {
        name.len()
            .checked_sub(suffix.len())
            .and_then(|start| name.as_bytes().get(start..))
            .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix.as_bytes()))
    };
    ends_with(".json") || ends_with(".gz")
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
            media_type: root_type,
        });
    }

    let report_type = root
        .content_type()
        .and_then(|ct| ct.attribute("report-type"));
    check_root_multipart(&root_type, report_type, devs);
    let (index, media_type) = choose_part(message.parts.iter().enumerate().skip(1), devs)?;
    let part = message
        .parts
        .get(index)
        .ok_or_else(|| MessageError::NoReport {
            seen: String::new(),
        })?;
    Ok(Candidate {
        index,
        part,
        media_type,
    })
}

/// Notes a multipart root that is not `multipart/report; report-type="tlsrpt"`.
fn check_root_multipart(root_type: &str, report_type: Option<&str>, devs: &mut Vec<Deviation>) {
    // RFC 8460 §5.3 / RFC 6522: multipart/report; report-type="tlsrpt" (quoted or not: the MIME
    // parser removes the quotes, so Microsoft's unquoted form is simply accepted).
    let report_type = report_type.map(str::to_ascii_lowercase);
    match (root_type, report_type.as_deref()) {
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
}

/// What [`choose_part`] needs to know of a MIME part, from either parser.
trait PartView {
    /// A multipart or an encapsulated message: never the report itself.
    fn is_container(&self) -> bool;
    /// Lower-case `type/subtype` ([`media_type_of`]).
    fn media_type(&self) -> String;
    /// Content-Disposition `filename`, else Content-Type `name`.
    fn name(&self) -> Option<&str>;
    /// The transfer-decoded contents.
    fn contents(&self) -> &[u8];
}

impl PartView for MessagePart<'_> {
    fn is_container(&self) -> bool {
        matches!(self.body, PartType::Multipart(_) | PartType::Message(_))
    }
    fn media_type(&self) -> String {
        media_type_of(self)
    }
    fn name(&self) -> Option<&str> {
        self.attachment_name()
    }
    fn contents(&self) -> &[u8] {
        MessagePart::contents(self)
    }
}

impl PartView for fast::Part<'_> {
    fn is_container(&self) -> bool {
        false
    }
    fn media_type(&self) -> String {
        self.media_type.clone()
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    fn contents(&self) -> &[u8] {
        // Text parts are not decoded; their contents are only looked at when they are
        // chosen, and the strict parser declines such messages.
        self.contents.as_deref().unwrap_or(&[])
    }
}

/// Picks the one report part among the parts of a multipart message (RFC 8460 §5.3,
/// REQUIREMENTS RCV-04); returns its index and media type.
fn choose_part<'p, P: PartView + 'p>(
    parts: impl Iterator<Item = (usize, &'p P)>,
    devs: &mut Vec<Deviation>,
) -> Result<(usize, String), MessageError> {
    struct Found<'p, P> {
        index: usize,
        part: &'p P,
        tier: Tier,
        media_type: String,
    }
    let mut candidates: Vec<Found<'p, P>> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (index, part) in parts {
        if part.is_container() {
            continue;
        }
        let media_type = part.media_type();
        let tier = match media_type.as_str() {
            "application/tlsrpt+gzip" | "application/tlsrpt+json" => Some(Tier::Registered),
            "application/tlsrpt" => Some(Tier::Near),
            "application/octet-stream"
            | "application/gzip"
            | "application/x-gzip"
            | "application/json" => {
                let named = part.name().is_some_and(has_report_extension);
                let magic = part.contents().starts_with(&[0x1f, 0x8b]);
                (named || magic || media_type == "application/json").then_some(Tier::Generic)
            }
            _ => part
                .name()
                .is_some_and(has_report_extension)
                .then_some(Tier::Generic),
        };
        if seen.len() < 8 {
            seen.push(media_type.clone());
        }
        if let Some(tier) = tier {
            candidates.push(Found {
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
                if chosen.part.name().is_some_and(has_report_extension) {
                    "its filename"
                } else if chosen.part.contents().starts_with(&[0x1f, 0x8b]) {
                    "the gzip magic"
                } else {
                    "its JSON media type"
                }
            ),
        )),
    }
    Ok((chosen.index, chosen.media_type))
}

/// The transfer-decoded contents of the part the full MIME parser chose.
fn part_contents<'p>(
    raw: &[u8],
    candidate: &Candidate<'p, '_>,
) -> Result<Cow<'p, [u8]>, MessageError> {
    let part = candidate.part;
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
    Ok(match redecoded {
        Some(v) => Cow::Owned(v),
        None => Cow::Borrowed(part.contents()),
    })
}

/// The report bytes (gzip or JSON) of the chosen part, undoing a second layer of base64.
fn decode_payload<'p>(
    index: usize,
    media_type: &str,
    contents: Cow<'p, [u8]>,
    limits: &read::Limits,
    devs: &mut Vec<Deviation>,
) -> Result<Cow<'p, [u8]>, MessageError> {
    let trimmed = trim_ascii_start(&contents);
    let is_gzip = contents.starts_with(&[0x1f, 0x8b]);
    let is_json = trimmed.starts_with(b"{");
    let mut redecoded = false;
    let payload: Cow<'p, [u8]> = if is_gzip || is_json {
        contents
    } else if !trimmed.is_empty()
        && trimmed
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=\r\n\t ".contains(b))
    {
        // REQUIREMENTS RCV-04 (REC leniency): content still base64 after transfer decoding.
        let decoded = decode_base64_lenient(trimmed).map_err(|e| MessageError::Encoding {
            media_type: media_type.to_owned(),
            problem: format!("content looks like base64 but does not decode: {e}"),
        })?;
        redecoded = true;
        Cow::Owned(decoded)
    } else {
        contents
    };
    if redecoded {
        devs.push(Deviation::new(
            format!("mime:part[{index}]"),
            "RCV-04",
            "report content was still base64 after transfer decoding; decoded again",
        ));
    }
    if payload.len() > limits.max_input_bytes {
        return Err(MessageError::TooLarge {
            size: payload.len(),
            limit: limits.max_input_bytes,
        });
    }
    let gz = payload.starts_with(&[0x1f, 0x8b]);
    match (media_type, gz) {
        ("application/tlsrpt+json", true) => devs.push(Deviation::new(
            format!("mime:part[{index}]"),
            "MAIL-02",
            "part is labelled application/tlsrpt+json but holds gzip; decompressed",
        )),
        ("application/tlsrpt+gzip", false) => devs.push(Deviation::new(
            format!("mime:part[{index}]"),
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
fn header_text(raw: Option<&str>) -> Option<String> {
    let raw = raw?;
    // Built in one String rather than collecting the words into a Vec and joining.
    let mut unfolded = String::with_capacity(raw.len());
    for word in raw.split_whitespace() {
        if !unfolded.is_empty() {
            unfolded.push(' ');
        }
        unfolded.push_str(word);
    }
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

/// What the checks compare the message's claims with, taken from the report once.
struct BodyFacts<'r> {
    report: &'r Report,
    /// [`body_policy_domains`] of the report.
    policy_domains: Vec<String>,
    /// [`contact_domain`] of the report.
    contact_domain: Option<String>,
}

fn check_headers(
    body: &BodyFacts<'_>,
    domain: Option<&str>,
    submitter: Option<&str>,
    devs: &mut Vec<Deviation>,
) {
    let policy_domains = &body.policy_domains;
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
            if let Some(cd) = &body.contact_domain
                && *cd != norm_domain(s)
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
    body: &BodyFacts<'_>,
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
    let report = body.report;
    // REQUIREMENTS DLV-06: the JSON wins; disagreements are noted only.
    let policy_domains = &body.policy_domains;
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
    let expected_submitter = body
        .contact_domain
        .clone()
        .or_else(|| submitter_header.map(norm_domain));
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

fn check_filename(body: &BodyFacts<'_>, filename: Option<&str>, devs: &mut Vec<Deviation>) {
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
    let report = body.report;
    // REQUIREMENTS DLV-06 / RCV-05: the filename is a hint; disagreements are noted only.
    let policy_domains = &body.policy_domains;
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
    if let Some(cd) = &body.contact_domain
        && *cd != f.sender
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

/// A strict parser for the message shape RFC 8460 §5.3 asks for, much cheaper than the full
/// MIME parser: it reads only the header fields the report extraction uses and finds the
/// parts by their boundary delimiters (RFC 2046 §5.1.1) without building a message tree.
///
/// It must give exactly what the full parser (mail-parser) gives, so it accepts only inputs
/// whose reading is plain and on which that parser's documented quirks cannot act. Anything
/// else is declined (`None`) and handed to the full parser:
/// - header fields (RFC 5322 §2.2) named by letters, digits, `-` and `_` directly followed by
///   `:`, each ending at the first line break not followed by a space or tab (§2.2.3); no
///   encoded words (`=?`, RFC 2047) anywhere in the headers (every field reader of the
///   full parser, `Received` and the list, address and message-id ones included, ends a field
///   exactly there once encoded words are ruled out); `Date` fields only if the
///   full parser's obsolete-zone reading cannot swallow a line break (see [`date_is_one_field`]);
///   no second `Content-Type`, `Content-Transfer-Encoding`, `Content-Disposition`, `Subject`,
///   `TLS-Report-Domain` or `TLS-Report-Submitter` in one header block;
/// - a top-level `multipart/*` other than `multipart/digest` (RFC 2046 §5.1.5 changes the
///   default part type there) with a plain `boundary` (RFC 2046 §5.1.1 characters, no space
///   or `:`);
/// - every occurrence of `--boundary` before the close delimiter starting a line and
///   followed by a line break, or by `--` for the close delimiter, which must exist; at most
///   [`MAX_PARTS`] parts, none of them `multipart/*` or `message/*`;
/// - `Content-Type` and `Content-Disposition` in the simple RFC 2045 §5.1 form: tokens and
///   plain quoted strings, no comments, escapes, RFC 2231 parameters or folding inside a
///   parameter;
/// - every part that is not text decoded: base64 (RFC 2045 §6.8) only when it decodes with
///   canonical padding and no stray bits once line breaks are removed (where the two decoders
///   provably agree), quoted-printable not at all, anything else taken as is.
mod fast {
    use std::borrow::Cow;

    use base64::Engine as _;

    /// Most parts of the multipart accepted; more is unusual for a report and left to the full
    /// parser, which enforces [`super::MAX_MIME_PARTS`].
    pub(super) const MAX_PARTS: usize = 16;

    /// The message as the report extraction needs it.
    pub(super) struct Message<'a> {
        /// Lower-case `multipart/subtype` of the message.
        pub(super) root_type: String,
        /// The top-level `report-type` parameter as sent.
        pub(super) report_type: Option<Cow<'a, str>>,
        /// The parts of the multipart, in order; part `i` is the full parser's `parts[i + 1]`.
        pub(super) parts: Vec<Part<'a>>,
        /// The Subject, unfolded as the full parser does it.
        pub(super) subject: Option<String>,
        /// `TLS-Report-Domain` as sent (after the colon, with its line break); `None` if
        /// absent or not UTF-8.
        pub(super) report_domain: Option<&'a str>,
        /// `TLS-Report-Submitter`, likewise.
        pub(super) report_submitter: Option<&'a str>,
    }

    /// One part of the multipart.
    pub(super) struct Part<'a> {
        /// Lower-case `type/subtype`; `text/plain` when absent (RFC 2045 §5.2).
        pub(super) media_type: String,
        /// Content-Disposition `filename`, else Content-Type `name`.
        pub(super) name: Option<Cow<'a, str>>,
        /// The transfer-decoded body; `None` for text parts, which are never decoded.
        pub(super) contents: Option<Cow<'a, [u8]>>,
    }

    /// The header fields of one header block that the extraction reads.
    #[derive(Default)]
    struct Headers<'a> {
        content_type: Option<&'a [u8]>,
        transfer_encoding: Option<&'a [u8]>,
        disposition: Option<&'a [u8]>,
        subject: Option<&'a [u8]>,
        report_domain: Option<&'a [u8]>,
        report_submitter: Option<&'a [u8]>,
        /// Offset just past the empty line ending the block.
        end: usize,
    }

    /// `type/subtype; params` of a Content-Type or Content-Disposition field.
    struct ContentType<'a> {
        ctype: &'a [u8],
        subtype: Option<&'a [u8]>,
        /// The parameters in order; `params_len` of them are set.
        params: [(&'a [u8], &'a [u8]); MAX_PARAMS],
        params_len: usize,
    }

    /// Most parameters of one Content-Type or Content-Disposition accepted (kept on the stack).
    const MAX_PARAMS: usize = 6;

    impl<'a> ContentType<'a> {
        /// The first parameter of that (lower-case) name, as the full parser returns it.
        fn param(&self, name: &str) -> Option<Cow<'a, str>> {
            self.param_bytes(name).map(String::from_utf8_lossy)
        }

        /// The first parameter of that (lower-case) name, as sent.
        fn param_bytes(&self, name: &str) -> Option<&'a [u8]> {
            self.params
                .get(..self.params_len)?
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, v)| *v)
        }

        /// Lower-case `type/subtype`.
        fn media_type(&self) -> String {
            let mut s =
                String::with_capacity(self.ctype.len() + self.subtype.map_or(0, |s| s.len() + 1));
            s.push_str(&String::from_utf8_lossy(self.ctype));
            if let Some(sub) = self.subtype {
                s.push('/');
                s.push_str(&String::from_utf8_lossy(sub));
            }
            s.make_ascii_lowercase();
            s
        }
    }

    /// Parses `data` in the strict shape, or declines it.
    pub(super) fn parse(data: &[u8]) -> Option<Message<'_>> {
        let root = headers(data, 0, true)?;
        let ct = content_type(root.content_type?, true)?;
        if !ct.ctype.eq_ignore_ascii_case(b"multipart")
            || ct
                .subtype
                .is_some_and(|s| s.eq_ignore_ascii_case(b"digest"))
        {
            return None;
        }
        let boundary = ct.param_bytes("boundary")?;
        // RFC 2046 §5.1.1 bchars, less space (never last, and awkward) and `:` (which could make
        // a delimiter line read as a header field).
        if boundary.is_empty()
            || boundary.len() > 70
            || !boundary.iter().all(|&b| {
                matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'\''
                    | b'(' | b')' | b'+' | b'_' | b',' | b'-' | b'.' | b'/' | b'=' | b'?')
            })
        {
            return None;
        }
        let mut dash_boundary = Vec::with_capacity(boundary.len() + 2);
        dash_boundary.extend_from_slice(b"--");
        dash_boundary.extend_from_slice(boundary);
        // Delimiters: (offset of `--boundary`, offset of the line after it). Every `-` is a
        // possible start, so overlapping occurrences are all seen (and refused); a report's
        // body has few dashes outside its delimiter lines, and building a substring searcher
        // would cost more than this whole scan.
        let mut delimiters: Vec<(usize, usize)> = Vec::new();
        let body = data.get(root.end..)?;
        let mut occurrences = memchr::memchr_iter(b'-', body)
            .map(|i| root.end + i)
            .filter(|&i| {
                data.get(i..)
                    .is_some_and(|rest| rest.starts_with(&dash_boundary))
            });
        let close = loop {
            let at = occurrences.next()?;
            // The full parser matches `--boundary` anywhere, not only at a line start.
            if at == 0 || data.get(at - 1) != Some(&b'\n') {
                return None;
            }
            let after = at + dash_boundary.len();
            let rest = data.get(after..)?;
            if rest.starts_with(b"--") {
                break at;
            }
            let next = if rest.starts_with(b"\n") {
                after + 1
            } else if rest.starts_with(b"\r\n") {
                after + 2
            } else {
                return None;
            };
            if delimiters.len() >= MAX_PARTS {
                return None;
            }
            delimiters.push((at, next));
        };
        if delimiters.is_empty() {
            return None;
        }

        let mut parts = Vec::with_capacity(delimiters.len());
        for (k, &(_, start)) in delimiters.iter().enumerate() {
            let end = delimiters.get(k + 1).map_or(close, |d| d.0);
            parts.push(part(data.get(..end)?, start)?);
        }
        let subject = match root.subject {
            Some(v) => unstructured(v),
            None => None,
        };
        Some(Message {
            root_type: ct.media_type(),
            report_type: ct.param("report-type"),
            parts,
            subject,
            report_domain: root.report_domain.and_then(|v| std::str::from_utf8(v).ok()),
            report_submitter: root
                .report_submitter
                .and_then(|v| std::str::from_utf8(v).ok()),
        })
    }

    /// The part whose header block starts at `start`; its body runs to the end of `data`,
    /// where the next delimiter starts.
    fn part(data: &[u8], start: usize) -> Option<Part<'_>> {
        let h = headers(data, start, false)?;
        let ct = match h.content_type {
            Some(v) => Some(content_type(v, true)?),
            None => None,
        };
        let disposition = match h.disposition {
            Some(v) => Some(content_type(v, false)?),
            None => None,
        };
        let is_text = match &ct {
            None => true,
            Some(ct) if ct.ctype.eq_ignore_ascii_case(b"text") => true,
            Some(ct)
                if ct.ctype.eq_ignore_ascii_case(b"multipart")
                    || ct.ctype.eq_ignore_ascii_case(b"message") =>
            {
                return None;
            }
            Some(_) => false,
        };
        let media_type = ct
            .as_ref()
            .map_or_else(|| "text/plain".to_owned(), ContentType::media_type);
        let name = disposition
            .as_ref()
            .and_then(|d| d.param("filename"))
            .or_else(|| ct.as_ref().and_then(|c| c.param("name")));
        let body = data.get(h.end..)?;
        let contents = if is_text {
            None
        } else {
            let encoding = h.transfer_encoding.map(unstructured_value);
            Some(match encoding {
                Some(e) if e.eq_ignore_ascii_case(b"base64") => {
                    Cow::Owned(decode_base64_strict(body)?)
                }
                Some(e) if e.eq_ignore_ascii_case(b"quoted-printable") => return None,
                // The line break before the delimiter belongs to it (RFC 2046 §5.1.1).
                _ => {
                    let body = body.strip_suffix(b"\n").unwrap_or(body);
                    Cow::Borrowed(body.strip_suffix(b"\r").unwrap_or(body))
                }
            })
        };
        Some(Part {
            media_type,
            name,
            contents,
        })
    }

    /// Base64 split into lines (LF or CRLF), decoded only if it is canonical.
    fn decode_base64_strict(body: &[u8]) -> Option<Vec<u8>> {
        let mut compact = Vec::with_capacity(body.len());
        let mut line_start = 0;
        for nl in memchr::memchr_iter(b'\n', body) {
            let line = body.get(line_start..nl)?;
            compact.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
            line_start = nl + 1;
        }
        compact.extend_from_slice(body.get(line_start..)?);
        base64::engine::general_purpose::STANDARD
            .decode(&compact)
            .ok()
    }

    /// Stores a field's value, declining a second one.
    fn set<'a>(slot: &mut Option<&'a [u8]>, value: &'a [u8]) -> Option<()> {
        if slot.is_some() {
            return None;
        }
        *slot = Some(value);
        Some(())
    }

    /// The header block starting at `start`, which must end (with an empty line) within
    /// `data`. Values are kept from after the colon up to and including the line break.
    fn headers(data: &[u8], start: usize, root: bool) -> Option<Headers<'_>> {
        let mut h = Headers::default();
        let mut at = start;
        loop {
            let rest = data.get(at..)?;
            if rest.starts_with(b"\n") {
                h.end = at + 1;
                return Some(h);
            }
            if rest.starts_with(b"\r\n") {
                h.end = at + 2;
                return Some(h);
            }
            let name_len = rest
                .iter()
                .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                .count();
            if name_len == 0 || rest.get(name_len) != Some(&b':') {
                return None;
            }
            let name = rest.get(..name_len)?;
            let value_start = at + name_len + 1;
            let value_end = field_end(data, value_start)?;
            let value = data.get(value_start..value_end)?;
            // A `?` is rare in header fields, so this is cheaper than a substring search.
            if memchr::memchr_iter(b'?', value).any(|i| i > 0 && value.get(i - 1) == Some(&b'=')) {
                return None;
            }
            let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
            if is("content-type") {
                set(&mut h.content_type, value)?;
            } else if is("content-transfer-encoding") {
                set(&mut h.transfer_encoding, value)?;
            } else if is("content-disposition") {
                set(&mut h.disposition, value)?;
            } else if is("date") || is("resent-date") {
                if !date_is_one_field(value) {
                    return None;
                }
            } else if root && is("subject") {
                set(&mut h.subject, value)?;
            } else if root && is("tls-report-domain") {
                set(&mut h.report_domain, value)?;
            } else if root && is("tls-report-submitter") {
                set(&mut h.report_submitter, value)?;
            }
            at = value_end;
        }
    }

    /// End (past the line break) of the field value starting at `start`: the first line
    /// break not followed by a space or tab (RFC 5322 §2.2.3 folding).
    fn field_end(data: &[u8], start: usize) -> Option<usize> {
        let mut from = start;
        loop {
            let nl = from + memchr::memchr(b'\n', data.get(from..)?)?;
            match data.get(nl + 1) {
                Some(b' ' | b'\t') => from = nl + 1,
                _ => return Some(nl + 1),
            }
        }
    }

    /// An unstructured value (Subject, Content-Transfer-Encoding) as the full parser reads it:
    /// each line trimmed of spaces, tabs and CRs, the non-empty ones joined by one space;
    /// `None` if all are empty. Encoded words never get here.
    fn unstructured(value: &[u8]) -> Option<String> {
        let mut out = String::new();
        let mut any = false;
        for line in value.split(|&b| b == b'\n') {
            let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r');
            let Some(first) = line.iter().position(|b| !is_ws(b)) else {
                continue;
            };
            let last = line.iter().rposition(|b| !is_ws(b)).unwrap_or(first);
            if any {
                out.push(' ');
            }
            out.push_str(&String::from_utf8_lossy(line.get(first..=last)?));
            any = true;
        }
        any.then_some(out)
    }

    /// [`unstructured`] without allocating for the usual one-line value.
    fn unstructured_value(value: &[u8]) -> Cow<'_, [u8]> {
        let line = value.strip_suffix(b"\n").unwrap_or(value);
        if line.contains(&b'\n') {
            return Cow::Owned(
                unstructured(value)
                    .map(String::into_bytes)
                    .unwrap_or_default(),
            );
        }
        let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r');
        let first = line.iter().position(|b| !is_ws(b)).unwrap_or(line.len());
        let last = line
            .iter()
            .rposition(|b| !is_ws(b))
            .map_or(first, |l| l + 1);
        Cow::Borrowed(line.get(first..last).unwrap_or(&[]))
    }

    /// True if the full parser's Date reading ends this field where [`field_end`] does. It reads
    /// an obsolete zone (RFC 5322 §4.3) by taking the two bytes after its first letter
    /// unseen, which swallows a line break when a zone letter ends a line (`... UT`, `... Z`)
    /// and runs the field into the next one. This follows that reading's state exactly as far
    /// as it decides where a zone letter is taken.
    fn date_is_one_field(value: &[u8]) -> bool {
        const SIZES: [u32; 7] = [2, 2, 4, 2, 2, 2, 4];
        let mut pos = 0usize;
        let mut sizes = SIZES;
        let mut is_new_token = true;
        let mut ignore = true;
        let mut comments = 0u32;
        let mut i = 0;
        while let Some(&ch) = value.get(i) {
            i += 1;
            let mut next_part = false;
            match ch {
                b'\n' => {
                    if matches!(value.get(i), Some(b' ' | b'\t')) {
                        i += 1;
                        if !is_new_token && !ignore && comments == 0 {
                            next_part = true;
                        } else {
                            continue;
                        }
                    } else {
                        return true;
                    }
                }
                _ if comments > 0 => {
                    if ch == b')' {
                        comments -= 1;
                    } else if ch == b'(' {
                        comments += 1;
                    } else if ch == b'\\' && value.get(i) == Some(&b')') {
                        i += 1;
                    }
                    continue;
                }
                b'0'..=b'9' => {
                    if let Some(size) = sizes.get_mut(pos).filter(|s| **s > 0) {
                        *size -= 1;
                        ignore = false;
                    }
                    is_new_token = false;
                }
                b':' if !is_new_token && !ignore && (pos == 3 || pos == 4) => next_part = true,
                b'+' | b'-' => pos = 6,
                b' ' | b'\t' if !is_new_token && !ignore => next_part = true,
                b'a'..=b'z' | b'A'..=b'Z' => {
                    if pos == 6 {
                        // The zone reading takes the next two bytes, whatever they are.
                        match value.get(i..i + 2) {
                            Some(taken) if !taken.contains(&b'\n') => i += 2,
                            _ => return false,
                        }
                        if let Some(size) = sizes.get_mut(6) {
                            *size = 0;
                        }
                        next_part = true;
                    }
                    is_new_token = false;
                }
                b'(' => {
                    comments += 1;
                    is_new_token = true;
                    continue;
                }
                b';' => {
                    pos = 0;
                    sizes = SIZES;
                    is_new_token = true;
                    ignore = true;
                    continue;
                }
                _ => {}
            }
            if next_part {
                pos += 1;
                is_new_token = true;
            }
        }
        false
    }

    /// Bytes of an RFC 2045 §5.1 token the strict parser accepts (no `*` or `'`, which start
    /// RFC 2231 forms in the full parser).
    fn is_token_byte(b: u8) -> bool {
        matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'!' | b'#' | b'$' | b'%' | b'&'
            | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'{' | b'|' | b'}' | b'~')
    }

    /// A Content-Type (or, without `need_subtype`, Content-Disposition) value in the simple
    /// RFC 2045 §5.1 form: `type/subtype` then `; name=token` or `; name="text"`, with white
    /// space and folding only around the `;` separators. `value` ends with its line break.
    fn content_type(value: &[u8], need_subtype: bool) -> Option<ContentType<'_>> {
        let body = value.strip_suffix(b"\n")?;
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        let len = body.len();
        // White space, including folding (a CR only before its LF).
        let skip_ws = |mut i: usize| {
            while let Some(&b) = body.get(i) {
                match b {
                    b' ' | b'\t' | b'\n' => i += 1,
                    b'\r' if body.get(i + 1) == Some(&b'\n') => i += 1,
                    _ => break,
                }
            }
            i
        };
        let token = |i: usize| {
            let n = body
                .get(i..)
                .unwrap_or(&[])
                .iter()
                .take_while(|&&b| is_token_byte(b))
                .count();
            (n > 0).then(|| (body.get(i..i + n).unwrap_or(&[]), i + n))
        };
        let mut i = skip_ws(0);
        let (ctype, next) = token(i)?;
        i = next;
        let subtype = if body.get(i) == Some(&b'/') {
            let (sub, next) = token(i + 1)?;
            i = next;
            Some(sub)
        } else if need_subtype {
            return None;
        } else {
            None
        };
        let mut params: [(&[u8], &[u8]); MAX_PARAMS] = [(&[], &[]); MAX_PARAMS];
        let mut params_len = 0;
        loop {
            i = skip_ws(i);
            if i >= len {
                break;
            }
            if body.get(i) != Some(&b';') {
                return None;
            }
            i = skip_ws(i + 1);
            if i >= len {
                break;
            }
            let (name, next) = token(i)?;
            if body.get(next) != Some(&b'=') {
                return None;
            }
            i = next + 1;
            let value = if body.get(i) == Some(&b'"') {
                let rest = body.get(i + 1..)?;
                let n = rest.iter().position(|&b| b == b'"')?;
                let quoted = rest.get(..n)?;
                if quoted.is_empty() || quoted.iter().any(|b| matches!(b, b'\\' | b'\r' | b'\n')) {
                    return None;
                }
                i += n + 2;
                quoted
            } else {
                let (v, next) = token(i)?;
                i = next;
                v
            };
            *params.get_mut(params_len)? = (name, value);
            params_len += 1;
        }
        Some(ContentType {
            ctype,
            subtype,
            params,
            params_len,
        })
    }
}
