//! What an attack needs from a model, and the losses attacks ascend.

use crate::{Error, Result};
use rcc_nn::{Loss, Model};
use rcc_tensor::Tensor;

/// The objective an attack ascends, as a function of one example's logits `z` and label
/// `y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttackLoss {
    /// `logsumexp(z) - z_y`. Its gradient `softmax(z) - onehot(y)` underflows to exactly
    /// zero in f32 once the margin passes about 100 (softmax saturates), which hides a
    /// model from every CE attack without making it robust.
    CrossEntropy,
    /// Croce & Hein's difference of logits ratio (ICML 2020, eq. 5):
    /// `-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)`, with `z_pi1 >= z_pi2 >= z_pi3` the
    /// three largest logits (plus 1e-12 in the denominator, as the authors' code).
    /// Invariant to shifting and scaling the logits, so a saturated softmax cannot mask
    /// it; positive when another class's logit is above `z_y`, negative when `z_y` is
    /// above all others. Needs at least 3 classes.
    Dlr,
    /// Croce & Hein's targeted DLR (APGD-T, ICML 2020, sec. 4):
    /// `-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)` (plus 1e-12, as the authors'
    /// code), ascended to pull the logit of a target class `t` above the label's. Its
    /// labels are [`goal`]s (the pair `y`, `t`). Needs at least 4 classes.
    TargetedDlr,
    /// `z_y - z_t`, the logit gap to a target class `t`: its zero set is the decision
    /// boundary between `y` and `t`, which FAB-T linearises. Its labels are [`goal`]s.
    LogitGap,
}

/// The label of a targeted loss ([`AttackLoss::TargetedDlr`], [`AttackLoss::LogitGap`])
/// for one example: its true class `y` and target class `t` of `k` classes, as one
/// number `y * k + t`, so the targeted losses pass through [`Classifier`]'s
/// `labels: &[usize]` like the others. [`AttackLoss::true_label`] recovers `y`.
pub fn goal(y: usize, t: usize, k: usize) -> usize {
    y * k + t
}

impl AttackLoss {
    pub fn name(self) -> &'static str {
        match self {
            AttackLoss::CrossEntropy => "CE",
            AttackLoss::Dlr => "DLR",
            AttackLoss::TargetedDlr => "DLR-T",
            AttackLoss::LogitGap => "logit gap",
        }
    }

    /// Whether the labels are [`goal`]s (true class and target).
    pub fn is_targeted(self) -> bool {
        matches!(self, AttackLoss::TargetedDlr | AttackLoss::LogitGap)
    }

    /// The true class in a label of this loss for `k` classes (see [`goal`]).
    pub fn true_label(self, label: usize, k: usize) -> usize {
        if self.is_targeted() {
            label / k.max(1)
        } else {
            label
        }
    }

    /// Checks that the loss is defined for `k` classes and every label is below `k`.
    pub fn check(self, k: usize, labels: &[usize]) -> Result<()> {
        let need = match self {
            AttackLoss::CrossEntropy => 1,
            AttackLoss::Dlr => 3,
            AttackLoss::TargetedDlr => 4,
            AttackLoss::LogitGap => 2,
        };
        // A targeted label is a pair below k * k whose target is not its class.
        let bad = |&&l: &&usize| match self.is_targeted() {
            true => l >= k * k || l / k == l % k,
            false => l >= k,
        };
        match labels.iter().find(bad) {
            _ if k < need => Err(Error::Config(format!(
                "the {} loss needs at least {need} classes, the model has {k}",
                self.name()
            ))),
            Some(&l) if self.is_targeted() => Err(Error::Config(format!(
                "{} loss: label {l} is not a (class, other target) pair of {k} classes",
                self.name()
            ))),
            Some(y) => Err(Error::Config(format!(
                "{} loss: label {y} for a model with {k} classes",
                self.name()
            ))),
            None => Ok(()),
        }
    }

    /// The loss of one example and its gradient with respect to the logits, in f64. A
    /// non-finite logit is an error (a broken model, not a loss to ascend).
    pub fn value_and_grad(self, z: &[f32], y: usize) -> Result<(f64, Vec<f32>)> {
        self.check(z.len(), &[y])?;
        if let Some(v) = z.iter().find(|v| !v.is_finite()) {
            return Err(Error::Model(format!(
                "{} loss: the model returned a non-finite logit ({v})",
                self.name()
            )));
        }
        Ok(match self {
            AttackLoss::CrossEntropy => {
                // softmax(z) - onehot(y), with the max subtracted for stability.
                let (m, sum) = max_and_sum_exp(z);
                let loss = m + sum.ln() - z[y] as f64;
                let grad = z
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        ((v as f64 - m).exp() / sum - f64::from(u8::from(i == y))) as f32
                    })
                    .collect();
                (loss, grad)
            }
            AttackLoss::Dlr => {
                // The three largest logits' indices (first index wins a tie, as a sort
                // that is stable would have it) and the best other class `o`.
                let mut top = [usize::MAX; 3];
                for i in 0..z.len() {
                    let above = |t: usize| t == usize::MAX || z[i] > z[t];
                    if above(top[0]) {
                        top = [i, top[0], top[1]];
                    } else if above(top[1]) {
                        top = [top[0], i, top[1]];
                    } else if above(top[2]) {
                        top[2] = i;
                    }
                }
                let o = if top[0] == y { top[1] } else { top[0] };
                let d = z[top[0]] as f64 - z[top[2]] as f64 + 1e-12;
                let loss = (z[o] as f64 - z[y] as f64) / d;
                // d/dz of (z_o - z_y) / d, then of 1/d through z_pi1 and z_pi3.
                let mut g = vec![0f64; z.len()];
                g[o] += 1.0 / d;
                g[y] -= 1.0 / d;
                g[top[0]] -= loss / d;
                g[top[2]] += loss / d;
                (loss, g.into_iter().map(|v| v as f32).collect())
            }
            AttackLoss::TargetedDlr => {
                let (y, t) = (y / z.len(), y % z.len());
                // The four largest logits' indices, ties to the first index.
                let mut order: Vec<usize> = (0..z.len()).collect();
                order.sort_by(|&a, &b| z[b].total_cmp(&z[a]).then(a.cmp(&b)));
                let (p1, p3, p4) = (order[0], order[2], order[3]);
                let d = z[p1] as f64 - 0.5 * (z[p3] as f64 + z[p4] as f64) + 1e-12;
                let loss = (z[t] as f64 - z[y] as f64) / d;
                let mut g = vec![0f64; z.len()];
                g[t] += 1.0 / d;
                g[y] -= 1.0 / d;
                g[p1] -= loss / d;
                g[p3] += 0.5 * loss / d;
                g[p4] += 0.5 * loss / d;
                (loss, g.into_iter().map(|v| v as f32).collect())
            }
            AttackLoss::LogitGap => {
                let (y, t) = (y / z.len(), y % z.len());
                let mut g = vec![0f32; z.len()];
                (g[y], g[t]) = (1.0, -1.0);
                (z[y] as f64 - z[t] as f64, g)
            }
        })
    }

    /// The seed of a model's backward pass: `dL/dz` for each row of `[N, K]` logits `z`
    /// (`K = z.len() / labels.len()`), with the loss values stored in `values`. A model
    /// calls it from inside its pass, where it cannot fail, so on an error it returns
    /// zeros and leaves the error in `values` for the model to return afterwards.
    pub fn seed(self, z: &[f32], labels: &[usize], values: &mut Result<Vec<f32>>) -> Vec<f32> {
        let k = z.len() / labels.len().max(1);
        let mut grad = Vec::with_capacity(z.len());
        *values = if k * labels.len() != z.len() {
            Err(Error::Model(format!(
                "{} logits for {} labels",
                z.len(),
                labels.len()
            )))
        } else {
            let rows = z.chunks(k.max(1)).zip(labels);
            rows.map(|(row, &y)| {
                let (value, g) = self.value_and_grad(row, y)?;
                grad.extend(g);
                Ok(value as f32)
            })
            .collect()
        };
        if values.is_err() {
            grad = vec![0.0; z.len()];
        }
        grad
    }

    /// The loss of each row of `[N, K]` logits.
    pub fn per_example(self, logits: &Tensor, labels: &[usize]) -> Result<Vec<f32>> {
        let k = logits.shape().last().copied().unwrap_or(1).max(1);
        logits
            .data()
            .chunks(k)
            .zip(labels)
            .map(|(row, &y)| Ok(self.value_and_grad(row, y)?.0 as f32))
            .collect()
    }
}

/// `max(z)` and `sum(exp(z - max(z)))`, in f64.
fn max_and_sum_exp(z: &[f32]) -> (f64, f64) {
    let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    (m, z.iter().map(|&v| (v as f64 - m).exp()).sum())
}

/// A model an attack can query: logits for a batch, and the input gradient of a summed
/// per-example loss of the logits.
pub trait Classifier: Sync {
    /// Logits `[N, K]` (inference: no tape, batch norm on running statistics).
    fn logits(&self, x: &Tensor) -> Result<Tensor>;

    /// Per-example `loss` values, the logits, and `d(sum_i loss_i)/dx`. Each example's
    /// gradient depends on that example only, so attacks can treat the batch as
    /// independent problems.
    fn loss_and_input_grad(
        &self,
        x: &Tensor,
        labels: &[usize],
        loss: AttackLoss,
    ) -> Result<(Vec<f32>, Tensor, Tensor)>;
}

/// `logsumexp(z_i) - z_i[y_i]` for each row of `[N, K]` logits.
pub fn per_example_ce(logits: &Tensor, labels: &[usize]) -> Vec<f32> {
    let k = logits.shape().last().copied().unwrap_or(1).max(1);
    logits
        .data()
        .chunks(k)
        .zip(labels)
        .map(|(row, &y)| {
            let (m, sum) = max_and_sum_exp(row);
            (m + sum.ln() - row[y] as f64) as f32
        })
        .collect()
}

/// The dense model, through the engine's input-gradient mode (no parameter gradients,
/// no weight-gradient GEMMs).
impl Classifier for Model {
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.infer(x)?)
    }

    fn loss_and_input_grad(
        &self,
        x: &Tensor,
        labels: &[usize],
        loss: AttackLoss,
    ) -> Result<(Vec<f32>, Tensor, Tensor)> {
        let n = labels.len();
        if loss == AttackLoss::CrossEntropy {
            // The engine's own cross-entropy op, fused with its softmax.
            let (out, grad) = self.input_grad(x, labels, &Loss::CrossEntropy)?;
            let logits = Tensor::new(&[n, out.logits.len() / n.max(1)], out.logits)?;
            // The engine differentiates the batch mean; the sum's gradient is n times it.
            let scale = n as f32;
            let mut grad = grad;
            grad.data_mut().iter_mut().for_each(|g| *g *= scale);
            return Ok((per_example_ce(&logits, labels), logits, grad));
        }
        // Any other loss: seed the backward pass at the logits with dL/dz.
        let k = self.arch().num_classes();
        loss.check(k, labels)?;
        let mut values = Ok(vec![]);
        let (z, grad) = self.input_vjp(x, |z| loss.seed(z, labels, &mut values))?;
        Ok((values?, Tensor::new(&[n, k], z)?, grad))
    }
}
