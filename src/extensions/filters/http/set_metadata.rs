//! `envoy.filters.http.set_metadata`: attaches fixed structured values to each
//! request's dynamic metadata, for later filters and `%DYNAMIC_METADATA(...)%`.
//!
//! As Envoy 1.40 (tests/compat `filter_set_metadata`): each `metadata` entry is
//! applied in order when the request headers arrive. An entry whose namespace
//! is not there yet sets it; one whose namespace is there merges into it when
//! `allow_overwrite` is true (structs recursively, lists appended, other values
//! replaced), and otherwise is skipped and counted in
//! `http.<prefix>.set_metadata.overwrite_denied`. The deprecated top-level
//! `metadata_namespace` + `value` pair is applied first, always merging.
//! `typed_value` (typed metadata, which no Courier filter reads) is refused.

use std::sync::Arc;

use envoy_types::pb::envoy::extensions::filters::http::set_metadata::v3::Config;
use envoy_types::pb::google::protobuf::{Any, Struct};

use super::common;
use super::filter::{FilterStatus, StreamContext, StreamFilter, StreamFilterFactory};
use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::{HttpFilterContext, HttpFilterExtension};

const CONFIG_TYPE: &str = "envoy.extensions.filters.http.set_metadata.v3.Config";
const ENTRY_TYPE: &str = "envoy.extensions.filters.http.set_metadata.v3.Metadata";

pub const EXTENSION: HttpFilterExtension =
    HttpFilterExtension { name: "envoy.filters.http.set_metadata", config_type: CONFIG_TYPE, create, per_route: None };

define_stats! {
    /// `http.<prefix>.set_metadata.*`.
    #[derive(Debug)]
    pub struct SetMetadataStats {
        counter overwrite_denied,
    }
}

/// One namespace's value and whether it may merge into one already there.
#[derive(Debug)]
struct Entry {
    namespace: String,
    value: Struct,
    allow_overwrite: bool,
}

#[derive(Debug)]
pub struct SetMetadataFactory {
    entries: Arc<[Entry]>,
    stats: Arc<SetMetadataStats>,
}

#[allow(deprecated)] // the top-level `metadata_namespace` and `value` are read as Envoy reads them
fn create(
    any: &Any,
    path: &FieldPath,
    ctx: &HttpFilterContext<'_>,
) -> Result<Arc<dyn StreamFilterFactory>, ConfigError> {
    common::check_supported(any, path)?;
    let config: Config = decode_any(any, path)?;
    let mut entries = Vec::new();
    if let (Some(value), false) = (config.value, config.metadata_namespace.is_empty()) {
        entries.push(Entry { namespace: config.metadata_namespace, value, allow_overwrite: true });
    }
    for (i, m) in config.metadata.into_iter().enumerate() {
        let mut at = path.child("metadata");
        at.push_index(i);
        if m.metadata_namespace.is_empty() {
            return Err(at.field_error("metadata_namespace", "value length must be at least 1 characters"));
        }
        let Some(value) = m.value else {
            return Err(at.error("one of value or typed_value is required"));
        };
        entries.push(Entry { namespace: m.metadata_namespace, value, allow_overwrite: m.allow_overwrite });
    }
    Ok(Arc::new(SetMetadataFactory {
        entries: entries.into(),
        stats: Arc::new(SetMetadataStats::new(ctx.store, &format!("http.{}.set_metadata.", ctx.hcm_stat_prefix))),
    }))
}

impl StreamFilterFactory for SetMetadataFactory {
    fn create(&self) -> Box<dyn StreamFilter> {
        Box::new(SetMetadataFilter { entries: self.entries.clone(), stats: self.stats.clone() })
    }
}

struct SetMetadataFilter {
    entries: Arc<[Entry]>,
    stats: Arc<SetMetadataStats>,
}

impl StreamFilter for SetMetadataFilter {
    fn decode_headers(
        &mut self,
        _parts: &mut http::request::Parts,
        _end_stream: bool,
        cx: &mut StreamContext<'_>,
    ) -> FilterStatus {
        let metadata = &mut cx.info.dynamic_metadata;
        for entry in self.entries.iter() {
            if metadata.contains(&entry.namespace) && !entry.allow_overwrite {
                self.stats.overwrite_denied.inc();
            } else {
                metadata.merge(&entry.namespace, &entry.value);
            }
        }
        FilterStatus::Continue
    }
}

pub const SUPPORTED_FIELDS: &[(&str, &[&str])] = &[
    (CONFIG_TYPE, &["metadata_namespace", "value", "metadata"]),
    (ENTRY_TYPE, &["metadata_namespace", "allow_overwrite", "value"]),
];
