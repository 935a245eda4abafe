//! Envoy's API schema (every v3 message, extension and validation rule), built into
//! the binary from the `envoy-types` release pinned in Cargo.lock (see build.rs).

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, MessageDescriptor};

static DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptor_set.bin"));

/// The process-wide descriptor pool, decoded once on first use.
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| match DescriptorPool::decode(DESCRIPTOR_SET) {
        Ok(pool) => pool,
        // The set is produced by the build from a pinned crate; failing here is a
        // broken build, not bad input.
        Err(e) => panic!("embedded Envoy descriptor set is invalid: {e}"),
    })
}

/// The descriptor of a message by full name (`envoy.config.bootstrap.v3.Bootstrap`).
pub fn message(full_name: &str) -> Option<MessageDescriptor> {
    pool().get_message_by_name(full_name)
}

/// Strips `type.googleapis.com/` (or any host) from an `@type` URL.
pub fn type_name(type_url: &str) -> &str {
    type_url.rsplit('/').next().unwrap_or(type_url)
}
