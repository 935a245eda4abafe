//! A worker's spare I/O buffers.
//!
//! A connection holds a read or write buffer only while it has bytes in flight:
//! between requests it gives the buffer back here, and takes one again when it
//! next reads or writes. A busy worker so cycles the same few buffers instead of
//! allocating per request, and thousands of idle keep-alive connections hold no
//! buffer memory (as in nginx). The list is thread-local: each worker has its own,
//! with no lock.

use bytes::BytesMut;

use super::spare_list::SpareList;

/// The capacity of a new buffer: one socket read, or one gathered write.
pub const BUFFER_SIZE: usize = 16 * 1024;

/// Most spare buffers a worker keeps: enough for every connection of a busy
/// worker that is between requests at once, at most 1 MiB (larger buffers are
/// freed rather than kept).
const MAX_SPARE: usize = 64;

/// The largest buffer kept for reuse; one that grew past it (a large gathered
/// write) is freed.
const MAX_KEPT_CAPACITY: usize = 4 * BUFFER_SIZE;

thread_local! {
    static SPARE: SpareList<BytesMut> = const { SpareList::new(MAX_SPARE) };
}

/// An empty buffer: a spare one of this worker, or a new one.
pub fn take() -> BytesMut {
    SPARE.with(SpareList::take).unwrap_or_else(|| BytesMut::with_capacity(BUFFER_SIZE))
}

/// Keeps an empty buffer for the next connection that needs one, or frees it
/// when the worker has enough spare ones or it grew large.
pub fn give_back(buf: BytesMut) {
    debug_assert!(buf.is_empty());
    if buf.capacity() > MAX_KEPT_CAPACITY {
        return;
    }
    SPARE.with(|s| s.keep(buf));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again() {
        let mut buf = take();
        buf.extend_from_slice(b"abc");
        buf.clear();
        let ptr = buf.as_ptr();
        give_back(buf);
        assert_eq!(take().as_ptr(), ptr);
    }

    /// Told apart by capacity, not address: the allocator may well hand the
    /// freed grown buffer's memory to the new one.
    #[test]
    fn a_grown_buffer_is_not_kept() {
        let mut buf = BytesMut::with_capacity(MAX_KEPT_CAPACITY + 1);
        buf.clear();
        give_back(buf);
        assert_eq!(take().capacity(), BUFFER_SIZE);
    }
}
