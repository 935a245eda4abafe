//! `/server_info`: version, state, uptime, command-line options and node, with
//! Envoy's keys.

use serde_json::json;

use crate::server::Server;

pub(super) fn render(server: &Server) -> String {
    let o = &server.options;
    let uptime = format!("{}s", server.uptime().as_secs());
    let node = &server.node;
    let info = json!({
        "version": format!("courier/{}/Clean/RELEASE/rustls", env!("CARGO_PKG_VERSION")),
        "state": server.state().envoy_name(),
        "uptime_current_epoch": uptime,
        "uptime_all_epochs": uptime,
        "hot_restart_version": crate::server::hot_restart_version(o),
        "command_line_options": {
            "concurrency": o.workers(),
            "config_path": o.config_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            "config_yaml": o.config_yaml.clone().unwrap_or_default(),
            "admin_address_path": o.admin_address_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            "log_level": o.log_level,
            "service_cluster": o.service_cluster.clone().unwrap_or_default(),
            "service_node": o.service_node.clone().unwrap_or_default(),
            "drain_time": format!("{}s", o.drain_time_s),
            "mode": match o.mode { crate::server::options::Mode::Serve => "Serve", crate::server::options::Mode::Validate => "Validate" },
            "disable_hot_restart": !o.handoff_enabled(),
            "restart_epoch": o.epoch(),
            "base_id": o.base_id.unwrap_or(0),
            "parent_shutdown_time": format!("{}s", o.parent_shutdown_time_s),
            "socket_path": o.socket_path,
        },
        "node": {
            "id": node.id,
            "cluster": node.cluster,
            "user_agent_name": "courier",
            "user_agent_build_version": {
                "version": {
                    "major_number": env!("CARGO_PKG_VERSION_MAJOR").parse::<u32>().unwrap_or(0),
                    "minor_number": env!("CARGO_PKG_VERSION_MINOR").parse::<u32>().unwrap_or(0),
                    "patch": env!("CARGO_PKG_VERSION_PATCH").parse::<u32>().unwrap_or(0),
                },
            },
        },
        "hot_restart_initializing": false,
    });
    super::config_dump::pretty(&info)
}
