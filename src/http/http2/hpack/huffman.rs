//! The Huffman code of RFC 7541 Appendix B, both ways.
//!
//! Decoding takes the next 8 bits to a table for codes of up to 8 bits (most
//! of what headers hold); longer codes use that the code is canonical (codes
//! of one length are consecutive, in symbol order, and each length's first
//! code follows from the previous length's last): per code length, the first
//! code and where its symbols start in a symbol list sorted by (length,
//! symbol). Both tables are built at compile time from the code table. Decoding is strict, as RFC 7541 §5.2
//! requires: EOS inside the string, padding longer than 7 bits, and padding
//! that is not the most significant bits of EOS (all ones) are errors.

use bytes::BufMut;

/// Code and bit length of each symbol, 0..=255 then EOS (256); RFC 7541 Appendix B.
const CODES: [(u32, u8); 257] = [
    (0x1ff8, 13),
    (0x7fffd8, 23),
    (0xfffffe2, 28),
    (0xfffffe3, 28),
    (0xfffffe4, 28),
    (0xfffffe5, 28),
    (0xfffffe6, 28),
    (0xfffffe7, 28),
    (0xfffffe8, 28),
    (0xffffea, 24),
    (0x3ffffffc, 30),
    (0xfffffe9, 28),
    (0xfffffea, 28),
    (0x3ffffffd, 30),
    (0xfffffeb, 28),
    (0xfffffec, 28),
    (0xfffffed, 28),
    (0xfffffee, 28),
    (0xfffffef, 28),
    (0xffffff0, 28),
    (0xffffff1, 28),
    (0xffffff2, 28),
    (0x3ffffffe, 30),
    (0xffffff3, 28),
    (0xffffff4, 28),
    (0xffffff5, 28),
    (0xffffff6, 28),
    (0xffffff7, 28),
    (0xffffff8, 28),
    (0xffffff9, 28),
    (0xffffffa, 28),
    (0xffffffb, 28),
    (0x14, 6),
    (0x3f8, 10),
    (0x3f9, 10),
    (0xffa, 12),
    (0x1ff9, 13),
    (0x15, 6),
    (0xf8, 8),
    (0x7fa, 11),
    (0x3fa, 10),
    (0x3fb, 10),
    (0xf9, 8),
    (0x7fb, 11),
    (0xfa, 8),
    (0x16, 6),
    (0x17, 6),
    (0x18, 6),
    (0x0, 5),
    (0x1, 5),
    (0x2, 5),
    (0x19, 6),
    (0x1a, 6),
    (0x1b, 6),
    (0x1c, 6),
    (0x1d, 6),
    (0x1e, 6),
    (0x1f, 6),
    (0x5c, 7),
    (0xfb, 8),
    (0x7ffc, 15),
    (0x20, 6),
    (0xffb, 12),
    (0x3fc, 10),
    (0x1ffa, 13),
    (0x21, 6),
    (0x5d, 7),
    (0x5e, 7),
    (0x5f, 7),
    (0x60, 7),
    (0x61, 7),
    (0x62, 7),
    (0x63, 7),
    (0x64, 7),
    (0x65, 7),
    (0x66, 7),
    (0x67, 7),
    (0x68, 7),
    (0x69, 7),
    (0x6a, 7),
    (0x6b, 7),
    (0x6c, 7),
    (0x6d, 7),
    (0x6e, 7),
    (0x6f, 7),
    (0x70, 7),
    (0x71, 7),
    (0x72, 7),
    (0xfc, 8),
    (0x73, 7),
    (0xfd, 8),
    (0x1ffb, 13),
    (0x7fff0, 19),
    (0x1ffc, 13),
    (0x3ffc, 14),
    (0x22, 6),
    (0x7ffd, 15),
    (0x3, 5),
    (0x23, 6),
    (0x4, 5),
    (0x24, 6),
    (0x5, 5),
    (0x25, 6),
    (0x26, 6),
    (0x27, 6),
    (0x6, 5),
    (0x74, 7),
    (0x75, 7),
    (0x28, 6),
    (0x29, 6),
    (0x2a, 6),
    (0x7, 5),
    (0x2b, 6),
    (0x76, 7),
    (0x2c, 6),
    (0x8, 5),
    (0x9, 5),
    (0x2d, 6),
    (0x77, 7),
    (0x78, 7),
    (0x79, 7),
    (0x7a, 7),
    (0x7b, 7),
    (0x7ffe, 15),
    (0x7fc, 11),
    (0x3ffd, 14),
    (0x1ffd, 13),
    (0xffffffc, 28),
    (0xfffe6, 20),
    (0x3fffd2, 22),
    (0xfffe7, 20),
    (0xfffe8, 20),
    (0x3fffd3, 22),
    (0x3fffd4, 22),
    (0x3fffd5, 22),
    (0x7fffd9, 23),
    (0x3fffd6, 22),
    (0x7fffda, 23),
    (0x7fffdb, 23),
    (0x7fffdc, 23),
    (0x7fffdd, 23),
    (0x7fffde, 23),
    (0xffffeb, 24),
    (0x7fffdf, 23),
    (0xffffec, 24),
    (0xffffed, 24),
    (0x3fffd7, 22),
    (0x7fffe0, 23),
    (0xffffee, 24),
    (0x7fffe1, 23),
    (0x7fffe2, 23),
    (0x7fffe3, 23),
    (0x7fffe4, 23),
    (0x1fffdc, 21),
    (0x3fffd8, 22),
    (0x7fffe5, 23),
    (0x3fffd9, 22),
    (0x7fffe6, 23),
    (0x7fffe7, 23),
    (0xffffef, 24),
    (0x3fffda, 22),
    (0x1fffdd, 21),
    (0xfffe9, 20),
    (0x3fffdb, 22),
    (0x3fffdc, 22),
    (0x7fffe8, 23),
    (0x7fffe9, 23),
    (0x1fffde, 21),
    (0x7fffea, 23),
    (0x3fffdd, 22),
    (0x3fffde, 22),
    (0xfffff0, 24),
    (0x1fffdf, 21),
    (0x3fffdf, 22),
    (0x7fffeb, 23),
    (0x7fffec, 23),
    (0x1fffe0, 21),
    (0x1fffe1, 21),
    (0x3fffe0, 22),
    (0x1fffe2, 21),
    (0x7fffed, 23),
    (0x3fffe1, 22),
    (0x7fffee, 23),
    (0x7fffef, 23),
    (0xfffea, 20),
    (0x3fffe2, 22),
    (0x3fffe3, 22),
    (0x3fffe4, 22),
    (0x7ffff0, 23),
    (0x3fffe5, 22),
    (0x3fffe6, 22),
    (0x7ffff1, 23),
    (0x3ffffe0, 26),
    (0x3ffffe1, 26),
    (0xfffeb, 20),
    (0x7fff1, 19),
    (0x3fffe7, 22),
    (0x7ffff2, 23),
    (0x3fffe8, 22),
    (0x1ffffec, 25),
    (0x3ffffe2, 26),
    (0x3ffffe3, 26),
    (0x3ffffe4, 26),
    (0x7ffffde, 27),
    (0x7ffffdf, 27),
    (0x3ffffe5, 26),
    (0xfffff1, 24),
    (0x1ffffed, 25),
    (0x7fff2, 19),
    (0x1fffe3, 21),
    (0x3ffffe6, 26),
    (0x7ffffe0, 27),
    (0x7ffffe1, 27),
    (0x3ffffe7, 26),
    (0x7ffffe2, 27),
    (0xfffff2, 24),
    (0x1fffe4, 21),
    (0x1fffe5, 21),
    (0x3ffffe8, 26),
    (0x3ffffe9, 26),
    (0xffffffd, 28),
    (0x7ffffe3, 27),
    (0x7ffffe4, 27),
    (0x7ffffe5, 27),
    (0xfffec, 20),
    (0xfffff3, 24),
    (0xfffed, 20),
    (0x1fffe6, 21),
    (0x3fffe9, 22),
    (0x1fffe7, 21),
    (0x1fffe8, 21),
    (0x7ffff3, 23),
    (0x3fffea, 22),
    (0x3fffeb, 22),
    (0x1ffffee, 25),
    (0x1ffffef, 25),
    (0xfffff4, 24),
    (0xfffff5, 24),
    (0x3ffffea, 26),
    (0x7ffff4, 23),
    (0x3ffffeb, 26),
    (0x7ffffe6, 27),
    (0x3ffffec, 26),
    (0x3ffffed, 26),
    (0x7ffffe7, 27),
    (0x7ffffe8, 27),
    (0x7ffffe9, 27),
    (0x7ffffea, 27),
    (0x7ffffeb, 27),
    (0xffffffe, 28),
    (0x7ffffec, 27),
    (0x7ffffed, 27),
    (0x7ffffee, 27),
    (0x7ffffef, 27),
    (0x7fffff0, 27),
    (0x3ffffee, 26),
    (0x3fffffff, 30),
];

const EOS: usize = 256;
const MAX_CODE_LENGTH: usize = 30;

/// What the decoder needs per code length: the first code of that length,
/// how many codes have it, and where their symbols start in `SYMBOLS`.
struct Canonical {
    first: [u32; MAX_CODE_LENGTH + 1],
    count: [u32; MAX_CODE_LENGTH + 1],
    start: [u16; MAX_CODE_LENGTH + 1],
    symbols: [u16; 257],
}

const CANONICAL: Canonical = canonical();

const fn canonical() -> Canonical {
    let mut c = Canonical {
        first: [0; MAX_CODE_LENGTH + 1],
        count: [0; MAX_CODE_LENGTH + 1],
        start: [0; MAX_CODE_LENGTH + 1],
        symbols: [0; 257],
    };
    let mut next = 0usize;
    let mut len = 1;
    while len <= MAX_CODE_LENGTH {
        c.start[len] = next as u16;
        let mut sym = 0;
        while sym < 257 {
            if CODES[sym].1 as usize == len {
                if c.count[len] == 0 {
                    c.first[len] = CODES[sym].0;
                }
                c.count[len] += 1;
                c.symbols[next] = sym as u16;
                next += 1;
            }
            sym += 1;
        }
        len += 1;
    }
    c
}

/// Why a Huffman string does not decode (each a COMPRESSION_ERROR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HuffmanError {
    /// The EOS symbol inside the string.
    Eos,
    /// More than 7 bits of padding.
    PaddingTooLong,
    /// Padding that is not all ones.
    PaddingNotOnes,
}

/// For each value of the next 8 bits: the symbol whose code (of at most 8
/// bits) they start with, and that code's length (0: the code is longer).
/// Most of what headers hold (lower-case letters, digits, common punctuation)
/// has codes of 5 to 8 bits, so this one look-up decodes most symbols.
const SHORT_CODES: [(u8, u8); 256] = short_codes();

const fn short_codes() -> [(u8, u8); 256] {
    let mut t = [(0u8, 0u8); 256];
    let mut sym = 0;
    while sym < 256 {
        let (code, len) = CODES[sym];
        if len <= 8 {
            let shift = 8 - len as u32;
            let first = (code << shift) as usize;
            let mut i = 0;
            while i < (1usize << shift) {
                t[first + i] = (sym as u8, len);
                i += 1;
            }
        }
        sym += 1;
    }
    t
}

/// Decodes `src`, appending the octets to `dst` (or, with `None`, only
/// checking that it decodes).
pub fn decode(src: &[u8], mut dst: Option<&mut impl BufMut>) -> Result<(), HuffmanError> {
    let c = &CANONICAL;
    // The bits not yet decoded, the next one at bit 63; `nbits` of them are real.
    let mut acc: u64 = 0;
    let mut nbits: u32 = 0;
    let mut next = 0;
    loop {
        while nbits <= 56 && next < src.len() {
            acc |= u64::from(src[next]) << (56 - nbits);
            nbits += 8;
            next += 1;
        }
        let (sym, len) = SHORT_CODES[(acc >> 56) as usize];
        if len != 0 && u32::from(len) <= nbits {
            if let Some(d) = dst.as_mut() {
                d.put_u8(sym);
            }
            acc <<= len;
            nbits -= u32::from(len);
            continue;
        }
        // A longer code (9 to 30 bits), or what is left is padding.
        let mut found = None;
        let mut l = 9;
        while l <= MAX_CODE_LENGTH as u32 && l <= nbits {
            let rank = ((acc >> (64 - l)) as u32).wrapping_sub(c.first[l as usize]);
            if rank < c.count[l as usize] {
                found = Some((c.symbols[c.start[l as usize] as usize + rank as usize] as usize, l));
                break;
            }
            l += 1;
        }
        match found {
            Some((EOS, _)) => return Err(HuffmanError::Eos),
            Some((sym, l)) => {
                if let Some(d) = dst.as_mut() {
                    d.put_u8(sym as u8);
                }
                acc <<= l;
                nbits -= l;
            }
            None => break,
        }
    }
    // No code fits in what is left: padding, at most 7 bits, all ones.
    if nbits > 7 {
        return Err(HuffmanError::PaddingTooLong);
    }
    let ones = (!0u64).checked_shl(64 - nbits).unwrap_or(0);
    if acc & ones != ones {
        return Err(HuffmanError::PaddingNotOnes);
    }
    Ok(())
}

/// The length of `src` Huffman-encoded, in octets.
pub fn encoded_len(src: &[u8]) -> usize {
    let bits: usize = src.iter().map(|&b| CODES[b as usize].1 as usize).sum();
    bits.div_ceil(8)
}

/// Appends `src` Huffman-encoded to `dst`, padded with the high bits of EOS.
pub fn encode(src: &[u8], dst: &mut impl BufMut) {
    let mut bits: u64 = 0;
    let mut pending = 0u32;
    for &b in src {
        let (code, len) = CODES[b as usize];
        bits = (bits << len) | u64::from(code);
        pending += u32::from(len);
        while pending >= 8 {
            pending -= 8;
            dst.put_u8((bits >> pending) as u8);
        }
        bits &= (1 << pending) - 1;
    }
    if pending > 0 {
        let pad = 8 - pending;
        dst.put_u8(((bits << pad) | ((1 << pad) - 1)) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_table_is_canonical() {
        for (sym, &(code, len)) in CODES.iter().enumerate() {
            let c = &CANONICAL;
            let rank = (code - c.first[len as usize]) as usize;
            assert!(rank < c.count[len as usize] as usize, "symbol {sym}");
            assert_eq!(c.symbols[c.start[len as usize] as usize + rank] as usize, sym);
        }
    }

    #[test]
    fn every_octet_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        let mut enc = Vec::new();
        encode(&all, &mut enc);
        assert_eq!(enc.len(), encoded_len(&all));
        let mut dec = Vec::new();
        decode(&enc, Some(&mut dec)).unwrap();
        assert_eq!(dec, all);
    }

    /// Every symbol alone and after each padding length, and every pair of
    /// symbols: decodes back (both the short-code table and the long codes).
    #[test]
    fn every_symbol_and_pair_decodes() {
        for a in 0..=255u8 {
            let mut enc = Vec::new();
            encode(&[a], &mut enc);
            let mut dec = Vec::new();
            assert_eq!(decode(&enc, Some(&mut dec)), Ok(()), "{a}");
            assert_eq!(dec, [a]);
            for b in (0..=255u8).step_by(7) {
                let mut enc = Vec::new();
                encode(&[a, b, a], &mut enc);
                let mut dec = Vec::new();
                assert_eq!(decode(&enc, Some(&mut dec)), Ok(()), "{a} {b}");
                assert_eq!(dec, [a, b, a]);
            }
        }
    }

    #[test]
    fn rfc7541_c4_1_authority() {
        let mut enc = Vec::new();
        encode(b"www.example.com", &mut enc);
        assert_eq!(enc, [0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff]);
    }

    #[test]
    fn strict_about_eos_and_padding() {
        // h2spec hpack/5.2/1: EOS (30 ones) then padding.
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff], None::<&mut Vec<u8>>), Err(HuffmanError::Eos));
        // hpack/5.2/2: 'a' (00011) then 11 bits of ones.
        assert_eq!(decode(&[0x1f, 0xff], None::<&mut Vec<u8>>), Err(HuffmanError::PaddingTooLong));
        // hpack/5.2/3: 'a' then padding of zeros.
        assert_eq!(decode(&[0x18], None::<&mut Vec<u8>>), Err(HuffmanError::PaddingNotOnes));
        // 'a' padded with three ones is fine.
        let mut out = Vec::new();
        decode(&[0x1f], Some(&mut out)).unwrap();
        assert_eq!(out, b"a");
    }
}
