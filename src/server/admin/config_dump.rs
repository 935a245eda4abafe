//! `/config_dump`: the effective config as Envoy's `ConfigDump` — the
//! bootstrap, then the static and (from CDS and LDS) dynamic clusters, active
//! and warming, with `include_eds` every cluster's endpoints
//! (`endpoints_dump`), the listeners (a dynamic one active, warming and
//! draining), the route configs written inline and those from RDS, then the
//! static and SDS secrets — printed with proto field names
//! and Envoy's one-space indentation, sensitive fields (private keys) redacted
//! as Envoy redacts them (`config::redact`). Its `resource`, `mask` and
//! `name_regex` query parameters filter it (`config_dump_query`).
//!
//! The server keeps the bootstrap protobuf-encoded, not the schema it needs to be
//! printed: each dump decodes the schema, renders, and frees it again.

use envoy_types::pb::envoy::config::listener::v3::{filter::ConfigType, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};
use prost::{Message, Name};
use prost_reflect::{DynamicMessage, ReflectMessage, SerializeOptions, Value};
use serde::Serialize;
use serde_json::{json, Value as Json};

use super::config_dump_query::{DumpError, DumpQuery};
use crate::config::path_source::{CLUSTER_TYPE, LISTENER_TYPE};
use crate::config::{self, bootstrap::BOOTSTRAP_TYPE, descriptor};
use crate::extensions::filters::network::http_connection_manager::rds::ROUTE_TYPE;
use crate::extensions::transport_sockets::tls::SECRET_TYPE;
use crate::server::xds::{AppliedResource, AppliedResources, AppliedState};
use crate::server::Server;

/// The dump, filtered by `query` (`config_dump_query`).
pub(super) fn render(server: &Server, include_eds: bool, query: &DumpQuery) -> Result<String, DumpError> {
    let configs = configs(server, include_eds);
    let dump = match query.is_empty() {
        true => Ok(json!({ "configs": configs })),
        false => query.apply(configs),
    };
    config::release_schema();
    crate::server::memory::release_free_memory();
    dump.map(|d| pretty(&d))
}

/// The dump's `configs`, in Envoy's order.
fn configs(server: &Server, include_eds: bool) -> Vec<Json> {
    let decoded = descriptor::message(BOOTSTRAP_TYPE)
        .ok_or_else(|| format!("{BOOTSTRAP_TYPE} missing from the schema"))
        .and_then(|desc| DynamicMessage::decode(desc, server.bootstrap_dump.as_slice()).map_err(|e| e.to_string()));
    let mut bootstrap_dump = match decoded {
        Ok(b) => b,
        Err(e) => return vec![json!({ "error": format!("cannot decode the bootstrap: {e}") })],
    };
    config::redact::redact(&mut bootstrap_dump);
    let bootstrap = to_json(&bootstrap_dump);
    let updated = humantime_rfc3339(server.started_wall);
    let statics = |field: &str, key: &str| -> Vec<Json> {
        let mut items = static_resources(&bootstrap_dump, field);
        // Envoy's cluster manager lists its clusters by name; listeners as configured.
        if field == "clusters" {
            items.sort_by_cached_key(|m| m.get_field_by_name("name").and_then(|n| n.as_str().map(str::to_string)));
        }
        items.into_iter().map(|m| json!({ key: to_typed_json(&m), "last_updated": updated })).collect()
    };
    let mut clusters = json!({
        "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
        "static_clusters": statics("clusters", "cluster"),
    });
    add_clusters(&mut clusters, server);
    let mut listeners = json!({
        "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
        "static_listeners": statics("listeners", "listener"),
    });
    let lds = server.lds_state.borrow();
    add_listeners(&mut listeners, &lds);
    let mut configs = vec![
        json!({
            "@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
            "bootstrap": bootstrap,
            "last_updated": updated,
        }),
        clusters,
    ];
    // Envoy's order: the endpoints after the clusters.
    if let Some(cm) = server.cluster_manager.borrow().as_ref().filter(|_| include_eds) {
        configs.push(super::endpoints_dump::render(cm));
    }
    configs.push(listeners);
    configs.extend(routes(server, &bootstrap_dump, &updated, &lds));
    configs.push(secrets(server, &bootstrap_dump));
    configs
}

/// The clusters from CDS as Envoy shows them: one that warms (until its first
/// assignment or its secrets) under `dynamic_warming_clusters`, and under
/// `dynamic_active_clusters` the namesake that runs meanwhile, if one does.
fn add_clusters(dump: &mut Json, server: &Server) {
    let state = server.cds_state.borrow();
    if !state.version_info.is_empty() {
        dump["version_info"] = json!(state.version_info);
    }
    let cm = server.cluster_manager.borrow();
    let warms = |name: &str| cm.as_ref().is_some_and(|cm| cm.warms(name));
    let superseded = state.transitions().map(|t| &t.superseded);
    let (mut active, mut warming) = (Vec::new(), Vec::new());
    for (name, r) in state.resources.iter() {
        match warms(name) {
            true => {
                warming.push((name.as_str(), r));
                active.extend(superseded.and_then(|s| s.get(name)).map(|s| (name.as_str(), s)));
            }
            false => active.push((name.as_str(), r)),
        }
    }
    for (list, items) in [("dynamic_active_clusters", active), ("dynamic_warming_clusters", warming)] {
        let rendered = applied(items, CLUSTER_TYPE, "cluster");
        if !rendered.is_empty() {
            dump[list] = json!(rendered);
        }
    }
}

/// The listeners from LDS as Envoy shows them, each by name with what serves
/// (`active_state`), what warms until its routes and secrets come
/// (`warming_state`) and what was replaced or removed and still drains
/// (`draining_state`, the oldest drain; not one of an in-place update).
fn add_listeners(dump: &mut Json, state: &AppliedState) {
    if !state.version_info.is_empty() {
        dump["version_info"] = json!(state.version_info);
    }
    let draining: Vec<_> = state.draining().collect();
    let mut names: Vec<&str> =
        state.resources.keys().map(String::as_str).chain(draining.iter().map(|d| d.name.as_str())).collect();
    names.sort_unstable();
    names.dedup();
    let mut listeners = Vec::new();
    for name in names {
        let states = [
            ("active_state", state.serving(name)),
            ("warming_state", state.warming(name)),
            // Envoy shows the oldest of its drains.
            ("draining_state", draining.iter().find(|d| d.name == name && !d.in_place).map(|d| &d.resource)),
        ];
        let mut entry = json!({ "name": name });
        for (field, resource) in states {
            let Some(r) = resource else { continue };
            entry[field] = applied(vec![(name, r)], LISTENER_TYPE, "listener").remove(0);
        }
        listeners.push(entry);
    }
    if !listeners.is_empty() {
        dump["dynamic_listeners"] = json!(listeners);
    }
}

/// Envoy's `ScopedRoutesConfigDump` (empty: Courier has no scoped routes) and
/// `RoutesConfigDump` after the listeners, once a listener shown has a
/// connection manager (Envoy's route config manager exists then): the route
/// configs written inline (`static_route_configs`, one per connection manager
/// that carries it: of every listener serving, warming or draining, as Envoy
/// lists them), then each that RDS has loaded, with the version that brought
/// it and when.
fn routes(server: &Server, bootstrap: &DynamicMessage, started: &str, lds: &AppliedState) -> Vec<Json> {
    let mut managers = 0;
    let mut inline: Vec<(RouteConfiguration, String)> = Vec::new();
    let mut add = |l: &Listener, updated: &dyn Fn() -> String, skip: Option<&Listener>| {
        for chain in l.filter_chains.iter().chain(&l.default_filter_chain) {
            // An in-place update drains only the chains its successor lacks.
            if skip.is_some_and(|s| s.filter_chains.contains(chain) || s.default_filter_chain.as_ref() == Some(chain)) {
                continue;
            }
            for hcm in connection_managers(chain) {
                managers += 1;
                if let Some(RouteSpecifier::RouteConfig(rc)) = hcm.route_specifier {
                    inline.push((rc, updated()));
                }
            }
        }
    };
    for l in static_resources(bootstrap, "listeners") {
        if let Ok(l) = l.transcode_to::<Listener>() {
            add(&l, &|| started.to_string(), None);
        }
    }
    let decode = |r: &AppliedResource| Listener::decode(r.encoded.as_slice()).ok();
    let mut names: Vec<&String> = lds.resources.keys().collect();
    names.sort_unstable();
    for name in names {
        for r in lds.serving(name).into_iter().chain(lds.warming(name)) {
            if let Some(l) = decode(r) {
                add(&l, &|| protobuf_timestamp(r.last_updated), None);
            }
        }
    }
    for d in lds.draining() {
        let successor = d.in_place.then(|| lds.serving(&d.name).and_then(decode)).flatten();
        if let Some(l) = decode(&d.resource) {
            add(&l, &|| protobuf_timestamp(d.resource.last_updated), successor.as_ref());
        }
    }
    let mut dynamic = AppliedResources::default();
    for state in server.rds_states.borrow().iter() {
        dynamic.extend(state.borrow().resources.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    if managers == 0 && dynamic.is_empty() {
        return Vec::new();
    }
    let scoped = json!({ "@type": "type.googleapis.com/envoy.admin.v3.ScopedRoutesConfigDump" });
    let mut dump = json!({ "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump" });
    let Some(desc) = descriptor::message(ROUTE_TYPE) else { return vec![scoped, dump] };
    let statics: Vec<Json> = inline
        .into_iter()
        .map(|(rc, updated)| {
            let route_config = match DynamicMessage::decode(desc.clone(), rc.encode_to_vec().as_slice()) {
                Ok(m) => to_typed_json(&m),
                Err(e) => json!({ "error": format!("cannot decode {}: {e}", rc.name) }),
            };
            json!({ "route_config": route_config, "last_updated": updated })
        })
        .collect();
    if !statics.is_empty() {
        dump["static_route_configs"] = json!(statics);
    }
    let rendered = applied(dynamic.iter().map(|(n, r)| (n.as_str(), r)).collect(), ROUTE_TYPE, "route_config");
    if !rendered.is_empty() {
        dump["dynamic_route_configs"] = json!(rendered);
    }
    vec![scoped, dump]
}

/// The HTTP connection managers of a filter chain.
fn connection_managers(chain: &FilterChain) -> impl Iterator<Item = HttpConnectionManager> + '_ {
    chain.filters.iter().filter_map(|f| match &f.config_type {
        Some(ConfigType::TypedConfig(any)) if any.type_url == HttpConnectionManager::type_url() => {
            HttpConnectionManager::decode(any.value.as_slice()).ok()
        }
        _ => None,
    })
}

/// Envoy's `SecretsConfigDump`: `static_resources.secrets` as configured, and
/// each SDS secret loaded, with its files read in (as Envoy keeps them), or
/// warming (named, not loaded yet).
fn secrets(server: &Server, bootstrap: &DynamicMessage) -> Json {
    let typed = |mut m: Json| {
        if let Json::Object(fields) = &mut m {
            fields.insert("@type".into(), json!(format!("type.googleapis.com/{SECRET_TYPE}")));
        }
        m
    };
    let mut dump = json!({ "@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump" });
    let statics: Vec<Json> = static_resources(bootstrap, "secrets")
        .into_iter()
        .map(|m| {
            let name = m.get_field_by_name("name").and_then(|n| n.as_str().map(str::to_string)).unwrap_or_default();
            json!({ "name": name, "secret": typed(to_json(&m)) })
        })
        .collect();
    if !statics.is_empty() {
        dump["static_secrets"] = json!(statics);
    }
    let Some(desc) = descriptor::message(SECRET_TYPE) else { return dump };
    let (mut active, mut warming) = (Vec::new(), Vec::new());
    for s in server.secrets.dynamic() {
        let name = s.name.clone();
        // Not loaded yet: Envoy shows its name alone, `uninitialized`.
        let Some(loaded) = s.shown() else {
            warming.push(json!({
                "name": name,
                "version_info": "uninitialized",
                "last_updated": protobuf_timestamp(s.created),
                "secret": typed(json!({ "name": name })),
            }));
            continue;
        };
        let secret = match DynamicMessage::decode(desc.clone(), loaded.secret.encode_to_vec().as_slice()) {
            Ok(mut m) => {
                config::redact::redact(&mut m);
                typed(to_json(&m))
            }
            Err(e) => json!({ "error": format!("cannot decode {name}: {e}") }),
        };
        active.push(json!({
            "name": name,
            "version_info": loaded.version_info,
            "last_updated": protobuf_timestamp(loaded.last_updated),
            "secret": secret,
        }));
    }
    if !active.is_empty() {
        dump["dynamic_active_secrets"] = json!(active);
    }
    if !warming.is_empty() {
        dump["dynamic_warming_secrets"] = json!(warming);
    }
    dump
}

/// Applied resources in Envoy's shape, by name: each with its own version,
/// the resource as an `Any` (under `key`) and when it was applied.
fn applied(mut items: Vec<(&str, &AppliedResource)>, type_name: &str, key: &str) -> Vec<Json> {
    let Some(desc) = descriptor::message(type_name) else { return Vec::new() };
    items.sort_unstable_by(|a, b| a.0.cmp(b.0));
    items
        .into_iter()
        .map(|(name, r)| {
            let mut resource = match DynamicMessage::decode(desc.clone(), r.encoded.as_slice()) {
                Ok(mut m) => {
                    config::redact::redact(&mut m);
                    to_json(&m)
                }
                Err(e) => json!({ "error": format!("cannot decode {name}: {e}") }),
            };
            if let Json::Object(fields) = &mut resource {
                fields.insert("@type".into(), json!(format!("type.googleapis.com/{type_name}")));
            }
            json!({
                "version_info": r.version_info,
                key: resource,
                "last_updated": protobuf_timestamp(r.last_updated),
            })
        })
        .collect()
}

/// `static_resources.<field>` of the bootstrap as messages.
fn static_resources(bootstrap: &DynamicMessage, field: &str) -> Vec<DynamicMessage> {
    let Some(Value::Message(statics)) = bootstrap.get_field_by_name("static_resources").map(|v| v.into_owned()) else {
        return Vec::new();
    };
    match statics.get_field_by_name(field).map(|v| v.into_owned()) {
        Some(Value::List(items)) => items
            .into_iter()
            .filter_map(|v| match v {
                Value::Message(m) => Some(m),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A message as proto3-JSON with the proto field names, as Envoy's dump uses.
fn to_json(msg: &DynamicMessage) -> Json {
    let opts = SerializeOptions::new().use_proto_field_name(true);
    msg.serialize_with_options(serde_json::value::Serializer, &opts)
        .unwrap_or_else(|e| json!({ "error": format!("cannot serialize {}: {e}", msg.descriptor().full_name()) }))
}

/// A message in an `Any` as proto3-JSON prints it: its `@type` with its fields.
fn to_typed_json(msg: &DynamicMessage) -> Json {
    let mut json = to_json(msg);
    if let Json::Object(fields) = &mut json {
        fields.insert("@type".into(), json!(format!("type.googleapis.com/{}", msg.descriptor().full_name())));
    }
    json
}

/// JSON with Envoy's admin layout: one space of indentation per level.
pub(super) fn pretty(v: &Json) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::with_indent(b" "));
    if v.serialize(&mut ser).is_err() {
        return "{}".into();
    }
    out.push(b'\n');
    String::from_utf8(out).unwrap_or_default()
}

/// RFC 3339 UTC timestamp with milliseconds (`2026-11-23T09:25:44.123Z`).
fn humantime_rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    format!("{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, d.subsec_millis())
}

/// A `google.protobuf.Timestamp` as proto3 JSON prints it at millisecond
/// precision: no fraction when it is zero (Envoy's `last_updated` of xDS resources).
fn protobuf_timestamp(t: std::time::SystemTime) -> String {
    let full = humantime_rfc3339(t);
    match full.strip_suffix(".000Z") {
        Some(whole) => format!("{whole}Z"),
        None => full,
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
pub(super) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_415), (2025, 11, 23));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
