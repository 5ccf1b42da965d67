//! `ringbus tune apply`: makes the runtime writes of the rows that warn, one file at a time,
//! printing each as `set PATH: OLD -> NEW` with the command that undoes it, and reading every
//! value back to confirm the kernel took it.
//!
//! It writes only what `checks` put in a row's writes: files under /sys and /proc/sys that take
//! effect at once, read back, and can be written back (scheduler, nomerges, sysctls, THP mode,
//! IRQ affinity, cpufreq, idle states). Boot parameters, mounts, process limits and ethtool
//! changes are listed as not applied, with their commands. With `--dry-run` it reads and prints
//! but writes nothing. The root check (euid 0) is the caller's, in `mod.rs`.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use super::checks::{Report, Status};
use super::probe;
use crate::cores;

/// What `apply` did, for the exit code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Writes made (or, with `--dry-run`, that would be made).
    pub changed: usize,
    /// Writes that failed, or that did not read back as written.
    pub failed: usize,
}

/// The value a settings file holds now, as `apply` compares and prints it: the bracketed
/// choice of a choice file, whitespace collapsed otherwise (`tcp_rmem` separates with tabs).
fn value_of(path: &Path) -> Result<String, String> {
    let text = probe::read_trimmed(path)?;
    Ok(probe::selected(&text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" "))
}

/// Whether `a` and `b` are the same setting for the file at `path`: CPU masks (`*_cpus`,
/// `smp_affinity`) and CPU lists (`*_list`) compare as sets, everything else as words.
fn same_value(path: &Path, a: &str, b: &str) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sets = |parse: fn(&str) -> Result<BTreeSet<usize>, String>| match (parse(a), parse(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    };
    if name.ends_with("_cpus") || name == "smp_affinity" {
        sets(probe::parse_cpu_mask)
    } else if name.ends_with("_list") {
        sets(cores::parse_cpu_list)
    } else {
        a.split_whitespace().eq(b.split_whitespace())
    }
}

/// Applies (or with `dry_run`, prints) every write of every row that warns, and lists the rows
/// that warn but that `apply` does not fix. Prints to `out`.
pub fn apply(report: &Report, dry_run: bool, out: &mut dyn std::io::Write) -> Outcome {
    let mut outcome = Outcome::default();
    let mut not_applied = Vec::new();
    // A closed stdout (`| head`) must not turn into a panic; the exit code still counts.
    let line = |out: &mut dyn std::io::Write, text: String| {
        let _ = writeln!(out, "{text}");
    };
    for row in report.rows.iter().filter(|row| row.status == Status::Warn) {
        if row.writes.is_empty() {
            not_applied.push(row);
            continue;
        }
        for write in &row.writes {
            let path = write.path.display();
            let old = match value_of(&write.path) {
                Ok(old) => old,
                Err(reason) => {
                    line(out, format!("failed {path}: {reason}"));
                    outcome.failed += 1;
                    continue;
                }
            };
            if same_value(&write.path, &old, &write.value) {
                line(out, format!("unchanged {path}: already {old}"));
                continue;
            }
            let undo = format!("  undo: echo '{old}' > {path}");
            if dry_run {
                line(
                    out,
                    format!(
                        "would set {path}: {old} -> {} ({})",
                        write.value, row.setting
                    ),
                );
                line(out, undo);
                outcome.changed += 1;
                continue;
            }
            if let Err(error) = fs::write(&write.path, &write.value) {
                line(
                    out,
                    format!("failed {path}: cannot write {:?}: {error}", write.value),
                );
                outcome.failed += 1;
                continue;
            }
            match value_of(&write.path) {
                Ok(now) if same_value(&write.path, &now, &write.value) => {
                    line(out, format!("set {path}: {old} -> {now} ({})", row.setting));
                    line(out, undo);
                    outcome.changed += 1;
                }
                Ok(now) => {
                    line(
                        out,
                        format!("failed {path}: wrote {:?}, reads back {now:?}", write.value),
                    );
                    outcome.failed += 1;
                }
                Err(reason) => {
                    line(out, format!("failed {path}: written, but {reason}"));
                    outcome.failed += 1;
                }
            }
        }
    }
    if outcome.changed == 0 && outcome.failed == 0 {
        line(out, "nothing to change at runtime".to_string());
    }
    if !not_applied.is_empty() {
        line(
            out,
            "not applied (boot parameters, mounts, process limits, ethtool or hardware; do these by hand):"
                .to_string(),
        );
        for row in not_applied {
            line(out, format!("  {}: {}", row.setting, row.fix));
        }
    }
    if outcome.changed > 0 && !dry_run {
        line(
            out,
            "these changes last until reboot; tuning.md says how to make each persistent"
                .to_string(),
        );
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_compare_by_kind_of_file() {
        let mask = Path::new("/sys/class/net/eth0/queues/rx-0/rps_cpus");
        assert!(same_value(mask, "00000000,00000003", "3"));
        assert!(!same_value(mask, "1", "3"));
        let list = Path::new("/proc/irq/36/smp_affinity_list");
        assert!(same_value(list, "0-1", "0,1"));
        let sysctl = Path::new("/proc/sys/net/ipv4/tcp_wmem");
        assert!(same_value(
            sysctl,
            "4096\t16384\t16777216",
            "4096 16384 16777216"
        ));
        assert!(!same_value(
            sysctl,
            "4096 16384 4194304",
            "4096 16384 16777216"
        ));
    }
}
