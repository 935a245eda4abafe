//! Random bytes for TLS handshakes, taken from a per-thread batch of the
//! kernel's random bytes rather than one `getrandom` call each.
//!
//! A full TLS 1.3 handshake asks its provider for random bytes seven times:
//! the server random, and for each of the two session tickets a nonce, an
//! `age_add` and the nonce that seals it (`tickets`). ring's `SystemRandom`
//! makes a system call for each, seven of the nine a handshake made (the key
//! share and the ECDSA nonce stay ring's own: its sealed RNG trait takes no
//! other source). BoringSSL, under Envoy, draws them from a user-space
//! generator seeded by the kernel; here one `getrandom` fills a batch per
//! worker thread, and every byte is handed out once and wiped as it is taken,
//! so no byte given out stays in memory after. Courier does not fork, so no
//! two processes share a batch.

use std::cell::RefCell;

use ring::rand::{SecureRandom, SystemRandom};

/// Bytes fetched from the kernel at a time: a few handshakes' worth.
const BATCH: usize = 512;
/// Asks larger than this go to the kernel directly.
const LARGEST: usize = 64;

struct Batch {
    bytes: [u8; BATCH],
    /// The first byte not yet handed out.
    next: usize,
}

thread_local! {
    static THIS_THREAD: RefCell<Batch> = const { RefCell::new(Batch { bytes: [0; BATCH], next: BATCH }) };
}

/// Fills `out` with random bytes from this thread's batch (refilled from the
/// kernel when it runs short).
pub(super) fn fill(out: &mut [u8]) -> Result<(), ring::error::Unspecified> {
    if out.len() > LARGEST {
        return SystemRandom::new().fill(out);
    }
    THIS_THREAD.with(|batch| {
        let mut b = batch.borrow_mut();
        if BATCH - b.next < out.len() {
            SystemRandom::new().fill(&mut b.bytes)?;
            b.next = 0;
        }
        let (from, to) = (b.next, b.next + out.len());
        out.copy_from_slice(&b.bytes[from..to]);
        b.bytes[from..to].fill(0);
        b.next = to;
        Ok(())
    })
}

/// The provider's source of random bytes (`CryptoProvider::secure_random`).
#[derive(Debug)]
pub(super) struct BatchedRandom;

impl rustls::crypto::SecureRandom for BatchedRandom {
    fn fill(&self, out: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        fill(out).map_err(|_| rustls::crypto::GetRandomFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ask_gets_fresh_bytes_across_refills() {
        let mut seen = std::collections::HashSet::new();
        // Enough 32-byte asks to go through several batches, and one larger than a batch takes.
        for _ in 0..4 * BATCH / 32 {
            let mut out = [0u8; 32];
            fill(&mut out).expect("random");
            assert!(seen.insert(out), "a repeated 32-byte value");
        }
        let mut large = [0u8; 2 * LARGEST];
        fill(&mut large).expect("random");
        assert!(large.iter().any(|&b| b != 0));
        // What was handed out is wiped from the batch.
        THIS_THREAD.with(|b| {
            let b = b.borrow();
            assert!(b.bytes[..b.next].iter().all(|&x| x == 0));
        });
    }
}
