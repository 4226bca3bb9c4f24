//! Hand-written compute kernels shared by the ops, with runtime CPU dispatch.
//!
//! The library is built for the baseline x86-64 target (SSE2), so one binary runs
//! everywhere. The innermost blocks of hot loops are written with explicit AVX-512 or
//! AVX2+FMA intrinsics (LLVM's auto-vectoriser picked the wrong loop for them), chosen at
//! run time by [`Isa::detect`]. Each has a plain-Rust twin that is the reference in tests
//! and the fallback elsewhere.

pub mod direct_conv;

/// The instruction set a kernel runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2Fma,
    Portable,
}

impl Isa {
    /// The best instruction set of this CPU (cached by the standard library).
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2Fma;
            }
        }
        Isa::Portable
    }
}
