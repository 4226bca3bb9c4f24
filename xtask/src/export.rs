//! `cargo xtask export --model FILE --out FILE [--arch A] [--kernels auto|csr|dense]`:
//! converts a (pruned) dense model file into a sparse model file (`rcc_sparse::export`).
//!
//! - The written file is read back through the validating loader, built with the chosen
//!   kernels (`--kernels`, default `auto`: CSR or dense per layer by density), and its
//!   logits are compared with the dense model's on seeded random inputs: the command
//!   fails if the relative error `max|sparse - dense| / max|dense|` exceeds 1e-4.
//! - Prints one row per layer (kind, kernel, output shape, weights, non-zeros, density,
//!   weight bytes) and the totals: weight bytes against dense, biases, the activation
//!   arena of one inference and the file size.
//!
//! Files written elsewhere (a PyTorch `state_dict` saved with safetensors) need `--arch`.
//!
//! `--format c [--name NAME]` writes `OUT/NAME.h` and `OUT/NAME.c` instead (C99 for
//! firmware, `rcc_sparse::c_export`; `--model` may then also be a sparse model file) and
//! reports the Cortex-M4F flash and RAM of this export and of the dense export of the same
//! model, compiled with `arm-none-eabi-gcc` when it is installed.

use crate::cli::Cli;
use crate::embedded::{c_report, export_c};
use rcc_nn::Arch;
use rcc_sparse::export::{export, report, TOL};
use rcc_sparse::KernelChoice;
use std::path::Path;
use std::process::ExitCode;

pub fn parse_kernels(s: &str) -> Result<KernelChoice, String> {
    match s {
        "auto" => Ok(KernelChoice::Auto),
        "csr" | "sparse" => Ok(KernelChoice::Sparse),
        "dense" => Ok(KernelChoice::Dense),
        other => Err(format!(
            "--kernels: unknown choice {other:?} (expected auto, csr or dense)"
        )),
    }
}

pub fn run(args: &[String]) -> Result<ExitCode, String> {
    let cli = Cli::parse(
        args,
        &["model", "out", "arch", "kernels", "format", "name"],
        &[],
    )?;
    if let Some(extra) = cli.positional.first() {
        return Err(format!(
            "unexpected argument {extra:?}; usage: cargo xtask export --model FILE --out FILE \
             [--arch A] [--kernels auto|csr|dense] [--format safetensors|c] [--name NAME]"
        ));
    }
    let model = cli.get("model").ok_or("--model FILE is required")?;
    let out = cli.get("out").ok_or("--out FILE is required")?;
    let arch: Option<Arch> = cli
        .get("arch")
        .map(|a| a.parse().map_err(|e| format!("--arch: {e}")))
        .transpose()?;
    let choice = parse_kernels(cli.get("kernels").unwrap_or("auto"))?;
    let out = Path::new(out);
    match cli.get("format").unwrap_or("safetensors") {
        "safetensors" if cli.get("name").is_some() => return Err("--name is for --format c".into()),
        "safetensors" => {}
        "c" => {
            let e = export_c(Path::new(model), arch, out, choice, cli.get("name"))?;
            print!("{}", c_report(&e));
            return Ok(if e.rel_err <= TOL {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        other => {
            return Err(format!(
                "--format: unknown format {other:?} (expected safetensors or c)"
            ))
        }
    }
    let e = export(Path::new(model), arch, out, choice).map_err(|e| e.to_string())?;
    print!("{}", report(&e, out));
    Ok(if e.matches() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcc_nn::Model;
    use rcc_sparse::c_export::CModel;
    use rcc_sparse::{file, ModelSpec};
    use std::path::PathBuf;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rcc-export-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exports_through_the_command_line() {
        let dir = temp_dir("lenet");
        let dense_path = dir.join("model.safetensors");
        let mut model = Model::new(Arch::LenetAdv(1), 5);
        rcc_compress::prune_by_magnitude(&mut model, 0.9);
        model.save(&dense_path, &[]).unwrap();
        let out = dir.join("sparse.safetensors");
        let (m, o) = (dense_path.to_str().unwrap(), out.to_str().unwrap());
        let code = run(&args(&["--model", m, "--out", o, "--kernels", "csr"])).unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
        assert_eq!(
            file::load(&out).unwrap(),
            ModelSpec::from_model(&model).unwrap()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `--format c` from a dense and from a sparse model file: the files, the report, and
    /// the C identical either way (the sparse file holds the same spec).
    #[test]
    fn exports_c_from_dense_and_sparse_files() {
        let dir = temp_dir("c");
        let dense_path = dir.join("model.safetensors");
        let mut model = Model::new(Arch::LenetAdv(1), 5);
        rcc_compress::prune_by_magnitude(&mut model, 0.9);
        model.save(&dense_path, &[]).unwrap();
        let sparse_path = dir.join("model.sparse.safetensors");
        file::save(&ModelSpec::from_model(&model).unwrap(), &sparse_path).unwrap();
        let from_dense =
            export_c(&dense_path, None, &dir.join("a"), KernelChoice::Auto, None).unwrap();
        assert!(from_dense.rel_err <= TOL);
        assert_eq!(from_dense.c.name, "lenet_adv1");
        assert!(dir.join("a/lenet_adv1.h").is_file() && dir.join("a/lenet_adv1.c").is_file());
        let from_sparse =
            export_c(&sparse_path, None, &dir.join("b"), KernelChoice::Auto, None).unwrap();
        let code = |c: &CModel| {
            c.source
                .lines()
                .filter(|l| !l.contains("Made by"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(code(&from_sparse.c), code(&from_dense.c));
        let text = c_report(&from_sparse);
        for needle in ["lenet_adv1.h", "lenet_adv1.c", "rate 10.0", "arena: "] {
            assert!(text.contains(needle), "{needle:?} not in:\n{text}");
        }
        // Through the command line.
        let (m, o) = (dense_path.to_str().unwrap(), dir.join("c"));
        let code = run(&args(&[
            "--model",
            m,
            "--out",
            o.to_str().unwrap(),
            "--format",
            "c",
            "--name",
            "m2",
        ]))
        .unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
        assert!(o.join("m2.c").is_file());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn c_format_errors_are_clear() {
        let dir = temp_dir("c-errors");
        let dense_path = dir.join("model.safetensors");
        Model::new(Arch::LenetAdv(1), 0)
            .save(&dense_path, &[])
            .unwrap();
        let (m, o) = (dense_path.to_str().unwrap(), dir.to_str().unwrap());
        let err = |a: &[&str]| run(&args(a)).unwrap_err();
        let e = err(&["--model", m, "--out", o, "--format", "c", "--name", "3net"]);
        assert!(
            e.contains("C export: name") && e.contains("C identifier") && e.contains("\"3net\""),
            "{e}"
        );
        let e = err(&["--model", m, "--out", o, "--format", "c", "--name", "int"]);
        assert!(e.contains("not a C keyword"), "{e}");
        let e = err(&["--model", m, "--out", o, "--format", "onnx"]);
        assert!(e.contains("safetensors or c"), "{e}");
        let e = err(&["--model", m, "--out", o, "--name", "x"]);
        assert!(e.contains("--name is for --format c"), "{e}");
        assert!(!dir.join("3net.c").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errors_are_clear() {
        let dir = temp_dir("errors");
        let out = dir.join("out.safetensors");
        let o = out.to_str().unwrap();
        let err = |a: &[&str]| run(&args(a)).unwrap_err();
        assert!(err(&["--out", o]).contains("--model FILE is required"));
        assert!(err(&["--model", "x"]).contains("--out FILE is required"));
        assert!(err(&["--model", "x", "--out", o, "--kernels", "fast"]).contains("auto, csr"));
        assert!(err(&["--model", "x", "--out", o, "--bogus", "1"]).contains("--bogus"));
        assert!(err(&["--model", "x", "--out", o, "stray"]).contains("\"stray\""));
        let missing = dir.join("missing.safetensors");
        let e = err(&["--model", missing.to_str().unwrap(), "--out", o]);
        assert!(e.contains("missing.safetensors"), "{e}");
        assert!(!out.with_extension("safetensors.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
