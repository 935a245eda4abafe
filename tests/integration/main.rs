//! Integration tests: the real `courier` binary, real sockets on 127.0.0.1.

mod harness;
mod http_util;

mod admin;
mod config_errors;
mod http_proxy;
mod lifecycle;
mod tcp_proxy;
mod upstream;
