//! Fuzz targets: each takes arbitrary bytes and drives one parser that reads
//! bytes from the network or from a config file, checking what must hold for any
//! input: no panic; no more consumed than was given; the same answer whether the
//! bytes arrive at once or in pieces (a parser that answers differently by how
//! TCP cut the stream is a desync); and, for the HTTP/1 request parser, never
//! accepting what Envoy refuses (`envoy_model`).
//!
//! Built for `cargo fuzz`, which sets `--cfg fuzzing` (`fuzz/` holds the libFuzzer
//! binaries and corpora, `scripts/fuzz` runs them), and for unit tests, where
//! `smoke` replays the committed corpora and regressions and runs a short
//! mutation loop on stable Rust, so that every target keeps building and what it
//! once found stays fixed. A parser's own invariants sit beside it, in a `fuzz`
//! function of its module; this module lists them.

mod config;
mod envoy_model;
mod http1;
#[cfg(test)]
mod smoke;

/// One fuzz target: its name (the directory of its corpus under `fuzz/corpus`)
/// and its entry point.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target; `fuzz/fuzz_targets/<name>.rs` calls `run` of the entry named so.
pub const TARGETS: &[Target] = &[
    Target { name: "http1_request", run: http1::request },
    Target { name: "http1_request_envoy", run: http1::request_against_envoy },
    Target { name: "http1_chunked", run: http1::chunked },
    Target { name: "http1_response", run: crate::http::http1::client_connection::fuzz },
    Target { name: "hpack_decoder", run: crate::http::http2::hpack::fuzz },
    Target { name: "http2_codec", run: crate::http::http2::codec::fuzz },
    Target { name: "proxy_protocol", run: crate::extensions::filters::listener::proxy_protocol::fuzz },
    Target { name: "tls_client_hello", run: crate::extensions::filters::listener::tls_inspector::fuzz },
    Target { name: "http_inspector", run: crate::extensions::filters::listener::http_inspector::fuzz },
    Target { name: "dns_reply", run: crate::upstream::dns_message::fuzz },
    Target { name: "bootstrap", run: config::bootstrap },
    Target { name: "access_log_format", run: config::access_log_format },
    Target { name: "route_match", run: config::route_match },
    Target { name: "decompressors", run: crate::extensions::compression::fuzz },
];

/// Runs the target called `name` on `data`; for the libFuzzer binaries.
pub fn run(name: &str, data: &[u8]) {
    match TARGETS.iter().find(|t| t.name == name) {
        Some(t) => (t.run)(data),
        None => panic!("no fuzz target named {name}"),
    }
}
