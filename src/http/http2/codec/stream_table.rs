//! The client's streams as the server sees them (RFC 9113 §5.1), kept small: an
//! open stream is one 24-byte entry in a vector sorted by id (clients open
//! streams in increasing order, so a new one is appended; lookups are a binary
//! search), and a closed stream leaves no entry, only, for the last few, a
//! 4-byte note of how it closed — which decides whether a late frame on it is
//! ignored (the server reset it, §5.1: the peer may not have seen that yet) or
//! is a STREAM_CLOSED error. An idle connection's table holds no memory.

use std::collections::VecDeque;

use super::flow_window::{RecvWindow, SendWindow};

/// How many closed streams are remembered.
const RECENTLY_CLOSED: usize = 32;
/// In a remembered id: the server reset the stream.
const RESET_BY_US: u32 = 1 << 31;

/// One stream that has not closed: open, or half-closed either way.
#[derive(Debug, Clone)]
pub struct Stream {
    pub id: u32,
    pub send: SendWindow,
    pub recv: RecvWindow,
    /// The client's END_STREAM came (half-closed (remote)).
    pub recv_closed: bool,
    /// The server's END_STREAM went (half-closed (local)).
    pub send_closed: bool,
    /// A send found no window; `SendWindowOpened` is due when it opens.
    pub send_blocked: bool,
}

/// How a stream id not in the table stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Closed by the server's RST_STREAM: late frames are ignored.
    ResetByUs,
    /// Closed by the client's RST_STREAM or by both END_STREAMs.
    Other,
    /// Too long ago to know, or never opened (an id skipped over).
    Unknown,
}

#[derive(Debug, Default)]
pub struct StreamTable {
    streams: Vec<Stream>,
    closed: VecDeque<u32>,
}

impl StreamTable {
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut Stream> {
        let at = self.streams.binary_search_by_key(&id, |s| s.id).ok()?;
        Some(&mut self.streams[at])
    }

    pub fn get(&self, id: u32) -> Option<&Stream> {
        let at = self.streams.binary_search_by_key(&id, |s| s.id).ok()?;
        Some(&self.streams[at])
    }

    /// A new stream, its id above every other's.
    pub fn open(&mut self, id: u32, send_window: u32, recv_window: u32) {
        let stream = Stream {
            id,
            send: SendWindow::new(send_window),
            recv: RecvWindow::new(recv_window),
            recv_closed: false,
            send_closed: false,
            send_blocked: false,
        };
        match self.streams.binary_search_by_key(&id, |s| s.id) {
            Ok(_) => {}
            Err(at) => self.streams.insert(at, stream),
        }
    }

    /// Removes the stream, remembering how it closed (`None`: it was not there).
    pub fn close(&mut self, id: u32, reset_by_us: bool) -> Option<Stream> {
        let at = self.streams.binary_search_by_key(&id, |s| s.id).ok()?;
        let removed = self.streams.remove(at);
        self.remember(id, reset_by_us);
        if self.streams.is_empty() && self.streams.capacity() > 8 {
            self.streams = Vec::new();
        }
        Some(removed)
    }

    /// Notes a stream id closed without ever being in the table (refused).
    pub fn remember(&mut self, id: u32, reset_by_us: bool) {
        if self.closed.len() == RECENTLY_CLOSED {
            self.closed.pop_front();
        }
        self.closed.push_back(id | if reset_by_us { RESET_BY_US } else { 0 });
    }

    pub fn closed(&self, id: u32) -> Closed {
        match self.closed.iter().rev().find(|c| *c & !RESET_BY_US == id) {
            Some(c) if c & RESET_BY_US != 0 => Closed::ResetByUs,
            Some(_) => Closed::Other,
            None => Closed::Unknown,
        }
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Stream> {
        self.streams.iter_mut()
    }

    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.streams.iter().map(|s| s.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_whose_streams_all_closed_holds_no_stream_memory() {
        let mut t = StreamTable::default();
        for id in (1..200).step_by(2) {
            t.open(id, 65_535, 65_535);
        }
        assert_eq!(t.get(99).map(|s| s.id), Some(99));
        for id in (1..200).step_by(2) {
            t.close(id, id % 3 == 0);
        }
        assert_eq!((t.len(), t.streams.capacity()), (0, 0));
        assert_eq!(t.closed.len(), RECENTLY_CLOSED);
        assert_eq!(t.closed(195), Closed::ResetByUs);
        assert_eq!(t.closed(197), Closed::Other);
        assert_eq!(t.closed(1), Closed::Unknown, "forgotten");
    }
}
