//! A client connection's keepalive PINGs (`connection_keepalive`), shared by
//! the upstream pools' connections and the xDS stream's: a PING every
//! (jittered) interval, and the wait for its ACK. The connection's driver
//! selects on `timed_out` beside the connection, and closes it when a PING
//! went unanswered past its timeout, as Envoy's codec does.

use std::task::Poll;

use tokio::time::Instant;

use super::Keepalive;
use crate::event::Timer;

pub struct KeepalivePings {
    ping_pong: h2::PingPong,
    keepalive: Keepalive,
    timer: Timer,
    sent: bool,
}

impl KeepalivePings {
    /// The PINGs of a connection whose `ping_pong` `h2` handed over, when
    /// the cluster has `keepalive` (`None` otherwise: no PINGs).
    pub fn new(ping_pong: Option<h2::PingPong>, keepalive: Option<Keepalive>) -> Option<KeepalivePings> {
        let (ping_pong, keepalive) = (ping_pong?, keepalive?);
        let mut timer = Timer::new();
        timer.set(keepalive.next_ping().map(|d| Instant::now() + d));
        Some(KeepalivePings { ping_pong, keepalive, timer, sent: false })
    }

    /// Sends the PINGs as they fall due, and returns once one was not
    /// answered within its timeout. Cancel-safe: its state stays in `self`.
    pub async fn timed_out(&mut self) {
        loop {
            let sent = self.sent;
            let ping_pong = &mut self.ping_pong;
            tokio::select! {
                pong = std::future::poll_fn(|cx| ping_pong.poll_pong(cx).map(|r| r.map(drop))), if sent => {
                    self.sent = false;
                    if pong.is_ok() {
                        self.timer.set(self.keepalive.next_ping().map(|d| Instant::now() + d));
                    }
                }
                () = self.timer.fired() => {
                    if self.sent {
                        return;
                    }
                    if self.ping_pong.send_ping(h2::Ping::opaque()).is_ok() {
                        self.sent = true;
                        self.timer.set(Some(Instant::now() + self.keepalive.timeout));
                    }
                }
            }
        }
    }
}

/// `timed_out` of a connection's PINGs, if it has any (else never ready).
pub async fn pings_timed_out(pings: &mut Option<KeepalivePings>) {
    match pings {
        Some(p) => p.timed_out().await,
        None => std::future::poll_fn(|_| Poll::<()>::Pending).await,
    }
}
