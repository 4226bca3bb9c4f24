//! The compression methods as hooks into one training loop (method.md sections 2 and 3).
//! The loop (xtask's `train`) crafts the adversarial batch, computes the gradient of the
//! robust loss (with distillation for ours) and takes the optimiser step; a
//! [`Compressor`] adds what makes each method itself:
//!
//! | method | main phase | at the end of it | then |
//! |---|---|---|---|
//! | `prox` (ours) | after each step, W = prox(W) (section 2 step 4) | project to the exact budget, freeze the mask | debias: masked fine-tuning |
//! | `admm` (Ye et al.) | gradient += rho (W - Z + U); every `admm_epoch` epochs Z, U, rho updated | hard-prune to the budget, freeze the mask | masked retraining |
//! | `magnitude` | (none: pruned once before the first step, mask frozen) | | masked fine-tuning |
//! | `dense` | plain training | | |
//!
//! The l0 prox follows a gradual budget: the kept count of each tensor goes from all of
//! it to its final count along Zhu & Gupta's cubic schedule over the first `ramp` of the
//! main phase, then stays there (a one-shot projection to 16x wrecks a robust net's
//! accuracy before training can adapt). `ramp_start` delays that window (Zhu & Gupta's
//! t0): the net trains dense until then, as ADMM's does until its hard pruning. l1 and
//! group-l2 shrink every step with `c = lr * lambda_l`, lambda rising linearly over the
//! same ramp (global, or per layer scaled by 1/sqrt(fan_in): [`LambdaScale`]), and are
//! projected to the exact budget when the main phase ends. The soft budget
//! `prox:dist:LAMBDA` keeps the final budget's top-k of each tensor and shrinks the rest
//! by `1 / (1 + lr * lambda)` each step, lambda rising over the same ramp: the prox of
//! `lambda / 2 dist(W_l, S_l)^2`, ADMM's pull towards the sparse set without its Z and U.

use crate::admm::Admm;
use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::mask::Mask;
use crate::prox::{group_l2, keep_top_k, shrink_outside_top_k, soft_threshold};
use crate::prunable::Prunable;
use rcc_nn::Network;
use std::fmt;

/// The regulariser R(W) of method.md section 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Regularizer {
    /// Budget `||W_l||_0 <= k_l`: keep-top-k prox on a gradual schedule.
    L0,
    /// `lambda_l ||W_l||_1`: soft-thresholding by `lr * lambda_l`.
    L1 { lambda: f32, scale: LambdaScale },
    /// `lambda_l sum_filters ||W_f||_2`: group soft-thresholding of conv filters and
    /// linear rows by `lr * lambda_l`.
    GroupL2 { lambda: f32, scale: LambdaScale },
    /// `lambda / 2 dist(W_l, {||W_l||_0 <= k_l})^2`, the squared distance to the budget
    /// (a soft l0): [`shrink_outside_top_k`] with `c = lr * lambda`. Scale-free (it
    /// divides by `1 + c`), so lambda is global.
    SparseDistance { lambda: f32 },
}

/// How `lambda` becomes each layer's `lambda_l` (method.md section 1: "lambda per layer
/// or global").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LambdaScale {
    /// The same lambda for every layer.
    Global,
    /// `lambda_l = lambda / sqrt(fan_in_l)`: the threshold follows each layer's weight
    /// scale (PyTorch's init draws |w| < 1/sqrt(fan_in)), so a wide layer and a narrow
    /// one are pruned at comparable relative pressure. A function of the shapes only, so
    /// a resumed run thresholds exactly as an uninterrupted one.
    PerLayer,
}

impl LambdaScale {
    fn suffix(self) -> &'static str {
        match self {
            LambdaScale::Global => "",
            LambdaScale::PerLayer => ":layer",
        }
    }
}

/// A compression method.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// Ours: stochastic proximal gradient.
    Prox { reg: Regularizer },
    /// Ye et al.'s ADMM: initial rho, epochs between updates.
    Admm { rho: f32, every: usize },
    /// One-shot magnitude pruning of the start model, then masked fine-tuning.
    Magnitude,
    /// No pruning.
    Dense,
}

impl Method {
    /// `prox`, `prox:l1:LAMBDA[:layer]`, `prox:group:LAMBDA[:layer]`, `prox:dist:LAMBDA`,
    /// `admm` (= `admm:0.001:1`), `admm:RHO:EVERY`, `magnitude`, `dense` (`:layer`:
    /// [`LambdaScale::PerLayer`]).
    pub fn parse(s: &str) -> Result<Method> {
        let bad = || {
            Error::Config(format!(
                "method {s:?}: expected prox, prox:l1:LAMBDA[:layer], prox:group:LAMBDA[:layer], prox:dist:LAMBDA, admm, admm:RHO:EVERY, magnitude or dense"
            ))
        };
        let num = |v: &str| -> Result<f32> {
            v.parse::<f32>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(bad)
        };
        let parts: Vec<&str> = s.split(':').collect();
        Ok(match parts.as_slice() {
            ["prox"] | ["prox", "l0"] => Method::Prox {
                reg: Regularizer::L0,
            },
            ["prox", "dist", l] => Method::Prox {
                reg: Regularizer::SparseDistance { lambda: num(l)? },
            },
            ["prox", kind @ ("l1" | "group"), l, rest @ ..] => {
                let scale = match rest {
                    [] => LambdaScale::Global,
                    ["layer"] => LambdaScale::PerLayer,
                    _ => return Err(bad()),
                };
                let lambda = num(l)?;
                Method::Prox {
                    reg: if *kind == "l1" {
                        Regularizer::L1 { lambda, scale }
                    } else {
                        Regularizer::GroupL2 { lambda, scale }
                    },
                }
            }
            // Ye et al.'s rho; an update every epoch rather than their every 4, which fits
            // their long schedule, not the 4 ADMM epochs of the default pipeline.
            ["admm"] => Method::Admm {
                rho: 1e-3,
                every: 1,
            },
            ["admm", r, e] => Method::Admm {
                rho: num(r)?,
                every: e.parse().ok().filter(|&e| e > 0).ok_or_else(bad)?,
            },
            ["magnitude"] => Method::Magnitude,
            ["dense"] => Method::Dense,
            _ => return Err(bad()),
        })
    }

    /// Whether the method prunes at all.
    pub fn prunes(&self) -> bool {
        !matches!(self, Method::Dense)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::Prox {
                reg: Regularizer::L0,
            } => write!(f, "prox"),
            Method::Prox {
                reg: Regularizer::L1 { lambda, scale },
            } => write!(f, "prox:l1:{lambda}{}", scale.suffix()),
            Method::Prox {
                reg: Regularizer::GroupL2 { lambda, scale },
            } => write!(f, "prox:group:{lambda}{}", scale.suffix()),
            Method::Prox {
                reg: Regularizer::SparseDistance { lambda },
            } => write!(f, "prox:dist:{lambda}"),
            Method::Admm { rho, every } => write!(f, "admm:{rho}:{every}"),
            Method::Magnitude => write!(f, "magnitude"),
            Method::Dense => write!(f, "dense"),
        }
    }
}

/// Default fraction of the main phase over which the l0 budget tightens to its final
/// value (and the l1 / group / dist lambda rises to its full value):
/// [`Compressor::with_schedule`].
pub const DEFAULT_RAMP: f64 = 0.6;

/// `ramp` if it is a fraction of the main phase in (0, 1], else the error that says so
/// (shared by [`Compressor::with_schedule`] and the trainer's config check).
pub fn check_ramp(ramp: f64) -> Result<f64> {
    if ramp > 0.0 && ramp <= 1.0 {
        Ok(ramp)
    } else {
        Err(Error::Config(format!(
            "ramp {ramp}: expected a fraction of the main phase in (0, 1]"
        )))
    }
}

/// `start` if it is a fraction of the main phase in [0, 1), else the error that says so
/// (shared by [`Compressor::with_schedule`] and the trainer's config check).
pub fn check_ramp_start(start: f64) -> Result<f64> {
    if (0.0..1.0).contains(&start) {
        Ok(start)
    } else {
        Err(Error::Config(format!(
            "ramp-start {start}: expected a fraction of the main phase in [0, 1)"
        )))
    }
}

/// A method's state during one run.
#[derive(Clone, Debug)]
pub struct Compressor {
    pub method: Method,
    prunable: Prunable,
    /// Final kept count per pruned tensor (exactly the target rate in total).
    keep: Vec<usize>,
    /// Epochs before the mask is frozen; the rest of the run fine-tunes under it.
    main_epochs: usize,
    steps_per_epoch: usize,
    /// Fraction of the main phase the prox's schedule takes ([`DEFAULT_RAMP`]).
    ramp: f64,
    /// Fraction of the main phase trained dense before the schedule starts (0 by default).
    ramp_start: f64,
    mask: Option<Mask>,
    admm: Option<Admm>,
}

impl Compressor {
    /// `rate` = prunable / non-zero prunable weights at the end (e.g. 16); `main_epochs`
    /// of the run's epochs compress, the rest debias (or retrain) under the frozen mask.
    pub fn new(
        method: Method,
        net: &Network,
        params: &[f32],
        rate: f64,
        budget: Budget,
        main_epochs: usize,
        steps_per_epoch: usize,
    ) -> Result<Compressor> {
        if let Method::Admm { every, .. } = method {
            // Updates happen at the end of epochs every, 2 every, ... before the last
            // epoch of the ADMM phase (whose end hard-prunes instead).
            if every >= main_epochs {
                return Err(Error::Config(format!(
                    "{method} updates Z and U every {every} epochs, but the ADMM phase has {main_epochs}: no update would happen; use admm:RHO:EVERY with EVERY < {main_epochs} (e.g. admm:0.001:1) or more epochs"
                )));
            }
        }
        let prunable = Prunable::of(net);
        let keep = if method.prunes() {
            budget.keep_counts(&prunable, params, rate)?
        } else {
            prunable.groups.iter().map(|g| g.len()).collect()
        };
        if let Some((g, _)) = prunable.groups.iter().zip(&keep).find(|(_, &k)| k == 0) {
            return Err(Error::Config(format!(
                "the budget at rate {rate} keeps no weight of {}: the network would be cut; use a per-layer budget or a lower rate",
                g.name
            )));
        }
        Ok(Compressor {
            method,
            prunable,
            keep,
            main_epochs,
            steps_per_epoch: steps_per_epoch.max(1),
            ramp: DEFAULT_RAMP,
            ramp_start: 0.0,
            mask: None,
            admm: None,
        })
    }

    /// The prox's schedule over the fraction `start .. start + ramp` of the main phase
    /// instead of `0 .. DEFAULT_RAMP`. Before `start` the prox leaves the weights alone
    /// (dense training, as in Zhu & Gupta's schedule with a start step t0, and as ADMM
    /// keeps every weight until its hard pruning); `start + ramp = 1` tightens the l0
    /// budget until the projection, a short ramp reaches it early and trains the rest of
    /// the main phase at the final sparsity. The window must fit in the main phase.
    pub fn with_schedule(mut self, start: f64, ramp: f64) -> Result<Compressor> {
        let (start, ramp) = (check_ramp_start(start)?, check_ramp(ramp)?);
        // A little slack so that e.g. 0.7 + 0.3 (= 1.0000000000000002) is accepted.
        if start + ramp > 1.0 + 1e-9 {
            return Err(Error::Config(format!(
                "ramp-start {start} + ramp {ramp} = {}: the schedule must end by the end of the main phase (at most 1)",
                start + ramp
            )));
        }
        (self.ramp_start, self.ramp) = (start, ramp);
        Ok(self)
    }

    /// The pruned tensors.
    pub fn prunable(&self) -> &Prunable {
        &self.prunable
    }
    /// The final kept count of each pruned tensor.
    pub fn keep(&self) -> &[usize] {
        &self.keep
    }
    /// The frozen mask, once there is one.
    pub fn mask(&self) -> Option<&Mask> {
        self.mask.as_ref()
    }

    /// The method this compressor runs.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The phase epoch `epoch` (0-based) belongs to, for progress lines and metrics.
    pub fn phase(&self, epoch: usize) -> &'static str {
        match self.method {
            Method::Dense => "dense",
            Method::Magnitude => "finetune",
            _ if epoch >= self.main_epochs => {
                if matches!(self.method, Method::Admm { .. }) {
                    "retrain"
                } else {
                    "debias"
                }
            }
            Method::Admm { .. } => "admm",
            Method::Prox { .. } => "prune",
        }
    }

    /// Sets up the state for a run that starts (or resumes) at epoch `epoch`: magnitude
    /// pruning prunes and freezes at once; ADMM starts with Z = Proj(W), U = 0; a run
    /// resumed past the main phase recovers its frozen mask from the zero pattern.
    /// `admm_state` is the checkpointed (z, u, rho) of a resumed ADMM run, copied into the
    /// state made here; z and u must have its length, else [`Error::Length`].
    pub fn start(
        &mut self,
        params: &mut [f32],
        epoch: usize,
        admm_state: Option<(&[f32], &[f32], f32)>,
    ) -> Result<()> {
        let frozen = matches!(self.method, Method::Magnitude) || epoch >= self.main_epochs;
        if !self.method.prunes() {
            return Ok(());
        }
        if frozen {
            if epoch == 0 {
                self.project(params);
            }
            self.mask = Some(Mask::from_params(params, &self.prunable)?);
            return Ok(());
        }
        if let Method::Admm { rho, .. } = self.method {
            let mut admm = Admm::new(params, &self.prunable, &self.keep, rho)?;
            if let Some((z, u, r)) = admm_state {
                for (what, got, expected) in [
                    ("checkpointed ADMM Z", z.len(), admm.z.len()),
                    ("checkpointed ADMM U", u.len(), admm.u.len()),
                ] {
                    if got != expected {
                        return Err(Error::Length {
                            what,
                            expected,
                            got,
                        });
                    }
                }
                // Copied into the buffers Admm::new made: no second Z and U at once.
                admm.z.copy_from_slice(z);
                admm.u.copy_from_slice(u);
                admm.rho = r;
            }
            self.admm = Some(admm);
        }
        Ok(())
    }

    /// Before the optimiser step: ADMM's penalty gradient `rho (W - Z + U)` in its main
    /// phase; the frozen mask on the gradient afterwards (so momentum cannot revive a
    /// pruned weight).
    pub fn before_step(&self, params: &[f32], grads: &mut [f32]) {
        if let Some(mask) = &self.mask {
            mask.apply_to_grad(grads);
        } else if let Some(admm) = &self.admm {
            admm.penalty_grad(params, grads);
        }
    }

    /// After the optimiser step at (`epoch`, `step`) with learning rate `lr`: the prox
    /// (main phase of ours) or the frozen mask.
    pub fn after_step(&self, params: &mut [f32], epoch: usize, step: usize, lr: f32) {
        if let Some(mask) = &self.mask {
            mask.apply(params);
            return;
        }
        let Method::Prox { reg } = self.method else {
            return;
        };
        // Progress through the ramp, in [0, 1]: the l0 budget tightens along it, and the
        // l1 / group lambda rises linearly along it (a warm-up: full shrinkage from the
        // first step would cut a robust net before training can adapt). 0 before the
        // ramp starts: the prox is the identity there.
        let main = (self.main_epochs * self.steps_per_epoch) as f64;
        let t = (epoch * self.steps_per_epoch + step + 1) as f64 - self.ramp_start * main;
        if t <= 0.0 {
            return;
        }
        let ramp = (self.ramp * main).max(1.0);
        let progress = (t / ramp).min(1.0);
        let lambda_l = |g: &crate::Group, lambda: f32, scale: LambdaScale| {
            let per = match scale {
                LambdaScale::Global => 1.0,
                LambdaScale::PerLayer => 1.0 / (g.row_len().max(1) as f32).sqrt(),
            };
            lr * lambda * per * progress as f32
        };
        for (g, &k) in self.prunable.groups.iter().zip(&self.keep) {
            let v = &mut params[g.range.clone()];
            match reg {
                Regularizer::L0 => {
                    let left = (1.0 - progress).powi(3);
                    let kt = k + ((g.len() - k) as f64 * left).round() as usize;
                    keep_top_k(v, kt);
                }
                Regularizer::L1 { lambda, scale } => soft_threshold(v, lambda_l(g, lambda, scale)),
                Regularizer::GroupL2 { lambda, scale } => {
                    group_l2(v, g.row_len(), lambda_l(g, lambda, scale))
                }
                Regularizer::SparseDistance { lambda } => {
                    shrink_outside_top_k(v, k, lambda_l(g, lambda, LambdaScale::Global))
                }
            }
        }
    }

    /// At the end of epoch `epoch` (0-based): ADMM's Z/U/rho update every `every`
    /// epochs; at the end of the main phase, the projection to the exact budget (ADMM:
    /// hard pruning) and the frozen mask.
    pub fn end_epoch(&mut self, params: &mut [f32], epoch: usize) -> Result<()> {
        if self.mask.is_some() || !self.method.prunes() {
            return Ok(());
        }
        if let (Some(admm), Method::Admm { every, .. }) = (&mut self.admm, self.method) {
            if (epoch + 1).is_multiple_of(every) && epoch + 1 < self.main_epochs {
                admm.update(params);
            }
        }
        if epoch + 1 >= self.main_epochs {
            self.project(params);
            self.mask = Some(Mask::from_params(params, &self.prunable)?);
            self.admm = None;
        }
        Ok(())
    }

    /// How far W is from the budget's constraint set S while the main phase runs:
    /// ||W - Proj_S(W)|| / ||W|| over the pruned tensors, the share of their l2 norm that
    /// the projection (ADMM's hard pruning, the prox's final step) would remove now. It
    /// says how much of the way ADMM's pull rho (W - Z + U) has moved W towards S before
    /// the hard prune, and how close the prox's schedule has brought W to the final
    /// budget. `None` once the mask is frozen, for methods that do not prune, and for an
    /// all-zero W. Diagnostic only: W is not changed (the projection runs on a copy).
    pub fn off_budget(&self, params: &[f32]) -> Option<f64> {
        if self.mask.is_some() || !self.method.prunes() {
            return None;
        }
        // The hard prune itself, on a copy: "would remove" is then exactly what it removes.
        let mut kept = params.to_vec();
        self.project(&mut kept);
        let (mut removed, mut total) = (0.0f64, 0.0f64);
        for g in &self.prunable.groups {
            for (&w, &p) in params[g.range.clone()].iter().zip(&kept[g.range.clone()]) {
                total += (w as f64).powi(2);
                removed += ((w - p) as f64).powi(2);
            }
        }
        (total > 0.0).then(|| (removed / total).sqrt())
    }

    /// W = the top `keep` of each pruned tensor (the l0 projection; ADMM's hard pruning).
    fn project(&self, params: &mut [f32]) {
        for (g, &k) in self.prunable.groups.iter().zip(&self.keep) {
            keep_top_k(&mut params[g.range.clone()], k);
        }
    }

    /// ADMM's (Z, U, rho) for a checkpoint, while it has them.
    pub fn admm_state(&self) -> Option<(&[f32], &[f32], f32)> {
        self.admm.as_ref().map(|a| (&a.z[..], &a.u[..], a.rho))
    }

    /// Bytes of the method's own training state: (mask, ADMM's Z and U).
    pub fn state_bytes(&self) -> (usize, usize) {
        (
            self.mask.as_ref().map_or(0, Mask::bytes),
            self.admm.as_ref().map_or(0, Admm::state_bytes),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcc_nn::{Arch, Model};

    /// Ours with regulariser `reg` on `m` at `rate`, per-layer budget.
    fn prox(reg: Regularizer, m: &Model, rate: f64, main: usize, steps: usize) -> Compressor {
        let method = Method::Prox { reg };
        Compressor::new(
            method,
            &m.net,
            &m.params,
            rate,
            Budget::PerLayer,
            main,
            steps,
        )
        .unwrap()
    }

    #[test]
    fn methods_parse_and_print_back() {
        for s in [
            "prox",
            "prox:l1:0.0001",
            "prox:l1:0.5:layer",
            "prox:group:0.01",
            "prox:group:0.01:layer",
            "prox:dist:20",
            "admm:0.001:4",
            "magnitude",
            "dense",
        ] {
            assert_eq!(Method::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(
            Method::parse("admm").unwrap(),
            Method::Admm {
                rho: 1e-3,
                every: 1
            }
        );
        for bad in [
            "",
            "prox:l1",
            "admm:1:0",
            "admm:-1:2",
            "l2",
            "prox:l1:nan",
            "prox:l1:0.1:global",
            "prox:l1:0.1:layer:x",
            "prox:dist",
            "prox:dist:5:layer",
        ] {
            assert!(Method::parse(bad).is_err(), "{bad}");
        }
    }

    /// l1: the threshold rises linearly over the ramp, to `lr * lambda` (global) or
    /// `lr * lambda / sqrt(fan_in)` (per layer), checked on a tensor of equal values.
    #[test]
    fn l1_threshold_follows_its_schedule_and_scale() {
        let m = Model::new(Arch::LenetAdv(1), 3);
        let (main, steps) = (5, 10);
        // The ramp is 0.6 x 50 = 30 steps: step t (1-based) applies t / 30 of lambda.
        assert_eq!((DEFAULT_RAMP * (main * steps) as f64) as usize, 30);
        for (scale, fan_in) in [(LambdaScale::Global, 1.0f32), (LambdaScale::PerLayer, 25.0)] {
            let c = prox(Regularizer::L1 { lambda: 2.0, scale }, &m, 4.0, main, steps);
            // conv1.weight of lenet_adv:1 has fan-in 1 x 5 x 5 = 25.
            let g = c.prunable().groups[0].clone();
            assert_eq!(g.row_len(), 25);
            for (epoch, step, want) in [(0, 0, 1.0 / 30.0), (1, 4, 15.0 / 30.0), (4, 9, 1.0)] {
                let mut p = m.params.clone();
                p[g.range.clone()].fill(1.0);
                c.after_step(&mut p, epoch, step, 0.1);
                let shrink = 1.0 - p[g.range.start];
                let expect = 0.1 * 2.0 * want / fan_in.sqrt();
                assert!(
                    (shrink - expect).abs() < 1e-6,
                    "{scale:?} at {epoch}/{step}: {shrink} vs {expect}"
                );
            }
        }
    }

    /// The soft budget: the final budget's top-k of each tensor untouched, the rest divided
    /// by 1 + lr * lambda * (progress through the ramp), and the projection to the exact
    /// budget at the end of the main phase.
    #[test]
    fn sparse_distance_shrinks_outside_the_budget_then_projects() {
        let m = Model::new(Arch::LenetAdv(1), 3);
        let (main, steps) = (2, 10);
        let reg = Regularizer::SparseDistance { lambda: 5.0 };
        let mut c = prox(reg, &m, 4.0, main, steps)
            .with_schedule(0.0, 0.5)
            .unwrap();
        let mut p = m.params.clone();
        c.start(&mut p, 0, None).unwrap();
        let total = c.prunable().total();
        // Step 5 of a 10-step ramp: half of lambda.
        let before = p.clone();
        c.after_step(&mut p, 0, 4, 0.1);
        let factor = 1.0 / (1.0 + 0.1 * 5.0 * 0.5);
        for (g, &k) in c.prunable().groups.iter().zip(c.keep()) {
            let mut top = before[g.range.clone()].to_vec();
            keep_top_k(&mut top, k);
            for (i, (&now, &was)) in p[g.range.clone()]
                .iter()
                .zip(&before[g.range.clone()])
                .enumerate()
            {
                let want = if top[i] != 0.0 { was } else { was * factor };
                assert!(
                    (now - want).abs() <= 1e-7 * was.abs(),
                    "{} {i}: {now} vs {want}",
                    g.name
                );
            }
        }
        // Nothing is cut before the projection...
        assert_eq!(c.prunable().nnz(&p), c.prunable().nnz(&before));
        assert!(c.prunable().nnz(&p) == total);
        c.end_epoch(&mut p, 0).unwrap();
        // ...which comes at the end of the main phase, to the exact budget.
        c.end_epoch(&mut p, 1).unwrap();
        assert_eq!(c.prunable().nnz(&p), c.keep().iter().sum::<usize>());
        assert_eq!(c.phase(main), "debias");
    }

    /// `off_budget` is the relative l2 norm outside each tensor's top k, checked against
    /// a sort: 0 on a W already in S, unchanged by scaling W, and gone with the mask.
    #[test]
    fn off_budget_is_the_norm_the_projection_would_remove() {
        let m = Model::new(Arch::LenetAdv(1), 3);
        let mut c = prox(Regularizer::L0, &m, 4.0, 2, 10);
        let mut p = m.params.clone();
        c.start(&mut p, 0, None).unwrap();
        let (mut removed, mut total) = (0.0f64, 0.0f64);
        for (g, &k) in c.prunable().groups.iter().zip(c.keep()) {
            let mut sq: Vec<f64> = p[g.range.clone()]
                .iter()
                .map(|&w| (w as f64).powi(2))
                .collect();
            sq.sort_by(|a, b| b.total_cmp(a));
            total += sq.iter().sum::<f64>();
            removed += sq[k..].iter().sum::<f64>();
        }
        let want = (removed / total).sqrt();
        let got = c.off_budget(&p).unwrap();
        assert!(
            want > 0.1 && (got - want).abs() < 1e-12 * want,
            "{got} vs {want}"
        );
        let doubled: Vec<f32> = p.iter().map(|w| 2.0 * w).collect();
        assert!((c.off_budget(&doubled).unwrap() - got).abs() < 1e-12);
        let mut inside = p.clone();
        for (g, &k) in c.prunable().groups.iter().zip(c.keep()) {
            keep_top_k(&mut inside[g.range.clone()], k);
        }
        assert_eq!(c.off_budget(&inside), Some(0.0));
        let zeros = vec![0.0; p.len()];
        assert_eq!(c.off_budget(&zeros), None);
        c.end_epoch(&mut p, 0).unwrap();
        assert!(c.off_budget(&p).is_some());
        c.end_epoch(&mut p, 1).unwrap();
        assert_eq!(c.off_budget(&p), None, "the mask is frozen");
    }

    /// ADMM whose update interval leaves no update in its phase is refused, not run.
    #[test]
    fn admm_without_any_update_is_refused() {
        let m = Model::new(Arch::LenetAdv(1), 3);
        let admm = |every| Method::Admm { rho: 1e-3, every };
        let new = |every, main| {
            Compressor::new(
                admm(every),
                &m.net,
                &m.params,
                4.0,
                Budget::PerLayer,
                main,
                10,
            )
        };
        let err = new(4, 4).unwrap_err().to_string();
        assert!(err.contains("no update would happen"), "{err}");
        assert!(new(1, 4).is_ok() && new(3, 4).is_ok());
    }

    /// The l0 prox leaves every weight until the window starts, then tightens gradually
    /// and reaches the exact budget at the end of the window, and not by its middle
    /// (whatever the window); the frozen mask then holds through the fine-tuning phase.
    #[test]
    fn l0_schedule_reaches_the_budget_at_the_ramp_end_and_the_mask_holds() {
        for (start, ramp) in [
            (0.0, 0.3),
            (0.0, DEFAULT_RAMP),
            (0.0, 1.0),
            (0.5, 0.5),
            (0.4, 0.3),
        ] {
            let mut m = Model::new(Arch::LenetAdv(1), 3);
            let (main, steps) = (5, 10);
            let mut c = prox(Regularizer::L0, &m, 16.0, main, steps)
                .with_schedule(start, ramp)
                .unwrap();
            c.start(&mut m.params, 0, None).unwrap();
            let want: usize = c.keep().iter().sum();
            let total = c.prunable().total();
            assert_eq!(c.prunable().nnz(&m.params), total);
            let start_steps = (start * (main * steps) as f64).round() as usize;
            let ramp_steps = (ramp * (main * steps) as f64).round() as usize;
            let mut last = total;
            for epoch in 0..main {
                for step in 0..steps {
                    c.after_step(&mut m.params, epoch, step, 0.1);
                    let nnz = c.prunable().nnz(&m.params);
                    assert!(
                        nnz <= last && nnz >= want,
                        "ramp {ramp}, epoch {epoch} step {step}: {nnz}"
                    );
                    // Steps 1 ..= start_steps are dense; t counts the steps of the window.
                    let done = epoch * steps + step + 1;
                    if done <= start_steps {
                        assert_eq!(nnz, total, "start {start}, step {done}: pruned early");
                        continue;
                    }
                    let t = done - start_steps;
                    // (Near the end the cubic's remainder rounds to nothing, so
                    // "not before" is checked at half the ramp.)
                    if t >= ramp_steps {
                        assert_eq!(nnz, want, "ramp {ramp}, step {t} of {ramp_steps}");
                    } else if 2 * t <= ramp_steps {
                        assert!(nnz > want, "ramp {ramp}, step {t} of {ramp_steps}: {nnz}");
                    }
                    last = nnz;
                }
                c.end_epoch(&mut m.params, epoch).unwrap();
            }
            assert_eq!(c.phase(main), "debias");
            // Fine-tuning: a gradient step everywhere, then the hooks keep the zeros zero.
            let mut g = vec![1.0; m.params.len()];
            c.before_step(&m.params, &mut g);
            m.params
                .iter_mut()
                .zip(&g)
                .for_each(|(p, gi)| *p -= 0.01 * gi);
            c.after_step(&mut m.params, main, 0, 0.1);
            assert_eq!(c.prunable().nnz(&m.params), want);
            assert_eq!(c.state_bytes().1, 0);
        }
    }

    /// A ramp outside (0, 1], a start outside [0, 1) or a window that ends after the main
    /// phase is refused with the values named.
    #[test]
    fn ramp_outside_the_main_phase_is_refused() {
        let m = Model::new(Arch::LenetAdv(1), 3);
        let new = || prox(Regularizer::L0, &m, 4.0, 4, 10);
        for bad in [0.0, -0.5, 1.5, f64::NAN] {
            let err = new().with_schedule(0.0, bad).unwrap_err().to_string();
            assert!(err.contains("ramp") && err.contains("(0, 1]"), "{err}");
        }
        for bad in [-0.1, 1.0, f64::NAN] {
            let err = new().with_schedule(bad, 0.5).unwrap_err().to_string();
            assert!(
                err.contains("ramp-start") && err.contains("[0, 1)"),
                "{err}"
            );
        }
        let err = new().with_schedule(0.5, 0.6).unwrap_err().to_string();
        assert!(
            err.contains("0.5 + ramp 0.6") && err.contains("at most 1"),
            "{err}"
        );
        assert!(new().with_schedule(0.0, 1.0).is_ok());
        assert!(new().with_schedule(0.7, 0.3).is_ok());
    }
}
