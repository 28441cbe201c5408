//! Raw DEFLATE (RFC 1951) decoding tuned for small inputs.
//!
//! Gzipped TLS reports are a few hundred bytes that inflate to one or two KiB, almost always
//! one dynamic-Huffman block. At that size a general-purpose inflater spends most of its time
//! *building* lookup tables (zlib's 1024-entry literal/length and 512-entry distance tables
//! hold more entries than the block has symbols) rather than decoding. This decoder keeps the
//! work proportional to the block:
//!
//! * root tables are only as wide as the longest code needs (at most [`LIT_ROOT`] /
//!   [`DIST_ROOT`] bits), longer codes go through small sub-tables;
//! * symbols are sorted into canonical order (by code length) while the code lengths are
//!   read, and tables are filled in that order by doubling the filled prefix (one store per
//!   code, then a block copy), not by replicating every entry one by one;
//! * bits come from a 64-bit buffer refilled 8 bytes at a time, so one refill covers a whole
//!   literal/length + distance pair;
//! * output goes straight into the caller's `Vec<u8>`, sized from its reserved capacity
//!   (gzip's ISIZE), and matches are copied 16 (or 8) bytes at a time when there is room.
//!
//! Validity rules follow zlib, so a stream is accepted here exactly when zlib (and therefore
//! `flate2`) accepts it; the tests check this differentially. All code is safe Rust: hostile
//! input can make it return an error, never panic, read out of bounds, or grow the output past
//! the cap.

use std::sync::OnceLock;

/// Why a raw DEFLATE stream could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InflateError {
    /// The input ended inside the stream.
    #[error("truncated deflate stream")]
    Truncated,
    /// Output would exceed the cap (decompression bomb or simply too large).
    #[error("deflate output exceeds {max} bytes")]
    TooLarge {
        /// The cap that would have been exceeded.
        max: usize,
    },
    /// Invalid data; the text says what.
    #[error("invalid deflate data: {0}")]
    Invalid(&'static str),
}

/// Decodes one raw DEFLATE stream from the start of `input`, appending the output to `out`
/// (which the caller may have reserved), never letting `out` grow past `cap` bytes in total.
/// Returns the number of input bytes the stream used (up to and including the byte holding
/// the final block's last bit), so the caller can find the gzip trailer right after it.
///
/// The capacity `out` has on entry is taken as a size hint (gzip's ISIZE): when it is right
/// the output is written without any reallocation. Back-references may reach only bytes this
/// stream produced (those after `out.len()` on entry). On error `out` holds the bytes decoded
/// so far, at most `cap` in total.
pub fn inflate(input: &[u8], out: &mut Vec<u8>, cap: usize) -> Result<usize, InflateError> {
    let start = out.len();
    let cap = cap.max(start);
    // Work in an initialized buffer (`out[..len]`), writing at `op`; trimmed at the end.
    // Trust the caller's reservation, but only as far as the input could plausibly expand,
    // so a lying hint does not make us zero-fill megabytes for a tiny input.
    let room = if out.capacity() > start {
        out.capacity() - start
    } else {
        input.len().saturating_mul(4).max(1024)
    };
    let init = start.saturating_add(plausible(input, room)).min(cap);
    resize_within(out, init);
    let (result, op) = decode_stream(input, out, start, cap);
    out.truncate(op);
    result
}

/// As [`inflate`], into `scratch` from its start, for a caller that inflates many small
/// streams into one buffer it keeps: the bytes `scratch` already holds are overwritten rather
/// than zeroed again, and on return `scratch[..n]` is the output (what follows is left over
/// from earlier use). Returns `(input bytes used, n)`. `size_hint` (gzip's ISIZE) sizes the
/// buffer when it is shorter; the output never exceeds `cap`.
pub fn inflate_reuse(
    input: &[u8],
    scratch: &mut Vec<u8>,
    size_hint: usize,
    cap: usize,
) -> Result<(usize, usize), InflateError> {
    // Room for the hint plus the fast path's margin (16-byte match moves), so that an honest
    // stream never leaves the fast loop at its end.
    let init = plausible(input, size_hint.saturating_add(32)).min(cap);
    if scratch.len() < init {
        resize_within(scratch, init);
    }
    // What an earlier, larger stream left may not let this one grow past its cap.
    scratch.truncate(cap);
    let (result, op) = decode_stream(input, scratch, 0, cap);
    result.map(|used| (used, op))
}

/// `room`, limited to what `input` could plausibly expand to, so that a lying size hint does
/// not make us zero-fill megabytes for a tiny input.
fn plausible(input: &[u8], room: usize) -> usize {
    room.min(input.len().saturating_mul(8).max(64 * 1024))
}

/// Decodes `input` into `out[start..]`, growing `out` up to `cap`; returns the result (input
/// bytes used) and the output's end in `out`.
fn decode_stream(
    input: &[u8],
    out: &mut Vec<u8>,
    start: usize,
    cap: usize,
) -> (Result<usize, InflateError>, usize) {
    let mut s = State {
        bits: Bits {
            input,
            pos: 0,
            buf: 0,
            cnt: 0,
        },
        op: start,
        start,
        cap,
    };
    let result = s.run(out);
    let consumed = s.bits.consumed_bits();
    let available = (input.len() as u64) * 8;
    let result = match result {
        // Whatever went wrong, if the decoder had already read past the end of the input
        // (the bit buffer pads with zeros), the real problem is the missing data.
        // The same holds when the stream seemed to end inside that padding.
        _ if consumed > available => Err(InflateError::Truncated),
        Err(e) => Err(e),
        Ok(()) => Ok(consumed.div_ceil(8) as usize),
    };
    (result, s.op)
}

/// Widest root table for the literal/length code; longer codes use sub-tables.
const LIT_ROOT: u32 = 10;
/// Entries the literal/length table can need: the root plus the worst case of sub-tables over
/// every complete code of at most 286 symbols and 15 bits (zlib's `enough 286 10 15`).
const LIT_ENOUGH: usize = 1332;
/// Widest root table for the distance code.
const DIST_ROOT: u32 = 8;
/// As [`LIT_ENOUGH`] for distances (`enough 32 8 15` = 402 also covers 30 symbols).
const DIST_ENOUGH: usize = 402;
/// Most bits a literal/length code and its extra bits take (15 + 5, RFC 1951 §3.2.5).
const LIT_NEED: u32 = 20;
/// Most bits a distance code and its extra bits take (15 + 13, RFC 1951 §3.2.5).
const DIST_NEED: u32 = 28;
/// The code-length code has at most 7-bit codes (RFC 1951 §3.2.7), so no sub-tables.
const PRE_ROOT: u32 = 7;
/// Width of [`REV`]; every root table is at most this wide.
const REV_BITS: u32 = 10;
/// `REV[x]` is `x` with its low [`REV_BITS`] bits in reverse order.
static REV: [u16; 1 << REV_BITS] = {
    let mut r = [0u16; 1 << REV_BITS];
    let mut x = 0;
    while x < 1 << REV_BITS {
        r[x] = ((x as u16).reverse_bits()) >> (16 - REV_BITS);
        x += 1;
    }
    r
};
const _: () = assert!(LIT_ROOT <= REV_BITS && DIST_ROOT <= REV_BITS && PRE_ROOT <= REV_BITS);

// A table entry is a `u32`:
//   bits 0..8   bits to consume: code length plus extra bits (for a sub-table pointer, the
//               root width),
//   bits 8..12  the code length alone, to find the extra bits behind it (for a sub-table
//               pointer, the sub-table's width),
//   bits 12..16 flags,
//   bits 16..32 the value: literal byte, length or distance base, or sub-table start.
// (The code-length code's entries hold their own values: see [`PRE_RESULTS`].)
/// A literal byte.
const LIT: u32 = 0x8000;
/// Not a literal, length or distance: end of block, sub-table pointer, or invalid code.
const EXC: u32 = 0x4000;
/// Pointer to a sub-table (always with [`EXC`]).
const SUB: u32 = 0x2000;
/// End of block (always with [`EXC`]).
const EOB: u32 = 0x1000;
/// A code zlib treats as an error when it is decoded (always just [`EXC`]).
const INVALID: u32 = EXC;

/// Base lengths for length symbols 257..=285 (RFC 1951 §3.2.5).
const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
/// Extra bits for length symbols 257..=285 (RFC 1951 §3.2.5).
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
/// Base distances for distance symbols 0..=29 (RFC 1951 §3.2.5).
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
/// Extra bits for distance symbols 0..=29 (RFC 1951 §3.2.5).
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// Order in which the code-length code's lengths are stored (RFC 1951 §3.2.7).
const PRE_ORDER: [u8; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];
/// Where each code-length code symbol's length is in the lengths as read, packed 3 bits each
/// in [`PRE_ORDER`].
const PRE_SHIFT: [u8; 19] = {
    let mut r = [0; 19];
    let mut k = 0;
    while k < 19 {
        r[PRE_ORDER[k] as usize] = 3 * k as u8;
        k += 1;
    }
    r
};

/// What each literal/length symbol decodes to, minus the code length: the value, flags and
/// the number of extra bits. Symbols 286 and 287 only exist in the fixed code and are invalid
/// (RFC 1951 §3.2.6). All three result tables are padded to 512 entries, so that a masked
/// symbol needs no bounds check.
static LIT_RESULTS: [u32; 512] = {
    let mut r = [INVALID; 512];
    let mut s = 0;
    while s < 288 {
        r[s] = if s < 256 {
            LIT | (s as u32) << 16
        } else if s == 256 {
            EXC | EOB
        } else if s < 286 {
            (LEN_BASE[s - 257] as u32) << 16 | LEN_EXTRA[s - 257] as u32
        } else {
            INVALID
        };
        s += 1;
    }
    r
};

/// As [`LIT_RESULTS`] for distance symbols; 30 and 31 only occur in the fixed code and are
/// invalid (RFC 1951 §3.2.6).
static DIST_RESULTS: [u32; 512] = {
    let mut r = [INVALID; 512];
    let mut s = 0;
    while s < 30 {
        r[s] = (DIST_BASE[s] as u32) << 16 | DIST_EXTRA[s] as u32;
        s += 1;
    }
    r
};

/// A code-length code entry for a repeat (16, 17 or 18), with the number of extra bits in
/// bits 16..20 and the least count in bits 24..32; the others hold their length in bits
/// 28..32 (no mask needed).
const PRE_REPEAT: u32 = 0x8000;
/// With [`PRE_REPEAT`]: code 16, which repeats the previous length.
const PRE_PREVIOUS: u32 = 0x4000;

/// What the code-length code's symbols decode to (RFC 1951 §3.2.7): lengths 0-15, or a
/// repeat of the previous length 3-6 times (16, 2 extra bits) or of zero 3-10 times (17, 3
/// extra bits) or 11-138 times (18, 7 extra bits).
static PRE_RESULTS: [u32; 512] = {
    let mut r = [INVALID; 512];
    let mut s = 0;
    while s < 16 {
        r[s] = (s as u32) << 28;
        s += 1;
    }
    r[16] = PRE_REPEAT | PRE_PREVIOUS | 3 << 24 | 2 << 16;
    r[17] = PRE_REPEAT | 3 << 24 | 3 << 16;
    r[18] = PRE_REPEAT | 11 << 24 | 7 << 16;
    r
};

/// The tables of the fixed Huffman code (BTYPE=01), built once per process. Only the first
/// 512 / 32 entries are used; they are sized like the dynamic tables so the decode loop takes
/// one fixed-size array type and its masked root indices need no bounds checks.
struct FixedTables {
    lit: [u32; LIT_ENOUGH],
    dist: [u32; DIST_ENOUGH],
}

fn fixed_tables() -> &'static FixedTables {
    static FIXED: OnceLock<FixedTables> = OnceLock::new();
    FIXED.get_or_init(|| {
        // RFC 1951 §3.2.6: 0-143 → 8 bits, 144-255 → 9, 256-279 → 7, 280-287 → 8; all 32
        // distance codes have 5 bits.
        let mut lens = [0u8; 288];
        for (s, l) in lens.iter_mut().enumerate() {
            *l = match s {
                0..=143 => 8,
                144..=255 => 9,
                256..=279 => 7,
                _ => 8,
            };
        }
        let mut t = FixedTables {
            lit: [0; LIT_ENOUGH],
            dist: [0; DIST_ENOUGH],
        };
        let mut rows = Box::new([[0u16; 512]; 16]);
        // Both codes are complete, so these cannot fail.
        let code = census(&lens, &mut rows, &LIT_RESULTS);
        let lit = build_table::<9, LIT_ENOUGH>(&code, &mut t.lit, Kind::LitLen);
        let code = census(&[5; 32], &mut rows, &DIST_RESULTS);
        let dist = build_table::<5, DIST_ENOUGH>(&code, &mut t.dist, Kind::Dist);
        debug_assert_eq!((lit, dist), (Ok(9), Ok(5)));
        t
    })
}

/// The symbols of a canonical Huffman code (RFC 1951 §3.2.2) by code length, which is the
/// order of their codewords: those of length `len` are `rows[len][first[len]..][..counts[len]]`
/// in increasing order, and symbol `s` decodes to `results[s - base]`.
struct Sorted<'a> {
    rows: &'a [[u16; 512]; 16],
    first: [u16; 16],
    /// How many symbols have each length (`counts[0]` is ignored).
    counts: [u16; 16],
    results: &'a [u32; 512],
    base: usize,
}

impl Sorted<'_> {
    /// What the `k`-th symbol of length `len` decodes to. (The masks only spare bounds
    /// checks: lengths are below 16, rows hold at most 316 symbols, and a symbol less `base`
    /// is below 288.)
    #[inline(always)]
    fn result(&self, len: u32, k: usize) -> u32 {
        let first = usize::from(self.first[len as usize & 15]);
        let sym = self.rows[len as usize & 15][(first + k) & 511];
        self.results[usize::from(sym).wrapping_sub(self.base) & 511]
    }
}

/// Sorts the symbols of the code with lengths `lens` into `rows` by length (a counting pass,
/// for the small or static codes; the dynamic literal/length and distance codes are sorted
/// while their lengths are read).
fn census<'a>(lens: &[u8], rows: &'a mut [[u16; 512]; 16], results: &'a [u32; 512]) -> Sorted<'a> {
    let mut counts = [0u16; 16];
    for (sym, &l) in lens.iter().enumerate() {
        let c = &mut counts[usize::from(l & 15)];
        rows[usize::from(l & 15)][usize::from(*c) & 511] = sym as u16;
        *c += 1;
    }
    Sorted {
        rows,
        first: [0; 16],
        counts,
        results,
        base: 0,
    }
}

/// Which code a table decodes; decides which incomplete codes are accepted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The code-length code (RFC 1951 §3.2.7).
    Precode,
    /// The literal/length code.
    LitLen,
    /// The distance code.
    Dist,
}

/// Builds the decode table for a canonical Huffman code (RFC 1951 §3.2.2), given as its
/// symbols sorted by code length, into `table`. Returns the root table's width: at most
/// `max_bits`, and less when no code is that long, so short codes cost a small table.
///
/// Like zlib, over-subscribed codes are rejected, and incomplete codes are too, except a code
/// with a single one-bit codeword for the literal/length or distance code (then the unused
/// codeword is invalid when decoded) and an empty distance code (every distance invalid: a
/// block of literals only). RFC 1951 §3.2.7 allows one distance code of one bit.
fn build_table<const MAX_BITS: u32, const N: usize>(
    code: &Sorted<'_>,
    table: &mut [u32; N],
    kind: Kind,
) -> Result<u32, &'static str> {
    let counts = &code.counts;
    let max_bits = MAX_BITS;
    // Root indices are below 2^MAX_BITS <= N; masking with it spares the bounds checks.
    let root_index = |cw: u32| cw as usize & ((1 << MAX_BITS) - 1);
    let mut max_len = 15;
    while max_len > 0 && counts[max_len] == 0 {
        max_len -= 1;
    }
    // Code space used, in units of 2^-15: a code of length l takes 2^(15-l).
    let mut used: u32 = 0;
    for (len, &count) in counts.iter().enumerate().skip(1) {
        used += u32::from(count) << (15 - len);
    }
    let bad = match kind {
        Kind::Precode => "invalid code lengths (bad code-length code)",
        Kind::LitLen => "invalid code lengths (bad literal/length code)",
        Kind::Dist => "invalid code lengths (bad distance code)",
    };
    if used > 1 << 15 {
        return Err(match kind {
            Kind::Precode => "invalid code lengths (over-subscribed code-length code)",
            Kind::LitLen => "invalid code lengths (over-subscribed literal/length code)",
            Kind::Dist => "invalid code lengths (over-subscribed distance code)",
        });
    }
    if used < 1 << 15 {
        if kind == Kind::Precode {
            return Err(bad);
        }
        let invalid = INVALID | 1 << 8 | 1;
        if used == 0 {
            // No codes: only the distance code may be empty (the literal/length code always
            // holds end-of-block, checked by the caller).
            if kind == Kind::LitLen {
                return Err(bad);
            }
            table[0] = invalid;
            table[1] = invalid;
            return Ok(1);
        }
        if max_len != 1 {
            return Err(match kind {
                Kind::LitLen => "invalid code lengths (incomplete literal/length code)",
                _ => "invalid code lengths (incomplete distance code)",
            });
        }
        // One codeword of one bit: it is `0`, and `1` is invalid (as zlib decodes it).
        table[0] = code.result(1, 0) + (1 << 8) + 1;
        table[1] = invalid;
        return Ok(1);
    }

    let table_bits = max_bits.min(max_len as u32);
    // The entry of the `k`-th code of length `len`, `l` bits of which are looked up here.
    let entry = |len: u32, k: usize, l: u32| code.result(len, k) + (l << 8) + l;

    // Codewords are used bit-reversed (RFC 1951 §3.1.1 packs Huffman codes starting with the
    // most significant bit). The canonical codes of one length are consecutive numbers, so
    // each is found by counting (`c + k`) and reversing through [`REV`]: no codeword depends
    // on the previous one, which keeps the loop free of a long dependency chain. Codes no
    // longer than the root are stored once in a table treated as 2^len wide, which is doubled
    // by copying its filled prefix whenever `len` grows: every entry gets written once, mostly
    // by block copies.
    let mut c: u32 = 0; // the first canonical code of length `len`
    let mut len: u32 = 1;
    while counts[len as usize] == 0 {
        len += 1;
    }
    let mut count = u32::from(counts[len as usize]);
    let mut cur_end: u32 = 1 << len;
    while len <= table_bits {
        // `c + k < 2^len`: the code is not over-subscribed. Shifted to REV_BITS bits, its
        // reversal is the `len`-bit reversal of `c + k`.
        let shift = REV_BITS - len;
        let add = (len << 8) + len;
        for k in 0..count {
            let cw = u32::from(REV[((c + k) << shift) as usize & ((1 << REV_BITS) - 1)]);
            table[root_index(cw)] = code.result(len, k as usize) + add;
        }
        c += count;
        if c == cur_end {
            // Every codeword is used (the last was all ones): widen to the full root.
            while len < table_bits {
                double(table, cur_end as usize);
                cur_end <<= 1;
                len += 1;
            }
            return Ok(table_bits);
        }
        loop {
            len += 1;
            c <<= 1;
            if len <= table_bits {
                double(table, cur_end as usize);
                cur_end <<= 1;
            }
            if len > 15 {
                return Err(bad); // unreachable for a complete code
            }
            count = u32::from(counts[len as usize]);
            if count != 0 {
                break;
            }
        }
    }
    // The first code longer than the root, bit-reversed from here on.
    let mut codeword = c.reverse_bits() >> (32 - len);
    let mut k = 0usize; // index among the codes of length `len`

    // Codes longer than the root: each distinct root prefix gets a sub-table just wide enough
    // for the codes that share it.
    let root_mask = (1u32 << table_bits) - 1;
    let mut cur_end: usize = 1 << table_bits;
    let mut prefix = u32::MAX;
    let mut sub_start = 0usize;
    loop {
        if codeword & root_mask != prefix {
            prefix = codeword & root_mask;
            sub_start = cur_end;
            let mut sub_bits = len - table_bits;
            let mut space = count;
            while space < 1 << sub_bits {
                sub_bits += 1;
                let l = (table_bits + sub_bits) as usize;
                space = (space << 1) + u32::from(*counts.get(l).ok_or(bad)?);
            }
            cur_end = sub_start + (1 << sub_bits);
            if cur_end > table.len() {
                return Err(bad); // cannot happen: the tables are sized by `enough`
            }
            table[prefix as usize] =
                (sub_start as u32) << 16 | EXC | SUB | sub_bits << 8 | table_bits;
        }
        let e = entry(len, k, len - table_bits);
        k += 1;
        let stride = 1usize << (len - table_bits);
        let mut i = sub_start + (codeword >> table_bits) as usize;
        while i < cur_end {
            table[i] = e;
            i += stride;
        }
        if codeword == (1 << len) - 1 {
            return Ok(table_bits);
        }
        let bit = 1 << (31 - (codeword ^ ((1 << len) - 1)).leading_zeros());
        codeword &= bit - 1;
        codeword |= bit;
        count -= 1;
        while count == 0 {
            len += 1;
            count = u32::from(*counts.get(len as usize).ok_or(bad)?);
            k = 0;
        }
    }
}

/// Copies `table[..size]` to `table[size..2 * size]` (a table's filled prefix, doubling it).
/// Inline, in 32-byte pieces: the copies are a few dozen to a few hundred bytes, for which a
/// call to `memmove` costs more than the moves.
#[inline(always)]
fn double<const N: usize>(table: &mut [u32; N], size: usize) {
    let (done, rest) = table.split_at_mut(size);
    let Some(rest) = rest.get_mut(..size) else {
        return; // cannot happen: the caller stays within the table
    };
    // Sizes are powers of two.
    match size {
        1 | 2 | 4 => {
            for (to, from) in rest.iter_mut().zip(done.iter()).take(4) {
                *to = *from;
            }
        }
        _ => {
            for (to, from) in rest.chunks_exact_mut(8).zip(done.chunks_exact(8)) {
                to.copy_from_slice(from);
            }
        }
    }
}

/// The input bit stream: bits are consumed from the least significant end of `buf`
/// (RFC 1951 §3.1.1). Refills load 8 bytes at a time; bits above `cnt` may already hold the
/// following input bytes, which later refills OR in again unchanged. Past the end of the
/// input the buffer is padded with zero bytes (counted in `pos`), so decoding never stalls
/// on a refill; whether padding was actually consumed is checked at the end.
struct Bits<'a> {
    input: &'a [u8],
    /// Input bytes loaded so far (may exceed `input.len()` by the zero padding).
    pos: usize,
    buf: u64,
    /// Valid bits in `buf`.
    cnt: u32,
}

impl Bits<'_> {
    /// Tops the buffer up to at least 56 valid bits.
    #[inline(always)]
    fn refill(&mut self) -> Result<(), InflateError> {
        if let Some(chunk) = self
            .input
            .get(self.pos..)
            .and_then(|r| r.first_chunk::<8>())
        {
            self.buf |= u64::from_le_bytes(*chunk) << self.cnt;
            self.pos += ((63 - self.cnt) >> 3) as usize;
            self.cnt |= 56;
            Ok(())
        } else {
            self.refill_slow()
        }
    }

    #[cold]
    #[inline(never)]
    fn refill_slow(&mut self) -> Result<(), InflateError> {
        (self.pos, self.buf, self.cnt) = refill_tail(self.input, self.pos, self.buf, self.cnt)?;
        Ok(())
    }

    /// Takes `n` bits (the caller has refilled enough).
    #[inline(always)]
    fn take(&mut self, n: u32) -> u32 {
        debug_assert!(n <= self.cnt && n < 32);
        let v = (self.buf & ((1 << n) - 1)) as u32;
        self.buf >>= n;
        self.cnt -= n;
        v
    }

    /// Bits consumed from the start of the input (padding included).
    fn consumed_bits(&self) -> u64 {
        (self.pos as u64) * 8 - u64::from(self.cnt)
    }
}

/// Refills byte by byte near the end of the input, padding with zero bytes past it; takes and
/// returns the bit reader's `(pos, buf, cnt)` by value so callers can keep them in registers.
#[cold]
#[inline(never)]
fn refill_tail(
    input: &[u8],
    mut pos: usize,
    mut buf: u64,
    mut cnt: u32,
) -> Result<(usize, u64, u32), InflateError> {
    while cnt <= 56 {
        let byte = match input.get(pos) {
            Some(&b) => b,
            // Eight bytes of padding always fit in the buffer, so needing a ninth means some
            // padding was consumed: the stream is truncated.
            None if pos >= input.len() + 8 => return Err(InflateError::Truncated),
            None => 0,
        };
        buf |= u64::from(byte) << cnt;
        pos += 1;
        cnt += 8;
    }
    Ok((pos, buf, cnt))
}

/// Tops the bit buffer `(pos, buf, cnt)` up to at least 56 bits, by value.
#[inline(always)]
fn refill_tail_or_fast(
    input: &[u8],
    pos: usize,
    buf: u64,
    cnt: u32,
) -> Result<(usize, u64, u32), InflateError> {
    match input.get(pos..pos + 8) {
        Some(chunk) => {
            let mut c = [0u8; 8];
            c.copy_from_slice(chunk);
            Ok((
                pos + ((63 - cnt) >> 3) as usize,
                buf | u64::from_le_bytes(c) << cnt,
                cnt | 56,
            ))
        }
        None => refill_tail(input, pos, buf, cnt),
    }
}

/// The reader of a dynamic block's code lengths (RFC 1951 §3.2.7). As each length is read,
/// its symbol is filed under it (`by_len`), which both counts the lengths and sorts the
/// symbols into canonical order for `build_table`, with no second pass over them; the
/// lengths themselves are not kept (the rare code 16 finds the previous one in `by_len`).
struct Lengths<'a> {
    bits: Bits<'a>,
    /// Symbols read so far.
    i: usize,
    /// Each length's next free place in `by_len`, seen as one flat array: filing a symbol is
    /// a store and an increment. Symbols of length 0 read one by one are filed too (row 0,
    /// never read): that is cheaper than a branch. Runs of zeros are only skipped.
    places: [u16; 16],
}

impl Lengths<'_> {
    /// Reads lengths until at least `limit` symbols have them (a repeat may go past it, but
    /// not past `n`). Out of line, so that the loop has the registers to itself.
    #[inline(never)]
    fn read(
        &mut self,
        pre: &[u32; 1 << PRE_ROOT],
        by_len: &mut [[u16; 512]; 16],
        n: usize,
        limit: usize,
    ) -> Result<(), InflateError> {
        let input = self.bits.input;
        let (mut pos, mut bitbuf, mut cnt) = (self.bits.pos, self.bits.buf, self.bits.cnt);
        let mut i = self.i;
        let flat = by_len.as_flattened_mut();
        let result = loop {
            if i >= limit {
                break Ok(());
            }
            // A code and its repeat count take at most 7 + 7 bits.
            if cnt < 14 {
                match refill_tail_or_fast(input, pos, bitbuf, cnt) {
                    Ok(r) => (pos, bitbuf, cnt) = r,
                    Err(e) => break Err(e),
                }
            }
            let e = pre[bitbuf as usize & ((1 << PRE_ROOT) - 1)];
            let code_len = e & 0xff;
            bitbuf >>= code_len;
            cnt -= code_len;
            if e & PRE_REPEAT == 0 {
                let place = &mut self.places[(e >> 28) as usize];
                flat[usize::from(*place) & (16 * 512 - 1)] = i as u16;
                *place += 1;
                i += 1;
                continue;
            }
            // A repeat: its count follows the code (RFC 1951 §3.2.7).
            let mut value = 0;
            if e & PRE_PREVIOUS != 0 {
                let Some(prev) = self.last_len(flat, i) else {
                    break Err(InflateError::Invalid(
                        "code length repeat with no previous length",
                    ));
                };
                value = prev;
            }
            let extra = (e >> 16) & 15;
            let count = (e >> 24) as usize + (bitbuf & ((1 << extra) - 1)) as usize;
            bitbuf >>= extra;
            cnt -= extra;
            if i + count > n {
                break Err(InflateError::Invalid(
                    "code length repeat past the last code",
                ));
            }
            if value != 0 {
                let place = &mut self.places[value & 15];
                for j in i..i + count {
                    flat[usize::from(*place) & (16 * 512 - 1)] = j as u16;
                    *place += 1;
                }
            }
            i += count;
        };
        (self.bits.pos, self.bits.buf, self.bits.cnt) = (pos, bitbuf, cnt);
        self.i = i;
        result
    }

    /// The length of the last symbol read (`i - 1`), or `None` before the first. Symbols are
    /// filed in increasing order, so it is the last one filed in its row; lengths of 0 are
    /// not all filed, so it is 0 when no other row ends with it.
    #[cold]
    fn last_len(&self, flat: &[u16], i: usize) -> Option<usize> {
        let last = i.checked_sub(1)?;
        Some(
            (1..16)
                .find(|&len| {
                    let place = usize::from(self.places[len]);
                    place > len * 512 && flat.get(place - 1) == Some(&(last as u16))
                })
                .unwrap_or(0),
        )
    }
}

/// Decoder state shared by all blocks of the stream.
struct State<'a> {
    bits: Bits<'a>,
    /// Next output position in the working buffer.
    op: usize,
    /// `out.len()` on entry: back-references may not reach before it.
    start: usize,
    /// Maximum `out.len()`.
    cap: usize,
}

/// Why the fast decode loop returned.
enum Stop {
    EndOfBlock,
    /// The output buffer is full; this literal or match must be written after growing it.
    Literal(u8),
    Match {
        len: usize,
        dist: usize,
    },
}

/// Scratch space for one dynamic block's tables (about 23 KiB, reused per thread; a block
/// touches only a few KiB of it).
struct Tables {
    lit: [u32; LIT_ENOUGH],
    dist: [u32; DIST_ENOUGH],
    pre: [u32; 1 << PRE_ROOT],
    /// The symbols of each code length, in increasing order (literal/length and distance
    /// symbols in one sequence, as their lengths are read): `by_len[len][..count]`. Rows are
    /// 512 wide so a masked index needs no bounds check (at most 316 symbols fit).
    by_len: [[u16; 512]; 16],
}

impl State<'_> {
    fn run(&mut self, out: &mut Vec<u8>) -> Result<(), InflateError> {
        // The dynamic tables (~7 KiB) are kept per thread: zeroing fresh ones for every stream
        // would cost more than decoding a small report.
        thread_local! {
            static SPARE: std::cell::Cell<Option<Box<Tables>>> = const { std::cell::Cell::new(None) };
        }
        let mut tables = SPARE.with(std::cell::Cell::take);
        let result = self.blocks(out, &mut tables);
        if tables.is_some() {
            SPARE.with(|s| s.set(tables));
        }
        result
    }

    fn blocks(
        &mut self,
        out: &mut Vec<u8>,
        tables: &mut Option<Box<Tables>>,
    ) -> Result<(), InflateError> {
        loop {
            self.bits.refill()?;
            // RFC 1951 §3.2.3: BFINAL, then BTYPE, least significant bit first.
            let last = self.bits.take(1) == 1;
            match self.bits.take(2) {
                0 => self.stored(out)?,
                1 => {
                    let f = fixed_tables();
                    self.huffman(out, &f.lit, 9, &f.dist, 5)?;
                }
                2 => {
                    let t = tables.get_or_insert_with(|| {
                        Box::new(Tables {
                            lit: [0; LIT_ENOUGH],
                            dist: [0; DIST_ENOUGH],
                            pre: [0; 1 << PRE_ROOT],
                            by_len: [[0; 512]; 16],
                        })
                    });
                    let (lit_bits, dist_bits) = self.read_dynamic_header(t)?;
                    self.huffman(out, &t.lit, lit_bits, &t.dist, dist_bits)?;
                }
                _ => return Err(InflateError::Invalid("invalid block type 3")),
            }
            if last {
                return Ok(());
            }
        }
    }

    /// A stored block (RFC 1951 §3.2.4): skip to the byte boundary, then LEN, NLEN (its
    /// one's complement) and LEN bytes copied as they are.
    fn stored(&mut self, out: &mut Vec<u8>) -> Result<(), InflateError> {
        let b = &mut self.bits;
        let skip = b.cnt & 7;
        b.take(skip);
        // Unconsumed whole bytes in the bit buffer go back to the input.
        let at = b.pos - (b.cnt / 8) as usize;
        let input = b.input;
        let header = input.get(at..at + 4).ok_or(InflateError::Truncated)?;
        let len = u16::from_le_bytes([header[0], header[1]]);
        let nlen = u16::from_le_bytes([header[2], header[3]]);
        if len != !nlen {
            return Err(InflateError::Invalid(
                "stored block length does not match its complement",
            ));
        }
        let len = usize::from(len);
        let data = input
            .get(at + 4..at + 4 + len)
            .ok_or(InflateError::Truncated)?;
        let end = self.op + len;
        if end > out.len() {
            grow(out, end, self.cap)?;
        }
        out[self.op..end].copy_from_slice(data);
        self.op = end;
        b.pos = at + 4 + len;
        b.buf = 0;
        b.cnt = 0;
        Ok(())
    }

    /// Reads a dynamic block's code lengths (RFC 1951 §3.2.7) and builds its tables; returns
    /// the literal/length and distance root table widths.
    fn read_dynamic_header(&mut self, t: &mut Tables) -> Result<(u32, u32), InflateError> {
        let b = &mut self.bits;
        b.refill()?;
        let nlit = b.take(5) as usize + 257;
        let ndist = b.take(5) as usize + 1;
        let npre = b.take(4) as usize + 4;
        // RFC 1951 §3.2.7 allows HDIST up to 32 but codes 30 and 31 never occur; zlib rejects
        // more than 30 distance or 286 literal/length codes, and so do we.
        if nlit > 286 || ndist > 30 {
            return Err(InflateError::Invalid(
                "too many literal/length or distance codes",
            ));
        }
        b.refill()?;
        // Up to 19 × 3 = 57 bits, one more than a refill guarantees (56; found by fuzzing:
        // HCLEN = 15 with the buffer at exactly 56 bits). So the first 18 are read from the
        // buffer as it is, and the 19th after a top-up. They are kept packed as they came
        // (the `k`-th in PRE_ORDER at bit 3k, those not sent 0) and sorted straight from there.
        let first = npre.min(18);
        let mut packed = b.buf & ((1 << (3 * first)) - 1);
        b.buf >>= 3 * first;
        b.cnt -= 3 * first as u32;
        if npre == 19 {
            b.refill()?;
            packed |= u64::from(b.take(3)) << (3 * 18);
        }
        // Sorted by length, counting in one register (8 bits per length 0-7; at most 19
        // symbols) rather than in memory, where a run of equal lengths (often zeros) would
        // wait on the store of each count before the next.
        let mut packed_counts = 0u64;
        for (sym, &shift) in PRE_SHIFT.iter().enumerate() {
            let len = (packed >> shift) as usize & 7;
            let at = (packed_counts >> (8 * len)) as usize & 0xff;
            t.by_len[len][at] = sym as u16;
            packed_counts += 1 << (8 * len);
        }
        let counts: [u16; 16] = std::array::from_fn(|len| match len {
            0..8 => (packed_counts >> (8 * len)) as u16 & 0xff,
            _ => 0,
        });
        let mut pre_bits = build_table::<PRE_ROOT, { 1 << PRE_ROOT }>(
            &Sorted {
                rows: &t.by_len,
                first: [0; 16],
                counts,
                results: &PRE_RESULTS,
                base: 0,
            },
            &mut t.pre,
            Kind::Precode,
        )
        .map_err(InflateError::Invalid)?;
        // Widened to the full PRE_ROOT bits (a few small copies), the table takes a constant
        // mask: one register fewer in the loop below.
        while pre_bits < PRE_ROOT {
            double(&mut t.pre, 1 << pre_bits);
            pre_bits += 1;
        }

        // The lengths of both codes form one sequence (a repeat may cross from one to the
        // other). It is read in three stretches: up to symbol 256, whose length is then the
        // last one read; up to the last literal/length symbol, where `places` is noted (less
        // the distance symbols of a repeat that crossed over); and up to the end.
        let n = nlit + ndist;
        let mut r = Lengths {
            bits: Bits { ..*b },
            i: 0,
            places: std::array::from_fn(|len| (len * 512) as u16),
        };
        let by_len = &mut t.by_len;
        let result = r.read(&t.pre, by_len, n, 257).and_then(|()| {
            // The last length read covers symbol 256.
            let eob_len = r.last_len(by_len.as_flattened(), r.i).unwrap_or(0);
            r.read(&t.pre, by_len, n, nlit)?;
            // The last length read covers symbol nlit - 1, and perhaps distance symbols.
            let mut lit_places = r.places;
            let last = r.last_len(by_len.as_flattened(), r.i).unwrap_or(0);
            let p = &mut lit_places[last & 15];
            *p = p.wrapping_sub((r.i - nlit) as u16);
            r.read(&t.pre, by_len, n, n)?;
            Ok((eob_len, lit_places))
        });
        (b.pos, b.buf, b.cnt) = (r.bits.pos, r.bits.buf, r.bits.cnt);
        let (eob_len, lit_places) = result?;
        let places = r.places;
        // RFC 1951 §3.2.5: every block ends with code 256, so it must have a code.
        if eob_len == 0 {
            return Err(InflateError::Invalid(
                "invalid code lengths (no end-of-block code)",
            ));
        }
        let by_len = &t.by_len;
        // Each row holds the literal/length symbols first, then the distance symbols.
        let mut lit_counts = [0u16; 16];
        let mut dist_counts = [0u16; 16];
        for len in 1..16 {
            let row = (len * 512) as u16;
            lit_counts[len] = lit_places[len].wrapping_sub(row);
            dist_counts[len] = places[len].wrapping_sub(lit_places[len]);
        }
        let lit_bits = build_table::<LIT_ROOT, LIT_ENOUGH>(
            &Sorted {
                rows: by_len,
                first: [0; 16],
                counts: lit_counts,
                results: &LIT_RESULTS,
                base: 0,
            },
            &mut t.lit,
            Kind::LitLen,
        )
        .map_err(InflateError::Invalid)?;
        let dist_bits = build_table::<DIST_ROOT, DIST_ENOUGH>(
            &Sorted {
                rows: by_len,
                first: lit_counts,
                counts: dist_counts,
                results: &DIST_RESULTS,
                base: nlit,
            },
            &mut t.dist,
            Kind::Dist,
        )
        .map_err(InflateError::Invalid)?;
        Ok((lit_bits, dist_bits))
    }

    /// Decodes one Huffman-coded block (RFC 1951 §3.2.5) with the given tables, growing the
    /// output when the fast loop runs out of room.
    fn huffman(
        &mut self,
        out: &mut Vec<u8>,
        lit: &[u32; LIT_ENOUGH],
        lit_bits: u32,
        dist: &[u32; DIST_ENOUGH],
        dist_bits: u32,
    ) -> Result<(), InflateError> {
        loop {
            match self.decode(out, lit, lit_bits, dist, dist_bits)? {
                Stop::EndOfBlock => return Ok(()),
                Stop::Literal(byte) => {
                    grow(out, self.op + 1, self.cap)?;
                    out[self.op] = byte;
                    self.op += 1;
                }
                Stop::Match { len, dist } => {
                    // RFC 1951 §3.2.5: a distance may reach back only into the output
                    // produced so far.
                    if dist > self.op - self.start {
                        return Err(InflateError::Invalid("distance too far back"));
                    }
                    let end = self.op + len;
                    if end > out.len() {
                        grow(out, end, self.cap)?;
                    }
                    copy_bytes(out, self.op, dist, end);
                    self.op = end;
                }
            }
        }
    }

    /// The hot loop: one literal or one length/distance pair per turn. A refill yields at
    /// least 56 bits; a literal/length code with its extra bits needs at most [`LIT_NEED`], a
    /// distance at most [`DIST_NEED`]. The bit buffer lives in locals here (written back on
    /// every exit) so it stays in registers.
    #[inline(always)]
    fn decode(
        &mut self,
        buf: &mut [u8],
        lit: &[u32; LIT_ENOUGH],
        lit_bits: u32,
        dist: &[u32; DIST_ENOUGH],
        dist_bits: u32,
    ) -> Result<Stop, InflateError> {
        // Root widths never exceed LIT_ROOT / DIST_ROOT; masking with that bound as well lets
        // the compiler see every root index is inside the fixed-size tables (no bounds checks).
        let lit_mask = ((1usize << lit_bits) - 1) & ((1 << LIT_ROOT) - 1);
        let dist_mask = ((1usize << dist_bits) - 1) & ((1 << DIST_ROOT) - 1);
        // Work in the part of the buffer this stream writes, so that the output produced so
        // far is `buf[..op]` (one value fewer to keep in a register).
        let start = self.start;
        let Some(buf) = buf.get_mut(start..) else {
            return Err(InflateError::Invalid("output start past the buffer")); // cannot happen
        };
        let mut op = self.op - start;
        let input = self.bits.input;
        let mut pos = self.bits.pos;
        let mut bitbuf = self.bits.buf;
        let mut cnt = self.bits.cnt;
        macro_rules! refill {
            () => {
                if let Some(chunk) = input.get(pos..pos + 8) {
                    let mut c = [0u8; 8];
                    c.copy_from_slice(chunk);
                    bitbuf |= u64::from_le_bytes(c) << cnt;
                    pos += ((63 - cnt) >> 3) as usize;
                    cnt |= 56;
                } else {
                    match refill_tail(input, pos, bitbuf, cnt) {
                        Ok(r) => (pos, bitbuf, cnt) = r,
                        Err(e) => break Err(e),
                    }
                }
            };
        }
        // Each turn starts with enough bits for a literal/length code and its extra bits, and
        // with its table entry already looked up. Refills happen only when the buffer runs
        // low (every few literals), which keeps the input loads off the critical path.
        match refill_tail_or_fast(input, pos, bitbuf, cnt) {
            Ok(r) => (pos, bitbuf, cnt) = r,
            Err(e) => return Err(e),
        }
        let mut e = lit[bitbuf as usize & lit_mask];
        let result = loop {
            // Literals first: they are most of the symbols.
            if e & LIT != 0 {
                // The shift count is the low bits of the entry (x86 masks it the same way).
                bitbuf = bitbuf.wrapping_shr(e);
                cnt -= e & 0xff;
                let byte = (e >> 16) as u8;
                match buf.get_mut(op) {
                    Some(slot) => {
                        *slot = byte;
                        op += 1;
                        if cnt < LIT_NEED {
                            refill!();
                        }
                        e = lit[bitbuf as usize & lit_mask];
                        continue;
                    }
                    None => break Ok(Stop::Literal(byte)),
                }
            }
            // One test for the rare entries (sub-table pointer, end of block, invalid code),
            // which all have EXC.
            if e & EXC != 0 {
                let n = e & 0xff;
                bitbuf >>= n;
                cnt -= n;
                if e & SUB != 0 {
                    // The root bits are consumed; look up the rest of the code in the
                    // sub-table. Its entry (never another pointer) is handled from the top.
                    let sub_mask = (1u64 << ((e >> 8) & 0xf)) - 1;
                    e = lit[(e >> 16) as usize + (bitbuf & sub_mask) as usize];
                    continue;
                }
                if e & EOB != 0 {
                    break Ok(Stop::EndOfBlock);
                }
                break Err(InflateError::Invalid("invalid literal/length symbol"));
            }
            let saved = bitbuf;
            bitbuf = bitbuf.wrapping_shr(e);
            cnt -= e & 0xff;
            let len = (e >> 16) as usize + extra_bits(saved, bitbuf, e);

            if cnt < DIST_NEED {
                refill!();
            }
            let mut d = dist[bitbuf as usize & dist_mask];
            if d & EXC != 0 {
                // A sub-table pointer (rare) or an invalid code.
                let n = d & 0xff;
                bitbuf >>= n;
                cnt -= n;
                if d & SUB == 0 {
                    break Err(InflateError::Invalid("invalid distance symbol"));
                }
                let sub_mask = (1u64 << ((d >> 8) & 0xf)) - 1;
                d = dist[(d >> 16) as usize + (bitbuf & sub_mask) as usize];
                if d & EXC != 0 {
                    let n = d & 0xff;
                    bitbuf >>= n;
                    cnt -= n;
                    break Err(InflateError::Invalid("invalid distance symbol"));
                }
            }
            let saved = bitbuf;
            bitbuf = bitbuf.wrapping_shr(d);
            cnt -= d & 0xff;
            let distance = (d >> 16) as usize + extra_bits(saved, bitbuf, d);
            // One branch for both rare cases: a distance reaching back before the output
            // produced so far (RFC 1951 §3.2.5, an error) and a match too close to the end of
            // the buffer for 16-byte moves; `huffman` sorts them out.
            let end = op + len;
            if (distance > op) | (end + 16 > buf.len()) {
                break Ok(Stop::Match {
                    len,
                    dist: distance,
                });
            }
            if distance >= 8 {
                copy_far(buf, op, distance, end);
            } else {
                copy_near(buf, op, distance, end);
            }
            op = end;
            if cnt < LIT_NEED {
                refill!();
            }
            e = lit[bitbuf as usize & lit_mask];
        };
        self.op = start + op;
        self.bits.pos = pos;
        self.bits.buf = bitbuf;
        self.bits.cnt = cnt;
        result
    }
}

/// The extra bits of a length or distance code (RFC 1951 §3.2.5) whose table entry `e` was
/// just consumed: `saved` is the bit buffer before, `rest` after (`saved >> n`, where `n` is
/// the entry's low byte: code length plus extra bits). `saved ^ (rest << n)` is the low `n`
/// bits of `saved` (cheaper than masking), and shifting out the code length leaves the extra
/// bits. Shift counts are taken modulo 64, as x86 does: `n <= 28`, and bits 8..14 of a length
/// or distance entry hold the code length alone (its flags are clear).
#[inline(always)]
fn extra_bits(saved: u64, rest: u64, e: u32) -> usize {
    debug_assert!(e & (LIT | EXC | SUB | EOB) == 0 && e & 0xff < 64);
    ((saved ^ rest.wrapping_shl(e)).wrapping_shr(e >> 8)) as usize
}

/// Copies the match `buf[op - dist..]` to `buf[op..end]` for `dist >= 8` (RFC 1951 §3.2.3:
/// the copy may overlap what it writes) in 16-byte moves when `dist >= 16` (most matches then
/// take one), else 8-byte ones; either may scribble up to 15 bytes past `end` (overwritten
/// later or trimmed). Requires `8 <= dist <= op` and `end + 16 <= buf.len()`; each move
/// reads only bytes already written, since they lie at least a move's width back.
#[inline(always)]
fn copy_far(buf: &mut [u8], op: usize, dist: usize, end: usize) {
    debug_assert!(dist >= 8 && dist <= op && end + 16 <= buf.len());
    let mut d = op;
    if dist >= 16 {
        // The first move, which is all of most matches, from what is already written to
        // what follows: its bounds follow from the caller's checks.
        let (done, rest) = buf.split_at_mut(op);
        if let (Some(src), Some(dst)) = (
            done[op - dist..].first_chunk::<16>(),
            rest.first_chunk_mut::<16>(),
        ) {
            *dst = *src;
        }
        d += 16;
        while d < end {
            let mut chunk = [0u8; 16];
            chunk.copy_from_slice(&buf[d - dist..d - dist + 16]);
            buf[d..d + 16].copy_from_slice(&chunk);
            d += 16;
        }
        return;
    }
    loop {
        let chunk = load8(buf, d - dist);
        buf[d..d + 8].copy_from_slice(&chunk);
        d += 8;
        if d >= end {
            return;
        }
    }
}

/// As [`copy_far`] for `1 <= dist < 8`: a run of one byte is filled 8 bytes at a time, other
/// short periods byte by byte (out of line, so that loop does not crowd the decode loop's
/// registers).
#[inline(always)]
fn copy_near(buf: &mut [u8], op: usize, dist: usize, end: usize) {
    debug_assert!(dist >= 1 && dist <= op && end + 16 <= buf.len());
    if dist == 1 {
        let chunk = [buf[op - 1]; 8];
        let mut d = op;
        loop {
            buf[d..d + 8].copy_from_slice(&chunk);
            d += 8;
            if d >= end {
                return;
            }
        }
    }
    copy_bytes(buf, op, dist, end);
}

/// Copies the match `buf[op - dist..]` to `buf[op..end]` byte by byte (the careful path, for
/// short periods and near the end of the buffer). Requires `1 <= dist <= op` and `end <=
/// buf.len()`.
#[inline(never)]
fn copy_bytes(buf: &mut [u8], op: usize, dist: usize, end: usize) {
    debug_assert!(dist >= 1 && dist <= op && end <= buf.len());
    // Within the window from the match's source to its end, every index is in bounds.
    if let Some(window) = buf.get_mut(op.wrapping_sub(dist)..end) {
        for i in dist..window.len() {
            window[i] = window[i - dist];
        }
    }
}

#[inline(always)]
fn load8(buf: &[u8], at: usize) -> [u8; 8] {
    let mut c = [0u8; 8];
    c.copy_from_slice(&buf[at..at + 8]);
    c
}

/// Makes `out.len()` at least `need` (zero-filled), at most `cap`: doubles the working size,
/// allocating exactly what is asked so the allocation never exceeds the cap.
#[cold]
#[inline(never)]
fn grow(out: &mut Vec<u8>, need: usize, cap: usize) -> Result<(), InflateError> {
    if need > cap {
        return Err(InflateError::TooLarge { max: cap });
    }
    let len = need.max(out.len().saturating_mul(2)).max(1024).min(cap);
    resize_within(out, len);
    Ok(())
}

/// Resizes `out` to `len` without over-allocating (`Vec::resize` may double the capacity).
fn resize_within(out: &mut Vec<u8>, len: usize) {
    if len > out.capacity() {
        out.reserve_exact(len - out.len());
    }
    out.resize(len, 0);
}
