//! The example configs under `examples/` are valid for Courier and for Envoy: each
//! `examples/*.yaml` must pass `courier --mode validate` and, when Envoy is
//! installed (`scripts/install-envoy`, or `ENVOY_BIN`), `envoy --mode validate`
//! without using a deprecated field. Without Envoy the Envoy half says SKIPPED.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::courier_bin;

/// Where `scripts/install-envoy` puts Envoy, relative to the repository.
const INSTALLED_ENVOY: &str = "tools/envoy/envoy/_bin/envoy";

/// The examples the README and issue 4 promise; more may be added.
const EXPECTED: &[&str] =
    &["courier-default.yaml", "front-proxy.yaml", "routing.yaml", "sidecar.yaml", "tcp-proxy.yaml"];

const VALIDATE_TIMEOUT: Duration = Duration::from_secs(60);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `examples/*.yaml`, sorted.
fn examples() -> Vec<PathBuf> {
    let dir = repo().join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("read examples/").path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
}

/// `ENVOY_BIN` when set (it must then exist), else the installed Envoy if present.
fn envoy_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("ENVOY_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "ENVOY_BIN={} does not exist", bin.display());
        return Some(bin);
    }
    Some(repo().join(INSTALLED_ENVOY)).filter(|p| p.is_file())
}

/// Runs `bin --mode validate -c config` (bounded in time); returns (exit ok, output).
fn validate(bin: &Path, config: &Path) -> (bool, String) {
    let mut child = Command::new(bin)
        .args(["--mode", "validate", "-c"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + VALIDATE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} --mode validate -c {} did not finish in {VALIDATE_TIMEOUT:?}", bin.display(), config.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let text = format!("{}{}", out.join().unwrap_or_default(), err.join().unwrap_or_default());
    (status.success(), text)
}

fn name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Written straight to stderr (not through the test harness's capture), so that
/// `cargo test` shows it even when the test passes.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[test]
fn the_promised_examples_exist() {
    let names: Vec<String> = examples().iter().map(|p| name(p)).collect();
    for expected in EXPECTED {
        assert!(names.iter().any(|n| n == expected), "examples/{expected} is missing (found {names:?})");
    }
}

#[test]
fn every_example_passes_courier_validate() {
    let mut failures = Vec::new();
    for file in examples() {
        let (ok, text) = validate(Path::new(courier_bin()), &file);
        if !ok || !text.contains("OK") {
            failures.push(format!("examples/{}: courier --mode validate failed:\n{text}", name(&file)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_example_passes_envoy_validate() {
    let Some(envoy) = envoy_bin() else {
        say(&format!(
            "\n*** SKIPPED: envoy not installed (run scripts/install-envoy) -- examples/*.yaml not checked \
             against Envoy (looked for {INSTALLED_ENVOY} and ENVOY_BIN) ***\n"
        ));
        return;
    };
    let mut failures = Vec::new();
    for file in examples() {
        let (ok, text) = validate(&envoy, &file);
        if !ok {
            failures.push(format!("examples/{}: envoy --mode validate failed:\n{text}", name(&file)));
        } else if let Some(line) = text.lines().find(|l| l.contains("Deprecated field")) {
            // The examples show Envoy's current documented style.
            failures.push(format!("examples/{}: uses a field Envoy deprecates:\n{line}", name(&file)));
        }
    }
    assert!(failures.is_empty(), "Envoy ({}) rejects examples:\n{}", envoy.display(), failures.join("\n"));
}
