//! Stateless session resumption under a listener's own ticket keys
//! (`DownstreamTlsContext.session_ticket_keys`), so that a ticket one Courier
//! process issued resumes on another that shares the keys, as Envoy's do. Each
//! key is Envoy's 80 bytes: a 16-byte name, a 32-byte HMAC secret and a 32-byte
//! AES key; the first key seals new tickets, every key opens them (the name
//! picks the key), so keys can be rotated by adding the new one first. A ticket
//! is Courier's own (only Courier reads it): the key's name, when it was issued,
//! a nonce, and the session sealed with AES-256-GCM over the first two. Without
//! configured keys a listener gets one random key, so `session_timeout` holds
//! either way: a ticket older than it does not open.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::config::core::v3::DataSource;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use super::{data, indexed};
use crate::config::{ConfigError, FieldPath};

/// Envoy's (BoringSSL's) ticket key: name, HMAC secret, AES key.
const KEY_LEN: usize = 80;
const NAME_LEN: usize = 16;
/// BoringSSL's `SSL_DEFAULT_SESSION_TIMEOUT`, which `session_timeout` replaces.
pub(super) const DEFAULT_LIFETIME: u32 = 7200;

/// A listener's ticket keys, the first one sealing.
pub(super) struct TicketKeys {
    keys: Vec<TicketKey>,
    /// Seconds a ticket opens for, and the lifetime announced with it.
    lifetime: u32,
}

struct TicketKey {
    name: [u8; NAME_LEN],
    aead: LessSafeKey,
}

impl std::fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key material stays out of logs.
        f.debug_struct("TicketKeys").field("keys", &self.keys.len()).field("lifetime", &self.lifetime).finish()
    }
}

impl TicketKeys {
    /// `session_ticket_keys.keys` (at `path`), each exactly 80 bytes.
    pub(super) fn from_sources(sources: &[DataSource], lifetime: u32, path: &FieldPath) -> Result<Self, ConfigError> {
        let mut keys = Vec::with_capacity(sources.len());
        for (i, source) in sources.iter().enumerate() {
            let p = indexed(path, "keys", i);
            let bytes = data(Some(source), &p)?;
            keys.push(TicketKey::new(&bytes).ok_or_else(|| {
                p.error(format!(
                    "Incorrect TLS session ticket key length. Length {}, expected length {KEY_LEN}.",
                    bytes.len()
                ))
            })?);
        }
        Ok(TicketKeys { keys, lifetime })
    }

    /// One random key of the listener's own, as BoringSSL makes without configured keys.
    pub(super) fn random(lifetime: u32, path: &FieldPath) -> Result<Self, ConfigError> {
        let rng = SystemRandom::new();
        let mut bytes = [0u8; KEY_LEN];
        rng.fill(&mut bytes).map_err(|_| path.error("cannot make a session ticket key"))?;
        let key = TicketKey::new(&bytes).ok_or_else(|| path.error("cannot make a session ticket key"))?;
        Ok(TicketKeys { keys: vec![key], lifetime })
    }

    fn seal(&self, plain: &[u8], now: u64) -> Option<Vec<u8>> {
        let key = self.keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        super::random::fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(NAME_LEN + 8 + NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(&key.name);
        out.extend_from_slice(&now.to_be_bytes());
        out.extend_from_slice(&nonce);
        let header = out.len();
        out.extend_from_slice(plain);
        let (aad, body) = out.split_at_mut(header);
        let tag = key
            .aead
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&aad[..NAME_LEN + 8]), body)
            .ok()?;
        out.extend_from_slice(tag.as_ref());
        Some(out)
    }

    /// The session in `ticket`, if a key of ours sealed it and it has not
    /// expired (BoringSSL: valid while issued + timeout > now).
    fn open(&self, ticket: &[u8], now: u64) -> Option<Vec<u8>> {
        let (name, rest) = ticket.split_at_checked(NAME_LEN)?;
        let (issued, rest) = rest.split_at_checked(8)?;
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN)?;
        let key = self.keys.iter().find(|k| k.name == name)?;
        let issued = u64::from_be_bytes(issued.try_into().ok()?);
        if issued.saturating_add(u64::from(self.lifetime)) <= now {
            return None;
        }
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = sealed.to_vec();
        let aad = Aad::from(&ticket[..NAME_LEN + 8]);
        let plain_len = key.aead.open_in_place(nonce, aad, &mut body).ok()?.len();
        body.truncate(plain_len);
        Some(body)
    }
}

impl TicketKey {
    /// Envoy's layout: name, HMAC secret (unused: GCM authenticates), AES key.
    fn new(bytes: &[u8]) -> Option<TicketKey> {
        if bytes.len() != KEY_LEN {
            return None;
        }
        let name = bytes[..NAME_LEN].try_into().ok()?;
        let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &bytes[48..KEY_LEN]).ok()?);
        Some(TicketKey { name, aead })
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs()
}

impl rustls::server::ProducesTickets for TicketKeys {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.seal(plain, unix_now())
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.open(cipher, unix_now())
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;

    use super::*;

    fn keys(list: &[[u8; KEY_LEN]], lifetime: u32) -> TicketKeys {
        let sources: Vec<DataSource> = list
            .iter()
            .map(|k| DataSource { specifier: Some(Specifier::InlineBytes(k.to_vec())), ..Default::default() })
            .collect();
        TicketKeys::from_sources(&sources, lifetime, &FieldPath::starting_at("session_ticket_keys")).expect("keys")
    }

    #[test]
    fn the_first_key_seals_and_every_key_opens_until_the_session_timeout() {
        let (k1, k2) = ([1u8; KEY_LEN], [2u8; KEY_LEN]);
        let old = keys(&[k1], 300);
        let ticket = old.seal(b"session", 1000).expect("sealed");
        assert_eq!(keys(&[k2, k1], 300).open(&ticket, 1000).as_deref(), Some(&b"session"[..]), "rotation");
        assert_eq!(keys(&[k2], 300).open(&ticket, 1000), None, "another key");
        // session_timeout: 300s, as BoringSSL: open while issued + 300 > now.
        assert!(old.open(&ticket, 1299).is_some());
        assert_eq!(old.open(&ticket, 1300), None);
        let mut forged = ticket.clone();
        forged[NAME_LEN + 7] ^= 1; // a later issue time
        assert_eq!(old.open(&forged, 1000), None, "the issue time is authenticated");
        assert_eq!(old.open(&ticket[..20], 1000), None);
    }

    #[test]
    fn a_key_of_another_length_is_refused_as_envoy_refuses_it() {
        let source = DataSource { specifier: Some(Specifier::InlineBytes(vec![0; 79])), ..Default::default() };
        let path = FieldPath::starting_at("session_ticket_keys");
        let e = TicketKeys::from_sources(&[source], 300, &path).expect_err("79 bytes");
        assert_eq!(e.path, "session_ticket_keys.keys[0]");
        assert!(e.to_string().contains("Incorrect TLS session ticket key length. Length 79, expected length 80."));
    }
}
