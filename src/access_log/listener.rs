//! A listener's own `access_log` (`Listener.access_log`): the file, stdout and
//! stderr loggers of this module, written from what the listener knows of a
//! connection (`network::connection_log`). Envoy 1.40 writes such a line when
//! a connection ends and for a socket that never reached a filter chain; the
//! latter is all the listener knows, and Courier's connections do not yet
//! report back what their filters did (bytes, upstream, HTTP protocol), so a
//! format that asks for that is refused at start-up, naming the operator.

use std::sync::Arc;

use envoy_types::pb::envoy::config::accesslog::v3::AccessLog;

use super::{build_access_logs, AccessLogConfig, AccessLogger};
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
    for (i, log) in logs.iter().enumerate() {
        let mut p = path.clone();
        p.push_index(i);
        let cfg = AccessLogConfig::from_proto(log, &p)?;
        if let Some(op) = cfg.format.first_filter_level_operator() {
            return Err(p.field_error(
                "typed_config",
                format!(
                    "%{op}% is not supported in a listener's access_log by Courier: a listener's line knows \
                     the connection's addresses, TLS, SNI, response flags and duration, not what its filters did \
                     (set log_format without it)"
                ),
            ));
        }
    }
    let loggers = build_access_logs(logs, path, store)?;
    Ok(loggers.into_iter().map(|l| Arc::new(ListenerLog(l)) as Arc<dyn ListenerAccessLog>).collect())
}

/// One logger of a listener.
#[derive(Debug)]
struct ListenerLog(Arc<dyn AccessLogger>);

impl ListenerAccessLog for ListenerLog {
    fn log(&self, event: &ConnectionLogEvent<'_>) {
        let mut info = StreamInfo::new(event.remote, event.local, "");
        info.start = event.accepted;
        info.start_time = event.accepted_at;
        info.downstream_tls = event.tls.cloned();
        info.downstream_hello = event.hello.cloned();
        info.dynamic_metadata = event.dynamic_metadata.clone();
        if event.cause == ConnectionLogCause::NoFilterChain {
            info.response_flags.set(ResponseFlag::NoRouteFound);
            info.response_code_details = FILTER_CHAIN_NOT_FOUND;
        }
        info.last_downstream_tx = Some(event.accepted.elapsed());
        self.0.log(&FormatContext::new(&info));
    }
}
