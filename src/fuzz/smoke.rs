//! The fuzz targets on stable Rust, as part of the unit tests: every committed
//! corpus input and regression runs through its target, then a short loop of
//! seeded mutations (bit flips, inserted protocol tokens, cuts, splices) does.
//! Coverage-guided runs are `scripts/fuzz`'s; this keeps every target building
//! and every input that once failed passing. `COURIER_FUZZ_SMOKE_ITERS` sets
//! the loop's length (default 2,000 per target).

use std::hash::Hasher;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use super::TARGETS;
use crate::common::fnv::Fnv;

/// Bytes that matter to the parsers under test, inserted whole by mutations.
const TOKENS: &[&[u8]] = &[
    b"\r",
    b"\n",
    b"\r\n",
    b"\r\n\r\n",
    b"\0",
    b" ",
    b"\t",
    b":",
    b";",
    b",",
    b"0",
    b"9",
    b"f",
    b"-",
    b"%",
    b"chunked",
    b"content-length: ",
    b"transfer-encoding: ",
    b"host: ",
    b"0\r\n\r\n",
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"\r\n ",
    b"%REQ(",
    b")%",
    b"%START_TIME(",
    b"(?:",
    b"[",
    b"]",
    b"*",
    b"\\",
    b"PROXY TCP4 ",
    b"\x16\x03\x01",
    // HTTP/2 frame headers: SETTINGS, HEADERS with END_HEADERS on stream 1, RST_STREAM.
    b"\0\0\0\x04\0\0\0\0\0",
    b"\0\0\x01\x01\x04\0\0\0\x01",
    b"\0\0\x04\x03\0\0\0\0\x01",
    // HPACK: an indexed static field, the first dynamic index, a table size
    // update to 4096, a long string length, a Huffman string of ones.
    b"\x82",
    b"\xbe",
    b"\x3f\xe1\x1f",
    b"\x7f\x81\x1e",
    b"\x84\xff\xff\xff\xff",
];

/// A small seeded generator, so that a failure repeats run after run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = Fnv::default();
    h.write(bytes);
    h.finish()
}

fn files_in(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn mutate(input: &mut Vec<u8>, seeds: &[Vec<u8>], rng: &mut XorShift) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(6) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] = rng.next() as u8;
            }
            2 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                input.splice(at..at, token.iter().copied());
            }
            3 if at < input.len() => {
                let end = (at + 1 + rng.below(16)).min(input.len());
                input.drain(at..end);
            }
            4 if at < input.len() => {
                let end = (at + 1 + rng.below(32)).min(input.len());
                let piece = input[at..end].to_vec();
                input.splice(at..at, piece);
            }
            _ => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                let end = (from + rng.below(64)).min(other.len());
                input.splice(at..at, other[from..end].iter().copied());
            }
        }
    }
    input.truncate(4096);
}

/// Runs `input` through the target, failing the test with the input (kept under
/// `target/fuzz-smoke-failures/` for `scripts/fuzz` to reproduce) on a panic.
fn check(name: &str, run: fn(&[u8]), input: &[u8], origin: &str) {
    if catch_unwind(AssertUnwindSafe(|| run(input))).is_err() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-smoke-failures");
        let file = dir.join(format!("{name}-{:016x}", hash(input)));
        let _ = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, input));
        panic!(
            "fuzz target {name} failed on {origin} (saved as {}): {:?}",
            file.display(),
            String::from_utf8_lossy(input)
        );
    }
}

fn smoke(name: &str) {
    let target = TARGETS.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no target {name}"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut seeds = files_in(&root.join("corpus").join(name));
    assert!(!seeds.is_empty(), "fuzz/corpus/{name} has no seeds");
    for (i, input) in files_in(&root.join("regressions").join(name)).iter().enumerate() {
        check(name, target.run, input, &format!("regression {i}"));
    }
    for (i, input) in seeds.iter().enumerate() {
        check(name, target.run, input, &format!("corpus input {i}"));
    }
    seeds.push(Vec::new());
    let iterations = std::env::var("COURIER_FUZZ_SMOKE_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15 ^ hash(name.as_bytes()));
    for i in 0..iterations {
        let mut input = seeds[rng.below(seeds.len())].clone();
        mutate(&mut input, &seeds, &mut rng);
        check(name, target.run, &input, &format!("mutation {i}"));
    }
}

macro_rules! smoke_tests {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { smoke(stringify!($name)); })*

        #[test]
        fn every_target_has_a_smoke_test() {
            let tested = [$(stringify!($name)),*];
            for t in TARGETS {
                assert!(tested.contains(&t.name), "no smoke test for {}", t.name);
            }
        }
    };
}

smoke_tests!(
    http1_request,
    http1_request_envoy,
    http1_chunked,
    http1_response,
    hpack_decoder,
    http2_codec,
    proxy_protocol,
    tls_client_hello,
    http_inspector,
    dns_reply,
    bootstrap,
    access_log_format,
    route_match,
    decompressors,
);
