//! Reads the bootstrap from `--config-path` and `--config-yaml` as Envoy does: the
//! file is parsed by its extension (JSON, or YAML for anything else), the inline
//! YAML is merged over it with protobuf merge semantics (scalars replaced, messages
//! merged, lists appended), and the result is validated as a whole.

use std::path::{Path, PathBuf};

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use prost::Message;
use prost_reflect::{DynamicMessage, ReflectMessage};
use serde_json::Value as Json;

use super::supported::{self, Inventory};
use super::{descriptor, encode, proto_json, validate, ConfigError, FieldPath};

pub const BOOTSTRAP_TYPE: &str = "envoy.config.bootstrap.v3.Bootstrap";

/// Where the bootstrap comes from (the CLI's `-c` and `--config-yaml`).
#[derive(Debug, Clone, Default)]
pub struct BootstrapSource {
    pub config_path: Option<PathBuf>,
    pub config_yaml: Option<String>,
}

/// A bootstrap that passed every check, in both forms: typed for the server to read,
/// and encoded for `/config_dump`, which decodes it with the schema when asked (the
/// encoding is the smallest form, and needs no schema held in memory meanwhile).
#[derive(Debug, Clone)]
pub struct LoadedBootstrap {
    pub bootstrap: Bootstrap,
    pub encoded: Vec<u8>,
}

/// Loads, merges, validates and checks the bootstrap against `inventory`, what
/// Courier supports (`extensions::supported::INVENTORY`).
pub fn load_bootstrap(source: &BootstrapSource, inventory: &Inventory) -> Result<LoadedBootstrap, ConfigError> {
    let desc = descriptor::message(BOOTSTRAP_TYPE)
        .ok_or_else(|| ConfigError::new("", format!("{BOOTSTRAP_TYPE} missing from the schema")))?;
    let mut merged: Option<DynamicMessage> = None;
    if let Some(path) = &source.config_path {
        let json = read_file(path)?;
        merged = Some(proto_json::decode(&desc, &json, &mut FieldPath::new())?);
    }
    if let Some(yaml) = &source.config_yaml {
        let json = parse_yaml(yaml).map_err(|e| ConfigError::new("", format!("--config-yaml: {e}")))?;
        let overlay = proto_json::decode(&desc, &json, &mut FieldPath::new())?;
        merged = Some(match merged {
            Some(base) => merge(&base, &overlay)?,
            None => overlay,
        });
    }
    let dynamic = merged
        .ok_or_else(|| ConfigError::new("", "at least one of --config-path or --config-yaml should be non-empty"))?;
    validate::validate(&dynamic, &mut FieldPath::new())?;
    supported::check(inventory, &dynamic, &mut FieldPath::new())?;
    let encoded = encode::encode_to_vec(&dynamic);
    let bootstrap = Bootstrap::decode(encoded.as_slice())
        .map_err(|e| ConfigError::new("", format!("internal: re-decoding the bootstrap failed: {e}")))?;
    Ok(LoadedBootstrap { bootstrap, encoded })
}

/// Decodes an `Any`'s payload as the typed message `T` (after `supported::check`
/// has accepted its type, this only fails on a schema mismatch).
pub fn decode_any<T: Message + Default>(
    any: &envoy_types::pb::google::protobuf::Any,
    path: &FieldPath,
) -> Result<T, ConfigError> {
    T::decode(any.value.as_slice()).map_err(|e| path.error(format!("cannot decode '{}': {e}", any.type_url)))
}

/// Protobuf `MergeFrom`: concatenating two encodings and decoding them is the merge.
fn merge(base: &DynamicMessage, overlay: &DynamicMessage) -> Result<DynamicMessage, ConfigError> {
    let mut bytes = encode::encode_to_vec(base);
    bytes.extend_from_slice(&encode::encode_to_vec(overlay));
    DynamicMessage::decode(base.descriptor(), bytes.as_slice())
        .map_err(|e| ConfigError::new("", format!("merging --config-yaml failed: {e}")))
}

fn read_file(path: &Path) -> Result<Json, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new("", format!("cannot read config file '{shown}': {e}")))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let parsed = match ext {
        "json" => serde_json::from_str(&text).map_err(|e| e.to_string()),
        "pb" | "pb_text" => Err(format!("'.{ext}' bootstrap files are not supported; use YAML or JSON")),
        _ => parse_yaml(&text),
    };
    parsed.map_err(|e| ConfigError::new("", format!("{shown}: {e}")))
}

/// YAML (a superset of JSON) into a JSON value tree.
///
/// The parser's default budget stops at 250,000 nodes, about 10,000 clusters;
/// Envoy's YAML reader has no such limit, so node and event counts are bounded
/// only by the text itself (every node takes at least one byte of it). The limits
/// on anchors and aliases, which could expand a small text, stay as they are.
pub fn parse_yaml(text: &str) -> Result<Json, String> {
    if text.trim().is_empty() {
        return Ok(Json::Object(Default::default()));
    }
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: usize::MAX,
            max_events: usize::MAX,
            max_total_scalar_bytes: usize::MAX,
        },
        emit_comments: false,
    };
    serde_saphyr::from_str_with_options::<Json>(text, options).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10,000 clusters are some 250,000 YAML nodes: more than the parser's default budget.
    #[test]
    fn large_configs_are_not_cut_off_by_the_yaml_budget() {
        let items: Vec<String> = (0..260_000).map(|i| i.to_string()).collect();
        let yaml = format!("items:\n- {}\n", items.join("\n- "));
        let json = parse_yaml(&yaml).expect("a large YAML document parses");
        assert_eq!(json["items"].as_array().map(Vec::len), Some(260_000));
    }
}
