//! The part of the generic matching API's schema Courier implements, in the
//! layout of `config::supported::SUPPORTED_FIELDS` (merged in
//! `extensions::supported`). The deprecated `envoy.config.common.matcher.v3`
//! messages are read as the `xds` ones (`Matcher::from_common_proto`) and list the
//! same fields. `custom_match` (custom matchers and input matchers) is refused,
//! and `keep_matching`, as Envoy refuses it for every user Courier has.
//! The actions' types are listed by their users.

/// `(message full name, supported fields)`.
pub const MATCHER_SUPPORTED_FIELDS: &[(&str, &[&str])] = &[
    ("xds.core.v3.TypedExtensionConfig", &["name", "typed_config"]),
    ("xds.type.matcher.v3.Matcher", &["matcher_list", "matcher_tree", "on_no_match"]),
    ("xds.type.matcher.v3.Matcher.OnMatch", &["matcher", "action"]),
    ("xds.type.matcher.v3.Matcher.MatcherList", &["matchers"]),
    ("xds.type.matcher.v3.Matcher.MatcherList.FieldMatcher", &["predicate", "on_match"]),
    (
        "xds.type.matcher.v3.Matcher.MatcherList.Predicate",
        &["single_predicate", "or_matcher", "and_matcher", "not_matcher"],
    ),
    ("xds.type.matcher.v3.Matcher.MatcherList.Predicate.SinglePredicate", &["input", "value_match"]),
    ("xds.type.matcher.v3.Matcher.MatcherList.Predicate.PredicateList", &["predicate"]),
    ("xds.type.matcher.v3.Matcher.MatcherTree", &["input", "exact_match_map", "prefix_match_map"]),
    ("xds.type.matcher.v3.Matcher.MatcherTree.MatchMap", &["map"]),
    ("xds.type.matcher.v3.StringMatcher", &["exact", "prefix", "suffix", "safe_regex", "contains", "ignore_case"]),
    ("xds.type.matcher.v3.RegexMatcher", &["google_re2", "regex"]),
    ("xds.type.matcher.v3.RegexMatcher.GoogleRE2", &[]),
    ("envoy.config.common.matcher.v3.Matcher", &["matcher_list", "matcher_tree", "on_no_match"]),
    ("envoy.config.common.matcher.v3.Matcher.OnMatch", &["matcher", "action"]),
    ("envoy.config.common.matcher.v3.Matcher.MatcherList", &["matchers"]),
    ("envoy.config.common.matcher.v3.Matcher.MatcherList.FieldMatcher", &["predicate", "on_match"]),
    (
        "envoy.config.common.matcher.v3.Matcher.MatcherList.Predicate",
        &["single_predicate", "or_matcher", "and_matcher", "not_matcher"],
    ),
    ("envoy.config.common.matcher.v3.Matcher.MatcherList.Predicate.SinglePredicate", &["input", "value_match"]),
    ("envoy.config.common.matcher.v3.Matcher.MatcherList.Predicate.PredicateList", &["predicate"]),
    ("envoy.config.common.matcher.v3.Matcher.MatcherTree", &["input", "exact_match_map", "prefix_match_map"]),
    ("envoy.config.common.matcher.v3.Matcher.MatcherTree.MatchMap", &["map"]),
    ("envoy.type.matcher.v3.HttpRequestHeaderMatchInput", &["header_name"]),
    ("envoy.type.matcher.v3.HttpRequestTrailerMatchInput", &["header_name"]),
    ("envoy.type.matcher.v3.HttpResponseHeaderMatchInput", &["header_name"]),
    ("envoy.type.matcher.v3.HttpResponseTrailerMatchInput", &["header_name"]),
    ("envoy.type.matcher.v3.HttpRequestQueryParamMatchInput", &["query_param"]),
    ("envoy.extensions.matching.common_inputs.network.v3.DestinationIPInput", &[]),
    ("envoy.extensions.matching.common_inputs.network.v3.DestinationPortInput", &[]),
    ("envoy.extensions.matching.common_inputs.network.v3.SourceIPInput", &[]),
    ("envoy.extensions.matching.common_inputs.network.v3.SourcePortInput", &[]),
    ("envoy.extensions.matching.common_inputs.network.v3.DirectSourceIPInput", &[]),
    ("envoy.extensions.matching.common_inputs.network.v3.ServerNameInput", &[]),
    ("envoy.extensions.matching.common_inputs.network.v3.SourceTypeInput", &[]),
];

/// The inputs' config types, which the config walk accepts as `Any`s (the
/// transport and application protocol inputs are network matching's, which no
/// user of the matcher has yet).
pub const INPUT_TYPES: &[&str] = &[
    "envoy.type.matcher.v3.HttpRequestHeaderMatchInput",
    "envoy.type.matcher.v3.HttpRequestTrailerMatchInput",
    "envoy.type.matcher.v3.HttpResponseHeaderMatchInput",
    "envoy.type.matcher.v3.HttpResponseTrailerMatchInput",
    "envoy.type.matcher.v3.HttpRequestQueryParamMatchInput",
    "envoy.extensions.matching.common_inputs.network.v3.DestinationIPInput",
    "envoy.extensions.matching.common_inputs.network.v3.DestinationPortInput",
    "envoy.extensions.matching.common_inputs.network.v3.SourceIPInput",
    "envoy.extensions.matching.common_inputs.network.v3.SourcePortInput",
    "envoy.extensions.matching.common_inputs.network.v3.DirectSourceIPInput",
    "envoy.extensions.matching.common_inputs.network.v3.ServerNameInput",
    "envoy.extensions.matching.common_inputs.network.v3.SourceTypeInput",
];
