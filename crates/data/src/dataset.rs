//! [`Dataset`]: a whole split of a dataset in memory as bytes, and the batches the
//! training loop draws from it.

use crate::error::{format_err, Error, Result};
use crate::{cifar, gzip, idx};
use rand::rngs::StdRng;
use rand::RngCore;
use rand::{Rng, SeedableRng};
use rcc_tensor::Tensor;
use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The datasets rcc trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetKind {
    /// MNIST handwritten digits: 1x28x28, 60,000 train and 10,000 test images.
    Mnist,
    /// Fashion-MNIST (Zalando): same layout and sizes as MNIST, clothing classes.
    FashionMnist,
    /// CIFAR-10 (binary version): 3x32x32, 50,000 train and 10,000 test images.
    Cifar10,
}

impl DatasetKind {
    /// Every kind, in a fixed order.
    pub const ALL: [DatasetKind; 3] = [
        DatasetKind::Mnist,
        DatasetKind::FashionMnist,
        DatasetKind::Cifar10,
    ];

    /// The name used on the command line and in messages: `mnist`, `fashion-mnist`,
    /// `cifar10`.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Cifar10 => "cifar10",
        }
    }

    /// The directory under the data root that holds this dataset's files.
    pub fn dir_name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Cifar10 => "cifar-10-batches-bin",
        }
    }

    /// Number of classes (10 for all three).
    pub fn num_classes(self) -> usize {
        10
    }

    /// Shape of one image as `[channels, height, width]`.
    pub fn image_shape(self) -> [usize; 3] {
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist => [1, 28, 28],
            DatasetKind::Cifar10 => [3, 32, 32],
        }
    }

    /// The built-in class names, in label order. (CIFAR-10 loads them from
    /// `batches.meta.txt` when present; these are the same names.)
    pub fn default_class_names(self) -> Vec<String> {
        let names: &[&str] = match self {
            DatasetKind::Mnist => &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            DatasetKind::FashionMnist => &[
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
            DatasetKind::Cifar10 => &cifar::CLASS_NAMES,
        };
        names.iter().map(|s| s.to_string()).collect()
    }

    /// The command that downloads this dataset.
    pub fn fetch_hint(self) -> String {
        format!("run `cargo xtask fetch-data --dataset {}`", self.name())
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that [`DatasetKind`] or [`Split`] does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseNameError {
    /// What was being parsed: `"dataset"` or `"split"`.
    pub what: &'static str,
    /// The rejected input.
    pub input: String,
    /// The accepted names.
    pub expected: &'static str,
}

impl fmt::Display for ParseNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} `{}`: expected {}",
            self.what, self.input, self.expected
        )
    }
}

impl std::error::Error for ParseNameError {}

impl FromStr for DatasetKind {
    type Err = ParseNameError;

    /// Accepts the canonical names case-insensitively, and `_` or no separator for
    /// `-` (`fashion_mnist`, `fashionmnist`, `cifar-10`).
    fn from_str(s: &str) -> std::result::Result<DatasetKind, ParseNameError> {
        let key: String = s
            .trim()
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect();
        match key.as_str() {
            "mnist" => Ok(DatasetKind::Mnist),
            "fashionmnist" => Ok(DatasetKind::FashionMnist),
            "cifar10" => Ok(DatasetKind::Cifar10),
            _ => Err(ParseNameError {
                what: "dataset",
                input: s.to_string(),
                expected: "mnist, fashion-mnist or cifar10",
            }),
        }
    }
}

/// Which half of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = ParseNameError;

    fn from_str(s: &str) -> std::result::Result<Split, ParseNameError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "train" => Ok(Split::Train),
            "test" | "t10k" => Ok(Split::Test),
            _ => Err(ParseNameError {
                what: "split",
                input: s.to_string(),
                expected: "train or test",
            }),
        }
    }
}

/// One split of a dataset, held as the original bytes.
///
/// Images are kept as `u8` (47 MB for MNIST train, 150 MB for CIFAR-10 train, a quarter
/// of f32) and converted to f32 a batch at a time by [`Dataset::batch`].
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub kind: DatasetKind,
    /// Shape of one image, `[C, H, W]`.
    pub shape: [usize; 3],
    /// All images, `N * C * H * W` bytes: image after image, each CHW row-major.
    pub images: Vec<u8>,
    /// One label per image, each below `class_names.len()`.
    pub labels: Vec<u8>,
    /// Class names in label order.
    pub class_names: Vec<String>,
}

/// Pixel byte to f32 in [0, 1]: `LUT[b] == b as f32 / 255.0`.
const LUT: [f32; 256] = {
    let mut t = [0.0f32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i as f32 / 255.0;
        i += 1;
    }
    t
};

/// Zero padding of the augmentation's random crop, in pixels on each side.
pub const AUGMENT_PAD: usize = 4;

impl Dataset {
    /// Loads a split from the data root `dir`, laid out as:
    ///
    /// ```text
    /// dir/mnist/{train,t10k}-images-idx3-ubyte[.gz]      dir/mnist/{train,t10k}-labels-idx1-ubyte[.gz]
    /// dir/fashion-mnist/ (the same four names)
    /// dir/cifar-10-batches-bin/data_batch_{1..5}.bin, test_batch.bin, batches.meta.txt
    /// ```
    ///
    /// IDX files may be raw or gzip-compressed; the raw file is used when both exist.
    /// A missing file gives [`Error::Missing`] with the command that fetches it; a file
    /// that does not hold what it should gives [`Error::Format`] naming the file and the
    /// problem (wrong magic number, image size other than the dataset's, a label of 10
    /// or more, image and label counts that differ, truncation, ...). For CIFAR-10,
    /// `batches.meta.txt` is optional (the built-in names are used without it), but if
    /// present it must list exactly 10 names.
    pub fn load(kind: DatasetKind, split: Split, dir: &Path) -> Result<Dataset> {
        let ds = match kind {
            DatasetKind::Mnist | DatasetKind::FashionMnist => load_idx(kind, split, dir)?,
            DatasetKind::Cifar10 => load_cifar(split, dir)?,
        };
        debug_assert_eq!(ds.images.len(), ds.labels.len() * ds.image_len());
        Ok(ds)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image, `C * H * W`.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The bytes of image `i` (CHW).
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        assert!(
            i < self.len(),
            "image index {i} out of range for a dataset of {} images",
            self.len()
        );
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// A new dataset of the images at `indices`, in that order (repeats allowed).
    ///
    /// # Panics
    /// If an index is `>= self.len()`.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut images = Vec::with_capacity(indices.len() * self.image_len());
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Dataset {
            kind: self.kind,
            shape: self.shape,
            images,
            labels,
            class_names: self.class_names.clone(),
        }
    }

    /// Splits off a held-out validation set: shuffles the indices `0..len` with a
    /// generator seeded from `seed` (Fisher-Yates, [`StdRng`]) and takes the last
    /// `n_val` as validation, the rest as training. Both parts keep the original order
    /// of the images. The same seed always gives the same split; the stream is distinct
    /// from [`epoch_order`]'s for the same seed.
    ///
    /// Fails if `n_val > self.len()`.
    pub fn split_validation(&self, n_val: usize, seed: u64) -> Result<(Dataset, Dataset)> {
        let n = self.len();
        if n_val > n {
            return Err(Error::Invalid {
                op: "split_validation",
                problem: format!(
                    "asked for {n_val} validation images, but the {} {} set has only {n}",
                    self.kind,
                    if n == 0 { "(empty)" } else { "training" }
                ),
            });
        }
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = StdRng::seed_from_u64(seed ^ mix(VALIDATION_STREAM));
        shuffle(&mut order, &mut rng);
        let (train, val) = order.split_at_mut(n - n_val);
        train.sort_unstable();
        val.sort_unstable();
        Ok((self.subset(train), self.subset(val)))
    }

    /// The images at `indices` as a tensor `[B, C, H, W]` of f32 pixels `byte / 255` (in
    /// [0, 1], no mean/std normalisation), and their labels.
    ///
    /// With `augment`, each image is independently augmented the CIFAR way, drawing from
    /// the generator: a random `H x W` crop of the image zero-padded by
    /// [`AUGMENT_PAD`] pixels on every side (offsets uniform in `0..=2 * PAD`, rows
    /// first), then a horizontal flip with probability 1/2. The same generator state
    /// gives the same batch.
    ///
    /// # Panics
    /// If an index is `>= self.len()`.
    pub fn batch(
        &self,
        indices: &[usize],
        augment: Option<&mut dyn RngCore>,
    ) -> (Tensor, Vec<usize>) {
        let [c, h, w] = self.shape;
        let per = self.image_len();
        // Every element is written below, so stale pooled contents are fine.
        let mut data = rcc_tensor::scratch::take(indices.len() * per);
        let mut labels = Vec::with_capacity(indices.len());
        match augment {
            None => {
                for (dst, &i) in data.chunks_exact_mut(per.max(1)).zip(indices) {
                    for (d, &s) in dst.iter_mut().zip(self.image(i)) {
                        *d = LUT[s as usize];
                    }
                    labels.push(self.labels[i] as usize);
                }
            }
            Some(rng) => {
                // Drawn as u32 so the sequence is the same on every platform.
                let pad = AUGMENT_PAD as u32;
                for (dst, &i) in data.chunks_exact_mut(per.max(1)).zip(indices) {
                    let img = self.image(i);
                    let dy = rng.gen_range(0..=2 * pad) as isize - pad as isize;
                    let dx = rng.gen_range(0..=2 * pad) as isize - pad as isize;
                    let flip = rng.gen_bool(0.5);
                    augment_one(img, dst, [c, h, w], dy, dx, flip);
                    labels.push(self.labels[i] as usize);
                }
            }
        }
        let tensor =
            Tensor::new(&[indices.len(), c, h, w], data).expect("batch data has B*C*H*W values");
        (tensor, labels)
    }
}

/// Writes one augmented image: output pixel `(ch, y, x)` is source pixel
/// `(ch, y + dy, x' + dx)` with `x' = W - 1 - x` if `flip` else `x`, or 0 outside the
/// source (the crop reads the zero padding). That is a crop at offset `(dy, dx)` from
/// the unpadded origin, then a mirror of the crop.
fn augment_one(
    img: &[u8],
    dst: &mut [f32],
    [c, h, w]: [usize; 3],
    dy: isize,
    dx: isize,
    flip: bool,
) {
    let (hi, wi) = (h as isize, w as isize);
    for ch in 0..c {
        let plane = &img[ch * h * w..(ch + 1) * h * w];
        let out_plane = &mut dst[ch * h * w..(ch + 1) * h * w];
        for (y, out_row) in out_plane.chunks_exact_mut(w).enumerate() {
            let sy = y as isize + dy;
            if !(0..hi).contains(&sy) {
                out_row.fill(0.0);
                continue;
            }
            let row = &plane[sy as usize * w..(sy as usize + 1) * w];
            for (x, o) in out_row.iter_mut().enumerate() {
                let cx = if flip { w - 1 - x } else { x };
                let sx = cx as isize + dx;
                *o = if (0..wi).contains(&sx) {
                    LUT[row[sx as usize] as usize]
                } else {
                    0.0
                };
            }
        }
    }
}

/// The visiting order of the samples `0..n` in epoch `epoch` of a run seeded `seed`: a
/// Fisher-Yates shuffle driven by `StdRng::seed_from_u64(seed ^ mix(epoch))`, where
/// `mix` is the SplitMix64 finaliser. It depends only on `(n, seed, epoch)` (not on
/// threads, earlier epochs or anything else), so a run resumed at epoch `e` visits the
/// samples in exactly the order the uninterrupted run would have.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = StdRng::seed_from_u64(seed ^ mix(EPOCH_STREAM.wrapping_add(epoch as u64)));
    shuffle(&mut order, &mut rng);
    order
}

/// Stream tags, so that epoch orders and the validation split of one seed are drawn
/// from unrelated generators.
const EPOCH_STREAM: u64 = 0x6570_6f63_6800_0000; // "epoch"
const VALIDATION_STREAM: u64 = 0x7661_6c69_6461_7465; // "validate"

/// SplitMix64's finaliser: a bijection on u64 that spreads nearby inputs apart.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fisher-Yates (Durstenfeld) shuffle. Written out rather than `SliceRandom::shuffle`
/// so the order is pinned here: indices are drawn as u64, the same on every platform.
fn shuffle(v: &mut [usize], rng: &mut StdRng) {
    for i in (1..v.len()).rev() {
        let j = rng.gen_range(0..=i as u64) as usize;
        v.swap(i, j);
    }
}

// ---------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------

/// Reads a whole file; `NotFound` comes back as `Ok(None)`, other failures as
/// [`Error::Io`].
fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn missing(kind: DatasetKind, path: PathBuf) -> Error {
    Error::Missing {
        path,
        dataset: kind.to_string(),
        hint: kind.fetch_hint(),
    }
}

/// Reads `dir/<kind dir>/<name>`, or else `<name>.gz` decompressed. Returns the path
/// actually read and the (decompressed) bytes.
fn read_idx_file(kind: DatasetKind, dir: &Path, name: &str) -> Result<(PathBuf, Vec<u8>)> {
    let raw = dir.join(kind.dir_name()).join(name);
    if let Some(bytes) = read_if_exists(&raw)? {
        return Ok((raw, bytes));
    }
    let gz = dir.join(kind.dir_name()).join(format!("{name}.gz"));
    match read_if_exists(&gz)? {
        Some(bytes) => {
            let data = gzip::decompress(&bytes, &gz)?;
            Ok((gz, data))
        }
        None => Err(Error::Missing {
            path: raw,
            dataset: kind.to_string(),
            hint: format!(
                "{} (neither {name} nor {name}.gz is there)",
                kind.fetch_hint()
            ),
        }),
    }
}

fn check_labels(labels: &[u8], classes: usize, path: &Path) -> Result<()> {
    if let Some((i, &l)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= classes)
    {
        return format_err(
            path,
            format!("label {i}"),
            format!("expected a class 0..={}, found {l}", classes - 1),
        );
    }
    Ok(())
}

fn load_idx(kind: DatasetKind, split: Split, dir: &Path) -> Result<Dataset> {
    let stem = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let images = read_idx_file(kind, dir, &format!("{stem}-images-idx3-ubyte"))?;
    let labels = read_idx_file(kind, dir, &format!("{stem}-labels-idx1-ubyte"))?;
    Dataset::from_idx(kind, images, labels)
}

impl Dataset {
    /// The dataset held by an IDX image file and its IDX label file, both already
    /// decompressed, each with the path that names it in errors. Checks what
    /// [`Dataset::load`] documents: magic numbers, the image size of `kind`, equal
    /// counts, labels below the number of classes.
    pub fn from_idx(
        kind: DatasetKind,
        (images_path, image_bytes): (PathBuf, Vec<u8>),
        (labels_path, label_bytes): (PathBuf, Vec<u8>),
    ) -> Result<Dataset> {
        let (n, rows, cols, images) = idx::read_images_owned(image_bytes, &images_path)?;
        let shape = kind.image_shape();
        if shape[0] != 1 {
            return format_err(
                &images_path,
                "dimensions",
                format!(
                    "{kind} images have {} channels; IDX files hold one",
                    shape[0]
                ),
            );
        }
        if [rows, cols] != [shape[1], shape[2]] {
            return format_err(
                &images_path,
                "dimensions",
                format!(
                    "{kind} images are {}x{}, the header says {rows}x{cols}",
                    shape[1], shape[2]
                ),
            );
        }
        let labels = idx::read_labels_owned(label_bytes, &labels_path)?;
        if labels.len() != n {
            return format_err(
                &images_path,
                "count",
                format!(
                    "it holds {n} images, but the label file {} holds {} labels; the two files must match",
                    labels_path.display(),
                    labels.len()
                ),
            );
        }
        check_labels(&labels, kind.num_classes(), &labels_path)?;
        Ok(Dataset {
            kind,
            shape,
            images,
            labels,
            class_names: kind.default_class_names(),
        })
    }
}

fn load_cifar(split: Split, dir: &Path) -> Result<Dataset> {
    let kind = DatasetKind::Cifar10;
    let base = dir.join(kind.dir_name());
    let names: Vec<String> = match split {
        Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        Split::Test => vec!["test_batch.bin".to_string()],
    };
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for name in &names {
        let path = base.join(name);
        let bytes = read_if_exists(&path)?.ok_or_else(|| missing(kind, path.clone()))?;
        let (im, lb) = cifar::read_batch(&bytes, &path)?;
        drop(bytes);
        if images.is_empty() {
            // The first batch tells how large all of them are (CIFAR's are equal).
            images.reserve_exact(im.len() * names.len());
            labels.reserve_exact(lb.len() * names.len());
        }
        images.extend_from_slice(&im);
        labels.extend_from_slice(&lb);
    }
    let meta_path = base.join("batches.meta.txt");
    let class_names = match read_if_exists(&meta_path)? {
        None => kind.default_class_names(),
        Some(bytes) => {
            let Ok(text) = String::from_utf8(bytes) else {
                return format_err(&meta_path, "class names", "the file is not UTF-8 text");
            };
            let names = cifar::read_meta(&text);
            if names.len() != kind.num_classes() {
                return format_err(
                    &meta_path,
                    "class names",
                    format!(
                        "expected {} class names (one per line), found {}",
                        kind.num_classes(),
                        names.len()
                    ),
                );
            }
            names
        }
    };
    Ok(Dataset {
        kind,
        shape: kind.image_shape(),
        images,
        labels,
        class_names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lut_is_exact_division() {
        for b in 0..=255u8 {
            assert_eq!(LUT[b as usize], b as f32 / 255.0);
        }
        assert_eq!(LUT[0], 0.0);
        assert_eq!(LUT[255], 1.0);
    }

    #[test]
    fn mix_separates_neighbours() {
        assert_ne!(mix(0), mix(1));
        assert_ne!(mix(EPOCH_STREAM), mix(VALIDATION_STREAM));
    }
}
