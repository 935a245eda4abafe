//! Envoy v3 bootstrap configuration: reading, schema decoding, validation.
//!
//! The pipeline is: YAML/JSON text → `serde_json::Value` → `DynamicMessage` of
//! Envoy's own schema (`proto_json`) → Envoy's validation rules (`validate`) →
//! Courier's inventory of what it implements (`supported`) → typed prost structs
//! (`envoy_types`) that the rest of Courier reads. Every error names a field path,
//! and each stage reports all of its errors, not the first; an error being printed
//! is given its line in the text (`source_lines`).

pub mod bootstrap;
pub mod config_source;
pub mod descriptor;
pub mod encode;
pub mod path_source;
pub mod proto_json;
pub mod redact;
pub mod source_lines;
pub mod supported;
pub mod validate;
pub mod yaml;

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
    /// The line of the config text the path names, found only as the error is
    /// printed (`source_lines::locate`): the success path never looks.
    pub line: Option<SourceLine>,
    /// The other errors found in the same pass (`several`), each with its own path
    /// and line.
    pub more: Vec<ConfigError>,
}

/// Where in the config text a path is: `(line 19)`, or `(--config-yaml line 3)`
/// when `source` names the text it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceLine {
    pub source: Option<&'static str>,
    pub number: usize,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_one(f)?;
        if !self.more.is_empty() {
            write!(f, "\n  and {} more:", self.more.len())?;
            for e in &self.more {
                f.write_str("\n  ")?;
                e.fmt_one(f)?;
            }
        }
        Ok(())
    }
}

impl ConfigError {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError { path: path.into(), reason: reason.into(), line: None, more: Vec::new() }
    }

    /// One error for several: the first, then each other on a line of its own,
    /// so that a user fixes a config in one pass rather than one error a run.
    /// Errors that already hold several are flattened into the one list.
    pub fn several(errors: Vec<ConfigError>) -> Option<ConfigError> {
        let mut all = Vec::with_capacity(errors.len());
        for mut e in errors {
            let more = std::mem::take(&mut e.more);
            all.push(e);
            all.extend(more);
        }
        let mut all = all.into_iter();
        let mut first = all.next()?;
        first.more = all.collect();
        Some(first)
    }

    /// `Ok` when `errors` is empty, else `several` of them.
    pub fn all(errors: Vec<ConfigError>) -> Result<(), ConfigError> {
        match ConfigError::several(errors) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// This error and the others it holds, as a list (`several`'s inverse).
    pub fn into_list(mut self) -> Vec<ConfigError> {
        let more = std::mem::take(&mut self.more);
        let mut list = Vec::with_capacity(1 + more.len());
        list.push(self);
        list.extend(more);
        list
    }

    /// `path: reason (line N)`, without the others.
    fn fmt_one(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.reason)?;
        } else {
            write!(f, "{}: {}", self.path, self.reason)?;
        }
        match self.line {
            Some(SourceLine { source: Some(source), number }) => write!(f, " ({source} line {number})"),
            Some(SourceLine { source: None, number }) => write!(f, " (line {number})"),
            None => Ok(()),
        }
    }
}

/// The path of the field being looked at, as the user wrote it.
///
/// Kept as the text it displays as (`a.b[0]["k"]`) plus where each segment starts,
/// so that pushing and popping a segment, done for every field of a config, costs
/// no allocation; the text is only copied when an error is built.
#[derive(Debug, Clone, Default)]
pub struct FieldPath {
    text: String,
    /// The length of `text` before each segment was pushed.
    starts: Vec<usize>,
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
            p.push_field(prefix);
        }
        p
    }

    pub fn push_field(&mut self, name: &str) {
        let first = self.starts.is_empty();
        self.starts.push(self.text.len());
        if !first {
            self.text.push('.');
        }
        self.text.push_str(name);
    }

    pub fn push_index(&mut self, i: usize) {
        use fmt::Write;
        self.starts.push(self.text.len());
        // Writing to a String cannot fail.
        let _ = write!(self.text, "[{i}]");
    }

    pub fn push_key(&mut self, key: &str) {
        self.starts.push(self.text.len());
        self.text.push_str("[\"");
        self.text.push_str(key);
        self.text.push_str("\"]");
    }

    pub fn pop(&mut self) {
        if let Some(start) = self.starts.pop() {
            self.text.truncate(start);
        }
    }

    pub fn error(&self, reason: impl Into<String>) -> ConfigError {
        ConfigError::new(self.text.clone(), reason)
    }

    /// This path with `field` pushed, leaving `self` as it is.
    pub fn child(&self, field: &str) -> FieldPath {
        let mut p = self.clone();
        p.push_field(field);
        p
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
        f.write_str(&self.text)
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

#[cfg(test)]
mod tests {
    use super::{ConfigError, FieldPath, SourceLine};

    #[test]
    fn several_errors_show_one_a_line_with_their_lines() {
        let mut a = ConfigError::new("a", "bad");
        a.line = Some(SourceLine { source: None, number: 3 });
        let mut b = ConfigError::new("b", "worse");
        b.line = Some(SourceLine { source: Some("--config-yaml"), number: 1 });
        let inner = ConfigError::several(vec![b, ConfigError::new("", "no path")]).expect("two");
        let all = ConfigError::several(vec![a, inner]).expect("three");
        assert_eq!(all.to_string(), "a: bad (line 3)\n  and 2 more:\n  b: worse (--config-yaml line 1)\n  no path");
        assert_eq!(all.into_list().len(), 3);
        assert_eq!(ConfigError::all(vec![]), Ok(()));
    }

    #[test]
    fn field_paths_display_as_written_and_pop_back() {
        let mut p = FieldPath::starting_at("static_resources");
        p.push_field("clusters");
        p.push_index(12);
        p.push_field("metadata");
        p.push_key("a.b");
        assert_eq!(p.to_string(), "static_resources.clusters[12].metadata[\"a.b\"]");
        p.pop();
        p.pop();
        p.push_field("name");
        assert_eq!(p.error("bad").to_string(), "static_resources.clusters[12].name: bad");
        assert_eq!(p.field_error("x", "r").path, "static_resources.clusters[12].name.x");
        let mut q = FieldPath::new();
        q.push_index(0);
        q.push_field("a");
        assert_eq!(q.to_string(), "[0].a");
        q.pop();
        q.pop();
        q.pop();
        assert_eq!(q.to_string(), "");
    }
}
