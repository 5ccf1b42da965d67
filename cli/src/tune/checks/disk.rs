//! The `disk` rows: for each disk under the data dir, its scheduler, merges, where requests
//! complete (`rq_affinity`), write cache,
//! block sizes, partition alignment, TRIM and IRQs, and the md RAID or device-mapper layers
//! between the filesystem and the disks.

use super::{Cpus, Row, irq};
use crate::tune::probe::{self, NodeKind, Roots, Storage};

/// ringbus writes and reads its segments in blocks of this many bytes with O_DIRECT.
const BLOCK_BYTES: u64 = storage::disk::BLOCK_BYTES;

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

pub(super) fn rows(roots: &Roots, storage: &Storage, cpus: &Cpus, rows: &mut Vec<Row>) {
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
        let multi_queue = kind == DiskKind::Nvme || hardware_queues > 1;

        // I/O scheduler.
        let row = Row::new("disk", format!("{name} scheduler"));
        rows.push(match roots.read(&format!("{queue}/scheduler")) {
            Err(reason) => row.unknown(reason),
            Ok(text) => {
                let current = probe::selected(&text).to_string();
                // none where the device has a queue per core; mq-deadline in front of a
                // single queue, where it was measured better here (tuning.md).
                let recommended = if multi_queue { "none" } else { "mq-deadline" };
                let offered = probe::choices(&text);
                let row = row.current(&current).recommended(recommended);
                if offered.len() > 1 && !offered.iter().any(|c| c == recommended) {
                    row.unknown(format!("the kernel offers {}, not {recommended}", offered.join(", ")))
                } else {
                    let row = row.ok_if(
                        current == recommended,
                        if multi_queue {
                            "one hardware queue per core: ringbus already issues large, ordered O_DIRECT writes, and a scheduler only adds a lock shared by every shard in front of the device's queues"
                        } else if kind == DiskKind::Hdd {
                            "a spinning disk: mq-deadline bounds read latency behind the log's long writes"
                        } else {
                            "one hardware queue: mq-deadline merges and orders requests in front of it; on this machine type's virtio disk, none lost 15% of acks=all throughput (tuning.md)"
                        },
                    );
                    set_queue_attribute(row, roots, name, "scheduler", recommended)
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
                let row = row.current(&current).recommended(recommended).ok_if(
                    current == recommended,
                    "NVMe: ringbus's writes are already whole buffers; 2 skips every merge attempt (CPU on the shard's core) and nothing is lost",
                );
                set_queue_attribute(row, roots, name, "nomerges", recommended)
            }
        });

        // Where a request completes. With a hardware queue (and IRQ) per shard core a write
        // completes on the core that submitted it; with fewer, 1 completes on any core that
        // shares a cache with the submitter (on a small machine: the IRQ's core), 2 on the
        // submitter itself, 0 wherever the interrupt landed.
        let row = Row::new("disk", format!("{name} rq_affinity"));
        let shard_cores = cpus.shards.len().max(1);
        rows.push(match roots.read(&format!("{queue}/rq_affinity")) {
            Err(reason) => row.unknown(reason),
            Ok(current) if hardware_queues >= shard_cores && current != "0" => row
                .current(current)
                .recommended("1 or 2")
                .ok(format!("{hardware_queues} hardware queues for {shard_cores} shard cores: each write completes on the core that submitted it either way")),
            Ok(current) => {
                let recommended = "2";
                let row = row.current(&current).recommended(recommended).ok_if(
                    current == recommended,
                    format!("{hardware_queues} hardware queue(s) for {shard_cores} shard cores: otherwise a write's completion, and the kernel worker that converts its preallocated extents, run on another core (the IRQ's) and wait there behind whatever else runs on it; 2 runs them on the shard that submitted the write (large batches +40-70% on this machine type, tuning.md)"),
                );
                set_queue_attribute(row, roots, name, "rq_affinity", recommended)
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
        rows.push(irq::affinity_row(
            roots,
            "disk",
            name,
            &disk.dir,
            hardware_queues > 1,
            cpus,
        ));
    }
}

/// The fix of a row about a disk's request-queue attribute: write `value` to
/// /sys/block/NAME/queue/ATTRIBUTE now (what `apply` does), and a udev rule to keep it.
fn set_queue_attribute(row: Row, roots: &Roots, name: &str, attribute: &str, value: &str) -> Row {
    let file = format!("/sys/block/{name}/queue/{attribute}");
    row.fix(
        format!("echo {value} > {file}"),
        format!("udev rule: ACTION==\"add|change\", KERNEL==\"{name}\", ATTR{{queue/{attribute}}}=\"{value}\""),
    )
    .write(roots.path(&file), value)
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
