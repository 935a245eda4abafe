//! A state-of-the-world xDS management server for tests, over h2c on the `h2`
//! crate: the ADS method and CDS's, LDS's, EDS's, RDS's, RTDS's and SDS's own
//! (`StreamClusters`, `StreamListeners`, `StreamEndpoints`, `StreamRoutes`,
//! `StreamRuntime`, `StreamSecrets`) all serve the same snapshot. A test `push`es a type's
//! whole state (`version`, resources as `Any`s); every stream that asked for
//! that type gets it at once, and a stream's first request for a type gets
//! the latest one. Each response has a nonce of its own (`n1`, `n2`, ...).
//! Every request received is kept, in order, for the test to wait for and
//! look at (`wait_request`): ACKs, NACKs with their `error_detail`, the node.
//!
//! The compat suite's `{{XDS_PORT}}` is one, serving the files of
//! `tests/compat/data/xds` (`push_file`).
//!
//! The delta methods (`DeltaAggregatedResources`, `DeltaClusters`, ...) serve
//! the same snapshot incrementally: each resource has a version of its own,
//! `res-<version of the push that last changed it>` (not the response's
//! `system_version_info`, so a test sees which one a proxy shows), and a stream gets the resources it subscribed to
//! (all of a type for a wildcard subscription: an empty first list, or `*`)
//! that it does not have at that version (`initial_resource_versions` tell
//! what a reconnecting client has), and `removed_resources` for the ones it
//! has that the snapshot dropped (`push` without them, or `remove`). Its
//! requests are kept apart (`delta_requests`, `wait_delta_request`).
//!
//! `start_tls` serves the same over TLS (a rustls server config, which may
//! ask for a client certificate; ALPN `h2`), as Envoy Gateway's control
//! plane does; a connection whose handshake fails is closed.
//!
//! `stop` closes the listening socket and every connection (the management
//! server went away); `restart` listens on the same port again, keeping the
//! snapshot and the requests seen.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Resource,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ENDPOINT_TYPE: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
#[allow(dead_code)] // the compat suite's
pub const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
#[allow(dead_code)] // the integration tests'
pub const RUNTIME_TYPE: &str = "type.googleapis.com/envoy.service.runtime.v3.Runtime";
#[allow(dead_code)] // the integration tests'
pub const SECRET_TYPE: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// The wrapper a state-of-the-world response may carry each resource in.
const RESOURCE_TYPE: &str = "type.googleapis.com/envoy.service.discovery.v3.Resource";

const METHODS: &[&str] = &[
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources",
    "/envoy.service.cluster.v3.ClusterDiscoveryService/StreamClusters",
    "/envoy.service.listener.v3.ListenerDiscoveryService/StreamListeners",
    "/envoy.service.endpoint.v3.EndpointDiscoveryService/StreamEndpoints",
    "/envoy.service.route.v3.RouteDiscoveryService/StreamRoutes",
    "/envoy.service.runtime.v3.RuntimeDiscoveryService/StreamRuntime",
    "/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets",
];

const DELTA_METHODS: &[&str] = &[
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources",
    "/envoy.service.cluster.v3.ClusterDiscoveryService/DeltaClusters",
    "/envoy.service.listener.v3.ListenerDiscoveryService/DeltaListeners",
    "/envoy.service.endpoint.v3.EndpointDiscoveryService/DeltaEndpoints",
    "/envoy.service.route.v3.RouteDiscoveryService/DeltaRoutes",
    "/envoy.service.runtime.v3.RuntimeDiscoveryService/DeltaRuntime",
    "/envoy.service.secret.v3.SecretDiscoveryService/DeltaSecrets",
];

/// How long `wait_request` waits.
const WAIT: Duration = Duration::from_secs(20);

#[derive(Default)]
struct State {
    /// The latest push of each type: its version and resources.
    snapshots: BTreeMap<String, (String, Vec<Any>)>,
    /// Each type's resources by name: the version of the push that last
    /// changed each, and it (what a delta stream is sent).
    versions: BTreeMap<String, BTreeMap<String, (String, Any)>>,
    /// Each type's push count, and the names its last push changed, added or
    /// removed (`None`: not known, every name is looked at): a delta stream
    /// that saw the push before looks at those only, as a control plane with
    /// 10,000 clusters must to send one EDS change in less than milliseconds.
    changes: BTreeMap<String, (u64, Option<BTreeSet<String>>)>,
    nonces: u64,
    /// Every request received, with the path of its stream.
    requests: Vec<(String, DiscoveryRequest)>,
    /// Every request of a delta stream, with the path of its stream.
    delta_requests: Vec<(String, DeltaDiscoveryRequest)>,
    /// The leaf certificate (DER) each TLS connection's client showed, in order.
    client_certificates: Vec<Vec<u8>>,
    /// How many streams have been opened so far.
    streams: usize,
    /// Each open stream's wake-up for a new push.
    pushes: Vec<tokio::sync::mpsc::UnboundedSender<()>>,
}

impl State {
    /// A push of `type_url` changed `touched` (`None`: not known).
    fn changed(&mut self, type_url: &str, touched: Option<BTreeSet<String>>) {
        let change = self.changes.entry(type_url.to_string()).or_insert((0, None));
        *change = (change.0 + 1, touched);
    }
}

pub struct XdsServer {
    pub addr: SocketAddr,
    state: Arc<(Mutex<State>, Condvar)>,
    running: Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl XdsServer {
    pub fn start() -> XdsServer {
        Self::serve(None)
    }

    /// Serves over TLS with `config` (its ALPN set to `h2`).
    #[allow(dead_code)] // the compat suite's binary serves h2c only
    pub fn start_tls(config: rustls::ServerConfig) -> XdsServer {
        let mut config = config;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Self::serve(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }

    fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> XdsServer {
        let mut s = XdsServer {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            state: Arc::new((Mutex::new(State::default()), Condvar::new())),
            running: None,
            tls,
        };
        s.listen();
        s
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    fn listen(&mut self) {
        let listener = std::net::TcpListener::bind(self.addr).expect("bind the xDS server");
        listener.set_nonblocking(true).expect("nonblocking");
        self.addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = self.state.clone();
        let tls = self.tls.clone();
        let thread = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                let accept = async {
                    while let Ok((tcp, _)) = listener.accept().await {
                        // As gRPC servers do: without it, each small frame the
                        // client sends (a WINDOW_UPDATE) meets delayed ACKs, and a
                        // large response crawls at one window per 40 ms.
                        let _ = tcp.set_nodelay(true);
                        let state = state.clone();
                        match tls.clone() {
                            None => tokio::spawn(connection(tcp, state)),
                            Some(tls) => tokio::spawn(async move {
                                let Ok(tls) = tls.accept(tcp).await else { return };
                                let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
                                if let Some(leaf) = leaf {
                                    state.0.lock().expect("state").client_certificates.push(leaf.to_vec());
                                }
                                connection(tls, state).await;
                            }),
                        };
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime drops every connection's task: their sockets close.
        });
        self.running = Some((stop, thread));
    }

    /// Closes the listening socket and every connection.
    pub fn stop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
        self.state.0.lock().expect("state").pushes.clear();
    }

    /// Listens again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.listen();
    }

    /// Sets the state of `type_url` and sends it on every stream that asked for it.
    pub fn push(&self, type_url: &str, version: &str, resources: Vec<Any>) {
        let mut state = self.state.0.lock().expect("state");
        let old = state.versions.remove(type_url).unwrap_or_default();
        let mut touched = BTreeSet::new();
        let versions: BTreeMap<String, (String, Any)> = resources
            .iter()
            .map(|r| {
                let name = resource_name(&r.value);
                let kept = old.get(&name).filter(|(_, o)| o.value == r.value).map(|(v, _)| v.clone());
                if kept.is_none() {
                    touched.insert(name.clone());
                }
                (name, (kept.unwrap_or_else(|| format!("res-{version}")), r.clone()))
            })
            .collect();
        touched.extend(old.into_keys().filter(|name| !versions.contains_key(name)));
        state.versions.insert(type_url.to_string(), versions);
        state.snapshots.insert(type_url.to_string(), (version.to_string(), resources));
        state.changed(type_url, Some(touched));
        state.pushes.retain(|p| p.send(()).is_ok());
    }

    /// Sets the state of `type_url` to resources under names of the test's
    /// choosing, which may differ from their own: a delta stream gets each
    /// in a `Resource` of that name, a state-of-the-world one too (each `Any`
    /// a `Resource` wrapping the resource, as Envoy accepts).
    #[allow(dead_code)] // the integration tests'
    pub fn push_named(&self, type_url: &str, version: &str, resources: Vec<(&str, Any)>) {
        let mut state = self.state.0.lock().expect("state");
        let versions =
            resources.iter().map(|(name, r)| (name.to_string(), (format!("res-{version}"), r.clone()))).collect();
        let wrapped = resources
            .into_iter()
            .map(|(name, r)| {
                let wrapper = Resource { name: name.to_string(), resource: Some(r), ..Default::default() };
                Any { type_url: RESOURCE_TYPE.to_string(), value: wrapper.encode_to_vec() }
            })
            .collect();
        state.versions.insert(type_url.to_string(), versions);
        state.snapshots.insert(type_url.to_string(), (version.to_string(), wrapped));
        state.changed(type_url, None);
        state.pushes.retain(|p| p.send(()).is_ok());
    }

    /// Drops the resources `names` of `type_url`'s state, as version `version`:
    /// a delta stream that had them gets them in `removed_resources`.
    #[allow(dead_code)] // the integration tests'
    pub fn remove(&self, type_url: &str, version: &str, names: &[&str]) {
        let kept = {
            let state = self.state.0.lock().expect("state");
            let (_, resources) = state.snapshots.get(type_url).cloned().unwrap_or_default();
            resources.into_iter().filter(|r| !names.contains(&resource_name(&r.value).as_str())).collect()
        };
        self.push(type_url, version, kept);
    }

    /// Pushes the resources of a `DiscoveryResponse` file (as the file-based
    /// subscriptions read it: `"@type"` on each), under its `version_info`.
    #[allow(dead_code)] // the compat suite's
    pub fn push_file(&self, type_url: &str, path: &std::path::Path) {
        let type_name = type_url.trim_start_matches("type.googleapis.com/");
        let file = courier::config::path_source::read(path, type_name, &courier::extensions::supported::INVENTORY)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let resources =
            file.resources.into_iter().map(|r| Any { type_url: type_url.to_string(), value: r.encoded }).collect();
        self.push(type_url, &file.version_info, resources);
    }

    /// Every request so far, with the method of its stream.
    pub fn requests(&self) -> Vec<(String, DiscoveryRequest)> {
        self.state.0.lock().expect("state").requests.clone()
    }

    /// Every request of a delta stream so far, with the method of its stream.
    #[allow(dead_code)] // the integration tests'
    pub fn delta_requests(&self) -> Vec<(String, DeltaDiscoveryRequest)> {
        self.state.0.lock().expect("state").delta_requests.clone()
    }

    /// Waits until a delta request after the first `after` ones matches
    /// `pred`, and returns its index and it.
    #[allow(dead_code)] // the integration tests'
    pub fn wait_delta_request(
        &self,
        after: usize,
        pred: impl Fn(&DeltaDiscoveryRequest) -> bool,
    ) -> (usize, DeltaDiscoveryRequest) {
        self.wait_in(|s| &s.delta_requests, after, pred, "delta xDS")
    }

    /// The leaf certificate (DER) each TLS connection's client showed, in order.
    #[allow(dead_code)] // the compat suite's binary serves h2c only
    pub fn client_certificates(&self) -> Vec<Vec<u8>> {
        self.state.0.lock().expect("state").client_certificates.clone()
    }

    /// How many streams were opened.
    pub fn streams(&self) -> usize {
        self.state.0.lock().expect("state").streams
    }

    /// Waits until a request after the first `after` ones matches `pred`, and
    /// returns its index and it.
    pub fn wait_request(&self, after: usize, pred: impl Fn(&DiscoveryRequest) -> bool) -> (usize, DiscoveryRequest) {
        self.wait_in(|s| &s.requests, after, pred, "xDS")
    }

    /// Waits until an entry of the `list` of requests after the first `after`
    /// matches `pred`, and returns its index and it.
    fn wait_in<R: Clone + std::fmt::Debug>(
        &self,
        list: impl Fn(&State) -> &Vec<(String, R)>,
        after: usize,
        pred: impl Fn(&R) -> bool,
        kind: &str,
    ) -> (usize, R) {
        let deadline = Instant::now() + WAIT;
        let (lock, cond) = &*self.state;
        let mut state = lock.lock().expect("state");
        loop {
            if let Some((i, (_, r))) = list(&state).iter().enumerate().skip(after).find(|(_, (_, r))| pred(r)) {
                return (i, r.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no such {kind} request came; got: {:#?}", list(&state));
            state = cond.wait_timeout(state, left).expect("state").0;
        }
    }
}

impl Drop for XdsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn connection<T>(io: T, state: Arc<(Mutex<State>, Condvar)>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Ok(mut conn) = h2::server::handshake(io).await else { return };
    while let Some(Ok((request, respond))) = conn.accept().await {
        tokio::spawn(stream(request, respond, state.clone()));
    }
}

async fn stream(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    state: Arc<(Mutex<State>, Condvar)>,
) {
    let method = request.uri().path().to_string();
    let head = http::Response::builder().status(200).header("content-type", "application/grpc");
    let delta = DELTA_METHODS.contains(&method.as_str());
    if !METHODS.contains(&method.as_str()) && !delta {
        if let Ok(r) = head.header("grpc-status", "12").body(()) {
            let _ = respond.send_response(r, true);
        }
        return;
    }
    let Ok(response) = head.body(()) else { return };
    let Ok(mut send) = respond.send_response(response, false) else { return };
    let (wake, mut pushed) = tokio::sync::mpsc::unbounded_channel();
    {
        let mut s = state.0.lock().expect("state");
        s.streams += 1;
        s.pushes.push(wake);
    }
    let mut body = request.into_body();
    if delta {
        return delta_stream(method, body, send, pushed, state).await;
    }
    let mut buf = BytesMut::new();
    // The types this stream asked for, and the version each was last sent.
    let mut subscribed: HashSet<String> = HashSet::new();
    let mut sent: BTreeMap<String, String> = BTreeMap::new();
    loop {
        tokio::select! {
            chunk = body.data() => {
                let Some(Ok(chunk)) = chunk else { return };
                let _ = body.flow_control().release_capacity(chunk.len());
                buf.extend_from_slice(&chunk);
                while let Some(request) = take_message::<DiscoveryRequest>(&mut buf) {
                    let first = subscribed.insert(request.type_url.clone());
                    let (lock, cond) = &*state;
                    lock.lock().expect("state").requests.push((method.clone(), request));
                    cond.notify_all();
                    if first && !send_latest(&state, &mut send, &subscribed, &mut sent) {
                        return;
                    }
                }
            }
            woken = pushed.recv() => {
                if woken.is_none() || !send_latest(&state, &mut send, &subscribed, &mut sent) {
                    return;
                }
            }
        }
    }
}

/// Sends each subscribed type's snapshot this stream has not had yet.
fn send_latest(
    state: &Arc<(Mutex<State>, Condvar)>,
    send: &mut h2::SendStream<Bytes>,
    subscribed: &HashSet<String>,
    sent: &mut BTreeMap<String, String>,
) -> bool {
    let mut s = state.0.lock().expect("state");
    let due: Vec<(String, String, Vec<Any>)> = s
        .snapshots
        .iter()
        .filter(|(t, (v, _))| subscribed.contains(*t) && sent.get(*t) != Some(v))
        .map(|(t, (v, r))| (t.clone(), v.clone(), r.clone()))
        .collect();
    for (type_url, version_info, resources) in due {
        s.nonces += 1;
        let nonce = format!("n{}", s.nonces);
        sent.insert(type_url.clone(), version_info.clone());
        let response = DiscoveryResponse { version_info, resources, type_url, nonce, ..Default::default() };
        let mut framed = BytesMut::new();
        framed.put_u8(0);
        framed.put_u32(response.encoded_len() as u32);
        if response.encode(&mut framed).is_err() || send.send_data(framed.freeze(), false).is_err() {
            return false;
        }
    }
    true
}

fn take_message<M: Message + Default>(buf: &mut BytesMut) -> Option<M> {
    if buf.len() < 5 {
        return None;
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if buf.len() < 5 + len {
        return None;
    }
    buf.advance(5);
    let message = buf.split_to(len);
    Some(M::decode(message.freeze()).unwrap_or_default())
}

fn send_message<M: Message>(send: &mut h2::SendStream<Bytes>, message: &M) -> bool {
    let mut framed = BytesMut::new();
    framed.put_u8(0);
    framed.put_u32(message.encoded_len() as u32);
    message.encode(&mut framed).is_ok() && send.send_data(framed.freeze(), false).is_ok()
}

/// The name of a resource: field 1 of every xDS type served here (`name`,
/// or an assignment's `cluster_name`), read off its encoding.
fn resource_name(mut value: &[u8]) -> String {
    let varint = |b: &mut &[u8]| -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    };
    while let Some(key) = varint(&mut value) {
        let skip = match key & 7 {
            0 => varint(&mut value).map(|_| 0),
            1 => Some(8),
            2 => varint(&mut value),
            5 => Some(4),
            _ => None,
        };
        let Some(len) = skip.and_then(|l| usize::try_from(l).ok()).filter(|l| *l <= value.len()) else { break };
        if key == (1 << 3 | 2) {
            return String::from_utf8_lossy(&value[..len]).into_owned();
        }
        value = &value[len..];
    }
    String::new()
}

/// What a delta stream's client subscribed to for one type, and what it has.
#[derive(Default)]
struct DeltaSubscription {
    wildcard: bool,
    names: HashSet<String>,
    /// The resources the client has, by name, at their version.
    known: BTreeMap<String, String>,
    /// Nothing was sent yet for this type on the stream.
    unanswered: bool,
    /// The push (`State::changes`) whose state the client was last brought
    /// to, with no request since: the next push's changes are all to look at.
    synced: Option<u64>,
}

/// A delta stream: each request updates its type's subscription (and is
/// kept), then every type gets what changed for it.
async fn delta_stream(
    method: String,
    mut body: h2::RecvStream,
    mut send: h2::SendStream<Bytes>,
    mut pushed: tokio::sync::mpsc::UnboundedReceiver<()>,
    state: Arc<(Mutex<State>, Condvar)>,
) {
    let mut buf = BytesMut::new();
    let mut subscriptions: BTreeMap<String, DeltaSubscription> = BTreeMap::new();
    loop {
        tokio::select! {
            chunk = body.data() => {
                let Some(Ok(chunk)) = chunk else { return };
                let _ = body.flow_control().release_capacity(chunk.len());
                buf.extend_from_slice(&chunk);
                while let Some(request) = take_message::<DeltaDiscoveryRequest>(&mut buf) {
                    let sub = subscriptions.entry(request.type_url.clone()).or_insert_with(|| DeltaSubscription {
                        // Envoy's legacy wildcard: a first request naming nothing.
                        wildcard: request.resource_names_subscribe.is_empty(),
                        known: request.initial_resource_versions.clone().into_iter().collect(),
                        unanswered: true,
                        ..Default::default()
                    });
                    sub.synced = None;
                    for name in &request.resource_names_subscribe {
                        if name == "*" {
                            sub.wildcard = true;
                        } else {
                            sub.names.insert(name.clone());
                        }
                    }
                    for name in &request.resource_names_unsubscribe {
                        if name == "*" {
                            sub.wildcard = false;
                        } else {
                            sub.names.remove(name);
                            sub.known.remove(name);
                        }
                    }
                    let (lock, cond) = &*state;
                    lock.lock().expect("state").delta_requests.push((method.clone(), request));
                    cond.notify_all();
                }
                if !send_delta(&state, &mut send, &mut subscriptions) {
                    return;
                }
            }
            woken = pushed.recv() => {
                if woken.is_none() || !send_delta(&state, &mut send, &mut subscriptions) {
                    return;
                }
            }
        }
    }
}

/// Sends each subscribed type the resources the client lacks at their
/// version and the names it has that are gone (and a first answer, even an
/// empty one, to a type never answered that had no versions to offer).
fn send_delta(
    state: &Arc<(Mutex<State>, Condvar)>,
    send: &mut h2::SendStream<Bytes>,
    subscriptions: &mut BTreeMap<String, DeltaSubscription>,
) -> bool {
    let mut s = state.0.lock().expect("state");
    for (type_url, sub) in subscriptions.iter_mut() {
        // Borrowed, not cloned: with 10,000 resources a copy of the type's
        // state per wake-up was the bench's control plane's main cost.
        let Some((system_version_info, _)) = s.snapshots.get(type_url) else { continue };
        let system_version_info = system_version_info.clone();
        let empty = BTreeMap::new();
        let all = s.versions.get(type_url).unwrap_or(&empty);
        let (push, touched) = s.changes.get(type_url).map_or((0, None), |(n, t)| (*n, t.as_ref()));
        if sub.synced == Some(push) {
            continue;
        }
        let wants = |name: &String| sub.wildcard || sub.names.contains(name);
        // Only what the last push touched, when the client saw the one before.
        let look_at: Vec<&String> = match touched {
            Some(touched) if sub.synced == Some(push.wrapping_sub(1)) => touched.iter().collect(),
            _ => all.keys().chain(sub.known.keys()).collect(),
        };
        let mut resources = Vec::new();
        let mut removed_resources = Vec::new();
        for name in look_at {
            match all.get(name).filter(|_| wants(name)) {
                Some((version, any)) if sub.known.get(name) != Some(version) => resources.push(Resource {
                    name: name.clone(),
                    version: version.clone(),
                    resource: Some(any.clone()),
                    ..Default::default()
                }),
                Some(_) => {}
                None if sub.known.contains_key(name) => removed_resources.push(name.clone()),
                None => {}
            }
        }
        // A name both known and in the state is looked at twice by a full pass.
        resources.sort_by(|a, b| a.name.cmp(&b.name));
        resources.dedup_by(|a, b| a.name == b.name);
        removed_resources.sort();
        removed_resources.dedup();
        sub.synced = Some(push);
        let first = std::mem::take(&mut sub.unanswered) && sub.known.is_empty();
        if resources.is_empty() && removed_resources.is_empty() && !first {
            continue;
        }
        for r in &resources {
            sub.known.insert(r.name.clone(), r.version.clone());
        }
        for name in &removed_resources {
            sub.known.remove(name);
        }
        s.nonces += 1;
        let response = DeltaDiscoveryResponse {
            system_version_info,
            resources,
            type_url: type_url.clone(),
            removed_resources,
            nonce: format!("n{}", s.nonces),
            ..Default::default()
        };
        if !send_message(send, &response) {
            return false;
        }
    }
    true
}
