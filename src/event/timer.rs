//! A timer owned by one connection and re-armed for each thing it waits on
//! (Envoy's `Event::Timer`: created once, `enableTimer`ed many times).
//!
//! A fresh tokio `Sleep` per wait is inserted into the runtime's timer wheel on
//! its first poll and removed again when dropped: for a keep-alive connection that
//! is a couple of wheel operations per request for timeouts (idle, stream idle)
//! that almost never fire. `Timer` keeps one `Sleep` and moves it only when a
//! deadline comes *earlier* than the one armed. A later deadline is only noted:
//! the timer fires early, sees it is not due yet and re-arms once. A busy
//! connection so touches the wheel about once per timeout period, not per request.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::time::{Instant, Sleep};

/// One re-armable timer; see the module docs.
#[derive(Debug, Default)]
pub struct Timer {
    /// Made on the first deadline, so a connection that never sets one holds none.
    sleep: Option<Pin<Box<Sleep>>>,
    /// Whether `sleep` is in the wheel at its `deadline()` (it is not before it
    /// is first set, nor once it has fired).
    armed: bool,
    /// When the current wait times out; `None`: it does not.
    due: Option<Instant>,
}

impl Timer {
    pub fn new() -> Timer {
        Timer::default()
    }

    /// Sets when the current wait times out (`None`: never). Arms the wheel only
    /// when this is earlier than what is armed.
    pub fn set(&mut self, due: Option<Instant>) {
        self.due = due;
        let Some(due) = due else { return };
        match &mut self.sleep {
            Some(sleep) if self.armed && sleep.deadline() <= due => {}
            Some(sleep) => {
                sleep.as_mut().reset(due);
                self.armed = true;
            }
            None => {
                self.sleep = Some(Box::pin(tokio::time::sleep_until(due)));
                self.armed = true;
            }
        }
    }

    /// Completes once the deadline last `set` has passed; never if it is `None`.
    pub fn fired(&mut self) -> impl Future<Output = ()> + '_ {
        poll_fn(|cx| self.poll_fired(cx))
    }

    fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let (Some(due), Some(sleep)) = (self.due, &mut self.sleep) else { return Poll::Pending };
            if !self.armed {
                sleep.as_mut().reset(due);
                self.armed = true;
            }
            ready!(sleep.as_mut().poll(cx));
            self.armed = false;
            if sleep.deadline() >= due {
                return Poll::Ready(());
            }
            // It fired for an earlier deadline than the current one: wait on.
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Whether `timer.fired()` completes within `within` of (paused) time.
    async fn fires_within(timer: &mut Timer, within: Duration) -> bool {
        tokio::time::timeout(within, timer.fired()).await.is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn fires_at_its_deadline() {
        let mut t = Timer::new();
        t.set(Some(Instant::now() + Duration::from_secs(5)));
        assert!(!fires_within(&mut t, Duration::from_millis(4_999)).await);
        assert!(fires_within(&mut t, Duration::from_millis(2)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_deadline_is_kept_though_the_earlier_one_stays_armed() {
        let mut t = Timer::new();
        t.set(Some(Instant::now() + Duration::from_secs(1)));
        t.set(Some(Instant::now() + Duration::from_secs(10)));
        assert!(!fires_within(&mut t, Duration::from_millis(9_999)).await);
        assert!(fires_within(&mut t, Duration::from_millis(2)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_deadline_moves_the_timer() {
        let mut t = Timer::new();
        t.set(Some(Instant::now() + Duration::from_secs(10)));
        t.set(Some(Instant::now() + Duration::from_secs(1)));
        assert!(fires_within(&mut t, Duration::from_millis(1_001)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn no_deadline_never_fires_and_a_fired_timer_can_be_set_again() {
        let mut t = Timer::new();
        assert!(!fires_within(&mut t, Duration::from_secs(3600)).await);
        t.set(Some(Instant::now() + Duration::from_secs(1)));
        assert!(fires_within(&mut t, Duration::from_secs(2)).await);
        t.set(None);
        assert!(!fires_within(&mut t, Duration::from_secs(3600)).await);
        t.set(Some(Instant::now() + Duration::from_secs(1)));
        assert!(fires_within(&mut t, Duration::from_secs(2)).await);
    }
}
