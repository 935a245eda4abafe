//! A state-of-the-world gRPC stream to a management server (Envoy's
//! `GrpcMuxImpl`): the ADS stream, which carries every resource type, or a
//! stream of one type's own service. It runs as a local task of the main
//! thread, opened to the first host of the management server's static cluster.
//!
//! Each subscribed type (a `Watch`, by type URL, in the order subscribed) gets
//! a request on every new stream, carrying its last accepted `version_info`
//! and no nonce; each response is handed to its type's watch and answered: an
//! ACK (the response's version and nonce) or a NACK (the last accepted version,
//! the response's nonce and `error_detail`, gRPC status 13 with the refused
//! field's path, as Envoy's). `node` goes on every request, or only on a
//! stream's first with `set_node_on_first_message_only`. A stream that ends or
//! cannot open is tried again after a jittered back-off (`backoff`), and the
//! watches keep what they applied meanwhile. A watch whose resource names
//! change (EDS, as clusters come and go) asks again on the open stream with
//! its last version and nonce (`interest_changed`). On the ADS stream, once
//! start-up's clusters are in, CDS's ACK waits while a cluster warms, as
//! Envoy's (its signal that the clusters are ready for routes naming them).
//! With `DELTA_GRPC` the stream is the service's `Delta*` method and speaks
//! incremental xDS (`delta`): the same watches, each response turned into
//! the state of the world they take, and requests that subscribe and
//! unsubscribe names, ACK and NACK by nonce.
//! The `node` sent is the bootstrap's with Courier's name and version in
//! `user_agent_name` and `user_agent_build_version` (`xds_node`), where Envoy
//! puts "envoy" and its own; `client_features` stays empty, as Envoy 1.40's.
//! `control_plane.*` are Envoy's
//! stats; Courier does no rate limiting, so `rate_limit_enforced` and
//! `pending_requests` stay 0 (as Envoy's without `rate_limit_settings`).

use std::cell::RefCell;
use std::rc::Rc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status;

use super::backoff::BackOff;
use super::delta::DeltaState;
use super::grpc_stream::{GrpcStream, StreamError};
use super::grpc_subscription::Watch;
use super::source::GrpcSource;
use crate::define_stats;
use crate::stats::Store;
use crate::upstream::ClusterManager;

pub const ADS_METHOD: &str = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
pub const CDS_METHOD: &str = "/envoy.service.cluster.v3.ClusterDiscoveryService/StreamClusters";
pub const LDS_METHOD: &str = "/envoy.service.listener.v3.ListenerDiscoveryService/StreamListeners";
pub const EDS_METHOD: &str = "/envoy.service.endpoint.v3.EndpointDiscoveryService/StreamEndpoints";
pub const RDS_METHOD: &str = "/envoy.service.route.v3.RouteDiscoveryService/StreamRoutes";
pub const RTDS_METHOD: &str = "/envoy.service.runtime.v3.RuntimeDiscoveryService/StreamRuntime";
pub const SDS_METHOD: &str = "/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets";

/// The incremental method of a state-of-the-world one's service.
fn delta_method(method: &'static str) -> &'static str {
    match method {
        ADS_METHOD => "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources",
        CDS_METHOD => "/envoy.service.cluster.v3.ClusterDiscoveryService/DeltaClusters",
        LDS_METHOD => "/envoy.service.listener.v3.ListenerDiscoveryService/DeltaListeners",
        EDS_METHOD => "/envoy.service.endpoint.v3.EndpointDiscoveryService/DeltaEndpoints",
        RDS_METHOD => "/envoy.service.route.v3.RouteDiscoveryService/DeltaRoutes",
        RTDS_METHOD => "/envoy.service.runtime.v3.RuntimeDiscoveryService/DeltaRuntime",
        SDS_METHOD => "/envoy.service.secret.v3.SecretDiscoveryService/DeltaSecrets",
        other => other,
    }
}

/// A request, of the stream's protocol.
enum Outgoing {
    Sotw(DiscoveryRequest),
    Delta(DeltaDiscoveryRequest),
}

impl Outgoing {
    fn type_url(&self) -> &str {
        match self {
            Outgoing::Sotw(r) => &r.type_url,
            Outgoing::Delta(r) => &r.type_url,
        }
    }

    fn is_nack(&self) -> bool {
        match self {
            Outgoing::Sotw(r) => r.error_detail.is_some(),
            Outgoing::Delta(r) => r.error_detail.is_some(),
        }
    }

    fn send(&self, stream: &mut GrpcStream) -> Result<(), StreamError> {
        match self {
            Outgoing::Sotw(r) => stream.send(r),
            Outgoing::Delta(r) => stream.send(r),
        }
    }
}

/// A response, of the stream's protocol.
enum Received {
    Sotw(DiscoveryResponse),
    Delta(DeltaDiscoveryResponse),
}

impl Received {
    fn type_url(&self) -> &str {
        match self {
            Received::Sotw(r) => &r.type_url,
            Received::Delta(r) => &r.type_url,
        }
    }

    fn nonce(&self) -> &str {
        match self {
            Received::Sotw(r) => &r.nonce,
            Received::Delta(r) => &r.nonce,
        }
    }

    /// Whether applying it frees enough (decoded resources, replaced snapshots) to
    /// be worth giving back to the system once answered: a large mesh's first CDS
    /// or EDS leaves ~10 MB free in the allocator's heaps below live data, which
    /// glibc would otherwise keep resident for good.
    fn is_large(&self) -> bool {
        const LARGE: usize = 1000;
        match self {
            Received::Sotw(r) => r.resources.len() >= LARGE,
            Received::Delta(r) => r.resources.len() + r.removed_resources.len() >= LARGE,
        }
    }
}

/// The node requests carry: the bootstrap's, naming the client as Envoy's
/// does itself (Envoy overrides these fields whatever the bootstrap says).
pub fn xds_node(node: &Node) -> Node {
    use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
    use envoy_types::pb::envoy::config::core::v3::BuildVersion;
    use envoy_types::pb::envoy::r#type::v3::SemanticVersion;
    let number = |s: &str| s.parse().unwrap_or(0);
    let version = SemanticVersion {
        major_number: number(env!("CARGO_PKG_VERSION_MAJOR")),
        minor_number: number(env!("CARGO_PKG_VERSION_MINOR")),
        patch: number(env!("CARGO_PKG_VERSION_PATCH")),
    };
    Node {
        user_agent_name: "courier".into(),
        user_agent_version_type: Some(UserAgentVersionType::UserAgentBuildVersion(BuildVersion {
            version: Some(version),
            metadata: None,
        })),
        ..node.clone()
    }
}

/// The wrapper a state-of-the-world response may put each resource in.
const RESOURCE_WRAPPER: &str = "type.googleapis.com/envoy.service.discovery.v3.Resource";

/// A state-of-the-world response with the resources it wrapped in
/// `Resource`s (as Envoy accepts) taken out of them, and each wrapper's name
/// and version, in order (none when nothing was wrapped). A wrapper that does
/// not decode, or holds nothing, stays as it is, for the type check to refuse.
fn unwrapped(mut response: DiscoveryResponse) -> (DiscoveryResponse, Vec<(String, String)>) {
    use envoy_types::pb::envoy::service::discovery::v3::Resource;
    use prost::Message;
    if !response.resources.iter().any(|a| a.type_url == RESOURCE_WRAPPER) {
        return (response, Vec::new());
    }
    let mut names = Vec::with_capacity(response.resources.len());
    for any in &mut response.resources {
        let wrapper = (any.type_url == RESOURCE_WRAPPER).then(|| Resource::decode(any.value.as_slice()).ok());
        match wrapper.flatten() {
            Some(Resource { name, version, resource: Some(inner), .. }) => {
                *any = inner;
                names.push((name, version));
            }
            _ => names.push((String::new(), String::new())),
        }
    }
    (response, names)
}

/// gRPC's INTERNAL, the status of Envoy's NACK.
const NACK_STATUS: i32 = 13;
/// Envoy cuts a NACK's message to this many bytes (`truncateGrpcStatusMessage`).
const NACK_MESSAGE_LIMIT: usize = 4096;

/// `message` cut as Envoy cuts a NACK's (at a character boundary here).
fn truncated(mut message: String) -> String {
    if message.len() > NACK_MESSAGE_LIMIT {
        let mut end = NACK_MESSAGE_LIMIT;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...(truncated)");
    }
    message
}

define_stats! {
    /// `control_plane.*` (Envoy's `ControlPlaneStats`).
    #[derive(Debug)]
    pub struct ControlPlaneStats {
        counter rate_limit_enforced,
        gauge connected_state,
        gauge pending_requests,
    }
}

pub struct GrpcMux {
    source: GrpcSource,
    method: &'static str,
    cm: Rc<ClusterManager>,
    node: Node,
    stats: ControlPlaneStats,
    watches: RefCell<Vec<Rc<dyn Watch>>>,
    /// The type URLs whose watches changed their resource names since the
    /// stream last asked for them.
    reasked: RefCell<Vec<String>>,
    /// The nonce of the last response of each type on the current stream.
    nonces: RefCell<Vec<(String, String)>>,
    /// Wakes the stream when a watch is added or changed, to send its request.
    added: tokio::sync::Notify,
    /// On a delta stream (`source.delta`), what each type has and subscribed.
    delta: RefCell<DeltaState>,
}

impl GrpcMux {
    pub fn new(source: GrpcSource, method: &'static str, cm: Rc<ClusterManager>, node: Node, store: &Store) -> Self {
        let stats = ControlPlaneStats::new(store, "control_plane.");
        let method = if source.delta { delta_method(method) } else { method };
        GrpcMux {
            source,
            method,
            cm,
            node: xds_node(&node),
            stats,
            watches: RefCell::default(),
            reasked: RefCell::default(),
            nonces: RefCell::default(),
            added: tokio::sync::Notify::new(),
            delta: RefCell::default(),
        }
    }

    /// A watch's resource names changed: it asks again on the open stream (a
    /// new stream asks with the current names anyway).
    pub fn interest_changed(&self, type_url: &str) {
        let mut reasked = self.reasked.borrow_mut();
        if !reasked.iter().any(|t| t == type_url) {
            reasked.push(type_url.to_string());
        }
        drop(reasked);
        self.added.notify_one();
    }

    fn nonce(&self, type_url: &str) -> String {
        self.nonces.borrow().iter().find(|(t, _)| t == type_url).map(|(_, n)| n.clone()).unwrap_or_default()
    }

    fn set_nonce(&self, type_url: &str, nonce: &str) {
        let mut nonces = self.nonces.borrow_mut();
        match nonces.iter_mut().find(|(t, _)| t == type_url) {
            Some((_, n)) => nonce.clone_into(n),
            None => nonces.push((type_url.to_string(), nonce.to_string())),
        }
    }

    /// Adds a resource type: its request goes on the stream now if one is up,
    /// else on the next.
    pub fn subscribe(&self, watch: Rc<dyn Watch>) {
        self.watches.borrow_mut().push(watch);
        self.added.notify_one();
    }

    /// Opens streams one after the other for as long as the task runs.
    pub async fn run(self: Rc<Self>) {
        let mut backoff = BackOff::default();
        loop {
            match self.open().await {
                Ok(stream) => {
                    self.stats.connected_state.set(1);
                    let (error, answered) = self.serve(stream).await;
                    self.stats.connected_state.set(0);
                    tracing::warn!("{}: the stream to '{}' closed: {error}", self.method, self.source.cluster);
                    // Envoy starts over from the base once the server answered.
                    if answered {
                        backoff.reset();
                    }
                }
                Err(e) => tracing::warn!("{}: cannot open a stream to '{}': {e}", self.method, self.source.cluster),
            }
            let watches = self.watches.borrow().clone();
            for w in &watches {
                w.on_stream_failure();
            }
            tokio::time::sleep(backoff.next_wait()).await;
        }
    }

    /// A stream to the first host of the management server's cluster, as the
    /// main thread sees it now.
    async fn open(&self) -> Result<GrpcStream, StreamError> {
        let name = &self.source.cluster;
        let cluster = self.cm.get(name).ok_or_else(|| StreamError(format!("no cluster '{name}'")))?;
        let hosts = self.cm.hosts(name);
        let host = hosts.first().ok_or_else(|| StreamError(format!("cluster '{name}' has no host")))?;
        GrpcStream::open(host, &cluster, name, self.method).await
    }

    /// Serves one stream until it fails: the error, and whether any response came.
    async fn serve(&self, mut stream: GrpcStream) -> (StreamError, bool) {
        let mut requested = 0;
        let mut first = true;
        let mut answered = false;
        // CDS's ACK, held while clusters warm (`holds_cds_ack`).
        let mut held: Option<Outgoing> = None;
        self.nonces.borrow_mut().clear();
        self.reasked.borrow_mut().clear();
        self.delta.borrow_mut().new_stream();
        loop {
            if let Err(e) = self.request_added(&mut stream, &mut requested, &mut first) {
                return (e, answered);
            }
            let watches = self.watches.borrow().clone();
            let response = tokio::select! {
                () = self.added.notified() => continue,
                () = self.cm.all_warm(), if held.is_some() => {
                    if let Some(ack) = held.take() {
                        if let Err(e) = ack.send(&mut stream) {
                            return (e, answered);
                        }
                    }
                    continue;
                }
                r = self.recv(&mut stream) => r,
            };
            let response = match response {
                Ok(r) => r,
                Err(e) => return (e, answered),
            };
            answered = true;
            self.set_nonce(response.type_url(), response.nonce());
            let Some(watch) = watches.iter().find(|w| w.type_url() == response.type_url()) else {
                tracing::warn!(
                    "Ignoring the message for type URL {} as it has no current subscribers.",
                    response.type_url()
                );
                continue;
            };
            let large = response.is_large();
            let answer = self.answer(watch.as_ref(), response, &mut first).await;
            // What an update started (LDS once CDS's first one is in) is
            // asked for before the update is answered, as Envoy orders them.
            tokio::task::yield_now().await;
            if let Err(e) = self.request_added(&mut stream, &mut requested, &mut first) {
                return (e, answered);
            }
            // An update that warmed the last cluster resumes CDS first.
            if held.is_some() && !self.cm.holds_cds_ack() {
                if let Some(ack) = held.take() {
                    if let Err(e) = ack.send(&mut stream) {
                        return (e, answered);
                    }
                }
            }
            // On the ADS stream Envoy sends no CDS ACK while a cluster warms,
            // telling the management server when its clusters are ready for
            // the routes that name them.
            let is_cds = answer.type_url().ends_with(crate::config::path_source::CLUSTER_TYPE);
            let is_ads = self.method == ADS_METHOD || self.method == delta_method(ADS_METHOD);
            if is_ads && is_cds && !answer.is_nack() && self.cm.holds_cds_ack() {
                held = Some(answer);
            } else if let Err(e) = answer.send(&mut stream) {
                return (e, answered);
            }
            if large {
                crate::server::memory::release_free_memory();
            }
        }
    }

    /// The next response, of the stream's protocol.
    async fn recv(&self, stream: &mut GrpcStream) -> Result<Received, StreamError> {
        if self.source.delta {
            stream.recv::<DeltaDiscoveryResponse>().await.map(Received::Delta)
        } else {
            stream.recv::<DiscoveryResponse>().await.map(Received::Sotw)
        }
    }

    /// Hands a response to its watch: the ACK or NACK to send.
    async fn answer(&self, watch: &dyn Watch, response: Received, first: &mut bool) -> Outgoing {
        let nack = |e: crate::config::ConfigError| Status {
            code: NACK_STATUS,
            message: truncated(e.to_string()),
            details: Vec::new(),
        };
        match response {
            Received::Sotw(response) => Outgoing::Sotw({
                let (response, wrapped) = unwrapped(response);
                if !wrapped.is_empty() {
                    watch.resource_versions_received(&wrapped);
                }
                match watch.on_response(&response, None).await {
                    Ok(()) => self.request(watch, response.version_info, response.nonce, None, first),
                    Err(e) => self.request(watch, watch.version_info(), response.nonce, Some(nack(e)), first),
                }
            }),
            Received::Delta(response) => {
                let response_nonce = response.nonce.clone();
                let prepared = self.delta.borrow().prepare(response);
                watch.resource_versions_received(&prepared.versions);
                let error_detail = match watch.on_response(&prepared.response, Some(&prepared.removed)).await {
                    Ok(()) => {
                        watch.on_removed(&prepared.removed, &prepared.response.version_info).await;
                        watch.set_resource_versions(&prepared.versions);
                        self.delta.borrow_mut().commit(prepared);
                        None
                    }
                    Err(e) => {
                        watch.on_delta_rejected();
                        Some(nack(e))
                    }
                };
                let type_url = watch.type_url().to_string();
                Outgoing::Delta(self.with_node(
                    DeltaDiscoveryRequest { type_url, response_nonce, error_detail, ..Default::default() },
                    first,
                ))
            }
        }
    }

    /// A watch's first request on a stream (none for a delta watch naming nothing).
    fn first_request(&self, watch: &dyn Watch, first: &mut bool) -> Option<Outgoing> {
        if !self.source.delta {
            return Some(Outgoing::Sotw(self.request(watch, watch.version_info(), String::new(), None, first)));
        }
        let request =
            self.delta.borrow_mut().first_request(watch.type_url(), watch.resource_names(), watch.wildcard())?;
        Some(Outgoing::Delta(self.with_node(request, first)))
    }

    /// A watch's request after its names changed, if the stream is to be told.
    fn names_changed(&self, watch: &dyn Watch, first: &mut bool) -> Option<Outgoing> {
        if !self.source.delta {
            let nonce = self.nonce(watch.type_url());
            return Some(Outgoing::Sotw(self.request(watch, watch.version_info(), nonce, None, first)));
        }
        let request = self.delta.borrow_mut().names_changed(watch.type_url(), watch.resource_names())?;
        Some(Outgoing::Delta(self.with_node(request, first)))
    }

    /// `request` with `node` if it is the stream's first or every request carries it.
    fn with_node(&self, mut request: DeltaDiscoveryRequest, first: &mut bool) -> DeltaDiscoveryRequest {
        request.node = (*first || !self.source.set_node_on_first_message_only).then(|| self.node.clone());
        *first = false;
        request
    }

    /// Sends the first request of every watch added since the last call (all
    /// of them on a new stream), then asks again for the watches whose names
    /// changed.
    fn request_added(
        &self,
        stream: &mut GrpcStream,
        requested: &mut usize,
        first: &mut bool,
    ) -> Result<(), StreamError> {
        let watches = self.watches.borrow().clone();
        for w in &watches[*requested..] {
            if let Some(request) = self.first_request(w.as_ref(), first) {
                request.send(stream)?;
            }
            while w.requested() {
                if let Some(request) = self.names_changed(w.as_ref(), first) {
                    request.send(stream)?;
                }
            }
        }
        let asked = &watches[..*requested];
        *requested = watches.len();
        let reasked = std::mem::take(&mut *self.reasked.borrow_mut());
        for w in asked.iter().filter(|w| reasked.iter().any(|t| t == w.type_url())) {
            if let Some(request) = self.names_changed(w.as_ref(), first) {
                request.send(stream)?;
            }
        }
        Ok(())
    }

    fn request(
        &self,
        watch: &dyn Watch,
        version_info: String,
        response_nonce: String,
        error_detail: Option<Status>,
        first: &mut bool,
    ) -> DiscoveryRequest {
        let node = (*first || !self.source.set_node_on_first_message_only).then(|| self.node.clone());
        *first = false;
        DiscoveryRequest {
            version_info,
            node,
            resource_names: watch.resource_names(),
            type_url: watch.type_url().to_string(),
            response_nonce,
            error_detail,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_nack_message_is_cut_as_envoys() {
        assert_eq!(truncated("short".into()), "short");
        let cut = truncated("é".repeat(3000));
        assert!(cut.ends_with("...(truncated)") && cut.len() <= NACK_MESSAGE_LIMIT + 14);
    }
}
