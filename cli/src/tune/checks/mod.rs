//! The judgements of `ringbus tune check`: for each setting that matters to this broker
//! (thread-per-core shards, O_DIRECT segment writes with fdatasync, io_uring), read its value
//! through `probe`, compare it with the recommendation, and make one [`Row`]: current value,
//! recommended value, status, the command that fixes it, how to make that persistent, why,
//! and the runtime writes `ringbus tune apply` may make for it.
//!
//! Rules: a row whose value cannot be read is `unknown` with the reason; a row that does not
//! apply to this machine (no NIC named, no cpufreq driver, one NUMA node) is `n/a` with the
//! reason; only `warn` counts as something off. Only rows that warn carry writes, and a write
//! is always a runtime file under /sys or /proc/sys that can be read back and written back
//! (never a boot parameter, a mount, a limit of another process or an ethtool change).
//! tuning.md explains every recommendation and quotes the measurements behind it.
//!
//! This file holds the row type and [`check`], which runs the areas in table order; each
//! area's rows are in a file of their own (`disk`, `filesystem`, `nic`, `sysctl`, `cpu`,
//! `memory`; `irq` is the IRQ affinity row that disks and NICs share).

mod cpu;
mod disk;
mod filesystem;
mod irq;
mod memory;
mod nic;
mod sysctl;

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::probe::{self, Ethtool, Roots};
use crate::cores;

/// How a setting compares with the recommendation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// As recommended.
    Ok,
    /// Off: the row says what to change.
    Warn,
    /// Does not apply to this machine; the row says why.
    NotApplicable,
    /// Could not be judged (a file could not be read, a tool is missing); the row says why.
    Unknown,
}

impl Status {
    /// The word printed in the table and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::NotApplicable => "n/a",
            Status::Unknown => "unknown",
        }
    }
}

/// One runtime change `ringbus tune apply` may make: write `value` to `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// The file under the roots (the real /sys or /proc, or a fixture's).
    pub path: PathBuf,
    /// What to write.
    pub value: String,
}

/// One checked setting.
#[derive(Clone, Debug)]
pub struct Row {
    /// `disk`, `fs`, `nic`, `net`, `kernel`, `cpu`, `memory` or `limits`.
    pub area: &'static str,
    /// The setting, with the device it is about: `vda scheduler`.
    pub setting: String,
    /// Its value now.
    pub current: String,
    /// The value recommended for this broker.
    pub recommended: String,
    /// How the two compare.
    pub status: Status,
    /// The command that fixes it now (empty when nothing needs fixing).
    pub fix: String,
    /// How to make the fix survive a reboot (empty when nothing needs fixing).
    pub persist: String,
    /// Why: what the setting does for this broker, or why the row could not be judged.
    pub why: String,
    /// The runtime writes `apply` makes for this row (only rows that warn have any).
    pub writes: Vec<Write>,
}

impl Row {
    fn new(area: &'static str, setting: impl Into<String>) -> Row {
        Row {
            area,
            setting: setting.into(),
            current: String::new(),
            recommended: String::new(),
            status: Status::Unknown,
            fix: String::new(),
            persist: String::new(),
            why: String::new(),
            writes: Vec::new(),
        }
    }

    fn current(mut self, value: impl Into<String>) -> Row {
        self.current = value.into();
        self
    }

    fn recommended(mut self, value: impl Into<String>) -> Row {
        self.recommended = value.into();
        self
    }

    fn judged(mut self, status: Status, why: impl Into<String>) -> Row {
        self.status = status;
        self.why = why.into();
        self
    }

    fn ok(self, why: impl Into<String>) -> Row {
        self.judged(Status::Ok, why)
    }

    fn warn(self, why: impl Into<String>) -> Row {
        self.judged(Status::Warn, why)
    }

    fn not_applicable(self, why: impl Into<String>) -> Row {
        self.judged(Status::NotApplicable, why)
    }

    fn unknown(self, why: impl Into<String>) -> Row {
        self.judged(Status::Unknown, why)
    }

    /// Ok or warn by `good`, with one reason for both.
    fn ok_if(self, good: bool, why: impl Into<String>) -> Row {
        self.judged(if good { Status::Ok } else { Status::Warn }, why)
    }

    /// The fix command and how to persist it; the writes are kept only if the row warns.
    fn fix(mut self, command: impl Into<String>, persist: impl Into<String>) -> Row {
        if self.status == Status::Warn {
            self.fix = command.into();
            self.persist = persist.into();
        }
        self
    }

    fn write(mut self, path: PathBuf, value: impl Into<String>) -> Row {
        if self.status == Status::Warn {
            self.writes.push(Write {
                path,
                value: value.into(),
            });
        }
        self
    }
}

/// What to check: the command line of `tune check` / `tune apply`.
#[derive(Clone, Debug)]
pub struct Request {
    /// The broker's data directory (it need not exist yet: its nearest ancestor is used).
    pub data_dir: PathBuf,
    /// The network interface clients reach the broker on, if named.
    pub iface: Option<String>,
    /// The broker's shard cores (`--cores` of `ringbus serve`); `None` is every online core.
    pub cores: Option<BTreeSet<usize>>,
}

/// Everything `tune check` found: facts for the header, and the rows.
#[derive(Clone, Debug)]
pub struct Report {
    /// Name and value, printed above the table and included in JSON.
    pub facts: Vec<(String, String)>,
    /// One per setting.
    pub rows: Vec<Row>,
}

impl Report {
    /// Rows with `status`.
    pub fn count(&self, status: Status) -> usize {
        self.rows.iter().filter(|row| row.status == status).count()
    }
}

/// Runs every check.
pub fn check(roots: &Roots, ethtool: &Ethtool, request: &Request) -> Report {
    let mut facts = Vec::new();
    let mut rows = Vec::new();
    let online = roots
        .read("/sys/devices/system/cpu/online")
        .and_then(|text| cores::parse_cpu_list(&text));
    let online_cpus = online.clone().unwrap_or_default();
    let (shards, cores_named) = match &request.cores {
        Some(cores) => (cores.clone(), true),
        None => (online_cpus.clone(), false),
    };
    facts.push((
        "shard cores".to_string(),
        if cores_named {
            format!("{} (--cores)", cores::format_cpu_list(&shards))
        } else {
            format!("{} (every online core)", cores::format_cpu_list(&shards))
        },
    ));
    let free: BTreeSet<usize> = online_cpus.difference(&shards).copied().collect();
    let cpus = Cpus { shards, free };

    match probe::storage_of(roots, &request.data_dir) {
        Ok(storage) => {
            facts.push((
                "data dir".to_string(),
                format!(
                    "{}{} (device {})",
                    storage.dir.display(),
                    if storage.missing {
                        format!(
                            ", the nearest existing parent of {}",
                            request.data_dir.display()
                        )
                    } else {
                        String::new()
                    },
                    storage.device_number
                ),
            ));
            facts.push(("devices".to_string(), storage.describe()));
            disk::rows(roots, &storage, &cpus, &mut rows);
            filesystem::rows(&storage, &mut rows);
        }
        Err(reason) => {
            facts.push(("data dir".to_string(), reason.clone()));
            rows.push(Row::new("disk", "data dir device").unknown(reason));
        }
    }

    facts.push((
        "interface".to_string(),
        request
            .iface
            .clone()
            .unwrap_or_else(|| "none named (--iface)".to_string()),
    ));
    match &request.iface {
        Some(iface) => nic::rows(roots, ethtool, iface, &cpus, &mut rows),
        None => {
            rows.push(Row::new("nic", "interface").not_applicable(
                "no --iface named: queue, IRQ, RSS, offload and ring checks skipped",
            ))
        }
    }
    sysctl::rows(roots, &mut rows);
    if let Err(reason) = &online {
        rows.push(Row::new("cpu", "online cores").unknown(reason.clone()));
    }
    cpu::rows(roots, &cpus, cores_named, &mut rows);
    memory::rows(roots, &cpus, &mut rows);
    Report { facts, rows }
}

/// Which cores run shards and which are left for the kernel (IRQs, housekeeping).
struct Cpus {
    shards: BTreeSet<usize>,
    free: BTreeSet<usize>,
}

/// A sysctl under /proc/sys, by its dotted name.
fn sysctl_path(name: &str) -> String {
    format!("/proc/sys/{}", name.replace('.', "/"))
}
