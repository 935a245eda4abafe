//! Runs one case through one proxy binary (Envoy or Courier): starts the case's
//! upstreams, the proxy on the filled-in bootstrap, sends the requests and reads the
//! admin endpoint. Everything binds 127.0.0.1; the proxy is stopped by pid. Nothing
//! waits a guessed time where a signal exists: access logs and stats are read once
//! the proxy has settled (`settle`: its active-request and connection gauges), a
//! client hangs up or a signal goes once the request is active upstream.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use regex::Regex;

use crate::case::{fill, Case};
use crate::shared_net::{
    dead_socket, h2c_goaway_upstream, h2c_upstream, http_upstream, Client, HttpResponse, Upstream, IO_TIMEOUT,
};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Envoy,
    Courier,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Envoy => "envoy",
            Kind::Courier => "courier",
        }
    }
}

/// What a client got for one request.
#[derive(Debug, Clone)]
pub enum Outcome {
    Http(HttpResponse),
    /// Bytes read back on a raw TCP connection until EOF.
    Tcp(Vec<u8>),
    /// No (complete) response: how the exchange ended instead.
    Failed(Failure),
    /// A `signal` step: whether the proxy stopped listening afterwards.
    Signalled(String),
    /// A `wait_stat` step: whether the stat reached its value.
    Waited(String),
    /// A `hang_up_ms` / `hang_up_after` request: what the client had seen when it
    /// hung up.
    HungUp(String),
}

/// How an exchange without a complete response ended. Two failures agree only when
/// their kinds do: a proxy that closes at once and one that leaves the client
/// hanging until its read timeout behave differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    /// The connection could not be made (or no such listener).
    Connect,
    /// The peer closed the connection (EOF) before the response was complete.
    Closed,
    /// The peer reset the connection (RST), on a read or a write.
    Reset,
    /// Nothing more arrived within the client's read timeout: the proxy hung.
    TimedOut,
    /// Bytes arrived that are not an HTTP response.
    Malformed,
    Other,
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: FailKind,
    pub detail: String,
}

impl Failure {
    pub fn new(kind: FailKind, detail: impl Into<String>) -> Failure {
        Failure { kind, detail: detail.into() }
    }

    /// The kind of an I/O error; `what` says which step failed.
    fn io(what: &str, e: &std::io::Error) -> Failure {
        use std::io::ErrorKind as K;
        let kind = match e.kind() {
            K::UnexpectedEof => FailKind::Closed,
            // ENOTCONN: the socket is gone already, which only a reset does.
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::NotConnected => FailKind::Reset,
            K::WouldBlock | K::TimedOut => FailKind::TimedOut,
            K::ConnectionRefused => FailKind::Connect,
            _ => FailKind::Other,
        };
        Failure::new(kind, format!("{what}: {e}"))
    }
}

/// Everything observed from one proxy on one case.
#[derive(Debug)]
pub struct Observed {
    /// `Err` when the proxy did not start (or the command could not run).
    pub startup: Result<(), String>,
    pub responses: Vec<(String, Outcome)>,
    /// label → the interim (1xx) statuses received before the final response, e.g. "100".
    pub interim: BTreeMap<String, String>,
    /// label → the final response's status line, e.g. "HTTP/1.1 200 OK".
    pub status_lines: BTreeMap<String, String>,
    pub ready: Option<(u16, String)>,
    /// `/stats` counters and gauges, names normalized (ports → placeholders).
    pub stats: BTreeMap<String, i64>,
    /// `/clusters` as key → value, keys normalized.
    pub clusters: BTreeMap<String, String>,
    pub server_info: serde_json::Value,
    /// Admin path → "<status> <body>" (ports → placeholders).
    pub pages: BTreeMap<String, String>,
    /// label → the access-log lines written for that request, normalized.
    pub access_log: BTreeMap<String, Vec<String>>,
    /// "idle" when the proxy settled after the last request, else what kept it busy.
    pub settled: String,
    /// Exit code and output of a `command` case.
    pub command: Option<(Option<i32>, String)>,
    /// `/stats/prometheus` (ports → placeholders), with `admin.prometheus`.
    pub prometheus: Option<crate::prometheus::Families>,
}

impl Default for Observed {
    fn default() -> Observed {
        Observed {
            startup: Err("not started".into()),
            responses: Vec::new(),
            interim: BTreeMap::new(),
            status_lines: BTreeMap::new(),
            ready: None,
            stats: BTreeMap::new(),
            clusters: BTreeMap::new(),
            server_info: serde_json::Value::Null,
            pages: BTreeMap::new(),
            access_log: BTreeMap::new(),
            settled: String::new(),
            command: None,
            prometheus: None,
        }
    }
}

/// A scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "courier-compat-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A `--base-id` no other Envoy of this machine uses: this process's pid and a counter.
fn unique_base_id() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    (std::process::id() % 20_000) * 100 + N.fetch_add(1, Ordering::Relaxed) % 100
}

/// A running proxy process.
struct Proxy {
    child: Option<Child>,
    admin: SocketAddr,
    base_id: Option<u32>,
    log: PathBuf,
}

impl Proxy {
    fn start(kind: Kind, bin: &Path, config: &Path, dir: &Path) -> Result<Proxy, String> {
        let admin_file = dir.join(format!("{}-admin-address", kind.name()));
        let log = dir.join(format!("{}.log", kind.name()));
        let stderr = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(bin);
        cmd.arg("-c").arg(config).arg("--admin-address-path").arg(&admin_file).args([
            "--concurrency",
            "1",
            "-l",
            "error",
        ]);
        // Envoy's hot-restart shared memory and domain socket are keyed by the base id;
        // Courier without it has no handoff socket, so nothing of it is shared.
        let base_id = (kind == Kind::Envoy).then(unique_base_id);
        if let Some(id) = base_id {
            cmd.args(["--base-id", &id.to_string()]);
            // Envoy holds access-log lines up to this interval (10 s by default);
            // Courier writes them as soon as its queue drains. The suite waits for
            // the lines either way (`settle`), so a short interval only saves time.
            cmd.args(["--file-flush-interval-msec", "10"]);
        }
        cmd.current_dir(dir).stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);
        let child = cmd.spawn().map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let mut proxy = Proxy { child: Some(child), admin: "127.0.0.1:0".parse().unwrap(), base_id, log };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(text) = std::fs::read_to_string(&admin_file) {
                if let Ok(addr) = text.trim().parse() {
                    proxy.admin = addr;
                    break;
                }
            }
            if let Some(Ok(Some(status))) = proxy.child.as_mut().map(|c| c.try_wait()) {
                proxy.child = None;
                return Err(format!("exited during start-up ({status}): {}", proxy.log_tail()));
            }
            if Instant::now() > deadline {
                return Err(format!("no admin address within {STARTUP_TIMEOUT:?}: {}", proxy.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        while proxy.admin_get("/ready").map(|r| r.0) != Ok(200) {
            if Instant::now() > deadline {
                return Err(format!("not LIVE within {STARTUP_TIMEOUT:?}: {}", proxy.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(proxy)
    }

    /// Sends SIGTERM, then waits (bounded) until `listener` refuses connections:
    /// the proxy has reacted, whether it exits at once or drains.
    fn terminate(&self, listener: Option<SocketAddr>) -> String {
        let Some(child) = &self.child else { return "not running".into() };
        // SAFETY: kill(2) on the pid of our own, not yet reaped, child process.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let Some(addr) = listener else { return "signalled; no listener".into() };
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while TcpStream::connect_timeout(&addr, IO_TIMEOUT).is_ok() {
            if Instant::now() > deadline {
                return format!("signalled; still listening after {SETTLE_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        "signalled; stopped listening".into()
    }

    /// Polls `/stats` until `want` (`name=value`) holds, at most `SETTLE_TIMEOUT`.
    fn wait_stat(&self, want: &str) -> String {
        let Some((name, value)) = want.split_once('=') else { return format!("bad wait_stat {want:?}") };
        let Ok(value) = value.trim().parse::<i64>() else { return format!("bad wait_stat value {want:?}") };
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let seen = self.stats().get(name.trim()).copied();
            if seen == Some(value) {
                return format!("{want}: reached");
            }
            if Instant::now() > deadline {
                return format!("{want}: not reached within {SETTLE_TIMEOUT:?} (last {seen:?})");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The process has exited (a zombie not yet reaped, or gone).
    fn exited(&self) -> bool {
        let Some(child) = &self.child else { return true };
        match std::fs::read_to_string(format!("/proc/{}/stat", child.id())) {
            // `pid (comm) state ...`: the state follows the last ')'.
            Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
            Err(_) => true,
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    fn admin_get(&self, path: &str) -> Result<(u16, String), String> {
        let mut c = Client::try_connect(self.admin).map_err(|e| e.to_string())?;
        c.try_send_raw(&Client::encode_request("GET", path, &[("Connection", "close")], b""))
            .map_err(|e| e.to_string())?;
        let r = c.try_read_response(false)?;
        Ok((r.status, r.text()))
    }

    /// `/listeners`: (name, address) in the order listed.
    fn listeners(&self) -> Vec<(String, SocketAddr)> {
        let body = self.admin_get("/listeners").map(|r| r.1).unwrap_or_default();
        body.lines()
            .filter_map(|l| {
                let (name, addr) = l.split_once("::")?;
                Some((name.to_string(), addr.trim().parse().ok()?))
            })
            .collect()
    }

    /// Counters and gauges of `/stats` (histogram lines are skipped).
    fn stats(&self) -> BTreeMap<String, i64> {
        let body = self.admin_get("/stats").map(|r| r.1).unwrap_or_default();
        body.lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(": ")?;
                Some((k.to_string(), v.trim().parse().ok()?))
            })
            .collect()
    }
}

impl Drop for Proxy {
    /// SIGTERM, then SIGKILL after a short grace; Envoy's shared memory file goes too.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the pid of our own, not yet reaped, child process.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_millis(1500);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(id) = self.base_id {
            let _ = std::fs::remove_file(format!("/dev/shm/envoy_shared_memory_{}", id * 10));
        }
    }
}

/// `{{DNS_PORT}}`: a nameserver on 127.0.0.1 (tests/shared/dns_server.rs) whose
/// names under `compat.test` answer 127.0.0.1 (TTL 30 s) directly (`svc`), through a
/// CNAME (`alias`), after a truncated UDP reply (`truncated`), or misbehave: garbage
/// (`garbage`), a reply under another id (`wrongid`), SERVFAIL (`servfail`).
fn compat_nameserver() -> crate::shared_dns::DnsServer {
    use crate::shared_dns::{DnsServer, Record, Script};
    let local = || vec![Record::Address(std::net::Ipv4Addr::LOCALHOST.into(), 30)];
    let dns = DnsServer::start();
    dns.set("svc.compat.test", Script::Records(local()));
    dns.set("alias.compat.test", Script::Records(vec![Record::Cname("svc.compat.test".into(), 30)]));
    dns.set("truncated.compat.test", Script::Truncated(local()));
    dns.set("garbage.compat.test", Script::Garbage);
    dns.set("wrongid.compat.test", Script::WrongId(local()));
    dns.set("servfail.compat.test", Script::Rcode(2));
    dns
}

/// Upstreams and ports of one run, and the placeholder each port number stands for.
struct Environment {
    _upstreams: Vec<Upstream>,
    /// `{{DEAD_PORT}}`'s socket, held for the case.
    _dead: Option<socket2::Socket>,
    /// `{{XDS_PORT}}`'s management server, held for the run.
    _xds: Option<crate::shared_xds::XdsServer>,
    /// `{{DNS_PORT}}`'s nameserver (`compat_nameserver`), held for the run.
    _dns: Option<crate::shared_dns::DnsServer>,
    /// The run's CA (PEM) and client certificate, when the case uses `{{TLS_*}}`.
    tls: Option<(String, crate::shared_tls::Leaf)>,
    vars: BTreeMap<String, String>,
    /// port → placeholder, for normalizing stat names and /clusters keys.
    port_names: Vec<(u16, String)>,
}

impl Environment {
    fn new(case: &Case, dir: &Path) -> Environment {
        let mut env = Environment {
            _upstreams: Vec::new(),
            _dead: None,
            _xds: None,
            _dns: None,
            tls: None,
            vars: BTreeMap::new(),
            port_names: Vec::new(),
        };
        let add = |env: &mut Environment, key: &str, port: u16| {
            env.vars.insert(key.to_string(), port.to_string());
            env.port_names.push((port, format!("{{{{{key}}}}}")));
        };
        if case.uses("{{UPSTREAM_PORT}}") {
            let u = http_upstream("upstream1");
            add(&mut env, "UPSTREAM_PORT", u.port());
            env._upstreams.push(u);
        }
        if case.uses("{{UPSTREAM2_PORT}}") {
            let u = http_upstream("upstream2");
            add(&mut env, "UPSTREAM2_PORT", u.port());
            env._upstreams.push(u);
        }
        if case.uses("{{H2C_UPSTREAM_PORT}}") {
            let u = h2c_upstream("h2c_upstream");
            add(&mut env, "H2C_UPSTREAM_PORT", u.port());
            env._upstreams.push(u);
        }
        if case.uses("{{H2C_UPSTREAM2_PORT}}") {
            let u = h2c_upstream("h2c_upstream2");
            add(&mut env, "H2C_UPSTREAM2_PORT", u.port());
            env._upstreams.push(u);
        }
        if case.uses("{{H2C_GOAWAY_PORT}}") {
            let u = h2c_goaway_upstream("h2c_goaway");
            add(&mut env, "H2C_GOAWAY_PORT", u.port());
            env._upstreams.push(u);
        }
        if case.uses("{{GRPC_AUTHZ_PORT}}") {
            let u = crate::shared_grpc_authz::grpc_authz_upstream();
            add(&mut env, "GRPC_AUTHZ_PORT", u.port());
            env._upstreams.push(u);
        }
        if case.uses("{{XDS_PORT}}") {
            use crate::shared_xds::{XdsServer, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE};
            let xds = XdsServer::start();
            let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/data/xds");
            xds.push_file(CLUSTER_TYPE, &data.join("cds.yaml"));
            xds.push_file(LISTENER_TYPE, &data.join("lds.yaml"));
            // For the cases whose static resources subscribe by name.
            xds.push_file(ENDPOINT_TYPE, &data.join("eds.yaml"));
            xds.push_file(ROUTE_TYPE, &data.join("rds.yaml"));
            add(&mut env, "XDS_PORT", xds.port());
            env._xds = Some(xds);
        }
        if case.uses("{{DNS_PORT}}") {
            let dns = compat_nameserver();
            add(&mut env, "DNS_PORT", dns.port());
            env._dns = Some(dns);
        }
        if case.uses("{{ECHO_PORT}}") {
            let u = Upstream::echo();
            add(&mut env, "ECHO_PORT", u.port());
            env._upstreams.push(u);
        }
        if case.uses("{{DEAD_PORT}}") {
            let socket = dead_socket();
            add(&mut env, "DEAD_PORT", socket.local_addr().ok().and_then(|a| a.as_socket()).map_or(0, |a| a.port()));
            env._dead = Some(socket);
        }
        for key in ["FREE_PORT1", "FREE_PORT2"] {
            if case.uses(&format!("{{{{{key}}}}}")) {
                add(&mut env, key, free_port());
            }
        }
        if case.uses("{{TLS_") {
            let pki = crate::shared_tls::Pki::new("Compat CA");
            let server = pki.leaf(&["server.test"]);
            let (cert, key) = server.write(dir, "server");
            // A case that names the rich certificates gets IP and e-mail SANs in
            // the client's certificate too.
            let rich = case.uses("{{TLS_RICH_");
            let client = match rich {
                true => pki.leaf(&["client.test", "127.0.0.2", "fe80::1", "client@client.test", "ops@client.test"]),
                false => pki.leaf(&["client.test"]),
            };
            let (client_cert, client_key) = client.write(dir, "client");
            let ca = dir.join("ca.crt");
            std::fs::write(&ca, &pki.ca_pem).expect("write CA");
            for (k, p) in [
                ("TLS_CA", ca),
                ("TLS_SERVER_CERT", cert),
                ("TLS_SERVER_KEY", key),
                ("TLS_CLIENT_CERT", client_cert),
                ("TLS_CLIENT_KEY", client_key),
            ] {
                env.vars.insert(k.into(), p.display().to_string());
            }
            if rich {
                // server.test's certificate with IP and e-mail SANs besides.
                let rich = pki.leaf(&["server.test", "127.0.0.1", "::1", "proxy@server.test"]);
                let (cert, key) = rich.write(dir, "rich_server");
                env.vars.insert("TLS_RICH_SERVER_CERT".into(), cert.display().to_string());
                env.vars.insert("TLS_RICH_SERVER_KEY".into(), key.display().to_string());
            }
            if case.uses("{{TLS_UPSTREAM_PORT}}") {
                let u = crate::shared_tls::tls_front(http_upstream("tls_upstream"), &server);
                add(&mut env, "TLS_UPSTREAM_PORT", u.port());
                env._upstreams.push(u);
            }
            if case.uses("{{TLS_CRL") {
                for (key, file, revoked) in
                    [("TLS_CRL", "ca.crl", &[][..]), ("TLS_CRL_CLIENT_REVOKED", "revoked.crl", &["client.test"][..])]
                {
                    let path = dir.join(file);
                    std::fs::write(&path, pki.crl(revoked, false)).expect("write CRL");
                    env.vars.insert(key.into(), path.display().to_string());
                }
            }
            // A management server serves the certificates as secrets naming
            // their files, for the cases that get them by SDS.
            if let Some(xds) = &env._xds {
                push_compat_secrets(xds, &env.vars);
            }
            env.tls = Some((pki.ca_pem.clone(), client));
        }
        env.vars.insert("TMP".into(), dir.display().to_string());
        env.vars.insert("DATA".into(), concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/data").into());
        env.vars.insert("ACCESS_LOG".into(), dir.join("access.log").display().to_string());
        env
    }

    /// Connections to the case's upstreams that the upstreams have not closed.
    fn upstream_open(&self) -> i64 {
        self._upstreams.iter().map(|u| u.open.load(Ordering::SeqCst) as i64).sum()
    }

    /// `127.0.0.1:PORT`, `127.0.0.1_PORT` (stat names) and `"port_value":PORT` (compact
    /// JSON) with placeholders for known ports.
    fn normalize(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (port, name) in &self.port_names {
            for prefix in ["127.0.0.1:", "127.0.0.1_", "\"port_value\":"] {
                let from = format!("{prefix}{port}");
                let mut result = String::with_capacity(out.len());
                let mut rest = out.as_str();
                while let Some(i) = rest.find(&from) {
                    let after = &rest[i + from.len()..];
                    // Only a whole port number: 127.0.0.1:80 must not match 127.0.0.1:8080.
                    if after.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                        result.push_str(&rest[..i + from.len()]);
                    } else {
                        result.push_str(&rest[..i]);
                        result.push_str(&format!("{prefix}{name}"));
                    }
                    rest = after;
                }
                result.push_str(rest);
                out = result;
            }
        }
        out
    }
}

/// Runs `case` through `bin`.
pub fn run(case: &Case, kind: Kind, bin: &Path) -> Observed {
    let dir = TempDir::new(&format!("{}-{}", case.name, kind.name()));
    let mut env = Environment::new(case, &dir.0);
    let mut obs = Observed::default();
    let config_text = match fill(&case.bootstrap, &env.vars) {
        Ok(t) => t,
        Err(e) => {
            obs.startup = Err(format!("case error: {e}"));
            return obs;
        }
    };
    let config = dir.0.join("config.yaml");
    std::fs::write(&config, &config_text).expect("write config");

    if let Some(args) = &case.command {
        run_command(args, kind, bin, &config, &dir.0, &mut env, &mut obs);
        return obs;
    }
    let requests: Result<Vec<(String, crate::case::Request)>, String> =
        case.planned().into_iter().map(|p| Ok((p.label, p.request.filled(&env.vars)?))).collect();
    let requests = match requests {
        Ok(r) => r,
        Err(e) => {
            obs.startup = Err(format!("case error: {e}"));
            return obs;
        }
    };
    let proxy = match Proxy::start(kind, bin, &config, &dir.0) {
        Ok(p) => p,
        Err(e) => {
            obs.startup = Err(e);
            return obs;
        }
    };
    obs.startup = Ok(());
    let listeners = proxy.listeners();
    for (name, addr) in &listeners {
        env.port_names.push((addr.port(), format!("{{{{LISTENER:{name}}}}}")));
    }
    env.port_names.push((proxy.admin.port(), "{{ADMIN_PORT}}".into()));

    let access_log = case.uses("{{ACCESS_LOG}}").then(|| AccessLog::new(&env));
    let mut session =
        Session { proxy: &proxy, env: &env, listeners, obs, last: None, access_log, signal_during_next: None };
    for (label, r) in &requests {
        session.send(label, r);
    }
    let mut obs = session.finish();
    read_admin(&case.admin, &proxy, &env, &mut obs);
    drop(proxy);
    obs
}

/// A `command` case: runs `bin` with the case's arguments and keeps its exit code
/// and output.
fn run_command(
    args: &[String],
    kind: Kind,
    bin: &Path,
    config: &Path,
    dir: &Path,
    env: &mut Environment,
    obs: &mut Observed,
) {
    env.vars.insert("CONFIG".into(), config.display().to_string());
    let base_id = if kind == Kind::Envoy { unique_base_id().to_string() } else { "1".into() };
    env.vars.insert("BASE_ID".into(), base_id);
    let args = match args.iter().map(|a| fill(a, &env.vars)).collect::<Result<Vec<String>, String>>() {
        Ok(a) => a,
        Err(e) => {
            obs.startup = Err(format!("case error: {e}"));
            return;
        }
    };
    obs.command = Some(match Command::new(bin).args(&args).current_dir(dir).stdin(Stdio::null()).output() {
        Ok(out) => (
            out.status.code(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        ),
        Err(e) => (None, e.to_string()),
    });
    obs.startup = Ok(());
}

/// The requests of one run against a started proxy.
struct Session<'a> {
    proxy: &'a Proxy,
    env: &'a Environment,
    listeners: Vec<(String, SocketAddr)>,
    obs: Observed,
    /// The client connection of the last HTTP request, for a request with `reuse`.
    last: Option<Conn>,
    access_log: Option<AccessLog>,
    /// The index in `obs.responses` of a `signal` step with `during_next`.
    signal_during_next: Option<usize>,
}

impl Session<'_> {
    /// Sends one planned request (or admin POST, or signal) and records what happened.
    fn send(&mut self, label: &str, r: &crate::case::Request) {
        let addr = match &r.listener {
            Some(name) => self.listeners.iter().find(|(n, _)| n == name).map(|(_, a)| *a),
            None => self.listeners.first().map(|(_, a)| *a),
        };
        let outcome = if let Some(path) = &r.admin_post {
            self.admin_post(label, path)
        } else if let Some(want) = &r.wait_stat {
            Outcome::Waited(self.proxy.wait_stat(want))
        } else if r.signal.is_some() && r.during_next {
            self.signal_during_next = Some(self.obs.responses.len());
            Outcome::Signalled(String::new()) // filled in with the next request
        } else if r.signal.is_some() {
            Outcome::Signalled(self.proxy.terminate(addr))
        } else if let Some(data) = &r.tcp {
            match addr {
                None => Outcome::Failed(no_listener(r)),
                Some(addr) => {
                    let mut bytes: Vec<u8> =
                        if r.latin1 { data.chars().map(|c| c as u8).collect() } else { data.as_bytes().to_vec() };
                    bytes.resize(bytes.len() + r.pad, b'A');
                    tcp_exchange(addr, &bytes, r.half_close_after_ms).map_or_else(Outcome::Failed, Outcome::Tcp)
                }
            }
        } else {
            self.http(label, r, addr)
        };
        if matches!(outcome, Outcome::HungUp(_)) {
            self.last = None; // closed by the client
        }
        self.obs.responses.push((label.to_string(), outcome));
        if self.access_log.is_some() {
            self.read_access_log(label, r.tcp.is_some());
        }
    }

    fn admin_post(&mut self, label: &str, path: &str) -> Outcome {
        let post = crate::case::Request {
            method: Some("POST".into()),
            path: Some(path.to_string()),
            headers: vec!["Connection: close".into()],
            ..Default::default()
        };
        match Conn::connect(self.proxy.admin) {
            Ok(mut conn) => record(&mut self.obs, label, exchange(&mut conn, &post, &|_| Ok(()))),
            Err(e) => Outcome::Failed(e),
        }
    }

    /// An HTTP request on a new connection or the kept one (`reuse`).
    fn http(&mut self, label: &str, r: &crate::case::Request, addr: Option<SocketAddr>) -> Outcome {
        if r.http2 {
            let Some(addr) = addr else { return Outcome::Failed(no_listener(r)) };
            return record(&mut self.obs, label, http2_exchange(addr, r));
        }
        if r.https {
            let Some(addr) = addr else { return Outcome::Failed(no_listener(r)) };
            let Some(tls) = &self.env.tls else {
                return Outcome::Failed(Failure::new(FailKind::Other, "https without {{TLS_CA}} in the case"));
            };
            return record(&mut self.obs, label, https_exchange(addr, r, tls));
        }
        let (proxy, env) = (self.proxy, self.env);
        if r.hang_up_after.is_some() {
            // The upstream request or bytes to wait for must be this one's.
            let _ = settle(proxy, env, usize::from(self.last.is_some()));
        }
        let rx_before = if r.hang_up_after.is_some() { rx_bytes(&proxy.stats()) } else { 0 };
        let conn = match (r.reuse, addr) {
            (true, _) => self.last.take().ok_or_else(|| Failure::new(FailKind::Other, "no connection to reuse")),
            (false, None) => Err(no_listener(r)),
            (false, Some(addr)) => Conn::connect(addr),
        };
        let mut conn = match conn {
            Ok(conn) => conn,
            Err(e) => return Outcome::Failed(e),
        };
        let signal = self.signal_during_next.take();
        let (exchanged, signalled) = std::thread::scope(|s| {
            // SIGTERM once this request is active upstream, while it is in flight.
            let signaller = signal.map(|_| {
                s.spawn(|| match upstream_request_active(proxy) {
                    Ok(()) => proxy.terminate(addr),
                    Err(e) => format!("not signalled: {e}"),
                })
            });
            let exchanged = exchange(&mut conn, r, &|sent| hang_up_ready(proxy, r, rx_before, sent));
            (exchanged, signaller.map(|t| t.join().unwrap_or_else(|_| "signaller panicked".into())))
        });
        if let (Some(i), Some(seen)) = (signal, signalled) {
            self.obs.responses[i].1 = Outcome::Signalled(seen);
        }
        let mut outcome = record(&mut self.obs, label, exchanged);
        if r.reuse {
            outcome = reset_after_close_is_close(outcome);
        }
        self.last = Some(conn);
        outcome
    }

    /// The access-log lines written for the request just sent: those there once
    /// the proxy is done with it.
    fn read_access_log(&mut self, label: &str, tcp: bool) {
        let settled = settle(self.proxy, self.env, usize::from(self.last.is_some()));
        let Some(log) = &mut self.access_log else { return };
        let mut lines = log.new_lines(self.env);
        // Envoy's tcp_proxy writes its line as the connection is deleted, after
        // the stats say it closed: a TCP exchange waits a little for its lines,
        // until a poll finds no more (a connection's loggers write one each).
        let deadline = Instant::now() + Duration::from_millis(1000);
        while tcp && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            let more = log.new_lines(self.env);
            if more.is_empty() && !lines.is_empty() {
                break;
            }
            lines.extend(more);
        }
        if let Err(busy) = settled {
            lines.push(format!("(read while the proxy was still busy: {busy})"));
        }
        self.obs.access_log.insert(label.to_string(), lines);
    }

    /// Closes the kept client connection and waits for the proxy to settle.
    fn finish(mut self) -> Observed {
        drop(self.last.take());
        self.obs.settled = match settle(self.proxy, self.env, 0) {
            Ok(()) => "idle".into(),
            Err(busy) => format!("still busy after {SETTLE_TIMEOUT:?}: {busy}"),
        };
        self.obs
    }
}

/// The case's admin checks, read once the proxy has settled (every stream's stats
/// are counted by then).
fn read_admin(admin: &crate::case::AdminChecks, proxy: &Proxy, env: &Environment, obs: &mut Observed) {
    if admin.ready {
        obs.ready = proxy.admin_get("/ready").ok();
    }
    for path in &admin.pages {
        let page = match proxy.admin_get(path) {
            // JSON is compared as data: compact, keys sorted.
            Ok((status, body)) => match serde_json::from_str::<serde_json::Value>(&body) {
                Ok(json) if path == "/certs" => format!("{status} {}", env.normalize(&certs_page(json, env))),
                Ok(json) => format!("{status} {}", env.normalize(&json.to_string())),
                Err(_) => format!("{status} {}", env.normalize(&body)),
            },
            Err(e) => format!("no response ({e})"),
        };
        obs.pages.insert(path.clone(), page);
    }
    if !admin.stats.is_empty() {
        obs.stats = proxy.stats().into_iter().map(|(k, v)| (env.normalize(&k), v)).collect();
    }
    if !admin.clusters.is_empty() {
        let body = proxy.admin_get("/clusters").map(|r| r.1).unwrap_or_default();
        obs.clusters =
            body.lines().filter_map(|l| l.rsplit_once("::")).map(|(k, v)| (env.normalize(k), v.to_string())).collect();
    }
    if !admin.server_info.is_empty() {
        let body = proxy.admin_get("/server_info").map(|r| r.1).unwrap_or_default();
        obs.server_info = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    }
    if admin.prometheus {
        let get = || env.normalize(&proxy.admin_get("/stats/prometheus").map(|r| r.1).unwrap_or_default());
        obs.prometheus = Some(crate::prometheus::scrape(get));
    }
}

/// `/certs` as comparable data: the run's scratch directory (each proxy has its
/// own) as `{{TMP}}`, and the contexts sorted, as Envoy lists them from a hash
/// set in an order that varies from run to run.
fn certs_page(json: serde_json::Value, env: &Environment) -> String {
    let tmp = env.vars.get("TMP").cloned().unwrap_or_default();
    let text = |v: &serde_json::Value| match tmp.as_str() {
        "" => v.to_string(),
        dir => v.to_string().replace(dir, "{{TMP}}"),
    };
    let Some(contexts) = json.get("certificates").and_then(|c| c.as_array()) else { return text(&json) };
    let mut contexts: Vec<String> = contexts.iter().map(text).collect();
    contexts.sort();
    format!("{{\"certificates\":[{}]}}", contexts.join(","))
}

/// On a reused connection the proxy may have closed its end (FIN) just before the
/// request went out; the request then draws a reset from the proxy's kernel, and
/// whether the client's read sees the FIN or that reset first is a race of the
/// loopback, not the proxy's choice. Both mean "closed", so both count as closed.
fn reset_after_close_is_close(outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Failed(f) if f.kind == FailKind::Reset => {
            Outcome::Failed(Failure::new(FailKind::Closed, format!("{} (after the proxy's close)", f.detail)))
        }
        other => other,
    }
}

fn no_listener(r: &crate::case::Request) -> Failure {
    Failure::new(FailKind::Connect, format!("no listener {:?} in /listeners", r.listener))
}

/// Keeps an exchange's interim statuses and status line in `obs`; returns its outcome.
fn record(obs: &mut Observed, label: &str, (interim, outcome, status_line): Exchanged) -> Outcome {
    if !interim.is_empty() {
        obs.interim.insert(label.to_string(), interim.join(","));
    }
    if let Some(line) = status_line {
        obs.status_lines.insert(label.to_string(), line);
    }
    outcome
}

/// Interim statuses, the outcome, and the final status line when there was one.
type Exchanged = (Vec<String>, Outcome, Option<String>);

/// Longest wait for the proxy to finish with the requests sent so far.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits until the proxy has finished with everything sent so far -- the readiness
/// signal for reading stats and access logs: no request active downstream or
/// upstream (nor pending), no access-log bytes waiting to be written, at most
/// `held` client connections open (those the suite keeps for `reuse`), and as many
/// upstream connections open as the upstreams themselves have (so a close by either
/// side has been seen by the other). `Err` lists what was still busy at the deadline.
fn settle(proxy: &Proxy, env: &Environment, held: usize) -> Result<(), String> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let stats = proxy.stats();
        // No admin endpoint: the proxy is going away (a signal step). Its last
        // access-log lines are written as it exits, so that is what to wait for.
        if stats.is_empty() && proxy.admin_get("/ready").is_err() {
            while !proxy.exited() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            return Ok(());
        }
        let busy = busy(&stats, proxy.admin.port(), held, env.upstream_open());
        if busy.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(busy.join(", "));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// For a `hang_up_after` request that sent `sent` bytes: waits until the proxy has
/// read them all (`bytes_read`; `rx_before` is its byte count before) or has the
/// request active upstream (`upstream_request`).
fn hang_up_ready(proxy: &Proxy, r: &crate::case::Request, rx_before: i64, sent: usize) -> Result<(), String> {
    if r.hang_up_after.as_deref() != Some("bytes_read") {
        return upstream_request_active(proxy);
    }
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while rx_bytes(&proxy.stats()) < rx_before + sent as i64 {
        if Instant::now() > deadline {
            return Err(format!("the proxy did not read {sent} bytes within {SETTLE_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Bytes the proxy has read from HTTP clients (`http.*.downstream_cx_rx_bytes_total`,
/// not the admin endpoint's).
fn rx_bytes(stats: &BTreeMap<String, i64>) -> i64 {
    stats
        .iter()
        .filter(|(name, _)| {
            name.starts_with("http.")
                && !name.starts_with("http.admin.")
                && name.ends_with(".downstream_cx_rx_bytes_total")
        })
        .map(|(_, v)| v)
        .sum()
}

/// Waits until the proxy has a request active upstream (sent, or being sent, to an
/// upstream connection), bounded by `SETTLE_TIMEOUT`.
fn upstream_request_active(proxy: &Proxy) -> Result<(), String> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let stats = proxy.stats();
        if stats.iter().any(|(name, &v)| name.starts_with("cluster.") && name.ends_with(".upstream_rq_active") && v > 0)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("no upstream request within {SETTLE_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What in one `/stats` read shows the proxy still at work (see `settle`).
fn busy(stats: &BTreeMap<String, i64>, admin_port: u16, held: usize, upstream_open: i64) -> Vec<String> {
    let admin = [format!("_{admin_port}."), "listener.admin.".into(), "http.admin.".into()];
    let mut busy = Vec::new();
    let (mut downstream_cx, mut upstream_cx) = (0, 0);
    // A stats_matcher may reject the gauges; a missing one is no signal, not "0 open".
    let mut upstream_gauge = false;
    for (name, &value) in stats {
        // The management server's stream (`{{XDS_PORT}}`'s cluster `xds`) stays
        // open for the run: Envoy's counts on the cluster, Courier's does not.
        if admin.iter().any(|a| name.contains(a.as_str())) || name.starts_with("cluster.xds.") {
            continue;
        }
        let active = [".downstream_rq_active", ".upstream_rq_active", ".upstream_rq_pending_active"];
        if (active.iter().any(|a| name.ends_with(a)) || name == "filesystem.write_total_buffered") && value != 0 {
            busy.push(format!("{name}={value}"));
        }
        // Per listener, not per worker (listener.<addr>.worker_<n>.*).
        if name.starts_with("listener.") && name.ends_with(".downstream_cx_active") && !name.contains(".worker_") {
            downstream_cx += value;
        }
        if name.starts_with("cluster.") && name.ends_with(".upstream_cx_active") {
            upstream_cx += value;
            upstream_gauge = true;
        }
    }
    if downstream_cx > held as i64 {
        busy.push(format!("{downstream_cx} client connections open, {held} held by the client"));
    }
    if upstream_gauge && upstream_cx != upstream_open {
        busy.push(format!("{upstream_cx} upstream connections open, {upstream_open} at the upstreams"));
    }
    busy
}

/// The case's access-log file (`{{ACCESS_LOG}}`), read as it grows.
struct AccessLog {
    path: PathBuf,
    seen: usize,
}

impl AccessLog {
    fn new(env: &Environment) -> AccessLog {
        AccessLog { path: PathBuf::from(&env.vars["ACCESS_LOG"]), seen: 0 }
    }

    /// The lines written since the last call, normalized.
    fn new_lines(&mut self, env: &Environment) -> Vec<String> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let lines: Vec<String> = text.lines().skip(self.seen).map(|l| normalize_access_line(env, l)).collect();
        self.seen += lines.len();
        lines
    }
}

/// An access-log line in Envoy's default format with what differs from run to run
/// replaced: START_TIME → `<time>`, DURATION and the upstream service time →
/// `<ms>`, the x-request-id UUID → `<uuid>`, ports → placeholders. Each is replaced
/// only when it has its format, so a malformed field still shows. A line in another
/// format only has its ports replaced.
fn normalize_access_line(env: &Environment, line: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(concat!(
            r#"^\[(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\] "(?P<req>[^"]*)" (?P<code>\S+) (?P<flags>\S+) "#,
            r#"(?P<rx>\S+) (?P<tx>\S+) (?P<dur>\d+) (?P<ust>\d+|-) "(?P<xff>[^"]*)" "(?P<ua>[^"]*)" "#,
            r#""(?P<rid>[^"]*)" "(?P<auth>[^"]*)" "(?P<host>[^"]*)"$"#
        ))
        .unwrap()
    });
    let line = env.normalize(line);
    let Some(c) = re.captures(&line) else { return mask_event_timestamp(&line) };
    let uuid = Regex::new(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$").unwrap();
    let rid = if uuid.is_match(&c["rid"]) { "<uuid>" } else { &c["rid"] };
    let ust = if &c["ust"] == "-" { "-" } else { "<ms>" };
    format!(
        "[<time>] \"{}\" {} {} {} {} <ms> {ust} \"{}\" \"{}\" \"{rid}\" \"{}\" \"{}\"",
        &c["req"], &c["code"], &c["flags"], &c["rx"], &c["tx"], &c["xff"], &c["ua"], &c["auth"], &c["host"]
    )
}

/// A health check event line (a `HealthCheckEvent` as JSON) with its
/// `"timestamp"` replaced by `<time>`, when it has one in protobuf JSON's form.
fn mask_event_timestamp(line: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r#"^(\{"health_checker_type":.*"timestamp":")\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z""#).unwrap()
    });
    re.replace(line, "${1}<time>\"").into_owned()
}

/// Header (or trailer) fields as read: name lower-cased, value.
type Headers = Vec<(String, String)>;

/// A client connection; unlike `Client`, it reports interim (1xx) responses, the
/// status line, and how an exchange failed.
struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

/// A final response and its status line (`HTTP/1.1 200 OK`).
pub struct Reply {
    pub status_line: String,
    pub resp: HttpResponse,
}

impl Conn {
    fn connect(addr: SocketAddr) -> Result<Conn, Failure> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| Failure::io("connect", &e))?;
        let setup = |stream: &TcpStream| -> std::io::Result<BufReader<TcpStream>> {
            stream.set_read_timeout(Some(IO_TIMEOUT))?;
            Ok(BufReader::new(stream.try_clone()?))
        };
        let reader = setup(&stream).map_err(|e| Failure::io("setup", &e))?;
        Ok(Conn { stream, reader })
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.stream.write_all(bytes).map_err(|e| Failure::io("write", &e))
    }

    fn line(&mut self) -> Result<String, Failure> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err(Failure::new(FailKind::Closed, "connection closed")),
            Ok(_) => Ok(line.trim_end_matches(['\r', '\n']).to_string()),
            Err(e) => Err(Failure::io("read", &e)),
        }
    }

    fn read_exact(&mut self, n: usize) -> Result<Vec<u8>, Failure> {
        let mut buf = vec![0u8; n];
        self.reader.read_exact(&mut buf).map_err(|e| Failure::io("read body", &e))?;
        Ok(buf)
    }

    /// A response's status line and headers; the body is left unread.
    fn read_head(&mut self) -> Result<Reply, Failure> {
        let status_line = self.line()?;
        let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        let status = status.ok_or(Failure::new(FailKind::Malformed, format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let h = self.line()?;
            if h.is_empty() {
                return Ok(Reply { status_line, resp: HttpResponse { status, headers, body: Vec::new() } });
            }
            let (k, v) = h.split_once(':').ok_or(Failure::new(FailKind::Malformed, format!("bad header {h:?}")))?;
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }

    /// A chunked body, and its trailers (name lower-cased, value).
    fn read_chunked(&mut self) -> Result<(Vec<u8>, Headers), Failure> {
        let mut body = Vec::new();
        loop {
            let size = self.line()?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| Failure::new(FailKind::Malformed, format!("bad chunk size {size:?}")))?;
            if n == 0 {
                let mut trailers = Vec::new();
                loop {
                    let t = self.line()?;
                    if t.is_empty() {
                        return Ok((body, trailers));
                    }
                    let (k, v) = t.split_once(':').unwrap_or((&t, ""));
                    trailers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            body.extend_from_slice(&self.read_exact(n)?);
            self.read_exact(2)?;
        }
    }

    fn read_body(&mut self, resp: &mut HttpResponse, head: bool) -> Result<(), Failure> {
        if head || resp.status == 204 || resp.status == 304 {
            return Ok(());
        }
        if resp.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            let (body, trailers) = self.read_chunked()?;
            resp.body = body;
            // Compared with the headers, marked as trailers (as HTTP/2 responses' are).
            resp.headers.extend(trailers.into_iter().map(|(k, v)| (format!("trailer:{k}"), v)));
        } else if let Some(len) = resp.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
            resp.body = self.read_exact(len)?;
        } else {
            self.reader.read_to_end(&mut resp.body).map_err(|e| Failure::io("read body", &e))?;
        }
        Ok(())
    }

    /// What the proxy had sent by now, without waiting: for a client about to hang up.
    fn peek_now(&mut self) -> String {
        if !self.reader.buffer().is_empty() {
            return "answered before the hang-up".into();
        }
        if self.stream.set_nonblocking(true).is_err() {
            return "unknown".into();
        }
        let mut buf = [0u8; 64];
        let seen = match self.stream.peek(&mut buf) {
            Ok(0) => "closed by the proxy before the hang-up".to_string(),
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                format!("answered before the hang-up: {}", text.lines().next().unwrap_or(""))
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => "nothing received before the hang-up".into(),
            Err(e) => format!("{:?} before the hang-up", Failure::io("read", &e).kind),
        };
        let _ = self.stream.set_nonblocking(false);
        seen
    }
}

/// Sends one HTTP request on `conn` and reads the response: the interim statuses
/// received first, and the outcome with the final status line.
/// `hang_up_ready(sent)` waits, for `hang_up_after`, until the proxy has taken up
/// the `sent` bytes as asked.
fn exchange(
    conn: &mut Conn,
    r: &crate::case::Request,
    hang_up_ready: &dyn Fn(usize) -> Result<(), String>,
) -> Exchanged {
    let (raw, head) = match &r.raw {
        // Checked at load: every character fits a byte.
        Some(raw) if r.latin1 => (raw.chars().map(|c| c as u8).collect(), raw.starts_with("HEAD ")),
        Some(raw) => (raw.as_bytes().to_vec(), raw.starts_with("HEAD ")),
        None => {
            let method = r.method.as_deref().unwrap_or("GET");
            let pairs = r.header_pairs();
            let headers: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let body = r.body_bytes();
            (Client::encode_request(method, r.path.as_deref().unwrap_or("/"), &headers, &body), method == "HEAD")
        }
    };
    if r.hangs_up() {
        if let Err(e) = conn.send(&raw) {
            return (Vec::new(), Outcome::Failed(e), None);
        }
        let mut seen = String::new();
        if r.hang_up_after.is_some() {
            if let Err(e) = hang_up_ready(raw.len()) {
                seen = format!("{e}; ");
            }
        }
        std::thread::sleep(Duration::from_millis(r.hang_up_ms.unwrap_or(0)));
        seen.push_str(&conn.peek_now());
        let _ = conn.stream.shutdown(Shutdown::Both);
        return (Vec::new(), Outcome::HungUp(seen), None);
    }
    if let Some(ms) = r.read_timeout_ms {
        if let Err(e) = conn.stream.set_read_timeout(Some(Duration::from_millis(ms))) {
            return (Vec::new(), Outcome::Failed(Failure::io("setup", &e)), None);
        }
    }
    let mut interim = Vec::new();
    let mut pending_body = r.continue_body.as_deref();
    let result = (|| {
        conn.send(&raw)?;
        loop {
            let mut reply = conn.read_head()?;
            if (100..200).contains(&reply.resp.status) && reply.resp.status != 101 {
                interim.push(reply.resp.status.to_string());
                if let Some(body) = pending_body.take() {
                    conn.send(body.as_bytes())?;
                }
                continue;
            }
            conn.read_body(&mut reply.resp, head)?;
            return Ok(reply);
        }
    })();
    match result {
        Ok(reply) => (interim, Outcome::Http(reply.resp), Some(reply.status_line)),
        Err(e) => (interim, Outcome::Failed(e), None),
    }
}

/// One request by an HTTP/2 client on a new connection: the `host` header is its
/// `:authority` (default `example.com`), and the status line reads `HTTP/2 <code>`.
fn http2_exchange(addr: SocketAddr, r: &crate::case::Request) -> Exchanged {
    let mut request = crate::shared_h2::H2Request {
        method: r.method.clone().unwrap_or_else(|| "GET".into()),
        path: r.path.clone().unwrap_or_else(|| "/".into()),
        body: r.body_bytes(),
        protocol: r.h2_protocol.clone(),
        ..Default::default()
    };
    for (k, v) in r.header_pairs() {
        if k.eq_ignore_ascii_case("host") {
            request.authority = Some(v);
        } else {
            request.headers.push((k.to_ascii_lowercase(), v));
        }
    }
    match crate::shared_h2::h2_request(addr, &request) {
        Ok(resp) => {
            let line = format!("HTTP/2 {}", resp.status);
            let mut headers = resp.headers;
            // Trailers are compared with the headers, marked as such.
            headers.extend(resp.trailers.into_iter().map(|(k, v)| (format!("trailer:{k}"), v)));
            let resp = HttpResponse { status: resp.status, headers, body: resp.body };
            (Vec::new(), Outcome::Http(resp), Some(line))
        }
        Err(e) => (Vec::new(), Outcome::Failed(Failure::new(FailKind::Other, e)), None),
    }
}

/// One HTTP/1.1 request over TLS on a new connection (SNI `server.test`), read
/// until the proxy closes it.
fn https_exchange(addr: SocketAddr, r: &crate::case::Request, tls: &(String, crate::shared_tls::Leaf)) -> Exchanged {
    let failed = |f: Failure| (Vec::new(), Outcome::Failed(f), None);
    let config = crate::shared_tls::client_config(&tls.0, r.client_cert.then_some(&tls.1), &[]);
    let name = rustls::pki_types::ServerName::try_from("server.test").expect("a DNS name");
    let conn = match rustls::ClientConnection::new(config, name) {
        Ok(c) => c,
        Err(e) => return failed(Failure::new(FailKind::Other, e.to_string())),
    };
    let tcp = match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
        Ok(s) => s,
        Err(e) => return failed(Failure::io("connect", &e)),
    };
    if let Err(e) = tcp.set_read_timeout(Some(IO_TIMEOUT)) {
        return failed(Failure::io("setup", &e));
    }
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let pairs = r.header_pairs();
    let headers: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let method = r.method.as_deref().unwrap_or("GET");
    let body = r.body_bytes();
    let raw = Client::encode_request(method, r.path.as_deref().unwrap_or("/"), &headers, &body);
    if let Err(e) = stream.write_all(&raw) {
        return failed(Failure::io("write", &e));
    }
    let mut out = Vec::new();
    if let Err(e) = stream.read_to_end(&mut out) {
        if out.is_empty() {
            return failed(Failure::io("read", &e));
        }
    }
    let Some(head_end) = out.windows(4).position(|w| w == b"\r\n\r\n") else {
        return failed(Failure::new(FailKind::Closed, format!("no response head in {} bytes", out.len())));
    };
    let head = String::from_utf8_lossy(&out[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_string();
    let status = status_line.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let resp = HttpResponse { status, headers, body: out[head_end + 4..].to_vec() };
    (Vec::new(), Outcome::Http(resp), Some(status_line))
}

/// Writes `data`, half-closes (`half_close_after_ms` later), reads until EOF.
fn tcp_exchange(addr: SocketAddr, data: &[u8], half_close_after_ms: Option<u64>) -> Result<Vec<u8>, Failure> {
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| Failure::io("connect", &e))?;
    s.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| Failure::io("setup", &e))?;
    s.write_all(data).map_err(|e| Failure::io("write", &e))?;
    if let Some(ms) = half_close_after_ms {
        std::thread::sleep(Duration::from_millis(ms));
    }
    s.shutdown(Shutdown::Write).map_err(|e| Failure::io("shutdown", &e))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| Failure::io("read", &e))?;
    Ok(out)
}

/// The secrets `server_cert`, `client_cert` and `test_ca` (the compat
/// certificates' files) on the management server.
fn push_compat_secrets(xds: &crate::shared_xds::XdsServer, vars: &BTreeMap<String, String>) {
    use envoy_types::pb::envoy::config::core::v3::{data_source::Specifier, DataSource};
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
        secret::Type, CertificateValidationContext, Secret, TlsCertificate,
    };
    use prost::Message;
    let file = |key: &str| {
        let path = vars.get(key).cloned().unwrap_or_default();
        Some(DataSource { specifier: Some(Specifier::Filename(path)), ..Default::default() })
    };
    let certificate = |name: &str, cert: &str, key: &str| Secret {
        name: name.into(),
        r#type: Some(Type::TlsCertificate(TlsCertificate {
            certificate_chain: file(cert),
            private_key: file(key),
            ..Default::default()
        })),
    };
    let ca = Secret {
        name: "test_ca".into(),
        r#type: Some(Type::ValidationContext(CertificateValidationContext {
            trusted_ca: file("TLS_CA"),
            ..Default::default()
        })),
    };
    let secrets = [
        certificate("server_cert", "TLS_SERVER_CERT", "TLS_SERVER_KEY"),
        certificate("client_cert", "TLS_CLIENT_CERT", "TLS_CLIENT_KEY"),
        ca,
    ];
    let type_url = crate::shared_xds::SECRET_TYPE;
    let resources = secrets
        .iter()
        .map(|s| envoy_types::pb::google::protobuf::Any { type_url: type_url.into(), value: s.encode_to_vec() })
        .collect();
    xds.push(type_url, "s1", resources);
}
