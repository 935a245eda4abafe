//! Encoding header lists into header blocks, one encoder per connection
//! direction.
//!
//! Each field is, in order of preference: an index (a static or dynamic entry
//! with its name and value), a literal with an indexed name, a literal with a
//! literal name; each string Huffman-coded when that is shorter. Which fields
//! enter the dynamic table is nghttp2's choice, the library Envoy's HTTP/2
//! grew up on (so a peer sees the same table use from Courier as from Envoy):
//!
//! - never indexed (§6.2.3, and kept out of any table downstream): fields
//!   marked sensitive, `authorization`, `proxy-authorization`, and `cookie`
//!   values under 20 bytes (short enough to guess by compression size, the
//!   CRIME family of attacks, when one connection carries several clients'
//!   requests, as an upstream connection does);
//! - not indexed: values that differ per message and would only evict
//!   reusable entries (`:path`, `age`, `content-length`, `etag`,
//!   `if-modified-since`, `if-none-match`, `location`, `set-cookie`), and
//!   any entry over 3/4 of the table;
//! - indexed: everything else.
//!
//! The table is at most 4096 bytes whatever the peer allows (memory per
//! connection); when the peer's SETTINGS_HEADER_TABLE_SIZE changes what that
//! allows, the next block starts with the size updates §4.2 asks for (the
//! smallest size since the last block, then the final one).

use bytes::BufMut;

use super::field::Field;
use super::table::{name_hash, static_lookup, DynamicTable, StaticMatch, DYNAMIC_BASE};
use super::{huffman, integer};

/// The most table an encoder uses, whatever the peer allows.
pub const MAX_OWN_TABLE_SIZE: usize = 4096;

/// How one field is represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Indexing {
    Incremental,
    Without,
    Never,
}

/// The encoding side of one direction of a connection.
#[derive(Debug)]
pub struct Encoder {
    table: DynamicTable,
    /// Size updates owed at the start of the next block: the smallest size
    /// since the last block and the final one.
    pending_update: Option<(usize, usize)>,
    huffman: bool,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    /// An encoder for a peer that has not changed SETTINGS_HEADER_TABLE_SIZE
    /// from RFC 9113's 4096.
    pub fn new() -> Self {
        Self { table: DynamicTable::indexed_by_name(4096.min(MAX_OWN_TABLE_SIZE)), pending_update: None, huffman: true }
    }

    /// Strings always raw (RFC 7541 Appendix C.3 and C.5's examples).
    #[cfg(test)]
    pub(crate) fn without_huffman() -> Self {
        Self { huffman: false, ..Self::new() }
    }

    /// The peer's SETTINGS_HEADER_TABLE_SIZE, as received.
    pub fn set_peer_table_size(&mut self, peer_limit: usize) {
        let size = peer_limit.min(MAX_OWN_TABLE_SIZE);
        let current = self.pending_update.map_or(self.table.max_size(), |(_, last)| last);
        if size == current {
            return;
        }
        let least = self.pending_update.map_or(self.table.max_size(), |(least, _)| least).min(size);
        self.pending_update = Some((least, size));
    }

    /// The dynamic table as it stands.
    pub fn table(&self) -> &DynamicTable {
        &self.table
    }

    /// Encodes a whole header list as one block.
    pub fn encode<'a>(&mut self, fields: impl IntoIterator<Item = &'a Field>, dst: &mut impl BufMut) {
        self.begin_block(dst);
        for f in fields {
            self.field(&f.name, &f.value, f.sensitive, dst);
        }
    }

    /// Starts a block: the size updates owed, if any. Call once per block,
    /// before its first `field`.
    pub fn begin_block(&mut self, dst: &mut impl BufMut) {
        let Some((least, last)) = self.pending_update.take() else { return };
        if least < last {
            self.table.set_max_size(least);
            integer::encode(least, 5, 0x20, dst);
        }
        self.table.set_max_size(last);
        integer::encode(last, 5, 0x20, dst);
    }

    /// Encodes one field of the block begun with `begin_block`.
    pub fn field(&mut self, name: &[u8], value: &[u8], sensitive: bool, dst: &mut impl BufMut) {
        let indexing = self.indexing(name, value, sensitive);
        let hash = name_hash(name);
        let static_match = static_lookup(name, hash, value);
        if let Some(StaticMatch::Field(i)) = static_match {
            if indexing != Indexing::Never {
                integer::encode(i, 7, 0x80, dst);
                return;
            }
        }
        let mut name_index = match static_match {
            Some(StaticMatch::Field(i) | StaticMatch::Name(i)) => Some(i),
            None => None,
        };
        if indexing != Indexing::Never {
            for (i, e) in self.table.named(name, hash) {
                if e.value == value {
                    integer::encode(DYNAMIC_BASE + i, 7, 0x80, dst);
                    return;
                }
                name_index.get_or_insert(DYNAMIC_BASE + i);
            }
        } else if name_index.is_none() {
            name_index = self.table.named(name, hash).next().map(|(i, _)| DYNAMIC_BASE + i);
        }
        let (prefix, flags) = match indexing {
            Indexing::Incremental => (6, 0x40),
            Indexing::Without => (4, 0x00),
            Indexing::Never => (4, 0x10),
        };
        match name_index {
            Some(i) => integer::encode(i, prefix, flags, dst),
            None => {
                integer::encode(0, prefix, flags, dst);
                self.string(name, dst);
            }
        }
        self.string(value, dst);
        if indexing == Indexing::Incremental {
            self.table.insert(name, value);
        }
    }

    fn indexing(&self, name: &[u8], value: &[u8], sensitive: bool) -> Indexing {
        let never = sensitive
            || name == b"authorization"
            || name == b"proxy-authorization"
            || (name == b"cookie" && value.len() < 20);
        if never {
            return Indexing::Never;
        }
        let varies = matches!(
            name,
            b":path"
                | b"age"
                | b"content-length"
                | b"etag"
                | b"if-modified-since"
                | b"if-none-match"
                | b"location"
                | b"set-cookie"
        );
        if varies || super::table::entry_size(name, value) > self.table.max_size() * 3 / 4 {
            return Indexing::Without;
        }
        Indexing::Incremental
    }

    fn string(&self, s: &[u8], dst: &mut impl BufMut) {
        let coded = huffman::encoded_len(s);
        if self.huffman && coded < s.len() {
            integer::encode(coded, 7, 0x80, dst);
            huffman::encode(s, dst);
        } else {
            integer::encode(s.len(), 7, 0x00, dst);
            dst.put_slice(s);
        }
    }
}
