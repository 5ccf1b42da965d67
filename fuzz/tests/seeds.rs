//! Goal: every committed seed passes its target's checks without libFuzzer, so a seed that a
//! change breaks (a property that no longer holds for valid input) fails `cargo test` here
//! before it shows up as a "crash" on the first input of a fuzz run.
//!
//! Method: run each target's `check` over every file of fuzz/corpus/<target>/, and require at
//! least one seed per target.

use std::path::Path;

fn run(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        let bytes = std::fs::read(&path).expect("a seed");
        eprintln!("{}", path.display());
        check(&bytes);
        seeds += 1;
    }
    assert!(seeds > 0, "no seeds for {target}");
}

#[test]
fn frames() {
    run("frames", ringbus_fuzz::frames::check);
}

#[test]
fn wire_messages() {
    run("wire_messages", ringbus_fuzz::wire_messages::check);
}

#[test]
fn batch() {
    run("batch", ringbus_fuzz::batch::check);
}

#[test]
fn log_recovery() {
    run("log_recovery", ringbus_fuzz::log_recovery::check);
}

#[test]
fn kafka_requests() {
    run("kafka_requests", ringbus_fuzz::kafka_requests::check);
}

#[test]
fn broker_snapshots() {
    run("broker_snapshots", ringbus_fuzz::broker_snapshots::check);
}

/// The log seeds are real partition directories: each must open, so that fuzzing starts from
/// recoveries that get as far as the checks after the open.
#[test]
fn log_seeds_open() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/log_recovery");
    for entry in std::fs::read_dir(&dir).expect("the seeds") {
        let path = entry.expect("a directory entry").path();
        let files = ringbus_fuzz::log_recovery::parse(&std::fs::read(&path).expect("a seed"));
        let disk = ringbus_fuzz::log_recovery::write_image(&files);
        let opened = storage::disk::sim::block_on(storage::Log::open(
            disk,
            Path::new(ringbus_fuzz::log_recovery::DIR),
            ringbus_fuzz::log_recovery::config(),
            0,
        ));
        let (log, _) = opened.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(log.written_end().0 > 0, "{}: an empty log", path.display());
    }
}
