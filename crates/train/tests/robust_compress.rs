//! `examples/robust_compress.rs` at its small setting: the framework runs end to end
//! through this crate alone (skipped without the MNIST files).

#[path = "../examples/robust_compress.rs"]
#[allow(dead_code)]
mod example;

use std::path::{Path, PathBuf};

#[test]
fn the_example_runs_the_framework_through_rcc_train_alone() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = [root.join("datasets"), root.join("../shared/datasets")]
        .into_iter()
        .find(|d| d.join("mnist").exists());
    let Some(data) = data else {
        println!("skipped: MNIST not available");
        return;
    };
    let out: PathBuf = std::env::temp_dir().join(format!("rcc-example-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let s = example::run(&example::Options {
        data,
        out: out.clone(),
        quick: true,
    })
    .unwrap();
    // 16x exactly, a model that learned, and the whole protocol ran on it.
    assert_eq!(s.nnz, (s.prunable as f64 / 16.0).round() as usize);
    let d = &s.dense;
    assert!(d.clean > 0.5, "{d:?}");
    assert!(d.worst_aa <= d.pgd.min(d.apgd).min(d.square), "{d:?}");
    assert!(!d.transfer.is_nan() && !d.autoattack.is_nan(), "{d:?}");
    let report = std::fs::read_to_string(out.join("student").join("report.md")).unwrap();
    assert!(report.contains("AutoAttack") && report.contains("Per layer"));
    std::fs::remove_dir_all(&out).unwrap();
}
