//! rcc-nn: layers, models by arch string, losses, optimisers and model files.
//!
//! A [`Model`] keeps all its trainable parameters in one contiguous `Vec<f32>` with named
//! views ([`params::ParamLayout`]), PyTorch's names and layouts, so the optimiser, the
//! proximal step and pruning masks are loops over one slice, and a model file moves
//! both ways between rcc and PyTorch.

#![forbid(unsafe_code)]

pub mod arch;
pub mod checkpoint;
pub mod error;
pub mod json;
pub mod layers;
pub mod model;
pub mod optim;
pub mod params;
pub mod reference;
pub mod safetensors;

pub use arch::Arch;
pub use error::{Error, Result};
pub use model::{Loss, Model, Network, StepOutput};
pub use optim::{Adam, LrSchedule, Optimizer, Sgd};
