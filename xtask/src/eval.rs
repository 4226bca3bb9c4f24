//! `cargo xtask eval --model FILE [--dataset D] [--arch A] [--attack LIST] [--eps E]
//! [--eps-l2 E] [--steps N] [--step-size S] [--step-size-l2 S] [--restarts R]
//! [--queries Q] [--limit N] [--seed S] [--batch B] [--threads T] [--sparse] [--json]
//! [--eps-sweep LIST [--plot FILE.svg]]`: clean and robust test accuracy of a model file.
//!
//! - `--attack fgsm|pgd|pgd-l2|apgd-ce|apgd-dlr|apgd-t|fab-t|square|autoattack|
//!   autoattack-fast|all` (comma lists work; `all` is the first five). Without
//!   `--attack` (and without `--eps-sweep`) only the clean accuracy is measured.
//!   `autoattack` is AutoAttack's standard version (APGD-CE, APGD-T, FAB-T, Square with
//!   5,000 queries, in sequence on the points still robust); `square` is the
//!   gradient-free Square Attack on its own (`--queries`, default 5,000).
//! - `--sparse`: the attacks run on the model built by the sparse CSR engine (the
//!   deployed artifact) instead of the training graph.
//!   APGD-DLR ascends Croce & Hein's difference of logits ratio, which no rescaling of
//!   the logits can saturate: the attack to add when a model's cross-entropy attacks
//!   look too weak (a saturated softmax masks their gradient).
//! - Defaults follow method.md section 4 for the dataset: MNIST eps 0.3, PGD-40 with step
//!   0.01; Fashion-MNIST eps 0.1, PGD-40, step 0.01; CIFAR-10 eps 8/255, PGD-20, step
//!   2/255. PGD starts at a random point; 1 restart. APGD runs 100 steps (AutoAttack's
//!   budget) unless `--steps` is given, which sets every iterative attack's steps.
//! - `--eps` is the l_inf radius (FGSM, PGD, APGD); PGD-l_2 uses `--eps-l2` (MNIST 2.0,
//!   Fashion-MNIST 1.5, CIFAR-10 0.5) and step `--step-size-l2` (default 2.5 eps / steps,
//!   Madry et al.'s rule).
//! - Without `--step-size`, the l_inf PGD step is the dataset's default step scaled by
//!   eps / default eps (so 0.01 at eps 0.3 on MNIST, and the same reach in eps-units at
//!   any other eps, e.g. along an `--eps-sweep`).
//! - `--eps-sweep 0,0.1,0.2,0.3,0.4` runs the chosen attacks (default `pgd`) at each eps
//!   and prints accuracy against eps, the robustness curve; `--plot FILE.svg` draws it.
//!   The listed values are l_2 radii if the attacks are l_2 ones (l_inf and l_2 attacks
//!   cannot share one sweep).
//! - Robust accuracy counts an example only if it is classified correctly clean *and*
//!   under the attack (see `rcc_attack::eval`). Every run is deterministic for its
//!   `--seed` (default 0) and `--batch` (default 500), whatever `--threads`.
//!
//! Files written elsewhere (a PyTorch `state_dict` saved with safetensors) need `--arch`.

use crate::cli::{data_dir, Cli};
use crate::svg::{nice_step, Svg, PALETTE};
use rcc_attack::{
    AttackLoss, AttackResult, AttackSpec, Examples, FabConfig, Norm, PgdConfig, Progress, Report,
    SquareConfig,
};
use rcc_data::{Dataset, DatasetKind, Split};
use rcc_nn::{Arch, Model};
use rcc_sparse::SparseModel;
use rcc_tensor::Tensor;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

/// Accuracy and mean cross-entropy of `model` on `data` (inference mode, no tape), in
/// batches of `batch`.
pub fn evaluate(model: &Model, data: &Dataset, batch: usize) -> Result<(f64, f64), String> {
    let (mut correct, mut loss) = (0usize, 0f64);
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(batch.max(1)) {
        let (x, labels) = data.batch(chunk, None);
        let logits = model.infer(&x).map_err(|e| e.to_string())?;
        let k = logits.shape()[1];
        for (row, (&pred, &y)) in logits
            .data()
            .chunks(k)
            .zip(logits.argmax_rows().iter().zip(&labels))
        {
            correct += usize::from(pred == y);
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
            loss += lse - row[y] as f64;
        }
    }
    let n = data.len().max(1) as f64;
    Ok((correct as f64 / n, loss / n))
}

/// A dataset split as the attack crate's batch source.
pub struct DatasetExamples<'a>(pub &'a Dataset);

impl Examples for DatasetExamples<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn batch(&self, range: Range<usize>) -> rcc_attack::Result<(Tensor, Vec<usize>)> {
        if range.end > self.0.len() {
            return Err(rcc_attack::Error::Data(format!(
                "examples {range:?} of a set of {}",
                self.0.len()
            )));
        }
        Ok(self.0.batch(&range.collect::<Vec<_>>(), None))
    }
}

/// The evaluation protocol of a dataset (method.md section 4).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Protocol {
    pub eps: f32,
    pub steps: usize,
    pub step_size: f32,
    pub eps_l2: f32,
    pub apgd_steps: usize,
}

impl Protocol {
    pub fn for_dataset(kind: DatasetKind) -> Protocol {
        match kind {
            DatasetKind::Mnist => Protocol {
                eps: 0.3,
                steps: 40,
                step_size: 0.01,
                eps_l2: 2.0,
                apgd_steps: 100,
            },
            DatasetKind::FashionMnist => Protocol {
                eps: 0.1,
                steps: 40,
                step_size: 0.01,
                eps_l2: 1.5,
                apgd_steps: 100,
            },
            DatasetKind::Cifar10 => Protocol {
                eps: 8.0 / 255.0,
                steps: 20,
                step_size: 2.0 / 255.0,
                eps_l2: 0.5,
                apgd_steps: 100,
            },
        }
    }
}

/// The attack settings after defaults and flags.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub protocol: Protocol,
    pub names: Vec<&'static str>,
    pub eps: f32,
    pub eps_l2: f32,
    pub steps: Option<usize>,
    pub step_size: Option<f32>,
    pub step_size_l2: Option<f32>,
    pub restarts: usize,
    /// Square's query budget (default 5,000).
    pub queries: Option<usize>,
}

pub const ATTACKS: [&str; 5] = ["fgsm", "pgd", "pgd-l2", "apgd-ce", "apgd-dlr"];

/// Attacks that `all` leaves out (they are slow, or ensembles of the others):
/// APGD-T, FAB-T, Square and AutoAttack.
pub const MORE_ATTACKS: [&str; 5] = ["apgd-t", "fab-t", "square", "autoattack", "autoattack-fast"];

/// `fgsm,pgd,...` or `all` -> attack names, in the list's order, without repeats.
pub fn parse_attacks(list: &str) -> Result<Vec<&'static str>, String> {
    let mut out: Vec<&'static str> = vec![];
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let names: Vec<&'static str> = match item {
            "all" => ATTACKS.to_vec(),
            "fgsm" => vec!["fgsm"],
            "pgd" | "pgd-linf" => vec!["pgd"],
            "pgd-l2" => vec!["pgd-l2"],
            "apgd-ce" | "apgd" => vec!["apgd-ce"],
            "apgd-dlr" => vec!["apgd-dlr"],
            "apgd-t" => vec!["apgd-t"],
            "fab-t" | "fab" => vec!["fab-t"],
            "square" => vec!["square"],
            "autoattack" | "aa" => vec!["autoattack"],
            "autoattack-fast" => vec!["autoattack-fast"],
            other => {
                return Err(format!(
                    "--attack: unknown attack {other:?} (known: {}, {}, all)",
                    ATTACKS.join(", "),
                    MORE_ATTACKS.join(", ")
                ))
            }
        };
        for n in names {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    if out.is_empty() {
        return Err("--attack: no attack named".into());
    }
    Ok(out)
}

impl Settings {
    /// The spec of attack `name` at radius `eps` (an l_2 radius for `pgd-l2`).
    pub fn spec(&self, name: &str, eps: f32) -> AttackSpec {
        let p = &self.protocol;
        let restarts = self.restarts;
        match name {
            "fgsm" => AttackSpec::Fgsm { eps },
            "pgd" => AttackSpec::PgdLinf(PgdConfig {
                eps,
                steps: self.steps.unwrap_or(p.steps),
                step_size: self.step_size.unwrap_or(p.step_size * eps / p.eps),
                random_start: true,
                restarts,
            }),
            "pgd-l2" => {
                let steps = self.steps.unwrap_or(p.steps);
                AttackSpec::PgdL2(PgdConfig {
                    eps,
                    steps,
                    step_size: self.step_size_l2.unwrap_or(2.5 * eps / steps.max(1) as f32),
                    random_start: true,
                    restarts,
                })
            }
            "apgd-t" => AttackSpec::ApgdT {
                eps,
                steps: self.steps.unwrap_or(p.apgd_steps),
                targets: 9,
                restarts,
            },
            "fab-t" => AttackSpec::FabT(FabConfig {
                steps: self.steps.unwrap_or(p.apgd_steps),
                ..FabConfig::new(eps)
            }),
            "square" => AttackSpec::Square(SquareConfig {
                queries: self.queries.unwrap_or(5000),
                ..SquareConfig::new(eps)
            }),
            "autoattack" | "autoattack-fast" => AttackSpec::AutoAttack {
                eps,
                fast: name == "autoattack-fast",
            },
            _ => AttackSpec::Apgd {
                loss: if name == "apgd-dlr" {
                    AttackLoss::Dlr
                } else {
                    AttackLoss::CrossEntropy
                },
                eps,
                steps: self.steps.unwrap_or(p.apgd_steps),
                restarts,
            },
        }
    }

    /// Every chosen attack at the configured radii.
    pub fn specs(&self) -> Vec<AttackSpec> {
        self.names
            .iter()
            .map(|n| {
                self.spec(
                    n,
                    if *n == "pgd-l2" {
                        self.eps_l2
                    } else {
                        self.eps
                    },
                )
            })
            .collect()
    }

    /// Every chosen attack at every eps of a sweep, attack after attack.
    pub fn sweep_specs(&self, sweep: &[f32]) -> Result<Vec<AttackSpec>, String> {
        let l2 = self.names.iter().filter(|n| **n == "pgd-l2").count();
        if l2 > 0 && l2 < self.names.len() {
            return Err(
                "--eps-sweep: l_inf and l_2 attacks cannot share one sweep (the eps \
                        axes differ); sweep pgd-l2 on its own"
                    .into(),
            );
        }
        Ok(self
            .names
            .iter()
            .flat_map(|n| sweep.iter().map(move |&e| self.spec(n, e)))
            .collect())
    }
}

fn parse_list(name: &str, v: &str) -> Result<Vec<f32>, String> {
    let vals: Vec<f32> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| crate::cli::parse_value::<f32>(name, s))
        .collect::<Result<_, _>>()?;
    if vals.is_empty() || vals.iter().any(|e| !(*e >= 0.0 && e.is_finite())) {
        return Err(format!(
            "--{name}: expected a list of numbers >= 0, got {v:?}"
        ));
    }
    Ok(vals)
}

/// `--eps-sweep` values: at least one, non-negative, increasing.
pub fn parse_sweep(v: &str) -> Result<Vec<f32>, String> {
    let vals = parse_list("eps-sweep", v)?;
    if vals.windows(2).any(|w| w[1] <= w[0]) {
        return Err(format!("--eps-sweep: values must increase, got {v:?}"));
    }
    Ok(vals)
}

/// Shortest round-trip form (JSON): 0.3, 0.01, 0.03137255 (8/255).
fn fmt_num(v: f32) -> String {
    format!("{v}")
}

/// At most 6 decimals (tables, labels): 0.3, 0.001667, 0.031373.
fn fmt_short(v: f32) -> String {
    format!("{}", (v as f64 * 1e6).round() / 1e6)
}

/// One JSON object: the run, the clean accuracy and every attack's result.
pub fn report_json(header: &[(&str, String)], report: &Report) -> String {
    let mut s = String::from("{");
    for (k, v) in header {
        let _ = write!(s, "\"{k}\":{v},");
    }
    let _ = write!(
        s,
        "\"n\":{},\"clean_acc\":{:.6},\"clean_loss\":{:.6},\"attacks\":[",
        report.n, report.clean_acc, report.clean_loss
    );
    for (i, a) in report.attacks.iter().enumerate() {
        let spec = &a.spec;
        let _ = write!(
            s,
            "{}{{\"name\":\"{}\",\"settings\":{},\"norm\":\"{}\",\"eps\":{},\"steps\":{},\"step_size\":{},\"restarts\":{},\"random_start\":{},\"transferred\":{},\"acc\":{:.6},\"correct\":{},\"max_dist\":{:.6},\"seconds\":{:.3}}}",
            if i == 0 { "" } else { "," },
            spec.name(),
            json_str(&spec.describe()),
            spec.norm().name(),
            fmt_num(spec.eps()),
            spec.steps(),
            spec.step_size().map_or("null".into(), fmt_num),
            spec.restarts(),
            spec.random_start(),
            a.transferred,
            a.acc,
            a.correct.iter().filter(|&&c| c).count(),
            a.max_dist,
            a.seconds
        );
    }
    s.push_str("],\"worst_case\":[");
    for (i, (norm, eps, idx)) in worst_case_groups(report).iter().enumerate() {
        let _ = write!(
            s,
            "{}{{\"norm\":\"{}\",\"eps\":{},\"attacks\":{},\"acc\":{:.6}}}",
            if i == 0 { "" } else { "," },
            norm.name(),
            fmt_num(*eps),
            idx.len(),
            report.worst_case(idx).unwrap_or(0.0)
        );
    }
    s.push_str("]}");
    s
}

/// The attacks of a report grouped by threat model (norm and eps), in order of first
/// appearance; only groups of two or more, the ones a worst case adds to.
pub fn worst_case_groups(report: &Report) -> Vec<(Norm, f32, Vec<usize>)> {
    let mut groups: Vec<(Norm, f32, Vec<usize>)> = vec![];
    for (i, a) in report.attacks.iter().enumerate() {
        let key = (a.spec.norm(), a.spec.eps());
        match groups.iter_mut().find(|g| (g.0, g.1) == key) {
            Some(g) => g.2.push(i),
            None => groups.push((key.0, key.1, vec![i])),
        }
    }
    groups.retain(|g| g.2.len() > 1 && g.1 > 0.0);
    groups
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The table of clean and per-attack accuracy with every setting.
pub fn report_table(report: &Report, clean_secs: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<10} {:<5} {:>10} {:>6} {:>10} {:>8} {:<6} {:>9} {:>9} {:>8}",
        "attack",
        "norm",
        "eps",
        "steps",
        "step",
        "restarts",
        "start",
        "accuracy",
        "max dist",
        "time"
    );
    let _ = writeln!(
        s,
        "{:<10} {:<5} {:>10} {:>6} {:>10} {:>8} {:<6} {:>8.2}% {:>9} {:>6.1} s",
        "clean",
        "-",
        "-",
        "-",
        "-",
        "-",
        "-",
        100.0 * report.clean_acc,
        "-",
        clean_secs
    );
    for a in &report.attacks {
        let _ = writeln!(s, "{}", table_row(a));
    }
    for (norm, eps, idx) in worst_case_groups(report) {
        let _ = writeln!(
            s,
            "{:<10} {:<5} {:>10} {:>6} {:>10} {:>8} {:<6} {:>8.2}%",
            "worst",
            norm.name(),
            fmt_short(eps),
            "-",
            "-",
            "-",
            format!("of {}", idx.len()),
            100.0 * report.worst_case(&idx).unwrap_or(0.0)
        );
    }
    s
}

/// The name of an attack in tables: `-tr` marks points crafted on another model.
fn attack_name(a: &AttackResult) -> String {
    format!(
        "{}{}",
        a.spec.name(),
        if a.transferred { "-tr" } else { "" }
    )
}

fn table_row(a: &AttackResult) -> String {
    let spec = &a.spec;
    let step = match (spec, spec.step_size()) {
        (_, None) => "-".to_string(),
        (AttackSpec::Apgd { .. } | AttackSpec::ApgdT { .. }, Some(s)) => {
            format!("{}*", fmt_short(s))
        }
        (_, Some(s)) => fmt_short(s),
    };
    format!(
        "{:<10} {:<5} {:>10} {:>6} {:>10} {:>8} {:<6} {:>8.2}% {:>9.4} {:>6.1} s",
        attack_name(a),
        spec.norm().name(),
        fmt_short(spec.eps()),
        spec.steps(),
        step,
        spec.restarts(),
        if spec.random_start() {
            "random"
        } else {
            "clean"
        },
        100.0 * a.acc,
        a.max_dist,
        a.seconds
    )
}

/// Accuracy (%) against eps, one column per attack (the report holds each attack at
/// every eps of `sweep` in turn), and with two or more attacks a last column with their
/// worst case per example.
pub fn sweep_table(report: &Report, sweep: &[f32], norm: Norm) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "accuracy (%) against eps ({}), {} examples, clean {:.2}%",
        norm.name(),
        report.n,
        100.0 * report.clean_acc
    );
    let columns = report.attacks.len() / sweep.len().max(1);
    let _ = write!(s, "{:>10}", "eps");
    for i in 0..columns {
        let _ = write!(s, " {:>10}", attack_name(&report.attacks[i * sweep.len()]));
    }
    if columns > 1 {
        let _ = write!(s, " {:>10}", "worst");
    }
    s.push('\n');
    for (j, e) in sweep.iter().enumerate() {
        let _ = write!(s, "{:>10}", fmt_short(*e));
        let idx: Vec<usize> = (0..columns).map(|i| i * sweep.len() + j).collect();
        for &k in &idx {
            let _ = write!(s, " {:>10.2}", 100.0 * report.attacks[k].acc);
        }
        if columns > 1 {
            let worst = report.worst_case(&idx).unwrap_or(0.0);
            let _ = write!(s, " {:>10.2}", 100.0 * worst);
        }
        s.push('\n');
    }
    s
}

/// A hand-written SVG line chart: accuracy (%) against eps, one polyline per series
/// (with point markers), the clean accuracy as a dashed line, axes, ticks, grid and a
/// legend.
pub fn svg_plot(
    title: &str,
    x_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    clean: f64,
) -> String {
    let (w, h) = (760.0, 460.0);
    let (left, right, top, bottom) = (70.0, 230.0, 50.0, 60.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let xs = series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0));
    let x_max = xs.fold(0f64, f64::max);
    let x_max = if x_max > 0.0 { x_max } else { 1.0 };
    let xstep = nice_step(x_max, 6.0);
    // Inputs are f32 values widened to f64 (0.4 -> 0.40000000596): round with slack.
    let x_hi = (x_max / xstep - 1e-6).ceil().max(1.0) * xstep;
    let px = |x: f64| left + pw * x / x_hi;
    let py = |acc: f64| top + ph * (1.0 - acc / 100.0);
    let mut s = Svg::new(w, h);
    s.title(left + pw / 2.0, 25.0, title);
    for i in 0..=5 {
        let acc = 20.0 * i as f64;
        s.h_grid(left, left + pw, py(acc), "#e0e0e0", &format!("{acc:.0}"));
    }
    let nx = (x_hi / xstep).round() as usize;
    for i in 0..=nx {
        let x = xstep * i as f64;
        let label = format!("{}", (x * 1e6).round() / 1e6);
        s.v_grid(px(x), top, top + ph, 18.0, "#e0e0e0", &label);
    }
    s.axes(left, top, pw, ph);
    s.text(left + pw / 2.0, h - 15.0, "middle", x_label);
    s.y_label(18.0, top + ph / 2.0, "accuracy (%)");
    const CLEAN_COLOR: &str = "#555555";
    const CLEAN_DASH: &str = "6 4";
    s.h_rule(left, left + pw, py(100.0 * clean), CLEAN_COLOR, CLEAN_DASH);
    for (k, (_, pts)) in series.iter().enumerate() {
        let c = PALETTE[k % PALETTE.len()];
        s.polyline(pts.iter().map(|&(x, a)| (px(x), py(a))), c, "");
        for &(x, a) in pts {
            s.dot(px(x), py(a), 3.0, c);
        }
    }
    // Legend.
    let lx = left + pw + 20.0;
    let mut ly = top + 10.0;
    for (k, (name, _)) in series.iter().enumerate() {
        s.legend_line(lx, ly, PALETTE[k % PALETTE.len()], "", name);
        ly += 20.0;
    }
    let clean_label = format!("clean {:.2}%", 100.0 * clean);
    s.legend_line(lx, ly, CLEAN_COLOR, CLEAN_DASH, &clean_label);
    s.finish()
}

/// One progress line on stderr for a batch of a long attack (more than a few seconds):
/// the attack, the batches done, robust accuracy so far, the time and an ETA.
pub fn print_progress(p: &Progress<'_>, label: &str) {
    if let Progress::Batch {
        spec,
        done,
        batches,
        robust,
        seen,
        seconds,
    } = *p
    {
        if done < batches && seconds > 5.0 {
            let eta = seconds / done as f64 * (batches - done) as f64;
            eprintln!(
                "  {label}{}: batch {done}/{batches}, {robust} of {seen} robust so far, {seconds:.0} s, ETA {eta:.0} s",
                spec.name()
            );
        }
    }
}

/// A short legend label: the attack and its iteration settings, e.g. `PGD-40, step
/// eps/30` (the step quoted at the sweep's largest eps, `spec`).
fn series_label(spec: &AttackSpec) -> String {
    let restarts = |r: usize| {
        if r > 1 {
            format!(", {r} restarts")
        } else {
            String::new()
        }
    };
    match spec {
        AttackSpec::Fgsm { .. } => "FGSM".into(),
        AttackSpec::PgdLinf(c) | AttackSpec::PgdL2(c) => {
            let ratio = c.eps as f64 / c.step_size as f64;
            let step = if c.step_size > 0.0 && (ratio - ratio.round()).abs() < 1e-3 {
                format!("eps/{}", ratio.round())
            } else {
                fmt_short(c.step_size)
            };
            format!(
                "PGD-{}{}, step {step}{}",
                c.steps,
                if spec.norm() == Norm::L2 { "-l2" } else { "" },
                restarts(c.restarts)
            )
        }
        AttackSpec::Apgd {
            loss,
            steps,
            restarts: r,
            ..
        } => format!("APGD-{}-{steps}{}", loss.name(), restarts(*r)),
        AttackSpec::ApgdT {
            steps,
            targets,
            restarts: r,
            ..
        } => format!("APGD-T-{steps}, {targets} targets{}", restarts(*r)),
        AttackSpec::FabT(c) => format!("FAB-T-{}, {} targets", c.steps, c.targets),
        AttackSpec::Square(c) => format!("Square, {} queries", c.queries),
        AttackSpec::AutoAttack { fast: false, .. } => "AutoAttack".into(),
        AttackSpec::AutoAttack { fast: true, .. } => "AutoAttack (fast)".into(),
    }
}

pub fn run(args: &[String]) -> Result<ExitCode, String> {
    let cli = Cli::parse(
        args,
        &[
            "model",
            "dataset",
            "arch",
            "batch",
            "threads",
            "limit",
            "data",
            "attack",
            "eps",
            "eps-l2",
            "steps",
            "step-size",
            "step-size-l2",
            "restarts",
            "queries",
            "seed",
            "eps-sweep",
            "plot",
            "transfer-from",
            "source-arch",
        ],
        &["json", "sparse"],
    )?;
    let model_path = cli.get("model").ok_or("--model FILE is required")?;
    let arch: Option<Arch> = cli
        .get("arch")
        .map(|a| a.parse().map_err(|e| format!("--arch: {e}")))
        .transpose()?;
    let model = Model::load(Path::new(model_path), arch).map_err(|e| e.to_string())?;
    // A transfer attack (method.md section 5's black-box check): the attacks run against
    // the source model and the model under test classifies their points.
    let source = match cli.get("transfer-from") {
        Some(file) => {
            let arch: Option<Arch> = cli
                .get("source-arch")
                .map(|a| a.parse().map_err(|e| format!("--source-arch: {e}")))
                .transpose()?;
            let source = Model::load(Path::new(file), arch).map_err(|e| e.to_string())?;
            if source.arch().input_shape() != model.arch().input_shape() {
                return Err(format!(
                    "--transfer-from {file}: arch {} takes {:?} images, the model under test {:?}",
                    source.arch(),
                    source.arch().input_shape(),
                    model.arch().input_shape()
                ));
            }
            Some((file, source))
        }
        None if cli.has("source-arch") => {
            return Err("--source-arch names the arch of --transfer-from FILE".into())
        }
        None => None,
    };
    let kind: DatasetKind = cli
        .get("dataset")
        .unwrap_or("mnist")
        .parse()
        .map_err(|e| format!("--dataset: {e}"))?;
    let protocol = Protocol::for_dataset(kind);
    let sweep = cli.get("eps-sweep").map(parse_sweep).transpose()?;
    if cli.has("plot") && sweep.is_none() {
        return Err("--plot draws the robustness curve: it needs --eps-sweep".into());
    }
    let names = match (cli.get("attack"), &sweep) {
        (Some(list), _) => parse_attacks(list)?,
        (None, Some(_)) => vec!["pgd"],
        (None, None) => vec![],
    };
    let positive = |name: &str, v: Option<f32>| -> Result<Option<f32>, String> {
        match v {
            Some(x) if !(x >= 0.0 && x.is_finite()) => {
                Err(format!("--{name}: expected a number >= 0, got {x}"))
            }
            _ => Ok(v),
        }
    };
    let settings = Settings {
        protocol,
        names,
        eps: positive("eps", cli.num("eps")?)?.unwrap_or(protocol.eps),
        eps_l2: positive("eps-l2", cli.num("eps-l2")?)?.unwrap_or(protocol.eps_l2),
        steps: cli.num("steps")?,
        step_size: positive("step-size", cli.num("step-size")?)?,
        step_size_l2: positive("step-size-l2", cli.num("step-size-l2")?)?,
        restarts: cli.num("restarts")?.unwrap_or(1),
        queries: cli.num("queries")?,
    };
    if settings.restarts == 0 {
        return Err("--restarts: at least 1".into());
    }
    let specs = match &sweep {
        Some(s) => settings.sweep_specs(s)?,
        None => settings.specs(),
    };
    let mut test =
        Dataset::load(kind, Split::Test, &data_dir(cli.get("data"))).map_err(|e| e.to_string())?;
    if test.shape != model.arch().input_shape() {
        return Err(format!(
            "arch {} takes {:?} images, dataset {kind} has {:?}",
            model.arch(),
            model.arch().input_shape(),
            test.shape
        ));
    }
    if let Some(limit) = cli.num::<usize>("limit")? {
        test = test.subset(&(0..limit.min(test.len())).collect::<Vec<_>>());
    }
    let threads = cli.num("threads")?.unwrap_or(0);
    let pool = rcc_tensor::threads::pool(threads).map_err(|e| e.to_string())?;
    let batch = cli.num("batch")?.unwrap_or(500);
    let seed: u64 = cli.num("seed")?.unwrap_or(0);
    let json = cli.has("json");
    if !json {
        println!("model    {model_path} ({})", model.arch());
        println!(
            "dataset  {kind} test, {} images; batch {batch}, seed {seed}, {} threads",
            test.len(),
            pool.current_num_threads()
        );
        if let Some((file, source)) = &source {
            println!(
                "transfer each attack also runs on {file} ({}); this model classifies its points (-tr)",
                source.arch()
            );
        }
    }
    // --sparse: the attacks run on the model as the CSR engine deploys it (the same
    // network; its logits equal the dense model's within the export's tolerance).
    let sparse = if cli.has("sparse") {
        if source.is_some() {
            return Err("--sparse with --transfer-from: not supported; drop one".into());
        }
        Some(SparseModel::from_model(&model).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let t0 = Instant::now();
    let (report, clean_secs) = pool
        .install(|| {
            let mut clean_secs = None;
            let mut on_result = |a: &rcc_attack::AttackResult| {
                // The clean pass runs before the first attack.
                clean_secs.get_or_insert(t0.elapsed().as_secs_f64() - a.seconds);
                eprintln!(
                    "  {}{}: {:.2}% ({:.1} s)",
                    a.spec.describe(),
                    if a.transferred { ", transferred" } else { "" },
                    100.0 * a.acc,
                    a.seconds
                );
            };
            let examples = DatasetExamples(&test);
            let progress = |p: Progress<'_>| match p {
                Progress::Done(a) => on_result(a),
                batch => print_progress(&batch, ""),
            };
            let mut report = match &sparse {
                Some(sm) => rcc_attack::evaluate_with_progress(
                    sm, &examples, &specs, batch, seed, progress,
                )?,
                None => rcc_attack::evaluate_with_progress(
                    &model, &examples, &specs, batch, seed, progress,
                )?,
            };
            // With a source model, every attack also runs as a transfer attack: the same
            // random starts, the points classified by this model; the worst case per
            // example of white-box and transfer is the figure to trust.
            if let Some((_, source)) = &source {
                let t = rcc_attack::evaluate_transfer(
                    source,
                    &model,
                    &examples,
                    &specs,
                    batch,
                    seed,
                    &mut on_result,
                )?;
                report.attacks.extend(t.attacks);
            }
            let clean_secs = clean_secs.unwrap_or(t0.elapsed().as_secs_f64());
            Ok::<_, rcc_attack::Error>((report, clean_secs))
        })
        .map_err(|e| e.to_string())?;
    if json {
        let mut header = vec![
            ("model", json_str(model_path)),
            ("arch", json_str(&model.arch().to_string())),
            ("dataset", json_str(&kind.to_string())),
            ("seed", seed.to_string()),
            ("batch", batch.to_string()),
        ];
        if let Some((file, _)) = &source {
            header.push(("transfer_from", json_str(file)));
        }
        if let Some(s) = &sweep {
            let vals: Vec<String> = s.iter().map(|v| fmt_num(*v)).collect();
            header.push(("eps_sweep", format!("[{}]", vals.join(","))));
        }
        println!("{}", report_json(&header, &report));
    } else {
        print!("{}", report_table(&report, clean_secs));
        if specs
            .iter()
            .any(|s| matches!(s, AttackSpec::Apgd { .. } | AttackSpec::ApgdT { .. }))
        {
            println!("(* APGD: initial step size, adapted per example)");
        }
        for s in specs.iter().filter(|s| s.step_size().is_none()) {
            println!("{}: {}", s.name(), s.describe());
        }
        if let Some(s) = &sweep {
            println!();
            print!("{}", sweep_table(&report, s, specs[0].norm()));
        }
        if specs.is_empty() {
            println!("(clean accuracy only: add --attack pgd, apgd-ce, ... or all)");
        } else {
            println!(
                "robust accuracy counts an example correct only if it is correct clean and under the attack"
            );
            if !worst_case_groups(&report).is_empty() {
                println!(
                    "worst: correct under every attack at that eps (per example, as AutoAttack's ensemble)"
                );
            }
        }
    }
    if let (Some(file), Some(s)) = (cli.get("plot"), &sweep) {
        let mut series: Vec<(String, Vec<(f64, f64)>)> = report
            .attacks
            .chunks(s.len())
            .map(|results| {
                let last = &results[results.len() - 1];
                let mut label = series_label(&last.spec);
                if last.transferred {
                    label.push_str(", transfer");
                }
                let pts = results
                    .iter()
                    .map(|a| (a.spec.eps() as f64, 100.0 * a.acc))
                    .collect();
                (label, pts)
            })
            .collect();
        let columns = series.len();
        if columns > 1 {
            let pts = (0..s.len())
                .map(|j| {
                    let idx: Vec<usize> = (0..columns).map(|i| i * s.len() + j).collect();
                    let worst = report.worst_case(&idx).unwrap_or(0.0);
                    (s[j] as f64, 100.0 * worst)
                })
                .collect();
            series.push(("worst case".into(), pts));
        }
        let title = format!(
            "{} ({}) on {kind}, {} test images, seed {seed}",
            Path::new(model_path)
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| model_path.to_string()),
            model.arch(),
            test.len()
        );
        let x_label = format!("eps ({})", specs[0].norm().name());
        let svg = svg_plot(&title, &x_label, &series, report.clean_acc);
        std::fs::write(file, svg).map_err(|e| format!("{file}: {e}"))?;
        if !json {
            println!("plot written to {file}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(names: &str) -> Settings {
        let protocol = Protocol::for_dataset(DatasetKind::Mnist);
        Settings {
            protocol,
            names: parse_attacks(names).unwrap(),
            eps: protocol.eps,
            eps_l2: protocol.eps_l2,
            steps: None,
            step_size: None,
            step_size_l2: None,
            restarts: 1,
            queries: None,
        }
    }

    #[test]
    fn attack_lists_parse() {
        assert_eq!(parse_attacks("all").unwrap(), ATTACKS.to_vec());
        assert_eq!(parse_attacks("pgd, fgsm,pgd").unwrap(), vec!["pgd", "fgsm"]);
        assert_eq!(
            parse_attacks("apgd,pgd-l2").unwrap(),
            vec!["apgd-ce", "pgd-l2"]
        );
        assert!(parse_attacks("cw").unwrap_err().contains("unknown attack"));
        assert!(parse_attacks(",").is_err());
        assert!(parse_sweep("0,0.1,0.3").is_ok());
        assert!(parse_sweep("0.3,0.1").is_err());
        assert!(parse_sweep("0,-1").is_err());
    }

    #[test]
    fn defaults_follow_the_protocol() {
        let s = settings("all");
        let specs = s.specs();
        assert_eq!(specs[0], AttackSpec::Fgsm { eps: 0.3 });
        assert_eq!(specs[1], AttackSpec::PgdLinf(PgdConfig::mnist_eval()));
        assert_eq!(specs[2].eps(), 2.0);
        assert_eq!(specs[2].steps(), 40);
        assert!((specs[2].step_size().unwrap() - 0.125).abs() < 1e-7);
        assert_eq!(
            specs[3],
            AttackSpec::Apgd {
                loss: AttackLoss::CrossEntropy,
                eps: 0.3,
                steps: 100,
                restarts: 1
            }
        );
        assert_eq!(
            specs[4],
            AttackSpec::Apgd {
                loss: AttackLoss::Dlr,
                eps: 0.3,
                steps: 100,
                restarts: 1
            }
        );
        // The step scales with eps in a sweep (same reach in eps units)...
        let sw = s.clone();
        let sweep = settings("pgd").sweep_specs(&[0.1, 0.3]).unwrap();
        assert!((sweep[0].step_size().unwrap() - 0.01 / 3.0).abs() < 1e-7);
        assert_eq!(sweep[1].step_size(), Some(0.01));
        // ... unless given; and l_inf and l_2 attacks cannot share a sweep.
        let fixed = Settings {
            step_size: Some(0.02),
            steps: Some(10),
            ..settings("pgd,apgd-ce")
        };
        let sweep = fixed.sweep_specs(&[0.1, 0.3]).unwrap();
        assert_eq!(sweep[0].step_size(), Some(0.02));
        assert_eq!(sweep[3].steps(), 10);
        assert!(sw.sweep_specs(&[0.1]).is_err());
        let cifar = Protocol::for_dataset(DatasetKind::Cifar10);
        assert_eq!(
            (cifar.eps, cifar.steps, cifar.step_size),
            (8.0 / 255.0, 20, 2.0 / 255.0)
        );
        assert_eq!(Protocol::for_dataset(DatasetKind::FashionMnist).eps, 0.1);
    }

    fn fake_report() -> Report {
        let specs = settings("pgd,apgd-ce")
            .sweep_specs(&[0.0, 0.1, 0.3])
            .unwrap();
        let accs = [0.99, 0.7, 0.2, 0.99, 0.68, 0.15];
        Report {
            n: 100,
            clean_acc: 0.99,
            clean_loss: 0.05,
            clean_correct: vec![true; 100],
            attacks: specs
                .iter()
                .zip(accs)
                .map(|(s, a)| AttackResult {
                    spec: *s,
                    acc: a,
                    // PGD keeps the first examples, APGD-CE the last: their worst case
                    // is the overlap (38% at eps 0.1, none at 0.3).
                    correct: (0..100)
                        .map(|i| match s.name() {
                            "pgd" => (i as f64) < a * 100.0,
                            _ => (i as f64) >= 100.0 - a * 100.0,
                        })
                        .collect(),
                    max_dist: s.eps() as f64,
                    transferred: false,
                    seconds: 1.5,
                })
                .collect(),
        }
    }

    #[test]
    fn json_has_the_required_fields() {
        let r = fake_report();
        let j = report_json(&[("model", json_str("a \"b\".safetensors"))], &r);
        assert!(j.starts_with(
            "{\"model\":\"a \\\"b\\\".safetensors\",\"n\":100,\"clean_acc\":0.990000"
        ));
        for field in [
            "\"name\":\"pgd\"",
            "\"eps\":0.1",
            "\"steps\":40",
            "\"step_size\":0.01",
            "\"restarts\":1",
            "\"acc\":0.700000",
            "\"name\":\"apgd-ce\"",
        ] {
            assert!(j.contains(field), "{field} in {j}");
        }
        assert_eq!(j.matches("\"name\"").count(), 6);
        assert!(j.contains("\"transferred\":false"), "{j}");
        assert!(
            j.contains(
                "\"worst_case\":[{\"norm\":\"linf\",\"eps\":0.1,\"attacks\":2,\"acc\":0.380000},{\"norm\":\"linf\",\"eps\":0.3,\"attacks\":2,\"acc\":0.000000}]"
            ),
            "{j}"
        );
        assert_eq!(j.matches('{').count(), j.matches('}').count());
    }

    #[test]
    fn tables_and_plot() {
        let r = fake_report();
        let t = report_table(&r, 0.2);
        assert!(t.contains("clean") && t.contains("99.00%") && t.contains("apgd-ce"));
        assert!(t.contains("worst") && t.contains("38.00%"), "{t}");
        let sw = sweep_table(&r, &[0.0, 0.1, 0.3], Norm::Linf);
        let row = |k: usize| -> Vec<String> {
            sw.lines()
                .nth(k)
                .unwrap()
                .split_whitespace()
                .map(String::from)
                .collect()
        };
        assert_eq!(row(1), ["eps", "pgd", "apgd-ce", "worst"], "{sw}");
        assert_eq!(row(3), ["0.1", "70.00", "68.00", "38.00"], "{sw}");
        assert_eq!(row(4), ["0.3", "20.00", "15.00", "0.00"], "{sw}");
        // A transferred attack is marked in both tables.
        let mut tr = r.clone();
        tr.attacks.truncate(3);
        tr.attacks
            .extend(r.attacks[..3].iter().cloned().map(|mut a| {
                a.transferred = true;
                a
            }));
        assert!(report_table(&tr, 0.2).contains("pgd-tr"));
        assert!(sweep_table(&tr, &[0.0, 0.1, 0.3], Norm::Linf).contains("pgd-tr"));
        let series = vec![
            (
                "PGD-40 <a&b>".to_string(),
                vec![(0.0, 99.0), (0.1, 70.0), (0.2, 20.0)],
            ),
            (
                "APGD-CE-100".to_string(),
                vec![(0.0, 99.0), (0.1, 68.0), (0.2, 15.0)],
            ),
        ];
        let svg = svg_plot("title", "eps (linf)", &series, 0.99);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 6);
        assert!(svg.contains("PGD-40 &lt;a&amp;b&gt;"));
        assert!(!svg.contains("NaN"));
    }
}
