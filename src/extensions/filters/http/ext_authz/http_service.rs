//! `ext_authz`'s HTTP service: the check is an HTTP request to
//! `server_uri.cluster` (within `server_uri.timeout`) with the original method
//! and `path_prefix` + path, no body (`content-length: 0`), the original
//! `host`, and of the original headers `authorization` and those
//! `authorization_request.allowed_headers` matches, plus `headers_to_add`,
//! `x-envoy-internal: true` and the expected timeout, as Envoy's async client
//! sends it. A 200 allows, setting upstream the service's headers that
//! `allowed_upstream_headers` matches (appending those of `..._to_append`); any
//! other status denies with the service's status, body and headers (all of
//! them but `host`, or those `allowed_client_headers` matches).

use std::time::{Duration, Instant};

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::http_uri::HttpUpstreamType;
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::HttpService as HttpServiceProto;
use envoy_types::pb::envoy::r#type::matcher::v3::ListStringMatcher;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

use super::{Allowed, CheckedRequest, Decision};
use crate::config::{duration, ConfigError, FieldPath};
use crate::http::headers;
use crate::http::http1::client_connection::{BodyOut, RequestOut};
use crate::http::local_reply::LocalReply;
use crate::matcher::string_matcher::StringMatcher;
use crate::router::async_client::{self, AsyncResponse};
use crate::stream_info::ResponseFlag;
use crate::thread_local::Slot;
use crate::upstream::conn_pool::Protocol;
use crate::upstream::ThreadLocalClusterManager;

/// Envoy's default check timeout (0 means it).
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);
/// The most of a denial's body kept for the client.
const MAX_RESPONSE_BODY: usize = 1 << 20;

/// A compiled `HttpService`.
#[derive(Debug)]
pub(super) struct HttpService {
    cluster: String,
    timeout: Duration,
    path_prefix: String,
    allowed_headers: Vec<StringMatcher>,
    headers_to_add: Vec<(HeaderName, HeaderValue)>,
    allowed_upstream_headers: Vec<StringMatcher>,
    allowed_upstream_headers_to_append: Vec<StringMatcher>,
    /// `None`: every header of a denial goes to the client.
    allowed_client_headers: Option<Vec<StringMatcher>>,
}

fn matchers(list: Option<&ListStringMatcher>, path: &FieldPath) -> Result<Vec<StringMatcher>, ConfigError> {
    list.map_or(Ok(Vec::new()), |l| StringMatcher::list_from_proto(l, path))
}

impl HttpService {
    pub fn from_proto(s: &HttpServiceProto, path: &FieldPath) -> Result<HttpService, ConfigError> {
        let Some(uri) = &s.server_uri else { return Err(path.field_error("server_uri", "value is required")) };
        let cluster = match &uri.http_upstream_type {
            Some(HttpUpstreamType::Cluster(c)) if !c.is_empty() => c.clone(),
            _ => {
                return Err(path
                    .child("server_uri")
                    .field_error("cluster", "value length must be at least 1 characters"))
            }
        };
        let request = s.authorization_request.clone().unwrap_or_default();
        let rp = path.child("authorization_request");
        // Deprecated for the filter's own `allowed_headers` (refused here), which
        // Envoy 1.40 reads in the same way; the examples still write this one.
        #[allow(deprecated)]
        let allowed_headers = matchers(request.allowed_headers.as_ref(), &rp.child("allowed_headers"))?;
        let mut headers_to_add = Vec::new();
        for (i, h) in request.headers_to_add.iter().enumerate() {
            let mut at = rp.child("headers_to_add");
            at.push_index(i);
            let name =
                HeaderName::from_bytes(h.key.as_bytes()).map_err(|_| at.field_error("key", "not a header name"))?;
            let value = HeaderValue::from_str(&h.value).map_err(|_| at.field_error("value", "not a header value"))?;
            headers_to_add.push((name, value));
        }
        let response = s.authorization_response.clone().unwrap_or_default();
        let ap = path.child("authorization_response");
        Ok(HttpService {
            cluster,
            timeout: uri.timeout.as_ref().map(duration).filter(|t| !t.is_zero()).unwrap_or(DEFAULT_TIMEOUT),
            path_prefix: s.path_prefix.clone(),
            allowed_headers,
            headers_to_add,
            allowed_upstream_headers: matchers(
                response.allowed_upstream_headers.as_ref(),
                &ap.child("allowed_upstream_headers"),
            )?,
            allowed_upstream_headers_to_append: matchers(
                response.allowed_upstream_headers_to_append.as_ref(),
                &ap.child("allowed_upstream_headers_to_append"),
            )?,
            allowed_client_headers: match &response.allowed_client_headers {
                Some(list) => Some(matchers(Some(list), &ap.child("allowed_client_headers"))?),
                None => None,
            },
        })
    }

    /// The check request's headers: the original `host`, `authorization` and the
    /// allowed headers, then `headers_to_add`.
    fn check_headers(&self, request: &CheckedRequest) -> HeaderMap {
        let mut out = HeaderMap::new();
        if let Ok(host) = HeaderValue::from_str(&request.host) {
            out.insert(http::header::HOST, host);
        }
        for (name, value) in &request.headers {
            let wanted =
                *name == http::header::AUTHORIZATION || self.allowed_headers.iter().any(|m| m.matches(name.as_str()));
            if wanted && *name != http::header::HOST && *name != http::header::CONTENT_LENGTH {
                out.append(name.clone(), value.clone());
            }
        }
        for (name, value) in &self.headers_to_add {
            out.insert(name.clone(), value.clone());
        }
        out.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        out.insert(headers::X_ENVOY_INTERNAL, HeaderValue::from_static("true"));
        out.insert(headers::X_ENVOY_EXPECTED_RQ_TIMEOUT_MS, headers::number_value(self.timeout.as_millis() as u64));
        out
    }

    pub async fn check(&self, clusters: &Slot<ThreadLocalClusterManager>, request: CheckedRequest) -> Decision {
        let Some(cluster) = clusters.get().and_then(|cm| cm.get(&self.cluster)) else { return Decision::Error };
        let target = format!("{}{}", self.path_prefix, request.path);
        let check_headers = self.check_headers(&request);
        let out = RequestOut { method: &request.method, target: &target, headers: &check_headers, overrides: &[] };
        let protocol = Protocol::from(cluster.info.protocol_for(http::Version::HTTP_11));
        let started = Instant::now();
        let sent = async_client::send(
            &cluster,
            &out,
            BodyOut::Whole(Bytes::new()),
            protocol,
            Some(self.timeout),
            MAX_RESPONSE_BODY,
        );
        match sent.await {
            Ok(r) if r.parts.status == StatusCode::OK => Decision::Allowed(self.allowed(&r.parts.headers)),
            Ok(r) => Decision::Denied(self.denial(r, started.elapsed())),
            Err(_) => Decision::Error,
        }
    }

    /// The service's headers the request takes upstream.
    fn allowed(&self, service: &HeaderMap) -> Allowed {
        let pick = |list: &[StringMatcher]| {
            service
                .iter()
                .filter(|(name, _)| list.iter().any(|m| m.matches(name.as_str())))
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect()
        };
        Allowed {
            set: pick(&self.allowed_upstream_headers),
            append: pick(&self.allowed_upstream_headers_to_append),
            ..Allowed::default()
        }
    }

    /// The service's answer as the reply: its status, body and (allowed) headers.
    fn denial(&self, response: AsyncResponse, elapsed: Duration) -> LocalReply {
        let AsyncResponse { parts, body, .. } = response;
        let mut reply = LocalReply::new(parts.status, body, "ext_authz_denied")
            .with_flag(ResponseFlag::UnauthorizedExternalService);
        let mut previous: Option<HeaderName> = None;
        for (name, value) in parts.headers {
            let Some(name) = name.or(previous.take()) else { continue };
            previous = Some(name.clone());
            let framing = [http::header::CONTENT_LENGTH, http::header::TRANSFER_ENCODING, http::header::CONNECTION];
            // The connection manager writes its own date, server and framing.
            if framing.contains(&name) || name == http::header::DATE || name == http::header::SERVER {
                continue;
            }
            let allowed = match &self.allowed_client_headers {
                None => name != http::header::HOST,
                Some(list) => {
                    [http::header::WWW_AUTHENTICATE, http::header::LOCATION].contains(&name)
                        || list.iter().any(|m| m.matches(name.as_str()))
                }
            };
            if allowed {
                reply.headers.append(name, value);
            }
        }
        // Envoy's async client went through a router, which timed the service: the
        // time is one of the service's headers, allowed or not as they are.
        let timed = headers::X_ENVOY_UPSTREAM_SERVICE_TIME;
        if self.allowed_client_headers.as_ref().is_none_or(|list| list.iter().any(|m| m.matches(timed.as_str()))) {
            reply.headers.insert(timed, headers::number_value(elapsed.as_millis() as u64));
        }
        reply
    }
}
