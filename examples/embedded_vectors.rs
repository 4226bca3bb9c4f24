//! Inputs for the C export's harnesses (`embedded/`, `scripts/embedded-check.sh`).
//!
//! ```sh
//! cargo run --release --example embedded_vectors -- vectors --model FILE --out DIR \
//!     [--data datasets] [--n 1000] [--kernels auto|csr|dense] [--arch A] [--no-pgd]
//! cargo run --release --example embedded_vectors -- prune --arch A --sparsity S \
//!     --out FILE [--from FILE] [--seed N]
//! ```
//!
//! `vectors`: the first N MNIST test images and the sparse engine's logits for them
//! (`natural.in.f32`, `natural.logits.f32`), then PGD-40 as the run reports evaluate it
//! (eps 0.3, step 0.01, random start, 2 restarts, each image stopping at its first
//! misclassified iterate) crafted
//! by rcc against the same sparse model, and the engine's logits for those points
//! (`pgd.in.f32`, `pgd.logits.f32`); `labels.u8`. Raw little-endian f32, one sample after
//! another. The model file may be a dense model (converted as `cargo xtask export` does)
//! or a sparse model file. Prints the accuracies and how close the adversarial points sit
//! to the decision boundary (the smallest gap between the top two logits).
//!
//! `prune`: a model pruned by magnitude per layer as the sparse benches prune theirs
//! (`--from` a trained model, else seeded random weights `Model::new(arch, seed)`), saved
//! as a dense model file for `cargo xtask export --format c`.

use rand::rngs::StdRng;
use rand::SeedableRng;
use rcc::attack::{pgd, Norm, PgdConfig};
use rcc::data::{Dataset, DatasetKind, Split};
use rcc::nn::{Arch, Model};
use rcc::sparse::{file, KernelChoice, ModelSpec, SparseModel};
use rcc::tensor::Tensor;
use std::path::{Path, PathBuf};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

/// `--key value` pairs after the subcommand.
fn opt(args: &[String], key: &str) -> Option<String> {
    args.iter()
        .position(|a| a == key)
        .and_then(|i| args.get(i + 1).cloned())
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let need = |k: &str| opt(&args, k).ok_or(format!("{k} is required"));
    let arch = |a: Option<String>| -> Result<Option<Arch>, String> {
        a.map(|s| s.parse().map_err(|e| format!("--arch: {e}")))
            .transpose()
    };
    match args.first().map(String::as_str) {
        Some("vectors") => {
            let model = PathBuf::from(need("--model")?);
            let out = PathBuf::from(need("--out")?);
            let data = PathBuf::from(opt(&args, "--data").unwrap_or("datasets".into()));
            let n: usize = opt(&args, "--n")
                .unwrap_or("1000".into())
                .parse()
                .map_err(|e| format!("--n: {e}"))?;
            let choice = match opt(&args, "--kernels").as_deref() {
                None | Some("auto") => KernelChoice::Auto,
                Some("csr") => KernelChoice::Sparse,
                Some("dense") => KernelChoice::Dense,
                Some(o) => return Err(format!("--kernels: {o:?} (auto, csr or dense)")),
            };
            let pgd = !args.iter().any(|a| a == "--no-pgd");
            vectors(
                &model,
                arch(opt(&args, "--arch"))?,
                &data,
                n,
                choice,
                pgd,
                &out,
            )
        }
        Some("prune") => {
            let arch = arch(Some(need("--arch")?))?.unwrap();
            let sparsity: f64 = need("--sparsity")?
                .parse()
                .map_err(|e| format!("--sparsity: {e}"))?;
            let seed: u64 = opt(&args, "--seed")
                .unwrap_or("0".into())
                .parse()
                .map_err(|e| format!("--seed: {e}"))?;
            let mut m = match opt(&args, "--from") {
                Some(f) => Model::load(Path::new(&f), Some(arch)).map_err(|e| e.to_string())?,
                None => Model::new(arch, seed),
            };
            rcc::compress::prune_by_magnitude(&mut m, sparsity);
            let out = need("--out")?;
            m.save(Path::new(&out), &[]).map_err(|e| e.to_string())?;
            let spec = ModelSpec::from_model(&m).map_err(|e| e.to_string())?;
            let (total, nnz) = spec.weight_counts();
            println!("{arch} pruned to {sparsity}: {nnz} of {total} weights -> {out}");
            Ok(())
        }
        _ => Err("usage: embedded_vectors vectors|prune ... (see the file's docs)".into()),
    }
}

fn load_sparse(
    path: &Path,
    arch: Option<Arch>,
    choice: KernelChoice,
) -> Result<SparseModel, String> {
    let spec = match file::load(path) {
        Ok(spec) => spec,
        Err(_) => {
            let dense = Model::load(path, arch).map_err(|e| e.to_string())?;
            ModelSpec::from_model(&dense).map_err(|e| e.to_string())?
        }
    };
    SparseModel::build(&spec, choice).map_err(|e| e.to_string())
}

fn write_f32(path: &Path, v: &[f32]) -> Result<(), String> {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Fraction of rows whose argmax is the label, and the smallest top-two logit gap.
fn accuracy_and_margin(logits: &Tensor, labels: &[usize]) -> (f64, f32) {
    let k = logits.shape()[1];
    let mut margin = f32::INFINITY;
    for row in logits.data().chunks(k) {
        let mut s = row.to_vec();
        s.sort_by(|a, b| b.total_cmp(a));
        margin = margin.min(s[0] - s[1]);
    }
    let preds = logits.argmax_rows();
    let ok = preds.iter().zip(labels).filter(|(p, l)| p == l).count();
    (ok as f64 / labels.len() as f64, margin)
}

fn vectors(
    model: &Path,
    arch: Option<Arch>,
    data: &Path,
    n: usize,
    choice: KernelChoice,
    with_pgd: bool,
    out: &Path,
) -> Result<(), String> {
    let sm = load_sparse(model, arch, choice)?;
    let test = Dataset::load(DatasetKind::Mnist, Split::Test, data).map_err(|e| e.to_string())?;
    let n = n.min(test.len());
    let idx: Vec<usize> = (0..n).collect();
    let (x, labels) = test.batch(&idx, None);
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let logits = rcc::attack::Classifier::logits(&sm, &x).map_err(|e| e.to_string())?;
    write_f32(&out.join("natural.in.f32"), x.data())?;
    write_f32(&out.join("natural.logits.f32"), logits.data())?;
    let lab: Vec<u8> = labels.iter().map(|&l| l as u8).collect();
    std::fs::write(out.join("labels.u8"), lab).map_err(|e| e.to_string())?;
    let (acc, margin) = accuracy_and_margin(&logits, &labels);
    println!(
        "natural: {n} images, accuracy {:.2}%, smallest top-2 logit gap {margin:.3e}",
        100.0 * acc
    );
    // The engine's batch-1 latency on the same images, timed as the C harness times the
    // export (best of 5 passes, one thread), to set the two side by side.
    let (il, k) = (sm.in_len(), sm.out_len());
    let mut arena = sm.arena();
    let mut one = vec![0.0; k];
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t0 = std::time::Instant::now();
        for xs in x.data().chunks_exact(il) {
            sm.infer_with(&mut arena, xs, &mut one)
                .map_err(|e| e.to_string())?;
        }
        best = best.min(t0.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    println!("engine: {best:.2} us per inference (best of 5 passes over {n} images)");
    if !with_pgd {
        return Ok(());
    }
    let mut rng = StdRng::seed_from_u64(0);
    // The report's PGD-40: 2 restarts (xtask's pipeline::RESTARTS), evaluation form.
    let cfg = PgdConfig {
        restarts: 2,
        ..PgdConfig::mnist_eval()
    };
    let t0 = std::time::Instant::now();
    let o = pgd(&sm, &x, &labels, &cfg, Norm::Linf, true, &mut rng).map_err(|e| e.to_string())?;
    let adv_logits = rcc::attack::Classifier::logits(&sm, &o.adv).map_err(|e| e.to_string())?;
    write_f32(&out.join("pgd.in.f32"), o.adv.data())?;
    write_f32(&out.join("pgd.logits.f32"), adv_logits.data())?;
    let (acc, margin) = accuracy_and_margin(&adv_logits, &labels);
    println!(
        "pgd-40 (eps {}, step {}, {} restarts, stop at first misclassified iterate) on the \
         sparse model: robust accuracy {:.2}%, smallest top-2 logit gap {margin:.3e} ({:.1} s)",
        cfg.eps,
        cfg.step_size,
        cfg.restarts,
        100.0 * acc,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
