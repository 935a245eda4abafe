//! TLS secrets: `static_resources.secrets` named by a context, and SDS from a
//! file (`sds_config.path_config_source`). Certificates are made at test time;
//! a secret file is replaced by writing a new one beside it and renaming it
//! over (as Kubernetes and Envoy's docs do), and each test waits for the
//! update through `sds.<secret>.update_success` (or `update_rejected`) before
//! looking at which certificate a new handshake gets.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::harness::*;
use crate::shared_net::http_upstream;
use crate::shared_tls::{client_config, tls_front, Leaf, Pki};

pub(crate) const SERVER_NAME: &str = "server.test";
const SECRET: &str = "envoy.extensions.transport_sockets.tls.v3.Secret";

/// An HTTPS listener `web` (stats `listener.tls_web.*`) answering `hi` itself,
/// with `common` as its `common_tls_context` body (at column 0).
pub(crate) fn https_listener(common: &str) -> String {
    let common: String = common.lines().map(|l| format!("            {l}\n")).collect();
    format!(
        r#"  - name: web
    stat_prefix: tls_web
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
{common}      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                direct_response: {{ status: 200, body: {{ inline_string: hi }} }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
"#
    )
}

/// A `tls_certificate` secret body naming `cert`'s files (at column 4).
fn certificate_secret(name: &str, (cert, key): &(std::path::PathBuf, std::path::PathBuf)) -> String {
    format!(
        "  - name: {name}\n    tls_certificate:\n      certificate_chain: {{ filename: {} }}\n      private_key: {{ filename: {} }}\n",
        cert.display(),
        key.display()
    )
}

/// An SDS file holding one secret (a `certificate_secret`-style fragment).
fn sds_file(version: &str, fragment: &str) -> String {
    let item = fragment.replacen("  - ", &format!("  - \"@type\": type.googleapis.com/{SECRET}\n    "), 1);
    format!("version_info: \"{version}\"\nresources:\n{item}")
}

pub(crate) fn der(leaf: &Leaf) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).expect("PEM")
}

/// A TLS connection to `addr` kept open: the certificate it was shown, and
/// GETs on it, one after another.
pub(crate) struct Session {
    tls: rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
}

impl Session {
    pub(crate) fn open(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Result<Session, String> {
        let name = ServerName::try_from(SERVER_NAME).map_err(|e| e.to_string())?;
        let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, connect(addr));
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).map_err(|e| format!("handshake: {e}"))?;
        }
        Ok(Session { tls })
    }

    pub(crate) fn peer(&self) -> CertificateDer<'static> {
        self.tls.conn.peer_certificates().and_then(|c| c.first()).expect("a server certificate").clone().into_owned()
    }

    /// A keep-alive GET; the status and body.
    pub(crate) fn get(&mut self) -> Result<(u16, String), String> {
        let request = format!("GET / HTTP/1.1\r\nhost: {SERVER_NAME}\r\n\r\n");
        self.tls.write_all(request.as_bytes()).map_err(|e| format!("write: {e}"))?;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // `hi` with a content-length: the response ends with the body.
        while !out.ends_with(b"\r\n\r\nhi") {
            let n = self.tls.read(&mut buf).map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err(format!("closed after {:?}", String::from_utf8_lossy(&out)));
            }
            out.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text.get(9..12).and_then(|s| s.parse().ok()).ok_or_else(|| format!("no status in {text:?}"))?;
        Ok((status, "hi".into()))
    }
}

/// A CA, and static secrets of a certificate it signed for `server.test`
/// (`server_cert`) and of itself as a validation context (`client_ca`).
fn mtls_secrets(dir: &TempDir) -> (Pki, String) {
    let pki = Pki::new("Courier Test CA");
    let files = pki.leaf(&[SERVER_NAME]).write(&dir.0, "server");
    let ca = dir.file("ca.crt", &pki.ca_pem);
    let secrets = format!(
        "{}  - name: client_ca\n    validation_context:\n      trusted_ca: {{ filename: {} }}\n",
        certificate_secret("server_cert", &files),
        ca.display()
    );
    (pki, secrets)
}

/// Courier serving `one` (for `server.test`) from the secret `web_cert` of
/// the SDS file `sds.yaml`; `two` (also for `two.server.test`) is to rotate to.
struct SdsListener {
    dir: TempDir,
    one: Leaf,
    two: Leaf,
    files1: (std::path::PathBuf, std::path::PathBuf),
    files2: (std::path::PathBuf, std::path::PathBuf),
    c: Courier,
    /// Trusts the CA of both.
    client: Arc<rustls::ClientConfig>,
}

impl SdsListener {
    fn start(tag: &str) -> SdsListener {
        let dir = TempDir::new(tag);
        let pki = Pki::new("Courier Test CA");
        let (one, two) = (pki.leaf(&[SERVER_NAME]), pki.leaf(&["two.server.test", SERVER_NAME]));
        let (files1, files2) = (one.write(&dir.0, "one"), two.write(&dir.0, "two"));
        dir.file("sds.yaml", &sds_file("v1", &certificate_secret("web_cert", &files1)));
        let common = format!(
            "tls_certificate_sds_secret_configs:\n- name: web_cert\n  sds_config:\n    path_config_source: {{ path: {}/sds.yaml }}",
            dir.0.display()
        );
        let c = start(&[https_listener(&common)], &[], "");
        let client = client_config(&pki.ca_pem, None, &[]);
        SdsListener { dir, one, two, files1, files2, c, client }
    }
}

/// Courier with `static_resources` of `listeners`, `clusters` and `secrets`
/// (fragments), as node `test`/`test` (Envoy requires a node for SDS).
fn start(listeners: &[String], clusters: &[String], secrets: &str) -> Courier {
    let secrets = if secrets.is_empty() { String::new() } else { format!("  secrets:\n{secrets}") };
    let yaml = format!("node: {{ id: test, cluster: test }}\n{}{secrets}", config(listeners, clusters));
    Courier::start(&yaml, 1)
}

#[test]
fn a_static_secret_serves_https_and_an_unknown_name_is_refused() {
    let dir = TempDir::new("sds-static");
    let pki = Pki::new("Courier Test CA");
    let leaf = pki.leaf(&[SERVER_NAME]);
    let files = leaf.write(&dir.0, "server");
    let c = start(
        &[https_listener("tls_certificate_sds_secret_configs: [{ name: server_cert }]")],
        &[],
        &certificate_secret("server_cert", &files),
    );
    let mut session = Session::open(c.listener("web"), client_config(&pki.ca_pem, None, &[])).expect("handshake");
    assert_eq!(session.peer(), der(&leaf));
    assert_eq!(session.get(), Ok((200, "hi".into())));
    assert_eq!(c.stat("listener.tls_web.server_ssl_socket_factory.ssl_context_update_by_sds"), Some(0));
    let (_, dump) = c.admin_get("/config_dump");
    let dump: serde_json::Value = serde_json::from_str(&dump).expect("JSON");
    let statics = &crate::harness::dumped_config(&dump, "SecretsConfigDump")["static_secrets"][0];
    assert_eq!(statics["name"], "server_cert");
    assert_eq!(statics["secret"]["tls_certificate"]["private_key"]["filename"], "[redacted]");
    let in_bootstrap = &dump["configs"][0]["bootstrap"]["static_resources"]["secrets"][0];
    assert_eq!(in_bootstrap["tls_certificate"]["private_key"]["filename"], "[redacted]", "as Envoy: everywhere");

    // As Envoy 1.40: "Unknown static secret: <name>", here with the field.
    let yaml = format!(
        "node: {{ id: test, cluster: test }}\n{}  secrets:\n{}",
        config(&[https_listener("tls_certificate_sds_secret_configs: [{ name: nope }]")], &[]),
        certificate_secret("server_cert", &files)
    );
    let (ok, out) = validate(&yaml);
    assert!(!ok, "{out}");
    assert!(
        out.contains("common_tls_context.tls_certificate_sds_secret_configs[0].name: Unknown static secret: nope"),
        "{out}"
    );
    // As Envoy 1.40, a listener's inline and SDS certificates do not mix.
    let mixed = format!(
        "tls_certificates:\n- certificate_chain: {{ filename: {} }}\n  private_key: {{ filename: {} }}\ntls_certificate_sds_secret_configs: [{{ name: server_cert }}]",
        files.0.display(),
        files.1.display()
    );
    let yaml =
        format!("{}  secrets:\n{}", config(&[https_listener(&mixed)], &[]), certificate_secret("server_cert", &files));
    let (ok, out) = validate(&yaml);
    assert!(
        !ok && out.contains(
            "tls_certificate_sds_secret_configs: SDS and non-SDS TLS certificates may not be mixed in server contexts"
        ),
        "{out}"
    );
    // A secret whose key is not its certificate's is refused where it is.
    let other = pki.leaf(&["other.test"]).write(&dir.0, "other");
    let mixed = (files.0.clone(), other.1);
    let yaml = format!(
        "{}  secrets:\n{}",
        config(&[https_listener("tls_certificate_sds_secret_configs: [{ name: server_cert }]")], &[]),
        certificate_secret("server_cert", &mixed)
    );
    let (ok, out) = validate(&yaml);
    assert!(!ok && out.contains("invalid certificate or key"), "{out}");
    // As Envoy 1.40, a static secret no context names is never read: its
    // missing file is no error.
    let missing = (dir.0.join("absent.crt"), dir.0.join("absent.key"));
    let yaml = format!(
        "{}  secrets:\n{}{}",
        config(&[https_listener("tls_certificate_sds_secret_configs: [{ name: server_cert }]")], &[]),
        certificate_secret("server_cert", &files),
        certificate_secret("unused", &missing)
    );
    let (ok, out) = validate(&yaml);
    assert!(ok, "{out}");
    // Named by a context, it is read at start-up and refused.
    let yaml = format!(
        "{}  secrets:\n{}",
        config(&[https_listener("tls_certificate_sds_secret_configs: [{ name: unused }]")], &[]),
        certificate_secret("unused", &missing)
    );
    let (ok, out) = validate(&yaml);
    assert!(!ok && out.contains("absent.crt"), "{out}");
}

#[test]
fn a_static_validation_secret_checks_client_certificates() {
    let dir = TempDir::new("sds-static-ca");
    let (pki, secrets) = mtls_secrets(&dir);
    let common = "tls_certificate_sds_secret_configs: [{ name: server_cert }]\nvalidation_context_sds_secret_config: { name: client_ca }";
    let c = start(&[https_listener(common)], &[], &secrets);
    let addr = c.listener("web");
    let stranger = Pki::new("Other CA").leaf(&["client.test"]);
    let refused = Session::open(addr, client_config(&pki.ca_pem, Some(&stranger), &[])).and_then(|mut s| s.get());
    assert!(refused.is_err(), "a client of another CA: {refused:?}");
    c.wait_stat("listener.tls_web.ssl.fail_verify_error", |v| v == 1);
    let client = pki.leaf(&["client.test"]);
    let mut ok = Session::open(addr, client_config(&pki.ca_pem, Some(&client), &[])).expect("mTLS handshake");
    assert_eq!(ok.get(), Ok((200, "hi".into())));
}

#[test]
fn an_sds_file_serves_and_a_moved_in_secret_rotates_new_handshakes_only() {
    let SdsListener { dir, one, two, files2, c, client, .. } = SdsListener::start("sds-rotate");
    let addr = c.listener("web");
    let mut old = Session::open(addr, client.clone()).expect("handshake");
    assert_eq!(old.peer(), der(&one));
    assert_eq!(old.get(), Ok((200, "hi".into())));
    for (stat, v) in [("update_attempt", 1), ("update_success", 1), ("update_rejected", 0), ("init_fetch_timeout", 0)] {
        assert_eq!(c.stat(&format!("sds.web_cert.{stat}")), Some(v), "{stat}");
    }
    assert_eq!(c.stat("listener.tls_web.server_ssl_socket_factory.ssl_context_update_by_sds"), Some(1));

    swap_in(&dir.0, "sds.yaml", &sds_file("v2", &certificate_secret("web_cert", &files2)));
    c.wait_stat("sds.web_cert.update_success", |v| v == 2);
    let fresh = Session::open(addr, client.clone()).expect("handshake after the rotation");
    assert_eq!(fresh.peer(), der(&two), "a new handshake gets the new certificate");
    assert_eq!(old.get(), Ok((200, "hi".into())), "the open connection goes on");
    assert_eq!(old.peer(), der(&one));
    assert_eq!(c.stat("listener.tls_web.server_ssl_socket_factory.ssl_context_update_by_sds"), Some(2));
    // `/certs` shows the certificate now served, read in from its file as Envoy does.
    let (_, certs) = c.admin_get("/certs");
    assert!(certs.contains("\"dns\": \"two.server.test\""), "{certs}");
    assert!(certs.contains("\"path\": \"\\u003cinline\\u003e\""), "{certs}");
    // `/config_dump` shows the secret as loaded, its key redacted as Envoy 1.40 prints it.
    let (_, dump) = c.admin_get("/config_dump");
    let dump: serde_json::Value = serde_json::from_str(&dump).expect("JSON");
    let secrets = crate::harness::dumped_config(&dump, "SecretsConfigDump");
    assert_eq!(secrets["@type"], "type.googleapis.com/envoy.admin.v3.SecretsConfigDump");
    let active = &secrets["dynamic_active_secrets"][0];
    assert_eq!((&active["name"], &active["version_info"]), (&"web_cert".into(), &"v2".into()));
    let certificate = &active["secret"]["tls_certificate"];
    assert_eq!(certificate["private_key"]["inline_bytes"], "W3JlZGFjdGVkXQ==", "base64 of [redacted]");
    assert!(certificate["certificate_chain"]["inline_bytes"].is_string(), "the chain, read in: {certificate}");

    // The same secret under a new version: counted, and no context is rebuilt (as Envoy).
    swap_in(&dir.0, "sds.yaml", &sds_file("v3", &certificate_secret("web_cert", &files2)));
    c.wait_stat("sds.web_cert.update_success", |v| v == 3);
    assert_eq!(c.stat("listener.tls_web.server_ssl_socket_factory.ssl_context_update_by_sds"), Some(2));
}

#[test]
fn a_bad_new_secret_is_rejected_counted_and_the_old_one_serves() {
    let SdsListener { dir, one, files1, files2, c, client, .. } = SdsListener::start("sds-reject");
    let addr = c.listener("web");

    // The new certificate with the old key.
    let mismatched = (files2.0.clone(), files1.1.clone());
    swap_in(&dir.0, "sds.yaml", &sds_file("v2", &certificate_secret("web_cert", &mismatched)));
    c.wait_stat("sds.web_cert.update_rejected", |v| v == 1);
    assert!(c.log().contains("invalid certificate or key"), "the reason is logged");
    // A file whose certificate is no PEM.
    let garbage = dir.file("garbage.crt", "not a certificate");
    swap_in(&dir.0, "sds.yaml", &sds_file("v3", &certificate_secret("web_cert", &(garbage, files2.1.clone()))));
    c.wait_stat("sds.web_cert.update_rejected", |v| v == 2);
    // A file naming another secret: Envoy's message.
    swap_in(&dir.0, "sds.yaml", &sds_file("v4", &certificate_secret("other", &files2)));
    c.wait_stat("sds.web_cert.update_rejected", |v| v == 3);
    assert!(c.log().contains("Unexpected SDS secret (expecting web_cert): other"), "{}", c.log());

    let mut s = Session::open(addr, client).expect("handshake");
    assert_eq!(s.peer(), der(&one), "the old certificate still serves");
    assert_eq!(s.get(), Ok((200, "hi".into())));
    assert_eq!(c.stat("sds.web_cert.update_success"), Some(1));
    assert_eq!(c.stat("listener.tls_web.server_ssl_socket_factory.ssl_context_update_by_sds"), Some(1));
}

#[test]
fn an_upstream_validation_context_from_sds_verifies_the_upstream() {
    let dir = TempDir::new("sds-upstream");
    let pki = Pki::new("Courier Test CA");
    let backend = tls_front(http_upstream("up"), &pki.leaf(&["up.test"]));
    let ca = dir.file("ca.crt", &pki.ca_pem);
    let other_ca = dir.file("other.crt", &Pki::new("Other CA").ca_pem);
    let vc = |ca: &Path| {
        format!("  - name: up_ca\n    validation_context:\n      trusted_ca: {{ filename: {} }}\n", ca.display())
    };
    dir.file("sds.yaml", &sds_file("v1", &vc(&other_ca)));
    let cluster = format!(
        "{}    transport_socket:\n      name: envoy.transport_sockets.tls\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n        sni: up.test\n        common_tls_context:\n          validation_context_sds_secret_config:\n            name: up_ca\n            sds_config: {{ path_config_source: {{ path: {}/sds.yaml }} }}\n",
        static_cluster("app", &[backend.port()]),
        dir.0.display()
    );
    let listener = crate::http_util::http_listener(
        "plain",
        "",
        &crate::http_util::one_vhost(&crate::http_util::prefix_route("/", "app", "")),
        "",
    );
    let c = start(&[listener], std::slice::from_ref(&cluster), "");
    let addr = c.listener("plain");
    assert_eq!(http_request(addr, "GET", "/").0, 503, "a CA that did not sign the upstream");
    assert_eq!(c.stat("cluster.app.ssl.fail_verify_error"), Some(1));

    swap_in(&dir.0, "sds.yaml", &sds_file("v2", &vc(&ca)));
    c.wait_stat("sds.up_ca.update_success", |v| v == 2);
    assert_eq!(http_request(addr, "GET", "/").0, 200, "the upstream's CA, from the new secret");
    assert_eq!(c.stat("cluster.app.client_ssl_socket_factory.ssl_context_update_by_sds"), Some(2));

    // As Envoy 1.40, a cluster shows one certificate, from wherever it comes.
    let two = cluster.replace(
        "validation_context_sds_secret_config:",
        "tls_certificate_sds_secret_configs: [{ name: a }, { name: b }]\n          validation_context_sds_secret_config:",
    );
    let (ok, out) = validate(&config(&[], &[two]));
    assert!(
        !ok && out.contains(
            "tls_certificate_sds_secret_configs: Multiple TLS certificates are not supported for client contexts"
        ),
        "{out}"
    );
}

#[test]
fn a_combined_validation_context_merges_the_default_with_the_secret() {
    let dir = TempDir::new("sds-combined");
    let (pki, secrets) = mtls_secrets(&dir);
    // The names from the default context, the CA from the secret (as Envoy's MergeFrom).
    let common = "tls_certificate_sds_secret_configs: [{ name: server_cert }]\ncombined_validation_context:\n  default_validation_context:\n    match_typed_subject_alt_names:\n    - { san_type: DNS, matcher: { exact: client.test } }\n  validation_context_sds_secret_config: { name: client_ca }";
    let c = start(&[https_listener(common)], &[], &secrets);
    let addr = c.listener("web");
    let misnamed = pki.leaf(&["someone.test"]);
    let refused = Session::open(addr, client_config(&pki.ca_pem, Some(&misnamed), &[])).and_then(|mut s| s.get());
    assert!(refused.is_err(), "a name the default context does not match: {refused:?}");
    c.wait_stat("listener.tls_web.ssl.fail_verify_san", |v| v == 1);
    let stranger = Pki::new("Other CA").leaf(&["client.test"]);
    let refused = Session::open(addr, client_config(&pki.ca_pem, Some(&stranger), &[])).and_then(|mut s| s.get());
    assert!(refused.is_err(), "a CA the secret does not trust: {refused:?}");
    c.wait_stat("listener.tls_web.ssl.fail_verify_error", |v| v == 1);
    let client = pki.leaf(&["client.test"]);
    let mut ok = Session::open(addr, client_config(&pki.ca_pem, Some(&client), &[])).expect("mTLS handshake");
    assert_eq!(ok.get(), Ok((200, "hi".into())));
}

#[test]
fn a_context_waits_for_all_its_sds_secrets_and_a_missing_file_is_refused() {
    let dir = TempDir::new("sds-wait");
    let pki = Pki::new("Courier Test CA");
    let files = pki.leaf(&[SERVER_NAME]).write(&dir.0, "server");
    let ca = dir.file("ca.crt", &pki.ca_pem);
    dir.file("cert.yaml", "version_info: \"0\"\nresources: []\n");
    let ca_secret =
        format!("  - name: client_ca\n    validation_context:\n      trusted_ca: {{ filename: {} }}\n", ca.display());
    dir.file("ca.yaml", &sds_file("v1", &ca_secret));
    let d = dir.0.display();
    let common = format!(
        "tls_certificate_sds_secret_configs:\n- name: web_cert\n  sds_config: {{ path_config_source: {{ path: {d}/cert.yaml }} }}\nvalidation_context_sds_secret_config:\n  name: client_ca\n  sds_config: {{ path_config_source: {{ path: {d}/ca.yaml }} }}"
    );
    let c = start(&[https_listener(&common)], &[], "");
    let addr = c.listener("web");
    assert_eq!(c.stat("sds.web_cert.update_rejected"), Some(1), "Missing SDS resources");
    assert_eq!(c.stat("sds.client_ca.update_success"), Some(1));
    let client = pki.leaf(&["client.test"]);
    let mtls = client_config(&pki.ca_pem, Some(&client), &[]);
    assert!(Session::open(addr, mtls.clone()).is_err(), "no certificate to serve yet");
    c.wait_stat("listener.tls_web.server_ssl_socket_factory.downstream_context_secrets_not_ready", |v| v == 1);

    swap_in(&dir.0, "cert.yaml", &sds_file("v1", &certificate_secret("web_cert", &files)));
    c.wait_stat("sds.web_cert.update_success", |v| v == 1);
    let mut s = Session::open(addr, mtls).expect("handshake once both secrets are there");
    assert_eq!(s.get(), Ok((200, "hi".into())));
    drop(c);

    // As Envoy 1.40, a file that is not there stops the start.
    let yaml = format!(
        "node: {{ id: test, cluster: test }}\n{}",
        config(&[https_listener(&common.replace("cert.yaml", "absent.yaml"))], &[])
    );
    let (ok, out) = validate(&yaml);
    assert!(
        !ok && out
            .contains(&format!("paths must refer to an existing path in the system: '{d}/absent.yaml' does not exist")),
        "{out}"
    );
}

#[test]
fn a_file_the_secret_names_moved_into_place_reloads_it() {
    let SdsListener { dir: _dir, one, two, files1, files2, c, client } = SdsListener::start("sds-files");
    let addr = c.listener("web");
    // The new certificate first, its key not yet: as Envoy, a failed reload per
    // file watched (the chain's and the key's, here in one directory).
    std::fs::rename(&files2.0, &files1.0).expect("move the certificate in");
    c.wait_stat("sds.web_cert.key_rotation_failed", |v| v == 2);
    assert_eq!(Session::open(addr, client.clone()).expect("handshake").peer(), der(&one), "the old pair serves");
    std::fs::rename(&files2.1, &files1.1).expect("move the key in");
    c.wait_stat("listener.tls_web.server_ssl_socket_factory.ssl_context_update_by_sds", |v| v == 2);
    assert_eq!(Session::open(addr, client).expect("handshake").peer(), der(&two), "the new pair serves");
    assert_eq!(c.stat("sds.web_cert.update_success"), Some(1), "the SDS file itself did not change");
    assert_eq!(c.stat("sds.web_cert.key_rotation_failed"), Some(2));
}
