//! Copies Envoy's API descriptor set out of the `envoy-types` crate.
//!
//! Courier decodes Envoy's proto3-JSON/YAML with Envoy's own schema (DESIGN.md §3).
//! `envoy-types` ships that schema as `src/generated/types.bin` but does not export
//! it, so the build finds it in cargo's registry by the version pinned in Cargo.lock.
//! The typed structs and the descriptor therefore always come from the same release.
//! `COURIER_ENVOY_DESCRIPTOR_SET=/path/types.bin` overrides the search.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!("cargo:rerun-if-env-changed=COURIER_ENVOY_DESCRIPTOR_SET");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("envoy_descriptor_set.bin");
    let src = match env::var("COURIER_ENVOY_DESCRIPTOR_SET") {
        Ok(p) => PathBuf::from(p),
        Err(_) => find_in_registry().unwrap_or_else(|e| panic!("courier build: {e}")),
    };
    fs::copy(&src, &out).unwrap_or_else(|e| panic!("courier build: copy {}: {e}", src.display()));
}

fn find_in_registry() -> Result<PathBuf, String> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let lock = fs::read_to_string(manifest.join("Cargo.lock")).map_err(|e| format!("Cargo.lock: {e}"))?;
    let version = lock_version(&lock, "envoy-types").ok_or("envoy-types not in Cargo.lock")?;
    let dir = format!("envoy-types-{version}");
    let mut roots: Vec<PathBuf> = vec![manifest.join("vendor").join(&dir)];
    let cargo_home = env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| env::var("HOME").map(|h| Path::new(&h).join(".cargo")))
        .map_err(|_| "neither CARGO_HOME nor HOME is set")?;
    if let Ok(entries) = fs::read_dir(cargo_home.join("registry").join("src")) {
        roots.extend(entries.flatten().map(|e| e.path().join(&dir)));
    }
    roots
        .into_iter()
        .map(|r| r.join("src").join("generated").join("types.bin"))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{dir}/src/generated/types.bin not found; set COURIER_ENVOY_DESCRIPTOR_SET"))
}

/// The version of `name` in a Cargo.lock (`name = "x"` followed by `version = "v"`).
fn lock_version(lock: &str, name: &str) -> Option<String> {
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("name = \"{name}\"") {
            let v = lines.next()?.trim().strip_prefix("version = \"")?.strip_suffix('"')?;
            return Some(v.to_string());
        }
    }
    None
}
