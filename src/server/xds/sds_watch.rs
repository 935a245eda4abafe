//! SDS over a management server's stream (Envoy's SDS subscriptions on a
//! `GrpcMux`): one watch of the secret type per stream (a `NamedWatch`), an
//! `Entry` for every secret fetched there.
//!
//! As RDS and EDS, SDS names its resources: each request lists the secrets
//! subscribed, and is sent again as one is added. A secret goes to the
//! subscription of its name through `SdsApi::apply`, the code a file's goes
//! through; it counts its updates in `sds.<name>.update_*` and is initialized
//! (the listeners and clusters naming it stop warming) by its first response,
//! accepted or not, or by `initial_fetch_timeout` (then with no value: a
//! handshake that needs it fails, counting `*_context_secrets_not_ready`). A
//! delta removal of the secret is accepted and changes nothing, as Envoy's.
//! Once no context reads a secret (its cluster removed), the stream stops
//! asking for it (`prune`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use super::grpc_mux::GrpcMux;
use super::grpc_subscription::LocalBoxFuture;
use super::named_watch::{time_out_initial_fetch, NamedEntry, NamedWatch};
use super::sds::SdsApi;
use super::{ResourceApi, SubscriptionStats};
use crate::config::path_source::DiscoveryFile;
use crate::config::ConfigError;
use crate::extensions::transport_sockets::tls::SECRET_TYPE;
use crate::stats::Store;

/// One secret on the stream.
pub struct Entry {
    api: SdsApi,
    stats: SubscriptionStats,
    /// On a delta stream, the pushed secret's own version: Envoy's secret
    /// takes it, the subscription's stats the response's.
    resource_version: RefCell<Option<String>>,
}

impl NamedEntry for Entry {
    fn resource_name(&self) -> &str {
        &self.api.secret().name
    }

    /// Over once no context reads the secret (its listeners and clusters
    /// are gone): as Envoy's, the stream stops asking for it. The secret is
    /// forgotten then, so that a context naming it later subscribes anew.
    fn done(&self) -> bool {
        let over = !self.api.secret().in_use();
        if over {
            self.api.forget();
        }
        over
    }

    fn stats(&self) -> &SubscriptionStats {
        &self.stats
    }

    fn is_initialized(&self) -> bool {
        self.api.secret().is_initialized()
    }

    /// What names the secret stops warming.
    fn initialize(&self) {
        self.api.secret().initialize();
    }

    fn resource_version(&self, version: &str, _delta: bool) {
        *self.resource_version.borrow_mut() = Some(version.to_string());
    }

    fn apply_one<'a>(&'a self, one: &'a DiscoveryFile) -> LocalBoxFuture<'a, Result<(), ConfigError>> {
        Box::pin(async move {
            let own_version = self.resource_version.borrow_mut().take();
            let applied = match own_version {
                Some(version_info) => {
                    let own = DiscoveryFile { version_info, resources: one.resources.clone() };
                    self.api.apply(&own).await
                }
                None => self.api.apply(one).await,
            };
            self.api.secret().initialize();
            match &applied {
                Ok(()) => {
                    self.stats.accepted(&one.version_info);
                    self.api.state().borrow_mut().version_info.clone_from(&one.version_info);
                }
                Err(e) => tracing::warn!("sds: secret {}: update rejected: {e}", self.api.secret().name),
            }
            applied
        })
    }

    /// Envoy's SDS takes a delta removal of its secret as an accepted update
    /// that changes nothing: the secret keeps serving (checked against 1.40).
    fn removed<'a>(&'a self, version_info: &'a str) -> LocalBoxFuture<'a, ()> {
        Box::pin(async move {
            tracing::warn!("sds: secret {} removed by the server: it keeps serving", self.api.secret().name);
            self.stats.accepted(version_info);
        })
    }
}

/// The secrets of one stream.
pub type SdsWatch = NamedWatch<Entry>;

/// Ends the subscriptions of the secrets no context reads any more: the
/// stream asks without them, and `/config_dump` no longer shows them.
pub fn prune(watch: &SdsWatch) {
    watch.prune();
}

/// A new stream's secret watch.
pub fn new_watch(mux: &Rc<GrpcMux>) -> SdsWatch {
    NamedWatch::new(mux, SECRET_TYPE)
}

/// Subscribes a secret on `watch` (stats under `prefix`, `sds.<name>.`): the
/// stream asks for it. Ends its initialization after `timeout` if no
/// response came by then.
pub fn add(watch: &SdsWatch, api: SdsApi, store: &Store, prefix: &str, timeout: Option<Duration>) {
    let stats = SubscriptionStats::new(store, prefix);
    let entry = Rc::new(Entry { api, stats, resource_version: RefCell::default() });
    watch.push(entry.clone());
    time_out_initial_fetch(&entry, timeout);
}
