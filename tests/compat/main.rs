//! The compatibility suite: every case in `tests/compat/cases/*.yaml` runs through the
//! real Envoy (installed by `scripts/install-envoy` into `tools/`, or `$ENVOY_BIN`) and
//! through Courier, with the same bootstrap, flags, upstreams and requests; what the
//! client got, what the upstream saw and what the admin endpoint says are compared
//! check by check (see `compare.rs`). A difference fails the test unless
//! `tests/compat/allow.yaml` lists that exact check with the reason it is
//! intentional; so does a listed check that agrees in a run of its case (a stale
//! entry). A second test, which needs no Envoy, keeps allow.yaml and the README's
//! "Known differences from Envoy" the same list: each entry quotes its bullet, each
//! bullet is quoted.
//!
//! Prints each difference, a table (case, checks, agree, differ, allowed) and a last
//! line `compat: A/B checks agree`. Without Envoy it prints a loud SKIPPED line and
//! passes. `COMPAT_CASES=a,b` runs only the cases whose name contains `a` or `b`;
//! `COMPAT_THREADS=N` (default 2) runs N cases at a time; `COMPAT_VERBOSE=1` prints
//! every check with both values (cut at 300 characters, unless `COMPAT_FULL=1`).
//!
//! Run alone: `scripts/compat`.

#[path = "../shared/dns_server.rs"]
mod shared_dns;
#[path = "../shared/grpc_authz.rs"]
mod shared_grpc_authz;
#[path = "../shared/h2_client.rs"]
mod shared_h2;
#[path = "../shared/net.rs"]
mod shared_net;
#[path = "../shared/tls_pki.rs"]
mod shared_tls;
#[path = "../shared/xds_server.rs"]
#[allow(dead_code)] // the scripting half serves the integration tests
mod shared_xds;

mod case;
mod compare;
mod prometheus;
mod run;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use serde::Deserialize;

use case::Case;
use compare::Check;
use run::Kind;

const ENVOY_DEFAULT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/envoy/envoy/_bin/envoy");
const COMPAT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat");

/// Writes straight to the process's stderr, past libtest's output capture, so the
/// report shows under `cargo test` too (nextest shows it via `success-output`).
fn say(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.write_all(b"\n");
}

/// The Envoy binary and its version line, or why there is none.
fn find_envoy() -> Result<(PathBuf, String), String> {
    let (path, from) = match std::env::var_os("ENVOY_BIN") {
        Some(p) => (PathBuf::from(p), "$ENVOY_BIN"),
        None => (PathBuf::from(ENVOY_DEFAULT), "the default location"),
    };
    if !path.exists() {
        return Err(format!("no Envoy binary at {} ({from}); run scripts/install-envoy", path.display()));
    }
    let out = Command::new(&path)
        .arg("--version")
        .output()
        .map_err(|e| format!("{} ({from}) does not run: {e}", path.display()))?;
    if !out.status.success() {
        return Err(format!("{} --version failed: {}", path.display(), String::from_utf8_lossy(&out.stderr).trim()));
    }
    // "version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let build = text.split_whitespace().last().unwrap_or("?");
    let version = build.split('/').nth(1).unwrap_or(build).to_string();
    Ok((path, version))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Allowed {
    case: String,
    /// Exact check names.
    checks: Vec<String>,
    /// A phrase of the README bullet (under "Known differences from Envoy") that
    /// describes this difference.
    readme: String,
    reason: String,
}

fn load_allow_list() -> Vec<Allowed> {
    let path = Path::new(COMPAT_DIR).join("allow.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let list: Option<Vec<Allowed>> =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let list = list.unwrap_or_default();
    for a in &list {
        let what = format!("allow.yaml: {} / {:?}", a.case, a.checks);
        assert!(!a.reason.trim().is_empty(), "{what} needs a reason");
        assert!(!a.checks.is_empty(), "{what} names no check");
        assert!(a.checks.iter().chain([&a.case]).all(|c| !c.contains('*')), "{what}: exact names, not patterns");
    }
    list
}

/// The bullets of README.md's "Known differences from Envoy", each as one line of
/// text (continuation lines joined, whitespace collapsed).
fn readme_known_differences() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let section =
        text.split("\n## Known differences from Envoy\n").nth(1).expect("README: no Known differences section");
    let section = section.split("\n## ").next().unwrap_or("");
    let mut bullets: Vec<String> = Vec::new();
    for line in section.lines() {
        if let Some(item) = line.strip_prefix("- ") {
            bullets.push(item.to_string());
        } else if line.starts_with("  ") && !bullets.is_empty() {
            let last = bullets.last_mut().unwrap();
            last.push(' ');
            last.push_str(line.trim());
        }
    }
    bullets.iter().map(|b| collapse(b)).collect()
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The README bullet `phrase` belongs to; `Err` unless exactly one contains it.
fn bullet_of(bullets: &[String], phrase: &str) -> Result<usize, String> {
    let phrase = collapse(phrase);
    let hits: Vec<usize> = (0..bullets.len()).filter(|&i| bullets[i].contains(&phrase)).collect();
    match hits[..] {
        [i] => Ok(i),
        [] => Err(format!("no README known-difference bullet contains {phrase:?}")),
        _ => Err(format!("{} README bullets contain {phrase:?}; quote a phrase unique to one", hits.len())),
    }
}

/// Every allow.yaml entry names an existing case and quotes exactly one bullet of
/// the README's "Known differences from Envoy", and every bullet is quoted by an
/// entry: the list of differences the suite tolerates and the one users read stay
/// the same list. Runs without Envoy.
#[test]
fn allow_list_and_readme_name_the_same_differences() {
    let bullets = readme_known_differences();
    assert!(!bullets.is_empty(), "README: no bullets under Known differences from Envoy");
    let mut quoted = vec![false; bullets.len()];
    let mut errors = Vec::new();
    for a in load_allow_list() {
        if !Path::new(COMPAT_DIR).join("cases").join(format!("{}.yaml", a.case)).exists() {
            errors.push(format!("allow.yaml {} / {:?}: no such case", a.case, a.checks));
        }
        match bullet_of(&bullets, &a.readme) {
            Ok(i) => quoted[i] = true,
            Err(e) => errors.push(format!("allow.yaml {} / {:?}: {e}", a.case, a.checks)),
        }
    }
    for (bullet, quoted) in bullets.iter().zip(&quoted) {
        if !quoted {
            errors.push(format!("README known difference has no allow.yaml entry: {bullet:?}"));
        }
    }
    assert!(errors.is_empty(), "allow.yaml and README disagree:\n  {}", errors.join("\n  "));
}

fn load_cases() -> Vec<Case> {
    let dir = Path::new(COMPAT_DIR).join("cases");
    let filter: Vec<String> = std::env::var("COMPAT_CASES")
        .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| Case::load(p).unwrap_or_else(|e| panic!("{e}")))
        .filter(|c| filter.is_empty() || filter.iter().any(|f| c.name.contains(f.as_str())))
        .collect()
}

struct CaseResult {
    name: String,
    description: String,
    checks: Vec<Check>,
    /// Envoy itself did not run the case: the case is broken, whatever Courier did.
    envoy_error: Option<String>,
}

fn run_case(case: &Case, envoy: &Path) -> CaseResult {
    let e = run::run(case, Kind::Envoy, envoy);
    let c = run::run(case, Kind::Courier, Path::new(env!("CARGO_BIN_EXE_courier")));
    let envoy_error = e.startup.as_ref().err().cloned();
    CaseResult {
        name: case.name.clone(),
        description: case.description.clone(),
        checks: compare::compare(case, &e, &c),
        envoy_error,
    }
}

fn short(v: &str) -> String {
    let one_line = v.replace('\n', "\\n");
    if one_line.chars().count() > 300 && std::env::var_os("COMPAT_FULL").is_none() {
        format!("{}…", one_line.chars().take(300).collect::<String>())
    } else {
        one_line
    }
}

#[test]
fn compat() {
    let (envoy, version) = match find_envoy() {
        Ok(found) => found,
        Err(reason) => {
            let bar = "!".repeat(100);
            say(&format!("{bar}\ncompat: SKIPPED — Envoy is not installed: {reason}\n{bar}"));
            return;
        }
    };
    let cases = load_cases();
    let allow = load_allow_list();
    let threads: usize = std::env::var("COMPAT_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(2).max(1);
    say(&format!(
        "compat: Envoy {version} ({}) vs Courier ({}), {} cases on {threads} threads",
        envoy.display(),
        env!("CARGO_BIN_EXE_courier"),
        cases.len()
    ));

    let queue = Mutex::new(cases.iter().collect::<Vec<_>>());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let Some(case) = queue.lock().unwrap().pop() else { break };
                let r = run_case(case, &envoy);
                results.lock().unwrap().push(r);
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by(|a, b| a.name.cmp(&b.name));

    let verbose = std::env::var_os("COMPAT_VERBOSE").is_some();
    // Per entry, per listed check: whether it matched a difference.
    let mut used: Vec<Vec<bool>> = allow.iter().map(|a| vec![false; a.checks.len()]).collect();
    let mut failures = Vec::new();
    let mut rows = Vec::new();
    let (mut total, mut agree_total, mut differ_total, mut allowed_total) = (0, 0, 0, 0);
    for r in &results {
        if let Some(err) = &r.envoy_error {
            say(&format!("BROKEN   {}: Envoy did not run the case: {}", r.name, short(err)));
            failures.push(format!("{}: Envoy did not run the case", r.name));
        }
        let (mut agree, mut differ, mut allowed) = (0, 0, 0);
        if verbose {
            say(&format!("CASE     {}: {}", r.name, r.description.trim()));
        }
        for check in &r.checks {
            if verbose {
                let mark = if check.agree { "same" } else { "DIFFERENT" };
                say(&format!(
                    "  {mark:9} {}: envoy={:?} courier={:?}",
                    check.name,
                    short(&check.envoy),
                    short(&check.courier)
                ));
            }
            if check.agree {
                agree += 1;
                continue;
            }
            differ += 1;
            let hit = allow.iter().enumerate().find_map(|(i, a)| {
                let k = a.checks.iter().position(|c| a.case == r.name && *c == check.name)?;
                Some((i, k))
            });
            let line = format!(
                "{}  {}: envoy={:?} courier={:?}",
                r.name,
                check.name,
                short(&check.envoy),
                short(&check.courier)
            );
            match hit {
                Some((i, k)) => {
                    used[i][k] = true;
                    allowed += 1;
                    say(&format!("ALLOWED  {line}  ({})", allow[i].reason.trim()));
                }
                None => {
                    say(&format!("DIFF     {line}"));
                    failures.push(format!("{} {}", r.name, check.name));
                }
            }
        }
        rows.push((r.name.clone(), r.checks.len(), agree, differ, allowed));
        total += r.checks.len();
        agree_total += agree;
        differ_total += differ;
        allowed_total += allowed;
    }
    // A listed check that agreed in a run of its case: the entry is stale (or the
    // check was renamed). Entries of cases that did not run (COMPAT_CASES) are not
    // judged.
    for (a, used) in allow.iter().zip(&used) {
        if !results.iter().any(|r| r.name == a.case) {
            continue;
        }
        for (check, used) in a.checks.iter().zip(used) {
            if !used {
                say(&format!("UNUSED   allow.yaml entry {} / {check} matched no difference", a.case));
                failures.push(format!("{} {check}: allow.yaml entry matched no difference", a.case));
            }
        }
    }

    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(4).max(5);
    let mut table =
        format!("\n{:width$}  {:>6}  {:>6}  {:>6}  {:>7}\n", "case", "checks", "agree", "differ", "allowed");
    for (name, n, a, d, al) in &rows {
        table.push_str(&format!("{name:width$}  {n:>6}  {a:>6}  {d:>6}  {al:>7}\n"));
    }
    table.push_str(&format!(
        "{:width$}  {total:>6}  {agree_total:>6}  {differ_total:>6}  {allowed_total:>7}\n",
        "total"
    ));
    table.push_str(&format!(
        "{differ_total} differences: {allowed_total} allow-listed (tests/compat/allow.yaml), {} not\n",
        differ_total - allowed_total
    ));
    table.push_str(&format!("compat: {agree_total}/{total} checks agree"));
    say(&table);

    assert!(
        failures.is_empty(),
        "{} difference(s) between Envoy and Courier not in tests/compat/allow.yaml, or entries of it that matched none:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}
