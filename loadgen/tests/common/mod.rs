//! What the executor tests share: one glommio executor, run to its end within a time limit.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};

/// Why a run did not finish its work.
pub enum RunError {
    /// The executor could not be started.
    Start(String),
    /// Its work panicked.
    Failed,
    /// Not done within the limit: its thread is left asleep (the test process exits around
    /// it), since an executor that sleeps with work to do cannot be woken from outside.
    OverLimit,
}

/// Runs `work` on a new executor (named `name`, on `placement`, with a `preempt` timer and
/// 1 MiB of I/O memory, as the load generator configures its own) and returns how long the
/// run took, from before the executor started to the end of its work.
pub fn run_executor<F, Fut>(
    name: &str,
    placement: Placement,
    preempt: Duration,
    limit: Duration,
    work: F,
) -> Result<Duration, RunError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let started = Instant::now();
    let handle = LocalExecutorBuilder::new(placement)
        .name(name)
        .io_memory(1 << 20)
        .preempt_timer(preempt)
        .spawn(work)
        .map_err(|error| RunError::Start(format!("starting an executor: {error}")))?;
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(handle.join().is_ok());
    });
    match finished.recv_timeout(limit) {
        Ok(true) => Ok(started.elapsed()),
        Ok(false) => Err(RunError::Failed),
        Err(_) => Err(RunError::OverLimit),
    }
}
