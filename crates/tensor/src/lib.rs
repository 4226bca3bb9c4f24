//! rcc-tensor: a CPU f32 tensor and reverse-mode autograd, written from scratch.
//!
//! - [`Tensor`]: contiguous row-major f32 data (images NCHW).
//! - [`Tape`]: a Wengert list of ops, walked once in reverse by [`Tape::backward`], in
//!   one of two [`Mode`]s (full training or input gradient only); inference calls the
//!   ops' plain `forward` kernels with no tape.
//! - [`ops`]: one op per file (forward kernel, tape method, backward, tests).
//! - [`gemm`]: matrixmultiply's sgemm behind a safe, strided, parallel wrapper.
//!
//! Kernels run on the current rayon pool ([`threads::pool`]); every split is chosen so
//! that results are bit-identical for any thread count.

pub mod error;
pub mod gemm;
pub mod kernels;
pub mod ops;
pub mod scratch;
pub mod tape;
pub mod tensor;
pub mod threads;

#[cfg(test)]
pub(crate) mod testing;

pub use error::{Error, Result};
pub use ops::batch_norm2d::{BatchStats, BnMode};
pub use ops::distill::DistillCfg;
pub use ops::elementwise::BinaryOp;
pub use tape::{Grads, Mode, OpTime, Tape, Var};
pub use tensor::{numel, Tensor};
