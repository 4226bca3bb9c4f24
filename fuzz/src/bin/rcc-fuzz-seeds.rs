//! Writes the seed inputs of every fuzz target into `fuzz/corpus/TARGET/seed-*`, from
//! real files: models, checkpoints and sparse exports written by rcc's own writers, the
//! first images of the official MNIST test files (raw, stored-gzip, and the official
//! gzip file itself), a CIFAR-10 batch as the tests write it, configs as runs write
//! them, metrics lines and safetensors headers.
//!
//! `cargo run --release -p rcc-fuzz --bin rcc-fuzz-seeds -- DATA_DIR OUT_DIR` (DATA_DIR
//! holds `mnist/`, as `cargo xtask fetch-data` leaves it). The seeds are committed; this
//! program says how they were made and remakes them.

use rcc_data::gzip::crc32;
use rcc_nn::{checkpoint, Adam, Arch, Model, Optimizer};
use rcc_sparse::{file, ModelSpec};
use rcc_train::config::TrainConfig;
use rcc_train::metrics::EpochMetrics;
use std::path::{Path, PathBuf};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, out] = args.as_slice() else {
        eprintln!("usage: rcc-fuzz-seeds DATA_DIR OUT_DIR");
        std::process::exit(2);
    };
    if let Err(e) = run(Path::new(data), Path::new(out)) {
        eprintln!("rcc-fuzz-seeds: {e}");
        std::process::exit(1);
    }
}

type Res = Result<(), Box<dyn std::error::Error>>;

fn put(out: &Path, target: &str, name: &str, bytes: &[u8]) -> Res {
    let dir = out.join(target);
    std::fs::create_dir_all(&dir)?;
    let path: PathBuf = dir.join(format!("seed-{name}"));
    std::fs::write(&path, bytes)?;
    println!("{:>8} bytes  {}", bytes.len(), path.display());
    Ok(())
}

fn run(data: &Path, out: &Path) -> Res {
    let tmp = std::env::temp_dir().join(format!("rcc-fuzz-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let arch: Arch = "lenet_adv:1".parse()?;

    // Model files: the smallest arch, as `xtask train` writes it, and an F64 copy as a
    // PyTorch state_dict saved in double precision would be.
    let mut m = Model::new(arch, 1);
    let model = m.to_safetensors(&[("rate", "1")])?.to_bytes()?;
    put(out, "model", "lenet_adv1", &model)?;
    let mut st = m.to_safetensors(&[])?;
    for e in &mut st.entries {
        if let rcc_nn::safetensors::TensorData::F32(v) = &e.data {
            e.data = rcc_nn::safetensors::TensorData::F64(v.iter().map(|&x| x as f64).collect());
        }
    }
    put(out, "model", "lenet_adv1_f64", &st.to_bytes()?)?;

    // Checkpoints: Adam state, a mid-epoch position and a method's extra state (ADMM's Z).
    let n = m.params.len();
    let opt = Optimizer::Adam(Adam::new(n, 0.9, 0.999, 1e-8, 0.0)?);
    let ck = tmp.join("checkpoint.safetensors");
    let z = vec![0.25f32; 16];
    checkpoint::save_with(
        &ck,
        &m,
        &opt,
        1,
        &[
            ("step", "100"),
            ("rng_words", "4096"),
            ("loss_sum", "12.5"),
            ("correct", "900"),
            ("seen", "1280"),
        ],
        &[("admm_z", &z)],
    )?;
    put(out, "checkpoint", "lenet_adv1_adam", &std::fs::read(&ck)?)?;

    // Sparse exports of the same model pruned to 50% and 95% (one dense and one CSR
    // layer choice at least).
    for sparsity in [0.5, 0.95] {
        rcc_compress::prox::prune_by_magnitude(&mut m, sparsity);
        let spec = ModelSpec::from_model(&m)?;
        let bytes = file::to_safetensors(&spec)?.to_bytes()?;
        put(
            out,
            "sparse",
            &format!("lenet_adv1_{}", (sparsity * 100.0) as u32),
            &bytes,
        )?;
    }

    // IDX: the first 3 images and labels of the official MNIST test files, raw and in a
    // stored-block gzip member; the official gzip label file itself.
    let mnist = data.join("mnist");
    let images = read_idx(&mnist, "t10k-images-idx3-ubyte")?;
    let labels = read_idx(&mnist, "t10k-labels-idx1-ubyte")?;
    let mut im = images[..16 + 3 * 784].to_vec();
    im[4..8].copy_from_slice(&3u32.to_be_bytes());
    let mut lb = labels[..8 + 3].to_vec();
    lb[4..8].copy_from_slice(&3u32.to_be_bytes());
    put(out, "idx", "t10k_images_3", &im)?;
    put(out, "idx", "t10k_labels_3", &lb)?;
    put(out, "idx", "t10k_images_3.gz", &gzip_stored(&im))?;
    let official = std::fs::read(mnist.join("t10k-labels-idx1-ubyte.gz"))?;
    put(out, "idx", "t10k_labels_official.gz", &official)?;
    put(out, "gzip", "t10k_labels_official", &official)?;
    put(out, "gzip", "stored", &gzip_stored(b"rcc stored block\n"))?;
    let two = [gzip_stored(b"first member\n"), gzip_stored(b"second\n")].concat();
    put(out, "gzip", "two_members", &two)?;

    // CIFAR-10: two records as the reader's tests write them, and the class names.
    let mut batch = vec![];
    for (i, label) in [3u8, 8].into_iter().enumerate() {
        batch.push(label);
        batch.extend((0..3072).map(|p| ((p * 7 + i * 31) % 256) as u8));
    }
    put(out, "cifar", "two_records", &batch)?;
    let meta = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";
    put(out, "cifar", "meta", meta.as_bytes())?;

    // Configs as runs write them: plain, and the robust pipeline with a teacher.
    put(
        out,
        "config",
        "default",
        TrainConfig::default().to_text().as_bytes(),
    )?;
    let mut cfg = TrainConfig::default();
    for (k, v) in [
        ("arch", "lenet_adv:4"),
        ("adv", "pgd:0.3:10:0.075"),
        ("method", "prox"),
        ("rate", "16"),
        ("budget", "global"),
        ("teacher", "runs/teachers/t.safetensors"),
        ("alpha", "0.5"),
        ("schedule", "step:10:0.1"),
    ] {
        cfg.set(k, v)?;
    }
    put(out, "config", "prox", cfg.to_text().as_bytes())?;

    // JSON: a metrics line as training writes it, and a safetensors header.
    let line = r#"{"epoch":4,"lr":0.0009455033,"train_loss":0.449086,"train_acc":0.843283,"test_loss":0.071765,"test_acc":0.978900,"train_adv":"pgd:0.3:10:0.075","test_pgd40_acc":0.883000,"test_pgd40_n":1000,"peak_rss_bytes":267784192,"seconds":147.016,"samples_per_s":406.3}"#;
    EpochMetrics::from_json(line)?;
    put(out, "json", "metrics_line", line.as_bytes())?;
    let header_len = u64::from_le_bytes(model[..8].try_into()?) as usize;
    put(out, "json", "safetensors_header", &model[8..8 + header_len])?;

    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}

/// The raw IDX file, or the decompressed `.gz` one.
fn read_idx(dir: &Path, name: &str) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let raw = dir.join(name);
    if raw.exists() {
        return Ok(std::fs::read(raw)?);
    }
    let gz = dir.join(format!("{name}.gz"));
    Ok(rcc_data::gzip::decompress(&std::fs::read(&gz)?, &gz)?)
}

/// One gzip member holding `data` in stored deflate blocks (RFC 1951 section 3.2.4).
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let chunks: Vec<&[u8]> = data.chunks(65535).collect();
    for (i, c) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = c.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}
