//! A run folder and its files: `config.txt` (the resolved settings), `metrics.jsonl`
//! (one line per epoch), `checkpoint.safetensors` (model, optimiser and compressor state
//! at each epoch end and every `checkpoint-every` steps; `checkpoint.prev.safetensors` is
//! the one before, kept until the next is complete), `model.safetensors` (the final model), and after the evaluation
//! `model.sparse.safetensors`, `report.md` and `summary.txt`.
//!
//! Every file a reader may see half-written goes through [`write_atomic`]: a temporary
//! file in the same folder, fsynced, then renamed over the final name.

use crate::metrics::EpochMetrics;
use crate::{Error, Result, TrainConfig};
use rcc_nn::Model;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` through `path.tmp`, fsynced and renamed, then fsyncs the
/// folder (so the rename itself survives a power cut), so that a reader (or a run killed
/// mid-write) never sees a half-written file under the final name. A failed write (a
/// full disk, say) removes its temporary file and leaves `path` as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .map_err(|e| Error::io(&tmp, e))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return written;
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Best effort: some filesystems cannot fsync a directory; the data itself is synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A run folder's lock, held until dropped (or the process ends).
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

/// The folder of one run.
#[derive(Clone, Debug)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    pub fn new(path: impl Into<PathBuf>) -> RunDir {
        RunDir { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn config(&self) -> PathBuf {
        self.path.join("config.txt")
    }

    pub fn metrics(&self) -> PathBuf {
        self.path.join("metrics.jsonl")
    }

    pub fn checkpoint(&self) -> PathBuf {
        self.path.join("checkpoint.safetensors")
    }

    /// The checkpoint before the last, kept until the last is complete: the fallback if
    /// the last one is corrupted.
    pub fn previous_checkpoint(&self) -> PathBuf {
        self.path.join("checkpoint.prev.safetensors")
    }

    pub fn model(&self) -> PathBuf {
        self.path.join("model.safetensors")
    }

    pub fn sparse_model(&self) -> PathBuf {
        self.path.join("model.sparse.safetensors")
    }

    pub fn report(&self) -> PathBuf {
        self.path.join("report.md")
    }

    pub fn summary(&self) -> PathBuf {
        self.path.join("summary.txt")
    }

    pub fn create(&self) -> Result<()> {
        std::fs::create_dir_all(&self.path).map_err(|e| Error::io(&self.path, e))
    }

    /// The file whose lock marks the folder as in use.
    pub fn lock_file(&self) -> PathBuf {
        self.path.join("lock")
    }

    /// Takes the folder's lock (an advisory lock on [`RunDir::lock_file`], which the
    /// OS drops when the process ends, however it ends), creating the folder if need be;
    /// `None` if another process holds it. Two processes training in one folder would
    /// overwrite each other's checkpoints.
    pub fn try_lock(&self) -> Result<Option<RunLock>> {
        let f = self.open_lock()?;
        match f.try_lock() {
            Ok(()) => Ok(Some(RunLock { _file: f })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&self.lock_file(), e)),
        }
    }

    /// [`RunDir::try_lock`] that waits for the holder to end.
    pub fn lock(&self) -> Result<RunLock> {
        let f = self.open_lock()?;
        f.lock().map_err(|e| Error::io(&self.lock_file(), e))?;
        Ok(RunLock { _file: f })
    }

    fn open_lock(&self) -> Result<std::fs::File> {
        self.create()?;
        let path = self.lock_file();
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))
    }

    /// Starts a fresh run: its settings into `config.txt`, an old run's metrics and
    /// evaluation removed.
    pub fn start(&self, cfg: &TrainConfig) -> Result<()> {
        write_atomic(&self.config(), cfg.to_text().as_bytes())?;
        for f in [self.metrics(), self.summary(), self.report()] {
            match std::fs::remove_file(&f) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&f, e)),
                _ => {}
            }
        }
        Ok(())
    }

    /// The settings in `config.txt`, checked.
    pub fn read_config(&self) -> Result<TrainConfig> {
        let mut cfg = TrainConfig::default();
        cfg.apply_file(&self.config())?;
        cfg.check()
            .map_err(|e| e.context(self.config().display().to_string()))?;
        Ok(cfg)
    }

    /// Appends one epoch's line to `metrics.jsonl`.
    pub fn append_metrics(&self, m: &EpochMetrics) -> Result<()> {
        let path = self.metrics();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        writeln!(f, "{}", m.to_json()).map_err(|e| Error::io(&path, e))
    }

    /// Keeps the metrics lines of the first `epochs` epochs: a run killed between an
    /// epoch's metrics line and its checkpoint leaves a line the resumed run writes again.
    pub fn keep_metrics(&self, epochs: usize) -> Result<()> {
        let path = self.metrics();
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(());
        };
        let kept: String = text
            .lines()
            .filter(|l| EpochMetrics::from_json(l).is_ok_and(|m| m.epoch <= epochs))
            .map(|l| format!("{l}\n"))
            .collect();
        write_atomic(&path, kept.as_bytes())
    }

    /// Writes the final model with the run's facts in its metadata (dataset, epochs,
    /// seed, test accuracy and the settings).
    pub fn save_model(
        &self,
        cfg: &TrainConfig,
        model: &Model,
        epochs: usize,
        test_acc: f64,
    ) -> Result<()> {
        let meta = [
            ("dataset", cfg.dataset.to_string()),
            ("epochs", epochs.to_string()),
            ("seed", cfg.seed.to_string()),
            ("test_acc", format!("{test_acc:.6}")),
            ("config", cfg.to_text()),
        ];
        let meta: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Ok(model.save(&self.model(), &meta)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One holder at a time: a second lock is refused while the first is held, and
    /// granted once it is dropped (as when its process ends).
    #[test]
    fn a_run_folder_has_one_holder() {
        let dir = std::env::temp_dir().join(format!("rcc-run-lock-{}", std::process::id()));
        let run = RunDir::new(&dir);
        let first = run.try_lock().unwrap().expect("a free folder locks");
        assert!(run.try_lock().unwrap().is_none());
        drop(first);
        assert!(run.try_lock().unwrap().is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A write that fails leaves the old file and no temporary file: here the rename
    /// fails (the final name is a non-empty folder), and the temporary file cannot be
    /// created (its name is taken by a folder).
    #[test]
    fn a_failed_atomic_write_leaves_no_trace() {
        let dir = std::env::temp_dir().join(format!("rcc-write-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("taken.txt/inside")).unwrap();
        let err = write_atomic(&dir.join("taken.txt"), b"new").unwrap_err();
        assert!(err.to_string().contains("taken.txt"), "{err}");
        assert!(!dir.join("taken.tmp").exists());
        let kept = dir.join("kept.txt");
        std::fs::write(&kept, b"old").unwrap();
        std::fs::create_dir(dir.join("kept.tmp")).unwrap();
        let err = write_atomic(&kept, b"new").unwrap_err();
        assert!(err.to_string().contains("kept.tmp"), "{err}");
        assert_eq!(std::fs::read(&kept).unwrap(), b"old");
        write_atomic(&dir.join("fresh.txt"), b"ok").unwrap();
        assert_eq!(std::fs::read(dir.join("fresh.txt")).unwrap(), b"ok");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
