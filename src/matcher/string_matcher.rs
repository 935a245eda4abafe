//! Envoy's `type.matcher.v3.StringMatcher` and `RegexMatcher`, compiled once.
//!
//! Header matchers, query parameter matchers and the route's `safe_regex` path match
//! all reduce to these. Regexes use the `regex` crate, which, like RE2 (Envoy's
//! `google_re2` engine), runs in linear time; a `RegexMatcher` must match the whole
//! input, so the pattern is anchored at compile time.

use envoy_types::pb::envoy::r#type::matcher::v3::{
    regex_matcher::EngineType, string_matcher::MatchPattern, ListStringMatcher, RegexMatcher,
    StringMatcher as StringMatcherProto,
};
use regex::Regex;

use crate::config::{ConfigError, FieldPath};

/// Compiles a `RegexMatcher` that must match its whole input; `path` points at it.
pub(crate) fn full_match_regex(rm: &RegexMatcher, path: &FieldPath) -> Result<Regex, ConfigError> {
    check_engine(rm, path)?;
    Regex::new(&format!("^(?:{})$", rm.regex)).map_err(|e| path.field_error("regex", format!("invalid regex: {e}")))
}

/// Compiles a `RegexMatcher` used to find (not to match) substrings, as in
/// `regex_rewrite`; `path` points at it.
pub(crate) fn search_regex(rm: &RegexMatcher, path: &FieldPath) -> Result<Regex, ConfigError> {
    check_engine(rm, path)?;
    Regex::new(&rm.regex).map_err(|e| path.field_error("regex", format!("invalid regex: {e}")))
}

// `google_re2` is deprecated (it is the only engine) but still accepted by Envoy.
#[allow(deprecated)]
fn check_engine(rm: &RegexMatcher, path: &FieldPath) -> Result<(), ConfigError> {
    match &rm.engine_type {
        None => Ok(()),
        Some(EngineType::GoogleRe2(re2)) if re2.max_program_size.is_none() => Ok(()),
        Some(EngineType::GoogleRe2(_)) => {
            let mut p = path.clone();
            p.push_field("google_re2");
            Err(p.field_error("max_program_size", "field 'max_program_size' is not supported by Courier"))
        }
    }
}

/// A compiled `StringMatcher`.
#[derive(Debug, Clone)]
pub enum StringMatcher {
    /// `ignore_case` matchers keep their pattern lower-cased (ASCII, as Envoy).
    Exact {
        value: String,
        ignore_case: bool,
    },
    Prefix {
        value: String,
        ignore_case: bool,
    },
    Suffix {
        value: String,
        ignore_case: bool,
    },
    Contains {
        value: String,
        ignore_case: bool,
    },
    /// Whole-input match; `ignore_case` has no effect on it (Envoy's rule).
    Regex(Regex),
}

impl StringMatcher {
    /// Compiles `sm`; `path` points at the `StringMatcher`.
    pub fn from_proto(sm: &StringMatcherProto, path: &FieldPath) -> Result<StringMatcher, ConfigError> {
        let ic = sm.ignore_case;
        let fold = |s: &str| if ic { s.to_ascii_lowercase() } else { s.to_string() };
        let non_empty = |field: &str, s: &str| {
            if s.is_empty() {
                Err(path.field_error(field, "value length must be at least 1 characters"))
            } else {
                Ok(())
            }
        };
        Ok(match &sm.match_pattern {
            Some(MatchPattern::Exact(v)) => StringMatcher::Exact { value: fold(v), ignore_case: ic },
            Some(MatchPattern::Prefix(v)) => {
                non_empty("prefix", v)?;
                StringMatcher::Prefix { value: fold(v), ignore_case: ic }
            }
            Some(MatchPattern::Suffix(v)) => {
                non_empty("suffix", v)?;
                StringMatcher::Suffix { value: fold(v), ignore_case: ic }
            }
            Some(MatchPattern::Contains(v)) => {
                non_empty("contains", v)?;
                StringMatcher::Contains { value: fold(v), ignore_case: ic }
            }
            Some(MatchPattern::SafeRegex(rm)) => {
                let mut p = path.clone();
                p.push_field("safe_regex");
                StringMatcher::Regex(full_match_regex(rm, &p)?)
            }
            Some(MatchPattern::Custom(_)) => {
                return Err(path.field_error("custom", "field 'custom' is not supported by Courier"))
            }
            None => return Err(path.error("one of exact, prefix, suffix, safe_regex or contains must be set")),
        })
    }

    /// Compiles a `ListStringMatcher`'s `patterns` (at least one, as Envoy's
    /// rules say); `path` points at the list.
    pub fn list_from_proto(list: &ListStringMatcher, path: &FieldPath) -> Result<Vec<StringMatcher>, ConfigError> {
        let mut path = path.child("patterns");
        if list.patterns.is_empty() {
            return Err(path.error("value must contain at least 1 item(s)"));
        }
        list.patterns
            .iter()
            .enumerate()
            .map(|(i, sm)| {
                path.push_index(i);
                let m = StringMatcher::from_proto(sm, &path);
                path.pop();
                m
            })
            .collect()
    }

    pub fn matches(&self, input: &str) -> bool {
        match self {
            StringMatcher::Exact { value, ignore_case: false } => input == value,
            StringMatcher::Exact { value, ignore_case: true } => input.eq_ignore_ascii_case(value),
            StringMatcher::Prefix { value, ignore_case } => starts_with(input, value, *ignore_case),
            StringMatcher::Suffix { value, ignore_case: false } => input.ends_with(value.as_str()),
            StringMatcher::Suffix { value, ignore_case: true } => {
                input.len() >= value.len()
                    && input.as_bytes()[input.len() - value.len()..].eq_ignore_ascii_case(value.as_bytes())
            }
            StringMatcher::Contains { value, ignore_case: false } => input.contains(value.as_str()),
            StringMatcher::Contains { value, ignore_case: true } => input.to_ascii_lowercase().contains(value.as_str()),
            StringMatcher::Regex(re) => re.is_match(input),
        }
    }
}

/// `input` starts with `prefix`, optionally ignoring ASCII case.
pub(crate) fn starts_with(input: &str, prefix: &str, ignore_case: bool) -> bool {
    if ignore_case {
        input.len() >= prefix.len() && input.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    } else {
        input.starts_with(prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sm(pattern: MatchPattern, ignore_case: bool) -> StringMatcher {
        let proto = StringMatcherProto { ignore_case, match_pattern: Some(pattern) };
        StringMatcher::from_proto(&proto, &FieldPath::starting_at("m")).expect("valid matcher")
    }

    fn re(regex: &str) -> RegexMatcher {
        RegexMatcher { regex: regex.to_string(), engine_type: None }
    }

    #[test]
    fn string_matcher_kinds_and_ignore_case() {
        assert!(sm(MatchPattern::Exact("abc".into()), false).matches("abc"));
        assert!(!sm(MatchPattern::Exact("abc".into()), false).matches("ABC"));
        assert!(sm(MatchPattern::Exact("abc".into()), true).matches("ABC"));
        assert!(sm(MatchPattern::Prefix("ab".into()), false).matches("abc"));
        assert!(sm(MatchPattern::Prefix("AB".into()), true).matches("abc"));
        assert!(sm(MatchPattern::Suffix("bc".into()), false).matches("abc"));
        assert!(sm(MatchPattern::Suffix("BC".into()), true).matches("abc"));
        assert!(!sm(MatchPattern::Suffix("abcd".into()), true).matches("abc"));
        assert!(sm(MatchPattern::Contains("b".into()), false).matches("abc"));
        assert!(sm(MatchPattern::Contains("B".into()), true).matches("abc"));
        assert!(!sm(MatchPattern::Contains("B".into()), false).matches("abc"));
    }

    #[test]
    fn regex_matches_the_whole_input() {
        let m = sm(MatchPattern::SafeRegex(re(r"\d{3}")), false);
        assert!(m.matches("123"));
        assert!(!m.matches("1234"));
        assert!(!m.matches("a123"));
        // Alternation is anchored as a whole.
        let m = sm(MatchPattern::SafeRegex(re("a|b")), false);
        assert!(m.matches("a") && m.matches("b") && !m.matches("ab"));
    }

    #[test]
    fn errors_name_the_field() {
        let proto = StringMatcherProto { ignore_case: false, match_pattern: Some(MatchPattern::SafeRegex(re("(("))) };
        let err = StringMatcher::from_proto(&proto, &FieldPath::starting_at("x.string_match")).unwrap_err();
        assert_eq!(err.path, "x.string_match.safe_regex.regex");
        assert!(err.reason.starts_with("invalid regex: "), "{}", err.reason);

        let proto = StringMatcherProto { ignore_case: false, match_pattern: Some(MatchPattern::Prefix(String::new())) };
        let err = StringMatcher::from_proto(&proto, &FieldPath::starting_at("x")).unwrap_err();
        assert_eq!(err.path, "x.prefix");

        let proto = StringMatcherProto { ignore_case: false, match_pattern: None };
        assert_eq!(StringMatcher::from_proto(&proto, &FieldPath::starting_at("x")).unwrap_err().path, "x");
    }
}
