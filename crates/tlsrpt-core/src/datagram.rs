//! The libtlsrpt datagram: one SMTP delivery request's TLS outcome, as Postfix (3.10+, through
//! libtlsrpt) sends it to a collector (`shared/spec/DATAGRAM.md`).
//!
//! # Decoding
//!
//! [`decode`] reads one datagram into a borrowed view, [`Datagram`], without allocating: the
//! view keeps the raw JSON text of every string and array, validated once, and iterators walk
//! the arrays again on demand. [`JsonStr::to_cow`] unescapes a string only when it contains a
//! JSON escape. The collector's hot path therefore hashes raw bytes and never builds an owned
//! value for a key it has already seen.
//!
//! The decoder is a small JSON parser specialised to this format, not a lenient one: it accepts
//! any JSON whitespace and any key order, skips unknown keys (forward compatibility), and
//! rejects everything else with a [`DatagramError`] that names the field or byte offset. Every
//! error maps to a short metrics label through [`DatagramError::reason`].
//!
//! Decisions where DATAGRAM.md leaves room (each is tested in `tests/datagram.rs`):
//!
//! * **Size limit**: [`MAX_DATAGRAM_BYTES`] = 256 KiB. The sender cannot send more than about
//!   212 KB with Linux default buffers (DATAGRAM.md §1, measured); a real Postfix datagram is
//!   200–500 bytes. The reference collector reads with a 16 MiB buffer, but nothing that large
//!   can arrive from libtlsrpt, so accepting it would only help a hostile local sender.
//! * **`dpv`**: `"1"` and a missing `dpv` (libtlsrpt 0.5.0rc1, shipped in Debian trixie) are
//!   accepted. Any other value is rejected as [`DatagramError::UnknownDpv`]: a future protocol
//!   version may change what the counters mean, so counting it silently would be a guess. (The
//!   reference collector logs and still processes it; we count it as invalid instead.)
//! * **`policy-type`**: 1 tlsa, 2 sts, 9 no-policy-found; any other code is
//!   [`DatagramError::UnknownPolicyType`].
//! * **`t`**: must equal the length of `failure-details` (0 when absent), else
//!   [`DatagramError::TMismatch`]: a mismatch means the sender's bookkeeping is broken, and
//!   the reference collector also flags it.
//! * **`f`** at policy level is the final result and must be 0 or 1; inside a failure detail
//!   it is the `failure-reason-code` string. Both are required to be of the right type.
//! * **Unknown failure codes** (`c` outside 201–306, e.g. 901 "unfinished policy" or 999): the
//!   session still counts. The failure detail is reported as result-type `validation-failure`
//!   with failure-reason-code `tlsrpt-code-<c>` (or `tlsrpt-code-<c>:<f>` when the datagram had
//!   a reason too). An unregistered result-type string would make the report invalid for
//!   strict receivers (REQUIREMENTS JSON-21), while `validation-failure` is the RFC's catch-all
//!   and the code keeps the information (RFC 8460 §4.3.1, REQUIREMENTS RPT-09).
//! * **`h` (receiving-mx-helo)**: Postfix sends its whole multi-line EHLO reply, CRLF-joined
//!   (`250-mx.example.org\r\n250-PIPELINING\r\n250 STARTTLS`). The report carries the host
//!   name of the first line only: the reply code and its `-`/space separator are removed, then
//!   everything from the first space on ([`helo_hostname`]). That is what the RFC field means
//!   (the name the MX announced in its greeting, RFC 8460 §4.4), it keeps failure details that
//!   differ only in the extension list together, and it keeps CRLF out of the report.
//! * **Missing `policy-domain`** (Postfix before 20250924, sys4/tlsrpt-reporter#51): the
//!   report uses the datagram's normalised `d`, as Postfix itself does since that fix and as
//!   REQUIREMENTS RPT-10 recommends.
//! * **Duplicate keys** in one object are rejected ([`DatagramError::DuplicateKey`]): JSON
//!   leaves their meaning open, and libtlsrpt never writes them.
//! * **Zero policies** are rejected ([`DatagramError::NoPolicies`]): libtlsrpt refuses to send
//!   such a request (error 10732), so one on the socket did not come from it.
//!
//! # Encoding
//!
//! [`encode`] writes an owned [`DatagramBuf`] byte for byte as libtlsrpt 0.5.1 does
//! (DATAGRAM.md §2): `"key": "value"` with a space for strings, `"key":N` for numbers, no other
//! whitespace, the fixed key order of DATAGRAM.md §3, absent optional values omitted, and
//! libtlsrpt's escape table (`"` and `\` escaped, `\b \t \n \f \r`, other bytes below 0x20 and
//! 0x7F as lower-case `\u00xx`, everything else raw). `tlsrpt simulate` and the tests use it.

use std::borrow::Cow;
use std::fmt;

use thiserror::Error;

use crate::domain::{self, DomainError};
use crate::report::{FailureDetail, Policy};
use crate::types::{PolicyType, ResultType};

/// Largest datagram accepted (see the module docs for why 256 KiB).
pub const MAX_DATAGRAM_BYTES: usize = 256 * 1024;

/// Deepest nesting accepted inside an unknown key's value (objects/arrays), so a hostile
/// datagram cannot exhaust the stack.
const MAX_SKIP_DEPTH: usize = 32;

/// The only protocol version this decoder understands (DATAGRAM.md §4).
pub const DPV: &str = "1";

/// The metrics label of each kind of bad datagram. Fixed and small so that it can index an
/// array of counters and be pre-registered as a Prometheus label set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Larger than the size limit.
    Oversized,
    /// Cut off by the receive buffer (detected by the collector, never by [`decode`]).
    Truncated,
    /// Not UTF-8.
    InvalidUtf8,
    /// Not JSON, or not the JSON shape of a datagram.
    InvalidJson,
    /// `dpv` other than `"1"`.
    UnknownDpv,
    /// `policy-type` other than 1, 2, 9.
    UnknownPolicyType,
    /// `t` differs from the number of failure details.
    TMismatch,
    /// A required key is absent.
    MissingField,
    /// A key has a value of the wrong JSON type.
    WrongType,
    /// Policy-level `f` other than 0 or 1.
    BadFinalResult,
    /// A key appears twice in one object.
    DuplicateKey,
    /// `policies` is empty.
    NoPolicies,
    /// `d` is not a valid domain name.
    InvalidDomain,
}

impl Reason {
    /// Every reason, in a fixed order (the index of a reason in this array is `reason as usize`).
    pub const ALL: [Reason; 13] = [
        Reason::Oversized,
        Reason::Truncated,
        Reason::InvalidUtf8,
        Reason::InvalidJson,
        Reason::UnknownDpv,
        Reason::UnknownPolicyType,
        Reason::TMismatch,
        Reason::MissingField,
        Reason::WrongType,
        Reason::BadFinalResult,
        Reason::DuplicateKey,
        Reason::NoPolicies,
        Reason::InvalidDomain,
    ];

    /// The label, e.g. `"invalid-json"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Oversized => "oversized",
            Reason::Truncated => "truncated",
            Reason::InvalidUtf8 => "invalid-utf8",
            Reason::InvalidJson => "invalid-json",
            Reason::UnknownDpv => "unknown-dpv",
            Reason::UnknownPolicyType => "unknown-policy-type",
            Reason::TMismatch => "t-mismatch",
            Reason::MissingField => "missing-field",
            Reason::WrongType => "wrong-type",
            Reason::BadFinalResult => "bad-final-result",
            Reason::DuplicateKey => "duplicate-key",
            Reason::NoPolicies => "no-policies",
            Reason::InvalidDomain => "invalid-domain",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a datagram was rejected. Offsets are byte offsets into the datagram.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DatagramError {
    /// Larger than the limit.
    #[error("datagram is {len} bytes, larger than the {max}-byte limit")]
    Oversized {
        /// Datagram length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The receive buffer cut the datagram off.
    #[error("datagram was truncated by the {buffer}-byte receive buffer")]
    Truncated {
        /// Receive buffer size.
        buffer: usize,
    },
    /// Not valid UTF-8 (libtlsrpt passes bytes ≥ 0x80 through unchecked, DATAGRAM.md §2).
    #[error("invalid UTF-8 at byte {offset}")]
    InvalidUtf8 {
        /// First invalid byte.
        offset: usize,
    },
    /// Not JSON, or not shaped like a datagram.
    #[error("invalid JSON at byte {offset}: {problem}")]
    InvalidJson {
        /// Where parsing stopped.
        offset: usize,
        /// What was wrong.
        problem: &'static str,
    },
    /// `dpv` is not `"1"` (DATAGRAM.md §4).
    #[error("unknown datagram protocol version dpv={value:?} (only \"1\" is understood)")]
    UnknownDpv {
        /// The value, cut to 32 characters.
        value: String,
    },
    /// `policy-type` is not 1, 2 or 9 (DATAGRAM.md §3).
    #[error(
        "policies[{policy}]: unknown policy-type {code} (expected 1 tlsa, 2 sts, 9 no-policy-found)"
    )]
    UnknownPolicyType {
        /// Index of the policy.
        policy: usize,
        /// The code sent.
        code: u64,
    },
    /// `t` differs from the number of failure details.
    #[error("policies[{policy}]: t={t} but failure-details has {len} entries")]
    TMismatch {
        /// Index of the policy.
        policy: usize,
        /// The `t` sent.
        t: u64,
        /// The array length.
        len: usize,
    },
    /// A required key is absent.
    #[error("{object} at byte {offset}: missing required key {field:?}")]
    MissingField {
        /// The key.
        field: &'static str,
        /// Which object (`datagram`, `policy`, `failure-detail`).
        object: &'static str,
        /// Start of the object.
        offset: usize,
    },
    /// A value of the wrong JSON type.
    #[error("key {field:?} at byte {offset}: expected {expected}")]
    WrongType {
        /// The key.
        field: &'static str,
        /// Start of the value.
        offset: usize,
        /// What was expected.
        expected: &'static str,
    },
    /// Policy-level `f` other than 0 or 1.
    #[error("policies[{policy}]: final result f={value} (expected 0 success or 1 failure)")]
    BadFinalResult {
        /// Index of the policy.
        policy: usize,
        /// The value sent.
        value: u64,
    },
    /// A key appears twice in one object.
    #[error("key {key:?} appears twice (second at byte {offset})")]
    DuplicateKey {
        /// The key.
        key: &'static str,
        /// Where the second one starts.
        offset: usize,
    },
    /// `policies` is an empty array.
    #[error("policies is empty (libtlsrpt never sends a request without a policy)")]
    NoPolicies,
    /// `d` is not a valid domain name.
    #[error("d {domain:?} is not a valid domain: {source}")]
    InvalidDomain {
        /// The value, cut to 64 characters.
        domain: String,
        /// Why.
        source: DomainError,
    },
}

impl DatagramError {
    /// The kind of error, for counting.
    pub fn kind(&self) -> Reason {
        match self {
            DatagramError::Oversized { .. } => Reason::Oversized,
            DatagramError::Truncated { .. } => Reason::Truncated,
            DatagramError::InvalidUtf8 { .. } => Reason::InvalidUtf8,
            DatagramError::InvalidJson { .. } => Reason::InvalidJson,
            DatagramError::UnknownDpv { .. } => Reason::UnknownDpv,
            DatagramError::UnknownPolicyType { .. } => Reason::UnknownPolicyType,
            DatagramError::TMismatch { .. } => Reason::TMismatch,
            DatagramError::MissingField { .. } => Reason::MissingField,
            DatagramError::WrongType { .. } => Reason::WrongType,
            DatagramError::BadFinalResult { .. } => Reason::BadFinalResult,
            DatagramError::DuplicateKey { .. } => Reason::DuplicateKey,
            DatagramError::NoPolicies => Reason::NoPolicies,
            DatagramError::InvalidDomain { .. } => Reason::InvalidDomain,
        }
    }

    /// A short, fixed label usable as a metrics label value (e.g. `"t-mismatch"`).
    pub fn reason(&self) -> &'static str {
        self.kind().as_str()
    }
}

fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

// ---------------------------------------------------------------------------------------------
// Borrowed view
// ---------------------------------------------------------------------------------------------

/// A JSON string as it appears in the datagram, already validated: the text between the
/// quotes, escapes and all.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct JsonStr<'a> {
    raw: &'a str,
    escaped: bool,
}

impl<'a> JsonStr<'a> {
    /// The text between the quotes, escapes not decoded. Equal values can have different raw
    /// text (`"a"` and `"\u0061"`), so raw text may only be used as a key where splitting one
    /// value over two keys is harmless (counters that are later merged by decoded value).
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The decoded value; borrowed unless the string contains an escape.
    pub fn to_cow(&self) -> Cow<'a, str> {
        if self.escaped {
            Cow::Owned(unescape(self.raw))
        } else {
            Cow::Borrowed(self.raw)
        }
    }

    /// The decoded value as an owned `String`.
    pub fn to_string_value(&self) -> String {
        self.to_cow().into_owned()
    }
}

impl fmt::Debug for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_cow(), f)
    }
}

impl PartialEq<str> for JsonStr<'_> {
    fn eq(&self, other: &str) -> bool {
        if self.escaped {
            self.to_cow() == other
        } else {
            self.raw == other
        }
    }
}

impl PartialEq<&str> for JsonStr<'_> {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

/// One decoded datagram (one delivery request to one recipient domain, DATAGRAM.md §3).
#[derive(Clone, Debug)]
pub struct Datagram<'a> {
    /// `dpv`; `None` when absent (libtlsrpt 0.5.0rc1). Only `"1"` is ever accepted.
    pub dpv: Option<JsonStr<'a>>,
    /// `d`: the TLSRPT policy domain, as sent (not yet normalised).
    pub domain: JsonStr<'a>,
    /// `pr`: the TLSRPT record text the MTA found.
    pub record: JsonStr<'a>,
    policies_raw: &'a str,
    policy_count: usize,
    /// The first policy, kept from validation: Postfix always sends exactly one, so the
    /// common case never parses the policy twice.
    first: DatagramPolicy<'a>,
    /// Offset in `policies_raw` just after the first policy object.
    first_end: usize,
}

/// Iterator over a datagram's policies.
pub struct Policies<'a> {
    first: Option<DatagramPolicy<'a>>,
    rest: ArrayIter<'a, DatagramPolicy<'a>>,
}

impl<'a> Iterator for Policies<'a> {
    type Item = DatagramPolicy<'a>;
    fn next(&mut self) -> Option<DatagramPolicy<'a>> {
        match self.first.take() {
            Some(p) => Some(p),
            None => self.rest.next(),
        }
    }
}

impl<'a> Datagram<'a> {
    /// The policies, in datagram order.
    pub fn policies(&self) -> Policies<'a> {
        Policies {
            first: Some(self.first.clone()),
            rest: ArrayIter::after_first(self.policies_raw, self.first_end, parse_policy_unchecked),
        }
    }

    /// Number of policies (≥ 1).
    pub fn policy_count(&self) -> usize {
        self.policy_count
    }

    /// The raw JSON text of the `policies` array (from `[` to `]`).
    pub fn policies_raw(&self) -> &'a str {
        self.policies_raw
    }

    /// `d` normalised with [`crate::domain::normalize`] (lower case, A-labels, no trailing dot).
    pub fn normalized_domain(&self) -> Result<String, DatagramError> {
        let d = self.domain.to_cow();
        domain::normalize(&d).map_err(|source| DatagramError::InvalidDomain {
            domain: cut(&d, 64),
            source,
        })
    }

    /// An owned copy, e.g. to re-encode it.
    pub fn to_owned_datagram(&self) -> DatagramBuf {
        DatagramBuf {
            dpv: self.dpv.map(|s| s.to_string_value()),
            domain: self.domain.to_string_value(),
            record: self.record.to_string_value(),
            policies: self.policies().map(|p| p.to_owned_policy()).collect(),
        }
    }
}

/// One policy of a datagram.
#[derive(Clone, Debug)]
pub struct DatagramPolicy<'a> {
    /// `policy-type`, mapped from its code (DATAGRAM.md §3). Never `Unknown`.
    pub policy_type: PolicyType,
    /// The numeric `policy-type` code as sent (1, 2 or 9).
    pub policy_type_code: u64,
    /// `policy-domain`; `None` when omitted.
    pub policy_domain: Option<JsonStr<'a>>,
    /// `policy-string` (empty when omitted).
    pub policy_strings: StrArray<'a>,
    /// `mx-host` (empty when omitted).
    pub mx_hosts: StrArray<'a>,
    /// `failure-details` (empty when omitted).
    pub failure_details: FailureArray<'a>,
    /// `t` (checked: equals `failure_details.len()`).
    pub t: u64,
    /// Policy-level `f`: `true` when the session failed under this policy.
    pub failed: bool,
}

impl<'a> DatagramPolicy<'a> {
    /// The RFC 8460 `policy` object for this policy. `report_domain` (the normalised `d`)
    /// stands in for an omitted policy-domain (REQUIREMENTS RPT-10). A present policy-domain is
    /// normalised like `d` when it is a valid domain and kept verbatim otherwise, so no
    /// information is lost.
    pub fn to_policy(&self, report_domain: &str) -> Policy {
        let policy_domain = match &self.policy_domain {
            None => report_domain.to_owned(),
            Some(pd) => domain::normalize_or_keep(&pd.to_cow()),
        };
        let mut policy_string: Vec<String> = self
            .policy_strings
            .iter()
            .map(|s| s.to_string_value())
            .collect();
        // REQUIREMENTS RPT-18 (REC): TLSA records sorted, so the same RRset gives the same
        // policy (and one counter) whatever order DNS returned it in. An MTA-STS policy keeps
        // its file order (RPT-17).
        if self.policy_type == PolicyType::Tlsa {
            policy_string.sort_unstable();
        }
        Policy {
            policy_type: self.policy_type.clone(),
            policy_string,
            policy_domain: Some(policy_domain),
            mx_host: self.mx_hosts.iter().map(|s| s.to_string_value()).collect(),
        }
    }

    /// An owned copy.
    pub fn to_owned_policy(&self) -> PolicyBuf {
        PolicyBuf {
            policy_type: self.policy_type_code,
            policy_domain: self.policy_domain.map(|s| s.to_string_value()),
            policy_strings: self
                .policy_strings
                .iter()
                .map(|s| s.to_string_value())
                .collect(),
            mx_hosts: self.mx_hosts.iter().map(|s| s.to_string_value()).collect(),
            failure_details: self
                .failure_details
                .iter()
                .map(|f| f.to_owned_failure())
                .collect(),
            t: self.t,
            final_result: u64::from(self.failed),
        }
    }
}

/// One failure detail of a datagram (short keys, DATAGRAM.md §3).
#[derive(Clone, Copy, Debug)]
pub struct DatagramFailure<'a> {
    /// `c`: the libtlsrpt result code (201–306 are the RFC result types).
    pub code: u64,
    /// `s`: sending-mta-ip.
    pub sending_mta_ip: Option<JsonStr<'a>>,
    /// `n`: receiving-mx-hostname.
    pub receiving_mx_hostname: Option<JsonStr<'a>>,
    /// `h`: receiving-mx-helo as sent (Postfix: the whole EHLO reply).
    pub receiving_mx_helo: Option<JsonStr<'a>>,
    /// `r`: receiving-ip.
    pub receiving_ip: Option<JsonStr<'a>>,
    /// `a`: additional-information.
    pub additional_information: Option<JsonStr<'a>>,
    /// `f`: failure-reason-code.
    pub failure_reason_code: Option<JsonStr<'a>>,
    raw: &'a str,
}

impl<'a> DatagramFailure<'a> {
    /// The raw JSON text of this failure object (`{` to `}`): the whole object is the
    /// grouping key (DATAGRAM.md §6, REQUIREMENTS RPT-08), so per-IP details never collapse.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The RFC 8460 result type: codes 201–306 map to the registry; any other code becomes
    /// `validation-failure` (see the module docs).
    pub fn result_type(&self) -> ResultType {
        ResultType::from_datagram_code(self.code).unwrap_or(ResultType::ValidationFailure)
    }

    /// The RFC 8460 failure detail this datagram entry stands for, with a count of 0 (a
    /// [`crate::tally::FailureKey`]). Applies the `h` and unknown-code rules of the module docs.
    pub fn to_failure_key(&self) -> FailureDetail {
        let known = ResultType::from_datagram_code(self.code);
        let reason = self.failure_reason_code.map(|s| s.to_string_value());
        let failure_reason_code = match known {
            Some(_) => reason,
            None => Some(match reason {
                Some(r) => format!("tlsrpt-code-{}:{r}", self.code),
                None => format!("tlsrpt-code-{}", self.code),
            }),
        };
        let helo = self.receiving_mx_helo.and_then(|h| {
            let h = h.to_cow();
            helo_hostname(&h).map(str::to_owned)
        });
        FailureDetail {
            result_type: known.unwrap_or(ResultType::ValidationFailure),
            sending_mta_ip: self.sending_mta_ip.map(|s| s.to_string_value()),
            // REQUIREMENTS JSON-23 (REC): A-labels, lower case, no trailing dot, so `MX1.example.`
            // and `mx1.example` count as one host; a name that is not a valid domain is kept as
            // sent.
            receiving_mx_hostname: self
                .receiving_mx_hostname
                .map(|h| domain::normalize_or_keep(&h.to_cow())),
            receiving_mx_helo: helo,
            receiving_ip: self.receiving_ip.map(|s| s.to_string_value()),
            failed_session_count: 0,
            additional_information: self.additional_information.map(|s| s.to_string_value()),
            failure_reason_code,
        }
    }

    /// An owned copy (the `h` text kept as sent).
    pub fn to_owned_failure(&self) -> FailureBuf {
        FailureBuf {
            code: self.code,
            sending_mta_ip: self.sending_mta_ip.map(|s| s.to_string_value()),
            receiving_mx_hostname: self.receiving_mx_hostname.map(|s| s.to_string_value()),
            receiving_mx_helo: self.receiving_mx_helo.map(|s| s.to_string_value()),
            receiving_ip: self.receiving_ip.map(|s| s.to_string_value()),
            additional_information: self.additional_information.map(|s| s.to_string_value()),
            failure_reason_code: self.failure_reason_code.map(|s| s.to_string_value()),
        }
    }
}

/// The host name in an EHLO reply: the first line, without its reply code and `-`/space
/// separator, up to the first whitespace. `250-mx.example.org\r\n250-PIPELINING` and
/// `mx.example.org` both give `mx.example.org`; an empty result gives `None`.
pub fn helo_hostname(h: &str) -> Option<&str> {
    let first = h.split(['\r', '\n']).next().unwrap_or("");
    let b = first.as_bytes();
    let rest = if b.len() >= 4
        && b[..3].iter().all(u8::is_ascii_digit)
        && (b[3] == b'-' || b[3] == b' ')
    {
        &first[4..]
    } else if b.len() == 3 && b.iter().all(u8::is_ascii_digit) {
        ""
    } else {
        first
    };
    let name = rest
        .trim_start()
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap_or("");
    (!name.is_empty()).then_some(name)
}

/// A validated JSON array of strings, kept as raw text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StrArray<'a> {
    raw: &'a str,
    len: usize,
}

impl<'a> StrArray<'a> {
    const EMPTY: StrArray<'static> = StrArray { raw: "", len: 0 };

    /// The raw JSON text (`[` to `]`), or `""` when the key was absent.
    pub fn raw(&self) -> &'a str {
        self.raw
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True when absent or empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The elements.
    pub fn iter(&self) -> ArrayIter<'a, JsonStr<'a>> {
        ArrayIter::new(self.raw, |p| p.string())
    }
}

/// A validated JSON array of failure objects, kept as raw text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FailureArray<'a> {
    raw: &'a str,
    len: usize,
}

impl<'a> FailureArray<'a> {
    const EMPTY: FailureArray<'static> = FailureArray { raw: "", len: 0 };

    /// The raw JSON text (`[` to `]`), or `""` when the key was absent.
    pub fn raw(&self) -> &'a str {
        self.raw
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True when absent or empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The elements.
    pub fn iter(&self) -> ArrayIter<'a, DatagramFailure<'a>> {
        ArrayIter::new(self.raw, parse_failure)
    }
}

/// Iterator over an already validated raw JSON array. It re-parses each element; because the
/// text was validated by [`decode`] this cannot fail, and if it somehow did the iterator ends.
pub struct ArrayIter<'a, T> {
    p: Parser<'a>,
    elem: fn(&mut Parser<'a>) -> Result<T, DatagramError>,
    done: bool,
}

impl<'a, T> ArrayIter<'a, T> {
    fn new(raw: &'a str, elem: fn(&mut Parser<'a>) -> Result<T, DatagramError>) -> Self {
        let mut p = Parser::new(raw);
        let done = raw.is_empty() || p.expect(b'[', "expected '['").is_err() || {
            p.ws();
            p.peek() == Some(b']')
        };
        ArrayIter { p, elem, done }
    }
}

impl<'a, T> ArrayIter<'a, T> {
    /// Continues an array after its first element, which ends at `offset`.
    fn after_first(
        raw: &'a str,
        offset: usize,
        elem: fn(&mut Parser<'a>) -> Result<T, DatagramError>,
    ) -> Self {
        let mut p = Parser::new(raw);
        p.pos = offset;
        p.ws();
        let done = p.bump() != Some(b',');
        ArrayIter { p, elem, done }
    }
}

impl<T> Iterator for ArrayIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        if self.done {
            return None;
        }
        self.p.ws();
        let item = (self.elem)(&mut self.p).ok();
        self.p.ws();
        match self.p.bump() {
            Some(b',') => {}
            _ => self.done = true,
        }
        if item.is_none() {
            self.done = true;
        }
        item
    }
}

// ---------------------------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------------------------

/// Decodes one datagram with the default size limit [`MAX_DATAGRAM_BYTES`].
pub fn decode(bytes: &[u8]) -> Result<Datagram<'_>, DatagramError> {
    decode_with_limit(bytes, MAX_DATAGRAM_BYTES)
}

/// Decodes one datagram, rejecting anything longer than `max_len` bytes.
pub fn decode_with_limit(bytes: &[u8], max_len: usize) -> Result<Datagram<'_>, DatagramError> {
    if bytes.len() > max_len {
        return Err(DatagramError::Oversized {
            len: bytes.len(),
            max: max_len,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| DatagramError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    let mut p = Parser::new(text);
    p.ws();
    let start = p.pos;
    p.expect(b'{', "expected '{' at the start of the datagram")?;
    let mut dpv = None;
    let mut d = None;
    let mut pr = None;
    let mut policies: Option<(&str, usize)> = None;
    let mut first: Option<(DatagramPolicy<'_>, usize)> = None;
    p.object_entries(|p, key, key_at| {
        match key {
            "dpv" => {
                once(&dpv, "dpv", key_at)?;
                dpv = Some(p.string_field("dpv")?);
            }
            "d" => {
                once(&d, "d", key_at)?;
                d = Some(p.string_field("d")?);
            }
            "pr" => {
                once(&pr, "pr", key_at)?;
                pr = Some(p.string_field("pr")?);
            }
            "policies" => {
                once(&policies, "policies", key_at)?;
                let arr_start = p.pos;
                if p.peek() != Some(b'[') {
                    return Err(p.wrong_type("policies", "an array of policy objects"));
                }
                let mut index = 0;
                p.array_elems(|p| {
                    let policy = parse_policy(p, index)?;
                    if index == 0 {
                        first = Some((policy, p.pos - arr_start));
                    }
                    index += 1;
                    Ok(())
                })?;
                policies = Some((p.slice(arr_start), index));
            }
            _ => p.skip_value(0)?,
        }
        Ok(())
    })?;
    p.ws();
    if p.pos != p.s.len() {
        return Err(p.invalid("trailing data after the datagram object"));
    }
    if let Some(v) = &dpv
        && *v != DPV
    {
        return Err(DatagramError::UnknownDpv {
            value: cut(&v.to_cow(), 32),
        });
    }
    let missing = |field| DatagramError::MissingField {
        field,
        object: "datagram",
        offset: start,
    };
    let domain = d.ok_or_else(|| missing("d"))?;
    let record = pr.ok_or_else(|| missing("pr"))?;
    let (policies_raw, policy_count) = policies.ok_or_else(|| missing("policies"))?;
    let Some((first, first_end)) = first.filter(|_| policy_count > 0) else {
        return Err(DatagramError::NoPolicies);
    };
    Ok(Datagram {
        dpv,
        domain,
        record,
        policies_raw,
        policy_count,
        first,
        first_end,
    })
}

/// Decodes one failure-detail object on its own (e.g. a key kept as raw text by the
/// collector). Accepts exactly one JSON object with the short keys of DATAGRAM.md §3.
pub fn decode_failure(raw: &str) -> Result<DatagramFailure<'_>, DatagramError> {
    let mut p = Parser::new(raw);
    p.ws();
    let f = parse_failure(&mut p)?;
    p.ws();
    if p.pos != p.s.len() {
        return Err(p.invalid("trailing data after the failure object"));
    }
    Ok(f)
}

fn once<T>(slot: &Option<T>, key: &'static str, offset: usize) -> Result<(), DatagramError> {
    if slot.is_some() {
        Err(DatagramError::DuplicateKey { key, offset })
    } else {
        Ok(())
    }
}

fn parse_policy_unchecked<'a>(p: &mut Parser<'a>) -> Result<DatagramPolicy<'a>, DatagramError> {
    parse_policy(p, 0)
}

fn parse_policy<'a>(p: &mut Parser<'a>, index: usize) -> Result<DatagramPolicy<'a>, DatagramError> {
    let start = p.pos;
    if p.peek() != Some(b'{') {
        return Err(p.wrong_type("policies", "an array of policy objects"));
    }
    let mut policy_type: Option<u64> = None;
    let mut policy_domain = None;
    let mut policy_strings: Option<StrArray<'a>> = None;
    let mut mx_hosts: Option<StrArray<'a>> = None;
    let mut failures: Option<FailureArray<'a>> = None;
    let mut t: Option<u64> = None;
    let mut f: Option<u64> = None;
    p.expect(b'{', "expected '{'")?;
    p.object_entries(|p, key, key_at| {
        match key {
            "policy-type" => {
                once(&policy_type, "policy-type", key_at)?;
                policy_type = Some(p.uint_field("policy-type")?);
            }
            "policy-domain" => {
                once(&policy_domain, "policy-domain", key_at)?;
                policy_domain = Some(p.string_field("policy-domain")?);
            }
            "policy-string" => {
                once(&policy_strings, "policy-string", key_at)?;
                policy_strings = Some(p.string_array("policy-string")?);
            }
            "mx-host" => {
                once(&mx_hosts, "mx-host", key_at)?;
                mx_hosts = Some(p.string_array("mx-host")?);
            }
            "failure-details" => {
                once(&failures, "failure-details", key_at)?;
                let arr_start = p.pos;
                if p.peek() != Some(b'[') {
                    return Err(p.wrong_type("failure-details", "an array of objects"));
                }
                let mut n = 0;
                p.array_elems(|p| {
                    parse_failure(p)?;
                    n += 1;
                    Ok(())
                })?;
                failures = Some(FailureArray {
                    raw: p.slice(arr_start),
                    len: n,
                });
            }
            "t" => {
                once(&t, "t", key_at)?;
                t = Some(p.uint_field("t")?);
            }
            "f" => {
                once(&f, "f", key_at)?;
                f = Some(p.uint_field("f")?);
            }
            _ => p.skip_value(0)?,
        }
        Ok(())
    })?;
    let missing = |field| DatagramError::MissingField {
        field,
        object: "policy",
        offset: start,
    };
    let code = policy_type.ok_or_else(|| missing("policy-type"))?;
    let t = t.ok_or_else(|| missing("t"))?;
    let f = f.ok_or_else(|| missing("f"))?;
    let policy_type =
        PolicyType::from_datagram_code(code).ok_or(DatagramError::UnknownPolicyType {
            policy: index,
            code,
        })?;
    let failure_details = failures.unwrap_or(FailureArray::EMPTY);
    if t != failure_details.len as u64 {
        return Err(DatagramError::TMismatch {
            policy: index,
            t,
            len: failure_details.len,
        });
    }
    let failed = match f {
        0 => false,
        1 => true,
        value => {
            return Err(DatagramError::BadFinalResult {
                policy: index,
                value,
            });
        }
    };
    Ok(DatagramPolicy {
        policy_type,
        policy_type_code: code,
        policy_domain,
        policy_strings: policy_strings.unwrap_or(StrArray::EMPTY),
        mx_hosts: mx_hosts.unwrap_or(StrArray::EMPTY),
        failure_details,
        t,
        failed,
    })
}

fn parse_failure<'a>(p: &mut Parser<'a>) -> Result<DatagramFailure<'a>, DatagramError> {
    let start = p.pos;
    if p.peek() != Some(b'{') {
        return Err(p.wrong_type("failure-details", "an array of objects"));
    }
    p.expect(b'{', "expected '{'")?;
    let mut code = None;
    let mut s = None;
    let mut n = None;
    let mut h = None;
    let mut r = None;
    let mut a = None;
    let mut f = None;
    p.object_entries(|p, key, key_at| {
        let (slot, name) = match key {
            "c" => {
                once(&code, "c", key_at)?;
                code = Some(p.uint_field("c")?);
                return Ok(());
            }
            "s" => (&mut s, "s"),
            "n" => (&mut n, "n"),
            "h" => (&mut h, "h"),
            "r" => (&mut r, "r"),
            "a" => (&mut a, "a"),
            "f" => (&mut f, "f"),
            _ => return p.skip_value(0),
        };
        once(slot, name, key_at)?;
        *slot = Some(p.string_field(name)?);
        Ok(())
    })?;
    let code = code.ok_or(DatagramError::MissingField {
        field: "c",
        object: "failure-detail",
        offset: start,
    })?;
    Ok(DatagramFailure {
        code,
        sending_mta_ip: s,
        receiving_mx_hostname: n,
        receiving_mx_helo: h,
        receiving_ip: r,
        additional_information: a,
        failure_reason_code: f,
        raw: p.slice(start),
    })
}

/// A minimal JSON scanner over validated UTF-8.
struct Parser<'a> {
    src: &'a str,
    s: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Parser {
            src,
            s: src.as_bytes(),
            pos: 0,
        }
    }

    fn invalid(&self, problem: &'static str) -> DatagramError {
        DatagramError::InvalidJson {
            offset: self.pos,
            problem,
        }
    }

    fn wrong_type(&self, field: &'static str, expected: &'static str) -> DatagramError {
        DatagramError::WrongType {
            field,
            offset: self.pos,
            expected,
        }
    }

    fn slice(&self, start: usize) -> &'a str {
        self.src.get(start..self.pos).unwrap_or("")
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    #[inline]
    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, b: u8, problem: &'static str) -> Result<(), DatagramError> {
        self.ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else if self.peek().is_none() {
            Err(self.invalid("unexpected end of datagram"))
        } else {
            Err(self.invalid(problem))
        }
    }

    /// Walks `key: value` pairs of an object whose `{` was consumed; `f` must consume the value.
    fn object_entries(
        &mut self,
        mut f: impl FnMut(&mut Self, &str, usize) -> Result<(), DatagramError>,
    ) -> Result<(), DatagramError> {
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.ws();
            let key_at = self.pos;
            if self.peek() != Some(b'"') {
                return Err(self.invalid("expected a key string"));
            }
            let key = self.string()?;
            self.expect(b':', "expected ':' after the key")?;
            self.ws();
            if key.escaped {
                // No datagram key needs an escape; treat it as unknown.
                self.skip_value(0)?;
            } else {
                f(self, key.raw, key_at)?;
            }
            self.ws();
            match self.bump() {
                Some(b',') => continue,
                Some(b'}') => return Ok(()),
                None => return Err(self.invalid("unexpected end of datagram")),
                Some(_) => {
                    self.pos -= 1;
                    return Err(self.invalid("expected ',' or '}'"));
                }
            }
        }
    }

    /// Walks the elements of an array at `[`; `f` must consume one element.
    fn array_elems(
        &mut self,
        mut f: impl FnMut(&mut Self) -> Result<(), DatagramError>,
    ) -> Result<(), DatagramError> {
        self.expect(b'[', "expected '['")?;
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.ws();
            f(self)?;
            self.ws();
            match self.bump() {
                Some(b',') => continue,
                Some(b']') => return Ok(()),
                None => return Err(self.invalid("unexpected end of datagram")),
                Some(_) => {
                    self.pos -= 1;
                    return Err(self.invalid("expected ',' or ']'"));
                }
            }
        }
    }

    fn string_field(&mut self, field: &'static str) -> Result<JsonStr<'a>, DatagramError> {
        if self.peek() != Some(b'"') {
            return Err(self.wrong_type(field, "a string"));
        }
        self.string()
    }

    fn string_array(&mut self, field: &'static str) -> Result<StrArray<'a>, DatagramError> {
        let start = self.pos;
        if self.peek() != Some(b'[') {
            return Err(self.wrong_type(field, "an array of strings"));
        }
        let mut len = 0;
        self.array_elems(|p| {
            p.string_field(field)?;
            len += 1;
            Ok(())
        })?;
        Ok(StrArray {
            raw: self.slice(start),
            len,
        })
    }

    /// A string at `"`: validates escapes and rejects raw control characters (RFC 8259 §7).
    fn string(&mut self) -> Result<JsonStr<'a>, DatagramError> {
        self.expect(b'"', "expected '\"'")?;
        let start = self.pos;
        let mut escaped = false;
        loop {
            let Some(b) = self.peek() else {
                return Err(self.invalid("unterminated string"));
            };
            match b {
                b'"' => {
                    let raw = self.src.get(start..self.pos).unwrap_or("");
                    self.pos += 1;
                    return Ok(JsonStr { raw, escaped });
                }
                b'\\' => {
                    escaped = true;
                    self.pos += 1;
                    match self.bump() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {}
                        Some(b'u') => {
                            let hi = self.hex4()?;
                            if (0xD800..0xDC00).contains(&hi) {
                                if self.bump() != Some(b'\\') || self.bump() != Some(b'u') {
                                    return Err(self.invalid("lone high surrogate in \\u escape"));
                                }
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.invalid("bad low surrogate in \\u escape"));
                                }
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err(self.invalid("lone low surrogate in \\u escape"));
                            }
                        }
                        _ => return Err(self.invalid("invalid escape in string")),
                    }
                }
                0..0x20 => return Err(self.invalid("unescaped control character in string")),
                _ => self.pos += 1,
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, DatagramError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = match self.bump() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                _ => return Err(self.invalid("invalid \\u escape")),
            };
            v = v * 16 + u32::from(d);
        }
        Ok(v)
    }

    /// A non-negative integer that fits in u64.
    fn uint_field(&mut self, field: &'static str) -> Result<u64, DatagramError> {
        let start = self.pos;
        match self.peek() {
            Some(b'0'..=b'9') => {}
            Some(b'-') => return Err(self.wrong_type(field, "a non-negative integer")),
            _ => return Err(self.wrong_type(field, "an integer")),
        }
        let mut v: u64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            if self.pos > start && self.s.get(start) == Some(&b'0') {
                return Err(self.invalid("leading zero in number"));
            }
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(c - b'0')))
                .ok_or(DatagramError::WrongType {
                    field,
                    offset: start,
                    expected: "an integer below 2^64",
                })?;
            self.pos += 1;
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            self.pos = start;
            return Err(self.wrong_type(field, "an integer"));
        }
        Ok(v)
    }

    /// Skips any JSON value (used for unknown keys).
    fn skip_value(&mut self, depth: usize) -> Result<(), DatagramError> {
        if depth > MAX_SKIP_DEPTH {
            return Err(self.invalid("nesting too deep"));
        }
        self.ws();
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{') => {
                self.pos += 1;
                self.object_entries(|p, _, _| p.skip_value(depth + 1))
            }
            Some(b'[') => self.array_elems(|p| p.skip_value(depth + 1)),
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'n') => self.literal("null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            None => Err(self.invalid("unexpected end of datagram")),
            Some(_) => Err(self.invalid("expected a value")),
        }
    }

    fn literal(&mut self, word: &'static str) -> Result<(), DatagramError> {
        if self.s.get(self.pos..self.pos + word.len()) == Some(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.invalid("invalid literal"))
        }
    }

    /// RFC 8259 §6 number grammar.
    fn number(&mut self) -> Result<(), DatagramError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.bump() {
            Some(b'0') => {}
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.invalid("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.invalid("invalid number"));
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.invalid("invalid number"));
            }
            self.digits();
        }
        Ok(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }
}

/// Decodes the escapes of a validated raw JSON string. Invalid input cannot reach here (the
/// parser validated it); if it did, the bad escape is replaced by U+FFFD instead of panicking.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('/') => out.push('/'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let hi = hex4_chars(&mut chars);
                let cp = match hi {
                    Some(hi @ 0xD800..0xDC00) => {
                        let lo = match (chars.next(), chars.next()) {
                            (Some('\\'), Some('u')) => hex4_chars(&mut chars),
                            _ => None,
                        };
                        lo.map(|lo| 0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00)))
                    }
                    other => other,
                };
                out.push(cp.and_then(char::from_u32).unwrap_or('\u{FFFD}'));
            }
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

fn hex4_chars(chars: &mut std::str::Chars<'_>) -> Option<u32> {
    let mut v = 0;
    for _ in 0..4 {
        v = v * 16 + chars.next()?.to_digit(16)?;
    }
    Some(v)
}

// ---------------------------------------------------------------------------------------------
// Owned form and encoder
// ---------------------------------------------------------------------------------------------

/// An owned datagram, for building and encoding (`tlsrpt simulate`, tests). Codes are kept as
/// raw numbers so that deliberately wrong datagrams can be built too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatagramBuf {
    /// `dpv`; `Some("1")` for libtlsrpt ≥ 0.5.1, `None` for 0.5.0rc1.
    pub dpv: Option<String>,
    /// `d`
    pub domain: String,
    /// `pr`
    pub record: String,
    /// `policies`
    pub policies: Vec<PolicyBuf>,
}

/// An owned policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyBuf {
    /// `policy-type` code (1 tlsa, 2 sts, 9 no-policy-found).
    pub policy_type: u64,
    /// `policy-domain`
    pub policy_domain: Option<String>,
    /// `policy-string`
    pub policy_strings: Vec<String>,
    /// `mx-host`
    pub mx_hosts: Vec<String>,
    /// `failure-details`
    pub failure_details: Vec<FailureBuf>,
    /// `t`; libtlsrpt writes the number of failure details.
    pub t: u64,
    /// Policy-level `f`: 0 success, 1 failure.
    pub final_result: u64,
}

/// An owned failure detail.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailureBuf {
    /// `c`
    pub code: u64,
    /// `s`
    pub sending_mta_ip: Option<String>,
    /// `n`
    pub receiving_mx_hostname: Option<String>,
    /// `h`
    pub receiving_mx_helo: Option<String>,
    /// `r`
    pub receiving_ip: Option<String>,
    /// `a`
    pub additional_information: Option<String>,
    /// `f`
    pub failure_reason_code: Option<String>,
}

impl DatagramBuf {
    /// A datagram as libtlsrpt 0.5.1 starts it (`dpv` "1"), without policies yet.
    pub fn new(domain: impl Into<String>, record: impl Into<String>) -> Self {
        DatagramBuf {
            dpv: Some(DPV.to_owned()),
            domain: domain.into(),
            record: record.into(),
            policies: Vec::new(),
        }
    }

    /// Encodes it (see [`encode`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        encode(self, &mut out);
        out
    }
}

impl PolicyBuf {
    /// A policy of the given type (`PolicyType::Unknown` becomes code 0, which decoders
    /// reject) that succeeded, with no strings, patterns or failures yet.
    pub fn new(policy_type: &PolicyType, policy_domain: Option<&str>) -> Self {
        PolicyBuf {
            policy_type: policy_type.datagram_code().unwrap_or(0),
            policy_domain: policy_domain.map(str::to_owned),
            ..PolicyBuf::default()
        }
    }

    /// Adds a failure detail, keeps `t` in step and marks the policy failed, as
    /// `tlsrpt_add_delivery_request_failure` + `tlsrpt_finish_policy(FAILURE)` would.
    pub fn push_failure(&mut self, failure: FailureBuf) {
        self.failure_details.push(failure);
        self.t = self.failure_details.len() as u64;
        self.final_result = 1;
    }
}

impl FailureBuf {
    /// A failure with the given result type's code (unknown types get code 0) and no context.
    pub fn new(result_type: &ResultType) -> Self {
        FailureBuf {
            code: result_type.datagram_code().unwrap_or(0),
            ..FailureBuf::default()
        }
    }
}

/// Appends the exact libtlsrpt bytes of `d` to `out` (DATAGRAM.md §2–§3).
pub fn encode(d: &DatagramBuf, out: &mut Vec<u8>) {
    out.push(b'{');
    let mut first = true;
    let mut str_attr = |out: &mut Vec<u8>, key: &str, value: &str| {
        if !first {
            out.push(b',');
        }
        first = false;
        write_str_attr(out, key, value);
    };
    if let Some(dpv) = &d.dpv {
        str_attr(out, "dpv", dpv);
    }
    str_attr(out, "d", &d.domain);
    str_attr(out, "pr", &d.record);
    if !d.policies.is_empty() {
        out.extend_from_slice(b",\"policies\":[");
        for (i, p) in d.policies.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            encode_policy(p, out);
        }
        out.push(b']');
    }
    out.push(b'}');
}

fn encode_policy(p: &PolicyBuf, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"policy-type\":");
    write_u64(out, p.policy_type);
    if let Some(pd) = &p.policy_domain {
        out.push(b',');
        write_str_attr(out, "policy-domain", pd);
    }
    write_str_list(out, "policy-string", &p.policy_strings);
    write_str_list(out, "mx-host", &p.mx_hosts);
    if !p.failure_details.is_empty() {
        out.extend_from_slice(b",\"failure-details\":[");
        for (i, f) in p.failure_details.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"c\":");
            write_u64(out, f.code);
            for (key, value) in [
                ("s", &f.sending_mta_ip),
                ("n", &f.receiving_mx_hostname),
                ("h", &f.receiving_mx_helo),
                ("r", &f.receiving_ip),
                ("a", &f.additional_information),
                ("f", &f.failure_reason_code),
            ] {
                if let Some(v) = value {
                    out.push(b',');
                    write_str_attr(out, key, v);
                }
            }
            out.push(b'}');
        }
        out.push(b']');
    }
    out.extend_from_slice(b",\"t\":");
    write_u64(out, p.t);
    out.extend_from_slice(b",\"f\":");
    write_u64(out, p.final_result);
    out.push(b'}');
}

fn write_str_list(out: &mut Vec<u8>, key: &str, values: &[String]) {
    if values.is_empty() {
        return;
    }
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":[");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        escape_into(out, v);
        out.push(b'"');
    }
    out.push(b']');
}

fn write_str_attr(out: &mut Vec<u8>, key: &str, value: &str) {
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\": \"");
    escape_into(out, value);
    out.push(b'"');
}

fn write_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(crate::ascii::decimal(v, &mut [0; 20]).as_bytes());
}

/// libtlsrpt's escape table (`json-escape-initializer-list.c`).
fn escape_into(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x09 => out.extend_from_slice(b"\\t"),
            0x0A => out.extend_from_slice(b"\\n"),
            0x0C => out.extend_from_slice(b"\\f"),
            0x0D => out.extend_from_slice(b"\\r"),
            0..0x20 | 0x7F => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xF)],
            ]),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helo_first_line_host() {
        assert_eq!(
            helo_hostname("250-mx.example.org\r\n250-PIPELINING\r\n250 STARTTLS"),
            Some("mx.example.org")
        );
        assert_eq!(
            helo_hostname("250 mx.example.org ESMTP"),
            Some("mx.example.org")
        );
        assert_eq!(
            helo_hostname("mx1.mail.example.com"),
            Some("mx1.mail.example.com")
        );
        assert_eq!(helo_hostname("250\r\n"), None);
        assert_eq!(helo_hostname(""), None);
    }

    #[test]
    fn unescape_round_trips_escape_table() {
        let s = "a\"b\\c\u{8}\u{c}\n\r\t\u{1}\u{7f}ü€😀";
        let mut out = Vec::new();
        escape_into(&mut out, s);
        let raw = String::from_utf8(out).unwrap();
        assert_eq!(raw, "a\\\"b\\\\c\\b\\f\\n\\r\\t\\u0001\\u007fü€😀");
        assert_eq!(unescape(&raw), s);
        assert_eq!(unescape("\\ud83d\\ude00\\u00FC"), "😀ü");
    }
}
