//! Something start-up or a warming resource waits for once (Envoy's
//! `Init::Target`): an xDS entry's first response, or its initial fetch
//! timing out. It is set once, on the main thread; every waiter, present or
//! future, then goes on.

use std::cell::Cell;

use tokio::sync::Notify;

/// Not ready until `set`, then ready for good.
#[derive(Debug, Default)]
pub struct InitTarget {
    ready: Cell<bool>,
    notify: Notify,
}

impl InitTarget {
    pub fn is_ready(&self) -> bool {
        self.ready.get()
    }

    /// Marks it ready and wakes its waiters; `false` if it was already.
    pub fn set(&self) -> bool {
        let first = !self.ready.replace(true);
        if first {
            self.notify.notify_waiters();
        }
        first
    }

    /// Waits until it is ready.
    pub async fn ready(&self) {
        let notified = self.notify.notified();
        if !self.ready.get() {
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_before_and_after_the_set_go_on() {
        let target = std::rc::Rc::new(InitTarget::default());
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let waiting = tokio::task::spawn_local({
                    let target = target.clone();
                    async move { target.ready().await }
                });
                tokio::task::yield_now().await;
                assert!(!target.is_ready());
                assert!(target.set());
                assert!(!target.set());
                waiting.await.expect("woken");
                target.ready().await;
            })
            .await;
    }
}
