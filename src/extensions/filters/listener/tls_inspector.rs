//! `envoy.filters.listener.tls_inspector`: peeks at the first bytes of a
//! connection, and when they are a TLS ClientHello records its SNI and ALPN and
//! the transport protocol `tls`, without consuming a byte, so filter chains can be
//! chosen by server name (SNI passthrough to a `tcp_proxy`) or TLS terminated by
//! the chain. Anything else, garbage included, leaves the transport `raw_buffer`.
//! The ClientHello is read by a small parser of its own (the records, the
//! handshake header and the two extensions needed), every length checked against
//! the bytes there: hostile input ends in "not TLS" or a closed socket, never a
//! panic.

use std::sync::Arc;

use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::google::protobuf::Any;

use super::ListenerFilterExtension;
use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
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

/// Envoy's default `max_client_hello_size`.
const MAX_CLIENT_HELLO: usize = 16 * 1024;
/// What is peeked first; most ClientHellos fit.
const FIRST_PEEK: usize = 1024;

#[derive(Debug)]
struct TlsInspectorFactory {
    stats: TlsInspectorStats,
}

fn create(any: &Any, path: &FieldPath, store: &Store) -> Result<Arc<dyn ListenerFilterFactory>, ConfigError> {
    let _cfg: TlsInspector = decode_any(any, path)?;
    Ok(Arc::new(TlsInspectorFactory { stats: TlsInspectorStats::new(store, "tls_inspector.") }))
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
                            self.stats.client_hello_too_large.inc();
                            return Err(ListenerFilterError::Rejected);
                        }
                        if want > buf.len() {
                            buf.resize(want.max(buf.len() * 2).min(MAX_CLIENT_HELLO), 0);
                        }
                    }
                    Parse::NotTls => {
                        // Envoy's TLS library reads a record header before it refuses.
                        self.stats.bytes_processed.record(have.min(RECORD_HEADER) as u64);
                        self.stats.tls_not_found.inc();
                        return Ok(());
                    }
                    Parse::ClientHello(hello) => {
                        self.stats.bytes_processed.record(hello.bytes as u64);
                        self.stats.tls_found.inc();
                        socket.transport_protocol = "tls";
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

/// What the bytes so far say.
#[derive(Debug, PartialEq, Eq)]
enum Parse {
    /// Could be a ClientHello; at least this many bytes are needed to tell.
    NeedMore(usize),
    NotTls,
    ClientHello(ClientHello),
}

#[derive(Debug, PartialEq, Eq, Default)]
struct ClientHello {
    server_name: Option<String>,
    alpn: Vec<String>,
    /// The bytes of the records that carried it, headers included.
    bytes: usize,
}

const RECORD_HEADER: usize = 5;
const HANDSHAKE_RECORD: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;

/// Fuzz target (`crate::fuzz`): the ClientHello is read from growing peeks, so
/// each prefix's answer must hold for the whole.
#[cfg(any(test, fuzzing))]
pub(crate) fn fuzz(data: &[u8]) {
    crate::common::fuzzing::prefix_stable(data, parse, |p| match p {
        Parse::NeedMore(n) => Some(*n),
        _ => None,
    });
}

/// Reassembles the handshake message from the TLS records at the start of
/// `data` and reads the ClientHello in it.
fn parse(data: &[u8]) -> Parse {
    let mut handshake = Vec::new();
    let mut at = 0;
    loop {
        let Some(header) = data.get(at..at + RECORD_HEADER) else {
            // A first byte or version that is not TLS says so at once.
            let head = &data[at.min(data.len())..];
            if head.first().is_some_and(|b| *b != HANDSHAKE_RECORD) || head.get(1).is_some_and(|v| *v != 3) {
                return Parse::NotTls;
            }
            return Parse::NeedMore(at + RECORD_HEADER);
        };
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if header[0] != HANDSHAKE_RECORD || header[1] != 3 || len == 0 {
            return Parse::NotTls;
        }
        let Some(fragment) = data.get(at + RECORD_HEADER..at + RECORD_HEADER + len) else {
            return Parse::NeedMore(at + RECORD_HEADER + len);
        };
        handshake.extend_from_slice(fragment);
        at += RECORD_HEADER + len;
        if handshake[0] != CLIENT_HELLO {
            return Parse::NotTls;
        }
        if handshake.len() >= 4 {
            let body_len = usize::from(handshake[1]) << 16 | usize::from(handshake[2]) << 8 | usize::from(handshake[3]);
            if let Some(body) = handshake.get(4..4 + body_len) {
                return client_hello(body)
                    .map_or(Parse::NotTls, |hello| Parse::ClientHello(ClientHello { bytes: at, ..hello }));
            }
            if 4 + body_len > MAX_CLIENT_HELLO {
                return Parse::NeedMore(4 + body_len);
            }
        }
    }
}

/// A cursor over bytes whose every read is checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// The ClientHello body: version, random, session id, cipher suites, compression
/// methods, then the extensions, of which SNI and ALPN are read.
fn client_hello(body: &[u8]) -> Option<ClientHello> {
    let mut r = Reader(body);
    r.take(2 + 32)?;
    r.vec8()?;
    r.vec16()?;
    r.vec8()?;
    let mut hello = ClientHello::default();
    if r.0.is_empty() {
        return Some(hello);
    }
    let mut exts = Reader(r.vec16()?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let mut data = Reader(exts.vec16()?);
        match kind {
            EXT_SERVER_NAME => {
                let mut names = Reader(data.vec16()?);
                while !names.0.is_empty() {
                    let name_type = names.u8()?;
                    let name = names.vec16()?;
                    if name_type == 0 && hello.server_name.is_none() {
                        hello.server_name = Some(std::str::from_utf8(name).ok()?.to_string());
                    }
                }
            }
            EXT_ALPN => {
                let mut protocols = Reader(data.vec16()?);
                while !protocols.0.is_empty() {
                    hello.alpn.push(String::from_utf8_lossy(protocols.vec8()?).into_owned());
                }
            }
            _ => {}
        }
    }
    Some(hello)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal TLS 1.2-style ClientHello record with the given SNI and ALPN.
    pub(crate) fn client_hello_bytes(sni: Option<&str>, alpn: &[&str]) -> Vec<u8> {
        let mut exts = Vec::new();
        if let Some(name) = sni {
            let mut list = vec![0u8];
            list.extend((name.len() as u16).to_be_bytes());
            list.extend(name.as_bytes());
            exts.extend(EXT_SERVER_NAME.to_be_bytes());
            exts.extend(((list.len() + 2) as u16).to_be_bytes());
            exts.extend((list.len() as u16).to_be_bytes());
            exts.extend(list);
        }
        if !alpn.is_empty() {
            let mut list = Vec::new();
            for p in alpn {
                list.push(p.len() as u8);
                list.extend(p.as_bytes());
            }
            exts.extend(EXT_ALPN.to_be_bytes());
            exts.extend(((list.len() + 2) as u16).to_be_bytes());
            exts.extend((list.len() as u16).to_be_bytes());
            exts.extend(list);
        }
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(0);
        body.extend([0, 2, 0x13, 0x01]);
        body.extend([1, 0]);
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut hs = vec![CLIENT_HELLO];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        let mut rec = vec![HANDSHAKE_RECORD, 3, 1];
        rec.extend((hs.len() as u16).to_be_bytes());
        rec.extend(hs);
        rec
    }

    #[test]
    fn reads_sni_and_alpn() {
        let bytes = client_hello_bytes(Some("Www.Example.com"), &["h2", "http/1.1"]);
        assert_eq!(
            parse(&bytes),
            Parse::ClientHello(ClientHello {
                server_name: Some("Www.Example.com".into()),
                alpn: vec!["h2".into(), "http/1.1".into()],
                bytes: bytes.len(),
            })
        );
        let bare = client_hello_bytes(None, &[]);
        assert_eq!(parse(&bare), Parse::ClientHello(ClientHello { bytes: bare.len(), ..ClientHello::default() }));
    }

    #[test]
    fn every_truncation_asks_for_more_and_none_panics() {
        let bytes = client_hello_bytes(Some("a.example"), &["h2"]);
        for cut in 0..bytes.len() {
            assert!(matches!(parse(&bytes[..cut]), Parse::NeedMore(n) if n > cut), "cut at {cut}");
        }
    }

    #[test]
    fn a_hello_split_over_two_records_is_reassembled() {
        let one = client_hello_bytes(Some("split.example"), &[]);
        let hs = &one[5..];
        let mut two = Vec::new();
        for part in [&hs[..10], &hs[10..]] {
            two.extend([HANDSHAKE_RECORD, 3, 1]);
            two.extend((part.len() as u16).to_be_bytes());
            two.extend(part);
        }
        assert!(
            matches!(parse(&two), Parse::ClientHello(h) if h.server_name.as_deref() == Some("split.example") && h.bytes == two.len())
        );
    }

    #[test]
    fn garbage_and_plain_text_are_not_tls() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Parse::NotTls);
        assert_eq!(parse(&[22, 9]), Parse::NotTls);
        // A handshake record whose inner lengths lie.
        let mut bad = client_hello_bytes(Some("x"), &["h2"]);
        let last = bad.len() - 4;
        bad[last] = 0xff;
        assert_eq!(parse(&bad), Parse::NotTls);
        // Every single-byte corruption ends in some answer, never a panic.
        let good = client_hello_bytes(Some("x.example"), &["h2"]);
        for i in 0..good.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = good.clone();
                b[i] = v;
                let _ = parse(&b);
            }
        }
    }
}
