//! `typed_per_filter_config` at route, virtual host and route configuration level.
//!
//! Each entry is decoded once at load by the connection manager's callback (which
//! knows the HTTP filters); the route keeps, per filter name, its own entry, else its
//! virtual host's, else the route configuration's, and also every level's entry, most
//! specific first, for filters that merge levels field by field (CORS, as Envoy's
//! `getAllPerFilterConfig`).

use std::collections::HashMap;

use envoy_types::pb::google::protobuf::Any;

use super::config::RouteBuildContext;
use crate::config::{ConfigError, FieldPath};

/// Per-route filter config (`typed_per_filter_config`), decoded once at load by
/// the filter it names; the filter downcasts it back.
pub type PerRouteConfig = std::sync::Arc<dyn std::any::Any + Send + Sync>;

/// Decoded per-filter configs by filter name.
pub(crate) type PerFilterConfigs = HashMap<String, PerRouteConfig>;

/// Decodes one level's `typed_per_filter_config`; `path` points at the message that
/// has the field.
pub(crate) fn decode(
    map: &HashMap<String, Any>,
    path: &FieldPath,
    ctx: &RouteBuildContext<'_>,
) -> Result<PerFilterConfigs, ConfigError> {
    let mut out = PerFilterConfigs::with_capacity(map.len());
    // Sorted, so that the first error reported does not depend on hashing.
    let mut names: Vec<&String> = map.keys().collect();
    names.sort();
    for name in names {
        let mut p = path.clone();
        p.push_field("typed_per_filter_config");
        p.push_key(name);
        if let Some(any) = map.get(name) {
            if let Some(config) = (ctx.per_route)(name, any, &p)? {
                out.insert(name.clone(), config);
            }
        }
    }
    Ok(out)
}

/// The configs a route sees, given `levels` from least to most specific: for each
/// filter name, the most specific level that has an entry wins.
pub(crate) fn merge(levels: &[&PerFilterConfigs]) -> PerFilterConfigs {
    let mut out = PerFilterConfigs::new();
    for level in levels {
        out.extend(level.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    out
}

/// Every level's config per filter name, given `levels` from least to most specific;
/// each list is most specific first.
pub(crate) fn merge_all(levels: &[&PerFilterConfigs]) -> HashMap<String, Vec<PerRouteConfig>> {
    let mut out: HashMap<String, Vec<PerRouteConfig>> = HashMap::new();
    for level in levels.iter().rev() {
        for (k, v) in level.iter() {
            out.entry(k.clone()).or_default().push(v.clone());
        }
    }
    out
}
