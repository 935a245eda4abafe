//! A fast per-thread pseudo-random generator (xorshift64*), for load balancing,
//! weighted clusters and fault percentages. Not for anything security-related.

use std::cell::Cell;

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let t =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let local = 0u8;
    // Mix the time with a per-thread address so threads started together differ.
    (t ^ (&local as *const u8 as u64).rotate_left(32)) | 1
}

/// The next pseudo-random 64-bit value on this thread.
pub fn next_u64() -> u64 {
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// A value in `0..n` (0 when `n` is 0).
pub fn below(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        next_u64() % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_over_the_range() {
        let mut seen = [0u32; 4];
        for _ in 0..4000 {
            seen[below(4) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
        assert_eq!(below(0), 0);
    }
}
