//! The server: the main thread, its workers, admin, watchdog and lifecycle.

pub mod admin;
pub mod instance;
pub mod memory;
pub mod options;
pub mod overload_manager;
pub mod panic_hook;
pub mod watchdog;
pub mod worker;

pub use instance::{run, Server, ServerState};
pub use options::Options;
