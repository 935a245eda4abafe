//! TLS 1.3 clients for bench/run's `tls` figures: a new connection per request,
//! with or without session resumption, and idle TLS connections.
//!
//! wrk with `Connection: close` resumes every session after its first (Envoy
//! 1.40 counts 2,656 `ssl.session_reused` of 2,661 handshakes), so it cannot give
//! full handshakes, and `openssl s_time -new` sends HTTP/1.0, which Envoy answers
//! with a 426 of its own without going upstream. This client does both the same
//! way, so the two figures differ in the handshake only: one thread per connection slot (like `rate`),
//! each with its own ticket store, so a thread always resumes with a ticket from
//! its own previous connection (the server sends at least one per handshake).
//! Nothing of the server's is checked, not even its handshake signature: the
//! certificate is a throwaway self-signed one, and the load side shares CPU 0
//! with the upstream, so every µs it spends is one the proxy cannot be loaded with.

use std::io::{self, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, IpAddr, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind, SignatureScheme, StreamOwned};

use crate::{connect_tcp, get, request, Args};

pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// `tls-new` / `tls-resume`: `conns` threads each open a connection, send one
/// `GET` with `Connection: close`, read the response and close, over and over for
/// `seconds`. Prints one JSON line: requests, how many handshakes resumed, errors,
/// non-2xx, elapsed.
pub fn per_request(args: &Args, resume: bool) -> Result<(), String> {
    let mut request = request(args);
    request.truncate(request.len() - 2); // the empty line: a header goes before it
    request.extend_from_slice(b"Connection: close\r\n\r\n");
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.seconds);
    let threads: Vec<_> = (0..args.conns)
        .map(|_| {
            let (request, port, config) = (request.clone(), args.port, config(resume));
            thread::spawn(move || {
                let mut t = [0u64; 4]; // requests, resumed, errors, non-2xx
                while Instant::now() < end {
                    match one_request(port, &config, &request) {
                        Ok((status, resumed)) => {
                            t[0] += 1;
                            t[1] += resumed as u64;
                            t[3] += !(200..400).contains(&status) as u64;
                        }
                        Err(_) => t[2] += 1,
                    }
                }
                t
            })
        })
        .collect();
    let mut all = [0u64; 4];
    for t in threads {
        let t = t.join().map_err(|_| "a connection thread panicked")?;
        all.iter_mut().zip(t).for_each(|(a, b)| *a += b);
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{{\"count\": {}, \"resumed\": {}, \"errors\": {}, \"non2xx\": {}, \"elapsed_s\": {elapsed:.3}}}",
        all[0], all[1], all[2], all[3]
    );
    Ok(())
}

/// One connection, one request: (status, whether the handshake resumed). The
/// client closes after the server's close (it answers `Connection: close` by
/// closing first), so no unread close_notify makes either kernel send a reset.
fn one_request(port: u16, config: &Arc<ClientConfig>, request: &[u8]) -> io::Result<(u16, bool)> {
    let mut c = connect(port, config)?;
    let (status, _) = get(&mut c, request)?;
    let resumed = c.get_ref().conn.handshake_kind() == Some(HandshakeKind::Resumed);
    c.get_mut().conn.send_close_notify();
    let _ = c.get_mut().flush();
    let _ = io::copy(&mut c, &mut io::sink());
    Ok((status, resumed))
}

/// A TCP connection with a completed TLS handshake.
pub fn connect(port: u16, config: &Arc<ClientConfig>) -> io::Result<BufReader<TlsStream>> {
    let tcp = connect_tcp(port)?;
    let name = ServerName::IpAddress(IpAddr::from(std::net::IpAddr::from([127, 0, 0, 1])));
    let conn = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(BufReader::with_capacity(crate::BUFFER, stream))
}

/// TLS 1.3 only, ALPN `http/1.1`, and with `resume` a ticket store of its own.
pub fn config(resume: bool) -> Arc<ClientConfig> {
    // Deprecated for lacking post-quantum key exchange, which no proxy here offers
    // by default either; aws-lc-rs, which has it, needs cmake to build.
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    // A key share for X25519, as curl's and browsers' first: ring's own list puts
    // P-384 first, which Envoy and Courier answer with a HelloRetryRequest and
    // OpenSSL 3.0 (nginx, HAProxy) accepts on its slow generic curve code.
    provider.kx_groups = vec![rustls::crypto::ring::kx_group::X25519, rustls::crypto::ring::kx_group::SECP256R1];
    let provider = Arc::new(provider);
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("the ring provider supports TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = if resume { Resumption::in_memory_sessions(8) } else { Resumption::disabled() };
    Arc::new(config)
}

/// Accepts any certificate and any handshake signature.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not offered".into()))
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
