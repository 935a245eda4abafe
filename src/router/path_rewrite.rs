//! Path rewriting shared by forwarding (`RouteAction.prefix_rewrite` /
//! `regex_rewrite`) and redirects (`RedirectAction.prefix_rewrite` /
//! `regex_rewrite`).
//!
//! A prefix rewrite replaces the part of `:path` the route matched (its prefix, its
//! exact path, or the whole path for a regex route) and keeps the rest, query
//! included. A regex rewrite replaces every match of the pattern in the path without
//! its query string, then puts the query back. Substitutions use RE2's syntax (`\1`
//! for capture group 1, `\\` for a backslash), checked against the pattern when the
//! config loads.

use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use regex::{Captures, Regex};

use super::request::strip_query_and_fragment;
use crate::config::{ConfigError, FieldPath};
use crate::matcher::string_matcher::search_regex;

/// A compiled path rewrite.
#[derive(Debug, Clone)]
pub(crate) enum PathRewrite {
    Prefix(String),
    Regex(RegexSubstitution),
}

/// A compiled `RegexMatchAndSubstitute`: every match of the pattern is replaced
/// (paths here, header values in `header_to_metadata`).
#[derive(Debug, Clone)]
pub struct RegexSubstitution {
    regex: Regex,
    substitution: Vec<Piece>,
}

impl RegexSubstitution {
    /// Compiles `rms`; `path` points at it.
    pub fn new(rms: &RegexMatchAndSubstitute, path: &FieldPath) -> Result<RegexSubstitution, ConfigError> {
        let mut p = path.clone();
        p.push_field("pattern");
        let pattern = rms.pattern.as_ref().ok_or_else(|| p.error("value is required"))?;
        let regex = search_regex(pattern, &p)?;
        let substitution = parse_substitution(&rms.substitution, regex.captures_len())
            .map_err(|reason| path.field_error("substitution", reason))?;
        Ok(RegexSubstitution { regex, substitution })
    }

    /// `s` with every match replaced.
    pub fn replace_all<'s>(&self, s: &'s str) -> std::borrow::Cow<'s, str> {
        self.regex.replace_all(s, |caps: &Captures<'_>| expand(&self.substitution, caps))
    }
}

/// A piece of an RE2 substitution string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Literal(String),
    Group(usize),
}

impl PathRewrite {
    /// Compiles a `RegexMatchAndSubstitute`; `path` points at it.
    pub(crate) fn regex(rms: &RegexMatchAndSubstitute, path: &FieldPath) -> Result<PathRewrite, ConfigError> {
        RegexSubstitution::new(rms, path).map(PathRewrite::Regex)
    }

    /// Rewrites `path_and_query`, of which the first `matched_len` bytes are what the
    /// route matched (used by prefix rewrites only).
    pub(crate) fn apply(&self, path_and_query: &str, matched_len: usize) -> String {
        match self {
            PathRewrite::Prefix(prefix) => {
                let rest = path_and_query.get(matched_len..).unwrap_or("");
                format!("{prefix}{rest}")
            }
            PathRewrite::Regex(rewrite) => {
                let path = strip_query_and_fragment(path_and_query);
                let rest = &path_and_query[path.len()..];
                format!("{}{rest}", rewrite.replace_all(path))
            }
        }
    }
}

fn expand(pieces: &[Piece], caps: &Captures<'_>) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Literal(s) => out.push_str(s),
            Piece::Group(n) => out.push_str(caps.get(*n).map_or("", |m| m.as_str())),
        }
    }
    out
}

/// Parses an RE2 rewrite string; `groups` counts the pattern's groups, group 0
/// (the whole match) included.
fn parse_substitution(s: &str, groups: usize) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            literal.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => literal.push('\\'),
            Some(d) if d.is_ascii_digit() => {
                let n = d as usize - '0' as usize;
                if n >= groups {
                    return Err(format!(
                        "substitution refers to capture group \\{n}, but the pattern has {} group(s)",
                        groups - 1
                    ));
                }
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Group(n));
            }
            _ => return Err("invalid substitution: '\\' must be followed by a digit or '\\'".to_string()),
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher;

    fn regex_rewrite(pattern: &str, substitution: &str) -> Result<PathRewrite, ConfigError> {
        let rms = RegexMatchAndSubstitute {
            pattern: Some(RegexMatcher { regex: pattern.to_string(), engine_type: None }),
            substitution: substitution.to_string(),
        };
        PathRewrite::regex(&rms, &FieldPath::starting_at("r"))
    }

    #[test]
    fn prefix_rewrite_keeps_the_rest_and_the_query() {
        let r = PathRewrite::Prefix("/v2/".into());
        assert_eq!(r.apply("/api/users?x=1", 5), "/v2/users?x=1");
        assert_eq!(PathRewrite::Prefix("/".into()).apply("/prefix", 7), "/");
    }

    #[test]
    fn regex_rewrite_examples_from_envoy_docs() {
        let r = regex_rewrite("^/service/([^/]+)(/.*)$", r"\2/instance/\1").expect("valid");
        assert_eq!(r.apply("/service/foo/v1/api", 0), "/v1/api/instance/foo");
        let r = regex_rewrite("one", "two").expect("valid");
        assert_eq!(r.apply("/xxx/one/yyy/one/zzz", 0), "/xxx/two/yyy/two/zzz");
        let r = regex_rewrite("^(.*?)one(.*)$", r"\1two\2").expect("valid");
        assert_eq!(r.apply("/xxx/one/yyy/one/zzz", 0), "/xxx/two/yyy/one/zzz");
        let r = regex_rewrite("(?i)/xxx/", "/yyy/").expect("valid");
        assert_eq!(r.apply("/aaa/XxX/bbb", 0), "/aaa/yyy/bbb");
    }

    #[test]
    fn regex_rewrite_leaves_the_query_alone() {
        let r = regex_rewrite("a", "b").expect("valid");
        assert_eq!(r.apply("/a/a?a=a", 0), "/b/b?a=a");
        let r = regex_rewrite("x", r"$1\\").expect("valid");
        assert_eq!(r.apply("/x", 0), r"/$1\");
    }

    #[test]
    fn bad_substitutions_are_config_errors() {
        let e = regex_rewrite("(a)", r"\2").unwrap_err();
        assert_eq!(e.path, "r.substitution");
        assert!(e.reason.contains("capture group \\2"), "{}", e.reason);
        assert_eq!(regex_rewrite("a", r"\q").unwrap_err().path, "r.substitution");
        assert_eq!(regex_rewrite("(", "x").unwrap_err().path, "r.pattern.regex");
    }
}
