//! Whether a request is traced, Envoy's way: the decision travels in the
//! request's x-request-id (the UUID's version digit becomes `9` sampled, `a`
//! forced, `b` client, `4` not traced), so every Envoy and Courier on the path
//! reads the same verdict. The sampling percentages are applied to the UUID's
//! first 8 hex digits, not to a fresh random number, so the same request is
//! sampled the same way at each hop. (Envoy's `UUIDRequestIDExtension` and
//! `ConnectionManagerUtility::mutateTracingRequestHeader`.)

use http::{HeaderMap, HeaderValue};

use super::{Decision, Reason, Sampling};
use crate::http::headers::X_REQUEST_ID;
use crate::runtime::Fraction;

/// Where the trace status lives in a UUID: its version digit.
const TRACE_BYTE: usize = 14;
const UUID_LENGTH: usize = 36;
const SAMPLED: u8 = b'9';
const FORCED: u8 = b'a';
const CLIENT: u8 = b'b';
const NO_TRACE: u8 = b'4';

pub const X_CLIENT_TRACE_ID: &str = "x-client-trace-id";

/// The trace status written in a request id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    NoTrace,
    Sampled,
    Client,
    Forced,
}

fn status(headers: &HeaderMap) -> Status {
    let Some(id) = headers.get(X_REQUEST_ID).map(|v| v.as_bytes()) else { return Status::NoTrace };
    if id.len() != UUID_LENGTH {
        return Status::NoTrace;
    }
    match id[TRACE_BYTE] {
        SAMPLED => Status::Sampled,
        FORCED => Status::Forced,
        CLIENT => Status::Client,
        _ => Status::NoTrace,
    }
}

/// Rewrites the request id's trace digit (only a UUID-long id is touched).
fn set_status(headers: &mut HeaderMap, digit: u8) {
    let Some(id) = headers.get(X_REQUEST_ID) else { return };
    if id.len() != UUID_LENGTH || id.as_bytes()[TRACE_BYTE] == digit {
        return;
    }
    let mut bytes = [0u8; UUID_LENGTH];
    bytes.copy_from_slice(id.as_bytes());
    bytes[TRACE_BYTE] = digit;
    if let Ok(v) = HeaderValue::from_bytes(&bytes) {
        headers.insert(X_REQUEST_ID, v);
    }
}

/// The request id as a number for sampling: its first 8 hex digits.
fn sampling_value(headers: &HeaderMap) -> Option<u64> {
    let id = headers.get(X_REQUEST_ID)?.as_bytes();
    let digits = std::str::from_utf8(id.get(..8)?).ok()?;
    u64::from_str_radix(digits, 16).ok()
}

/// `featureEnabled(key, default, value)`: the runtime's fraction under `key`
/// (or the configured one) applied to the request's own number.
fn enabled(key: &str, default: Fraction, value: u64) -> bool {
    let f = crate::runtime::snapshot().map_or(default, |s| s.fraction(key, default));
    f.denominator != 0 && value % f.denominator < f.numerator
}

/// Envoy's `mutateTracingRequestHeader`: a request not traced yet becomes so by
/// the client's `x-client-trace-id` (client_sampling), `x-envoy-force-trace`
/// (which only a trusted client keeps), or random sampling; overall sampling
/// may then veto it. Written into the x-request-id; then, as
/// `shouldTraceRequest`, the decision read back from it.
pub fn decide(sampling: &Sampling, headers: &mut HeaderMap, health_check: bool) -> Decision {
    if let Some(value) = sampling_value(headers) {
        let value = value % 10_000;
        if status(headers) == Status::NoTrace {
            if headers.contains_key(X_CLIENT_TRACE_ID) && enabled("tracing.client_enabled", sampling.client, value) {
                set_status(headers, CLIENT);
            } else if headers.contains_key("x-envoy-force-trace") {
                set_status(headers, FORCED);
            } else if enabled("tracing.random_sampling", sampling.random, value) {
                set_status(headers, SAMPLED);
            }
        }
        if !enabled("tracing.global_enabled", sampling.overall, value) {
            set_status(headers, NO_TRACE);
        }
    }
    if health_check {
        return Decision { reason: Reason::HealthCheck, traced: false };
    }
    match status(headers) {
        Status::Sampled => Decision { reason: Reason::Sampling, traced: true },
        Status::Client => Decision { reason: Reason::ClientForced, traced: true },
        Status::Forced => Decision { reason: Reason::ServiceForced, traced: true },
        Status::NoTrace => Decision { reason: Reason::NotTraceable, traced: false },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(id: &str, extra: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_str(id).unwrap());
        for (k, v) in extra {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn percent(numerator: u64) -> Fraction {
        Fraction { numerator, denominator: 10_000 }
    }

    fn cfg(random: u64, overall: u64) -> Sampling {
        Sampling { client: percent(10_000), random: percent(random), overall: percent(overall) }
    }

    const ID: &str = "11111111-2222-4333-8444-555555555555";

    #[test]
    fn random_sampling_marks_the_request_id() {
        // random_sampling 100 %, then just above and below the id's number.
        let mut h = headers(ID, &[]);
        assert_eq!(decide(&cfg(10_000, 10_000), &mut h, false), Decision { reason: Reason::Sampling, traced: true });
        assert_eq!(h[X_REQUEST_ID], "11111111-2222-9333-8444-555555555555");
        // 0x11111111 % 10000 = 1153: sampled at 11.54 %, not at 11.53 %.
        assert!(decide(&cfg(1154, 10_000), &mut headers(ID, &[]), false).traced);
        assert!(!decide(&cfg(1153, 10_000), &mut headers(ID, &[]), false).traced);
    }

    #[test]
    fn client_trace_id_and_overall_veto() {
        // client_sampling 100 % traces a client's request that random sampling
        // (0 %) would not; overall_sampling 0 % vetoes any.
        let mut h = headers(ID, &[(X_CLIENT_TRACE_ID, "abc")]);
        assert_eq!(decide(&cfg(0, 10_000), &mut h, false).reason, Reason::ClientForced);
        assert_eq!(h[X_REQUEST_ID], "11111111-2222-b333-8444-555555555555");
        let mut h = headers(ID, &[]);
        assert_eq!(decide(&cfg(10_000, 0), &mut h, false), Decision { reason: Reason::NotTraceable, traced: false });
        assert_eq!(h[X_REQUEST_ID], ID);
    }

    #[test]
    fn an_id_already_marked_keeps_its_decision() {
        let mut h = headers("11111111-2222-a333-8444-555555555555", &[]);
        assert_eq!(decide(&cfg(0, 10_000), &mut h, false).reason, Reason::ServiceForced);
    }

    #[test]
    fn no_or_short_request_id_is_not_traceable() {
        let mut h = headers("abc", &[]);
        assert_eq!(decide(&cfg(10_000, 10_000), &mut h, false).reason, Reason::NotTraceable);
        let mut h = HeaderMap::new();
        assert_eq!(decide(&cfg(10_000, 10_000), &mut h, false).reason, Reason::NotTraceable);
    }
}
