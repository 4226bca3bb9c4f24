//! A run's `summary.txt` (its figures as `key = value` lines, read back by the sweeps)
//! and `report.md` (the figures in words and tables).

use crate::evaluate::{masking_verdict, Accuracies, AGREEMENT_PTS, EVAL_SEED, RESTARTS};
use crate::metrics::TrainingFacts;
use crate::protocol::Protocol;
use crate::{Error, Result, TrainConfig};
use std::fmt::Write as _;
use std::path::Path;

/// Everything the report and the sweep's table show for one run.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub dense: Accuracies,
    pub sparse: Accuracies,
    pub sweep: Vec<(f32, f64)>,
    pub prunable: usize,
    pub nnz: usize,
    pub params: usize,
    pub dense_bytes: usize,
    pub sparse_bytes: usize,
    pub file_bytes: u64,
    pub latency_us: f64,
    pub facts: TrainingFacts,
    pub eval_seconds: f64,
    /// Per prunable tensor, in layer order: its name, non-zero weights and weights
    /// (empty in summaries written before it was recorded).
    pub layers: Vec<(String, usize, usize)>,
}

impl Summary {
    pub fn rate(&self) -> f64 {
        self.prunable as f64 / self.nnz.max(1) as f64
    }

    /// Largest dense/sparse gap over the four accuracies, in points.
    pub fn gap_pts(&self) -> f64 {
        let (d, s) = (&self.dense, &self.sparse);
        [
            d.clean - s.clean,
            d.fgsm - s.fgsm,
            d.pgd - s.pgd,
            d.apgd - s.apgd,
        ]
        .iter()
        .fold(0f64, |m, v| m.max(100.0 * v.abs()))
    }

    pub fn to_text(&self) -> String {
        let mut s =
            String::from("# rcc run summary (cargo xtask train); fractions, bytes, seconds\n");
        for (who, a) in [("dense", &self.dense), ("sparse", &self.sparse)] {
            for (k, v) in [
                ("clean", a.clean),
                ("fgsm", a.fgsm),
                ("pgd", a.pgd),
                ("apgd", a.apgd),
                ("transfer", a.transfer),
                ("worst", a.worst),
                ("autoattack", a.autoattack),
                ("square", a.square),
                ("pgd_aa", a.pgd_aa),
                ("apgd_aa", a.apgd_aa),
                ("worst_aa", a.worst_aa),
                ("seconds", a.seconds),
            ] {
                let _ = writeln!(s, "{who}.{k} = {v}");
            }
        }
        let sweep: Vec<String> = self.sweep.iter().map(|(e, a)| format!("{e}:{a}")).collect();
        let _ = writeln!(s, "sweep = {}", sweep.join(","));
        let layers: Vec<String> = self
            .layers
            .iter()
            .map(|(n, nnz, len)| format!("{n}:{nnz}/{len}"))
            .collect();
        let _ = writeln!(s, "layers = {}", layers.join(","));
        for (k, v) in [
            ("prunable", self.prunable as f64),
            ("nnz", self.nnz as f64),
            ("params", self.params as f64),
            ("dense_bytes", self.dense_bytes as f64),
            ("sparse_bytes", self.sparse_bytes as f64),
            ("file_bytes", self.file_bytes as f64),
            ("latency_us", self.latency_us),
            ("epochs", self.facts.epochs as f64),
            ("train_seconds", self.facts.train_seconds),
            ("peak_rss", self.facts.peak_rss),
            ("extra_state_bytes", self.facts.extra_state_bytes),
            ("heap_peak", self.facts.heap_peak),
            ("state_total_bytes", self.facts.state_total_bytes),
            ("pgd_1000", self.facts.pgd_1000),
            ("eval_seconds", self.eval_seconds),
        ] {
            let _ = writeln!(s, "{k} = {v}");
        }
        s
    }

    pub fn parse(text: &str) -> std::result::Result<Summary, String> {
        // A summary written before the transfer check existed keeps its default, NaN: not
        // measured.
        let mut s = Summary::default();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let (k, v) = line
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or(format!("summary: expected key = value, got {line:?}"))?;
            if k == "sweep" {
                for item in v.split(',').filter(|i| !i.is_empty()) {
                    let (e, a) = item
                        .split_once(':')
                        .ok_or(format!("summary: sweep item {item:?}"))?;
                    let e = e.parse().map_err(|_| format!("summary: sweep eps {e:?}"))?;
                    let a = a.parse().map_err(|_| format!("summary: sweep acc {a:?}"))?;
                    s.sweep.push((e, a));
                }
                continue;
            }
            if k == "layers" {
                for item in v.split(',').filter(|i| !i.is_empty()) {
                    let bad = || format!("summary: layers item {item:?} (expected NAME:NNZ/LEN)");
                    let (name, counts) = item.rsplit_once(':').ok_or_else(bad)?;
                    let (nnz, len) = counts.split_once('/').ok_or_else(bad)?;
                    let (nnz, len) = (
                        nnz.parse().map_err(|_| bad())?,
                        len.parse().map_err(|_| bad())?,
                    );
                    if nnz > len {
                        return Err(bad());
                    }
                    s.layers.push((name.to_string(), nnz, len));
                }
                continue;
            }
            let x: f64 = v
                .parse()
                .map_err(|_| format!("summary: {k}: {v:?} is not a number"))?;
            let acc = |a: &mut Accuracies, field: &str| -> std::result::Result<(), String> {
                match field {
                    "clean" => a.clean = x,
                    "fgsm" => a.fgsm = x,
                    "pgd" => a.pgd = x,
                    "apgd" => a.apgd = x,
                    "transfer" => a.transfer = x,
                    "worst" => a.worst = x,
                    "autoattack" => a.autoattack = x,
                    "square" => a.square = x,
                    "pgd_aa" => a.pgd_aa = x,
                    "apgd_aa" => a.apgd_aa = x,
                    "worst_aa" => a.worst_aa = x,
                    "seconds" => a.seconds = x,
                    _ => return Err(format!("summary: unknown key {k:?}")),
                }
                Ok(())
            };
            match k.split_once('.') {
                Some(("dense", f)) => acc(&mut s.dense, f)?,
                Some(("sparse", f)) => acc(&mut s.sparse, f)?,
                _ => match k {
                    "prunable" => s.prunable = x as usize,
                    "nnz" => s.nnz = x as usize,
                    "params" => s.params = x as usize,
                    "dense_bytes" => s.dense_bytes = x as usize,
                    "sparse_bytes" => s.sparse_bytes = x as usize,
                    "file_bytes" => s.file_bytes = x as u64,
                    "latency_us" => s.latency_us = x,
                    "epochs" => s.facts.epochs = x as usize,
                    "train_seconds" => s.facts.train_seconds = x,
                    "peak_rss" => s.facts.peak_rss = x,
                    "extra_state_bytes" => s.facts.extra_state_bytes = x,
                    "heap_peak" => s.facts.heap_peak = x,
                    // Written by an earlier version (resident-set growth): not comparable.
                    "state_rss_delta" => {}
                    "state_total_bytes" => s.facts.state_total_bytes = x,
                    "pgd_1000" => s.facts.pgd_1000 = x,
                    "eval_seconds" => s.eval_seconds = x,
                    _ => return Err(format!("summary: unknown key {k:?}")),
                },
            }
        }
        Ok(s)
    }

    /// The summary of the run folder `run`.
    pub fn read(run: &Path) -> Result<Summary> {
        let path = run.join("summary.txt");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        Summary::parse(&text).map_err(|problem| Error::File { path, problem })
    }
}

/// A fraction as a percentage with two decimals; "-" if it was not measured (NaN).
pub fn pct(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{:.2}", 100.0 * v)
    }
}

/// `report.md` of a run.
pub fn report_md(cfg: &TrainConfig, run: &Path, s: &Summary, layers: &str) -> String {
    let protocol = Protocol::for_dataset(cfg.dataset);
    let mut r = String::new();
    let method = cfg.method.map_or("none".into(), |m| m.to_string());
    let _ = writeln!(
        r,
        "# {} on {}: {method}, {:.2}x\n",
        cfg.arch,
        cfg.dataset,
        s.rate()
    );
    let _ = writeln!(r, "Run folder: `{}`.\n", run.display());
    let set = crate::evaluate::eval_set_words(cfg);
    let split = crate::evaluate::eval_split(cfg);
    let aa_images = crate::evaluate::aa_images(cfg);
    let _ = writeln!(r, "## Accuracy (%, {set}, eps {})\n", protocol.eps);
    let _ = writeln!(
        r,
        "| model | natural | FGSM | PGD-{} x{RESTARTS} restarts | APGD-CE-{} | PGD-{} crafted on the teacher | worst case | eval s |",
        protocol.steps, protocol.apgd_steps, protocol.steps
    );
    let _ = writeln!(r, "|---|---|---|---|---|---|---|---|");
    for (who, a) in [
        ("dense, masked (training graph)", &s.dense),
        ("exported sparse (CSR engine)", &s.sparse),
    ] {
        let _ = writeln!(
            r,
            "| {who} | {} | {} | {} | {} | {} | {} | {:.0} |",
            pct(a.clean),
            pct(a.fgsm),
            pct(a.pgd),
            pct(a.apgd),
            pct(a.transfer),
            pct(a.worst),
            a.seconds
        );
    }
    let _ = writeln!(
        r,
        "\n### AutoAttack and the gradient-free check (%, first {aa_images} {split} images)\n"
    );
    let _ = writeln!(
        r,
        "| model | PGD-{} x{RESTARTS} | APGD-CE-{} | AutoAttack | Square-5000 | worst case of every attack |",
        protocol.steps, protocol.apgd_steps
    );
    let _ = writeln!(r, "|---|---|---|---|---|---|");
    let a = &s.dense;
    let _ = writeln!(
        r,
        "| the run's model | {} | {} | {} | {} | **{}** |",
        pct(a.pgd_aa),
        pct(a.apgd_aa),
        pct(a.autoattack),
        pct(a.square),
        pct(a.worst_aa)
    );
    let _ = writeln!(
        r,
        "\nAutoAttack is the standard version (Croce & Hein 2020): APGD-CE (100 steps), APGD-T (100 steps, 9 targets), FAB-T (100 steps, 9 targets) and Square (5,000 queries, p_init 0.8), one run each; an image counts only if it survives all four. APGD-CE is the dense model's run above, read on these images; the other three ran on the exported sparse model (the same network through the CSR engine, which answers Square's queries several times faster), each on every image correct clean. Square-5000 is the Square Attack's own figure: it reads only the logits, so no gradient masking can hide a model from it. The last column counts an image only if it survives every attack of this section and of the table above: the figure to compare models on."
    );
    if let Some(verdict) = masking_verdict(&s.dense) {
        let _ = writeln!(r, "\n{verdict}");
    }
    let agree = s.gap_pts() <= AGREEMENT_PTS;
    let _ = writeln!(
        r,
        "\nDense and sparse {} within {AGREEMENT_PTS} points (largest gap {:.2}; the sparse model is attacked only if it is pruned). Robust accuracy counts an image only if it is classified right clean and attacked; PGD starts at a random point (step {}), seed {EVAL_SEED}. The transferred PGD (one start, every step taken) is crafted on the run's teacher and judged by the dense model: a black-box attack, the check for gradient masking, run when the run has a teacher. The worst case counts an image only if it survives every attack of its row.\n",
        if agree { "agree" } else { "DO NOT agree" },
        s.gap_pts(),
        protocol.step_size
    );
    let _ = writeln!(
        r,
        "## Eps sweep (PGD-{}, first {} {split} images, dense masked model)\n",
        protocol.steps,
        crate::evaluate::sweep_images(cfg)
    );
    let _ = writeln!(
        r,
        "| eps | {} |",
        s.sweep
            .iter()
            .map(|(e, _)| format!("{e:.3}"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(r, "|---|{}", "---|".repeat(s.sweep.len()));
    let _ = writeln!(
        r,
        "| accuracy % | {} |\n",
        s.sweep
            .iter()
            .map(|(_, a)| pct(*a))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(
        r,
        "Accuracy must fall as eps grows and reach about 0 at large eps; a flat curve would mean gradient masking.\n"
    );
    let _ = writeln!(r, "## Compression\n");
    let _ = writeln!(
        r,
        "- rate **{:.2}x** = {} prunable weights / {} non-zero (sparsity {:.2}%); {} parameters in all (biases are not pruned).",
        s.rate(),
        s.prunable,
        s.nnz,
        100.0 * (1.0 - s.nnz as f64 / s.prunable.max(1) as f64),
        s.params
    );
    let _ = writeln!(
        r,
        "- model bytes: dense {} (f32), sparse {} as built (CSR values, indices and row pointers plus biases, {:.1}% of dense), file {} bytes.",
        s.dense_bytes,
        s.sparse_bytes,
        100.0 * s.sparse_bytes as f64 / s.dense_bytes.max(1) as f64,
        s.file_bytes
    );
    let _ = writeln!(
        r,
        "- sparse batch-1 latency: **{:.1} µs** (1 thread, median of 7 x 200 inferences; `cargo bench --bench sparse` has the careful figures).\n",
        s.latency_us
    );
    let _ = writeln!(
        r,
        "Per layer (from the exported file):\n\n```\n{layers}```\n"
    );
    let f = &s.facts;
    let _ = writeln!(r, "## Training\n");
    let _ = writeln!(
        r,
        "- {} epochs in {:.0} s of training ({:.1} min); evaluation and export {:.0} s.",
        f.epochs,
        f.train_seconds,
        f.train_seconds / 60.0,
        s.eval_seconds
    );
    if f.state_total_bytes == 0.0 {
        let _ = writeln!(
            r,
            "- memory: no compressor (plain training); peak resident set {}.",
            if f.peak_rss > 0.0 {
                format!("{:.1} MiB", f.peak_rss / (1 << 20) as f64)
            } else {
                "not recorded".into()
            }
        );
    } else {
        let _ = writeln!(
        r,
        "- memory: training state {} bytes at most (parameters, gradients, optimiser moments, masks, ADMM Z and U, teacher); the compressor's extra state {} bytes as counted, {} bytes at most on the heap as measured by the counting allocator (scratch included); peak resident set {:.1} MiB.",
        f.state_total_bytes,
        f.extra_state_bytes,
        f.heap_peak,
        f.peak_rss / (1 << 20) as f64
    );
    }
    let _ = writeln!(r, "\n## Settings\n\n```\n{}```", cfg.to_text());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A summary written before the transfer check reads back with it "not measured",
    /// and a new one round-trips it.
    #[test]
    fn summary_round_trips_the_transfer_figure() {
        let old = "dense.clean = 0.98\ndense.pgd = 0.9\ndense.worst = 0.88\nnnz = 10\n";
        let s = Summary::parse(old).unwrap();
        assert!(s.dense.transfer.is_nan() && s.sparse.transfer.is_nan());
        assert_eq!(pct(s.dense.transfer), "-");
        let mut s = s;
        s.dense.transfer = 0.875;
        let back = Summary::parse(&s.to_text()).unwrap();
        assert_eq!(back.dense.transfer, 0.875);
        assert!(back.sparse.transfer.is_nan());
    }
}
