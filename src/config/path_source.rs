//! File-based xDS (Envoy's filesystem subscription): a `ConfigSource` that names
//! a file, and the `DiscoveryResponse` read from it.
//!
//! The file is the whole state of one resource type (state of the world): what it
//! lists is what should run. It is read, and each resource checked, as the
//! bootstrap is (`proto_json` → `validate` → `supported`), so a resource Courier
//! cannot act on fails the same way whether it arrives at start-up or later. The
//! outcome is all or nothing: one bad resource rejects the whole file, and the
//! caller keeps what runs. Envoy tells apart a file it cannot read or parse
//! (`update_failure`) from one whose content it refuses (`update_rejected`), and
//! so does [`UpdateError`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use envoy_types::pb::envoy::config::core::v3::{config_source::ConfigSourceSpecifier, ConfigSource};
use serde_json::Value as Json;

use super::supported::Inventory;
use super::{bootstrap, descriptor, encode, proto_json, source_lines, ConfigError, FieldPath};

pub const CLUSTER_TYPE: &str = "envoy.config.cluster.v3.Cluster";
pub const LISTENER_TYPE: &str = "envoy.config.listener.v3.Listener";
pub const ENDPOINT_TYPE: &str = "envoy.config.endpoint.v3.ClusterLoadAssignment";

/// Where a subscription's file is, and what a move into which directory reloads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathSource {
    pub path: PathBuf,
    /// `path_config_source.watched_directory`: any file moved into it reloads
    /// `path` (an atomic swap of a symlinked directory, as Kubernetes does);
    /// without it, only a move onto `path` itself does.
    pub watched_directory: Option<PathBuf>,
}

impl PathSource {
    /// Reads `dynamic_resources.<field>`: a `path_config_source`, or the
    /// deprecated `path`. The supported-fields check has refused every other
    /// specifier. `resource_api_version` is not read: as in Envoy 1.40, a file's
    /// resources say their version by their `@type` (envoyproxy/examples'
    /// `dynamic-config-fs` sets none, and Envoy takes V2 as well).
    pub fn from_proto(source: &ConfigSource, path: &FieldPath) -> Result<PathSource, ConfigError> {
        #[allow(deprecated)]
        match &source.config_source_specifier {
            Some(ConfigSourceSpecifier::Path(p)) => {
                Ok(PathSource { path: non_empty(p, path, "path")?, watched_directory: None })
            }
            Some(ConfigSourceSpecifier::PathConfigSource(p)) => {
                let mut field = path.clone();
                field.push_field("path_config_source");
                let watched_directory = match &p.watched_directory {
                    Some(w) => Some(non_empty(&w.path, &field, "watched_directory.path")?),
                    None => None,
                };
                Ok(PathSource { path: non_empty(&p.path, &field, "path")?, watched_directory })
            }
            _ => Err(path.error("Courier reads xDS from files only: set path_config_source")),
        }
    }

    /// Envoy 1.40's check as a subscription to the file is made (at start-up
    /// even in validate mode, or as a CDS cluster is built): the file is there.
    pub fn check_exists(&self, path: &FieldPath) -> Result<(), ConfigError> {
        if self.path.exists() {
            return Ok(());
        }
        Err(path.error(format!(
            "paths must refer to an existing path in the system: '{}' does not exist",
            self.path.display()
        )))
    }

    /// The directory to watch for moves, and the file name a move must have
    /// (`None`: any).
    pub fn watch(&self) -> (PathBuf, Option<std::ffi::OsString>) {
        match &self.watched_directory {
            Some(dir) => (dir.clone(), None),
            None => {
                let dir = match self.path.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                (dir, self.path.file_name().map(|n| n.to_os_string()))
            }
        }
    }
}

fn non_empty(p: &str, path: &FieldPath, field: &str) -> Result<PathBuf, ConfigError> {
    if p.is_empty() {
        return Err(path.field_error(field, "value length must be at least 1 characters"));
    }
    Ok(PathBuf::from(p))
}

/// One checked resource of a discovery file: its name (an assignment's
/// `cluster_name`) and its encoding (what
/// the caller decodes into the typed message, compares with the running one to
/// tell a change, and keeps for `/config_dump`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub name: String,
    pub encoded: Vec<u8>,
}

/// A discovery file whose every resource passed the checks.
#[derive(Debug, Clone)]
pub struct DiscoveryFile {
    pub version_info: String,
    pub resources: Vec<Resource>,
}

/// Why a discovery file was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateError {
    /// The file could not be read or parsed (Envoy's `update_failure`).
    Failure(String),
    /// Its content was refused (Envoy's `update_rejected`).
    Rejected(ConfigError),
}

impl std::fmt::Display for UpdateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpdateError::Failure(e) => f.write_str(e),
            UpdateError::Rejected(e) => e.fmt(f),
        }
    }
}

/// The top-level fields of a `DiscoveryResponse` that a file may hold. Those
/// only a management server sends (`nonce`, `control_plane`) mean nothing here.
const RESPONSE_FIELDS: &[&str] = &["version_info", "resources", "type_url", "nonce", "canary", "control_plane"];

/// Reads `path` as a `DiscoveryResponse` (JSON by the `.json` extension, else
/// YAML, as Envoy) whose resources are all of `type_name`, checking each
/// against `inventory`; a refused resource's errors list all its problems, each
/// with its line in the file.
pub fn read(path: &Path, type_name: &str, inventory: &Inventory) -> Result<DiscoveryFile, UpdateError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| UpdateError::Failure(format!("cannot read {shown}: {e}")))?;
    let json = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        super::bootstrap::parse_yaml(&text)
    }
    .map_err(|e| UpdateError::Failure(format!("in {shown}: {e}")))?;
    let Json::Object(top) = json else {
        return Err(UpdateError::Failure(format!("in {shown}: a DiscoveryResponse must be a mapping")));
    };
    if let Some(unknown) = top.keys().find(|k| !RESPONSE_FIELDS.contains(&k.as_str())) {
        return Err(UpdateError::Failure(format!("in {shown}: DiscoveryResponse has no field '{unknown}'")));
    }
    let version_info = match top.get("version_info") {
        None | Some(Json::Null) => String::new(),
        Some(Json::String(s)) => s.clone(),
        // YAML reads `version_info: 2` as a number; proto3-JSON accepts it as text.
        Some(Json::Number(n)) => n.to_string(),
        Some(_) => return Err(UpdateError::Failure(format!("in {shown}: version_info must be a string"))),
    };
    let items = match top.get("resources") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(items)) => items.clone(),
        Some(_) => return Err(UpdateError::Failure(format!("in {shown}: resources must be a list"))),
    };
    let desc = descriptor::message(type_name)
        .ok_or_else(|| UpdateError::Failure(format!("{type_name} missing from the schema")))?;
    let mut resources: Vec<Resource> = Vec::with_capacity(items.len());
    let mut names = HashSet::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let mut path = FieldPath::starting_at(&format!("resources[{i}]"));
        // The text is still at hand: a refused resource's errors say their lines.
        let rejected = |e| UpdateError::Rejected(source_lines::locate(e, &[(None, &text)]));
        let resource = decode_resource(&desc, type_name, item, &mut path, inventory).map_err(rejected)?;
        push_unique(&mut resources, &mut names, resource, type_name, &path).map_err(rejected)?;
    }
    Ok(DiscoveryFile { version_info, resources })
}

/// The resources of a `DiscoveryResponse` from a management server, each an
/// `Any` `(type_url, value)` checked exactly as a file's resource is (so a
/// field Courier cannot act on, or one the schema lacks, is refused by its
/// path, `resources[i].field`).
pub fn decode_pushed(
    version_info: &str,
    pushed: &[(&str, &[u8])],
    type_name: &str,
    inventory: &Inventory,
) -> Result<DiscoveryFile, ConfigError> {
    let desc = descriptor::message(type_name)
        .ok_or_else(|| ConfigError::new("", format!("{type_name} missing from the schema")))?;
    let mut resources: Vec<Resource> = Vec::with_capacity(pushed.len());
    let mut names = HashSet::with_capacity(pushed.len());
    for (i, (type_url, value)) in pushed.iter().enumerate() {
        let mut path = FieldPath::starting_at(&format!("resources[{i}]"));
        if descriptor::type_name(type_url) != type_name {
            return Err(path.field_error("@type", format!("'{type_url}' is not the subscription's type {type_name}")));
        }
        let msg = prost_reflect::DynamicMessage::decode(desc.clone(), *value)
            .map_err(|e| path.error(format!("cannot decode {type_name}: {e}")))?;
        let resource = checked_resource(msg, type_name, Vec::new(), &mut path, inventory)?;
        push_unique(&mut resources, &mut names, resource, type_name, &path)?;
    }
    Ok(DiscoveryFile { version_info: version_info.to_string(), resources })
}

/// Adds `resource` unless one of its name is there already (refused).
/// `names` holds those of `resources` (a set: a response may hold thousands).
fn push_unique(
    resources: &mut Vec<Resource>,
    names: &mut HashSet<String>,
    resource: Resource,
    type_name: &str,
    path: &FieldPath,
) -> Result<(), ConfigError> {
    if !names.insert(resource.name.clone()) {
        return Err(path.field_error("name", format!("duplicate {type_name} name '{}'", resource.name)));
    }
    resources.push(resource);
    Ok(())
}

fn decode_resource(
    desc: &prost_reflect::MessageDescriptor,
    type_name: &str,
    item: Json,
    path: &mut FieldPath,
    inventory: &Inventory,
) -> Result<Resource, ConfigError> {
    let Json::Object(mut fields) = item else {
        return Err(path.error("a resource must be a mapping with an @type"));
    };
    let type_url = match fields.remove("@type") {
        Some(Json::String(t)) => t,
        _ => return Err(path.field_error("@type", "a resource needs an @type")),
    };
    if descriptor::type_name(&type_url) != type_name {
        return Err(path.field_error("@type", format!("'{type_url}' is not the subscription's type {type_name}")));
    }
    let (msg, errors) = proto_json::decode_partial(desc, &Json::Object(fields), path);
    checked_resource(msg, type_name, errors, path, inventory)
}

/// A decoded resource once validated and checked against `inventory` (as the
/// bootstrap is), with its name and encoding.
fn checked_resource(
    msg: prost_reflect::DynamicMessage,
    type_name: &str,
    errors: Vec<ConfigError>,
    path: &mut FieldPath,
    inventory: &Inventory,
) -> Result<Resource, ConfigError> {
    bootstrap::check_decoded(&msg, errors, path, inventory)?;
    // An assignment is named by the cluster it is for.
    let name_field = if type_name == ENDPOINT_TYPE { "cluster_name" } else { "name" };
    let name = match msg.get_field_by_name(name_field).as_deref() {
        Some(prost_reflect::Value::String(n)) => n.clone(),
        _ => String::new(),
    };
    Ok(Resource { name, encoded: encode::encode_to_vec(&msg) })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::supported;

    #[test]
    fn a_refused_resource_lists_its_problems_with_their_lines() {
        const INVENTORY: Inventory = Inventory {
            tables: &[supported::SUPPORTED_FIELDS],
            places: supported::PLACES,
            is_extension: |_| false,
            skips_lb_policy: |_| false,
        };
        let path = std::env::temp_dir().join(format!("courier-cds-lines-{}.yaml", std::process::id()));
        let text = "\
resources:
- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: a
- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: b
  conect_timeout: 1s
  outlier_detection: {}
";
        std::fs::write(&path, text).expect("write");
        let e = read(&path, CLUSTER_TYPE, &INVENTORY).map(|_| ()).expect_err("refused");
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            e.to_string(),
            "resources[1].conect_timeout: unknown field in envoy.config.cluster.v3.Cluster \
             (did you mean 'connect_timeout'?) (line 6)\n  and 1 more:\n  resources[1].outlier_detection: \
             field 'outlier_detection' of envoy.config.cluster.v3.Cluster is not supported by Courier (line 7)"
        );
    }

    #[test]
    fn watch_is_the_file_directory_and_name_or_the_watched_directory() {
        let s = PathSource { path: "/etc/courier/cds.yaml".into(), watched_directory: None };
        assert_eq!(s.watch(), ("/etc/courier".into(), Some("cds.yaml".into())));
        let s = PathSource { path: "cds.yaml".into(), watched_directory: None };
        assert_eq!(s.watch().0, PathBuf::from("."));
        let s = PathSource { path: "/a/cds.yaml".into(), watched_directory: Some("/b".into()) };
        assert_eq!(s.watch(), ("/b".into(), None));
    }
}
