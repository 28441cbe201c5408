//! The lenient report reader: accept what real senders send, keep every datum, and say
//! precisely what was tolerated.
//!
//! Real TLS reports stray from RFC 8460 in many small ways (REQUIREMENTS §13.3, §14): `mx-host`
//! as a bare string, `null` contact-info, date-times without an offset, a TLSA policy-string
//! JSON-encoded twice, `""` for absent values. A receiver that rejects those loses most of its
//! reports; one that silently "fixes" them hides what senders do. So this reader keeps the data,
//! and records one [`Deviation`] per quirk (REQUIREMENTS RCV-11).
//!
//! What cannot be tolerated is a report that cannot be attributed or counted: no `report-id`,
//! no `date-range`, no `policies` array, a policy without type or summary counts, a failure
//! detail without result type or count, a count that is negative or not an integer, a policy
//! that is not `no-policy-found` and has no `policy-domain`. Those give
//! [`ReadError::Invalid`], which lists **every** such problem at once so the sender (or the
//! operator) can fix them in one go.
//!
//! # Decisions where the RFC is silent
//!
//! * **Duplicate member names** (REQUIREMENTS JSON-01, I-JSON): rejected with
//!   [`ReadError::DuplicateKey`]. Keeping either value would let two parsers read different
//!   counts from the same report, and no known sender emits duplicates.
//! * **Trailing bytes after the gzip member**: rejected ([`ReadError::GzipTrailingData`]). A
//!   report is one JSON document in one member; a second member or garbage means the file was
//!   damaged or crafted, and the concatenation could not be one JSON text anyway.
//! * **A UTF-8 byte order mark** before the JSON is skipped and reported (JSON-01; RFC 8259 §8.1
//!   lets parsers ignore it).
//! * **Counts**: integers `0 ..= 2^53-1` (I-JSON). Negative, fractional or larger values are
//!   errors (JSON-32). An integral float such as `7.0` and a numeric string such as `"7"` are
//!   accepted as deviations.
//! * **Unknown members** are ignored and each reported once (RCV-11), never rejected.
//! * **Wrongly typed values** (an object where a string belongs, ...) are errors: there is no
//!   meaning to keep.
//! * **Failure-detail totals** that differ from `total-failure-session-count` are reported with
//!   rule JSON-30 as a note: failure types and policies overlap, so this is never an error.
//! * **Bounded messages**: at most [`MAX_PROBLEMS`] problems and [`MAX_DEVIATIONS`] deviations
//!   are kept (plus one entry counting the rest), input echoed in a message is cut to 64
//!   characters and escaped, and the one-line `Display` of [`ReadError::Invalid`] names the
//!   first 20 problems. A hostile report cannot turn into megabytes of log text.
//! * **IP addresses** are kept as written; non-canonical ones (RFC 5952) and non-addresses
//!   (`x.x.x.x`) are reported (JSON-22, JSON-25); the writer canonicalises or omits them.
//!
//! # Speed
//!
//! The JSON text is parsed once by our own parser (`read/json.rs`) into a small borrowed tree
//! in a per-thread arena (member names and escape-free strings point into the input),
//! enforcing depth, length and duplicate limits while it is built; the tree is then walked
//! with JSON paths. `benches/report.rs` compares this with
//! `serde_json::from_slice::<serde_json::Value>` on the same bytes, and
//! `scripts/bench-parse.sh` with parsedmarc.

use std::fmt;
use std::net::IpAddr;

use jiff::Timestamp;

mod json;

use json::Node;

use crate::deviation::Deviation;
use crate::naming::short;
use crate::report::{DateRange, FailureDetail, Policy, PolicyResult, Report, Summary};
use crate::types::{PolicyType, ResultType};

/// The largest count a report may carry: 2^53-1, the I-JSON integer limit (REQUIREMENTS
/// JSON-01, JSON-32).
pub const MAX_COUNT: u64 = (1 << 53) - 1;

/// Hard limits on untrusted input. Every limit, when exceeded, gives an error that names it.
///
/// The defaults are generous for any real report and still keep the work for one hostile
/// input small (tens of MiB of memory, well under a second).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted input as given (compressed or not). Default 10 MiB: the size limit
    /// commonly seen for reports, which receivers should accept (REQUIREMENTS DLV-02).
    pub max_input_bytes: usize,
    /// Largest accepted gzip output. Default 20 MiB, as mox allows (REQUIREMENTS DLV-02); a
    /// gzip bomb stops here with bounded memory.
    pub max_decompressed_bytes: usize,
    /// Deepest accepted JSON nesting (the top-level object is depth 1). A report needs 5
    /// (`policies[].failure-details[]`); default 16 leaves room for extension members while
    /// keeping recursion shallow.
    pub max_depth: usize,
    /// Most elements in one JSON array, most members in one JSON object, and most values in
    /// the whole document (array elements plus object members). Default 1,000,000: a 20 MiB
    /// report of real shape has well under that, and the parsed tree stays under ~60 MiB.
    pub max_array_len: usize,
    /// Most elements of `policies`. Default 100,000: one per recipient domain and policy is
    /// plenty even for a large provider's daily report.
    pub max_policies: usize,
    /// Most elements of one policy's `failure-details`. Default 1,000,000 (each distinct
    /// sending IP, receiving IP and reason gives its own entry, REQUIREMENTS JSON-31).
    pub max_failure_details: usize,
    /// Longest accepted JSON string or member name, in bytes. Default 64 KiB: a policy-string
    /// line or a URI is far shorter; an MTA-STS policy file is at most 64 KB (STS-03).
    pub max_string_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_bytes: 10 * 1024 * 1024,
            max_decompressed_bytes: 20 * 1024 * 1024,
            max_depth: 16,
            max_array_len: 1_000_000,
            max_policies: 100_000,
            max_failure_details: 1_000_000,
            max_string_len: 64 * 1024,
        }
    }
}

/// A report as read, with every deviation that was tolerated on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reading {
    /// The report, with all data the sender gave.
    pub report: Report,
    /// What was tolerated, in the order met: top-level members in RFC 8460 §4.4 order, then
    /// each policy in turn.
    pub deviations: Vec<Deviation>,
}

/// One reason a report is unusable, at a JSON path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// JSON path such as `policies[1].summary.total-failure-session-count`; `$` for the
    /// document itself.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Where in the input text something happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in bytes).
    pub column: usize,
    /// 0-based byte offset into the JSON text.
    pub offset: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} column {} (byte {})",
            self.line, self.column, self.offset
        )
    }
}

/// Why a report could not be read. Each message names the limit, the byte offset or the JSON
/// path and the problem.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    /// The input is larger than `max_input_bytes`.
    #[error("input is {len} bytes, over the limit max_input_bytes = {max}")]
    InputTooLarge {
        /// Input length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The gzip output would exceed `max_decompressed_bytes` (a gzip bomb, or just too big).
    #[error("gzip output exceeds the limit max_decompressed_bytes = {max}")]
    DecompressedTooLarge {
        /// The limit.
        max: usize,
    },
    /// [`gunzip`] was given data without the gzip magic `1f 8b`.
    #[error("not gzip data: the first bytes are not the gzip magic 1f 8b")]
    NotGzip,
    /// The gzip stream is damaged or truncated.
    #[error("bad gzip data: {0}")]
    Gzip(String),
    /// Bytes follow the (single) gzip member.
    #[error("{count} bytes of trailing data after the gzip member, at byte {offset}")]
    GzipTrailingData {
        /// Offset of the first byte after the member.
        offset: usize,
        /// How many bytes follow.
        count: usize,
    },
    /// [`read_json`] was given gzip data (magic `1f 8b`); [`read_report`] detects it.
    #[error("input is gzip-compressed (magic 1f 8b), not plain JSON")]
    UnexpectedGzip,
    /// The input is empty (or only whitespace).
    #[error("empty input: no JSON report")]
    Empty,
    /// The JSON text is not UTF-8 (RFC 8259 §8.1, I-JSON).
    #[error("invalid UTF-8 at byte {offset}")]
    Utf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The text is not JSON.
    #[error("not JSON: {message} at {at}")]
    Syntax {
        /// Where.
        at: Position,
        /// What was expected there.
        message: String,
    },
    /// A structural limit was hit while parsing.
    #[error("limit {limit} = {max} exceeded at {at}")]
    Limit {
        /// Which field of [`Limits`].
        limit: &'static str,
        /// Its value.
        max: usize,
        /// Where.
        at: Position,
    },
    /// A count limit (`max_policies`, `max_failure_details`) was hit at a JSON path.
    #[error("limit {limit} = {max} exceeded at {path} ({len} elements)")]
    TooMany {
        /// Which field of [`Limits`].
        limit: &'static str,
        /// Its value.
        max: usize,
        /// The array's path.
        path: String,
        /// Its length.
        len: usize,
    },
    /// An object repeats a member name (REQUIREMENTS JSON-01).
    #[error("duplicate member name \"{key}\" at {at} (I-JSON forbids it, JSON-01)")]
    DuplicateKey {
        /// The repeated name.
        key: String,
        /// Where the second one ends.
        at: Position,
    },
    /// The JSON text is not an object.
    #[error("$: a report must be a JSON object, found {found}")]
    NotAnObject {
        /// What was found instead.
        found: &'static str,
    },
    /// The report is JSON but unusable; every problem found is listed.
    #[error("unusable report: {}", join_problems(.0))]
    Invalid(Vec<Problem>),
}

/// How many problems the one-line `Display` of [`ReadError::Invalid`] lists; the vector
/// keeps more (up to [`MAX_PROBLEMS`]).
const SHOWN_PROBLEMS: usize = 20;

/// Most problems kept for one report, and most deviations: a hostile report with a million
/// bad entries gives a bounded list plus one summary entry, not a million messages.
pub const MAX_PROBLEMS: usize = 1000;

/// See [`MAX_PROBLEMS`].
pub const MAX_DEVIATIONS: usize = 1000;

fn join_problems(p: &[Problem]) -> String {
    let mut s = String::new();
    for (i, x) in p.iter().take(SHOWN_PROBLEMS).enumerate() {
        if i > 0 {
            s.push_str("; ");
        }
        s.push_str(&x.to_string());
    }
    if p.len() > SHOWN_PROBLEMS {
        s.push_str(&format!("; and {} more", p.len() - SHOWN_PROBLEMS));
    }
    s
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// True when `bytes` start with the gzip magic `1f 8b` (RFC 1952 §2.3.1).
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// Reads a report, gzip (detected by the magic `1f 8b`, whatever the file is called or
/// labelled) or plain JSON. `max_input_bytes` applies to `bytes`; the JSON inside a gzip
/// stream is bounded by `max_decompressed_bytes` instead.
pub fn read_report(bytes: &[u8], limits: &Limits) -> Result<Reading, ReadError> {
    if is_gzip(bytes) {
        // Inflated into a per-thread buffer: a report then costs no allocation, no zeroing
        // and no free for its JSON text.
        with_scratch(|scratch| {
            let n = gunzip_into(bytes, limits, scratch)?;
            read_json_text(scratch.get(..n).unwrap_or_default(), limits)
        })
    } else {
        read_json(bytes, limits)
    }
}

/// Reads a plain JSON report (no gzip detection), bounded by `max_input_bytes`.
pub fn read_json(bytes: &[u8], limits: &Limits) -> Result<Reading, ReadError> {
    if bytes.len() > limits.max_input_bytes {
        return Err(ReadError::InputTooLarge {
            len: bytes.len(),
            max: limits.max_input_bytes,
        });
    }
    if is_gzip(bytes) {
        return Err(ReadError::UnexpectedGzip);
    }
    read_json_text(bytes, limits)
}

/// Decompresses one gzip member (RFC 1952) with bounded output: inflation stops as soon as
/// the output passes `max_decompressed_bytes`, so a bomb costs at most that much memory and
/// time. The header and the CRC-32/ISIZE trailer are checked here; anything after the member
/// (including a second member) is rejected.
///
/// Reports are small and arrive by the thousand, so inflating uses our own decoder
/// ([`crate::inflate`]), built for small inputs (its tables are sized to the block rather than
/// zlib's fixed 1,024 + 512 entries, which cost more to fill than a 1 KiB report takes to
/// decode). The output buffer is reserved from the trailer's ISIZE, clamped to the limit, so
/// an honest stream is inflated without a reallocation and a lying one costs no more than the
/// limit.
pub fn gunzip(bytes: &[u8], limits: &Limits) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    let n = gunzip_into(bytes, limits, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// [`gunzip`] into `scratch` (reused: see [`crate::inflate::inflate_reuse`]); the output is
/// `scratch[..n]`.
fn gunzip_into(bytes: &[u8], limits: &Limits, scratch: &mut Vec<u8>) -> Result<usize, ReadError> {
    if bytes.len() > limits.max_input_bytes {
        return Err(ReadError::InputTooLarge {
            len: bytes.len(),
            max: limits.max_input_bytes,
        });
    }
    if !is_gzip(bytes) {
        return Err(ReadError::NotGzip);
    }
    let cap = limits.max_decompressed_bytes;
    let body = gzip_header_len(bytes)?;
    let input = &bytes[body..];
    // RFC 1952 §2.3.1: ISIZE is the last four bytes of a single-member file; only a size hint
    // here (checked against the real length below).
    let hint = bytes
        .get(bytes.len().saturating_sub(4)..)
        .and_then(|t| <[u8; 4]>::try_from(t).ok())
        .map_or(0, |t| u32::from_le_bytes(t) as usize);
    // Deflate expands at most 1,032:1 (RFC 1951 §3.2.5: a 258-byte match per ~2 bits), so a
    // hint beyond that is a lie and is not reserved.
    let hint = hint.min(input.len().saturating_mul(1032));
    let (used, n) =
        crate::inflate::inflate_reuse(input, scratch, hint, cap).map_err(|e| match e {
            crate::inflate::InflateError::Truncated => truncated(),
            crate::inflate::InflateError::TooLarge { .. } => {
                ReadError::DecompressedTooLarge { max: cap }
            }
            crate::inflate::InflateError::Invalid(what) => {
                ReadError::Gzip(format!("invalid deflate data: {what}"))
            }
        })?;
    let out = scratch.get(..n).unwrap_or_default();
    // RFC 1952 §2.3.1: CRC32 then ISIZE (the length modulo 2^32), both little-endian.
    let trailer = input.get(used..used + 8).ok_or_else(truncated)?;
    let crc = crc32fast::hash(out);
    let want_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let want_len = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    if crc != want_crc {
        return Err(ReadError::Gzip("CRC-32 mismatch (corrupt data)".into()));
    }
    if n as u32 != want_len {
        return Err(ReadError::Gzip(
            "length in the trailer does not match the data".into(),
        ));
    }
    let end = body + used + 8;
    if end < bytes.len() {
        return Err(ReadError::GzipTrailingData {
            offset: end,
            count: bytes.len() - end,
        });
    }
    Ok(n)
}

fn truncated() -> ReadError {
    ReadError::Gzip("truncated stream".into())
}

/// Length of the RFC 1952 §2.3 member header: the fixed 10 bytes, then the optional extra
/// field, file name, comment and header CRC that `FLG` announces. The file name is skipped,
/// never used (REQUIREMENTS RCV-05, IANA-03).
fn gzip_header_len(b: &[u8]) -> Result<usize, ReadError> {
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    const RESERVED: u8 = 0xe0;
    let fixed = b.get(..10).ok_or_else(truncated)?;
    if fixed[2] != 8 {
        return Err(ReadError::Gzip(format!(
            "compression method {} is not deflate (8)",
            fixed[2]
        )));
    }
    let flags = fixed[3];
    if flags & RESERVED != 0 {
        return Err(ReadError::Gzip("reserved header flags are set".into()));
    }
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let xlen = b.get(at..at + 2).ok_or_else(truncated)?;
        at += 2 + usize::from(u16::from_le_bytes([xlen[0], xlen[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let zero = b.get(at..).and_then(|r| r.iter().position(|&c| c == 0));
            at += zero.ok_or_else(truncated)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    if at > b.len() {
        return Err(truncated());
    }
    Ok(at)
}

fn read_json_text(bytes: &[u8], limits: &Limits) -> Result<Reading, ReadError> {
    let mut deviations = Vec::new();
    let mut bytes = bytes;
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        // RFC 8259 §8.1: senders MUST NOT add a BOM, parsers MAY ignore it.
        deviations.push(Deviation::new(
            "$",
            "JSON-01",
            "UTF-8 byte order mark before the JSON text; skipped",
        ));
        bytes = rest;
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ReadError::Utf8 {
        offset: e.valid_up_to() + if deviations.is_empty() { 0 } else { 3 },
    })?;
    with_arena(|arena| walk(text, limits, deviations, arena))
}

thread_local! {
    /// The arena the JSON tree of one report is built in, reset for the next: a report then
    /// costs no allocation for its tree and no recursive drop.
    static ARENA: std::cell::Cell<bumpalo::Bump> = std::cell::Cell::new(bumpalo::Bump::new());
}

/// A per-thread arena or inflate buffer is kept between reports only up to this size; one
/// that a big report grew is dropped, so a hostile input does not pin its memory in every
/// thread.
const KEEP_SCRATCH_BYTES: usize = 256 * 1024;

thread_local! {
    /// The buffer gzipped reports are inflated into, kept for the next ([`with_scratch`]).
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Runs `f` with this thread's inflate buffer (see [`with_kept`]); the output is at its
/// start, whatever is left beyond it from earlier reports.
fn with_scratch<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    with_kept(&SCRATCH, Vec::capacity, f)
}

/// Runs `f` with this thread's arena, reset first (see [`with_kept`]).
fn with_arena<T>(f: impl FnOnce(&bumpalo::Bump) -> T) -> T {
    with_kept(&ARENA, bumpalo::Bump::allocated_bytes, |arena| {
        arena.reset();
        f(arena)
    })
}

/// Runs `f` with the per-thread scratch in `key`, which is kept for the next report unless
/// it grew past [`KEEP_SCRATCH_BYTES`] (by `size`): then it is dropped, so a hostile input does
/// not pin its memory in every thread.
///
/// The scratch is taken out of the thread-local for the call (a re-entered call, not done
/// today, finds a fresh one) and put back by a guard's drop, rather than lent through
/// `LocalKey::with`'s closure: `f`'s result, a whole [`Reading`] of ~150 bytes, is then
/// written straight into the caller's return slot instead of being copied through a local
/// and each closure layer.
#[inline(always)]
fn with_kept<S: Default, T>(
    key: &'static std::thread::LocalKey<std::cell::Cell<S>>,
    size: fn(&S) -> usize,
    f: impl FnOnce(&mut S) -> T,
) -> T {
    let mut kept = Kept {
        key,
        size,
        scratch: key.take(),
    };
    f(&mut kept.scratch)
}

/// Puts a scratch back into its thread-local when dropped (see [`with_kept`]).
struct Kept<S: Default + 'static> {
    key: &'static std::thread::LocalKey<std::cell::Cell<S>>,
    size: fn(&S) -> usize,
    scratch: S,
}

impl<S: Default + 'static> Drop for Kept<S> {
    fn drop(&mut self) {
        if (self.size)(&self.scratch) <= KEEP_SCRATCH_BYTES {
            self.key.set(std::mem::take(&mut self.scratch));
        }
    }
}

fn walk(
    text: &str,
    limits: &Limits,
    deviations: Vec<Deviation>,
    arena: &bumpalo::Bump,
) -> Result<Reading, ReadError> {
    let root = match json::parse(text, limits, arena) {
        Ok(root) => root,
        // An empty text (or only whitespace, Unicode's included) is no report rather than a
        // syntax error. Checked only once parsing failed: a text with a value is not empty.
        Err(_) if text.trim_start().is_empty() => return Err(ReadError::Empty),
        Err(e) => return Err(e),
    };
    let Node::Obj(members) = root else {
        return Err(ReadError::NotAnObject { found: root.kind() });
    };
    Walker {
        limits,
        deviations,
        problems: Vec::new(),
        dropped_deviations: 0,
        dropped_problems: 0,
    }
    .report(members)
}

// ------------------------------------------------------------------------------------------
// Walking the tree into the model.

/// A JSON path, built only when a message needs it.
#[derive(Clone, Copy)]
enum P<'a> {
    Root,
    Key(&'a P<'a>, &'a str),
    Idx(&'a P<'a>, usize),
}

impl<'a> P<'a> {
    fn key(&'a self, k: &'a str) -> P<'a> {
        P::Key(self, k)
    }
    fn idx(&'a self, i: usize) -> P<'a> {
        P::Idx(self, i)
    }
}

impl P<'_> {
    /// Appends the path to `out`: `$` alone, else `a.b[2].c` (no formatter machinery, as
    /// every deviation builds one).
    fn push_to(&self, out: &mut String) {
        match self {
            P::Root => out.push('$'),
            // Member names come from the input: cut long ones so paths stay readable.
            P::Key(P::Root, k) => out.push_str(short(k)),
            P::Key(parent, k) => {
                parent.push_to(out);
                out.push('.');
                out.push_str(short(k));
            }
            P::Idx(parent, i) => {
                parent.push_to(out);
                out.push('[');
                match u8::try_from(*i) {
                    // Nearly every index is one digit.
                    Ok(d @ 0..=9) => out.push(char::from(b'0' + d)),
                    _ => out.push_str(crate::ascii::decimal(*i as u64, &mut [0; 20])),
                }
                out.push(']');
            }
        }
    }
}

impl fmt::Display for P<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(64);
        self.push_to(&mut s);
        f.write_str(&s)
    }
}

type Members<'de> = [(&'de str, Node<'de>)];

struct Walker<'l> {
    limits: &'l Limits,
    deviations: Vec<Deviation>,
    problems: Vec<Problem>,
    dropped_deviations: usize,
    dropped_problems: usize,
}

impl Walker<'_> {
    fn dev(&mut self, path: &P<'_>, rule: &'static str, message: impl Into<String>) {
        if self.deviations.len() >= MAX_DEVIATIONS {
            self.dropped_deviations += 1;
            return;
        }
        let mut p = String::with_capacity(64);
        path.push_to(&mut p);
        self.deviations.push(Deviation::new(p, rule, message));
    }

    fn problem(&mut self, path: &P<'_>, message: impl Into<String>) {
        if self.problems.len() >= MAX_PROBLEMS {
            self.dropped_problems += 1;
            return;
        }
        self.problems.push(Problem {
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// Adds one summary entry for what the caps left out.
    fn finish(&mut self) {
        if self.dropped_deviations > 0 {
            self.deviations.push(Deviation::new(
                "$",
                "RCV-11",
                format!(
                    "{} more deviations not listed (at most {MAX_DEVIATIONS} are)",
                    self.dropped_deviations
                ),
            ));
        }
        if self.dropped_problems > 0 {
            self.problems.push(Problem {
                path: "$".into(),
                message: format!(
                    "{} more problems not listed (at most {MAX_PROBLEMS} are)",
                    self.dropped_problems
                ),
            });
        }
    }

    /// The values of the members named in `known`, in its order, found in one pass over
    /// `m`; members that are not in `known` are reported in the object's order (REQUIREMENTS
    /// RCV-11: ignore, never reject).
    fn members<'n, 'de, const N: usize>(
        &mut self,
        path: &P<'_>,
        m: &'n Members<'de>,
        known: &[&str; N],
    ) -> [Option<&'n Node<'de>>; N] {
        let mut slots = [None; N];
        for (k, v) in m {
            match known.iter().position(|n| n == k) {
                // The parser rejects duplicate names, so each slot is filled at most once.
                // Every slot is visited at a constant index rather than the found one written
                // at a computed index: the slots then stay in registers (selects). Through
                // memory, the reads of the slots right after the loop stalled on the last
                // store, whose address is known only once the name compares are done (3-5% of
                // a JSON report's time, measured).
                Some(i) => {
                    for (j, slot) in slots.iter_mut().enumerate() {
                        if j == i {
                            *slot = Some(v);
                        }
                    }
                }
                None => {
                    let p = path.key(k);
                    self.dev(&p, "RCV-11", "unknown member ignored");
                }
            }
        }
        slots
    }

    /// A string the report cannot do without: absent, `null`, `""` or a wrong type are problems.
    fn required_str(&mut self, path: &P<'_>, node: Option<&Node<'_>>) -> Option<String> {
        self.required_text(path, node).map(str::to_owned)
    }

    /// [`Self::required_str`], borrowed from the input: a value that is only matched
    /// against known names (policy-type, result-type) needs no copy of its own.
    fn required_text<'de>(&mut self, path: &P<'_>, node: Option<&Node<'de>>) -> Option<&'de str> {
        match node {
            None | Some(Node::Null) => {
                self.problem(path, "missing (required by RFC 8460 §4.4)");
                None
            }
            Some(Node::Str("")) => {
                self.problem(path, "empty (required by RFC 8460 §4.4)");
                None
            }
            Some(Node::Str(s)) => Some(s),
            Some(other) => {
                self.problem(path, format!("expected a string, found {}", other.kind()));
                None
            }
        }
    }

    /// An optional string: `""` and `null` mean absent (REQUIREMENTS JSON-29).
    fn optional_str(&mut self, path: &P<'_>, node: Option<&Node<'_>>) -> Option<String> {
        match node {
            None => None,
            Some(Node::Null) => {
                self.dev(
                    path,
                    "JSON-29",
                    "null instead of omitting the member; read as absent",
                );
                None
            }
            Some(Node::Str("")) => {
                self.dev(
                    path,
                    "JSON-29",
                    "\"\" instead of omitting the member; read as absent",
                );
                None
            }
            Some(Node::Str(s)) => Some((*s).to_owned()),
            Some(other) => {
                self.problem(path, format!("expected a string, found {}", other.kind()));
                None
            }
        }
    }

    /// A session count: an integer in `0 ..= 2^53-1` (REQUIREMENTS JSON-32).
    fn count(&mut self, path: &P<'_>, node: Option<&Node<'_>>) -> Option<u64> {
        match node {
            None | Some(Node::Null) => {
                self.problem(path, "missing (required by RFC 8460 §4.4)");
                None
            }
            Some(Node::U64(n)) if *n <= MAX_COUNT => Some(*n),
            Some(Node::U64(n)) => {
                self.problem(path, format!("count {n} is over 2^53-1 (I-JSON, JSON-32)"));
                None
            }
            // The parser reads `-0` this way.
            Some(Node::I64(n)) if *n >= 0 => Some(n.unsigned_abs()),
            Some(Node::I64(n)) => {
                self.problem(path, format!("count {n} is negative (JSON-32)"));
                None
            }
            Some(Node::F64(f)) => {
                if f.is_finite() && f.fract() == 0.0 && *f >= 0.0 && *f <= MAX_COUNT as f64 {
                    self.dev(
                        path,
                        "JSON-32",
                        format!("count written as a non-integer number ({f}); read as an integer"),
                    );
                    Some(*f as u64)
                } else if *f < 0.0 {
                    self.problem(path, format!("count {f} is negative (JSON-32)"));
                    None
                } else if f.fract() != 0.0 {
                    self.problem(path, format!("count {f} is not an integer (JSON-32)"));
                    None
                } else {
                    self.problem(path, format!("count {f} is over 2^53-1 (I-JSON, JSON-32)"));
                    None
                }
            }
            Some(Node::Str(s)) => {
                let digits =
                    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
                match s.parse::<u64>() {
                    Ok(n) if digits && n <= MAX_COUNT => {
                        self.dev(
                            path,
                            "JSON-32",
                            format!(
                                "count written as the string {s_q}; read as the number {n}",
                                s_q = q(s)
                            ),
                        );
                        Some(n)
                    }
                    _ => {
                        self.problem(
                            path,
                            format!(
                                "expected a count (integer 0..2^53-1), found the string {s_q}",
                                s_q = q(s)
                            ),
                        );
                        None
                    }
                }
            }
            Some(other) => {
                self.problem(path, format!("expected a count, found {}", other.kind()));
                None
            }
        }
    }

    /// The whole reading: the report when it is usable, else every problem found. Built
    /// here, in the return slot, rather than as an `Option<Report>` moved into a `Reading`
    /// by the caller (a copy of ~140 bytes per report).
    fn report(mut self, m: &Members<'_>) -> Result<Reading, ReadError> {
        let root = P::Root;
        let [org, dr, ci, rid, pol] = self.members(
            &root,
            m,
            &[
                "organization-name",
                "date-range",
                "contact-info",
                "report-id",
                "policies",
            ],
        );
        let p_org = root.key("organization-name");
        let organization_name = match org {
            None => {
                self.dev(
                    &p_org,
                    "JSON-10",
                    "missing (required by RFC 8460 §4.4); read as unknown",
                );
                None
            }
            n => self.optional_str(&p_org, n),
        };
        let p_dr = root.key("date-range");
        let date_range = self.date_range(&p_dr, dr);
        let p_ci = root.key("contact-info");
        let contact_info = match ci {
            None => {
                self.dev(
                    &p_ci,
                    "JSON-13",
                    "missing (required by RFC 8460 §4.4); read as unknown",
                );
                None
            }
            Some(Node::Null) => {
                self.dev(
                    &p_ci,
                    "JSON-13",
                    "null instead of an addr-spec; read as unknown",
                );
                None
            }
            n => self.optional_str(&p_ci, n),
        };
        let report_id = self.required_str(&root.key("report-id"), rid);
        let p_pol = root.key("policies");
        let policies = match pol {
            None | Some(Node::Null) => {
                self.problem(&p_pol, "missing (required by RFC 8460 §4.4)");
                None
            }
            Some(Node::Arr(items)) => {
                if items.len() > self.limits.max_policies {
                    return Err(ReadError::TooMany {
                        limit: "max_policies",
                        max: self.limits.max_policies,
                        path: p_pol.to_string(),
                        len: items.len(),
                    });
                }
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let p = p_pol.idx(i);
                    self.policy_result(&p, item, &mut out)?;
                }
                Some(out)
            }
            Some(other) => {
                self.problem(
                    &p_pol,
                    format!("must be an array (JSON-02), found {}", other.kind()),
                );
                None
            }
        };
        self.finish();
        match (date_range, report_id, policies) {
            (Some(date_range), Some(report_id), Some(policies)) if self.problems.is_empty() => {
                Ok(Reading {
                    report: Report {
                        organization_name,
                        date_range,
                        contact_info,
                        report_id,
                        policies,
                    },
                    deviations: self.deviations,
                })
            }
            _ => Err(ReadError::Invalid(self.problems)),
        }
    }

    fn date_range(&mut self, path: &P<'_>, node: Option<&Node<'_>>) -> Option<DateRange> {
        let m = match node {
            None | Some(Node::Null) => {
                self.problem(path, "missing (required by RFC 8460 §4.4)");
                return None;
            }
            Some(Node::Obj(m)) => m,
            Some(other) => {
                self.problem(path, format!("expected an object, found {}", other.kind()));
                return None;
            }
        };
        let [sdt, edt] = self.members(path, m, &["start-datetime", "end-datetime"]);
        let ps = path.key("start-datetime");
        let start = self.datetime(&ps, sdt);
        let pe = path.key("end-datetime");
        let end = self.datetime(&pe, edt);
        let (start, end) = (start?, end?);
        if end < start {
            self.dev(
                path,
                "JSON-11",
                format!("end-datetime {end} is before start-datetime {start}; kept as written"),
            );
            return Some(DateRange { start, end });
        }
        // REQUIREMENTS JSON-11/JSON-12: one whole UTC day, ending 23:59:59Z. A next-day
        // 00:00:00Z end is seen in the wild (cry-inc issue 71).
        let day = 86_400i64;
        let (s, e) = (start.as_second(), end.as_second());
        let mut effective_end = e;
        if e.rem_euclid(day) == 0 && end.subsec_nanosecond() == 0 && e > s {
            self.dev(
                &pe,
                "JSON-12",
                format!(
                    "ends at 00:00:00Z of the next day ({end}) instead of 23:59:59Z; kept as written"
                ),
            );
            effective_end = e - 1;
        }
        if s.rem_euclid(day) != 0 || effective_end != s + day - 1 {
            self.dev(
                path,
                "JSON-11",
                format!("the range {start} .. {end} is not one whole UTC day"),
            );
        }
        Some(DateRange { start, end })
    }

    fn datetime(&mut self, path: &P<'_>, node: Option<&Node<'_>>) -> Option<Timestamp> {
        let s = match node {
            None | Some(Node::Null) => {
                self.problem(path, "missing (required by RFC 8460 §4.4)");
                return None;
            }
            Some(Node::Str(s)) => s,
            Some(other) => {
                self.problem(
                    path,
                    format!(
                        "expected an RFC 3339 date-time string, found {}",
                        other.kind()
                    ),
                );
                return None;
            }
        };
        match parse_datetime(s) {
            Ok((ts, None)) => Some(ts),
            Ok((ts, Some((rule, msg)))) => {
                self.dev(path, rule, msg);
                Some(ts)
            }
            Err(msg) => {
                self.problem(path, msg);
                None
            }
        }
    }

    /// One element of `policies`, pushed onto `out` when it is usable. Pushed here rather
    /// than returned (as the failure details are): the ~140-byte result is then not copied
    /// out through a `Result<Option<_>>` first.
    fn policy_result(
        &mut self,
        path: &P<'_>,
        node: &Node<'_>,
        out: &mut Vec<PolicyResult>,
    ) -> Result<(), ReadError> {
        let Node::Obj(m) = node else {
            self.problem(path, format!("expected an object, found {}", node.kind()));
            return Ok(());
        };
        let [pol, sum, fds] = self.members(path, m, &["policy", "summary", "failure-details"]);
        let pp = path.key("policy");
        let policy = self.policy(&pp, pol);
        let ps = path.key("summary");
        let summary = self.summary(&ps, sum);
        let pf = path.key("failure-details");
        let mut failure_details = Vec::new();
        let mut details_ok = true;
        match fds {
            None => {}
            Some(Node::Null) => {
                self.dev(
                    &pf,
                    "JSON-29",
                    "null instead of omitting the member; read as none",
                );
            }
            Some(Node::Arr(items)) => {
                if items.len() > self.limits.max_failure_details {
                    return Err(ReadError::TooMany {
                        limit: "max_failure_details",
                        max: self.limits.max_failure_details,
                        path: pf.to_string(),
                        len: items.len(),
                    });
                }
                failure_details.reserve_exact(items.len());
                for (i, item) in items.iter().enumerate() {
                    let p = pf.idx(i);
                    if !self.failure_detail(&p, item, &mut failure_details) {
                        details_ok = false;
                    }
                }
            }
            Some(other) => {
                self.problem(&pf, format!("expected an array, found {}", other.kind()));
                details_ok = false;
            }
        }
        let (Some(policy), Some(summary)) = (policy, summary) else {
            return Ok(());
        };
        if !details_ok {
            return Ok(());
        }
        // REQUIREMENTS JSON-30: failure types overlap, so sums need not match. A note only.
        if !failure_details.is_empty() {
            let sum = failure_details
                .iter()
                .fold(0u64, |a, d| a.saturating_add(d.failed_session_count));
            if sum != summary.total_failure_session_count {
                self.dev(
                    &pf,
                    "JSON-30",
                    format!(
                        "note: failed-session-counts add up to {sum}, total-failure-session-count \
                         is {}; allowed, failure types overlap",
                        summary.total_failure_session_count
                    ),
                );
            }
        }
        out.push(PolicyResult {
            policy,
            summary,
            failure_details,
        });
        Ok(())
    }

    fn policy(&mut self, path: &P<'_>, node: Option<&Node<'_>>) -> Option<Policy> {
        let m = match node {
            None | Some(Node::Null) => {
                self.problem(path, "missing (required by RFC 8460 §4.4)");
                return None;
            }
            Some(Node::Obj(m)) => m,
            Some(other) => {
                self.problem(path, format!("expected an object, found {}", other.kind()));
                return None;
            }
        };
        let [ptype, pstring, pdomain, mx] = self.members(
            path,
            m,
            &["policy-type", "policy-string", "policy-domain", "mx-host"],
        );
        let pt = path.key("policy-type");
        let policy_type = self.required_text(&pt, ptype).map(PolicyType::parse);
        if let Some(PolicyType::Unknown(t)) = &policy_type {
            self.dev(
                &pt,
                "JSON-15",
                format!(
                    "unknown policy-type {t_q}; kept verbatim",
                    t_q = q(t.as_str())
                ),
            );
        }
        let policy_string = self.policy_string(path, pstring, policy_type.as_ref());
        let pd = path.key("policy-domain");
        let policy_domain = self.optional_str(&pd, pdomain);
        match (&policy_domain, &policy_type) {
            (None, Some(PolicyType::NoPolicyFound)) => {
                self.dev(
                    &pd,
                    "JSON-17",
                    "missing (required by RFC 8460 §4.4; the sys4 reporter omits it for \
                     no-policy-found); read as unknown",
                );
            }
            (None, Some(t)) => {
                self.problem(
                    &pd,
                    format!(
                        "missing, and policy-type {t_q} is not no-policy-found: the results \
                         cannot be attributed to a policy domain",
                        t_q = q(t.as_str())
                    ),
                );
            }
            (Some(d), _) if !d.is_ascii() => {
                self.dev(
                    &pd,
                    "JSON-17",
                    "contains U-labels; RFC 8460 §4.4 requires A-labels; kept as written",
                );
            }
            _ => {}
        }
        let mx_host = self.mx_host(path, mx, policy_type.as_ref());
        Some(Policy {
            policy_type: policy_type?,
            policy_string: policy_string?,
            policy_domain,
            mx_host: mx_host?,
        })
    }

    fn policy_string(
        &mut self,
        path: &P<'_>,
        node: Option<&Node<'_>>,
        policy_type: Option<&PolicyType>,
    ) -> Option<Vec<String>> {
        let p = path.key("policy-string");
        let mut lines: Vec<String> = match node {
            None | Some(Node::Null) => {
                if let Some(t @ (PolicyType::Sts | PolicyType::Tlsa)) = policy_type {
                    self.dev(
                        &p,
                        "JSON-16",
                        format!(
                            "missing for a {t_q} policy (RFC 8460 §4.5); read as empty",
                            t_q = q(t.as_str())
                        ),
                    );
                }
                return Some(Vec::new());
            }
            Some(Node::Str(s)) => {
                self.dev(
                    &p,
                    "JSON-16",
                    "a string instead of an array of strings; read as a one-element array",
                );
                vec![(*s).to_owned()]
            }
            Some(Node::Arr(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Node::Str(s) => out.push((*s).to_owned()),
                        other => {
                            self.problem(
                                &p.idx(i),
                                format!("expected a string, found {}", other.kind()),
                            );
                            return None;
                        }
                    }
                }
                out
            }
            Some(other) => {
                self.problem(
                    &p,
                    format!("expected an array of strings, found {}", other.kind()),
                );
                return None;
            }
        };
        // REQUIREMENTS DANE-11: Microsoft sends the TLSA array JSON-encoded as one string.
        let single = match lines.as_slice() {
            [one] => Some(one.as_str()),
            _ => None,
        };
        if let (Some(PolicyType::Tlsa), Some(one)) = (policy_type, single)
            && one.trim_start().starts_with('[')
            && let Ok(inner) = serde_json::from_str::<Vec<String>>(one)
        {
            self.dev(
                &p,
                "DANE-11",
                format!(
                    "the TLSA records are one JSON-encoded string holding an array; unwrapped \
                     into {} records",
                    inner.len()
                ),
            );
            lines = inner;
        }
        // RFC 8461 erratum 6253: policy lines may end in CRLF; the report carries lines without
        // terminators (REQUIREMENTS STS-10).
        for (i, line) in lines.iter_mut().enumerate() {
            // Bytewise: CR and LF are ASCII, never part of a multi-byte character.
            let trimmed = line
                .bytes()
                .rposition(|b| b != b'\r' && b != b'\n')
                .map_or(0, |i| i + 1);
            if trimmed != line.len() {
                line.truncate(trimmed);
                self.dev(
                    &p.idx(i),
                    "STS-10",
                    "line ends in a CR/LF line terminator (RFC 8461 erratum 6253); stripped",
                );
            }
        }
        Some(lines)
    }

    fn mx_host(
        &mut self,
        path: &P<'_>,
        node: Option<&Node<'_>>,
        policy_type: Option<&PolicyType>,
    ) -> Option<Vec<String>> {
        let p = path.key("mx-host");
        let hosts: Vec<String> = match node {
            None => return Some(Vec::new()),
            Some(Node::Null) => {
                self.dev(
                    &p,
                    "JSON-29",
                    "null instead of omitting the member; read as absent",
                );
                return Some(Vec::new());
            }
            Some(Node::Str(s)) => {
                self.dev(
                    &p,
                    "JSON-18",
                    "a string instead of an array (RFC 8460 erratum 6241); read as a \
                     one-element array",
                );
                vec![(*s).to_owned()]
            }
            Some(Node::Arr(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Node::Str(s) => out.push((*s).to_owned()),
                        other => {
                            self.problem(
                                &p.idx(i),
                                format!("expected a string, found {}", other.kind()),
                            );
                            return None;
                        }
                    }
                }
                out
            }
            Some(other) => {
                self.problem(
                    &p,
                    format!("expected an array of strings, found {}", other.kind()),
                );
                return None;
            }
        };
        if let Some(t) = policy_type
            && *t != PolicyType::Sts
            && !hosts.is_empty()
        {
            self.dev(
                &p,
                "JSON-18",
                format!(
                    "mx-host on a {t_q} policy; only sts policies have it; kept",
                    t_q = q(t.as_str())
                ),
            );
        }
        for (i, h) in hosts.iter().enumerate() {
            // `mx:` in any case, compared in place (no lower-cased copy per host).
            let mx_key = h
                .trim_start()
                .as_bytes()
                .get(..3)
                .is_some_and(|k| k.eq_ignore_ascii_case(b"mx:"));
            if mx_key {
                self.dev(
                    &p.idx(i),
                    "JSON-18",
                    format!(
                        "{h_q} is a policy line with its \"mx:\" key, not an mx pattern; kept \
                         as written",
                        h_q = q(h)
                    ),
                );
            } else if !h.is_ascii() {
                self.dev(
                    &p.idx(i),
                    "JSON-18",
                    "contains U-labels; RFC 8460 §4.4 requires A-labels; kept as written",
                );
            }
        }
        Some(hosts)
    }

    fn summary(&mut self, path: &P<'_>, node: Option<&Node<'_>>) -> Option<Summary> {
        let m = match node {
            None | Some(Node::Null) => {
                self.problem(path, "missing (required by RFC 8460 §4.4)");
                return None;
            }
            Some(Node::Obj(m)) => m,
            Some(other) => {
                self.problem(path, format!("expected an object, found {}", other.kind()));
                return None;
            }
        };
        let [ok, failed] = self.members(
            path,
            m,
            &[
                "total-successful-session-count",
                "total-failure-session-count",
            ],
        );
        let ok = self.count(&path.key("total-successful-session-count"), ok);
        let failed = self.count(&path.key("total-failure-session-count"), failed);
        Some(Summary {
            total_successful_session_count: ok?,
            total_failure_session_count: failed?,
        })
    }

    /// One element of `failure-details`, pushed onto `out` when it is usable (false when
    /// not). Pushed here rather than returned: the detail (~180 bytes) is then copied once,
    /// into the vector, instead of also into the caller's `Option` first.
    fn failure_detail(
        &mut self,
        path: &P<'_>,
        node: &Node<'_>,
        out: &mut Vec<FailureDetail>,
    ) -> bool {
        let Node::Obj(m) = node else {
            self.problem(path, format!("expected an object, found {}", node.kind()));
            return false;
        };
        let [rt, smi, rmh, rhelo, rip, fsc, ai, aiu, frc] = self.members(
            path,
            m,
            &[
                "result-type",
                "sending-mta-ip",
                "receiving-mx-hostname",
                "receiving-mx-helo",
                "receiving-ip",
                "failed-session-count",
                "additional-information",
                "additional-info-uri",
                "failure-reason-code",
            ],
        );
        let prt = path.key("result-type");
        let result_type = self.required_text(&prt, rt).map(ResultType::parse);
        if let Some(ResultType::Unknown(t)) = &result_type {
            self.dev(
                &prt,
                "JSON-21",
                format!(
                    "result-type {t_q} is not in the RFC 8460 registry; kept verbatim",
                    t_q = q(t.as_str())
                ),
            );
        }
        let sending_mta_ip = self.ip(&path.key("sending-mta-ip"), smi, "JSON-22");
        let receiving_mx_hostname = self.optional_str(&path.key("receiving-mx-hostname"), rmh);
        let receiving_mx_helo = self.optional_str(&path.key("receiving-mx-helo"), rhelo);
        let receiving_ip = self.ip(&path.key("receiving-ip"), rip, "JSON-25");
        let count = self.count(&path.key("failed-session-count"), fsc);
        let pai = path.key("additional-information");
        let mut additional_information = self.optional_str(&pai, ai);
        // REQUIREMENTS JSON-27: the prose calls the value "additional-info-uri"; some write
        // that as the key.
        let palias = path.key("additional-info-uri");
        if let Some(alias) = aiu {
            let value = self.optional_str(&palias, Some(alias));
            match (&additional_information, value) {
                (None, Some(v)) => {
                    self.dev(
                        &palias,
                        "JSON-27",
                        "key \"additional-info-uri\" instead of \"additional-information\"; \
                         read as additional-information",
                    );
                    additional_information = Some(v);
                }
                (Some(_), Some(v)) => {
                    self.dev(
                        &palias,
                        "JSON-27",
                        format!(
                            "key \"additional-info-uri\" next to \"additional-information\"; \
                             its value {v_q} is ignored",
                            v_q = q(&v)
                        ),
                    );
                }
                (_, None) => {}
            }
        }
        if let Some(uri) = &additional_information
            && !looks_like_uri(uri)
        {
            self.dev(
                &pai,
                "JSON-27",
                "not a URI (no scheme, or contains whitespace); kept as written",
            );
        }
        let failure_reason_code = self.optional_str(&path.key("failure-reason-code"), frc);
        let (Some(result_type), Some(failed_session_count)) = (result_type, count) else {
            return false;
        };
        out.push(FailureDetail {
            result_type,
            sending_mta_ip,
            receiving_mx_hostname,
            receiving_mx_helo,
            receiving_ip,
            failed_session_count,
            additional_information,
            failure_reason_code,
        });
        true
    }

    /// An IP address member, kept as written (REQUIREMENTS JSON-22/JSON-25): a non-address is
    /// never turned into one, a non-canonical one is noted.
    fn ip(&mut self, path: &P<'_>, node: Option<&Node<'_>>, rule: &'static str) -> Option<String> {
        let s = self.optional_str(path, node)?;
        match parse_ip(&s) {
            // The standard parser accepts only the canonical dotted quad (no leading zeros,
            // no other radix), so whatever parsed is canonical.
            Ok(IpAddr::V4(_)) => {}
            Ok(IpAddr::V6(v6)) => {
                // Compared with the canonical form written without allocating: most reports
                // carry a few addresses, nearly all canonical.
                let mut buf = [0u8; 48];
                let len = write_ipv6(v6, &mut buf);
                let canonical =
                    std::str::from_utf8(buf.get(..len).unwrap_or_default()).unwrap_or_default();
                if canonical != s {
                    let mut msg = String::with_capacity(s.len() + canonical.len() + 104);
                    push_q(&mut msg, &s);
                    msg.push_str(
                        " is not in canonical form (RFC 5952 / dotted quad); kept as written, \
                         written out as ",
                    );
                    push_q(&mut msg, canonical);
                    self.dev(path, rule, msg);
                }
            }
            Err(_) => {
                let mut msg = String::with_capacity(s.len() + 64);
                push_q(&mut msg, &s);
                msg.push_str(" is not an IP address; kept verbatim, never used as one");
                self.dev(path, rule, msg);
            }
        }
        Some(s)
    }
}

/// `s.parse::<IpAddr>()`, with the forms senders write (a dotted quad; IPv6 groups with at
/// most one `::`) read directly: the standard parser costs more than the rest of reading a
/// failure detail. Anything else (an embedded IPv4 tail, a leading zero, an error) goes to
/// the standard parser, so the result is always exactly its.
fn parse_ip(s: &str) -> Result<IpAddr, std::net::AddrParseError> {
    match fast_ip(s.as_bytes()) {
        Some(ip) => Ok(ip),
        None => s.parse::<IpAddr>(),
    }
}

/// The common forms of [`parse_ip`], or `None` when unsure (never a different reading than
/// the standard parser's, which accepts exactly what this does and more). One pass over the
/// bytes each, no splitting.
fn fast_ip(b: &[u8]) -> Option<IpAddr> {
    fast_ipv4(b)
        .map(IpAddr::V4)
        .or_else(|| fast_ipv6(b).map(IpAddr::V6))
}

/// A dotted quad: four decimal octets of 1-3 digits, no leading zero, at most 255.
fn fast_ipv4(b: &[u8]) -> Option<std::net::Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (k, octet) in octets.iter_mut().enumerate() {
        if k > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut v = 0u32;
        while let Some(&d) = b.get(i)
            && d.is_ascii_digit()
            && i - start < 3
        {
            v = v * 10 + u32::from(d - b'0');
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || (digits > 1 && b.get(start) == Some(&b'0')) {
            return None;
        }
        *octet = u8::try_from(v).ok()?;
    }
    (i == b.len()).then_some(std::net::Ipv4Addr::from(octets))
}

/// RFC 4291 §2.2 text without an embedded IPv4 part: groups of 1-4 hex digits separated by
/// `:`, eight of them, or at most seven around one `::`.
fn fast_ipv6(b: &[u8]) -> Option<std::net::Ipv6Addr> {
    let mut seg = [0u16; 8];
    let mut n = 0;
    // Where `::` stands, as the number of groups before it.
    let mut gap = None;
    let mut i = 0;
    if b.starts_with(b"::") {
        gap = Some(0);
        i = 2;
    }
    while i < b.len() || gap != Some(n) {
        let start = i;
        let mut v = 0u16;
        while let Some(&d) = b.get(i)
            && i - start < 4
        {
            let x = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => break,
            };
            v = v << 4 | u16::from(x);
            i += 1;
        }
        if i == start || n == 8 {
            return None;
        }
        seg[n] = v;
        n += 1;
        if i == b.len() {
            break;
        }
        if b[i] != b':' {
            return None;
        }
        i += 1;
        if b.get(i) == Some(&b':') {
            if gap.is_some() {
                return None;
            }
            gap = Some(n);
            i += 1;
        }
    }
    match gap {
        None if n == 8 => {}
        None => return None,
        // `::` stands for at least one zero group, so at most seven are written.
        Some(_) if n > 7 => return None,
        Some(g) => {
            let tail = n - g;
            seg.copy_within(g..n, 8 - tail);
            seg[g..8 - tail].fill(0);
        }
    }
    Some(std::net::Ipv6Addr::from(seg))
}

/// Writes `ip` as its `Display` does (RFC 5952 §4: lower-case hex without leading zeros, the
/// longest run of two or more zero groups as `::`, the first of equal runs; `::ffff:a.b.c.d`
/// for IPv4-mapped addresses) into `out`, returning the length. Hand-written because the
/// formatter machinery cost more than the rest of reading an address.
fn write_ipv6(ip: std::net::Ipv6Addr, out: &mut [u8; 48]) -> usize {
    let mut n = 0;
    let mut put = |b: u8, n: &mut usize| {
        if let Some(slot) = out.get_mut(*n) {
            *slot = b;
            *n += 1;
        }
    };
    let seg = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        for &b in b"::ffff:" {
            put(b, &mut n);
        }
        for (i, octet) in v4.octets().into_iter().enumerate() {
            if i > 0 {
                put(b'.', &mut n);
            }
            if octet >= 100 {
                put(b'0' + octet / 100, &mut n);
            }
            if octet >= 10 {
                put(b'0' + octet / 10 % 10, &mut n);
            }
            put(b'0' + octet % 10, &mut n);
        }
        return n;
    }
    // Longest run of zero groups; the first wins a tie.
    let (mut best_start, mut best_len, mut cur_start, mut cur_len) = (0, 0, 0, 0);
    for (i, &g) in seg.iter().enumerate() {
        if g == 0 {
            if cur_len == 0 {
                cur_start = i;
            }
            cur_len += 1;
            if cur_len > best_len {
                (best_start, best_len) = (cur_start, cur_len);
            }
        } else {
            cur_len = 0;
        }
    }
    let hex = |g: u16, n: &mut usize, put: &mut dyn FnMut(u8, &mut usize)| {
        let mut started = false;
        for shift in [12, 8, 4, 0] {
            let d = ((g >> shift) & 0xf) as u8;
            if d != 0 || started || shift == 0 {
                started = true;
                put(if d < 10 { b'0' + d } else { b'a' + d - 10 }, n);
            }
        }
    };
    let groups =
        |range: std::ops::Range<usize>, n: &mut usize, put: &mut dyn FnMut(u8, &mut usize)| {
            for (k, i) in range.enumerate() {
                if k > 0 {
                    put(b':', n);
                }
                hex(seg[i], n, put);
            }
        };
    if best_len > 1 {
        groups(0..best_start, &mut n, &mut put);
        put(b':', &mut n);
        put(b':', &mut n);
        groups(best_start + best_len..8, &mut n, &mut put);
    } else {
        groups(0..8, &mut n, &mut put);
    }
    n
}

/// Input text echoed in a message: at most 64 characters, quoted and escaped, so messages
/// stay short and one line whatever the input holds.
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(64 * 4) + 5);
    push_q(&mut out, s);
    out
}

/// [`q`], appended to `out`.
fn push_q(out: &mut String, s: &str) {
    let cut = short(s);
    // One range test per byte: printable ASCII except `"` (0x22) and `\` (0x5c).
    if cut
        .bytes()
        .all(|b| matches!(b, b' ' | b'!' | b'#'..=b'[' | b']'..=b'~'))
    {
        // Printable ASCII needs no escaping: the same text `{:?}` gives, without its
        // per-character escape machinery.
        out.push('"');
        out.push_str(cut);
        out.push('"');
    } else {
        use std::fmt::Write as _;
        let _ = write!(out, "{cut:?}");
    }
    if cut.len() < s.len() {
        out.push_str("...");
    }
}

/// A scheme (RFC 3986 §3.1) followed by `:` and no whitespace or control characters.
fn looks_like_uri(s: &str) -> bool {
    let Some(colon) = s.find(':') else {
        return false;
    };
    let scheme = s.get(..colon).unwrap_or_default();
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    scheme_ok && !has_space_or_control(s)
}

/// True when `s` holds whitespace or a control character (Unicode's `White_Space` and `Cc`).
/// ASCII text, nearly every URI, is checked bytewise without decoding characters.
fn has_space_or_control(s: &str) -> bool {
    if s.is_ascii() {
        // ASCII whitespace is 0x09-0x0d and space, all but space also control characters.
        // Eight bytes at a time (URIs run to a hundred bytes): a byte below 0x21 or equal to
        // 0x7f sets its high bit in `hits`. Borrows only propagate upwards from a true hit,
        // so `hits` is non-zero exactly when there is one.
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let mut words = s.as_bytes().chunks_exact(8);
        for chunk in words.by_ref() {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let v = u64::from_le_bytes(word);
            let del = v ^ (ONES * 0x7f);
            let hits = (v.wrapping_sub(ONES * 0x21) & !v | del.wrapping_sub(ONES) & !del) & HIGH;
            if hits != 0 {
                return true;
            }
        }
        words.remainder().iter().any(|&b| b <= b' ' || b == 0x7f)
    } else {
        s.chars().any(|c| c.is_whitespace() || c.is_control())
    }
}

/// `YYYY-MM-DDTHH:MM:SS` (shape already checked: digits and separators in place) as a UTC
/// timestamp, or `None` for anything out of range (a leap second included), which then goes
/// to jiff's parser and its error message.
fn utc_seconds_timestamp(b: &[u8]) -> Option<Timestamp> {
    let b: &[u8; 19] = b.get(..19)?.try_into().ok()?;
    // Two digits at `i` (the shape check made them digits; `wrapping_sub` only keeps this
    // from panicking if it were ever called without one).
    let two =
        |i: usize| u32::from(b[i].wrapping_sub(b'0')) * 10 + u32::from(b[i + 1].wrapping_sub(b'0'));
    let year = two(0) * 100 + two(2);
    let (month, day) = (two(5), two(8));
    let (hour, minute, second) = (two(11), two(14), two(17));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's days_from_civil),
    // with the year moved up one 400-year era so that every quantity is unsigned (year 0000
    // January gives year -1 otherwise).
    let y = year + 400 - u32::from(month <= 2);
    let (era, yoe) = (y / 400, y % 400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (i64::from(era) - 1) * 146_097 + i64::from(doe) - 719_468;
    let secs = i64::from(hour * 3600 + minute * 60 + second);
    Timestamp::from_second(days * 86_400 + secs).ok()
}

/// A read date-time and the deviation (rule, message) it needed, if any.
type DatetimeReading = (Timestamp, Option<(&'static str, String)>);

/// Parses an RFC 3339 date-time leniently (REQUIREMENTS JSON-11, JSON-12).
///
/// Strict RFC 3339 (`T`/`t`, `Z`/`z` or `±HH:MM`, optional fraction) gives no deviation. A
/// missing offset is read as UTC with a JSON-12 deviation; other forms that `jiff` understands
/// give a JSON-11 deviation. Anything else is an error message.
fn parse_datetime(s: &str) -> Result<DatetimeReading, String> {
    let b = s.as_bytes();
    // The form nearly every sender writes, `YYYY-MM-DDTHH:MM:SSZ`, checked in one match; the
    // general checks below give the same reading for it.
    if let [
        y0,
        y1,
        y2,
        y3,
        b'-',
        m0,
        m1,
        b'-',
        d0,
        d1,
        b'T' | b't',
        h0,
        h1,
        b':',
        i0,
        i1,
        b':',
        s0,
        s1,
        b'Z' | b'z',
    ] = b
        && [y0, y1, y2, y3, m0, m1, d0, d1, h0, h1, i0, i1, s0, s1]
            .iter()
            .all(|d| d.is_ascii_digit())
        && let Some(ts) = utc_seconds_timestamp(b)
    {
        return Ok((ts, None));
    }
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    let at = |i: usize, set: &[u8]| b.get(i).is_some_and(|c| set.contains(c));
    let shape = digits(0..4)
        && at(4, b"-")
        && digits(5..7)
        && at(7, b"-")
        && digits(8..10)
        && at(10, b"Tt")
        && digits(11..13)
        && at(13, b":")
        && digits(14..16)
        && at(16, b":")
        && digits(17..19);
    if shape {
        let mut i = 19;
        if at(i, b".") {
            i += 1;
            let frac_start = i;
            while at(i, b"0123456789") {
                i += 1;
            }
            if i == frac_start {
                return Err(format!(
                    "{s_q} is not an RFC 3339 date-time (empty fraction)",
                    s_q = q(s)
                ));
            }
        }
        let rest = s.get(i..).unwrap_or_default();
        let offset_ok = rest == "Z"
            || rest == "z"
            || (rest.len() == 6
                && at(i, b"+-")
                && digits(i + 1..i + 3)
                && at(i + 3, b":")
                && digits(i + 4..i + 6));
        // jiff wants an upper-case designator; RFC 3339 §5.6 allows both cases.
        let upper = s.to_ascii_uppercase();
        if offset_ok {
            return upper
                .parse::<Timestamp>()
                .map(|ts| (ts, None))
                .map_err(|e| format!("{s_q} is not a valid date-time: {e}", s_q = q(s)));
        }
        if rest.is_empty() {
            return upper
                .parse::<jiff::civil::DateTime>()
                .and_then(|dt| jiff::tz::TimeZone::UTC.to_timestamp(dt))
                .map(|ts| {
                    (
                        ts,
                        Some((
                            "JSON-12",
                            format!(
                                "{s_q} has no UTC offset (RFC 3339 requires one); read as UTC",
                                s_q = q(s)
                            ),
                        )),
                    )
                })
                .map_err(|e| format!("{s_q} is not a valid date-time: {e}", s_q = q(s)));
        }
    }
    match s.parse::<Timestamp>() {
        Ok(ts) => Ok((
            ts,
            Some((
                "JSON-11",
                format!(
                    "{s_q} is not in RFC 3339 Internet Date/Time Format; read as {ts}",
                    s_q = q(s)
                ),
            )),
        )),
        Err(_) => Err(format!(
            "{s_q} is not an RFC 3339 date-time (YYYY-MM-DDTHH:MM:SSZ)",
            s_q = q(s)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_forms() {
        let (ts, dev) = parse_datetime("2025-03-14T00:00:00Z").unwrap();
        assert_eq!(ts.as_second(), 1_741_910_400);
        assert!(dev.is_none());
        let (ts2, dev) = parse_datetime("2025-03-14t01:00:00.5+01:00").unwrap();
        assert_eq!(ts2.as_second(), 1_741_910_400);
        assert!(dev.is_none());
        let (ts3, dev) = parse_datetime("2025-03-14T00:00:00").unwrap();
        assert_eq!(ts3, ts);
        assert_eq!(dev.unwrap().0, "JSON-12");
        assert!(parse_datetime("yesterday").is_err());
        assert!(parse_datetime("2025-13-14T00:00:00Z").is_err());
    }

    proptest::proptest! {
        /// The hand-written IPv6 text is exactly `Display`'s, zero runs and mapped forms
        /// included (segments drawn from a few values so that runs of zeros are common).
        #[test]
        fn ipv6_text_matches_display(
            seg in proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just(0u16),
                proptest::strategy::Just(0xffffu16),
                proptest::num::u16::ANY,
                0u16..0x10,
            ], 8),
            mapped in proptest::bool::ANY,
        ) {
            let mut g = [0u16; 8];
            g.copy_from_slice(&seg);
            if mapped {
                g[..5].fill(0);
                g[5] = 0xffff;
            }
            let ip = std::net::Ipv6Addr::from(g);
            let mut buf = [0u8; 48];
            let n = write_ipv6(ip, &mut buf);
            proptest::prop_assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), ip.to_string());
        }
    }

    proptest::proptest! {
        /// The direct IP reading never differs from the standard parser's: random text over
        /// the characters addresses are made of, and real addresses written in every form.
        #[test]
        fn ip_reading_matches_std(
            s in "[0-9a-fA-F:.g ]{0,45}",
            short in "[019aF:.]{0,18}",
        ) {
            proptest::prop_assert_eq!(parse_ip(&s).ok(), s.parse::<IpAddr>().ok(), "{}", s);
            proptest::prop_assert_eq!(
                parse_ip(&short).ok(),
                short.parse::<IpAddr>().ok(),
                "{}",
                short
            );
        }

        #[test]
        fn ip_reading_matches_std_on_addresses(
            seg in proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just(0u16),
                proptest::num::u16::ANY,
                0u16..0x10,
            ], 8),
            v4 in proptest::num::u32::ANY,
            upper in proptest::bool::ANY,
        ) {
            let mut g = [0u16; 8];
            g.copy_from_slice(&seg);
            let v6 = std::net::Ipv6Addr::from(g);
            let full = g.iter().map(|x| format!("{x:04x}")).collect::<Vec<_>>().join(":");
            let v4 = std::net::Ipv4Addr::from(v4).to_string();
            for text in [v6.to_string(), full, v4] {
                let text = if upper { text.to_ascii_uppercase() } else { text };
                let fast = fast_ip(text.as_bytes());
                proptest::prop_assert!(fast.is_some() || text.contains('.'), "{}", text);
                proptest::prop_assert_eq!(parse_ip(&text).ok(), text.parse::<IpAddr>().ok());
            }
        }
    }

    /// Every text of up to 7 characters over `0 1 f : .` (digits, hex, both separators).
    #[test]
    fn ip_reading_exhaustive_short() {
        let alphabet = b"01f:.";
        let mut text = Vec::new();
        for len in 0..=7u32 {
            for mut n in 0..alphabet.len().pow(len) {
                text.clear();
                for _ in 0..len {
                    text.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                let s = std::str::from_utf8(&text).unwrap();
                assert_eq!(parse_ip(s).ok(), s.parse::<IpAddr>().ok(), "{s}");
            }
        }
    }

    #[test]
    fn space_or_control_matches_char_classes() {
        for s in [
            "",
            "https://x",
            "a b",
            "a\tb",
            "a\x7fb",
            "a\x1fb",
            "a\x0bb",
            "a\x0cb",
            "é",
            "a\u{85}b",
            "a\u{a0}b",
            "a\u{2028}b",
            "a\u{3000}b",
            "a\u{9f}b",
            "mailto:é",
        ] {
            let want = s.chars().any(|c| c.is_whitespace() || c.is_control());
            assert_eq!(has_space_or_control(s), want, "{s:?}");
        }
        for b in 0u8..=0x7f {
            let s = String::from(char::from(b));
            let want = s.chars().any(|c| c.is_whitespace() || c.is_control());
            assert_eq!(has_space_or_control(&s), want, "{b:#x}");
            // At every place of a text long enough for the eight-byte steps, next to bytes
            // on either side of the limits (0x20/0x21, 0x7e/0x7f).
            for filler in [b'x', b'!', b'~'] {
                for at in 0..20 {
                    let mut bytes = vec![filler; 20];
                    bytes[at] = b;
                    let s = String::from_utf8(bytes).unwrap();
                    let want = s.chars().any(|c| c.is_whitespace() || c.is_control());
                    assert_eq!(has_space_or_control(&s), want, "{b:#x} at {at}");
                }
            }
        }
    }

    /// Only whitespace (Unicode's too) is an empty report; anything else that is not JSON is
    /// a syntax error.
    #[test]
    fn empty_and_whitespace_texts() {
        let limits = Limits::default();
        // A byte order mark is skipped first (JSON-01).
        for empty in [
            "",
            " ",
            " \n\t\r ",
            "\u{a0}",
            " \u{2028}\u{3000} ",
            "\u{feff}",
        ] {
            assert_eq!(
                read_json(empty.as_bytes(), &limits),
                Err(ReadError::Empty),
                "{empty:?}"
            );
        }
        for bad in ["x", " \u{a0}{}", "\u{a0}x", "\u{feff}x", " \u{feff}"] {
            assert!(
                matches!(
                    read_json(bad.as_bytes(), &limits),
                    Err(ReadError::Syntax { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ip_reading_edge_cases() {
        for s in [
            "",
            ":",
            "::",
            ":::",
            "1::",
            "::1",
            "1::2::3",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1::2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8::",
            "12345::",
            "0000:0:00:000::",
            "::ffff:1.2.3.4",
            "1.2.3.4",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "256.1.1.1",
            "255.255.255.255",
            "0.0.0.0",
            "1..2.3",
            "1.2.3.4 ",
            " 1.2.3.4",
            "1.2.3.",
            "+1.2.3.4",
            "1:2",
            "fffff::",
            "g::",
            "1:2:3:4:5:6:1.2.3.4",
            "1:2:3:4:5:6:7:1.2.3.4",
            "::1.2.3.4",
            "1.2.3.4::",
            "0x1.2.3.4",
            "1.2.3.0004",
        ] {
            assert_eq!(parse_ip(s).ok(), s.parse::<IpAddr>().ok(), "{s}");
        }
    }

    #[test]
    fn quoting_matches_debug_escaping() {
        for s in [
            "",
            "plain text",
            "a\"b",
            "back\\slash",
            "tab\there",
            "é",
            "<script>",
            "~ !",
        ] {
            assert_eq!(q(s), format!("{s:?}"), "{s}");
        }
        let long = "x".repeat(100);
        assert_eq!(q(&long), format!("{:?}...", &long[..64]));
    }

    #[test]
    fn utc_fast_path_agrees_with_jiff() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59Z",
            "2024-12-31T12:34:56Z",
            "2025-03-01T00:00:00Z",
            "1900-03-01T00:00:00Z",
            "0001-01-01T00:00:00Z",
        ] {
            let fast = utc_seconds_timestamp(s.as_bytes()).expect(s);
            assert_eq!(fast, s.parse::<Timestamp>().unwrap(), "{s}");
        }
        for bad in [
            "2025-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2025-04-31T00:00:00Z",
            "2025-00-10T00:00:00Z",
            "2025-01-10T24:00:00Z",
            "2025-01-10T23:60:00Z",
            "2016-12-31T23:59:60Z",
            // Past jiff's range: left to jiff, which says so.
            "9999-12-31T23:59:59Z",
        ] {
            assert!(utc_seconds_timestamp(bad.as_bytes()).is_none(), "{bad}");
        }
        // Every 13th day from year 0 to 2400, at a time of day that moves too.
        let mut ts = "0000-01-01T00:00:00Z".parse::<Timestamp>().unwrap();
        let end = "2400-12-31T23:59:59Z".parse::<Timestamp>().unwrap();
        while ts < end {
            let text = ts.to_string();
            assert_eq!(utc_seconds_timestamp(text.as_bytes()), Some(ts), "{text}");
            ts = ts
                .checked_add(jiff::SignedDuration::from_secs(13 * 86_400 + 3_607))
                .unwrap();
        }
        // A leap second still reads as jiff reads it.
        assert!(parse_datetime("2016-12-31T23:59:60Z").is_ok());
    }
}
