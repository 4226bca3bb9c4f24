//! The training loop through the library alone: resume after a stop is bit-identical
//! (plain, adversarial and every compression method), bad combinations are refused, a
//! non-finite loss stops the run, and one epoch on real MNIST learns.

use rand::rngs::StdRng;
use rand::SeedableRng;
use rcc_compress::{Budget, Method};
use rcc_data::{Dataset, DatasetKind};
use rcc_nn::optim::LrSchedule;
use rcc_nn::safetensors::SafeTensors;
use rcc_nn::{checkpoint, Arch, Model};
use rcc_train::{
    train, AdvTraining, OptimizerKind, Quiet, RunData, RunDir, Stop, TeacherInput, TrainConfig,
};
use std::path::{Path, PathBuf};

/// A small synthetic MNIST-shaped dataset whose label is learnable (it is encoded in
/// the brightness of one image row).
fn synthetic(n: usize, seed: u64) -> Dataset {
    use rand::Rng;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut images = vec![0u8; n * 784];
    let mut labels = vec![0u8; n];
    for i in 0..n {
        let y = rng.gen_range(0..10u8);
        labels[i] = y;
        for (j, px) in images[i * 784..(i + 1) * 784].iter_mut().enumerate() {
            *px = if j / 28 == 2 * y as usize + 4 {
                200 + rng.gen_range(0..50)
            } else {
                rng.gen_range(0..60)
            };
        }
    }
    Dataset {
        kind: DatasetKind::Mnist,
        shape: [1, 28, 28],
        images,
        labels,
        class_names: (0..10).map(|c| c.to_string()).collect(),
    }
}

/// A run stopped after an epoch (the on-disk state of a killed run) and resumed ends
/// bit-identical to an uninterrupted run.
#[test]
fn resumed_run_is_bit_identical_to_an_uninterrupted_one() {
    let data = RunData {
        train: synthetic(600, 1),
        val: None,
        test: synthetic(200, 2),
    };
    let cfg = small_config();
    let (a, b) = (temp_run("whole"), temp_run("killed"));
    let whole = run_training(&cfg, &data, &a, false, None).unwrap();
    let first = run_training(&cfg, &data, &b, false, Some(1)).unwrap();
    assert_eq!(first.epochs_done, 1);
    let resumed = run_training(&cfg, &data, &b, true, None).unwrap();
    assert_eq!(resumed.epochs_done, 3);
    assert_eq!(bits(&whole.model), bits(&resumed.model));
    let metrics = |d: &Path| std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
    // Wall time and peak RSS are measurements of the process, not of the run (the
    // RSS is process-wide, so a test running beside this one moves it): cut from the
    // first of them on.
    let strip_times = |s: String| {
        s.lines()
            .map(|l| {
                let l = l.split(",\"peak_rss_bytes\"").next().unwrap();
                l.split(",\"seconds\"").next().unwrap().to_string()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip_times(metrics(&a)), strip_times(metrics(&b)));
    assert!(
        whole.test_acc > 0.5,
        "the synthetic task is learnable: {}",
        whole.test_acc
    );
}

/// A killed compression run resumes bit-identical to an uninterrupted one, killed in
/// the main phase or in the fine-tuning phase: ADMM (Z, U and rho come back from the
/// checkpoint), ours with a teacher on adversarial inputs and a delayed schedule (its
/// position comes from the epoch), and magnitude pruning (the mask from the zeros).
#[test]
fn resumed_compression_runs_are_bit_identical() {
    let data = RunData {
        train: synthetic(300, 3),
        val: None,
        test: synthetic(100, 4),
    };
    let teacher = temp_run("resume-teacher").with_extension("safetensors");
    Model::new(Arch::LenetAdv(1), 7)
        .save(&teacher, &[])
        .unwrap();
    for (method, alpha) in [("admm:0.001:1", 0.0), ("prox", 0.5), ("magnitude", 0.0)] {
        let cfg = TrainConfig {
            epochs: 4,
            finetune: 1,
            adv: AdvTraining::parse("pgd:0.1:2:0.05").unwrap(),
            method: Some(Method::parse(method).unwrap()),
            rate: 4.0,
            teacher: teacher.display().to_string(),
            alpha,
            temperature: 2.0,
            teacher_input: TeacherInput::Adv,
            ramp_start: 0.25,
            ramp: 0.5,
            ..small_config()
        };
        let a = temp_run(&format!("cwhole-{method}"));
        let whole = run_training(&cfg, &data, &a, false, None).unwrap();
        let pruned = whole.model.params.iter().filter(|v| **v == 0.0).count();
        assert!(pruned > 1000, "{method}: {pruned} zeros");
        // The main phase is 3 epochs. After 2, ADMM has made both of its Z/U updates
        // (it hard-prunes at the end of the third) and ours is mid-schedule (its
        // window is epochs 0.75 to 2.25); after 3 the mask is frozen.
        for stop in [2, 3] {
            let b = temp_run(&format!("ckilled-{method}-{stop}"));
            run_training(&cfg, &data, &b, false, Some(stop)).unwrap();
            let resumed = run_training(&cfg, &data, &b, true, None).unwrap();
            assert_eq!(resumed.epochs_done, 4);
            assert!(
                bits(&whole.model) == bits(&resumed.model),
                "{method}, killed after epoch {stop}: the resumed run differs"
            );
        }
    }
}

/// A checkpoint whose ADMM state is incomplete or the wrong size is refused with an error
/// that names the checkpoint and the tensor, instead of restarting ADMM from a fresh Z
/// and U (a silently different run) or panicking.
#[test]
fn a_checkpoint_with_bad_admm_state_is_refused() {
    let data = RunData {
        train: synthetic(100, 3),
        val: None,
        test: synthetic(50, 4),
    };
    let cfg = TrainConfig {
        epochs: 3,
        finetune: 1,
        method: Some(Method::parse("admm:0.01:1").unwrap()),
        rate: 4.0,
        ..small_config()
    };
    // A case: its name, what it does to the checkpoint, what the error must say.
    type Damage = fn(&mut SafeTensors);
    let cases: [(&str, Damage, &str); 3] = [
        (
            "no-u",
            |st| st.entries.retain(|e| e.name != "extra.admm.u"),
            "ADMM's state is incomplete",
        ),
        (
            "no-rho-value",
            |st| {
                st.entries.retain(|e| e.name != "extra.admm.rho");
                st.push_f32("extra.admm.rho", &[0], vec![]).unwrap();
            },
            "ADMM's state is incomplete",
        ),
        (
            "short-z",
            |st| {
                st.entries.retain(|e| e.name != "extra.admm.z");
                st.push_f32("extra.admm.z", &[3], vec![0.0; 3]).unwrap();
            },
            "checkpointed ADMM Z",
        ),
    ];
    for (name, damage, expected) in cases {
        let dir = temp_run(&format!("bad-admm-{name}"));
        run_training(&cfg, &data, &dir, false, Some(1)).unwrap();
        let ckpt = dir.join("checkpoint.safetensors");
        let mut st = SafeTensors::read(&ckpt).unwrap();
        assert!(
            st.get("extra.admm.z").is_some(),
            "{name}: no ADMM state saved"
        );
        damage(&mut st);
        st.write(&ckpt).unwrap();
        let e = run_training(&cfg, &data, &dir, true, None)
            .err()
            .unwrap_or_else(|| panic!("{name}: resumed from a damaged ADMM state"))
            .to_string();
        assert!(e.contains(expected), "{name}: {e}");
        assert!(e.contains("checkpoint.safetensors"), "{name}: {e}");
    }
}

/// A teacher on adversarial inputs without adversarial examples is refused, not
/// silently given the clean batch.
#[test]
fn teacher_on_adversarial_inputs_needs_adversarial_examples() {
    let data = RunData {
        train: synthetic(50, 3),
        val: None,
        test: synthetic(20, 4),
    };
    let teacher = temp_run("adv-input-teacher").with_extension("safetensors");
    Model::new(Arch::LenetAdv(1), 7)
        .save(&teacher, &[])
        .unwrap();
    let cfg = TrainConfig {
        teacher: teacher.display().to_string(),
        alpha: 0.5,
        teacher_input: TeacherInput::Adv,
        adv: AdvTraining::None,
        ..small_config()
    };
    let Err(err) = run_training(&cfg, &data, &temp_run("adv-input"), false, None) else {
        panic!("a teacher on adversarial inputs without adversarial examples ran");
    };
    assert!(
        err.to_string()
            .contains("teacher-input = adv needs adversarial examples"),
        "{err}"
    );
}

/// The same with an attack in the loop (its random starts come from the epoch's
/// generator too), a clean/adversarial mix and an eps ramp.
#[test]
fn resumed_adversarial_run_is_bit_identical() {
    let data = RunData {
        train: synthetic(300, 5),
        val: None,
        test: synthetic(100, 6),
    };
    let cfg = TrainConfig {
        adv: AdvTraining::parse("pgd:0.1:3:0.04").unwrap(),
        adv_mix: 0.25,
        adv_warmup: 2,
        robust_every: 1,
        robust_limit: 50,
        ..small_config()
    };
    let (a, b) = (temp_run("adv-whole"), temp_run("adv-killed"));
    let whole = run_training(&cfg, &data, &a, false, None).unwrap();
    run_training(&cfg, &data, &b, false, Some(2)).unwrap();
    let resumed = run_training(&cfg, &data, &b, true, None).unwrap();
    assert_eq!(whole.model.params, resumed.model.params);
    let metrics = std::fs::read_to_string(a.join("metrics.jsonl")).unwrap();
    assert!(
        metrics.contains("\"train_adv\":\"pgd:0.05:3:0.02\"") && metrics.contains("test_pgd40_acc"),
        "{metrics}"
    );
}

/// TRADES (`adv = trades:..`), alone and as the student's loss with a teacher on the
/// adversarial batch: the run learns the synthetic task, resumes bit-identical (its
/// Gaussian start comes from the epoch's generator), and a clean mix beside it is
/// refused (TRADES has its own clean term).
#[test]
fn trades_runs_learn_and_resume_bit_identical() {
    let data = RunData {
        train: synthetic(300, 15),
        val: None,
        test: synthetic(100, 16),
    };
    let teacher = temp_run("trades-teacher").with_extension("safetensors");
    Model::new(Arch::LenetAdv(1), 9)
        .save(&teacher, &[])
        .unwrap();
    let plain = TrainConfig {
        adv: AdvTraining::parse("trades:0.1:3:0.04:6").unwrap(),
        adv_warmup: 2,
        optimizer: OptimizerKind::Adam,
        lr: 0.002,
        ..small_config()
    };
    let distilled = TrainConfig {
        teacher: teacher.display().to_string(),
        alpha: 0.5,
        temperature: 2.0,
        teacher_input: TeacherInput::Adv,
        ..plain.clone()
    };
    for (name, cfg) in [("trades", plain.clone()), ("trades-distill", distilled)] {
        let (a, b) = (temp_run(name), temp_run(&format!("{name}-killed")));
        let whole = run_training(&cfg, &data, &a, false, None).unwrap();
        // Chance is 0.1; 18 steps of Adam reach about 0.4 (measured: 0.41 and 0.42).
        assert!(whole.test_acc > 0.3, "{name}: {}", whole.test_acc);
        run_training(&cfg, &data, &b, false, Some(1)).unwrap();
        let resumed = run_training(&cfg, &data, &b, true, None).unwrap();
        assert_eq!(bits(&whole.model), bits(&resumed.model), "{name}");
        let metrics = std::fs::read_to_string(a.join("metrics.jsonl")).unwrap();
        assert!(
            metrics.contains("\"train_adv\":\"trades:0.05:3:0.02:6\""),
            "{metrics}"
        );
    }
    let mixed = TrainConfig {
        adv_mix: 0.5,
        ..plain
    };
    let err = run_training(&mixed, &data, &temp_run("trades-mix"), false, None).unwrap_err();
    assert!(err.to_string().contains("adv-mix"), "{err}");
}

/// With a validation split, the during-training PGD-40 check runs on it (so that
/// settings chosen by it never saw the test set), on its own image count.
#[test]
fn the_robust_check_uses_the_validation_split_when_there_is_one() {
    let data = RunData {
        train: synthetic(200, 5),
        val: Some(synthetic(30, 7)),
        test: synthetic(100, 6),
    };
    let cfg = TrainConfig {
        epochs: 1,
        adv: AdvTraining::parse("pgd:0.1:2:0.05").unwrap(),
        robust_every: 1,
        robust_limit: 50,
        ..small_config()
    };
    let dir = temp_run("val-robust");
    run_training(&cfg, &data, &dir, false, None).unwrap();
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert!(
        metrics.contains("\"val_pgd40_acc\":")
            && metrics.contains("\"val_pgd40_n\":30")
            && !metrics.contains("test_pgd40"),
        "{metrics}"
    );
}

#[test]
fn non_finite_loss_stops_and_keeps_the_last_good_checkpoint() {
    let data = RunData {
        train: synthetic(300, 3),
        val: None,
        test: synthetic(100, 4),
    };
    // Epoch 1 trains normally, epoch 2's learning rate is absurd.
    let cfg = TrainConfig {
        schedule: LrSchedule::parse("step:1:1e12").unwrap(),
        ..small_config()
    };
    let dir = temp_run("nan");
    let err = run_training(&cfg, &data, &dir, false, None).unwrap_err();
    assert!(
        err.to_string().contains("epoch 2")
            && err.to_string().contains("checkpoint.safetensors")
            && err.to_string().contains("1 epochs done"),
        "{err}"
    );
    let mut m = Model::new(cfg.arch, 0);
    let mut opt = cfg.optimizer_for(m.params.len()).unwrap();
    assert_eq!(
        checkpoint::load(&dir.join("checkpoint.safetensors"), &mut m, &mut opt).unwrap(),
        1
    );
    assert!(m.params.iter().all(|v| v.is_finite()));
}

/// One epoch of lenet_adv:2 on real MNIST reaches 97% (skipped without the data).
#[test]
fn one_epoch_of_lenet_adv2_on_mnist_reaches_97_percent() {
    let dir = mnist_dir();
    let cfg = TrainConfig {
        arch: Arch::LenetAdv(2),
        epochs: 1,
        ..TrainConfig::default()
    };
    let data = match RunData::load(&cfg, &dir) {
        Ok(d) => d,
        Err(e) => {
            println!("skipped: MNIST not available ({e})");
            return;
        }
    };
    let r = run_training(&cfg, &data, &temp_run("mnist"), false, None).unwrap();
    println!(
        "lenet_adv:2, 1 epoch: test accuracy {:.2}%",
        100.0 * r.test_acc
    );
    assert!(r.test_acc >= 0.97, "{}", r.test_acc);
}

fn temp_run(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rcc-trainer-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A model's parameters as bits, for bit-identity checks.
fn bits(m: &Model) -> Vec<u32> {
    m.params.iter().map(|v| v.to_bits()).collect()
}

fn small_config() -> TrainConfig {
    TrainConfig {
        arch: Arch::LenetAdv(1),
        epochs: 3,
        batch: 50,
        lr: 0.05,
        ..TrainConfig::default()
    }
}

/// `train` in the folder `dir`, showing nothing.
fn run_training(
    cfg: &TrainConfig,
    data: &RunData,
    dir: &Path,
    resume: bool,
    stop_after: Option<usize>,
) -> rcc_train::Result<rcc_train::RunResult> {
    let stop = stop_after.map_or(Stop::Never, Stop::AfterEpochs);
    train(cfg, data, &RunDir::new(dir), resume, stop, &mut Quiet)
}

/// The MNIST files: `$RCC_DATA`, else the workspace's `datasets/`, else the mirror in
/// `../shared/datasets` beside the workspace.
fn mnist_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("RCC_DATA").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let d = root.join("datasets");
    if d.join("mnist").exists() {
        d
    } else {
        root.join("../shared/datasets")
    }
}

/// Issue 21: runs stopped mid-epoch, as a kill right after a mid-epoch checkpoint leaves
/// them, and resumed (several times, at steps that are and are not multiples of
/// `checkpoint-every`, in the pruning and the fine-tuning phase) end bit-identical to an
/// uninterrupted run, with the same metrics: plain, adversarial with an eps ramp and a
/// clean mix, and every compression method with PGD examples and a teacher.
#[test]
fn runs_resumed_mid_epoch_are_bit_identical() {
    let data = RunData {
        train: synthetic(300, 3),
        val: None,
        test: synthetic(100, 4),
    };
    let teacher = temp_run("mid-teacher").with_extension("safetensors");
    Model::new(Arch::LenetAdv(1), 7)
        .save(&teacher, &[])
        .unwrap();
    let adv = AdvTraining::parse("pgd:0.1:2:0.05").unwrap();
    let base = TrainConfig {
        epochs: 3,
        checkpoint_every: 2,
        ..small_config()
    };
    let cases = [
        ("plain", base.clone()),
        (
            "adversarial",
            TrainConfig {
                adv,
                adv_mix: 0.25,
                adv_warmup: 2,
                ..base.clone()
            },
        ),
    ]
    .into_iter()
    .chain(
        [("admm:0.001:1", 0.0), ("prox", 0.5), ("magnitude", 0.0)].map(|(m, alpha)| {
            (
                m,
                TrainConfig {
                    adv,
                    method: Some(Method::parse(m).unwrap()),
                    rate: 4.0,
                    finetune: 1,
                    teacher: teacher.display().to_string(),
                    alpha,
                    temperature: 2.0,
                    teacher_input: TeacherInput::Adv,
                    ..base.clone()
                },
            )
        }),
    );
    // A global budget splits the weights across layers by the initial magnitudes: a
    // resumed run must take the split from the initial model, not from the checkpoint
    // (the kill test found this).
    let global = TrainConfig {
        budget: Budget::Global,
        ..cases.clone().nth(3).unwrap().1
    };
    let cases = cases.chain([("prox, global budget", global)]);
    // 6 steps per epoch, 18 in all: stops after 5, 3 (an epoch end), 1 and 4 more steps.
    for (name, cfg) in cases {
        let (a, b) = (
            temp_run(&format!("mid-whole-{name}")),
            temp_run(&format!("mid-killed-{name}")),
        );
        let whole = run_training(&cfg, &data, &a, false, None).unwrap();
        let mut resume = false;
        for k in [5, 3, 1, 4] {
            train(
                &cfg,
                &data,
                &RunDir::new(&b),
                resume,
                Stop::AfterSteps(k),
                &mut Quiet,
            )
            .unwrap();
            resume = true;
        }
        let done = run_training(&cfg, &data, &b, true, None).unwrap();
        assert_eq!(done.epochs_done, 3, "{name}");
        assert!(
            bits(&whole.model) == bits(&done.model),
            "{name}: the resumed run differs"
        );
        let metrics = |d: &Path| {
            std::fs::read_to_string(d.join("metrics.jsonl"))
                .unwrap()
                .lines()
                .map(|l| l.split(",\"peak_rss_bytes\"").next().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(metrics(&a), metrics(&b), "{name}");
    }
}

/// Issue 21: a corrupted last checkpoint (truncated, or bytes flipped on disk) is not
/// trusted: the run resumes from the previous one, kept until the last was complete, and
/// still ends bit-identical; with both corrupted it stops with an error naming the file.
#[test]
fn a_corrupted_last_checkpoint_falls_back_to_the_previous_one() {
    let data = RunData {
        train: synthetic(300, 3),
        val: None,
        test: synthetic(100, 4),
    };
    let cfg = TrainConfig {
        epochs: 2,
        checkpoint_every: 2,
        adv: AdvTraining::parse("pgd:0.1:2:0.05").unwrap(),
        ..small_config()
    };
    let whole = run_training(&cfg, &data, &temp_run("fallback-whole"), false, None).unwrap();
    for (name, damage) in [("truncated", 0usize), ("flipped", 1)] {
        let dir = temp_run(&format!("fallback-{name}"));
        let run = RunDir::new(&dir);
        train(&cfg, &data, &run, false, Stop::AfterSteps(5), &mut Quiet).unwrap();
        assert!(
            run.previous_checkpoint().exists(),
            "no previous checkpoint kept"
        );
        let mut bytes = std::fs::read(run.checkpoint()).unwrap();
        if damage == 0 {
            bytes.truncate(bytes.len() / 2);
        } else {
            // The header's first byte: the file no longer parses.
            bytes[8] ^= 0xff;
        }
        std::fs::write(run.checkpoint(), &bytes).unwrap();
        let done = run_training(&cfg, &data, &dir, true, None).unwrap();
        assert!(bits(&whole.model) == bits(&done.model), "{name}");
    }
    // Both damaged: a clear error, nothing trained.
    let dir = temp_run("fallback-both");
    let run = RunDir::new(&dir);
    train(&cfg, &data, &run, false, Stop::AfterSteps(5), &mut Quiet).unwrap();
    for p in [run.checkpoint(), run.previous_checkpoint()] {
        std::fs::write(&p, b"not a checkpoint").unwrap();
    }
    let err = run_training(&cfg, &data, &dir, true, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot resume") && err.contains("checkpoint.prev.safetensors"),
        "{err}"
    );
}
