//! Role-based access control shared by the HTTP filter
//! (`filters::http::rbac`) and the network filter (`filters::network::rbac`):
//! the policy engine, the naming of their stats and shadow metadata, and the
//! supported fields of `envoy.config.rbac.v3`.

pub mod engine;

use envoy_types::pb::google::protobuf::Struct;

use crate::stream_info::dynamic_metadata::string_value;
pub use engine::{Decision, RbacEngine, RbacInput};

/// Envoy's `statPrefixJoin`: `prefix` and `name` with one dot between them
/// (none after an empty prefix, no second one after a prefix ending in one).
pub fn join_prefix(prefix: &str, name: &str) -> String {
    match prefix {
        "" => name.to_string(),
        p if p.ends_with('.') => format!("{p}{name}"),
        p => format!("{p}.{name}"),
    }
}

/// The scope of a rule set's counters: `base` (ending in `rbac.`) then the
/// rule set's own prefix, joined with a dot, which ends the scope too.
pub fn rules_scope(base: &str, rules_prefix: &str) -> String {
    match rules_prefix {
        "" => base.to_string(),
        p if p.ends_with('.') => format!("{base}{p}"),
        p => format!("{base}{p}."),
    }
}

/// Records one engine's decision as Envoy's RBAC filters do: its result, and
/// the name of the policy that matched, under `<prefix><kind>_` keys.
pub fn record(fields: &mut Struct, prefix: &str, kind: &str, decision: &Decision<'_>) {
    let result = if decision.allowed { "allowed" } else { "denied" };
    fields.fields.insert(format!("{prefix}{kind}_engine_result"), string_value(result));
    if let Some((_, policy)) = decision.policy {
        fields.fields.insert(format!("{prefix}{kind}_effective_policy_id"), string_value(policy));
    }
}

/// `rbac_access_denied_matched_policy[<name>]`: what a refusal's details (the
/// HTTP response's, the network connection's termination) say.
pub fn denied_details(policy: Option<&str>) -> String {
    format!("rbac_access_denied_matched_policy[{}]", policy.unwrap_or("none"))
}

/// The rules both filters read, `envoy.config.rbac.v3`.
pub const SUPPORTED_FIELDS: &[(&str, &[&str])] = &[
    ("envoy.config.rbac.v3.RBAC", &["action", "policies"]),
    ("envoy.config.rbac.v3.Policy", &["permissions", "principals"]),
    (
        "envoy.config.rbac.v3.Permission",
        &[
            "and_rules",
            "or_rules",
            "any",
            "header",
            "url_path",
            "destination_ip",
            "destination_port",
            "destination_port_range",
            "not_rule",
            "requested_server_name",
        ],
    ),
    ("envoy.config.rbac.v3.Permission.Set", &["rules"]),
    (
        "envoy.config.rbac.v3.Principal",
        &[
            "and_ids",
            "or_ids",
            "any",
            "authenticated",
            "source_ip",
            "direct_remote_ip",
            "remote_ip",
            "header",
            "url_path",
            "not_id",
        ],
    ),
    ("envoy.config.rbac.v3.Principal.Set", &["ids"]),
    ("envoy.config.rbac.v3.Principal.Authenticated", &["principal_name"]),
    ("envoy.type.matcher.v3.PathMatcher", &["path"]),
    ("envoy.type.v3.Int32Range", &["start", "end"]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_join_with_one_dot() {
        assert_eq!(join_prefix("tcp", "rbac."), "tcp.rbac.");
        assert_eq!(join_prefix("tcp.", "rbac."), "tcp.rbac.");
        assert_eq!(rules_scope("tcp.rbac.", ""), "tcp.rbac.");
        assert_eq!(rules_scope("tcp.rbac.", "shad_"), "tcp.rbac.shad_.");
        assert_eq!(rules_scope("tcp.rbac.", "shad."), "tcp.rbac.shad.");
    }
}
