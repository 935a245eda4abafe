//! The control plane of bench/run's `xds` section: the tests' management
//! server (tests/shared/xds_server.rs, ADS over h2c, state of the world or
//! delta: it serves the stream the proxy opens) in a
//! process of its own, so that Envoy and Courier get the very same xDS stream
//! from the same code, driven by bench/run over stdin and stdout, one command
//! a line, one answer a line (bench/README.md says what each figure does with
//! them):
//!
//! - `clusters N PORT`: N EDS clusters `c0`…, each on ADS, and their
//!   assignments (one endpoint, 127.0.0.1:PORT), version `1` of both: `ok`.
//! - `eds NAME PORT VERSION`: NAME's assignment moves to PORT, the others stay:
//!   `pushed T`.
//! - `build-routes N VERSION`: makes route config `bench`, ahead of its push:
//!   prefix `/c0` to cluster `c0` (rewritten to `/`), path `/` to `upstream`
//!   (what the load asks for, matched at once: the figure is the push's cost,
//!   not the matching's), then N routes, prefix `/vVERSION/rI` to `upstream`:
//!   `ok`.
//! - `push-routes VERSION`: pushes what `build-routes` made: `pushed T`.
//! - `listener PORT VERSION`: listener `bench` on 127.0.0.1:PORT, an HTTP
//!   connection manager with stat prefix `bench_vVERSION` and RDS `bench` on
//!   ADS: `pushed T`.
//! - `wait-ack cds|eds|lds|rds VERSION`: waits for the proxy's ACK of that
//!   type's VERSION: `acked T`, `nacked DETAIL`, or `timeout` (20 s). With
//!   `--delta` (the proxies on DELTA_GRPC), whose ACKs carry no version: the
//!   first ACK or NACK of that type after its last push.
//!
//! T is CLOCK_MONOTONIC in seconds (Python's `time.monotonic()`): for a push,
//! the moment the server has the new state and has woken its streams (they
//! encode and send it from there); for an ACK, when it arrived. The first line out is `port P`, the server's. Resources are written
//! as YAML and encoded through Courier's config decoder, as the tests do;
//! building happens before the clock starts, so it is in no figure.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use envoy_types::pb::google::protobuf::Any;

#[allow(dead_code)] // the tests' helpers this binary does not need
#[path = "../tests/shared/xds_server.rs"]
mod xds_server;

use xds_server::{XdsServer, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE};

fn main() {
    // wait_request panics after 20 s with every request in its message; the
    // answer is `timeout`, without that.
    std::panic::set_hook(Box::new(|_| {}));
    let delta = std::env::args().any(|a| a == "--delta");
    let xds = XdsServer::start();
    let mut plane = Plane { xds, delta, assignments: Vec::new(), routes: HashMap::new(), pushed_at: HashMap::new() };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "port {}", plane.xds.port());
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = plane.command(&words).unwrap_or_else(|e| format!("error {e}"));
        let _ = writeln!(out, "{answer}");
        let _ = out.flush();
    }
}

struct Plane {
    xds: XdsServer,
    /// The proxies speak delta xDS: their requests are `delta_requests`.
    delta: bool,
    /// Every cluster's assignment, in order (`c0` first): each push is the whole
    /// state (a delta stream is sent what changed in it).
    assignments: Vec<Any>,
    /// Route configs built ahead, by version.
    routes: HashMap<String, Vec<Any>>,
    /// How many requests the server had when each type was last pushed: its ACK comes after.
    pushed_at: HashMap<&'static str, usize>,
}

impl Plane {
    fn command(&mut self, words: &[&str]) -> Result<String, String> {
        match words {
            ["clusters", n, port] => {
                let (n, port) = (number(n)?, number(port)?);
                self.assignments = (0..n).map(|i| assignment(&format!("c{i}"), port)).collect::<Result<_, _>>()?;
                let clusters = (0..n).map(|i| cluster(&format!("c{i}"))).collect::<Result<_, _>>()?;
                self.push(ENDPOINT_TYPE, "1", self.assignments.clone());
                self.push(CLUSTER_TYPE, "1", clusters);
                Ok("ok".into())
            }
            ["eds", name, port, version] => {
                let i: usize = name.strip_prefix('c').and_then(|i| i.parse().ok()).ok_or("no such cluster")?;
                let new = assignment(name, number(port)?)?;
                *self.assignments.get_mut(i).ok_or("no such cluster")? = new;
                self.push(ENDPOINT_TYPE, version, self.assignments.clone());
                Ok(format!("pushed {}", now()))
            }
            ["build-routes", n, version] => {
                let config = route_config(number(n)?, version)?;
                self.routes.insert(version.to_string(), vec![config]);
                Ok("ok".into())
            }
            ["push-routes", version] => {
                let routes = self.routes.remove(*version).ok_or("not built")?;
                self.push(ROUTE_TYPE, version, routes);
                Ok(format!("pushed {}", now()))
            }
            ["listener", port, version] => {
                let listener = listener(number(port)?, version)?;
                self.push(LISTENER_TYPE, version, vec![listener]);
                Ok(format!("pushed {}", now()))
            }
            ["wait-ack", kind, version] => {
                let type_url = match *kind {
                    "cds" => CLUSTER_TYPE,
                    "eds" => ENDPOINT_TYPE,
                    "lds" => LISTENER_TYPE,
                    "rds" => ROUTE_TYPE,
                    _ => return Err(format!("no type {kind}")),
                };
                let after = self.pushed_at.get(type_url).copied().unwrap_or(0);
                let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    if self.delta {
                        let (_, r) = self
                            .xds
                            .wait_delta_request(after, |r| r.type_url == type_url && !r.response_nonce.is_empty());
                        r.error_detail
                    } else {
                        let (_, r) = self.xds.wait_request(after, |r| {
                            r.type_url == type_url
                                && !r.response_nonce.is_empty()
                                && (r.version_info == *version || r.error_detail.is_some())
                        });
                        r.error_detail
                    }
                }));
                Ok(match answer {
                    Ok(Some(e)) => format!("nacked {}", e.message.replace('\n', " ")),
                    Ok(None) => format!("acked {}", now()),
                    Err(_) => "timeout".into(),
                })
            }
            _ => Err(format!("unknown command {words:?}")),
        }
    }

    fn push(&mut self, type_url: &'static str, version: &str, resources: Vec<Any>) {
        let seen = if self.delta { self.xds.delta_requests().len() } else { self.xds.requests().len() };
        self.pushed_at.insert(type_url, seen);
        self.xds.push(type_url, version, resources);
    }
}

fn number<T: std::str::FromStr>(word: &str) -> Result<T, String> {
    word.parse().map_err(|_| format!("not a number: {word}"))
}

/// CLOCK_MONOTONIC, in seconds.
fn now() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// A resource from a YAML list item, encoded as a management server sends it.
fn resource(type_url: &str, yaml: &str) -> Result<Any, String> {
    let json = courier::config::bootstrap::parse_yaml(yaml).map_err(|e| e.to_string())?;
    let item = json.as_array().and_then(|a| a.first()).ok_or("not a YAML list")?;
    let desc = courier::config::descriptor::message(type_url.trim_start_matches("type.googleapis.com/"))
        .ok_or("not a type of the schema")?;
    let mut path = courier::config::FieldPath::new();
    let (msg, errors) = courier::config::proto_json::decode_partial(&desc, item, &mut path);
    if let Some(e) = errors.first() {
        return Err(e.to_string());
    }
    Ok(Any { type_url: type_url.to_string(), value: courier::config::encode::encode_to_vec(&msg) })
}

fn cluster(name: &str) -> Result<Any, String> {
    resource(
        CLUSTER_TYPE,
        &format!(
            "- name: {name}
  type: EDS
  connect_timeout: 1s
  eds_cluster_config: {{ eds_config: {{ ads: {{}}, resource_api_version: V3 }} }}
"
        ),
    )
}

fn assignment(name: &str, port: u16) -> Result<Any, String> {
    resource(
        ENDPOINT_TYPE,
        &format!(
            "- cluster_name: {name}
  endpoints:
  - lb_endpoints:
    - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}
"
        ),
    )
}

fn route_config(n: usize, version: &str) -> Result<Any, String> {
    let route = |matcher: &str, cluster: &str, rewrite: &str| {
        format!("    - {{ match: {{ {matcher} }}, route: {{ cluster: {cluster}, timeout: 10s{rewrite} }} }}\n")
    };
    let mut routes = route("prefix: \"/c0\"", "c0", ", prefix_rewrite: \"/\"");
    routes += &route("path: \"/\"", "upstream", "");
    for i in 0..n {
        routes += &route(&format!("prefix: \"/v{version}/r{i}\""), "upstream", "");
    }
    resource(
        ROUTE_TYPE,
        &format!("- name: bench\n  virtual_hosts:\n  - name: bench\n    domains: [\"*\"]\n    routes:\n{routes}"),
    )
}

fn listener(port: u16, version: &str) -> Result<Any, String> {
    resource(
        LISTENER_TYPE,
        &format!(
            r#"- name: bench
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: bench_v{version}
        rds: {{ route_config_name: bench, config_source: {{ ads: {{}}, resource_api_version: V3 }} }}
        http_filters:
        - name: envoy.filters.http.router
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#
        ),
    )
}
