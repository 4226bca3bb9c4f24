//! Issue 21: real `xtask train` processes killed with SIGKILL at random moments
//! (mid-step, mid-checkpoint-write, mid-evaluation), resumed with `--resume`, finish with
//! a model bit-identical to an uninterrupted run: plain adversarial training, ours (prox
//! with a teacher on adversarial inputs), ADMM (Z, U and rho come back) and magnitude
//! pruning. Small settings: lenet_adv:1 on the first 1,500 MNIST training images, PGD-2,
//! 2 or 3 epochs of 30 steps, a checkpoint every 2 steps; each attempt is killed between
//! a tenth and a half of an uninterrupted run's time after it starts. Skipped without the MNIST files.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mnist_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    [root.join("datasets"), root.join("../shared/datasets")]
        .into_iter()
        .find(|d| d.join("mnist").exists())
}

fn xtask(args: &[String]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args(args).stdout(Stdio::null()).stderr(Stdio::null());
    c
}

fn model_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model.safetensors")).unwrap()
}

/// Runs `args` into `dir`, killing the process after a random delay below `max` until a
/// run finishes by itself; returns the number of kills.
fn run_with_kills(args: &[String], dir: &Path, max: Duration, rng: &mut StdRng) -> usize {
    let mut kills = 0;
    loop {
        let mut a: Vec<String> = if dir.join("checkpoint.safetensors").exists() {
            vec!["train".into(), "--resume".into(), dir.display().to_string()]
        } else {
            let mut a = args.to_vec();
            a.extend(["--out".into(), dir.display().to_string()]);
            a
        };
        a.extend(["--no-report".into(), "--threads".into(), "1".into()]);
        let mut child = xtask(&a).spawn().unwrap();
        let ms = max.as_millis() as u64;
        let delay = Duration::from_millis(rng.gen_range(ms / 10..ms / 2));
        let t0 = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "{a:?} failed: {status}");
                return kills;
            }
            if t0.elapsed() >= delay {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(kills < 200, "{a:?}: no progress after 200 kills");
    }
}

#[test]
fn killed_training_runs_resume_bit_identical() {
    let Some(data) = mnist_dir() else {
        println!("skipped: MNIST not available");
        return;
    };
    let root = std::env::temp_dir().join(format!("rcc-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let teacher = root.join("teacher.safetensors");
    rcc_nn::Model::new(rcc_nn::Arch::LenetAdv(1), 7)
        .save(&teacher, &[])
        .unwrap();
    let common = format!(
        "train --arch lenet_adv:1 --epochs 2 --batch 50 --train-limit 1500 --adv pgd:0.1:2:0.05 \
         --checkpoint-every 2 --robust-every 0 --optimizer adam --lr 0.001 --data {}",
        data.display()
    );
    let t = teacher.display();
    let methods = [
        ("adversarial", "--method none".to_string()),
        (
            "prox",
            format!(
                "--method prox --rate 4 --finetune 1 --teacher {t} --alpha 0.5 --teacher-input adv"
            ),
        ),
        (
            "admm",
            format!("--epochs 3 --method admm:0.001:1 --rate 4 --finetune 1 --teacher {t}"),
        ),
        (
            "magnitude",
            format!("--method magnitude --rate 4 --teacher {t}"),
        ),
    ];
    let mut rng = StdRng::seed_from_u64(21);
    let mut total_kills = 0;
    for (name, extra) in methods {
        let args: Vec<String> = format!("{common} {extra}")
            .split_whitespace()
            .map(String::from)
            .collect();
        // The uninterrupted run, timed: the kills fall anywhere in it.
        let whole = root.join(format!("{name}-whole"));
        let t0 = Instant::now();
        let mut a = args.clone();
        a.extend([
            "--out".into(),
            whole.display().to_string(),
            "--no-report".into(),
        ]);
        a.extend(["--threads".into(), "1".into()]);
        assert!(xtask(&a).status().unwrap().success(), "{a:?}");
        let span = t0.elapsed();
        let killed = root.join(format!("{name}-killed"));
        let kills = run_with_kills(&args, &killed, span, &mut rng);
        println!(
            "{name}: {kills} kills over a {:.1} s run",
            span.as_secs_f64()
        );
        assert!(
            model_bytes(&whole) == model_bytes(&killed),
            "{name}: the run killed {kills} times differs from the uninterrupted one"
        );
        total_kills += kills;
    }
    assert!(total_kills >= 20, "only {total_kills} kills");
    std::fs::remove_dir_all(&root).unwrap();
}

/// results.csv without the measured columns (times, memory), which differ run to run.
fn results_without_measurements(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let measured = [
        "latency_us",
        "train_seconds",
        "compressor_heap_peak_bytes",
        "peak_rss_bytes",
    ];
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| !measured.contains(&header[i]))
        .collect();
    assert_eq!(keep.len() + measured.len(), header.len(), "{header:?}");
    text.lines()
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            keep.iter().map(|&i| cells[i]).collect::<Vec<_>>().join(",") + "\n"
        })
        .collect()
}

/// `sweep --preset smoke` (a teacher, ours, ADMM, magnitude and a dense small net, each
/// a child `train` process, shrunk to seconds) killed with SIGKILL at random moments,
/// rerun until it finishes: every run's model files and the results (but their measured
/// times and memory) equal an uninterrupted sweep's. The kills alternate between the
/// whole process group (a machine's crash, Ctrl-C) and the sweep alone (`kill -9 PID`,
/// the OOM killer), whose child must then stop by itself rather than train on beside
/// the rerun.
#[test]
fn killed_sweeps_rerun_to_the_same_results() {
    let Some(data) = mnist_dir() else {
        println!("skipped: MNIST not available");
        return;
    };
    let root = std::env::temp_dir().join(format!("rcc-kill-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let sweep = |out: &Path| -> Vec<String> {
        format!(
            "sweep --preset smoke --threads 1 --data {} --out {}",
            data.display(),
            out.display()
        )
        .split_whitespace()
        .map(String::from)
        .collect()
    };
    let whole = root.join("whole");
    let t0 = Instant::now();
    assert!(xtask(&sweep(&whole)).status().unwrap().success());
    let span = t0.elapsed();
    let killed = root.join("killed");
    let mut rng = StdRng::seed_from_u64(2121);
    let (mut group_kills, mut parent_kills) = (0, 0);
    loop {
        let mut cmd = xtask(&sweep(&killed));
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().unwrap();
        let ms = span.as_millis() as u64;
        let delay = Duration::from_millis(rng.gen_range(ms / 20..ms / 3));
        let t = Instant::now();
        let finished = loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "the sweep failed: {status}");
                break true;
            }
            if t.elapsed() >= delay {
                break false;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        if finished {
            break;
        }
        // Alternately the whole group and the sweep alone.
        if (group_kills + parent_kills) % 2 == 0 {
            let pgid = child.id();
            let ok = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .status()
                .unwrap();
            assert!(ok.success());
            group_kills += 1;
        } else {
            child.kill().unwrap();
            parent_kills += 1;
        }
        child.wait().unwrap();
        // Nothing of the killed sweep runs on: its orphaned child stops by itself at its
        // next step or attack batch (a smoke run lasts 5 to 10 s).
        let pgid = child.id();
        let t = Instant::now();
        while Command::new("kill")
            .args(["-0", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
        {
            assert!(
                t.elapsed() < Duration::from_secs(3),
                "a process of the killed sweep still runs 3 s later"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            group_kills + parent_kills < 200,
            "no progress after 200 kills"
        );
    }
    println!(
        "sweep: {group_kills} process-group kills and {parent_kills} sweep-only kills over a {:.1} s sweep",
        span.as_secs_f64()
    );
    assert!(
        parent_kills >= 3,
        "only {group_kills} + {parent_kills} kills"
    );
    assert_eq!(
        results_without_measurements(&killed),
        results_without_measurements(&whole)
    );
    // A file's bytes once the sweep folder's own path (in the teacher setting of each
    // run's config, stored in the model's metadata) is replaced by a placeholder.
    let normalized = |dir: &Path, file: &Path| {
        let mut st = rcc_nn::safetensors::SafeTensors::read(file).unwrap();
        for v in st.metadata.values_mut() {
            *v = v.replace(&dir.display().to_string(), "SWEEP");
        }
        st.to_bytes().unwrap()
    };
    for run in [
        "teacher",
        "prox-r3.89",
        "admm-r3.89",
        "magnitude-r3.89",
        "dense-w1",
    ] {
        for file in ["model.safetensors", "model.sparse.safetensors"] {
            let a = normalized(&whole, &whole.join(run).join(file));
            let b = normalized(&killed, &killed.join(run).join(file));
            assert!(a == b, "{run}/{file} differs after the kills");
        }
    }
    std::fs::remove_dir_all(&root).unwrap();
}
