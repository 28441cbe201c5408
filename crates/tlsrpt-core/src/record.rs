//! The `_smtp._tls` TXT record: parse, select from an RRset, format (RFC 8460 §3).
//!
//! Everything here is pure: the caller does the DNS query and hands over the TXT RRset as
//! raw character-strings. The pieces:
//!
//! * [`select`]: applies the RRset rules (join strings, drop non-TLSRPT RRs, exactly one must
//!   remain, an invalid one means "no TLSRPT") and returns a [`Selection`].
//! * [`parse_record`] / [`parse_record_bytes`]: the exact RFC 8460 §3 ABNF for one record
//!   text, returning the record plus warnings, or a [`RecordError`] that names the byte offset
//!   and the rule broken, so a postmaster can find the mistake.
//! * [`TlsrptRecord::to_canonical_string`]: the only way we emit a record; it writes the
//!   most interoperable form and re-parses it, so we never publish something we would reject.
//! * [`split_presentation`] / [`to_presentation`]: DNS presentation form (`"abc" "def"`, as
//!   dig prints it) to character-strings and back, for the CLI and for tests.
//!
//! ```
//! use tlsrpt_core::record::{Outcome, select, split_presentation};
//!
//! // The RRset as dig prints it: an SPF record and a TLSRPT record split in two strings.
//! let rrset = vec![
//!     split_presentation(r#""v=spf1 -all""#)?,
//!     split_presentation(r#""v=TLSRPTv1; rua=mailto:tls@exa" "mple.net""#)?,
//! ];
//! let selection = select(&rrset);
//! let record = selection.record().expect("one valid record");
//! let rua: Vec<&str> = record.usable_rua().map(|u| u.as_str()).collect();
//! assert_eq!(rua, ["mailto:tls@example.net"]);
//! assert!(matches!(selection.outcome, Outcome::Found { .. }));
//!
//! // An invalid record names the byte and the rule.
//! let err = tlsrpt_core::record::parse_record("v=TLSRPTv1; rua=mailto:a@b.example!10m")
//!     .unwrap_err();
//! assert_eq!(err.offset(), 34);
//! assert_eq!(err.rule(), "DNS-09");
//! # Ok::<(), tlsrpt_core::record::RecordError>(())
//! ```
//!
//! # Decisions where the RFC is silent (REQUIREMENTS §15 items 2 and 3, and others)
//!
//! * **DNS-05** (`v=TLSRPTv1 ;`, WSP before the first `;`): the ABNF allows it but a literal
//!   "begins with `v=TLSRPTv1;`" test drops it. We accept it in [`select`] and in the parser,
//!   like mox, and attach a warning; the formatter never writes it.
//! * **DNS-12** (`rua=` more than once): the URIs of all `rua=` fields are joined in order of
//!   appearance (duplicates kept) and a warning is attached. The formatter writes one `rua=`.
//! * **DNS-10** (schemes other than `mailto`/`https`, including `http`): the URI is kept in the
//!   parsed record as [`ReportingUri::Unsupported`] with a warning. A record whose URIs are all
//!   unsupported is syntactically valid but yields [`Outcome::NothingToSend`], a distinct
//!   outcome from "no TLSRPT".
//! * **DNS-11** (`mailto:`): the scheme is case-insensitive and stored in lower case; the
//!   addr-spec (the part before `?`) is percent-decoded and `?hfields` are ignored. A `mailto:`
//!   URI whose decoded addr-spec is empty, has no `@`, holds a `,` (several addresses, which
//!   the RFC leaves open) or is not UTF-8 makes the record invalid: we reject it rather than
//!   guess which addresses were meant.
//! * **`https:`** must have a non-empty authority (`https://host...`); otherwise the record is
//!   invalid, because there is nowhere to POST to.
//! * **URI syntax**: we check the RFC 3986 scheme grammar, the RFC 3986 character repertoire and
//!   `%XX` escapes, plus the RFC 8460 rule that `!` be encoded (`,` and `;` cannot appear
//!   unencoded because they delimit). We do not validate the full hier-part structure.
//! * **Trailing WSP** without a `;` is invalid, as the ABNF says (`[field-delim]` needs the `;`).
//! * **Encoding**: the grammar is ASCII; any byte ≥ 0x80 or control character (other than HTAB
//!   as WSP) makes the record invalid. These are reported before grammar errors.
//! * **DNS-22 limits**: a record is at most [`MAX_RECORD_LEN`] bytes once joined, each
//!   character-string at most [`MAX_CHARACTER_STRING`] octets, and only the first
//!   [`MAX_USABLE_RUA`] usable URIs are acted on (the rest are kept in the record and warned
//!   about).
//! * **Unknown extensions** (DNS-15) are kept in [`TlsrptRecord::extensions`] and otherwise
//!   ignored, with no warning: they are legal.

use std::fmt;

use crate::Deviation;

/// The longest joined record text we parse, in bytes (REQUIREMENTS DNS-22). Real records are
/// well under 300 bytes; the cap only keeps hostile input cheap.
pub const MAX_RECORD_LEN: usize = 4096;

/// The longest DNS character-string, in octets (RFC 1035 §3.3; REQUIREMENTS DNS-22). A TXT RR
/// read off the wire cannot hold more, so a longer one means the input was not DNS data.
pub const MAX_CHARACTER_STRING: usize = 255;

/// How many usable (`mailto:`/`https:`) rua URIs a reporter acts on (REQUIREMENTS DNS-22).
/// The rua may point anywhere (RFC 8460 §7 "Reports as DDoS"), so we do not fan out without
/// bound.
pub const MAX_USABLE_RUA: usize = 5;

/// The longest presentation-form input [`split_presentation`] accepts, in bytes. `\DDD`
/// escapes take four bytes per octet, so this leaves room for a [`MAX_RECORD_LEN`] record.
pub const MAX_PRESENTATION_LEN: usize = 4 * MAX_RECORD_LEN;

/// The version token (RFC 8460 §3, `%s"v=TLSRPTv1"`: case-sensitive).
const VERSION: &[u8] = b"v=TLSRPTv1";

/// Longest extension name: one leading character plus up to 31 more (RFC 8460 §3).
const MAX_EXT_NAME: usize = 32;

/// Why a record text, a character-string or a presentation-form string was rejected.
///
/// Every variant carries the byte offset of the problem (into the joined record text, or into
/// the presentation-form input for [`RecordError::Presentation`]) so that tools can point at
/// it; [`RecordError::rule`] gives the REQUIREMENTS ID and [`RecordError::hint`] a one-line
/// fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The joined record is longer than [`MAX_RECORD_LEN`].
    TooLong {
        /// Always [`MAX_RECORD_LEN`]: where the text stopped being acceptable.
        offset: usize,
        /// The length found.
        len: usize,
    },
    /// One character-string is longer than [`MAX_CHARACTER_STRING`] octets.
    CharacterStringTooLong {
        /// Where the string starts in the joined text.
        offset: usize,
        /// The string's 1-based position in its RR.
        index: usize,
        /// Its length.
        len: usize,
    },
    /// A byte ≥ 0x80: the grammar is ASCII only.
    NonAscii {
        /// Where.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// A control character (other than HTAB used as WSP).
    ControlChar {
        /// Where.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// The text does not begin with the version token at all.
    MissingVersion {
        /// Where the version was expected.
        offset: usize,
    },
    /// The version token is there but with the wrong letter case (`V=TLSRPTv1`, `v=tlsrptv1`).
    VersionCase {
        /// Where.
        offset: usize,
        /// What was found.
        found: String,
    },
    /// Another version (`v=TLSRPTv2`, `v=TLSRPTv10`).
    NotVersion1 {
        /// Where.
        offset: usize,
        /// The version token found.
        found: String,
    },
    /// WSP before or after `=`.
    WspAroundEquals {
        /// Where the WSP is.
        offset: usize,
    },
    /// Something other than `;` where a field delimiter is required.
    ExpectedDelimiter {
        /// Where.
        offset: usize,
        /// What was found.
        found: char,
    },
    /// WSP at the end of the record that is not part of a `;` delimiter.
    TrailingWhitespace {
        /// Where the WSP starts.
        offset: usize,
    },
    /// An empty field (`;;` or `; ;`).
    EmptyField {
        /// Where the second `;` is.
        offset: usize,
    },
    /// A field with no `=`.
    MissingEquals {
        /// Where the `=` was expected.
        offset: usize,
        /// The field name read so far.
        name: String,
    },
    /// A field name that does not start with a letter or digit, or holds a character other
    /// than ALPHA, DIGIT, `_`, `-`, `.`.
    BadFieldName {
        /// Where the bad character is.
        offset: usize,
        /// The character.
        found: char,
    },
    /// An extension name longer than 32 characters.
    ExtensionNameTooLong {
        /// Where the name starts.
        offset: usize,
        /// Its length.
        len: usize,
    },
    /// An extension with an empty value.
    EmptyExtensionValue {
        /// Where the value should start.
        offset: usize,
        /// The extension name.
        name: String,
    },
    /// WSP inside an extension value (`note=hello world`).
    WspInExtensionValue {
        /// Where the WSP starts.
        offset: usize,
        /// The extension name.
        name: String,
    },
    /// A `=` inside an extension value.
    EqualsInExtensionValue {
        /// Where.
        offset: usize,
    },
    /// Two rua URIs separated by WSP instead of `,`.
    MissingComma {
        /// Where the WSP starts.
        offset: usize,
    },
    /// No `rua=` field.
    NoRua {
        /// The end of the record.
        offset: usize,
    },
    /// A `rua=` field written in the wrong case (`RUA=`, `Rua=`).
    RuaCase {
        /// Where the field name is.
        offset: usize,
        /// The name as written.
        found: String,
    },
    /// An empty URI in `rua=` (`rua=`, `rua=,,`, `rua=a:b,`).
    EmptyUri {
        /// Where the URI should start.
        offset: usize,
    },
    /// A rua URI with no (valid) scheme.
    NoScheme {
        /// Where the URI starts.
        offset: usize,
    },
    /// A literal `!` in a URI (RFC 8460 §3: must be `%21`).
    UnencodedBang {
        /// Where.
        offset: usize,
    },
    /// A character RFC 3986 does not allow in a URI.
    InvalidUriChar {
        /// Where.
        offset: usize,
        /// The character.
        found: char,
    },
    /// A `%` not followed by two hex digits.
    BadPercentEncoding {
        /// Where the `%` is.
        offset: usize,
    },
    /// A `mailto:` URI that names no single address.
    BadMailto {
        /// Where the URI starts.
        offset: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// An `https:` URI with no host.
    BadHttps {
        /// Where the URI starts.
        offset: usize,
    },
    /// Malformed DNS presentation form (quotes, escapes).
    Presentation {
        /// Where, in the presentation-form input.
        offset: usize,
        /// What is wrong.
        problem: &'static str,
    },
}

impl RecordError {
    /// The byte offset of the problem.
    pub fn offset(&self) -> usize {
        use RecordError::*;
        match self {
            TooLong { offset, .. }
            | CharacterStringTooLong { offset, .. }
            | NonAscii { offset, .. }
            | ControlChar { offset, .. }
            | MissingVersion { offset }
            | VersionCase { offset, .. }
            | NotVersion1 { offset, .. }
            | WspAroundEquals { offset }
            | ExpectedDelimiter { offset, .. }
            | TrailingWhitespace { offset }
            | EmptyField { offset }
            | MissingEquals { offset, .. }
            | BadFieldName { offset, .. }
            | ExtensionNameTooLong { offset, .. }
            | EmptyExtensionValue { offset, .. }
            | WspInExtensionValue { offset, .. }
            | EqualsInExtensionValue { offset }
            | MissingComma { offset }
            | NoRua { offset }
            | RuaCase { offset, .. }
            | EmptyUri { offset }
            | NoScheme { offset }
            | UnencodedBang { offset }
            | InvalidUriChar { offset, .. }
            | BadPercentEncoding { offset }
            | BadMailto { offset, .. }
            | BadHttps { offset }
            | Presentation { offset, .. } => *offset,
        }
    }

    /// The REQUIREMENTS ID of the rule broken, e.g. `DNS-09`.
    pub fn rule(&self) -> &'static str {
        use RecordError::*;
        match self {
            TooLong { .. } | CharacterStringTooLong { .. } => "DNS-22",
            NonAscii { .. } | ControlChar { .. } => "DNS-08",
            MissingVersion { .. } | VersionCase { .. } | NotVersion1 { .. } => "DNS-06",
            WspAroundEquals { .. }
            | ExpectedDelimiter { .. }
            | TrailingWhitespace { .. }
            | EmptyField { .. }
            | MissingEquals { .. } => "DNS-13",
            BadFieldName { .. }
            | ExtensionNameTooLong { .. }
            | EmptyExtensionValue { .. }
            | WspInExtensionValue { .. }
            | EqualsInExtensionValue { .. } => "DNS-14",
            NoRua { .. } => "DNS-07",
            RuaCase { .. }
            | EmptyUri { .. }
            | NoScheme { .. }
            | InvalidUriChar { .. }
            | BadPercentEncoding { .. }
            | MissingComma { .. } => "DNS-08",
            UnencodedBang { .. } => "DNS-09",
            BadMailto { .. } => "DNS-11",
            BadHttps { .. } => "DNS-10",
            Presentation { .. } => "DNS-03",
        }
    }

    /// What is wrong, without the offset and the rule.
    fn message(&self) -> String {
        use RecordError::*;
        match self {
            TooLong { len, .. } => {
                format!("the record is {len} bytes; at most {MAX_RECORD_LEN} are accepted")
            }
            CharacterStringTooLong { index, len, .. } => format!(
                "character-string {index} is {len} octets; a DNS character-string holds at most \
                 {MAX_CHARACTER_STRING} (RFC 1035 §3.3)"
            ),
            NonAscii { byte, .. } => format!(
                "byte 0x{byte:02X} is not ASCII; the record grammar is ASCII only (RFC 8460 §3 ABNF)"
            ),
            ControlChar { byte, .. } => {
                format!("control character 0x{byte:02X} is not allowed (RFC 8460 §3 ABNF)")
            }
            MissingVersion { .. } => {
                "the record must begin with \"v=TLSRPTv1\" (RFC 8460 §3)".to_string()
            }
            VersionCase { found, .. } => format!(
                "\"{found}\" is not \"v=TLSRPTv1\": the version is case-sensitive (RFC 8460 §3 \
                 ABNF %s)"
            ),
            NotVersion1 { found, .. } => {
                format!("\"{found}\" is not TLSRPT version 1 (RFC 8460 §3)")
            }
            WspAroundEquals { .. } => {
                "WSP is not allowed around \"=\" (RFC 8460 §3 ABNF)".to_string()
            }
            ExpectedDelimiter { found, .. } => {
                format!("expected \";\" between fields, found {found:?} (RFC 8460 §3 ABNF)")
            }
            TrailingWhitespace { .. } => {
                "whitespace at the end of the record without a \";\" (RFC 8460 §3 ABNF)".to_string()
            }
            EmptyField { .. } => {
                "empty field between \";\" delimiters (RFC 8460 §3 ABNF)".to_string()
            }
            MissingEquals { name, .. } => {
                format!("field \"{name}\" has no \"=\" (RFC 8460 §3 ABNF)")
            }
            BadFieldName { found, .. } => format!(
                "{found:?} is not allowed in a field name: it starts with a letter or digit and \
                 holds only letters, digits, \"_\", \"-\", \".\" (RFC 8460 §3 ABNF)"
            ),
            ExtensionNameTooLong { len, .. } => format!(
                "extension name is {len} characters; at most {MAX_EXT_NAME} are allowed (RFC 8460 \
                 §3 ABNF)"
            ),
            EmptyExtensionValue { name, .. } => {
                format!("extension \"{name}\" has an empty value (RFC 8460 §3 ABNF)")
            }
            WspInExtensionValue { name, .. } => {
                format!("whitespace inside the value of extension \"{name}\" (RFC 8460 §3 ABNF)")
            }
            EqualsInExtensionValue { .. } => {
                "\"=\" is not allowed in an extension value (RFC 8460 §3 ABNF)".to_string()
            }
            MissingComma { .. } => {
                "rua URIs must be separated by \",\", not whitespace (RFC 8460 §3 ABNF)".to_string()
            }
            NoRua { .. } => "the record has no \"rua=\" field (RFC 8460 §3)".to_string(),
            RuaCase { found, .. } => format!(
                "\"{found}=\" is not \"rua=\": field names are case-sensitive (RFC 8460 §3 ABNF %s)"
            ),
            EmptyUri { .. } => "empty URI in \"rua=\" (RFC 8460 §3 ABNF)".to_string(),
            NoScheme { .. } => {
                "rua URI has no scheme such as \"mailto:\" (RFC 3986 §3.1)".to_string()
            }
            UnencodedBang { .. } => {
                "\"!\" in a URI must be written \"%21\" (RFC 8460 §3)".to_string()
            }
            InvalidUriChar { found, .. } => {
                format!("{found:?} is not allowed in a URI (RFC 3986 §2)")
            }
            BadPercentEncoding { .. } => {
                "\"%\" must be followed by two hex digits (RFC 3986 §2.1)".to_string()
            }
            BadMailto { problem, .. } => format!("mailto: URI {problem} (RFC 6068)"),
            BadHttps { .. } => {
                "https: URI has no host; write \"https://host/path\" (RFC 8460 §3)".to_string()
            }
            Presentation { problem, .. } => format!("presentation form: {problem}"),
        }
    }

    /// A one-line fix for a postmaster, where one can be given.
    pub fn hint(&self) -> Option<&'static str> {
        use RecordError::*;
        Some(match self {
            TooLong { .. } => "shorten the record: a few rua URIs are all it needs",
            CharacterStringTooLong { .. } => {
                "split the text into quoted strings of at most 255 characters each"
            }
            NonAscii { .. } => "use only ASCII; percent-encode anything else inside a URI",
            ControlChar { .. } => "remove the control character (a stray newline or NUL?)",
            MissingVersion { .. } => "start the record with \"v=TLSRPTv1;\"",
            VersionCase { .. } => "write the version exactly as \"v=TLSRPTv1\"",
            NotVersion1 { .. } => "write \"v=TLSRPTv1\"; no other version is defined",
            WspAroundEquals { .. } => "remove the spaces around \"=\", e.g. \"rua=mailto:...\"",
            ExpectedDelimiter { .. } => "separate fields with \";\"",
            TrailingWhitespace { .. } => "remove the trailing space",
            EmptyField { .. } => "remove the extra \";\"",
            MissingEquals { .. } => "write fields as name=value, separated by \";\"",
            BadFieldName { .. } => "check the field name for typos and stray characters",
            ExtensionNameTooLong { .. } => "shorten the extension name to 32 characters",
            EmptyExtensionValue { .. } => "give the extension a value or remove it",
            WspInExtensionValue { .. } => {
                "remove the spaces from the extension value (or the extension)"
            }
            EqualsInExtensionValue { .. } => "remove \"=\" from the extension value",
            MissingComma { .. } => "separate the URIs with \",\"",
            NoRua { .. } => "add \"rua=mailto:tlsrpt@your.domain\" right after the version",
            RuaCase { .. } => "write \"rua=\" in lower case",
            EmptyUri { .. } => "give at least one URI and no empty ones: rua=mailto:a@b.example",
            NoScheme { .. } => "prefix the address with \"mailto:\" (or use an https:// URL)",
            UnencodedBang { .. } => {
                "replace \"!\" with \"%21\" (and drop any DMARC-style size suffix like \"!10m\")"
            }
            InvalidUriChar { .. } => "percent-encode the character (%XX)",
            BadPercentEncoding { .. } => "write a literal \"%\" as \"%25\"",
            BadMailto { .. } => {
                "write one address per URI: rua=mailto:a@x.example,mailto:b@x.example"
            }
            BadHttps { .. } => "write the URL as https://host/path",
            Presentation { .. } => return None,
        })
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at byte {}: {} ({})",
            self.offset(),
            self.message(),
            self.rule()
        )
    }
}

/// One rua destination (RFC 8460 §3 `tlsrpt-uri`).
///
/// The scheme is stored in lower case (REQUIREMENTS DNS-11); the rest of the URI is kept as
/// written, percent-escapes included, so the record can be written back unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReportingUri {
    /// `mailto:`: reports go by e-mail (RFC 8460 §5.3).
    Mailto {
        /// The percent-decoded addr-spec, without `?hfields` (REQUIREMENTS DNS-11).
        address: String,
        /// The URI as written, scheme in lower case.
        uri: String,
    },
    /// `https:`: reports are POSTed (RFC 8460 §5.4).
    Https {
        /// The URI as written, scheme in lower case.
        uri: String,
    },
    /// Any other scheme, `http:` included: kept, but never used (REQUIREMENTS DNS-10).
    Unsupported {
        /// The scheme, in lower case.
        scheme: String,
        /// The URI as written, scheme in lower case.
        uri: String,
    },
}

impl ReportingUri {
    /// The URI text, scheme in lower case.
    pub fn as_str(&self) -> &str {
        match self {
            ReportingUri::Mailto { uri, .. }
            | ReportingUri::Https { uri }
            | ReportingUri::Unsupported { uri, .. } => uri,
        }
    }

    /// Whether a reporter can send to it (`mailto:` or `https:`; REQUIREMENTS DNS-10).
    pub fn is_usable(&self) -> bool {
        !matches!(self, ReportingUri::Unsupported { .. })
    }

    /// Parses one URI as it may appear in `rua=` (after any `,` `!` `;` were encoded).
    /// Error offsets are relative to `uri`.
    pub fn parse(uri: &str) -> Result<ReportingUri, RecordError> {
        let b = uri.as_bytes();
        check_encoding(b, 0)?;
        if b.is_empty() {
            return Err(RecordError::EmptyUri { offset: 0 });
        }
        if let Some(i) = b.iter().position(|&c| is_wsp(c) || c == b',' || c == b';') {
            let found = char::from(b.get(i).copied().unwrap_or(b' '));
            return Err(RecordError::InvalidUriChar { offset: i, found });
        }
        parse_uri(b, 0)
    }
}

impl fmt::Display for ReportingUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field this version of TLSRPT does not define (RFC 8460 §3 `tlsrpt-extension`). Kept so
/// that nothing is lost, otherwise ignored (REQUIREMENTS DNS-15).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Extension {
    /// 1–32 of ALPHA / DIGIT / `_` / `-` / `.`, starting with ALPHA or DIGIT.
    pub name: String,
    /// One or more printable ASCII characters other than SP, `=`, `;`.
    pub value: String,
}

/// A syntactically valid TLSRPT v1 record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsrptRecord {
    /// Every rua URI, in order, from every `rua=` field (REQUIREMENTS DNS-12). Never empty in
    /// a parsed record.
    pub rua: Vec<ReportingUri>,
    /// Unknown fields, in order (REQUIREMENTS DNS-15).
    pub extensions: Vec<Extension>,
}

impl TlsrptRecord {
    /// The destinations a reporter acts on: `mailto:`/`https:` URIs in record order, at most
    /// [`MAX_USABLE_RUA`] (REQUIREMENTS DNS-10, DNS-22).
    pub fn usable_rua(&self) -> impl Iterator<Item = &ReportingUri> {
        self.rua
            .iter()
            .filter(|u| u.is_usable())
            .take(MAX_USABLE_RUA)
    }

    /// Whether there is anything to send to.
    pub fn has_usable_rua(&self) -> bool {
        self.rua.iter().any(ReportingUri::is_usable)
    }

    /// Writes the record in its one canonical form: `v=TLSRPTv1; rua=<uri>[,<uri>]` with rua
    /// directly after the version and no spaces around commas (the form the simple sys4
    /// parser understands, REQUIREMENTS DNS-13), then `; name=value` per extension. `,` `!`
    /// `;` and anything else RFC 3986 does not allow inside a URI are percent-encoded
    /// (REQUIREMENTS DNS-09); schemes are written in lower case (DNS-11).
    ///
    /// The text is parsed again before it is returned, so this never emits a record we would
    /// reject; the error then describes the problem in the formatted text (e.g. an empty rua
    /// list gives [`RecordError::NoRua`], a bad extension name [`RecordError::BadFieldName`]).
    pub fn to_canonical_string(&self) -> Result<String, RecordError> {
        let mut out = String::with_capacity(64);
        out.push_str("v=TLSRPTv1; rua=");
        for (i, u) in self.rua.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            encode_uri_into(u.as_str(), &mut out);
        }
        for e in &self.extensions {
            out.push_str("; ");
            out.push_str(&e.name);
            out.push('=');
            out.push_str(&e.value);
        }
        parse_record(&out)?;
        Ok(out)
    }
}

/// A parsed record with what the parser tolerated or thinks the publisher should know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedRecord {
    /// The record.
    pub record: TlsrptRecord,
    /// Tolerated or suspicious things (DNS-05, DNS-10, DNS-12, DNS-13 interop, DNS-22). The
    /// record is valid regardless.
    pub warnings: Vec<Deviation>,
}

/// Parses one record text (the character-strings of one TXT RR already joined) by the exact
/// RFC 8460 §3 ABNF.
pub fn parse_record(text: &str) -> Result<ParsedRecord, RecordError> {
    parse_record_bytes(text.as_bytes())
}

/// [`parse_record`] for raw TXT data, which need not be UTF-8 (a non-ASCII byte is an error
/// naming its offset).
pub fn parse_record_bytes(text: &[u8]) -> Result<ParsedRecord, RecordError> {
    if text.len() > MAX_RECORD_LEN {
        // REQUIREMENTS DNS-22
        return Err(RecordError::TooLong {
            offset: MAX_RECORD_LEN,
            len: text.len(),
        });
    }
    check_encoding(text, 0)?;
    Parser {
        b: text,
        pos: 0,
        warnings: Vec::new(),
    }
    .record()
}

/// Rejects non-ASCII bytes and control characters other than HTAB; offsets are `base + i`.
fn check_encoding(b: &[u8], base: usize) -> Result<(), RecordError> {
    for (i, &c) in b.iter().enumerate() {
        if c >= 0x80 {
            return Err(RecordError::NonAscii {
                offset: base + i,
                byte: c,
            });
        }
        if (c < 0x20 && c != b'\t') || c == 0x7f {
            return Err(RecordError::ControlChar {
                offset: base + i,
                byte: c,
            });
        }
    }
    Ok(())
}

fn is_wsp(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.'
}

/// `%x21-3A / %x3C / %x3E-7E`: printable except `;` and `=` (RFC 8460 §3 `tlsrpt-ext-value`).
fn is_ext_value_char(c: u8) -> bool {
    (0x21..=0x7e).contains(&c) && c != b';' && c != b'='
}

/// RFC 3986 characters allowed literally in a URI (unreserved, gen-delims, sub-delims), minus
/// those RFC 8460 §3 requires to be encoded (`,` `!` `;`). `%` is handled separately.
fn is_uri_char(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b':'
                | b'/'
                | b'?'
                | b'#'
                | b'['
                | b']'
                | b'@'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b'='
        )
}

/// What the field before a delimiter was, to explain a missing `;` precisely.
#[derive(Clone, Copy)]
enum Last {
    Version,
    Rua,
    Extension,
}

struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
    warnings: Vec<Deviation>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn peek_char(&self) -> char {
        char::from(self.peek().unwrap_or(b' '))
    }

    fn skip_wsp(&mut self) {
        while self.peek().is_some_and(is_wsp) {
            self.pos += 1;
        }
    }

    fn warn(&mut self, offset: usize, rule: &'static str, message: impl Into<String>) {
        self.warnings
            .push(Deviation::new(format!("byte {offset}"), rule, message));
    }

    fn record(mut self) -> Result<ParsedRecord, RecordError> {
        self.version()?;
        let mut record = TlsrptRecord::default();
        let mut rua_fields = 0usize;
        let mut rua_case: Option<(usize, String)> = None;
        let mut last = Last::Version;
        let mut field_index = 0usize;
        let mut spaced_commas = false;
        loop {
            if self.peek().is_none() {
                break;
            }
            // field-delim = *WSP ";" *WSP
            let wsp_start = self.pos;
            self.skip_wsp();
            match self.peek() {
                None => return Err(RecordError::TrailingWhitespace { offset: wsp_start }),
                Some(b';') => {}
                Some(_) => {
                    return Err(match last {
                        Last::Extension if self.pos > wsp_start => {
                            RecordError::WspInExtensionValue {
                                offset: wsp_start,
                                name: record
                                    .extensions
                                    .last()
                                    .map(|e| e.name.clone())
                                    .unwrap_or_default(),
                            }
                        }
                        Last::Rua if self.pos > wsp_start => {
                            RecordError::MissingComma { offset: wsp_start }
                        }
                        _ => RecordError::ExpectedDelimiter {
                            offset: self.pos,
                            found: self.peek_char(),
                        },
                    });
                }
            }
            if matches!(last, Last::Version) && self.pos > wsp_start {
                // REQUIREMENTS DNS-05: allowed by the ABNF, dropped by literal-prefix parsers.
                self.warn(
                    wsp_start,
                    "DNS-05",
                    "whitespace between \"v=TLSRPTv1\" and \";\" is accepted, but parsers that \
                     look for the literal prefix \"v=TLSRPTv1;\" ignore this record; write \
                     \"v=TLSRPTv1;\"",
                );
            }
            self.pos += 1; // the ';'
            self.skip_wsp();
            match self.peek() {
                None => break, // the optional trailing delimiter
                Some(b';') => return Err(RecordError::EmptyField { offset: self.pos }),
                Some(_) => {}
            }
            field_index += 1;
            let name_start = self.pos;
            let name_end = self.b[name_start..]
                .iter()
                .position(|&c| !is_name_char(c))
                .map_or(self.b.len(), |n| name_start + n);
            let name = &self.b[name_start..name_end];
            self.pos = name_end;
            match name.first() {
                None => {
                    return Err(RecordError::BadFieldName {
                        offset: name_start,
                        found: self.peek_char(),
                    });
                }
                Some(c) if !c.is_ascii_alphanumeric() => {
                    return Err(RecordError::BadFieldName {
                        offset: name_start,
                        found: char::from(*c),
                    });
                }
                Some(_) => {}
            }
            let name_str = String::from_utf8_lossy(name).into_owned();
            match self.peek() {
                Some(b'=') => self.pos += 1,
                Some(c) if is_wsp(c) => {
                    let wsp = self.pos;
                    self.skip_wsp();
                    if self.peek() == Some(b'=') {
                        return Err(RecordError::WspAroundEquals { offset: wsp });
                    }
                    return Err(RecordError::MissingEquals {
                        offset: wsp,
                        name: name_str,
                    });
                }
                None | Some(b';') => {
                    return Err(RecordError::MissingEquals {
                        offset: self.pos,
                        name: name_str,
                    });
                }
                Some(c) => {
                    return Err(RecordError::BadFieldName {
                        offset: self.pos,
                        found: char::from(c),
                    });
                }
            }
            if self.peek().is_some_and(is_wsp) {
                return Err(RecordError::WspAroundEquals { offset: self.pos });
            }
            if name == b"rua" {
                // RFC 8460 §3 tlsrpt-rua
                rua_fields += 1;
                if field_index != 1 && rua_fields == 1 {
                    // REQUIREMENTS DNS-13 interop note
                    self.warn(
                        name_start,
                        "DNS-13",
                        "\"rua=\" is not the first field after the version; simple parsers \
                         (sys4 tlsrpt-reporter) need it there",
                    );
                }
                if rua_fields == 2 {
                    // REQUIREMENTS DNS-12
                    self.warn(
                        name_start,
                        "DNS-12",
                        "\"rua=\" appears more than once; the URIs of all rua fields are used, \
                         in order; write one rua field with a comma-separated list",
                    );
                }
                self.uri_list(&mut record.rua, &mut spaced_commas)?;
                last = Last::Rua;
            } else {
                // RFC 8460 §3 tlsrpt-extension
                if name.len() > MAX_EXT_NAME {
                    return Err(RecordError::ExtensionNameTooLong {
                        offset: name_start,
                        len: name.len(),
                    });
                }
                if name.eq_ignore_ascii_case(b"rua") && rua_case.is_none() {
                    rua_case = Some((name_start, name_str.clone()));
                }
                let value_start = self.pos;
                while self.peek().is_some_and(is_ext_value_char) {
                    self.pos += 1;
                }
                if self.pos == value_start {
                    return Err(RecordError::EmptyExtensionValue {
                        offset: value_start,
                        name: name_str,
                    });
                }
                if self.peek() == Some(b'=') {
                    return Err(RecordError::EqualsInExtensionValue { offset: self.pos });
                }
                let value = String::from_utf8_lossy(&self.b[value_start..self.pos]).into_owned();
                record.extensions.push(Extension {
                    name: name_str,
                    value,
                });
                last = Last::Extension;
            }
        }
        if record.rua.is_empty() {
            // REQUIREMENTS DNS-07 (and DNS-08 for the case-mismatched name)
            return Err(match rua_case {
                Some((offset, found)) => RecordError::RuaCase { offset, found },
                None => RecordError::NoRua {
                    offset: self.b.len(),
                },
            });
        }
        if spaced_commas {
            // REQUIREMENTS DNS-13 interop note
            self.warnings.push(Deviation::new(
                "rua",
                "DNS-13",
                "whitespace around \",\" in rua is allowed, but simple parsers (sys4 \
                 tlsrpt-reporter) do not trim it; write the URIs without spaces",
            ));
        }
        for u in &record.rua {
            if let ReportingUri::Unsupported { scheme, uri } = u {
                // REQUIREMENTS DNS-10
                let msg = format!(
                    "rua URI \"{uri}\" has the unsupported scheme \"{scheme}\"; reporters only \
                     send to mailto: and https:, so it is ignored"
                );
                self.warnings.push(Deviation::new("rua", "DNS-10", msg));
            }
        }
        let usable = record.rua.iter().filter(|u| u.is_usable()).count();
        if usable > MAX_USABLE_RUA {
            // REQUIREMENTS DNS-22
            let msg = format!("{usable} usable rua URIs; only the first {MAX_USABLE_RUA} are used");
            self.warnings.push(Deviation::new("rua", "DNS-22", msg));
        }
        Ok(ParsedRecord {
            record,
            warnings: self.warnings,
        })
    }

    /// `v=TLSRPTv1`, then end, WSP or `;` (RFC 8460 §3 tlsrpt-version; REQUIREMENTS DNS-06).
    fn version(&mut self) -> Result<(), RecordError> {
        let b = self.b;
        let head_len = b
            .iter()
            .position(|&c| is_wsp(c) || c == b';')
            .unwrap_or(b.len());
        let head = &b[..head_len];
        if let Some(rest) = head.strip_prefix(VERSION) {
            if rest.is_empty() {
                self.pos = VERSION.len();
                if self.pos == b.len() {
                    // `v=TLSRPTv1` alone: REQUIREMENTS DNS-07
                    return Err(RecordError::NoRua { offset: self.pos });
                }
                return Ok(());
            }
            if rest.first().is_some_and(|c| !c.is_ascii_alphanumeric()) {
                // `v=TLSRPTv1,rua=...`
                return Err(RecordError::ExpectedDelimiter {
                    offset: VERSION.len(),
                    found: char::from(rest.first().copied().unwrap_or(b' ')),
                });
            }
        }
        // Only the token itself goes into messages, not a whole garbage record.
        let token_len = head
            .iter()
            .position(|&c| !(c.is_ascii_alphanumeric() || c == b'='))
            .unwrap_or(head.len())
            .min(24);
        let found =
            || String::from_utf8_lossy(head.get(..token_len).unwrap_or_default()).into_owned();
        if head.starts_with(VERSION) {
            return Err(RecordError::NotVersion1 {
                offset: 0,
                found: found(),
            });
        }
        if head.eq_ignore_ascii_case(VERSION) {
            return Err(RecordError::VersionCase {
                offset: 0,
                found: found(),
            });
        }
        if head.len() > 2 && head.get(..2).is_some_and(|h| h.eq_ignore_ascii_case(b"v=")) {
            // `v=TLSRPTv2`, `V=TLSRPTv10`, `v=spf1`: a version token, just not ours.
            return Err(RecordError::NotVersion1 {
                offset: 0,
                found: found(),
            });
        }
        if head.eq_ignore_ascii_case(b"v") || head.eq_ignore_ascii_case(b"v=") {
            // `v = TLSRPTv1`, `v= TLSRPTv1`
            let mut p = head.len();
            while b.get(p).copied().is_some_and(is_wsp) {
                p += 1;
            }
            let eq_follows = head.len() == 2 || b.get(p) == Some(&b'=');
            if p > head.len() && eq_follows {
                return Err(RecordError::WspAroundEquals { offset: head.len() });
            }
        }
        Err(RecordError::MissingVersion { offset: 0 })
    }

    /// `tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)`; leaves `pos` before any WSP that is not
    /// followed by `,`.
    fn uri_list(
        &mut self,
        out: &mut Vec<ReportingUri>,
        spaced_commas: &mut bool,
    ) -> Result<(), RecordError> {
        loop {
            let start = self.pos;
            while self
                .peek()
                .is_some_and(|c| !is_wsp(c) && c != b',' && c != b';')
            {
                self.pos += 1;
            }
            if self.pos == start {
                return Err(RecordError::EmptyUri { offset: start });
            }
            out.push(parse_uri(&self.b[start..self.pos], start)?);
            let before_wsp = self.pos;
            self.skip_wsp();
            let spaced_before = self.pos > before_wsp;
            if self.peek() == Some(b',') {
                self.pos += 1;
                let after_comma = self.pos;
                self.skip_wsp();
                if spaced_before || self.pos > after_comma {
                    *spaced_commas = true;
                }
            } else {
                self.pos = before_wsp;
                return Ok(());
            }
        }
    }
}

/// Parses one URI token (no WSP, `,`, `;`; already ASCII-checked). `base` is its offset in
/// the record, for errors.
fn parse_uri(tok: &[u8], base: usize) -> Result<ReportingUri, RecordError> {
    // RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"
    let colon = tok.iter().position(|&c| c == b':');
    let scheme = match colon {
        Some(n) if n > 0 => &tok[..n],
        _ => return Err(RecordError::NoScheme { offset: base }),
    };
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return Err(RecordError::NoScheme { offset: base });
    }
    let rest_start = scheme.len() + 1;
    let rest = &tok[rest_start..];
    let mut i = 0;
    while let Some(&c) = rest.get(i) {
        let offset = base + rest_start + i;
        if c == b'%' {
            let ok = rest.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && rest.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return Err(RecordError::BadPercentEncoding { offset });
            }
            i += 3;
            continue;
        }
        if c == b'!' {
            // RFC 8460 §3; REQUIREMENTS DNS-09
            return Err(RecordError::UnencodedBang { offset });
        }
        if !is_uri_char(c) {
            return Err(RecordError::InvalidUriChar {
                offset,
                found: char::from(c),
            });
        }
        i += 1;
    }
    // REQUIREMENTS DNS-11: schemes are case-insensitive; store lower case.
    let scheme_lc = String::from_utf8_lossy(scheme).to_ascii_lowercase();
    let mut uri = String::with_capacity(tok.len());
    uri.push_str(&scheme_lc);
    uri.push(':');
    uri.push_str(&String::from_utf8_lossy(rest));
    match scheme_lc.as_str() {
        "mailto" => {
            let addr_part = rest.split(|&c| c == b'?').next().unwrap_or_default();
            let address = mailto_address(addr_part).map_err(|problem| RecordError::BadMailto {
                offset: base,
                problem,
            })?;
            Ok(ReportingUri::Mailto { address, uri })
        }
        "https" => {
            let authority = rest
                .strip_prefix(b"//")
                .map(|r| {
                    r.iter()
                        .position(|&c| matches!(c, b'/' | b'?' | b'#'))
                        .map_or(r, |n| &r[..n])
                })
                .unwrap_or_default();
            // userinfo@ alone is no host either
            let host = authority.rsplit(|&c| c == b'@').next().unwrap_or_default();
            if host.is_empty() || host.first() == Some(&b':') {
                return Err(RecordError::BadHttps { offset: base });
            }
            Ok(ReportingUri::Https { uri })
        }
        _ => Ok(ReportingUri::Unsupported {
            scheme: scheme_lc,
            uri,
        }),
    }
}

/// Percent-decodes a mailto addr-spec and checks it names exactly one address
/// (REQUIREMENTS DNS-11).
fn mailto_address(raw: &[u8]) -> Result<String, &'static str> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&c) = raw.get(i) {
        if c == b'%' {
            let hi = raw.get(i + 1).and_then(|&h| char::from(h).to_digit(16));
            let lo = raw.get(i + 2).and_then(|&h| char::from(h).to_digit(16));
            match (hi, lo) {
                (Some(h), Some(l)) => {
                    // h, l < 16, so this fits in a byte
                    out.push(u8::try_from(h * 16 + l).unwrap_or(0));
                    i += 3;
                }
                _ => return Err("has a bad %-escape"),
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    let addr = String::from_utf8(out).map_err(|_| "decodes to bytes that are not UTF-8")?;
    if addr.is_empty() {
        return Err("has no address");
    }
    if addr.chars().any(char::is_control) {
        return Err("decodes to a control character");
    }
    if addr.contains(',') {
        return Err("holds several addresses (an encoded \",\")");
    }
    match addr.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => Ok(addr),
        _ => Err("has no address of the form local@domain"),
    }
}

/// Appends `uri` percent-encoding `,` `!` `;` (RFC 8460 §3) and every other byte RFC 3986 does
/// not allow literally; `%XX` escapes are kept, a bare `%` becomes `%25`. The scheme is
/// lower-cased.
fn encode_uri_into(uri: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let b = uri.as_bytes();
    let scheme_len = b.iter().position(|&c| c == b':').unwrap_or(0);
    let scheme_valid = scheme_len > 0
        && b.iter()
            .take(scheme_len)
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
    for (i, &c) in b.iter().enumerate() {
        let keep = if scheme_valid && i < scheme_len {
            out.push(char::from(c.to_ascii_lowercase()));
            continue;
        } else if c == b'%' {
            b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        } else {
            is_uri_char(c)
        };
        if keep {
            out.push(char::from(c));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(c >> 4)]));
            out.push(char::from(HEX[usize::from(c & 0xf)]));
        }
    }
}

/// Why an RRset holds no usable TLSRPT record (REQUIREMENTS DNS-04, DNS-16).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoTlsrpt {
    /// No RR begins with `v=TLSRPTv1` *WSP `;`.
    NoRecord,
    /// More than one does; the count must be exactly one.
    Several {
        /// How many.
        count: usize,
    },
    /// Exactly one does, and it is invalid.
    Invalid {
        /// The joined text (lossy UTF-8).
        text: String,
        /// The first problem found.
        error: RecordError,
    },
}

impl NoTlsrpt {
    /// The REQUIREMENTS ID behind this outcome.
    pub fn rule(&self) -> &'static str {
        match self {
            NoTlsrpt::NoRecord | NoTlsrpt::Several { .. } => "DNS-04",
            NoTlsrpt::Invalid { .. } => "DNS-16",
        }
    }
}

impl fmt::Display for NoTlsrpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoTlsrpt::NoRecord => write!(f, "no TXT record begins with \"v=TLSRPTv1;\" (DNS-04)"),
            NoTlsrpt::Several { count } => write!(
                f,
                "{count} TXT records begin with \"v=TLSRPTv1;\"; exactly one is allowed, so \
                 none is used (DNS-04)"
            ),
            NoTlsrpt::Invalid { error, .. } => {
                write!(
                    f,
                    "the TLSRPT record is invalid, so none is used (DNS-16): {error}"
                )
            }
        }
    }
}

/// What [`select`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exactly one valid record with at least one usable rua URI.
    Found {
        /// The joined record text.
        text: String,
        /// The record.
        parsed: ParsedRecord,
    },
    /// Exactly one valid record, but none of its URIs is `mailto:`/`https:`: valid syntax,
    /// nothing to send (REQUIREMENTS DNS-10).
    NothingToSend {
        /// The joined record text.
        text: String,
        /// The record.
        parsed: ParsedRecord,
    },
    /// The domain does not implement TLSRPT.
    NoTlsrpt(NoTlsrpt),
}

/// The result of applying the RRset rules to a `_smtp._tls` TXT RRset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// The verdict.
    pub outcome: Outcome,
    /// Every warning: about dropped RRs that look like failed attempts at a TLSRPT record
    /// (path `RR n`, 1-based), followed by the chosen record's own warnings.
    pub warnings: Vec<Deviation>,
}

impl Selection {
    /// The record to send reports to, if any.
    pub fn record(&self) -> Option<&TlsrptRecord> {
        match &self.outcome {
            Outcome::Found { parsed, .. } => Some(&parsed.record),
            _ => None,
        }
    }
}

/// Whether an RR's joined text begins with `v=TLSRPTv1` *WSP `;` (REQUIREMENTS DNS-04 with
/// the DNS-05 tolerance), without joining it.
pub fn begins_with_version<S: AsRef<[u8]>>(rr: &[S]) -> bool {
    let mut bytes = rr.iter().flat_map(|s| s.as_ref().iter().copied());
    for &want in VERSION {
        if bytes.next() != Some(want) {
            return false;
        }
    }
    for c in bytes {
        if c == b';' {
            return true;
        }
        if !is_wsp(c) {
            return false;
        }
    }
    false
}

/// Applies RFC 8460 §3 to a TXT RRset: each RR is its list of character-strings, joined
/// without separator (REQUIREMENTS DNS-03); RRs not beginning with `v=TLSRPTv1` *WSP `;` are
/// dropped (DNS-04, DNS-05); exactly one must remain (DNS-04); an invalid one means no TLSRPT
/// (DNS-16).
///
/// Accepts `Vec<Vec<u8>>` RRs as well as resolver types such as `Box<[Box<[u8]>]>`.
pub fn select<R, S>(rrset: &[R]) -> Selection
where
    R: AsRef<[S]>,
    S: AsRef<[u8]>,
{
    let mut warnings = Vec::new();
    let mut chosen: Option<&R> = None;
    let mut count = 0usize;
    for (i, rr) in rrset.iter().enumerate() {
        if begins_with_version(rr.as_ref()) {
            count += 1;
            if chosen.is_none() {
                chosen = Some(rr);
            }
        } else if let Some(w) = near_miss(rr.as_ref(), i + 1) {
            warnings.push(w);
        }
    }
    let outcome = match (count, chosen) {
        (1, Some(rr)) => {
            let strings = rr.as_ref();
            let mut text = Vec::with_capacity(strings.iter().map(|s| s.as_ref().len()).sum());
            let mut too_long = None;
            for (i, s) in strings.iter().enumerate() {
                let s = s.as_ref();
                if s.len() > MAX_CHARACTER_STRING && too_long.is_none() {
                    too_long = Some(RecordError::CharacterStringTooLong {
                        offset: text.len(),
                        index: i + 1,
                        len: s.len(),
                    });
                }
                text.extend_from_slice(s);
            }
            let result = match too_long {
                Some(e) => Err(e),
                None => parse_record_bytes(&text),
            };
            let text = String::from_utf8_lossy(&text).into_owned();
            match result {
                Err(error) => Outcome::NoTlsrpt(NoTlsrpt::Invalid { text, error }),
                Ok(parsed) => {
                    warnings.extend(parsed.warnings.iter().cloned());
                    if parsed.record.has_usable_rua() {
                        Outcome::Found { text, parsed }
                    } else {
                        Outcome::NothingToSend { text, parsed }
                    }
                }
            }
        }
        (0, _) | (_, None) => Outcome::NoTlsrpt(NoTlsrpt::NoRecord),
        (count, _) => Outcome::NoTlsrpt(NoTlsrpt::Several { count }),
    };
    Selection { outcome, warnings }
}

/// A warning for a dropped RR that was probably meant to be the TLSRPT record: wrong case,
/// another version, leading WSP, missing `;`, or the version not first.
fn near_miss<S: AsRef<[u8]>>(rr: &[S], n: usize) -> Option<Deviation> {
    let total: usize = rr.iter().map(|s| s.as_ref().len()).sum();
    if total > MAX_RECORD_LEN {
        return None;
    }
    // Most RRs are one string: look at it in place instead of joining.
    let text: std::borrow::Cow<'_, [u8]> = match rr {
        [one] => std::borrow::Cow::Borrowed(one.as_ref()),
        _ => std::borrow::Cow::Owned(rr.iter().flat_map(|s| s.as_ref().iter().copied()).collect()),
    };
    let text = text.as_ref();
    let trimmed = text
        .iter()
        .position(|&c| !is_wsp(c))
        .and_then(|p| text.get(p..))
        .unwrap_or_default();
    let starts_ci = |prefix: &[u8]| {
        trimmed
            .get(..prefix.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(prefix))
    };
    let shown = || show(text, 60);
    let msg = if trimmed.len() < text.len() && trimmed.starts_with(VERSION) {
        format!(
            "{} starts with whitespace; the record must begin with \"v=TLSRPTv1;\"",
            shown()
        )
    } else if starts_ci(VERSION) && !trimmed.starts_with(VERSION) {
        format!(
            "{} looks like a TLSRPT record, but \"v=TLSRPTv1\" is case-sensitive, so it is \
             ignored",
            shown()
        )
    } else if trimmed.starts_with(VERSION) {
        let after = trimmed.get(VERSION.len()..).unwrap_or_default();
        if after.first().is_some_and(u8::is_ascii_digit) {
            format!("{} is not TLSRPT version 1, so it is ignored", shown())
        } else {
            format!(
                "{} does not continue with \";\" after \"v=TLSRPTv1\", so it is ignored \
                 (a record needs \"v=TLSRPTv1; rua=...\")",
                shown()
            )
        }
    } else if starts_ci(b"v=tlsrpt") {
        format!("{} is not a TLSRPT v1 record, so it is ignored", shown())
    } else if text.windows(VERSION.len()).any(|w| w == VERSION) {
        format!(
            "{} contains \"v=TLSRPTv1\" but not at the start; the version must come first",
            shown()
        )
    } else if !starts_ci(b"v=") && text.windows(4).any(|w| w.eq_ignore_ascii_case(b"rua=")) {
        format!(
            "{} has a rua field but no \"v=TLSRPTv1;\" at the start",
            shown()
        )
    } else {
        return None;
    };
    Some(Deviation::new(format!("RR {n}"), "DNS-04", msg))
}

/// A short quoted rendering of raw TXT data for messages.
fn show(text: &[u8], max: usize) -> String {
    let mut s: String = String::from_utf8_lossy(text).chars().take(max).collect();
    if text.len() > max {
        s.push('…');
    }
    format!("{s:?}")
}

/// Splits one TXT RR in DNS presentation form, as dig prints it, into its character-strings:
/// `"v=TLSRPTv1; rua=mailto:a@exa" "mple.net"` gives two strings. Inside quotes `\"`, `\\`,
/// any `\X` and `\DDD` (decimal, ≤ 255) escapes are decoded (RFC 1035 §5.1).
///
/// Input that does not start with `"` (after leading whitespace) is taken as one
/// character-string exactly as given, so `v=TLSRPTv1; rua=mailto:a@b.example` also works.
/// Lengths are not checked here: [`select`] reports over-long strings with their offset.
pub fn split_presentation(input: &str) -> Result<Vec<Vec<u8>>, RecordError> {
    if input.len() > MAX_PRESENTATION_LEN {
        return Err(RecordError::Presentation {
            offset: MAX_PRESENTATION_LEN,
            problem: "input too long",
        });
    }
    let b = input.as_bytes();
    let start = b.iter().position(|&c| !c.is_ascii_whitespace());
    match start {
        Some(p) if b.get(p) == Some(&b'"') => {}
        _ => return Ok(vec![b.to_vec()]),
    }
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while b.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        match b.get(i) {
            None => return Ok(out),
            Some(b'"') => i += 1,
            Some(_) => {
                return Err(RecordError::Presentation {
                    offset: i,
                    problem: "text outside quotes; quote every string",
                });
            }
        }
        let open = i - 1;
        let mut s = Vec::new();
        loop {
            match b.get(i) {
                None => {
                    return Err(RecordError::Presentation {
                        offset: open,
                        problem: "unterminated quoted string",
                    });
                }
                Some(b'"') => {
                    i += 1;
                    break;
                }
                Some(b'\\') => {
                    let esc = i;
                    match b.get(i + 1) {
                        None => {
                            return Err(RecordError::Presentation {
                                offset: esc,
                                problem: "backslash at the end of the input",
                            });
                        }
                        Some(d) if d.is_ascii_digit() => {
                            let digits = b
                                .get(i + 1..i + 4)
                                .filter(|d| d.iter().all(u8::is_ascii_digit));
                            let value = digits.map(|d| {
                                d.iter()
                                    .fold(0u32, |acc, &c| acc * 10 + u32::from(c - b'0'))
                            });
                            match value.and_then(|v| u8::try_from(v).ok()) {
                                Some(v) => s.push(v),
                                None => {
                                    return Err(RecordError::Presentation {
                                        offset: esc,
                                        problem: "\\DDD escape needs three digits, at most 255",
                                    });
                                }
                            }
                            i += 4;
                        }
                        Some(&c) => {
                            s.push(c);
                            i += 2;
                        }
                    }
                }
                Some(&c) => {
                    s.push(c);
                    i += 1;
                }
            }
        }
        if b.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
            return Err(RecordError::Presentation {
                offset: i,
                problem: "expected whitespace after the closing quote",
            });
        }
        out.push(s);
    }
}

/// Writes record text in DNS presentation form for a zone file: quoted character-strings of
/// at most [`MAX_CHARACTER_STRING`] octets separated by a space, `"` and `\` escaped, bytes
/// outside printable ASCII as `\DDD`. [`split_presentation`] reads it back.
pub fn to_presentation(text: &[u8]) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for (i, chunk) in text
        .chunks(MAX_CHARACTER_STRING)
        .chain((text.is_empty()).then_some(&[][..]))
        .enumerate()
    {
        if i > 0 {
            out.push(' ');
        }
        out.push('"');
        for &c in chunk {
            match c {
                b'"' | b'\\' => {
                    out.push('\\');
                    out.push(char::from(c));
                }
                0x20..=0x7e => out.push(char::from(c)),
                _ => out.push_str(&format!("\\{c:03}")),
            }
        }
        out.push('"');
    }
    out
}
