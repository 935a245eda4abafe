//! A compiled `JwtProvider`: who issues the tokens, for which audiences, where
//! they are carried, where the keys come from, and what a verified token
//! leaves on the request.
//!
//! Local keys (`local_jwks`) are read at load, and a set that cannot be read is
//! a config error with Envoy's reason. Remote keys (`remote_jwks`) are fetched by
//! `remote` on first use.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::http_uri::HttpUpstreamType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_provider::JwksSourceSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::JwtProvider;
use http::header::HeaderName;

use super::jwks::{Jwks, MAX_JWKS};
use crate::config::{duration, ConfigError, FieldPath};

/// Envoy's default `clock_skew_seconds`.
const DEFAULT_CLOCK_SKEW: u64 = 60;
/// Envoy's default `cache_duration` of remote keys.
const DEFAULT_CACHE_DURATION: Duration = Duration::from_secs(600);
/// Envoy's default fetch timeout (`http_uri.timeout` is required, but may be 0).
const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(1);

/// Where remote keys are fetched.
#[derive(Debug, Clone)]
pub struct RemoteSpec {
    pub cluster: String,
    /// `http_uri.uri`'s authority and path, sent as `host` and the target.
    pub host: String,
    pub target: String,
    pub timeout: Duration,
    pub cache_duration: Duration,
}

#[derive(Debug, Clone)]
pub enum KeySource {
    Local(Jwks),
    Remote(RemoteSpec),
}

#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    /// Empty: any issuer.
    pub issuer: String,
    /// Compared without scheme and trailing slash; empty: any audience.
    pub audiences: Vec<String>,
    pub keys: KeySource,
    pub forward: bool,
    pub forward_payload_header: Option<HeaderName>,
    pub pad_forward_payload_header: bool,
    pub claim_to_headers: Vec<(HeaderName, String)>,
    pub clock_skew: u64,
    pub from_headers: Vec<(HeaderName, String)>,
    pub from_params: Vec<String>,
    pub from_cookies: Vec<String>,
}

/// An audience as Envoy compares it: without `http://` / `https://` and a trailing `/`.
pub fn sanitize_audience(a: &str) -> &str {
    let a = a.strip_prefix("http://").or_else(|| a.strip_prefix("https://")).unwrap_or(a);
    a.strip_suffix('/').unwrap_or(a)
}

/// True when `audiences` is empty or shares one with the token's.
pub fn audiences_allowed(audiences: &[String], token: &[String]) -> bool {
    audiences.is_empty() || token.iter().any(|t| audiences.iter().any(|a| a == sanitize_audience(t)))
}

fn header_name(name: &str, path: &FieldPath, field: &str) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
        .map_err(|_| path.field_error(field, format!("'{name}' is not a header name")))
}

/// Reads `local_jwks` (`path` points at it) of the provider `name`.
fn local_jwks(
    name: &str,
    source: &envoy_types::pb::envoy::config::core::v3::DataSource,
    path: &FieldPath,
) -> Result<Jwks, ConfigError> {
    let bytes = match &source.specifier {
        Some(Specifier::InlineString(s)) => s.as_bytes().to_vec(),
        Some(Specifier::InlineBytes(b)) => b.clone(),
        Some(Specifier::EnvironmentVariable(v)) => std::env::var(v)
            .map_err(|_| path.field_error("environment_variable", format!("Environment variable doesn't exist: {v}")))?
            .into_bytes(),
        Some(Specifier::Filename(f)) => {
            let p = path.child("filename");
            let meta = std::fs::metadata(f).map_err(|e| p.error(format!("cannot read '{f}': {e}")))?;
            if meta.len() > MAX_JWKS as u64 {
                return Err(p.error(format!("'{f}' is over {MAX_JWKS} bytes")));
            }
            std::fs::read(f).map_err(|e| p.error(format!("cannot read '{f}': {e}")))?
        }
        None => {
            return Err(path.error("one of inline_string, inline_bytes, filename or environment_variable must be set"))
        }
    };
    Jwks::parse(&bytes).map_err(|status| {
        path.error(format!("Provider '{name}' in jwt_authn config has invalid local jwks: {}", status.message()))
    })
}

impl Provider {
    /// Compiles `p`; `path` points at it (`providers["name"]`).
    pub fn from_proto(name: &str, p: &JwtProvider, path: &FieldPath) -> Result<Provider, ConfigError> {
        let keys = match &p.jwks_source_specifier {
            Some(JwksSourceSpecifier::LocalJwks(source)) => {
                KeySource::Local(local_jwks(name, source, &path.child("local_jwks"))?)
            }
            Some(JwksSourceSpecifier::RemoteJwks(remote)) => {
                let rp = path.child("remote_jwks");
                let Some(uri) = &remote.http_uri else { return Err(rp.field_error("http_uri", "value is required")) };
                let up = rp.child("http_uri");
                let cluster = match &uri.http_upstream_type {
                    Some(HttpUpstreamType::Cluster(c)) if !c.is_empty() => c.clone(),
                    _ => return Err(up.field_error("cluster", "value length must be at least 1 characters")),
                };
                let parsed: http::Uri =
                    uri.uri.parse().map_err(|_| up.field_error("uri", format!("'{}' is not a URI", uri.uri)))?;
                let host = parsed.authority().map(|a| a.as_str().to_string()).unwrap_or_default();
                let target = parsed.path_and_query().map_or("/", |pq| pq.as_str()).to_string();
                KeySource::Remote(RemoteSpec {
                    cluster,
                    host,
                    target,
                    timeout: uri
                        .timeout
                        .as_ref()
                        .map(duration)
                        .filter(|t| !t.is_zero())
                        .unwrap_or(DEFAULT_FETCH_TIMEOUT),
                    cache_duration: remote.cache_duration.as_ref().map(duration).unwrap_or(DEFAULT_CACHE_DURATION),
                })
            }
            None => return Err(path.error("one of remote_jwks or local_jwks must be set")),
        };
        let mut from_headers = Vec::with_capacity(p.from_headers.len());
        for (i, h) in p.from_headers.iter().enumerate() {
            let mut hp = path.child("from_headers");
            hp.push_index(i);
            from_headers.push((header_name(&h.name, &hp, "name")?, h.value_prefix.clone()));
        }
        let mut from_params = p.from_params.clone();
        if from_headers.is_empty() && from_params.is_empty() && p.from_cookies.is_empty() {
            from_headers.push((http::header::AUTHORIZATION, "Bearer ".to_string()));
            from_params.push("access_token".to_string());
        }
        let mut claim_to_headers = Vec::with_capacity(p.claim_to_headers.len());
        for (i, c) in p.claim_to_headers.iter().enumerate() {
            let mut cp = path.child("claim_to_headers");
            cp.push_index(i);
            claim_to_headers.push((header_name(&c.header_name, &cp, "header_name")?, c.claim_name.clone()));
        }
        let forward_payload_header = match p.forward_payload_header.as_str() {
            "" => None,
            h => Some(header_name(h, path, "forward_payload_header")?),
        };
        Ok(Provider {
            name: name.to_string(),
            issuer: p.issuer.clone(),
            audiences: p.audiences.iter().map(|a| sanitize_audience(a).to_string()).collect(),
            keys,
            forward: p.forward,
            forward_payload_header,
            pad_forward_payload_header: p.pad_forward_payload_header,
            claim_to_headers,
            clock_skew: match p.clock_skew_seconds {
                0 => DEFAULT_CLOCK_SKEW,
                s => u64::from(s),
            },
            from_headers,
            from_params,
            from_cookies: p.from_cookies.clone(),
        })
    }

    /// The headers a verified token sets: removed from every request first, so a
    /// client cannot send them itself.
    pub fn output_headers(&self) -> impl Iterator<Item = &HeaderName> {
        self.forward_payload_header.iter().chain(self.claim_to_headers.iter().map(|(h, _)| h))
    }
}
