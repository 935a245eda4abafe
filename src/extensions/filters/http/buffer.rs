//! `envoy.filters.http.buffer`: reads the whole request body before the request
//! goes on, so the upstream receives it in one piece (or it is refused early).
//!
//! An ordinary filter, as Envoy's: it sets the stream's request buffer limit to
//! `max_request_bytes`, stops the headers, and has each piece of the body buffered
//! until the last; a larger body gets Envoy's 413 `Payload Too Large` from the
//! connection manager. Requests without a body pass at once. A
//! route's `BufferPerRoute` either disables the filter (`disabled: true`) or replaces
//! `max_request_bytes` (`buffer`). The filter has no stats of its own (as in Envoy);
//! the 413 is counted in `http.<stat_prefix>.downstream_rq_too_large`.

use std::sync::Arc;

use envoy_types::pb::envoy::extensions::filters::http::buffer::v3::{
    buffer_per_route::Override, Buffer, BufferPerRoute,
};
use envoy_types::pb::google::protobuf::Any;

use super::common;
use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::extensions::{HttpFilterContext, HttpFilterExtension};
use crate::router::PerRouteConfig;
use bytes::Bytes;

use super::filter::{DataStatus, FilterStatus, StreamContext, StreamFilter, StreamFilterFactory};
use crate::stats::Store;

pub const NAME: &str = "envoy.filters.http.buffer";
const CONFIG_TYPE: &str = "envoy.extensions.filters.http.buffer.v3.Buffer";
const PER_ROUTE_TYPE: &str = "envoy.extensions.filters.http.buffer.v3.BufferPerRoute";

pub const EXTENSION: HttpFilterExtension = HttpFilterExtension {
    name: NAME,
    config_type: CONFIG_TYPE,
    create,
    per_route: Some((PER_ROUTE_TYPE, create_per_route)),
};

/// A route's `BufferPerRoute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferRouteConfig {
    Disabled,
    MaxRequestBytes(u64),
}

fn max_request_bytes(b: &Buffer, path: &FieldPath) -> Result<u64, ConfigError> {
    match &b.max_request_bytes {
        Some(v) if v.value > 0 => Ok(u64::from(v.value)),
        Some(_) => Err(path.field_error("max_request_bytes", "value must be greater than 0")),
        None => Err(path.field_error("max_request_bytes", "value is required")),
    }
}

fn create(
    any: &Any,
    path: &FieldPath,
    ctx: &HttpFilterContext<'_>,
) -> Result<Arc<dyn StreamFilterFactory>, ConfigError> {
    common::check_supported(any, path)?;
    let b: Buffer = decode_any(any, path)?;
    Ok(Arc::new(BufferFactory { max_request_bytes: max_request_bytes(&b, path)?, name: ctx.filter_name.into() }))
}

fn create_per_route(any: &Any, path: &FieldPath, _store: &Store) -> Result<PerRouteConfig, ConfigError> {
    common::check_supported(any, path)?;
    let b: BufferPerRoute = decode_any(any, path)?;
    let config = match &b.r#override {
        Some(Override::Disabled(true)) => BufferRouteConfig::Disabled,
        Some(Override::Disabled(false)) => return Err(path.field_error("disabled", "value must equal true")),
        Some(Override::Buffer(buffer)) => {
            let mut p = path.clone();
            p.push_field("buffer");
            BufferRouteConfig::MaxRequestBytes(max_request_bytes(buffer, &p)?)
        }
        None => return Err(path.error("one of disabled or buffer must be set")),
    };
    Ok(Arc::new(config))
}

/// The filter's config, shared by every worker.
#[derive(Debug)]
pub struct BufferFactory {
    max_request_bytes: u64,
    /// The filter's configured name: its routes' configs are found under it.
    name: Arc<str>,
}

impl StreamFilterFactory for BufferFactory {
    fn create(&self) -> Box<dyn StreamFilter> {
        Box::new(BufferFilter { max_request_bytes: self.max_request_bytes, name: self.name.clone(), buffering: false })
    }
}

struct BufferFilter {
    max_request_bytes: u64,
    name: Arc<str>,
    /// Set when the headers were stopped (not disabled on the route, a body follows).
    buffering: bool,
}

impl StreamFilter for BufferFilter {
    fn decode_headers(
        &mut self,
        _parts: &mut http::request::Parts,
        end_stream: bool,
        cx: &mut StreamContext<'_>,
    ) -> FilterStatus {
        let max_bytes = match cx.route.and_then(|r| r.per_filter_config::<BufferRouteConfig>(&self.name)) {
            Some(BufferRouteConfig::Disabled) => return FilterStatus::Continue,
            Some(BufferRouteConfig::MaxRequestBytes(n)) => *n,
            None => self.max_request_bytes,
        };
        if end_stream {
            return FilterStatus::Continue;
        }
        cx.set_buffer_limit(max_bytes);
        self.buffering = true;
        FilterStatus::StopIteration
    }

    fn decode_data(&mut self, _data: &mut Bytes, end_stream: bool, _cx: &mut StreamContext<'_>) -> DataStatus {
        if self.buffering && !end_stream {
            DataStatus::StopIterationAndBuffer
        } else {
            DataStatus::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::filters::http::test_util::{any_from_yaml, decode_routed, route_table};

    fn factory(yaml: &str) -> Result<Arc<dyn StreamFilterFactory>, ConfigError> {
        create_from(&any_from_yaml(CONFIG_TYPE, yaml))
    }

    fn create_from(any: &Any) -> Result<Arc<dyn StreamFilterFactory>, ConfigError> {
        crate::extensions::filters::http::test_util::factory_from(create, NAME, any)
    }

    fn packed(type_name: &str, msg: &impl prost::Message) -> Any {
        Any { type_url: format!("type.googleapis.com/{type_name}"), value: msg.encode_to_vec() }
    }

    #[test]
    fn buffers_requests_with_a_body_per_route() {
        let f = factory("{max_request_bytes: 10}").expect("valid");
        let table = route_table(
            r#"
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:
              - match: {prefix: /nobuf}
                route: {cluster: c}
                typed_per_filter_config:
                  envoy.filters.http.buffer:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute
                    disabled: true
              - match: {prefix: /big}
                route: {cluster: c}
                typed_per_filter_config:
                  envoy.filters.http.buffer:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute
                    buffer: {max_request_bytes: 1000}
              - match: {prefix: /}
                route: {cluster: c}
            "#,
        );
        let run = |path: &str, end_stream: bool| decode_routed(f.as_ref(), &table, "POST", path, end_stream);
        let (status, limit) = run("/x", false);
        assert!(matches!(status, FilterStatus::StopIteration) && limit == Some(10));
        assert!(matches!(run("/x", true), (FilterStatus::Continue, None)), "no body, nothing to buffer");
        assert!(matches!(run("/nobuf", false), (FilterStatus::Continue, None)));
        let (status, limit) = run("/big", false);
        assert!(matches!(status, FilterStatus::StopIteration) && limit == Some(1000));
    }

    #[test]
    fn buffers_each_piece_until_the_last() {
        let f = factory("{max_request_bytes: 10}").expect("valid");
        let mut filter = f.create();
        let mut req = crate::extensions::filters::http::test_util::request("POST", "/", &[]);
        let mut info = crate::extensions::filters::http::test_util::info();
        let mut cx = StreamContext::new(None, &mut info, None);
        assert!(matches!(filter.decode_headers(&mut req, false, &mut cx), FilterStatus::StopIteration));
        let mut data = Bytes::from_static(b"abc");
        assert_eq!(filter.decode_data(&mut data, false, &mut cx), DataStatus::StopIterationAndBuffer);
        assert_eq!(filter.decode_data(&mut data, true, &mut cx), DataStatus::Continue);
    }

    #[test]
    fn config_errors_name_the_field() {
        let e = create_from(&packed(CONFIG_TYPE, &Buffer { max_request_bytes: None })).unwrap_err();
        assert_eq!(e.path, "http_filters[2].typed_config.max_request_bytes");
        let any = packed(PER_ROUTE_TYPE, &BufferPerRoute { r#override: Some(Override::Disabled(false)) });
        let e = create_per_route(&any, &FieldPath::starting_at("r"), &Store::new()).unwrap_err();
        assert_eq!(e.path, "r.disabled");
    }
}
