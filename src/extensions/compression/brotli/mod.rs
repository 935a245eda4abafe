//! brotli, both ways (Envoy's `extensions/compression/brotli/`): the compressor
//! the compressor filter names (`content-encoding: br`) and the decompressor the
//! decompressor filter names, each a brotli stream on Dropbox's pure-Rust port
//! of Google's brotli, driven through the same streaming calls Envoy makes on
//! the C library.

pub mod compressor;
pub mod decompressor;
