//! The HTTP checker (`http_health_check`), as Envoy's `HttpHealthCheckerImpl`:
//! a `GET` (or the configured method) of `path` with `:authority` the check's
//! `host` (`super::authority`) and `user-agent: Envoy/HC`, then the configured
//! header edits, over Courier's HTTP/1.1 client codec (`ClientConnection`) or
//! the `h2` client for `codec_client_type: HTTP2`. The answer passes when its
//! status is in `expected_statuses` (200 by default) and its body's first
//! `response_buffer_size` bytes hold `receive`; `x-envoy-degraded` makes it
//! degraded. A failed answer with `x-envoy-immediate-health-check-fail`
//! excludes the host until a check passes. The body is read to its end
//! (discarded unless `receive` needs it), within the check's timeout.

use bytes::{Bytes, BytesMut};
use http::header::{HOST, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Request};

use super::config::{payload_matches, HttpCheck};
use super::session::Outcome;
use crate::http::headers::X_ENVOY_IMMEDIATE_HEALTH_CHECK_FAIL;
use crate::http::http1::body_decoder::BodyDecoder;
use crate::http::http1::client_connection::{BodyOut, ClientConnection, RequestOut};
use crate::upstream::cluster::ClusterInfo;
use crate::upstream::host::{Host, EXCLUDED_VIA_IMMEDIATE_HC_FAIL};

const USER_AGENT_VALUE: HeaderValue = HeaderValue::from_static("Envoy/HC");
const DEGRADED: HeaderName = HeaderName::from_static("x-envoy-degraded");

/// The connection kept between checks.
#[derive(Default)]
pub struct HttpProbe {
    http1: Option<ClientConnection>,
    http2: Option<H2Client>,
}

/// An HTTP/2 connection: its stream handle and the task driving it.
pub(super) struct H2Client {
    pub send: h2::client::SendRequest<Bytes>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Drop for H2Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl H2Client {
    /// An HTTP/2 connection to `host` (ALPN `h2` over TLS); `None` when it fails.
    pub(super) async fn connect(info: &ClusterInfo, host: &Host) -> Option<H2Client> {
        let stream = super::connect(info, host).await.ok()?;
        let (send, connection) = h2::client::handshake(stream).await.ok()?;
        let task = tokio::task::spawn_local(async move {
            let _ = connection.await;
        });
        Some(H2Client { send, task })
    }
}

/// What came back: the status, the headers, the first bytes of the body.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: BytesMut,
}

impl HttpProbe {
    pub async fn check(&mut self, c: &HttpCheck, info: &ClusterInfo, host: &Host, reuse: bool) -> Outcome {
        let authority = super::authority(&c.host, host, info);
        let answer = if c.http2 {
            self.check_http2(c, info, host, &authority, reuse).await
        } else {
            self.check_http1(c, info, host, &authority, reuse).await
        };
        match answer {
            Some(answer) => judge(c, &answer, host),
            None => Outcome::Network,
        }
    }

    pub fn close(&mut self) {
        self.http1 = None;
        self.http2 = None;
    }

    async fn check_http1(
        &mut self,
        c: &HttpCheck,
        info: &ClusterInfo,
        host: &Host,
        authority: &str,
        reuse: bool,
    ) -> Option<Answer> {
        let kept = self.http1.take().and_then(|mut conn| (!conn.closed_while_idle()).then_some(conn));
        let mut conn = match kept {
            Some(conn) => conn,
            None => ClientConnection::new(super::connect(info, host).await.ok()?),
        };
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_str(authority).ok()?);
        edit_headers(c, &mut headers);
        let target = if c.path.is_empty() { "/" } else { c.path.as_str() };
        let request = RequestOut { method: &c.method, target, headers: &headers, overrides: &[] };
        let head = conn.send(&request, BodyOut::Whole(Bytes::new())).await.ok()?;
        let mut decoder = BodyDecoder::new(head.framing);
        let mut body = BytesMut::new();
        while let Some(piece) = std::future::poll_fn(|cx| conn.poll_body(&mut decoder, cx)).await {
            keep_body(c, &mut body, &piece.ok()?);
        }
        if reuse && head.reusable {
            self.http1 = Some(conn);
        }
        Some(Answer { status: head.parts.status.as_u16(), headers: head.parts.headers, body })
    }

    async fn check_http2(
        &mut self,
        c: &HttpCheck,
        info: &ClusterInfo,
        host: &Host,
        authority: &str,
        reuse: bool,
    ) -> Option<Answer> {
        let client = match self.http2.take() {
            Some(client) if !client.task.is_finished() => client,
            _ => H2Client::connect(info, host).await?,
        };
        let scheme = if info.tls.is_some() { "https" } else { "http" };
        let path = if c.path.is_empty() { "/" } else { c.path.as_str() };
        let mut request =
            Request::builder().method(c.method.clone()).uri(format!("{scheme}://{authority}{path}")).body(()).ok()?;
        edit_headers(c, request.headers_mut());
        let mut send = client.send.clone().ready().await.ok()?;
        let (response, _) = send.send_request(request, true).ok()?;
        let response = response.await.ok()?;
        let (parts, mut recv) = response.into_parts();
        let mut body = BytesMut::new();
        while let Some(data) = recv.data().await {
            let data = data.ok()?;
            let _ = recv.flow_control().release_capacity(data.len());
            keep_body(c, &mut body, &data);
        }
        if reuse {
            self.http2 = Some(client);
        }
        Some(Answer { status: parts.status.as_u16(), headers: parts.headers, body })
    }
}

/// `user-agent`, then `request_headers_to_remove` and `request_headers_to_add`.
fn edit_headers(c: &HttpCheck, headers: &mut HeaderMap) {
    headers.insert(USER_AGENT, USER_AGENT_VALUE);
    for name in &c.headers_to_remove {
        headers.remove(name);
    }
    for (name, value, append) in &c.headers_to_add {
        if *append {
            headers.append(name.clone(), value.clone());
        } else {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// Keeps what `receive` is matched against: nothing without it, else up to
/// `response_buffer_size` bytes (all of them when 0).
fn keep_body(c: &HttpCheck, body: &mut BytesMut, data: &[u8]) {
    if c.receive.is_empty() {
        return;
    }
    let room = match c.response_buffer_size {
        0 => data.len(),
        limit => limit.saturating_sub(body.len()).min(data.len()),
    };
    body.extend_from_slice(&data[..room]);
}

/// Envoy's `healthCheckResult`.
fn judge(c: &HttpCheck, answer: &Answer, host: &Host) -> Outcome {
    let in_ranges =
        |ranges: &[(u64, u64)]| ranges.iter().any(|(start, end)| (*start..*end).contains(&u64::from(answer.status)));
    let immediate = answer.headers.contains_key(X_ENVOY_IMMEDIATE_HEALTH_CHECK_FAIL);
    if !c.receive.is_empty() && !payload_matches(&c.receive, &answer.body) {
        if immediate {
            host.set_active_hc(EXCLUDED_VIA_IMMEDIATE_HC_FAIL, true);
        }
        return Outcome::Failed { retriable: false, http_status: answer.status };
    }
    if !in_ranges(&c.expected) {
        if immediate {
            host.set_active_hc(EXCLUDED_VIA_IMMEDIATE_HC_FAIL, true);
        }
        return Outcome::Failed { retriable: in_ranges(&c.retriable), http_status: answer.status };
    }
    if answer.headers.contains_key(DEGRADED) {
        Outcome::Degraded
    } else {
        Outcome::Healthy
    }
}
