//! Starts xDS subscriptions on their sources, and waits for their first update
//! as Envoy's init manager does: a file is read once; a management server's
//! first response (accepted or not) is awaited up to `initial_fetch_timeout`.
//! Subscribing and being ready are two steps, as the server asks for listeners
//! (Envoy does so before its CDS ACK) before its workers run, and applies them
//! after. The ADS stream is opened by the first subscription that names it and
//! shared by the next; a CDS or LDS subscription with an `api_config_source`
//! gets a stream of its own, and EDS clusters share one per source (each
//! stream's `EdsWatch`), and so do route configs (its `RdsWatch`) and SDS
//! secrets (its `SdsWatch`). What keeps running (file watches, streams) is handed
//! back as tasks, aborted as the server drains.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;

use super::eds_watch::EdsWatch;
use super::grpc_mux::{GrpcMux, ADS_METHOD, EDS_METHOD, RDS_METHOD, RTDS_METHOD, SDS_METHOD};
use super::grpc_subscription::{GrpcSubscription, Watch};
use super::rds_watch::RdsWatch;
use super::rtds_watch::RtdsWatch;
use super::sds_watch::SdsWatch;
use super::source::{GrpcSource, Source, SubscriptionSource};
use super::{PathSubscription, ResourceApi};
use crate::server::Server;
use crate::stats::Store;
use crate::upstream::ClusterManager;

/// A subscription not yet `ready`.
pub enum Subscribed<R> {
    Path(PathSubscription, R),
    Grpc(Rc<GrpcSubscription<R>>, Option<std::time::Duration>),
    None,
}

/// The streams and watches started so far, shared by whatever subscribes (the
/// server at start-up, CDS for the EDS clusters it adds).
pub struct Started {
    node: Node,
    store: Arc<Store>,
    cm: Rc<ClusterManager>,
    /// `dynamic_resources.ads_config`.
    ads_source: Option<GrpcSource>,
    tasks: RefCell<Vec<tokio::task::JoinHandle<()>>>,
    ads: RefCell<Option<Rc<GrpcMux>>>,
    /// The endpoint watch of each stream EDS clusters use, by the stream's
    /// source (`None`: the ADS stream).
    eds: WatchesByStream<EdsWatch>,
    /// The route watch of each stream route configs use, by the stream's
    /// source (`None`: the ADS stream).
    rds: WatchesByStream<RdsWatch>,
    /// The secret watch of each stream SDS secrets use, likewise.
    sds: WatchesByStream<SdsWatch>,
    /// The runtime watch of the ADS stream, which its RTDS layers share.
    rtds: WatchesByStream<RtdsWatch>,
}

/// The watches of one resource type, by the stream each is on.
type WatchesByStream<W> = RefCell<Vec<(Option<GrpcSource>, Rc<W>)>>;

impl Started {
    pub fn new(tasks: Vec<tokio::task::JoinHandle<()>>, server: &Server, cm: &Rc<ClusterManager>) -> Self {
        Started {
            node: server.node.clone(),
            store: server.store.clone(),
            cm: cm.clone(),
            ads_source: server.dynamic.ads.clone(),
            tasks: RefCell::new(tasks),
            ads: RefCell::default(),
            eds: RefCell::default(),
            rds: RefCell::default(),
            rtds: RefCell::default(),
            sds: RefCell::default(),
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Everything that keeps running, for the server to stop as it drains.
    pub fn take_tasks(&self) -> Vec<tokio::task::JoinHandle<()>> {
        std::mem::take(&mut self.tasks.borrow_mut())
    }

    pub fn push_task(&self, task: tokio::task::JoinHandle<()>) {
        self.tasks.borrow_mut().push(task);
    }

    /// Subscribes `api` to `source`: a management server is asked for its
    /// resources now; `ready` then lets them apply. `prefix` names its stats
    /// (`cluster_manager.cds.`), `method` its own stream's service method.
    pub fn subscribe<R: ResourceApi + 'static>(
        &self,
        source: SubscriptionSource,
        api: R,
        prefix: &str,
        method: &'static str,
    ) -> Subscribed<R> {
        let mux = match source.source {
            Source::Path(path) => return Subscribed::Path(PathSubscription::new(path, &self.store, prefix), api),
            Source::Ads => match self.ads_mux() {
                Some(mux) => mux,
                // `DynamicResourcesConfig::from_proto` refused an `ads` source without one.
                None => return Subscribed::None,
            },
            Source::Grpc(grpc) => self.start_mux(grpc, method),
        };
        let sub = Rc::new(GrpcSubscription::new(api, &self.store, prefix));
        mux.subscribe(sub.clone());
        Subscribed::Grpc(sub, source.initial_fetch_timeout)
    }

    /// Lets a subscription apply what it gets, and waits for its first update:
    /// a file's first read, or a management server's first response (up to
    /// `initial_fetch_timeout`).
    pub async fn ready<R: ResourceApi + 'static>(&self, subscribed: Subscribed<R>) -> std::io::Result<()> {
        match subscribed {
            Subscribed::Path(sub, api) => {
                let watcher = sub.start(&api).await?;
                // Updates apply while the first one initializes (a listener
                // that warms does not hold a newer file back), as in Envoy.
                let api = Rc::new(api);
                let following = api.clone();
                self.push_task(tokio::task::spawn_local(async move { sub.follow(&*following, watcher).await }));
                api.started_initialized().await;
            }
            Subscribed::Grpc(sub, timeout) => {
                sub.open();
                sub.initialized(timeout).await;
                sub.api().started_initialized().await;
            }
            Subscribed::None => {}
        }
        Ok(())
    }

    /// The endpoint watch of the stream an EDS cluster's `source` names (the
    /// ADS stream, or one per `api_config_source`), subscribed on first use.
    pub fn eds_watch(&self, source: &Source) -> Option<Rc<EdsWatch>> {
        self.watch(&self.eds, source, EDS_METHOD, super::eds_watch::new_watch)
    }

    /// The route watch of the stream `source` names, likewise.
    pub fn rds_watch(&self, source: &Source) -> Option<Rc<RdsWatch>> {
        self.watch(&self.rds, source, RDS_METHOD, super::rds_watch::new_watch)
    }

    /// The secret watch of the stream `source` names, likewise.
    pub fn sds_watch(&self, source: &Source) -> Option<Rc<SdsWatch>> {
        self.watch(&self.sds, source, SDS_METHOD, super::sds_watch::new_watch)
    }

    /// The runtime watch for an RTDS layer from `source`: the ADS stream's
    /// (shared by every layer there, subscribed on first use), or a new stream
    /// of the layer's own, as Envoy opens one per RTDS layer with an
    /// `api_config_source` (checked against Envoy 1.40 with two layers: two
    /// streams).
    pub fn rtds_watch(&self, source: &Source) -> Option<Rc<RtdsWatch>> {
        let Source::Grpc(grpc) = source else {
            return self.watch(&self.rtds, source, RTDS_METHOD, super::rtds_watch::new_watch);
        };
        let mux = self.start_mux(grpc.clone(), RTDS_METHOD);
        let watch = Rc::new(super::rtds_watch::new_watch(&mux));
        mux.subscribe(watch.clone());
        Some(watch)
    }

    /// The watch of `watches`' type on the stream `source` names (the ADS
    /// stream, or one per `api_config_source`, its own service's `method`),
    /// made by `new` and subscribed on first use.
    fn watch<W: Watch + 'static>(
        &self,
        watches: &WatchesByStream<W>,
        source: &Source,
        method: &'static str,
        new: fn(&Rc<GrpcMux>) -> W,
    ) -> Option<Rc<W>> {
        let key = stream_key(source)?;
        if let Some((_, watch)) = watches.borrow().iter().find(|(k, _)| *k == key) {
            return Some(watch.clone());
        }
        let mux = match &key {
            None => self.ads_mux()?,
            Some(grpc) => self.start_mux(grpc.clone(), method),
        };
        let watch = Rc::new(new(&mux));
        mux.subscribe(watch.clone());
        watches.borrow_mut().push((key, watch.clone()));
        Some(watch)
    }

    /// The subscription of route config `name` on the stream `source` names, if any.
    pub fn rds_entry(&self, source: &Source, name: &str) -> Option<Rc<super::rds_watch::Entry>> {
        let key = stream_key(source)?;
        let rds = self.rds.borrow();
        let (_, watch) = rds.iter().find(|(k, _)| *k == key)?;
        super::rds_watch::entry(watch, name)
    }

    /// Ends the subscriptions of the route configs no listener names any
    /// more (once the listeners that did drained).
    pub fn prune_rds(&self, server: &Server) {
        let released = server.route_configs.release_unused();
        if released.is_empty() {
            return;
        }
        for (_, watch) in self.rds.borrow().iter() {
            super::rds_watch::release(watch, &released, &server.rds_states, &server.store);
        }
    }

    /// Ends the subscriptions of the SDS secrets no context reads any more.
    pub fn prune_sds(&self) {
        for (_, watch) in self.sds.borrow().iter() {
            super::sds_watch::prune(watch);
        }
    }

    /// Forgets the EDS clusters CDS replaced or removed.
    pub fn prune_eds(&self) {
        for (_, watch) in self.eds.borrow().iter() {
            watch.prune();
        }
    }

    /// The ADS stream, opened on first use.
    fn ads_mux(&self) -> Option<Rc<GrpcMux>> {
        if let Some(mux) = self.ads.borrow().as_ref() {
            return Some(mux.clone());
        }
        let mux = self.start_mux(self.ads_source.clone()?, ADS_METHOD);
        *self.ads.borrow_mut() = Some(mux.clone());
        Some(mux)
    }

    fn start_mux(&self, grpc: GrpcSource, method: &'static str) -> Rc<GrpcMux> {
        let mux = Rc::new(GrpcMux::new(grpc, method, self.cm.clone(), self.node.clone(), &self.store));
        self.push_task(tokio::task::spawn_local(mux.clone().run()));
        mux
    }
}

/// The stream a management server source names: `Some(None)` for the ADS
/// stream, `Some(source)` for one of its own, `None` for a file.
fn stream_key(source: &Source) -> Option<Option<GrpcSource>> {
    match source {
        Source::Path(_) => None,
        Source::Ads => Some(None),
        Source::Grpc(grpc) => Some(Some(grpc.clone())),
    }
}
