//! `envoy.filters.http.decompressor`: inflates request and response bodies sent
//! with the `content-encoding` of the `decompressor_library` it names (gzip,
//! brotli or zstd), so that the upstream (or the client) gets them plain.
//!
//! Envoy's rules, checked against Envoy 1.40 (tests/compat `filter_decompressor`):
//! a body is inflated when its direction is enabled, it has a body, its
//! `cache-control` has no `no-transform` (unless `ignore_no_transform_header`),
//! and the *first* coding of its `content-encoding` is the library's (any case).
//! That coding is then taken off the header (the header goes when it was the only
//! one), `content-length` goes, and the body streams through the decompressor
//! piece by piece: a request's through a body transform (nothing waits for the
//! whole body), a response's through `encode_data`. Every request and response
//! with a body is counted `decompressed` or `not_decompressed`. While responses
//! are inflated, each request advertises the coding in `accept-encoding` (Envoy's
//! `advertise_accept_encoding`, default on): the header's tokens, without the
//! coding's own, then the coding, joined by `,`.

use std::sync::Arc;

use bytes::Bytes;
use envoy_types::pb::envoy::extensions::filters::http::decompressor::v3::decompressor::CommonDirectionConfig;
use envoy_types::pb::envoy::extensions::filters::http::decompressor::v3::Decompressor as DecompressorProto;
use envoy_types::pb::google::protobuf::Any;
use http::header::{HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH};
use http::HeaderMap;

use super::common;
use super::filter::{DataStatus, EncodeStatus, FilterStatus, StreamContext, StreamFilter, StreamFilterFactory};
use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::compression::{self, Decompressor, DecompressorFactory as LibraryFactory};
use crate::extensions::{HttpFilterContext, HttpFilterExtension};
use crate::http::body::BodyTransform;
use crate::http::headers;
use crate::runtime::FeatureFlag;

pub const NAME: &str = "envoy.filters.http.decompressor";
const CONFIG_TYPE: &str = "envoy.extensions.filters.http.decompressor.v3.Decompressor";

pub const EXTENSION: HttpFilterExtension =
    HttpFilterExtension { name: NAME, config_type: CONFIG_TYPE, create, per_route: None };

define_stats! {
    /// One direction's counts, `http.<prefix>.decompressor.<library name>.<library
    /// prefix>.request.*` or `.response.*`.
    #[derive(Debug)]
    pub struct DirectionStats {
        counter decompressed,
        counter not_decompressed,
        counter total_uncompressed_bytes,
        counter total_compressed_bytes,
    }
}

/// One direction's config.
#[derive(Debug)]
struct Direction {
    enabled: FeatureFlag,
    ignore_no_transform_header: bool,
    stats: Arc<DirectionStats>,
}

impl Direction {
    fn new(common: Option<&CommonDirectionConfig>, stats: DirectionStats) -> Direction {
        Direction {
            enabled: FeatureFlag::from_proto(common.and_then(|c| c.enabled.as_ref())),
            ignore_no_transform_header: common.is_some_and(|c| c.ignore_no_transform_header),
            stats: Arc::new(stats),
        }
    }

    /// Whether a message with these headers (and a body) is inflated; if so, its
    /// headers are made to say what it will be. Counted either way.
    fn start(&self, h: &mut HeaderMap, coding: &str) -> bool {
        let inflate = self.enabled.enabled()
            && (self.ignore_no_transform_header || !headers::no_transform(h))
            && take_first_coding(h, coding);
        if inflate {
            h.remove(CONTENT_LENGTH);
            self.stats.decompressed.inc();
        } else {
            self.stats.not_decompressed.inc();
        }
        inflate
    }
}

/// When the first coding of `content-encoding` is `coding` (any case), takes it
/// off as Envoy does: the header goes if it named nothing else, else keeps what
/// followed the first comma (trimmed, even when empty).
fn take_first_coding(h: &mut HeaderMap, coding: &str) -> bool {
    // The values as sent (Envoy keeps the spacing of what follows).
    let joined = h.get_all(CONTENT_ENCODING).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(",");
    if joined.is_empty() {
        return false;
    }
    let (first, rest) = match joined.split_once(',') {
        Some((first, rest)) => (first, Some(rest.trim())),
        None => (joined.as_str(), None),
    };
    if !first.trim().eq_ignore_ascii_case(coding) {
        return false;
    }
    match rest.map(HeaderValue::from_str) {
        Some(Ok(v)) => {
            h.insert(CONTENT_ENCODING, v);
        }
        _ => {
            h.remove(CONTENT_ENCODING);
        }
    }
    true
}

/// Envoy's `advertise_accept_encoding`: `accept-encoding`'s tokens without
/// `coding`'s own (compared by name, case-sensitively, as Envoy), then `coding`.
fn advertise(h: &mut HeaderMap, coding: &str) {
    let mut value: String = headers::tokens(h, ACCEPT_ENCODING)
        .filter(|t| !t.is_empty() && t.split(';').next().map(str::trim) != Some(coding))
        .flat_map(|t| [t, ","])
        .collect();
    value.push_str(coding);
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(ACCEPT_ENCODING, v);
    }
}

#[derive(Debug)]
struct DecompressorConfig {
    library: Arc<dyn LibraryFactory>,
    request: Direction,
    response: Direction,
    advertise_accept_encoding: bool,
}

/// The filter's config, shared by every worker.
#[derive(Debug)]
pub struct DecompressorFilterFactory {
    config: Arc<DecompressorConfig>,
}

fn create(
    any: &Any,
    path: &FieldPath,
    ctx: &HttpFilterContext<'_>,
) -> Result<Arc<dyn StreamFilterFactory>, ConfigError> {
    common::check_supported(any, path)?;
    let c: DecompressorProto = decode_any(any, path)?;
    let Some(library) = &c.decompressor_library else {
        return Err(path.field_error("decompressor_library", "value is required"));
    };
    let mut lp = path.clone();
    lp.push_field("decompressor_library");
    let filter_prefix = format!("http.{}.decompressor.{}.", ctx.hcm_stat_prefix, library.name);
    let factory = compression::create_decompressor_factory(library, &lp, ctx.store, &filter_prefix)?;
    let prefix = format!("{filter_prefix}{}.", factory.stats_prefix());
    let request = c.request_direction_config.unwrap_or_default();
    let response = c.response_direction_config.unwrap_or_default();
    Ok(Arc::new(DecompressorFilterFactory {
        config: Arc::new(DecompressorConfig {
            request: Direction::new(
                request.common_config.as_ref(),
                DirectionStats::new(ctx.store, &format!("{prefix}request.")),
            ),
            response: Direction::new(
                response.common_config.as_ref(),
                DirectionStats::new(ctx.store, &format!("{prefix}response.")),
            ),
            advertise_accept_encoding: request.advertise_accept_encoding.is_none_or(|v| v.value),
            library: factory,
        }),
    }))
}

impl StreamFilterFactory for DecompressorFilterFactory {
    fn create(&self) -> Box<dyn StreamFilter> {
        Box::new(DecompressorFilter { config: self.config.clone(), response: None })
    }
}

struct DecompressorFilter {
    config: Arc<DecompressorConfig>,
    /// Set once the response is being inflated.
    response: Option<Box<dyn Decompressor>>,
}

/// A request body inflating on its way upstream.
struct InflatingBody {
    decompressor: Box<dyn Decompressor>,
    stats: Arc<DirectionStats>,
    /// The request came over HTTP/1: Envoy's HTTP/1 codec ends every body with
    /// a data call of its own, empty, which the library sees too (brotli counts
    /// a broken stream again on it; checked against Envoy 1.40).
    http1: bool,
}

impl BodyTransform for InflatingBody {
    fn data(&mut self, data: Bytes, end: bool) -> Bytes {
        inflate_piece(&mut *self.decompressor, &self.stats, &data, end && self.http1)
    }
}

/// Inflates one piece of a body; `http1_end`: it ends a body that came over
/// HTTP/1, which Envoy's codec follows with an empty data call (so the library
/// sees one more, empty, piece).
fn inflate_piece(decompressor: &mut dyn Decompressor, stats: &DirectionStats, data: &[u8], http1_end: bool) -> Bytes {
    let out = inflate(decompressor, stats, data);
    if !http1_end || data.is_empty() {
        return out;
    }
    let tail = inflate(decompressor, stats, &[]);
    if tail.is_empty() {
        return out;
    }
    let mut joined = Vec::with_capacity(out.len() + tail.len());
    joined.extend_from_slice(&out);
    joined.extend_from_slice(&tail);
    Bytes::from(joined)
}

fn inflate(decompressor: &mut dyn Decompressor, stats: &DirectionStats, data: &[u8]) -> Bytes {
    stats.total_compressed_bytes.add(data.len() as u64);
    let out = decompressor.decompress(data);
    stats.total_uncompressed_bytes.add(out.len() as u64);
    out
}

impl StreamFilter for DecompressorFilter {
    fn decode_headers(
        &mut self,
        parts: &mut http::request::Parts,
        end_stream: bool,
        cx: &mut StreamContext<'_>,
    ) -> FilterStatus {
        let cfg = &*self.config;
        let coding = cfg.library.content_encoding();
        if !end_stream && cfg.request.start(&mut parts.headers, coding) {
            cx.transform_request_body(Box::new(InflatingBody {
                decompressor: cfg.library.create(),
                stats: cfg.request.stats.clone(),
                http1: cx.info.protocol.starts_with("HTTP/1"),
            }));
        }
        if cfg.advertise_accept_encoding && cfg.response.enabled.enabled() {
            advertise(&mut parts.headers, coding);
        }
        FilterStatus::Continue
    }

    fn encode_headers(
        &mut self,
        parts: &mut http::response::Parts,
        end_stream: bool,
        _cx: &mut StreamContext<'_>,
    ) -> EncodeStatus {
        let cfg = &*self.config;
        if !end_stream && cfg.response.start(&mut parts.headers, cfg.library.content_encoding()) {
            self.response = Some(cfg.library.create());
        }
        EncodeStatus::Continue
    }

    fn encode_data(&mut self, data: &mut Bytes, end_stream: bool, cx: &mut StreamContext<'_>) -> DataStatus {
        if let Some(d) = &mut self.response {
            let http1_end = end_stream && cx.info.upstream_protocol.is_some_and(|p| p.starts_with("HTTP/1"));
            *data = inflate_piece(&mut **d, &self.config.response.stats, data, http1_end);
        }
        DataStatus::Continue
    }
}

/// `(message full name, supported fields)` of the filter's config and library.
pub const SUPPORTED_FIELDS: &[(&str, &[&str])] = &[
    (CONFIG_TYPE, &["decompressor_library", "request_direction_config", "response_direction_config"]),
    (
        "envoy.extensions.filters.http.decompressor.v3.Decompressor.RequestDirectionConfig",
        &["common_config", "advertise_accept_encoding"],
    ),
    ("envoy.extensions.filters.http.decompressor.v3.Decompressor.ResponseDirectionConfig", &["common_config"]),
    (
        "envoy.extensions.filters.http.decompressor.v3.Decompressor.CommonDirectionConfig",
        &["enabled", "ignore_no_transform_header"],
    ),
    (compression::gzip::decompressor::CONFIG_TYPE, &["window_bits", "chunk_size", "max_inflate_ratio"]),
    (compression::brotli::decompressor::CONFIG_TYPE, &["disable_ring_buffer_reallocation", "chunk_size"]),
    // No dictionaries: Courier does not load zstd dictionaries.
    (compression::zstd::decompressor::CONFIG_TYPE, &["chunk_size"]),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn content_encoding_after(value: &'static str) -> (bool, Option<String>) {
        let mut h = map(&[("content-encoding", value)]);
        let taken = take_first_coding(&mut h, "gzip");
        (taken, h.get(CONTENT_ENCODING).map(|v| v.to_str().unwrap_or_default().to_string()))
    }

    #[test]
    fn the_first_coding_is_taken_off_content_encoding_as_envoy_does() {
        assert_eq!(content_encoding_after("gzip"), (true, None));
        assert_eq!(content_encoding_after("GZIP"), (true, None));
        assert_eq!(content_encoding_after("gzip, br"), (true, Some("br".into())));
        assert_eq!(content_encoding_after("Gzip , br ,deflate"), (true, Some("br ,deflate".into())));
        assert_eq!(content_encoding_after("gzip,"), (true, Some(String::new())));
        assert_eq!(content_encoding_after("br, gzip"), (false, Some("br, gzip".into())));
        assert_eq!(content_encoding_after("gzip ;q=1"), (false, Some("gzip ;q=1".into())));
        assert_eq!(content_encoding_after("x-gzip"), (false, Some("x-gzip".into())));
        let mut two = map(&[("content-encoding", "gzip"), ("content-encoding", "br")]);
        assert!(take_first_coding(&mut two, "gzip"));
        assert_eq!(two.get(CONTENT_ENCODING).map(|v| v.as_bytes()), Some(&b"br"[..]));
    }

    fn advertised(values: &[&'static str]) -> String {
        let mut h = map(&values.iter().map(|v| ("accept-encoding", *v)).collect::<Vec<_>>());
        advertise(&mut h, "gzip");
        h.get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
    }

    #[test]
    fn accept_encoding_advertises_the_coding_once_as_envoy_writes_it() {
        assert_eq!(advertised(&[]), "gzip");
        assert_eq!(advertised(&["gzip"]), "gzip");
        assert_eq!(advertised(&["br, gzip"]), "br,gzip");
        assert_eq!(advertised(&["gzip;q=0"]), "gzip");
        assert_eq!(advertised(&["GZIP"]), "GZIP,gzip");
        assert_eq!(advertised(&["br", "deflate"]), "br,deflate,gzip");
        assert_eq!(advertised(&["br;q=0.5, gzip"]), "br;q=0.5,gzip");
        assert_eq!(advertised(&["br,,deflate"]), "br,deflate,gzip");
        assert_eq!(advertised(&["gzip ;q=1,br"]), "br,gzip");
    }
}
