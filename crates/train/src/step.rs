//! One robust training step of method.md sections 1 and 2, on one screen:
//!
//! 1. craft the adversarial batch on the student (PGD, section 1: the inner maximisation);
//! 2. the frozen teacher's logits on the clean or the adversarial batch (distillation);
//! 3. the loss `(1 - a) CE(student, y) + a t^2 KL(teacher_t || student_t)` and its
//!    gradient (optionally mixed with the clean batch's), or with TRADES (`adv =
//!    trades:..`) `(1 - a) TRADES + a t^2 KL(teacher_t || student_t)`, TRADES's
//!    `CE(clean) + beta KL(clean || adv)` in place of the cross-entropy;
//! 4. the compressor's hooks around the optimiser step: the gradient mask before it, the
//!    proximal operator (or ADMM's projection bookkeeping) after it (section 2).

use crate::config::{AdvTraining, TeacherInput, TrainConfig};
use crate::Result;
use rand::RngCore;
use rcc_compress::Compressor;
use rcc_nn::optim::Optimizer;
use rcc_nn::{Loss, Model};
use rcc_tensor::{DistillCfg, Tensor};

/// The counting allocator's per-thread figures, for programs that install one (a library
/// cannot: `xtask` does). Plain function pointers, so that the trainer can measure what the
/// compressor allocates without knowing the allocator.
#[derive(Clone, Copy, Debug)]
pub struct HeapCounter {
    /// Heap bytes this thread holds.
    pub live: fn() -> isize,
    /// Restarts this thread's high-water mark at its live bytes, and returns them.
    pub reset_peak: fn() -> isize,
    /// This thread's most live bytes since the last reset.
    pub peak: fn() -> isize,
}

/// The compressor's heap as the counting allocator sees it: the bytes its state holds
/// between calls (ADMM's Z and U, a mask), and the most it ever held including a call's
/// scratch, counted on the training thread (the calls are serial). Without a counter it
/// measures nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct CompressorHeap {
    counter: Option<HeapCounter>,
    pub held: isize,
    pub peak: usize,
}

impl CompressorHeap {
    pub fn new(counter: Option<HeapCounter>) -> CompressorHeap {
        CompressorHeap {
            counter,
            held: 0,
            peak: 0,
        }
    }

    /// `(held, peak)` if measured.
    pub fn figures(&self) -> Option<(isize, usize)> {
        self.counter.map(|_| (self.held, self.peak))
    }

    /// Runs `f`, adding what it allocates and frees to the compressor's figures.
    pub fn measure<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let Some(c) = self.counter else {
            return f();
        };
        let base = (c.reset_peak)();
        let r = f();
        let used = ((c.peak)() - base).max(0) as usize;
        self.peak = self.peak.max(self.held.max(0) as usize + used);
        self.held += (c.live)() - base;
        r
    }
}

/// What one step reports.
#[derive(Clone, Debug)]
pub struct StepOut {
    /// The batch's mean loss. If it is not finite, no update was made.
    pub loss: f32,
    /// Examples of the batch the student classified right (on the batch it trained on).
    pub correct: usize,
}

/// Everything a step reads and updates.
pub struct Step<'a> {
    pub cfg: &'a TrainConfig,
    /// The training attack at this epoch (ramped during the warm-up).
    pub adv: AdvTraining,
    pub teacher: Option<&'a Model>,
    pub compressor: Option<&'a Compressor>,
    pub heap: &'a mut CompressorHeap,
    pub opt: &'a mut Optimizer,
    /// Scratch for the gradient, one entry per parameter.
    pub grads: &'a mut [f32],
    pub lr: f32,
    pub epoch: usize,
    pub step: usize,
}

/// Index of the largest value (the first on ties), i.e. the predicted class.
fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold(0, |best, (j, &v)| if v > row[best] { j } else { best })
}

impl Step<'_> {
    /// One robust step on the batch `(x, labels)`: updates `model`'s parameters, the
    /// optimiser and the compressor's state, unless the loss is not finite.
    pub fn run(
        &mut self,
        model: &mut Model,
        x: &Tensor,
        labels: &[usize],
        rng: &mut dyn RngCore,
    ) -> Result<StepOut> {
        let cfg = self.cfg;
        self.grads.fill(0.0);
        // 1. The inner maximisation: PGD on the student as it is now.
        let x_adv = self.adv.attack(model, x, labels, rng)?;
        // 2. The frozen teacher's logits on the clean or the adversarial batch; its
        // inference records no graph.
        let teacher_logits = match self.teacher {
            Some(t) if cfg.alpha > 0.0 => {
                let u = match (&x_adv, cfg.teacher_input) {
                    (Some(xa), TeacherInput::Adv) => xa,
                    _ => x,
                };
                Some(t.infer(u)?.data().to_vec())
            }
            _ => None,
        };
        // 3. The loss of method.md section 1 and its gradient.
        let loss = match &teacher_logits {
            Some(tl) => Loss::Distill {
                teacher_logits: tl,
                cfg: DistillCfg {
                    alpha: cfg.alpha,
                    temperature: cfg.temperature,
                },
            },
            None => Loss::CrossEntropy,
        };
        let grads = &mut *self.grads;
        let out = match (&x_adv, self.adv.trades_beta()) {
            // TRADES: its loss on the clean and the adversarial batch together, with the
            // distillation term on the adversarial one (Model::train_grad_trades).
            (Some(xa), Some(beta)) => {
                let distill = match loss {
                    Loss::Distill {
                        teacher_logits,
                        cfg,
                    } => Some((teacher_logits, cfg)),
                    Loss::CrossEntropy => None,
                };
                model.train_grad_trades(x, xa, labels, beta, distill, grads, rng)?
            }
            (None, _) => model.train_grad(x, labels, &loss, grads, rng)?,
            (Some(xa), None) if cfg.adv_mix == 0.0 => {
                model.train_grad(xa, labels, &loss, grads, rng)?
            }
            (Some(xa), None) => {
                // (1 - mix) * L(adv) + mix * L(clean): the clean pass's gradient is
                // scaled so that one final scaling by (1 - mix) weights both right.
                model.train_grad(x, labels, &loss, grads, rng)?;
                let r = cfg.adv_mix / (1.0 - cfg.adv_mix).max(1e-6);
                grads.iter_mut().for_each(|g| *g *= r);
                let out = model.train_grad(xa, labels, &loss, grads, rng)?;
                grads.iter_mut().for_each(|g| *g *= 1.0 - cfg.adv_mix);
                out
            }
        };
        let k = out.logits.len() / labels.len().max(1);
        let correct = out
            .logits
            .chunks(k.max(1))
            .zip(labels)
            .filter(|(row, &y)| argmax(row) == y)
            .count();
        if !out.loss.is_finite() {
            return Ok(StepOut {
                loss: out.loss,
                correct,
            });
        }
        // 4. The compressor's hooks around the optimiser step (method.md section 2).
        if let Some(c) = self.compressor {
            self.heap.measure(|| c.before_step(&model.params, grads));
        }
        self.opt.step(&mut model.params, grads, self.lr);
        if let Some(c) = self.compressor {
            let (epoch, step, lr) = (self.epoch, self.step, self.lr);
            self.heap
                .measure(|| c.after_step(&mut model.params, epoch, step, lr));
        }
        Ok(StepOut {
            loss: out.loss,
            correct,
        })
    }
}
