//! The downstream HTTP/1 codec's targets: a request head and the body its framing
//! says, read at once and in two reads (which must agree), and the head's verdict
//! against Envoy's acceptance rules.

use bytes::BytesMut;

use super::envoy_model::{self, Verdict};
use crate::http::http1::body_decoder::{BodyDecoder, Decoded};
use crate::http::http1::{request_head, BodyFraming, CodecError, HeadLimits};

/// Small limits, so that the fuzzer reaches them, and the options of
/// `http_protocol_options` set by the first byte's bits.
fn limits(data: &[u8]) -> HeadLimits {
    let bits = data.first().copied().unwrap_or(0);
    HeadLimits {
        max_bytes: 4096,
        max_headers: 16,
        accept_http_10: bits & 1 != 0,
        allow_custom_methods: bits & 2 != 0,
        allow_chunked_length: bits & 4 != 0,
        allow_absolute_url: bits & 8 != 0,
    }
}

/// What a connection made of its bytes: the request it saw (as text, so that two
/// readings compare), its body, and how the body ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    NeedMore,
    Rejected(CodecError),
    Request { head: String, framing: BodyFraming, body: Vec<u8>, trailers: Option<String>, end: BodyEnd },
}

#[derive(Debug, PartialEq)]
enum BodyEnd {
    Done,
    NeedMore,
    Failed(CodecError),
}

/// A body as a decoder read it: its bytes, its trailers, how it ended, and
/// how many bytes were left after it.
struct ReadBody {
    body: Vec<u8>,
    trailers: Option<String>,
    end: BodyEnd,
    left_over: usize,
}

/// Decodes a body framed so from `buf`, adding `rest` when the decoder needs
/// more (a second read).
fn read_body(framing: BodyFraming, buf: &mut BytesMut, mut rest: Option<&[u8]>) -> ReadBody {
    let mut decoder = BodyDecoder::new(framing);
    let (mut body, mut trailers) = (Vec::new(), None);
    let end = loop {
        match decoder.decode(buf) {
            Ok(Decoded::Data(piece)) => body.extend_from_slice(&piece),
            Ok(Decoded::Trailers(map)) => trailers = Some(format!("{map:?}")),
            Ok(Decoded::Done) => break BodyEnd::Done,
            Ok(Decoded::NeedMore) => match rest.take() {
                Some(more) => buf.extend_from_slice(more),
                None => break BodyEnd::NeedMore,
            },
            Err(e) => break BodyEnd::Failed(e),
        }
    };
    let left_over = buf.len() + rest.map_or(0, <[u8]>::len);
    ReadBody { body, trailers, end, left_over }
}

/// Reads a request head and its body from `data`, given to the parser in two
/// pieces cut at `cut` (the whole of it when `cut` is its length).
fn read(data: &[u8], cut: usize, limits: &HeadLimits) -> Outcome {
    let (first, second) = data.split_at(cut);
    let mut buf = BytesMut::from(first);
    let mut rest = Some(second);
    let head = loop {
        match request_head::parse(&mut buf, limits) {
            Err(e) => return Outcome::Rejected(e),
            Ok(Some(head)) => break head,
            Ok(None) => match rest.take() {
                Some(more) => buf.extend_from_slice(more),
                None => return Outcome::NeedMore,
            },
        }
    };
    let ReadBody { body, trailers, end, .. } = read_body(head.framing, &mut buf, rest);
    if let BodyFraming::Length(n) = head.framing {
        assert!(body.len() as u64 <= n, "a body of {} bytes under content-length {n}", body.len());
    }
    assert!(body.len() <= data.len());
    let shown = format!(
        "{} {} {:?} {:?} keep_alive={} expect_continue={} fragment={}",
        head.method, head.uri, head.version, head.headers, head.keep_alive, head.expect_continue, head.fragment
    );
    Outcome::Request { head: shown, framing: head.framing, body, trailers, end }
}

/// A request read at once and cut in two at a place chosen by the input itself
/// gives the same request, body and errors.
pub fn request(data: &[u8]) {
    let limits = limits(data);
    let whole = read(data, data.len(), &limits);
    let cut = data.len() * usize::from(data.last().copied().unwrap_or(0)) / 256;
    assert_eq!(read(data, cut, &limits), whole, "cut at {cut}");
}

/// Courier never accepts a head Envoy refuses, and frames the body of a head
/// both accept the same way (a body framed two ways by two hops is request
/// smuggling). Stricter than Envoy is allowed here; the compat suite's hostile
/// vectors hold Courier to Envoy's exact answers.
pub fn request_against_envoy(data: &[u8]) {
    let verdict = envoy_model::judge(data);
    let mut buf = BytesMut::from(data);
    let parsed = request_head::parse(&mut buf, &HeadLimits::ENVOY_DEFAULTS);
    match (verdict, parsed) {
        (Verdict::Refused(why), Ok(Some(head))) => {
            panic!("Envoy refuses this head ({why}); Courier accepted {} {} {:?}", head.method, head.uri, head.headers)
        }
        (Verdict::Accepted(framing), Ok(Some(head))) => {
            assert_eq!(no_body_as_none(head.framing), no_body_as_none(framing), "body framing")
        }
        _ => {}
    }
}

/// `Content-Length: 0` and no framing header both mean no body.
fn no_body_as_none(framing: BodyFraming) -> BodyFraming {
    match framing {
        BodyFraming::Length(0) => BodyFraming::None,
        other => other,
    }
}

/// A chunked body read at once and in two pieces decodes to the same bytes.
pub fn chunked(data: &[u8]) {
    let decode = |cut: usize| {
        let (first, second) = data.split_at(cut);
        let read = read_body(BodyFraming::Chunked, &mut BytesMut::from(first), Some(second));
        assert!(read.body.len() <= data.len());
        // What is left after the body only means something once it is whole.
        let left_over = (read.end == BodyEnd::Done).then_some(read.left_over);
        (read.body, read.trailers, read.end, left_over)
    };
    let whole = decode(data.len());
    for cut in crate::common::fuzzing::cut_points(data.len()) {
        assert_eq!(decode(cut), whole, "cut at {cut}");
    }
}
