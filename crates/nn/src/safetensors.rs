//! Safetensors files, read and written from scratch (standard library only, no serde).
//!
//! # Format
//!
//! ```text
//! [u64 little-endian N] [N bytes of UTF-8 JSON header, space padded] [raw little-endian data]
//! ```
//!
//! The header is a JSON object mapping each tensor name to
//! `{"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}` (offsets relative to the
//! start of the data buffer), plus an optional `"__metadata__"` object of string -> string.
//!
//! # Writer
//!
//! The writer reproduces, byte for byte, the files of `make_reference.py` (which uses Python's
//! `json.dumps(header, separators=(",", ":"))`), and those files load in PyTorch's
//! `safetensors` library:
//!
//! * `"__metadata__"` first (left out when empty, as the library does), its keys sorted;
//! * then the tensors in data order: 8-byte dtypes (F64 and I64 *together*, by name) first,
//!   then 4-byte ones (F32 and I32 together, by name), then U16 by name, so every tensor is
//!   aligned to its element size; offsets are contiguous from 0 with no gaps. (Files of
//!   only F32, F64 and I64 tensors, such as the reference files, are unaffected by the
//!   integer dtypes' place in this order);
//! * per tensor the keys `dtype`, `shape`, `data_offsets`, in that order, no spaces;
//! * strings escaped as Python's `json.dumps` does by default (`ensure_ascii=True`): `\"`,
//!   `\\`, `\b \f \n \r \t`, every other character outside printable ASCII as lowercase
//!   `\uXXXX` (a surrogate pair above U+FFFF). The output header is therefore pure ASCII;
//! * the header padded with spaces to a multiple of 8 bytes, so the data starts 8-aligned.
//!
//! (The Rust core of the `safetensors` library sorts by dtype, I64 before F64, and writes the
//! metadata in `HashMap` order, i.e. randomly; the reference writer exists to be
//! deterministic, so we follow it.)
//!
//! # Reader
//!
//! Everything in a file is untrusted: every length, offset and shape is checked (with checked
//! arithmetic) before it is used, no buffer is sized by an unchecked header value, and every
//! problem is reported as [`Error::File`] naming the file, the field and what was expected.
//! Like the reference implementation, the reader requires the tensors to cover the data
//! buffer exactly: contiguous, non-overlapping, from offset 0 to the end of the file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;

use crate::error::{file_err, Error, Result};
use crate::json::{parse_json, push_json_string, Json};

/// Largest header accepted (100 MB), the limit of the reference implementation. A larger
/// header length means a corrupt file or not a safetensors file at all.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// The reserved header key holding the string metadata.
const METADATA_KEY: &str = "__metadata__";

/// The "path" reported by errors about in-memory data (`push_*`, `to_bytes`).
const MEMORY_PATH: &str = "<memory>";

/// The element types this crate stores. Other safetensors dtypes are rejected when reading.
/// U16 and I32 exist for the sparse model files (CSR column indices and row pointers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F64,
    I64,
    I32,
    U16,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::U16 => 2,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F64 | Dtype::I64 => 8,
        }
    }

    /// The name used in the header ("F32", ...).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
            Dtype::I64 => "I64",
            Dtype::I32 => "I32",
            Dtype::U16 => "U16",
        }
    }

    /// The dtype with this header name, if supported.
    pub fn from_name(name: &str) -> Option<Dtype> {
        match name {
            "F32" => Some(Dtype::F32),
            "F64" => Some(Dtype::F64),
            "I64" => Some(Dtype::I64),
            "I32" => Some(Dtype::I32),
            "U16" => Some(Dtype::U16),
            _ => None,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tensor's elements, in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    U16(Vec<u16>),
}

impl TensorData {
    pub fn dtype(&self) -> Dtype {
        match self {
            TensorData::F32(_) => Dtype::F32,
            TensorData::F64(_) => Dtype::F64,
            TensorData::I64(_) => Dtype::I64,
            TensorData::I32(_) => Dtype::I32,
            TensorData::U16(_) => Dtype::U16,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::U16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the elements as little-endian bytes. `to_le_bytes` keeps the exact bit
    /// pattern, so NaN payloads and -0.0 survive a round trip.
    fn extend_le_bytes(&self, out: &mut Vec<u8>) {
        match self {
            TensorData::F32(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
            TensorData::F64(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
            TensorData::I64(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
            TensorData::I32(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
            TensorData::U16(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
        }
    }

    /// Decodes little-endian elements. The caller has checked that `bytes.len()` is a
    /// multiple of the element size (`chunks_exact` would silently drop a remainder).
    fn from_le_bytes(dtype: Dtype, bytes: &[u8]) -> TensorData {
        match dtype {
            Dtype::F32 => TensorData::F32(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Dtype::F64 => TensorData::F64(
                bytes
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(le8(c)))
                    .collect(),
            ),
            Dtype::I64 => TensorData::I64(
                bytes
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(le8(c)))
                    .collect(),
            ),
            Dtype::I32 => TensorData::I32(
                bytes
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Dtype::U16 => TensorData::U16(
                bytes
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            ),
        }
    }
}

/// The first 8 bytes of a chunk from `chunks_exact(8)`.
fn le8(c: &[u8]) -> [u8; 8] {
    [c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]
}

/// One named tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    /// Row-major shape; `[]` for a scalar (one element).
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Entry {
    pub fn dtype(&self) -> Dtype {
        self.data.dtype()
    }
}

/// Number of elements of a shape, or `None` on overflow. The empty shape (a scalar) has one.
fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// The contents of a safetensors file: tensors plus string metadata.
///
/// `entries` keeps insertion order (file order after [`SafeTensors::read`]); the writer
/// chooses its own canonical order, so the order here never affects the bytes written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SafeTensors {
    pub entries: Vec<Entry>,
    pub metadata: BTreeMap<String, String>,
}

impl SafeTensors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tensor. Errors (path `<memory>`) if `shape` does not hold `data.len()`
    /// elements, if the name is taken, or if it is the reserved `__metadata__`.
    pub fn push(&mut self, name: &str, shape: &[usize], data: TensorData) -> Result<()> {
        let path = Path::new(MEMORY_PATH);
        check_entry(name, shape, &data, path)?;
        if self.get(name).is_some() {
            return file_err(path, name, "a tensor with this name was already added");
        }
        self.entries.push(Entry {
            name: name.to_string(),
            shape: shape.to_vec(),
            data,
        });
        Ok(())
    }

    pub fn push_f32(&mut self, name: &str, shape: &[usize], data: Vec<f32>) -> Result<()> {
        self.push(name, shape, TensorData::F32(data))
    }

    pub fn push_f64(&mut self, name: &str, shape: &[usize], data: Vec<f64>) -> Result<()> {
        self.push(name, shape, TensorData::F64(data))
    }

    pub fn push_i64(&mut self, name: &str, shape: &[usize], data: Vec<i64>) -> Result<()> {
        self.push(name, shape, TensorData::I64(data))
    }

    pub fn push_i32(&mut self, name: &str, shape: &[usize], data: Vec<i32>) -> Result<()> {
        self.push(name, shape, TensorData::I32(data))
    }

    pub fn push_u16(&mut self, name: &str, shape: &[usize], data: Vec<u16>) -> Result<()> {
        self.push(name, shape, TensorData::U16(data))
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Parses a whole file held in memory. `path` is only used in error messages.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<SafeTensors> {
        let Some((prefix, rest)) = bytes.split_first_chunk::<8>() else {
            return too_short(path, bytes.len() as u64);
        };
        let header_len = check_header_len(u64::from_le_bytes(*prefix), rest.len() as u64, path)?;
        let (Some(header_bytes), Some(data)) = (rest.get(..header_len), rest.get(header_len..))
        else {
            return file_err(
                path,
                "header length",
                "header runs past the end of the file",
            );
        };
        let header = std::str::from_utf8(header_bytes).or_else(|e| {
            file_err(
                path,
                "header",
                format!(
                    "not valid UTF-8 (invalid byte at header byte {})",
                    e.valid_up_to()
                ),
            )
        })?;
        let json = parse_json(header).or_else(|e| {
            file_err(
                path,
                "header",
                format!("malformed JSON at header byte {}: {}", e.pos, e.msg),
            )
        })?;
        let Json::Object(members) = json else {
            return file_err(
                path,
                "header",
                format!(
                    "expected a JSON object at the top level, found {}",
                    json.describe()
                ),
            );
        };

        let mut metadata = None;
        let mut names = BTreeSet::new();
        let mut infos = Vec::new();
        for (key, value) in members {
            if key == METADATA_KEY {
                if metadata.is_some() {
                    return file_err(path, METADATA_KEY, "appears twice in the header");
                }
                metadata = Some(parse_metadata(value, path)?);
            } else {
                if !names.insert(key.clone()) {
                    return file_err(path, key, "duplicate tensor name in the header");
                }
                infos.push(parse_info(key, value, path)?);
            }
        }
        drop(names);

        // Each tensor on its own: the byte range fits the buffer and matches shape * dtype.
        let data_len = data.len();
        for t in &infos {
            let nbytes = numel(&t.shape).and_then(|n| n.checked_mul(t.dtype.size()));
            let Some(nbytes) = nbytes else {
                return file_err(
                    path,
                    &t.name,
                    format!(
                        "shape {:?} of {}: the byte size overflows",
                        t.shape, t.dtype
                    ),
                );
            };
            if t.begin > t.end {
                return file_err(
                    path,
                    &t.name,
                    format!("data_offsets [{}, {}]: begin is after end", t.begin, t.end),
                );
            }
            if t.end > data_len {
                return file_err(
                    path,
                    &t.name,
                    format!(
                        "data_offsets [{}, {}]: end is beyond the data buffer of {data_len} bytes \
                         (truncated file?)",
                        t.begin, t.end
                    ),
                );
            }
            if t.end - t.begin != nbytes {
                return file_err(
                    path,
                    &t.name,
                    format!(
                        "data_offsets [{}, {}] span {} bytes, but shape {:?} of {} needs {nbytes}",
                        t.begin,
                        t.end,
                        t.end - t.begin,
                        t.shape,
                        t.dtype
                    ),
                );
            }
        }

        // Together: sorted by offset, the tensors must tile the buffer exactly, as the
        // reference implementation requires. A stable sort keeps header order among
        // zero-sized tensors sharing an offset.
        infos.sort_by_key(|t| (t.begin, t.end));
        let mut covered = 0usize;
        let mut prev: Option<&TensorInfo> = None;
        for t in &infos {
            if t.begin != covered {
                let what = if t.begin < covered {
                    "overlap"
                } else {
                    "leave a gap after"
                };
                let problem = match prev {
                    Some(p) => format!(
                        "data_offsets [{}, {}] {what} tensor \"{}\" at [{}, {}]; tensors must be \
                         contiguous",
                        t.begin, t.end, p.name, p.begin, p.end
                    ),
                    None => format!(
                        "data_offsets [{}, {}]: the first tensor must start at offset 0 (gap of {} \
                         bytes)",
                        t.begin, t.end, t.begin
                    ),
                };
                return file_err(path, &t.name, problem);
            }
            covered = t.end;
            prev = Some(t);
        }
        if covered != data_len {
            return file_err(
                path,
                "data buffer",
                format!(
                    "the tensors cover {covered} bytes but {data_len} bytes follow the header: {} \
                     trailing bytes",
                    data_len - covered
                ),
            );
        }

        let mut entries = Vec::with_capacity(infos.len());
        for t in infos {
            let Some(raw) = data.get(t.begin..t.end) else {
                return file_err(path, &t.name, "data_offsets outside the data buffer");
            };
            entries.push(Entry {
                data: TensorData::from_le_bytes(t.dtype, raw),
                name: t.name,
                shape: t.shape,
            });
        }
        Ok(SafeTensors {
            entries,
            metadata: metadata.unwrap_or_default(),
        })
    }

    /// Reads and parses a file. The 8-byte header length is checked against the file size
    /// before anything else is read, so a corrupt length cannot trigger a huge allocation.
    pub fn read(path: &Path) -> Result<SafeTensors> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        if file_len < 8 {
            return too_short(path, file_len);
        }
        let mut prefix = [0u8; 8];
        file.read_exact(&mut prefix).map_err(io)?;
        check_header_len(u64::from_le_bytes(prefix), file_len - 8, path)?;
        // The file's real size (not a header value) bounds this allocation.
        let Ok(capacity) = usize::try_from(file_len) else {
            return file_err(
                path,
                "file",
                format!("{file_len} bytes do not fit in memory"),
            );
        };
        let mut bytes = Vec::with_capacity(capacity);
        bytes.extend_from_slice(&prefix);
        file.read_to_end(&mut bytes).map_err(io)?;
        Self::parse(&bytes, path)
    }

    /// The file's bytes (see the module docs for the exact layout).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.serialize(Path::new(MEMORY_PATH))
    }

    /// Writes the file atomically: to `<name>.tmp` in the same directory, fsync, then
    /// rename over `path`, so a reader (or a crash) never sees a half-written file.
    pub fn write(&self, path: &Path) -> Result<()> {
        let bytes = self.serialize(path)?;
        let Some(file_name) = path.file_name() else {
            return file_err(path, "path", "expected a file name, found none");
        };
        let mut tmp_name = file_name.to_os_string();
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        let result = write_synced(&tmp, &bytes).and_then(|()| {
            fs::rename(&tmp, path).map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })
        });
        if result.is_err() {
            // Best effort: do not leave a stray temporary file behind.
            let _ = fs::remove_file(&tmp);
        }
        result?;
        sync_parent_dir(path);
        Ok(())
    }

    /// The entry as f32 with the expected shape, or a clear error: missing tensor / wrong
    /// dtype / wrong shape.
    pub fn expect_f32(&self, name: &str, shape: &[usize], path: &Path) -> Result<&[f32]> {
        let e = self.require(name, path)?;
        let TensorData::F32(v) = &e.data else {
            return wrong_dtype(e, Dtype::F32, path);
        };
        check_shape(e, shape, path)?;
        Ok(v)
    }

    /// Like [`SafeTensors::expect_f32`] for F64.
    pub fn expect_f64(&self, name: &str, shape: &[usize], path: &Path) -> Result<&[f64]> {
        let e = self.require(name, path)?;
        let TensorData::F64(v) = &e.data else {
            return wrong_dtype(e, Dtype::F64, path);
        };
        check_shape(e, shape, path)?;
        Ok(v)
    }

    /// Like [`SafeTensors::expect_f32`] for I64.
    pub fn expect_i64(&self, name: &str, shape: &[usize], path: &Path) -> Result<&[i64]> {
        let e = self.require(name, path)?;
        let TensorData::I64(v) = &e.data else {
            return wrong_dtype(e, Dtype::I64, path);
        };
        check_shape(e, shape, path)?;
        Ok(v)
    }

    /// Like [`SafeTensors::expect_f32`] for I32.
    pub fn expect_i32(&self, name: &str, shape: &[usize], path: &Path) -> Result<&[i32]> {
        let e = self.require(name, path)?;
        let TensorData::I32(v) = &e.data else {
            return wrong_dtype(e, Dtype::I32, path);
        };
        check_shape(e, shape, path)?;
        Ok(v)
    }

    /// Like [`SafeTensors::expect_f32`] for U16.
    pub fn expect_u16(&self, name: &str, shape: &[usize], path: &Path) -> Result<&[u16]> {
        let e = self.require(name, path)?;
        let TensorData::U16(v) = &e.data else {
            return wrong_dtype(e, Dtype::U16, path);
        };
        check_shape(e, shape, path)?;
        Ok(v)
    }

    /// f32 data, converting F64 to f32 if needed, any shape; error if missing or an
    /// integer dtype.
    /// (For reference files, whose `f64.*` tensors are compared in f32.)
    pub fn f32_any(&self, name: &str, path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
        let e = self.require(name, path)?;
        let data = match &e.data {
            TensorData::F32(v) => v.clone(),
            TensorData::F64(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I64(_) | TensorData::I32(_) | TensorData::U16(_) => {
                return file_err(
                    path,
                    name,
                    format!("expected a float tensor (F32 or F64), found {}", e.dtype()),
                );
            }
        };
        Ok((e.shape.clone(), data))
    }

    /// The entry, or a "missing tensor" error listing (some of) the names present.
    fn require(&self, name: &str, path: &Path) -> Result<&Entry> {
        if let Some(e) = self.get(name) {
            return Ok(e);
        }
        const SHOWN: usize = 8;
        let mut present: Vec<&str> = self
            .entries
            .iter()
            .map(|e| e.name.as_str())
            .take(SHOWN)
            .collect();
        if self.entries.len() > SHOWN {
            present.push("...");
        }
        file_err(
            path,
            name,
            format!(
                "missing tensor (the file holds {} tensors: {})",
                self.entries.len(),
                present.join(", ")
            ),
        )
    }

    /// Serializes, reporting errors against `path`.
    fn serialize(&self, path: &Path) -> Result<Vec<u8>> {
        let mut names = BTreeSet::new();
        for e in &self.entries {
            check_entry(&e.name, &e.shape, &e.data, path)?;
            if !names.insert(e.name.as_str()) {
                return file_err(path, &e.name, "duplicate tensor name");
            }
        }

        // Larger dtypes first, then by name: every tensor starts at a multiple of its element
        // size (the header is padded to 8, and every size before a group is a multiple of
        // that group's element size, as 8, 4 and 2 divide each other).
        let mut order: Vec<&Entry> = self.entries.iter().collect();
        order.sort_by(|a, b| {
            b.dtype()
                .size()
                .cmp(&a.dtype().size())
                .then_with(|| a.name.cmp(&b.name))
        });

        let mut header = String::from("{");
        if !self.metadata.is_empty() {
            push_json_string(&mut header, METADATA_KEY);
            header.push_str(":{");
            for (i, (k, v)) in self.metadata.iter().enumerate() {
                if i > 0 {
                    header.push(',');
                }
                push_json_string(&mut header, k);
                header.push(':');
                push_json_string(&mut header, v);
            }
            header.push('}');
        }
        let mut offset = 0usize;
        for (i, e) in order.iter().enumerate() {
            let end = e
                .data
                .len()
                .checked_mul(e.dtype().size())
                .and_then(|n| n.checked_add(offset));
            let Some(end) = end else {
                return file_err(path, &e.name, "total data size overflows");
            };
            if i > 0 || !self.metadata.is_empty() {
                header.push(',');
            }
            push_json_string(&mut header, &e.name);
            header.push_str(":{\"dtype\":\"");
            header.push_str(e.dtype().name());
            header.push_str("\",\"shape\":[");
            let dims: Vec<String> = e.shape.iter().map(|d| d.to_string()).collect();
            header.push_str(&dims.join(","));
            header.push_str(&format!("],\"data_offsets\":[{offset},{end}]}}"));
            offset = end;
        }
        header.push('}');
        while header.len() % 8 != 0 {
            header.push(' ');
        }
        if header.len() as u64 > MAX_HEADER_LEN {
            return file_err(
                path,
                "header",
                format!(
                    "{} bytes, more than the {MAX_HEADER_LEN}-byte limit readers accept",
                    header.len()
                ),
            );
        }

        let Some(total) = offset.checked_add(8 + header.len()) else {
            return file_err(path, "data buffer", "total file size overflows");
        };
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        for e in order {
            e.data.extend_le_bytes(&mut out);
        }
        debug_assert_eq!(out.len(), total);
        Ok(out)
    }
}

/// Checks a tensor before it is stored or written.
fn check_entry(name: &str, shape: &[usize], data: &TensorData, path: &Path) -> Result<()> {
    if name == METADATA_KEY {
        return file_err(path, name, "this name is reserved for the metadata");
    }
    match numel(shape) {
        Some(n) if n == data.len() => Ok(()),
        Some(n) => file_err(
            path,
            name,
            format!(
                "shape {shape:?} holds {n} elements but the {} data has {}",
                data.dtype(),
                data.len()
            ),
        ),
        None => file_err(
            path,
            name,
            format!("shape {shape:?}: element count overflows"),
        ),
    }
}

fn check_shape(e: &Entry, shape: &[usize], path: &Path) -> Result<()> {
    if e.shape == shape {
        Ok(())
    } else {
        file_err(
            path,
            &e.name,
            format!("expected shape {shape:?}, found {:?}", e.shape),
        )
    }
}

fn wrong_dtype<T>(e: &Entry, expected: Dtype, path: &Path) -> Result<T> {
    file_err(
        path,
        &e.name,
        format!("expected dtype {expected}, found {}", e.dtype()),
    )
}

fn too_short<T>(path: &Path, len: u64) -> Result<T> {
    file_err(
        path,
        "header length",
        format!("the file is {len} bytes, shorter than the 8-byte header length (empty or truncated file?)"),
    )
}

/// Validates the header length `n` against the bytes available after the 8-byte prefix.
fn check_header_len(n: u64, available: u64, path: &Path) -> Result<usize> {
    if n > MAX_HEADER_LEN {
        return file_err(
            path,
            "header length",
            format!(
                "{n} bytes, more than the {MAX_HEADER_LEN}-byte limit (corrupt, or not a safetensors file)"
            ),
        );
    }
    if n > available {
        return file_err(
            path,
            "header length",
            format!(
                "{n} bytes, but only {available} bytes follow the 8-byte length (truncated file?)"
            ),
        );
    }
    // n <= 100 MB fits in usize on every supported platform.
    usize::try_from(n)
        .or_else(|_| file_err(path, "header length", format!("{n} does not fit in usize")))
}

/// Creates (truncating) `path`, writes `bytes` and fsyncs them to disk.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::create(path).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Best effort: fsync the directory so the rename itself is durable. Opening a directory
/// fails on some platforms (Windows), in which case there is nothing more we can do.
fn sync_parent_dir(path: &Path) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

// ---------------------------------------------------------------------------------------
// Header interpretation
// ---------------------------------------------------------------------------------------

/// One header entry, checked for JSON types but not yet against the data buffer.
struct TensorInfo {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    begin: usize,
    end: usize,
}

fn parse_metadata(value: Json, path: &Path) -> Result<BTreeMap<String, String>> {
    let members = match value {
        Json::Object(m) => m,
        // serde (and hence the reference implementation) reads `null` as "no metadata".
        Json::Null => return Ok(BTreeMap::new()),
        other => {
            return file_err(
                path,
                METADATA_KEY,
                format!(
                    "expected an object of string values, found {}",
                    other.describe()
                ),
            )
        }
    };
    let mut map = BTreeMap::new();
    for (k, v) in members {
        let Json::String(s) = v else {
            return file_err(
                path,
                METADATA_KEY,
                format!(
                    "value of \"{k}\": expected a string, found {}",
                    v.describe()
                ),
            );
        };
        if map.contains_key(&k) {
            return file_err(path, METADATA_KEY, format!("duplicate key \"{k}\""));
        }
        map.insert(k, s);
    }
    Ok(map)
}

fn parse_info(name: String, value: Json, path: &Path) -> Result<TensorInfo> {
    let Json::Object(fields) = value else {
        return file_err(
            path,
            name,
            format!(
                "expected an object with dtype, shape and data_offsets, found {}",
                value.describe()
            ),
        );
    };
    let mut dtype = None;
    let mut shape = None;
    let mut offsets = None;
    for (key, v) in fields {
        let field_err = |p: String| Error::File {
            path: path.to_path_buf(),
            field: name.clone(),
            problem: p,
        };
        match key.as_str() {
            "dtype" if dtype.is_none() => dtype = Some(parse_dtype(&v).map_err(field_err)?),
            "shape" if shape.is_none() => {
                shape = Some(parse_uint_array(&v, "shape", None).map_err(field_err)?);
            }
            "data_offsets" if offsets.is_none() => {
                offsets = Some(parse_uint_array(&v, "data_offsets", Some(2)).map_err(field_err)?);
            }
            "dtype" | "shape" | "data_offsets" => {
                return file_err(path, &name, format!("key \"{key}\" appears twice"));
            }
            other => {
                return file_err(
                    path,
                    &name,
                    format!("unexpected key \"{other}\" (expected dtype, shape and data_offsets)"),
                )
            }
        }
    }
    let missing = |key: &str| {
        file_err(
            path,
            &name,
            format!("missing \"{key}\" (each tensor needs dtype, shape and data_offsets)"),
        )
    };
    let Some(dtype) = dtype else {
        return missing("dtype");
    };
    let Some(shape) = shape else {
        return missing("shape");
    };
    let Some(offsets) = offsets else {
        return missing("data_offsets");
    };
    let [begin, end] = offsets[..] else {
        return missing("data_offsets");
    };
    Ok(TensorInfo {
        name,
        dtype,
        shape,
        begin,
        end,
    })
}

/// The dtype, or a message saying what was found and what is supported.
fn parse_dtype(v: &Json) -> std::result::Result<Dtype, String> {
    match v {
        Json::String(s) => Dtype::from_name(s).ok_or_else(|| {
            format!(
                "dtype: unsupported dtype {}; this reader supports F32, F64, I64, I32 and U16",
                v.describe()
            )
        }),
        other => Err(format!(
            "dtype: expected a string such as \"F32\", found {}",
            other.describe()
        )),
    }
}

/// An array of non-negative integers (of exactly `len` items if given).
fn parse_uint_array(
    v: &Json,
    what: &str,
    len: Option<usize>,
) -> std::result::Result<Vec<usize>, String> {
    let Json::Array(items) = v else {
        return Err(format!(
            "{what}: expected an array of non-negative integers, found {}",
            v.describe()
        ));
    };
    if let Some(n) = len {
        if items.len() != n {
            return Err(format!(
                "{what}: expected {n} integers [begin, end], found {} items",
                items.len()
            ));
        }
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let n = json_uint(item).map_err(|p| format!("{what}[{i}]: {p}"))?;
            usize::try_from(n).map_err(|_| format!("{what}[{i}]: {n} does not fit in usize"))
        })
        .collect()
}

/// A JSON number that is a non-negative integer. Floats (even `2.0`), negatives and values
/// beyond u64 are rejected: shapes and offsets are exact counts.
fn json_uint(v: &Json) -> std::result::Result<u64, String> {
    let Json::Number(lex) = v else {
        return Err(format!(
            "expected a non-negative integer, found {}",
            v.describe()
        ));
    };
    if lex.contains(['.', 'e', 'E']) {
        return Err(format!(
            "expected a non-negative integer, found the non-integer number {lex}"
        ));
    }
    if let Some(digits) = lex.strip_prefix('-') {
        if digits.bytes().all(|b| b == b'0') {
            return Ok(0); // "-0" is zero
        }
        return Err(format!(
            "expected a non-negative integer, found the negative number {lex}"
        ));
    }
    lex.parse::<u64>().map_err(|_| {
        format!("expected a non-negative integer, found {lex}, which does not fit in 64 bits")
    })
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------
