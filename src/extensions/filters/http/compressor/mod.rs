//! `envoy.filters.http.compressor`: compresses response bodies the client accepts
//! compressed, with the `compressor_library` it names (gzip, brotli or zstd).
//!
//! Envoy's rules, checked against Envoy 1.40 (tests/compat `compressor`): a
//! response is *compressible* when the direction is enabled, its `content-length`
//! (if any) is at least `min_content_length`, it is no upgrade, its media type is
//! one of `content_type` (Envoy's list by default; no `content-type` is
//! compressible), it has no `cache-control: no-transform`, no `etag` where
//! `disable_on_etag_header` says so, and no `content-encoding`. It is compressed
//! when it also has a body and the request's `accept-encoding` chooses this
//! coding (`accept_encoding`) among those of the chain's compressor filters that
//! compress its type (`chain`: with gzip, brotli and zstd filters side by side,
//! one is chosen and the others count `header_compressor_overshadowed`):
//! `content-length` goes, `content-encoding` comes,
//! a strong `etag` goes (a weak one stays), and the body streams through the
//! compressor piece by piece. Every compressible response gets
//! `vary: Accept-Encoding`, compressed or not. A route's `CompressorPerRoute`
//! turns the filter off (`disabled`) or replaces `remove_accept_encoding_header`.
//! Requests are never compressed
//! (`request_direction_config` is not supported), and each is counted
//! `request.not_compressed`, as Envoy counts them without one.

mod accept_encoding;
pub mod chain;

use std::sync::Arc;

use bytes::Bytes;
use envoy_types::pb::envoy::extensions::filters::http::compressor::v3::compressor_per_route::Override;
use envoy_types::pb::envoy::extensions::filters::http::compressor::v3::{
    Compressor as CompressorProto, CompressorPerRoute,
};
use envoy_types::pb::google::protobuf::Any;
use http::header::{HeaderValue, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG, VARY};
use http::HeaderMap;

use self::accept_encoding::Choice;
use self::chain::CompressorChain;
use super::common;
use super::filter::{DataStatus, EncodeStatus, FilterStatus, StreamContext, StreamFilter, StreamFilterFactory};
use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::compression::{self, Compressor, CompressorFactory as LibraryFactory};
use crate::extensions::{HttpFilterContext, HttpFilterExtension};
use crate::http::headers;
use crate::router::PerRouteConfig;
use crate::runtime::FeatureFlag;
use crate::stats::Store;

pub const NAME: &str = "envoy.filters.http.compressor";
const CONFIG_TYPE: &str = "envoy.extensions.filters.http.compressor.v3.Compressor";

const PER_ROUTE_TYPE: &str = "envoy.extensions.filters.http.compressor.v3.CompressorPerRoute";

pub const EXTENSION: HttpFilterExtension = HttpFilterExtension {
    name: NAME,
    config_type: CONFIG_TYPE,
    create,
    per_route: Some((PER_ROUTE_TYPE, create_per_route)),
};

/// Envoy's `min_content_length` default.
const DEFAULT_MIN_CONTENT_LENGTH: u64 = 30;

/// The media types Envoy compresses when `content_type` is empty.
const DEFAULT_CONTENT_TYPES: &[&str] = &[
    "text/html",
    "text/plain",
    "text/css",
    "application/javascript",
    "application/x-javascript",
    "text/javascript",
    "text/x-javascript",
    "text/ecmascript",
    "text/js",
    "text/jscript",
    "text/x-js",
    "application/ecmascript",
    "application/x-json",
    "application/xml",
    "application/json",
    "image/svg+xml",
    "text/xml",
    "application/xhtml+xml",
];

define_stats! {
    /// `http.<prefix>.compressor.<library name>.<library prefix>.*`: what the
    /// filter read of `accept-encoding` and `etag` (Envoy's `ALL_COMPRESSOR_STATS`).
    #[derive(Debug)]
    pub struct CompressorStats {
        counter no_accept_header,
        counter header_identity,
        counter header_compressor_used,
        counter header_compressor_overshadowed,
        counter header_wildcard,
        counter header_not_valid,
        counter not_compressed_etag,
    }
}

define_stats! {
    /// One direction's counts: the response's under `response.` when the config
    /// has a `response_direction_config` (else, as Envoy's older layout, directly
    /// under the filter's prefix); the request's under `request.` (Courier never
    /// compresses requests).
    #[derive(Debug)]
    pub struct DirectionStats {
        counter compressed,
        counter not_compressed,
        counter total_uncompressed_bytes,
        counter total_compressed_bytes,
        counter content_length_too_small,
    }
}

/// The filter's config, shared by every worker.
#[derive(Debug)]
pub struct CompressorFilterFactory {
    config: Arc<CompressorConfig>,
}

fn create(
    any: &Any,
    path: &FieldPath,
    ctx: &HttpFilterContext<'_>,
) -> Result<Arc<dyn StreamFilterFactory>, ConfigError> {
    common::check_supported(any, path)?;
    let c: CompressorProto = decode_any(any, path)?;
    let Some(library) = &c.compressor_library else {
        return Err(path.field_error("compressor_library", "value is required"));
    };
    let mut lp = path.clone();
    lp.push_field("compressor_library");
    let factory = compression::create_compressor_factory(library, &lp)?;
    let response_prefix = if c.response_direction_config.is_some() { "response." } else { "" };
    let response = c.response_direction_config.unwrap_or_default();
    let common = response.common_config.unwrap_or_default();
    // `content_type` is deprecated for `content_type_matcher`, which Courier does
    // not support; Envoy 1.40 still reads it.
    #[allow(deprecated)]
    let content_types: Vec<String> = if common.content_type.is_empty() {
        DEFAULT_CONTENT_TYPES.iter().map(|t| t.to_string()).collect()
    } else {
        common.content_type.iter().map(|t| t.trim().to_ascii_lowercase()).collect()
    };
    ctx.compressor_chain.register(factory.content_encoding(), &content_types);
    let prefix = format!("http.{}.compressor.{}.{}.", ctx.hcm_stat_prefix, library.name, factory.stats_prefix());
    Ok(Arc::new(CompressorFilterFactory {
        config: Arc::new(CompressorConfig {
            name: ctx.filter_name.into(),
            enabled: FeatureFlag::from_proto(common.enabled.as_ref()),
            min_content_length: common.min_content_length.map_or(DEFAULT_MIN_CONTENT_LENGTH, |v| u64::from(v.value)),
            content_types,
            disable_on_etag_header: response.disable_on_etag_header,
            remove_accept_encoding_header: response.remove_accept_encoding_header,
            request_stats: DirectionStats::new(ctx.store, &format!("{prefix}request.")),
            response_stats: DirectionStats::new(ctx.store, &format!("{prefix}{response_prefix}")),
            stats: CompressorStats::new(ctx.store, &prefix),
            library: factory,
            chain: ctx.compressor_chain.clone(),
        }),
    }))
}

impl StreamFilterFactory for CompressorFilterFactory {
    fn create(&self) -> Box<dyn StreamFilter> {
        Box::new(CompressorFilter {
            config: self.config.clone(),
            accept_encoding: None,
            compressor: None,
            disabled: false,
        })
    }
}

/// A route's `CompressorPerRoute`: the filter off, or its
/// `remove_accept_encoding_header` replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CompressorRouteConfig {
    disabled: bool,
    remove_accept_encoding_header: Option<bool>,
}

fn create_per_route(any: &Any, path: &FieldPath, _store: &Store) -> Result<PerRouteConfig, ConfigError> {
    common::check_supported(any, path)?;
    let p: CompressorPerRoute = decode_any(any, path)?;
    let config = match p.r#override {
        Some(Override::Disabled(disabled)) => CompressorRouteConfig { disabled, remove_accept_encoding_header: None },
        // `compressor_library` was refused by the supported-fields check.
        Some(Override::Overrides(o)) => CompressorRouteConfig {
            disabled: false,
            remove_accept_encoding_header: o
                .response_direction_config
                .and_then(|r| r.remove_accept_encoding_header)
                .map(|b| b.value),
        },
        None => return Err(path.error("one of disabled or overrides must be set")),
    };
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct CompressorConfig {
    /// The filter's configured name: its routes' configs are found under it.
    name: Arc<str>,
    library: Arc<dyn LibraryFactory>,
    enabled: FeatureFlag,
    min_content_length: u64,
    /// Lower-case media types.
    content_types: Vec<String>,
    disable_on_etag_header: bool,
    remove_accept_encoding_header: bool,
    stats: CompressorStats,
    response_stats: DirectionStats,
    request_stats: DirectionStats,
    /// The compressor filters of this filter's chain, itself among them.
    chain: Arc<CompressorChain>,
}

struct CompressorFilter {
    config: Arc<CompressorConfig>,
    /// The request's `accept-encoding` (its values joined), if it had one.
    accept_encoding: Option<String>,
    /// Set once the response is being compressed.
    compressor: Option<Box<dyn Compressor>>,
    /// The route's `CompressorPerRoute` turned the filter off.
    disabled: bool,
}

impl CompressorConfig {
    /// `content-length`, when present, is at least the minimum.
    fn long_enough(&self, h: &HeaderMap) -> bool {
        let Some(v) = h.get(CONTENT_LENGTH) else { return true };
        let long_enough =
            v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).is_some_and(|n| n >= self.min_content_length);
        if !long_enough {
            self.response_stats.content_length_too_small.inc();
        }
        long_enough
    }

    fn content_type_allowed(&self, h: &HeaderMap) -> bool {
        media_type(h).is_none_or(|media| self.content_types.contains(&media))
    }

    fn etag_allowed(&self, h: &HeaderMap) -> bool {
        if self.disable_on_etag_header && h.contains_key(ETAG) {
            self.stats.not_compressed_etag.inc();
            return false;
        }
        true
    }

    /// The request's `accept-encoding` chooses this filter's coding among those
    /// of the chain's compressor filters that compress the response's type;
    /// counted as Envoy does.
    fn accepted(&self, accept_encoding: Option<&str>, h: &HeaderMap) -> bool {
        let Some(accept) = accept_encoding else {
            self.stats.no_accept_header.inc();
            return false;
        };
        let offered = self.chain.offered(media_type(h).as_deref());
        let mine = self.library.content_encoding();
        match accept_encoding::choose(accept, &offered) {
            Choice::Compressor(coding) if coding == mine => {
                self.stats.header_compressor_used.inc();
                true
            }
            Choice::Compressor(_) => {
                self.stats.header_compressor_overshadowed.inc();
                false
            }
            Choice::Wildcard(coding) => {
                self.stats.header_wildcard.inc();
                coding == mine
            }
            Choice::Identity => {
                self.stats.header_identity.inc();
                false
            }
            Choice::NotValid => {
                self.stats.header_not_valid.inc();
                false
            }
        }
    }
}

/// The response's media type (lower case, without parameters), if it has a
/// `content-type`.
fn media_type(h: &HeaderMap) -> Option<String> {
    let v = h.get(CONTENT_TYPE)?;
    Some(v.to_str().unwrap_or_default().split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
}

/// A `transfer-encoding` that already compresses.
fn compressed_in_transfer(h: &HeaderMap) -> bool {
    headers::tokens(h, http::header::TRANSFER_ENCODING).any(|c| !c.eq_ignore_ascii_case("chunked") && !c.is_empty())
}

/// Adds `Accept-Encoding` to `vary` unless it is there (spelt so: Envoy compares
/// case-sensitively): to the existing value, as Envoy writes it, or as the header.
fn add_vary(h: &mut HeaderMap) {
    const ACCEPT_ENCODING: &str = "Accept-Encoding";
    if headers::tokens(h, VARY).any(|t| t == ACCEPT_ENCODING) {
        return;
    }
    let value = match h.get(VARY).and_then(|v| v.to_str().ok()) {
        Some(existing) => HeaderValue::from_str(&format!("{existing}, {ACCEPT_ENCODING}")).ok(),
        None => Some(HeaderValue::from_static(ACCEPT_ENCODING)),
    };
    if let Some(v) = value {
        h.insert(VARY, v);
    }
}

impl StreamFilter for CompressorFilter {
    fn decode_headers(
        &mut self,
        parts: &mut http::request::Parts,
        _end_stream: bool,
        cx: &mut StreamContext<'_>,
    ) -> FilterStatus {
        let route = cx.route.and_then(|r| r.per_filter_config::<CompressorRouteConfig>(&self.config.name));
        // Off on the route: nothing is read or changed, but Envoy still counts
        // the request and the response as not compressed.
        if route.is_some_and(|r| r.disabled) {
            self.disabled = true;
            self.config.request_stats.not_compressed.inc();
            return FilterStatus::Continue;
        }
        let accept = http::header::ACCEPT_ENCODING;
        self.accept_encoding = parts
            .headers
            .contains_key(&accept)
            .then(|| headers::tokens(&parts.headers, accept.clone()).collect::<Vec<_>>().join(","));
        let remove = route.and_then(|r| r.remove_accept_encoding_header);
        if remove.unwrap_or(self.config.remove_accept_encoding_header) {
            parts.headers.remove(accept);
        }
        self.config.request_stats.not_compressed.inc();
        FilterStatus::Continue
    }

    fn encode_headers(
        &mut self,
        parts: &mut http::response::Parts,
        end_stream: bool,
        _cx: &mut StreamContext<'_>,
    ) -> EncodeStatus {
        if self.disabled {
            self.config.response_stats.not_compressed.inc();
            return EncodeStatus::Continue;
        }
        let cfg = &*self.config;
        let h = &mut parts.headers;
        let big_enough = cfg.enabled.enabled() && cfg.long_enough(h);
        let type_allowed = cfg.content_type_allowed(h);
        // Envoy reads accept-encoding before the other conditions, and counts it.
        let accepted = !end_stream && big_enough && cfg.accepted(self.accept_encoding.as_deref(), h);
        let compressible = big_enough
            && !headers::connection_tokens(h).any(|t| t.eq_ignore_ascii_case("upgrade"))
            && type_allowed
            && !headers::no_transform(h)
            && cfg.etag_allowed(h)
            && !h.contains_key(CONTENT_ENCODING);
        if accepted && compressible && !compressed_in_transfer(h) {
            if h.get(ETAG).and_then(|v| v.to_str().ok()).is_some_and(|e| !e.trim_start().starts_with("W/")) {
                h.remove(ETAG);
            }
            h.remove(CONTENT_LENGTH);
            h.insert(CONTENT_ENCODING, HeaderValue::from_static(cfg.library.content_encoding()));
            add_vary(h);
            cfg.response_stats.compressed.inc();
            self.compressor = Some(cfg.library.create());
        } else {
            cfg.response_stats.not_compressed.inc();
            if compressible {
                add_vary(h);
            }
        }
        EncodeStatus::Continue
    }

    fn encode_data(&mut self, data: &mut Bytes, end_stream: bool, _cx: &mut StreamContext<'_>) -> DataStatus {
        if let Some(c) = &mut self.compressor {
            let stats = &self.config.response_stats;
            stats.total_uncompressed_bytes.add(data.len() as u64);
            *data = c.compress(data, end_stream);
            stats.total_compressed_bytes.add(data.len() as u64);
        }
        DataStatus::Continue
    }

    /// The trailers end the body: the compressor's tail goes before them (Envoy's
    /// `addEncodedData` from `encodeTrailers`).
    fn encode_trailers(&mut self, _trailers: &mut HeaderMap, cx: &mut StreamContext<'_>) {
        if let Some(mut c) = self.compressor.take() {
            let tail = c.compress(&[], true);
            self.config.response_stats.total_compressed_bytes.add(tail.len() as u64);
            cx.add_data(tail);
        }
    }
}

/// `(message full name, supported fields)` of the filter's config.
pub const SUPPORTED_FIELDS: &[(&str, &[&str])] = &[
    (CONFIG_TYPE, &["compressor_library", "response_direction_config"]),
    (
        "envoy.extensions.filters.http.compressor.v3.Compressor.ResponseDirectionConfig",
        &["common_config", "disable_on_etag_header", "remove_accept_encoding_header"],
    ),
    (
        "envoy.extensions.filters.http.compressor.v3.Compressor.CommonDirectionConfig",
        &["enabled", "min_content_length", "content_type"],
    ),
    ("envoy.config.core.v3.RuntimeFeatureFlag", &["default_value", "runtime_key"]),
    (PER_ROUTE_TYPE, &["disabled", "overrides"]),
    // A route's own compressor_library is refused.
    ("envoy.extensions.filters.http.compressor.v3.CompressorOverrides", &["response_direction_config"]),
    ("envoy.extensions.filters.http.compressor.v3.ResponseDirectionOverrides", &["remove_accept_encoding_header"]),
    (
        compression::gzip::compressor::CONFIG_TYPE,
        &["memory_level", "compression_level", "compression_strategy", "window_bits", "chunk_size"],
    ),
    (
        compression::brotli::compressor::CONFIG_TYPE,
        &[
            "quality",
            "encoder_mode",
            "window_bits",
            "input_block_bits",
            "chunk_size",
            "disable_literal_context_modeling",
        ],
    ),
    // No dictionary: Courier does not load zstd dictionaries.
    (compression::zstd::compressor::CONFIG_TYPE, &["compression_level", "enable_checksum", "strategy", "chunk_size"]),
];
