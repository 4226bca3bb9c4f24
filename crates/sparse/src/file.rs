//! Sparse model files: a [`ModelSpec`] stored as safetensors, written by
//! `cargo xtask export` and validated completely when read.
//!
//! # Layout (`rcc-sparse-v1`)
//!
//! A standard safetensors file (see [`rcc_nn::safetensors`]; all data little-endian).
//! The string metadata (`__metadata__`) holds exactly these keys:
//!
//! | key | value |
//! |---|---|
//! | `format` | `rcc-sparse-v1` |
//! | `arch` | the dense architecture it came from, e.g. `lenet_adv:4` (free text, at most 256 bytes, no control characters) |
//! | `input` | one sample's input shape `C,H,W`, e.g. `1,28,28` |
//! | `layers` | the number of layers `N` |
//! | `layer.{i}` | layer `i` (`0 <= i < N`) as `<kind> key=value ...`, one of the lines below |
//!
//! ```text
//! conv rows=O cols=C*KH*KW in_channels=C kh=KH kw=KW stride=S pad=P relu=0|1
//! linear rows=OUT cols=IN relu=0|1
//! max_pool k=K s=S
//! avg_pool k=K s=S
//! relu
//! flatten
//! ```
//!
//! Keys may come in any order, each exactly once; numbers are plain decimal integers.
//! `relu=1` applies a ReLU after the layer (fused). Pooling has no padding and rounds
//! down; `flatten` turns `[C, H, W]` into `[C*H*W]`.
//!
//! Each `conv` and `linear` layer `i` has four tensors, its weights `[rows, cols]` in CSR
//! form (row = output channel or feature; for a conv, column = `(c*KH + ki)*KW + kj`, i.e.
//! PyTorch's `[O, C, KH, KW]` weight flattened to `[O, C*KH*KW]`):
//!
//! | tensor | dtype | shape | content |
//! |---|---|---|---|
//! | `layer.{i}.values` | F32 | `[nnz]` | the stored weights, row after row |
//! | `layer.{i}.col_idx` | U16 if `cols <= 65536`, else I32 | `[nnz]` | column of each value, strictly increasing within a row |
//! | `layer.{i}.row_ptr` | I32 | `[rows + 1]` | row `r` is `values[row_ptr[r]..row_ptr[r+1]]`; starts at 0, non-decreasing, ends at `nnz` |
//! | `layer.{i}.bias` | F32 | `[rows]` | the bias (zeros if the dense layer had none) |
//!
//! No other tensors and no other metadata keys are allowed, so a typo or a file of another
//! kind cannot be half-read. The weights of the dense model are recovered as
//! `W[r, col_idx[k]] = values[k]` for `k` in row `r`'s range, all other entries zero.
//! A Python reader, for instance:
//!
//! ```python
//! from safetensors import safe_open
//! with safe_open(path, "np") as f:
//!     meta, layers = f.metadata(), []
//!     assert meta["format"] == "rcc-sparse-v1"
//!     for i in range(int(meta["layers"])):
//!         kind, *kv = meta[f"layer.{i}"].split()
//!         layer = {"kind": kind, **{k: int(v) for k, v in (p.split("=") for p in kv)}}
//!         if kind in ("conv", "linear"):
//!             t = {n: f.get_tensor(f"layer.{i}.{n}") for n in ("values", "col_idx", "row_ptr", "bias")}
//!             w = scipy.sparse.csr_matrix((t["values"], t["col_idx"], t["row_ptr"]),
//!                                         shape=(layer["rows"], layer["cols"]))
//!         layers.append(layer)
//! ```
//!
//! # Reading
//!
//! Everything in the file is untrusted. [`load`] rejects, with an [`Error::File`] naming
//! the file, the field and what was expected: a wrong `format`; any metadata number that
//! does not parse or exceeds [`MAX_LEN`] (checked before anything is sized by it);
//! `rows * cols` above [`MAX_LEN`]; a conv whose `cols` is not `in_channels*kh*kw`; a
//! tensor that is missing, unexpected, of the wrong dtype or of a shape that disagrees with
//! the metadata; negative I32 entries; CSR arrays that [`Csr::from_parts`] rejects (row
//! pointers not starting at 0, decreasing or not ending at nnz, column indices out of
//! range or not increasing); and a layer chain whose shapes do not fit together
//! ([`ModelSpec::shapes`]). A spec that loads is therefore safe to build and run.

use std::collections::BTreeSet;
use std::path::Path;

use rcc_nn::safetensors::{Dtype, SafeTensors, TensorData};

use crate::csr::{fits_u16, ColIdx, Csr};
use crate::error::{file_err, Error, Result};
use crate::spec::{LayerSpec, ModelSpec, MAX_LEN};

/// The `format` metadata value of this layout.
pub const FORMAT: &str = "rcc-sparse-v1";

/// Most layers a file may declare. Real networks have tens; the bound only turns an absurd
/// `layers` value into a clear error.
pub const MAX_LAYERS: usize = 4096;

/// Largest file [`load`] reads (4 GiB), checked against the file system's size before any
/// byte is read. Far above any real sparse model (vgg16:16, dense, is about 60 MB).
pub const MAX_FILE_BYTES: u64 = 1 << 32;

/// Longest `arch` string accepted.
const MAX_ARCH_LEN: usize = 256;

/// The per-layer tensors of a conv or linear layer, in the order they are checked.
pub const TENSORS: [&str; 4] = ["values", "col_idx", "row_ptr", "bias"];

/// The file contents of `spec`. The spec is validated first ([`ModelSpec::shapes`]), so an
/// inconsistent spec is never written. Column indices are stored as the layout prescribes
/// for the column count (U16 up to 65536 columns, else I32), whatever width the [`Csr`]
/// holds them in.
pub fn to_safetensors(spec: &ModelSpec) -> Result<SafeTensors> {
    spec.shapes()?;
    check_arch(&spec.arch, Path::new("<memory>"))?;
    let mut st = SafeTensors::new();
    let meta = &mut st.metadata;
    meta.insert("format".into(), FORMAT.into());
    meta.insert("arch".into(), spec.arch.clone());
    let [c, h, w] = spec.input;
    meta.insert("input".into(), format!("{c},{h},{w}"));
    meta.insert("layers".into(), spec.layers.len().to_string());
    for (i, layer) in spec.layers.iter().enumerate() {
        let desc = match layer {
            LayerSpec::Conv {
                w,
                in_channels,
                kh,
                kw,
                stride,
                pad,
                relu,
                ..
            } => format!(
                "conv rows={} cols={} in_channels={in_channels} kh={kh} kw={kw} stride={stride} \
                 pad={pad} relu={}",
                w.rows(),
                w.cols(),
                u8::from(*relu)
            ),
            LayerSpec::Linear { w, relu, .. } => format!(
                "linear rows={} cols={} relu={}",
                w.rows(),
                w.cols(),
                u8::from(*relu)
            ),
            LayerSpec::MaxPool { k, s } => format!("max_pool k={k} s={s}"),
            LayerSpec::AvgPool { k, s } => format!("avg_pool k={k} s={s}"),
            LayerSpec::Relu => "relu".to_string(),
            LayerSpec::Flatten => "flatten".to_string(),
        };
        st.metadata.insert(format!("layer.{i}"), desc);
        if let LayerSpec::Conv { w, bias, .. } | LayerSpec::Linear { w, bias, .. } = layer {
            push_csr(&mut st, i, w, bias)?;
        }
    }
    Ok(st)
}

/// Writes `spec` to `path` atomically (a temporary file in the same directory, fsynced,
/// then renamed), so a crash never leaves a half-written model under the final name.
pub fn save(spec: &ModelSpec, path: &Path) -> Result<()> {
    to_safetensors(spec)?.write(path)?;
    Ok(())
}

/// Reads and validates a sparse model file (see the module docs for every check).
pub fn load(path: &Path) -> Result<ModelSpec> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?
        .len();
    if size > MAX_FILE_BYTES {
        return file_err(
            path,
            "file",
            format!("{size} bytes, more than the {MAX_FILE_BYTES}-byte limit for sparse models"),
        );
    }
    let st = SafeTensors::read(path)?;
    from_safetensors(&st, path)
}

/// [`load`] of a file already in memory (`path` only names it in errors), with the
/// same size limit.
pub fn parse(bytes: &[u8], path: &Path) -> Result<ModelSpec> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return file_err(
            path,
            "file",
            format!(
                "{} bytes, more than the {MAX_FILE_BYTES}-byte limit for sparse models",
                bytes.len()
            ),
        );
    }
    from_safetensors(&SafeTensors::parse(bytes, path)?, path)
}

/// The spec stored in `st` (read from `path`, which only names the file in errors),
/// validated completely.
pub fn from_safetensors(st: &SafeTensors, path: &Path) -> Result<ModelSpec> {
    let meta = |key: &str| -> Result<&str> {
        match st.metadata.get(key) {
            Some(v) => Ok(v.as_str()),
            None => file_err(
                path,
                format!("__metadata__.{key}"),
                format!("missing (an {FORMAT} file has format, arch, input, layers and layer.N)"),
            ),
        }
    };
    let format = meta("format")?;
    if format != FORMAT {
        return file_err(
            path,
            "__metadata__.format",
            format!("expected {FORMAT:?}, found {format:?} (not a sparse model file?)"),
        );
    }
    let arch = meta("arch")?;
    check_arch(arch, path)?;
    let input = parse_input(meta("input")?, path)?;
    let n = parse_num(meta("layers")?, MAX_LAYERS, path, "__metadata__.layers", "")?;

    // Every metadata key is known: a typo (`layer.07`, `inputs`) is an error, not ignored.
    for key in st.metadata.keys() {
        let known = matches!(key.as_str(), "format" | "arch" | "input" | "layers")
            || key
                .strip_prefix("layer.")
                .and_then(|i| i.parse::<usize>().ok())
                .is_some_and(|i| i < n && key == &format!("layer.{i}"));
        if !known {
            return file_err(
                path,
                format!("__metadata__.{key}"),
                format!(
                    "unexpected metadata key (expected format, arch, input, layers and layer.0 \
                     to layer.{})",
                    n.saturating_sub(1)
                ),
            );
        }
    }

    // Every tensor belongs to a conv or linear layer; checked before the layers so that a
    // stray tensor is reported as such rather than as a consequence.
    let mut expected = BTreeSet::new();
    let mut layers = Vec::new();
    for i in 0..n {
        let field = format!("__metadata__.layer.{i}");
        let desc = meta(&format!("layer.{i}"))?;
        let parsed = parse_layer(desc, path, &field)?;
        if parsed.has_weights() {
            expected.extend(TENSORS.iter().map(|t| format!("layer.{i}.{t}")));
        }
        layers.push(parsed);
    }
    for e in &st.entries {
        if !expected.contains(&e.name) {
            return file_err(path, &e.name, unexpected_tensor(&e.name, &layers));
        }
    }

    let mut spec = ModelSpec {
        arch: arch.to_string(),
        input,
        layers: Vec::new(),
    };
    let mut dims = input.to_vec();
    for (i, l) in layers.into_iter().enumerate() {
        let layer = build_layer(st, path, i, l)?;
        // Shape by shape, so that an error names the layer's field.
        dims = layer
            .out_shape(i, &dims)
            .map_err(|e| file_error(path, format!("__metadata__.layer.{i}"), e.to_string()))?;
        spec.layers.push(layer);
    }
    // The whole chain once more, as the engine checks it (also: the output is flat).
    spec.shapes()
        .map_err(|e| file_error(path, "__metadata__.layers", e.to_string()))?;
    Ok(spec)
}

fn file_error(path: &Path, field: impl Into<String>, problem: impl Into<String>) -> Error {
    Error::File {
        path: path.to_path_buf(),
        field: field.into(),
        problem: problem.into(),
    }
}

fn check_arch(arch: &str, path: &Path) -> Result<()> {
    if arch.len() > MAX_ARCH_LEN || arch.chars().any(char::is_control) {
        let short: String = arch.chars().take(40).collect();
        return file_err(
            path,
            "__metadata__.arch",
            format!(
                "expected an architecture name of at most {MAX_ARCH_LEN} bytes without control \
                 characters, found {short:?}{}",
                if short.len() < arch.len() { "..." } else { "" }
            ),
        );
    }
    Ok(())
}

/// A metadata number: plain decimal digits, at most `max`. Signs, spaces, and values too
/// large for any layer are rejected before anything is sized by them.
fn parse_num(text: &str, max: usize, path: &Path, field: &str, key: &str) -> Result<usize> {
    let what = if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    };
    let short: String = text.chars().take(40).collect();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return file_err(
            path,
            field,
            format!("{what}expected a non-negative decimal integer, found {short:?}"),
        );
    }
    match text.parse::<usize>() {
        Ok(v) if v <= max => Ok(v),
        _ => file_err(
            path,
            field,
            format!("{what}{short} is too large (at most {max})"),
        ),
    }
}

fn parse_input(text: &str, path: &Path) -> Result<[usize; 3]> {
    let field = "__metadata__.input";
    let parts: Vec<&str> = text.splitn(4, ',').collect();
    let &[c, h, w] = &parts[..] else {
        return file_err(
            path,
            field,
            format!("expected the input shape as \"C,H,W\", found {text:?}"),
        );
    };
    let mut dims = [0; 3];
    for (d, (t, name)) in dims.iter_mut().zip([(c, "C"), (h, "H"), (w, "W")]) {
        *d = parse_num(t.trim(), MAX_LEN, path, field, name)?;
    }
    let len = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    match len {
        Some(l) if (1..=MAX_LEN).contains(&l) => Ok(dims),
        _ => file_err(
            path,
            field,
            format!("{dims:?}: expected every dimension at least 1 and at most {MAX_LEN} values"),
        ),
    }
}

/// A layer as its metadata line describes it (weights not yet read).
#[derive(Debug)]
enum Parsed {
    Conv {
        rows: usize,
        cols: usize,
        in_channels: usize,
        kh: usize,
        kw: usize,
        stride: usize,
        pad: usize,
        relu: bool,
    },
    Linear {
        rows: usize,
        cols: usize,
        relu: bool,
    },
    MaxPool {
        k: usize,
        s: usize,
    },
    AvgPool {
        k: usize,
        s: usize,
    },
    Relu,
    Flatten,
}

impl Parsed {
    fn has_weights(&self) -> bool {
        matches!(self, Parsed::Conv { .. } | Parsed::Linear { .. })
    }
    fn kind(&self) -> &'static str {
        match self {
            Parsed::Conv { .. } => "conv",
            Parsed::Linear { .. } => "linear",
            Parsed::MaxPool { .. } => "max_pool",
            Parsed::AvgPool { .. } => "avg_pool",
            Parsed::Relu => "relu",
            Parsed::Flatten => "flatten",
        }
    }
}

/// The keys of each kind, in the order the writer uses.
fn kind_keys(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "conv" => &[
            "rows",
            "cols",
            "in_channels",
            "kh",
            "kw",
            "stride",
            "pad",
            "relu",
        ],
        "linear" => &["rows", "cols", "relu"],
        "max_pool" | "avg_pool" => &["k", "s"],
        "relu" | "flatten" => &[],
        _ => return None,
    })
}

fn parse_layer(desc: &str, path: &Path, field: &str) -> Result<Parsed> {
    let mut words = desc.split_ascii_whitespace();
    let kind = words.next().unwrap_or("");
    let Some(keys) = kind_keys(kind) else {
        let short: String = kind.chars().take(40).collect();
        return file_err(
            path,
            field,
            format!(
                "unknown layer kind {short:?} (expected conv, linear, max_pool, avg_pool, relu \
                 or flatten)"
            ),
        );
    };
    let mut vals: [Option<usize>; 8] = [None; 8];
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            let short: String = word.chars().take(40).collect();
            return file_err(
                path,
                field,
                format!("{kind}: expected key=value, found {short:?}"),
            );
        };
        let Some(slot) = keys.iter().position(|&k| k == key) else {
            let short: String = key.chars().take(40).collect();
            return file_err(
                path,
                field,
                format!(
                    "{kind}: unexpected key {short:?} (a {kind} layer has {})",
                    describe_keys(keys)
                ),
            );
        };
        if vals[slot].is_some() {
            return file_err(path, field, format!("{kind}: key {key:?} appears twice"));
        }
        let max = if key == "relu" { 1 } else { MAX_LEN };
        vals[slot] = Some(parse_num(
            value,
            max,
            path,
            field,
            &format!("{kind}: {key}"),
        )?);
    }
    if let Some(missing) = keys.iter().zip(&vals).find(|(_, v)| v.is_none()) {
        return file_err(
            path,
            field,
            format!(
                "{kind}: missing key {:?} (a {kind} layer has {})",
                missing.0,
                describe_keys(keys)
            ),
        );
    }
    let v = |i: usize| vals[i].unwrap_or(0);
    let parsed = match kind {
        "conv" => Parsed::Conv {
            rows: v(0),
            cols: v(1),
            in_channels: v(2),
            kh: v(3),
            kw: v(4),
            stride: v(5),
            pad: v(6),
            relu: v(7) == 1,
        },
        "linear" => Parsed::Linear {
            rows: v(0),
            cols: v(1),
            relu: v(2) == 1,
        },
        "max_pool" => Parsed::MaxPool { k: v(0), s: v(1) },
        "avg_pool" => Parsed::AvgPool { k: v(0), s: v(1) },
        "relu" => Parsed::Relu,
        _ => Parsed::Flatten,
    };
    if let Parsed::Conv { rows, cols, .. } | Parsed::Linear { rows, cols, .. } = parsed {
        if rows.checked_mul(cols).is_none_or(|n| n > MAX_LEN) {
            return file_err(
                path,
                field,
                format!(
                    "{kind}: rows x cols = {rows} x {cols} weights, more than the limit of \
                     {MAX_LEN}"
                ),
            );
        }
    }
    if let Parsed::Conv {
        cols,
        in_channels,
        kh,
        kw,
        ..
    } = parsed
    {
        // All three are at most MAX_LEN = 2^28, so the product cannot overflow u128.
        let ckk = in_channels as u128 * kh as u128 * kw as u128;
        if ckk != cols as u128 {
            return file_err(
                path,
                field,
                format!(
                    "conv: cols = {cols}, but in_channels*kh*kw = {in_channels}*{kh}*{kw} = {ckk}"
                ),
            );
        }
    }
    Ok(parsed)
}

fn describe_keys(keys: &[&str]) -> String {
    if keys.is_empty() {
        "no keys".to_string()
    } else {
        keys.join(", ")
    }
}

fn unexpected_tensor(name: &str, layers: &[Parsed]) -> String {
    let layer = name
        .strip_prefix("layer.")
        .and_then(|r| r.split_once('.'))
        .and_then(|(i, t)| Some((i.parse::<usize>().ok()?, t)));
    match layer {
        Some((i, t)) if i < layers.len() && layers[i].has_weights() => format!(
            "unexpected tensor {t:?} for layer {i} (a {} layer has {})",
            layers[i].kind(),
            TENSORS.join(", ")
        ),
        Some((i, _)) if i < layers.len() => format!(
            "unexpected tensor: layer {i} is a {} layer, which has no tensors",
            layers[i].kind()
        ),
        _ => format!(
            "unexpected tensor (only the conv and linear layers among layer.0 to layer.{} have \
             tensors: layer.N.values, col_idx, row_ptr and bias)",
            layers.len().saturating_sub(1)
        ),
    }
}

/// The elements of tensor `name`, which must have exactly this dtype (`pick` extracts
/// it) and shape; an error says why that dtype and shape were expected.
fn typed<'a, T>(
    st: &'a SafeTensors,
    path: &Path,
    name: &str,
    (dtype, pick): (Dtype, Pick<T>),
    shape: &[usize],
    why: &str,
) -> Result<&'a [T]> {
    let Some(e) = st.get(name) else {
        return file_err(
            path,
            name,
            format!("missing tensor (expected {dtype} {shape:?}: {why})"),
        );
    };
    let Some(v) = pick(&e.data) else {
        return file_err(
            path,
            name,
            format!("expected dtype {dtype} ({why}), found {}", e.dtype()),
        );
    };
    if e.shape != shape {
        return file_err(
            path,
            name,
            format!("expected shape {shape:?} ({why}), found {:?}", e.shape),
        );
    }
    Ok(v)
}

/// Extracts a dtype's elements from a tensor.
type Pick<T> = fn(&TensorData) -> Option<&[T]>;

const F32: (Dtype, Pick<f32>) = (Dtype::F32, |d| match d {
    TensorData::F32(v) => Some(v),
    _ => None,
});
const I32: (Dtype, Pick<i32>) = (Dtype::I32, |d| match d {
    TensorData::I32(v) => Some(v),
    _ => None,
});
const U16: (Dtype, Pick<u16>) = (Dtype::U16, |d| match d {
    TensorData::U16(v) => Some(v),
    _ => None,
});

/// I32 entries as u32, rejecting negatives (which a cast would turn into huge indices).
fn non_negative(v: &[i32], path: &Path, name: &str, what: &str) -> Result<Vec<u32>> {
    v.iter()
        .enumerate()
        .map(|(k, &x)| {
            u32::try_from(x).or_else(|_| {
                file_err(
                    path,
                    name,
                    format!("entry {k} is {x}: {what} must be non-negative"),
                )
            })
        })
        .collect()
}

fn build_layer(st: &SafeTensors, path: &Path, i: usize, l: Parsed) -> Result<LayerSpec> {
    let kind = l.kind();
    Ok(match l {
        Parsed::Conv {
            rows,
            cols,
            in_channels,
            kh,
            kw,
            stride,
            pad,
            relu,
        } => {
            let (w, bias) = read_csr(st, path, i, kind, rows, cols)?;
            LayerSpec::Conv {
                w,
                in_channels,
                kh,
                kw,
                stride,
                pad,
                bias,
                relu,
            }
        }
        Parsed::Linear { rows, cols, relu } => {
            let (w, bias) = read_csr(st, path, i, kind, rows, cols)?;
            LayerSpec::Linear { w, bias, relu }
        }
        Parsed::MaxPool { k, s } => LayerSpec::MaxPool { k, s },
        Parsed::AvgPool { k, s } => LayerSpec::AvgPool { k, s },
        Parsed::Relu => LayerSpec::Relu,
        Parsed::Flatten => LayerSpec::Flatten,
    })
}

/// The weights and bias of layer `i`, a `rows x cols` conv or linear layer (both at most
/// MAX_LEN, so `rows + 1` cannot overflow).
fn read_csr(
    st: &SafeTensors,
    path: &Path,
    i: usize,
    kind: &str,
    rows: usize,
    cols: usize,
) -> Result<(Csr, Vec<f32>)> {
    let name = |t: &str| format!("layer.{i}.{t}");

    // nnz comes from the values tensor; the other tensors must agree with it.
    let values_name = name("values");
    let nnz = match st.get(&values_name).map(|e| &e.shape[..]) {
        Some(&[nnz]) => nnz,
        Some(other) => {
            return file_err(
                path,
                &values_name,
                format!("expected a 1-D shape [nnz], found {other:?}"),
            )
        }
        None => 0, // reported as missing just below
    };
    let values = typed(st, path, &values_name, F32, &[nnz], "the stored weights")?;
    let col_name = name("col_idx");
    let col_idx = if fits_u16(cols) {
        let why = format!("one per value; U16 since cols = {cols} <= 65536");
        ColIdx::U16(typed(st, path, &col_name, U16, &[nnz], &why)?.to_vec())
    } else {
        let why = format!("one per value; I32 since cols = {cols} > 65536");
        let v = typed(st, path, &col_name, I32, &[nnz], &why)?;
        ColIdx::U32(non_negative(v, path, &col_name, "column indices")?)
    };
    let row_name = name("row_ptr");
    let why = format!("rows + 1 = {rows} + 1 entries");
    let row_ptr = typed(st, path, &row_name, I32, &[rows + 1], &why)?;
    let row_ptr = non_negative(row_ptr, path, &row_name, "row pointers")?;
    let why = format!("one per row, rows = {rows}");
    let bias = typed(st, path, &name("bias"), F32, &[rows], &why)?.to_vec();

    let w = Csr::from_parts(rows, cols, row_ptr, col_idx, values.to_vec()).map_err(|e| {
        // Name the array the CSR check found at fault.
        let t = match e {
            Error::RowPtrLen { .. }
            | Error::RowPtrStart { .. }
            | Error::RowPtrDecreasing { .. }
            | Error::RowPtrEnd { .. } => "row_ptr",
            Error::IndexCount { .. }
            | Error::IndexOutOfRange { .. }
            | Error::IndicesNotIncreasing { .. }
            | Error::IndexWidth { .. } => "col_idx",
            _ => "values",
        };
        file_error(
            path,
            name(t),
            format!("{e} (layer {i}: {kind}, {rows} x {cols}, {nnz} stored values)"),
        )
    })?;
    Ok((w, bias))
}

/// The four tensors of layer `i`.
fn push_csr(st: &mut SafeTensors, i: usize, w: &Csr, bias: &[f32]) -> Result<()> {
    let nnz = w.nnz();
    let to_i32 = |v: u32, what: &str| {
        i32::try_from(v).map_err(|_| Error::TooLarge {
            what: if what == "row" {
                "a row pointer"
            } else {
                "a column index"
            },
            len: v as usize,
        })
    };
    st.push_f32(&format!("layer.{i}.values"), &[nnz], w.values().to_vec())?;
    let col_name = format!("layer.{i}.col_idx");
    if fits_u16(w.cols()) {
        // Valid indices are below cols <= 65536, so they fit u16 whatever their width.
        let idx: Vec<u16> = match w.col_idx() {
            ColIdx::U16(v) => v.clone(),
            ColIdx::U32(v) => v.iter().map(|&c| c as u16).collect(),
        };
        st.push_u16(&col_name, &[nnz], idx)?;
    } else {
        let idx = match w.col_idx() {
            ColIdx::U16(v) => v.iter().map(|&c| i32::from(c)).collect(),
            ColIdx::U32(v) => v
                .iter()
                .map(|&c| to_i32(c, "col"))
                .collect::<Result<Vec<i32>>>()?,
        };
        st.push_i32(&col_name, &[nnz], idx)?;
    }
    let row_ptr = w
        .row_ptr()
        .iter()
        .map(|&p| to_i32(p, "row"))
        .collect::<Result<Vec<i32>>>()?;
    st.push_i32(&format!("layer.{i}.row_ptr"), &[w.rows() + 1], row_ptr)?;
    st.push_f32(&format!("layer.{i}.bias"), &[bias.len()], bias.to_vec())?;
    Ok(())
}
