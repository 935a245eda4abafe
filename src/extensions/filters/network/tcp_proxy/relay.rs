//! The byte relay between a downstream and an upstream connection.
//!
//! Both directions run in the connection's one task. Each direction reads into a
//! buffer of at most `per_connection_buffer_limit_bytes` (capped at 64 KiB) and
//! does not read again until the buffer was written, so a slow reader makes
//! Courier stop reading from the fast writer instead of buffering without limit.
//! EOF on one side is passed on as a half-close (FIN) to the other; an error on
//! either side, or the idle timeout, ends both.

use std::cell::Cell;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::TcpProxyStats;
use crate::network::read_filter::ClosedByFilter;
use crate::network::transport::ReadReady;
use crate::network::{DownstreamConnection, Transport};
use crate::stats::Counter;
use crate::upstream::upstream_connection::UpstreamConnection;

const MAX_CHUNK: u32 = 64 * 1024;
const MIN_CHUNK: u32 = 1024;

/// How the relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Both sides closed their write side.
    Done {
        upstream_first: bool,
    },
    DownstreamError,
    UpstreamError,
    IdleTimeout,
}

/// Relays until both directions are closed, one fails, or the connection is idle
/// for `idle_timeout`; the bytes received from downstream and sent to it.
pub async fn relay(
    down: DownstreamConnection,
    mut up: UpstreamConnection,
    idle_timeout: Option<Duration>,
    stats: &TcpProxyStats,
) -> (u64, u64) {
    let (received, sent) = (Cell::new(0u64), Cell::new(0u64));
    let down_chunk = down.buffer_limit.clamp(MIN_CHUNK, MAX_CHUNK) as usize;
    let up_chunk = up.accounting.cluster.per_connection_buffer_limit_bytes.clamp(MIN_CHUNK, MAX_CHUNK) as usize;
    let cluster = up.accounting.cluster.clone();
    let mut down_stream = down.stream;
    let last_activity = Cell::new(Instant::now());
    let end = {
        let (mut dr, mut dw) = down_stream.split();
        let (mut ur, mut uw) = up.stream.split();
        let to_upstream = pump(
            &mut dr,
            &mut uw,
            down_chunk,
            &last_activity,
            &received,
            [&stats.downstream_cx_rx_bytes_total, &cluster.stats.upstream_cx_tx_bytes_total],
        );
        let to_downstream = pump(
            &mut ur,
            &mut dw,
            up_chunk,
            &last_activity,
            &sent,
            [&cluster.stats.upstream_cx_rx_bytes_total, &stats.downstream_cx_tx_bytes_total],
        );
        let idle = idle_watch(idle_timeout, &last_activity);
        tokio::pin!(to_upstream, to_downstream, idle);
        let (mut down_done, mut up_done) = (false, false);
        let mut upstream_first = None;
        loop {
            tokio::select! {
                r = &mut to_upstream, if !down_done => match r {
                    Ok(()) => down_done = true,
                    Err(Side::Read) => break End::DownstreamError,
                    Err(Side::Write) => break End::UpstreamError,
                },
                r = &mut to_downstream, if !up_done => match r {
                    Ok(()) => up_done = true,
                    Err(Side::Read) => break End::UpstreamError,
                    Err(Side::Write) => break End::DownstreamError,
                },
                _ = &mut idle => break End::IdleTimeout,
            }
            // Who closed first decides upstream_cx_destroy_local vs _remote.
            if upstream_first.is_none() && (down_done || up_done) {
                upstream_first = Some(up_done);
            }
            if down_done && up_done {
                break End::Done { upstream_first: upstream_first.unwrap_or(false) };
            }
        }
    };
    match end {
        End::IdleTimeout => {
            stats.idle_timeout.inc();
            up.accounting.mark_closed_locally();
        }
        End::DownstreamError | End::Done { upstream_first: false } => up.accounting.mark_closed_locally(),
        End::UpstreamError | End::Done { upstream_first: true } => {}
    }
    tracing::trace!(?end, "tcp_proxy connection closed");
    (received.get(), sent.get())
}

/// Which side of a pump failed.
#[derive(Debug)]
enum Side {
    Read,
    Write,
}

/// Copies `from` → `to` until EOF, then half-closes `to`. The buffer is allocated
/// only once the source is readable, so idle connections hold no buffers.
async fn pump(
    from: &mut (impl AsyncRead + ReadReady + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    chunk: usize,
    last_activity: &Cell<Instant>,
    total: &Cell<u64>,
    counters: [&Counter; 2],
) -> Result<(), Side> {
    std::future::poll_fn(|cx| from.poll_read_ready(cx)).await.map_err(|_| Side::Read)?;
    let mut buf = vec![0u8; chunk];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                // A read filter that closed the connection refused bytes the
                // connection had read: Envoy counts them as received.
                let refused = ClosedByFilter::unread_of(&e) as u64;
                total.set(total.get() + refused);
                counters[0].add(refused);
                return Err(Side::Read);
            }
        };
        if n == 0 {
            // Half-close: pass the FIN on, keep the other direction open.
            to.shutdown().await.map_err(|_| Side::Write)?;
            return Ok(());
        }
        last_activity.set(Instant::now());
        total.set(total.get() + n as u64);
        for c in counters {
            c.add(n as u64);
        }
        to.write_all(&buf[..n]).await.map_err(|_| Side::Write)?;
    }
}

/// Resolves once nothing was read for `timeout` (never when `None`).
async fn idle_watch(timeout: Option<Duration>, last_activity: &Cell<Instant>) {
    let Some(timeout) = timeout else {
        return std::future::pending().await;
    };
    loop {
        let deadline = last_activity.get() + timeout;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}
