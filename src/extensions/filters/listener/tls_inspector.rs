//! `envoy.filters.listener.tls_inspector`: peeks at the first bytes of a
//! connection, and when they are a TLS ClientHello records its SNI and ALPN and
//! the transport protocol `tls`, without consuming a byte, so filter chains can be
//! chosen by server name (SNI passthrough to a `tcp_proxy`) or TLS terminated by
//! the chain. Anything else, garbage included, leaves the transport `raw_buffer`.
//! The ClientHello is read by `network::client_hello`, which the TLS transport
//! shares. With `enable_ja3_fingerprinting` / `enable_ja4_fingerprinting` the
//! hello's JA3 and JA4 fingerprints are computed too and stay with the
//! connection, for `%TLS_JA3_FINGERPRINT%` and `%TLS_JA4_FINGERPRINT%` in TCP and
//! HTTP access logs, as Envoy's.

use std::rc::Rc;
use std::sync::Arc;

use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::google::protobuf::Any;

use super::ListenerFilterExtension;
use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
use crate::network::client_hello::{parse, ClientHello, Fingerprints, Parse, MAX_CLIENT_HELLO};
use crate::network::{AcceptedSocket, ListenerFilterError, ListenerFilterFactory, ListenerFilterFuture};
use crate::stats::Store;

pub const EXTENSION: ListenerFilterExtension = ListenerFilterExtension {
    name: "envoy.filters.listener.tls_inspector",
    config_type: "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
    create,
};

define_stats! {
    /// `tls_inspector.*`, at the root of the stats as in Envoy.
    #[derive(Debug)]
    pub struct TlsInspectorStats {
        counter client_hello_too_large,
        counter tls_found,
        counter tls_not_found,
        counter alpn_found,
        counter alpn_not_found,
        counter sni_found,
        counter sni_not_found,
        histogram bytes_processed,
    }
}

/// What is peeked first; most ClientHellos fit.
const FIRST_PEEK: usize = 1024;

#[derive(Debug)]
struct TlsInspectorFactory {
    stats: TlsInspectorStats,
    ja3: bool,
    ja4: bool,
}

fn create(any: &Any, path: &FieldPath, store: &Store) -> Result<Arc<dyn ListenerFilterFactory>, ConfigError> {
    let cfg: TlsInspector = decode_any(any, path)?;
    Ok(Arc::new(TlsInspectorFactory {
        stats: TlsInspectorStats::new(store, "tls_inspector."),
        ja3: cfg.enable_ja3_fingerprinting.is_some_and(|b| b.value),
        ja4: cfg.enable_ja4_fingerprinting.is_some_and(|b| b.value),
    }))
}

impl TlsInspectorFactory {
    /// The fingerprints the config asks for; none are computed otherwise.
    fn fingerprints(&self, hello: &ClientHello) -> Option<Rc<Fingerprints>> {
        (self.ja3 || self.ja4).then(|| {
            Rc::new(Fingerprints { ja3: self.ja3.then(|| hello.ja3_hash()), ja4: self.ja4.then(|| hello.ja4()) })
        })
    }
}

impl ListenerFilterFactory for TlsInspectorFactory {
    fn on_accept<'a>(&'a self, socket: &'a mut AcceptedSocket) -> ListenerFilterFuture<'a> {
        Box::pin(async move {
            let mut buf = vec![0u8; FIRST_PEEK];
            let mut have = 0;
            loop {
                let n = socket.peek_more(&mut buf, have).await.map_err(|_| ListenerFilterError::RemoteClose)?;
                if n <= have && n < buf.len() {
                    return Err(ListenerFilterError::RemoteClose);
                }
                have = n;
                match parse(&buf[..have]) {
                    Parse::NeedMore(want) => {
                        if want > MAX_CLIENT_HELLO {
                            // Envoy reads up to the limit before it gives up.
                            self.stats.bytes_processed.record(MAX_CLIENT_HELLO as u64);
                            self.stats.client_hello_too_large.inc();
                            return Err(ListenerFilterError::Rejected);
                        }
                        if want > buf.len() {
                            buf.resize(want.max(buf.len() * 2).min(MAX_CLIENT_HELLO), 0);
                        }
                    }
                    Parse::NotTls { read } => {
                        self.stats.bytes_processed.record(read.min(have) as u64);
                        self.stats.tls_not_found.inc();
                        return Ok(());
                    }
                    Parse::ClientHello(hello) => {
                        self.stats.bytes_processed.record(hello.bytes as u64);
                        self.stats.tls_found.inc();
                        socket.transport_protocol = "tls";
                        socket.tls_fingerprints = self.fingerprints(&hello);
                        match hello.server_name {
                            Some(name) => {
                                self.stats.sni_found.inc();
                                socket.server_name = name.to_ascii_lowercase();
                            }
                            None => self.stats.sni_not_found.inc(),
                        }
                        if hello.alpn.is_empty() {
                            self.stats.alpn_not_found.inc();
                        } else {
                            self.stats.alpn_found.inc();
                            socket.application_protocols = hello.alpn;
                        }
                        return Ok(());
                    }
                }
            }
        })
    }
}

/// Fuzz target (`crate::fuzz`): the ClientHello is read from growing peeks, so
/// each prefix's answer must hold for the whole; the fingerprints of whatever
/// parsed must not panic either.
#[cfg(any(test, fuzzing))]
pub(crate) fn fuzz(data: &[u8]) {
    crate::common::fuzzing::prefix_stable(data, parse, |p| match p {
        Parse::NeedMore(n) => Some(*n),
        _ => None,
    });
    if let Parse::ClientHello(hello) = parse(data) {
        let fingerprints = (hello.ja3_hash(), hello.ja4());
        assert_eq!((fingerprints.0.len(), fingerprints.1.len()), (32, 36), "{fingerprints:?}");
    }
}
