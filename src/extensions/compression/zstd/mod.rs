//! zstd, both ways (Envoy's `extensions/compression/zstd/`): the compressor the
//! compressor filter names (`content-encoding: zstd`) and the decompressor the
//! decompressor filter names, each a zstd stream on the reference C libzstd
//! (the library Envoy links), driven through the same streaming calls Envoy
//! makes. Dictionaries are not supported: `dictionary` and `dictionaries` stay
//! start-up errors.

pub mod compressor;
pub mod decompressor;
