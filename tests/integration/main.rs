//! Integration tests: the real `courier` binary, real sockets on 127.0.0.1.

mod harness;

mod admin;
mod config_errors;
mod lifecycle;
mod tcp_proxy;
mod upstream;
