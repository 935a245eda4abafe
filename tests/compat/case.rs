//! A compat case: `tests/compat/cases/<name>.yaml`.
//!
//! ```yaml
//! description: what the case shows
//! bootstrap: |          # an Envoy v3 bootstrap; listeners and admin on port 0
//!   ...                 # placeholders: {{UPSTREAM_PORT}}, {{UPSTREAM2_PORT}} (JSON-reporting
//!                       # HTTP upstreams "upstream1"/"upstream2"), {{H2C_UPSTREAM_PORT}} (the
//!                       # same over HTTP/2, "h2c_upstream", and {{H2C_UPSTREAM2_PORT}},
//!                       # "h2c_upstream2"; {{H2C_GOAWAY_PORT}}: "h2c_goaway",
//!                       # whose first connection says GOAWAY to its first request),
//!                       # {{ECHO_PORT}} (TCP echo), {{GRPC_AUTHZ_PORT}} (a gRPC
//!                       # ext_authz service: tests/shared/grpc_authz.rs),
//!                       # {{XDS_PORT}} (an ADS management server serving the files of
//!                       # tests/compat/data/xds: tests/shared/xds_server.rs; name its
//!                       # cluster `xds`, whose open stream settling leaves out),
//!                       # {{DEAD_PORT}} (nothing listens), {{FREE_PORT1}}/{{FREE_PORT2}} (free
//!                       # ports for listeners that need a fixed one), {{TMP}} (scratch dir),
//!                       # {{DATA}} (tests/compat/data: files a case reads, e.g. runtime layers),
//!                       # {{ACCESS_LOG}} (a file access log's path: each request's lines
//!                       # are compared as `<label>.access_log`; a health check
//!                       # event log may name it too: its JSON lines are compared
//!                       # with the timestamp masked), {{TLS_CA}},
//!                       # {{TLS_SERVER_CERT}}/{{TLS_SERVER_KEY}} (for server.test),
//!                       # {{TLS_RICH_SERVER_CERT}}/{{TLS_RICH_SERVER_KEY}} (server.test,
//!                       # 127.0.0.1, ::1 and proxy@server.test; a case naming them gets a
//!                       # client certificate with IP and e-mail SANs too),
//!                       # {{TLS_CLIENT_CERT}}/{{TLS_CLIENT_KEY}}: PEM files made per run;
//!                       # {{TLS_CRL}}: the CA's CRL revoking nothing, {{TLS_CRL_CLIENT_REVOKED}}:
//!                       # one revoking the client certificate;
//!                       # {{TLS_UPSTREAM_PORT}}: "tls_upstream", the JSON-reporting
//!                       # upstream behind TLS with the server.test certificate
//! requests:             # sent in order, each on a new connection (unless `reuse`)
//! - name: get           # label of the checks (default r1, r2, ...); the placeholders
//!                       # above may be used in a request's text fields too
//!   listener: web       # default: the first listener in /listeners
//!   method: GET         # default GET
//!   path: /             # default /
//!   headers: ["x-a: 1"] # sent after `Host: example.com` (unless a host is given)
//!   body: text          # sent with a Content-Length
//!   repeat: 3           # the same request 3 times (labels get [1], [2], ...)
//!   order: cyclic       # with repeat: the upstreams' order may start at another phase
//!                       # of the same cycle (Envoy's load balancers start at a random one)
//! - raw: "GET / HTTP/1.1\r\nhost: x\r\n\r\n"  # exact bytes instead (may be a partial head:
//!                       # the client then waits for whatever the proxy answers)
//!   latin1: true        # `raw` is sent one byte per character (U+0000..U+00FF), so
//!                       # "\xFF" is the byte 0xFF rather than its UTF-8 encoding
//!   continue_body: text # sent only after an interim (1xx) response to `raw`'s head,
//!                       # e.g. for `Expect: 100-continue`
//!   hang_up_ms: 300     # after sending, wait 300 ms and close without reading (a
//!                       # client that gives up); the outcome is what it had seen by
//!                       # then (nothing, an answer, a close)
//!   hang_up_after: upstream_request  # instead (or before hang_up_ms): hang up once the
//!                       # proxy has the request active upstream (a readiness signal,
//!                       # cluster.*.upstream_rq_active > 0, bounded; not a guessed time),
//!                       # or `bytes_read`: once it has read every byte sent
//!                       # (http.*.downstream_cx_rx_bytes_total)
//!   read_timeout_ms: 1000  # the client's read timeout (default 10 s), for a request
//!                       # both proxies leave unanswered (outcome "read timed out")
//!   https: true         # sent over TLS (SNI server.test, CA {{TLS_CA}}); give
//!                       # `connection: close`; `client_cert: true` shows the client's
//!   http2: true         # sent by an HTTP/2 client (prior knowledge) on a new
//!                       # connection; `host` becomes `:authority`; no raw/reuse/hang-up
//!   h2_protocol: websocket  # with http2 and `method: CONNECT`: an extended CONNECT
//!                       # (RFC 8441) with this `:protocol`, the stream left open
//!   reuse: true         # on the previous request's client connection (keep-alive)
//!                       # instead of a new one; with `repeat`, every repetition reuses it
//! - tcp: "hello"        # raw TCP: send, half-close, read to EOF
//!   half_close_after_ms: 200  # wait between sending and half-closing
//! - signal: TERM        # send the proxy SIGTERM at this point of the sequence, then
//!                       # wait until its first listener refuses connections
//!   during_next: true   # instead: while the next request is in flight (once the
//!                       # proxy has it active upstream)
//! - admin_post: /healthcheck/fail  # POST to the admin endpoint at this point of the
//!                       # sequence; its response is compared like a request's
//! - wait_stat: "overload.envoy.overload_actions.stop_accepting_requests.active=1"
//!                       # wait (bounded) until the admin endpoint shows the stat at
//!                       # this value: a state change no request can signal
//! upstream_connections: true  # also compare which upstream connection (1, 2, ... per
//!                       # upstream, in the upstream's accept order) served each request
//! admin:                # after the requests
//!   ready: true         # GET /ready
//!   pages: [/listeners] # GET each; status and body (ports → placeholders; JSON
//!                       # compared as data) must agree
//!   stats: [cluster.web.upstream_rq_total]   # values must agree
//!   clusters: ["web::127.0.0.1:{{UPSTREAM_PORT}}::rq_total"]  # /clusters keys
//!   server_info: [state, "~uptime_current_epoch"]  # fields; ~ = presence and type only
//!   prometheus: true    # /stats/prometheus: Courier's families and series must be
//!                       # Envoy's (see prometheus.rs)
//! command: [--mode, validate, -c, "{{CONFIG}}"]  # instead of serving: compare exit codes
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    #[serde(skip)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub bootstrap: String,
    #[serde(default)]
    pub requests: Vec<Request>,
    #[serde(default)]
    pub admin: AdminChecks,
    /// Compare the upstream connection that served each proxied request.
    #[serde(default)]
    pub upstream_connections: bool,
    /// When set, each binary is run with these arguments (instead of serving) and
    /// the exit codes are compared.
    #[serde(default)]
    pub command: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub name: Option<String>,
    pub listener: Option<String>,
    pub method: Option<String>,
    pub path: Option<String>,
    #[serde(default)]
    pub headers: Vec<String>,
    pub body: Option<String>,
    /// `body` is sent gzip-compressed (give the `content-encoding` header too).
    #[serde(default)]
    pub gzip_body: bool,
    /// `body` is sent compressed with this coding (`gzip`, `br` or `zstd`; give
    /// the `content-encoding` header too).
    pub encode_body: Option<String>,
    pub raw: Option<String>,
    /// `raw` or `tcp` is sent one byte per character (each at most U+00FF): how a
    /// case sends bytes that are not UTF-8, such as a lone 0xFF in a header.
    #[serde(default)]
    pub latin1: bool,
    pub tcp: Option<String>,
    /// Padding of this many bytes: with `tcp`, `A`s after the data (an
    /// oversized TLS record, say); otherwise an `x-pad` header of `a`s.
    #[serde(default)]
    pub pad: usize,
    /// With `tcp`: wait this long after sending before half-closing, so that a
    /// proxy's listener filters see the bytes before the FIN (Envoy closes a
    /// socket whose FIN comes in the same read as the bytes they inspect).
    pub half_close_after_ms: Option<u64>,
    /// Sent after an interim (1xx) response to `raw`.
    pub continue_body: Option<String>,
    /// Close the connection this long after sending, without reading a response.
    pub hang_up_ms: Option<u64>,
    /// The client's read timeout for this request instead of `IO_TIMEOUT`: for a
    /// request both proxies are expected to leave unanswered, so the case does not
    /// wait the full timeout twice.
    pub read_timeout_ms: Option<u64>,
    /// `upstream_request` / `bytes_read`: close the connection, without reading a
    /// response, once the proxy has the request active upstream / has read it.
    pub hang_up_after: Option<String>,
    /// Send on the previous request's client connection.
    #[serde(default)]
    pub reuse: bool,
    /// The proxy closes the connection as it accepts it (an overload action):
    /// whether the client then sees a FIN or a reset depends on whether its
    /// request had arrived first, a race in Envoy as in Courier, so the two
    /// failure kinds compare equal here.
    #[serde(default)]
    pub closed_at_accept: bool,
    /// Send with an HTTP/2 client (prior knowledge) on a new connection.
    #[serde(default)]
    pub http2: bool,
    /// With `http2`: sent as `:protocol` of an extended CONNECT (RFC 8441; give
    /// `method: CONNECT`), the stream left open while the response is read.
    #[serde(default)]
    pub h2_protocol: Option<String>,
    /// Send over TLS on a new connection (SNI `server.test`, trusting `{{TLS_CA}}`),
    /// reading until the proxy closes: give `connection: close`.
    #[serde(default)]
    pub https: bool,
    /// With `https`: show the client certificate `{{TLS_CLIENT_CERT}}`.
    #[serde(default)]
    pub client_cert: bool,
    /// POST this path to the admin endpoint instead of sending a request.
    pub admin_post: Option<String>,
    /// `stat=value`: instead of sending a request, wait (bounded) until the admin
    /// endpoint shows this counter or gauge at this value: the readiness signal of
    /// a state change with no request to show it, such as an overload action
    /// becoming active after a refresh.
    pub wait_stat: Option<String>,
    /// `TERM`: send the proxy this signal instead of a request.
    pub signal: Option<String>,
    /// With `signal`: send it while the next request is in flight.
    #[serde(default)]
    pub during_next: bool,
    pub repeat: Option<usize>,
    /// `exact` (default) or `cyclic`: see the module doc.
    pub order: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminChecks {
    #[serde(default)]
    pub ready: bool,
    #[serde(default)]
    pub stats: Vec<String>,
    #[serde(default)]
    pub clusters: Vec<String>,
    #[serde(default)]
    pub server_info: Vec<String>,
    /// Admin paths whose status and body must agree.
    #[serde(default)]
    pub pages: Vec<String>,
    /// Compare the `/stats/prometheus` families (see `prometheus.rs`).
    #[serde(default)]
    pub prometheus: bool,
}

impl Request {
    /// True when the client hangs up instead of reading a response.
    pub fn hangs_up(&self) -> bool {
        self.hang_up_ms.is_some() || self.hang_up_after.is_some()
    }

    /// The request with the placeholders of `vars` filled in.
    pub fn filled(&self, vars: &BTreeMap<String, String>) -> Result<Request, String> {
        let f = |t: &Option<String>| t.as_deref().map(|t| fill(t, vars)).transpose();
        Ok(Request {
            path: f(&self.path)?,
            headers: self.headers.iter().map(|h| fill(h, vars)).collect::<Result<_, _>>()?,
            body: f(&self.body)?,
            raw: f(&self.raw)?,
            tcp: f(&self.tcp)?,
            continue_body: f(&self.continue_body)?,
            admin_post: f(&self.admin_post)?,
            ..self.clone()
        })
    }

    /// The body as sent: `body`, compressed where `gzip_body` or `encode_body` says so.
    pub fn body_bytes(&self) -> Vec<u8> {
        let body = self.body.as_deref().unwrap_or("").as_bytes();
        match (self.gzip_body, self.encode_body.as_deref()) {
            (true, _) => crate::shared_net::encode("gzip", body),
            (false, Some(coding)) => crate::shared_net::encode(coding, body),
            (false, None) => body.to_vec(),
        }
    }

    /// `headers` as (name, value) pairs.
    pub fn header_pairs(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|h| match h.split_once(':') {
                Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
                None => (h.trim().to_string(), String::new()),
            })
            .collect();
        if self.pad > 0 && self.tcp.is_none() {
            pairs.push(("x-pad".into(), "a".repeat(self.pad)));
        }
        pairs
    }
}

/// One request to send: the case's requests with `repeat` expanded.
#[derive(Debug, Clone)]
pub struct Planned {
    pub label: String,
    pub request: Request,
    /// For a repeated request whose upstream order is compared as a cycle: the base
    /// label, and whether this is the group's last request.
    pub cyclic: Option<(String, bool)>,
}

impl Case {
    pub fn load(path: &Path) -> Result<Case, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut case: Case = serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        case.name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("?").to_string();
        for (i, r) in case.requests.iter().enumerate() {
            if r.http2 && (r.raw.is_some() || r.reuse || r.hangs_up() || r.tcp.is_some()) {
                return Err(format!("{}: http2 requests cannot be raw, reused, hung up or tcp", path.display()));
            }
            if r.h2_protocol.is_some() && !r.http2 {
                return Err(format!("{}: h2_protocol needs http2", path.display()));
            }
            if r.latin1 && r.raw.as_deref().or(r.tcp.as_deref()).is_none_or(|raw| raw.chars().any(|c| c > '\u{ff}')) {
                return Err(format!("{}: latin1 needs a raw or tcp text of characters up to U+00FF", path.display()));
            }
            if r.continue_body.is_some() && r.raw.is_none() {
                return Err(format!("{}: continue_body needs raw", path.display()));
            }
            let next_is_http = case
                .requests
                .get(i + 1)
                .is_some_and(|n| n.tcp.is_none() && n.admin_post.is_none() && n.signal.is_none());
            if r.during_next && (r.signal.is_none() || !next_is_http) {
                return Err(format!("{}: during_next needs a signal followed by an HTTP request", path.display()));
            }
            if r.signal.as_deref().is_some_and(|s| s != "TERM") {
                return Err(format!("{}: signal must be TERM", path.display()));
            }
            if r.hang_up_after.as_deref().is_some_and(|h| h != "upstream_request" && h != "bytes_read") {
                return Err(format!("{}: hang_up_after must be upstream_request or bytes_read", path.display()));
            }
            if let Some(order) = r.order.as_deref() {
                if order != "exact" && order != "cyclic" {
                    return Err(format!("{}: order must be exact or cyclic, not {order:?}", path.display()));
                }
            }
        }
        Ok(case)
    }

    pub fn planned(&self) -> Vec<Planned> {
        let mut out = Vec::new();
        for (i, r) in self.requests.iter().enumerate() {
            let base = r.name.clone().unwrap_or_else(|| format!("r{}", i + 1));
            let n = r.repeat.unwrap_or(1).max(1);
            let cyclic = r.order.as_deref() == Some("cyclic");
            for k in 1..=n {
                let label = if n > 1 { format!("{base}[{k}]") } else { base.clone() };
                let cyclic = cyclic.then(|| (base.clone(), k == n));
                out.push(Planned { label, request: r.clone(), cyclic });
            }
        }
        out
    }

    /// The placeholders the bootstrap uses.
    pub fn uses(&self, placeholder: &str) -> bool {
        self.bootstrap.contains(placeholder) || self.command.iter().flatten().any(|a| a.contains(placeholder))
    }

    /// True when the bootstrap sets the `server` header's value.
    pub fn sets_server_name(&self) -> bool {
        self.bootstrap.contains("server_name:")
    }
}

/// Replaces every `{{KEY}}` of `vars` in `text`; an unknown placeholder is an error.
pub fn fill(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = text.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    if let Some(start) = out.find("{{") {
        let end = out[start..].find("}}").map_or(out.len(), |e| start + e + 2);
        return Err(format!("unknown placeholder {}", &out[start..end]));
    }
    Ok(out)
}
