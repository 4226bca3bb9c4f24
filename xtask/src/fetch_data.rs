//! `cargo xtask fetch-data [--dataset mnist|fashion-mnist|cifar10|all] [--from DIR] [--data DIR]`:
//! puts the official dataset files into the data directory, verified by SHA-256.
//!
//! Each file is either downloaded from its official locations, tried in order, or copied
//! from a local mirror (`--from DIR`) with the data directory's layout. In both cases the
//! bytes go to `NAME.part` next to the final name and are hashed on the way. The file is
//! checked against the table below, fsynced and only then renamed to `NAME`. A file that
//! fails the check is deleted. A final name therefore never holds a partial or corrupt
//! file: an existing file is re-hashed, kept if it verifies, and otherwise deleted and
//! fetched again.
//!
//! CIFAR-10 is the official `cifar-10-binary.tar.gz`. It is kept, so that later runs can
//! verify it, and its batches are extracted into `cifar-10-batches-bin/`.
//!
//! The data directory is `--data DIR`, else `$RCC_DATA`, else `datasets/` at the
//! workspace root.

use crate::cli::data_dir_from;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// One file as published: where it goes, where it comes from, and its SHA-256.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FileSpec<'a> {
    /// Path under the data directory. It is also the first place looked at in a mirror.
    pub rel: &'a str,
    /// Further places to look in a mirror, relative to the mirror.
    pub mirror_alt: &'a [&'a str],
    /// Official download locations, tried in order.
    pub urls: &'a [&'a str],
    /// SHA-256 of the official file, lower-case hex.
    pub sha256: &'a str,
    /// Size of the official file in bytes. A server that announces another size is not
    /// sending the official file, and a present file of another size is not it either.
    pub size: u64,
}

/// One member of an archive to extract, with its size in bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Member<'a> {
    pub name: &'a str,
    pub size: u64,
}

/// A `.tar.gz` to unpack after it has been verified. It is the dataset's only file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Extract<'a> {
    /// Directory of the members, both inside the archive and under the data directory.
    pub dir: &'a str,
    /// The members to extract. Other entries of the archive are ignored.
    pub members: &'a [Member<'a>],
}

/// A dataset: its `--dataset` name, its files and, for archives, what to extract.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dataset<'a> {
    pub name: &'a str,
    pub files: &'a [FileSpec<'a>],
    pub extract: Option<Extract<'a>>,
}

// SHA-256 of the official MNIST and Fashion-MNIST files: ../shared/datasets/README.md, where
// each .gz is shown to be byte-identical to the official release. The sizes are from the
// same file.
//
// The SHA-256 of cifar-10-binary.tar.gz (170,052,171 bytes) is not published by its author,
// who gives only the md5 c32a1d4ab5d03f1284b67883e8d87530. The value below is the one pinned
// by independent downloaders of the official file. Among them are JuliaML/MLDatasets.jl
// (src/datasets/vision/cifar10.jl) and ankane/torchvision-ruby
// (lib/torchvision/datasets/cifar10.rb). Another project records the same SHA-256 after
// checking the official md5.
const MNIST: &[FileSpec<'static>] = &[
    FileSpec {
        rel: "mnist/train-images-idx3-ubyte.gz",
        mirror_alt: &[],
        urls: &[
            "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
            "http://yann.lecun.com/exdb/mnist/train-images-idx3-ubyte.gz",
        ],
        sha256: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        size: 9_912_422,
    },
    FileSpec {
        rel: "mnist/train-labels-idx1-ubyte.gz",
        mirror_alt: &[],
        urls: &[
            "https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz",
            "http://yann.lecun.com/exdb/mnist/train-labels-idx1-ubyte.gz",
        ],
        sha256: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        size: 28_881,
    },
    FileSpec {
        rel: "mnist/t10k-images-idx3-ubyte.gz",
        mirror_alt: &[],
        urls: &[
            "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz",
            "http://yann.lecun.com/exdb/mnist/t10k-images-idx3-ubyte.gz",
        ],
        sha256: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        size: 1_648_877,
    },
    FileSpec {
        rel: "mnist/t10k-labels-idx1-ubyte.gz",
        mirror_alt: &[],
        urls: &[
            "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
            "http://yann.lecun.com/exdb/mnist/t10k-labels-idx1-ubyte.gz",
        ],
        sha256: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        size: 4_542,
    },
];

const FASHION_MNIST: &[FileSpec<'static>] = &[
    FileSpec {
        rel: "fashion-mnist/train-images-idx3-ubyte.gz",
        mirror_alt: &[],
        urls: &[
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz",
        ],
        sha256: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        size: 26_421_880,
    },
    FileSpec {
        rel: "fashion-mnist/train-labels-idx1-ubyte.gz",
        mirror_alt: &[],
        urls: &[
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-labels-idx1-ubyte.gz",
        ],
        sha256: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        size: 29_515,
    },
    FileSpec {
        rel: "fashion-mnist/t10k-images-idx3-ubyte.gz",
        mirror_alt: &[],
        urls: &[
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-images-idx3-ubyte.gz",
        ],
        sha256: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        size: 4_422_102,
    },
    FileSpec {
        rel: "fashion-mnist/t10k-labels-idx1-ubyte.gz",
        mirror_alt: &[],
        urls: &[
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-labels-idx1-ubyte.gz",
        ],
        sha256: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        size: 5_148,
    },
];

const CIFAR10: &[FileSpec<'static>] = &[FileSpec {
    rel: "cifar-10-binary.tar.gz",
    mirror_alt: &["cifar-10/cifar-10-binary.tar.gz"],
    urls: &["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"],
    sha256: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
    size: 170_052_171,
}];

/// 10,000 records of 1 label byte + 3 x 32 x 32 pixel bytes.
const CIFAR_BATCH: u64 = 10_000 * 3_073;

/// Every dataset `fetch-data` knows, in the order `--dataset all` fetches them.
pub(crate) const DATASETS: &[Dataset<'static>] = &[
    Dataset {
        name: "mnist",
        files: MNIST,
        extract: None,
    },
    Dataset {
        name: "fashion-mnist",
        files: FASHION_MNIST,
        extract: None,
    },
    Dataset {
        name: "cifar10",
        files: CIFAR10,
        extract: Some(Extract {
            dir: "cifar-10-batches-bin",
            members: &[
                Member {
                    name: "data_batch_1.bin",
                    size: CIFAR_BATCH,
                },
                Member {
                    name: "data_batch_2.bin",
                    size: CIFAR_BATCH,
                },
                Member {
                    name: "data_batch_3.bin",
                    size: CIFAR_BATCH,
                },
                Member {
                    name: "data_batch_4.bin",
                    size: CIFAR_BATCH,
                },
                Member {
                    name: "data_batch_5.bin",
                    size: CIFAR_BATCH,
                },
                Member {
                    name: "test_batch.bin",
                    size: CIFAR_BATCH,
                },
                Member {
                    name: "batches.meta.txt",
                    size: 61,
                },
            ],
        }),
    },
];

const USAGE: &str =
    "usage: cargo xtask fetch-data [--dataset mnist|fashion-mnist|cifar10|all] [--from DIR] [--data DIR]";

/// Where the files come from.
pub(crate) enum Source<'a> {
    /// A local directory with the data directory's layout.
    Mirror(&'a Path),
    /// The official download locations.
    Web(&'a ureq::Agent),
}

/// Why a dataset could not be fetched.
#[derive(Debug)]
pub(crate) struct Failure {
    /// A `--from` mirror does not have the file.
    pub not_in_mirror: bool,
    pub msg: String,
}

impl From<String> for Failure {
    fn from(msg: String) -> Self {
        Failure {
            not_in_mirror: false,
            msg,
        }
    }
}

/// Status lines go to `out` (stdout, or a buffer in the tests); a failed write to it is
/// not a reason to stop fetching.
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

pub fn run(args: &[String]) -> Result<ExitCode, String> {
    let cli = crate::cli::Cli::parse(args, &["dataset", "from", "data"], &[])?;
    if let Some(p) = cli.positional.first() {
        return Err(format!("unexpected argument {p:?}\n{USAGE}"));
    }
    let which = cli.get("dataset").unwrap_or("all").to_string();
    let from = cli.get("from").map(PathBuf::from);
    let data_flag = cli.get("data").map(PathBuf::from);
    let datasets = select(DATASETS, &which)?;
    let data = data_dir_from(data_flag, std::env::var_os("RCC_DATA"));
    fs::create_dir_all(&data)
        .map_err(|e| format!("cannot create the data directory {}: {e}", data.display()))?;

    let agent;
    let source = match &from {
        Some(dir) if !dir.is_dir() => {
            return Err(format!("--from {}: no such directory", dir.display()))
        }
        Some(dir) => Source::Mirror(dir),
        None => {
            agent = web_agent(true);
            Source::Web(&agent)
        }
    };
    // In-place progress only makes sense on a terminal; in a log it would be noise.
    let progress = io::stderr().is_terminal();

    let mut out = io::stdout().lock();
    say!(out, "data directory: {}", data.display());
    match &source {
        Source::Mirror(dir) => say!(out, "source: local mirror {}", dir.display()),
        Source::Web(_) => say!(out, "source: the official download locations"),
    }
    let (mut fetched, mut failed) = (vec![], vec![]);
    for ds in &datasets {
        say!(out, "{}:", ds.name);
        match fetch_dataset(ds, &data, &source, progress, &mut out) {
            Ok(()) => fetched.push(ds.name),
            Err(f) => {
                say!(out, "  {}", f.msg);
                let why = if f.not_in_mirror {
                    "not in the mirror"
                } else {
                    "failed, see above"
                };
                failed.push(format!("{}: {why}", ds.name));
            }
        }
    }
    drop(out);
    if failed.is_empty() {
        println!("all {} dataset(s) present and verified", datasets.len());
        return Ok(ExitCode::SUCCESS);
    }
    let others = if fetched.is_empty() {
        String::new()
    } else {
        format!("; {} present and verified", fetched.join(", "))
    };
    eprintln!(
        "error: {} of {} dataset(s) not fetched ({}){others}",
        failed.len(),
        datasets.len(),
        failed.join("; ")
    );
    Ok(ExitCode::FAILURE)
}

/// The datasets named by `--dataset`: `all`, or one or more names separated by commas.
pub(crate) fn select<'a>(
    table: &'a [Dataset<'a>],
    which: &str,
) -> Result<Vec<&'a Dataset<'a>>, String> {
    let mut picked: Vec<&Dataset> = vec![];
    for name in which.split(',').map(str::trim) {
        if name == "all" {
            picked.extend(table.iter());
            continue;
        }
        match table.iter().find(|d| d.name == name) {
            Some(d) => picked.push(d),
            None => {
                let names: Vec<&str> = table.iter().map(|d| d.name).collect();
                return Err(format!(
                    "--dataset: unknown dataset {name:?} (expected {} or all)",
                    names.join(", ")
                ));
            }
        }
    }
    let mut unique: Vec<&Dataset> = vec![];
    for d in picked {
        if !unique.iter().any(|u| u.name == d.name) {
            unique.push(d);
        }
    }
    Ok(unique)
}

/// The HTTP client. Timeouts catch dead servers and stalled transfers, not slow ones:
/// there is no limit on the whole transfer.
pub(crate) fn web_agent(proxy_from_env: bool) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .timeout_resolve(Some(Duration::from_secs(30)))
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .user_agent(concat!("rcc-xtask/", env!("CARGO_PKG_VERSION")));
    if !proxy_from_env {
        config = config.proxy(None);
    }
    config.build().into()
}

/// Fetches every file of `ds` that is not already present and valid, then extracts the
/// archive if the dataset has one. Stops at the dataset's first failed file.
pub(crate) fn fetch_dataset(
    ds: &Dataset,
    data: &Path,
    source: &Source,
    progress: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    for spec in ds.files {
        fetch_file(spec, data, source, progress, out)?;
    }
    if let (Some(x), Some(archive)) = (&ds.extract, ds.files.first()) {
        extract(&data.join(archive.rel), x, data, out).map_err(|e| format!("{}/: {e}", x.dir))?;
    }
    Ok(())
}

/// Puts one verified file at `data/spec.rel`. Error messages start with `spec.rel`.
pub(crate) fn fetch_file(
    spec: &FileSpec,
    data: &Path,
    source: &Source,
    progress: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    fetch_file_unnamed(spec, data, source, progress, out).map_err(|f| Failure {
        msg: format!("{}: {}", spec.rel, f.msg),
        ..f
    })
}

fn fetch_file_unnamed(
    spec: &FileSpec,
    data: &Path,
    source: &Source,
    progress: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let dest = data.join(spec.rel);
    match check_existing(&dest, spec)? {
        Existing::Verified => {
            say!(out, "  {}: ok (already present)", spec.rel);
            return Ok(());
        }
        Existing::Missing => {}
        Existing::Invalid(why) => {
            // Removed before fetching, so that it is gone even if the fetch fails.
            fs::remove_file(&dest).map_err(|e| format!("cannot remove {}: {e}", dest.display()))?;
            say!(
                out,
                "  {}: present but {why}; removed it, fetching it again",
                spec.rel
            );
        }
    }
    let label = progress.then_some(spec.rel);
    match source {
        Source::Mirror(dir) => {
            let looked: Vec<PathBuf> = std::iter::once(spec.rel)
                .chain(spec.mirror_alt.iter().copied())
                .map(|r| dir.join(r))
                .collect();
            let Some(src) = looked.iter().find(|p| p.is_file()) else {
                let looked: Vec<String> = looked.iter().map(|p| p.display().to_string()).collect();
                return Err(Failure {
                    not_in_mirror: true,
                    msg: format!(
                        "not in the mirror (looked for {}); it is published at {}: download it \
                         on a machine with internet, put it at {} (or in the mirror) and run \
                         this again",
                        looked.join(" and "),
                        spec.urls.join(" and "),
                        dest.display()
                    ),
                });
            };
            let mut file =
                File::open(src).map_err(|e| format!("cannot open {}: {e}", src.display()))?;
            let len = file.metadata().map(|m| m.len()).ok();
            let origin = src.display().to_string();
            let w = write_verified(&dest, &mut file, len, label, &|n, sha| verify(spec, n, sha))
                .map_err(|e| format!("copying from {origin}: {e}"))?;
            say!(
                out,
                "  {}: ok (copied from {origin}, {}, sha256 verified)",
                spec.rel,
                human(w.len)
            );
            Ok(())
        }
        Source::Web(agent) => {
            let (mut errors, mut offline) = (vec![], false);
            for url in spec.urls {
                match download(agent, url, spec, &dest, label) {
                    Ok(w) => {
                        say!(
                            out,
                            "  {}: ok (downloaded from {url}, {} in {:.1} s, sha256 verified)",
                            spec.rel,
                            human(w.len),
                            w.secs
                        );
                        return Ok(());
                    }
                    Err((connect_failed, e)) => {
                        offline |= connect_failed;
                        errors.push(format!("{url}: {e}"));
                    }
                }
            }
            let mut msg = format!("could not download it from {}", errors.join("; "));
            if offline {
                msg.push_str(
                    "; on a machine without internet, use --from DIR with a local mirror \
                     (e.g. cargo xtask fetch-data --from ../shared/datasets)",
                );
            }
            Err(msg.into())
        }
    }
}

/// One download attempt into `dest`. The error's flag says whether the request failed
/// before any response came back, which is what a machine without internet sees.
fn download(
    agent: &ureq::Agent,
    url: &str,
    spec: &FileSpec,
    dest: &Path,
    label: Option<&str>,
) -> Result<Written, (bool, String)> {
    let mut response = agent.get(url).call().map_err(|e| {
        let connect_failed = !matches!(e, ureq::Error::StatusCode(_));
        (connect_failed, e.to_string())
    })?;
    let announced = response.body().content_length();
    if let Some(n) = announced {
        if n != spec.size {
            return Err((
                false,
                format!(
                    "the server announces {n} bytes but the official file has {}; not \
                     downloading it",
                    spec.size
                ),
            ));
        }
    }
    let mut body = response.body_mut().as_reader();
    write_verified(
        dest,
        &mut body,
        announced.or(Some(spec.size)),
        label,
        &|n, sha| match announced {
            Some(total) if n < total => Err(format!(
                "download truncated: got {n} of {total} bytes (connection closed early)"
            )),
            _ => verify(spec, n, sha),
        },
    )
    .map_err(|e| (false, e))
}

/// Accepts the bytes if their SHA-256 is the official one.
fn verify(spec: &FileSpec, len: u64, sha: &str) -> Result<(), String> {
    if sha == spec.sha256 {
        return Ok(());
    }
    let size_note = if len == spec.size {
        String::new()
    } else {
        format!("; got {len} bytes, expected {}", spec.size)
    };
    Err(format!(
        "checksum mismatch: expected sha256 {}, got {sha}{size_note}",
        spec.sha256
    ))
}

enum Existing {
    Missing,
    Verified,
    /// Present but not the official file; the string says how.
    Invalid(String),
}

fn check_existing(path: &Path, spec: &FileSpec) -> Result<Existing, String> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Existing::Missing),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    if !meta.is_file() {
        return Err(format!("{} exists but is not a file", path.display()));
    }
    if meta.len() != spec.size {
        return Ok(Existing::Invalid(format!(
            "has {} bytes instead of {}",
            meta.len(),
            spec.size
        )));
    }
    let sha = hash_file(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(if sha == spec.sha256 {
        Existing::Verified
    } else {
        Existing::Invalid(format!(
            "does not verify (sha256 {sha}, expected {})",
            spec.sha256
        ))
    })
}

pub(crate) fn hash_file(path: &Path) -> io::Result<String> {
    let mut hasher = Sha256::new();
    io::copy(&mut File::open(path)?, &mut hasher)?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// What `write_verified` wrote.
pub(crate) struct Written {
    pub len: u64,
    pub secs: f64,
}

/// Deletes the temporary file when dropped, unless it was renamed into place.
struct PartFile {
    path: PathBuf,
    committed: bool,
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Streams `src` into `dest.part` while hashing it, lets `check(len, sha256)` accept or
/// reject the result, then fsyncs and renames it to `dest`. On any error the `.part` file
/// is removed and `dest` is untouched. `total` is only for the progress display.
pub(crate) fn write_verified(
    dest: &Path,
    src: &mut dyn Read,
    total: Option<u64>,
    progress: Option<&str>,
    check: &dyn Fn(u64, &str) -> Result<(), String>,
) -> Result<Written, String> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut name = dest.as_os_str().to_owned();
    name.push(".part");
    // Declared before the file so that it is dropped after it: the file is closed before
    // it is deleted (Windows cannot delete an open file).
    let mut part = PartFile {
        path: PathBuf::from(name),
        committed: false,
    };
    let mut file = File::create(&part.path)
        .map_err(|e| format!("cannot create {}: {e}", part.path.display()))?;
    let start = Instant::now();
    let mut bar = Progress::new(progress, total);
    let (mut hasher, mut buf, mut len) = (Sha256::new(), vec![0u8; 1 << 16], 0u64);
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
                return Err(format!("read failed after {len}{of} bytes: {e}"));
            }
        };
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| format!("cannot write {}: {e}", part.path.display()))?;
        len += n as u64;
        bar.update(len);
    }
    drop(bar);
    check(len, &format!("{:x}", hasher.finalize()))?;
    file.sync_all()
        .map_err(|e| format!("cannot sync {}: {e}", part.path.display()))?;
    drop(file);
    fs::rename(&part.path, dest).map_err(|e| {
        format!(
            "cannot rename {} to {}: {e}",
            part.path.display(),
            dest.display()
        )
    })?;
    part.committed = true;
    sync_dir(dir);
    Ok(Written {
        len,
        secs: start.elapsed().as_secs_f64(),
    })
}

/// Makes the rename durable. Best effort: not every platform or file system can sync a
/// directory, and the data is already synced.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// `done / total  percent  rate` on stderr, redrawn in place at most 4 times a second.
/// Nothing is drawn in the first quarter second, so fast copies print no bar at all.
struct Progress<'a> {
    label: Option<&'a str>,
    total: Option<u64>,
    start: Instant,
    last: Instant,
    width: usize,
}

impl<'a> Progress<'a> {
    fn new(label: Option<&'a str>, total: Option<u64>) -> Self {
        let now = Instant::now();
        Progress {
            label,
            total,
            start: now,
            last: now,
            width: 0,
        }
    }

    fn update(&mut self, done: u64) {
        let Some(label) = self.label else { return };
        let now = Instant::now();
        if now.duration_since(self.last) < Duration::from_millis(250) {
            return;
        }
        self.last = now;
        let rate = done as f64 / now.duration_since(self.start).as_secs_f64().max(1e-9);
        let line = match self.total {
            Some(t) if t > 0 => format!(
                "  {label}  {} / {}  {:3.0}%  {}/s",
                human(done),
                human(t),
                100.0 * done as f64 / t as f64,
                human(rate as u64)
            ),
            _ => format!("  {label}  {}  {}/s", human(done), human(rate as u64)),
        };
        let pad = self.width.saturating_sub(line.len());
        eprint!("\r{line}{:pad$}", "");
        let _ = io::stderr().flush();
        self.width = self.width.max(line.len());
    }
}

impl Drop for Progress<'_> {
    /// Clears the bar so that the next status line starts on a clean line.
    fn drop(&mut self) {
        if self.width > 0 {
            eprint!("\r{:w$}\r", "", w = self.width);
            let _ = io::stderr().flush();
        }
    }
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

/// Extracts `x.members` from the verified `archive` into `data/x.dir`, unless they are
/// all there with the right sizes. The archive's SHA-256 has been checked, so its
/// contents are the official ones; each member's size is checked against the table
/// too, and each is written through `write_verified`, so no partial member is left
/// under its final name.
fn extract(archive: &Path, x: &Extract, data: &Path, out: &mut dyn Write) -> Result<(), String> {
    let dir = data.join(x.dir);
    let present = |m: &Member| {
        fs::metadata(dir.join(m.name)).is_ok_and(|md| md.is_file() && md.len() == m.size)
    };
    if x.members.iter().all(present) {
        say!(out, "  {}/: ok (already extracted)", x.dir);
        return Ok(());
    }
    // The workspace's own inflater (rcc_data::gzip, CRC-checked, output capped): the
    // archive (163 MB for CIFAR-10) and its tar (184 MB) are held in memory once.
    let gz = fs::read(archive).map_err(|e| format!("cannot read {}: {e}", archive.display()))?;
    let tar = rcc_data::gzip::decompress(&gz, archive).map_err(|e| e.to_string())?;
    drop(gz);
    let mut found = vec![false; x.members.len()];
    for_each_tar_entry(&mut &tar[..], &mut |name, size, body| {
        let name = name.strip_prefix("./").unwrap_or(name);
        let member = name
            .strip_prefix(x.dir)
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|rest| x.members.iter().position(|m| m.name == rest));
        let Some(i) = member else { return Ok(()) };
        let m = &x.members[i];
        if size != m.size {
            return Err(format!(
                "{name} has {size} bytes in the archive, expected {}",
                m.size
            ));
        }
        write_verified(&dir.join(m.name), body, Some(size), None, &|n, _| {
            if n == size {
                Ok(())
            } else {
                Err(format!("archive truncated: {name} has {n} of {size} bytes"))
            }
        })
        .map_err(|e| format!("extracting {name}: {e}"))?;
        found[i] = true;
        Ok(())
    })
    .map_err(|e| format!("{}: {e}", archive.display()))?;
    let missing: Vec<&str> = (x.members.iter().zip(&found))
        .filter(|(_, &f)| !f)
        .map(|(m, _)| m.name)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{} lacks {}",
            archive.display(),
            missing.join(", ")
        ));
    }
    say!(
        out,
        "  {}/: ok (extracted {} files)",
        x.dir,
        x.members.len()
    );
    Ok(())
}

// A minimal tar reader instead of the `tar` crate. We take a fixed list of members out of
// one known archive, and never build a path from a name found in the archive. So none of
// `tar`'s general machinery is needed: permissions, links, xattrs, unpacking arbitrary
// trees, or guarding against `../` in entry names. Path traversal cannot happen here by
// construction. The reader handles what real archives contain: ustar and GNU headers,
// including GNU long names and pax `path` records, with header checksums checked.

/// What `for_each_tar_entry` calls for each regular file: `(name, size, body)`.
pub(crate) type TarVisitor<'a> = dyn FnMut(&str, u64, &mut dyn Read) -> Result<(), String> + 'a;

/// Calls `f(name, size, body)` for each regular file of the tar stream `r`; `body` reads
/// that entry's data. Whatever `f` leaves unread is skipped.
pub(crate) fn for_each_tar_entry(r: &mut dyn Read, f: &mut TarVisitor) -> Result<(), String> {
    let mut header = [0u8; 512];
    let mut long_name: Option<String> = None;
    loop {
        if !read_block(r, &mut header)? || header.iter().all(|&b| b == 0) {
            return Ok(()); // end of archive (two zero blocks; one is enough to stop)
        }
        let stored = parse_number(&header[148..156])?;
        let sum: u64 = header
            .iter()
            .enumerate()
            .map(|(i, &b)| u64::from(if (148..156).contains(&i) { b' ' } else { b }))
            .sum();
        if stored != sum {
            return Err(format!(
                "corrupt tar header (checksum {stored}, computed {sum})"
            ));
        }
        let size = parse_number(&header[124..136])?;
        let name = long_name.take().unwrap_or_else(|| header_name(&header));
        let mut body = (&mut *r).take(size);
        match header[156] {
            // GNU long name, or pax extended header: they name the next entry.
            kind @ (b'L' | b'x') => {
                if size > 1 << 16 {
                    return Err(format!("tar metadata entry of {size} bytes"));
                }
                let mut meta = vec![];
                body.read_to_end(&mut meta).map_err(|e| e.to_string())?;
                long_name = if kind == b'L' {
                    let end = meta.iter().position(|&b| b == 0).unwrap_or(meta.len());
                    Some(String::from_utf8_lossy(&meta[..end]).into_owned())
                } else {
                    pax_path(&meta)
                };
            }
            b'0' | b'\0' | b'7' => f(&name, size, &mut body)?,
            _ => {} // directories, links, global pax headers, ...: skipped
        }
        let rest = io::copy(&mut body, &mut io::sink()).map_err(|e| e.to_string())?;
        if body.limit() != 0 {
            return Err(format!("archive truncated in {name} ({rest} bytes short)"));
        }
        let pad = (512 - size % 512) % 512;
        io::copy(&mut (&mut *r).take(pad), &mut io::sink()).map_err(|e| e.to_string())?;
    }
}

/// Reads one 512-byte block. `Ok(false)` at a clean end of stream.
fn read_block(r: &mut dyn Read, block: &mut [u8; 512]) -> Result<bool, String> {
    let mut got = 0;
    while got < block.len() {
        match r.read(&mut block[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err("archive truncated inside a tar header".into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(true)
}

/// A numeric header field: octal ASCII padded with spaces or NULs, or GNU base-256
/// (high bit of the first byte set) for values too large for octal.
fn parse_number(field: &[u8]) -> Result<u64, String> {
    if field[0] & 0x80 != 0 {
        return Ok(field[1..]
            .iter()
            .fold(u64::from(field[0] & 0x7f), |acc, &b| {
                (acc << 8) | u64::from(b)
            }));
    }
    let text = String::from_utf8_lossy(field);
    let digits = text.trim_matches(|c: char| c == ' ' || c == '\0');
    if digits.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(digits, 8).map_err(|_| format!("corrupt tar header field {digits:?}"))
}

/// The entry name: ustar's `prefix/name`, or just `name` for other formats (old GNU
/// headers use the prefix bytes for other things).
fn header_name(h: &[u8; 512]) -> String {
    let field = |b: &[u8]| {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    };
    let name = field(&h[..100]);
    let prefix = field(&h[345..500]);
    if &h[257..263] == b"ustar\0" && !prefix.is_empty() {
        format!("{prefix}/{name}")
    } else {
        name
    }
}

/// The `path` record of a pax extended header (`"LEN path=VALUE\n"` records).
fn pax_path(meta: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(meta);
    text.lines().find_map(|line| {
        let (_, kv) = line.split_once(' ')?;
        kv.strip_prefix("path=").map(str::to_string)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::io::BufRead;
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread::JoinHandle;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p = std::env::temp_dir()
                .join(format!("rcc-fetch-test-{}-{tag}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn sha_hex(bytes: &[u8]) -> String {
        format!("{:x}", Sha256::digest(bytes))
    }

    /// Every file under `dir`, recursively.
    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut all = vec![];
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                all.extend(files_under(&p));
            } else {
                all.push(p);
            }
        }
        all
    }

    fn assert_no_part_files(dir: &Path) {
        let parts: Vec<_> = files_under(dir)
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".part"))
            .collect();
        assert!(parts.is_empty(), "left behind: {parts:?}");
    }

    fn fake_bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
    }

    fn spec<'a>(rel: &'a str, urls: &'a [&'a str], body: &[u8], sha: &'a str) -> FileSpec<'a> {
        FileSpec {
            rel,
            mirror_alt: &[],
            urls,
            sha256: sha,
            size: body.len() as u64,
        }
    }

    fn fetch(spec: &FileSpec, data: &Path, source: &Source) -> (Result<(), Failure>, String) {
        let mut out = vec![];
        let r = fetch_file(spec, data, source, false, &mut out);
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn fetch_from_mirror_verifies_and_never_leaves_bad_files() {
        let (mirror, data) = (TempDir::new("mirror"), TempDir::new("data"));
        let body = fake_bytes(200_000, 7);
        let sha = sha_hex(&body);
        let s = spec("fake/train.gz", &[], &body, &sha);
        fs::create_dir_all(mirror.0.join("fake")).unwrap();
        fs::write(mirror.0.join(s.rel), &body).unwrap();
        let src = Source::Mirror(&mirror.0);
        let dest = data.0.join(s.rel);

        // A correct mirror file is copied.
        let (r, out) = fetch(&s, &data.0, &src);
        r.unwrap();
        assert!(out.contains("ok (copied from"), "{out}");
        assert_eq!(fs::read(&dest).unwrap(), body);
        assert_no_part_files(&data.0);

        // A second run keeps it.
        let (r, out) = fetch(&s, &data.0, &src);
        r.unwrap();
        assert!(out.contains("ok (already present)"), "{out}");

        // An existing corrupt final file (right size, wrong bytes) is replaced.
        let mut bad = body.clone();
        bad[1234] ^= 0xff;
        fs::write(&dest, &bad).unwrap();
        let (r, out) = fetch(&s, &data.0, &src);
        r.unwrap();
        assert!(out.contains("does not verify"), "{out}");
        assert!(out.contains(&sha_hex(&bad)) && out.contains(&sha), "{out}");
        assert_eq!(fs::read(&dest).unwrap(), body);

        // An existing file of the wrong size is replaced too.
        fs::write(&dest, &body[..1000]).unwrap();
        let (r, out) = fetch(&s, &data.0, &src);
        r.unwrap();
        assert!(out.contains("has 1000 bytes instead of 200000"), "{out}");
        assert_eq!(fs::read(&dest).unwrap(), body);

        // A corrupt mirror file is refused with both hashes, and leaves nothing behind.
        fs::remove_file(&dest).unwrap();
        fs::write(mirror.0.join(s.rel), &bad).unwrap();
        let (r, _) = fetch(&s, &data.0, &src);
        let msg = r.unwrap_err().msg;
        assert!(msg.starts_with("fake/train.gz: copying from "), "{msg}");
        assert!(msg.contains(": checksum mismatch: "), "{msg}");
        assert!(msg.contains(&format!("expected sha256 {sha}")), "{msg}");
        assert!(msg.contains(&format!("got {}", sha_hex(&bad))), "{msg}");
        assert!(!dest.exists());
        assert_no_part_files(&data.0);

        // A corrupt final file with a corrupt mirror: the final name ends up empty, not
        // holding the corrupt file.
        fs::write(&dest, &bad).unwrap();
        let (r, _) = fetch(&s, &data.0, &src);
        assert!(r.is_err());
        assert!(!dest.exists());
        assert_no_part_files(&data.0);

        // A file missing from the mirror says so, with where it looked.
        fs::remove_file(mirror.0.join(s.rel)).unwrap();
        let (r, _) = fetch(&s, &data.0, &src);
        let f = r.unwrap_err();
        assert!(f.not_in_mirror);
        assert!(f
            .msg
            .starts_with("fake/train.gz: not in the mirror (looked for "));
        assert!(f.msg.contains(&mirror.0.join(s.rel).display().to_string()));
    }

    #[test]
    fn fetch_from_mirror_uses_alternative_locations() {
        let (mirror, data) = (TempDir::new("alt"), TempDir::new("altdata"));
        let body = fake_bytes(5000, 1);
        let sha = sha_hex(&body);
        let s = FileSpec {
            mirror_alt: &["sub/archive.tar.gz"],
            ..spec("archive.tar.gz", &[], &body, &sha)
        };
        fs::create_dir_all(mirror.0.join("sub")).unwrap();
        fs::write(mirror.0.join("sub/archive.tar.gz"), &body).unwrap();
        let (r, _) = fetch(&s, &data.0, &Source::Mirror(&mirror.0));
        r.unwrap();
        assert_eq!(fs::read(data.0.join("archive.tar.gz")).unwrap(), body);
    }

    /// What the test server does with one connection.
    enum Reply {
        /// 200 with Content-Length and the whole body.
        Full(Vec<u8>),
        /// 200 with the Content-Length of `announced` bytes, then only `body`, then close.
        Cut {
            announced: usize,
            body: Vec<u8>,
        },
        NotFound,
    }

    /// Serves `replies` in order, one per connection, on 127.0.0.1. Returns the base URL.
    fn serve(replies: Vec<Reply>) -> (String, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            for reply in replies {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = io::BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                        break;
                    }
                }
                let mut stream = stream;
                let head = |n: usize| {
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n")
                };
                let _ = match reply {
                    Reply::Full(b) => stream
                        .write_all(head(b.len()).as_bytes())
                        .and_then(|_| stream.write_all(&b)),
                    Reply::Cut { announced, body } => stream
                        .write_all(head(announced).as_bytes())
                        .and_then(|_| stream.write_all(&body)),
                    Reply::NotFound => stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    ),
                };
                let _ = stream.flush();
                // Dropping the stream closes the connection.
            }
        });
        (base, handle)
    }

    #[test]
    fn fetch_download_verifies_and_never_leaves_bad_files() {
        let data = TempDir::new("web");
        let agent = web_agent(false);
        let body = fake_bytes(300_000, 3);
        let sha = sha_hex(&body);
        let mut bad = body.clone();
        bad[299_999] ^= 1;
        let (base, server) = serve(vec![
            Reply::Full(body.clone()),
            Reply::Full(bad.clone()),
            Reply::Cut {
                announced: body.len(),
                body: body[..100_000].to_vec(),
            },
            Reply::Full(body[..1000].to_vec()),
            Reply::NotFound,
            Reply::Full(body.clone()),
        ]);
        let url = format!("{base}/train.gz");
        let urls = [url.as_str()];
        let s = spec("web/train.gz", &urls, &body, &sha);
        let dest = data.0.join(s.rel);
        let src = Source::Web(&agent);

        // 1. The whole file: downloaded and verified.
        let (r, out) = fetch(&s, &data.0, &src);
        r.unwrap();
        assert!(out.contains(&format!("ok (downloaded from {url}")), "{out}");
        assert_eq!(fs::read(&dest).unwrap(), body);
        fs::remove_file(&dest).unwrap();

        // 2. Corrupt bytes: refused with both hashes.
        let (r, _) = fetch(&s, &data.0, &src);
        let msg = r.unwrap_err().msg;
        assert!(
            msg.contains(&format!("expected sha256 {sha}, got {}", sha_hex(&bad))),
            "{msg}"
        );
        assert!(
            msg.starts_with(&format!("web/train.gz: could not download it from {url}: ")),
            "{msg}"
        );
        assert!(!msg.contains("--from"), "not a connection problem: {msg}");
        assert!(!dest.exists());
        assert_no_part_files(&data.0);

        // 3. Connection closed mid-body: refused.
        let (r, _) = fetch(&s, &data.0, &src);
        let msg = r.unwrap_err().msg;
        assert!(msg.contains(&url), "{msg}");
        assert!(
            msg.contains("read failed after 100000 of 300000 bytes"),
            "{msg}"
        );
        assert!(!dest.exists());
        assert_no_part_files(&data.0);

        // 4. A server announcing another size is not sending the official file.
        let (r, _) = fetch(&s, &data.0, &src);
        let msg = r.unwrap_err().msg;
        assert!(
            msg.contains("announces 1000 bytes but the official file has 300000"),
            "{msg}"
        );
        assert!(!dest.exists());

        // 5. The URLs are tried in order: a 404 and then a good one.
        let (url_a, url_b) = (format!("{base}/a.gz"), format!("{base}/b.gz"));
        let urls2 = [url_a.as_str(), url_b.as_str()];
        let s2 = FileSpec { urls: &urls2, ..s };
        let (r, out) = fetch(&s2, &data.0, &src);
        r.unwrap();
        assert!(out.contains(&format!("downloaded from {url_b}")), "{out}");
        assert_eq!(fs::read(&dest).unwrap(), body);
        assert_no_part_files(&data.0);
        server.join().unwrap();
    }

    #[test]
    fn fetch_download_without_network_suggests_a_mirror() {
        let data = TempDir::new("offline");
        // A port nobody listens on: connection refused, as good as no network.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/x.gz");
        let urls = [url.as_str()];
        let body = b"x";
        let sha = sha_hex(body);
        let s = spec("x.gz", &urls, body, &sha);
        let agent = web_agent(false);
        let (r, _) = fetch(&s, &data.0, &Source::Web(&agent));
        let msg = r.unwrap_err().msg;
        assert!(
            msg.starts_with(&format!("x.gz: could not download it from {url}: ")),
            "{msg}"
        );
        assert!(msg.contains("use --from DIR with a local mirror"), "{msg}");
        assert!(files_under(&data.0).is_empty());
    }

    /// A tar archive of `entries` (name, bytes), with a GNU long-name entry for names over
    /// 100 bytes, as `tar` writes them.
    fn tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
        fn header(name: &str, size: usize, kind: u8) -> [u8; 512] {
            let mut h = [0u8; 512];
            h[..name.len().min(100)].copy_from_slice(&name.as_bytes()[..name.len().min(100)]);
            h[100..108].copy_from_slice(b"0000644\0");
            h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
            h[136..148].copy_from_slice(b"14000000000\0");
            h[156] = kind;
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
            h[148..156].copy_from_slice(b"        ");
            let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
            h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            h
        }
        fn padded(out: &mut Vec<u8>, data: &[u8]) {
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        let mut out = vec![];
        for &(name, data) in entries {
            if name.len() > 100 {
                out.extend_from_slice(&header("././@LongLink", name.len() + 1, b'L'));
                padded(&mut out, format!("{name}\0").as_bytes());
            }
            let kind = if name.ends_with('/') { b'5' } else { b'0' };
            out.extend_from_slice(&header(name, data.len(), kind));
            padded(&mut out, data);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    /// A gzip member of stored (uncompressed) deflate blocks: what the tests need, with
    /// no compressor in the workspace.
    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        let mut chunks: Vec<&[u8]> = bytes.chunks(65_535).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let last = chunks.len() - 1;
        for (i, c) in chunks.iter().enumerate() {
            out.push(u8::from(i == last));
            let len = c.len() as u16;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(c);
        }
        out.extend_from_slice(&rcc_data::gzip::crc32(bytes).to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out
    }

    #[test]
    fn fetch_archive_is_verified_then_extracted() {
        let (mirror, data) = (TempDir::new("tarmirror"), TempDir::new("tardata"));
        let (a, meta) = (fake_bytes(3073 * 3, 9), b"cat\ndog\n".to_vec());
        let long = format!("fake-batches/{}.bin", "b".repeat(120));
        let b = fake_bytes(700, 2);
        let archive = gzip(&tar(&[
            ("fake-batches/", b""),
            ("fake-batches/a.bin", &a),
            ("fake-batches/readme.html", b"<p>not extracted</p>"),
            ("../evil.bin", b"never written"),
            (&long, &b),
            ("./fake-batches/meta.txt", &meta),
        ]));
        fs::write(mirror.0.join("fake.tar.gz"), &archive).unwrap();
        let sha = sha_hex(&archive);
        let long_member = format!("{}.bin", "b".repeat(120));
        let members = [
            Member {
                name: "a.bin",
                size: a.len() as u64,
            },
            Member {
                name: "meta.txt",
                size: meta.len() as u64,
            },
            Member {
                name: &long_member,
                size: b.len() as u64,
            },
        ];
        let files = [spec("fake.tar.gz", &[], &archive, &sha)];
        let ds = Dataset {
            name: "fake",
            files: &files,
            extract: Some(Extract {
                dir: "fake-batches",
                members: &members,
            }),
        };
        let run = |ds: &Dataset| {
            let mut out = vec![];
            let r = fetch_dataset(ds, &data.0, &Source::Mirror(&mirror.0), false, &mut out);
            (r, String::from_utf8(out).unwrap())
        };

        let (r, out) = run(&ds);
        r.unwrap();
        assert!(
            out.contains("fake-batches/: ok (extracted 3 files)"),
            "{out}"
        );
        let dir = data.0.join("fake-batches");
        assert_eq!(fs::read(dir.join("a.bin")).unwrap(), a);
        assert_eq!(fs::read(dir.join("meta.txt")).unwrap(), meta);
        assert_eq!(fs::read(dir.join(&long_member)).unwrap(), b);
        assert!(!dir.join("readme.html").exists());
        assert!(!data.0.join("../evil.bin").exists() && !data.0.join("evil.bin").exists());
        assert_no_part_files(&data.0);

        let (r, out) = run(&ds);
        r.unwrap();
        assert!(out.contains("fake.tar.gz: ok (already present)"), "{out}");
        assert!(
            out.contains("fake-batches/: ok (already extracted)"),
            "{out}"
        );

        // A lost member is extracted again.
        fs::remove_file(dir.join("a.bin")).unwrap();
        let (r, out) = run(&ds);
        r.unwrap();
        assert!(out.contains("ok (extracted 3 files)"), "{out}");
        assert_eq!(fs::read(dir.join("a.bin")).unwrap(), a);

        // A member of the wrong size in the archive is refused and not written.
        fs::remove_dir_all(&dir).unwrap();
        let wrong = [Member {
            name: "a.bin",
            size: 5,
        }];
        let ds_wrong = Dataset {
            extract: Some(Extract {
                dir: "fake-batches",
                members: &wrong,
            }),
            ..ds
        };
        let msg = run(&ds_wrong).0.unwrap_err().msg;
        assert!(
            msg.contains("has 9219 bytes in the archive, expected 5"),
            "{msg}"
        );
        assert!(!dir.join("a.bin").exists());

        // A member missing from the archive is reported.
        let absent = [Member {
            name: "c.bin",
            size: 1,
        }];
        let ds_absent = Dataset {
            extract: Some(Extract {
                dir: "fake-batches",
                members: &absent,
            }),
            ..ds
        };
        let msg = run(&ds_absent).0.unwrap_err().msg;
        assert!(msg.ends_with("lacks c.bin"), "{msg}");
        assert_no_part_files(&data.0);
    }

    #[test]
    fn fetch_tar_reader_rejects_corrupt_headers_and_truncation() {
        let body = fake_bytes(2000, 5);
        let good = tar(&[("d/x.bin", &body)]);
        let mut seen = vec![];
        for_each_tar_entry(&mut &good[..], &mut |name, size, r| {
            let mut v = vec![];
            r.read_to_end(&mut v).unwrap();
            seen.push((name.to_string(), size, v));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![("d/x.bin".to_string(), 2000, body)]);

        let mut bad = good.clone();
        bad[5] ^= 1; // a byte of the name
        let err = for_each_tar_entry(&mut &bad[..], &mut |_, _, _| Ok(())).unwrap_err();
        assert!(err.starts_with("corrupt tar header (checksum"), "{err}");

        let cut = &good[..512 + 1000];
        let err = for_each_tar_entry(&mut &cut[..], &mut |_, _, _| Ok(())).unwrap_err();
        assert!(err.contains("archive truncated in d/x.bin"), "{err}");

        assert_eq!(parse_number(b"00000001750\0").unwrap(), 1000);
        assert_eq!(parse_number(b"  1750 \0").unwrap(), 1000);
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[4..].copy_from_slice(&10_000_000_000u64.to_be_bytes());
        assert_eq!(parse_number(&big).unwrap(), 10_000_000_000);
    }

    #[test]
    fn fetch_real_mnist_from_shared_mirror() {
        let mirror = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets");
        if !mirror.join("mnist").is_dir() {
            eprintln!("skipped: no offline mirror at {}", mirror.display());
            return;
        }
        let data = TempDir::new("mnist");
        let mnist = select(DATASETS, "mnist").unwrap()[0];
        let mut out = vec![];
        fetch_dataset(mnist, &data.0, &Source::Mirror(&mirror), false, &mut out).unwrap();
        for f in mnist.files {
            let path = data.0.join(f.rel);
            assert_eq!(fs::metadata(&path).unwrap().len(), f.size, "{}", f.rel);
            assert_eq!(hash_file(&path).unwrap(), f.sha256, "{}", f.rel);
        }
        assert_no_part_files(&data.0);
        let mut again = vec![];
        fetch_dataset(mnist, &data.0, &Source::Mirror(&mirror), false, &mut again).unwrap();
        let again = String::from_utf8(again).unwrap();
        assert_eq!(again.matches("ok (already present)").count(), 4, "{again}");
    }

    #[test]
    fn fetch_options_and_table() {
        // --data beats $RCC_DATA, which beats the default; an empty $RCC_DATA is unset.
        let flag = Some(PathBuf::from("/f"));
        let env = Some(OsString::from("/e"));
        assert_eq!(
            data_dir_from(flag.clone(), env.clone()),
            PathBuf::from("/f")
        );
        assert_eq!(data_dir_from(None, env), PathBuf::from("/e"));
        let default = data_dir_from(None, Some(OsString::new()));
        assert!(default.ends_with("datasets") && default.parent().unwrap().join("xtask").is_dir());
        assert_eq!(data_dir_from(None, None), default);

        let names = |w: &str| -> Vec<&str> {
            select(DATASETS, w)
                .unwrap()
                .iter()
                .map(|d| d.name)
                .collect()
        };
        assert_eq!(names("all"), ["mnist", "fashion-mnist", "cifar10"]);
        assert_eq!(names("cifar10, mnist,mnist"), ["cifar10", "mnist"]);
        let err = select(DATASETS, "cifar100").unwrap_err();
        assert!(
            err.contains("\"cifar100\"") && err.contains("fashion-mnist"),
            "{err}"
        );

        let mut rels = vec![];
        for d in DATASETS {
            for f in d.files {
                assert_eq!(f.sha256.len(), 64, "{}", f.rel);
                assert!(f
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
                assert!(!f.urls.is_empty() && f.size > 0);
                assert!(
                    f.rel.starts_with(d.name) || d.extract.is_some(),
                    "{}",
                    f.rel
                );
                rels.push(f.rel);
            }
        }
        let n = rels.len();
        rels.sort();
        rels.dedup();
        assert_eq!(rels.len(), n);
    }
}
