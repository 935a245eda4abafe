//! Checking one request against a requirement, as Envoy's verifier and
//! authenticator do.
//!
//! A provider's check takes every token in the provider's places and verifies
//! them last first; all must pass, and the first failure decides. Each token is
//! parsed, its issuer checked against the place's, its time (`nbf`, `exp`, with
//! the provider's clock skew) and audiences checked, then its signature against
//! the provider's keys (fetched first if remote). A good token leaves its payload
//! and claims in headers and is removed from its header or query parameter
//! unless `forward`.
//! `allow_missing` and `allow_missing_or_failed` look in every provider's
//! places and pick the provider by the token's issuer. `requires_any` reports, when
//! all fail, the last failure other than a missing token, as Envoy 1.40 does.

use std::future::Future;
use std::pin::Pin;

use base64::Engine;
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use serde_json::Value;

use super::extract::{without_param, Token};
use super::jwt::Jwt;
use super::provider::{audiences_allowed, KeySource, Provider};
use super::requirement::Requirement;
use super::status::Status;
use super::{remote, JwtAuthnConfig};

/// One request's check: the headers as the verified tokens leave them.
pub struct Check<'a> {
    pub config: &'a JwtAuthnConfig,
    pub headers: HeaderMap,
    pub uri: http::Uri,
    /// Unix seconds.
    pub now: u64,
}

type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

impl Check<'_> {
    pub fn requirement<'b>(&'b mut self, r: &'b Requirement) -> LocalFuture<'b, Status> {
        Box::pin(async move {
            match r {
                Requirement::Provider { provider, audiences } => {
                    self.authenticate(Some(*provider), audiences.as_deref(), false, false).await
                }
                Requirement::AllowMissingOrFailed => self.authenticate(None, None, true, false).await,
                Requirement::AllowMissing => self.authenticate(None, None, false, true).await,
                Requirement::All(children) => {
                    for child in children {
                        let status = self.requirement(child).await;
                        if status != Status::Ok {
                            return status;
                        }
                    }
                    Status::Ok
                }
                Requirement::Any(children) => {
                    let mut last = Status::JwtMissed;
                    for child in children {
                        match self.requirement(child).await {
                            Status::Ok => return Status::Ok,
                            Status::JwtMissed => {}
                            failed => last = failed,
                        }
                    }
                    last
                }
            }
        })
    }

    /// Verifies the tokens in `provider`'s places (every provider's when `None`).
    async fn authenticate(
        &mut self,
        provider: Option<usize>,
        audiences: Option<&[String]>,
        allow_failed: bool,
        allow_missing: bool,
    ) -> Status {
        let config = self.config;
        let extractor = provider.map_or(&config.all_places, |p| &config.providers[p].1);
        let mut tokens = extractor.extract(&self.headers, &self.uri);
        let mut status = Status::JwtMissed;
        while let Some(token) = tokens.pop() {
            status = self.verify(&token, provider, audiences).await;
            if status != Status::Ok && !allow_failed && !allow_missing {
                break;
            }
        }
        if allow_failed || (allow_missing && status == Status::JwtMissed) {
            return Status::Ok;
        }
        status
    }

    async fn verify(&mut self, token: &Token, provider: Option<usize>, audiences: Option<&[String]>) -> Status {
        let config = self.config;
        if provider.is_some() {
            // Envoy looks in its token cache first, which Courier does not keep.
            config.stats.jwt_cache_miss.inc();
        }
        let jwt = match Jwt::parse(&token.value) {
            Ok(jwt) => jwt,
            Err(status) => return status,
        };
        if !token.issuers.allows(&jwt.iss) {
            return Status::JwtUnknownIssuer;
        }
        let Some(p) = provider.or_else(|| config.provider_for(&jwt.iss)) else { return Status::JwtUnknownIssuer };
        let p = &config.providers[p].0;
        let status = jwt.check_time(self.now, p.clock_skew);
        if status != Status::Ok {
            return status;
        }
        if !audiences_allowed(audiences.unwrap_or(&p.audiences), &jwt.audiences) {
            return Status::JwtAudienceNotAllowed;
        }
        let status = match &p.keys {
            KeySource::Local(jwks) => jwks.verify(&jwt),
            KeySource::Remote(spec) => {
                match remote::keys(config.id, &p.name, spec, &config.clusters, &config.stats).await {
                    Ok(jwks) => jwks.verify(&jwt),
                    Err(status) => status,
                }
            }
        };
        if status == Status::Ok {
            self.good(p, &jwt, token);
        }
        status
    }

    /// What a verified token leaves on the request.
    fn good(&mut self, p: &Provider, jwt: &Jwt, token: &Token) {
        if let Some(name) = &p.forward_payload_header {
            let mut payload = jwt.payload_base64url.clone();
            if p.pad_forward_payload_header {
                while payload.len() % 4 != 0 {
                    payload.push('=');
                }
            }
            if let Ok(v) = HeaderValue::from_str(&payload) {
                self.headers.append(name.clone(), v);
            }
        }
        for (header, claim) in &p.claim_to_headers {
            if let Some(v) = claim_value(&jwt.payload, claim).and_then(|v| HeaderValue::from_str(&v).ok()) {
                self.headers.append(header.clone(), v);
            }
        }
        if !p.forward {
            if let Some(header) = &token.header {
                self.headers.remove::<&HeaderName>(header);
            }
            if let Some(uri) = token.param.as_deref().and_then(|name| without_param(&self.uri, name)) {
                self.uri = uri;
            }
        }
    }
}

/// A claim as a header value, Envoy's way: strings as they are, numbers as
/// integers when whole, booleans as `true`/`false`, objects and lists as base64
/// JSON. `claim` may be a dotted path into nested objects.
pub fn claim_value(payload: &serde_json::Map<String, Value>, claim: &str) -> Option<String> {
    let mut parts = claim.split('.');
    let mut value = payload.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
            (None, Some(f)) => f.to_string(),
            (None, None) => return None,
        },
        Value::Object(_) | Value::Array(_) => {
            base64::engine::general_purpose::STANDARD.encode(serde_json::to_string(value).ok()?)
        }
        Value::Null => return None,
    };
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_become_header_values_as_envoy_writes_them() {
        let payload: serde_json::Map<String, Value> = serde_json::from_str(
            r#"{"sub":"alice","n":7,"f":1.5,"b":true,"t":{"id":7},"aud":["a","b"],"z":null,"e":""}"#,
        )
        .expect("json");
        let claim = |name| claim_value(&payload, name);
        assert_eq!(claim("sub").as_deref(), Some("alice"));
        assert_eq!(claim("n").as_deref(), Some("7"));
        assert_eq!(claim("f").as_deref(), Some("1.5"));
        assert_eq!(claim("b").as_deref(), Some("true"));
        assert_eq!(claim("t.id").as_deref(), Some("7"));
        // `["a","b"]` as base64 (padded), as Envoy encodes lists and objects.
        assert_eq!(claim("aud").as_deref(), Some("WyJhIiwiYiJd"));
        assert_eq!((claim("z"), claim("e"), claim("missing"), claim("sub.x")), (None, None, None, None));
    }
}
