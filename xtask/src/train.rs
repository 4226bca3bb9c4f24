//! `cargo xtask train`: the command line over `rcc_train` (the training loop, natural,
//! adversarial, and compressing with any method of `rcc_compress`, with progress,
//! metrics, atomic checkpoints and resume); with no flags, the whole framework of issue 6
//! (see [`TrainConfig::pipeline`] and `rcc_train::evaluate`).
//!
//! A run is described by one `key = value` file (`--config FILE`, flags override it),
//! which is written, resolved, into the run folder as `config.txt`. The run folder then
//! holds `model.safetensors` (the final model, with the arch and training facts in its
//! metadata), `metrics.jsonl` (one line per epoch) and `checkpoint.safetensors` (written
//! atomically at each epoch end), and after the evaluation `model.sparse.safetensors`,
//! `report.md` and `summary.txt`. `--resume DIR` continues a killed run from its last
//! checkpoint; with the same seed and thread count the finished model is bit-identical
//! to an uninterrupted run, because every random stream is derived from (seed, epoch).
//!
//! Every setting is checked before any data is read or any file written: a bad one
//! fails at once with a message that names it.

use crate::cli::{data_dir, workspace_root, Cli};
use crate::console::{fmt_duration, Console};
use rcc_compress::{Budget, Method};
use rcc_train::config::read_pairs;
use rcc_train::evaluate::accuracy_and_loss;
use rcc_train::protocol::Protocol;
use rcc_train::report::pct;
use rcc_train::teacher::cached_teacher;
use rcc_train::{finish_run, train, AdvTraining, RunData, RunDir, Stop, TrainConfig, KEYS};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// The run's config from the command line: [`TrainConfig::pipeline`] (or, with `method =
/// none`, the plain-training [`TrainConfig::default`]), then the config file, then the
/// flags (`--dataset` first, since it sets the attack's default eps).
/// Only our method distils by default: for the baselines `alpha` is 0 unless given.
pub fn config_from_cli(cli: &Cli) -> Result<TrainConfig, String> {
    let mut given: Vec<(String, String)> = vec![];
    if let Some(file) = cli.get("config") {
        given.extend(
            read_pairs(Path::new(file))?
                .into_iter()
                .map(|(_, k, v)| (k, v)),
        );
    }
    for (k, v) in cli.pairs() {
        if KEYS.contains(&k) {
            given.push((k.into(), v.into()));
        }
    }
    let has = |key: &str| given.iter().any(|(k, _)| k == key);
    // `--method none` is plain training, from the plain defaults (natural, SGD).
    let plain = given
        .iter()
        .rev()
        .find(|(k, _)| k == "method")
        .is_some_and(|(_, v)| v == "none");
    let mut cfg = if plain {
        TrainConfig::default()
    } else {
        TrainConfig::pipeline()
    };
    // The dataset first: it sets the default training attack.
    if let Some((_, v)) = given.iter().rev().find(|(k, _)| k == "dataset") {
        cfg.set("dataset", v)?;
        if !plain {
            cfg.adv = AdvTraining::for_dataset(cfg.dataset);
        }
    }
    for (k, v) in given.iter().filter(|(k, _)| k != "dataset") {
        cfg.set(k, v)?;
    }
    let ours = matches!(cfg.method, Some(Method::Prox { .. }));
    if !ours && !has("alpha") {
        cfg.alpha = 0.0;
    }
    cfg.check()?;
    Ok(cfg)
}

pub fn run(args: &[String]) -> Result<ExitCode, String> {
    let mut valued: Vec<&str> = KEYS.to_vec();
    valued.extend(["config", "out", "resume", "threads", "data"]);
    let cli = Cli::parse(args, &valued, &["no-report"])?;
    let (mut cfg, run, resume) = match cli.get("resume") {
        Some(dir) => {
            if let Some((k, _)) = cli
                .pairs()
                .find(|(k, _)| KEYS.contains(k) || *k == "config" || *k == "out")
            {
                return Err(format!("--resume continues a run as configured in its config.txt; --{k} cannot change it"));
            }
            let run = RunDir::new(dir);
            let cfg = run.read_config()?;
            if !run.checkpoint().exists() {
                return Err(format!(
                    "{}: no checkpoint.safetensors to resume from",
                    run.path().display()
                ));
            }
            (cfg, run, true)
        }
        None => {
            let cfg = config_from_cli(&cli)?;
            let out = cli
                .get("out")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace_root().join("runs").join(cfg.default_run_name()));
            (cfg, RunDir::new(out), false)
        }
    };
    let threads = cli.num::<usize>("threads")?.unwrap_or(0);
    let pool = rcc_tensor::threads::pool(threads).map_err(|e| e.to_string())?;
    // One process per run folder, until this one ends (taken once every setting is
    // checked: a bad one writes nothing).
    let _lock = match run.try_lock()? {
        Some(lock) => lock,
        None if crate::console::sweep_parent().is_some() => {
            // A killed sweep's child, still stopping (it stops at its next step).
            eprintln!(
                "waiting for the process that holds {}",
                run.lock_file().display()
            );
            run.lock()?
        }
        None => {
            return Err(format!(
                "{}: another process is training or evaluating in this folder (it holds {}); wait for it to end or stop it",
                run.path().display(),
                run.lock_file().display()
            ))
        }
    };
    let data_dir = data_dir(cli.get("data"));
    let data = RunData::load(&cfg, &data_dir)?;
    let t0 = Instant::now();
    let mut console = Console::new();
    let needs_teacher = cfg.alpha > 0.0 || cfg.method.is_some_and(|m| m.prunes());
    if needs_teacher && cfg.teacher.is_empty() {
        let teachers = workspace_root().join("runs").join("teachers");
        let path =
            pool.install(|| cached_teacher(&cfg, &data, &data_dir, &teachers, &mut console))?;
        cfg.teacher = path.display().to_string();
    }
    println!(
        "{}",
        describe(&cfg, &data, pool.current_num_threads(), run.path())
    );
    let t_train = Instant::now();
    let mut result =
        pool.install(|| train(&cfg, &data, &run, resume, Stop::Never, &mut console))?;
    if result.samples > 0 {
        eprintln!(
            "trained {} samples in {}",
            result.samples,
            fmt_duration(t_train.elapsed().as_secs_f64())
        );
    }
    if result.test_acc.is_nan() {
        // Resumed after its last epoch: nothing trained, measure the model as it is.
        result.test_acc = accuracy_and_loss(&result.model, &data.test, 1000)?.0;
    }
    run.save_model(&cfg, &result.model, result.epochs_done, result.test_acc)?;
    println!(
        "test accuracy {:.2}% after {} epochs ({})",
        100.0 * result.test_acc,
        result.epochs_done,
        fmt_duration(t_train.elapsed().as_secs_f64())
    );
    println!("model written to {}", run.model().display());
    if cli.has("no-report") {
        return Ok(ExitCode::SUCCESS);
    }
    if run.summary().exists() {
        println!("already evaluated: {}", run.report().display());
        return Ok(ExitCode::SUCCESS);
    }
    let s = pool.install(|| finish_run(&cfg, &run, &data, &mut console))?;
    console.stop_if_orphaned();
    if let Some(section) = crate::embedded::report_section(&run.model(), cfg.arch, run.path()) {
        let mut report = std::fs::read_to_string(run.report())
            .map_err(|e| format!("{}: {e}", run.report().display()))?;
        report.push_str(&section);
        crate::cli::write_atomic(&run.report(), report.as_bytes())?;
    }
    // An unpruned model's export is checked clean only: its attack figures are NaN,
    // printed as "-" as in the report.
    println!(
        "natural {}%, FGSM {}%, PGD-{} {}%, APGD-CE {}% (dense masked; exported sparse: {} / {} / {} / {}); rate {:.2}x; {} -> {} bytes; sparse batch-1 {:.1} µs",
        pct(s.dense.clean),
        pct(s.dense.fgsm),
        Protocol::for_dataset(cfg.dataset).steps,
        pct(s.dense.pgd),
        pct(s.dense.apgd),
        pct(s.sparse.clean),
        pct(s.sparse.fgsm),
        pct(s.sparse.pgd),
        pct(s.sparse.apgd),
        s.rate(),
        s.dense_bytes,
        s.sparse_bytes,
        s.latency_us
    );
    println!(
        "report: {} (total {})",
        run.report().display(),
        fmt_duration(t0.elapsed().as_secs_f64())
    );
    Ok(ExitCode::SUCCESS)
}

/// The run in one line, before it starts.
fn describe(cfg: &TrainConfig, data: &RunData, threads: usize, out: &Path) -> String {
    format!(
        "training {} on {} ({} train, {} {} images), {} epochs, batch {}, {} lr {} ({}), adversarial {}, method {}{}, seed {}, {threads} threads -> {}",
        cfg.arch,
        cfg.dataset,
        data.train.len(),
        data.final_eval().len(),
        rcc_train::evaluate::eval_split(cfg),
        cfg.epochs,
        cfg.batch,
        cfg.optimizer,
        cfg.lr,
        cfg.schedule,
        cfg.adv,
        cfg.method.map_or("none".into(), |m| m.to_string()),
        match cfg.method {
            Some(m) if m.prunes() => format!(
                " to {}x ({} budget, {} debias epochs), teacher {} (alpha {}, t {})",
                cfg.rate,
                match cfg.budget {
                    Budget::PerLayer => "per-layer",
                    Budget::Global => "global",
                },
                cfg.finetune,
                cfg.teacher,
                cfg.alpha,
                cfg.temperature
            ),
            _ => String::new(),
        },
        cfg.seed,
        out.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcc_data::DatasetKind;
    use rcc_nn::Arch;
    use rcc_train::metrics::read_metrics;
    use rcc_train::report::Summary;

    /// Quiet, but with the counting allocator's figures.
    struct Counted;
    impl rcc_train::Observer for Counted {
        fn heap_counter(&self) -> Option<rcc_train::HeapCounter> {
            Some(crate::heap::COUNTER)
        }
    }

    fn temp_run(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rcc-train-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// Issue 20: a bad setting fails at once, with a message that names it, before any
    /// data is read, any teacher trained or any file written.
    #[test]
    fn bad_settings_fail_before_any_work() {
        let out = temp_run("bad-settings");
        let cases: [(&[&str], &str); 9] = [
            (&["--finetune", "2", "--epochs", "1"], "finetune (2)"),
            (&["--rate", "0"], "rate"),
            (&["--adv", "pgd:-1:10:0.1"], "adv"),
            (&["--lr", "0"], "lr"),
            (&["--alpha", "2"], "alpha"),
            (&["--optimizer", "rmsprop"], "optimizer"),
            (&["--schedule", "linear"], "schedule"),
            (&["--threads", "x"], "--threads"),
            // Settings come before data: a missing data folder is not what is reported.
            (&["--epochs", "0", "--data", "/nonexistent"], "epochs"),
        ];
        for (args, needle) in cases {
            let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            a.extend(["--out".to_string(), out.display().to_string()]);
            let err = run(&a).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
            assert!(!out.exists(), "{args:?} wrote {}", out.display());
        }
    }

    #[test]
    fn the_command_line_starts_from_the_pipeline_or_plain_training() {
        let cfg = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let mut valued: Vec<&str> = KEYS.to_vec();
            valued.extend(["config", "out"]);
            config_from_cli(&Cli::parse(&args, &valued, &[]).unwrap()).unwrap()
        };
        assert_eq!(cfg(&[]), TrainConfig::pipeline());
        assert_eq!(
            cfg(&["--method", "none"]),
            TrainConfig {
                method: None,
                ..TrainConfig::default()
            }
        );
        let admm = cfg(&["--method", "admm", "--rate", "4"]);
        assert_eq!((admm.alpha, admm.rate), (0.0, 4.0));
        assert_eq!(cfg(&["--method", "admm", "--alpha", "0.3"]).alpha, 0.3);
        // The dataset sets the attack's eps, whatever the flags' order; --adv overrides.
        let f = cfg(&["--adv-warmup", "1", "--dataset", "fashion-mnist"]);
        assert_eq!(f.adv, AdvTraining::for_dataset(DatasetKind::FashionMnist));
        assert_eq!(f.adv.eps(), 0.1);
        let g = cfg(&["--adv", "none", "--dataset", "fashion-mnist"]);
        assert_eq!(g.adv, AdvTraining::None);
        assert_eq!(
            cfg(&["--rate", "8"]).default_run_name(),
            "mnist-lenet_adv4-prox-r8-s1"
        );
        // A combination that cannot run is refused from the flags alone, before any data
        // or teacher (it used to fail after training the teacher).
        let args: Vec<String> = ["--finetune", "2", "--epochs", "1"]
            .iter()
            .map(|a| a.to_string())
            .collect();
        let mut valued: Vec<&str> = KEYS.to_vec();
        valued.extend(["config", "out"]);
        let err = config_from_cli(&Cli::parse(&args, &valued, &[]).unwrap()).unwrap_err();
        assert!(err.contains("finetune (2) must leave epochs (1)"), "{err}");
        assert_eq!(
            cfg(&["--method", "magnitude", "--finetune", "2", "--epochs", "2"]).epochs,
            2
        );
    }

    /// Issue 6: a short compression run on real MNIST meets the target rate exactly,
    /// per layer, for ours and for ADMM (natural loss, to stay fast; skipped without the
    /// data): lenet_adv:2 trained one epoch, then compressed to 16x with 2 epochs of
    /// pruning (one ADMM update) and 1 of debiasing / masked retraining.
    #[test]
    fn compression_runs_meet_the_target_rate_exactly() {
        let dir = crate::cli::data_dir(None);
        let dir = if dir.join("mnist").exists() {
            dir
        } else {
            workspace_root().join("../shared/datasets")
        };
        let run_training = |cfg: &TrainConfig, data: &RunData, dir: &Path| {
            train(
                cfg,
                data,
                &RunDir::new(dir),
                false,
                Stop::Never,
                &mut Counted,
            )
        };
        let base = TrainConfig {
            arch: Arch::LenetAdv(2),
            epochs: 1,
            ..TrainConfig::default()
        };
        let data = match RunData::load(&base, &dir) {
            Ok(d) => d,
            Err(e) => {
                println!("skipped: MNIST not available ({e})");
                return;
            }
        };
        let teacher_dir = temp_run("compress-teacher");
        let t = run_training(&base, &data, &teacher_dir).unwrap();
        let teacher = teacher_dir.join("model.safetensors");
        t.model.save(&teacher, &[]).unwrap();
        for (method, alpha) in [("prox", 0.5), ("admm:0.001:1", 0.0), ("magnitude", 0.0)] {
            let mut cfg = TrainConfig {
                epochs: 3,
                finetune: 1,
                lr: 0.01,
                teacher: teacher.display().to_string(),
                alpha,
                temperature: 2.0,
                ..base.clone()
            };
            cfg.set("method", method).unwrap();
            let dir = temp_run(method);
            let r = run_training(&cfg, &data, &dir).unwrap();
            let p = rcc_compress::Prunable::of(&r.model.net);
            let want = (p.total() as f64 / 16.0).round() as usize;
            assert_eq!(p.nnz(&r.model.params), want, "{method}");
            println!(
                "{method}: rate {:.3}x, test accuracy {:.2}%",
                p.rate(&r.model.params),
                100.0 * r.test_acc
            );
            assert!(r.test_acc >= 0.9, "{method}: {}", r.test_acc);
            let metrics = read_metrics(&dir.join("metrics.jsonl")).unwrap();
            let heap_peak = metrics[0].compress.as_ref().unwrap().heap.unwrap().1 as f64;
            if method.starts_with("admm") {
                // Z and U, measured by the counting allocator (other tests allocating at the
                // same time can only add to it, so only the lower bound is asserted here;
                // docs/results.md's memory table comes from separate processes).
                assert!(heap_peak >= 8.0 * p.total() as f64, "{heap_peak}");
            }
            if method == "prox" {
                // The pipeline's end on 300 images: export, attacks on the dense and the
                // sparse model, report. The run holds out a validation split, so every
                // figure must come from it and none from the test set, whose labels are
                // made wrong here: a figure read on it would be near 0.
                let cfg = TrainConfig { val: 300, ..cfg };
                let run = RunDir::new(&dir);
                run.save_model(&cfg, &r.model, r.epochs_done, r.test_acc)
                    .unwrap();
                let head: Vec<usize> = (0..300).collect();
                let mut wrong = data.test.subset(&head);
                for l in &mut wrong.labels {
                    *l = (*l + 1) % 10;
                }
                let split = RunData {
                    train: data.train.subset(&[0]),
                    val: Some(data.test.subset(&head)),
                    test: wrong,
                };
                let s = finish_run(&cfg, &run, &split, &mut rcc_train::Quiet).unwrap();
                assert_eq!(s.nnz, want);
                assert!(s.gap_pts() <= 100.0 / 300.0 + 1e-9, "{}", s.gap_pts());
                assert!(s.dense.pgd < s.dense.clean && s.dense.clean > 0.9);
                // The transfer check ran (the run has a teacher), and the worst case
                // is no better than any attack it covers.
                let d = &s.dense;
                assert!(!d.transfer.is_nan() && d.transfer <= d.clean, "{d:?}");
                assert!(d.worst <= d.pgd.min(d.apgd).min(d.transfer), "{d:?}");
                assert!(s.sparse.transfer.is_nan());
                // AutoAttack and Square ran (on all 300 images here), and the worst case
                // that includes them is no better than either, nor than the full-set
                // attacks on those images; AutoAttack is no better than its APGD-CE.
                assert!(!d.autoattack.is_nan() && !d.square.is_nan(), "{d:?}");
                let bound = d.autoattack.min(d.square).min(d.pgd_aa).min(d.worst);
                assert!(d.worst_aa <= bound && d.autoattack <= d.apgd_aa, "{d:?}");
                assert_eq!((d.pgd_aa, d.apgd_aa), (d.pgd, d.apgd), "all 300 images");
                let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
                assert!(
                    report.contains("Per layer")
                        && report.contains("agree")
                        && report.contains("crafted on the teacher")
                        && report.contains("| AutoAttack | Square-5000 |")
                        && report.contains("validation split (300 training images held out")
                        && report.contains("first 300 validation images")
                        && !report.contains("test images"),
                    "{report}"
                );
                let back = Summary::read(&dir).unwrap();
                assert_eq!(back.nnz, want);
            }
        }
    }

    /// A resumed ADMM run's compressor memory is its Z and U, as in an uninterrupted run:
    /// the checkpoint file is read once, outside the measurement. (Reading it inside, once
    /// per extra tensor, put twice the file's size into the measured peak: 39.4 MB
    /// against 6.7 MB for three resumed w8 runs of the tradeoff sweep.)
    #[test]
    fn a_resumed_admm_run_measures_only_its_z_and_u() {
        // Random images: only the memory figures matter here.
        let images = |n: usize, seed: u8| rcc_data::Dataset {
            kind: DatasetKind::Mnist,
            shape: [1, 28, 28],
            images: (0..n * 784)
                .map(|i| (i * 31 + seed as usize) as u8)
                .collect(),
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
            class_names: (0..10).map(|c| c.to_string()).collect(),
        };
        let data = RunData {
            train: images(100, 1),
            val: None,
            test: images(50, 2),
        };
        let cfg = TrainConfig {
            arch: Arch::LenetAdv(2),
            epochs: 3,
            finetune: 1,
            batch: 50,
            adv: AdvTraining::parse("none").unwrap(),
            method: Some(Method::parse("admm:0.01:1").unwrap()),
            rate: 4.0,
            ..TrainConfig::default()
        };
        let peak = |dir: &Path, epoch: usize| {
            let m = read_metrics(&dir.join("metrics.jsonl")).unwrap();
            m[epoch - 1].compress.as_ref().unwrap().heap.unwrap().1
        };
        let whole = temp_run("admm-heap-whole");
        train(
            &cfg,
            &data,
            &RunDir::new(&whole),
            false,
            Stop::Never,
            &mut Counted,
        )
        .unwrap();
        let killed = temp_run("admm-heap-killed");
        let run = RunDir::new(&killed);
        train(&cfg, &data, &run, false, Stop::AfterEpochs(1), &mut Counted).unwrap();
        let file = std::fs::metadata(killed.join("checkpoint.safetensors"))
            .unwrap()
            .len() as usize;
        train(&cfg, &data, &run, true, Stop::Never, &mut Counted).unwrap();
        let (a, b) = (peak(&whole, 2), peak(&killed, 2));
        // Z and U of lenet_adv:2 (about 0.4 MB); the file holds them, the weights and
        // Adam's two moments (about 1 MB).
        assert!(a > 0 && file > a, "peak {a}, checkpoint {file}");
        // Both runs make the same allocations in the compressor (Z and U, then the same
        // steps' scratch), so the figures should agree; 10% is slack for a scratch
        // buffer's size, far below the file's size that the old resume added twice.
        assert!(
            b <= a + a / 10,
            "resumed {b} against uninterrupted {a} (checkpoint {file})"
        );
        assert!(b + a / 10 >= a, "resumed {b} against uninterrupted {a}");
    }
}
