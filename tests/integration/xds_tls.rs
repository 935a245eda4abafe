//! xDS over TLS: the management server's cluster with a TLS transport socket
//! shaped as Envoy Gateway's bootstrap writes it (delta ADS to `xds_cluster`,
//! a client certificate and the trusted CA each from an SDS file,
//! `tls_maximum_protocol_version: TLSv1_3`, HTTP/2 with `connection_keepalive`,
//! no SNI). The test control plane serves over mTLS with certificates made at
//! test time; Courier gets its listener and cluster over the stream and serves
//! traffic through them, and counts the handshake in `cluster.xds.ssl.*`. A
//! CA that did not sign the server's certificate fails every stream (counted
//! in `ssl.fail_verify_error`) while the static listener keeps serving. Both
//! sessions run against the real Envoy 1.40 too, and must end the same.

use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;

use crate::harness::{static_cluster, swap_in, wait_for, Courier, TempDir};
use crate::http_util::{http_listener, one_vhost, prefix_route, Client};
use crate::shared_net::http_upstream;
use crate::shared_tls::{mtls_server_config, Leaf, Pki};
use crate::shared_xds::{XdsServer, CLUSTER_TYPE, LISTENER_TYPE};
use crate::xds_grpc::{admin_listener, admin_stat, clusters, same_as_envoy, web_listener, Started};

const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// The SDS file of the client certificate `xds_certificate`: `leaf` written beside it.
fn certificate_file(dir: &TempDir, stem: &str, leaf: &Leaf) -> String {
    let (cert, key) = leaf.write(&dir.0, stem);
    format!(
        "resources:\n- \"@type\": {SECRET}\n  name: xds_certificate\n  tls_certificate:\n    certificate_chain: {{ filename: {} }}\n    private_key: {{ filename: {} }}\n",
        cert.display(),
        key.display()
    )
}

/// The SDS file of the trusted CA `xds_trusted_ca`.
fn trusted_ca_file(dir: &TempDir, ca_pem: &str) -> String {
    let ca = dir.file("xds-ca.crt", ca_pem);
    format!(
        "resources:\n- \"@type\": {SECRET}\n  name: xds_trusted_ca\n  validation_context:\n    trusted_ca: {{ filename: {} }}\n",
        ca.display()
    )
}

/// Envoy Gateway's bootstrap in small: delta ADS (CDS and LDS) to
/// `xds` over TLS from the SDS files in `dir`, and a static listener
/// `static` to the static cluster `local` on `local_port`. (Envoy Gateway's
/// `initial_fetch_timeout: 0s` waits for the control plane forever; 1s lets
/// start-up go on without it.)
fn bootstrap(xds_port: u16, dir: &TempDir, local_port: u16) -> String {
    let d = dir.0.display();
    format!(
        "node: {{ id: test-node, cluster: test-cluster }}
dynamic_resources:
  ads_config:
    api_type: DELTA_GRPC
    transport_api_version: V3
    grpc_services: [{{ envoy_grpc: {{ cluster_name: xds }} }}]
    set_node_on_first_message_only: true
  cds_config: {{ ads: {{}}, resource_api_version: V3, initial_fetch_timeout: 1s }}
  lds_config: {{ ads: {{}}, resource_api_version: V3, initial_fetch_timeout: 1s }}
static_resources:
  listeners:
{}  clusters:
{}{}    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options:
            connection_keepalive: {{ interval: 30s, timeout: 5s }}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          tls_params: {{ tls_maximum_protocol_version: TLSv1_3 }}
          tls_certificate_sds_secret_configs:
          - name: xds_certificate
            sds_config: {{ path_config_source: {{ path: {d}/xds-certificate.yaml }}, resource_api_version: V3 }}
          validation_context_sds_secret_config:
            name: xds_trusted_ca
            sds_config: {{ path_config_source: {{ path: {d}/xds-trusted-ca.yaml }}, resource_api_version: V3 }}
",
        http_listener("static", "", &one_vhost(&prefix_route("/", "local", "")), ""),
        static_cluster("local", &[local_port]),
        static_cluster("xds", &[xds_port]),
    )
}

/// The DER of `leaf`'s certificate.
fn leaf_der(leaf: &Leaf) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).expect("PEM cert").to_vec()
}

fn is_ack(r: &DeltaDiscoveryRequest, type_url: &str) -> bool {
    r.type_url == type_url && !r.response_nonce.is_empty() && r.error_detail.is_none()
}

/// Who answered `/` on the listener `name` of the proxy behind `admin`.
fn served(admin: std::net::SocketAddr, name: &str) -> String {
    let r = Client::connect(admin_listener(admin, name)).get("/");
    if r.status == 200 {
        r.seen().upstream().to_string()
    } else {
        r.status.to_string()
    }
}

/// The `cluster.xds.ssl.*` stats a session compares (`handshake` and the
/// failures), each as counted or not: retries make the counts timing's.
fn ssl_stats(admin: std::net::SocketAddr) -> Vec<String> {
    ["handshake", "fail_verify_error", "connection_error", "no_certificate"]
        .iter()
        .map(|s| format!("{s} {}", admin_stat(admin, &format!("cluster.xds.ssl.{s}")).min(1)))
        .collect()
}

/// LDS and CDS over delta ADS over mTLS: what serves, the stream's state and
/// the handshake's stats; then a rotated client certificate shows on the next
/// connection the management server takes.
fn mtls_session(start: fn(&str) -> Started) -> Vec<String> {
    let (app, local) = (http_upstream("app"), http_upstream("local"));
    let dir = TempDir::new("xds-tls");
    let (server_ca, client_ca) = (Pki::new("xDS Server CA"), Pki::new("xDS Client CA"));
    let (one, two) = (client_ca.leaf(&["envoy-one"]), client_ca.leaf(&["envoy-two"]));
    dir.file("xds-certificate.yaml", &certificate_file(&dir, "one", &one));
    dir.file("xds-trusted-ca.yaml", &trusted_ca_file(&dir, &server_ca.ca_pem));
    let mut xds = XdsServer::start_tls(mtls_server_config(&server_ca.leaf(&["envoy-gateway"]), &client_ca.ca_pem));
    xds.push(CLUSTER_TYPE, "c1", clusters(&[static_cluster("app", &[app.port()])]));
    xds.push(LISTENER_TYPE, "l1", vec![web_listener("web", "", "app")]);
    let (admin, _proxy) = start(&bootstrap(xds.port(), &dir, local.port()));
    xds.wait_delta_request(0, |r| is_ack(r, LISTENER_TYPE));
    let mut out = vec![format!("web: {}", served(admin, "web")), format!("static: {}", served(admin, "static"))];
    out.push(format!("connected_state {}", admin_stat(admin, "control_plane.connected_state")));
    out.extend(ssl_stats(admin));
    let shown = |xds: &XdsServer, n: usize| {
        let certs = xds.client_certificates();
        let der = certs.get(n).cloned().unwrap_or_default();
        [&one, &two].iter().position(|l| leaf_der(l) == der).map_or(-1, |i| i as i64)
    };
    out.push(format!("first client certificate {}", shown(&xds, 0)));

    // A new client certificate in the SDS file: the open stream keeps its
    // connection; the next one, after the management server restarts, shows it.
    swap_in(&dir.0, "xds-certificate.yaml", &certificate_file(&dir, "two", &two));
    wait_for("the rotated secret", || admin_stat(admin, "sds.xds_certificate.update_success") == 2);
    out.push(format!("connections before the restart {}", xds.client_certificates().len()));
    let seen = xds.delta_requests().len();
    xds.restart();
    xds.wait_delta_request(seen, |r| r.type_url == CLUSTER_TYPE);
    out.push(format!("client certificate after the reconnect {}", shown(&xds, xds.client_certificates().len() - 1)));
    out
}

#[test]
fn ads_over_mtls_serves_and_counts_the_handshake_as_envoy() {
    let out = same_as_envoy(mtls_session);
    assert_eq!(
        out,
        [
            "web: app",
            "static: local",
            "connected_state 1",
            "handshake 1",
            "fail_verify_error 0",
            "connection_error 0",
            "no_certificate 0",
            "first client certificate 0",
            "connections before the restart 1",
            "client certificate after the reconnect 1",
        ]
    );
}

/// A trusted CA that did not sign the management server's certificate: no
/// stream comes up, each attempt is counted, the static config serves.
fn wrong_ca_session(start: fn(&str) -> Started) -> Vec<String> {
    let local = http_upstream("local");
    let dir = TempDir::new("xds-tls-wrong-ca");
    let (server_ca, client_ca, other_ca) = (Pki::new("xDS Server CA"), Pki::new("xDS Client CA"), Pki::new("Other CA"));
    dir.file("xds-certificate.yaml", &certificate_file(&dir, "client", &client_ca.leaf(&["envoy"])));
    dir.file("xds-trusted-ca.yaml", &trusted_ca_file(&dir, &other_ca.ca_pem));
    let xds = XdsServer::start_tls(mtls_server_config(&server_ca.leaf(&["envoy-gateway"]), &client_ca.ca_pem));
    let (admin, _proxy) = start(&bootstrap(xds.port(), &dir, local.port()));
    wait_for("a failed handshake", || admin_stat(admin, "cluster.xds.ssl.fail_verify_error") >= 1);
    let mut out = vec![format!("static: {}", served(admin, "static"))];
    out.push(format!("connected_state {}", admin_stat(admin, "control_plane.connected_state")));
    out.extend(ssl_stats(admin));
    out.push(format!("streams {}", xds.streams()));
    out
}

#[test]
fn a_wrong_trusted_ca_fails_the_stream_and_the_static_config_serves_as_envoy() {
    let out = same_as_envoy(wrong_ca_session);
    assert_eq!(
        out,
        [
            "static: local",
            "connected_state 0",
            "handshake 0",
            "fail_verify_error 1",
            "connection_error 0",
            "no_certificate 0",
            "streams 0",
        ]
    );
}

/// Courier alone: the xDS cluster's TLS shows in `/certs` and its
/// `ssl.*` stats as any cluster's.
#[test]
fn the_xds_clusters_secrets_load_from_their_files() {
    let local = http_upstream("local");
    let dir = TempDir::new("xds-tls-certs");
    let (server_ca, client_ca) = (Pki::new("xDS Server CA"), Pki::new("xDS Client CA"));
    dir.file("xds-certificate.yaml", &certificate_file(&dir, "client", &client_ca.leaf(&["envoy"])));
    dir.file("xds-trusted-ca.yaml", &trusted_ca_file(&dir, &server_ca.ca_pem));
    let xds = XdsServer::start_tls(mtls_server_config(&server_ca.leaf(&["envoy-gateway"]), &client_ca.ca_pem));
    xds.push(CLUSTER_TYPE, "c1", clusters(&[]));
    xds.push(LISTENER_TYPE, "l1", vec![]);
    let c = Courier::start(&bootstrap(xds.port(), &dir, local.port()), 1);
    c.wait_stat("control_plane.connected_state", |v| v == 1);
    for secret in ["xds_certificate", "xds_trusted_ca"] {
        assert_eq!(c.stat(&format!("sds.{secret}.update_success")), Some(1), "{secret}");
    }
    let (_, certs) = c.admin_get("/certs");
    assert!(certs.contains("\"dns\": \"envoy\""), "{certs}");
    assert_eq!(xds.client_certificates().len(), 1);
}
