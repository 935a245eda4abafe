//! Envoy's generic matching API (`xds.type.matcher.v3.Matcher`), compiled once
//! from config: a matcher list (predicates tried in order) or a matcher tree (one
//! input looked up in an exact or a prefix map), each entry leading to an action
//! or to a nested matcher, with `on_no_match` when nothing matched.
//!
//! Its users (the route table, RBAC, a filter's `ExtensionWithMatcher`) decide
//! what the actions are: they hand `from_proto` a function that compiles each
//! action's `TypedExtensionConfig`, so this layer names none of them.
//!
//! Matching follows Envoy 1.40 (`MatchTree::handleRecursionAndSkips`): an entry
//! whose nested matcher matches nothing lets the search go on (the next entry of
//! a list, a shorter prefix of a prefix map, then `on_no_match`). `keep_matching`
//! is refused, as Envoy refuses it for each of the users (it only records skipped
//! actions where a user asks for them). An input whose data is not known yet (`NotAvailable`) makes
//! the whole match `InsufficientData`, which the user retries when more of the
//! stream has come. The deprecated `envoy.config.common.matcher.v3.Matcher` has
//! the same wire format and is read through this one.

use std::collections::HashMap;

use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher as EnvoyStringMatcher;
use envoy_types::pb::xds::core::v3::TypedExtensionConfig;
use envoy_types::pb::xds::r#type::matcher::v3::matcher::matcher_list::predicate::{
    single_predicate, MatchType, SinglePredicate,
};
use envoy_types::pb::xds::r#type::matcher::v3::matcher::matcher_list::Predicate as PredicateProto;
use envoy_types::pb::xds::r#type::matcher::v3::matcher::matcher_tree::TreeType;
use envoy_types::pb::xds::r#type::matcher::v3::matcher::{on_match, MatcherType, OnMatch as OnMatchProto};
use envoy_types::pb::xds::r#type::matcher::v3::{Matcher as MatcherProto, StringMatcher as XdsStringMatcher};
use prost::Message;

use super::data_input::{DataInput, InputKinds, InputValue, MatchingData};
use super::string_matcher::StringMatcher;
use crate::config::{ConfigError, FieldPath};

/// Compiles one action's `TypedExtensionConfig`; the path points at it.
pub type ActionBuilder<'a, A> = dyn FnMut(&TypedExtensionConfig, &FieldPath) -> Result<A, ConfigError> + 'a;

/// A compiled `Matcher` whose actions are `A`s.
#[derive(Debug)]
pub struct Matcher<A> {
    kind: Kind<A>,
    on_no_match: Option<OnMatch<A>>,
}

#[derive(Debug)]
enum Kind<A> {
    List(Vec<(Predicate, OnMatch<A>)>),
    Exact {
        input: DataInput,
        map: HashMap<String, OnMatch<A>>,
    },
    /// Longest prefix first.
    Prefix {
        input: DataInput,
        entries: Vec<(String, OnMatch<A>)>,
    },
    /// Neither a list nor a tree: only `on_no_match`.
    Nothing,
}

#[derive(Debug)]
enum OnMatch<A> {
    Action(A),
    Matcher(Box<Matcher<A>>),
}

#[derive(Debug)]
enum Predicate {
    Single(DataInput, StringMatcher),
    Or(Vec<Predicate>),
    And(Vec<Predicate>),
    Not(Box<Predicate>),
}

/// The outcome of a match.
#[derive(Debug, PartialEq, Eq)]
pub enum MatchResult<'a, A> {
    Matched(&'a A),
    NoMatch,
    /// Some input's data is not known yet.
    InsufficientData,
}

/// A predicate's outcome: `None` while its data is not known.
type Decided = Option<bool>;

impl<A> Matcher<A> {
    /// Compiles `m`; `path` points at it. `kinds` are the inputs the user can
    /// feed; `action` compiles each action.
    pub fn from_proto(
        m: &MatcherProto,
        path: &FieldPath,
        kinds: InputKinds,
        action: &mut ActionBuilder<'_, A>,
    ) -> Result<Matcher<A>, ConfigError> {
        let on_no_match = match &m.on_no_match {
            Some(o) => Some(OnMatch::from_proto(o, &path.child("on_no_match"), kinds, action)?),
            None => None,
        };
        let kind = match &m.matcher_type {
            None => Kind::Nothing,
            Some(MatcherType::MatcherList(list)) => {
                let mut p = path.child("matcher_list");
                p.push_field("matchers");
                if list.matchers.is_empty() {
                    return Err(p.error("value must contain at least 1 item(s)"));
                }
                let mut entries = Vec::with_capacity(list.matchers.len());
                for (i, fm) in list.matchers.iter().enumerate() {
                    p.push_index(i);
                    let predicate =
                        fm.predicate.as_ref().ok_or_else(|| p.field_error("predicate", "value is required"))?;
                    let on_match =
                        fm.on_match.as_ref().ok_or_else(|| p.field_error("on_match", "value is required"))?;
                    entries.push((
                        Predicate::from_proto(predicate, &p.child("predicate"), kinds)?,
                        OnMatch::from_proto(on_match, &p.child("on_match"), kinds, action)?,
                    ));
                    p.pop();
                }
                Kind::List(entries)
            }
            Some(MatcherType::MatcherTree(tree)) => {
                let p = path.child("matcher_tree");
                let input = tree.input.as_ref().ok_or_else(|| p.field_error("input", "value is required"))?;
                let input = DataInput::from_proto(input, &p.child("input"), kinds)?;
                let (field, map) = match &tree.tree_type {
                    Some(TreeType::ExactMatchMap(m)) => ("exact_match_map", m),
                    Some(TreeType::PrefixMatchMap(m)) => ("prefix_match_map", m),
                    Some(TreeType::CustomMatch(c)) => {
                        return Err(p.field_error(
                            "custom_match",
                            format!("custom matcher '{}' is not supported by Courier", type_url(c)),
                        ))
                    }
                    None => return Err(p.error("one of exact_match_map, prefix_match_map or custom_match must be set")),
                };
                let mut mp = p.child(field);
                mp.push_field("map");
                if map.map.is_empty() {
                    return Err(mp.error("value must contain at least 1 item(s)"));
                }
                // Sorted, so that the first error reported does not depend on hash order.
                let mut keys: Vec<&String> = map.map.keys().collect();
                keys.sort();
                let mut entries = Vec::with_capacity(keys.len());
                for key in keys {
                    mp.push_key(key);
                    entries.push((key.clone(), OnMatch::from_proto(&map.map[key], &mp, kinds, action)?));
                    mp.pop();
                }
                if field == "exact_match_map" {
                    Kind::Exact { input, map: entries.into_iter().collect() }
                } else {
                    entries.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
                    Kind::Prefix { input, entries }
                }
            }
        };
        Ok(Matcher { kind, on_no_match })
    }

    /// Compiles the deprecated `envoy.config.common.matcher.v3.Matcher`, which has
    /// this one's wire format.
    pub fn from_common_proto(
        m: &envoy_types::pb::envoy::config::common::matcher::v3::Matcher,
        path: &FieldPath,
        kinds: InputKinds,
        action: &mut ActionBuilder<'_, A>,
    ) -> Result<Matcher<A>, ConfigError> {
        let xds = MatcherProto::decode(m.encode_to_vec().as_slice())
            .map_err(|e| path.error(format!("internal: re-reading the matcher failed: {e}")))?;
        Matcher::from_proto(&xds, path, kinds, action)
    }

    /// Matches `data`.
    pub fn find<'a>(&'a self, data: &dyn MatchingData) -> MatchResult<'a, A> {
        match &self.kind {
            Kind::Nothing => handle(self.on_no_match.as_ref(), data),
            Kind::List(entries) => {
                for (predicate, on_match) in entries {
                    match predicate.matches(data) {
                        None => return MatchResult::InsufficientData,
                        Some(false) => continue,
                        Some(true) => match handle(Some(on_match), data) {
                            MatchResult::NoMatch => continue,
                            found => return found,
                        },
                    }
                }
                handle(self.on_no_match.as_ref(), data)
            }
            Kind::Exact { input, map } => match input.read(data) {
                InputValue::NotAvailable => MatchResult::InsufficientData,
                InputValue::Absent => handle(self.on_no_match.as_ref(), data),
                InputValue::Value(v) => match handle(map.get(v.as_ref()), data) {
                    MatchResult::NoMatch => handle(self.on_no_match.as_ref(), data),
                    found => found,
                },
            },
            Kind::Prefix { input, entries } => match input.read(data) {
                InputValue::NotAvailable => MatchResult::InsufficientData,
                InputValue::Absent => handle(self.on_no_match.as_ref(), data),
                InputValue::Value(v) => {
                    for (prefix, on_match) in entries {
                        if !v.starts_with(prefix.as_str()) {
                            continue;
                        }
                        match handle(Some(on_match), data) {
                            MatchResult::NoMatch => continue,
                            found => return found,
                        }
                    }
                    handle(self.on_no_match.as_ref(), data)
                }
            },
        }
    }

    /// Every action of the matcher, nested ones included, in no set order.
    pub fn actions(&self) -> Vec<&A> {
        let mut out = Vec::new();
        self.collect_actions(&mut out);
        out
    }

    fn collect_actions<'a>(&'a self, out: &mut Vec<&'a A>) {
        let entries: Box<dyn Iterator<Item = &OnMatch<A>>> = match &self.kind {
            Kind::List(e) => Box::new(e.iter().map(|(_, o)| o)),
            Kind::Exact { map, .. } => Box::new(map.values()),
            Kind::Prefix { entries, .. } => Box::new(entries.iter().map(|(_, o)| o)),
            Kind::Nothing => Box::new(std::iter::empty()),
        };
        for o in entries.chain(self.on_no_match.as_ref()) {
            match o {
                OnMatch::Action(a) => out.push(a),
                OnMatch::Matcher(m) => m.collect_actions(out),
            }
        }
    }
}

/// Envoy's `handleRecursionAndSkips`.
fn handle<'a, A>(on_match: Option<&'a OnMatch<A>>, data: &dyn MatchingData) -> MatchResult<'a, A> {
    match on_match {
        None => MatchResult::NoMatch,
        Some(OnMatch::Action(a)) => MatchResult::Matched(a),
        Some(OnMatch::Matcher(m)) => m.find(data),
    }
}

impl<A> OnMatch<A> {
    fn from_proto(
        o: &OnMatchProto,
        path: &FieldPath,
        kinds: InputKinds,
        action: &mut ActionBuilder<'_, A>,
    ) -> Result<OnMatch<A>, ConfigError> {
        if o.keep_matching {
            return Err(path.field_error("keep_matching", "keep_matching is not supported in this context"));
        }
        Ok(match &o.on_match {
            Some(on_match::OnMatch::Action(a)) => OnMatch::Action(action(a, &path.child("action"))?),
            Some(on_match::OnMatch::Matcher(m)) => {
                OnMatch::Matcher(Box::new(Matcher::from_proto(m, &path.child("matcher"), kinds, action)?))
            }
            None => return Err(path.error("one of matcher or action must be set")),
        })
    }
}

impl Predicate {
    fn from_proto(p: &PredicateProto, path: &FieldPath, kinds: InputKinds) -> Result<Predicate, ConfigError> {
        let list = |field: &str, items: &[PredicateProto]| -> Result<Vec<Predicate>, ConfigError> {
            let mut lp = path.child(field);
            lp.push_field("predicate");
            if items.len() < 2 {
                return Err(lp.error("value must contain at least 2 item(s)"));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let mut ip = lp.clone();
                    ip.push_index(i);
                    Predicate::from_proto(item, &ip, kinds)
                })
                .collect()
        };
        Ok(match &p.match_type {
            Some(MatchType::SinglePredicate(s)) => single(s, &path.child("single_predicate"), kinds)?,
            Some(MatchType::OrMatcher(l)) => Predicate::Or(list("or_matcher", &l.predicate)?),
            Some(MatchType::AndMatcher(l)) => Predicate::And(list("and_matcher", &l.predicate)?),
            Some(MatchType::NotMatcher(inner)) => {
                Predicate::Not(Box::new(Predicate::from_proto(inner, &path.child("not_matcher"), kinds)?))
            }
            None => {
                return Err(path.error("one of single_predicate, or_matcher, and_matcher or not_matcher must be set"))
            }
        })
    }

    /// Envoy's field matchers: `or` is decided by any predicate that matches
    /// even while another cannot tell yet; `and` by any that does not.
    fn matches(&self, data: &dyn MatchingData) -> Decided {
        match self {
            Predicate::Single(input, m) => match input.read(data) {
                InputValue::NotAvailable => None,
                InputValue::Absent => Some(false),
                InputValue::Value(v) => Some(m.matches(&v)),
            },
            Predicate::Or(items) => {
                let mut undecided = false;
                for p in items {
                    match p.matches(data) {
                        Some(true) => return Some(true),
                        Some(false) => {}
                        None => undecided = true,
                    }
                }
                (!undecided).then_some(false)
            }
            Predicate::And(items) => {
                for p in items {
                    match p.matches(data) {
                        Some(true) => {}
                        other => return other,
                    }
                }
                Some(true)
            }
            Predicate::Not(p) => p.matches(data).map(|m| !m),
        }
    }
}

fn single(s: &SinglePredicate, path: &FieldPath, kinds: InputKinds) -> Result<Predicate, ConfigError> {
    let input = s.input.as_ref().ok_or_else(|| path.field_error("input", "value is required"))?;
    let input = DataInput::from_proto(input, &path.child("input"), kinds)?;
    let matcher = match &s.matcher {
        Some(single_predicate::Matcher::ValueMatch(sm)) => string_matcher(sm, &path.child("value_match"))?,
        Some(single_predicate::Matcher::CustomMatch(c)) => {
            return Err(path
                .field_error("custom_match", format!("input matcher '{}' is not supported by Courier", type_url(c))))
        }
        None => return Err(path.error("one of value_match or custom_match must be set")),
    };
    Ok(Predicate::Single(input, matcher))
}

/// `xds.type.matcher.v3.StringMatcher` has the wire format of Envoy's own, which
/// `StringMatcher` compiles.
fn string_matcher(sm: &XdsStringMatcher, path: &FieldPath) -> Result<StringMatcher, ConfigError> {
    let envoy = EnvoyStringMatcher::decode(sm.encode_to_vec().as_slice())
        .map_err(|e| path.error(format!("internal: re-reading the string matcher failed: {e}")))?;
    StringMatcher::from_proto(&envoy, path)
}

fn type_url(c: &TypedExtensionConfig) -> &str {
    c.typed_config.as_ref().map_or(c.name.as_str(), |a| a.type_url.as_str())
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::collections::HashMap;

    use super::*;
    use crate::config::{bootstrap::parse_yaml, descriptor, proto_json, validate};
    use crate::matcher::ConnectionFacts;

    /// Request headers, and response headers once `response` is set.
    #[derive(Default)]
    struct Data {
        request: HashMap<&'static str, &'static str>,
        response: Option<HashMap<&'static str, &'static str>>,
    }

    impl MatchingData for Data {
        fn connection(&self) -> Option<ConnectionFacts<'_>> {
            None
        }
        fn request_header(&self, name: &str) -> InputValue<'_> {
            InputValue::from_option(self.request.get(name).map(|v| Cow::Borrowed(*v)))
        }
        fn request_trailer(&self, _: &str) -> InputValue<'_> {
            InputValue::NotAvailable
        }
        fn response_header(&self, name: &str) -> InputValue<'_> {
            match &self.response {
                Some(r) => InputValue::from_option(r.get(name).map(|v| Cow::Borrowed(*v))),
                None => InputValue::NotAvailable,
            }
        }
        fn response_trailer(&self, _: &str) -> InputValue<'_> {
            InputValue::NotAvailable
        }
        fn query_param(&self, _: &str) -> InputValue<'_> {
            InputValue::Absent
        }
    }

    fn decode<T: Message + Default>(type_name: &str, yaml: &str) -> Result<T, ConfigError> {
        let json = parse_yaml(yaml).map_err(|e| ConfigError::new("", e))?;
        let desc = descriptor::message(type_name).expect("in the schema");
        let dynamic = proto_json::decode(&desc, &json, &mut FieldPath::new())?;
        validate::validate(&dynamic, &mut FieldPath::new())?;
        Ok(T::decode(dynamic.encode_to_vec().as_slice()).expect("re-decodes"))
    }

    /// Actions are their `name`s.
    fn build(yaml: &str, kinds: InputKinds) -> Result<Matcher<String>, ConfigError> {
        let proto: MatcherProto = decode("xds.type.matcher.v3.Matcher", yaml)?;
        Matcher::from_proto(&proto, &FieldPath::starting_at("m"), kinds, &mut |a, _| Ok(a.name.clone()))
    }

    fn header(name: &str, value_match: &str) -> String {
        format!(
            "{{single_predicate: {{input: {{name: h, typed_config: {{'@type': type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput, header_name: {name}}}}}, value_match: {value_match}}}}}"
        )
    }

    fn found(m: &Matcher<String>, data: &Data) -> Option<String> {
        match m.find(data) {
            MatchResult::Matched(a) => Some(a.clone()),
            MatchResult::NoMatch => None,
            MatchResult::InsufficientData => Some("insufficient".into()),
        }
    }

    fn data(request: &[(&'static str, &'static str)]) -> Data {
        Data { request: request.iter().copied().collect(), response: None }
    }

    #[test]
    fn string_matchers_and_predicates() {
        let m = build(
            &format!(
                "matcher_list: {{matchers: [\
                 {{predicate: {}, on_match: {{action: {{name: suffix, typed_config: {{'@type': type.googleapis.com/google.protobuf.StringValue}}}}}}}},\
                 {{predicate: {{and_matcher: {{predicate: [{}, {}]}}}}, on_match: {{action: {{name: both, typed_config: {{'@type': type.googleapis.com/google.protobuf.StringValue}}}}}}}},\
                 {{predicate: {{not_matcher: {}}}, on_match: {{action: {{name: not_exact, typed_config: {{'@type': type.googleapis.com/google.protobuf.StringValue}}}}}}}}]}}",
                header("a", "{suffix: .txt}"),
                header("b", "{contains: MID, ignore_case: true}"),
                header("c", "{safe_regex: {google_re2: {}, regex: 'x+'}}"),
                header("d", "{exact: keep}"),
            ),
            InputKinds::Http,
        )
        .expect("builds");
        assert_eq!(found(&m, &data(&[("a", "f.txt"), ("d", "keep")])).as_deref(), Some("suffix"));
        assert_eq!(found(&m, &data(&[("b", "a-mid-b"), ("c", "xx"), ("d", "keep")])).as_deref(), Some("both"));
        assert_eq!(found(&m, &data(&[("b", "a-mid-b"), ("c", "xy"), ("d", "keep")])), None);
        // An absent header matches no value, and so its `not` matches.
        assert_eq!(found(&m, &data(&[])).as_deref(), Some("not_exact"));
    }

    #[test]
    fn data_not_available_yet_leaves_the_match_undecided() {
        let response = "{single_predicate: {input: {name: r, typed_config: {'@type': type.googleapis.com/envoy.type.matcher.v3.HttpResponseHeaderMatchInput, header_name: r}}, value_match: {exact: 'y'}}}";
        let m = build(
            &format!(
                "matcher_list: {{matchers: [{{predicate: {{or_matcher: {{predicate: [{}, {response}]}}}}, on_match: {{action: {{name: skip, typed_config: {{'@type': type.googleapis.com/google.protobuf.StringValue}}}}}}}}]}}",
                header("q", "{exact: x}")
            ),
            InputKinds::Http,
        )
        .expect("builds");
        // `or` is decided by a match even while the response is not known.
        assert_eq!(found(&m, &data(&[("q", "x")])).as_deref(), Some("skip"));
        assert_eq!(found(&m, &data(&[])).as_deref(), Some("insufficient"));
        let later = Data { request: HashMap::new(), response: Some([("r", "y")].into_iter().collect()) };
        assert_eq!(found(&m, &later).as_deref(), Some("skip"));
        let later = Data { request: HashMap::new(), response: Some(HashMap::new()) };
        assert_eq!(found(&m, &later), None);
    }

    #[test]
    fn the_deprecated_matcher_reads_as_the_xds_one() {
        let input = "{name: h, typed_config: {'@type': type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput, header_name: k}}";
        let act = |name: &str| {
            format!("{{action: {{name: {name}, typed_config: {{'@type': type.googleapis.com/google.protobuf.StringValue}}}}}}")
        };
        let single = |v: &str| format!("{{single_predicate: {{input: {input}, value_match: {{exact: {v}}}}}}}");
        let list = format!(
            "{{matcher: {{matcher_list: {{matchers: [\
             {{predicate: {{or_matcher: {{predicate: [{}, {}]}}}}, on_match: {}}},\
             {{predicate: {{and_matcher: {{predicate: [{{not_matcher: {}}}, {}]}}}}, on_match: {}}}]}}}}}}",
            single("p1"),
            single("p2"),
            act("either"),
            single("p1"),
            single("p3"),
            act("three")
        );
        let hit = format!(
            "{{matcher: {{matcher_tree: {{input: {input}, exact_match_map: {{map: {{v1: {}}}}}}}}}}}",
            act("hit")
        );
        let tree = format!(
            "matcher_tree: {{input: {input}, prefix_match_map: {{map: {{v: {hit}, p: {list}}}}}}}\non_no_match: {}",
            act("miss")
        );
        let proto: envoy_types::pb::envoy::config::common::matcher::v3::Matcher =
            decode("envoy.config.common.matcher.v3.Matcher", &tree).expect("decodes");
        let m = Matcher::from_common_proto(&proto, &FieldPath::starting_at("m"), InputKinds::Http, &mut |a, _| {
            Ok(a.name.clone())
        })
        .expect("builds");
        assert_eq!(found(&m, &data(&[("k", "v1")])).as_deref(), Some("hit"));
        assert_eq!(found(&m, &data(&[("k", "w")])).as_deref(), Some("miss"));
        assert_eq!(found(&m, &data(&[("k", "v2")])).as_deref(), Some("miss"));
        assert_eq!(found(&m, &data(&[("k", "p2")])).as_deref(), Some("either"));
        assert_eq!(found(&m, &data(&[("k", "p3")])).as_deref(), Some("three"));
        // The list misses, so the prefix map's `on_no_match` answers.
        assert_eq!(found(&m, &data(&[("k", "p4")])).as_deref(), Some("miss"));
        let mut names: Vec<&String> = m.actions();
        names.sort();
        assert_eq!(names, ["either", "hit", "miss", "three"]);
    }

    #[test]
    fn errors_name_the_field() {
        let query = "{name: q, typed_config: {'@type': type.googleapis.com/envoy.type.matcher.v3.HttpRequestQueryParamMatchInput, query_param: q}}";
        let e = build(&format!("matcher_tree: {{input: {query}, exact_match_map: {{map: {{a: {{action: {{name: x, typed_config: {{'@type': type.googleapis.com/google.protobuf.StringValue}}}}}}}}}}}}"), InputKinds::RequestHeaders)
            .unwrap_err();
        assert_eq!(e.path, "m.matcher_tree.input");
        assert_eq!(
            e.reason,
            "Route table can only match on request headers, saw type.googleapis.com/envoy.type.matcher.v3.HttpRequestQueryParamMatchInput"
        );
        let e = build(
            &format!("matcher_list: {{matchers: [{{predicate: {{single_predicate: {{input: {query}, value_match: {{exact: a}}}}}}, on_match: {{action: {{name: x, typed_config: {{'@type': type.googleapis.com/google.protobuf.StringValue}}}}}}}}]}}"),
            InputKinds::RequestHeadersAndConnection,
        )
        .unwrap_err();
        assert_eq!(e.path, "m.matcher_list.matchers[0].predicate.single_predicate.input");
        let e = build(
            &format!("matcher_list: {{matchers: [{{predicate: {}, on_match: {{keep_matching: true, action: {{name: x, typed_config: {{'@type': type.googleapis.com/google.protobuf.StringValue}}}}}}}}]}}", header("a", "{exact: a}")),
            InputKinds::Http,
        )
        .unwrap_err();
        assert_eq!(e.path, "m.matcher_list.matchers[0].on_match.keep_matching");
        let e = build(
            "matcher_tree: {input: {name: t, typed_config: {'@type': type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.TransportProtocolInput}}, exact_match_map: {map: {a: {action: {name: x, typed_config: {'@type': type.googleapis.com/google.protobuf.StringValue}}}}}}",
            InputKinds::Http,
        )
        .unwrap_err();
        assert!(e.reason.contains("TransportProtocolInput"), "{e}");
        let e = build(
            &format!("matcher_list: {{matchers: [{{predicate: {{or_matcher: {{predicate: [{}]}}}}, on_match: {{action: {{name: x, typed_config: {{'@type': type.googleapis.com/google.protobuf.StringValue}}}}}}}}]}}", header("a", "{exact: a}")),
            InputKinds::Http,
        )
        .unwrap_err();
        // The schema's rule, which the loader checks before the matcher is built.
        assert_eq!(e.path, "matcher_list.matchers[0].predicate.or_matcher.predicate");
    }
}
