//! YAML as Envoy reads it (yaml-cpp, then its own `yamlToJson`), into
//! `serde_json` values: a config written for Envoy reads the same here.
//!
//! Envoy's ways, each checked against Envoy 1.40:
//! - only the first document of a multi-document text is read (`YAML::Load`);
//! - a key given twice takes its last value;
//! - a mapping entry whose key is tagged `!ignore` is dropped: configs use it
//!   to hold YAML anchors outside the schema (`!ignore defs: &x {...}`);
//! - a number is a JSON number only when it is an integer that fits 32 bits;
//!   any other (`2.5`, `12345678901`) becomes a string, which proto3-JSON
//!   reads into a number field alike but which a `Struct` keeps as a string
//!   (`set_metadata` values, `json_format` logs print `"2.5"`).
//!
//! The event parser serde-saphyr reads with (`granit-parser`) finds the
//! `!ignore` keys, since the values serde sees carry no tags; only a text that
//! has one is read twice.

use granit_parser::{Event, Options, Parser};
use serde_json::Value as Json;

/// Reads `text` as a config.
///
/// The parser's default budget stops at 250,000 nodes, about 10,000 clusters;
/// Envoy's YAML reader has no such limit, so node and event counts are bounded
/// only by the text itself (every node takes at least one byte of
/// it). The limits on anchors and aliases, which could expand a small text,
/// stay as they are.
pub fn parse(text: &str) -> Result<Json, String> {
    if text.trim().is_empty() {
        return Ok(Json::Object(Default::default()));
    }
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: usize::MAX,
            max_events: usize::MAX,
            max_total_scalar_bytes: usize::MAX,
        },
        emit_comments: false,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
    };
    let documents: Vec<Json> =
        serde_saphyr::from_str_multiple_with_options(text, options).map_err(|e| e.to_string())?;
    let Some(mut first) = documents.into_iter().next() else {
        return Ok(Json::Object(Default::default()));
    };
    if text.contains("!ignore") {
        for path in ignored_keys(text) {
            remove(&mut first, &path);
        }
    }
    wide_numbers_to_strings(&mut first);
    Ok(first)
}

/// Envoy's `yamlToJson` keeps a scalar a number only when it reads as an
/// `int32`; other numbers are kept as their text. (The text is serde's, so an
/// unusual spelling such as `1e3` reads back as `1000.0`.)
fn wide_numbers_to_strings(value: &mut Json) {
    match value {
        Json::Number(n) if n.as_i64().and_then(|i| i32::try_from(i).ok()).is_none() => {
            *value = Json::String(n.to_string());
        }
        Json::Array(items) => items.iter_mut().for_each(wide_numbers_to_strings),
        Json::Object(map) => map.values_mut().for_each(wide_numbers_to_strings),
        _ => {}
    }
}

/// A step down a document: a mapping's key or a sequence's index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Where a collection being read is, and what comes next in it.
enum Open {
    Seq {
        next: usize,
    },
    /// `key`: the key read whose value comes next (`None`: a key comes next).
    Map {
        key: Option<Step>,
    },
}

/// The paths of the first document's mapping entries whose key is tagged
/// `!ignore`, deepest last (each removal leaves the others' paths valid).
fn ignored_keys(text: &str) -> Vec<Vec<Step>> {
    let mut options = Options::default();
    options.emit_comments = false;
    let mut stack: Vec<Open> = Vec::new();
    let mut path: Vec<Step> = Vec::new();
    let mut found = Vec::new();
    for next in Parser::new_from_str_with_options(text, options) {
        let Ok((event, _)) = next else { break };
        // A node begins: as a map's key, or as the value at the current step.
        let begins_key = matches!(stack.last(), Some(Open::Map { key: None }));
        match event {
            Event::Scalar(value, _, _, tag) if begins_key => {
                let ignored = tag.is_some_and(|t| t.to_string() == "!ignore");
                let step = Step::Key(value.into_owned());
                if ignored {
                    let mut at = path.clone();
                    at.push(step.clone());
                    found.push(at);
                }
                if let Some(Open::Map { key }) = stack.last_mut() {
                    *key = Some(step.clone());
                }
                path.push(step);
            }
            Event::Scalar(..) | Event::Alias(_) if begins_key => {
                // An alias as a key: no path names what it keys.
                if let Some(Open::Map { key }) = stack.last_mut() {
                    *key = Some(Step::Key(String::new()));
                }
                path.push(Step::Key(String::new()));
            }
            Event::Scalar(..) | Event::Alias(_) => {
                enter(&mut stack, &mut path);
                value_done(&mut stack, &mut path);
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if begins_key {
                    // A collection as a key: no path names what it keys.
                    if let Some(Open::Map { key }) = stack.last_mut() {
                        *key = Some(Step::Key(String::new()));
                    }
                    path.push(Step::Key(String::new()));
                } else {
                    enter(&mut stack, &mut path);
                }
                let open = match event {
                    Event::SequenceStart(..) => Open::Seq { next: 0 },
                    _ => Open::Map { key: None },
                };
                stack.push(open);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                stack.pop();
                value_done(&mut stack, &mut path);
            }
            Event::DocumentEnd | Event::StreamEnd => break,
            _ => {}
        }
    }
    found
}

/// A value begins in the innermost collection: a sequence's next item takes
/// its index as its step (a map's value has its key's step already).
fn enter(stack: &mut [Open], path: &mut Vec<Step>) {
    if let Some(Open::Seq { next }) = stack.last() {
        path.push(Step::Index(*next));
    }
}

/// A value is done: the step it took down the path is over.
fn value_done(stack: &mut [Open], path: &mut Vec<Step>) {
    match stack.last_mut() {
        Some(Open::Seq { next }) => {
            *next += 1;
            path.pop();
        }
        Some(Open::Map { key }) => {
            *key = None;
            path.pop();
        }
        None => {}
    }
}

/// Removes the entry `path` names, if the document has it.
fn remove(doc: &mut Json, path: &[Step]) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut node = doc;
    for step in parents {
        let next = match (node, step) {
            (Json::Object(map), Step::Key(k)) => map.get_mut(k),
            (Json::Array(items), Step::Index(i)) => items.get_mut(*i),
            _ => None,
        };
        let Some(next) = next else { return };
        node = next;
    }
    if let (Json::Object(map), Step::Key(k)) = (node, last) {
        map.remove(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_document_is_read() {
        let doc = parse("a: 1\n---\nb: 2\n").expect("two documents");
        assert_eq!(doc, serde_json::json!({ "a": 1 }));
    }

    #[test]
    fn a_repeated_key_takes_its_last_value() {
        let doc = parse("a: 1\nb: { c: first, c: second }\na: 2\n").expect("duplicates");
        assert_eq!(doc, serde_json::json!({ "a": 2, "b": { "c": "second" } }));
    }

    #[test]
    fn ignore_tagged_keys_are_dropped_and_their_anchors_still_serve() {
        let text = "!ignore defs:\n  route: &r { prefix: / }\nlist:\n- name: a\n  !ignore extra: [1, 2]\n  match: *r\n- { name: b, !ignore x: 1 }\ntail: 1\n";
        let doc = parse(text).expect("tags");
        assert_eq!(
            doc,
            serde_json::json!({
                "list": [ { "name": "a", "match": { "prefix": "/" } }, { "name": "b" } ],
                "tail": 1,
            })
        );
    }

    #[test]
    fn an_empty_text_is_an_empty_config() {
        assert_eq!(parse("  \n").expect("empty"), serde_json::json!({}));
        assert_eq!(parse("---\n").expect("a null document"), serde_json::json!({}));
    }
}
