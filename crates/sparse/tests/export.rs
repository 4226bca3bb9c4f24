//! The checked export: a pruned dense model file to a sparse one and back.

use rcc_nn::{Arch, Model};
use rcc_sparse::export::{export, report, TOL};
use rcc_sparse::{file, KernelChoice, ModelSpec};
use std::path::PathBuf;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rcc-sparse-export-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn exports_pruned_lenet_adv_and_reloads_it() {
    let dir = temp_dir("lenet");
    let dense_path = dir.join("model.safetensors");
    let mut model = Model::new(Arch::LenetAdv(1), 5);
    rcc_compress::prune_by_magnitude(&mut model, 0.9);
    model.save(&dense_path, &[]).unwrap();
    let out = dir.join("sparse.safetensors");
    for choice in [
        KernelChoice::Auto,
        KernelChoice::Sparse,
        KernelChoice::Dense,
    ] {
        let e = export(&dense_path, None, &out, choice).unwrap();
        assert!(e.rel_err <= TOL && e.matches(), "{choice:?}: {}", e.rel_err);
        let back = file::load(&out).unwrap();
        assert_eq!(back, ModelSpec::from_model(&model).unwrap());
        assert_eq!(back, e.spec);
        assert_eq!(e.file_bytes, std::fs::metadata(&out).unwrap().len());
        let text = report(&e, &out);
        for needle in [
            "lenet_adv:1",
            "conv",
            "linear",
            "weight bytes",
            "match the dense",
        ] {
            assert!(text.contains(needle), "{needle:?} not in:\n{text}");
        }
        // About a tenth of the weights survive the pruning.
        let (total, nnz) = back.weight_counts();
        assert!(nnz * 8 < total && nnz * 12 > total, "{nnz} of {total}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_sparse_file_is_not_a_dense_model_file() {
    let dir = temp_dir("errors");
    let out = dir.join("out.safetensors");
    let mut model = Model::new(Arch::LenetAdv(1), 0);
    rcc_compress::prune_by_magnitude(&mut model, 0.5);
    file::save(&ModelSpec::from_model(&model).unwrap(), &out).unwrap();
    let Err(e) = export(&out, None, &dir.join("x.safetensors"), KernelChoice::Auto) else {
        panic!("a sparse file was read as a dense model");
    };
    assert!(e.to_string().contains("out.safetensors"), "{e}");
    let Err(e) = export(
        &dir.join("missing.safetensors"),
        None,
        &out,
        KernelChoice::Auto,
    ) else {
        panic!("a missing file was exported");
    };
    assert!(e.to_string().contains("missing.safetensors"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
