//! SDS (Envoy's `SdsApi`): each `SdsSecretConfig` with an `sds_config` a TLS
//! context named is one subscription, to its file (a `DiscoveryResponse`
//! holding that one `Secret`) or to a management server (the ADS stream or
//! one of its own: an entry of the stream's `SdsWatch`, `sds_watch`).
//!
//! A file's subscription is `PathSubscription`'s, so the file is read, checked,
//! counted (`sds.<secret>.*`, Envoy's names) and followed as CDS and LDS files
//! are; a pushed secret goes through the same `apply`. The secret itself is
//! checked and put into every context that reads it by the TLS extension
//! (`SdsSecret::update`), all or none. As Envoy, the directory of each file
//! the secret names is watched too: a file moved into one reads the secret's
//! files again (`key_rotation_failed` counts a failure, once per file watched,
//! as Envoy's one watch per file). A context names its secrets as it is built,
//! so the files of the bootstrap's contexts are read before clusters and
//! listeners start (`start_pending`), and those of a CDS or LDS resource before
//! it is applied; a secret of a management server is asked for then, and what
//! names it warms until it comes (`initialized`).

use std::cell::RefCell;
use std::sync::Arc;

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use prost::Message;

use super::start::Started;
use super::{resource_path, AppliedState, PathSubscription, ResourceApi};
use crate::config::config_source::Source;
use crate::config::path_source::DiscoveryFile;
use crate::config::{ConfigError, FieldPath};
use crate::define_stats;
use crate::event::file_watcher::MoveWatcher;
use crate::extensions::transport_sockets::tls::{SdsSecret, SecretManager, SECRET_TYPE};
use crate::stats::Store;

define_stats! {
    /// `sds.<secret>.key_rotation_failed`: a reload of the files the secret
    /// names, after one was moved into place, that failed.
    #[derive(Debug)]
    pub struct SdsStats {
        counter key_rotation_failed,
    }
}

/// One SDS secret's subscription.
pub struct SdsApi {
    secret: Arc<SdsSecret>,
    secrets: Arc<SecretManager>,
    /// What `PathSubscription` records (its version); the secret itself is
    /// kept by `SdsSecret`, its files read in, for `/config_dump`.
    state: RefCell<AppliedState>,
    stats: SdsStats,
    /// A task per file the secret names, watching its directory.
    file_watches: RefCell<Vec<tokio::task::JoinHandle<()>>>,
}

impl SdsApi {
    pub fn secret(&self) -> &Arc<SdsSecret> {
        &self.secret
    }

    /// The subscription ended: the secret is forgotten.
    pub fn forget(&self) {
        self.secrets.forget(&self.secret);
    }

    /// Watches the directory of each file the secret now names, in place of
    /// the previous watches.
    fn watch_files(&self) {
        let mut watches = self.file_watches.borrow_mut();
        watches.drain(..).for_each(|w| w.abort());
        for file in self.secret.named_files() {
            let dir = match file.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => std::path::PathBuf::from("."),
            };
            let mut watcher = match MoveWatcher::new(&dir, None) {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!("sds: secret {}: cannot watch {}: {e}", self.secret.name, dir.display());
                    continue;
                }
            };
            let (secret, secrets) = (self.secret.clone(), self.secrets.clone());
            let failed = self.stats.key_rotation_failed.clone();
            watches.push(tokio::task::spawn_local(async move {
                while watcher.moved().await.is_ok() {
                    if let Err(e) = secret.reload_files(&secrets) {
                        failed.inc();
                        tracing::warn!("Failed to reload certificates: secret {}: {e}", secret.name);
                    }
                }
            }));
        }
    }
}

impl Drop for SdsApi {
    fn drop(&mut self) {
        self.file_watches.get_mut().drain(..).for_each(|w| w.abort());
    }
}

impl ResourceApi for SdsApi {
    const TYPE: &'static str = SECRET_TYPE;
    const NAME: &'static str = "sds";

    async fn apply(&self, file: &DiscoveryFile) -> Result<(), ConfigError> {
        let name = &self.secret.name;
        // Envoy's checks and messages (`SdsApi::onConfigUpdate`).
        let resource = match file.resources.as_slice() {
            [] => {
                return Err(FieldPath::starting_at("resources")
                    .error(format!("Missing SDS resources for {name} in onConfigUpdate()")))
            }
            [one] => one,
            more => {
                return Err(
                    FieldPath::starting_at("resources").error(format!("Unexpected SDS secrets length: {}", more.len()))
                )
            }
        };
        let path = resource_path(0);
        if &resource.name != name {
            return Err(
                path.field_error("name", format!("Unexpected SDS secret (expecting {name}): {}", resource.name))
            );
        }
        let secret = Secret::decode(resource.encoded.as_slice())
            .map_err(|e| path.error(format!("cannot decode the secret: {e}")))?;
        self.secret.update(&self.secrets, secret, &file.version_info, &path)?;
        self.watch_files();
        tracing::info!("sds: secret {name} updated to version '{}'", file.version_info);
        Ok(())
    }

    fn state(&self) -> &RefCell<AppliedState> {
        &self.state
    }
}

/// Starts a subscription for each SDS secret no one follows yet: a file is
/// read once now, then followed by a local task, whose handle is returned; a
/// management server (with `streams`; without, such secrets wait for the next
/// call) is asked for the secret, which is `initialized` by its first answer
/// or `initial_fetch_timeout`. Only the secrets `wanted` takes are started.
pub async fn start_pending(
    secrets: &Arc<SecretManager>,
    store: &Arc<Store>,
    streams: Option<&Started>,
    wanted: impl Fn(&SdsSecret) -> bool,
) -> std::io::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    let unstarted =
        secrets.take_unstarted(|s| (streams.is_some() || matches!(s.source.source, Source::Path(_))) && wanted(s));
    for secret in unstarted {
        let prefix = format!("sds.{}.", secret.name);
        let (source, timeout) = (secret.source.source.clone(), secret.source.initial_fetch_timeout);
        let api = SdsApi {
            secret,
            secrets: secrets.clone(),
            state: RefCell::default(),
            stats: SdsStats::new(store, &prefix),
            file_watches: RefCell::default(),
        };
        match (source, streams) {
            (Source::Path(path), _) => {
                let sub = PathSubscription::new(path, store, &prefix);
                let watcher = sub.start(&api).await?;
                api.secret.initialize();
                tasks.push(tokio::task::spawn_local(async move { sub.follow(&api, watcher).await }));
            }
            (source @ (Source::Ads | Source::Grpc(_)), Some(streams)) => match streams.sds_watch(&source) {
                Some(watch) => super::sds_watch::add(&watch, api, store, &prefix, timeout),
                None => {
                    return Err(std::io::Error::other(format!(
                        "sds: secret {}: ADS must be configured to support an ADS config source",
                        api.secret.name
                    )))
                }
            },
            (_, None) => {}
        }
    }
    Ok(tasks)
}
