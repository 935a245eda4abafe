//! `sw8`, SkyWalking's cross-process header (protocol v3), as Envoy reads and
//! writes it: eight fields joined by `-` — the sample flag (`1` or `0`), then
//! the trace id, the parent segment id in base64, the parent span id as a
//! number, then the parent service, instance, endpoint and the address the
//! caller used for this hop, each in base64 (standard alphabet, padded).
//! A header that is not so is refused whole.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::HeaderName;

pub const SW8: HeaderName = HeaderName::from_static("sw8");

/// A caller's context, or the one written for the next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sw8 {
    pub sampled: bool,
    pub trace_id: String,
    pub segment_id: String,
    pub span_id: i32,
    pub service: String,
    pub instance: String,
    pub endpoint: String,
    pub target_address: String,
}

fn decode(field: &str) -> Option<String> {
    String::from_utf8(STANDARD.decode(field).ok()?).ok()
}

impl Sw8 {
    /// `None` for a header that is not eight well-formed fields.
    pub fn parse(value: &str) -> Option<Sw8> {
        let fields: Vec<&str> = value.split('-').collect();
        let [sample, trace, segment, span, service, instance, endpoint, target] = fields[..] else { return None };
        let sampled = match sample {
            "1" => true,
            "0" => false,
            _ => return None,
        };
        Some(Sw8 {
            sampled,
            trace_id: decode(trace).filter(|t| !t.is_empty())?,
            segment_id: decode(segment).filter(|s| !s.is_empty())?,
            span_id: span.parse().ok()?,
            service: decode(service)?,
            instance: decode(instance)?,
            endpoint: decode(endpoint)?,
            target_address: decode(target)?,
        })
    }

    pub fn encode(&self) -> String {
        format!(
            "{}-{}-{}-{}-{}-{}-{}-{}",
            if self.sampled { 1 } else { 0 },
            STANDARD.encode(&self.trace_id),
            STANDARD.encode(&self.segment_id),
            self.span_id,
            STANDARD.encode(&self.service),
            STANDARD.encode(&self.instance),
            STANDARD.encode(&self.endpoint),
            STANDARD.encode(&self.target_address),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header of SkyWalking's protocol document, both ways.
    #[test]
    fn parses_and_writes_the_eight_fields() {
        let value = "1-dHJhY2VpZA==-c2VnbWVudA==-3-c2VydmljZQ==-aW5zdGFuY2U=-L2VuZHBvaW50-dGFyZ2V0OjgwODA=";
        let sw8 = Sw8::parse(value).expect("valid");
        assert_eq!(
            sw8,
            Sw8 {
                sampled: true,
                trace_id: "traceid".into(),
                segment_id: "segment".into(),
                span_id: 3,
                service: "service".into(),
                instance: "instance".into(),
                endpoint: "/endpoint".into(),
                target_address: "target:8080".into(),
            }
        );
        assert_eq!(sw8.encode(), value);
        assert_eq!(Sw8::parse("garbage"), None);
        assert_eq!(
            Sw8::parse("2-dHJhY2VpZA==-c2VnbWVudA==-3-c2VydmljZQ==-aW5zdGFuY2U=-L2VuZHBvaW50-dGFyZ2V0OjgwODA="),
            None
        );
        assert_eq!(
            Sw8::parse("1-dHJhY2VpZA==-c2VnbWVudA==-x-c2VydmljZQ==-aW5zdGFuY2U=-L2VuZHBvaW50-dGFyZ2V0OjgwODA="),
            None
        );
        assert_eq!(Sw8::parse("1-!!-c2VnbWVudA==-3-c2VydmljZQ==-aW5zdGFuY2U=-L2VuZHBvaW50-dGFyZ2V0OjgwODA="), None);
    }
}
