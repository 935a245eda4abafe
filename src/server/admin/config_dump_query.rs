//! `/config_dump`'s query: `resource=`, `mask=` and `name_regex=`, as Envoy
//! 1.40 applies them to the dump (checked by running it).
//!
//! - `resource=<field>` lists the elements of the first config's repeated
//!   field of that name (`static_clusters`, `dynamic_listeners`, ...), each
//!   with its own `@type`; `{}` when there are none; 404 when no config of the
//!   dump has the field, 400 when the field is not repeated.
//! - `mask=<paths>` (a FieldMask, comma-separated) keeps only those fields. With
//!   `resource` it applies to each element, a path under the element's one
//!   `Any` field applying to the resource inside it (Envoy's
//!   `trimResourceMessage`); a path that does not name fields of the message
//!   (or runs through a repeated field) is a 400. Without `resource` it
//!   applies to each config whose type has every path; the others are left
//!   out, and none left is a 400.
//! - `name_regex=<re>` keeps the resources whose name the expression matches
//!   in full (each config's lists, or the `resource`'s elements).
//!
//! The dump is filtered as JSON, with the schema's descriptors saying what a
//! path may name, so the rendering of the dump itself stays as it is.

use http::StatusCode;
use prost_reflect::{Kind, MessageDescriptor};
use regex::Regex;
use serde_json::{json, Map, Value as Json};

use crate::config::descriptor;

const ANY: &str = "google.protobuf.Any";

/// A parsed `/config_dump` query.
pub(super) struct DumpQuery {
    resource: Option<String>,
    /// The mask as given (for errors) and its paths.
    mask: Option<(String, Vec<String>)>,
    name_regex: Option<Regex>,
}

/// An error page: status and text.
pub(super) type DumpError = (StatusCode, String);

impl DumpQuery {
    /// From the query's values; an empty one is no filter, as in Envoy.
    pub(super) fn parse(
        resource: Option<&str>,
        mask: Option<&str>,
        name_regex: Option<&str>,
    ) -> Result<DumpQuery, DumpError> {
        let name_regex = match name_regex.filter(|r| !r.is_empty()) {
            // Envoy's RE2 matches the name in full.
            Some(re) => Some(Regex::new(&format!("^(?:{re})$")).map_err(|e| {
                let reason = e.to_string().lines().last().unwrap_or_default().trim().to_string();
                (
                    StatusCode::BAD_REQUEST,
                    format!("INVALID_ARGUMENT: Error while parsing name_regex from {re}: {reason}"),
                )
            })?),
            None => None,
        };
        let mask = mask.filter(|m| !m.is_empty()).map(|m| {
            let paths = m.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_string).collect();
            (m.to_string(), paths)
        });
        Ok(DumpQuery { resource: resource.filter(|r| !r.is_empty()).map(str::to_string), mask, name_regex })
    }

    /// Whether the query changes the dump at all.
    pub(super) fn is_empty(&self) -> bool {
        self.resource.is_none() && self.mask.is_none() && self.name_regex.is_none()
    }

    /// The dump's `configs` filtered: the JSON document to print.
    pub(super) fn apply(&self, configs: Vec<Json>) -> Result<Json, DumpError> {
        match &self.resource {
            Some(resource) => self.resource_elements(configs, resource),
            None => self.filter_configs(configs),
        }
    }

    fn name_matches(&self, item: &Json) -> bool {
        self.name_regex.as_ref().is_none_or(|re| re.is_match(resource_name(item)))
    }

    fn resource_elements(&self, configs: Vec<Json>, resource: &str) -> Result<Json, DumpError> {
        for mut config in configs {
            let Some(desc) = config_descriptor(&config) else { continue };
            let Some(field) = desc.get_field_by_name(resource) else { continue };
            let element = match field.kind() {
                Kind::Message(m) if field.is_list() => m,
                _ => {
                    return Err((
                        StatusCode::BAD_REQUEST,
                        format!("{resource} is not a repeated field. Use ?mask={resource} to get only this field"),
                    ))
                }
            };
            let items = match config.get_mut(resource).map(Json::take) {
                Some(Json::Array(items)) => items,
                _ => Vec::new(),
            };
            let mut out = Vec::with_capacity(items.len());
            for mut item in items.into_iter().filter(|i| self.name_matches(i)) {
                if let Some((_, paths)) = &self.mask {
                    if !trim_resource(&mut item, &element, paths) {
                        return Err((StatusCode::BAD_REQUEST, unusable_mask(paths)));
                    }
                }
                let mut typed = Map::new();
                typed.insert("@type".into(), json!(format!("type.googleapis.com/{}", element.full_name())));
                if let Json::Object(fields) = item {
                    typed.extend(fields);
                }
                out.push(Json::Object(typed));
            }
            return Ok(if out.is_empty() { json!({}) } else { json!({ "configs": out }) });
        }
        Err((StatusCode::NOT_FOUND, format!("{resource} not found in config dump")))
    }

    fn filter_configs(&self, configs: Vec<Json>) -> Result<Json, DumpError> {
        let mut out = Vec::with_capacity(configs.len());
        for mut config in configs {
            if self.name_regex.is_some() {
                self.filter_names(&mut config);
            }
            if let Some((_, paths)) = &self.mask {
                let Some(desc) = config_descriptor(&config) else { continue };
                if !trim(&mut config, &desc, paths) {
                    continue;
                }
            }
            out.push(config);
        }
        if let (Some((given, _)), true) = (&self.mask, out.is_empty()) {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("FieldMask {given} could not be successfully applied to any configs."),
            ));
        }
        Ok(json!({ "configs": out }))
    }

    /// Drops the resources of each of the config's lists whose name does not match.
    fn filter_names(&self, config: &mut Json) {
        let Json::Object(fields) = config else { return };
        for list in fields.values_mut() {
            if let Json::Array(items) = list {
                items.retain(|i| self.name_matches(i));
            }
        }
        fields.retain(|_, v| !matches!(v, Json::Array(items) if items.is_empty()));
    }
}

/// Envoy's error for a mask a resource cannot take: the mask in protobuf's
/// debug form.
fn unusable_mask(paths: &[String]) -> String {
    let listed: String = paths.iter().map(|p| format!("paths: \"{p}\"\n")).collect();
    format!("FieldMask goo.gle/debugproto    \n{listed} could not be successfully used.")
}

fn config_descriptor(config: &Json) -> Option<MessageDescriptor> {
    descriptor::message(descriptor::type_name(config.get("@type")?.as_str()?))
}

/// A resource's name: its own `name` (a dynamic listener, a secret), or that of
/// the resource in its `Any` (`cluster_name` for endpoints).
fn resource_name(item: &Json) -> &str {
    if let Some(name) = item.get("name").and_then(Json::as_str) {
        return name;
    }
    let Some(fields) = item.as_object() else { return "" };
    fields
        .values()
        .filter(|v| v.get("@type").is_some())
        .find_map(|v| v.get("name").or_else(|| v.get("cluster_name")).and_then(Json::as_str))
        .unwrap_or("")
}

/// Envoy's `trimResourceMessage`: paths that start with the element's `Any`
/// field apply, past it, to the resource packed in it; the rest to the
/// element. False when a path names no field.
fn trim_resource(item: &mut Json, desc: &MessageDescriptor, paths: &[String]) -> bool {
    let mut outer = Vec::with_capacity(paths.len());
    let mut inner = Vec::new();
    let mut any_field = None;
    for path in paths {
        let (first, rest) = path.split_once('.').unwrap_or((path, ""));
        let is_any = desc
            .get_field_by_name(first)
            .is_some_and(|f| !f.is_list() && matches!(f.kind(), Kind::Message(m) if m.full_name() == ANY));
        if is_any {
            any_field.get_or_insert_with(|| first.to_string());
            outer.push(first.to_string());
            inner.push(rest.to_string());
        } else {
            outer.push(path.clone());
        }
    }
    if let Some(field) = any_field {
        if let Some(packed) = item.get_mut(&field) {
            let inner_desc = config_descriptor(packed);
            match inner_desc {
                Some(d) if trim(packed, &d, &inner) => {}
                _ => return false,
            }
        }
    }
    trim(item, desc, &outer)
}

/// `FieldMaskUtil::TrimMessage` after `IsValidFieldMask`: false (and `json`
/// untouched) when a path does not name fields of `desc`.
fn trim(json: &mut Json, desc: &MessageDescriptor, paths: &[String]) -> bool {
    if !paths.iter().all(|p| valid_path(desc, p)) {
        return false;
    }
    let split: Vec<Vec<&str>> = paths.iter().map(|p| p.split('.').collect()).collect();
    keep(json, &split.iter().map(Vec::as_slice).collect::<Vec<_>>());
    true
}

/// Each segment names a field; all but the last a singular message.
fn valid_path(desc: &MessageDescriptor, path: &str) -> bool {
    let parts: Vec<&str> = path.split('.').collect();
    let mut current = desc.clone();
    for (i, part) in parts.iter().enumerate() {
        let Some(field) = current.get_field_by_name(part) else { return false };
        if i + 1 == parts.len() {
            return true;
        }
        match field.kind() {
            Kind::Message(m) if !field.is_list() && !field.is_map() => current = m,
            _ => return false,
        }
    }
    false
}

/// Keeps the fields `paths` name (and each message's `@type`).
fn keep(json: &mut Json, paths: &[&[&str]]) {
    let Json::Object(fields) = json else { return };
    fields.retain(|key, value| {
        if key == "@type" {
            return true;
        }
        let under: Vec<&[&str]> = paths.iter().filter(|p| p.first() == Some(&key.as_str())).map(|p| &p[1..]).collect();
        if under.is_empty() {
            return false;
        }
        if !under.iter().any(|rest| rest.is_empty()) {
            keep(value, &under);
        }
        true
    });
}
