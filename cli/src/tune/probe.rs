//! Reading a machine for `ringbus tune`: files under a `/sys` and a `/proc` root (the real
//! ones, or a fixture tree laid out by a test), the block devices under a data directory, the
//! data directory's mount, IRQ affinities, and `ethtool`'s answers, plus the parsers for the
//! kernel's text formats (CPU lists and masks, bracketed choices, mountinfo, `/proc/self/limits`,
//! softnet_stat, ethtool's output).
//!
//! Nothing here judges a value (`checks/` does) or writes one (`apply.rs` does). A read that
//! fails comes back as a reason in words (`cannot read PATH: ERROR`) for the row that needed
//! it; nothing here panics on what it reads. All of it runs on the one thread of the
//! `ringbus tune` process.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cores;

/// Where the kernel's trees are: `/sys` and `/proc`, or a fixture's stand-ins for them.
#[derive(Clone, Debug)]
pub struct Roots {
    /// Stands for `/sys`.
    pub sys: PathBuf,
    /// Stands for `/proc`.
    pub proc: PathBuf,
}

impl Roots {
    /// The file that stands for `logical` (an absolute kernel path such as
    /// `/sys/block/vda/queue/scheduler`) under these roots. Paths outside /sys and /proc are
    /// returned as they are.
    pub fn path(&self, logical: &str) -> PathBuf {
        if let Some(rest) = logical.strip_prefix("/sys/") {
            self.sys.join(rest)
        } else if let Some(rest) = logical.strip_prefix("/proc/") {
            self.proc.join(rest)
        } else {
            PathBuf::from(logical)
        }
    }

    /// The trimmed text of `logical` under these roots, or why it could not be read.
    pub fn read(&self, logical: &str) -> Result<String, String> {
        read_trimmed(&self.path(logical))
    }

    /// `logical` parsed as an integer, or why not.
    pub fn read_u64(&self, logical: &str) -> Result<u64, String> {
        let text = self.read(logical)?;
        text.parse()
            .map_err(|_| format!("{logical} holds {text:?}, not a number"))
    }

    /// Whether `logical` exists under these roots.
    pub fn exists(&self, logical: &str) -> bool {
        self.path(logical).exists()
    }

    /// The names in the directory `logical`, sorted; empty when it does not exist.
    pub fn list(&self, logical: &str) -> Vec<String> {
        list_dir(&self.path(logical))
    }
}

/// The trimmed text of `path`, or `cannot read PATH: ERROR`.
pub fn read_trimmed(path: &Path) -> Result<String, String> {
    fs::read_to_string(path)
        .map(|text| text.trim().to_string())
        .map_err(|error| format!("cannot read {}: {error}", path.display()))
}

/// The names in `dir`, sorted; empty when it cannot be read.
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The selected choice of a sysfs file that lists every choice with the current one in
/// brackets: `none [mq-deadline] kyber` -> `mq-deadline`. Text without brackets is returned
/// whole (a fixture, or a file after a plain write).
pub fn selected(text: &str) -> &str {
    match (text.find('['), text.find(']')) {
        (Some(open), Some(close)) if open < close => &text[open + 1..close],
        _ => text.trim(),
    }
}

/// The choices a bracketed sysfs file offers: `none [mq-deadline] kyber` -> none, mq-deadline,
/// kyber.
pub fn choices(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|word| word.trim_matches(|c| c == '[' || c == ']').to_string())
        .collect()
}

/// A kernel CPU mask in hex, as in `rps_cpus` or `smp_affinity`: comma-separated 32-bit
/// groups, most significant first (`00000000,00000003` -> {0, 1}).
pub fn parse_cpu_mask(text: &str) -> Result<BTreeSet<usize>, String> {
    let digits: String = text.trim().chars().filter(|c| *c != ',').collect();
    let mut cpus = BTreeSet::new();
    for (index, digit) in digits.chars().rev().enumerate() {
        let value = digit
            .to_digit(16)
            .ok_or_else(|| format!("{text:?} is not a CPU mask"))?;
        for bit in 0..4 {
            if value & (1 << bit) != 0 {
                cpus.insert(index * 4 + bit);
            }
        }
    }
    Ok(cpus)
}

/// `cpus` as a hex CPU mask the kernel accepts: {0, 1} -> `3`, {32} -> `1,00000000`.
pub fn format_cpu_mask(cpus: &BTreeSet<usize>) -> String {
    let groups = cpus.iter().next_back().map_or(1, |last| last / 32 + 1);
    let mut words = vec![0u32; groups];
    for cpu in cpus {
        words[cpu / 32] |= 1 << (cpu % 32);
    }
    let mut parts: Vec<String> = Vec::with_capacity(groups);
    for (index, word) in words.iter().enumerate().rev() {
        if index == groups - 1 {
            parts.push(format!("{word:x}"));
        } else {
            parts.push(format!("{word:08x}"));
        }
    }
    parts.join(",")
}

/// Major and minor numbers of a `st_dev`, in glibc's encoding (`gnu_dev_major`/`minor`):
/// the major is bits 8..20 (low 12 bits) and 32..64 (the rest), the minor bits 0..8 (low 8
/// bits) and 20..32 (the rest). Worked example: 0xfe00 -> major 0xfe = 254, minor 0 (vda);
/// 0x10_082c -> major 0x008 = 8, minor 0x2c | 0x1 << 8 = 300.
pub fn split_device_number(dev: u64) -> (u32, u32) {
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff);
    (major as u32, minor as u32)
}

/// One line of `/proc/self/mountinfo`: what is mounted where, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// `MAJ:MIN` of the filesystem's device (anonymous filesystems have major 0).
    pub device_number: String,
    /// Where it is mounted.
    pub mount_point: String,
    /// Filesystem type: `xfs`, `ext4`, `tmpfs`, ...
    pub fstype: String,
    /// What was mounted: `/dev/nvme0n1p1`, `tmpfs`, ...
    pub source: String,
    /// Per-mount options (`rw,noatime`).
    pub options: String,
    /// Per-superblock options (`rw,discard,data=ordered`).
    pub super_options: String,
}

impl Mount {
    /// Whether this mount has `option` (as a whole word) in its per-mount or superblock
    /// options.
    pub fn has_option(&self, option: &str) -> bool {
        self.options
            .split(',')
            .chain(self.super_options.split(','))
            .any(|word| word == option)
    }
}

/// Undoes mountinfo's octal escapes (`\040` is a space).
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal = bytes.get(index + 1..index + 4);
        if bytes[index] == b'\\'
            && let Some(octal) = octal
            && octal.iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let value = octal
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(value as u8);
            index += 4;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The lines of a mountinfo file that parse (`ID PARENT MAJ:MIN ROOT POINT OPTIONS
/// [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS`); others are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split_whitespace().collect();
            let right: Vec<&str> = right.split_whitespace().collect();
            if left.len() < 6 || right.len() < 2 {
                return None;
            }
            Some(Mount {
                device_number: left[2].to_string(),
                mount_point: unescape_mount_field(left[4]),
                options: left[5].to_string(),
                fstype: right[0].to_string(),
                source: unescape_mount_field(right[1]),
                super_options: right.get(2).copied().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// The mount that holds `path` (an absolute, canonical path): the one with the longest mount
/// point that is a whole-component prefix of it; the last such line when several mount on the
/// same point (the later one hides the earlier).
pub fn mount_of<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    let mut best: Option<&Mount> = None;
    for mount in mounts {
        if !path.starts_with(&mount.mount_point) {
            continue;
        }
        let depth = Path::new(&mount.mount_point).components().count();
        let best_depth = best.map(|m| Path::new(&m.mount_point).components().count());
        if best_depth.is_none_or(|best_depth| depth >= best_depth) {
            best = Some(mount);
        }
    }
    best
}

/// What a block device node in the stack under a data directory is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A partition of a disk.
    Partition,
    /// A device-mapper device (LVM, dm-crypt, ...).
    Mapper,
    /// An md software RAID.
    Raid,
    /// A whole disk: the bottom of the stack, where the queue settings live.
    Disk,
}

/// One block device in the stack from the data directory's filesystem down to its disks.
#[derive(Clone, Debug)]
pub struct Node {
    /// Kernel name: `nvme0n1p1`, `dm-0`, `md0`, `vda`.
    pub name: String,
    /// Its directory under the sys root, canonical (symlinks resolved).
    pub dir: PathBuf,
    /// What it is.
    pub kind: NodeKind,
}

/// The block devices under a data directory.
#[derive(Clone, Debug)]
pub struct Storage {
    /// The directory examined: the data directory, or its nearest existing ancestor.
    pub dir: PathBuf,
    /// Set when the data directory does not exist yet and an ancestor was examined instead.
    pub missing: bool,
    /// `MAJ:MIN` from stat(2) of `dir`.
    pub device_number: String,
    /// The mount holding `dir`, or why it was not found.
    pub mount: Result<Mount, String>,
    /// Every node from the filesystem's device down, or why the stack could not be followed.
    pub nodes: Result<Vec<Node>, String>,
}

impl Storage {
    /// The whole disks at the bottom of the stack (no duplicates), each with the partition
    /// that leads to it, if any.
    pub fn disks(&self) -> Vec<(Node, Option<Node>)> {
        let Ok(nodes) = &self.nodes else {
            return Vec::new();
        };
        let mut disks: Vec<(Node, Option<Node>)> = Vec::new();
        for (index, node) in nodes.iter().enumerate() {
            if node.kind != NodeKind::Disk || disks.iter().any(|(d, _)| d.name == node.name) {
                continue;
            }
            let partition = index
                .checked_sub(1)
                .map(|before| &nodes[before])
                .filter(|before| {
                    before.kind == NodeKind::Partition && before.dir.parent() == Some(&node.dir)
                })
                .cloned();
            disks.push((node.clone(), partition));
        }
        disks
    }

    /// The stack in words: `nvme0n1p1 (partition) -> nvme0n1 (disk)`.
    pub fn describe(&self) -> String {
        match &self.nodes {
            Err(reason) => reason.clone(),
            Ok(nodes) => nodes
                .iter()
                .map(|node| {
                    let kind = match node.kind {
                        NodeKind::Partition => "partition",
                        NodeKind::Mapper => "device-mapper",
                        NodeKind::Raid => "md raid",
                        NodeKind::Disk => "disk",
                    };
                    format!("{} ({kind})", node.name)
                })
                .collect::<Vec<_>>()
                .join(" -> "),
        }
    }
}

/// Finds the block devices under `data_dir`: stat(2) gives its device number, the sys root's
/// `dev/block/MAJ:MIN` link leads to the device's directory, and from there a partition leads
/// to its disk and a device-mapper or md device to its `slaves`. When the device number has no
/// link (btrfs and overlay report anonymous numbers), the mount's source `/dev/NAME` is looked
/// up in `class/block` instead.
pub fn storage_of(roots: &Roots, data_dir: &Path) -> Result<Storage, String> {
    let mut dir = data_dir.to_path_buf();
    let mut missing = false;
    while !dir.exists() {
        missing = true;
        dir = match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
    }
    let dir = fs::canonicalize(&dir)
        .map_err(|error| format!("cannot resolve {}: {error}", dir.display()))?;
    let metadata =
        fs::metadata(&dir).map_err(|error| format!("cannot stat {}: {error}", dir.display()))?;
    let (major, minor) = split_device_number(metadata.dev());
    let device_number = format!("{major}:{minor}");
    let mountinfo = roots.path("/proc/self/mountinfo");
    let mount = read_trimmed(&mountinfo).and_then(|text| {
        mount_of(&parse_mountinfo(&text), &dir)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "no mount in {} holds {}",
                    mountinfo.display(),
                    dir.display()
                )
            })
    });
    let start = fs::canonicalize(roots.sys.join("dev/block").join(&device_number))
        .ok()
        .or_else(|| {
            let source = mount
                .as_ref()
                .ok()?
                .source
                .strip_prefix("/dev/")?
                .to_string();
            fs::canonicalize(roots.sys.join("class/block").join(source)).ok()
        });
    let nodes = match start {
        Some(start) => {
            let mut nodes = Vec::new();
            walk_stack(&start, 0, &mut nodes).map(|()| nodes)
        }
        None => Err(format!(
            "no block device for {device_number} ({}): {}",
            match &mount {
                Ok(mount) => format!("{} from {}", mount.fstype, mount.source),
                Err(_) => "mount unknown".to_string(),
            },
            "a filesystem without one disk under it (tmpfs, overlay, a network filesystem)"
        )),
    };
    Ok(Storage {
        dir,
        missing,
        device_number,
        mount,
        nodes,
    })
}

/// Device stacks deeper than this are refused (a loop in a fixture, or a pathological stack).
const STACK_DEPTH_MAX: usize = 8;

fn walk_stack(dir: &Path, depth: usize, nodes: &mut Vec<Node>) -> Result<(), String> {
    if depth >= STACK_DEPTH_MAX {
        return Err(format!(
            "the device stack at {} is deeper than {STACK_DEPTH_MAX} levels",
            dir.display()
        ));
    }
    let name = dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or_else(|| format!("{} names no device", dir.display()))?;
    if dir.join("partition").exists() {
        nodes.push(Node {
            name,
            dir: dir.to_path_buf(),
            kind: NodeKind::Partition,
        });
        let parent = dir
            .parent()
            .ok_or_else(|| format!("partition {} has no parent disk", dir.display()))?;
        return walk_stack(parent, depth + 1, nodes);
    }
    let slaves = list_dir(&dir.join("slaves"));
    if slaves.is_empty() {
        nodes.push(Node {
            name,
            dir: dir.to_path_buf(),
            kind: NodeKind::Disk,
        });
        return Ok(());
    }
    let kind = if name.starts_with("md") {
        NodeKind::Raid
    } else {
        NodeKind::Mapper
    };
    nodes.push(Node {
        name,
        dir: dir.to_path_buf(),
        kind,
    });
    for slave in slaves {
        let link = dir.join("slaves").join(&slave);
        let target = fs::canonicalize(&link)
            .map_err(|error| format!("cannot resolve {}: {error}", link.display()))?;
        walk_stack(&target, depth + 1, nodes)?;
    }
    Ok(())
}

/// The IRQs of the device whose sysfs directory is `dir` (canonical): the `msi_irqs` of the
/// nearest ancestor that has them (the PCI function), else its legacy `irq`. Stops at the sys
/// root; empty when nothing was found (a virtual device).
pub fn irqs_of(roots: &Roots, dir: &Path) -> Vec<u32> {
    let top = fs::canonicalize(&roots.sys).unwrap_or_else(|_| roots.sys.clone());
    let mut at = Some(dir);
    while let Some(current) = at {
        if !current.starts_with(&top) || current == top {
            break;
        }
        let mut irqs: Vec<u32> = list_dir(&current.join("msi_irqs"))
            .iter()
            .filter_map(|name| name.parse().ok())
            .collect();
        if irqs.is_empty()
            && let Ok(irq) = read_trimmed(&current.join("irq"))
            && let Ok(irq) = irq.parse::<u32>()
            && irq > 0
        {
            irqs.push(irq);
        }
        if !irqs.is_empty() {
            irqs.sort_unstable();
            return irqs;
        }
        at = current.parent();
    }
    Vec::new()
}

/// The CPUs IRQ `irq` is delivered to: `effective_affinity_list` (where it lands), else
/// `smp_affinity_list` (where it may land).
pub fn irq_cpus(roots: &Roots, irq: u32) -> Result<BTreeSet<usize>, String> {
    roots
        .read(&format!("/proc/irq/{irq}/effective_affinity_list"))
        .or_else(|_| roots.read(&format!("/proc/irq/{irq}/smp_affinity_list")))
        .and_then(|text| cores::parse_cpu_list(&text))
}

/// Whether a process named `name` runs (by `/proc/PID/comm`).
pub fn process_running(roots: &Roots, name: &str) -> bool {
    roots
        .list("/proc")
        .iter()
        .filter(|entry| entry.bytes().all(|b| b.is_ascii_digit()))
        .any(|pid| {
            roots
                .read(&format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm == name)
        })
}

/// A soft and a hard limit from `/proc/self/limits`; `None` is unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// The limit enforced.
    pub soft: Option<u64>,
    /// How far an unprivileged process may raise it.
    pub hard: Option<u64>,
}

/// The limit named `name` (`Max open files`, `Max locked memory`) in the text of
/// `/proc/self/limits`.
pub fn parse_limit(text: &str, name: &str) -> Option<Limit> {
    let line = text.lines().find(|line| line.starts_with(name))?;
    let mut words = line[name.len()..].split_whitespace();
    let value = |word: Option<&str>| -> Option<Option<u64>> {
        match word? {
            "unlimited" => Some(None),
            number => number.parse().ok().map(Some),
        }
    };
    Some(Limit {
        soft: value(words.next())?,
        hard: value(words.next())?,
    })
}

/// Whether the effective capability set (`CapEff:` in `/proc/self/status`) holds capability
/// number `cap` (CAP_IPC_LOCK is 14).
pub fn has_capability(status: &str, cap: u32) -> Option<bool> {
    let line = status.lines().find(|line| line.starts_with("CapEff:"))?;
    let mask = u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()?;
    Some(mask & (1u64 << cap) != 0)
}

/// A `kB` field of `/proc/meminfo` (`SwapTotal`), in KiB.
pub fn meminfo_kib(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Sums over CPUs of `/proc/net/softnet_stat`: packets processed (column 1), packets dropped
/// because the backlog queue was full (column 2) and NAPI rounds cut short by the budget
/// (`time_squeeze`, column 3).
pub fn softnet_totals(text: &str) -> Result<(u64, u64, u64), String> {
    let mut processed = 0u64;
    let mut dropped = 0u64;
    let mut squeezed = 0u64;
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 3 {
            return Err(format!(
                "softnet_stat line {line:?} has fewer than 3 columns"
            ));
        }
        let hex = |field: &str| {
            u64::from_str_radix(field, 16)
                .map_err(|_| format!("softnet_stat field {field:?} is not hex"))
        };
        processed = processed.saturating_add(hex(fields[0])?);
        dropped = dropped.saturating_add(hex(fields[1])?);
        squeezed = squeezed.saturating_add(hex(fields[2])?);
    }
    Ok((processed, dropped, squeezed))
}

/// How `ethtool` is run: the program (`ethtool`, or a test's stand-in script).
#[derive(Clone, Debug)]
pub struct Ethtool {
    /// Program name or path.
    pub program: PathBuf,
}

/// Why `ethtool` gave no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EthtoolError {
    /// The program is not installed (or not at the path given).
    Missing,
    /// It ran and failed (the driver does not support the query, ...): its message.
    Failed(String),
}

impl EthtoolError {
    /// In words, for a row's reason.
    pub fn describe(&self, query: &str) -> String {
        match self {
            EthtoolError::Missing => "ethtool is not installed (apt-get install ethtool)".into(),
            EthtoolError::Failed(message) => format!("`ethtool {query}` failed: {message}"),
        }
    }
}

impl Ethtool {
    /// The standard output of `ethtool FLAG IFACE`.
    pub fn query(&self, flag: &str, iface: &str) -> Result<String, EthtoolError> {
        let output = match Command::new(&self.program).arg(flag).arg(iface).output() {
            Ok(output) => output,
            Err(error) if error.kind() == ErrorKind::NotFound => return Err(EthtoolError::Missing),
            Err(error) => return Err(EthtoolError::Failed(error.to_string())),
        };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            Ok(stdout)
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let message = stderr.trim().lines().chain(stdout.trim().lines()).last();
            Err(EthtoolError::Failed(
                message.unwrap_or("no message").trim().to_string(),
            ))
        }
    }
}

/// The value of `key:` within the section of `ethtool` output that starts with a line
/// beginning with `section`, as a number (`n/a` and missing keys are `None`).
fn ethtool_section_number(text: &str, section: &str, key: &str) -> Option<u64> {
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with(section) {
            inside = true;
            continue;
        }
        if inside {
            if !line.starts_with(char::is_whitespace) && line.ends_with(':') {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.trim() == key
            {
                return value.trim().parse().ok();
            }
        }
    }
    None
}

/// Queue counts from `ethtool -l`: (maximum, current), counting combined channels, or RX
/// channels where the driver has no combined ones.
pub fn parse_channels(text: &str) -> Option<(u64, u64)> {
    let pick = |section: &str| {
        ethtool_section_number(text, section, "Combined")
            .filter(|count| *count > 0)
            .or_else(|| ethtool_section_number(text, section, "RX"))
    };
    Some((
        pick("Pre-set maximums")?,
        pick("Current hardware settings")?,
    ))
}

/// RX ring sizes from `ethtool -g`: (maximum, current).
pub fn parse_rings(text: &str) -> Option<(u64, u64)> {
    Some((
        ethtool_section_number(text, "Pre-set maximums", "RX")?,
        ethtool_section_number(text, "Current hardware settings", "RX")?,
    ))
}

/// Interrupt coalescing from `ethtool -c`: adaptive RX on or off (if reported) and
/// `rx-usecs` (if reported).
pub fn parse_coalesce(text: &str) -> (Option<bool>, Option<u64>) {
    let mut adaptive = None;
    let mut rx_usecs = None;
    for line in text.lines() {
        if let Some(rest) = line.trim().strip_prefix("Adaptive RX:") {
            adaptive = match rest.split_whitespace().next() {
                Some("on") => Some(true),
                Some("off") => Some(false),
                _ => None,
            };
        } else if let Some(rest) = line.trim().strip_prefix("rx-usecs:") {
            rx_usecs = rest.trim().parse().ok();
        }
    }
    (adaptive, rx_usecs)
}

/// Offload features from `ethtool -k`: name -> (on, fixed).
pub fn parse_features(text: &str) -> BTreeMap<String, (bool, bool)> {
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.trim().split_once(':')?;
            let mut words = value.split_whitespace();
            let on = match words.next()? {
                "on" => true,
                "off" => false,
                _ => return None,
            };
            let fixed = words.next() == Some("[fixed]");
            Some((name.to_string(), (on, fixed)))
        })
        .collect()
}

/// The RX queues the RSS indirection table of `ethtool -x` points to; `None` when the output
/// holds no table (the driver does not support RSS).
pub fn parse_indirection(text: &str) -> Option<BTreeSet<u64>> {
    let mut queues = BTreeSet::new();
    let mut rows = 0;
    for line in text.lines() {
        let Some((index, entries)) = line.trim().split_once(':') else {
            continue;
        };
        if index.trim().parse::<u64>().is_err() {
            continue;
        }
        let parsed: Option<Vec<u64>> = entries
            .split_whitespace()
            .map(|entry| entry.parse().ok())
            .collect();
        if let Some(parsed) = parsed
            && !parsed.is_empty()
        {
            rows += 1;
            queues.extend(parsed);
        }
    }
    (rows > 0).then_some(queues)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selected_picks_the_bracketed_choice() {
        assert_eq!(selected("none [mq-deadline] kyber bfq"), "mq-deadline");
        assert_eq!(selected("[none] mq-deadline"), "none");
        assert_eq!(selected("none\n"), "none");
        assert_eq!(
            choices("always [madvise] never"),
            vec!["always", "madvise", "never"]
        );
    }

    #[test]
    fn cpu_masks_round_trip() {
        assert_eq!(
            parse_cpu_mask("00000000,00000003").unwrap(),
            BTreeSet::from([0, 1])
        );
        assert_eq!(parse_cpu_mask("0").unwrap(), BTreeSet::new());
        assert_eq!(format_cpu_mask(&BTreeSet::from([0, 1])), "3");
        assert_eq!(format_cpu_mask(&BTreeSet::from([32])), "1,00000000");
        assert_eq!(format_cpu_mask(&BTreeSet::new()), "0");
        let wide = BTreeSet::from([1, 40, 70]);
        assert_eq!(parse_cpu_mask(&format_cpu_mask(&wide)).unwrap(), wide);
    }

    #[test]
    fn device_numbers_split_as_glibc_does() {
        // 254:0 is encoded as 0xfe00 (major in bits 8..20).
        assert_eq!(split_device_number(0xfe00), (254, 0));
        // 259:1 -> major 0x103 in bits 8..20, minor 1 in bits 0..8.
        assert_eq!(split_device_number(0x10301), (259, 1));
        // Minor 300 = 0x12c: its low byte 0x2c in bits 0..8, the rest (0x1) in bits 20..32.
        assert_eq!(split_device_number(0x0010_082c), (8, 300));
    }

    #[test]
    fn mountinfo_finds_the_longest_mount_point() {
        let text = "\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
40 27 259:1 / /data\\040disk rw,noatime shared:5 - xfs /dev/nvme0n1p1 rw,attr2
41 27 0:50 / /data rw - tmpfs tmpfs rw
";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 3);
        assert_eq!(mounts[1].mount_point, "/data disk");
        let found = mount_of(&mounts, Path::new("/data disk/ringbus")).unwrap();
        assert_eq!(found.fstype, "xfs");
        assert!(found.has_option("noatime"));
        assert_eq!(
            mount_of(&mounts, Path::new("/var/tmp")).unwrap().fstype,
            "ext4"
        );
        // /database is not under /data.
        assert_eq!(
            mount_of(&mounts, Path::new("/database")).unwrap().fstype,
            "ext4"
        );
        assert!(mounts[0].has_option("discard"));
    }

    #[test]
    fn limits_capabilities_meminfo_softnet_parse() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
            Max open files            20000                40000                files\n\
            Max locked memory         unlimited            unlimited            bytes\n";
        assert_eq!(
            parse_limit(limits, "Max open files"),
            Some(Limit {
                soft: Some(20000),
                hard: Some(40000)
            })
        );
        assert_eq!(
            parse_limit(limits, "Max locked memory"),
            Some(Limit {
                soft: None,
                hard: None
            })
        );
        assert_eq!(
            has_capability("CapEff:\t0000000000004000\n", 14),
            Some(true)
        );
        assert_eq!(
            has_capability("CapEff:\t0000000000000000\n", 14),
            Some(false)
        );
        assert_eq!(
            meminfo_kib("SwapTotal:       1024 kB\n", "SwapTotal"),
            Some(1024)
        );
        assert_eq!(
            softnet_totals("0000000b 00000002 00000000\n000004ea 00000000 00000010\n"),
            Ok((0xb + 0x4ea, 2, 16))
        );
    }

    #[test]
    fn ethtool_outputs_parse() {
        let channels = "Channel parameters for eth0:\nPre-set maximums:\nRX:\t\tn/a\nTX:\t\tn/a\n\
            Other:\t\t1\nCombined:\t8\nCurrent hardware settings:\nRX:\t\tn/a\nTX:\t\tn/a\n\
            Other:\t\t1\nCombined:\t2\n";
        assert_eq!(parse_channels(channels), Some((8, 2)));
        let rings = "Ring parameters for eth0:\nPre-set maximums:\nRX:\t\t4096\nTX:\t\t4096\n\
            Current hardware settings:\nRX:\t\t512\nTX:\t\t512\n";
        assert_eq!(parse_rings(rings), Some((4096, 512)));
        let coalesce = "Coalesce parameters for eth0:\nAdaptive RX: off  TX: n/a\nrx-usecs: 0\n";
        assert_eq!(parse_coalesce(coalesce), (Some(false), Some(0)));
        let features = "Features for eth0:\ntcp-segmentation-offload: on\n\
            generic-receive-offload: off\nlarge-receive-offload: off [fixed]\n";
        let features = parse_features(features);
        assert_eq!(features["tcp-segmentation-offload"], (true, false));
        assert_eq!(features["generic-receive-offload"], (false, false));
        assert_eq!(features["large-receive-offload"], (false, true));
        let table = "RX flow hash indirection table for eth0 with 4 RX ring(s):\n\
            \x20   0:      0     1     2     3     0     1     2     3\n\
            \x20   8:      0     1     0     1     0     1     0     1\n";
        assert_eq!(parse_indirection(table), Some(BTreeSet::from([0, 1, 2, 3])));
        let unsupported = "RX flow hash indirection table for eth0 with 1 RX ring(s):\n\
            Operation not supported\nRSS hash function:\n    toeplitz: on\n";
        assert_eq!(parse_indirection(unsupported), None);
    }
}
