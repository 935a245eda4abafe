//! The gRPC checker (`grpc_health_check`), as Envoy's `GrpcHealthCheckerImpl`:
//! a unary `grpc.health.v1.Health/Check` for `service_name` over HTTP/2 (over
//! the cluster's TLS when it has one), with `:authority` the
//! check's `authority` (`super::authority`). It passes when the call ends with
//! `grpc-status: 0` and the answer says `SERVING`; any other answer is a failure.
//! An answer that announces a message above `MAX_MESSAGE` fails before it is read.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{HeaderValue, CONTENT_TYPE, TE, USER_AGENT};
use http::Request;
use prost::Message;

use super::config::GrpcCheck;
use super::http::H2Client;
use super::session::Outcome;
use crate::http::grpc::GRPC_STATUS;
use crate::upstream::cluster::ClusterInfo;
use crate::upstream::host::Host;

/// The largest answer read (a `HealthCheckResponse` is a few bytes).
const MAX_MESSAGE: usize = 16 * 1024;
/// `grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING`.
const SERVING: i32 = 1;

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, PartialEq, Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

#[derive(Default)]
pub struct GrpcProbe {
    client: Option<H2Client>,
}

impl GrpcProbe {
    pub async fn check(&mut self, c: &GrpcCheck, info: &ClusterInfo, host: &Host, reuse: bool) -> Outcome {
        let client = match self.client.take() {
            Some(client) if !client.task.is_finished() => Some(client),
            _ => H2Client::connect(info, host).await,
        };
        let Some(client) = client else { return Outcome::Network };
        let outcome = call(c, info, host, &client).await;
        if reuse && outcome != Outcome::Network {
            self.client = Some(client);
        }
        outcome
    }

    pub fn close(&mut self) {
        self.client = None;
    }
}

async fn call(c: &GrpcCheck, info: &ClusterInfo, host: &Host, client: &H2Client) -> Outcome {
    let authority = super::authority(&c.authority, host, info);
    let scheme = if info.tls.is_some() { "https" } else { "http" };
    let Ok(request) = Request::builder()
        .method(http::Method::POST)
        .uri(format!("{scheme}://{authority}/grpc.health.v1.Health/Check"))
        .header(CONTENT_TYPE, HeaderValue::from_static("application/grpc"))
        .header(TE, HeaderValue::from_static("trailers"))
        .header(USER_AGENT, HeaderValue::from_static("Envoy/HC"))
        .body(())
    else {
        return Outcome::Failed { retriable: false, http_status: 0 };
    };
    let message = HealthCheckRequest { service: c.service_name.clone() };
    let mut framed = BytesMut::with_capacity(5 + message.encoded_len());
    framed.put_u8(0);
    framed.put_u32(message.encoded_len() as u32);
    if message.encode(&mut framed).is_err() {
        return Outcome::Failed { retriable: false, http_status: 0 };
    }
    let Ok(mut send) = client.send.clone().ready().await else { return Outcome::Network };
    let Ok((response, mut body_out)) = send.send_request(request, false) else { return Outcome::Network };
    if body_out.send_data(framed.freeze(), true).is_err() {
        return Outcome::Network;
    }
    let Ok(response) = response.await else { return Outcome::Network };
    let (parts, mut recv) = response.into_parts();
    if parts.status != http::StatusCode::OK {
        return Outcome::Failed { retriable: false, http_status: 0 };
    }
    // A trailers-only answer: the call failed.
    if parts.headers.contains_key(GRPC_STATUS) {
        return Outcome::Failed { retriable: false, http_status: 0 };
    }
    let mut buf = BytesMut::new();
    while let Some(data) = recv.data().await {
        let Ok(data) = data else { return Outcome::Network };
        let _ = recv.flow_control().release_capacity(data.len());
        buf.extend_from_slice(&data);
        if announced_len(&buf).is_some_and(|len| len > MAX_MESSAGE) || buf.len() > 5 + MAX_MESSAGE {
            return Outcome::Failed { retriable: false, http_status: 0 };
        }
    }
    let Ok(trailers) = recv.trailers().await else { return Outcome::Network };
    let ok = trailers.as_ref().and_then(|t| t.get(GRPC_STATUS)).is_some_and(|s| s.as_bytes() == b"0");
    match (ok, decode(buf.freeze())) {
        (true, Some(r)) if r.status == SERVING => Outcome::Healthy,
        _ => Outcome::Failed { retriable: false, http_status: 0 },
    }
}

/// The length a message's prefix announces.
fn announced_len(buf: &[u8]) -> Option<usize> {
    (buf.len() >= 5).then(|| u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize)
}

/// The one uncompressed message of the answer.
fn decode(mut buf: Bytes) -> Option<HealthCheckResponse> {
    let len = announced_len(&buf)?;
    if buf[0] != 0 || buf.len() < 5 + len {
        return None;
    }
    buf.advance(5);
    HealthCheckResponse::decode(buf.split_to(len)).ok()
}
