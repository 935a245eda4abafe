//! The bootstrap's `stats_config`: which stats a store keeps (`stats_matcher`), how
//! their names become Prometheus labels (`stats_tags`, `use_all_default_tags`) and
//! which buckets a histogram shows there (`histogram_bucket_settings`). All are
//! decided when a stat is created or listed, never when it is updated.

use std::sync::Arc;

use envoy_types::pb::envoy::config::metrics::v3::{
    stats_matcher::StatsMatcher as MatcherKind, tag_specifier::TagValue, StatsConfig as StatsConfigProto, TagSpecifier,
};
use envoy_types::pb::envoy::r#type::matcher::v3::ListStringMatcher;
use regex::Regex;

use super::distribution::DEFAULT_BUCKETS;
use super::tag_extractor::{label_name, TagProducer};
use crate::config::{ConfigError, FieldPath};
use crate::matcher::StringMatcher;

/// What a store follows; the default is Envoy's (every stat, default tags, default
/// histogram buckets).
#[derive(Debug, Clone)]
pub struct StatsConfig {
    tags: Arc<TagProducer>,
    matcher: Option<Arc<NameMatcher>>,
    /// `histogram_bucket_settings`: the first whose matcher takes a histogram's
    /// name gives its bounds, sorted.
    buckets: Arc<[(StringMatcher, Vec<f64>)]>,
}

/// `stats_matcher`: which full stat names are kept.
#[derive(Debug)]
enum NameMatcher {
    RejectAll,
    /// Keeps a name unless one pattern matches it.
    Exclusion(Vec<StringMatcher>),
    /// Keeps a name only if one pattern matches it.
    Inclusion(Vec<StringMatcher>),
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig { tags: TagProducer::envoy_defaults(), matcher: None, buckets: Arc::new([]) }
    }
}

impl StatsConfig {
    /// Compiles `stats_config`; `path` points at it.
    pub fn from_proto(proto: &StatsConfigProto, path: &FieldPath) -> Result<StatsConfig, ConfigError> {
        let mut path = path.clone();
        let tags = tag_producer(proto, &mut path)?;
        path.push_field("stats_matcher");
        let matcher = match proto.stats_matcher.as_ref().and_then(|m| m.stats_matcher.as_ref()) {
            None | Some(MatcherKind::RejectAll(false)) => None,
            Some(MatcherKind::RejectAll(true)) => Some(NameMatcher::RejectAll),
            Some(MatcherKind::ExclusionList(list)) => {
                Some(NameMatcher::Exclusion(patterns(list, &path, "exclusion_list")?))
            }
            Some(MatcherKind::InclusionList(list)) => {
                Some(NameMatcher::Inclusion(patterns(list, &path, "inclusion_list")?))
            }
        };
        path.pop();
        let buckets = bucket_settings(proto, &mut path)?;
        Ok(StatsConfig { tags: Arc::new(tags), matcher: matcher.map(Arc::new), buckets: buckets.into() })
    }

    /// The tag extractors for the Prometheus format.
    pub fn tags(&self) -> &TagProducer {
        &self.tags
    }

    /// The bucket bounds of the histogram named `name`, for `/stats/prometheus`.
    pub fn buckets(&self, name: &str) -> &[f64] {
        self.buckets.iter().find(|(m, _)| m.matches(name)).map_or(&DEFAULT_BUCKETS, |(_, b)| b.as_slice())
    }

    /// Whether some names may be rejected (else every name is kept).
    pub fn matches_some(&self) -> bool {
        self.matcher.is_some()
    }

    /// Whether a stat named `name` is created in the store (listed by the admin).
    pub fn keeps(&self, name: &str) -> bool {
        match self.matcher.as_deref() {
            None => true,
            Some(NameMatcher::RejectAll) => false,
            Some(NameMatcher::Exclusion(list)) => !list.iter().any(|m| m.matches(name)),
            Some(NameMatcher::Inclusion(list)) => list.iter().any(|m| m.matches(name)),
        }
    }
}

/// `histogram_bucket_settings`: each needs a `match` and at least one bound above
/// zero (Envoy's validation); Envoy sorts the bounds.
fn bucket_settings(
    proto: &StatsConfigProto,
    path: &mut FieldPath,
) -> Result<Vec<(StringMatcher, Vec<f64>)>, ConfigError> {
    path.push_field("histogram_bucket_settings");
    let mut settings = Vec::with_capacity(proto.histogram_bucket_settings.len());
    for (i, setting) in proto.histogram_bucket_settings.iter().enumerate() {
        path.push_index(i);
        let Some(sm) = setting.r#match.as_ref() else {
            return Err(path.field_error("match", "value is required"));
        };
        path.push_field("match");
        let matcher = StringMatcher::from_proto(sm, path)?;
        path.pop();
        if setting.buckets.is_empty() {
            return Err(path.field_error("buckets", "value must contain at least 1 item(s)"));
        }
        if let Some(j) = setting.buckets.iter().position(|&b| b.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater))
        {
            return Err(path.field_error(&format!("buckets[{j}]"), "value must be greater than 0"));
        }
        let mut bounds = setting.buckets.clone();
        bounds.sort_by(f64::total_cmp);
        settings.push((matcher, bounds));
        path.pop();
    }
    path.pop();
    Ok(settings)
}

fn patterns(list: &ListStringMatcher, path: &FieldPath, field: &str) -> Result<Vec<StringMatcher>, ConfigError> {
    StringMatcher::list_from_proto(list, &path.child(field))
}

/// Envoy's `TagProducerImpl`: the defaults unless `use_all_default_tags` is false,
/// then each `stats_tags` entry; a tag name may appear once.
fn tag_producer(proto: &StatsConfigProto, path: &mut FieldPath) -> Result<TagProducer, ConfigError> {
    let use_defaults = proto.use_all_default_tags.as_ref().is_none_or(|b| b.value);
    let mut tags = TagProducer::new(use_defaults);
    path.push_field("stats_tags");
    for (i, spec) in proto.stats_tags.iter().enumerate() {
        path.push_index(i);
        add_tag(&mut tags, spec, path)?;
        path.pop();
    }
    path.pop();
    Ok(tags)
}

fn add_tag(tags: &mut TagProducer, spec: &TagSpecifier, path: &FieldPath) -> Result<(), ConfigError> {
    if spec.tag_name.is_empty() {
        return Err(path.field_error("tag_name", "value length must be at least 1 characters"));
    }
    let label = label_name(&spec.tag_name);
    if tags.has(&label) {
        // Envoy 1.40 accepts it and runs both, so a series may get one label
        // twice; Courier does not reproduce that.
        let reason = format!(
            "Courier refuses a tag name given twice or equal to a default tag in use ('{}' is label '{label}')",
            spec.tag_name
        );
        return Err(path.field_error("tag_name", reason));
    }
    let re = match &spec.tag_value {
        Some(TagValue::FixedValue(value)) => {
            tags.add_fixed(&spec.tag_name, value.clone());
            return Ok(());
        }
        Some(TagValue::Regex(re)) => re.as_str(),
        None => "",
    };
    if re.is_empty() {
        // Envoy falls back to its default extractors of that name.
        if tags.add_defaults_named(&label) == 0 {
            let reason =
                format!("No regex specified for tag specifier and no default regex for name: '{}'", spec.tag_name);
            return Err(path.field_error("regex", reason));
        }
        return Ok(());
    }
    tags.add_regex(&spec.tag_name, compile(re, path)?);
    Ok(())
}

/// A `stats_tags` regex. Envoy runs it with `std::regex` (ECMAScript), Courier with
/// the `regex` crate: only the syntax both read alike is accepted (see
/// `outside_shared_syntax`), and a regex without a capture group is refused, as it
/// would tag with nothing cut out.
fn compile(re: &str, path: &FieldPath) -> Result<Regex, ConfigError> {
    if let Some(what) = outside_shared_syntax(re) {
        return Err(path.field_error("regex", format!("Courier cannot run this regex as Envoy does: {what}")));
    }
    let compiled = Regex::new(re).map_err(|e| path.field_error("regex", format!("Invalid regex '{re}': {e}")))?;
    if compiled.captures_len() < 2 {
        return Err(path.field_error("regex", "Courier needs a capture group: group 1 is cut out of the name"));
    }
    Ok(compiled)
}

/// What in `re` the two engines read differently or only one of them reads: a
/// `(?` group other than `(?:` (look-around is ECMAScript's only; flags and named
/// groups the `regex` crate's only), a letter escape outside `\d \D \w \W \s \S
/// \b \B \n \r \t \f \v` (`\p`, `\A`, `\z`, ...), and the `regex` crate's class
/// set operators `&&`, `--`, `~~`.
fn outside_shared_syntax(re: &str) -> Option<&'static str> {
    let mut chars = re.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) if e.is_ascii_alphabetic() && !"dDwWsSbBnrtfv".contains(e) => {
                    return Some("an escape ECMAScript does not share");
                }
                _ => {}
            },
            '(' if chars.peek() == Some(&'?') => {
                chars.next();
                if chars.peek() != Some(&':') {
                    return Some("a (? group other than (?: (look-around, flags, named groups)");
                }
            }
            '&' | '-' | '~' if chars.peek() == Some(&c) => return Some("a class set operator (&&, --, ~~)"),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<StatsConfig, ConfigError> {
        use crate::config::{bootstrap::parse_yaml, descriptor, proto_json};
        let json = parse_yaml(yaml).expect("yaml");
        let desc = descriptor::message("envoy.config.metrics.v3.StatsConfig").expect("schema");
        let msg = proto_json::decode(&desc, &json, &mut FieldPath::new()).expect("decode");
        let proto: StatsConfigProto = msg.transcode_to().expect("transcode");
        StatsConfig::from_proto(&proto, &FieldPath::starting_at("stats_config"))
    }

    /// A config with one `stats_tags` regex, `re`, given as it is (no YAML escaping).
    fn parse_tag(re: &str) -> Result<StatsConfig, ConfigError> {
        let spec = TagSpecifier { tag_name: "a".into(), tag_value: Some(TagValue::Regex(re.into())) };
        let proto = StatsConfigProto { stats_tags: vec![spec], ..Default::default() };
        StatsConfig::from_proto(&proto, &FieldPath::starting_at("stats_config"))
    }

    fn refusal(yaml: &str) -> String {
        parse(yaml).expect_err(yaml).to_string()
    }

    #[test]
    fn stats_tags_refused_values_name_their_field() {
        // Envoy refuses these too.
        let e = refusal("stats_tags: [{tag_name: foo}]");
        assert!(
            e.contains("stats_config.stats_tags[0].regex") && e.contains("no default regex for name: 'foo'"),
            "{e}"
        );
        let e = refusal("stats_matcher: {exclusion_list: {patterns: []}}");
        assert!(e.contains("stats_config.stats_matcher.exclusion_list.patterns"), "{e}");
        // Envoy accepts these; Courier cannot act the same.
        let e = refusal(r#"stats_tags: [{tag_name: envoy.cluster_name, regex: "^cluster\\.((.+?)\\.)"}]"#);
        assert!(e.contains("stats_config.stats_tags[0].tag_name"), "{e}");
        let e = refusal(r#"stats_tags: [{tag_name: a, fixed_value: x1}, {tag_name: a, fixed_value: y1}]"#);
        assert!(e.contains("stats_config.stats_tags[1].tag_name"), "{e}");
        let e = refusal(r#"stats_tags: [{tag_name: a, regex: "^cluster"}]"#);
        assert!(e.contains("stats_config.stats_tags[0].regex") && e.contains("capture group"), "{e}");
        // Each refused by Envoy's std::regex, or read differently by it.
        for re in [r"^c\.((?=x).)", r"(?i)^c\.((x)\.)", r"^c\.(\pL+\.)", r"\Ac\.((x)\.)", r"^c\.([a--b])"] {
            let e = parse_tag(re).expect_err(re).to_string();
            assert!(e.contains("stats_config.stats_tags[0].regex") && e.contains("as Envoy does"), "{re}: {e}");
        }
        parse_tag(r"^c\.((?:[[:alpha:]]\w*)-\d\.)").expect("shared syntax");
    }

    #[test]
    fn a_tag_without_regex_brings_back_the_default_of_its_name() {
        let c = parse("use_all_default_tags: false\nstats_tags: [{tag_name: envoy.cluster_name}]").expect("valid");
        let tagged = c.tags().extract("cluster.web.upstream_rq_200");
        assert_eq!(tagged.name, "cluster.upstream_rq_200");
        assert_eq!(tagged.tags.len(), 1);
    }

    #[test]
    fn histogram_buckets_first_match_sorted() {
        let c = parse(
            "histogram_bucket_settings: [{match: {prefix: a.}, buckets: [10, 1]}, {match: {suffix: _ms}, buckets: [5]}]",
        )
        .expect("valid");
        assert_eq!(c.buckets("a.x_ms"), [1.0, 10.0]);
        assert_eq!(c.buckets("b.x_ms"), [5.0]);
        assert_eq!(c.buckets("b.x"), DEFAULT_BUCKETS);
        let e = refusal("histogram_bucket_settings: [{match: {prefix: a.}, buckets: [1, 0]}]");
        assert!(e.contains("stats_config.histogram_bucket_settings[0].buckets[1]"), "{e}");
        let e = refusal("histogram_bucket_settings: [{match: {prefix: a.}}]");
        assert!(e.contains("stats_config.histogram_bucket_settings[0].buckets"), "{e}");
        let e = refusal("histogram_bucket_settings: [{buckets: [1]}]");
        assert!(e.contains("stats_config.histogram_bucket_settings[0].match"), "{e}");
    }

    #[test]
    fn matchers_decide_by_full_name() {
        let c = parse("stats_matcher: {inclusion_list: {patterns: [{prefix: cluster.}]}}").expect("valid");
        assert!(c.keeps("cluster.web.upstream_rq_total") && !c.keeps("server.live"));
        let c = parse("stats_matcher: {exclusion_list: {patterns: [{suffix: _total}]}}").expect("valid");
        assert!(!c.keeps("cluster.web.upstream_rq_total") && c.keeps("server.live"));
        assert!(!parse("stats_matcher: {reject_all: true}").expect("valid").keeps("server.live"));
        assert!(!parse("stats_matcher: {reject_all: false}").expect("valid").matches_some());
    }
}
