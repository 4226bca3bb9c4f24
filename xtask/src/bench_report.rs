//! `cargo xtask bench-report [--criterion DIR] [--out FILE] [--svg FILE] [--peak-gflops G]`:
//! turns the results of `cargo bench --bench sparse` (benches/sparse.rs) into a markdown
//! table and an SVG plot of latency against sparsity.
//!
//! - Latencies are criterion's mean estimates (`mean.point_estimate`, ns) read from
//!   `DIR/<group>/<id>/new/{benchmark.json,estimates.json}` (DIR defaults to
//!   `target/criterion`, or `$CARGO_TARGET_DIR/criterion`). Criterion turns the `/` of an
//!   id into `_` in directory names, so ids are taken from `benchmark.json`'s `full_id`.
//! - Everything else comes from the code, not from numbers copied here: for each arch and
//!   sparsity the models the bench ran are built again (same weights: seeded, or
//!   `$RCC_BENCH_MODELS/{arch}.safetensors`; same magnitude pruning) and asked for the
//!   multiply-adds their kernels execute and the bytes their weights take.
//! - Columns: latency (µs), speedup over the `dense` format at the same sparsity, MFLOP
//!   executed (2 x multiply-adds), achieved GFLOP/s, the share of the machine's peak that
//!   is (`--peak-gflops`, default 174: one core's AVX-512 FMA peak as measured by `cargo
//!   run --release --example peak_flops`), weight bytes and their share of the dense f32
//!   bytes (biases, never pruned, excluded).
//! - Writes the table to stdout and to `--out` (default `docs/sparse-bench.md`), the plot
//!   to `--svg` (default `docs/sparse-latency.svg`): one line per arch x format, log-scale
//!   latency against sparsity on a log-density axis (0, 50, 80, 90, 95, 98, 99% come out
//!   nearly evenly spaced).

use crate::cli::{workspace_root, Cli};
use rcc_nn::json::{parse_json, Json};
use rcc_nn::{Arch, Model};
use rcc_sparse::{ModelSpec, SparseModel};
use rcc_train::svg::{Svg, PALETTE};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rcc_sparse::bench_matrix::{ARCHS, FORMATS, SPARSITIES};
const INFERENCE: &str = "sparse_inference";
const LAYER: &str = "sparse_layer";
const BENCH_CMD: &str = "cargo bench --bench sparse";

/// What the code says about one benched configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    /// Multiply-adds executed per sample.
    pub macs: usize,
    /// Weight bytes as the kernels store them, and as dense f32.
    pub weight_bytes: usize,
    pub dense_weight_bytes: usize,
}

/// One bench: `{subject}/{format}/s{sparsity}` in its group.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub subject: String,
    pub sparsity: u32,
    pub format: &'static str,
    pub facts: Facts,
}

impl Entry {
    pub fn id(&self) -> String {
        format!("{}/{}/s{}", self.subject, self.format, self.sparsity)
    }
}

// ---------------------------------------------------------------------------------------
// The models, rebuilt.

/// The unpruned model the bench used for `arch`, and a description of where it came from.
fn base_model(id: &str, arch: Arch) -> Result<(Model, String), String> {
    if let Some(dir) = std::env::var_os("RCC_BENCH_MODELS") {
        let path = PathBuf::from(dir).join(format!("{id}.safetensors"));
        if path.is_file() {
            let m = Model::load(&path, Some(arch)).map_err(|e| e.to_string())?;
            return Ok((m, format!("trained weights from `{}`", path.display())));
        }
    }
    Ok((
        Model::new(arch, 0),
        format!("seeded random weights (`Model::new({arch}, 0)`)"),
    ))
}

fn facts_of(sm: &SparseModel) -> Facts {
    Facts {
        macs: sm.macs(),
        weight_bytes: sm.weight_bytes(),
        dense_weight_bytes: sm.dense_weight_bytes(),
    }
}

/// The layer facts of the `nth` layer of kind `kind` in `sm`.
fn layer_facts(sm: &SparseModel, kind: &str, nth: usize) -> Result<Facts, String> {
    let l = sm
        .layers()
        .iter()
        .filter(|l| l.kind == kind)
        .nth(nth)
        .ok_or(format!("lenet5 has no {kind} layer number {}", nth + 1))?;
    Ok(Facts {
        macs: l.macs,
        weight_bytes: l.weight_bytes,
        dense_weight_bytes: 4 * l.weights,
    })
}

/// Every bench of both groups with its facts, and the weight source of each arch.
struct Entries {
    inference: Vec<Entry>,
    layers: Vec<Entry>,
    /// `(arch id, where its weights came from)`.
    sources: Vec<(String, String)>,
}

fn entries() -> Result<Entries, String> {
    let (mut inference, mut layers, mut sources) = (vec![], vec![], vec![]);
    let err = |e: rcc_sparse::Error| e.to_string();
    for (id, arch) in ARCHS {
        let (base, source) = base_model(id, arch)?;
        sources.push((id.to_string(), source));
        for s in SPARSITIES {
            let mut m = base.clone();
            rcc_compress::prune_by_magnitude(&mut m, s as f64 / 100.0);
            let spec = ModelSpec::from_model(&m).map_err(err)?;
            let built: Vec<(&'static str, SparseModel)> = FORMATS
                .iter()
                .map(|&(f, choice)| Ok((f, SparseModel::build(&spec, choice).map_err(err)?)))
                .collect::<Result<_, String>>()?;
            let entry = |format, facts| Entry {
                subject: id.to_string(),
                sparsity: s,
                format,
                facts,
            };
            if s == 0 {
                // The training engine runs the dense FLOPs and holds dense f32 weights.
                inference.push(entry("engine", facts_of(&built[0].1)));
            }
            for (format, sm) in &built {
                inference.push(entry(format, facts_of(sm)));
            }
            if id == "lenet5" {
                let (dense, sparse) = (&built[0].1, &built[2].1);
                for (name, kind, nth) in [("lenet5.conv2", "conv", 1), ("lenet5.fc1", "linear", 0)]
                {
                    for (format, sm) in [("dense", dense), ("csr", sparse)] {
                        layers.push(Entry {
                            subject: name.to_string(),
                            sparsity: s,
                            format,
                            facts: layer_facts(sm, kind, nth)?,
                        });
                    }
                }
            }
        }
    }
    // One block per layer (stable: sparsities stay in order).
    layers.sort_by(|a, b| a.subject.cmp(&b.subject));
    Ok(Entries {
        inference,
        layers,
        sources,
    })
}

// ---------------------------------------------------------------------------------------
// Criterion's results.

/// Mean time (ns) of every bench of `group` under criterion's directory `dir`, by id
/// (the part of criterion's `full_id` after `group/`). Errors if there is none.
pub fn read_results(dir: &Path, group: &str) -> Result<BTreeMap<String, f64>, String> {
    let gdir = dir.join(group);
    let mut found = BTreeMap::new();
    let mut stack = vec![(gdir.clone(), 0)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if !p.is_dir() {
                continue;
            }
            let (bj, ej) = (p.join("new/benchmark.json"), p.join("new/estimates.json"));
            if bj.is_file() && ej.is_file() {
                let read = |f: &Path| -> Result<Json, String> {
                    let t =
                        std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
                    parse_json(&t).map_err(|e| format!("{}: {e}", f.display()))
                };
                let (b, est) = (read(&bj)?, read(&ej)?);
                let full = b
                    .get("full_id")
                    .and_then(Json::as_str)
                    .ok_or(format!("{}: no \"full_id\" string", bj.display()))?;
                let mean = est
                    .get("mean")
                    .and_then(|m| m.get("point_estimate"))
                    .and_then(Json::as_f64)
                    .ok_or(format!("{}: no mean.point_estimate", ej.display()))?;
                if let Some(id) = full.strip_prefix(&format!("{group}/")) {
                    found.insert(id.to_string(), mean);
                }
            } else if depth < 3 && p.file_name().is_some_and(|n| n != "report") {
                stack.push((p, depth + 1));
            }
        }
    }
    if found.is_empty() {
        return Err(format!(
            "no criterion results for the {group} benches under {}: run `{BENCH_CMD}` first \
             (or point --criterion at criterion's directory)",
            gdir.display()
        ));
    }
    Ok(found)
}

// ---------------------------------------------------------------------------------------
// The table and the plot.

fn fmt_us(ns: f64) -> String {
    let us = ns / 1e3;
    if us >= 100.0 {
        format!("{us:.0}")
    } else if us >= 10.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.2}")
    }
}

/// A markdown table of `entries` with the latencies of `results` (ns, by id); `what`
/// heads the first column. Entries without a result are left out of the table and
/// returned.
pub fn table(
    entries: &[Entry],
    results: &BTreeMap<String, f64>,
    peak_gflops: f64,
    what: &str,
) -> (String, Vec<String>) {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| {what} | sparsity | format | latency (µs) | speedup vs dense | MFLOP executed | GFLOP/s | % of peak | weight bytes | % of dense bytes |"
    );
    let _ = writeln!(s, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut missing = vec![];
    let latency = |e: &Entry, format: &str| {
        results
            .get(&format!("{}/{format}/s{}", e.subject, e.sparsity))
            .copied()
    };
    for e in entries {
        let f = &e.facts;
        let flops = 2.0 * f.macs as f64;
        let Some(ns) = latency(e, e.format) else {
            missing.push(e.id());
            continue;
        };
        let gf = flops / ns; // FLOP per ns = GFLOP/s
        let speed = latency(e, "dense")
            .map(|d| format!("{:.2}x", d / ns))
            .unwrap_or("–".into());
        let _ = writeln!(
            s,
            "| {} | {}% | {} | {} | {speed} | {:.3} | {gf:.1} | {:.1}% | {} | {:.1}% |",
            e.subject,
            e.sparsity,
            e.format,
            fmt_us(ns),
            flops / 1e6,
            100.0 * gf / peak_gflops,
            f.weight_bytes,
            100.0 * f.weight_bytes as f64 / f.dense_weight_bytes.max(1) as f64
        );
    }
    (s, missing)
}

/// The highest achieved GFLOP/s among `entries` with a result: (GFLOP/s, id).
fn best_gflops(entries: &[Entry], results: &BTreeMap<String, f64>) -> Option<(f64, String)> {
    entries
        .iter()
        .filter_map(|e| {
            let ns = results.get(&e.id())?;
            Some((2.0 * e.facts.macs as f64 / ns, e.id()))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// Tick label of a latency: up to 3 significant digits, no trailing zeros.
fn fmt_tick(v: f64) -> String {
    let t = format!("{v:.3}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    t.to_string()
}

/// One plotted series: a label, a colour index, a dash pattern (empty: solid) and
/// `(sparsity %, latency µs)` points; a single point is drawn as a square marker.
pub struct Series {
    pub label: String,
    pub color: usize,
    pub dash: &'static str,
    pub points: Vec<(f64, f64)>,
}

/// The series of the plot: one per arch x format with results, in table order.
pub fn series(entries: &[Entry], results: &BTreeMap<String, f64>) -> Vec<Series> {
    let mut out: Vec<Series> = vec![];
    let mut archs: Vec<&str> = vec![];
    for e in entries {
        let Some(&ns) = results.get(&e.id()) else {
            continue;
        };
        if !archs.contains(&e.subject.as_str()) {
            archs.push(&e.subject);
        }
        let label = format!("{} {}", e.subject, e.format);
        let pt = (e.sparsity as f64, ns / 1e3);
        match out.iter_mut().find(|s| s.label == label) {
            Some(s) => s.points.push(pt),
            None => out.push(Series {
                label,
                color: archs.iter().position(|&a| a == e.subject).unwrap_or(0),
                dash: match e.format {
                    "dense" => "2 3",
                    "csr-only" => "7 4",
                    _ => "",
                },
                points: vec![pt],
            }),
        }
    }
    out
}

/// A hand-written SVG line chart: latency (µs, log scale) against sparsity, placed at
/// `-log10(1 - sparsity)` so that 90, 99% are a decade apart.
pub fn svg_plot(title: &str, series: &[Series]) -> String {
    let (w, h) = (820.0, 500.0);
    let (left, right, top, bottom) = (70.0, 190.0, 50.0, 60.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let pos = |sp: f64| -(1.0 - sp.min(99.9) / 100.0).log10();
    let x_hi = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| pos(p.0)))
        .fold(2.0, f64::max);
    let lats = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (mut lo, mut hi) = (
        lats().fold(f64::INFINITY, f64::min),
        lats().fold(0.0, f64::max),
    );
    if !(lo.is_finite() && lo > 0.0 && hi > 0.0) {
        (lo, hi) = (1.0, 10.0);
    }
    let (d_lo, d_hi) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    let px = |sp: f64| left + pw * pos(sp) / x_hi;
    let py = |us: f64| top + ph * (1.0 - (us.log10() - d_lo) / (d_hi - d_lo));
    let mut s = Svg::new(w, h);
    s.title(left + pw / 2.0, 25.0, title);
    // Latency grid: every decade, and 2x, 5x within it when there are few decades.
    let decades = (d_hi - d_lo) as i32;
    for d in d_lo as i32..=d_hi as i32 {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powi(d);
            if (m != 1.0 && decades > 3) || v > 10f64.powf(d_hi) * 1.0001 {
                continue;
            }
            let stroke = if m == 1.0 { "#d0d0d0" } else { "#eeeeee" };
            s.h_grid(left, left + pw, py(v), stroke, &fmt_tick(v));
        }
    }
    // Sparsity ticks at the benched sparsities.
    for sp in SPARSITIES {
        let label = format!("{sp}%");
        s.v_grid(px(sp as f64), top, top + ph, 18.0, "#e0e0e0", &label);
    }
    s.axes(left, top, pw, ph);
    s.text(
        left + pw / 2.0,
        h - 15.0,
        "middle",
        "weights zeroed per layer (axis: log of density)",
    );
    s.y_label(
        18.0,
        top + ph / 2.0,
        "latency, batch 1, one thread (µs, log scale)",
    );
    for se in series {
        let c = PALETTE[se.color % PALETTE.len()];
        if se.points.len() > 1 {
            s.polyline(se.points.iter().map(|&(x, y)| (px(x), py(y))), c, se.dash);
            for &(x, y) in &se.points {
                s.dot(px(x), py(y), 2.5, c);
            }
        } else {
            for &(x, y) in &se.points {
                s.square(px(x), py(y), c);
            }
        }
    }
    // Legend.
    let lx = left + pw + 20.0;
    for (k, se) in series.iter().enumerate() {
        let ly = top + 10.0 + 20.0 * k as f64;
        let c = PALETTE[se.color % PALETTE.len()];
        if se.points.len() > 1 {
            s.legend_line(lx, ly, c, se.dash, &se.label);
        } else {
            s.square(lx + 12.0, ly, c);
            s.text(lx + 30.0, ly + 4.0, "start", &se.label);
        }
    }
    s.finish()
}

/// The whole markdown report.
fn report(
    inference: &[Entry],
    layers: &[Entry],
    results: &BTreeMap<String, f64>,
    layer_results: &BTreeMap<String, f64>,
    sources: &[(String, String)],
    peak: f64,
    svg_name: Option<&str>,
) -> (String, Vec<String>) {
    let mut s = String::new();
    let _ = writeln!(s, "# Sparse inference benchmarks\n");
    let _ = writeln!(
        s,
        "Generated by `cargo xtask bench-report` from the criterion results of `{BENCH_CMD}` \
         (means). Batch 1, one thread. Formats: `dense` = the sparse crate's dense kernels \
         everywhere, `csr` = the deployed model (CSR where the layer's density is below the \
         crossover, dense elsewhere), `csr-only` = CSR everywhere, `engine` = the training \
         engine's `Model::infer`. MFLOP are those executed (2 x multiply-adds; CSR counts \
         non-zeros only); % of peak is against {peak} GFLOP/s. Weight bytes exclude biases; \
         CSR bytes include indices and row pointers.\n"
    );
    if let Some(cpu) = cpu_name() {
        let _ = writeln!(s, "CPU: {cpu}.\n");
    }
    for (arch, src) in sources {
        let _ = writeln!(s, "- {arch}: {src}, pruned per layer by magnitude");
    }
    s.push('\n');
    if let Some(name) = svg_name {
        let _ = writeln!(s, "![latency against sparsity]({name})\n");
    }
    let _ = writeln!(s, "## Whole networks (`sparse_inference`)\n");
    let (t, mut missing) = table(inference, results, peak, "arch");
    s.push_str(&t);
    if !missing.is_empty() {
        let _ = writeln!(
            s,
            "\n{} of {} benches have no result and are left out (run `{BENCH_CMD}`).",
            missing.len(),
            inference.len()
        );
    }
    if let Some((gf, id)) = best_gflops(inference, results) {
        let _ = writeln!(
            s,
            "\nHighest rate: {gf:.1} GFLOP/s ({id}), {:.1}% of the {peak} GFLOP/s peak.",
            100.0 * gf / peak
        );
    }
    if !layers.is_empty() && !layer_results.is_empty() {
        let _ = writeln!(s, "\n## Layers of lenet5 (`sparse_layer`)\n");
        let (t, m) = table(layers, layer_results, peak, "layer");
        s.push_str(&t);
        missing.extend(m.into_iter().map(|id| format!("{LAYER}/{id}")));
    }
    (s, missing)
}

fn cpu_name() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

pub fn run(args: &[String]) -> Result<ExitCode, String> {
    let cli = Cli::parse(args, &["criterion", "out", "svg", "peak-gflops"], &[])?;
    if let Some(p) = cli.positional.first() {
        return Err(format!(
            "bench-report takes no positional arguments (got {p:?})"
        ));
    }
    let root = workspace_root();
    let crit = match cli.get("criterion") {
        Some(d) => PathBuf::from(d),
        None => match std::env::var_os("CARGO_TARGET_DIR") {
            Some(t) => PathBuf::from(t).join("criterion"),
            None => root.join("target/criterion"),
        },
    };
    let out = cli
        .get("out")
        .map(PathBuf::from)
        .unwrap_or(root.join("docs/sparse-bench.md"));
    let svg = cli
        .get("svg")
        .map(PathBuf::from)
        .unwrap_or(root.join("docs/sparse-latency.svg"));
    let peak: f64 = cli.num("peak-gflops")?.unwrap_or(174.0);
    if peak.is_nan() || peak <= 0.0 {
        return Err(format!("--peak-gflops must be positive (got {peak})"));
    }

    let results = read_results(&crit, INFERENCE)?;
    let layer_results = read_results(&crit, LAYER).unwrap_or_default();
    let Entries {
        inference,
        layers,
        sources,
    } = entries()?;
    // Link the plot from the report when both sit in the same directory.
    let svg_name = (svg.parent() == out.parent())
        .then(|| svg.file_name().map(|n| n.to_string_lossy().to_string()))
        .flatten();
    let (md, missing) = report(
        &inference,
        &layers,
        &results,
        &layer_results,
        &sources,
        peak,
        svg_name.as_deref(),
    );
    print!("{md}");
    if layer_results.is_empty() {
        eprintln!("note: no {LAYER} results under {}", crit.display());
    }
    if !missing.is_empty() {
        eprintln!(
            "note: {} benches have no result (e.g. {}): run `{BENCH_CMD}` for the full table",
            missing.len(),
            missing[0]
        );
    }
    for (path, text) in [
        (&out, md),
        (
            &svg,
            svg_plot(
                "rcc-sparse: latency against sparsity (batch 1, one thread)",
                &series(&inference, &results),
            ),
        ),
    ] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes one criterion result the way criterion 0.5 lays it out.
    fn write_result(dir: &Path, group: &str, id: &str, mean_ns: f64) {
        let d = dir.join(group).join(id.replace('/', "_")).join("new");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("benchmark.json"),
            format!(
                r#"{{"group_id":"{group}","function_id":null,"value_str":"{id}","throughput":{{"Elements":123}},"full_id":"{group}/{id}","directory_name":"{group}/{}","title":"{group}/{id}"}}"#,
                id.replace('/', "_")
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("estimates.json"),
            format!(
                r#"{{"mean":{{"confidence_interval":{{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":2.0}},"point_estimate":{mean_ns},"standard_error":0.5}},"median":{{"confidence_interval":{{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":2.0}},"point_estimate":7.5e0,"standard_error":0.1}},"slope":null}}"#
            ),
        )
        .unwrap();
        // criterion also keeps the previous run under base/, and a report/ directory.
        std::fs::create_dir_all(dir.join(group).join("report")).unwrap();
    }

    fn entry(
        subject: &str,
        sparsity: u32,
        format: &'static str,
        macs: usize,
        bytes: usize,
    ) -> Entry {
        Entry {
            subject: subject.into(),
            sparsity,
            format,
            facts: Facts {
                macs,
                weight_bytes: bytes,
                dense_weight_bytes: 4000,
            },
        }
    }

    #[test]
    fn reads_a_fake_criterion_directory_and_tabulates() {
        let dir = std::env::temp_dir().join(format!("rcc-bench-report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Underscores in arch ids: the id must come from benchmark.json, not the path.
        write_result(&dir, INFERENCE, "lenet_adv4/dense/s90", 20_000.0);
        write_result(&dir, INFERENCE, "lenet_adv4/csr/s90", 5_000.0);
        write_result(&dir, INFERENCE, "lenet_adv4/engine/s0", 40_000.0);
        write_result(&dir, "other_group", "x/y", 1.0);

        let missing_group = read_results(&dir, LAYER).unwrap_err();
        assert!(missing_group.contains(BENCH_CMD), "{missing_group}");
        let r = read_results(&dir, INFERENCE).unwrap();
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(r["lenet_adv4/csr/s90"], 5_000.0);

        let entries = [
            entry("lenet_adv4", 0, "engine", 1_000_000, 4000),
            entry("lenet_adv4", 90, "dense", 1_000_000, 4000),
            entry("lenet_adv4", 90, "csr", 100_000, 600),
            entry("lenet_adv4", 90, "csr-only", 100_000, 600),
        ];
        let (t, missing) = table(&entries, &r, 100.0, "arch");
        assert_eq!(missing, ["lenet_adv4/csr-only/s90"]);
        assert_eq!(t.lines().count(), 2 + 3, "{t}");
        let rows: Vec<Vec<&str>> = t
            .lines()
            .skip(2)
            .map(|l| {
                l.split('|')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .collect();
        // csr at 90%: 5 µs, 4x over dense, 0.2 MFLOP, 40 GFLOP/s = 40% of 100, 15% bytes.
        assert_eq!(
            rows[2],
            [
                "lenet_adv4",
                "90%",
                "csr",
                "5.00",
                "4.00x",
                "0.200",
                "40.0",
                "40.0%",
                "600",
                "15.0%"
            ]
        );
        // Engine at s0 has no dense s0 result here: speedup unknown.
        assert_eq!(rows[0][3..5], ["40.0", "–"]);
        assert_eq!(best_gflops(&entries, &r).unwrap().1, "lenet_adv4/dense/s90");

        let se = series(&entries, &r);
        assert_eq!(se.len(), 3);
        let svg = svg_plot("t <&>", &se);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 0); // one point per series here
        assert!(svg.contains("t &lt;&amp;&gt;") && !svg.contains("NaN"));

        let (md, _) = report(
            &entries,
            &[],
            &r,
            &BTreeMap::new(),
            &[],
            100.0,
            Some("p.svg"),
        );
        assert!(md.contains("![latency against sparsity](p.svg)") && md.contains("| arch |"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn plot_draws_lines_on_log_axes() {
        let r: BTreeMap<String, f64> = [
            ("a/dense/s0", 100_000.0),
            ("a/dense/s90", 100_000.0),
            ("a/csr/s0", 100_000.0),
            ("a/csr/s90", 20_000.0),
            ("a/csr/s99", 3_000.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let entries: Vec<Entry> = [0, 90, 99]
            .into_iter()
            .flat_map(|s| [entry("a", s, "dense", 1, 4), entry("a", s, "csr", 1, 4)])
            .collect();
        let se = series(&entries, &r);
        assert_eq!(se.len(), 2);
        assert_eq!(se[1].points, [(0.0, 100.0), (90.0, 20.0), (99.0, 3.0)]);
        let svg = svg_plot("t", &se);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 5);
        // Decade labels from 1 to 100 µs.
        for lab in [">1</text>", ">10</text>", ">100</text>", ">99%</text>"] {
            assert!(svg.contains(lab), "{lab}");
        }
        assert_eq!(fmt_tick(0.5), "0.5");
        assert_eq!(fmt_tick(2000.0), "2000");
    }

    #[test]
    fn options_are_checked() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(run(&a(&["--bogus"])).unwrap_err().contains("--criterion"));
        assert!(run(&a(&["--peak-gflops", "0"]))
            .unwrap_err()
            .contains("positive"));
        let empty = std::env::temp_dir().join(format!("rcc-bench-empty-{}", std::process::id()));
        let e = run(&a(&["--criterion", empty.to_str().unwrap()])).unwrap_err();
        assert!(e.contains("cargo bench --bench sparse"), "{e}");
    }
}
