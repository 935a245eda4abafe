//! Decodes proto3-JSON (as parsed from YAML or JSON) into a `DynamicMessage` of
//! Envoy's schema, reporting every error with the field path that caused it: a
//! field that fails is left out and the decode goes on with its siblings, so that a
//! config with two typos says so in one run.
//!
//! prost-reflect has a serde deserializer, but its errors carry no path and it
//! cannot say "field x of listener 3". This walker follows the proto3-JSON mapping:
//! both the proto field name and its lowerCamelCase JSON name are accepted, `null`
//! means unset, 64-bit integers may be strings, enums are names or numbers, and
//! the well-known types (Duration, wrappers, Struct/Value, Any, Empty, FieldMask,
//! Timestamp) have their special forms.
//!
//! Envoy's parser is laxer than proto3-JSON in three ways that public configs rely
//! on, and this one follows it: enum names in any case (`type: strict_dns`), a
//! well-known type written as its plain message (`connect_timeout: {seconds: 5}`,
//! `{value: 1024}`), and a single value where a list is expected
//! (`domains: "*"`, `filter_chains: {filters: ...}`).

use std::collections::HashMap;

use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, OneofDescriptor, Value};
use serde_json::Value as Json;

use super::{ConfigError, FieldPath};

/// Decodes `json` as a message of type `desc`; the error lists every problem found.
pub fn decode(desc: &MessageDescriptor, json: &Json, path: &mut FieldPath) -> Result<DynamicMessage, ConfigError> {
    let (msg, errors) = decode_partial(desc, json, path);
    ConfigError::all(errors).map(|()| msg)
}

/// Decodes what can be decoded: the message with each field that failed left out,
/// and every error. The bootstrap goes on to validate such a message, so that one
/// run reports the problems of every stage.
pub fn decode_partial(
    desc: &MessageDescriptor,
    json: &Json,
    path: &mut FieldPath,
) -> (DynamicMessage, Vec<ConfigError>) {
    let mut errors = Vec::new();
    let msg = match message(desc, json, path, &mut errors) {
        Ok(msg) => msg,
        Err(e) => {
            errors.push(e);
            DynamicMessage::new(desc.clone())
        }
    };
    (msg, errors)
}

/// One message-typed value. `Err` when the value as a whole cannot be one; the
/// errors of its fields go to `errors`, and the message is returned without them.
fn message(
    desc: &MessageDescriptor,
    json: &Json,
    path: &mut FieldPath,
    errors: &mut Vec<ConfigError>,
) -> Result<DynamicMessage, ConfigError> {
    // A well-known type written as the message it is (`{seconds: 5}`), which Envoy
    // accepts beside the special form; for Struct, Value and Any an object is the
    // special form itself.
    if json.is_object() && plain_form_accepted(desc.full_name()) {
        return decode_object(desc, json, path, None, errors);
    }
    match desc.full_name() {
        "google.protobuf.Any" => decode_any(desc, json, path, errors),
        "google.protobuf.Duration" => duration(json, path).map(|(s, n)| seconds_nanos(desc, s, n)),
        "google.protobuf.Timestamp" => Err(path.error("Timestamp values are not supported")),
        "google.protobuf.Struct" => decode_struct(desc, json, path, errors),
        "google.protobuf.Value" => decode_value(desc, json, path, errors),
        "google.protobuf.ListValue" => decode_list_value(desc, json, path, errors),
        "google.protobuf.FieldMask" => {
            let s = json.as_str().ok_or_else(|| path.error("expected a comma-separated field mask string"))?;
            let mut msg = DynamicMessage::new(desc.clone());
            let paths = s.split(',').filter(|p| !p.is_empty()).map(|p| Value::String(p.to_string())).collect();
            msg.set_field_by_name("paths", Value::List(paths));
            Ok(msg)
        }
        name if is_wrapper(name) => {
            let field =
                desc.get_field_by_name("value").ok_or_else(|| path.error("wrapper type without a value field"))?;
            let mut msg = DynamicMessage::new(desc.clone());
            if !json.is_null() {
                msg.set_field(&field, scalar(&field.kind(), json, path)?);
            }
            Ok(msg)
        }
        _ => decode_object(desc, json, path, None, errors),
    }
}

fn is_wrapper(name: &str) -> bool {
    matches!(
        name,
        "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
    )
}

/// A plain message: every key must name a field of `desc` (`skip` is a key that
/// the caller consumed, such as `@type`). A key that fails is reported and left out.
fn decode_object(
    desc: &MessageDescriptor,
    json: &Json,
    path: &mut FieldPath,
    skip: Option<&str>,
    errors: &mut Vec<ConfigError>,
) -> Result<DynamicMessage, ConfigError> {
    let obj = json
        .as_object()
        .ok_or_else(|| path.error(format!("expected an object for {}, got {}", desc.full_name(), kind_of(json))))?;
    let mut msg = DynamicMessage::new(desc.clone());
    let mut oneofs_seen = OneofsSeen::default();
    for (key, value) in obj {
        if Some(key.as_str()) == skip {
            continue;
        }
        path.push_field(key);
        if let Err(e) = decode_entry(desc, &mut msg, &mut oneofs_seen, key, value, path, errors) {
            errors.push(e);
        }
        path.pop();
    }
    Ok(msg)
}

/// One `key: value` of an object into `msg` (`path` points at the key).
fn decode_entry<'a>(
    desc: &MessageDescriptor,
    msg: &mut DynamicMessage,
    oneofs_seen: &mut OneofsSeen<'a>,
    key: &'a str,
    value: &Json,
    path: &mut FieldPath,
    errors: &mut Vec<ConfigError>,
) -> Result<(), ConfigError> {
    let field = desc
        .get_field_by_name(key)
        .or_else(|| desc.get_field_by_json_name(key))
        .ok_or_else(|| path.error(unknown_field(desc, key)))?;
    if value.is_null() {
        return Ok(());
    }
    if let Some(oneof) = field.containing_oneof() {
        // proto3 `optional` fields live in a synthetic one-field oneof.
        if oneof.fields().len() > 1 {
            if let Some(other) = oneofs_seen.insert(&oneof, key) {
                return Err(path.error(format!(
                    "'{other}' and '{key}' are both set, but only one of oneof '{}' may be",
                    oneof.name()
                )));
            }
        }
    }
    let decoded = decode_field(&field, value, path, errors)?;
    msg.set_field(&field, decoded);
    Ok(())
}

/// "unknown field in M", with "did you mean `x`?" when a field of `desc` is a
/// likely typo of `key` (at most two edits, or the same name in another case).
fn unknown_field(desc: &MessageDescriptor, key: &str) -> String {
    let close = desc
        .fields()
        .map(|f| (edit_distance(&key.to_ascii_lowercase(), f.name()), f))
        .filter(|(d, _)| *d <= 2 && *d < key.len())
        .min_by_key(|(d, _)| *d);
    match close {
        Some((_, f)) => format!("unknown field in {} (did you mean '{}'?)", desc.full_name(), f.name()),
        None => format!("unknown field in {}", desc.full_name()),
    }
}

/// The field an "unknown field" error suggests (`clusters[0].connect_timeout` for
/// `clusters[0].conect_timeout`): the field the user meant, which the later checks
/// find missing, only repeating the error.
pub fn suggested_field(e: &ConfigError) -> Option<String> {
    let (_, suggestion) = e.reason.strip_prefix("unknown field in ")?.split_once(" (did you mean '")?;
    let name = suggestion.strip_suffix("'?)")?;
    Some(match e.path.rsplit_once('.') {
        Some((parent, _)) => format!("{parent}.{name}"),
        None => name.to_string(),
    })
}

/// "unknown value 'v' for enum E", with "did you mean `X`?" for a likely typo
/// (`strictdns` for `STRICT_DNS`: names compare without case or underscores).
fn unknown_enum_value(e: &prost_reflect::EnumDescriptor, value: &str) -> String {
    let squash = |s: &str| s.chars().filter(|c| *c != '_').collect::<String>().to_ascii_uppercase();
    let wanted = squash(value);
    let close = e
        .values()
        .map(|v| (edit_distance(&wanted, &squash(v.name())), v))
        .filter(|(d, _)| *d <= 2 && *d < wanted.len())
        .min_by_key(|(d, _)| *d);
    match close {
        Some((_, v)) => format!("unknown value '{value}' for enum {} (did you mean '{}'?)", e.full_name(), v.name()),
        None => format!("unknown value '{value}' for enum {}", e.full_name()),
    }
}

/// Levenshtein distance, for typo suggestions on short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// The key that set each oneof of one object so far: an object sets few oneofs, so
/// a short list beats a hash map of names, and the keys are borrowed from the object
/// rather than copied.
#[derive(Default)]
struct OneofsSeen<'a> {
    set: Vec<(OneofDescriptor, &'a str)>,
}

impl<'a> OneofsSeen<'a> {
    /// Records that `key` set `oneof`, returning the key that set it before, if any.
    fn insert(&mut self, oneof: &OneofDescriptor, key: &'a str) -> Option<&'a str> {
        if let Some(&(_, other)) = self.set.iter().find(|(o, _)| o == oneof) {
            return Some(other);
        }
        self.set.push((oneof.clone(), key));
        None
    }
}

fn decode_field(
    field: &FieldDescriptor,
    json: &Json,
    path: &mut FieldPath,
    errors: &mut Vec<ConfigError>,
) -> Result<Value, ConfigError> {
    if field.is_map() {
        let entry = match field.kind() {
            Kind::Message(m) => m,
            _ => return Err(path.error("map field without an entry type")),
        };
        let key_kind = entry.map_entry_key_field().kind();
        let value_field = entry.map_entry_value_field();
        let obj =
            json.as_object().ok_or_else(|| path.error(format!("expected an object (a map), got {}", kind_of(json))))?;
        let mut map = HashMap::with_capacity(obj.len());
        for (k, v) in obj {
            path.push_key(k);
            match map_key(&key_kind, k, path).and_then(|key| Ok((key, single(&value_field.kind(), v, path, errors)?))) {
                Ok((key, value)) => {
                    map.insert(key, value);
                }
                Err(e) => errors.push(e),
            }
            path.pop();
        }
        Ok(Value::Map(map))
    } else if field.is_list() {
        // A single value stands for a list of one, as Envoy's parser takes it.
        let items = match json {
            Json::Array(items) => items.as_slice(),
            one => std::slice::from_ref(one),
        };
        let mut list = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            path.push_index(i);
            match single(&field.kind(), item, path, errors) {
                Ok(v) => list.push(v),
                Err(e) => errors.push(e),
            }
            path.pop();
        }
        Ok(Value::List(list))
    } else {
        single(&field.kind(), json, path, errors)
    }
}

fn single(kind: &Kind, json: &Json, path: &mut FieldPath, errors: &mut Vec<ConfigError>) -> Result<Value, ConfigError> {
    match kind {
        Kind::Message(m) => message(m, json, path, errors).map(Value::Message),
        _ => scalar(kind, json, path),
    }
}

fn scalar(kind: &Kind, json: &Json, path: &FieldPath) -> Result<Value, ConfigError> {
    let v = match kind {
        Kind::Bool => Value::Bool(match json {
            Json::Bool(b) => *b,
            Json::String(s) if s == "true" => true,
            Json::String(s) if s == "false" => false,
            _ => return Err(path.error(format!("expected a boolean, got {}", kind_of(json)))),
        }),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            let n = integer(json, path)?;
            Value::I32(i32::try_from(n).map_err(|_| path.error(format!("{n} is out of range for int32")))?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            let n = integer(json, path)?;
            Value::I64(i64::try_from(n).map_err(|_| path.error(format!("{n} is out of range for int64")))?)
        }
        Kind::Uint32 | Kind::Fixed32 => {
            let n = integer(json, path)?;
            Value::U32(u32::try_from(n).map_err(|_| path.error(format!("{n} is out of range for uint32")))?)
        }
        Kind::Uint64 | Kind::Fixed64 => {
            let n = integer(json, path)?;
            Value::U64(u64::try_from(n).map_err(|_| path.error(format!("{n} is out of range for uint64")))?)
        }
        Kind::Float => Value::F32(float(json, path)? as f32),
        Kind::Double => Value::F64(float(json, path)?),
        Kind::String => match json {
            Json::String(s) => Value::String(s.clone()),
            // YAML turns `80` or `true` into non-strings; proto3-JSON does not accept those.
            _ => return Err(path.error(format!("expected a string, got {}", kind_of(json)))),
        },
        Kind::Bytes => {
            let s = json.as_str().ok_or_else(|| path.error(format!("expected base64 bytes, got {}", kind_of(json))))?;
            Value::Bytes(base64_decode(s).ok_or_else(|| path.error("invalid base64"))?.into())
        }
        Kind::Enum(e) => match json {
            Json::String(s) => {
                // Envoy parses enum names case-insensitively (`strict_dns`).
                let v = e
                    .get_value_by_name(s)
                    .or_else(|| e.get_value_by_name(&s.to_ascii_uppercase()))
                    .ok_or_else(|| path.error(unknown_enum_value(e, s)))?;
                Value::EnumNumber(v.number())
            }
            Json::Number(_) => {
                let n = integer(json, path)?;
                Value::EnumNumber(i32::try_from(n).map_err(|_| path.error("enum number out of range"))?)
            }
            _ => return Err(path.error(format!("expected an enum name, got {}", kind_of(json)))),
        },
        Kind::Message(m) => return Err(path.error(format!("expected a message {}", m.full_name()))),
    };
    Ok(v)
}

fn integer(json: &Json, path: &FieldPath) -> Result<i128, ConfigError> {
    match json {
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i as i128)
            } else if let Some(u) = n.as_u64() {
                Ok(u as i128)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() == 0.0 && f.abs() < 1.8e19 {
                    Ok(f as i128)
                } else {
                    Err(path.error(format!("expected an integer, got {f}")))
                }
            }
        }
        Json::String(s) => s.trim().parse::<i128>().map_err(|_| path.error(format!("expected an integer, got '{s}'"))),
        _ => Err(path.error(format!("expected an integer, got {}", kind_of(json)))),
    }
}

fn float(json: &Json, path: &FieldPath) -> Result<f64, ConfigError> {
    match json {
        Json::Number(n) => n.as_f64().ok_or_else(|| path.error("invalid number")),
        Json::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => s.parse().map_err(|_| path.error(format!("expected a number, got '{s}'"))),
        },
        _ => Err(path.error(format!("expected a number, got {}", kind_of(json)))),
    }
}

fn map_key(kind: &Kind, key: &str, path: &FieldPath) -> Result<MapKey, ConfigError> {
    let as_json = Json::String(key.to_string());
    Ok(match kind {
        Kind::String => MapKey::String(key.to_string()),
        Kind::Bool => match scalar(kind, &as_json, path)? {
            Value::Bool(b) => MapKey::Bool(b),
            _ => return Err(path.error("invalid map key")),
        },
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => match scalar(kind, &as_json, path)? {
            Value::I32(v) => MapKey::I32(v),
            _ => return Err(path.error("invalid map key")),
        },
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => match scalar(kind, &as_json, path)? {
            Value::I64(v) => MapKey::I64(v),
            _ => return Err(path.error("invalid map key")),
        },
        Kind::Uint32 | Kind::Fixed32 => match scalar(kind, &as_json, path)? {
            Value::U32(v) => MapKey::U32(v),
            _ => return Err(path.error("invalid map key")),
        },
        Kind::Uint64 | Kind::Fixed64 => match scalar(kind, &as_json, path)? {
            Value::U64(v) => MapKey::U64(v),
            _ => return Err(path.error("invalid map key")),
        },
        _ => return Err(path.error("invalid map key type")),
    })
}

/// `Any`: `{"@type": URL, ...fields of that type}`; for well-known types with a
/// special JSON form the payload is under `"value"`.
fn decode_any(
    desc: &MessageDescriptor,
    json: &Json,
    path: &mut FieldPath,
    errors: &mut Vec<ConfigError>,
) -> Result<DynamicMessage, ConfigError> {
    let obj = json
        .as_object()
        .ok_or_else(|| path.error(format!("expected an object with '@type', got {}", kind_of(json))))?;
    path.push_field("@type");
    let url = obj.get("@type").and_then(Json::as_str).ok_or_else(|| path.error("missing '@type'"))?;
    let name = url.rsplit('/').next().unwrap_or(url);
    let Some(inner_desc) = desc.parent_pool().get_message_by_name(name) else {
        // A real Envoy extension whose schema Courier does not carry: kept with
        // no payload, for the supported-fields walk to name beside every other
        // field Courier lacks, rather than stopping the decode here.
        if !super::descriptor::is_envoy_message(name) {
            return Err(path.error(format!("unknown type '{url}'")));
        }
        path.pop();
        let mut any = DynamicMessage::new(desc.clone());
        any.set_field_by_name("type_url", Value::String(url.to_string()));
        return Ok(any);
    };
    path.pop();
    let inner = if has_special_json(inner_desc.full_name()) {
        path.push_field("value");
        let v = obj.get("value").unwrap_or(&Json::Null);
        let m = message(&inner_desc, v, path, errors);
        path.pop();
        m?
    } else {
        decode_object(&inner_desc, json, path, Some("@type"), errors)?
    };
    let mut any = DynamicMessage::new(desc.clone());
    any.set_field_by_name("type_url", Value::String(url.to_string()));
    any.set_field_by_name("value", Value::Bytes(super::encode::encode_to_vec(&inner).into()));
    Ok(any)
}

/// The well-known types whose special JSON form is not an object, so that an
/// object can only be the plain message.
fn plain_form_accepted(name: &str) -> bool {
    is_wrapper(name) || matches!(name, "google.protobuf.Duration" | "google.protobuf.FieldMask")
}

fn has_special_json(name: &str) -> bool {
    is_wrapper(name)
        || matches!(
            name,
            "google.protobuf.Any"
                | "google.protobuf.Duration"
                | "google.protobuf.Timestamp"
                | "google.protobuf.Struct"
                | "google.protobuf.Value"
                | "google.protobuf.ListValue"
                | "google.protobuf.FieldMask"
        )
}

/// Duration as proto3-JSON writes it: `"1.5s"`; a bare number of seconds is also
/// accepted, as YAML authors often write one (`0.5`, which YAML reading leaves
/// as text).
fn duration(json: &Json, path: &FieldPath) -> Result<(i64, i32), ConfigError> {
    let text = match json {
        Json::String(s) if s.trim().parse::<f64>().is_ok() => format!("{}s", s.trim()),
        Json::String(s) => s.trim().to_string(),
        Json::Number(n) => format!("{n}s"),
        _ => return Err(path.error(format!("expected a duration like \"1.5s\", got {}", kind_of(json)))),
    };
    parse_duration(&text).ok_or_else(|| path.error(format!("invalid duration '{text}' (expected e.g. \"0.25s\")")))
}

/// Parses `"[-]S[.F]s"` into seconds and nanoseconds.
pub fn parse_duration(text: &str) -> Option<(i64, i32)> {
    let body = text.strip_suffix('s')?;
    let (neg, body) = match body.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, body),
    };
    let (secs, frac) = body.split_once('.').unwrap_or((body, ""));
    if secs.is_empty() && frac.is_empty() {
        return None;
    }
    if !secs.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 9 {
        return None;
    }
    let s: i64 = if secs.is_empty() { 0 } else { secs.parse().ok()? };
    let n: i32 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().ok()? };
    if s > 315_576_000_000 {
        return None;
    }
    Some(if neg { (-s, -n) } else { (s, n) })
}

fn seconds_nanos(desc: &MessageDescriptor, seconds: i64, nanos: i32) -> DynamicMessage {
    let mut msg = DynamicMessage::new(desc.clone());
    msg.set_field_by_name("seconds", Value::I64(seconds));
    msg.set_field_by_name("nanos", Value::I32(nanos));
    msg
}

fn decode_struct(
    desc: &MessageDescriptor,
    json: &Json,
    path: &mut FieldPath,
    errors: &mut Vec<ConfigError>,
) -> Result<DynamicMessage, ConfigError> {
    let obj = json.as_object().ok_or_else(|| path.error(format!("expected an object, got {}", kind_of(json))))?;
    let value_desc = value_descriptor(desc, path)?;
    let mut fields = HashMap::with_capacity(obj.len());
    for (k, v) in obj {
        path.push_key(k);
        match decode_value(&value_desc, v, path, errors) {
            Ok(m) => {
                fields.insert(MapKey::String(k.clone()), Value::Message(m));
            }
            Err(e) => errors.push(e),
        }
        path.pop();
    }
    let mut msg = DynamicMessage::new(desc.clone());
    msg.set_field_by_name("fields", Value::Map(fields));
    Ok(msg)
}

fn decode_list_value(
    desc: &MessageDescriptor,
    json: &Json,
    path: &mut FieldPath,
    errors: &mut Vec<ConfigError>,
) -> Result<DynamicMessage, ConfigError> {
    let items = json.as_array().ok_or_else(|| path.error(format!("expected a list, got {}", kind_of(json))))?;
    let value_desc = value_descriptor(desc, path)?;
    let mut values = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        path.push_index(i);
        match decode_value(&value_desc, item, path, errors) {
            Ok(m) => values.push(Value::Message(m)),
            Err(e) => errors.push(e),
        }
        path.pop();
    }
    let mut msg = DynamicMessage::new(desc.clone());
    msg.set_field_by_name("values", Value::List(values));
    Ok(msg)
}

fn value_descriptor(desc: &MessageDescriptor, path: &FieldPath) -> Result<MessageDescriptor, ConfigError> {
    desc.parent_pool()
        .get_message_by_name("google.protobuf.Value")
        .ok_or_else(|| path.error("google.protobuf.Value missing from the schema"))
}

fn decode_value(
    desc: &MessageDescriptor,
    json: &Json,
    path: &mut FieldPath,
    errors: &mut Vec<ConfigError>,
) -> Result<DynamicMessage, ConfigError> {
    let pool = desc.parent_pool();
    let mut msg = DynamicMessage::new(desc.clone());
    match json {
        Json::Null => msg.set_field_by_name("null_value", Value::EnumNumber(0)),
        Json::Bool(b) => msg.set_field_by_name("bool_value", Value::Bool(*b)),
        Json::Number(n) => msg.set_field_by_name("number_value", Value::F64(n.as_f64().unwrap_or(0.0))),
        Json::String(s) => msg.set_field_by_name("string_value", Value::String(s.clone())),
        Json::Array(_) => {
            let d = pool
                .get_message_by_name("google.protobuf.ListValue")
                .ok_or_else(|| path.error("google.protobuf.ListValue missing from the schema"))?;
            msg.set_field_by_name("list_value", Value::Message(decode_list_value(&d, json, path, errors)?));
        }
        Json::Object(_) => {
            let d = pool
                .get_message_by_name("google.protobuf.Struct")
                .ok_or_else(|| path.error("google.protobuf.Struct missing from the schema"))?;
            msg.set_field_by_name("struct_value", Value::Message(decode_struct(&d, json, path, errors)?));
        }
    }
    Ok(msg)
}

fn kind_of(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' | b'\n' | b'\r' | b' ' => continue,
            _ => return None,
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0.25s"), Some((0, 250_000_000)));
        assert_eq!(parse_duration("5s"), Some((5, 0)));
        assert_eq!(parse_duration("1.000000001s"), Some((1, 1)));
        assert_eq!(parse_duration("-1.5s"), Some((-1, -500_000_000)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("1.0000000001s"), None);
        assert_eq!(parse_duration("1ms"), None);
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64_decode("!!"), None);
    }

    #[test]
    fn envoys_lax_forms_are_accepted() {
        let cluster = |yaml: &str| {
            let json = super::super::bootstrap::parse_yaml(yaml).expect("yaml");
            let desc = super::super::descriptor::message("envoy.config.cluster.v3.Cluster").expect("schema");
            decode(&desc, &json, &mut FieldPath::new())
        };
        let lax = cluster(
            "{name: c, type: strict_Dns, lb_policy: round_robin, connect_timeout: {seconds: 2, nanos: 5},\
              per_connection_buffer_limit_bytes: {value: 1024}, load_assignment: {cluster_name: c, endpoints: {lb_endpoints: []}}}",
        )
        .expect("lax forms");
        let strict = cluster(
            "{name: c, type: STRICT_DNS, lb_policy: ROUND_ROBIN, connect_timeout: 2.000000005s,\
              per_connection_buffer_limit_bytes: 1024, load_assignment: {cluster_name: c, endpoints: [{lb_endpoints: []}]}}",
        )
        .expect("strict forms");
        assert_eq!(lax, strict);
        let e = cluster("{name: c, type: strictdns}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "type: unknown value 'strictdns' for enum envoy.config.cluster.v3.Cluster.DiscoveryType (did you mean 'STRICT_DNS'?)"
        );
        let e = cluster("{name: c, connect_timeout: {seconds: 1, millis: 3}}").unwrap_err();
        assert!(e.to_string().starts_with("connect_timeout.millis: "), "{e}");
    }

    fn cluster_desc() -> MessageDescriptor {
        super::super::descriptor::message("envoy.config.cluster.v3.Cluster").expect("schema")
    }

    #[test]
    fn every_bad_field_is_reported_and_the_rest_decoded() {
        let json = super::super::bootstrap::parse_yaml(
            "{name: c, conect_timeout: 1s, type: FANCY, lb_policy: RANDOM, \
              load_assignment: {cluster_name: 5, endpoints: [{lb_endpoints: [{bogus: 1}, {}]}]}, \
              metadata: {filter_metadata: {a: {x: 1}}}, dns_lookup_family: V4_ONLY, dns_refresh_rate: 1s, \
              cluster_type: {name: x}}",
        )
        .expect("yaml");
        let (msg, errors) = decode_partial(&cluster_desc(), &json, &mut FieldPath::new());
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "conect_timeout",
                "load_assignment.cluster_name",
                "load_assignment.endpoints[0].lb_endpoints[0].bogus",
                "type"
            ]
        );
        assert!(errors[1].reason.starts_with("expected a string"), "{}", errors[1]);
        assert!(errors[3].reason.contains("both set"), "{}", errors[3]);
        // What decoded is kept: the later checks look at it.
        assert_eq!(msg.get_field_by_name("name").as_deref(), Some(&Value::String("c".into())));
        assert!(msg.has_field_by_name("lb_policy") && msg.has_field_by_name("metadata"));
        assert!(msg.has_field_by_name("cluster_type") && !msg.has_field_by_name("type"));
        let e = decode(&cluster_desc(), &json, &mut FieldPath::new()).unwrap_err();
        assert_eq!(e.more.len(), 3);
    }

    #[test]
    fn an_unknown_field_suggests_a_close_name() {
        let cluster = |yaml: &str| {
            let json = super::super::bootstrap::parse_yaml(yaml).expect("yaml");
            let desc = super::super::descriptor::message("envoy.config.cluster.v3.Cluster").expect("schema");
            decode(&desc, &json, &mut FieldPath::new()).unwrap_err().to_string()
        };
        assert_eq!(
            cluster("{name: c, conect_timeout: 1s}"),
            "conect_timeout: unknown field in envoy.config.cluster.v3.Cluster (did you mean 'connect_timeout'?)"
        );
        assert_eq!(
            cluster("{name: c, LB_Policy: RANDOM}"),
            "LB_Policy: unknown field in envoy.config.cluster.v3.Cluster (did you mean 'lb_policy'?)"
        );
        assert_eq!(
            cluster("{name: c, bogus_field: 1}"),
            "bogus_field: unknown field in envoy.config.cluster.v3.Cluster"
        );
        let typo = ConfigError::new("a[0].conect_timeout", unknown_field(&cluster_desc(), "conect_timeout"));
        assert_eq!(suggested_field(&typo).as_deref(), Some("a[0].connect_timeout"));
        let top = ConfigError::new("nme", unknown_field(&cluster_desc(), "nme"));
        assert_eq!(suggested_field(&top).as_deref(), Some("name"));
        assert_eq!(
            suggested_field(&ConfigError::new("x.bogus_field", unknown_field(&cluster_desc(), "bogus_field"))),
            None
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
    }
}
