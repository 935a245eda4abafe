//! The resource an OTLP export describes itself with, as Envoy's
//! `ResourceProviderImpl` builds it: the SDK's attributes (`telemetry.sdk.*`),
//! `service.name` when the exporter has one, then each `resource_detectors`
//! entry in order, a later attribute replacing an earlier one of the same key.
//! Two detectors: `static_config` (its `attributes`) and `environment`
//! (`OTEL_RESOURCE_ATTRIBUTES`, `key=value` pairs split on `,`, a malformed
//! pair skipped, as Envoy's). Others are refused by name. Envoy keeps the
//! attributes in a hash map, so its order varies; Courier sends them by key.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
use envoy_types::pb::envoy::extensions::tracers::opentelemetry::resource_detectors::v3::StaticConfigResourceDetectorConfig;

use super::{string_attribute, Resource};
use crate::config::bootstrap::decode_any;
use crate::config::{ConfigError, FieldPath};

pub const STATIC_CONFIG_TYPE: &str =
    "envoy.extensions.tracers.opentelemetry.resource_detectors.v3.StaticConfigResourceDetectorConfig";
pub const ENVIRONMENT_TYPE: &str =
    "envoy.extensions.tracers.opentelemetry.resource_detectors.v3.EnvironmentResourceDetectorConfig";
/// The detectors' config types.
pub const CONFIG_TYPES: &[&str] = &[STATIC_CONFIG_TYPE, ENVIRONMENT_TYPE];

/// The environment variable the `environment` detector reads.
const ENVIRONMENT_VARIABLE: &str = "OTEL_RESOURCE_ATTRIBUTES";

/// The resource for `detectors`; `path` points at the list.
pub fn detect(
    detectors: &[TypedExtensionConfig],
    service_name: Option<&str>,
    path: &FieldPath,
) -> Result<Resource, ConfigError> {
    let mut attributes = BTreeMap::new();
    if let Some(name) = service_name {
        attributes.insert("service.name".to_owned(), name.to_owned());
    }
    attributes.insert("telemetry.sdk.language".to_owned(), "rust".to_owned());
    attributes.insert("telemetry.sdk.name".to_owned(), "envoy".to_owned());
    attributes.insert("telemetry.sdk.version".to_owned(), concat!("courier/", env!("CARGO_PKG_VERSION")).to_owned());
    for (i, detector) in detectors.iter().enumerate() {
        let mut at = path.clone();
        at.push_index(i);
        let Some(any) = &detector.typed_config else {
            return Err(at.field_error("typed_config", "a resource detector needs a typed_config"));
        };
        let any_path = at.child("typed_config");
        match any.type_url.rsplit('/').next().unwrap_or("") {
            STATIC_CONFIG_TYPE => {
                let config: StaticConfigResourceDetectorConfig = decode_any(any, &any_path)?;
                attributes.extend(config.attributes);
            }
            ENVIRONMENT_TYPE => {
                let text = std::env::var(ENVIRONMENT_VARIABLE).unwrap_or_default();
                attributes.extend(environment_attributes(&text));
            }
            other => return Err(any_path.error(format!("'{other}' is not a resource detector Courier supports"))),
        }
    }
    Ok(Resource { attributes: attributes.iter().map(|(k, v)| string_attribute(k, v)).collect() })
}

/// `key=value,key=value`; empty pieces are skipped and a pair that is not
/// exactly two non-empty pieces around `=` is left out, as Envoy's.
fn environment_attributes(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let pieces: Vec<&str> = pair.split('=').filter(|p| !p.is_empty()).collect();
            match pieces[..] {
                [key, value] => Some((key.to_owned(), value.to_owned())),
                _ => {
                    tracing::warn!("invalid resource attribute from {ENVIRONMENT_VARIABLE}: {pair}");
                    None
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_pairs_are_split_as_envoy_does() {
        assert_eq!(
            environment_attributes("a=1,,b=2,bad,c=3=4,d==5"),
            [("a".into(), "1".into()), ("b".into(), "2".into()), ("d".into(), "5".into())]
        );
        assert!(environment_attributes("").is_empty());
    }
}
