//! `/clusters`: per-cluster settings and per-host stats, as Envoy's text
//! (`cluster::host::field::value`) and JSON forms.

use std::sync::atomic::AtomicU64;

use serde_json::json;

use super::{Reply, JSON, TEXT};
use crate::server::Server;
use crate::upstream::host::HostStats;
use crate::upstream::resource_manager::{ResourceManager, THRESHOLD_FIELDS};

/// A cluster's circuit-breaker maxima at one priority (`high`: HIGH, else DEFAULT),
/// in Envoy's order.
fn thresholds(resources: &ResourceManager, high: bool) -> impl Iterator<Item = (&'static str, u64)> + '_ {
    THRESHOLD_FIELDS
        .into_iter()
        .map(move |(r, field)| (field, if high { resources.high_priority_max(r) } else { resources.max(r) }))
}

pub(super) fn render(server: &Server, as_json: bool) -> Reply {
    let cm = server.cluster_manager.borrow();
    let Some(cm) = cm.as_ref() else {
        return Reply::ok(if as_json { JSON } else { TEXT }, String::new());
    };
    if as_json {
        return Reply::ok(JSON, json_form(cm));
    }
    let mut out = String::new();
    for info in cm.clusters() {
        let name = &info.name;
        out.push_str(&format!("{name}::observability_name::{}\n", info.stat_name));
        for (priority, high) in [("default_priority", false), ("high_priority", true)] {
            for (field, value) in thresholds(&info.resources, high) {
                out.push_str(&format!("{name}::{priority}::{field}::{value}\n"));
            }
        }
        out.push_str(&format!("{name}::added_via_api::{}\n", !cm.is_static(name)));
        for host in cm.hosts(name).iter() {
            let h = format!("{name}::{}", host.address);
            let s = &host.stats;
            for (field, v) in counters(s) {
                out.push_str(&format!("{h}::{field}::{}\n", HostStats::get(v)));
            }
            out.push_str(&format!("{h}::hostname::{}\n", host.hostname));
            let l = host.locality.as_deref().cloned().unwrap_or_default();
            out.push_str(&format!(
                "{h}::health_flags::{}\n{h}::weight::{}\n{h}::region::{}\n{h}::zone::{}\n{h}::sub_zone::{}\n",
                host.health_flags(),
                host.weight(),
                l.region,
                l.zone,
                l.sub_zone
            ));
            out.push_str(&format!(
                "{h}::canary::false\n{h}::priority::{}\n{h}::success_rate::-1\n{h}::local_origin_success_rate::-1\n",
                host.priority
            ));
        }
    }
    Reply::ok(TEXT, out)
}

/// The per-host stats in Envoy's `/clusters` order.
fn counters(s: &HostStats) -> [(&'static str, &AtomicU64); 9] {
    [
        ("cx_active", &s.cx_active),
        ("cx_connect_fail", &s.cx_connect_fail),
        ("cx_total", &s.cx_total),
        ("rq_active", &s.rq_active),
        ("rq_error", &s.rq_error),
        ("rq_pending_active", &s.rq_pending_active),
        ("rq_success", &s.rq_success),
        ("rq_timeout", &s.rq_timeout),
        ("rq_total", &s.rq_total),
    ]
}

/// A host's `health_status` as Envoy's JSON shows it: the active health flags
/// that are set (proto3 JSON leaves out false), then the EDS status.
fn health_status_json(host: &crate::upstream::host::Host) -> serde_json::Value {
    use crate::upstream::host::{
        ACTIVE_HC_TIMEOUT, DEGRADED_ACTIVE_HC, EXCLUDED_VIA_IMMEDIATE_HC_FAIL, FAILED_ACTIVE_HC,
    };
    let mut status = serde_json::Map::new();
    for (flag, name) in [
        (FAILED_ACTIVE_HC, "failed_active_health_check"),
        (DEGRADED_ACTIVE_HC, "failed_active_degraded_check"),
        (EXCLUDED_VIA_IMMEDIATE_HC_FAIL, "excluded_via_immediate_hc_fail"),
        (ACTIVE_HC_TIMEOUT, "active_hc_timeout"),
    ] {
        if host.active_hc(flag) {
            status.insert(name.to_owned(), json!(true));
        }
    }
    status.insert("eds_health_status".to_owned(), json!(host.eds_health().eds_status_name()));
    serde_json::Value::Object(status)
}

/// A host's locality as Envoy's JSON shows it: the fields that are set.
fn locality_json(l: Option<&crate::upstream::host::Locality>) -> serde_json::Value {
    let mut out = json!({});
    if let Some(l) = l {
        for (k, v) in [("region", &l.region), ("zone", &l.zone), ("sub_zone", &l.sub_zone)] {
            if !v.is_empty() {
                out[k] = json!(v);
            }
        }
    }
    out
}

fn json_form(cm: &crate::upstream::ClusterManager) -> String {
    let statuses: Vec<_> = cm
        .clusters()
        .into_iter()
        .map(|info| {
            let hosts: Vec<_> = cm
                .hosts(&info.name)
                .iter()
                .map(|host| {
                    let s = &host.stats;
                    let mut stats: Vec<_> = [
                        ("cx_connect_fail", &s.cx_connect_fail),
                        ("cx_total", &s.cx_total),
                        ("rq_error", &s.rq_error),
                        ("rq_success", &s.rq_success),
                        ("rq_timeout", &s.rq_timeout),
                        ("rq_total", &s.rq_total),
                    ]
                    .into_iter()
                    .map(|(n, v)| stat_json(n, HostStats::get(v), None))
                    .collect();
                    for (n, v) in [("cx_active", &s.cx_active), ("rq_active", &s.rq_active), ("rq_pending_active", &s.rq_pending_active)] {
                        stats.push(stat_json(n, HostStats::get(v), Some("GAUGE")));
                    }
                    let mut h = json!({
                        "address": { "socket_address": { "address": host.address.ip().to_string(), "port_value": host.address.port() } },
                        "stats": stats,
                        "health_status": health_status_json(host),
                        "weight": host.weight(),
                        "locality": locality_json(host.locality.as_deref()),
                    });
                    if !host.hostname.is_empty() {
                        h["hostname"] = json!(host.hostname);
                    }
                    // proto3 JSON leaves out the default, 0.
                    if host.priority != 0 {
                        h["priority"] = json!(host.priority);
                    }
                    h
                })
                .collect();
            let thresholds: Vec<_> = [None, Some("HIGH")]
                .into_iter()
                .map(|p| {
                    let mut t = json!({});
                    if let Some(p) = p {
                        t["priority"] = json!(p);
                    }
                    for (field, v) in thresholds(&info.resources, p.is_some()) {
                        t[field] = json!(v);
                    }
                    t
                })
                .collect();
            let mut status = json!({
                "name": info.name,
                "host_statuses": hosts,
                "circuit_breakers": { "thresholds": thresholds },
                "observability_name": info.stat_name,
            });
            // proto3 JSON leaves out the default, false.
            if !cm.is_static(&info.name) {
                status["added_via_api"] = json!(true);
            }
            status
        })
        .collect();
    super::config_dump::pretty(&json!({ "cluster_statuses": statuses }))
}

/// Envoy omits zero values from proto JSON; counters are strings (uint64).
fn stat_json(name: &str, value: u64, kind: Option<&str>) -> serde_json::Value {
    let mut v = json!({ "name": name });
    if value != 0 {
        v["value"] = json!(value.to_string());
    }
    if let Some(k) = kind {
        v["type"] = json!(k);
    }
    v
}
