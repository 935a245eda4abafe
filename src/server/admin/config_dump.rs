//! `/config_dump`: the effective config as Envoy's `ConfigDump` — the
//! bootstrap, then the static and (from CDS and LDS) dynamic clusters,
//! with `include_eds` every cluster's endpoints (`endpoints_dump`), the
//! listeners, the route configs from RDS, then the static and SDS secrets — printed with proto field names
//! and Envoy's one-space indentation, sensitive fields (private keys) redacted
//! as Envoy redacts them (`config::redact`). Its `resource`, `mask` and
//! `name_regex` query parameters filter it (`config_dump_query`).
//!
//! The server keeps the bootstrap protobuf-encoded, not the schema it needs to be
//! printed: each dump decodes the schema, renders, and frees it again.

use prost::Message;
use prost_reflect::{DynamicMessage, ReflectMessage, SerializeOptions, Value};
use serde::Serialize;
use serde_json::{json, Value as Json};

use super::config_dump_query::{DumpError, DumpQuery};
use crate::config::path_source::{CLUSTER_TYPE, LISTENER_TYPE};
use crate::config::{self, bootstrap::BOOTSTRAP_TYPE, descriptor};
use crate::extensions::filters::network::http_connection_manager::rds::ROUTE_TYPE;
use crate::extensions::transport_sockets::tls::SECRET_TYPE;
use crate::server::xds::AppliedState;
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
        static_resources(&bootstrap_dump, field)
            .into_iter()
            .map(|m| json!({ key: to_typed_json(&m), "last_updated": updated }))
            .collect()
    };
    let mut clusters = json!({
        "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
        "static_clusters": statics("clusters", "cluster"),
    });
    add_dynamic(
        &mut clusters,
        &server.cds_state.borrow(),
        CLUSTER_TYPE,
        "dynamic_active_clusters",
        "cluster",
        |_, c| c,
    );
    let mut listeners = json!({
        "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
        "static_listeners": statics("listeners", "listener"),
    });
    add_dynamic(
        &mut listeners,
        &server.lds_state.borrow(),
        LISTENER_TYPE,
        "dynamic_listeners",
        "listener",
        |name, l| json!({ "name": name, "active_state": l }),
    );
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
    configs.extend(routes(server));
    configs.push(secrets(server, &bootstrap_dump));
    configs
}

/// Envoy's `RoutesConfigDump` (after the listeners) when RDS has loaded a
/// route config: each with the version that brought it and when. (Inline
/// route configs, Envoy's `static_route_configs`, are not listed yet.)
fn routes(server: &Server) -> Option<Json> {
    let mut all = AppliedState::default();
    for state in server.rds_states.borrow().iter() {
        all.resources.extend(state.borrow().resources.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    if all.resources.is_empty() {
        return None;
    }
    let mut dump = json!({ "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump" });
    add_dynamic(&mut dump, &all, ROUTE_TYPE, "dynamic_route_configs", "route_config", |_, r| r);
    Some(dump)
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

/// What CDS or LDS applied, in Envoy's shape: the subscription's last
/// `version_info` (when it has one) and, per resource, its own version, the
/// resource as an `Any` and when it was applied. `entry` places the three
/// under the resource's name (a listener's `active_state`) or not (a cluster).
fn add_dynamic(
    dump: &mut Json,
    state: &AppliedState,
    type_name: &str,
    list: &str,
    key: &str,
    entry: impl Fn(&str, Json) -> Json,
) {
    if !state.version_info.is_empty() {
        dump["version_info"] = json!(state.version_info);
    }
    let Some(desc) = descriptor::message(type_name) else { return };
    let mut sorted: Vec<_> = state.resources.iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let resources: Vec<Json> = sorted
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
            let applied = json!({
                "version_info": r.version_info,
                key: resource,
                "last_updated": protobuf_timestamp(r.last_updated),
            });
            entry(name, applied)
        })
        .collect();
    if !resources.is_empty() {
        dump[list] = json!(resources);
    }
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
