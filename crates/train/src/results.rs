//! The sweep's results: per-cell statistics over seeds, the verdicts of ours against each
//! ADMM setting, and `results.md`, `.csv`, `.json` and `.svg`.

use crate::presets::*;
use crate::protocol::Protocol;
use crate::report::{pct, Summary};
use crate::svg::{nice_step, Svg};
use crate::verdict::{admm_name, cell_stat, compare, verdict, Stat};
use crate::{AdvTraining, TrainConfig};
use rcc_compress::DEFAULT_RAMP;
use rcc_nn::json::Json;
use std::cmp::Ordering;
use std::fmt::Write as _;
use std::path::Path;

/// The AutoAttack images of a sweep's runs (they share their test limit).
fn aa_images(results: &[(&Entry, Option<Summary>)]) -> usize {
    results
        .first()
        .map_or(crate::evaluate::AA_IMAGES, |(e, _)| {
            crate::evaluate::aa_images(&e.cfg)
        })
}

/// Which layers each method prunes hardest: each pruned cell's share of weights kept per
/// tensor (mean over the seeds whose summaries record it), measured on the final models.
/// A global budget's per-layer split is computed once from the model a run starts from
/// (`Budget::Global`), so runs from one teacher share it whatever the method; the table
/// says so when it finds every method of a rate equal.
fn layer_density_table(r: &mut String, results: &[(&Entry, Option<Summary>)]) {
    let pruned = |e: &Entry| {
        matches!(
            e.role,
            Role::Ours | Role::Admm | Role::AdmmTuned | Role::Magnitude
        )
    };
    let Some(names) = results
        .iter()
        .filter(|(e, _)| pruned(e))
        .find_map(|(_, s)| s.as_ref().filter(|s| !s.layers.is_empty()))
        .map(|s| s.layers.iter().map(|l| l.0.clone()).collect::<Vec<_>>())
    else {
        return;
    };
    let _ = writeln!(
        r,
        "\n## Per-layer density (% of each tensor's weights kept, mean over seeds)\n"
    );
    let _ = writeln!(r, "| cell | method | seeds | {} |", names.join(" | "));
    let _ = writeln!(r, "|---|---|---|{}", "---|".repeat(names.len()));
    let mut done: Vec<&str> = vec![];
    // (rate, the row's mean densities) of every cell written, to compare methods at a rate.
    let mut rows: Vec<(f64, Vec<f64>)> = vec![];
    for (e, _) in results.iter().filter(|(e, _)| pruned(e)) {
        if done.contains(&e.cell.as_str()) {
            continue;
        }
        done.push(&e.cell);
        let runs: Vec<&Summary> = results
            .iter()
            .filter(|(o, s)| {
                o.cell == e.cell && s.as_ref().is_some_and(|s| s.layers.len() == names.len())
            })
            .filter_map(|(_, s)| s.as_ref())
            .collect();
        if runs.is_empty() {
            continue;
        }
        let means: Vec<f64> = (0..names.len())
            .map(|i| {
                runs.iter()
                    .map(|s| s.layers[i].1 as f64 / s.layers[i].2.max(1) as f64)
                    .sum::<f64>()
                    / runs.len() as f64
            })
            .collect();
        let cols: Vec<String> = means.iter().map(|m| format!("{:.2}", 100.0 * m)).collect();
        let _ = writeln!(
            r,
            "| {} | {} | {} | {} |",
            e.cell,
            e.role.label(),
            runs.len(),
            cols.join(" | ")
        );
        rows.push((e.rate, means));
    }
    // Exact comparison of the unrounded means: equal counts give equal ratios.
    let first_at = |rate: f64| rows.iter().find(|(x, _)| *x == rate).map(|(_, m)| m);
    let same = rows.iter().all(|(rate, m)| first_at(*rate) == Some(m));
    let compared = (1..rows.len()).any(|i| rows[..i].iter().any(|(x, _)| *x == rows[i].0));
    if compared && same {
        let _ = writeln!(
            r,
            "\nAt every rate the methods keep the same share of each layer: a global budget's per-layer counts are taken once from the model a run starts from (the teacher), and every method then meets them exactly. A method's lead here does not come from choosing its own per-layer split."
        );
    }
}

/// Each compression method at the row's mildest rate against the teacher fine-tuned
/// dense with the same budget, on the worst case with AutoAttack and Square: a method
/// within the larger sd of it (or [`TIE_PTS`] with one seed) has reached what the budget
/// gives without pruning, and no pruning method can then beat another there by more
/// than the spread.
fn ceiling_lines(r: &mut String, p: &Preset, results: &[(&Entry, Option<Summary>)]) {
    let pick: fn(&Summary) -> f64 = |s| s.dense.worst_aa;
    let Some(ceiling) = cell_stat(results, Role::DenseFinetune, 1.0, pick) else {
        return;
    };
    let Some(rate) = p
        .columns()
        .into_iter()
        .map(|(_, r)| r)
        .min_by(|a, b| a.total_cmp(b))
    else {
        return;
    };
    let mut lines = vec![];
    for role in [Role::Ours, Role::Admm, Role::AdmmTuned, Role::Magnitude] {
        let Some(st) = cell_stat(results, role, rate, pick) else {
            continue;
        };
        let (d, band, side) = compare(&st, &ceiling);
        let word = match side {
            Ordering::Equal => "reaches it (within",
            Ordering::Greater => "is above it (beyond",
            Ordering::Less => "is below it (beyond",
        };
        lines.push(format!(
            "- {} at {rate}x: {} ({} seeds), {d:+.2} points: {word} {band:.2})",
            role.label(),
            st.pct(),
            st.n
        ));
    }
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(
        r,
        "\nThe ceiling at the mildest rate: the teacher fine-tuned dense with the same budget (no pruning, no distillation) keeps {} ({} seeds) on the worst case with AutoAttack and Square, first {} images.\n\n{}",
        ceiling.pct(),
        ceiling.n,
        aa_images(results),
        lines.join("\n")
    );
}

/// The table of every cell over its seeds: mean ± sd of each figure and the count.
fn cells_table(r: &mut String, results: &[(&Entry, Option<Summary>)]) {
    let mut cells: Vec<(&str, Role)> = vec![];
    for (e, s) in results {
        if s.is_some() && !cells.iter().any(|c| c.0 == e.cell) {
            cells.push((&e.cell, e.role));
        }
    }
    if cells.is_empty() {
        return;
    }
    let _ = writeln!(
        r,
        "\n## Every cell over its seeds (%, mean ± sd; dense masked model)\n"
    );
    let _ = writeln!(
        r,
        "| cell | method | seeds | natural | PGD-40 | APGD-CE | AutoAttack, first {aa} | Square, first {aa} | worst case with both, first {aa} | train min | compressor state B | peak RSS MiB |",
        aa = aa_images(results)
    );
    let _ = writeln!(r, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    let picks: [fn(&Summary) -> f64; 6] = [
        |s| s.dense.clean,
        |s| s.dense.pgd,
        |s| s.dense.apgd,
        |s| s.dense.autoattack,
        |s| s.dense.square,
        |s| s.dense.worst_aa,
    ];
    for (cell, role) in cells {
        let in_cell: Vec<&Summary> = results
            .iter()
            .filter(|(e, _)| e.cell == cell)
            .filter_map(|(_, s)| s.as_ref())
            .collect();
        let mut figs: Vec<String> = picks
            .iter()
            .map(|pick| {
                let v: Vec<f64> = in_cell.iter().map(|s| pick(s)).collect();
                Stat::of(&v).map_or("-".into(), |st| st.pct())
            })
            .collect();
        // The training cost: wall time (mean ± sd: the machine's load moves it), the
        // compressor's own state (the same for every seed) and the process's peak RSS.
        let of =
            |f: fn(&Summary) -> f64| Stat::of(&in_cell.iter().map(|s| f(s)).collect::<Vec<_>>());
        let plain = |st: Option<Stat>, scale: f64, digits: usize| {
            st.map_or("-".into(), |st| {
                if st.n > 1 {
                    format!("{:.digits$} ± {:.digits$}", st.mean * scale, st.sd * scale)
                } else {
                    format!("{:.digits$}", st.mean * scale)
                }
            })
        };
        figs.push(plain(of(|s| s.facts.train_seconds), 1.0 / 60.0, 1));
        figs.push(
            of(|s| s.facts.extra_state_bytes).map_or("-".into(), |st| format!("{:.0}", st.mean)),
        );
        // Runs from before the RSS was measured have 0: left out.
        let rss = of(|s| {
            if s.facts.peak_rss > 0.0 {
                s.facts.peak_rss
            } else {
                f64::NAN
            }
        });
        figs.push(plain(rss, 1.0 / (1024.0 * 1024.0), 0));
        let _ = writeln!(
            r,
            "| {cell} | {} | {} | {} |",
            role.label(),
            in_cell.len(),
            figs.join(" | ")
        );
    }
}

/// Measured bytes, or "-" for runs trained before the counting allocator was there.
fn bytes_or_dash(b: f64) -> String {
    if b > 0.0 {
        format!("{b:.0}")
    } else {
        "-".into()
    }
}

fn mib(b: f64) -> String {
    if b > 0.0 {
        format!("{:.1}", b / (1 << 20) as f64)
    } else {
        "-".into()
    }
}

pub const CSV_HEADER: &str = "name,role,target_rate,rate,nnz,prunable,params,natural,fgsm,pgd40,apgd_ce,pgd40_from_teacher,worst,autoattack_1000,square_1000,worst_1000_with_autoattack,sparse_natural,sparse_fgsm,sparse_pgd40,sparse_apgd_ce,dense_bytes,sparse_bytes,latency_us,epochs,train_seconds,extra_state_bytes,compressor_heap_peak_bytes,peak_rss_bytes";

fn csv_fields(e: &Entry, s: &Summary) -> Vec<String> {
    let d = &s.dense;
    let sp = &s.sparse;
    let f = &s.facts;
    vec![
        e.name.clone(),
        format!("{:?}", e.role),
        e.rate.to_string(),
        format!("{:.4}", s.rate()),
        s.nnz.to_string(),
        s.prunable.to_string(),
        s.params.to_string(),
        format!("{:.4}", d.clean),
        format!("{:.4}", d.fgsm),
        format!("{:.4}", d.pgd),
        format!("{:.4}", d.apgd),
        format!("{:.4}", d.transfer),
        format!("{:.4}", d.worst),
        format!("{:.4}", d.autoattack),
        format!("{:.4}", d.square),
        format!("{:.4}", d.worst_aa),
        format!("{:.4}", sp.clean),
        format!("{:.4}", sp.fgsm),
        format!("{:.4}", sp.pgd),
        format!("{:.4}", sp.apgd),
        s.dense_bytes.to_string(),
        s.sparse_bytes.to_string(),
        format!("{:.2}", s.latency_us),
        f.epochs.to_string(),
        format!("{:.1}", f.train_seconds),
        format!("{:.0}", f.extra_state_bytes),
        format!("{:.0}", f.heap_peak),
        format!("{:.0}", f.peak_rss),
    ]
}

pub fn results_csv(results: &[(&Entry, Option<Summary>)]) -> String {
    let mut s = format!("{CSV_HEADER}\n");
    for (e, sum) in results {
        if let Some(sum) = sum {
            let _ = writeln!(s, "{}", csv_fields(e, sum).join(","));
        }
    }
    s
}

pub fn results_json(p: &Preset, results: &[(&Entry, Option<Summary>)]) -> String {
    let keys: Vec<&str> = CSV_HEADER.split(',').collect();
    let runs = results.iter().filter_map(|(e, sum)| {
        let sum = sum.as_ref()?;
        let mut obj: Vec<(String, Json)> = keys
            .iter()
            .zip(csv_fields(e, sum))
            .map(|(k, v)| {
                let v = match (*k, v.as_str()) {
                    ("name" | "role", _) => Json::String(v),
                    // Not measured (the sparse attacks of an unpruned model).
                    (_, "NaN") => Json::Null,
                    _ => Json::Number(v),
                };
                (k.to_string(), v)
            })
            .collect();
        let sweep = sum
            .sweep
            .iter()
            .map(|&(e, a)| Json::Array(vec![Json::num(e), Json::fixed(a, 4)]));
        obj.push(("eps_sweep".into(), Json::Array(sweep.collect())));
        Some(Json::Object(obj))
    });
    let doc = Json::obj([
        ("preset", Json::str(p.name)),
        ("dataset", Json::str(p.dataset.to_string())),
        ("runs", Json::Array(runs.collect())),
    ]);
    format!("{doc}\n")
}

pub fn results_md(p: &Preset, dir: &Path, results: &[(&Entry, Option<Summary>)]) -> String {
    let protocol = Protocol::for_dataset(p.dataset);
    let mut r = String::new();
    let _ = writeln!(
        r,
        "# Sweep {}: lenet_adv:{} on {}\n",
        p.name, p.width, p.dataset
    );
    if p.smoke {
        let _ = writeln!(
            r,
            "**A smoke sweep**: every run below is shrunk to seconds (`shrink_for_smoke`: the first 1,000 training and 200 test images, one epoch, three for the compression methods), whatever the recipe says; the figures check that the setup works end to end and mean nothing.\n"
        );
    }
    let pipe = TrainConfig::pipeline();
    let tuned_admm = if p.admm_tuned {
        format!(" (Ye et al.'s rho) and `{ADMM_TUNED}` (rho tuned under Adam)")
    } else {
        String::new()
    };
    let _ = writeln!(
        r,
        "Budget, the same for every compression method: start from the teacher, {} epochs ({} of pruning / ADMM, then {} of debiasing / masked retraining), {} examples, Adam lr {} cosine, batch {}, global budget, seed 1. Ours: distillation a = 0.5, t = {}, teacher on the adversarial batch (`--teacher-input {OURS_TEACHER_INPUT}`); below {LATE_WINDOW_BELOW_RATE}x the prox stays dense for the first {LATE_RAMP_START} of the pruning epochs then tightens over the next {LATE_RAMP} (`--ramp-start {LATE_RAMP_START} --ramp {LATE_RAMP}`), at higher rates it tightens from the start over the first {DEFAULT_RAMP} (method.md's default); both chosen on a validation split. The ablations keep ours' schedule. ADMM: `{ADMM}`{tuned_admm}. Teacher and dense small nets: {TEACHER_EPOCHS} epochs from scratch, Adam 1e-3, eps ramped over 3 epochs. Evaluation: {}, eps {}, FGSM, PGD-{} (step {}) with {} restarts, APGD-CE-{}; robust accuracy counts an image only if it is right clean and attacked. Run folder: `{}`; command: `cargo xtask sweep --preset {}`.\n",
        pipe.epochs,
        pipe.epochs - pipe.finetune,
        pipe.finetune,
        AdvTraining::for_dataset(p.dataset),
        pipe.lr,
        pipe.batch,
        pipe.temperature,
        results.first().map_or("full test set".into(), |(e, _)| crate::evaluate::eval_set_words(&e.cfg)),
        protocol.eps,
        protocol.steps,
        protocol.step_size,
        crate::evaluate::RESTARTS,
        protocol.apgd_steps,
        // Relative to the workspace when inside it, so the file reads the same anywhere.
        dir.display(),
        p.name
    );
    let _ = writeln!(
        r,
        "## All runs (%; dense masked model, then the exported sparse model)\n"
    );
    let _ = writeln!(r, "| run | method | rate | natural | FGSM | PGD-{} | APGD-CE | PGD-{0} from the teacher | worst case | AutoAttack, first {aa} | Square-5000, first {aa} | worst case with both, first {aa} | sparse: natural / PGD / APGD | sparse bytes | batch-1 µs | train min | compressor state B (counted / measured peak) | peak RSS MiB |", protocol.steps, aa = aa_images(results));
    let _ = writeln!(
        r,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut missing = vec![];
    for (e, s) in results {
        let Some(s) = s else {
            missing.push(e.name.as_str());
            continue;
        };
        let _ = writeln!(
            r,
            "| {} | {} | {:.2}x | {} | {} | **{}** | {} | {} | {} | {} | {} | **{}** | {} / {} / {} | {} | {:.1} | {:.1} | {:.0} / {} | {} |",
            e.name,
            e.role.label(),
            e.shown_rate(s),
            pct(s.dense.clean),
            pct(s.dense.fgsm),
            pct(s.dense.pgd),
            pct(s.dense.apgd),
            pct(s.dense.transfer),
            pct(s.dense.worst),
            pct(s.dense.autoattack),
            pct(s.dense.square),
            pct(s.dense.worst_aa),
            pct(s.sparse.clean),
            pct(s.sparse.pgd),
            pct(s.sparse.apgd),
            s.sparse_bytes,
            s.latency_us,
            s.facts.train_seconds / 60.0,
            s.facts.extra_state_bytes,
            bytes_or_dash(s.facts.heap_peak),
            mib(s.facts.peak_rss)
        );
    }
    let _ = writeln!(r, "\nThe worst case counts an image only if it survives every attack on the dense model: FGSM, PGD and APGD-CE, and PGD crafted on the teacher where that column has a figure (runs evaluated before the transfer check have none). On the first {} images, AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square-5000; an image counts only if it survives all four) and the gradient-free Square Attack on its own join it; the verdicts below are taken on that worst case where both runs have it (runs evaluated before AutoAttack existed have none: their verdicts say PGD).", aa_images(results));
    let masked: Vec<String> = results
        .iter()
        .filter(|(_, s)| {
            s.as_ref()
                .and_then(|s| crate::evaluate::masking_suspected(&s.dense))
                .unwrap_or(false)
        })
        .map(|(e, _)| e.name.clone())
        .collect();
    if !masked.is_empty() {
        let _ = writeln!(r, "\n**Gradient masking suspected** (the attack crafted on the teacher beats every white-box one by more than {} points, or Square beats them by more than {} on the first {} images): {}.", crate::evaluate::MASKING_PTS, crate::evaluate::SQUARE_MASKING_PTS, aa_images(results), masked.join(", "));
    }
    if !missing.is_empty() {
        let _ = writeln!(r, "\nNot (yet) run or failed: {}.", missing.join(", "));
    }
    // The table side by side with Ye et al.'s.
    let _ = writeln!(
        r,
        "\n## Natural / PGD-{} (%) beside Ye et al.'s Table 2\n",
        protocol.steps
    );
    // The ADMM baselines the verdicts compare ours with: Ye et al.'s setting, and the rho
    // tuned under Adam where the preset runs it.
    let admms: Vec<Role> = if p.admm_tuned {
        vec![Role::Admm, Role::AdmmTuned]
    } else {
        vec![Role::Admm]
    };
    // The columns after "our ADMM": one per further ADMM setting.
    let more_admms = &admms[1..];
    let tuned_col: String = more_admms
        .iter()
        .map(|a| format!(" {} |", a.label()))
        .collect();
    let diff_col = admms
        .iter()
        .map(|&a| format!("ours - {}", admm_name(a)))
        .collect::<Vec<_>>()
        .join("; ");
    let _ = writeln!(r, "| column | rate | Ye et al. (published ADMM) | our ADMM |{tuned_col} ours: prox + distillation | magnitude | dense small from scratch | {diff_col} (natural / the verdict's robust figure, below) |");
    let _ = writeln!(
        r,
        "|---|---|---|---|{}---|---|---|---|",
        "---|".repeat(more_admms.len())
    );
    // The empty cells of a row that has no figure in those columns.
    let tuned_blank = " |".repeat(more_admms.len());
    // Each cell as natural / PGD-40 over its seeds (mean ± sd where there are several).
    let np = |role: Role, rate: f64| {
        let nat = cell_stat(results, role, rate, |s| s.dense.clean);
        let pgd = cell_stat(results, role, rate, |s| s.dense.pgd);
        match (nat, pgd) {
            (Some(n), Some(a)) => format!("{} / {}", n.pct(), a.pct()),
            _ => "-".into(),
        }
    };
    if results
        .iter()
        .any(|(e, s)| e.role == Role::Teacher && s.is_some())
    {
        let publ = p.published.as_ref().map_or("-".into(), |p| {
            format!("{:.2} / {:.2}", p.teacher.0, p.teacher.1)
        });
        let _ = writeln!(
            r,
            "| dense w{} (teacher) | 1x | {publ} | |{tuned_blank} {} | | | |",
            p.width,
            np(Role::Teacher, 1.0)
        );
    }
    if results
        .iter()
        .any(|(e, s)| e.role == Role::DenseFinetune && s.is_some())
    {
        let _ = writeln!(
            r,
            "| teacher fine-tuned dense, same budget | 1x | - | |{tuned_blank} {} | | | |",
            np(Role::DenseFinetune, 1.0)
        );
    }
    let mut verdicts = vec![];
    for (i, (column, rate)) in p.columns().into_iter().enumerate() {
        let publ = p
            .published
            .as_ref()
            .and_then(|p| p.columns.get(i).copied())
            .map_or("-".into(), |(n, a)| format!("{n:.2} / {a:.2}"));
        let diffs: Vec<String> = admms
            .iter()
            .map(|&admm| match verdict(results, rate, protocol.steps, admm) {
                Some((line, diff)) => {
                    verdicts.push(format!("- {column} ({rate}x): {line}"));
                    diff
                }
                None => "-".into(),
            })
            .collect();
        let tuned: String = more_admms
            .iter()
            .map(|&a| format!(" {} |", np(a, rate)))
            .collect();
        let _ = writeln!(
            r,
            "| {column} | {rate}x | {publ} | {} |{tuned} **{}** | {} | {} | {} |",
            np(Role::Admm, rate),
            np(Role::Ours, rate),
            np(Role::Magnitude, rate),
            np(Role::DenseSmall, rate),
            diffs.join("; ")
        );
    }
    for (label, rate, nat, pgd) in p.orientation {
        let _ = writeln!(
            r,
            "| {label} | {rate}x | {nat:.2} / {pgd:.2} | |{tuned_blank} | | | |"
        );
    }
    if !verdicts.is_empty() {
        let _ = writeln!(r, "\n{}", verdicts.join("\n"));
    }
    ceiling_lines(&mut r, p, results);
    cells_table(&mut r, results);
    layer_density_table(&mut r, results);
    // Memory.
    let _ = writeln!(r, "\n## Training memory (per run, measured)\n");
    let _ = writeln!(r, "| run | compressor state counted (B) | compressor heap at most, measured (B) | all training state (B) | peak RSS (MiB) |");
    let _ = writeln!(r, "|---|---|---|---|---|");
    for (e, s) in results {
        if let (Some(s), Role::Ours | Role::Admm | Role::AdmmTuned | Role::Magnitude) = (s, e.role)
        {
            let f = &s.facts;
            let _ = writeln!(
                r,
                "| {} | {:.0} | {} | {:.0} | {} |",
                e.name,
                f.extra_state_bytes,
                bytes_or_dash(f.heap_peak),
                f.state_total_bytes,
                mib(f.peak_rss)
            );
        }
    }
    // Ablations, beside ours (rows without ablations, such as w8, have no table): each
    // cell over its seeds, and its difference from ours on the worst case with
    // AutoAttack and Square, judged with the verdicts' tie band.
    let mut rates: Vec<f64> = vec![];
    for (e, _) in results {
        if matches!(e.role, Role::NoDistill | Role::NoAdv) && !rates.contains(&e.rate) {
            rates.push(e.rate);
        }
    }
    if !rates.is_empty() {
        let _ = writeln!(
            r,
            "\n## Ablations of ours (%, mean ± sd over seeds; the worst case on the first {} images)\n",
            aa_images(results)
        );
        let _ = writeln!(
            r,
            "| cell | rate | seeds | natural | PGD-{} | APGD-CE | worst case with AutoAttack and Square | against ours on the worst case |",
            protocol.steps
        );
        let _ = writeln!(r, "|---|---|---|---|---|---|---|---|");
        for &rate in &rates {
            let ours = cell_stat(results, Role::Ours, rate, |s| s.dense.worst_aa);
            for role in [Role::Ours, Role::NoDistill, Role::NoAdv] {
                let stat = |pick| cell_stat(results, role, rate, pick);
                let (Some(nat), Some(pgd), Some(apgd)) = (
                    stat(|s| s.dense.clean),
                    stat(|s| s.dense.pgd),
                    stat(|s| s.dense.apgd),
                ) else {
                    continue;
                };
                let worst = stat(|s| s.dense.worst_aa);
                let against = match (role, &worst, &ours) {
                    (Role::Ours, _, _) => String::new(),
                    (_, Some(w), Some(o)) => {
                        let (d, band, side) = compare(w, o);
                        let word = match side {
                            Ordering::Equal => "a tie",
                            Ordering::Less => "below",
                            Ordering::Greater => "above",
                        };
                        format!("{d:+.2}: {word} (band {band:.2})")
                    }
                    _ => "-".into(),
                };
                let _ = writeln!(
                    r,
                    "| {} | {rate:.2}x | {} | {} | {} | {} | **{}** | {against} |",
                    role.label(),
                    nat.n,
                    nat.pct(),
                    pgd.pct(),
                    apgd.pct(),
                    worst.map_or("-".into(), |w| w.pct())
                );
            }
        }
    }
    // Eps sweeps.
    let _ = writeln!(
        r,
        "\n## Eps sweep (PGD-{}, first {} test images; gradient-masking check)\n",
        protocol.steps,
        results
            .first()
            .map_or(crate::evaluate::SWEEP_IMAGES, |(e, _)| {
                crate::evaluate::sweep_images(&e.cfg)
            })
    );
    if let Some((_, Some(s0))) = results.iter().find(|(_, s)| s.is_some()) {
        let _ = writeln!(
            r,
            "| run | {} |",
            s0.sweep
                .iter()
                .map(|(e, _)| format!("eps {e:.3}"))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(r, "|---|{}", "---|".repeat(s0.sweep.len()));
    }
    for (e, s) in results {
        if let Some(s) = s {
            let _ = writeln!(
                r,
                "| {} | {} |",
                e.name,
                s.sweep
                    .iter()
                    .map(|(_, a)| pct(*a))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
    }
    r
}

/// Which accuracy a panel shows.
type Pick = fn(&Summary) -> f64;

/// A cell's point on a panel: its rate, then the mean and standard deviation (NaN for one
/// seed) of the panel's accuracy over its seeds, in %.
#[derive(Clone, Copy, Debug, PartialEq)]
struct CellPoint {
    rate: f64,
    mean: f64,
    sd: f64,
}

/// The points of `role`'s line on a panel, by rate: one per cell (its seeds' mean ± sd),
/// the teacher's at 1x leading the compression methods' lines. Runs without the figure
/// (NaN, e.g. evaluated before AutoAttack) are left out of their cell.
fn cell_points(results: &[(&Entry, Option<Summary>)], role: Role, pick: Pick) -> Vec<CellPoint> {
    let starts_at_teacher = matches!(
        role,
        Role::Ours | Role::Admm | Role::AdmmTuned | Role::Magnitude
    );
    let mut cells: Vec<(&str, Vec<f64>, Vec<f64>)> = vec![];
    for (e, s) in results {
        let Some(s) = s else { continue };
        if !(e.role == role || (starts_at_teacher && e.role == Role::Teacher)) {
            continue;
        }
        match cells.iter_mut().find(|c| c.0 == e.cell) {
            Some(c) => {
                c.1.push(e.shown_rate(s));
                c.2.push(100.0 * pick(s));
            }
            None => cells.push((&e.cell, vec![e.shown_rate(s)], vec![100.0 * pick(s)])),
        }
    }
    let mut v: Vec<CellPoint> = cells
        .iter()
        .filter_map(|(_, rates, accs)| {
            let st = Stat::of(accs)?;
            let rate = rates.iter().sum::<f64>() / rates.len() as f64;
            Some(CellPoint {
                rate,
                mean: st.mean,
                sd: st.sd,
            })
        })
        .collect();
    v.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    v
}

/// Three panels against compression rate (log axis): PGD-40, the worst case per image
/// over every attack with AutoAttack and Square (on the first-N images they ran on; the
/// figure the verdicts are taken on) and natural accuracy. One line per method through
/// its cells' means over seeds, with a bar of ± one standard deviation where a cell has
/// several seeds; the dense small nets as markers.
pub fn results_svg(p: &Preset, results: &[(&Entry, Option<Summary>)]) -> String {
    // Drawn in this order: ours last, on top.
    const SERIES: [(Role, &str); 8] = [
        (Role::NoAdv, "#8c564b"),
        (Role::NoDistill, "#ff7f0e"),
        (Role::DenseSmall, "#9467bd"),
        (Role::DenseFinetune, "#e377c2"),
        (Role::Magnitude, "#2ca02c"),
        (Role::AdmmTuned, "#17becf"),
        (Role::Admm, "#1f77b4"),
        (Role::Ours, "#d62728"),
    ];
    let pgd = format!(
        "PGD-{} accuracy (%)",
        Protocol::for_dataset(p.dataset).steps
    );
    let worst = format!(
        "worst case with AutoAttack + Square, first {} (%)",
        aa_images(results)
    );
    let panels: [(&str, Pick); 3] = [
        (&pgd, |s| s.dense.pgd),
        (&worst, |s| s.dense.worst_aa),
        ("natural accuracy (%)", |s| s.dense.clean),
    ];
    let (pw, ph, left, top, gap) = (300.0, 300.0, 50.0, 50.0, 55.0);
    let (w, h) = (left + 3.0 * pw + 2.0 * gap + 30.0, top + ph + 150.0);
    let mut s = Svg::new(w, h);
    let title = format!(
        "{}: lenet_adv:{} on {}, accuracy against compression rate (mean ± sd over seeds)",
        p.name, p.width, p.dataset
    );
    s.title(w / 2.0, 22.0, &title);
    let max_rate = results.iter().map(|(e, _)| e.rate).fold(2.0, f64::max);
    let x_hi = max_rate.log2().ceil().max(1.0);
    for (k, (name, pick)) in panels.iter().enumerate() {
        let x0 = left + k as f64 * (pw + gap);
        let lines: Vec<(Role, &str, Vec<CellPoint>)> = SERIES
            .iter()
            .map(|&(role, color)| (role, color, cell_points(results, role, *pick)))
            .collect();
        // The scale fits the adversarially trained runs (their bars included); the
        // no-adversarial ablation may fall below it and is then drawn on the axis with
        // its value written beside.
        let span = |c: &CellPoint| {
            let sd = if c.sd.is_finite() { c.sd } else { 0.0 };
            (c.mean - sd, c.mean + sd)
        };
        let lo = lines
            .iter()
            .filter(|(role, ..)| *role != Role::NoAdv)
            .flat_map(|(_, _, v)| v.iter().map(|c| span(c).0))
            .fold(100.0, f64::min);
        // Fashion-MNIST's accuracies sit far below 100, so the top follows the data too
        // (every run's, so that none is drawn above the panel).
        let hi = lines
            .iter()
            .flat_map(|(_, _, v)| v.iter().map(|c| span(c).1))
            .fold(lo, f64::max);
        let step = nice_step((hi - lo).max(1.0), 5.0);
        let y_lo = ((lo / step).floor() * step).max(0.0);
        let y_hi = ((hi / step).floor() * step + step).min(100.0);
        let px = |rate: f64| x0 + pw * rate.max(1.0).log2() / x_hi;
        let py = |acc: f64| top + ph * (1.0 - (acc.max(y_lo) - y_lo) / (y_hi - y_lo).max(1e-9));
        s.frame(x0, top, pw, ph);
        let mut y = y_lo;
        while y <= y_hi + 1e-9 {
            s.h_grid(x0, x0 + pw, py(y), "#ddd", &format!("{y}"));
            y += step;
        }
        for i in 0..=(x_hi as i32) {
            let r = 2f64.powi(i);
            s.v_grid(px(r), top, top + ph, 16.0, "#ddd", &format!("{r}x"));
        }
        s.text(x0 + pw / 2.0, top - 8.0, "middle", name);
        s.text(
            x0 + pw / 2.0,
            top + ph + 34.0,
            "middle",
            "compression rate (log scale)",
        );
        for (role, color, v) in &lines {
            if v.is_empty() {
                continue;
            }
            if !matches!(role, Role::DenseSmall | Role::DenseFinetune) {
                s.polyline(v.iter().map(|c| (px(c.rate), py(c.mean))), color, "");
            }
            for c in v {
                let x = px(c.rate);
                if c.sd.is_finite() && c.sd > 0.0 {
                    let (a, b) = span(c);
                    s.v_bar(x, py(a), py(b), 3.0, color);
                }
                s.dot(x, py(c.mean), 3.5, color);
                if c.mean < y_lo {
                    let attrs = format!(r#"fill="{color}""#);
                    let label = format!("{:.1} (off scale)", c.mean);
                    s.text_with(x - 6.0, py(c.mean) - 6.0, "end", &attrs, &label);
                }
            }
        }
    }
    // The legend lists only the methods that have a finished run (w8 has no ablations).
    let shown = SERIES
        .iter()
        .filter(|(role, _)| results.iter().any(|(e, s)| e.role == *role && s.is_some()));
    for (i, (role, color)) in shown.enumerate() {
        let (lx, ly) = (
            left + (i % 3) as f64 * 330.0,
            top + ph + 58.0 + (i / 3) as f64 * 18.0,
        );
        s.rect(lx, ly - 4.0, 14.0, 4.0, color);
        s.text(lx + 20.0, ly, "start", role.label());
    }
    s.text_with(
        left,
        h - 8.0,
        "start",
        r#"font-size="11""#,
        "Lines start at the dense teacher (1x); each point is a cell's mean over its seeds, its bar ± one standard deviation. Dense small nets sit at the rate of their parameter count.",
    );
    s.finish()
}

/// A run trained by hand in a sweep's folder, not one of the preset's runs (e.g. from
/// `configs/NAME.txt` with a flag changed): its folder name, settings and figures.
pub struct Variant {
    pub name: String,
    pub cfg: TrainConfig,
    pub summary: Summary,
}

/// The settings in which `a` differs from `b`, as `key = value` of `a` (a teacher's path
/// shortened to its last two parts, which name the run it comes from).
fn differing_settings(a: &TrainConfig, b: &TrainConfig) -> Vec<String> {
    crate::config::KEYS
        .iter()
        .filter_map(|k| {
            let (va, vb) = (a.get(k)?, b.get(k)?);
            (va != vb).then(|| {
                let shown = if *k == "teacher" {
                    let parts: Vec<&str> = va.rsplit('/').take(2).collect();
                    parts.into_iter().rev().collect::<Vec<_>>().join("/")
                } else {
                    va
                };
                format!("`{k} = {shown}`")
            })
        })
        .collect()
}

/// `results.md`'s section on the by-hand variants: each beside the finished preset runs
/// whose settings it differs least from (all of them when several tie), with those
/// settings, its figures and the change of the worst case (with AutoAttack and Square)
/// against each. Empty without variants.
pub fn variants_md(results: &[(&Entry, Option<Summary>)], variants: &[Variant]) -> String {
    let mut r = String::new();
    if variants.is_empty() {
        return r;
    }
    let _ = writeln!(
        r,
        "\n## Variants trained by hand in this folder (%, first {} images for the last three columns)\n",
        aa_images(results)
    );
    let _ = writeln!(r, "| run | from | what differs | natural | PGD-40 | APGD-CE | AutoAttack | Square-5000 | worst case with both | change against `from` |");
    let _ = writeln!(r, "|---|---|---|---|---|---|---|---|---|---|");
    for v in variants {
        // Every finished preset run at the fewest differing settings, a run of the same
        // method before one of another (an ADMM rho differs from magnitude's runs in one
        // setting too): a variant of a setting two preset cells differ in (a third ADMM
        // rho) is as close to both, and is shown against each.
        let kind = |c: &TrainConfig| c.method.as_ref().map(std::mem::discriminant);
        let diffs: Vec<_> = results
            .iter()
            .filter_map(|(e, s)| {
                let d = differing_settings(&v.cfg, &e.cfg);
                let key = (d.len(), kind(&v.cfg) != kind(&e.cfg));
                Some((e, s.as_ref()?, d, key))
            })
            .collect();
        let fewest = diffs.iter().map(|(.., key)| *key).min();
        let bases: Vec<_> = diffs
            .iter()
            .filter(|(.., key)| Some(*key) == fewest)
            .map(|(e, s, d, _)| (e, s, d))
            .collect();
        let (from, what, change) = match bases.first() {
            Some((_, _, d)) => (
                bases
                    .iter()
                    .map(|(e, ..)| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" / "),
                // The variant's own values of the differing settings: the same against
                // each base when they differ in the same keys.
                d.join(", "),
                bases
                    .iter()
                    .map(|(_, s, _)| {
                        format!(
                            "{:+.2}",
                            100.0 * (v.summary.dense.worst_aa - s.dense.worst_aa)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" / "),
            ),
            None => ("-".into(), String::new(), "-".into()),
        };
        let a = &v.summary.dense;
        let _ = writeln!(
            r,
            "| {} | {from} | {what} | {} | {} | {} | {} | {} | **{}** | {change} |",
            v.name,
            pct(a.clean),
            pct(a.pgd),
            pct(a.apgd),
            pct(a.autoattack),
            pct(a.square),
            pct(a.worst_aa)
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each cell is one point at its seeds' mean with its sd; a run without the figure
    /// (NaN) is left out of its cell; the lines of the compression methods start at the
    /// teacher; the SVG draws a bar for a cell with several seeds and none for one.
    #[test]
    fn the_curve_has_one_point_per_cell_with_its_spread() {
        let all = entries_for_seeds(&PRESETS[0], Path::new("t"), &[1, 2, 3]);
        let summary = |prunable: usize, nnz: usize, worst: f64| {
            let mut s = Summary {
                prunable,
                nnz,
                ..Summary::default()
            };
            (s.dense.clean, s.dense.pgd, s.dense.worst_aa) = (0.98, 0.9, worst);
            Some(s)
        };
        let mut results = vec![];
        for e in &all {
            match e.role {
                Role::Teacher => results.push((e, summary(1000, 1000, 0.85))),
                Role::Ours if (e.rate - 15.31).abs() < 1e-9 => {
                    let w = [0.78, 0.79, 0.80][e.cfg.seed as usize - 1];
                    results.push((e, summary(1531, 100, w)));
                }
                // One ADMM run without the worst case: left out of its cell.
                Role::Admm if (e.rate - 15.31).abs() < 1e-9 => {
                    let w = if e.cfg.seed == 3 { f64::NAN } else { 0.72 };
                    results.push((e, summary(1531, 100, w)));
                }
                _ => results.push((e, None)),
            }
        }
        let ours = cell_points(&results, Role::Ours, |s| s.dense.worst_aa);
        assert_eq!(ours.len(), 2, "{ours:?}");
        assert_eq!((ours[0].rate, ours[0].mean), (1.0, 85.0));
        assert!(ours[0].sd.is_nan());
        assert!((ours[1].rate - 15.31).abs() < 1e-9 && (ours[1].mean - 79.0).abs() < 1e-9);
        assert!((ours[1].sd - 1.0).abs() < 1e-9, "{:?}", ours[1]);
        let admm = cell_points(&results, Role::Admm, |s| s.dense.worst_aa);
        assert_eq!((admm[1].mean, admm[1].sd), (72.0, 0.0));
        assert!(cell_points(&results, Role::DenseSmall, |s| s.dense.pgd).is_empty());
        let svg = results_svg(&PRESETS[0], &results);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("worst case with AutoAttack + Square"), "{svg}");
        // One bar: ours at 15.31x on the worst-case panel (ADMM's two equal seeds have
        // sd 0, the PGD and natural figures are equal over seeds).
        assert_eq!(svg.matches("<path ").count(), 1, "{svg}");
    }

    /// The density table averages each cell's seeds per tensor, and says that the methods
    /// share one split only when every method of every rate has the same densities.
    #[test]
    fn the_density_table_says_when_the_methods_share_a_split() {
        let all = entries_for_seeds(&PRESETS[0], Path::new("t"), &[1, 2]);
        let with_layers = |layers: [(usize, usize); 2]| {
            Some(Summary {
                layers: vec![
                    ("conv1.weight".into(), layers[0].0, layers[0].1),
                    ("fc1.weight".into(), layers[1].0, layers[1].1),
                ],
                ..Summary::default()
            })
        };
        let table = |admm_fc1: usize| {
            let mut results = vec![];
            for e in &all {
                let at = (e.rate - 15.31).abs() < 1e-9;
                match e.role {
                    // Ours' seeds differ: the cell shows their mean.
                    Role::Ours if at => {
                        let c1 = [10, 30][e.cfg.seed as usize - 1];
                        results.push((e, with_layers([(c1, 100), (5, 1000)])));
                    }
                    Role::Admm if at => {
                        results.push((e, with_layers([(20, 100), (admm_fc1, 1000)])))
                    }
                    _ => results.push((e, None)),
                }
            }
            let mut r = String::new();
            layer_density_table(&mut r, &results);
            r
        };
        let same = table(5);
        assert!(same.contains("| conv1.weight | fc1.weight |"), "{same}");
        assert!(
            same.contains("| prox-r15.31 | ours: prox + distillation | 2 | 20.00 | 0.50 |"),
            "{same}"
        );
        assert!(
            same.contains("| admm-r15.31 | ADMM (Ye et al.) | 2 | 20.00 | 0.50 |"),
            "{same}"
        );
        assert!(
            same.contains("the methods keep the same share of each layer"),
            "{same}"
        );
        let differ = table(6);
        assert!(differ.contains("| 20.00 | 0.60 |"), "{differ}");
        assert!(!differ.contains("the same share"), "{differ}");
    }
}
