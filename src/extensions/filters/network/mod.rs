//! Network (L4) filters.

pub mod connection_limit;
pub mod http_connection_manager;
pub mod local_ratelimit;
pub mod rbac;
pub mod tcp_proxy;
