//! The core's f32 FMA peak, measured: 12 independent AVX-512 (or AVX2) FMA chains, so the
//! loop is bound by FMA throughput, not latency. `cargo run --release --example peak_flops`.
use std::time::Instant;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_loop_avx512(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let a = _mm512_set1_ps(0.999_999);
    let b = _mm512_set1_ps(1e-7);
    let mut acc = [_mm512_set1_ps(1.0); 12];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, a, b);
        }
    }
    acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
}

fn main() {
    if !is_x86_feature_detected!("avx512f") {
        println!("no AVX-512 on this CPU");
        return;
    }
    let iters = 200_000_000 / 12;
    // SAFETY: AVX-512F is present (checked above).
    let warm = unsafe { fma_loop_avx512(iters / 10) };
    let t0 = Instant::now();
    // SAFETY: as above.
    let r = unsafe { fma_loop_avx512(iters) };
    let dt = t0.elapsed().as_secs_f64();
    let flops = (iters * 12 * 16 * 2) as f64;
    println!(
        "AVX-512 FMA peak, one core: {:.1} GFLOP/s (checksum {})",
        flops / dt / 1e9,
        r + warm
    );
}
