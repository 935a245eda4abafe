//! A validation context's subject-name checks, as Envoy's: with
//! `match_typed_subject_alt_names` (or the deprecated `match_subject_alt_names`)
//! a peer certificate whose chain verifies is accepted only if one of its subject
//! alternative names matches one of the matchers of its type. A DNS name and an
//! `exact` matcher compare as Envoy's `dnsNameMatch` (a `*.` name covers one
//! label); every other pair through the `StringMatcher`. A failure is a
//! verification error the handshake reports as `ssl.fail_verify_san`.

use std::sync::Arc;

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::CertificateValidationContext;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use rustls::pki_types::CertificateDer;

use super::der;
use crate::config::{ConfigError, FieldPath};
use crate::matcher::StringMatcher;
use crate::network::tls::{SanMismatch, SubjectAltName};

/// Which subject alternative names a matcher looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dns,
    Uri,
    IpAddress,
    /// `match_subject_alt_names`: every kind.
    Any,
}

#[derive(Debug)]
struct Matcher {
    kind: Kind,
    /// The `exact` value of the matcher, for the DNS wildcard rule.
    exact: Option<String>,
    matcher: StringMatcher,
}

/// The matchers of one validation context; empty when it has none.
#[derive(Debug, Default, Clone)]
pub(super) struct SanMatchers {
    matchers: Arc<[Matcher]>,
}

impl SanMatchers {
    /// Reads the matchers of `vc`; `path` points at the validation context.
    pub(super) fn from_proto(vc: &CertificateValidationContext, path: &FieldPath) -> Result<SanMatchers, ConfigError> {
        let mut matchers = Vec::new();
        for (i, m) in vc.match_typed_subject_alt_names.iter().enumerate() {
            let mut at = path.clone();
            at.push_field("match_typed_subject_alt_names");
            at.push_index(i);
            let kind = match SanType::try_from(m.san_type) {
                Ok(SanType::Dns) => Kind::Dns,
                Ok(SanType::Uri) => Kind::Uri,
                Ok(SanType::IpAddress) => Kind::IpAddress,
                Ok(SanType::Email | SanType::OtherName) => {
                    return Err(at.field_error("san_type", "EMAIL and OTHER_NAME are not supported by Courier"))
                }
                _ => return Err(at.field_error("san_type", "value must not be SAN_TYPE_UNSPECIFIED")),
            };
            let Some(sm) = &m.matcher else { return Err(at.field_error("matcher", "value is required")) };
            at.push_field("matcher");
            matchers.push(Matcher { kind, exact: exact(sm), matcher: StringMatcher::from_proto(sm, &at)? });
        }
        #[allow(deprecated)]
        let legacy = &vc.match_subject_alt_names;
        for (i, sm) in legacy.iter().enumerate() {
            let mut at = path.clone();
            at.push_field("match_subject_alt_names");
            at.push_index(i);
            matchers.push(Matcher { kind: Kind::Any, exact: exact(sm), matcher: StringMatcher::from_proto(sm, &at)? });
        }
        Ok(SanMatchers { matchers: matchers.into() })
    }

    pub(super) fn is_empty(&self) -> bool {
        self.matchers.is_empty()
    }

    /// Accepts `end_entity` when there are no matchers or one of its names
    /// matches one of them.
    pub(super) fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if self.matchers.is_empty() {
            return Ok(());
        }
        let names = der::certificate_fields(end_entity.as_ref()).map(|f| f.subject_alt_names).unwrap_or_default();
        if names.iter().any(|name| self.matchers.iter().any(|m| m.matches(name))) {
            return Ok(());
        }
        Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(Arc::new(
            SanMismatch,
        )))))
    }
}

impl Matcher {
    fn matches(&self, name: &SubjectAltName) -> bool {
        match (name, self.kind) {
            (SubjectAltName::Dns(dns), Kind::Dns | Kind::Any) => match &self.exact {
                Some(exact) => dns_name_match(exact, dns),
                None => self.matcher.matches(dns),
            },
            (SubjectAltName::Uri(uri), Kind::Uri | Kind::Any) => self.matcher.matches(uri),
            (SubjectAltName::IpAddress(ip), Kind::IpAddress | Kind::Any) => self.matcher.matches(&ip.to_string()),
            _ => false,
        }
    }
}

/// The `exact` value of a matcher that does not ignore case.
fn exact(sm: &envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher) -> Option<String> {
    match &sm.match_pattern {
        Some(MatchPattern::Exact(v)) if !sm.ignore_case => Some(v.clone()),
        _ => None,
    }
}

/// Envoy's `dnsNameMatch`: equal names, or a `*.rest` certificate name covering
/// exactly one label in front of `rest` (case-insensitive, as DNS).
fn dns_name_match(wanted: &str, cert_name: &str) -> bool {
    if wanted.eq_ignore_ascii_case(cert_name) {
        return true;
    }
    let Some(rest) = cert_name.strip_prefix('*') else { return false };
    match wanted.find('.') {
        Some(dot) if dot > 0 => wanted[dot..].eq_ignore_ascii_case(rest),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_wildcards_cover_one_label() {
        assert!(dns_name_match("api.example.com", "*.example.com"));
        assert!(dns_name_match("API.example.com", "api.EXAMPLE.com"));
        assert!(!dns_name_match("a.b.example.com", "*.example.com"));
        assert!(!dns_name_match("example.com", "*.example.com"));
        assert!(!dns_name_match(".example.com", "*.example.com"));
    }

    #[test]
    fn each_matcher_looks_at_its_own_kind() {
        let m = |kind, matcher| Matcher { kind, exact: None, matcher };
        let prefix = StringMatcher::Prefix { value: "spiffe://".into(), ignore_case: false };
        let uri = m(Kind::Uri, prefix.clone());
        assert!(uri.matches(&SubjectAltName::Uri("spiffe://cluster.local/ns/a".into())));
        assert!(!uri.matches(&SubjectAltName::Dns("spiffe://x".into())), "a DNS name is not a URI");
        let any = m(Kind::Any, prefix);
        assert!(any.matches(&SubjectAltName::Dns("spiffe://x".into())));
        let ip = m(Kind::IpAddress, StringMatcher::Exact { value: "127.0.0.1".into(), ignore_case: false });
        assert!(ip.matches(&SubjectAltName::IpAddress([127, 0, 0, 1].into())));
    }
}
