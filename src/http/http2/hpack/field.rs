//! A decoded header field as the rest of Courier takes it: name and value as
//! `Bytes` that mostly share memory already there, so decoding a typical
//! request allocates nothing per field.
//!
//! Where the bytes live: a static-table name or value is `&'static`; a field
//! from the dynamic table shares that entry's `Bytes`; a raw (not Huffman)
//! literal is a slice of the header block; a Huffman literal is decoded into
//! one buffer per block and sliced from it. `http::HeaderValue::from_maybe_shared`
//! takes a value without copying it.

use bytes::Bytes;

/// One header field of a decoded header list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: Bytes,
    pub value: Bytes,
    /// Sent as "never indexed" (RFC 7541 §6.2.3): an intermediary re-encoding
    /// it must keep it out of its tables too.
    pub sensitive: bool,
}

impl Field {
    pub fn new(name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Self { name: name.into(), value: value.into(), sensitive: false }
    }

    /// A pseudo-header (`:method`, `:status`, ...).
    pub fn is_pseudo(&self) -> bool {
        self.name.first() == Some(&b':')
    }

    /// Its bytes as `max_request_headers_kb` counts them: name and value.
    pub fn len(&self) -> usize {
        self.name.len() + self.value.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
