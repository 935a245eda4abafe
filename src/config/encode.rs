//! Encodes a `DynamicMessage` in one walk.
//!
//! prost-reflect's `encode_to_vec` writes a nested message's length before its body,
//! and finds that length by walking the nested message: a message at depth `d` is
//! walked `d + 1` times, and a bootstrap with 10,000 clusters spent more time encoding
//! than decoding. Here a nested message is written first behind a one-byte length
//! slot, and its body is moved up when the length needs more bytes (a memmove, done
//! only for messages of 128 bytes or more). The bytes are the same as prost-reflect's:
//! fields in number order, packed where the schema says so.

use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
use prost::Message;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, Value};

/// `msg` in the protobuf wire format.
pub fn encode_to_vec(msg: &DynamicMessage) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_fields(msg, &mut buf);
    buf
}

/// Every set field of `msg`, in field number order.
fn encode_fields(msg: &DynamicMessage, buf: &mut Vec<u8>) {
    // Extensions and unknown fields do not come out of config decoding; prost-reflect
    // interleaves them with the fields by number, so it encodes such a message itself.
    if msg.extensions().next().is_some() || msg.unknown_fields().next().is_some() {
        msg.encode_raw(buf);
        return;
    }
    for (field, value) in msg.fields() {
        encode_field(&field, value, buf);
    }
}

fn encode_field(field: &FieldDescriptor, value: &Value, buf: &mut Vec<u8>) {
    let number = field.number();
    let kind = field.kind();
    match value {
        Value::List(items) if field.is_packed() => {
            encode_key(number, WireType::LengthDelimited, buf);
            length_delimited(buf, |buf| items.iter().for_each(|item| encode_payload(&kind, item, buf)));
        }
        Value::List(items) => items.iter().for_each(|item| encode_single(number, &kind, field.is_group(), item, buf)),
        Value::Map(entries) => {
            let Kind::Message(entry) = &kind else { return };
            let (key_field, value_field) = (entry.map_entry_key_field(), entry.map_entry_value_field());
            for (key, value) in entries {
                encode_key(number, WireType::LengthDelimited, buf);
                length_delimited(buf, |buf| {
                    encode_entry_part(&key_field, &map_key_value(key), buf);
                    encode_entry_part(&value_field, value, buf);
                });
            }
        }
        _ => encode_single(number, &kind, field.is_group(), value, buf),
    }
}

/// A map entry's key or value: left out when it is the default, as in any message.
fn encode_entry_part(field: &FieldDescriptor, value: &Value, buf: &mut Vec<u8>) {
    if field.supports_presence() || !value.is_default_for_field(field) {
        encode_field(field, value, buf);
    }
}

fn map_key_value(key: &MapKey) -> Value {
    match key {
        MapKey::Bool(v) => Value::Bool(*v),
        MapKey::I32(v) => Value::I32(*v),
        MapKey::I64(v) => Value::I64(*v),
        MapKey::U32(v) => Value::U32(*v),
        MapKey::U64(v) => Value::U64(*v),
        MapKey::String(v) => Value::String(v.clone()),
    }
}

/// One value with its key (tag and wire type).
fn encode_single(number: u32, kind: &Kind, group: bool, value: &Value, buf: &mut Vec<u8>) {
    if group {
        encode_key(number, WireType::StartGroup, buf);
        if let Value::Message(m) = value {
            encode_fields(m, buf);
        }
        encode_key(number, WireType::EndGroup, buf);
        return;
    }
    encode_key(number, wire_type(kind), buf);
    encode_payload(kind, value, buf);
}

fn wire_type(kind: &Kind) -> WireType {
    match kind {
        Kind::Fixed32 | Kind::Sfixed32 | Kind::Float => WireType::ThirtyTwoBit,
        Kind::Fixed64 | Kind::Sfixed64 | Kind::Double => WireType::SixtyFourBit,
        Kind::String | Kind::Bytes | Kind::Message(_) => WireType::LengthDelimited,
        _ => WireType::Varint,
    }
}

/// A value without its key: what a packed list holds, and what follows a key.
fn encode_payload(kind: &Kind, value: &Value, buf: &mut Vec<u8>) {
    match value {
        Value::Bool(v) => encode_varint(u64::from(*v), buf),
        Value::I32(v) => match kind {
            Kind::Sint32 => encode_varint(u64::from(((v << 1) ^ (v >> 31)) as u32), buf),
            Kind::Sfixed32 => buf.extend_from_slice(&v.to_le_bytes()),
            _ => encode_varint(*v as u64, buf),
        },
        Value::I64(v) => match kind {
            Kind::Sint64 => encode_varint(((v << 1) ^ (v >> 63)) as u64, buf),
            Kind::Sfixed64 => buf.extend_from_slice(&v.to_le_bytes()),
            _ => encode_varint(*v as u64, buf),
        },
        Value::U32(v) => match kind {
            Kind::Fixed32 => buf.extend_from_slice(&v.to_le_bytes()),
            _ => encode_varint(u64::from(*v), buf),
        },
        Value::U64(v) => match kind {
            Kind::Fixed64 => buf.extend_from_slice(&v.to_le_bytes()),
            _ => encode_varint(*v, buf),
        },
        Value::F32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::F64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::EnumNumber(v) => encode_varint(*v as u64, buf),
        Value::String(s) => encode_bytes(s.as_bytes(), buf),
        Value::Bytes(b) => encode_bytes(b, buf),
        Value::Message(m) => length_delimited(buf, |buf| encode_fields(m, buf)),
        // Lists and maps are fields, never items.
        Value::List(_) | Value::Map(_) => {}
    }
}

fn encode_bytes(bytes: &[u8], buf: &mut Vec<u8>) {
    encode_varint(bytes.len() as u64, buf);
    buf.extend_from_slice(bytes);
}

/// Writes what `body` writes, preceded by its length as a varint.
fn length_delimited(buf: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let slot = buf.len();
    buf.push(0);
    body(buf);
    let len = buf.len() - slot - 1;
    let width = encoded_len_varint(len as u64);
    if width > 1 {
        buf.resize(buf.len() + width - 1, 0);
        buf.copy_within(slot + 1..slot + 1 + len, slot + width);
    }
    let mut out = &mut buf[slot..slot + width];
    encode_varint(len as u64, &mut out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{bootstrap::parse_yaml, descriptor, proto_json, FieldPath};
    use prost_reflect::ReflectMessage;

    fn dynamic(type_name: &str, yaml: &str) -> DynamicMessage {
        let desc = descriptor::message(type_name).expect("type in the schema");
        let json = parse_yaml(yaml).expect("yaml");
        proto_json::decode(&desc, &json, &mut FieldPath::new()).expect("decode")
    }

    /// Same bytes as prost-reflect, for nesting, long messages (multi-byte lengths),
    /// packed and unpacked lists, negative and zigzag numbers, and wrappers.
    #[test]
    fn bytes_match_prost_reflect() {
        let long = "x".repeat(300);
        let yaml = format!(
            r#"
static_resources:
  clusters:
  - name: "{long}"
    type: STATIC
    connect_timeout: 1.5s
    per_connection_buffer_limit_bytes: 7
    load_assignment:
      cluster_name: c
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 1.2.3.4, port_value: 80 }} }} }}
          load_balancing_weight: 3
        - endpoint: {{ address: {{ socket_address: {{ address: 1.2.3.5, port_value: 81 }} }} }}
  - name: b
    connect_timeout: -1s
    dns_failure_refresh_rate: {{ base_interval: 2s }}
stats_config:
  histogram_bucket_settings:
  - match: {{ prefix: a }}
    buckets: [0.5, 1, 2.5]
node: {{ id: node1, cluster: c1 }}
"#
        );
        let msg = dynamic("envoy.config.bootstrap.v3.Bootstrap", &yaml);
        assert_eq!(encode_to_vec(&msg), msg.encode_to_vec());
    }

    /// Maps are written in hash order, so the two encodings are compared decoded.
    #[test]
    fn maps_decode_to_the_same_message() {
        let yaml = r#"
name: c
connect_timeout: 1s
metadata:
  filter_metadata:
    a: { x: 1, y: [true, "s", null] }
    b: {}
"#;
        let msg = dynamic("envoy.config.cluster.v3.Cluster", yaml);
        let decode = |bytes: Vec<u8>| DynamicMessage::decode(msg.descriptor(), bytes.as_slice()).expect("decodes");
        // (Not `assert_eq!`: a DynamicMessage's Debug recurses through its schema.)
        assert!(decode(encode_to_vec(&msg)) == decode(msg.encode_to_vec()));
    }
}
