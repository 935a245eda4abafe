//! Pieces the HTTP filters share: the supported-fields check of their configs and
//! Envoy's fractional percentages. Header matchers and header additions are the
//! router's (`router::HeaderMatcher`, `router::HeaderMutation`).

use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};
use envoy_types::pb::google::protobuf::Any;
use prost_reflect::DynamicMessage;

use crate::common::random;
use crate::config::{descriptor, ConfigError, FieldPath};
use crate::extensions::supported;
use crate::runtime::{Fraction, RuntimeFraction};

/// Rejects the first set field of the config packed in `any` that Courier does not
/// implement (per `extensions::supported`, which merges the filters' `SUPPORTED_FIELDS`);
/// `path` points at the `Any`.
pub(crate) fn check_supported(any: &Any, path: &FieldPath) -> Result<(), ConfigError> {
    let name = descriptor::type_name(&any.type_url);
    let desc = descriptor::message(name).ok_or_else(|| path.field_error("@type", format!("unknown type '{name}'")))?;
    let msg = DynamicMessage::decode(desc, any.value.as_slice())
        .map_err(|e| path.error(format!("cannot decode '{}': {e}", any.type_url)))?;
    supported::check_message(&msg, path)
}

/// The error for a field Courier does not implement (or a value of it it does not).
pub(crate) fn unsupported(path: &FieldPath, field: &str, what: &str) -> ConfigError {
    path.field_error(field, format!("{what} is not supported by Courier"))
}

/// Envoy's `FractionalPercent`: `numerator / denominator`, sampled per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Percent {
    pub numerator: u64,
    pub denominator: u64,
}

impl Percent {
    pub const ZERO: Percent = Percent { numerator: 0, denominator: 100 };
    pub const HUNDRED: Percent = Percent { numerator: 100, denominator: 100 };

    /// Unknown denominators (only possible from a future schema) count as `HUNDRED`,
    /// as Envoy's `fractionalPercentDenominatorToInt` does for its default.
    pub fn from_proto(p: &FractionalPercent) -> Percent {
        let denominator = match DenominatorType::try_from(p.denominator) {
            Ok(DenominatorType::TenThousand) => 10_000,
            Ok(DenominatorType::Million) => 1_000_000,
            _ => 100,
        };
        Percent { numerator: u64::from(p.numerator), denominator }
    }

    /// A `RuntimeFractionalPercent`: its `default_value`, which the runtime may
    /// override by `runtime_key` for each request; or `absent` when the field is not set.
    pub fn from_runtime(p: Option<&RuntimeFractionalPercent>, absent: Percent) -> RuntimeFraction {
        match p {
            Some(r) => RuntimeFraction::new(
                &r.runtime_key,
                r.default_value.as_ref().map_or(Percent::ZERO, Percent::from_proto).into(),
            ),
            None => RuntimeFraction::fixed(absent.into()),
        }
    }

    /// The same denominator with the numerator capped at `max` (header-controlled
    /// fault percentages).
    pub fn with_numerator_at_most(self, max: u64) -> Percent {
        Percent { numerator: self.numerator.min(max), ..self }
    }

    /// True for `numerator / denominator` of the calls (always when the numerator is
    /// at least the denominator, never when it is zero).
    pub fn sample(self) -> bool {
        if self.numerator == 0 {
            return false;
        }
        if self.numerator >= self.denominator {
            return true;
        }
        random::below(self.denominator) < self.numerator
    }
}

impl From<Percent> for Fraction {
    fn from(p: Percent) -> Fraction {
        Fraction { numerator: p.numerator, denominator: p.denominator }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::filters::http::test_util::any_from_yaml;

    #[test]
    fn percent_samples_and_caps() {
        let p = Percent::from_proto(&FractionalPercent { numerator: 5, denominator: DenominatorType::Million as i32 });
        assert_eq!(p, Percent { numerator: 5, denominator: 1_000_000 });
        assert!(Percent::HUNDRED.sample());
        assert!(!Percent::ZERO.sample());
        assert!(Percent { numerator: 200, denominator: 100 }.sample());
        assert_eq!(Percent::HUNDRED.with_numerator_at_most(7).numerator, 7);
        let hits = (0..10_000).filter(|_| Percent { numerator: 50, denominator: 100 }.sample()).count();
        assert!((4_000..6_000).contains(&hits), "{hits}");
        assert_eq!(Percent::from_runtime(None, Percent::HUNDRED).current(), Fraction::HUNDRED);
        assert_eq!(
            Percent::from_runtime(Some(&RuntimeFractionalPercent::default()), Percent::HUNDRED).current(),
            Fraction::ZERO
        );
    }

    #[test]
    fn unsupported_fields_are_named() {
        let any = any_from_yaml(
            "envoy.extensions.filters.http.fault.v3.HTTPFault",
            "{abort: {grpc_status: 3, percentage: {numerator: 1}}}",
        );
        let err = check_supported(&any, &FieldPath::starting_at("http_filters[0].typed_config")).unwrap_err();
        assert_eq!(err.path, "http_filters[0].typed_config.abort.grpc_status");
        assert_eq!(
            err.reason,
            "field 'grpc_status' of envoy.extensions.filters.http.fault.v3.FaultAbort is not supported by Courier"
        );
    }
}
