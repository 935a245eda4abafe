//! `/config_dump?include_eds`: Envoy's `EndpointsConfigDump`, each cluster's
//! membership as a `ClusterLoadAssignment` — of every cluster, not only EDS
//! ones, as Envoy dumps them: `static_endpoint_configs` for those of
//! `static_resources`, `dynamic_endpoint_configs` for CDS's. It is rebuilt
//! from the hosts (as Envoy's is from its priority set), so it shows what runs:
//! a DNS cluster's resolved addresses, an EDS cluster's last assignment. The
//! shape (localities by priority, `health_check_config: {}`, no `version_info`
//! nor `last_updated`) is the one Envoy 1.40 prints.

use serde_json::{json, Map, Value as Json};

use crate::config::path_source::ENDPOINT_TYPE;
use crate::upstream::priority::locality_groups;
use crate::upstream::{ClusterInfo, ClusterManager, HostSet};

pub(super) fn render(cm: &ClusterManager) -> Json {
    let mut dump = json!({ "@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump" });
    let (mut statics, mut dynamics) = (Vec::new(), Vec::new());
    for info in cm.clusters() {
        let config = json!({ "endpoint_config": assignment(&info, &cm.hosts(&info.name), cm) });
        if cm.is_static(&info.name) {
            statics.push(config);
        } else {
            dynamics.push(config);
        }
    }
    // An empty list is left out, as protobuf's JSON leaves it.
    for (key, list) in [("static_endpoint_configs", statics), ("dynamic_endpoint_configs", dynamics)] {
        if !list.is_empty() {
            dump[key] = Json::Array(list);
        }
    }
    dump
}

/// One cluster's hosts as a `ClusterLoadAssignment`, named as its EDS
/// resource (`service_name`) or the cluster.
fn assignment(info: &ClusterInfo, hosts: &HostSet, cm: &ClusterManager) -> Json {
    let name = info.eds.as_ref().map_or(&info.name, |e| &e.service_name);
    let mut out = Map::new();
    out.insert("@type".into(), json!(format!("type.googleapis.com/{ENDPOINT_TYPE}")));
    out.insert("cluster_name".into(), json!(name));
    let mut localities = Vec::new();
    let top = hosts.last().map_or(0, |h| h.priority);
    for priority in 0..=top {
        let level: Vec<_> = hosts.iter().filter(|h| h.priority == priority).cloned().collect();
        for (locality, group) in locality_groups(&level, info.local_locality.as_deref()) {
            let mut place = Map::new();
            for (key, value) in
                [("region", &locality.region), ("zone", &locality.zone), ("sub_zone", &locality.sub_zone)]
            {
                if !value.is_empty() {
                    place.insert(key.into(), json!(value));
                }
            }
            let endpoints: Vec<Json> = group
                .iter()
                .map(|h| {
                    let mut endpoint = json!({
                        "address": { "socket_address": { "address": h.address.ip().to_string(), "port_value": h.address.port() } },
                        "health_check_config": {},
                    });
                    if !h.hostname.is_empty() {
                        endpoint["hostname"] = json!(h.hostname);
                    }
                    let mut lb_endpoint = json!({ "endpoint": endpoint, "health_status": h.eds_health().dump_name() });
                    // Envoy's DNS hosts carry an empty metadata message.
                    if info.discovery.is_dns() {
                        lb_endpoint["metadata"] = json!({});
                    }
                    lb_endpoint["load_balancing_weight"] = json!(h.weight());
                    lb_endpoint
                })
                .collect();
            let weight = group.last().map_or(0, |h| h.locality_weight);
            let mut entry = json!({ "locality": place, "lb_endpoints": endpoints, "load_balancing_weight": weight });
            if priority > 0 {
                entry["priority"] = json!(priority);
            }
            localities.push(entry);
        }
    }
    if !localities.is_empty() {
        out.insert("endpoints".into(), Json::Array(localities));
    }
    let mut policy = json!({ "overprovisioning_factor": cm.overprovisioning_factor(info) });
    // As Envoy, a share dropped shows in millionths (its f32 scaled, truncated).
    let share = info.drop_overload.share();
    if share > 0.0 {
        let numerator = (share * 1_000_000.0) as u32;
        let mut drop = json!({ "drop_percentage": { "numerator": numerator, "denominator": "MILLION" } });
        let category = info.drop_overload.category();
        if !category.is_empty() {
            drop["category"] = json!(&*category);
        }
        policy["drop_overloads"] = json!([drop]);
    }
    out.insert("policy".into(), policy);
    Json::Object(out)
}
