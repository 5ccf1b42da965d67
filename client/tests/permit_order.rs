//! Goal: glommio's semaphore, which bounds a client connection's requests in flight, grants
//! permits in the order they were asked for. The producer keeps several requests per partition
//! in flight and relies on them reaching the socket in the order it made them: out of order,
//! the broker refuses the later one (`OutOfOrderSequence`) and the records fail. glommio 0.9
//! let an acquirer that arrived after a release take the permit from the waiter the release
//! had just woken (vendor/glommio/RINGBUS-PATCH.md): at 16 partitions with five requests each
//! in flight over a 64-permit connection, `ringbus loadgen` failed 1,155 records that way.
//!
//! Method: a one-permit semaphore on a glommio executor; a waiter queues behind the holder,
//! the holder releases (waking the waiter), and before the waiter runs a newcomer asks.

use std::cell::RefCell;
use std::rc::Rc;

use glommio::LocalExecutorBuilder;
use glommio::sync::Semaphore;

fn run(test: impl AsyncFnOnce() + Send + 'static) {
    LocalExecutorBuilder::default()
        .spawn(move || async move { test().await })
        .expect("executor")
        .join()
        .expect("the test ran");
}

/// Who gets a permit first: a waiter queued behind `permits` holders, all released at once
/// (the first release wakes the waiter, the others leave units nobody is woken for), or a
/// newcomer that asks right after the releases, before the woken waiter runs.
async fn order_after_release(permits: u64) -> Vec<&'static str> {
    let semaphore = Rc::new(Semaphore::new(permits));
    let order = Rc::new(RefCell::new(Vec::new()));
    let mut held = Vec::new();
    for _ in 0..permits {
        held.push(semaphore.acquire_static_permit(1).await.expect("open"));
    }
    let waiter = glommio::spawn_local({
        let (semaphore, order) = (semaphore.clone(), order.clone());
        async move {
            let _permit = semaphore.acquire_permit(1).await.expect("open");
            order.borrow_mut().push("waiter");
        }
    });
    // The waiter queues behind the holders.
    glommio::executor().yield_task_queue_now().await;
    drop(held);
    let newcomer = semaphore.acquire_permit(1).await.expect("open");
    order.borrow_mut().push("newcomer");
    drop(newcomer);
    waiter.await;
    order.take()
}

#[test]
fn a_woken_waiter_is_not_overtaken_by_a_new_acquirer() {
    run(async || assert_eq!(order_after_release(1).await, vec!["waiter", "newcomer"]));
}

#[test]
fn a_newcomer_waits_behind_a_woken_waiter_even_with_units_to_spare() {
    run(async || assert_eq!(order_after_release(2).await, vec!["waiter", "newcomer"]));
}

#[test]
fn a_woken_waiter_that_is_cancelled_hands_its_permit_on() {
    run(async || {
        let semaphore = Rc::new(Semaphore::new(1));
        let held = semaphore.acquire_static_permit(1).await.expect("open");
        let waiter = |semaphore: Rc<Semaphore>| {
            glommio::spawn_local(async move { semaphore.acquire_permit(1).await.map(drop) })
        };
        let first = waiter(semaphore.clone());
        let second = waiter(semaphore.clone());
        glommio::executor().yield_task_queue_now().await;
        drop(held);
        // The release woke the first waiter; it is cancelled before it runs.
        drop(first);
        second.await.expect("the permit reached the second waiter");
    });
}

#[test]
fn thousands_of_contended_acquisitions_lose_no_wake_up_and_no_permit() {
    run(async || {
        // 200 tasks, 50 acquisitions each, over 64 permits: the shape of a connection's
        // pipelined requests, through 10,000 wake-ups. Cancelled acquisitions are mixed in
        // (a timer racing each tenth one), so woken waiters are also dropped.
        let semaphore = Rc::new(Semaphore::new(64));
        let tasks: Vec<_> = (0..200u32)
            .map(|task| {
                let semaphore = semaphore.clone();
                glommio::spawn_local(async move {
                    let mut held = 0;
                    for round in 0..50u32 {
                        if (task + round) % 10 == 0 {
                            let _ = futures_lite::future::or(
                                async { semaphore.acquire_permit(1).await.map(drop) },
                                async {
                                    glommio::timer::sleep(std::time::Duration::from_micros(1))
                                        .await;
                                    Ok(())
                                },
                            )
                            .await;
                            continue;
                        }
                        let _permit = semaphore.acquire_permit(1).await.expect("open");
                        held += 1;
                        glommio::yield_if_needed().await;
                        glommio::executor().yield_task_queue_now().await;
                    }
                    held
                })
            })
            .collect();
        let mut held = 0;
        for task in tasks {
            held += task.await;
        }
        assert_eq!(held, 200 * 45, "every task took every permit it asked for");
        assert_eq!(semaphore.available(), 64, "every permit came back");
    });
}
