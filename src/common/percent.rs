//! Percent-decoding of query string values: the admin's query parameters and
//! the generic matcher's `HttpRequestQueryParamMatchInput`, which, as Envoy's,
//! decode `%XX` only (a `+` stays a `+`: `/stats?filter=total+` is the regex
//! `total+`, checked against Envoy 1.40). A `%` not followed by two hex digits
//! stays as it is; bytes that do not form UTF-8 are replaced.

/// Decodes `%XX` escapes only.
pub fn decode_percent(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()) {
                Some(hex) if hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    out.push(u8::from_str_radix(hex, 16).unwrap_or(b'%'));
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_keeps_plus() {
        assert_eq!(decode_percent("a%20b+c"), "a b+c");
        assert_eq!(decode_percent("100%"), "100%");
        assert_eq!(decode_percent("%zz%4"), "%zz%4");
        assert_eq!(decode_percent("x%41"), "xA");
    }
}
