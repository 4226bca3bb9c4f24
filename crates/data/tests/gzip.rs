//! The gzip/DEFLATE decoder: round trips through an independent test encoder (stored,
//! fixed, dynamic, multi-block), fixed vectors from zlib, the system `gzip` at every
//! level, every real `.gz` dataset file, header flags, and every class of corruption
//! (each must be an `Error::Format` naming the file and the problem, never a panic).

mod common;

use common::{
    deflate, gzip_test_encode, gzip_wrap, have_gzip, sample_inputs, system_gzip, BitWriter, Block,
    Header, TestRng,
};
use proptest::prelude::*;
use rcc_data::gzip::{crc32, decompress, decompress_with_limit};
use rcc_data::Error;
use std::path::Path;
use std::time::Instant;

const P: &str = "/data/test-input.gz";

fn path() -> &'static Path {
    Path::new(P)
}

fn gz(deflated: &[u8], original: &[u8]) -> Vec<u8> {
    gzip_wrap(deflated, original, &Header::default())
}

/// Decompresses, expecting a `Format` error; returns `(field, full message)` after
/// checking that the message names the file.
fn format_error(bytes: &[u8]) -> (String, String) {
    match decompress(bytes, path()) {
        Ok(v) => panic!("expected an error, decoded {} bytes", v.len()),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(P), "message does not name the file: {msg}");
            match e {
                Error::Format { field, path: p, .. } => {
                    assert_eq!(p, path());
                    (field, msg)
                }
                other => panic!("expected Error::Format, got {other:?}"),
            }
        }
    }
}

fn assert_format_error(bytes: &[u8], field: &str, phrases: &[&str]) {
    let (f, msg) = format_error(bytes);
    assert_eq!(f, field, "field of: {msg}");
    for p in phrases {
        assert!(msg.contains(p), "`{p}` missing from: {msg}");
    }
}

// ---------------------------------------------------------------------------------------
// Round trips through the test encoder
// ---------------------------------------------------------------------------------------

fn round_trip(plan: &[(usize, Block)]) {
    for (name, data) in sample_inputs() {
        let stream = gz(&deflate(&data, plan), &data);
        let out = decompress(&stream, path()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(out == data, "{name}: decoded data differs");
    }
}

#[test]
fn stored_blocks() {
    round_trip(&[(usize::MAX, Block::Stored)]);
    // Exactly one full stored block, and an empty one.
    let data = TestRng(7).bytes(65_535);
    let stream = gz(&deflate(&data, &[(0, Block::Stored)]), &data);
    assert_eq!(decompress(&stream, path()).unwrap(), data);
    let stream = gz(&deflate(&[], &[(0, Block::Stored)]), &[]);
    assert_eq!(decompress(&stream, path()).unwrap(), Vec::<u8>::new());
}

#[test]
fn fixed_huffman_blocks() {
    round_trip(&[(usize::MAX, Block::Fixed)]);
}

#[test]
fn dynamic_huffman_blocks() {
    round_trip(&[(usize::MAX, Block::Dynamic)]);
}

#[test]
fn multi_block_streams_with_matches_across_blocks() {
    round_trip(&[
        (1000, Block::Dynamic),
        (5000, Block::Stored),
        (3000, Block::Fixed),
        (1, Block::Stored),
        (0, Block::Fixed),
        (20_000, Block::Dynamic),
        (7000, Block::Fixed),
        (usize::MAX, Block::Dynamic),
    ]);
    // Periodic data across many small blocks: later blocks are mostly matches into
    // earlier ones.
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let plan: Vec<(usize, Block)> = (0..50)
        .map(|i| (997, [Block::Fixed, Block::Dynamic, Block::Stored][i % 3]))
        .collect();
    let stream = gz(&deflate(&data, &plan), &data);
    assert_eq!(decompress(&stream, path()).unwrap(), data);
}

// ---------------------------------------------------------------------------------------
// Fixed vectors made by zlib (raw deflate, wrapped here)
// ---------------------------------------------------------------------------------------

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn zlib_fixed_huffman_vector() {
    // zlib level 9, Z_FIXED strategy: one fixed-Huffman block with matches.
    let data = b"Hello, hello, hello, HELLO! ".repeat(3);
    let deflated = unhex("f348cdc9c9d751c840a13c5c7d7cfc15153cc8940300");
    assert_eq!(deflated[0] & 7, 0b011, "BFINAL=1, BTYPE=01");
    assert_eq!(decompress(&gz(&deflated, &data), path()).unwrap(), data);
}

#[test]
fn zlib_dynamic_huffman_vector() {
    // zlib level 9: one dynamic block; the data repeats with period 133.
    let data: Vec<u8> = (0..300u64)
        .map(|i| ((i * i * 7 + i / 5) % 23 + 65) as u8)
        .collect();
    let deflated = unhex(
        "d5cd0101c4200800c06c0cf04145072af66fb21c7f050ea4c479e19a5ba6c57c30206be7de2e6ee648478abb8adc82c3ab4f92a76a528a2443ebd4649d915b7b998304cd48f9759d1d70210c6f2bd4c45d47dd676ce71ffc6bf901",
    );
    assert_eq!(deflated[0] & 7, 0b101, "BFINAL=1, BTYPE=10");
    assert_eq!(crc32(&data), 893_478_920);
    assert_eq!(decompress(&gz(&deflated, &data), path()).unwrap(), data);
}

// ---------------------------------------------------------------------------------------
// Headers and members
// ---------------------------------------------------------------------------------------

#[test]
fn optional_header_fields_in_every_combination() {
    let data = b"optional header fields".to_vec();
    let deflated = deflate(&data, &[(0, Block::Fixed)]);
    for mask in 0..16u32 {
        let h = Header {
            extra: (mask & 1 != 0).then(|| b"AB\x04\x00xyzw".to_vec()),
            name: (mask & 2 != 0).then(|| b"train-images.idx3-ubyte".to_vec()),
            comment: (mask & 4 != 0).then(|| b"a comment".to_vec()),
            hcrc: mask & 8 != 0,
        };
        let stream = gzip_wrap(&deflated, &data, &h);
        assert_eq!(
            decompress(&stream, path()).unwrap(),
            data,
            "flags {mask:#x}"
        );
    }
    // Empty extra field, name and comment.
    let h = Header {
        extra: Some(vec![]),
        name: Some(vec![]),
        comment: Some(vec![]),
        hcrc: true,
    };
    assert_eq!(
        decompress(&gzip_wrap(&deflated, &data, &h), path()).unwrap(),
        data
    );
}

#[test]
fn header_crc_mismatch() {
    let data = b"x".to_vec();
    let h = Header {
        name: Some(b"n".to_vec()),
        hcrc: true,
        ..Header::default()
    };
    let mut stream = gzip_wrap(&deflate(&data, &[(0, Block::Fixed)]), &data, &h);
    stream[12] ^= 0xff; // the FHCRC field follows the 10-byte header and "n\0"
    assert_format_error(&stream, "header CRC", &["FHCRC", "corrupt"]);
}

#[test]
fn concatenated_members_decode_as_one_stream() {
    let a = b"first member, ".to_vec();
    let b = TestRng(3).bytes(5000);
    let mut stream = gz(&deflate(&a, &[(0, Block::Dynamic)]), &a);
    stream.extend(gz(&deflate(&b, &[(0, Block::Stored)]), &b));
    stream.extend(gz(&deflate(&[], &[(0, Block::Fixed)]), &[]));
    let out = decompress(&stream, path()).unwrap();
    assert_eq!(out, [a, b].concat());
}

#[test]
fn matches_may_not_reach_into_the_previous_member() {
    let a = b"abcabcabc".to_vec();
    let mut stream = gz(&deflate(&a, &[(0, Block::Stored)]), &a);
    // Second member: fixed block whose first symbol is a match of length 3, distance 1.
    let mut w = BitWriter::default();
    w.bits(1, 1);
    w.bits(1, 2);
    w.code(1, 7); // symbol 257: length 3
    w.code(0, 5); // distance code 0: distance 1
    w.code(0, 7); // end of block
    stream.extend(gz(&w.finish(), b"aaa"));
    assert_format_error(&stream, "deflate data", &["1 bytes back", "0 bytes"]);
}

// ---------------------------------------------------------------------------------------
// Corruption: header, trailer, framing
// ---------------------------------------------------------------------------------------

fn valid_stream() -> (Vec<u8>, Vec<u8>) {
    let mut data = b"The quick brown fox jumps over the lazy dog. ".repeat(40);
    data.extend(TestRng(11).bytes(700));
    let stream = gz(&deflate(&data, &[(0, Block::Dynamic)]), &data);
    (stream, data)
}

#[test]
fn empty_input() {
    assert_format_error(&[], "gzip header", &["empty"]);
}

#[test]
fn bad_magic() {
    let (mut s, _) = valid_stream();
    s[0] = 0x50;
    s[1] = 0x4b;
    assert_format_error(&s, "magic number", &["1f 8b", "50 4b", "not a gzip file"]);
    // An uncompressed IDX file given a .gz name gets a pointed hint.
    let idx = common::idx_labels(&[1, 2, 3]);
    assert_format_error(&idx, "magic number", &["00 00", "not compressed"]);
}

#[test]
fn unsupported_method() {
    let (mut s, _) = valid_stream();
    s[2] = 7;
    assert_format_error(&s, "compression method", &["expected 8", "found 7"]);
}

#[test]
fn reserved_flags() {
    let (mut s, _) = valid_stream();
    s[3] |= 0x20;
    assert_format_error(&s, "flags", &["reserved"]);
}

#[test]
fn crc_mismatch() {
    let (mut s, _) = valid_stream();
    let n = s.len();
    s[n - 8] ^= 1;
    assert_format_error(&s, "CRC-32", &["corrupt"]);
    // Corrupt data inside a stored block decodes, and only the CRC can tell.
    let data = b"stored bytes are copied as they are".to_vec();
    let mut s = gz(&deflate(&data, &[(0, Block::Stored)]), &data);
    s[10 + 5 + 3] ^= 0x40;
    assert_format_error(&s, "CRC-32", &["corrupt"]);
}

#[test]
fn isize_mismatch() {
    let (mut s, data) = valid_stream();
    let n = s.len();
    s[n - 4] ^= 1;
    assert_format_error(&s, "ISIZE", &[&data.len().to_string(), "corrupt"]);
}

#[test]
fn lying_isize_does_not_drive_allocation() {
    // A 30-byte file whose ISIZE claims 4 GiB - 1: the capacity hint is clamped by the
    // input length, so this fails at once on the ISIZE check.
    let mut s = gz(&deflate(b"tiny", &[(0, Block::Fixed)]), b"tiny");
    let n = s.len();
    s[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_format_error(&s, "ISIZE", &["4294967295"]);
}

#[test]
fn trailing_garbage() {
    let (mut s, _) = valid_stream();
    s.extend_from_slice(b"junk");
    assert_format_error(&s, "trailing data", &["4 bytes", "6a 75 6e 6b"]);
}

#[test]
fn truncation_at_every_length() {
    let (s, _) = valid_stream();
    for cut in 0..s.len() {
        let (field, msg) = format_error(&s[..cut]);
        let expected = if cut == 0 { "empty" } else { "truncated" };
        assert!(
            msg.contains(expected),
            "cut at {cut} of {}: field {field}: {msg}",
            s.len()
        );
    }
}

#[test]
fn output_limit() {
    let data = vec![0u8; 1 << 20];
    let s = gzip_test_encode(&data);
    assert_eq!(decompress_with_limit(&s, path(), 1 << 20).unwrap(), data);
    let e = decompress_with_limit(&s, path(), (1 << 20) - 1).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(&e, Error::Format { field, .. } if field == "decompressed size"));
    assert!(
        msg.contains("limit of 1048575 bytes") && msg.contains(P),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------
// Corruption: the deflate data
// ---------------------------------------------------------------------------------------

/// A gzip member around hand-written deflate bits (CRC and ISIZE of `claimed`).
fn hand(f: impl FnOnce(&mut BitWriter), claimed: &[u8]) -> Vec<u8> {
    let mut w = BitWriter::default();
    f(&mut w);
    // Padding so that errors are found before the data runs out.
    w.bits(0, 32);
    w.bits(0, 32);
    gz(&w.finish(), claimed)
}

/// Starts a dynamic block header with the given counts.
fn dynamic_header(w: &mut BitWriter, hlit: u32, hdist: u32, hclen: u32) {
    w.bits(1, 1);
    w.bits(2, 2);
    w.bits(hlit - 257, 5);
    w.bits(hdist - 1, 5);
    w.bits(hclen - 4, 4);
}

#[test]
fn reserved_block_type() {
    let s = hand(
        |w| {
            w.bits(1, 1);
            w.bits(3, 2);
        },
        b"",
    );
    assert_format_error(&s, "deflate data", &["block type 3", "reserved"]);
}

#[test]
fn stored_length_mismatch() {
    let s = hand(
        |w| {
            w.bits(1, 1);
            w.bits(0, 2);
            w.align();
            w.out.extend_from_slice(&[5, 0, 0xfa, 0xfe]); // NLEN != !LEN
            w.out.extend_from_slice(b"hello");
        },
        b"hello",
    );
    assert_format_error(&s, "deflate data", &["LEN 0x0005", "NLEN 0xfefa"]);
}

#[test]
fn over_subscribed_code_length_code() {
    // All 19 code-length codes of length 1.
    let s = hand(
        |w| {
            dynamic_header(w, 257, 1, 19);
            for _ in 0..19 {
                w.bits(1, 3);
            }
        },
        b"",
    );
    assert_format_error(
        &s,
        "deflate data",
        &["over-subscribed code-length code", "corrupt Huffman data"],
    );
}

#[test]
fn incomplete_code_length_code() {
    // Only symbol 16 has a code (length 2): incomplete, which is never valid here.
    let s = hand(
        |w| {
            dynamic_header(w, 257, 1, 4);
            w.bits(2, 3);
            w.bits(0, 3);
            w.bits(0, 3);
            w.bits(0, 3);
        },
        b"",
    );
    assert_format_error(&s, "deflate data", &["incomplete code-length code"]);
}

/// A dynamic block whose code-length code gives symbols 1, 2 and 3 lengths 2, 2, 1
/// (hclen 18 covers symbols 16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14,
/// 1), followed by the code lengths from `lens` written with that code.
fn dynamic_with_lengths(hlit: u32, hdist: u32, lens: &[u8]) -> Vec<u8> {
    hand(
        |w| {
            dynamic_header(w, hlit, hdist, 18);
            for s in [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1] {
                let l = match s {
                    3 => 1,
                    1 | 2 => 2,
                    _ => 0,
                };
                w.bits(l, 3);
            }
            // Canonical: symbol 3 -> 0, symbol 1 -> 10, symbol 2 -> 11.
            for &l in lens {
                match l {
                    3 => w.code(0, 1),
                    1 => w.code(2, 2),
                    2 => w.code(3, 2),
                    _ => panic!("length {l} not codable here"),
                }
            }
        },
        b"",
    )
}

#[test]
fn over_subscribed_literal_length_code() {
    // 257 literal/length codes of length 1..3 and one distance code: far too many.
    let mut lens = vec![3u8; 257];
    lens.push(1);
    let s = dynamic_with_lengths(257, 1, &lens);
    assert_format_error(&s, "deflate data", &["over-subscribed literal/length code"]);
}

#[test]
fn incomplete_literal_length_code() {
    // Only symbols 0 and 256 have codes, of length 2: half the code space is unused.
    let mut w = BitWriter::default();
    dynamic_header(&mut w, 257, 1, 18);
    // Code-length code: symbols 0 and 2 and 18 get codes (0 -> 0, 2 -> 10, 18 -> 11).
    for s in [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1] {
        let l = match s {
            0 => 1,
            2 | 18 => 2,
            _ => 0,
        };
        w.bits(l, 3);
    }
    w.code(2, 2); // symbol 0: length 2
    w.code(3, 2); // 18: 138 zeros
    w.bits(127, 7);
    w.code(3, 2); // 18: 117 zeros (symbols 139..=255)
    w.bits(106, 7);
    w.code(2, 2); // symbol 256: length 2
    w.code(0, 1); // distance code 0: length 0
    w.bits(0, 32);
    w.bits(0, 32);
    let s = gz(&w.finish(), b"");
    assert_format_error(&s, "deflate data", &["incomplete literal/length code"]);
}

#[test]
fn missing_end_of_block_code() {
    // Symbols 0 and 1 of length 1 and nothing for 256.
    let mut w = BitWriter::default();
    dynamic_header(&mut w, 257, 1, 18);
    for s in [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1] {
        let l = match s {
            1 | 0 => 2,
            18 => 1,
            _ => 0,
        };
        w.bits(l, 3);
    }
    // Canonical: 18 -> 0, 0 -> 10, 1 -> 11.
    w.code(3, 2); // symbol 0: length 1
    w.code(3, 2); // symbol 1: length 1
    w.code(0, 1); // 18: 138 zeros
    w.bits(127, 7);
    w.code(0, 1); // 18: 117 zeros (symbols 140..=256)
    w.bits(106, 7);
    w.code(2, 2); // distance code: length 0
    w.bits(0, 32);
    w.bits(0, 32);
    let s = gz(&w.finish(), b"");
    assert_format_error(&s, "deflate data", &["end-of-block"]);
}

#[test]
fn too_many_symbols() {
    let s = hand(|w| dynamic_header(w, 287, 1, 4), b"");
    assert_format_error(&s, "deflate data", &["287 literal/length", "at most 286"]);
    let s = hand(|w| dynamic_header(w, 257, 31, 4), b"");
    assert_format_error(&s, "deflate data", &["31 distance"]);
}

#[test]
fn repeat_with_no_previous_length() {
    let mut w = BitWriter::default();
    dynamic_header(&mut w, 257, 1, 4);
    // Symbols 16, 17, 18, 0 get lengths 1, 2, 2, 0... make 16 -> 0, 17 -> 10, 18 -> 11.
    w.bits(1, 3);
    w.bits(2, 3);
    w.bits(2, 3);
    w.bits(0, 3);
    w.code(0, 1); // 16 first
    w.bits(0, 2);
    w.bits(0, 32);
    w.bits(0, 32);
    let s = gz(&w.finish(), b"");
    assert_format_error(
        &s,
        "deflate data",
        &["repeat code 16 with no previous length"],
    );
}

#[test]
fn repeat_past_the_end() {
    let mut w = BitWriter::default();
    dynamic_header(&mut w, 257, 1, 4);
    w.bits(1, 3);
    w.bits(2, 3);
    w.bits(2, 3);
    w.bits(0, 3);
    // 18 (138 zeros) twice = 276 of 258 lengths.
    w.code(3, 2);
    w.bits(127, 7);
    w.code(3, 2);
    w.bits(127, 7);
    w.bits(0, 32);
    w.bits(0, 32);
    let s = gz(&w.finish(), b"");
    assert_format_error(&s, "deflate data", &["runs past"]);
}

#[test]
fn distance_too_far_back() {
    // Fixed block: literal 'a', then a match of length 3 at distance 2.
    let s = hand(
        |w| {
            w.bits(1, 1);
            w.bits(1, 2);
            w.code(0x30 + b'a' as u32, 8);
            w.code(1, 7); // length 3
            w.code(1, 5); // distance 2
            w.code(0, 7);
        },
        b"aaaa",
    );
    assert_format_error(
        &s,
        "deflate data",
        &["2 bytes back", "only 1 bytes have been decoded"],
    );
}

#[test]
fn invalid_fixed_codes() {
    // Literal/length symbol 286 has a fixed code (11000110) but no meaning.
    let s = hand(
        |w| {
            w.bits(1, 1);
            w.bits(1, 2);
            w.code(0xC6, 8);
        },
        b"",
    );
    assert_format_error(&s, "deflate data", &["invalid literal/length code"]);
    // Distance symbol 30 likewise.
    let s = hand(
        |w| {
            w.bits(1, 1);
            w.bits(1, 2);
            w.code(0x30, 8); // literal 0
            w.code(1, 7); // length 3
            w.code(30, 5);
        },
        b"",
    );
    assert_format_error(&s, "deflate data", &["invalid distance code"]);
}

#[test]
fn flipped_bits_never_pass_unnoticed() {
    let (s, data) = valid_stream();
    let header = 10;
    let mut rng = TestRng(99);
    for _ in 0..300 {
        let mut c = s.clone();
        let i = header + (rng.next() as usize) % (c.len() - header);
        c[i] ^= 1 << (rng.next() % 8);
        // Whatever the decoder makes of it, it must not return different data as valid.
        if let Ok(out) = decompress(&c, path()) {
            assert_eq!(out, data, "corruption at byte {i} went unnoticed");
        }
    }
}

// ---------------------------------------------------------------------------------------
// The system gzip
// ---------------------------------------------------------------------------------------

#[test]
fn system_gzip_every_level() {
    if !have_gzip("system_gzip_every_level") {
        return;
    }
    for (name, data) in sample_inputs() {
        for level in 1..=9 {
            let flag = format!("-{level}");
            let s = system_gzip(&["-c", "-n", &flag], &data).expect("gzip runs");
            let out = decompress(&s, path()).unwrap_or_else(|e| panic!("{name} {flag}: {e}"));
            assert!(out == data, "{name} {flag}: decoded data differs");
        }
    }
}

#[test]
fn system_gzip_accepts_the_test_encoder_output() {
    // Cross-checks the test encoder itself, so that the round trips above cannot pass
    // through a mistake shared by encoder and decoder.
    if !have_gzip("system_gzip_accepts_the_test_encoder_output") {
        return;
    }
    let plans: [&[(usize, Block)]; 4] = [
        &[(0, Block::Stored)],
        &[(0, Block::Fixed)],
        &[(0, Block::Dynamic)],
        &[
            (3000, Block::Dynamic),
            (2000, Block::Stored),
            (4000, Block::Fixed),
            (0, Block::Dynamic),
        ],
    ];
    for (name, data) in sample_inputs() {
        for plan in plans {
            let s = gz(&deflate(&data, plan), &data);
            let out = system_gzip(&["-dc"], &s).unwrap_or_else(|| panic!("gzip rejects {name}"));
            assert!(
                out == data,
                "{name}: gzip decodes the test stream differently"
            );
        }
    }
}

#[test]
fn system_gzip_corrupted_streams_fail_cleanly() {
    if !have_gzip("system_gzip_corrupted_streams_fail_cleanly") {
        return;
    }
    let data: Vec<u8> = sample_inputs().into_iter().flat_map(|(_, d)| d).collect();
    let s = system_gzip(&["-c", "-6"], &data).expect("gzip runs");
    let mut rng = TestRng(5);
    for _ in 0..100 {
        let mut c = s.clone();
        let i = 10 + (rng.next() as usize) % (c.len() - 10);
        c[i] = c[i].wrapping_add(1 + (rng.next() % 255) as u8);
        match decompress(&c, path()) {
            Ok(out) => assert_eq!(out, data, "corruption at byte {i} went unnoticed"),
            Err(e) => assert!(e.to_string().contains(P)),
        }
        let cut = (rng.next() as usize) % c.len();
        assert!(decompress(&s[..cut], path()).is_err());
    }
}

#[test]
fn real_dataset_files_match_system_gzip() {
    let mut files = Vec::new();
    for root in common::data_roots() {
        for dir in ["mnist", "fashion-mnist"] {
            if let Ok(rd) = std::fs::read_dir(root.join(dir)) {
                for e in rd.flatten() {
                    let p = e.path();
                    if p.extension().is_some_and(|x| x == "gz") {
                        files.push(p);
                    }
                }
            }
        }
        if !files.is_empty() {
            break; // the first root that has files
        }
    }
    if files.is_empty() {
        eprintln!(
            "SKIPPED real_dataset_files_match_system_gzip: no .gz under {:?}",
            common::data_roots()
        );
        return;
    }
    files.sort();
    let gzip = have_gzip("real_dataset_files_match_system_gzip (comparison part)");
    for p in files {
        let bytes = std::fs::read(&p).unwrap();
        let t = Instant::now();
        let out = decompress(&bytes, &p).unwrap_or_else(|e| panic!("{e}"));
        let secs = t.elapsed().as_secs_f64();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let (magic, per) = if name.contains("images") {
            (2051u32, 784usize)
        } else {
            (2049, 1)
        };
        let n = if name.starts_with("train") {
            60_000
        } else {
            10_000
        };
        let header = if per == 1 { 8 } else { 16 };
        assert_eq!(out.len(), header + n * per, "{name}");
        assert_eq!(u32::from_be_bytes(out[..4].try_into().unwrap()), magic);
        assert_eq!(u32::from_be_bytes(out[4..8].try_into().unwrap()), n as u32);
        println!(
            "{}: {} -> {} bytes in {:.1} ms ({:.0} MB/s of output)",
            p.display(),
            bytes.len(),
            out.len(),
            secs * 1e3,
            out.len() as f64 / secs / 1e6
        );
        if gzip {
            let reference = system_gzip(&["-dc"], &bytes).expect("gzip -dc");
            assert!(out == reference, "{name}: differs from gzip -dc");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

fn block_kind() -> impl Strategy<Value = Block> {
    prop_oneof![
        Just(Block::Stored),
        Just(Block::Fixed),
        Just(Block::Dynamic)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = decompress(&bytes, path());
    }

    #[test]
    fn random_deflate_data_never_panics(
        body in proptest::collection::vec(any::<u8>(), 0..3000),
        flags in 0u8..32,
    ) {
        // A valid header (so the decoder reaches the deflate data), random data, and a
        // trailer; fill in optional fields if the flags call for them.
        let mut s = vec![0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 0, 255];
        s.extend_from_slice(&body);
        s.extend_from_slice(&[0; 8]);
        let _ = decompress(&s, path());
        let _ = decompress_with_limit(&s, path(), 100);
    }

    #[test]
    fn mutated_streams_never_panic(
        seed in any::<u64>(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut rng = TestRng(seed | 1);
        let data: Vec<u8> = (0..2000).map(|_| b"abcdefgh"[(rng.next() % 8) as usize]).collect();
        let plan = [(700, Block::Dynamic), (500, Block::Fixed), (0, Block::Stored)];
        let mut s = gz(&deflate(&data, &plan), &data);
        for (i, v) in edits {
            let i = i % s.len();
            s[i] = v;
        }
        let s = &s[..cut % (s.len() + 1)];
        if let Ok(out) = decompress(s, path()) {
            prop_assert_eq!(out.len(), data.len());
        }
    }

    #[test]
    fn encoder_round_trip(
        alphabet in 1usize..256,
        len in 0usize..20_000,
        seed in any::<u64>(),
        plan in proptest::collection::vec((0usize..8000, block_kind()), 1..6),
    ) {
        let mut rng = TestRng(seed | 1);
        let data: Vec<u8> = (0..len).map(|_| (rng.next() % alphabet as u64) as u8).collect();
        let s = gz(&deflate(&data, &plan), &data);
        prop_assert_eq!(decompress(&s, path()).unwrap(), data);
    }
}
