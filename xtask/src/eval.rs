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
use crate::console::print_progress;
use rcc_attack::{AttackSpec, Norm, Progress};
use rcc_data::{Dataset, DatasetKind, Split};
use rcc_nn::json::Json;
use rcc_nn::{Arch, Model};
use rcc_sparse::SparseModel;
use rcc_train::protocol::{parse_attacks, DatasetExamples, Protocol, Settings};
use rcc_train::svg::{nice_step, Svg, PALETTE};
use rcc_train::tables::{fmt_short, report_json, report_table, sweep_table, worst_case_groups};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

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
        (Some(list), _) => parse_attacks(list).map_err(String::from)?,
        (None, Some(_)) => vec!["pgd"],
        (None, None) => vec![],
    };
    // Settings::check refuses what no attack can run with, naming the flag.
    let settings = Settings {
        protocol,
        names,
        eps: cli.num("eps")?.unwrap_or(protocol.eps),
        eps_l2: cli.num("eps-l2")?.unwrap_or(protocol.eps_l2),
        steps: cli.num("steps")?,
        step_size: cli.num("step-size")?,
        step_size_l2: cli.num("step-size-l2")?,
        restarts: cli.num("restarts")?.unwrap_or(1),
        queries: cli.num("queries")?,
    };
    settings.check().map_err(String::from)?;
    let specs = match &sweep {
        Some(s) => settings.sweep_specs(s).map_err(String::from)?,
        None => settings.specs(),
    };
    let at_least_one = |name: &str| -> Result<Option<usize>, String> {
        match cli.num::<usize>(name)? {
            Some(0) => Err(format!("--{name}: at least 1")),
            v => Ok(v),
        }
    };
    let limit = at_least_one("limit")?;
    let batch = at_least_one("batch")?.unwrap_or(500);
    let threads = cli.num("threads")?.unwrap_or(0);
    let seed: u64 = cli.num("seed")?.unwrap_or(0);
    // Every setting is checked; now the files.
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
    if let Some(limit) = limit {
        test = test.subset(&(0..limit.min(test.len())).collect::<Vec<_>>());
    }
    let pool = rcc_tensor::threads::pool(threads).map_err(|e| e.to_string())?;
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
            ("model", Json::str(model_path)),
            ("arch", Json::str(model.arch().to_string())),
            ("dataset", Json::str(kind.to_string())),
            ("seed", Json::int(seed)),
            ("batch", Json::int(batch as u64)),
        ];
        if let Some((file, _)) = &source {
            header.push(("transfer_from", Json::str(*file)));
        }
        if let Some(s) = &sweep {
            header.push((
                "eps_sweep",
                Json::Array(s.iter().map(|&v| Json::num(v)).collect()),
            ));
        }
        println!("{}", report_json(header, &report));
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
    use rcc_attack::{AttackLoss, PgdConfig};
    use rcc_train::protocol::ATTACKS;

    fn settings(names: &str) -> Settings {
        let protocol = Protocol::for_dataset(DatasetKind::Mnist);
        Settings::new(protocol, parse_attacks(names).unwrap())
    }

    /// Every setting is checked before the model file is read: the error names the flag,
    /// not the (missing) model.
    #[test]
    fn bad_settings_fail_before_the_model_is_read() {
        for (args, needle) in [
            (&["--batch", "0"][..], "--batch"),
            (&["--limit", "0"], "--limit"),
            (&["--attack", "pgd", "--steps", "0"], "--steps"),
            (&["--attack", "square", "--queries", "0"], "--queries"),
            (&["--restarts", "0"], "--restarts"),
            (&["--eps", "-1"], "--eps"),
            (&["--eps", "inf"], "--eps"),
            (&["--eps-sweep", "0.3,0.1"], "--eps-sweep"),
            (&["--attack", "cw"], "unknown attack"),
            (&["--dataset", "imagenet"], "--dataset"),
        ] {
            let mut a = vec![
                "--model".to_string(),
                "/nonexistent/model.safetensors".into(),
            ];
            a.extend(args.iter().map(|s| s.to_string()));
            let err = run(&a).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
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
        assert!(parse_attacks("cw")
            .unwrap_err()
            .to_string()
            .contains("unknown attack"));
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

    #[test]
    fn plot() {
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
