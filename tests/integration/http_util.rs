//! HTTP/1.1 pieces for tests. The raw client (`Client`, `HttpResponse`) and the
//! JSON-reporting upstream (`http_upstream`, `Seen`) live in `tests/shared/net.rs`,
//! shared with the Envoy compatibility suite; this module re-exports them and adds
//! config builders and special-purpose upstreams.

#![allow(dead_code)]

use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{Upstream, IO_TIMEOUT};
pub use crate::shared_net::{http_upstream, read_request, Client, HttpResponse};

/// YAML for an HTTP listener with an HCM whose route config and filters are given.
pub fn http_listener(name: &str, hcm_extra: &str, route_config: &str, filters: &str) -> String {
    format!(
        r#"  - name: {name}
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
{hcm_extra}          route_config:
{route_config}          http_filters:
{filters}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#
    )
}

/// A route config with one virtual host (`*`) and the given routes YAML.
pub fn one_vhost(routes: &str) -> String {
    format!("            virtual_hosts:\n            - name: vh\n              domains: [\"*\"]\n              routes:\n{routes}")
}

/// `- match: { prefix: PREFIX } route: { cluster: CLUSTER EXTRA }`
pub fn prefix_route(prefix: &str, cluster: &str, extra: &str) -> String {
    format!(
        "              - match: {{ prefix: \"{prefix}\" }}\n                route: {{ cluster: {cluster}{extra} }}\n"
    )
}

// ---------------------------------------------------------------------------
// Helpers for the routing, http_filters and access_log tests.
// ---------------------------------------------------------------------------

/// `text` with every non-empty line indented by `n` spaces.
pub fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines().map(|l| if l.trim().is_empty() { "\n".to_string() } else { format!("{pad}{l}\n") }).collect()
}

/// Courier with one HTTP listener `web`. `hcm_extra` (HCM fields), `route_config` (a
/// `RouteConfiguration`) and `filters` (`http_filters` items before the router) are
/// YAML written at column 0; `clusters` are `static_cluster`-style fragments.
pub fn start_web(hcm_extra: &str, route_config: &str, filters: &str, clusters: &[String]) -> crate::harness::Courier {
    start_web_with(hcm_extra, route_config, filters, clusters, &[])
}

/// `start_web` with extra command-line arguments.
pub fn start_web_with(
    hcm_extra: &str,
    route_config: &str,
    filters: &str,
    clusters: &[String],
    args: &[&str],
) -> crate::harness::Courier {
    let listener = http_listener("web", &indent(hcm_extra, 10), &indent(route_config, 12), &indent(filters, 10));
    crate::harness::Courier::start_with(&crate::harness::config(&[listener], clusters), 1, args, &[])
}

/// An HTTP upstream whose first `resets` connections read one request and close
/// without answering; later requests get a 200 with body `name` and `x-upstream: name`.
pub fn resetting_upstream(name: &'static str, resets: usize) -> Upstream {
    let seen = Arc::new(AtomicUsize::new(0));
    Upstream::start(move |stream| {
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let mut writer = match stream.try_clone() {
            Ok(w) => w,
            Err(_) => return,
        };
        let mut reader = BufReader::new(stream);
        while read_request(&mut reader).is_some() {
            if seen.fetch_add(1, Ordering::SeqCst) < resets {
                return; // dropped: the connection closes before any response
            }
            let out = format!("HTTP/1.1 200 OK\r\nx-upstream: {name}\r\ncontent-length: {}\r\n\r\n{name}", name.len());
            if writer.write_all(out.as_bytes()).is_err() {
                return;
            }
        }
    })
}

/// Polls `path` (a readiness check on the access log writer thread, bounded by
/// `IO_TIMEOUT`) until it holds at least `n` complete lines; returns them.
pub fn wait_for_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
        let lines: Vec<String> = complete.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(std::time::Instant::now() < deadline, "{} has {} of {n} lines:\n{text}", path.display(), lines.len());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The client's own address (what Courier sees as the downstream remote address).
pub fn local_addr(client: &Client) -> SocketAddr {
    client.local_addr()
}

/// An HTTP upstream answering every request with `status`, the extra response header
/// lines `headers` (each ending in `\r\n`) and the body `name`; `requests` counts them.
pub fn fixed_upstream(name: &'static str, status: u16, headers: &'static str) -> (Upstream, Arc<AtomicUsize>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let up = Upstream::start(move |stream| {
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let mut writer = match stream.try_clone() {
            Ok(w) => w,
            Err(_) => return,
        };
        let mut reader = BufReader::new(stream);
        while read_request(&mut reader).is_some() {
            counter.fetch_add(1, Ordering::SeqCst);
            let out = format!(
                "HTTP/1.1 {status} X\r\nx-upstream: {name}\r\n{headers}content-length: {}\r\n\r\n{name}",
                name.len()
            );
            if writer.write_all(out.as_bytes()).is_err() {
                return;
            }
        }
    });
    (up, requests)
}

/// Holds requests at test upstreams until the test opens it: a readiness signal
/// (`wait_held`: that many requests have reached an upstream and are in flight)
/// instead of an upstream delay that a loaded machine may outlast. The test's handle;
/// dropping it opens the gate, so that no upstream thread waits on a finished test.
#[derive(Default)]
pub struct Gate(Arc<GateShared>);

#[derive(Default)]
struct GateShared {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    open: bool,
    held: usize,
}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Lets every held request (and every later one) through.
    pub fn open(&self) {
        self.0.state.lock().unwrap().open = true;
        self.0.changed.notify_all();
    }

    /// Waits (at most `IO_TIMEOUT`) until `n` requests have been held in all.
    pub fn wait_held(&self, n: usize) {
        let deadline = Instant::now() + IO_TIMEOUT;
        let mut s = self.0.state.lock().unwrap();
        while s.held < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "{} of {n} requests reached the upstream", s.held);
            s = self.0.changed.wait_timeout(s, left).unwrap().0;
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.state.lock() {
            s.open = true;
        }
        self.0.changed.notify_all();
    }
}

impl GateShared {
    /// Counts a held request, then waits until the gate opens (at most twice
    /// `IO_TIMEOUT`); false if it never did.
    fn hold(&self) -> bool {
        let deadline = Instant::now() + 2 * IO_TIMEOUT;
        let mut s = self.state.lock().unwrap();
        s.held += 1;
        self.changed.notify_all();
        while !s.open {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = self.changed.wait_timeout(s, left).unwrap().0;
        }
        true
    }
}

/// An HTTP upstream answering 200 with `x-upstream: name` and the body `name`; a
/// request with an `x-test-hold` header is first held at `gate` until it opens.
pub fn holding_upstream(name: &'static str, gate: &Gate) -> Upstream {
    let gate = gate.0.clone();
    Upstream::start(move |stream| {
        let _ = stream.set_read_timeout(Some(3 * IO_TIMEOUT));
        let mut writer = match stream.try_clone() {
            Ok(w) => w,
            Err(_) => return,
        };
        let mut reader = BufReader::new(stream);
        while let Some(req) = read_request(&mut reader) {
            if req.headers.contains_key("x-test-hold") && !gate.hold() {
                return;
            }
            let out = format!("HTTP/1.1 200 OK\r\nx-upstream: {name}\r\ncontent-length: {}\r\n\r\n{name}", name.len());
            if writer.write_all(out.as_bytes()).is_err() {
                return;
            }
        }
    })
}
