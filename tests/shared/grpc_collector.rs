//! A gRPC collector for tests, over h2c on the `h2` crate's server
//! (`serve_h2c`): every unary call is answered OK with an empty message (an
//! OTLP `Export*ServiceResponse` without a partial success), and every client
//! stream is read to its end and answered the same way. Each call is kept as
//! it comes — its path, its request headers (`:authority` among them) and its
//! messages so far, the 5-byte gRPC prefixes removed — for the test to wait
//! for (`wait`, or `wait_opened` for streams with no message yet). `ending_streams_after` answers a stream once it carried so
//! many messages, as a service that ends the call; `never_answering` leaves
//! every call open; `answering_first_message` answers each stream's first
//! message with one message of its own and reads on (a bidirectional service,
//! such as the load reporting service telling what to report).

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};

use crate::shared_net::{serve_h2c, Upstream};

/// One call as the collector saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub headers: BTreeMap<String, String>,
    /// The messages of the call, in order (one for a unary call).
    pub messages: Vec<Vec<u8>>,
}

#[derive(Default)]
struct Seen {
    calls: Mutex<Vec<Call>>,
    changed: Condvar,
    /// Answer (ending the call) once a stream carried this many messages.
    end_after: Option<usize>,
    /// Never answer: a call stays open until the client gives up on it.
    hang: bool,
    /// The message (encoded) sent back once a stream carried its first one.
    first_answer: Option<Vec<u8>>,
}

pub struct GrpcCollector {
    upstream: Upstream,
    seen: Arc<Seen>,
}

impl GrpcCollector {
    /// Starts the collector on 127.0.0.1.
    pub fn start() -> GrpcCollector {
        Self::start_with(Seen::default())
    }

    /// A collector that ends every stream (answers OK) after `n` messages.
    pub fn ending_streams_after(n: usize) -> GrpcCollector {
        Self::start_with(Seen { end_after: Some(n), ..Default::default() })
    }

    /// A collector that reads every call and never answers.
    pub fn never_answering() -> GrpcCollector {
        Self::start_with(Seen { hang: true, ..Default::default() })
    }

    /// A collector that answers each stream's first message with `message`
    /// (encoded), then reads the stream on.
    pub fn answering_first_message(message: Vec<u8>) -> GrpcCollector {
        Self::start_with(Seen { first_answer: Some(message), ..Default::default() })
    }

    fn start_with(seen: Seen) -> GrpcCollector {
        let seen = Arc::new(seen);
        let shared = seen.clone();
        let upstream = Upstream::start(move |stream| {
            let shared = shared.clone();
            serve_h2c(stream, move |request, respond| answer(request, respond, shared.clone()));
        });
        GrpcCollector { upstream, seen }
    }

    pub fn port(&self) -> u16 {
        self.upstream.port()
    }

    /// Waits (at most `within`) until `done` holds for the calls so far that
    /// carried a message, and returns them; panics otherwise.
    pub fn wait(&self, within: Duration, done: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        self.wait_calls(within, true, done)
    }

    /// As `wait`, with the calls that carried no message yet too (a stream
    /// just opened).
    pub fn wait_opened(&self, within: Duration, done: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        self.wait_calls(within, false, done)
    }

    fn wait_calls(&self, within: Duration, with_messages: bool, done: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        let deadline = Instant::now() + within;
        let mut calls = self.seen.calls.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let sent: Vec<Call> = calls.iter().filter(|c| !with_messages || !c.messages.is_empty()).cloned().collect();
            if done(&sent) {
                return sent;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the collector never got what was expected; got {} calls", calls.len());
            calls = self.seen.changed.wait_timeout(calls, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

/// Takes the whole gRPC messages (uncompressed, as proxies send them) off
/// the front of `data`.
fn take_messages(data: &mut BytesMut) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while data.len() >= 5 {
        let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
        if data.len() < 5 + len {
            break;
        }
        data.advance(5);
        out.push(data.split_to(len).to_vec());
    }
    out
}

async fn answer(request: http::Request<h2::RecvStream>, mut respond: h2::server::SendResponse<Bytes>, seen: Arc<Seen>) {
    let (parts, mut body) = request.into_parts();
    let mut headers: BTreeMap<String, String> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    if let Some(a) = parts.uri.authority() {
        headers.insert(":authority".into(), a.to_string());
    }
    let index = {
        let mut calls = seen.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.push(Call { path: parts.uri.path().to_owned(), headers, messages: Vec::new() });
        seen.changed.notify_all();
        calls.len() - 1
    };
    // A stream's messages are kept as they come, so a test sees a stream
    // that stays open.
    let mut data = BytesMut::new();
    let mut early = None;
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
        let messages = take_messages(&mut data);
        if !messages.is_empty() {
            let mut calls = seen.calls.lock().unwrap_or_else(|e| e.into_inner());
            calls[index].messages.extend(messages);
            seen.changed.notify_all();
            if seen.end_after.is_some_and(|n| calls[index].messages.len() >= n) {
                break;
            }
            if let (Some(message), None) = (&seen.first_answer, &early) {
                let response = http::Response::builder().header("content-type", "application/grpc").body(());
                let Ok(response) = response else { return };
                let Ok(mut send) = respond.send_response(response, false) else { return };
                let mut framed = vec![0u8];
                framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
                framed.extend_from_slice(message);
                let _ = send.send_data(Bytes::from(framed), false);
                early = Some(send);
            }
        }
    }
    seen.changed.notify_all();
    if let Some(mut send) = early {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let _ = send.send_trailers(trailers);
        return;
    }
    if seen.hang {
        let _ = std::future::poll_fn(|cx| respond.poll_reset(cx)).await;
        return;
    }
    let response = http::Response::builder().header("content-type", "application/grpc").body(());
    let Ok(response) = response else { return };
    let Ok(mut send) = respond.send_response(response, false) else { return };
    let _ = send.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), false);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let _ = send.send_trailers(trailers);
}
