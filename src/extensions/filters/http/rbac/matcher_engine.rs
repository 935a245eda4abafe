//! RBAC by Envoy's generic matcher (`RBAC.matcher` / `shadow_matcher`): the
//! matcher's actions are `envoy.config.rbac.v3.Action`s (a name and ALLOW or
//! DENY), and the action it finds decides, its name the effective policy. A
//! request the matcher finds nothing for is denied, with no policy named.
//!
//! As Envoy's HTTP RBAC filter, it reads request headers and the connection's
//! addresses, ports and server name; other inputs are refused at start-up, and
//! so is `LOG`, which Courier does not implement.

use envoy_types::pb::envoy::config::rbac::v3::{rbac::Action as Kind, Action};
use envoy_types::pb::xds::core::v3::TypedExtensionConfig;
use envoy_types::pb::xds::r#type::matcher::v3::Matcher as MatcherProto;

use crate::config::bootstrap::decode_any;
use crate::config::{descriptor, ConfigError, FieldPath};
use crate::extensions::filters::common::rbac::{Decision, RbacInput};
use crate::matcher::{ConnectionFacts, InputKinds, MatchResult, Matcher};
use crate::router::HttpMatchingData;

pub const ACTION_TYPE: &str = "envoy.config.rbac.v3.Action";

/// A compiled RBAC matcher; actions index `names`.
#[derive(Debug)]
pub struct RbacMatcher {
    matcher: Matcher<(usize, bool)>,
    names: Vec<String>,
}

impl RbacMatcher {
    /// Compiles `m`; `path` points at it.
    pub fn new(m: &MatcherProto, path: &FieldPath) -> Result<RbacMatcher, ConfigError> {
        let mut names = Vec::new();
        let mut action = |a: &TypedExtensionConfig, at: &FieldPath| {
            let any = a.typed_config.as_ref().ok_or_else(|| at.field_error("typed_config", "value is required"))?;
            let at = at.child("typed_config");
            if descriptor::type_name(&any.type_url) != ACTION_TYPE {
                return Err(at.field_error(
                    "@type",
                    format!("action '{}' is not supported here (an RBAC action)", any.type_url),
                ));
            }
            let action: Action = decode_any(any, &at)?;
            let allow = match Kind::try_from(action.action) {
                Ok(Kind::Allow) => true,
                Ok(Kind::Deny) => false,
                _ => return Err(at.field_error("action", "only ALLOW and DENY are supported by Courier")),
            };
            names.push(action.name);
            Ok((names.len() - 1, allow))
        };
        let matcher = Matcher::from_proto(m, path, InputKinds::RequestHeadersAndConnection, &mut action)?;
        Ok(RbacMatcher { matcher, names })
    }

    pub fn decide(&self, input: &RbacInput<'_>) -> Decision<'_> {
        // Only the HTTP filter has a matcher (the network filter refuses one),
        // and it always decides on a request.
        let Some(parts) = input.parts else { return Decision { allowed: false, policy: None } };
        let data = HttpMatchingData {
            connection: Some(ConnectionFacts {
                local: input.local,
                remote: input.remote,
                direct_remote: input.direct_remote,
                server_name: input.requested_server_name,
                transport_protocol: "",
                application_protocols: &[],
            }),
            ..HttpMatchingData::request(parts)
        };
        match self.matcher.find(&data) {
            MatchResult::Matched(&(i, allowed)) => {
                Decision { allowed, policy: self.names.get(i).map(|name| (i, name.as_str())) }
            }
            MatchResult::NoMatch | MatchResult::InsufficientData => Decision { allowed: false, policy: None },
        }
    }

    /// The actions' names, in the order `Decision::policy` indexes them.
    pub fn policy_names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }
}
