//! RTDS (Envoy's `RtdsSubscription`): each `rtds_layer` of `layered_runtime`
//! subscribes to the `Runtime` resource of its name, from a file (a
//! `PathSubscription`, as CDS's) or a management server (an entry of the
//! stream's `RtdsWatch`, as RDS's route configs). `apply` keeps Envoy's checks
//! and messages: exactly one resource, of the layer's name; its `layer` struct
//! is flattened as a static layer is and the runtime loads again, posting the
//! new snapshot to every thread. A layer that cannot be flattened is rejected,
//! and (as Envoy keeps it) fails every load until a good one comes.
//!
//! All layers share Envoy's `runtime.update_*` stats. Envoy's server waits
//! for every RTDS layer's first update (or its `initial_fetch_timeout`) once
//! its static clusters are up and before EDS, CDS and the listeners
//! (`start`); Envoy dumps no runtime in `/config_dump`, nor does Courier.

use std::cell::RefCell;
use std::rc::Rc;

use envoy_types::pb::envoy::service::runtime::v3::Runtime;
use prost::Message;

use super::start::Started;
use super::{resource_path, AppliedState, PathSubscription, ResourceApi};
use crate::config::config_source::Source;
use crate::config::path_source::DiscoveryFile;
use crate::config::{ConfigError, FieldPath};
use crate::runtime::Loader;

/// The resource type RTDS fetches.
pub const RUNTIME_TYPE: &str = "envoy.service.runtime.v3.Runtime";

/// Where RTDS counts its updates: one scope for every layer, as Envoy's.
pub const STAT_PREFIX: &str = "runtime.";

/// One RTDS layer's subscription.
pub struct RtdsApi {
    loader: Rc<Loader>,
    /// The layer's name in `layered_runtime`, and the resource it takes.
    layer: String,
    resource_name: String,
    state: RefCell<AppliedState>,
}

impl RtdsApi {
    pub fn new(loader: Rc<Loader>, layer: &str, resource_name: &str) -> Self {
        RtdsApi {
            loader,
            layer: layer.to_string(),
            resource_name: resource_name.to_string(),
            state: RefCell::default(),
        }
    }

    /// The `Runtime` resource subscribed to.
    pub fn resource_name(&self) -> &str {
        &self.resource_name
    }

    /// Envoy's `onConfigRemoved`: the layer empties, and the runtime loads.
    pub fn remove(&self) {
        tracing::debug!("rtds: clearing layer {}", self.layer);
        if let Err(e) = self.loader.set_rtds_layer(&self.layer, Ok(Default::default())) {
            tracing::warn!("rtds: layer {} removed, the runtime does not load: {e}", self.layer);
        }
    }
}

impl ResourceApi for RtdsApi {
    const TYPE: &'static str = RUNTIME_TYPE;
    const NAME: &'static str = "rtds";

    async fn apply(&self, file: &DiscoveryFile) -> Result<(), ConfigError> {
        let [resource] = file.resources.as_slice() else {
            return Err(FieldPath::starting_at("resources").error(format!(
                "Unexpected RTDS resource length, number of added resources {}, number of removed resources 0",
                file.resources.len()
            )));
        };
        let path = resource_path(0);
        if resource.name != self.resource_name {
            return Err(path.field_error(
                "name",
                format!("Unexpected RTDS runtime (expecting {}): {}", self.resource_name, resource.name),
            ));
        }
        let runtime = Runtime::decode(resource.encoded.as_slice())
            .map_err(|e| path.error(format!("cannot decode the runtime: {e}")))?;
        let values = crate::runtime::layers::flatten_layer(&runtime.layer.unwrap_or_default());
        let held = values.is_err();
        self.loader.set_rtds_layer(&self.layer, values).map_err(|e| {
            // The error is this layer's own, or another RTDS layer's it still holds.
            if held {
                path.field_error("layer", e)
            } else {
                ConfigError::new("", e)
            }
        })?;
        tracing::debug!("rtds: layer {} loaded version {}", self.layer, file.version_info);
        Ok(())
    }

    fn state(&self) -> &RefCell<AppliedState> {
        &self.state
    }
}

/// Starts every RTDS layer's subscription, all at once as Envoy's init
/// manager starts its targets: a file is read once now and then followed; a
/// management server is asked for the resource. Returns once each layer had
/// its first update (or its `initial_fetch_timeout` passed, each counted from
/// now), as Envoy's server waits before its secondary clusters start.
pub async fn start(loader: &Rc<Loader>, streams: &Started) -> std::io::Result<()> {
    let store = streams.store().clone();
    let layers: Vec<(String, String, _)> = loader
        .rtds_layers()
        .map(|(layer, name, source)| (layer.to_string(), name.to_string(), source.clone()))
        .collect();
    let mut fetching = Vec::new();
    for (layer, resource_name, source) in &layers {
        let api = RtdsApi::new(loader.clone(), layer, resource_name);
        match &source.source {
            Source::Path(path) => {
                let sub = PathSubscription::new(path.clone(), &store, STAT_PREFIX);
                let watcher = sub.start(&api).await?;
                streams.push_task(tokio::task::spawn_local(async move { sub.follow(&api, watcher).await }));
            }
            Source::Ads | Source::Grpc(_) => {
                let Some(watch) = streams.rtds_watch(&source.source) else {
                    return Err(std::io::Error::other(format!(
                        "layered_runtime layer {layer}: ADS must be configured to support an ADS config source"
                    )));
                };
                fetching.push(super::rtds_watch::add(&watch, api, &store, source.initial_fetch_timeout));
            }
        }
    }
    for entry in fetching {
        entry.initialized().await;
    }
    if !layers.is_empty() {
        tracing::info!("RTDS has finished initialization");
    }
    Ok(())
}
