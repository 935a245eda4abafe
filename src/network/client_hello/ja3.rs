//! JA3, the first TLS client fingerprint, as Envoy's TLS inspector computes it
//! (`enable_ja3_fingerprinting`): the ClientHello's legacy version, cipher
//! suites, extension types, supported groups and EC point formats in decimal,
//! in the client's order, items joined by `-` and fields by `,`, then the MD5 of
//! that string in hex. GREASE values are left out of the cipher suites and the
//! extensions; Envoy 1.40 keeps them in the supported groups, and so does this
//! (a GREASE group changes Envoy's hash: checked against it).

use std::fmt::Write;

use super::{is_grease, u16s, ClientHello, Reader, EXT_EC_POINT_FORMATS, EXT_SUPPORTED_GROUPS};
use crate::common::{hex::lower_hex, md5::md5};

impl ClientHello {
    /// The JA3 string, e.g. `771,4865-4866,0-23-65281-10-11,29-23,0`.
    pub fn ja3_string(&self) -> String {
        let mut out = self.legacy_version.to_string();
        out.push(',');
        join(&mut out, self.cipher_suites().filter(|c| !is_grease(*c)));
        out.push(',');
        join(&mut out, self.extensions().map(|(kind, _)| kind).filter(|k| !is_grease(*k)));
        out.push(',');
        let groups = self.extension(EXT_SUPPORTED_GROUPS).and_then(|data| Reader(data).vec16());
        join(&mut out, u16s(groups.unwrap_or_default()));
        out.push(',');
        let formats = self.extension(EXT_EC_POINT_FORMATS).and_then(|data| Reader(data).vec8());
        join(&mut out, formats.unwrap_or_default().iter().copied());
        out
    }

    /// The JA3 fingerprint: the MD5 of the JA3 string, 32 lower-case hex digits.
    pub fn ja3_hash(&self) -> String {
        lower_hex(&md5(self.ja3_string().as_bytes()))
    }
}

/// Appends `values` in decimal, joined by `-`.
fn join<T: std::fmt::Display>(out: &mut String, values: impl Iterator<Item = T>) {
    for (i, value) in values.enumerate() {
        if i > 0 {
            out.push('-');
        }
        let _ = write!(out, "{value}");
    }
}
