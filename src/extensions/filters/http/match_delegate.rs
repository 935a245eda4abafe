//! `envoy.extensions.common.matching.v3.ExtensionWithMatcher`: an HTTP filter
//! wrapped in Envoy's generic matcher, whose only action,
//! `envoy.filters.action.skip_filter` (`SkipFilter`), skips the filter for the
//! requests it selects (Envoy's `match_delegate`).
//!
//! As Envoy's `DelegatingStreamFilter`, the match is tried before each of the
//! filter's callbacks until it is decided: with the request head first, then,
//! when the matcher reads what has not come yet (trailers, the response), again
//! as it comes. Until then the filter runs; once the matcher selects the
//! request, every later callback skips it; a decided miss leaves it running.
//! The matcher reads every HTTP input (request and response headers and
//! trailers, query parameters) and the connection's facts. Routes'
//! `typed_per_filter_config` reach the wrapped filter under this entry's name,
//! as in Envoy. The deprecated `matcher` field is read as `xds_matcher`.

use std::sync::Arc;

use bytes::Bytes;
use envoy_types::pb::envoy::extensions::common::matching::v3::ExtensionWithMatcher;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::xds::core::v3::TypedExtensionConfig;
use http::HeaderMap;

use super::common;
use super::filter::{DataStatus, EncodeStatus, FilterStatus, StreamContext, StreamFilter, StreamFilterFactory};
use crate::config::{bootstrap::decode_any, descriptor, ConfigError, FieldPath};
use crate::extensions::{create_http_filter, HttpFilterContext, HttpFilterExtension};
use crate::matcher::{ConnectionFacts, InputKinds, MatchResult, Matcher};
use crate::router::HttpMatchingData;
use crate::stream_info::StreamInfo;

pub const NAME: &str = "envoy.filters.http.match_delegate";
pub const CONFIG_TYPE: &str = "envoy.extensions.common.matching.v3.ExtensionWithMatcher";
pub const SKIP_FILTER_TYPE: &str = "envoy.extensions.filters.common.matcher.action.v3.SkipFilter";

pub const EXTENSION: HttpFilterExtension =
    HttpFilterExtension { name: NAME, config_type: CONFIG_TYPE, create, per_route: None };

fn create(
    any: &Any,
    path: &FieldPath,
    ctx: &HttpFilterContext<'_>,
) -> Result<Arc<dyn StreamFilterFactory>, ConfigError> {
    common::check_supported(any, path)?;
    let proto: ExtensionWithMatcher = decode_any(any, path)?;
    let inner_path = path.child("extension_config");
    let inner = proto.extension_config.as_ref().ok_or_else(|| inner_path.error("value is required"))?;
    let inner_any =
        inner.typed_config.as_ref().ok_or_else(|| inner_path.field_error("typed_config", "value is required"))?;
    let inner_path = inner_path.child("typed_config");
    common::check_supported(inner_any, &inner_path)?;
    let inner = create_http_filter(inner_any, &inner_path, ctx)?;
    let mut skip = |action: &TypedExtensionConfig, at: &FieldPath| {
        let any = action.typed_config.as_ref().ok_or_else(|| at.field_error("typed_config", "value is required"))?;
        if descriptor::type_name(&any.type_url) == SKIP_FILTER_TYPE {
            Ok(())
        } else {
            Err(at.child("typed_config").field_error(
                "@type",
                format!("action '{}' is not supported here (only {SKIP_FILTER_TYPE})", any.type_url),
            ))
        }
    };
    #[allow(deprecated)]
    let matcher = match (&proto.xds_matcher, &proto.matcher) {
        (Some(m), _) => Matcher::from_proto(m, &path.child("xds_matcher"), InputKinds::Http, &mut skip)?,
        (None, Some(m)) => Matcher::from_common_proto(m, &path.child("matcher"), InputKinds::Http, &mut skip)?,
        (None, None) => return Err(path.error("one of matcher or xds_matcher must be set")),
    };
    Ok(Arc::new(MatchDelegateFactory { inner, matcher: Arc::new(matcher) }))
}

#[derive(Debug)]
struct MatchDelegateFactory {
    inner: Arc<dyn StreamFilterFactory>,
    matcher: Arc<Matcher<()>>,
}

impl StreamFilterFactory for MatchDelegateFactory {
    fn create(&self) -> Box<dyn StreamFilter> {
        Box::new(MatchDelegate {
            inner: self.inner.create(),
            matcher: self.matcher.clone(),
            state: State::Undecided(None),
        })
    }
}

/// Where the match stands for one stream.
enum State {
    /// Not decided yet; the request head kept once seen, for the inputs that
    /// read it again later.
    Undecided(Option<Box<http::request::Parts>>),
    Skip,
    Run,
}

struct MatchDelegate {
    inner: Box<dyn StreamFilter>,
    matcher: Arc<Matcher<()>>,
    state: State,
}

/// What has come of the stream so far, beyond the request head.
#[derive(Default, Clone, Copy)]
struct Seen<'a> {
    request_trailers: Option<&'a HeaderMap>,
    response_headers: Option<&'a HeaderMap>,
    response_trailers: Option<&'a HeaderMap>,
}

fn connection(info: &StreamInfo) -> ConnectionFacts<'_> {
    ConnectionFacts {
        local: info.downstream_local,
        remote: info.downstream_remote,
        direct_remote: info.downstream_remote,
        server_name: info.downstream_hello.as_ref().and_then(|h| h.server_name.as_deref()).unwrap_or(""),
        transport_protocol: "",
        application_protocols: &[],
    }
}

/// A copy of the request head (`Parts` is not `Clone`: its extensions are not).
fn copy_head(parts: &http::request::Parts) -> Option<Box<http::request::Parts>> {
    let mut b = http::Request::builder().method(parts.method.clone()).uri(parts.uri.clone()).version(parts.version);
    if let Some(h) = b.headers_mut() {
        *h = parts.headers.clone();
    }
    b.body(()).ok().map(|r| Box::new(r.into_parts().0))
}

impl MatchDelegate {
    /// Tries the match if it is not decided; true when the filter is skipped.
    fn skipped(&mut self, request: Option<&http::request::Parts>, seen: Seen<'_>, info: &StreamInfo) -> bool {
        let decided = match &self.state {
            State::Skip => return true,
            State::Run => return false,
            State::Undecided(kept) => {
                let Some(head) = request.or(kept.as_deref()) else { return false };
                let data = HttpMatchingData {
                    request: head,
                    connection: Some(connection(info)),
                    request_trailers: seen.request_trailers,
                    response_headers: seen.response_headers,
                    response_trailers: seen.response_trailers,
                };
                match self.matcher.find(&data) {
                    MatchResult::Matched(()) => Some(State::Skip),
                    MatchResult::NoMatch => Some(State::Run),
                    MatchResult::InsufficientData => None,
                }
            }
        };
        match decided {
            Some(state) => self.state = state,
            None => {
                if let (State::Undecided(kept @ None), Some(head)) = (&mut self.state, request) {
                    *kept = copy_head(head);
                }
            }
        }
        matches!(self.state, State::Skip)
    }
}

impl StreamFilter for MatchDelegate {
    fn decode_headers(
        &mut self,
        parts: &mut http::request::Parts,
        end_stream: bool,
        cx: &mut StreamContext<'_>,
    ) -> FilterStatus {
        if self.skipped(Some(parts), Seen::default(), cx.info) {
            return FilterStatus::Continue;
        }
        self.inner.decode_headers(parts, end_stream, cx)
    }

    fn decode_data(&mut self, data: &mut Bytes, end_stream: bool, cx: &mut StreamContext<'_>) -> DataStatus {
        if self.skipped(None, Seen::default(), cx.info) {
            return DataStatus::Continue;
        }
        self.inner.decode_data(data, end_stream, cx)
    }

    fn decode_trailers(&mut self, trailers: &mut HeaderMap, cx: &mut StreamContext<'_>) {
        let seen = Seen { request_trailers: Some(trailers), ..Seen::default() };
        if !self.skipped(None, seen, cx.info) {
            self.inner.decode_trailers(trailers, cx);
        }
    }

    fn encode_headers(
        &mut self,
        parts: &mut http::response::Parts,
        end_stream: bool,
        cx: &mut StreamContext<'_>,
    ) -> EncodeStatus {
        let seen = Seen { response_headers: Some(&parts.headers), ..Seen::default() };
        if self.skipped(None, seen, cx.info) {
            return EncodeStatus::Continue;
        }
        self.inner.encode_headers(parts, end_stream, cx)
    }

    fn encode_data(&mut self, data: &mut Bytes, end_stream: bool, cx: &mut StreamContext<'_>) -> DataStatus {
        if self.skipped(None, Seen::default(), cx.info) {
            return DataStatus::Continue;
        }
        self.inner.encode_data(data, end_stream, cx)
    }

    fn encode_trailers(&mut self, trailers: &mut HeaderMap, cx: &mut StreamContext<'_>) {
        let seen = Seen { response_trailers: Some(trailers), ..Seen::default() };
        if !self.skipped(None, seen, cx.info) {
            self.inner.encode_trailers(trailers, cx);
        }
    }
}

pub const SUPPORTED_FIELDS: &[(&str, &[&str])] =
    &[(CONFIG_TYPE, &["matcher", "xds_matcher", "extension_config"]), (SKIP_FILTER_TYPE, &[])];
