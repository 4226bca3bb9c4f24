//! A gzip (RFC 1952) and DEFLATE (RFC 1951) decoder, written from scratch.
//!
//! Why: the official MNIST and Fashion-MNIST downloads are `.gz` files, and the library
//! crates may not depend on a compression crate. Reading them in place saves the user a
//! `gunzip` step and keeps the data directory byte-identical to the official release,
//! whose checksums are published.
//!
//! # Format
//!
//! A gzip file is one or more *members*, each:
//!
//! ```text
//! +---+---+----+-----+-------+-----+----+   ID1 ID2 = 1f 8b, CM = 8 (deflate),
//! |ID1|ID2| CM | FLG | MTIME | XFL | OS |   FLG bits: 0 FTEXT, 1 FHCRC, 2 FEXTRA,
//! +---+---+----+-----+-------+-----+----+   3 FNAME, 4 FCOMMENT, 5-7 reserved (must be 0)
//! [FEXTRA: XLEN (u16 LE), XLEN bytes] [FNAME: bytes, 0] [FCOMMENT: bytes, 0]
//! [FHCRC: low 16 bits of the CRC-32 of the header bytes before it]
//! deflate data (RFC 1951)
//! CRC-32 of the uncompressed data (u32 LE), ISIZE = uncompressed length mod 2^32 (u32 LE)
//! ```
//!
//! The deflate data is a sequence of blocks, each starting with BFINAL (1 bit) and
//! BTYPE (2 bits): 0 stored (byte-aligned LEN, NLEN = !LEN, LEN raw bytes), 1 fixed
//! Huffman codes, 2 dynamic Huffman codes (HLIT, HDIST, HCLEN, then the code-length
//! code and the run-length coded code lengths), 3 reserved (an error). Huffman-coded
//! blocks hold literals (0-255), end of block (256) and length/distance pairs that copy
//! up to 258 bytes from at most 32 KiB back.
//!
//! # Design
//!
//! - **Bit buffer**: 64 bits, refilled with one unaligned 8-byte little-endian load
//!   while at least 8 input bytes remain, byte by byte near the end. After a refill at
//!   least 56 bits are buffered, enough for a whole literal/length + distance symbol
//!   with their extra bits (at most 15 + 5 + 15 + 13 = 48 bits), so the inner loop
//!   refills once per symbol. Past the end of the input the buffer is padded with zero
//!   bytes, which are counted. A complete file never needs them (its 8-byte trailer
//!   follows the deflate data), so any error met while padding, and any padding
//!   consumed, is reported as truncation; after 8 padding bytes decoding stops, so a
//!   truncated stream cannot spin.
//! - **Huffman tables**: a direct lookup table over the first 10 bits (literal/length)
//!   or 8 bits (distance) of the code, whose entries hold the decoded meaning (literal
//!   byte, or length/distance base and extra-bit count), the code length and flags. The
//!   few longer codes go through a second-level subtable. Code lengths are validated as
//!   zlib does: over-subscribed sets are rejected, and incomplete sets are accepted only
//!   for a single code of length 1 (or no distance codes at all); unused table entries
//!   decode as "invalid code".
//! - **Output**: grown as it is decoded (never sized from a header field alone; the
//!   trailer's ISIZE is only used as a capacity hint, clamped by 1032 times the input
//!   length, the largest ratio deflate can reach) and capped at a limit (1 GiB for
//!   [`decompress`]). Copies use `copy_within`, doubling the chunk for overlapping
//!   matches.
//! - **CRC-32**: slicing-by-16 tables built at compile time.
//!
//! Safe Rust only; malformed input of any kind gives an [`Error::Format`] that names
//! the file, the field and the byte offset, never a panic.
//!
//! [`Error::Format`]: crate::Error::Format

use crate::error::{format_err, Result};
use std::path::Path;
use std::sync::OnceLock;

/// The output cap of [`decompress`]: 1 GiB, far above any dataset file handled here
/// (MNIST's largest is 47 MB) and low enough that a hostile file cannot exhaust memory.
pub const DEFAULT_MAX_OUTPUT: usize = 1 << 30;

/// Decompresses a gzip file (one member, or several concatenated as `gzip -dc` allows),
/// checking every member's CRC-32 and ISIZE, with output capped at
/// [`DEFAULT_MAX_OUTPUT`]. `path` is only used in error messages.
pub fn decompress(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    decompress_with_limit(bytes, path, DEFAULT_MAX_OUTPUT)
}

/// [`decompress`] with an explicit cap on the decompressed size in bytes.
pub fn decompress_with_limit(bytes: &[u8], path: &Path, limit: usize) -> Result<Vec<u8>> {
    if bytes.is_empty() {
        return format_err(
            path,
            "gzip header",
            "file is empty (a gzip member is at least 18 bytes: 10-byte header, deflate data, 8-byte trailer)",
        );
    }
    // Capacity hint from the last member's ISIZE, clamped so that no header field alone
    // decides an allocation: deflate cannot expand more than 1032:1.
    let hint = match bytes.last_chunk::<4>() {
        Some(t) if bytes.len() >= 18 => u32::from_le_bytes(*t) as usize,
        _ => 0,
    };
    let cap = hint.min(limit).min(bytes.len().saturating_mul(1032));
    let mut out = Output {
        buf: Vec::new(),
        len: 0,
        limit,
    };
    // A failed reservation is not an error: the buffer grows as needed instead.
    let _ = out.buf.try_reserve_exact(cap);

    let mut pos = 0;
    loop {
        pos = read_member(bytes, pos, &mut out, path)?;
        if pos == bytes.len() {
            break;
        }
        if !bytes[pos..].starts_with(&[0x1f, 0x8b]) {
            return format_err(
                path,
                "trailing data",
                format!(
                    "{} bytes follow the gzip member that ends at byte offset {pos}, and they are not another gzip member (expected 1f 8b, found {})",
                    bytes.len() - pos,
                    hex_prefix(&bytes[pos..], 4)
                ),
            );
        }
    }
    let mut buf = out.buf;
    buf.truncate(out.len);
    if buf.capacity() - buf.len() > buf.len() / 8 {
        buf.shrink_to_fit();
    }
    Ok(buf)
}

/// CRC-32 (IEEE 802.3, reflected, as gzip and zlib use) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    crc32_update(0, data)
}

/// Continues a CRC-32: `crc32_update(crc32(a), b) == crc32(a ++ b)`.
pub fn crc32_update(crc: u32, data: &[u8]) -> u32 {
    let t = &CRC_TABLES;
    let mut c = !crc;
    let mut chunks = data.chunks_exact(16);
    for ch in &mut chunks {
        let a = u32::from_le_bytes([ch[0], ch[1], ch[2], ch[3]]) ^ c;
        let b = u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]);
        let d = u32::from_le_bytes([ch[8], ch[9], ch[10], ch[11]]);
        let e = u32::from_le_bytes([ch[12], ch[13], ch[14], ch[15]]);
        c = t[15][(a & 0xff) as usize]
            ^ t[14][((a >> 8) & 0xff) as usize]
            ^ t[13][((a >> 16) & 0xff) as usize]
            ^ t[12][(a >> 24) as usize]
            ^ t[11][(b & 0xff) as usize]
            ^ t[10][((b >> 8) & 0xff) as usize]
            ^ t[9][((b >> 16) & 0xff) as usize]
            ^ t[8][(b >> 24) as usize]
            ^ t[7][(d & 0xff) as usize]
            ^ t[6][((d >> 8) & 0xff) as usize]
            ^ t[5][((d >> 16) & 0xff) as usize]
            ^ t[4][(d >> 24) as usize]
            ^ t[3][(e & 0xff) as usize]
            ^ t[2][((e >> 8) & 0xff) as usize]
            ^ t[1][((e >> 16) & 0xff) as usize]
            ^ t[0][(e >> 24) as usize];
    }
    for &byte in chunks.remainder() {
        c = t[0][((c ^ byte as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// Slicing-by-16 tables: `t[0]` is the bytewise table, `t[s][i]` the CRC of byte `i`
/// followed by `s` zero bytes.
static CRC_TABLES: [[u32; 256]; 16] = make_crc_tables();

const fn make_crc_tables() -> [[u32; 256]; 16] {
    let mut t = [[0u32; 256]; 16];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut s = 1;
        while s < 16 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            s += 1;
        }
        i += 1;
    }
    t
}

fn hex_prefix(bytes: &[u8], n: usize) -> String {
    let shown: Vec<String> = bytes.iter().take(n).map(|b| format!("{b:02x}")).collect();
    if shown.is_empty() {
        "nothing".to_string()
    } else {
        shown.join(" ")
    }
}

// ---------------------------------------------------------------------------------------
// gzip members
// ---------------------------------------------------------------------------------------

const FHCRC: u8 = 1 << 1;
const FEXTRA: u8 = 1 << 2;
const FNAME: u8 = 1 << 3;
const FCOMMENT: u8 = 1 << 4;
const FRESERVED: u8 = 0xE0;

/// Decodes the member starting at `start`, appending to `out`; returns the offset just
/// past its trailer.
fn read_member(bytes: &[u8], start: usize, out: &mut Output, path: &Path) -> Result<usize> {
    let h = &bytes[start..];
    let truncated = |what: &str| {
        format_err(
            path,
            "gzip header",
            format!(
                "file ends inside the gzip header ({what}) of the member at byte offset {start}: the file is truncated"
            ),
        )
    };
    if h.len() >= 2 && (h[0] != 0x1f || h[1] != 0x8b) {
        let idx_hint = match h.first_chunk::<4>().map(|m| u32::from_be_bytes(*m)) {
            Some(2051) | Some(2049) => {
                " (the file starts with an IDX magic number: it is not compressed; drop the .gz suffix)"
            }
            _ => "",
        };
        return format_err(
            path,
            "magic number",
            format!(
                "expected the gzip magic bytes 1f 8b, found {}: not a gzip file{idx_hint}",
                hex_prefix(h, 2)
            ),
        );
    }
    if h.len() < 10 {
        return truncated("the fixed part is 10 bytes");
    }
    if h[2] != 8 {
        return format_err(
            path,
            "compression method",
            format!(
                "expected 8 (deflate), found {} in the member at byte offset {start}",
                h[2]
            ),
        );
    }
    let flg = h[3];
    if flg & FRESERVED != 0 {
        return format_err(
            path,
            "flags",
            format!(
                "reserved flag bits are set (FLG = {flg:#04x}) in the member at byte offset {start}; a valid gzip file leaves bits 5-7 zero"
            ),
        );
    }
    let mut p = 10;
    if flg & FEXTRA != 0 {
        let Some(x) = h.get(p..p + 2) else {
            return truncated("FEXTRA length");
        };
        let xlen = u16::from_le_bytes([x[0], x[1]]) as usize;
        p += 2;
        if h.len() - p < xlen {
            return truncated("FEXTRA field");
        }
        p += xlen;
    }
    for (flag, what) in [(FNAME, "FNAME"), (FCOMMENT, "FCOMMENT")] {
        if flg & flag != 0 {
            match h[p..].iter().position(|&b| b == 0) {
                Some(z) => p += z + 1,
                None => return truncated(&format!("{what} has no terminating zero byte")),
            }
        }
    }
    if flg & FHCRC != 0 {
        let Some(x) = h.get(p..p + 2) else {
            return truncated("FHCRC");
        };
        let stored = u16::from_le_bytes([x[0], x[1]]);
        let actual = (crc32(&h[..p]) & 0xffff) as u16;
        if stored != actual {
            return format_err(
                path,
                "header CRC",
                format!(
                    "FHCRC of the member at byte offset {start} is {stored:#06x}, the header bytes give {actual:#06x}: the header is corrupt"
                ),
            );
        }
        p += 2;
    }

    let data_start = start + p;
    let out_start = out.len;
    let consumed = match inflate(&bytes[data_start..], out) {
        Ok(n) => n,
        Err(fail) => return Err(fail.into_error(path, data_start, bytes.len())),
    };
    let t = data_start + consumed;
    let Some(trailer) = bytes.get(t..t + 8) else {
        return format_err(
            path,
            "gzip trailer",
            format!(
                "the deflate data ends at byte offset {t}, but only {} of the 8 trailer bytes (CRC-32, ISIZE) follow: the file is truncated",
                bytes.len() - t
            ),
        );
    };
    let data = &out.buf[out_start..out.len];
    let stored_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let actual_crc = crc32(data);
    if stored_crc != actual_crc {
        return format_err(
            path,
            "CRC-32",
            format!(
                "the trailer at byte offset {t} says {stored_crc:#010x}, the {} decompressed bytes give {actual_crc:#010x}: the data is corrupt",
                data.len()
            ),
        );
    }
    let stored_size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    let actual_size = data.len() as u64 as u32; // ISIZE is the length mod 2^32
    if stored_size != actual_size {
        return format_err(
            path,
            "ISIZE",
            format!(
                "the trailer at byte offset {} says {stored_size} bytes, the member decompressed to {} bytes: the data is corrupt",
                t + 4,
                data.len()
            ),
        );
    }
    Ok(t + 8)
}

// ---------------------------------------------------------------------------------------
// Inflate
// ---------------------------------------------------------------------------------------

/// Why a deflate stream was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    Truncated,
    ReservedBlockType,
    StoredLength {
        len: u16,
        nlen: u16,
    },
    TooManySymbols {
        hlit: usize,
        hdist: usize,
    },
    CodeLengths(&'static str),
    BadCode {
        which: &'static str,
        fault: CodeFault,
    },
    InvalidLitLenCode,
    InvalidDistanceCode,
    DistanceTooFar {
        distance: usize,
        available: usize,
    },
    OutputLimit(usize),
}

/// Why a set of code lengths does not define a usable prefix code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodeFault {
    /// More codes than the lengths allow (Kraft sum above 1).
    OverSubscribed,
    /// Codes missing (Kraft sum below 1) where that is not allowed.
    Incomplete,
    /// No codes at all where some are needed.
    Empty,
}

impl CodeFault {
    fn describe(self) -> &'static str {
        match self {
            CodeFault::OverSubscribed => "over-subscribed",
            CodeFault::Incomplete => "incomplete",
            CodeFault::Empty => "empty",
        }
    }

    fn in_code(self, which: &'static str) -> Problem {
        Problem::BadCode { which, fault: self }
    }
}

/// A [`Problem`] and the input byte offset (relative to the deflate data) where it was
/// found.
struct Fail {
    problem: Problem,
    offset: usize,
}

impl Fail {
    fn into_error(self, path: &Path, data_start: usize, file_len: usize) -> crate::Error {
        let at = data_start + self.offset;
        let (field, problem) = match self.problem {
            Problem::Truncated => (
                "deflate data",
                format!(
                    "the compressed data ends before its final block does (file is {file_len} bytes): the file is truncated"
                ),
            ),
            Problem::ReservedBlockType => (
                "deflate data",
                format!("block type 3 (reserved) near byte offset {at}: corrupt data"),
            ),
            Problem::StoredLength { len, nlen } => (
                "deflate data",
                format!(
                    "stored block near byte offset {at} has LEN {len:#06x} and NLEN {nlen:#06x}; NLEN must be the complement of LEN: corrupt data"
                ),
            ),
            Problem::TooManySymbols { hlit, hdist } => (
                "deflate data",
                format!(
                    "dynamic block near byte offset {at} declares {hlit} literal/length and {hdist} distance codes; at most 286 and 30 exist: corrupt Huffman data"
                ),
            ),
            Problem::CodeLengths(what) => (
                "deflate data",
                format!("dynamic block near byte offset {at}: {what}: corrupt Huffman data"),
            ),
            Problem::BadCode { which, fault } => (
                "deflate data",
                format!(
                    "dynamic block near byte offset {at}: {} {which}: corrupt Huffman data",
                    fault.describe()
                ),
            ),
            Problem::InvalidLitLenCode => (
                "deflate data",
                format!("invalid literal/length code near byte offset {at}: corrupt Huffman data"),
            ),
            Problem::InvalidDistanceCode => (
                "deflate data",
                format!("invalid distance code near byte offset {at}: corrupt Huffman data"),
            ),
            Problem::DistanceTooFar {
                distance,
                available,
            } => (
                "deflate data",
                format!(
                    "a match near byte offset {at} copies from {distance} bytes back, but only {available} bytes have been decoded: corrupt data"
                ),
            ),
            Problem::OutputLimit(limit) => (
                "decompressed size",
                format!(
                    "the data decompresses to more than the limit of {limit} bytes (stopped near compressed byte offset {at})"
                ),
            ),
        };
        crate::Error::Format {
            path: path.to_path_buf(),
            field: field.to_string(),
            problem,
        }
    }
}

/// The decompressed bytes so far: `buf[..len]` is data, `buf[len..]` is room to write
/// into (contents unspecified: short match copies may scribble a few bytes ahead).
struct Output {
    buf: Vec<u8>,
    len: usize,
    limit: usize,
}

/// Makes `buf` at least `needed` long (zero-filled), or fails if that passes `limit`.
#[cold]
#[inline(never)]
fn grow(buf: &mut Vec<u8>, needed: usize, limit: usize) -> std::result::Result<(), Problem> {
    if needed > limit {
        return Err(Problem::OutputLimit(limit));
    }
    let new_len = if needed <= buf.capacity() {
        buf.capacity()
    } else {
        needed.max(buf.len().saturating_mul(2)).max(1 << 16)
    };
    buf.resize(new_len.min(limit), 0);
    Ok(())
}

/// The bit reader: LSB-first bits of `data`, buffered 64 at a time. (`Copy` so that hot
/// loops can work on a local copy the compiler keeps in registers.)
#[derive(Clone, Copy)]
struct Bits<'a> {
    data: &'a [u8],
    /// Next byte of `data` to load into `buf`.
    pos: usize,
    /// Buffered bits, least significant first. Bits at and above `cnt` are either zero
    /// or the true following bits (the fast refill loads 8 bytes but counts 7 or fewer),
    /// so OR-ing the same bytes in again is harmless.
    buf: u64,
    cnt: u32,
    /// Zero bytes loaded past the end of `data`.
    overrun: usize,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Bits<'a> {
        Bits {
            data,
            pos: 0,
            buf: 0,
            cnt: 0,
            overrun: 0,
        }
    }

    /// Tops the buffer up to at least 56 bits.
    #[inline(always)]
    fn refill(&mut self) -> std::result::Result<(), Problem> {
        if let Some(word) = self.data.get(self.pos..).and_then(|s| s.first_chunk::<8>()) {
            self.buf |= u64::from_le_bytes(*word) << self.cnt;
            self.pos += ((63 - self.cnt) >> 3) as usize;
            self.cnt |= 56;
            Ok(())
        } else {
            self.refill_slow()
        }
    }

    #[cold]
    #[inline(never)]
    fn refill_slow(&mut self) -> std::result::Result<(), Problem> {
        while self.cnt < 56 {
            let byte = match self.data.get(self.pos) {
                Some(&b) => {
                    self.pos += 1;
                    b
                }
                None => {
                    // With 8 padding bytes loaded, at least one has been consumed
                    // (the buffer holds at most 63 bits): the stream is truncated.
                    self.overrun += 1;
                    if self.overrun >= 8 {
                        return Err(Problem::Truncated);
                    }
                    0
                }
            };
            self.buf |= (byte as u64) << self.cnt;
            self.cnt += 8;
        }
        Ok(())
    }

    /// Makes sure `n <= 56` bits are buffered.
    #[inline(always)]
    fn need(&mut self, n: u32) -> std::result::Result<(), Problem> {
        if self.cnt < n {
            self.refill()
        } else {
            Ok(())
        }
    }

    #[inline(always)]
    fn peek(&self, n: u32) -> u64 {
        self.buf & ((1u64 << n) - 1)
    }

    /// Drops `n` buffered bits; the caller has made sure `n <= cnt`.
    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.buf >>= n;
        self.cnt -= n;
    }

    /// Reads `n` buffered bits (the caller has made sure they are buffered).
    #[inline(always)]
    fn take(&mut self, n: u32) -> u32 {
        let v = self.peek(n) as u32;
        self.consume(n);
        v
    }

    /// Skips to the next byte boundary and hands the unread whole bytes back to `data`,
    /// so that `pos` is the offset of the next unread byte. Fails if any padding byte
    /// past the end of the input was consumed.
    fn align_and_rewind(&mut self) -> std::result::Result<(), Problem> {
        self.consume(self.cnt % 8);
        let unread = (self.cnt / 8) as usize;
        if unread < self.overrun {
            return Err(Problem::Truncated);
        }
        self.pos -= unread - self.overrun;
        self.overrun = 0;
        self.buf = 0;
        self.cnt = 0;
        Ok(())
    }

    /// Roughly where in `data` the reader is, for error messages.
    fn offset(&self) -> usize {
        (self.pos + self.overrun)
            .saturating_sub((self.cnt / 8) as usize)
            .min(self.data.len())
    }
}

// Table entry layout (u32): bits 0-3 code length used at this level, bits 4-7 extra
// bits (length/distance) or subtable index bits, bits 8-15 flags, bits 16-31 value
// (literal byte, length or distance base, code-length symbol, or subtable offset).
// An entry of 0 (no flag) is an invalid code.
const F_LIT: u32 = 1 << 8;
const F_LEN: u32 = 1 << 9;
const F_EOB: u32 = 1 << 10;
const F_DIST: u32 = 1 << 11;
const F_SYM: u32 = 1 << 12;
const F_SUB: u32 = 1 << 13;

const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// The order in which a dynamic block lists the code-length code's lengths.
const CL_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

fn litlen_payload(sym: usize) -> u32 {
    match sym {
        0..=255 => F_LIT | (sym as u32) << 16,
        256 => F_EOB,
        257..=285 => {
            let i = sym - 257;
            F_LEN | (LEN_EXTRA[i] as u32) << 4 | (LEN_BASE[i] as u32) << 16
        }
        _ => 0, // 286, 287: have fixed codes but must not occur
    }
}

fn dist_payload(sym: usize) -> u32 {
    match sym {
        0..=29 => F_DIST | (DIST_EXTRA[sym] as u32) << 4 | (DIST_BASE[sym] as u32) << 16,
        _ => 0, // 30, 31: have fixed codes but must not occur
    }
}

fn codelen_payload(sym: usize) -> u32 {
    F_SYM | (sym as u32) << 16
}

/// A Huffman decoding table with an `N`-entry first level (`N` a power of two).
struct Huffman<const N: usize> {
    primary: [u32; N],
    sub: Vec<u32>,
}

impl<const N: usize> Huffman<N> {
    const BITS: u32 = N.trailing_zeros();
    const SIZE: usize = N;

    fn new() -> Self {
        Huffman {
            primary: [0; N],
            sub: Vec::new(),
        }
    }

    /// Builds the canonical code of RFC 1951 section 3.2.2 for the code lengths `lens`
    /// (symbol i has length `lens[i]`, 0 = unused). With `strict`, the code must be
    /// complete; otherwise an incomplete code is accepted only if it is a single code of
    /// length 1 or empty (zlib's rule).
    fn build(
        &mut self,
        lens: &[u8],
        payload: fn(usize) -> u32,
        strict: bool,
    ) -> std::result::Result<(), CodeFault> {
        let mut count = [0u16; 16];
        for &l in lens {
            count[l as usize & 15] += 1;
        }
        count[0] = 0;
        let mut left: i32 = 1;
        for &c in &count[1..] {
            left = (left << 1) - c as i32;
            if left < 0 {
                return Err(CodeFault::OverSubscribed);
            }
        }
        let max_len = (1..16).rev().find(|&l| count[l] != 0).unwrap_or(0);
        if left > 0 && max_len != 0 && (strict || max_len != 1) {
            return Err(CodeFault::Incomplete);
        }
        if strict && max_len == 0 {
            return Err(CodeFault::Empty);
        }

        let mut next = [0u32; 16];
        let mut code = 0u32;
        for len in 1..16 {
            code = (code + count[len - 1] as u32) << 1;
            next[len] = code;
        }

        self.primary.fill(0);
        self.sub.clear();
        let bits = Self::BITS;
        // Longest code length behind each first-level prefix that needs a subtable.
        let mut sub_max = [0u8; N];
        let mut long: Vec<(usize, u32, u32)> = Vec::new();
        for (sym, &l) in lens.iter().enumerate() {
            let len = l as u32;
            if len == 0 {
                continue;
            }
            let c = next[len as usize];
            next[len as usize] += 1;
            let rev = c.reverse_bits() >> (32 - len);
            if len <= bits {
                let entry = payload(sym) | len;
                let mut i = rev as usize;
                while i < N {
                    self.primary[i] = entry;
                    i += 1 << len;
                }
            } else {
                let prefix = (rev as usize) & (N - 1);
                sub_max[prefix] = sub_max[prefix].max(l);
                long.push((sym, rev, len));
            }
        }
        if long.is_empty() {
            return Ok(());
        }
        for (prefix, &m) in sub_max.iter().enumerate() {
            if m != 0 {
                let sub_bits = m as u32 - bits;
                let offset = self.sub.len() as u32;
                self.sub.resize(self.sub.len() + (1 << sub_bits), 0);
                self.primary[prefix] = offset << 16 | F_SUB | sub_bits << 4 | bits;
            }
        }
        for (sym, rev, len) in long {
            let e = self.primary[(rev as usize) & (N - 1)];
            let offset = (e >> 16) as usize;
            let sub_bits = (e >> 4) & 0xF;
            let sub_len = len - bits;
            let entry = payload(sym) | sub_len;
            let mut i = (rev >> bits) as usize;
            while i < 1 << sub_bits {
                self.sub[offset + i] = entry;
                i += 1 << sub_len;
            }
        }
        Ok(())
    }

    /// Decodes one symbol from at least 15 buffered bits and consumes its code.
    #[inline(always)]
    fn decode(&self, br: &mut Bits) -> u32 {
        let mut e = self.primary[(br.buf as usize) & (N - 1)];
        if e & F_SUB != 0 {
            br.consume(Self::BITS);
            let sub_bits = (e >> 4) & 0xF;
            let i = (e >> 16) as usize + (br.peek(sub_bits) as usize);
            e = self.sub.get(i).copied().unwrap_or(0);
        }
        br.consume(e & 0xF);
        e
    }
}

type LitTable = Huffman<1024>;
type DistTable = Huffman<256>;

fn fixed_tables() -> &'static (LitTable, DistTable) {
    static FIXED: OnceLock<(LitTable, DistTable)> = OnceLock::new();
    FIXED.get_or_init(|| {
        let mut lens = [0u8; 288];
        lens[..144].fill(8);
        lens[144..256].fill(9);
        lens[256..280].fill(7);
        lens[280..].fill(8);
        let mut lit = LitTable::new();
        let mut dist = DistTable::new();
        // Both fixed codes are complete, so building them cannot fail.
        let ok = lit.build(&lens, litlen_payload, true).is_ok()
            && dist.build(&[5u8; 32], dist_payload, true).is_ok();
        debug_assert!(ok, "the fixed Huffman codes are complete");
        (lit, dist)
    })
}

/// Inflates one deflate stream from the start of `data`, appending to `out`. Returns the
/// number of bytes of `data` it used (the stream ends on a byte boundary).
fn inflate(data: &[u8], out: &mut Output) -> std::result::Result<usize, Fail> {
    let mut br = Bits::new(data);
    let window_start = out.len;
    let mut lit = LitTable::new();
    let mut dist = DistTable::new();
    let result = (|| -> std::result::Result<(), Problem> {
        loop {
            br.need(3)?;
            let last = br.take(1) == 1;
            match br.take(2) {
                0 => stored_block(&mut br, out)?,
                1 => {
                    let (fl, fd) = fixed_tables();
                    huffman_block(&mut br, out, fl, fd, window_start)?
                }
                2 => {
                    read_dynamic_tables(&mut br, &mut lit, &mut dist)?;
                    huffman_block(&mut br, out, &lit, &dist, window_start)?
                }
                _ => return Err(Problem::ReservedBlockType),
            }
            if last {
                return br.align_and_rewind();
            }
        }
    })();
    match result {
        Ok(()) => Ok(br.pos),
        Err(problem) => {
            // In a complete file the 8-byte trailer follows the deflate data, so the
            // reader (at most 63 bits ahead) never pads while decoding it. If it has
            // padded, the file ends early, and whatever the padding decoded to, the
            // cause is the missing data.
            let problem = match problem {
                Problem::OutputLimit(_) => problem,
                _ if br.overrun > 0 => Problem::Truncated,
                _ => problem,
            };
            Err(Fail {
                problem,
                offset: br.offset(),
            })
        }
    }
}

fn stored_block(br: &mut Bits, out: &mut Output) -> std::result::Result<(), Problem> {
    br.align_and_rewind()?;
    let p = br.pos;
    let Some(h) = br.data.get(p..p + 4) else {
        return Err(Problem::Truncated);
    };
    let len = u16::from_le_bytes([h[0], h[1]]);
    let nlen = u16::from_le_bytes([h[2], h[3]]);
    if len != !nlen {
        return Err(Problem::StoredLength { len, nlen });
    }
    let n = len as usize;
    let Some(src) = br.data.get(p + 4..p + 4 + n) else {
        return Err(Problem::Truncated);
    };
    let op = out.len;
    if op + n > out.buf.len() {
        grow(&mut out.buf, op + n, out.limit)?;
    }
    out.buf[op..op + n].copy_from_slice(src);
    out.len = op + n;
    br.pos = p + 4 + n;
    Ok(())
}

fn read_dynamic_tables(
    br: &mut Bits,
    lit: &mut LitTable,
    dist: &mut DistTable,
) -> std::result::Result<(), Problem> {
    br.need(14)?;
    let hlit = br.take(5) as usize + 257;
    let hdist = br.take(5) as usize + 1;
    let hclen = br.take(4) as usize + 4;
    if hlit > 286 || hdist > 30 {
        return Err(Problem::TooManySymbols { hlit, hdist });
    }
    let mut cl_lens = [0u8; 19];
    for &sym in &CL_ORDER[..hclen] {
        br.need(3)?;
        cl_lens[sym] = br.take(3) as u8;
    }
    let mut cl = Huffman::<128>::new();
    cl.build(&cl_lens, codelen_payload, true)
        .map_err(|f| f.in_code("code-length code"))?;

    let total = hlit + hdist;
    let mut lens = [0u8; 286 + 30];
    let mut i = 0;
    while i < total {
        br.refill()?; // at most 7 code bits + 7 extra bits
        let e = cl.decode(br);
        if e & F_SYM == 0 {
            return Err(Problem::CodeLengths("invalid code-length code"));
        }
        let (value, repeat) = match e >> 16 {
            sym @ 0..=15 => (sym as u8, 1),
            16 => {
                if i == 0 {
                    return Err(Problem::CodeLengths(
                        "repeat code 16 with no previous length",
                    ));
                }
                (lens[i - 1], 3 + br.take(2) as usize)
            }
            17 => (0, 3 + br.take(3) as usize),
            _ => (0, 11 + br.take(7) as usize),
        };
        if i + repeat > total {
            return Err(Problem::CodeLengths(
                "code-length repeat runs past the number of codes",
            ));
        }
        lens[i..i + repeat].fill(value);
        i += repeat;
    }
    if lens[256] == 0 {
        return Err(Problem::CodeLengths(
            "no code for end-of-block (symbol 256)",
        ));
    }
    lit.build(&lens[..hlit], litlen_payload, false)
        .map_err(|f| f.in_code("literal/length code"))?;
    dist.build(&lens[hlit..total], dist_payload, false)
        .map_err(|f| f.in_code("distance code"))?;
    Ok(())
}

/// Decodes one Huffman-coded block up to and including its end-of-block code.
fn huffman_block(
    br: &mut Bits,
    out: &mut Output,
    lit: &LitTable,
    dist: &DistTable,
    window_start: usize,
) -> std::result::Result<(), Problem> {
    let mut op = out.len;
    let mut local = *br;
    let result = huffman_symbols(
        &mut local,
        &mut out.buf,
        &mut op,
        out.limit,
        lit,
        dist,
        window_start,
    );
    *br = local;
    out.len = op;
    result
}

#[inline(always)]
fn huffman_symbols(
    br: &mut Bits,
    buf: &mut Vec<u8>,
    op: &mut usize,
    limit: usize,
    lit: &LitTable,
    dist: &DistTable,
    window_start: usize,
) -> std::result::Result<(), Problem> {
    let mut o = *op;
    let r = loop {
        // 56 bits cover a literal/length code, its extra bits, a distance code and its
        // extra bits: 15 + 5 + 15 + 13.
        if let Err(p) = br.refill() {
            break Err(p);
        }
        let e = lit.decode(br);
        if e & F_LIT != 0 {
            if o >= buf.len() {
                if let Err(p) = grow(buf, o + 1, limit) {
                    break Err(p);
                }
            }
            buf[o] = (e >> 16) as u8;
            o += 1;
            // Runs of literals: more first-level literal codes (at most 10 bits each)
            // fit in the bits still buffered, so decode them without a refill.
            while br.cnt >= LitTable::BITS {
                let e = lit.primary[(br.buf as usize) & (LitTable::SIZE - 1)];
                if e & F_LIT == 0 || o >= buf.len() {
                    break;
                }
                br.consume(e & 0xF);
                buf[o] = (e >> 16) as u8;
                o += 1;
            }
            continue;
        }
        if e & F_LEN != 0 {
            let length = (e >> 16) as usize + br.take((e >> 4) & 0xF) as usize;
            let d = dist.decode(br);
            if d & F_DIST == 0 {
                break Err(Problem::InvalidDistanceCode);
            }
            let distance = (d >> 16) as usize + br.take((d >> 4) & 0xF) as usize;
            if distance > o - window_start {
                break Err(Problem::DistanceTooFar {
                    distance,
                    available: o - window_start,
                });
            }
            if o + length > buf.len() {
                if let Err(p) = grow(buf, o + length, limit) {
                    break Err(p);
                }
            }
            copy_match(buf, o, distance, length);
            o += length;
            continue;
        }
        if e & F_EOB != 0 {
            break Ok(());
        }
        break Err(Problem::InvalidLitLenCode);
    };
    *op = o;
    r
}

/// `buf[op..op + length] = buf[op - distance..]`, byte by byte in effect (the source
/// may overlap the destination); the caller has checked both ranges.
#[inline(always)]
fn copy_match(buf: &mut [u8], op: usize, distance: usize, length: usize) {
    let src = op - distance;
    if distance >= length {
        if length <= 16 && op + 16 <= buf.len() && distance >= 16 {
            // Short non-overlapping copy: one fixed-size move (may copy a few bytes of
            // room past the match; they are overwritten later).
            let mut tmp = [0u8; 16];
            tmp.copy_from_slice(&buf[src..src + 16]);
            buf[op..op + 16].copy_from_slice(&tmp);
        } else {
            buf.copy_within(src..src + length, op);
        }
    } else if distance == 1 {
        let b = buf[src];
        buf[op..op + length].fill(b);
    } else {
        // The pattern repeats with period `distance`; with `done` a multiple of it, the
        // next `distance + done` bytes can be copied from `src` in one go.
        let mut done = 0;
        while done < length {
            let n = (distance + done).min(length - done);
            buf.copy_within(src..src + n, op + done);
            done += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_vectors() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 3) as u8).collect();
        for split in [0, 1, 7, 8, 9, 500, 1000] {
            assert_eq!(
                crc32_update(crc32(&data[..split]), &data[split..]),
                crc32(&data)
            );
        }
    }

    #[test]
    fn bit_reader_reads_lsb_first_and_detects_overrun() {
        let data = [0b1010_1100u8, 0xFF, 0x01];
        let mut br = Bits::new(&data);
        br.need(3).unwrap();
        assert_eq!(br.take(3), 0b100);
        assert_eq!(br.take(5), 0b10101);
        assert_eq!(br.take(8), 0xFF);
        assert_eq!(br.take(1), 1);
        // 7 bits left in the data, then padding.
        br.align_and_rewind().unwrap();
        assert_eq!(br.pos, 3);
        let mut br = Bits::new(&data);
        br.refill().unwrap();
        br.consume(25); // one bit past the end
        assert_eq!(br.align_and_rewind(), Err(Problem::Truncated));
        // Consuming padding without end: the refill gives up after 8 padding bytes.
        let mut br = Bits::new(&data);
        let mut r = Ok(());
        for _ in 0..4 {
            r = br.refill();
            if r.is_err() {
                break;
            }
            br.consume(48);
        }
        assert_eq!(r, Err(Problem::Truncated));
    }

    #[test]
    fn fast_refill_then_rewind_gives_exact_offset() {
        let data: Vec<u8> = (0..40).collect();
        for skip_bits in [0u32, 1, 7, 8, 9, 15, 16, 17, 55] {
            let mut br = Bits::new(&data);
            br.refill().unwrap();
            br.consume(skip_bits);
            br.refill().unwrap();
            br.align_and_rewind().unwrap();
            assert_eq!(br.pos, skip_bits.div_ceil(8) as usize, "skip {skip_bits}");
        }
    }

    #[test]
    fn huffman_tables_reject_bad_lengths() {
        let mut t = LitTable::new();
        // Over-subscribed: three codes of length 1.
        assert!(t.build(&[1, 1, 1], litlen_payload, false).is_err());
        // Incomplete with a code longer than 1.
        assert!(t.build(&[2, 2, 2], litlen_payload, false).is_err());
        // A single code of length 1 is fine when not strict.
        assert!(t.build(&[1], litlen_payload, false).is_ok());
        assert!(t.build(&[1], litlen_payload, true).is_err());
        // Empty is fine for a distance code.
        let mut d = DistTable::new();
        assert!(d.build(&[0; 30], dist_payload, false).is_ok());
        assert!(d.primary.iter().all(|&e| e == 0));
    }

    #[test]
    fn fixed_table_decodes_nine_bit_codes() {
        // Symbol 255 has the fixed 9-bit code 111111111; code 0000000 is end-of-block.
        let (lit, _) = fixed_tables();
        let data = [0xFFu8, 0x01, 0, 0, 0, 0, 0, 0, 0];
        let mut br = Bits::new(&data);
        br.refill().unwrap();
        let e = lit.decode(&mut br);
        assert_eq!(e & F_LIT, F_LIT);
        assert_eq!(e >> 16, 255);
        assert_eq!(br.cnt, 56 - 9);
        let e = lit.decode(&mut br);
        assert_eq!(e & F_EOB, F_EOB);
    }

    #[test]
    fn long_codes_use_subtables() {
        // Lengths 1, 2, ..., 14, 15, 15: a complete code with codes longer than 10 bits.
        let mut lens: Vec<u8> = (1..=15).collect();
        lens.push(15);
        lens.resize(257, 0);
        lens.swap(15, 256); // make symbol 256 (EOB) one of the 15-bit codes
        let mut t = LitTable::new();
        t.build(&lens, litlen_payload, true).unwrap();
        assert!(!t.sub.is_empty());
        // Canonical code of the symbol with length 15 that comes last: all ones.
        let data = [0xFFu8, 0x7F, 0, 0, 0, 0, 0, 0];
        let mut br = Bits::new(&data);
        br.refill().unwrap();
        let e = t.decode(&mut br);
        assert_eq!(e & F_EOB, F_EOB);
        assert_eq!(br.cnt, 56 - 15);
    }

    #[test]
    fn copy_match_handles_overlap() {
        for distance in 1..12 {
            for length in 3..40 {
                let mut buf = vec![0u8; 64 + 64];
                for (i, b) in buf[..64].iter_mut().enumerate() {
                    *b = i as u8 + 1;
                }
                let mut expect = buf.clone();
                for k in 0..length {
                    expect[64 + k] = expect[64 + k - distance];
                }
                copy_match(&mut buf, 64, distance, length);
                assert_eq!(
                    &buf[..64 + length],
                    &expect[..64 + length],
                    "d {distance} l {length}"
                );
            }
        }
    }
}
