//! A small JSON (RFC 8259) parser into a borrowed tree, written for the reader's hot path.
//!
//! Why not `serde_json`: reports are small (about 1 KiB) and arrive by the thousand, and for
//! them the generic visitor machinery, the growth of every object's vector and the error
//! plumbing cost more than the scanning itself. This parser builds the same tree the reader
//! walks, with:
//!
//! * strings without escapes borrowed from the input (the common case: member names and
//!   values of a report never need escapes);
//! * every object and array (and unescaped string) placed in an arena that the caller resets
//!   and reuses, so a report costs no allocation and no recursive drop of its tree;
//! * every limit of [`Limits`] enforced while the tree is built, so hostile input costs at
//!   most those limits (depth, values in the document, string length), and duplicate member
//!   names rejected (REQUIREMENTS JSON-01, I-JSON);
//! * errors that say what was expected at which line, column and byte.
//!
//! The grammar is RFC 8259 §2–§7 exactly: no comments, no trailing commas, no leading zeros,
//! no raw control characters in strings, and lone surrogates in `\u` escapes rejected (I-JSON,
//! RFC 7493 §2.1). The input is already valid UTF-8 (the caller checks), so string slices
//! between ASCII quotes are valid `&str`s.

use std::collections::HashSet;

use bumpalo::Bump;
use bumpalo::collections::Vec as BumpVec;

use super::{Limits, Position, ReadError};
use crate::naming::short;

/// A JSON value: strings borrow from the input (or, when they had escapes, from the arena),
/// arrays and objects live in the arena.
#[derive(Debug, Clone, Copy)]
pub(super) enum Node<'a> {
    Null,
    Bool,
    U64(u64),
    I64(i64),
    F64(f64),
    Str(&'a str),
    Arr(&'a [Node<'a>]),
    Obj(&'a [(&'a str, Node<'a>)]),
}

impl Node<'_> {
    /// What the value is, for messages ("expected a count, found an object").
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool => "a boolean",
            Node::U64(_) | Node::I64(_) | Node::F64(_) => "a number",
            Node::Str(_) => "a string",
            Node::Arr(_) => "an array",
            Node::Obj(_) => "an object",
        }
    }
}

/// Parses one JSON text (surrounding whitespace allowed, nothing else) into a tree whose
/// arrays, objects and unescaped strings are allocated in `arena`.
pub(super) fn parse<'a>(
    text: &'a str,
    limits: &Limits,
    arena: &'a Bump,
) -> Result<Node<'a>, ReadError> {
    let mut p = Parser {
        text,
        pos: 0,
        max_depth: limits.max_depth,
        max_values: limits.max_array_len,
        max_string_len: limits.max_string_len,
        values: 0,
        arena,
        stack: BumpVec::with_capacity_in(64, arena),
        unescaped: String::new(),
        error: None,
    };
    p.ws();
    let root = p.value(0, "").and_then(|()| {
        p.ws();
        if p.pos < p.bytes().len() {
            return Err(p.syntax("text after the end of the JSON value"));
        }
        p.stack.first().map(|&(_, root)| root).ok_or(Stop)
    });
    root.map_err(|Stop| p.error.take().unwrap_or(ReadError::Empty))
}

/// Parsing stopped; the error is in [`Parser::error`]. A one-byte error keeps the results
/// of the hot recursive functions small (a `ReadError` is several words).
struct Stop;

struct Parser<'de> {
    /// The input; see [`Parser::bytes`].
    text: &'de str,
    arena: &'de Bump,
    pos: usize,
    /// [`Limits::max_depth`], [`Limits::max_array_len`] and [`Limits::max_string_len`],
    /// copied so the hot paths read them without a pointer chase.
    max_depth: usize,
    max_values: usize,
    max_string_len: usize,
    /// Array elements and object members in the whole document so far, against
    /// `max_array_len`: bounds the tree's memory to a few tens of bytes per value, whatever
    /// the input's shape. It also bounds each array and object (their elements and members
    /// are counted here too), so they need no count of their own.
    values: usize,
    /// Scratch stack (in the arena too): the members of the objects and the elements (with
    /// an empty name) of the arrays being parsed, moved into one exactly sized slice when
    /// each closes. Every value is pushed here by the function that parsed it rather than
    /// returned: a `Node` is three words, returned through memory, and reading it back
    /// right after the callee wrote it stalled on store forwarding.
    stack: BumpVec<'de, (&'de str, Node<'de>)>,
    /// Scratch for a string with escapes, copied into the arena when it closes.
    unescaped: String,
    /// Why parsing stopped.
    error: Option<ReadError>,
}

/// The offset of the first `"`, `\\` or control character at or after `from`: the bytes
/// that end a run of plain string content. Eight bytes at a time (SWAR), since strings are
/// most of a report's bytes. (Sixteen-byte lanes that the compiler turns into vector
/// compares took fewer instructions but more time: strings are short, and the position
/// found is on the critical path.)
#[inline]
fn find_special(b: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    while let Some(chunk) = b.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let v = u64::from_le_bytes(*chunk);
        let quote = v ^ (ONES * u64::from(b'"'));
        let backslash = v ^ (ONES * u64::from(b'\\'));
        // A byte below 0x20, a zero byte of `quote` or of `backslash`: the lowest flagged
        // byte is exact (borrows only propagate upwards from a true hit).
        let hits = (v.wrapping_sub(ONES * 0x20) & !v
            | quote.wrapping_sub(ONES) & !quote
            | backslash.wrapping_sub(ONES) & !backslash)
            & HIGH;
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|k| i + k)
}

impl<'de> Parser<'de> {
    /// Skips whitespace. Most calls find none (or one space after a `:`), so the test for
    /// "not whitespace" is inlined and the loop is not.
    #[inline]
    fn ws(&mut self) {
        if let Some(&c) = self.bytes().get(self.pos)
            && c <= b' '
        {
            self.ws_run();
        }
    }

    /// Whitespace per RFC 8259 §2: space, tab, line feed, carriage return.
    fn ws_run(&mut self) {
        const SPACES: u64 = u64::from_le_bytes([b' '; 8]);
        let b = self.bytes();
        let mut pos = self.pos;
        loop {
            match b.get(pos) {
                // Pretty-printed reports indent with runs of spaces: skip them eight at a
                // time, and the end of a run at once.
                Some(b' ') => match b.get(pos..).and_then(<[u8]>::first_chunk::<8>) {
                    Some(chunk) => {
                        let other = u64::from_le_bytes(*chunk) ^ SPACES;
                        if other == 0 {
                            pos += 8;
                        } else {
                            pos += (other.trailing_zeros() / 8) as usize;
                        }
                    }
                    None => pos += 1,
                },
                Some(b'\n' | b'\t' | b'\r') => pos += 1,
                _ => break,
            }
        }
        self.pos = pos;
    }

    /// The input's bytes, taken from `text` each time (free) rather than kept in a second
    /// field: the compiler then sees one buffer and drops the `&str` slicing checks that
    /// the byte tests before them have already made.
    #[inline(always)]
    fn bytes(&self) -> &'de [u8] {
        self.text.as_bytes()
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn at(&self, offset: usize) -> Position {
        let offset = offset.min(self.bytes().len());
        let before = &self.bytes()[..offset];
        let line = 1 + memchr::memchr_iter(b'\n', before).count();
        let line_start = memchr::memrchr(b'\n', before).map_or(0, |i| i + 1);
        Position {
            line,
            column: offset - line_start + 1,
            offset,
        }
    }

    #[cold]
    fn fail(&mut self, error: ReadError) -> Stop {
        self.error = Some(error);
        Stop
    }

    #[cold]
    fn syntax(&mut self, message: &str) -> Stop {
        self.syntax_at(self.pos, message)
    }

    #[cold]
    fn syntax_at(&mut self, offset: usize, message: &str) -> Stop {
        let at = self.at(offset);
        self.fail(ReadError::Syntax {
            at,
            message: message.to_owned(),
        })
    }

    #[cold]
    fn limit(&mut self, limit: &'static str, max: usize) -> Stop {
        let at = self.at(self.pos);
        self.fail(ReadError::Limit { limit, max, at })
    }

    /// The end of the input where more was needed.
    #[cold]
    fn eof(&mut self, inside: &str) -> Stop {
        self.syntax(&format!("the text ends inside {inside}"))
    }

    #[inline]
    fn count_value(&mut self) -> Result<(), Stop> {
        self.values += 1;
        if self.values > self.max_values {
            return Err(self.limit("max_array_len", self.max_values));
        }
        Ok(())
    }

    /// One value at the current position (whitespace already skipped), pushed on the stack
    /// under `name`; `depth` counts the arrays and objects around it.
    fn value(&mut self, depth: usize, name: &'de str) -> Result<(), Stop> {
        let node = match self.peek() {
            Some(b'{') => return self.object(depth + 1, name),
            Some(b'[') => return self.array(depth + 1, name),
            Some(b'"') => Node::Str(self.string()?),
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(b't') => self.literal(b"true", Node::Bool)?,
            Some(b'f') => self.literal(b"false", Node::Bool)?,
            Some(b'n') => self.literal(b"null", Node::Null)?,
            Some(_) => {
                return Err(self.syntax(
                    "expected a value (object, array, string, number, true, false or null)",
                ));
            }
            None => return Err(self.eof("a value")),
        };
        self.stack.push((name, node));
        Ok(())
    }

    /// [`Parser::value`] inside an array or object: strings (most values of a report) are
    /// read here, without the call and dispatch of a full value.
    #[inline(always)]
    fn element(&mut self, depth: usize, name: &'de str) -> Result<(), Stop> {
        if self.peek() == Some(b'"') {
            let s = self.string()?;
            self.stack.push((name, Node::Str(s)));
            return Ok(());
        }
        self.value(depth, name)
    }

    fn literal(&mut self, word: &'static [u8], node: Node<'de>) -> Result<Node<'de>, Stop> {
        if self.bytes().get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(node)
        } else {
            Err(self
                .syntax("expected a value (object, array, string, number, true, false or null)"))
        }
    }

    fn enter(&mut self, depth: usize) -> Result<(), Stop> {
        if depth > self.max_depth {
            return Err(self.limit("max_depth", self.max_depth));
        }
        Ok(())
    }

    fn array(&mut self, depth: usize, name: &'de str) -> Result<(), Stop> {
        self.enter(depth)?;
        self.pos += 1; // '['
        let base = self.stack.len();
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.stack.push((name, Node::Arr(&[])));
            return Ok(());
        }
        loop {
            self.ws();
            self.element(depth, "")?;
            self.count_value()?;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    let items = self
                        .arena
                        .alloc_slice_fill_iter(self.stack[base..].iter().map(|&(_, v)| v));
                    self.stack.truncate(base);
                    self.stack.push((name, Node::Arr(items)));
                    return Ok(());
                }
                Some(_) => return Err(self.syntax("expected ',' or ']' after an array element")),
                None => return Err(self.eof("an array")),
            }
        }
    }

    fn object(&mut self, depth: usize, name: &'de str) -> Result<(), Stop> {
        self.enter(depth)?;
        self.pos += 1; // '{'
        let base = self.stack.len();
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.stack.push((name, Node::Obj(&[])));
            return Ok(());
        }
        // Small objects (all of a report's) are checked for duplicates by a linear scan; a
        // hash set takes over for big ones so a hostile object stays linear.
        let mut seen: Option<HashSet<&'de str>> = None;
        loop {
            self.ws();
            match self.peek() {
                Some(b'"') => {}
                Some(_) => return Err(self.syntax("expected a member name (a string)")),
                None => return Err(self.eof("an object")),
            }
            let key = self.string()?;
            self.count_value()?;
            let open = &self.stack[base..];
            let dup = match &mut seen {
                Some(set) => !set.insert(key),
                None => {
                    let dup = open.iter().any(|(k, _)| *k == key);
                    if open.len() >= 16 {
                        let mut set: HashSet<&'de str> = open.iter().map(|(k, _)| *k).collect();
                        set.insert(key);
                        seen = Some(set);
                    }
                    dup
                }
            };
            if dup {
                let at = self.at(self.pos);
                return Err(self.fail(ReadError::DuplicateKey {
                    key: short(key).to_owned(),
                    at,
                }));
            }
            self.ws();
            match self.peek() {
                Some(b':') => self.pos += 1,
                Some(_) => return Err(self.syntax("expected ':' after a member name")),
                None => return Err(self.eof("an object")),
            }
            // Pretty-printed reports put one space after the colon: skipped without the loop.
            if self.peek() == Some(b' ') {
                self.pos += 1;
            }
            self.ws();
            self.element(depth, key)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    let members = self.arena.alloc_slice_copy(&self.stack[base..]);
                    self.stack.truncate(base);
                    self.stack.push((name, Node::Obj(members)));
                    return Ok(());
                }
                Some(_) => return Err(self.syntax("expected ',' or '}' after an object member")),
                None => return Err(self.eof("an object")),
            }
        }
    }

    /// A string at `"` (RFC 8259 §7): borrowed when it has no escapes.
    #[inline(always)]
    fn string(&mut self) -> Result<&'de str, Stop> {
        self.pos += 1; // '"'
        let start = self.pos;
        let max = self.max_string_len;
        // Fast scan to the first quote, backslash or control character.
        let stop = find_special(self.bytes(), start);
        let Some(stop) = stop else {
            self.pos = self.bytes().len();
            return Err(self.eof("a string"));
        };
        if self.bytes()[stop] == b'"' {
            if stop - start > max {
                self.pos = stop;
                return Err(self.limit("max_string_len", max));
            }
            self.pos = stop + 1;
            // Both ends are ASCII quotes in a valid UTF-8 text: a char boundary each.
            return self
                .text
                .get(start..stop)
                .ok_or_else(|| self.syntax_at(start, "string is not valid UTF-8"));
        }
        self.string_escaped(start, stop)
    }

    /// The rest of a string whose first special byte (at `stop`) is a backslash or a
    /// control character: unescaped into scratch space, then copied into the arena.
    #[cold]
    #[inline(never)]
    fn string_escaped(&mut self, start: usize, stop: usize) -> Result<&'de str, Stop> {
        let max = self.max_string_len;
        let mut out = std::mem::take(&mut self.unescaped);
        out.clear();
        out.push_str(self.text.get(start..stop).unwrap_or_default());
        self.pos = stop;
        loop {
            let run_start = self.pos;
            self.pos = find_special(self.bytes(), self.pos).unwrap_or(self.bytes().len());
            out.push_str(self.text.get(run_start..self.pos).unwrap_or_default());
            if out.len() > max {
                return Err(self.limit("max_string_len", max));
            }
            match self.peek() {
                None => return Err(self.eof("a string")),
                Some(b'"') => {
                    self.pos += 1;
                    let s = self.arena.alloc_str(&out);
                    self.unescaped = out;
                    return Ok(s);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(&mut out)?;
                }
                Some(_) => {
                    return Err(self.syntax(
                        "control character (U+0000 to U+001F) inside a string; it must be escaped",
                    ));
                }
            }
        }
    }

    /// One escape after `\` (RFC 8259 §7).
    fn escape(&mut self, out: &mut String) -> Result<(), Stop> {
        let c = match self.peek() {
            None => return Err(self.eof("a string")),
            Some(c) => c,
        };
        self.pos += 1;
        let ch = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4()?;
                match hi {
                    0xD800..=0xDBFF => {
                        // A leading surrogate must be followed by `\u` and a trailing one.
                        if self.bytes().get(self.pos..self.pos + 2) != Some(b"\\u") {
                            return Err(self.syntax("lone leading surrogate in a \\u escape"));
                        }
                        self.pos += 2;
                        let lo = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return Err(self.syntax("lone leading surrogate in a \\u escape"));
                        }
                        let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                        char::from_u32(cp).ok_or_else(|| self.syntax("invalid \\u escape"))?
                    }
                    0xDC00..=0xDFFF => {
                        return Err(self.syntax("lone trailing surrogate in a \\u escape"));
                    }
                    _ => char::from_u32(hi).ok_or_else(|| self.syntax("invalid \\u escape"))?,
                }
            }
            _ => {
                self.pos -= 1;
                return Err(self.syntax(
                    "invalid escape (allowed: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)",
                ));
            }
        };
        out.push(ch);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, Stop> {
        let Some(digits) = self.bytes().get(self.pos..self.pos + 4) else {
            return Err(self.eof("a \\u escape"));
        };
        let mut v = 0u32;
        for &d in digits {
            let n = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(self.syntax("a \\u escape needs four hex digits")),
            };
            v = v * 16 + u32::from(n);
        }
        self.pos += 4;
        Ok(v)
    }

    /// A number (RFC 8259 §6). Integers become `U64` (or `I64` when negative) when they fit;
    /// everything else, including integers too large for 64 bits, becomes `F64`, as
    /// `serde_json` reads them, so the walker can say "over 2^53-1" rather than "invalid".
    fn number(&mut self) -> Result<Node<'de>, Stop> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let int_start = self.pos;
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.syntax("a number needs a digit after '-'")),
        }
        let int_end = self.pos;
        let mut integral = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.syntax("a number needs a digit after '.'"));
            }
            self.digits();
            integral = false;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.syntax("a number needs a digit in its exponent"));
            }
            self.digits();
            integral = false;
        }
        if self.peek().is_some_and(|c| c.is_ascii_digit()) {
            // Only a leading zero stops the integer part before a digit.
            return Err(self.syntax_at(int_start, "a number must not have leading zeros"));
        }
        if integral {
            let mut v: u64 = 0;
            let mut fits = true;
            for &d in &self.bytes()[int_start..int_end] {
                match v
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(d - b'0')))
                {
                    Some(n) => v = n,
                    None => {
                        fits = false;
                        break;
                    }
                }
            }
            if fits {
                if !negative {
                    return Ok(Node::U64(v));
                }
                if v == 0 {
                    return Ok(Node::I64(0));
                }
                if let Some(n) = v.checked_sub(1).and_then(|m| i64::try_from(m).ok()) {
                    return Ok(Node::I64(-n - 1));
                }
            }
        }
        let slice = self.text.get(start..self.pos).unwrap_or_default();
        match slice.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Node::F64(f)),
            _ => Err(self.syntax_at(start, "number out of range")),
        }
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ReadError {
        let arena = Bump::new();
        match parse(text, &Limits::default(), &arena) {
            Ok(_) => panic!("{text:?} parsed"),
            Err(e) => e,
        }
    }

    #[test]
    fn error_positions_count_lines_and_columns() {
        let ReadError::Syntax { at, .. } = err("{\n  \"a\": ]\n}") else {
            panic!()
        };
        assert_eq!((at.line, at.column, at.offset), (2, 8, 9));
    }

    #[test]
    fn numbers_read_as_serde_json_reads_them() {
        let arena = Bump::new();
        let l = Limits::default();
        let n = |t: &str| match parse(t, &l, &arena) {
            Ok(Node::U64(v)) => format!("u{v}"),
            Ok(Node::I64(v)) => format!("i{v}"),
            Ok(Node::F64(v)) => format!("f{v}"),
            other => format!("{other:?}"),
        };
        assert_eq!(n("0"), "u0");
        assert_eq!(n("-0"), "i0");
        assert_eq!(n("18446744073709551615"), "u18446744073709551615");
        assert_eq!(n("18446744073709551616"), "f18446744073709552000");
        assert_eq!(n("-9223372036854775808"), "i-9223372036854775808");
        assert_eq!(n("-9223372036854775809"), "f-9223372036854776000");
        assert_eq!(n("7.0"), "f7");
        assert_eq!(n("1e3"), "f1000");
        for bad in ["01", "-", "1.", ".5", "1e", "+1", "1e999", "0x10", "- 1"] {
            assert!(matches!(err(bad), ReadError::Syntax { .. }), "{bad}");
        }
    }

    #[test]
    fn strings_escapes_and_surrogates() {
        let arena = Bump::new();
        let l = Limits::default();
        let Ok(Node::Str(s)) = parse(
            r#""a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00 end""#,
            &l,
            &arena,
        ) else {
            panic!()
        };
        assert_eq!(s, "a\"b\\c/d\u{8}\u{c}\n\r\té😀 end");
        // Long plain strings cross the eight-byte scan; a quote at every offset is found.
        for n in 0..20 {
            let text = format!("\"{}\"", "x".repeat(n));
            let Ok(Node::Str(s)) = parse(&text, &l, &arena) else {
                panic!()
            };
            assert_eq!(s.len(), n);
        }
        for bad in [
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800\u0041""#,
            r#""\x""#,
            r#""\u12""#,
            "\"a\u{1}b\"",
            "\"abc",
            "\"tab\there\"",
        ] {
            assert!(matches!(err(bad), ReadError::Syntax { .. }), "{bad:?}");
        }
    }

    #[test]
    fn structure_errors_and_limits() {
        for bad in [
            "{",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{1:2}",
            "[1 2]",
            "tru",
            "nul",
            "{} x",
        ] {
            assert!(matches!(err(bad), ReadError::Syntax { .. }), "{bad}");
        }
        assert!(matches!(
            err("{\"a\":1,\"a\":2}"),
            ReadError::DuplicateKey { .. }
        ));
        let deep = "[".repeat(10_000);
        assert!(matches!(
            err(&deep),
            ReadError::Limit {
                limit: "max_depth",
                ..
            }
        ));
        let limits = Limits {
            max_string_len: 4,
            ..Limits::default()
        };
        let arena = Bump::new();
        assert!(matches!(
            parse("\"12345\"", &limits, &arena),
            Err(ReadError::Limit {
                limit: "max_string_len",
                ..
            })
        ));
        assert!(matches!(
            parse("\"12\\n45\"", &limits, &arena),
            Err(ReadError::Limit {
                limit: "max_string_len",
                ..
            })
        ));
        // Many duplicate-free members switch the check to a hash set; a late duplicate is
        // still found.
        let mut obj: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
        obj.push("\"k3\":0".into());
        assert!(matches!(
            err(&format!("{{{}}}", obj.join(","))),
            ReadError::DuplicateKey { .. }
        ));
    }

    /// `max_array_len` counts every element and member of the document, nested ones too, so
    /// it also bounds each array and object on its own.
    #[test]
    fn value_count_limit_covers_every_array_and_object() {
        let limits = Limits {
            max_array_len: 3,
            ..Limits::default()
        };
        let arena = Bump::new();
        for ok in [
            "[1,2,3]",
            "{\"a\":1,\"b\":2,\"c\":3}",
            "[[1,2]]",
            "{\"a\":[]}",
        ] {
            assert!(parse(ok, &limits, &arena).is_ok(), "{ok}");
        }
        for bad in [
            "[1,2,3,4]",
            "{\"a\":1,\"b\":2,\"c\":3,\"d\":4}",
            "[[1,2],3]",
            "{\"a\":{\"b\":[1,2]}}",
        ] {
            assert!(
                matches!(
                    parse(bad, &limits, &arena),
                    Err(ReadError::Limit {
                        limit: "max_array_len",
                        max: 3,
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    /// The tree as a `serde_json::Value`, to compare with serde_json's reading.
    fn to_value(n: &Node<'_>) -> serde_json::Value {
        use serde_json::Value;
        match n {
            Node::Null => Value::Null,
            // The tree keeps no boolean value (no report member is boolean).
            Node::Bool => Value::Bool(true),
            Node::U64(v) => Value::from(*v),
            Node::I64(v) => Value::from(*v),
            Node::F64(v) => Value::from(*v),
            Node::Str(s) => Value::from(*s),
            Node::Arr(items) => Value::Array(items.iter().map(to_value).collect()),
            Node::Obj(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| ((*k).to_owned(), to_value(v)))
                    .collect(),
            ),
        }
    }

    /// Booleans compared as "some boolean", numbers as serde_json reads them.
    fn normalise(v: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::Bool(_) => Value::Bool(true),
            Value::Array(a) => Value::Array(a.into_iter().map(normalise).collect()),
            Value::Object(m) => {
                Value::Object(m.into_iter().map(|(k, v)| (k, normalise(v))).collect())
            }
            other => other,
        }
    }

    /// Equal trees, floats within a relative 1e-9: serde_json's default float parsing is not
    /// exact (it may be a few units in the last place off); ours is std's, which is.
    fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (a, b) {
            (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
                let (x, y) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }

    fn json_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| format!("{f:e}")),
            "\\PC{0,12}".prop_map(|s| serde_json::Value::from(s).to_string()),
            "[a-z\\\\\"\\u{0}-\\u{1f}\\u{e9}\\u{1F600}]{0,10}"
                .prop_map(|s| serde_json::Value::from(s).to_string()),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                proptest::collection::btree_map("[a-z\\-]{0,8}", inner, 0..6).prop_map(|m| {
                    let members: Vec<String> = m
                        .into_iter()
                        .map(|(k, v)| format!("{}: {v}", serde_json::Value::from(k)))
                        .collect();
                    format!("{{ {} }}", members.join(" ,\n  "))
                }),
            ]
        })
    }

    proptest::proptest! {
        /// Valid JSON: the same tree as serde_json reads.
        #[test]
        fn agrees_with_serde_json_on_valid_json(text in json_text()) {
            let arena = Bump::new();
            let ours = parse(&text, &Limits::default(), &arena).map(|n| to_value(&n));
            let theirs = serde_json::from_str::<serde_json::Value>(&text).map(normalise);
            match (ours, theirs) {
                (Ok(a), Ok(b)) => proptest::prop_assert!(same(&a, &b), "{text}: ours {a}, serde_json {b}"),
                (a, b) => proptest::prop_assert!(false, "{text}: ours {a:?}, serde_json {b:?}"),
            }
        }

        /// Any text, valid or mutated: accepted exactly when serde_json accepts it (apart
        /// from duplicate member names, which we reject), never a panic.
        #[test]
        fn accepts_what_serde_json_accepts(text in json_text(), cut in 0usize..64, junk in "[\\[\\]{}:,\"\\\\0-9a-z.eE+ -]{0,3}") {
            let mut mutated = text.clone();
            let at = mutated.len().saturating_sub(cut);
            let at = (0..=at).rev().find(|&i| mutated.is_char_boundary(i)).unwrap_or(0);
            mutated.insert_str(at, &junk);
            let arena = Bump::new();
            let ours = parse(&mutated, &Limits::default(), &arena);
            let theirs = serde_json::from_str::<serde_json::Value>(&mutated);
            match ours {
                Err(ReadError::DuplicateKey { .. }) => {}
                Ok(_) => proptest::prop_assert!(theirs.is_ok(), "{mutated:?} accepted, serde_json says {theirs:?}"),
                Err(e) => proptest::prop_assert!(theirs.is_err(), "{mutated:?} rejected ({e}), serde_json accepts"),
            }
        }
    }
}
