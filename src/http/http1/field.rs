//! Header field syntax (RFC 9110 §5.1, §5.5) as Envoy's HTTP/1 codec checks it,
//! for request heads and chunked trailers alike.
//!
//! A proxy and the server behind it must agree on every header that decides
//! framing, so a name is a token or the request is refused: a name with a bare
//! CR (`Content-\rLength`) must not become `content-length` by having the CR
//! dropped. Envoy tells two refusals apart, and so does this module: a control
//! byte (NUL, 0x01-0x1f but HT and CR, DEL) is `http1.invalid_characters`,
//! anything else that is not a token (whitespace, a bare CR, separators,
//! non-ASCII) is `http1.codec_error`. Values may hold any byte but those control
//! bytes; a bare CR in a value is dropped, as Envoy's parser does.

use super::CodecError;

/// RFC 9110 `tchar`, looked up once per byte.
static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
            );
        b += 1;
    }
    t
};

/// Whether `b` is a token (RFC 9110 §5.6.2): one or more `tchar`.
pub fn is_token(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(|&c| TCHAR[usize::from(c)])
}

/// A control byte Envoy refuses as `http1.invalid_characters` (HT and CR are
/// whitespace and line syntax, judged elsewhere).
pub fn is_forbidden_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t' && b != b'\r') || b == 0x7f
}

/// One header line: its name, its value (trimmed of SP and HT), and whether the
/// value holds a bare CR to drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
    pub bare_cr: bool,
}

/// Splits and checks one header line, given without its line ending.
pub fn parse_line(line: &[u8]) -> Result<Field<'_>, CodecError> {
    let codec_error = CodecError::bad_request("http1.codec_error");
    let colon = line.iter().position(|&b| b == b':').ok_or(codec_error)?;
    let name = &line[..colon];
    if name.is_empty() {
        return Err(codec_error);
    }
    check_name(name)?;
    let value = trim(&line[colon + 1..]);
    let bare_cr = check_value(value)?;
    Ok(Field { name, value, bare_cr })
}

/// A name must be a token; the first byte that is not decides the refusal.
fn check_name(name: &[u8]) -> Result<(), CodecError> {
    match name.iter().find(|&&b| !TCHAR[usize::from(b)]) {
        None => Ok(()),
        Some(&b) if is_forbidden_ctl(b) => Err(CodecError::bad_request("http1.invalid_characters")),
        Some(_) => Err(CodecError::bad_request("http1.codec_error")),
    }
}

/// A value (or an obs-fold continuation of one) may hold no control byte but HT
/// and CR; true when it holds a CR (to be dropped).
pub fn check_value(value: &[u8]) -> Result<bool, CodecError> {
    let mut bare_cr = false;
    for &b in value {
        if is_forbidden_ctl(b) {
            return Err(CodecError::bad_request("http1.invalid_characters"));
        }
        bare_cr |= b == b'\r';
    }
    Ok(bare_cr)
}

/// `v` without leading and trailing SP and HT.
pub fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(v.len());
    let end = v.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(start, |e| e + 1);
    &v[start..end]
}

/// A `Content-Length` value (RFC 9110 §8.6): digits only, around them optional
/// whitespace, within `u64`; `None` otherwise. Requests and responses read
/// their lengths by the same rule.
pub fn content_length(v: &[u8]) -> Option<u64> {
    let v = trim(v);
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// The lines of a header block (no blank line at its end), each without its
/// line ending: LF or CRLF.
pub fn lines(block: &[u8]) -> impl Iterator<Item = &[u8]> {
    block.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// Whether a line continues the previous field's value (obs-fold, RFC 9112 §5.2).
pub fn is_continuation(line: &[u8]) -> bool {
    matches!(line.first(), Some(b' ' | b'\t'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(line: &[u8]) -> &'static str {
        parse_line(line).err().map_or("ok", |e| e.details)
    }

    #[test]
    fn names_are_tokens() {
        assert_eq!(details(b"X-Ok: 1"), "ok");
        assert_eq!(details(b"!#$%&'*+.^_`|~: 1"), "ok");
        // A bare CR, whitespace or a separator: not a token.
        assert_eq!(details(b"Content-\rLength: 3"), "http1.codec_error");
        assert_eq!(details(b"Transfer-Encoding : chunked"), "http1.codec_error");
        assert_eq!(details(b"Transfer-Encoding\t: chunked"), "http1.codec_error");
        assert_eq!(details(b"X(Y): 1"), "http1.codec_error");
        assert_eq!(details(b"X\xe9: 1"), "http1.codec_error");
        assert_eq!(details(b": 1"), "http1.codec_error");
        assert_eq!(details(b"no colon"), "http1.codec_error");
        // A control byte.
        assert_eq!(details(b"X\0Y: 1"), "http1.invalid_characters");
        assert_eq!(details(b"\x0bTransfer-Encoding: chunked"), "http1.invalid_characters");
        assert_eq!(details(b"Transfer-Encoding\x7f: chunked"), "http1.invalid_characters");
    }

    #[test]
    fn values_refuse_control_bytes_and_note_bare_cr() {
        let f = parse_line(b"X:  a\tb  ").unwrap();
        assert_eq!((f.name, f.value, f.bare_cr), (&b"X"[..], &b"a\tb"[..], false));
        assert!(parse_line(b"X: a\rb").unwrap().bare_cr);
        assert_eq!(parse_line(b"X:").unwrap().value, b"");
        assert_eq!(parse_line(b"X: caf\xe9").unwrap().value, b"caf\xe9");
        for bad in [&b"X: a\0b"[..], b"X: a\x01b", b"X: a\x7fb", b"X: chunked\x0b"] {
            assert_eq!(details(bad), "http1.invalid_characters", "{bad:?}");
        }
    }
}
