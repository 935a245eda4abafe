//! `/runtime` and `/runtime_modify`: the runtime's layers and values as Envoy's
//! admin prints them, and the admin layer's edits. Envoy renders `/runtime` from a
//! protobuf map, in no fixed order; Courier sorts the keys.

use hyper::StatusCode;

use super::{Query, Reply, JSON, TEXT};
use crate::runtime::Loader;

/// `GET /runtime`: `layers` by name, and each key's value in every layer and final.
pub fn render(loader: &Loader) -> Reply {
    let snapshot = loader.snapshot();
    let layers: Vec<serde_json::Value> = snapshot.layers().iter().map(|l| l.name.clone().into()).collect();
    let entries: serde_json::Map<String, serde_json::Value> = snapshot
        .entries()
        .into_iter()
        .map(|(key, (layer_values, final_value))| {
            let entry = serde_json::json!({ "final_value": final_value, "layer_values": layer_values });
            (key.to_string(), entry)
        })
        .collect();
    let doc = serde_json::json!({ "layers": layers, "entries": entries });
    Reply::ok(JSON, format!("{}\n", pretty(&doc)))
}

/// `POST /runtime_modify?key=value...` (or the same as form values in the body).
pub fn modify(loader: &Loader, query: &Query, body: &[u8]) -> Reply {
    let mut values = query.0.clone();
    if values.is_empty() {
        values = Query::parse(&String::from_utf8_lossy(body)).0;
    }
    if values.is_empty() {
        return Reply {
            status: StatusCode::BAD_REQUEST,
            content_type: TEXT,
            body: "usage: /runtime_modify?key1=value1&key2=value2&keyN=valueN\n       or send the parameters as \
                   form values\nuse an empty value to remove a previously added override"
                .into(),
        };
    }
    // A load failing (an RTDS layer holds a bad resource) is a 503 with its
    // error, as in Envoy.
    let body = match loader.modify(&values) {
        Ok(true) => return Reply::ok(TEXT, "OK\n".into()),
        Ok(false) => "No admin layer specified".to_string(),
        Err(e) => e,
    };
    Reply { status: StatusCode::SERVICE_UNAVAILABLE, content_type: TEXT, body }
}

/// JSON with Envoy's one-space indent.
fn pretty(v: &serde_json::Value) -> String {
    use serde::Serialize;
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::with_indent(b" "));
    // Serializing a Value into a Vec cannot fail.
    let _ = v.serialize(&mut ser);
    String::from_utf8_lossy(&out).into_owned()
}
