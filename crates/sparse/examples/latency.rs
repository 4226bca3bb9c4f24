//! Rough batch-1 latency at several magnitude-pruning levels: the training engine's dense
//! inference (1 thread), this crate's dense kernels, the per-layer choice and CSR only.
//! `cargo run --release -p rcc-sparse --example latency [arch ...]` (a quick look; the
//! figures of record come from `cargo bench --bench sparse`).

use rcc_nn::{Arch, Model};
use rcc_sparse::{KernelChoice, ModelSpec, SparseModel};
use rcc_tensor::Tensor;
use std::time::Instant;

/// Median of 7 runs of the mean over `reps` calls, in microseconds.
fn time(mut f: impl FnMut()) -> f64 {
    let reps = 200;
    for _ in 0..reps {
        f();
    }
    let mut runs: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() / reps as f64 * 1e6
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[3]
}

fn main() {
    let pool = rcc_tensor::threads::pool(1).unwrap();
    let archs: Vec<Arch> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let archs = if archs.is_empty() {
        vec![Arch::Lenet5, Arch::LenetAdv(4), Arch::Vgg16(4)]
    } else {
        archs
    };
    for arch in archs {
        let [c, h, w] = arch.input_shape();
        let x: Vec<f32> = (0..c * h * w).map(|i| (i % 17) as f32 / 17.0).collect();
        let xt = Tensor::new(&[1, c, h, w], x.clone()).unwrap();
        for s in [0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99] {
            let mut m = Model::new(arch, 1);
            rcc_compress::prune_by_magnitude(&mut m, s);
            let spec = ModelSpec::from_model(&m).unwrap();
            let engine = pool.install(|| time(|| drop(m.infer(&xt).unwrap())));
            let mut out = vec![0.0; 10];
            let mut t = [0.0; 3];
            let mut auto = None;
            for (i, choice) in [
                KernelChoice::Dense,
                KernelChoice::Auto,
                KernelChoice::Sparse,
            ]
            .into_iter()
            .enumerate()
            {
                let sm = SparseModel::build(&spec, choice).unwrap();
                t[i] = time(|| sm.infer(&x, &mut out).unwrap());
                if choice == KernelChoice::Auto {
                    auto = Some(sm);
                }
            }
            let sm = auto.unwrap();
            println!(
                "{arch} s{:>2}: engine {engine:6.1} us  dense {:6.1}  auto {:6.1}  csr {:6.1} us  auto/dense {:5.2}x  MMAC {:.3}  bytes {:.1}%  arena {} B",
                (s * 100.0) as u32,
                t[0],
                t[1],
                t[2],
                t[0] / t[1],
                sm.macs() as f64 / 1e6,
                100.0 * sm.weight_bytes() as f64 / sm.dense_weight_bytes() as f64,
                sm.arena_bytes()
            );
        }
    }
}
