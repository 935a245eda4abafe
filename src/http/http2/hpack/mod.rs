//! HPACK (RFC 7541), Courier's own, for Courier's own HTTP/2 codec.
//!
//! Why not `h2`'s: it answers every HPACK fault with PROTOCOL_ERROR where RFC
//! 9113 §4.3 asks for COMPRESSION_ERROR, and it ends the whole connection on
//! an HPACK bomb (a large dynamic-table entry referenced many times) where
//! Envoy refuses only the stream and counts it. Here a block that does not
//! decode is a `CompressionError` (connection), and a list over
//! `max_request_headers_kb` / `max_headers_count` is a `ListOverLimit`
//! (stream) after the block was decoded to its end, so the dynamic table stays
//! in step with the peer's and memory stays bounded by the limit. Decoded
//! fields share the memory already there (static table, dynamic entries, the
//! block itself), so a typical request costs no allocation per field.
//!
//! The downstream connection loop (`http_connection_manager::http2_connection`)
//! decodes each complete block the sans-IO codec (`http2::codec`) reports
//! with `Decoder::decode`, `http2::request_head` turns the list into the
//! request, and `http2::server_stream` encodes each response head with the
//! `Encoder`. The upstream side still runs on `h2`.
//!
//! - `integer`, `string`, `huffman` — the primitives (§5, Appendix B)
//! - `table` — the static table and a dynamic table (§2.3, §4)
//! - `field` — a decoded header field
//! - `error` — connection-level `CompressionError` vs stream-level `ListOverLimit`
//! - `decoder`, `encoder` — one per direction of a connection

pub mod decoder;
pub mod encoder;
pub mod error;
pub mod field;
pub mod huffman;
pub mod integer;
pub mod string;
pub mod table;
#[cfg(test)]
mod tests;

pub use decoder::{Decoder, HeaderListLimit};
pub use encoder::Encoder;
pub use error::{CompressionError, DecodeError, ListOverLimit};
pub use field::Field;

/// Fuzz target: any bytes as header blocks, through one decoder (so state
/// carries from block to block as on a connection). Must hold: no panic; a
/// decoded list within the limit; the dynamic table within its size; what
/// decodes re-encodes to a block that decodes to the same list.
#[cfg(any(test, fuzzing))]
pub(crate) fn fuzz(data: &[u8]) {
    let limit = HeaderListLimit { max_bytes: 4096, max_count: 64 };
    let mut decoder = Decoder::new(decoder::DEFAULT_TABLE_SIZE);
    // The first octet, when there is one, sets a lower limit for the blocks past
    // the first, so size-update rules are exercised too.
    let (table_limit, rest) = data.split_first().map_or((None, data), |(b, r)| (Some(usize::from(*b) * 16), r));
    for (n, block) in split_blocks(rest).enumerate() {
        if n == 1 {
            if let Some(l) = table_limit {
                decoder.set_table_size_limit(l);
            }
        }
        let block = bytes::Bytes::copy_from_slice(block);
        match decoder.decode(&block, limit) {
            Ok(fields) => {
                assert!(fields.len() <= limit.max_count);
                assert!(fields.iter().map(Field::len).sum::<usize>() <= limit.max_bytes);
                let mut encoder = Encoder::new();
                let mut out = bytes::BytesMut::new();
                encoder.encode(&fields, &mut out);
                let unlimited = HeaderListLimit { max_bytes: usize::MAX, max_count: usize::MAX };
                let again = Decoder::new(decoder::DEFAULT_TABLE_SIZE).decode(&out.freeze(), unlimited);
                // Names and values survive; the encoder may mark more fields never-indexed.
                let pairs = |l: Vec<Field>| l.into_iter().map(|f| (f.name, f.value)).collect::<Vec<_>>();
                assert_eq!(again.map(pairs).ok(), Some(pairs(fields)));
            }
            Err(DecodeError::ListOverLimit(_)) => {}
            Err(DecodeError::Compression(_)) => return,
        }
        assert!(decoder.table().size() <= decoder.table().max_size());
    }
}

/// Fuzz input as blocks: each a big-endian u16 length and that many octets
/// (fewer at the end).
#[cfg(any(test, fuzzing))]
fn split_blocks(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let (len, rest) = match data {
            [a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
            _ => return None,
        };
        let (block, rest) = rest.split_at(len.min(rest.len()));
        data = rest;
        Some(block)
    })
}
