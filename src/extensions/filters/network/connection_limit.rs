//! `envoy.filters.network.connection_limit`: at most `max_connections` open
//! connections through the filter (its config, across every worker) at once.
//!
//! As Envoy 1.40 (tests/compat `network_connection_limit`): a connection over
//! the limit is refused as it starts, before the terminal filter runs (a
//! `tcp_proxy` after it does not connect upstream, though it counts the
//! connection), closed at once or, with `delay`, after the delay, reading
//! nothing meanwhile. `connection_limit.<stat_prefix>.limited_connections`
//! counts the refused, `active_connections` the open ones.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::extensions::filters::network::connection_limit::v3::ConnectionLimit;
use envoy_types::pb::google::protobuf::Any;

use crate::config::{self, bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::{FactoryContext, NetworkFilterExtension};
use crate::network::{NetworkFilter, ReadFilter, ReadFilterContext, ReadFilterFactory, ReadFilterStatus};

const CONFIG_TYPE: &str = "envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit";

pub const EXTENSION: NetworkFilterExtension =
    NetworkFilterExtension { name: "envoy.filters.network.connection_limit", config_type: CONFIG_TYPE, create };

define_stats! {
    /// `connection_limit.<stat_prefix>.*`.
    #[derive(Debug)]
    pub struct ConnectionLimitStats {
        counter limited_connections,
        gauge active_connections,
    }
}

#[derive(Debug)]
struct Limit {
    max: u64,
    /// `None`: a refused connection closes at once.
    delay: Option<Duration>,
    open: AtomicU64,
    stats: ConnectionLimitStats,
}

#[derive(Debug)]
struct ConnectionLimitFactory(Arc<Limit>);

fn create(any: &Any, path: &FieldPath, ctx: &FactoryContext<'_>) -> Result<NetworkFilter, ConfigError> {
    let proto: ConnectionLimit = decode_any(any, path)?;
    if proto.stat_prefix.is_empty() {
        return Err(path.field_error("stat_prefix", "value length must be at least 1 characters"));
    }
    let max = match proto.max_connections {
        Some(v) if v.value >= 1 => v.value,
        Some(_) => return Err(path.field_error("max_connections", "value must be greater than or equal to 1")),
        None => return Err(path.field_error("max_connections", "value is required")),
    };
    let delay = proto.delay.as_ref().map(config::duration).filter(|d| !d.is_zero());
    let stats = ConnectionLimitStats::new(ctx.store, &format!("connection_limit.{}.", proto.stat_prefix));
    let limit = Limit { max, delay, open: AtomicU64::new(0), stats };
    Ok(NetworkFilter::Read(Arc::new(ConnectionLimitFactory(Arc::new(limit)))))
}

impl ReadFilterFactory for ConnectionLimitFactory {
    fn create(&self) -> Box<dyn ReadFilter> {
        Box::new(ConnectionLimitFilter { limit: self.0.clone(), counted: false })
    }
}

/// One connection; it holds its place under the limit until dropped.
struct ConnectionLimitFilter {
    limit: Arc<Limit>,
    counted: bool,
}

impl ReadFilter for ConnectionLimitFilter {
    fn on_new_connection(&mut self, _cx: &mut ReadFilterContext<'_>) -> ReadFilterStatus {
        let limit = &self.limit;
        let taken = limit.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit.max).then_some(n + 1));
        if taken.is_ok() {
            self.counted = true;
            limit.stats.active_connections.inc();
            return ReadFilterStatus::Continue;
        }
        limit.stats.limited_connections.inc();
        match limit.delay {
            Some(delay) => ReadFilterStatus::CloseAfter(delay),
            None => ReadFilterStatus::Close,
        }
    }
}

impl Drop for ConnectionLimitFilter {
    fn drop(&mut self) {
        if self.counted {
            self.limit.open.fetch_sub(1, Ordering::AcqRel);
            self.limit.stats.active_connections.dec();
        }
    }
}

pub const SUPPORTED_FIELDS: &[(&str, &[&str])] = &[(CONFIG_TYPE, &["stat_prefix", "max_connections", "delay"])];
