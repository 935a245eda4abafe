//! `request_headers_to_add` / `_to_remove` and `response_headers_to_add` /
//! `_to_remove` of a route, its virtual host and the route configuration, combined
//! into one `HeaderMutation` per route and direction.
//!
//! Each level is applied as Envoy's `HeaderParser::evaluateHeaders` does: first the
//! removals, then every value is formatted against the headers as they are at that
//! point, then the overwrites are set and finally the appends added. Levels run from
//! the route to the route configuration (the least specific level has the last word),
//! or the other way round with `most_specific_header_mutations_wins`.
//!
//! Values are substitution format strings (`%REQ(x-id)%`, `%DOWNSTREAM_REMOTE_ADDRESS%`,
//! ...), with `%%` for a literal `%`; a missing value prints as the empty string, not
//! `-`, and an empty value is dropped unless `keep_empty_value` is set. Literal values
//! are turned into header values once, at load.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::HeaderValueOption;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{ConfigError, FieldPath};
use crate::formatter::{FormatContext, FormatString};
use crate::stream_info::StreamInfo;

/// Envoy's `HeaderValueOption.HeaderAppendAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendAction {
    /// Add a value, keeping any existing ones (the default).
    AppendIfExistsOrAdd,
    /// Add only when the header is absent.
    AddIfAbsent,
    /// Replace existing values, or add.
    OverwriteIfExistsOrAdd,
    /// Replace existing values; do nothing when absent.
    OverwriteIfExists,
}

#[derive(Debug, Clone)]
enum Value {
    /// A literal, already a header value (`None`: the empty string).
    Literal(Option<HeaderValue>),
    Format(FormatString),
}

#[derive(Debug, Clone)]
struct HeaderAdd {
    name: HeaderName,
    value: Value,
    action: AppendAction,
    keep_empty_value: bool,
}

/// The edits of one level (route, virtual host or route configuration).
#[derive(Debug, Clone, Default)]
pub(crate) struct HeaderEdits {
    remove: Vec<HeaderName>,
    add: Vec<HeaderAdd>,
}

/// What one level decided once its values are formatted.
#[derive(Default)]
struct Plan {
    overwrite: Vec<(HeaderName, HeaderValue)>,
    append: Vec<(HeaderName, HeaderValue)>,
}

impl HeaderEdits {
    /// Compiles `*_headers_to_add` and `*_headers_to_remove` of one message; `path`
    /// points at that message, `add_field` / `remove_field` name the two fields.
    pub(crate) fn from_proto(
        add: &[HeaderValueOption],
        remove: &[String],
        path: &FieldPath,
        add_field: &str,
        remove_field: &str,
    ) -> Result<HeaderEdits, ConfigError> {
        let mut edits = HeaderEdits::default();
        for (i, name) in remove.iter().enumerate() {
            let mut p = path.clone();
            p.push_field(remove_field);
            p.push_index(i);
            edits.remove.push(modifiable_name(name, &p, "removed")?);
        }
        for (i, option) in add.iter().enumerate() {
            let mut p = path.clone();
            p.push_field(add_field);
            p.push_index(i);
            edits.add.push(header_add(option, &p)?);
        }
        Ok(edits)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }

    fn remove_from(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
    }

    fn plan(&self, headers: &HeaderMap, cx: &FormatContext<'_>) -> Plan {
        let mut plan = Plan::default();
        for add in &self.add {
            let value = match &add.value {
                Value::Literal(v) => v.clone(),
                Value::Format(f) => {
                    let mut s = String::new();
                    f.write(cx, &mut s, "");
                    if s.is_empty() {
                        None
                    } else {
                        // A value that cannot be a header value (CR, LF, NUL) is dropped.
                        match HeaderValue::from_str(&s) {
                            Ok(v) => Some(v),
                            Err(_) => continue,
                        }
                    }
                }
            };
            let value = match value {
                Some(v) => v,
                None if add.keep_empty_value => HeaderValue::from_static(""),
                None => continue,
            };
            let present = headers.contains_key(&add.name);
            match add.action {
                AppendAction::AppendIfExistsOrAdd => plan.append.push((add.name.clone(), value)),
                AppendAction::AddIfAbsent if !present => plan.append.push((add.name.clone(), value)),
                AppendAction::AddIfAbsent => {}
                AppendAction::OverwriteIfExists if !present => {}
                AppendAction::OverwriteIfExists | AppendAction::OverwriteIfExistsOrAdd => {
                    plan.overwrite.push((add.name.clone(), value))
                }
            }
        }
        plan
    }

    fn commit(headers: &mut HeaderMap, plan: Plan) {
        for (name, value) in plan.overwrite {
            headers.insert(name, value);
        }
        for (name, value) in plan.append {
            headers.append(name, value);
        }
    }
}

fn modifiable_name(name: &str, path: &FieldPath, verb: &str) -> Result<HeaderName, ConfigError> {
    let lower = name.to_ascii_lowercase();
    if lower.starts_with(':') || lower == "host" {
        return Err(path.error(format!(":-prefixed or host headers may not be {verb}")));
    }
    HeaderName::from_bytes(lower.as_bytes()).map_err(|_| path.error(format!("invalid header name '{name}'")))
}

// `append` is deprecated in favour of `append_action` but still Envoy's API.
#[allow(deprecated)]
fn header_add(option: &HeaderValueOption, path: &FieldPath) -> Result<HeaderAdd, ConfigError> {
    let mut hp = path.clone();
    hp.push_field("header");
    let header = option.header.as_ref().ok_or_else(|| hp.error("value is required"))?;
    let name = {
        let mut p = hp.clone();
        p.push_field("key");
        modifiable_name(&header.key, &p, "modified")?
    };
    // `raw_value` is refused by the supported-fields check: Envoy 1.40's header
    // edits add nothing for it.
    let (text, field) = (header.value.clone(), "value");
    let format = FormatString::parse(&text).map_err(|e| hp.field_error(field, e))?;
    let value = if format.is_literal() {
        let literal = literal_text(&format);
        if literal.is_empty() {
            Value::Literal(None)
        } else {
            Value::Literal(Some(
                HeaderValue::from_str(&literal)
                    .map_err(|_| hp.field_error(field, format!("invalid header value '{literal}'")))?,
            ))
        }
    } else {
        Value::Format(format)
    };
    let action = match (&option.append, HeaderAppendAction::try_from(option.append_action)) {
        (Some(_), Ok(a)) if a != HeaderAppendAction::AppendIfExistsOrAdd => {
            return Err(path.field_error("append", "Both append and append_action are set and it's not allowed"))
        }
        (Some(append), _) if append.value => AppendAction::AppendIfExistsOrAdd,
        (Some(_), _) => AppendAction::OverwriteIfExistsOrAdd,
        (None, Ok(HeaderAppendAction::AppendIfExistsOrAdd)) => AppendAction::AppendIfExistsOrAdd,
        (None, Ok(HeaderAppendAction::AddIfAbsent)) => AppendAction::AddIfAbsent,
        (None, Ok(HeaderAppendAction::OverwriteIfExistsOrAdd)) => AppendAction::OverwriteIfExistsOrAdd,
        (None, Ok(HeaderAppendAction::OverwriteIfExists)) => AppendAction::OverwriteIfExists,
        (None, Err(_)) => {
            return Err(path.field_error("append_action", format!("unknown append action {}", option.append_action)))
        }
    };
    Ok(HeaderAdd { name, value, action, keep_empty_value: option.keep_empty_value })
}

/// The text of a format string without operators.
fn literal_text(format: &FormatString) -> String {
    let info = StreamInfo::new(
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        "HTTP/1.1",
    );
    format.format(&FormatContext::new(&info))
}

/// The header edits of one direction for one route, all levels in Envoy's order.
#[derive(Debug, Clone, Default)]
pub struct HeaderMutation {
    levels: Vec<Arc<HeaderEdits>>,
}

impl HeaderMutation {
    /// Combines levels given in application order; empty levels are skipped.
    pub(crate) fn from_levels(levels: impl IntoIterator<Item = Arc<HeaderEdits>>) -> HeaderMutation {
        HeaderMutation { levels: levels.into_iter().filter(|l| !l.is_empty()).collect() }
    }

    /// The one level of a message's `*_headers_to_add` list `field` (an HTTP filter's
    /// `response_headers_to_add`, ...), which has no removals; `path` points at the
    /// message.
    pub(crate) fn additions(
        add: &[HeaderValueOption],
        path: &FieldPath,
        field: &str,
    ) -> Result<HeaderMutation, ConfigError> {
        let edits = HeaderEdits::from_proto(add, &[], path, field, "")?;
        Ok(HeaderMutation::from_levels([Arc::new(edits)]))
    }

    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    /// Applies every level to `headers`, formatting values with `cx`. `cx` cannot see
    /// `headers` themselves; to format against the headers being edited (`%REQ(...)%`
    /// on a request, `%RESP(...)%` on a response) use `apply_to_request` or
    /// `apply_to_response`.
    pub fn apply(&self, headers: &mut HeaderMap, cx: &FormatContext<'_>) {
        for level in &self.levels {
            level.remove_from(headers);
            let plan = level.plan(headers, cx);
            HeaderEdits::commit(headers, plan);
        }
    }

    /// Applies request header edits to the request itself: each level's values see
    /// the request as the previous levels left it.
    pub fn apply_to_request(&self, parts: &mut Parts, info: &StreamInfo) {
        for level in &self.levels {
            level.remove_from(&mut parts.headers);
            let plan = level.plan(&parts.headers, &FormatContext::for_request(parts, info));
            HeaderEdits::commit(&mut parts.headers, plan);
        }
    }

    /// Applies response header edits: values see the request (`%REQ(...)%`) and the
    /// response headers as the previous levels left them (`%RESP(...)%`).
    pub fn apply_to_response(&self, response: &mut HeaderMap, request: Option<&Parts>, info: &StreamInfo) {
        for level in &self.levels {
            level.remove_from(response);
            let plan = {
                let cx = FormatContext {
                    request_headers: request.map(|r| &r.headers as &dyn crate::formatter::HeaderLookup),
                    request_method: request.map(|r| &r.method),
                    request_uri: request.map(|r| &r.uri),
                    request_target: None,
                    response_headers: Some(response),
                    response_trailers: None,
                    local_reply_body: None,
                    info,
                };
                level.plan(response, &cx)
            };
            HeaderEdits::commit(response, plan);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::HeaderValue as HeaderValueProto;
    use envoy_types::pb::google::protobuf::BoolValue;

    #[allow(deprecated)]
    fn option(key: &str, value: &str, action: HeaderAppendAction) -> HeaderValueOption {
        HeaderValueOption {
            header: Some(HeaderValueProto { key: key.into(), value: value.into(), raw_value: vec![] }),
            append: None,
            append_action: action as i32,
            keep_empty_value: false,
        }
    }

    fn edits(add: Vec<HeaderValueOption>, remove: &[&str]) -> Result<HeaderEdits, ConfigError> {
        let remove: Vec<String> = remove.iter().map(|s| s.to_string()).collect();
        HeaderEdits::from_proto(
            &add,
            &remove,
            &FieldPath::starting_at("r"),
            "request_headers_to_add",
            "request_headers_to_remove",
        )
    }

    fn mutation(levels: Vec<HeaderEdits>) -> HeaderMutation {
        HeaderMutation::from_levels(levels.into_iter().map(Arc::new))
    }

    fn info() -> StreamInfo {
        StreamInfo::new(SocketAddr::from(([127, 0, 0, 1], 1)), SocketAddr::from(([127, 0, 0, 1], 2)), "HTTP/1.1")
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).expect("name"), HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    fn values(h: &HeaderMap, name: &str) -> Vec<String> {
        h.get_all(name).iter().map(|v| v.to_str().unwrap_or("?").to_string()).collect()
    }

    fn run(m: &HeaderMutation, start: &[(&str, &str)]) -> HeaderMap {
        let mut h = headers(start);
        let info = info();
        m.apply(&mut h, &FormatContext::new(&info));
        h
    }

    #[test]
    fn append_actions_with_literal_values() {
        use HeaderAppendAction::*;
        let m = mutation(vec![edits(
            vec![
                option("x-append", "new", AppendIfExistsOrAdd),
                option("x-absent", "new", AddIfAbsent),
                option("x-present", "new", AddIfAbsent),
                option("x-over", "new", OverwriteIfExistsOrAdd),
                option("x-over-missing", "new", OverwriteIfExistsOrAdd),
                option("x-only", "new", OverwriteIfExists),
                option("x-only-missing", "new", OverwriteIfExists),
            ],
            &[],
        )
        .expect("valid")]);
        let h = run(
            &m,
            &[("x-append", "old"), ("x-present", "old"), ("x-over", "old"), ("x-over", "old2"), ("x-only", "old")],
        );
        assert_eq!(values(&h, "x-append"), ["old", "new"]);
        assert_eq!(values(&h, "x-absent"), ["new"]);
        assert_eq!(values(&h, "x-present"), ["old"]);
        assert_eq!(values(&h, "x-over"), ["new"]);
        assert_eq!(values(&h, "x-over-missing"), ["new"]);
        assert_eq!(values(&h, "x-only"), ["new"]);
        assert!(values(&h, "x-only-missing").is_empty());
    }

    #[test]
    #[allow(deprecated)]
    fn deprecated_append_bool() {
        let mut o = option("x-a", "new", HeaderAppendAction::AppendIfExistsOrAdd);
        o.append = Some(BoolValue { value: false });
        let m = mutation(vec![edits(vec![o.clone()], &[]).expect("valid")]);
        assert_eq!(values(&run(&m, &[("x-a", "old")]), "x-a"), ["new"]);
        o.append = Some(BoolValue { value: true });
        let m = mutation(vec![edits(vec![o.clone()], &[]).expect("valid")]);
        assert_eq!(values(&run(&m, &[("x-a", "old")]), "x-a"), ["old", "new"]);
        o.append_action = HeaderAppendAction::AddIfAbsent as i32;
        let e = edits(vec![o], &[]).unwrap_err();
        assert_eq!(e.path, "r.request_headers_to_add[0].append");
    }

    #[test]
    fn removal_comes_first_and_empty_values_are_dropped() {
        let mut keep = option("x-keep", "", HeaderAppendAction::AppendIfExistsOrAdd);
        keep.keep_empty_value = true;
        let m = mutation(vec![edits(
            vec![
                option("x-a", "added", HeaderAppendAction::AddIfAbsent),
                option("x-empty", "", HeaderAppendAction::AppendIfExistsOrAdd),
                keep,
            ],
            &["x-a"],
        )
        .expect("valid")]);
        let h = run(&m, &[("x-a", "old")]);
        assert_eq!(values(&h, "x-a"), ["added"]);
        assert!(!h.contains_key("x-empty"));
        assert_eq!(values(&h, "x-keep"), [""]);
    }

    #[test]
    fn levels_apply_in_order_later_wins() {
        use HeaderAppendAction::*;
        let route =
            edits(vec![option("x-o", "route", OverwriteIfExistsOrAdd), option("x-i", "route", AddIfAbsent)], &[])
                .expect("valid");
        let vhost =
            edits(vec![option("x-o", "vhost", OverwriteIfExistsOrAdd), option("x-i", "vhost", AddIfAbsent)], &[])
                .expect("valid");
        let h = run(&mutation(vec![route.clone(), vhost.clone()]), &[]);
        assert_eq!(values(&h, "x-o"), ["vhost"]);
        assert_eq!(values(&h, "x-i"), ["route"], "the vhost level sees the route level's header");
        let h = run(&mutation(vec![vhost, route]), &[]);
        assert_eq!(values(&h, "x-o"), ["route"]);
        assert!(mutation(vec![HeaderEdits::default()]).is_empty());
    }

    #[test]
    fn escaped_percent_is_literal_and_operators_are_formatted() {
        let m = mutation(vec![edits(
            vec![
                option("x-pct", "100%%", HeaderAppendAction::AppendIfExistsOrAdd),
                option("x-copy", "id=%REQ(x-id)%", HeaderAppendAction::AppendIfExistsOrAdd),
                option("x-missing", "%REQ(x-nope)%", HeaderAppendAction::AppendIfExistsOrAdd),
            ],
            &[],
        )
        .expect("valid")]);
        let mut parts = http::Request::builder().uri("/").header("x-id", "7").body(()).expect("req").into_parts().0;
        m.apply_to_request(&mut parts, &info());
        assert_eq!(values(&parts.headers, "x-pct"), ["100%"]);
        assert_eq!(values(&parts.headers, "x-copy"), ["id=7"]);
        assert!(!parts.headers.contains_key("x-missing"), "a missing value is empty, and empty values are dropped");
    }

    #[test]
    fn response_values_see_the_response() {
        let m =
            mutation(vec![edits(vec![option("x-echo", "%RESP(x-up)%", HeaderAppendAction::AppendIfExistsOrAdd)], &[])
                .expect("valid")]);
        let mut h = headers(&[("x-up", "u")]);
        m.apply_to_response(&mut h, None, &info());
        assert_eq!(values(&h, "x-echo"), ["u"]);
    }

    #[test]
    fn additions_alone() {
        let m = HeaderMutation::additions(
            &[
                option("x-m", "%REQ(:METHOD)%", HeaderAppendAction::AppendIfExistsOrAdd),
                option("x-c", "3", HeaderAppendAction::AddIfAbsent),
            ],
            &FieldPath::starting_at("f"),
            "response_headers_to_add",
        )
        .expect("valid");
        let req = http::Request::builder().method("PUT").uri("/").body(()).expect("req").into_parts().0;
        let info = info();
        let mut h = headers(&[("x-c", "0")]);
        m.apply(&mut h, &FormatContext::for_request(&req, &info));
        assert_eq!(values(&h, "x-m"), ["PUT"]);
        assert_eq!(values(&h, "x-c"), ["0"]);
        assert!(HeaderMutation::additions(&[], &FieldPath::starting_at("f"), "x").expect("valid").is_empty());
        let e = HeaderMutation::additions(
            &[option(":path", "1", HeaderAppendAction::AppendIfExistsOrAdd)],
            &FieldPath::starting_at("f"),
            "response_headers_to_add",
        )
        .unwrap_err();
        assert_eq!(e.path, "f.response_headers_to_add[0].header.key");
    }

    #[test]
    fn config_errors() {
        let e = edits(vec![option(":path", "x", HeaderAppendAction::AppendIfExistsOrAdd)], &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "r.request_headers_to_add[0].header.key: :-prefixed or host headers may not be modified"
        );
        let e = edits(vec![], &["ok", "Host"]).unwrap_err();
        assert_eq!(e.to_string(), "r.request_headers_to_remove[1]: :-prefixed or host headers may not be removed");
        let e =
            edits(vec![option("x-a", "%NOT_AN_OPERATOR%", HeaderAppendAction::AppendIfExistsOrAdd)], &[]).unwrap_err();
        assert_eq!(e.path, "r.request_headers_to_add[0].header.value");
        let e = edits(vec![option("bad name", "v", HeaderAppendAction::AppendIfExistsOrAdd)], &[]).unwrap_err();
        assert_eq!(e.path, "r.request_headers_to_add[0].header.key");
    }
}
