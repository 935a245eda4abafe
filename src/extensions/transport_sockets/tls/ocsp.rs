//! A listener certificate's OCSP staple (`TlsCertificate.ocsp_staple`: a DER
//! OCSPResponse, RFC 6960 §4.2.1), read as Envoy reads it when the context is
//! built: it must be a successful response with a body, for exactly one
//! certificate, and that certificate's serial number must be the served
//! certificate's; its signature is the client's to check, as in Envoy. What is
//! kept is when it stops being valid (`nextUpdate`; a response without one is
//! never valid, as Envoy counts it expired), which each handshake compares with
//! the time (`network::tls`). The errors are Envoy's messages.

use super::der::{element, serial_hex, time, GENERALIZED_TIME, INTEGER, OCTET_STRING, SEQUENCE};

/// `OCSPResponse.responseStatus`.
const ENUMERATED: u8 = 0x0a;
/// `[0] EXPLICIT`: `responseBytes`, `ResponseData.version`, `nextUpdate`.
const EXPLICIT_0: u8 = 0xa0;
/// id-pkix-ocsp-basic, 1.3.6.1.5.5.7.48.1.1, as DER OID content.
const OCSP_BASIC: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01];

/// Whether a response's `SingleResponse` is for the served certificate: its
/// serial number, lower-case hex as `der::certificate_fields` reads it.
pub(super) fn valid_until(der: &[u8], certificate_serial: &str) -> Result<i64, String> {
    let single = single_response(der)?;
    if single.serial != certificate_serial {
        return Err("OCSP response does not match its TLS certificate".into());
    }
    Ok(single.next_update.unwrap_or(i64::MIN))
}

struct SingleResponse {
    serial: String,
    next_update: Option<i64>,
}

fn single_response(der: &[u8]) -> Result<SingleResponse, String> {
    let malformed = |what: &str| format!("OCSP response is malformed: {what}");
    // Envoy's message for anything but one whole DER SEQUENCE.
    let (SEQUENCE, _, response, []) = element(der).ok_or("Data contained more than a single OCSP response")? else {
        return Err("Data contained more than a single OCSP response".into());
    };
    let Some((ENUMERATED, _, status, rest)) = element(response) else {
        return Err("OCSP ResponseStatus is not a well-formed ASN.1 ENUMERATED".into());
    };
    if status != [0] {
        return Err("OCSP response was unsuccessful".into());
    }
    let Some((EXPLICIT_0, _, bytes, _)) = element(rest) else { return Err("OCSP response has no body".into()) };
    let (SEQUENCE, _, bytes, _) = element(bytes).ok_or_else(|| malformed("responseBytes"))? else {
        return Err(malformed("responseBytes"));
    };
    let (_, _, kind, rest) = element(bytes).ok_or_else(|| malformed("responseType"))?;
    if kind != OCSP_BASIC {
        return Err(malformed("not a basic OCSP response"));
    }
    let (OCTET_STRING, _, basic, _) = element(rest).ok_or_else(|| malformed("response"))? else {
        return Err(malformed("response"));
    };
    let tbs = (|| {
        let (SEQUENCE, _, basic, _) = element(basic)? else { return None };
        let (SEQUENCE, _, tbs, _) = element(basic)? else { return None };
        Some(tbs)
    })()
    .ok_or_else(|| malformed("tbsResponseData"))?;
    // [0] version (optional), responderID, producedAt, then responses.
    let mut rest = tbs;
    if let Some((EXPLICIT_0, _, _, after)) = element(rest) {
        rest = after;
    }
    let after_producer = element(rest).and_then(|(_, _, _, r)| element(r)).map(|(_, _, _, r)| r);
    let (SEQUENCE, _, responses, _) = after_producer.and_then(element).ok_or_else(|| malformed("responses"))? else {
        return Err(malformed("responses"));
    };
    let (SEQUENCE, _, single, others) = element(responses).ok_or_else(|| malformed("responses"))? else {
        return Err(malformed("responses"));
    };
    if !others.is_empty() {
        return Err("OCSP Response must be for one certificate only".into());
    }
    read_single(single).ok_or_else(|| malformed("singleResponse"))
}

/// `SingleResponse`: certID (hash algorithm, issuer name and key hashes,
/// serial), certStatus, thisUpdate, `[0] nextUpdate`.
fn read_single(single: &[u8]) -> Option<SingleResponse> {
    let (SEQUENCE, _, cert_id, rest) = element(single)? else { return None };
    let mut id = cert_id;
    for _ in 0..3 {
        id = element(id)?.3;
    }
    let (INTEGER, _, serial, _) = element(id)? else { return None };
    let (_status, _, _, rest) = element(rest)?;
    let (GENERALIZED_TIME, _, _, rest) = element(rest)? else { return None };
    let next_update = match element(rest) {
        Some((EXPLICIT_0, _, next, _)) => {
            let (tag, _, content, _) = element(next)?;
            Some(time(tag, content)?)
        }
        _ => None,
    };
    Some(SingleResponse { serial: serial_hex(serial), next_update })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DER element: tag, short or long length, content.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            n if n < 0x80 => out.push(n as u8),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend(content);
        out
    }

    /// A successful basic response for `serial`, valid until `next` (a
    /// GeneralizedTime), with `count` SingleResponses; the signature is junk,
    /// which Envoy does not check either.
    fn response(serial: &[u8], next: Option<&str>, count: usize) -> Vec<u8> {
        let alg = tlv(SEQUENCE, &tlv(0x06, &[0x2b, 0x0e, 0x03, 0x02, 0x1a]));
        let cert_id = tlv(
            SEQUENCE,
            &[alg, tlv(OCTET_STRING, &[1; 20]), tlv(OCTET_STRING, &[2; 20]), tlv(INTEGER, serial)].concat(),
        );
        let mut single = [cert_id, vec![0x80, 0x00], tlv(GENERALIZED_TIME, b"20240101000000Z")].concat();
        if let Some(next) = next {
            single.extend(tlv(EXPLICIT_0, &tlv(GENERALIZED_TIME, next.as_bytes())));
        }
        let single = tlv(SEQUENCE, &single);
        let responses = tlv(SEQUENCE, &single.repeat(count));
        let responder = tlv(0xa2, &tlv(OCTET_STRING, &[3; 20]));
        let tbs = tlv(SEQUENCE, &[responder, tlv(GENERALIZED_TIME, b"20240101000000Z"), responses].concat());
        let basic = tlv(SEQUENCE, &[tbs, tlv(SEQUENCE, &tlv(0x06, &[0x2a])), tlv(0x03, &[0, 0])].concat());
        let bytes = tlv(SEQUENCE, &[tlv(0x06, OCSP_BASIC), tlv(OCTET_STRING, &basic)].concat());
        tlv(SEQUENCE, &[tlv(ENUMERATED, &[0]), tlv(EXPLICIT_0, &bytes)].concat())
    }

    #[test]
    fn a_staple_is_for_its_certificate_until_its_next_update() {
        let good = response(&[0x01, 0x65], Some("20240102000000Z"), 1);
        assert_eq!(valid_until(&good, "0165"), Ok(1_704_153_600));
        assert_eq!(valid_until(&response(&[0x65], None, 1), "65"), Ok(i64::MIN), "no nextUpdate: never valid");
        let err = |der: &[u8]| valid_until(der, "65").expect_err("refused");
        assert_eq!(err(&good), "OCSP response does not match its TLS certificate");
        assert_eq!(err(&response(&[0x65], None, 2)), "OCSP Response must be for one certificate only");
        assert_eq!(err(b"garbage bytes"), "Data contained more than a single OCSP response");
        assert_eq!(err(&[good.clone(), vec![0]].concat()), "Data contained more than a single OCSP response");
        assert_eq!(err(&[0x30, 0x03, 0x0a, 0x01, 0x03]), "OCSP response was unsuccessful");
        assert_eq!(err(&[0x30, 0x03, 0x0a, 0x01, 0x00]), "OCSP response has no body");
        assert_eq!(err(&[0x30, 0x00]), "OCSP ResponseStatus is not a well-formed ASN.1 ENUMERATED");
        // Every truncation and single-byte change ends in an answer, never a panic.
        for cut in 0..good.len() {
            let _ = valid_until(&good[..cut], "65");
        }
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0xff;
            let _ = valid_until(&b, "65");
        }
    }
}
