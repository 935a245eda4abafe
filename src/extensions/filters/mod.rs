//! Filters by layer, as in Envoy's `extensions/filters/`.

pub mod common;
pub mod http;
pub mod listener;
pub mod network;
