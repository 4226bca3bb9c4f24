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

use crate::cli::Cli;
use rcc_nn::Arch;
use rcc_sparse::export::{export, report};
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
    let cli = Cli::parse(args, &["model", "out", "arch", "kernels"], &[])?;
    if let Some(extra) = cli.positional.first() {
        return Err(format!(
            "unexpected argument {extra:?}; usage: cargo xtask export --model FILE --out FILE \
             [--arch A] [--kernels auto|csr|dense]"
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
