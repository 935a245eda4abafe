//! A TLS session over TCP, driven through rustls's unbuffered API: the session
//! owns no TLS buffer while it is idle.
//!
//! rustls's buffered connection keeps a 4 KiB read buffer per connection for
//! its whole life, which was 40 % of an idle TLS connection's memory. Here TLS
//! bytes are read into, and encrypted into, a per-worker scratch buffer (one
//! poll uses it at a time, so a thread-local is enough); a connection keeps
//! bytes of its own only for what a poll could not finish: a record cut short
//! by a read, decrypted bytes the reader had no room for, or ciphertext the
//! socket did not take. The handshake, which waits in the middle, works in the
//! session's own buffers and frees them when it ends.
//!
//! A write's slices are encrypted as one record where they fit (an HTTP/1
//! response's head and body go out as one record, not two), and `poll_write`
//! takes a whole slice once the previous ciphertext is on the socket, so a
//! session holds at most one write's worth of unsent ciphertext.
//!
//! A server's TLS 1.3 session tickets, which rustls makes once the client's
//! Finished is in, wait for the session's first write when the client's first
//! request came with that Finished: they go out in one system call with the
//! answer to it rather than in one of their own (BoringSSL sends them even
//! earlier, with its first flight). A client never waits on a ticket.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::CommonState;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::tls_session_id::SessionIdReader;
use super::transport::ReadReady;
use crate::stats::Counter;

/// The most TLS bytes one read takes, and the most plaintext one record-run of
/// a write encrypts (four full records).
const SCRATCH: usize = 64 * 1024;
/// Plaintext slices of a vectored write are joined into one record up to this.
const RECORD: usize = 16 * 1024;
/// TLS bytes a handshake may hold unprocessed: rustls's 64 KiB handshake
/// message limit plus its records' headers.
const MAX_HANDSHAKE_BUFFER: usize = 0xffff + 2 * 1024;

thread_local! {
    /// The signature scheme a verifier checked in the handshake step running on
    /// this worker (`note_peer_signature`), taken by the session after the step.
    static PEER_SIGNATURE: Cell<Option<rustls::SignatureScheme>> = const { Cell::new(None) };
    /// Ciphertext read or written by the poll running on this worker.
    static TLS_SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// A vectored write's slices, joined.
    static PLAINTEXT_SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Called by a certificate verifier as it checks the peer's handshake
/// signature: the session whose handshake step is running on this thread
/// records the scheme (Envoy's `ssl.sigalgs.*`). rustls calls verifiers
/// within the step, so the note cannot be another session's.
pub fn note_peer_signature(scheme: rustls::SignatureScheme) {
    PEER_SIGNATURE.with(|s| s.set(Some(scheme)));
}

/// Runs `f` with this worker's scratch buffer of at least `len` bytes (taken
/// out of the thread-local for the call, so a nested use would get its own).
fn with_scratch<R>(
    cell: &'static std::thread::LocalKey<Cell<Vec<u8>>>,
    len: usize,
    f: impl FnOnce(&mut Vec<u8>) -> R,
) -> R {
    let mut buf = cell.take();
    if buf.len() < len {
        buf.resize(len, 0);
    }
    let r = f(&mut buf);
    cell.set(buf);
    r
}

/// A rustls connection either side, as the unbuffered API drives it.
pub enum Connection {
    Server(UnbufferedServerConnection),
    Client(UnbufferedClientConnection),
}

impl Connection {
    pub fn state(&self) -> &CommonState {
        match self {
            Connection::Server(c) => c,
            Connection::Client(c) => c,
        }
    }

    /// One step of rustls's state machine over `incoming` (see `step`).
    fn step(&mut self, incoming: &mut [u8], io: &mut StepIo<'_, '_>) -> Result<(usize, Step), rustls::Error> {
        match self {
            Connection::Server(c) => step::<ServerConnectionData>(c.process_tls_records(incoming), io),
            Connection::Client(c) => step::<ClientConnectionData>(c.process_tls_records(incoming), io),
        }
    }
}

/// Where a step puts what it produces.
struct StepIo<'a, 'b> {
    /// Ciphertext to send, filled from `out_len`.
    out: &'a mut Vec<u8>,
    out_len: usize,
    /// Decrypted application data goes to the reader's buffer while it has
    /// room, then to `plaintext` (appended).
    direct: Option<&'a mut ReadBuf<'b>>,
    plaintext: &'a mut Vec<u8>,
    /// Application data to encrypt if the session may send it now.
    encrypt: Option<&'a [u8]>,
    /// Queue a close_notify if the session may send it now.
    close_notify: bool,
}

impl StepIo<'_, '_> {
    /// Room for `n` more bytes after `out_len`.
    fn reserve(&mut self, n: usize) {
        if self.out.len() < self.out_len + n {
            self.out.resize(self.out_len + n, 0);
        }
    }
}

/// What a step of the state machine came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Something was done (a record decrypted, a message encoded): step again.
    Again,
    /// The encoded handshake messages are to be sent now.
    Transmit,
    /// The handshake needs bytes from the peer.
    NeedInput,
    /// The session is established and may send; `encrypt` / `close_notify`
    /// were done if asked.
    Established,
    /// The peer sent close_notify (once).
    PeerClosed,
    /// Both sides sent close_notify.
    Closed,
}

/// Handles one status of `process_tls_records`: `(bytes to discard, step)`.
fn step<D>(status: UnbufferedStatus<'_, '_, D>, io: &mut StepIo<'_, '_>) -> Result<(usize, Step), rustls::Error> {
    let discard = status.discard;
    let step = match status.state? {
        ConnectionState::ReadTraffic(mut traffic) => {
            while let Some(record) = traffic.next_record() {
                let mut payload = record?.payload;
                if let Some(direct) = io.direct.as_mut().filter(|_| io.plaintext.is_empty()) {
                    let n = payload.len().min(direct.remaining());
                    direct.put_slice(&payload[..n]);
                    payload = &payload[n..];
                }
                io.plaintext.extend_from_slice(payload);
            }
            Step::Again
        }
        ConnectionState::EncodeTlsData(mut data) => {
            loop {
                match data.encode(&mut io.out[io.out_len..]) {
                    Ok(n) => {
                        io.out_len += n;
                        break;
                    }
                    Err(EncodeError::InsufficientSize(e)) => io.reserve(e.required_size),
                    Err(EncodeError::AlreadyEncoded) => break,
                }
            }
            Step::Again
        }
        ConnectionState::TransmitTlsData(transmit) => {
            // The caller sends `out` before reading again.
            transmit.done();
            Step::Transmit
        }
        ConnectionState::BlockedHandshake => Step::NeedInput,
        ConnectionState::WriteTraffic(mut traffic) => {
            if let Some(data) = io.encrypt.take() {
                // Each record adds a header, a tag and a content type.
                io.reserve(data.len() + (data.len() / RECORD + 1) * 64);
                loop {
                    match traffic.encrypt(data, &mut io.out[io.out_len..]) {
                        Ok(n) => {
                            io.out_len += n;
                            break;
                        }
                        Err(EncryptError::InsufficientSize(e)) => io.reserve(e.required_size),
                        Err(EncryptError::EncryptExhausted) => return Err(rustls::Error::EncryptError),
                    }
                }
            }
            if std::mem::take(&mut io.close_notify) {
                io.reserve(64);
                match traffic.queue_close_notify(&mut io.out[io.out_len..]) {
                    Ok(n) => io.out_len += n,
                    Err(_) => return Err(rustls::Error::EncryptError),
                }
            }
            Step::Established
        }
        ConnectionState::PeerClosed => Step::PeerClosed,
        ConnectionState::Closed => Step::Closed,
        // Courier accepts no early data (max_early_data_size is 0).
        _ => return Err(rustls::Error::General("unexpected TLS state".into())),
    };
    Ok((discard, step))
}

/// A TLS session over TCP, either side, established.
pub struct TlsSession {
    tcp: TcpStream,
    conn: Connection,
    /// What a poll could not finish; `None` (no allocation) while it is all done,
    /// as it is on an idle connection.
    spill: Option<Box<Spill>>,
    /// The reader's waker while it waits, for a write that decrypts bytes.
    read_waker: Option<Waker>,
    /// The peer closed: reads return the end of the stream (`Ok`), or this
    /// error (a TCP close without close_notify, a bad record).
    read_end: Option<Result<(), io::ErrorKind>>,
    close_notify_sent: bool,
    /// `<scope>.ssl.connection_error`, for a bad record after the handshake.
    connection_error: Arc<Counter>,
}

/// What a handshake showed that rustls does not keep, read while it ran: for
/// the ssl stats and the session's info, then dropped (a session does not
/// carry it for its life).
#[derive(Debug, Default)]
pub struct HandshakeFacts {
    /// The signature scheme the peer's handshake signature used, as the
    /// verifier saw it (none on a resumed session, or a client without a certificate).
    peer_signature: Option<rustls::SignatureScheme>,
    /// What the handshake's cleartext records say of the session's ID.
    session_id: SessionIdReader,
    server: bool,
    tls12: bool,
}

impl HandshakeFacts {
    /// The scheme of the peer's handshake signature (see `note_peer_signature`).
    pub fn peer_signature(&self) -> Option<rustls::SignatureScheme> {
        self.peer_signature
    }

    /// A TLS 1.2 session's ID as BoringSSL keeps it (`tls_session_id`);
    /// `None` for TLS 1.3, and for a session BoringSSL gives none.
    pub fn session_id(&self) -> Option<&[u8]> {
        if !self.tls12 {
            return None;
        }
        self.session_id.session_id(self.server)
    }

    /// The server sent a session ticket in this (TLS 1.2) handshake.
    pub fn ticket_received(&self) -> bool {
        self.session_id.ticket_received()
    }
}

/// The bytes a session keeps between polls (see the module docs).
#[derive(Default)]
struct Spill {
    /// TLS bytes received and not yet processed (a record cut short).
    incoming: Vec<u8>,
    /// Decrypted bytes the reader has not taken, from `taken`.
    plaintext: Vec<u8>,
    taken: usize,
    /// Ciphertext the socket has not taken, from `sent`.
    outgoing: Vec<u8>,
    sent: usize,
    /// `outgoing` is the handshake's last flight, none of it sent: the next
    /// write sends it with its own bytes.
    held: bool,
}

impl Spill {
    fn is_done(&self) -> bool {
        self.incoming.is_empty() && self.taken == self.plaintext.len() && self.sent == self.outgoing.len()
    }
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession").field("alpn", &self.alpn()).finish()
    }
}

/// `rustls::Error` as the `io::Error` the handshake and the stats read.
fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl TlsSession {
    /// Runs the server side of a handshake on `tcp`, whose first bytes (the
    /// ClientHello, read to choose how to answer it) are `hello`;
    /// `connection_error` counts a bad record once the session is established.
    pub async fn accept(
        tcp: TcpStream,
        conn: UnbufferedServerConnection,
        hello: Vec<u8>,
        connection_error: Arc<Counter>,
    ) -> io::Result<(TlsSession, HandshakeFacts)> {
        TlsSession::new(tcp, Connection::Server(conn), connection_error).handshake(hello).await
    }

    /// Runs the client side of a handshake on `tcp` (`connection_error` as `accept`).
    pub async fn connect(
        tcp: TcpStream,
        conn: UnbufferedClientConnection,
        connection_error: Arc<Counter>,
    ) -> io::Result<(TlsSession, HandshakeFacts)> {
        TlsSession::new(tcp, Connection::Client(conn), connection_error).handshake(Vec::new()).await
    }

    fn new(tcp: TcpStream, conn: Connection, connection_error: Arc<Counter>) -> TlsSession {
        TlsSession {
            tcp,
            conn,
            spill: None,
            read_waker: None,
            read_end: None,
            close_notify_sent: false,
            connection_error,
        }
    }

    /// What the handshake settled (version, cipher, peer certificates, ALPN).
    pub fn state(&self) -> &CommonState {
        self.conn.state()
    }

    /// The protocol ALPN chose, if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.conn.state().alpn_protocol()
    }

    /// The TCP socket under the session.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Drives the handshake to its end in the session's own buffers (it waits
    /// on the peer in between), then frees them. On failure the alert rustls
    /// queued is written if the socket takes it now. `first`: bytes of the
    /// peer's already read.
    async fn handshake(mut self, first: Vec<u8>) -> io::Result<(TlsSession, HandshakeFacts)> {
        let (mut received, mut filled) = (first.len(), 0);
        let mut sp = Spill { incoming: first, ..Spill::default() };
        // The last flight waits for the session's first write (see the module docs).
        let mut held = false;
        let server = matches!(self.conn, Connection::Server(_));
        let mut handshake = HandshakeFacts { server, ..HandshakeFacts::default() };
        loop {
            let mut out = std::mem::take(&mut sp.outgoing);
            let mut io = StepIo {
                out: &mut out,
                out_len: filled,
                direct: None,
                plaintext: &mut sp.plaintext,
                encrypt: None,
                close_notify: false,
            };
            if !handshake.server {
                // The server's records, kept by rustls until each is whole
                // and processed: read before they go.
                handshake.session_id.read(&sp.incoming[..received]);
            }
            PEER_SIGNATURE.with(|s| s.set(None));
            let result = self.conn.step(&mut sp.incoming[..received], &mut io);
            if let Some(scheme) = PEER_SIGNATURE.with(Cell::take) {
                handshake.peer_signature = Some(scheme);
            }
            filled = io.out_len;
            sp.outgoing = out;
            let (discard, step) = match result {
                Ok(r) => r,
                Err(e) => {
                    sp.incoming.truncate(received);
                    let mut pending = std::mem::take(&mut sp.outgoing);
                    pending.truncate(filled);
                    self.send_alert(&mut sp.incoming, pending);
                    return Err(tls_error(e));
                }
            };
            if discard > 0 {
                sp.incoming.copy_within(discard..received, 0);
                received -= discard;
            }
            match step {
                Step::Again => {}
                Step::Transmit => {
                    if handshake.server {
                        handshake.session_id.read(&sp.outgoing[..filled]);
                    }
                    held = handshake.server
                        && !self.conn.state().is_handshaking()
                        && self.conn.state().protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3)
                        && (received > 0 || !sp.plaintext.is_empty());
                    if !held {
                        write_all(&self.tcp, &sp.outgoing[..filled]).await?;
                        filled = 0;
                    }
                }
                Step::Established if !self.conn.state().is_handshaking() => break,
                Step::NeedInput | Step::Established => {
                    if received >= MAX_HANDSHAKE_BUFFER {
                        // As rustls's buffered connection: no TLS error, so no stat.
                        return Err(io::Error::new(io::ErrorKind::InvalidData, "message buffer full"));
                    }
                    if received == sp.incoming.len() {
                        sp.incoming.resize((received + 4096).min(MAX_HANDSHAKE_BUFFER), 0);
                    }
                    let n = std::future::poll_fn(|cx| poll_read_into(&mut self.tcp, cx, &mut sp.incoming[received..]))
                        .await?;
                    if n == 0 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof"));
                    }
                    received += n;
                }
                Step::PeerClosed | Step::Closed => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof"));
                }
            }
        }
        if held {
            sp.outgoing.truncate(filled);
            sp.outgoing.shrink_to_fit();
            sp.held = true;
        } else {
            write_all(&self.tcp, &sp.outgoing[..filled]).await?;
            sp.outgoing = Vec::new();
        }
        // Bytes after the peer's last handshake message (a record cut short)
        // stay; the buffers are otherwise given back.
        sp.incoming.truncate(received);
        sp.incoming.shrink_to_fit();
        sp.plaintext.shrink_to_fit();
        self.spill = (!sp.is_done()).then(|| Box::new(sp));
        handshake.tls12 = self.conn.state().protocol_version() == Some(rustls::ProtocolVersion::TLSv1_2);
        Ok((self, handshake))
    }

    /// After a failed step over `incoming`: `out` (ciphertext not yet sent)
    /// and the alert rustls queued behind it, written if the socket takes them
    /// now (the connection closes next, so unsent ciphertext is dropped).
    fn send_alert(&mut self, incoming: &mut [u8], mut out: Vec<u8>) {
        let mut plaintext = Vec::new();
        let out_len = out.len();
        let mut io = StepIo {
            out: &mut out,
            out_len,
            direct: None,
            plaintext: &mut plaintext,
            encrypt: None,
            close_notify: false,
        };
        // Each queued chunk (the alert) comes out as an encode step; stepping
        // with none queued would process the bad bytes again.
        while self.conn.state().wants_write() {
            if !matches!(self.conn.step(incoming, &mut io), Ok((_, Step::Again))) {
                break;
            }
        }
        let len = io.out_len;
        let _ = self.tcp.try_write(&out[..len]);
        if let Some(sp) = self.spill.as_mut() {
            sp.outgoing = Vec::new();
            sp.sent = 0;
            sp.held = false;
        }
    }

    /// Frees the spill once it holds nothing.
    fn settle(&mut self) {
        if self.spill.as_ref().is_some_and(|sp| sp.is_done()) {
            self.spill = None;
        }
    }

    fn spill_mut(&mut self) -> &mut Spill {
        self.spill.get_or_insert_with(Default::default)
    }

    /// Before a write: `poll_flush_outgoing`, unless `outgoing` is a held
    /// flight, which goes with the write.
    fn poll_flush_before_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.spill.as_ref().is_some_and(|sp| sp.held) {
            return Poll::Ready(Ok(()));
        }
        self.poll_flush_outgoing(cx)
    }

    /// Sends what `outgoing` holds from `sent` on; `Pending` until the socket
    /// took it all, then the buffer is freed.
    fn poll_flush_outgoing(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(sp) = self.spill.as_mut() else { return Poll::Ready(Ok(())) };
        sp.held = false;
        while sp.sent < sp.outgoing.len() {
            let n = ready!(poll_write_from(&self.tcp, cx, &sp.outgoing[sp.sent..]))?;
            sp.sent += n;
        }
        sp.outgoing = Vec::new();
        sp.sent = 0;
        self.settle();
        Poll::Ready(Ok(()))
    }

    /// Runs the state machine over `tls` (ciphertext from the socket, or
    /// nothing), encrypting `encrypt` / a close_notify if asked. Decrypted bytes
    /// go to `direct` while it has room, then to `plaintext`; ciphertext to
    /// `out` (its length returned). What was not processed (a record cut
    /// short) is kept in `incoming`.
    fn run(
        &mut self,
        tls: Option<&mut [u8]>,
        direct: Option<&mut ReadBuf<'_>>,
        out: &mut Vec<u8>,
        encrypt: Option<&[u8]>,
        close_notify: bool,
    ) -> Result<(usize, Step), rustls::Error> {
        let mut sp = self.spill.take();
        let mut own = sp.as_mut().map(|sp| std::mem::take(&mut sp.incoming)).unwrap_or_default();
        let owned = tls.is_none();
        let tls: &mut [u8] = match tls {
            Some(t) => t,
            None => &mut own,
        };
        let mut taken = sp.as_ref().map_or(0, |sp| sp.taken);
        let mut plaintext = sp.as_mut().map(|sp| std::mem::take(&mut sp.plaintext)).unwrap_or_default();
        if taken == plaintext.len() {
            plaintext.clear();
            taken = 0;
        }
        let mut io = StepIo { out, out_len: 0, direct, plaintext: &mut plaintext, encrypt, close_notify };
        let mut start = 0;
        let result = loop {
            match self.conn.step(&mut tls[start..], &mut io) {
                Ok((discard, step)) => {
                    start += discard;
                    match step {
                        // A transmit is sent by the caller with the rest, after the run.
                        Step::Again | Step::Transmit => {}
                        // Edge-triggered: the session may still send.
                        Step::PeerClosed => {
                            self.read_end.get_or_insert(Ok(()));
                        }
                        s => break Ok(s),
                    }
                }
                Err(e) => break Err(e),
            }
        };
        let out_len = io.out_len;
        // Keep what was not processed, in the session's own buffer.
        let incoming = if owned {
            own.drain(..start);
            own
        } else {
            tls[start..].to_vec()
        };
        let unread = taken < plaintext.len();
        if unread || !incoming.is_empty() || sp.is_some() {
            let sp = sp.get_or_insert_with(Default::default);
            sp.incoming = if incoming.is_empty() { Vec::new() } else { incoming };
            sp.plaintext = if unread { plaintext } else { Vec::new() };
            sp.taken = taken;
        }
        self.spill = sp;
        self.settle();
        if unread {
            if let Some(w) = self.read_waker.take() {
                w.wake();
            }
        }
        result.map(|s| (out_len, s))
    }

    /// Writes as much of `out` as the socket takes now (nothing while
    /// `outgoing` still holds bytes) and queues the rest behind them.
    fn send_or_keep(&mut self, out: &[u8]) -> io::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        if let Some(sp) = self.spill.as_mut().filter(|sp| sp.held) {
            // The held flight and these bytes, in one write.
            sp.held = false;
            sp.outgoing.extend_from_slice(out);
            while sp.sent < sp.outgoing.len() {
                match self.tcp.try_write(&sp.outgoing[sp.sent..]) {
                    Ok(n) => sp.sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            if sp.sent == sp.outgoing.len() {
                sp.outgoing = Vec::new();
                sp.sent = 0;
                self.settle();
            }
            return Ok(());
        }
        let mut from = 0;
        if self.spill.as_ref().is_none_or(|sp| sp.sent == sp.outgoing.len()) {
            while from < out.len() {
                match self.tcp.try_write(&out[from..]) {
                    Ok(n) => from += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        if from < out.len() {
            self.spill_mut().outgoing.extend_from_slice(&out[from..]);
        }
        Ok(())
    }

    /// Encrypts `data` (all of it) and sends it, or keeps what the socket does
    /// not take now.
    fn encrypt_and_send(&mut self, data: &[u8], close_notify: bool) -> io::Result<()> {
        with_scratch(&TLS_SCRATCH, 0, |out| {
            let (len, step) = self.run(None, None, out, Some(data), close_notify).map_err(tls_error)?;
            self.send_or_keep(&out[..len])?;
            match step {
                Step::Established => Ok(()),
                Step::Closed => Err(io::ErrorKind::BrokenPipe.into()),
                _ => Err(io::Error::new(io::ErrorKind::NotConnected, "the TLS session cannot send")),
            }
        })
    }

    /// Copies decrypted bytes the reader has not taken into `buf`.
    fn take_plaintext(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let Some(sp) = self.spill.as_mut() else { return false };
        let n = buf.remaining().min(sp.plaintext.len() - sp.taken);
        if n == 0 {
            return false;
        }
        buf.put_slice(&sp.plaintext[sp.taken..sp.taken + n]);
        sp.taken += n;
        if sp.taken == sp.plaintext.len() {
            sp.plaintext = Vec::new();
            sp.taken = 0;
            self.settle();
        }
        true
    }
}

/// One read from `tcp` into `buf`, waiting for readiness. Through tokio's
/// `AsyncRead`: a read that does not fill `buf` marks the socket drained, so the
/// next wait needs no read that returns `EAGAIN` (`try_read` would make one).
fn poll_read_into(tcp: &mut TcpStream, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
    let mut read = ReadBuf::new(buf);
    ready!(Pin::new(tcp).poll_read(cx, &mut read))?;
    Poll::Ready(Ok(read.filled().len()))
}

/// Writes all of `buf` to `tcp`.
async fn write_all(tcp: &TcpStream, buf: &[u8]) -> io::Result<()> {
    let mut from = 0;
    while from < buf.len() {
        from += std::future::poll_fn(|cx| poll_write_from(tcp, cx, &buf[from..])).await?;
    }
    Ok(())
}

/// One write of `buf` to `tcp`, waiting for room.
fn poll_write_from(tcp: &TcpStream, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
    loop {
        ready!(tcp.poll_write_ready(cx))?;
        match tcp.try_write(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return Poll::Ready(r),
        }
    }
}

impl AsyncRead for TlsSession {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let room = buf.remaining();
        if room == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.take_plaintext(buf) {
                return Poll::Ready(Ok(()));
            }
            if let Some(end) = this.read_end {
                return Poll::Ready(end.map_err(io::Error::from));
            }
            // A record cut short waits in `incoming`: the next bytes go after
            // it. Otherwise they go to the worker's scratch buffer.
            let partial = this.spill.as_ref().is_some_and(|sp| !sp.incoming.is_empty());
            let read = if !partial {
                with_scratch(&TLS_SCRATCH, SCRATCH, |scratch| {
                    let n = match poll_read_into(&mut this.tcp, cx, &mut scratch[..SCRATCH]) {
                        Poll::Ready(Ok(n)) => n,
                        other => return other,
                    };
                    if n > 0 {
                        let mut out = Vec::new();
                        let r = this.run(Some(&mut scratch[..n]), Some(&mut *buf), &mut out, None, false);
                        this.after_read(r, &out);
                    }
                    Poll::Ready(Ok(n))
                })
            } else {
                let sp = this.spill.get_or_insert_with(Default::default);
                let have = sp.incoming.len();
                sp.incoming.resize(have.max(4096) * 2, 0);
                let r = poll_read_into(&mut this.tcp, cx, &mut sp.incoming[have..]);
                let n = match &r {
                    Poll::Ready(Ok(n)) => *n,
                    _ => 0,
                };
                sp.incoming.truncate(have + n);
                if n > 0 {
                    let mut out = Vec::new();
                    let r = this.run(None, Some(&mut *buf), &mut out, None, false);
                    this.after_read(r, &out);
                }
                r
            };
            if buf.remaining() < room {
                return Poll::Ready(Ok(()));
            }
            match read {
                Poll::Pending => {
                    if !this.read_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        this.read_waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // The TCP stream ended without a close_notify.
                Poll::Ready(Ok(0)) => {
                    this.read_end.get_or_insert(Err(io::ErrorKind::UnexpectedEof));
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
    }
}

impl TlsSession {
    /// After a read was processed: send what the session produced (a
    /// KeyUpdate, an alert), note the peer's close or an error.
    fn after_read(&mut self, result: Result<(usize, Step), rustls::Error>, out: &[u8]) {
        match result {
            Ok((len, step)) => {
                let _ = self.send_or_keep(&out[..len]);
                if step == Step::Closed {
                    self.read_end.get_or_insert(Ok(()));
                }
            }
            Err(e) => {
                tracing::debug!("TLS record error: {e}");
                // Envoy counts the failed read, then the close_notify it
                // cannot write on the broken session (Envoy 1.40: 2 each).
                self.connection_error.inc();
                self.connection_error.inc();
                let mut incoming = self.spill.as_mut().map(|sp| std::mem::take(&mut sp.incoming)).unwrap_or_default();
                self.send_alert(&mut incoming, Vec::new());
                self.read_end = Some(Err(io::ErrorKind::InvalidData));
            }
        }
    }
}

impl AsyncWrite for TlsSession {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_flush_before_write(cx))?;
        let data = &buf[..buf.len().min(SCRATCH)];
        this.encrypt_and_send(data, false)?;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_flush_before_write(cx))?;
        let Some(first) = bufs.iter().find(|b| !b.is_empty()) else { return Poll::Ready(Ok(0)) };
        if first.len() >= RECORD {
            let data = &first[..first.len().min(SCRATCH)];
            this.encrypt_and_send(data, false)?;
            return Poll::Ready(Ok(data.len()));
        }
        // Small slices are joined into one record.
        let n = with_scratch(&PLAINTEXT_SCRATCH, 0, |joined| {
            joined.clear();
            for b in bufs {
                let room = RECORD - joined.len();
                joined.extend_from_slice(&b[..b.len().min(room)]);
                if joined.len() == RECORD {
                    break;
                }
            }
            this.encrypt_and_send(joined, false).map(|()| joined.len())
        })?;
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush_outgoing(cx)
    }

    /// A close_notify, then the TCP write side's FIN, as Envoy ends a TLS connection.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_notify_sent {
            ready!(this.poll_flush_before_write(cx))?;
            this.close_notify_sent = true;
            this.encrypt_and_send(&[], true)?;
        }
        ready!(this.poll_flush_outgoing(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

/// Envoy ends a TLS connection with a close_notify alert: written when the
/// session is dropped if the socket takes it now (no waiting).
impl Drop for TlsSession {
    fn drop(&mut self) {
        let established = !self.conn.state().is_handshaking();
        // A held flight goes with the close_notify; other unsent bytes are dropped.
        let unsent = self.spill.as_ref().is_some_and(|sp| !sp.held && sp.sent < sp.outgoing.len());
        if established && !self.close_notify_sent && !unsent {
            self.close_notify_sent = true;
            let _ = self.encrypt_and_send(&[], true);
        }
    }
}

impl ReadReady for TlsSession {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let unread = self.spill.as_ref().is_some_and(|sp| sp.taken < sp.plaintext.len());
        if unread || self.read_end.is_some() {
            return Poll::Ready(Ok(()));
        }
        self.tcp.poll_read_ready(cx)
    }
}
