//! `json_format` dictionaries: a (nested) map whose string values are format strings,
//! printed as one JSON object per line with keys sorted, as Envoy does.
//!
//! With typed values (`SubstitutionFormatString.json_format`, `typed_json_format`) a
//! value that is exactly one operator keeps its type: numbers for `%RESPONSE_CODE%`,
//! `%BYTES_SENT%`, durations, ports...; `null` when missing. Anything else, and every
//! value of the deprecated all-strings `json_format`, is a string with `-` for missing
//! parts. `omit_empty_values` drops null members and prints missing parts as `""`.

use serde_json::{Map, Value};

pub(crate) use crate::common::json::escape_into;

use super::operator::Kind;
use super::{FormatContext, FormatString, UNSPECIFIED};

const UNSUPPORTED_VALUE: &str =
    "Only string values, nested structs, list values and number values are supported in structured access log format.";

/// A parsed `json_format`.
#[derive(Debug, Clone)]
pub struct JsonFormat {
    root: Vec<Member>,
    preserve_types: bool,
    omit_empty_values: bool,
}

#[derive(Debug, Clone)]
struct Member {
    /// `"key":`, escaped once at parse time.
    key: Box<str>,
    value: Node,
}

#[derive(Debug, Clone)]
enum Node {
    Map(Vec<Member>),
    List(Vec<Node>),
    Format(FormatString),
    Number(serde_json::Number),
}

impl JsonFormat {
    /// Adds the headers this format reads to `used`.
    pub fn headers_used(&self, used: &mut super::HeadersUsed) {
        fn walk(node: &Node, used: &mut super::HeadersUsed) {
            match node {
                Node::Map(members) => members.iter().for_each(|m| walk(&m.value, used)),
                Node::List(items) => items.iter().for_each(|n| walk(n, used)),
                Node::Format(f) => f.headers_used(used),
                Node::Number(_) => {}
            }
        }
        self.root.iter().for_each(|m| walk(&m.value, used));
    }

    /// Parses a dictionary, with typed values and `-`/`null` kept (Envoy's
    /// `SubstitutionFormatString.json_format`). The error names the key.
    pub fn parse(map: &Map<String, Value>) -> Result<JsonFormat, String> {
        Ok(JsonFormat { root: members(map, "")?, preserve_types: true, omit_empty_values: false })
    }

    /// False renders every value as a string (the deprecated `json_format` of
    /// `FileAccessLog`).
    pub fn preserve_types(mut self, yes: bool) -> Self {
        self.preserve_types = yes;
        self
    }

    /// `SubstitutionFormatString.omit_empty_values`.
    pub fn omit_empty_values(mut self, yes: bool) -> Self {
        self.omit_empty_values = yes;
        self
    }

    /// One JSON object and a newline.
    pub fn format(&self, cx: &FormatContext<'_>) -> String {
        let mut out = String::with_capacity(256);
        self.format_into(cx, &mut out);
        out
    }

    /// Appends one JSON object and a newline to `out`.
    pub fn format_into(&self, cx: &FormatContext<'_>, out: &mut String) {
        let mut scratch = String::with_capacity(64);
        self.write_map(&self.root, cx, out, &mut scratch);
        out.push('\n');
    }

    fn write_map(&self, members: &[Member], cx: &FormatContext<'_>, out: &mut String, scratch: &mut String) {
        out.push('{');
        let mut first = true;
        for m in members {
            let mark = out.len();
            if !first {
                out.push(',');
            }
            out.push_str(&m.key);
            if self.write_node(&m.value, cx, out, scratch) {
                first = false;
            } else {
                out.truncate(mark);
            }
        }
        out.push('}');
    }

    /// Writes the value; false (and possibly garbage to truncate) when it is null and
    /// omitted.
    fn write_node(&self, node: &Node, cx: &FormatContext<'_>, out: &mut String, scratch: &mut String) -> bool {
        match node {
            Node::Map(members) => self.write_map(members, cx, out, scratch),
            Node::List(items) => {
                out.push('[');
                let mut first = true;
                for item in items {
                    let mark = out.len();
                    if !first {
                        out.push(',');
                    }
                    if self.write_node(item, cx, out, scratch) {
                        first = false;
                    } else {
                        out.truncate(mark);
                    }
                }
                out.push(']');
            }
            Node::Number(n) => {
                if self.preserve_types {
                    out.push_str(&n.to_string());
                } else {
                    escape_into(&n.to_string(), out);
                }
            }
            Node::Format(f) => return self.write_format(f, cx, out, scratch),
        }
        true
    }

    fn write_format(&self, f: &FormatString, cx: &FormatContext<'_>, out: &mut String, scratch: &mut String) -> bool {
        scratch.clear();
        let Some(op) = f.single_operator() else {
            // Literal text, or several parts: always a string.
            f.write(cx, scratch, if self.omit_empty_values { "" } else { UNSPECIFIED });
            escape_into(scratch, out);
            return true;
        };
        match op.write(cx, scratch) {
            Kind::Missing if self.omit_empty_values => return false,
            Kind::Missing if self.preserve_types => out.push_str("null"),
            Kind::Missing => escape_into(UNSPECIFIED, out),
            Kind::Number | Kind::Json if self.preserve_types => out.push_str(scratch),
            Kind::Number | Kind::Json | Kind::Text => escape_into(scratch, out),
        }
        true
    }
}

/// The members of `map`, sorted by key; `prefix` names the enclosing key in errors.
fn members(map: &Map<String, Value>, prefix: &str) -> Result<Vec<Member>, String> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        let value = node(&map[k.as_str()], &name)?;
        let mut key = String::with_capacity(k.len() + 3);
        escape_into(k, &mut key);
        key.push(':');
        out.push(Member { key: key.into_boxed_str(), value });
    }
    Ok(out)
}

fn node(v: &Value, name: &str) -> Result<Node, String> {
    Ok(match v {
        Value::String(s) => Node::Format(FormatString::parse(s).map_err(|e| format!("{name}: {e}"))?),
        Value::Object(m) => Node::Map(members(m, name)?),
        Value::Array(items) => Node::List(
            items.iter().enumerate().map(|(i, v)| node(v, &format!("{name}[{i}]"))).collect::<Result<_, _>>()?,
        ),
        Value::Number(n) => Node::Number(n.clone()),
        Value::Bool(_) | Value::Null => return Err(format!("{name}: {UNSUPPORTED_VALUE}")),
    })
}
