//! The line of a config's text that a field path names, for error messages.
//!
//! Decoding reads YAML into `serde_json` values, which keep no positions, and
//! keeping one for every node of a 10,000-cluster config would cost every start-up
//! for the rare config that fails. So the line is found only as an error is
//! printed: the text is parsed again by the event parser serde-saphyr reads with
//! (`granit-parser`), whose events carry their lines, into a tree of keys and
//! lines, and the path (`clusters[0].typed_config.@type`, `m["k"]`) is walked down
//! it. An `Any`'s fields are inline in the text, so its path maps directly; a path
//! that leaves the text (a key of an alias, a default) stops at the nearest node.

use std::collections::HashMap;
use std::rc::Rc;

use granit_parser::{Event, Options, Parser};

use super::{ConfigError, SourceLine};

/// `err` with the line of each of its errors, in the order of `texts` and of their
/// lines: a user reads and fixes them top to bottom. Each text is labelled for the
/// message (`None`: the file the error message already names). A path is given the
/// line of the first text that has it all, else of its nearest ancestor.
pub fn locate(err: ConfigError, texts: &[(Option<&'static str>, &str)]) -> ConfigError {
    let parsed: Vec<_> = texts.iter().filter_map(|(label, text)| Some((*label, SourceLines::parse(text)?))).collect();
    let mut errors = err.into_list();
    for e in &mut errors {
        if e.path.is_empty() {
            continue;
        }
        let found: Vec<_> = parsed.iter().filter_map(|(label, lines)| Some((*label, lines.find(&e.path)?))).collect();
        let best = found.iter().find(|(_, f)| f.exact).or(found.first());
        e.line = best.map(|(source, f)| SourceLine { source: *source, number: f.line });
    }
    let rank = |line: &Option<SourceLine>| match line {
        Some(l) => (texts.iter().position(|(label, _)| *label == l.source).unwrap_or(0), l.number),
        None => (texts.len(), 0),
    };
    // Stable: errors on one line, or with none, keep the order they were found in.
    errors.sort_by_key(|e| rank(&e.line));
    // `errors` holds `err` at least: the fallback is never taken.
    ConfigError::several(errors).unwrap_or_else(|| ConfigError::new("", "no configuration error"))
}

/// The nodes of a text's first document, with their lines.
#[derive(Debug)]
pub struct SourceLines {
    root: Node,
}

/// Where a path is in the text: its line, and whether the path was followed to its
/// end (`exact`) or only to the nearest ancestor the text has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub line: usize,
    pub exact: bool,
}

#[derive(Debug)]
enum Node {
    Scalar {
        line: usize,
    },
    Seq {
        line: usize,
        items: Vec<Node>,
    },
    Map {
        line: usize,
        entries: Vec<Entry>,
    },
    /// An anchored node, shared by its aliases rather than copied.
    Shared(Rc<Node>),
}

#[derive(Debug)]
struct Entry {
    /// The key as written, or empty for a key that is not a scalar.
    key: String,
    /// The key's line: where the user wrote the field's name.
    line: usize,
    value: Node,
}

/// A collection being read.
enum Open {
    Seq { line: usize, anchor: usize, items: Vec<Node> },
    Map { line: usize, anchor: usize, entries: Vec<Entry>, key: Option<(String, usize)> },
}

impl Node {
    fn line(&self) -> usize {
        match self {
            Node::Scalar { line } | Node::Seq { line, .. } | Node::Map { line, .. } => *line,
            Node::Shared(n) => n.line(),
        }
    }

    fn resolved(&self) -> &Node {
        match self {
            Node::Shared(n) => n.resolved(),
            n => n,
        }
    }
}

impl SourceLines {
    /// Reads `text` (YAML or JSON); `None` when it does not parse.
    pub fn parse(text: &str) -> Option<SourceLines> {
        let mut options = Options::default();
        options.emit_comments = false;
        let mut stack: Vec<Open> = Vec::new();
        let mut anchors: HashMap<usize, Rc<Node>> = HashMap::new();
        for next in Parser::new_from_str_with_options(text, options) {
            let (event, span) = next.ok()?;
            let line = span.start.line();
            let done = match event {
                Event::Scalar(value, _, anchor, _) => {
                    // A scalar key is kept as text, not as a node.
                    if let Some(Open::Map { key: key @ None, .. }) = stack.last_mut() {
                        *key = Some((value.into_owned(), line));
                        continue;
                    }
                    shared(Node::Scalar { line }, anchor, &mut anchors)
                }
                Event::Alias(id) => Node::Shared(anchors.get(&id)?.clone()),
                Event::SequenceStart(_, anchor, _) => {
                    stack.push(Open::Seq { line, anchor, items: Vec::new() });
                    continue;
                }
                Event::MappingStart(_, anchor, _) => {
                    stack.push(Open::Map { line, anchor, entries: Vec::new(), key: None });
                    continue;
                }
                Event::SequenceEnd | Event::MappingEnd => match stack.pop()? {
                    Open::Seq { line, anchor, items } => shared(Node::Seq { line, items }, anchor, &mut anchors),
                    Open::Map { line, anchor, entries, .. } => {
                        shared(Node::Map { line, entries }, anchor, &mut anchors)
                    }
                },
                Event::DocumentEnd | Event::StreamEnd => break,
                _ => continue,
            };
            match stack.last_mut() {
                None => return Some(SourceLines { root: done }),
                Some(Open::Seq { items, .. }) => items.push(done),
                Some(Open::Map { entries, key, .. }) => match key.take() {
                    Some((key, line)) => entries.push(Entry { key, line, value: done }),
                    // A key that is a collection or an alias: no path names it.
                    None => *key = Some((String::new(), done.line())),
                },
            }
        }
        None
    }

    /// The line of the node `path` names (`static_resources.clusters[0].name`), or of
    /// its nearest ancestor in the text; `None` when not even the first segment is.
    pub fn find(&self, path: &str) -> Option<Found> {
        let mut node = &self.root;
        let mut line = None;
        for segment in segments(path) {
            match step(node, &segment) {
                Some((next, at)) => {
                    node = next;
                    line = Some(at);
                }
                None => return line.map(|line| Found { line, exact: false }),
            }
        }
        line.map(|line| Found { line, exact: true })
    }
}

/// `node`, shared when it carries an anchor so that its aliases can point at it.
fn shared(node: Node, anchor: usize, anchors: &mut HashMap<usize, Rc<Node>>) -> Node {
    if anchor == 0 {
        return node;
    }
    let node = Rc::new(node);
    anchors.insert(anchor, node.clone());
    Node::Shared(node)
}

#[derive(Debug, PartialEq, Eq)]
enum Segment<'a> {
    /// `.name`: a field, written in the text as `name` or its lowerCamelCase.
    Field(&'a str),
    /// `[3]`
    Index(usize),
    /// `["k"]`: a map's key, as written.
    Key(&'a str),
}

/// The segments of a path as `FieldPath` displays it.
fn segments(mut path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    while !path.is_empty() {
        if let Some(rest) = path.strip_prefix("[\"") {
            let end = rest.find("\"]").unwrap_or(rest.len());
            out.push(Segment::Key(&rest[..end]));
            path = rest.get(end + 2..).unwrap_or("");
        } else if let Some(rest) = path.strip_prefix('[') {
            let end = rest.find(']').unwrap_or(rest.len());
            match rest[..end].parse() {
                Ok(i) => out.push(Segment::Index(i)),
                Err(_) => break,
            }
            path = rest.get(end + 1..).unwrap_or("");
        } else {
            let rest = path.strip_prefix('.').unwrap_or(path);
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            out.push(Segment::Field(&rest[..end]));
            path = &rest[end..];
        }
    }
    out
}

/// One segment down from `node`: the node it names and the line to report for it
/// (a field's key, a list item's start).
fn step<'a>(node: &'a Node, segment: &Segment) -> Option<(&'a Node, usize)> {
    match (node.resolved(), segment) {
        (Node::Map { entries, .. }, Segment::Field(name)) => entry(entries, &|key| same_field(key, name)),
        (Node::Map { entries, .. }, Segment::Key(wanted)) => entry(entries, &|key| key == *wanted),
        (Node::Seq { items, .. }, Segment::Index(i)) => items.get(*i).map(|item| (item, item.line())),
        // A single value where a list is expected stands for a list of one.
        (one, Segment::Index(0)) => Some((one, one.line())),
        _ => None,
    }
}

/// The entry whose key `matches`, looking through merge keys (`<<: *base`) when the
/// map does not have it itself, as YAML's merge does.
fn entry<'a>(entries: &'a [Entry], matches: &dyn Fn(&str) -> bool) -> Option<(&'a Node, usize)> {
    if let Some(e) = entries.iter().find(|e| matches(&e.key)) {
        return Some((&e.value, e.line));
    }
    entries.iter().filter(|e| e.key == "<<").find_map(|e| match e.value.resolved() {
        Node::Map { entries, .. } => entry(entries, matches),
        Node::Seq { items, .. } => items.iter().find_map(|item| match item.resolved() {
            Node::Map { entries, .. } => entry(entries, matches),
            _ => None,
        }),
        Node::Scalar { .. } | Node::Shared(_) => None,
    })
}

/// A key as written in the text names the field `name` (as the schema spells it)
/// either way proto3-JSON accepts: `connect_timeout` or `connectTimeout`.
fn same_field(key: &str, name: &str) -> bool {
    let squash = |s: &str| s.chars().filter(|c| *c != '_').map(|c| c.to_ascii_lowercase()).collect::<Vec<_>>();
    key == name || squash(key) == squash(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, path: &str) -> Option<(usize, bool)> {
        let lines = SourceLines::parse(text).expect("parses");
        lines.find(path).map(|f| (f.line, f.exact))
    }

    #[test]
    fn paths_split_into_fields_indexes_and_keys() {
        use Segment::*;
        assert_eq!(
            segments("a.b[2][\"x.y[0]\"].@type"),
            vec![Field("a"), Field("b"), Index(2), Key("x.y[0]"), Field("@type")]
        );
        assert_eq!(segments(""), vec![]);
    }

    #[test]
    fn nested_maps_and_lists_give_the_line_of_the_key_or_item() {
        let text = "\
static_resources:
  clusters:
  - name: a
  - name: b
    conect_timeout: 1s
    load_assignment:
      endpoints:
      -
        lb_endpoints: []
";
        assert_eq!(line(text, "static_resources"), Some((1, true)));
        assert_eq!(line(text, "static_resources.clusters"), Some((2, true)));
        assert_eq!(line(text, "static_resources.clusters[1]"), Some((4, true)));
        assert_eq!(line(text, "static_resources.clusters[1].conect_timeout"), Some((5, true)));
        assert_eq!(
            line(text, "static_resources.clusters[1].load_assignment.endpoints[0].lb_endpoints"),
            Some((9, true))
        );
        // Not in the text (a default, or a wrong path): the nearest ancestor's line.
        assert_eq!(line(text, "static_resources.clusters[1].connect_timeout.seconds"), Some((4, false)));
        assert_eq!(line(text, "static_resources.clusters[7].name"), Some((2, false)));
        assert_eq!(line(text, "admin.address"), None);
    }

    #[test]
    fn flow_style_quoted_keys_and_camel_case() {
        let text = "\
clusters: [{name: a},
  {name: b, \"connectTimeout\": 1s,
   'typed_extension_protocol_options': {\"envoy.x\": {a: 1}}}]
";
        assert_eq!(line(text, "clusters[1].connect_timeout"), Some((2, true)));
        assert_eq!(line(text, "clusters[1].typed_extension_protocol_options[\"envoy.x\"].a"), Some((3, true)));
        assert_eq!(line(text, "clusters[1].typed_extension_protocol_options[\"envoy.y\"]"), Some((3, false)));
    }

    #[test]
    fn an_anys_fields_are_inline() {
        let text = "\
filters:
- name: envoy.filters.network.http_connection_manager
  typed_config:
    \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
    stat_prefix: x
    typed_per_filter_config:
      envoy.filters.http.csrf: {\"@type\": t}
    upgrade_configs: [{upgrade_type: websocket}]
";
        assert_eq!(line(text, "filters[0].typed_config.@type"), Some((4, true)));
        assert_eq!(line(text, "filters[0].typed_config.upgrade_configs"), Some((8, true)));
        assert_eq!(line(text, "filters[0].typed_config.upgrade_configs[0].upgrade_type"), Some((8, true)));
        assert_eq!(
            line(text, "filters[0].typed_config.typed_per_filter_config[\"envoy.filters.http.csrf\"].@type"),
            Some((7, true))
        );
    }

    #[test]
    fn a_single_value_stands_for_a_list_of_one() {
        let text = "filter_chains:\n  filters:\n  - name: f\n";
        assert_eq!(line(text, "filter_chains[0].filters[0].name"), Some((3, true)));
    }

    #[test]
    fn aliases_and_merge_keys_point_into_the_anchor() {
        let text = "\
base: &base
  connect_timeout: 1s
  type: STATIK
clusters:
- <<: *base
  name: a
- *base
- <<: [*base]
  name: c
";
        assert_eq!(line(text, "clusters[0].name"), Some((6, true)));
        assert_eq!(line(text, "clusters[0].type"), Some((3, true)));
        assert_eq!(line(text, "clusters[1].connect_timeout"), Some((2, true)));
        assert_eq!(line(text, "clusters[2].type"), Some((3, true)));
    }

    #[test]
    fn json_is_read_too() {
        let text = "{\n  \"admin\": {\n    \"address\": {}\n  },\n  \"node\": {\"id\": \"x\"}\n}\n";
        assert_eq!(line(text, "admin.address"), Some((3, true)));
        assert_eq!(line(text, "node.id"), Some((5, true)));
    }

    #[test]
    fn text_that_does_not_parse_has_no_lines() {
        assert!(SourceLines::parse("a: [1, 2").is_none());
    }
}
