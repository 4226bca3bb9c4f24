//! The real MNIST and Fashion-MNIST files, when present (skipped with a printed reason
//! otherwise). The data root is `$RCC_DATA`, else the workspace's `datasets/`, else the
//! offline mirror `../shared/datasets/`.

mod common;

use rcc_data::{Dataset, DatasetKind, Split};
use std::time::Instant;

fn load_timed(kind: DatasetKind, split: Split, root: &std::path::Path) -> Dataset {
    let t = Instant::now();
    let ds = Dataset::load(kind, split, root).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "{kind} {split}: {} images loaded from {} in {:.1} ms",
        ds.len(),
        root.display(),
        t.elapsed().as_secs_f64() * 1e3
    );
    ds
}

fn class_counts(ds: &Dataset) -> Vec<usize> {
    let mut c = vec![0; 10];
    for &l in &ds.labels {
        c[l as usize] += 1;
    }
    c
}

/// Checks shared by both datasets: sizes, shape, pixel range, and that a batch is the
/// bytes divided by 255.
fn check_common(train: &Dataset, test: &Dataset) {
    for ds in [train, test] {
        assert_eq!(ds.shape, [1, 28, 28]);
        assert_eq!(ds.images.len(), ds.len() * 784);
        assert_eq!(ds.class_names.len(), 10);
        assert_eq!(*ds.images.iter().min().unwrap(), 0);
        assert_eq!(*ds.images.iter().max().unwrap(), 255);
    }
    assert_eq!(train.len(), 60_000);
    assert_eq!(test.len(), 10_000);
    let idx = [0usize, 1, 59_999, 12_345];
    let (x, labels) = train.batch(&idx, None);
    assert_eq!(x.shape(), &[4, 1, 28, 28]);
    for (k, &i) in idx.iter().enumerate() {
        assert_eq!(labels[k], train.labels[i] as usize);
        for (g, &b) in x.data()[k * 784..(k + 1) * 784].iter().zip(train.image(i)) {
            assert_eq!(*g, b as f32 / 255.0);
        }
    }
    assert!(x.data().iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn mnist() {
    let Some(root) = common::data_root(DatasetKind::Mnist, "mnist") else {
        return;
    };
    let train = load_timed(DatasetKind::Mnist, Split::Train, &root);
    let test = load_timed(DatasetKind::Mnist, Split::Test, &root);
    check_common(&train, &test);
    assert_eq!(&train.labels[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert_eq!(&test.labels[..10], &[7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    assert_eq!(
        class_counts(&train),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        class_counts(&test),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    // The first training image (a 5): its ink total and its middle row.
    let first = train.image(0);
    assert_eq!(first.iter().map(|&b| b as u32).sum::<u32>(), 27_525);
    assert_eq!(
        &first[14 * 28 + 13..14 * 28 + 18],
        &[81, 240, 253, 253, 119]
    );
    assert_eq!(train.class_names[5], "5");
}

#[test]
fn fashion_mnist() {
    let Some(root) = common::data_root(DatasetKind::FashionMnist, "fashion_mnist") else {
        return;
    };
    let train = load_timed(DatasetKind::FashionMnist, Split::Train, &root);
    let test = load_timed(DatasetKind::FashionMnist, Split::Test, &root);
    check_common(&train, &test);
    assert_eq!(&train.labels[..10], &[9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    assert_eq!(&test.labels[..10], &[9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);
    assert_eq!(class_counts(&train), [6000; 10]);
    assert_eq!(class_counts(&test), [1000; 10]);
    let first = train.image(0);
    assert_eq!(first.iter().map(|&b| b as u32).sum::<u32>(), 76_247);
    assert_eq!(train.class_names[9], "Ankle boot");
}

#[test]
fn mnist_validation_split_and_batches() {
    let Some(root) = common::data_root(DatasetKind::Mnist, "mnist_validation_split_and_batches")
    else {
        return;
    };
    let full = Dataset::load(DatasetKind::Mnist, Split::Train, &root).unwrap();
    let (train, val) = full.split_validation(5000, 1).unwrap();
    assert_eq!((train.len(), val.len()), (55_000, 5000));
    let counts = class_counts(&val);
    assert!(
        counts.iter().all(|&c| (350..650).contains(&c)),
        "{counts:?}"
    );
    let order = rcc_data::epoch_order(train.len(), 1, 0);
    let t = Instant::now();
    let steps = 100;
    for chunk in order.chunks(128).take(steps) {
        let (x, y) = train.batch(chunk, None);
        assert_eq!((x.shape()[0], y.len()), (128, 128));
    }
    println!(
        "mnist batch of 128: {:.1} us",
        t.elapsed().as_secs_f64() * 1e6 / steps as f64
    );
}
