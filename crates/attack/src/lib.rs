//! rcc-attack: adversarial attacks and robustness evaluation (method.md sections 4, 5).
//!
//! Every attack works on any [`Classifier`]: something that maps a batch to logits and
//! gives the gradient of a loss of the logits ([`AttackLoss`]: cross-entropy or DLR)
//! with respect to its input. The dense training graph
//! (`rcc_nn::Model`, through the engine's input-gradient mode: no parameter gradients)
//! implements it, and so does the deployed sparse model (`rcc_sparse::SparseModel`), so
//! robustness is measured on the artifact that ships.
//!
//! Inputs live in pixel space `[0, 1]`; every adversarial example is projected onto the
//! eps-ball around its clean input and clamped to `[0, 1]`.
//!
//! # Attacks
//!
//! | function | threat model | what it is |
//! |---|---|---|
//! | [`fgsm()`] | l_inf | one signed-gradient step of eps (Goodfellow et al. 2015) |
//! | [`fgsm_rs()`] | l_inf | FGSM from a random start, step alpha (Wong et al. 2020; training) |
//! | [`pgd_linf`] | l_inf | PGD with random start and restarts (Madry et al. 2018) |
//! | [`pgd_l2`] | l_2 | the same in the l_2 ball, normalised-gradient steps |
//! | [`apgd()`] | l_inf | APGD-CE and APGD-DLR, step-size-free PGD with momentum (Croce & Hein 2020) |
//! | [`apgd_targeted`] | l_inf | APGD-T: APGD on the targeted DLR loss over the top target classes |
//! | [`fab_targeted`] | l_inf | FAB-T: minimal adversarial examples by boundary projections (Croce & Hein 2020) |
//! | [`square_linf`] | l_inf | Square Attack: score-based random search, no gradients (Andriushchenko et al. 2020) |
//! | [`trades_pgd`], [`trades_pgd_from`] | l_inf | TRADES's inner maximisation: PGD on the KL from the clean prediction (Zhang et al. 2019; training) |
//!
//! [`AttackSpec::AutoAttack`] runs AutoAttack (APGD-CE, APGD-T, FAB-T, Square in
//! sequence, each on the points still robust), the RobustBench standard.
//!
//! [`pgd()`] is the general form of the two PGDs, with the choice between Madry's "every
//! example takes every step" (training) and "stop at the first fooling iterate"
//! (evaluation), and it returns the per-example outcome and the loss trace. All
//! attacks are deterministic given their `StdRng`.
//!
//! # Evaluation
//!
//! [`evaluate()`] reports, for a model and a labelled set ([`Examples`]), the clean
//! accuracy and the accuracy under each [`AttackSpec`] of a list, with the per-example
//! outcome. An example counts as robust only if it is classified correctly clean *and*
//! at the adversarial point; every adversarial point is checked to lie in its eps-ball
//! and in [0, 1] before it is classified. Each batch's randomness is derived from
//! (seed, attack kind, batch index), so the report does not depend on the thread count.
//! See the [`eval`] module for the details. [`evaluate_transfer()`] runs the attacks on
//! another model and classifies their points with the model under test (the black-box
//! check for gradient masking), and [`Report::worst_case`] counts the examples that
//! survive every attack of a list. `cargo xtask eval` is the command-line front end
//! (tables, JSON, eps sweeps and their SVG plot, `--transfer-from`).

#![forbid(unsafe_code)]

pub mod apgd;
pub mod ball;
pub mod classifier;
pub mod error;
pub mod eval;
pub mod fab;
pub mod fgsm;
pub mod fgsm_rs;
pub mod pgd;
pub mod square;
pub mod trades;

pub use apgd::{apgd, apgd_outcome, apgd_targeted, ApgdConfig};
pub use ball::Norm;
pub use classifier::{goal, per_example_ce, AttackLoss, Classifier};
pub use error::{Error, Result};
pub use eval::{
    evaluate, evaluate_transfer, evaluate_with, evaluate_with_progress, run_attack, AttackResult,
    AttackSpec, Examples, Progress, Report, TensorExamples,
};
pub use fab::{fab_targeted, FabConfig, FabOutcome};
pub use fgsm::fgsm;
pub use fgsm_rs::fgsm_rs;
pub use pgd::{pgd, pgd_l2, pgd_linf, Outcome, PgdConfig};
pub use square::{square_fraction, square_linf, SquareConfig};
pub use trades::{trades_pgd, trades_pgd_from};
