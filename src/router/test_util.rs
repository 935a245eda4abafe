//! Test helpers: route configurations written as YAML, decoded and validated through
//! the same schema pipeline as a real bootstrap. The route-match fuzz target
//! (`crate::fuzz`) builds its tables with them too.
#![cfg_attr(not(test), allow(dead_code))]

use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

use super::PerRouteConfig;
use super::{RouteBuildContext, RouteTable};
use crate::config::supported::{Inventory, PLACES, SUPPORTED_FIELDS};
use crate::config::{bootstrap::parse_yaml, descriptor, proto_json, validate, ConfigError, FieldPath};

/// Decodes and validates a `RouteConfiguration` written in YAML.
pub(crate) fn route_config(yaml: &str) -> RouteConfiguration {
    try_route_config(yaml).unwrap_or_else(|e| panic!("invalid test config: {e}"))
}

pub(crate) fn try_route_config(yaml: &str) -> Result<RouteConfiguration, ConfigError> {
    let json = parse_yaml(yaml).map_err(|e| ConfigError::new("", e))?;
    let desc = descriptor::message("envoy.config.route.v3.RouteConfiguration")
        .ok_or_else(|| ConfigError::new("", "RouteConfiguration missing from the schema"))?;
    let dynamic = proto_json::decode(&desc, &json, &mut FieldPath::new())?;
    validate::validate(&dynamic, &mut FieldPath::new())?;
    RouteConfiguration::decode(dynamic.encode_to_vec().as_slice()).map_err(|e| ConfigError::new("", e.to_string()))
}

/// The bootstrap's and the route schema's tables, no extension: what a route
/// table built on its own is checked against.
pub(crate) const TEST_INVENTORY: Inventory = Inventory {
    tables: &[SUPPORTED_FIELDS, super::ROUTE_SUPPORTED_FIELDS, crate::matcher::supported::MATCHER_SUPPORTED_FIELDS],
    places: PLACES,
    is_extension: |_| false,
    skips_lb_policy: |_| false,
};

/// Per-route configs for tests: `google.protobuf.StringValue` payloads become
/// `String`s, any other type is an unknown filter.
pub(crate) fn test_per_route(_name: &str, any: &Any, path: &FieldPath) -> Result<Option<PerRouteConfig>, ConfigError> {
    if any.type_url.ends_with("google.protobuf.StringValue") {
        let v = <String as Message>::decode(any.value.as_slice()).map_err(|e| path.error(e.to_string()))?;
        Ok(Some(std::sync::Arc::new(v)))
    } else {
        Err(path.field_error("@type", format!("unsupported extension '{}'", any.type_url)))
    }
}

/// Builds a table from YAML, at the path an HCM's inline `route_config` has.
pub(crate) fn try_table(yaml: &str) -> Result<RouteTable, ConfigError> {
    let rc = try_route_config(yaml)?;
    let ctx = RouteBuildContext {
        per_route: &test_per_route,
        vhost_cors: None,
        cluster_exists: None,
        inventory: &TEST_INVENTORY,
    };
    RouteTable::from_proto(&rc, &FieldPath::starting_at("route_config"), &ctx)
}

pub(crate) fn table(yaml: &str) -> RouteTable {
    try_table(yaml).unwrap_or_else(|e| panic!("invalid test table: {e}"))
}

/// A request for `uri` with a `Host` header and extra headers.
pub(crate) fn request(host: &str, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut b = http::Request::builder().uri(uri).header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).expect("test request").into_parts().0
}
