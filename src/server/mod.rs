//! The server: the main thread, its workers, admin, watchdog and lifecycle.

pub mod admin;
pub mod handoff;
pub mod init_target;
pub mod instance;
pub mod load_stats_reporter;
pub mod memory;
pub mod options;
pub mod overload_manager;
pub mod panic_hook;
pub mod watchdog;
pub mod worker;
pub mod xds;

pub use instance::{run, Server, ServerState};
pub use options::Options;

/// `/hot_restart_version` and `/server_info`'s: the handoff protocol's version
/// when this process takes part in handoff, else Envoy's `disabled`.
pub fn hot_restart_version(options: &Options) -> &'static str {
    if options.handoff_enabled() {
        handoff::VERSION
    } else {
        "disabled"
    }
}
