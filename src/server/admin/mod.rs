//! The admin endpoint: an HTTP/1.1 server on the main thread (never on a worker),
//! with Envoy's paths, methods, status codes and output formats. Every request is
//! access-logged as Envoy's admin logs it (`admin.access_log_path`,
//! `admin.access_log`).

pub(crate) mod certs;
mod clusters;
mod config_dump;
mod config_dump_query;
mod endpoints_dump;
mod listeners;
mod logging;
mod runtime;
mod server_info;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::Full;
use hyper::body::{Body, Incoming};
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use super::instance::{Server, ServerState};
use crate::access_log::AccessLogger;
use crate::common::percent::decode_percent;
use crate::formatter::FormatContext;
use crate::http::headers;
use crate::stats::render::{self, HistogramBuckets, StatTypes, StatsFilter};
use crate::stream_info::StreamInfo;

/// One admin path: its name, whether it changes state (POST only), and help text.
struct Endpoint {
    path: &'static str,
    mutates: bool,
    help: &'static str,
}

const ENDPOINTS: &[Endpoint] = &[
    Endpoint { path: "/", mutates: false, help: "Admin home page" },
    Endpoint { path: "/certs", mutates: false, help: "print certs on machine" },
    Endpoint { path: "/clusters", mutates: false, help: "upstream cluster status" },
    Endpoint { path: "/config_dump", mutates: false, help: "dump current Envoy configs" },
    Endpoint { path: "/drain_listeners", mutates: true, help: "drain listeners" },
    Endpoint { path: "/healthcheck/fail", mutates: true, help: "cause the server to fail health checks" },
    Endpoint { path: "/healthcheck/ok", mutates: true, help: "cause the server to pass health checks" },
    Endpoint { path: "/help", mutates: false, help: "print out list of admin commands" },
    Endpoint { path: "/hot_restart_version", mutates: false, help: "print the hot restart compatibility version" },
    Endpoint { path: "/listeners", mutates: false, help: "print listener info" },
    Endpoint { path: "/logging", mutates: true, help: "query/change logging levels" },
    Endpoint { path: "/memory", mutates: false, help: "print current allocation/heap usage" },
    Endpoint { path: "/quitquitquit", mutates: true, help: "exit the server" },
    Endpoint { path: "/ready", mutates: false, help: "print server state, return 200 if LIVE, otherwise return 503" },
    Endpoint { path: "/reset_counters", mutates: true, help: "reset all counters to zero" },
    Endpoint { path: "/runtime", mutates: false, help: "print runtime values" },
    Endpoint {
        path: "/runtime_modify",
        mutates: true,
        help: "Adds or modifies runtime values as passed in query parameters. To delete a previously added key, \
               use an empty string as the value. Note that deletion only applies to overrides added via this \
               endpoint; values loaded from disk can be modified via override but not deleted. E.g. \
               ?key1=value1&key2=value2...",
    },
    Endpoint { path: "/server_info", mutates: false, help: "print server version/status information" },
    Endpoint { path: "/stats", mutates: false, help: "print server stats" },
    Endpoint { path: "/stats/prometheus", mutates: false, help: "print server stats in prometheus format" },
];

/// Test-only endpoint, enabled by `COURIER_TEST_HOOKS=1`: blocks a worker's event
/// loop (`worker=N`), or the main thread's (`worker=main`), so tests can see the
/// guard dog count a miss.
const TEST_BLOCK_WORKER: &str = "/courier_test/block_worker";

/// Serves the admin listen socket (bound by the caller, or the old process's
/// after a handoff) on the current (main) dispatcher; aborting the task
/// returned stops accepting.
/// Every request is logged to `access_logs` (`admin.access_log_path`, `admin.access_log`).
pub async fn start(
    server: Rc<Server>,
    socket: std::net::TcpListener,
    access_logs: Vec<Arc<dyn AccessLogger>>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::from_std(socket)?;
    let bound = listener.local_addr()?;
    let access_logs: Rc<[Arc<dyn AccessLogger>]> = access_logs.into();
    let task = tokio::task::spawn_local(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let local = stream.local_addr().unwrap_or(bound);
            let (server, access_logs) = (server.clone(), access_logs.clone());
            crate::event::spawn_isolated(async move {
                let service = hyper::service::service_fn(move |req| {
                    let (server, access_logs) = (server.clone(), access_logs.clone());
                    async move {
                        let mut info = StreamInfo::new(peer, local, protocol_name(req.version()));
                        let (parts, body) = req.into_parts();
                        // As Envoy's admin, answer once the whole request is in.
                        let (body, received) = read_body(body).await;
                        info.bytes_received = received;
                        let resp = handle(&server, &parts, &body);
                        log_request(&access_logs, parts, &resp, &mut info);
                        Ok::<_, Infallible>(resp)
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = conn.await {
                    tracing::debug!("admin connection error: {e}");
                }
            });
        }
    });
    Ok((bound, task))
}

/// The most of a request body kept (`/runtime_modify` takes form values); the
/// rest is read and counted, not kept.
const MAX_KEPT_BODY: usize = 64 * 1024;

/// Reads a request body to its end: its first `MAX_KEPT_BODY` bytes, and its length.
async fn read_body(mut body: Incoming) -> (Vec<u8>, u64) {
    let (mut kept, mut total) = (Vec::new(), 0u64);
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(d) = frame.data_ref() {
            let room = MAX_KEPT_BODY.saturating_sub(kept.len()).min(d.len());
            kept.extend_from_slice(&d[..room]);
            total += d.len() as u64;
        }
    }
    (kept, total)
}

/// A response body with its status and content type.
struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: String,
}

const TEXT: &str = "text/plain; charset=UTF-8";
const JSON: &str = "application/json";

impl Reply {
    fn ok(content_type: &'static str, body: String) -> Reply {
        Reply { status: StatusCode::OK, content_type, body }
    }
}

fn handle(server: &Server, req: &http::request::Parts, body: &[u8]) -> Response<Full<Bytes>> {
    let path = req.uri.path();
    let query = Query::parse(req.uri.query().unwrap_or(""));
    let reply = route(server, &req.method, path, &query, body);
    let mut resp =
        Response::new(Full::new(Bytes::from(if req.method == Method::HEAD { String::new() } else { reply.body })));
    *resp.status_mut() = reply.status;
    let h = resp.headers_mut();
    h.insert("content-type", hyper::header::HeaderValue::from_static(reply.content_type));
    h.insert("cache-control", hyper::header::HeaderValue::from_static("no-cache, max-age=0"));
    h.insert("x-content-type-options", hyper::header::HeaderValue::from_static("nosniff"));
    // Envoy's admin answers with its server name too.
    h.insert("server", hyper::header::HeaderValue::from_static("envoy"));
    resp
}

/// Logs one admin request as Envoy's admin connection manager does: it runs with
/// `use_remote_address`, so `x-forwarded-for` carries the peer (this host's own
/// address for a loopback peer), and request bodies are not read.
fn log_request(
    logs: &[Arc<dyn AccessLogger>],
    mut parts: http::request::Parts,
    resp: &Response<Full<Bytes>>,
    info: &mut StreamInfo,
) {
    if logs.is_empty() {
        return;
    }
    let remote = info.downstream_remote.ip();
    let appended = if remote.is_loopback() { headers::local_address() } else { remote };
    headers::append_xff(&mut parts.headers, appended);
    info.response_code = Some(resp.status().as_u16());
    info.bytes_sent = resp.body().size_hint().exact().unwrap_or(0);
    info.last_downstream_tx = Some(info.start.elapsed());
    let cx = FormatContext { response_headers: Some(resp.headers()), ..FormatContext::for_request(&parts, info) };
    for log in logs {
        log.log(&cx);
    }
}

fn protocol_name(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}

/// `/config_dump`, with Envoy's query parameters; its errors are plain text.
fn config_dump(server: &Server, q: &Query) -> Reply {
    let dump = config_dump_query::DumpQuery::parse(q.get("resource"), q.get("mask"), q.get("name_regex"))
        .and_then(|query| config_dump::render(server, q.has("include_eds"), &query));
    match dump {
        Ok(body) => Reply::ok(JSON, body),
        Err((status, body)) => Reply { status, content_type: "text/plain", body },
    }
}

fn route(server: &Server, method: &Method, path: &str, q: &Query, body: &[u8]) -> Reply {
    if path == TEST_BLOCK_WORKER && std::env::var("COURIER_TEST_HOOKS").as_deref() == Ok("1") {
        return block_worker(server, q);
    }
    let Some(endpoint) = ENDPOINTS.iter().find(|e| e.path == path) else {
        return Reply {
            status: StatusCode::NOT_FOUND,
            content_type: TEXT,
            body: format!("invalid path. {}", help_text()),
        };
    };
    if endpoint.mutates && method != Method::POST {
        return Reply {
            status: StatusCode::METHOD_NOT_ALLOWED,
            content_type: TEXT,
            body: format!("Method {method} not allowed, POST required."),
        };
    }
    server.refresh_stats();
    match path {
        "/" | "/help" => Reply::ok(TEXT, help_text()),
        "/ready" => {
            let state = server.state();
            let status = if state == ServerState::Live { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            Reply { status, content_type: TEXT, body: format!("{}\n", state.envoy_name()) }
        }
        "/server_info" => Reply::ok(JSON, server_info::render(server)),
        "/stats" => stats(server, q),
        "/stats/prometheus" => prometheus(server, q),
        "/certs" => certs::render(server),
        "/clusters" => clusters::render(server, q.get("format") == Some("json")),
        "/listeners" => listeners::render(server, q.get("format") == Some("json")),
        "/config_dump" => config_dump(server, q),
        "/quitquitquit" => {
            server.request_shutdown();
            Reply::ok(TEXT, "OK\n".into())
        }
        "/healthcheck/fail" => {
            server.set_health_check_failed(true);
            Reply::ok(TEXT, "OK\n".into())
        }
        "/healthcheck/ok" => {
            server.set_health_check_failed(false);
            Reply::ok(TEXT, "OK\n".into())
        }
        "/reset_counters" => {
            server.store.reset_counters();
            Reply::ok(TEXT, "OK\n".into())
        }
        "/runtime" => runtime::render(&server.runtime),
        "/runtime_modify" => runtime::modify(&server.runtime, q, body),
        // What Envoy says with `--disable-hot-restart`, else the handoff version.
        "/hot_restart_version" => Reply::ok(TEXT, super::hot_restart_version(&server.options).into()),
        "/memory" => Reply::ok(JSON, memory()),
        "/logging" => logging::handle(q),
        "/drain_listeners" => {
            server.drain_listeners();
            Reply::ok(TEXT, "OK\n".into())
        }
        _ => {
            Reply { status: StatusCode::NOT_FOUND, content_type: TEXT, body: format!("invalid path. {}", help_text()) }
        }
    }
}

fn stats(server: &Server, q: &Query) -> Reply {
    if q.get("format") == Some("prometheus") {
        return prometheus(server, q);
    }
    let f = match stats_filter(q) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let stats = server.store.lock();
    match q.get("format") {
        None | Some("text") => Reply::ok(TEXT, render::text(&stats, &f)),
        Some("json") => Reply::ok(JSON, render::json(&stats, &f)),
        Some(other) => Reply {
            status: StatusCode::BAD_REQUEST,
            content_type: TEXT,
            body: format!("usage: /stats?format=(html|active-html|json|text)\n\nInvalid format: {other}\n"),
        },
    }
}

/// `/stats/prometheus`, and `/stats?format=prometheus`.
fn prometheus(server: &Server, q: &Query) -> Reply {
    match prometheus_filter(q) {
        Ok(f) => Reply::ok("text/plain; version=0.0.4", render::prometheus(&server.store.lock(), &f)),
        Err(r) => r,
    }
}

/// Envoy's `/memory` keys (tcmalloc's figures), from glibc malloc and the RSS:
/// `pageheap_free` is the free space malloc holds, `pageheap_unmapped` and
/// `total_thread_cache` have no glibc counterpart and are 0.
fn memory() -> String {
    let m = super::memory::usage();
    let fields = [
        ("allocated", m.allocated),
        ("heap_size", m.heap_size),
        ("pageheap_unmapped", 0),
        ("pageheap_free", m.heap_free),
        ("total_thread_cache", 0),
        ("total_physical_bytes", m.physical),
    ];
    // Envoy prints the proto's uint64 fields as JSON strings, in field order.
    let lines: Vec<String> = fields.iter().map(|(k, v)| format!(" \"{k}\": \"{v}\"")).collect();
    format!("{{\n{}\n}}\n", lines.join(",\n"))
}

/// The Prometheus output's options. Courier always renders histograms as
/// Prometheus histograms (Envoy's default, `cumulative`); Envoy's other modes
/// (`summary`, `prometheusnative`) are refused rather than answered in that shape.
fn prometheus_filter(q: &Query) -> Result<StatsFilter, Reply> {
    match q.get("histogram_buckets") {
        None | Some("cumulative") => {
            let plain = Query(q.0.iter().filter(|(k, _)| k != "histogram_buckets").cloned().collect());
            stats_filter(&plain)
        }
        Some(mode) => {
            Err(bad_request(format!("Courier does not support histogram_buckets={mode} in Prometheus output\n")))
        }
    }
}

fn stats_filter(q: &Query) -> Result<StatsFilter, Reply> {
    let filter = match q.get("filter") {
        None | Some("") => None,
        Some(re) => Some(regex::Regex::new(re).map_err(|e| Reply {
            status: StatusCode::BAD_REQUEST,
            content_type: TEXT,
            body: format!("Invalid re2 regex: {e}\n"),
        })?),
    };
    let types = match q.get("type") {
        None => StatTypes::All,
        Some(t) => StatTypes::parse(t).ok_or_else(|| bad_request("invalid &type= param".into()))?,
    };
    let buckets = match q.get("histogram_buckets") {
        None | Some("summary") => HistogramBuckets::Summary,
        Some("cumulative") => HistogramBuckets::Cumulative,
        Some("disjoint") => HistogramBuckets::Disjoint,
        Some("detailed") => HistogramBuckets::Detailed,
        Some("prometheusnative") => {
            return Err(bad_request("Invalid histogram_buckets type for non prometheus stats type".into()))
        }
        Some(_) => {
            return Err(bad_request(
                "usage: /stats?histogram_buckets=(cumulative|disjoint|detailed|summary|prometheusnative)\n".into(),
            ))
        }
    };
    Ok(StatsFilter { filter, invert: q.has("invert_filter"), used_only: q.has("usedonly"), types, buckets })
}

fn bad_request(body: String) -> Reply {
    Reply { status: StatusCode::BAD_REQUEST, content_type: TEXT, body }
}

fn block_worker(server: &Server, q: &Query) -> Reply {
    let ms: u64 = q.get("ms").and_then(|v| v.parse().ok()).unwrap_or(1000);
    if q.get("worker").is_some_and(|w| w == "main") {
        // This handler runs on the main thread's loop: sleeping here blocks it.
        std::thread::sleep(std::time::Duration::from_millis(ms));
        return Reply::ok(TEXT, "OK\n".into());
    }
    let worker: usize = q.get("worker").and_then(|v| v.parse().ok()).unwrap_or(0);
    match server.workers.get(worker) {
        Some(w) => {
            w.post(move || std::thread::sleep(std::time::Duration::from_millis(ms)));
            Reply::ok(TEXT, "OK\n".into())
        }
        None => Reply { status: StatusCode::BAD_REQUEST, content_type: TEXT, body: "no such worker\n".into() },
    }
}

fn help_text() -> String {
    let mut out = String::from("admin commands are:\n");
    for e in ENDPOINTS {
        out.push_str(&format!("  {}{}: {}\n", e.path, if e.mutates { " (POST)" } else { "" }, e.help));
    }
    out
}

/// Decoded query parameters, in order.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Query {
        Query(
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode_percent(k), decode_percent(v))
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = Query::parse("filter=cluster%5C.a&usedonly&format=json");
        assert_eq!(q.get("filter"), Some("cluster\\.a"));
        assert!(q.has("usedonly"));
        assert_eq!(q.get("format"), Some("json"));
        assert_eq!(decode_percent("a%2"), "a%2");
        // As Envoy's admin: `+` is not a space (a regex quantifier in `filter`).
        assert_eq!(decode_percent("%41+b"), "A+b");
    }
}
