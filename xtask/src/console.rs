//! What the commands show of a run on the terminal: [`Console`], the [`Observer`] that
//! prints training progress, epoch lines, news and attack progress, and measures the
//! compressor's heap with this program's counting allocator ([`crate::heap`]).

use rcc_attack::Progress;
use rcc_train::metrics::EpochMetrics;
use rcc_train::{HeapCounter, Observer, StepProgress, TrainConfig};
use std::time::Instant;

pub fn fmt_duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// One progress line on stderr for a batch of a long attack (more than a few seconds):
/// the attack, the batches done, robust accuracy so far, the time and an ETA.
pub fn print_progress(p: &Progress<'_>, label: &str) {
    if let Progress::Batch {
        spec,
        done,
        batches,
        robust,
        seen,
        seconds,
    } = *p
    {
        if done < batches && seconds > 5.0 {
            let eta = seconds / done as f64 * (batches - done) as f64;
            eprintln!(
                "  {label}{}: batch {done}/{batches}, {robust} of {seen} robust so far, {seconds:.0} s, ETA {eta:.0} s",
                spec.name()
            );
        }
    }
}

/// Progress on stderr (in place on a terminal every second, a plain line every 10 s in a
/// log), one line per epoch on stdout.
pub struct Console {
    tty: bool,
    last_print: Instant,
    sweep: Option<u32>,
}

/// Set by `sweep` in its children's environment: the sweep's process id.
pub const SWEEP_PID_ENV: &str = "RCC_SWEEP_PID";

/// The process id of the sweep that started this process, if one did.
pub fn sweep_parent() -> Option<u32> {
    std::env::var(SWEEP_PID_ENV).ok()?.parse().ok()
}

/// Stops this process (exit status 3) if it is a sweep's child (`sweep`: the sweep's
/// process id) whose sweep is gone; see [`Console::stop_if_orphaned`].
fn exit_if_orphaned(sweep: Option<u32>) {
    if let Some(pid) = sweep.filter(|&pid| std::os::unix::process::parent_id() != pid) {
        eprintln!(
            "the sweep that started this run (process {pid}) is gone: stopping; rerun the sweep to resume"
        );
        std::process::exit(3);
    }
}

/// Reads a child's pipe to its end on a thread of its own.
fn drain(pipe: Option<impl std::io::Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = vec![];
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// `cmd.output()`, except that a sweep's child whose sweep is killed meanwhile kills
/// `cmd` and stops (exit status 3) within 20 ms, rather than at the end of a compiler
/// run that may take seconds (the C export's footprint in every run's report).
pub fn output_unless_orphaned(
    cmd: &mut std::process::Command,
) -> std::io::Result<std::process::Output> {
    use std::process::Stdio;
    let sweep = sweep_parent();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    // Read both pipes beside the wait, so that a chatty tool cannot fill one and block.
    let (out, err) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if sweep.is_some_and(|pid| std::os::unix::process::parent_id() != pid) {
            // Take the tool down first: it would otherwise outlive this process.
            let _ = child.kill();
            let _ = child.wait();
            exit_if_orphaned(sweep);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Ok(std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

impl Console {
    pub fn new() -> Console {
        Console {
            tty: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            last_print: Instant::now(),
            sweep: sweep_parent(),
        }
    }

    /// A sweep's child whose sweep was killed (SIGKILL reaches only the sweep itself)
    /// stops at its next step, attack batch or phase of the evaluation, as if killed
    /// with it: otherwise it
    /// would train on, unwatched, beside the rerun sweep's child for the same run.
    /// Stopping here is safe for the same reason a kill is: every file is written
    /// atomically, and the rerun resumes from the last checkpoint.
    pub fn stop_if_orphaned(&self) {
        exit_if_orphaned(self.sweep);
    }
}

impl Observer for Console {
    fn step(&mut self, p: &StepProgress) {
        self.stop_if_orphaned();
        let every = if self.tty { 1.0 } else { 10.0 };
        let last = p.step + 1 == p.steps;
        if self.last_print.elapsed().as_secs_f64() <= every && !(self.tty && last) {
            return;
        }
        self.last_print = Instant::now();
        eprint!(
            "{}epoch {}/{} step {}/{} loss {:.4} acc {:.2}% {:.0} samples/s ETA {}{}",
            if self.tty { "\r" } else { "" },
            p.epoch + 1,
            p.epochs,
            p.step + 1,
            p.steps,
            p.loss,
            100.0 * p.acc,
            p.samples_per_s,
            fmt_duration(p.eta_secs),
            if self.tty { "   " } else { "\n" }
        );
    }

    fn epoch(&mut self, cfg: &TrainConfig, m: &EpochMetrics) {
        if self.tty {
            eprintln!();
        }
        let mut extra = m.val.map_or(String::new(), |(_, va)| {
            format!(", val acc {:.2}%", 100.0 * va)
        });
        if let Some(r) = &m.robust {
            extra += &format!(
                ", PGD-40 acc {:.2}% (eps {}, first {} {} images)",
                100.0 * r.acc,
                cfg.adv.eps(),
                r.n,
                r.split
            );
        }
        if let Some(c) = &m.compress {
            extra += &format!(
                ", {} phase, rate {:.2}x ({} of {} weights), state {} B",
                c.phase,
                c.rate,
                c.nnz,
                c.prunable,
                c.state.total()
            );
            if let Some((held, peak)) = c.heap {
                extra += &format!(" (compressor: {held} B held, {peak} B at most)");
            }
            if let Some(off) = c.off_budget {
                extra += &format!(", {:.1}% of the norm off budget", 100.0 * off);
            }
            extra += &format!(
                ", peak RSS {:.1} MiB",
                m.peak_rss_bytes as f64 / (1 << 20) as f64
            );
        }
        let kind = if m.train_adv.is_none() {
            "train"
        } else {
            "robust train"
        };
        println!(
            "epoch {}/{}: {kind} loss {:.4}, {kind} acc {:.2}%, test acc {:.2}%{extra}, {:.1} s ({:.0} samples/s)",
            m.epoch,
            cfg.epochs,
            m.train_loss,
            100.0 * m.train_acc,
            100.0 * m.test_acc,
            m.seconds,
            m.samples_per_s
        );
        if m.train_acc <= 1.0 / 9.0 && m.epoch >= 2 {
            eprintln!("warning: training accuracy is at chance level (a collapse to one class?)");
        }
    }

    fn note(&mut self, msg: &str) {
        self.stop_if_orphaned();
        eprintln!("{msg}");
    }

    fn attack(&mut self, label: &str, p: &Progress<'_>) {
        self.stop_if_orphaned();
        match p {
            Progress::Done(a) => eprintln!(
                "  {label}: {}: {:.2}% ({:.1} s)",
                a.spec.describe(),
                100.0 * a.acc,
                a.seconds
            ),
            batch => print_progress(batch, ""),
        }
    }

    fn heap_counter(&self) -> Option<HeapCounter> {
        Some(crate::heap::COUNTER)
    }
}
