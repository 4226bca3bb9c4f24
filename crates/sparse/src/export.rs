//! Converting a (pruned) dense model file into a sparse model file, checked: the file is
//! read back through the validating loader that a deployment uses, built with the chosen
//! kernels, and its logits are compared with the dense model's on seeded random inputs.
//!
//! Batch norm is folded into the preceding conv and each ReLU fused into the layer before
//! it ([`ModelSpec::from_model`]); the weights are stored exactly, as CSR.

use crate::{file, Error, KernelChoice, ModelSpec, Result, SparseModel};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rcc_nn::{Arch, Model};
use rcc_tensor::Tensor;
use std::fmt::Write as _;
use std::path::Path;

/// Largest accepted relative error of the sparse logits against the dense ones. The
/// kernels sum in a different order than the dense engine, so bit equality is not expected.
pub const TOL: f64 = 1e-4;

/// Inputs (and their seed) on which the exported model is compared with the dense one.
pub const CHECK_INPUTS: usize = 8;
const CHECK_SEED: u64 = 0;

/// What an export produced, for the report.
pub struct Exported {
    /// The spec as read back from the written file.
    pub spec: ModelSpec,
    pub model: SparseModel,
    pub choice: KernelChoice,
    pub file_bytes: u64,
    /// `max|sparse - dense| / max|dense|` over the checked logits.
    pub rel_err: f64,
}

impl Exported {
    /// Whether the logits matched the dense model's within [`TOL`].
    pub fn matches(&self) -> bool {
        self.rel_err <= TOL
    }
}

/// Converts `model_path` to a sparse file at `out`, reads it back, builds it with `choice`
/// and compares its logits with the dense model's. A mismatch is reported in
/// [`Exported::rel_err`], not as an error: the caller decides (the command line prints the
/// report and fails; the pipeline refuses to evaluate).
pub fn export(
    model_path: &Path,
    arch: Option<Arch>,
    out: &Path,
    choice: KernelChoice,
) -> Result<Exported> {
    let dense = Model::load(model_path, arch)?;
    let spec = ModelSpec::from_model(&dense).map_err(|e| Error::File {
        path: model_path.to_path_buf(),
        field: "model".into(),
        problem: format!("converting to sparse: {e}"),
    })?;
    file::save(&spec, out)?;
    // Everything below uses the file as written, through the loader a deployment uses.
    let spec = file::load(out)?;
    let file_bytes = std::fs::metadata(out)
        .map_err(|e| Error::Io {
            path: out.to_path_buf(),
            message: e.to_string(),
        })?
        .len();
    let model = SparseModel::build(&spec, choice)?;
    let rel_err = compare(&dense, &model)?;
    Ok(Exported {
        spec,
        model,
        choice,
        file_bytes,
        rel_err,
    })
}

/// `max|sparse - dense| / max|dense|` of the logits on [`CHECK_INPUTS`] seeded uniform
/// [0, 1) inputs; infinite if either side is not finite, so NaN fails the check.
pub fn compare(dense: &Model, sparse: &SparseModel) -> Result<f64> {
    let shape = dense.arch().input_shape();
    let len: usize = shape.iter().product();
    if sparse.in_len() != len {
        return Err(Error::Shape {
            what: "sparse model input".into(),
            expected: format!("{len} values (the dense model's)"),
            got: sparse.in_len().to_string(),
        });
    }
    let mut rng = StdRng::seed_from_u64(CHECK_SEED);
    let x: Vec<f32> = (0..CHECK_INPUTS * len).map(|_| rng.gen::<f32>()).collect();
    let mut dims = vec![CHECK_INPUTS];
    dims.extend_from_slice(&shape);
    let want = dense.infer(&Tensor::new(&dims, x.clone()).map_err(rcc_nn::Error::from)?)?;
    let mut got = vec![0.0; CHECK_INPUTS * sparse.out_len()];
    sparse.infer(&x, &mut got)?;
    if got.len() != want.data().len() {
        return Err(Error::Shape {
            what: "sparse model logits".into(),
            expected: format!("{} (the dense model's)", want.data().len()),
            got: got.len().to_string(),
        });
    }
    let scale = want
        .data()
        .iter()
        .fold(0f64, |m, &v| m.max(f64::from(v).abs()));
    let diff = got
        .iter()
        .zip(want.data())
        .fold(0f64, |m, (&a, &b)| m.max(f64::from(a - b).abs()));
    if !diff.is_finite() || !scale.is_finite() {
        return Ok(f64::INFINITY);
    }
    Ok(if scale > 0.0 { diff / scale } else { diff })
}

fn pct(part: usize, whole: usize) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * part as f64 / whole as f64)
    }
}

/// The per-layer table (kind, kernel, output shape, weights, non-zeros, density, weight
/// bytes) and the totals: weight bytes against dense, biases, the activation arena of one
/// inference, the file size and the logit check.
pub fn report(e: &Exported, out: &Path) -> String {
    let sm = &e.model;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} -> {} (kernels {})",
        e.spec.arch,
        out.display(),
        match e.choice {
            KernelChoice::Auto => "auto",
            KernelChoice::Sparse => "csr",
            KernelChoice::Dense => "dense",
        }
    );
    let _ = writeln!(
        s,
        "{:>5}  {:<9} {:<7} {:<14} {:>10} {:>10} {:>8} {:>13}",
        "layer", "kind", "kernel", "out shape", "weights", "nnz", "density", "weight bytes"
    );
    for (i, l) in sm.layers().iter().enumerate() {
        let has_weights = l.weights > 0;
        let num = |v: usize| {
            if has_weights {
                v.to_string()
            } else {
                String::new()
            }
        };
        let _ = writeln!(
            s,
            "{i:>5}  {:<9} {:<7} {:<14} {:>10} {:>10} {:>8} {:>13}",
            l.kind,
            l.kernel,
            format!("{:?}", l.out_shape),
            num(l.weights),
            num(l.nnz),
            if has_weights {
                pct(l.nnz, l.weights)
            } else {
                String::new()
            },
            num(l.weight_bytes),
        );
    }
    let (total, nnz) = e.spec.weight_counts();
    let dense = sm.dense_weight_bytes();
    let csr: usize = e
        .spec
        .layers
        .iter()
        .filter_map(|l| l.weights())
        .map(|w| w.bytes())
        .sum();
    let _ = writeln!(
        s,
        "weights: {nnz} of {total} non-zero ({} dense)",
        pct(nnz, total)
    );
    let _ = writeln!(
        s,
        "weight bytes: {} as built ({} of dense), {csr} as CSR in the file ({} of dense), \
         {dense} dense",
        sm.weight_bytes(),
        pct(sm.weight_bytes(), dense),
        pct(csr, dense)
    );
    let _ = writeln!(s, "bias bytes: {}", sm.bias_bytes());
    let _ = writeln!(s, "activation arena: {} bytes", sm.arena_bytes());
    let _ = writeln!(s, "file: {} bytes", e.file_bytes);
    let verdict = if e.matches() { "match" } else { "DO NOT match" };
    let _ = writeln!(
        s,
        "logits {verdict} the dense model: relative error {:.2e} (tolerance {TOL:.0e}) on \
         {CHECK_INPUTS} seeded random inputs",
        e.rel_err
    );
    s
}
