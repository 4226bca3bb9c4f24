//! The configurations the sparse benches measure (`benches/sparse.rs`), in one place so
//! that `cargo xtask bench-report`, which rebuilds each benched model to state its work
//! and bytes, and any other tool that reports on the benches read the same matrix.

use crate::KernelChoice;
use rcc_nn::Arch;

/// The benched architectures, by id.
pub const ARCHS: [(&str, Arch); 3] = [
    ("lenet5", Arch::Lenet5),
    ("lenet_adv4", Arch::LenetAdv(4)),
    ("vgg16w4", Arch::Vgg16(4)),
];

/// Sparsities, in percent.
pub const SPARSITIES: [u32; 7] = [0, 50, 80, 90, 95, 98, 99];

/// `sparse_inference` formats and the kernel choice each builds.
pub const FORMATS: [(&str, KernelChoice); 3] = [
    ("dense", KernelChoice::Dense),
    ("csr", KernelChoice::Auto),
    ("csr-only", KernelChoice::Sparse),
];
