//! `custom_tags` (Envoy's `Tracing::CustomTag`), of a connection manager's or a
//! route's `tracing`: a literal, an environment variable read once at start-up,
//! or a request header, each with Envoy's defaults. Metadata and formatted tags
//! are refused by name.

use envoy_types::pb::envoy::r#type::tracing::v3::{custom_tag, CustomTag as PbCustomTag};

use crate::config::{ConfigError, FieldPath};

/// A tag added to every span it applies to.
#[derive(Debug, Clone)]
pub enum CustomTag {
    /// `literal`: a fixed value.
    Literal { tag: String, value: String },
    /// `environment`: the variable's value at start-up, else the default (Envoy
    /// reads it once too); no tag when both are empty.
    Environment { tag: String, value: String },
    /// `request_header`: the header's value, else the default; no tag when both
    /// are missing.
    RequestHeader { tag: String, name: http::HeaderName, default: String },
}

impl CustomTag {
    /// `path` points at the list (`custom_tags`); `i` is the tag's index.
    pub fn from_proto(t: &PbCustomTag, path: &FieldPath, i: usize) -> Result<CustomTag, ConfigError> {
        let mut p = path.clone();
        p.push_index(i);
        let tag = t.tag.clone();
        Ok(match &t.r#type {
            Some(custom_tag::Type::Literal(l)) => CustomTag::Literal { tag, value: l.value.clone() },
            Some(custom_tag::Type::Environment(e)) => CustomTag::Environment {
                tag,
                value: std::env::var(&e.name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| e.default_value.clone()),
            },
            Some(custom_tag::Type::RequestHeader(h)) => CustomTag::RequestHeader {
                tag,
                name: http::HeaderName::from_bytes(h.name.as_bytes())
                    .map_err(|_| p.field_error("request_header.name", "not a valid header name"))?,
                default: h.default_value.clone(),
            },
            Some(custom_tag::Type::Metadata(_)) => {
                return Err(p.field_error("metadata", "metadata custom tags are not supported by Courier"))
            }
            Some(custom_tag::Type::Value(_)) => {
                return Err(p.field_error("value", "formatted custom tags are not supported by Courier"))
            }
            None => return Err(p.error("a custom tag needs a type")),
        })
    }

    /// All of `tags`; `path` points at the list.
    pub fn all_from_proto(tags: &[PbCustomTag], path: &FieldPath) -> Result<Vec<CustomTag>, ConfigError> {
        tags.iter().enumerate().map(|(i, t)| CustomTag::from_proto(t, path, i)).collect()
    }
}
