//! A small reader of the X.509 fields (RFC 5280 §4.1) that rustls and webpki do
//! not hand out: the SubjectPublicKeyInfo (to match a key with an X.509 v1
//! certificate, which webpki refuses to read), and the serial number, validity
//! and subject alternative names that `/certs` lists, and whether a listener
//! must staple OCSP for it (RFC 7633's TLS feature). It walks DER elements by
//! tag and length only, never trusting a length past the input, and reads v1
//! certificates (no `[0] version`, no extensions) as well as v3 ones.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::network::tls::SubjectAltName;

pub(super) const SEQUENCE: u8 = 0x30;
pub(super) const INTEGER: u8 = 0x02;
pub(super) const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
pub(super) const GENERALIZED_TIME: u8 = 0x18;
/// `tbsCertificate`'s `[0] EXPLICIT version`, present from v2 on.
const VERSION: u8 = 0xa0;
/// `tbsCertificate`'s `[3] EXPLICIT extensions` (v3).
const EXTENSIONS: u8 = 0xa3;
/// id-ce-subjectAltName, 2.5.29.17, as DER OID content.
const SUBJECT_ALT_NAME_OID: &[u8] = &[0x55, 0x1d, 0x11];
/// id-pe-tlsfeature, 1.3.6.1.5.5.7.1.24 (RFC 7633), as DER OID content.
const TLS_FEATURE_OID: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x18];
/// The TLS feature `status_request` (extension 5): "must staple".
const STATUS_REQUEST: &[u8] = &[5];
/// GeneralName's `[1] rfc822Name`, `[2] dNSName`, `[6] uniformResourceIdentifier`,
/// `[7] iPAddress` (implicit, primitive).
const RFC822_NAME: u8 = 0x81;
const DNS_NAME: u8 = 0x82;
const URI: u8 = 0x86;
const IP_ADDRESS: u8 = 0x87;

/// One DER element read off the front of an input: (tag, whole element, its
/// content, rest of the input).
pub(super) type Element<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

pub(super) fn element(input: &[u8]) -> Option<Element<'_>> {
    let (&tag, after_tag) = input.split_first()?;
    let (&first, after_len) = after_tag.split_first()?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || after_len.len() < n {
            return None;
        }
        let len = after_len[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    (input.len() >= end).then(|| (tag, &input[..end], &input[header..end], &input[end..]))
}

/// The `tbsCertificate` fields from `serialNumber` on: the `[0] version` skipped.
fn tbs_fields(cert: &[u8]) -> Option<&[u8]> {
    let (SEQUENCE, _, certificate, _) = element(cert)? else { return None };
    let (SEQUENCE, _, tbs, _) = element(certificate)? else { return None };
    match element(tbs)? {
        (VERSION, _, _, rest) => Some(rest),
        _ => Some(tbs),
    }
}

/// The `subjectPublicKeyInfo` of a DER certificate, with its SEQUENCE header:
/// the sixth field after the optional version.
pub(super) fn subject_public_key_info(cert: &[u8]) -> Option<&[u8]> {
    let mut rest = tbs_fields(cert)?;
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        rest = element(rest)?.3;
    }
    match element(rest)? {
        (SEQUENCE, spki, _, _) => Some(spki),
        _ => None,
    }
}

/// What `/certs` and `x-forwarded-client-cert` show of a certificate, read from
/// its DER.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct CertificateFields {
    pub serial_number: String,
    /// The subject and issuer as RFC 2253 prints them (BoringSSL's
    /// `XN_FLAG_RFC2253`, as Envoy).
    pub subject: String,
    pub issuer: String,
    pub not_before: i64,
    pub not_after: i64,
    /// DNS names, then URIs, then IP addresses, then e-mail addresses, each in
    /// the certificate's order: the order Envoy lists them in.
    pub subject_alt_names: Vec<SubjectAltName>,
    /// The TLS feature extension asks for `status_request` (OCSP must-staple).
    pub must_staple: bool,
}

pub(super) fn certificate_fields(cert: &[u8]) -> Option<CertificateFields> {
    let fields = tbs_fields(cert)?;
    let (INTEGER, _, serial, rest) = element(fields)? else { return None };
    // signature, issuer.
    let (SEQUENCE, _, issuer, rest) = element(element(rest)?.3)? else { return None };
    let issuer = rfc2253(issuer)?;
    let (SEQUENCE, _, validity, rest) = element(rest)? else { return None };
    let (before_tag, _, before, after) = element(validity)?;
    let (after_tag, _, after, _) = element(after)?;
    let (not_before, not_after) = (time(before_tag, before)?, time(after_tag, after)?);
    // subject, then subjectPublicKeyInfo.
    let (SEQUENCE, _, subject, rest) = element(rest)? else { return None };
    let subject = rfc2253(subject)?;
    let (SEQUENCE, _, _, mut rest) = element(rest)? else { return None };
    let (mut names, mut must_staple) = (Vec::new(), false);
    // issuerUniqueID [1] and subjectUniqueID [2] may come before extensions [3].
    while let Some((tag, _, content, after)) = element(rest) {
        if tag == EXTENSIONS {
            names = subject_alt_names(content)?;
            must_staple = requires_status_request(content);
        }
        rest = after;
    }
    Some(CertificateFields {
        serial_number: serial_hex(serial),
        subject,
        issuer,
        not_before,
        not_after,
        subject_alt_names: names,
        must_staple,
    })
}

/// A `Name`'s content (RDNSequence) as RFC 2253 prints it: the last RDN first,
/// RDNs joined by `,`, an RDN's attributes by `+`, known attribute types by their
/// short names, other ones as dotted OIDs, string values escaped as RFC 2253 says,
/// other values as `#` and their DER in hex.
fn rfc2253(mut rdns: &[u8]) -> Option<String> {
    let mut printed = Vec::new();
    while !rdns.is_empty() {
        let (SET, _, mut attributes, rest) = element(rdns)? else { return None };
        rdns = rest;
        let mut rdn = Vec::new();
        while !attributes.is_empty() {
            let (SEQUENCE, _, attribute, rest) = element(attributes)? else { return None };
            attributes = rest;
            let (OID, _, oid, value) = element(attribute)? else { return None };
            let (tag, whole, content, _) = element(value)?;
            let name = attribute_name(oid);
            let value = match tag {
                UTF8_STRING | PRINTABLE_STRING | T61_STRING | IA5_STRING => escape_rfc2253(content),
                _ => format!("#{}", whole.iter().map(|b| format!("{b:02X}")).collect::<String>()),
            };
            rdn.push(format!("{name}={value}"));
        }
        printed.push(rdn.join("+"));
    }
    printed.reverse();
    Some(printed.join(","))
}

const SET: u8 = 0x31;
const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
const T61_STRING: u8 = 0x14;
const IA5_STRING: u8 = 0x16;

/// The short name BoringSSL prints for an attribute type, else its dotted OID.
fn attribute_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x04] => "SN".into(),
        [0x55, 0x04, 0x05] => "serialNumber".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x09] => "street".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        [0x55, 0x04, 0x0c] => "title".into(),
        [0x55, 0x04, 0x2a] => "GN".into(),
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID".into(),
        other => dotted_oid(other),
    }
}

fn dotted_oid(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value = 0u64;
    for &b in oid {
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(value);
            value = 0;
        }
    }
    let Some(&first) = arcs.first() else { return String::new() };
    let (a, b) = if first < 80 { (first / 40, first % 40) } else { (2, first - 80) };
    std::iter::once(a)
        .chain(std::iter::once(b))
        .chain(arcs[1..].iter().copied())
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(".")
}

/// RFC 2253 §2.4: `,+"\<>;` escaped with a backslash, as are a leading `#` or
/// space and a trailing space; control bytes and bytes over 0x7f as `\XX`.
fn escape_rfc2253(value: &[u8]) -> String {
    let mut out = String::new();
    for (i, &b) in value.iter().enumerate() {
        let edge_space = b == b' ' && (i == 0 || i + 1 == value.len());
        match b {
            b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b'#' if i == 0 => out.push_str("\\#"),
            _ if edge_space => out.push_str("\\ "),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\{b:02X}")),
        }
    }
    out
}

/// BoringSSL's `BN_bn2hex` of a non-negative serial, lowercased as Envoy does.
pub(super) fn serial_hex(serial: &[u8]) -> String {
    let leading_zeros = serial.iter().take_while(|&&b| b == 0).count();
    if leading_zeros == serial.len() {
        return "0".into();
    }
    crate::common::hex::lower_hex(&serial[leading_zeros..])
}

/// The subject alternative names in `[3] extensions`' content; none without
/// the extension.
fn subject_alt_names(extensions: &[u8]) -> Option<Vec<SubjectAltName>> {
    let mut names = Vec::new();
    let Some(value) = extension_value(extensions, SUBJECT_ALT_NAME_OID)? else { return Some(names) };
    let (SEQUENCE, _, mut general_names, _) = element(value)? else { return None };
    while !general_names.is_empty() {
        let (tag, _, content, rest) = element(general_names)?;
        general_names = rest;
        let name = match tag {
            RFC822_NAME => SubjectAltName::Email(String::from_utf8_lossy(content).into_owned()),
            DNS_NAME => SubjectAltName::Dns(String::from_utf8_lossy(content).into_owned()),
            URI => SubjectAltName::Uri(String::from_utf8_lossy(content).into_owned()),
            IP_ADDRESS => match content.len() {
                4 => SubjectAltName::IpAddress(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(content).ok()?))),
                16 => SubjectAltName::IpAddress(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(content).ok()?))),
                _ => continue,
            },
            _ => continue,
        };
        names.push(name);
    }
    let rank = |n: &SubjectAltName| match n {
        SubjectAltName::Dns(_) => 0,
        SubjectAltName::Uri(_) => 1,
        SubjectAltName::IpAddress(_) => 2,
        SubjectAltName::Email(_) => 3,
    };
    // A stable sort keeps the certificate's order within each kind.
    names.sort_by_key(rank);
    Some(names)
}

/// The value (the OCTET STRING's content) of the extension `oid` in
/// `[3] extensions`' content: `Some(None)` without it, `None` if malformed.
fn extension_value<'a>(extensions: &'a [u8], oid: &[u8]) -> Option<Option<&'a [u8]>> {
    let (SEQUENCE, _, mut list, _) = element(extensions)? else { return None };
    while !list.is_empty() {
        let (SEQUENCE, _, extension, rest) = element(list)? else { return None };
        list = rest;
        let (OID, _, id, after_oid) = element(extension)? else { return None };
        if id != oid {
            continue;
        }
        // `critical BOOLEAN DEFAULT FALSE` may precede the value.
        let mut value = element(after_oid)?;
        if value.0 != OCTET_STRING {
            value = element(value.3)?;
        }
        return Some(Some(value.2));
    }
    Some(None)
}

/// Whether the TLS feature extension (a SEQUENCE OF INTEGER) lists `status_request`.
fn requires_status_request(extensions: &[u8]) -> bool {
    let Some(Some(value)) = extension_value(extensions, TLS_FEATURE_OID) else { return false };
    let Some((SEQUENCE, _, mut features, _)) = element(value) else { return false };
    while let Some((tag, _, feature, rest)) = element(features) {
        if tag == INTEGER && feature == STATUS_REQUEST {
            return true;
        }
        features = rest;
    }
    false
}

/// A `Time` (UTCTime `YYMMDDHHMMSSZ`, years 50–99 being 19xx, or
/// GeneralizedTime `YYYYMMDDHHMMSSZ`) as seconds since the Unix epoch.
pub(super) fn time(tag: u8, content: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(content).ok()?.strip_suffix('Z')?;
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, text.len()) {
        (UTC_TIME, 12) => {
            let yy: i64 = text[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        (GENERALIZED_TIME, 14) => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let field = |i: usize| rest[i..i + 2].parse::<i64>().ok();
    let (month, day, hour, minute, second) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate's SANs of every kind the access log prints, and its
    /// serial, as `certificate_details_of` reads them.
    #[test]
    fn sans_of_every_kind_and_the_serial() {
        let mut params =
            rcgen::CertificateParams::new(vec!["client.test".to_string(), "10.0.0.1".to_string()]).unwrap();
        params.subject_alt_names.push(rcgen::SanType::Rfc822Name("me@client.test".try_into().unwrap()));
        params.distinguished_name.push(rcgen::DnType::CommonName, "client.test");
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x0a, 0x1b]));
        let der = params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().der().to_vec();
        let details = super::super::certificate_details_of(&der).expect("details");
        assert_eq!(details.serial_number, "0a1b");
        assert_eq!(details.subject, "CN=client.test");
        assert_eq!(
            details.subject_alt_names,
            vec![
                SubjectAltName::Dns("client.test".into()),
                SubjectAltName::IpAddress("10.0.0.1".parse().unwrap()),
                SubjectAltName::Email("me@client.test".into()),
            ]
        );
    }

    #[test]
    fn times_of_both_kinds() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        assert_eq!(time(UTC_TIME, b"700101000001Z"), Some(1));
        assert_eq!(time(UTC_TIME, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(time(GENERALIZED_TIME, b"20500101000000Z"), Some(2_524_608_000));
        assert_eq!(time(UTC_TIME, b"7001010000Z"), None, "no seconds");
    }

    #[test]
    fn serials_print_as_boringssl_does() {
        assert_eq!(serial_hex(&[0x00, 0x9a, 0x01]), "9a01");
        assert_eq!(serial_hex(&[0x0a, 0x1b]), "0a1b");
        assert_eq!(serial_hex(&[0x00]), "0");
    }

    #[test]
    fn truncated_input_is_refused() {
        assert_eq!(subject_public_key_info(&[0x30, 0x82, 0xff]), None);
        assert_eq!(certificate_fields(&[0x30, 0x03, 0x30, 0x01]), None);
    }
}
