//! The training loop: epochs, the compressor's phases, metrics, checkpoints and resume,
//! with an [`Observer`] for progress (the library prints nothing by itself).
//!
//! Every random stream is derived from (seed, epoch): the sample order from
//! [`epoch_order`], dropout, augmentation and the attack's random starts from
//! [`epoch_seed`], read through an [`EpochRng`] that counts its position. A checkpoint
//! is written at each epoch end and every `checkpoint-every` steps; a mid-epoch one also
//! holds the step, the stream's position and the epoch's running loss and accuracy. A
//! run resumed from any checkpoint with the same seed and thread count therefore
//! finishes with a model bit-identical to an uninterrupted run.

use crate::metrics::{CompressMetrics, EpochMetrics, RobustCheck};
use crate::rng::EpochRng;
use crate::run_dir::RunDir;
use crate::step::{CompressorHeap, HeapCounter, Step};
use crate::{AdvTraining, Error, Result, TeacherInput, TrainConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rcc_attack::PgdConfig;
use rcc_compress::{Compressor, Method, StateBytes};
use rcc_data::{epoch_order, Dataset, Split};
use rcc_nn::safetensors::SafeTensors;
use rcc_nn::{checkpoint, Model};
use std::path::Path;
use std::time::Instant;

/// Where a step is, for a progress line.
#[derive(Clone, Copy, Debug)]
pub struct StepProgress {
    /// 0-based epoch and step; `epochs` and `steps` per epoch in all.
    pub epoch: usize,
    pub epochs: usize,
    pub step: usize,
    pub steps: usize,
    /// Mean loss and accuracy of the epoch so far.
    pub loss: f64,
    pub acc: f64,
    pub samples_per_s: f64,
    /// Seconds left in this call, at the current rate.
    pub eta_secs: f64,
}

/// What a program shows of a run. Every method has a default that does nothing, so a
/// program implements only what it shows; [`Quiet`] shows nothing.
pub trait Observer {
    /// After every step.
    fn step(&mut self, _p: &StepProgress) {}
    /// After every epoch, with its metrics (already in `metrics.jsonl`).
    fn epoch(&mut self, _cfg: &TrainConfig, _m: &EpochMetrics) {}
    /// A line of news: a teacher reused or trained, a run resumed, an evaluation started.
    fn note(&mut self, _msg: &str) {}
    /// An evaluation attack's progress (batches of long attacks, and each result).
    fn attack(&mut self, _label: &str, _p: &rcc_attack::Progress<'_>) {}
    /// The counting allocator's figures, if the program installed one: the compressor's
    /// memory is then measured, not only counted (method.md section 2).
    fn heap_counter(&self) -> Option<HeapCounter> {
        None
    }
}

/// An observer that shows nothing.
pub struct Quiet;

impl Observer for Quiet {}

/// The datasets of a run: (train, held-out validation if any, test).
pub struct RunData {
    pub train: Dataset,
    pub val: Option<Dataset>,
    pub test: Dataset,
}

impl RunData {
    /// The run's dataset from the data directory `dir`: the first `train-limit` training
    /// images and `test-limit` test images if set, with its validation split held out of them if `cfg.val > 0`; an
    /// arch that does not take the dataset's images is refused.
    pub fn load(cfg: &TrainConfig, dir: &Path) -> Result<RunData> {
        let mut full = Dataset::load(cfg.dataset, Split::Train, dir)?;
        if cfg.train_limit > 0 && cfg.train_limit < full.len() {
            full = full.subset(&(0..cfg.train_limit).collect::<Vec<_>>());
        }
        let mut test = Dataset::load(cfg.dataset, Split::Test, dir)?;
        if cfg.test_limit > 0 && cfg.test_limit < test.len() {
            test = test.subset(&(0..cfg.test_limit).collect::<Vec<_>>());
        }
        let (train, val) = if cfg.val > 0 {
            let (t, v) = full.split_validation(cfg.val, cfg.seed)?;
            (t, Some(v))
        } else {
            (full, None)
        };
        if train.shape != cfg.arch.input_shape() {
            return Err(Error::Config(format!(
                "arch {} takes {:?} images, dataset {} has {:?}",
                cfg.arch,
                cfg.arch.input_shape(),
                cfg.dataset,
                train.shape
            )));
        }
        Ok(RunData { train, val, test })
    }

    /// The set a finished run is evaluated on: the validation split if the run holds one
    /// out (settings are chosen on its figures, and the test set stays unseen), else the
    /// test set.
    pub fn final_eval(&self) -> &Dataset {
        self.val.as_ref().unwrap_or(&self.test)
    }
}

/// What a finished (or stopped) run reports.
#[derive(Debug)]
pub struct RunResult {
    pub model: Model,
    pub epochs_done: usize,
    /// NaN when the call trained no epoch (resumed after the last one).
    pub test_acc: f64,
    /// Samples trained in this call.
    pub samples: usize,
}

/// Where a call to [`train`] stops early (tests use it to stop a run where a kill would).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Train to the last epoch.
    Never,
    /// After this many epochs of this call.
    AfterEpochs(usize),
    /// After this many steps of this call (the last one checkpointed, as a kill right
    /// after that checkpoint would leave it).
    AfterSteps(usize),
}

/// Where a mid-epoch checkpoint left an epoch: steps done, the stream's position, and
/// the running sums of the epoch's metrics.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Position {
    step: usize,
    rng_words: u64,
    loss_sum: f64,
    correct: usize,
    seen: usize,
}

impl Position {
    const KEYS: [&'static str; 5] = ["step", "rng_words", "loss_sum", "correct", "seen"];

    fn to_metadata(self) -> [String; 5] {
        [
            self.step.to_string(),
            self.rng_words.to_string(),
            // Shortest round-trip form: parses back to the same bits.
            self.loss_sum.to_string(),
            self.correct.to_string(),
            self.seen.to_string(),
        ]
    }

    /// The position in a checkpoint's metadata; `None` for an epoch-end checkpoint.
    fn from_metadata(
        meta: &std::collections::BTreeMap<String, String>,
        path: &Path,
    ) -> Result<Option<Position>> {
        if !meta.contains_key("step") {
            return Ok(None);
        }
        fn field<T: std::str::FromStr>(
            meta: &std::collections::BTreeMap<String, String>,
            path: &Path,
            key: &str,
        ) -> Result<T> {
            let text = meta.get(key).map_or("", String::as_str);
            text.parse().map_err(|_| Error::File {
                path: path.to_path_buf(),
                problem: format!("__metadata__.{key}: expected a number, found {text:?}"),
            })
        }
        Ok(Some(Position {
            step: field(meta, path, "step")?,
            rng_words: field(meta, path, "rng_words")?,
            loss_sum: field(meta, path, "loss_sum")?,
            correct: field(meta, path, "correct")?,
            seen: field(meta, path, "seen")?,
        }))
    }
}

/// Seed of epoch `epoch`'s random streams (dropout, augmentation, attack starts); the
/// sample order comes from [`epoch_order`] with the run seed.
pub fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    // SplitMix64 of (seed, epoch): well-mixed, and distinct from the order's stream.
    let mut z =
        seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Accuracy under PGD-40 (step 0.01, random start) at `eps` on the first `limit` images
/// of `test`, counting an image only if it is also classified right when clean: the
/// cheap robustness check run during training (the evaluation runs the full one).
pub fn robust_accuracy(
    model: &Model,
    test: &Dataset,
    eps: f32,
    limit: usize,
    seed: u64,
) -> Result<f64> {
    let n = limit.min(test.len());
    let cfg = PgdConfig {
        eps,
        steps: 40,
        step_size: 0.01,
        random_start: true,
        restarts: 1,
    };
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED_0FA7_7AC0);
    let mut correct = 0;
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let (x, labels) = test.batch(chunk, None);
        let clean = model.infer(&x)?.argmax_rows();
        let xa = rcc_attack::pgd_linf(model, &x, &labels, &cfg, &mut rng)?;
        let adv = model.infer(&xa)?.argmax_rows();
        correct += (0..labels.len())
            .filter(|&i| clean[i] == labels[i] && adv[i] == labels[i])
            .count();
    }
    Ok(correct as f64 / n.max(1) as f64)
}

/// The model a run starts from: `init` if given, else the teacher when a pruning method
/// compresses it (same arch), else PyTorch's initialisation with the run's seed.
fn initial_model(cfg: &TrainConfig, teacher: Option<&Model>) -> Result<Model> {
    let init = match (&cfg.init, teacher) {
        (i, _) if !i.is_empty() => Some(
            Model::load(Path::new(i), Some(cfg.arch))
                .map_err(|e| Error::from(e).context("init"))?,
        ),
        (_, Some(t)) if cfg.method.is_some_and(|m| m.prunes()) && t.arch() == cfg.arch => {
            Some(t.clone())
        }
        _ => None,
    };
    match init {
        Some(i) if i.arch() != cfg.arch => Err(Error::Config(format!(
            "init: the model is {}, the run's arch is {}",
            i.arch(),
            cfg.arch
        ))),
        Some(i) => Ok(i),
        None => Ok(Model::new(cfg.arch, cfg.seed)),
    }
}

/// Trains `cfg` in `run`, from its last checkpoint if `resume`, until `stop`.
pub fn train(
    cfg: &TrainConfig,
    data: &RunData,
    run: &RunDir,
    resume: bool,
    stop: Stop,
    obs: &mut dyn Observer,
) -> Result<RunResult> {
    cfg.check()?;
    run.create()?;
    let ckpt = run.checkpoint();
    let teacher = cfg.load_teacher()?;
    if cfg.alpha > 0.0 && teacher.is_none() {
        return Err(Error::Config(
            "alpha > 0 needs a --teacher model file".into(),
        ));
    }
    // Without adversarial examples there is no adversarial batch to show the teacher;
    // refuse rather than silently distil on the clean one.
    if cfg.alpha > 0.0 && cfg.teacher_input == TeacherInput::Adv && cfg.adv == AdvTraining::None {
        return Err(Error::Config(
            "teacher-input = adv needs adversarial examples (adv = none); use teacher-input = clean"
                .into(),
        ));
    }
    let mut model = initial_model(cfg, teacher.as_ref())?;
    let mut opt = cfg.optimizer_for(model.params.len())?;
    let config_text = cfg.to_text();
    let n = data.train.len();
    let steps = n.div_ceil(cfg.batch);
    let mut grads = vec![0.0f32; model.params.len()];
    // The compressor's own memory, measured by the counting allocator if there is one
    // (method.md section 2: ADMM's Z and U against the proximal method's mask).
    let mut heap = CompressorHeap::new(obs.heap_counter());
    // Built from the initial model, also when resuming: a global budget splits its
    // weights across layers by the initial magnitudes, and a split taken from a
    // checkpoint's half-pruned weights would be another run.
    let mut compressor = heap.measure(|| -> Result<Option<Compressor>> {
        let Some(m) = cfg.method else {
            return Ok(None);
        };
        let c = Compressor::new(
            m,
            &model.net,
            &model.params,
            cfg.rate,
            cfg.budget,
            cfg.epochs - cfg.finetune.min(cfg.epochs),
            steps,
        )
        .and_then(|c| c.with_schedule(cfg.ramp_start, cfg.ramp))?;
        Ok(Some(c))
    })?;
    let mut start = 0;
    let mut position = None;
    // The checkpoint resumed from: the last one, or the one before if the last does not
    // load (a corrupted file; a kill never leaves a partial one, see `save` below).
    let mut from = ckpt.clone();
    // The checkpoint file, read once: the model, the optimiser and the position come from
    // it here, a resumed ADMM's Z and U below. Dropped once the compressor has its state.
    let mut resumed_file = None;
    if resume {
        let prev = run.previous_checkpoint();
        let load = |path: &Path, model: &mut Model, opt: &mut rcc_nn::optim::Optimizer| {
            let file = SafeTensors::read(path)?;
            let done = checkpoint::restore(&file, path, model, opt)?;
            let pos = Position::from_metadata(&file.metadata, path)?;
            Ok::<_, Error>((done, pos, file))
        };
        let file;
        (start, position, file) = match load(&ckpt, &mut model, &mut opt) {
            Ok(r) => r,
            Err(e) if prev.exists() => {
                obs.note(&format!(
                    "warning: {e}; resuming from the previous checkpoint {}",
                    prev.display()
                ));
                from = prev.clone();
                load(&prev, &mut model, &mut opt).map_err(|e2| {
                    e2.context(format!(
                        "cannot resume ({e}), nor from the previous checkpoint"
                    ))
                })?
            }
            Err(e) => return Err(e.context("cannot resume")),
        };
        // Kept for ADMM's Z and U only: any other method needs nothing more from it.
        resumed_file = matches!(cfg.method, Some(Method::Admm { .. })).then_some(file);
        run.keep_metrics(start)?;
        obs.note(&match position {
            Some(p) => format!(
                "resuming {} in epoch {}/{} after step {}",
                run.path().display(),
                start + 1,
                cfg.epochs,
                p.step
            ),
            None => format!(
                "resuming {} after epoch {start}/{}",
                run.path().display(),
                cfg.epochs
            ),
        });
    } else {
        run.start(cfg)?;
    }
    if let Some(c) = &mut compressor {
        heap.measure(|| -> Result<()> {
            // A resumed ADMM run's Z, U and rho, copied from the checkpoint read above into
            // the state the compressor allocates here, so that the measurement counts
            // that state once and not the file (reading the file in here, once per
            // tensor, put twice its size into the measured peak).
            let mut admm_state = None;
            if let (Some(file), Method::Admm { .. }) = (&resumed_file, c.method()) {
                let extra = |name| checkpoint::extra(file, &from, name);
                match (extra("admm.z")?, extra("admm.u")?, extra("admm.rho")?) {
                    (Some(z), Some(u), Some(&[rho])) => admm_state = Some((z, u, rho)),
                    // Saved after the main phase: the mask comes from the zero pattern.
                    (None, None, None) => {}
                    _ => {
                        return Err(Error::File {
                            path: from.clone(),
                            problem: "extra.admm.z, extra.admm.u, extra.admm.rho: ADMM's \
                                      state is incomplete; expected all three (rho as one \
                                      value) or none"
                                .into(),
                        })
                    }
                }
            }
            c.start(&mut model.params, start, admm_state).map_err(|e| {
                let e = Error::from(e);
                if resume {
                    e.context(format!("cannot resume from {}", from.display()))
                } else {
                    e
                }
            })
        })?;
    }
    drop(resumed_file);
    let mut test_acc = f64::NAN;
    let end = match stop {
        Stop::AfterEpochs(e) => (start + e).min(cfg.epochs),
        _ => cfg.epochs,
    };
    let mut samples = 0usize;
    let mut steps_done = 0usize;
    // A checkpoint of the model, the optimiser, the compressor's state and `meta`.
    let save = |model: &Model,
                opt: &rcc_nn::optim::Optimizer,
                compressor: &Option<Compressor>,
                epochs_done: usize,
                meta: &[(&str, &str)]|
     -> Result<()> {
        let admm = compressor.as_ref().and_then(|c| c.admm_state());
        let rho = admm.map(|a| [a.2]);
        let extra: Vec<(&str, &[f32])> = match (admm, &rho) {
            (Some((z, u, _)), Some(r)) => vec![("admm.z", z), ("admm.u", u), ("admm.rho", r)],
            _ => vec![],
        };
        let mut all = vec![("config", config_text.as_str())];
        all.extend_from_slice(meta);
        // The last checkpoint stays as the previous one (a hard link: no copy) until the
        // new one is complete; the new one replaces the last by an atomic rename.
        let prev = run.previous_checkpoint();
        if ckpt.exists() {
            match std::fs::remove_file(&prev) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(&prev, e))
                }
                _ => {}
            }
            std::fs::hard_link(&ckpt, &prev).map_err(|e| Error::io(&prev, e))?;
        }
        Ok(checkpoint::save_with(
            &ckpt,
            model,
            opt,
            epochs_done,
            &all,
            &extra,
        )?)
    };
    for epoch in start..end {
        let lr = cfg.schedule.lr(cfg.lr, epoch, cfg.epochs);
        let ramp = if cfg.adv_warmup > 0 {
            ((epoch + 1) as f32 / cfg.adv_warmup as f32).min(1.0)
        } else {
            1.0
        };
        let adv = cfg.adv.scaled(ramp);
        let order = epoch_order(n, cfg.seed, epoch);
        // From the start of the epoch, or from where a mid-epoch checkpoint left it.
        let p = position.take().unwrap_or(Position {
            step: 0,
            rng_words: 0,
            loss_sum: 0.0,
            correct: 0,
            seen: 0,
        });
        let mut rng = EpochRng::at(epoch_seed(cfg.seed, epoch), p.rng_words);
        let t0 = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (p.loss_sum, p.correct, p.seen);
        let seen_before = seen;
        for (step, idx) in order.chunks(cfg.batch).enumerate().skip(p.step) {
            let (x, labels) = if cfg.augment {
                data.train.batch(idx, Some(&mut rng))
            } else {
                data.train.batch(idx, None)
            };
            let out = Step {
                cfg,
                adv,
                teacher: teacher.as_ref(),
                compressor: compressor.as_ref(),
                heap: &mut heap,
                opt: &mut opt,
                grads: &mut grads,
                lr,
                epoch,
                step,
            }
            .run(&mut model, &x, &labels, &mut rng)?;
            if !out.loss.is_finite() {
                return Err(Error::Run(format!(
                    "the loss became {} at epoch {} step {}; stopped. The last good checkpoint is {} ({} epochs done). Try a lower --lr (now {lr}).",
                    out.loss,
                    epoch + 1,
                    step + 1,
                    ckpt.display(),
                    epoch
                )));
            }
            loss_sum += out.loss as f64 * labels.len() as f64;
            correct += out.correct;
            seen += labels.len();
            samples += labels.len();
            steps_done += 1;
            let every = cfg.checkpoint_every;
            let stop_here = stop == Stop::AfterSteps(steps_done);
            if step + 1 < steps && ((every > 0 && (step + 1) % every == 0) || stop_here) {
                let p = Position {
                    step: step + 1,
                    rng_words: rng.words(),
                    loss_sum,
                    correct,
                    seen,
                };
                let vals = p.to_metadata();
                let meta: Vec<(&str, &str)> = Position::KEYS
                    .iter()
                    .copied()
                    .zip(vals.iter().map(String::as_str))
                    .collect();
                save(&model, &opt, &compressor, epoch, &meta)?;
            }
            if stop_here && step + 1 < steps {
                return Ok(RunResult {
                    model,
                    epochs_done: epoch,
                    test_acc,
                    samples,
                });
            }
            let rate = (seen - seen_before) as f64 / t0.elapsed().as_secs_f64();
            obs.step(&StepProgress {
                epoch,
                epochs: cfg.epochs,
                step,
                steps,
                loss: loss_sum / seen as f64,
                acc: correct as f64 / seen as f64,
                samples_per_s: rate,
                eta_secs: ((end - epoch) as f64 * n as f64 - seen as f64) / rate,
            });
        }
        let train_secs = t0.elapsed().as_secs_f64();
        // Compression bookkeeping before evaluating: the end of the main phase projects to
        // the exact budget, and the epoch's figures are those of the projected model.
        let mut compress = None;
        if let Some(c) = &mut compressor {
            // ADMM's Z and U exist until the end of its phase: read their size first.
            let admm_bytes = c.state_bytes().1;
            // Measured before the epoch's end, which may hard-prune (outside the heap
            // count: it is a diagnostic, not the method's state).
            let off_budget = c.off_budget(&model.params);
            heap.measure(|| c.end_epoch(&mut model.params, epoch))?;
            let p = c.prunable();
            compress = Some(CompressMetrics {
                phase: c.phase(epoch).to_string(),
                rate: p.rate(&model.params),
                nnz: p.nnz(&model.params),
                prunable: p.total(),
                off_budget,
                state: StateBytes {
                    params: 4 * model.params.len(),
                    grads: 4 * grads.len(),
                    optimizer: opt.state().iter().map(|(_, s)| 4 * s.len()).sum(),
                    masks: c.state_bytes().0,
                    admm: admm_bytes,
                    teacher: teacher.as_ref().map_or(0, |t| 4 * t.params.len()),
                },
                heap: heap.figures(),
            });
        }
        let (acc, test_loss) = crate::evaluate::accuracy_and_loss(&model, &data.test, 1000)?;
        let val = data
            .val
            .as_ref()
            .map(|v| crate::evaluate::accuracy_and_loss(&model, v, 1000))
            .transpose()?;
        let robust_due = cfg.robust_every > 0
            && ((epoch + 1) % cfg.robust_every == 0 || epoch + 1 == cfg.epochs);
        // With a validation split the check runs on it, so that choosing settings by it
        // never looks at the test set.
        let (robust_set, robust_split) = match &data.val {
            Some(v) => (v, "val"),
            None => (&data.test, "test"),
        };
        let robust = if robust_due && cfg.adv.eps() > 0.0 {
            Some(RobustCheck {
                split: robust_split.into(),
                acc: robust_accuracy(
                    &model,
                    robust_set,
                    cfg.adv.eps(),
                    cfg.robust_limit,
                    cfg.seed,
                )?,
                n: cfg.robust_limit.min(robust_set.len()),
            })
        } else {
            None
        };
        test_acc = acc;
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            lr,
            train_loss: loss_sum / seen as f64,
            train_acc: correct as f64 / seen as f64,
            test_loss,
            test_acc: acc,
            val: val.map(|(va, vl)| (vl, va)),
            train_adv: (adv != AdvTraining::None).then(|| adv.to_string()),
            robust,
            compress,
            peak_rss_bytes: rcc_compress::peak_rss_bytes().unwrap_or(0),
            seconds: train_secs,
            samples_per_s: (seen - seen_before) as f64 / train_secs,
        };
        run.append_metrics(&metrics)?;
        save(&model, &opt, &compressor, epoch + 1, &[])?;
        obs.epoch(cfg, &metrics);
        if stop == Stop::AfterSteps(steps_done) {
            return Ok(RunResult {
                model,
                epochs_done: epoch + 1,
                test_acc,
                samples,
            });
        }
    }
    Ok(RunResult {
        model,
        epochs_done: end,
        test_acc,
        samples,
    })
}
