//! Envoy's `RuntimeFeatureFlag`: a feature on or off by config (`default_value`),
//! which the runtime key (`runtime_key`) overrides with a boolean when it has one.

use envoy_types::pb::envoy::config::core::v3::RuntimeFeatureFlag;

/// A compiled `RuntimeFeatureFlag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureFlag {
    pub default: bool,
    /// Empty: the runtime is not read.
    pub runtime_key: String,
}

impl FeatureFlag {
    /// `flag`, or on (the default of every field Envoy declares this way) when absent.
    pub fn from_proto(flag: Option<&RuntimeFeatureFlag>) -> FeatureFlag {
        match flag {
            Some(f) => FeatureFlag {
                default: f.default_value.as_ref().is_none_or(|b| b.value),
                runtime_key: f.runtime_key.clone(),
            },
            None => FeatureFlag { default: true, runtime_key: String::new() },
        }
    }

    /// Whether the feature is on now, on this thread's runtime snapshot.
    pub fn enabled(&self) -> bool {
        if self.runtime_key.is_empty() {
            return self.default;
        }
        match super::snapshot() {
            Some(snapshot) => snapshot.get_boolean(&self.runtime_key, self.default),
            None => self.default,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Entry, Layer, Snapshot};

    #[test]
    fn the_runtime_key_overrides_the_default() {
        let flag = |default: bool, key: &str| {
            FeatureFlag::from_proto(Some(&RuntimeFeatureFlag {
                default_value: Some(envoy_types::pb::google::protobuf::BoolValue { value: default }),
                runtime_key: key.into(),
            }))
        };
        assert!(FeatureFlag::from_proto(None).enabled());
        let values = [("off".to_string(), Entry::from_bool(false)), ("not_a_bool".to_string(), Entry::from_text("7"))];
        let layer = Layer { name: "static".into(), values: values.into_iter().collect() };
        crate::runtime::publish_on_this_thread(Snapshot::new(vec![layer]));
        assert!(!flag(true, "off").enabled());
        assert!(flag(true, "not_a_bool").enabled(), "a value that is not a boolean leaves the default");
        assert!(!flag(false, "missing").enabled());
        assert!(flag(true, "").enabled());
    }
}
