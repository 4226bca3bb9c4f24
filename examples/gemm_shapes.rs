//! GFLOP/s of sgemm at the shapes of the lenet5 training step:
//! `cargo run --release --example gemm_shapes`.
use rcc::tensor::gemm::{sgemm, Mat};
use std::time::Instant;

fn main() {
    // (name, m, k, n, transpose a, transpose b)
    let shapes = [
        ("conv2 fwd  W@cols", 50, 500, 8192, false, false),
        ("conv2 dW   dY@cols^T", 50, 8192, 500, false, true),
        ("conv2 dX   W^T@dY", 500, 50, 8192, true, false),
        ("conv1 fwd  W@cols", 20, 25, 73728, false, false),
        ("conv1 dW", 20, 73728, 25, false, true),
        ("fc1 fwd  x@W^T", 128, 800, 500, false, true),
        ("fc1 dW   dY^T@x", 500, 128, 800, true, false),
        ("fc1 dX   dY@W", 128, 500, 800, false, false),
    ];
    for (name, m, k, n, ta, tb) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.01).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.01).collect();
        let mut c = vec![0.0f32; m * n];
        let am = if ta {
            Mat::rm(&a, k, m).t()
        } else {
            Mat::rm(&a, m, k)
        };
        let bm = if tb {
            Mat::rm(&b, n, k).t()
        } else {
            Mat::rm(&b, k, n)
        };
        let reps = (2e9 / (2.0 * (m * k * n) as f64)).ceil() as usize;
        sgemm(1.0, am, bm, 0.0, &mut c, n);
        let t0 = Instant::now();
        for _ in 0..reps {
            sgemm(1.0, am, bm, 0.0, &mut c, n);
        }
        let dt = t0.elapsed().as_secs_f64() / reps as f64;
        println!(
            "{name:<24} {m:>6}x{k:>6}x{n:>6}  {:7.3} ms  {:6.1} GFLOP/s",
            dt * 1e3,
            2.0 * (m * k * n) as f64 / dt / 1e9
        );
    }
}
