//! Hand-written compute kernels shared by the ops, with runtime CPU dispatch.
//!
//! The library is built for the baseline x86-64 target (SSE2), so one binary runs
//! everywhere. The innermost blocks of hot loops are written with explicit AVX-512 or
//! AVX2+FMA intrinsics (LLVM's auto-vectoriser picked the wrong loop for them), chosen at
//! run time by [`Isa::detect`]. Each has a plain-Rust twin that is the reference in tests
//! and the fallback elsewhere.

pub mod direct_conv;

/// The instruction sets the kernels are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsaKind {
    Avx512,
    Avx2Fma,
    Portable,
}

/// The instruction set a kernel runs with. Its field is private: only [`Isa::detect`],
/// [`Isa::supported`] and [`Isa::PORTABLE`] make one, so holding an `Isa` proves that
/// this CPU has it, which is what the kernels' `unsafe` intrinsics blocks rely on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Isa(IsaKind);

impl Isa {
    /// Plain Rust: runs on every CPU.
    pub const PORTABLE: Isa = Isa(IsaKind::Portable);

    /// The best instruction set of this CPU (cached by the standard library).
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Isa(IsaKind::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa(IsaKind::Avx2Fma);
            }
        }
        Isa::PORTABLE
    }

    /// Every instruction set this CPU has, best first (a CPU with AVX-512 also has AVX2
    /// and FMA here, as every such x86 CPU does): the tests run each kernel with each.
    pub fn supported() -> Vec<Isa> {
        let kinds: &[IsaKind] = match Isa::detect().0 {
            IsaKind::Avx512 => &[IsaKind::Avx512, IsaKind::Avx2Fma, IsaKind::Portable],
            IsaKind::Avx2Fma => &[IsaKind::Avx2Fma, IsaKind::Portable],
            IsaKind::Portable => &[IsaKind::Portable],
        };
        kinds.iter().map(|&k| Isa(k)).collect()
    }

    /// Which instruction set it is (for dispatch).
    pub fn kind(self) -> IsaKind {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_isas_start_at_the_detected_one_and_end_portable() {
        let all = Isa::supported();
        assert_eq!(all[0], Isa::detect());
        assert_eq!(*all.last().unwrap(), Isa::PORTABLE);
        assert_eq!(Isa::PORTABLE.kind(), IsaKind::Portable);
    }
}
