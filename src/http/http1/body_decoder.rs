//! HTTP/1.1 message-body framing (RFC 9112 §6-7), decoded from a read buffer.
//!
//! One decoder serves both directions: the downstream request body
//! (`request_body`) and the upstream response body (`client_connection`). It only
//! looks at bytes already buffered; the caller reads more when told `NeedMore`,
//! so a body is never read faster than it is consumed.

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

use super::{field, CodecError};

/// Longest chunk-size line accepted (with its extensions): Envoy's default
/// header limit, 60 KiB. Envoy's parser reads extensions as they stream and
/// takes longer ones; Courier holds the line until its end, so it is bounded.
const MAX_CHUNK_LINE: usize = 60 * 1024;
/// Longest trailer section accepted (Envoy's default header limit, 60 KiB).
const MAX_TRAILERS: usize = 60 * 1024;

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the peer closes (a response without framing headers).
    UntilClose,
}

/// What the buffered bytes gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// The next piece of the body.
    Data(Bytes),
    /// The body is whole (trailers, if any, were read and dropped, as Envoy's
    /// HTTP/1 codec does by default, or kept and given before).
    Done,
    /// The trailers, when kept (`enable_trailers`); the body is whole.
    Trailers(HeaderMap),
    /// More bytes must be read first.
    NeedMore,
}

/// Where the decoder is in the current body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd,
    Trailers(usize),
    UntilClose,
    Done,
    Failed(CodecError),
}

/// The framing state of one body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyDecoder {
    state: State,
    /// `Some` when trailers are kept (`enable_trailers`): those read so far.
    kept: Option<Box<KeptTrailers>>,
}

/// Trailers being read: those complete, and the last one, which an obs-fold
/// line may still continue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct KeptTrailers {
    map: HeaderMap,
    last: Option<(HeaderName, Vec<u8>)>,
}

impl KeptTrailers {
    fn finish_last(&mut self) {
        if let Some((name, mut value)) = self.last.take() {
            // A bare CR is dropped, as in a header value.
            value.retain(|&b| b != b'\r');
            if let Ok(value) = HeaderValue::from_bytes(field::trim(&value)) {
                self.map.append(name, value);
            }
        }
    }
}

impl BodyDecoder {
    pub fn new(framing: BodyFraming) -> BodyDecoder {
        let state = match framing {
            BodyFraming::None | BodyFraming::Length(0) => State::Done,
            BodyFraming::Length(n) => State::Length(n),
            BodyFraming::Chunked => State::ChunkSize,
            BodyFraming::UntilClose => State::UntilClose,
        };
        BodyDecoder { state, kept: None }
    }

    /// Keeps the trailers of a chunked body (`enable_trailers`) instead of
    /// dropping them: `decode` gives them as `Decoded::Trailers`.
    pub fn keeping_trailers(mut self, keep: bool) -> BodyDecoder {
        self.kept = keep.then(Box::default);
        self
    }

    /// The body was read to its end.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Body bytes still expected, when the framing says.
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// The peer closed the connection: the end of a close-delimited body, an
    /// error for any other unfinished one.
    pub fn on_eof(&mut self, error: CodecError) -> Result<(), CodecError> {
        match self.state {
            State::Done => Ok(()),
            State::UntilClose => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(self.fail(error)),
        }
    }

    /// Marks the body failed with `e` (every later call returns it).
    pub fn fail(&mut self, e: CodecError) -> CodecError {
        self.state = State::Failed(e);
        e
    }

    /// Decodes the next piece of the body from `buf`, consuming what it used.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, CodecError> {
        loop {
            match self.state {
                State::Done => return Ok(Decoded::Done),
                State::Failed(e) => return Err(e),
                State::Length(0) => {
                    self.state = State::Done;
                    return Ok(Decoded::Done);
                }
                _ if buf.is_empty() => return Ok(Decoded::NeedMore),
                State::UntilClose => return Ok(Decoded::Data(buf.split().freeze())),
                State::Length(rem) | State::ChunkData(rem) => {
                    let n = rem.min(buf.len() as u64);
                    let data = buf.split_to(n as usize).freeze();
                    self.state = match self.state {
                        State::Length(_) if rem == n => State::Done,
                        State::Length(_) => State::Length(rem - n),
                        _ if rem == n => State::ChunkDataEnd,
                        _ => State::ChunkData(rem - n),
                    };
                    return Ok(Decoded::Data(data));
                }
                State::ChunkSize => match chunk_size_line(buf) {
                    Ok(Some((used, size))) => {
                        let _ = buf.split_to(used);
                        self.state = if size == 0 { State::Trailers(0) } else { State::ChunkData(size) };
                    }
                    Ok(None) => return Ok(Decoded::NeedMore),
                    Err(e) => return Err(self.fail(e)),
                },
                State::ChunkDataEnd => {
                    if buf.starts_with(b"\r\n") {
                        let _ = buf.split_to(2);
                    } else if buf.starts_with(b"\n") {
                        let _ = buf.split_to(1);
                    } else if buf[..] == b"\r"[..] {
                        return Ok(Decoded::NeedMore);
                    } else {
                        return Err(self.fail(CodecError::bad_request("http1.codec_error")));
                    }
                    self.state = State::ChunkSize;
                }
                State::Trailers(seen) => {
                    let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
                        if seen + buf.len() > MAX_TRAILERS {
                            return Err(self.fail(CodecError::headers_too_large()));
                        }
                        return Ok(Decoded::NeedMore);
                    };
                    let line_len = lf + 1;
                    let line = buf[..lf].strip_suffix(b"\r").unwrap_or(&buf[..lf]);
                    if line.is_empty() {
                        let _ = buf.split_to(line_len);
                        self.state = State::Done;
                        return Ok(match self.kept.as_deref_mut() {
                            Some(kept) => {
                                kept.finish_last();
                                match std::mem::take(&mut kept.map) {
                                    map if map.is_empty() => Decoded::Done,
                                    map => Decoded::Trailers(map),
                                }
                            }
                            None => Decoded::Done,
                        });
                    }
                    if seen + line_len > MAX_TRAILERS {
                        return Err(self.fail(CodecError::headers_too_large()));
                    }
                    // Trailers are dropped, but checked as headers are: Envoy's
                    // parser refuses a malformed one whatever `enable_trailers`.
                    let checked = if field::is_continuation(line) {
                        field::check_value(line).map(|_| {
                            if let Some((_, value)) = self.kept.as_deref_mut().and_then(|k| k.last.as_mut()) {
                                value.extend_from_slice(line);
                            }
                        })
                    } else {
                        field::parse_line(line).and_then(|f| {
                            let Some(kept) = self.kept.as_deref_mut() else { return Ok(()) };
                            kept.finish_last();
                            let name = HeaderName::from_bytes(f.name)
                                .map_err(|_| CodecError::bad_request("http1.codec_error"))?;
                            kept.last = Some((name, f.value.to_vec()));
                            Ok(())
                        })
                    };
                    if let Err(e) = checked {
                        return Err(self.fail(e));
                    }
                    let _ = buf.split_to(line_len);
                    self.state = State::Trailers(seen + line_len);
                }
            }
        }
    }
}

/// A chunk-size line (RFC 9112 §7.1) at the front of `buf`: its length and the
/// size, `None` until its LF arrives. As strict as Envoy's parser: hex digits
/// first (any number of leading zeros, no sign, no `0x`, no blank line), then
/// optional SP/HT and extensions, ended by CRLF; a bare CR or LF, or a size past
/// 64 bits, is refused.
fn chunk_size_line(buf: &[u8]) -> Result<Option<(usize, u64)>, CodecError> {
    let codec_error = CodecError::bad_request("http1.codec_error");
    let Some(lf) = buf.iter().take(MAX_CHUNK_LINE).position(|&b| b == b'\n') else {
        return if buf.len() >= MAX_CHUNK_LINE { Err(codec_error) } else { Ok(None) };
    };
    let line = buf[..lf].strip_suffix(b"\r").ok_or(codec_error)?;
    if line.contains(&b'\r') {
        return Err(codec_error);
    }
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(codec_error);
    }
    let size = line[..digits].iter().try_fold(0u64, |n, &d| {
        let d = (d as char).to_digit(16)?;
        n.checked_mul(16)?.checked_add(u64::from(d))
    });
    let size = size.ok_or(codec_error)?;
    match field::trim(&line[digits..]).first() {
        None | Some(b';') => Ok(Some((lf + 1, size))),
        Some(_) => Err(codec_error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed one byte at a time (every split point is exercised).
    fn decode_bytewise(framing: BodyFraming, input: &[u8]) -> (Result<Vec<u8>, CodecError>, BytesMut) {
        let mut d = BodyDecoder::new(framing);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match d.decode(&mut buf) {
                Ok(Decoded::Data(b)) => out.extend_from_slice(&b),
                Ok(Decoded::Done | Decoded::Trailers(_)) => return (Ok(out), buf),
                Ok(Decoded::NeedMore) if fed < input.len() => {
                    buf.extend_from_slice(&input[fed..fed + 1]);
                    fed += 1;
                }
                Ok(Decoded::NeedMore) => {
                    return (d.on_eof(CodecError::bad_request("eof")).map(|()| out), buf);
                }
                Err(e) => return (Err(e), buf),
            }
        }
    }

    #[test]
    fn length_stops_at_its_length() {
        let (body, rest) = decode_bytewise(BodyFraming::Length(5), b"helloGET");
        assert_eq!(body.unwrap(), b"hello");
        assert!(rest.is_empty(), "only what the body needed was consumed");
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let (body, _) =
            decode_bytewise(BodyFraming::Chunked, b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-t: 1\r\n\r\n");
        assert_eq!(body.unwrap(), b"hello world");
    }

    #[test]
    fn bad_chunks_fail() {
        for input in [&b"zz\r\nhello\r\n0\r\n\r\n"[..], b"ffffffffffffffffff\r\n", b"5\r\nhelloXX0\r\n\r\n"] {
            assert!(decode_bytewise(BodyFraming::Chunked, input).0.is_err(), "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn chunk_sizes_are_parsed_as_strictly_as_envoy() {
        let ok = |input: &[u8]| decode_bytewise(BodyFraming::Chunked, input).0.map_err(|e| e.details);
        assert_eq!(ok(b"000000000000000000003\r\nabc\r\n0\r\n\r\n").unwrap(), b"abc");
        assert_eq!(ok(b"3 \r\nabc\r\n0\r\n\r\n").unwrap(), b"abc");
        assert_eq!(ok(b"3 ;a=b\r\nabc\r\n0;x\r\n\r\n").unwrap(), b"abc");
        // A blank line where a size belongs, a sign, `0x`, leading space, a bare
        // LF or CR, an extension cut by a bare LF, overflow: each refused.
        for input in [
            &b"\r\n3\r\nabc\r\n0\r\n\r\n"[..],
            b"-3\r\nabc\r\n0\r\n\r\n",
            b"+3\r\nabc\r\n0\r\n\r\n",
            b"0x3\r\nabc\r\n0\r\n\r\n",
            b" 3\r\nabc\r\n0\r\n\r\n",
            b"3\nabc\n0\n\n",
            b"3\rabc\r\n0\r\n\r\n",
            b"3;a\nb\r\nabc\r\n0\r\n\r\n",
            b"1_0\r\nabc\r\n0\r\n\r\n",
            b"fffffffffffffffff3\r\nabc\r\n0\r\n\r\n",
        ] {
            assert_eq!(ok(input).unwrap_err(), "http1.codec_error", "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn a_chunk_size_line_is_bounded() {
        let decode = |line: Vec<u8>| BodyDecoder::new(BodyFraming::Chunked).decode(&mut BytesMut::from(&line[..]));
        let long_ext = [&b"3;"[..], &[b'a'; 5000], b"\r\nabc"].concat();
        assert_eq!(decode(long_ext), Ok(Decoded::Data(Bytes::from_static(b"abc"))));
        // No LF within the bound: refused without waiting for more.
        assert!(decode([&b"3;"[..], &[b'a'; MAX_CHUNK_LINE]].concat()).is_err());
        assert_eq!(decode(b"3;aaaa".to_vec()), Ok(Decoded::NeedMore));
    }

    #[test]
    fn trailers_are_kept_when_asked() {
        let mut d = BodyDecoder::new(BodyFraming::Chunked).keeping_trailers(true);
        let mut buf = BytesMut::from(&b"3\r\nabc\r\n0\r\nX-T: 1\r\nX-U: a\r\n b\rc\r\n\r\nNEXT"[..]);
        assert_eq!(d.decode(&mut buf), Ok(Decoded::Data(Bytes::from_static(b"abc"))));
        let Ok(Decoded::Trailers(t)) = d.decode(&mut buf) else { panic!("no trailers") };
        assert_eq!((t["x-t"].as_bytes(), t["x-u"].as_bytes()), (&b"1"[..], &b"a bc"[..]));
        assert!(d.is_done());
        assert_eq!(d.decode(&mut buf), Ok(Decoded::Done));
        assert_eq!(&buf[..], b"NEXT");
        // None sent: just the end.
        let mut d = BodyDecoder::new(BodyFraming::Chunked).keeping_trailers(true);
        assert_eq!(d.decode(&mut BytesMut::from(&b"0\r\n\r\n"[..])), Ok(Decoded::Done));
    }

    #[test]
    fn trailers_are_checked_as_headers() {
        let ok = |input: &[u8]| decode_bytewise(BodyFraming::Chunked, input).0.map_err(|e| e.details);
        assert_eq!(ok(b"3\r\nabc\r\n0\r\nX-T: 1\r\n b\r\nX-U: a\rb\n\r\n").unwrap(), b"abc");
        assert_eq!(ok(b"3\r\nabc\r\n0\r\nX T: 1\r\n\r\n").unwrap_err(), "http1.codec_error");
        assert_eq!(ok(b"3\r\nabc\r\n0\r\nXT\r\n\r\n").unwrap_err(), "http1.codec_error");
        assert_eq!(ok(b"3\r\nabc\r\n0\r\nX-T: a\0b\r\n\r\n").unwrap_err(), "http1.invalid_characters");
    }

    #[test]
    fn eof_ends_only_a_close_delimited_body() {
        assert_eq!(decode_bytewise(BodyFraming::UntilClose, b"all of it").0.unwrap(), b"all of it");
        assert!(decode_bytewise(BodyFraming::Length(10), b"abc").0.is_err());
        assert!(decode_bytewise(BodyFraming::Chunked, b"3\r\nabc\r\n").0.is_err());
    }
}
