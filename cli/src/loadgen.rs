//! `ringbus loadgen`: the load generator of the `loadgen` crate, run against a broker.
//!
//! Output: a live line per second on stderr, the final table on stdout, the JSON with
//! `--json FILE` (format in the `loadgen` crate's `Report::to_json`). Exits non-zero when a
//! connection fails or any message failed, was lost or was duplicated.

/// The `ringbus loadgen` options: the `loadgen` crate's, and the cores to run on.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadgenArgs {
    #[command(flatten)]
    load: loadgen::Args,
    /// Cores for the load's executors, one executor per core, e.g. 1 or 2-3,5.
    #[arg(long, default_value = "0")]
    cores: String,
}

/// Runs the load described by `args`.
pub fn run(args: LoadgenArgs) -> Result<(), String> {
    let cores = crate::cores::parse_cores(&args.cores)?;
    loadgen::run_cli(args.load, cores).map(|_| ())
}
