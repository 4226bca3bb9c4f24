//! `cargo xtask eval --model FILE [--dataset mnist] [--arch A] [--batch B] [--threads T]
//! [--limit N] [--json]`: clean test accuracy of a model file (the attacks issue adds
//! robust accuracy). Files written elsewhere (a PyTorch `state_dict` saved with
//! safetensors) need `--arch`.

use crate::cli::{data_dir, Cli};
use rcc_data::{Dataset, DatasetKind, Split};
use rcc_nn::{Arch, Model};
use std::path::Path;
use std::process::ExitCode;

/// Accuracy and mean cross-entropy of `model` on `data` (inference mode, no tape), in
/// batches of `batch`.
pub fn evaluate(model: &Model, data: &Dataset, batch: usize) -> Result<(f64, f64), String> {
    let (mut correct, mut loss) = (0usize, 0f64);
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(batch.max(1)) {
        let (x, labels) = data.batch(chunk, None);
        let logits = model.infer(&x).map_err(|e| e.to_string())?;
        let k = logits.shape()[1];
        for (row, (&pred, &y)) in logits
            .data()
            .chunks(k)
            .zip(logits.argmax_rows().iter().zip(&labels))
        {
            correct += usize::from(pred == y);
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
            loss += lse - row[y] as f64;
        }
    }
    let n = data.len().max(1) as f64;
    Ok((correct as f64 / n, loss / n))
}

pub fn run(args: &[String]) -> Result<ExitCode, String> {
    let cli = Cli::parse(
        args,
        &[
            "model", "dataset", "arch", "batch", "threads", "limit", "data",
        ],
        &["json"],
    )?;
    let model_path = cli.get("model").ok_or("--model FILE is required")?;
    let arch: Option<Arch> = cli
        .get("arch")
        .map(|a| a.parse().map_err(|e| format!("--arch: {e}")))
        .transpose()?;
    let model = Model::load(Path::new(model_path), arch).map_err(|e| e.to_string())?;
    let kind: DatasetKind = cli
        .get("dataset")
        .unwrap_or("mnist")
        .parse()
        .map_err(|e| format!("--dataset: {e}"))?;
    let mut test =
        Dataset::load(kind, Split::Test, &data_dir(cli.get("data"))).map_err(|e| e.to_string())?;
    if let Some(limit) = cli.num::<usize>("limit")? {
        test = test.subset(&(0..limit.min(test.len())).collect::<Vec<_>>());
    }
    let threads = cli.num("threads")?.unwrap_or(0);
    let pool = rcc_tensor::threads::pool(threads).map_err(|e| e.to_string())?;
    let batch = cli.num("batch")?.unwrap_or(500);
    let t0 = std::time::Instant::now();
    let (acc, loss) = pool.install(|| evaluate(&model, &test, batch))?;
    let secs = t0.elapsed().as_secs_f64();
    if cli.has("json") {
        println!(
            "{{\"model\":{:?},\"arch\":\"{}\",\"dataset\":\"{kind}\",\"n\":{},\"clean_acc\":{acc:.6},\"clean_loss\":{loss:.6}}}",
            model_path,
            model.arch(),
            test.len()
        );
    } else {
        println!("model    {model_path} ({})", model.arch());
        println!("dataset  {kind} test, {} images", test.len());
        println!(
            "clean    accuracy {:.2}%  loss {loss:.4}  ({secs:.1} s)",
            100.0 * acc
        );
    }
    Ok(ExitCode::SUCCESS)
}
