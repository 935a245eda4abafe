//! An upgraded HTTP/1 connection (Envoy's `upgrade_configs`): once the upstream
//! answered an allowed upgrade request (`upgrade: websocket`, say) with 101,
//! the client's connection and the upstream's carry the new protocol's bytes
//! both ways, unread, until both directions ended (a half-close passes
//! through) or nothing moved for `stream_idle_timeout`. What either side sent
//! past its head goes first. The connection never serves another HTTP request.
//! The stream ends with the tunnel, as Envoy's: its access log line has the
//! tunnel's bytes and duration, `DC` when the client ended it, `SI` when it
//! idled out (checked against Envoy 1.40).

use std::cell::Cell;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::response_body::{StreamCompletion, TunnelEnd};
use super::stats::HcmStats;
use crate::network::TransportStream;
use crate::upstream::http1_conn_pool::UpgradedUpstream;

/// Each direction's copy buffer.
const RELAY_BUFFER: usize = 8 * 1024;

/// What the stream needs at the tunnel's end.
pub(super) struct Upgraded {
    pub upstream: UpgradedUpstream,
    pub completion: Box<dyn StreamCompletion>,
    /// The request's received bytes (the tunnel's from the client add to them).
    pub body_bytes: std::rc::Rc<Cell<u64>>,
}

/// What the two directions moved, and when last.
struct Traffic {
    received: Cell<u64>,
    sent: Cell<u64>,
    last: Cell<Instant>,
}

/// Relays `down` (with `down_buf`, read past the request head) and the
/// upstream until both directions ended or `idle` passed without traffic,
/// counted in `downstream_cx_upgrades_active` (and the stream in
/// `downstream_rq_active`) meanwhile; then ends the stream. Says how it ended.
pub(super) async fn tunnel(
    mut down: TransportStream,
    down_buf: BytesMut,
    upgraded: Upgraded,
    idle: Option<Duration>,
    stats: &HcmStats,
) -> TunnelEnd {
    let Upgraded { mut upstream, completion, body_bytes } = upgraded;
    stats.downstream_cx_upgrades_active.inc();
    let (io, up_buf) = upstream.parts();
    let traffic = Traffic {
        received: Cell::new(down_buf.len() as u64),
        sent: Cell::new(up_buf.len() as u64),
        last: Cell::new(Instant::now()),
    };
    let early = async {
        if !down_buf.is_empty() {
            io.write_all(&down_buf).await?;
        }
        if !up_buf.is_empty() {
            down.write_all(&up_buf).await?;
        }
        std::io::Result::Ok(())
    };
    let end = match early.await {
        Err(_) => TunnelEnd::Upstream,
        Ok(()) => {
            let (mut down_rd, mut down_wr) = tokio::io::split(down);
            let (mut up_rd, mut up_wr) = tokio::io::split(io);
            let first: Cell<Option<TunnelEnd>> = Cell::new(None);
            let from_client = async {
                relay(&mut down_rd, &mut up_wr, &traffic.received, &traffic.last).await;
                first.set(first.get().or(Some(TunnelEnd::Client)));
            };
            let to_client = async {
                relay(&mut up_rd, &mut down_wr, &traffic.sent, &traffic.last).await;
                first.set(first.get().or(Some(TunnelEnd::Upstream)));
            };
            tokio::select! {
                _ = async { tokio::join!(from_client, to_client) } => first.get().unwrap_or(TunnelEnd::Upstream),
                () = idled(idle, &traffic.last) => TunnelEnd::Idle,
            }
        }
    };
    stats.downstream_cx_upgrades_active.dec();
    stats.downstream_rq_active.dec();
    stats.downstream_cx_rx_bytes_total.add(traffic.received.get());
    stats.downstream_cx_tx_bytes_total.add(traffic.sent.get());
    body_bytes.set(body_bytes.get() + traffic.received.get());
    completion.finish_tunnel(traffic.sent.get(), end);
    end
}

/// Copies until the reader ends (or fails), then half-closes the writer.
async fn relay<R, W>(from: &mut R, to: &mut W, moved: &Cell<u64>, last: &Cell<Instant>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; RELAY_BUFFER];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        last.set(Instant::now());
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        moved.set(moved.get() + n as u64);
    }
    let _ = to.shutdown().await;
}

/// Completes once `idle` passed since the last traffic; never without it.
pub(super) async fn idled(idle: Option<Duration>, last: &Cell<Instant>) {
    let Some(idle) = idle else { return std::future::pending().await };
    loop {
        let due = last.get() + idle;
        if Instant::now() >= due {
            return;
        }
        tokio::time::sleep_until(due).await;
    }
}
