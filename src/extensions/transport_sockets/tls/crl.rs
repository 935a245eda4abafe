//! Certificate revocation lists (`CertificateValidationContext.crl`), as
//! Envoy's default validator applies them through BoringSSL: once a `crl` is
//! given, every certificate of the peer's chain (only the leaf with
//! `only_verify_leaf_cert_crl`) needs a CRL from its issuer, and fails without
//! one (alert unknown_ca), when revoked (certificate_revoked) or when that CRL
//! has expired (certificate_expired: `verifiers` maps rustls's error to
//! BoringSSL's alert); all count `ssl.fail_verify_error`. rustls's WebPKI verifiers do
//! the same with their default policy (unknown status denied) and expiration
//! enforced. The PEM may hold several CRLs; other blocks are skipped, and a
//! text with no CRL at all loads, as in Envoy, and then fails every peer.

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::CertificateValidationContext;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateRevocationListDer;

use super::{child, data, source_name};
use crate::config::{ConfigError, FieldPath};

/// A validation context's CRLs and how far down the chain they are checked.
#[derive(Debug)]
pub(super) struct Revocation {
    crls: Vec<CertificateRevocationListDer<'static>>,
    leaf_only: bool,
}

impl Revocation {
    /// The `crl` of `vc` (at `vc_path`); `None` without one. Envoy refuses
    /// one without a `trusted_ca`, and a CRL block that does not parse.
    pub(super) fn from_proto(
        vc: &CertificateValidationContext,
        vc_path: &FieldPath,
    ) -> Result<Option<Revocation>, ConfigError> {
        let Some(source) = &vc.crl else { return Ok(None) };
        let path = child(vc_path, "crl");
        let name = source_name(source);
        if vc.trusted_ca.is_none() {
            return Err(path.error(format!("Failed to load CRL from {name} without trusted CA")));
        }
        let pem = data(Some(source), &path)?;
        let failed = || path.error(format!("Failed to load CRL from {name}"));
        let mut crls = Vec::new();
        for crl in CertificateRevocationListDer::pem_slice_iter(&pem) {
            let crl = crl.map_err(|_| failed())?;
            webpki::BorrowedCertRevocationList::from_der(crl.as_ref()).map_err(|_| failed())?;
            crls.push(crl);
        }
        Ok(Some(Revocation { crls, leaf_only: vc.only_verify_leaf_cert_crl }))
    }

    /// Whether the `crl` held no CRL: BoringSSL then finds none for any peer.
    pub(super) fn none_loaded(&self) -> bool {
        self.crls.is_empty()
    }

    /// A client certificate verifier checking these CRLs.
    pub(super) fn client(
        self,
        builder: rustls::server::ClientCertVerifierBuilder,
    ) -> rustls::server::ClientCertVerifierBuilder {
        let builder = builder.with_crls(self.crls).enforce_revocation_expiration();
        if self.leaf_only {
            builder.only_check_end_entity_revocation()
        } else {
            builder
        }
    }

    /// A server certificate verifier checking these CRLs.
    pub(super) fn server(
        self,
        builder: rustls::client::ServerCertVerifierBuilder,
    ) -> rustls::client::ServerCertVerifierBuilder {
        let builder = builder.with_crls(self.crls).enforce_revocation_expiration();
        if self.leaf_only {
            builder.only_check_end_entity_revocation()
        } else {
            builder
        }
    }
}
