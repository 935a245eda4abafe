//! The DNS wire format (RFC 1035) for Courier's stub resolver: a query for one
//! name's A or AAAA records, and the reading of a reply to it. A reply is network
//! input, possibly hostile or spoofed, so reading it never panics, never follows
//! more than a bounded number of compression pointers or aliases, and tells a
//! reply that does not parse (`Malformed`, which c-ares counts as a bad answer of
//! that server) from a well-formed one to another question (`NotMatching`, which
//! c-ares, and so Courier, drops while waiting on). The addresses kept are those of
//! the name asked, after its CNAME chain, with the least TTL along the chain, as
//! c-ares gives Envoy.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The UDP payload size offered in the EDNS(0) OPT record, c-ares's default.
pub const EDNS_PAYLOAD_SIZE: u16 = 1232;
/// A name's longest wire form (RFC 1035 §2.3.4) and a label's longest.
const MAX_NAME_WIRE: usize = 255;
const MAX_LABEL: usize = 63;
/// Compression pointers followed while reading one name: a loop ends here.
const MAX_POINTERS: usize = 32;
/// CNAMEs followed from the name asked to its addresses.
const MAX_ALIASES: usize = 16;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
const HEADER_LEN: usize = 12;
const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;

/// The record type asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryType {
    A,
    Aaaa,
}

impl QueryType {
    fn code(self) -> u16 {
        match self {
            QueryType::A => TYPE_A,
            QueryType::Aaaa => TYPE_AAAA,
        }
    }
}

/// A reply's response code, of those a resolver acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError,
    FormErr,
    ServFail,
    NxDomain,
    NotImp,
    Refused,
    Other(u8),
}

impl Rcode {
    fn from_bits(bits: u8) -> Rcode {
        match bits {
            0 => Rcode::NoError,
            1 => Rcode::FormErr,
            2 => Rcode::ServFail,
            3 => Rcode::NxDomain,
            4 => Rcode::NotImp,
            5 => Rcode::Refused,
            n => Rcode::Other(n),
        }
    }
}

/// A reply that answers the query it was read against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub rcode: Rcode,
    /// The server cut the answer to fit UDP: ask again over TCP.
    pub truncated: bool,
    /// The addresses of the type asked, each with its TTL in seconds (the least
    /// of its record's and of the CNAMEs that led to it), in answer order.
    pub addresses: Vec<(IpAddr, u32)>,
}

/// Why a datagram is not a reply to the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyError {
    /// It does not parse as a DNS reply.
    Malformed,
    /// A reply, to another query (id or question differ): ignored.
    NotMatching,
}

/// A name that cannot be asked: empty, an empty or too long label, or too long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadName;

/// The lower-cased labels of `name` (a trailing dot allowed).
fn labels_of(name: &str) -> Result<Name, BadName> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err(BadName);
    }
    let labels: Name = name.split('.').map(|l| l.as_bytes().to_ascii_lowercase()).collect();
    let wire: usize = labels.iter().map(|l| l.len() + 1).sum::<usize>() + 1;
    if labels.iter().any(|l| l.is_empty() || l.len() > MAX_LABEL) || wire > MAX_NAME_WIRE {
        return Err(BadName);
    }
    Ok(labels)
}

/// A query (recursion desired) for `name`'s records of `qtype`, with id `id`
/// and, with `edns`, an OPT record offering that many bytes over UDP.
pub fn encode_query(id: u16, name: &str, qtype: QueryType, edns: Option<u16>) -> Result<Vec<u8>, BadName> {
    labels_of(name)?;
    let mut out = Vec::with_capacity(HEADER_LEN + MAX_NAME_WIRE + 16);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&FLAG_RD.to_be_bytes());
    for count in [1u16, 0, 0, u16::from(edns.is_some())] {
        out.extend_from_slice(&count.to_be_bytes());
    }
    for label in name.strip_suffix('.').unwrap_or(name).split('.') {
        // labels_of checked each is 1..=63 bytes.
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.code().to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    if let Some(payload) = edns {
        // Root owner, OPT, payload size as class, no extended rcode or flags, no data.
        out.push(0);
        out.extend_from_slice(&TYPE_OPT.to_be_bytes());
        out.extend_from_slice(&payload.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    Ok(out)
}

/// Reads `msg` as the reply to query `id` for `name`'s records of `qtype`. The
/// message is read whole before it is matched to the query, as c-ares does: one
/// that does not parse is `Malformed` whatever its id.
pub fn parse_reply(msg: &[u8], id: u16, name: &str, qtype: QueryType) -> Result<Reply, ReplyError> {
    let mut r = Reader { msg, pos: 0 };
    let reply_id = r.u16()?;
    let flags = r.u16()?;
    let qdcount = r.u16()?;
    let ancount = r.u16()?;
    let _nscount = r.u16()?;
    let _arcount = r.u16()?;
    let mut questions = Vec::new();
    for _ in 0..qdcount {
        let qname = r.name()?;
        questions.push((qname, r.u16()?, r.u16()?));
    }
    let truncated = flags & FLAG_TC != 0;
    let mut aliases: Vec<Alias> = Vec::new();
    let mut records: Vec<AddressRecord> = Vec::new();
    // A truncated reply may be cut anywhere after its question; TCP will tell.
    if !truncated {
        for _ in 0..ancount {
            read_answer(&mut r, qtype, &mut aliases, &mut records)?;
        }
    }
    // The authority and additional sections carry nothing a stub resolver uses.
    let asked = labels_of(name).map_err(|_| ReplyError::NotMatching)?;
    let opcode = (flags >> 11) & 0xF;
    let question_matches =
        matches!(questions.as_slice(), [(qname, qt, qc)] if *qname == asked && *qt == qtype.code() && *qc == CLASS_IN);
    if reply_id != id || flags & FLAG_QR == 0 || opcode != 0 || !question_matches {
        return Err(ReplyError::NotMatching);
    }
    let rcode = Rcode::from_bits((flags & 0xF) as u8);
    let mut current = asked;
    let mut chain_ttl = u32::MAX;
    for _ in 0..=MAX_ALIASES {
        if records.iter().any(|(owner, ..)| *owner == current) {
            break;
        }
        match aliases.iter().find(|(owner, ..)| *owner == current) {
            Some((_, target, ttl)) => {
                chain_ttl = chain_ttl.min(*ttl);
                current = target.clone();
            }
            None => break,
        }
    }
    let addresses = records
        .into_iter()
        .filter(|(owner, ..)| *owner == current)
        .map(|(_, address, ttl)| (address, ttl.min(chain_ttl)))
        .collect();
    Ok(Reply { rcode, truncated, addresses })
}

/// One answer record: a CNAME goes to `aliases`, an address of `qtype` to
/// `records`, any other record is skipped.
fn read_answer(
    r: &mut Reader<'_>,
    qtype: QueryType,
    aliases: &mut Vec<Alias>,
    records: &mut Vec<AddressRecord>,
) -> Result<(), ReplyError> {
    let owner = r.name()?;
    let (rtype, class) = (r.u16()?, r.u16()?);
    let ttl = r.u32()?;
    // RFC 2181 §8: a TTL with the top bit set is read as zero.
    let ttl = if ttl > i32::MAX as u32 { 0 } else { ttl };
    let len = usize::from(r.u16()?);
    let data_end = r.pos.checked_add(len).filter(|end| *end <= r.msg.len()).ok_or(ReplyError::Malformed)?;
    if class == CLASS_IN {
        match (rtype, len) {
            (TYPE_A, 4) if qtype == QueryType::A => {
                let b = r.bytes(4)?;
                records.push((owner, IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])), ttl));
            }
            (TYPE_AAAA, 16) if qtype == QueryType::Aaaa => {
                let mut b = [0u8; 16];
                b.copy_from_slice(r.bytes(16)?);
                records.push((owner, IpAddr::V6(Ipv6Addr::from(b)), ttl));
            }
            (TYPE_A, _) | (TYPE_AAAA, _) if qtype.code() == rtype => return Err(ReplyError::Malformed),
            (TYPE_CNAME, _) => {
                let target = r.name()?;
                if r.pos != data_end {
                    return Err(ReplyError::Malformed);
                }
                aliases.push((owner, target, ttl));
            }
            _ => {}
        }
    }
    r.pos = data_end;
    Ok(())
}

/// Fuzz target `dns_reply`: any bytes, read as the reply to a query for
/// `web.test` under the id they carry (so the whole message is read), never
/// panic, and what is taken holds: addresses of the type asked, TTLs below 2^31,
/// none from a truncated reply.
#[cfg(any(test, fuzzing))]
pub(crate) fn fuzz(data: &[u8]) {
    let id = data.get(..2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    for qtype in [QueryType::A, QueryType::Aaaa] {
        if let Ok(reply) = parse_reply(data, id, "web.test", qtype) {
            assert!(!reply.truncated || reply.addresses.is_empty());
            for (ip, ttl) in reply.addresses {
                assert_eq!(ip.is_ipv4(), qtype == QueryType::A);
                assert!(ttl <= i32::MAX as u32);
            }
        }
    }
}

/// A name as its lower-cased labels.
type Name = Vec<Vec<u8>>;
/// A CNAME: its owner, its target and its TTL.
type Alias = (Name, Name, u32);
/// An address record: its owner, the address and its TTL.
type AddressRecord = (Name, IpAddr, u32);

/// A cursor over a message; every read is bounds-checked.
struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn bytes(&mut self, n: usize) -> Result<&[u8], ReplyError> {
        let end = self.pos.checked_add(n).filter(|end| *end <= self.msg.len()).ok_or(ReplyError::Malformed)?;
        let b = &self.msg[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, ReplyError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, ReplyError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A name's lower-cased labels, following compression pointers (at most
    /// `MAX_POINTERS`); the cursor moves past the name where it is written.
    fn name(&mut self) -> Result<Name, ReplyError> {
        let mut labels = Vec::new();
        let mut wire = 1;
        let mut at = self.pos;
        let mut resume: Option<usize> = None;
        let mut pointers = 0;
        loop {
            let len = *self.msg.get(at).ok_or(ReplyError::Malformed)?;
            match len & 0xC0 {
                0x00 if len == 0 => {
                    self.pos = resume.unwrap_or(at + 1);
                    return Ok(labels);
                }
                0x00 => {
                    let start = at + 1;
                    let end = start + usize::from(len);
                    let label = self.msg.get(start..end).ok_or(ReplyError::Malformed)?;
                    wire += label.len() + 1;
                    if wire > MAX_NAME_WIRE {
                        return Err(ReplyError::Malformed);
                    }
                    labels.push(label.to_ascii_lowercase());
                    at = end;
                }
                0xC0 => {
                    let low = *self.msg.get(at + 1).ok_or(ReplyError::Malformed)?;
                    pointers += 1;
                    if pointers > MAX_POINTERS {
                        return Err(ReplyError::Malformed);
                    }
                    resume.get_or_insert(at + 2);
                    at = (usize::from(len & 0x3F) << 8) | usize::from(low);
                }
                // The 0x40 and 0x80 label types are unassigned or obsolete.
                _ => return Err(ReplyError::Malformed),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply to `query` with `answers` (already encoded records) appended.
    fn reply(query: &[u8], flags: u16, answers: &[Vec<u8>]) -> Vec<u8> {
        let mut m = query.to_vec();
        m[2..4].copy_from_slice(&(FLAG_QR | flags).to_be_bytes());
        m[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        m[10..12].copy_from_slice(&0u16.to_be_bytes());
        // Drop the query's OPT record, if any.
        let question_end = HEADER_LEN + query[HEADER_LEN..].iter().position(|b| *b == 0).unwrap() + 5;
        m.truncate(question_end);
        for a in answers {
            m.extend_from_slice(a);
        }
        m
    }

    fn name(n: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for l in n.split('.') {
            out.push(l.len() as u8);
            out.extend_from_slice(l.as_bytes());
        }
        out.push(0);
        out
    }

    fn record(owner: &[u8], rtype: u16, ttl: u32, data: &[u8]) -> Vec<u8> {
        let mut r = owner.to_vec();
        r.extend_from_slice(&rtype.to_be_bytes());
        r.extend_from_slice(&CLASS_IN.to_be_bytes());
        r.extend_from_slice(&ttl.to_be_bytes());
        r.extend_from_slice(&(data.len() as u16).to_be_bytes());
        r.extend_from_slice(data);
        r
    }

    const QNAME_PTR: [u8; 2] = [0xC0, 12];

    #[test]
    fn a_query_is_laid_out_as_rfc_1035_says() {
        let q = encode_query(0xBEEF, "Svc.Test.", QueryType::Aaaa, Some(EDNS_PAYLOAD_SIZE)).expect("query");
        let mut want = vec![0xBE, 0xEF, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        want.extend_from_slice(b"\x03Svc\x04Test\x00\x00\x1c\x00\x01");
        want.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(q, want);
        assert_eq!(encode_query(1, "", QueryType::A, None), Err(BadName));
        assert_eq!(encode_query(1, "a..b", QueryType::A, None), Err(BadName));
        assert_eq!(encode_query(1, &"x".repeat(64), QueryType::A, None), Err(BadName));
        assert_eq!(encode_query(1, &["abc"; 70].join("."), QueryType::A, None), Err(BadName));
    }

    #[test]
    fn addresses_follow_the_cname_chain_with_its_least_ttl() {
        let q = encode_query(7, "web.test", QueryType::A, Some(EDNS_PAYLOAD_SIZE)).unwrap();
        let target = name("real.test");
        let answers = [
            record(&QNAME_PTR, TYPE_CNAME, 3, &target),
            record(&name("real.test"), TYPE_A, 9, &[10, 0, 0, 1]),
            record(&name("REAL.test"), TYPE_A, 2, &[10, 0, 0, 2]),
            record(&name("other.test"), TYPE_A, 1, &[10, 0, 0, 3]),
        ];
        let r = parse_reply(&reply(&q, 0, &answers), 7, "web.test", QueryType::A).expect("reply");
        assert_eq!(r.rcode, Rcode::NoError);
        assert_eq!(
            r.addresses,
            vec![(IpAddr::from([10, 0, 0, 1]), 3), (IpAddr::from([10, 0, 0, 2]), 2)],
            "the chain's TTL caps each address's; a name off the chain is not taken"
        );
    }

    #[test]
    fn replies_to_other_queries_are_not_matching() {
        let q = encode_query(7, "web.test", QueryType::A, None).unwrap();
        let good = reply(&q, 0, &[record(&QNAME_PTR, TYPE_A, 5, &[1, 2, 3, 4])]);
        assert!(parse_reply(&good, 7, "WEB.test.", QueryType::A).is_ok());
        assert_eq!(parse_reply(&good, 8, "web.test", QueryType::A), Err(ReplyError::NotMatching));
        assert_eq!(parse_reply(&good, 7, "web.other", QueryType::A), Err(ReplyError::NotMatching));
        assert_eq!(parse_reply(&good, 7, "web.test", QueryType::Aaaa), Err(ReplyError::NotMatching));
        assert_eq!(parse_reply(&q, 7, "web.test", QueryType::A), Err(ReplyError::NotMatching), "a query is no reply");
        // Read whole first: garbage under another id is malformed, not another reply.
        assert_eq!(parse_reply(b"\x12\x34 not a DNS message", 7, "web.test", QueryType::A), Err(ReplyError::Malformed));
    }

    #[test]
    fn hostile_replies_are_malformed_not_panics() {
        let q = encode_query(7, "web.test", QueryType::A, None).unwrap();
        assert_eq!(parse_reply(b"\x00\x07garbage", 7, "web.test", QueryType::A), Err(ReplyError::Malformed));
        // A pointer to itself, as the answer's owner.
        let looped = reply(&q, 0, &[vec![0xC0, 26]]);
        assert_eq!(parse_reply(&looped, 7, "web.test", QueryType::A), Err(ReplyError::Malformed));
        // rdlength past the end; an A of 3 bytes; an answer count with no answer.
        let mut long = record(&QNAME_PTR, TYPE_A, 5, &[1, 2, 3, 4]);
        long[11] = 200;
        for bad in [
            reply(&q, 0, &[long]),
            reply(&q, 0, &[record(&QNAME_PTR, TYPE_A, 5, &[1, 2, 3])]),
            reply(&q, 0, &[record(&QNAME_PTR, TYPE_CNAME, 5, &[0xC0])]),
        ] {
            assert_eq!(parse_reply(&bad, 7, "web.test", QueryType::A), Err(ReplyError::Malformed));
        }
        let mut missing = reply(&q, 0, &[]);
        missing[7] = 1;
        assert_eq!(parse_reply(&missing, 7, "web.test", QueryType::A), Err(ReplyError::Malformed));
        // Every prefix of a good reply, and every byte flipped, reads without a panic.
        let good = reply(
            &q,
            0,
            &[record(&QNAME_PTR, TYPE_CNAME, 3, &name("a.b")), record(&name("a.b"), TYPE_A, 1, &[1, 1, 1, 1])],
        );
        for n in 0..good.len() {
            let _ = parse_reply(&good[..n], 7, "web.test", QueryType::A);
            for bit in 0..8 {
                let mut m = good.clone();
                m[n] ^= 1 << bit;
                let _ = parse_reply(&m, 7, "web.test", QueryType::A);
            }
        }
    }

    #[test]
    fn truncation_rcode_and_negative_ttls_are_read() {
        let q = encode_query(7, "web.test", QueryType::Aaaa, None).unwrap();
        let tc = parse_reply(&reply(&q, FLAG_TC, &[]), 7, "web.test", QueryType::Aaaa).unwrap();
        assert!(tc.truncated);
        let nx = parse_reply(&reply(&q, 3, &[]), 7, "web.test", QueryType::Aaaa).unwrap();
        assert_eq!((nx.rcode, nx.addresses.len()), (Rcode::NxDomain, 0));
        let v6 = record(&QNAME_PTR, TYPE_AAAA, 0x8000_0000, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let r = parse_reply(&reply(&q, 0, &[v6]), 7, "web.test", QueryType::Aaaa).unwrap();
        assert_eq!(r.addresses, vec![(IpAddr::V6(Ipv6Addr::LOCALHOST), 0)]);
    }
}
