//! Every saved fuzz input (`fuzz/corpus/TARGET/*`: the seeds and the minimised queue of
//! the fuzzing runs) replayed through its target as an ordinary test: CI runs this, so a
//! change that makes any reader panic on an input the fuzzer once reached fails CI
//! without fuzzing. Crashes the fuzzer found are pinned by name in their crates' tests.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a readable corpus entry").path())
        .collect();
    files.sort();
    files
}

fn replay(target: &str) {
    let run = rcc_fuzz::target(target).expect("a known target");
    let files = corpus(target);
    assert!(
        files.iter().any(|f| f
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("seed-")),
        "{target}: the corpus has no seed (cargo run -p rcc-fuzz --bin rcc-fuzz-seeds)"
    );
    for f in &files {
        let bytes = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        if std::panic::catch_unwind(|| run(&bytes)).is_err() {
            panic!("{target}: {} makes the target panic", f.display());
        }
    }
}

#[test]
fn every_corpus_folder_is_a_target() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut folders: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    let mut names = rcc_fuzz::names();
    names.sort();
    assert_eq!(folders, names);
}

#[test]
fn replay_model() {
    replay("model");
}

#[test]
fn replay_checkpoint() {
    replay("checkpoint");
}

#[test]
fn replay_sparse() {
    replay("sparse");
}

#[test]
fn replay_idx() {
    replay("idx");
}

#[test]
fn replay_gzip() {
    replay("gzip");
}

#[test]
fn replay_cifar() {
    replay("cifar");
}

#[test]
fn replay_config() {
    replay("config");
}

#[test]
fn replay_json() {
    replay("json");
}

/// The seeds are real, valid files, so fuzzing starts deep in each reader.
#[test]
fn seeds_are_valid_files() {
    let seed = |t: &str, n: &str| {
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("corpus/{t}/seed-{n}")))
            .unwrap()
    };
    let p = Path::new("seed");
    for n in ["lenet_adv1", "lenet_adv1_f64"] {
        rcc_nn::Model::parse(&seed("model", n), p, None).unwrap();
    }
    let ck = rcc_nn::safetensors::SafeTensors::parse(&seed("checkpoint", "lenet_adv1_adam"), p);
    assert_eq!(ck.unwrap().metadata["format"], "rcc-checkpoint-v1");
    for n in ["lenet_adv1_50", "lenet_adv1_95"] {
        rcc_sparse::file::parse(&seed("sparse", n), p).unwrap();
    }
    rcc_data::idx::read_images(&seed("idx", "t10k_images_3"), p).unwrap();
    assert_eq!(
        rcc_data::idx::read_labels(&seed("idx", "t10k_labels_3"), p).unwrap(),
        [7, 2, 1]
    );
    rcc_data::gzip::decompress(&seed("gzip", "t10k_labels_official"), p).unwrap();
    rcc_data::gzip::decompress(&seed("gzip", "two_members"), p).unwrap();
    rcc_data::cifar::read_batch(&seed("cifar", "two_records"), p).unwrap();
    let mut cfg = rcc_train::config::TrainConfig::default();
    cfg.apply_text(std::str::from_utf8(&seed("config", "prox")).unwrap(), p)
        .unwrap();
    cfg.check().unwrap();
    rcc_nn::json::parse_json(std::str::from_utf8(&seed("json", "safetensors_header")).unwrap())
        .unwrap();
}
