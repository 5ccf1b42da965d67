//! The `memory` and `limits` rows: transparent huge pages, swappiness, and the locked-memory
//! and open-files limits the shards need.

use super::{Cpus, Row, sysctl_path};
use crate::tune::probe::{self, Roots};

/// `ringbus serve --connections-max` default: connections each shard accepts at once.
const CONNECTIONS_PER_SHARD: u64 = 10_000;
/// File descriptors per shard beyond connections: segment and index files, metadata, io_uring.
const FILES_PER_SHARD: u64 = 4_096;
/// Registered io_uring buffer memory per shard (`io_memory` in broker/src/server.rs) plus
/// glommio's three rings: what RLIMIT_MEMLOCK must cover per shard without CAP_IPC_LOCK.
const MEMLOCK_BYTES_PER_SHARD: u64 = broker::server::IO_MEMORY_BYTES as u64 + (512 << 10);
/// CAP_IPC_LOCK: lets a process lock (and io_uring register) memory beyond RLIMIT_MEMLOCK.
const CAP_IPC_LOCK: u32 = 14;

pub(super) fn rows(roots: &Roots, cpus: &Cpus, rows: &mut Vec<Row>) {
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
                    "under madvise the broker gets huge pages only where it asks (its DMA buffer arena, allocated once at start); always gave it huge pages everywhere and tripled the acks=all p99 at a fixed rate on this machine type (tuning.md); never also works, without the arena's huge pages",
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
