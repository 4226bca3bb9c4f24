//! Times gzip decompression and `Dataset::load` on the real files.
//!
//! `cargo run -p rcc-data --release --example load_speed [DATA_ROOT]`
//! (default: `$RCC_DATA`, else `datasets/`, else `../shared/datasets/`).

use rcc_data::{gzip, Dataset, DatasetKind, Split};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn data_root() -> Option<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .into_iter()
        .chain(std::env::var_os("RCC_DATA").map(PathBuf::from))
        .chain([
            manifest.join("../../datasets"),
            manifest.join("../../../shared/datasets"),
        ]);
    candidates
        .into_iter()
        .find(|d| d.join("mnist").is_dir() || d.join("fashion-mnist").is_dir())
}

fn main() {
    let Some(root) = data_root() else {
        eprintln!("no data root with mnist/ or fashion-mnist/ found");
        std::process::exit(1);
    };
    println!("data root {}", root.display());
    for kind in [DatasetKind::Mnist, DatasetKind::FashionMnist] {
        let gz = root
            .join(kind.dir_name())
            .join("train-images-idx3-ubyte.gz");
        if let Ok(bytes) = std::fs::read(&gz) {
            let mut best = f64::INFINITY;
            let mut out_len = 0;
            for _ in 0..5 {
                let t = Instant::now();
                let out = gzip::decompress(&bytes, &gz).expect("decompress");
                best = best.min(t.elapsed().as_secs_f64());
                out_len = out.len();
            }
            let out = gzip::decompress(&bytes, &gz).expect("decompress");
            let t = Instant::now();
            let c = gzip::crc32(&out);
            println!(
                "{kind}: crc32 {:08x} of {} bytes in {:.1} ms",
                c,
                out.len(),
                t.elapsed().as_secs_f64() * 1e3
            );
            println!(
                "{kind}: inflate {} -> {} bytes in {:.1} ms ({:.0} MB/s out, {:.0} MB/s in)",
                bytes.len(),
                out_len,
                best * 1e3,
                out_len as f64 / best / 1e6,
                bytes.len() as f64 / best / 1e6
            );
        }
        for split in [Split::Train, Split::Test] {
            let t = Instant::now();
            match Dataset::load(kind, split, &root) {
                Ok(ds) => println!(
                    "{kind} {split}: load {} images in {:.1} ms",
                    ds.len(),
                    t.elapsed().as_secs_f64() * 1e3
                ),
                Err(e) => println!("{kind} {split}: {e}"),
            }
        }
        if let Ok(ds) = Dataset::load(kind, Split::Train, &root) {
            let idx: Vec<usize> = (0..128).map(|i| i * 397 % ds.len()).collect();
            let t = Instant::now();
            let reps = 1000;
            for _ in 0..reps {
                std::hint::black_box(ds.batch(&idx, None));
            }
            println!(
                "{kind}: batch(128) {:.1} us",
                t.elapsed().as_secs_f64() * 1e6 / reps as f64
            );
        }
    }
}
