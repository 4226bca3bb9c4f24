//! Memory accounting for method.md section 2's claim ("the proximal method keeps W
//! (+ momentum); ADMM keeps W, Z and U ...: measure it, don't just claim it"): the
//! process's resident set as the kernel reports it, and the bytes of each piece of
//! training state as the trainer counts them.

use std::fmt;

/// Peak resident set size of this process (VmHWM), in bytes. None off Linux or if
/// /proc/self/status cannot be read or parsed.
pub fn peak_rss_bytes() -> Option<u64> {
    status_field_bytes("VmHWM")
}

/// Current resident set size of this process (VmRSS), in bytes. None as for
/// [`peak_rss_bytes`].
pub fn current_rss_bytes() -> Option<u64> {
    status_field_bytes("VmRSS")
}

fn status_field_bytes(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kb(&status, key).and_then(|kb| kb.checked_mul(1024))
}

/// The value of a `Key:   1234 kB` line of /proc/self/status, in kB.
fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let (k, rest) = line.split_once(':')?;
        if k != key {
            return None;
        }
        let mut words = rest.split_whitespace();
        let value = words.next()?.parse().ok()?;
        (words.next()? == "kB").then_some(value)
    })
}

/// Bytes of each piece of training state, filled by the trainer; the proximal method
/// has `admm` = 0, ADMM has it at 2 x the pruned weights' bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateBytes {
    pub params: usize,
    pub grads: usize,
    /// Momentum or Adam moments.
    pub optimizer: usize,
    pub masks: usize,
    /// ADMM's Z and U.
    pub admm: usize,
    /// The frozen teacher's parameters (distillation).
    pub teacher: usize,
}

impl StateBytes {
    pub fn total(&self) -> usize {
        self.params + self.grads + self.optimizer + self.masks + self.admm + self.teacher
    }
}

/// Bytes as MiB with one decimal ("12.3 MiB"), or plain bytes under one KiB.
pub fn format_bytes(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}

impl fmt::Display for StateBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            ("params", self.params),
            ("grads", self.grads),
            ("optimizer", self.optimizer),
            ("masks", self.masks),
            ("admm", self.admm),
            ("teacher", self.teacher),
        ];
        for (name, bytes) in parts {
            write!(f, "{name} {}, ", format_bytes(bytes as u64))?;
        }
        write!(f, "total {}", format_bytes(self.total() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str =
        "Name:\tcargo\nVmPeak:\t  200 kB\nVmHWM:\t   12345 kB\nVmRSS:\t    678 kB\nThreads:\t2\n";

    #[test]
    fn parses_status_lines() {
        assert_eq!(parse_status_kb(STATUS, "VmHWM"), Some(12345));
        assert_eq!(parse_status_kb(STATUS, "VmRSS"), Some(678));
        assert_eq!(parse_status_kb(STATUS, "VmSwap"), None);
        // A field without the kB unit, or with a garbage number, is not a size.
        assert_eq!(parse_status_kb(STATUS, "Threads"), None);
        assert_eq!(parse_status_kb("VmRSS:\t12x kB\n", "VmRSS"), None);
        assert_eq!(parse_status_kb("", "VmRSS"), None);
    }

    #[test]
    fn reads_this_process() {
        if cfg!(target_os = "linux") {
            // Current first: the peak read after it can only be as large or larger
            // (other test threads may allocate in between).
            let now = current_rss_bytes().unwrap();
            let peak = peak_rss_bytes().unwrap();
            assert!(now > 0 && peak >= now, "peak {peak}, current {now}");
        }
    }

    #[test]
    fn state_bytes_total_and_display() {
        let s = StateBytes {
            params: 4 * 1024 * 1024,
            grads: 4 * 1024 * 1024,
            optimizer: 4 * 1024 * 1024,
            masks: 100,
            admm: 0,
            teacher: 0,
        };
        assert_eq!(s.total(), 12 * 1024 * 1024 + 100);
        assert_eq!(
            s.to_string(),
            "params 4.0 MiB, grads 4.0 MiB, optimizer 4.0 MiB, masks 100 B, admm 0 B, teacher 0 B, total 12.0 MiB"
        );
    }
}
