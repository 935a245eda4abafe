//! Envoy's API schema as Courier needs it: the bootstrap and the registered
//! extensions, with their validation rules, built into the binary from the
//! `envoy-types` release pinned in Cargo.lock (see build.rs), plus the bare names
//! of every other Envoy message.
//!
//! The decoded schema is a few megabytes and only configuration reads it, so it is
//! held in a cache that [`release`] empties once start-up has built the config;
//! a later reader (`/config_dump`) decodes it again. A management server's
//! updates leave it decoded once they have read it: they come at any time, and
//! decoding it again (~50 ms) was the fixed cost of each EDS update.

use std::sync::{Mutex, PoisonError};

use prost_reflect::{DescriptorPool, MessageDescriptor};

static DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptor_set.bin"));
/// Every message name of Envoy's schema, one per line.
static ENVOY_MESSAGE_NAMES: &str = include_str!(concat!(env!("OUT_DIR"), "/envoy_message_names.txt"));

/// The decoded schema, while configuration is being read.
static POOL: Mutex<Option<DescriptorPool>> = Mutex::new(None);

/// The process-wide descriptor pool, decoded on first use and cached until
/// [`release`]. (A `DescriptorPool` is a shared handle: cloning it is cheap.)
pub fn pool() -> DescriptorPool {
    let mut cached = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    cached
        .get_or_insert_with(|| match DescriptorPool::decode(DESCRIPTOR_SET) {
            Ok(pool) => pool,
            // The set is produced by the build from a pinned crate; failing here is a
            // broken build, not bad input.
            Err(e) => panic!("embedded Envoy descriptor set is invalid: {e}"),
        })
        .clone()
}

/// Drops the cached pool. Its memory is freed once the last descriptor or
/// `DynamicMessage` that refers to it is gone; `pool()` decodes a new one.
pub fn release() {
    POOL.lock().unwrap_or_else(PoisonError::into_inner).take();
}

/// The descriptor of a message by full name (`envoy.config.bootstrap.v3.Bootstrap`).
pub fn message(full_name: &str) -> Option<MessageDescriptor> {
    pool().get_message_by_name(full_name)
}

/// True when `full_name` is a message of Envoy's schema, whether or not Courier
/// carries its descriptor (a known extension Courier does not implement).
pub fn is_envoy_message(full_name: &str) -> bool {
    // Only asked on an error path: a scan is fine.
    ENVOY_MESSAGE_NAMES.lines().any(|n| n == full_name)
}

/// Strips `type.googleapis.com/` (or any host) from an `@type` URL.
pub fn type_name(type_url: &str) -> &str {
    type_url.rsplit('/').next().unwrap_or(type_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_released_pool_is_decoded_again() {
        let before = message("envoy.config.bootstrap.v3.Bootstrap").expect("bootstrap");
        release();
        let after = message("envoy.config.bootstrap.v3.Bootstrap").expect("bootstrap after release");
        assert_eq!(before.full_name(), after.full_name());
    }

    #[test]
    fn names_of_unembedded_envoy_messages_are_known() {
        let echo = "envoy.extensions.filters.network.echo.v3.Echo";
        assert!(message(echo).is_none(), "the echo filter's schema should not be embedded");
        assert!(is_envoy_message(echo));
        assert!(is_envoy_message("envoy.config.bootstrap.v3.Bootstrap"));
        assert!(!is_envoy_message("foo.Bar"));
    }
}
