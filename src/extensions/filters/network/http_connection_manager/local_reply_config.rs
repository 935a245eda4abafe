//! `local_reply_config` (Envoy's `LocalReply`): how the replies the proxy makes
//! itself (no route, an upstream failure, a filter's denial, ...) are rewritten
//! before they go out. The first `mapper` whose access-log `filter` accepts the
//! reply may change its status, add headers, replace its body and pick its body
//! format; then the body is formatted by that format, else the config's
//! `body_format` (`%LOCAL_REPLY_BODY%` is the body so far), with the format's
//! content type. Without a mapper that matches and without `body_format` the
//! reply is left as it is.

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::substitution_format_string::Format;
use envoy_types::pb::envoy::config::core::v3::SubstitutionFormatString;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::LocalReplyConfig as LocalReplyProto;
use http::{HeaderValue, StatusCode};

use crate::access_log::LogFilter;
use crate::config::{ConfigError, FieldPath};
use crate::formatter::{data_source_string, FormatContext, SubstitutionFormat};
use crate::http::local_reply::LocalReply;
use crate::router::HeaderMutation;
use crate::stream_info::StreamInfo;

/// A body format and the content type it answers with.
#[derive(Debug, Clone)]
struct BodyFormat {
    format: SubstitutionFormat,
    content_type: HeaderValue,
}

impl BodyFormat {
    fn from_proto(f: &SubstitutionFormatString, path: &FieldPath) -> Result<BodyFormat, ConfigError> {
        let format = SubstitutionFormat::from_proto(f, path)?;
        let default = match f.format {
            Some(Format::JsonFormat(_)) => "application/json",
            _ => "text/plain",
        };
        let content_type = if f.content_type.is_empty() { default } else { f.content_type.as_str() };
        let content_type = HeaderValue::from_str(content_type)
            .map_err(|_| path.field_error("content_type", "not a valid header value"))?;
        Ok(BodyFormat { format, content_type })
    }
}

#[derive(Debug, Clone)]
struct Mapper {
    filter: LogFilter,
    status: Option<StatusCode>,
    headers_to_add: HeaderMutation,
    body: Option<Bytes>,
    body_format: Option<BodyFormat>,
}

/// A compiled `local_reply_config`.
#[derive(Debug, Clone)]
pub struct LocalReplyConfig {
    mappers: Vec<Mapper>,
    body_format: Option<BodyFormat>,
}

impl LocalReplyConfig {
    /// `path` points at `local_reply_config`.
    pub fn from_proto(c: &LocalReplyProto, path: &FieldPath) -> Result<LocalReplyConfig, ConfigError> {
        let mut mappers = Vec::with_capacity(c.mappers.len());
        for (i, m) in c.mappers.iter().enumerate() {
            let mut at = path.child("mappers");
            at.push_index(i);
            // The schema's rules required the filter.
            let filter = LogFilter::from_proto(&m.filter.clone().unwrap_or_default(), &at.child("filter"))?;
            let status = match m.status_code.as_ref().map(|s| s.value) {
                None => None,
                Some(code) => Some(
                    u16::try_from(code)
                        .ok()
                        .and_then(|c| StatusCode::from_u16(c).ok())
                        .ok_or_else(|| at.field_error("status_code", "not an HTTP status"))?,
                ),
            };
            let body = match &m.body {
                Some(ds) => Some(Bytes::from(data_source_string(ds, &at.child("body"))?.0)),
                None => None,
            };
            let body_format = match &m.body_format_override {
                Some(f) => Some(BodyFormat::from_proto(f, &at.child("body_format_override"))?),
                None => None,
            };
            let headers_to_add = HeaderMutation::additions(&m.headers_to_add, &at, "headers_to_add")?;
            mappers.push(Mapper { filter, status, headers_to_add, body, body_format });
        }
        let body_format = match &c.body_format {
            Some(f) => Some(BodyFormat::from_proto(f, &path.child("body_format"))?),
            None => None,
        };
        Ok(LocalReplyConfig { mappers, body_format })
    }

    /// Rewrites `reply`, made for `request`; `info` is the stream's, its
    /// response code the reply's. Returns the content type of the body format
    /// that made the body, if one did: it replaces whatever type the route's
    /// headers gave the reply (Envoy 1.40, checked by running it).
    pub fn rewrite(
        &self,
        reply: &mut LocalReply,
        request: &http::request::Parts,
        info: &mut StreamInfo,
    ) -> Option<HeaderValue> {
        info.response_code = Some(reply.status.as_u16());
        let matched = {
            let cx = FormatContext::for_request(request, info);
            self.mappers.iter().find(|m| m.filter.evaluate(&cx))
        };
        if let Some(m) = matched {
            // The headers see the reply's own status, as Envoy formats them.
            m.headers_to_add.apply_to_response(&mut reply.headers, Some(request), info);
            if let Some(status) = m.status {
                reply.status = status;
                info.response_code = Some(status.as_u16());
            }
            if let Some(body) = &m.body {
                reply.body = body.clone();
            }
        }
        let format = matched.and_then(|m| m.body_format.as_ref()).or(self.body_format.as_ref())?;
        let body = String::from_utf8_lossy(&reply.body).into_owned();
        let text = {
            let cx = FormatContext { local_reply_body: Some(&body), ..FormatContext::for_request(request, info) };
            format.format.format(&cx)
        };
        reply.body = Bytes::from(text);
        Some(format.content_type.clone())
    }
}
