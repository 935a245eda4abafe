//! HPACK's prefixed integers (RFC 7541 §5.1): a value in the low N bits of the
//! first octet, continued in 7-bit groups when it does not fit.
//!
//! A decoder bounds them: a peer may pad with continuation octets or send a
//! value no table, string or size could have, so more than four continuation
//! octets past the prefix, or a value above 2^28 (larger than any block a
//! frame layer accepts), is an error rather than an overflow.

use bytes::BufMut;

use super::error::CompressionError;

/// The largest integer accepted: no string, index or table size in a header
/// block can be bigger.
pub const MAX_INTEGER: usize = 1 << 28;

/// Reads the integer whose prefix is the low `prefix_bits` of `buf[*pos]`,
/// moving `pos` past it.
pub fn decode(buf: &[u8], pos: &mut usize, prefix_bits: u8) -> Result<usize, CompressionError> {
    let mask = (1usize << prefix_bits) - 1;
    let first = *buf.get(*pos).ok_or(CompressionError::Truncated)?;
    *pos += 1;
    let prefix = usize::from(first) & mask;
    if prefix < mask {
        return Ok(prefix);
    }
    let mut value = prefix as u64;
    let mut shift = 0;
    loop {
        let octet = *buf.get(*pos).ok_or(CompressionError::Truncated)?;
        *pos += 1;
        value += u64::from(octet & 0x7f) << shift;
        if value > MAX_INTEGER as u64 {
            return Err(CompressionError::IntegerOverflow);
        }
        if octet & 0x80 == 0 {
            return Ok(value as usize);
        }
        shift += 7;
        if shift > 28 {
            return Err(CompressionError::IntegerOverflow);
        }
    }
}

/// Writes `value` with a `prefix_bits` prefix; `flags` are the first octet's
/// bits above the prefix.
pub fn encode(value: usize, prefix_bits: u8, flags: u8, dst: &mut impl BufMut) {
    let mask = (1usize << prefix_bits) - 1;
    if value < mask {
        dst.put_u8(flags | value as u8);
        return;
    }
    dst.put_u8(flags | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        dst.put_u8(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    dst.put_u8(rest as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(value: usize, prefix: u8) -> Vec<u8> {
        let mut v = Vec::new();
        encode(value, prefix, 0, &mut v);
        v
    }

    #[test]
    fn rfc7541_c1_examples() {
        assert_eq!(encoded(10, 5), [0x0a]);
        assert_eq!(encoded(1337, 5), [0x1f, 0x9a, 0x0a]);
        assert_eq!(encoded(42, 8), [0x2a]);
        assert_eq!(decode(&[0x1f, 0x9a, 0x0a], &mut 0, 5), Ok(1337));
        assert_eq!(decode(&[0xea], &mut 0, 5), Ok(10));
    }

    #[test]
    fn round_trips_at_every_prefix() {
        for prefix in 1..=8 {
            for value in [0, 1, 30, 31, 126, 127, 128, 255, 256, 16_383, 16_384, 1 << 20, MAX_INTEGER] {
                let mut pos = 0;
                assert_eq!(decode(&encoded(value, prefix), &mut pos, prefix), Ok(value));
            }
        }
    }

    #[test]
    fn overflow_and_truncation_are_errors() {
        assert_eq!(decode(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0x0f], &mut 0, 5), Err(CompressionError::IntegerOverflow));
        // Zero-valued continuation octets do not make it run on.
        assert_eq!(
            decode(&[0x1f, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], &mut 0, 5),
            Err(CompressionError::IntegerOverflow)
        );
        assert_eq!(decode(&[0x1f, 0x80], &mut 0, 5), Err(CompressionError::Truncated));
        assert_eq!(decode(&[], &mut 0, 5), Err(CompressionError::Truncated));
    }
}
