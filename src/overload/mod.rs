//! The overload state that workers act on (Envoy's `ThreadLocalOverloadState`):
//! how far each overload action Courier implements is engaged, from 0 (inactive)
//! to 1 (saturated), with values between for a scaled trigger. The main thread's
//! overload manager (`server::overload_manager`) computes it from its resource
//! monitors every `refresh_interval` and publishes a copy to every thread through
//! a thread-local slot; listeners and connection managers read their thread's
//! copy without a lock, and, with no overload manager configured, read nothing
//! but one atomic.
//!
//! The names of the actions and monitors are here, below every user of them, so
//! that the config inventory (`extensions::supported`) can list them too.
//!
//! `reduce_timeouts` scales timers rather than gating events: a timer Envoy
//! makes scalable runs `min + (max - min) * (1 - scale)` from its start, where
//! `max` is its configured timeout and `min` what the action's
//! `ScaleTimersOverloadActionConfig` gives its type (`scaled_deadline`). When the
//! scale changes, the manager wakes every worker's waiting timers
//! (`timers_rescaled`) so that they recompute their deadlines, as Envoy's
//! `ScaledRangeTimerManager` re-arms its queues: an idle connection armed for an
//! hour closes within its minimum once memory runs short.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::common::random;
use crate::thread_local::{LocalSlot, Slot};

/// `FixedHeapConfig`: pressure is the heap in use over `max_heap_size_bytes`.
pub const FIXED_HEAP_TYPE: &str = "envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig";
/// `DownstreamConnectionsConfig`: `max_active_downstream_connections` over all
/// listeners, checked as each connection is accepted.
pub const DOWNSTREAM_CONNECTIONS_TYPE: &str =
    "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig";
/// `reduce_timeouts`' `typed_config`: the minimums of the timers it scales.
pub const SCALE_TIMERS_TYPE: &str = "envoy.config.overload.v3.ScaleTimersOverloadActionConfig";
/// `CgroupMemoryConfig`: the cgroup's memory use over its limit.
pub const CGROUP_MEMORY_TYPE: &str = "envoy.extensions.resource_monitors.cgroup_memory.v3.CgroupMemoryConfig";

/// The overload actions Courier implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverloadAction {
    /// New requests get 503 `envoy overloaded`.
    StopAcceptingRequests,
    /// Connections close after their current response (HTTP/1) or drain with
    /// GOAWAY (HTTP/2).
    DisableHttpKeepalive,
    /// Listeners stop accepting; connections wait in the kernel's backlog.
    StopAcceptingConnections,
    /// Accepted connections are reset at once.
    RejectIncomingConnections,
    /// Free memory goes back to the system (the main thread acts on it).
    ShrinkHeap,
    /// Scalable timers shrink toward their minimums (`scaled_deadline`).
    ReduceTimeouts,
}

impl OverloadAction {
    pub const ALL: [OverloadAction; 6] = [
        OverloadAction::StopAcceptingRequests,
        OverloadAction::DisableHttpKeepalive,
        OverloadAction::StopAcceptingConnections,
        OverloadAction::RejectIncomingConnections,
        OverloadAction::ShrinkHeap,
        OverloadAction::ReduceTimeouts,
    ];

    pub fn envoy_name(self) -> &'static str {
        match self {
            OverloadAction::StopAcceptingRequests => "envoy.overload_actions.stop_accepting_requests",
            OverloadAction::DisableHttpKeepalive => "envoy.overload_actions.disable_http_keepalive",
            OverloadAction::StopAcceptingConnections => "envoy.overload_actions.stop_accepting_connections",
            OverloadAction::RejectIncomingConnections => "envoy.overload_actions.reject_incoming_connections",
            OverloadAction::ShrinkHeap => "envoy.overload_actions.shrink_heap",
            OverloadAction::ReduceTimeouts => "envoy.overload_actions.reduce_timeouts",
        }
    }

    pub fn from_name(name: &str) -> Option<OverloadAction> {
        Self::ALL.into_iter().find(|a| a.envoy_name() == name)
    }
}

/// The timers `reduce_timeouts` can scale (Envoy's `TimerType`s Courier has).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaledTimer {
    /// `HTTP_DOWNSTREAM_CONNECTION_IDLE`: the connection manager's `idle_timeout`.
    ConnectionIdle,
    /// `HTTP_DOWNSTREAM_STREAM_IDLE`: `stream_idle_timeout`, or the route's
    /// `idle_timeout` that replaces it.
    StreamIdle,
    /// `TRANSPORT_SOCKET_CONNECT`: a filter chain's
    /// `transport_socket_connect_timeout` (the TLS handshake).
    TransportSocketConnect,
}

impl ScaledTimer {
    pub const ALL: [ScaledTimer; 3] =
        [ScaledTimer::ConnectionIdle, ScaledTimer::StreamIdle, ScaledTimer::TransportSocketConnect];
}

/// How far a scaled timer may shrink: to a fixed time (`min_timeout`) or a
/// share of its configured timeout (`min_scale`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScaledMinimum {
    Absolute(Duration),
    /// 0 to 1.
    Fraction(f32),
}

impl ScaledMinimum {
    /// The minimum for a timer whose configured timeout is `max` (never above it).
    fn of(self, max: Duration) -> Duration {
        match self {
            ScaledMinimum::Absolute(d) => d.min(max),
            ScaledMinimum::Fraction(f) => max.mul_f32(f.clamp(0.0, 1.0)),
        }
    }
}

/// Each action's scale, 0 to 1, and the minimums of the timers
/// `reduce_timeouts` scales (a timer without one is not scaled).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OverloadState {
    scale: [f32; OverloadAction::ALL.len()],
    minimums: [Option<ScaledMinimum>; ScaledTimer::ALL.len()],
}

impl OverloadState {
    pub fn set_minimum(&mut self, timer: ScaledTimer, minimum: ScaledMinimum) {
        self.minimums[timer as usize] = Some(minimum);
    }

    /// When a `timer` of configured timeout `max`, started at `start`, fires now.
    pub fn deadline(&self, timer: ScaledTimer, start: Instant, max: Duration) -> Instant {
        let scale = self.scale(OverloadAction::ReduceTimeouts);
        let Some(minimum) = self.minimums[timer as usize].filter(|_| scale > 0.0) else { return start + max };
        let min = minimum.of(max);
        start + min + (max - min).mul_f32(1.0 - scale)
    }

    pub fn scale(&self, action: OverloadAction) -> f32 {
        self.scale[action as usize]
    }

    pub fn set(&mut self, action: OverloadAction, scale: f32) {
        self.scale[action as usize] = scale.clamp(0.0, 1.0);
    }

    pub fn is_saturated(&self, action: OverloadAction) -> bool {
        self.scale(action) >= 1.0
    }
}

/// The slot the manager publishes into, plus one (0: no overload manager).
static PUBLISHED_SLOT: AtomicUsize = AtomicUsize::new(0);
/// `max_active_downstream_connections` (0: no limit).
static GLOBAL_MAX_CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// Makes `slot` the one every thread reads its state from.
pub fn publish_slot(slot: &Slot<OverloadState>) {
    PUBLISHED_SLOT.store(slot.index() + 1, Ordering::Relaxed);
}

/// Sets the global downstream connection limit (`None`: no limit).
pub fn set_global_max_connections(max: Option<u64>) {
    GLOBAL_MAX_CONNECTIONS.store(max.unwrap_or(0), Ordering::Relaxed);
}

/// The global downstream connection limit, if one is configured.
pub fn global_max_connections() -> Option<u64> {
    Some(GLOBAL_MAX_CONNECTIONS.load(Ordering::Relaxed)).filter(|m| *m > 0)
}

/// This thread's overload state, if an overload manager published one here.
pub fn state() -> Option<Rc<OverloadState>> {
    let index = PUBLISHED_SLOT.load(Ordering::Relaxed).checked_sub(1)?;
    LocalSlot::<OverloadState>::at(index).get()
}

/// Whether `action` applies to the event at hand (a request, a response, a
/// connection): always when saturated, with a probability of its scale when
/// scaled, as Envoy's `bernoulli(state.value())`.
pub fn applies(action: OverloadAction) -> bool {
    let Some(state) = state() else { return false };
    let scale = state.scale(action);
    scale >= 1.0 || (scale > 0.0 && random::below(1_000_000) < (f64::from(scale) * 1e6) as u64)
}

/// Whether `action` is saturated on this thread.
pub fn is_saturated(action: OverloadAction) -> bool {
    state().is_some_and(|s| s.is_saturated(action))
}

/// When a `timer` of configured timeout `max`, started at `start`, fires under
/// this thread's `reduce_timeouts` (at `start + max` without it).
pub fn scaled_deadline(timer: ScaledTimer, start: Instant, max: Duration) -> Instant {
    match state() {
        Some(state) => state.deadline(timer, start, max),
        None => start + max,
    }
}

thread_local! {
    /// Woken when `reduce_timeouts`' scale changed on this thread.
    static RESCALED: RefCell<Rc<Notify>> = RefCell::new(Rc::new(Notify::new()));
}

/// Set when an overload manager with `reduce_timeouts` runs.
static SCALES_TIMERS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Says that `reduce_timeouts` is configured (the manager, at start).
pub fn set_scales_timers(on: bool) {
    SCALES_TIMERS.store(on, Ordering::Relaxed);
}

/// Completes when `reduce_timeouts`' scale next changes on this thread: a timer
/// waiting on a scaled deadline then computes it again. Without the action it
/// never completes and is one word: idle connections hold it in their futures
/// (the wait itself is boxed, and made only when the action is configured).
pub fn timers_rescaled() -> TimersRescaled {
    if !SCALES_TIMERS.load(Ordering::Relaxed) {
        return TimersRescaled(None);
    }
    let notify = RESCALED.with(|n| n.borrow().clone());
    TimersRescaled(Some(Box::pin(async move { notify.notified().await })))
}

/// Runs `work` for at most a `timer` of configured timeout `max` from now, as
/// `reduce_timeouts` scales it while `work` runs; `None` when the time ran out.
pub async fn scaled_timeout<F: std::future::Future>(timer: ScaledTimer, max: Duration, work: F) -> Option<F::Output> {
    let start = Instant::now();
    tokio::pin!(work);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return Some(out),
            () = tokio::time::sleep_until(scaled_deadline(timer, start, max)) => return None,
            () = timers_rescaled() => {}
        }
    }
}

/// See `timers_rescaled`.
pub struct TimersRescaled(Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>>);

impl std::future::Future for TimersRescaled {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        match &mut self.0 {
            Some(wait) => wait.as_mut().poll(cx),
            None => std::task::Poll::Pending,
        }
    }
}

/// Wakes this thread's timers waiting in `timers_rescaled` (the manager posts it
/// after a new state with another `reduce_timeouts` scale).
pub fn notify_timers_rescaled() {
    RESCALED.with(|n| n.borrow().notify_waiters());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in OverloadAction::ALL {
            assert_eq!(OverloadAction::from_name(a.envoy_name()), Some(a));
        }
        assert_eq!(OverloadAction::from_name("envoy.overload_actions.reduce_heap"), None);
    }

    #[test]
    fn a_scaled_timer_runs_from_its_minimum_to_its_timeout_with_the_scale() {
        let start = Instant::now();
        let max = Duration::from_secs(60);
        let mut state = OverloadState::default();
        assert_eq!(state.deadline(ScaledTimer::ConnectionIdle, start, max), start + max);
        state.set_minimum(ScaledTimer::ConnectionIdle, ScaledMinimum::Absolute(Duration::from_secs(10)));
        assert_eq!(state.deadline(ScaledTimer::ConnectionIdle, start, max), start + max, "inactive");
        state.set(OverloadAction::ReduceTimeouts, 1.0);
        assert_eq!(state.deadline(ScaledTimer::ConnectionIdle, start, max), start + Duration::from_secs(10));
        state.set(OverloadAction::ReduceTimeouts, 0.5);
        assert_eq!(state.deadline(ScaledTimer::ConnectionIdle, start, max), start + Duration::from_secs(35));
        // A minimum above the timeout is the timeout.
        let short = Duration::from_secs(5);
        assert_eq!(state.deadline(ScaledTimer::ConnectionIdle, start, short), start + short);
        // A share of the timeout.
        state.set_minimum(ScaledTimer::ConnectionIdle, ScaledMinimum::Fraction(0.25));
        assert_eq!(
            state.deadline(ScaledTimer::ConnectionIdle, start, max),
            start + Duration::from_secs(15 + 22) + Duration::from_millis(500)
        );
    }

    #[tokio::test]
    async fn waiting_timers_are_woken_when_the_scale_changes() {
        use std::future::Future;
        set_scales_timers(true);
        let rescaled = timers_rescaled();
        let mut rescaled = std::pin::pin!(rescaled);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(rescaled.as_mut().poll(&mut cx).is_pending());
        notify_timers_rescaled();
        assert!(rescaled.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn scaled_actions_apply_by_their_scale() {
        let slot = crate::thread_local::ThreadLocalRegistry::new().allocate_slot::<OverloadState>();
        publish_slot(&slot);
        assert!(!applies(OverloadAction::StopAcceptingRequests), "nothing published on this thread yet");
        let mut state = OverloadState::default();
        state.set(OverloadAction::StopAcceptingRequests, 1.0);
        state.set(OverloadAction::DisableHttpKeepalive, 0.25);
        slot.set_here(state);
        assert!(applies(OverloadAction::StopAcceptingRequests));
        assert!(is_saturated(OverloadAction::StopAcceptingRequests));
        assert!(!applies(OverloadAction::RejectIncomingConnections));
        let hits = (0..10_000).filter(|_| applies(OverloadAction::DisableHttpKeepalive)).count();
        assert!((2_000..3_000).contains(&hits), "about a quarter applied: {hits}");
    }
}
