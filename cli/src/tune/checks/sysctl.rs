//! The `net` and `kernel` rows: network sysctls (listen backlogs, socket buffer maxima, busy
//! polling), softnet drops and squeezes, and whether io_uring is allowed.

use super::{Row, sysctl_path};
use crate::tune::probe::{self, Roots};

/// The broker's listen backlog; `net.core.somaxconn` silently caps it.
const LISTEN_BACKLOG: u64 = net::LISTEN_BACKLOG_MAX as u64;
/// Socket buffer autotuning maximum recommended for 10-100 Gbit/s links (the bandwidth-delay
/// product of 100 Gbit/s at 1 ms is 12.5 MB).
const SOCKET_BUFFER_BYTES_MAX: u64 = 16 << 20;
/// softnet squeezes are a warning when there is more than one per this many packets.
const SQUEEZES_PER_PACKETS: u64 = 1_000;

pub(super) fn rows(roots: &Roots, rows: &mut Vec<Row>) {
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
