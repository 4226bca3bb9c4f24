//! Where CSR starts to beat dense, per layer: batch-1 single-thread time of the sparse and
//! dense kernels of each conv and linear layer of lenet5, lenet_adv:4 and vgg16:4 at
//! densities from 60% down to 20%, with random weights pruned at random positions.
//! `cargo run --release -p rcc-sparse --example crossover`; the crossover constants in
//! `model.rs` come from its output.

use rcc_sparse::dense::{DenseConv, DenseLinear};
use rcc_sparse::{SparseConv, SparseLinear};
use std::time::Instant;

fn time(mut f: impl FnMut()) -> f64 {
    let reps = 100;
    for _ in 0..reps {
        f();
    }
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() / reps as f64 * 1e6
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[2]
}

fn values(n: usize, density: f64, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            if u < density {
                (u / density - 0.5) as f32
            } else {
                0.0
            }
        })
        .collect()
}

const DENSITIES: [f64; 9] = [0.6, 0.55, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2];
const LINEAR_DENSITIES: [f64; 9] = [1.0, 0.9, 0.8, 0.75, 0.7, 0.65, 0.6, 0.5, 0.4];

fn main() {
    // (name, O, [C, H, W], K, pad)
    let convs = [
        ("lenet5.conv1", 20, [1, 28, 28], 5, 0),
        ("lenet5.conv2", 50, [20, 12, 12], 5, 0),
        ("lenet_adv4.conv1", 8, [1, 28, 28], 5, 2),
        ("lenet_adv4.conv2", 16, [8, 14, 14], 5, 2),
        ("vgg16w4.conv1", 16, [3, 32, 32], 3, 1),
        ("vgg16w4.conv4", 32, [32, 16, 16], 3, 1),
        ("vgg16w4.conv7", 64, [64, 8, 8], 3, 1),
        ("vgg16w4.conv10", 128, [128, 4, 4], 3, 1),
        ("vgg16w4.conv13", 128, [128, 2, 2], 3, 1),
    ];
    println!("layer: sparse/dense time ratio at density {DENSITIES:?}");
    for (name, o, input, k, pad) in convs {
        let [c, h, w] = input;
        let x = values(c * h * w, 1.0, 1);
        let b = values(o, 1.0, 2);
        let ratios: Vec<String> = DENSITIES
            .iter()
            .map(|&d| {
                let wv = values(o * c * k * k, d, 3);
                let sc = SparseConv::from_dense(&wv, [o, c, k, k], input, Some(&b), 1, pad, true)
                    .unwrap();
                let dc = DenseConv::new(&wv, o, input, k, k, pad, b.clone(), true).unwrap();
                let mut xp = vec![0.0; sc.xp_len().max(dc.xp_len())];
                let mut g = vec![0.0; sc.grid_len()];
                let mut y = vec![0.0; sc.out_len()];
                let ts = time(|| sc.forward(&x, &mut xp, &mut g, &mut y));
                let td = time(|| dc.forward(&x, &mut xp, &mut y));
                format!("{:.2}", ts / td)
            })
            .collect();
        println!("{name}: {}", ratios.join(" "));
    }
    println!("linear layers at density {LINEAR_DENSITIES:?}");
    for (name, fout, fin) in [
        ("lenet5.fc1", 500, 800),
        ("lenet5.fc2", 10, 500),
        ("lenet_adv4.fc1", 256, 784),
        ("vgg16w4.fc", 10, 128),
        ("mlp.fc1", 300, 784),
    ] {
        let x = values(fin, 1.0, 1);
        let b = values(fout, 1.0, 2);
        let ratios: Vec<String> = LINEAR_DENSITIES
            .iter()
            .map(|&d| {
                let wv = values(fout * fin, d, 3);
                let sl = SparseLinear::from_dense(&wv, fout, fin, Some(&b), true).unwrap();
                let dl = DenseLinear::new(wv, fout, fin, b.clone(), true).unwrap();
                let mut y = vec![0.0; fout];
                let ts = time(|| sl.forward(&x, &mut y));
                let td = time(|| dl.forward(&x, &mut y));
                format!("{:.2}", ts / td)
            })
            .collect();
        println!("{name}: {}", ratios.join(" "));
    }
}
