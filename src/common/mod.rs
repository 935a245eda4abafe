//! Small utilities shared across the proxy.

pub mod buffer_pool;
pub mod dynamic_metadata;
pub mod fnv;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
pub mod hex;
pub mod json;
pub mod md5;
pub mod percent;
pub mod random;
pub mod spare_list;
pub mod xxhash;
