//! Issue 21: faults of the disk under real `xtask train` processes. A full disk (a
//! file-size limit, `ulimit -f`, so the checkpoint write fails with EFBIG part-way) and a
//! read-only run folder each stop the run with an error that names the file, leave the
//! last good checkpoint byte for byte as it was and no temporary file behind, and once
//! the fault is gone `--resume` finishes with a model bit-identical to an uninterrupted
//! run. (A truncated or corrupted last checkpoint falls back to the previous one:
//! `crates/train/tests/trainer.rs`.) Skipped without the MNIST files.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn mnist_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    [root.join("datasets"), root.join("../shared/datasets")]
        .into_iter()
        .find(|d| d.join("mnist").exists())
}

/// lenet_adv:1, 2 epochs of 30 steps, a checkpoint every 2 steps.
fn train_args(data: &Path, out: &Path) -> Vec<String> {
    format!(
        "train --arch lenet_adv:1 --epochs 2 --batch 50 --train-limit 1500 --adv pgd:0.1:2:0.05 \
         --checkpoint-every 2 --robust-every 0 --optimizer adam --lr 0.001 --method none --no-report \
         --threads 1 --data {} --out {}",
        data.display(),
        out.display()
    )
    .split_whitespace()
    .map(String::from)
    .collect()
}

fn resume_args(run: &Path) -> Vec<String> {
    [
        "train",
        "--resume",
        &run.display().to_string(),
        "--no-report",
        "--threads",
        "1",
    ]
    .map(String::from)
    .to_vec()
}

fn xtask(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .unwrap()
}

/// Starts a run and kills it (SIGKILL) once it has written a mid-epoch checkpoint.
fn start_and_kill(args: &[String], run: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !run.join("checkpoint.safetensors").exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its first checkpoint"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no checkpoint after 120 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Every file of `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

fn model(run: &Path) -> Vec<u8> {
    std::fs::read(run.join("model.safetensors")).unwrap()
}

struct Dirs {
    root: PathBuf,
    whole: Vec<u8>,
    data: PathBuf,
}

/// A fresh temporary root and the model of the uninterrupted run.
fn setup(tag: &str) -> Option<Dirs> {
    let data = mnist_dir()?;
    let root = std::env::temp_dir().join(format!("rcc-disk-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let whole = root.join("whole");
    let out = xtask(&train_args(&data, &whole));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(Dirs {
        whole: model(&whole),
        root,
        data,
    })
}

/// Once the fault is gone, `--resume` finishes the run with the uninterrupted run's model.
fn resume_to_the_end(d: &Dirs, run: &Path) {
    let out = xtask(&resume_args(run));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        model(run) == d.whole,
        "the resumed run differs from the uninterrupted one"
    );
    std::fs::remove_dir_all(&d.root).unwrap();
}

#[test]
fn a_full_disk_stops_the_run_and_keeps_the_last_checkpoint() {
    let Some(d) = setup("full") else {
        println!("skipped: MNIST not available");
        return;
    };
    let run = d.root.join("run");
    start_and_kill(&train_args(&d.data, &run), &run);
    let before = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    // A checkpoint of lenet_adv:1 with Adam is 163 KB: a limit of 100 blocks (51,200
    // bytes with dash's 512-byte blocks, 102,400 with bash's) lets the small files
    // through and fails the checkpoint write part-way. SIGXFSZ is ignored (inherited
    // through exec) so the write returns EFBIG instead of killing.
    let limited = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 100; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_xtask"))
        .args(resume_args(&run))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&limited.stderr);
    println!("error shown: {}", err.trim());
    assert!(
        !limited.status.success(),
        "the run passed a 100-block file-size limit"
    );
    assert!(
        err.contains("checkpoint.safetensors.tmp") && err.contains("too large"),
        "the error does not name the file and the fault:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        std::fs::read(run.join("checkpoint.safetensors")).unwrap(),
        before
    );
    let names: Vec<String> = snapshot(&run).into_iter().map(|(n, _)| n).collect();
    assert!(
        !names.iter().any(|n| n.ends_with(".tmp")),
        "a temporary file was left: {names:?}"
    );
    resume_to_the_end(&d, &run);
}

/// Makes `dir` and its files read-only: permissions for an ordinary user; for root, whom
/// permissions do not stop, the immutable attribute (`chattr +i`). Returns whether it
/// worked, checked by trying to create a file.
fn make_read_only(dir: &Path, on: bool) -> bool {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.push(dir.to_path_buf());
    // Permissions first when setting (an immutable file's cannot change), last when
    // clearing.
    let chattr = |flag: &str| {
        let _ = Command::new("chattr")
            .arg(flag)
            .args(&paths)
            .stderr(Stdio::null())
            .status();
    };
    if !on {
        chattr("-i");
    }
    for p in &paths {
        let mode = std::fs::metadata(p).unwrap().permissions().mode();
        let mode = if on { mode & !0o222 } else { mode | 0o200 };
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    if on {
        chattr("+i");
    }
    let probe = dir.join("probe");
    let writable = std::fs::write(&probe, b"x").is_ok();
    let _ = std::fs::remove_file(&probe);
    writable != on
}

#[test]
fn a_read_only_run_folder_is_refused_and_left_intact() {
    let Some(d) = setup("ro") else {
        println!("skipped: MNIST not available");
        return;
    };
    let run = d.root.join("run");
    start_and_kill(&train_args(&d.data, &run), &run);
    let before = snapshot(&run);
    if !make_read_only(&run, true) {
        make_read_only(&run, false);
        println!(
            "SKIPPED: cannot make {} read-only here (root, and chattr +i does not hold on this filesystem)",
            run.display()
        );
        return;
    }
    let out = xtask(&resume_args(&run));
    assert!(make_read_only(&run, false));
    let err = String::from_utf8_lossy(&out.stderr);
    println!("error shown: {}", err.trim());
    assert!(
        !out.status.success(),
        "the run wrote into a read-only folder"
    );
    assert!(
        err.contains(&run.display().to_string()) && !err.contains("panicked"),
        "the error does not name the run folder:\n{err}"
    );
    assert!(
        snapshot(&run) == before,
        "a file of the read-only folder changed"
    );
    resume_to_the_end(&d, &run);
}
