//! Parse + format of every operator against a hand-built `StreamInfo`.

use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, Method, Uri};
use serde_json::json;

use super::*;
use crate::config::FieldPath;
use crate::stream_info::{ResponseFlag, StreamInfo};

/// The request of Envoy's documented default-format example.
struct Fixture {
    info: StreamInfo,
    req: HeaderMap,
    resp: HeaderMap,
    trailers: HeaderMap,
    method: Method,
    uri: Uri,
}

impl Fixture {
    fn new() -> Fixture {
        let mut info =
            StreamInfo::new("10.0.35.28:51234".parse().unwrap(), "10.0.0.1:10000".parse().unwrap(), "HTTP/2");
        info.start_time = UNIX_EPOCH + Duration::from_millis(1_460_751_420_310);
        info.response_code = Some(204);
        info.bytes_received = 154;
        info.bytes_sent = 0;
        info.last_downstream_rx = Some(Duration::from_micros(12_900));
        info.first_upstream_rx = Some(Duration::from_millis(120));
        info.last_downstream_tx = Some(Duration::from_micros(226_700));
        info.upstream_host = Some("10.0.2.1:80".parse().unwrap());
        info.upstream_local = Some("10.0.0.1:40000".parse().unwrap());
        info.upstream_remote = info.upstream_host;
        info.upstream_cluster = Some("locations".into());
        info.route_name = Some("locations_route".to_string());
        info.response_code_details = "via_upstream";
        info.attempt_count = 1;
        let mut req = HeaderMap::new();
        req.insert("x-forwarded-for", HeaderValue::from_static("10.0.35.28"));
        req.insert("user-agent", HeaderValue::from_static("nsq2http"));
        req.insert("x-request-id", HeaderValue::from_static("cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2"));
        req.insert("host", HeaderValue::from_static("locations"));
        let mut resp = HeaderMap::new();
        resp.insert("x-envoy-upstream-service-time", HeaderValue::from_static("100"));
        resp.insert("content-type", HeaderValue::from_static("application/json"));
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        Fixture { info, req, resp, trailers, method: Method::POST, uri: Uri::from_static("/api/v1/locations") }
    }

    fn cx(&self) -> FormatContext<'_> {
        FormatContext {
            request_headers: Some(&self.req),
            request_method: Some(&self.method),
            request_uri: Some(&self.uri),
            request_target: None,
            response_headers: Some(&self.resp),
            response_trailers: Some(&self.trailers),
            local_reply_body: None,
            info: &self.info,
        }
    }

    fn fmt(&self, s: &str) -> String {
        FormatString::parse(s).unwrap_or_else(|e| panic!("{s}: {e}")).format(&self.cx())
    }
}

fn bare_info() -> StreamInfo {
    let mut info = StreamInfo::new("[::1]:5000".parse().unwrap(), "127.0.0.1:10000".parse().unwrap(), "HTTP/1.1");
    info.start_time = UNIX_EPOCH;
    info.last_downstream_tx = Some(Duration::ZERO);
    info
}

#[test]
fn default_format_matches_envoys_documented_example() {
    let f = Fixture::new();
    // Envoy's docs print `tcp://10.0.2.1:80`; Envoy itself prints the address alone.
    assert_eq!(
        f.fmt(DEFAULT_FORMAT),
        "[2016-04-15T20:17:00.310Z] \"POST /api/v1/locations HTTP/2\" 204 - 154 0 226 100 \"10.0.35.28\" \
         \"nsq2http\" \"cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2\" \"locations\" \"10.0.2.1:80\"\n"
    );
    let s = SubstitutionFormat::envoy_default();
    assert_eq!(s.format(&f.cx()), f.fmt(DEFAULT_FORMAT));
}

#[test]
fn default_format_with_nothing_known() {
    let info = bare_info();
    let line = FormatString::parse(DEFAULT_FORMAT).unwrap().format(&FormatContext::new(&info));
    assert_eq!(line, "[1970-01-01T00:00:00.000Z] \"- - HTTP/1.1\" 0 - 0 0 0 - \"-\" \"-\" \"-\" \"-\" \"-\"\n");
}

#[test]
fn every_stream_info_operator() {
    let f = Fixture::new();
    let cases = [
        ("%START_TIME%", "2016-04-15T20:17:00.310Z"),
        ("%START_TIME()%", "2016-04-15T20:17:00.310Z"),
        ("%START_TIME(%Y/%m/%d %H:%M:%S.%3f|%s)%", "2016/04/15 20:17:00.310|1460751420"),
        ("%START_TIME(%E3S %E6S %f)%", "00.310 00.310000 310000000"),
        ("%PROTOCOL%", "HTTP/2"),
        ("%RESPONSE_CODE%", "204"),
        ("%RESPONSE_CODE_DETAILS%", "via_upstream"),
        ("%RESPONSE_FLAGS%", "-"),
        ("%RESPONSE_FLAGS_LONG%", "-"),
        ("%BYTES_RECEIVED%", "154"),
        ("%BYTES_SENT%", "0"),
        ("%DURATION%", "226"),
        ("%REQUEST_DURATION%", "12"),
        ("%RESPONSE_DURATION%", "120"),
        ("%RESPONSE_TX_DURATION%", "106"),
        ("%UPSTREAM_HOST%", "10.0.2.1:80"),
        ("%UPSTREAM_REMOTE_ADDRESS%", "10.0.2.1:80"),
        ("%UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "10.0.2.1"),
        ("%UPSTREAM_REMOTE_PORT%", "80"),
        ("%UPSTREAM_CLUSTER%", "locations"),
        ("%UPSTREAM_LOCAL_ADDRESS%", "10.0.0.1:40000"),
        ("%UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%", "10.0.0.1"),
        ("%UPSTREAM_LOCAL_PORT%", "40000"),
        ("%UPSTREAM_TRANSPORT_FAILURE_REASON%", "-"),
        ("%DOWNSTREAM_REMOTE_ADDRESS%", "10.0.35.28:51234"),
        ("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "10.0.35.28"),
        ("%DOWNSTREAM_REMOTE_PORT%", "51234"),
        ("%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%", "10.0.35.28:51234"),
        ("%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%", "10.0.35.28"),
        ("%DOWNSTREAM_DIRECT_REMOTE_PORT%", "51234"),
        ("%DOWNSTREAM_LOCAL_ADDRESS%", "10.0.0.1:10000"),
        ("%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%", "10.0.0.1"),
        ("%DOWNSTREAM_LOCAL_PORT%", "10000"),
        ("%ROUTE_NAME%", "locations_route"),
        ("%UPSTREAM_REQUEST_ATTEMPT_COUNT%", "1"),
        ("100%% of %RESPONSE_CODE%%%", "100% of 204%"),
    ];
    for (format, want) in cases {
        assert_eq!(f.fmt(format), want, "{format}");
    }
}

#[test]
fn missing_values_print_a_dash() {
    let info = StreamInfo::new("[::1]:5000".parse().unwrap(), "127.0.0.1:10000".parse().unwrap(), "");
    let cx = FormatContext::new(&info);
    let cases = [
        ("%PROTOCOL%", "-"),
        ("%RESPONSE_CODE%", "0"),
        ("%RESPONSE_CODE_DETAILS%", "-"),
        ("%CONNECTION_TERMINATION_DETAILS%", "-"),
        ("%REQUEST_DURATION%", "-"),
        ("%RESPONSE_DURATION%", "-"),
        ("%RESPONSE_TX_DURATION%", "-"),
        ("%UPSTREAM_HOST%", "-"),
        ("%UPSTREAM_REMOTE_PORT%", "-"),
        ("%UPSTREAM_CLUSTER%", "-"),
        ("%UPSTREAM_LOCAL_ADDRESS%", "-"),
        ("%ROUTE_NAME%", "-"),
        ("%UPSTREAM_REQUEST_ATTEMPT_COUNT%", "0"),
        ("%REQ(:PATH)% %REQ(:METHOD)% %RESP(:STATUS)% %TRAILER(X)%", "- - - -"),
        ("%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "[::1]:5000 ::1"),
    ];
    for (format, want) in cases {
        assert_eq!(FormatString::parse(format).unwrap().format(&cx), want, "{format}");
    }
}

/// A host chosen but never connected to (a refused connect): Envoy 1.40
/// prints the host, and no upstream remote address.
#[test]
fn upstream_remote_address_is_the_connection_had() {
    let mut info = bare_info();
    info.upstream_host = Some("10.0.2.1:80".parse().unwrap());
    let cx = FormatContext::new(&info);
    let format =
        "%UPSTREAM_HOST% %UPSTREAM_REMOTE_ADDRESS% %UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %UPSTREAM_REMOTE_PORT%";
    assert_eq!(FormatString::parse(format).unwrap().format(&cx), "10.0.2.1:80 - - -");
}

#[test]
fn response_flags_and_details() {
    let mut f = Fixture::new();
    f.info.response_flags.set(ResponseFlag::UpstreamRetryLimitExceeded);
    f.info.response_flags.set(ResponseFlag::NoHealthyUpstream);
    f.info.response_flags.set(ResponseFlag::OverloadManager);
    // In the order set, as Envoy prints them.
    assert_eq!(f.fmt("%RESPONSE_FLAGS%"), "URX,UH,OM");
    assert_eq!(
        f.fmt("%RESPONSE_FLAGS_LONG%"),
        "UpstreamRetryLimitExceeded,NoHealthyUpstream,OverloadManagerTerminated"
    );
    f.info.response_code_details = "upstream reset\tbefore";
    assert_eq!(f.fmt("%RESPONSE_CODE_DETAILS%"), "upstream_reset_before");
    assert_eq!(f.fmt("%RESPONSE_CODE_DETAILS(ALLOW_WHITESPACES)%"), "upstream reset\tbefore");
    f.info.upstream_transport_failure_reason = Some("TLS error".to_string());
    assert_eq!(f.fmt("%UPSTREAM_TRANSPORT_FAILURE_REASON%"), "TLS error");
    f.info.connection_termination_details = Some("rbac_access_denied_matched_policy[none]".to_string());
    assert_eq!(f.fmt("%CONNECTION_TERMINATION_DETAILS%"), "rbac_access_denied_matched_policy[none]");
}

#[test]
fn header_operators() {
    let mut f = Fixture::new();
    let cases = [
        ("%REQ(:PATH)%", "/api/v1/locations"),
        ("%REQ(:path)%", "/api/v1/locations"),
        ("%REQUEST_HEADER(:METHOD)%", "POST"),
        ("%REQ(:AUTHORITY)%", "locations"),
        ("%REQ(:SCHEME)%", "-"),
        ("%REQ(USER-AGENT)%", "nsq2http"),
        ("%REQ(user-agent):3%", "nsq"),
        ("%REQ(X-MISSING?User-Agent):4%", "nsq2"),
        ("%REQ(X-MISSING?X-ALSO-MISSING)%", "-"),
        ("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "/api/v1/locations"),
        ("%REQ(bad header name)%", "-"),
        ("%RESP(CONTENT-TYPE)%", "application/json"),
        ("%RESPONSE_HEADER(content-type):0%", ""),
        ("%RESP(:STATUS)%", "204"),
        ("%TRAILER(GRPC-STATUS)%", "0"),
        ("%RESPONSE_TRAILER(grpc-status)%", "0"),
        ("%TRAILER(CONTENT-TYPE)%", "-"),
    ];
    for (format, want) in cases {
        assert_eq!(f.fmt(format), want, "{format}");
    }
    f.req.insert("x-envoy-original-path", HeaderValue::from_static("/original?q=1"));
    assert_eq!(f.fmt("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"), "/original?q=1");
    f.uri = Uri::from_static("https://example.com:8443/p?x=y");
    assert_eq!(f.fmt("%REQ(:SCHEME)% %REQ(:AUTHORITY)% %REQ(:PATH)%"), "https example.com:8443 /p?x=y");
    // Truncation never splits a UTF-8 character.
    f.req.insert("x-utf8", HeaderValue::from_bytes("héllo".as_bytes()).unwrap());
    assert_eq!(f.fmt("%REQ(X-UTF8):2%"), "h");
    assert_eq!(f.fmt("%REQ(X-UTF8):3%"), "hé");
}

#[test]
fn hostname_and_environment() {
    let f = Fixture::new();
    let host = f.fmt("%HOSTNAME%");
    assert!(!host.is_empty() && host != "-");
    // PATH is set in any test environment.
    let path = std::env::var("PATH").unwrap();
    assert_eq!(f.fmt("%ENVIRONMENT(PATH)%"), path);
    assert_eq!(f.fmt("%ENVIRONMENT(PATH):1%"), &path[..1]);
    assert_eq!(f.fmt("%ENVIRONMENT(COURIER_SURELY_UNSET_VARIABLE)%"), "-");
}

#[test]
fn literal_formats() {
    assert!(FormatString::parse("plain text 100%%\n").unwrap().is_literal());
    assert!(FormatString::parse("").unwrap().is_literal());
    assert!(!FormatString::parse("x %PROTOCOL%").unwrap().is_literal());
    let info = bare_info();
    assert_eq!(FormatString::parse("a%%b").unwrap().format(&FormatContext::new(&info)), "a%b");
}

#[test]
fn parse_errors_name_the_operator() {
    let cases = [
        ("%NOT_AN_OPERATOR%", "Not supported field in StreamInfo: NOT_AN_OPERATOR"),
        ("%CLUSTER_METADATA(a:b)%", "command operator %CLUSTER_METADATA% is not supported by Courier yet"),
        ("%PROTOCOL(x)%", "PROTOCOL does not take any parameters or length"),
        ("%PROTOCOL:10%", "PROTOCOL does not take any parameters or length"),
        ("%REQ()%", "REQ requires parameters"),
        ("%RESP%", "RESP requires parameters"),
        ("%START_TIME:10%", "START_TIME does not allow length to be specified."),
        ("%REQ(A?B?C)%", "More than 1 alternative header specified in token: A?B?C"),
        ("%START_TIME(%Y%n)%", "Invalid header configuration. Format string contains newline."),
        ("100%", "Incorrect configuration: 100%. Couldn't find valid command at position 3"),
        ("a %protocol%", "Incorrect configuration: a %protocol%. Couldn't find valid command at position 2"),
        ("%REQ(X%", "Couldn't find valid command at position 0"),
        ("%REQ(X):%", "Couldn't find valid command at position 0"),
        ("%REQ(X):99999999999999999999999%", "Length must be an integer, given: 99999999999999999999999"),
    ];
    for (format, want) in cases {
        let err = FormatString::parse(format).unwrap_err();
        assert!(err.contains(want), "{format}: {err}");
    }
}

#[test]
fn numeric_operators_are_typed() {
    use super::operator::Operator;
    for name in ["RESPONSE_CODE", "BYTES_SENT", "BYTES_RECEIVED", "DURATION", "DOWNSTREAM_REMOTE_PORT"] {
        assert!(Operator::parse(name, "", None).unwrap().is_numeric(), "{name}");
    }
    for name in ["PROTOCOL", "UPSTREAM_HOST", "RESPONSE_FLAGS", "START_TIME"] {
        assert!(!Operator::parse(name, "", None).unwrap().is_numeric(), "{name}");
    }
}

fn json_line(format: &JsonFormat, f: &Fixture) -> serde_json::Value {
    let line = format.format(&f.cx());
    assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'), "{line:?}");
    serde_json::from_str(&line).unwrap()
}

#[test]
fn json_format_keeps_types_of_single_operators() {
    let mut f = Fixture::new();
    f.resp.insert("x-quote", HeaderValue::from_static("say \"hi\"\\"));
    let map = json!({
        "status": "%RESPONSE_CODE%",
        "bytes": "%BYTES_RECEIVED%",
        "duration": "%DURATION%",
        "port": "%DOWNSTREAM_REMOTE_PORT%",
        "protocol": "%PROTOCOL%",
        "missing": "%ROUTE_NAME%%RESP(X-NOPE)%",
        "single_missing": "%RESP(X-NOPE)%",
        "mixed": "%DURATION%.0",
        "quote": "%RESP(X-QUOTE)%",
        "nested": {"method": "%REQ(:METHOD)%", "list": ["%BYTES_SENT%", "literal", 7]},
        "number": 1.5,
    });
    let format = JsonFormat::parse(map.as_object().unwrap()).unwrap();
    f.info.route_name = None;
    let v = json_line(&format, &f);
    assert_eq!(
        v,
        json!({
            "status": 204, "bytes": 154, "duration": 226, "port": 51234, "protocol": "HTTP/2",
            "missing": "--", "single_missing": null, "mixed": "226.0", "quote": "say \"hi\"\\",
            "nested": {"method": "POST", "list": [0, "literal", 7]}, "number": 1.5,
        })
    );
    // Keys come out sorted, compact.
    let line = format.format(&f.cx());
    assert!(line.starts_with("{\"bytes\":154,\"duration\":226,\"missing\":\"--\",\"mixed\""), "{line}");
}

#[test]
fn json_format_untyped_and_omit_empty() {
    let f = Fixture::new();
    let map = json!({"status": "%RESPONSE_CODE%", "gone": "%RESP(X-NOPE)%", "part": "a%RESP(X-NOPE)%b", "l": ["%RESP(X-NOPE)%"]});
    let map = map.as_object().unwrap();
    let untyped = JsonFormat::parse(map).unwrap().preserve_types(false);
    assert_eq!(json_line(&untyped, &f), json!({"status": "204", "gone": "-", "part": "a-b", "l": ["-"]}));
    let omit = JsonFormat::parse(map).unwrap().omit_empty_values(true);
    assert_eq!(json_line(&omit, &f), json!({"status": 204, "part": "ab", "l": []}));
}

#[test]
fn json_format_errors_name_the_key() {
    let err = JsonFormat::parse(json!({"a": {"b": "%NOPE%"}}).as_object().unwrap()).unwrap_err();
    assert_eq!(err, "a.b: Not supported field in StreamInfo: NOPE");
    let err = JsonFormat::parse(json!({"a": true}).as_object().unwrap()).unwrap_err();
    assert!(err.starts_with("a: Only string values"), "{err}");
}

#[test]
fn json_escapes_control_characters() {
    let mut out = String::new();
    super::json::escape_into("a\u{1}\n\té\"", &mut out);
    assert_eq!(out, "\"a\\u0001\\n\\té\\\"\"");
}

#[test]
fn substitution_format_from_proto() {
    use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
    use envoy_types::pb::envoy::config::core::v3::substitution_format_string::Format;
    use envoy_types::pb::envoy::config::core::v3::{DataSource, SubstitutionFormatString};
    use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};

    let f = Fixture::new();
    let path = FieldPath::starting_at("log_format");
    let text = |s: &str, omit: bool| SubstitutionFormatString {
        format: Some(Format::TextFormatSource(DataSource {
            specifier: Some(Specifier::InlineString(s.to_string())),
            ..Default::default()
        })),
        omit_empty_values: omit,
        ..Default::default()
    };
    let t = SubstitutionFormat::from_proto(&text("%RESPONSE_CODE% %ROUTE_NAME%\n", false), &path).unwrap();
    assert_eq!(t.format(&f.cx()), "204 locations_route\n");
    let t = SubstitutionFormat::from_proto(&text("[%RESP(X-NOPE)%]", true), &path).unwrap();
    assert_eq!(t.format(&f.cx()), "[]");
    let err = SubstitutionFormat::from_proto(&text("%BOGUS%", false), &path).unwrap_err();
    assert_eq!(err.path, "log_format.text_format_source.inline_string");
    assert!(err.reason.contains("BOGUS"));

    let mut fields = std::collections::HashMap::new();
    fields.insert("code".to_string(), Value { kind: Some(Kind::StringValue("%RESPONSE_CODE%".to_string())) });
    let json = SubstitutionFormatString { format: Some(Format::JsonFormat(Struct { fields })), ..Default::default() };
    let j = SubstitutionFormat::from_proto(&json, &path).unwrap();
    assert_eq!(j.format(&f.cx()), "{\"code\":204}\n");

    let err = SubstitutionFormat::from_proto(&SubstitutionFormatString::default(), &path).unwrap_err();
    assert_eq!(err.path, "log_format");
}

#[test]
fn formats_are_shareable_across_workers() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<FormatString>();
    check::<JsonFormat>();
    check::<SubstitutionFormat>();
}

#[test]
fn formats_name_the_headers_they_read() {
    let names = |list: &[http::HeaderName]| list.iter().map(|n| n.as_str().to_string()).collect::<Vec<_>>();
    let mut used = HeadersUsed::default();
    SubstitutionFormat::envoy_default().headers_used(&mut used);
    assert_eq!(
        names(&used.request),
        ["x-envoy-original-path", "x-forwarded-for", "user-agent", "x-request-id", "host"]
    );
    assert_eq!(names(&used.response), ["x-envoy-upstream-service-time"]);
    let map = json!({"a": {"b": ["%REQ(X-A?X-B)%"]}, "c": "%RESP(:STATUS)% %TRAILER(GRPC-STATUS)% %REQ(:PATH)%"});
    let mut used = HeadersUsed::default();
    JsonFormat::parse(map.as_object().unwrap()).unwrap().headers_used(&mut used);
    assert_eq!((names(&used.request), names(&used.response)), (vec!["x-a".to_string(), "x-b".to_string()], vec![]));
}

/// The downstream TLS operators print the session's values, `-` on a plaintext
/// connection; several SANs are joined by `,`.
#[test]
fn downstream_tls_operators() {
    use crate::network::tls::{DownstreamTlsInfo, PeerCertificate};
    let format = "%DOWNSTREAM_PEER_SUBJECT% %DOWNSTREAM_PEER_ISSUER% %DOWNSTREAM_PEER_URI_SAN% \
                  %DOWNSTREAM_PEER_DNS_SAN% %DOWNSTREAM_PEER_FINGERPRINT_256% %DOWNSTREAM_PEER_SERIAL% \
                  %DOWNSTREAM_LOCAL_URI_SAN% %DOWNSTREAM_TLS_VERSION% %DOWNSTREAM_TLS_CIPHER% \
                  %DOWNSTREAM_PEER_FINGERPRINT_1% %DOWNSTREAM_PEER_CERT%";
    let mut f = Fixture::new();
    assert_eq!(f.fmt(format), "- - - - - - - - - - -");
    f.info.downstream_tls = Some(std::rc::Rc::new(DownstreamTlsInfo {
        peer: Some(Box::new(PeerCertificate {
            subject: "CN=client.test,O=Example\\, Inc.".into(),
            issuer: "CN=Test CA".into(),
            uri_sans: vec!["spiffe://a/b".into()],
            dns_sans: vec!["client.test".into(), "alt.test".into()],
            sha256: "ab12".into(),
            sha1: "cd34".into(),
            serial_number: "1f".into(),
        })),
        peer_certificates: vec![rustls::pki_types::CertificateDer::from(vec![0xfb, 0xff])],
        local_certificate: Some(crate::network::tls::LocalCertificate::of_details(
            crate::network::tls::CertificateDetails {
                path: "<inline>".into(),
                serial_number: "01".into(),
                subject: "CN=proxy".into(),
                subject_alt_names: vec![crate::network::tls::SubjectAltName::Uri("spiffe://a/proxy".into())],
                valid_from: 0,
                expiration_time: 0,
            },
        )),
        version: Some(rustls::ProtocolVersion::TLSv1_2),
        cipher: Some(rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
        ..Default::default()
    }));
    assert_eq!(
        f.fmt(format),
        "CN=client.test,O=Example\\, Inc. CN=Test CA spiffe://a/b client.test,alt.test ab12 1f spiffe://a/proxy \
         TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256 cd34 \
         -----BEGIN%20CERTIFICATE-----%0A%2B%2F8%3D%0A-----END%20CERTIFICATE-----%0A"
    );
}

/// `%REQUESTED_SERVER_NAME%` is the SNI the TLS inspector read, TLS
/// terminated or not: `-` without one, even over a terminated session.
#[test]
fn requested_server_name_is_the_inspectors() {
    use crate::network::client_hello::InspectedHello;
    use crate::network::tls::DownstreamTlsInfo;
    let mut f = Fixture::new();
    f.info.downstream_tls = Some(std::rc::Rc::new(DownstreamTlsInfo::default()));
    assert_eq!(f.fmt("%REQUESTED_SERVER_NAME%"), "-");
    f.info.downstream_tls = None;
    f.info.downstream_hello = InspectedHello::of("a.example", None);
    assert_eq!(f.fmt("%REQUESTED_SERVER_NAME%"), "a.example");
}

/// The TLS inspector's fingerprints print whether or not TLS was terminated,
/// `-` when it computed none (or only the other one).
#[test]
fn tls_fingerprint_operators() {
    use crate::network::client_hello::{Fingerprints, InspectedHello};
    let format = "%TLS_JA3_FINGERPRINT% %TLS_JA4_FINGERPRINT%";
    let mut f = Fixture::new();
    assert_eq!(f.fmt(format), "- -");
    let ja3 = "324bd326a97a94ecedaaabaca4d8797c";
    f.info.downstream_hello = InspectedHello::of("", Some(Fingerprints { ja3: Some(ja3.into()), ja4: None }));
    assert_eq!(f.fmt(format), format!("{ja3} -"));
    let ja4 = "t13d1514h2_8daaf6152771_bc9a4605e104";
    f.info.downstream_hello = InspectedHello::of("", Some(Fingerprints { ja3: None, ja4: Some(ja4.into()) }));
    assert_eq!(f.fmt(format), format!("- {ja4}"));
    assert!(FormatString::parse("%TLS_JA4_FINGERPRINT(x)%").is_err());
}

/// The TLS operators read from the certificates themselves, as Envoy 1.40
/// prints them (tests/compat/cases/tls_access_log_operators.yaml): SANs of
/// one kind joined by `,`, the chain leaf first, validity in the given format.
#[test]
fn downstream_certificate_operators() {
    use std::sync::Arc;

    use crate::network::tls::{
        fingerprint, CertificateDetails, ContextCertificates, DownstreamTlsInfo, Fingerprint, LocalCertificate,
        SubjectAltName, TlsContext,
    };
    // What the TLS extension's DER reader makes of each certificate (its own
    // tests read real ones; the formatter sits below it and cannot name it).
    fn details(subject: &str, serial: &str, sans: Vec<SubjectAltName>) -> CertificateDetails {
        CertificateDetails {
            path: "<inline>".into(),
            serial_number: serial.into(),
            subject: subject.into(),
            subject_alt_names: sans,
            valid_from: 157_766_400,
            expiration_time: 67_090_118_400,
        }
    }
    fn read_details(der: &[u8]) -> Option<CertificateDetails> {
        let ip = |a: &str| SubjectAltName::IpAddress(a.parse().unwrap());
        match der {
            b"client" => Some(details(
                "CN=client.test",
                "0a1b",
                vec![
                    SubjectAltName::Dns("client.test".into()),
                    ip("10.0.0.1"),
                    SubjectAltName::Email("me@client.test".into()),
                ],
            )),
            b"ca" => Some(details("CN=ca", "01", vec![])),
            _ => None,
        }
    }
    let certificate_details_of = read_details;
    let format = "%DOWNSTREAM_LOCAL_SUBJECT% %DOWNSTREAM_LOCAL_DNS_SAN% %DOWNSTREAM_LOCAL_IP_SAN% \
                  %DOWNSTREAM_LOCAL_EMAIL_SAN% %DOWNSTREAM_PEER_IP_SAN% %DOWNSTREAM_PEER_EMAIL_SAN% \
                  %DOWNSTREAM_PEER_CHAIN_SERIALS% %DOWNSTREAM_PEER_CERT_V_START% %DOWNSTREAM_PEER_CERT_V_END(%s)% \
                  %DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_256% %DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_1%";
    let mut f = Fixture::new();
    assert_eq!(f.fmt(format), "- - - - - - - - - - -");

    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x01]));
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_key_der = ca_key.serialize_der();
    let ca_der = ca_params.self_signed(&ca_key).unwrap().der().to_vec();
    let server = details(
        "CN=server.test",
        "0a1b",
        vec![
            SubjectAltName::Dns("server.test".into()),
            SubjectAltName::Dns("alt.test".into()),
            SubjectAltName::IpAddress("127.0.0.1".parse().unwrap()),
            SubjectAltName::IpAddress("::1".parse().unwrap()),
            SubjectAltName::Email("proxy@server.test".into()),
        ],
    );
    let client = b"client".to_vec();
    let ca_der_peer = b"ca".to_vec();

    // The config is never used: the CA's own certificate and key make one.
    let ca_key = rustls::pki_types::PrivateKeyDer::try_from(ca_key_der).unwrap();
    #[allow(deprecated)] // Courier's provider is ring's (`provider_for`).
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![rustls::pki_types::CertificateDer::from(ca_der.clone())], ca_key)
        .unwrap();
    let context = Arc::new(TlsContext {
        config: Arc::new(config),
        fallback: None,
        name_verifier: None,
        certificates: ContextCertificates { ca_cert: vec![], cert_chain: vec![server] },
        ocsp: Default::default(),
    });
    let der = |d: &[u8]| rustls::pki_types::CertificateDer::from(d.to_vec());
    f.info.downstream_tls = Some(std::rc::Rc::new(DownstreamTlsInfo {
        peer_certificates: vec![der(&client), der(&ca_der_peer)],
        local_certificate: Some(LocalCertificate::new(context, 0)),
        read_details: Some(certificate_details_of),
        ..Default::default()
    }));
    let sha256 = |d: &[u8]| fingerprint(d, Fingerprint::Sha256);
    let sha1 = |d: &[u8]| fingerprint(d, Fingerprint::Sha1);
    assert_eq!(
        f.fmt(format),
        format!(
            "CN=server.test server.test,alt.test 127.0.0.1,::1 proxy@server.test 10.0.0.1 me@client.test 0a1b,01 \
             1975-01-01T00:00:00.000Z 67090118400 {},{} {},{}",
            sha256(&client),
            sha256(&ca_der_peer),
            sha1(&client),
            sha1(&ca_der_peer)
        )
    );

    // Without a client certificate only the local ones print.
    f.info.downstream_tls =
        Some(std::rc::Rc::new(DownstreamTlsInfo { read_details: Some(certificate_details_of), ..Default::default() }));
    assert_eq!(f.fmt(format), "- - - - - - - - - - -");
}

/// The `UPSTREAM_` TLS operators read the upstream connection's session, the
/// same reading as the downstream ones; the downstream session does not leak
/// into them, nor theirs into the downstream ones.
#[test]
fn upstream_tls_operators_read_the_upstream_session() {
    use crate::network::tls::{CertificateDetails, PeerCertificate, SubjectAltName, TlsSessionInfo};
    fn read_details(der: &[u8]) -> Option<CertificateDetails> {
        (der == b"upstream").then(|| CertificateDetails {
            path: String::new(),
            serial_number: "0c".into(),
            subject: "CN=upstream.test".into(),
            subject_alt_names: vec![
                SubjectAltName::Dns("upstream.test".into()),
                SubjectAltName::IpAddress("127.0.0.1".parse().unwrap()),
            ],
            valid_from: 157_766_400,
            expiration_time: 67_090_118_400,
        })
    }
    let format = "%UPSTREAM_TLS_VERSION% %UPSTREAM_TLS_CIPHER% %UPSTREAM_PEER_SUBJECT% %UPSTREAM_PEER_ISSUER% \
                  %UPSTREAM_PEER_URI_SAN% %UPSTREAM_PEER_DNS_SAN% %UPSTREAM_PEER_IP_SAN% %UPSTREAM_LOCAL_URI_SAN% \
                  %UPSTREAM_LOCAL_DNS_SAN% %UPSTREAM_PEER_CERT_V_START% %UPSTREAM_PEER_CERT_V_END(%s)% \
                  %DOWNSTREAM_TLS_VERSION%";
    let mut f = Fixture::new();
    assert_eq!(f.fmt(format), "- - - - - - - - - - - -");
    let peer = PeerCertificate {
        subject: "CN=upstream.test".into(),
        issuer: "CN=ca".into(),
        uri_sans: vec!["spiffe://up".into()],
        dns_sans: vec!["upstream.test".into()],
        ..Default::default()
    };
    f.info.upstream_tls = Some(std::rc::Rc::new(TlsSessionInfo {
        peer_certificates: vec![rustls::pki_types::CertificateDer::from(b"upstream".to_vec())],
        peer: Some(Box::new(peer)),
        version: Some(rustls::ProtocolVersion::TLSv1_2),
        cipher: Some(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
        read_details: Some(read_details),
        ..Default::default()
    }));
    assert_eq!(
        f.fmt(format),
        "TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256 CN=upstream.test CN=ca spiffe://up upstream.test 127.0.0.1 - - \
         1975-01-01T00:00:00.000Z 67090118400 -"
    );
    assert!(f.fmt("%UPSTREAM_PEER_CERT%").starts_with("-----BEGIN%20CERTIFICATE-----%0A"));
}

/// The TLS session ID prints as the session says (none for TLS 1.3). The
/// `UPSTREAM_` TLS operators Envoy 1.40 lacks (fingerprints, serial, local
/// subject, e-mail SANs) fail as unknown there.
#[test]
fn tls_session_ids_and_unknown_upstream_operators() {
    use crate::network::tls::TlsSessionInfo;
    let mut f = Fixture::new();
    assert_eq!(f.fmt("%DOWNSTREAM_TLS_SESSION_ID% %UPSTREAM_TLS_SESSION_ID%"), "- -");
    let session = |id: Option<&str>| {
        Some(std::rc::Rc::new(TlsSessionInfo { session_id: id.map(str::to_string), ..Default::default() }))
    };
    f.info.downstream_tls = session(Some("0a0b"));
    f.info.upstream_tls = session(None);
    assert_eq!(f.fmt("%DOWNSTREAM_TLS_SESSION_ID% %UPSTREAM_TLS_SESSION_ID%"), "0a0b -");
    for name in ["UPSTREAM_PEER_FINGERPRINT_256", "UPSTREAM_PEER_SERIAL", "UPSTREAM_LOCAL_SUBJECT"] {
        let e = FormatString::parse(&format!("%{name}%")).unwrap_err();
        assert_eq!(e, format!("Not supported field in StreamInfo: {name}"));
    }
    assert!(FormatString::parse("%UPSTREAM_PEER_CERT_V_END(%s)%").is_ok());
    assert!(FormatString::parse("%DOWNSTREAM_PEER_CERT_V_START(%s)%").is_ok());
    assert!(FormatString::parse("%DOWNSTREAM_PEER_CERT_V_END:3%").is_err(), "no length");
}
