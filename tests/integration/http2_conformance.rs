//! The HTTP/2 server conformance suite and attack tests (issue 13;
//! tests/h2conformance, Python): starts the server under test on
//! tests/h2conformance/config.yaml (an HTTP/2 listener with a direct_response
//! route and a route to an upstream this test starts), runs every case against
//! it and asserts that exactly the cases listed for that server in
//! tests/h2conformance/expected_failures.txt fail: a regression fails the test,
//! and so does a listed case that now passes (shorten the list).
//!
//! The server under test is Courier; `H2CONF_TARGET=envoy` runs the same suite
//! and expectations against Envoy 1.40 (skipped, with a message, when
//! scripts/install-envoy could not install it, as the compat suite is). Python 3
//! with h2/hyperframe/hpack is required either way (scripts/test installs them
//! with scripts/install-h2-tools).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::http_util::http_upstream;

/// Which server the suite judges by default (`H2CONF_TARGET` overrides it).
const DEFAULT_TARGET: Target = Target::Courier;

/// Bound on one whole run of the Python suite (~20 s against Envoy, ~25 s against
/// a debug Courier).
const SUITE_TIMEOUT: Duration = Duration::from_secs(100);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Envoy,
    Courier,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Envoy => "envoy",
            Target::Courier => "courier",
        }
    }
}

fn target() -> Target {
    match std::env::var("H2CONF_TARGET").as_deref() {
        Ok("courier") => Target::Courier,
        Ok("envoy") => Target::Envoy,
        Ok(other) => panic!("H2CONF_TARGET={other}: want courier or envoy"),
        Err(_) => DEFAULT_TARGET,
    }
}

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/h2conformance")
}

/// The suite's server config with the upstream's port filled in.
fn server_config(upstream_port: u16) -> String {
    std::fs::read_to_string(suite_dir().join("config.yaml"))
        .expect("read tests/h2conformance/config.yaml")
        .replace("UPSTREAM_PORT", &upstream_port.to_string())
}

/// Fails the test (with what to do) unless python3 imports the suite's packages.
fn require_python() {
    let out = Command::new("python3").args(["-c", "import h2, hyperframe, hpack"]).output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "the HTTP/2 conformance suite needs the Python packages h2, hyperframe and hpack: \
             run scripts/install-h2-tools (scripts/test does). python3 said: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("the HTTP/2 conformance suite needs python3 (with h2, hyperframe, hpack): {e}"),
    }
}

/// One case's result, from the suite's JSON lines.
#[derive(Debug)]
struct CaseResult {
    id: String,
    passed: bool,
    detail: String,
}

/// Runs tests/h2conformance/run.py against `port` (admin `admin`).
fn run_suite(port: u16, admin: u16, scratch: &TempDir) -> Vec<CaseResult> {
    let json = scratch.0.join("results.jsonl");
    let log = scratch.0.join("run.log");
    let log_file = std::fs::File::create(&log).expect("create run.log");
    let mut child = Command::new("python3")
        .arg(suite_dir().join("run.py"))
        .args(["--port", &port.to_string(), "--admin", &admin.to_string(), "--json"])
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("clone run.log"))
        .stderr(log_file)
        .spawn()
        .expect("run python3 tests/h2conformance/run.py");
    let deadline = Instant::now() + SUITE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for run.py") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tests/h2conformance/run.py did not finish within {SUITE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let summary = std::fs::read_to_string(&log).unwrap_or_default();
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("run.py ({status}) wrote no results ({e}); it said:\n{summary}"));
    let results: Vec<CaseResult> = text
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON result line");
            CaseResult {
                id: v["id"].as_str().unwrap_or_default().to_string(),
                passed: v["passed"].as_bool().unwrap_or(false),
                detail: v["detail"].as_str().unwrap_or_default().to_string(),
            }
        })
        .collect();
    eprintln!("{summary}");
    assert!(results.len() > 100, "too few results ({}); run.py said:\n{summary}", results.len());
    results
}

/// tests/h2conformance/expected_failures.txt: `<target> <case id> <reason>` lines;
/// returns id -> reason for `target`.
fn expected_failures(target: Target) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(suite_dir().join("expected_failures.txt")).expect("read expected_failures.txt");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut parts = l.splitn(3, char::is_whitespace);
            let (who, id, reason) = (parts.next()?, parts.next()?, parts.next().unwrap_or("").trim());
            assert!(["envoy", "courier"].contains(&who), "expected_failures.txt: {who}: want envoy or courier");
            assert!(!reason.is_empty(), "expected_failures.txt: {id} has no reason");
            (who == target.name()).then(|| (id.to_string(), reason.to_string()))
        })
        .collect()
}

/// Compares the results with the expectations; panics listing every difference.
fn judge(target: Target, results: &[CaseResult]) {
    let expected = expected_failures(target);
    let mut problems = Vec::new();
    for r in results {
        match (r.passed, expected.get(&r.id)) {
            (false, None) => problems.push(format!("FAILS (regression): {} {}", r.id, r.detail)),
            (true, Some(reason)) => problems.push(format!(
                "now PASSES, remove it from expected_failures.txt ({} {}): {} ({})",
                target.name(),
                r.id,
                r.detail,
                reason
            )),
            _ => {}
        }
    }
    for id in expected.keys() {
        if !results.iter().any(|r| &r.id == id) {
            problems.push(format!("expected_failures.txt lists {id}, which the suite has no case for"));
        }
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    eprintln!(
        "h2conformance against {}: {} cases, {} passed, {} failed ({} expected)",
        target.name(),
        results.len(),
        results.len() - failed,
        failed,
        expected.len()
    );
    assert!(problems.is_empty(), "h2conformance against {}:\n{}", target.name(), problems.join("\n"));
}

/// The real Envoy on the suite's config, stopped (by pid) when dropped.
/// (Also the xDS tests' Envoy.)
pub(crate) struct Envoy {
    child: Child,
    pub(crate) admin: SocketAddr,
    _dir: TempDir,
}

impl Envoy {
    pub(crate) fn bin() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/envoy/envoy/_bin/envoy")
    }

    pub(crate) fn start(yaml: &str) -> Envoy {
        Self::start_with(yaml, &[])
    }

    /// `start` with more command-line arguments (`--drain-time-s 1`).
    pub(crate) fn start_with(yaml: &str, extra_args: &[&str]) -> Envoy {
        let dir = TempDir::new("h2conf-envoy");
        let config = dir.file(
            "envoy.yaml",
            &format!("admin:\n  address:\n    socket_address: {{ address: 127.0.0.1, port_value: 0 }}\n{yaml}"),
        );
        let admin_file = dir.0.join("admin_address");
        let stderr = std::fs::File::create(dir.0.join("stderr.log")).expect("stderr file");
        let child = Command::new(Self::bin())
            .arg("-c")
            .arg(&config)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .args(["--concurrency", "1", "-l", "error", "--disable-hot-restart"])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn envoy");
        let mut envoy = Envoy { child, admin: "127.0.0.1:0".parse().unwrap(), _dir: dir };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(addr) = std::fs::read_to_string(&admin_file).unwrap_or_default().trim().parse() {
                envoy.admin = addr;
                break;
            }
            if let Ok(Some(status)) = envoy.child.try_wait() {
                panic!("envoy exited during start-up ({status})");
            }
            assert!(Instant::now() < deadline, "envoy wrote no admin address in time");
            std::thread::sleep(Duration::from_millis(10));
        }
        while http_request(envoy.admin, "GET", "/ready").0 != 200 {
            assert!(Instant::now() < deadline, "envoy not LIVE in time");
            std::thread::sleep(Duration::from_millis(10));
        }
        envoy
    }

    pub(crate) fn listener(&self, name: &str) -> SocketAddr {
        let (_, body) = http_request(self.admin, "GET", "/listeners");
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}::")))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("listener {name} not in envoy's /listeners: {body}"))
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn http2_conformance_and_attacks() {
    let target = target();
    if target == Target::Envoy && !Envoy::bin().exists() {
        eprintln!(
            "SKIPPED: H2CONF_TARGET=envoy, and {} is not installed (scripts/install-envoy)",
            Envoy::bin().display()
        );
        return;
    }
    require_python();
    let upstream = http_upstream("h2conf");
    let yaml = server_config(upstream.port());
    let scratch = TempDir::new("h2conf");
    let results = match target {
        Target::Courier => {
            let courier = Courier::start(&yaml, 1);
            run_suite(courier.listener("h2").port(), courier.admin.port(), &scratch)
        }
        Target::Envoy => {
            let envoy = Envoy::start(&yaml);
            run_suite(envoy.listener("h2").port(), envoy.admin.port(), &scratch)
        }
    };
    judge(target, &results);
}
