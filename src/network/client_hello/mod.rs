//! The TLS ClientHello as the proxy reads it before any handshake: reassembled
//! from the records at the start of a connection, its SNI, ALPN and whether
//! the client asked for an OCSP staple. The TLS inspector chooses filter chains
//! by it, and a TLS listener counts and decides OCSP stapling by it (rustls does
//! not say whether the client asked). A small parser of its own (the records,
//! the handshake header and the extensions needed), every length checked against
//! the bytes there: hostile input ends in "not TLS", never a panic.
//!
//! The reassembled message is kept with the hello, with where its cipher suites
//! and extensions are, so that the TLS inspector's JA3 and JA4 fingerprints
//! (`ja3`, `ja4`) read them only when they are asked for.

use std::ops::Range;

#[cfg(test)]
mod fingerprint_tests;
mod ja3;
mod ja4;

/// Envoy's default `max_client_hello_size`.
pub const MAX_CLIENT_HELLO: usize = 16 * 1024;

/// What the bytes so far say.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// Could be a ClientHello; at least this many bytes are needed to tell.
    NeedMore(usize),
    /// Not a ClientHello, found after `read` bytes as a TLS library reads them:
    /// the records before the one that fails, then its header alone when that
    /// is what is wrong, else the whole record (the TLS inspector's
    /// `bytes_processed`; may exceed the bytes there, which are at most it).
    NotTls {
        read: usize,
    },
    ClientHello(ClientHello),
}

#[derive(Debug, PartialEq, Eq, Default)]
pub struct ClientHello {
    pub server_name: Option<String>,
    pub alpn: Vec<String>,
    /// The client asked for the server's OCSP response (`status_request`).
    pub status_request: bool,
    /// The bytes of the records that carried it, headers included.
    pub bytes: usize,
    /// The handshake message, header included (it was reassembled anyway).
    message: Vec<u8>,
    /// `legacy_version`: 0x0303 from a TLS 1.3 client too.
    legacy_version: u16,
    /// Where in `message` the cipher suites' and the extensions' lists are
    /// (without their length prefixes); they have been checked to parse.
    cipher_suites: Range<usize>,
    extensions: Range<usize>,
}

/// The fingerprints the TLS inspector computed of a connection's ClientHello
/// (Envoy's `ja3Hash()` / `ja4Hash()` of the connection), for
/// `%TLS_JA3_FINGERPRINT%` and `%TLS_JA4_FINGERPRINT%`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fingerprints {
    pub ja3: Option<String>,
    pub ja4: Option<String>,
}

/// What the TLS inspector read of a connection's ClientHello and keeps with
/// the connection, TLS terminated or passed through, as Envoy keeps it on the
/// socket: one allocation, only when there is something to keep.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InspectedHello {
    /// The SNI, lower case (Envoy's `requestedServerName()`:
    /// `%REQUESTED_SERVER_NAME%`, RBAC's `requested_server_name`).
    pub server_name: Option<String>,
    /// The fingerprints the config asked for.
    pub fingerprints: Fingerprints,
}

impl InspectedHello {
    /// `None` when the inspector found neither a server name nor fingerprints.
    pub fn of(server_name: &str, fingerprints: Option<Fingerprints>) -> Option<std::rc::Rc<InspectedHello>> {
        if server_name.is_empty() && fingerprints.is_none() {
            return None;
        }
        let server_name = Some(server_name.to_string()).filter(|n| !n.is_empty());
        Some(std::rc::Rc::new(InspectedHello { server_name, fingerprints: fingerprints.unwrap_or_default() }))
    }
}

const RECORD_HEADER: usize = 5;
pub const HANDSHAKE_RECORD: u8 = 22;
const HANDSHAKE_HEADER: usize = 4;
const CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const EXT_STATUS_REQUEST: u16 = 5;
const EXT_SUPPORTED_GROUPS: u16 = 10;
const EXT_EC_POINT_FORMATS: u16 = 11;
const EXT_SIGNATURE_ALGORITHMS: u16 = 13;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// Reassembles the handshake message from the TLS records at the start of
/// `data` and reads the ClientHello in it.
pub fn parse(data: &[u8]) -> Parse {
    let mut handshake = Vec::new();
    let mut at = 0;
    loop {
        let Some(header) = data.get(at..at + RECORD_HEADER) else {
            // A first byte or version that is not TLS says so at once.
            let head = &data[at.min(data.len())..];
            if head.first().is_some_and(|b| *b != HANDSHAKE_RECORD) || head.get(1).is_some_and(|v| *v != 3) {
                return Parse::NotTls { read: at + RECORD_HEADER };
            }
            return Parse::NeedMore(at + RECORD_HEADER);
        };
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if header[0] != HANDSHAKE_RECORD || header[1] != 3 || len == 0 {
            return Parse::NotTls { read: at + RECORD_HEADER };
        }
        let Some(fragment) = data.get(at + RECORD_HEADER..at + RECORD_HEADER + len) else {
            return Parse::NeedMore(at + RECORD_HEADER + len);
        };
        handshake.extend_from_slice(fragment);
        at += RECORD_HEADER + len;
        if handshake[0] != CLIENT_HELLO {
            return Parse::NotTls { read: at };
        }
        if handshake.len() >= HANDSHAKE_HEADER {
            let body_len = usize::from(handshake[1]) << 16 | usize::from(handshake[2]) << 8 | usize::from(handshake[3]);
            if handshake.len() >= HANDSHAKE_HEADER + body_len {
                handshake.truncate(HANDSHAKE_HEADER + body_len);
                return client_hello(handshake).map_or(Parse::NotTls { read: at }, |hello| {
                    Parse::ClientHello(ClientHello { bytes: at, ..hello })
                });
            }
            if HANDSHAKE_HEADER + body_len > MAX_CLIENT_HELLO {
                return Parse::NeedMore(HANDSHAKE_HEADER + body_len);
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

/// An extensions list, one `(type, data)` at a time; `None` at its end or where
/// it does not parse, which `complete` tells apart.
struct Extensions<'a>(Reader<'a>);

impl<'a> Iterator for Extensions<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<(u16, &'a [u8])> {
        let kind = self.0.u16()?;
        Some((kind, self.0.vec16()?))
    }
}

impl Extensions<'_> {
    /// Every extension was read: the list parsed to its end.
    fn complete(&self) -> bool {
        self.0 .0.is_empty()
    }
}

/// Where `part`, a slice of `whole`, is in it.
fn range_in(whole: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    start..start + part.len()
}

/// The ClientHello message: version, random, session id, cipher suites,
/// compression methods, then the extensions, of which SNI, ALPN and
/// status_request are read now and the rest kept for the fingerprints.
fn client_hello(message: Vec<u8>) -> Option<ClientHello> {
    let mut r = Reader(message.get(HANDSHAKE_HEADER..)?);
    let legacy_version = r.u16()?;
    r.take(32)?;
    r.vec8()?;
    let cipher_suites = r.vec16()?;
    r.vec8()?;
    let mut hello =
        ClientHello { legacy_version, cipher_suites: range_in(&message, cipher_suites), ..Default::default() };
    if r.0.is_empty() {
        hello.extensions = message.len()..message.len();
        hello.message = message;
        return Some(hello);
    }
    let block = r.vec16()?;
    let mut exts = Extensions(Reader(block));
    for (kind, data) in &mut exts {
        let mut data = Reader(data);
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
            EXT_STATUS_REQUEST => hello.status_request = true,
            _ => {}
        }
    }
    if !exts.complete() {
        return None;
    }
    hello.extensions = range_in(&message, block);
    hello.message = message;
    Some(hello)
}

impl ClientHello {
    /// The cipher suites in the client's order, GREASE included.
    fn cipher_suites(&self) -> impl Iterator<Item = u16> + '_ {
        u16s(self.message.get(self.cipher_suites.clone()).unwrap_or_default())
    }

    /// The extensions in the client's order, GREASE included.
    fn extensions(&self) -> Extensions<'_> {
        Extensions(Reader(self.message.get(self.extensions.clone()).unwrap_or_default()))
    }

    /// The data of the first extension of this type.
    fn extension(&self, kind: u16) -> Option<&[u8]> {
        self.extensions().find_map(|(k, data)| (k == kind).then_some(data))
    }
}

/// A GREASE value (RFC 8701: 0x0A0A, 0x1A1A, ... 0xFAFA), which a client sends
/// to keep servers tolerant and which fingerprints leave out.
fn is_grease(value: u16) -> bool {
    value & 0x0f0f == 0x0a0a && value >> 8 == value & 0xff
}

/// A list's u16s in order (an odd last byte, which no valid list has, is left out).
fn u16s(list: &[u8]) -> impl Iterator<Item = u16> + '_ {
    list.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal TLS 1.2-style ClientHello record with the given SNI and ALPN.
    fn client_hello_bytes(sni: Option<&str>, alpn: &[&str]) -> Vec<u8> {
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
        let Parse::ClientHello(hello) = parse(&bytes) else { panic!("not a ClientHello") };
        assert_eq!(hello.server_name.as_deref(), Some("Www.Example.com"));
        assert_eq!(hello.alpn, ["h2", "http/1.1"]);
        assert!(!hello.status_request);
        assert_eq!(hello.bytes, bytes.len());
        // The message is kept whole, the record header left out.
        assert_eq!(hello.message, bytes[RECORD_HEADER..]);
        let bare = client_hello_bytes(None, &[]);
        let Parse::ClientHello(hello) = parse(&bare) else { panic!("not a ClientHello") };
        assert_eq!((hello.server_name, hello.alpn.len(), hello.bytes), (None, 0, bare.len()));
    }

    #[test]
    fn a_status_request_is_seen() {
        let plain = client_hello_bytes(Some("a.example"), &[]);
        // The same hello with an OCSP status_request (type 5, empty) added.
        let mut asking = plain.clone();
        asking.extend([0, 5, 0, 0]);
        let grow = |b: &mut Vec<u8>, at: usize, width: usize| {
            let mut n = b[at..at + width].iter().fold(0usize, |acc, x| acc << 8 | usize::from(*x)) + 4;
            for i in (at..at + width).rev() {
                b[i] = n as u8;
                n >>= 8;
            }
        };
        grow(&mut asking, 3, 2); // record length
        grow(&mut asking, 6, 3); // handshake length
        let exts_at = 5 + 4 + 2 + 32 + 1 + 4 + 2;
        grow(&mut asking, exts_at, 2); // extensions length
        assert!(matches!(parse(&plain), Parse::ClientHello(h) if !h.status_request));
        assert!(matches!(parse(&asking), Parse::ClientHello(h) if h.status_request && h.server_name.is_some()));
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
        // A record header is read before it is refused.
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Parse::NotTls { read: 5 });
        assert_eq!(parse(&[22, 9]), Parse::NotTls { read: 5 });
        // A handshake record whose inner lengths lie: the whole record is read.
        let mut bad = client_hello_bytes(Some("x"), &["h2"]);
        let last = bad.len() - 4;
        bad[last] = 0xff;
        assert_eq!(parse(&bad), Parse::NotTls { read: bad.len() });
        // A handshake that is no ClientHello, likewise.
        assert_eq!(parse(b"\x16\x03\x01\x00\x08\x02\x00\x00\x04\x03\x03\x00\x00"), Parse::NotTls { read: 13 });
        // Every single-byte corruption ends in some answer, never a panic, and
        // so do the fingerprints of whatever still parses.
        let good = client_hello_bytes(Some("x.example"), &["h2"]);
        for i in 0..good.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = good.clone();
                b[i] = v;
                if let Parse::ClientHello(hello) = parse(&b) {
                    let _ = (hello.ja3_hash(), hello.ja4());
                }
            }
        }
    }
}
