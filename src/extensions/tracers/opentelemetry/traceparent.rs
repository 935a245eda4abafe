//! W3C Trace Context as Envoy's OpenTelemetry tracer reads and writes it:
//! `traceparent: 00-<trace id, 32 hex>-<parent id, 16 hex>-<flags, 2 hex>` (bit 0
//! of the flags: sampled), with `tracestate` carried along. A `traceparent` that
//! does not parse makes no span (Envoy's null span); Envoy always sends a
//! `tracestate`, empty when the request had none.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::common::hex::lower_hex;

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The caller's context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
    pub trace_state: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Extracted {
    None,
    Parent(Parent),
    Invalid,
}

fn hex_into(s: &str, out: &mut [u8]) -> bool {
    if s.len() != out.len() * 2 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    for (i, o) in out.iter_mut().enumerate() {
        match u8::from_str_radix(&s[i * 2..i * 2 + 2], 16) {
            Ok(v) => *o = v,
            Err(_) => return false,
        }
    }
    true
}

pub fn extract(h: &HeaderMap) -> Extracted {
    let Some(tp) = h.get(TRACEPARENT) else { return Extracted::None };
    let Ok(tp) = tp.to_str() else { return Extracted::Invalid };
    let parts: Vec<&str> = tp.split('-').collect();
    let [version, trace, span, flags] = parts[..] else { return Extracted::Invalid };
    let (mut trace_id, mut span_id, mut f) = ([0u8; 16], [0u8; 8], [0u8; 1]);
    if version.len() != 2
        || version == "ff"
        || !hex_into(trace, &mut trace_id)
        || !hex_into(span, &mut span_id)
        || !hex_into(flags, &mut f)
        || trace_id == [0; 16]
        || span_id == [0; 8]
    {
        return Extracted::Invalid;
    }
    let trace_state = h.get(TRACESTATE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    Extracted::Parent(Parent { trace_id, span_id, sampled: f[0] & 1 == 1, trace_state })
}

/// Writes a span's context into an upstream request.
pub fn inject(h: &mut HeaderMap, trace_id: &[u8; 16], span_id: &[u8; 8], sampled: bool, trace_state: &str) {
    let flags = if sampled { "01" } else { "00" };
    let tp = format!("00-{}-{}-{flags}", lower_hex(trace_id), lower_hex(span_id));
    if let Ok(v) = HeaderValue::from_str(&tp) {
        h.insert(TRACEPARENT, v);
    }
    h.insert(TRACESTATE, HeaderValue::from_str(trace_state).unwrap_or_else(|_| HeaderValue::from_static("")));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(tp: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(TRACEPARENT, HeaderValue::from_str(tp).unwrap());
        m
    }

    #[test]
    fn parses_and_writes_traceparent() {
        let Extracted::Parent(p) = extract(&h("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")) else {
            panic!()
        };
        assert!(p.sampled);
        assert_eq!(lower_hex(&p.trace_id), "0af7651916cd43dd8448eb211c80319c");
        let mut out = HeaderMap::new();
        inject(&mut out, &p.trace_id, &p.span_id, false, "");
        assert_eq!(out["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00");
        assert_eq!(out["tracestate"], "");
        assert_eq!(extract(&h("garbage")), Extracted::Invalid);
        assert_eq!(extract(&h("00-00000000000000000000000000000000-b7ad6b7169203331-01")), Extracted::Invalid);
        assert_eq!(extract(&HeaderMap::new()), Extracted::None);
    }
}
