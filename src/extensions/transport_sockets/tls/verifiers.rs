//! The certificate verifiers of Courier's TLS contexts, on rustls's: each
//! verifies what Envoy's validation context verifies of a peer and no more. The
//! chain against `trusted_ca` (rustls's WebPKI verifiers; an upstream's name is
//! not checked against the SNI, as Envoy does not, but with
//! `auto_san_validation` against the request's host), then the leaf's names and
//! pins (`PeerChecks`); without a `trusted_ca`, only the pins.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::pins::{CertificatePins, PeerChecks};

/// BoringSSL answers an expired CRL with the certificate_expired alert
/// (`X509_V_ERR_CRL_HAS_EXPIRED`), where rustls would send unknown_ca.
fn expired_crl_as_expired(e: rustls::Error) -> rustls::Error {
    match e {
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::ExpiredRevocationList
            | rustls::CertificateError::ExpiredRevocationListContext { .. },
        ) => rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
        e => e,
    }
}

/// Envoy verifies the upstream's chain, and its name only by the subject-name
/// matchers: rustls's verifier, its name check forgiven, then the context's
/// checks of the leaf (names, pins). With `auto_san_validation` the name the
/// request asked for is checked too (`name`, handed to webpki).
#[derive(Debug)]
pub(super) struct ChainOnlyVerifier {
    pub webpki: Arc<rustls::client::WebPkiServerVerifier>,
    pub checks: PeerChecks,
    pub name: Option<ServerName<'static>>,
}

/// Makes a context's verifier for one request's host (`auto_san_validation`).
#[derive(Debug)]
pub(super) struct HostNameVerifier {
    pub webpki: Arc<rustls::client::WebPkiServerVerifier>,
    pub checks: PeerChecks,
}

impl crate::network::tls::NameVerifier for HostNameVerifier {
    fn verifier(&self, name: ServerName<'static>) -> Arc<dyn ServerCertVerifier> {
        Arc::new(ChainOnlyVerifier { webpki: self.webpki.clone(), checks: self.checks.clone(), name: Some(name) })
    }
}

impl ServerCertVerifier for ChainOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let checked_name = self.name.as_ref();
        match self.webpki.verify_server_cert(end_entity, intermediates, checked_name.unwrap_or(server_name), ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. },
            )) if checked_name.is_some() => Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(
                rustls::OtherError(Arc::new(crate::network::tls::SanMismatch)),
            ))),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. },
            ))
            | Ok(_) => self.checks.check(end_entity).map(|()| ServerCertVerified::assertion()),
            Err(e) => Err(expired_crl_as_expired(e)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crate::network::tls_session::note_peer_signature(dss.scheme);
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crate::network::tls_session::note_peer_signature(dss.scheme);
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// No `trusted_ca`: with `require_client_certificate` Envoy requires a client
/// certificate and accepts any that its pins (if any) accept; without it, a
/// certificate is asked for only to check pins. The handshake's signatures are
/// still checked.
#[derive(Debug)]
pub(super) struct UnverifiedClientCert {
    pub provider: Arc<CryptoProvider>,
    pub mandatory: bool,
    pub pins: CertificatePins,
}

impl rustls::server::danger::ClientCertVerifier for UnverifiedClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        self.pins.check(end_entity).map(|()| rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crate::network::tls_session::note_peer_signature(dss.scheme);
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crate::network::tls_session::note_peer_signature(dss.scheme);
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A client certificate verified by rustls, then by the context's checks of
/// the leaf (names, pins).
#[derive(Debug)]
pub(super) struct CheckedClientVerifier {
    pub webpki: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    pub checks: PeerChecks,
}

impl rustls::server::danger::ClientCertVerifier for CheckedClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.webpki.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.webpki.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let verified =
            self.webpki.verify_client_cert(end_entity, intermediates, now).map_err(expired_crl_as_expired)?;
        self.checks.check(end_entity).map(|()| verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crate::network::tls_session::note_peer_signature(dss.scheme);
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crate::network::tls_session::note_peer_signature(dss.scheme);
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// No `trusted_ca`: Envoy accepts any upstream certificate its pins (if any)
/// accept; the handshake's signatures are still checked.
#[derive(Debug)]
pub(super) struct UnverifiedServerCert {
    pub provider: Arc<CryptoProvider>,
    pub pins: CertificatePins,
}

impl ServerCertVerifier for UnverifiedServerCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.pins.check(end_entity).map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crate::network::tls_session::note_peer_signature(dss.scheme);
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crate::network::tls_session::note_peer_signature(dss.scheme);
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
