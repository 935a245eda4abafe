//! Access loggers: `envoy.access_loggers.file`, `envoy.access_loggers.stdout` and
//! `envoy.access_loggers.stderr`. A logger formats the line (`crate::formatter`) on
//! the thread that served the request (a worker, or the main thread for admin
//! requests) and hands it to its destination's writer thread (`writer`), so no
//! event loop ever waits on a disk.
//!
//! - `config` — an `access_log` entry decoded: destination, format and filter
//! - `filter` — which finished requests a logger logs
//! - `writer` — per-destination writer threads, shared by path, and their stats
//! - `listener` — a listener's own access log, one line per connection

mod config;
mod filter;
mod listener;
mod writer;

#[cfg(test)]
mod tests;

use std::fmt::Debug;
use std::sync::Arc;

use envoy_types::pb::envoy::config::accesslog::v3::AccessLog;

pub use config::{AccessLogConfig, Sink};
pub use filter::LogFilter;
pub use listener::build_listener_access_logs;
pub(crate) use writer::LogWriter;
pub use writer::{flush_all, reopen_all, AccessLogFileStats};

use crate::config::{ConfigError, FieldPath};
use crate::formatter::{FormatContext, HeadersUsed, SubstitutionFormat};
use crate::stats::Store;

/// The access loggers Courier ships: (extension name, config message full name).
pub const ACCESS_LOGGERS: &[(&str, &str)] = &[
    ("envoy.access_loggers.file", config::FILE_TYPE),
    ("envoy.access_loggers.stdout", config::STDOUT_TYPE),
    ("envoy.access_loggers.stderr", config::STDERR_TYPE),
];

/// Something that records finished requests.
pub trait AccessLogger: Send + Sync + Debug {
    fn log(&self, cx: &FormatContext<'_>);

    /// Adds the request and response headers `log` reads to `used`: the stream
    /// keeps only those for it.
    fn headers_used(&self, used: &mut HeadersUsed);
}

/// Builds the loggers of an `access_log` list; `path` points at the list. Files are
/// opened here, so an unwritable path fails config load as in Envoy. Writer stats go
/// to `store` under `filesystem.`.
pub fn build_access_logs(
    logs: &[AccessLog],
    path: &FieldPath,
    store: &Store,
) -> Result<Vec<Arc<dyn AccessLogger>>, ConfigError> {
    let mut out: Vec<Arc<dyn AccessLogger>> = Vec::with_capacity(logs.len());
    for (i, log) in logs.iter().enumerate() {
        let mut p = path.clone();
        p.push_index(i);
        out.push(build_access_log(AccessLogConfig::from_proto(log, &p)?, &p, store)?);
    }
    Ok(out)
}

/// The logger of one decoded `access_log` entry; `path` points at the entry.
fn build_access_log(
    cfg: AccessLogConfig,
    path: &FieldPath,
    store: &Store,
) -> Result<Arc<dyn AccessLogger>, ConfigError> {
    let writer = writer::open(&cfg.sink, store).map_err(|e| {
        let mut typed = path.clone();
        typed.push_field("typed_config");
        typed.field_error("path", format!("cannot open access log '{}': {e}", cfg.sink.destination()))
    })?;
    Ok(Arc::new(StreamAccessLog { format: cfg.format, filter: cfg.filter, writer }))
}

/// A file logger in Envoy's default format: the deprecated `admin.access_log_path`.
/// `path` points at the field, which names the error if the file cannot be opened.
pub fn build_default_file_log(
    file: &str,
    path: &FieldPath,
    store: &Store,
) -> Result<Arc<dyn AccessLogger>, ConfigError> {
    let sink = Sink::from_path(file);
    let writer = writer::open(&sink, store).map_err(|e| path.error(format!("cannot open access log '{file}': {e}")))?;
    Ok(Arc::new(StreamAccessLog { format: SubstitutionFormat::envoy_default(), filter: None, writer }))
}

/// The writer of `file` (a path, `/dev/stdout` or `/dev/stderr`), shared with any
/// logger of the same destination: for logs of other lines than requests', such as
/// health check events (`upstream::health_check::event_log`).
pub(crate) fn open_writer(file: &str, store: &Store) -> std::io::Result<Arc<LogWriter>> {
    writer::open(&Sink::from_path(file), store)
}

/// A logger writing formatted lines to a file or a standard stream.
#[derive(Debug)]
struct StreamAccessLog {
    format: SubstitutionFormat,
    filter: Option<filter::LogFilter>,
    writer: Arc<writer::LogWriter>,
}

impl AccessLogger for StreamAccessLog {
    fn log(&self, cx: &FormatContext<'_>) {
        if self.filter.as_ref().is_none_or(|f| f.evaluate(cx)) {
            self.writer.write(self.format.format(cx));
        }
    }

    fn headers_used(&self, used: &mut HeadersUsed) {
        self.format.headers_used(used);
    }
}
