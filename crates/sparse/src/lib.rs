//! rcc-sparse: inference of pruned networks with CSR weights, for embedded-class CPUs
//! (one core, batch 1, no allocation per call).
//!
//! - [`Csr`]: compressed sparse rows (row = output channel of a conv, output feature of a
//!   linear layer), 16-bit column indices where the column count allows, validated.
//! - [`ModelSpec`]: what a sparse network is (layers, CSR weights), converted from a dense
//!   model (batch norm folded) or read from a file ([`file`](mod@file)).
//! - [`linear`], [`conv`]: the sparse kernels, bias and ReLU fused (and max pooling, for
//!   convolutions followed by one); [`dense`]: the dense fallback; [`pool`]: pooling.
//! - [`SparseModel`]: a spec built for this CPU, with a dense or sparse kernel per layer
//!   and its activation arena planned at build time; it also gives input gradients, so
//!   attacks run on the deployed artifact.
//! - [`export`](mod@export): a dense model file to a sparse one, read back and checked
//!   against the dense logits.
//! - [`c_export`]: the same network as self-contained C99 for microcontroller firmware.

pub mod bench_matrix;
pub mod c_export;
pub mod classifier;
pub mod conv;
pub mod csr;
pub mod dense;
pub mod error;
pub mod export;
pub mod file;
pub mod linear;
pub mod model;
pub mod pool;
pub mod spec;

pub use conv::SparseConv;
pub use csr::{ColIdx, Csr};
pub use error::{Error, Result};
pub use linear::SparseLinear;
pub use model::{Arena, KernelChoice, SparseModel};
pub use spec::{LayerSpec, ModelSpec};
