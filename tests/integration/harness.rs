//! Test harness: runs the real `courier` binary on a config, real upstream servers
//! on 127.0.0.1, and a tiny HTTP client for the admin endpoint. Everything binds
//! port 0, is bounded in time, and is stopped (by pid) when dropped.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use crate::shared_net::{assert_closes_silently, Upstream, IO_TIMEOUT};

pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// A unique scratch directory under the target dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "courier-test-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn file(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn courier_bin() -> &'static str {
    env!("CARGO_BIN_EXE_courier")
}

/// Runs `courier --mode validate` on a YAML config; returns (exit ok, stdout+stderr).
pub fn validate(yaml: &str) -> (bool, String) {
    let dir = TempDir::new("validate");
    let path = dir.file("config.yaml", yaml);
    let out = Command::new(courier_bin()).args(["--mode", "validate", "-c"]).arg(&path).output().expect("run courier");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// A running Courier process.
pub struct Courier {
    child: Option<Child>,
    pub admin: SocketAddr,
    _dir: TempDir,
    pub stderr_path: PathBuf,
}

impl Courier {
    /// Starts Courier on `yaml` (admin on 127.0.0.1:0 is added when absent) and
    /// waits until `/ready` says LIVE.
    pub fn start(yaml: &str, concurrency: usize) -> Courier {
        Self::start_with(yaml, concurrency, &[], &[])
    }

    pub fn start_with(yaml: &str, concurrency: usize, extra_args: &[&str], env: &[(&str, &str)]) -> Courier {
        Self::start_full(yaml, concurrency, extra_args, env, None)
    }

    /// `start_with`, Courier's stdout going to `stdout` (when given) instead of
    /// being discarded, for tests of what it writes there.
    pub fn start_full(
        yaml: &str,
        concurrency: usize,
        extra_args: &[&str],
        env: &[(&str, &str)],
        stdout: Option<&std::path::Path>,
    ) -> Courier {
        let dir = TempDir::new("run");
        let yaml = if yaml.contains("admin:") {
            yaml.to_string()
        } else {
            format!("admin:\n  address:\n    socket_address: {{ address: 127.0.0.1, port_value: 0 }}\n{yaml}")
        };
        let config = dir.file("config.yaml", &yaml);
        let admin_file = dir.0.join("admin_address");
        let stderr_path = dir.0.join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut cmd = Command::new(courier_bin());
        cmd.arg("-c")
            .arg(&config)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .args(["--concurrency", &concurrency.to_string(), "-l", "debug"])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(match stdout {
                Some(path) => Stdio::from(std::fs::File::create(path).expect("stdout file")),
                None => Stdio::null(),
            })
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn courier");
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let admin = loop {
            if let Ok(text) = std::fs::read_to_string(&admin_file) {
                if let Ok(addr) = text.trim().parse() {
                    break addr;
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "courier exited during start-up ({status}): {}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "courier did not write its admin address in time");
            std::thread::sleep(Duration::from_millis(10));
        };
        let c = Courier { child: Some(child), admin, _dir: dir, stderr_path };
        c.wait_until(|c| c.admin_get("/ready").0 == 200, "server LIVE");
        c
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Polls `cond` (a readiness signal such as a stat or endpoint) until it holds.
    pub fn wait_until(&self, cond: impl Fn(&Courier) -> bool, what: &str) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while !cond(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn admin_get(&self, path: &str) -> (u16, String) {
        http_request(self.admin, "GET", path)
    }

    pub fn admin_post(&self, path: &str) -> (u16, String) {
        http_request(self.admin, "POST", path)
    }

    /// The bound address of listener `name`, from `/listeners`.
    pub fn listener(&self, name: &str) -> SocketAddr {
        let (_, body) = self.admin_get("/listeners");
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}::")))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("listener {name} not in /listeners: {body}"))
    }

    /// A counter or gauge from `/stats` (None if absent).
    pub fn stat(&self, name: &str) -> Option<i64> {
        let (_, body) = self.admin_get(&format!("/stats?filter=^{}$", name.replace('.', "\\.")));
        body.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).and_then(|v| v.trim().parse().ok()))
    }

    pub fn wait_stat(&self, name: &str, pred: impl Fn(i64) -> bool) {
        self.wait_until(|c| c.stat(name).is_some_and(&pred), name);
    }

    pub fn send_signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of our own child process.
        unsafe {
            libc::kill(self.pid() as i32, sig);
        }
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("child");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "courier did not exit in time");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Resident memory of the process in bytes.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    }
}

impl Drop for Courier {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A minimal HTTP/1.1 client: one request per connection; returns (status, body).
pub fn http_request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let (status, _, body) = http_request_full(addr, method, path);
    (status, body)
}

/// Like `http_request`, also returning the raw header block.
pub fn http_request_full(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect admin");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    write!(s, "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        .expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    (status, head.to_string(), body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// A free port for a listener that needs a fixed one (bound, then released: a
/// process started in parallel could take it first, which is rare).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A port with nothing listening on it: bound and never released, so that no
/// proxy or upstream started in parallel is given it (nextest runs each test in
/// its own process, which frees it on exit).
pub fn closed_port() -> u16 {
    let socket = crate::shared_net::dead_socket();
    let port = socket.local_addr().ok().and_then(|a| a.as_socket()).map_or(0, |a| a.port());
    std::mem::forget(socket);
    port
}

/// YAML for a STATIC cluster with the given endpoints.
pub fn static_cluster(name: &str, ports: &[u16]) -> String {
    let endpoints: String = ports
        .iter()
        .map(|p| {
            format!(
                "        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {p} }} }} }}\n"
            )
        })
        .collect();
    format!(
        "  - name: {name}\n    type: STATIC\n    connect_timeout: 1s\n    load_assignment:\n      cluster_name: {name}\n      endpoints:\n      - lb_endpoints:\n{endpoints}"
    )
}

/// YAML for a listener on 127.0.0.1:0 with a tcp_proxy to `cluster`.
pub fn tcp_listener(name: &str, stat_prefix: &str, cluster: &str, extra_tcp_proxy: &str) -> String {
    format!(
        "  - name: {name}\n    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}\n    filter_chains:\n    - filters:\n      - name: envoy.filters.network.tcp_proxy\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n          stat_prefix: {stat_prefix}\n          cluster: {cluster}\n{extra_tcp_proxy}"
    )
}

/// Replaces `dir/name` as a config system does: a new file beside it, renamed
/// over it (what Envoy's file watches react to).
pub fn swap_in(dir: &Path, name: &str, contents: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, contents).expect("write new file");
    std::fs::rename(&tmp, dir.join(name)).expect("rename over");
}

/// A whole static config from listener and cluster YAML fragments.
pub fn config(listeners: &[String], clusters: &[String]) -> String {
    format!("static_resources:\n  listeners:\n{}  clusters:\n{}", listeners.concat(), clusters.concat())
}

/// Connects with I/O timeouts set.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s
}

/// Polls `done` (a readiness signal: a stat, an endpoint, what a request gets)
/// until it holds, for at most `IO_TIMEOUT`.
/// The config of a `/config_dump` whose `@type` is `envoy.admin.v3.<kind>`
/// (`Null` when it has none): their places move with what the config has.
pub fn dumped_config<'a>(dump: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
    let wanted = format!("type.googleapis.com/envoy.admin.v3.{kind}");
    dump["configs"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["@type"] == wanted.as_str()))
        .unwrap_or(&serde_json::Value::Null)
}

pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + IO_TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
