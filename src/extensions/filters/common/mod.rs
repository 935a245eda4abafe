//! What filters of several layers share, as in Envoy's `extensions/filters/common/`.

pub mod rbac;
