//! Decoding header blocks (RFC 7541 §3, §6) into header lists, one decoder per
//! connection direction, with the header-list limits applied as it goes.
//!
//! The limits are Envoy's `max_request_headers_kb` (bytes of names and values)
//! and `max_headers_count` (fields, pseudo-headers and every cookie crumb one
//! each: checked against Envoy 1.40, which at 100 serves 4 pseudo-headers and
//! 96 regular fields or 96 crumbs, and refuses 97), and crossing one refuses
//! the stream, not the connection. So the decoder never stops early
//! on a list over the limit: it decodes the block to its end, inserting into
//! the dynamic table what the block inserts (the peer's encoder did), so the
//! next block decodes right; it only stops keeping fields. Memory is then
//! bounded by the limit, not by the block's size times its references to one
//! large entry (the "HPACK bomb"): a reference is counted, not copied.
//!
//! Dynamic table size: updates are allowed only before the block's first
//! field and up to the limit this side advertised (SETTINGS_HEADER_TABLE_SIZE,
//! in force once the peer acknowledged it). When that limit goes below the
//! table's size, the peer's next block must start with an update to at most
//! the smallest limit since its last block (§4.2).

use bytes::{Bytes, BytesMut};

use super::error::{CompressionError, DecodeError, ListOverLimit};
use super::field::Field;
use super::integer;
use super::string::Literal;
use super::table::{DynamicTable, DYNAMIC_BASE, STATIC_TABLE};

/// RFC 9113's initial SETTINGS_HEADER_TABLE_SIZE.
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// How much of a decoded header list is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderListLimit {
    /// Bytes of names and values (`max_request_headers_kb` × 1024).
    pub max_bytes: usize,
    /// Fields, pseudo-headers and each cookie crumb included (`max_headers_count`).
    pub max_count: usize,
}

impl HeaderListLimit {
    /// Envoy's defaults: 60 KiB and 100 fields.
    pub const ENVOY_DEFAULT: Self = Self { max_bytes: 60 * 1024, max_count: 100 };
}

/// The decoding side of one direction of a connection.
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// SETTINGS_HEADER_TABLE_SIZE as this side advertised it (and the peer acknowledged).
    limit: usize,
    /// The size the next block's first update must not exceed, when this side
    /// lowered its limit below the table's size since the last block.
    update_required: Option<usize>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(DEFAULT_TABLE_SIZE)
    }
}

impl Decoder {
    pub fn new(table_size: usize) -> Self {
        Self { table: DynamicTable::new(table_size), limit: table_size, update_required: None }
    }

    /// This side's SETTINGS_HEADER_TABLE_SIZE, once the peer acknowledged it.
    pub fn set_table_size_limit(&mut self, limit: usize) {
        self.limit = limit;
        if limit < self.table.max_size() {
            self.update_required = Some(self.update_required.map_or(limit, |r| r.min(limit)));
        }
    }

    /// The dynamic table as it stands.
    pub fn table(&self) -> &DynamicTable {
        &self.table
    }

    /// Decodes one complete header block (HEADERS and its CONTINUATIONs).
    pub fn decode(&mut self, block: &Bytes, limit: HeaderListLimit) -> Result<Vec<Field>, DecodeError> {
        let mut list = ListBuilder::new(limit);
        let mut arena = BytesMut::new();
        let buf = &block[..];
        let mut pos = 0;
        let mut at_start = true;
        while pos < buf.len() {
            let first = buf[pos];
            if first & 0xe0 == 0x20 {
                // Dynamic table size update (§6.3).
                if !at_start {
                    return Err(CompressionError::TableSizeUpdateNotAtStart.into());
                }
                let size = integer::decode(buf, &mut pos, 5)?;
                let bound = self.update_required.take().unwrap_or(self.limit).min(self.limit);
                if size > bound {
                    return Err(CompressionError::TableSizeAboveLimit { size, limit: bound }.into());
                }
                self.table.set_max_size(size);
                continue;
            }
            if at_start {
                at_start = false;
                self.check_no_update_due()?;
            }
            if first & 0x80 != 0 {
                // Indexed field (§6.1).
                let index = integer::decode(buf, &mut pos, 7)?;
                if list.keeps() {
                    let (name, value) = self.lookup(index)?;
                    list.push(Field { name, value, sensitive: false });
                } else {
                    self.check_index(index)?;
                }
            } else if first & 0xc0 == 0x40 {
                // Literal with incremental indexing (§6.2.1).
                let name = self.name(block, &mut pos, 6, &mut arena)?;
                let value = Literal::read(buf, &mut pos)?.bytes(block, &mut arena)?;
                let inserted = self.table.insert(&name, &value);
                if list.keeps() {
                    let field = match (inserted, self.table.get(0)) {
                        (true, Some(entry)) => {
                            Field { name: entry.name.clone(), value: entry.value.clone(), sensitive: false }
                        }
                        _ => Field { name, value, sensitive: false },
                    };
                    list.push(field);
                }
            } else {
                // Literal without indexing (0000) or never indexed (0001) (§6.2.2, §6.2.3).
                let sensitive = first & 0x10 != 0;
                if list.keeps() {
                    let name = self.name(block, &mut pos, 4, &mut arena)?;
                    let value = Literal::read(buf, &mut pos)?.bytes(block, &mut arena)?;
                    list.push(Field { name, value, sensitive });
                } else {
                    self.skip_name(buf, &mut pos, 4)?;
                    Literal::read(buf, &mut pos)?.check(buf)?;
                }
            }
        }
        if at_start {
            self.check_no_update_due()?;
        }
        list.finish()
    }

    fn check_no_update_due(&mut self) -> Result<(), CompressionError> {
        match self.update_required.take() {
            Some(limit) => Err(CompressionError::TableSizeUpdateMissing { limit }),
            None => Ok(()),
        }
    }

    fn check_index(&self, index: usize) -> Result<(), CompressionError> {
        if index == 0 || index >= DYNAMIC_BASE + self.table.len() {
            return Err(CompressionError::InvalidIndex(index));
        }
        Ok(())
    }

    /// The name and value at `index` of the static or dynamic table.
    fn lookup(&self, index: usize) -> Result<(Bytes, Bytes), CompressionError> {
        if index == 0 {
            return Err(CompressionError::InvalidIndex(index));
        }
        if let Some((name, value)) = STATIC_TABLE.get(index - 1) {
            return Ok((Bytes::from_static(name.as_bytes()), Bytes::from_static(value.as_bytes())));
        }
        let entry = self.table.get(index - DYNAMIC_BASE).ok_or(CompressionError::InvalidIndex(index))?;
        Ok((entry.name.clone(), entry.value.clone()))
    }

    /// A literal representation's name: indexed (non-zero prefix) or a literal.
    fn name(
        &self,
        block: &Bytes,
        pos: &mut usize,
        prefix: u8,
        arena: &mut BytesMut,
    ) -> Result<Bytes, CompressionError> {
        let index = integer::decode(block, pos, prefix)?;
        if index == 0 {
            return Literal::read(block, pos)?.bytes(block, arena);
        }
        Ok(self.lookup(index)?.0)
    }

    /// Checks a literal representation's name without keeping it.
    fn skip_name(&self, buf: &[u8], pos: &mut usize, prefix: u8) -> Result<(), CompressionError> {
        let index = integer::decode(buf, pos, prefix)?;
        if index == 0 {
            return Literal::read(buf, pos)?.check(buf);
        }
        self.check_index(index)
    }
}

/// The header list as it is decoded: fields kept until a limit is crossed,
/// then only which limit.
struct ListBuilder {
    fields: Vec<Field>,
    bytes: usize,
    limit: HeaderListLimit,
    over: Option<ListOverLimit>,
}

impl ListBuilder {
    fn new(limit: HeaderListLimit) -> Self {
        Self { fields: Vec::with_capacity(limit.max_count.min(16)), bytes: 0, limit, over: None }
    }

    fn keeps(&self) -> bool {
        self.over.is_none()
    }

    fn push(&mut self, field: Field) {
        if self.fields.len() + 1 > self.limit.max_count {
            self.over = Some(ListOverLimit::Count);
        } else if self.bytes + field.len() > self.limit.max_bytes {
            self.over = Some(ListOverLimit::Bytes);
        }
        if self.over.is_some() {
            self.fields = Vec::new();
            return;
        }
        self.bytes += field.len();
        self.fields.push(field);
    }

    fn finish(self) -> Result<Vec<Field>, DecodeError> {
        match self.over {
            Some(over) => Err(DecodeError::ListOverLimit(over)),
            None => Ok(self.fields),
        }
    }
}
