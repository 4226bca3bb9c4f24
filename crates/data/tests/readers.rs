//! The IDX and CIFAR-10 readers and `Dataset::load`, on small files written by the
//! tests: every valid layout, and every malformed case the readers must report. Each
//! error case checks the variant, that the message names the file, and the problem.

mod common;

use common::{cifar_batch, gzip_test_encode, idx_images, idx_labels, TempDir};
use rcc_data::{cifar, idx, Dataset, DatasetKind, Error, Split};
use std::path::{Path, PathBuf};

/// Expects `Error::Format` for `path`; returns `(field, message)`.
fn expect_format<T: std::fmt::Debug>(r: rcc_data::Result<T>, path: &Path) -> (String, String) {
    let e = r.expect_err("expected an error");
    let msg = e.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message does not name {}: {msg}",
        path.display()
    );
    match e {
        Error::Format { path: p, field, .. } => {
            assert_eq!(p, path);
            (field, msg)
        }
        other => panic!("expected Error::Format, got {other:?}"),
    }
}

fn assert_contains(msg: &str, phrases: &[&str]) {
    for p in phrases {
        assert!(msg.contains(p), "`{p}` missing from: {msg}");
    }
}

fn pixels(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 256) as u8).collect()
}

// ---------------------------------------------------------------------------------------
// IDX
// ---------------------------------------------------------------------------------------

#[test]
fn idx_images_valid() {
    let p = Path::new("imgs");
    let px = pixels(3 * 2 * 4);
    let (n, r, c, data) = idx::read_images(&idx_images(3, 2, 4, &px), p).unwrap();
    assert_eq!((n, r, c), (3, 2, 4));
    assert_eq!(data, px);
    let (n, _, _, data) = idx::read_images(&idx_images(0, 28, 28, &[]), p).unwrap();
    assert_eq!((n, data.len()), (0, 0));
}

#[test]
fn idx_labels_valid() {
    let p = Path::new("labels");
    assert_eq!(
        idx::read_labels(&idx_labels(&[3, 1, 4]), p).unwrap(),
        vec![3, 1, 4]
    );
    assert_eq!(
        idx::read_labels(&idx_labels(&[]), p).unwrap(),
        Vec::<u8>::new()
    );
}

#[test]
fn idx_wrong_magic() {
    let p = Path::new("/d/train-images-idx3-ubyte");
    // A label file where images are expected.
    let (f, msg) = expect_format(idx::read_images(&idx_labels(&[1, 2]), p), p);
    assert_eq!(f, "magic number");
    assert_contains(
        &msg,
        &["expected 2051", "0x00000803", "found 2049", "labels magic"],
    );
    // And the other way round.
    let p = Path::new("/d/train-labels-idx1-ubyte");
    let (f, msg) = expect_format(idx::read_labels(&idx_images(1, 1, 1, &[0]), p), p);
    assert_eq!(f, "magic number");
    assert_contains(&msg, &["expected 2049", "found 2051", "images magic"]);
    // Something else entirely.
    let mut b = idx_labels(&[1]);
    b[..4].copy_from_slice(&0xdead_beefu32.to_be_bytes());
    let (_, msg) = expect_format(idx::read_labels(&b, p), p);
    assert_contains(&msg, &["found 3735928559", "0xdeadbeef"]);
}

#[test]
fn idx_gzip_data_given_to_the_reader() {
    let p = Path::new("/d/x");
    let gz = gzip_test_encode(&idx_labels(&[1]));
    let (f, msg) = expect_format(idx::read_labels(&gz, p), p);
    assert_eq!(f, "magic number");
    assert_contains(&msg, &["gzip data"]);
}

#[test]
fn idx_short_files() {
    let p = Path::new("/d/short");
    let (f, msg) = expect_format(idx::read_images(&[0, 0, 8], p), p);
    assert_eq!(f, "magic number");
    assert_contains(&msg, &["only 3 bytes"]);
    let (f, msg) = expect_format(idx::read_images(&idx_images(1, 28, 28, &[])[..12], p), p);
    assert_eq!(f, "header");
    assert_contains(&msg, &["16 bytes", "only 12", "truncated"]);
    let (f, msg) = expect_format(idx::read_labels(&idx_labels(&[])[..6], p), p);
    assert_eq!(f, "header");
    assert_contains(&msg, &["8 bytes", "only 6", "truncated"]);
    let (f, _) = expect_format(idx::read_labels(&[], p), p);
    assert_eq!(f, "magic number");
}

#[test]
fn idx_zero_dimensions() {
    let p = Path::new("/d/zero");
    let (f, msg) = expect_format(idx::read_images(&idx_images(2, 0, 28, &[]), p), p);
    assert_eq!(f, "dimensions");
    assert_contains(&msg, &["0x28"]);
}

#[test]
fn idx_truncated() {
    let p = Path::new("/d/trunc-images");
    let mut b = idx_images(3, 28, 28, &pixels(3 * 784));
    b.truncate(16 + 2 * 784 + 100);
    let (f, msg) = expect_format(idx::read_images(&b, p), p);
    assert_eq!(f, "size");
    assert_contains(
        &msg,
        &[
            "3 images of 28x28",
            "2368 bytes",
            &format!("{} bytes", b.len()),
            "only 2 whole images",
            "truncated",
        ],
    );
    let p = Path::new("/d/trunc-labels");
    let mut b = idx_labels(&[1, 2, 3, 4]);
    b.pop();
    let (f, msg) = expect_format(idx::read_labels(&b, p), p);
    assert_eq!(f, "size");
    assert_contains(&msg, &["4 labels", "only 3 whole labels", "truncated"]);
}

#[test]
fn idx_trailing_data() {
    let p = Path::new("/d/long-images");
    let mut b = idx_images(1, 2, 2, &[1, 2, 3, 4]);
    b.extend_from_slice(&[9; 5]);
    let (f, msg) = expect_format(idx::read_images(&b, p), p);
    assert_eq!(f, "size");
    assert_contains(&msg, &["5 bytes of trailing data", "after the last image"]);
    let p = Path::new("/d/long-labels");
    let mut b = idx_labels(&[1, 2]);
    b.push(0);
    let (f, msg) = expect_format(idx::read_labels(&b, p), p);
    assert_eq!(f, "size");
    assert_contains(&msg, &["1 bytes of trailing data", "after the last label"]);
}

#[test]
fn idx_huge_header_counts_are_checked_before_allocating() {
    let p = Path::new("/d/huge");
    // n * rows * cols overflows usize.
    let b = idx_images(u32::MAX, u32::MAX, u32::MAX, &[0; 64]);
    let (f, msg) = expect_format(idx::read_images(&b, p), p);
    assert_eq!(f, "header");
    assert_contains(&msg, &["4294967295 images", "corrupt"]);
    // Large but representable: reported as truncated, nothing allocated.
    let b = idx_images(u32::MAX, 28, 28, &[0; 784]);
    let (f, msg) = expect_format(idx::read_images(&b, p), p);
    assert_eq!(f, "size");
    assert_contains(&msg, &["only 1 whole images", "truncated"]);
    let mut b = idx_labels(&[1]);
    b[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    let (f, msg) = expect_format(idx::read_labels(&b, p), p);
    assert_eq!(f, "size");
    assert_contains(&msg, &["4294967295 labels", "truncated"]);
}

// ---------------------------------------------------------------------------------------
// Dataset::load on IDX files
// ---------------------------------------------------------------------------------------

/// Writes a small MNIST-layout split (`n` 28x28 images, the given labels) under
/// `dir/<kind>/`; `gz` selects the `.gz` names.
fn write_idx_split(
    dir: &TempDir,
    kind: DatasetKind,
    stem: &str,
    images: &[u8],
    n: u32,
    labels: &[u8],
    gz: bool,
) -> (PathBuf, PathBuf) {
    let (ib, lb) = (idx_images(n, 28, 28, images), idx_labels(labels));
    let (ib, lb, suffix) = if gz {
        (gzip_test_encode(&ib), gzip_test_encode(&lb), ".gz")
    } else {
        (ib, lb, "")
    };
    let d = kind.dir_name();
    (
        dir.write(&format!("{d}/{stem}-images-idx3-ubyte{suffix}"), &ib),
        dir.write(&format!("{d}/{stem}-labels-idx1-ubyte{suffix}"), &lb),
    )
}

#[test]
fn load_raw_and_gz_idx() {
    for gz in [false, true] {
        for kind in [DatasetKind::Mnist, DatasetKind::FashionMnist] {
            let dir = TempDir::new("load-idx");
            let px = pixels(3 * 784);
            write_idx_split(&dir, kind, "train", &px, 3, &[5, 0, 9], gz);
            write_idx_split(&dir, kind, "t10k", &px[..784], 1, &[7], gz);
            let train = Dataset::load(kind, Split::Train, dir.path()).unwrap();
            assert_eq!(train.kind, kind);
            assert_eq!(train.shape, [1, 28, 28]);
            assert_eq!(train.len(), 3);
            assert_eq!(train.labels, vec![5, 0, 9]);
            assert_eq!(train.images, px);
            assert_eq!(train.image(2), &px[2 * 784..]);
            assert_eq!(train.class_names, kind.default_class_names());
            let test = Dataset::load(kind, Split::Test, dir.path()).unwrap();
            assert_eq!((test.len(), test.labels[0]), (1, 7));
        }
    }
    assert_eq!(
        DatasetKind::FashionMnist.default_class_names()[9],
        "Ankle boot"
    );
    assert_eq!(DatasetKind::Mnist.default_class_names()[3], "3");
}

#[test]
fn load_prefers_the_raw_file() {
    let dir = TempDir::new("prefer-raw");
    let px = pixels(2 * 784);
    write_idx_split(&dir, DatasetKind::Mnist, "train", &px, 2, &[1, 2], false);
    write_idx_split(&dir, DatasetKind::Mnist, "train", &px, 2, &[3, 4], true);
    let ds = Dataset::load(DatasetKind::Mnist, Split::Train, dir.path()).unwrap();
    assert_eq!(ds.labels, vec![1, 2]);
    // Mixed: raw images with gzip labels.
    std::fs::remove_file(dir.path().join("mnist/train-labels-idx1-ubyte")).unwrap();
    let ds = Dataset::load(DatasetKind::Mnist, Split::Train, dir.path()).unwrap();
    assert_eq!(ds.labels, vec![3, 4]);
}

#[test]
fn load_wrong_dimensions() {
    let dir = TempDir::new("dims");
    let p = dir.write(
        "mnist/train-images-idx3-ubyte",
        &idx_images(2, 32, 32, &pixels(2 * 1024)),
    );
    dir.write("mnist/train-labels-idx1-ubyte", &idx_labels(&[1, 2]));
    let (f, msg) = expect_format(
        Dataset::load(DatasetKind::Mnist, Split::Train, dir.path()),
        &p,
    );
    assert_eq!(f, "dimensions");
    assert_contains(&msg, &["mnist images are 28x28", "32x32"]);
}

#[test]
fn load_count_mismatch_names_both_files() {
    let dir = TempDir::new("count");
    let (ip, lp) = write_idx_split(
        &dir,
        DatasetKind::FashionMnist,
        "t10k",
        &pixels(3 * 784),
        3,
        &[1, 2, 3, 4],
        true,
    );
    let (f, msg) = expect_format(
        Dataset::load(DatasetKind::FashionMnist, Split::Test, dir.path()),
        &ip,
    );
    assert_eq!(f, "count");
    assert_contains(&msg, &["3 images", "4 labels", &lp.display().to_string()]);
}

#[test]
fn load_label_out_of_range_names_the_index() {
    let dir = TempDir::new("label-range");
    let (_, lp) = write_idx_split(
        &dir,
        DatasetKind::Mnist,
        "train",
        &pixels(4 * 784),
        4,
        &[1, 9, 10, 200],
        false,
    );
    let (f, msg) = expect_format(
        Dataset::load(DatasetKind::Mnist, Split::Train, dir.path()),
        &lp,
    );
    assert_eq!(f, "label 2");
    assert_contains(&msg, &["expected a class 0..=9", "found 10"]);
}

#[test]
fn load_truncated_and_corrupt_files() {
    let dir = TempDir::new("trunc");
    let mut ib = idx_images(3, 28, 28, &pixels(3 * 784));
    ib.truncate(ib.len() - 1);
    let ip = dir.write("mnist/train-images-idx3-ubyte", &ib);
    dir.write("mnist/train-labels-idx1-ubyte", &idx_labels(&[1, 2, 3]));
    let (f, msg) = expect_format(
        Dataset::load(DatasetKind::Mnist, Split::Train, dir.path()),
        &ip,
    );
    assert_eq!(f, "size");
    assert_contains(&msg, &["truncated"]);

    // A corrupt .gz is reported against the .gz file.
    let dir = TempDir::new("corrupt-gz");
    let (ip, _) = write_idx_split(
        &dir,
        DatasetKind::Mnist,
        "t10k",
        &pixels(784),
        1,
        &[1],
        true,
    );
    let mut b = std::fs::read(&ip).unwrap();
    let n = b.len();
    b[n - 6] ^= 0x10; // inside the CRC-32
    std::fs::write(&ip, &b).unwrap();
    let (f, msg) = expect_format(
        Dataset::load(DatasetKind::Mnist, Split::Test, dir.path()),
        &ip,
    );
    assert_eq!(f, "CRC-32");
    assert_contains(&msg, &[".gz", "corrupt"]);
    // A truncated .gz likewise.
    std::fs::write(&ip, &b[..n / 2]).unwrap();
    let (_, msg) = expect_format(
        Dataset::load(DatasetKind::Mnist, Split::Test, dir.path()),
        &ip,
    );
    assert_contains(&msg, &["truncated"]);
}

#[test]
fn load_missing_files_say_how_to_fetch_them() {
    let dir = TempDir::new("missing");
    for (kind, flag) in [
        (DatasetKind::Mnist, "--dataset mnist"),
        (DatasetKind::FashionMnist, "--dataset fashion-mnist"),
        (DatasetKind::Cifar10, "--dataset cifar10"),
    ] {
        let e = Dataset::load(kind, Split::Train, dir.path()).unwrap_err();
        let msg = e.to_string();
        assert_contains(
            &msg,
            &[&format!("cargo xtask fetch-data {flag}"), "not found"],
        );
        match e {
            Error::Missing {
                path,
                dataset,
                hint,
            } => {
                assert!(
                    path.starts_with(dir.path().join(kind.dir_name())),
                    "{path:?}"
                );
                assert!(msg.contains(&path.display().to_string()));
                assert_eq!(dataset, kind.to_string());
                assert!(hint.starts_with(&format!("run `cargo xtask fetch-data {flag}`")));
            }
            other => panic!("expected Error::Missing, got {other:?}"),
        }
    }
    // Images present, labels missing: the labels file is named.
    dir.write(
        "mnist/t10k-images-idx3-ubyte.gz",
        &gzip_test_encode(&idx_images(1, 28, 28, &pixels(784))),
    );
    let e = Dataset::load(DatasetKind::Mnist, Split::Test, dir.path()).unwrap_err();
    assert!(matches!(&e, Error::Missing { path, .. } if path.ends_with("t10k-labels-idx1-ubyte")));
    assert_contains(&e.to_string(), &["t10k-labels-idx1-ubyte.gz"]);
}

#[test]
fn load_unreadable_file_is_an_io_error() {
    let dir = TempDir::new("io");
    // A directory where the image file should be: it exists but cannot be read.
    std::fs::create_dir_all(dir.path().join("mnist/train-images-idx3-ubyte")).unwrap();
    let e = Dataset::load(DatasetKind::Mnist, Split::Train, dir.path()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("train-images-idx3-ubyte") && msg.contains("cannot read"),
        "{msg}"
    );
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert!(std::error::Error::source(&e).is_some());
}

// ---------------------------------------------------------------------------------------
// CIFAR-10
// ---------------------------------------------------------------------------------------

fn px(i: usize, j: usize) -> u8 {
    (i * 31 + j * 7 + j / 1024) as u8
}

#[test]
fn cifar_batch_valid() {
    let p = Path::new("/c/data_batch_1.bin");
    let b = cifar_batch(&[3, 0, 9], px);
    let (images, labels) = cifar::read_batch(&b, p).unwrap();
    assert_eq!(labels, vec![3, 0, 9]);
    assert_eq!(images.len(), 3 * 3072);
    for i in 0..3 {
        // Record i: label byte, then R, G, B planes: copied as CHW.
        assert_eq!(
            &images[i * 3072..(i + 1) * 3072],
            &b[i * 3073 + 1..(i + 1) * 3073]
        );
        assert_eq!(images[i * 3072 + 1024 + 5], px(i, 1024 + 5)); // G plane, pixel 5
    }
}

#[test]
fn cifar_size_not_a_multiple_of_the_record() {
    let p = Path::new("/c/data_batch_2.bin");
    let b = cifar_batch(&[1, 2, 3], px);
    let (f, msg) = expect_format(cifar::read_batch(&b[..b.len() - 1], p), p);
    assert_eq!(f, "size");
    assert_contains(
        &msg,
        &[
            "9218 bytes",
            "not a multiple of the 3073-byte record",
            "2 whole records and 3072 bytes over",
        ],
    );
    let (f, msg) = expect_format(cifar::read_batch(&[], p), p);
    assert_eq!(f, "size");
    assert_contains(&msg, &["empty"]);
    let (f, _) = expect_format(cifar::read_batch(&[0; 100], p), p);
    assert_eq!(f, "size");
}

#[test]
fn cifar_label_out_of_range() {
    let p = Path::new("/c/test_batch.bin");
    let b = cifar_batch(&[1, 9, 10], px);
    let (f, msg) = expect_format(cifar::read_batch(&b, p), p);
    assert_eq!(f, "label of record 2");
    assert_contains(
        &msg,
        &["expected a class 0..=9", "found 10", "byte offset 6146"],
    );
}

#[test]
fn cifar_meta() {
    let text = "airplane\nautomobile\r\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n\n";
    assert_eq!(
        cifar::read_meta(text),
        DatasetKind::Cifar10.default_class_names()
    );
    assert_eq!(cifar::read_meta("  a \n\n b\n"), vec!["a", "b"]);
    assert!(cifar::read_meta("").is_empty());
}

/// Writes a CIFAR-10 layout with `per` records in each batch file.
fn write_cifar(dir: &TempDir, per: usize, meta: Option<&str>) {
    for b in 1..=5 {
        let labels: Vec<u8> = (0..per).map(|i| ((b + i) % 10) as u8).collect();
        dir.write(
            &format!("cifar-10-batches-bin/data_batch_{b}.bin"),
            &cifar_batch(&labels, |i, j| px(b * 100 + i, j)),
        );
    }
    dir.write(
        "cifar-10-batches-bin/test_batch.bin",
        &cifar_batch(&[4, 2], |i, j| px(900 + i, j)),
    );
    if let Some(m) = meta {
        dir.write("cifar-10-batches-bin/batches.meta.txt", m.as_bytes());
    }
}

#[test]
fn cifar_load_train_and_test() {
    let dir = TempDir::new("cifar");
    let names: String = (0..10).map(|i| format!("class{i}\n")).collect::<String>() + "\n";
    write_cifar(&dir, 3, Some(&names));
    let train = Dataset::load(DatasetKind::Cifar10, Split::Train, dir.path()).unwrap();
    assert_eq!(train.shape, [3, 32, 32]);
    assert_eq!(train.len(), 15);
    assert_eq!(train.images.len(), 15 * 3072);
    // Batch order 1..5, records in file order.
    assert_eq!(&train.labels[..4], &[1, 2, 3, 2]);
    assert_eq!(train.image(4)[100], px(201, 100));
    assert_eq!(train.class_names[7], "class7");
    let test = Dataset::load(DatasetKind::Cifar10, Split::Test, dir.path()).unwrap();
    assert_eq!(test.labels, vec![4, 2]);
    assert_eq!(test.image(1)[3000], px(901, 3000));

    // Without batches.meta.txt the built-in names are used.
    std::fs::remove_file(dir.path().join("cifar-10-batches-bin/batches.meta.txt")).unwrap();
    let test = Dataset::load(DatasetKind::Cifar10, Split::Test, dir.path()).unwrap();
    assert_eq!(test.class_names[0], "airplane");
    assert_eq!(test.class_names[9], "truck");
}

#[test]
fn cifar_load_errors() {
    let dir = TempDir::new("cifar-bad");
    write_cifar(&dir, 2, Some("a\nb\nc\n"));
    let meta = dir.path().join("cifar-10-batches-bin/batches.meta.txt");
    let (f, msg) = expect_format(
        Dataset::load(DatasetKind::Cifar10, Split::Test, dir.path()),
        &meta,
    );
    assert_eq!(f, "class names");
    assert_contains(&msg, &["expected 10 class names", "found 3"]);
    std::fs::write(&meta, [0xff, 0xfe, 0x00]).unwrap();
    let (_, msg) = expect_format(
        Dataset::load(DatasetKind::Cifar10, Split::Test, dir.path()),
        &meta,
    );
    assert_contains(&msg, &["UTF-8"]);
    std::fs::remove_file(&meta).unwrap();

    // A bad batch file is named.
    let b3 = dir.path().join("cifar-10-batches-bin/data_batch_3.bin");
    std::fs::write(&b3, cifar_batch(&[1, 11], px)).unwrap();
    let (f, msg) = expect_format(
        Dataset::load(DatasetKind::Cifar10, Split::Train, dir.path()),
        &b3,
    );
    assert_eq!(f, "label of record 1");
    assert_contains(&msg, &["found 11"]);

    // A missing one too, with the fetch command.
    std::fs::remove_file(&b3).unwrap();
    let e = Dataset::load(DatasetKind::Cifar10, Split::Train, dir.path()).unwrap_err();
    assert!(
        matches!(&e, Error::Missing { path, .. } if *path == b3),
        "{e:?}"
    );
    assert_contains(
        &e.to_string(),
        &[
            "data_batch_3.bin",
            "cargo xtask fetch-data --dataset cifar10",
        ],
    );
}

// ---------------------------------------------------------------------------------------
// Names and the error type
// ---------------------------------------------------------------------------------------

#[test]
fn dataset_kind_names() {
    for kind in DatasetKind::ALL {
        assert_eq!(kind.to_string().parse::<DatasetKind>().unwrap(), kind);
        assert_eq!(kind.num_classes(), 10);
        assert_eq!(kind.default_class_names().len(), 10);
    }
    assert_eq!(DatasetKind::Mnist.to_string(), "mnist");
    assert_eq!(DatasetKind::FashionMnist.to_string(), "fashion-mnist");
    assert_eq!(DatasetKind::Cifar10.to_string(), "cifar10");
    for alias in ["MNIST", " mnist "] {
        assert_eq!(alias.parse::<DatasetKind>().unwrap(), DatasetKind::Mnist);
    }
    for alias in ["fashion_mnist", "FashionMNIST", "fashionmnist"] {
        assert_eq!(
            alias.parse::<DatasetKind>().unwrap(),
            DatasetKind::FashionMnist
        );
    }
    for alias in ["cifar-10", "CIFAR10", "cifar_10"] {
        assert_eq!(alias.parse::<DatasetKind>().unwrap(), DatasetKind::Cifar10);
    }
    let e = "imagenet".parse::<DatasetKind>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown dataset `imagenet`: expected mnist, fashion-mnist or cifar10"
    );
    assert_eq!(DatasetKind::Mnist.dir_name(), "mnist");
    assert_eq!(DatasetKind::FashionMnist.dir_name(), "fashion-mnist");
    assert_eq!(DatasetKind::Cifar10.dir_name(), "cifar-10-batches-bin");
    assert_eq!(DatasetKind::Mnist.image_shape(), [1, 28, 28]);
    assert_eq!(DatasetKind::Cifar10.image_shape(), [3, 32, 32]);
    assert_eq!("train".parse::<Split>().unwrap(), Split::Train);
    assert_eq!("Test".parse::<Split>().unwrap(), Split::Test);
    assert_eq!("t10k".parse::<Split>().unwrap(), Split::Test);
    assert!("val".parse::<Split>().is_err());
    assert_eq!(Split::Test.to_string(), "test");
}

#[test]
fn error_display() {
    let e = Error::Format {
        path: "/x/f".into(),
        field: "magic number".into(),
        problem: "expected 1, found 2".into(),
    };
    assert_eq!(e.to_string(), "/x/f: bad magic number: expected 1, found 2");
    let e = Error::Missing {
        path: "/x/mnist/train-images-idx3-ubyte".into(),
        dataset: "mnist".into(),
        hint: "run `cargo xtask fetch-data --dataset mnist`".into(),
    };
    assert_eq!(
        e.to_string(),
        "mnist data file not found: /x/mnist/train-images-idx3-ubyte; run `cargo xtask fetch-data --dataset mnist`"
    );
    let e = Error::Io {
        path: "/x/g".into(),
        source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
    };
    assert_eq!(e.to_string(), "/x/g: cannot read: denied");
    assert!(std::error::Error::source(&e).is_some());
    let e = Error::Invalid {
        op: "split_validation",
        problem: "too many".into(),
    };
    assert_eq!(e.to_string(), "split_validation: too many");
}
