//! Optimisers and learning-rate schedules, as loops over the model's one parameter slice.
//! The update rules are PyTorch's (`torch.optim.SGD`, `torch.optim.Adam`), so a run can
//! be compared with a PyTorch run step for step.

use crate::error::{Error, Result};

/// SGD with momentum, optional Nesterov, L2 weight decay (PyTorch semantics, dampening 0):
/// `g += wd*p; buf = mu*buf + g; p -= lr * (nesterov ? g + mu*buf : buf)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd {
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
    /// Momentum buffer, one value per parameter.
    pub velocity: Vec<f32>,
}

impl Sgd {
    pub fn new(n: usize, momentum: f32, nesterov: bool, weight_decay: f32) -> Result<Sgd> {
        if !(0.0..1.0).contains(&momentum) || weight_decay < 0.0 || (nesterov && momentum == 0.0) {
            return Err(Error::Config(format!(
                "SGD needs 0 <= momentum < 1 (> 0 for Nesterov) and weight decay >= 0, got momentum {momentum}, weight decay {weight_decay}"
            )));
        }
        Ok(Sgd {
            momentum,
            nesterov,
            weight_decay,
            velocity: vec![0.0; n],
        })
    }

    pub fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f32) {
        let (mu, wd) = (self.momentum, self.weight_decay);
        for ((p, &g), v) in params.iter_mut().zip(grads).zip(&mut self.velocity) {
            let g = g + wd * *p;
            let d = if mu == 0.0 {
                g
            } else {
                *v = mu * *v + g;
                if self.nesterov {
                    g + mu * *v
                } else {
                    *v
                }
            };
            *p -= lr * d;
        }
    }
}

/// Adam (PyTorch's, L2 weight decay added to the gradient, not decoupled):
/// `m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;`
/// `p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    /// Steps taken so far (t in the bias corrections).
    pub t: u64,
}

impl Adam {
    pub fn new(n: usize, beta1: f32, beta2: f32, eps: f32, weight_decay: f32) -> Result<Adam> {
        if !(0.0..1.0).contains(&beta1)
            || !(0.0..1.0).contains(&beta2)
            || eps <= 0.0
            || weight_decay < 0.0
        {
            return Err(Error::Config(format!(
                "Adam needs betas in [0, 1), eps > 0, weight decay >= 0; got {beta1}, {beta2}, {eps}, {weight_decay}"
            )));
        }
        Ok(Adam {
            beta1,
            beta2,
            eps,
            weight_decay,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        })
    }

    pub fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f32) {
        self.t += 1;
        let (b1, b2, wd) = (self.beta1, self.beta2, self.weight_decay);
        let bc1 = 1.0 - (b1 as f64).powf(self.t as f64);
        let bc2 = 1.0 - (b2 as f64).powf(self.t as f64);
        let step = (lr as f64 / bc1) as f32;
        let sbc2 = bc2.sqrt() as f32;
        for (((p, &g), m), v) in params
            .iter_mut()
            .zip(grads)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            let g = g + wd * *p;
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p -= step * *m / (v.sqrt() / sbc2 + self.eps);
        }
    }
}

/// Either optimiser, behind one `step`.
#[derive(Clone, Debug, PartialEq)]
pub enum Optimizer {
    Sgd(Sgd),
    Adam(Adam),
}

impl Optimizer {
    pub fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f32) {
        match self {
            Optimizer::Sgd(o) => o.step(params, grads, lr),
            Optimizer::Adam(o) => o.step(params, grads, lr),
        }
    }

    /// The optimiser's state buffers by name (for checkpoints and memory accounting).
    pub fn state(&self) -> Vec<(&'static str, &[f32])> {
        match self {
            Optimizer::Sgd(o) => vec![("velocity", &o.velocity)],
            Optimizer::Adam(o) => vec![("m", &o.m), ("v", &o.v)],
        }
    }

    pub fn state_mut(&mut self) -> Vec<(&'static str, &mut Vec<f32>)> {
        match self {
            Optimizer::Sgd(o) => vec![("velocity", &mut o.velocity)],
            Optimizer::Adam(o) => vec![("m", &mut o.m), ("v", &mut o.v)],
        }
    }
}

/// Learning rate as a function of progress `t` out of `total` (epochs or steps: the
/// caller chooses the unit).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LrSchedule {
    Constant,
    /// Multiply by `gamma` every `every` units (PyTorch's `StepLR`).
    Step {
        every: usize,
        gamma: f32,
    },
    /// Half a cosine from the base rate down to `min_lr` at `total`
    /// (PyTorch's `CosineAnnealingLR` with `T_max = total`).
    Cosine {
        min_lr: f32,
    },
}

impl LrSchedule {
    pub fn lr(&self, base: f32, t: usize, total: usize) -> f32 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Step { every, gamma } => base * gamma.powi((t / every.max(1)) as i32),
            LrSchedule::Cosine { min_lr } => {
                let frac = t.min(total) as f64 / total.max(1) as f64;
                (min_lr as f64
                    + (base - min_lr) as f64 * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos()))
                    as f32
            }
        }
    }

    /// `constant`, `step:EVERY:GAMMA` or `cosine[:MIN_LR]`.
    pub fn parse(s: &str) -> Result<LrSchedule> {
        let bad = || {
            Error::Config(format!(
                "unknown schedule {s:?}; expected constant, step:EVERY:GAMMA or cosine[:MIN_LR]"
            ))
        };
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["constant"] => Ok(LrSchedule::Constant),
            ["cosine"] => Ok(LrSchedule::Cosine { min_lr: 0.0 }),
            ["cosine", m] => Ok(LrSchedule::Cosine {
                min_lr: m.parse().map_err(|_| bad())?,
            }),
            ["step", e, g] => Ok(LrSchedule::Step {
                every: e.parse().map_err(|_| bad())?,
                gamma: g.parse().map_err(|_| bad())?,
            }),
            _ => Err(bad()),
        }
    }
}

/// The form [`LrSchedule::parse`] reads back: `constant`, `step:EVERY:GAMMA`, `cosine`
/// (to 0) or `cosine:MIN_LR`.
impl std::fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LrSchedule::Constant => write!(f, "constant"),
            LrSchedule::Step { every, gamma } => write!(f, "step:{every}:{gamma}"),
            LrSchedule::Cosine { min_lr } if *min_lr == 0.0 => write!(f, "cosine"),
            LrSchedule::Cosine { min_lr } => write!(f, "cosine:{min_lr}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_momentum_matches_hand_computed_pytorch_steps() {
        // p0 = 1, g = 0.5 each step, lr 0.1, mu 0.9, wd 0.01.
        let mut o = Sgd::new(1, 0.9, false, 0.01).unwrap();
        let mut p = [1.0f32];
        o.step(&mut p, &[0.5], 0.1);
        // g = 0.51, buf = 0.51, p = 1 - 0.051
        assert!((p[0] - 0.949).abs() < 1e-7);
        o.step(&mut p, &[0.5], 0.1);
        // g = 0.5 + 0.00949 = 0.50949, buf = 0.9*0.51 + 0.50949 = 0.96849
        assert!((p[0] - (0.949 - 0.096849)).abs() < 1e-6);
    }

    #[test]
    fn sgd_nesterov_matches_hand_computed() {
        let mut o = Sgd::new(1, 0.5, true, 0.0).unwrap();
        let mut p = [0.0f32];
        o.step(&mut p, &[1.0], 1.0); // buf 1, d = 1 + 0.5 = 1.5
        o.step(&mut p, &[1.0], 1.0); // buf 1.5, d = 1 + 0.75 = 1.75
        assert!((p[0] + 3.25).abs() < 1e-6);
    }

    #[test]
    fn adam_first_steps_move_by_lr() {
        // With bias correction the first step is lr * g/|g| (up to eps).
        let mut o = Adam::new(2, 0.9, 0.999, 1e-8, 0.0).unwrap();
        let mut p = [0.0f32, 0.0];
        o.step(&mut p, &[3.0, -0.001], 0.01);
        assert!((p[0] + 0.01).abs() < 1e-6 && (p[1] - 0.01).abs() < 1e-4);
        // Second step, same gradient: m/sqrt(v) still 1 after correction.
        o.step(&mut p, &[3.0, -0.001], 0.01);
        assert!((p[0] + 0.02).abs() < 1e-6);
    }

    #[test]
    fn schedules() {
        assert_eq!(LrSchedule::Constant.lr(0.1, 5, 10), 0.1);
        let s = LrSchedule::parse("step:3:0.5").unwrap();
        assert_eq!(
            (s.lr(1.0, 2, 10), s.lr(1.0, 3, 10), s.lr(1.0, 7, 10)),
            (1.0, 0.5, 0.25)
        );
        let c = LrSchedule::parse("cosine").unwrap();
        assert_eq!(c.lr(1.0, 0, 10), 1.0);
        assert!((c.lr(1.0, 5, 10) - 0.5).abs() < 1e-6 && c.lr(1.0, 10, 10).abs() < 1e-6);
        assert!(LrSchedule::parse("linear").is_err());
        for text in ["constant", "step:3:0.5", "cosine", "cosine:0.001"] {
            let s = LrSchedule::parse(text).unwrap();
            assert_eq!(s.to_string(), text);
            assert_eq!(LrSchedule::parse(&s.to_string()).unwrap(), s);
        }
    }

    #[test]
    fn invalid_hyperparameters_are_errors() {
        assert!(Sgd::new(1, 1.0, false, 0.0).is_err());
        assert!(Sgd::new(1, 0.0, true, 0.0).is_err());
        assert!(Adam::new(1, 0.9, 0.999, 0.0, 0.0).is_err());
    }
}
