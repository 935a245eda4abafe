//! Envoy's redaction of sensitive fields (`MessageUtil::redact`) for the admin's
//! `/config_dump`: a field the schema marks `(udpa.annotations.sensitive)`, such
//! as a `TlsCertificate`'s `private_key`, is printed with each string and bytes
//! value inside it as `[redacted]` and its other values cleared, wherever it
//! sits, inside an `Any` too. The schema says which fields, so no list of them
//! is kept here to drift from Envoy's.

use prost_reflect::{DynamicMessage, ExtensionDescriptor, ReflectMessage, Value};

const REDACTED: &str = "[redacted]";

/// Redacts every sensitive field of `msg`, at any depth.
pub fn redact(msg: &mut DynamicMessage) {
    let pool = msg.descriptor().parent_pool().clone();
    if let Some(sensitive) = pool.get_extension_by_name("udpa.annotations.sensitive") {
        walk(msg, &sensitive, false);
    }
}

/// `inside`: an ancestor field is sensitive, so every value is.
fn walk(msg: &mut DynamicMessage, sensitive: &ExtensionDescriptor, inside: bool) {
    if msg.descriptor().full_name() == "google.protobuf.Any" {
        return any(msg, sensitive, inside);
    }
    let fields: Vec<_> = msg.fields().map(|(f, _)| f).collect();
    for field in fields {
        let opts = field.options();
        let marked = opts.has_extension(sensitive) && opts.get_extension(sensitive).as_bool() == Some(true);
        let inside = inside || marked;
        let value = msg.get_field_mut(&field);
        if inside && !value_holds_text_or_message(value) {
            // Envoy clears a sensitive field's other scalars.
            msg.clear_field(&field);
            continue;
        }
        visit(value, sensitive, inside);
    }
}

fn value_holds_text_or_message(v: &Value) -> bool {
    match v {
        Value::String(_) | Value::Bytes(_) | Value::Message(_) | Value::Map(_) => true,
        Value::List(items) => items.first().is_none_or(value_holds_text_or_message),
        _ => false,
    }
}

fn visit(value: &mut Value, sensitive: &ExtensionDescriptor, inside: bool) {
    match value {
        Value::String(s) if inside => *s = REDACTED.to_string(),
        Value::Bytes(b) if inside => *b = REDACTED.as_bytes().to_vec().into(),
        Value::Message(m) => walk(m, sensitive, inside),
        Value::List(items) => items.iter_mut().for_each(|v| visit(v, sensitive, inside)),
        Value::Map(map) => map.values_mut().for_each(|v| visit(v, sensitive, inside)),
        _ => {}
    }
}

/// An `Any` of a type the schema knows: unpacked, redacted, packed again.
fn any(msg: &mut DynamicMessage, sensitive: &ExtensionDescriptor, inside: bool) {
    let type_url = match msg.get_field_by_name("type_url").as_deref() {
        Some(Value::String(t)) => t.clone(),
        _ => return,
    };
    let Some(desc) = msg.descriptor().parent_pool().get_message_by_name(super::descriptor::type_name(&type_url)) else {
        return;
    };
    let bytes = match msg.get_field_by_name("value").as_deref() {
        Some(Value::Bytes(b)) => b.clone(),
        _ => return,
    };
    let Ok(mut inner) = DynamicMessage::decode(desc, bytes) else { return };
    walk(&mut inner, sensitive, inside);
    msg.set_field_by_name("value", Value::Bytes(super::encode::encode_to_vec(&inner).into()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_key_is_redacted_inside_an_any_and_the_chain_is_not() {
        let Some(desc) = super::super::descriptor::message("envoy.config.bootstrap.v3.Bootstrap") else {
            panic!("the schema has the bootstrap")
        };
        let yaml = r#"{"static_resources": {"secrets": [{"name": "s", "tls_certificate": {
            "certificate_chain": {"filename": "/c.pem"}, "private_key": {"inline_string": "KEY"}}}],
          "listeners": [{"name": "l", "filter_chains": [{"transport_socket": {"name": "tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": {"tls_certificates": [{"private_key": {"filename": "/k.pem"}}]}}}}]}]}}"#;
        let json: serde_json::Value = serde_json::from_str(yaml).expect("JSON");
        let mut msg =
            crate::config::proto_json::decode(&desc, &json, &mut crate::config::FieldPath::new()).expect("decodes");
        redact(&mut msg);
        let out = serde_json::to_string(&msg).expect("serializes");
        assert!(out.contains(r#""certificateChain":{"filename":"/c.pem"}"#), "{out}");
        assert!(out.contains(r#""privateKey":{"inlineString":"[redacted]"}"#), "{out}");
        assert!(out.contains(r#""privateKey":{"filename":"[redacted]"}"#), "{out}");
        assert!(!out.contains("KEY") && !out.contains("/k.pem"), "{out}");
    }
}
