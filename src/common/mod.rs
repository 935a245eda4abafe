//! Small utilities shared across the proxy.

pub mod random;
