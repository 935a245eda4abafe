//! An access log's `filter` (Envoy's `AccessLogFilter`): whether a finished
//! request is logged. The filters Courier has are those on what every stream
//! records: its status code, its duration, its response flags, whether it was a
//! health check, and `and`/`or` of them. The others (headers, runtime sampling,
//! tracing, gRPC status, metadata, extensions) are refused by the config check.

use envoy_types::pb::envoy::config::accesslog::v3::access_log_filter::FilterSpecifier;
use envoy_types::pb::envoy::config::accesslog::v3::comparison_filter::Op;
use envoy_types::pb::envoy::config::accesslog::v3::{AccessLogFilter, ComparisonFilter};

use crate::config::{ConfigError, FieldPath};
use crate::formatter::FormatContext;
use crate::stream_info::ResponseFlag;

/// The short names of Envoy's response flags that Courier never sets: a filter
/// may name them (and then matches what Envoy would not have logged either).
const OTHER_ENVOY_FLAGS: &[&str] = &["RLSE", "IH", "RFCF", "NFCF", "DF", "DR"];

/// A compiled `AccessLogFilter`.
#[derive(Debug, Clone, PartialEq)]
pub enum LogFilter {
    StatusCode(Comparison),
    /// The request's duration, in milliseconds.
    Duration(Comparison),
    NotHealthCheck,
    /// Any of these flags set (none, when every flag named is one Courier never
    /// sets: nothing matches).
    ResponseFlags(Vec<ResponseFlag>),
    /// A `response_flag_filter` naming no flag: any flag set.
    AnyResponseFlag,
    And(Vec<LogFilter>),
    Or(Vec<LogFilter>),
}

/// `ComparisonFilter`: an operator and a value a runtime key may override.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    op: Op,
    default_value: u32,
    runtime_key: Box<str>,
}

impl Comparison {
    /// `c` is required by the schema's rules, checked before.
    fn from_proto(c: Option<&ComparisonFilter>, path: &FieldPath) -> Result<Comparison, ConfigError> {
        let c = c.cloned().unwrap_or_default();
        let op = Op::try_from(c.op).map_err(|_| path.child("comparison").field_error("op", "unknown operator"))?;
        let value = c.value.unwrap_or_default();
        Ok(Comparison { op, default_value: value.default_value, runtime_key: value.runtime_key.into() })
    }

    fn holds(&self, actual: u64) -> bool {
        let value = crate::runtime::get_double(&self.runtime_key, f64::from(self.default_value)) as u64;
        match self.op {
            Op::Eq => actual == value,
            Op::Ge => actual >= value,
            Op::Le => actual <= value,
            Op::Ne => actual != value,
        }
    }
}

impl LogFilter {
    /// Compiles `f`; `path` points at it.
    pub fn from_proto(f: &AccessLogFilter, path: &FieldPath) -> Result<LogFilter, ConfigError> {
        // The schema's rules asked for two filters at least.
        let list = |filters: &[AccessLogFilter], field: &str| -> Result<Vec<LogFilter>, ConfigError> {
            let at = path.child(field);
            let each = filters.iter().enumerate().map(|(i, f)| {
                let mut p = at.child("filters");
                p.push_index(i);
                LogFilter::from_proto(f, &p)
            });
            each.collect()
        };
        match &f.filter_specifier {
            Some(FilterSpecifier::StatusCodeFilter(s)) => Ok(LogFilter::StatusCode(Comparison::from_proto(
                s.comparison.as_ref(),
                &path.child("status_code_filter"),
            )?)),
            Some(FilterSpecifier::DurationFilter(d)) => {
                Ok(LogFilter::Duration(Comparison::from_proto(d.comparison.as_ref(), &path.child("duration_filter"))?))
            }
            Some(FilterSpecifier::NotHealthCheckFilter(_)) => Ok(LogFilter::NotHealthCheck),
            Some(FilterSpecifier::ResponseFlagFilter(r)) => {
                let mut flags = Vec::with_capacity(r.flags.len());
                for (i, name) in r.flags.iter().enumerate() {
                    match ResponseFlag::ALL.into_iter().find(|f| f.short_name() == name) {
                        Some(flag) => flags.push(flag),
                        None if OTHER_ENVOY_FLAGS.contains(&name.as_str()) => {}
                        None => {
                            let mut p = path.child("response_flag_filter");
                            p.push_field("flags");
                            p.push_index(i);
                            return Err(p.error(format!("unknown response flag '{name}'")));
                        }
                    }
                }
                if r.flags.is_empty() {
                    return Ok(LogFilter::AnyResponseFlag);
                }
                Ok(LogFilter::ResponseFlags(flags))
            }
            Some(FilterSpecifier::AndFilter(a)) => Ok(LogFilter::And(list(&a.filters, "and_filter")?)),
            Some(FilterSpecifier::OrFilter(o)) => Ok(LogFilter::Or(list(&o.filters, "or_filter")?)),
            // The supported-fields check refused the others.
            _ => Err(path.error("an access log filter needs one of the filters Courier has")),
        }
    }

    /// Whether the finished request of `cx` is logged.
    pub fn evaluate(&self, cx: &FormatContext<'_>) -> bool {
        let info = cx.info;
        match self {
            LogFilter::StatusCode(c) => c.holds(u64::from(info.response_code.unwrap_or(0))),
            LogFilter::Duration(c) => c.holds(info.duration().as_millis() as u64),
            LogFilter::NotHealthCheck => !info.health_check,
            LogFilter::AnyResponseFlag => !info.response_flags.is_empty(),
            LogFilter::ResponseFlags(flags) => flags.iter().any(|f| info.response_flags.has(*f)),
            LogFilter::And(all) => all.iter().all(|f| f.evaluate(cx)),
            LogFilter::Or(any) => any.iter().any(|f| f.evaluate(cx)),
        }
    }
}
