//! The sparse model file: round trips, PyTorch-compatible names and layouts, and every
//! kind of damaged or hostile file refused with a clear error.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rcc_nn::safetensors::{SafeTensors, TensorData};
use rcc_nn::{Arch, Model};
use rcc_sparse::file::*;
use rcc_sparse::{Csr, Error, LayerSpec, ModelSpec, Result};
use rcc_sparse::{KernelChoice, SparseModel};
use std::fs;
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory under the system temp dir, unique per process and call.
fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("rcc-sparse-file-{}-{tag}-{n}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every layer kind, an empty weight row, a padded conv:
/// `[1,8,8]` conv 3x3 pad 1 -> `[2,8,8]`, relu, max_pool 2/2 -> `[2,4,4]`, avg_pool 2/2
/// -> `[2,2,2]`, flatten -> `[8]`, linear 3x8 (5 non-zeros, row pointers 0,2,4,5).
fn tiny() -> ModelSpec {
    let mut conv = vec![0.0; 18];
    conv[..9].copy_from_slice(&[1.0, 0.0, 2.0, 0.0, 0.0, -3.0, 0.0, 0.0, 0.5]);
    let mut lin = vec![0.0; 24];
    for (k, v) in [(1, 1.0), (6, -2.0), (8, 0.25), (15, 4.0), (19, -1.5)] {
        lin[k] = v;
    }
    ModelSpec {
        arch: "tiny".into(),
        input: [1, 8, 8],
        layers: vec![
            LayerSpec::Conv {
                w: Csr::from_dense(&conv, 2, 9).unwrap(),
                in_channels: 1,
                kh: 3,
                kw: 3,
                stride: 1,
                pad: 1,
                bias: vec![0.1, -0.2],
                relu: false,
            },
            LayerSpec::Relu,
            LayerSpec::MaxPool { k: 2, s: 2 },
            LayerSpec::AvgPool { k: 2, s: 2 },
            LayerSpec::Flatten,
            LayerSpec::Linear {
                w: Csr::from_dense(&lin, 3, 8).unwrap(),
                bias: vec![1.0, 2.0, 3.0],
                relu: true,
            },
        ],
    }
}

fn bad_path() -> &'static Path {
    Path::new("bad.safetensors")
}

/// Asserts that `st` is rejected with a file error on `field` whose message names the
/// file and contains every needle.
fn assert_rejected(st: &SafeTensors, field: &str, needles: &[&str]) {
    match from_safetensors(st, bad_path()) {
        Err(
            ref e @ Error::File {
                field: ref f,
                ref problem,
                ..
            },
        ) => {
            let shown = e.to_string();
            assert!(shown.starts_with("bad.safetensors: "), "{shown}");
            assert_eq!(f, field, "wrong field in: {shown}");
            for n in needles {
                assert!(problem.contains(n), "{n:?} not in: {shown}");
            }
        }
        other => panic!("expected a file error on {field}, got {other:?}"),
    }
}

/// `tiny()`'s file contents after `edit`.
fn edited(edit: impl FnOnce(&mut SafeTensors)) -> SafeTensors {
    let mut st = to_safetensors(&tiny()).unwrap();
    edit(&mut st);
    st
}

fn set_meta(st: &mut SafeTensors, key: &str, value: &str) {
    st.metadata.insert(key.to_string(), value.to_string());
}

fn set_data(st: &mut SafeTensors, name: &str, shape: &[usize], data: TensorData) {
    let e = st.entries.iter_mut().find(|e| e.name == name).unwrap();
    e.shape = shape.to_vec();
    e.data = data;
}

fn remove(st: &mut SafeTensors, name: &str) {
    let before = st.entries.len();
    st.entries.retain(|e| e.name != name);
    assert_eq!(st.entries.len(), before - 1, "{name}");
}

/// Logits of `spec` built with `choice` for `n` seeded random inputs.
fn logits(spec: &ModelSpec, choice: KernelChoice, n: usize, seed: u64) -> Vec<f32> {
    let sm = SparseModel::build(spec, choice).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let x: Vec<f32> = (0..n * sm.in_len()).map(|_| rng.gen::<f32>()).collect();
    let mut out = vec![0.0; n * sm.out_len()];
    sm.infer(&x, &mut out).unwrap();
    out
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

// --- Round trips --------------------------------------------------------------------

#[test]
fn layout_is_as_documented() {
    let st = to_safetensors(&tiny()).unwrap();
    let meta: Vec<(&str, &str)> = st
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        meta,
        [
            ("arch", "tiny"),
            ("format", "rcc-sparse-v1"),
            ("input", "1,8,8"),
            (
                "layer.0",
                "conv rows=2 cols=9 in_channels=1 kh=3 kw=3 stride=1 pad=1 relu=0"
            ),
            ("layer.1", "relu"),
            ("layer.2", "max_pool k=2 s=2"),
            ("layer.3", "avg_pool k=2 s=2"),
            ("layer.4", "flatten"),
            ("layer.5", "linear rows=3 cols=8 relu=1"),
            ("layers", "6"),
        ]
    );
    let p = bad_path();
    assert_eq!(
        st.expect_f32("layer.0.values", &[4], p).unwrap(),
        &[1.0, 2.0, -3.0, 0.5]
    );
    assert_eq!(
        st.expect_u16("layer.0.col_idx", &[4], p).unwrap(),
        &[0, 2, 5, 8]
    );
    assert_eq!(
        st.expect_i32("layer.0.row_ptr", &[3], p).unwrap(),
        &[0, 4, 4]
    );
    assert_eq!(
        st.expect_f32("layer.0.bias", &[2], p).unwrap(),
        &[0.1, -0.2]
    );
    assert_eq!(
        st.expect_i32("layer.5.row_ptr", &[4], p).unwrap(),
        &[0, 2, 4, 5]
    );
    assert_eq!(
        st.expect_u16("layer.5.col_idx", &[5], p).unwrap(),
        &[1, 6, 0, 7, 3]
    );
    assert_eq!(st.entries.len(), 8);
    assert_eq!(from_safetensors(&st, p).unwrap(), tiny());
}

#[test]
fn real_models_round_trip_with_identical_logits() {
    let dir = temp_dir("real");
    for (arch, seed) in [
        (Arch::Lenet5, 1),
        (Arch::LenetAdv(4), 2),
        (Arch::Vgg16(1), 3),
        (Arch::Mlp, 4),
    ] {
        let mut model = Model::new(arch, seed);
        rcc_compress::prune_by_magnitude(&mut model, 0.9);
        let spec = ModelSpec::from_model(&model).unwrap();
        let (total, nnz) = spec.weight_counts();
        assert!(nnz * 5 < total, "{arch}: {nnz} of {total} weights kept");
        let path = dir.join(format!(
            "{}.safetensors",
            arch.to_string().replace(':', "_")
        ));
        save(&spec, &path).unwrap();
        assert!(!path.with_extension("safetensors.tmp").exists());
        let back = load(&path).unwrap();
        assert_eq!(back, spec, "{arch}");
        // Writing the loaded spec again gives the same bytes.
        assert_eq!(
            to_safetensors(&back).unwrap().to_bytes().unwrap(),
            fs::read(&path).unwrap(),
            "{arch}"
        );
        for choice in [KernelChoice::Auto, KernelChoice::Sparse] {
            assert_eq!(
                bits(&logits(&spec, choice, 3, seed)),
                bits(&logits(&back, choice, 3, seed)),
                "{arch} {choice:?}"
            );
        }
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wide_layer_uses_i32_column_indices() {
    // 90000 inputs: more columns than 16-bit indices address.
    let cols = 90_000;
    let mut w = vec![0.0; 2 * cols];
    for (k, v) in [
        (3, 1.0),
        (70_000, 2.0),
        (cols + 65_536, -1.0),
        (2 * cols - 1, 3.0),
    ] {
        w[k] = v;
    }
    let spec = ModelSpec {
        arch: "wide".into(),
        input: [1, 300, 300],
        layers: vec![
            LayerSpec::Flatten,
            LayerSpec::Linear {
                w: Csr::from_dense(&w, 2, cols).unwrap(),
                bias: vec![0.0, 1.0],
                relu: false,
            },
        ],
    };
    let st = to_safetensors(&spec).unwrap();
    assert_eq!(
        st.expect_i32("layer.1.col_idx", &[4], bad_path()).unwrap(),
        &[3, 70_000, 65_536, 89_999]
    );
    assert_eq!(from_safetensors(&st, bad_path()).unwrap(), spec);

    // Negative, out-of-range and 16-bit indices are all rejected for this layer.
    let mut neg = st.clone();
    set_data(
        &mut neg,
        "layer.1.col_idx",
        &[4],
        TensorData::I32(vec![3, -70_000, 65_536, 89_999]),
    );
    assert_rejected(
        &neg,
        "layer.1.col_idx",
        &["entry 1 is -70000", "non-negative"],
    );
    let mut far = st.clone();
    set_data(
        &mut far,
        "layer.1.col_idx",
        &[4],
        TensorData::I32(vec![3, 70_000, 65_536, 90_000]),
    );
    assert_rejected(
        &far,
        "layer.1.col_idx",
        &["index 90000 in row 1", "out of range", "90000 columns"],
    );
    let mut narrow = st.clone();
    set_data(
        &mut narrow,
        "layer.1.col_idx",
        &[4],
        TensorData::U16(vec![3, 4, 5, 6]),
    );
    assert_rejected(
        &narrow,
        "layer.1.col_idx",
        &["expected dtype I32", "cols = 90000 > 65536", "found U16"],
    );
}

// --- Malformed files ----------------------------------------------------------------

#[test]
fn truncated_files_are_rejected() {
    let dir = temp_dir("truncated");
    let path = dir.join("tiny.safetensors");
    save(&tiny(), &path).unwrap();
    let bytes = fs::read(&path).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let cut = dir.join("cut.safetensors");
    for len in [0, 3, 8, 8 + header / 2, 8 + header, bytes.len() - 1] {
        fs::write(&cut, &bytes[..len]).unwrap();
        let e = load(&cut).unwrap_err().to_string();
        assert!(
            e.contains("cut.safetensors") && e.contains("truncated"),
            "{len} bytes: {e}"
        );
    }
    let e = load(&dir.join("missing.safetensors")).unwrap_err();
    assert!(
        matches!(e, Error::Io { .. }) && e.to_string().contains("missing.safetensors"),
        "{e}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_row_pointers_are_rejected() {
    let row_ptr =
        |v: Vec<i32>| edited(|st| set_data(st, "layer.5.row_ptr", &[4], TensorData::I32(v)));
    assert_rejected(
        &row_ptr(vec![0, 4, 2, 5]),
        "layer.5.row_ptr",
        &["decrease at row 1: 4 then 2", "layer 5: linear, 3 x 8"],
    );
    assert_rejected(
        &row_ptr(vec![0, 2, 4, 4]),
        "layer.5.row_ptr",
        &["the last is 4", "5 stored values"],
    );
    assert_rejected(
        &row_ptr(vec![0, 2, 4, 6]),
        "layer.5.row_ptr",
        &["the last is 6", "5 stored values"],
    );
    assert_rejected(
        &row_ptr(vec![1, 2, 4, 5]),
        "layer.5.row_ptr",
        &["first must be 0, got 1"],
    );
    assert_rejected(
        &row_ptr(vec![0, -1, 4, 5]),
        "layer.5.row_ptr",
        &["entry 1 is -1", "row pointers must be non-negative"],
    );
    assert_rejected(
        &row_ptr(vec![0, 2, 4, i32::MIN]),
        "layer.5.row_ptr",
        &["entry 3 is -2147483648"],
    );
    // One entry too many or too few for rows + 1.
    let st = edited(|st| {
        set_data(
            st,
            "layer.5.row_ptr",
            &[5],
            TensorData::I32(vec![0, 2, 4, 5, 5]),
        )
    });
    assert_rejected(
        &st,
        "layer.5.row_ptr",
        &["expected shape [4]", "rows + 1 = 3 + 1", "found [5]"],
    );
}

#[test]
fn column_index_out_of_range_is_rejected() {
    let idx = |v: Vec<u16>| edited(|st| set_data(st, "layer.5.col_idx", &[5], TensorData::U16(v)));
    assert_rejected(
        &idx(vec![1, 6, 0, 8, 3]),
        "layer.5.col_idx",
        &["column index 8 in row 1 is out of range", "8 columns"],
    );
    assert_rejected(
        &idx(vec![1, 6, 0, 7, u16::MAX]),
        "layer.5.col_idx",
        &["index 65535 in row 2", "out of range"],
    );
    // Unsorted or repeated within a row: also rejected (the kernels rely on order).
    assert_rejected(
        &idx(vec![6, 1, 0, 7, 3]),
        "layer.5.col_idx",
        &["row 0", "not strictly increasing: 6 then 1"],
    );
    assert_rejected(
        &idx(vec![1, 1, 0, 7, 3]),
        "layer.5.col_idx",
        &["not strictly increasing: 1 then 1"],
    );
}

#[test]
fn shape_mismatches_are_rejected() {
    // conv cols must be in_channels*kh*kw.
    let st = edited(|st| {
        set_meta(
            st,
            "layer.0",
            "conv rows=2 cols=10 in_channels=1 kh=3 kw=3 stride=1 pad=1 relu=0",
        )
    });
    assert_rejected(
        &st,
        "__metadata__.layer.0",
        &["cols = 10", "in_channels*kh*kw = 1*3*3 = 9"],
    );
    // conv channels must match its input.
    let st = edited(|st| {
        set_meta(
            st,
            "layer.0",
            "conv rows=2 cols=9 in_channels=9 kh=1 kw=1 stride=1 pad=1 relu=0",
        )
    });
    assert_rejected(
        &st,
        "__metadata__.layer.0",
        &["input channels", "expected 9, got 1"],
    );
    // linear cols must match the flattened input (8).
    let st = edited(|st| set_meta(st, "layer.5", "linear rows=3 cols=9 relu=1"));
    assert_rejected(
        &st,
        "__metadata__.layer.5",
        &["layer 5 (linear)", "a flat vector of 9", "[8]"],
    );
    // A linear layer needs a flat input: drop the flatten.
    let st = edited(|st| set_meta(st, "layer.4", "relu"));
    assert_rejected(
        &st,
        "__metadata__.layer.5",
        &["flat vector of 8", "[2, 2, 2]"],
    );
    // The output must be flat logits: stop after the pooling.
    let st = edited(|st| {
        set_meta(st, "layers", "4");
        st.metadata.remove("layer.4");
        st.metadata.remove("layer.5");
        for t in TENSORS {
            remove(st, &format!("layer.5.{t}"));
        }
    });
    assert_rejected(&st, "__metadata__.layers", &["flat logits", "[2, 2, 2]"]);
    // Bias of the wrong length.
    let st = edited(|st| set_data(st, "layer.5.bias", &[2], TensorData::F32(vec![1.0, 2.0])));
    assert_rejected(
        &st,
        "layer.5.bias",
        &["expected shape [3]", "one per row, rows = 3", "found [2]"],
    );
    // col_idx shorter than values.
    let st = edited(|st| {
        set_data(
            st,
            "layer.5.col_idx",
            &[4],
            TensorData::U16(vec![1, 6, 0, 7]),
        )
    });
    assert_rejected(
        &st,
        "layer.5.col_idx",
        &["expected shape [5]", "one per value", "found [4]"],
    );
    // values not 1-D.
    let st = edited(|st| {
        set_data(
            st,
            "layer.0.values",
            &[2, 2],
            TensorData::F32(vec![1.0, 2.0, -3.0, 0.5]),
        )
    });
    assert_rejected(&st, "layer.0.values", &["1-D shape [nnz]", "[2, 2]"]);
    // Metadata rows disagreeing with the tensors.
    let st = edited(|st| set_meta(st, "layer.5", "linear rows=4 cols=8 relu=1"));
    assert_rejected(&st, "layer.5.row_ptr", &["expected shape [5]", "found [4]"]);
    // The input shape disagreeing with the first layer.
    let st = edited(|st| set_meta(st, "input", "3,8,8"));
    assert_rejected(&st, "__metadata__.layer.0", &["input channels"]);
    // A pooling window larger than its input.
    let st = edited(|st| set_meta(st, "layer.3", "avg_pool k=5 s=1"));
    assert_rejected(&st, "__metadata__.layer.3", &["avg_pool", "at least 5x5"]);
}

#[test]
fn wrong_dtypes_are_rejected() {
    let st = edited(|st| {
        set_data(
            st,
            "layer.0.values",
            &[4],
            TensorData::F64(vec![1.0, 2.0, -3.0, 0.5]),
        )
    });
    assert_rejected(&st, "layer.0.values", &["expected dtype F32", "found F64"]);
    let st = edited(|st| {
        set_data(
            st,
            "layer.0.col_idx",
            &[4],
            TensorData::I32(vec![0, 2, 5, 8]),
        )
    });
    assert_rejected(
        &st,
        "layer.0.col_idx",
        &["expected dtype U16", "cols = 9 <= 65536", "found I32"],
    );
    let st = edited(|st| set_data(st, "layer.0.row_ptr", &[3], TensorData::I64(vec![0, 4, 4])));
    assert_rejected(&st, "layer.0.row_ptr", &["expected dtype I32", "found I64"]);
    let st = edited(|st| set_data(st, "layer.5.bias", &[3], TensorData::I32(vec![1, 2, 3])));
    assert_rejected(&st, "layer.5.bias", &["expected dtype F32", "found I32"]);
}

#[test]
fn missing_and_extra_tensors_are_rejected() {
    for t in TENSORS {
        let name = format!("layer.0.{t}");
        let st = edited(|st| remove(st, &name));
        assert_rejected(&st, &name, &["missing tensor"]);
    }
    let st = edited(|st| st.push_f32("layer.2.values", &[1], vec![1.0]).unwrap());
    assert_rejected(
        &st,
        "layer.2.values",
        &["layer 2 is a max_pool layer, which has no tensors"],
    );
    let st = edited(|st| st.push_f32("layer.0.mask", &[1], vec![1.0]).unwrap());
    assert_rejected(
        &st,
        "layer.0.mask",
        &["unexpected tensor \"mask\" for layer 0", "values, col_idx"],
    );
    let st = edited(|st| st.push_f32("layer.6.bias", &[1], vec![1.0]).unwrap());
    assert_rejected(&st, "layer.6.bias", &["unexpected tensor", "layer.5"]);
    let st = edited(|st| st.push_f32("conv1.weight", &[1], vec![1.0]).unwrap());
    assert_rejected(&st, "conv1.weight", &["unexpected tensor"]);
}

#[test]
fn bad_metadata_is_rejected() {
    let meta = |key: &str, value: &str| edited(|st| set_meta(st, key, value));
    let field = |key: &str| format!("__metadata__.{key}");
    // Format.
    assert_rejected(
        &meta("format", "rcc-model-v1"),
        &field("format"),
        &["expected \"rcc-sparse-v1\"", "found \"rcc-model-v1\""],
    );
    for key in ["format", "arch", "input", "layers", "layer.3"] {
        let st = edited(|st| {
            st.metadata.remove(key);
        });
        assert_rejected(&st, &field(key), &["missing"]);
    }
    // A dense model file is not a sparse one.
    let dense = Model::new(Arch::LenetAdv(1), 0)
        .to_safetensors(&[])
        .unwrap();
    assert_rejected(&dense, &field("format"), &["rcc-model-v1"]);
    // Unknown kinds and keys.
    assert_rejected(
        &meta("layer.1", "gelu"),
        &field("layer.1"),
        &["unknown layer kind \"gelu\"", "conv, linear"],
    );
    assert_rejected(
        &meta("layer.1", ""),
        &field("layer.1"),
        &["unknown layer kind \"\""],
    );
    assert_rejected(
        &meta("layer.2", "max_pool k=2 s=2 pad=1"),
        &field("layer.2"),
        &["unexpected key \"pad\"", "k, s"],
    );
    assert_rejected(
        &meta("layer.1", "relu inplace=1"),
        &field("layer.1"),
        &["unexpected key \"inplace\"", "no keys"],
    );
    assert_rejected(
        &meta("layer.2", "max_pool k=2"),
        &field("layer.2"),
        &["missing key \"s\""],
    );
    assert_rejected(
        &meta("layer.2", "max_pool k=2 s=2 k=2"),
        &field("layer.2"),
        &["\"k\" appears twice"],
    );
    assert_rejected(
        &meta("layer.2", "max_pool k2 s=2"),
        &field("layer.2"),
        &["expected key=value, found \"k2\""],
    );
    // Numbers: unparsable, signed, huge, out of their range.
    for (v, needle) in [
        ("x", "expected a non-negative decimal integer, found \"x\""),
        ("-2", "found \"-2\""),
        ("+2", "found \"+2\""),
        ("2.0", "found \"2.0\""),
        ("", "found \"\""),
        ("99999999999999999999999999", "too large"),
        ("268435457", "268435457 is too large (at most 268435456)"),
    ] {
        assert_rejected(
            &meta("layer.2", &format!("max_pool k={v} s=2")),
            &field("layer.2"),
            &["max_pool: k: ", needle],
        );
    }
    assert_rejected(
        &meta("layer.5", "linear rows=3 cols=8 relu=2"),
        &field("layer.5"),
        &["relu: 2 is too large (at most 1)"],
    );
    assert_rejected(
        &meta("layer.5", "linear rows=100000 cols=100000 relu=1"),
        &field("layer.5"),
        &["100000 x 100000 weights", "more than the limit"],
    );
    assert_rejected(
        &meta("layers", "1000000"),
        &field("layers"),
        &["too large (at most 4096)"],
    );
    assert_rejected(&meta("layers", "six"), &field("layers"), &["\"six\""]);
    // Layer count disagreeing with the layer keys.
    assert_rejected(&meta("layers", "7"), &field("layer.6"), &["missing"]);
    assert_rejected(
        &meta("layers", "5"),
        &field("layer.5"),
        &["unexpected metadata key", "layer.0 to layer.4"],
    );
    assert_rejected(
        &meta("layer.05", "relu"),
        &field("layer.05"),
        &["unexpected metadata key"],
    );
    assert_rejected(&meta("note", "hi"), &field("note"), &["unexpected"]);
    // Input shape.
    for (v, needle) in [
        ("1,8", "\"C,H,W\""),
        ("1,8,8,1", "\"C,H,W\""),
        ("1;8;8", "\"C,H,W\""),
        ("0,8,8", "at least 1"),
        ("1,x,8", "H: expected a non-negative decimal integer"),
        ("65536,65536,1", "at most 268435456 values"),
    ] {
        assert_rejected(&meta("input", v), &field("input"), &[needle]);
    }
    // Arch: printable and short.
    assert_rejected(
        &meta("arch", "lenet\u{1b}[2J"),
        &field("arch"),
        &["control characters"],
    );
    assert_rejected(
        &meta("arch", &"x".repeat(300)),
        &field("arch"),
        &["at most 256 bytes", "..."],
    );
}

#[test]
fn invalid_specs_are_not_written() {
    // Without flatten and linear, the output is not flat logits.
    let mut spec = tiny();
    spec.layers.truncate(4);
    assert!(matches!(to_safetensors(&spec), Err(Error::Shape { .. })));
    let mut spec = tiny();
    spec.arch = "a\nb".into();
    assert!(to_safetensors(&spec).is_err());
    let dir = temp_dir("nowrite");
    let path = dir.join("bad.safetensors");
    assert!(save(&spec, &path).is_err());
    assert!(!path.exists());
    // An unwritable path is an I/O error naming it.
    let e = save(&tiny(), &dir.join("no-such-dir").join("m.safetensors")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("m.safetensors"), "{e}");
    fs::remove_dir_all(&dir).unwrap();
}

/// Unusual but valid files (large strides and padding, a kernel covering the whole
/// input, empty weight matrices, 1x1 pooling) load, build with every kernel choice and
/// run.
#[test]
fn unusual_valid_files_build_and_run() {
    let conv = |o: usize, c: usize, k: usize, stride: usize, pad: usize, nnz: usize| {
        let mut w = vec![0.0; o * c * k * k];
        w.iter_mut().step_by(3).take(nnz).for_each(|v| *v = 0.5);
        LayerSpec::Conv {
            w: Csr::from_dense(&w, o, c * k * k).unwrap(),
            in_channels: c,
            kh: k,
            kw: k,
            stride,
            pad,
            bias: vec![0.25; o],
            relu: true,
        }
    };
    let linear = |o: usize, i: usize, nnz: usize| {
        let mut w = vec![0.0; o * i];
        w.iter_mut().step_by(2).take(nnz).for_each(|v| *v = -1.0);
        LayerSpec::Linear {
            w: Csr::from_dense(&w, o, i).unwrap(),
            bias: vec![0.5; o],
            relu: false,
        }
    };
    let specs = [
        // [1,8,8] -> stride 5, pad 4: [2,3,3] -> pool 3/10: [2,1,1] -> [2] -> [3].
        vec![
            conv(2, 1, 3, 5, 4, 7),
            LayerSpec::MaxPool { k: 3, s: 10 },
            LayerSpec::Flatten,
            linear(3, 2, 2),
        ],
        // A kernel as large as the input: [2,1,1].
        vec![conv(2, 1, 8, 1, 0, 40), LayerSpec::Flatten, linear(3, 2, 3)],
        // No non-zero weights at all; 1x1 pooling; relu on its own.
        vec![
            conv(3, 1, 3, 1, 1, 0),
            LayerSpec::AvgPool { k: 1, s: 1 },
            LayerSpec::MaxPool { k: 1, s: 1 },
            LayerSpec::Relu,
            LayerSpec::Flatten,
            linear(2, 192, 0),
            LayerSpec::Relu,
        ],
        // Linear layers only.
        vec![LayerSpec::Flatten, linear(4, 64, 64), linear(1, 4, 1)],
    ];
    let dir = temp_dir("unusual");
    for (n, layers) in specs.into_iter().enumerate() {
        let spec = ModelSpec {
            arch: format!("unusual-{n}"),
            input: [1, 8, 8],
            layers,
        };
        let path = dir.join(format!("{n}.safetensors"));
        save(&spec, &path).unwrap();
        let back = load(&path).unwrap();
        assert_eq!(back, spec);
        for choice in [
            KernelChoice::Auto,
            KernelChoice::Sparse,
            KernelChoice::Dense,
        ] {
            let out = logits(&back, choice, 2, n as u64);
            assert!(out.iter().all(|v| v.is_finite()), "{n} {choice:?}");
        }
    }
    fs::remove_dir_all(&dir).unwrap();
}

// --- Robustness ---------------------------------------------------------------------

/// The byte range of tensor `name` in a file written by the safetensors writer (whose
/// header spells `"name":{"dtype":..,"shape":[..],"data_offsets":[begin,end]}`).
fn data_range(bytes: &[u8], name: &str) -> std::ops::Range<usize> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    let at = header.find(&format!("\"{name}\":{{")).unwrap();
    let offs = &header[at..];
    let offs = &offs[offs.find("\"data_offsets\":[").unwrap() + 16..];
    let offs = &offs[..offs.find(']').unwrap()];
    let (b, e) = offs.split_once(',').unwrap();
    8 + n + b.parse::<usize>().unwrap()..8 + n + e.parse::<usize>().unwrap()
}

/// Truncations and random corruptions of a real file: every load returns (never
/// panics), and every file that loads also builds and runs.
#[test]
fn corrupted_files_never_panic() {
    let mut model = Model::new(Arch::LenetAdv(1), 7);
    rcc_compress::prune_by_magnitude(&mut model, 0.9);
    let spec = ModelSpec::from_model(&model).unwrap();
    let bytes = to_safetensors(&spec).unwrap().to_bytes().unwrap();
    let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    // The integer tensors, where a corruption matters most.
    let mut ints = vec![];
    for (i, l) in spec.layers.iter().enumerate() {
        if l.weights().is_some() {
            for t in ["col_idx", "row_ptr"] {
                ints.push(data_range(&bytes, &format!("layer.{i}.{t}")));
            }
        }
    }
    let (mut ok, mut err) = (0usize, 0usize);
    let mut check = |b: &[u8]| match from_bytes(b) {
        Ok(spec) => {
            ok += 1;
            for choice in [KernelChoice::Auto, KernelChoice::Sparse] {
                let sm = SparseModel::build(&spec, choice).unwrap();
                let x = vec![0.5; sm.in_len()];
                let mut out = vec![0.0; sm.out_len()];
                sm.infer(&x, &mut out).unwrap();
            }
        }
        Err(e @ Error::File { .. }) => {
            assert!(e.to_string().starts_with("fuzz.safetensors: "), "{e}");
            err += 1;
        }
        Err(e) => panic!("unexpected error kind {e:?}"),
    };
    for len in (0..header_end + 64).chain((header_end + 64..bytes.len()).step_by(97)) {
        check(&bytes[..len]);
    }
    let mut rng = StdRng::seed_from_u64(42);
    for round in 0..4000 {
        let mut b = bytes.clone();
        let edits = 1 + rng.gen_range(0..3);
        for _ in 0..edits {
            // A third in the header, a third in the index arrays, a third anywhere.
            let pos = match round % 3 {
                0 => rng.gen_range(0..header_end),
                1 => {
                    let r = &ints[rng.gen_range(0..ints.len())];
                    rng.gen_range(r.clone())
                }
                _ => rng.gen_range(0..b.len()),
            };
            match rng.gen_range(0..4) {
                0 => b[pos] ^= 1 << rng.gen_range(0..8),
                1 => b[pos] = rng.gen(),
                2 => b[pos] = *b"0123456789,:[]{}\"-e ".get(rng.gen_range(0..20)).unwrap(),
                _ => b[pos] = b[pos].wrapping_add(1),
            }
        }
        if round % 10 == 0 {
            let keep = rng.gen_range(0..b.len());
            b.truncate(keep);
        }
        check(&b);
    }
    assert!(ok > 100 && err > 1000, "ok {ok}, err {err}");
}

fn from_bytes(bytes: &[u8]) -> Result<ModelSpec> {
    let path = Path::new("fuzz.safetensors");
    from_safetensors(&SafeTensors::parse(bytes, path)?, path)
}
