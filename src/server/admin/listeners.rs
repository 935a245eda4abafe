//! `/listeners`: each listener's name and bound address.

use serde_json::json;

use super::{Reply, JSON, TEXT};
use crate::server::Server;

pub(super) fn render(server: &Server, as_json: bool) -> Reply {
    let active = server.listener_manager.active();
    if as_json {
        let statuses: Vec<_> = active
            .iter()
            .map(|l| {
                json!({
                    "name": l.config.name,
                    "local_address": { "socket_address": { "address": l.bound.ip().to_string(), "port_value": l.bound.port() } },
                })
            })
            .collect();
        return Reply::ok(JSON, super::config_dump::pretty(&json!({ "listener_statuses": statuses })));
    }
    let text: String = active.iter().map(|l| format!("{}::{}\n", l.config.name, l.bound)).collect();
    Reply::ok(TEXT, text)
}
