//! JA3 and JA4 of ClientHellos built here, each expected value what Envoy 1.40's
//! TLS inspector logged for the same bytes (`%TLS_JA3_FINGERPRINT%`,
//! `%TLS_JA4_FINGERPRINT%`); the compat case `tls_inspector_fingerprints` sends
//! several of them to both proxies.

use super::{parse, ClientHello, Parse};

fn u16s(values: &[u16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

fn vec8(data: &[u8]) -> Vec<u8> {
    [&[data.len() as u8][..], data].concat()
}

fn vec16(data: &[u8]) -> Vec<u8> {
    [&(data.len() as u16).to_be_bytes()[..], data].concat()
}

fn ext(kind: u16, data: &[u8]) -> Vec<u8> {
    [&kind.to_be_bytes()[..], &vec16(data)].concat()
}

fn sni(name: &str) -> Vec<u8> {
    ext(0, &vec16(&[&[0u8][..], &vec16(name.as_bytes())].concat()))
}

fn alpn(protocols: &[&[u8]]) -> Vec<u8> {
    ext(16, &vec16(&protocols.iter().flat_map(|p| vec8(p)).collect::<Vec<u8>>()))
}

fn groups(values: &[u16]) -> Vec<u8> {
    ext(10, &vec16(&u16s(values)))
}

fn signatures(values: &[u16]) -> Vec<u8> {
    ext(13, &vec16(&u16s(values)))
}

fn versions(values: &[u16]) -> Vec<u8> {
    ext(43, &vec8(&u16s(values)))
}

/// A ClientHello record; `extensions: None` ends the hello before the
/// extensions' length, as a client with none may.
fn record(version: u16, ciphers: &[u16], extensions: Option<&[Vec<u8>]>) -> Vec<u8> {
    let mut body = version.to_be_bytes().to_vec();
    body.extend([7u8; 32]);
    body.push(0);
    body.extend(vec16(&u16s(ciphers)));
    body.extend([1, 0]);
    if let Some(extensions) = extensions {
        body.extend(vec16(&extensions.concat()));
    }
    let mut message = vec![1];
    message.extend(&(body.len() as u32).to_be_bytes()[1..]);
    message.extend(body);
    [&[22, 3, 1][..], &vec16(&message)].concat()
}

fn hello(version: u16, ciphers: &[u16], extensions: Option<&[Vec<u8>]>) -> ClientHello {
    match parse(&record(version, ciphers, extensions)) {
        Parse::ClientHello(hello) => hello,
        other => panic!("not a ClientHello: {other:?}"),
    }
}

/// Something like a browser's hello: GREASE as the first cipher suite, the
/// first and last extension, a supported group and a version.
fn browser_like() -> ClientHello {
    let ciphers = [
        0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d,
        0x002f, 0x0035,
    ];
    let key_share = [&u16s(&[0x3a3a])[..], &vec16(&[0]), &u16s(&[29]), &vec16(&[1; 32])].concat();
    let extensions = [
        ext(0x1a1a, &[]),
        sni("a.example"),
        ext(23, &[]),
        ext(0xff01, &[0]),
        groups(&[0x2a2a, 29, 23, 24]),
        ext(11, &vec8(&[0])),
        ext(35, &[]),
        alpn(&[b"h2", b"http/1.1"]),
        ext(5, &[1, 0, 0, 0, 0]),
        signatures(&[0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]),
        ext(18, &[]),
        ext(51, &vec16(&key_share)),
        ext(45, &vec8(&[1])),
        versions(&[0x4a4a, 0x0304, 0x0303]),
        ext(27, &[2, 0, 2]),
        ext(0x5a5a, &[0]),
    ];
    hello(0x0303, &ciphers, Some(&extensions))
}

#[test]
fn ja3_leaves_grease_out_of_ciphers_and_extensions_only() {
    let hello = browser_like();
    assert_eq!(
        hello.ja3_string(),
        "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,\
         0-23-65281-10-11-35-16-5-13-18-51-45-43-27,10794-29-23-24,0"
    );
    assert_eq!(hello.ja3_hash(), "324bd326a97a94ecedaaabaca4d8797c");
}

#[test]
fn ja4_of_a_browser_like_hello() {
    assert_eq!(browser_like().ja4(), "t13d1514h2_8daaf6152771_bc9a4605e104");
}

#[test]
fn a_tls12_hello_without_sni_or_alpn() {
    let hello = hello(0x0303, &[0xc02f, 0x009c, 0x002f], Some(&[groups(&[23]), ext(11, &vec8(&[0, 1, 2]))]));
    assert_eq!(hello.ja3_string(), "771,49199-156-47,10-11,23,0-1-2");
    assert_eq!(hello.ja3_hash(), "52cbb92b0681b371544b6f340858675c");
    assert_eq!(hello.ja4(), "t12i030200_f81807f6db74_33a13ba74d1c");
}

#[test]
fn hellos_without_extensions() {
    let none = hello(0x0301, &[0x002f, 0x0035], None);
    assert_eq!(none.ja3_string(), "769,47-53,,,");
    assert_eq!(none.ja3_hash(), "dac4920d4335e769327dbf4e1b759e15");
    assert_eq!(none.ja4(), "t10i020000_f54dd463d39b_000000000000");
    let empty = hello(0x0302, &[0x002f], Some(&[]));
    assert_eq!(empty.ja3_hash(), "33479a0511979846bfb20381604283dd");
    assert_eq!(empty.ja4(), "t11i010000_ba72b8082249_000000000000");
}

#[test]
fn ja4_alpn_characters() {
    let with = |protocols: &[&[u8]], version: Option<u16>| {
        let mut extensions = vec![alpn(protocols)];
        extensions.extend(version.map(|v| versions(&[v])));
        hello(0x0303, &[0x1301], Some(&extensions)).ja4()
    };
    assert_eq!(with(&[b"x"], Some(0x0304)), "t13i0102xx_0f2cb44170f4_b9a491fefe05");
    // Not alphanumeric at either end: the first hex digit of the first byte and
    // the last of the last.
    assert_eq!(with(&[b"*ab", b"h2"], Some(0x0304)), "t13i010222_0f2cb44170f4_b9a491fefe05");
    assert_eq!(with(&[b"ab\xff"], None), "t12i01016f_0f2cb44170f4_000000000000");
    assert_eq!(with(&[b"\xab\xcd"], None), "t12i0101ad_0f2cb44170f4_000000000000");
    assert_eq!(with(&[], None), "t12i010100_0f2cb44170f4_000000000000");
    let bare = hello(0x0303, &[0x1301], Some(&[sni("d.example"), alpn(&[b"h2"])]));
    assert_eq!(bare.ja3_hash(), "33b746a27502e1c870d11cfc1893be87");
    // SNI and ALPN are counted but not hashed: nothing is left for section c.
    assert_eq!(bare.ja4(), "t12d0102h2_0f2cb44170f4_000000000000");
}

#[test]
fn ja4_keeps_grease_in_signature_algorithms() {
    let extensions = [sni("b.example"), signatures(&[0x0a0a, 0x0403, 0x0804]), versions(&[0x0304, 0x0303])];
    let hello = hello(0x0303, &[0x1301, 0x1302], Some(&extensions));
    assert_eq!(hello.ja3_hash(), "aeffbdbbe16e4382e2096bdb62473016");
    assert_eq!(hello.ja4(), "t13d020300_62ed6f6ca7ad_811b97214cf8");
}

#[test]
fn ja4_version_is_the_highest_offered() {
    let offering = |offered: &[u16]| hello(0x0303, &[0x1301], Some(&[versions(offered)])).ja4();
    assert_eq!(offering(&[0x0a0a]), "t12i010100_0f2cb44170f4_b9a491fefe05");
    assert_eq!(offering(&[0x0303, 0x0302]), "t12i010100_0f2cb44170f4_b9a491fefe05");
    assert_eq!(offering(&[0x0302, 0x0304, 0x0303]), "t13i010100_0f2cb44170f4_b9a491fefe05");
    let tls10 = hello(0x0301, &[0x002f], Some(&[ext(11, &vec8(&[0]))]));
    assert_eq!(tls10.ja3_hash(), "9e08f0dfb1a27e72adc8fefec3956c7d");
    assert_eq!(tls10.ja4(), "t10i010100_ba72b8082249_bcb145a8c2a7");
}

#[test]
fn counts_stop_at_99_and_empty_lists_hash_to_zeros() {
    let ciphers: Vec<u16> = (0x0100..0x0100 + 120).collect();
    let many = hello(0x0303, &ciphers, Some(&[sni("c.example")]));
    assert_eq!(many.ja3_hash(), "addde34982f06e679aecb41642bbf849");
    assert_eq!(many.ja4(), "t12d990100_78cd3e4e4f62_000000000000");
    let grease_only = hello(0x0303, &[0x0a0a], Some(&[sni("e.example")]));
    assert_eq!(grease_only.ja3_hash(), "eb135aa01a32c0d5cf6ca9cc0f16d7f5");
    assert_eq!(grease_only.ja4(), "t12d000100_000000000000_000000000000");
}

#[test]
fn every_grease_value_is_recognised() {
    let grease: Vec<u16> = (0..16).map(|n| 0x0a0a | n << 12 | n << 4).collect();
    assert!(grease.iter().all(|v| super::is_grease(*v)));
    assert!(!super::is_grease(0x0a0b) && !super::is_grease(0x1a2a) && !super::is_grease(0x0000));
}
