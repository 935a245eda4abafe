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
use super::{descriptor, encode, proto_json, source_lines, validate, ConfigError, FieldPath};

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
/// Courier supports (`extensions::supported::INVENTORY`). The error lists every
/// problem of every stage, not only the first.
pub fn load_bootstrap(source: &BootstrapSource, inventory: &Inventory) -> Result<LoadedBootstrap, ConfigError> {
    let desc = descriptor::message(BOOTSTRAP_TYPE)
        .ok_or_else(|| ConfigError::new("", format!("{BOOTSTRAP_TYPE} missing from the schema")))?;
    let mut errors = Vec::new();
    let mut merged: Option<DynamicMessage> = None;
    if let Some(path) = &source.config_path {
        let json = read_file(path)?;
        let (msg, decode_errors) = proto_json::decode_partial(&desc, &json, &mut FieldPath::new());
        errors.extend(decode_errors);
        merged = Some(msg);
    }
    if let Some(yaml) = &source.config_yaml {
        let json = parse_yaml(yaml).map_err(|e| ConfigError::new("", format!("--config-yaml: {e}")))?;
        let (overlay, decode_errors) = proto_json::decode_partial(&desc, &json, &mut FieldPath::new());
        errors.extend(decode_errors);
        merged = Some(match merged {
            Some(base) => merge(&base, &overlay)?,
            None => overlay,
        });
    }
    let dynamic = merged
        .ok_or_else(|| ConfigError::new("", "at least one of --config-path or --config-yaml should be non-empty"))?;
    check_decoded(&dynamic, errors, &mut FieldPath::new(), inventory)?;
    let encoded = encode::encode_to_vec(&dynamic);
    let bootstrap = Bootstrap::decode(encoded.as_slice())
        .map_err(|e| ConfigError::new("", format!("internal: re-decoding the bootstrap failed: {e}")))?;
    Ok(LoadedBootstrap { bootstrap, encoded })
}

/// `err` with the line of each of its errors, in the order of the texts: the
/// file's and `--config-yaml`'s are read again now (a load that succeeds never
/// reads them twice).
pub fn locate_lines(err: ConfigError, source: &BootstrapSource) -> ConfigError {
    let file = source.config_path.as_ref().and_then(|p| std::fs::read_to_string(p).ok());
    let texts = [(None, file.as_deref()), (Some("--config-yaml"), source.config_yaml.as_deref())];
    let texts: Vec<_> = texts.into_iter().filter_map(|(label, text)| Some((label, text?))).collect();
    source_lines::locate(err, &texts)
}

/// Validates and checks against `inventory` a message that decoded with
/// `decode_errors` (the fields they name left out), so that one run lists every
/// problem of every stage; what the later stages say of a field decoding refused,
/// of a message holding one, or of the field a typo meant, would only repeat it.
pub fn check_decoded(
    msg: &DynamicMessage,
    mut decode_errors: Vec<ConfigError>,
    path: &mut FieldPath,
    inventory: &Inventory,
) -> Result<(), ConfigError> {
    let decoded = decode_errors.len();
    let meant: Vec<String> = decode_errors.iter().filter_map(proto_json::suggested_field).collect();
    let later = validate::validate(msg, path)
        .err()
        .into_iter()
        .chain(supported::check(inventory, msg, path).err())
        .flat_map(ConfigError::into_list);
    for e in later {
        if !decode_errors[..decoded].iter().any(|d| is_at_or_under(&d.path, &e.path)) && !meant.contains(&e.path) {
            decode_errors.push(e);
        }
    }
    ConfigError::all(decode_errors)
}

/// True when the field path `path` is `ancestor` or lies under it.
fn is_at_or_under(path: &str, ancestor: &str) -> bool {
    match path.strip_prefix(ancestor) {
        Some(rest) => ancestor.is_empty() || rest.is_empty() || rest.starts_with(['.', '[']),
        None => false,
    }
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

/// Reads a config's YAML as Envoy does (`config::yaml`).
pub use super::yaml::parse as parse_yaml;

#[cfg(test)]
mod tests {
    use super::*;

    const INVENTORY: Inventory = Inventory {
        tables: &[supported::SUPPORTED_FIELDS],
        places: supported::PLACES,
        is_extension: |_| false,
        skips_lb_policy: |_| false,
    };

    fn load_error(yaml: &str) -> ConfigError {
        let source = BootstrapSource { config_yaml: Some(yaml.to_string()), ..Default::default() };
        load_bootstrap(&source, &INVENTORY).map(|_| ()).expect_err("config was accepted")
    }

    /// Decoding, validation and the supported check each report theirs in one run,
    /// without repeating a problem another already named.
    #[test]
    fn every_stage_reports_its_problems_once() {
        let e = load_error(
            "static_resources:\n  clusters:\n  - {nme: c, type: STATIK, connect_timeout: 0s}\n\
             hds_config: {}\nadmin: {address: {socket_address: {address: x, port_value: 70000}}}\n",
        );
        let paths: Vec<String> = e.into_list().into_iter().map(|e| e.path).collect();
        // Not repeated: `name` (the typo meant it) and `type` (refused by decoding).
        assert_eq!(
            paths,
            [
                "static_resources.clusters[0].nme",
                "static_resources.clusters[0].type",
                "static_resources.clusters[0].connect_timeout",
                "admin.address.socket_address.port_value",
                "hds_config",
            ]
        );
        assert!(is_at_or_under("a.b[0].c", "a.b"));
        assert!(is_at_or_under("a.b", "a.b") && is_at_or_under("a", ""));
        assert!(!is_at_or_under("a.bc", "a.b"));
    }

    #[test]
    fn errors_are_given_lines_in_the_order_of_the_text() {
        let yaml = "admin: {}\nstatic_resources:\n  clusters:\n  - name: c\n    conect_timeout: 1s\nnode: {idd: x}\n";
        let source = BootstrapSource { config_yaml: Some(yaml.to_string()), ..Default::default() };
        let e = load_bootstrap(&source, &INVENTORY).map(|_| ()).expect_err("config was accepted");
        let e = locate_lines(e, &source);
        assert_eq!(
            e.to_string(),
            "static_resources.clusters[0].conect_timeout: unknown field in envoy.config.cluster.v3.Cluster \
             (did you mean 'connect_timeout'?) (--config-yaml line 5)\n  and 1 more:\n  \
             node.idd: unknown field in envoy.config.core.v3.Node (did you mean 'id'?) (--config-yaml line 6)"
        );
    }

    /// 10,000 clusters are some 250,000 YAML nodes: more than the parser's default budget.
    #[test]
    fn large_configs_are_not_cut_off_by_the_yaml_budget() {
        let items: Vec<String> = (0..260_000).map(|i| i.to_string()).collect();
        let yaml = format!("items:\n- {}\n", items.join("\n- "));
        let json = parse_yaml(&yaml).expect("a large YAML document parses");
        assert_eq!(json["items"].as_array().map(Vec::len), Some(260_000));
    }
}
