//! The C99 export of a model (`rcc_sparse::c_export`) written to a folder, checked, and
//! measured for the Cortex-M4F with `arm-none-eabi-gcc` when it is installed: shared by
//! `cargo xtask export --format c` and by `cargo xtask train`'s report.

use rcc_nn::{Arch, Model};
use rcc_sparse::c_export::{self, CModel, COptions};
use rcc_sparse::export::{compare, CHECK_INPUTS, TOL};
use rcc_sparse::{file, KernelChoice, ModelSpec, SparseModel};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn pct(part: usize, whole: usize) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * part as f64 / whole as f64)
    }
}

/// A C export and its footprints.
pub struct CExported {
    pub spec: ModelSpec,
    pub model: SparseModel,
    pub c: CModel,
    pub header: PathBuf,
    pub source: PathBuf,
    /// Against the dense model when `--model` was one, else 0 (the spec is the file's).
    pub rel_err: f64,
    /// This export and the dense export of the same spec on the Cortex-M4F, or why not.
    pub footprint: Result<(Footprint, Footprint), String>,
}

/// The default C name: the architecture with every other character than `[A-Za-z0-9_]`
/// dropped (`lenet_adv:4` -> `lenet_adv4`).
fn default_name(arch: &str) -> String {
    let s: String = arch
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    match s.chars().next() {
        Some(c) if !c.is_ascii_digit() => s,
        _ => format!("model_{s}"),
    }
}

/// Writes `out/<name>.h` and `out/<name>.c` for a dense model file (checked against the
/// dense model as [`export`] does) or a sparse model file, and measures the footprints.
pub fn export_c(
    model_path: &Path,
    arch: Option<Arch>,
    out: &Path,
    choice: KernelChoice,
    name: Option<&str>,
) -> Result<CExported, String> {
    // A sparse model file is taken as it is; anything else must load as a dense model.
    let (spec, dense) = match file::load(model_path) {
        Ok(spec) => (spec, None),
        Err(_) => {
            let dense = Model::load(model_path, arch).map_err(|e| e.to_string())?;
            let spec = ModelSpec::from_model(&dense)
                .map_err(|e| format!("{}: converting to sparse: {e}", model_path.display()))?;
            (spec, Some(dense))
        }
    };
    let name = name.map_or_else(|| default_name(&spec.arch), str::to_string);
    let opts = COptions {
        name,
        choice,
        notes: vec![format!(
            "Made by `cargo xtask export --format c` from {}.",
            model_path.display()
        )],
    };
    let c = c_export::export(&spec, &opts).map_err(|e| e.to_string())?;
    let model = SparseModel::build(&spec, choice).map_err(|e| e.to_string())?;
    let rel_err = match &dense {
        Some(d) => compare(d, &model).map_err(|e| format!("comparing logits: {e}"))?,
        None => 0.0,
    };
    let (header, source) = c.write(out).map_err(|e| e.to_string())?;
    let footprint = (|| {
        let dense_c = c_export::export(
            &spec,
            &COptions {
                choice: KernelChoice::Dense,
                ..opts.clone()
            },
        )
        .map_err(|e| e.to_string())?;
        Ok((m4_footprint(&c)?, m4_footprint(&dense_c)?))
    })();
    Ok(CExported {
        spec,
        model,
        c,
        header,
        source,
        rel_err,
        footprint,
    })
}

/// The Cortex-M4F memory of one export, from `arm-none-eabi-gcc -O2` and
/// `arm-none-eabi-size` of its object file.
#[derive(Clone, Copy, Debug)]
pub struct Footprint {
    pub text: usize,
    pub rodata: usize,
    /// Initialised and zeroed writable data (none in a generated file, but measured).
    pub data_bss: usize,
    /// `infer`'s frame plus its largest callee's, from `-fstack-usage` (the C library's
    /// memcpy and memset not counted).
    pub stack: usize,
    pub arena: usize,
}

impl Footprint {
    pub fn flash(&self) -> usize {
        self.text + self.rodata
    }
    pub fn ram(&self) -> usize {
        self.arena + self.stack + self.data_bss
    }
}

/// The flags of the M4 build (scripts/embedded-lib.sh uses the same). Contraction to
/// `vfma` is allowed, as a firmware build would (and as the engine contracts to FMA):
/// ISO C mode forbids it by default, which costs an instruction per multiply-add.
pub const M4_CFLAGS: [&str; 8] = [
    "-std=c99",
    "-O2",
    "-ffp-contract=fast",
    "-mcpu=cortex-m4",
    "-mthumb",
    "-mfpu=fpv4-sp-d16",
    "-mfloat-abi=hard",
    "-ffunction-sections",
];

fn m4_footprint(c: &CModel) -> Result<Footprint, String> {
    let gcc = "arm-none-eabi-gcc";
    if !std::process::Command::new(gcc)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Err(format!(
            "{gcc} not found (Debian package gcc-arm-none-eabi)"
        ));
    }
    // A folder of its own per call: two exports of the same name may be measured at
    // once (tests run in parallel), and each removes its folder when done.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "rcc-m4-footprint-{}-{call}-{}",
        std::process::id(),
        c.name
    ));
    let run = |cmd: &str, args: &[&str]| -> Result<String, String> {
        let o = crate::console::output_unless_orphaned(
            std::process::Command::new(cmd).args(args).current_dir(&dir),
        )
        .map_err(|e| format!("{cmd}: {e}"))?;
        if !o.status.success() {
            return Err(format!("{cmd}: {}", String::from_utf8_lossy(&o.stderr)));
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let _ = std::fs::remove_dir_all(&dir);
    c.write(&dir).map_err(|e| e.to_string())?;
    let src = format!("{}.c", c.name);
    let mut args: Vec<&str> = M4_CFLAGS.to_vec();
    args.extend(["-fdata-sections", "-fstack-usage", "-c", &src, "-o", "m.o"]);
    run(gcc, &args)?;
    let sizes = run("arm-none-eabi-size", &["-A", "m.o"])?;
    let mut f = Footprint {
        text: 0,
        rodata: 0,
        data_bss: 0,
        stack: 0,
        arena: 4 * c.arena_floats,
    };
    for line in sizes.lines() {
        let mut it = line.split_whitespace();
        let (Some(sec), Some(size)) = (it.next(), it.next().and_then(|s| s.parse::<usize>().ok()))
        else {
            continue;
        };
        if sec.starts_with(".text") {
            f.text += size;
        } else if sec.starts_with(".rodata") {
            f.rodata += size;
        } else if sec.starts_with(".data") || sec.starts_with(".bss") {
            f.data_bss += size;
        }
    }
    // One line per function: `file:line:col:name<TAB>bytes<TAB>static`.
    let su = std::fs::read_to_string(dir.join("m.su")).map_err(|e| format!("m.su: {e}"))?;
    let frames: Vec<(String, usize)> = su
        .lines()
        .filter_map(|l| {
            let mut it = l.split('\t');
            let func = it.next()?.rsplit(':').next()?.to_string();
            Some((func, it.next()?.parse().ok()?))
        })
        .collect();
    let infer = format!("{}_infer", c.name);
    let top = frames.iter().find(|f| f.0 == infer).map_or(0, |f| f.1);
    let callee = frames
        .iter()
        .filter(|f| f.0 != infer)
        .map(|f| f.1)
        .max()
        .unwrap_or(0);
    f.stack = top + callee;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(f)
}

/// The MCU class the issue targets: 256 KB flash, 64 KB RAM.
const MCU_FLASH: usize = 256 * 1024;
const MCU_RAM: usize = 64 * 1024;

pub fn c_report(e: &CExported) -> String {
    let mut s = String::new();
    let c = &e.c;
    let (total, nnz) = e.spec.weight_counts();
    let _ = writeln!(
        s,
        "{} -> {} and {} (C99, kernels {})",
        e.spec.arch,
        e.header.display(),
        e.source.display(),
        if !c.kernels.contains(&"dense") {
            "all CSR"
        } else if !c.kernels.contains(&"csr") {
            "all dense"
        } else {
            "CSR and dense by layer"
        }
    );
    let _ = writeln!(
        s,
        "{:>5}  {:<9} {:<7} {:<14} {:>10} {:>10}",
        "layer", "kind", "kernel", "out shape", "weights", "nnz"
    );
    for (i, l) in e.model.layers().iter().enumerate() {
        let num = |v: usize| {
            if l.weights > 0 {
                v.to_string()
            } else {
                String::new()
            }
        };
        let _ = writeln!(
            s,
            "{i:>5}  {:<9} {:<7} {:<14} {:>10} {:>10}",
            l.kind,
            c.kernels[i],
            format!("{:?}", l.out_shape),
            num(l.weights),
            num(l.nnz)
        );
    }
    let _ = writeln!(
        s,
        "weights: {nnz} of {total} non-zero ({}), rate {:.2}x",
        pct(nnz, total),
        total as f64 / nnz.max(1) as f64
    );
    let _ = writeln!(
        s,
        "static const data: {} bytes; arena: {} floats ({} bytes; the engine's: {} bytes)",
        c.const_bytes,
        c.arena_floats,
        4 * c.arena_floats,
        e.model.arena_bytes()
    );
    match &e.footprint {
        Ok((this, dense)) => {
            let _ = writeln!(
                s,
                "Cortex-M4F footprint (arm-none-eabi-gcc {}; flash = text + rodata, RAM = \
                 arena + stack + data/bss):",
                M4_CFLAGS[1..].join(" ")
            );
            let _ = writeln!(
                s,
                "  {:<8} {:>10} {:>10} {:>10} {:>10} {:>8} {:>7} {:>9}",
                "export", "flash", "text", "rodata", "RAM", "arena", "stack", "data/bss"
            );
            for (what, f) in [("this", this), ("dense", dense)] {
                let _ = writeln!(
                    s,
                    "  {what:<8} {:>10} {:>10} {:>10} {:>10} {:>8} {:>7} {:>9}",
                    f.flash(),
                    f.text,
                    f.rodata,
                    f.ram(),
                    f.arena,
                    f.stack,
                    f.data_bss
                );
            }
            for (what, f) in [("this export", this), ("the dense export", dense)] {
                let (flash, ram) = (f.flash() as i64, f.ram() as i64);
                let (left_flash, left_ram) = (MCU_FLASH as i64 - flash, MCU_RAM as i64 - ram);
                let _ = if left_flash >= 0 && left_ram >= 0 {
                    writeln!(
                        s,
                        "  {what} fits a 256 KB flash / 64 KB RAM MCU with {left_flash} bytes \
                         of flash and {left_ram} of RAM to spare (before the firmware's own \
                         code and the C library's memcpy/memset)"
                    )
                } else {
                    writeln!(
                        s,
                        "  {what} does NOT fit a 256 KB flash / 64 KB RAM MCU: it needs \
                         {flash} bytes of flash and {ram} of RAM"
                    )
                };
            }
        }
        Err(why) => {
            let _ = writeln!(s, "Cortex-M4F footprint: not measured: {why}");
        }
    }
    if e.rel_err > 0.0 || e.rel_err.is_nan() {
        let verdict = if e.rel_err <= TOL {
            "match"
        } else {
            "DO NOT match"
        };
        let _ = writeln!(
            s,
            "engine logits {verdict} the dense model: relative error {:.2e} (tolerance \
             {TOL:.0e}) on {CHECK_INPUTS} seeded random inputs",
            e.rel_err
        );
    }
    s
}

/// The section `cargo xtask train` adds to `report.md`: the C99 export of the run's
/// model (written to `RUN/c/`) with its Cortex-M4F flash and RAM against the dense
/// export's. `None` when `arm-none-eabi-gcc` is not installed (or the export failed: the
/// report then says why in one line).
pub fn report_section(model: &Path, arch: Arch, run: &Path) -> Option<String> {
    match export_c(model, Some(arch), &run.join("c"), KernelChoice::Auto, None) {
        Ok(e) if e.footprint.is_ok() => Some(format!(
            "\n## The deployed artifact on a Cortex-M4F (C99 export, docs/embedded.md)\n\n```\n{}```\n",
            c_report(&e)
        )),
        Ok(_) => None,
        Err(err) => Some(format!("\n## C99 export\n\nThe export failed: {err}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The report's section: the export's footprint against the dense export's when the
    /// M4 compiler is installed, nothing when it is not.
    #[test]
    fn the_report_section_has_the_footprints_when_the_compiler_is_there() {
        let dir = std::env::temp_dir().join(format!("rcc-embedded-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut model = Model::new(Arch::LenetAdv(1), 5);
        rcc_compress::prune_by_magnitude(&mut model, 0.9);
        let path = dir.join("model.safetensors");
        model.save(&path, &[]).unwrap();
        let section = report_section(&path, Arch::LenetAdv(1), &dir);
        let gcc = std::process::Command::new("arm-none-eabi-gcc")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        match section {
            Some(s) if gcc => {
                assert!(s.contains("Cortex-M4F") && s.contains("fits"), "{s}");
                assert!(dir.join("c").join("lenet_adv1.c").exists());
            }
            None if !gcc => println!("skipped: arm-none-eabi-gcc not installed"),
            other => panic!(
                "gcc installed: {gcc}, section: {other:?}, footprint: {:?}",
                export_c(&path, None, &dir.join("again"), KernelChoice::Auto, None)
                    .map(|e| e.footprint)
            ),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
