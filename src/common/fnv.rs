//! FNV-1a hashing for maps keyed by what Courier itself chose (config names,
//! host addresses, status codes), never by what a client sends: several times
//! cheaper than std's SipHash on short keys, without its flooding resistance,
//! which such keys do not need.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// `BuildHasher` for FNV-1a.
pub type FnvBuildHasher = BuildHasherDefault<Fnv>;

/// A `HashMap` hashed with FNV-1a.
pub type FnvHashMap<K, V> = HashMap<K, V, FnvBuildHasher>;

/// The 64-bit FNV-1a hasher.
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn known_vectors() {
        let hash = |s: &[u8]| {
            let mut h = Fnv::default();
            h.write(s);
            h.finish()
        };
        assert_eq!(hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(FnvBuildHasher::default().hash_one(7u16), FnvBuildHasher::default().hash_one(7u16));
    }
}
