//! rcc-compress: the pure building blocks of robust compression (method.md sections
//! 1-3), shared by the proximal trainer and the ADMM baseline. Everything works on the
//! model's one contiguous parameter buffer (`rcc_nn::Model::params`).
//!
//! - [`Prunable`]: which tensors are pruned (every conv and linear weight) and where
//!   they live; non-zero counts and the compression rate (prunable / non-zero).
//! - [`Budget`]: how many weights each tensor keeps to reach a rate exactly, per layer
//!   or globally.
//! - [`prox`]: the proximal operators, in place: [`soft_threshold`] (l1),
//!   [`keep_top_k`] and [`keep_top_k_global`] (l0 ball, exact counts even with ties),
//!   [`group_l2`] (filter sparsity).
//! - [`Mask`]: the frozen zero pattern for debiasing and masked retraining.
//! - [`Admm`]: Ye et al.'s ADMM state (Z, U, rho) and its updates.
//! - [`memory`]: resident-set readings and the bytes of each piece of training state.
//!
//! Constructors check their inputs and return [`Error`]; the per-step operations take
//! buffers the caller already validated and panic on a length mismatch.

#![forbid(unsafe_code)]

pub mod admm;
pub mod budget;
pub mod error;
pub mod mask;
pub mod memory;
pub mod method;
pub mod prox;
pub mod prunable;

pub use admm::{Admm, RHO_FACTOR};
pub use budget::Budget;
pub use error::{Error, Result};
pub use mask::Mask;
pub use memory::{current_rss_bytes, peak_rss_bytes, StateBytes};
pub use method::{
    check_ramp, check_ramp_start, Compressor, LambdaScale, Method, Regularizer, DEFAULT_RAMP,
};
pub use prox::{
    global_top_k_counts, group_l2, keep_top_k, keep_top_k_global, prune_by_magnitude,
    shrink_outside_top_k, soft_threshold, threshold_for_count,
};
pub use prunable::{Group, GroupNnz, Prunable};
