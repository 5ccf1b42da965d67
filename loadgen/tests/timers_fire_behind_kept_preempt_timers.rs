//! Goal: a sleeping executor wakes for its next timer, whatever timer the reactor kept armed.
//!
//! The vendored glommio keeps the latency ring's timer across passes of the executor's loop
//! while it has not fired and serves the pass (a preempt timer due no later than the one the
//! running queues need; before a sleep, only a timer armed for that sleep's own user timer),
//! instead of cancelling and re-arming it every pass (vendor/glommio/RINGBUS-PATCH.md, fourth
//! patch). Four ways that could go wrong, each tested with executors of its own:
//! - a preempt timer far in the future kept while the executor sleeps for a nearer timer:
//!   the sleep would last until the preempt timer (10 s here) instead of 1 ms;
//! - a timer that has already fired taken for one still armed: the executor would sleep for
//!   ever, or a busy queue would never be preempted again;
//! - a sleep that counts on a preempt timer kept from the last pass: an idle executor would
//!   wake every preempt period (1,000 times a second with the load generator's 1 ms);
//! - a task queue that runs on after a sleep with a far user timer armed, or after its preempt
//!   timer fired, with no preempt timer: it would keep the core from the other queues.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::RunError;
use glommio::{Latency, Placement, Shares};

mod common;

/// What a run takes when timers fire on time: well under a second. A run that sleeps past
/// one 10 s preempt timer, or for ever, misses it (and fails its test).
const RUN_LIMIT: Duration = Duration::from_secs(8);

/// Runs `work` on an executor with `preempt` and returns how long it took, or an error if it
/// did not finish within [`RUN_LIMIT`] (its thread is then left asleep: the test process exits
/// around it).
fn run_with_preempt_timer<F, Fut>(preempt: Duration, work: F) -> Result<Duration, String>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    common::run_executor("kept-timers", Placement::Unbound, preempt, RUN_LIMIT, work).map_err(
        |error| match error {
            RunError::Start(error) => error,
            RunError::Failed => "the executor failed".to_string(),
            RunError::OverLimit => format!("not done after {RUN_LIMIT:?}: a timer did not fire"),
        },
    )
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
    assert!(
        took >= Duration::from_millis(100),
        "100 sleeps of 1 ms took {took:?}"
    );
}

#[test]
fn a_fired_preempt_timer_is_never_taken_for_an_armed_one() {
    // 100 sleeps of 5 or 1 ms, each after busy passes that armed a 1 ms preempt timer: a sleep
    // may keep that timer only when it is due within 200 us of the sleep's own, and must never
    // count on it once it has fired. About 0.3-0.4 s.
    let took = run_with_preempt_timer(Duration::from_millis(1), || async {
        for round in 0..100 {
            a_few_busy_passes().await;
            glommio::timer::sleep(Duration::from_millis(if round % 2 == 0 { 5 } else { 1 })).await;
        }
    })
    .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        took >= Duration::from_millis(300),
        "sleeps of 300 ms in all took {took:?}"
    );
}

/// Passes of the executor's loop that an idle stretch of 200 ms may take: a few (the wake,
/// the task, the sleep); one per preempt period of 1 ms would be about 200.
const IDLE_PASSES_MAX: u64 = 40;

#[test]
fn an_idle_executor_does_not_wake_every_preempt_period() {
    let (passes, accepted) = std::sync::mpsc::channel();
    run_with_preempt_timer(Duration::from_millis(1), move || async move {
        // Idle with a user timer: a 200 ms sleep.
        a_few_busy_passes().await;
        let _ = glommio::executor().executor_stats();
        glommio::timer::sleep(Duration::from_millis(200)).await;
        let sleeping = glommio::executor().executor_stats().scheduler_runs();
        // Idle without one: waiting for a connection that comes in 200 ms.
        let listener = glommio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let client = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            std::net::TcpStream::connect(address).expect("connect")
        });
        a_few_busy_passes().await;
        let _ = glommio::executor().executor_stats();
        let _stream = listener.accept().await.expect("accept");
        let waiting = glommio::executor().executor_stats().scheduler_runs();
        drop(client.join());
        passes.send((sleeping, waiting)).expect("send");
    })
    .unwrap_or_else(|error| panic!("{error}"));
    let (sleeping, waiting) = accepted.recv().expect("the executor's counts");
    assert!(
        sleeping <= IDLE_PASSES_MAX,
        "{sleeping} passes during a 200 ms sleep"
    );
    assert!(
        waiting <= IDLE_PASSES_MAX,
        "{waiting} passes while waiting 200 ms for a connection"
    );
}

/// How long a task queue that never waits may run before another queue gets the core, with a
/// 10 ms preempt timer: about 10 ms; the bound leaves room for a loaded machine. Without a
/// preempt timer the queue below runs for [`HOG_LIMIT`].
const PREEMPTED_WITHIN: Duration = Duration::from_secs(1);
/// How long the queue that never waits runs at most.
const HOG_LIMIT: Duration = Duration::from_secs(3);

#[test]
fn a_busy_task_queue_is_preempted_after_a_sleep_and_again_after_that() {
    let (delays, measured) = std::sync::mpsc::channel();
    run_with_preempt_timer(Duration::from_millis(10), move || async move {
        let busy = glommio::executor().create_task_queue(
            Shares::Static(1000),
            Latency::NotImportant,
            "busy",
        );
        let other = glommio::executor().create_task_queue(
            Shares::Static(1000),
            Latency::NotImportant,
            "other",
        );
        // A far user timer: the executor's sleep below arms it, and it is still armed when a
        // connection wakes the executor, so the busy queue must get a preempt timer instead.
        let far = glommio::spawn_local(glommio::timer::sleep(Duration::from_secs(10)));
        let listener = glommio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let client = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            std::net::TcpStream::connect(address).expect("connect")
        });
        let busy_task = glommio::spawn_local_into(
            async move {
                let _stream = listener.accept().await.expect("accept");
                // Twice: once behind the timer state the sleep left, once behind a preempt
                // timer that fired.
                let mut delays = Vec::new();
                for _ in 0..2 {
                    let started = Instant::now();
                    let ran = Rc::new(Cell::new(false));
                    let flag = ran.clone();
                    glommio::spawn_local_into(async move { flag.set(true) }, other)
                        .expect("spawn into the other queue")
                        .detach();
                    while !ran.get() && started.elapsed() < HOG_LIMIT {
                        std::hint::spin_loop();
                        glommio::yield_if_needed().await;
                    }
                    delays.push(started.elapsed());
                }
                delays
            },
            busy,
        )
        .expect("spawn into the busy queue");
        let measured = busy_task.await;
        far.cancel().await;
        drop(client.join());
        delays.send(measured).expect("send");
    })
    .unwrap_or_else(|error| panic!("{error}"));
    let delays = measured.recv().expect("the delays");
    for (attempt, delay) in delays.iter().enumerate() {
        assert!(
            *delay < PREEMPTED_WITHIN,
            "preemption {attempt}: the other queue waited {delay:?} for the busy one"
        );
    }
}
