//! `envoy.filters.listener.http_inspector`: peeks at the first bytes of a
//! plain-text connection and records its application protocol, `h2c` for the
//! HTTP/2 connection preface, `http/1.1` or `http/1.0` for an HTTP/1 request line,
//! so filter chains can be chosen by `application_protocols`. Nothing is consumed.
//! A connection the TLS inspector found to be TLS is left alone, as in Envoy.

use std::sync::Arc;

use envoy_types::pb::envoy::extensions::filters::listener::http_inspector::v3::HttpInspector;
use envoy_types::pb::google::protobuf::Any;

use super::ListenerFilterExtension;
use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
use crate::network::{AcceptedSocket, ListenerFilterError, ListenerFilterFactory, ListenerFilterFuture};
use crate::stats::Store;

pub const EXTENSION: ListenerFilterExtension = ListenerFilterExtension {
    name: "envoy.filters.listener.http_inspector",
    config_type: "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector",
    create,
};

define_stats! {
    /// `http_inspector.*`, at the root of the stats as in Envoy.
    #[derive(Debug)]
    pub struct HttpInspectorStats {
        counter read_error,
        counter http10_found,
        counter http11_found,
        counter http2_found,
        counter http_not_found,
    }
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How far a request line is looked for before the connection is called "not HTTP".
const MAX_INSPECT: usize = 8 * 1024;

#[derive(Debug)]
struct HttpInspectorFactory {
    stats: HttpInspectorStats,
}

fn create(any: &Any, path: &FieldPath, store: &Store) -> Result<Arc<dyn ListenerFilterFactory>, ConfigError> {
    let _cfg: HttpInspector = decode_any(any, path)?;
    Ok(Arc::new(HttpInspectorFactory { stats: HttpInspectorStats::new(store, "http_inspector.") }))
}

impl ListenerFilterFactory for HttpInspectorFactory {
    fn on_accept<'a>(&'a self, socket: &'a mut AcceptedSocket) -> ListenerFilterFuture<'a> {
        Box::pin(async move {
            if socket.transport_protocol == "tls" {
                return Ok(());
            }
            let mut buf = vec![0u8; 256];
            let mut have = 0;
            loop {
                let n = match socket.peek_more(&mut buf, have).await {
                    Ok(n) => n,
                    Err(_) => {
                        self.stats.read_error.inc();
                        return Err(ListenerFilterError::RemoteClose);
                    }
                };
                if n <= have && n < buf.len() {
                    self.stats.read_error.inc();
                    return Err(ListenerFilterError::RemoteClose);
                }
                have = n;
                match inspect(&buf[..have]) {
                    Some(found) => {
                        let counter = match found {
                            Found::Http2 => &self.stats.http2_found,
                            Found::Http11 => &self.stats.http11_found,
                            Found::Http10 => &self.stats.http10_found,
                            Found::NotHttp => &self.stats.http_not_found,
                        };
                        counter.inc();
                        if let Some(protocol) = found.protocol() {
                            socket.application_protocols = vec![protocol.to_string()];
                        }
                        return Ok(());
                    }
                    None if have == buf.len() && buf.len() < MAX_INSPECT => buf.resize(buf.len() * 4, 0),
                    None if have == buf.len() => {
                        self.stats.http_not_found.inc();
                        return Ok(());
                    }
                    None => {}
                }
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Http2,
    Http11,
    Http10,
    NotHttp,
}

impl Found {
    fn protocol(self) -> Option<&'static str> {
        match self {
            Found::Http2 => Some("h2c"),
            Found::Http11 => Some("http/1.1"),
            Found::Http10 => Some("http/1.0"),
            Found::NotHttp => None,
        }
    }
}

/// Fuzz target (`crate::fuzz`): the protocol is told from growing peeks, so each
/// prefix's answer must hold for the whole.
#[cfg(any(test, fuzzing))]
pub(crate) fn fuzz(data: &[u8]) {
    crate::common::fuzzing::prefix_stable(data, inspect, |found| found.is_none().then_some(usize::MAX));
}

/// What the first bytes are, or `None` while they could still be either.
fn inspect(data: &[u8]) -> Option<Found> {
    let common = data.len().min(H2_PREFACE.len());
    if data[..common] == H2_PREFACE[..common] {
        return (common == H2_PREFACE.len()).then_some(Found::Http2);
    }
    let line_end = data.iter().position(|b| *b == b'\n');
    let line = &data[..line_end.unwrap_or(data.len())];
    // The method is a token: a byte outside one before the first space is not HTTP.
    let method_end = line.iter().position(|b| *b == b' ').unwrap_or(line.len());
    if !line[..method_end].iter().all(|b| b.is_ascii_alphabetic() || *b == b'-' || *b == b'_') {
        return Some(Found::NotHttp);
    }
    let line = line_end.map(|_| line.strip_suffix(b"\r").unwrap_or(line))?;
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(_target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Some(Found::NotHttp);
    };
    Some(match version {
        _ if method.is_empty() => Found::NotHttp,
        b"HTTP/1.1" => Found::Http11,
        b"HTTP/1.0" => Found::Http10,
        _ => Found::NotHttp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_protocol() {
        assert_eq!(inspect(b"GET / HTTP/1.1\r\nhost: x\r\n"), Some(Found::Http11));
        assert_eq!(inspect(b"POST /a HTTP/1.0\r\n"), Some(Found::Http10));
        assert_eq!(inspect(H2_PREFACE), Some(Found::Http2));
        assert_eq!(inspect(b"PRI * HTTP/2.0\r\n"), None);
        assert_eq!(inspect(b"GET / HT"), None);
        assert_eq!(inspect(b"\x16\x03\x01"), Some(Found::NotHttp));
        assert_eq!(inspect(b"GET / HTTP/2.0\r\n"), Some(Found::NotHttp));
        assert_eq!(inspect(b"hello world\n"), Some(Found::NotHttp));
    }
}
