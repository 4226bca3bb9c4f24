//! Sparse inference benches (issue 5): batch-1, single-thread latency of pruned networks
//! on the rcc-sparse engine, against its own dense kernels and the training engine.
//!
//! Ids (criterion group / id):
//!
//! - `sparse_inference/{arch}/{format}/s{sparsity}`: one sample through the whole network,
//!   arch `lenet5`, `lenet_adv4` (28x28x1 input) or `vgg16w4` (32x32x3), sparsity 0, 50,
//!   80, 90, 95, 98, 99 (% of every conv and linear weight tensor zeroed by magnitude).
//!   Format:
//!   - `dense`: [`KernelChoice::Dense`], the sparse crate's dense fallback kernels;
//!   - `csr`: [`KernelChoice::Auto`], the deployed model (CSR where the layer's density is
//!     below the measured crossover, dense elsewhere);
//!   - `csr-only`: [`KernelChoice::Sparse`], CSR in every layer, to show what the
//!     crossover buys;
//!   - `engine` (s0 only): the dense training engine's `Model::infer` on a `[1, C, H, W]`
//!     tensor in a 1-thread pool, for reference.
//! - `sparse_layer/lenet5.{conv2,fc1}/{dense,csr}/s{sparsity}`: the largest convolution
//!   (`[50, 20, 5, 5]` on `[20, 12, 12]`, bias and ReLU) and linear layer (`[500, 800]`,
//!   bias and ReLU) of lenet5 alone: `DenseConv` / `DenseLinear` against `SparseConv` /
//!   `SparseLinear`.
//!
//! Batch 1 and one thread everywhere (the sparse engine is single-threaded; the training
//! engine runs in `threads::pool(1)`), so the ids carry no `/b1/t1`.
//!
//! Throughput is in FLOPs actually executed (2 x the multiply-adds the chosen kernels run:
//! CSR layers count their non-zeros only), so criterion's "elem/s" reads as FLOP/s.
//!
//! Weights: seeded random ones (`Model::new(arch, 0)`, PyTorch's default initialisation),
//! or, when `$RCC_BENCH_MODELS` names a directory holding `{arch}.safetensors` (e.g.
//! `lenet5.safetensors`), that trained model; the choice is printed once per arch to
//! stderr. Either is pruned per layer by magnitude: the `round(sparsity * len)`
//! smallest-|w| entries of each conv and linear weight tensor are zeroed (biases kept).
//! `cargo xtask bench-report` rebuilds exactly these models (same pruning, same
//! `$RCC_BENCH_MODELS`) to turn the results into a table and a plot.
//!
//! Run: `cargo bench --bench sparse` (94 benches at 1 s warm-up + 2 s measurement each:
//! about 5-6 minutes); filter e.g. `cargo bench --bench sparse -- sparse_inference/lenet5/`;
//! smoke test `cargo bench --bench sparse -- --test`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rcc::nn::{Arch, Model};
use rcc::sparse::dense::{DenseConv, DenseLinear};
use rcc::sparse::{KernelChoice, ModelSpec, SparseConv, SparseLinear, SparseModel};
use rcc::tensor::{threads, Tensor};
use std::path::PathBuf;
use std::time::Duration;

use rcc::sparse::bench_matrix::{ARCHS, FORMATS, SPARSITIES};

/// The unpruned model of `arch`: `$RCC_BENCH_MODELS/{id}.safetensors` when present, else
/// seeded random weights. Says which on stderr.
fn base_model(id: &str, arch: Arch) -> Model {
    if let Some(dir) = std::env::var_os("RCC_BENCH_MODELS") {
        let path = PathBuf::from(dir).join(format!("{id}.safetensors"));
        if path.is_file() {
            let m = Model::load(&path, Some(arch))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            eprintln!(
                "sparse bench: {id}: trained weights from {}",
                path.display()
            );
            return m;
        }
    }
    eprintln!("sparse bench: {id}: seeded random weights (Model::new({arch}, 0))");
    Model::new(arch, 0)
}

fn pruned(base: &Model, percent: u32) -> Model {
    let mut m = base.clone();
    rcc::compress::prune_by_magnitude(&mut m, percent as f64 / 100.0);
    m
}

/// A seeded input in [0, 1).
fn input(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    Tensor::rand_uniform(shape, 0.0, 1.0, &mut rng)
}

mod inference {
    use super::*;

    pub fn bench(c: &mut Criterion) {
        let pool = threads::pool(1).unwrap();
        for (id, arch) in ARCHS {
            let base = base_model(id, arch);
            let [ci, h, w] = arch.input_shape();
            let x = input(&[1, ci, h, w], 1);
            let mut grp = c.benchmark_group("sparse_inference");
            for s in SPARSITIES {
                let m = pruned(&base, s);
                let spec = ModelSpec::from_model(&m).unwrap();
                if s == 0 {
                    // The training engine: same FLOPs as the dense kernels.
                    let dense = SparseModel::build(&spec, KernelChoice::Dense).unwrap();
                    grp.throughput(Throughput::Elements(2 * dense.macs() as u64));
                    grp.bench_function(
                        BenchmarkId::from_parameter(format!("{id}/engine/s0")),
                        |b| pool.install(|| b.iter(|| m.infer(&x).unwrap())),
                    );
                }
                for (format, choice) in FORMATS {
                    let sm = SparseModel::build(&spec, choice).unwrap();
                    let mut out = vec![0.0; sm.out_len()];
                    grp.throughput(Throughput::Elements(2 * sm.macs() as u64));
                    grp.bench_function(
                        BenchmarkId::from_parameter(format!("{id}/{format}/s{s}")),
                        |b| b.iter(|| sm.infer(x.data(), &mut out).unwrap()),
                    );
                }
            }
            grp.finish();
        }
    }
}

mod layer {
    use super::*;

    /// `(values, shape)` of the parameter `name` of `m`.
    fn param<'a>(m: &'a Model, name: &str) -> (&'a [f32], &'a [usize]) {
        let v = m.net.params.find(name).unwrap();
        (&m.params[v.range()], &v.shape)
    }

    pub fn bench(c: &mut Criterion) {
        let base = base_model("lenet5", Arch::Lenet5);
        // conv2: [50, 20, 5, 5] on [20, 12, 12], no padding, stride 1, bias and ReLU.
        let xc = input(&[20, 12, 12], 2);
        // fc1: [500, 800], bias and ReLU.
        let xl = input(&[800], 3);
        let mut grp = c.benchmark_group("sparse_layer");
        for s in SPARSITIES {
            let m = pruned(&base, s);

            let (w, ws) = param(&m, "conv2.weight");
            let (bias, _) = param(&m, "conv2.bias");
            let [o, ci, kh, kw] = [ws[0], ws[1], ws[2], ws[3]];
            let dc = DenseConv::new(w, o, [ci, 12, 12], kh, kw, 0, bias.to_vec(), true).unwrap();
            let sc =
                SparseConv::from_dense(w, [o, ci, kh, kw], [ci, 12, 12], Some(bias), 1, 0, true)
                    .unwrap();
            let positions = sc.oh * sc.ow;
            let mut y = vec![0.0; sc.out_len()];
            let mut xp = vec![0.0; dc.xp_len()];
            grp.throughput(Throughput::Elements(2 * (w.len() * positions) as u64));
            grp.bench_function(
                BenchmarkId::from_parameter(format!("lenet5.conv2/dense/s{s}")),
                |b| b.iter(|| dc.forward(xc.data(), &mut xp, &mut y)),
            );
            let (mut xp, mut g) = (vec![0.0; sc.xp_len()], vec![0.0; sc.grid_len()]);
            grp.throughput(Throughput::Elements(2 * sc.macs() as u64));
            grp.bench_function(
                BenchmarkId::from_parameter(format!("lenet5.conv2/csr/s{s}")),
                |b| b.iter(|| sc.forward(xc.data(), &mut xp, &mut g, &mut y)),
            );

            let (w, ws) = param(&m, "fc1.weight");
            let (bias, _) = param(&m, "fc1.bias");
            let (fout, fin) = (ws[0], ws[1]);
            let dl = DenseLinear::new(w.to_vec(), fout, fin, bias.to_vec(), true).unwrap();
            let sl = SparseLinear::from_dense(w, fout, fin, Some(bias), true).unwrap();
            let mut y = vec![0.0; fout];
            grp.throughput(Throughput::Elements(2 * w.len() as u64));
            grp.bench_function(
                BenchmarkId::from_parameter(format!("lenet5.fc1/dense/s{s}")),
                |b| b.iter(|| dl.forward(xl.data(), &mut y)),
            );
            grp.throughput(Throughput::Elements(2 * sl.macs() as u64));
            grp.bench_function(
                BenchmarkId::from_parameter(format!("lenet5.fc1/csr/s{s}")),
                |b| b.iter(|| sl.forward(xl.data(), &mut y)),
            );
        }
        grp.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2)).sample_size(30);
    targets = inference::bench, layer::bench
}
criterion_main!(benches);
