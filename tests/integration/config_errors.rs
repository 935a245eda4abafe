//! Bad configs fail at start-up with the field path and the reason.

use crate::harness::*;

const LISTENER: &str = r#"
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: s
          cluster: c
  clusters:
  - name: c
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: c
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } }
"#;

/// Validates `LISTENER` with `from` replaced by `to`; expects failure with `expected`.
fn rejects(from: &str, to: &str, expected: &str) {
    assert!(LISTENER.contains(from), "bad test: {from}");
    let yaml = LISTENER.replacen(from, to, 1);
    let (ok, out) = validate(&yaml);
    assert!(!ok, "config was accepted:\n{yaml}");
    assert!(out.contains(expected), "expected `{expected}` in:\n{out}");
}

#[test]
fn base_config_is_valid() {
    let (ok, out) = validate(LISTENER);
    assert!(ok, "{out}");
    assert!(out.contains("OK"), "{out}");
}

#[test]
fn camel_case_and_json_names_are_accepted() {
    let yaml = LISTENER.replace("connect_timeout", "connectTimeout").replace("stat_prefix", "statPrefix");
    let (ok, out) = validate(&yaml);
    assert!(ok, "{out}");
}

#[test]
fn unknown_field() {
    rejects(
        "    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }",
        "    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }\n    bogus_field: 1",
        "static_resources.listeners[0].bogus_field: unknown field in envoy.config.listener.v3.Listener",
    );
}

#[test]
fn unknown_extension_type() {
    rejects(
        "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "type.googleapis.com/foo.Bar",
        "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type: unknown type 'type.googleapis.com/foo.Bar'",
    );
}

#[test]
fn known_but_unsupported_extension() {
    rejects(
        "\"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n          stat_prefix: s\n          cluster: c",
        "\"@type\": type.googleapis.com/envoy.extensions.filters.network.echo.v3.Echo",
        "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type: unsupported extension 'type.googleapis.com/envoy.extensions.filters.network.echo.v3.Echo'",
    );
}

#[test]
fn empty_cluster_name() {
    rejects("  - name: c\n", "  - name: \"\"\n", "static_resources.clusters[0].name: value length must be at least 1");
}

#[test]
fn port_out_of_range() {
    rejects("port_value: 8080", "port_value: 70000", "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: value must be less than or equal to 65535");
}

#[test]
fn bad_duration() {
    rejects(
        "connect_timeout: 1s",
        "connect_timeout: abc",
        "static_resources.clusters[0].connect_timeout: invalid duration 'abc'",
    );
}

#[test]
fn zero_connect_timeout() {
    rejects(
        "connect_timeout: 1s",
        "connect_timeout: 0s",
        "static_resources.clusters[0].connect_timeout: value must be greater than 0s",
    );
}

#[test]
fn unsupported_lb_policy() {
    rejects(
        "    type: STATIC\n",
        "    type: STATIC\n    lb_policy: MAGLEV\n",
        "static_resources.clusters[0].lb_policy: load balancing policy MAGLEV is not supported",
    );
}

#[test]
fn unknown_enum_value() {
    rejects("    type: STATIC\n", "    type: FANCY\n", "static_resources.clusters[0].type: unknown value 'FANCY' for enum envoy.config.cluster.v3.Cluster.DiscoveryType");
}

#[test]
fn unsupported_field_is_not_ignored() {
    rejects(
        "    type: STATIC\n",
        "    type: STATIC\n    health_checks: [ { timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {}, alt_port: { value: 1 } } ]\n",
        "static_resources.clusters[0].health_checks[0].alt_port: field 'alt_port' of envoy.config.core.v3.HealthCheck is not supported by Courier",
    );
}

/// As Envoy 1.40 (`unable to open file ...`), in validation too: a health check's
/// event log file, and an event sink of another type.
#[test]
fn health_check_event_log_that_cannot_be_written() {
    let hc = |extra: &str| {
        format!(
            "    type: STATIC\n    health_checks: [ {{ timeout: 1s, interval: 1s, unhealthy_threshold: 1, \
             healthy_threshold: 1, tcp_health_check: {{}}, {extra} }} ]\n"
        )
    };
    rejects(
        "    type: STATIC\n",
        &hc("event_log_path: /nonexistent-courier-dir/events.log"),
        "static_resources.clusters[0].health_checks[0].event_log_path: unable to open file \
         '/nonexistent-courier-dir/events.log'",
    );
    let sink = "type.googleapis.com/envoy.extensions.health_check.event_sinks.file.v3.HealthCheckEventFileSink";
    rejects(
        "    type: STATIC\n",
        &hc(&format!(
            "event_logger: [ {{ name: f, typed_config: {{ \"@type\": {sink}, event_log_path: /nonexistent-courier-dir/e }} }} ]"
        )),
        "static_resources.clusters[0].health_checks[0].event_logger[0].typed_config.event_log_path: unable to open file",
    );
}

#[test]
fn tcp_proxy_without_stat_prefix() {
    rejects("          stat_prefix: s\n", "", "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefix: value length must be at least 1");
}

#[test]
fn tcp_proxy_with_two_cluster_specifiers() {
    rejects(
        "          cluster: c\n",
        "          cluster: c\n          weighted_clusters: { clusters: [ { name: c, weight: 1 } ] }\n",
        "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.weighted_clusters: 'cluster' and 'weighted_clusters' are both set",
    );
}

#[test]
fn two_filter_chains_with_the_same_match() {
    rejects(
        "    filter_chains:\n    - filters:\n",
        "    filter_chains:\n    - filters: []\n    - filters:\n",
        "static_resources.listeners[0].filter_chains[1].filter_chain_match: error adding listener '127.0.0.1:10000': \
         filter chain '' has the same matching rules defined as ''",
    );
}

#[test]
fn duplicate_cluster_names() {
    let yaml = format!("{LISTENER}{}", static_cluster("c", &[8081]));
    let (ok, out) = validate(&yaml);
    assert!(!ok);
    assert!(out.contains("static_resources.clusters[1].name: cluster manager: duplicate cluster 'c'"), "{out}");
}

#[test]
fn static_cluster_with_a_hostname() {
    rejects(
        "address: 127.0.0.1, port_value: 8080",
        "address: localhost, port_value: 8080",
        "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: 'localhost' is not an IP address",
    );
}

#[test]
fn string_where_an_integer_belongs() {
    rejects("port_value: 8080", "port_value: eighty", "port_value: expected an integer, got 'eighty'");
}

#[test]
fn yaml_syntax_error() {
    rejects("  clusters:\n", "  clusters: [\n", "config.yaml");
}

#[test]
fn unsupported_bootstrap_section() {
    let yaml = format!("{LISTENER}hds_config: {{ api_type: GRPC }}\n");
    let (ok, out) = validate(&yaml);
    assert!(!ok);
    assert!(
        out.contains(
            "hds_config: field 'hds_config' of envoy.config.bootstrap.v3.Bootstrap is not supported by Courier"
        ),
        "{out}"
    );
}

/// An RTDS layer's source is checked as the server starts, as Envoy's: it
/// needs a source, ADS configured for `ads: {}`, and a complete node.
#[test]
fn runtime_rtds_layer_sources_are_checked_with_their_path() {
    let rtds = |layer: &str, node: &str| {
        validate(&format!(
            "{LISTENER}{node}layered_runtime: {{ layers: [ {{ name: s, static_layer: {{ a: 1 }} }}, {{ name: r, rtds_layer: {layer} }} ] }}\n"
        ))
    };
    let node = "node: { id: node1, cluster: cluster1 }\n";
    let (ok, out) = rtds("{ name: x }", node);
    assert!(!ok);
    assert!(out.contains("layered_runtime.layers[1].rtds_layer.rtds_config: Missing config source specifier"), "{out}");
    let (ok, out) = rtds("{ name: x, rtds_config: { ads: {} } }", node);
    assert!(!ok);
    assert!(
        out.contains(
            "layered_runtime.layers[1].rtds_layer.rtds_config.ads: ADS must be configured to support an ADS config source"
        ),
        "{out}"
    );
    let (ok, out) = rtds("{ name: x, rtds_config: { path_config_source: { path: /nonexistent/rtds.yaml } } }", node);
    assert!(!ok);
    assert!(out.contains("paths must refer to an existing path in the system"), "{out}");
    let (ok, out) = rtds("{ name: x, rtds_config: { path_config_source: { path: /dev/null } } }", "");
    assert!(!ok);
    assert!(
        out.contains("type.googleapis.com/envoy.service.runtime.v3.Runtime: node 'id' and 'cluster' are required"),
        "{out}"
    );
    assert!(rtds("{ name: x, rtds_config: { path_config_source: { path: /dev/null } } }", node).0);
}

#[test]
fn runtime_static_layer_with_a_list_is_refused() {
    let yaml =
        format!("{LISTENER}layered_runtime: {{ layers: [ {{ name: s, static_layer: {{ a: {{ b: [1] }} }} }} ] }}\n");
    let (ok, out) = validate(&yaml);
    assert!(!ok);
    assert!(out.contains("layered_runtime.layers[0].static_layer: Invalid runtime entry value for a.b"), "{out}");
}

#[test]
fn config_yaml_is_merged_over_the_file() {
    let dir = TempDir::new("merge");
    let path = dir.file("base.yaml", LISTENER);
    // Lists are appended: a second cluster with the same name is a duplicate.
    let out = std::process::Command::new(courier_bin())
        .args(["--mode", "validate", "-c"])
        .arg(&path)
        .args(["--config-yaml", &format!("static_resources:\n  clusters:\n{}", static_cluster("c", &[1]))])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("static_resources.clusters[1].name"));
}

#[test]
fn json_config_files_are_read_as_json() {
    let dir = TempDir::new("json");
    let json = r#"{"admin":{"address":{"socketAddress":{"address":"127.0.0.1","portValue":0}}},"staticResources":{"clusters":[{"name":"c","connectTimeout":"0.25s","loadAssignment":{"clusterName":"c","endpoints":[{"lbEndpoints":[{"endpoint":{"address":{"socketAddress":{"address":"127.0.0.1","portValue":1}}}}]}]}}]}}"#;
    let path = dir.file("bootstrap.json", json);
    let out = std::process::Command::new(courier_bin()).args(["--mode", "validate", "-c"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `--mode validate` lists every problem of a config at once, in the order of the
/// file, each with its field path and line: two typos, a bad enum value and a field
/// Courier does not support.
#[test]
fn every_problem_is_listed_with_its_line() {
    let yaml = LISTENER
        .replacen("stat_prefix: s", "stat_prefx: s", 1)
        .replacen("type: STATIC", "type: STATIK", 1)
        .replacen("connect_timeout: 1s", "conect_timeout: 1s", 1)
        .replacen(
            "    load_assignment:",
            "    health_checks: [ { timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {}, alt_port: { value: 1 } } ]\n    load_assignment:",
            1,
        );
    let line = |needle: &str| yaml.lines().position(|l| l.contains(needle)).expect("in the config") + 1;
    let expected = [
        format!(
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefx: unknown field in \
             envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy (did you mean 'stat_prefix'?) (line {})",
            line("stat_prefx")
        ),
        format!(
            "static_resources.clusters[0].type: unknown value 'STATIK' for enum \
             envoy.config.cluster.v3.Cluster.DiscoveryType (did you mean 'STATIC'?) (line {})",
            line("STATIK")
        ),
        format!(
            "static_resources.clusters[0].conect_timeout: unknown field in envoy.config.cluster.v3.Cluster \
             (did you mean 'connect_timeout'?) (line {})",
            line("conect_timeout")
        ),
        format!(
            "static_resources.clusters[0].health_checks[0].alt_port: field 'alt_port' of \
             envoy.config.core.v3.HealthCheck is not supported by Courier (line {})",
            line("alt_port")
        ),
    ];
    let (ok, out) = validate(&yaml);
    assert!(!ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines[0].starts_with("error initializing configuration '"), "{out}");
    assert!(lines[0].ends_with(&format!("': {}", expected[0])), "{out}");
    assert_eq!(lines[1], "  and 3 more:", "{out}");
    for (shown, expected) in lines[2..].iter().zip(&expected[1..]) {
        assert_eq!(*shown, format!("  {expected}"), "{out}");
    }
}

/// A JSON file's errors have lines too, and `--config-yaml`'s say whose line it is.
#[test]
fn json_files_and_config_yaml_have_lines() {
    let dir = TempDir::new("json-lines");
    let json = "{\n  \"admin\": {},\n  \"staticResources\": {\n    \"clusters\": [{\"name\": \"c\", \"connectTimeot\": \"1s\"}]\n  }\n}\n";
    let path = dir.file("bootstrap.json", json);
    let out = std::process::Command::new(courier_bin())
        .args(["--mode", "validate", "-c"])
        .arg(&path)
        .args(["--config-yaml", "node: {id: n}\nstatsFlushInterval: 5s\nwatchdog: {bogus: 1}"])
        .output()
        .expect("run courier");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("staticResources.clusters[0].connectTimeot: unknown field in envoy.config.cluster.v3.Cluster (did you mean 'connect_timeout'?) (line 4)"),
        "{err}"
    );
    assert!(
        err.contains("watchdog.bogus: unknown field in envoy.config.bootstrap.v3.Watchdog (--config-yaml line 3)"),
        "{err}"
    );
}

/// Without `ipv4_compat` an IPv6 listen socket is `IPV6_V6ONLY` whatever the
/// system default, as in Envoy, so an IPv4-mapped address cannot be bound and
/// start-up fails naming it (tests/compat's `listener_ipv4_compat` shows the
/// other side against Envoy). Serve mode, since binding is what fails.
#[test]
fn ipv4_mapped_listener_address_needs_ipv4_compat() {
    let yaml =
        LISTENER.replace("address: 127.0.0.1, port_value: 10000", "address: \"::ffff:127.0.0.1\", port_value: 0");
    let dir = TempDir::new("v6only");
    let path = dir.file("config.yaml", &yaml);
    let mut child = std::process::Command::new(courier_bin())
        .args(["--admin-address-path", "/dev/null", "-c"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run courier");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("courier served an IPv4-mapped address without ipv4_compat");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut err).expect("stderr");
    assert!(!status.success(), "{err}");
    assert!(err.contains("[::ffff:127.0.0.1]:0"), "{err}");
}

/// An HTTP listener whose `jwt_authn` filter has `provider` (one provider, `p`) and `rules`.
fn jwt_authn_config(provider: &str, rules: &str) -> String {
    format!(
        r#"
static_resources:
  listeners:
  - name: l
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 10000 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: h
          route_config: {{ virtual_hosts: [{{ name: v, domains: ["*"], routes: [{{ match: {{ prefix: / }}, direct_response: {{ status: 200 }} }}] }}] }}
          http_filters:
          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                p:
{provider}
              rules:
{rules}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#
    )
}

/// What Envoy 1.40 says (`--mode validate`) of a bad `jwt_authn` config, with the field
/// path; and a provider field Courier does not act on is refused by name.
#[test]
fn jwt_authn_config_errors_are_envoys() {
    const AT: &str =
        "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config";
    let keys = r#"                  local_jwks: { inline_string: '{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}' }"#;
    let rule = "              - { match: { prefix: / }, requires: { provider_name: p } }";
    let cases = [
        (
            jwt_authn_config(keys, "              - { match: { prefix: / }, requires: { provider_name: nobody } }"),
            format!("{AT}.rules[0].requires.provider_name: Required provider ['nobody'] is not configured."),
        ),
        (
            jwt_authn_config("                  local_jwks: { inline_string: 'not json' }", rule),
            format!("{AT}.providers[\"p\"].local_jwks: Provider 'p' in jwt_authn config has invalid local jwks: Jwks is an invalid JSON"),
        ),
        (
            jwt_authn_config(keys, "              - { match: { prefix: / }, requirement_name: nothing }"),
            format!("{AT}.rules[0].requirement_name: Wrong requirement_name: nothing. It should be one of []"),
        ),
        (
            jwt_authn_config(&format!("{keys}\n                  payload_in_metadata: jwt"), rule),
            format!("{AT}.providers[\"p\"].payload_in_metadata: field 'payload_in_metadata' of envoy.extensions.filters.http.jwt_authn.v3.JwtProvider is not supported by Courier"),
        ),
    ];
    for (yaml, expected) in cases {
        let (ok, out) = validate(&yaml);
        assert!(!ok && out.contains(&expected), "expected `{expected}` in:\n{out}");
    }
    let (ok, out) = validate(&jwt_authn_config(keys, rule));
    assert!(ok, "{out}");
}

#[test]
fn an_upstream_proxy_protocol_tlv_needs_a_value() {
    let socket = "    connect_timeout: 1s\n    transport_socket:\n      name: envoy.transport_sockets.upstream_proxy_protocol\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport\n        config: { version: V2, added_tlvs: [ { type: 224 } ] }\n        transport_socket: { name: raw, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer } }\n";
    rejects(
        "    connect_timeout: 1s\n",
        socket,
        "static_resources.clusters[0].transport_socket.typed_config.config.added_tlvs[0]: Invalid TLV configuration: one of 'value' or 'format_string' must be set.",
    );
    // A TLV type is one byte on the wire (the schema's own rule).
    rejects(
        "    connect_timeout: 1s\n",
        &socket.replace("type: 224", "type: 256, value: eA=="),
        "value must be less than 256",
    );
}

/// The TLS inspector's sizes are bounded as Envoy's schema bounds them: at most
/// 16 KiB of ClientHello, a first read below 64 KiB, both above 255 bytes.
#[test]
fn tls_inspector_sizes_out_of_range() {
    let filters = "    filter_chains:\n";
    let inspector = |field: &str| {
        format!(
            "    listener_filters:\n    - name: envoy.filters.listener.tls_inspector\n      typed_config:\n        \
             \"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector\n        \
             {field}\n{filters}"
        )
    };
    let at = "static_resources.listeners[0].listener_filters[0].typed_config";
    rejects(
        filters,
        &inspector("max_client_hello_size: 16385"),
        &format!("{at}.max_client_hello_size: value must be inside range (255, 16384]"),
    );
    rejects(
        filters,
        &inspector("initial_read_buffer_size: 255"),
        &format!("{at}.initial_read_buffer_size: value must be inside range (255, 65537)"),
    );
}

/// zstd dictionaries are not loaded by Courier: the compressor's `dictionary`
/// and the decompressor's `dictionaries` are refused by name, with their paths.
#[test]
fn zstd_dictionaries_are_refused_by_name() {
    let yaml = r#"
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          route_config: { virtual_hosts: [ { name: v, domains: ["*"], routes: [ { match: { prefix: "/" }, direct_response: { status: 200 } } ] } ] }
          http_filters:
          - name: envoy.filters.http.compressor
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor
              compressor_library:
                name: z
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.compression.zstd.compressor.v3.Zstd
                  dictionary: { inline_string: "dict" }
          - name: envoy.filters.http.decompressor
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.decompressor.v3.Decompressor
              decompressor_library:
                name: z
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.compression.zstd.decompressor.v3.Zstd
                  dictionaries: [ { inline_string: "dict" } ]
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#;
    let (ok, out) = validate(yaml);
    assert!(!ok);
    assert!(
        out.contains("http_filters[0].typed_config.compressor_library.typed_config.dictionary: field 'dictionary' of envoy.extensions.compression.zstd.compressor.v3.Zstd is not supported by Courier"),
        "{out}"
    );
    assert!(
        out.contains("http_filters[1].typed_config.decompressor_library.typed_config.dictionaries: field 'dictionaries' of envoy.extensions.compression.zstd.decompressor.v3.Zstd is not supported by Courier"),
        "{out}"
    );
}

/// `envoy_grpc.authority` and `initial_metadata` are sent by the OpenTelemetry
/// exporters only: a management server's or ext_authz's are refused by name.
#[test]
fn grpc_authority_and_metadata_are_refused_where_not_sent() {
    let ads = |grpc: &str| {
        format!(
            "dynamic_resources:\n  ads_config:\n    api_type: GRPC\n    transport_api_version: V3\n    grpc_services:\n    - {grpc}\n  cds_config: {{ ads: {{}}, resource_api_version: V3 }}\nnode: {{ id: node1, cluster: c1 }}\n{LISTENER}"
        )
    };
    let (ok, out) = validate(&ads("envoy_grpc: { cluster_name: c, authority: a.example }"));
    assert!(!ok && out.contains("ads_config.grpc_services[0].envoy_grpc.authority"), "{out}");
    let (ok, out) = validate(&ads("{ envoy_grpc: { cluster_name: c }, initial_metadata: [{ key: k, value: v }] }"));
    assert!(!ok && out.contains("initial_metadata"), "{out}");
}

/// A listener's own access log formats the connection's StreamInfo, as
/// Envoy's does: every operator loads, Envoy's default format (no format
/// given) too, read once (an unopenable file is named once, by its entry).
#[test]
fn listener_access_log_takes_envoys_default_format() {
    let log = "    access_log:\n    - name: envoy.access_loggers.stdout\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog\n    filter_chains:";
    let (ok, out) = validate(&LISTENER.replacen("    filter_chains:", log, 1));
    assert!(ok, "{out}");
    rejects(
        "    filter_chains:",
        "    access_log:\n    - name: envoy.access_loggers.file\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n        path: /nonexistent-dir/x.log\n    filter_chains:",
        "static_resources.listeners[0].access_log[0].typed_config.path: cannot open access log '/nonexistent-dir/x.log'",
    );
}
