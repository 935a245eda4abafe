//! RFC 9113 §6.9: flow-control windows, one pair per stream and one for the
//! connection. The send side is what the peer lets the codec send (it may go
//! below zero when the peer lowers SETTINGS_INITIAL_WINDOW_SIZE, §6.9.2). The
//! receive side is what the peer may still send; bytes come back to it only when
//! the application has consumed them (`release`), so a reader that stops reading
//! stops the peer after one window instead of letting the codec buffer without
//! bound. WINDOW_UPDATE goes out once half the window has been consumed, as
//! nghttp2 (Envoy's codec) does, not one per DATA frame.

use super::settings::MAX_WINDOW_SIZE;

/// What the codec may still send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendWindow(i32);

/// The window would pass 2^31-1 (FLOW_CONTROL_ERROR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowOverflow;

impl SendWindow {
    pub fn new(size: u32) -> SendWindow {
        SendWindow(size.min(MAX_WINDOW_SIZE) as i32)
    }

    /// Bytes that may be sent now.
    pub fn available(self) -> u32 {
        self.0.max(0) as u32
    }

    /// A WINDOW_UPDATE's increment, or (signed) a change of the initial window size.
    pub fn adjust(&mut self, delta: i64) -> Result<(), WindowOverflow> {
        let next = i64::from(self.0) + delta;
        if next > i64::from(MAX_WINDOW_SIZE) {
            return Err(WindowOverflow);
        }
        // Lowering by at most 2^31-1 from at least -(2^31-1) stays within i32.
        self.0 = next.max(i64::from(i32::MIN)) as i32;
        Ok(())
    }

    /// Bytes sent (at most `available`).
    pub fn consume(&mut self, n: u32) {
        self.0 -= n.min(self.available()) as i32;
    }
}

/// What the peer may still send, and what the application consumed that the
/// peer has not been given back yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvWindow {
    /// The peer may send this much more.
    open: u32,
    /// Consumed and not yet announced with a WINDOW_UPDATE.
    released: u32,
    /// The window announced (SETTINGS_INITIAL_WINDOW_SIZE, or the connection's).
    size: u32,
}

impl RecvWindow {
    pub fn new(size: u32) -> RecvWindow {
        RecvWindow { open: size, released: 0, size }
    }

    /// Flow-controlled bytes arrived; more than the window is FLOW_CONTROL_ERROR.
    pub fn receive(&mut self, n: u32) -> Result<(), WindowOverflow> {
        self.open = self.open.checked_sub(n).ok_or(WindowOverflow)?;
        Ok(())
    }

    /// `n` received bytes were consumed: the WINDOW_UPDATE increment to send, once
    /// half the window is waiting to be given back.
    pub fn release(&mut self, n: u32) -> Option<u32> {
        self.released = self.released.saturating_add(n);
        if self.released >= self.size / 2 && self.released > 0 {
            let increment = self.released;
            self.open = self.open.saturating_add(increment);
            self.released = 0;
            return Some(increment);
        }
        None
    }

    /// The peer may send this much more.
    pub fn open(self) -> u32 {
        self.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_window_overflow_and_negative_windows() {
        let mut w = SendWindow::new(65_535);
        assert_eq!(w.adjust(i64::from(MAX_WINDOW_SIZE - 65_535)), Ok(()));
        assert_eq!(w.adjust(1), Err(WindowOverflow));
        let mut w = SendWindow::new(100);
        w.consume(60);
        w.adjust(-100).unwrap();
        assert_eq!((w, w.available()), (SendWindow(-60), 0));
        w.adjust(70).unwrap();
        assert_eq!(w.available(), 10);
    }

    #[test]
    fn receive_window_is_given_back_when_half_of_it_is_consumed() {
        let mut w = RecvWindow::new(100);
        w.receive(80).unwrap();
        assert_eq!(w.receive(21), Err(WindowOverflow));
        assert_eq!(w.release(30), None);
        assert_eq!(w.release(20), Some(50));
        assert_eq!(w.open(), 70);
    }
}
