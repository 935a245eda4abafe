//! The TCP checker (`tcp_health_check`), as Envoy's `TcpHealthCheckerImpl`: a
//! connection to the host, `send` written on it, then reads until what came back
//! holds `receive` (in order). Without `receive`, connecting is the check and the
//! connection is closed; with it the connection stays for the next check when
//! `reuse_connection`. A close or a read error is a network failure; an answer
//! that never matches runs into the timeout. At most `MAX_KEPT` bytes of the
//! answer are kept for matching.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::config::{payload_matches, TcpCheck};
use super::session::Outcome;
use crate::network::TransportStream;
use crate::upstream::cluster::ClusterInfo;
use crate::upstream::host::Host;

/// The most of an answer kept for `receive` to match.
const MAX_KEPT: usize = 64 * 1024;

#[derive(Default)]
pub struct TcpProbe {
    connection: Option<TransportStream>,
}

impl TcpProbe {
    pub async fn check(&mut self, c: &TcpCheck, info: &ClusterInfo, host: &Host, reuse: bool) -> Outcome {
        let mut stream = match self.connection.take() {
            Some(stream) => stream,
            None => match super::connect(info, host).await {
                Ok(stream) => stream,
                Err(_) => return Outcome::Network,
            },
        };
        if !c.send.is_empty() && stream.write_all(&c.send).await.is_err() {
            return Outcome::Network;
        }
        if c.receive.is_empty() {
            return Outcome::Healthy;
        }
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Outcome::Network,
                Ok(n) => {
                    let room = MAX_KEPT.saturating_sub(answer.len()).min(n);
                    answer.extend_from_slice(&chunk[..room]);
                    if payload_matches(&c.receive, &answer) {
                        break;
                    }
                }
            }
        }
        if reuse {
            self.connection = Some(stream);
        }
        Outcome::Healthy
    }

    pub fn close(&mut self) {
        self.connection = None;
    }
}
