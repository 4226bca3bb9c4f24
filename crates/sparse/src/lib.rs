//! rcc-sparse: inference of pruned networks with CSR weights, for embedded-class CPUs
//! (one core, batch 1, no allocation per call).
//!
//! - [`Csr`]: compressed sparse rows (row = output channel of a conv, output feature of a
//!   linear layer), 16-bit column indices where the column count allows, validated.
//! - [`linear`]: CSR times vector, bias and ReLU fused.
//! - [`conv`]: direct sparse convolution on the padded-width grid (stride 1), and a
//!   simple direct loop for other strides.
//! - [`SparseModel`]: a sequential network converted once, with its activation arena
//!   planned at build time.

pub mod conv;
pub mod csr;
pub mod error;
pub mod linear;
pub mod model;

pub use conv::SparseConv;
pub use csr::{ColIdx, Csr};
pub use error::{Error, Result};
pub use linear::SparseLinear;
pub use model::{Arena, SparseModel};
