//! Rough batch-1 latency of lenet5: dense engine (1 thread) vs the sparse model, at
//! several magnitude-pruning levels. `cargo run --release -p rcc-sparse --example latency`
//! (criterion benches are still to come; this is a quick look.)

use rcc_nn::layers::Layer;
use rcc_nn::{Arch, Model};
use rcc_sparse::SparseModel;
use rcc_tensor::Tensor;
use std::time::Instant;

fn prune(model: &mut Model, sparsity: f64) {
    for l in model.net.layers.clone() {
        if let Layer::Conv2d { weight, .. } | Layer::Linear { weight, .. } = l {
            let w = &mut model.params[model.net.params.view(weight).range()];
            let mut order: Vec<usize> = (0..w.len()).collect();
            order.sort_by(|&a, &b| w[a].abs().total_cmp(&w[b].abs()));
            let k = (w.len() as f64 * sparsity).round() as usize;
            order[..k].iter().for_each(|&i| w[i] = 0.0);
        }
    }
}

fn time(mut f: impl FnMut()) -> f64 {
    for _ in 0..20 {
        f();
    }
    let reps = 300;
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    t.elapsed().as_secs_f64() / reps as f64 * 1e6
}

fn main() {
    let pool = rcc_tensor::threads::pool(1).unwrap();
    let x: Vec<f32> = (0..784).map(|i| (i % 17) as f32 / 17.0).collect();
    for arch in [Arch::Lenet5, Arch::LenetAdv(4)] {
        for s in [0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99] {
            let mut m = Model::new(arch, 1);
            prune(&mut m, s);
            let sm = SparseModel::from_model(&m).unwrap();
            let xt = Tensor::new(&[1, 1, 28, 28], x.clone()).unwrap();
            let dense = pool.install(|| time(|| drop(m.infer(&xt).unwrap())));
            let mut out = vec![0.0; 10];
            let sparse = time(|| sm.infer(&x, &mut out).unwrap());
            println!(
                "{arch} s{:>2}: dense {dense:7.1} us  csr {sparse:7.1} us  speedup {:5.2}x  MMAC {:.3}  bytes {:.1}%",
                (s * 100.0) as u32,
                dense / sparse,
                sm.macs() as f64 / 1e6,
                100.0 * sm.weight_bytes() as f64 / sm.dense_weight_bytes() as f64
            );
        }
    }
}
