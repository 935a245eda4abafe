//! Network (L4) filters.

pub mod http_connection_manager;
pub mod rbac;
pub mod tcp_proxy;
