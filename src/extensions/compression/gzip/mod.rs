//! gzip, both ways (Envoy's `extensions/compression/gzip/`): the compressor the
//! compressor filter names and the decompressor the decompressor filter names,
//! each a zlib stream on zlib-rs (a Rust port of zlib) through flate2.

pub mod compressor;
pub mod decompressor;
