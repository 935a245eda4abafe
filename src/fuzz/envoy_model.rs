//! A model of the rules by which Envoy's HTTP/1 codec refuses a request head, for
//! the differential target. It holds only rules that are certain (RFC 9110 and
//! 9112 where Envoy enforces them, and Envoy's documented defaults such as
//! `allow_chunked_length: false`); where a head leaves what the model knows — a
//! bare CR or LF, an obs-fold, a version other than HTTP/1.1, a target that is
//! not origin-form, a repeated framing header — it gives no verdict.

use crate::http::http1::BodyFraming;

/// What Envoy does with a head, as far as the model knows.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Unknown,
    Refused(&'static str),
    /// Accepted, with the body framed so (`Length(0)` for no body).
    Accepted(BodyFraming),
}

/// Judges the head at the start of `data`.
pub fn judge(data: &[u8]) -> Verdict {
    let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else { return Verdict::Unknown };
    let mut lines = data[..end].split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    // `split` on LF then dropping one CR per line: a line holding another CR or
    // ending without one had a bare CR or LF.
    if data[..end].split(|&b| b == b'\n').rev().skip(1).any(|l| !l.ends_with(b"\r")) {
        return Verdict::Unknown;
    }
    let Some(request_line) = lines.next() else { return Verdict::Unknown };
    if request_line.contains(&0) {
        return Verdict::Refused("NUL in the request line");
    }
    if !request_line_known(request_line) {
        return Verdict::Unknown;
    }
    let mut content_length: Vec<&[u8]> = Vec::new();
    let mut transfer_encoding: Vec<&[u8]> = Vec::new();
    for line in lines {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            return Verdict::Unknown;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else { return Verdict::Unknown };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.is_empty() || name.iter().any(|&b| b == b' ' || b == b'\t') {
            return Verdict::Unknown;
        }
        if !name.iter().all(|&b| is_tchar(b)) {
            return Verdict::Refused("a header name that is not a token");
        }
        if value.contains(&b'\r') {
            return Verdict::Unknown;
        }
        if value.contains(&0) {
            return Verdict::Refused("NUL in a header value");
        }
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Verdict::Unknown;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            content_length.push(value);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding.push(value);
        } else if name.eq_ignore_ascii_case(b"host") && !value.iter().all(|&b| is_authority_char(b)) {
            return Verdict::Refused("a host that is not an authority");
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            return Verdict::Unknown;
        }
    }
    framing(&content_length, &transfer_encoding)
}

/// `token SP origin-form SP HTTP/1.1`, with a method other than CONNECT (whose
/// framing rules differ).
fn request_line_known(line: &[u8]) -> bool {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !method.is_empty()
        && method.iter().all(|&b| is_tchar(b))
        && method != b"CONNECT"
        && target.first() == Some(&b'/')
        && target.iter().all(|&b| (0x21..0x7f).contains(&b) && b != b'#')
        && version == b"HTTP/1.1"
}

/// The body's framing by the framing headers, or why they are refused.
fn framing(content_length: &[&[u8]], transfer_encoding: &[&[u8]]) -> Verdict {
    match (content_length, transfer_encoding) {
        ([], []) => Verdict::Accepted(BodyFraming::Length(0)),
        (_, [_, ..]) if !content_length.is_empty() => Verdict::Refused("content-length with transfer-encoding"),
        ([], [te]) if te.eq_ignore_ascii_case(b"chunked") => Verdict::Accepted(BodyFraming::Chunked),
        ([], [te]) if te.contains(&b',') => Verdict::Unknown,
        ([], [_]) => Verdict::Refused("a transfer-encoding other than chunked"),
        ([cl], []) if cl.contains(&b',') => Verdict::Unknown,
        ([cl], []) => match parse_decimal(cl) {
            Some(n) => Verdict::Accepted(BodyFraming::Length(n)),
            None => Verdict::Refused("a content-length that is not a number"),
        },
        (cls, []) if cls.iter().any(|cl| cl != &cls[0]) => Verdict::Refused("two different content-lengths"),
        _ => Verdict::Unknown,
    }
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if d.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

fn trim(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(value.len());
    let end = value.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(start, |e| e + 1);
    &value[start..end]
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The bytes of an authority (RFC 3986: unreserved, sub-delims, `:`, `@`, `[`,
/// `]` and `%` of pct-encoding), the set Envoy checks `Host` against.
fn is_authority_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@[]%".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_the_framing_rules() {
        let judge = |s: &str| judge(s.as_bytes());
        assert_eq!(judge("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Verdict::Accepted(BodyFraming::Length(0)));
        assert_eq!(judge("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n"), Verdict::Accepted(BodyFraming::Length(3)));
        assert_eq!(
            judge("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            Verdict::Accepted(BodyFraming::Chunked)
        );
        assert!(matches!(judge("POST / HTTP/1.1\r\nContent-\rLength: 3\r\n\r\n"), Verdict::Refused(_)));
        assert!(matches!(judge("POST / HTTP/1.1\r\nContent-Length : 3\r\n\r\n"), Verdict::Unknown));
        assert!(matches!(judge("POST / HTTP/1.1\r\nContent\"Length: 3\r\n\r\n"), Verdict::Refused(_)));
        assert!(matches!(
            judge("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Verdict::Refused(_)
        ));
        assert!(matches!(judge("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"), Verdict::Refused(_)));
        assert!(matches!(
            judge("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            Verdict::Refused(_)
        ));
        assert!(matches!(judge("POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n"), Verdict::Refused(_)));
        assert!(matches!(judge("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), Verdict::Refused(_)));
        assert!(matches!(judge("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), Verdict::Refused(_)));
        assert_eq!(judge("GET / HTTP/1.0\r\n\r\n"), Verdict::Unknown);
    }
}
