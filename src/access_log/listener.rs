//! A listener's own `access_log` (`Listener.access_log`): the file, stdout and
//! stderr loggers of this module, written from what the listener knows of a
//! connection and what its filters reported (`network::connection_log`).
//! Envoy 1.40 writes such a line when a connection ends and for a socket that
//! never reached a filter chain, formatted from the connection's `StreamInfo`:
//! every operator is accepted (Envoy's default format too); one that only a
//! request has (`%REQ(...)%`, `%RESPONSE_CODE%`) prints `-` or 0 there.

use std::sync::Arc;

use envoy_types::pb::envoy::config::accesslog::v3::AccessLog;

use super::{build_access_log, AccessLogConfig, AccessLogger};
use crate::config::{ConfigError, FieldPath};
use crate::formatter::FormatContext;
use crate::network::{ConnectionLogCause, ConnectionLogEvent, ListenerAccessLog};
use crate::stats::Store;
use crate::stream_info::{ResponseFlag, StreamInfo};

/// Envoy's `%RESPONSE_CODE_DETAILS%` for a socket no filter chain matched.
const FILTER_CHAIN_NOT_FOUND: &str = "filter_chain_not_found";

/// Builds a listener's `access_log` list; `path` points at it.
pub fn build_listener_access_logs(
    logs: &[AccessLog],
    path: &FieldPath,
    store: &Store,
) -> Result<Vec<Arc<dyn ListenerAccessLog>>, ConfigError> {
    let mut out: Vec<Arc<dyn ListenerAccessLog>> = Vec::with_capacity(logs.len());
    for (i, log) in logs.iter().enumerate() {
        let mut p = path.clone();
        p.push_index(i);
        let logger = build_access_log(AccessLogConfig::from_proto(log, &p)?, &p, store)?;
        out.push(Arc::new(ListenerLog(logger)));
    }
    Ok(out)
}

/// One logger of a listener.
#[derive(Debug)]
struct ListenerLog(Arc<dyn AccessLogger>);

impl ListenerAccessLog for ListenerLog {
    fn log(&self, event: &ConnectionLogEvent<'_>) {
        let report = event.report;
        // What the terminal filter recorded (`tcp_proxy`'s upstream and flags)
        // is the connection's; the listener adds what it knows.
        let mut info = match report.filter_info::<StreamInfo>() {
            Some(recorded) => recorded.clone(),
            None => {
                let mut info = StreamInfo::new(event.remote, event.local, "");
                info.dynamic_metadata = event.dynamic_metadata.clone();
                info
            }
        };
        info.start = event.accepted;
        info.start_time = event.accepted_at;
        info.downstream_tls = event.tls.cloned();
        info.downstream_hello = event.hello.cloned();
        info.protocol = report.protocol.get();
        info.bytes_received = report.bytes_received.get();
        info.bytes_sent = report.bytes_sent.get();
        if event.cause == ConnectionLogCause::NoFilterChain {
            info.response_flags.set(ResponseFlag::NoRouteFound);
            info.response_code_details = FILTER_CHAIN_NOT_FOUND;
        }
        info.last_downstream_tx = Some(event.accepted.elapsed());
        self.0.log(&FormatContext::new(&info));
    }
}
