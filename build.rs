//! Extracts the part of Envoy's API descriptor set that Courier reads.
//!
//! Courier decodes Envoy's proto3-JSON/YAML with Envoy's own schema (DESIGN.md §3).
//! `envoy-types` ships that schema as `src/generated/types.bin` but does not export
//! it, so the build finds it in cargo's registry by the version pinned in Cargo.lock.
//! The typed structs and the descriptor therefore always come from the same release.
//! `COURIER_ENVOY_DESCRIPTOR_SET=/path/types.bin` overrides the search.
//!
//! The whole schema (514 files) decodes to ~40 MB of descriptors at run time, most of
//! it extensions Courier cannot run. The build keeps only the files reachable from
//! the bootstrap and from the extensions Courier registers (`ROOTS`), without their
//! comments (`source_code_info`, four fifths of the bytes), and writes the
//! names of all of Envoy's messages separately, so a config naming an extension
//! Courier lacks still gets "unsupported extension" rather than "unknown type".

use std::collections::{BTreeSet, HashMap};
use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};

/// The messages Courier decodes: the bootstrap and every registered extension's
/// config (`src/extensions`, `src/access_log`). A unit test in `config::descriptor`
/// fails when an extension is registered without its type here.
const ROOTS: &[&str] = &[
    "envoy.config.bootstrap.v3.Bootstrap",
    // What admin `/config_dump` is made of: its `resource` and `mask`
    // parameters name their fields.
    "envoy.admin.v3.BootstrapConfigDump",
    "envoy.admin.v3.ClustersConfigDump",
    "envoy.admin.v3.EndpointsConfigDump",
    "envoy.admin.v3.ListenersConfigDump",
    "envoy.admin.v3.RoutesConfigDump",
    "envoy.admin.v3.SecretsConfigDump",
    // What RTDS fetches for a `rtds_layer`.
    "envoy.service.runtime.v3.Runtime",
    "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
    "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate",
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
    "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector",
    "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol",
    "envoy.extensions.filters.listener.original_dst.v3.OriginalDst",
    "envoy.extensions.filters.http.router.v3.Router",
    "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
    "envoy.extensions.filters.http.cors.v3.Cors",
    "envoy.extensions.filters.http.cors.v3.CorsPolicy",
    "envoy.extensions.filters.http.fault.v3.HTTPFault",
    "envoy.extensions.filters.http.health_check.v3.HealthCheck",
    "envoy.extensions.filters.http.buffer.v3.Buffer",
    "envoy.extensions.filters.http.compressor.v3.Compressor",
    "envoy.extensions.filters.http.compressor.v3.CompressorPerRoute",
    "envoy.extensions.compression.gzip.compressor.v3.Gzip",
    "envoy.extensions.filters.http.decompressor.v3.Decompressor",
    "envoy.extensions.filters.http.csrf.v3.CsrfPolicy",
    "envoy.extensions.filters.http.set_metadata.v3.Config",
    "envoy.extensions.filters.http.grpc_http1_bridge.v3.Config",
    "envoy.extensions.filters.http.grpc_http1_reverse_bridge.v3.FilterConfig",
    "envoy.extensions.filters.http.grpc_http1_reverse_bridge.v3.FilterConfigPerRoute",
    "envoy.extensions.filters.http.rbac.v3.RBAC",
    "envoy.extensions.filters.network.rbac.v3.RBAC",
    "envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit",
    "envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit",
    "envoy.extensions.filters.http.rbac.v3.RBACPerRoute",
    "envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport",
    "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer",
    "envoy.extensions.filters.http.header_to_metadata.v3.Config",
    "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
    "envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
    "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
    "envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig",
    "envoy.extensions.compression.gzip.decompressor.v3.Gzip",
    "envoy.extensions.compression.brotli.compressor.v3.Brotli",
    "envoy.extensions.compression.brotli.decompressor.v3.Brotli",
    "envoy.extensions.compression.zstd.compressor.v3.Zstd",
    "envoy.extensions.compression.zstd.decompressor.v3.Zstd",
    "envoy.extensions.filters.http.buffer.v3.BufferPerRoute",
    "envoy.extensions.access_loggers.file.v3.FileAccessLog",
    "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
    "envoy.extensions.access_loggers.stream.v3.StderrAccessLog",
    "envoy.extensions.health_check.event_sinks.file.v3.HealthCheckEventFileSink",
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
    "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin",
    "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest",
    "envoy.extensions.load_balancing_policies.random.v3.Random",
    "envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig",
    "envoy.extensions.network.dns_resolver.getaddrinfo.v3.GetAddrInfoDnsResolverConfig",
    "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
    "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
    "envoy.config.metrics.v3.StatsdSink",
    "envoy.config.metrics.v3.DogStatsdSink",
    "envoy.extensions.stat_sinks.open_telemetry.v3.SinkConfig",
    "envoy.config.metrics.v3.MetricsServiceConfig",
    "envoy.extensions.tracers.opentelemetry.resource_detectors.v3.StaticConfigResourceDetectorConfig",
    "envoy.extensions.tracers.opentelemetry.resource_detectors.v3.EnvironmentResourceDetectorConfig",
    "envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig",
    "envoy.config.overload.v3.ScaleTimersOverloadActionConfig",
    "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
    "envoy.extensions.resource_monitors.cgroup_memory.v3.CgroupMemoryConfig",
    "envoy.config.trace.v3.ZipkinConfig",
    "envoy.config.trace.v3.OpenTelemetryConfig",
    "envoy.config.trace.v3.SkyWalkingConfig",
    "envoy.config.trace.v3.DatadogConfig",
    "envoy.config.route.v3.Route",
    "envoy.config.route.v3.RouteList",
    "envoy.config.rbac.v3.Action",
    "envoy.extensions.common.matching.v3.ExtensionWithMatcher",
    "envoy.extensions.filters.common.matcher.action.v3.SkipFilter",
    "envoy.type.matcher.v3.HttpRequestHeaderMatchInput",
    "envoy.type.matcher.v3.HttpRequestTrailerMatchInput",
    "envoy.type.matcher.v3.HttpResponseHeaderMatchInput",
    "envoy.type.matcher.v3.HttpResponseTrailerMatchInput",
    "envoy.type.matcher.v3.HttpRequestQueryParamMatchInput",
    "envoy.extensions.matching.common_inputs.network.v3.DestinationIPInput",
    "envoy.extensions.matching.common_inputs.network.v3.DestinationPortInput",
    "envoy.extensions.matching.common_inputs.network.v3.SourceIPInput",
    "envoy.extensions.matching.common_inputs.network.v3.SourcePortInput",
    "envoy.extensions.matching.common_inputs.network.v3.DirectSourceIPInput",
    "envoy.extensions.matching.common_inputs.network.v3.ServerNameInput",
    "envoy.extensions.matching.common_inputs.network.v3.SourceTypeInput",
];

fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=COURIER_ENVOY_DESCRIPTOR_SET");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let src = match env::var("COURIER_ENVOY_DESCRIPTOR_SET") {
        Ok(p) => PathBuf::from(p),
        Err(_) => find_in_registry().unwrap_or_else(|e| panic!("courier build: {e}")),
    };
    let bytes = fs::read(&src).unwrap_or_else(|e| panic!("courier build: read {}: {e}", src.display()));
    // Files are kept as their original bytes: decoding drops the options' extension
    // fields, which carry Envoy's validation rules.
    let raw_files =
        raw_files(&bytes).unwrap_or_else(|| panic!("courier build: {} is not a descriptor set", src.display()));
    let set = FileDescriptorSet {
        file: raw_files
            .iter()
            .map(|raw| FileDescriptorProto::decode(*raw).expect("courier build: a file of the descriptor set"))
            .collect(),
    };

    // Every message's full name, and the file defining it.
    let mut names: Vec<(String, String)> = Vec::new();
    for file in &set.file {
        collect_messages(&format!("{}.", file.package()), &file.message_type, file.name(), &mut names);
    }
    // The import closure of the files defining the roots.
    let by_name: HashMap<&str, &FileDescriptorProto> = set.file.iter().map(|f| (f.name(), f)).collect();
    let mut keep: BTreeSet<String> = BTreeSet::new();
    let mut stack: Vec<String> = ROOTS
        .iter()
        .map(|root| {
            names
                .iter()
                .find(|(n, _)| n == root)
                .map(|(_, f)| f.clone())
                .unwrap_or_else(|| panic!("courier build: {root} is not in Envoy's schema"))
        })
        .collect();
    while let Some(name) = stack.pop() {
        if keep.insert(name.clone()) {
            if let Some(file) = by_name.get(name.as_str()) {
                stack.extend(file.dependency.iter().cloned());
            }
        }
    }
    let mut pruned = Vec::new();
    for (file, raw) in set.file.iter().zip(&raw_files) {
        if keep.contains(file.name()) {
            let stripped = without_source_code_info(raw)
                .unwrap_or_else(|| panic!("courier build: {} is not a valid file descriptor", file.name()));
            // FileDescriptorSet field 1 (`file`), length-delimited.
            pruned.push(0x0a);
            prost::encoding::encode_varint(stripped.len() as u64, &mut pruned);
            pruned.extend_from_slice(&stripped);
        }
    }
    write(&out_dir.join("envoy_descriptor_set.bin"), &pruned);
    let mut all: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    all.sort_unstable();
    write(&out_dir.join("envoy_message_names.txt"), all.join("\n").as_bytes());
}

/// The encoded `file` entries of a `FileDescriptorSet`, as they are.
fn raw_files(mut set: &[u8]) -> Option<Vec<&[u8]>> {
    let mut files = Vec::new();
    while !set.is_empty() {
        let tag = prost::encoding::decode_varint(&mut set).ok()?;
        if tag != 0x0a {
            return None;
        }
        let len = usize::try_from(prost::encoding::decode_varint(&mut set).ok()?).ok()?;
        let (file, rest) = (set.get(..len)?, set.get(len..)?);
        files.push(file);
        set = rest;
    }
    Some(files)
}

/// `FileDescriptorProto.source_code_info`: the proto files' comments and spans.
const SOURCE_CODE_INFO: u64 = 9;

/// An encoded `FileDescriptorProto` without its `source_code_info`, every other
/// field byte for byte. The comments are a third of the schema's size and Courier
/// never reads them; keeping them would cost memory in every process that decodes
/// the schema.
fn without_source_code_info(mut file: &[u8]) -> Option<Vec<u8>> {
    use prost::encoding::{decode_varint, WireType};
    let mut out = Vec::with_capacity(file.len());
    while !file.is_empty() {
        let start = file;
        let key = decode_varint(&mut file).ok()?;
        let value_len = match WireType::try_from(key & 7).ok()? {
            WireType::Varint => {
                decode_varint(&mut file).ok()?;
                0
            }
            WireType::SixtyFourBit => 8,
            WireType::ThirtyTwoBit => 4,
            WireType::LengthDelimited => usize::try_from(decode_varint(&mut file).ok()?).ok()?,
            WireType::StartGroup | WireType::EndGroup => return None,
        };
        file = file.get(value_len..)?;
        if key >> 3 != SOURCE_CODE_INFO {
            out.extend_from_slice(&start[..start.len() - file.len()]);
        }
    }
    Some(out)
}

fn collect_messages(prefix: &str, messages: &[DescriptorProto], file: &str, out: &mut Vec<(String, String)>) {
    for m in messages {
        let full = format!("{prefix}{}", m.name());
        collect_messages(&format!("{full}."), &m.nested_type, file, out);
        out.push((full, file.to_string()));
    }
}

fn write(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap_or_else(|e| panic!("courier build: write {}: {e}", path.display()));
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
