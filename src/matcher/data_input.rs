//! The generic matcher's inputs (Envoy's `DataInput`s): what a predicate or a
//! matcher tree reads of a request or its connection before it matches it.
//!
//! The matcher sits below the layers that hold requests and connections, so it
//! reads them through `MatchingData`, which the HTTP layer implements; the
//! connection's addresses and names come as plain values (`ConnectionFacts`).
//! An input says when its data cannot be known yet (a response header while the
//! request is decoded): Envoy's `NotAvailable`, which leaves a match undecided
//! until the data comes, rather than a miss.
//!
//! Each user of the matcher names the inputs it can feed (`InputKinds`), as Envoy
//! refuses the others at start-up: a route table reads request headers only, RBAC
//! also the connection's facts but not `SourceTypeInput`; the transport and
//! application protocol inputs are Envoy's network-matching inputs, never HTTP's.

use std::borrow::Cow;
use std::net::SocketAddr;

use envoy_types::pb::envoy::r#type::matcher::v3::{
    HttpRequestHeaderMatchInput, HttpRequestQueryParamMatchInput, HttpRequestTrailerMatchInput,
    HttpResponseHeaderMatchInput, HttpResponseTrailerMatchInput,
};
use envoy_types::pb::xds::core::v3::TypedExtensionConfig;

use crate::config::bootstrap::decode_any;
use crate::config::{descriptor, ConfigError, FieldPath};

const NETWORK: &str = "envoy.extensions.matching.common_inputs.network.v3.";

/// A compiled input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataInput {
    /// Header names are kept lower case; pseudo-headers (`:path`) included.
    RequestHeader(String),
    RequestTrailer(String),
    ResponseHeader(String),
    ResponseTrailer(String),
    QueryParam(String),
    DestinationIp,
    DestinationPort,
    SourceIp,
    SourcePort,
    DirectSourceIp,
    ServerName,
    SourceType,
    TransportProtocol,
    ApplicationProtocol,
}

/// Which inputs a user of the matcher can feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKinds {
    /// The route table: request headers only.
    RequestHeaders,
    /// RBAC: request headers and the connection's addresses and server name.
    RequestHeadersAndConnection,
    /// A filter's `ExtensionWithMatcher`: every HTTP input.
    Http,
}

/// What an input read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputValue<'a> {
    /// Not known yet (Envoy's `NotAvailable`): the match waits for it.
    NotAvailable,
    /// Known, and not there (no such header): matches no value.
    Absent,
    Value(Cow<'a, str>),
}

impl<'a> InputValue<'a> {
    /// `Some` value, `Absent` for `None`.
    pub fn from_option(v: Option<impl Into<Cow<'a, str>>>) -> InputValue<'a> {
        v.map_or(InputValue::Absent, |v| InputValue::Value(v.into()))
    }
}

/// What is known of the connection, as the HTTP layer hands it over.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionFacts<'a> {
    /// Where the client connected.
    pub local: SocketAddr,
    /// The client as the connection manager sees it.
    pub remote: SocketAddr,
    /// The connection's peer.
    pub direct_remote: SocketAddr,
    /// The SNI; empty without one.
    pub server_name: &'a str,
    /// `tls` or `raw_buffer`.
    pub transport_protocol: &'a str,
    pub application_protocols: &'a [String],
}

/// A request and its connection, as the matcher reads them; the HTTP layer
/// implements it. Header values of a repeated header come joined with `,`.
pub trait MatchingData {
    /// `None` where no connection is at hand (a route table's lookup, which
    /// reads request headers only).
    fn connection(&self) -> Option<ConnectionFacts<'_>>;
    fn request_header(&self, name: &str) -> InputValue<'_>;
    fn request_trailer(&self, name: &str) -> InputValue<'_>;
    fn response_header(&self, name: &str) -> InputValue<'_>;
    fn response_trailer(&self, name: &str) -> InputValue<'_>;
    /// The first value of the query parameter, `%XX`-decoded (`+` stays).
    fn query_param(&self, name: &str) -> InputValue<'_>;
}

impl DataInput {
    /// Compiles `input`; `path` points at it. An input Envoy has but `kinds` does
    /// not feed is refused with Envoy's reason; one Courier lacks names its type.
    pub fn from_proto(input: &TypedExtensionConfig, path: &FieldPath, kinds: InputKinds) -> Result<Self, ConfigError> {
        let any = input.typed_config.as_ref().ok_or_else(|| path.field_error("typed_config", "value is required"))?;
        let at = path.child("typed_config");
        let type_name = descriptor::type_name(&any.type_url);
        let header = |name: String, field: &str| {
            if name.is_empty() {
                return Err(at.field_error(field, "value length must be at least 1 characters"));
            }
            Ok(name.to_ascii_lowercase())
        };
        let parsed = match type_name {
            "envoy.type.matcher.v3.HttpRequestHeaderMatchInput" => DataInput::RequestHeader(header(
                decode_any::<HttpRequestHeaderMatchInput>(any, &at)?.header_name,
                "header_name",
            )?),
            "envoy.type.matcher.v3.HttpRequestTrailerMatchInput" => DataInput::RequestTrailer(header(
                decode_any::<HttpRequestTrailerMatchInput>(any, &at)?.header_name,
                "header_name",
            )?),
            "envoy.type.matcher.v3.HttpResponseHeaderMatchInput" => DataInput::ResponseHeader(header(
                decode_any::<HttpResponseHeaderMatchInput>(any, &at)?.header_name,
                "header_name",
            )?),
            "envoy.type.matcher.v3.HttpResponseTrailerMatchInput" => DataInput::ResponseTrailer(header(
                decode_any::<HttpResponseTrailerMatchInput>(any, &at)?.header_name,
                "header_name",
            )?),
            "envoy.type.matcher.v3.HttpRequestQueryParamMatchInput" => {
                let q = decode_any::<HttpRequestQueryParamMatchInput>(any, &at)?.query_param;
                if q.is_empty() {
                    return Err(at.field_error("query_param", "value length must be at least 1 characters"));
                }
                DataInput::QueryParam(q)
            }
            t => match t.strip_prefix(NETWORK) {
                Some("DestinationIPInput") => DataInput::DestinationIp,
                Some("DestinationPortInput") => DataInput::DestinationPort,
                Some("SourceIPInput") => DataInput::SourceIp,
                Some("SourcePortInput") => DataInput::SourcePort,
                Some("DirectSourceIPInput") => DataInput::DirectSourceIp,
                Some("ServerNameInput") => DataInput::ServerName,
                Some("SourceTypeInput") => DataInput::SourceType,
                Some("TransportProtocolInput") => DataInput::TransportProtocol,
                Some("ApplicationProtocolInput") => DataInput::ApplicationProtocol,
                _ => {
                    return Err(at.field_error("@type", format!("input '{}' is not supported by Courier", any.type_url)))
                }
            },
        };
        parsed.check_kind(kinds, &any.type_url).map_err(|reason| path.error(reason))?;
        Ok(parsed)
    }

    /// Envoy's words for an input the user cannot feed.
    fn check_kind(&self, kinds: InputKinds, type_url: &str) -> Result<(), String> {
        use DataInput::*;
        match (self, kinds) {
            // Envoy registers these for network matching only.
            (TransportProtocol | ApplicationProtocol, _) => {
                Err(format!("'{type_url}' is an input of connections (network matching), not of HTTP requests"))
            }
            (RequestHeader(_), _) | (_, InputKinds::Http) => Ok(()),
            (_, InputKinds::RequestHeaders) => {
                Err(format!("Route table can only match on request headers, saw {type_url}"))
            }
            (DestinationIp | DestinationPort | SourceIp | SourcePort | DirectSourceIp | ServerName, _) => Ok(()),
            (_, InputKinds::RequestHeadersAndConnection) => {
                Err(format!("RBAC HTTP filter cannot match on '{type_url}'"))
            }
        }
    }

    /// Reads this input of `data`.
    pub fn read<'a>(&self, data: &'a dyn MatchingData) -> InputValue<'a> {
        let text = |s: String| InputValue::Value(Cow::Owned(s));
        match self {
            DataInput::RequestHeader(n) => return data.request_header(n),
            DataInput::RequestTrailer(n) => return data.request_trailer(n),
            DataInput::ResponseHeader(n) => return data.response_header(n),
            DataInput::ResponseTrailer(n) => return data.response_trailer(n),
            DataInput::QueryParam(n) => return data.query_param(n),
            _ => {}
        }
        let Some(c) = data.connection() else { return InputValue::NotAvailable };
        match self {
            DataInput::RequestHeader(_)
            | DataInput::RequestTrailer(_)
            | DataInput::ResponseHeader(_)
            | DataInput::ResponseTrailer(_)
            | DataInput::QueryParam(_) => InputValue::NotAvailable,
            DataInput::DestinationIp => text(c.local.ip().to_canonical().to_string()),
            DataInput::DestinationPort => text(c.local.port().to_string()),
            DataInput::SourceIp => text(c.remote.ip().to_canonical().to_string()),
            DataInput::SourcePort => text(c.remote.port().to_string()),
            DataInput::DirectSourceIp => text(c.direct_remote.ip().to_canonical().to_string()),
            DataInput::ServerName => match c.server_name {
                "" => InputValue::Absent,
                s => InputValue::Value(Cow::Borrowed(s)),
            },
            // Envoy's `isSameIpOrLoopback`: "local", else no value.
            DataInput::SourceType => {
                let remote = c.remote.ip().to_canonical();
                if remote.is_loopback() || remote == c.local.ip().to_canonical() {
                    text("local".to_string())
                } else {
                    InputValue::Absent
                }
            }
            DataInput::TransportProtocol => match c.transport_protocol {
                "" => InputValue::Absent,
                s => InputValue::Value(Cow::Borrowed(s)),
            },
            // Envoy joins them quoted: `"h2","http/1.1"`.
            DataInput::ApplicationProtocol => {
                let protocols = c.application_protocols;
                if protocols.is_empty() {
                    InputValue::Absent
                } else {
                    text(protocols.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(","))
                }
            }
        }
    }
}
