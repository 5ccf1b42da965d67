//! Goal: a sleeping executor wakes for its next timer, whatever timer the reactor kept armed.
//!
//! The vendored glommio keeps the latency ring's timer across passes of the executor's loop
//! while it has not fired and fires no later than the timer a pass needs, instead of
//! cancelling and re-arming it every pass (vendor/glommio/RINGBUS-PATCH.md, fourth patch).
//! Two ways that could go wrong, each with its own executor:
//! - a preempt timer far in the future kept while the executor sleeps for a nearer timer:
//!   the sleep would last until the preempt timer (10 s here) instead of 1 ms;
//! - a timer that has already fired taken for one still armed: the executor would sleep for
//!   ever. A 1 ms preempt timer fires during nearly every 5 ms sleep here.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};

/// What a run takes when timers fire on time: well under a second. A run that sleeps past
/// one 10 s preempt timer, or for ever, misses it.
const RUN_LIMIT: Duration = Duration::from_secs(8);

/// Runs `work` on an executor with `preempt` and returns how long it took, or an error if it
/// did not finish within [`RUN_LIMIT`] (its thread is then left asleep: the test process exits
/// around it).
fn run_with_preempt_timer<F, Fut>(preempt: Duration, work: F) -> Result<Duration, String>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let started = Instant::now();
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .name("kept-timers")
        .io_memory(1 << 20)
        .preempt_timer(preempt)
        .spawn(work)
        .map_err(|error| format!("starting an executor: {error}"))?;
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(handle.join().is_ok());
    });
    match finished.recv_timeout(RUN_LIMIT) {
        Ok(true) => Ok(started.elapsed()),
        Ok(false) => Err("the executor failed".to_string()),
        Err(_) => Err(format!(
            "not done after {RUN_LIMIT:?}: a timer did not fire"
        )),
    }
}

/// Keeps the executor's loop busy for a few passes, so that it arms its preempt timer.
async fn a_few_busy_passes() {
    for _ in 0..20 {
        glommio::yield_if_needed().await;
        futures_lite::future::yield_now().await;
    }
}

#[test]
fn a_sleep_is_not_held_until_a_later_preempt_timer() {
    // 100 sleeps of 1 ms behind busy passes: about 0.1-0.2 s. Each pass arms a 10 s preempt
    // timer; each sleep needs its 1 ms timer instead.
    let took = run_with_preempt_timer(Duration::from_secs(10), || async {
        for _ in 0..100 {
            a_few_busy_passes().await;
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    })
    .unwrap_or_else(|error| panic!("{error}"));
    assert!(took < RUN_LIMIT, "took {took:?}");
}

#[test]
fn a_fired_preempt_timer_is_never_taken_for_an_armed_one() {
    // 100 sleeps of 5 ms with a 1 ms preempt timer, which fires during each of them: about
    // 0.5-0.6 s.
    let took = run_with_preempt_timer(Duration::from_millis(1), || async {
        for round in 0..100 {
            a_few_busy_passes().await;
            glommio::timer::sleep(Duration::from_millis(if round % 2 == 0 { 5 } else { 1 })).await;
        }
    })
    .unwrap_or_else(|error| panic!("{error}"));
    assert!(took < RUN_LIMIT, "took {took:?}");
}
