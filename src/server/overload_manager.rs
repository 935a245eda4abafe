//! Envoy's overload manager, on the main thread: every `refresh_interval` it
//! reads its resource monitors (heap in use against `fixed_heap`'s maximum, the
//! cgroup's memory against its limit), computes each action's state from its
//! triggers (a threshold saturates the action at a pressure; a scaled trigger
//! scales it between two pressures), and posts the new state to every thread
//! when it changed (`crate::overload`). `global_downstream_max_connections` is
//! not refreshed: as Envoy's proactive resource, each accept checks the open
//! connection count against it.
//!
//! `reduce_timeouts` carries the minimums of the timers it scales
//! (`ScaleTimersOverloadActionConfig`) in the posted state; when its scale
//! changes, every worker's waiting timers are woken to compute their deadlines
//! again.
//!
//! Stats as Envoy's: `overload.<monitor>.pressure` (percent, not clamped),
//! `.failed_updates`, `.skipped_updates`; `overload.<action>.active` (0/1) and
//! `.scale_percent`; `overload.refresh_interval_delay` (ms late of a refresh).

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::overload::v3::scale_timers_overload_action_config::{
    scale_timer::OverloadAdjust, TimerType,
};
use envoy_types::pb::envoy::config::overload::v3::{
    resource_monitor::ConfigType, trigger::TriggerOneof, OverloadManager as OverloadManagerProto,
    ScaleTimersOverloadActionConfig,
};
use envoy_types::pb::envoy::extensions::resource_monitors::cgroup_memory::v3::CgroupMemoryConfig;
use envoy_types::pb::envoy::extensions::resource_monitors::downstream_connections::v3::DownstreamConnectionsConfig;
use envoy_types::pb::envoy::extensions::resource_monitors::fixed_heap::v3::FixedHeapConfig;
use envoy_types::pb::google::protobuf::Any;

use crate::config::bootstrap::decode_any;
use crate::config::{duration_or, ConfigError, FieldPath};
use crate::overload::{self, OverloadAction, OverloadState, ScaledMinimum, ScaledTimer};
use crate::stats::{Counter, Gauge, Histogram, Store};
use crate::thread_local::Slot;

/// Envoy's default `refresh_interval`.
const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// What a resource monitor measures.
#[derive(Debug, Clone, PartialEq)]
enum Resource {
    FixedHeap {
        max_bytes: u64,
    },
    CgroupMemory {
        max_bytes: Option<u64>,
    },
    /// Checked at accept, never refreshed.
    DownstreamConnections,
}

impl Resource {
    /// The pressure now (1.0 is the limit), or `None` when it cannot be read.
    fn pressure(&self) -> Option<f64> {
        match self {
            Resource::FixedHeap { max_bytes } => Some(super::memory::usage().allocated as f64 / *max_bytes as f64),
            Resource::CgroupMemory { max_bytes } => {
                let (used, limit) = cgroup_memory(std::path::Path::new(CGROUP_ROOT))?;
                let limit = match (limit, max_bytes) {
                    (Some(l), Some(m)) => l.min(*m),
                    (Some(l), None) => l,
                    (None, Some(m)) => *m,
                    (None, None) => return None,
                };
                Some(used as f64 / limit as f64)
            }
            Resource::DownstreamConnections => None,
        }
    }
}

/// Where the process's cgroup is mounted (its own, in a container).
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The cgroup's memory in use and its limit (`None`: unlimited), from cgroup v2
/// or, failing that, v1, under `root`.
fn cgroup_memory(root: &std::path::Path) -> Option<(u64, Option<u64>)> {
    let read = |p: &str| std::fs::read_to_string(root.join(p)).ok().map(|s| s.trim().to_string());
    if let Some(used) = read("memory.current") {
        // v2 says "max" for no limit.
        let limit = read("memory.max").and_then(|l| l.parse().ok());
        return Some((used.parse().ok()?, limit));
    }
    let used = read("memory/memory.usage_in_bytes")?.parse().ok()?;
    // v1 reports "no limit" as a huge number.
    let limit = read("memory/memory.limit_in_bytes").and_then(|l| l.parse().ok()).filter(|l| *l < 1 << 60);
    Some((used, limit))
}

#[derive(Debug)]
struct Monitor {
    resource: Resource,
    pressure: Arc<Gauge>,
    failed_updates: Arc<Counter>,
    /// Envoy counts a refresh skipped while the last was still running; Courier's
    /// reads are synchronous, so it stays 0.
    _skipped_updates: Arc<Counter>,
}

#[derive(Debug, Clone, Copy)]
enum TriggerKind {
    Threshold(f64),
    Scaled { scaling: f64, saturation: f64 },
}

#[derive(Debug)]
struct Trigger {
    monitor: usize,
    kind: TriggerKind,
}

impl Trigger {
    /// The action's scale this trigger asks for at `pressure`.
    fn scale(&self, pressure: f64) -> f32 {
        match self.kind {
            TriggerKind::Threshold(value) => f32::from(u8::from(pressure >= value)),
            TriggerKind::Scaled { saturation, .. } if pressure >= saturation => 1.0,
            TriggerKind::Scaled { scaling, .. } if pressure <= scaling => 0.0,
            TriggerKind::Scaled { scaling, saturation } => ((pressure - scaling) / (saturation - scaling)) as f32,
        }
    }
}

#[derive(Debug)]
struct Action {
    action: OverloadAction,
    triggers: Vec<Trigger>,
    /// `reduce_timeouts`' timer minimums.
    minimums: Vec<(ScaledTimer, ScaledMinimum)>,
    active: Arc<Gauge>,
    scale_percent: Arc<Gauge>,
}

/// `ScaleTimersOverloadActionConfig`: each timer's minimum. Envoy's validation
/// rules (at least one, no UNSPECIFIED, a minimum given) were checked when the
/// config was read; a repeated timer is refused as Envoy does.
fn timer_minimums(any: &Any, path: &FieldPath) -> Result<Vec<(ScaledTimer, ScaledMinimum)>, ConfigError> {
    let c: ScaleTimersOverloadActionConfig = decode_any(any, path)?;
    let mut minimums: Vec<(ScaledTimer, ScaledMinimum)> = Vec::new();
    for (i, t) in c.timer_scale_factors.iter().enumerate() {
        let mut at = path.child("timer_scale_factors");
        at.push_index(i);
        let kind = TimerType::try_from(t.timer).unwrap_or(TimerType::Unspecified);
        let timer = match kind {
            TimerType::HttpDownstreamConnectionIdle => ScaledTimer::ConnectionIdle,
            TimerType::HttpDownstreamStreamIdle => ScaledTimer::StreamIdle,
            TimerType::TransportSocketConnect => ScaledTimer::TransportSocketConnect,
            other => {
                return Err(at.field_error(
                    "timer",
                    format!(
                        "Courier scales HTTP_DOWNSTREAM_CONNECTION_IDLE, HTTP_DOWNSTREAM_STREAM_IDLE and \
                         TRANSPORT_SOCKET_CONNECT, not {}",
                        other.as_str_name()
                    ),
                ))
            }
        };
        if minimums.iter().any(|(t, _)| *t == timer) {
            return Err(at.error(format!("Found duplicate entry for timer type {}", kind.as_str_name())));
        }
        let minimum = match t.overload_adjust {
            Some(OverloadAdjust::MinTimeout(d)) => ScaledMinimum::Absolute(crate::config::duration(&d)),
            Some(OverloadAdjust::MinScale(p)) => ScaledMinimum::Fraction((p.value / 100.0) as f32),
            None => return Err(at.error("a timer needs min_timeout or min_scale")),
        };
        minimums.push((timer, minimum));
    }
    Ok(minimums)
}

/// The overload manager built from `overload_manager`.
#[derive(Debug)]
pub struct OverloadManager {
    refresh_interval: Duration,
    monitors: Vec<Monitor>,
    actions: Vec<Action>,
    refresh_interval_delay: Arc<Histogram>,
    /// The last state posted to the threads.
    posted: Option<OverloadState>,
    /// `max_active_downstream_connections`, for every accept to check.
    global_max_connections: Option<u64>,
}

impl OverloadManager {
    /// Builds the manager; `path` points at `overload_manager`.
    pub fn from_proto(
        p: &OverloadManagerProto,
        store: &Store,
        path: &FieldPath,
    ) -> Result<OverloadManager, ConfigError> {
        let mut monitors = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        let mut global_max = None;
        for (i, m) in p.resource_monitors.iter().enumerate() {
            let mut at = path.child("resource_monitors");
            at.push_index(i);
            if names.contains(&m.name.as_str()) {
                return Err(at.field_error("name", format!("duplicate resource monitor '{}'", m.name)));
            }
            let Some(ConfigType::TypedConfig(any)) = &m.config_type else {
                return Err(at.field_error("typed_config", "a resource monitor needs a typed_config"));
            };
            let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
            let typed = at.child("typed_config");
            let resource = match type_name {
                overload::FIXED_HEAP_TYPE => {
                    let c: FixedHeapConfig = decode_any(any, &typed)?;
                    if c.max_heap_size_bytes == 0 {
                        return Err(typed.field_error("max_heap_size_bytes", "must be greater than 0"));
                    }
                    Resource::FixedHeap { max_bytes: c.max_heap_size_bytes }
                }
                overload::CGROUP_MEMORY_TYPE => {
                    let c: CgroupMemoryConfig = decode_any(any, &typed)?;
                    Resource::CgroupMemory { max_bytes: Some(c.max_memory_bytes).filter(|m| *m > 0) }
                }
                overload::DOWNSTREAM_CONNECTIONS_TYPE => {
                    let c: DownstreamConnectionsConfig = decode_any(any, &typed)?;
                    if c.max_active_downstream_connections <= 0 {
                        return Err(typed.field_error("max_active_downstream_connections", "must be greater than 0"));
                    }
                    global_max = Some(c.max_active_downstream_connections as u64);
                    Resource::DownstreamConnections
                }
                other => return Err(at.field_error("typed_config", format!("unsupported resource monitor '{other}'"))),
            };
            let prefix = format!("overload.{}.", m.name);
            monitors.push(Monitor {
                resource,
                pressure: store.gauge(&format!("{prefix}pressure")),
                failed_updates: store.counter(&format!("{prefix}failed_updates")),
                _skipped_updates: store.counter(&format!("{prefix}skipped_updates")),
            });
            names.push(&m.name);
        }
        let mut actions = Vec::new();
        for (i, a) in p.actions.iter().enumerate() {
            let mut at = path.child("actions");
            at.push_index(i);
            let action = OverloadAction::from_name(&a.name)
                .ok_or_else(|| at.field_error("name", format!("unsupported overload action '{}'", a.name)))?;
            if actions.iter().any(|x: &Action| x.action == action) {
                return Err(at.field_error("name", format!("duplicate overload action '{}'", a.name)));
            }
            let mut triggers = Vec::new();
            for (j, t) in a.triggers.iter().enumerate() {
                let mut tat = at.child("triggers");
                tat.push_index(j);
                let monitor = names
                    .iter()
                    .position(|n| *n == t.name)
                    .ok_or_else(|| tat.field_error("name", format!("unknown trigger resource '{}'", t.name)))?;
                if monitors[monitor].resource == Resource::DownstreamConnections {
                    return Err(tat.field_error(
                        "name",
                        "global_downstream_max_connections is checked at accept and triggers no action",
                    ));
                }
                let kind = match &t.trigger_oneof {
                    Some(TriggerOneof::Threshold(th)) => TriggerKind::Threshold(th.value),
                    Some(TriggerOneof::Scaled(s)) => {
                        if s.scaling_threshold >= s.saturation_threshold {
                            return Err(
                                tat.field_error("scaled", "scaling_threshold must be below saturation_threshold")
                            );
                        }
                        TriggerKind::Scaled { scaling: s.scaling_threshold, saturation: s.saturation_threshold }
                    }
                    None => return Err(tat.error("a trigger needs threshold or scaled")),
                };
                triggers.push(Trigger { monitor, kind });
            }
            let minimums = match (action, &a.typed_config) {
                (OverloadAction::ReduceTimeouts, Some(any)) => timer_minimums(any, &at.child("typed_config"))?,
                (OverloadAction::ReduceTimeouts, None) => {
                    return Err(at.error(format!("Overload action \"{}\" requires typed_config", a.name)))
                }
                (_, Some(_)) => return Err(at.field_error("typed_config", "only reduce_timeouts takes a typed_config")),
                (_, None) => Vec::new(),
            };
            let prefix = format!("overload.{}.", a.name);
            actions.push(Action {
                action,
                triggers,
                minimums,
                active: store.gauge(&format!("{prefix}active")),
                scale_percent: store.gauge(&format!("{prefix}scale_percent")),
            });
        }
        Ok(OverloadManager {
            global_max_connections: global_max,
            refresh_interval: duration_or(&p.refresh_interval, DEFAULT_REFRESH_INTERVAL),
            monitors,
            actions,
            refresh_interval_delay: store.histogram("overload.refresh_interval_delay"),
            posted: None,
        })
    }

    /// Reads the monitors and posts the actions' state to every thread of
    /// `slot`'s registry when it changed.
    pub fn refresh(&mut self, slot: &Slot<OverloadState>) {
        let pressures: Vec<Option<f64>> = self
            .monitors
            .iter()
            .map(|m| {
                if m.resource == Resource::DownstreamConnections {
                    return None;
                }
                let p = m.resource.pressure();
                match p {
                    Some(p) => m.pressure.set((p * 100.0) as i64),
                    None => m.failed_updates.inc(),
                }
                p
            })
            .collect();
        let mut state = OverloadState::default();
        for a in &self.actions {
            // The most engaged trigger wins; a monitor that failed keeps none engaged.
            let scale =
                a.triggers.iter().filter_map(|t| pressures[t.monitor].map(|p| t.scale(p))).fold(0.0f32, f32::max);
            state.set(a.action, scale);
            for (timer, minimum) in &a.minimums {
                state.set_minimum(*timer, *minimum);
            }
        }
        if state.is_saturated(OverloadAction::ShrinkHeap) {
            super::memory::release_free_memory();
        }
        if self.posted == Some(state) {
            return;
        }
        let timeouts = OverloadAction::ReduceTimeouts;
        let rescaled = self.posted.is_none_or(|p| p.scale(timeouts) != state.scale(timeouts));
        self.posted = Some(state);
        slot.set(move || state);
        // After the new state, on each thread: waiting timers read it. The gauges
        // move once every thread has it, so that whoever reads `.active` = 1 on the
        // admin endpoint finds every worker already acting on it.
        let gauges: Vec<_> =
            self.actions.iter().map(|a| (a.action, a.active.clone(), a.scale_percent.clone())).collect();
        slot.run_on_all_threads_then(
            move |_| {
                if rescaled {
                    overload::notify_timers_rescaled();
                }
            },
            move || {
                for (action, active, scale_percent) in gauges {
                    active.set(i64::from(state.is_saturated(action)));
                    scale_percent.set((state.scale(action) * 100.0) as i64);
                }
            },
        );
    }

    /// Starts the manager on this (the main) thread: the connection limit and
    /// `slot` are published, and a task refreshes every `refresh_interval`, the
    /// first time one interval after start-up, as Envoy's (until then no action
    /// is engaged).
    pub fn start(mut self, slot: Slot<OverloadState>) {
        overload::set_global_max_connections(self.global_max_connections);
        overload::set_scales_timers(self.actions.iter().any(|a| a.action == OverloadAction::ReduceTimeouts));
        overload::publish_slot(&slot);
        tokio::task::spawn_local(async move {
            let mut tick = tokio::time::interval(self.refresh_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                let due = tick.tick().await;
                let late = tokio::time::Instant::now().saturating_duration_since(due);
                self.refresh_interval_delay.record(late.as_millis() as u64);
                self.refresh(&slot);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(yaml: &str) -> Result<OverloadManager, ConfigError> {
        let json = crate::config::bootstrap::parse_yaml(yaml).map_err(|e| ConfigError::new("", e))?;
        let desc = crate::config::descriptor::message("envoy.config.overload.v3.OverloadManager").unwrap();
        let msg = crate::config::proto_json::decode(&desc, &json, &mut FieldPath::new())?;
        let proto: OverloadManagerProto =
            prost::Message::decode(prost::Message::encode_to_vec(&msg).as_slice()).unwrap();
        OverloadManager::from_proto(&proto, &Store::new(), &FieldPath::starting_at("overload_manager"))
    }

    const HEAP: &str = r#"
resource_monitors:
- name: heap
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig
    max_heap_size_bytes: 1000
"#;

    #[test]
    fn config_errors_name_the_field() {
        let err = |actions: &str| build(&format!("{HEAP}actions:\n{actions}")).unwrap_err().to_string();
        let e = err(
            "- { name: envoy.overload_actions.reset_high_memory_stream, triggers: [{ name: heap, threshold: { value: 0.9 } }] }",
        );
        assert!(e.contains("overload_manager.actions[0].name") && e.contains("unsupported overload action"), "{e}");
        let reduce =
            "- { name: envoy.overload_actions.reduce_timeouts, triggers: [{ name: heap, threshold: { value: 0.9 } }]";
        let e = err(&format!("{reduce} }}"));
        assert!(
            e.contains("actions[0]: Overload action \"envoy.overload_actions.reduce_timeouts\" requires typed_config"),
            "{e}"
        );
        let scale = "\"@type\": type.googleapis.com/envoy.config.overload.v3.ScaleTimersOverloadActionConfig";
        let e = err(&format!("{reduce}, typed_config: {{ {scale}, timer_scale_factors: [{{ timer: HTTP_DOWNSTREAM_CONNECTION_IDLE, min_timeout: 1s }}, {{ timer: HTTP_DOWNSTREAM_CONNECTION_IDLE, min_scale: {{ value: 10 }} }}] }} }}"));
        assert!(
            e.contains("timer_scale_factors[1]: Found duplicate entry for timer type HTTP_DOWNSTREAM_CONNECTION_IDLE"),
            "{e}"
        );
        let e = err(&format!("{reduce}, typed_config: {{ {scale}, timer_scale_factors: [{{ timer: HTTP_DOWNSTREAM_STREAM_FLUSH, min_timeout: 1s }}] }} }}"));
        assert!(e.contains("timer_scale_factors[0].timer") && e.contains("not HTTP_DOWNSTREAM_STREAM_FLUSH"), "{e}");
        let e = err(&format!("- {{ name: envoy.overload_actions.shrink_heap, triggers: [{{ name: heap, threshold: {{ value: 0.9 }} }}], typed_config: {{ {scale}, timer_scale_factors: [{{ timer: HTTP_DOWNSTREAM_CONNECTION_IDLE, min_timeout: 1s }}] }} }}"));
        assert!(e.contains("actions[0].typed_config") && e.contains("only reduce_timeouts"), "{e}");
        let e = err(
            "- { name: envoy.overload_actions.shrink_heap, triggers: [{ name: nope, threshold: { value: 0.9 } }] }",
        );
        assert!(e.contains("actions[0].triggers[0].name") && e.contains("unknown trigger resource 'nope'"), "{e}");
        let e = err("- { name: envoy.overload_actions.shrink_heap, triggers: [{ name: heap, scaled: { scaling_threshold: 0.9, saturation_threshold: 0.5 } }] }");
        assert!(e.contains("scaling_threshold must be below"), "{e}");
    }

    #[test]
    fn an_engaged_action_reaches_the_threads_state() {
        let mut m = build(&format!(
            "{HEAP}actions:\n- {{ name: envoy.overload_actions.stop_accepting_requests, triggers: [{{ name: heap, threshold: {{ value: 0.5 }} }}] }}"
        ))
        .unwrap();
        let registry = crate::thread_local::ThreadLocalRegistry::new();
        let slot = registry.allocate_slot::<OverloadState>();
        m.refresh(&slot);
        let posted = m.posted.expect("a state was posted");
        assert!(posted.is_saturated(OverloadAction::StopAcceptingRequests), "the heap is far over 1,000 bytes");
        assert_eq!(m.actions[0].active.value(), 1);
        assert!(m.monitors[0].pressure.value() > 100);
    }

    #[test]
    fn cgroup_memory_reads_v2_then_v1_and_max_memory_bytes_caps_the_limit() {
        let root = std::env::temp_dir().join(format!("courier-cgroup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("memory")).unwrap();
        std::fs::write(root.join("memory/memory.usage_in_bytes"), "300\n").unwrap();
        std::fs::write(root.join("memory/memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        assert_eq!(cgroup_memory(&root), Some((300, None)), "v1, no limit");
        std::fs::write(root.join("memory.current"), "400\n").unwrap();
        std::fs::write(root.join("memory.max"), "max\n").unwrap();
        assert_eq!(cgroup_memory(&root), Some((400, None)), "v2 first, 'max' is no limit");
        std::fs::write(root.join("memory.max"), "1000\n").unwrap();
        assert_eq!(cgroup_memory(&root), Some((400, Some(1000))));
        let _ = std::fs::remove_dir_all(&root);
        // The limit is the smaller of the cgroup's and `max_memory_bytes`; with
        // neither (outside a memory cgroup, as here) the update fails.
        let c = CgroupMemoryConfig { max_memory_bytes: 1 };
        let r = Resource::CgroupMemory { max_bytes: Some(c.max_memory_bytes).filter(|m| *m > 0) };
        if let Some(p) = r.pressure() {
            assert!(p > 1.0, "every byte in use is over a 1-byte maximum");
        }
    }

    #[test]
    fn triggers_scale_as_envoys() {
        let t = Trigger { monitor: 0, kind: TriggerKind::Threshold(0.9) };
        assert_eq!((t.scale(0.89), t.scale(0.9), t.scale(5.0)), (0.0, 1.0, 1.0));
        let s = Trigger { monitor: 0, kind: TriggerKind::Scaled { scaling: 0.5, saturation: 0.9 } };
        assert_eq!((s.scale(0.5), s.scale(0.7), s.scale(0.9)), (0.0, 0.5, 1.0));
    }
}
