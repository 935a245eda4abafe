//! Courier: an L4/L7 proxy on Envoy's architecture (see DESIGN.md).
//!
//! - `server` — the main thread, workers, admin endpoint, guard dog, lifecycle
//! - `event` — one event loop (dispatcher) per thread, with cross-thread `post`
//! - `thread_local` — slots through which the main thread publishes to workers
//! - `runtime` — Envoy's layered runtime: keys that override config defaults live
//! - `overload` — the overload actions' state, as each thread reads it
//! - `config` — Envoy's v3 bootstrap, decoded with Envoy's own schema
//! - `network` — listeners, accepted connections, network filter chains
//! - `upstream` — cluster manager, per-worker clusters, load balancing, hosts, pools
//! - `extensions` — the registry and the filters: network (`tcp_proxy`, the HTTP
//!   connection manager), HTTP (and their filter API), listener; TLS, tracers
//! - `stats` — Envoy-named counters and gauges and their admin formats
//! - `logging` — log levels by Envoy logger name, changed live by `/logging`
//! - `matcher` — Envoy's common matchers (`StringMatcher`)
//! - `stream_info` — what is known of a request or connection, for logs and headers
//! - `common` — small utilities (buffer pool, FNV hashing, random numbers)
//! - `http` — HTTP as a protocol: headers, request bodies, the HTTP/1 and HTTP/2
//!   codecs of both sides, local replies
//! - `router` — route tables and the router's upstream requests
//! - `formatter`, `access_log` — access log formats and loggers
//! - `tracing` — the connection manager's trace decision and span (providers are
//!   extensions)
//!
//! The modules form layers, lowest first: common and logging, config, matcher,
//! stats, event, thread_local, runtime, overload, network, stream_info, formatter and
//! access_log, http, tracing, upstream, router, extensions, server. A lower layer does
//! not import an upper one (docs/architecture.md, "Layers").

pub mod access_log;
pub mod common;
pub mod config;
pub mod event;
pub mod extensions;
pub mod formatter;
#[cfg(any(test, fuzzing))]
pub mod fuzz;
pub mod http;
pub mod logging;
pub mod matcher;
pub mod network;
pub mod overload;
pub mod router;
pub mod runtime;
pub mod server;
pub mod stats;
pub mod stream_info;
pub mod thread_local;
pub mod tracing;
pub mod upstream;
