//! Fuzz targets, one per reader of a file that rcc accepts from outside: the model file,
//! the training checkpoint, the sparse model file, IDX (raw or gzip), the gzip
//! inflater, the CIFAR-10 batch, the `key = value` config and the JSON parser.
//!
//! A target takes any bytes and must neither panic nor hang. Where the parse succeeds it
//! also runs what a successful parse feeds (a model that loads runs one inference, a
//! sparse model that loads is built, run and exported to C, a dataset builds a batch), so
//! a file that passes validation cannot make a later stage read out of bounds. Where a
//! reader has a writer, the target checks that writing what was read and reading it back
//! gives the same thing: a failed check panics, which the fuzzer reports as a crash.
//!
//! The harness (`src/bin/rcc-fuzz.rs`) runs a target under AFL++ (`scripts/fuzz.sh`);
//! `tests/replay.rs` runs every input of `corpus/TARGET/` through its target as an
//! ordinary test, so CI replays the corpora without fuzzing.

use rcc_data::{gzip, idx, Dataset, DatasetKind};
use rcc_nn::json::parse_json;
use rcc_nn::safetensors::SafeTensors;
use rcc_nn::{checkpoint, Adam, Model, Optimizer};
use rcc_sparse::c_export::{self, COptions};
use rcc_sparse::{file, KernelChoice, SparseModel};
use rcc_tensor::Tensor;
use rcc_train::config::{TrainConfig, KEYS};
use std::path::Path;

/// A fuzz target: any bytes in, no panic out.
pub type Target = fn(&[u8]);

/// Every target by name (the name is the corpus folder's and `scripts/fuzz.sh`'s).
pub const TARGETS: [(&str, Target); 8] = [
    ("model", model),
    ("checkpoint", checkpoint),
    ("sparse", sparse),
    ("idx", idx),
    ("gzip", gzip),
    ("cifar", cifar),
    ("config", config),
    ("json", json),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// The targets' names.
pub fn names() -> Vec<&'static str> {
    TARGETS.iter().map(|(n, _)| *n).collect()
}

/// The output cap of the inflater in these targets: 64 MiB, so a gzip bomb costs the
/// fuzzer a bounded amount of memory (the readers' own cap is 1 GiB).
const GZIP_LIMIT: usize = 1 << 26;

fn path() -> &'static Path {
    Path::new("fuzz-input")
}

/// The model file reader (`Model::load`), then one inference on a zero image, then a
/// write and re-read that must give the same parameters bit for bit.
pub fn model(data: &[u8]) {
    let Ok(m) = Model::parse(data, path(), None) else {
        return;
    };
    infer_once(&m);
    let bytes = m
        .to_safetensors(&[])
        .and_then(|st| st.to_bytes())
        .expect("a model that loaded can be written");
    let back = Model::parse(&bytes, path(), Some(m.arch())).expect("a written model reads back");
    assert!(bits(&back.params) == bits(&m.params) && bits(&back.buffers) == bits(&m.buffers));
}

fn infer_once(m: &Model) {
    let [c, h, w] = m.arch().input_shape();
    let logits = m
        .infer(&Tensor::zeros(&[1, c, h, w]))
        .expect("a model that loaded runs on an input of its shape");
    assert_eq!(logits.shape(), [1, m.arch().num_classes()]);
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The checkpoint reader (`checkpoint::restore`, as `--resume` uses it) into a model and
/// an Adam optimiser of the arch its metadata names; a checkpoint that loads then runs
/// one inference.
pub fn checkpoint(data: &[u8]) {
    let Ok(st) = SafeTensors::parse(data, path()) else {
        return;
    };
    let Some(Ok(arch)) = st.metadata.get("arch").map(|a| a.parse()) else {
        return;
    };
    // The trainer builds the model and optimiser from its config before it reads the
    // checkpoint; here the file's own parameters stand in for the config's init.
    let Ok(mut m) = Model::from_safetensors(&st, path(), arch, false) else {
        return;
    };
    let n = m.params.len();
    let mut opt = Optimizer::Adam(Adam::new(n, 0.9, 0.999, 1e-8, 0.0).expect("valid Adam"));
    let before = (
        bits(&m.params),
        opt.state().iter().map(|(_, s)| bits(s)).collect::<Vec<_>>(),
    );
    match checkpoint::restore(&st, path(), &mut m, &mut opt) {
        Ok(_) => infer_once(&m),
        Err(_) => {
            // A checkpoint that fails leaves the model and optimiser as they were.
            let after = (
                bits(&m.params),
                opt.state().iter().map(|(_, s)| bits(s)).collect(),
            );
            assert!(
                before == after,
                "a failed restore changed the model or optimiser"
            );
        }
    }
}

/// The sparse model file reader (`rcc_sparse::file::load`), then the engine built with
/// each kernel choice and run once, then the C export, then a write and re-read that
/// must give the same logits.
pub fn sparse(data: &[u8]) {
    let Ok(spec) = file::parse(data, path()) else {
        return;
    };
    let x = vec![0.5f32; spec.input.iter().product()];
    let mut first: Option<Vec<f32>> = None;
    for choice in [
        KernelChoice::Auto,
        KernelChoice::Sparse,
        KernelChoice::Dense,
    ] {
        let Ok(model) = SparseModel::build(&spec, choice) else {
            continue;
        };
        let mut out = vec![0.0f32; model.out_len()];
        model
            .infer(&x, &mut out)
            .expect("a built sparse model runs on an input of its shape");
        first.get_or_insert(out);
    }
    let opts = COptions {
        name: "fuzz".into(),
        choice: KernelChoice::Auto,
        notes: vec![],
    };
    let _ = c_export::export(&spec, &opts);
    let st = file::to_safetensors(&spec).expect("a spec that loaded can be written");
    let bytes = st.to_bytes().expect("a spec that loaded can be written");
    let back = file::parse(&bytes, path()).expect("a written sparse model reads back");
    if let (Some(a), Ok(model)) = (first, SparseModel::build(&back, KernelChoice::Auto)) {
        let mut b = vec![0.0f32; model.out_len()];
        model.infer(&x, &mut b).expect("the re-read model runs");
        assert!(
            bits(&a) == bits(&b),
            "a written and re-read sparse model computes otherwise"
        );
    }
}

/// One IDX file, raw or gzip-compressed (as `Dataset::load` accepts them), read as
/// MNIST's images or labels by its magic number and paired with a valid file of the
/// other kind; a dataset that loads then makes a batch of its first images.
pub fn idx(data: &[u8]) {
    let bytes = if data.starts_with(&[0x1f, 0x8b]) {
        match gzip::decompress_with_limit(data, path(), GZIP_LIMIT) {
            Ok(b) => b,
            Err(_) => return,
        }
    } else {
        data.to_vec()
    };
    let magic = bytes
        .get(..4)
        .map(|m| u32::from_be_bytes([m[0], m[1], m[2], m[3]]));
    let (images, labels) = match magic {
        Some(idx::IMAGES_MAGIC) => {
            let Ok((n, _, _, _)) = idx::read_images(&bytes, path()) else {
                return;
            };
            // `n` is bounded by the file: read_images checked n * rows * cols bytes.
            (bytes, idx_labels(n))
        }
        Some(idx::LABELS_MAGIC) => {
            let Ok(labels) = idx::read_labels(&bytes, path()) else {
                return;
            };
            // The matching image file is 784 times the labels' size: past MNIST's
            // 70,000 images the dataset stage would only test the fuzzer's memory.
            if labels.len() > 70_000 {
                return;
            }
            (idx_images(labels.len()), bytes)
        }
        _ => {
            // Neither magic: both readers must still refuse it cleanly.
            assert!(idx::read_images(&bytes, path()).is_err());
            assert!(idx::read_labels(&bytes, path()).is_err());
            return;
        }
    };
    // CIFAR-10 is refused before any copy (IDX holds one channel); MNIST is built.
    assert!(Dataset::from_idx(
        DatasetKind::Cifar10,
        (path().into(), vec![]),
        (path().into(), vec![])
    )
    .is_err());
    let Ok(ds) = Dataset::from_idx(
        DatasetKind::Mnist,
        (path().into(), images),
        (path().into(), labels),
    ) else {
        return;
    };
    let first: Vec<usize> = (0..ds.len().min(4)).collect();
    let (x, y) = ds.batch(&first, None);
    assert_eq!(x.shape()[0], y.len());
}

fn idx_labels(n: usize) -> Vec<u8> {
    let mut b = idx::LABELS_MAGIC.to_be_bytes().to_vec();
    b.extend_from_slice(&(n as u32).to_be_bytes());
    b.resize(8 + n, 3);
    b
}

fn idx_images(n: usize) -> Vec<u8> {
    let mut b = idx::IMAGES_MAGIC.to_be_bytes().to_vec();
    for d in [n as u32, 28, 28] {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.resize(16 + n * 784, 0);
    b
}

/// The gzip inflater (every member's CRC-32 and ISIZE checked), output capped.
pub fn gzip(data: &[u8]) {
    if let Ok(out) = gzip::decompress_with_limit(data, path(), GZIP_LIMIT) {
        assert!(out.len() <= GZIP_LIMIT);
    }
}

/// The CIFAR-10 batch reader, then the class-name reader on the same bytes as text.
pub fn cifar(data: &[u8]) {
    if let Ok((images, labels)) = rcc_data::cifar::read_batch(data, path()) {
        assert_eq!(images.len(), labels.len() * 3072);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = rcc_data::cifar::read_meta(text);
    }
}

/// The `key = value` config reader (`--config`) and its checks, and the round trip of
/// every setting through `get` and `set`; the run summary reader on the same text.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = rcc_train::report::Summary::parse(text);
    let mut cfg = TrainConfig::default();
    if cfg.apply_text(text, path()).is_err() {
        return;
    }
    let _ = cfg.check();
    let mut again = TrainConfig::default();
    for key in KEYS {
        let v = cfg.get(key).expect("every key in KEYS has a value");
        again
            .set(key, &v)
            .unwrap_or_else(|e| panic!("{key} = {v:?} was read, but setting it again fails: {e}"));
        assert_eq!(
            again.get(key).as_deref(),
            Some(v.as_str()),
            "{key} round trip"
        );
    }
}

/// The JSON parser: what parses prints and parses back to the same value; the metrics
/// line reader on the same text, whose own round trip must be stable.
pub fn json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(v) = parse_json(text) {
        let printed = v.to_string();
        let back = parse_json(&printed).expect("printed JSON parses");
        assert_eq!(back, v, "JSON round trip");
    }
    if let Ok(m) = rcc_train::metrics::EpochMetrics::from_json(text) {
        let line = m.to_json();
        let again = rcc_train::metrics::EpochMetrics::from_json(&line)
            .expect("a written metrics line reads back");
        assert_eq!(again.to_json(), line, "metrics line round trip");
    }
}
