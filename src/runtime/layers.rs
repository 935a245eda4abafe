//! The bootstrap's `layered_runtime` and how each of its layers is read (Envoy's
//! `ProtoLayer`, `DiskLayer` and `AdminLayer`). A static layer is flattened once, at
//! start-up, where a bad value fails the config with its path; a disk layer is read
//! at each load, where a bad directory only counts `runtime.load_error`, as in Envoy.
//! An RTDS layer (`rtds_layer`) is a `Runtime` resource's `layer`, flattened as a
//! static layer is each time the subscription (`server::xds::rtds`) takes one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use envoy_types::pb::envoy::config::bootstrap::v3::runtime_layer::LayerSpecifier;
use envoy_types::pb::envoy::config::bootstrap::v3::LayeredRuntime;
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};

use super::snapshot::{Entry, Fraction};
use crate::config::config_source::SubscriptionSource;
use crate::config::{ConfigError, FieldPath};

/// Envoy's `DiskLayer::MaxWalkDepth`.
const MAX_WALK_DEPTH: u32 = 16;

/// What one configured layer is.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerSource {
    /// The static layer's values, flattened.
    Static(HashMap<String, Entry>),
    /// `symlink_root` and the directory read under it (after `subdirectory` and,
    /// with `append_service_cluster`, the node's cluster).
    Disk { symlink_root: PathBuf, directory: PathBuf },
    /// Values set through `/runtime_modify`.
    Admin,
    /// The `Runtime` resource `resource_name` of `source` (RTDS).
    Rtds { resource_name: String, source: SubscriptionSource },
}

/// One configured layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerConfig {
    pub name: String,
    pub source: LayerSource,
}

/// Checks `layered_runtime` and flattens its static layers; `path` points at it.
/// `service_cluster` is the node's cluster, for `append_service_cluster`.
pub fn from_proto(
    rt: &LayeredRuntime,
    service_cluster: &str,
    path: &FieldPath,
) -> Result<Vec<LayerConfig>, ConfigError> {
    let mut out: Vec<LayerConfig> = Vec::with_capacity(rt.layers.len());
    for (i, layer) in rt.layers.iter().enumerate() {
        let mut p = path.clone();
        p.push_field("layers");
        p.push_index(i);
        if out.iter().any(|l| l.name == layer.name) {
            return Err(p.field_error("name", format!("Duplicate layer name: {}", layer.name)));
        }
        let source = match &layer.layer_specifier {
            Some(LayerSpecifier::StaticLayer(s)) => {
                LayerSource::Static(flatten_layer(s).map_err(|e| p.field_error("static_layer", e))?)
            }
            Some(LayerSpecifier::DiskLayer(d)) => {
                // Envoy joins the parts with '/' as text, whatever they hold.
                let mut dir = format!("{}/{}", d.symlink_root, d.subdirectory);
                if d.append_service_cluster {
                    dir = format!("{dir}/{service_cluster}");
                }
                LayerSource::Disk { symlink_root: PathBuf::from(&d.symlink_root), directory: PathBuf::from(dir) }
            }
            Some(LayerSpecifier::AdminLayer(_)) => {
                if out.iter().any(|l| l.source == LayerSource::Admin) {
                    return Err(p.field_error(
                        "admin_layer",
                        "Too many admin layers specified in LayeredRuntime, at most one may be specified",
                    ));
                }
                LayerSource::Admin
            }
            Some(LayerSpecifier::RtdsLayer(r)) => {
                let path = p.child("rtds_layer.rtds_config");
                let Some(config) = &r.rtds_config else {
                    return Err(path.error("Missing config source specifier in envoy::config::core::v3::ConfigSource"));
                };
                let source = SubscriptionSource::from_proto(config, &path)?;
                if let crate::config::config_source::Source::Path(file) = &source.source {
                    file.check_exists(&path)?;
                }
                LayerSource::Rtds { resource_name: r.name.clone(), source }
            }
            None => return Err(p.error("a layer must set one of static_layer, disk_layer, admin_layer, rtds_layer")),
        };
        out.push(LayerConfig { name: layer.name.clone(), source });
    }
    Ok(out)
}

/// A static or RTDS layer's struct as runtime keys (Envoy's `ProtoLayer`); the
/// error names the key of a value the runtime cannot hold.
pub fn flatten_layer(s: &Struct) -> Result<HashMap<String, Entry>, String> {
    let mut values = HashMap::new();
    flatten_struct(s, "", &mut values)?;
    Ok(values)
}

/// Envoy's `ProtoLayer::walkProtoValue` over a struct: nested keys joined by `.`.
fn flatten_struct(s: &Struct, prefix: &str, out: &mut HashMap<String, Entry>) -> Result<(), String> {
    for (k, v) in &s.fields {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        flatten_value(v, key, out)?;
    }
    Ok(())
}

fn flatten_value(v: &Value, key: String, out: &mut HashMap<String, Entry>) -> Result<(), String> {
    match &v.kind {
        Some(Kind::StringValue(s)) => {
            out.insert(key, Entry::from_text(s.clone()));
        }
        Some(Kind::NumberValue(d)) => {
            out.insert(key, Entry::from_number(*d));
        }
        Some(Kind::BoolValue(b)) => {
            out.insert(key, Entry::from_bool(*b));
        }
        // An empty struct, or one with a numerator or denominator, is a fractional
        // percent, as in Envoy.
        Some(Kind::StructValue(s))
            if s.fields.is_empty() || s.fields.contains_key("numerator") || s.fields.contains_key("denominator") =>
        {
            let fraction = fraction_of(s).map_err(|e| format!("{key}: {e}"))?;
            let raw = serde_json::to_string(&struct_json(s)).unwrap_or_default();
            let mut entry = Entry::from_text(raw);
            entry.fraction_value = Some(fraction);
            out.insert(key, entry);
        }
        Some(Kind::StructValue(s)) => flatten_struct(s, &key, out)?,
        Some(Kind::ListValue(_)) | Some(Kind::NullValue(_)) | None => {
            return Err(format!("Invalid runtime entry value for {key}"));
        }
    }
    Ok(())
}

/// A `FractionalPercent` written as a struct: `numerator` a number, `denominator`
/// an enum name or number.
fn fraction_of(s: &Struct) -> Result<Fraction, String> {
    let numerator = match s.fields.get("numerator").and_then(|v| v.kind.as_ref()) {
        None => 0,
        Some(Kind::NumberValue(d)) if *d >= 0.0 && *d <= f64::from(u32::MAX) && d.fract() == 0.0 => *d as u64,
        Some(_) => return Err("numerator must be an integer in [0, 2^32)".into()),
    };
    let denominator = match s.fields.get("denominator").and_then(|v| v.kind.as_ref()) {
        None => 100,
        Some(Kind::StringValue(name)) => match name.as_str() {
            "HUNDRED" => 100,
            "TEN_THOUSAND" => 10_000,
            "MILLION" => 1_000_000,
            other => return Err(format!("unknown denominator {other}")),
        },
        Some(Kind::NumberValue(d)) if [0.0, 1.0, 2.0].contains(d) => Fraction::denominator_of(*d as i32),
        Some(_) => return Err("denominator must be HUNDRED, TEN_THOUSAND or MILLION".into()),
    };
    Ok(Fraction { numerator, denominator })
}

fn struct_json(s: &Struct) -> serde_json::Value {
    let mut keys: Vec<&String> = s.fields.keys().collect();
    keys.sort();
    serde_json::Value::Object(keys.into_iter().map(|k| (k.clone(), value_json(&s.fields[k]))).collect())
}

fn value_json(v: &Value) -> serde_json::Value {
    match &v.kind {
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::NumberValue(d)) => serde_json::Number::from_f64(*d).map_or(serde_json::Value::Null, Into::into),
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::StructValue(s)) => struct_json(s),
        Some(Kind::ListValue(l)) => serde_json::Value::Array(l.values.iter().map(value_json).collect()),
        Some(Kind::NullValue(_)) | None => serde_json::Value::Null,
    }
}

/// Reads a disk layer's directory: each regular file is a key (its path under
/// `dir`, separators as `.`) and its text the value, as Envoy's `DiskLayer`.
/// `Ok(None)` when the directory does not exist (Envoy then leaves the layer out).
pub fn read_disk_layer(dir: &Path) -> Result<Option<HashMap<String, Entry>>, String> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut values = HashMap::new();
    walk(dir, "", 1, &mut values)?;
    Ok(Some(values))
}

fn walk(dir: &Path, prefix: &str, depth: u32, out: &mut HashMap<String, Entry>) -> Result<(), String> {
    if depth > MAX_WALK_DEPTH {
        return Err(format!("Walk recursion depth exceeded {MAX_WALK_DEPTH}"));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let key = if prefix.is_empty() { name } else { format!("{prefix}.{name}") };
        let path = entry.path();
        let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.is_dir() {
            walk(&path, &key, depth + 1, out)?;
        } else if meta.is_file() {
            let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            out.insert(key, Entry::from_text(file_value(&String::from_utf8_lossy(&text))));
        }
    }
    Ok(())
}

/// A disk file's value as Envoy reads it: lines starting with `#` are comments,
/// the last line is right-trimmed and the others keep their newline. (Envoy finds
/// the last line by comparing text, so an earlier line equal to it is trimmed too.)
fn file_value(text: &str) -> String {
    let lines: Vec<&str> = text.split('\n').filter(|l| !l.is_empty()).collect();
    let Some(last) = lines.last().copied() else { return String::new() };
    let mut value = String::new();
    for line in &lines {
        if line.starts_with('#') {
            continue;
        }
        if *line == last {
            value.push_str(line.trim_end());
        } else {
            value.push_str(line);
            value.push('\n');
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(yaml: &str) -> Result<Vec<LayerConfig>, ConfigError> {
        use prost::Message;
        let json = crate::config::bootstrap::parse_yaml(yaml).expect("yaml");
        let desc = crate::config::descriptor::message("envoy.config.bootstrap.v3.LayeredRuntime").expect("schema");
        let msg = crate::config::proto_json::decode(&desc, &json, &mut FieldPath::new()).expect("decodes");
        let rt = LayeredRuntime::decode(msg.encode_to_vec().as_slice()).expect("LayeredRuntime");
        from_proto(&rt, "svc", &FieldPath::starting_at("layered_runtime"))
    }

    #[test]
    fn static_layers_flatten_nested_keys() {
        let l = layers(
            "layers: [ { name: s, static_layer: { a: { b: { c: 1 } , d: x }, t: true, f: { numerator: 5, denominator: TEN_THOUSAND } } } ]",
        )
        .expect("valid");
        let LayerSource::Static(v) = &l[0].source else { panic!("static") };
        assert_eq!(v["a.b.c"].raw, "1");
        assert_eq!(v["a.d"].raw, "x");
        assert_eq!(v["t"].bool_value, Some(true));
        assert_eq!(v["f"].fraction_value, Some(Fraction { numerator: 5, denominator: 10_000 }));
        assert_eq!(v.len(), 4);
    }

    #[test]
    fn bad_layers_fail_with_their_path() {
        let e = layers("layers: [ { name: s, static_layer: { a: [1] } } ]").expect_err("list");
        assert_eq!(e.to_string(), "layered_runtime.layers[0].static_layer: Invalid runtime entry value for a");
        let e = layers("layers: [ { name: a, admin_layer: {} }, { name: a, static_layer: {} } ]").expect_err("dup");
        assert_eq!(e.to_string(), "layered_runtime.layers[1].name: Duplicate layer name: a");
        let e = layers("layers: [ { name: a, admin_layer: {} }, { name: b, admin_layer: {} } ]").expect_err("two");
        assert!(e.to_string().starts_with("layered_runtime.layers[1].admin_layer: Too many admin layers"), "{e}");
    }

    #[test]
    fn disk_layers_read_files_as_keys() {
        let dir = std::env::temp_dir().join(format!("courier-runtime-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub/a")).expect("mkdir");
        std::fs::write(dir.join("sub/a/b"), "42\n").expect("write");
        std::fs::write(dir.join("sub/c"), "# note\n12\n \n").expect("write");
        let l = layers(&format!(
            "layers: [ {{ name: d, disk_layer: {{ symlink_root: {}, subdirectory: sub }} }} ]",
            dir.display()
        ))
        .expect("valid");
        let LayerSource::Disk { directory, .. } = &l[0].source else { panic!("disk") };
        let values = read_disk_layer(directory).expect("readable").expect("exists");
        assert_eq!(values["a.b"].raw, "42");
        assert_eq!(values["a.b"].uint_value, Some(42));
        assert_eq!(values["c"].raw, "12\n");
        assert_eq!(read_disk_layer(&dir.join("missing")), Ok(None));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn rtds_layers_keep_their_resource_and_source() {
        let l = layers(
            "layers: [ { name: r, rtds_layer: { name: res, rtds_config: { ads: {}, initial_fetch_timeout: 0s } } } ]",
        )
        .expect("valid");
        let LayerSource::Rtds { resource_name, source } = &l[0].source else { panic!("rtds") };
        assert_eq!(resource_name, "res");
        assert_eq!(source.source, crate::config::config_source::Source::Ads);
        assert_eq!(source.initial_fetch_timeout, None, "0s waits for ever");
        let e = layers("layers: [ { name: r, rtds_layer: { name: res } } ]").expect_err("no source");
        assert_eq!(
            e.to_string(),
            "layered_runtime.layers[0].rtds_layer.rtds_config: Missing config source specifier in \
             envoy::config::core::v3::ConfigSource"
        );
    }

    #[test]
    fn service_cluster_is_appended() {
        let l = layers(
            "layers: [ { name: d, disk_layer: { symlink_root: /r, subdirectory: s, append_service_cluster: true } } ]",
        )
        .expect("valid");
        assert_eq!(
            l[0].source,
            LayerSource::Disk { symlink_root: PathBuf::from("/r"), directory: PathBuf::from("/r/s/svc") }
        );
    }
}
