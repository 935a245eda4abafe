//! What can go wrong decoding a header block, split by who pays for it.
//!
//! A block that does not decode leaves the two ends' dynamic tables out of
//! step, so nothing more on the connection can be trusted: a connection error
//! COMPRESSION_ERROR (RFC 9113 §4.3), whichever representation broke. A block
//! that decodes but whose header list is over Courier's limits
//! (`max_request_headers_kb`, `max_headers_count`) costs only its stream: the
//! tables are in step (the decoder went on to the end of the block), and
//! Envoy resets that stream and counts it. The two never mix in one type's
//! variants, so a caller cannot turn one into the other by accident.

use std::fmt;

use super::huffman::HuffmanError;

/// A header block that does not decode: a connection error COMPRESSION_ERROR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionError {
    /// The block ends inside a representation.
    Truncated,
    /// An integer with too many continuation octets or too large a value.
    IntegerOverflow,
    /// A string literal longer than what is left of the block.
    StringTooLong,
    /// A Huffman string that does not decode.
    Huffman(HuffmanError),
    /// Index 0, or one past the static and dynamic tables.
    InvalidIndex(usize),
    /// A dynamic table size update above the limit this side advertised.
    TableSizeAboveLimit { size: usize, limit: usize },
    /// A dynamic table size update after the first field of the block.
    TableSizeUpdateNotAtStart,
    /// This side lowered SETTINGS_HEADER_TABLE_SIZE below the table's size and
    /// the block does not start with an update to at most the new limit.
    TableSizeUpdateMissing { limit: usize },
}

impl fmt::Display for CompressionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("header block truncated inside a representation"),
            Self::IntegerOverflow => f.write_str("HPACK integer overflow"),
            Self::StringTooLong => f.write_str("string literal longer than the header block"),
            Self::Huffman(HuffmanError::Eos) => f.write_str("Huffman string contains EOS"),
            Self::Huffman(HuffmanError::PaddingTooLong) => f.write_str("Huffman padding longer than 7 bits"),
            Self::Huffman(HuffmanError::PaddingNotOnes) => f.write_str("Huffman padding not all ones"),
            Self::InvalidIndex(i) => write!(f, "header table index {i} is not in the tables"),
            Self::TableSizeAboveLimit { size, limit } => {
                write!(f, "dynamic table size update to {size} above the advertised {limit}")
            }
            Self::TableSizeUpdateNotAtStart => f.write_str("dynamic table size update after a header field"),
            Self::TableSizeUpdateMissing { limit } => {
                write!(f, "no dynamic table size update to at most {limit} after SETTINGS_HEADER_TABLE_SIZE lowered it")
            }
        }
    }
}

impl std::error::Error for CompressionError {}

impl From<HuffmanError> for CompressionError {
    fn from(e: HuffmanError) -> Self {
        Self::Huffman(e)
    }
}

/// Which header-list limit a block went over (the stream is refused; the
/// connection goes on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOverLimit {
    /// More bytes of names and values than `max_request_headers_kb` allows.
    Bytes,
    /// More fields than `max_headers_count` allows.
    Count,
}

/// The result of decoding a block that is not a decoded header list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Connection error COMPRESSION_ERROR.
    Compression(CompressionError),
    /// Stream-level: the block decoded (the tables are in step) but its list
    /// is over a limit; the fields past it were not kept.
    ListOverLimit(ListOverLimit),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Compression(e) => e.fmt(f),
            Self::ListOverLimit(ListOverLimit::Bytes) => f.write_str("header list over max_request_headers_kb"),
            Self::ListOverLimit(ListOverLimit::Count) => f.write_str("header list over max_headers_count"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl From<CompressionError> for DecodeError {
    fn from(e: CompressionError) -> Self {
        Self::Compression(e)
    }
}
