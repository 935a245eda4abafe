//! An upgraded HTTP/1 connection (Envoy's `upgrade_configs`): once the upstream
//! answered an allowed upgrade request (`upgrade: websocket`, say) with 101,
//! the client's connection and the upstream's carry the new protocol's bytes
//! both ways, unread, until either side closes; then the other is closed too
//! (a half-close passes through first). What either side sent past its head
//! goes first. The connection never serves another HTTP request.

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::stats::HcmStats;
use crate::network::TransportStream;
use crate::upstream::http1_conn_pool::UpgradedUpstream;

/// Relays `down` (with `down_buf`, read past the request head) and `up` until
/// both directions ended, counted in `downstream_cx_upgrades_active` meanwhile.
pub(super) async fn tunnel(mut down: TransportStream, down_buf: BytesMut, mut up: UpgradedUpstream, stats: &HcmStats) {
    stats.downstream_cx_upgrades_active.inc();
    let (io, up_buf) = up.parts();
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
        let _ = tokio::io::copy_bidirectional(&mut down, io).await;
    }
    stats.downstream_cx_upgrades_active.dec();
}
