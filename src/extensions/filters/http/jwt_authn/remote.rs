//! Remote key sets (`remote_jwks`): fetched through `http_uri.cluster` with the
//! async client on a worker's first need, then kept on that worker for
//! `cache_duration`, as each Envoy worker keeps its own copy.
//!
//! Each worker's copies live in a thread-local map keyed by the filter config's
//! id and the provider, so workers never share or lock them; stale copies are
//! dropped at each fetch. A failed fetch (no
//! answer, a status other than 200, a body that is no key set) is counted in
//! `jwks_fetch_failed` and is `JwksFetchFail` for the token; nothing is kept, so
//! the next request fetches again.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::jwks::{Jwks, MAX_JWKS};
use super::provider::RemoteSpec;
use super::status::Status;
use super::JwtAuthnStats;
use crate::http::headers;
use crate::http::http1::client_connection::{BodyOut, RequestOut};
use crate::router::async_client;
use crate::thread_local::Slot;
use crate::upstream::conn_pool::Protocol;
use crate::upstream::ThreadLocalClusterManager;

/// `(config id, provider name)` → the keys and when they go stale.
type Cache = HashMap<(u64, String), (Rc<Jwks>, Instant)>;

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(HashMap::new());
}

/// The provider's keys on this worker, fetched when there are none or they are stale.
pub async fn keys(
    config_id: u64,
    provider: &str,
    spec: &RemoteSpec,
    clusters: &Slot<ThreadLocalClusterManager>,
    stats: &JwtAuthnStats,
) -> Result<Rc<Jwks>, Status> {
    let key = (config_id, provider.to_string());
    let cached =
        CACHE.with(|c| c.borrow().get(&key).filter(|(_, until)| *until > Instant::now()).map(|(k, _)| k.clone()));
    if let Some(keys) = cached {
        return Ok(keys);
    }
    match fetch(spec, clusters).await {
        Some(jwks) => {
            stats.jwks_fetch_success.inc();
            let jwks = Rc::new(jwks);
            let now = Instant::now();
            CACHE.with(|c| {
                let mut cache = c.borrow_mut();
                // Stale entries go here, so a replaced config's keys do not stay.
                cache.retain(|_, (_, until)| *until > now);
                cache.insert(key, (jwks.clone(), now + spec.cache_duration));
            });
            Ok(jwks)
        }
        None => {
            stats.jwks_fetch_failed.inc();
            Err(Status::JwksFetchFail)
        }
    }
}

async fn fetch(spec: &RemoteSpec, clusters: &Slot<ThreadLocalClusterManager>) -> Option<Jwks> {
    let cluster = clusters.get().and_then(|cm| cm.get(&spec.cluster))?;
    let mut headers = HeaderMap::new();
    headers.insert(http::header::HOST, HeaderValue::from_str(&spec.host).ok()?);
    async_client::mark_internal(&mut headers);
    // What Envoy 1.40's fetcher sends besides (seen on a JWKS server).
    headers.insert(http::header::USER_AGENT, HeaderValue::from_static("Go-browser"));
    headers.insert(headers::X_ENVOY_EXPECTED_RQ_TIMEOUT_MS, headers::number_value(spec.timeout.as_millis() as u64));
    let out = RequestOut { method: &Method::GET, target: &spec.target, headers: &headers, overrides: &[] };
    let protocol = Protocol::from(cluster.info.protocol_for(http::Version::HTTP_11));
    let sent = async_client::send(&cluster, &out, BodyOut::Whole(Bytes::new()), protocol, Some(spec.timeout), MAX_JWKS);
    let response = sent.await.ok()?;
    if response.parts.status != StatusCode::OK {
        return None;
    }
    Jwks::parse(&response.body).ok()
}
