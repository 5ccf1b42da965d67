//! Goal: a broker whose log cannot be written keeps serving. Its stderr on the disk it fills
//! (found 2026-12-06: a benchmark filled the disk that held the broker's log) used to kill it:
//! tracing-subscriber reported the failed write with `eprintln!`, which panics when stderr
//! fails.
//!
//! Method: the real binary with stderr on /dev/full (every write fails with ENOSPC) and
//! logging at info, so its start-up and every topic change log; create a topic, produce and
//! fetch through it, then stop it: it must still answer and exit cleanly.

mod common;

use std::process::Stdio;

use common::{Broker, RawClient, batch, create_topic, data_dir, fetch_all, produce};
use schema::wire::{Acks, ErrorCode};

#[test]
fn a_broker_whose_log_cannot_be_written_keeps_serving() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let dir = data_dir();
    let broker = Broker::start_logging(dir.path(), "127.0.0.1:0", &[], "info", Stdio::from(full));
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "logged", 2);
    let stored = produce(&mut client, "logged", &[(1, batch("v", 3))], Acks::Written);
    assert_eq!(stored[0].0, ErrorCode::None);
    assert_eq!(fetch_all(&mut client, "logged", 1, 0).len(), 1);
    broker.stop();
}
