//! `cargo xtask check-reference FILE... [--tol T]`: one row per tensor with the relative
//! error `max|ours - theirs| / max|theirs|` against PyTorch's float64 result.

use rcc_nn::reference::check_file;
use std::process::ExitCode;

pub fn run(args: &[String]) -> Result<ExitCode, String> {
    let cli = crate::cli::Cli::parse(args, &["tol"], &[])?;
    let tol: f64 = cli.num("tol")?.unwrap_or(1e-4);
    let files: Vec<std::path::PathBuf> = cli.positional.iter().map(Into::into).collect();
    if files.is_empty() {
        return Err(
            "no files given; e.g. cargo xtask check-reference ../shared/reference/*.safetensors"
                .into(),
        );
    }
    let (mut failed, mut errors) = (0, 0);
    for f in &files {
        match check_file(f) {
            Ok(report) => {
                println!("{} ({})", f.display(), report.description);
                println!(
                    "  {:<28} {:>10} {:>12}  {:<28}",
                    "tensor", "values", "rel err", "against"
                );
                for r in &report.rows {
                    let ok = r.rel_err <= tol;
                    failed += usize::from(!ok);
                    println!(
                        "  {:<28} {:>10} {:>12.3e}  {:<28} {}",
                        r.name,
                        r.numel,
                        r.rel_err,
                        r.against,
                        if ok { "ok" } else { "FAIL" }
                    );
                }
            }
            Err(e) => {
                errors += 1;
                println!("{}: error: {e}", f.display());
            }
        }
    }
    println!("\n{} file(s), tolerance {tol:e}: {failed} tensor(s) over tolerance, {errors} file error(s)", files.len());
    Ok(if failed == 0 && errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
