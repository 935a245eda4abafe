//! Starts a CDS or LDS subscription on its source, and waits for its first
//! update as Envoy's init manager does: a file is read once; a management
//! server's first response (accepted or not) is awaited up to
//! `initial_fetch_timeout`. Subscribing and being ready are two steps, as the
//! server asks for listeners (Envoy does so before its CDS ACK) before its
//! workers run, and applies them after. The ADS stream is opened by the first subscription
//! that names it and shared by the next; a subscription with an
//! `api_config_source` gets a stream of its own. What keeps running (file
//! watches, streams) is handed back as tasks, aborted as the server drains.

use std::rc::Rc;

use super::grpc_mux::{GrpcMux, ADS_METHOD};
use super::grpc_subscription::GrpcSubscription;
use super::source::{Source, SubscriptionSource};
use super::{PathSubscription, ResourceApi};
use crate::server::Server;
use crate::upstream::ClusterManager;

/// A subscription not yet `ready`.
pub enum Subscribed<R> {
    Path(PathSubscription, R),
    Grpc(Rc<GrpcSubscription<R>>, Option<std::time::Duration>),
    None,
}

/// The streams and watches started so far.
#[derive(Default)]
pub struct Started {
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    ads: Option<Rc<GrpcMux>>,
}

impl Started {
    pub fn new(tasks: Vec<tokio::task::JoinHandle<()>>) -> Self {
        Started { tasks, ads: None }
    }

    /// Subscribes `api` to `source`: a management server is asked for its
    /// resources now; `ready` then lets them apply. `prefix` names its stats
    /// (`cluster_manager.cds.`), `method` its own stream's service method.
    pub fn subscribe<R: ResourceApi + 'static>(
        &mut self,
        server: &Server,
        cm: &Rc<ClusterManager>,
        source: SubscriptionSource,
        api: R,
        prefix: &str,
        method: &'static str,
    ) -> Subscribed<R> {
        let mux = match source.source {
            Source::Path(path) => return Subscribed::Path(PathSubscription::new(path, &server.store, prefix), api),
            Source::Ads => match (&self.ads, &server.dynamic.ads) {
                (Some(mux), _) => mux.clone(),
                (None, Some(grpc)) => {
                    let mux = self.start_mux(server, cm, grpc.clone(), ADS_METHOD);
                    self.ads = Some(mux.clone());
                    mux
                }
                // `DynamicResourcesConfig::from_proto` refused an `ads` source without one.
                (None, None) => return Subscribed::None,
            },
            Source::Grpc(grpc) => self.start_mux(server, cm, grpc, method),
        };
        let sub = Rc::new(GrpcSubscription::new(api, &server.store, prefix));
        mux.subscribe(sub.clone());
        Subscribed::Grpc(sub, source.initial_fetch_timeout)
    }

    /// Lets a subscription apply what it gets, and waits for its first update:
    /// a file's first read, or a management server's first response (up to
    /// `initial_fetch_timeout`).
    pub async fn ready<R: ResourceApi + 'static>(&mut self, subscribed: Subscribed<R>) -> std::io::Result<()> {
        match subscribed {
            Subscribed::Path(sub, api) => {
                let watcher = sub.start(&api).await?;
                self.tasks.push(tokio::task::spawn_local(async move { sub.follow(&api, watcher).await }));
            }
            Subscribed::Grpc(sub, timeout) => {
                sub.open();
                sub.initialized(timeout).await;
            }
            Subscribed::None => {}
        }
        Ok(())
    }

    fn start_mux(
        &mut self,
        server: &Server,
        cm: &Rc<ClusterManager>,
        grpc: super::source::GrpcSource,
        method: &'static str,
    ) -> Rc<GrpcMux> {
        let mux = Rc::new(GrpcMux::new(grpc, method, cm.clone(), server.node.clone(), &server.store));
        self.tasks.push(tokio::task::spawn_local(mux.clone().run()));
        mux
    }
}
