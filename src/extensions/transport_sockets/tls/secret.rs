//! Envoy's TLS secrets (`envoy.extensions.transport_sockets.tls.v3.Secret`): the
//! static ones of `static_resources.secrets`, and those an `SdsSecretConfig`
//! with an `sds_config` gets by SDS, from a file or a management server (the
//! server subscribes; an SDS secret is `initialized` by its first answer or
//! initial fetch timeout, which a listener or cluster naming it warms for).
//! A context names them by
//! `tls_certificate_sds_secret_configs` and `validation_context_sds_secret_config`
//! (alone, or as the dynamic half of `combined_validation_context`), a listener
//! its ticket keys by `session_ticket_keys_sds_secret_config`; it is built
//! from its config with each secret put inline (`SecretManager::resolve`), so the
//! code that reads inline certificates reads secrets too.
//!
//! An SDS secret keeps the contexts that read it (`Dependent`): an update is
//! checked on its own (PEM, key against certificate), then every context is
//! built again with it and swapped in (`network::tls::ContextCell`), all or
//! none; the next handshakes see it, open sessions keep what they have. The
//! files the secret names are read as it loads, and kept inline, as Envoy does.
//! Everything here runs on the main thread; the locks only make the manager
//! `Sync` for the contexts that hold it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::DataSource;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::downstream_tls_context::SessionTicketKeysType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::secret::Type as SecretType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig, Secret, TlsCertificate,
};

use super::tickets::{TicketKeys, DEFAULT_LIFETIME};
use super::{certificate, certified_key, child, data, peer_checks_and_crls, provider_for, trusted_ca};
use crate::config::config_source::{Source, SubscriptionSource};
use crate::config::{ConfigError, FieldPath};

pub const SECRET_TYPE: &str = "envoy.extensions.transport_sockets.tls.v3.Secret";

/// What a secret holds for the contexts that name it (Envoy keeps one
/// provider per type, so a name looked up as the other type is unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    Certificate,
    Validation,
    TicketKeys,
}

impl SecretKind {
    /// Envoy's name of the SDS API of this kind, in its error messages.
    fn api(self) -> &'static str {
        match self {
            SecretKind::Certificate => "TlsCertificateSdsApi",
            SecretKind::Validation => "CertificateValidationContextSdsApi",
            SecretKind::TicketKeys => "TlsSessionTicketKeysSdsApi",
        }
    }
}

/// The server's secrets: the static ones, checked at start-up, and each SDS
/// secret a context has named.
#[derive(Default)]
pub struct SecretManager {
    statics: Vec<Secret>,
    /// The node has an `id` and a `cluster`: Envoy requires both for SDS.
    node_complete: bool,
    dynamic: Mutex<Vec<Arc<SdsSecret>>>,
    /// The SDS secrets named since `take_named`, new or shared: what a
    /// listener or cluster being built depends on (it warms until they load).
    named: Mutex<Vec<Arc<SdsSecret>>>,
}

impl std::fmt::Debug for SecretManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretManager").field("statics", &self.statics.len()).finish()
    }
}

impl SecretManager {
    /// `static_resources.secrets`, their names and kinds checked. Their
    /// contents (files, PEM) are read only by a context that names one, as
    /// Envoy's are: an unused secret naming a missing file is no error.
    pub fn from_proto(secrets: &[Secret], node_complete: bool) -> Result<SecretManager, ConfigError> {
        for (i, secret) in secrets.iter().enumerate() {
            let path = FieldPath::starting_at(&format!("static_resources.secrets[{i}]"));
            let kind = kind_of(secret, &path)?;
            if secrets[..i].iter().any(|s| s.name == secret.name && kind_of(s, &path).ok() == Some(kind)) {
                let ty = match kind {
                    SecretKind::Certificate => "TlsCertificate",
                    SecretKind::Validation => "CertificateValidationContext",
                    SecretKind::TicketKeys => "TlsSessionTicketKeys",
                };
                return Err(path.field_error("name", format!("Duplicate static {ty} secret name {}", secret.name)));
            }
        }
        Ok(SecretManager {
            statics: secrets.to_vec(),
            node_complete,
            dynamic: Mutex::default(),
            named: Mutex::default(),
        })
    }

    /// `static_resources.secrets` as configured.
    pub fn statics(&self) -> &[Secret] {
        &self.statics
    }

    /// Every SDS secret a context has named, in the order they were first named.
    pub fn dynamic(&self) -> Vec<Arc<SdsSecret>> {
        self.dynamic.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The SDS secrets nobody subscribed to yet (the server starts a
    /// subscription for each) of the sources `wanted` takes; each is returned once.
    pub fn take_unstarted(&self, wanted: impl Fn(&SdsSecret) -> bool) -> Vec<Arc<SdsSecret>> {
        let all = self.dynamic();
        all.into_iter().filter(|s| wanted(s) && !s.started.swap(true, Ordering::Relaxed)).collect()
    }

    /// Forgets an SDS secret no context reads any more (its subscription
    /// ended): a context naming it later subscribes anew.
    pub fn forget(&self, secret: &Arc<SdsSecret>) {
        self.dynamic.lock().unwrap_or_else(|e| e.into_inner()).retain(|s| !Arc::ptr_eq(s, secret));
    }

    /// The SDS secrets named since the last call.
    pub fn take_named(&self) -> Vec<Arc<SdsSecret>> {
        std::mem::take(&mut self.named.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// `common` (at `path`) with every secret it names put inline: the SDS
    /// configs replaced by `tls_certificates` entries after its own and by a
    /// `validation_context`. `None` while an SDS secret has not loaded yet.
    pub fn resolve(
        &self,
        common: &CommonTlsContext,
        path: &FieldPath,
    ) -> Result<Option<CommonTlsContext>, ConfigError> {
        // Every secret is looked up, loaded or not, so that each SDS secret
        // the context names is registered (and its file read) from the start.
        let mut ready = true;
        let mut out = common.clone();
        out.tls_certificate_sds_secret_configs.clear();
        for (i, config) in common.tls_certificate_sds_secret_configs.iter().enumerate() {
            let mut p = child(path, "tls_certificate_sds_secret_configs");
            p.push_index(i);
            match self.lookup(config, SecretKind::Certificate, &p)? {
                Some(secret) => out.tls_certificates.extend(certificate_of(secret)),
                None => ready = false,
            }
        }
        let validation = match &common.validation_context_type {
            Some(ValidationContextType::ValidationContextSdsSecretConfig(config)) => {
                let p = child(path, "validation_context_sds_secret_config");
                self.lookup(config, SecretKind::Validation, &p)?.map(|s| validation_context_of(&s))
            }
            Some(ValidationContextType::CombinedValidationContext(combined)) => {
                let mut p = child(path, "combined_validation_context");
                p.push_field("validation_context_sds_secret_config");
                let config = combined.validation_context_sds_secret_config.clone().unwrap_or_default();
                let default = combined.default_validation_context.clone().unwrap_or_default();
                self.lookup(&config, SecretKind::Validation, &p)?.map(|s| merged(default, validation_context_of(&s)))
            }
            _ => return Ok(ready.then_some(out)),
        };
        let Some(validation) = validation.filter(|_| ready) else { return Ok(None) };
        out.validation_context_type = Some(ValidationContextType::ValidationContext(validation));
        Ok(Some(out))
    }

    /// A listener's `session_ticket_keys_sds_secret_config` put inline as
    /// `session_ticket_keys`; `None` while its SDS secret has not loaded.
    pub(super) fn resolve_ticket_keys(
        &self,
        proto: &DownstreamTlsContext,
        path: &FieldPath,
    ) -> Result<Option<DownstreamTlsContext>, ConfigError> {
        let Some(SessionTicketKeysType::SessionTicketKeysSdsSecretConfig(config)) = &proto.session_ticket_keys_type
        else {
            return Ok(Some(proto.clone()));
        };
        let p = child(path, "session_ticket_keys_sds_secret_config");
        let Some(secret) = self.lookup(config, SecretKind::TicketKeys, &p)? else { return Ok(None) };
        let Some(SecretType::SessionTicketKeys(keys)) = secret.r#type else { return Ok(None) };
        let session_ticket_keys_type = Some(SessionTicketKeysType::SessionTicketKeys(keys));
        Ok(Some(DownstreamTlsContext { session_ticket_keys_type, ..proto.clone() }))
    }

    /// The SDS secrets `common` (and a listener's `ticket_keys`) names, for the
    /// context to be rebuilt when one changes.
    pub(super) fn subscribe(
        &self,
        common: &CommonTlsContext,
        ticket_keys: Option<&SdsSecretConfig>,
        dependent: Arc<dyn Dependent>,
    ) {
        let mut named: Vec<(&SdsSecretConfig, SecretKind)> =
            common.tls_certificate_sds_secret_configs.iter().map(|c| (c, SecretKind::Certificate)).collect();
        named.extend(ticket_keys.map(|c| (c, SecretKind::TicketKeys)));
        match &common.validation_context_type {
            Some(ValidationContextType::ValidationContextSdsSecretConfig(c)) => named.push((c, SecretKind::Validation)),
            Some(ValidationContextType::CombinedValidationContext(c)) => {
                named.extend(c.validation_context_sds_secret_config.iter().map(|c| (c, SecretKind::Validation)))
            }
            _ => {}
        }
        let dynamic = self.dynamic.lock().unwrap_or_else(|e| e.into_inner());
        for (config, kind) in named {
            // `resolve` has read every source already: one that fails is not there.
            let Some(source) =
                config.sds_config.as_ref().and_then(|s| SubscriptionSource::from_proto(s, &FieldPath::new()).ok())
            else {
                continue;
            };
            let found = dynamic.iter().find(|s| s.name == config.name && s.kind == kind && s.source == source);
            if let Some(secret) = found {
                secret.dependents.lock().unwrap_or_else(|e| e.into_inner()).push(dependent.clone());
            }
        }
    }

    /// The secret `config` names: static without an `sds_config`, else the
    /// SDS secret's current value (registered on first use).
    fn lookup(
        &self,
        config: &SdsSecretConfig,
        kind: SecretKind,
        path: &FieldPath,
    ) -> Result<Option<Secret>, ConfigError> {
        let Some(source) = &config.sds_config else {
            let found = self.statics.iter().find(|s| s.name == config.name && kind_of(s, path).ok() == Some(kind));
            return match found {
                Some(s) => Ok(Some(s.clone())),
                // Envoy's ticket-key provider says so in its own words.
                None if kind == SecretKind::TicketKeys => {
                    Err(path.field_error("name", format!("Unknown tls session ticket keys: {}", config.name)))
                }
                None => Err(path.field_error("name", format!("Unknown static secret: {}", config.name))),
            };
        };
        if !self.node_complete {
            return Err(ConfigError::new(
                "node",
                format!(
                    "{}: node 'id' and 'cluster' are required. Set it either in 'node' config or via \
                     --service-node and --service-cluster options.",
                    kind.api()
                ),
            ));
        }
        let source_path = child(path, "sds_config");
        let source = SubscriptionSource::from_proto(source, &source_path)?;
        // Envoy 1.40 refuses to start on an SDS file that is not there.
        if let Source::Path(file) = &source.source {
            file.check_exists(&source_path)?;
        }
        let mut dynamic = self.dynamic.lock().unwrap_or_else(|e| e.into_inner());
        let existing = dynamic.iter().find(|s| s.name == config.name && s.kind == kind && s.source == source);
        let secret = match existing {
            Some(s) => s.clone(),
            None => {
                let s = Arc::new(SdsSecret {
                    name: config.name.clone(),
                    source,
                    kind,
                    started: AtomicBool::new(false),
                    created: SystemTime::now(),
                    initialized: AtomicBool::new(false),
                    ready: tokio::sync::Notify::new(),
                    current: Mutex::default(),
                    rejected: Mutex::default(),
                    dependents: Mutex::default(),
                });
                dynamic.push(s.clone());
                s
            }
        };
        drop(dynamic);
        self.named.lock().unwrap_or_else(|e| e.into_inner()).push(secret.clone());
        Ok(secret.current().map(|l| l.secret.clone()))
    }
}

/// A context built from secrets, built again when an SDS secret it reads
/// changes. It holds its context weakly: a removed listener or cluster frees it.
pub(super) trait Dependent: Send + Sync {
    /// Builds the context from the secrets as they are now and puts it in.
    fn rebuild(&self, secrets: &SecretManager) -> Result<(), ConfigError>;

    /// Whether the context is still used.
    fn alive(&self) -> bool;
}

/// One SDS secret: its source, its current value and the contexts that read it.
pub struct SdsSecret {
    pub name: String,
    pub source: SubscriptionSource,
    kind: SecretKind,
    started: AtomicBool,
    /// When it was first named (a warming secret's `last_updated`).
    pub created: SystemTime,
    /// Its first update (accepted or not) or initial fetch timeout came.
    initialized: AtomicBool,
    ready: tokio::sync::Notify,
    current: Mutex<Option<Arc<LoadedSecret>>>,
    /// The last update, if the contexts refused it: Envoy stores a secret
    /// before its contexts are built with it, so `/config_dump` shows it.
    rejected: Mutex<Option<Arc<LoadedSecret>>>,
    dependents: Mutex<Vec<Arc<dyn Dependent>>>,
}

/// An SDS secret as loaded: its files read in.
#[derive(Debug, Clone)]
pub struct LoadedSecret {
    pub secret: Secret,
    /// As the SDS file has it: the files it names, read again when one is
    /// moved into place (`reload_files`).
    pub configured: Secret,
    pub version_info: String,
    pub last_updated: SystemTime,
}

impl SdsSecret {
    pub fn current(&self) -> Option<Arc<LoadedSecret>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What `/config_dump` shows: the last update, even one the contexts
    /// refused (as Envoy's), else the current value.
    pub fn shown(&self) -> Option<Arc<LoadedSecret>> {
        let rejected = self.rejected.lock().unwrap_or_else(|e| e.into_inner()).clone();
        rejected.or_else(|| self.current())
    }

    /// Whether a context still reads it.
    pub fn in_use(&self) -> bool {
        let mut list = self.dependents.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|d| d.alive());
        !list.is_empty()
    }

    pub fn is_initialized(&self) -> bool {
        self.initialized.load(Ordering::Relaxed)
    }

    /// Its first update (accepted or not) or initial fetch timeout came.
    pub fn initialize(&self) {
        if !self.initialized.swap(true, Ordering::Relaxed) {
            self.ready.notify_waiters();
        }
    }

    /// Waits until it is initialized.
    pub async fn initialized(&self) {
        let notified = self.ready.notified();
        if !self.is_initialized() {
            notified.await;
        }
    }

    /// Checks `secret` (read from `resources[0]` of a file at `version_info`),
    /// reads its files in, and builds every context that reads it again: all of
    /// them take it, or none does and the old value stays. Its files are
    /// compared too, so a file changed under an unchanged SDS file applies.
    pub fn update(
        &self,
        secrets: &SecretManager,
        mut secret: Secret,
        version_info: &str,
        path: &FieldPath,
    ) -> Result<(), ConfigError> {
        match (self.kind, &secret.r#type) {
            (SecretKind::Certificate, Some(SecretType::TlsCertificate(_)))
            | (SecretKind::Validation, Some(SecretType::ValidationContext(_)))
            | (SecretKind::TicketKeys, Some(SecretType::SessionTicketKeys(_))) => {}
            _ => {
                let want = match self.kind {
                    SecretKind::Certificate => "tls_certificate",
                    SecretKind::Validation => "validation_context",
                    SecretKind::TicketKeys => "session_ticket_keys",
                };
                return Err(path.error(format!("secret {} must hold a {want}", self.name)));
            }
        }
        let configured = secret.clone();
        read_files_in(&mut secret, path)?;
        if let Err(e) = check(&secret, path) {
            // Envoy keeps a secret whose contexts fail to build with it.
            let shown = LoadedSecret {
                secret,
                configured,
                version_info: version_info.to_string(),
                last_updated: SystemTime::now(),
            };
            *self.rejected.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(shown));
            return Err(e);
        }
        self.rejected.lock().unwrap_or_else(|e| e.into_inner()).take();
        // As Envoy: the same secret again (a new version of the same content)
        // rebuilds nothing.
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(same) = current.as_mut().filter(|c| c.secret == secret) {
            let same = Arc::make_mut(same);
            same.version_info = version_info.to_string();
            same.configured = configured;
            return Ok(());
        }
        drop(current);
        let loaded = LoadedSecret {
            secret,
            configured,
            version_info: version_info.to_string(),
            last_updated: SystemTime::now(),
        };
        let old = self.current.lock().unwrap_or_else(|e| e.into_inner()).replace(Arc::new(loaded));
        if let Err(e) = self.rebuild_all(secrets) {
            *self.current.lock().unwrap_or_else(|e| e.into_inner()) = old;
            // Back to what each context had: it was built from these before.
            if let Err(again) = self.rebuild_all(secrets) {
                tracing::error!("sds: secret {}: cannot restore the previous contexts: {again}", self.name);
            }
            return Err(e);
        }
        Ok(())
    }

    /// The files the current value names (Envoy watches their directories).
    pub fn named_files(&self) -> Vec<std::path::PathBuf> {
        let Some(current) = self.current() else { return Vec::new() };
        let sources: Vec<&DataSource> = match &current.configured.r#type {
            Some(SecretType::TlsCertificate(c)) => {
                [&c.certificate_chain, &c.private_key, &c.ocsp_staple].into_iter().flatten().collect()
            }
            Some(SecretType::ValidationContext(vc)) => [&vc.trusted_ca, &vc.crl].into_iter().flatten().collect(),
            Some(SecretType::SessionTicketKeys(k)) => k.keys.iter().collect(),
            _ => Vec::new(),
        };
        let named = sources.into_iter().filter_map(|s| match &s.specifier {
            Some(Specifier::Filename(f)) => Some(std::path::PathBuf::from(f)),
            _ => None,
        });
        named.collect()
    }

    /// Reads the files of the current value again (one was moved into place)
    /// and applies them as an update of the same version would.
    pub fn reload_files(&self, secrets: &SecretManager) -> Result<(), ConfigError> {
        let Some(current) = self.current() else { return Ok(()) };
        self.update(secrets, current.configured.clone(), &current.version_info, &FieldPath::new())
    }

    fn rebuild_all(&self, secrets: &SecretManager) -> Result<(), ConfigError> {
        // A copy: a rebuild looks secrets up, and no lock is held across it.
        let dependents = {
            let mut list = self.dependents.lock().unwrap_or_else(|e| e.into_inner());
            list.retain(|d| d.alive());
            list.clone()
        };
        for dependent in dependents {
            dependent.rebuild(secrets)?;
        }
        Ok(())
    }
}

fn validation_context_of(secret: &Secret) -> CertificateValidationContext {
    match &secret.r#type {
        Some(SecretType::ValidationContext(vc)) => vc.clone(),
        _ => CertificateValidationContext::default(),
    }
}

fn certificate_of(secret: Secret) -> Option<TlsCertificate> {
    match secret.r#type {
        Some(SecretType::TlsCertificate(c)) => Some(c),
        _ => None,
    }
}

fn kind_of(secret: &Secret, path: &FieldPath) -> Result<SecretKind, ConfigError> {
    match &secret.r#type {
        Some(SecretType::TlsCertificate(_)) => Ok(SecretKind::Certificate),
        Some(SecretType::ValidationContext(_)) => Ok(SecretKind::Validation),
        Some(SecretType::SessionTicketKeys(_)) => Ok(SecretKind::TicketKeys),
        _ => Err(path.error(format!("secret {} needs a tls_certificate or a validation_context", secret.name))),
    }
}

/// A secret read as a context reads it: the certificate's PEM and key, the
/// key against the certificate; the CA's PEM and the subject-name matchers.
fn check(secret: &Secret, path: &FieldPath) -> Result<(), ConfigError> {
    match &secret.r#type {
        Some(SecretType::TlsCertificate(cert)) => {
            let cert_path = child(path, "tls_certificate");
            let provider = provider_for(&CommonTlsContext::default(), path)?;
            let (chain, key) = certificate(cert, &cert_path)?;
            certified_key(chain, key, &provider)
                .map(drop)
                .map_err(|e| cert_path.error(format!("invalid certificate or key: {e}")))
        }
        Some(SecretType::ValidationContext(vc)) => {
            // The checks of a context's `validation_context`, at the secret's path.
            let common = CommonTlsContext {
                validation_context_type: Some(ValidationContextType::ValidationContext(vc.clone())),
                ..Default::default()
            };
            peer_checks_and_crls(&common, path)?;
            trusted_ca(&common, path).map(drop)
        }
        Some(SecretType::SessionTicketKeys(keys)) => {
            let p = child(path, "session_ticket_keys");
            TicketKeys::from_sources(&keys.keys, DEFAULT_LIFETIME, &p).map(drop)
        }
        _ => Err(path.error(format!("secret {} needs a tls_certificate or a validation_context", secret.name))),
    }
}

/// Envoy reads an SDS secret's files as it loads it and keeps their bytes.
fn read_files_in(secret: &mut Secret, path: &FieldPath) -> Result<(), ConfigError> {
    let inline = |source: &mut Option<DataSource>, path: FieldPath| -> Result<(), ConfigError> {
        if let Some(s) = source.as_mut().filter(|s| matches!(s.specifier, Some(Specifier::Filename(_)))) {
            s.specifier = Some(Specifier::InlineBytes(data(Some(s), &path)?));
        }
        Ok(())
    };
    match &mut secret.r#type {
        Some(SecretType::TlsCertificate(cert)) => {
            let p = child(path, "tls_certificate");
            inline(&mut cert.certificate_chain, child(&p, "certificate_chain"))?;
            inline(&mut cert.private_key, child(&p, "private_key"))?;
            inline(&mut cert.ocsp_staple, child(&p, "ocsp_staple"))
        }
        Some(SecretType::ValidationContext(vc)) => {
            let p = child(path, "validation_context");
            inline(&mut vc.trusted_ca, child(&p, "trusted_ca"))?;
            inline(&mut vc.crl, child(&p, "crl"))
        }
        Some(SecretType::SessionTicketKeys(keys)) => {
            let p = child(path, "session_ticket_keys");
            for (i, key) in keys.keys.iter_mut().enumerate() {
                let mut source = Some(std::mem::take(key));
                let mut kp = child(&p, "keys");
                kp.push_index(i);
                inline(&mut source, kp)?;
                *key = source.unwrap_or_default();
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `combined_validation_context`: the default context with the SDS one merged
/// over it, as protobuf's `MergeFrom` (Envoy's): a set message field replaces,
/// repeated fields append.
fn merged(mut base: CertificateValidationContext, over: CertificateValidationContext) -> CertificateValidationContext {
    if over.trusted_ca.is_some() {
        base.trusted_ca = over.trusted_ca;
    }
    if over.crl.is_some() {
        base.crl = over.crl;
    }
    base.only_verify_leaf_cert_crl |= over.only_verify_leaf_cert_crl;
    base.match_typed_subject_alt_names.extend(over.match_typed_subject_alt_names);
    #[allow(deprecated)]
    base.match_subject_alt_names.extend(over.match_subject_alt_names);
    base
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::SubjectAltNameMatcher;

    use super::*;

    fn inline(text: &str) -> Option<DataSource> {
        Some(DataSource { specifier: Some(Specifier::InlineString(text.to_string())), ..Default::default() })
    }

    #[test]
    fn a_combined_context_takes_the_secret_s_ca_and_both_lists_of_names() {
        // Told apart by `oid` alone: the merge does not read them.
        let san = |n: &str| SubjectAltNameMatcher { san_type: 1, oid: n.to_string(), ..Default::default() };
        let base = CertificateValidationContext {
            trusted_ca: inline("default CA"),
            match_typed_subject_alt_names: vec![san("a")],
            ..Default::default()
        };
        let over = CertificateValidationContext {
            trusted_ca: inline("secret CA"),
            match_typed_subject_alt_names: vec![san("b")],
            ..Default::default()
        };
        let out = merged(base.clone(), over);
        assert_eq!(out.trusted_ca, inline("secret CA"));
        assert_eq!(out.match_typed_subject_alt_names, vec![san("a"), san("b")]);
        let kept = merged(base.clone(), CertificateValidationContext::default());
        assert_eq!(kept.trusted_ca, base.trusted_ca, "an unset field leaves the default's");
    }

    #[test]
    fn a_static_secret_is_found_by_its_type_as_well_as_its_name() {
        let ca = Secret {
            name: "ca".into(),
            r#type: Some(SecretType::ValidationContext(CertificateValidationContext::default())),
        };
        let manager = SecretManager { statics: vec![ca], ..Default::default() };
        let common = CommonTlsContext {
            tls_certificate_sds_secret_configs: vec![SdsSecretConfig { name: "ca".into(), sds_config: None }],
            ..Default::default()
        };
        let Err(e) = manager.resolve(&common, &FieldPath::starting_at("common_tls_context")) else {
            panic!("a validation context is no certificate")
        };
        assert_eq!(e.path, "common_tls_context.tls_certificate_sds_secret_configs[0].name");
        assert_eq!(e.reason, "Unknown static secret: ca");
    }
}
