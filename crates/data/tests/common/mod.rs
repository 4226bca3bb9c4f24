//! Shared test helpers: temporary directories, the real-data locator, the system
//! `gzip` binary, file builders for IDX and CIFAR, and a small independent DEFLATE
//! *encoder* (stored, fixed and dynamic Huffman blocks) to make test vectors without
//! any external tool.
#![allow(dead_code)]

use rcc_data::{DatasetKind, Split};
use std::collections::BinaryHeap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

// ---------------------------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------------------------

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("rcc-data-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `bytes` to `rel` (creating parent directories); returns the full path.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::write(&p, bytes).expect("write test file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------
// Real data
// ---------------------------------------------------------------------------------------

/// Data roots to try, in order: `$RCC_DATA`, the workspace's `datasets/`, and the
/// offline mirror `../shared/datasets/` beside the workspace.
pub fn data_roots() -> Vec<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut roots = Vec::new();
    if let Some(d) = std::env::var_os("RCC_DATA") {
        roots.push(PathBuf::from(d));
    }
    roots.push(manifest.join("../../datasets"));
    roots.push(manifest.join("../../../shared/datasets"));
    roots
}

fn idx_split_present(root: &Path, kind: DatasetKind, split: Split) -> bool {
    let stem = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    ["images-idx3-ubyte", "labels-idx1-ubyte"].iter().all(|f| {
        let p = root.join(kind.dir_name()).join(format!("{stem}-{f}"));
        p.is_file() || p.with_file_name(format!("{stem}-{f}.gz")).is_file()
    })
}

/// The first data root holding both splits of `kind`, or `None` after printing why the
/// caller's test is skipped.
pub fn data_root(kind: DatasetKind, test: &str) -> Option<PathBuf> {
    let roots = data_roots();
    let found = roots.iter().find(|r| match kind {
        DatasetKind::Cifar10 => r.join(kind.dir_name()).join("test_batch.bin").is_file(),
        _ => idx_split_present(r, kind, Split::Train) && idx_split_present(r, kind, Split::Test),
    });
    if found.is_none() {
        eprintln!(
            "SKIPPED {test}: no {kind} files under any of {:?} (set RCC_DATA to a data root)",
            roots
        );
    }
    found.cloned()
}

// ---------------------------------------------------------------------------------------
// The system gzip
// ---------------------------------------------------------------------------------------

/// Runs the system `gzip` with `args`, feeding `input` on stdin; `None` if there is no
/// usable `gzip`.
pub fn system_gzip(args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
    let mut child = Command::new("gzip")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let data = input.to_vec();
    // Feed stdin from a thread so a large output cannot deadlock the pipe.
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().ok()?;
    let _ = feeder.join();
    out.status.success().then_some(out.stdout)
}

/// Whether a working `gzip` binary exists; prints the skip reason if not.
pub fn have_gzip(test: &str) -> bool {
    let ok = system_gzip(&["-c"], b"probe").is_some();
    if !ok {
        eprintln!("SKIPPED {test}: no usable `gzip` binary on PATH");
    }
    ok
}

// ---------------------------------------------------------------------------------------
// Test data
// ---------------------------------------------------------------------------------------

/// A small deterministic generator (xorshift64*), independent of `rand`.
pub struct TestRng(pub u64);

impl TestRng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 32) as u8).collect()
    }
}

/// Named inputs covering the shapes compressors treat differently.
pub fn sample_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = TestRng(0x1234_5678_9abc_def1);
    let text: Vec<u8> =
        b"It was the best of times, it was the worst of times, it was the age of wisdom, \
it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity. "
            .iter()
            .copied()
            .cycle()
            .take(20_000)
            .collect();
    let mut mixed = Vec::new();
    for i in 0..40 {
        if i % 3 == 0 {
            mixed.extend(rng.bytes(1500));
        } else {
            mixed.extend(std::iter::repeat_n((i * 37) as u8, 2000 + i * 10));
        }
    }
    let small_alphabet: Vec<u8> = (0..100_000)
        .map(|_| b"acgt"[(rng.next() % 4) as usize])
        .collect();
    let image_like: Vec<u8> = (0..200_000u32)
        .map(|i| {
            let (r, c) = ((i / 28) % 28, i % 28);
            if (8..20).contains(&r) && (10..18).contains(&c) {
                (i.wrapping_mul(2_654_435_761) >> 24) as u8 | 0x80
            } else {
                0
            }
        })
        .collect();
    vec![
        ("empty", Vec::new()),
        ("one byte", vec![42]),
        ("zeros 100k", vec![0; 100_000]),
        ("random 70k", rng.bytes(70_000)),
        ("text 20k", text),
        ("mixed", mixed),
        ("small alphabet 100k", small_alphabet),
        ("image-like 200k", image_like),
    ]
}

// ---------------------------------------------------------------------------------------
// File builders
// ---------------------------------------------------------------------------------------

pub fn idx_images(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [2051u32, n, rows, cols] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(pixels);
    v
}

pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&2049u32.to_be_bytes());
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

/// A CIFAR-10 batch of `labels.len()` records whose pixel `j` of record `i` is
/// `pixel(i, j)`.
pub fn cifar_batch(labels: &[u8], pixel: impl Fn(usize, usize) -> u8) -> Vec<u8> {
    let mut v = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        v.push(l);
        v.extend((0..3072).map(|j| pixel(i, j)));
    }
    v
}

// ---------------------------------------------------------------------------------------
// A small DEFLATE encoder and gzip wrapper (for test vectors only)
// ---------------------------------------------------------------------------------------

/// LSB-first bit writer.
#[derive(Default)]
pub struct BitWriter {
    pub out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    pub fn bits(&mut self, v: u32, n: u32) {
        assert!(
            n <= 32 && (n == 32 || v >> n == 0),
            "{v} does not fit {n} bits"
        );
        self.acc |= (v as u64) << self.n;
        self.n += n;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code, which DEFLATE packs most significant bit first.
    pub fn code(&mut self, code: u32, len: u32) {
        let rev = code.reverse_bits() >> (32 - len);
        self.bits(rev, len);
    }

    pub fn align(&mut self) {
        if self.n > 0 {
            self.out.push(self.acc as u8);
            self.acc = 0;
            self.n = 0;
        }
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.align();
        self.out
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    Stored,
    Fixed,
    Dynamic,
}

#[derive(Clone, Copy, Debug)]
enum Token {
    Lit(u8),
    Match { len: usize, dist: usize },
}

const LEN_BASE: [usize; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u32; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [usize; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u32; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
const CL_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

fn len_code(len: usize) -> (usize, u32, u32) {
    let i = LEN_BASE.iter().rposition(|&b| b <= len).unwrap();
    (257 + i, LEN_EXTRA[i], (len - LEN_BASE[i]) as u32)
}

fn dist_code(dist: usize) -> (usize, u32, u32) {
    let i = DIST_BASE.iter().rposition(|&b| b <= dist).unwrap();
    (i, DIST_EXTRA[i], (dist - DIST_BASE[i]) as u32)
}

/// Greedy LZ77 of `data[start..end]` with the whole of `data[..start]` as history
/// (within 32 KiB), using a hash of 3-byte prefixes with short chains.
fn tokenize(data: &[u8], start: usize, end: usize) -> Vec<Token> {
    use std::collections::HashMap;
    let mut heads: HashMap<[u8; 3], Vec<usize>> = HashMap::new();
    let key = |i: usize| [data[i], data[i + 1], data[i + 2]];
    for i in start.saturating_sub(32768)..start {
        if i + 3 <= data.len() {
            heads.entry(key(i)).or_default().push(i);
        }
    }
    let mut tokens = Vec::new();
    let mut i = start;
    while i < end {
        let mut best = (0, 0);
        if i + 3 <= end {
            if let Some(cands) = heads.get(&key(i)) {
                for &c in cands.iter().rev().take(16) {
                    if i - c > 32768 {
                        break;
                    }
                    let mut l = 0;
                    while l < 258 && i + l < end && data[c + l] == data[i + l] {
                        l += 1;
                    }
                    if l > best.0 {
                        best = (l, i - c);
                    }
                }
            }
        }
        let step = if best.0 >= 3 {
            tokens.push(Token::Match {
                len: best.0,
                dist: best.1,
            });
            best.0
        } else {
            tokens.push(Token::Lit(data[i]));
            1
        };
        for k in i..i + step {
            if k + 3 <= data.len() {
                heads.entry(key(k)).or_default().push(k);
            }
        }
        i += step;
    }
    tokens
}

/// Canonical codes for `lens` (RFC 1951 3.2.2).
fn canonical(lens: &[u8]) -> Vec<u32> {
    let mut count = [0u32; 16];
    for &l in lens {
        count[l as usize] += 1;
    }
    count[0] = 0;
    let mut next = [0u32; 16];
    let mut code = 0;
    for b in 1..16 {
        code = (code + count[b - 1]) << 1;
        next[b] = code;
    }
    lens.iter()
        .map(|&l| {
            if l == 0 {
                0
            } else {
                let c = next[l as usize];
                next[l as usize] += 1;
                c
            }
        })
        .collect()
}

/// Huffman code lengths for `freq`, limited to `limit` bits (by halving frequencies
/// until the tree is shallow enough). A lone used symbol gets length 1.
pub fn huffman_lengths(freq: &[u64], limit: u8) -> Vec<u8> {
    let mut f: Vec<u64> = freq.to_vec();
    loop {
        let used: Vec<usize> = (0..f.len()).filter(|&i| f[i] > 0).collect();
        let mut lens = vec![0u8; f.len()];
        if used.len() == 1 {
            lens[used[0]] = 1;
            return lens;
        }
        if used.is_empty() {
            return lens;
        }
        // Nodes 0..n are leaves; parents are appended.
        let mut parent: Vec<usize> = vec![usize::MAX; used.len()];
        let mut heap = BinaryHeap::new();
        for (k, &s) in used.iter().enumerate() {
            heap.push(std::cmp::Reverse((f[s], k)));
        }
        while heap.len() > 1 {
            let std::cmp::Reverse((wa, a)) = heap.pop().unwrap();
            let std::cmp::Reverse((wb, b)) = heap.pop().unwrap();
            let p = parent.len();
            parent.push(usize::MAX);
            parent[a] = p;
            parent[b] = p;
            heap.push(std::cmp::Reverse((wa + wb, p)));
        }
        let mut max = 0;
        for (k, &s) in used.iter().enumerate() {
            let mut d = 0;
            let mut x = k;
            while parent[x] != usize::MAX {
                x = parent[x];
                d += 1;
            }
            lens[s] = d;
            max = max.max(d);
        }
        if max <= limit {
            return lens;
        }
        for v in f.iter_mut().filter(|v| **v > 0) {
            *v = (*v).div_ceil(2);
        }
    }
}

fn fixed_litlen(sym: usize) -> (u32, u32) {
    match sym {
        0..=143 => (0x30 + sym as u32, 8),
        144..=255 => (0x190 + (sym - 144) as u32, 9),
        256..=279 => ((sym - 256) as u32, 7),
        _ => (0xC0 + (sym - 280) as u32, 8),
    }
}

fn write_tokens(
    w: &mut BitWriter,
    tokens: &[Token],
    lit: &dyn Fn(usize) -> (u32, u32),
    dist: &dyn Fn(usize) -> (u32, u32),
) {
    for t in tokens {
        match *t {
            Token::Lit(b) => {
                let (c, l) = lit(b as usize);
                w.code(c, l);
            }
            Token::Match { len, dist: d } => {
                let (sym, eb, ev) = len_code(len);
                let (c, l) = lit(sym);
                w.code(c, l);
                w.bits(ev, eb);
                let (dsym, deb, dev) = dist_code(d);
                let (c, l) = dist(dsym);
                w.code(c, l);
                w.bits(dev, deb);
            }
        }
    }
    let (c, l) = lit(256);
    w.code(c, l);
}

/// Run-length codes the concatenated code lengths with symbols 16, 17, 18:
/// `(symbol, extra bits, extra value)`.
fn rle_lengths(lens: &[u8]) -> Vec<(usize, u32, u32)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lens.len() {
        let l = lens[i];
        let mut run = lens[i..].iter().take_while(|&&x| x == l).count();
        i += run;
        if l == 0 {
            while run >= 11 {
                let r = run.min(138);
                out.push((18, 7, (r - 11) as u32));
                run -= r;
            }
            if run >= 3 {
                out.push((17, 3, (run - 3) as u32));
                run = 0;
            }
        } else {
            out.push((l as usize, 0, 0));
            run -= 1;
            while run >= 3 {
                let r = run.min(6);
                out.push((16, 2, (r - 3) as u32));
                run -= r;
            }
        }
        for _ in 0..run {
            out.push((l as usize, 0, 0));
        }
    }
    out
}

fn write_dynamic(w: &mut BitWriter, tokens: &[Token]) {
    let mut lf = vec![0u64; 286];
    let mut df = vec![0u64; 30];
    for t in tokens {
        match *t {
            Token::Lit(b) => lf[b as usize] += 1,
            Token::Match { len, dist } => {
                lf[len_code(len).0] += 1;
                df[dist_code(dist).0] += 1;
            }
        }
    }
    lf[256] = 1;
    let ll = huffman_lengths(&lf, 15);
    let dl = huffman_lengths(&df, 15);
    let hlit = 257.max(ll.iter().rposition(|&l| l > 0).unwrap() + 1);
    let hdist = 1.max(dl.iter().rposition(|&l| l > 0).map_or(0, |p| p + 1));
    let mut all = ll[..hlit].to_vec();
    all.extend_from_slice(&dl[..hdist]);
    let rle = rle_lengths(&all);
    let mut cf = vec![0u64; 19];
    for &(s, _, _) in &rle {
        cf[s] += 1;
    }
    // Like zlib, give the code-length code at least two codes: a lone code would be
    // incomplete, which decoders reject for this code.
    if cf.iter().filter(|&&c| c > 0).count() < 2 {
        let spare = if cf[0] == 0 { 0 } else { 1 };
        cf[spare] = 1;
    }
    let cl = huffman_lengths(&cf, 7);
    let hclen = 4.max(CL_ORDER.iter().rposition(|&s| cl[s] > 0).unwrap() + 1);
    w.bits((hlit - 257) as u32, 5);
    w.bits((hdist - 1) as u32, 5);
    w.bits((hclen - 4) as u32, 4);
    for &s in &CL_ORDER[..hclen] {
        w.bits(cl[s] as u32, 3);
    }
    let cc = canonical(&cl);
    for &(s, eb, ev) in &rle {
        w.code(cc[s], cl[s] as u32);
        w.bits(ev, eb);
    }
    let lc = canonical(&ll);
    let dc = canonical(&dl);
    write_tokens(w, tokens, &|s| (lc[s], ll[s] as u32), &|s| {
        (dc[s], dl[s] as u32)
    });
}

/// Encodes `data` as DEFLATE, one block per `(chunk length, type)` of `plan` (the last
/// chunk takes whatever remains; stored chunks over 65,535 bytes become several
/// blocks). Matches may reach back into earlier blocks.
pub fn deflate(data: &[u8], plan: &[(usize, Block)]) -> Vec<u8> {
    assert!(!plan.is_empty());
    let mut w = BitWriter::default();
    let mut start = 0;
    for (k, &(len, kind)) in plan.iter().enumerate() {
        let last = k + 1 == plan.len();
        let end = if last {
            data.len()
        } else {
            (start + len).min(data.len())
        };
        match kind {
            Block::Stored => {
                let mut s = start;
                loop {
                    let e = (s + 65_535).min(end);
                    let fin = last && e == end;
                    w.bits(fin as u32, 1);
                    w.bits(0, 2);
                    w.align();
                    let n = (e - s) as u16;
                    w.out.extend_from_slice(&n.to_le_bytes());
                    w.out.extend_from_slice(&(!n).to_le_bytes());
                    w.out.extend_from_slice(&data[s..e]);
                    s = e;
                    if s == end {
                        break;
                    }
                }
            }
            Block::Fixed => {
                w.bits(last as u32, 1);
                w.bits(1, 2);
                let tokens = tokenize(data, start, end);
                write_tokens(&mut w, &tokens, &fixed_litlen, &|s| (s as u32, 5));
            }
            Block::Dynamic => {
                w.bits(last as u32, 1);
                w.bits(2, 2);
                let tokens = tokenize(data, start, end);
                write_dynamic(&mut w, &tokens);
            }
        }
        start = end;
    }
    w.finish()
}

/// Optional gzip header fields.
#[derive(Default, Clone)]
pub struct Header {
    pub extra: Option<Vec<u8>>,
    pub name: Option<Vec<u8>>,
    pub comment: Option<Vec<u8>>,
    pub hcrc: bool,
}

/// A gzip member around a raw deflate stream `deflated` of `original`.
pub fn gzip_wrap(deflated: &[u8], original: &[u8], h: &Header) -> Vec<u8> {
    let mut flg = 0u8;
    if h.hcrc {
        flg |= 2;
    }
    if h.extra.is_some() {
        flg |= 4;
    }
    if h.name.is_some() {
        flg |= 8;
    }
    if h.comment.is_some() {
        flg |= 16;
    }
    let mut v = vec![0x1f, 0x8b, 8, flg, 0x78, 0x56, 0x34, 0x12, 0, 3];
    if let Some(x) = &h.extra {
        v.extend_from_slice(&(x.len() as u16).to_le_bytes());
        v.extend_from_slice(x);
    }
    if let Some(n) = &h.name {
        v.extend_from_slice(n);
        v.push(0);
    }
    if let Some(c) = &h.comment {
        v.extend_from_slice(c);
        v.push(0);
    }
    if h.hcrc {
        let c = rcc_data::gzip::crc32(&v) as u16;
        v.extend_from_slice(&c.to_le_bytes());
    }
    v.extend_from_slice(deflated);
    v.extend_from_slice(&rcc_data::gzip::crc32(original).to_le_bytes());
    v.extend_from_slice(&(original.len() as u32).to_le_bytes());
    v
}

/// `data` gzip-compressed by the test encoder with one dynamic block per 64 KiB.
pub fn gzip_test_encode(data: &[u8]) -> Vec<u8> {
    let plan: Vec<(usize, Block)> = vec![(65_536, Block::Dynamic); data.len() / 65_536 + 1];
    gzip_wrap(&deflate(data, &plan), data, &Header::default())
}
