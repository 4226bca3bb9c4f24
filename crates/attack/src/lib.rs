//! rcc-attack: adversarial attacks and robustness evaluation (method.md sections 4, 5).
//!
//! Every attack works on any [`Classifier`]: something that maps a batch to logits and
//! gives the gradient of the loss with respect to its input. The dense training graph
//! (`rcc_nn::Model`, through the engine's input-gradient mode: no parameter gradients)
//! implements it, and so will the deployed sparse model, so robustness is measured on
//! the artifact that ships.
//!
//! Inputs live in pixel space `[0, 1]`; every adversarial example is projected onto the
//! eps-ball around its clean input and clamped to `[0, 1]`.

pub mod classifier;
pub mod error;
pub mod fgsm;
pub mod fgsm_rs;
pub mod pgd;

pub use classifier::{per_example_ce, Classifier};
pub use error::{Error, Result};
pub use fgsm::fgsm;
pub use fgsm_rs::fgsm_rs;
pub use pgd::{pgd_linf, PgdConfig};
