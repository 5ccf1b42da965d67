//! The IRQ affinity row of a device (a disk or a NIC): where its interrupts land against the
//! shard cores.

use std::collections::BTreeSet;
use std::path::Path;

use super::{Cpus, Row};
use crate::cores;
use crate::tune::probe::{self, Roots};

/// IRQs listed one by one in a row's current value; more are summarised.
const IRQS_LISTED_MAX: usize = 8;

/// Where the IRQs of a device land, against the shard cores.
/// `managed`: a multi-queue block device, whose per-queue IRQs the kernel pins to the cores
/// that submit on each queue.
pub(super) fn affinity_row(
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
                placements.push(format!("{irq}:{}", cores::format_cpu_list(&irq_cpus)));
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
            cores::format_cpu_list(&targets)
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
    let free = cores::format_cpu_list(&cpus.free);
    // A disk write into preallocated (unwritten) extents is finished by a kernel worker on the
    // interrupt's core, and the shard sees it complete only once that worker has run
    // (tuning.md, "Disk IRQ affinity": moving a busy load generator off it gained up to 42%).
    let keep_free = if area == "disk" {
        " Keep them free of busy processes (clients, load generators): a kernel worker there finishes each write into the segments' preallocated extents, and the shard waits for it."
    } else {
        ""
    };
    let mut row = row
        .recommended(format!("cores {free} (not shards)"))
        .ok_if(
            on_shards.is_empty(),
            format!("cores {free} run no shard: IRQ and softirq work there does not preempt a shard's event loop.{keep_free}{balancer}"),
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
