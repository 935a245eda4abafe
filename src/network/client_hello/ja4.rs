//! JA4, FoxIO's TLS client fingerprint, as Envoy's TLS inspector computes it
//! (`enable_ja4_fingerprinting`): `a_b_c`, where
//! - `a` is `t` (TCP), the highest TLS version offered (`supported_versions`,
//!   else the legacy version) as `13`, `12`, ..., `d` when there is an SNI
//!   extension and `i` when not, the counts of cipher suites and extensions
//!   (two digits, at most 99), and the first and last characters of the first
//!   ALPN protocol (`00` without one; of its hex when either is not
//!   alphanumeric);
//! - `b` is the first 12 hex digits of the SHA-256 of the cipher suites, sorted,
//!   as 4-digit hex joined by `,`;
//! - `c` is the same of the extension types, sorted, SNI and ALPN left out,
//!   followed by `_` and the signature algorithms in the client's order.
//!
//! GREASE is left out of the cipher suites, extensions and versions, but not of
//! the signature algorithms, as Envoy 1.40 does; an empty list hashes to twelve
//! zeros. Each detail here was checked against Envoy's output for the same bytes.

use std::fmt::Write;

use super::{
    is_grease, u16s, ClientHello, Reader, EXT_ALPN, EXT_SERVER_NAME, EXT_SIGNATURE_ALGORITHMS, EXT_SUPPORTED_VERSIONS,
};
use crate::common::hex::lower_hex;

/// What a section stands for when its list is empty.
const NO_HASH: &str = "000000000000";

impl ClientHello {
    /// The JA4 fingerprint, e.g. `t13d1516h2_8daaf6152771_e5627efa2ab1`.
    pub fn ja4(&self) -> String {
        let mut ciphers: Vec<u16> = self.cipher_suites().filter(|c| !is_grease(*c)).collect();
        let mut extensions: Vec<u16> = self.extensions().map(|(kind, _)| kind).filter(|k| !is_grease(*k)).collect();
        let sni = if extensions.contains(&EXT_SERVER_NAME) { 'd' } else { 'i' };
        let mut out = format!(
            "t{}{sni}{:02}{:02}{}_",
            version(self.highest_version()),
            ciphers.len().min(99),
            extensions.len().min(99),
            self.alpn_chars(),
        );
        ciphers.sort_unstable();
        out.push_str(&truncated_sha256(&hex_list(&ciphers)));
        out.push('_');
        extensions.retain(|k| *k != EXT_SERVER_NAME && *k != EXT_ALPN);
        extensions.sort_unstable();
        if extensions.is_empty() {
            out.push_str(NO_HASH);
            return out;
        }
        let mut listed = hex_list(&extensions);
        let signatures = self.extension(EXT_SIGNATURE_ALGORITHMS).and_then(|data| Reader(data).vec16());
        let signatures: Vec<u16> = u16s(signatures.unwrap_or_default()).collect();
        if !signatures.is_empty() {
            listed.push('_');
            listed.push_str(&hex_list(&signatures));
        }
        out.push_str(&truncated_sha256(&listed));
        out
    }

    /// The highest non-GREASE `supported_versions` entry, else the legacy version.
    fn highest_version(&self) -> u16 {
        let offered = self.extension(EXT_SUPPORTED_VERSIONS).and_then(|data| Reader(data).vec8());
        u16s(offered.unwrap_or_default()).filter(|v| !is_grease(*v)).max().unwrap_or(self.legacy_version)
    }

    /// The first ALPN protocol's first and last characters, `00` without one.
    fn alpn_chars(&self) -> String {
        let first = self.extension(EXT_ALPN).and_then(|data| Reader(Reader(data).vec16()?).vec8());
        let (Some(&head), Some(&tail)) = (first.and_then(<[u8]>::first), first.and_then(<[u8]>::last)) else {
            return "00".to_string();
        };
        if head.is_ascii_alphanumeric() && tail.is_ascii_alphanumeric() {
            return [char::from(head), char::from(tail)].iter().collect();
        }
        // The first hex digit of the first byte and the last of the last.
        let (head, tail) = (lower_hex(&[head]), lower_hex(&[tail]));
        head[..1].to_string() + &tail[1..]
    }
}

/// JA4's name of a TLS (or DTLS) version.
fn version(version: u16) -> &'static str {
    match version {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// `values` as 4-digit lower-case hex joined by `,`.
fn hex_list(values: &[u16]) -> String {
    let mut out = String::with_capacity(values.len() * 5);
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{value:04x}");
    }
    out
}

/// The first 12 hex digits of the SHA-256 of `listed`; twelve zeros for nothing listed.
fn truncated_sha256(listed: &str) -> String {
    if listed.is_empty() {
        return NO_HASH.to_string();
    }
    lower_hex(&ring::digest::digest(&ring::digest::SHA256, listed.as_bytes()).as_ref()[..6])
}
