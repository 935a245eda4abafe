//! SDS from files (Envoy's `SdsApi` on a filesystem subscription): each
//! `SdsSecretConfig` with an `sds_config` a TLS context named is one
//! subscription to its file, a `DiscoveryResponse` holding that one `Secret`.
//!
//! The subscription is `PathSubscription`'s, so the file is read, checked,
//! counted (`sds.<secret>.*`, Envoy's names) and followed as CDS and LDS files
//! are; the secret itself is checked and put into every context that reads it
//! by the TLS extension (`SdsSecret::update`), all or none. A context names its
//! secrets as it is built, so the secrets of the bootstrap's contexts are read
//! before clusters and listeners start (`start_pending`), and those of a CDS or
//! LDS resource before it is applied.

use std::cell::RefCell;
use std::sync::Arc;

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use prost::Message;

use super::{resource_path, AppliedState, PathSubscription, ResourceApi};
use crate::config::path_source::DiscoveryFile;
use crate::config::{ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::transport_sockets::tls::{SdsSecret, SecretManager, SECRET_TYPE};
use crate::stats::Store;

define_stats! {
    /// `sds.<secret>.key_rotation_failed`: Envoy counts there a failed reload of
    /// the files a secret names when they change in place; Courier reads them
    /// with each update of the SDS file only, so it stays 0.
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
    _stats: SdsStats,
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
        tracing::info!("sds: secret {name} updated to version '{}'", file.version_info);
        Ok(())
    }

    fn state(&self) -> &RefCell<AppliedState> {
        &self.state
    }
}

/// Starts a subscription for each SDS secret no one follows yet: its file is
/// read once now, then followed by a local task, whose handle is returned.
pub async fn start_pending(
    secrets: &Arc<SecretManager>,
    store: &Arc<Store>,
) -> std::io::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    for secret in secrets.take_unstarted() {
        let prefix = format!("sds.{}.", secret.name);
        let sub = PathSubscription::new(secret.source.clone(), store, &prefix);
        let api = SdsApi {
            secret,
            secrets: secrets.clone(),
            state: RefCell::default(),
            _stats: SdsStats::new(store, &prefix),
        };
        let watcher = sub.start(&api).await?;
        tasks.push(tokio::task::spawn_local(async move { sub.follow(&api, watcher).await }));
    }
    Ok(tasks)
}
