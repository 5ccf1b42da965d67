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

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::probe::{self, Ethtool, EthtoolError, NodeKind, Roots, Storage};

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

/// ringbus writes and reads its segments in blocks of this many bytes with O_DIRECT.
const BLOCK_BYTES: u64 = storage::disk::BLOCK_BYTES;
/// The broker's listen backlog; `net.core.somaxconn` silently caps it.
const LISTEN_BACKLOG: u64 = net::LISTEN_BACKLOG_MAX as u64;
/// `ringbus serve --connections-max` default: connections each shard accepts at once.
const CONNECTIONS_PER_SHARD: u64 = 10_000;
/// File descriptors per shard beyond connections: segment and index files, metadata, io_uring.
const FILES_PER_SHARD: u64 = 4_096;
/// Registered io_uring buffer memory per shard (`io_memory` in broker/src/server.rs) plus
/// glommio's three rings: what RLIMIT_MEMLOCK must cover per shard without CAP_IPC_LOCK.
const MEMLOCK_BYTES_PER_SHARD: u64 = (1 << 20) + (512 << 10);
/// Socket buffer autotuning maximum recommended for 10-100 Gbit/s links (the bandwidth-delay
/// product of 100 Gbit/s at 1 ms is 12.5 MB).
const SOCKET_BUFFER_BYTES_MAX: u64 = 16 << 20;
/// Idle states slower to leave than this are disabled on shard cores for latency.
const IDLE_EXIT_LATENCY_US_MAX: u64 = 10;
/// softnet squeezes are a warning when there is more than one per this many packets.
const SQUEEZES_PER_PACKETS: u64 = 1_000;
/// IRQs listed one by one in a row's current value; more are summarised.
const IRQS_LISTED_MAX: usize = 8;
/// CAP_IPC_LOCK: lets a process lock (and io_uring register) memory beyond RLIMIT_MEMLOCK.
const CAP_IPC_LOCK: u32 = 14;

/// Runs every check.
pub fn check(roots: &Roots, ethtool: &Ethtool, request: &Request) -> Report {
    let mut facts = Vec::new();
    let mut rows = Vec::new();
    let online = roots
        .read("/sys/devices/system/cpu/online")
        .and_then(|text| probe::parse_cpu_list(&text));
    let online_cpus = online.clone().unwrap_or_default();
    let (shards, cores_named) = match &request.cores {
        Some(cores) => (cores.clone(), true),
        None => (online_cpus.clone(), false),
    };
    facts.push((
        "shard cores".to_string(),
        if cores_named {
            format!("{} (--cores)", probe::format_cpu_list(&shards))
        } else {
            format!("{} (every online core)", probe::format_cpu_list(&shards))
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
            disk_rows(roots, &storage, &cpus, &mut rows);
            filesystem_rows(&storage, &mut rows);
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
        Some(iface) => nic_rows(roots, ethtool, iface, &cpus, &mut rows),
        None => {
            rows.push(Row::new("nic", "interface").not_applicable(
                "no --iface named: queue, IRQ, RSS, offload and ring checks skipped",
            ))
        }
    }
    net_rows(roots, &mut rows);
    if let Err(reason) = &online {
        rows.push(Row::new("cpu", "online cores").unknown(reason.clone()));
    }
    cpu_rows(roots, &cpus, cores_named, &mut rows);
    memory_rows(roots, &cpus, &mut rows);
    Report { facts, rows }
}

/// Which cores run shards and which are left for the kernel (IRQs, housekeeping).
struct Cpus {
    shards: BTreeSet<usize>,
    free: BTreeSet<usize>,
}

/// What kind of disk a queue belongs to, for the recommendations that differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DiskKind {
    Nvme,
    /// virtio-blk or Xen: the host schedules, and `rotational` often lies.
    Virtual,
    Ssd,
    Hdd,
}

fn disk_kind(roots: &Roots, name: &str) -> DiskKind {
    let driver = std::fs::read_link(roots.path(&format!("/sys/block/{name}/device/driver")))
        .ok()
        .and_then(|link| link.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    if name.starts_with("nvme") {
        DiskKind::Nvme
    } else if driver == "virtio_blk" || name.starts_with("vd") || name.starts_with("xvd") {
        DiskKind::Virtual
    } else if roots
        .read(&format!("/sys/block/{name}/queue/rotational"))
        .is_ok_and(|r| r == "0")
    {
        DiskKind::Ssd
    } else {
        DiskKind::Hdd
    }
}

fn disk_rows(roots: &Roots, storage: &Storage, cpus: &Cpus, rows: &mut Vec<Row>) {
    let disks = storage.disks();
    if let Err(reason) = &storage.nodes {
        rows.push(Row::new("disk", "data dir device").not_applicable(reason.clone()));
        return;
    }
    stack_rows(storage, rows);
    for (disk, partition) in &disks {
        let name = &disk.name;
        let queue = format!("/sys/block/{name}/queue");
        let kind = disk_kind(roots, name);
        let hardware_queues = roots.list(&format!("/sys/block/{name}/mq")).len();

        // I/O scheduler.
        let row = Row::new("disk", format!("{name} scheduler"));
        rows.push(match roots.read(&format!("{queue}/scheduler")) {
            Err(reason) => row.unknown(reason),
            Ok(text) => {
                let current = probe::selected(&text).to_string();
                // none where the device has a queue per core; mq-deadline in front of a
                // single queue, where it was measured better here (tuning.md).
                let multi_queue = kind == DiskKind::Nvme || hardware_queues > 1;
                let recommended = if multi_queue { "none" } else { "mq-deadline" };
                let offered = probe::choices(&text);
                let row = row.current(&current).recommended(recommended);
                if offered.len() > 1 && !offered.iter().any(|c| c == recommended) {
                    row.unknown(format!("the kernel offers {}, not {recommended}", offered.join(", ")))
                } else {
                    row.ok_if(
                        current == recommended,
                        if multi_queue {
                            "one hardware queue per core: ringbus already issues large, ordered O_DIRECT writes, and a scheduler only adds a lock shared by every shard in front of the device's queues"
                        } else if kind == DiskKind::Hdd {
                            "a spinning disk: mq-deadline bounds read latency behind the log's long writes"
                        } else {
                            "one hardware queue: mq-deadline merges and orders requests in front of it; on this machine type's virtio disk, none lost 15% of acks=all throughput (tuning.md)"
                        },
                    )
                    .fix(
                        format!("echo {recommended} > {queue}/scheduler"),
                        format!("udev rule: ACTION==\"add|change\", KERNEL==\"{name}\", ATTR{{queue/scheduler}}=\"{recommended}\""),
                    )
                    .write(roots.path(&format!("{queue}/scheduler")), recommended)
                }
            }
        });

        // Merges.
        let row = Row::new("disk", format!("{name} nomerges"));
        rows.push(match roots.read(&format!("{queue}/nomerges")) {
            Err(reason) => row.unknown(reason),
            Ok(current) if kind != DiskKind::Nvme => row
                .current(current)
                .recommended("0 or 2")
                .ok("on a single-queue virtio disk 2 changed neither throughput nor p99 (tails hinted better); either value is fine outside NVMe (tuning.md)"),
            Ok(current) => {
                let recommended = "2";
                row.current(&current).recommended(recommended).ok_if(
                    current == recommended,
                    "NVMe: ringbus's writes are already whole buffers; 2 skips every merge attempt (CPU on the shard's core) and nothing is lost",
                )
                .fix(
                    format!("echo {recommended} > {queue}/nomerges"),
                    format!("udev rule: ACTION==\"add|change\", KERNEL==\"{name}\", ATTR{{queue/nomerges}}=\"{recommended}\""),
                )
                .write(roots.path(&format!("{queue}/nomerges")), recommended)
            }
        });

        // Volatile write cache: informs what acks mean; never "fixed" by writing the file.
        let row = Row::new("disk", format!("{name} write cache"));
        rows.push(match roots.read(&format!("{queue}/write_cache")) {
            Err(reason) => row.unknown(reason),
            Ok(cache) => {
                let fua = roots.read(&format!("{queue}/fua")).unwrap_or_else(|_| "?".into());
                let row = row
                    .current(format!("{cache}, fua {fua}"))
                    .recommended("as the device reports");
                if cache == "write back" {
                    row.ok("volatile cache: every fdatasync sends a FLUSH, so acks=all is durable and costs a flush; acks=1 is not durable until the next sync. Never write 'write through' here to skip flushes unless the device has power-loss protection")
                } else {
                    row.ok("no volatile cache reported: fdatasync sends no FLUSH. Right only if the device really has power-loss protection (or no cache); if someone wrote 'write through' over a volatile cache, acks=all can lose data at a power cut")
                }
            }
        });

        // Block sizes against the O_DIRECT block.
        let row = Row::new("disk", format!("{name} block size"));
        let logical = roots.read_u64(&format!("{queue}/logical_block_size"));
        let physical = roots.read_u64(&format!("{queue}/physical_block_size"));
        rows.push(match (logical, physical) {
            (Err(reason), _) | (_, Err(reason)) => row.unknown(reason),
            (Ok(logical), Ok(physical)) => row
                .current(format!("logical {logical}, physical {physical}"))
                .recommended(format!("both <= {BLOCK_BYTES}"))
                .ok_if(
                    logical <= BLOCK_BYTES && physical <= BLOCK_BYTES,
                    format!("ringbus writes {BLOCK_BYTES}-byte-aligned blocks with O_DIRECT: a logical block above that refuses them (EINVAL), a physical block above that turns every write into read-modify-write"),
                )
                .fix(
                    format!("reformat the namespace to {BLOCK_BYTES}-byte sectors (nvme format --lbaf) or use another disk"),
                    "",
                ),
        });

        // Partition alignment.
        if let Some(partition) = partition {
            let row = Row::new("disk", format!("{} alignment", partition.name));
            let start = probe::read_trimmed(&partition.dir.join("start")).and_then(|s| {
                s.parse::<u64>()
                    .map_err(|_| format!("{s:?} is not a sector number"))
            });
            let offset = probe::read_trimmed(&partition.dir.join("alignment_offset"))
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
            rows.push(match start {
                Err(reason) => row.unknown(reason),
                Ok(start) => {
                    let start_bytes = start * 512;
                    row.current(format!("starts at byte {start_bytes}, alignment_offset {offset}"))
                        .recommended("a multiple of 1 MiB")
                        .ok_if(
                            start_bytes.is_multiple_of(BLOCK_BYTES) && offset == 0,
                            "a partition that does not start on a physical block makes every aligned O_DIRECT write straddle two blocks",
                        )
                        .fix("repartition with parted -a optimal (starts at 1 MiB)", "")
                }
            });
        }

        // TRIM.
        let row = Row::new("disk", format!("{name} TRIM"));
        let discard_max = roots.read_u64(&format!("{queue}/discard_max_bytes"));
        let online_discard = storage
            .mount
            .as_ref()
            .is_ok_and(|mount| mount.has_option("discard"));
        rows.push(match discard_max {
            Err(reason) => row.unknown(reason),
            Ok(0) => row
                .current("not supported")
                .not_applicable("the device does not support discard"),
            Ok(_) => {
                let mount_point = storage
                    .mount
                    .as_ref()
                    .map(|m| m.mount_point.clone())
                    .unwrap_or_else(|_| "MOUNTPOINT".into());
                row.current(if online_discard { "online (discard mount option)" } else { "periodic (no discard mount option)" })
                    .recommended("periodic: fstrim weekly")
                    .ok_if(
                        !online_discard,
                        "retention deletes whole segments; with the discard option every delete issues TRIM synchronously, which stalls the shard's fdatasyncs behind it. A weekly fstrim gives the device the same information off the hot path",
                    )
                    .fix(
                        format!("mount -o remount,nodiscard {mount_point} && systemctl enable --now fstrim.timer"),
                        "drop discard from the options in /etc/fstab",
                    )
            }
        });

        // Disk IRQs.
        rows.push(irq_row(
            roots,
            "disk",
            name,
            &disk.dir,
            hardware_queues > 1,
            cpus,
        ));
    }
}

/// Rows about layers between the filesystem and the disks (md RAID, device-mapper).
fn stack_rows(storage: &Storage, rows: &mut Vec<Row>) {
    let Ok(nodes) = &storage.nodes else {
        return;
    };
    for node in nodes {
        match node.kind {
            NodeKind::Raid => {
                let level = probe::read_trimmed(&node.dir.join("md/level"));
                let chunk = probe::read_trimmed(&node.dir.join("md/chunk_size"));
                let row = Row::new("disk", format!("{} raid", node.name));
                rows.push(match level {
                    Err(reason) => row.unknown(reason),
                    Ok(level) => row
                        .current(format!(
                            "{level}, chunk {}",
                            chunk.unwrap_or_else(|_| "?".into())
                        ))
                        .recommended("raid0 (or raid10)")
                        .ok_if(
                            level == "raid0" || level == "raid10",
                            "ringbus takes one --data-dir, so striping (md raid0) is how it uses several disks; parity RAID (raid5/6) turns each small group-commit write into a read-modify-write of the stripe",
                        )
                        .fix("rebuild the array as raid0 (mdadm --create --level=0 --chunk=1024)", ""),
                });
            }
            NodeKind::Mapper => {
                let dm_name = probe::read_trimmed(&node.dir.join("dm/name"))
                    .unwrap_or_else(|_| node.name.clone());
                rows.push(
                    Row::new("disk", format!("{} device-mapper", node.name))
                        .current(dm_name)
                        .recommended("linear or striped, no snapshots")
                        .ok("a device-mapper layer (LVM, dm-crypt) passes O_DIRECT and FLUSH through; LVM snapshots and dm-crypt cost per write, check with fio on the mapped device"),
                );
            }
            NodeKind::Partition | NodeKind::Disk => {}
        }
    }
}

/// Where the IRQs of a device land, against the shard cores.
/// `managed`: a multi-queue block device, whose per-queue IRQs the kernel pins to the cores
/// that submit on each queue.
fn irq_row(
    roots: &Roots,
    area: &'static str,
    name: &str,
    dir: &Path,
    managed: bool,
    cpus: &Cpus,
) -> Row {
    let row = Row::new(area, format!("{name} IRQ affinity"));
    let irqs = probe::irqs_of(roots, dir);
    if irqs.is_empty() {
        return row.not_applicable("no IRQs found for the device (virtual, or not a PCI device)");
    }
    let mut placements = Vec::new();
    let mut targets = BTreeSet::new();
    let mut on_shards = Vec::new();
    for irq in &irqs {
        match probe::irq_cpus(roots, *irq) {
            Ok(irq_cpus) => {
                placements.push(format!("{irq}:{}", probe::format_cpu_list(&irq_cpus)));
                if !irq_cpus.is_disjoint(&cpus.shards) {
                    on_shards.push(*irq);
                }
                targets.extend(irq_cpus);
            }
            Err(reason) => return row.unknown(reason),
        }
    }
    // IRQ:CPUS pairs while they fit on a line; a many-queue device in one phrase.
    let current = if placements.len() <= IRQS_LISTED_MAX {
        placements.join(" ")
    } else {
        format!(
            "{} IRQs on cores {}",
            placements.len(),
            probe::format_cpu_list(&targets)
        )
    };
    let row = row.current(current);
    let balancer = if probe::process_running(roots, "irqbalance") {
        " irqbalance is running and will move them back: stop it or ban these IRQs (IRQBALANCE_BANNED_CPULIST)."
    } else {
        ""
    };
    if managed {
        return row.recommended("one queue per core (kernel-managed)").ok(
            "a multi-queue device completes each request on the core that submitted it: the IRQ for a shard's I/O is on the shard's own core, and the kernel manages these affinities",
        );
    }
    if cpus.free.is_empty() {
        return row.recommended("any (every core runs a shard)").ok(format!(
            "every online core runs a shard, so the IRQs must land on one; leaving a core out of --cores for IRQs is the alternative on large machines.{balancer}"
        ));
    }
    let free = probe::format_cpu_list(&cpus.free);
    let mut row = row
        .recommended(format!("cores {free} (not shards)"))
        .ok_if(
            on_shards.is_empty(),
            format!("cores {free} run no shard: IRQ and softirq work there does not preempt a shard's event loop.{balancer}"),
        )
        .fix(
            on_shards
                .iter()
                .map(|irq| format!("echo {free} > /proc/irq/{irq}/smp_affinity_list"))
                .collect::<Vec<_>>()
                .join("; "),
            "a systemd unit that writes smp_affinity_list at boot, with irqbalance off or banned from the shard cores",
        );
    for irq in on_shards {
        row = row.write(
            roots.path(&format!("/proc/irq/{irq}/smp_affinity_list")),
            &free,
        );
    }
    row
}

fn filesystem_rows(storage: &Storage, rows: &mut Vec<Row>) {
    let mount = match &storage.mount {
        Ok(mount) => mount,
        Err(reason) => {
            rows.push(Row::new("fs", "filesystem").unknown(reason.clone()));
            return;
        }
    };
    let row = Row::new("fs", format!("{} filesystem", mount.mount_point))
        .current(&mount.fstype)
        .recommended("xfs (or ext4)");
    rows.push(match mount.fstype.as_str() {
        "xfs" => row.ok("XFS: O_DIRECT, preallocation, and allocation groups that let many partitions' files grow at once"),
        "ext4" => {
            if mount.has_option("data=journal") {
                row.warn("ext4 with data=journal writes every block twice and does not support O_DIRECT")
                    .fix(format!("remount {} with data=ordered", mount.mount_point), "/etc/fstab: data=ordered")
            } else {
                row.ok("ext4 supports O_DIRECT and preallocation; XFS scales better with many partitions appending at once")
            }
        }
        "tmpfs" | "ramfs" | "overlay" | "nfs" | "nfs4" | "fuse" | "9p" | "virtiofs" => row
            .warn("no O_DIRECT (or not a local disk): ringbus refuses it unless --allow-buffered-io, and then the page cache sits between the log and the disk")
            .fix("put the data dir on a local XFS or ext4 filesystem", "/etc/fstab"),
        "btrfs" | "zfs" | "bcachefs" => row
            .warn("copy-on-write: every append rewrites metadata and checksums, fdatasync costs more, and O_DIRECT semantics differ")
            .fix("put the data dir on XFS or ext4", "/etc/fstab"),
        _ => row.unknown("a filesystem ringbus has not been measured on"),
    });

    let atime = ["noatime", "relatime", "strictatime"]
        .into_iter()
        .find(|option| mount.has_option(option))
        .unwrap_or("strictatime");
    rows.push(
        Row::new("fs", format!("{} atime", mount.mount_point))
            .current(atime)
            .recommended("noatime")
            .ok_if(
                atime == "noatime",
                "a fetch that reads a segment from disk would otherwise dirty its inode (relatime: after each write), an extra metadata write for nothing",
            )
            .fix(
                format!("mount -o remount,noatime {}", mount.mount_point),
                "add noatime to the options in /etc/fstab",
            ),
    );
    let no_barrier = mount.has_option("nobarrier") || mount.has_option("barrier=0");
    rows.push(
        Row::new("fs", format!("{} barriers", mount.mount_point))
            .current(if no_barrier { "off (nobarrier)" } else { "on" })
            .recommended("on")
            .ok_if(
                !no_barrier,
                "without barriers fdatasync sends no FLUSH: acks=all is no longer durable on a volatile cache",
            )
            .fix(
                format!("mount -o remount,barrier {}", mount.mount_point),
                "remove nobarrier/barrier=0 from /etc/fstab",
            ),
    );
}

fn nic_rows(roots: &Roots, ethtool: &Ethtool, iface: &str, cpus: &Cpus, rows: &mut Vec<Row>) {
    let base = format!("/sys/class/net/{iface}");
    if !roots.exists(&base) {
        rows.push(
            Row::new("nic", iface.to_string())
                .unknown(format!("no interface {iface} ({base} does not exist)")),
        );
        return;
    }
    let loopback = roots
        .read(&format!("{base}/type"))
        .is_ok_and(|t| t == "772");
    if loopback {
        rows.push(
            Row::new("nic", iface.to_string())
                .current("loopback")
                .not_applicable("loopback has no queues, IRQs, rings or coalescing: only the sysctls below apply"),
        );
        return;
    }
    let queues = roots.list(&format!("{base}/queues"));
    let rx_queues: Vec<&String> = queues.iter().filter(|q| q.starts_with("rx-")).collect();
    let tx_queues: Vec<&String> = queues.iter().filter(|q| q.starts_with("tx-")).collect();
    let want_queues = cpus.shards.len().max(1) as u64;

    // Queues.
    let row = Row::new("nic", format!("{iface} queues"));
    rows.push(match ethtool.query("-l", iface) {
        Ok(text) => match probe::parse_channels(&text) {
            Some((max, current)) => {
                let target = max.min(want_queues);
                row.current(format!("{current} (max {max})"))
                    .recommended(format!("{target} (one per shard core, at most the maximum)"))
                    .ok_if(current >= target, "RSS spreads connections over the queues; with fewer queues than shard cores, a few cores take every packet's softirq")
                    .fix(format!("ethtool -L {iface} combined {target}"), "a udev rule or NetworkManager/systemd-networkd link setting running the same ethtool command")
            }
            None => row.unknown("could not read `ethtool -l` output"),
        },
        Err(EthtoolError::Missing) => {
            let count = rx_queues.len() as u64;
            let row = row.current(format!("{count} rx queues (sysfs)"));
            if count >= want_queues {
                row.recommended(format!(">= {want_queues}")).ok("as many RX queues as shard cores")
            } else {
                row.unknown(EthtoolError::Missing.describe("-l"))
            }
        }
        Err(error) => row.unknown(error.describe(&format!("-l {iface}"))),
    });

    // RSS indirection.
    let row = Row::new("nic", format!("{iface} RSS indirection"));
    rows.push(match ethtool.query("-x", iface) {
        Ok(text) => match probe::parse_indirection(&text) {
            None => row.not_applicable("the driver has no RSS indirection table (one RX queue, or not supported)"),
            Some(used) => {
                let count = rx_queues.len().max(1) as u64;
                row.current(format!("{} of {count} rx queues", used.len()))
                    .recommended(format!("all {count}"))
                    .ok_if(used.len() as u64 >= count, "an indirection table that skips queues leaves their cores idle and overloads the rest")
                    .fix(format!("ethtool -X {iface} equal {count}"), "the same ethtool command at boot")
            }
        },
        Err(EthtoolError::Failed(_)) if rx_queues.len() <= 1 => {
            row.not_applicable("one RX queue: no indirection table")
        }
        Err(error) => row.unknown(error.describe(&format!("-x {iface}"))),
    });

    // IRQs.
    let device = std::fs::canonicalize(roots.path(&format!("{base}/device")));
    rows.push(match device {
        Ok(dir) => irq_row(roots, "nic", iface, &dir, false, cpus),
        Err(_) => Row::new("nic", format!("{iface} IRQ affinity"))
            .not_applicable("a virtual interface without a device: no IRQs"),
    });

    // RPS.
    let rps: Vec<(String, Result<BTreeSet<usize>, String>)> = rx_queues
        .iter()
        .map(|q| {
            let logical = format!("{base}/queues/{q}/rps_cpus");
            let cpus = roots
                .read(&logical)
                .and_then(|text| probe::parse_cpu_mask(&text));
            (logical, cpus)
        })
        .collect();
    let row = Row::new("nic", format!("{iface} RPS"));
    rows.push(if rps.is_empty() {
        row.not_applicable("no rx queues in sysfs")
    } else if let Some((_, Err(reason))) = rps.iter().find(|(_, cpus)| cpus.is_err()) {
        row.unknown(reason.clone())
    } else {
        let current: BTreeSet<usize> = rps
            .iter()
            .flat_map(|(_, cpus)| cpus.clone().unwrap_or_default())
            .collect();
        let (recommended, why) = if rx_queues.len() as u64 >= want_queues || cpus.free.is_empty() {
            (BTreeSet::new(), "RSS already spreads packets (or every core is a shard): RPS would only add an inter-processor interrupt per packet")
        } else {
            (cpus.free.clone(), "fewer RX queues than shard cores: RPS moves protocol processing to the cores that run no shard")
        };
        let mut row = row
            .current(probe::format_cpu_list(&current))
            .recommended(probe::format_cpu_list(&recommended))
            .ok_if(current == recommended, why)
            .fix(
                rps.iter()
                    .map(|(path, _)| format!("echo {} > {path}", probe::format_cpu_mask(&recommended)))
                    .collect::<Vec<_>>()
                    .join("; "),
                "a udev rule or unit writing rps_cpus at boot; with RPS on, RFS (net.core.rps_sock_flow_entries=32768, rps_flow_cnt per queue) keeps a flow's processing on one core",
            );
        for (path, _) in &rps {
            row = row.write(roots.path(path), probe::format_cpu_mask(&recommended));
        }
        row
    });

    // XPS.
    let xps: Vec<String> = tx_queues
        .iter()
        .map(|q| format!("{base}/queues/{q}/xps_cpus"))
        .filter(|p| roots.exists(p))
        .collect();
    let row = Row::new("nic", format!("{iface} XPS"));
    rows.push(if tx_queues.len() <= 1 || xps.is_empty() {
        row.not_applicable("one TX queue (or no xps_cpus): nothing to map")
    } else {
        let configured = xps
            .iter()
            .filter(|p| roots.read(p).and_then(|t| probe::parse_cpu_mask(&t)).is_ok_and(|c| !c.is_empty()))
            .count();
        row.current(format!("{configured} of {} tx queues mapped", xps.len()))
            .recommended("every tx queue mapped to its cores")
            .ok_if(configured == xps.len(), "XPS lets each core send on its own TX queue without taking another core's queue lock")
            .fix(format!("write each core's mask to {base}/queues/tx-N/xps_cpus"), "a unit writing xps_cpus at boot")
    });

    // Coalescing.
    let row = Row::new("nic", format!("{iface} coalescing"));
    rows.push(match ethtool.query("-c", iface) {
        Ok(text) => {
            let (adaptive, rx_usecs) = probe::parse_coalesce(&text);
            let current = format!(
                "adaptive-rx {}, rx-usecs {}",
                adaptive.map_or("n/a", |a| if a { "on" } else { "off" }),
                rx_usecs.map_or("n/a".to_string(), |u| u.to_string())
            );
            let high = adaptive != Some(true) && rx_usecs.is_some_and(|u| u > 100);
            row.current(current)
                .recommended("adaptive-rx on, or rx-usecs <= 100")
                .ok_if(!high, "coalescing trades interrupts for latency: over 100 us adds that much to every acks=1 round trip at low load")
                .fix(format!("ethtool -C {iface} adaptive-rx on"), "the same ethtool command at boot")
        }
        Err(EthtoolError::Failed(_)) => row.not_applicable("the driver does not report coalescing"),
        Err(error) => row.unknown(error.describe(&format!("-c {iface}"))),
    });

    // Rings.
    let drops = ["rx_dropped", "rx_missed_errors", "rx_fifo_errors"]
        .iter()
        .filter_map(|stat| roots.read_u64(&format!("{base}/statistics/{stat}")).ok())
        .sum::<u64>();
    let row = Row::new("nic", format!("{iface} rx ring"));
    rows.push(match ethtool.query("-g", iface) {
        Ok(text) => match probe::parse_rings(&text) {
            Some((max, current)) => row
                .current(format!("{current} (max {max}), {drops} rx drops"))
                .recommended(if drops > 0 { format!("{max}") } else { "current, until drops appear".into() })
                .ok_if(drops == 0 || current >= max, "a larger ring absorbs bursts (many producers at once) at the cost of cache footprint; raise it when the NIC drops")
                .fix(format!("ethtool -G {iface} rx {max}"), "the same ethtool command at boot"),
            None => row.unknown("could not read `ethtool -g` output"),
        },
        Err(EthtoolError::Failed(_)) => row.not_applicable("the driver does not report ring sizes"),
        Err(error) => row.unknown(error.describe(&format!("-g {iface}"))),
    });

    // Offloads.
    let row = Row::new("nic", format!("{iface} offloads"));
    rows.push(match ethtool.query("-k", iface) {
        Ok(text) => {
            let features = probe::parse_features(&text);
            let wanted = [
                ("generic-receive-offload", "gro"),
                ("generic-segmentation-offload", "gso"),
                ("tcp-segmentation-offload", "tso"),
            ];
            let mut current = Vec::new();
            let mut off = Vec::new();
            for (feature, short) in wanted {
                match features.get(feature) {
                    Some((true, _)) => current.push(format!("{short} on")),
                    Some((false, true)) => current.push(format!("{short} off [fixed]")),
                    Some((false, false)) => {
                        current.push(format!("{short} off"));
                        off.push(short);
                    }
                    None => current.push(format!("{short} ?")),
                }
            }
            row.current(current.join(", "))
                .recommended("gro, gso, tso on")
                .ok_if(off.is_empty(), "segmentation and receive offloads let the stack move 64 KiB at a time: fewer per-packet costs on the shard cores for large batches and fetches")
                .fix(
                    format!("ethtool -K {iface} {}", off.iter().map(|s| format!("{s} on")).collect::<Vec<_>>().join(" ")),
                    "the same ethtool command at boot",
                )
        }
        Err(error) => row.unknown(error.describe(&format!("-k {iface}"))),
    });

    // MTU.
    let row = Row::new("nic", format!("{iface} MTU"));
    rows.push(match roots.read(&format!("{base}/mtu")) {
        Err(reason) => row.unknown(reason),
        Ok(mtu) => row
            .current(&mtu)
            .recommended("9000 if every hop carries jumbo frames, else 1500")
            .ok("cannot be judged from this host: jumbo frames cut per-packet work about 6x for large batches, but only if every switch and peer on the path accepts them"),
    });
}

/// A sysctl under /proc/sys, by its dotted name.
fn sysctl_path(name: &str) -> String {
    format!("/proc/sys/{}", name.replace('.', "/"))
}

fn net_rows(roots: &Roots, rows: &mut Vec<Row>) {
    for (name, why) in [
        (
            "net.core.somaxconn",
            "caps the listen backlog: ringbus listens with a backlog of",
        ),
        (
            "net.ipv4.tcp_max_syn_backlog",
            "half-open connections kept while a shard is busy; a reconnect storm of producers needs at least the listen backlog of",
        ),
    ] {
        let path = sysctl_path(name);
        let row = Row::new("net", name);
        rows.push(match roots.read_u64(&path) {
            Err(reason) => row.unknown(reason),
            Ok(value) => row
                .current(value.to_string())
                .recommended(format!(">= {LISTEN_BACKLOG}"))
                .ok_if(value >= LISTEN_BACKLOG, format!("{why} {LISTEN_BACKLOG}"))
                .fix(
                    format!("sysctl -w {name}={LISTEN_BACKLOG}"),
                    format!("/etc/sysctl.d/90-ringbus.conf: {name} = {LISTEN_BACKLOG}"),
                )
                .write(roots.path(&path), LISTEN_BACKLOG.to_string()),
        });
    }

    for name in ["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"] {
        let path = sysctl_path(name);
        let row = Row::new("net", format!("{name} max"));
        let fields = roots.read(&path).and_then(|text| {
            let fields: Vec<u64> = text
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            if fields.len() == 3 {
                Ok(fields)
            } else {
                Err(format!("{path} holds {text:?}, not three numbers"))
            }
        });
        rows.push(match fields {
            Err(reason) => row.unknown(reason),
            Ok(fields) => {
                let value = format!("{} {} {SOCKET_BUFFER_BYTES_MAX}", fields[0], fields[1]);
                row.current(fields[2].to_string())
                    .recommended(format!(">= {SOCKET_BUFFER_BYTES_MAX}"))
                    .ok_if(
                        fields[2] >= SOCKET_BUFFER_BYTES_MAX,
                        "ringbus leaves socket buffers to autotuning, which stops at this maximum: one connection can have at most this much in flight, which limits a connection to max / RTT (4 MiB at 1 ms RTT: 4 GiB/s; less on longer paths). Loopback was measured here, see tuning.md",
                    )
                    .fix(format!("sysctl -w {name}=\"{value}\""), format!("/etc/sysctl.d/90-ringbus.conf: {name} = {value}"))
                    .write(roots.path(&path), value)
            }
        });
    }

    for name in ["net.core.busy_read", "net.core.busy_poll"] {
        let path = sysctl_path(name);
        let row = Row::new("net", name);
        rows.push(match roots.read_u64(&path) {
            Err(reason) => row.unknown(reason),
            Ok(value) => row
                .current(value.to_string())
                .recommended("0")
                .ok_if(
                    value == 0,
                    "glommio reaps io_uring completions itself; kernel busy polling spins inside receives and poll calls on the shard's core for packets that NAPI delivers anyway (no effect on loopback: measured in tuning.md)",
                )
                .fix(format!("sysctl -w {name}=0"), format!("/etc/sysctl.d/90-ringbus.conf: {name} = 0"))
                .write(roots.path(&path), "0"),
        });
    }

    let row = Row::new("net", "softnet drops");
    let softnet = roots
        .read("/proc/net/softnet_stat")
        .and_then(|t| probe::softnet_totals(&t));
    let backlog_path = sysctl_path("net.core.netdev_max_backlog");
    let budget_path = sysctl_path("net.core.netdev_budget");
    rows.push(match (softnet, roots.read_u64(&backlog_path), roots.read_u64(&budget_path)) {
        (Err(reason), _, _) | (_, Err(reason), _) | (_, _, Err(reason)) => row.unknown(reason),
        (Ok((processed, dropped, squeezed)), Ok(backlog), Ok(budget)) => {
            let backlog_new = (backlog * 2).max(4096);
            let budget_new = (budget * 2).max(600);
            // A squeeze now and then is normal; one per thousand packets means softirq keeps
            // running out of budget.
            let squeezed_often = squeezed.saturating_mul(SQUEEZES_PER_PACKETS) > processed;
            let mut fixes = Vec::new();
            let mut row = row
                .current(format!("{dropped} dropped, {squeezed} squeezed of {processed} packets (since boot; backlog {backlog}, budget {budget})"))
                .recommended(format!("0 dropped, squeezed < 1 in {SQUEEZES_PER_PACKETS}"))
                .ok_if(
                    dropped == 0 && !squeezed_often,
                    "dropped: the per-CPU backlog (netdev_max_backlog) overflowed and packets were lost; squeezed: softirq ran out of budget (netdev_budget) with work left. Counters since boot: compare before and after a load",
                );
            if dropped > 0 {
                fixes.push(format!("sysctl -w net.core.netdev_max_backlog={backlog_new}"));
                row = row.write(roots.path(&backlog_path), backlog_new.to_string());
            }
            if squeezed_often {
                fixes.push(format!("sysctl -w net.core.netdev_budget={budget_new}"));
                row = row.write(roots.path(&budget_path), budget_new.to_string());
            }
            row.fix(fixes.join("; "), "/etc/sysctl.d/90-ringbus.conf with the same values")
        }
    });

    let path = sysctl_path("kernel.io_uring_disabled");
    let row = Row::new("kernel", "kernel.io_uring_disabled");
    rows.push(match roots.read_u64(&path) {
        Err(reason) if !roots.exists(&path) => row
            .current("absent")
            .ok(format!("the kernel has no such switch (before 6.6): io_uring is on ({reason})")),
        Err(reason) => row.unknown(reason),
        Ok(value) => row
            .current(value.to_string())
            .recommended("0")
            .ok_if(value == 0, "ringbus runs every shard on io_uring: 2 refuses it to everyone, 1 to processes outside kernel.io_uring_group")
            .fix("sysctl -w kernel.io_uring_disabled=0", "/etc/sysctl.d/90-ringbus.conf: kernel.io_uring_disabled = 0")
            .write(roots.path(&path), "0"),
    });
}

fn cpu_rows(roots: &Roots, cpus: &Cpus, cores_named: bool, rows: &mut Vec<Row>) {
    // Frequency governor, per cpufreq policy.
    let policies: Vec<String> = roots
        .list("/sys/devices/system/cpu/cpufreq")
        .into_iter()
        .filter(|name| name.starts_with("policy"))
        .collect();
    let row = Row::new("cpu", "governor");
    rows.push(if policies.is_empty() {
        row.not_applicable("no cpufreq driver (a VM, or frequency fixed by firmware): the host decides")
    } else {
        let mut current = BTreeSet::new();
        let mut off = Vec::new();
        let mut error = None;
        for policy in &policies {
            let path = format!("/sys/devices/system/cpu/cpufreq/{policy}/scaling_governor");
            match roots.read(&path) {
                Ok(governor) => {
                    if governor != "performance" {
                        off.push(path);
                    }
                    current.insert(governor);
                }
                Err(reason) => error = Some(reason),
            }
        }
        if let Some(reason) = error {
            row.unknown(reason)
        } else {
            let mut row = row
                .current(current.into_iter().collect::<Vec<_>>().join(", "))
                .recommended("performance")
                .ok_if(off.is_empty(), "a shard's event loop alternates bursts and short idles; powersave/schedutil ramp the clock after each burst, which adds latency to every request")
                .fix(
                    "cpupower frequency-set -g performance",
                    "cpupower.service or a tuned profile (throughput-performance / latency-performance)",
                );
            for path in off {
                row = row.write(roots.path(&path), "performance");
            }
            row
        }
    });

    // Boost.
    let row = Row::new("cpu", "boost");
    let boost = roots
        .read("/sys/devices/system/cpu/cpufreq/boost")
        .map(|v| (v == "1", "/sys/devices/system/cpu/cpufreq/boost", "1"));
    let no_turbo = roots
        .read("/sys/devices/system/cpu/intel_pstate/no_turbo")
        .map(|v| {
            (
                v == "0",
                "/sys/devices/system/cpu/intel_pstate/no_turbo",
                "0",
            )
        });
    rows.push(match boost.or(no_turbo) {
        Err(_) => row.not_applicable("no boost control (a VM, or a driver without one)"),
        Ok((on, path, value)) => row
            .current(if on { "on" } else { "off" })
            .recommended("on")
            .ok_if(on, "boost raises the clock of busy cores; a shard is single-threaded, so its throughput follows its core's clock. Turn it off only to trade peak speed for steadier latency")
            .fix(format!("echo {value} > {path}"), "a unit writing it at boot (or the BIOS setting)")
            .write(roots.path(path), value),
    });

    // C-states on shard cores.
    let row = Row::new("cpu", "idle states");
    let mut deep = Vec::new();
    let mut described = BTreeSet::new();
    let mut any_states = false;
    for cpu in &cpus.shards {
        let dir = format!("/sys/devices/system/cpu/cpu{cpu}/cpuidle");
        for state in roots
            .list(&dir)
            .into_iter()
            .filter(|s| s.starts_with("state"))
        {
            any_states = true;
            let base = format!("{dir}/{state}");
            let latency = roots.read_u64(&format!("{base}/latency")).unwrap_or(0);
            let name = roots
                .read(&format!("{base}/name"))
                .unwrap_or_else(|_| state.clone());
            let disabled = roots
                .read(&format!("{base}/disable"))
                .is_ok_and(|d| d == "1");
            described.insert(format!(
                "{name} {latency}us{}",
                if disabled { " off" } else { "" }
            ));
            if latency > IDLE_EXIT_LATENCY_US_MAX && !disabled {
                deep.push(format!("{base}/disable"));
            }
        }
    }
    rows.push(if !any_states {
        row.not_applicable("no cpuidle states exposed")
    } else {
        let mut row = row
            .current(described.into_iter().collect::<Vec<_>>().join(", "))
            .recommended(format!("states with exit latency > {IDLE_EXIT_LATENCY_US_MAX} us off on shard cores"))
            .ok_if(deep.is_empty(), "a shard idles between requests; waking from a deep C-state costs its exit latency on the next request (and the wake-up of an fdatasync completion)")
            .fix(
                format!("cpupower -c {} idle-set -D {IDLE_EXIT_LATENCY_US_MAX}", probe::format_cpu_list(&cpus.shards)),
                "a unit running the same at boot, or the kernel parameter processor.max_cstate=1 / intel_idle.max_cstate=1 (all cores)",
            );
        for path in deep {
            row = row.write(roots.path(&path), "1");
        }
        row
    });

    // Clocksource.
    let base = "/sys/devices/system/clocksource/clocksource0";
    let row = Row::new("cpu", "clocksource");
    rows.push(match roots.read(&format!("{base}/current_clocksource")) {
        Err(reason) => row.unknown(reason),
        Ok(current) => {
            let available = roots.read(&format!("{base}/available_clocksource")).unwrap_or_default();
            let fast = ["tsc", "kvm-clock", "arch_sys_counter", "hyperv_clocksource_tsc_page"];
            let good = fast.contains(&current.as_str());
            let row = row.current(&current).recommended("tsc (kvm-clock in a VM)").ok_if(
                good,
                "loadgen, the broker's timeouts and its metrics read the clock per request; hpet and acpi_pm make clock_gettime a slow system call instead of a vDSO read",
            );
            if available.split_whitespace().any(|c| c == "tsc") {
                row.fix(format!("echo tsc > {base}/current_clocksource"), "kernel parameter clocksource=tsc")
                    .write(roots.path(&format!("{base}/current_clocksource")), "tsc")
            } else {
                row.fix("check why the kernel marked the TSC unstable (dmesg | grep -i tsc)", "")
            }
        }
    });

    // Isolation of shard cores.
    let row = Row::new("cpu", "isolated shard cores");
    let isolated = roots
        .read("/sys/devices/system/cpu/isolated")
        .and_then(|t| probe::parse_cpu_list(&t))
        .unwrap_or_default();
    let nohz = roots
        .read("/sys/devices/system/cpu/nohz_full")
        .ok()
        .and_then(|t| probe::parse_cpu_list(&t).ok())
        .unwrap_or_default();
    let shards = probe::format_cpu_list(&cpus.shards);
    rows.push(if cpus.free.is_empty() {
        row.current(format!("isolated {}, nohz_full {}", probe::format_cpu_list(&isolated), probe::format_cpu_list(&nohz)))
            .not_applicable(if cores_named {
                "--cores names every online core: isolating them all would leave no core for the kernel"
            } else {
                "the shards take every online core (no --cores): isolation needs cores left for the kernel; pass --cores to check a split"
            })
    } else {
        let isolated_all = cpus.shards.is_subset(&isolated) || cpus.shards.is_subset(&nohz);
        row.current(format!("isolated {}, nohz_full {}", probe::format_cpu_list(&isolated), probe::format_cpu_list(&nohz)))
            .recommended(format!("{shards} in nohz_full (and isolcpus)"))
            .ok_if(isolated_all, "keeps the scheduler tick, other tasks and RCU callbacks off the shard cores: each shard's loop is the only thing there")
            .fix(
                "boot parameters (not applied by `tune apply`)",
                format!("kernel command line: isolcpus=managed_irq,domain,{shards} nohz_full={shards} rcu_nocbs={shards}"),
            )
    });

    // SMT.
    let row = Row::new("cpu", "SMT siblings");
    let control = roots
        .read("/sys/devices/system/cpu/smt/control")
        .unwrap_or_else(|_| "unknown".into());
    let mut shared = Vec::new();
    for cpu in &cpus.shards {
        if let Ok(siblings) = roots
            .read(&format!(
                "/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list"
            ))
            .and_then(|t| probe::parse_cpu_list(&t))
        {
            let others: Vec<usize> = siblings
                .iter()
                .copied()
                .filter(|s| s != cpu && cpus.shards.contains(s))
                .collect();
            if let Some(other) = others.first()
                && cpu < other
            {
                shared.push(format!("{cpu}+{other}"));
            }
        }
    }
    rows.push(if control == "notsupported" || control == "notimplemented" {
        row.current(control).not_applicable("no SMT on this machine (or not exposed to this VM)")
    } else {
        row.current(if shared.is_empty() {
            format!("smt {control}, no two shards on one core")
        } else {
            format!("smt {control}, shards sharing a core: {}", shared.join(" "))
        })
        .recommended("one shard per physical core")
        .ok_if(shared.is_empty(), "two shards on sibling threads share one core's execution units and caches: each gets well under a core, and its latency depends on the other's load. Give the siblings to IRQs or turn SMT off")
        .fix(
            "pass --cores with one thread per core (see thread_siblings_list), or echo off > /sys/devices/system/cpu/smt/control",
            "kernel parameter nosmt",
        )
    });

    // NUMA.
    let nodes: Vec<(String, BTreeSet<usize>)> = roots
        .list("/sys/devices/system/node")
        .into_iter()
        .filter(|n| n.starts_with("node") && n[4..].bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|n| {
            let cpus = roots
                .read(&format!("/sys/devices/system/node/{n}/cpulist"))
                .and_then(|t| probe::parse_cpu_list(&t))
                .ok()?;
            Some((n, cpus))
        })
        .collect();
    let row = Row::new("cpu", "NUMA");
    rows.push(if nodes.len() <= 1 {
        row.current(format!("{} node", nodes.len().max(1))).not_applicable("one NUMA node: nothing to place")
    } else {
        let spanned: Vec<&str> = nodes
            .iter()
            .filter(|(_, node_cpus)| !node_cpus.is_disjoint(&cpus.shards))
            .map(|(name, _)| name.as_str())
            .collect();
        row.current(format!("shards on {}", spanned.join(", ")))
            .recommended("one node per broker")
            .ok_if(spanned.len() <= 1, "a shard is pinned, but its partitions' data arrives from a NIC and a disk attached to one node; shards on the far node pay remote memory and cross-socket interrupts. Run one broker per node (--cores from that node, data dir on that node's disks)")
            .fix(
                format!("ringbus serve --cores {}", nodes.first().map(|(_, c)| probe::format_cpu_list(c)).unwrap_or_default()),
                "numactl --cpunodebind=N --membind=N in the unit, one broker per node",
            )
    });
}

fn memory_rows(roots: &Roots, cpus: &Cpus, rows: &mut Vec<Row>) {
    // Transparent huge pages.
    let base = "/sys/kernel/mm/transparent_hugepage";
    let row = Row::new("memory", "THP enabled");
    rows.push(match roots.read(&format!("{base}/enabled")) {
        Err(reason) => row.unknown(reason),
        Ok(text) => {
            let current = probe::selected(&text).to_string();
            row.current(&current)
                .recommended("madvise (or never)")
                .ok_if(
                    current != "always",
                    "nothing in ringbus asks for huge pages (jemalloc and glommio's DMA buffers use plain pages), so madvise and never behave the same for it; always gave the broker huge pages and tripled the acks=all p99 at a fixed rate on this machine type (tuning.md)",
                )
                .fix(format!("echo madvise > {base}/enabled"), "kernel parameter transparent_hugepage=madvise")
                .write(roots.path(&format!("{base}/enabled")), "madvise")
        }
    });
    let row = Row::new("memory", "THP defrag");
    rows.push(match roots.read(&format!("{base}/defrag")) {
        Err(reason) => row.unknown(reason),
        Ok(text) => {
            let current = probe::selected(&text).to_string();
            row.current(&current)
                .recommended("madvise (or defer+madvise)")
                .ok_if(current != "always", "always makes a page fault stop and compact memory synchronously: a shard stalls for milliseconds")
                .fix(format!("echo madvise > {base}/defrag"), "a unit writing it at boot")
                .write(roots.path(&format!("{base}/defrag")), "madvise")
        }
    });

    // Swappiness.
    let path = sysctl_path("vm.swappiness");
    let swap_kib = roots
        .read("/proc/meminfo")
        .ok()
        .and_then(|m| probe::meminfo_kib(&m, "SwapTotal"));
    let row = Row::new("memory", "vm.swappiness");
    rows.push(match roots.read_u64(&path) {
        Err(reason) => row.unknown(reason),
        Ok(value) if swap_kib == Some(0) => row
            .current(value.to_string())
            .not_applicable("no swap configured"),
        Ok(value) => row
            .current(value.to_string())
            .recommended("1")
            .ok_if(value <= 10, "a swapped-out page of a shard's index or cache stalls the whole shard for a disk read; 1 swaps only to avoid the OOM killer")
            .fix("sysctl -w vm.swappiness=1", "/etc/sysctl.d/90-ringbus.conf: vm.swappiness = 1")
            .write(roots.path(&path), "1"),
    });

    let shards = cpus.shards.len().max(1) as u64;
    let limits = roots.read("/proc/self/limits");
    let status = roots.read("/proc/self/status");

    // Locked memory, for io_uring's registered buffers.
    let row = Row::new("limits", "memlock");
    let needed = shards * MEMLOCK_BYTES_PER_SHARD;
    rows.push(match limits.as_ref().map(|l| probe::parse_limit(l, "Max locked memory")) {
        Err(reason) => row.unknown(reason.clone()),
        Ok(None) => row.unknown("no 'Max locked memory' line in /proc/self/limits"),
        Ok(Some(limit)) => {
            let ipc_lock = status.as_ref().ok().and_then(|s| probe::has_capability(s, CAP_IPC_LOCK));
            let current = format!(
                "{}{}",
                limit.soft.map_or("unlimited".to_string(), |b| format!("{} KiB", b / 1024)),
                if ipc_lock == Some(true) { " (CAP_IPC_LOCK: not enforced)" } else { "" }
            );
            let enough = ipc_lock == Some(true) || limit.soft.is_none_or(|b| b >= needed);
            row.current(current)
                .recommended(format!(">= {} KiB for {shards} shards, or unlimited", needed / 1024))
                .ok_if(enough, "each shard registers its io_uring buffer memory with the kernel, which pins it against RLIMIT_MEMLOCK unless the process has CAP_IPC_LOCK. This reads the limits of this shell: the broker gets its own from its unit (LimitMEMLOCK) or shell")
                .fix("ulimit -l unlimited (as root, before starting the broker)", "LimitMEMLOCK=infinity in the systemd unit, or memlock in /etc/security/limits.conf")
        }
    });

    // Open files: connections plus segment files.
    let row = Row::new("limits", "open files");
    let needed = shards * (CONNECTIONS_PER_SHARD + FILES_PER_SHARD);
    let nr_open = roots.read_u64(&sysctl_path("fs.nr_open")).ok();
    rows.push(match limits.as_ref().map(|l| probe::parse_limit(l, "Max open files")) {
        Err(reason) => row.unknown(reason.clone()),
        Ok(None) => row.unknown("no 'Max open files' line in /proc/self/limits"),
        Ok(Some(limit)) => {
            let soft = limit.soft.unwrap_or(u64::MAX);
            row.current(format!(
                "{}{}",
                limit.soft.map_or("unlimited".to_string(), |n| n.to_string()),
                nr_open.map(|n| format!(" (fs.nr_open {n})")).unwrap_or_default()
            ))
            .recommended(format!(">= {needed}"))
            .ok_if(soft >= needed, format!(
                "each shard accepts up to {CONNECTIONS_PER_SHARD} connections (--connections-max) and keeps segment and index files open per partition; running out refuses connections or fails a segment roll. This reads the limits of this shell: the broker gets its own from its unit (LimitNOFILE) or shell"
            ))
            .fix(
                format!("ulimit -n {}", needed.max(1 << 20)),
                format!("LimitNOFILE={} in the systemd unit (and fs.nr_open at least that)", needed.max(1 << 20)),
            )
        }
    });
}
