//! Trace context in and out as Envoy 1.40's Datadog tracer (dd-trace-cpp with
//! its default styles) reads and writes it, checked by running Envoy against an
//! upstream that echoes what it receives. In: the `x-datadog-*` headers first,
//! else W3C `traceparent`/`tracestate` (the `dd` member carrying the sampling
//! priority, origin and `_dd.p.*` tags); a context that does not parse is no
//! context, and a new trace starts (Envoy makes no null span here). Out: both
//! styles, always: `x-datadog-trace-id`, `-parent-id`, `-sampling-priority`,
//! `-origin` and `-tags` when there are any, and `traceparent` with a
//! `tracestate` whose `dd` member comes first, the caller's other members after.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::extensions::tracers::opentelemetry::traceparent::{self, TRACEPARENT, TRACESTATE};
use crate::extensions::tracers::zipkin::span_context::hex16;

pub const X_DATADOG_TRACE_ID: HeaderName = HeaderName::from_static("x-datadog-trace-id");
pub const X_DATADOG_PARENT_ID: HeaderName = HeaderName::from_static("x-datadog-parent-id");
pub const X_DATADOG_SAMPLING_PRIORITY: HeaderName = HeaderName::from_static("x-datadog-sampling-priority");
pub const X_DATADOG_ORIGIN: HeaderName = HeaderName::from_static("x-datadog-origin");
pub const X_DATADOG_TAGS: HeaderName = HeaderName::from_static("x-datadog-tags");

/// The tag holding a 128-bit trace id's upper half, in 16 hex digits.
pub const TID: &str = "_dd.p.tid";
/// The tag naming how the sampling decision was made (`-0`: locally, by the agent's rate).
pub const DECISION_MAKER: &str = "_dd.p.dm";
const PROPAGATED_PREFIX: &str = "_dd.p.";

/// A caller's context, or a new trace's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    pub trace_id_high: u64,
    pub trace_id: u64,
    /// The caller's span: the new span's parent (0 for none).
    pub parent_id: u64,
    pub priority: Option<i32>,
    pub origin: Option<String>,
    /// The trace's `_dd.p.*` tags, in the order they came.
    pub tags: Vec<(String, String)>,
    /// The caller's `tracestate` members other than `dd`, passed on after ours.
    pub other_trace_state: String,
    /// For a W3C context, the last Datadog span on the path (the `dd` member's
    /// `p`, else 16 zeros): the span's `_dd.parent_id` meta, as Envoy's.
    pub last_datadog_parent: Option<String>,
}

fn header<'h>(h: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The caller's context: Datadog's headers win over W3C's.
pub fn extract(h: &HeaderMap) -> Option<Context> {
    extract_datadog(h).or_else(|| extract_w3c(h))
}

fn extract_datadog(h: &HeaderMap) -> Option<Context> {
    let trace_id = header(h, &X_DATADOG_TRACE_ID)?.parse::<u64>().ok().filter(|&id| id != 0)?;
    let parent_id = match header(h, &X_DATADOG_PARENT_ID) {
        Some(p) => p.parse::<u64>().ok()?,
        None => 0,
    };
    let priority = header(h, &X_DATADOG_SAMPLING_PRIORITY).and_then(|p| p.parse::<i32>().ok());
    let origin = header(h, &X_DATADOG_ORIGIN).map(str::to_owned);
    let mut tags = Vec::new();
    for pair in header(h, &X_DATADOG_TAGS).unwrap_or("").split(',') {
        if let Some((k, v)) = pair.split_once('=') {
            if k.starts_with(PROPAGATED_PREFIX) {
                tags.push((k.to_owned(), v.to_owned()));
            }
        }
    }
    let trace_id_high = tags.iter().find(|(k, _)| k == TID).and_then(|(_, v)| u64::from_str_radix(v, 16).ok());
    Some(Context {
        trace_id_high: trace_id_high.unwrap_or(0),
        trace_id,
        parent_id,
        priority,
        origin,
        tags,
        other_trace_state: String::new(),
        last_datadog_parent: None,
    })
}

fn extract_w3c(h: &HeaderMap) -> Option<Context> {
    let traceparent::Extracted::Parent(p) = traceparent::extract(h) else { return None };
    let high = u64::from_be_bytes(p.trace_id[..8].try_into().ok()?);
    let mut ctx = Context {
        trace_id_high: high,
        trace_id: u64::from_be_bytes(p.trace_id[8..].try_into().ok()?),
        parent_id: u64::from_be_bytes(p.span_id),
        last_datadog_parent: Some("0000000000000000".to_owned()),
        ..Context::default()
    };
    let mut dd_priority = None;
    let mut others = Vec::new();
    for member in p.trace_state.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let Some(dd) = member.strip_prefix("dd=") else {
            others.push(member);
            continue;
        };
        for field in dd.split(';') {
            match field.split_once(':') {
                Some(("s", v)) => dd_priority = v.parse::<i32>().ok(),
                Some(("o", v)) => ctx.origin = Some(v.to_owned()),
                Some(("p", v)) => ctx.last_datadog_parent = Some(v.to_owned()),
                Some((k, v)) if k.starts_with("t.") => {
                    ctx.tags.push((format!("{PROPAGATED_PREFIX}{}", &k[2..]), v.replace('~', "=")))
                }
                _ => {}
            }
        }
    }
    // The `dd` member's priority stands when it agrees with the sampled flag.
    ctx.priority = Some(match dd_priority {
        Some(s) if (s > 0) == p.sampled => s,
        _ => i32::from(p.sampled),
    });
    if high != 0 {
        ctx.tags.retain(|(k, _)| k != TID);
        ctx.tags.push((TID.to_owned(), hex16(high)));
    }
    ctx.other_trace_state = others.join(",");
    Some(ctx)
}

/// Writes the span's context (`span_id` being the next hop's parent).
pub fn inject(ctx: &Context, span_id: u64, priority: i32, h: &mut HeaderMap) {
    let mut itoa = itoa::Buffer::new();
    let mut put = |name: HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    put(X_DATADOG_TRACE_ID, itoa.format(ctx.trace_id));
    put(X_DATADOG_PARENT_ID, itoa.format(span_id));
    put(X_DATADOG_SAMPLING_PRIORITY, itoa.format(priority));
    if let Some(origin) = &ctx.origin {
        put(X_DATADOG_ORIGIN, origin);
    }
    if !ctx.tags.is_empty() {
        let tags: Vec<String> = ctx.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        put(X_DATADOG_TAGS, &tags.join(","));
    }
    let flags = if priority > 0 { "01" } else { "00" };
    put(TRACEPARENT, &format!("00-{}{}-{}-{flags}", hex16(ctx.trace_id_high), hex16(ctx.trace_id), hex16(span_id)));
    let mut state = format!("dd=s:{priority};p:{}", hex16(span_id));
    if let Some(origin) = &ctx.origin {
        state.push_str(";o:");
        state.push_str(origin);
    }
    for (k, v) in ctx.tags.iter().filter(|(k, _)| k != TID) {
        if let Some(short) = k.strip_prefix(PROPAGATED_PREFIX) {
            state.push_str(&format!(";t.{short}:{}", v.replace('=', "~")));
        }
    }
    if !ctx.other_trace_state.is_empty() {
        state.push(',');
        state.push_str(&ctx.other_trace_state);
    }
    put(TRACESTATE, &state);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    fn injected(ctx: &Context, span_id: u64, priority: i32) -> Vec<(String, String)> {
        let mut h = HeaderMap::new();
        inject(ctx, span_id, priority, &mut h);
        let mut out: Vec<_> =
            h.iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())).collect();
        out.sort();
        out
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut out: Vec<_> = p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        out.sort();
        out
    }

    /// What Envoy 1.40 sent upstream for a caller's Datadog context with tags and origin.
    #[test]
    fn datadog_headers_in_and_out() {
        let h = headers(&[
            ("x-datadog-trace-id", "123"),
            ("x-datadog-parent-id", "456"),
            ("x-datadog-sampling-priority", "2"),
            ("x-datadog-tags", "_dd.p.tid=6b1702a600000001,_dd.p.dm=-4,other=x"),
            ("x-datadog-origin", "rum"),
        ]);
        let ctx = extract(&h).unwrap();
        assert_eq!((ctx.trace_id_high, ctx.trace_id, ctx.parent_id), (0x6b1702a600000001, 123, 456));
        assert_eq!(ctx.priority, Some(2));
        assert_eq!(
            injected(&ctx, 0x67cd61af70b75b50, 2),
            pairs(&[
                ("x-datadog-trace-id", "123"),
                ("x-datadog-parent-id", "7479741962270497616"),
                ("x-datadog-sampling-priority", "2"),
                ("x-datadog-origin", "rum"),
                ("x-datadog-tags", "_dd.p.tid=6b1702a600000001,_dd.p.dm=-4"),
                ("traceparent", "00-6b1702a600000001000000000000007b-67cd61af70b75b50-01"),
                ("tracestate", "dd=s:2;p:67cd61af70b75b50;o:rum;t.dm:-4"),
            ])
        );
    }

    /// W3C in (Envoy's answer: the `dd` member's values, the tid from the
    /// traceparent, the caller's other members after ours).
    #[test]
    fn w3c_in_and_out() {
        let h = headers(&[
            ("traceparent", "00-6b1702a6000000010000000000000abc-00000000000000ef-01"),
            ("tracestate", "dd=s:2;o:rum;t.dm:-4,foo=bar"),
        ]);
        let ctx = extract(&h).unwrap();
        assert_eq!((ctx.trace_id, ctx.parent_id, ctx.priority), (0xabc, 0xef, Some(2)));
        assert_eq!(
            injected(&ctx, 0x582aee031371d512, 2),
            pairs(&[
                ("x-datadog-trace-id", "2748"),
                ("x-datadog-parent-id", "6353151921338045714"),
                ("x-datadog-sampling-priority", "2"),
                ("x-datadog-origin", "rum"),
                ("x-datadog-tags", "_dd.p.dm=-4,_dd.p.tid=6b1702a600000001"),
                ("traceparent", "00-6b1702a6000000010000000000000abc-582aee031371d512-01"),
                ("tracestate", "dd=s:2;p:582aee031371d512;o:rum;t.dm:-4,foo=bar"),
            ])
        );
        // Datadog's headers win; a context that does not parse is none.
        let both = headers(&[
            ("traceparent", "00-6b1702a6000000010000000000000abc-00000000000000ef-01"),
            ("x-datadog-trace-id", "123"),
        ]);
        assert_eq!(extract(&both).map(|c| c.trace_id), Some(123));
        assert_eq!(extract(&headers(&[("x-datadog-trace-id", "abc")])), None);
        assert_eq!(extract(&headers(&[("traceparent", "garbage")])), None);
        // A sampled flag that disagrees with `s` wins.
        let h = headers(&[
            ("traceparent", "00-00000000000000000000000000000abc-00000000000000ef-00"),
            ("tracestate", "dd=s:2"),
        ]);
        assert_eq!(extract(&h).and_then(|c| c.priority), Some(0));
    }
}
