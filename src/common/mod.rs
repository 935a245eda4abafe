//! Small utilities shared across the proxy.

pub mod buffer_pool;
pub mod fnv;
pub mod random;
pub mod spare_list;
