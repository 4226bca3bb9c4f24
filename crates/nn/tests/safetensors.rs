//! The safetensors reader and writer: round trips, every dtype, PyTorch's files, and
//! every kind of damaged or hostile file refused with a clear error.

use rcc_nn::json::{parse_json, Json};
use rcc_nn::safetensors::*;
use rcc_nn::{Error, Result};
use std::fmt;
use std::fs;
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory under the system temp dir, unique per process and call.
fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("rcc-safetensors-{}-{tag}-{n}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `data_offsets` array `[begin, end]` as numbers.
fn offsets(v: &Json) -> Vec<usize> {
    let Json::Array(items) = v else {
        panic!("data_offsets is not an array: {v:?}")
    };
    items.iter().map(|x| x.as_f64().unwrap() as usize).collect()
}

/// Bit patterns, so that NaN payloads and -0.0 compare exactly.
fn bits(d: &TensorData) -> (Dtype, Vec<u64>) {
    let v = match d {
        TensorData::F32(v) => v.iter().map(|x| u64::from(x.to_bits())).collect(),
        TensorData::F64(v) => v.iter().map(|x| x.to_bits()).collect(),
        TensorData::I64(v) => v.iter().map(|&x| x as u64).collect(),
        TensorData::I32(v) => v.iter().map(|&x| x as u32 as u64).collect(),
        TensorData::U16(v) => v.iter().map(|&x| u64::from(x)).collect(),
    };
    (d.dtype(), v)
}

fn assert_bit_identical(a: &SafeTensors, b: &SafeTensors) {
    assert_eq!(a.metadata, b.metadata);
    assert_eq!(a.entries.len(), b.entries.len());
    for e in &a.entries {
        let f = b
            .get(&e.name)
            .unwrap_or_else(|| panic!("{} missing", e.name));
        assert_eq!(e.shape, f.shape, "{}", e.name);
        assert_eq!(bits(&e.data), bits(&f.data), "{}", e.name);
    }
}

fn sample() -> SafeTensors {
    let mut st = SafeTensors::new();
    let f32s = vec![
        1.5,
        -0.0,
        0.0,
        f32::from_bits(0x7fc0_1234), // quiet NaN with payload
        f32::from_bits(0xff80_0001), // signalling NaN, sign bit set
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::from_bits(1), // smallest subnormal
    ];
    st.push_f32("w.weight", &[2, 4], f32s).unwrap();
    st.push_f32("b", &[3], vec![1.0, 2.0, 3.0]).unwrap();
    st.push_f32("loss", &[], vec![0.25]).unwrap();
    st.push_f32("empty", &[0, 3], vec![]).unwrap();
    st.push_f64(
        "f64.x",
        &[2, 2],
        vec![
            -0.0,
            f64::from_bits(0x7ff8_dead_beef_0001),
            f64::MIN_POSITIVE,
            1e300,
        ],
    )
    .unwrap();
    st.push_f64("f64.loss", &[], vec![std::f64::consts::PI])
        .unwrap();
    st.push_i64("labels", &[5], vec![i64::MIN, -1, 0, 7, i64::MAX])
        .unwrap();
    st.push_i64("argmax", &[1, 1], vec![42]).unwrap();
    let meta = [
        ("format", "rcc-test"),
        ("quote\"key", "a \"quoted\" \\ value"),
        ("unicode", "héllo wörld ∑ 😀"),
        ("controls", "tab\tnl\ncr\r\u{1}\u{1f}\u{7f}\u{8}\u{c}/"),
        ("empty", ""),
    ];
    for (k, v) in meta {
        st.metadata.insert(k.to_string(), v.to_string());
    }
    st
}

/// Header length and header text of a file.
fn split_header(bytes: &[u8]) -> (usize, &str) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (n, std::str::from_utf8(&bytes[8..8 + n]).unwrap())
}

/// A file with the given header text (unpadded) and `data_len` zero bytes of data.
fn file_with(header: &str, data_len: usize) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.resize(out.len() + data_len, 0);
    out
}

fn bad_path() -> &'static Path {
    Path::new("bad.safetensors")
}

/// Asserts a file error on `field` whose problem mentions every needle.
fn assert_file_err<T: fmt::Debug>(r: Result<T>, field: &str, needles: &[&str]) {
    match r {
        Err(Error::File {
            path,
            field: f,
            problem,
        }) => {
            let shown = format!("{}: {f}: {problem}", path.display());
            assert_eq!(f, field, "wrong field in: {shown}");
            for n in needles {
                assert!(problem.contains(n), "{n:?} not in: {shown}");
            }
        }
        other => panic!("expected Error::File on {field}, got {other:?}"),
    }
}

fn parse_err(header: &str, data_len: usize, field: &str, needles: &[&str]) {
    assert_file_err(
        SafeTensors::parse(&file_with(header, data_len), bad_path()),
        field,
        needles,
    );
}

fn reference(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/reference"
    ))
    .join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipping: reference file {} is absent", path.display());
        None
    }
}

// --- Round trip and layout ----------------------------------------------------------

#[test]
fn round_trip_is_bit_identical() {
    let st = sample();
    let dir = temp_dir("roundtrip");
    let path = dir.join("model.safetensors");
    st.write(&path).unwrap();
    assert!(
        !dir.join("model.safetensors.tmp").exists(),
        "temp file left behind"
    );
    let back = SafeTensors::read(&path).unwrap();
    assert_bit_identical(&st, &back);
    // The file is exactly to_bytes, and re-serialising is a fixed point.
    let on_disk = fs::read(&path).unwrap();
    assert_eq!(on_disk, st.to_bytes().unwrap());
    assert_eq!(back.to_bytes().unwrap(), on_disk);
    // Scalars keep shape [], empty tensors keep their shape.
    assert_eq!(back.get("loss").unwrap().shape, Vec::<usize>::new());
    assert_eq!(
        back.expect_f64("f64.loss", &[], &path).unwrap(),
        &[std::f64::consts::PI]
    );
    assert_eq!(back.get("empty").unwrap().shape, vec![0, 3]);
    // Writing again replaces the file atomically.
    let mut st2 = st.clone();
    st2.metadata.insert("format".into(), "v2".into());
    st2.write(&path).unwrap();
    assert_eq!(SafeTensors::read(&path).unwrap().metadata["format"], "v2");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn header_layout_matches_safetensors() {
    let bytes = sample().to_bytes().unwrap();
    let (n, header) = split_header(&bytes);
    assert_eq!(n % 8, 0, "header must be padded to a multiple of 8");
    assert!(header.is_ascii(), "ensure_ascii style header");
    let trimmed = header.trim_end_matches(' ');
    assert!(trimmed.ends_with('}') && header.len() - trimmed.len() < 8);
    assert!(header.starts_with("{\"__metadata__\":{\"controls\":"));
    // Python json.dumps escapes, exactly.
    assert!(header.contains(r#""controls":"tab\tnl\ncr\r\u0001\u001f\u007f\b\f/""#));
    assert!(header.contains(r#""quote\"key":"a \"quoted\" \\ value""#));
    assert!(header.contains(r#""unicode":"h\u00e9llo w\u00f6rld \u2211 \ud83d\ude00""#));
    assert!(header.contains(r#""argmax":{"dtype":"I64","shape":[1,1],"data_offsets":[0,8]}"#));
    assert!(header.contains(r#""loss":{"dtype":"F32","shape":[],"data_offsets":"#));

    let Json::Object(members) = parse_json(header).unwrap() else {
        panic!("not an object")
    };
    assert_eq!(members[0].0, "__metadata__");
    let mut prev_end = 0;
    let mut seen_f32 = false;
    let mut names = Vec::new();
    for (name, info) in &members[1..] {
        let Json::Object(fields) = info else { panic!() };
        let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["dtype", "shape", "data_offsets"]);
        let Json::String(dtype) = &fields[0].1 else {
            panic!()
        };
        let offs = offsets(&fields[2].1);
        assert_eq!(offs[0], prev_end, "{name}: offsets must be contiguous");
        prev_end = offs[1];
        let size = Dtype::from_name(dtype).unwrap().size();
        assert_eq!((8 + n + offs[0]) % size, 0, "{name} misaligned");
        if dtype == "F32" {
            seen_f32 = true;
        } else {
            assert!(!seen_f32, "{name}: 8-byte dtypes must come before F32");
        }
        names.push((size, name.as_str()));
    }
    assert_eq!(prev_end, bytes.len() - 8 - n, "tensors must cover the data");
    let mut sorted = names.clone();
    sorted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    assert_eq!(names, sorted);
    assert_eq!(
        names.iter().map(|x| x.1).collect::<Vec<_>>(),
        ["argmax", "f64.loss", "f64.x", "labels", "b", "empty", "loss", "w.weight"]
    );
}

#[test]
fn empty_file_layout() {
    let bytes = SafeTensors::new().to_bytes().unwrap();
    assert_eq!(bytes, b"\x08\0\0\0\0\0\0\0{}      ");
    assert_eq!(
        SafeTensors::parse(&bytes, bad_path()).unwrap(),
        SafeTensors::new()
    );
}

// --- Reference files ----------------------------------------------------------------

#[test]
fn reads_reference_conv2d() {
    let Some(path) = reference("conv2d_s2_p1.safetensors") else {
        return;
    };
    let st = SafeTensors::read(&path).unwrap();
    let expected: [(&str, &[usize]); 8] = [
        ("input", &[3, 4, 9, 7]),
        ("weight", &[5, 4, 3, 3]),
        ("bias", &[5]),
        ("output", &[3, 5, 5, 4]),
        ("grad_output", &[3, 5, 5, 4]),
        ("grad.input", &[3, 4, 9, 7]),
        ("grad.weight", &[5, 4, 3, 3]),
        ("grad.bias", &[5]),
    ];
    for (name, shape) in expected {
        let v = st.expect_f32(name, shape, &path).unwrap();
        assert!(v.iter().all(|x| x.is_finite()), "{name}");
        let f64_name = format!("f64.{name}");
        if let Some(e) = st.get(&f64_name) {
            assert_eq!(e.dtype(), Dtype::F64);
            assert_eq!(e.shape, shape);
        }
    }
    st.expect_f64("f64.output", &[3, 5, 5, 4], &path).unwrap();
    assert_eq!(st.entries.len(), 12);
    assert_eq!(st.metadata["op"], "conv2d");
    assert_eq!(st.metadata["stride"], "2");
    assert_eq!(st.metadata["kind"], "op");
    assert_eq!(st.metadata["format"], "rcc-reference-v1");
    // f32_any converts f64 results.
    let (shape, out64) = st.f32_any("f64.output", &path).unwrap();
    assert_eq!(shape, [3, 5, 5, 4]);
    let out32 = st.expect_f32("output", &[3, 5, 5, 4], &path).unwrap();
    let max_abs = out64.iter().fold(0f32, |m, x| m.max(x.abs()));
    for (a, b) in out32.iter().zip(&out64) {
        assert!((a - b).abs() <= 1e-5 * max_abs);
    }
}

#[test]
fn reference_files_reserialise_byte_identically() {
    let Some(first) = reference("conv2d_s2_p1.safetensors") else {
        return;
    };
    let dir = first.parent().unwrap();
    let mut count = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("safetensors") {
            continue;
        }
        let original = fs::read(&path).unwrap();
        let st = SafeTensors::parse(&original, &path).unwrap();
        let again = st.to_bytes().unwrap();
        if again != original {
            let (_, h1) = split_header(&original);
            let (_, h2) = split_header(&again);
            panic!("{} differs:\n{h1}\n{h2}", path.display());
        }
        count += 1;
    }
    assert!(count >= 1);
}

#[test]
fn reference_maxpool_mixes_f64_and_i64_by_name() {
    let Some(path) = reference("maxpool_k3_s2.safetensors") else {
        return;
    };
    let st = SafeTensors::read(&path).unwrap();
    // File order: "argmax" (I64) before "f64.*" (F64), i.e. 8-byte types sorted together.
    assert_eq!(st.entries[0].name, "argmax");
    let argmax = st.expect_i64("argmax", &[2, 3, 5, 4], &path).unwrap();
    assert!(argmax.iter().all(|&i| (0..110).contains(&i)));
    st.expect_f32("input", &[2, 3, 11, 10], &path).unwrap();
}

// --- Accessors ----------------------------------------------------------------------

#[test]
fn expect_errors_are_clear() {
    let st = sample();
    let p = bad_path();
    assert_file_err(
        st.expect_f32("nope", &[1], p),
        "nope",
        &["missing tensor", "w.weight"],
    );
    assert_file_err(
        st.expect_f32("labels", &[5], p),
        "labels",
        &["expected dtype F32", "found I64"],
    );
    assert_file_err(
        st.expect_i64("b", &[3], p),
        "b",
        &["expected dtype I64", "found F32"],
    );
    assert_file_err(
        st.expect_f64("b", &[3], p),
        "b",
        &["expected dtype F64", "found F32"],
    );
    assert_file_err(
        st.expect_f32("b", &[1, 3], p),
        "b",
        &["expected shape [1, 3]", "found [3]"],
    );
    assert_file_err(st.f32_any("labels", p), "labels", &["F32 or F64", "I64"]);
    assert_file_err(st.f32_any("nope", p), "nope", &["missing"]);
    assert_eq!(st.f32_any("b", p).unwrap(), (vec![3], vec![1.0, 2.0, 3.0]));
    assert_eq!(st.expect_i64("argmax", &[1, 1], p).unwrap(), &[42]);
}

/// A file mixing every dtype, with odd element counts so that a wrong order would
/// misalign the wider types.
fn mixed_dtypes() -> SafeTensors {
    let mut st = SafeTensors::new();
    st.push_u16("idx", &[3], vec![0, 1, u16::MAX]).unwrap();
    st.push_u16("a.idx", &[1], vec![7]).unwrap();
    st.push_i32("ptr", &[5], vec![0, -1, i32::MIN, i32::MAX, 42])
        .unwrap();
    st.push_f32("values", &[3], vec![1.5, -0.0, f32::from_bits(0x7fc0_1234)])
        .unwrap();
    st.push_i64("labels", &[1], vec![i64::MIN]).unwrap();
    st.push_f64("f64.x", &[1], vec![-2.5]).unwrap();
    st.push_i32("empty", &[0], vec![]).unwrap();
    st.metadata.insert("format".into(), "mixed".into());
    st
}

#[test]
fn integer_dtypes_round_trip_aligned() {
    let st = mixed_dtypes();
    let bytes = st.to_bytes().unwrap();
    let back = SafeTensors::parse(&bytes, bad_path()).unwrap();
    assert_bit_identical(&st, &back);
    assert_eq!(back.to_bytes().unwrap(), bytes);
    let p = bad_path();
    assert_eq!(back.expect_u16("idx", &[3], p).unwrap(), &[0, 1, u16::MAX]);
    assert_eq!(
        back.expect_i32("ptr", &[5], p).unwrap(),
        &[0, -1, i32::MIN, i32::MAX, 42]
    );
    assert_eq!(back.get("idx").unwrap().dtype(), Dtype::U16);
    assert_eq!(back.get("ptr").unwrap().dtype(), Dtype::I32);
    // Order: 8-byte (by name), 4-byte F32 and I32 together (by name), then U16.
    let (n, header) = split_header(&bytes);
    let Json::Object(members) = parse_json(header).unwrap() else {
        panic!("not an object")
    };
    let mut order = vec![];
    for (name, info) in &members[1..] {
        let Json::Object(fields) = info else { panic!() };
        let Json::String(dtype) = &fields[0].1 else {
            panic!()
        };
        let offs = offsets(&fields[2].1);
        let size = Dtype::from_name(dtype).unwrap().size();
        assert_eq!((8 + n + offs[0]) % size, 0, "{name} misaligned");
        order.push(name.as_str());
    }
    assert_eq!(
        order,
        ["f64.x", "labels", "empty", "ptr", "values", "a.idx", "idx"]
    );
    assert!(header.contains(r#""idx":{"dtype":"U16","shape":[3],"data_offsets":"#));
    assert!(header.contains(r#""ptr":{"dtype":"I32","shape":[5],"data_offsets":"#));
    // Little-endian on disk: the U16 tensors are last, "idx" = 0, 1, 65535.
    assert_eq!(
        &bytes[bytes.len() - 6..],
        &[0x00, 0x00, 0x01, 0x00, 0xff, 0xff]
    );
    // Through the file system too.
    let dir = temp_dir("intdtypes");
    let path = dir.join("m.safetensors");
    st.write(&path).unwrap();
    assert_bit_identical(&st, &SafeTensors::read(&path).unwrap());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn integer_dtype_errors_are_clear() {
    let st = mixed_dtypes();
    let p = bad_path();
    assert_file_err(
        st.expect_u16("ptr", &[5], p),
        "ptr",
        &["expected dtype U16", "found I32"],
    );
    assert_file_err(
        st.expect_i32("idx", &[3], p),
        "idx",
        &["expected dtype I32", "found U16"],
    );
    assert_file_err(
        st.expect_i32("values", &[3], p),
        "values",
        &["expected dtype I32", "found F32"],
    );
    assert_file_err(
        st.expect_f32("idx", &[3], p),
        "idx",
        &["expected dtype F32", "found U16"],
    );
    assert_file_err(
        st.expect_i32("ptr", &[4], p),
        "ptr",
        &["expected shape [4]", "found [5]"],
    );
    assert_file_err(st.expect_u16("nope", &[1], p), "nope", &["missing tensor"]);
    assert_file_err(st.f32_any("ptr", p), "ptr", &["F32 or F64", "found I32"]);
    assert_file_err(st.f32_any("idx", p), "idx", &["F32 or F64", "found U16"]);
    assert_file_err(
        st.clone().push_u16("x", &[2], vec![1]),
        "x",
        &["[2]", "2 elements", "U16 data has 1"],
    );
    // The byte size of a header entry must match the dtype: 3 U16 are 6 bytes, 3 I32
    // are 12.
    parse_err(
        r#"{"a":{"dtype":"U16","shape":[3],"data_offsets":[0,12]}}"#,
        12,
        "a",
        &["span 12 bytes", "[3] of U16 needs 6"],
    );
    parse_err(
        r#"{"a":{"dtype":"I32","shape":[3],"data_offsets":[0,6]}}"#,
        6,
        "a",
        &["span 6 bytes", "[3] of I32 needs 12"],
    );
}

#[test]
fn push_rejects_bad_tensors() {
    let mut st = SafeTensors::new();
    assert_file_err(
        st.push_f32("a", &[2, 2], vec![1.0; 3]),
        "a",
        &["[2, 2]", "4 elements", "3"],
    );
    assert_file_err(
        st.push_f32("a", &[usize::MAX, 2], vec![]),
        "a",
        &["overflows"],
    );
    assert_file_err(
        st.push_f32("__metadata__", &[], vec![1.0]),
        "__metadata__",
        &["reserved"],
    );
    st.push_f32("a", &[1], vec![1.0]).unwrap();
    assert_file_err(st.push_i64("a", &[1], vec![1]), "a", &["already"]);
    // Public fields can still be made inconsistent: the writer checks again.
    st.entries.push(st.entries[0].clone());
    assert_file_err(st.to_bytes(), "a", &["duplicate"]);
    st.entries[1].shape = vec![2];
    assert_file_err(st.to_bytes(), "a", &["2 elements"]);
}

#[test]
fn write_errors_name_the_path() {
    let dir = temp_dir("writeerr");
    let path = dir.join("no-such-dir").join("x.safetensors");
    match sample().write(&path) {
        Err(Error::Io { path: p, .. }) => assert!(p.ends_with("x.safetensors.tmp")),
        other => panic!("expected Io error, got {other:?}"),
    }
    match SafeTensors::read(&dir.join("missing.safetensors")) {
        Err(Error::Io { path: p, .. }) => assert!(p.ends_with("missing.safetensors")),
        other => panic!("expected Io error, got {other:?}"),
    }
    fs::remove_dir_all(&dir).unwrap();
}

// --- Malformed files: one test per case ---------------------------------------------

const F32_4: &str = r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;

#[test]
fn valid_minimal_file_parses() {
    let st = SafeTensors::parse(&file_with(F32_4, 16), bad_path()).unwrap();
    assert_eq!(st.expect_f32("a", &[4], bad_path()).unwrap(), &[0.0; 4]);
    // Whitespace anywhere, tabs/newlines in padding, "-0", keys in any order.
    let h =
        " {\n\t\"a\" : { \"shape\" : [ 4 ] , \"data_offsets\":[-0, 16],\"dtype\":\"F32\" } }\r\n  ";
    SafeTensors::parse(&file_with(h, 16), bad_path()).unwrap();
    // __metadata__: null is read as "no metadata" (as serde does).
    let h = r#"{"__metadata__":null,"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
    assert!(SafeTensors::parse(&file_with(h, 16), bad_path())
        .unwrap()
        .metadata
        .is_empty());
}

#[test]
fn err_file_shorter_than_8_bytes() {
    for len in 0..8 {
        let r = SafeTensors::parse(&[0u8; 8][..len], bad_path());
        assert_file_err(r, "header length", &["8-byte", &format!("{len} bytes")]);
    }
    let dir = temp_dir("short");
    let path = dir.join("short.safetensors");
    fs::write(&path, b"abc").unwrap();
    assert_file_err(
        SafeTensors::read(&path),
        "header length",
        &["3 bytes", "8-byte"],
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn err_header_length_beyond_file() {
    let mut bytes = file_with(F32_4, 16);
    let n = (F32_4.len() + 17) as u64;
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    assert_file_err(
        SafeTensors::parse(&bytes, bad_path()),
        "header length",
        &[&n.to_string(), "only", "truncated"],
    );
    // Through read(): checked before the header is read.
    let dir = temp_dir("hdrlen");
    let path = dir.join("h.safetensors");
    fs::write(&path, &bytes).unwrap();
    assert_file_err(SafeTensors::read(&path), "header length", &["only"]);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn err_header_length_absurd() {
    for n in [MAX_HEADER_LEN + 1, u64::MAX] {
        let mut bytes = n.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        assert_file_err(
            SafeTensors::parse(&bytes, bad_path()),
            "header length",
            &["limit"],
        );
    }
}

#[test]
fn err_header_not_utf8() {
    let mut bytes = file_with(F32_4, 16);
    bytes[8 + 3] = 0xff;
    assert_file_err(
        SafeTensors::parse(&bytes, bad_path()),
        "header",
        &["UTF-8", "byte 3"],
    );
}

#[test]
fn err_json_malformed_with_position() {
    parse_err(
        r#"{"a":"#,
        0,
        "header",
        &["malformed JSON", "byte 5", "expected a JSON value"],
    );
    parse_err(r#"{"a" 1}"#, 0, "header", &["byte 5", "expected ':'"]);
    parse_err(
        r#"{"a":1,}"#,
        0,
        "header",
        &["byte 7", "expected a string key"],
    );
    parse_err(r#"{"a":[1 2]}"#, 0, "header", &["byte 8", "',' or ']'"]);
    parse_err(r#"{"a":tru}"#, 0, "header", &["byte 5", "'true'"]);
    parse_err(r#"{"a":01}"#, 0, "header", &["byte 6"]);
    parse_err(r#"{"a":1.}"#, 0, "header", &["byte 7", "digit"]);
    parse_err(
        r#"{"a":"x}"#,
        0,
        "header",
        &["byte 5", "unterminated string"],
    );
    parse_err("{\"a\":\"x\ny\"}", 0, "header", &["control character 0x0a"]);
    parse_err(r#"{"a":"\q"}"#, 0, "header", &["invalid escape", "\\q"]);
    parse_err(r#"{"a":"\u12G4"}"#, 0, "header", &["hex digits"]);
    parse_err(r#"{"a":"\ud83d"}"#, 0, "header", &["high surrogate"]);
    parse_err(
        r#"{"a":"\ud83d\u0041"}"#,
        0,
        "header",
        &["not a low surrogate"],
    );
    parse_err(
        r#"{"a":"\ude00"}"#,
        0,
        "header",
        &["unpaired low surrogate"],
    );
    parse_err("{} x", 0, "header", &["byte 3", "after the JSON value"]);
    parse_err("{}\0", 0, "header", &["after the JSON value"]);
    parse_err("", 0, "header", &["byte 0", "end of the input"]);
}

#[test]
fn err_json_too_deep() {
    let deep = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
    parse_err(&deep, 0, "header", &["nested more than 64"]);
    // 60 levels is fine for the parser (then rejected as a tensor entry).
    let ok = format!("{{\"a\":{}{}}}", "[".repeat(60), "]".repeat(60));
    parse_err(&ok, 0, "a", &["found an array"]);
}

#[test]
fn raw_utf8_in_the_header_is_read() {
    // Raw (unescaped) UTF-8 is read too, as the Rust safetensors library writes it.
    let h = "{\"__metadata__\":{\"k\":\"é😀\"}}";
    assert_eq!(
        SafeTensors::parse(&file_with(h, 0), bad_path())
            .unwrap()
            .metadata["k"],
        "é😀"
    );
}

#[test]
fn err_top_level_not_object() {
    parse_err("[1,2]", 0, "header", &["top level", "an array"]);
    parse_err("\"x\"", 0, "header", &["top level", "string"]);
    parse_err("42", 0, "header", &["top level", "number 42"]);
}

#[test]
fn err_entry_missing_fields() {
    parse_err(
        r#"{"a":{"shape":[4],"data_offsets":[0,16]}}"#,
        16,
        "a",
        &["missing \"dtype\""],
    );
    parse_err(
        r#"{"a":{"dtype":"F32","data_offsets":[0,16]}}"#,
        16,
        "a",
        &["missing \"shape\""],
    );
    parse_err(
        r#"{"a":{"dtype":"F32","shape":[4]}}"#,
        16,
        "a",
        &["missing \"data_offsets\""],
    );
}

#[test]
fn err_entry_wrong_json_types() {
    parse_err(r#"{"a":"F32"}"#, 0, "a", &["expected an object", "string"]);
    parse_err(
        r#"{"a":{"dtype":32,"shape":[4],"data_offsets":[0,16]}}"#,
        16,
        "a",
        &["dtype", "expected a string", "number 32"],
    );
    parse_err(
        r#"{"a":{"dtype":"F32","shape":"4","data_offsets":[0,16]}}"#,
        16,
        "a",
        &["shape", "expected an array"],
    );
    parse_err(
        r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":{"b":0}}}"#,
        16,
        "a",
        &["data_offsets", "expected an array"],
    );
    parse_err(
        r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16,2]}}"#,
        16,
        "a",
        &["data_offsets", "2 integers", "3 items"],
    );
    parse_err(
        r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0]}}"#,
        16,
        "a",
        &["data_offsets", "1 items"],
    );
    parse_err(
        r#"{"a":{"dtype":"F32","shape":[null],"data_offsets":[0,16]}}"#,
        16,
        "a",
        &["shape[0]", "null"],
    );
    parse_err(
        r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,"16"]}}"#,
        16,
        "a",
        &["data_offsets[1]", "string"],
    );
    parse_err(
        r#"{"a":{"dtype":"F32","dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
        16,
        "a",
        &["\"dtype\" appears twice"],
    );
    parse_err(
        r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16],"extra":1}}"#,
        16,
        "a",
        &["unexpected key \"extra\""],
    );
}

#[test]
fn err_unknown_dtype() {
    for d in ["F16", "BF16", "U8", "I16", "U32", "i32", "u16", "f32", ""] {
        let h = format!(r#"{{"a":{{"dtype":"{d}","shape":[4],"data_offsets":[0,16]}}}}"#);
        parse_err(
            &h,
            16,
            "a",
            &[
                "unsupported dtype",
                &format!("\"{d}\""),
                "F32, F64, I64, I32 and U16",
            ],
        );
    }
}

#[test]
fn err_bad_shape_dims() {
    let h =
        |shape: &str| format!(r#"{{"a":{{"dtype":"F32","shape":{shape},"data_offsets":[0,16]}}}}"#);
    parse_err(&h("[-4]"), 16, "a", &["shape[0]", "negative number -4"]);
    parse_err(
        &h("[4.0]"),
        16,
        "a",
        &["shape[0]", "non-integer number 4.0"],
    );
    parse_err(&h("[2,2e0]"), 16, "a", &["shape[1]", "non-integer"]);
    parse_err(
        &h("[18446744073709551616]"),
        16,
        "a",
        &["shape[0]", "64 bits"],
    );
    parse_err(
        &h("[4294967296,4294967296,2]"),
        16,
        "a",
        &["shape", "overflows"],
    );
    // The element count fits but the byte size does not.
    parse_err(&h("[4611686018427387904]"), 16, "a", &["overflows"]);
}

#[test]
fn err_offsets_begin_after_end() {
    parse_err(
        r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}}"#,
        16,
        "a",
        &["[16, 0]", "begin is after end"],
    );
}

#[test]
fn err_offsets_end_beyond_data() {
    parse_err(
        F32_4,
        12,
        "a",
        &["[0, 16]", "beyond the data buffer of 12 bytes"],
    );
    parse_err(
        r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,18446744073709551615]}}"#,
        16,
        "a",
        &["beyond"],
    );
}

#[test]
fn err_byte_length_mismatch() {
    parse_err(
        r#"{"a":{"dtype":"F64","shape":[4],"data_offsets":[0,16]}}"#,
        16,
        "a",
        &["span 16 bytes", "[4] of F64 needs 32"],
    );
    parse_err(
        r#"{"a":{"dtype":"F32","shape":[],"data_offsets":[0,8]}}"#,
        8,
        "a",
        &["span 8 bytes", "needs 4"],
    );
}

#[test]
fn err_offsets_overlap() {
    let h = r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#;
    parse_err(h, 16, "b", &["[8, 16]", "overlap", "\"a\" at [0, 16]"]);
    // The same range twice.
    let h = r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
    assert!(matches!(
        SafeTensors::parse(&file_with(h, 16), bad_path()),
        Err(Error::File { ref problem, .. }) if problem.contains("overlap")
    ));
}

#[test]
fn err_offsets_gap() {
    let h = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}"#;
    parse_err(h, 20, "b", &["[12, 20]", "gap", "\"a\" at [0, 8]"]);
    parse_err(
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#,
        16,
        "a",
        &["must start at offset 0"],
    );
}

#[test]
fn err_duplicate_tensor_names() {
    let h = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
    parse_err(h, 8, "a", &["duplicate tensor name"]);
    let h = r#"{"__metadata__":{},"__metadata__":{}}"#;
    parse_err(h, 0, "__metadata__", &["twice"]);
}

#[test]
fn err_metadata_not_strings() {
    parse_err(
        r#"{"__metadata__":{"k":1}}"#,
        0,
        "__metadata__",
        &["\"k\"", "expected a string", "number 1"],
    );
    parse_err(
        r#"{"__metadata__":{"k":{"x":"y"}}}"#,
        0,
        "__metadata__",
        &["\"k\"", "an object"],
    );
    parse_err(
        r#"{"__metadata__":["k"]}"#,
        0,
        "__metadata__",
        &["expected an object", "an array"],
    );
    parse_err(
        r#"{"__metadata__":{"k":"a","k":"b"}}"#,
        0,
        "__metadata__",
        &["duplicate key \"k\""],
    );
}

#[test]
fn err_trailing_bytes() {
    parse_err(
        F32_4,
        20,
        "data buffer",
        &["cover 16 bytes", "20 bytes", "4 trailing"],
    );
    parse_err("{}", 3, "data buffer", &["3 trailing"]);
}

// --- Robustness ---------------------------------------------------------------------

/// Truncations and single-byte corruptions of a valid file never panic.
#[test]
fn corrupted_files_never_panic() {
    let bytes = sample().to_bytes().unwrap();
    let (n, _) = split_header(&bytes);
    let mut ok = 0usize;
    let mut err = 0usize;
    let mut count = |r: Result<SafeTensors>| match r {
        Ok(_) => ok += 1,
        Err(Error::File { .. }) => err += 1,
        Err(e) => panic!("unexpected error kind {e:?}"),
    };
    for len in 0..bytes.len() {
        count(SafeTensors::parse(&bytes[..len], bad_path()));
    }
    // Every byte of the prefix and header, and a sample of the data, with several
    // flips (deterministic), plus a few replacement bytes that matter to JSON.
    let mut corrupt = bytes.clone();
    for pos in (0..8 + n).chain((8 + n..bytes.len()).step_by(7)) {
        for x in [0x01u8, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff] {
            corrupt[pos] ^= x;
            count(SafeTensors::parse(&corrupt, bad_path()));
            corrupt[pos] ^= x;
        }
        for b in [
            b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'-', b'9', b' ', 0,
        ] {
            let orig = corrupt[pos];
            corrupt[pos] = b;
            count(SafeTensors::parse(&corrupt, bad_path()));
            corrupt[pos] = orig;
        }
    }
    // Header length off by small amounts.
    for delta in [-9i64, -8, -1, 1, 8, 9] {
        let mut c = bytes.clone();
        let m = (n as i64 + delta) as u64;
        c[..8].copy_from_slice(&m.to_le_bytes());
        count(SafeTensors::parse(&c, bad_path()));
    }
    assert!(ok > 0 && err > 0, "ok {ok}, err {err}");
}
