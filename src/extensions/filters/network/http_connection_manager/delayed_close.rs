//! Envoy's delayed close (`FlushWriteAndDelay`, the connection manager's
//! `delayed_close_timeout`, 1 s by default). When the connection manager ends a
//! connection after a local reply, a protocol error or a drain, its last bytes
//! are written and the connection then waits for the client to close first, for
//! `delayed_close_timeout` at most, before closing itself
//! (`downstream_cx_delayed_close_timeout` counts the waits that ran out). A
//! client still sending (the rest of a refused body, frames after a GOAWAY)
//! thus reads the reply before the close; what it sends meanwhile is read and
//! dropped. A client that closes (its FIN) during the wait closed the
//! connection, as Envoy counts it; one that resets it does not end the wait:
//! Envoy closes it when the timeout passes, counting a delayed-close timeout and
//! a local close. Checked against Envoy 1.40 by running it: which closes wait
//! is the codec loops' choice (`http1_connection`, `http2_connection`).

use std::task::{ready, Context, Poll};
use std::time::Duration;

use super::stats::HcmStats;

/// Waits, reading and dropping through `discard` (`Ok(0)` at the client's
/// end of stream), until the client closes or `timeout` passes; true when the
/// client closed first. A read error (the client's reset) stops the reading,
/// not the wait.
pub(super) async fn wait_for_client_close<F>(mut discard: F, timeout: Duration, stats: &HcmStats) -> bool
where
    F: FnMut(&mut Context<'_>) -> Poll<std::io::Result<usize>>,
{
    let mut reset = false;
    let client_closed = std::future::poll_fn(|cx| loop {
        if reset {
            return Poll::Pending;
        }
        match ready!(discard(cx)) {
            Ok(n) if n > 0 => continue,
            Ok(_) => return Poll::Ready(()),
            Err(_) => reset = true,
        }
    });
    match tokio::time::timeout(timeout, client_closed).await {
        Ok(()) => true,
        Err(_) => {
            stats.downstream_cx_delayed_close_timeout.inc();
            false
        }
    }
}
