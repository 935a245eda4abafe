//! A TLS 1.2 session's ID as BoringSSL keeps it, which Envoy prints
//! (`%DOWNSTREAM_TLS_SESSION_ID%`, `%UPSTREAM_TLS_SESSION_ID%`). rustls keeps
//! the ID to itself, so the handshake reads it off its records while they are
//! in the clear (up to the ChangeCipherSpec): the ServerHello's session ID,
//! and on a client the session ticket the server sent.
//!
//! BoringSSL's rules, as Envoy 1.40 prints them: a server that will issue a
//! ticket gives the session no ID (the ServerHello's session_ticket
//! extension says so); a client given a ticket takes the ticket's SHA-256 as
//! the ID; otherwise the ID is the ServerHello's. TLS 1.3 has none (Envoy
//! prints `-`): its ServerHello field only echoes the client's. A resumed
//! session keeps the ID of the session it resumes in BoringSSL, which the
//! records do not always show: there Courier's may differ.

/// What a handshake's cleartext records said about the session's ID.
#[derive(Debug, Default)]
pub(super) struct SessionIdReader {
    /// The ServerHello's session ID (bytes, length), once seen.
    hello_id: Option<([u8; 32], u8)>,
    /// The ServerHello carried the session_ticket extension.
    ticket_expected: bool,
    /// SHA-256 of the ticket a NewSessionTicket carried.
    ticket_hash: Option<[u8; 32]>,
    /// A ChangeCipherSpec went by: what follows is encrypted.
    done: bool,
}

const CHANGE_CIPHER_SPEC: u8 = 20;
const HANDSHAKE: u8 = 22;
const SERVER_HELLO: u8 = 2;
const NEW_SESSION_TICKET: u8 = 4;
const SESSION_TICKET_EXTENSION: u16 = 35;

impl SessionIdReader {
    /// Reads the whole records at the start of `tls` (the server's records,
    /// in order; a record cut short is read when it is whole). The same
    /// records may be given again.
    pub(super) fn read(&mut self, mut tls: &[u8]) {
        while !self.done && tls.len() >= 5 {
            let len = usize::from(u16::from_be_bytes([tls[3], tls[4]]));
            let Some(payload) = tls.get(5..5 + len) else { return };
            match tls[0] {
                CHANGE_CIPHER_SPEC => self.done = true,
                HANDSHAKE => self.messages(payload),
                _ => {}
            }
            tls = &tls[5 + len..];
        }
    }

    /// The handshake messages of one record (a message split across records
    /// is not read: a ServerHello or a ticket is far smaller than a record).
    fn messages(&mut self, mut payload: &[u8]) {
        while payload.len() >= 4 {
            let len = usize::from(payload[1]) << 16 | usize::from(payload[2]) << 8 | usize::from(payload[3]);
            let Some(body) = payload.get(4..4 + len) else { return };
            match payload[0] {
                SERVER_HELLO if self.hello_id.is_none() => self.server_hello(body),
                NEW_SESSION_TICKET => self.ticket(body),
                _ => {}
            }
            payload = &payload[4 + len..];
        }
    }

    /// legacy_version (2), random (32), session ID (1 + n), cipher suite (2),
    /// compression (1), extensions (2 + each: type 2, length 2, data).
    fn server_hello(&mut self, body: &[u8]) {
        let Some(&n) = body.get(34) else { return };
        let Some(id) = body.get(35..35 + usize::from(n)).filter(|id| id.len() <= 32) else { return };
        let mut bytes = [0u8; 32];
        bytes[..id.len()].copy_from_slice(id);
        self.hello_id = Some((bytes, n));
        let mut rest = body.get(35 + usize::from(n) + 3 + 2..).unwrap_or_default();
        while rest.len() >= 4 {
            let kind = u16::from_be_bytes([rest[0], rest[1]]);
            let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
            self.ticket_expected |= kind == SESSION_TICKET_EXTENSION;
            rest = rest.get(4 + len..).unwrap_or_default();
        }
    }

    /// ticket_lifetime_hint (4), ticket (2 + n).
    fn ticket(&mut self, body: &[u8]) {
        let Some(len) = body.get(4..6).map(|l| usize::from(u16::from_be_bytes([l[0], l[1]]))) else { return };
        let Some(ticket) = body.get(6..6 + len).filter(|t| !t.is_empty()) else { return };
        let digest = ring::digest::digest(&ring::digest::SHA256, ticket);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(digest.as_ref());
        self.ticket_hash = Some(hash);
    }

    /// A client was given a ticket in this handshake.
    pub(super) fn ticket_received(&self) -> bool {
        self.ticket_hash.is_some()
    }

    /// The session's ID for the `server` or client side, by BoringSSL's rules
    /// (the caller knows the session is TLS 1.2).
    pub(super) fn session_id(&self, server: bool) -> Option<&[u8]> {
        if !server {
            if let Some(hash) = &self.ticket_hash {
                return Some(hash);
            }
        } else if self.ticket_expected {
            return None;
        }
        let (bytes, len) = self.hello_id.as_ref()?;
        Some(&bytes[..usize::from(*len)]).filter(|id| !id.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::SessionIdReader;

    /// A handshake record of the messages `(type, body)`.
    fn record(messages: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut payload = Vec::new();
        for (kind, body) in messages {
            payload.push(*kind);
            payload.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            payload.extend_from_slice(body);
        }
        let mut r = vec![22, 3, 3];
        r.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        r.extend(payload);
        r
    }

    fn server_hello(id: &[u8], ticket_extension: bool) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[7; 32]);
        b.push(id.len() as u8);
        b.extend_from_slice(id);
        b.extend_from_slice(&[0xc0, 0x2b, 0]);
        let ext: Vec<u8> = if ticket_extension { vec![0, 35, 0, 0] } else { vec![0xff, 1, 0, 1, 0] };
        b.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        b.extend(ext);
        b
    }

    #[test]
    fn boringssl_s_session_ids() {
        let id: Vec<u8> = (1..=32).collect();
        // No ticket: the ServerHello's, either side; read when the record is whole.
        let hello = record(&[(2, server_hello(&id, false)), (14, vec![])]);
        let mut r = SessionIdReader::default();
        r.read(&hello[..20]);
        assert_eq!(r.session_id(true), None);
        r.read(&hello);
        r.read(&hello);
        assert_eq!((r.session_id(true), r.session_id(false)), (Some(&id[..]), Some(&id[..])));

        // A ticket: none on the server; the ticket's SHA-256 on the client,
        // sent before the ChangeCipherSpec; nothing read after it.
        let mut r = SessionIdReader::default();
        r.read(&record(&[(2, server_hello(&id, true))]));
        let mut ticket = vec![0, 0, 1, 0, 0, 3];
        ticket.extend_from_slice(b"abc");
        let mut last = record(&[(4, ticket)]);
        last.extend_from_slice(&[20, 3, 3, 0, 1, 1]);
        last.extend(record(&[(4, vec![0, 0, 1, 0, 0, 1, 9])]));
        r.read(&last);
        let sha = ring::digest::digest(&ring::digest::SHA256, b"abc");
        assert_eq!((r.session_id(true), r.session_id(false)), (None, Some(sha.as_ref())));

        // An empty ID, or no ServerHello at all: none.
        let mut r = SessionIdReader::default();
        r.read(&record(&[(2, server_hello(&[], false))]));
        assert_eq!(r.session_id(false), None);
        let mut r = SessionIdReader::default();
        r.read(&[21, 3, 3, 0, 2, 2, 40]);
        assert_eq!(r.session_id(false), None);
    }
}
