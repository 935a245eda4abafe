//! Request tracing in the connection manager, as Envoy's `source/common/tracing`:
//! whether a request is traced (`decision`, read from and written into its
//! x-request-id), the span the connection manager opens for it and tags when it
//! ends (`http_tracer`), and the seam to the providers (`Driver`, `Span`), which
//! live in `extensions::tracers` because they report through the upstream clusters.
//! A connection manager without `tracing` holds no `HcmTracing` and pays one
//! `Option` check per request.

pub mod custom_tag;
pub mod decision;
pub mod http_tracer;

pub use custom_tag::CustomTag;

use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderMap;

use crate::define_stats;
use crate::runtime::Fraction;

/// Envoy's `Tracing::OperationName`: from the listener's `traffic_direction`
/// (OUTBOUND is egress, anything else ingress). It decides the span's kind and
/// where the route's decorator goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationName {
    Ingress,
    Egress,
}

/// Why a request is traced or not (Envoy's `Tracing::Reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NotTraceable,
    HealthCheck,
    Sampling,
    ServiceForced,
    ClientForced,
}

/// The connection manager's verdict for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub reason: Reason,
    pub traced: bool,
}

/// What the connection manager hands a provider to open a request's span.
pub struct SpanStart<'a> {
    pub operation: OperationName,
    pub request_headers: &'a HeaderMap,
    /// The request's `:authority`: the span's name until a decorator renames it.
    pub host: &'a str,
    /// The request's path and query, as it came (SkyWalking names its span so).
    pub path: &'a str,
    pub start: SystemTime,
    pub decision: Decision,
}

/// The upstream request a span's context is written into (Envoy's
/// `Tracing::UpstreamContext` and the request's path).
pub struct UpstreamContext<'a> {
    /// The path and query as they go upstream.
    pub path: &'a str,
    /// The host the request goes to.
    pub address: Option<SocketAddr>,
}

/// A tracing provider (Envoy's `Tracing::Driver`), built once from the
/// connection manager's `tracing.provider` and shared by the workers.
pub trait Driver: Send + Sync + Debug {
    /// The request's span; `None` where Envoy makes a null span (a trace
    /// context in the request that does not parse): nothing is injected nor reported.
    fn start_span(&self, start: &SpanStart<'_>) -> Option<Box<dyn Span>>;

    /// Whether its spans make children for the router's upstream requests
    /// (`start_child_span`); a provider that does not is refused with it.
    fn spawns_children(&self) -> bool {
        false
    }
}

/// One request's span (Envoy's `Tracing::Span`), owned by its stream.
pub trait Span {
    fn set_operation(&mut self, name: &str);
    fn set_tag(&mut self, name: &str, value: &str);
    /// Writes the span's context into the upstream request's headers.
    fn inject_context(&self, headers: &mut HeaderMap, upstream: &UpstreamContext<'_>);
    /// A child span for one upstream request (the router's
    /// `start_child_span`), where the provider makes them.
    fn spawn_child(&self, _name: &str, _start: SystemTime) -> Option<Box<dyn Span>> {
        None
    }
    /// Ends the span now and hands it to the provider's reporter if it is sampled.
    fn finish(self: Box<Self>);
}

define_stats! {
    /// `http.<stat_prefix>.tracing.*`: why requests were or were not traced.
    #[derive(Debug)]
    pub struct TracingStats {
        counter random_sampling,
        counter service_forced,
        counter client_enabled,
        counter not_traceable,
        counter health_check,
    }
}

impl TracingStats {
    /// Envoy's `chargeTracingStats`.
    pub fn charge(&self, reason: Reason) {
        match reason {
            Reason::ClientForced => self.client_enabled.inc(),
            Reason::Sampling => self.random_sampling.inc(),
            Reason::ServiceForced => self.service_forced.inc(),
            Reason::HealthCheck => self.health_check.inc(),
            Reason::NotTraceable => self.not_traceable.inc(),
        }
    }
}

/// The three percentages of the decision: the connection manager's, or a
/// route's `tracing`, which replaces all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    pub client: Fraction,
    pub random: Fraction,
    pub overall: Fraction,
}

/// A route's `tracing`: its percentages (each 100 % when unset, as Envoy's
/// `RouteTracingImpl`) and tags added after the connection manager's.
#[derive(Debug, Clone)]
pub struct RouteTracing {
    pub sampling: Sampling,
    pub custom_tags: Vec<CustomTag>,
}

/// A connection manager's `tracing`, built at start-up.
#[derive(Debug)]
pub struct HcmTracing {
    pub operation: OperationName,
    pub driver: Arc<dyn Driver>,
    /// `client_sampling`, `random_sampling`, `overall_sampling`, out of 10000
    /// (Envoy's defaults: all 100 %).
    pub sampling: Sampling,
    pub custom_tags: Vec<CustomTag>,
    /// `max_path_tag_length`: how much of the path `http.url` keeps (default 256).
    pub max_path_tag_length: usize,
    /// `node.id` and `node.locality.zone`, which every span carries.
    pub node_id: String,
    pub zone: String,
    pub stats: TracingStats,
}
