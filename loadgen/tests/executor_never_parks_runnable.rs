//! Goal: an executor configured as the load generator's (a 1 ms preempt timer) never parks
//! while it has runnable tasks, however late the OS runs its thread.
//!
//! glommio 0.9.0 parked for ever when its preempt timer fired between arming and the first task
//! queue (vendor/glommio/RINGBUS-PATCH.md). Here executors of three lanes share one core, and
//! busy threads load every core, so that an executor's thread is often off the CPU for longer
//! than 1 ms.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::RunError;
use glommio::{Latency, Placement, Shares};

mod common;

/// Executors started one after the other, per lane.
const LANES: usize = 3;
/// An executor's work takes a few milliseconds; one that is not done by then is asleep.
const EXECUTOR_LIMIT: Duration = Duration::from_secs(10);
/// How long the lanes start executors.
const TEST_DURATION: Duration = Duration::from_secs(25);

/// One executor as the load generator configures its own, with a few timers to wait for.
fn run_one(core: usize) -> Result<(), String> {
    let work = || async {
        let queue = glommio::executor().create_task_queue(
            Shares::Static(1000),
            Latency::Matters(Duration::from_millis(1)),
            "work",
        );
        let ticker = glommio::spawn_local(glommio::timer::sleep(Duration::from_millis(250)));
        let work = glommio::spawn_local_into(
            async {
                for _ in 0..3 {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
            },
            queue,
        )
        .expect("spawn into the queue");
        work.await;
        ticker.cancel().await;
    };
    match common::run_executor(
        "preempt-1ms",
        Placement::Fixed(core),
        Duration::from_millis(1),
        EXECUTOR_LIMIT,
        work,
    ) {
        Ok(_) => Ok(()),
        Err(RunError::Start(error)) => Err(error),
        Err(RunError::Failed) => Err("an executor failed".to_string()),
        Err(RunError::OverLimit) => Err(format!(
            "an executor slept with runnable tasks for {EXECUTOR_LIMIT:?}"
        )),
    }
}

#[test]
fn an_executor_with_a_1_ms_preempt_timer_never_sleeps_with_work_to_do() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let stop = Arc::new(AtomicBool::new(false));
    let busy: Vec<_> = (0..cores)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let ran = Arc::new(AtomicU32::new(0));
    let started = Instant::now();
    let lanes: Vec<_> = (0..LANES)
        .map(|_| {
            let ran = ran.clone();
            std::thread::spawn(move || {
                while started.elapsed() < TEST_DURATION {
                    run_one(cores - 1)?;
                    ran.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    let outcomes: Vec<Result<(), String>> = lanes
        .into_iter()
        .map(|lane| lane.join().expect("lane thread"))
        .collect();
    stop.store(true, Ordering::Relaxed);
    for thread in busy {
        thread.join().expect("busy thread");
    }
    let ran = ran.load(Ordering::Relaxed);
    for outcome in outcomes {
        if let Err(error) = outcome {
            panic!("{error} (after {ran} executors ran)");
        }
    }
    assert!(ran >= 100, "only {ran} executors ran in {TEST_DURATION:?}");
}
