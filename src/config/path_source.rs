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

use std::collections::{HashMap, HashSet};
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
///
/// A resource byte for byte as one of `checked`'s (the subscription's last
/// accepted response) is taken from there unchecked: a state-of-the-world
/// response repeats every resource, and with thousands of them the schema
/// check of the unchanged ones was most of an update's cost.
pub fn decode_pushed(
    version_info: &str,
    pushed: &[(&str, &[u8])],
    type_name: &str,
    inventory: &Inventory,
    checked: &CheckedResources,
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
        let resource = match checked.get(value) {
            Some(known) => known.clone(),
            None => {
                let msg = prost_reflect::DynamicMessage::decode(desc.clone(), *value)
                    .map_err(|e| path.error(format!("cannot decode {type_name}: {e}")))?;
                checked_resource(msg, type_name, Vec::new(), &mut path, inventory)?
            }
        };
        push_unique(&mut resources, &mut names, resource, type_name, &path)?;
    }
    Ok(DiscoveryFile { version_info: version_info.to_string(), resources })
}

/// The resources of a subscription's last accepted response that passed the
/// checks unchanged (their encoding is what was pushed), by a hash of those
/// bytes; `decode_pushed` compares the bytes themselves before it trusts one.
#[derive(Debug, Default)]
pub struct CheckedResources {
    by_hash: HashMap<u64, Resource>,
}

impl CheckedResources {
    fn get(&self, pushed: &[u8]) -> Option<&Resource> {
        self.by_hash.get(&hash_of(pushed)).filter(|r| r.encoded == pushed)
    }

    /// After `file` (decoded from `pushed`, in its order) was accepted: its
    /// resources are the ones to know, and no other.
    pub fn remember(&mut self, pushed: &[(&str, &[u8])], file: &DiscoveryFile) {
        self.by_hash.clear();
        for ((_, value), resource) in pushed.iter().zip(&file.resources) {
            if resource.encoded == *value {
                self.by_hash.insert(hash_of(value), resource.clone());
            }
        }
    }
}

fn hash_of(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
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
    fn a_repeated_resource_is_taken_from_the_last_accepted_and_a_changed_one_is_checked() {
        use envoy_types::pb::envoy::config::cluster::v3::{Cluster, OutlierDetection};
        use prost::Message;
        const INVENTORY: Inventory = Inventory {
            tables: &[supported::SUPPORTED_FIELDS],
            places: supported::PLACES,
            is_extension: |_| false,
            skips_lb_policy: |_| false,
        };
        let url = format!("type.googleapis.com/{CLUSTER_TYPE}");
        let a = Cluster { name: "a".into(), ..Default::default() }.encode_to_vec();
        let b = Cluster { name: "b".into(), ..Default::default() }.encode_to_vec();
        let pushed = [(url.as_str(), a.as_slice()), (url.as_str(), b.as_slice())];
        let mut checked = CheckedResources::default();
        let first = decode_pushed("1", &pushed, CLUSTER_TYPE, &INVENTORY, &checked).expect("accepted");
        checked.remember(&pushed, &first);
        assert_eq!(checked.by_hash.len(), 2);
        let again = decode_pushed("2", &pushed, CLUSTER_TYPE, &INVENTORY, &checked).expect("accepted");
        let names: Vec<&str> = again.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(again.resources[0].encoded, a);
        // Same name, other bytes: checked again, and refused.
        let refused =
            Cluster { name: "b".into(), outlier_detection: Some(OutlierDetection::default()), ..Default::default() };
        let refused = refused.encode_to_vec();
        let pushed = [(url.as_str(), a.as_slice()), (url.as_str(), refused.as_slice())];
        let e = decode_pushed("3", &pushed, CLUSTER_TYPE, &INVENTORY, &checked).map(|_| ()).expect_err("refused");
        assert!(e.to_string().starts_with("resources[1].outlier_detection: "), "{e}");
        // Remembering keeps only the last accepted response's resources.
        checked.remember(&pushed[..1], &first);
        assert_eq!(checked.by_hash.len(), 1);
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
