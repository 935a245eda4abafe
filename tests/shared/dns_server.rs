//! A scripted DNS server on 127.0.0.1 for tests of DNS clusters: it answers UDP
//! and TCP (same port) queries for A and AAAA records from a script set per name
//! (addresses and CNAMEs with chosen TTLs, or a misbehaviour: a truncated UDP
//! reply, garbage, a reply with another id, silence, an error code), answers
//! NXDOMAIN for names without one, and records every query it gets (when, name,
//! type, transport, id) so a test can check what a resolver asked and when.
//! Its wire code is its own (RFC 1035), independent of the code under test.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
const TYPE_CNAME: u16 = 5;

/// A record of a name's answer.
#[derive(Debug, Clone)]
pub enum Record {
    /// An A or AAAA record (by the address's family), with its TTL.
    Address(IpAddr, u32),
    /// A CNAME to another name (whose records the answer then carries too).
    Cname(String, u32),
}

/// How the server answers a name.
#[derive(Debug, Clone)]
pub enum Script {
    /// Its records of the type asked (none: NOERROR with no answer).
    Records(Vec<Record>),
    /// Over UDP a reply with the TC bit and no answer; over TCP the records.
    Truncated(Vec<Record>),
    /// Bytes that are no DNS message.
    Garbage,
    /// The right answer under another id.
    WrongId(Vec<Record>),
    /// No reply at all.
    Silent,
    /// A reply with this response code and no answer.
    Rcode(u8),
}

/// One query the server got.
#[derive(Debug, Clone)]
pub struct Asked {
    pub at: Instant,
    pub name: String,
    pub qtype: u16,
    pub tcp: bool,
    pub id: u16,
    /// The UDP payload size of its EDNS OPT record, if it had one.
    pub edns: Option<u16>,
}

#[derive(Default)]
struct State {
    scripts: Vec<(String, Script)>,
    asked: Vec<Asked>,
}

pub struct DnsServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl DnsServer {
    /// Starts a server on 127.0.0.1 (UDP and TCP on one port).
    pub fn start() -> DnsServer {
        // A port free for both UDP and TCP.
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
            if let Ok(tcp) = TcpListener::bind(udp.local_addr().expect("addr")) {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        udp.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
        tcp.set_nonblocking(true).expect("nonblocking");
        {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || serve_udp(udp, &state, &stop));
        }
        {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || serve_tcp(tcp, &state, &stop));
        }
        DnsServer { addr, state, stop }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Sets how `name` is answered from now on.
    pub fn set(&self, name: &str, script: Script) {
        let mut s = self.state.lock().unwrap();
        let name = name.to_ascii_lowercase();
        s.scripts.retain(|(n, _)| *n != name);
        s.scripts.push((name, script));
    }

    /// Every query so far, in arrival order.
    pub fn asked(&self) -> Vec<Asked> {
        self.state.lock().unwrap().asked.clone()
    }

    /// The queries for `name` of `qtype` so far.
    pub fn asked_for(&self, name: &str, qtype: u16) -> Vec<Asked> {
        self.asked().into_iter().filter(|a| a.name.eq_ignore_ascii_case(name) && a.qtype == qtype).collect()
    }

    /// Waits (up to 10 s) until at least `n` queries for `name` of `qtype` came.
    pub fn wait_asked(&self, name: &str, qtype: u16, n: usize) -> Vec<Asked> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let asked = self.asked_for(name, qtype);
            if asked.len() >= n {
                return asked;
            }
            assert!(Instant::now() < deadline, "{name} type {qtype} asked {} times, not {n}: {asked:?}", asked.len());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve_udp(udp: UdpSocket, state: &Mutex<State>, stop: &AtomicBool) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let Ok((n, from)) = udp.recv_from(&mut buf) else { continue };
        if let Some(reply) = answer(&buf[..n], false, state) {
            let _ = udp.send_to(&reply, from);
        }
    }
}

fn serve_tcp(tcp: TcpListener, state: &Mutex<State>, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let Ok((mut stream, _)) = tcp.accept() else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        loop {
            let mut len = [0u8; 2];
            if stream.read_exact(&mut len).is_err() {
                break;
            }
            let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if stream.read_exact(&mut query).is_err() {
                break;
            }
            let Some(reply) = answer(&query, true, state) else { break };
            let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&reply);
            if stream.write_all(&framed).is_err() {
                break;
            }
        }
    }
}

/// The question of a query: its name (lower case), type and where it ends.
fn question(q: &[u8]) -> Option<(String, u16, usize)> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*q.get(at)?);
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(at + 1..at + 1 + len)?).to_ascii_lowercase());
        at += 1 + len;
    }
    let qtype = u16::from_be_bytes([*q.get(at + 1)?, *q.get(at + 2)?]);
    Some((labels.join("."), qtype, at + 5))
}

fn answer(query: &[u8], tcp: bool, state: &Mutex<State>) -> Option<Vec<u8>> {
    let (name, qtype, question_end) = question(query)?;
    let id = u16::from_be_bytes([query[0], query[1]]);
    let arcount = u16::from_be_bytes([query[10], query[11]]);
    // An OPT record right after the question: root name, type 41, the size as class.
    let edns = match query.get(question_end..question_end + 5) {
        Some([0, 0, 41, hi, lo]) if arcount > 0 => Some(u16::from_be_bytes([*hi, *lo])),
        _ => None,
    };
    let mut s = state.lock().unwrap();
    s.asked.push(Asked { at: Instant::now(), name: name.clone(), qtype, tcp, id, edns });
    let script = s.scripts.iter().find(|(n, _)| *n == name).map(|(_, s)| s.clone());
    let records_of = |records: &[Record]| -> Vec<(String, Record)> {
        // The chain from `name`: each CNAME's target's records follow it.
        let mut out = Vec::new();
        let mut owner = name.clone();
        let mut records = records.to_vec();
        for _ in 0..8 {
            let mut next = None;
            for r in &records {
                out.push((owner.clone(), r.clone()));
                if let Record::Cname(target, _) = r {
                    next = Some(target.to_ascii_lowercase());
                }
            }
            let Some(target) = next else { break };
            records = match s.scripts.iter().find(|(n, _)| *n == target) {
                Some((_, Script::Records(r))) => {
                    r.iter().filter(|r| !matches!(r, Record::Cname(..))).cloned().collect()
                }
                _ => Vec::new(),
            };
            owner = target;
        }
        out
    };
    let (rcode, tc, answers, reply_id) = match script {
        None => (3, false, Vec::new(), id),
        Some(Script::Records(r)) => (0, false, records_of(&r), id),
        Some(Script::Truncated(_)) if !tcp => (0, true, Vec::new(), id),
        Some(Script::Truncated(r)) => (0, false, records_of(&r), id),
        Some(Script::Garbage) => return Some(b"\x12\x34 not a DNS message".to_vec()),
        Some(Script::WrongId(r)) => (0, false, records_of(&r), id.wrapping_add(1)),
        Some(Script::Silent) => return None,
        Some(Script::Rcode(code)) => (code, false, Vec::new(), id),
    };
    drop(s);
    let answers: Vec<(String, Record)> = answers
        .into_iter()
        .filter(|(_, r)| match r {
            Record::Address(IpAddr::V4(_), _) => qtype == TYPE_A,
            Record::Address(IpAddr::V6(_), _) => qtype == TYPE_AAAA,
            Record::Cname(..) => true,
        })
        .collect();
    let mut m = Vec::new();
    m.extend_from_slice(&reply_id.to_be_bytes());
    let flags: u16 = 0x8180 | if tc { 0x0200 } else { 0 } | u16::from(rcode);
    m.extend_from_slice(&flags.to_be_bytes());
    for count in [1u16, answers.len() as u16, 0, 0] {
        m.extend_from_slice(&count.to_be_bytes());
    }
    m.extend_from_slice(&query[12..question_end]);
    for (owner, r) in answers {
        write_name(&mut m, &owner);
        let (rtype, ttl, data) = match r {
            Record::Address(IpAddr::V4(ip), ttl) => (TYPE_A, ttl, ip.octets().to_vec()),
            Record::Address(IpAddr::V6(ip), ttl) => (TYPE_AAAA, ttl, ip.octets().to_vec()),
            Record::Cname(target, ttl) => {
                let mut data = Vec::new();
                write_name(&mut data, &target);
                (TYPE_CNAME, ttl, data)
            }
        };
        m.extend_from_slice(&rtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&(data.len() as u16).to_be_bytes());
        m.extend_from_slice(&data);
    }
    Some(m)
}

fn write_name(out: &mut Vec<u8>, name: &str) {
    for label in name.trim_end_matches('.').split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}
