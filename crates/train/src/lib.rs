//! rcc-train: the robust compression framework of method.md as a library.
//!
//! - [`config`]: the settings of a run ([`TrainConfig`]) and the method's recipes.
//! - [`step`]: one robust step (PGD on the student, the teacher's logits, the distillation
//!   loss, the optimiser step between the compressor's hooks), method.md sections 1-2.
//! - [`trainer`]: epochs, phases, checkpoints and resume ([`train`]), with an
//!   [`Observer`] for progress; [`teacher`]: the robust teacher, trained on demand.
//! - [`run_dir`]: a run folder's files; [`metrics`]: one line of `metrics.jsonl`.
//! - [`protocol`] and [`evaluate`]: the evaluation protocol (method.md sections 4-5):
//!   FGSM, PGD, APGD-CE, the transfer check, AutoAttack and Square, the worst case, the
//!   eps sweep and the gradient-masking verdicts; [`report`]: `summary.txt` and
//!   `report.md`; [`tables`]: an evaluation's JSON and tables.
//! - [`presets`]: the experiments of Table 2 (`cargo xtask sweep` runs them);
//!   [`verdict`]: ours against ADMM over seeds; [`results`]: a sweep's results.md, .csv,
//!   .json and .svg ([`svg`]: the plots).
//!
//! `cargo xtask train` and `cargo xtask sweep` are the command line over it;
//! `examples/robust_compress.rs` runs the framework through this crate alone.

#![forbid(unsafe_code)]

pub mod config;
pub mod error;
pub mod evaluate;
pub mod metrics;
pub mod presets;
pub mod protocol;
pub mod report;
pub mod results;
pub mod rng;
pub mod run_dir;
pub mod step;
pub mod svg;
pub mod tables;
pub mod teacher;
pub mod trainer;
pub mod verdict;

pub use config::{
    AdvTraining, OptimizerKind, TeacherInput, TrainConfig, KEYS, QUICK_TEACHER_EPOCHS,
};
pub use error::{Error, Result};
pub use evaluate::finish_run;
pub use run_dir::{RunDir, RunLock};
pub use step::HeapCounter;
pub use trainer::{train, Observer, Quiet, RunData, RunResult, StepProgress, Stop};
