//! `ringbus loadgen`: the load generator of the `loadgen` crate, run against a broker.
//!
//! Output: a live line per second on stderr, the final table on stdout, the JSON with
//! `--json FILE` (format in the `loadgen` crate's `Report::to_json`). Exits non-zero when a
//! connection fails or any message failed, was lost or was duplicated.

pub use loadgen::Args as LoadgenArgs;

/// Runs the load described by `args`.
pub fn run(args: LoadgenArgs) -> Result<(), String> {
    loadgen::run_cli(args).map(|_| ())
}
