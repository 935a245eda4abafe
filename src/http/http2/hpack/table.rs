//! HPACK's header tables (RFC 7541 §2.3): the static table of Appendix A and a
//! dynamic table, one per direction of a connection.
//!
//! The dynamic table is a FIFO bounded by size, an entry costing its name,
//! its value and 32 octets (§4.1); an insertion evicts the oldest entries
//! until the new one fits, and an entry larger than the whole table empties it
//! and is not kept (§4.4). Entries are `Bytes` of their own (copied in once):
//! a field taken from the table shares them, and no entry keeps a whole header
//! block alive. Static entries are `&'static` and cost nothing to hand out.

use std::collections::VecDeque;

use bytes::Bytes;

/// RFC 7541 Appendix A; index i is `STATIC_TABLE[i - 1]`. A `static`, so each
/// name and value has one address (a decoded field points at it).
pub static STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// The first dynamic-table index.
pub const DYNAMIC_BASE: usize = 62;

/// What an entry costs in the table besides its name and value (§4.1).
pub const ENTRY_OVERHEAD: usize = 32;

/// An entry's size as the table counts it.
pub fn entry_size(name: &[u8], value: &[u8]) -> usize {
    name.len() + value.len() + ENTRY_OVERHEAD
}

/// Where a field is in the static table: the index of the entry with both its
/// name and value, else the first entry with its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaticMatch {
    Field(usize),
    Name(usize),
}

/// Looks a field up in the static table.
pub fn static_lookup(name: &[u8], value: &[u8]) -> Option<StaticMatch> {
    // Entries of one name are adjacent; find the first by name, then its run.
    let first = STATIC_TABLE.iter().position(|(n, _)| n.as_bytes() == name)?;
    let run = STATIC_TABLE[first..].iter().take_while(|(n, _)| n.as_bytes() == name);
    for (offset, (_, v)) in run.enumerate() {
        if v.as_bytes() == value {
            return Some(StaticMatch::Field(first + offset + 1));
        }
    }
    Some(StaticMatch::Name(first + 1))
}

/// One entry of a dynamic table.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: Bytes,
    pub value: Bytes,
}

impl Entry {
    fn size(&self) -> usize {
        entry_size(&self.name, &self.value)
    }
}

/// A dynamic table: newest entry first (index 62).
#[derive(Debug)]
pub struct DynamicTable {
    entries: VecDeque<Entry>,
    size: usize,
    max_size: usize,
}

impl DynamicTable {
    pub fn new(max_size: usize) -> Self {
        Self { entries: VecDeque::new(), size: 0, max_size }
    }

    /// The table's size now (sum of its entries' sizes).
    pub fn size(&self) -> usize {
        self.size
    }

    /// The table's maximum size now.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry at dynamic index `i` (0 is the newest).
    pub fn get(&self, i: usize) -> Option<&Entry> {
        self.entries.get(i)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// A new maximum size (a size update): evicts until the table fits.
    pub fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    /// Inserts an entry, evicting the oldest ones until it fits; one larger
    /// than the whole table empties it. Returns whether it was kept.
    pub fn insert(&mut self, name: &[u8], value: &[u8]) -> bool {
        let size = entry_size(name, value);
        if size > self.max_size {
            self.entries.clear();
            self.size = 0;
            return false;
        }
        self.evict_to(self.max_size - size);
        self.entries.push_front(Entry { name: Bytes::copy_from_slice(name), value: Bytes::copy_from_slice(value) });
        self.size += size;
        true
    }

    fn evict_to(&mut self, target: usize) {
        while self.size > target {
            let Some(old) = self.entries.pop_back() else { break };
            self.size -= old.size();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_lookup_finds_fields_then_names() {
        assert_eq!(static_lookup(b":method", b"POST"), Some(StaticMatch::Field(3)));
        assert_eq!(static_lookup(b":method", b"PUT"), Some(StaticMatch::Name(2)));
        assert_eq!(static_lookup(b":status", b"500"), Some(StaticMatch::Field(14)));
        assert_eq!(static_lookup(b"www-authenticate", b"x"), Some(StaticMatch::Name(61)));
        assert_eq!(static_lookup(b"x-custom", b""), None);
    }

    #[test]
    fn eviction_counts_32_octets_per_entry() {
        let mut t = DynamicTable::new(100);
        assert!(t.insert(b"aaaa", b"bbbb")); // 40
        assert!(t.insert(b"cccc", b"dddd")); // 80
        assert!(t.insert(b"eeee", b"ffff")); // the oldest goes
        assert_eq!((t.len(), t.size()), (2, 80));
        assert_eq!(&t.get(0).map(|e| e.name.clone()).unwrap_or_default()[..], b"eeee");
        assert_eq!(&t.get(1).map(|e| e.name.clone()).unwrap_or_default()[..], b"cccc");
        t.set_max_size(40);
        assert_eq!((t.len(), t.size()), (1, 40));
        assert!(!t.insert(&[b'x'; 10], &[b'y'; 10]));
        assert!(t.is_empty());
    }
}
