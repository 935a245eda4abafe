//! `envoy.filters.network.local_ratelimit`: new connections take a token of a
//! bucket shared by every worker (`filters::http::token_bucket`, the HTTP
//! local rate limit's); one that finds none is refused as it starts.
//!
//! As Envoy 1.40 (tests/compat `network_local_ratelimit`): a refused connection
//! closes before the terminal filter runs (a `tcp_proxy` after it does not
//! connect upstream, though it counts the connection), and
//! `local_rate_limit.<stat_prefix>.rate_limited` counts it.

use std::sync::Arc;

use envoy_types::pb::envoy::extensions::filters::network::local_ratelimit::v3::LocalRateLimit;
use envoy_types::pb::google::protobuf::Any;

use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::filters::http::local_ratelimit::token_bucket;
use crate::extensions::filters::http::token_bucket::{Consume, MonotonicClock, TokenBucket};
use crate::extensions::{FactoryContext, NetworkFilterExtension};
use crate::network::{NetworkFilter, ReadFilter, ReadFilterContext, ReadFilterFactory, ReadFilterStatus};

const CONFIG_TYPE: &str = "envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit";

pub const EXTENSION: NetworkFilterExtension =
    NetworkFilterExtension { name: "envoy.filters.network.local_ratelimit", config_type: CONFIG_TYPE, create };

define_stats! {
    /// `local_rate_limit.<stat_prefix>.*`.
    #[derive(Debug)]
    pub struct NetworkRateLimitStats {
        counter rate_limited,
    }
}

#[derive(Debug)]
struct RateLimit {
    bucket: TokenBucket,
    stats: NetworkRateLimitStats,
}

#[derive(Debug)]
struct RateLimitFactory(Arc<RateLimit>);

fn create(any: &Any, path: &FieldPath, ctx: &FactoryContext<'_>) -> Result<NetworkFilter, ConfigError> {
    let proto: LocalRateLimit = decode_any(any, path)?;
    if proto.stat_prefix.is_empty() {
        return Err(path.field_error("stat_prefix", "value length must be at least 1 characters"));
    }
    let Some(tb) = &proto.token_bucket else {
        return Err(path.field_error("token_bucket", "value is required"));
    };
    let bucket = token_bucket(tb, &path.child("token_bucket"), Arc::new(MonotonicClock::new()))?;
    let stats = NetworkRateLimitStats::new(ctx.store, &format!("local_rate_limit.{}.", proto.stat_prefix));
    Ok(NetworkFilter::Read(Arc::new(RateLimitFactory(Arc::new(RateLimit { bucket, stats })))))
}

impl ReadFilterFactory for RateLimitFactory {
    fn create(&self) -> Box<dyn ReadFilter> {
        Box::new(RateLimitFilter(self.0.clone()))
    }
}

struct RateLimitFilter(Arc<RateLimit>);

impl ReadFilter for RateLimitFilter {
    fn on_new_connection(&mut self, _cx: &mut ReadFilterContext<'_>) -> ReadFilterStatus {
        match self.0.bucket.consume() {
            Consume::Allowed { .. } => ReadFilterStatus::Continue,
            Consume::Limited { .. } => {
                self.0.stats.rate_limited.inc();
                ReadFilterStatus::Close
            }
        }
    }
}

pub const SUPPORTED_FIELDS: &[(&str, &[&str])] = &[(CONFIG_TYPE, &["stat_prefix", "token_bucket"])];
