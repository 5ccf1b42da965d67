//! A single-value channel between tasks of one executor: the caller of a request waits on the
//! receiver, the connection's reader (or writer) task completes the sender.
//!
//! State is `Rc<RefCell<..>>`, so both ends stay on the thread that made them, like every other
//! piece of client state. Dropping the sender without sending wakes the receiver with `None`,
//! so a waiter never hangs on a task that went away.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
    sender_gone: bool,
}

/// The sending end; consumed by [`Sender::send`].
pub(crate) struct Sender<T> {
    slot: Rc<RefCell<Slot<T>>>,
}

/// The receiving end: a future of `Some(value)`, or `None` if the sender was dropped.
pub(crate) struct Receiver<T> {
    slot: Rc<RefCell<Slot<T>>>,
}

pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Rc::new(RefCell::new(Slot {
        value: None,
        waker: None,
        sender_gone: false,
    }));
    (Sender { slot: slot.clone() }, Receiver { slot })
}

impl<T> Sender<T> {
    /// Delivers `value`. If the receiver is gone the value is dropped: nobody waits for it.
    pub(crate) fn send(self, value: T) {
        let waker = {
            let mut slot = self.slot.borrow_mut();
            slot.value = Some(value);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        // Drop runs next and sees the value already there.
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut slot = self.slot.borrow_mut();
            slot.sender_gone = true;
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = self.slot.borrow_mut();
        if let Some(value) = slot.value.take() {
            return Poll::Ready(Some(value));
        }
        if slot.sender_gone {
            return Poll::Ready(None);
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_arrives() {
        let (sender, receiver) = channel();
        sender.send(7);
        assert_eq!(futures_lite::future::block_on(receiver), Some(7));
    }

    #[test]
    fn dropped_sender_wakes_with_none() {
        let (sender, receiver) = channel::<u32>();
        drop(sender);
        assert_eq!(futures_lite::future::block_on(receiver), None);
    }
}
