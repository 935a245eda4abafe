//! The compressor filters of one connection manager's chain, as each registers
//! itself (Envoy's `CompressorRegistry` in a stream's filter state): with gzip
//! and brotli filters side by side, one choice is made per response among the
//! codings of all of them, and every filter reads that one choice (the others
//! count `header_compressor_overshadowed`).
//!
//! Envoy registers every compressor filter of the chain on every stream, in
//! the order of `http_filters`, whatever the route says; so the registry here
//! is the chain's, filled as its filters are built and read by each response.

use std::sync::RwLock;

/// One registered filter: the coding it produces and the media types it compresses.
#[derive(Debug, Clone)]
struct Entry {
    coding: &'static str,
    /// Lower-case media types.
    content_types: Vec<String>,
}

/// The compressor filters of one chain, in `http_filters` order.
#[derive(Debug, Default)]
pub struct CompressorChain {
    entries: RwLock<Vec<Entry>>,
}

impl CompressorChain {
    /// Adds a filter of the chain (while the chain is built).
    pub fn register(&self, coding: &'static str, content_types: &[String]) {
        if let Ok(mut entries) = self.entries.write() {
            entries.push(Entry { coding, content_types: content_types.to_vec() });
        }
    }

    /// The codings offered for a response of media type `media` (lower case;
    /// None: no `content-type`): each filter's, where its media types include
    /// it, the first filter of each coding only, in registration order.
    pub fn offered(&self, media: Option<&str>) -> Vec<&'static str> {
        let Ok(entries) = self.entries.read() else { return Vec::new() };
        let mut out: Vec<&'static str> = Vec::new();
        for e in entries.iter() {
            if media.is_some_and(|m| !e.content_types.iter().any(|t| t == m)) {
                continue;
            }
            if !out.contains(&e.coding) {
                out.push(e.coding);
            }
        }
        out
    }
}
