//! An upgraded HTTP/1 connection (Envoy's `upgrade_configs`): once the upstream
//! answered an allowed upgrade request (`upgrade: websocket`, say) with 101,
//! the client's connection and the upstream's carry the new protocol's bytes
//! both ways, unread, until both directions ended (a half-close passes
//! through). What either side sent past its head goes first. The connection
//! never serves another HTTP request. The stream ends with the tunnel, as
//! Envoy's: its access log line has the tunnel's bytes and duration, and `DC`
//! when the client ended first.

use std::cell::Cell;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::response_body::StreamCompletion;
use super::stats::HcmStats;
use crate::network::TransportStream;
use crate::upstream::http1_conn_pool::UpgradedUpstream;

/// What the stream needs at the tunnel's end.
pub(super) struct Upgraded {
    pub upstream: UpgradedUpstream,
    pub completion: Box<dyn StreamCompletion>,
    /// The request's received bytes (the tunnel's from the client add to them).
    pub body_bytes: std::rc::Rc<Cell<u64>>,
}

/// Relays `down` (with `down_buf`, read past the request head) and the
/// upstream until both directions ended, counted in
/// `downstream_cx_upgrades_active` (and the stream in `downstream_rq_active`)
/// meanwhile; then ends the stream. True when the client ended it.
pub(super) async fn tunnel(
    mut down: TransportStream,
    down_buf: BytesMut,
    upgraded: Upgraded,
    stats: &HcmStats,
) -> bool {
    let Upgraded { mut upstream, completion, body_bytes } = upgraded;
    stats.downstream_cx_upgrades_active.inc();
    let (io, up_buf) = upstream.parts();
    let mut sent = up_buf.len() as u64;
    let mut received = down_buf.len() as u64;
    let mut client_first = false;
    let early = async {
        if !down_buf.is_empty() {
            io.write_all(&down_buf).await?;
        }
        if !up_buf.is_empty() {
            down.write_all(&up_buf).await?;
        }
        std::io::Result::Ok(())
    };
    if early.await.is_ok() {
        let (mut down_rd, mut down_wr) = tokio::io::split(down);
        let (mut up_rd, mut up_wr) = tokio::io::split(io);
        let first: Cell<Option<bool>> = Cell::new(None);
        let from_client = async {
            let n = relay(&mut down_rd, &mut up_wr).await;
            first.set(first.get().or(Some(true)));
            n
        };
        let to_client = async {
            let n = relay(&mut up_rd, &mut down_wr).await;
            first.set(first.get().or(Some(false)));
            n
        };
        let (from, to) = tokio::join!(from_client, to_client);
        received += from;
        sent += to;
        client_first = first.get().unwrap_or(false);
    }
    stats.downstream_cx_upgrades_active.dec();
    stats.downstream_rq_active.dec();
    body_bytes.set(body_bytes.get() + received);
    completion.finish_tunnel(sent, client_first);
    client_first
}

/// Copies until the reader ends (or fails), then half-closes the writer;
/// the bytes copied.
async fn relay<R, W>(from: &mut R, to: &mut W) -> u64
where
    R: tokio::io::AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let n = tokio::io::copy(from, to).await.unwrap_or(0);
    let _ = to.shutdown().await;
    n
}
