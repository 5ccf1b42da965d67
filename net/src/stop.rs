//! A one-shot stop event that any thread fires and a shard awaits without polling.
//!
//! Why a socket pair and not a flag: glommio 0.9 counts a task's wakers in an i16, and some of
//! its sources (accept, connect, DMA file I/O, shared channels) keep one waker clone per poll
//! until they complete. A shard that checked a stop flag on a timer re-polled its pending
//! accept 20 times a second and panicked after 32,767 polls (27 minutes with no new
//! connection). Here the shard's task waits on a read of one end of a Unix socket pair, a
//! source that keeps a single waker however often it is polled, and the task is woken exactly
//! once: when the other end is written to or closed.
//!
//! Lifecycle: [`pair`] on any thread; the [`StopSender`] stays with the thread that decides
//! (the signal waiter), the [`StopReceiver`] moves to the shard's thread and is awaited there
//! with [`StopReceiver::wait`]. Dropping the sender fires the event too, so a deciding thread
//! that fails or returns early never leaves a shard waiting forever.

use std::io::Write;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::net::UnixStream as StdUnixStream;

use futures_lite::io::AsyncReadExt;
use glommio::net::UnixStream;

use crate::NetError;

/// The firing side; `Send`, usable from any thread.
#[derive(Debug)]
pub struct StopSender {
    stream: StdUnixStream,
}

/// The waiting side: `Send`, moved to the shard that waits, which [`StopReceiver::adopt`]s it
/// on its own thread.
#[derive(Debug)]
pub struct StopReceiver {
    stream: StdUnixStream,
}

/// A [`StopReceiver`] adopted by a glommio executor. It can be awaited more than once (a shard
/// races its start-up against it, then serves until it): once fired, it stays fired.
#[derive(Debug)]
pub struct StopWaiter {
    stream: UnixStream,
    fired: bool,
}

/// A new stop event.
pub fn pair() -> Result<(StopSender, StopReceiver), NetError> {
    let (sender, receiver) =
        StdUnixStream::pair().map_err(|e| NetError::new("socketpair", "stop event", e))?;
    Ok((
        StopSender { stream: sender },
        StopReceiver { stream: receiver },
    ))
}

impl StopSender {
    /// Fires the event: the receiver's [`StopReceiver::wait`] returns.
    pub fn fire(mut self) {
        // A failed write (the receiver is gone) needs nothing more: dropping the stream below
        // closes our end, which ends the receiver's wait just as well.
        let _ = self.stream.write_all(&[1]);
    }
}

impl StopReceiver {
    /// Hands the socket to the current glommio executor (call on the thread that waits).
    pub fn adopt(self) -> StopWaiter {
        // SAFETY: `into_raw_fd` hands over a valid, open socket fd that nothing else owns any
        // more; glommio's stream becomes its only owner and closes it when dropped.
        let stream = unsafe { UnixStream::from_raw_fd(self.stream.into_raw_fd()) };
        StopWaiter {
            stream,
            fired: false,
        }
    }
}

impl StopWaiter {
    /// Waits, on the current glommio executor, until the sender fires or is dropped. Polling
    /// this future any number of times keeps one waker (it is a plain socket read).
    pub async fn wait(&mut self) {
        if self.fired {
            return;
        }
        let mut byte = [0u8; 1];
        // One byte (fired), end of stream (sender dropped) or an error: each means stop.
        let _ = self.stream.read(&mut byte).await;
        self.fired = true;
    }
}

#[cfg(test)]
mod tests {
    use super::pair;

    #[test]
    fn fire_and_drop_both_end_the_wait() {
        glommio::LocalExecutor::default().run(async {
            let (sender, receiver) = pair().expect("pair");
            let mut waiter = receiver.adopt();
            std::thread::spawn(move || sender.fire());
            waiter.wait().await;
            // Fired stays fired.
            waiter.wait().await;
            let (sender, receiver) = pair().expect("pair");
            drop(sender);
            receiver.adopt().wait().await;
        });
    }
}
