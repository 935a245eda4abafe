//! HPACK's header tables (RFC 7541 §2.3): the static table of Appendix A and a
//! dynamic table, one per direction of a connection.
//!
//! The dynamic table is a FIFO bounded by size, an entry costing its name,
//! its value and 32 octets (§4.1); an insertion evicts the oldest entries
//! until the new one fits, and an entry larger than the whole table empties it
//! and is not kept (§4.4). Entries are `Bytes` of their own (copied in once):
//! a field taken from the table shares them, and no entry keeps a whole header
//! block alive. Static entries are `&'static` and cost nothing to hand out.
//!
//! The encoder looks each field of every response up by name, in both tables:
//! by a hash of the name (`name_hash`), compared before its bytes. The static
//! table's names are indexed by it at compile time; the dynamic table keeps
//! its entries' hashes side by side, so a lookup scans a few bytes per entry.

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

/// A name's hash (FNV-1a), compared before its bytes when names are looked up.
pub const fn name_hash(name: &[u8]) -> u32 {
    let mut h = 0x811c_9dc5_u32;
    let mut i = 0;
    while i < name.len() {
        h = (h ^ name[i] as u32).wrapping_mul(0x0100_0193);
        i += 1;
    }
    h
}

/// `name_hash` of each static entry's name.
static STATIC_NAME_HASHES: [u32; 61] = {
    let mut out = [0; 61];
    let mut i = 0;
    while i < out.len() {
        out[i] = name_hash(STATIC_TABLE[i].0.as_bytes());
        i += 1;
    }
    out
};

/// Slots of `STATIC_NAMES` (a power of two, over twice its names).
const STATIC_SLOTS: usize = 128;

/// The static table's names by hash, open-addressed (linear probing from
/// `hash % STATIC_SLOTS`): the index of the first entry of each name, plus
/// one (0: an empty slot).
static STATIC_NAMES: [u8; STATIC_SLOTS] = {
    let mut slots = [0u8; STATIC_SLOTS];
    let mut i = 0;
    while i < STATIC_NAME_HASHES.len() {
        let first_of_name = i == 0 || !same(STATIC_TABLE[i].0.as_bytes(), STATIC_TABLE[i - 1].0.as_bytes());
        if first_of_name {
            let mut slot = STATIC_NAME_HASHES[i] as usize % STATIC_SLOTS;
            while slots[slot] != 0 {
                slot = (slot + 1) % STATIC_SLOTS;
            }
            slots[slot] = i as u8 + 1;
        }
        i += 1;
    }
    slots
};

const fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Looks a field up in the static table; `hash` is `name_hash(name)`.
pub fn static_lookup(name: &[u8], hash: u32, value: &[u8]) -> Option<StaticMatch> {
    // Entries of one name are adjacent; find the first by name, then its run.
    let mut slot = hash as usize % STATIC_SLOTS;
    let first = loop {
        let i = usize::from(STATIC_NAMES[slot]).checked_sub(1)?;
        if STATIC_NAME_HASHES[i] == hash && STATIC_TABLE[i].0.as_bytes() == name {
            break i;
        }
        slot = (slot + 1) % STATIC_SLOTS;
    };
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
    /// Each entry's `name_hash`, in the same order: what a lookup scans. Only
    /// a table looked up by name (the encoder's) keeps them.
    hashes: Option<VecDeque<u32>>,
    size: usize,
    max_size: usize,
}

impl DynamicTable {
    /// A table only indexed by position (the decoder's).
    pub fn new(max_size: usize) -> Self {
        Self { entries: VecDeque::new(), hashes: None, size: 0, max_size }
    }

    /// A table also looked up by name (`named`, the encoder's).
    pub fn indexed_by_name(max_size: usize) -> Self {
        Self { hashes: Some(VecDeque::new()), ..Self::new(max_size) }
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

    /// The dynamic indexes (0 is the newest) of the entries named `name`,
    /// newest first; `hash` is `name_hash(name)`. None in a table made by
    /// `new`, which keeps no hashes.
    pub fn named<'a>(&'a self, name: &'a [u8], hash: u32) -> impl Iterator<Item = (usize, &'a Entry)> + 'a {
        debug_assert!(self.hashes.is_some(), "a table made by `new` is not looked up by name");
        self.hashes
            .iter()
            .flatten()
            .enumerate()
            .filter(move |&(_, &h)| h == hash)
            .map(|(i, _)| (i, &self.entries[i]))
            .filter(move |(_, e)| e.name == name)
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
            if let Some(hashes) = &mut self.hashes {
                hashes.clear();
            }
            self.size = 0;
            return false;
        }
        self.evict_to(self.max_size - size);
        self.entries.push_front(Entry { name: Bytes::copy_from_slice(name), value: Bytes::copy_from_slice(value) });
        if let Some(hashes) = &mut self.hashes {
            hashes.push_front(name_hash(name));
        }
        self.size += size;
        true
    }

    fn evict_to(&mut self, target: usize) {
        while self.size > target {
            let Some(old) = self.entries.pop_back() else { break };
            if let Some(hashes) = &mut self.hashes {
                hashes.pop_back();
            }
            self.size -= old.size();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_lookup_finds_fields_then_names() {
        assert_eq!(static_lookup(b":method", name_hash(b":method"), b"POST"), Some(StaticMatch::Field(3)));
        assert_eq!(static_lookup(b":method", name_hash(b":method"), b"PUT"), Some(StaticMatch::Name(2)));
        assert_eq!(static_lookup(b":status", name_hash(b":status"), b"500"), Some(StaticMatch::Field(14)));
        assert_eq!(
            static_lookup(b"www-authenticate", name_hash(b"www-authenticate"), b"x"),
            Some(StaticMatch::Name(61))
        );
        assert_eq!(static_lookup(b"x-custom", name_hash(b"x-custom"), b""), None);
    }

    #[test]
    fn every_static_entry_is_found_through_the_name_index() {
        for (i, (name, value)) in STATIC_TABLE.iter().enumerate() {
            let (name, value) = (name.as_bytes(), value.as_bytes());
            let first = STATIC_TABLE.iter().position(|(n, v)| n.as_bytes() == name && v.as_bytes() == value);
            assert_eq!(first, Some(i), "entries are unique");
            assert_eq!(static_lookup(name, name_hash(name), value), Some(StaticMatch::Field(i + 1)));
        }
    }

    #[test]
    fn dynamic_entries_are_found_by_name_newest_first() {
        let mut t = DynamicTable::indexed_by_name(4096);
        t.insert(b"date", b"1");
        t.insert(b"server", b"envoy");
        t.insert(b"date", b"2");
        let found: Vec<(usize, &[u8])> = t.named(b"date", name_hash(b"date")).map(|(i, e)| (i, &e.value[..])).collect();
        assert_eq!(found, [(0, &b"2"[..]), (2, &b"1"[..])]);
        assert_eq!(t.named(b"etag", name_hash(b"etag")).count(), 0);
        // Evicting and inserting wraps the ring around: the same answers as a scan.
        let mut t = DynamicTable::indexed_by_name(200);
        for n in 0..50u8 {
            let name: &[u8] = [&b"a"[..], b"bb", b"date"][usize::from(n % 3)];
            t.insert(name, &[b'0' + n % 10]);
            for probe in [&b"a"[..], b"bb", b"date"] {
                let scanned: Vec<usize> =
                    t.iter().enumerate().filter(|(_, e)| e.name == probe).map(|(i, _)| i).collect();
                let named: Vec<usize> = t.named(probe, name_hash(probe)).map(|(i, _)| i).collect();
                assert_eq!(named, scanned);
            }
        }
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
