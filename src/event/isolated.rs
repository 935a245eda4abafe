//! Tasks whose panic ends only themselves: one per downstream connection (and per
//! HTTP/2 stream, per admin connection). A panic while such a task runs is a bug
//! in how Courier handled that one connection; tokio drops the task, whose drop
//! guards close the socket and count its stats, and the loop goes on serving
//! every other connection. `in_isolated_task` lets the process's panic hook
//! (`server::panic_hook`) tell such a panic from one in shared work — a posted
//! callback, an accept loop, a cluster refresh — after which nothing can be
//! trusted, so the process aborts.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    /// How many isolated tasks are being polled on this thread (0 or 1: tasks
    /// do not poll one another, but a count survives nesting all the same).
    static POLLING: Cell<u32> = const { Cell::new(0) };
}

/// Spawns `task` on this thread's loop as an isolated task.
pub fn spawn_isolated<F: Future<Output = ()> + 'static>(task: F) {
    tokio::task::spawn_local(Isolated::new(task));
}

/// Whether the code running now is inside an isolated task's poll.
pub fn in_isolated_task() -> bool {
    POLLING.try_with(|p| p.get() > 0).unwrap_or(false)
}

/// A future marked as an isolated task while it is polled.
pub struct Isolated<F>(F);

impl<F> Isolated<F> {
    pub fn new(task: F) -> Isolated<F> {
        Isolated(task)
    }
}

impl<F: Future> Future for Isolated<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _polling = Polling::enter();
        // SAFETY: the inner future is never moved out of `self`; this is the only
        // access to it, a structural pin projection.
        unsafe { self.map_unchecked_mut(|s| &mut s.0) }.poll(cx)
    }
}

/// Marks the thread as polling an isolated task until dropped, which happens
/// after the panic hook has run when the poll panics.
struct Polling;

impl Polling {
    fn enter() -> Polling {
        POLLING.with(|p| p.set(p.get() + 1));
        Polling
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        let _ = POLLING.try_with(|p| p.set(p.get() - 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_only_the_isolated_tasks_polls() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            assert!(!in_isolated_task());
            let (tx, rx) = tokio::sync::oneshot::channel();
            spawn_isolated(async move {
                tokio::task::yield_now().await;
                let _ = tx.send(in_isolated_task());
            });
            assert!(rx.await.unwrap(), "inside the task, after a yield");
            assert!(!in_isolated_task());
        });
    }

    #[test]
    fn a_panic_ends_only_its_task() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            let panicked = tokio::task::spawn_local(Isolated::new(async { panic!("a bug in one connection") }));
            assert!(panicked.await.unwrap_err().is_panic());
            assert!(!in_isolated_task(), "the mark is gone after the unwind");
            let other = tokio::task::spawn_local(Isolated::new(async { 7 }));
            assert_eq!(other.await.unwrap(), 7, "the loop goes on serving");
        });
    }
}
