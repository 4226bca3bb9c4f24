//! A small command-line parser: `--name value` options, `--switch` flags, positionals.
//! Every unknown option is an error that lists the known ones.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub struct Cli {
    pub positional: Vec<String>,
    opts: Vec<(String, Option<String>)>,
}

impl Cli {
    /// `valued`: options that take a value; `switches`: options that do not.
    pub fn parse(args: &[String], valued: &[&str], switches: &[&str]) -> Result<Cli, String> {
        let (mut positional, mut opts) = (vec![], vec![]);
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                positional.push(a.clone());
                continue;
            };
            // Accept --name=value too.
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (name, None),
            };
            if switches.contains(&name) {
                opts.push((name.to_string(), None));
            } else if valued.contains(&name) {
                let v = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or(format!("--{name} needs a value"))?,
                };
                opts.push((name.to_string(), Some(v)));
            } else {
                let known: Vec<String> = valued
                    .iter()
                    .chain(switches)
                    .map(|f| format!("--{f}"))
                    .collect();
                return Err(format!(
                    "unknown option --{name} (expected one of: {})",
                    known.join(", ")
                ));
            }
        }
        Ok(Cli { positional, opts })
    }

    /// The last value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn has(&self, name: &str) -> bool {
        self.opts.iter().any(|(n, _)| n == name)
    }

    /// All `(name, value)` pairs of valued options, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.opts
            .iter()
            .filter_map(|(n, v)| v.as_deref().map(|v| (n.as_str(), v)))
    }

    /// `--name` parsed as `T`, with a message naming the option on failure.
    pub fn num<T: FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        self.get(name).map(|v| parse_value(name, v)).transpose()
    }
}

pub fn parse_value<T: FromStr>(name: &str, v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("--{name}: {v:?} is not a valid value"))
}

/// The data directory, the one rule every command uses: `--data DIR`, else `$RCC_DATA`,
/// else the workspace's `datasets/`.
pub fn data_dir(flag: Option<&str>) -> PathBuf {
    data_dir_from(flag.map(PathBuf::from), std::env::var_os("RCC_DATA"))
}

/// [`data_dir`] from the flag and the environment variable's value: `--data DIR` if
/// given, else `$RCC_DATA` if set and non-empty, else `datasets/` at the workspace root
/// (found from this crate's manifest directory, so any cwd works).
pub fn data_dir_from(flag: Option<PathBuf>, env: Option<OsString>) -> PathBuf {
    flag.or_else(|| env.filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| workspace_root().join("datasets"))
}

/// The workspace root (xtask's parent directory), whatever the current directory.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Writes `bytes` to `path` atomically (`rcc_train::run_dir::write_atomic`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    Ok(rcc_train::run_dir::write_atomic(path, bytes)?)
}
