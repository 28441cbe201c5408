//! Names around a report: the RFC 8460 §5.1 attachment filename, the §5.3 Subject line and a
//! globally unique `report-id`.
//!
//! Building is strict: what we emit follows the ABNF exactly, in A-labels (REQUIREMENTS RPT-16).
//! Parsing is lenient and only ever yields a *hint*: the JSON body is authoritative
//! (REQUIREMENTS DLV-06, RCV-05), so a parsed filename or Subject is used to cross-check the body
//! and to raise deviations, never as data, and a parsed filename is never used as a path.

use std::fmt;

use jiff::Timestamp;
use jiff::civil::Date;

use crate::deviation::Deviation;
use crate::report::DateRange;

/// Longest filename [`parse_filename`] looks at. Real ones are under 200 characters
/// (Mimecast's 64-hex unique-id is the longest seen); two domains of 253 plus the rest fit.
pub const MAX_FILENAME_LEN: usize = 1024;

/// Longest Subject [`parse_subject`] looks at (RFC 5322 caps a line at 998 octets; a folded
/// Subject can be longer, but a real §5.3 Subject is well under this).
pub const MAX_SUBJECT_LEN: usize = 2048;

/// Seconds from a day's `00:00:00Z` to its `23:59:59Z` (REQUIREMENTS MAIL-09).
pub const DAY_END_OFFSET: i64 = 86_399;

/// Why a name could not be built or parsed. Every variant names the part of the name at fault
/// (`sender`, `policy-domain`, `begin-timestamp`, `Report-ID`, ...) so the message can be acted on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NamingError {
    /// A domain part is not a usable domain name.
    #[error("{part}: {value:?} is not a valid domain name: {problem}")]
    Domain {
        /// Which part of the name (`sender`, `policy-domain`, `Domain`, `Submitter`).
        part: &'static str,
        /// The offending value, shortened to 64 characters.
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A unique token is empty or has a character other than an ASCII letter or digit
    /// (REQUIREMENTS MAIL-10).
    #[error("{part}: {value:?} must be one or more ASCII letters and digits (RFC 8460 §5.1)")]
    NotAlphanumeric {
        /// `unique-id` or `unique token`.
        part: &'static str,
        /// The offending value, shortened to 64 characters.
        value: String,
    },
    /// A structural problem: wrong number of fields, missing keyword, bad timestamp, too long.
    #[error("{part}: {problem}")]
    Malformed {
        /// Which part of the name.
        part: &'static str,
        /// What is wrong, with the offending text where useful.
        problem: String,
    },
}

/// An RFC 8460 §5.1 filename: `sender!policy-domain!begin!end[!unique-id].json[.gz]`
/// (REQUIREMENTS MAIL-08). `Display` writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportFilename {
    /// `sender`: the domain of `contact-info`, in A-labels.
    pub sender: String,
    /// `policy-domain`, in A-labels.
    pub policy_domain: String,
    /// `begin-timestamp`: Unix seconds of `start-datetime`.
    pub begin: i64,
    /// `end-timestamp`: Unix seconds of `end-datetime`.
    pub end: i64,
    /// `unique-id`: tells apart reports made at the same time by several sources for one policy
    /// domain (REQUIREMENTS MAIL-10). Alphanumeric when built by us; kept as sent when parsed.
    pub unique_id: Option<String>,
    /// Extension `json.gz` (true) or `json` (false) (REQUIREMENTS MAIL-09).
    pub gzip: bool,
}

impl ReportFilename {
    /// The filename for a report covering `range`. Domains are converted to A-labels
    /// (REQUIREMENTS RPT-16); `unique_id` must be alphanumeric (REQUIREMENTS MAIL-10).
    pub fn new(
        sender: &str,
        policy_domain: &str,
        range: DateRange,
        unique_id: Option<&str>,
        gzip: bool,
    ) -> Result<Self, NamingError> {
        let sender = a_label_domain("sender", sender)?.0;
        let policy_domain = a_label_domain("policy-domain", policy_domain)?.0;
        if let Some(id) = unique_id {
            check_alphanumeric("unique-id", id)?;
        }
        let (begin, end) = (range.start.as_second(), range.end.as_second());
        if end < begin {
            return Err(NamingError::Malformed {
                part: "end-timestamp",
                problem: format!("end {end} is before begin {begin}"),
            });
        }
        Ok(ReportFilename {
            sender,
            policy_domain,
            begin,
            end,
            unique_id: unique_id.map(str::to_owned),
            gzip,
        })
    }

    /// The filename for a report covering the UTC day `day`: begin is `00:00:00Z` and end is
    /// begin + 86399, matching `end-datetime` `23:59:59Z` (REQUIREMENTS MAIL-09, JSON-12).
    pub fn for_day(
        sender: &str,
        policy_domain: &str,
        day: Date,
        unique_id: Option<&str>,
        gzip: bool,
    ) -> Result<Self, NamingError> {
        let range = DateRange::utc_day(day);
        Self::new(sender, policy_domain, range, unique_id, gzip)
    }

    /// The period the filename claims, for cross-checking against the JSON `date-range`.
    /// `None` if a timestamp is outside the representable range.
    pub fn date_range(&self) -> Option<DateRange> {
        Some(DateRange {
            start: Timestamp::from_second(self.begin).ok()?,
            end: Timestamp::from_second(self.end).ok()?,
        })
    }
}

impl fmt::Display for ReportFilename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}!{}!{}!{}",
            self.sender, self.policy_domain, self.begin, self.end
        )?;
        if let Some(id) = &self.unique_id {
            write!(f, "!{id}")?;
        }
        f.write_str(if self.gzip { ".json.gz" } else { ".json" })
    }
}

/// A filename read leniently, with what it got wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedFilename {
    /// The fields. A hint only: never a path, never data (REQUIREMENTS RCV-05).
    pub filename: ReportFilename,
    /// Tolerated departures from §5.1 (U-labels, `.gz` extension, non-alphanumeric unique-id,
    /// directory components, end before begin).
    pub deviations: Vec<Deviation>,
}

/// Reads an attachment filename leniently (REQUIREMENTS MAIL-08..10).
///
/// Tolerated with a deviation: directory components (dropped, RCV-05), a bare `.gz` extension,
/// upper-case extension, U-label domains (converted, RPT-16), a unique-id that is empty or not
/// alphanumeric (MAIL-10), end before begin. Refused with an error naming the part: wrong number
/// of `!`-separated fields, an unknown extension, a part that is not a domain, a timestamp that is
/// not 1*DIGIT or is out of range, and names over [`MAX_FILENAME_LEN`].
pub fn parse_filename(name: &str) -> Result<ParsedFilename, NamingError> {
    const PATH: &str = "filename";
    if name.len() > MAX_FILENAME_LEN {
        return Err(NamingError::Malformed {
            part: "filename",
            problem: format!(
                "{} bytes is longer than the {MAX_FILENAME_LEN}-byte limit",
                name.len()
            ),
        });
    }
    let mut deviations = Vec::new();
    // REQUIREMENTS RCV-05: the name is never a path. Keep only the last component so a hostile
    // `../../x` can at worst fail to parse.
    let base = match name.rfind(['/', '\\']) {
        Some(i) => {
            deviations.push(Deviation::new(
                PATH,
                "RCV-05",
                format!(
                    "filename {:?} has directory components; they were ignored",
                    short(name)
                ),
            ));
            name.get(i + 1..).unwrap_or("")
        }
        None => name,
    };
    let lower = base.to_ascii_lowercase();
    let (stem_len, gzip) = if lower.ends_with(".json.gz") {
        (base.len() - ".json.gz".len(), true)
    } else if lower.ends_with(".json") {
        (base.len() - ".json".len(), false)
    } else if lower.ends_with(".gz") {
        deviations.push(Deviation::new(
            PATH,
            "MAIL-09",
            "extension is .gz, not .json.gz; read as gzip-compressed JSON",
        ));
        (base.len() - ".gz".len(), true)
    } else {
        return Err(NamingError::Malformed {
            part: "extension",
            problem: format!(
                "{:?} does not end in .json or .json.gz (RFC 8460 §5.1)",
                short(base)
            ),
        });
    };
    let ext = base.get(stem_len..).unwrap_or("");
    if ext.bytes().any(|b| b.is_ascii_uppercase()) {
        deviations.push(Deviation::new(
            PATH,
            "MAIL-09",
            format!("extension {ext:?} is not lower case"),
        ));
    }
    let stem = base.get(..stem_len).unwrap_or("");
    let fields: Vec<&str> = stem.split('!').collect();
    let (sender, policy_domain, begin, end, unique_id) = match fields.as_slice() {
        [s, p, b, e] => (*s, *p, *b, *e, None),
        [s, p, b, e, u] => (*s, *p, *b, *e, Some(*u)),
        _ => {
            return Err(NamingError::Malformed {
                part: "filename",
                problem: format!(
                    "{:?} has {} '!'-separated fields; expected sender!policy-domain!begin!end[!unique-id]",
                    short(stem),
                    fields.len()
                ),
            });
        }
    };
    let (sender, sender_ulabel) = a_label_domain("sender", sender)?;
    let (policy_domain, pd_ulabel) = a_label_domain("policy-domain", policy_domain)?;
    for (part, was_ulabel) in [("sender", sender_ulabel), ("policy-domain", pd_ulabel)] {
        if was_ulabel {
            deviations.push(Deviation::new(
                format!("filename:{part}"),
                "RPT-16",
                format!("{part} is not in A-label form; converted"),
            ));
        }
    }
    let begin = parse_timestamp("begin-timestamp", begin)?;
    let end = parse_timestamp("end-timestamp", end)?;
    if end < begin {
        deviations.push(Deviation::new(
            "filename:end-timestamp",
            "MAIL-08",
            format!("end-timestamp {end} is before begin-timestamp {begin}"),
        ));
    }
    let unique_id = match unique_id {
        Some("") => {
            deviations.push(Deviation::new(
                "filename:unique-id",
                "MAIL-10",
                "empty unique-id after '!'; ignored",
            ));
            None
        }
        Some(u) => {
            if check_alphanumeric("unique-id", u).is_err() {
                deviations.push(Deviation::new(
                    "filename:unique-id",
                    "MAIL-10",
                    format!("unique-id {:?} is not alphanumeric; kept as sent", short(u)),
                ));
            }
            Some(u.to_owned())
        }
        None => None,
    };
    Ok(ParsedFilename {
        filename: ReportFilename {
            sender,
            policy_domain,
            begin,
            end,
            unique_id,
            gzip,
        },
        deviations,
    })
}

/// The RFC 8460 §5.3 Subject: `Report Domain: <policy-domain> Submitter: <submitter>
/// Report-ID: <<report-id>>` (REQUIREMENTS MAIL-07). `Display` writes it on one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportSubject {
    /// The policy domain, in A-labels.
    pub policy_domain: String,
    /// The submitter (reporting) domain, in A-labels.
    pub submitter: String,
    /// The Report-ID without angle brackets; msg-id shaped (`id-left "@" id-right`).
    pub report_id: String,
}

impl ReportSubject {
    /// A Subject for the given domains and report-id. The report-id must be msg-id shaped
    /// ([`is_msg_id`]), as [`report_id`] builds it (REQUIREMENTS JSON-14, MAIL-07).
    pub fn new(policy_domain: &str, submitter: &str, report_id: &str) -> Result<Self, NamingError> {
        let policy_domain = a_label_domain("Domain", policy_domain)?.0;
        let submitter = a_label_domain("Submitter", submitter)?.0;
        if !is_msg_id(report_id) {
            return Err(NamingError::Malformed {
                part: "Report-ID",
                problem: format!(
                    "{:?} is not id-left \"@\" id-right (RFC 5322 msg-id)",
                    short(report_id)
                ),
            });
        }
        Ok(ReportSubject {
            policy_domain,
            submitter,
            report_id: report_id.to_owned(),
        })
    }
}

impl fmt::Display for ReportSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Report Domain: {} Submitter: {} Report-ID: <{}>",
            self.policy_domain, self.submitter, self.report_id
        )
    }
}

/// A Subject read leniently. For cross-checking only (REQUIREMENTS MAIL-07: never parse the
/// Subject for data; DLV-06: the JSON wins).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedSubject {
    /// The fields; `report_id` has its angle brackets removed.
    pub subject: ReportSubject,
    /// Tolerated departures from the §5.3 ABNF.
    pub deviations: Vec<Deviation>,
}

/// Reads a Subject leniently (REQUIREMENTS MAIL-07).
///
/// Folding (CRLF + WSP) and runs of whitespace are accepted as FWS. Tolerated with a deviation:
/// text before `Report` (e.g. a `[SPAM]` tag), keywords in the wrong case (the ABNF uses `%s`,
/// case-sensitive), a Report-ID without angle brackets (Microsoft), a Report-ID that is not
/// msg-id shaped, U-label domains, trailing text that is not a comment. Refused with an error
/// naming the part: a missing keyword or value, a value that is not a domain, over
/// [`MAX_SUBJECT_LEN`].
pub fn parse_subject(subject: &str) -> Result<ParsedSubject, NamingError> {
    const PATH: &str = "header:Subject";
    if subject.len() > MAX_SUBJECT_LEN {
        return Err(NamingError::Malformed {
            part: "Subject",
            problem: format!(
                "{} bytes is longer than the {MAX_SUBJECT_LEN}-byte limit",
                subject.len()
            ),
        });
    }
    let mut deviations = Vec::new();
    // FWS: CRLF folding and any run of WSP are one separator; `split_whitespace` does both.
    let tokens: Vec<&str> = subject.split_whitespace().collect();
    let start = tokens
        .windows(2)
        .position(|w| {
            matches!(w, [r, d] if r.eq_ignore_ascii_case("Report")
                && d.get(..7).is_some_and(|k| k.eq_ignore_ascii_case("Domain:")))
        })
        .ok_or_else(|| NamingError::Malformed {
            part: "Subject",
            problem: format!("{:?} has no \"Report Domain:\"", short(subject)),
        })?;
    if start > 0 {
        deviations.push(Deviation::new(
            PATH,
            "MAIL-07",
            "text before \"Report Domain:\" ignored",
        ));
    }
    if tokens.get(start) != Some(&"Report") {
        deviations.push(Deviation::new(
            PATH,
            "MAIL-07",
            "keyword \"Report\" is not in the case the ABNF requires",
        ));
    }
    let mut cursor = Cursor {
        tokens: &tokens,
        pos: start + 1,
        deviations: &mut deviations,
    };
    let policy_domain = cursor.field("Domain:")?;
    let submitter = cursor.field("Submitter:")?;
    let raw_id = cursor.field("Report-ID:")?;
    let rest = tokens.get(cursor.pos..).unwrap_or(&[]);
    let (policy_domain, pd_ulabel) = a_label_domain("Domain", policy_domain)?;
    let (submitter, sub_ulabel) = a_label_domain("Submitter", submitter)?;
    if pd_ulabel || sub_ulabel {
        deviations.push(Deviation::new(
            PATH,
            "RPT-16",
            "a domain is not in A-label form; converted",
        ));
    }
    let report_id = match (raw_id.strip_prefix('<'), raw_id.ends_with('>')) {
        (Some(inner), true) => inner.strip_suffix('>').unwrap_or(inner).to_owned(),
        (inner, _) => {
            deviations.push(Deviation::new(
                PATH,
                "MAIL-07",
                format!(
                    "Report-ID {:?} is not enclosed in angle brackets",
                    short(raw_id)
                ),
            ));
            inner.unwrap_or(raw_id).trim_end_matches('>').to_owned()
        }
    };
    if !is_msg_id(&report_id) {
        deviations.push(Deviation::new(
            PATH,
            "MAIL-07",
            format!(
                "Report-ID {:?} is not id-left \"@\" id-right",
                short(&report_id)
            ),
        ));
    }
    // [CFWS]: only a comment may follow.
    let trailing = rest.join(" ");
    let is_comment = trailing.starts_with('(') && trailing.ends_with(')');
    if !trailing.is_empty() && !is_comment {
        deviations.push(Deviation::new(
            PATH,
            "MAIL-07",
            format!(
                "trailing text {:?} after Report-ID ignored",
                short(&trailing)
            ),
        ));
    }
    Ok(ParsedSubject {
        subject: ReportSubject {
            policy_domain,
            submitter,
            report_id,
        },
        deviations,
    })
}

/// Walks the Subject's tokens, taking `Keyword: value` pairs.
struct Cursor<'a, 'd> {
    tokens: &'a [&'a str],
    pos: usize,
    deviations: &'d mut Vec<Deviation>,
}

impl<'a> Cursor<'a, '_> {
    /// Takes `keyword` (case-insensitively, with a deviation if the case differs) and its value,
    /// which may be glued to the keyword (`Domain:example.net`) or the next token.
    fn field(&mut self, keyword: &'static str) -> Result<&'a str, NamingError> {
        let part = keyword.trim_end_matches(':');
        let token = self
            .tokens
            .get(self.pos)
            .copied()
            .ok_or_else(|| NamingError::Malformed {
                part,
                problem: format!("\"{keyword}\" is missing"),
            })?;
        let head = token
            .get(..keyword.len())
            .filter(|h| h.eq_ignore_ascii_case(keyword));
        let Some(head) = head else {
            return Err(NamingError::Malformed {
                part,
                problem: format!("expected \"{keyword}\", found {:?}", short(token)),
            });
        };
        if head != keyword {
            self.deviations.push(Deviation::new(
                "header:Subject",
                "MAIL-07",
                format!("keyword {head:?} is not in the case the ABNF requires ({keyword:?})"),
            ));
        }
        self.pos += 1;
        let glued = token.get(keyword.len()..).unwrap_or("");
        if !glued.is_empty() {
            self.deviations.push(Deviation::new(
                "header:Subject",
                "MAIL-07",
                format!("no whitespace after \"{keyword}\""),
            ));
            return Ok(glued);
        }
        let value = self
            .tokens
            .get(self.pos)
            .copied()
            .ok_or_else(|| NamingError::Malformed {
                part,
                problem: format!("no value after \"{keyword}\""),
            })?;
        self.pos += 1;
        Ok(value)
    }
}

/// A globally unique, msg-id-shaped report-id (REQUIREMENTS JSON-14):
/// `<YYYYMMDD>T000000Z.<policy-domain>.<unique>@<submitter>`, e.g.
/// `20250314T000000Z.recipient.example.4f2a91@sender.example`.
///
/// Unique because the submitter domain scopes it, the day and policy domain identify the report,
/// and the caller's `unique` token (alphanumeric, e.g. a random or per-instance value) tells apart
/// several reporting instances or re-runs. It is valid as `id-left "@" id-right`, so the Subject
/// can carry the same value as `Report-ID: <...>` (MAIL-07). Pure: same input, same id.
pub fn report_id(
    day: Date,
    policy_domain: &str,
    submitter: &str,
    unique: &str,
) -> Result<String, NamingError> {
    let policy_domain = a_label_domain("policy-domain", policy_domain)?.0;
    let submitter = a_label_domain("submitter", submitter)?.0;
    check_alphanumeric("unique token", unique)?;
    if !(1..=9999).contains(&day.year()) {
        return Err(NamingError::Malformed {
            part: "day",
            problem: format!("year {} is outside 0001..9999", day.year()),
        });
    }
    Ok(format!(
        "{:04}{:02}{:02}T000000Z.{policy_domain}.{unique}@{submitter}",
        day.year(),
        day.month(),
        day.day()
    ))
}

/// True if `s` is an RFC 5322 msg-id body without the angle brackets:
/// `dot-atom-text "@" (dot-atom-text / no-fold-literal)`. Receivers never require this of a
/// JSON report-id (REQUIREMENTS JSON-14); it is checked on what we build and noted on Subjects.
pub fn is_msg_id(s: &str) -> bool {
    let Some((left, right)) = s.rsplit_once('@') else {
        return false;
    };
    let literal = right
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .is_some_and(|inner| {
            inner
                .bytes()
                .all(|b| (33..=126).contains(&b) && b != b'[' && b != b']' && b != b'\\')
        });
    is_dot_atom_text(left) && (is_dot_atom_text(right) || literal)
}

/// RFC 5322 §3.2.3 `dot-atom-text = 1*atext *("." 1*atext)`.
fn is_dot_atom_text(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
        })
}

/// The reporting domain that `contact-info` names: the domain of its addr-spec, in lower-case
/// A-labels. `TLS-Report-Submitter` MUST equal it (RFC 8460 §5.3, REQUIREMENTS MAIL-05,
/// JSON-13), the §5.1 filename's `sender` is it, and a DKIM `d=` must align with it (RCV-01).
/// Real senders also write a `mailto:` URI, a URL or a bare domain there; those give their host.
/// `None` when no valid domain can be found.
///
/// ```
/// use tlsrpt_core::naming::contact_domain;
/// assert_eq!(contact_domain("smtp-tls-reporting@Google.COM").as_deref(), Some("google.com"));
/// assert_eq!(contact_domain("mailto:tls@example.org").as_deref(), Some("example.org"));
/// assert_eq!(contact_domain("https://reports.example.net/tlsrpt").as_deref(), Some("reports.example.net"));
/// assert_eq!(contact_domain("call us maybe"), None);
/// ```
pub fn contact_domain(contact_info: &str) -> Option<String> {
    let c = contact_info.trim();
    let c = match c.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("mailto:") => &c[7..],
        _ => c,
    };
    let host = if let Some((_, domain)) = c.rsplit_once('@') {
        domain.trim_end_matches('>')
    } else if let Some((_, rest)) = c.split_once("://") {
        rest.split(['/', '?', '#', ':']).next().unwrap_or("")
    } else {
        c
    };
    crate::domain::normalize(host.trim()).ok()
}

/// Converts a domain to lower-case A-labels and checks it is a host name (LDH labels of 1..63
/// octets, 253 in all; a trailing dot is dropped). Returns whether the input had U-labels.
pub(crate) fn a_label_domain(
    part: &'static str,
    value: &str,
) -> Result<(String, bool), NamingError> {
    let err = |problem| NamingError::Domain {
        part,
        value: short(value).to_owned(),
        problem,
    };
    let trimmed = value.strip_suffix('.').unwrap_or(value);
    if trimmed.is_empty() {
        return Err(err("empty"));
    }
    if trimmed.len() > 253 * 4 {
        return Err(err("longer than 253 octets"));
    }
    let ascii = idna::domain_to_ascii(trimmed).map_err(|_| err("IDNA conversion failed"))?;
    if ascii.len() > 253 {
        return Err(err("longer than 253 octets"));
    }
    for label in ascii.split('.') {
        if label.is_empty() {
            return Err(err("empty label"));
        }
        if label.len() > 63 {
            return Err(err("label longer than 63 octets"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(err(
                "label has a character other than letter, digit, hyphen",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(err("label starts or ends with a hyphen"));
        }
    }
    let had_ulabels = !trimmed.is_ascii();
    Ok((ascii, had_ulabels))
}

fn check_alphanumeric(part: &'static str, value: &str) -> Result<(), NamingError> {
    // REQUIREMENTS MAIL-10: unique-id = 1*(ALPHA / DIGIT); no hyphen, dot or underscore.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(NamingError::NotAlphanumeric {
            part,
            value: short(value).to_owned(),
        });
    }
    Ok(())
}

fn parse_timestamp(part: &'static str, value: &str) -> Result<i64, NamingError> {
    // RFC 8460 §5.1: 1*DIGIT, Unix seconds.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NamingError::Malformed {
            part,
            problem: format!("{:?} is not a decimal number of seconds", short(value)),
        });
    }
    let secs: i64 = value.parse().map_err(|_| NamingError::Malformed {
        part,
        problem: format!("{:?} is too large", short(value)),
    })?;
    Timestamp::from_second(secs).map_err(|_| NamingError::Malformed {
        part,
        problem: format!("{secs} is outside the representable time range"),
    })?;
    Ok(secs)
}

/// At most 64 characters of `s`, cut on a character boundary, for error messages.
pub(crate) fn short(s: &str) -> &str {
    if s.len() <= 64 {
        // At most 64 bytes is at most 64 characters: nothing to cut (the common case).
        return s;
    }
    match s.char_indices().nth(64) {
        Some((i, _)) => s.get(..i).unwrap_or(s),
        None => s,
    }
}
