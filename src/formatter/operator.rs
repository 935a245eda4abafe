//! The command operators (`%RESPONSE_CODE%`, `%REQ(X?Y):Z%`, ...): each is resolved
//! once at parse time into an `Operator`, whose `write` appends the value to the line
//! being built and says whether it was a string, a number, or missing (so text logs
//! print `-` and typed JSON logs print a number or `null`, as Envoy does).

use std::fmt::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::header::{truncate_at, HeaderOperator, HeaderSource};
use super::time::{TimeFormat, DEFAULT_TIME_FORMAT};
use super::FormatContext;
use crate::network::tls::{fingerprint, CertificateDetails, Fingerprint, SubjectAltName, TlsSessionInfo};
use crate::stream_info::dynamic_metadata::{self, Lookup};
use crate::stream_info::{ResponseFlag, ResponseFlags};

/// What `Operator::write` produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Nothing was written: the value is not set (`-` in text, `null` in typed JSON).
    Missing,
    /// A string was written.
    Text,
    /// Decimal digits were written (a number in typed JSON).
    Number,
    /// A JSON value was written (an object, list, `true`...): typed JSON embeds it
    /// as it is, text shows it as it is.
    Json,
}

/// One parsed command operator.
#[derive(Debug, Clone)]
pub(crate) enum Operator {
    StartTime(TimeFormat),
    /// `%LOCAL_REPLY_BODY%`: a local reply's body, for its `body_format`.
    LocalReplyBody,
    Header(HeaderOperator),
    Protocol,
    ResponseCode,
    ResponseCodeDetails {
        allow_whitespace: bool,
    },
    ConnectionTerminationDetails,
    ResponseFlags {
        long: bool,
    },
    BytesReceived,
    BytesSent,
    Duration,
    RequestDuration,
    ResponseDuration,
    ResponseTxDuration,
    Address(AddressSource, AddressPart),
    UpstreamCluster,
    UpstreamTransportFailureReason,
    RouteName,
    UpstreamRequestAttemptCount,
    /// A value fixed at parse time (`%HOSTNAME%`, `%ENVIRONMENT(X)%`); `None` prints `-`.
    Constant(Option<Box<str>>),
    /// What the downstream or upstream TLS session says (`-` on a plaintext
    /// connection, or before an upstream connection was had).
    Tls(TlsSide, TlsField),
    /// `%REQUESTED_SERVER_NAME%`: the SNI the TLS inspector read, TLS
    /// terminated or not (`-` without one).
    RequestedServerName,
    /// `%DOWNSTREAM_PEER_CERT_V_START(FORMAT)%` / `..._V_END(...)`, and the
    /// `UPSTREAM_` ones: when the peer's certificate becomes valid / expires.
    PeerCertValidity {
        side: TlsSide,
        end: bool,
        format: TimeFormat,
    },
    /// `%TLS_JA3_FINGERPRINT%`: what the TLS inspector computed of the client's
    /// ClientHello, TLS terminated or not (`-` when it computed none).
    TlsJa3Fingerprint,
    /// `%TLS_JA4_FINGERPRINT%`, likewise.
    TlsJa4Fingerprint,
    /// `%DYNAMIC_METADATA(NAMESPACE:KEY:...):Z%`.
    DynamicMetadata {
        namespace: Box<str>,
        keys: Box<[String]>,
        len: Option<usize>,
    },
}

/// Which connection's TLS session a TLS operator reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsSide {
    Downstream,
    /// The upstream connection the request went on.
    Upstream,
}

/// `%DOWNSTREAM_PEER_*%`, `%DOWNSTREAM_TLS_*%`, `%DOWNSTREAM_LOCAL_*%`, and
/// the `UPSTREAM_` ones Envoy has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsField {
    PeerSubject,
    PeerIssuer,
    PeerUriSan,
    PeerDnsSan,
    /// Read from the certificate's DER when a line asks, as the chain ones.
    PeerIpSan,
    PeerEmailSan,
    /// Each certificate of the client's chain, its own first, joined by `,`.
    PeerChainFingerprints256,
    PeerChainFingerprints1,
    PeerChainSerials,
    PeerFingerprint256,
    PeerFingerprint1,
    /// The client's certificate, URL-encoded PEM.
    PeerCert,
    PeerSerial,
    LocalUriSan,
    LocalSubject,
    LocalDnsSan,
    LocalIpSan,
    LocalEmailSan,
    Version,
    Cipher,
    /// A TLS 1.2 session's ID (none for TLS 1.3, as Envoy 1.40 prints).
    SessionId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressSource {
    DownstreamRemote,
    DownstreamDirectRemote,
    DownstreamLocal,
    /// The upstream host chosen (`%UPSTREAM_HOST%`).
    UpstreamHost,
    /// The address of the upstream connection had (`%UPSTREAM_REMOTE_ADDRESS%`).
    UpstreamRemote,
    UpstreamLocal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressPart {
    WithPort,
    WithoutPort,
    Port,
}

/// Envoy's `CommandSyntaxChecker` flags.
#[derive(Clone, Copy)]
enum Syntax {
    CommandOnly,
    ParamsRequired { length: bool },
    ParamsOptional,
}

/// Envoy operators Courier does not implement yet, to tell them apart from typos.
const KNOWN_UNSUPPORTED: &[&str] = &[
    "REQUEST_HEADERS_BYTES",
    "RESPONSE_HEADERS_BYTES",
    "RESPONSE_TRAILERS_BYTES",
    "UPSTREAM_PROTOCOL",
    "UPSTREAM_WIRE_BYTES_SENT",
    "UPSTREAM_WIRE_BYTES_RECEIVED",
    "UPSTREAM_HEADER_BYTES_SENT",
    "UPSTREAM_HEADER_BYTES_RECEIVED",
    "DOWNSTREAM_WIRE_BYTES_SENT",
    "DOWNSTREAM_WIRE_BYTES_RECEIVED",
    "DOWNSTREAM_HEADER_BYTES_SENT",
    "DOWNSTREAM_HEADER_BYTES_RECEIVED",
    "REQUEST_TX_DURATION",
    "VIRTUAL_CLUSTER_NAME",
    "CONNECTION_ID",
    "GRPC_STATUS",
    "GRPC_STATUS_NUMBER",
    "CLUSTER_METADATA",
    "UPSTREAM_METADATA",
    "FILTER_STATE",
    "UPSTREAM_FILTER_STATE",
    "FILTER_CHAIN_NAME",
    "START_TIME_LOCAL",
    "UPSTREAM_HOST_NAME",
    "UPSTREAM_CLUSTER_RAW",
    "ACCESS_LOG_TYPE",
    "TRACE_ID",
    "UNIQUE_ID",
    "CUSTOM_FLAGS",
    "COMMON_DURATION",
    "METADATA",
    "CEL",
    "PATH",
    "REQ_WITHOUT_QUERY",
    "DOWNSTREAM_PEER_OTHERNAME_SAN",
    "DOWNSTREAM_LOCAL_OTHERNAME_SAN",
    "UPSTREAM_PEER_OTHERNAME_SAN",
    "UPSTREAM_LOCAL_OTHERNAME_SAN",
];

impl Operator {
    /// Resolves `%NAME(args):len%`; the error names the operator as Envoy does.
    pub(crate) fn parse(name: &str, args: &str, len: Option<usize>) -> Result<Operator, String> {
        let syntax = match name {
            "START_TIME"
            | "RESPONSE_CODE_DETAILS"
            | "DOWNSTREAM_PEER_CERT_V_START"
            | "DOWNSTREAM_PEER_CERT_V_END"
            | "UPSTREAM_PEER_CERT_V_START"
            | "UPSTREAM_PEER_CERT_V_END" => Syntax::ParamsOptional,
            "REQ" | "REQUEST_HEADER" | "RESP" | "RESPONSE_HEADER" | "TRAILER" | "RESPONSE_TRAILER" | "ENVIRONMENT"
            | "DYNAMIC_METADATA" => Syntax::ParamsRequired { length: true },
            _ => {
                let op = Self::simple(name)?;
                check_syntax(name, Syntax::CommandOnly, args, len)?;
                return Ok(op);
            }
        };
        check_syntax(name, syntax, args, len)?;
        Ok(match name {
            "START_TIME" => Operator::StartTime(time_format(args)?),
            "DOWNSTREAM_PEER_CERT_V_START" | "DOWNSTREAM_PEER_CERT_V_END" => Operator::PeerCertValidity {
                side: TlsSide::Downstream,
                end: name.ends_with("END"),
                format: time_format(args)?,
            },
            "UPSTREAM_PEER_CERT_V_START" | "UPSTREAM_PEER_CERT_V_END" => Operator::PeerCertValidity {
                side: TlsSide::Upstream,
                end: name.ends_with("END"),
                format: time_format(args)?,
            },
            "RESPONSE_CODE_DETAILS" => Operator::ResponseCodeDetails { allow_whitespace: args == "ALLOW_WHITESPACES" },
            "DYNAMIC_METADATA" => {
                let mut parts = args.split(':');
                let namespace = parts.next().unwrap_or_default().into();
                Operator::DynamicMetadata { namespace, keys: parts.map(str::to_string).collect(), len }
            }
            "REQ" | "REQUEST_HEADER" => Operator::Header(HeaderOperator::parse(HeaderSource::Request, args, len)?),
            "RESP" | "RESPONSE_HEADER" => Operator::Header(HeaderOperator::parse(HeaderSource::Response, args, len)?),
            "TRAILER" | "RESPONSE_TRAILER" => {
                Operator::Header(HeaderOperator::parse(HeaderSource::Trailer, args, len)?)
            }
            _ => {
                // ENVIRONMENT: read once; an unset variable prints `-`.
                let mut v = std::env::var(args).unwrap_or_else(|_| "-".to_string());
                if let Some(n) = len {
                    truncate_at(&mut v, 0, n);
                }
                Operator::Constant(Some(v.into_boxed_str()))
            }
        })
    }

    /// Operators that take neither parameters nor a length.
    fn simple(name: &str) -> Result<Operator, String> {
        use AddressPart::*;
        use AddressSource::*;
        use TlsSide::*;
        Ok(match name {
            "PROTOCOL" => Operator::Protocol,
            "LOCAL_REPLY_BODY" => Operator::LocalReplyBody,
            "RESPONSE_CODE" => Operator::ResponseCode,
            "CONNECTION_TERMINATION_DETAILS" => Operator::ConnectionTerminationDetails,
            "RESPONSE_FLAGS" => Operator::ResponseFlags { long: false },
            "RESPONSE_FLAGS_LONG" => Operator::ResponseFlags { long: true },
            "BYTES_RECEIVED" => Operator::BytesReceived,
            "BYTES_SENT" => Operator::BytesSent,
            "DURATION" => Operator::Duration,
            "REQUEST_DURATION" => Operator::RequestDuration,
            "RESPONSE_DURATION" => Operator::ResponseDuration,
            "RESPONSE_TX_DURATION" => Operator::ResponseTxDuration,
            "UPSTREAM_HOST" => Operator::Address(UpstreamHost, WithPort),
            "UPSTREAM_REMOTE_ADDRESS" => Operator::Address(UpstreamRemote, WithPort),
            "UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => Operator::Address(UpstreamRemote, WithoutPort),
            "UPSTREAM_REMOTE_PORT" => Operator::Address(UpstreamRemote, Port),
            "UPSTREAM_LOCAL_ADDRESS" => Operator::Address(UpstreamLocal, WithPort),
            "UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => Operator::Address(UpstreamLocal, WithoutPort),
            "UPSTREAM_LOCAL_PORT" => Operator::Address(UpstreamLocal, Port),
            "DOWNSTREAM_REMOTE_ADDRESS" => Operator::Address(DownstreamRemote, WithPort),
            "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => Operator::Address(DownstreamRemote, WithoutPort),
            "DOWNSTREAM_REMOTE_PORT" => Operator::Address(DownstreamRemote, Port),
            "DOWNSTREAM_DIRECT_REMOTE_ADDRESS" => Operator::Address(DownstreamDirectRemote, WithPort),
            "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT" => Operator::Address(DownstreamDirectRemote, WithoutPort),
            "DOWNSTREAM_DIRECT_REMOTE_PORT" => Operator::Address(DownstreamDirectRemote, Port),
            "DOWNSTREAM_LOCAL_ADDRESS" => Operator::Address(DownstreamLocal, WithPort),
            "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => Operator::Address(DownstreamLocal, WithoutPort),
            "DOWNSTREAM_LOCAL_PORT" => Operator::Address(DownstreamLocal, Port),
            "UPSTREAM_CLUSTER" => Operator::UpstreamCluster,
            "UPSTREAM_TRANSPORT_FAILURE_REASON" => Operator::UpstreamTransportFailureReason,
            "ROUTE_NAME" => Operator::RouteName,
            "UPSTREAM_REQUEST_ATTEMPT_COUNT" => Operator::UpstreamRequestAttemptCount,
            "HOSTNAME" => Operator::Constant(hostname().map(String::into_boxed_str)),
            "DOWNSTREAM_PEER_SUBJECT" => Operator::Tls(Downstream, TlsField::PeerSubject),
            "DOWNSTREAM_PEER_ISSUER" => Operator::Tls(Downstream, TlsField::PeerIssuer),
            "DOWNSTREAM_PEER_URI_SAN" => Operator::Tls(Downstream, TlsField::PeerUriSan),
            "DOWNSTREAM_PEER_DNS_SAN" => Operator::Tls(Downstream, TlsField::PeerDnsSan),
            "DOWNSTREAM_PEER_FINGERPRINT_256" => Operator::Tls(Downstream, TlsField::PeerFingerprint256),
            "DOWNSTREAM_PEER_FINGERPRINT_1" => Operator::Tls(Downstream, TlsField::PeerFingerprint1),
            "DOWNSTREAM_PEER_CERT" => Operator::Tls(Downstream, TlsField::PeerCert),
            "DOWNSTREAM_PEER_SERIAL" => Operator::Tls(Downstream, TlsField::PeerSerial),
            "DOWNSTREAM_PEER_IP_SAN" => Operator::Tls(Downstream, TlsField::PeerIpSan),
            "DOWNSTREAM_PEER_EMAIL_SAN" => Operator::Tls(Downstream, TlsField::PeerEmailSan),
            "DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_256" => Operator::Tls(Downstream, TlsField::PeerChainFingerprints256),
            "DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_1" => Operator::Tls(Downstream, TlsField::PeerChainFingerprints1),
            "DOWNSTREAM_PEER_CHAIN_SERIALS" => Operator::Tls(Downstream, TlsField::PeerChainSerials),
            "DOWNSTREAM_LOCAL_URI_SAN" => Operator::Tls(Downstream, TlsField::LocalUriSan),
            "DOWNSTREAM_LOCAL_SUBJECT" => Operator::Tls(Downstream, TlsField::LocalSubject),
            "DOWNSTREAM_LOCAL_DNS_SAN" => Operator::Tls(Downstream, TlsField::LocalDnsSan),
            "DOWNSTREAM_LOCAL_IP_SAN" => Operator::Tls(Downstream, TlsField::LocalIpSan),
            "DOWNSTREAM_LOCAL_EMAIL_SAN" => Operator::Tls(Downstream, TlsField::LocalEmailSan),
            "DOWNSTREAM_TLS_SESSION_ID" => Operator::Tls(Downstream, TlsField::SessionId),
            "UPSTREAM_TLS_SESSION_ID" => Operator::Tls(Upstream, TlsField::SessionId),
            "UPSTREAM_TLS_VERSION" => Operator::Tls(Upstream, TlsField::Version),
            "UPSTREAM_TLS_CIPHER" => Operator::Tls(Upstream, TlsField::Cipher),
            "UPSTREAM_PEER_SUBJECT" => Operator::Tls(Upstream, TlsField::PeerSubject),
            "UPSTREAM_PEER_ISSUER" => Operator::Tls(Upstream, TlsField::PeerIssuer),
            "UPSTREAM_PEER_CERT" => Operator::Tls(Upstream, TlsField::PeerCert),
            "UPSTREAM_PEER_URI_SAN" => Operator::Tls(Upstream, TlsField::PeerUriSan),
            "UPSTREAM_PEER_DNS_SAN" => Operator::Tls(Upstream, TlsField::PeerDnsSan),
            "UPSTREAM_PEER_IP_SAN" => Operator::Tls(Upstream, TlsField::PeerIpSan),
            "UPSTREAM_LOCAL_URI_SAN" => Operator::Tls(Upstream, TlsField::LocalUriSan),
            "UPSTREAM_LOCAL_DNS_SAN" => Operator::Tls(Upstream, TlsField::LocalDnsSan),
            "UPSTREAM_LOCAL_IP_SAN" => Operator::Tls(Upstream, TlsField::LocalIpSan),
            "DOWNSTREAM_TLS_VERSION" => Operator::Tls(Downstream, TlsField::Version),
            "DOWNSTREAM_TLS_CIPHER" => Operator::Tls(Downstream, TlsField::Cipher),
            "REQUESTED_SERVER_NAME" => Operator::RequestedServerName,
            "TLS_JA3_FINGERPRINT" => Operator::TlsJa3Fingerprint,
            "TLS_JA4_FINGERPRINT" => Operator::TlsJa4Fingerprint,
            _ if KNOWN_UNSUPPORTED.contains(&name) => {
                return Err(format!("command operator %{name}% is not supported by Courier yet"));
            }
            _ => return Err(format!("Not supported field in StreamInfo: {name}")),
        })
    }

    /// True for operators that print as numbers in typed JSON.
    #[cfg(test)]
    pub(crate) fn is_numeric(&self) -> bool {
        matches!(
            self,
            Operator::ResponseCode
                | Operator::BytesReceived
                | Operator::BytesSent
                | Operator::Duration
                | Operator::RequestDuration
                | Operator::ResponseDuration
                | Operator::ResponseTxDuration
                | Operator::UpstreamRequestAttemptCount
                | Operator::Address(_, AddressPart::Port)
        )
    }

    /// Appends the value to `out` (nothing when missing).
    pub(crate) fn write(&self, cx: &FormatContext<'_>, out: &mut String) -> Kind {
        let info = cx.info;
        match self {
            Operator::StartTime(f) => {
                f.write(info.start_time, out);
                Kind::Text
            }
            Operator::Header(h) => h.write(cx, out),
            Operator::LocalReplyBody => text(cx.local_reply_body, out),
            Operator::Protocol => text(Some(info.protocol).filter(|p| !p.is_empty()), out),
            Operator::ResponseCode => number(u64::from(info.response_code.unwrap_or(0)), out),
            Operator::ConnectionTerminationDetails => text(info.connection_termination_details.as_deref(), out),
            Operator::ResponseCodeDetails { allow_whitespace } => {
                let d = info.response_code_details;
                if d.is_empty() {
                    return Kind::Missing;
                }
                if *allow_whitespace {
                    out.push_str(d);
                } else {
                    out.extend(d.chars().map(|c| {
                        if matches!(c, ' ' | '\t' | '\x0c' | '\x0b' | '\n' | '\r') {
                            '_'
                        } else {
                            c
                        }
                    }));
                }
                Kind::Text
            }
            Operator::ResponseFlags { long } => {
                write_flags(info.response_flags, *long, out);
                Kind::Text
            }
            Operator::BytesReceived => number(info.bytes_received, out),
            Operator::BytesSent => number(info.bytes_sent, out),
            Operator::Duration => millis(Some(info.duration()), out),
            Operator::RequestDuration => millis(info.last_downstream_rx, out),
            Operator::ResponseDuration => millis(info.first_upstream_rx, out),
            Operator::ResponseTxDuration => {
                let tx = info.last_downstream_tx.zip(info.first_upstream_rx).and_then(|(tx, rx)| tx.checked_sub(rx));
                millis(tx, out)
            }
            Operator::Address(source, part) => {
                let addr = match source {
                    AddressSource::DownstreamRemote | AddressSource::DownstreamDirectRemote => {
                        Some(info.downstream_remote)
                    }
                    AddressSource::DownstreamLocal => Some(info.downstream_local),
                    AddressSource::UpstreamHost => info.upstream_host,
                    AddressSource::UpstreamRemote => info.upstream_remote,
                    AddressSource::UpstreamLocal => info.upstream_local,
                };
                write_address(addr, *part, out)
            }
            Operator::UpstreamCluster => text(info.upstream_cluster.as_deref().filter(|s| !s.is_empty()), out),
            Operator::UpstreamTransportFailureReason => {
                text(info.upstream_transport_failure_reason.as_deref().filter(|s| !s.is_empty()), out)
            }
            Operator::RouteName => text(info.route_name.as_deref().filter(|s| !s.is_empty()), out),
            Operator::UpstreamRequestAttemptCount => number(u64::from(info.attempt_count), out),
            Operator::Constant(v) => text(v.as_deref(), out),
            Operator::PeerCertValidity { side, end, format } => {
                let Some(tls) = session(info, *side) else { return Kind::Missing };
                let Some(details) = peer_details(tls) else { return Kind::Missing };
                let secs = if *end { details.expiration_time } else { details.valid_from };
                let Some(time) = unix_time(secs) else { return Kind::Missing };
                format.write(time, out);
                Kind::Text
            }
            Operator::Tls(side, field) => {
                let Some(tls) = session(info, *side) else { return Kind::Missing };
                let peer = tls.peer.as_ref();
                let joined = |v: Option<&Vec<String>>| Some(v?.join(",")).filter(|s| !s.is_empty());
                let local = || tls.local_certificate.as_ref().and_then(|l| l.details());
                let chain = |each: &dyn Fn(&[u8]) -> Option<String>| {
                    let all: Option<Vec<String>> = tls.peer_certificates.iter().map(|c| each(c.as_ref())).collect();
                    all.map(|v| v.join(","))
                };
                let read = |der: &[u8]| tls.read_details.and_then(|read| read(der));
                let value = match field {
                    TlsField::PeerSubject => peer.map(|p| p.subject.clone()),
                    TlsField::PeerIssuer => peer.map(|p| p.issuer.clone()),
                    TlsField::PeerUriSan => joined(peer.map(|p| &p.uri_sans)),
                    TlsField::PeerDnsSan => joined(peer.map(|p| &p.dns_sans)),
                    TlsField::PeerFingerprint256 => peer.map(|p| p.sha256.clone()),
                    TlsField::PeerFingerprint1 => peer.map(|p| p.sha1.clone()),
                    TlsField::PeerCert => {
                        tls.peer_certificates.first().map(|c| crate::network::tls::url_encoded_pem([c.as_ref()]))
                    }
                    TlsField::PeerSerial => peer.map(|p| p.serial_number.clone()),
                    TlsField::PeerIpSan => sans(peer_details(tls).as_ref(), SanKind::Ip),
                    TlsField::PeerEmailSan => sans(peer_details(tls).as_ref(), SanKind::Email),
                    TlsField::PeerChainFingerprints256 => chain(&|der| Some(fingerprint(der, Fingerprint::Sha256))),
                    TlsField::PeerChainFingerprints1 => chain(&|der| Some(fingerprint(der, Fingerprint::Sha1))),
                    TlsField::PeerChainSerials => chain(&|der| read(der).map(|d| d.serial_number)),
                    TlsField::LocalUriSan => sans(local(), SanKind::Uri),
                    TlsField::LocalSubject => local().map(|c| c.subject.clone()),
                    TlsField::LocalDnsSan => sans(local(), SanKind::Dns),
                    TlsField::LocalIpSan => sans(local(), SanKind::Ip),
                    TlsField::LocalEmailSan => sans(local(), SanKind::Email),
                    TlsField::Version => tls.version_name().map(str::to_string),
                    TlsField::Cipher => tls.cipher_name().map(str::to_string),
                    TlsField::SessionId => tls.session_id.clone(),
                };
                text(value.as_deref().filter(|v| !v.is_empty()), out)
            }
            Operator::RequestedServerName => {
                text(info.downstream_hello.as_ref().and_then(|h| h.server_name.as_deref()), out)
            }
            Operator::TlsJa3Fingerprint => {
                text(info.downstream_hello.as_ref().and_then(|h| h.fingerprints.ja3.as_deref()), out)
            }
            Operator::TlsJa4Fingerprint => {
                text(info.downstream_hello.as_ref().and_then(|h| h.fingerprints.ja4.as_deref()), out)
            }
            Operator::DynamicMetadata { namespace, keys, len } => {
                let start = out.len();
                let kind = write_metadata(info.dynamic_metadata.lookup(namespace, keys), out);
                match len {
                    Some(max) if out.len() - start > *max => {
                        truncate_at(out, start, *max);
                        Kind::Text
                    }
                    _ => kind,
                }
            }
        }
    }
}

/// The TLS session of the downstream or the upstream connection, if it has one.
fn session(info: &crate::stream_info::StreamInfo, side: TlsSide) -> Option<&TlsSessionInfo> {
    match side {
        TlsSide::Downstream => info.downstream_tls.as_deref(),
        TlsSide::Upstream => info.upstream_tls.as_deref(),
    }
}

fn time_format(args: &str) -> Result<TimeFormat, String> {
    TimeFormat::parse(if args.is_empty() { DEFAULT_TIME_FORMAT } else { args })
}

/// The client certificate's serial, validity and SANs, read from its DER
/// (only lines that print them pay for it).
fn peer_details(tls: &TlsSessionInfo) -> Option<CertificateDetails> {
    (tls.read_details?)(tls.peer_certificates.first()?.as_ref())
}

fn unix_time(secs: i64) -> Option<SystemTime> {
    match u64::try_from(secs) {
        Ok(after) => UNIX_EPOCH.checked_add(Duration::from_secs(after)),
        Err(_) => UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs())),
    }
}

#[derive(Clone, Copy)]
enum SanKind {
    Uri,
    Dns,
    Ip,
    Email,
}

/// A certificate's SANs of one kind, joined by `,` as Envoy prints them.
fn sans(details: Option<&CertificateDetails>, kind: SanKind) -> Option<String> {
    let names = details?.subject_alt_names.iter().filter_map(|n| match (n, kind) {
        (SubjectAltName::Uri(d), SanKind::Uri)
        | (SubjectAltName::Dns(d), SanKind::Dns)
        | (SubjectAltName::Email(d), SanKind::Email) => Some(d.clone()),
        (SubjectAltName::IpAddress(ip), SanKind::Ip) => Some(ip.to_string()),
        _ => None,
    });
    Some(names.collect::<Vec<_>>().join(","))
}

/// A metadata value as Envoy prints it: a string as it is, anything else as JSON.
fn write_metadata(found: Option<Lookup<'_>>, out: &mut String) -> Kind {
    use envoy_types::pb::google::protobuf::value::Kind as V;
    match found {
        None => Kind::Missing,
        Some(Lookup::Struct(s)) => {
            dynamic_metadata::write_struct_json(s, out);
            Kind::Json
        }
        Some(Lookup::Value(v)) => match &v.kind {
            Some(V::StringValue(s)) => text(Some(s), out),
            Some(V::NumberValue(n)) => {
                dynamic_metadata::write_number(*n, out);
                Kind::Number
            }
            _ => {
                dynamic_metadata::write_value_json(v, out);
                Kind::Json
            }
        },
    }
}

fn check_syntax(name: &str, syntax: Syntax, args: &str, len: Option<usize>) -> Result<(), String> {
    match syntax {
        Syntax::CommandOnly if !args.is_empty() || len.is_some() => {
            Err(format!("{name} does not take any parameters or length"))
        }
        Syntax::ParamsRequired { .. } if args.is_empty() => Err(format!("{name} requires parameters")),
        Syntax::ParamsRequired { length: false } | Syntax::ParamsOptional if len.is_some() => {
            Err(format!("{name} does not allow length to be specified."))
        }
        _ => Ok(()),
    }
}

fn text(v: Option<&str>, out: &mut String) -> Kind {
    match v {
        Some(s) => {
            out.push_str(s);
            Kind::Text
        }
        None => Kind::Missing,
    }
}

fn number(n: u64, out: &mut String) -> Kind {
    super::push_number(out, n, 0);
    Kind::Number
}

fn millis(d: Option<Duration>, out: &mut String) -> Kind {
    match d {
        Some(d) => number(d.as_millis() as u64, out),
        None => Kind::Missing,
    }
}

fn write_address(addr: Option<SocketAddr>, part: AddressPart, out: &mut String) -> Kind {
    let Some(a) = addr else { return Kind::Missing };
    match part {
        AddressPart::WithPort => {
            let _ = write!(out, "{a}");
            Kind::Text
        }
        AddressPart::WithoutPort => {
            let _ = write!(out, "{}", a.ip());
            Kind::Text
        }
        AddressPart::Port => number(u64::from(a.port()), out),
    }
}

/// `UH,URX` (or long names) in the order they were set, `-` when no flag is set, as
/// Envoy prints them.
fn write_flags(flags: ResponseFlags, long: bool, out: &mut String) {
    if flags.is_empty() {
        out.push('-');
        return;
    }
    let mut first = true;
    for f in flags.in_set_order() {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(if long { long_name(f) } else { f.short_name() });
    }
}

/// `%RESPONSE_FLAGS_LONG%` names.
fn long_name(f: ResponseFlag) -> &'static str {
    match f {
        ResponseFlag::FailedLocalHealthCheck => "FailedLocalHealthCheck",
        ResponseFlag::NoHealthyUpstream => "NoHealthyUpstream",
        ResponseFlag::UpstreamRequestTimeout => "UpstreamRequestTimeout",
        ResponseFlag::LocalReset => "LocalReset",
        ResponseFlag::UpstreamRemoteReset => "UpstreamRemoteReset",
        ResponseFlag::UpstreamConnectionFailure => "UpstreamConnectionFailure",
        ResponseFlag::UpstreamConnectionTermination => "UpstreamConnectionTermination",
        ResponseFlag::UpstreamOverflow => "UpstreamOverflow",
        ResponseFlag::NoRouteFound => "NoRouteFound",
        ResponseFlag::DelayInjected => "DelayInjected",
        ResponseFlag::FaultInjected => "FaultInjected",
        ResponseFlag::RateLimited => "RateLimited",
        ResponseFlag::UnauthorizedExternalService => "UnauthorizedExternalService",
        ResponseFlag::DownstreamConnectionTermination => "DownstreamConnectionTermination",
        ResponseFlag::UpstreamRetryLimitExceeded => "UpstreamRetryLimitExceeded",
        ResponseFlag::StreamIdleTimeout => "StreamIdleTimeout",
        ResponseFlag::DownstreamProtocolError => "DownstreamProtocolError",
        ResponseFlag::UpstreamProtocolError => "UpstreamProtocolError",
        ResponseFlag::UpstreamMaxStreamDurationReached => "UpstreamMaxStreamDurationReached",
        ResponseFlag::NoClusterFound => "NoClusterFound",
        ResponseFlag::DurationTimeout => "DurationTimeout",
        ResponseFlag::OverloadManager => "OverloadManagerTerminated",
        ResponseFlag::DownstreamRemoteReset => "DownstreamRemoteReset",
        ResponseFlag::DropOverload => "DropOverload",
        ResponseFlag::UnconditionalDropOverload => "UnconditionalDropOverload",
    }
}

/// The system host name (`%HOSTNAME%`), read once at parse time.
fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `buf.len()` bytes; gethostname writes at most
    // that many and we only read up to the first NUL inside it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}
