//! Dynamic metadata (Envoy's `StreamInfo::dynamicMetadata`): structured values
//! that filters attach to a stream (`set_metadata`, `header_to_metadata`, ...) or
//! to a connection (the PROXY protocol filter's `rules`) under a namespace, for
//! later filters and `%DYNAMIC_METADATA(...)%`.
//!
//! Most streams carry none: an empty map allocates nothing. Values are
//! `google.protobuf.Struct`s, the type configs give them in, merged as Envoy's
//! `StructUtil::update` does.

use std::collections::BTreeMap;

use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value};

/// A stream's dynamic metadata: namespace → struct.
#[derive(Debug, Clone, Default)]
pub struct DynamicMetadata(BTreeMap<String, Struct>);

impl DynamicMetadata {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, namespace: &str) -> Option<&Struct> {
        self.0.get(namespace)
    }

    pub fn contains(&self, namespace: &str) -> bool {
        self.get(namespace).is_some()
    }

    /// The namespace's struct, created empty if it was not there.
    pub fn namespace_mut(&mut self, namespace: &str) -> &mut Struct {
        self.0.entry(namespace.to_string()).or_default()
    }

    /// Merges `with` into the namespace (Envoy's `StructUtil::update`).
    pub fn merge(&mut self, namespace: &str, with: &Struct) {
        merge_struct(self.namespace_mut(namespace), with);
    }

    /// Sets each of `fields` in the namespace, replacing what a key held
    /// (protobuf's `MergeFrom` on a `Struct`, which Envoy's
    /// `setDynamicMetadata` does).
    pub fn set_fields(&mut self, namespace: &str, fields: Struct) {
        self.namespace_mut(namespace).fields.extend(fields.fields);
    }

    /// Sets every namespace's fields of `other` here (`set_fields` of each).
    pub fn extend(&mut self, other: &DynamicMetadata) {
        for (namespace, fields) in &other.0 {
            self.set_fields(namespace, fields.clone());
        }
    }

    /// The value at `keys` inside the namespace: each key but the last must name
    /// a struct. With no keys, the namespace itself.
    pub fn lookup(&self, namespace: &str, keys: &[String]) -> Option<Lookup<'_>> {
        let root = self.get(namespace)?;
        let Some((first, rest)) = keys.split_first() else { return Some(Lookup::Struct(root)) };
        let mut value = root.fields.get(first)?;
        for key in rest {
            let Some(Kind::StructValue(s)) = &value.kind else { return None };
            value = s.fields.get(key)?;
        }
        Some(Lookup::Value(value))
    }
}

/// What `DynamicMetadata::lookup` found.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a> {
    Struct(&'a Struct),
    Value(&'a Value),
}

/// Envoy's `StructUtil::update`: a key whose kinds differ takes the new value;
/// structs merge recursively, lists are appended to, scalars are replaced.
pub fn merge_struct(into: &mut Struct, with: &Struct) {
    for (key, value) in &with.fields {
        let slot = into.fields.entry(key.clone()).or_default();
        match (&mut slot.kind, &value.kind) {
            (Some(Kind::StructValue(a)), Some(Kind::StructValue(b))) => merge_struct(a, b),
            (Some(Kind::ListValue(a)), Some(Kind::ListValue(b))) => a.values.extend(b.values.iter().cloned()),
            (Some(_), None) => {}
            _ => *slot = value.clone(),
        }
    }
}

/// A string value.
pub fn string_value(s: impl Into<String>) -> Value {
    Value { kind: Some(Kind::StringValue(s.into())) }
}

/// A number value.
pub fn number_value(n: f64) -> Value {
    Value { kind: Some(Kind::NumberValue(n)) }
}

/// A list value.
pub fn list_value(values: Vec<Value>) -> Value {
    Value { kind: Some(Kind::ListValue(ListValue { values })) }
}

/// Appends `s` as compact JSON, keys sorted, as Envoy prints a `Struct`.
pub fn write_struct_json(s: &Struct, out: &mut String) {
    let mut keys: Vec<&String> = s.fields.keys().collect();
    keys.sort();
    out.push('{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        crate::common::json::escape_into(key, out);
        out.push(':');
        write_value_json(&s.fields[key], out);
    }
    out.push('}');
}

/// Appends `v` as compact JSON.
pub fn write_value_json(v: &Value, out: &mut String) {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => out.push_str("null"),
        Some(Kind::NumberValue(n)) => write_number(*n, out),
        Some(Kind::StringValue(s)) => crate::common::json::escape_into(s, out),
        Some(Kind::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Kind::StructValue(s)) => write_struct_json(s, out),
        Some(Kind::ListValue(l)) => {
            out.push('[');
            for (i, item) in l.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value_json(item, out);
            }
            out.push(']');
        }
    }
}

/// A double as protobuf's JSON prints it: whole numbers without a fraction,
/// others in their shortest form; NaN and infinities as strings.
pub fn write_number(n: f64, out: &mut String) {
    use std::fmt::Write;
    if n.is_nan() {
        out.push_str("\"NaN\"");
    } else if n.is_infinite() {
        out.push_str(if n > 0.0 { "\"Infinity\"" } else { "\"-Infinity\"" });
    } else if n.fract() == 0.0 && n.abs() < 1e15 {
        let _ = write!(out, "{}", n as i64);
    } else {
        let _ = write!(out, "{n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(fields: &[(&str, Value)]) -> Struct {
        Struct { fields: fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect() }
    }

    #[test]
    fn merge_appends_lists_recurses_into_structs_and_replaces_the_rest() {
        let nested = |x: &str| Value { kind: Some(Kind::StructValue(st(&[("x", string_value(x))]))) };
        let mut md = DynamicMetadata::default();
        assert!(md.is_empty());
        md.merge(
            "ns",
            &st(&[("n", number_value(1.0)), ("l", list_value(vec![string_value("a")])), ("s", nested("y"))]),
        );
        md.merge(
            "ns",
            &st(&[("n", string_value("two")), ("l", list_value(vec![string_value("b")])), ("s", nested("w"))]),
        );
        let mut out = String::new();
        write_struct_json(md.get("ns").expect("ns"), &mut out);
        assert_eq!(out, r#"{"l":["a","b"],"n":"two","s":{"x":"w"}}"#);
        assert!(
            matches!(md.lookup("ns", &["s".into(), "x".into()]), Some(Lookup::Value(v)) if v == &string_value("w"))
        );
        assert!(md.lookup("ns", &["n".into(), "x".into()]).is_none());
        assert!(md.lookup("other", &[]).is_none());
    }

    #[test]
    fn numbers_print_as_protobuf_json_does() {
        for (n, want) in [(3.0, "3"), (-1.0, "-1"), (2.5, "2.5"), (0.1, "0.1"), (f64::NAN, "\"NaN\"")] {
            let mut out = String::new();
            write_number(n, &mut out);
            assert_eq!(out, want);
        }
    }
}
