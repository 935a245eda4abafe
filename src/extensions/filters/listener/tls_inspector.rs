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
//!
//! A ClientHello longer than `max_client_hello_size` (record headers included;
//! 16 KiB by default) is not read: the connection is closed and counted in
//! `client_hello_too_large`, whatever `close_connection_on_client_hello_parsing_errors`
//! says. That flag closes what does not parse as a ClientHello, plaintext
//! included (Envoy cannot tell the two apart), instead of passing it on as
//! `raw_buffer`. `initial_read_buffer_size` is the first peek's size, doubled up
//! to the maximum as needed.

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

/// What is peeked first without `initial_read_buffer_size`; most ClientHellos
/// fit. (Envoy's default is the maximum; the answer is the same either way.)
const FIRST_PEEK: usize = 1024;

#[derive(Debug)]
struct TlsInspectorFactory {
    stats: TlsInspectorStats,
    ja3: bool,
    ja4: bool,
    /// `max_client_hello_size`: the most bytes read; a longer hello is refused.
    max_read: usize,
    /// `initial_read_buffer_size`, at most `max_read`.
    first_read: usize,
    /// `close_connection_on_client_hello_parsing_errors`.
    close_when_not_tls: bool,
}

fn create(any: &Any, path: &FieldPath, store: &Store) -> Result<Arc<dyn ListenerFilterFactory>, ConfigError> {
    let cfg: TlsInspector = decode_any(any, path)?;
    // Envoy's schema bounds both sizes (checked with the rest of the config).
    let max_read = cfg.max_client_hello_size.map_or(MAX_CLIENT_HELLO, |v| v.value as usize);
    let first_read = cfg.initial_read_buffer_size.map_or(FIRST_PEEK, |v| v.value as usize);
    Ok(Arc::new(TlsInspectorFactory {
        stats: TlsInspectorStats::new(store, "tls_inspector."),
        ja3: cfg.enable_ja3_fingerprinting.is_some_and(|b| b.value),
        ja4: cfg.enable_ja4_fingerprinting.is_some_and(|b| b.value),
        max_read: max_read.min(MAX_CLIENT_HELLO),
        first_read: first_read.min(max_read),
        close_when_not_tls: cfg.close_connection_on_client_hello_parsing_errors,
    }))
}

impl TlsInspectorFactory {
    /// The fingerprints the config asks for; none are computed otherwise.
    fn fingerprints(&self, hello: &ClientHello) -> Option<Fingerprints> {
        (self.ja3 || self.ja4)
            .then(|| Fingerprints { ja3: self.ja3.then(|| hello.ja3_hash()), ja4: self.ja4.then(|| hello.ja4()) })
    }
}

impl ListenerFilterFactory for TlsInspectorFactory {
    fn on_accept<'a>(&'a self, socket: &'a mut AcceptedSocket) -> ListenerFilterFuture<'a> {
        Box::pin(async move {
            let mut buf = vec![0u8; self.first_read];
            let mut have = 0;
            loop {
                let n = socket.peek_more(&mut buf, have).await.map_err(|_| ListenerFilterError::RemoteClose)?;
                if n <= have && n < buf.len() {
                    return Err(ListenerFilterError::RemoteClose);
                }
                have = n;
                match parse(&buf[..have]) {
                    Parse::NeedMore(want) => {
                        if want > self.max_read {
                            // Envoy reads up to the limit before it gives up.
                            self.stats.bytes_processed.record(self.max_read as u64);
                            self.stats.client_hello_too_large.inc();
                            return Err(ListenerFilterError::Rejected);
                        }
                        if want > buf.len() {
                            buf.resize(want.max(buf.len() * 2).min(self.max_read), 0);
                        }
                    }
                    Parse::NotTls { read } => {
                        self.stats.bytes_processed.record(read.min(have) as u64);
                        self.stats.tls_not_found.inc();
                        if self.close_when_not_tls {
                            return Err(ListenerFilterError::Rejected);
                        }
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
