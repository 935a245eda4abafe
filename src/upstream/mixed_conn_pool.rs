//! `auto_config` (Envoy's mixed HTTP pool): the protocol of a connection is
//! what the upstream picks by ALPN from `h2,http/1.1`, so it is known only
//! once a connection is made. The first connection to a host (for a set of
//! TLS options) is made here offering both, and handed to the HTTP/1 or HTTP/2
//! pool by what was negotiated (nothing negotiated: HTTP/1.1, as Envoy); that
//! pool then serves the host's requests and makes its further connections,
//! offering its own protocol. A connection failure forgets the protocol, so
//! the next request asks again.

use std::sync::Arc;

use super::conn_pool::{ConnPool, Protocol};
use super::host::Host;
use super::http1_conn_pool::{PendingRequest, PoolFailure};
use super::resource_manager::Resource;
use super::thread_local_cluster::ThreadLocalCluster;
use super::upstream_connection::{ConnectFailure, UpstreamConnection};
use crate::network::tls::{AlpnFallback, TransportOptions};

/// The pool an `auto_config` request to `host` goes to, making the first
/// connection when the protocol is not known yet.
pub async fn pool(
    cluster: &ThreadLocalCluster,
    host: &Arc<Host>,
    options: TransportOptions,
) -> Result<ConnPool, PoolFailure> {
    if let Some(protocol) = cluster.negotiated(host, &options) {
        return Ok(cluster.http_pool(host, protocol, options));
    }
    let info = &cluster.info;
    // Waiting for a connection, as in either pool.
    let pending = PendingRequest::try_new(info, host)?;
    let breaker = info.resources.try_acquire(Resource::Connections);
    if breaker.is_none() {
        info.stats.upstream_cx_overflow.inc();
    }
    let connected = UpstreamConnection::connect_for(info, host, Some(AlpnFallback::Auto), &options).await;
    drop(pending);
    let connection = match connected {
        Ok(c) => c,
        Err(failure) => {
            info.stats.upstream_rq_pending_failure_eject.inc();
            return Err(match failure {
                ConnectFailure::Refused => PoolFailure::ConnectFailure,
                ConnectFailure::Timeout => PoolFailure::ConnectTimeout,
            });
        }
    };
    let protocol = if connection.stream.alpn_is(b"h2") { Protocol::Http2 } else { Protocol::Http1 };
    cluster.set_negotiated(host, &options, Some(protocol));
    let pool = cluster.http_pool(host, protocol, options);
    match &pool {
        ConnPool::Http1(p) => p.adopt(connection, breaker),
        ConnPool::Http2(p) => p.adopt(connection, breaker),
    }
    Ok(pool)
}
