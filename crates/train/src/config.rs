//! The settings of a run: everything that defines it, as typed fields and as `key =
//! value` text (a config file, the `--flags` of `cargo xtask train`, the `config.txt` of
//! a run folder), which round-trip through [`TrainConfig::to_text`] and
//! [`TrainConfig::set`]. The recipes of method.md (the pipeline's, a robust teacher's)
//! are constructors here.
//!
//! Errors are messages that name the key and the value at fault (they reach the command
//! line as they are).

use crate::{Error, Result};
use rand::RngCore;
use rcc_attack::PgdConfig;
use rcc_compress::{Budget, Method};
use rcc_data::DatasetKind;
use rcc_nn::optim::{Adam, LrSchedule, Optimizer, Sgd};
use rcc_nn::{Arch, Model};
use rcc_tensor::Tensor;
use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr;

/// `v` parsed as the type of setting `name`.
fn parse_value<T: FromStr>(name: &str, v: &str) -> std::result::Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("--{name}: {v:?} is not a valid value"))
}

/// Everything that defines a run. `key = value` text round-trips through
/// [`TrainConfig::to_text`] and [`TrainConfig::set`].
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    pub dataset: DatasetKind,
    pub arch: Arch,
    pub epochs: usize,
    pub batch: usize,
    pub optimizer: OptimizerKind,
    pub lr: f32,
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
    pub schedule: LrSchedule,
    pub seed: u64,
    /// Training images held out for validation (taken from the training set, seeded).
    pub val: usize,
    /// CIFAR-style augmentation (random crop with 4-pixel padding, horizontal flip).
    pub augment: bool,
    /// The training attack: every batch is replaced by its adversarial examples.
    pub adv: AdvTraining,
    /// Weight of the clean loss: `(1 - mix) * CE(adv) + mix * CE(clean)` (0: Madry).
    pub adv_mix: f32,
    /// Epochs over which eps (and the step) ramp linearly from 0 to their targets: a
    /// guard against the collapse to one class that method.md section 4 describes.
    pub adv_warmup: usize,
    /// Every this many epochs (0: never), PGD-40 accuracy on the first `robust_limit`
    /// test images at the training eps.
    pub robust_every: usize,
    pub robust_limit: usize,
    /// Steps between mid-epoch checkpoints (0: at epoch ends only). Checkpoints never
    /// change the result, only what a kill loses.
    pub checkpoint_every: usize,
    /// Train on the first this many training images only (0: all); for smoke tests.
    pub train_limit: usize,
    /// Test (each epoch, and the final evaluation) on the first this many test images
    /// only (0: all); for smoke tests. The report states the number.
    pub test_limit: usize,
    /// Compression (issue 6): `None` trains plainly; otherwise the method's hooks run
    /// around each optimiser step (rcc_compress::Compressor).
    pub method: Option<Method>,
    /// Target compression rate: prunable weights / non-zero prunable weights.
    pub rate: f64,
    pub budget: Budget,
    /// Final epochs under the frozen mask (debiasing; ADMM's masked retraining).
    pub finetune: usize,
    /// Fraction of the pruning epochs over which the prox's l0 budget tightens (and its
    /// l1 / group / dist lambda rises); [`rcc_compress::Compressor::with_schedule`]. Only
    /// the prox methods have a schedule; the others ignore it.
    pub ramp: f64,
    /// Fraction of the pruning epochs trained dense before that schedule starts.
    pub ramp_start: f64,
    /// Start from this model's weights (default for pruning methods: the teacher's, when
    /// it has the run's arch).
    pub init: String,
    /// The frozen robust teacher of the distillation loss (method.md section 1).
    pub teacher: String,
    /// Distillation weight `a` and temperature `t`.
    pub alpha: f32,
    pub temperature: f32,
    /// The teacher sees the adversarial input (`adv`) or the clean one (`clean`, ARD).
    pub teacher_input: TeacherInput,
}

/// The optimiser (`--optimizer sgd|adam`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    /// SGD with `momentum`, `nesterov` and `weight-decay`.
    Sgd,
    /// Adam (betas 0.9, 0.999, eps 1e-8) with `weight-decay`.
    Adam,
}

impl std::fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
        })
    }
}

/// What the teacher sees in distillation (`--teacher-input clean|adv`, method.md
/// section 1): the clean batch, or the adversarial batch the student trains on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TeacherInput {
    Clean,
    Adv,
}

impl std::fmt::Display for TeacherInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TeacherInput::Clean => "clean",
            TeacherInput::Adv => "adv",
        })
    }
}

/// The training attack (`--adv`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AdvTraining {
    None,
    /// Madry PGD-l_inf with a random start: `pgd:EPS:STEPS:STEP`.
    Pgd {
        eps: f32,
        steps: usize,
        step: f32,
    },
    /// FGSM with a random start (Wong et al. 2020): `fgsm-rs:EPS:ALPHA`.
    FgsmRs {
        eps: f32,
        alpha: f32,
    },
    /// TRADES (Zhang et al. 2019): the attack ascends the KL from the clean prediction
    /// (`rcc_attack::trades_pgd`) and the loss is `CE(clean) + BETA KL(clean || adv)`
    /// in place of the adversarial batch's cross-entropy: `trades:EPS:STEPS:STEP:BETA`
    /// (their MNIST setting, `train_trades_mnist.py`: `trades:0.3:40:0.01:1`).
    Trades {
        eps: f32,
        steps: usize,
        step: f32,
        beta: f32,
    },
}

impl AdvTraining {
    pub fn parse(s: &str) -> Result<AdvTraining> {
        AdvTraining::parse_text(s).map_err(Error::Config)
    }

    fn parse_text(s: &str) -> std::result::Result<AdvTraining, String> {
        let bad = || {
            format!(
                "adv: {s:?}: expected none, pgd:EPS:STEPS:STEP, fgsm-rs:EPS:ALPHA or trades:EPS:STEPS:STEP:BETA"
            )
        };
        let parts: Vec<&str> = s.split(':').collect();
        let f = |v: &str| {
            v.parse::<f32>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(bad)
        };
        Ok(match parts.as_slice() {
            ["none"] => AdvTraining::None,
            ["pgd", e, n, a] => AdvTraining::Pgd {
                eps: f(e)?,
                steps: n.parse().map_err(|_| bad())?,
                step: f(a)?,
            },
            ["fgsm-rs", e, a] => AdvTraining::FgsmRs {
                eps: f(e)?,
                alpha: f(a)?,
            },
            ["trades", e, n, a, b] => AdvTraining::Trades {
                eps: f(e)?,
                steps: n.parse().map_err(|_| bad())?,
                step: f(a)?,
                beta: f(b)?,
            },
            _ => return Err(bad()),
        })
    }

    /// The training attack of a dataset's protocol (method.md section 4): PGD-10 from a
    /// random start with Madry's step 2.5 eps / steps, so the attack reaches the ball's edge.
    pub fn for_dataset(kind: DatasetKind) -> AdvTraining {
        // Literals rather than 2.5 * eps / 10 in f32, so that config files written as
        // text compare equal to the preset.
        let (eps, step) = match kind {
            DatasetKind::Mnist => (0.3, 0.075),
            DatasetKind::FashionMnist => (0.1, 0.025),
            DatasetKind::Cifar10 => (8.0 / 255.0, 2.0 / 255.0),
        };
        AdvTraining::Pgd {
            eps,
            steps: 10,
            step,
        }
    }

    pub fn eps(&self) -> f32 {
        match *self {
            AdvTraining::None => 0.0,
            AdvTraining::Pgd { eps, .. }
            | AdvTraining::FgsmRs { eps, .. }
            | AdvTraining::Trades { eps, .. } => eps,
        }
    }

    /// The same attack with eps and its step scaled by `f` (the warm-up ramp).
    pub fn scaled(&self, f: f32) -> AdvTraining {
        match *self {
            AdvTraining::None => AdvTraining::None,
            AdvTraining::Pgd { eps, steps, step } => AdvTraining::Pgd {
                eps: eps * f,
                steps,
                step: step * f,
            },
            AdvTraining::FgsmRs { eps, alpha } => AdvTraining::FgsmRs {
                eps: eps * f,
                alpha: alpha * f,
            },
            AdvTraining::Trades {
                eps,
                steps,
                step,
                beta,
            } => AdvTraining::Trades {
                eps: eps * f,
                steps,
                step: step * f,
                beta,
            },
        }
    }

    /// TRADES's KL weight, if this is TRADES (its loss replaces the cross-entropy).
    pub fn trades_beta(&self) -> Option<f32> {
        match *self {
            AdvTraining::Trades { beta, .. } => Some(beta),
            _ => None,
        }
    }

    /// The adversarial version of a batch (the model in evaluation mode); `None` for
    /// natural training.
    pub fn attack(
        &self,
        model: &Model,
        x: &Tensor,
        labels: &[usize],
        rng: &mut dyn RngCore,
    ) -> Result<Option<Tensor>> {
        let r = match *self {
            AdvTraining::None => return Ok(None),
            AdvTraining::Pgd { eps, steps, step } => {
                let cfg = PgdConfig {
                    eps,
                    steps,
                    step_size: step,
                    random_start: true,
                    restarts: 1,
                };
                rcc_attack::pgd_linf(model, x, labels, &cfg, rng)
            }
            AdvTraining::FgsmRs { eps, alpha } => {
                rcc_attack::fgsm_rs(model, x, labels, eps, alpha, rng)
            }
            AdvTraining::Trades {
                eps, steps, step, ..
            } => rcc_attack::trades_pgd(model, x, eps, steps, step, rng),
        };
        Ok(Some(r?))
    }
}

impl std::fmt::Display for AdvTraining {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdvTraining::None => write!(f, "none"),
            AdvTraining::Pgd { eps, steps, step } => write!(f, "pgd:{eps}:{steps}:{step}"),
            AdvTraining::FgsmRs { eps, alpha } => write!(f, "fgsm-rs:{eps}:{alpha}"),
            AdvTraining::Trades {
                eps,
                steps,
                step,
                beta,
            } => write!(f, "trades:{eps}:{steps}:{step}:{beta}"),
        }
    }
}

impl Default for TrainConfig {
    /// Plain training (`--method none`): lenet_adv:4 on MNIST, natural, SGD 0.05 cosine,
    /// 5 epochs; also the base that config files and tests start from.
    fn default() -> Self {
        TrainConfig {
            dataset: DatasetKind::Mnist,
            arch: Arch::LenetAdv(4),
            epochs: 5,
            batch: 128,
            optimizer: OptimizerKind::Sgd,
            lr: 0.05,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 5e-4,
            schedule: LrSchedule::Cosine { min_lr: 0.0 },
            seed: 1,
            val: 0,
            augment: false,
            adv: AdvTraining::None,
            adv_mix: 0.0,
            adv_warmup: 0,
            robust_every: 0,
            robust_limit: 1000,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            train_limit: 0,
            test_limit: 0,
            method: None,
            rate: 16.0,
            budget: Budget::PerLayer,
            finetune: 0,
            ramp: rcc_compress::DEFAULT_RAMP,
            ramp_start: 0.0,
            init: String::new(),
            teacher: String::new(),
            alpha: 0.0,
            temperature: 1.0,
            teacher_input: TeacherInput::Clean,
        }
    }
}

/// The `key = value` lines of a config file (`#` starts a comment), with their line
/// numbers; syntax only, the keys are checked by [`TrainConfig::set`].
pub fn read_pairs(path: &Path) -> Result<Vec<(usize, String, String)>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    parse_pairs(&text, path)
}

/// [`read_pairs`] of a file's text (`path` only names it in errors).
pub fn parse_pairs(text: &str, path: &Path) -> Result<Vec<(usize, String, String)>> {
    parse_pairs_text(text, path).map_err(Error::Config)
}

fn parse_pairs_text(
    text: &str,
    path: &Path,
) -> std::result::Result<Vec<(usize, String, String)>, String> {
    let mut pairs = vec![];
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or(format!(
            "{}:{}: expected key = value, got {line:?}",
            path.display(),
            i + 1
        ))?;
        pairs.push((i + 1, k.trim().to_string(), v.trim().to_string()));
    }
    Ok(pairs)
}

/// Steps between mid-epoch checkpoints by default: 100 steps are about 9 s of
/// lenet_adv:4 PGD-10 training on 2 cores (about 26 s at lenet_adv:8), against 7.8 ms
/// (56 ms) to write and fsync the checkpoint (`cargo bench --bench checkpoint`): 0.1%
/// (0.2%) of the time; a kill loses at most those 100 steps. See docs/reliability.md.
pub const DEFAULT_CHECKPOINT_EVERY: usize = 100;

/// Epochs of a robust teacher trained on demand by `cargo xtask train` (the sweeps train
/// theirs for 20 epochs).
pub const QUICK_TEACHER_EPOCHS: usize = 10;

impl TrainConfig {
    /// What `cargo xtask train` runs with no flags (issue 6): our method on MNIST. The
    /// robust lenet_adv:4 teacher is compressed 16x by the stochastic proximal gradient
    /// method with the l0 prox (exact top-k, global budget; method.md section 2) on
    /// PGD-10 examples and distillation from the teacher (a = 0.5, t = 2; section 1): 4
    /// epochs of pruning (the budget tightens over the first 60%), then 2 of debiasing
    /// under the frozen mask. Adam at 5e-4 with a cosine schedule; the sweeps use the
    /// same recipe for every method.
    pub fn pipeline() -> TrainConfig {
        TrainConfig {
            epochs: 6,
            optimizer: OptimizerKind::Adam,
            lr: 5e-4,
            weight_decay: 0.0,
            adv: AdvTraining::for_dataset(DatasetKind::Mnist),
            robust_every: 2,
            method: Some(Method::Prox {
                reg: rcc_compress::Regularizer::L0,
            }),
            rate: 16.0,
            budget: Budget::Global,
            finetune: 2,
            alpha: 0.5,
            temperature: 2.0,
            ..TrainConfig::default()
        }
    }

    /// How a robust teacher (and a dense small baseline) is trained: adversarially from
    /// PyTorch's init with Adam 1e-3, cosine, and eps ramped up over 3 epochs (the guard
    /// against the collapse of method.md section 4).
    pub fn teacher_recipe(
        dataset: DatasetKind,
        arch: Arch,
        epochs: usize,
        seed: u64,
    ) -> TrainConfig {
        TrainConfig {
            dataset,
            arch,
            epochs,
            optimizer: OptimizerKind::Adam,
            lr: 1e-3,
            weight_decay: 0.0,
            seed,
            augment: dataset == DatasetKind::Cifar10,
            adv: AdvTraining::for_dataset(dataset),
            adv_warmup: 3,
            robust_every: 2,
            ..TrainConfig::default()
        }
    }

    /// The run's folder name under `runs/`: dataset, arch, method, rate, seed.
    pub fn default_run_name(&self) -> String {
        let arch = self.arch.to_string().replace(':', "");
        match self.method {
            None => format!("{}-{arch}-s{}", self.dataset, self.seed),
            Some(m) if !m.prunes() => format!("{}-{arch}-{m}-s{}", self.dataset, self.seed),
            Some(m) => format!(
                "{}-{arch}-{}-r{}-s{}",
                self.dataset,
                m.to_string().replace(':', "_"),
                self.rate,
                self.seed
            ),
        }
    }
}

/// Config keys, which are also the `--flags` of `cargo xtask train`.
pub const KEYS: [&str; 32] = [
    "dataset",
    "arch",
    "epochs",
    "batch",
    "optimizer",
    "lr",
    "momentum",
    "nesterov",
    "weight-decay",
    "schedule",
    "seed",
    "val",
    "augment",
    "adv",
    "adv-mix",
    "adv-warmup",
    "robust-every",
    "robust-limit",
    "checkpoint-every",
    "train-limit",
    "test-limit",
    "method",
    "rate",
    "budget",
    "finetune",
    "ramp",
    "ramp-start",
    "init",
    "teacher",
    "alpha",
    "temperature",
    "teacher-input",
];

impl TrainConfig {
    pub fn set(&mut self, key: &str, v: &str) -> Result<()> {
        self.set_text(key, v).map_err(Error::Config)
    }

    fn set_text(&mut self, key: &str, v: &str) -> std::result::Result<(), String> {
        match key {
            "dataset" => {
                self.dataset = v.parse().map_err(|e| format!("dataset: {e}"))?;
                self.augment = self.dataset == DatasetKind::Cifar10;
            }
            "arch" => self.arch = v.parse().map_err(|e| format!("arch: {e}"))?,
            "epochs" => self.epochs = parse_value(key, v)?,
            "batch" => self.batch = parse_value(key, v)?,
            "optimizer" => {
                self.optimizer = match v {
                    "sgd" => OptimizerKind::Sgd,
                    "adam" => OptimizerKind::Adam,
                    _ => return Err(format!("optimizer: {v:?} is not sgd or adam")),
                }
            }
            "lr" => self.lr = parse_value(key, v)?,
            "momentum" => self.momentum = parse_value(key, v)?,
            "nesterov" => self.nesterov = parse_value(key, v)?,
            "weight-decay" => self.weight_decay = parse_value(key, v)?,
            "schedule" => self.schedule = LrSchedule::parse(v).map_err(|e| e.to_string())?,
            "seed" => self.seed = parse_value(key, v)?,
            "val" => self.val = parse_value(key, v)?,
            "augment" => self.augment = parse_value(key, v)?,
            "adv" => self.adv = AdvTraining::parse(v)?,
            "adv-mix" => {
                self.adv_mix = parse_value(key, v)?;
                if !(0.0..=1.0).contains(&self.adv_mix) {
                    return Err(format!("adv-mix must be in [0, 1], got {v}"));
                }
            }
            "adv-warmup" => self.adv_warmup = parse_value(key, v)?,
            "robust-every" => self.robust_every = parse_value(key, v)?,
            "robust-limit" => self.robust_limit = parse_value(key, v)?,
            "checkpoint-every" => self.checkpoint_every = parse_value(key, v)?,
            "train-limit" => self.train_limit = parse_value(key, v)?,
            "test-limit" => self.test_limit = parse_value(key, v)?,
            "method" => {
                self.method = match v {
                    "none" => None,
                    _ => Some(Method::parse(v).map_err(|e| e.to_string())?),
                }
            }
            "rate" => {
                self.rate = parse_value(key, v)?;
                if !(self.rate >= 1.0 && self.rate.is_finite()) {
                    return Err(format!("rate must be a number >= 1 (e.g. 16), got {v}"));
                }
            }
            "budget" => {
                self.budget = match v {
                    "layer" => Budget::PerLayer,
                    "global" => Budget::Global,
                    _ => return Err(format!("budget: {v:?} is not layer or global")),
                }
            }
            "finetune" => self.finetune = parse_value(key, v)?,
            "ramp" => {
                self.ramp = rcc_compress::check_ramp(parse_value(key, v)?)
                    .map_err(|e| format!("{key}: {e}"))?
            }
            "ramp-start" => {
                self.ramp_start = rcc_compress::check_ramp_start(parse_value(key, v)?)
                    .map_err(|e| format!("{key}: {e}"))?
            }
            "init" => self.init = v.into(),
            "teacher" => self.teacher = v.into(),
            "alpha" => {
                self.alpha = parse_value(key, v)?;
                if !(0.0..=1.0).contains(&self.alpha) {
                    return Err(format!("alpha must be in [0, 1], got {v}"));
                }
            }
            "temperature" => {
                self.temperature = parse_value(key, v)?;
                if !(self.temperature > 0.0 && self.temperature.is_finite()) {
                    return Err(format!("temperature must be a positive number, got {v}"));
                }
            }
            "teacher-input" => {
                self.teacher_input = match v {
                    "clean" => TeacherInput::Clean,
                    "adv" => TeacherInput::Adv,
                    _ => return Err(format!("teacher-input: {v:?} is not clean or adv")),
                }
            }
            _ => {
                return Err(format!(
                    "unknown config key {key:?} (known: {})",
                    KEYS.join(", ")
                ))
            }
        }
        if self.batch == 0 || self.epochs == 0 || !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err("epochs and batch must be at least 1 and lr a positive number".into());
        }
        Ok(())
    }

    /// The checks that involve more than one setting (each setting alone is checked as it
    /// is set), run before any data is loaded or any teacher trained.
    pub fn check(&self) -> Result<()> {
        self.check_text().map_err(Error::Config)
    }

    fn check_text(&self) -> std::result::Result<(), String> {
        if self.adv.trades_beta().is_some() && self.adv_mix > 0.0 {
            return Err(format!(
                "adv-mix {} with adv = {}: TRADES's loss already has the clean batch's term; set adv-mix = 0",
                self.adv_mix, self.adv
            ));
        }
        if let Some(Method::Admm { every, .. }) = self.method {
            let main = self.epochs.saturating_sub(self.finetune);
            if every >= main && main > 0 {
                return Err(format!(
                    "method {}: Z and U are updated every {every} epochs, but the ADMM phase has {main} (epochs {} - finetune {}): no update would happen; give more epochs or a smaller EVERY",
                    self.method.map_or(String::new(), |m| m.to_string()),
                    self.epochs,
                    self.finetune
                ));
            }
        }
        if let Some(m) = self.method {
            if self.finetune >= self.epochs && !matches!(m, Method::Magnitude | Method::Dense) {
                return Err(format!(
                    "finetune ({}) must leave epochs ({}) for the {m} phase: give --epochs more than --finetune",
                    self.finetune, self.epochs
                ));
            }
        }
        Ok(())
    }

    /// Applies a `key = value` file (`#` starts a comment).
    pub fn apply_file(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        self.apply_text(&text, path)
    }

    /// [`TrainConfig::apply_file`] of a file's text (`path` only names it in errors).
    pub fn apply_text(&mut self, text: &str, path: &Path) -> Result<()> {
        for (line, k, v) in parse_pairs(text, path)? {
            self.set(&k, &v)
                .map_err(|e| format!("{}:{line}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// The value of setting `key` as [`TrainConfig::set`] reads it back; `None` for an
    /// unknown key.
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            "dataset" => self.dataset.to_string(),
            "arch" => self.arch.to_string(),
            "epochs" => self.epochs.to_string(),
            "batch" => self.batch.to_string(),
            "optimizer" => self.optimizer.to_string(),
            "lr" => self.lr.to_string(),
            "momentum" => self.momentum.to_string(),
            "nesterov" => self.nesterov.to_string(),
            "weight-decay" => self.weight_decay.to_string(),
            "schedule" => self.schedule.to_string(),
            "seed" => self.seed.to_string(),
            "val" => self.val.to_string(),
            "augment" => self.augment.to_string(),
            "adv" => self.adv.to_string(),
            "adv-mix" => self.adv_mix.to_string(),
            "adv-warmup" => self.adv_warmup.to_string(),
            "robust-every" => self.robust_every.to_string(),
            "robust-limit" => self.robust_limit.to_string(),
            "checkpoint-every" => self.checkpoint_every.to_string(),
            "train-limit" => self.train_limit.to_string(),
            "test-limit" => self.test_limit.to_string(),
            "method" => self.method.map_or("none".into(), |m| m.to_string()),
            "rate" => self.rate.to_string(),
            "budget" => match self.budget {
                Budget::PerLayer => "layer".into(),
                Budget::Global => "global".into(),
            },
            "finetune" => self.finetune.to_string(),
            "ramp" => self.ramp.to_string(),
            "ramp-start" => self.ramp_start.to_string(),
            "init" => self.init.clone(),
            "teacher" => self.teacher.clone(),
            "alpha" => self.alpha.to_string(),
            "temperature" => self.temperature.to_string(),
            "teacher-input" => self.teacher_input.to_string(),
            _ => return None,
        })
    }

    /// Every setting as `key = value` lines, in [`KEYS`] order.
    pub fn to_text(&self) -> String {
        let mut s = String::from("# rcc training run (cargo xtask train --config this-file)\n");
        for k in KEYS {
            let _ = writeln!(s, "{k} = {}", self.get(k).unwrap_or_default());
        }
        s
    }

    /// The run's teacher model (`teacher`), if it has one.
    pub fn load_teacher(&self) -> Result<Option<Model>> {
        if self.teacher.is_empty() {
            return Ok(None);
        }
        Model::load(Path::new(&self.teacher), None)
            .map(Some)
            .map_err(|e| Error::from(e).context("teacher"))
    }

    pub fn optimizer_for(&self, n: usize) -> Result<Optimizer> {
        self.optimizer_text(n).map_err(Error::Config)
    }

    fn optimizer_text(&self, n: usize) -> std::result::Result<Optimizer, String> {
        Ok(match self.optimizer {
            OptimizerKind::Adam => Optimizer::Adam(
                Adam::new(n, 0.9, 0.999, 1e-8, self.weight_decay).map_err(|e| e.to_string())?,
            ),
            OptimizerKind::Sgd => Optimizer::Sgd(
                Sgd::new(n, self.momentum, self.nesterov, self.weight_decay)
                    .map_err(|e| e.to_string())?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_text_round_trips_and_rejects_unknown_keys() {
        let mut cfg = TrainConfig::default();
        cfg.set("schedule", "step:2:0.5").unwrap();
        cfg.set("optimizer", "adam").unwrap();
        cfg.set("ramp", "0.3").unwrap();
        cfg.set("ramp-start", "0.5").unwrap();
        let path = std::env::temp_dir().join(format!("rcc-train-cfg-{}.txt", std::process::id()));
        std::fs::write(&path, cfg.to_text()).unwrap();
        let mut back = TrainConfig::default();
        back.apply_file(&path).unwrap();
        assert_eq!(back, cfg);
        std::fs::remove_file(&path).unwrap();
        assert!(TrainConfig::default()
            .set("learning_rate", "1")
            .unwrap_err()
            .to_string()
            .contains("unknown config key"));
        assert!(TrainConfig::default().set("optimizer", "rmsprop").is_err());
        assert!(TrainConfig::default().set("lr", "-1").is_err());
        // Every key reads back what it sets, for every recipe.
        for c in [TrainConfig::default(), TrainConfig::pipeline(), cfg] {
            for k in KEYS {
                let v = c.get(k).unwrap_or_else(|| panic!("no value for key {k}"));
                let mut back = c.clone();
                back.set(k, &v).unwrap();
                assert_eq!(back, c, "{k} = {v}");
            }
        }
        assert_eq!(TrainConfig::default().get("learning_rate"), None);
        for bad in ["0", "1.5", "-0.2", "NaN"] {
            let err = TrainConfig::default()
                .set("ramp", bad)
                .unwrap_err()
                .to_string();
            assert!(err.contains("(0, 1]") && err.contains(bad), "{err}");
        }
    }

    #[test]
    fn adversarial_settings_parse_and_round_trip() {
        assert_eq!(
            AdvTraining::parse("pgd:0.3:10:0.075").unwrap(),
            AdvTraining::Pgd {
                eps: 0.3,
                steps: 10,
                step: 0.075
            }
        );
        assert_eq!(
            AdvTraining::parse("fgsm-rs:0.3:0.375").unwrap(),
            AdvTraining::FgsmRs {
                eps: 0.3,
                alpha: 0.375
            }
        );
        assert_eq!(
            AdvTraining::parse("trades:0.3:40:0.01:6").unwrap(),
            AdvTraining::Trades {
                eps: 0.3,
                steps: 40,
                step: 0.01,
                beta: 6.0
            }
        );
        let t = AdvTraining::parse("trades:0.3:40:0.01:6").unwrap();
        assert_eq!(t.to_string(), "trades:0.3:40:0.01:6");
        assert_eq!(
            (t.trades_beta(), t.scaled(0.5).trades_beta()),
            (Some(6.0), Some(6.0))
        );
        assert_eq!(t.scaled(0.5).eps(), 0.15);
        for bad in [
            "pgd:0.3:10",
            "pgd:-1:10:0.1",
            "fgsm:0.3",
            "pgd:0.3:x:0.1",
            "trades:0.3:40:0.01",
            "trades:0.3:40:0.01:-6",
        ] {
            assert!(AdvTraining::parse(bad).is_err(), "{bad}");
        }
        let mut cfg = TrainConfig::default();
        cfg.set("adv", "fgsm-rs:0.1:0.125").unwrap();
        cfg.set("adv-mix", "0.5").unwrap();
        assert!(cfg.clone().set("adv-mix", "1.5").is_err());
        let mut back = TrainConfig::default();
        for line in cfg.to_text().lines().filter(|l| !l.starts_with('#')) {
            let (k, v) = line.split_once('=').unwrap();
            back.set(k.trim(), v.trim()).unwrap();
        }
        assert_eq!(back, cfg);
    }
}
