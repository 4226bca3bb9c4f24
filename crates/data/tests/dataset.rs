//! `Dataset` in memory: indexing, subsets, the validation split, `epoch_order` and
//! `batch` with and without augmentation (against an independent padded-crop-and-flip
//! reference).

mod common;

use common::TestRng;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rcc_data::{epoch_order, Dataset, DatasetKind, Error, AUGMENT_PAD};
use std::collections::HashSet;

/// `n` images of `shape` with pixels in 1..=255 (so a 0 can only come from padding) and
/// labels `i % 10`.
fn synthetic(kind: DatasetKind, shape: [usize; 3], n: usize, seed: u64) -> Dataset {
    let per: usize = shape.iter().product();
    let mut rng = TestRng(seed | 1);
    Dataset {
        kind,
        shape,
        images: (0..n * per).map(|_| 1 + (rng.next() % 255) as u8).collect(),
        labels: (0..n).map(|i| (i % 10) as u8).collect(),
        class_names: kind.default_class_names(),
    }
}

#[test]
fn len_image_and_subset() {
    let ds = synthetic(DatasetKind::Mnist, [1, 28, 28], 20, 1);
    assert_eq!(ds.len(), 20);
    assert!(!ds.is_empty());
    assert_eq!(ds.image_len(), 784);
    assert_eq!(ds.image(3), &ds.images[3 * 784..4 * 784]);
    let sub = ds.subset(&[7, 2, 7]);
    assert_eq!(sub.len(), 3);
    assert_eq!(sub.labels, vec![7, 2, 7]);
    assert_eq!(sub.image(0), ds.image(7));
    assert_eq!(sub.image(1), ds.image(2));
    assert_eq!(sub.image(2), ds.image(7));
    assert_eq!((sub.kind, sub.shape), (ds.kind, ds.shape));
    assert_eq!(sub.class_names, ds.class_names);
    let empty = ds.subset(&[]);
    assert!(empty.is_empty());
    assert_eq!(empty.images.len(), 0);
}

#[test]
#[should_panic(expected = "out of range")]
fn image_index_out_of_range_panics() {
    let ds = synthetic(DatasetKind::Mnist, [1, 28, 28], 2, 1);
    let _ = ds.image(2);
}

#[test]
fn split_validation_is_deterministic_disjoint_and_complete() {
    let ds = synthetic(DatasetKind::Mnist, [1, 4, 4], 1000, 2);
    // Tag each image by its index so the parts can be traced back.
    let mut tagged = ds.clone();
    for i in 0..tagged.len() {
        tagged.images[i * 16..i * 16 + 2].copy_from_slice(&(i as u16).to_le_bytes());
    }
    let index_of =
        |d: &Dataset, k: usize| u16::from_le_bytes([d.image(k)[0], d.image(k)[1]]) as usize;
    let (train, val) = tagged.split_validation(100, 7).unwrap();
    assert_eq!((train.len(), val.len()), (900, 100));
    let ti: Vec<usize> = (0..train.len()).map(|k| index_of(&train, k)).collect();
    let vi: Vec<usize> = (0..val.len()).map(|k| index_of(&val, k)).collect();
    // Original order kept, disjoint, together everything.
    assert!(ti.windows(2).all(|w| w[0] < w[1]));
    assert!(vi.windows(2).all(|w| w[0] < w[1]));
    let all: HashSet<usize> = ti.iter().chain(&vi).copied().collect();
    assert_eq!(all.len(), 1000);
    for (k, &i) in vi.iter().enumerate() {
        assert_eq!(val.labels[k], tagged.labels[i]);
        assert_eq!(val.image(k), tagged.image(i));
    }
    // Not simply the last 100.
    assert!(vi.iter().any(|&i| i < 900));
    // Same seed, same split; another seed, another split.
    let (train2, val2) = tagged.split_validation(100, 7).unwrap();
    assert_eq!((&train2, &val2), (&train, &val));
    let (_, val3) = tagged.split_validation(100, 8).unwrap();
    assert_ne!(val3, val);
}

#[test]
fn split_validation_edge_cases() {
    let ds = synthetic(DatasetKind::Cifar10, [3, 2, 2], 10, 3);
    let (t, v) = ds.split_validation(0, 1).unwrap();
    assert_eq!((t.len(), v.len()), (10, 0));
    assert_eq!(t, ds);
    let (t, v) = ds.split_validation(10, 1).unwrap();
    assert_eq!((t.len(), v.len()), (0, 10));
    assert_eq!(v, ds);
    let e = ds.split_validation(11, 1).unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("11 validation images") && msg.contains("only 10"),
        "{msg}"
    );
}

#[test]
fn epoch_order_is_a_deterministic_permutation() {
    for n in [0usize, 1, 2, 3, 10, 1000, 60_000] {
        let o = epoch_order(n, 42, 3);
        let mut sorted = o.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "n = {n}");
        assert_eq!(epoch_order(n, 42, 3), o);
    }
    // Epochs and seeds give different orders.
    let base = epoch_order(1000, 1, 0);
    let mut seen = HashSet::new();
    for e in 0..20 {
        assert!(
            seen.insert(epoch_order(1000, 1, e)),
            "epoch {e} repeats an order"
        );
    }
    assert_ne!(epoch_order(1000, 2, 0), base);
    // A shuffle, not a near-identity.
    let fixed = base.iter().enumerate().filter(|(i, &v)| *i == v).count();
    assert!(fixed < 20, "{fixed} fixed points");
}

#[test]
fn epoch_order_is_independent_of_threads_and_history() {
    // Computed on other threads, in another order, it is the same.
    let expected: Vec<Vec<usize>> = (0..6).map(|e| epoch_order(5000, 9, e)).collect();
    let handles: Vec<_> = (0..6)
        .rev()
        .map(|e| std::thread::spawn(move || (e, epoch_order(5000, 9, e))))
        .collect();
    for h in handles {
        let (e, o) = h.join().unwrap();
        assert_eq!(o, expected[e]);
    }
}

#[test]
fn epoch_order_is_pinned() {
    // Resumed runs rely on the order never changing between builds. If this fails, the
    // shuffle (or the rand version behind StdRng) changed: runs are no longer
    // reproducible across the change.
    assert_eq!(epoch_order(10, 42, 0), PINNED_42_0, "epoch 0");
    assert_eq!(epoch_order(10, 42, 1), PINNED_42_1, "epoch 1");
}

const PINNED_42_0: [usize; 10] = [2, 5, 3, 7, 1, 4, 9, 8, 0, 6];
const PINNED_42_1: [usize; 10] = [5, 1, 0, 8, 9, 4, 7, 2, 6, 3];

#[test]
fn batch_without_augmentation_is_exact() {
    for (kind, shape) in [
        (DatasetKind::Mnist, [1, 28, 28]),
        (DatasetKind::Cifar10, [3, 32, 32]),
    ] {
        let mut ds = synthetic(kind, shape, 30, 4);
        ds.images[0] = 0;
        ds.images[1] = 255;
        let idx = [0usize, 29, 5, 5, 17];
        let (x, labels) = ds.batch(&idx, None);
        assert_eq!(x.shape(), &[5, shape[0], shape[1], shape[2]]);
        assert_eq!(labels, vec![0, 9, 5, 5, 7]);
        let per = ds.image_len();
        for (k, &i) in idx.iter().enumerate() {
            let got = &x.data()[k * per..(k + 1) * per];
            for (g, &b) in got.iter().zip(ds.image(i)) {
                assert_eq!(*g, b as f32 / 255.0);
            }
        }
        assert_eq!(x.data()[0], 0.0);
        assert_eq!(x.data()[1], 1.0);
        let (x, labels) = ds.batch(&[], None);
        assert_eq!(x.shape(), &[0, shape[0], shape[1], shape[2]]);
        assert!(labels.is_empty());
    }
}

#[test]
#[should_panic(expected = "out of range")]
fn batch_index_out_of_range_panics() {
    let ds = synthetic(DatasetKind::Mnist, [1, 28, 28], 3, 1);
    let _ = ds.batch(&[0, 3], None);
}

/// The augmentation as torchvision defines it: zero-pad by `AUGMENT_PAD`, crop `H x W`
/// at `(oy, ox)` of the padded image, then mirror if `flip`.
fn reference_augment(
    img: &[u8],
    [c, h, w]: [usize; 3],
    oy: usize,
    ox: usize,
    flip: bool,
) -> Vec<f32> {
    let p = AUGMENT_PAD;
    let (ph, pw) = (h + 2 * p, w + 2 * p);
    let mut padded = vec![0u8; c * ph * pw];
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                padded[(ch * ph + y + p) * pw + x + p] = img[(ch * h + y) * w + x];
            }
        }
    }
    let mut out = vec![0f32; c * h * w];
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                let v = padded[(ch * ph + y + oy) * pw + x + ox];
                let xo = if flip { w - 1 - x } else { x };
                out[(ch * h + y) * w + xo] = v as f32 / 255.0;
            }
        }
    }
    out
}

#[test]
fn augmentation_is_a_padded_crop_and_flip() {
    for (kind, shape) in [
        (DatasetKind::Cifar10, [3, 32, 32]),
        (DatasetKind::Cifar10, [3, 8, 8]),
        (DatasetKind::Mnist, [1, 28, 28]),
    ] {
        let ds = synthetic(kind, shape, 8, 5);
        let per = ds.image_len();
        let mut rng = StdRng::seed_from_u64(123);
        let (mut oys, mut oxs, mut flips) = (HashSet::new(), HashSet::new(), [0usize; 2]);
        let mut draws = 0;
        for _ in 0..60 {
            let idx: Vec<usize> = (0..8).collect();
            let (x, labels) = ds.batch(&idx, Some(&mut rng));
            assert_eq!(x.shape(), &[8, shape[0], shape[1], shape[2]]);
            assert_eq!(labels, (0..8).collect::<Vec<_>>());
            assert!(x.data().iter().all(|v| (0.0..=1.0).contains(v)));
            for (k, &i) in idx.iter().enumerate() {
                let got = &x.data()[k * per..(k + 1) * per];
                let mut matches = Vec::new();
                for oy in 0..=2 * AUGMENT_PAD {
                    for ox in 0..=2 * AUGMENT_PAD {
                        for flip in [false, true] {
                            if reference_augment(ds.image(i), shape, oy, ox, flip) == got {
                                matches.push((oy, ox, flip));
                            }
                        }
                    }
                }
                assert_eq!(matches.len(), 1, "image {k}: {matches:?}");
                let (oy, ox, flip) = matches[0];
                oys.insert(oy);
                oxs.insert(ox);
                flips[flip as usize] += 1;
                draws += 1;
            }
        }
        assert_eq!(oys.len(), 9, "vertical offsets seen: {oys:?}");
        assert_eq!(oxs.len(), 9, "horizontal offsets seen: {oxs:?}");
        let frac = flips[1] as f64 / draws as f64;
        assert!((0.4..0.6).contains(&frac), "flip rate {frac}");
    }
}

#[test]
fn augmentation_is_reproducible_from_the_rng() {
    let ds = synthetic(DatasetKind::Cifar10, [3, 32, 32], 16, 6);
    let idx: Vec<usize> = (0..16).rev().collect();
    let mut a = StdRng::seed_from_u64(77);
    let mut b = StdRng::seed_from_u64(77);
    let (xa, la) = ds.batch(&idx, Some(&mut a));
    let (xb, lb) = ds.batch(&idx, Some(&mut b));
    assert_eq!(xa, xb);
    assert_eq!(la, lb);
    // The generator advanced: the next batch is augmented differently.
    let (xa2, _) = ds.batch(&idx, Some(&mut a));
    assert_ne!(xa2, xa);
    // And it is not the plain batch.
    let (plain, _) = ds.batch(&idx, None);
    assert_ne!(plain, xa);
}
