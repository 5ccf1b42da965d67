//! The `nic` rows of the interface named with `--iface`: queues, RSS indirection, IRQs, RPS,
//! XPS, coalescing, rings, offloads and MTU (read from sysfs and `ethtool`).

use std::collections::BTreeSet;

use super::{Cpus, Row, irq};
use crate::cores;
use crate::tune::probe::{self, Ethtool, EthtoolError, Roots};

pub(super) fn rows(
    roots: &Roots,
    ethtool: &Ethtool,
    iface: &str,
    cpus: &Cpus,
    rows: &mut Vec<Row>,
) {
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
        Ok(dir) => irq::affinity_row(roots, "nic", iface, &dir, false, cpus),
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
            .current(cores::format_cpu_list(&current))
            .recommended(cores::format_cpu_list(&recommended))
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
