//! The deployed artifact for microcontrollers: a [`ModelSpec`] as one self-contained C99
//! source and header, for firmware built with any C compiler (no heap, no libm, nothing
//! beyond `<stdint.h>`, `<stddef.h>` and `<string.h>`).
//!
//! - Weights, CSR offsets and row pointers are `static const` arrays (flash on an MCU),
//!   written as the shortest decimal that reads back as the same `float`.
//! - One entry point, `int <name>_infer(const float *input, float *logits, float *arena)`,
//!   returns 0 (or -1 for a NULL pointer). The caller provides `arena`, of
//!   `<NAME>_ARENA_FLOATS` floats; [`plan`] keeps it as small as the layer order allows:
//!   each buffer lives from the step that writes it to the last step that reads it, and
//!   buffers whose lives do not overlap share memory.
//! - Kernels are the portable forms of the engine's, for the per-layer choice the engine
//!   makes ([`SparseModel::build`] with the given [`KernelChoice`]): CSR or dense
//!   convolution and linear layers, bias and ReLU fused, and a max pool that follows a
//!   convolution fused into it, so the full convolution output is never stored. They sum
//!   in the engine's order (per output position, the non-zeros in CSR order; linear rows
//!   in four partial sums), so the logits agree with the engine's to rounding (the engine
//!   may contract to FMA where the C compiler does not).
//! - Indices are 16-bit where they fit, else 32-bit; nothing is `double` or 64-bit, so a
//!   32-bit MCU with a single-precision FPU runs every operation in hardware.
//!
//! `embedded/` has the harnesses that run the export on the host, on an emulated
//! Cortex-M4F and Cortex-A53, and docs/embedded.md the figures.

use crate::error::{Error, Result};
use crate::model::{KernelChoice, SparseModel};
use crate::pool::Pool;
use crate::spec::{LayerSpec, ModelSpec};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The kernels' C text, in sections that start with a `/*@ name */` line; `IDX` and
/// `IDX_T` stand for the index width (`u16`, `uint16_t`) in the CSR kernels.
const KERNELS: &str = include_str!("c_kernels.c");

/// Longest accepted name: `<name>_infer` stays within C99's 31 significant characters
/// of an external identifier.
pub const MAX_NAME_LEN: usize = 24;

/// C99's keywords, which cannot name the model (its functions and macros start with it).
const C_KEYWORDS: [&str; 37] = [
    "auto",
    "break",
    "case",
    "char",
    "const",
    "continue",
    "default",
    "do",
    "double",
    "else",
    "enum",
    "extern",
    "float",
    "for",
    "goto",
    "if",
    "inline",
    "int",
    "long",
    "register",
    "restrict",
    "return",
    "short",
    "signed",
    "sizeof",
    "static",
    "struct",
    "switch",
    "typedef",
    "union",
    "unsigned",
    "void",
    "volatile",
    "while",
    "_Bool",
    "_Complex",
    "_Imaginary",
];

/// What to export and how.
#[derive(Clone, Debug)]
pub struct COptions {
    /// The C name: files `<name>.h`, `<name>.c`, function `<name>_infer`, macros
    /// `<NAME>_...` (upper case).
    pub name: String,
    /// The kernel choice per layer, as the engine makes it.
    pub choice: KernelChoice,
    /// Extra lines for the header comment (where the model came from, say).
    pub notes: Vec<String>,
}

/// A generated C model.
#[derive(Clone, Debug)]
pub struct CModel {
    pub name: String,
    /// `<name>.h` and `<name>.c`.
    pub header: String,
    pub source: String,
    /// Floats the caller's arena must hold (at least 1).
    pub arena_floats: usize,
    /// `csr`, `dense` or empty, per layer of the spec (the engine's choice).
    pub kernels: Vec<&'static str>,
    /// Bytes of the `static const` data: weights, indices, row pointers, biases.
    pub const_bytes: usize,
}

impl CModel {
    /// Writes `<name>.h` and `<name>.c` into `dir` (created if missing); returns their
    /// paths.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf)> {
        let io = |path: &Path, e: std::io::Error| Error::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let h = dir.join(format!("{}.h", self.name));
        let c = dir.join(format!("{}.c", self.name));
        std::fs::write(&h, &self.header).map_err(|e| io(&h, e))?;
        std::fs::write(&c, &self.source).map_err(|e| io(&c, e))?;
        Ok((h, c))
    }
}

fn bad<T>(
    field: impl Into<String>,
    expected: impl Into<String>,
    got: impl Into<String>,
) -> Result<T> {
    Err(Error::CExport {
        field: field.into(),
        expected: expected.into(),
        got: got.into(),
    })
}

/// Checks that `name` can name the model in C: `[A-Za-z_][A-Za-z0-9_]*`, at most
/// [`MAX_NAME_LEN`] characters, not a keyword, not reserved (`__x`, `_X`).
pub fn check_name(name: &str) -> Result<()> {
    let expected = format!(
        "a C identifier ([A-Za-z_][A-Za-z0-9_]*, 1 to {MAX_NAME_LEN} characters, not a C \
         keyword, not starting with __ or _ and a capital)"
    );
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && !(b[0] == b'_' && b.len() > 1 && (b[1] == b'_' || b[1].is_ascii_uppercase()))
        && !C_KEYWORDS.contains(&name);
    if ok {
        Ok(())
    } else {
        bad("name", expected, format!("{name:?}"))
    }
}

/// Where a step reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Val {
    Input,
    Logits,
    /// A planned buffer (index into the plan's buffers).
    Buf(usize),
}

/// A buffer of the arena: its length and the steps from its first write to its last read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buffer {
    pub len: usize,
    pub first: usize,
    pub last: usize,
    /// Offset in the arena (floats), set by [`plan`].
    pub offset: usize,
}

/// Offsets for `bufs` so that buffers live at the same step never overlap: largest first,
/// each at the lowest offset clear of the already placed buffers it meets (greedy
/// interval packing). Returns the arena length in floats.
pub fn plan(bufs: &mut [Buffer]) -> usize {
    let mut order: Vec<usize> = (0..bufs.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(bufs[i].len), i));
    let mut placed: Vec<usize> = vec![];
    let mut total = 0;
    for i in order {
        let meets = |j: usize| bufs[j].first <= bufs[i].last && bufs[i].first <= bufs[j].last;
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| meets(j))
            .map(|&j| (bufs[j].offset, bufs[j].offset + bufs[j].len))
            .collect();
        busy.sort_unstable();
        let mut at = 0;
        for (start, end) in busy {
            if at + bufs[i].len <= start {
                break;
            }
            at = at.max(end);
        }
        bufs[i].offset = at;
        total = total.max(at + bufs[i].len);
        placed.push(i);
    }
    total
}

/// One step of the generated `infer`.
#[derive(Clone, Debug)]
enum Step {
    Pad {
        src: Val,
        dst: Val,
        dims: [usize; 3],
        pad: usize,
    },
    Conv {
        layer: usize,
        src: Val,
        dst: Val,
        pool: Option<(usize, usize)>,
    },
    Linear {
        layer: usize,
        src: Val,
        dst: Val,
    },
    MaxPool {
        layer: usize,
        src: Val,
        dst: Val,
    },
    AvgPool {
        layer: usize,
        src: Val,
        dst: Val,
    },
    Relu {
        src: Val,
        dst: Val,
        len: usize,
    },
    Copy {
        src: Val,
        dst: Val,
        len: usize,
    },
}

/// The steps and buffers of a spec: conv + max pool fused, ReLU in place (copied when
/// its input is the caller's), the last step writing the logits.
fn schedule(spec: &ModelSpec, shapes: &[Vec<usize>]) -> (Vec<Step>, Vec<Buffer>) {
    let len = |i: usize| shapes[i].iter().product::<usize>();
    // Layers that write a new buffer (conv, linear, pools); the last of them writes the
    // logits. Relu and flatten work in place.
    let writes = |l: &LayerSpec| !matches!(l, LayerSpec::Relu | LayerSpec::Flatten);
    let last_writer = spec.layers.iter().rposition(writes);
    let mut steps = vec![];
    let mut bufs: Vec<Buffer> = vec![];
    let mut cur = Val::Input;
    let mut t = 0usize;
    // A new buffer of `n` floats written at step `t`.
    let new_buf = |bufs: &mut Vec<Buffer>, n: usize, t: usize| {
        bufs.push(Buffer {
            len: n,
            first: t,
            last: t,
            offset: 0,
        });
        Val::Buf(bufs.len() - 1)
    };
    let read = |bufs: &mut Vec<Buffer>, v: Val, t: usize| {
        if let Val::Buf(b) = v {
            bufs[b].last = bufs[b].last.max(t);
        }
    };
    let mut i = 0;
    while i < spec.layers.len() {
        let layer = &spec.layers[i];
        let is_last = Some(i) == last_writer
            || (Some(i + 1) == last_writer
                && matches!(layer, LayerSpec::Conv { .. })
                && matches!(spec.layers[i + 1], LayerSpec::MaxPool { .. }));
        match layer {
            LayerSpec::Conv { pad, .. } => {
                let pool = match spec.layers.get(i + 1) {
                    Some(&LayerSpec::MaxPool { k, s }) => Some((k, s)),
                    _ => None,
                };
                let out_i = if pool.is_some() { i + 2 } else { i + 1 };
                let mut src = cur;
                if *pad > 0 {
                    let [c, h, w] = [shapes[i][0], shapes[i][1], shapes[i][2]];
                    let xp = new_buf(&mut bufs, c * (h + 2 * pad) * (w + 2 * pad), t);
                    read(&mut bufs, cur, t);
                    steps.push(Step::Pad {
                        src: cur,
                        dst: xp,
                        dims: [c, h, w],
                        pad: *pad,
                    });
                    t += 1;
                    src = xp;
                }
                let dst = if is_last {
                    Val::Logits
                } else {
                    new_buf(&mut bufs, len(out_i), t)
                };
                read(&mut bufs, src, t);
                steps.push(Step::Conv {
                    layer: i,
                    src,
                    dst,
                    pool,
                });
                t += 1;
                cur = dst;
                i = out_i;
                continue;
            }
            LayerSpec::Relu => {
                let dst = if cur == Val::Input {
                    new_buf(&mut bufs, len(i), t)
                } else {
                    cur
                };
                read(&mut bufs, cur, t);
                steps.push(Step::Relu {
                    src: cur,
                    dst,
                    len: len(i),
                });
                t += 1;
                cur = dst;
            }
            LayerSpec::Flatten => {}
            LayerSpec::Linear { .. } | LayerSpec::MaxPool { .. } | LayerSpec::AvgPool { .. } => {
                let dst = if is_last {
                    Val::Logits
                } else {
                    new_buf(&mut bufs, len(i + 1), t)
                };
                read(&mut bufs, cur, t);
                let (layer, src) = (i, cur);
                steps.push(match spec.layers[i].kind() {
                    "linear" => Step::Linear { layer, src, dst },
                    "max_pool" => Step::MaxPool { layer, src, dst },
                    _ => Step::AvgPool { layer, src, dst },
                });
                t += 1;
                cur = dst;
            }
        }
        i += 1;
    }
    if cur != Val::Logits {
        // No layer wrote the logits (a network of ReLUs and flattens only).
        read(&mut bufs, cur, t);
        steps.push(Step::Copy {
            src: cur,
            dst: Val::Logits,
            len: len(spec.layers.len()),
        });
    }
    (steps, bufs)
}

/// Shortest decimal that reads back as the same `float`, as a C float constant.
fn c_float(v: f32) -> String {
    format!("{v:e}f")
}

/// A `static const` array, eight values a line. C has no empty arrays: an empty one gets
/// a single unused zero.
fn array(out: &mut String, ty: &str, name: &str, values: &[String], comment: &str) {
    let _ = writeln!(out, "/* {comment} */");
    let n = values.len().max(1);
    let _ = writeln!(out, "static const {ty} {name}[{n}] = {{");
    if values.is_empty() {
        let _ = writeln!(out, "    0 /* empty: never read */");
    }
    for chunk in values.chunks(8) {
        let _ = writeln!(out, "    {},", chunk.join(", "));
    }
    let _ = writeln!(out, "}};\n");
}

/// The kernel sections named in `want`, the CSR ones for each index width in `widths`.
fn kernels(want: &[&str], widths: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut sections = KERNELS.split("/*@ ").skip(1);
    for sec in sections.by_ref() {
        let (name, body) = sec.split_once(" */\n").unwrap_or((sec, ""));
        if !want.contains(&name) {
            continue;
        }
        if body.contains("IDX") {
            for (idx, ty) in widths {
                out += &body.replace("IDX_T", ty).replace("IDX", idx);
            }
        } else {
            out += body;
        }
    }
    out
}

fn idx_width(max: usize) -> (&'static str, &'static str, usize) {
    if max <= u16::MAX as usize {
        ("u16", "uint16_t", 2)
    } else {
        ("u32", "uint32_t", 4)
    }
}

/// The C export of `spec` with the engine's kernel choice per layer (see the module docs).
pub fn export(spec: &ModelSpec, opts: &COptions) -> Result<CModel> {
    check_name(&opts.name)?;
    let built = SparseModel::build(spec, opts.choice)?;
    let shapes = spec.shapes()?;
    for (i, l) in spec.layers.iter().enumerate() {
        let (w, b) = match l {
            LayerSpec::Conv { w, bias, .. } | LayerSpec::Linear { w, bias, .. } => (w, bias),
            _ => continue,
        };
        if let Some(k) = w.values().iter().chain(b).position(|v| !v.is_finite()) {
            let what = if k < w.nnz() { "weights" } else { "bias" };
            return bad(
                format!("layer {i} ({}) {what}", l.kind()),
                "finite values (C99 has no NaN or infinity constant without <math.h>)",
                format!(
                    "{} at position {}",
                    w.values().iter().chain(b).nth(k).unwrap(),
                    k
                ),
            );
        }
    }
    let kernels_used: Vec<&'static str> = built.layers().iter().map(|l| l.kernel).collect();
    let (steps, mut bufs) = schedule(spec, &shapes);
    let arena_floats = plan(&mut bufs).max(1);
    if arena_floats > i32::MAX as usize / 4 {
        return bad(
            "arena",
            format!("at most {} floats", i32::MAX / 4),
            arena_floats.to_string(),
        );
    }
    let name = &opts.name;
    let upper = name.to_ascii_uppercase();
    let (total, nnz) = spec.weight_counts();
    let rate = total as f64 / nnz.max(1) as f64;
    let [c0, h0, w0] = spec.input;
    let out_len: usize = shapes.last().map_or(0, |s| s.iter().product());
    let choice = match opts.choice {
        KernelChoice::Auto => "auto (the sparse engine's per-layer choice by density)",
        KernelChoice::Sparse => "csr (CSR kernels everywhere)",
        KernelChoice::Dense => "dense (dense kernels everywhere)",
    };

    // The comment block, in both files.
    let mut about = String::new();
    let _ = writeln!(
        about,
        " * {} exported to C99 by rcc {} (rcc-sparse c_export).",
        spec.arch,
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        about,
        " * Input [{c0}, {h0}, {w0}] floats (C, H, W), {out_len} logits out."
    );
    let _ = writeln!(
        about,
        " * Weights: {nnz} of {total} non-zero ({:.2}%), compression rate {rate:.2}x.",
        100.0 * nnz as f64 / total.max(1) as f64
    );
    let _ = writeln!(about, " * Kernels: {choice}.");
    let _ = writeln!(about, " *");
    let _ = writeln!(
        about,
        " * layer  kind      kernel  output          weights        nnz"
    );
    for (i, (l, k)) in spec.layers.iter().zip(&kernels_used).enumerate() {
        let (wt, nz) = l.weights().map_or((String::new(), String::new()), |w| {
            ((w.rows() * w.cols()).to_string(), w.nnz().to_string())
        });
        let _ = writeln!(
            about,
            " * {i:>5}  {:<9} {:<7} {:<15} {wt:>8} {nz:>10}",
            l.kind(),
            k,
            format!("{:?}", shapes[i + 1]),
        );
    }
    let _ = writeln!(about, " *");
    let _ = writeln!(
        about,
        " * Arena: {arena_floats} floats ({} bytes), provided by the caller.",
        4 * arena_floats
    );
    for n in &opts.notes {
        let _ = writeln!(about, " * {}", n.replace("*/", "* /"));
    }

    let mut h = String::new();
    let _ = writeln!(h, "/* {name}.h: generated by rcc; do not edit.\n *");
    h += &about;
    let _ = writeln!(h, " */");
    let _ = writeln!(h, "#ifndef {upper}_H\n#define {upper}_H\n");
    let _ = writeln!(
        h,
        "#define {upper}_ARCH \"{}\"",
        spec.arch.replace(['"', '\\'], "_")
    );
    let _ = writeln!(h, "/* Compression rate: weights over non-zero weights. */");
    let _ = writeln!(h, "#define {upper}_RATE {rate:.2}f");
    let _ = writeln!(h, "#define {upper}_WEIGHTS {total}");
    let _ = writeln!(h, "#define {upper}_NONZEROS {nnz}");
    let _ = writeln!(h, "#define {upper}_INPUT_C {c0}");
    let _ = writeln!(h, "#define {upper}_INPUT_H {h0}");
    let _ = writeln!(h, "#define {upper}_INPUT_W {w0}");
    let _ = writeln!(h, "#define {upper}_INPUT_LEN {}", c0 * h0 * w0);
    let _ = writeln!(h, "#define {upper}_OUTPUT_LEN {out_len}");
    let _ = writeln!(
        h,
        "/* Working memory of one inference, provided by the caller. */"
    );
    let _ = writeln!(h, "#define {upper}_ARENA_FLOATS {arena_floats}");
    let _ = writeln!(h, "#define {upper}_ARENA_BYTES {}\n", 4 * arena_floats);
    let _ = writeln!(h, "#ifdef __cplusplus\nextern \"C\" {{\n#endif\n");
    let _ = writeln!(
        h,
        "/* Logits for one input [{upper}_INPUT_LEN] into logits [{upper}_OUTPUT_LEN], using\n \
         * arena [{upper}_ARENA_FLOATS] as scratch. Returns 0, or -1 if a pointer is NULL.\n \
         * Reentrant: all state is in the arguments. */"
    );
    let _ = writeln!(
        h,
        "int {name}_infer(const float *input, float *logits, float *arena);\n"
    );
    let _ = writeln!(
        h,
        "#ifdef __cplusplus\n}}\n#endif\n\n#endif /* {upper}_H */"
    );

    // The data, per layer, and the calls of `infer`, per step.
    let mut data = String::new();
    let mut body = String::new();
    let mut want: Vec<&str> = vec![];
    let mut widths: Vec<(&str, &str)> = vec![];
    let mut const_bytes = 0usize;
    let (mut n_conv, mut n_fc) = (0, 0);
    let mut names: Vec<String> = vec![String::new(); spec.layers.len()];
    let mut pending_pad: Option<String> = None;
    for (i, l) in spec.layers.iter().enumerate() {
        names[i] = match l {
            LayerSpec::Conv { .. } => {
                n_conv += 1;
                format!("conv{n_conv}")
            }
            LayerSpec::Linear { .. } => {
                n_fc += 1;
                format!("fc{n_fc}")
            }
            _ => format!("layer{i}"),
        };
    }
    let loc = |v: Val| match v {
        Val::Input => "input".to_string(),
        Val::Logits => "logits".to_string(),
        Val::Buf(b) => format!("arena + {}", bufs[b].offset),
    };
    let floats = |v: &[f32]| v.iter().map(|&x| c_float(x)).collect::<Vec<_>>();
    let ints = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>();
    for step in &steps {
        match *step {
            Step::Pad {
                src,
                dst,
                dims: [c, hh, ww],
                pad,
            } => {
                want.push("pad_input");
                // Printed under the convolution's comment.
                pending_pad = Some(format!(
                    "    pad_input({}, {}, {c}, {hh}, {ww}, {pad});\n",
                    loc(src),
                    loc(dst)
                ));
            }
            Step::Conv {
                layer,
                src,
                dst,
                pool,
            } => {
                let LayerSpec::Conv {
                    ref w,
                    in_channels: c,
                    kh,
                    kw,
                    stride,
                    pad,
                    ref bias,
                    relu,
                } = spec.layers[layer]
                else {
                    unreachable!("a conv step is built from a conv layer")
                };
                let lname = &names[layer];
                let (hp, wp) = (shapes[layer][1] + 2 * pad, shapes[layer][2] + 2 * pad);
                let (pk, ps) = pool.unwrap_or((1, 1));
                let out = &shapes[if pool.is_some() { layer + 2 } else { layer + 1 }];
                let dense = kernels_used[layer] == "dense";
                let pool2 = pk == 2 && stride == 1;
                let conv_out = &shapes[layer + 1];
                let pool_txt = pool.map_or(String::new(), |(k, s)| {
                    format!(", max pool {k}x{k} stride {s} fused")
                });
                let _ = writeln!(
                    body,
                    "\n    /* {lname}: {:?} -> {:?}, {kh}x{kw} stride {stride} pad {pad}, {} \
                     ({} of {} weights){}{pool_txt} -> {:?}. */",
                    shapes[layer],
                    conv_out,
                    if dense { "dense" } else { "CSR" },
                    w.nnz(),
                    w.rows() * w.cols(),
                    if relu { ", ReLU" } else { "" },
                    out
                );
                body += &pending_pad.take().unwrap_or_default();
                let _ = writeln!(
                    data,
                    "/* {lname}: {c} -> {} channels, {kh}x{kw}, stride {stride}, padding {pad}. */",
                    w.rows()
                );
                let _ = writeln!(
                    data,
                    "static const struct conv_geom {lname}_geom = {{\n    .in_c = {c}, .in_h = {hp}, \
                     .in_w = {wp},\n    .kh = {kh}, .kw = {kw}, .stride = {stride},\n    \
                     .out_c = {}, .out_h = {}, .out_w = {},\n    .pool_k = {pk}, .pool_s = {ps},\n    \
                     .relu = {}\n}};\n",
                    out[0],
                    out[1],
                    out[2],
                    u32::from(relu)
                );
                array(
                    &mut data,
                    "float",
                    &format!("{lname}_bias"),
                    &floats(bias),
                    &format!("{lname}: bias [{}]", bias.len()),
                );
                const_bytes += 4 * bias.len();
                want.extend(["act", "conv_geom"]);
                if dense {
                    array(
                        &mut data,
                        "float",
                        &format!("{lname}_w"),
                        &floats(&w.to_dense()),
                        &format!("{lname}: weights [{}][{c}][{kh}][{kw}]", w.rows()),
                    );
                    const_bytes += 4 * w.rows() * w.cols();
                    let k = if pool2 {
                        "conv_dense_pool2"
                    } else {
                        "conv_dense"
                    };
                    want.push(k);
                    let _ = writeln!(
                        body,
                        "    {k}(&{lname}_geom, {lname}_w, {lname}_bias, {}, {});",
                        loc(src),
                        loc(dst)
                    );
                } else {
                    // Each non-zero's offset in the padded input.
                    let offs: Vec<usize> = w
                        .col_idx()
                        .to_usize()
                        .into_iter()
                        .map(|t| {
                            let (ci, ki, kj) = (t / (kh * kw), (t / kw) % kh, t % kw);
                            (ci * hp + ki) * wp + kj
                        })
                        .collect();
                    let (idx, ty, bytes) = idx_width(c * hp * wp);
                    if !widths.contains(&(idx, ty)) {
                        widths.push((idx, ty));
                    }
                    array(
                        &mut data,
                        "float",
                        &format!("{lname}_val"),
                        &floats(w.values()),
                        &format!(
                            "{lname}: the {} non-zero weights, row (output channel) after row",
                            w.nnz()
                        ),
                    );
                    array(
                        &mut data,
                        ty,
                        &format!("{lname}_off"),
                        &ints(&offs),
                        &format!(
                            "{lname}: input offset of each non-zero, (c * {hp} + ki) * {wp} + kj"
                        ),
                    );
                    let rp: Vec<usize> = w.row_ptr().iter().map(|&r| r as usize).collect();
                    array(
                        &mut data,
                        "uint32_t",
                        &format!("{lname}_row"),
                        &ints(&rp),
                        &format!("{lname}: channel o's non-zeros are [row[o], row[o + 1])"),
                    );
                    const_bytes += 4 * w.nnz() + bytes * w.nnz() + 4 * rp.len();
                    let k = if pool2 { "conv_csr_pool2" } else { "conv_csr" };
                    want.push(k);
                    let _ = writeln!(
                        body,
                        "    {k}_{idx}(&{lname}_geom, {lname}_val, {lname}_off, {lname}_row, \
                         {lname}_bias, {}, {});",
                        loc(src),
                        loc(dst)
                    );
                }
            }
            Step::Linear { layer, src, dst } => {
                let LayerSpec::Linear {
                    ref w,
                    ref bias,
                    relu,
                } = spec.layers[layer]
                else {
                    unreachable!("a linear step is built from a linear layer")
                };
                let lname = &names[layer];
                let dense = kernels_used[layer] == "dense";
                let (fout, fin) = (w.rows(), w.cols());
                let _ = writeln!(
                    body,
                    "\n    /* {lname}: {fin} -> {fout}, {} ({} of {} weights){}. */",
                    if dense { "dense" } else { "CSR" },
                    w.nnz(),
                    fout * fin,
                    if relu { ", ReLU" } else { "" }
                );
                let _ = writeln!(data, "/* {lname}: {fin} -> {fout} features. */");
                array(
                    &mut data,
                    "float",
                    &format!("{lname}_bias"),
                    &floats(bias),
                    &format!("{lname}: bias [{fout}]"),
                );
                const_bytes += 4 * fout;
                want.push("act");
                if dense {
                    array(
                        &mut data,
                        "float",
                        &format!("{lname}_w"),
                        &floats(&w.to_dense()),
                        &format!("{lname}: weights [{fout}][{fin}]"),
                    );
                    const_bytes += 4 * fout * fin;
                    want.push("linear_dense");
                    let _ = writeln!(
                        body,
                        "    linear_dense({lname}_w, {lname}_bias, {fin}, {fout}, {}, {}, {});",
                        u32::from(relu),
                        loc(src),
                        loc(dst)
                    );
                } else {
                    let (idx, ty, bytes) = idx_width(fin.saturating_sub(1));
                    if !widths.contains(&(idx, ty)) {
                        widths.push((idx, ty));
                    }
                    array(
                        &mut data,
                        "float",
                        &format!("{lname}_val"),
                        &floats(w.values()),
                        &format!("{lname}: the {} non-zero weights, row after row", w.nnz()),
                    );
                    array(
                        &mut data,
                        ty,
                        &format!("{lname}_col"),
                        &ints(&w.col_idx().to_usize()),
                        &format!("{lname}: input feature of each non-zero"),
                    );
                    let rp: Vec<usize> = w.row_ptr().iter().map(|&r| r as usize).collect();
                    array(
                        &mut data,
                        "uint32_t",
                        &format!("{lname}_row"),
                        &ints(&rp),
                        &format!("{lname}: output r's non-zeros are [row[r], row[r + 1])"),
                    );
                    const_bytes += 4 * w.nnz() + bytes * w.nnz() + 4 * rp.len();
                    want.push("linear_csr");
                    let _ = writeln!(
                        body,
                        "    linear_csr_{idx}({lname}_val, {lname}_col, {lname}_row, {lname}_bias, \
                         {fout}, {}, {}, {});",
                        u32::from(relu),
                        loc(src),
                        loc(dst)
                    );
                }
            }
            Step::MaxPool { layer, src, dst } | Step::AvgPool { layer, src, dst } => {
                let (k, s) = match spec.layers[layer] {
                    LayerSpec::MaxPool { k, s } | LayerSpec::AvgPool { k, s } => (k, s),
                    _ => unreachable!("a pool step is built from a pool layer"),
                };
                let inp = &shapes[layer];
                let p = Pool::new([inp[0], inp[1], inp[2]], k, s);
                let avg = matches!(step, Step::AvgPool { .. });
                let _ = writeln!(
                    body,
                    "\n    /* layer {layer}: {} pool {k}x{k} stride {s}, {inp:?} -> {:?}. */",
                    if avg { "average" } else { "max" },
                    [p.c, p.oh, p.ow]
                );
                if avg {
                    want.push("avg_pool");
                    let _ = writeln!(
                        body,
                        "    avg_pool({}, {}, {}, {}, {}, {k}, {s}, {});",
                        loc(src),
                        loc(dst),
                        p.c,
                        p.h,
                        p.w,
                        c_float(1.0 / (k * k) as f32)
                    );
                } else {
                    want.push("max_pool");
                    let _ = writeln!(
                        body,
                        "    max_pool({}, {}, {}, {}, {}, {k}, {s});",
                        loc(src),
                        loc(dst),
                        p.c,
                        p.h,
                        p.w
                    );
                }
            }
            Step::Relu { src, dst, len } => {
                want.push("relu");
                let _ = writeln!(body, "\n    /* ReLU. */");
                let _ = writeln!(body, "    relu({}, {}, {len});", loc(src), loc(dst));
            }
            Step::Copy { src, dst, len } => {
                let _ = writeln!(
                    body,
                    "\n    memcpy({}, {}, {len} * sizeof(float));",
                    loc(dst),
                    loc(src)
                );
            }
        }
    }

    let mut c = String::new();
    let _ = writeln!(c, "/* {name}.c: generated by rcc; do not edit.\n *");
    c += &about;
    let _ = writeln!(
        c,
        " *\n * Plain C99: no heap, no libm, no double. Weights and indices are static const\n \
         * (flash on a microcontroller); the only writable memory is the caller's arena.\n */"
    );
    let _ = writeln!(
        c,
        "#include <stddef.h>\n#include <stdint.h>\n#include <string.h>\n\n#include \"{name}.h\"\n"
    );
    c += &kernels(&want, &widths);
    c += "\n";
    c += &data;
    let _ = writeln!(
        c,
        "int {name}_infer(const float *input, float *logits, float *arena)\n{{\n    \
         if (input == NULL || logits == NULL || arena == NULL) {{\n        return -1;\n    }}"
    );
    c += &body;
    let _ = writeln!(c, "    return 0;\n}}");

    Ok(CModel {
        name: name.clone(),
        header: h,
        source: c,
        arena_floats,
        kernels: kernels_used,
        const_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csr::Csr;
    use crate::linear::tests::sparse_vec;
    use crate::model::tests::model;
    use rcc_nn::layers::Layer;
    use rcc_nn::{Arch, Model};
    use std::process::Command;

    fn opts(name: &str, choice: KernelChoice) -> COptions {
        COptions {
            name: name.into(),
            choice,
            notes: vec!["test model".into()],
        }
    }

    #[test]
    fn names_must_be_c_identifiers() {
        for ok in ["lenet", "m", "_x", "model_16x", "a1234567890123456789012z"] {
            check_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad_name in [
            "",
            "3net",
            "le-net",
            "le net",
            "int",
            "static",
            "__x",
            "_X",
            "café",
            "a12345678901234567890123z",
        ] {
            let e = check_name(bad_name).unwrap_err().to_string();
            assert!(
                e.contains("C export: name") && e.contains("C identifier"),
                "{bad_name:?}: {e}"
            );
            let spec = ModelSpec::from_model(&Model::new(Arch::LenetAdv(1), 0)).unwrap();
            assert!(export(&spec, &opts(bad_name, KernelChoice::Auto)).is_err());
        }
    }

    #[test]
    fn non_finite_weights_are_refused() {
        let mut m = Model::new(Arch::LenetAdv(1), 0);
        let Layer::Linear { bias: Some(b), .. } = m.net.layers[m.net.layers.len() - 1] else {
            panic!("lenet_adv ends in a linear layer with a bias")
        };
        let r = m.net.params.view(b).range();
        m.params[r.start + 3] = f32::NAN;
        let spec = ModelSpec::from_model(&m).unwrap();
        let e = export(&spec, &opts("m", KernelChoice::Auto))
            .unwrap_err()
            .to_string();
        assert!(e.contains("(linear) bias") && e.contains("finite"), "{e}");
    }

    /// The one layer the conversion cannot take (the C export starts from its spec): a
    /// batch norm that does not follow a convolution cannot be folded.
    #[test]
    fn unfoldable_batch_norm_is_a_clear_error() {
        let mut m = Model::new(Arch::Vgg16(1), 0);
        // conv, bn, relu -> conv, relu, bn.
        m.net.layers.swap(1, 2);
        let e = ModelSpec::from_model(&m).unwrap_err().to_string();
        assert!(
            e.contains("batch norm that does not directly follow a conv"),
            "{e}"
        );
    }

    #[test]
    fn plan_shares_memory_between_buffers_that_never_meet() {
        let b = |len, first, last| Buffer {
            len,
            first,
            last,
            offset: usize::MAX,
        };
        // 0 and 1 meet at step 1, 1 and 2 at step 2; 0 and 2 never meet.
        let mut bufs = vec![b(100, 0, 1), b(50, 1, 2), b(80, 2, 3)];
        assert_eq!(plan(&mut bufs), 150);
        assert_eq!(
            (bufs[0].offset, bufs[1].offset, bufs[2].offset),
            (0, 100, 0)
        );
        // All live at once: stacked.
        let mut all = vec![b(10, 0, 5), b(20, 0, 5), b(30, 0, 5)];
        assert_eq!(plan(&mut all), 60);
    }

    /// lenet_adv:4's arena: the padded input of conv2 (8x18x18) with conv1's pooled
    /// output (8x14x14) beside it; a quarter of the engine's.
    #[test]
    fn lenet_adv4_arena_is_planned_small() {
        let spec = ModelSpec::from_model(&model(Arch::LenetAdv(4), 0.9, 1)).unwrap();
        let c = export(&spec, &opts("lenet", KernelChoice::Auto)).unwrap();
        assert_eq!(c.arena_floats, 8 * 18 * 18 + 8 * 14 * 14);
        let engine = SparseModel::build(&spec, KernelChoice::Auto).unwrap();
        assert!(4 * c.arena_floats * 3 < engine.arena_bytes(), "{c:?}");
        assert!(c.header.contains("#define LENET_ARENA_FLOATS 4160"));
        assert!(c
            .source
            .contains("int lenet_infer(const float *input, float *logits, float *arena)"));
    }

    #[test]
    fn source_is_plain_c99_without_double() {
        let spec = ModelSpec::from_model(&model(Arch::Lenet5, 0.5, 1)).unwrap();
        let c = export(&spec, &opts("net", KernelChoice::Auto)).unwrap();
        let includes: Vec<&str> = c
            .source
            .lines()
            .chain(c.header.lines())
            .filter(|l| l.starts_with("#include"))
            .collect();
        assert_eq!(
            includes,
            [
                "#include <stddef.h>",
                "#include <stdint.h>",
                "#include <string.h>",
                "#include \"net.h\""
            ]
        );
        // The code, comments removed.
        let code = |t: &str| {
            t.split("/*")
                .enumerate()
                .map(|(i, part)| {
                    if i == 0 {
                        part
                    } else {
                        part.split_once("*/").map_or("", |p| p.1)
                    }
                })
                .collect::<String>()
        };
        for text in [code(&c.source), code(&c.header)] {
            for word in ["double", "malloc", "int64", "long"] {
                assert!(!text.contains(word), "{word}");
            }
            assert!(text.contains("float"));
        }
        // Mixed per-layer choice at 50%: dense convs, CSR linear layers.
        assert_eq!(c.kernels, ["dense", "", "dense", "", "", "csr", "csr"]);
        assert!(c.source.contains("static const float conv1_w[500]"));
        assert!(c.source.contains("static const uint16_t fc1_col["));
        // Deterministic.
        assert_eq!(
            export(&spec, &opts("net", KernelChoice::Auto))
                .unwrap()
                .source,
            c.source
        );
    }

    /// A network with every step kind: a ReLU on the caller's input (copied), a strided
    /// CSR convolution, an unfused max pool, an average pool and two linear layers.
    fn odd_spec() -> ModelSpec {
        let conv_w = sparse_vec(3 * 2 * 9, 0.5, 1);
        let fc1 = sparse_vec(5 * 12, 0.3, 2);
        let fc2 = sparse_vec(4 * 5, 0.0, 3);
        ModelSpec {
            arch: "odd".into(),
            input: [2, 13, 13],
            layers: vec![
                LayerSpec::Relu,
                LayerSpec::Conv {
                    w: Csr::from_dense(&conv_w, 3, 18).unwrap(),
                    in_channels: 2,
                    kh: 3,
                    kw: 3,
                    stride: 2,
                    pad: 1,
                    bias: sparse_vec(3, 0.0, 4),
                    relu: false,
                },
                LayerSpec::Relu,
                LayerSpec::MaxPool { k: 3, s: 2 },
                LayerSpec::AvgPool { k: 2, s: 1 },
                LayerSpec::Flatten,
                LayerSpec::Linear {
                    w: Csr::from_dense(&fc1, 5, 12).unwrap(),
                    bias: sparse_vec(5, 0.0, 5),
                    relu: true,
                },
                LayerSpec::Linear {
                    w: Csr::from_dense(&fc2, 4, 5).unwrap(),
                    bias: sparse_vec(4, 0.0, 6),
                    relu: false,
                },
            ],
        }
    }

    /// Convolutions with fused pools of every shape: a 3x3/2 window on a stride-1
    /// convolution, a 2x2/1 window on a stride-2 one, a 2x2/1 window on a 1x1 one.
    fn pools_spec() -> ModelSpec {
        let conv =
            |o: usize, c: usize, k: usize, stride: usize, pad: usize, seed: u64| LayerSpec::Conv {
                w: Csr::from_dense(&sparse_vec(o * c * k * k, 0.4, seed), o, c * k * k).unwrap(),
                in_channels: c,
                kh: k,
                kw: k,
                stride,
                pad,
                bias: sparse_vec(o, 0.0, seed + 1),
                relu: seed.is_multiple_of(2),
            };
        ModelSpec {
            arch: "pools".into(),
            input: [2, 15, 15],
            layers: vec![
                conv(3, 2, 3, 1, 0, 20),
                LayerSpec::MaxPool { k: 3, s: 2 },
                conv(4, 3, 3, 2, 1, 23),
                LayerSpec::MaxPool { k: 2, s: 1 },
                conv(2, 4, 1, 1, 0, 26),
                LayerSpec::MaxPool { k: 2, s: 1 },
                LayerSpec::Flatten,
                LayerSpec::Linear {
                    w: Csr::from_dense(&sparse_vec(6, 0.0, 30), 3, 2).unwrap(),
                    bias: sparse_vec(3, 0.0, 31),
                    relu: false,
                },
            ],
        }
    }

    /// Large enough for 32-bit indices: the padded input of the convolution has 260 x 260
    /// values, the linear layer 133,128 inputs.
    fn wide_spec() -> ModelSpec {
        let conv_w = sparse_vec(2 * 9, 0.3, 7);
        let fc = sparse_vec(3 * 2 * 258 * 258, 0.99, 8);
        ModelSpec {
            arch: "wide".into(),
            input: [1, 258, 258],
            layers: vec![
                LayerSpec::Conv {
                    w: Csr::from_dense(&conv_w, 2, 9).unwrap(),
                    in_channels: 1,
                    kh: 3,
                    kw: 3,
                    stride: 1,
                    pad: 1,
                    bias: sparse_vec(2, 0.0, 9),
                    relu: true,
                },
                LayerSpec::Flatten,
                LayerSpec::Linear {
                    w: Csr::from_dense(&fc, 3, 2 * 258 * 258).unwrap(),
                    bias: sparse_vec(3, 0.0, 10),
                    relu: false,
                },
            ],
        }
    }

    /// The C compilers here: `$CC` or `cc`, and `clang` when present.
    fn compilers() -> Vec<String> {
        let mut v = vec![std::env::var("CC").unwrap_or_else(|_| "cc".into())];
        v.push("clang".into());
        v.dedup();
        v.into_iter()
            .filter(|c| {
                Command::new(c)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .collect()
    }

    /// Reads raw f32 inputs from stdin, writes raw f32 logits to stdout.
    const DRIVER: &str = r#"#include <stdio.h>
#include "NAME.h"
int main(void)
{
    static float arena[UPPER_ARENA_FLOATS], in[UPPER_INPUT_LEN], out[UPPER_OUTPUT_LEN];
    while (fread(in, sizeof in[0], UPPER_INPUT_LEN, stdin) == UPPER_INPUT_LEN) {
        if (NAME_infer(in, out, arena) != 0 || NAME_infer(NULL, out, arena) != -1) {
            return 2;
        }
        fwrite(out, sizeof out[0], UPPER_OUTPUT_LEN, stdout);
    }
    return 0;
}
"#;

    /// Issue 23, must-show 1 in CI: every kernel and both index widths compiled by the
    /// host C compiler(s) at `-std=c99 -Wall -Wextra -Werror -pedantic`, the logits
    /// within 1e-5 (relative to the sample's largest logit) of the sparse engine's and
    /// the same classes, on 24 seeded inputs per model. Skips, saying so, without a C
    /// compiler.
    #[test]
    fn host_compiled_export_matches_the_engine() {
        let ccs = compilers();
        if ccs.is_empty() {
            eprintln!("SKIPPED host_compiled_export_matches_the_engine: no C compiler (cc)");
            return;
        }
        let spec = |arch, sparsity| ModelSpec::from_model(&model(arch, sparsity, 3)).unwrap();
        let cases = [
            ("adv_auto", spec(Arch::LenetAdv(1), 0.9), KernelChoice::Auto),
            (
                "adv_dense",
                spec(Arch::LenetAdv(1), 0.5),
                KernelChoice::Dense,
            ),
            ("lenet5_95", spec(Arch::Lenet5, 0.95), KernelChoice::Auto),
            ("lenet5_50", spec(Arch::Lenet5, 0.5), KernelChoice::Auto),
            ("mlp_csr", spec(Arch::Mlp, 0.9), KernelChoice::Sparse),
            ("vgg_auto", spec(Arch::Vgg16(1), 0.8), KernelChoice::Auto),
            ("odd", odd_spec(), KernelChoice::Auto),
            ("odd_dense", odd_spec(), KernelChoice::Dense),
            ("wide", wide_spec(), KernelChoice::Sparse),
            ("pools", pools_spec(), KernelChoice::Sparse),
            ("pools_dense", pools_spec(), KernelChoice::Dense),
            ("vgg_dense", spec(Arch::Vgg16(1), 0.5), KernelChoice::Dense),
        ];
        // Every kernel of c_kernels.c is compiled and checked by some case.
        let all: String = cases
            .iter()
            .map(|(n, s, c)| export(s, &opts(n, *c)).unwrap().source)
            .collect();
        for k in KERNELS
            .split("/*@ ")
            .skip(1)
            .filter_map(|s| s.split_once(" */"))
        {
            let name = k.0;
            let struct_or_fn = [
                format!("struct {name} "),
                format!(" {name}("),
                format!(" {name}_u16("),
            ];
            assert!(
                struct_or_fn.iter().any(|t| all.contains(t.as_str())),
                "kernel {name} never used"
            );
        }
        let dir = std::env::temp_dir().join(format!("rcc-c-export-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, spec, choice) in &cases {
            let c = export(spec, &opts(name, *choice)).unwrap();
            if *name == "wide" {
                assert!(c.source.contains("static const uint32_t conv1_off["));
                assert!(c.source.contains("static const uint32_t fc1_col["));
            }
            c.write(&dir).unwrap();
            let driver = DRIVER
                .replace("UPPER", &name.to_ascii_uppercase())
                .replace("NAME", name);
            let main = dir.join(format!("{name}_main.c"));
            std::fs::write(&main, driver).unwrap();
            let engine = SparseModel::build(spec, *choice).unwrap();
            let n = 24;
            let x: Vec<f32> = sparse_vec(n * engine.in_len(), 0.0, 9)
                .iter()
                .map(|v| v.abs())
                .collect();
            let mut want = vec![0.0; n * engine.out_len()];
            engine.infer(&x, &mut want).unwrap();
            let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
            for cc in &ccs {
                let exe = dir.join(format!("{name}_{}", cc.replace('/', "_")));
                let out = Command::new(cc)
                    .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"])
                    .args(["-Wdouble-promotion", "-Wshadow", "-O2", "-o"])
                    .arg(&exe)
                    .arg(&main)
                    .arg(dir.join(format!("{name}.c")))
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{cc} {name}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let mut child = Command::new(&exe)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                let mut stdin = child.stdin.take().unwrap();
                let feed = bytes.clone();
                let writer = std::thread::spawn(move || {
                    std::io::Write::write_all(&mut stdin, &feed).unwrap();
                });
                let out = child.wait_with_output().unwrap();
                writer.join().unwrap();
                assert!(out.status.success(), "{cc} {name}: exit {}", out.status);
                let got: Vec<f32> = out
                    .stdout
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                assert_eq!(got.len(), want.len(), "{cc} {name}");
                let k = engine.out_len();
                for (s, (g, w)) in got.chunks(k).zip(want.chunks(k)).enumerate() {
                    let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let diff = g.iter().zip(w).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                    assert!(
                        diff <= 1e-5 * scale,
                        "{cc} {name} sample {s}: {g:?} vs {w:?}"
                    );
                    let argmax = |v: &[f32]| (0..k).fold(0, |b, i| if v[i] > v[b] { i } else { b });
                    assert_eq!(argmax(g), argmax(w), "{cc} {name} sample {s}");
                }
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
