//! Envoy v3 bootstrap configuration: reading, schema decoding, validation.
//!
//! The pipeline is: YAML/JSON text → `serde_json::Value` → `DynamicMessage` of
//! Envoy's own schema (`proto_json`) → Envoy's validation rules (`validate`) →
//! Courier's inventory of what it implements (`supported`) → typed prost structs
//! (`envoy_types`) that the rest of Courier reads. Every error names a field path.

pub mod bootstrap;
pub mod descriptor;
pub mod proto_json;
pub mod supported;
pub mod validate;

use std::fmt;
use std::time::Duration;

pub use bootstrap::{load_bootstrap, BootstrapSource, LoadedBootstrap};

/// Frees what reading configuration needed: the decoded schema and the validation
/// rules read from it. Called once start-up has built everything from config;
/// whatever reads config later decodes the schema again.
pub fn release_schema() {
    validate::forget_plans();
    descriptor::release();
}

/// A configuration error: where (`static_resources.clusters[0].name`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub path: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

impl ConfigError {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError { path: path.into(), reason: reason.into() }
    }
}

/// The path of the field being looked at, as the user wrote it.
#[derive(Debug, Clone, Default)]
pub struct FieldPath {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone)]
enum Segment {
    Field(String),
    Index(usize),
    Key(String),
}

impl FieldPath {
    pub fn new() -> Self {
        Self::default()
    }

    /// A path starting at `prefix` (e.g. `static_resources.listeners[0]`), used when
    /// a sub-message is examined on its own.
    pub fn starting_at(prefix: &str) -> Self {
        let mut p = Self::new();
        if !prefix.is_empty() {
            p.segments.push(Segment::Field(prefix.to_string()));
        }
        p
    }

    pub fn push_field(&mut self, name: &str) {
        self.segments.push(Segment::Field(name.to_string()));
    }

    pub fn push_index(&mut self, i: usize) {
        self.segments.push(Segment::Index(i));
    }

    pub fn push_key(&mut self, key: &str) {
        self.segments.push(Segment::Key(key.to_string()));
    }

    pub fn pop(&mut self) {
        self.segments.pop();
    }

    pub fn error(&self, reason: impl Into<String>) -> ConfigError {
        ConfigError::new(self.to_string(), reason)
    }

    /// The error for a field of this path, without pushing it.
    pub fn field_error(&self, field: &str, reason: impl Into<String>) -> ConfigError {
        let mut p = self.clone();
        p.push_field(field);
        p.error(reason)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.segments {
            match s {
                Segment::Field(name) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(name)?;
                }
                Segment::Index(i) => write!(f, "[{i}]")?,
                Segment::Key(k) => write!(f, "[\"{k}\"]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// A `google.protobuf.Duration` as a std `Duration` (negative values clamp to zero;
/// the validation rules reject them where Envoy does).
pub fn duration(d: &envoy_types::pb::google::protobuf::Duration) -> Duration {
    if d.seconds < 0 || d.nanos < 0 {
        return Duration::ZERO;
    }
    Duration::new(d.seconds as u64, d.nanos as u32)
}

/// Optional duration with a default, as Envoy's `PROTOBUF_GET_MS_OR_DEFAULT`.
pub fn duration_or(d: &Option<envoy_types::pb::google::protobuf::Duration>, default: Duration) -> Duration {
    d.as_ref().map(duration).unwrap_or(default)
}
