//! Checkpoint benches (issue 21): the cost of one mid-epoch checkpoint, to set against
//! the training steps between two of them (`checkpoint-every`, 100 by default).
//!
//! Ids: `checkpoint/save/{arch}_adam`: `rcc_nn::checkpoint::save_with` of the model and
//! its Adam state (m and v) as the trainer writes it: serialise, write a temporary file,
//! fsync it, rename it over the last checkpoint, fsync the folder. Throughput in bytes
//! written. The folder is in `$TMPDIR` (or `/tmp`): on another disk the fsyncs cost what
//! that disk makes them cost.
//!
//! Run: `cargo bench --bench checkpoint`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rcc_nn::{checkpoint, Adam, Arch, Model, Optimizer};

fn save(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("rcc-bench-checkpoint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut group = c.benchmark_group("checkpoint");
    group.sample_size(20);
    for arch in [Arch::LenetAdv(4), Arch::LenetAdv(8)] {
        let model = Model::new(arch, 1);
        let n = model.params.len();
        let opt = Optimizer::Adam(Adam::new(n, 0.9, 0.999, 1e-8, 0.0).unwrap());
        let path = dir.join("checkpoint.safetensors");
        checkpoint::save(&path, &model, &opt, 1, &[]).unwrap();
        let bytes = std::fs::metadata(&path).unwrap().len();
        group.throughput(Throughput::Bytes(bytes));
        let id = format!("{}_adam", arch.to_string().replace(':', ""));
        group.bench_function(BenchmarkId::new("save", id), |b| {
            b.iter(|| checkpoint::save(&path, &model, &opt, 1, &[("step", "100")]).unwrap())
        });
    }
    group.finish();
    std::fs::remove_dir_all(&dir).unwrap();
}

criterion_group!(benches, save);
criterion_main!(benches);
