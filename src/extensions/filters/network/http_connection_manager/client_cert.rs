//! `x-forwarded-client-cert` (XFCC): what the connection manager tells the
//! upstream of the client's certificate, as Envoy's `mutateXfccRequestHeader`.
//!
//! `forward_client_cert_details` says what happens to the header a request came
//! with: removed (SANITIZE, the default, and for any connection without a client
//! certificate unless ALWAYS_FORWARD_ONLY), passed on (FORWARD_ONLY,
//! ALWAYS_FORWARD_ONLY), extended with this hop's element (APPEND_FORWARD) or
//! replaced by it (SANITIZE_SET). The element is `By=<each URI SAN of the
//! certificate Courier presented>`, `Hash=<SHA-256 of the client's>` and what
//! `set_current_client_cert_details` asks for, in Envoy's order:
//! `Cert="<its URL-encoded PEM>"`, `Chain="<the chain's>"`,
//! `Subject="<RFC 2253>"`, `URI=<each URI SAN>` (`URI=` when none), `DNS=<each
//! DNS SAN>`, joined by `;`.

use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::{
    ForwardClientCertDetails, SetCurrentClientCertDetails,
};
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

use crate::config::{ConfigError, FieldPath};
use crate::network::tls::{url_encoded_pem, DownstreamTlsInfo, PeerCertificate};

const XFCC: HeaderName = HeaderName::from_static("x-forwarded-client-cert");

/// `forward_client_cert_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardClientCert {
    Sanitize,
    ForwardOnly,
    AppendForward,
    SanitizeSet,
    AlwaysForwardOnly,
}

/// `forward_client_cert_details` and `set_current_client_cert_details`, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertConfig {
    pub forward: ForwardClientCert,
    pub subject: bool,
    pub uri: bool,
    pub cert: bool,
    pub chain: bool,
    pub dns: bool,
}

impl ClientCertConfig {
    /// `path` points at the connection manager.
    pub fn from_proto(
        forward: i32,
        details: Option<&SetCurrentClientCertDetails>,
        path: &FieldPath,
    ) -> Result<ClientCertConfig, ConfigError> {
        let forward = match ForwardClientCertDetails::try_from(forward) {
            Ok(ForwardClientCertDetails::Sanitize) => ForwardClientCert::Sanitize,
            Ok(ForwardClientCertDetails::ForwardOnly) => ForwardClientCert::ForwardOnly,
            Ok(ForwardClientCertDetails::AppendForward) => ForwardClientCert::AppendForward,
            Ok(ForwardClientCertDetails::SanitizeSet) => ForwardClientCert::SanitizeSet,
            Ok(ForwardClientCertDetails::AlwaysForwardOnly) => ForwardClientCert::AlwaysForwardOnly,
            Err(_) => return Err(path.field_error("forward_client_cert_details", "not a known value")),
        };
        let d = details.cloned().unwrap_or_default();
        Ok(ClientCertConfig {
            forward,
            subject: d.subject.is_some_and(|b| b.value),
            uri: d.uri,
            cert: d.cert,
            chain: d.chain,
            dns: d.dns,
        })
    }

    /// Applies the policy to a request that arrived over `tls` (`None`: plaintext).
    pub fn mutate(&self, h: &mut HeaderMap, tls: Option<&DownstreamTlsInfo>) {
        if self.forward == ForwardClientCert::AlwaysForwardOnly {
            return;
        }
        // A certificate that cannot be read counts as none (it passed verification,
        // so this is a reader's limit, not a client's trick).
        let peer = tls.and_then(|t| t.peer.as_ref());
        let Some(peer) = peer.filter(|_| self.forward != ForwardClientCert::Sanitize) else {
            h.remove(XFCC);
            return;
        };
        if self.forward == ForwardClientCert::ForwardOnly {
            return;
        }
        let Some(tls) = tls else { return };
        let element = self.element(peer, tls);
        let value = match (self.forward, h.get(XFCC).and_then(|v| v.to_str().ok())) {
            (ForwardClientCert::AppendForward, Some(existing)) if !existing.is_empty() => {
                format!("{existing},{element}")
            }
            _ => element,
        };
        match HeaderValue::from_str(&value) {
            Ok(v) => {
                h.insert(XFCC, v);
            }
            Err(_) => {
                h.remove(XFCC);
            }
        }
    }

    /// This hop's element for the client's certificate.
    fn element(&self, cert: &PeerCertificate, tls: &DownstreamTlsInfo) -> String {
        let mut parts: Vec<String> = tls.local_uri_sans().map(|u| format!("By={u}")).collect();
        parts.push(format!("Hash={}", cert.sha256));
        let chain = &tls.peer_certificates;
        if self.cert {
            if let Some(own) = chain.first() {
                parts.push(format!("Cert=\"{}\"", url_encoded_pem([own.as_ref()])));
            }
        }
        if self.chain && !chain.is_empty() {
            parts.push(format!("Chain=\"{}\"", url_encoded_pem(chain.iter().map(|c| c.as_ref()))));
        }
        if self.subject {
            parts.push(format!("Subject=\"{}\"", cert.subject));
        }
        if self.uri {
            if cert.uri_sans.is_empty() {
                parts.push("URI=".into());
            }
            parts.extend(cert.uri_sans.iter().map(|u| format!("URI={u}")));
        }
        if self.dns {
            parts.extend(cert.dns_sans.iter().map(|d| format!("DNS={d}")));
        }
        parts.join(";")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/C=US/O=Example, Inc./CN=client.test`, DNS client.test and alt.test, URI
    /// spiffe://example.org/client; subject and hash as `openssl x509 -nameopt
    /// RFC2253` and `sha256sum` of its DER print them.
    const CERT: &str = include_str!("../../../transport_sockets/tls/testdata/xfcc-client-cert.pem");
    const HASH: &str = "681e4d2ceb4df0fe4cd0237cca544007b94801d01190ee48ae1766a5fb1cd520";

    fn session() -> DownstreamTlsInfo {
        let der: rustls_pki_types::CertificateDer<'static> =
            rustls_pki_types::pem::PemObject::from_pem_slice(CERT.as_bytes()).expect("test certificate");
        DownstreamTlsInfo {
            peer: crate::extensions::transport_sockets::tls::peer_certificate(der.as_ref()).map(Box::new),
            peer_certificates: vec![der],
            local_certificate: Some(crate::network::tls::LocalCertificate::of_details(
                crate::network::tls::CertificateDetails {
                    path: "<inline>".into(),
                    serial_number: "01".into(),
                    subject: "CN=proxy".into(),
                    subject_alt_names: vec![crate::network::tls::SubjectAltName::Uri(
                        "spiffe://example.org/proxy".into(),
                    )],
                    valid_from: 0,
                    expiration_time: 0,
                },
            )),
            ..Default::default()
        }
    }

    fn config(forward: ForwardClientCert, subject: bool, uri: bool, dns: bool) -> ClientCertConfig {
        ClientCertConfig { forward, subject, uri, cert: false, chain: false, dns }
    }

    fn xfcc(cfg: &ClientCertConfig, incoming: Option<&str>, tls: Option<&DownstreamTlsInfo>) -> Option<String> {
        let mut h = HeaderMap::new();
        if let Some(v) = incoming {
            h.insert(XFCC, HeaderValue::from_str(v).expect("value"));
        }
        cfg.mutate(&mut h, tls);
        h.get(XFCC).map(|v| v.to_str().expect("ascii").to_string())
    }

    #[test]
    fn each_mode_as_envoy() {
        let tls = session();
        let all = config(ForwardClientCert::SanitizeSet, true, true, true);
        assert_eq!(
            xfcc(&all, Some("By=x;Hash=y"), Some(&tls)).as_deref(),
            Some(&*format!(
                "By=spiffe://example.org/proxy;Hash={HASH};Subject=\"CN=client.test,O=Example\\, Inc.,C=US\";URI=spiffe://example.org/client;\
                 DNS=client.test;DNS=alt.test"
            ))
        );
        let append = config(ForwardClientCert::AppendForward, false, false, true);
        assert_eq!(
            xfcc(&append, Some("By=x;Hash=y"), Some(&tls)).as_deref(),
            Some(&*format!("By=x;Hash=y,By=spiffe://example.org/proxy;Hash={HASH};DNS=client.test;DNS=alt.test"))
        );
        assert_eq!(xfcc(&append, Some("By=x"), None), None, "no client certificate: sanitized");
        let keep = config(ForwardClientCert::ForwardOnly, false, false, false);
        assert_eq!(xfcc(&keep, Some("By=x"), Some(&tls)).as_deref(), Some("By=x"));
        let sanitize = config(ForwardClientCert::Sanitize, true, true, true);
        assert_eq!(xfcc(&sanitize, Some("By=x"), Some(&tls)), None);
        let always = config(ForwardClientCert::AlwaysForwardOnly, false, false, false);
        assert_eq!(xfcc(&always, Some("By=x"), None).as_deref(), Some("By=x"));
    }

    #[test]
    fn cert_and_chain_are_the_pem_url_encoded_as_envoy_prints_them() {
        let cfg =
            ClientCertConfig { cert: true, chain: true, ..config(ForwardClientCert::SanitizeSet, false, false, false) };
        let pem: String = CERT
            .chars()
            .map(|c| match c {
                '\n' => "%0A".to_string(),
                ' ' => "%20".into(),
                '+' => "%2B".into(),
                '/' => "%2F".into(),
                '=' => "%3D".into(),
                c => c.to_string(),
            })
            .collect();
        let expected = format!("By=spiffe://example.org/proxy;Hash={HASH};Cert=\"{pem}\";Chain=\"{pem}\"");
        assert_eq!(xfcc(&cfg, None, Some(&session())).as_deref(), Some(expected.as_str()));
    }
}
