//! Issue 21: real `xtask train` processes killed with SIGKILL at random moments
//! (mid-step, mid-checkpoint-write, mid-evaluation), resumed with `--resume`, finish with
//! a model bit-identical to an uninterrupted run: plain adversarial training, ours (prox
//! with a teacher on adversarial inputs), ADMM (Z, U and rho come back) and magnitude
//! pruning. Small settings: lenet_adv:1 on the first 1,500 MNIST training images, PGD-2,
//! 2 or 3 epochs of 30 steps, a checkpoint every 2 steps; each attempt is killed between
//! a tenth of and a whole uninterrupted run's time after it starts, 6 kills per method. Skipped without the MNIST files.

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

/// Waits for `child` until it exits (which must be a success; `what` names it in the
/// failure) or `delay` has passed; whether it exited.
fn finishes_within(child: &mut std::process::Child, delay: Duration, what: &str) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < delay {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{what} failed: {status}");
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// Kills per method in [`killed_training_runs_resume_bit_identical`].
const KILLS_PER_METHOD: usize = 6;

/// Runs `args` with kills until [`KILLS_PER_METHOD`] kills have landed: each attempt is
/// killed after a random delay of 1/10 to all of `span` (the uninterrupted run's time), so
/// the kills fall anywhere in a run (start-up, steps, checkpoint writes, the last
/// evaluation); when a resumed run finishes before the next kill, its model must equal
/// `expected` and a fresh run (a new folder) takes the remaining kills. Drawing a fixed
/// count of short delays instead would put every kill before the first checkpoint;
/// stopping at the first finished run would make the count depend on the machine's
/// speed. Returns (kills, kills that found a checkpoint to resume from, finished runs).
fn runs_with_kills(
    args: &[String],
    base: &Path,
    span: Duration,
    expected: &[u8],
    rng: &mut StdRng,
) -> (usize, usize, usize) {
    let (mut kills, mut resumable, mut finished) = (0, 0, 0);
    while kills < KILLS_PER_METHOD {
        let dir = base.with_extension(finished.to_string());
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
            let ms = span.as_millis() as u64;
            // Once the kills are spent, the folder's run is left to finish.
            let delay = if kills < KILLS_PER_METHOD {
                Duration::from_millis(rng.gen_range(ms / 10..=ms))
            } else {
                Duration::MAX
            };
            if finishes_within(&mut child, delay, &format!("{a:?}")) {
                assert!(
                    model_bytes(&dir) == expected,
                    "{}: the run killed {kills} times in all differs from the uninterrupted one",
                    dir.display()
                );
                finished += 1;
                break;
            }
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            kills += 1;
            resumable += dir.join("checkpoint.safetensors").exists() as usize;
        }
    }
    (kills, resumable, finished)
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
        let (kills, resumable, finished) =
            runs_with_kills(&args, &killed, span, &model_bytes(&whole), &mut rng);
        println!(
            "{name}: {kills} kills ({resumable} after a checkpoint) over a {:.1} s run, \
             {finished} killed runs finished bit-identical",
            span.as_secs_f64()
        );
        assert!(
            resumable >= 2,
            "{name}: only {resumable} kills found a checkpoint"
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
/// the OOM killer), whose children must then stop by themselves rather than train on
/// beside the rerun. The killed sweeps run two children at a time (`--jobs 2`), the
/// uninterrupted one a single child.
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
    // A file's bytes once the sweep folder's own path (in the teacher setting of each
    // run's config, stored in the model's metadata) is replaced by a placeholder.
    let normalized = |dir: &Path, file: &Path| {
        let mut st = rcc_nn::safetensors::SafeTensors::read(file).unwrap();
        for v in st.metadata.values_mut() {
            *v = v.replace(&dir.display().to_string(), "SWEEP");
        }
        st.to_bytes().unwrap()
    };
    let same_as_whole = |killed: &Path| {
        assert_eq!(
            results_without_measurements(killed),
            results_without_measurements(&whole)
        );
        for run in [
            "teacher",
            "prox-r3.89",
            "admm-r3.89",
            "magnitude-r3.89",
            "dense-w1",
        ] {
            for file in ["model.safetensors", "model.sparse.safetensors"] {
                let a = normalized(&whole, &whole.join(run).join(file));
                let b = normalized(killed, &killed.join(run).join(file));
                assert!(a == b, "{run}/{file} differs after the kills");
            }
        }
    };
    // Kills until SWEEP_KILLS have landed, each 1/20 to 1/3 of the uninterrupted sweep's
    // time after a (re)start; a sweep that finishes before the kills are spent is checked
    // and a fresh one (a new folder) takes the rest, so the count never depends on the
    // machine's speed (with one folder, CI once saw only 5 kills).
    const SWEEP_KILLS: usize = 6;
    let mut rng = StdRng::seed_from_u64(2121);
    let (mut group_kills, mut parent_kills, mut finished) = (0, 0, 0);
    while group_kills + parent_kills < SWEEP_KILLS {
        let killed = root.join(format!("killed-{finished}"));
        loop {
            // Two runs at a time (`--jobs 2`) where the uninterrupted sweep ran one: the
            // results must not depend on it either.
            let mut args = sweep(&killed);
            args.extend(["--jobs".into(), "2".into()]);
            let mut cmd = xtask(&args);
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            let mut child = cmd.spawn().unwrap();
            let ms = span.as_millis() as u64;
            // Once the kills are spent, the folder's sweep is left to finish.
            let delay = if group_kills + parent_kills < SWEEP_KILLS {
                Duration::from_millis(rng.gen_range(ms / 20..ms / 3))
            } else {
                Duration::MAX
            };
            if finishes_within(&mut child, delay, "the sweep") {
                same_as_whole(&killed);
                finished += 1;
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
            // Nothing of the killed sweep runs on: its orphaned children stop by
            // themselves at their next step or attack batch, or within 20 ms of it in a
            // compiler run (a smoke run lasts 5 to 10 s).
            let pgid = child.id();
            let t = Instant::now();
            while Command::new("kill")
                .args(["-0", "--", &format!("-{pgid}")])
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success()
            {
                if t.elapsed() > Duration::from_secs(3) {
                    // What still runs, for the failure message's reader.
                    let _ = Command::new("ps")
                        .args(["-o", "pid,etime,args", "-g", &pgid.to_string()])
                        .status();
                }
                assert!(
                    t.elapsed() < Duration::from_secs(3),
                    "a process of the killed sweep still runs 3 s later"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    println!(
        "sweep: {group_kills} process-group kills and {parent_kills} sweep-only kills over a \
         {:.1} s sweep; {finished} killed sweeps finished with the same results",
        span.as_secs_f64()
    );
    std::fs::remove_dir_all(&root).unwrap();
}
