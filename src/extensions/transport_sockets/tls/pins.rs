//! Certificate pinning, as Envoy's validation context does it: with
//! `verify_certificate_hash` (the SHA-256 of the certificate's DER, in hex,
//! colons allowed) or `verify_certificate_spki` (the SHA-256 of its
//! SubjectPublicKeyInfo, in base64), a peer's leaf is accepted only if one value
//! of either list matches. With a `trusted_ca` the chain must verify as well;
//! without one the pin alone decides. A mismatch is a verification error the
//! handshake reports as `ssl.fail_verify_cert_hash`.

use base64::Engine;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::CertificateValidationContext;
use rustls::pki_types::CertificateDer;

use super::der::subject_public_key_info;
use super::san_matcher::SanMatchers;
use crate::config::{ConfigError, FieldPath};
use crate::network::tls::CertHashMismatch;

type Sha256 = [u8; 32];

/// The pins of one validation context; empty when it has none.
#[derive(Debug, Default, Clone)]
pub struct CertificatePins {
    hashes: Vec<Sha256>,
    spkis: Vec<Sha256>,
}

impl CertificatePins {
    pub fn from_proto(vc: &CertificateValidationContext, path: &FieldPath) -> Result<Self, ConfigError> {
        let at = |field: &str, i: usize| {
            let mut p = path.child(field);
            p.push_index(i);
            p
        };
        let mut pins = CertificatePins::default();
        for (i, hex) in vc.verify_certificate_hash.iter().enumerate() {
            let digits: String = hex.chars().filter(|c| *c != ':').collect();
            let hash = decode_hex(&digits)
                .ok_or_else(|| at("verify_certificate_hash", i).error(format!("Invalid hex-encoded SHA-256 {hex}")))?;
            pins.hashes.push(hash);
        }
        for (i, b64) in vc.verify_certificate_spki.iter().enumerate() {
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok();
            let spki = bytes.and_then(|b| Sha256::try_from(b.as_slice()).ok()).ok_or_else(|| {
                at("verify_certificate_spki", i).error(format!("Invalid base64-encoded SHA-256 {b64}"))
            })?;
            pins.spkis.push(spki);
        }
        Ok(pins)
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty() && self.spkis.is_empty()
    }

    /// Whether `leaf` matches a pin (always, with none).
    pub fn check(&self, leaf: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if self.is_empty() {
            return Ok(());
        }
        let sha256 = |bytes: &[u8]| ring::digest::digest(&ring::digest::SHA256, bytes);
        let hash_matches = || self.hashes.iter().any(|h| sha256(leaf.as_ref()).as_ref() == h);
        let spki_matches = || {
            let spki = subject_public_key_info(leaf.as_ref());
            spki.is_some_and(|spki| self.spkis.iter().any(|s| sha256(spki).as_ref() == s))
        };
        if hash_matches() || spki_matches() {
            Ok(())
        } else {
            let mismatch = rustls::OtherError(std::sync::Arc::new(CertHashMismatch));
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(mismatch)))
        }
    }
}

fn decode_hex(digits: &str) -> Option<Sha256> {
    if digits.len() != 64 || !digits.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// What a validation context checks of a peer's leaf once its chain verified
/// (or, without a `trusted_ca`, on its own): its names, then its pins, in
/// Envoy's order.
#[derive(Debug, Default, Clone)]
pub struct PeerChecks {
    pub san: SanMatchers,
    pub pins: CertificatePins,
    /// A `crl` that held no CRL: BoringSSL finds none for the peer's issuer,
    /// which fails the chain before names or pins are looked at.
    pub no_crl_loaded: bool,
}

impl PeerChecks {
    pub fn check(&self, leaf: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if self.no_crl_loaded {
            return Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownRevocationStatus));
        }
        self.san.check(leaf)?;
        self.pins.check(leaf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pins(hashes: &[&str], spkis: &[&str]) -> Result<CertificatePins, ConfigError> {
        let vc = CertificateValidationContext {
            verify_certificate_hash: hashes.iter().map(|s| s.to_string()).collect(),
            verify_certificate_spki: spkis.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        CertificatePins::from_proto(&vc, &FieldPath::starting_at("validation_context"))
    }

    #[test]
    fn hashes_take_colons_or_none_and_bad_values_name_their_index() {
        let colons = "D7:37:B9:14:A1:89:71:2C:D9:3B:DA:64:39:51:F4:80:32:78:42:44:3F:10:FF:25:80:45:AF:36:05:10:8C:41";
        let plain = colons.replace(':', "").to_lowercase();
        let p = pins(&[colons, &plain], &[]).expect("both forms");
        assert_eq!(p.hashes[0], p.hashes[1]);
        let e = pins(&[colons, "D7:37"], &[]).expect_err("too short");
        assert_eq!(e.path, "validation_context.verify_certificate_hash[1]");
        let e = pins(&[], &["not base64!"]).expect_err("not base64");
        assert_eq!(e.path, "validation_context.verify_certificate_spki[0]");
        let e = pins(&[], &["AAAA"]).expect_err("not 32 bytes");
        assert!(e.to_string().contains("Invalid base64-encoded SHA-256 AAAA"), "{e}");
    }

    #[test]
    fn no_pins_accept_any_leaf_and_a_pin_accepts_its_own() {
        let der = CertificateDer::from(vec![0x30, 0x00]);
        assert!(CertificatePins::default().check(&der).is_ok());
        let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
        let hex = crate::common::hex::lower_hex(digest.as_ref());
        assert!(pins(&[&hex], &[]).expect("pin").check(&der).is_ok());
        let other = CertificateDer::from(vec![0x30, 0x01, 0x00]);
        assert!(pins(&[&hex], &[]).expect("pin").check(&other).is_err());
    }
}
