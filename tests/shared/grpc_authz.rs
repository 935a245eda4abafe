//! A gRPC authorization service for tests: `envoy.service.auth.v3.Authorization/Check`
//! over h2c, on the `h2` crate's server (`serve_h2c`). Each check is decided by
//! the checked request's headers:
//!
//! - `x-test-grpc-status: N` — the call fails with gRPC status N (trailers only);
//! - `x-test-deny: CODE` — denied (`PERMISSION_DENIED`) with HTTP status CODE,
//!   header `x-denied: yes`, and as body the JSON report below;
//! - otherwise allowed, with `x-current-user: <x-user or anonymous>` set on the
//!   request, `x-remove-me` removed, and `x-authz: ok` on the response.
//!
//! The report shows what the proxy asked: the gRPC request's headers, the
//! peers' TLS principals and certificate, and the `CheckRequest`'s HTTP attributes (headers sorted, the request id and the
//! peers' ports left out, as they differ per run).

use std::collections::BTreeMap;
use std::net::TcpStream;

use bytes::{BufMut, Bytes, BytesMut};
use envoy_types::pb::envoy::config::core::v3::{HeaderValue as HeaderValueProto, HeaderValueOption};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse};
use envoy_types::pb::google::rpc::Status;
use prost::Message;

use crate::shared_net::{serve_h2c, Upstream};

/// Starts the service on 127.0.0.1.
pub fn grpc_authz_upstream() -> Upstream {
    Upstream::start(|stream: TcpStream| serve_h2c(stream, answer))
}

fn header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValueProto { key: key.into(), value: value.into(), ..Default::default() }),
        ..Default::default()
    }
}

/// How a certificate in a check reads: `url-encoded PEM`, `none`, or what else it is.
fn url_encoded_pem_form(certificate: &str) -> &'static str {
    match certificate {
        "" => "none",
        c if c.starts_with("-----BEGIN%20CERTIFICATE-----%0A") && c.ends_with("-----END%20CERTIFICATE-----%0A") => {
            "url-encoded PEM"
        }
        _ => "other",
    }
}

async fn answer(request: http::Request<h2::RecvStream>, mut respond: h2::server::SendResponse<Bytes>) {
    let (parts, mut body) = request.into_parts();
    let mut data = Vec::new();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let check = data.get(5..).and_then(|m| CheckRequest::decode(m).ok()).unwrap_or_default();
    let attributes = check.attributes.unwrap_or_default();
    let http = attributes.request.clone().and_then(|r| r.http).unwrap_or_default();
    let mut grpc_headers: BTreeMap<String, String> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    grpc_headers.insert(":path".into(), parts.uri.path().into());
    if let Some(a) = parts.uri.authority() {
        grpc_headers.insert(":authority".into(), a.to_string());
    }
    let checked: BTreeMap<&String, &String> = http.headers.iter().filter(|(k, _)| *k != "x-request-id").collect();
    let report = serde_json::json!({
        "grpc": grpc_headers,
        "method": http.method,
        "path": http.path,
        "host": http.host,
        "scheme": http.scheme,
        "query": http.query,
        "fragment": http.fragment,
        "size": http.size,
        "protocol": http.protocol,
        "body": http.body,
        "headers": checked,
        "has_id": !http.id.is_empty(),
        "has_time": attributes.request.as_ref().is_some_and(|r| r.time.is_some()),
        "source_ip": attributes.source.as_ref().and_then(|p| p.address.as_ref()).map(|a| format!("{a:?}").contains("127.0.0.1")),
        "source_principal": attributes.source.as_ref().map(|p| p.principal.clone()),
        // Its bytes differ per run (a new key): its form is compared.
        "source_certificate": attributes.source.as_ref().map(|p| url_encoded_pem_form(&p.certificate)),
        "destination_principal": attributes.destination.as_ref().map(|p| p.principal.clone()),
        "destination_ip": attributes.destination.as_ref().and_then(|p| p.address.as_ref()).map(|a| format!("{a:?}").contains("127.0.0.1")),
        "context_extensions": attributes.context_extensions.iter().collect::<BTreeMap<_, _>>(),
    })
    .to_string();
    let head = http::Response::builder().status(200).header("content-type", "application/grpc");
    if let Some(code) = http.headers.get("x-test-grpc-status") {
        let Ok(response) = head.header("grpc-status", code.as_str()).body(()) else { return };
        let _ = respond.send_response(response, true);
        return;
    }
    let decision = match http.headers.get("x-test-deny") {
        Some(code) => CheckResponse {
            status: Some(Status { code: 7, message: "denied by test".into(), details: vec![] }),
            http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                status: Some(HttpStatus { code: code.parse().unwrap_or(403) }),
                headers: vec![header("x-denied", "yes")],
                body: report,
            })),
            ..Default::default()
        },
        None => CheckResponse {
            status: Some(Status { code: 0, message: String::new(), details: vec![] }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: vec![header("x-current-user", http.headers.get("x-user").map_or("anonymous", |u| u.as_str()))],
                headers_to_remove: vec!["x-remove-me".into()],
                response_headers_to_add: vec![header("x-authz", "ok")],
                ..Default::default()
            })),
            ..Default::default()
        },
    };
    let mut message = BytesMut::new();
    message.put_u8(0);
    message.put_u32(decision.encoded_len() as u32);
    let _ = decision.encode(&mut message);
    let Ok(response) = head.body(()) else { return };
    let Ok(mut send) = respond.send_response(response, false) else { return };
    let _ = send.send_data(message.freeze(), false);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let _ = send.send_trailers(trailers);
}
