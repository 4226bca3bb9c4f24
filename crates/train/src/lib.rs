//! rcc-train: the robust compression framework of method.md as a library.
//!
//! - [`config`]: the settings of a run ([`TrainConfig`]) and the method's recipes.
//!
//! `cargo xtask train` and `cargo xtask sweep` are the command line over it.

#![forbid(unsafe_code)]

pub mod config;
pub mod error;

pub use config::{AdvTraining, TrainConfig, KEYS, QUICK_TEACHER_EPOCHS};
pub use error::{Error, Result};
