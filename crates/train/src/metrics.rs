//! One line of `metrics.jsonl` per epoch: [`EpochMetrics`], its one JSON writer
//! ([`EpochMetrics::to_json`]) and its one reader ([`EpochMetrics::from_json`]), and what
//! a finished run's lines add up to ([`TrainingFacts`]).
//!
//! A value that is not finite is written as `null` (JSON has no NaN or inf) and read
//! back as NaN, so a reader sees it as missing instead of losing the line.

use crate::{Error, Result};
use rcc_compress::StateBytes;
use rcc_nn::json::{parse_json, Json};
use std::path::Path;

/// The during-training PGD-40 check of an epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct RobustCheck {
    /// `val` when the run holds out a validation split (settings are chosen on it, never
    /// on the test set), else `test`.
    pub split: String,
    pub acc: f64,
    /// Images checked (the first ones of the split).
    pub n: usize,
}

/// What the compressor reports at an epoch's end (method.md section 2).
#[derive(Clone, Debug, PartialEq)]
pub struct CompressMetrics {
    /// `prox`, `admm`, `debias`, ... (the compressor's phase at this epoch).
    pub phase: String,
    /// Prunable weights over non-zero ones.
    pub rate: f64,
    pub nnz: usize,
    pub prunable: usize,
    /// While the main phase runs, ||W - Proj_S(W)|| / ||W|| over the pruned tensors
    /// before the epoch's end (`Compressor::off_budget`): the share of their norm the
    /// hard prune would remove. `None` once the mask is frozen.
    pub off_budget: Option<f64>,
    /// The whole training state as counted (parameters, gradients, optimiser, masks,
    /// ADMM's Z and U, teacher).
    pub state: StateBytes,
    /// The compressor's heap as the counting allocator measured it: bytes held between
    /// calls and the most held including a call's scratch. `None` when the program has no
    /// counting allocator ([`crate::HeapCounter`]).
    pub heap: Option<(isize, usize)>,
}

/// One epoch of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochMetrics {
    /// 1-based.
    pub epoch: usize,
    pub lr: f32,
    pub train_loss: f64,
    pub train_acc: f64,
    pub test_loss: f64,
    pub test_acc: f64,
    /// (loss, accuracy) on the held-out validation split, if the run has one.
    pub val: Option<(f64, f64)>,
    /// The training attack at this epoch (ramped during the warm-up), if adversarial.
    pub train_adv: Option<String>,
    pub robust: Option<RobustCheck>,
    pub compress: Option<CompressMetrics>,
    pub peak_rss_bytes: u64,
    /// Training time of the epoch (evaluation excluded).
    pub seconds: f64,
    pub samples_per_s: f64,
}

/// The number at `path` (object keys, outermost first) in a parsed line; None when a key
/// is missing or the value is not a number (`null`: a non-finite value).
pub fn lookup(doc: &Json, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(doc, |v, k| v.get(k))?.as_f64()
}

impl EpochMetrics {
    /// The line as written to `metrics.jsonl` (no newline), by the one JSON writer
    /// (`rcc_nn::json`).
    pub fn to_json(&self) -> String {
        let fixed = Json::fixed;
        let mut m: Vec<(String, Json)> = vec![
            ("epoch".into(), Json::int(self.epoch as u64)),
            ("lr".into(), Json::num(self.lr)),
            ("train_loss".into(), fixed(self.train_loss, 6)),
            ("train_acc".into(), fixed(self.train_acc, 6)),
            ("test_loss".into(), fixed(self.test_loss, 6)),
            ("test_acc".into(), fixed(self.test_acc, 6)),
        ];
        if let Some((vl, va)) = self.val {
            m.push(("val_loss".into(), fixed(vl, 6)));
            m.push(("val_acc".into(), fixed(va, 6)));
        }
        if let Some(adv) = &self.train_adv {
            m.push(("train_adv".into(), Json::str(adv.as_str())));
        }
        if let Some(r) = &self.robust {
            m.push((format!("{}_pgd40_acc", r.split), fixed(r.acc, 6)));
            m.push((format!("{}_pgd40_n", r.split), Json::int(r.n as u64)));
        }
        if let Some(c) = &self.compress {
            let st = &c.state;
            let bytes = |v: usize| Json::int(v as u64);
            m.push(("phase".into(), Json::str(c.phase.as_str())));
            m.push(("rate".into(), fixed(c.rate, 6)));
            m.push(("nnz".into(), bytes(c.nnz)));
            m.push(("prunable".into(), bytes(c.prunable)));
            if let Some(off) = c.off_budget {
                m.push(("off_budget".into(), fixed(off, 6)));
            }
            m.push((
                "state_bytes".into(),
                Json::obj([
                    ("params", bytes(st.params)),
                    ("grads", bytes(st.grads)),
                    ("optimizer", bytes(st.optimizer)),
                    ("masks", bytes(st.masks)),
                    ("admm", bytes(st.admm)),
                    ("teacher", bytes(st.teacher)),
                    ("total", bytes(st.total())),
                ]),
            ));
        }
        m.push(("peak_rss_bytes".into(), Json::int(self.peak_rss_bytes)));
        if let Some((held, peak)) = self.compress.as_ref().and_then(|c| c.heap) {
            m.push(("compressor_heap_bytes".into(), Json::int(held as i64)));
            m.push(("compressor_heap_peak_bytes".into(), Json::int(peak as u64)));
        }
        m.push(("seconds".into(), fixed(self.seconds, 3)));
        m.push(("samples_per_s".into(), fixed(self.samples_per_s, 1)));
        Json::Object(m).to_string()
    }

    /// Reads a line written by [`EpochMetrics::to_json`] (or by an earlier version: keys
    /// it did not write read as missing).
    pub fn from_json(line: &str) -> std::result::Result<EpochMetrics, String> {
        let doc = parse_json(line).map_err(|e| e.to_string())?;
        let num = |path: &[&str]| lookup(&doc, path).unwrap_or(f64::NAN);
        let count = |path: &[&str]| lookup(&doc, path).map_or(0, |v| v.max(0.0) as usize);
        let text = |key: &str| doc.get(key).and_then(Json::as_str).map(str::to_string);
        let epoch = lookup(&doc, &["epoch"]).ok_or("no \"epoch\" number")?;
        let robust = ["val", "test"].iter().find_map(|s| {
            let acc = doc.get(&format!("{s}_pgd40_acc"))?;
            Some(RobustCheck {
                split: s.to_string(),
                acc: acc.as_f64().unwrap_or(f64::NAN),
                n: count(&[&format!("{s}_pgd40_n")]),
            })
        });
        // Compression runs write their phase and state; a line with either has them.
        let compressing = doc.get("phase").is_some() || doc.get("state_bytes").is_some();
        let compress = compressing.then(|| {
            let phase = text("phase").unwrap_or_default();
            let st = |k: &str| count(&["state_bytes", k]);
            CompressMetrics {
                phase,
                rate: num(&["rate"]),
                nnz: count(&["nnz"]),
                prunable: count(&["prunable"]),
                off_budget: lookup(&doc, &["off_budget"]),
                state: StateBytes {
                    params: st("params"),
                    grads: st("grads"),
                    optimizer: st("optimizer"),
                    masks: st("masks"),
                    admm: st("admm"),
                    teacher: st("teacher"),
                },
                heap: lookup(&doc, &["compressor_heap_peak_bytes"]).map(|peak| {
                    let held = lookup(&doc, &["compressor_heap_bytes"]).unwrap_or(0.0);
                    (held as isize, peak.max(0.0) as usize)
                }),
            }
        });
        Ok(EpochMetrics {
            epoch: epoch.max(0.0) as usize,
            lr: num(&["lr"]) as f32,
            train_loss: num(&["train_loss"]),
            train_acc: num(&["train_acc"]),
            test_loss: num(&["test_loss"]),
            test_acc: num(&["test_acc"]),
            val: doc
                .get("val_acc")
                .map(|_| (num(&["val_loss"]), num(&["val_acc"]))),
            train_adv: text("train_adv"),
            robust,
            compress,
            peak_rss_bytes: count(&["peak_rss_bytes"]) as u64,
            seconds: num(&["seconds"]),
            samples_per_s: num(&["samples_per_s"]),
        })
    }
}

/// Every line of a `metrics.jsonl`; an error names the file and the line.
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            EpochMetrics::from_json(l).map_err(|problem| Error::File {
                path: path.to_path_buf(),
                problem: format!("line {}: {problem}", i + 1),
            })
        })
        .collect()
}

/// What the training left in `metrics.jsonl`: wall time and memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct TrainingFacts {
    pub epochs: usize,
    pub train_seconds: f64,
    pub peak_rss: f64,
    /// The compressor's extra state: the largest over epochs of ADMM's Z and U plus the
    /// masks as the trainer counts them, and the most heap the compressor held, scratch
    /// included, as the counting allocator measured it.
    pub extra_state_bytes: f64,
    pub heap_peak: f64,
    pub state_total_bytes: f64,
    /// The last during-training PGD-40 check on the test set (NaN if none: with `--val`
    /// the check runs on the validation split, which the test figures must not mix with).
    pub pgd_1000: f64,
}

impl TrainingFacts {
    pub fn of(lines: &[EpochMetrics]) -> TrainingFacts {
        let mut f = TrainingFacts {
            pgd_1000: f64::NAN,
            ..TrainingFacts::default()
        };
        let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
        for m in lines {
            f.epochs += 1;
            f.train_seconds += finite(m.seconds);
            f.peak_rss = f.peak_rss.max(m.peak_rss_bytes as f64);
            if let Some(c) = &m.compress {
                f.extra_state_bytes = f
                    .extra_state_bytes
                    .max((c.state.admm + c.state.masks) as f64);
                f.heap_peak = f.heap_peak.max(c.heap.map_or(0.0, |h| h.1 as f64));
                f.state_total_bytes = f.state_total_bytes.max(c.state.total() as f64);
            }
            if let Some(r) = m.robust.as_ref().filter(|r| r.split == "test") {
                f.pgd_1000 = r.acc;
            }
        }
        f
    }

    /// The facts of the run folder `run`.
    pub fn read(run: &Path) -> Result<TrainingFacts> {
        Ok(TrainingFacts::of(&read_metrics(
            &run.join("metrics.jsonl"),
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EpochMetrics {
        EpochMetrics {
            epoch: 3,
            lr: 0.0005,
            train_loss: 0.25,
            train_acc: 0.9,
            test_loss: 0.125,
            test_acc: 0.975,
            val: Some((0.5, 0.875)),
            train_adv: Some("pgd:0.3:10:0.075".into()),
            robust: Some(RobustCheck {
                split: "val".into(),
                acc: 0.75,
                n: 1000,
            }),
            compress: Some(CompressMetrics {
                phase: "prox".into(),
                rate: 16.0,
                nnz: 100,
                prunable: 1600,
                off_budget: None,
                state: StateBytes {
                    params: 8,
                    grads: 8,
                    optimizer: 16,
                    masks: 2,
                    admm: 0,
                    teacher: 8,
                },
                heap: Some((25, 30)),
            }),
            peak_rss_bytes: 1 << 20,
            seconds: 1.5,
            samples_per_s: 1000.0,
        }
    }

    #[test]
    fn a_line_round_trips() {
        let m = sample();
        assert_eq!(EpochMetrics::from_json(&m.to_json()).unwrap(), m);
        let plain = EpochMetrics {
            val: None,
            train_adv: None,
            robust: None,
            compress: None,
            ..sample()
        };
        assert_eq!(EpochMetrics::from_json(&plain.to_json()).unwrap(), plain);
        // Without a counting allocator the heap figures are left out, not written as 0.
        let mut unmeasured = sample();
        unmeasured.compress.as_mut().unwrap().heap = None;
        let line = unmeasured.to_json();
        assert!(!line.contains("compressor_heap"), "{line}");
        assert_eq!(EpochMetrics::from_json(&line).unwrap(), unmeasured);
        // The distance to the budget is written while the main phase runs.
        let mut pruning = sample();
        pruning.compress.as_mut().unwrap().off_budget = Some(0.125);
        let line = pruning.to_json();
        assert!(
            line.contains("\"prunable\":1600,\"off_budget\":0.125000,"),
            "{line}"
        );
        assert_eq!(EpochMetrics::from_json(&line).unwrap(), pruning);
    }

    #[test]
    fn the_line_format_is_the_one_runs_on_disk_have() {
        // A line as written before this struct existed (runs/*/metrics.jsonl): the
        // writer must keep producing exactly it.
        let old = r#"{"epoch":3,"lr":0.0005,"train_loss":0.250000,"train_acc":0.900000,"test_loss":0.125000,"test_acc":0.975000,"val_loss":0.500000,"val_acc":0.875000,"train_adv":"pgd:0.3:10:0.075","val_pgd40_acc":0.750000,"val_pgd40_n":1000,"phase":"prox","rate":16.000000,"nnz":100,"prunable":1600,"state_bytes":{"params":8,"grads":8,"optimizer":16,"masks":2,"admm":0,"teacher":8,"total":42},"peak_rss_bytes":1048576,"compressor_heap_bytes":25,"compressor_heap_peak_bytes":30,"seconds":1.500,"samples_per_s":1000.0}"#;
        assert_eq!(sample().to_json(), old);
    }

    #[test]
    fn non_finite_values_are_null_and_read_back_as_missing() {
        let mut m = sample();
        m.train_loss = f64::NAN;
        m.compress.as_mut().unwrap().rate = f64::INFINITY;
        let line = m.to_json();
        assert!(line.contains("\"train_loss\":null") && line.contains("\"rate\":null"));
        let back = EpochMetrics::from_json(&line).unwrap();
        assert!(back.train_loss.is_nan() && back.compress.unwrap().rate.is_nan());
        assert!(EpochMetrics::from_json("{\"lr\":1}").is_err());
        assert!(EpochMetrics::from_json("not json").is_err());
    }

    #[test]
    fn facts_add_up_the_epochs() {
        let a = sample();
        let mut b = sample();
        b.robust = Some(RobustCheck {
            split: "test".into(),
            acc: 0.5,
            n: 1000,
        });
        b.compress.as_mut().unwrap().state.admm = 100;
        let f = TrainingFacts::of(&[a, b]);
        assert_eq!(f.epochs, 2);
        assert_eq!(f.train_seconds, 3.0);
        assert_eq!(f.extra_state_bytes, 102.0);
        assert_eq!(f.heap_peak, 30.0);
        assert_eq!(f.pgd_1000, 0.5);
    }

    #[test]
    fn training_facts_read_nested_metrics() {
        let dir = std::env::temp_dir().join(format!("rcc-facts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let line = |epoch, admm, masks, heap, pgd: &str| {
            format!(
                "{{\"epoch\":{epoch},\"phase\":\"prox\",\"train_adv\":\"pgd:0.3:10:0.075\"{pgd},\"state_bytes\":{{\"params\":8,\"admm\":{admm},\"masks\":{masks},\"total\":{}}},\"peak_rss_bytes\":{},\"compressor_heap_peak_bytes\":{heap},\"seconds\":1.5}}\n",
                8 + admm + masks,
                1000 * epoch
            )
        };
        let text = line(1, 64, 0, 70, "") + &line(2, 0, 4, 74, ",\"test_pgd40_acc\":0.875");
        std::fs::write(dir.join("metrics.jsonl"), &text).unwrap();
        let f = TrainingFacts::read(&dir).unwrap();
        assert_eq!((f.epochs, f.train_seconds), (2, 3.0));
        assert_eq!((f.extra_state_bytes, f.heap_peak), (64.0, 74.0));
        assert_eq!(
            (f.state_total_bytes, f.peak_rss, f.pgd_1000),
            (72.0, 2000.0, 0.875)
        );
        let doc = parse_json("{\"a\":{\"b\":2},\"c\":null}").unwrap();
        assert_eq!(lookup(&doc, &["a", "b"]), Some(2.0));
        assert_eq!(lookup(&doc, &["b"]), None);
        assert_eq!(lookup(&doc, &["c"]), None);
        // A line that is not JSON is an error naming the file and the line.
        std::fs::write(
            dir.join("metrics.jsonl"),
            text + "{\"epoch\":3,\"seconds\":",
        )
        .unwrap();
        let e = TrainingFacts::read(&dir).unwrap_err().to_string();
        assert!(e.contains("metrics.jsonl: line 3: malformed JSON"), "{e}");
    }
}
