//! Opening an upstream connection (TCP, the PROXY protocol header and TLS when the
//! cluster has them) with the cluster's connect timeout, and the
//! connection's accounting: the cluster and host stats rise on connect and fall
//! when the connection is dropped, whichever path drops it. As Envoy, the
//! destruction counts as local or remote (`upstream_cx_destroy_local` / `_remote`)
//! and, when a request was still in flight on it, also as
//! `upstream_cx_destroy_with_active_rq` and `upstream_cx_destroy_<side>_with_active_rq`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::cluster::{ClusterInfo, UpstreamProtocol};
use super::host::Host;
use crate::network::socket;
use crate::network::tls::{AlpnFallback, TransportOptions};
use crate::network::TransportStream;
use crate::stream_info::UpstreamConnectionInfo;

/// Why an upstream connection could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    Refused,
    Timeout,
}

/// A connected upstream transport plus its accounting guard.
#[derive(Debug)]
pub struct UpstreamConnection {
    pub stream: TransportStream,
    pub accounting: ConnectionAccounting,
    /// Its local address and TLS session, for the requests' access log lines.
    pub info: UpstreamConnectionInfo,
}

/// Keeps an upstream connection counted in `upstream_cx_active` (cluster and host)
/// until dropped, then counts its destruction.
#[derive(Debug)]
pub struct ConnectionAccounting {
    pub host: Arc<Host>,
    pub cluster: Arc<ClusterInfo>,
    closed_locally: bool,
    /// A request was in flight when the connection ended.
    active_request: bool,
}

impl UpstreamConnection {
    /// Connects to `host`, counting `upstream_cx_total` and the failure stats.
    pub async fn connect(cluster: &Arc<ClusterInfo>, host: &Arc<Host>) -> Result<UpstreamConnection, ConnectFailure> {
        Self::connect_for(cluster, host, None, &TransportOptions::NONE).await
    }

    /// `connect` for an HTTP pool of `protocol`: over TLS without `alpn_protocols`,
    /// ALPN offers it, as Envoy's pools do; `options` are the pool's requests'
    /// (`auto_sni`). With `auto_config` and `alpn_protocols` set, a connection
    /// whose upstream picked the other protocol fails (the pool cannot speak it).
    pub async fn connect_for(
        cluster: &Arc<ClusterInfo>,
        host: &Arc<Host>,
        protocol: Option<AlpnFallback>,
        options: &TransportOptions,
    ) -> Result<UpstreamConnection, ConnectFailure> {
        let stats = &cluster.stats;
        stats.upstream_cx_total.inc();
        host.stats.cx_total.fetch_add(1, Ordering::Relaxed);
        // As Envoy, the connect timeout covers the TLS handshake: a connection is
        // made once its transport is.
        let result = tokio::time::timeout(cluster.connect_timeout, async {
            let mut stream = socket::connect(host.address, host.ipv6_only, cluster.tcp_keepalive.as_ref()).await?;
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr().ok();
            if let Some(pp) = &cluster.proxy_protocol {
                // The header goes first, before any TLS: a few dozen bytes a fresh
                // socket's buffer takes at once.
                tokio::io::AsyncWriteExt::write_all(&mut stream, &pp.header(options.downstream.as_ref())).await?;
            }
            match &cluster.tls {
                None => Ok((
                    TransportStream::from(stream),
                    UpstreamConnectionInfo { local, remote: Some(host.address), tls: None },
                )),
                // Boxed: the handshake's state (a rustls session, ~1.4 KiB) would
                // otherwise sit in every request's future, and be copied with it
                // (measured: +5 % instructions per plain HTTP/1 request).
                Some(tls) => {
                    let (stream, session) = Box::pin(tls.connect(stream, host.address.ip(), protocol, options)).await?;
                    let info = UpstreamConnectionInfo {
                        local,
                        remote: Some(host.address),
                        tls: Some(std::rc::Rc::new(session)),
                    };
                    let h2 = stream.alpn_is(b"h2");
                    match protocol.filter(|_| cluster.upstream_protocol == UpstreamProtocol::Auto) {
                        Some(AlpnFallback::Http11) if h2 => Err(std::io::Error::other("the upstream chose h2")),
                        Some(AlpnFallback::Http2) if !h2 && stream.alpn_is(b"http/1.1") => {
                            Err(std::io::Error::other("the upstream chose http/1.1"))
                        }
                        _ => Ok((stream, info)),
                    }
                }
            }
        })
        .await;
        let failure = match result {
            Ok(Ok((stream, info))) => {
                // Envoy 1.40's mixed pool (`auto_config`) counts a connection
                // again as it makes its codec, once the protocol is known.
                if cluster.upstream_protocol == UpstreamProtocol::Auto {
                    stats.upstream_cx_total.inc();
                }
                stats.upstream_cx_active.inc();
                host.stats.cx_active.fetch_add(1, Ordering::Relaxed);
                let accounting = ConnectionAccounting {
                    host: host.clone(),
                    cluster: cluster.clone(),
                    closed_locally: false,
                    active_request: false,
                };
                return Ok(UpstreamConnection { stream, accounting, info });
            }
            Ok(Err(e)) => {
                tracing::debug!(cluster = %cluster.name, host = %host.address, "upstream connect failed: {e}");
                ConnectFailure::Refused
            }
            Err(_) => {
                tracing::debug!(cluster = %cluster.name, host = %host.address, "upstream connect timed out");
                stats.upstream_cx_connect_timeout.inc();
                ConnectFailure::Timeout
            }
        };
        stats.upstream_cx_connect_fail.inc();
        host.stats.cx_connect_fail.fetch_add(1, Ordering::Relaxed);
        Err(failure)
    }
}

impl ConnectionAccounting {
    /// Records that Courier (not the upstream) ended the connection.
    pub fn mark_closed_locally(&mut self) {
        self.closed_locally = true;
    }

    /// Records that a request was still in flight when the connection ended.
    pub fn mark_active_request(&mut self) {
        self.active_request = true;
    }
}

impl Drop for ConnectionAccounting {
    fn drop(&mut self) {
        let stats = &self.cluster.stats;
        stats.upstream_cx_active.dec();
        stats.upstream_cx_destroy.inc();
        if self.closed_locally {
            stats.upstream_cx_destroy_local.inc();
        } else {
            stats.upstream_cx_destroy_remote.inc();
        }
        if self.active_request {
            stats.upstream_cx_destroy_with_active_rq.inc();
            if self.closed_locally {
                stats.upstream_cx_destroy_local_with_active_rq.inc();
            } else {
                stats.upstream_cx_destroy_remote_with_active_rq.inc();
            }
        }
        self.host.stats.cx_active.fetch_sub(1, Ordering::Relaxed);
    }
}
