//! Courier's stub DNS client: asks nameservers for one name's A or AAAA records
//! the way c-ares (Envoy's default resolver) does, so a DNS cluster sees the
//! answers, TTLs, timeouts and failures Envoy would. A query goes over UDP (TCP
//! when configured, or when the reply is truncated), to each nameserver in turn
//! for `tries` rounds, each attempt waiting `timeout`; the name is tried with the
//! search domains in resolv.conf's order (as-is first when it has `ndots` dots).
//! Each query has a random id and its own UDP socket (a fresh port) connected to
//! the nameserver; a reply to another question is dropped while waiting, one that
//! does not parse ends that attempt at once, as in c-ares.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};

use super::dns_message::{encode_query, parse_reply, QueryType, Rcode, Reply, ReplyError};

/// The largest UDP reply read; a longer datagram is cut and so does not parse.
const UDP_READ_BUFFER: usize = 4096;

/// How one query is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubSettings {
    /// Asked in order, `tries` times each.
    pub servers: Vec<SocketAddr>,
    /// Appended to a relative name (none when `no_default_search_domain`).
    pub search: Vec<String>,
    pub ndots: usize,
    pub use_tcp: bool,
    /// How long each attempt waits for its reply.
    pub timeout: Duration,
    pub tries: u32,
    /// The EDNS(0) UDP payload size offered; none sends no OPT record.
    pub edns_payload: Option<u16>,
}

/// How one family's lookup ended (one c-ares `ares_getaddrinfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The addresses found, each with its TTL in seconds.
    Found(Vec<(IpAddr, u32)>),
    /// No name tried has a record of the type (NXDOMAIN or no data).
    NotFound,
    /// The last attempt timed out; how many did.
    TimedOut(u32),
    /// Another failure: replies that did not parse, server failures, errors.
    /// `refused` when the last attempt was refused (a connection refused, or a
    /// SERVFAIL, NOTIMP or REFUSED answer): c-ares's ECONNREFUSED, after which
    /// Envoy reinitializes its channel.
    Failed { why: String, refused: bool },
}

/// How one attempt at one nameserver ended.
enum Attempt {
    Answered(Reply),
    TimedOut,
    /// `refused`: the nameserver refused the connection.
    Failed {
        why: String,
        refused: bool,
    },
}

fn failed(why: String) -> Attempt {
    Attempt::Failed { why, refused: false }
}

/// Looks up `name`'s records of `qtypes` (one type, or A and AAAA at once as
/// c-ares's AF_UNSPEC does) with `settings`: the first name tried that has an
/// address of either type ends it.
pub async fn lookup(settings: &StubSettings, name: &str, qtypes: &[QueryType]) -> Lookup {
    for candidate in candidates(name, &settings.search, settings.ndots) {
        let looked_up = match qtypes {
            [qtype] => query_servers(settings, &candidate, *qtype).await,
            [first, second, ..] => {
                let (a, b) = tokio::join!(
                    query_servers(settings, &candidate, *first),
                    query_servers(settings, &candidate, *second)
                );
                match (a, b) {
                    (Lookup::Found(mut a), Lookup::Found(b)) => {
                        a.extend(b);
                        Lookup::Found(a)
                    }
                    (found @ Lookup::Found(_), _) | (_, found @ Lookup::Found(_)) => found,
                    (Lookup::NotFound, Lookup::NotFound) => Lookup::NotFound,
                    (Lookup::NotFound, failed) | (failed, _) => failed,
                }
            }
            [] => Lookup::NotFound,
        };
        match looked_up {
            Lookup::NotFound => {}
            ended => return ended,
        }
    }
    Lookup::NotFound
}

/// The names to ask for `name`, in order: an absolute name (a trailing dot) alone;
/// else with each search domain, as-is first when it has at least `ndots` dots
/// and last otherwise (c-ares's order).
pub fn candidates(name: &str, search: &[String], ndots: usize) -> Vec<String> {
    if name.ends_with('.') || search.is_empty() {
        return vec![name.to_string()];
    }
    let searched = search.iter().map(|domain| format!("{name}.{}", domain.trim_end_matches('.')));
    if name.matches('.').count() >= ndots {
        std::iter::once(name.to_string()).chain(searched).collect()
    } else {
        searched.chain(std::iter::once(name.to_string())).collect()
    }
}

/// One name asked of the nameservers: `tries` rounds over them until one
/// answers it (addresses, NXDOMAIN or no data).
async fn query_servers(settings: &StubSettings, name: &str, qtype: QueryType) -> Lookup {
    let id = random_id();
    let mut edns = settings.edns_payload;
    let mut timeouts = 0;
    let mut last = Lookup::Failed { why: "no nameserver to ask".to_string(), refused: false };
    let attempts = settings.servers.len() * settings.tries.max(1) as usize;
    for attempt in 0..attempts {
        let server = settings.servers[attempt % settings.servers.len()];
        let Ok(query) = encode_query(id, name, qtype, edns) else {
            // Not a name DNS can carry: no such name.
            return Lookup::NotFound;
        };
        let mut outcome = if settings.use_tcp {
            exchange_tcp(server, &query, id, name, qtype, settings.timeout).await
        } else {
            exchange_udp(server, &query, id, name, qtype, settings.timeout).await
        };
        if matches!(&outcome, Attempt::Answered(r) if r.truncated && !settings.use_tcp) {
            outcome = exchange_tcp(server, &query, id, name, qtype, settings.timeout).await;
        }
        let reply = match outcome {
            Attempt::Answered(reply) => reply,
            Attempt::TimedOut => {
                timeouts += 1;
                last = Lookup::TimedOut(timeouts);
                continue;
            }
            Attempt::Failed { why, refused } => {
                tracing::debug!("DNS query for {name} to {server} failed: {why}");
                last = Lookup::Failed { why, refused };
                continue;
            }
        };
        match reply.rcode {
            Rcode::NoError if reply.addresses.is_empty() => return Lookup::NotFound,
            Rcode::NoError => return Lookup::Found(reply.addresses),
            Rcode::NxDomain => return Lookup::NotFound,
            rcode => {
                let refused = matches!(rcode, Rcode::ServFail | Rcode::NotImp | Rcode::Refused);
                last = Lookup::Failed { why: format!("{server} answered {rcode:?}"), refused };
                // A server that does not know EDNS is asked again without it.
                if rcode == Rcode::FormErr {
                    edns = None;
                }
            }
        }
    }
    last
}

/// One query over UDP: replies to other queries are dropped while waiting.
async fn exchange_udp(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    name: &str,
    qtype: QueryType,
    wait: Duration,
) -> Attempt {
    let deadline = Instant::now() + wait;
    let local = if server.is_ipv4() {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    };
    let socket = match tokio::net::UdpSocket::bind(local).await {
        Ok(s) => s,
        Err(e) => return failed(format!("cannot open a UDP socket: {e}")),
    };
    if let Err(e) = socket.connect(server).await {
        return failed(format!("cannot reach {server}: {e}"));
    }
    if let Err(e) = socket.send(query).await {
        return Attempt::Failed { refused: is_refused(&e), why: format!("cannot send to {server}: {e}") };
    }
    let mut buf = vec![0u8; UDP_READ_BUFFER];
    loop {
        let n = match timeout_at(deadline, socket.recv(&mut buf)).await {
            Err(_) => return Attempt::TimedOut,
            Ok(Err(e)) => return Attempt::Failed { refused: is_refused(&e), why: format!("{server}: {e}") },
            Ok(Ok(n)) => n,
        };
        match parse_reply(&buf[..n], id, name, qtype) {
            Ok(reply) => return Attempt::Answered(reply),
            Err(ReplyError::NotMatching) => continue,
            Err(ReplyError::Malformed) => return failed(format!("{server} sent a malformed reply")),
        }
    }
}

/// One query over TCP (RFC 1035 §4.2.2: each message after its 2-byte length).
async fn exchange_tcp(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    name: &str,
    qtype: QueryType,
    wait: Duration,
) -> Attempt {
    let deadline = Instant::now() + wait;
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(server).await?;
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
        framed.extend_from_slice(query);
        stream.write_all(&framed).await?;
        let len = stream.read_u16().await?;
        let mut reply = vec![0u8; usize::from(len)];
        stream.read_exact(&mut reply).await?;
        Ok::<_, std::io::Error>(reply)
    };
    match timeout_at(deadline, exchange).await {
        Err(_) => Attempt::TimedOut,
        Ok(Err(e)) => Attempt::Failed { refused: is_refused(&e), why: format!("{server} over TCP: {e}") },
        Ok(Ok(reply)) => match parse_reply(&reply, id, name, qtype) {
            Ok(reply) => Attempt::Answered(reply),
            // The connection carried this query only: any other reply is a bad one.
            Err(_) => failed(format!("{server} sent a malformed reply over TCP")),
        },
    }
}

fn is_refused(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::ConnectionRefused
}

/// A query id from the system's secure random source, so an off-path sender
/// cannot guess it.
fn random_id() -> u16 {
    use ring::rand::SecureRandom;
    let mut id = [0u8; 2];
    match ring::rand::SystemRandom::new().fill(&mut id) {
        Ok(()) => u16::from_be_bytes(id),
        Err(_) => crate::common::random::next_u64() as u16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_domains_come_first_for_names_with_few_dots() {
        let search = vec!["a.example".to_string(), "b.example.".to_string()];
        assert_eq!(candidates("web", &search, 1), ["web.a.example", "web.b.example", "web"]);
        assert_eq!(candidates("web.ns", &search, 1), ["web.ns", "web.ns.a.example", "web.ns.b.example"]);
        assert_eq!(candidates("web.ns", &search, 2), ["web.ns.a.example", "web.ns.b.example", "web.ns"]);
        assert_eq!(candidates("web.", &search, 1), ["web."]);
        assert_eq!(candidates("web", &[], 1), ["web"]);
    }
}
