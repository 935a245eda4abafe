//! HPACK string literals (RFC 7541 §5.2): a Huffman flag, a 7-bit-prefix
//! length, then that many octets, raw or Huffman-coded.
//!
//! Reading one only locates it in the block; whether it is materialised, and
//! where, is the decoder's choice (a field past the header-list limit is only
//! checked, never copied). A raw literal becomes a slice of the block; a
//! Huffman one is decoded into the block's shared buffer.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::error::CompressionError;
use super::{huffman, integer};

/// A string literal's place in the header block.
#[derive(Debug, Clone)]
pub struct Literal {
    pub huffman: bool,
    pub octets: Range<usize>,
}

impl Literal {
    /// Reads the literal at `*pos`, moving `pos` past it.
    pub fn read(buf: &[u8], pos: &mut usize) -> Result<Self, CompressionError> {
        let huffman = buf.get(*pos).ok_or(CompressionError::Truncated)? & 0x80 != 0;
        let len = integer::decode(buf, pos, 7)?;
        let end = pos.checked_add(len).filter(|end| *end <= buf.len()).ok_or(CompressionError::StringTooLong)?;
        let octets = *pos..end;
        *pos = end;
        Ok(Self { huffman, octets })
    }

    /// Checks that it decodes, keeping nothing.
    pub fn check(&self, block: &[u8]) -> Result<(), CompressionError> {
        if self.huffman {
            huffman::decode(&block[self.octets.clone()], None::<&mut BytesMut>)?;
        }
        Ok(())
    }

    /// The literal's octets: a slice of `block` when raw; decoded into
    /// `arena` (and split off it) when Huffman-coded.
    pub fn bytes(&self, block: &Bytes, arena: &mut BytesMut) -> Result<Bytes, CompressionError> {
        if !self.huffman {
            return Ok(block.slice(self.octets.clone()));
        }
        let coded = &block[self.octets.clone()];
        // Huffman codes are at least 5 bits: at most 8/5 octets out per octet in.
        let most = coded.len() * 8 / 5 + 1;
        if arena.capacity() - arena.len() < most {
            // One buffer for the rest of the block's Huffman strings.
            arena.reserve((block.len() - self.octets.start) * 8 / 5 + 1);
        }
        huffman::decode(coded, Some(&mut *arena))?;
        Ok(arena.split().freeze())
    }
}
