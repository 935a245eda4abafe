//! Test certificates made at test time (nothing secret is committed): a CA,
//! server certificates for DNS names and a client certificate, as PEM, written to
//! a directory so a config can name them by `filename`; and rustls configs for
//! the test clients and upstreams that use them.

#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SerialNumber};

/// A CA and what it signed.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    pub ca_pem: String,
}

/// A certificate (chain PEM) and its key (PEM).
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.serial_number = Some(serial_for(name));
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA cert");
        let ca_pem = ca.pem();
        Pki { ca, ca_pem }
    }

    /// A CA named `name` that this one signed; its `ca_pem` is its own
    /// certificate (a peer shows it after its leaf).
    pub fn intermediate(&self, name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.serial_number = Some(serial_for(name));
        let ca = CertifiedIssuer::signed_by(params, KeyPair::generate().expect("CA key"), &self.ca).expect("CA cert");
        let ca_pem = ca.pem();
        Pki { ca, ca_pem }
    }

    /// This CA's CRL (PEM), revoking the certificates it made for each of
    /// `revoked` (their first name); `expired`: its next update has passed.
    pub fn crl(&self, revoked: &[&str], expired: bool) -> String {
        let revoked_certs = revoked
            .iter()
            .map(|name| rcgen::RevokedCertParams {
                serial_number: serial_for(name),
                revocation_time: rcgen::date_time_ymd(2024, 1, 1),
                reason_code: None,
                invalidity_date: None,
            })
            .collect();
        let params = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: if expired { rcgen::date_time_ymd(2024, 1, 2) } else { rcgen::date_time_ymd(4000, 1, 1) },
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params.signed_by(&self.ca).expect("CRL").pem().expect("CRL PEM")
    }

    /// A successful OCSP response (DER) saying "good" for the certificate this
    /// CA made for `name`, valid until `next_update` (GeneralizedTime text, e.g.
    /// `40000101000000Z`; `None`: no nextUpdate). Its signature is junk: neither
    /// Envoy nor Courier checks it (a client would).
    pub fn ocsp_response(&self, name: &str, next_update: Option<&str>) -> Vec<u8> {
        fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            match content.len() {
                n if n < 0x80 => out.push(n as u8),
                n => out.extend([0x82, (n >> 8) as u8, n as u8]),
            }
            out.extend(content);
            out
        }
        let (seq, octets, time) = (0x30, 0x04, 0x18);
        let sha1 = tlv(seq, &tlv(0x06, &[0x2b, 0x0e, 0x03, 0x02, 0x1a]));
        let serial = tlv(0x02, &serial_for(name).to_bytes());
        let cert_id = tlv(seq, &[sha1, tlv(octets, &[1; 20]), tlv(octets, &[2; 20]), serial].concat());
        let mut single = [cert_id, vec![0x80, 0x00], tlv(time, b"20240101000000Z")].concat();
        if let Some(next) = next_update {
            single.extend(tlv(0xa0, &tlv(time, next.as_bytes())));
        }
        let responder = tlv(0xa2, &tlv(octets, &[3; 20]));
        let tbs = tlv(seq, &[responder, tlv(time, b"20240101000000Z"), tlv(seq, &tlv(seq, &single))].concat());
        let basic = tlv(seq, &[tbs, tlv(seq, &tlv(0x06, &[0x2a])), tlv(0x03, &[0, 0])].concat());
        let basic_oid = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01];
        let bytes = tlv(seq, &[tlv(0x06, &basic_oid), tlv(octets, &basic)].concat());
        tlv(seq, &[tlv(0x0a, &[0]), tlv(0xa0, &bytes)].concat())
    }

    /// A certificate for `names` (DNS names, addresses, `a@b` e-mail addresses);
    /// the first is its CN.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, Vec::new())
    }

    /// `leaf` with the TLS feature extension `status_request` (RFC 7633's
    /// "must staple").
    pub fn must_staple_leaf(&self, names: &[&str]) -> Leaf {
        let tls_feature = [1, 3, 6, 1, 5, 5, 7, 1, 24];
        // SEQUENCE { INTEGER 5 }: status_request.
        let status_request = vec![0x30, 0x03, 0x02, 0x01, 0x05];
        self.leaf_with(names, vec![rcgen::CustomExtension::from_oid_content(&tls_feature, status_request)])
    }

    fn leaf_with(&self, names: &[&str], extensions: Vec<rcgen::CustomExtension>) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("params");
        // rcgen reads addresses as IP SANs, the rest as DNS names: a name with
        // an `@` is an e-mail address (rfc822Name).
        for san in &mut params.subject_alt_names {
            if let rcgen::SanType::DnsName(name) = san {
                if name.as_str().contains('@') {
                    *san = rcgen::SanType::Rfc822Name(name.as_str().try_into().expect("e-mail SAN"));
                }
            }
        }
        params.custom_extensions = extensions;
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        params.serial_number = Some(serial_for(names.first().copied().unwrap_or("leaf")));
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }
}

/// A serial made from the certificate's name: certificates made for the same
/// names in two runs (Envoy's and Courier's, in the compat suite) have the same
/// serial, as they have the same validity (rcgen's fixed default), so `/certs`
/// pages compare whole. Its top bit is clear, so DER needs no zero byte.
fn serial_for(name: &str) -> SerialNumber {
    let mut bytes = [0u8; 8];
    for (i, b) in name.bytes().enumerate() {
        bytes[i % 8] = bytes[i % 8].wrapping_mul(31).wrapping_add(b);
    }
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}

impl Leaf {
    /// Writes `<stem>.crt` and `<stem>.key` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert_pem).expect("write cert");
        std::fs::write(&key, &self.key_pem).expect("write key");
        (cert, key)
    }
}

// Tests use ring as Courier does; rustls deprecates it for lacking post-quantum
// key exchange only.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()).map(|c| c.expect("PEM cert")).collect()
}

fn key(pem: &str) -> rustls::pki_types::PrivateKeyDer<'static> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("PEM key")
}

/// A client trusting `ca_pem`, showing `client` if given, offering `alpn`.
pub fn client_config(ca_pem: &str, client: Option<&Leaf>, alpn: &[&str]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca_pem) {
        roots.add(c).expect("CA");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match client {
        Some(l) => builder.with_client_auth_cert(certs(&l.cert_pem), key(&l.key_pem)).expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

/// A server showing `leaf`, requiring no client certificate.
pub fn server_config(leaf: &Leaf) -> Arc<rustls::ServerConfig> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs(&leaf.cert_pem), key(&leaf.key_pem))
        .expect("server cert");
    Arc::new(config)
}

/// A server showing `leaf` that requires a client certificate `client_ca_pem` signed.
pub fn mtls_server_config(leaf: &Leaf, client_ca_pem: &str) -> rustls::ServerConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(client_ca_pem) {
        roots.add(c).expect("CA");
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .expect("client verifier");
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&leaf.cert_pem), key(&leaf.key_pem))
        .expect("server cert")
}

/// `backend` behind TLS: a test upstream that terminates TLS with `leaf` and
/// relays each connection to `backend` (which reports what it was sent). The
/// backend lives as long as the front.
pub fn tls_front(backend: crate::shared_net::Upstream, leaf: &Leaf) -> crate::shared_net::Upstream {
    tls_front_with(backend, server_config(leaf))
}

/// `tls_front` terminating TLS with `config` (`mtls_server_config`: it
/// requires a client certificate).
pub fn tls_front_with(
    backend: crate::shared_net::Upstream,
    config: Arc<rustls::ServerConfig>,
) -> crate::shared_net::Upstream {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let backend = Arc::new(backend);
    crate::shared_net::Upstream::start(move |stream| {
        let (acceptor, to) = (acceptor.clone(), backend.addr);
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async move {
            if stream.set_nonblocking(true).is_err() {
                return;
            }
            let Ok(stream) = tokio::net::TcpStream::from_std(stream) else { return };
            let Ok(mut tls) = acceptor.accept(stream).await else { return };
            let Ok(mut up) = tokio::net::TcpStream::connect(to).await else { return };
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
        });
    })
}
