//! Keeping a streamed request body for retries. Envoy's router buffers the request
//! body as it forwards it (up to its buffer limit) so that a retry can send it
//! again; a body over the limit is sent once and the request is not retried.
//!
//! Courier does the same without waiting for the body: the first try streams it
//! as it arrives, and each piece it takes is recorded on the way (`Recording`),
//! up to the listener's `per_connection_buffer_limit_bytes`. A retry sends what
//! was recorded, then goes on with the rest of the body where the last try left
//! it. Once the body is over the limit (counted in `retry_or_shadow_abandoned`),
//! or ends in a framing error, the recording is dropped and the request can no
//! longer be tried again; the try that holds the body still sends all of it.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::{Body, Frame, SizeHint};

use crate::http::body::RequestBodyStream;
use crate::http::http1::CodecError;
use crate::stats::Counter;

/// A request body recorded as tries send it; cloning shares the recording. `B`:
/// the downstream body (a test's elsewhere).
pub struct Recording<B = RequestBodyStream>(Rc<RefCell<Recorded<B>>>);

impl<B> Clone for Recording<B> {
    fn clone(&self) -> Self {
        Recording(self.0.clone())
    }
}

struct Recorded<B> {
    source: B,
    /// Every piece taken from `source` so far, while `kept`.
    pieces: Vec<Piece>,
    len: usize,
    limit: usize,
    /// All that was taken from `source` is in `pieces` (a retry can send it).
    kept: bool,
    /// `source` has ended.
    ended: bool,
    abandoned: Arc<Counter>,
}

#[derive(Clone)]
enum Piece {
    Data(Bytes),
    Trailers(HeaderMap),
}

impl<B> Recording<B> {
    pub fn new(source: B, limit: usize, abandoned: Arc<Counter>) -> Recording<B> {
        Recording(Rc::new(RefCell::new(Recorded {
            source,
            pieces: Vec::new(),
            len: 0,
            limit,
            kept: true,
            ended: false,
            abandoned,
        })))
    }

    /// Whether a new try can send the body whole (what was taken is all kept).
    pub fn replayable(&self) -> bool {
        self.0.borrow().kept
    }

    /// The body has no piece at all (it ended before any was taken).
    pub fn is_empty(&self) -> bool {
        let r = self.0.borrow();
        r.ended && r.kept && r.pieces.is_empty()
    }

    /// The body for one try: the recorded pieces, then the rest as it comes.
    pub fn reader(&self) -> RecordingReader<B> {
        RecordingReader { recording: self.0.clone(), next: 0 }
    }

    /// The try that was sent last is the final one: nothing more is kept.
    pub fn stop(&self) {
        let mut r = self.0.borrow_mut();
        r.kept = false;
        r.pieces = Vec::new();
    }
}

/// One try's view of a `Recording`.
pub struct RecordingReader<B = RequestBodyStream> {
    recording: Rc<RefCell<Recorded<B>>>,
    /// The next recorded piece to send.
    next: usize,
}

impl<B: Body<Data = Bytes, Error = CodecError> + Unpin> Body for RecordingReader<B> {
    type Data = Bytes;
    type Error = CodecError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, CodecError>>> {
        let next = self.next;
        let mut r = self.recording.borrow_mut();
        if let Some(piece) = r.pieces.get(next).cloned() {
            drop(r);
            self.next += 1;
            return Poll::Ready(Some(Ok(match piece {
                Piece::Data(d) => Frame::data(d),
                Piece::Trailers(t) => Frame::trailers(t),
            })));
        }
        let polled = std::task::ready!(Pin::new(&mut r.source).poll_frame(cx));
        let Some(result) = polled else {
            r.ended = true;
            return Poll::Ready(None);
        };
        let frame = match result {
            Ok(frame) => frame,
            Err(e) => {
                r.kept = false;
                r.pieces = Vec::new();
                return Poll::Ready(Some(Err(e)));
            }
        };
        if r.kept {
            let piece = match frame.data_ref() {
                Some(d) => {
                    r.len += d.len();
                    Piece::Data(d.clone())
                }
                None => Piece::Trailers(frame.trailers_ref().cloned().unwrap_or_default()),
            };
            if r.len > r.limit {
                r.abandoned.inc();
                r.kept = false;
                r.pieces = Vec::new();
            } else {
                r.pieces.push(piece);
                drop(r);
                self.next += 1;
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        let r = self.recording.borrow();
        self.next >= r.pieces.len() && r.source.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::new()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;
    use crate::stats::Store;

    async fn collect(body: RecordingReader<Pieces>) -> (Vec<u8>, bool) {
        let collected = body.collect().await.expect("no error");
        let trailers = collected.trailers().is_some();
        (collected.to_bytes().to_vec(), trailers)
    }

    /// A downstream body of these pieces, all arrived.
    struct Pieces(std::collections::VecDeque<&'static str>);

    impl Body for Pieces {
        type Data = Bytes;
        type Error = CodecError;

        fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, CodecError>>> {
            Poll::Ready(self.0.pop_front().map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes())))))
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_empty()
        }
    }

    fn source(pieces: &[&'static str]) -> Pieces {
        Pieces(pieces.iter().copied().collect())
    }

    #[tokio::test]
    async fn a_retry_sends_what_was_recorded_then_the_rest() {
        let store = Store::new();
        let abandoned = store.counter("abandoned");
        let recording = Recording::new(source(&["ab", "cd", "ef"]), 100, abandoned.clone());
        // The first try takes two pieces and fails.
        let mut first = recording.reader();
        let a = first.frame().await.expect("a piece").expect("data");
        let b = first.frame().await.expect("a piece").expect("data");
        assert_eq!((a.data_ref().cloned(), b.data_ref().cloned()), (Some("ab".into()), Some("cd".into())));
        drop(first);
        assert!(recording.replayable());
        assert_eq!(collect(recording.reader()).await, (b"abcdef".to_vec(), false));
        // A third try still gets all of it.
        assert_eq!(collect(recording.reader()).await, (b"abcdef".to_vec(), false));
        assert_eq!(abandoned.value(), 0);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_sent_once_and_counted() {
        let store = Store::new();
        let abandoned = store.counter("abandoned");
        let recording = Recording::new(source(&["abc", "def", "ghi"]), 5, abandoned.clone());
        assert_eq!(collect(recording.reader()).await, (b"abcdefghi".to_vec(), false));
        assert!(!recording.replayable());
        assert_eq!(abandoned.value(), 1);
    }
}
