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

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::common::random;
use crate::thread_local::{LocalSlot, Slot};

/// `FixedHeapConfig`: pressure is the heap in use over `max_heap_size_bytes`.
pub const FIXED_HEAP_TYPE: &str = "envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig";
/// `DownstreamConnectionsConfig`: `max_active_downstream_connections` over all
/// listeners, checked as each connection is accepted.
pub const DOWNSTREAM_CONNECTIONS_TYPE: &str =
    "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig";
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
}

impl OverloadAction {
    pub const ALL: [OverloadAction; 5] = [
        OverloadAction::StopAcceptingRequests,
        OverloadAction::DisableHttpKeepalive,
        OverloadAction::StopAcceptingConnections,
        OverloadAction::RejectIncomingConnections,
        OverloadAction::ShrinkHeap,
    ];

    pub fn envoy_name(self) -> &'static str {
        match self {
            OverloadAction::StopAcceptingRequests => "envoy.overload_actions.stop_accepting_requests",
            OverloadAction::DisableHttpKeepalive => "envoy.overload_actions.disable_http_keepalive",
            OverloadAction::StopAcceptingConnections => "envoy.overload_actions.stop_accepting_connections",
            OverloadAction::RejectIncomingConnections => "envoy.overload_actions.reject_incoming_connections",
            OverloadAction::ShrinkHeap => "envoy.overload_actions.shrink_heap",
        }
    }

    pub fn from_name(name: &str) -> Option<OverloadAction> {
        Self::ALL.into_iter().find(|a| a.envoy_name() == name)
    }
}

/// Each action's scale, 0 to 1.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OverloadState {
    scale: [f32; OverloadAction::ALL.len()],
}

impl OverloadState {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in OverloadAction::ALL {
            assert_eq!(OverloadAction::from_name(a.envoy_name()), Some(a));
        }
        assert_eq!(OverloadAction::from_name("envoy.overload_actions.reduce_timeouts"), None);
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
