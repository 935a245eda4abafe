//! Courier's modules form layers (docs/architecture.md, "Layers"): a module imports
//! only from its own layer and those below it, so a lower layer never names a
//! concrete type of an upper one and the tree has no import cycle between layers.
//! This test reads every `crate::<module>` path in `src/` and fails on an upward one
//! that `KNOWN_UPWARD` does not list, or on a `KNOWN_UPWARD` entry that no longer
//! occurs, so the list only shrinks.

use std::collections::BTreeSet;
use std::path::Path;

/// The layers, lowest first; the modules of one layer may import each other.
const LAYERS: &[&[&str]] = &[
    &["common", "logging"],
    &["config"],
    &["matcher"],
    &["stats"],
    &["event"],
    &["thread_local"],
    &["runtime"],
    &["overload"],
    &["network"],
    &["stream_info"],
    &["formatter", "access_log"],
    // HTTP as a protocol: header rules, request bodies, the HTTP/1 and HTTP/2
    // codecs (server and client side), local replies.
    &["http"],
    // The tracing core: spans and the tracing decision over HTTP headers.
    &["tracing"],
    // Clusters, hosts, load balancing, connection pools over the client codecs.
    &["upstream"],
    // Route tables and the router's upstream requests (retries, timeouts).
    &["router"],
    &["extensions"],
    &["server", "fuzz"],
];

/// `(module, the upper module it imports, why it is still there)`.
const KNOWN_UPWARD: &[(&str, &str, &str)] = &[];

/// Crate-root items that belong to a module (`#[macro_export]` macros).
fn module_of(name: &str) -> &str {
    match name {
        "define_stats" => "stats",
        other => other,
    }
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Every `(importing module, imported module)` of `path`, a `.rs` file or a directory
/// of them, comments left out.
fn imports(module: &str, path: &Path, found: &mut BTreeSet<(String, String)>) {
    if path.is_dir() {
        let entries = std::fs::read_dir(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for entry in entries {
            imports(module, &entry.expect("directory entry").path(), found);
        }
        return;
    }
    if path.extension().and_then(|e| e.to_str()) != Some("rs") {
        return;
    }
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            found.insert((module.to_string(), module_of(&name).to_string()));
        }
    }
}

#[test]
fn lower_layers_do_not_import_upper_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(&src).expect("src") {
        let path = entry.expect("directory entry").path();
        let Some(module) = path.file_stem().and_then(|s| s.to_str()).map(str::to_string) else { continue };
        if ["lib", "main"].contains(&module.as_str()) {
            continue;
        }
        assert!(layer_of(&module).is_some(), "src/{module} is in no layer of LAYERS");
        imports(&module, &path, &mut found);
    }
    let mut problems = Vec::new();
    let mut upward = BTreeSet::new();
    for (from, to) in &found {
        let (Some(a), Some(b)) = (layer_of(from), layer_of(to)) else {
            problems.push(format!("src/{from} imports crate::{to}, which is in no layer"));
            continue;
        };
        if b > a {
            upward.insert((from.as_str(), to.as_str()));
        }
    }
    for (from, to) in &upward {
        if !KNOWN_UPWARD.iter().any(|(f, t, _)| f == from && t == to) {
            problems.push(format!("src/{from} imports crate::{to}, a layer above it"));
        }
    }
    for (from, to, _) in KNOWN_UPWARD {
        if !upward.contains(&(*from, *to)) {
            problems.push(format!("stale: src/{from} no longer imports crate::{to}; remove it from KNOWN_UPWARD"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
