//! Turns what Envoy and Courier showed for one case into checks.
//!
//! Check names: `startup`; per request `<label>.status`, `<label>.version` and
//! `<label>.reason` (the status line's), `<label>.outcome` (when either side got no
//! HTTP response: the kind of failure -- closed, reset, timed out, connect failed --
//! or, for a client that hangs up, what it had seen by then), `<label>.body` (responses
//! that are not the upstream's JSON report: local replies, direct responses),
//! `<label>.header.<name>` (every response header either side sent),
//! `<label>.upstream` (which upstream answered), `<label>.upstream.method|path|body`,
//! `<label>.upstream.header.<name>` (every header either upstream received),
//! `<label>.body_framing` (whether the report came in one gRPC frame, when either did),
//! `<label>.upstream.connection` (with `upstream_connections: true`), `<label>.interim`
//! (interim 1xx statuses, when either side got one), `<label>.tcp` (bytes echoed),
//! `<label>.access_log` (the lines written for the request, when the case logs; in
//! an `order: cyclic` group without the upstream host);
//! `settled` (whether each proxy went idle after the last request);
//! `<name>.upstream_order` (a repeated request with `order: cyclic`: the sequence of
//! upstreams, equal up to the phase of Envoy's cycle, instead of per-request `upstream`
//! and `header.x-upstream`); `admin.ready`, `admin.stat.<name>`, `admin.clusters.<key>`,
//! `admin.server_info.<field>`, `admin.page.<path>`; `command.exit`.
//!
//! Values that legitimately differ between two runs are compared by presence and
//! format: `date` (IMF-fixdate), `x-request-id` (UUID, whose version digit, the
//! trace decision, must agree), B3 ids of a new trace (hex; a `b3` header's sampling
//! flag must agree), a `traceparent` (its flags must agree), Datadog's decimal ids
//! (`x-datadog-trace-id`, `-parent-id`), `x-datadog-tags` and `tracestate` with their
//! 16-hex-digit ids masked, `x-envoy-upstream-service-time`
//! (milliseconds), `server` (any token, unless the config sets `server_name`), the
//! hash of the run's client certificate in `x-forwarded-client-cert` (each run
//! makes its own), the `content-length` of the upstream's JSON report (its size depends on the report's
//! own fields, compared one by one instead; so is the access log's BYTES_SENT for
//! it). `x-envoy-expected-rq-timeout-ms` agrees within 100 ms: on a retry it is the
//! time left, which depends on timing. Access-log lines come normalized (times,
//! durations, request ids, ports; see `run.rs`). A body with `content-encoding: gzip`
//! (or `br`, `zstd`) is compared decompressed: each proxy's compressor flushes where
//! its reads ended, so the compressed bytes differ while what the client decodes
//! must not.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use regex::Regex;

use crate::case::Case;
use crate::run::{FailKind, Observed, Outcome};
use crate::shared_net::HttpResponse;

#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub envoy: String,
    pub courier: String,
    pub agree: bool,
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Exact,
    /// A UUID whose version digit (where Envoy writes the trace decision) agrees.
    Uuid,
    /// A B3 id: 16 or 32 hex digits (a new trace's ids are random).
    B3Id,
    /// A single `b3` header: `trace-span[-flag[-parent]]`, the flag agreeing.
    B3Single,
    /// A W3C `traceparent` (`00-trace-span-flags`), the flags agreeing.
    Traceparent,
    /// Equal once every run of 16 hex digits (a Datadog span id, a new trace's
    /// `_dd.p.tid`) is masked: `x-datadog-tags`, `tracestate`.
    HexIdsMasked,
    HttpDate,
    Number,
    Token,
    /// Both numbers, at most this far apart.
    Near(u64),
}

fn format_ok(mode: Mode, v: &str) -> bool {
    static RES: OnceLock<[Regex; 7]> = OnceLock::new();
    let [uuid, date, number, token, b3_id, b3, traceparent] = RES.get_or_init(|| {
        [
            Regex::new(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$").unwrap(),
            Regex::new(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$").unwrap(),
            Regex::new(r"^\d+$").unwrap(),
            Regex::new(r"^[!#$%&'*+.^_`|~0-9A-Za-z/ -]+$").unwrap(),
            Regex::new(r"^([0-9a-f]{16}){1,2}$").unwrap(),
            Regex::new(r"^([0-9a-f]{16}){1,2}-[0-9a-f]{16}(-[01d](-[0-9a-f]{16})?)?$").unwrap(),
            Regex::new(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$").unwrap(),
        ]
    });
    match mode {
        Mode::Exact | Mode::Near(_) | Mode::HexIdsMasked => true,
        Mode::Uuid => uuid.is_match(v),
        Mode::B3Id => b3_id.is_match(v),
        Mode::B3Single => b3.is_match(v),
        Mode::Traceparent => traceparent.is_match(v),
        Mode::HttpDate => date.is_match(v),
        Mode::Number => number.is_match(v),
        Mode::Token => token.is_match(v),
    }
}

/// Where two random ids must still agree: the trace decision Envoy writes in
/// x-request-id's version digit, a B3 id's length, and a `b3` header's sampling flag.
fn same_decision(mode: Mode, envoy: &str, courier: &str) -> bool {
    match mode {
        Mode::Uuid => envoy.get(14..15) == courier.get(14..15),
        Mode::B3Single => envoy.split('-').nth(2) == courier.split('-').nth(2),
        Mode::Traceparent => envoy.split('-').nth(3) == courier.split('-').nth(3),
        // 64 or 128 bits (`trace_id_128bit`).
        Mode::B3Id => envoy.len() == courier.len(),
        _ => true,
    }
}

const ABSENT: &str = "<absent>";

fn mask_hex_ids(v: &str) -> String {
    static ID: OnceLock<Regex> = OnceLock::new();
    ID.get_or_init(|| Regex::new(r"\b[0-9a-f]{16}\b").unwrap()).replace_all(v, "<id>").into_owned()
}

/// A value with what is particular to a client certificate replaced by
/// placeholders: each proxy's run gets a client certificate of its own. Its
/// SHA-256 in `x-forwarded-client-cert` (`Hash=`), its URL-encoded PEM (`Cert=`,
/// `Chain=`, `%DOWNSTREAM_PEER_CERT%`), its SHA-1 (40 hex digits,
/// `%DOWNSTREAM_PEER_FINGERPRINT_1%`) and SHA-256 (64 hex digits, the
/// `%DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_*%`).
fn without_cert_hash(v: &str) -> String {
    static HASH: OnceLock<Regex> = OnceLock::new();
    static PEM: OnceLock<Regex> = OnceLock::new();
    static SHA1: OnceLock<Regex> = OnceLock::new();
    static SHA256: OnceLock<Regex> = OnceLock::new();
    let v = HASH.get_or_init(|| Regex::new(r"Hash=[0-9a-f]{64}").unwrap()).replace_all(v, "Hash=<sha256>");
    let pem = r"-----BEGIN%20CERTIFICATE-----%0A[A-Za-z0-9%]*?-----END%20CERTIFICATE-----%0A";
    let v = PEM.get_or_init(|| Regex::new(pem).unwrap()).replace_all(&v, "<pem>");
    let v = SHA1.get_or_init(|| Regex::new(r"\b[0-9a-f]{40}\b").unwrap()).replace_all(&v, "<sha1>");
    SHA256.get_or_init(|| Regex::new(r"\b[0-9a-f]{64}\b").unwrap()).replace_all(&v, "<sha256>").into_owned()
}

struct Checks(Vec<Check>);

impl Checks {
    fn push(&mut self, name: String, envoy: String, courier: String, mode: Mode) {
        let agree = match mode {
            Mode::Exact => envoy == courier,
            Mode::HexIdsMasked => mask_hex_ids(&envoy) == mask_hex_ids(&courier),
            Mode::Near(d) => {
                envoy == courier
                    || matches!((envoy.parse::<u64>(), courier.parse::<u64>()), (Ok(e), Ok(c)) if e.abs_diff(c) <= d)
            }
            _ => {
                envoy == courier
                    || (envoy != ABSENT
                        && courier != ABSENT
                        && format_ok(mode, &envoy)
                        && format_ok(mode, &courier)
                        && same_decision(mode, &envoy, &courier))
            }
        };
        self.0.push(Check { name, envoy, courier, agree });
    }

    fn exact(&mut self, name: String, envoy: impl Into<String>, courier: impl Into<String>) {
        self.push(name, envoy.into(), courier.into(), Mode::Exact);
    }
}

fn opt(v: Option<String>) -> String {
    v.unwrap_or_else(|| ABSENT.to_string())
}

/// The upstream's JSON report, when `resp` is one (as it came, or in one gRPC
/// frame: the h2c upstream's answer to `x-test-grpc-status`).
fn report(resp: &HttpResponse) -> Option<serde_json::Value> {
    resp.header("x-upstream")?;
    let json = grpc_message(&resp.body).unwrap_or(&resp.body);
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    v.get("upstream")?;
    Some(v)
}

/// The message of `body` when it is exactly one uncompressed gRPC frame.
fn grpc_message(body: &[u8]) -> Option<&[u8]> {
    let (&[0, a, b, c, d], message) = body.split_first_chunk::<5>()? else { return None };
    (u32::from_be_bytes([a, b, c, d]) as usize == message.len()).then_some(message)
}

fn header_values(resp: &HttpResponse, name: &str) -> Option<String> {
    let all = resp.header_all(name);
    (!all.is_empty()).then(|| all.join(" | "))
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Http(r) => r.status.to_string(),
        Outcome::Tcp(b) => format!("tcp {:?}", String::from_utf8_lossy(b)),
        Outcome::Failed(f) => format!("no response: {} ({})", kind_name(f.kind), f.detail),
        Outcome::HungUp(seen) => format!("hung up; {seen}"),
        Outcome::Signalled(seen) | Outcome::Waited(seen) => seen.clone(),
    }
}

fn kind_name(kind: FailKind) -> &'static str {
    match kind {
        FailKind::Connect => "connect failed",
        FailKind::Closed => "closed by peer (EOF)",
        FailKind::Reset => "reset by peer",
        FailKind::TimedOut => "read timed out",
        FailKind::Malformed => "malformed response",
        FailKind::Other => "other error",
    }
}

/// What kind of outcome `o` is, the part that must agree when neither side got a
/// response: the failure's kind, or what a hanging-up client had seen. The detail
/// (error text) is shown but not compared.
fn outcome_kind(o: &Outcome) -> String {
    match o {
        Outcome::Http(_) => "response".into(),
        Outcome::Tcp(_) => "tcp".into(),
        Outcome::Failed(f) => format!("no response: {}", kind_name(f.kind)),
        Outcome::HungUp(seen) => format!("hung up; {seen}"),
        Outcome::Signalled(seen) | Outcome::Waited(seen) => seen.clone(),
    }
}

pub fn compare(case: &Case, e: &Observed, c: &Observed) -> Vec<Check> {
    let mut checks = Checks(Vec::new());
    let status = |o: &Observed| match &o.startup {
        Ok(()) => "ok".to_string(),
        Err(err) => format!("failed: {err}"),
    };
    checks.exact("startup".into(), status(e), status(c));
    if e.startup.is_err() || c.startup.is_err() {
        return checks.0;
    }
    if let (Some(ec), Some(cc)) = (&e.command, &c.command) {
        let show = |x: &(Option<i32>, String)| match x.0 {
            Some(0) => "0".to_string(),
            code => format!("{} ({})", code.map_or("signal".into(), |c| c.to_string()), x.1.trim()),
        };
        let agree = ec.0 == cc.0;
        checks.0.push(Check { name: "command.exit".into(), envoy: show(ec), courier: show(cc), agree });
    }

    let planned = case.planned();
    let mut order: (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for (((label, eo), (_, co)), plan) in e.responses.iter().zip(&c.responses).zip(&planned) {
        if let Some((base, last)) = &plan.cyclic {
            let name = |o: &Outcome| match o {
                Outcome::Http(r) => r.header("x-upstream").unwrap_or("-").to_string(),
                other => describe(other),
            };
            order.0.push(name(eo));
            order.1.push(name(co));
            if *last {
                let (eseq, cseq) = std::mem::take(&mut order);
                let agree = same_cycle(&eseq, &cseq);
                checks.0.push(Check {
                    name: format!("{base}.upstream_order"),
                    envoy: eseq.join(","),
                    courier: cseq.join(","),
                    agree,
                });
            }
        }
        let (ei, ci) = (e.interim.get(label), c.interim.get(label));
        if ei.is_some() || ci.is_some() {
            checks.exact(format!("{label}.interim"), opt(ei.cloned()), opt(ci.cloned()));
        }
        match (eo, co) {
            (Outcome::Http(er), Outcome::Http(cr)) => {
                compare_http(case, label, er, cr, plan.cyclic.is_some(), &mut checks)
            }
            (Outcome::Tcp(eb), Outcome::Tcp(cb)) => checks.exact(
                format!("{label}.tcp"),
                String::from_utf8_lossy(eb).into_owned(),
                String::from_utf8_lossy(cb).into_owned(),
            ),
            _ => {
                let kind = |o: &Outcome| match o {
                    Outcome::Failed(f)
                        if plan.request.closed_at_accept && matches!(f.kind, FailKind::Closed | FailKind::Reset) =>
                    {
                        "no response: closed or reset at accept".to_string()
                    }
                    other => outcome_kind(other),
                };
                let agree = kind(eo) == kind(co);
                checks.0.push(Check {
                    name: format!("{label}.outcome"),
                    envoy: describe(eo),
                    courier: describe(co),
                    agree,
                });
            }
        }
        if let (Some(el), Some(cl)) = (e.status_lines.get(label), c.status_lines.get(label)) {
            compare_status_line(label, el, cl, &mut checks);
        }
        if let (Some(el), Some(cl)) = (e.access_log.get(label), c.access_log.get(label)) {
            let proxied = |o: &Outcome| matches!(o, Outcome::Http(r) if report(r).is_some());
            let report_sizes = proxied(eo) && proxied(co);
            let cyclic = plan.cyclic.is_some();
            let show = |lines: &Vec<String>| {
                let lines: Vec<String> = lines
                    .iter()
                    .map(|l| if report_sizes { mask_bytes_sent(l) } else { l.clone() })
                    .map(|l| if cyclic { mask_upstream_host(&l) } else { l })
                    .map(|l| without_cert_hash(&l))
                    .collect();
                if lines.is_empty() {
                    "<no line>".to_string()
                } else {
                    lines.join("\n")
                }
            };
            checks.exact(format!("{label}.access_log"), show(el), show(cl));
        }
    }

    if !case.requests.is_empty() {
        checks.exact("settled".into(), e.settled.clone(), c.settled.clone());
    }
    let admin = &case.admin;
    if admin.ready {
        let show = |r: &Option<(u16, String)>| match r {
            Some((s, body)) => format!("{s} {}", body.trim()),
            None => "no response".into(),
        };
        checks.exact("admin.ready".into(), show(&e.ready), show(&c.ready));
    }
    for name in &admin.stats {
        let get = |o: &Observed| opt(o.stats.get(name).map(|v| v.to_string()));
        checks.exact(format!("admin.stat.{name}"), get(e), get(c));
    }
    for path in &admin.pages {
        let get = |o: &Observed| opt(o.pages.get(path).cloned());
        checks.exact(format!("admin.page.{path}"), get(e), get(c));
    }
    for key in &admin.clusters {
        let get = |o: &Observed| opt(o.clusters.get(key).cloned());
        checks.exact(format!("admin.clusters.{key}"), get(e), get(c));
    }
    for field in &admin.server_info {
        let (presence_only, path) = match field.strip_prefix('~') {
            Some(p) => (true, p),
            None => (false, field.as_str()),
        };
        let pointer = format!("/{}", path.replace('.', "/"));
        let get = |o: &Observed| o.server_info.pointer(&pointer).cloned();
        let (ev, cv) = (get(e), get(c));
        let show = |v: &Option<serde_json::Value>| v.as_ref().map_or(ABSENT.to_string(), |v| v.to_string());
        let agree = if presence_only {
            let kind = |v: &Option<serde_json::Value>| {
                v.as_ref().map(|v| match v {
                    serde_json::Value::String(_) => "string",
                    serde_json::Value::Number(_) => "number",
                    serde_json::Value::Bool(_) => "bool",
                    serde_json::Value::Array(_) => "array",
                    serde_json::Value::Object(_) => "object",
                    serde_json::Value::Null => "null",
                })
            };
            kind(&ev) == kind(&cv)
        } else {
            ev == cv
        };
        checks.0.push(Check {
            name: format!("admin.server_info.{field}"),
            envoy: show(&ev),
            courier: show(&cv),
            agree,
        });
    }
    if let (Some(ep), Some(cp)) = (&e.prometheus, &c.prometheus) {
        checks.0.extend(crate::prometheus::checks(ep, cp)); // admin.prometheus.<family>
    }
    checks.0
}

/// A default-format access-log line with BYTES_SENT replaced by `<n>`: for the
/// upstream's JSON report, whose size depends on its own fields.
fn mask_bytes_sent(line: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r#"^(\[<time>\] "[^"]*" \S+ \S+ \S+ )\d+( .*)$"#).unwrap());
    re.replace(line, "${1}<n>${2}").into_owned()
}

/// A default-format access-log line with UPSTREAM_HOST (its last field) replaced:
/// for a request of an `order: cyclic` group, whose upstreams are compared as the
/// group's `upstream_order`.
fn mask_upstream_host(line: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r#"^(\[<time>\] .* )"[^"]*"$"#).unwrap());
    re.replace(line, "${1}\"<see upstream_order>\"").into_owned()
}

/// `<label>.version` and `<label>.reason`: the status line's first and last parts
/// (the status code is `<label>.status`).
fn compare_status_line(label: &str, e: &str, c: &str, checks: &mut Checks) {
    let parts = |line: &str| {
        let mut it = line.splitn(3, ' ');
        let version = it.next().unwrap_or("").to_string();
        let _status = it.next();
        (version, it.next().unwrap_or("").to_string())
    };
    let ((ev, er), (cv, cr)) = (parts(e), parts(c));
    checks.exact(format!("{label}.version"), ev, cv);
    checks.exact(format!("{label}.reason"), er, cr);
}

/// True when `b` is `a` at another phase of `a`'s cycle: `a` repeats with a period
/// p (the smallest, at most half its length), and `b` follows the same p-cycle from
/// some offset. Without such a period, the sequences must be equal.
fn same_cycle(a: &[String], b: &[String]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let n = a.len();
    let Some(p) = (1..=n / 2).find(|&p| (p..n).all(|i| a[i] == a[i - p])) else {
        return a == b;
    };
    (0..p).any(|k| (0..n).all(|i| b[i] == a[(i + k) % p]))
}

/// `r` with a gzip, br or zstd body decompressed (kept as it came if it is not
/// a valid stream of its coding).
fn decoded(r: &HttpResponse) -> std::borrow::Cow<'_, HttpResponse> {
    match r.header("content-encoding").and_then(|coding| crate::shared_net::decode(coding, &r.body)) {
        Some(body) => std::borrow::Cow::Owned(HttpResponse { body, ..r.clone() }),
        None => std::borrow::Cow::Borrowed(r),
    }
}

fn compare_http(case: &Case, label: &str, er: &HttpResponse, cr: &HttpResponse, cyclic: bool, checks: &mut Checks) {
    let (er, cr) = (&*decoded(er), &*decoded(cr));
    checks.exact(format!("{label}.status"), er.status.to_string(), cr.status.to_string());
    let (erep, crep) = (report(er), report(cr));
    let proxied = er.header("x-upstream").is_some() && cr.header("x-upstream").is_some();
    if erep.is_none() || crep.is_none() {
        checks.exact(format!("{label}.body"), er.text(), cr.text());
    } else if grpc_message(&er.body).is_some() || grpc_message(&cr.body).is_some() {
        let framed = |r: &HttpResponse| grpc_message(&r.body).map_or("no", |_| "one gRPC frame");
        checks.exact(format!("{label}.body_framing"), framed(er), framed(cr));
    }

    let names: BTreeSet<&str> = er.headers.iter().chain(&cr.headers).map(|(k, _)| k.as_str()).collect();
    for name in names {
        if cyclic && name == "x-upstream" {
            continue; // compared as the group's upstream_order
        }
        let mode = match name {
            "date" => Mode::HttpDate,
            "x-request-id" => Mode::Uuid,
            "x-envoy-upstream-service-time" => Mode::Number,
            "server" if !case.sets_server_name() => Mode::Token,
            "content-length" if proxied => Mode::Number,
            _ => Mode::Exact,
        };
        checks.push(format!("{label}.header.{name}"), opt(header_values(er, name)), opt(header_values(cr, name)), mode);
    }

    let (Some(erep), Some(crep)) = (erep, crep) else { return };
    let field = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    if !cyclic {
        checks.exact(format!("{label}.upstream"), field(&erep, "upstream"), field(&crep, "upstream"));
    }
    for k in ["method", "path", "body"] {
        checks.exact(format!("{label}.upstream.{k}"), field(&erep, k), field(&crep, k));
    }
    if case.upstream_connections {
        let conn = |v: &serde_json::Value| v["connection"].to_string();
        checks.exact(format!("{label}.upstream.connection"), conn(&erep), conn(&crep));
    }
    let header_names = |v: &serde_json::Value| -> BTreeSet<String> {
        v["headers"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
    };
    let names: BTreeSet<String> = header_names(&erep).union(&header_names(&crep)).cloned().collect();
    for name in names {
        let get = |v: &serde_json::Value| opt(v["headers"][&name].as_str().map(str::to_string));
        if name == "x-forwarded-client-cert" {
            let (e, c) = (without_cert_hash(&get(&erep)), without_cert_hash(&get(&crep)));
            checks.exact(format!("{label}.upstream.header.{name}"), e, c);
            continue;
        }
        let mode = match name.as_str() {
            "x-request-id" => Mode::Uuid,
            "x-b3-traceid" | "x-b3-spanid" | "x-b3-parentspanid" => Mode::B3Id,
            "b3" => Mode::B3Single,
            "traceparent" => Mode::Traceparent,
            // Datadog's random ids, in decimal; a caller's are checked by tests/integration.
            "x-datadog-trace-id" | "x-datadog-parent-id" => Mode::Number,
            "x-datadog-tags" | "tracestate" => Mode::HexIdsMasked,
            "x-envoy-expected-rq-timeout-ms" => Mode::Near(100),
            _ => Mode::Exact,
        };
        checks.push(format!("{label}.upstream.header.{name}"), get(&erep), get(&crep), mode);
    }
}
