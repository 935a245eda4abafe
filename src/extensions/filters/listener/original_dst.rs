//! `envoy.filters.listener.original_dst`: a connection that iptables redirected
//! here (REDIRECT, or TPROXY with a transparent socket) takes the destination the
//! client asked for as its local address, so the filter-chain match,
//! `%DOWNSTREAM_LOCAL_ADDRESS%` and an ORIGINAL_DST cluster all see it. When the
//! kernel knows of no redirect, nothing changes and nothing is counted, as in
//! Envoy (which has no stats for this filter).

use std::sync::Arc;

use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use envoy_types::pb::google::protobuf::Any;

use super::ListenerFilterExtension;
use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::network::socket::original_dst;
use crate::network::{AcceptedSocket, ListenerFilterFactory, ListenerFilterFuture};
use crate::stats::Store;

pub const EXTENSION: ListenerFilterExtension = ListenerFilterExtension {
    name: "envoy.filters.listener.original_dst",
    config_type: "envoy.extensions.filters.listener.original_dst.v3.OriginalDst",
    create,
};

#[derive(Debug)]
struct OriginalDstFactory;

fn create(any: &Any, path: &FieldPath, _store: &Store) -> Result<Arc<dyn ListenerFilterFactory>, ConfigError> {
    let _cfg: OriginalDst = decode_any(any, path)?;
    Ok(Arc::new(OriginalDstFactory))
}

impl ListenerFilterFactory for OriginalDstFactory {
    fn on_accept<'a>(&'a self, socket: &'a mut AcceptedSocket) -> ListenerFilterFuture<'a> {
        // One system call, no waiting: the future is ready at its first poll.
        if let Some(destination) = original_dst(&socket.stream) {
            socket.local = destination;
            socket.local_restored = true;
        }
        Box::pin(std::future::ready(Ok(())))
    }
}
