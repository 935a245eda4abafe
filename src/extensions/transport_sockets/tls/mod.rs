//! `envoy.transport_sockets.tls`: `DownstreamTlsContext` and `UpstreamTlsContext`
//! read into rustls configs (on the `ring` provider, TLS 1.2 and 1.3), built once
//! on the main thread. Only what Courier implements is accepted (`SUPPORTED_FIELDS`,
//! checked by the config walker); a value rustls cannot do (TLS 1.0/1.1, a cipher
//! it lacks) is refused here with the field's path. Without a validation context
//! an upstream certificate is not verified, as Envoy; with one, its chain is
//! verified against `trusted_ca` (and its `crl`s: `crl`), and its name only
//! against `match_typed_subject_alt_names` (`san_matcher`), as Envoy's, or against
//! the request's host with `auto_san_validation` (`NameVerifier`). Certificates and
//! validation contexts may also come from secrets (`secret`): a context is built
//! with them put inline, and built again when an SDS secret changes.

mod crl;
mod der;
mod ocsp;
mod pins;
mod random;
mod san_matcher;
mod secret;
mod tickets;
mod verifiers;

pub use secret::{LoadedSecret, SdsSecret, SecretManager, SECRET_TYPE};

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::DataSource;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::tls_parameters::TlsProtocol;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, DownstreamTlsContext, TlsParameters, UpstreamTlsContext,
};
use envoy_types::pb::google::protobuf::Any;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::config::bootstrap::decode_any;
use crate::config::{ConfigError, FieldPath};
use crate::extensions::FactoryContext;
use crate::network::tls::{
    CertificateDetails, ContextCell, ContextCertificates, DownstreamTls, Fingerprint, NameVerifier, OcspStaplePolicy,
    OcspStapling, PeerCertificate, TlsContext, TlsStats, TransportSocketBuilder, UpstreamTls, UpstreamTransport,
    CIPHER_NAMES,
};
use crate::stats::Store;
use der::subject_public_key_info;
use pins::{CertificatePins, PeerChecks};
use san_matcher::SanMatchers;
use verifiers::{
    ChainOnlyVerifier, CheckedClientVerifier, HostNameVerifier, UnverifiedClientCert, UnverifiedServerCert,
};

pub const DOWNSTREAM_TYPE: &str = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
pub const UPSTREAM_TYPE: &str = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";

/// The TLS messages' fields Courier acts on.
pub const SUPPORTED_FIELDS: &[(&str, &[&str])] = &[
    ("envoy.config.core.v3.TransportSocket", &["name", "typed_config"]),
    (
        "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        &[
            "common_tls_context",
            "require_client_certificate",
            "require_sni",
            "disable_stateless_session_resumption",
            "disable_stateful_session_resumption",
            "session_ticket_keys",
            "session_timeout",
            "ocsp_staple_policy",
            "session_ticket_keys_sds_secret_config",
        ],
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        &["common_tls_context", "sni", "max_session_keys"],
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext",
        &[
            "tls_params",
            "tls_certificates",
            "validation_context",
            "alpn_protocols",
            "tls_certificate_sds_secret_configs",
            "validation_context_sds_secret_config",
            "combined_validation_context",
        ],
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext",
        &["default_validation_context", "validation_context_sds_secret_config"],
    ),
    ("envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig", &["name", "sds_config"]),
    ("envoy.extensions.transport_sockets.tls.v3.TlsSessionTicketKeys", &["keys"]),
    // `generic_secret` is refused.
    (
        "envoy.extensions.transport_sockets.tls.v3.Secret",
        &["name", "tls_certificate", "validation_context", "session_ticket_keys"],
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.TlsParameters",
        &["tls_minimum_protocol_version", "tls_maximum_protocol_version", "cipher_suites", "ecdh_curves"],
    ),
    ("envoy.extensions.transport_sockets.tls.v3.TlsCertificate", &["certificate_chain", "private_key", "ocsp_staple"]),
    (
        "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext",
        &[
            "trusted_ca",
            "match_typed_subject_alt_names",
            "match_subject_alt_names",
            "verify_certificate_hash",
            "verify_certificate_spki",
            "system_root_certs",
            "crl",
            "only_verify_leaf_cert_crl",
        ],
    ),
    ("envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext.SystemRootCerts", &[]),
    // `oid` (OTHER_NAME) is refused.
    ("envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher", &["san_type", "matcher"]),
];

/// Builds the transport sockets of listeners and clusters from their config.
pub struct TlsSocketBuilder<'a> {
    pub store: &'a Arc<Store>,
    /// The secrets contexts may name.
    pub secrets: &'a SecretManager,
}

impl TransportSocketBuilder for TlsSocketBuilder<'_> {
    fn downstream(
        &self,
        any: &Any,
        path: &FieldPath,
        stat_prefix: &str,
        handshake_timeout: Option<Duration>,
    ) -> Result<Arc<DownstreamTls>, ConfigError> {
        check_type(any, path, DOWNSTREAM_TYPE)?;
        let proto: DownstreamTlsContext = decode_any(any, path)?;
        let context = downstream_context(&proto, path, self.secrets)?;
        let stats = TlsStats::new(self.store, stat_prefix, true);
        if let Some(c) = &context {
            expirations(&stats, proto.common_tls_context.as_ref(), &c.certificates);
        }
        let tls = Arc::new(DownstreamTls {
            context: ContextCell::new(context),
            handshake_timeout,
            stats,
            read_peer: peer_certificate,
            read_details: certificate_details_of,
        });
        let common = proto.common_tls_context.clone().unwrap_or_default();
        let rebuild = Rebuild {
            tls: Arc::downgrade(&tls),
            proto,
            path: path.clone(),
            build: downstream_context,
            parts: |t: &DownstreamTls| (&t.context, &t.stats),
            common: |p: &DownstreamTlsContext| p.common_tls_context.as_ref(),
        };
        let keys = ticket_keys_secret(&rebuild.proto).cloned();
        self.secrets.subscribe(&common, keys.as_ref(), Arc::new(rebuild));
        Ok(tls)
    }

    fn upstream(&self, any: &Any, path: &FieldPath, stat_prefix: &str) -> Result<Arc<UpstreamTls>, ConfigError> {
        check_type(any, path, UPSTREAM_TYPE)?;
        let proto: UpstreamTlsContext = decode_any(any, path)?;
        let context = upstream_context(&proto, path, self.secrets)?;
        let stats = TlsStats::new(self.store, stat_prefix, false);
        if let Some(c) = &context {
            expirations(&stats, proto.common_tls_context.as_ref(), &c.certificates);
        }
        let server_name = match proto.sni.as_str() {
            "" => None,
            sni => Some(
                ServerName::try_from(sni.to_string())
                    .map_err(|_| path.field_error("sni", format!("'{sni}' is not a DNS name")))?,
            ),
        };
        let tls = Arc::new(UpstreamTls {
            context: ContextCell::new(context),
            server_name,
            stats,
            read_peer: peer_certificate,
            read_details: certificate_details_of,
            last_session_id: Default::default(),
        });
        let common = proto.common_tls_context.clone().unwrap_or_default();
        let rebuild = Rebuild {
            tls: Arc::downgrade(&tls),
            proto,
            path: path.clone(),
            build: upstream_context,
            parts: |t: &UpstreamTls| (&t.context, &t.stats),
            common: |p: &UpstreamTlsContext| p.common_tls_context.as_ref(),
        };
        self.secrets.subscribe(&common, None, Arc::new(rebuild));
        Ok(tls)
    }

    fn upstream_transport(
        &self,
        any: &Any,
        path: &FieldPath,
        stat_prefix: &str,
    ) -> Result<UpstreamTransport, ConfigError> {
        super::proxy_protocol::upstream_transport(self, self.store, any, path, stat_prefix)
    }
}

/// The SDS secret a listener's ticket keys come from, if they do.
fn ticket_keys_secret(
    proto: &DownstreamTlsContext,
) -> Option<&envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::SdsSecretConfig> {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::downstream_tls_context::SessionTicketKeysType;
    match &proto.session_ticket_keys_type {
        Some(SessionTicketKeysType::SessionTicketKeysSdsSecretConfig(c)) => Some(c),
        _ => None,
    }
}

/// A listener's context from its config and the secrets it names; `None`
/// while an SDS secret has not loaded.
fn downstream_context(
    proto: &DownstreamTlsContext,
    path: &FieldPath,
    secrets: &SecretManager,
) -> Result<Option<TlsContext<ServerConfig>>, ConfigError> {
    let common = proto.common_tls_context.clone().unwrap_or_default();
    let common_path = child(path, "common_tls_context");
    if !common.tls_certificates.is_empty() && !common.tls_certificate_sds_secret_configs.is_empty() {
        return Err(common_path.field_error(
            "tls_certificate_sds_secret_configs",
            "SDS and non-SDS TLS certificates may not be mixed in server contexts",
        ));
    }
    // Both are looked up before either may wait, so each SDS secret is registered.
    let with_keys = secrets.resolve_ticket_keys(proto, path)?;
    let Some(common) = secrets.resolve(&common, &common_path)? else { return Ok(None) };
    let Some(proto) = with_keys else { return Ok(None) };
    let proto = DownstreamTlsContext { common_tls_context: Some(common), ..proto };
    let (config, ocsp) = server_config(&proto, path)?;
    let certificates = context_certificates(proto.common_tls_context.as_ref(), path)?;
    Ok(Some(TlsContext { config: Arc::new(config), fallback: None, name_verifier: None, certificates, ocsp }))
}

/// A cluster's context, as `downstream_context`, with its ALPN fallbacks.
fn upstream_context(
    proto: &UpstreamTlsContext,
    path: &FieldPath,
    secrets: &SecretManager,
) -> Result<Option<TlsContext<ClientConfig>>, ConfigError> {
    let common = proto.common_tls_context.clone().unwrap_or_default();
    let common_path = child(path, "common_tls_context");
    let sds = common.tls_certificate_sds_secret_configs.len();
    if sds > 0 && common.tls_certificates.len() + sds > 1 {
        return Err(common_path.field_error(
            "tls_certificate_sds_secret_configs",
            "Multiple TLS certificates are not supported for client contexts",
        ));
    }
    let Some(common) = secrets.resolve(&common, &common_path)? else { return Ok(None) };
    let proto = UpstreamTlsContext { common_tls_context: Some(common), ..proto.clone() };
    let (config, name_verifier) = client_config(&proto, path)?;
    let certificates = context_certificates(proto.common_tls_context.as_ref(), path)?;
    let fallback = config.alpn_protocols.is_empty().then(|| {
        [&[b"http/1.1".as_slice()][..], &[b"h2"], &[b"h2", b"http/1.1"]].map(|protocols| {
            let mut c = config.clone();
            c.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
            Arc::new(c)
        })
    });
    Ok(Some(TlsContext {
        config: Arc::new(config),
        fallback,
        name_verifier,
        certificates,
        ocsp: OcspStapling::default(),
    }))
}

/// Envoy's `ssl.certificate.<name>.expiration_unix_time_seconds` of each
/// certificate of a context: named by its secret, an inline one
/// `unnamed_cert_e3b0c442` (Envoy's name for a certificate without one: all
/// inline ones share it, the last set wins, as in Envoy 1.40).
fn expirations(stats: &TlsStats, common: Option<&CommonTlsContext>, certificates: &ContextCertificates) {
    let Some(common) = common else { return };
    let inline = common.tls_certificates.iter().map(|_| "unnamed_cert_e3b0c442");
    let names = inline.chain(common.tls_certificate_sds_secret_configs.iter().map(|c| c.name.as_str()));
    // One leaf per certificate, in the same order (`context_certificates`).
    for (name, leaf) in names.zip(&certificates.cert_chain) {
        stats.certificate_expiration(name, leaf.expiration_time);
    }
}

/// Builds a context again when an SDS secret it names changes: `build` from
/// the config `proto` (at `path`) into the cell `parts` finds in the context,
/// whose `common_tls_context` `common` reads.
struct Rebuild<T, P, C> {
    tls: std::sync::Weak<T>,
    proto: P,
    path: FieldPath,
    build: ContextBuilder<P, C>,
    parts: fn(&T) -> (&ContextCell<C>, &TlsStats),
    common: fn(&P) -> Option<&CommonTlsContext>,
}

type ContextBuilder<P, C> = fn(&P, &FieldPath, &SecretManager) -> Result<Option<TlsContext<C>>, ConfigError>;

impl<T: Send + Sync, P: Send + Sync, C: Send + Sync> secret::Dependent for Rebuild<T, P, C> {
    fn rebuild(&self, secrets: &SecretManager) -> Result<(), ConfigError> {
        let Some(tls) = self.tls.upgrade() else { return Ok(()) };
        let (cell, stats) = (self.parts)(&tls);
        if let Some(context) = (self.build)(&self.proto, &self.path, secrets)? {
            expirations(stats, (self.common)(&self.proto), &context.certificates);
            cell.replace(context);
        }
        // Counted as Envoy's factory counts it: also while another secret the
        // context needs has not come (no context is built yet).
        stats.factory.ssl_context_update_by_sds.inc();
        Ok(())
    }

    fn alive(&self) -> bool {
        self.tls.strong_count() > 0
    }
}

/// Listeners build their chains' TLS with the server's stat store.
impl TransportSocketBuilder for FactoryContext<'_> {
    fn downstream(
        &self,
        any: &Any,
        path: &FieldPath,
        stat_prefix: &str,
        handshake_timeout: Option<Duration>,
    ) -> Result<Arc<DownstreamTls>, ConfigError> {
        TlsSocketBuilder { store: self.store, secrets: self.secrets }.downstream(
            any,
            path,
            stat_prefix,
            handshake_timeout,
        )
    }

    fn upstream(&self, any: &Any, path: &FieldPath, stat_prefix: &str) -> Result<Arc<UpstreamTls>, ConfigError> {
        TlsSocketBuilder { store: self.store, secrets: self.secrets }.upstream(any, path, stat_prefix)
    }

    fn upstream_transport(
        &self,
        any: &Any,
        path: &FieldPath,
        stat_prefix: &str,
    ) -> Result<UpstreamTransport, ConfigError> {
        TlsSocketBuilder { store: self.store, secrets: self.secrets }.upstream_transport(any, path, stat_prefix)
    }
}

fn check_type(any: &Any, path: &FieldPath, want: &str) -> Result<(), ConfigError> {
    match crate::config::descriptor::type_name(&any.type_url) {
        t if t == want => Ok(()),
        _ => Err(path.field_error("@type", format!("unsupported transport socket '{}' here", any.type_url))),
    }
}

fn child(path: &FieldPath, name: &str) -> FieldPath {
    let mut p = path.clone();
    p.push_field(name);
    p
}

/// A listener's rustls config, and its OCSP staples for the handshakes to decide by.
fn server_config(proto: &DownstreamTlsContext, path: &FieldPath) -> Result<(ServerConfig, OcspStapling), ConfigError> {
    let common_path = child(path, "common_tls_context");
    let common = proto.common_tls_context.clone().unwrap_or_default();
    let provider = provider_for(&common, &common_path)?;
    let versions = versions(common.tls_params.as_ref(), &common_path, Side::Server)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| common_path.field_error("tls_params", e.to_string()))?;
    let require = proto.require_client_certificate.as_ref().is_some_and(|b| b.value);
    let (checks, revocation) = peer_checks_and_crls(&common, &common_path)?;
    let builder = match trusted_ca(&common, &common_path)? {
        Some(roots) => {
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier = if require { verifier } else { verifier.allow_unauthenticated() };
            let verifier = match revocation {
                Some(r) => r.client(verifier),
                None => verifier,
            };
            let webpki = verifier.build().map_err(|e| common_path.field_error("validation_context", e.to_string()))?;
            // Always wrapped, also without checks: the wrapper notes the
            // client's signature scheme (`ssl.sigalgs.*`).
            builder.with_client_cert_verifier(Arc::new(CheckedClientVerifier { webpki, checks }))
        }
        // As Envoy: a certificate is required (or asked for, to check pins), and
        // not verified but by its pins.
        None if require || !checks.pins.is_empty() => {
            let pins = checks.pins;
            let verifier = UnverifiedClientCert { provider: provider.clone(), mandatory: require, pins };
            builder.with_client_cert_verifier(Arc::new(verifier))
        }
        None => builder.with_no_client_auth(),
    };
    let pairs = all_certificates(&common, &common_path)?;
    let policy = ocsp_policy(proto, path)?;
    let mut ocsp = OcspStapling { policy, ..OcspStapling::default() };
    let mut config = match pairs.len() {
        0 => return Err(common_path.field_error("tls_certificates", "a TLS listener needs a certificate")),
        _ => {
            let mut keys = Vec::with_capacity(pairs.len());
            for (i, ((chain, key), cert)) in pairs.into_iter().zip(&common.tls_certificates).enumerate() {
                let cert_path = indexed(&common_path, "tls_certificates", i);
                let leaf = chain.first().and_then(|leaf| der::certificate_fields(leaf.as_ref()));
                let must_staple = leaf.as_ref().is_some_and(|f| f.must_staple);
                let staple = ocsp_staple(cert, leaf.map(|f| f.serial_number), &cert_path)?;
                if staple.is_none() && policy == OcspStaplePolicy::MustStaple {
                    return Err(
                        cert_path.field_error("ocsp_staple", "Required OCSP response is missing from TLS context")
                    );
                }
                if staple.is_none() && must_staple {
                    return Err(
                        cert_path.field_error("ocsp_staple", "OCSP response is required for must-staple certificate")
                    );
                }
                ocsp.must_staple.push(must_staple);
                let certified = certified_key(chain, key, &provider).map_err(|e| {
                    common_path
                        .field_error(&format!("tls_certificates[{i}]"), format!("invalid certificate or key: {e}"))
                })?;
                ocsp.valid_until.push(staple.as_ref().map(|(_, until)| *until));
                let stapled = staple.map(|(der, until)| {
                    let mut with = certified.clone();
                    with.ocsp = Some(der);
                    (Arc::new(with), until)
                });
                keys.push(ServedKey { key: Arc::new(certified), stapled });
            }
            builder.with_cert_resolver(Arc::new(SniResolver { keys }))
        }
    };
    config.alpn_protocols = common.alpn_protocols.iter().map(|p| p.as_bytes().to_vec()).collect();
    resumption(&mut config, proto, path)?;
    Ok((config, ocsp))
}

/// `ocsp_staple_policy` (LENIENT_STAPLING by default).
fn ocsp_policy(proto: &DownstreamTlsContext, path: &FieldPath) -> Result<OcspStaplePolicy, ConfigError> {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::downstream_tls_context::OcspStaplePolicy as P;
    match P::try_from(proto.ocsp_staple_policy) {
        Ok(P::LenientStapling) => Ok(OcspStaplePolicy::Lenient),
        Ok(P::StrictStapling) => Ok(OcspStaplePolicy::Strict),
        Ok(P::MustStaple) => Ok(OcspStaplePolicy::MustStaple),
        Err(_) => Err(path.field_error("ocsp_staple_policy", "unknown policy")),
    }
}

/// A certificate's `ocsp_staple` (DER) and until when it is valid, checked
/// against the certificate as Envoy checks it; `None` without one (an empty
/// source is none, as in Envoy).
fn ocsp_staple(
    cert: &envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::TlsCertificate,
    serial: Option<String>,
    path: &FieldPath,
) -> Result<Option<(Vec<u8>, i64)>, ConfigError> {
    let Some(source) = &cert.ocsp_staple else { return Ok(None) };
    let staple_path = child(path, "ocsp_staple");
    let der = data(Some(source), &staple_path)?;
    if der.is_empty() {
        return Ok(None);
    }
    let serial =
        serial.ok_or_else(|| path.field_error("certificate_chain", "cannot read the certificate's serial number"))?;
    let until = ocsp::valid_until(&der, &serial).map_err(|e| staple_path.error(e))?;
    Ok(Some((der, until)))
}

/// Session resumption as Envoy's BoringSSL does it: stateless tickets (under
/// `session_ticket_keys`, else a key of the context's own) and a stateful
/// session cache, each of which can be turned off. BoringSSL resumes TLS 1.3 by
/// ticket only, so without stateless tickets no TLS 1.3 ticket is sent at all;
/// the cache then serves TLS 1.2 session IDs.
fn resumption(config: &mut ServerConfig, proto: &DownstreamTlsContext, path: &FieldPath) -> Result<(), ConfigError> {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::downstream_tls_context::SessionTicketKeysType;
    // Only whole seconds count, as Envoy's; the schema keeps it below 2^32.
    let lifetime = proto
        .session_timeout
        .as_ref()
        .map_or(tickets::DEFAULT_LIFETIME, |d| u32::try_from(crate::config::duration(d).as_secs()).unwrap_or(u32::MAX));
    match &proto.session_ticket_keys_type {
        Some(SessionTicketKeysType::DisableStatelessSessionResumption(true)) => config.send_tls13_tickets = 0,
        Some(SessionTicketKeysType::SessionTicketKeys(keys)) => {
            let keys = tickets::TicketKeys::from_sources(&keys.keys, lifetime, &child(path, "session_ticket_keys"))?;
            config.ticketer = Arc::new(keys);
        }
        _ => config.ticketer = Arc::new(tickets::TicketKeys::random(lifetime, path)?),
    }
    if proto.disable_stateful_session_resumption {
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    }
    Ok(())
}

/// A cluster's rustls config, and what makes its verifier for a request's host
/// (`None` without a trusted CA).
fn client_config(
    proto: &UpstreamTlsContext,
    path: &FieldPath,
) -> Result<(ClientConfig, Option<Arc<dyn NameVerifier>>), ConfigError> {
    let common_path = child(path, "common_tls_context");
    let common = proto.common_tls_context.clone().unwrap_or_default();
    let provider = provider_for(&common, &common_path)?;
    let versions = versions(common.tls_params.as_ref(), &common_path, Side::Client)?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| common_path.field_error("tls_params", e.to_string()))?;
    let (checks, revocation) = peer_checks_and_crls(&common, &common_path)?;
    let (verifier, name_verifier): (Arc<dyn ServerCertVerifier>, Option<Arc<dyn NameVerifier>>) =
        match trusted_ca(&common, &common_path)? {
            Some(roots) => {
                let webpki =
                    rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                let webpki = match revocation {
                    Some(r) => r.server(webpki),
                    None => webpki,
                };
                let webpki =
                    webpki.build().map_err(|e| common_path.field_error("validation_context", e.to_string()))?;
                let by_name = HostNameVerifier { webpki: webpki.clone(), checks: checks.clone() };
                (Arc::new(ChainOnlyVerifier { webpki, checks, name: None }), Some(Arc::new(by_name)))
            }
            None => (Arc::new(UnverifiedServerCert { provider, pins: checks.pins }), None),
        };
    let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
    let mut config = match certificates(&common, &common_path)? {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| common_path.field_error("tls_certificates[0]", format!("invalid certificate or key: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = common.alpn_protocols.iter().map(|p| p.as_bytes().to_vec()).collect();
    // Envoy sends SNI only when `sni` (or `auto_sni`) names a host: without
    // one the handshake's `ServerName` is the address, for which rustls sends none.
    config.enable_sni = true;
    // `max_session_keys` (Envoy's default 1, 0: no resumption): the sessions
    // kept to resume; rustls keeps them per server name.
    config.resumption = match proto.max_session_keys.as_ref().map_or(1, |v| v.value) {
        0 => rustls::client::Resumption::disabled(),
        n => rustls::client::Resumption::in_memory_sessions(n as usize),
    };
    Ok((config, name_verifier))
}

/// Envoy's default TLS 1.2 cipher suites, in its order (ring's own list puts
/// AES-256 first: a client would offer, and get, another cipher than Envoy's).
const ENVOY_DEFAULT_CIPHERS: [&str; 4] = [
    "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]",
    "[ECDHE-RSA-AES128-GCM-SHA256|ECDHE-RSA-CHACHA20-POLY1305]",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
];

/// The ring provider with Envoy's default curves, and `tls_params.cipher_suites` (BoringSSL names, `[a|b]`
/// groups flattened; Envoy's defaults without) as its TLS 1.2 suites; TLS 1.3's stay, as
/// BoringSSL's cannot be configured either.
fn provider_for(common: &CommonTlsContext, path: &FieldPath) -> Result<Arc<CryptoProvider>, ConfigError> {
    // rustls deprecates ring's provider for lacking post-quantum key exchange;
    // aws-lc-rs, which has it, was no cheaper per handshake (see Cargo.toml).
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    // One getrandom per batch of handshakes, not per random value (`random`).
    provider.secure_random = &random::BatchedRandom;
    // Envoy's default curves, in its order (ring's own list puts P-384 first).
    provider.kx_groups = vec![rustls::crypto::ring::kx_group::X25519, rustls::crypto::ring::kx_group::SECP256R1];
    if let Some(params) = common.tls_params.as_ref().filter(|p| !p.ecdh_curves.is_empty()) {
        provider.kx_groups = curves(&params.ecdh_curves, path)?;
    }
    let names: &[String] = match common.tls_params.as_ref().filter(|p| !p.cipher_suites.is_empty()) {
        Some(params) => &params.cipher_suites,
        None => &ENVOY_DEFAULT_CIPHERS.map(String::from),
    };
    // TLS 1.3's in BoringSSL's order (ring's puts AES-256 first): a client
    // offers them as Envoy's does, and an upstream that follows the client's
    // order picks what it would pick for Envoy.
    let mut suites: Vec<rustls::SupportedCipherSuite> = Vec::new();
    for name in ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"] {
        let known = CIPHER_NAMES.iter().find(|(_, n)| *n == name);
        if let Some(suite) = known.and_then(|(s, _)| provider.cipher_suites.iter().find(|c| c.suite() == *s)) {
            suites.push(*suite);
        }
    }
    for (i, entry) in names.iter().enumerate() {
        for name in entry.trim_matches(|c| c == '[' || c == ']').split('|') {
            let suite = CIPHER_NAMES
                .iter()
                .find(|(_, n)| *n == name)
                .and_then(|(s, _)| provider.cipher_suites.iter().find(|c| c.suite() == *s))
                .ok_or_else(|| {
                    let mut p = child(path, "tls_params");
                    p.push_field("cipher_suites");
                    p.push_index(i);
                    p.error(format!("cipher '{name}' is not supported by Courier (rustls)"))
                })?;
            if !suites.contains(suite) {
                suites.push(*suite);
            }
        }
    }
    provider.cipher_suites = suites;
    Ok(Arc::new(provider))
}

/// `tls_params.ecdh_curves` (BoringSSL's names, in preference order) as ring's
/// key exchange groups; a curve ring lacks (P-521, the post-quantum hybrids) is
/// refused by name.
fn curves(
    names: &[String],
    path: &FieldPath,
) -> Result<Vec<&'static dyn rustls::crypto::SupportedKxGroup>, ConfigError> {
    use rustls::crypto::ring::kx_group;
    let mut groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup> = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let group: &'static dyn rustls::crypto::SupportedKxGroup = match name.as_str() {
            "X25519" | "x25519" => kx_group::X25519,
            "P-256" | "prime256v1" => kx_group::SECP256R1,
            "P-384" | "secp384r1" => kx_group::SECP384R1,
            _ => {
                let mut p = child(path, "tls_params");
                p.push_field("ecdh_curves");
                p.push_index(i);
                return Err(p.error(format!("curve '{name}' is not supported by Courier (rustls on ring)")));
            }
        };
        if !groups.iter().any(|g| g.name() == group.name()) {
            groups.push(group);
        }
    }
    Ok(groups)
}

/// Which end of a session a context is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Server,
    Client,
}

/// `tls_params` min/max as rustls versions. Envoy's default is TLS 1.2 to 1.3
/// on a listener, and TLS 1.2 only on a cluster (its client maximum is 1.2:
/// Envoy 1.40 negotiates TLS 1.2 with an upstream that offers 1.3).
fn versions(
    params: Option<&TlsParameters>,
    path: &FieldPath,
    side: Side,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, ConfigError> {
    let default_max = if side == Side::Client { 2 } else { 3 };
    let Some(params) = params else {
        return Ok(match side {
            Side::Server => vec![&rustls::version::TLS12, &rustls::version::TLS13],
            Side::Client => vec![&rustls::version::TLS12],
        });
    };
    let level = |v: i32, field: &str, default: u8| -> Result<u8, ConfigError> {
        match TlsProtocol::try_from(v) {
            Ok(TlsProtocol::TlsAuto) => Ok(default),
            Ok(TlsProtocol::TlSv12) => Ok(2),
            Ok(TlsProtocol::TlSv13) => Ok(3),
            _ => {
                let mut p = child(path, "tls_params");
                p.push_field(field);
                Err(p.error("Courier (rustls) supports TLS 1.2 and 1.3 only"))
            }
        }
    };
    let min = level(params.tls_minimum_protocol_version, "tls_minimum_protocol_version", 2)?;
    let max = level(params.tls_maximum_protocol_version, "tls_maximum_protocol_version", default_max)?;
    let out: Vec<_> = [(2, &rustls::version::TLS12), (3, &rustls::version::TLS13)]
        .into_iter()
        .filter(|(l, _)| (min..=max).contains(l))
        .map(|(_, v)| v)
        .collect();
    if out.is_empty() {
        return Err(
            child(path, "tls_params").error("tls_minimum_protocol_version is above tls_maximum_protocol_version")
        );
    }
    Ok(out)
}

/// What `/certs` lists of a context, as Envoy 1.40: every certificate of
/// `trusted_ca`, and the first (leaf) certificate of each `tls_certificates`
/// chain. Run after the rustls config is built, so the sources are known good.
fn context_certificates(
    common: Option<&CommonTlsContext>,
    path: &FieldPath,
) -> Result<ContextCertificates, ConfigError> {
    let Some(common) = common else { return Ok(ContextCertificates::default()) };
    let common_path = child(path, "common_tls_context");
    let mut out = ContextCertificates::default();
    if let Some(ValidationContextType::ValidationContext(vc)) = &common.validation_context_type {
        if let Some(ca) = &vc.trusted_ca {
            let mut ca_path = child(&common_path, "validation_context");
            ca_path.push_field("trusted_ca");
            out.ca_cert.extend(certificate_details(ca, &ca_path, usize::MAX)?);
        }
    }
    for (i, cert) in common.tls_certificates.iter().enumerate() {
        let mut p = child(&common_path, "tls_certificates");
        p.push_index(i);
        let chain_path = child(&p, "certificate_chain");
        if let Some(chain) = &cert.certificate_chain {
            out.cert_chain.extend(certificate_details(chain, &chain_path, 1)?);
        }
    }
    Ok(out)
}

/// The `/certs` entries of the first `most` PEM certificates of `source`.
fn certificate_details(
    source: &DataSource,
    path: &FieldPath,
    most: usize,
) -> Result<Vec<CertificateDetails>, ConfigError> {
    let pem = data(Some(source), path)?;
    let shown = source_name(source);
    let mut out = Vec::new();
    for cert in CertificateDer::pem_slice_iter(&pem).take(most) {
        let der = cert.map_err(|e| path.error(format!("invalid PEM certificate: {e}")))?;
        let mut details = certificate_details_of(der.as_ref())
            .ok_or_else(|| path.error("cannot read the certificate's serial number, validity or names"))?;
        details.path = shown.clone();
        out.push(details);
    }
    Ok(out)
}

/// Reads a DER certificate's `/certs` entry, its `path` left empty
/// (`network::tls::CertificateDetailsReader`: a client's chain, read on demand).
pub fn certificate_details_of(der: &[u8]) -> Option<CertificateDetails> {
    let fields = der::certificate_fields(der)?;
    Some(CertificateDetails {
        path: String::new(),
        serial_number: fields.serial_number,
        subject: fields.subject,
        subject_alt_names: fields.subject_alt_names,
        valid_from: fields.not_before,
        expiration_time: fields.not_after,
    })
}

/// A certificate chain and its private key.
type CertAndKey = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The one `tls_certificates` entry an upstream context may have, as a chain and key.
fn certificates(common: &CommonTlsContext, path: &FieldPath) -> Result<Option<CertAndKey>, ConfigError> {
    match common.tls_certificates.as_slice() {
        [] => Ok(None),
        [one] => certificate(one, &indexed(path, "tls_certificates", 0)).map(Some),
        _ => Err(path.field_error("tls_certificates[1]", "a client shows one certificate")),
    }
}

/// Every `tls_certificates` entry of a listener's context.
fn all_certificates(common: &CommonTlsContext, path: &FieldPath) -> Result<Vec<CertAndKey>, ConfigError> {
    common
        .tls_certificates
        .iter()
        .enumerate()
        .map(|(i, c)| certificate(c, &indexed(path, "tls_certificates", i)))
        .collect()
}

/// `path.field[i]`.
fn indexed(path: &FieldPath, field: &str, i: usize) -> FieldPath {
    let mut p = child(path, field);
    p.push_index(i);
    p
}

/// A `TlsCertificate` (at `p`) as a chain and key.
fn certificate(
    cert: &envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::TlsCertificate,
    p: &FieldPath,
) -> Result<CertAndKey, ConfigError> {
    let chain_path = child(p, "certificate_chain");
    let pem = data(cert.certificate_chain.as_ref(), &chain_path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| chain_path.error(format!("invalid PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(chain_path.error("no PEM certificate found"));
    }
    let key_path = child(p, "private_key");
    let pem = data(cert.private_key.as_ref(), &key_path)?;
    let key =
        PrivateKeyDer::from_pem_slice(&pem).map_err(|e| key_path.error(format!("invalid PEM private key: {e}")))?;
    Ok((chain, key))
}

/// A listener's certificate and key, refused when the key is not the
/// certificate's. A certificate webpki cannot read is served all the same, as
/// BoringSSL serves it: X.509 v1 certificates, which Envoy's own examples use,
/// are among them (only the client judges the server's certificate).
fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<rustls::sign::CertifiedKey, rustls::Error> {
    let signing = provider.key_provider.load_private_key(key)?;
    let certified = rustls::sign::CertifiedKey::new(chain, signing);
    let mismatch = || rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InvalidCertificate(_)) => {
            // webpki reads v3 only: compare the key with the certificate's
            // SubjectPublicKeyInfo read from the DER directly.
            let cert_spki = certified.cert.first().and_then(|c| subject_public_key_info(c.as_ref()));
            match (certified.key.public_key(), cert_spki) {
                (Some(key), Some(cert)) if key.as_ref() != cert => Err(mismatch()),
                _ => Ok(certified),
            }
        }
        Err(e) => Err(e),
    }
}

/// A listener's certificates: Envoy serves the first whose names cover the SNI
/// the client sent, else the first one.
#[derive(Debug)]
struct SniResolver {
    keys: Vec<ServedKey>,
}

/// A listener certificate, and the same with its OCSP staple and until when
/// the staple is valid (rustls sends it only to a client that asked).
#[derive(Debug)]
struct ServedKey {
    key: Arc<rustls::sign::CertifiedKey>,
    stapled: Option<(Arc<rustls::sign::CertifiedKey>, i64)>,
}

impl ServedKey {
    /// An expired staple is not sent: the handshake already counted (or failed) it.
    fn now(&self) -> Arc<rustls::sign::CertifiedKey> {
        let now = || {
            let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            since.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        };
        match &self.stapled {
            Some((stapled, until)) if now() < *until => stapled.clone(),
            _ => self.key.clone(),
        }
    }
}

impl rustls::server::ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        if let [only] = self.keys.as_slice() {
            return Some(only.now());
        }
        let name = hello
            .server_name()
            .and_then(|n| rustls::pki_types::DnsName::try_from(n).ok())
            .map(|n| ServerName::DnsName(n.to_owned()));
        let covers = |served: &&ServedKey| {
            let (Some(name), Some(leaf)) = (&name, served.key.cert.first()) else { return false };
            webpki::EndEntityCert::try_from(leaf).is_ok_and(|c| c.verify_is_valid_for_subject_name(name).is_ok())
        };
        self.keys.iter().find(covers).or_else(|| self.keys.first()).map(ServedKey::now)
    }
}

/// The validation context's checks of a peer's leaf: subject-name matchers and
/// pins. Envoy refuses the matchers without a `trusted_ca`: a name proves
/// nothing on a chain nobody verified (a pin does).
fn peer_checks(common: &CommonTlsContext, path: &FieldPath) -> Result<PeerChecks, ConfigError> {
    let Some(ValidationContextType::ValidationContext(vc)) = &common.validation_context_type else {
        return Ok(PeerChecks::default());
    };
    let vc_path = child(path, "validation_context");
    let san = SanMatchers::from_proto(vc, &vc_path)?;
    if !san.is_empty() && vc.trusted_ca.is_none() {
        return Err(
            vc_path.error("SAN-based verification of peer certificates without trusted CA is insecure and not allowed")
        );
    }
    Ok(PeerChecks { san, pins: CertificatePins::from_proto(vc, &vc_path)?, no_crl_loaded: false })
}

/// The validation context's checks of a peer's leaf and its CRLs (`None`
/// without a `crl`); a `crl` that holds no CRL fails every peer, as Envoy's.
fn peer_checks_and_crls(
    common: &CommonTlsContext,
    path: &FieldPath,
) -> Result<(PeerChecks, Option<crl::Revocation>), ConfigError> {
    let mut checks = peer_checks(common, path)?;
    let Some(ValidationContextType::ValidationContext(vc)) = &common.validation_context_type else {
        return Ok((checks, None));
    };
    let revocation = crl::Revocation::from_proto(vc, &child(path, "validation_context"))?;
    checks.no_crl_loaded = revocation.as_ref().is_some_and(crl::Revocation::none_loaded);
    Ok((checks, revocation))
}

/// `validation_context.trusted_ca` as roots; `None` without one (no verification).
fn trusted_ca(common: &CommonTlsContext, path: &FieldPath) -> Result<Option<RootCertStore>, ConfigError> {
    let vc = match &common.validation_context_type {
        None => return Ok(None),
        Some(ValidationContextType::ValidationContext(vc)) => vc,
        Some(_) => return Err(path.error("only validation_context is supported")),
    };
    let vc_path = child(path, "validation_context");
    let ca_path = child(&vc_path, "trusted_ca");
    // Envoy verifies against a CA only when one is given.
    let Some(ca) = vc.trusted_ca.as_ref() else {
        return Ok(None);
    };
    let pem = data(Some(ca), &ca_path)?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| ca_path.error(format!("invalid PEM certificate: {e}")))?;
        roots.add(cert).map_err(|e| ca_path.error(format!("invalid CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(ca_path.error("no CA certificate found"));
    }
    Ok(Some(roots))
}

/// How Envoy names a `DataSource` in `/certs` and errors: its file, or `<inline>`.
fn source_name(source: &DataSource) -> String {
    match &source.specifier {
        Some(Specifier::Filename(f)) => f.clone(),
        _ => "<inline>".into(),
    }
}

/// A `DataSource`'s bytes (file or inline).
fn data(source: Option<&DataSource>, path: &FieldPath) -> Result<Vec<u8>, ConfigError> {
    match source.and_then(|s| s.specifier.as_ref()) {
        Some(Specifier::Filename(f)) => {
            std::fs::read(f).map_err(|e| child(path, "filename").error(format!("cannot read '{f}': {e}")))
        }
        Some(Specifier::InlineString(s)) => Ok(s.as_bytes().to_vec()),
        Some(Specifier::InlineBytes(b)) => Ok(b.clone()),
        Some(Specifier::EnvironmentVariable(v)) => std::env::var(v)
            .map(String::into_bytes)
            .map_err(|_| child(path, "environment_variable").error(format!("Environment variable doesn't exist: {v}"))),
        None => Err(path.error("a certificate or key source is required")),
    }
}

/// Reads a client certificate (`network::tls::PeerCertificateReader`).
pub fn peer_certificate(der: &[u8]) -> Option<PeerCertificate> {
    let fields = der::certificate_fields(der)?;
    let (mut uri_sans, mut dns_sans) = (Vec::new(), Vec::new());
    for name in fields.subject_alt_names {
        match name {
            crate::network::tls::SubjectAltName::Uri(u) => uri_sans.push(u),
            crate::network::tls::SubjectAltName::Dns(d) => dns_sans.push(d),
            crate::network::tls::SubjectAltName::IpAddress(_) | crate::network::tls::SubjectAltName::Email(_) => {}
        }
    }
    Some(PeerCertificate {
        subject: fields.subject,
        issuer: fields.issuer,
        uri_sans,
        dns_sans,
        sha256: crate::network::tls::fingerprint(der, Fingerprint::Sha256),
        sha1: crate::network::tls::fingerprint(der, Fingerprint::Sha1),
        serial_number: fields.serial_number,
    })
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{CommonTlsContext, TlsCertificate};

    use super::*;

    fn inline(text: &str) -> Option<DataSource> {
        Some(DataSource { specifier: Some(Specifier::InlineString(text.to_string())), ..Default::default() })
    }

    fn listener_with(cert: &str, key: &str) -> Result<ServerConfig, ConfigError> {
        let proto = DownstreamTlsContext {
            common_tls_context: Some(CommonTlsContext {
                tls_certificates: vec![TlsCertificate {
                    certificate_chain: inline(cert),
                    private_key: inline(key),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        server_config(&proto, &FieldPath::starting_at("transport_socket.typed_config")).map(|(c, _)| c)
    }

    /// Made with `openssl x509 -req -signkey` (no extensions, so version 1), as the
    /// certificates of Envoy's own TLS examples are.
    const V1_CERT: &str = include_str!("testdata/x509-v1-cert.pem");
    const V1_KEY: &str = include_str!("testdata/x509-v1-key.pem");
    const OTHER_KEY: &str = include_str!("testdata/other-key.pem");

    #[test]
    fn the_public_key_info_is_read_from_a_v1_certificate() {
        {
            let pem = V1_CERT;
            let der = CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM");
            let spki = subject_public_key_info(der.as_ref()).expect("an SPKI");
            assert_eq!(spki[0], 0x30);
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(V1_KEY.as_bytes()).expect("key");
            let provider = provider_for(&CommonTlsContext::default(), &FieldPath::new()).expect("provider");
            let signing = provider.key_provider.load_private_key(key).expect("RSA");
            assert_eq!(signing.public_key().expect("RSA has one").as_ref(), spki);
        }
    }

    #[test]
    fn certs_lists_every_trusted_ca_and_the_leaf_of_each_chain() {
        use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::CertificateValidationContext;
        let two = format!("{V1_CERT}{V1_CERT}");
        let common = CommonTlsContext {
            tls_certificates: vec![TlsCertificate {
                certificate_chain: inline(&two),
                private_key: inline(V1_KEY),
                ..Default::default()
            }],
            validation_context_type: Some(ValidationContextType::ValidationContext(CertificateValidationContext {
                trusted_ca: inline(&two),
                ..Default::default()
            })),
            ..Default::default()
        };
        let certs = context_certificates(Some(&common), &FieldPath::new()).expect("readable certificates");
        assert_eq!(certs.ca_cert.len(), 2, "as Envoy 1.40: each CA of the bundle");
        assert_eq!(certs.cert_chain.len(), 1, "the leaf only");
        let leaf = &certs.cert_chain[0];
        assert_eq!(leaf.path, "<inline>");
        assert_eq!(leaf.serial_number, "0da94ba9c02d59f9e89bc5ea833b7a92b4ccef58");
        assert!(leaf.subject_alt_names.is_empty(), "a v1 certificate has no extensions");
        assert_eq!((leaf.valid_from, leaf.expiration_time), (1_796_578_507, 4_950_178_507));
    }

    #[test]
    fn an_x509_v1_certificate_is_served_and_a_key_not_its_own_refused() {
        assert!(listener_with(V1_CERT, V1_KEY).is_ok(), "BoringSSL serves v1 certificates, so Envoy does");
        let Err(e) = listener_with(V1_CERT, OTHER_KEY) else { panic!("a key that is not the certificate's") };
        assert_eq!(e.path, "transport_socket.typed_config.common_tls_context.tls_certificates[0]");
    }
}
