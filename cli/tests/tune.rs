//! Goal: `ringbus tune check` judges each setting right, finds the disk under a data directory
//! by itself (through a partition or a device-mapper device), prints the same rows as a table
//! and as JSON, exits 0 when nothing is off and 1 when something is, never panics or fails on
//! a file it cannot read; `ringbus tune apply` prints each change as `OLD -> NEW`, writes
//! nothing with --dry-run, changes the files without it, and refuses without root.
//!
//! Method: each test lays out a fake /sys and /proc in a temp dir (a healthy 4-core machine
//! with one NVMe disk, then the one change the test is about) and runs the real binary against
//! it through the hidden `--sys-root`, `--proc-root`, `--ethtool` and `--assume-euid` flags.
//! The data directory is a real directory: the fixture maps its real device number (from
//! stat(2)) to the fake disk, as the kernel's /sys/dev/block does. One smoke test runs
//! `tune check` and `tune apply --dry-run` against this machine's real /sys and /proc.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use serde_json::Value;

/// Held while a process is spawned and while a script is written: a fork that happens while
/// another thread has a script open for writing would make exec'ing that script fail with
/// ETXTBSY.
static SPAWN: Mutex<()> = Mutex::new(());

const NVME: &str = "devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1";

/// A fake machine: `root/sys`, `root/proc`, and a real data directory `root/data`.
struct Fixture {
    root: tempfile::TempDir,
    /// Program run as ethtool (missing by default).
    ethtool: PathBuf,
}

impl Fixture {
    /// A healthy machine: 4 online cores, one NVMe disk under the data dir with scheduler
    /// none, XFS mounted noatime, every sysctl and limit as recommended.
    fn healthy() -> Fixture {
        let root = tempfile::tempdir().expect("temp dir");
        let ethtool = root.path().join("no-ethtool");
        let fixture = Fixture { root, ethtool };
        fs::create_dir_all(fixture.data_dir()).expect("data dir");
        fixture.nvme_disk(NVME, "0000:00:04.0", &[40, 41]);
        fixture.link(
            &format!("sys/dev/block/{}", fixture.device_number()),
            &format!("../../{NVME}"),
        );
        fixture.mountinfo("xfs", "/dev/nvme0n1", "rw,noatime");
        for (path, value) in [
            ("proc/sys/net/core/somaxconn", "4096"),
            ("proc/sys/net/ipv4/tcp_max_syn_backlog", "4096"),
            ("proc/sys/net/ipv4/tcp_rmem", "4096\t131072\t33554432"),
            ("proc/sys/net/ipv4/tcp_wmem", "4096\t16384\t16777216"),
            ("proc/sys/net/core/busy_read", "0"),
            ("proc/sys/net/core/busy_poll", "0"),
            ("proc/sys/net/core/netdev_max_backlog", "1000"),
            ("proc/sys/net/core/netdev_budget", "300"),
            (
                "proc/net/softnet_stat",
                "00000100 00000000 00000000\n00000200 00000000 00000000",
            ),
            ("proc/sys/kernel/io_uring_disabled", "0"),
            ("proc/sys/vm/swappiness", "1"),
            ("proc/sys/fs/nr_open", "1048576"),
            (
                "proc/meminfo",
                "MemTotal:       24684092 kB\nSwapTotal:       1048576 kB",
            ),
            (
                "proc/self/limits",
                "Limit                     Soft Limit           Hard Limit           Units\n\
                 Max open files            1048576              1048576              files\n\
                 Max locked memory         unlimited            unlimited            bytes",
            ),
            (
                "proc/self/status",
                "Name:\tringbus\nCapEff:\t0000000000000000",
            ),
            ("sys/devices/system/cpu/online", "0-3"),
            ("sys/devices/system/cpu/isolated", ""),
            ("sys/devices/system/cpu/smt/control", "off"),
            (
                "sys/devices/system/cpu/cpufreq/policy0/scaling_governor",
                "performance",
            ),
            ("sys/devices/system/cpu/cpufreq/boost", "1"),
            (
                "sys/devices/system/clocksource/clocksource0/current_clocksource",
                "tsc",
            ),
            (
                "sys/devices/system/clocksource/clocksource0/available_clocksource",
                "tsc hpet acpi_pm",
            ),
            ("sys/devices/system/node/node0/cpulist", "0-3"),
            (
                "sys/kernel/mm/transparent_hugepage/enabled",
                "always [madvise] never",
            ),
            (
                "sys/kernel/mm/transparent_hugepage/defrag",
                "always defer defer+madvise [madvise] never",
            ),
        ] {
            fixture.file(path, value);
        }
        for cpu in 0..4 {
            let base = format!("sys/devices/system/cpu/cpu{cpu}");
            fixture.file(
                &format!("{base}/topology/thread_siblings_list"),
                &cpu.to_string(),
            );
            for (state, name, latency, disabled) in [
                ("state0", "POLL", "0", "0"),
                ("state1", "C1", "2", "0"),
                ("state2", "C6", "100", "1"),
            ] {
                fixture.file(&format!("{base}/cpuidle/{state}/name"), name);
                fixture.file(&format!("{base}/cpuidle/{state}/latency"), latency);
                fixture.file(&format!("{base}/cpuidle/{state}/disable"), disabled);
            }
        }
        fixture
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    fn data_dir(&self) -> PathBuf {
        self.path("data")
    }

    /// `MAJ:MIN` of the data dir, as the kernel would name it under /sys/dev/block.
    fn device_number(&self) -> String {
        let dev = fs::metadata(self.data_dir()).expect("stat data dir").dev();
        format!("{}:{}", libc::major(dev), libc::minor(dev))
    }

    fn file(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, text).expect("write fixture file");
    }

    fn read(&self, relative: &str) -> String {
        fs::read_to_string(self.path(relative)).expect("read fixture file")
    }

    fn link(&self, relative: &str, target: &str) {
        let path = self.path(relative);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let _ = fs::remove_file(&path);
        symlink(target, &path).expect("symlink");
    }

    /// An NVMe-like disk at `sys/DIR` (two hardware queues, IRQs on its PCI function), linked
    /// from sys/block.
    fn nvme_disk(&self, dir: &str, pci: &str, irqs: &[u32]) {
        let name = Path::new(dir)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        for (attr, value) in [
            ("scheduler", "[none] mq-deadline kyber"),
            ("nomerges", "2"),
            ("rq_affinity", "2"),
            ("rotational", "0"),
            ("write_cache", "write back"),
            ("fua", "1"),
            ("logical_block_size", "512"),
            ("physical_block_size", "4096"),
            ("discard_max_bytes", "2199023255040"),
        ] {
            self.file(&format!("sys/{dir}/queue/{attr}"), value);
        }
        fs::create_dir_all(self.path(&format!("sys/{dir}/mq/0"))).unwrap();
        fs::create_dir_all(self.path(&format!("sys/{dir}/mq/1"))).unwrap();
        for (cpu, irq) in irqs.iter().enumerate() {
            self.file(
                &format!("sys/devices/pci0000:00/{pci}/msi_irqs/{irq}"),
                "msix",
            );
            self.file(
                &format!("proc/irq/{irq}/effective_affinity_list"),
                &cpu.to_string(),
            );
            self.file(
                &format!("proc/irq/{irq}/smp_affinity_list"),
                &cpu.to_string(),
            );
        }
        self.link(&format!("sys/block/{name}"), &format!("../{dir}"));
    }

    fn mountinfo(&self, fstype: &str, source: &str, options: &str) {
        self.file(
            "proc/self/mountinfo",
            &format!(
                "1 0 0:1 / / {options} - {fstype} {source} rw\n22 1 0:21 / /proc rw - proc proc rw\n"
            ),
        );
    }

    /// Writes an executable script and makes it the ethtool this fixture runs.
    fn fake_ethtool(&mut self, script: &str) {
        let path = self.path("ethtool");
        let _guard = SPAWN.lock().unwrap_or_else(|poison| poison.into_inner());
        fs::write(&path, script).expect("write script");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        self.ethtool = path;
    }

    /// Runs `ringbus tune SUBCOMMAND` against this fixture, then `extra` arguments.
    fn run(&self, subcommand: &str, extra: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringbus"));
        command
            .args(["tune", subcommand, "--sys-root"])
            .arg(self.path("sys"))
            .arg("--proc-root")
            .arg(self.path("proc"))
            .arg("--ethtool")
            .arg(&self.ethtool)
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(extra);
        spawn(&mut command)
    }
}

fn spawn(command: &mut Command) -> Output {
    let child = {
        let _guard = SPAWN.lock().unwrap_or_else(|poison| poison.into_inner());
        command
            .env("RINGBUS_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ringbus")
    };
    child.wait_with_output().expect("ringbus finishes")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The table line of the row named `setting` (`STATUS  AREA  SETTING  CURRENT ...`).
fn row<'a>(table: &'a str, setting: &str) -> &'a str {
    table
        .lines()
        .find(|line| {
            let mut words = line
                .split("  ")
                .filter(|w| !w.trim().is_empty())
                .map(str::trim);
            words.nth(2) == Some(setting)
        })
        .unwrap_or_else(|| panic!("no row {setting:?} in\n{table}"))
}

/// The status word of the row named `setting`.
fn status<'a>(table: &'a str, setting: &str) -> &'a str {
    row(table, setting).split_whitespace().next().unwrap()
}

/// Asserts that `setting`'s row warns and offers `fix`.
fn assert_warns_with_fix(table: &str, setting: &str, fix: &str) {
    let line = row(table, setting);
    assert!(line.starts_with("warn"), "{table}");
    assert!(line.contains(fix), "{line}");
}

/// The `--json` output, parsed.
fn parse_json(output: &Output) -> Value {
    let text = stdout(output);
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

#[test]
fn healthy_machine_is_all_ok_and_exits_0() {
    let fixture = Fixture::healthy();
    let output = fixture.run("check", &[]);
    let table = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(table.contains("\n0 warn,"), "{table}");
    assert_eq!(status(&table, "nvme0n1 scheduler"), "ok");
    assert_eq!(status(&table, "vm.swappiness"), "ok");
}

#[test]
fn nvme_with_mq_deadline_warns_with_the_fix_and_exits_1() {
    let fixture = Fixture::healthy();
    fixture.file(
        &format!("sys/{NVME}/queue/scheduler"),
        "none [mq-deadline] kyber",
    );
    let output = fixture.run("check", &[]);
    let table = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let line = row(&table, "nvme0n1 scheduler");
    assert!(line.starts_with("warn"), "{line}");
    assert!(line.contains("mq-deadline"), "{line}");
    assert!(
        line.contains("echo none > /sys/block/nvme0n1/queue/scheduler"),
        "{line}"
    );
    assert!(
        table.contains("\n1 warn,"),
        "only the scheduler is off:\n{table}"
    );
}

#[test]
fn nvme_with_none_is_ok() {
    let fixture = Fixture::healthy();
    fixture.file(
        &format!("sys/{NVME}/queue/scheduler"),
        "[none] mq-deadline kyber",
    );
    let output = fixture.run("check", &[]);
    let line = row(&stdout(&output), "nvme0n1 scheduler").to_string();
    assert!(line.starts_with("ok"), "{line}");
    assert!(!line.contains("echo"), "no fix for an ok row: {line}");
}

#[test]
fn single_queue_virtio_disk_keeps_mq_deadline() {
    let fixture = Fixture::healthy();
    // A virtio disk: one hardware queue, the virtio_blk driver, rotational as virtio reports.
    let vda = "devices/pci0000:00/0000:00:02.0/virtio1/block/vda";
    fixture.nvme_disk(vda, "0000:00:02.0", &[36]);
    fs::remove_dir(fixture.path(&format!("sys/{vda}/mq/1"))).unwrap();
    fixture.file(&format!("sys/{vda}/queue/rotational"), "1");
    fixture.file(&format!("sys/{vda}/queue/nomerges"), "0");
    fixture.file(&format!("sys/{vda}/queue/rq_affinity"), "1");
    fixture.link(
        &format!("sys/{vda}/device/driver"),
        "../../../../../bus/virtio/drivers/virtio_blk",
    );
    fixture.link(
        &format!("sys/dev/block/{}", fixture.device_number()),
        &format!("../../{vda}"),
    );
    fixture.file(
        &format!("sys/{vda}/queue/scheduler"),
        "[none] mq-deadline kyber",
    );
    let table = stdout(&fixture.run("check", &[]));
    assert_warns_with_fix(
        &table,
        "vda scheduler",
        "echo mq-deadline > /sys/block/vda/queue/scheduler",
    );
    assert_eq!(status(&table, "vda nomerges"), "ok");
    // One IRQ: completions belong on the submitting core (tuning.md, "Disk IRQ affinity").
    assert_warns_with_fix(
        &table,
        "vda rq_affinity",
        "echo 2 > /sys/block/vda/queue/rq_affinity",
    );
    fixture.file(
        &format!("sys/{vda}/queue/scheduler"),
        "none [mq-deadline] kyber",
    );
    fixture.file(&format!("sys/{vda}/queue/rq_affinity"), "2");
    let output = fixture.run("check", &[]);
    assert_eq!(status(&stdout(&output), "vda scheduler"), "ok");
    assert_eq!(status(&stdout(&output), "vda rq_affinity"), "ok");
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
}

#[test]
fn rq_affinity_is_free_only_with_a_queue_per_shard_core() {
    let fixture = Fixture::healthy();
    fixture.file(&format!("sys/{NVME}/queue/rq_affinity"), "1");
    // Two hardware queues for more shard cores (every core of the fixture): 2 is needed.
    let table = stdout(&fixture.run("check", &[]));
    assert_warns_with_fix(
        &table,
        "nvme0n1 rq_affinity",
        "echo 2 > /sys/block/nvme0n1/queue/rq_affinity",
    );
    // A queue per shard core: the completion is on the submitter either way.
    let table = stdout(&fixture.run("check", &["--cores", "0-1"]));
    assert_eq!(status(&table, "nvme0n1 rq_affinity"), "ok", "{table}");
    // 0 completes wherever the interrupt landed, queues or not.
    fixture.file(&format!("sys/{NVME}/queue/rq_affinity"), "0");
    let table = stdout(&fixture.run("check", &["--cores", "0-1"]));
    assert!(
        row(&table, "nvme0n1 rq_affinity").starts_with("warn"),
        "{table}"
    );
}

#[test]
fn nvme_with_merges_on_warns() {
    let fixture = Fixture::healthy();
    fixture.file(&format!("sys/{NVME}/queue/nomerges"), "0");
    let output = fixture.run("check", &[]);
    assert_warns_with_fix(
        &stdout(&output),
        "nvme0n1 nomerges",
        "echo 2 > /sys/block/nvme0n1/queue/nomerges",
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn thp_always_warns_and_never_is_ok() {
    let fixture = Fixture::healthy();
    let thp = "sys/kernel/mm/transparent_hugepage/enabled";
    fixture.file(thp, "[always] madvise never");
    let table = stdout(&fixture.run("check", &[]));
    assert!(row(&table, "THP enabled").starts_with("warn"), "{table}");
    fixture.file(thp, "always madvise [never]");
    let table = stdout(&fixture.run("check", &[]));
    assert_eq!(status(&table, "THP enabled"), "ok");
}

#[test]
fn one_setting_off_turns_exit_0_into_1() {
    let fixture = Fixture::healthy();
    assert_eq!(fixture.run("check", &[]).status.code(), Some(0));
    fixture.file("proc/sys/vm/swappiness", "60");
    let output = fixture.run("check", &[]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert_eq!(status(&stdout(&output), "vm.swappiness"), "warn");
}

#[test]
fn json_has_the_same_rows_as_the_table() {
    let fixture = Fixture::healthy();
    fixture.file(
        &format!("sys/{NVME}/queue/scheduler"),
        "none [mq-deadline] kyber",
    );
    fixture.file(&format!("sys/{NVME}/queue/discard_max_bytes"), "0");
    let table = stdout(&fixture.run("check", &[]));
    let output = fixture.run("check", &["--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let json = parse_json(&output);
    let rows: Vec<(&str, &str)> = json["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            (
                row["setting"].as_str().expect("setting"),
                row["status"].as_str().expect("status"),
            )
        })
        .collect();
    let table_rows = table
        .lines()
        .skip_while(|line| !line.starts_with("STATUS"))
        .skip(1)
        .take_while(|line| !line.is_empty())
        .count();
    assert_eq!(rows.len(), table_rows, "{json}\n{table}");
    for (setting, row_status) in &rows {
        assert_eq!(status(&table, setting), *row_status, "{setting}");
    }
    assert!(rows.contains(&("nvme0n1 scheduler", "warn")));
    assert!(rows.contains(&("nvme0n1 TRIM", "n/a")));
    let warns = rows.iter().filter(|(_, s)| *s == "warn").count();
    assert_eq!(json["summary"]["warn"], warns, "{json}");
    assert_eq!(json["exit_code"], 1, "{json}");
    let scheduler = json["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|row| row["setting"] == "nvme0n1 scheduler")
        .expect("the scheduler row");
    let apply = scheduler["apply"].as_array().expect("apply");
    assert_eq!(apply.len(), 1, "{scheduler}");
    assert!(
        apply[0]["path"]
            .as_str()
            .is_some_and(|path| path.ends_with("queue/scheduler")),
        "{scheduler}"
    );
    assert_eq!(apply[0]["value"], "none", "{scheduler}");
    for field in ["area", "current", "recommended", "fix", "persist", "why"] {
        assert!(scheduler[field].is_string(), "{field} in {scheduler}");
    }
    for field in ["ok", "n/a", "unknown"] {
        assert!(json["summary"][field].is_u64(), "{field} in {json}");
    }
    assert!(json["facts"]["shard cores"].is_string(), "{json}");
}

#[test]
fn device_is_found_through_a_partition() {
    let fixture = Fixture::healthy();
    let partition = format!("{NVME}/nvme0n1p1");
    fixture.file(&format!("sys/{partition}/partition"), "1");
    fixture.file(&format!("sys/{partition}/start"), "2048");
    fixture.file(&format!("sys/{partition}/alignment_offset"), "0");
    fixture.link(
        &format!("sys/dev/block/{}", fixture.device_number()),
        &format!("../../{partition}"),
    );
    fixture.mountinfo("xfs", "/dev/nvme0n1p1", "rw,noatime");
    let output = fixture.run("check", &[]);
    let table = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(
        table.contains("devices: nvme0n1p1 (partition) -> nvme0n1 (disk)"),
        "{table}"
    );
    assert_eq!(status(&table, "nvme0n1 scheduler"), "ok");
    assert!(row(&table, "nvme0n1p1 alignment").contains("starts at byte 1048576"));
}

#[test]
fn misaligned_partition_warns() {
    let fixture = Fixture::healthy();
    let partition = format!("{NVME}/nvme0n1p1");
    fixture.file(&format!("sys/{partition}/partition"), "1");
    fixture.file(&format!("sys/{partition}/start"), "63");
    fixture.link(
        &format!("sys/dev/block/{}", fixture.device_number()),
        &format!("../../{partition}"),
    );
    let output = fixture.run("check", &[]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert_eq!(status(&stdout(&output), "nvme0n1p1 alignment"), "warn");
}

#[test]
fn device_mapper_leads_to_every_disk_below_it() {
    let fixture = Fixture::healthy();
    let second = "devices/pci0000:00/0000:00:05.0/nvme/nvme1/nvme1n1";
    fixture.nvme_disk(second, "0000:00:05.0", &[50, 51]);
    fixture.file(
        &format!("sys/{second}/queue/scheduler"),
        "none [mq-deadline]",
    );
    fixture.file("sys/devices/virtual/block/dm-0/dm/name", "vg-data");
    fixture.link(
        "sys/devices/virtual/block/dm-0/slaves/nvme0n1",
        &format!("../../../../../{NVME}"),
    );
    fixture.link(
        "sys/devices/virtual/block/dm-0/slaves/nvme1n1",
        &format!("../../../../../{second}"),
    );
    fixture.link(
        &format!("sys/dev/block/{}", fixture.device_number()),
        "../../devices/virtual/block/dm-0",
    );
    let output = fixture.run("check", &[]);
    let table = stdout(&output);
    assert!(
        table.contains("devices: dm-0 (device-mapper) -> nvme0n1 (disk) -> nvme1n1 (disk)"),
        "{table}"
    );
    assert_eq!(status(&table, "nvme0n1 scheduler"), "ok");
    assert_eq!(status(&table, "nvme1n1 scheduler"), "warn");
    assert!(row(&table, "dm-0 device-mapper").contains("vg-data"));
}

#[test]
fn unreadable_file_is_unknown_with_its_reason() {
    let fixture = Fixture::healthy();
    fs::remove_file(fixture.path(&format!("sys/{NVME}/queue/scheduler"))).unwrap();
    fs::remove_file(fixture.path("proc/self/limits")).unwrap();
    let output = fixture.run("check", &[]);
    let table = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "unknown is not a failure: {}",
        describe(&output)
    );
    assert_eq!(status(&table, "nvme0n1 scheduler"), "unknown");
    assert_eq!(status(&table, "open files"), "unknown");
    let note = table
        .lines()
        .find(|line| line.trim_start().starts_with("unknown nvme0n1 scheduler:"))
        .unwrap_or_else(|| panic!("a note for the scheduler in\n{table}"));
    assert!(
        note.contains("cannot read") && note.contains("queue/scheduler"),
        "{note}"
    );
}

#[test]
fn data_dir_without_a_block_device_is_not_applicable() {
    let fixture = Fixture::healthy();
    fs::remove_file(fixture.path(&format!("sys/dev/block/{}", fixture.device_number()))).unwrap();
    fixture.mountinfo("tmpfs", "tmpfs", "rw");
    let output = fixture.run("check", &[]);
    let table = stdout(&output);
    assert_eq!(status(&table, "data dir device"), "n/a");
    // tmpfs has no O_DIRECT: that is off.
    assert_eq!(status(&table, "/ filesystem"), "warn");
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
}

#[test]
fn single_queue_disk_irq_on_a_shard_core_warns_when_cores_are_left_free() {
    let fixture = Fixture::healthy();
    fs::remove_dir(fixture.path(&format!("sys/{NVME}/mq/1"))).unwrap();
    // IRQ 40 on core 0, 41 on core 1; shards on 1-3 leave core 0 free.
    let output = fixture.run("check", &["--cores", "1-3"]);
    let table = stdout(&output);
    assert_warns_with_fix(
        &table,
        "nvme0n1 IRQ affinity",
        "echo 0 > /proc/irq/41/smp_affinity_list",
    );
    let line = row(&table, "nvme0n1 IRQ affinity");
    assert!(
        !line.contains("/proc/irq/40/"),
        "IRQ 40 is already off the shards: {line}"
    );
    // The why says what else must stay off that core: the kernel worker that finishes the
    // shards' writes into preallocated extents runs there.
    let json = stdout(&fixture.run("check", &["--cores", "1-3", "--json"]));
    assert!(json.contains("preallocated extents"), "{json}");
}

#[test]
fn apply_dry_run_prints_old_and_new_and_writes_nothing() {
    let fixture = Fixture::healthy();
    fixture.file(
        &format!("sys/{NVME}/queue/scheduler"),
        "none [mq-deadline] kyber",
    );
    fixture.file("proc/sys/vm/swappiness", "60");
    // --dry-run needs no root.
    let output = fixture.run("apply", &["--dry-run", "--assume-euid", "1000"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let scheduler = fixture.path("sys/block/nvme0n1/queue/scheduler");
    assert!(
        text.contains(&format!(
            "would set {}: mq-deadline -> none",
            scheduler.display()
        )),
        "{text}"
    );
    assert!(text.contains("proc/sys/vm/swappiness: 60 -> 1"), "{text}");
    assert_eq!(
        fixture.read(&format!("sys/{NVME}/queue/scheduler")),
        "none [mq-deadline] kyber"
    );
    assert_eq!(fixture.read("proc/sys/vm/swappiness"), "60");
}

#[test]
fn apply_changes_the_fixture_prints_old_and_new_and_check_then_passes() {
    let fixture = Fixture::healthy();
    fixture.file(
        &format!("sys/{NVME}/queue/scheduler"),
        "none [mq-deadline] kyber",
    );
    fixture.file("proc/sys/net/ipv4/tcp_wmem", "4096\t16384\t4194304");
    assert_eq!(fixture.run("check", &[]).status.code(), Some(1));
    let output = fixture.run("apply", &["--assume-euid", "0"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(
        text.contains("queue/scheduler: mq-deadline -> none"),
        "{text}"
    );
    assert!(text.contains("undo: echo 'mq-deadline' > "), "{text}");
    assert!(
        text.contains("tcp_wmem: 4096 16384 4194304 -> 4096 16384 16777216"),
        "{text}"
    );
    assert_eq!(fixture.read(&format!("sys/{NVME}/queue/scheduler")), "none");
    assert_eq!(
        fixture.read("proc/sys/net/ipv4/tcp_wmem"),
        "4096 16384 16777216"
    );
    let after = fixture.run("check", &[]);
    assert_eq!(after.status.code(), Some(0), "{}", describe(&after));
}

#[test]
fn apply_refuses_without_root_and_changes_nothing() {
    let fixture = Fixture::healthy();
    fixture.file(
        &format!("sys/{NVME}/queue/scheduler"),
        "none [mq-deadline] kyber",
    );
    let output = fixture.run("apply", &["--assume-euid", "1000"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("must run as root"), "{stderr}");
    assert!(stdout(&output).is_empty(), "{}", describe(&output));
    assert_eq!(
        fixture.read(&format!("sys/{NVME}/queue/scheduler")),
        "none [mq-deadline] kyber"
    );
}

/// A NIC with 8 queues possible and 2 set, on PCI function 0000:00:06.0, and an ethtool
/// script that answers for it.
fn fixture_with_nic() -> Fixture {
    let mut fixture = Fixture::healthy();
    let dev = "devices/pci0000:00/0000:00:06.0/net/eth0";
    for queue in ["rx-0", "rx-1", "tx-0", "tx-1"] {
        fs::create_dir_all(fixture.path(&format!("sys/{dev}/queues/{queue}"))).unwrap();
    }
    fixture.file(&format!("sys/{dev}/queues/rx-0/rps_cpus"), "0");
    fixture.file(
        &format!("sys/{dev}/queues/rx-1/rps_cpus"),
        "00000000,00000000",
    );
    fixture.file(&format!("sys/{dev}/queues/tx-0/xps_cpus"), "5");
    fixture.file(&format!("sys/{dev}/queues/tx-1/xps_cpus"), "a");
    fixture.file(&format!("sys/{dev}/type"), "1");
    fixture.file(&format!("sys/{dev}/mtu"), "1500");
    fixture.file(&format!("sys/{dev}/statistics/rx_dropped"), "0");
    fixture.link(&format!("sys/{dev}/device"), "../../../0000:00:06.0");
    fixture.file("sys/devices/pci0000:00/0000:00:06.0/msi_irqs/60", "msix");
    fixture.file("proc/irq/60/effective_affinity_list", "2");
    fixture.link("sys/class/net/eth0", &format!("../../{dev}"));
    fixture.fake_ethtool(
        "#!/bin/sh\n\
         case \"$1\" in\n\
         -l) printf 'Channel parameters for eth0:\\nPre-set maximums:\\nRX:\\t\\tn/a\\nCombined:\\t8\\nCurrent hardware settings:\\nRX:\\t\\tn/a\\nCombined:\\t2\\n' ;;\n\
         -x) printf 'RX flow hash indirection table for eth0 with 2 RX ring(s):\\n    0:      0     1     0     1\\n' ;;\n\
         -c) printf 'Coalesce parameters for eth0:\\nAdaptive RX: on  TX: on\\nrx-usecs: 8\\n' ;;\n\
         -g) printf 'Ring parameters for eth0:\\nPre-set maximums:\\nRX:\\t\\t4096\\nCurrent hardware settings:\\nRX:\\t\\t1024\\n' ;;\n\
         -k) printf 'Features for eth0:\\ngeneric-receive-offload: on\\ngeneric-segmentation-offload: on\\ntcp-segmentation-offload: off\\n' ;;\n\
         *) echo \"unexpected $*\" >&2; exit 3 ;;\n\
         esac\n",
    );
    fixture
}

#[test]
fn nic_with_fewer_queues_than_shards_warns_through_ethtool() {
    let fixture = fixture_with_nic();
    let output = fixture.run("check", &["--iface", "eth0"]);
    let table = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let queues = row(&table, "eth0 queues");
    assert!(
        queues.starts_with("warn") && queues.contains("2 (max 8)"),
        "{table}"
    );
    assert!(queues.contains("ethtool -L eth0 combined 4"), "{queues}");
    assert_eq!(status(&table, "eth0 RSS indirection"), "ok");
    assert_eq!(status(&table, "eth0 XPS"), "ok");
    assert_eq!(status(&table, "eth0 RPS"), "ok");
    assert_eq!(status(&table, "eth0 coalescing"), "ok");
    assert_eq!(status(&table, "eth0 rx ring"), "ok");
    let offloads = row(&table, "eth0 offloads");
    assert!(
        offloads.starts_with("warn") && offloads.contains("ethtool -K eth0 tso on"),
        "{offloads}"
    );
    // Every core runs a shard: the NIC IRQ has nowhere else to go.
    assert_eq!(status(&table, "eth0 IRQ affinity"), "ok");
}

#[test]
fn nic_without_ethtool_is_unknown_not_a_failure() {
    let mut fixture = fixture_with_nic();
    fixture.ethtool = fixture.path("no-ethtool");
    // Shards on 0-1, isolated, so that the only rows left to judge are the NIC's.
    fixture.file("sys/devices/system/cpu/isolated", "0-1");
    let output = fixture.run("check", &["--iface", "eth0", "--cores", "0-1"]);
    let table = stdout(&output);
    // Two rx queues for two shards: enough, judged from sysfs alone.
    assert_eq!(status(&table, "eth0 queues"), "ok", "{table}");
    assert_eq!(status(&table, "eth0 offloads"), "unknown");
    assert!(table.contains("ethtool is not installed"), "{table}");
    // Shards on 0-1 leave 2-3 free, and the NIC IRQ is on core 2: fine.
    assert_eq!(status(&table, "eth0 IRQ affinity"), "ok");
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
}

#[test]
fn no_interface_named_skips_the_nic_checks() {
    let fixture = Fixture::healthy();
    let output = fixture.run("check", &[]);
    let table = stdout(&output);
    assert_eq!(status(&table, "interface"), "n/a");
    assert!(!table.contains("eth0"), "{table}");
}

#[test]
fn bad_cores_is_a_usage_error() {
    let fixture = Fixture::healthy();
    let output = fixture.run("check", &["--cores", "3-1"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
}

#[test]
fn real_machine_check_and_dry_run_exit_0_or_1_and_print_the_table() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = spawn(
        Command::new(env!("CARGO_BIN_EXE_ringbus"))
            .args(["tune", "check", "--iface", "lo", "--data-dir"])
            .arg(dir.path()),
    );
    let table = stdout(&output);
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "{}",
        describe(&output)
    );
    assert!(
        table.contains("STATUS") && table.contains("RECOMMENDED"),
        "{table}"
    );
    assert!(table.contains("net.core.somaxconn"), "{table}");
    let json = spawn(
        Command::new(env!("CARGO_BIN_EXE_ringbus"))
            .args(["tune", "check", "--json", "--iface", "lo", "--data-dir"])
            .arg(dir.path()),
    );
    assert_eq!(
        json.status.code(),
        output.status.code(),
        "{}",
        describe(&json)
    );
    let code = json.status.code().unwrap();
    assert_eq!(parse_json(&json)["exit_code"], code, "{}", describe(&json));
    let dry_run = spawn(
        Command::new(env!("CARGO_BIN_EXE_ringbus"))
            .args(["tune", "apply", "--dry-run", "--data-dir"])
            .arg(dir.path()),
    );
    assert!(
        matches!(dry_run.status.code(), Some(0 | 1)),
        "{}",
        describe(&dry_run)
    );
    assert!(
        !stdout(&dry_run).contains("\nset "),
        "a dry run sets nothing: {}",
        describe(&dry_run)
    );
}
