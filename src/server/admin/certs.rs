//! `/certs`: every TLS context's trusted CA and certificates, in Envoy's JSON
//! layout (`envoy.admin.v3.Certificates`). The details were read from the
//! certificates when the contexts were built (`network::tls::ContextCertificates`);
//! only `days_until_expiration` depends on the time of the request. A context
//! an SDS secret replaced shows its current certificates. Clusters'
//! contexts come first, then listeners' filter chains', each in config order.

use std::time::SystemTime;

use super::{Reply, JSON};
use crate::network::tls::{CertificateDetails, ContextCertificates, SubjectAltName};
use crate::server::Server;

pub(super) fn render(server: &Server) -> Reply {
    let now = unix_now();
    let contexts: Vec<String> = every_context(server).iter().map(|c| context(c.as_ref(), now)).collect();
    let body = format!("{{\n \"certificates\": {}\n}}\n", array(&contexts, 1));
    Reply::ok(JSON, escape_angle_brackets(&body))
}

/// The certificates of every TLS context, clusters' first; `None` for one
/// whose secrets have not loaded.
fn every_context(server: &Server) -> Vec<Option<ContextCertificates>> {
    let mut out = Vec::new();
    if let Some(cm) = server.cluster_manager.borrow().as_ref() {
        let clusters = cm.clusters();
        let tls = clusters.iter().filter_map(|c| c.tls.as_ref()).map(|t| t.context.current());
        out.extend(tls.map(|t| t.map(|t| t.certificates.clone())));
    }
    for listener in server.listener_manager.active().iter() {
        let chains = listener.config.filter_chains.chains();
        let tls = chains.filter_map(|c| c.transport_socket.as_ref()).map(|t| t.context.current());
        out.extend(tls.map(|t| t.map(|t| t.certificates.clone())));
    }
    out
}

/// `server.days_until_first_cert_expiring`: the fewest days any context's
/// certificate or trusted CA has left, as Envoy's; `None` without one.
pub(crate) fn days_until_first_expiring(server: &Server) -> Option<i64> {
    let now = unix_now();
    let contexts = every_context(server);
    let certs = contexts.iter().flatten().flat_map(|c| c.ca_cert.iter().chain(&c.cert_chain));
    certs.map(|c| days_left(c, now)).min()
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Whole days left, as BoringSSL's ASN1_TIME_diff counts them; none once expired.
fn days_left(c: &CertificateDetails, now: i64) -> i64 {
    (c.expiration_time - now).max(0) / 86_400
}

// serde_json's maps sort their keys; Envoy prints the proto's field order, so
// the objects are written out here, with Envoy's one-space indentation.

/// `items` (each already rendered at `depth + 1`) as a JSON array at `depth`.
fn array(items: &[String], depth: usize) -> String {
    if items.is_empty() {
        return "[]".into();
    }
    let pad = " ".repeat(depth + 1);
    let inner: Vec<String> = items.iter().map(|i| format!("{pad}{i}")).collect();
    format!("[\n{}\n{}]", inner.join(",\n"), " ".repeat(depth))
}

/// `fields` (values already rendered at `depth + 1`) as a JSON object at `depth`.
fn object(fields: &[(&str, String)], depth: usize) -> String {
    let pad = " ".repeat(depth + 1);
    let inner: Vec<String> = fields.iter().map(|(k, v)| format!("{pad}\"{k}\": {v}")).collect();
    format!("{{\n{}\n{}}}", inner.join(",\n"), " ".repeat(depth))
}

fn string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// One context, at depth 2 (inside `certificates`); `None`: its secrets are not loaded yet.
fn context(certs: Option<&ContextCertificates>, now: i64) -> String {
    let none = ContextCertificates::default();
    let certs = certs.unwrap_or(&none);
    let list = |v: &[CertificateDetails]| array(&v.iter().map(|c| certificate(c, now)).collect::<Vec<_>>(), 3);
    object(&[("ca_cert", list(&certs.ca_cert)), ("cert_chain", list(&certs.cert_chain))], 2)
}

/// One certificate, at depth 4.
fn certificate(c: &CertificateDetails, now: i64) -> String {
    let names: Vec<String> = c
        .subject_alt_names
        .iter()
        .filter_map(|n| match n {
            SubjectAltName::Dns(d) => Some(object(&[("dns", string(d))], 6)),
            SubjectAltName::Uri(u) => Some(object(&[("uri", string(u))], 6)),
            SubjectAltName::IpAddress(ip) => Some(object(&[("ip_address", string(&ip.to_string()))], 6)),
            // Envoy's `/certs` lists DNS, URI and IP names only.
            SubjectAltName::Email(_) => None,
        })
        .collect();
    let days = days_left(c, now);
    object(
        &[
            ("path", string(&c.path)),
            ("serial_number", string(&c.serial_number)),
            ("subject_alt_names", array(&names, 5)),
            // A uint64 in proto3 JSON: a string.
            ("days_until_expiration", string(&days.to_string())),
            ("valid_from", string(&timestamp(c.valid_from))),
            ("expiration_time", string(&timestamp(c.expiration_time))),
        ],
        4,
    )
}

/// A protobuf `Timestamp` in JSON: RFC 3339 UTC, no fraction for whole seconds.
fn timestamp(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = super::config_dump::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Envoy's protobuf JSON printer writes `<` and `>` as `\u003c` and `\u003e`
/// (`"<inline>"` comes out as `"\u003cinline\u003e"`); in JSON text they occur
/// only inside strings, so replacing them everywhere is exact.
fn escape_angle_brackets(text: &str) -> String {
    text.replace('<', "\\u003c").replace('>', "\\u003e")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_days() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(1_796_578_775), "2026-12-06T17:39:35Z");
        let cert = CertificateDetails {
            path: "<inline>".into(),
            serial_number: "0a".into(),
            subject: "CN=x".into(),
            subject_alt_names: vec![],
            valid_from: 0,
            expiration_time: 86_400 * 365,
        };
        assert!(certificate(&cert, 60).contains("\"days_until_expiration\": \"364\""));
        assert!(certificate(&cert, 86_400 * 400).contains("\"days_until_expiration\": \"0\""));
    }
}
