//! TLS as a transport (`envoy.transport_sockets.tls`): the session type that the
//! `Tls` variant of `TransportStream` carries, and the handshakes that make one,
//! downstream (after accept, before the network filters see the connection) and
//! upstream (after connect, before a pool uses the connection). The rustls
//! configs come ready-made from the layer that reads `DownstreamTlsContext` /
//! `UpstreamTlsContext` (`extensions::transport_sockets::tls`), so this layer
//! knows no config message; it counts Envoy's `<scope>.ssl.*` stats.
//!
//! Before a downstream handshake the ClientHello is read and looked at
//! (`client_hello`; rustls goes on from the bytes read): rustls does not say
//! whether the client asked for an OCSP staple, and Envoy counts and fails
//! handshakes by it (`OcspStapling`).
//!
//! A context's rustls config sits in a `ContextCell` that each handshake reads:
//! an SDS secret that changes puts a new one there (built on the main thread),
//! which the next handshakes use while open sessions keep theirs.

use std::io;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use tokio::net::TcpStream;

use super::client_hello::{self, ClientHello};
use super::tls_session::{HandshakeFacts, TlsSession};
use super::transport::{SharedStream, TransportStream};
use crate::config::{ConfigError, FieldPath};
use crate::define_stats;
use crate::overload::ScaledTimer;
use crate::stats::Store;

define_stats! {
    /// `<listener or cluster scope>.ssl.*`, created with the context as Envoy does;
    /// the per-version and per-cipher counters are created on first use.
    #[derive(Debug)]
    pub struct SslStats {
        counter connection_error,
        counter handshake,
        counter session_reused,
        counter no_certificate,
        counter fail_verify_no_cert,
        counter fail_verify_error,
        counter fail_verify_san,
        counter fail_verify_cert_hash,
        counter ocsp_staple_failed,
        counter ocsp_staple_omitted,
        counter ocsp_staple_responses,
        counter ocsp_staple_requests,
        counter was_key_usage_invalid,
    }
}

define_stats! {
    /// `<scope>.{server,client}_ssl_socket_factory.*`, Envoy's stats of a TLS
    /// socket factory (created for every TLS context, SDS or not).
    #[derive(Debug)]
    pub struct SocketFactoryStats {
        counter ssl_context_update_by_sds,
        counter downstream_context_secrets_not_ready,
        counter upstream_context_secrets_not_ready,
    }
}

/// The stats of one TLS context, with what creates its lazy counters.
#[derive(Debug)]
pub struct TlsStats {
    pub ssl: SslStats,
    pub factory: SocketFactoryStats,
    store: Arc<Store>,
    /// `<scope>.ssl.`
    prefix: String,
    /// The peer signature scheme of the last full handshake (0: none yet),
    /// counted again for a resumed session.
    last_signature: std::sync::atomic::AtomicU16,
}

impl TlsStats {
    /// `prefix` is the owner's scope with its dot: `listener.<addr>.` or
    /// `cluster.<name>.`; `server`: a listener's context (Envoy's factory stats
    /// are `server_ssl_socket_factory` there, `client_ssl_socket_factory` on a cluster).
    pub fn new(store: &Arc<Store>, prefix: &str, server: bool) -> TlsStats {
        let side = if server { "server" } else { "client" };
        let factory = SocketFactoryStats::new(store, &format!("{prefix}{side}_ssl_socket_factory."));
        let prefix = format!("{prefix}ssl.");
        let ssl = SslStats::new(store, &prefix);
        TlsStats { ssl, factory, store: store.clone(), prefix, last_signature: Default::default() }
    }

    /// `<scope>.ssl.certificate.<name>.expiration_unix_time_seconds`: when a
    /// certificate the context serves expires (set as the context is built).
    pub fn certificate_expiration(&self, name: &str, unix_time: i64) {
        self.store.gauge(&format!("{}certificate.{name}.expiration_unix_time_seconds", self.prefix)).set(unix_time);
    }

    /// Envoy's `logHandshake`, on listeners and clusters alike: the handshake,
    /// its version, cipher, curve and the peer's signature algorithm, and
    /// whether the peer showed no certificate.
    ///
    /// A resumed session has no signature of its own: BoringSSL keeps the
    /// one of the handshake that made the session, and Envoy counts it again.
    /// rustls does not keep it, so the context's last full handshake's stands
    /// in (the same as long as the peer keeps one kind of key).
    fn handshake_done(&self, session: &TlsSession, facts: &HandshakeFacts) {
        let state = session.state();
        self.ssl.handshake.inc();
        let resumed = state.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        if resumed {
            self.ssl.session_reused.inc();
        }
        if state.peer_certificates().is_none_or(|c| c.is_empty()) {
            self.ssl.no_certificate.inc();
        }
        if let Some(v) = state.protocol_version().and_then(version_name) {
            self.store.counter(&format!("{}versions.{v}", self.prefix)).inc();
        }
        if let Some(suite) = state.negotiated_cipher_suite() {
            let name = cipher_name(suite.suite());
            self.store.counter(&format!("{}ciphers.{name}", self.prefix)).inc();
        }
        if let Some(group) = state.negotiated_key_exchange_group().and_then(|g| curve_name(g.name())) {
            self.store.counter(&format!("{}curves.{group}", self.prefix)).inc();
        }
        let signature = match facts.peer_signature() {
            Some(scheme) => {
                self.last_signature.store(u16::from(scheme), std::sync::atomic::Ordering::Relaxed);
                Some(scheme)
            }
            None if resumed => match self.last_signature.load(std::sync::atomic::Ordering::Relaxed) {
                0 => None,
                code => Some(rustls::SignatureScheme::from(code)),
            },
            None => None,
        };
        if let Some(name) = signature.and_then(signature_name) {
            self.store.counter(&format!("{}sigalgs.{name}", self.prefix)).inc();
        }
    }

    /// A failed handshake: `connection_error` for a TLS error (Envoy counts the
    /// SSL error queue, so a peer that just closes or resets counts nothing), and
    /// the verification failure it was.
    fn handshake_failed(&self, e: &io::Error) {
        match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            None => {}
            // Envoy counts a verification failure as that alone (no connection_error).
            Some(rustls::Error::NoCertificatesPresented) => self.ssl.fail_verify_no_cert.inc(),
            Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)))
                if other.0.downcast_ref::<SanMismatch>().is_some() =>
            {
                self.ssl.fail_verify_san.inc()
            }
            Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)))
                if other.0.downcast_ref::<CertHashMismatch>().is_some() =>
            {
                self.ssl.fail_verify_cert_hash.inc()
            }
            Some(rustls::Error::InvalidCertificate(_)) => self.ssl.fail_verify_error.inc(),
            _ => self.ssl.connection_error.inc(),
        }
    }
}

/// OpenSSL's version names, as in Envoy's `ssl.versions.*`.
fn version_name(v: rustls::ProtocolVersion) -> Option<&'static str> {
    match v {
        rustls::ProtocolVersion::TLSv1_2 => Some("TLSv1.2"),
        rustls::ProtocolVersion::TLSv1_3 => Some("TLSv1.3"),
        _ => None,
    }
}

/// `(rustls suite, OpenSSL/BoringSSL name)`: Envoy names ciphers (config and
/// `ssl.ciphers.*`) as BoringSSL does.
pub const CIPHER_NAMES: &[(rustls::CipherSuite, &str)] = &[
    (rustls::CipherSuite::TLS13_AES_128_GCM_SHA256, "TLS_AES_128_GCM_SHA256"),
    (rustls::CipherSuite::TLS13_AES_256_GCM_SHA384, "TLS_AES_256_GCM_SHA384"),
    (rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256, "TLS_CHACHA20_POLY1305_SHA256"),
    (rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "ECDHE-ECDSA-AES128-GCM-SHA256"),
    (rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "ECDHE-RSA-AES128-GCM-SHA256"),
    (rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "ECDHE-ECDSA-AES256-GCM-SHA384"),
    (rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "ECDHE-RSA-AES256-GCM-SHA384"),
    (rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, "ECDHE-ECDSA-CHACHA20-POLY1305"),
    (rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, "ECDHE-RSA-CHACHA20-POLY1305"),
];

fn cipher_name(suite: rustls::CipherSuite) -> &'static str {
    CIPHER_NAMES.iter().find(|(s, _)| *s == suite).map_or("unknown", |(_, n)| n)
}

/// BoringSSL's `SSL_get_signature_algorithm_name` (with the curve), as in
/// Envoy's `ssl.sigalgs.*`.
fn signature_name(scheme: rustls::SignatureScheme) -> Option<&'static str> {
    use rustls::SignatureScheme as S;
    Some(match scheme {
        S::RSA_PKCS1_SHA1 => "rsa_pkcs1_sha1",
        S::RSA_PKCS1_SHA256 => "rsa_pkcs1_sha256",
        S::RSA_PKCS1_SHA384 => "rsa_pkcs1_sha384",
        S::RSA_PKCS1_SHA512 => "rsa_pkcs1_sha512",
        S::ECDSA_SHA1_Legacy => "ecdsa_sha1",
        S::ECDSA_NISTP256_SHA256 => "ecdsa_secp256r1_sha256",
        S::ECDSA_NISTP384_SHA384 => "ecdsa_secp384r1_sha384",
        S::ECDSA_NISTP521_SHA512 => "ecdsa_secp521r1_sha512",
        S::RSA_PSS_SHA256 => "rsa_pss_rsae_sha256",
        S::RSA_PSS_SHA384 => "rsa_pss_rsae_sha384",
        S::RSA_PSS_SHA512 => "rsa_pss_rsae_sha512",
        S::ED25519 => "ed25519",
        _ => return None,
    })
}

fn curve_name(g: rustls::NamedGroup) -> Option<&'static str> {
    match g {
        rustls::NamedGroup::X25519 => Some("X25519"),
        rustls::NamedGroup::secp256r1 => Some("P-256"),
        rustls::NamedGroup::secp384r1 => Some("P-384"),
        _ => None,
    }
}

/// The context one handshake uses: replaced whole when a secret it reads changes.
#[derive(Debug)]
pub struct TlsContext<C> {
    pub config: Arc<C>,
    /// Upstream, without `alpn_protocols`: `config` offering `http/1.1`, `h2`,
    /// then both (`AlpnFallback` order).
    pub fallback: Option<[Arc<C>; 3]>,
    /// Upstream: a verifier that also requires the certificate to name a host
    /// (`auto_san_validation`), made by the layer that builds verifiers.
    pub name_verifier: Option<Arc<dyn NameVerifier>>,
    /// What `/certs` lists of this context, read when it was built.
    pub certificates: ContextCertificates,
    /// A listener's OCSP stapling (the default upstream).
    pub ocsp: OcspStapling,
}

/// Envoy's `ocsp_staple_policy`: what a handshake whose client asks for a
/// staple does when the certificate has no valid one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OcspStaplePolicy {
    /// Go on without (`ssl.ocsp_staple_omitted`).
    #[default]
    Lenient,
    /// Fail if the response has expired, go on without if there is none.
    Strict,
    /// Fail without a valid response.
    MustStaple,
}

/// A listener's OCSP staples and policy: until when each certificate's
/// response (in `ContextCertificates::cert_chain` order) is valid, `None`
/// without one. The rustls certificate resolver staples a valid one itself.
#[derive(Debug, Clone, Default)]
pub struct OcspStapling {
    pub policy: OcspStaplePolicy,
    pub valid_until: Vec<Option<i64>>,
    /// Per certificate: it carries the must-staple TLS feature, which makes
    /// its policy MUST_STAPLE whatever the context's, as Envoy.
    pub must_staple: Vec<bool>,
}

/// What a handshake does about OCSP, as Envoy's `ocspStapleAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OcspAction {
    /// The client did not ask: nothing counted.
    NotAsked,
    Staple,
    Omit,
    Fail,
}

impl OcspStapling {
    fn action(&self, asked: bool, certificate: Option<usize>, now: i64) -> OcspAction {
        if !asked {
            return OcspAction::NotAsked;
        }
        let response = certificate.and_then(|i| self.valid_until.get(i).copied().flatten());
        let must_staple = certificate.and_then(|i| self.must_staple.get(i).copied()).unwrap_or(false);
        let policy = if must_staple { OcspStaplePolicy::MustStaple } else { self.policy };
        match (response, policy) {
            (Some(until), _) if now < until => OcspAction::Staple,
            (None, OcspStaplePolicy::Lenient | OcspStaplePolicy::Strict) | (Some(_), OcspStaplePolicy::Lenient) => {
                OcspAction::Omit
            }
            _ => OcspAction::Fail,
        }
    }
}

fn unix_now() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Makes the verifier of a context that also checks that the peer's
/// certificate names `name` (a DNS name or an IP address).
pub trait NameVerifier: std::fmt::Debug + Send + Sync {
    fn verifier(&self, name: ServerName<'static>) -> Arc<dyn ServerCertVerifier>;
}

/// A TLS context that SDS may replace. Each handshake reads it once (an
/// uncontended read lock and an `Arc` clone; handshakes are rare next to
/// requests); it is empty while a secret it needs has not been loaded yet.
#[derive(Debug)]
pub struct ContextCell<C>(RwLock<Option<Arc<TlsContext<C>>>>);

impl<C> ContextCell<C> {
    pub fn new(context: Option<TlsContext<C>>) -> Self {
        ContextCell(RwLock::new(context.map(Arc::new)))
    }

    /// The context the next handshake uses.
    pub fn current(&self) -> Option<Arc<TlsContext<C>>> {
        // A poisoned lock still holds a whole `Arc`: the writer only swaps it.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts a new context in for the handshakes from now on.
    pub fn replace(&self, context: TlsContext<C>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(context));
    }
}

/// A filter chain's TLS (`DownstreamTlsContext`), built on the main thread, used by every worker.
#[derive(Debug)]
pub struct DownstreamTls {
    pub context: ContextCell<ServerConfig>,
    /// The chain's `transport_socket_connect_timeout`: how long a handshake may take.
    pub handshake_timeout: Option<Duration>,
    pub stats: TlsStats,
    /// Reads a client certificate's DER (the TLS extension's reader).
    pub read_peer: PeerCertificateReader,
    /// Reads the rest of a client certificate, on demand (the TLS extension's reader).
    pub read_details: CertificateDetailsReader,
}

/// What `x-forwarded-client-cert` and `%DOWNSTREAM_PEER_*%` show of a client
/// certificate (Envoy's `Ssl::ConnectionInfo` accessors), read once per connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerCertificate {
    /// RFC 2253, as BoringSSL prints it.
    pub subject: String,
    pub issuer: String,
    pub uri_sans: Vec<String>,
    pub dns_sans: Vec<String>,
    /// SHA-256 of the DER, lower-case hex.
    pub sha256: String,
    /// SHA-1 of the DER, lower-case hex (`%DOWNSTREAM_PEER_FINGERPRINT_1%`).
    pub sha1: String,
    /// Lower-case hex, as Envoy prints it.
    pub serial_number: String,
}

/// Certificates as URL-encoded PEM, as Envoy's `urlEncodedPemEncodedPeerCertificate`
/// prints them for `x-forwarded-client-cert` and `%DOWNSTREAM_PEER_CERT%`: each
/// one's PEM (64-character lines, as OpenSSL writes it), concatenated, with
/// newline, space, `+`, `/` and `=` percent-encoded.
pub fn url_encoded_pem<'a>(certificates: impl IntoIterator<Item = &'a [u8]>) -> String {
    use base64::Engine;
    let mut pem = String::new();
    for der in certificates {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    let mut out = String::with_capacity(pem.len() + pem.len() / 8);
    for c in pem.chars() {
        match c {
            '\n' => out.push_str("%0A"),
            ' ' => out.push_str("%20"),
            '+' => out.push_str("%2B"),
            '/' => out.push_str("%2F"),
            '=' => out.push_str("%3D"),
            c => out.push(c),
        }
    }
    out
}

/// Reads a DER certificate into a `PeerCertificate`; `None` when it cannot be parsed.
pub type PeerCertificateReader = fn(&[u8]) -> Option<PeerCertificate>;

/// Reads a DER certificate's serial, validity and every SAN (its `path` left
/// empty); `None` when it cannot be parsed. What the access log's rarer
/// `%DOWNSTREAM_PEER_*%` operators show is read with it when a line asks.
pub type CertificateDetailsReader = fn(&[u8]) -> Option<CertificateDetails>;

/// The digests Envoy prints of a certificate's DER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fingerprint {
    Sha256,
    Sha1,
}

/// A certificate's fingerprint: the digest of its DER in lower-case hex.
pub fn fingerprint(der: &[u8], kind: Fingerprint) -> String {
    let algorithm = match kind {
        Fingerprint::Sha256 => &ring::digest::SHA256,
        Fingerprint::Sha1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
    };
    crate::common::hex::lower_hex(ring::digest::digest(algorithm, der).as_ref())
}

/// The certificate this side presented on a session: an index into its
/// context's certificates, so a session holds an `Arc`, not a copy.
#[derive(Debug, Clone)]
pub struct LocalCertificate {
    context: LocalContext,
    index: usize,
}

/// The context a session's certificate comes from: a listener's or a cluster's.
#[derive(Debug, Clone)]
enum LocalContext {
    Server(Arc<TlsContext<ServerConfig>>),
    Client(Arc<TlsContext<ClientConfig>>),
    /// A certificate's details alone, for the tests of what reads them.
    #[cfg(test)]
    Details(Arc<CertificateDetails>),
}

impl LocalCertificate {
    /// The `index`th certificate of a listener `context`'s `cert_chain`.
    pub fn new(context: Arc<TlsContext<ServerConfig>>, index: usize) -> Self {
        LocalCertificate { context: LocalContext::Server(context), index }
    }

    /// A certificate known by its details alone (tests).
    #[cfg(test)]
    pub fn of_details(details: CertificateDetails) -> Self {
        LocalCertificate { context: LocalContext::Details(Arc::new(details)), index: 0 }
    }

    pub fn details(&self) -> Option<&CertificateDetails> {
        let certificates = match &self.context {
            LocalContext::Server(c) => &c.certificates,
            LocalContext::Client(c) => &c.certificates,
            #[cfg(test)]
            LocalContext::Details(d) => return Some(d),
        };
        certificates.cert_chain.get(self.index)
    }
}

/// What a TLS session says of itself and its peer, read once after the
/// handshake (Envoy's `Ssl::ConnectionInfo`): for `x-forwarded-client-cert`
/// and the access log's `%DOWNSTREAM_*%` / `%UPSTREAM_*%` TLS operators. An
/// upstream connection's is shared by the requests on it (an `Rc`).
#[derive(Debug, Default)]
pub struct TlsSessionInfo {
    /// The peer's certificate chain, its own first; empty when it showed none.
    pub peer_certificates: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The peer's own certificate, read (boxed: most downstream connections have none).
    pub peer: Option<Box<PeerCertificate>>,
    /// The version negotiated (`version_name` prints it).
    pub version: Option<rustls::ProtocolVersion>,
    /// A TLS 1.2 session's ID, lower-case hex (`%DOWNSTREAM_TLS_SESSION_ID%`);
    /// none for TLS 1.3, as Envoy 1.40 prints none there.
    pub session_id: Option<String>,
    /// The cipher suite negotiated (`cipher_name` prints it).
    pub cipher: Option<rustls::CipherSuite>,
    /// The certificate this side presented (`%DOWNSTREAM_LOCAL_*%`); what is
    /// said of it is read from the context's copy, not kept per connection.
    pub local_certificate: Option<LocalCertificate>,
    /// Reads what `peer` leaves out of `peer_certificates` when a log line asks.
    pub read_details: Option<CertificateDetailsReader>,
}

/// A downstream session's (a listener's side).
pub type DownstreamTlsInfo = TlsSessionInfo;
/// An upstream connection's (a cluster's side).
pub type UpstreamTlsInfo = TlsSessionInfo;

impl TlsSessionInfo {
    /// `TLSv1.2` / `TLSv1.3`.
    pub fn version_name(&self) -> Option<&'static str> {
        self.version.and_then(version_name)
    }

    /// The cipher suite by its OpenSSL name, as Envoy's stats and logs name it.
    pub fn cipher_name(&self) -> Option<&'static str> {
        self.cipher.map(cipher_name)
    }

    /// The URI SANs of the certificate this side presented (`By=` in XFCC).
    pub fn local_uri_sans(&self) -> impl Iterator<Item = &str> {
        let sans = self.local_certificate.as_ref().and_then(|c| c.details()).map(|d| d.subject_alt_names.iter());
        sans.into_iter().flatten().filter_map(|n| match n {
            SubjectAltName::Uri(u) => Some(u.as_str()),
            _ => None,
        })
    }

    /// The certificate this side presented as Envoy names a peer (ext_authz's
    /// destination principal): its first URI SAN, else its first DNS SAN, else
    /// its subject.
    pub fn local_principal(&self) -> Option<&str> {
        let local = self.local_certificate.as_ref()?.details()?;
        let dns = || {
            local.subject_alt_names.iter().find_map(|n| match n {
                SubjectAltName::Dns(d) => Some(d.as_str()),
                _ => None,
            })
        };
        Some(self.local_uri_sans().next().or_else(dns).unwrap_or(&local.subject))
    }

    fn of(
        session: &TlsSession,
        facts: &HandshakeFacts,
        server_name: Option<String>,
        tls: &DownstreamTls,
        context: &Arc<TlsContext<ServerConfig>>,
    ) -> Self {
        let local_index = presented_index(&context.certificates, server_name.as_deref());
        let local = local_index.map(|index| LocalCertificate::new(context.clone(), index));
        Self::read(session, facts, local, tls.read_peer, tls.read_details)
    }

    /// An upstream session's: this side's certificate is the cluster's
    /// client certificate, the only one a client context has.
    fn of_upstream(
        session: &TlsSession,
        facts: &HandshakeFacts,
        tls: &UpstreamTls,
        context: &Arc<TlsContext<ClientConfig>>,
    ) -> Self {
        let local = (!context.certificates.cert_chain.is_empty())
            .then(|| LocalCertificate { context: LocalContext::Client(context.clone()), index: 0 });
        let mut info = Self::read(session, facts, local, tls.read_peer, tls.read_details);
        if info.session_id.is_some() {
            let resumed = session.state().handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            let mut last = tls.last_session_id.lock().unwrap_or_else(|e| e.into_inner());
            if resumed && !facts.ticket_received() {
                info.session_id.clone_from(&last);
            } else {
                last.clone_from(&info.session_id);
            }
        }
        info
    }

    /// What either side reads of a session once its handshake is done.
    fn read(
        session: &TlsSession,
        facts: &HandshakeFacts,
        local_certificate: Option<LocalCertificate>,
        read_peer: PeerCertificateReader,
        read_details: CertificateDetailsReader,
    ) -> Self {
        let session_id = facts.session_id().map(crate::common::hex::lower_hex);
        let session = session.state();
        let peer_certificates: Vec<_> = session.peer_certificates().map(|c| c.to_vec()).unwrap_or_default();
        TlsSessionInfo {
            session_id,
            peer: peer_certificates.first().and_then(|c| read_peer(c.as_ref())).map(Box::new),
            peer_certificates,
            version: session.protocol_version(),
            cipher: session.negotiated_cipher_suite().map(|s| s.suite()),
            local_certificate,
            read_details: Some(read_details),
        }
    }
}

/// The server name a session was asked for, as rustls keeps it: a DNS name
/// (not an address), lower-cased.
fn session_server_name(sni: Option<&str>) -> Option<String> {
    match ServerName::try_from(sni?) {
        Ok(ServerName::DnsName(name)) => Some(name.as_ref().to_ascii_lowercase()),
        _ => None,
    }
}

/// The leaf the server presented for `sni` (its index in `cert_chain`), as
/// the certificate resolver chose it: the only one, else the first whose DNS
/// names cover the name (exactly, or by a `*.` wildcard for one label), else the first.
fn presented_index(certificates: &ContextCertificates, sni: Option<&str>) -> Option<usize> {
    let chains = &certificates.cert_chain;
    if chains.len() <= 1 {
        return (!chains.is_empty()).then_some(0);
    }
    let covers = |c: &&CertificateDetails| {
        let Some(sni) = sni else { return false };
        c.subject_alt_names.iter().any(|n| match n {
            SubjectAltName::Dns(d) => match d.strip_prefix("*.") {
                Some(parent) => sni.split_once('.').is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(parent)),
                None => d.eq_ignore_ascii_case(sni),
            },
            _ => false,
        })
    };
    chains.iter().position(|c| covers(&c)).or(Some(0))
}

/// The ClientHello on `tcp`, read into `buf` (the handshake goes on from
/// those bytes, so they are read once, not peeked and read again):
/// `None` when the client closed before sending a byte, `Some(None)` when the
/// first byte is no handshake record. A hello that cannot be read to its end
/// (malformed, too large, cut short) reads as one asking for nothing: rustls
/// judges it.
async fn read_client_hello(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Option<ClientHello>> {
    // A handshake that times out while the hello is incomplete closes the
    // socket: what is left unread is read out first, so the close is a FIN.
    struct DrainOnDrop(std::os::fd::RawFd);
    impl Drop for DrainOnDrop {
        fn drop(&mut self) {
            drain_fd(self.0);
        }
    }
    let guard = DrainOnDrop(std::os::fd::AsRawFd::as_raw_fd(&*tcp));
    let hello = read_whole_hello(tcp, buf).await;
    std::mem::forget(guard);
    hello
}

/// `read_client_hello`'s reading.
async fn read_whole_hello(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Option<ClientHello>> {
    buf.resize(1024, 0);
    let mut have = 0;
    let hello = loop {
        // Through `AsyncRead`: a read that does not fill the buffer marks the
        // socket drained, so the handshake's next read waits without a
        // system call that returns `EAGAIN`.
        let n = tokio::io::AsyncReadExt::read(tcp, &mut buf[have..]).await.unwrap_or(0);
        if n == 0 {
            break (have > 0).then(ClientHello::default).map(Some);
        }
        have += n;
        if buf[0] != client_hello::HANDSHAKE_RECORD {
            break Some(None);
        }
        match client_hello::parse(&buf[..have]) {
            client_hello::Parse::ClientHello(hello) => break Some(Some(hello)),
            client_hello::Parse::NeedMore(want) if want <= client_hello::MAX_CLIENT_HELLO => {
                if want > buf.len() || have == buf.len() {
                    buf.resize(want.max(buf.len() * 2).min(client_hello::MAX_CLIENT_HELLO), 0);
                }
                if have == buf.len() {
                    break Some(Some(ClientHello::default()));
                }
            }
            _ => break Some(Some(ClientHello::default())),
        }
    };
    buf.truncate(have);
    hello
}

/// Reads what came, so a close is a FIN, not a reset for unread data. A
/// plain `recv`: tokio may hold the socket not readable after a read, and its
/// `try_read` would not look.
fn drain(tcp: &TcpStream) {
    drain_fd(std::os::fd::AsRawFd::as_raw_fd(tcp));
}

/// `drain` on the socket's descriptor.
fn drain_fd(fd: std::os::fd::RawFd) {
    let mut sink = [0u8; 1024];
    loop {
        // SAFETY: `sink` is valid for its length, and the callers hold the
        // socket, so the fd is open.
        let n = unsafe { libc::recv(fd, sink.as_mut_ptr().cast(), sink.len(), libc::MSG_DONTWAIT) };
        if n <= 0 {
            break;
        }
    }
}

/// Why a downstream handshake gave no session.
#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeFailure {
    Timeout,
    Failed,
}

impl DownstreamTls {
    /// Envoy's OCSP decision for a client's hello, counted; the staple itself
    /// is the certificate resolver's.
    fn ocsp(&self, context: &TlsContext<ServerConfig>, hello: &ClientHello) -> OcspAction {
        let certificate = presented_index(&context.certificates, hello.server_name.as_deref());
        let action = context.ocsp.action(hello.status_request, certificate, unix_now());
        let ssl = &self.stats.ssl;
        match action {
            OcspAction::NotAsked => {}
            OcspAction::Staple => ssl.ocsp_staple_responses.inc(),
            OcspAction::Omit => ssl.ocsp_staple_omitted.inc(),
            OcspAction::Fail => ssl.ocsp_staple_failed.inc(),
        }
        if action != OcspAction::NotAsked {
            ssl.ocsp_staple_requests.inc();
        }
        action
    }

    /// Runs the server handshake on an accepted connection.
    pub async fn accept(&self, mut tcp: TcpStream) -> Result<(TransportStream, DownstreamTlsInfo), HandshakeFailure> {
        let Some(context) = self.context.current() else {
            // Envoy closes at once while an SDS secret has not arrived.
            self.stats.factory.downstream_context_secrets_not_ready.inc();
            return Err(HandshakeFailure::Failed);
        };
        let handshake = async {
            // Bytes that are no TLS handshake record (plaintext HTTP, say) are
            // closed on without an alert, as BoringSSL does in Envoy.
            let mut hello_bytes = Vec::new();
            let Some(hello) = read_client_hello(&mut tcp, &mut hello_bytes).await else { return Err(None) };
            let Some(hello) = hello else {
                drain(&tcp);
                let not_tls = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
                return Err(Some(io::Error::new(io::ErrorKind::InvalidData, not_tls)));
            };
            if self.ocsp(&context, &hello) == OcspAction::Fail {
                // Envoy fails the certificate selection: a handshake_failure alert.
                drain(&tcp);
                let _ = tcp.try_write(&[21, 3, 3, 0, 2, 2, 40]);
                self.stats.ssl.connection_error.inc();
                return Err(None);
            }
            let conn = rustls::server::UnbufferedServerConnection::new(context.config.clone())
                .map_err(|e| Some(io::Error::new(io::ErrorKind::InvalidData, e)))?;
            let session = TlsSession::accept(tcp, conn, hello_bytes, self.stats.ssl.connection_error.clone())
                .await
                .map_err(Some)?;
            Ok((session, session_server_name(hello.server_name.as_deref())))
        };
        let result = match self.handshake_timeout {
            Some(d) => crate::overload::scaled_timeout(ScaledTimer::TransportSocketConnect, d, handshake)
                .await
                .ok_or(HandshakeFailure::Timeout)?,
            None => handshake.await,
        };
        match result {
            Ok(((session, facts), server_name)) => {
                self.stats.handshake_done(&session, &facts);
                let info = DownstreamTlsInfo::of(&session, &facts, server_name, self, &context);
                Ok((TransportStream::Tls(SharedStream::new(session)), info))
            }
            Err(Some(e)) => {
                tracing::debug!("downstream TLS handshake failed: {e}");
                self.stats.handshake_failed(&e);
                Err(HandshakeFailure::Failed)
            }
            // The client left before sending anything.
            Err(None) => Err(HandshakeFailure::Failed),
        }
    }
}

/// The protocol an upstream connection is for, which ALPN offers when the
/// context names none (Envoy's ALPN fallback of its HTTP pools).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlpnFallback {
    Http11,
    Http2,
    /// `auto_config`: `h2,http/1.1`, the upstream picks (Envoy's mixed pool).
    Auto,
}

/// What a request asks of the TLS of the connection it goes on (Envoy's
/// transport socket options, set by the router from the request's host for
/// `auto_sni` / `auto_san_validation`). Part of a pool's key, so two hosts
/// never share a connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TransportOptions {
    /// The SNI to send instead of the context's `sni`.
    pub server_name: Option<Arc<str>>,
    /// The name the upstream's certificate must carry.
    pub verify_name: Option<Arc<str>>,
    /// The downstream connection's addresses (and kept PROXY TLVs), for a
    /// cluster that writes the PROXY protocol: each downstream connection then
    /// has upstream connections of its own, as in Envoy.
    pub downstream: Option<crate::network::proxy_protocol::Downstream>,
}

impl TransportOptions {
    /// No option: the cluster's own TLS settings, no PROXY protocol addresses.
    pub const NONE: TransportOptions = TransportOptions { server_name: None, verify_name: None, downstream: None };
}

/// A cluster's `transport_socket`: TLS, the PROXY protocol written before
/// it (or before plain TCP), both, or neither (`raw_buffer`).
#[derive(Debug, Default)]
pub struct UpstreamTransport {
    pub tls: Option<Arc<UpstreamTls>>,
    pub proxy_protocol: Option<Arc<crate::network::proxy_protocol::UpstreamProxyProtocol>>,
}

/// `envoy.transport_sockets.raw_buffer`: plain bytes, as without a transport socket.
pub const RAW_BUFFER_TYPE: &str = "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";

/// A cluster's TLS (`UpstreamTlsContext`), built on the main thread, used by every worker.
#[derive(Debug)]
pub struct UpstreamTls {
    pub context: ContextCell<ClientConfig>,
    /// The `sni` (also the name a certificate is checked against); `None`: no
    /// SNI, as Envoy, and the host's address stands in.
    pub server_name: Option<ServerName<'static>>,
    pub stats: TlsStats,
    /// Reads the upstream's certificate (the TLS extension's reader), for
    /// the access log's `%UPSTREAM_PEER_*%`.
    pub read_peer: PeerCertificateReader,
    /// Reads the rest of a certificate, on demand (the TLS extension's reader).
    pub read_details: CertificateDetailsReader,
    /// The TLS 1.2 session ID of the last session made whole: a session
    /// resumed without a new ticket keeps it in BoringSSL, which the records
    /// do not show (the context's last stands in for the resumed one, as
    /// `TlsStats` does for the signature).
    pub last_session_id: std::sync::Mutex<Option<String>>,
}

/// A TLS context's certificates as Envoy's `/certs` lists them: each trusted
/// CA and the leaf of each `tls_certificates` entry. Read from the
/// config's certificates when the context is built, so the admin endpoint
/// needs no certificate parser and no config message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextCertificates {
    pub ca_cert: Vec<CertificateDetails>,
    pub cert_chain: Vec<CertificateDetails>,
}

/// One certificate's `/certs` entry; the times are seconds since the Unix
/// epoch (`days_until_expiration` depends on when it is asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateDetails {
    /// The file it was read from, or `<inline>`.
    pub path: String,
    /// Lowercase hex of the serial's bytes, leading zero bytes left out, as
    /// BoringSSL's `BN_bn2hex` prints it (Envoy lowercases it).
    pub serial_number: String,
    /// RFC 2253, as BoringSSL prints it.
    pub subject: String,
    pub subject_alt_names: Vec<SubjectAltName>,
    pub valid_from: i64,
    pub expiration_time: i64,
}

/// A peer certificate none of whose subject alternative names the validation
/// context's matchers accept (`ssl.fail_verify_san`).
#[derive(Debug)]
pub struct SanMismatch;

impl std::fmt::Display for SanMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no subject alternative name of the certificate matches")
    }
}

impl std::error::Error for SanMismatch {}

/// The verification error of a peer certificate that none of the context's
/// `verify_certificate_hash`/`verify_certificate_spki` pins match
/// (`ssl.fail_verify_cert_hash`).
#[derive(Debug)]
pub struct CertHashMismatch;

impl std::fmt::Display for CertHashMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the certificate matches no pinned hash")
    }
}

impl std::error::Error for CertHashMismatch {}

/// The subject alternative names `/certs` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectAltName {
    Dns(String),
    Uri(String),
    IpAddress(std::net::IpAddr),
    /// An `rfc822Name`.
    Email(String),
}

impl UpstreamTls {
    /// Runs the client handshake on a connected socket to `host`, for
    /// `protocol`, with the request's `options`; the session and what it says
    /// (read once, for the requests the connection carries).
    pub async fn connect(
        &self,
        tcp: TcpStream,
        host: std::net::IpAddr,
        protocol: Option<AlpnFallback>,
        options: &TransportOptions,
    ) -> io::Result<(TransportStream, UpstreamTlsInfo)> {
        let Some(context) = self.context.current() else {
            self.stats.factory.upstream_context_secrets_not_ready.inc();
            return Err(io::Error::new(io::ErrorKind::NotConnected, "the TLS context's secrets are not ready"));
        };
        let mut config = match (&context.fallback, protocol) {
            (Some([h1, _, _]), Some(AlpnFallback::Http11)) => h1,
            (Some([_, h2, _]), Some(AlpnFallback::Http2)) => h2,
            (Some([_, _, both]), Some(AlpnFallback::Auto)) => both,
            _ => &context.config,
        }
        .clone();
        // An address sends no SNI (rustls sends none for an IP `ServerName`).
        let name = match options.server_name.as_deref().map(server_name) {
            Some(name) => name?,
            None => self.server_name.clone().unwrap_or(ServerName::IpAddress(host.into())),
        };
        if let Some(verify) = options.verify_name.as_deref() {
            // Without a trusted CA nothing vouches for a name: Envoy fails the
            // connection, counting no `ssl.*` stat.
            let Some(make) = &context.name_verifier else {
                return Err(io::Error::other("auto_san_validation without a trusted CA"));
            };
            let Ok(verify) = server_name(verify) else {
                // Neither a DNS name nor an address: no certificate names it.
                self.stats.ssl.fail_verify_san.inc();
                return Err(io::Error::other(SanMismatch));
            };
            // Per connection: the name differs by request, and connections are
            // rarer than requests (a clone of Arcs; the session cache is shared).
            let mut c = (*config).clone();
            c.dangerous().set_certificate_verifier(make.verifier(verify));
            config = Arc::new(c);
        }
        let conn = rustls::client::UnbufferedClientConnection::new(config, name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        match TlsSession::connect(tcp, conn, self.stats.ssl.connection_error.clone()).await {
            Ok((session, facts)) => {
                self.stats.handshake_done(&session, &facts);
                let info = TlsSessionInfo::of_upstream(&session, &facts, self, &context);
                Ok((TransportStream::Tls(SharedStream::new(session)), info))
            }
            Err(e) => {
                self.stats.handshake_failed(&e);
                Err(e)
            }
        }
    }
}

/// A host name or address as rustls's `ServerName`.
fn server_name(name: &str) -> io::Result<ServerName<'static>> {
    ServerName::try_from(name.to_string()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// Builds a filter chain's `transport_socket` (its `typed_config`; `path` points at
/// it). The layer that reads TLS config implements it, as `NetworkFilterBuilder`.
pub trait TransportSocketBuilder {
    fn downstream(
        &self,
        typed_config: &envoy_types::pb::google::protobuf::Any,
        path: &FieldPath,
        stat_prefix: &str,
        handshake_timeout: Option<Duration>,
    ) -> Result<Arc<DownstreamTls>, ConfigError>;

    fn upstream(
        &self,
        typed_config: &envoy_types::pb::google::protobuf::Any,
        path: &FieldPath,
        stat_prefix: &str,
    ) -> Result<Arc<UpstreamTls>, ConfigError>;

    /// A cluster's `transport_socket` of any kind the builder knows (TLS, the
    /// upstream PROXY protocol, `raw_buffer`).
    fn upstream_transport(
        &self,
        typed_config: &envoy_types::pb::google::protobuf::Any,
        path: &FieldPath,
        stat_prefix: &str,
    ) -> Result<UpstreamTransport, ConfigError>;
}

/// The TLS of a listener's filter chain (`chain`, at `path`), built by the
/// transport socket builder `filters` offers; `None` without a `transport_socket`.
pub fn downstream_of(
    chain: &envoy_types::pb::envoy::config::listener::v3::FilterChain,
    path: &FieldPath,
    filters: &dyn super::NetworkFilterBuilder,
    scope: super::ListenerScope<'_>,
) -> Result<Option<Arc<DownstreamTls>>, ConfigError> {
    use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
    let Some(socket) = &chain.transport_socket else {
        return Ok(None);
    };
    let mut path = path.clone();
    path.push_field("transport_socket");
    let Some(ConfigType::TypedConfig(any)) = &socket.config_type else {
        return Err(path.field_error("typed_config", "a transport socket needs a typed_config"));
    };
    if crate::config::descriptor::type_name(&any.type_url) == RAW_BUFFER_TYPE {
        return Ok(None);
    }
    let builder = filters.transport_sockets().ok_or_else(|| path.error("transport sockets are not supported here"))?;
    let timeout = chain.transport_socket_connect_timeout.as_ref().map(crate::config::duration).filter(|d| !d.is_zero());
    path.push_field("typed_config");
    builder.downstream(any, &path, &format!("listener.{}.", scope.stat_scope), timeout).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Envoy's `ocspStapleAction`, as Envoy 1.40 behaves with `openssl s_client`.
    #[test]
    fn the_ocsp_policy_decides_only_for_clients_that_ask() {
        use OcspAction::*;
        let now = 1000;
        for (policy, staple, asked, want) in [
            (OcspStaplePolicy::Lenient, Some(2000), true, Staple),
            (OcspStaplePolicy::Lenient, Some(1000), true, Omit),
            (OcspStaplePolicy::Lenient, None, true, Omit),
            (OcspStaplePolicy::Strict, Some(1000), true, Fail),
            (OcspStaplePolicy::Strict, None, true, Omit),
            (OcspStaplePolicy::MustStaple, Some(i64::MIN), true, Fail),
            (OcspStaplePolicy::MustStaple, Some(1000), false, NotAsked),
            (OcspStaplePolicy::Strict, Some(1000), false, NotAsked),
        ] {
            let stapling = OcspStapling { policy, valid_until: vec![staple], must_staple: vec![false] };
            assert_eq!(stapling.action(asked, Some(0), now), want, "{policy:?} {staple:?} {asked}");
        }
        // A must-staple certificate fails on an expired staple under any policy.
        let must =
            OcspStapling { policy: OcspStaplePolicy::Lenient, valid_until: vec![Some(1000)], must_staple: vec![true] };
        assert_eq!(must.action(true, Some(0), now), Fail);
    }
}
