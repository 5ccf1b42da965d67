//! The `cpu` rows: frequency governor, boost, idle states and isolation of the shard cores, the
//! clocksource, SMT siblings and NUMA placement.

use std::collections::BTreeSet;

use super::{Cpus, Row};
use crate::cores;
use crate::tune::probe::Roots;

/// Idle states slower to leave than this are disabled on shard cores for latency.
const IDLE_EXIT_LATENCY_US_MAX: u64 = 10;

pub(super) fn rows(roots: &Roots, cpus: &Cpus, cores_named: bool, rows: &mut Vec<Row>) {
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
                format!("cpupower -c {} idle-set -D {IDLE_EXIT_LATENCY_US_MAX}", cores::format_cpu_list(&cpus.shards)),
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
        .and_then(|t| cores::parse_cpu_list(&t))
        .unwrap_or_default();
    let nohz = roots
        .read("/sys/devices/system/cpu/nohz_full")
        .ok()
        .and_then(|t| cores::parse_cpu_list(&t).ok())
        .unwrap_or_default();
    let shards = cores::format_cpu_list(&cpus.shards);
    rows.push(if cpus.free.is_empty() {
        row.current(format!("isolated {}, nohz_full {}", cores::format_cpu_list(&isolated), cores::format_cpu_list(&nohz)))
            .not_applicable(if cores_named {
                "--cores names every online core: isolating them all would leave no core for the kernel"
            } else {
                "the shards take every online core (no --cores): isolation needs cores left for the kernel; pass --cores to check a split"
            })
    } else {
        let isolated_all = cpus.shards.is_subset(&isolated) || cpus.shards.is_subset(&nohz);
        row.current(format!("isolated {}, nohz_full {}", cores::format_cpu_list(&isolated), cores::format_cpu_list(&nohz)))
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
            .and_then(|t| cores::parse_cpu_list(&t))
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
                .and_then(|t| cores::parse_cpu_list(&t))
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
                format!("ringbus serve --cores {}", nodes.first().map(|(_, c)| cores::format_cpu_list(c)).unwrap_or_default()),
                "numactl --cpunodebind=N --membind=N in the unit, one broker per node",
            )
    });
}
