//! The evaluation protocol of a dataset (method.md section 4) and the attack settings
//! built from it: radii, steps, step sizes, restarts and query budgets, after any override.

use crate::{Error, Result};
use rcc_attack::{AttackLoss, AttackSpec, Examples, FabConfig, PgdConfig, SquareConfig};
use rcc_data::{Dataset, DatasetKind};
use rcc_tensor::Tensor;
use std::ops::Range;

/// A dataset split as the attack crate's batch source.
pub struct DatasetExamples<'a>(pub &'a Dataset);

impl Examples for DatasetExamples<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn batch(&self, range: Range<usize>) -> rcc_attack::Result<(Tensor, Vec<usize>)> {
        if range.end > self.0.len() {
            return Err(rcc_attack::Error::Data(format!(
                "examples {range:?} of a set of {}",
                self.0.len()
            )));
        }
        Ok(self.0.batch(&range.collect::<Vec<_>>(), None))
    }
}

/// The evaluation protocol of a dataset (method.md section 4).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Protocol {
    pub eps: f32,
    pub steps: usize,
    pub step_size: f32,
    pub eps_l2: f32,
    pub apgd_steps: usize,
}

impl Protocol {
    pub fn for_dataset(kind: DatasetKind) -> Protocol {
        match kind {
            DatasetKind::Mnist => Protocol {
                eps: 0.3,
                steps: 40,
                step_size: 0.01,
                eps_l2: 2.0,
                apgd_steps: 100,
            },
            DatasetKind::FashionMnist => Protocol {
                eps: 0.1,
                steps: 40,
                step_size: 0.01,
                eps_l2: 1.5,
                apgd_steps: 100,
            },
            DatasetKind::Cifar10 => Protocol {
                eps: 8.0 / 255.0,
                steps: 20,
                step_size: 2.0 / 255.0,
                eps_l2: 0.5,
                apgd_steps: 100,
            },
        }
    }
}

/// The attack settings after defaults and flags.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub protocol: Protocol,
    pub names: Vec<&'static str>,
    pub eps: f32,
    pub eps_l2: f32,
    pub steps: Option<usize>,
    pub step_size: Option<f32>,
    pub step_size_l2: Option<f32>,
    pub restarts: usize,
    /// Square's query budget (default 5,000).
    pub queries: Option<usize>,
}

pub const ATTACKS: [&str; 5] = ["fgsm", "pgd", "pgd-l2", "apgd-ce", "apgd-dlr"];

/// Attacks that `all` leaves out (they are slow, or ensembles of the others):
/// APGD-T, FAB-T, Square and AutoAttack.
pub const MORE_ATTACKS: [&str; 5] = ["apgd-t", "fab-t", "square", "autoattack", "autoattack-fast"];

/// `fgsm,pgd,...` or `all` -> attack names, in the list's order, without repeats.
pub fn parse_attacks(list: &str) -> Result<Vec<&'static str>> {
    let mut out: Vec<&'static str> = vec![];
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let names: Vec<&'static str> = match item {
            "all" => ATTACKS.to_vec(),
            "fgsm" => vec!["fgsm"],
            "pgd" | "pgd-linf" => vec!["pgd"],
            "pgd-l2" => vec!["pgd-l2"],
            "apgd-ce" | "apgd" => vec!["apgd-ce"],
            "apgd-dlr" => vec!["apgd-dlr"],
            "apgd-t" => vec!["apgd-t"],
            "fab-t" | "fab" => vec!["fab-t"],
            "square" => vec!["square"],
            "autoattack" | "aa" => vec!["autoattack"],
            "autoattack-fast" => vec!["autoattack-fast"],
            other => {
                return Err(Error::Config(format!(
                    "--attack: unknown attack {other:?} (known: {}, {}, all)",
                    ATTACKS.join(", "),
                    MORE_ATTACKS.join(", ")
                )))
            }
        };
        for n in names {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    if out.is_empty() {
        return Err(Error::Config("--attack: no attack named".into()));
    }
    Ok(out)
}

impl Settings {
    /// Refuses settings no attack can run with: a radius or step that is negative or not
    /// finite, no steps, no queries, no restart. The message names the flag.
    pub fn check(&self) -> Result<()> {
        let radius = |name: &str, v: Option<f32>| match v {
            Some(x) if !(x >= 0.0 && x.is_finite()) => Err(Error::Config(format!(
                "--{name}: expected a number >= 0, got {x}"
            ))),
            _ => Ok(()),
        };
        radius("eps", Some(self.eps))?;
        radius("eps-l2", Some(self.eps_l2))?;
        radius("step-size", self.step_size)?;
        radius("step-size-l2", self.step_size_l2)?;
        for (name, v) in [
            ("steps", self.steps),
            ("queries", self.queries),
            ("restarts", Some(self.restarts)),
        ] {
            if v == Some(0) {
                return Err(Error::Config(format!("--{name}: at least 1")));
            }
        }
        Ok(())
    }

    /// The spec of attack `name` at radius `eps` (an l_2 radius for `pgd-l2`).
    pub fn spec(&self, name: &str, eps: f32) -> AttackSpec {
        let p = &self.protocol;
        let restarts = self.restarts;
        match name {
            "fgsm" => AttackSpec::Fgsm { eps },
            "pgd" => AttackSpec::PgdLinf(PgdConfig {
                eps,
                steps: self.steps.unwrap_or(p.steps),
                step_size: self.step_size.unwrap_or(p.step_size * eps / p.eps),
                random_start: true,
                restarts,
            }),
            "pgd-l2" => {
                let steps = self.steps.unwrap_or(p.steps);
                AttackSpec::PgdL2(PgdConfig {
                    eps,
                    steps,
                    step_size: self.step_size_l2.unwrap_or(2.5 * eps / steps.max(1) as f32),
                    random_start: true,
                    restarts,
                })
            }
            "apgd-t" => AttackSpec::ApgdT {
                eps,
                steps: self.steps.unwrap_or(p.apgd_steps),
                targets: 9,
                restarts,
            },
            "fab-t" => AttackSpec::FabT(FabConfig {
                steps: self.steps.unwrap_or(p.apgd_steps),
                ..FabConfig::new(eps)
            }),
            "square" => AttackSpec::Square(SquareConfig {
                queries: self.queries.unwrap_or(5000),
                ..SquareConfig::new(eps)
            }),
            "autoattack" | "autoattack-fast" => AttackSpec::AutoAttack {
                eps,
                fast: name == "autoattack-fast",
            },
            _ => AttackSpec::Apgd {
                loss: if name == "apgd-dlr" {
                    AttackLoss::Dlr
                } else {
                    AttackLoss::CrossEntropy
                },
                eps,
                steps: self.steps.unwrap_or(p.apgd_steps),
                restarts,
            },
        }
    }

    /// Every chosen attack at the configured radii.
    pub fn specs(&self) -> Vec<AttackSpec> {
        self.names
            .iter()
            .map(|n| {
                self.spec(
                    n,
                    if *n == "pgd-l2" {
                        self.eps_l2
                    } else {
                        self.eps
                    },
                )
            })
            .collect()
    }

    /// Every chosen attack at every eps of a sweep, attack after attack.
    pub fn sweep_specs(&self, sweep: &[f32]) -> Result<Vec<AttackSpec>> {
        let l2 = self.names.iter().filter(|n| **n == "pgd-l2").count();
        if l2 > 0 && l2 < self.names.len() {
            return Err(Error::Config(
                "--eps-sweep: l_inf and l_2 attacks cannot share one sweep (the eps \
                        axes differ); sweep pgd-l2 on its own"
                    .into(),
            ));
        }
        Ok(self
            .names
            .iter()
            .flat_map(|n| sweep.iter().map(move |&e| self.spec(n, e)))
            .collect())
    }
}
