//! An evaluation's results as text: one JSON object ([`report_json`]), the table of
//! attacks ([`report_table`]), accuracy against eps ([`sweep_table`]), and the per-example
//! worst case over the attacks of each threat model ([`worst_case_groups`]).

use rcc_attack::{AttackResult, AttackSpec, Norm, Report};
use std::fmt::Write as _;

/// Shortest round-trip form (JSON): 0.3, 0.01, 0.03137255 (8/255).
pub fn fmt_num(v: f32) -> String {
    format!("{v}")
}

/// At most 6 decimals (tables, labels): 0.3, 0.001667, 0.031373.
pub fn fmt_short(v: f32) -> String {
    format!("{}", (v as f64 * 1e6).round() / 1e6)
}

/// One JSON object: the run, the clean accuracy and every attack's result.
pub fn report_json(header: &[(&str, String)], report: &Report) -> String {
    let mut s = String::from("{");
    for (k, v) in header {
        let _ = write!(s, "\"{k}\":{v},");
    }
    let _ = write!(
        s,
        "\"n\":{},\"clean_acc\":{:.6},\"clean_loss\":{:.6},\"attacks\":[",
        report.n, report.clean_acc, report.clean_loss
    );
    for (i, a) in report.attacks.iter().enumerate() {
        let spec = &a.spec;
        let _ = write!(
            s,
            "{}{{\"name\":\"{}\",\"settings\":{},\"norm\":\"{}\",\"eps\":{},\"steps\":{},\"step_size\":{},\"restarts\":{},\"random_start\":{},\"transferred\":{},\"acc\":{:.6},\"correct\":{},\"max_dist\":{:.6},\"seconds\":{:.3}}}",
            if i == 0 { "" } else { "," },
            spec.name(),
            json_str(&spec.describe()),
            spec.norm().name(),
            fmt_num(spec.eps()),
            spec.steps(),
            spec.step_size().map_or("null".into(), fmt_num),
            spec.restarts(),
            spec.random_start(),
            a.transferred,
            a.acc,
            a.correct.iter().filter(|&&c| c).count(),
            a.max_dist,
            a.seconds
        );
    }
    s.push_str("],\"worst_case\":[");
    for (i, (norm, eps, idx)) in worst_case_groups(report).iter().enumerate() {
        let _ = write!(
            s,
            "{}{{\"norm\":\"{}\",\"eps\":{},\"attacks\":{},\"acc\":{:.6}}}",
            if i == 0 { "" } else { "," },
            norm.name(),
            fmt_num(*eps),
            idx.len(),
            report.worst_case(idx).unwrap_or(0.0)
        );
    }
    s.push_str("]}");
    s
}

/// The attacks of a report grouped by threat model (norm and eps), in order of first
/// appearance; only groups of two or more, the ones a worst case adds to.
pub fn worst_case_groups(report: &Report) -> Vec<(Norm, f32, Vec<usize>)> {
    let mut groups: Vec<(Norm, f32, Vec<usize>)> = vec![];
    for (i, a) in report.attacks.iter().enumerate() {
        let key = (a.spec.norm(), a.spec.eps());
        match groups.iter_mut().find(|g| (g.0, g.1) == key) {
            Some(g) => g.2.push(i),
            None => groups.push((key.0, key.1, vec![i])),
        }
    }
    groups.retain(|g| g.2.len() > 1 && g.1 > 0.0);
    groups
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The table of clean and per-attack accuracy with every setting.
pub fn report_table(report: &Report, clean_secs: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<10} {:<5} {:>10} {:>6} {:>10} {:>8} {:<6} {:>9} {:>9} {:>8}",
        "attack",
        "norm",
        "eps",
        "steps",
        "step",
        "restarts",
        "start",
        "accuracy",
        "max dist",
        "time"
    );
    let _ = writeln!(
        s,
        "{:<10} {:<5} {:>10} {:>6} {:>10} {:>8} {:<6} {:>8.2}% {:>9} {:>6.1} s",
        "clean",
        "-",
        "-",
        "-",
        "-",
        "-",
        "-",
        100.0 * report.clean_acc,
        "-",
        clean_secs
    );
    for a in &report.attacks {
        let _ = writeln!(s, "{}", table_row(a));
    }
    for (norm, eps, idx) in worst_case_groups(report) {
        let _ = writeln!(
            s,
            "{:<10} {:<5} {:>10} {:>6} {:>10} {:>8} {:<6} {:>8.2}%",
            "worst",
            norm.name(),
            fmt_short(eps),
            "-",
            "-",
            "-",
            format!("of {}", idx.len()),
            100.0 * report.worst_case(&idx).unwrap_or(0.0)
        );
    }
    s
}

/// The name of an attack in tables: `-tr` marks points crafted on another model.
fn attack_name(a: &AttackResult) -> String {
    format!(
        "{}{}",
        a.spec.name(),
        if a.transferred { "-tr" } else { "" }
    )
}

fn table_row(a: &AttackResult) -> String {
    let spec = &a.spec;
    let step = match (spec, spec.step_size()) {
        (_, None) => "-".to_string(),
        (AttackSpec::Apgd { .. } | AttackSpec::ApgdT { .. }, Some(s)) => {
            format!("{}*", fmt_short(s))
        }
        (_, Some(s)) => fmt_short(s),
    };
    format!(
        "{:<10} {:<5} {:>10} {:>6} {:>10} {:>8} {:<6} {:>8.2}% {:>9.4} {:>6.1} s",
        attack_name(a),
        spec.norm().name(),
        fmt_short(spec.eps()),
        spec.steps(),
        step,
        spec.restarts(),
        if spec.random_start() {
            "random"
        } else {
            "clean"
        },
        100.0 * a.acc,
        a.max_dist,
        a.seconds
    )
}

/// Accuracy (%) against eps, one column per attack (the report holds each attack at
/// every eps of `sweep` in turn), and with two or more attacks a last column with their
/// worst case per example.
pub fn sweep_table(report: &Report, sweep: &[f32], norm: Norm) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "accuracy (%) against eps ({}), {} examples, clean {:.2}%",
        norm.name(),
        report.n,
        100.0 * report.clean_acc
    );
    let columns = report.attacks.len() / sweep.len().max(1);
    let _ = write!(s, "{:>10}", "eps");
    for i in 0..columns {
        let _ = write!(s, " {:>10}", attack_name(&report.attacks[i * sweep.len()]));
    }
    if columns > 1 {
        let _ = write!(s, " {:>10}", "worst");
    }
    s.push('\n');
    for (j, e) in sweep.iter().enumerate() {
        let _ = write!(s, "{:>10}", fmt_short(*e));
        let idx: Vec<usize> = (0..columns).map(|i| i * sweep.len() + j).collect();
        for &k in &idx {
            let _ = write!(s, " {:>10.2}", 100.0 * report.attacks[k].acc);
        }
        if columns > 1 {
            let worst = report.worst_case(&idx).unwrap_or(0.0);
            let _ = write!(s, " {:>10.2}", 100.0 * worst);
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{parse_attacks, Protocol, Settings};
    use rcc_data::DatasetKind;

    fn settings(names: &str) -> Settings {
        let protocol = Protocol::for_dataset(DatasetKind::Mnist);
        Settings {
            protocol,
            names: parse_attacks(names).unwrap(),
            eps: protocol.eps,
            eps_l2: protocol.eps_l2,
            steps: None,
            step_size: None,
            step_size_l2: None,
            restarts: 1,
            queries: None,
        }
    }

    fn fake_report() -> Report {
        let specs = settings("pgd,apgd-ce")
            .sweep_specs(&[0.0, 0.1, 0.3])
            .unwrap();
        let accs = [0.99, 0.7, 0.2, 0.99, 0.68, 0.15];
        Report {
            n: 100,
            clean_acc: 0.99,
            clean_loss: 0.05,
            clean_correct: vec![true; 100],
            attacks: specs
                .iter()
                .zip(accs)
                .map(|(s, a)| AttackResult {
                    spec: *s,
                    acc: a,
                    // PGD keeps the first examples, APGD-CE the last: their worst case
                    // is the overlap (38% at eps 0.1, none at 0.3).
                    correct: (0..100)
                        .map(|i| match s.name() {
                            "pgd" => (i as f64) < a * 100.0,
                            _ => (i as f64) >= 100.0 - a * 100.0,
                        })
                        .collect(),
                    max_dist: s.eps() as f64,
                    transferred: false,
                    seconds: 1.5,
                })
                .collect(),
        }
    }

    #[test]
    fn json_has_the_required_fields() {
        let r = fake_report();
        let j = report_json(&[("model", json_str("a \"b\".safetensors"))], &r);
        assert!(j.starts_with(
            "{\"model\":\"a \\\"b\\\".safetensors\",\"n\":100,\"clean_acc\":0.990000"
        ));
        for field in [
            "\"name\":\"pgd\"",
            "\"eps\":0.1",
            "\"steps\":40",
            "\"step_size\":0.01",
            "\"restarts\":1",
            "\"acc\":0.700000",
            "\"name\":\"apgd-ce\"",
        ] {
            assert!(j.contains(field), "{field} in {j}");
        }
        assert_eq!(j.matches("\"name\"").count(), 6);
        assert!(j.contains("\"transferred\":false"), "{j}");
        assert!(
            j.contains(
                "\"worst_case\":[{\"norm\":\"linf\",\"eps\":0.1,\"attacks\":2,\"acc\":0.380000},{\"norm\":\"linf\",\"eps\":0.3,\"attacks\":2,\"acc\":0.000000}]"
            ),
            "{j}"
        );
        assert_eq!(j.matches('{').count(), j.matches('}').count());
    }

    #[test]
    fn tables() {
        let r = fake_report();
        let t = report_table(&r, 0.2);
        assert!(t.contains("clean") && t.contains("99.00%") && t.contains("apgd-ce"));
        assert!(t.contains("worst") && t.contains("38.00%"), "{t}");
        let sw = sweep_table(&r, &[0.0, 0.1, 0.3], Norm::Linf);
        let row = |k: usize| -> Vec<String> {
            sw.lines()
                .nth(k)
                .unwrap()
                .split_whitespace()
                .map(String::from)
                .collect()
        };
        assert_eq!(row(1), ["eps", "pgd", "apgd-ce", "worst"], "{sw}");
        assert_eq!(row(3), ["0.1", "70.00", "68.00", "38.00"], "{sw}");
        assert_eq!(row(4), ["0.3", "20.00", "15.00", "0.00"], "{sw}");
        // A transferred attack is marked in both tables.
        let mut tr = r.clone();
        tr.attacks.truncate(3);
        tr.attacks
            .extend(r.attacks[..3].iter().cloned().map(|mut a| {
                a.transferred = true;
                a
            }));
        assert!(report_table(&tr, 0.2).contains("pgd-tr"));
        assert!(sweep_table(&tr, &[0.0, 0.1, 0.3], Norm::Linf).contains("pgd-tr"));
    }
}
