//! The ops. Each file holds one op (or one family, like the four elementwise ops):
//! its plain forward kernel (what inference calls, no tape), the `Tape` method that runs
//! the forward and records what the backward needs, the backward, and its tests.

pub mod avg_pool2d;
pub mod batch_norm2d;
pub mod conv2d;
pub mod cross_entropy;
pub mod distill;
pub mod dropout;
pub mod elementwise;
pub mod linear;
pub mod log_softmax;
pub mod matmul;
pub mod max_pool2d;
pub mod reduce;
pub mod relu;
pub mod reshape;
pub mod trades;
