//! `ringbus tune`: checks the disk, NIC, CPU and memory settings that matter to this broker
//! (`tune check`) and applies the runtime fixes (`tune apply`). This file owns the command
//! line and the output: the table and the JSON that scripts read. `probe.rs` reads the machine,
//! `checks/` judges each setting, `apply.rs` writes the fixes; tuning.md at the repository
//! root explains every recommendation and quotes the measurements behind it.
//!
//! Exit codes: `check` 0 when no row warns, 1 when one does (`n/a` and `unknown` rows never
//! fail); `apply` 0 when every write took, 1 when one failed, 2 when refused (not root, without
//! `--dry-run`); 2 for a bad command line. The /sys and /proc roots, the ethtool program and
//! the effective uid are injectable through hidden flags so that tests run on fixture trees.

mod apply;
mod checks;
mod probe;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use checks::{Report, Request, Status};
use clap::Subcommand;
use serde::Serialize;

/// `ringbus tune` subcommands.
#[derive(Subcommand)]
pub enum TuneCommand {
    /// Print every setting with its current and recommended value, status and fix.
    ///
    /// Reads /sys and /proc (and ethtool where installed); changes nothing, needs no root.
    /// Status: ok, warn (something to fix), n/a (does not apply here) or unknown (could not be
    /// read). Exits 0 when nothing warns, 1 when something does.
    ///
    /// Example: ringbus tune check --data-dir /var/lib/ringbus --iface eth0 --cores 1-7
    Check(CheckArgs),
    /// Apply the runtime fixes of every row that warns (as root), printing each change.
    ///
    /// Writes only settings under /sys and /proc/sys that take effect at once and can be
    /// undone (each is printed as `set PATH: OLD -> NEW` with its undo command); never boot
    /// parameters, mounts or ethtool changes, which it lists instead. Nothing persists across
    /// a reboot. --dry-run prints what it would do and works without root.
    ///
    /// Example: ringbus tune apply --dry-run --data-dir /var/lib/ringbus --iface eth0
    Apply(ApplyArgs),
}

/// What to check: the same flags for `check` and `apply`.
#[derive(clap::Args)]
pub struct MachineArgs {
    /// The broker's data directory (its disk, filesystem and mount are checked); if it does
    /// not exist yet, its nearest existing parent is.
    #[arg(long, default_value = "./ringbus-data")]
    data_dir: PathBuf,
    /// The network interface clients reach the broker on (NIC checks are skipped without it).
    #[arg(long)]
    iface: Option<String>,
    /// The broker's shard cores, as given to `ringbus serve --cores` (default: every online
    /// core). Cores outside this list are where IRQs should go.
    #[arg(long)]
    cores: Option<String>,
    /// Stand-in for /sys (tests use a fixture tree).
    #[arg(long, default_value = "/sys", hide = true)]
    sys_root: PathBuf,
    /// Stand-in for /proc (tests use a fixture tree).
    #[arg(long, default_value = "/proc", hide = true)]
    proc_root: PathBuf,
    /// The ethtool program to run (tests use a script).
    #[arg(long, default_value = "ethtool", hide = true)]
    ethtool: PathBuf,
}

/// `ringbus tune check` options.
#[derive(clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    machine: MachineArgs,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

/// `ringbus tune apply` options.
#[derive(clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    machine: MachineArgs,
    /// Print what would change without writing anything (needs no root).
    #[arg(long)]
    dry_run: bool,
    /// Use this as the effective uid instead of asking the kernel (tests check the refusal
    /// without dropping privileges).
    #[arg(long, hide = true)]
    assume_euid: Option<u32>,
}

/// Exit code of a refused `apply` and of a bad command line.
const EXIT_REFUSED: u8 = 2;

/// Runs `ringbus tune`.
pub fn run(command: TuneCommand) -> ExitCode {
    match command {
        TuneCommand::Check(args) => {
            let report = match check(&args.machine) {
                Ok(report) => report,
                Err(message) => return usage_error(&message),
            };
            let text = if args.json {
                to_json(&report)
            } else {
                to_table(&report)
            };
            print(&text);
            if report.count(Status::Warn) > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        TuneCommand::Apply(args) => {
            let euid = args.assume_euid.unwrap_or_else(|| {
                // SAFETY: geteuid has no preconditions, cannot fail, and touches no memory of
                // ours.
                unsafe { libc::geteuid() }
            });
            if !args.dry_run && euid != 0 {
                eprintln!(
                    "error: ringbus tune apply changes kernel settings and must run as root \
                     (effective uid is {euid}); nothing was changed. \
                     `ringbus tune apply --dry-run` shows the changes without root."
                );
                return ExitCode::from(EXIT_REFUSED);
            }
            let report = match check(&args.machine) {
                Ok(report) => report,
                Err(message) => return usage_error(&message),
            };
            let mut stdout = std::io::stdout().lock();
            let outcome = apply::apply(&report, args.dry_run, &mut stdout);
            let _ = stdout.flush();
            if outcome.failed > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_REFUSED)
}

/// Prints `text`, ignoring a closed stdout (`ringbus tune check | head`).
fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

fn check(machine: &MachineArgs) -> Result<Report, String> {
    let cores = match &machine.cores {
        Some(list) => Some(crate::cores::parse_cores(list)?.into_iter().collect()),
        None => None,
    };
    let roots = probe::Roots {
        sys: machine.sys_root.clone(),
        proc: machine.proc_root.clone(),
    };
    let ethtool = probe::Ethtool {
        program: machine.ethtool.clone(),
    };
    let request = Request {
        data_dir: machine.data_dir.clone(),
        iface: machine.iface.clone(),
        cores,
    };
    Ok(checks::check(&roots, &ethtool, &request))
}

/// The report as a table: facts, one line per row (status, area, setting, current,
/// recommended, fix), then the reasons of every row that is not ok, then a count.
fn to_table(report: &Report) -> String {
    let mut out = String::new();
    for (name, value) in &report.facts {
        let _ = writeln!(out, "{name}: {value}");
    }
    out.push('\n');
    let header = ["STATUS", "AREA", "SETTING", "CURRENT", "RECOMMENDED", "FIX"];
    let cells: Vec<[&str; 6]> = report
        .rows
        .iter()
        .map(|row| {
            [
                row.status.as_str(),
                row.area,
                &row.setting,
                &row.current,
                &row.recommended,
                &row.fix,
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for line in &cells {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for line in std::iter::once(&header).chain(&cells) {
        let mut text = String::new();
        for (index, cell) in line.iter().enumerate() {
            if index + 1 == line.len() {
                text.push_str(cell);
            } else {
                let pad = widths[index] - cell.chars().count();
                text.push_str(cell);
                text.push_str(&" ".repeat(pad + 2));
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    }
    let notes: Vec<_> = report
        .rows
        .iter()
        .filter(|row| row.status != Status::Ok)
        .collect();
    if !notes.is_empty() {
        out.push_str("\nnotes:\n");
        for row in notes {
            let _ = writeln!(
                out,
                "  {} {}: {}",
                row.status.as_str(),
                row.setting,
                row.why
            );
            if !row.persist.is_empty() {
                let _ = writeln!(out, "    persistent: {}", row.persist);
            }
        }
    }
    let _ = writeln!(
        out,
        "\n{} warn, {} ok, {} n/a, {} unknown (tuning.md explains each setting)",
        report.count(Status::Warn),
        report.count(Status::Ok),
        report.count(Status::NotApplicable),
        report.count(Status::Unknown)
    );
    out
}

/// The report as JSON:
/// `{"facts": {NAME: VALUE, ...}, "rows": [{"area", "setting", "status", "current",
/// "recommended", "fix", "persist", "why", "apply": [{"path", "value"}]}], "summary": {"ok",
/// "warn", "n/a", "unknown"}, "exit_code"}`, rows in the table's order.
fn to_json(report: &Report) -> String {
    let warn = report.count(Status::Warn);
    let document = ReportJson {
        facts: FactsJson(&report.facts),
        rows: report
            .rows
            .iter()
            .map(|row| RowJson {
                area: row.area,
                setting: &row.setting,
                status: row.status.as_str(),
                current: &row.current,
                recommended: &row.recommended,
                fix: &row.fix,
                persist: &row.persist,
                why: &row.why,
                apply: row
                    .writes
                    .iter()
                    .map(|write| WriteJson {
                        path: write.path.display().to_string(),
                        value: &write.value,
                    })
                    .collect(),
            })
            .collect(),
        summary: SummaryJson {
            ok: report.count(Status::Ok),
            warn,
            not_applicable: report.count(Status::NotApplicable),
            unknown: report.count(Status::Unknown),
        },
        exit_code: u8::from(warn > 0),
    };
    let mut json = serde_json::to_string_pretty(&document).expect("a report serializes");
    json.push('\n');
    json
}

/// The `--json` document.
#[derive(Serialize)]
struct ReportJson<'a> {
    facts: FactsJson<'a>,
    rows: Vec<RowJson<'a>>,
    summary: SummaryJson,
    exit_code: u8,
}

/// The facts as one object, in the table's order.
struct FactsJson<'a>(&'a [(String, String)]);

impl Serialize for FactsJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, value)| (name, value)))
    }
}

#[derive(Serialize)]
struct RowJson<'a> {
    area: &'a str,
    setting: &'a str,
    status: &'a str,
    current: &'a str,
    recommended: &'a str,
    fix: &'a str,
    persist: &'a str,
    why: &'a str,
    apply: Vec<WriteJson<'a>>,
}

#[derive(Serialize)]
struct WriteJson<'a> {
    path: String,
    value: &'a str,
}

#[derive(Serialize)]
struct SummaryJson {
    ok: usize,
    warn: usize,
    #[serde(rename = "n/a")]
    not_applicable: usize,
    unknown: usize,
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::checks::{Report, Row, Status, Write};
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let row = Row {
            area: "disk",
            setting: "a\"b\\c\n\u{1}".to_string(),
            current: "tcp_rmem\t4096".to_string(),
            recommended: String::new(),
            status: Status::Warn,
            fix: String::new(),
            persist: String::new(),
            why: String::new(),
            writes: vec![Write {
                path: PathBuf::from("/sys/x"),
                value: "v\"".to_string(),
            }],
        };
        let report = Report {
            facts: vec![("data \"dir\"".to_string(), "/d\tx".to_string())],
            rows: vec![row],
        };
        let text = to_json(&report);
        assert!(text.contains(r#""setting": "a\"b\\c\n\u0001""#), "{text}");
        assert!(text.contains(r#""current": "tcp_rmem\t4096""#), "{text}");
        let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(json["rows"][0]["setting"], "a\"b\\c\n\u{1}");
        assert_eq!(json["rows"][0]["current"], "tcp_rmem\t4096");
        assert_eq!(json["rows"][0]["apply"][0]["value"], "v\"");
        assert_eq!(json["facts"]["data \"dir\""], "/d\tx");
        assert_eq!(json["summary"]["warn"], 1);
        assert_eq!(json["summary"]["n/a"], 0);
        assert_eq!(json["exit_code"], 1);
    }
}
