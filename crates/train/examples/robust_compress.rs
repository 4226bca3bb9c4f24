//! The robust compression framework through `rcc-train` alone, no command line
//! underneath: train a robust teacher, compress it 16x with the stochastic proximal
//! gradient method on PGD examples and distillation, then evaluate the dense and the
//! exported sparse model under the full protocol and write the report.
//!
//! ```text
//! cargo run --release -p rcc-train --example robust_compress             # the pipeline's recipe
//! cargo run --release -p rcc-train --example robust_compress -- --quick  # a quick version
//! cargo run --release -p rcc-train --example robust_compress -- --data DIR --out DIR
//! ```
//!
//! The data directory defaults to `$RCC_DATA`, else `datasets/` in the workspace (run
//! `cargo xtask fetch-data` first). The default recipe is `cargo xtask train`'s: a
//! lenet_adv:4 teacher adversarially trained for 10 epochs, then 4 epochs of the prox
//! with distillation and 2 of debiasing (about 40 minutes on 2 cores). `--quick` is a
//! smoke test of every stage, not a robust model: lenet_adv:2 on the first 6,000 training
//! images, PGD-5 at eps 0.1 (eps 0.3 collapses so small a run), 2 + 3 epochs, evaluated
//! at the protocol's eps 0.3 on the first 200 test images.

use rcc_data::DatasetKind;
use rcc_nn::Arch;
use rcc_train::metrics::EpochMetrics;
use rcc_train::report::{pct, Summary};
use rcc_train::{finish_run, train, AdvTraining, Observer, RunData, RunDir, Stop, TrainConfig};
use std::path::{Path, PathBuf};

/// What this example shows of the run: a line per epoch and the news.
struct Print;

impl Observer for Print {
    fn epoch(&mut self, cfg: &TrainConfig, m: &EpochMetrics) {
        let rate = m.compress.as_ref().map_or(String::new(), |c| {
            format!(", {} phase, {:.2}x", c.phase, c.rate)
        });
        println!(
            "  epoch {}/{}: loss {:.4}, train acc {:.2}%, test acc {:.2}%{rate}",
            m.epoch,
            cfg.epochs,
            m.train_loss,
            100.0 * m.train_acc,
            100.0 * m.test_acc
        );
    }

    fn note(&mut self, msg: &str) {
        println!("  {msg}");
    }
}

pub struct Options {
    pub data: PathBuf,
    pub out: PathBuf,
    pub quick: bool,
}

/// Teacher, compression, evaluation; returns the evaluation's figures (also in
/// `OUT/student/report.md`).
pub fn run(o: &Options) -> rcc_train::Result<Summary> {
    let arch = Arch::LenetAdv(if o.quick { 2 } else { 4 });
    let quick_adv = AdvTraining::Pgd {
        eps: 0.1,
        steps: 5,
        step: 0.025,
    };
    // 1. A robust teacher: adversarial training (PGD-10), method.md section 1.
    let mut tcfg = TrainConfig::teacher_recipe(DatasetKind::Mnist, arch, 10, 1);
    if o.quick {
        tcfg.epochs = 2;
        tcfg.adv = quick_adv;
        tcfg.adv_warmup = 0;
    }
    let mut data = RunData::load(&tcfg, &o.data)?;
    if o.quick {
        data.train = data.train.subset(&(0..6000).collect::<Vec<_>>());
        data.test = data.test.subset(&(0..200).collect::<Vec<_>>());
    }
    println!("teacher: {arch}, {} epochs of PGD training", tcfg.epochs);
    let teacher = RunDir::new(o.out.join("teacher"));
    let t = train(&tcfg, &data, &teacher, false, Stop::Never, &mut Print)?;
    teacher.save_model(&tcfg, &t.model, t.epochs_done, t.test_acc)?;

    // 2. The student: the teacher pruned 16x by the stochastic proximal gradient method
    // (l0 prox, global budget) on PGD examples, distilling from the teacher, then
    // debiased under the frozen mask; method.md sections 1 and 2.
    let mut cfg = TrainConfig {
        arch,
        teacher: teacher.model().display().to_string(),
        ..TrainConfig::pipeline()
    };
    if o.quick {
        (cfg.epochs, cfg.finetune, cfg.adv) = (3, 1, quick_adv);
    }
    println!(
        "student: {} to {}x with the teacher",
        cfg.method.map_or("none".into(), |m| m.to_string()),
        cfg.rate
    );
    let student = RunDir::new(o.out.join("student"));
    let r = train(&cfg, &data, &student, false, Stop::Never, &mut Print)?;
    student.save_model(&cfg, &r.model, r.epochs_done, r.test_acc)?;

    // 3. The protocol: FGSM, PGD-40, APGD-CE, the transfer check, AutoAttack and Square
    // on the dense model and its exported sparse model; report.md and summary.txt.
    println!("evaluating on {} test images", data.test.len());
    finish_run(&cfg, &student, &data, &mut Print)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from)
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = value("--data")
        .or_else(|| {
            std::env::var_os("RCC_DATA")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| root.join("datasets"));
    let o = Options {
        data,
        out: value("--out").unwrap_or_else(|| root.join("runs").join("example-robust-compress")),
        quick: args.iter().any(|a| a == "--quick"),
    };
    match run(&o) {
        Ok(s) => {
            let d = &s.dense;
            println!(
                "{:.2}x: natural {}%, PGD-40 {}%, APGD-CE {}%, AutoAttack {}%, Square {}%, worst case {}%; report {}",
                s.rate(),
                pct(d.clean),
                pct(d.pgd),
                pct(d.apgd),
                pct(d.autoattack),
                pct(d.square),
                pct(d.worst_aa),
                o.out.join("student").join("report.md").display()
            );
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
