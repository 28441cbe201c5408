//! MTA-STS (RFC 8461) pieces that TLSRPT needs: the `_mta-sts` TXT record, the policy file,
//! and MX pattern matching.
//!
//! Pure, like the rest of core: the caller does the DNS query and the HTTPS fetch.
//!
//! * [`select_record`] / [`parse_record`]: RFC 8461 §3.1 (REQUIREMENTS STS-01). The RRset
//!   rules are the same as for `_smtp._tls`: join the strings of each RR, drop RRs that do not
//!   begin with `v=STSv1`, exactly one must remain, an invalid one means "no policy".
//! * [`parse_policy`]: RFC 8461 §3.2 (STS-02). Returns the [`StsPolicy`], the raw lines as
//!   served (they become the TLSRPT `policy-string`, STS-10) and warnings; or a
//!   [`PolicyError`] naming the line and the problem.
//! * [`mx_matches`]: RFC 8461 §4.1 (STS-04).
//!
//! ```
//! use tlsrpt_core::mtasts::{Mode, mx_matches, parse_policy};
//!
//! let text = "version: STSv1\r\nmode: enforce\r\nmx: *.mail.example\r\nmax_age: 86400\r\n";
//! let parsed = parse_policy(text.as_bytes())?;
//! assert_eq!(parsed.policy.mode, Mode::Enforce);
//! assert!(parsed.policy.covers("mx1.mail.example"));
//! assert!(!mx_matches("*.mail.example", "a.b.mail.example"));
//! assert_eq!(parsed.lines[2], "mx: *.mail.example");
//! # Ok::<(), tlsrpt_core::mtasts::PolicyError>(())
//! ```
//!
//! # Decisions where RFC 8461 is silent or unclear
//!
//! * **`v=STSv1 ;`** (WSP before the first `;`, erratum 6285): the ABNF allows it, a literal
//!   "begins with `v=STSv1;`" test drops it. As for TLSRPT (DNS-05) we accept it, with a
//!   warning.
//! * **Line ends** (erratum 6253): LF and CRLF are both accepted, also mixed; a lone CR inside a
//!   line is a control character and makes the policy invalid. The last line need not be
//!   terminated.
//! * **Blank lines**: the ABNF has none. A line that is empty (or only WSP) is skipped with a
//!   warning rather than rejected: it carries no field, and rejecting a policy for it would
//!   turn a harmless typo into a downgrade. The line still appears in [`ParsedPolicy::lines`].
//! * **Invalid lines** (no `:`, a key outside the ABNF, an empty value) make the policy invalid:
//!   the RFC says a policy that is not syntactically valid is not a policy.
//! * **`max_age`** outside 0..=31557600, or longer than 10 digits, makes the policy invalid.
//! * **`mx` values** are checked with [`crate::domain::normalize`]; upper case or U-labels are
//!   accepted with a warning (the RFC wants A-labels) and matched in normalised form. The text
//!   as written is kept for `mx-host` (STS-10).
//! * **Duplicates** of `version`, `mode`, `max_age` or an extension: the first wins (RFC 8461
//!   §3.2), with a warning.
//! * **Size**: at most [`MAX_POLICY_LEN`] bytes (the RFC's suggested 64 KiB limit, STS-03) and
//!   UTF-8.

use std::fmt;

use crate::Deviation;

/// The largest policy body we accept, in bytes (RFC 8461 §3.3 suggests 64 KiB; STS-03).
pub const MAX_POLICY_LEN: usize = 64 * 1024;

/// The largest `max_age` (RFC 8461 §3.2: "maximum value of 31557600", about one year).
pub const MAX_MAX_AGE: u64 = 31_557_600;

/// The longest joined `_mta-sts` TXT record we parse, in bytes. Real ones are under 100.
pub const MAX_RECORD_LEN: usize = 4096;

/// The policy's well-known path (RFC 8461 §3.2).
pub const POLICY_PATH: &str = "/.well-known/mta-sts.txt";

/// The URL the policy for `domain` is fetched from (RFC 8461 §3.3: host `mta-sts.<domain>`).
pub fn policy_url(domain: &str) -> String {
    format!(
        "https://mta-sts.{}{POLICY_PATH}",
        domain.trim_end_matches('.')
    )
}

// ---------------------------------------------------------------------------------------
// TXT record (RFC 8461 §3.1)
// ---------------------------------------------------------------------------------------

/// A parsed `_mta-sts` TXT record.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StsRecord {
    /// The policy id (1 to 32 letters and digits): changes whenever the policy changes.
    pub id: String,
    /// Other `name=value` fields, in order; RFC 8461 §3.1 says they are ignored.
    pub extensions: Vec<(String, String)>,
}

/// Why an `_mta-sts` TXT record is invalid. Offsets are bytes into the joined text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StsRecordError {
    /// Longer than [`MAX_RECORD_LEN`].
    #[error("the record is {len} bytes, longer than the {MAX_RECORD_LEN}-byte limit (STS-01)")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// Does not start with `v=STSv1` (case-sensitive).
    #[error("at byte 0: the record must begin with \"v=STSv1\" (case-sensitive) (STS-01)")]
    MissingVersion,
    /// A byte outside printable ASCII (other than HTAB as WSP).
    #[error("at byte {offset}: byte 0x{byte:02x} is not allowed in the record (STS-01)")]
    BadByte {
        /// Where.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// A field that is not `name=value` per the ABNF.
    #[error("at byte {offset}: {problem} (STS-01)")]
    BadField {
        /// Where the field starts.
        offset: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// No `id=` field.
    #[error("the record has no id= field (STS-01)")]
    MissingId,
    /// `id=` not 1 to 32 letters/digits.
    #[error("at byte {offset}: id must be 1 to 32 letters and digits (STS-01)")]
    BadId {
        /// Where the value starts.
        offset: usize,
    },
}

impl StsRecordError {
    /// A one-line fix for a postmaster.
    pub fn hint(&self) -> &'static str {
        match self {
            StsRecordError::TooLong { .. } => "publish a short record: v=STSv1; id=20260101T000000",
            StsRecordError::MissingVersion => "start the record with exactly \"v=STSv1;\"",
            StsRecordError::BadByte { .. } => "remove non-ASCII and control characters",
            StsRecordError::BadField { .. } => "write fields as name=value separated by \";\"",
            StsRecordError::MissingId | StsRecordError::BadId { .. } => {
                "add an id of 1 to 32 letters and digits, e.g. id=20260101T000000"
            }
        }
    }
}

/// Why an `_mta-sts` RRset gives no policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoStsRecord {
    /// No RR begins with `v=STSv1`.
    NoRecord,
    /// More than one does (RFC 8461 §3.1: then there is no policy).
    Several {
        /// How many.
        count: usize,
    },
    /// The one that does is invalid.
    Invalid {
        /// The joined text (lossy UTF-8).
        text: String,
        /// Why.
        error: StsRecordError,
    },
}

impl fmt::Display for NoStsRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoStsRecord::NoRecord => {
                write!(f, "no TXT record begins with \"v=STSv1\" (STS-01)")
            }
            NoStsRecord::Several { count } => write!(
                f,
                "{count} TXT records begin with \"v=STSv1\"; exactly one is allowed (STS-01)"
            ),
            NoStsRecord::Invalid { error, .. } => write!(f, "invalid record: {error}"),
        }
    }
}

/// The result of applying RFC 8461 §3.1 to a TXT RRset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StsRecordSelection {
    /// The record, or why there is none.
    pub outcome: Result<(String, StsRecord), NoStsRecord>,
    /// Tolerated departures (e.g. `v=STSv1 ;`).
    pub warnings: Vec<Deviation>,
}

const STS_VERSION: &[u8] = b"v=STSv1";

fn is_wsp(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Does this RR (its character-strings, joined) begin with `v=STSv1` *WSP `;`? Such RRs are
/// the candidates (RFC 8461 §3.1); a record that is only `v=STSv1` (no `;`, so no id) is a
/// candidate too, so that it is reported as invalid rather than ignored.
fn begins_with_sts_version(text: &[u8]) -> bool {
    let Some(rest) = text.strip_prefix(STS_VERSION) else {
        return false;
    };
    rest.iter()
        .copied()
        .find(|&c| !is_wsp(c))
        .is_none_or(|c| c == b';')
}

/// Applies RFC 8461 §3.1 to a TXT RRset (each RR as its character-strings): join, keep the RRs
/// that begin with `v=STSv1`, exactly one must remain and be valid (REQUIREMENTS STS-01).
pub fn select_record<R, S>(rrset: &[R]) -> StsRecordSelection
where
    R: AsRef<[S]>,
    S: AsRef<[u8]>,
{
    let candidates: Vec<Vec<u8>> = rrset
        .iter()
        .map(|rr| {
            rr.as_ref()
                .iter()
                .flat_map(|s| s.as_ref().iter().copied())
                .collect::<Vec<u8>>()
        })
        .filter(|t| begins_with_sts_version(t))
        .collect();
    let mut warnings = Vec::new();
    let outcome = match candidates.as_slice() {
        [] => Err(NoStsRecord::NoRecord),
        [one] => {
            let text = String::from_utf8_lossy(one).into_owned();
            match parse_record_bytes(one) {
                Ok((rec, w)) => {
                    warnings = w;
                    Ok((text, rec))
                }
                Err(error) => Err(NoStsRecord::Invalid { text, error }),
            }
        }
        many => Err(NoStsRecord::Several { count: many.len() }),
    };
    StsRecordSelection { outcome, warnings }
}

/// Parses one `_mta-sts` record text (RFC 8461 §3.1 ABNF).
pub fn parse_record(text: &str) -> Result<StsRecord, StsRecordError> {
    parse_record_bytes(text.as_bytes()).map(|(r, _)| r)
}

/// Parses one record, returning the warnings too.
pub fn parse_record_bytes(text: &[u8]) -> Result<(StsRecord, Vec<Deviation>), StsRecordError> {
    if text.len() > MAX_RECORD_LEN {
        return Err(StsRecordError::TooLong { len: text.len() });
    }
    if let Some((offset, &byte)) = text
        .iter()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_graphic() || is_wsp(**c)))
    {
        return Err(StsRecordError::BadByte { offset, byte });
    }
    let Some(rest) = text.strip_prefix(STS_VERSION) else {
        return Err(StsRecordError::MissingVersion);
    };
    let mut warnings = Vec::new();
    if rest.first().is_some_and(|&c| is_wsp(c)) {
        warnings.push(Deviation::new(
            "byte 7",
            "STS-01",
            "whitespace before the first \";\": allowed by the ABNF but some senders look for \
             \"v=STSv1;\" literally (RFC 8461 erratum 6285); write \"v=STSv1;\"",
        ));
    }
    // After the version: 1*(field-delim field) [field-delim], field-delim = *WSP ";" *WSP.
    let mut id: Option<String> = None;
    let mut extensions: Vec<(String, String)> = Vec::new();
    let mut pos = STS_VERSION.len();
    let len = text.len();
    if rest.iter().all(|&c| is_wsp(c)) {
        return Err(StsRecordError::MissingId);
    }
    loop {
        // Delimiter.
        while pos < len && text.get(pos).is_some_and(|&c| is_wsp(c)) {
            pos += 1;
        }
        if pos >= len {
            break;
        }
        if text.get(pos) != Some(&b';') {
            return Err(StsRecordError::BadField {
                offset: pos,
                problem: "expected \";\" between fields",
            });
        }
        pos += 1;
        while pos < len && text.get(pos).is_some_and(|&c| is_wsp(c)) {
            pos += 1;
        }
        if pos >= len {
            break; // trailing delimiter allowed
        }
        // Field: name "=" value, value has no WSP, ";" or "=".
        let start = pos;
        let field_end = text
            .get(pos..)
            .and_then(|r| r.iter().position(|&c| c == b';' || is_wsp(c)))
            .map_or(len, |p| pos + p);
        let field = text.get(start..field_end).unwrap_or_default();
        let Some(eq) = field.iter().position(|&c| c == b'=') else {
            return Err(StsRecordError::BadField {
                offset: start,
                problem: "a field must be name=value",
            });
        };
        let (name, value) = (
            field.get(..eq).unwrap_or_default(),
            field.get(eq + 1..).unwrap_or_default(),
        );
        let name_ok = name.first().is_some_and(u8::is_ascii_alphanumeric)
            && name.len() <= 32
            && name
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
        if !name_ok {
            return Err(StsRecordError::BadField {
                offset: start,
                problem: "bad field name (letters, digits, _ - . and at most 32 long)",
            });
        }
        if name == b"id" {
            let ok = !value.is_empty()
                && value.len() <= 32
                && value.iter().all(u8::is_ascii_alphanumeric);
            if !ok {
                return Err(StsRecordError::BadId {
                    offset: start + eq + 1,
                });
            }
            if id.is_none() {
                id = Some(String::from_utf8_lossy(value).into_owned());
            } else {
                warnings.push(Deviation::new(
                    format!("byte {start}"),
                    "STS-01",
                    "id= appears twice; the first is used (RFC 8461 §3.1)",
                ));
            }
        } else {
            if value.is_empty() || value.contains(&b'=') {
                return Err(StsRecordError::BadField {
                    offset: start + eq + 1,
                    problem: "an extension value must be non-empty and hold no \"=\"",
                });
            }
            extensions.push((
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            ));
        }
        pos = field_end;
    }
    let id = id.ok_or(StsRecordError::MissingId)?;
    Ok((StsRecord { id, extensions }, warnings))
}

// ---------------------------------------------------------------------------------------
// Policy file (RFC 8461 §3.2)
// ---------------------------------------------------------------------------------------

/// The policy mode (RFC 8461 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Refuse delivery to MXs that fail validation.
    Enforce,
    /// Deliver anyway, but report failures (TLSRPT).
    Testing,
    /// No active policy (STS-11: reported as `no-policy-found`).
    None,
}

impl Mode {
    /// The keyword as written in the policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// One `mx:` value.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MxPattern {
    /// As written in the policy (for the TLSRPT `mx-host`, STS-10).
    pub text: String,
    /// Normalised (lower case, A-labels, no trailing dot), `*.` kept: what [`mx_matches`] uses.
    pub pattern: String,
}

/// A valid MTA-STS policy.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StsPolicy {
    /// The mode.
    pub mode: Mode,
    /// The `mx` patterns, in order.
    pub mx: Vec<MxPattern>,
    /// How long senders may cache the policy, in seconds (0..=[`MAX_MAX_AGE`]).
    pub max_age: u64,
    /// Other keys, in order (ignored by RFC 8461 §3.2; kept for display).
    pub extensions: Vec<(String, String)>,
}

impl StsPolicy {
    /// Does some `mx` pattern match `host` (RFC 8461 §4.1)?
    pub fn covers(&self, host: &str) -> bool {
        self.mx.iter().any(|p| mx_matches(&p.pattern, host))
    }
}

/// A parsed policy with what the TLSRPT report needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedPolicy {
    /// The policy.
    pub policy: StsPolicy,
    /// Every line as served, in order, without terminators, including unknown and blank
    /// lines: the TLSRPT `policy-string` (REQUIREMENTS STS-10). A final empty line after the
    /// last terminator is not a line.
    pub lines: Vec<String>,
    /// Tolerated departures, with the line number as path (`line 3`).
    pub warnings: Vec<Deviation>,
}

/// Why a policy body is invalid. Line numbers are 1-based.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// More than [`MAX_POLICY_LEN`] bytes.
    #[error("the policy is {len} bytes, more than the {MAX_POLICY_LEN}-byte limit (STS-03)")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// Not UTF-8.
    #[error("the policy is not UTF-8 text (invalid byte at offset {offset}) (STS-02)")]
    NotUtf8 {
        /// The first bad byte.
        offset: usize,
    },
    /// A line breaks the `key: value` grammar.
    #[error("line {line}: {problem} (STS-02)")]
    BadLine {
        /// The line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// A required key is absent.
    #[error("the policy has no \"{key}:\" line (STS-02)")]
    Missing {
        /// `version`, `mode`, `max_age` or `mx`.
        key: &'static str,
    },
}

impl PolicyError {
    /// A one-line fix for a postmaster.
    pub fn hint(&self) -> String {
        match self {
            PolicyError::TooLong { .. } => "serve a policy of a few hundred bytes".into(),
            PolicyError::NotUtf8 { .. } => "serve the policy as plain ASCII text".into(),
            PolicyError::BadLine { .. } => "every line must be \"key: value\", e.g. \
                                           \"mode: testing\"; see RFC 8461 §3.2"
                .into(),
            PolicyError::Missing { key: "mx" } => {
                "add one \"mx: <host or *.domain>\" line per MX host".into()
            }
            PolicyError::Missing { key } => format!(
                "add a \"{key}:\" line; a minimal policy is: version: STSv1 / mode: testing / \
                 mx: mail.example.com / max_age: 86400"
            ),
        }
    }
}

/// Parses a policy body (RFC 8461 §3.2; REQUIREMENTS STS-02). See the module docs for the
/// decisions taken where the RFC is loose.
pub fn parse_policy(body: &[u8]) -> Result<ParsedPolicy, PolicyError> {
    if body.len() > MAX_POLICY_LEN {
        return Err(PolicyError::TooLong { len: body.len() });
    }
    let text = std::str::from_utf8(body).map_err(|e| PolicyError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    // Erratum 6253: LF or CRLF. A final terminator does not start a new line.
    let mut raw: Vec<&str> = text.split('\n').collect();
    if raw.last().is_some_and(|l| l.is_empty()) {
        raw.pop();
    }
    let lines: Vec<String> = raw
        .iter()
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect();

    let mut version: Option<String> = None;
    let mut mode: Option<Mode> = None;
    let mut max_age: Option<u64> = None;
    let mut mx: Vec<MxPattern> = Vec::new();
    let mut extensions: Vec<(String, String)> = Vec::new();
    let mut warnings = Vec::new();

    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let bad = |problem: String| PolicyError::BadLine { line: n, problem };
        if let Some(c) = line.chars().find(|&c| c.is_control() && c != '\t') {
            return Err(bad(format!(
                "control character U+{:04X} in the line",
                u32::from(c)
            )));
        }
        if line.trim_matches([' ', '\t']).is_empty() {
            warnings.push(Deviation::new(
                format!("line {n}"),
                "STS-02",
                "blank line ignored (the RFC 8461 grammar has none)",
            ));
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(bad(format!("no \":\" in {line:?}")));
        };
        let key_ok = key.len() <= 32
            && key
                .bytes()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && key
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
        if !key_ok {
            return Err(bad(format!(
                "{key:?} is not a valid key (letters, digits, _ - ., at most 32, no spaces)"
            )));
        }
        // field-delim = ":" *WSP; the field may be followed by *WSP.
        let value = value.trim_matches([' ', '\t']);
        if value.is_empty() {
            return Err(bad(format!("\"{key}:\" has no value")));
        }
        let dup = |warnings: &mut Vec<Deviation>| {
            warnings.push(Deviation::new(
                format!("line {n}"),
                "STS-02",
                format!("\"{key}\" repeated; the first one is used (RFC 8461 §3.2)"),
            ));
        };
        match key {
            "version" => {
                if version.is_some() {
                    dup(&mut warnings);
                    continue;
                }
                if value != "STSv1" {
                    return Err(bad(format!(
                        "version is {value:?}; it must be \"STSv1\" (case-sensitive)"
                    )));
                }
                version = Some(value.to_string());
            }
            "mode" => {
                if mode.is_some() {
                    dup(&mut warnings);
                    continue;
                }
                mode = Some(match value {
                    "enforce" => Mode::Enforce,
                    "testing" => Mode::Testing,
                    "none" => Mode::None,
                    other => {
                        return Err(bad(format!(
                            "mode is {other:?}; it must be enforce, testing or none \
                             (lower case)"
                        )));
                    }
                });
            }
            "max_age" => {
                if max_age.is_some() {
                    dup(&mut warnings);
                    continue;
                }
                if value.is_empty()
                    || value.len() > 10
                    || !value.bytes().all(|c| c.is_ascii_digit())
                {
                    return Err(bad(format!(
                        "max_age is {value:?}; it must be 1 to 10 digits (seconds)"
                    )));
                }
                let v: u64 = value
                    .parse()
                    .map_err(|_| bad(format!("max_age {value:?} is not a number")))?;
                if v > MAX_MAX_AGE {
                    return Err(bad(format!(
                        "max_age {v} is more than the maximum {MAX_MAX_AGE} (about one year)"
                    )));
                }
                max_age = Some(v);
            }
            "mx" => {
                let (wild, host) = match value.strip_prefix("*.") {
                    Some(h) => (true, h),
                    None => (false, value),
                };
                let norm = crate::domain::normalize(host)
                    .map_err(|e| bad(format!("mx {value:?} is not a domain name: {e}")))?;
                if norm.contains('*') || norm.contains('_') {
                    return Err(bad(format!(
                        "mx {value:?}: only a leading \"*.\" wildcard is allowed"
                    )));
                }
                if norm != host {
                    warnings.push(Deviation::new(
                        format!("line {n}"),
                        "STS-02",
                        format!(
                            "mx {value:?} is not in lower-case A-label form; matched as \"{}{norm}\"",
                            if wild { "*." } else { "" }
                        ),
                    ));
                }
                mx.push(MxPattern {
                    text: value.to_string(),
                    pattern: if wild { format!("*.{norm}") } else { norm },
                });
            }
            _ => {
                if extensions.iter().any(|(k, _)| k == key) {
                    dup(&mut warnings);
                    continue;
                }
                extensions.push((key.to_string(), value.to_string()));
            }
        }
    }
    if version.is_none() {
        return Err(PolicyError::Missing { key: "version" });
    }
    let mode = mode.ok_or(PolicyError::Missing { key: "mode" })?;
    let max_age = max_age.ok_or(PolicyError::Missing { key: "max_age" })?;
    if mx.is_empty() && mode != Mode::None {
        return Err(PolicyError::Missing { key: "mx" });
    }
    Ok(ParsedPolicy {
        policy: StsPolicy {
            mode,
            mx,
            max_age,
            extensions,
        },
        lines,
        warnings,
    })
}

/// RFC 8461 §4.1 (REQUIREMENTS STS-04): does the `mx` pattern match the MX host? Both are
/// compared case-insensitively without a trailing dot; `*.example.com` matches exactly one
/// extra left-most label (`mail.example.com`, not `example.com` nor `a.b.example.com`).
pub fn mx_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return false;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => match host.split_once('.') {
            Some((label, rest)) => !label.is_empty() && !suffix.is_empty() && rest == suffix,
            None => false,
        },
        None => pattern == host,
    }
}
