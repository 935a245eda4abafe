//! `envoy.config.core.v3.SubstitutionFormatString` (an access log's `log_format`,
//! later local replies): a text format or a typed JSON dictionary, built once at config
//! load with errors at the field that holds the bad format.

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::substitution_format_string::Format;
use envoy_types::pb::envoy::config::core::v3::{DataSource, SubstitutionFormatString};
use envoy_types::pb::google::protobuf::{value::Kind as PbKind, Struct, Value as PbValue};
use serde_json::{Map, Value};

use super::{FormatContext, FormatString, JsonFormat, DEFAULT_FORMAT, UNSPECIFIED};
use crate::config::{ConfigError, FieldPath};

/// A log line format: text or JSON.
#[derive(Debug, Clone)]
pub enum SubstitutionFormat {
    Text { format: FormatString, omit_empty_values: bool },
    Json(JsonFormat),
}

impl SubstitutionFormat {
    /// Adds the headers this format reads to `used`.
    pub fn headers_used(&self, used: &mut super::HeadersUsed) {
        match self {
            SubstitutionFormat::Text { format, .. } => format.headers_used(used),
            SubstitutionFormat::Json(json) => json.headers_used(used),
        }
    }

    /// Envoy's default access log format.
    pub fn envoy_default() -> SubstitutionFormat {
        // A constant covered by the tests.
        let format = FormatString::parse(DEFAULT_FORMAT).expect("Envoy's default format parses");
        SubstitutionFormat::Text { format, omit_empty_values: false }
    }

    /// A text format from a string (the deprecated `format` fields); the path points at it.
    pub fn text(s: &str, path: &FieldPath) -> Result<SubstitutionFormat, ConfigError> {
        let format = FormatString::parse(s).map_err(|e| path.error(e))?;
        Ok(SubstitutionFormat::Text { format, omit_empty_values: false })
    }

    /// A JSON dictionary from a `google.protobuf.Struct`; the path points at it.
    pub fn json(s: &Struct, preserve_types: bool, path: &FieldPath) -> Result<SubstitutionFormat, ConfigError> {
        let map = struct_to_json(s).map_err(|e| path.error(e))?;
        let format = JsonFormat::parse(&map).map_err(|e| path.error(e))?;
        Ok(SubstitutionFormat::Json(format.preserve_types(preserve_types)))
    }

    /// From config; `path` points at the `SubstitutionFormatString`.
    pub fn from_proto(p: &SubstitutionFormatString, path: &FieldPath) -> Result<SubstitutionFormat, ConfigError> {
        if !p.formatters.is_empty() {
            return Err(path.field_error("formatters", "formatter extensions are not supported by Courier"));
        }
        #[allow(deprecated)]
        let format = match &p.format {
            Some(Format::TextFormat(s)) => Self::text(s, &child(path, "text_format"))?,
            Some(Format::TextFormatSource(ds)) => {
                let (text, field_path) = data_source_string(ds, &child(path, "text_format_source"))?;
                Self::text(&text, &field_path)?
            }
            Some(Format::JsonFormat(s)) => Self::json(s, true, &child(path, "json_format"))?,
            None => return Err(path.error("one of text_format, json_format, text_format_source must be set")),
        };
        Ok(match format {
            SubstitutionFormat::Text { format, .. } => {
                SubstitutionFormat::Text { format, omit_empty_values: p.omit_empty_values }
            }
            SubstitutionFormat::Json(j) => SubstitutionFormat::Json(j.omit_empty_values(p.omit_empty_values)),
        })
    }

    /// The formatted line.
    pub fn format(&self, cx: &FormatContext<'_>) -> String {
        match self {
            SubstitutionFormat::Text { format, omit_empty_values } => {
                let mut out = String::with_capacity(256);
                format.write(cx, &mut out, if *omit_empty_values { "" } else { UNSPECIFIED });
                out
            }
            SubstitutionFormat::Json(j) => j.format(cx),
        }
    }
}

fn child(path: &FieldPath, field: &str) -> FieldPath {
    let mut p = path.clone();
    p.push_field(field);
    p
}

/// The text of a `DataSource`, read at load, and the path of the field it came from.
pub fn data_source_string(ds: &DataSource, path: &FieldPath) -> Result<(String, FieldPath), ConfigError> {
    if ds.watched_directory.is_some() {
        return Err(path.field_error("watched_directory", "field 'watched_directory' is not supported by Courier"));
    }
    match &ds.specifier {
        Some(Specifier::InlineString(s)) => Ok((s.clone(), child(path, "inline_string"))),
        Some(Specifier::InlineBytes(b)) => {
            let p = child(path, "inline_bytes");
            let s = String::from_utf8(b.clone()).map_err(|_| p.error("the format is not valid UTF-8"))?;
            Ok((s, p))
        }
        Some(Specifier::Filename(f)) => {
            let p = child(path, "filename");
            let s = std::fs::read_to_string(f).map_err(|e| p.error(format!("cannot read '{f}': {e}")))?;
            Ok((s, p))
        }
        Some(Specifier::EnvironmentVariable(v)) => {
            let p = child(path, "environment_variable");
            let s = std::env::var(v).map_err(|_| p.error(format!("Environment variable doesn't exist: {v}")))?;
            Ok((s, p))
        }
        None => Err(path.error("one of filename, inline_bytes, inline_string, environment_variable must be set")),
    }
}

/// A `google.protobuf.Struct` as a JSON object (integral numbers stay integers).
pub(crate) fn struct_to_json(s: &Struct) -> Result<Map<String, Value>, String> {
    s.fields.iter().map(|(k, v)| Ok((k.clone(), value_to_json(v)?))).collect()
}

fn value_to_json(v: &PbValue) -> Result<Value, String> {
    Ok(match &v.kind {
        None | Some(PbKind::NullValue(_)) => Value::Null,
        Some(PbKind::BoolValue(b)) => Value::Bool(*b),
        Some(PbKind::StringValue(s)) => Value::String(s.clone()),
        Some(PbKind::NumberValue(n)) => {
            if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
                Value::from(*n as i64)
            } else {
                serde_json::Number::from_f64(*n).map(Value::Number).ok_or_else(|| format!("invalid number {n}"))?
            }
        }
        Some(PbKind::StructValue(s)) => Value::Object(struct_to_json(s)?),
        Some(PbKind::ListValue(l)) => Value::Array(l.values.iter().map(value_to_json).collect::<Result<_, _>>()?),
    })
}
