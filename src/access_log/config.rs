//! One entry of an `access_log` list (`envoy.config.accesslog.v3.AccessLog`) decoded
//! into where lines go and how they look. Errors name the field.

use std::path::PathBuf;

use envoy_types::pb::envoy::config::accesslog::v3::{access_log::ConfigType, AccessLog};
use envoy_types::pb::envoy::config::core::v3::SubstitutionFormatString;
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::{file_access_log, FileAccessLog};
use envoy_types::pb::envoy::extensions::access_loggers::stream::v3::{
    stderr_access_log, stdout_access_log, StderrAccessLog, StdoutAccessLog,
};

use super::filter::LogFilter;
use crate::config::bootstrap::decode_any;
use crate::config::{descriptor, ConfigError, FieldPath};
use crate::formatter::SubstitutionFormat;

pub(crate) const FILE_TYPE: &str = "envoy.extensions.access_loggers.file.v3.FileAccessLog";
pub(crate) const STDOUT_TYPE: &str = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog";
pub(crate) const STDERR_TYPE: &str = "envoy.extensions.access_loggers.stream.v3.StderrAccessLog";

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    File(PathBuf),
    Stdout,
    Stderr,
}

impl Sink {
    /// `/dev/stdout` and `/dev/stderr` files are the process's own streams.
    pub(crate) fn from_path(path: &str) -> Sink {
        match path {
            "/dev/stdout" => Sink::Stdout,
            "/dev/stderr" => Sink::Stderr,
            _ => Sink::File(PathBuf::from(path)),
        }
    }

    /// The name loggers share a writer by.
    pub fn destination(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Sink::File(p) => p.to_string_lossy(),
            Sink::Stdout => "/dev/stdout".into(),
            Sink::Stderr => "/dev/stderr".into(),
        }
    }
}

/// A decoded access logger.
#[derive(Debug, Clone)]
pub struct AccessLogConfig {
    /// The `name` given in config (informational; the `@type` picks the logger).
    pub name: String,
    pub sink: Sink,
    pub format: SubstitutionFormat,
    /// Which requests are logged (`None`: all).
    pub filter: Option<LogFilter>,
}

impl AccessLogConfig {
    /// Decodes one `access_log` entry; `path` points at it (`...access_log[0]`).
    pub fn from_proto(log: &AccessLog, path: &FieldPath) -> Result<AccessLogConfig, ConfigError> {
        let filter = match &log.filter {
            Some(f) => Some(LogFilter::from_proto(f, &path.child("filter"))?),
            None => None,
        };
        let mut typed = path.clone();
        typed.push_field("typed_config");
        let Some(ConfigType::TypedConfig(any)) = &log.config_type else {
            return Err(typed.error("an access log needs a typed_config"));
        };
        let (sink, format) = match descriptor::type_name(&any.type_url) {
            FILE_TYPE => file(&decode_any::<FileAccessLog>(any, &typed)?, &typed)?,
            STDOUT_TYPE => {
                let c = decode_any::<StdoutAccessLog>(any, &typed)?;
                let Some(stdout_access_log::AccessLogFormat::LogFormat(f)) = &c.access_log_format else {
                    return Ok(AccessLogConfig::new(log, Sink::Stdout, SubstitutionFormat::envoy_default(), filter));
                };
                (Sink::Stdout, log_format(f, &typed)?)
            }
            STDERR_TYPE => {
                let c = decode_any::<StderrAccessLog>(any, &typed)?;
                let Some(stderr_access_log::AccessLogFormat::LogFormat(f)) = &c.access_log_format else {
                    return Ok(AccessLogConfig::new(log, Sink::Stderr, SubstitutionFormat::envoy_default(), filter));
                };
                (Sink::Stderr, log_format(f, &typed)?)
            }
            _ => {
                let reason = format!("unsupported extension '{}' (not an access logger)", any.type_url);
                return Err(typed.field_error("@type", reason));
            }
        };
        Ok(AccessLogConfig::new(log, sink, format, filter))
    }

    fn new(log: &AccessLog, sink: Sink, format: SubstitutionFormat, filter: Option<LogFilter>) -> AccessLogConfig {
        AccessLogConfig { name: log.name.clone(), sink, format, filter }
    }
}

/// A set `log_format`; `typed` points at the logger's `typed_config`.
fn log_format(f: &SubstitutionFormatString, typed: &FieldPath) -> Result<SubstitutionFormat, ConfigError> {
    let mut p = typed.clone();
    p.push_field("log_format");
    SubstitutionFormat::from_proto(f, &p)
}

fn file(c: &FileAccessLog, typed: &FieldPath) -> Result<(Sink, SubstitutionFormat), ConfigError> {
    if c.path.is_empty() {
        return Err(typed.field_error("path", "value length must be at least 1 runes"));
    }
    let child = |name: &str| {
        let mut p = typed.clone();
        p.push_field(name);
        p
    };
    #[allow(deprecated)]
    let format = match &c.access_log_format {
        None => SubstitutionFormat::envoy_default(),
        Some(file_access_log::AccessLogFormat::Format(s)) if s.is_empty() => SubstitutionFormat::envoy_default(),
        Some(file_access_log::AccessLogFormat::Format(s)) => SubstitutionFormat::text(s, &child("format"))?,
        // Typed as `typed_json_format` is: Envoy 1.40 prints numbers and
        // `null` for both (checked by running it).
        Some(file_access_log::AccessLogFormat::JsonFormat(s)) => {
            SubstitutionFormat::json(s, true, &child("json_format"))?
        }
        Some(file_access_log::AccessLogFormat::TypedJsonFormat(s)) => {
            SubstitutionFormat::json(s, true, &child("typed_json_format"))?
        }
        Some(file_access_log::AccessLogFormat::LogFormat(f)) => log_format(f, typed)?,
    };
    Ok((Sink::from_path(&c.path), format))
}
