//! B3 propagation as Envoy's Zipkin tracer reads and writes it: the multi-header
//! form (`x-b3-traceid`, `x-b3-spanid`, `x-b3-parentspanid`, `x-b3-sampled`) or
//! the single `b3` header (`trace-span[-sampled[-parent]]`). A request that came
//! with `b3` has its context sent on in `b3`, else in the multi headers. A
//! context that does not parse makes no span at all (Envoy's null span).

use http::{HeaderMap, HeaderName, HeaderValue};

pub const X_B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
pub const X_B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
pub const X_B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
pub const X_B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
pub const B3: HeaderName = HeaderName::from_static("b3");

/// A span's identity in a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpanContext {
    /// The upper 64 bits of a 128-bit trace id (0 for a 64-bit one).
    pub trace_id_high: u64,
    pub trace_id: u64,
    pub id: u64,
    /// 0 when the span has no parent.
    pub parent_id: u64,
    pub sampled: bool,
}

/// What a request's headers say.
#[derive(Debug, PartialEq, Eq)]
pub enum Extracted {
    /// No context: a new trace starts.
    None,
    Context(SpanContext),
    /// A context that does not parse.
    Invalid,
}

/// The sampling flag the request carries (`b3`'s, else `x-b3-sampled`), if any.
pub fn extract_sampled(h: &HeaderMap) -> Option<bool> {
    if let Some(b3) = h.get(B3) {
        let b3 = b3.as_bytes();
        let at = match b3.len() {
            1 => 0,
            35 | 52 => 34,
            51 | 68 => 50,
            _ => return None,
        };
        return match b3[at] {
            b'0' => Some(false),
            b'1' | b'd' => Some(true),
            _ => None,
        };
    }
    let v = h.get(X_B3_SAMPLED)?.as_bytes();
    Some(v == b"1" || v == b"true")
}

fn hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok()
}

/// The request's span context; `sampled` is the decision it goes on with.
pub fn extract(h: &HeaderMap, sampled: bool) -> Extracted {
    if let Some(b3) = h.get(B3) {
        return extract_single(b3.as_bytes(), sampled);
    }
    let (Some(trace), Some(span)) = (h.get(X_B3_TRACE_ID), h.get(X_B3_SPAN_ID)) else { return Extracted::None };
    let trace = trace.as_bytes();
    let (trace_id_high, trace_id) = if trace.len() == 32 {
        match (hex(&trace[..16]), hex(&trace[16..])) {
            (Some(high), Some(low)) => (high, low),
            _ => return Extracted::Invalid,
        }
    } else {
        match hex(trace) {
            Some(low) => (0, low),
            None => return Extracted::Invalid,
        }
    };
    let Some(id) = hex(span.as_bytes()) else { return Extracted::Invalid };
    let parent_id = match h.get(X_B3_PARENT_SPAN_ID).filter(|p| !p.is_empty()) {
        Some(p) => match hex(p.as_bytes()) {
            Some(p) => p,
            None => return Extracted::Invalid,
        },
        None => 0,
    };
    Extracted::Context(SpanContext { trace_id_high, trace_id, id, parent_id, sampled })
}

fn valid_flag(c: u8) -> bool {
    matches!(c, b'0' | b'1' | b'd')
}

/// `trace(16|32)-span(16)[-flag][-parent(16)]`, or a lone sampling flag.
fn extract_single(b3: &[u8], sampled: bool) -> Extracted {
    if b3.len() == 1 {
        return if valid_flag(b3[0]) { Extracted::None } else { Extracted::Invalid };
    }
    if b3.len() < 33 {
        return Extracted::Invalid;
    }
    let (trace_id_high, trace_id, mut pos) = if b3.get(32) == Some(&b'-') {
        match (hex(&b3[..16]), hex(&b3[16..32])) {
            (Some(h), Some(l)) => (h, l, 32),
            _ => return Extracted::Invalid,
        }
    } else {
        match hex(&b3[..16]) {
            Some(l) => (0, l, 16),
            None => return Extracted::Invalid,
        }
    };
    if b3.get(pos) != Some(&b'-') {
        return Extracted::Invalid;
    }
    pos += 1;
    let Some(id) = b3.get(pos..pos + 16).and_then(hex) else { return Extracted::Invalid };
    pos += 16;
    let mut parent_id = 0;
    // Then `-flag`, and after it `-parent`: a parent needs the flag before it.
    if b3.len() > pos {
        if b3[pos] != b'-' || !b3.get(pos + 1).copied().is_some_and(valid_flag) {
            return Extracted::Invalid;
        }
        pos += 2;
        if b3.len() > pos {
            match b3.get(pos + 1..).filter(|p| b3[pos] == b'-' && p.len() == 16).and_then(hex) {
                Some(p) => parent_id = p,
                None => return Extracted::Invalid,
            }
        }
    }
    Extracted::Context(SpanContext { trace_id_high, trace_id, id, parent_id, sampled })
}

/// Lower-case hex of `v`, zero-padded to 16 digits.
pub fn hex16(v: u64) -> String {
    format!("{v:016x}")
}

/// The trace id as sent: 16 digits, or 32 for a 128-bit id.
pub fn trace_id_hex(c: &SpanContext) -> String {
    if c.trace_id_high != 0 {
        format!("{:016x}{:016x}", c.trace_id_high, c.trace_id)
    } else {
        hex16(c.trace_id)
    }
}

fn value(s: &str) -> HeaderValue {
    // Hex digits and dashes only: always a valid header value.
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// Writes `c` into an upstream request, in `b3` when `single`, else the multi headers.
pub fn inject(c: &SpanContext, h: &mut HeaderMap, single: bool) {
    let flag = if c.sampled { "1" } else { "0" };
    if single {
        let mut b3 = format!("{}-{}-{flag}", trace_id_hex(c), hex16(c.id));
        if c.parent_id != 0 {
            b3.push('-');
            b3.push_str(&hex16(c.parent_id));
        }
        h.insert(B3, value(&b3));
        return;
    }
    h.insert(X_B3_TRACE_ID, value(&trace_id_hex(c)));
    h.insert(X_B3_SPAN_ID, value(&hex16(c.id)));
    if c.parent_id != 0 {
        h.insert(X_B3_PARENT_SPAN_ID, value(&hex16(c.parent_id)));
    }
    h.insert(X_B3_SAMPLED, HeaderValue::from_static(flag));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[test]
    fn multi_headers() {
        let m = h(&[("x-b3-traceid", "0000000000000001"), ("x-b3-spanid", "2"), ("x-b3-parentspanid", "3")]);
        let c = SpanContext { trace_id_high: 0, trace_id: 1, id: 2, parent_id: 3, sampled: true };
        assert_eq!(extract(&m, true), Extracted::Context(c));
        let m = h(&[("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"), ("x-b3-spanid", "e457b5a2e4d86bd1")]);
        let Extracted::Context(c) = extract(&m, false) else { panic!() };
        assert_eq!(trace_id_hex(&c), "80f198ee56343ba864fe8b2a57d3eff7");
        assert_eq!(extract(&h(&[("x-b3-traceid", "zz"), ("x-b3-spanid", "2")]), true), Extracted::Invalid);
        assert_eq!(extract(&h(&[("x-b3-spanid", "2")]), true), Extracted::None);
    }

    #[test]
    fn sampled_flag() {
        assert_eq!(extract_sampled(&h(&[("x-b3-sampled", "0")])), Some(false));
        assert_eq!(extract_sampled(&h(&[("x-b3-sampled", "true")])), Some(true));
        assert_eq!(extract_sampled(&h(&[("b3", "0")])), Some(false));
        assert_eq!(extract_sampled(&h(&[("b3", "80f198ee56343ba8-e457b5a2e4d86bd1-d")])), Some(true));
        assert_eq!(extract_sampled(&h(&[("x-b3-flags", "1")])), None);
    }

    #[test]
    fn single_header() {
        let c = SpanContext {
            trace_id_high: 0x80f198ee56343ba8,
            trace_id: 0x64fe8b2a57d3eff7,
            id: 0xe457b5a2e4d86bd1,
            parent_id: 0x05e3ac9a4f6e3b90,
            sampled: true,
        };
        let full = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90";
        assert_eq!(extract(&h(&[("b3", full)]), true), Extracted::Context(c));
        let mut out = HeaderMap::new();
        inject(&c, &mut out, true);
        assert_eq!(out["b3"], full);
        assert_eq!(extract(&h(&[("b3", "0")]), false), Extracted::None);
        assert_eq!(extract(&h(&[("b3", "x")]), false), Extracted::Invalid);
        let short = "80f198ee56343ba8-e457b5a2e4d86bd1";
        let Extracted::Context(c) = extract(&h(&[("b3", short)]), false) else { panic!() };
        assert_eq!((c.trace_id_high, c.parent_id), (0, 0));
        assert_eq!(extract(&h(&[("b3", "80f198ee56343ba8-e457b5a2e4d86bd1-x")]), false), Extracted::Invalid);
        // As Envoy: a parent without the flag before it, or a short one, is invalid.
        let no_flag = "80f198ee56343ba8-e457b5a2e4d86bd1-05e3ac9a4f6e3b90";
        assert_eq!(extract(&h(&[("b3", no_flag)]), false), Extracted::Invalid);
        let short_parent = "80f198ee56343ba8-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b9";
        assert_eq!(extract(&h(&[("b3", short_parent)]), false), Extracted::Invalid);
    }

    #[test]
    fn multi_injection() {
        let c = SpanContext { trace_id_high: 0, trace_id: 1, id: 0xabc, parent_id: 0, sampled: false };
        let mut out = HeaderMap::new();
        inject(&c, &mut out, false);
        assert_eq!(out["x-b3-traceid"], "0000000000000001");
        assert_eq!(out["x-b3-spanid"], "0000000000000abc");
        assert_eq!(out["x-b3-sampled"], "0");
        assert!(out.get("x-b3-parentspanid").is_none());
    }
}
